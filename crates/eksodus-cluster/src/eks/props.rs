//! Typed desired properties of nodegroups and addons.
//!
//! The engine carries properties as JSON maps (plans compare, print and serialize them generically). Here the
//! desired side is built from a type and read back into the same type before any call, so a key misspelled in
//! the planner or the executor is a compile error, and a desired map that does not match the type (a plan file
//! from another version) is a permanent error naming the resource, never a silent default such as a one-node
//! group.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Scaling of a nodegroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scaling {
    /// Minimum nodes.
    pub min: u32,
    /// Maximum nodes.
    pub max: u32,
    /// Desired nodes.
    pub desired: u32,
}

/// A taint as EKS reports it (an empty value for none).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaintProps {
    /// Key.
    pub key: String,
    /// Value (`""`: none).
    pub value: String,
    /// `NO_SCHEDULE`, `NO_EXECUTE` or `PREFER_NO_SCHEDULE`.
    pub effect: String,
}

/// SSH access to the nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteAccessProps {
    /// EC2 key pair.
    pub key_name: String,
    /// Security groups allowed to reach port 22 (sorted).
    pub source_security_groups: Vec<String>,
}

/// What a managed nodegroup should be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodegroupProps {
    /// Nodegroup name.
    pub name: String,
    /// Kubernetes version.
    pub version: String,
    /// Instance types (sorted).
    pub instance_types: Vec<String>,
    /// `ON_DEMAND` or `SPOT`.
    pub capacity_type: String,
    /// EKS AMI type.
    pub ami_type: String,
    /// Root volume GiB (`None` with a launch template, which holds it).
    pub disk_size: Option<u32>,
    /// Subnets: keys of the network component or IDs (sorted).
    pub subnets: Vec<String>,
    /// The nodes' IAM role.
    pub node_role_arn: String,
    /// Scaling.
    pub scaling: Scaling,
    /// Kubernetes labels.
    pub labels: BTreeMap<String, String>,
    /// Taints (sorted).
    pub taints: Vec<TaintProps>,
    /// Nodes replaced at once in a rolling update.
    pub max_unavailable: Option<u32>,
    /// Or the share of the nodes replaced at once (percent).
    pub max_unavailable_percentage: Option<u32>,
    /// Max pods per node for the smallest instance type (`None`: not in eksodus-net's table).
    pub max_pods: Option<u32>,
    /// User tags (the environment's and the nodegroup's).
    pub tags: BTreeMap<String, String>,
    /// SSH access.
    pub remote_access: Option<RemoteAccessProps>,
    /// EKS node auto repair.
    pub node_repair: bool,
    /// Its limits and per-condition actions (overrides sorted); null for EKS's defaults.
    pub node_repair_settings: Option<eksodus_core::spec::NodeRepairSettings>,
    /// The launch template: eksodus's (its key, `lt/<nodegroup>`) or the user's (its ID). Fixed at creation.
    pub launch_template: Option<String>,
    /// The template version the nodes run: for eksodus's template the digest of its content
    /// ([`LaunchTemplateProps::digest`]), for the user's its number. A change rolls the nodes.
    pub launch_template_version: Option<String>,
}

/// What the launch template eksodus makes for a nodegroup should hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchTemplateProps {
    /// Template name (`<environment>-<nodegroup>`).
    pub name: String,
    /// A custom AMI (absent: EKS picks its AMI for the nodegroup's AMI type). Left out of the serialized
    /// form when absent, so the digest of a template without one is what it always was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// The data volume's device (`/dev/xvda`; Bottlerocket's data volume `/dev/xvdb`).
    pub device: String,
    /// Its size in GiB.
    pub volume_size: u32,
    /// `gp3`, `gp2`, `io1` or `io2`.
    pub volume_type: String,
    /// Provisioned IOPS.
    pub iops: Option<u32>,
    /// Throughput, MiB/s.
    pub throughput: Option<u32>,
    /// Encrypted.
    pub encrypted: bool,
    /// The KMS key of an encrypted volume (`None`: the account's default EBS key).
    pub kms_key: Option<String>,
    /// IMDSv2 required (always, for templates eksodus makes).
    pub imds_v2_required: bool,
    /// The metadata service's hop limit.
    pub hop_limit: u8,
    /// Security groups of the nodes (sorted), with the cluster's security group (empty: EKS's default, the
    /// cluster security group alone). A group eksodus makes (a nodegroup's SSH group) is named by its key.
    pub security_groups: Vec<String>,
    /// The EC2 key pair of the nodes (SSH; EKS takes no remote access beside a template). Left out of the
    /// serialized form when absent, as `image_id` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    /// User data as text (see [`crate::userdata`]).
    pub user_data: Option<String>,
    /// Tags of the instances and their volumes (the environment's, the nodegroup's and `Name`).
    pub instance_tags: BTreeMap<String, String>,
}

impl LaunchTemplateProps {
    /// A digest of the content (every field but the name), written into each version's description so a
    /// nodegroup's version is recognised: `sha256:` and 16 hex digits.
    pub fn digest(&self) -> String {
        use sha2::Digest;
        let mut m = to_props(self);
        m.remove("name");
        let h = sha2::Sha256::digest(Value::Object(m).to_string().as_bytes());
        let hex: String = h.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }
}

/// What an OIDC identity provider config should be (EKS keeps it as associated: every field is fixed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityProviderProps {
    /// Config name.
    pub name: String,
    /// Issuer URL.
    pub issuer_url: String,
    /// Client ID.
    pub client_id: String,
    /// Username claim (`None`: EKS's default).
    pub username_claim: Option<String>,
    /// Username prefix.
    pub username_prefix: Option<String>,
    /// Groups claim.
    pub groups_claim: Option<String>,
    /// Groups prefix.
    pub groups_prefix: Option<String>,
    /// Required claims.
    pub required_claims: BTreeMap<String, String>,
}

/// What a Fargate profile should be (EKS changes only its tags: every other field is fixed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FargateProfileProps {
    /// Profile name.
    pub name: String,
    /// Selectors, sorted.
    pub selectors: Vec<eksodus_core::spec::FargateSelector>,
    /// Subnets: the network component's keys, or IDs when adopted; sorted.
    pub subnets: Vec<String>,
    /// The pod execution role.
    pub pod_execution_role_arn: String,
    /// User tags.
    pub tags: BTreeMap<String, String>,
}

/// What an EKS addon should be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddonProps {
    /// Addon name.
    pub name: String,
    /// Addon version.
    pub version: String,
    /// Configuration values as canonical JSON.
    pub configuration: Option<String>,
    /// IRSA role.
    pub role_arn: Option<String>,
    /// `OVERWRITE`, `PRESERVE` or `NONE`.
    pub resolve_conflicts: String,
    /// User tags.
    pub tags: BTreeMap<String, String>,
}

/// Properties as the engine carries them.
pub(crate) fn to_props<T: Serialize>(t: &T) -> Map<String, Value> {
    match serde_json::to_value(t) {
        Ok(Value::Object(m)) => m,
        // every type here is a struct of strings, numbers, maps and lists: it always serializes to an object
        _ => unreachable!("typed properties serialize to a JSON object"),
    }
}

/// Reads properties back into their type; `what` names the resource in the error.
pub(crate) fn from_props<T: for<'de> Deserialize<'de>>(what: &str, m: &Map<String, Value>) -> Result<T, String> {
    serde_json::from_value(Value::Object(m.clone()))
        .map_err(|e| format!("the desired properties of {what} do not match what this version of eksodus plans: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodegroup() -> NodegroupProps {
        NodegroupProps {
            name: "general".into(),
            version: "1.33".into(),
            instance_types: vec!["m6i.large".into()],
            capacity_type: "ON_DEMAND".into(),
            ami_type: "AL2023_x86_64_STANDARD".into(),
            disk_size: Some(20),
            subnets: vec!["subnet/private/us-east-1a".into()],
            node_role_arn: "arn:aws:iam::111122223333:role/demo-node".into(),
            scaling: Scaling { min: 2, max: 5, desired: 3 },
            labels: BTreeMap::new(),
            taints: vec![],
            max_unavailable: Some(1),
            max_unavailable_percentage: None,
            max_pods: Some(29),
            tags: BTreeMap::new(),
            remote_access: None,
            node_repair: false,
            node_repair_settings: None,
            launch_template: None,
            launch_template_version: None,
        }
    }

    #[test]
    fn properties_round_trip() {
        let n = nodegroup();
        assert_eq!(from_props::<NodegroupProps>("nodegroup/general", &to_props(&n)).unwrap(), n);
    }

    #[test]
    fn a_missing_or_misspelled_key_is_an_error_not_a_default() {
        let mut m = to_props(&nodegroup());
        let scaling = m["scaling"].as_object_mut().unwrap();
        let desired = scaling.remove("desired").unwrap();
        scaling.insert("desried".into(), desired);
        let err = from_props::<NodegroupProps>("nodegroup/general", &m).unwrap_err();
        assert!(err.contains("nodegroup/general") && err.contains("desried"), "{err}");
        let mut m = to_props(&nodegroup());
        m.remove("node_repair");
        let err = from_props::<NodegroupProps>("nodegroup/general", &m).unwrap_err();
        assert!(err.contains("node_repair"), "{err}");
    }
}
