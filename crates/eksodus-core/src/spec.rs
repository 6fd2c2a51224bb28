//! The declarative environment spec: what a user writes, as serde types, and its structural validation.
//!
//! Parsing ([`EnvironmentSpec::from_yaml`]) reports a malformed document with the path of the field at fault.
//! [`EnvironmentSpec::validate`] then checks everything that needs no outside knowledge and returns every
//! problem at once, each naming its field path (`network.cidr`, `network.azs[1]`, ...). Checks that need data
//! owned by other crates (instance types, whether the layout fits) are added by those crates
//! (`eksodus_net::validate`) on top of these.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::tags;
use crate::Error;

/// A whole environment: the unit that `plan`, `apply` and `destroy` work on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentSpec {
    /// Environment name: owned resources are tagged with it, and it names the EKS cluster.
    pub name: String,
    /// AWS region, such as `eu-west-1`.
    pub region: String,
    /// Extra tags put on every resource eksodus creates (the `eksodus.io/` prefix is reserved).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// The VPC layer.
    pub network: NetworkSpec,
}

/// The VPC layer of an environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// Primary VPC CIDR, a prefix from /16 to /24. Required unless `existing` adopts a VPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<Ipv4Net>,
    /// Availability zones: a count (named after the region, `a`, `b`, ...) or explicit names.
    pub azs: AzSpec,
    /// NAT gateways for the private subnets.
    #[serde(default)]
    pub nat: NatMode,
    /// Subnet tiers and their sizes.
    #[serde(default)]
    pub subnets: SubnetsSpec,
    /// Expected load, from which unsized subnets are derived and sized subnets are checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demand: Option<DemandSpec>,
    /// Amazon VPC CNI settings that change how many addresses pods use.
    #[serde(default)]
    pub cni: CniSpec,
    /// Adopt an existing VPC and subnets instead of creating them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing: Option<ExistingNetwork>,
}

/// Availability zones as a count or as names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AzSpec {
    /// This many zones, named after the region with the suffixes `a`, `b`, `c`, ...
    Count(u8),
    /// These zones, in this order.
    Names(Vec<String>),
}

/// How private subnets reach the internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NatMode {
    /// No NAT gateway: private subnets have no default route.
    None,
    /// One NAT gateway in the first zone, shared by every zone.
    #[default]
    Single,
    /// One NAT gateway per zone, so a zone outage does not cut the others off.
    PerAz,
}

/// The subnet tiers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetsSpec {
    /// Public subnets (internet gateway route; load balancers and NAT gateways live here).
    #[serde(default)]
    pub public: TierSpec,
    /// Private subnets (nodes, and pods unless custom networking moves them).
    #[serde(default)]
    pub private: TierSpec,
    /// Pod subnets in the secondary CIDR (only with CNI custom networking).
    #[serde(default)]
    pub pods: TierSpec,
}

/// One subnet tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierSpec {
    /// Whether the tier exists.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Prefix length of each subnet in the tier; derived when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<u8>,
}

fn yes() -> bool {
    true
}

impl Default for TierSpec {
    fn default() -> Self {
        TierSpec { enabled: true, prefix: None }
    }
}

/// Expected load per zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemandSpec {
    /// Worker nodes per availability zone at peak.
    pub nodes_per_az: u32,
    /// Instance type of the nodes (for ENI and address limits).
    pub instance_type: String,
    /// Pods per node; defaults to the instance type's max pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods_per_node: Option<u32>,
    /// Extra room on top of the demand, in percent.
    #[serde(default = "default_headroom")]
    pub headroom_percent: u32,
    /// vCPUs of the instance type, for the 110/250 max-pods caps when not looked up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpus: Option<u32>,
}

fn default_headroom() -> u32 {
    20
}

/// Amazon VPC CNI settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CniSpec {
    /// How pod addresses are handed out.
    #[serde(default)]
    pub mode: CniMode,
    /// VPC CNI version (prefix delegation needs 1.9 or later).
    #[serde(default = "default_cni_version")]
    pub version: String,
    /// Upper bound on ENIs used for pods (`MAX_ENI`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_eni: Option<u32>,
    /// Custom networking: pods get addresses from subnets in a secondary CIDR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_networking: Option<CustomNetworking>,
}

/// The VPC CNI version assumed when the spec names none: the release the bundled limits come from.
pub const DEFAULT_CNI_VERSION: &str = "1.23.1";

fn default_cni_version() -> String {
    DEFAULT_CNI_VERSION.to_string()
}

impl Default for CniSpec {
    fn default() -> Self {
        CniSpec { mode: CniMode::default(), version: default_cni_version(), max_eni: None, custom_networking: None }
    }
}

/// VPC CNI address mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CniMode {
    /// One secondary IP per pod.
    #[default]
    SecondaryIp,
    /// /28 prefixes (16 addresses) per ENI slot; Nitro only, CNI 1.9+.
    PrefixDelegation,
}

/// CNI custom networking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomNetworking {
    /// Secondary VPC CIDR for the pod subnets, /16 to /28 (100.64.0.0/10 is the usual choice).
    pub secondary_cidr: Ipv4Net,
}

/// An existing VPC to adopt: eksodus never deletes what it adopts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExistingNetwork {
    /// The VPC ID (`vpc-...`).
    pub vpc_id: String,
    /// Subnet IDs (`subnet-...`) in at least two zones.
    pub subnet_ids: Vec<String>,
}

/// One problem with a spec: the dotted path of the field at fault and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// Path of the field, such as `network.subnets.public.prefix`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl FieldError {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in one spec.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FieldErrors(pub Vec<FieldError>);

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} problem(s) in the spec", self.0.len())?;
        for e in &self.0 {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FieldErrors {}

impl EnvironmentSpec {
    /// Parses a YAML (or JSON) document; a malformed one is an error naming the field path at fault.
    pub fn from_yaml(text: &str) -> Result<Self, Error> {
        let de = serde_yaml::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let path = if path == "." { String::new() } else { path };
            Error::Parse { path, message: inner.to_string() }
        })
    }

    /// Reads and parses a spec file.
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.display().to_string(), source })?;
        Self::from_yaml(&text)
    }

    /// The availability zone names: explicit ones, or the region followed by `a`, `b`, ...
    pub fn az_names(&self) -> Vec<String> {
        match &self.network.azs {
            AzSpec::Names(n) => n.clone(),
            AzSpec::Count(c) => (0..*c).map(|i| format!("{}{}", self.region, (b'a' + i) as char)).collect(),
        }
    }

    /// Structural validation: every problem, each with its field path. Empty when the spec is well formed.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        validate_name(&self.name, &mut errs);
        if !is_region(&self.region) {
            errs.push(FieldError::new(
                "region",
                format!("`{}` is not an AWS region name such as eu-west-1", self.region),
            ));
        }
        validate_tags(&self.tags, &mut errs);
        self.validate_network(&mut errs);
        errs
    }

    fn validate_network(&self, errs: &mut Vec<FieldError>) {
        let n = &self.network;
        match (&n.cidr, &n.existing) {
            (None, None) => {
                errs.push(FieldError::new("network.cidr", "required (or adopt a VPC with network.existing)"))
            }
            (Some(_), Some(_)) => {
                errs.push(FieldError::new("network.existing", "give either network.cidr or network.existing, not both"))
            }
            _ => {}
        }
        if let Some(cidr) = n.cidr {
            if !(16..=24).contains(&cidr.prefix_len()) {
                errs.push(FieldError::new(
                    "network.cidr",
                    format!("VPC prefix must be /16 to /24, got /{}", cidr.prefix_len()),
                ));
            }
            if cidr.network() != cidr.addr() {
                errs.push(FieldError::new(
                    "network.cidr",
                    format!("{cidr} has host bits set; did you mean {}?", cidr.trunc()),
                ));
            }
        }
        // zones
        match &n.azs {
            AzSpec::Count(c) if *c < 2 => errs.push(FieldError::new(
                "network.azs",
                format!("EKS needs subnets in at least two availability zones, got {c}"),
            )),
            AzSpec::Count(c) if *c > 6 => {
                errs.push(FieldError::new("network.azs", format!("at most 6 zones are supported, got {c}")))
            }
            AzSpec::Names(names) => {
                if names.len() < 2 {
                    errs.push(FieldError::new(
                        "network.azs",
                        format!("EKS needs subnets in at least two availability zones, got {}", names.len()),
                    ));
                }
                let mut seen = BTreeSet::new();
                for (i, z) in names.iter().enumerate() {
                    if !seen.insert(z) {
                        errs.push(FieldError::new(format!("network.azs[{i}]"), format!("`{z}` is listed twice")));
                    }
                    let suffix_ok = z.len() > self.region.len()
                        && z.starts_with(&self.region)
                        && z[self.region.len()..]
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
                    if !suffix_ok {
                        errs.push(FieldError::new(
                            format!("network.azs[{i}]"),
                            format!("`{z}` is not a zone of region {}", self.region),
                        ));
                    }
                }
            }
            _ => {}
        }
        // tiers
        let s = &n.subnets;
        let vpc_len = n.cidr.map(|c| c.prefix_len());
        for (tier, t) in [("public", &s.public), ("private", &s.private), ("pods", &s.pods)] {
            if let Some(p) = t.prefix {
                if p > 28 {
                    errs.push(FieldError::new(
                        format!("network.subnets.{tier}.prefix"),
                        format!("AWS subnets are /16 to /28, got /{p}"),
                    ));
                }
                let parent = if tier == "pods" {
                    n.cni.custom_networking.as_ref().map(|c| c.secondary_cidr.prefix_len())
                } else {
                    vpc_len
                };
                if let Some(v) = parent {
                    if p < v {
                        errs.push(FieldError::new(
                            format!("network.subnets.{tier}.prefix"),
                            format!("a /{p} subnet cannot fit in a /{v} CIDR"),
                        ));
                    }
                }
            }
        }
        if n.existing.is_none() && !s.private.enabled {
            errs.push(FieldError::new(
                "network.subnets.private.enabled",
                "the private tier holds the nodes and cannot be disabled",
            ));
        }
        if !s.public.enabled && n.nat != NatMode::None {
            errs.push(FieldError::new(
                "network.nat",
                format!(
                    "NAT mode `{}` needs public subnets (network.subnets.public.enabled is false); use `none` or enable them",
                    n.nat
                ),
            ));
        }
        let custom = n.cni.custom_networking.as_ref();
        if custom.is_none() && s.pods.prefix.is_some() {
            errs.push(FieldError::new(
                "network.subnets.pods.prefix",
                "pod subnets exist only with network.cni.custom_networking",
            ));
        }
        if let Some(c) = custom {
            let sc = c.secondary_cidr;
            if !(16..=28).contains(&sc.prefix_len()) {
                errs.push(FieldError::new(
                    "network.cni.custom_networking.secondary_cidr",
                    format!("secondary VPC CIDRs are /16 to /28, got /{}", sc.prefix_len()),
                ));
            }
            if sc.network() != sc.addr() {
                errs.push(FieldError::new(
                    "network.cni.custom_networking.secondary_cidr",
                    format!("{sc} has host bits set; did you mean {}?", sc.trunc()),
                ));
            }
            if let Some(p) = n.cidr {
                if p.contains(&sc.network()) || sc.contains(&p.network()) {
                    errs.push(FieldError::new(
                        "network.cni.custom_networking.secondary_cidr",
                        format!("{sc} overlaps the VPC CIDR {p}"),
                    ));
                }
            }
            if !s.pods.enabled {
                errs.push(FieldError::new("network.subnets.pods.enabled", "custom networking needs the pod tier"));
            }
        }
        match parse_version(&n.cni.version) {
            None => errs.push(FieldError::new(
                "network.cni.version",
                format!("`{}` is not a version like 1.19.2", n.cni.version),
            )),
            Some(v) if n.cni.mode == CniMode::PrefixDelegation && v < (1, 9) => errs.push(FieldError::new(
                "network.cni.mode",
                format!("prefix delegation needs VPC CNI 1.9 or later, network.cni.version is {}", n.cni.version),
            )),
            _ => {}
        }
        if n.cni.max_eni == Some(0) {
            errs.push(FieldError::new("network.cni.max_eni", "must be at least 1"));
        }
        if let Some(d) = &n.demand {
            if d.nodes_per_az == 0 {
                errs.push(FieldError::new("network.demand.nodes_per_az", "must be at least 1"));
            }
            if d.pods_per_node == Some(0) {
                errs.push(FieldError::new("network.demand.pods_per_node", "must be at least 1"));
            }
            if d.headroom_percent > 1000 {
                errs.push(FieldError::new("network.demand.headroom_percent", "must be at most 1000"));
            }
            if d.vcpus == Some(0) {
                errs.push(FieldError::new("network.demand.vcpus", "must be at least 1"));
            }
        }
        if let Some(e) = &n.existing {
            if !is_aws_id(&e.vpc_id, "vpc-") {
                errs.push(FieldError::new(
                    "network.existing.vpc_id",
                    format!("`{}` is not a VPC ID (vpc-...)", e.vpc_id),
                ));
            }
            if e.subnet_ids.len() < 2 {
                errs.push(FieldError::new(
                    "network.existing.subnet_ids",
                    "EKS needs subnets in at least two availability zones",
                ));
            }
            let mut seen = BTreeSet::new();
            for (i, s) in e.subnet_ids.iter().enumerate() {
                if !is_aws_id(s, "subnet-") {
                    errs.push(FieldError::new(
                        format!("network.existing.subnet_ids[{i}]"),
                        format!("`{s}` is not a subnet ID (subnet-...)"),
                    ));
                } else if !seen.insert(s) {
                    errs.push(FieldError::new(
                        format!("network.existing.subnet_ids[{i}]"),
                        format!("`{s}` is listed twice"),
                    ));
                }
            }
        }
    }
}

impl fmt::Display for NatMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NatMode::None => "none",
            NatMode::Single => "single",
            NatMode::PerAz => "per-az",
        })
    }
}

/// `major.minor` of a version string like `1.19.2` or `v1.19.2-eksbuild.1`.
pub fn parse_version(v: &str) -> Option<(u32, u32)> {
    let v = v.strip_prefix('v').unwrap_or(v);
    let mut it = v.split(['.', '-']);
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

fn validate_name(name: &str, errs: &mut Vec<FieldError>) {
    // The name becomes the EKS cluster name: 1-100 characters, alphanumerics and hyphens, starting with a letter.
    // We also keep it lowercase so it is usable as a DNS label and a Kubernetes name.
    if name.is_empty() || name.len() > 100 {
        errs.push(FieldError::new("name", format!("must be 1 to 100 characters, got {}", name.len())));
        return;
    }
    let first_ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    let chars_ok = name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !first_ok || !chars_ok || name.ends_with('-') {
        errs.push(FieldError::new(
            "name",
            format!(
                "`{name}` must be lowercase letters, digits and hyphens, start with a letter and not end with a hyphen"
            ),
        ));
    }
}

fn is_region(r: &str) -> bool {
    // partition-area-number, e.g. us-east-1, ap-southeast-2, us-gov-west-1, eu-central-2
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
        && parts.last().is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()))
}

fn is_aws_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .is_some_and(|rest| (8..=17).contains(&rest.len()) && rest.chars().all(|c| c.is_ascii_hexdigit()))
}

fn validate_tags(tags: &BTreeMap<String, String>, errs: &mut Vec<FieldError>) {
    // EC2 allows 50 tags per resource; eksodus adds its own ownership tags and the Kubernetes role tags.
    let budget = 50 - tags::RESERVED_TAG_BUDGET;
    if tags.len() > budget {
        errs.push(FieldError::new(
            "tags",
            format!("at most {budget} user tags fit next to eksodus's own, got {}", tags.len()),
        ));
    }
    for (k, v) in tags {
        let path = format!("tags.{k}");
        if k.is_empty() || k.len() > 128 {
            errs.push(FieldError::new(path.clone(), "tag keys are 1 to 128 characters"));
        }
        if v.len() > 256 {
            errs.push(FieldError::new(path.clone(), "tag values are at most 256 characters"));
        }
        if k.starts_with(tags::PREFIX) || k.to_ascii_lowercase().starts_with("aws:") {
            errs.push(FieldError::new(path, format!("the prefixes `{}` and `aws:` are reserved", tags::PREFIX)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "
name: demo
region: us-east-1
network:
  cidr: 10.0.0.0/16
  azs: 3
";

    #[test]
    fn good_spec_has_defaults_and_validates() {
        let s = EnvironmentSpec::from_yaml(GOOD).unwrap();
        assert_eq!(s.network.nat, NatMode::Single);
        assert_eq!(s.az_names(), ["us-east-1a", "us-east-1b", "us-east-1c"]);
        assert_eq!(s.validate(), vec![]);
    }

    #[test]
    fn parse_error_names_the_path() {
        let err = EnvironmentSpec::from_yaml(
            "name: x\nregion: us-east-1\nnetwork:\n  cidr: 10.0.0.0/16\n  azs: 2\n  nat: sometimes\n",
        )
        .unwrap_err();
        match err {
            Error::Parse { path, message } => {
                assert_eq!(path, "network.nat");
                assert!(message.contains("sometimes"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
        let err = EnvironmentSpec::from_yaml("name: x\nregion: [").unwrap_err();
        assert!(matches!(err, Error::Parse { .. }));
        let err = EnvironmentSpec::from_yaml("name: x\nregion: r\nnetwork: {azs: 2, cidrr: 10.0.0.0/16}").unwrap_err();
        assert!(err.to_string().contains("cidrr"), "{err}");
    }

    fn errors_of(yaml: &str) -> Vec<String> {
        EnvironmentSpec::from_yaml(yaml).unwrap().validate().into_iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn every_error_is_reported_at_once_with_its_path() {
        let errs = errors_of(
            "
name: Bad_Name
region: nowhere
tags: {'eksodus.io/x': y}
network:
  cidr: 10.0.0.1/25
  azs: [us-east-1a]
  nat: per-az
  subnets: {public: {enabled: false}, pods: {prefix: 20}}
  cni: {mode: prefix-delegation, version: '1.8.4'}
",
        );
        let paths: Vec<&str> = errs.iter().map(|e| e.split(':').next().unwrap()).collect();
        for p in [
            "name",
            "region",
            "tags.eksodus.io/x",
            "network.cidr",
            "network.azs",
            "network.azs[0]",
            "network.nat",
            "network.subnets.pods.prefix",
            "network.cni.mode",
        ] {
            assert!(paths.contains(&p), "missing {p} in {errs:#?}");
        }
    }

    #[test]
    fn secondary_cidr_overlap_is_caught() {
        let errs = errors_of(
            "
name: demo
region: us-east-1
network:
  cidr: 10.0.0.0/16
  azs: 2
  cni: {custom_networking: {secondary_cidr: 10.0.128.0/17}}
",
        );
        assert!(errs
            .iter()
            .any(|e| e.starts_with("network.cni.custom_networking.secondary_cidr") && e.contains("overlaps")));
    }

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("1.19.2"), Some((1, 19)));
        assert_eq!(parse_version("v1.9.0-eksbuild.1"), Some((1, 9)));
        assert_eq!(parse_version("x"), None);
    }
}
