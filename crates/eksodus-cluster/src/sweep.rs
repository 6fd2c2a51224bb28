//! What a cluster's controllers made in AWS, found by the tags they put on it (feature `aws`): the load
//! balancers of Services of type LoadBalancer and of Ingresses, made by the AWS Load Balancer Controller
//! (`elbv2.k8s.aws/cluster`) or the in-tree cloud provider (`kubernetes.io/cluster/<name>`), and their target
//! groups. `down` removes them when it cannot ask the cluster to (its API server unreachable, or
//! `--skip-kubernetes`), and after the Kubernetes-side cleanup to catch what a controller left behind: a load
//! balancer holds interfaces in the environment's subnets, which would keep the subnets and the VPC from going.
//!
//! Only resources in the environment's own VPC that carry the cluster's tag are touched; the security groups
//! and interfaces they leave in the VPC are the network's teardown's business (it removes what blocks it inside
//! resources it owns).

use std::collections::BTreeMap;

use eksodus_core::aws::{step_error, Calls};
use eksodus_core::engine::StepError;
use serde::Serialize;

/// The tag the AWS Load Balancer Controller puts on what it makes, with the cluster's name as value.
pub const LBC_CLUSTER_TAG: &str = "elbv2.k8s.aws/cluster";

/// The tag key the in-tree cloud provider (and the controller, too) puts on what belongs to a cluster.
pub fn cluster_tag(cluster: &str) -> String {
    format!("kubernetes.io/cluster/{cluster}")
}

/// Whether `tags` say the resource was made for `cluster` by one of its controllers.
pub fn made_for(tags: &BTreeMap<String, String>, cluster: &str) -> bool {
    tags.get(LBC_CLUSTER_TAG).is_some_and(|v| v == cluster)
        || tags.get(&cluster_tag(cluster)).is_some_and(|v| v == "owned")
}

/// What the sweep removed, and what it could not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Swept {
    /// Load balancers removed (ARNs, or names of classic ones).
    pub load_balancers: Vec<String>,
    /// Target groups removed.
    pub target_groups: Vec<String>,
    /// What could not be removed, and why.
    pub failed: Vec<String>,
}

/// The load-balancer APIs of one environment's account and region.
#[derive(Debug, Clone)]
pub struct Sweeper {
    elbv2: aws_sdk_elasticloadbalancingv2::Client,
    elb: aws_sdk_elasticloadbalancing::Client,
    calls_v2: Calls,
    calls_elb: Calls,
}

impl Sweeper {
    /// A sweeper for clients made from `conf`.
    pub fn new(conf: &aws_config::SdkConfig) -> Sweeper {
        Sweeper {
            elbv2: aws_sdk_elasticloadbalancingv2::Client::new(conf),
            elb: aws_sdk_elasticloadbalancing::Client::new(conf),
            calls_v2: Calls::new("elasticloadbalancing", conf),
            calls_elb: Calls::new("elasticloadbalancing-classic", conf),
        }
    }

    /// Uses `policy` for every call.
    pub fn with_policy(mut self, policy: eksodus_core::retry::Policy) -> Sweeper {
        self.calls_v2 = self.calls_v2.with_policy(policy);
        self.calls_elb = self.calls_elb.with_policy(policy);
        self
    }

    /// Removes the load balancers and target groups `cluster`'s controllers made in `vpc`.
    pub async fn sweep(&self, cluster: &str, vpc: &str) -> Result<Swept, StepError> {
        let mut out = Swept::default();
        // Application and Network Load Balancers
        let lbs =
            self.calls_v2.read_step("DescribeLoadBalancers", || self.elbv2.describe_load_balancers().send()).await?;
        let arns: Vec<String> = lbs
            .load_balancers()
            .iter()
            .filter(|l| l.vpc_id() == Some(vpc))
            .filter_map(|l| l.load_balancer_arn().map(String::from))
            .collect();
        for arn in self.tagged_v2(&arns, cluster).await? {
            match self
                .calls_v2
                .read_step(format!("DeleteLoadBalancer {arn}"), || {
                    self.elbv2.delete_load_balancer().load_balancer_arn(&arn).send()
                })
                .await
            {
                Ok(_) => out.load_balancers.push(arn),
                Err(e) => out.failed.push(e.to_string()),
            }
        }
        let tgs =
            self.calls_v2.read_step("DescribeTargetGroups", || self.elbv2.describe_target_groups().send()).await?;
        let arns: Vec<String> = tgs
            .target_groups()
            .iter()
            .filter(|t| t.vpc_id() == Some(vpc))
            .filter_map(|t| t.target_group_arn().map(String::from))
            .collect();
        for arn in self.tagged_v2(&arns, cluster).await? {
            match self
                .calls_v2
                .read_step(format!("DeleteTargetGroup {arn}"), || {
                    self.elbv2.delete_target_group().target_group_arn(&arn).send()
                })
                .await
            {
                Ok(_) => out.target_groups.push(arn),
                Err(e) => out.failed.push(e.to_string()),
            }
        }
        // Classic Load Balancers (the in-tree cloud provider's default for Services)
        let classic = self
            .calls_elb
            .read_step("DescribeLoadBalancers (classic)", || self.elb.describe_load_balancers().send())
            .await?;
        let names: Vec<String> = classic
            .load_balancer_descriptions()
            .iter()
            .filter(|l| l.vpc_id() == Some(vpc))
            .filter_map(|l| l.load_balancer_name().map(String::from))
            .collect();
        for chunk in names.chunks(20) {
            let tags = self
                .calls_elb
                .read_step("DescribeTags (classic)", || {
                    self.elb.describe_tags().set_load_balancer_names(Some(chunk.to_vec())).send()
                })
                .await?;
            for d in tags.tag_descriptions() {
                let t: BTreeMap<String, String> =
                    d.tags().iter().map(|t| (t.key().to_string(), t.value().unwrap_or_default().to_string())).collect();
                let Some(name) = d.load_balancer_name().filter(|_| made_for(&t, cluster)) else { continue };
                match self.calls_elb.read(|| self.elb.delete_load_balancer().load_balancer_name(name).send()).await {
                    Ok(_) => out.load_balancers.push(name.to_string()),
                    Err(e) => out.failed.push(step_error(format!("DeleteLoadBalancer {name}"), e).to_string()),
                }
            }
        }
        Ok(out)
    }

    /// The ARNs among `arns` tagged for `cluster`.
    async fn tagged_v2(&self, arns: &[String], cluster: &str) -> Result<Vec<String>, StepError> {
        let mut out = Vec::new();
        for chunk in arns.chunks(20) {
            let r = self
                .calls_v2
                .read_step("DescribeTags", || self.elbv2.describe_tags().set_resource_arns(Some(chunk.to_vec())).send())
                .await?;
            for d in r.tag_descriptions() {
                let t: BTreeMap<String, String> = d
                    .tags()
                    .iter()
                    .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
                    .collect();
                if made_for(&t, cluster) {
                    out.extend(d.resource_arn().map(String::from));
                }
            }
        }
        Ok(out)
    }

    /// The calls this sweep makes, for the least-privilege policy.
    pub const ACTIONS: &'static [&'static str] = &[
        "elasticloadbalancing:DescribeLoadBalancers",
        "elasticloadbalancing:DescribeTargetGroups",
        "elasticloadbalancing:DescribeTags",
        "elasticloadbalancing:DeleteLoadBalancer",
        "elasticloadbalancing:DeleteTargetGroup",
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_clusters_own_tags_count() {
        let t = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        assert!(made_for(&t("elbv2.k8s.aws/cluster", "prod"), "prod"));
        assert!(made_for(&t("kubernetes.io/cluster/prod", "owned"), "prod"));
        assert!(!made_for(&t("kubernetes.io/cluster/prod", "shared"), "prod"), "shared means someone else's");
        assert!(!made_for(&t("elbv2.k8s.aws/cluster", "staging"), "prod"));
        assert!(!made_for(&BTreeMap::new(), "prod"));
    }
}
