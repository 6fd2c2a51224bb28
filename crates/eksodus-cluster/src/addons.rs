//! EKS addons, as plain data: which version a spec gets for a Kubernetes version, the VPC CNI's configuration
//! for the spec's networking, each addon's service account (for its IRSA role), and the ENIConfig objects of
//! custom networking. No IO; the reconciler feeds [`Catalogue`] from `DescribeAddonVersions`.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use eksodus_core::spec::{CniMode, EnvironmentSpec};
use serde::Serialize;
use serde_json::{json, Map, Value};

/// One version of an addon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddonVersion {
    /// Version string (`v1.20.1-eksbuild.1`).
    pub version: String,
    /// Kubernetes versions it runs on.
    pub clusters: Vec<String>,
    /// Kubernetes versions for which EKS installs it by default.
    pub default_for: Vec<String>,
}

/// What EKS offers for one Kubernetes version: addon name → versions, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Catalogue {
    /// The Kubernetes version the catalogue was read for.
    pub kubernetes: String,
    /// Addons and their versions compatible with `kubernetes`, newest first.
    pub addons: BTreeMap<String, Vec<AddonVersion>>,
}

/// Orders addon versions (`v1.19.5-eksbuild.1` < `v1.20.1-eksbuild.1` < `v1.20.1-eksbuild.2`) by their numbers.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn nums(v: &str) -> Vec<u64> {
        v.trim_start_matches('v')
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .filter_map(|s| s.parse().ok())
            .collect()
    }
    nums(a).cmp(&nums(b)).then_with(|| a.cmp(b))
}

impl Catalogue {
    /// A catalogue from (addon, versions) pairs; versions are sorted newest first.
    pub fn new(kubernetes: &str, addons: impl IntoIterator<Item = (String, Vec<AddonVersion>)>) -> Self {
        let mut map = BTreeMap::new();
        for (name, mut versions) in addons {
            versions.sort_by(|a, b| compare_versions(&b.version, &a.version));
            map.insert(name, versions);
        }
        Catalogue { kubernetes: kubernetes.to_string(), addons: map }
    }

    /// The version `wanted` (a version, `latest`, or `None` for EKS's default) resolves to, or why it cannot.
    pub fn resolve(&self, name: &str, wanted: Option<&str>) -> Result<String, String> {
        let Some(versions) = self.addons.get(name) else {
            let offered: Vec<&str> = self.addons.keys().map(String::as_str).collect();
            return Err(format!(
                "EKS offers no addon `{name}` for Kubernetes {}; offered: {}",
                self.kubernetes,
                offered.join(", ")
            ));
        };
        let k = &self.kubernetes;
        let compatible: Vec<&AddonVersion> = versions.iter().filter(|v| v.clusters.iter().any(|c| c == k)).collect();
        match wanted {
            Some("latest") => compatible
                .first()
                .map(|v| v.version.clone())
                .ok_or_else(|| format!("`{name}` has no version for Kubernetes {k}")),
            Some(v) => {
                if compatible.iter().any(|c| c.version == v) {
                    Ok(v.to_string())
                } else {
                    let offered: Vec<&str> = compatible.iter().map(|c| c.version.as_str()).collect();
                    Err(format!(
                        "`{name}` {v} is not offered for Kubernetes {k}; offered: {}",
                        if offered.is_empty() { "none".to_string() } else { offered.join(", ") }
                    ))
                }
            }
            None => compatible
                .iter()
                .find(|v| v.default_for.iter().any(|c| c == k))
                .or(compatible.first())
                .map(|v| v.version.clone())
                .ok_or_else(|| format!("`{name}` has no version for Kubernetes {k}")),
        }
    }

    /// Whether `version` of `name` runs on this catalogue's Kubernetes version.
    pub fn is_compatible(&self, name: &str, version: &str) -> bool {
        self.addons
            .get(name)
            .is_some_and(|vs| vs.iter().any(|v| v.version == version && v.clusters.contains(&self.kubernetes)))
    }
}

/// The Kubernetes service account an addon's pods run as, when it takes an IRSA role.
pub use eksodus_core::spec::addon_service_account as service_account;

/// Addons that nodes need before they become Ready; nodegroups are created after them, other addons after
/// the nodegroups (their pods need nodes to run on).
pub fn before_nodes(addon: &str) -> bool {
    matches!(addon, "vpc-cni" | "kube-proxy" | "eks-pod-identity-agent")
}

/// The label the VPC CNI reads to pick a node's ENIConfig (one ENIConfig per zone, named after it).
pub const ENI_CONFIG_LABEL: &str = "topology.kubernetes.io/zone";

/// The VPC CNI settings the spec's networking implies (prefix delegation, custom networking), merged under
/// the addon's own `configuration_values` from the spec, which win. `None` when there is nothing to set.
pub fn vpc_cni_configuration(spec: &EnvironmentSpec, user: Option<&Value>) -> Option<Value> {
    let mut env = Map::new();
    if spec.network.cni.mode == CniMode::PrefixDelegation {
        env.insert("ENABLE_PREFIX_DELEGATION".into(), json!("true"));
        env.insert("WARM_PREFIX_TARGET".into(), json!("1"));
    }
    if spec.network.cni.custom_networking.is_some() {
        env.insert("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG".into(), json!("true"));
        env.insert("ENI_CONFIG_LABEL_DEF".into(), json!(ENI_CONFIG_LABEL));
    }
    let mut base = if env.is_empty() { None } else { Some(json!({ "env": env })) };
    if let Some(u) = user {
        match &mut base {
            Some(b) => merge(b, u),
            None => base = Some(u.clone()),
        }
    }
    base
}

/// Deep-merges `over` into `base` (objects key by key; anything else replaced).
pub fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// JSON text with object keys sorted at every level: the form configuration values are compared in (EKS
/// returns them as the text it was given, so key order must not count as a change).
pub fn canonical_json(v: &Value) -> String {
    fn sort(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let sorted: BTreeMap<&String, Value> = m.iter().map(|(k, v)| (k, sort(v))).collect();
                let mut out = Map::new();
                for (k, v) in sorted {
                    out.insert(k.clone(), v);
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    sort(v).to_string()
}

/// The ENIConfig objects of custom networking: one per zone, named after it, putting pods in that zone's pod
/// subnet with the given security groups.
pub fn eni_configs(pod_subnets: &BTreeMap<String, String>, security_groups: &[String]) -> Vec<Value> {
    pod_subnets
        .iter()
        .map(|(az, subnet)| {
            json!({
                "apiVersion": "crd.k8s.amazonaws.com/v1alpha1",
                "kind": "ENIConfig",
                "metadata": {"name": az, "labels": {"app.kubernetes.io/managed-by": "eksodus"}},
                "spec": {"subnet": subnet, "securityGroups": security_groups},
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat() -> Catalogue {
        let v = |v: &str, cl: &[&str], d: &[&str]| AddonVersion {
            version: v.into(),
            clusters: cl.iter().map(|s| s.to_string()).collect(),
            default_for: d.iter().map(|s| s.to_string()).collect(),
        };
        Catalogue::new(
            "1.31",
            [
                (
                    "vpc-cni".to_string(),
                    vec![
                        v("v1.19.5-eksbuild.1", &["1.30", "1.31"], &["1.31"]),
                        v("v1.20.1-eksbuild.1", &["1.31", "1.32"], &[]),
                        v("v1.9.0-eksbuild.1", &["1.28"], &[]),
                    ],
                ),
                ("coredns".to_string(), vec![v("v1.11.4-eksbuild.2", &["1.32"], &["1.32"])]),
            ],
        )
    }

    #[test]
    fn versions_order_numerically() {
        assert_eq!(compare_versions("v1.9.0-eksbuild.1", "v1.19.5-eksbuild.1"), Ordering::Less);
        assert_eq!(compare_versions("v1.20.1-eksbuild.2", "v1.20.1-eksbuild.1"), Ordering::Greater);
        assert_eq!(cat().addons["vpc-cni"][0].version, "v1.20.1-eksbuild.1");
    }

    #[test]
    fn resolves_default_latest_and_pinned() {
        let c = cat();
        assert_eq!(c.resolve("vpc-cni", None).unwrap(), "v1.19.5-eksbuild.1");
        assert_eq!(c.resolve("vpc-cni", Some("latest")).unwrap(), "v1.20.1-eksbuild.1");
        assert_eq!(c.resolve("vpc-cni", Some("v1.20.1-eksbuild.1")).unwrap(), "v1.20.1-eksbuild.1");
        let e = c.resolve("vpc-cni", Some("v1.9.0-eksbuild.1")).unwrap_err();
        assert!(e.contains("not offered for Kubernetes 1.31") && e.contains("v1.20.1-eksbuild.1"), "{e}");
        assert!(c.resolve("coredns", None).unwrap_err().contains("no version for Kubernetes 1.31"));
        assert!(c.resolve("nope", None).unwrap_err().contains("offered: coredns, vpc-cni"));
        assert!(c.is_compatible("vpc-cni", "v1.19.5-eksbuild.1") && !c.is_compatible("vpc-cni", "v1.9.0-eksbuild.1"));
    }

    #[test]
    fn cni_configuration_follows_the_network_and_user_values_win() {
        let mut spec = EnvironmentSpec::from_yaml(
            "name: t\nregion: us-east-1\nnetwork:\n  cidr: 10.0.0.0/16\n  azs: 2\n  cni:\n    mode: prefix-delegation\n    custom_networking:\n      secondary_cidr: 100.64.0.0/16\n",
        )
        .unwrap();
        let c =
            vpc_cni_configuration(&spec, Some(&json!({"env": {"WARM_PREFIX_TARGET": "2"}, "init": {"x": 1}}))).unwrap();
        assert_eq!(c["env"]["ENABLE_PREFIX_DELEGATION"], "true");
        assert_eq!(c["env"]["WARM_PREFIX_TARGET"], "2");
        assert_eq!(c["env"]["ENI_CONFIG_LABEL_DEF"], ENI_CONFIG_LABEL);
        assert_eq!(c["init"]["x"], 1);
        spec.network.cni.mode = CniMode::SecondaryIp;
        spec.network.cni.custom_networking = None;
        assert_eq!(vpc_cni_configuration(&spec, None), None);
    }

    #[test]
    fn canonical_json_ignores_key_order() {
        let a: Value = serde_json::from_str(r#"{"b": {"y": 1, "x": [2, {"d": 1, "c": 2}]}, "a": true}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a": true, "b": {"x": [2, {"c": 2, "d": 1}], "y": 1}}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(canonical_json(&a), r#"{"a":true,"b":{"x":[2,{"c":2,"d":1}],"y":1}}"#);
    }

    #[test]
    fn eni_configs_are_one_per_zone() {
        let subnets: BTreeMap<String, String> =
            [("us-east-1a".to_string(), "subnet-1".to_string()), ("us-east-1b".into(), "subnet-2".into())].into();
        let objs = eni_configs(&subnets, &["sg-1".to_string()]);
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[1]["metadata"]["name"], "us-east-1b");
        assert_eq!(objs[1]["spec"]["subnet"], "subnet-2");
        assert_eq!(objs[0]["spec"]["securityGroups"][0], "sg-1");
    }
}
