#!/bin/bash
set -o errexit -o nounset -o pipefail
/etc/eks/bootstrap.sh 'shop' --apiserver-endpoint 'https://ABCDEF.gr7.eu-west-1.eks.amazonaws.com' --b64-cluster-ca 'LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t' --ip-family ipv6 --service-ipv6-cidr fd2e:4a7b:91c0::/108 --dns-cluster-ip fd2e:4a7b:91c0::a --use-max-pods false --kubelet-extra-args '--node-labels=eks.amazonaws.com/nodegroup=gpu,eks.amazonaws.com/nodegroup-image=ami-0123456789abcdef0,eks.amazonaws.com/capacityType=ON_DEMAND,tier=gpu --register-with-taints=nvidia.com/gpu=true:NoSchedule,nvidia.com/gpu=:NoExecute --max-pods=110'
