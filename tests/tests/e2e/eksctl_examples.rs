//! Every eksctl example imports whole, and is applied on the emulator as `up` would, re-plans as empty and is
//! destroyed with nothing tagged left. What an example takes from the user's account (a VPC and its subnets,
//! a KMS key) is made in the emulator first and its IDs put where the example had its own.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use eksodus::aws::AwsTarget;
use eksodus::{ApplyOptions, EventSink, KubeAccess};
use eksodus_testkit::{FaultConfig, LocalAws};

fn examples() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/eksodus-cluster/testdata/eksctl");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().to_string(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    out.sort();
    // none of the twenty-seven is fully private: eksctl's own form of one, with a nodegroup that has to join
    out.push(("zz-private-cluster (inline)".into(), PRIVATE.into()));
    // eksctl's example 38 names a control plane's subnets in a VPC eksctl makes, which cannot be: in a VPC of
    // the user's, as eksctl's docs use them
    out.push(("zz-control-plane-subnets (inline)".into(), CONTROL_PLANE.into()));
    out
}

/// A fully-private cluster as eksctl's documentation writes one.
const PRIVATE: &str = r#"apiVersion: eksctl.io/v1alpha5
kind: ClusterConfig
metadata: {name: private-cluster, region: us-west-2}
privateCluster:
  enabled: true
  additionalEndpointServices: [autoscaling, logs]
managedNodeGroups:
- {name: ng-1, instanceType: m5.large, desiredCapacity: 2, privateNetworking: true}
"#;

/// An adopted VPC whose control plane has subnets and groups of its own.
const CONTROL_PLANE: &str = r#"apiVersion: eksctl.io/v1alpha5
kind: ClusterConfig
metadata: {name: cp-subnets, region: us-west-2}
vpc:
  id: vpc-1
  subnets:
    private:
      us-west-2a: {id: subnet-a}
      us-west-2b: {id: subnet-b}
  controlPlaneSubnetIDs: [subnet-cp-a, subnet-cp-b]
  controlPlaneSecurityGroupIDs: [sg-cp]
managedNodeGroups:
- {name: ng-1, privateNetworking: true}
"#;

/// The user's security group standing for the example's `theirs`, made the first time it is named.
async fn users_group(
    ec2: &aws_sdk_ec2::Client,
    made: &mut std::collections::BTreeMap<String, String>,
    theirs: &str,
) -> String {
    if let Some(id) = made.get(theirs) {
        return id.clone();
    }
    let r = ec2
        .create_security_group()
        .group_name(format!("users-{theirs}"))
        .description("the user's")
        .send()
        .await
        .unwrap();
    let id = r.group_id().unwrap().to_string();
    made.insert(theirs.to_string(), id.clone());
    id
}

/// The user's customer-managed policy standing for the example's `theirs`, made the first time it is named
/// (with the example's path and name, in the emulator's account).
async fn users_policy(
    iam: &aws_sdk_iam::Client,
    made: &mut std::collections::BTreeMap<String, String>,
    theirs: &str,
) -> String {
    if theirs.starts_with("arn:aws:iam::aws:") {
        return theirs.to_string(); // AWS's own
    }
    if let Some(arn) = made.get(theirs) {
        return arn.clone();
    }
    let (_, rest) = theirs.split_once(":policy/").unwrap();
    let (path, name) = rest.rsplit_once('/').map_or(("/".to_string(), rest), |(p, n)| (format!("/{p}/"), n));
    let doc =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListAllMyBuckets","Resource":"*"}]}"#;
    let r = iam.create_policy().policy_name(name).path(path).policy_document(doc).send().await.unwrap();
    let arn = r.policy().unwrap().arn().unwrap().to_string();
    made.insert(theirs.to_string(), arn.clone());
    arn
}

/// Makes the user's roles and policies a spec's service accounts name, and points the spec at them. A target
/// role in another account stays as it is: EKS does not read it when it makes the association.
async fn provide_users_iam(conf: &aws_config::SdkConfig, spec: &mut eksodus::EnvironmentSpec) {
    let Some(access) = spec.access.as_mut() else { return };
    let iam = aws_sdk_iam::Client::new(conf);
    let mut policies = std::collections::BTreeMap::new();
    if let Some(b) = access.iam.permissions_boundary.as_mut() {
        *b = users_policy(&iam, &mut policies, b).await;
    }
    for sa in access.service_accounts.iter_mut().chain(access.pod_identities.iter_mut()) {
        for p in sa.policies.iter_mut() {
            *p = users_policy(&iam, &mut policies, p).await;
        }
        if let Some(role) = sa.role_arn.as_mut() {
            let name = role.rsplit('/').next().unwrap();
            let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#;
            let r = iam.create_role().role_name(name).assume_role_policy_document(trust).send().await.unwrap();
            *role = r.role().unwrap().arn().to_string();
        }
    }
}

/// Makes in the emulator what the spec takes from the user's account, and points the spec at it.
async fn provide_existing(conf: &aws_config::SdkConfig, spec: &mut eksodus::EnvironmentSpec) {
    provide_users_iam(conf, spec).await;
    let zones = spec.az_names();
    if let Some(ex) = spec.network.existing.as_mut() {
        let ec2 = aws_sdk_ec2::Client::new(conf);
        let vpc = ec2.create_vpc().cidr_block("192.168.0.0/16").send().await.unwrap();
        let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
        // one subnet for each ID the example names, spread over its zones (a /20 each, below the blocks the
        // examples name), and one for each block it names, with that block
        let mut ids = Vec::new();
        let mut renamed = std::collections::BTreeMap::new();
        for (i, old) in ex.subnet_ids.iter().enumerate() {
            let r = ec2
                .create_subnet()
                .vpc_id(&vpc)
                .cidr_block(format!("192.168.{}.0/20", i * 16))
                .availability_zone(&zones[i % zones.len()])
                .send()
                .await
                .unwrap();
            let id = r.subnet().unwrap().subnet_id().unwrap().to_string();
            renamed.insert(old.clone(), id.clone());
            ids.push(id);
        }
        for (j, block) in ex.subnet_cidrs.iter().enumerate() {
            ec2.create_subnet()
                .vpc_id(&vpc)
                .cidr_block(block.to_string())
                .availability_zone(&zones[(ids.len() + j) % zones.len()])
                .send()
                .await
                .unwrap();
        }
        for n in spec.cluster.iter_mut().flat_map(|c| c.nodegroups.iter_mut()) {
            for s in n.subnets.iter_mut() {
                if let Some(id) = renamed.get(s) {
                    *s = id.clone();
                }
            }
        }
        // the control plane's own subnets, small ones in the same VPC
        if let Some(c) = spec.cluster.as_mut() {
            for (i, id) in c.control_plane_subnets.iter_mut().enumerate() {
                let r = ec2
                    .create_subnet()
                    .vpc_id(&vpc)
                    .cidr_block(format!("192.168.{}.0/28", 200 + i))
                    .availability_zone(&zones[i % zones.len()])
                    .send()
                    .await
                    .unwrap();
                *id = r.subnet().unwrap().subnet_id().unwrap().to_string();
            }
        }
        ex.vpc_id = vpc;
        ex.subnet_ids = ids;
    }
    // a nodegroup's own security groups, the groups let in by SSH, its custom AMI and its launch template are
    // the user's: made once for each ID the example names (the same ID twice is one group)
    let ec2 = aws_sdk_ec2::Client::new(conf);
    let mut groups = std::collections::BTreeMap::new();
    for sg in spec.cluster.iter_mut().flat_map(|c| c.control_plane_security_groups.iter_mut()) {
        *sg = users_group(&ec2, &mut groups, sg).await;
    }
    for ng in spec.cluster.iter_mut().flat_map(|c| c.nodegroups.iter_mut()) {
        for sg in ng.security_groups.iter_mut() {
            *sg = users_group(&ec2, &mut groups, sg).await;
        }
        if let Some(ssh) = ng.ssh.as_mut() {
            for sg in ssh.source_security_groups.iter_mut() {
                *sg = users_group(&ec2, &mut groups, sg).await;
            }
            // a key file on the user's machine: its key, as loading the spec file would have read it (made
            // for this test; its private half was thrown away)
            if ssh.public_key_file.take().is_some() {
                ssh.public_key = Some(
                    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA7e3Xtwqc9C64YrLdSOCNHrhmaoZW7aI5XFFj4JGlpK e2e@eksodus"
                        .into(),
                );
            }
        }
        // a key of the user's for the root volume, named as the example names it (an ID or an ARN)
        if let Some(k) = ng.volume.as_mut().and_then(|v| v.kms_key.as_mut()) {
            let kms = aws_sdk_kms::Client::new(conf);
            let made = kms.create_key().description("the user's volume key").send().await.unwrap();
            let m = made.key_metadata().unwrap();
            *k = if k.starts_with("arn:") { m.arn().unwrap().to_string() } else { m.key_id().to_string() };
        }
        if let Some(ami) = ng.ami.as_mut() {
            let r = ec2.register_image().name(format!("users-{ami}")).send().await.unwrap();
            *ami = r.image_id().unwrap().to_string();
        }
        if let Some(lt) = ng.launch_template.as_mut() {
            // as many versions as the example names, so that its version is there
            let data =
                aws_sdk_ec2::types::RequestLaunchTemplateData::builder().instance_type("m5.large".into()).build();
            let r = ec2
                .create_launch_template()
                .launch_template_name(format!("users-{}", lt.id))
                .launch_template_data(data.clone())
                .send()
                .await
                .unwrap();
            let id = r.launch_template().unwrap().launch_template_id().unwrap().to_string();
            for _ in 1..lt.version.parse::<u32>().unwrap() {
                ec2.create_launch_template_version()
                    .launch_template_id(&id)
                    .launch_template_data(data.clone())
                    .send()
                    .await
                    .unwrap();
            }
            lt.id = id;
        }
    }
    if let Some(enc) = spec.cluster.as_mut().and_then(|c| c.encryption.as_mut()).filter(|e| e.key_arn.is_some()) {
        let kms = aws_sdk_kms::Client::new(conf);
        let key = kms.create_key().description("the user's key").send().await.unwrap();
        enc.key_arn = key.key_metadata().and_then(|m| m.arn()).map(String::from);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_importable_eksctl_example_applies_replans_empty_and_goes() {
    let mut applied = Vec::new();
    let mut refused = Vec::new();
    for (name, text) in examples() {
        if !eksodus::cluster::eksctl::is_eksctl(&text) {
            continue;
        }
        let imp = eksodus::cluster::eksctl::import(&text).unwrap();
        if !imp.unsupported.is_empty() {
            refused.push(name);
            continue;
        }
        let mut spec = imp.spec;
        let aws = LocalAws::start(FaultConfig::default()).await.unwrap();
        let conf = AwsTarget::local(&spec.region, &aws.endpoint()).load().await;
        provide_existing(&conf, &mut spec).await;
        aws.proxy.reset_stats(); // the calls that count are eksodus's
        let spec = eksodus::spec::validated(spec).unwrap_or_else(|e| panic!("{name}: {e}"));
        // the fake API server for speed, the real one (where available) for an example that writes aws-auth
        // and RBAC: the fake agreeing proves nothing
        let windows: Vec<_> = spec.cluster.iter().flat_map(|c| &c.nodegroups).filter(|n| n.is_windows()).collect();
        let writes_kube = !windows.is_empty()
            || spec.access.as_ref().is_some_and(|a| {
                !(a.mappings.is_empty() && a.accounts.is_empty() && a.service_access.is_empty())
                    || a.service_accounts.iter().chain(&a.pod_identities).any(|s| s.create_service_account)
            });
        let nc = eksodus_testkit::workload::NewCluster::start(writes_kube).await.unwrap();
        if writes_kube {
            println!("{name}: the new cluster's Kubernetes side is {}", nc.describe());
        }
        // the namespaces a service is let into are the user's (eksctl too fails without them)
        for sa in spec.access.iter().flat_map(|a| &a.service_access) {
            let ns: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(nc.client.clone());
            let obj = serde_json::from_value(serde_json::json!({"metadata": {"name": sa.namespace}})).unwrap();
            ns.create(&Default::default(), &obj).await.unwrap();
        }
        let env = || {
            eksodus::Environment::builder(spec.clone())
                .aws(&conf)
                .options(ApplyOptions::fast())
                .kube(KubeAccess::Client(nc.client.clone()))
                .build()
                .unwrap()
        };
        let up = env().up(&EventSink::discard()).await.unwrap_or_else(|e| panic!("{name}: up: {e}"));
        assert!(up.converged.is_converged(), "{name}");
        // aws-auth holds the spec's mappings, accounts and services, and the services' RBAC exists
        let access = spec.access.clone().unwrap_or_default();
        if !(access.mappings.is_empty() && access.accounts.is_empty() && access.service_access.is_empty()) {
            let held = eksodus::access::cluster::AwsAuthApi::new(nc.client.clone()).read().await.unwrap();
            assert_eq!(held.mappings.len(), access.mappings.len() + access.service_access.len(), "{name}: {held:?}");
            assert_eq!(held.accounts, access.accounts, "{name}");
            for sa in &access.service_access {
                let role = format!("arn:aws:iam::{}:role/AWSServiceRoleForAmazonEMRContainers", aws.account_id);
                let m =
                    held.get(eksodus::access::awsauth::Kind::Role, &role).unwrap_or_else(|| panic!("{name}: {role}"));
                assert_eq!(m.username.as_deref(), Some("emr-containers"));
                let rb: kube::Api<k8s_openapi::api::rbac::v1::RoleBinding> =
                    kube::Api::namespaced(nc.client.clone(), &sa.namespace);
                let rb = rb.get("emr-containers").await.unwrap();
                assert_eq!(rb.subjects.unwrap()[0].name, "emr-containers");
            }
            // a second up changes nothing there
            let again = env().up(&EventSink::discard()).await.unwrap();
            assert!(again.aws_auth.is_empty(), "{name}: {:?}", again.aws_auth);
        }
        check_service_accounts(&conf, &aws.account_id, &spec, &nc.client, &up.service_accounts, &name).await;
        if access.service_accounts.iter().chain(&access.pod_identities).any(|s| s.create_service_account) {
            let again = env().up(&EventSink::discard()).await.unwrap();
            assert!(again.service_accounts.is_empty(), "{name}: {:?}", again.service_accounts);
        }
        // Windows nodes (14): EKS's Windows AMI type and 50 GiB, a node role of their own (the Linux nodes' keeps
        // its one kind of access), and the VPC CNI's Windows IP address management turned on, once
        if !windows.is_empty() {
            assert_eq!(up.cni_config, ["enable-windows-ipam"], "{name}");
            let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
                kube::Api::namespaced(nc.client.clone(), "kube-system");
            let data = cms.get("amazon-vpc-cni").await.unwrap().data.unwrap_or_default();
            assert_eq!(data.get("enable-windows-ipam").map(String::as_str), Some("true"), "{name}");
            let eks = aws_sdk_eks::Client::new(&conf);
            let linux_role = format!("/{}", eksodus::access::iam::role_name(&spec.name, "node"));
            for n in &windows {
                let ng =
                    eks.describe_nodegroup().cluster_name(&spec.name).nodegroup_name(&n.name).send().await.unwrap();
                let ng = ng.nodegroup().unwrap();
                let own = format!("/{}", eksodus::access::iam::role_name(&spec.name, &format!("node-{}", n.name)));
                let role = ng.node_role().unwrap_or_default();
                assert!(role.ends_with(&own) && !role.ends_with(&linux_role), "{name}: {} on {role}", n.name);
                assert_eq!(ng.ami_type().map(|t| t.as_str()), n.ami_type.as_deref(), "{name}");
                assert_eq!(ng.disk_size(), Some(50), "{name}: EKS's default for Windows");
            }
            let again = env().up(&EventSink::discard()).await.unwrap();
            assert!(again.cni_config.is_empty(), "{name}: on already, nothing written: {:?}", again.cni_config);
        }
        // SSH beside eksodus's template: the nodegroup's own group lets the sources reach port 22
        for n in spec.cluster.iter().flat_map(|c| &c.nodegroups).filter(|n| n.owns_template()) {
            let Some(ssh) = &n.ssh else { continue };
            let ec2 = aws_sdk_ec2::Client::new(&conf);
            let group = eksodus::net::ec2::ssh_group_name(&spec.name, &n.name);
            let f = aws_sdk_ec2::types::Filter::builder().name("group-name").values(&group).build();
            let r = ec2.describe_security_groups().filters(f).send().await.unwrap();
            let g = r.security_groups().first().unwrap_or_else(|| panic!("{name}: no {group}"));
            let mut from: Vec<&str> = g
                .ip_permissions()
                .iter()
                .filter(|p| p.from_port() == Some(22) && p.to_port() == Some(22))
                .flat_map(|p| p.user_id_group_pairs().iter().filter_map(|u| u.group_id()))
                .collect();
            from.sort();
            let mut want: Vec<&str> = ssh.source_security_groups.iter().map(String::as_str).collect();
            want.sort();
            want.dedup();
            assert_eq!(from, want, "{name}: {group}");
            let mut cidrs: Vec<String> = g
                .ip_permissions()
                .iter()
                .filter(|p| p.from_port() == Some(22) && p.to_port() == Some(22))
                .flat_map(|p| p.ip_ranges().iter().filter_map(|r| r.cidr_ip().map(String::from)))
                .collect();
            cidrs.sort();
            let want: Vec<String> = ssh.source_cidrs.iter().map(|c| c.to_string()).collect();
            assert_eq!(cidrs, want, "{name}: {group}");
        }
        // a private cluster's endpoints are there, and nothing leads out of its VPC
        if !spec.network.vpc_endpoints.is_empty() {
            let ec2 = aws_sdk_ec2::Client::new(&conf);
            let mine =
                aws_sdk_ec2::types::Filter::builder().name("tag:eksodus.io/environment").values(&spec.name).build();
            let e = ec2.describe_vpc_endpoints().filters(mine.clone()).send().await.unwrap();
            let mut got: Vec<&str> = e.vpc_endpoints().iter().filter_map(|e| e.service_name()).collect();
            got.sort();
            let mut want: Vec<String> =
                spec.network.vpc_endpoints.iter().map(|e| e.service_name(&spec.region)).collect();
            want.sort();
            assert_eq!(got, want, "{name}");
            let igws = ec2.describe_internet_gateways().filters(mine.clone()).send().await.unwrap();
            let nats = ec2.describe_nat_gateways().filter(mine).send().await.unwrap();
            assert!(igws.internet_gateways().is_empty() && nats.nat_gateways().is_empty(), "{name}");
        }
        // Local Zones (33): a public and a private subnet in each, shown by EC2 in the Local Zone; the cluster's
        // subnets all in availability zones; a nodegroup that names Local Zones only in theirs
        if !spec.network.local_zones.is_empty() {
            let ec2 = aws_sdk_ec2::Client::new(&conf);
            let mine =
                aws_sdk_ec2::types::Filter::builder().name("tag:eksodus.io/environment").values(&spec.name).build();
            let subnets = ec2.describe_subnets().filters(mine).send().await.unwrap();
            let zone_of: BTreeMap<String, String> = subnets
                .subnets()
                .iter()
                .filter_map(|s| Some((s.subnet_id()?.to_string(), s.availability_zone()?.to_string())))
                .collect();
            for z in &spec.network.local_zones {
                assert_eq!(zone_of.values().filter(|v| *v == z).count(), 2, "{name}: {z}: {zone_of:?}");
            }
            let eks = aws_sdk_eks::Client::new(&conf);
            let got = eks.describe_cluster().name(&spec.name).send().await.unwrap();
            let cluster_subnets = got.cluster().and_then(|c| c.resources_vpc_config()).map(|v| v.subnet_ids().to_vec());
            let cluster_subnets = cluster_subnets.unwrap_or_default();
            assert!(!cluster_subnets.is_empty(), "{name}");
            for s in &cluster_subnets {
                assert!(!spec.network.local_zones.contains(&zone_of[s]), "{name}: the control plane in {}", zone_of[s]);
            }
            for n in spec.cluster.iter().flat_map(|c| &c.nodegroups) {
                let ng = eks.describe_nodegroup().cluster_name(&spec.name).nodegroup_name(&n.name);
                let ng = ng.send().await.unwrap().nodegroup.unwrap();
                let zones: BTreeSet<&str> = ng.subnets().iter().map(|s| zone_of[s].as_str()).collect();
                let want: BTreeSet<&str> = if n.zones.is_empty() {
                    zone_of.values().filter(|z| !spec.network.local_zones.contains(z)).map(String::as_str).collect()
                } else {
                    n.zones.iter().map(String::as_str).collect()
                };
                assert_eq!(zones, want, "{name}: {}", n.name);
            }
        }
        // dual-stack and resource names (02): in EC2, as eksctl makes them
        if spec.dual_stack() || !spec.network.hostname_type.is_default() {
            check_subnets_in_ec2(&conf, &spec, &name).await;
        }
        // Bottlerocket settings are in the user data of eksodus's template, as TOML under `settings`
        for n in spec.cluster.iter().flat_map(|c| &c.nodegroups) {
            let Some(b) = &n.bottlerocket else { continue };
            let ec2 = aws_sdk_ec2::Client::new(&conf);
            let v = ec2
                .describe_launch_template_versions()
                .launch_template_name(eksodus_cluster::eks::template_name(&spec.name, &n.name))
                .versions("$Latest")
                .send()
                .await
                .unwrap();
            let data = v.launch_template_versions()[0].launch_template_data().and_then(|d| d.user_data());
            let toml = eksodus_cluster::userdata::decode(data.unwrap_or_default()).unwrap_or_default();
            if b.admin_container {
                assert!(toml.contains("[settings.host-containers.admin]\nenabled = true\n"), "{name}: {toml}");
            }
            for (k, v) in b.settings.iter().filter(|(_, v)| v.is_string()) {
                assert!(toml.contains(&format!("{k} = {v}\n")), "{name}: {k} in {toml}");
            }
        }
        // the control plane's zonal shift and tier, and each nodegroup's repair limits, as EKS reports them
        if let Some(c) = &spec.cluster {
            let eks = aws_sdk_eks::Client::new(&conf);
            let got = eks.describe_cluster().name(&spec.name).send().await.unwrap();
            let got = got.cluster().unwrap();
            assert_eq!(got.zonal_shift_config().and_then(|z| z.enabled()).unwrap_or(false), c.zonal_shift, "{name}");
            // Auto Mode (42): its three parts on together, the built-in pools, and their role eksodus made
            let compute = got.compute_config();
            assert_eq!(compute.and_then(|x| x.enabled()).unwrap_or(false), c.auto_mode.is_some(), "{name}");
            if let Some(a) = &c.auto_mode {
                let compute = compute.unwrap();
                let mut pools = compute.node_pools().to_vec();
                pools.sort();
                assert_eq!(pools, a.node_pools, "{name}");
                let role = eksodus::access::iam::role_name(&spec.name, "auto-node");
                assert!(
                    compute.node_role_arn().is_some_and(|r| r.ends_with(&format!("/{role}"))),
                    "{name}: {compute:?}"
                );
                let storage = got.storage_config().and_then(|x| x.block_storage()).and_then(|b| b.enabled());
                let elb =
                    got.kubernetes_network_config().and_then(|k| k.elastic_load_balancing()).and_then(|e| e.enabled());
                assert_eq!((storage, elb), (Some(true), Some(true)), "{name}");
                let iam = aws_sdk_iam::Client::new(&conf);
                let cluster_role = eksodus::access::iam::role_name(&spec.name, "cluster");
                let attached = iam.list_attached_role_policies().role_name(&cluster_role).send().await.unwrap();
                let names: Vec<_> = attached.attached_policies().iter().filter_map(|p| p.policy_name()).collect();
                for p in eksodus::access::policy::AUTO_MODE_CLUSTER_POLICIES {
                    assert!(names.contains(p), "{name}: {p} on {cluster_role}: {names:?}");
                }
            }
            // Fargate (16): each profile with its selectors, tags and eksodus's pod execution role
            let mut profiles = eks
                .list_fargate_profiles()
                .cluster_name(&spec.name)
                .send()
                .await
                .unwrap()
                .fargate_profile_names()
                .to_vec();
            profiles.sort();
            let mut want: Vec<String> = c.fargate_profiles.iter().map(|p| p.name.clone()).collect();
            want.sort();
            assert_eq!(profiles, want, "{name}");
            for p in &c.fargate_profiles {
                let got = eks.describe_fargate_profile().cluster_name(&spec.name).fargate_profile_name(&p.name);
                let got = got.send().await.unwrap().fargate_profile.unwrap();
                assert_eq!(got.selectors().len(), p.selectors.len(), "{name}: {}", p.name);
                for (k, v) in &p.tags {
                    assert_eq!(got.tags().and_then(|t| t.get(k)), Some(v), "{name}: {}", p.name);
                }
                let role = eksodus::access::iam::role_name(&spec.name, "fargate");
                assert!(got.pod_execution_role_arn().is_some_and(|r| r.ends_with(&format!("/{role}"))), "{name}");
            }
            // capabilities (47, 48): each of its type, as its role, with the spec's access policies on the entry
            // EKS made for the role
            let caps = eks.list_capabilities().cluster_name(&spec.name).send().await.unwrap();
            let mut got_caps: Vec<String> =
                caps.capabilities().iter().filter_map(|c| c.capability_name().map(String::from)).collect();
            got_caps.sort();
            let mut want: Vec<String> = c.capabilities.iter().map(|c| c.name.clone()).collect();
            want.sort();
            assert_eq!(got_caps, want, "{name}");
            for cap in &c.capabilities {
                let got = eks.describe_capability().cluster_name(&spec.name).capability_name(&cap.name);
                let got = got.send().await.unwrap().capability.unwrap();
                assert_eq!(got.r#type().map(|t| t.as_str()), Some(cap.kind.as_str()), "{name}: {}", cap.name);
                let role = got.role_arn().unwrap();
                let own = eksodus::access::iam::role_name(&spec.name, &format!("capability-{}", cap.name));
                assert!(role.ends_with(&format!("/{own}")), "{name}: {role}");
                let pols = eks.list_associated_access_policies().cluster_name(&spec.name).principal_arn(role);
                let pols = pols.send().await.unwrap();
                let arns: Vec<&str> = pols.associated_access_policies().iter().filter_map(|p| p.policy_arn()).collect();
                for p in &cap.access_policies {
                    assert!(
                        arns.contains(&eksodus::access::entries::policy_arn(&p.policy).as_str()),
                        "{name}: {arns:?}"
                    );
                }
                if let Some(a) = &cap.argocd {
                    let argo = got.configuration().and_then(|x| x.argo_cd()).unwrap();
                    assert_eq!(argo.rbac_role_mappings().len(), a.rbac_role_mappings.len(), "{name}");
                }
            }
            // hybrid nodes (43): the networks as EKS keeps them, the role's HYBRID_LINUX entry, and the cluster
            // group's port-443 rules from those networks, which carry eksodus's description
            if let Some(r) = &c.remote_network {
                let got_r = got.remote_network_config().expect("the cluster's remote networks");
                let nodes: Vec<String> = got_r.remote_node_networks().iter().flat_map(|n| n.cidrs().to_vec()).collect();
                let want: Vec<String> = r.node_cidrs.iter().map(|n| n.to_string()).collect();
                assert_eq!(nodes, want, "{name}");
                let role = eksodus::access::iam::hybrid_role_arn(&spec, &aws.account_id).unwrap();
                let entry = eks.describe_access_entry().cluster_name(&spec.name).principal_arn(&role);
                let entry =
                    entry.send().await.unwrap_or_else(|e| panic!("{name}: {role}: {e:?}")).access_entry.unwrap();
                assert_eq!(entry.r#type(), Some("HYBRID_LINUX"), "{name}");
                assert_eq!(entry.username(), Some("system:node:{{SessionName}}"), "{name}");
                let iam = aws_sdk_iam::Client::new(&conf);
                let own = eksodus::access::iam::role_name(&spec.name, "hybrid-nodes");
                let trust = iam.get_role().role_name(&own).send().await.unwrap();
                // IAM answers the document URL-encoded, which leaves a service name as it is
                let trust = trust.role().unwrap().assume_role_policy_document().unwrap_or_default().to_string();
                assert!(trust.contains("ssm.amazonaws.com"), "{name}: {trust}");
                let ec2 = aws_sdk_ec2::Client::new(&conf);
                let groups = ec2
                    .describe_security_groups()
                    .filters(
                        aws_sdk_ec2::types::Filter::builder()
                            .name("group-name")
                            .values(format!("{}-cluster", spec.name))
                            .build(),
                    )
                    .send()
                    .await
                    .unwrap();
                let mut from: Vec<String> = groups
                    .security_groups()
                    .iter()
                    .flat_map(|g| g.ip_permissions())
                    .filter(|p| p.from_port() == Some(443))
                    .flat_map(|p| p.ip_ranges())
                    .filter(|x| x.description() == Some(eksodus::net::ec2::REMOTE_RULE_DESCRIPTION))
                    .filter_map(|x| x.cidr_ip().map(String::from))
                    .collect();
                from.sort();
                let mut want: Vec<String> = r.all_cidrs().map(|n| n.to_string()).collect();
                want.sort();
                assert_eq!(from, want, "{name}: {groups:?}");
            }
            // the family, and the service range EKS picks for an IPv6 cluster (30)
            let k = got.kubernetes_network_config().unwrap();
            assert_eq!(k.ip_family().map(|f| f.as_str()), Some(c.ip_family.as_str()), "{name}");
            assert_eq!(k.service_ipv6_cidr().is_some(), spec.ipv6_cluster(), "{name}: {k:?}");
            if spec.ipv6_cluster() {
                // the VPC CNI may give pods IPv6 addresses: the IPv6 grant is on the nodes' role, where aws-node
                // finds it when it has no role of its own (30 gives it none)
                assert!(!spec.access.as_ref().is_some_and(|a| a.iam.cni_irsa), "{name}");
                let iam = aws_sdk_iam::Client::new(&conf);
                let role = eksodus::access::iam::role_name(&spec.name, "node");
                let doc = iam
                    .get_role_policy()
                    .role_name(&role)
                    .policy_name(eksodus::access::policy::CNI_IPV6_POLICY_NAME)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{name}: {role}: {e:?}"));
                assert_eq!(
                    eksodus::access::policy::PolicyDocument::canonical_from_iam(doc.policy_document()),
                    Some(eksodus::access::policy::cni_ipv6("aws").canonical()),
                    "{name}: {role}"
                );
                let attached = iam.list_attached_role_policies().role_name(&role).send().await.unwrap();
                let names: Vec<_> = attached.attached_policies().iter().filter_map(|p| p.policy_name()).collect();
                assert!(!names.contains(&"AmazonEKS_CNI_Policy"), "{name}: IPv4's grant is not on {role}: {names:?}");
            }
            // the control plane's subnets (its own, or the network's) and the user's groups beside its own
            let vpc = got.resources_vpc_config().unwrap();
            if !c.control_plane_subnets.is_empty() {
                let mut have = vpc.subnet_ids().to_vec();
                have.sort();
                let mut want = c.control_plane_subnets.clone();
                want.sort();
                assert_eq!(have, want, "{name}");
            }
            for g in &c.control_plane_security_groups {
                assert!(vpc.security_group_ids().contains(g), "{name}: {g} in {:?}", vpc.security_group_ids());
            }
            let tier = got.control_plane_scaling_config().and_then(|t| t.tier()).map_or("standard", |t| t.as_str());
            assert_eq!(tier, c.control_plane_tier.as_deref().unwrap_or("standard"), "{name}");
            // an addon's own document is the inline policy of its role, as written
            for a in c.addons.iter().filter(|a| a.policy_document.is_some()) {
                use eksodus::access::policy::PolicyDocument;
                let got = eks.describe_addon().cluster_name(&spec.name).addon_name(&a.name).send().await.unwrap();
                let arn = got.addon.unwrap().service_account_role_arn;
                let arn = arn.unwrap_or_else(|| panic!("{name}: {} has a role", a.name));
                let iam = aws_sdk_iam::Client::new(&conf);
                let role = arn.rsplit('/').next().unwrap();
                let own = eksodus::core::spec::OWN_POLICY_NAME;
                let p = iam.get_role_policy().role_name(role).policy_name(own).send().await.unwrap();
                let have = PolicyDocument::canonical_from_iam(p.policy_document()).unwrap();
                let want: PolicyDocument = serde_json::from_value(a.policy_document.clone().unwrap()).unwrap();
                assert_eq!(have, want.canonical(), "{name}: {}", a.name);
            }
            // a nodegroup's own subnets are the ones it named, by ID or by block, and no others
            for n in c.nodegroups.iter().filter(|n| !n.subnets.is_empty()) {
                let ng = eks.describe_nodegroup().cluster_name(&spec.name).nodegroup_name(&n.name).send().await;
                let have = ng.unwrap().nodegroup.unwrap().subnets.unwrap_or_default();
                let ec2 = aws_sdk_ec2::Client::new(&conf);
                let d = ec2.describe_subnets().set_subnet_ids(Some(have.clone())).send().await.unwrap();
                let mut got: Vec<String> = d
                    .subnets()
                    .iter()
                    .map(|s| {
                        let id = s.subnet_id().unwrap().to_string();
                        if n.subnets.contains(&id) {
                            id
                        } else {
                            s.cidr_block().unwrap().to_string()
                        }
                    })
                    .collect();
                let mut want = n.subnets.clone();
                got.sort();
                want.sort();
                assert_eq!(got, want, "{name}: {}", n.name);
            }
            // a selector's nodegroup runs types that offer what it asks, several of them
            for n in c.nodegroups.iter().filter(|n| n.instance_selector.is_some()) {
                let sel = n.instance_selector.as_ref().unwrap();
                let ng = eks.describe_nodegroup().cluster_name(&spec.name).nodegroup_name(&n.name).send().await;
                let types = ng.unwrap().nodegroup.unwrap().instance_types.unwrap_or_default();
                assert!(types.len() > 1, "{name}: {}: {types:?}", n.name);
                let ec2 = aws_sdk_ec2::Client::new(&conf);
                let wanted: Vec<aws_sdk_ec2::types::InstanceType> = types.iter().map(|t| t.as_str().into()).collect();
                let d = ec2.describe_instance_types().set_instance_types(Some(wanted)).send().await.unwrap();
                assert_eq!(d.instance_types().len(), types.len(), "{name}");
                for t in d.instance_types() {
                    let vcpus = t.v_cpu_info().and_then(|v| v.default_v_cpus()).unwrap() as u32;
                    let mib = t.memory_info().and_then(|m| m.size_in_mib()).unwrap() as u32;
                    let arch: Vec<&str> =
                        t.processor_info().unwrap().supported_architectures().iter().map(|a| a.as_str()).collect();
                    assert!(
                        sel.vcpus.contains(vcpus)
                            && sel.memory_mib.contains(mib)
                            && arch.contains(&sel.architecture.as_str())
                            && t.gpu_info().is_none(),
                        "{name}: {}: {:?} has {vcpus} vCPUs, {mib} MiB, {arch:?}",
                        n.name,
                        t.instance_type()
                    );
                }
            }
            for n in c.nodegroups.iter().filter(|n| n.node_repair) {
                let ng = eks.describe_nodegroup().cluster_name(&spec.name).nodegroup_name(&n.name).send().await;
                let ng = ng.unwrap().nodegroup.unwrap();
                let r = ng.node_repair_config().unwrap();
                let want = n.node_repair_settings.clone().unwrap_or_default();
                let i = |v: Option<u32>| v.map(|v| v as i32);
                assert_eq!(
                    (r.max_unhealthy_node_threshold_count(), r.max_unhealthy_node_threshold_percentage()),
                    (i(want.max_unhealthy_count), i(want.max_unhealthy_percentage)),
                    "{name}: {}",
                    n.name
                );
                assert_eq!(
                    (r.max_parallel_nodes_repaired_count(), r.max_parallel_nodes_repaired_percentage()),
                    (i(want.max_parallel_count), i(want.max_parallel_percentage)),
                    "{name}: {}",
                    n.name
                );
                assert_eq!(r.node_repair_config_overrides().len(), want.overrides.len(), "{name}: {}", n.name);
            }
        }
        let again = env().plan().await.unwrap();
        assert!(
            again.is_converged(),
            "{name}: {:#?}",
            again.plan.changes().map(|c| (&c.id, &c.changes)).collect::<Vec<_>>()
        );
        let down = env().down(&EventSink::discard(), Duration::from_secs(5)).await.unwrap();
        assert!(down.report.is_success(), "{name}: {:?}", down.report.failures().collect::<Vec<_>>());
        assert!(down.remaining.is_empty(), "{name}: {:?}", down.remaining);
        // asked of EC2 itself, not of eksodus's own discovery: the egress-only gateway is gone too
        let ec2 = aws_sdk_ec2::Client::new(&conf);
        let eigws = ec2.describe_egress_only_internet_gateways().send().await.unwrap();
        assert_eq!(eigws.egress_only_internet_gateways(), [], "{name}");
        // every call up, plan and down made is allowed by the policy eksodus prints for the spec
        let seen = aws.proxy.stats().by_operation();
        let allowed = eksodus::policy::actions(&spec);
        let missing: Vec<&String> = seen.keys().filter(|op| !allowed.contains(op.as_str())).collect();
        assert!(missing.is_empty(), "{name}: called but not in the policy: {missing:?}");
        for (i, p) in spec.cluster.iter().flat_map(|c| c.identity_providers.iter()).enumerate() {
            for op in ["eks:AssociateIdentityProviderConfig", "eks:DisassociateIdentityProviderConfig"] {
                assert_eq!(seen.get(op), Some(&1), "{name}: identity provider {i} ({}): {op}", p.name);
            }
        }
        // what the user brought is left as it was
        if let Some(key) = spec.cluster.as_ref().and_then(|c| c.encryption.as_ref()).and_then(|e| e.key_arn.clone()) {
            let k = aws_sdk_kms::Client::new(&conf).describe_key().key_id(&key).send().await.unwrap();
            assert_eq!(k.key_metadata().unwrap().key_state().unwrap().as_str(), "Enabled", "{name}");
        }
        if let Some(ex) = &spec.network.existing {
            let ec2 = aws_sdk_ec2::Client::new(&conf);
            let left = ec2.describe_subnets().set_subnet_ids(Some(ex.subnet_ids.clone())).send().await.unwrap();
            assert_eq!(left.subnets().len(), ex.subnet_ids.len(), "{name}");
        }
        // and so are its security groups and launch templates; eksodus's SSH groups are gone
        let users: Vec<String> = spec
            .cluster
            .iter()
            .flat_map(|c| &c.nodegroups)
            .flat_map(|n| n.security_groups.iter().chain(n.ssh.iter().flat_map(|s| &s.source_security_groups)))
            .cloned()
            .collect();
        if !users.is_empty() {
            let ec2 = aws_sdk_ec2::Client::new(&conf);
            let all = ec2.describe_security_groups().send().await.unwrap();
            let ids: Vec<&str> = all.security_groups().iter().filter_map(|g| g.group_id()).collect();
            assert!(users.iter().all(|u| ids.contains(&u.as_str())), "{name}: {users:?} {ids:?}");
            let names: Vec<&str> = all.security_groups().iter().filter_map(|g| g.group_name()).collect();
            assert!(!names.iter().any(|n| n.ends_with("-ssh")), "{name}: {names:?}");
        }
        for lt in spec.cluster.iter().flat_map(|c| &c.nodegroups).filter_map(|n| n.launch_template.as_ref()) {
            let ec2 = aws_sdk_ec2::Client::new(&conf);
            let r = ec2.describe_launch_templates().launch_template_ids(&lt.id).send().await.unwrap();
            assert_eq!(r.launch_templates().len(), 1, "{name}: the user's template {} stays", lt.id);
        }
        applied.push(name);
    }
    println!("applied, re-planned empty and destroyed: {applied:?}; refused by path: {refused:?}");
    // every example: eksodus carries each of their fields over
    assert_eq!(refused, Vec::<String>::new());
    let expected = [
        "01-simple-cluster.yaml",
        "02-custom-vpc-cidr-no-nodes.yaml",
        "03-two-nodegroups.yaml",
        "04-existing-vpc.yaml",
        "07-ssh-keys.yaml",
        "09-nat-gateways.yaml",
        "10-encrypted-volumes.yaml",
        "11-cloudwatch-cluster-logging.yaml",
        "13-iamserviceaccounts.yaml",
        "14-windows-nodes.yaml",
        "15-managed-nodes.yaml",
        "16-fargate-profile.yaml",
        "19-kms-cluster.yaml",
        "20-bottlerocket.yaml",
        "22-managed-nodes-launch-template.yaml",
        "24-nodegroup-subnets.yaml",
        "25-addons.yaml",
        "27-oidc-provider.yaml",
        "28-instance-selector.yaml",
        "30-vpc-with-ip-family.yaml",
        "33-local-zones.yaml",
        "35-iamidentitymappings.yaml",
        "39-pod-identity-association.yaml",
        "40-access-entries.yaml",
        "41-zonal-shift.yaml",
        "42-auto-mode.yaml",
        "43-hybrid-nodes.yaml",
        "44-node-repair.yaml",
        "45-upgrade-policy-example.yaml",
        "46-control-plane-scaling-config.yaml",
        "47-auto-mode-with-ack-kro-capabilities.yaml",
        "48-auto-mode-with-argocd-capabilities.yaml",
        "49-control-plane-on-private-subnets.yaml",
        "zz-private-cluster (inline)",
        "zz-control-plane-subnets (inline)",
    ];
    assert_eq!(applied, expected);
}

/// The service accounts the spec asks for are in the cluster with eksodus's label, the user's labels and
/// annotations and (IRSA) their role's annotation, in namespaces made for them; each pod identity association
/// has its role, target role and session tags as the spec gives them.
async fn check_service_accounts(
    conf: &aws_config::SdkConfig,
    account: &str,
    spec: &eksodus::EnvironmentSpec,
    client: &kube::Client,
    changes: &[eksodus::access::serviceaccounts::Change],
    name: &str,
) {
    use eksodus::access::serviceaccounts::Change;
    use eksodus::core::spec::{IRSA_ROLE_ANNOTATION, OWNER_LABEL};
    let Some(access) = &spec.access else { return };
    let made: Vec<&str> = changes
        .iter()
        .map(|c| match c {
            Change::Created { service_account } => service_account.as_str(),
            other => panic!("{name}: a new cluster's service accounts are all made: {other:?}"),
        })
        .collect();
    let irsa = access.service_accounts.iter().map(|s| (s, true));
    let mut want = Vec::new();
    for (sa, is_irsa) in irsa.chain(access.pod_identities.iter().map(|s| (s, false))) {
        if !sa.create_service_account {
            continue;
        }
        want.push(format!("{}/{}", sa.namespace, sa.name));
        let api: kube::Api<k8s_openapi::api::core::v1::ServiceAccount> =
            kube::Api::namespaced(client.clone(), &sa.namespace);
        let got = api.get(&sa.name).await.unwrap_or_else(|e| panic!("{name}: {}/{}: {e}", sa.namespace, sa.name));
        let labels = got.metadata.labels.unwrap_or_default();
        let annotations = got.metadata.annotations.unwrap_or_default();
        assert_eq!(labels.get(OWNER_LABEL), Some(&spec.name), "{name}: {labels:?}");
        for (k, v) in &sa.labels {
            assert_eq!(labels.get(k), Some(v), "{name}: {}/{}: label {k}", sa.namespace, sa.name);
        }
        for (k, v) in &sa.annotations {
            assert_eq!(annotations.get(k), Some(v), "{name}: {}/{}: annotation {k}", sa.namespace, sa.name);
        }
        let role = annotations.get(IRSA_ROLE_ANNOTATION).cloned();
        let want_role = is_irsa.then(|| eksodus::access::iam::irsa_role_arn(spec, account, sa));
        assert_eq!(role, want_role, "{name}: {}/{}", sa.namespace, sa.name);
    }
    let mut made = made;
    made.sort();
    want.sort();
    assert_eq!(made, want, "{name}");
    if access.pod_identities.is_empty() {
        return;
    }
    let eks = aws_sdk_eks::Client::new(conf);
    let list = eks.list_pod_identity_associations().cluster_name(&spec.name).send().await.unwrap();
    assert_eq!(list.associations().len(), access.pod_identities.len(), "{name}");
    for a in list.associations() {
        let id = a.association_id().unwrap();
        let d = eks.describe_pod_identity_association().cluster_name(&spec.name).association_id(id).send().await;
        let d = d.unwrap().association.unwrap();
        let sa = access
            .pod_identities
            .iter()
            .find(|s| Some(s.namespace.as_str()) == d.namespace() && Some(s.name.as_str()) == d.service_account())
            .unwrap_or_else(|| panic!("{name}: {d:?} is not in the spec"));
        let want_role = eksodus::access::iam::pod_identity_role_arn(spec, account, sa);
        assert_eq!(d.role_arn(), Some(want_role.as_str()), "{name}");
        assert_eq!(d.target_role_arn(), sa.target_role_arn.as_deref(), "{name}");
        assert_eq!(d.disable_session_tags(), Some(sa.disable_session_tags), "{name}: {}", sa.name);
        assert_eq!(d.external_id().is_some(), sa.target_role_arn.is_some(), "{name}: {}", sa.name);
    }
}

/// The environment's VPC has an IPv6 /56 from Amazon's pool when the spec asks, every subnet a different /64 of
/// it and the spec's hostname type, and the public route table sends `::/0` to the internet gateway.
async fn check_subnets_in_ec2(conf: &aws_config::SdkConfig, spec: &eksodus::EnvironmentSpec, name: &str) {
    let ec2 = aws_sdk_ec2::Client::new(conf);
    let mine = aws_sdk_ec2::types::Filter::builder().name("tag:eksodus.io/environment").values(&spec.name).build();
    let vpcs = ec2.describe_vpcs().filters(mine.clone()).send().await.unwrap();
    let [vpc] = vpcs.vpcs() else { panic!("{name}: one VPC, got {:?}", vpcs.vpcs()) };
    let v6: Vec<ipnet::Ipv6Net> = vpc
        .ipv6_cidr_block_association_set()
        .iter()
        .filter(|a| a.ipv6_cidr_block_state().and_then(|s| s.state()).map(|s| s.as_str()) == Some("associated"))
        .filter_map(|a| a.ipv6_cidr_block()?.parse().ok())
        .collect();
    assert_eq!(v6.len(), usize::from(spec.dual_stack()), "{name}: {v6:?}");
    let subnets = ec2.describe_subnets().filters(mine.clone()).send().await.unwrap();
    assert!(!subnets.subnets().is_empty(), "{name}");
    let mut blocks = std::collections::BTreeSet::new();
    for s in subnets.subnets() {
        let id = s.subnet_id().unwrap();
        let theirs: Vec<ipnet::Ipv6Net> = s
            .ipv6_cidr_block_association_set()
            .iter()
            .filter(|a| a.ipv6_cidr_block_state().and_then(|s| s.state()).map(|s| s.as_str()) == Some("associated"))
            .filter_map(|a| a.ipv6_cidr_block()?.parse().ok())
            .collect();
        match v6.first() {
            Some(vpc_block) => {
                let [b] = theirs[..] else { panic!("{name}: {id} has {theirs:?}") };
                assert!(b.prefix_len() == 64 && vpc_block.contains(&b), "{name}: {id}: {b} in {vpc_block}");
                assert!(blocks.insert(b), "{name}: {b} given twice");
            }
            None => assert!(theirs.is_empty(), "{name}: {id} has {theirs:?}"),
        }
        // in an IPv6 cluster nodes take an IPv6 address at launch, as pods do from their node's prefix
        assert_eq!(s.assign_ipv6_address_on_creation(), Some(spec.ipv6_cluster()), "{name}: {id}");
        let t = s.private_dns_name_options_on_launch().and_then(|o| o.hostname_type()).map(|t| t.as_str());
        assert_eq!(t, Some(spec.network.hostname_type.as_str()), "{name}: {id}");
    }
    let rtbs = ec2.describe_route_tables().filters(mine.clone()).send().await.unwrap();
    let private = |t: &&aws_sdk_ec2::types::RouteTable| {
        t.tags().iter().any(|g| {
            g.key() == Some(eksodus::tags::RESOURCE) && g.value().is_some_and(|v| v.starts_with("rtb/private/"))
        })
    };
    let v6_default = |t: &aws_sdk_ec2::types::RouteTable| -> Vec<String> {
        t.routes()
            .iter()
            .filter(|r| r.destination_ipv6_cidr_block() == Some("::/0"))
            .map(|r| format!("{:?}{:?}", r.gateway_id(), r.egress_only_internet_gateway_id()))
            .collect()
    };
    let (private_rtbs, public_rtbs): (Vec<_>, Vec<_>) = rtbs.route_tables().iter().partition(private);
    let public_routes: Vec<String> = public_rtbs.iter().flat_map(|t| v6_default(t)).collect();
    let public = spec.network.subnets.public.enabled;
    assert_eq!(public_routes.len(), usize::from(spec.dual_stack() && public), "{name}: {public_routes:?}");
    assert!(public_routes.iter().all(|g| g.starts_with("Some(\"igw-")), "{name}: {public_routes:?}");
    // an IPv6 cluster's private subnets go out, and only out, through the egress-only gateway
    let eigws = ec2.describe_egress_only_internet_gateways().filters(mine).send().await.unwrap();
    let eigws: Vec<&str> =
        eigws.egress_only_internet_gateways().iter().filter_map(|g| g.egress_only_internet_gateway_id()).collect();
    assert_eq!(eigws.len(), usize::from(spec.ipv6_cluster()), "{name}: {eigws:?}");
    for t in &private_rtbs {
        let got = v6_default(t);
        let want: Vec<String> = eigws.iter().map(|g| format!("None{:?}", Some(g))).collect();
        assert_eq!(got, want, "{name}: {:?}", t.route_table_id());
    }
}
