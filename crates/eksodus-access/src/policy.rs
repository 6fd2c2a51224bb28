//! IAM policy documents as typed values (never string templates), and the trust policies and managed-policy
//! sets of the roles an EKS environment needs. Pure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One string or a list of them, as IAM accepts either.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single value.
    One(String),
    /// Several values.
    Many(Vec<String>),
}

impl OneOrMany {
    fn sorted(&self) -> Vec<String> {
        let mut v = match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        };
        v.sort();
        v.dedup();
        v
    }
}

impl From<&str> for OneOrMany {
    fn from(s: &str) -> Self {
        OneOrMany::One(s.to_string())
    }
}

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    /// Allow.
    Allow,
    /// Deny.
    Deny,
}

/// One statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// Statement ID.
    #[serde(rename = "Sid", default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Effect.
    #[serde(rename = "Effect")]
    pub effect: Effect,
    /// Principal (trust policies): `Service`, `Federated` or `AWS` to values.
    #[serde(rename = "Principal", default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<BTreeMap<String, OneOrMany>>,
    /// Actions.
    #[serde(rename = "Action")]
    pub action: OneOrMany,
    /// Resources (identity policies).
    #[serde(rename = "Resource", default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<OneOrMany>,
    /// Conditions: operator to key to values.
    #[serde(rename = "Condition", default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<BTreeMap<String, BTreeMap<String, OneOrMany>>>,
}

/// A policy document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDocument {
    /// Always `2012-10-17`.
    #[serde(rename = "Version")]
    pub version: String,
    /// Statements.
    #[serde(rename = "Statement")]
    pub statement: Vec<Statement>,
}

/// The policy language version.
pub const VERSION: &str = "2012-10-17";

impl PolicyDocument {
    /// A trust policy letting an AWS service assume the role.
    pub fn trust_service(service: &str) -> Self {
        PolicyDocument {
            version: VERSION.into(),
            statement: vec![Statement {
                sid: None,
                effect: Effect::Allow,
                principal: Some([("Service".to_string(), service.into())].into()),
                action: "sts:AssumeRole".into(),
                resource: None,
                condition: None,
            }],
        }
    }

    /// An IRSA trust policy: only `system:serviceaccount:<namespace>:<name>`, with audience `sts.amazonaws.com`,
    /// through the OIDC provider `provider_arn` of `issuer` (with or without `https://`).
    pub fn trust_service_account(provider_arn: &str, issuer: &str, namespace: &str, name: &str) -> Self {
        let host = issuer.trim_start_matches("https://");
        let cond: BTreeMap<String, OneOrMany> = [
            (format!("{host}:sub"), OneOrMany::One(format!("system:serviceaccount:{namespace}:{name}"))),
            (format!("{host}:aud"), OneOrMany::One("sts.amazonaws.com".into())),
        ]
        .into();
        PolicyDocument {
            version: VERSION.into(),
            statement: vec![Statement {
                sid: None,
                effect: Effect::Allow,
                principal: Some([("Federated".to_string(), provider_arn.into())].into()),
                action: "sts:AssumeRoleWithWebIdentity".into(),
                resource: None,
                condition: Some([("StringEquals".to_string(), cond)].into()),
            }],
        }
    }

    /// The trust policy of an Auto Mode cluster's role: EKS assumes it and tags the session (AWS's
    /// `AmazonEKSAutoClusterRole` trust, and eksctl's cluster role).
    pub fn trust_service_tagged(service: &str) -> Self {
        let mut d = Self::trust_service(service);
        d.statement[0].action = OneOrMany::Many(vec!["sts:AssumeRole".into(), "sts:TagSession".into()]);
        d
    }

    /// The trust policy of an EKS Pod Identity role: the Pod Identity agent assumes it and tags the session.
    pub fn trust_pod_identity() -> Self {
        PolicyDocument {
            version: VERSION.into(),
            statement: vec![Statement {
                sid: None,
                effect: Effect::Allow,
                principal: Some([("Service".to_string(), "pods.eks.amazonaws.com".into())].into()),
                action: OneOrMany::Many(vec!["sts:AssumeRole".into(), "sts:TagSession".into()]),
                resource: None,
                condition: None,
            }],
        }
    }

    /// The trust policy of a Fargate pod execution role: Fargate assumes it for the profiles of cluster
    /// `cluster` alone (AWS's "Amazon EKS Pod execution IAM role", which guards against the confused deputy
    /// with `aws:SourceArn`).
    pub fn trust_fargate(partition: &str, region: &str, account: &str, cluster: &str) -> Self {
        let mut d = Self::trust_service("eks-fargate-pods.amazonaws.com");
        let arn = format!("arn:{partition}:eks:{region}:{account}:fargateprofile/{cluster}/*");
        d.statement[0].condition =
            Some([("ArnLike".to_string(), [("aws:SourceArn".to_string(), OneOrMany::One(arn))].into())].into());
        d
    }

    /// A form that compares equal whatever the spelling (one value or a list, order of lists).
    pub fn canonical(&self) -> Value {
        let stmts: Vec<Value> = self
            .statement
            .iter()
            .map(|s| {
                let mut m = serde_json::Map::new();
                m.insert("Effect".into(), serde_json::to_value(s.effect).expect("serializable"));
                if let Some(p) = &s.principal {
                    m.insert(
                        "Principal".into(),
                        p.iter()
                            .map(|(k, v)| (k.clone(), Value::from(v.sorted())))
                            .collect::<serde_json::Map<_, _>>()
                            .into(),
                    );
                }
                m.insert("Action".into(), s.action.sorted().into());
                if let Some(r) = &s.resource {
                    m.insert("Resource".into(), r.sorted().into());
                }
                if let Some(c) = &s.condition {
                    let c: serde_json::Map<String, Value> = c
                        .iter()
                        .map(|(op, kv)| {
                            (
                                op.clone(),
                                kv.iter()
                                    .map(|(k, v)| (k.clone(), Value::from(v.sorted())))
                                    .collect::<serde_json::Map<_, _>>()
                                    .into(),
                            )
                        })
                        .collect();
                    m.insert("Condition".into(), c.into());
                }
                Value::Object(m)
            })
            .collect();
        serde_json::json!({"Version": self.version, "Statement": stmts})
    }

    /// Parses a document as IAM returns it (possibly URL-encoded) into its canonical form.
    pub fn canonical_from_iam(text: &str) -> Option<Value> {
        let decoded = if text.trim_start().starts_with('{') {
            text.to_string()
        } else {
            urlencoding::decode(text).ok()?.into_owned()
        };
        serde_json::from_str::<PolicyDocument>(&decoded).ok().map(|d| d.canonical())
    }
}

/// The AWS partition of a region (`aws`, `aws-cn`, `aws-us-gov`).
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The ARN of an AWS managed policy in a partition.
pub fn managed(partition: &str, name: &str) -> String {
    format!("arn:{partition}:iam::aws:policy/{name}")
}

/// Managed policies of the EKS cluster role.
pub const CLUSTER_POLICIES: &[&str] = &["AmazonEKSClusterPolicy", "AmazonEKSVPCResourceController"];
/// Managed policies of the node role (the CNI policy is added unless aws-node has its own IRSA role).
pub const NODE_POLICIES: &[&str] =
    &["AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly", "AmazonSSMManagedInstanceCore"];
/// What the cluster role of an Auto Mode cluster also holds, so EKS can run its nodes, volumes, load
/// balancers and their networking (AWS's Auto Mode cluster role; eksctl's `AutoModeIAMPolicies`).
pub const AUTO_MODE_CLUSTER_POLICIES: &[&str] = &[
    "AmazonEKSComputePolicy",
    "AmazonEKSBlockStoragePolicy",
    "AmazonEKSLoadBalancingPolicy",
    "AmazonEKSNetworkingPolicy",
];
/// The role of Auto Mode's nodes: what AWS's `AmazonEKSAutoNodeRole` holds (eksctl's
/// `auto-mode-node-role.yaml` adds public ECR reads in the commercial partition; EKS's images come from ECR).
pub const AUTO_MODE_NODE_POLICIES: &[&str] =
    &["AmazonEKSWorkerNodeMinimalPolicy", "AmazonEC2ContainerRegistryPullOnly"];
/// The managed policies of the hybrid nodes' role: SSM's managed-instance policy (the hybrid activation
/// `nodeadm init` registers with) and image pulls from ECR.
pub const HYBRID_NODE_POLICIES: &[&str] = &["AmazonSSMManagedInstanceCore", "AmazonEC2ContainerRegistryPullOnly"];

/// What `nodeadm` calls as a hybrid node beside its managed policies (AWS's "Prepare credentials for hybrid
/// nodes"): `eks:DescribeCluster` of this cluster (the endpoint, CA and service block it configures the
/// kubelet with), and, on `nodeadm uninstall`, taking its own managed instance off SSM.
pub fn hybrid_nodes(partition: &str, region: &str, account: &str, cluster: &str) -> PolicyDocument {
    let statement = |action: OneOrMany, resource: String| Statement {
        sid: None,
        effect: Effect::Allow,
        principal: None,
        action,
        resource: Some(OneOrMany::One(resource)),
        condition: None,
    };
    PolicyDocument {
        version: VERSION.into(),
        statement: vec![
            statement(
                "eks:DescribeCluster".into(),
                format!("arn:{partition}:eks:{region}:{account}:cluster/{cluster}"),
            ),
            statement("ssm:DescribeInstanceInformation".into(), "*".into()),
            statement(
                "ssm:DeregisterManagedInstance".into(),
                format!("arn:{partition}:ssm:{region}:{account}:managed-instance/*"),
            ),
        ],
    }
}

/// The service principal EKS capabilities assume their roles as.
pub const CAPABILITY_SERVICE: &str = "capabilities.eks.amazonaws.com";
/// The Fargate pod execution role's policy (image pulls from ECR; eksctl's and AWS's).
pub const FARGATE_POLICIES: &[&str] = &["AmazonEKSFargatePodExecutionRolePolicy"];
/// The VPC CNI's policy.
pub const CNI_POLICY: &str = "AmazonEKS_CNI_Policy";
/// The name of the inline policy that grants an IPv6 cluster's VPC CNI its calls.
pub const CNI_IPV6_POLICY_NAME: &str = "eksodus-vpc-cni-ipv6";

/// What the VPC CNI calls in IPv6 mode, which `AmazonEKS_CNI_Policy` (IPv4 only) does not grant: eksctl's
/// `makeIPv6VPCCNIPolicyDocument` (`pkg/actions/addon/create.go`), which follows the IPv6 section of the
/// CNI's `docs/iam-policy.md`, with the two subnet-discovery reads CNI 1.22.1 and later need.
pub fn cni_ipv6(partition: &str) -> PolicyDocument {
    let all = |actions: &[&str]| OneOrMany::Many(actions.iter().map(|a| a.to_string()).collect());
    PolicyDocument {
        version: VERSION.into(),
        statement: vec![
            Statement {
                sid: None,
                effect: Effect::Allow,
                principal: None,
                action: all(&[
                    "ec2:AssignIpv6Addresses",
                    "ec2:DescribeInstances",
                    "ec2:DescribeTags",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeInstanceTypes",
                    "ec2:DescribeSubnets",
                    "ec2:DescribeSecurityGroups",
                ]),
                resource: Some("*".into()),
                condition: None,
            },
            Statement {
                sid: None,
                effect: Effect::Allow,
                principal: None,
                action: "ec2:CreateTags".into(),
                resource: Some(OneOrMany::One(format!("arn:{partition}:ec2:*:*:network-interface/*"))),
                condition: None,
            },
        ],
    }
}

/// Thumbprint of the root CA of EKS OIDC issuers (IAM checks it for issuers it does not already trust).
pub const EKS_OIDC_THUMBPRINT: &str = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_policies_serialize_as_iam_expects() {
        let t = PolicyDocument::trust_service("eks.amazonaws.com");
        assert_eq!(
            serde_json::to_value(&t).unwrap(),
            serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "eks.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
        );
        let irsa = PolicyDocument::trust_service_account(
            "arn:aws:iam::1:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/AB",
            "https://oidc.eks.eu-west-1.amazonaws.com/id/AB",
            "kube-system",
            "aws-node",
        );
        let v = serde_json::to_value(&irsa).unwrap();
        assert_eq!(
            v["Statement"][0]["Condition"]["StringEquals"]["oidc.eks.eu-west-1.amazonaws.com/id/AB:sub"],
            "system:serviceaccount:kube-system:aws-node"
        );
        assert_eq!(
            v["Statement"][0]["Condition"]["StringEquals"]["oidc.eks.eu-west-1.amazonaws.com/id/AB:aud"],
            "sts.amazonaws.com"
        );
    }

    #[test]
    fn canonical_form_ignores_spelling_and_url_encoding() {
        let a = PolicyDocument::trust_service("ec2.amazonaws.com").canonical();
        let spelled = r#"{"Version":"2012-10-17","Statement":[{"Action":["sts:AssumeRole"],"Principal":{"Service":["ec2.amazonaws.com"]},"Effect":"Allow"}]}"#;
        assert_eq!(PolicyDocument::canonical_from_iam(spelled), Some(a.clone()));
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Service%22%3A%22ec2.amazonaws.com%22%7D%2C%22Action%22%3A%22sts%3AAssumeRole%22%7D%5D%7D";
        assert_eq!(PolicyDocument::canonical_from_iam(encoded), Some(a));
    }

    #[test]
    fn partitions() {
        assert_eq!(partition("cn-north-1"), "aws-cn");
        assert_eq!(
            managed(partition("us-gov-west-1"), CNI_POLICY),
            "arn:aws-us-gov:iam::aws:policy/AmazonEKS_CNI_Policy"
        );
        assert_eq!(partition("eu-west-1"), "aws");
    }
}
