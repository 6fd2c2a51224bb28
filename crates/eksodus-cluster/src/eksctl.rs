//! Import of eksctl `ClusterConfig` files (`eksctl.io/v1alpha5`) into an eksodus spec. Pure.
//!
//! Every field of the document is either mapped or reported by its path with the reason; nothing is
//! silently dropped. Fields that only tune eksctl's own behaviour and that eksodus always honours
//! (`noDuplicateARNs`) are accepted as such.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

type Mapping = serde_json::Map<String, Value>;

use eksodus_core::spec::{
    AccessEntrySpec, AccessSpec, AddonSpec, AuthenticationMode, AzSpec, ClusterSpec, EncryptionSpec, EndpointSpec,
    EnvironmentSpec, ExistingNetwork, HostnameType, IpFamily, MappingSpec, NatMode, NetworkSpec, NodegroupSpec,
    PolicyAssociationSpec, ServiceAccountRole, TaintSpec, VpcEndpointService, WellKnownPolicy, LOG_TYPES,
};

/// A field eksodus cannot take over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unsupported {
    /// Path in the eksctl document (`managedNodeGroups[0].ssh`).
    pub path: String,
    /// Why.
    pub reason: String,
}

/// A field carried over with a change the user should know about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    /// Path in the eksctl document.
    pub path: String,
    /// What was changed, and why.
    pub message: String,
}

/// What an import produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Imported {
    /// The spec.
    pub spec: EnvironmentSpec,
    /// Everything not carried over; an import with any is not to be applied as is.
    pub unsupported: Vec<Unsupported>,
    /// Fields carried over with a change (an old Kubernetes version raised to the oldest EKS offers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Note>,
}

/// EKS's AMI type of an eksctl Windows `amiFamily` (`WindowsServer2022CoreContainer`, ...).
fn windows_ami_type(family: &str) -> Option<&'static str> {
    Some(match family {
        "WindowsServer2019CoreContainer" => "WINDOWS_CORE_2019_x86_64",
        "WindowsServer2019FullContainer" => "WINDOWS_FULL_2019_x86_64",
        "WindowsServer2022CoreContainer" => "WINDOWS_CORE_2022_x86_64",
        "WindowsServer2022FullContainer" => "WINDOWS_FULL_2022_x86_64",
        "WindowsServer2025CoreContainer" => "WINDOWS_CORE_2025_x86_64",
        "WindowsServer2025FullContainer" => "WINDOWS_FULL_2025_x86_64",
        _ => return None,
    })
}

/// The minor number of a `1.N` version.
fn minor_of(v: &str) -> Option<u32> {
    v.strip_prefix("1.")?.parse().ok()
}

/// Whether a YAML document looks like an eksctl ClusterConfig.
pub fn is_eksctl(text: &str) -> bool {
    serde_saphyr::from_str::<Value>(text).ok().is_some_and(|v| {
        v.get("kind").and_then(Value::as_str) == Some("ClusterConfig")
            && v.get("apiVersion").and_then(Value::as_str).is_some_and(|a| a.starts_with("eksctl.io/"))
    })
}

/// Reads mapping keys and remembers which ones were used, so the rest can be reported.
struct Reader<'a> {
    path: String,
    map: &'a Mapping,
    used: Vec<&'static str>,
}

impl<'a> Reader<'a> {
    fn new(path: impl Into<String>, v: &'a Value) -> Option<Self> {
        v.as_object().map(|map| Reader { path: path.into(), map, used: vec![] })
    }
    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.used.push(key);
        self.map.get(key)
    }
    fn str(&mut self, key: &'static str) -> Option<String> {
        self.get(key).and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        })
    }
    fn u32(&mut self, key: &'static str) -> Option<u32> {
        self.get(key).and_then(Value::as_u64).map(|n| n as u32)
    }
    fn bool(&mut self, key: &'static str) -> Option<bool> {
        self.get(key).and_then(Value::as_bool)
    }
    fn strings(&mut self, key: &'static str) -> Vec<String> {
        self.get(key)
            .and_then(Value::as_array)
            .map(|s| s.iter().filter_map(|v| v.as_str().map(String::from)).collect())
            .unwrap_or_default()
    }
    /// A mapping of strings (tags, labels, annotations); values that are not strings are dropped.
    fn str_map(&mut self, key: &'static str) -> BTreeMap<String, String> {
        self.get(key)
            .and_then(Value::as_object)
            .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
            .unwrap_or_default()
    }
    fn at(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }
    /// Reports every key not read, with `reason`.
    fn rest(self, out: &mut Vec<Unsupported>, reason: impl Fn(&str) -> String) {
        for k in self.map.keys() {
            let k = k.as_str();
            if !self.used.contains(&k) {
                out.push(Unsupported { path: self.at(k), reason: reason(k) });
            }
        }
    }
}

/// One of eksctl's `nodeRepairConfigOverrides`, with a note when its action is one of the words eksctl's own
/// example uses (`Terminate`, `Restart`) for EKS's `Replace` and `Reboot`, which EKS itself would refuse.
fn repair_override(o: &Value) -> Result<(eksodus_core::spec::NodeRepairOverride, Option<String>), String> {
    let text = |k: &str| o.get(k).and_then(Value::as_str).map(String::from);
    let (Some(condition), Some(reason), Some(action)) =
        (text("nodeMonitoringCondition"), text("nodeUnhealthyReason"), text("repairAction"))
    else {
        return Err("an override needs nodeMonitoringCondition, nodeUnhealthyReason and repairAction".into());
    };
    if let Some(k) = o.as_object().into_iter().flat_map(|m| m.keys()).find(|k| {
        !matches!(
            k.as_str(),
            "nodeMonitoringCondition" | "nodeUnhealthyReason" | "repairAction" | "minRepairWaitTimeMins"
        )
    }) {
        return Err(not_mapped(k));
    }
    let wait_minutes = match o.get("minRepairWaitTimeMins") {
        None => 0,
        Some(v) => {
            v.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or("minRepairWaitTimeMins must be whole minutes")?
        }
    };
    let (action, note) = match action.as_str() {
        "Terminate" => (
            "Replace".to_string(),
            Some("EKS names this action Replace (the node is terminated and replaced)".to_string()),
        ),
        "Restart" => ("Reboot".to_string(), Some("EKS names this action Reboot".to_string())),
        a if eksodus_core::spec::REPAIR_ACTIONS.contains(&a) => (action, None),
        a => {
            return Err(format!(
                "`{a}` is not one of EKS's repair actions ({})",
                eksodus_core::spec::REPAIR_ACTIONS.join(", ")
            ))
        }
    };
    Ok((eksodus_core::spec::NodeRepairOverride { condition, reason, wait_minutes, action }, note))
}

/// Why clusters and nodes on AWS Outposts are refused (eksctl's Outposts guide: EKS managed nodegroups are not
/// supported on Outposts; the OutpostConfigRequest API reference for local clusters).
const OUTPOSTS: &str = "EKS runs no managed nodegroups on an Outpost (only self-managed nodes), and eksodus makes managed nodegroups only; a local cluster's control plane also runs on the rack's own instances (outpostConfig), which the local emulator has none of to show";

fn not_mapped(k: &str) -> String {
    format!("eksodus has no equivalent of `{k}`")
}

/// eksctl's `wellKnownPolicies` keys (service accounts and addons) as eksodus's sets.
fn well_known(name: &str) -> Option<WellKnownPolicy> {
    use WellKnownPolicy::*;
    Some(match name {
        "imageBuilder" => ImageBuilder,
        "autoScaler" => AutoScaler,
        "awsLoadBalancerController" => AwsLoadBalancerController,
        "externalDNS" => ExternalDns,
        "certManager" => CertManager,
        "ebsCSIController" => EbsCsiController,
        "efsCSIController" => EfsCsiController,
        _ => return None,
    })
}

/// eksctl's `withAddonPolicies` keys (nodegroups) as eksodus's sets; `albIngress` is the controller's old name.
fn addon_policy(name: &str) -> Option<WellKnownPolicy> {
    use WellKnownPolicy::*;
    Some(match name {
        "autoScaler" => AutoScaler,
        "imageBuilder" => ImageBuilder,
        "externalDNS" => ExternalDns,
        "certManager" => CertManager,
        "appMesh" => AppMesh,
        "appMeshPreview" => AppMeshPreview,
        "ebs" => EbsCsiController,
        "fsx" => Fsx,
        "efs" => Efs,
        "awsLoadBalancerController" | "albIngress" => AwsLoadBalancerController,
        "xRay" => XRay,
        "cloudWatch" => CloudWatch,
        _ => return None,
    })
}

/// Reads a `{key: bool}` mapping of eksctl policy switches at `path`: the sets switched on, and every key that
/// is not one (or not a boolean) reported.
fn policy_switches(
    path: &str,
    v: &Value,
    known: fn(&str) -> Option<WellKnownPolicy>,
    un: &mut Vec<Unsupported>,
) -> Vec<WellKnownPolicy> {
    let mut out = Vec::new();
    let Some(m) = v.as_object() else {
        un.push(Unsupported { path: path.into(), reason: "must be a mapping of names to true or false".into() });
        return out;
    };
    for (k, v) in m {
        match (v.as_bool(), known(k)) {
            (Some(true), Some(w)) => {
                if !out.contains(&w) {
                    out.push(w)
                }
            }
            (Some(false), Some(_)) => {}
            (None, Some(_)) => {
                un.push(Unsupported { path: format!("{path}.{k}"), reason: "must be true or false".into() })
            }
            (_, None) => un.push(Unsupported {
                path: format!("{path}.{k}"),
                reason: format!("`{k}` is not a permission set eksodus knows"),
            }),
        }
    }
    out.sort();
    out
}

/// eksctl's `instanceSelector` (`vCPUs`, `memory` in GiB unless a unit says otherwise, `gpus`,
/// `cpuArchitecture`, `allow`, `deny`) as eksodus's, each exact number an exact range as eksctl filters.
fn eksctl_selector(
    path: &str,
    v: &Value,
    un: &mut Vec<Unsupported>,
) -> Option<eksodus_core::spec::InstanceSelectorSpec> {
    use eksodus_core::spec::{CountRange, InstanceSelectorSpec};
    let Some(m) = v.as_object() else {
        un.push(Unsupported { path: path.into(), reason: "a mapping".into() });
        return None;
    };
    // eksctl without `gpus` does not filter on them; eksodus's default leaves GPU types out, so a selector
    // that is to choose some says so
    let mut sel = InstanceSelectorSpec::default();
    for (k, v) in m {
        let at = format!("{path}.{k}");
        let count = v.as_u64().and_then(|n| u32::try_from(n).ok());
        match (k.as_str(), count) {
            ("vCPUs", Some(0)) => {} // eksctl's zero value: not asked
            ("vCPUs", Some(n)) => sel.vcpus = CountRange::exactly(n),
            ("gpus", Some(n)) => sel.gpus = CountRange::exactly(n),
            ("memory", _) => match eksctl_memory_mib(v) {
                Some(0) => {}
                Some(mib) => sel.memory_mib = CountRange::exactly(mib),
                None => un.push(Unsupported {
                    path: at,
                    reason: "a size such as \"4\" (GiB), \"4GiB\" or \"512MiB\"".into(),
                }),
            },
            ("cpuArchitecture", _) => match v.as_str() {
                Some("x86_64" | "amd64") | None => {}
                Some("arm64" | "aarch64") => sel.architecture = "arm64".into(),
                Some(other) => un.push(Unsupported { path: at, reason: format!("`{other}` is not x86_64 or arm64") }),
            },
            ("allow" | "deny", _) if v.is_string() => {
                let re = v.as_str().map(String::from);
                if k == "allow" {
                    sel.allow = re;
                } else {
                    sel.deny = re;
                }
            }
            (other, _) => un.push(Unsupported { path: at, reason: not_mapped(other) }),
        }
    }
    Some(sel)
}

/// eksctl's memory size in MiB: a number of GiB, or a number with a unit (GiB, GB, G, MiB, MB, M; any case).
fn eksctl_memory_mib(v: &Value) -> Option<u32> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return None,
    };
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: f64 = num.parse().ok()?;
    let per = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "gib" | "gi" | "gb" | "g" => 1024.0,
        "mib" | "mi" | "mb" | "m" => 1.0,
        _ => return None,
    };
    let mib = (n * per).round();
    (mib.is_finite() && (0.0..=f64::from(u32::MAX)).contains(&mib)).then_some(mib as u32)
}

fn eksctl_effect(e: &str) -> String {
    match e {
        "NoSchedule" => "NO_SCHEDULE".into(),
        "NoExecute" => "NO_EXECUTE".into(),
        "PreferNoSchedule" => "PREFER_NO_SCHEDULE".into(),
        other => other.to_string(),
    }
}

/// Imports an eksctl ClusterConfig document.
pub fn import(text: &str) -> Result<Imported, String> {
    let doc: Value = serde_saphyr::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    let mut un = Vec::new();
    let mut top = Reader::new("", &doc).ok_or("the document is not a mapping")?;
    if top.str("kind").as_deref() != Some("ClusterConfig")
        || !top.str("apiVersion").is_some_and(|a| a.starts_with("eksctl.io/"))
    {
        return Err("not an eksctl ClusterConfig (kind ClusterConfig, apiVersion eksctl.io/...)".into());
    }

    let meta_v = top.get("metadata").ok_or("metadata is required")?;
    let mut meta = Reader::new("metadata", meta_v).ok_or("metadata must be a mapping")?;
    let name = meta.str("name").ok_or("metadata.name is required")?;
    let region = meta.str("region").ok_or("metadata.region is required")?;
    let offered = eksodus_core::spec::KUBERNETES_VERSIONS;
    let mut notes = Vec::new();
    // (path, policy ARN) of each permissions boundary the file gives, and the roles it leaves without one
    let mut boundaries: Vec<(String, String)> = Vec::new();
    let mut unbounded: Vec<String> = Vec::new();
    let mut version = meta.str("version").unwrap_or_else(|| offered[offered.len() - 1].to_string());
    let oldest = offered[0];
    if minor_of(&version).zip(minor_of(oldest)).is_some_and(|(v, o)| v < o) {
        // an old example, or a config kept since an old cluster: the new cluster starts at the oldest version
        // EKS offers (what an in-place upgrade of the old one would have had to reach anyway)
        notes.push(Note {
            path: "metadata.version".into(),
            message: format!(
                "{version} is older than any version EKS offers; the cluster is made at {oldest}, the oldest offered (check the workloads' APIs against it)"
            ),
        });
        version = oldest.to_string();
    } else if !offered.contains(&version.as_str()) {
        un.push(Unsupported {
            path: "metadata.version".into(),
            reason: format!(
                "{version} is not a version EKS offers; pick one of {}",
                eksodus_core::spec::KUBERNETES_VERSIONS.join(", ")
            ),
        });
    }
    let tags = meta.str_map("tags");
    meta.rest(&mut un, not_mapped);

    // network
    let azs = top.strings("availabilityZones");
    let mut network = NetworkSpec {
        cidr: Some("192.168.0.0/16".parse().expect("literal CIDR")),
        azs: if azs.is_empty() { AzSpec::Count(3) } else { AzSpec::Names(azs) },
        nat: NatMode::Single,
        subnets: Default::default(),
        demand: None,
        cni: Default::default(),
        existing: None,
        ipv6: false,
        hostname_type: HostnameType::IpName,
        vpc_endpoints: vec![],
        local_zones: top.strings("localZones"),
    };
    let mut endpoint = EndpointSpec { public: true, private: false, public_cidrs: vec![] };
    let (mut control_plane_security_groups, mut control_plane_subnets) = (Vec::new(), Vec::new());
    // the adopted subnets by the key of their `vpc.subnets` entry: an ID, or a block looked up when planning
    let mut subnet_names: BTreeMap<String, String> = BTreeMap::new();
    if let Some(v) = top.get("vpc") {
        let mut vpc = Reader::new("vpc", v).ok_or("vpc must be a mapping")?;
        if let Some(c) = vpc.str("cidr") {
            match c.parse() {
                Ok(c) => network.cidr = Some(c),
                Err(_) => {
                    un.push(Unsupported { path: "vpc.cidr".into(), reason: format!("`{c}` is not an IPv4 CIDR") })
                }
            }
        }
        if let Some(n) = vpc.get("nat") {
            let mut nat = Reader::new("vpc.nat", n).ok_or("vpc.nat must be a mapping")?;
            network.nat = match nat.str("gateway").as_deref() {
                Some("HighlyAvailable") => NatMode::PerAz,
                Some("Disable") => NatMode::None,
                _ => NatMode::Single,
            };
            nat.rest(&mut un, not_mapped);
        }
        let vpc_id = vpc.str("id");
        let mut public_named = false;
        if let Some(s) = vpc.get("subnets") {
            let mut subnets = Reader::new("vpc.subnets", s).ok_or("vpc.subnets must be a mapping")?;
            let (mut ids, mut blocks) = (Vec::new(), Vec::new());
            let mut zones = Vec::new();
            public_named = subnets.get("public").and_then(Value::as_object).is_some_and(|m| !m.is_empty());
            for tier in ["private", "public"] {
                let key: &'static str = if tier == "private" { "private" } else { "public" };
                if let Some(m) = subnets.get(key).and_then(Value::as_object) {
                    // each entry's key is its zone or a name of the user's that nodegroups' `subnets` use; it
                    // gives an ID, or only a block that eksodus looks up in the VPC (as eksctl does)
                    for (key, sv) in m {
                        let key = key.as_str().to_string();
                        let mut sr = Reader::new(format!("vpc.subnets.{tier}.{key}"), sv)
                            .ok_or("subnet entries must be mappings")?;
                        let cidr = sr.str("cidr");
                        let az = sr.str("az");
                        match (sr.str("id"), cidr.as_deref().map(str::parse::<ipnet::Ipv4Net>)) {
                            (Some(id), _) => {
                                subnet_names.insert(key.clone(), id.clone());
                                ids.push(id);
                            }
                            (None, Some(Ok(block))) => {
                                subnet_names.insert(key.clone(), block.to_string());
                                blocks.push(block);
                            }
                            (None, Some(Err(_))) => un.push(Unsupported {
                                path: sr.at("cidr"),
                                reason: format!("`{}` is not an IPv4 CIDR block", cidr.unwrap_or_default()),
                            }),
                            (None, None) => un.push(Unsupported {
                                path: sr.at("id"),
                                reason: "eksodus adopts a subnet by its ID or its CIDR block".into(),
                            }),
                        }
                        sr.rest(&mut un, not_mapped);
                        // the zone: given, or the key when it is one of the region's
                        let zone = az.or_else(|| key.starts_with(region.as_str()).then(|| key.clone()));
                        if let Some(z) = zone.filter(|z| !zones.contains(z)) {
                            zones.push(z);
                        }
                    }
                }
            }
            subnets.rest(&mut un, not_mapped);
            match vpc_id {
                Some(id) => {
                    network.existing = Some(ExistingNetwork { vpc_id: id, subnet_ids: ids, subnet_cidrs: blocks });
                    network.cidr = None;
                    network.nat = NatMode::None;
                    // zones known from the entries; named entries alone leave the default (the subnets decide)
                    if !zones.is_empty() {
                        network.azs = AzSpec::Names(zones);
                    }
                }
                None => {
                    un.push(Unsupported { path: "vpc.subnets".into(), reason: "adopting subnets needs vpc.id".into() })
                }
            }
        } else if vpc_id.is_some() {
            un.push(Unsupported {
                path: "vpc.id".into(),
                reason: "adopting a VPC needs its subnets (vpc.subnets)".into(),
            });
        }
        // dual-stack and hostnames: what eksctl sets on the subnets it makes; an adopted VPC keeps its own
        if vpc.bool("autoAllocateIPv6") == Some(true) {
            if network.existing.is_some() {
                un.push(Unsupported {
                    path: "vpc.autoAllocateIPv6".into(),
                    reason: "eksodus never changes a VPC it adopts; give the subnets their IPv6 blocks yourself".into(),
                });
            } else {
                network.ipv6 = true;
            }
        }
        if let Some(h) = vpc.str("hostnameType") {
            match h.as_str() {
                "ip-name" => {}
                "resource-name" if network.existing.is_none() => network.hostname_type = HostnameType::ResourceName,
                "resource-name" => un.push(Unsupported {
                    path: "vpc.hostnameType".into(),
                    reason: "eksodus never changes subnets it adopts; set their hostname type yourself".into(),
                }),
                other => un.push(Unsupported {
                    path: "vpc.hostnameType".into(),
                    reason: format!("`{other}` is not a hostname type; EC2 has ip-name and resource-name"),
                }),
            }
        }
        // the control plane's network interfaces: eksodus puts them in the private subnets whenever there are
        // any, which is what eksctl's switch asks; an adopted VPC's control plane takes every subnet given
        if vpc.bool("controlPlaneOnPrivateSubnets") == Some(true) {
            let reason = if network.existing.is_some() && public_named {
                Some("the control plane of an adopted VPC takes every subnet given; give only the private ones")
            } else if network.existing.is_none() && !network.subnets.private.enabled {
                Some("the network has no private subnets for the control plane")
            } else {
                None
            };
            if let Some(reason) = reason {
                un.push(Unsupported { path: "vpc.controlPlaneOnPrivateSubnets".into(), reason: reason.into() });
            }
        }
        if let Some(e) = vpc.get("clusterEndpoints") {
            let mut er = Reader::new("vpc.clusterEndpoints", e).ok_or("vpc.clusterEndpoints must be a mapping")?;
            endpoint.public = er.bool("publicAccess").unwrap_or(true);
            endpoint.private = er.bool("privateAccess").unwrap_or(false);
            er.rest(&mut un, not_mapped);
        }
        for (i, c) in vpc.strings("publicAccessCIDRs").iter().enumerate() {
            match c.parse() {
                Ok(c) => endpoint.public_cidrs.push(c),
                Err(_) => un.push(Unsupported {
                    path: format!("vpc.publicAccessCIDRs[{i}]"),
                    reason: format!("`{c}` is not an IPv4 CIDR"),
                }),
            }
        }
        // the control plane's own groups and, in an adopted VPC, its own subnets
        control_plane_security_groups = vpc.strings("controlPlaneSecurityGroupIDs");
        let cp_subnets = vpc.strings("controlPlaneSubnetIDs");
        if !cp_subnets.is_empty() {
            if network.existing.is_some() {
                control_plane_subnets = cp_subnets;
            } else {
                un.push(Unsupported {
                    path: "vpc.controlPlaneSubnetIDs".into(),
                    reason: "subnets of yours exist only in a VPC of yours (vpc.id); in the VPC eksodus makes, the control plane is in its private subnets".into(),
                });
            }
        }
        vpc.rest(&mut un, |k| match k {
            "sharedNodeSecurityGroup" | "manageSharedNodeSecurityGroupRules" | "securityGroup" => {
                "eksodus makes the cluster's own security group; a shared one of yours is not supported".into()
            }
            other => not_mapped(other),
        });
    }

    // access
    let mut access = AccessSpec::default();
    if let Some(v) = top.get("iam") {
        let mut iam = Reader::new("iam", v).ok_or("iam must be a mapping")?;
        // honoured as is: eksodus creates the cluster's OIDC provider as soon as the cluster has an issuer
        let _ = iam.bool("withOIDC");
        if let Some(b) = iam.str("serviceRolePermissionsBoundary") {
            boundaries.push(("iam.serviceRolePermissionsBoundary".into(), b));
        }
        // the role of Fargate pods: eksodus's, when a profile names none
        if let Some(b) = iam.str("fargatePodExecutionRolePermissionsBoundary") {
            let own_role = top
                .get("fargateProfiles")
                .and_then(Value::as_array)
                .is_some_and(|ps| ps.iter().any(|p| p.get("podExecutionRoleARN").is_none()));
            if own_role {
                boundaries.push(("iam.fargatePodExecutionRolePermissionsBoundary".into(), b));
            } else {
                notes.push(Note {
                    path: "iam.fargatePodExecutionRolePermissionsBoundary".into(),
                    message: "no Fargate profile runs as a pod execution role eksodus makes, so there is none to bound"
                        .into(),
                });
            }
        }
        if let Some(sas) = iam.get("serviceAccounts").and_then(Value::as_array) {
            for (i, sa) in sas.iter().enumerate() {
                let mut r =
                    Reader::new(format!("iam.serviceAccounts[{i}]"), sa).ok_or("service accounts must be mappings")?;
                let mut m = Reader::new(
                    format!("iam.serviceAccounts[{i}].metadata"),
                    r.get("metadata").unwrap_or(&Value::Null),
                );
                // eksctl's namespace when none is given
                let (n, ns) = match m.as_mut() {
                    Some(m) => (m.str("name"), Some(m.str("namespace").unwrap_or_else(|| "default".into()))),
                    None => (None, None),
                };
                if let Some(b) = r.str("permissionsBoundary") {
                    boundaries.push((format!("iam.serviceAccounts[{i}].permissionsBoundary"), b));
                } else if sa.get("attachRoleARN").is_none() {
                    // a role of the user's is not one eksodus makes, so no boundary of eksodus's reaches it
                    unbounded.push(format!("iam.serviceAccounts[{i}]"));
                }
                let (labels, annotations) = match m.as_mut() {
                    Some(m) => (m.str_map("labels"), m.str_map("annotations")),
                    None => Default::default(),
                };
                if let Some(m) = m {
                    m.rest(&mut un, not_mapped);
                }
                // eksctl makes the Kubernetes service account too, unless the role is all it is asked for
                let create_service_account = r.bool("roleOnly") != Some(true);
                let role_arn = r.str("attachRoleARN");
                let policies = r.strings("attachPolicyARNs");
                let well_known = match r.get("wellKnownPolicies") {
                    Some(w) => {
                        policy_switches(&format!("iam.serviceAccounts[{i}].wellKnownPolicies"), w, well_known, &mut un)
                    }
                    None => vec![],
                };
                // an inline document beside the ARNs: the role's own policy
                let policy_document = r.get("attachPolicy").cloned();
                if let (Some(n), Some(ns)) = (n, ns) {
                    access.service_accounts.push(ServiceAccountRole {
                        namespace: ns,
                        name: n,
                        policies,
                        well_known,
                        policy_document,
                        role_arn,
                        create_service_account,
                        labels,
                        annotations,
                        ..Default::default()
                    });
                } else {
                    un.push(Unsupported {
                        path: format!("iam.serviceAccounts[{i}].metadata"),
                        reason: "a service account needs its name".into(),
                    });
                }
                r.rest(&mut un, not_mapped);
            }
        }
        // EKS Pod Identity: a role eksodus makes for the service account, bound by an association
        if let Some(pias) = iam.get("podIdentityAssociations").and_then(Value::as_array) {
            for (i, pia) in pias.iter().enumerate() {
                let at = format!("iam.podIdentityAssociations[{i}]");
                let mut r = Reader::new(at.clone(), pia).ok_or("pod identity associations must be mappings")?;
                let ns = r.str("namespace").unwrap_or_else(|| "default".into());
                let Some(name) = r.str("serviceAccountName") else {
                    un.push(Unsupported { path: format!("{at}.serviceAccountName"), reason: "required".into() });
                    continue;
                };
                if let Some(role) = r.str("roleName") {
                    notes.push(Note {
                        path: format!("{at}.roleName"),
                        message: format!(
                            "eksodus names the roles it makes itself (`<environment>-pod-{ns}-{name}`), not `{role}`"
                        ),
                    });
                }
                if let Some(b) = r.str("permissionsBoundaryARN") {
                    boundaries.push((format!("{at}.permissionsBoundaryARN"), b));
                } else if pia.get("roleARN").is_none() {
                    unbounded.push(at.clone());
                }
                let policies = r.strings("permissionPolicyARNs");
                let well_known = match r.get("wellKnownPolicies") {
                    Some(w) => policy_switches(&format!("{at}.wellKnownPolicies"), w, well_known, &mut un),
                    None => vec![],
                };
                let policy_document = r.get("permissionPolicy").cloned();
                // eksctl's default (false) leaves the service account to the workload
                let create_service_account = r.bool("createServiceAccount") == Some(true);
                access.pod_identities.push(ServiceAccountRole {
                    namespace: ns,
                    name,
                    policies,
                    well_known,
                    policy_document,
                    role_arn: r.str("roleARN"),
                    create_service_account,
                    target_role_arn: r.str("targetRoleARN"),
                    disable_session_tags: r.bool("disableSessionTags") == Some(true),
                    ..Default::default()
                });
                r.rest(&mut un, not_mapped);
            }
        }
        iam.rest(&mut un, not_mapped);
    }
    if let Some(ms) = top.get("iamIdentityMappings").and_then(Value::as_array) {
        for (i, m) in ms.iter().enumerate() {
            let mut r =
                Reader::new(format!("iamIdentityMappings[{i}]"), m).ok_or("identity mappings must be mappings")?;
            let _ = r.get("noDuplicateARNs"); // eksodus always refuses duplicate ARNs
            match r.str("arn") {
                Some(arn) => {
                    let username =
                        r.str("username").unwrap_or_else(|| arn.rsplit('/').next().unwrap_or("user").to_string());
                    let groups = r.strings("groups");
                    let (rolearn, userarn) = if arn.contains(":role/") { (Some(arn), None) } else { (None, Some(arn)) };
                    access.mappings.push(MappingSpec { rolearn, userarn, username, groups });
                }
                None if r.map.contains_key("serviceName") => {
                    let service = r.str("serviceName").unwrap_or_default();
                    match r.str("namespace") {
                        Some(namespace) if eksodus_core::spec::SERVICE_ACCESS.iter().any(|(n, _, _)| *n == service) => {
                            access.service_access.push(eksodus_core::spec::ServiceAccessSpec { service, namespace })
                        }
                        Some(_) => un.push(Unsupported {
                            path: r.at("serviceName"),
                            reason: format!("`{service}`: eksodus knows the service access of emr-containers only"),
                        }),
                        None => un.push(Unsupported {
                            path: r.at("namespace"),
                            reason: "service access is granted in a namespace: name it".into(),
                        }),
                    }
                }
                None if r.map.contains_key("account") => {
                    let acct = match r.get("account") {
                        Some(Value::String(a)) => a.clone(),
                        Some(Value::Number(n)) => format!("{n:0>12}"),
                        _ => String::new(),
                    };
                    access.accounts.push(acct);
                }
                None => {
                    un.push(Unsupported {
                        path: format!("iamIdentityMappings[{i}]"),
                        reason: "a mapping needs an arn, an account or a serviceName".into(),
                    });
                    continue;
                }
            }
            r.rest(&mut un, not_mapped);
        }
    }
    let mut bootstrap_admin = true;
    if let Some(v) = top.get("accessConfig") {
        let mut ac = Reader::new("accessConfig", v).ok_or("accessConfig must be a mapping")?;
        if let Some(b) = ac.bool("bootstrapClusterCreatorAdminPermissions") {
            bootstrap_admin = b;
        }
        if let Some(m) = ac.str("authenticationMode") {
            match AuthenticationMode::parse(&m) {
                Some(m) => access.authentication_mode = Some(m),
                None => un.push(Unsupported {
                    path: "accessConfig.authenticationMode".into(),
                    reason: format!("`{m}` is not CONFIG_MAP, API_AND_CONFIG_MAP or API"),
                }),
            }
        }
        if let Some(es) = ac.get("accessEntries").and_then(Value::as_array) {
            for (i, e) in es.iter().enumerate() {
                let mut r = Reader::new(format!("accessConfig.accessEntries[{i}]"), e)
                    .ok_or("access entries must be mappings")?;
                let Some(principal_arn) = r.str("principalARN") else {
                    un.push(Unsupported { path: r.at("principalARN"), reason: "required".into() });
                    continue;
                };
                let mut policies = Vec::new();
                if let Some(ps) = r.get("accessPolicies").and_then(Value::as_array) {
                    for (j, p) in ps.iter().enumerate() {
                        let mut pr = Reader::new(format!("accessConfig.accessEntries[{i}].accessPolicies[{j}]"), p)
                            .ok_or("access policies must be mappings")?;
                        let policy = pr.str("policyARN").unwrap_or_default();
                        let mut namespaces = vec![];
                        if let Some(s) = pr.get("accessScope") {
                            let mut sr = Reader::new(format!("{}.accessScope", pr.path), s)
                                .ok_or("accessScope must be a mapping")?;
                            let _ = sr.str("type");
                            namespaces = sr.strings("namespaces");
                            sr.rest(&mut un, not_mapped);
                        }
                        policies.push(PolicyAssociationSpec { policy, namespaces });
                        pr.rest(&mut un, not_mapped);
                    }
                }
                access.entries.push(AccessEntrySpec {
                    principal_arn,
                    entry_type: r.str("type").unwrap_or_else(|| "STANDARD".into()),
                    kubernetes_groups: r.strings("kubernetesGroups"),
                    username: r.str("username"),
                    policies,
                });
                r.rest(&mut un, not_mapped);
            }
        }
        ac.rest(&mut un, not_mapped);
    }

    // nodegroups: managed, and self-managed ones carried over as managed where their fields allow
    let mut nodegroups = Vec::new();
    for (list, managed) in [("managedNodeGroups", true), ("nodeGroups", false)] {
        let Some(ngs) = top.get(if managed { "managedNodeGroups" } else { "nodeGroups" }).and_then(Value::as_array)
        else {
            continue;
        };
        for (i, ng) in ngs.iter().enumerate() {
            let mut r = Reader::new(format!("{list}[{i}]"), ng).ok_or("nodegroups must be mappings")?;
            let name = r.str("name").unwrap_or_else(|| format!("ng-{i}"));
            let mut types = r.strings("instanceTypes");
            if let Some(t) = r.str("instanceType") {
                types.insert(0, t);
            }
            // instanceSelector: eksctl resolves it once, as eksodus does when it makes the nodegroup
            let mut selector = match r.get("instanceSelector").cloned() {
                Some(v) => match eksctl_selector(&format!("{list}[{i}].instanceSelector"), &v, &mut un) {
                    Some(_) if !types.is_empty() => {
                        notes.push(Note {
                            path: format!("{list}[{i}].instanceSelector"),
                            message: format!(
                                "eksctl checks the selector chooses exactly the instance types given; eksodus takes the types ({})",
                                types.join(", ")
                            ),
                        });
                        None
                    }
                    s => s,
                },
                None => None,
            };
            if types.is_empty() && selector.is_none() {
                types.push("m5.large".into()); // eksctl's default
            }
            let desired = r.u32("desiredCapacity").unwrap_or(2);
            let min = r.u32("minSize").unwrap_or(desired.min(1));
            let max = r.u32("maxSize").unwrap_or(desired.max(min).max(1));
            let labels = r.str_map("labels");
            let mut taints = Vec::new();
            match r.get("taints") {
                Some(Value::Array(ts)) => {
                    for t in ts {
                        taints.push(TaintSpec {
                            key: t.get("key").and_then(Value::as_str).unwrap_or("").into(),
                            value: t.get("value").and_then(Value::as_str).map(String::from),
                            effect: eksctl_effect(t.get("effect").and_then(Value::as_str).unwrap_or("NoSchedule")),
                        });
                    }
                }
                Some(Value::Object(m)) => {
                    // the older form: key: "value:Effect"
                    for (k, v) in m {
                        let (value, effect) = v.as_str().unwrap_or("").split_once(':').unwrap_or(("", "NoSchedule"));
                        taints.push(TaintSpec {
                            key: k.as_str().into(),
                            value: Some(value.into()).filter(|v: &String| !v.is_empty()),
                            effect: eksctl_effect(effect),
                        });
                    }
                }
                _ => {}
            }
            let mut spot = r.bool("spot").unwrap_or(false);
            // a self-managed group's mixed-instances policy: a managed nodegroup runs all On-Demand or all
            // Spot (with EKS's allocation strategy), so only a distribution that is one or the other maps
            if let Some(d) = r.get("instancesDistribution").cloned() {
                let at = |k: &str| format!("{list}[{i}].instancesDistribution.{k}");
                let base = d.get("onDemandBaseCapacity").and_then(Value::as_u64).unwrap_or(0);
                let above = d.get("onDemandPercentageAboveBaseCapacity").and_then(Value::as_u64).unwrap_or(100);
                match (base, above) {
                    (0, 0) => spot = true,
                    (_, 100) => {}
                    _ => un.push(Unsupported {
                        path: at("onDemandPercentageAboveBaseCapacity"),
                        reason: format!(
                            "a managed nodegroup runs all On-Demand or all Spot, not {above}% On-Demand above a base of {base}: split it into an ON_DEMAND and a SPOT nodegroup"
                        ),
                    }),
                }
                for (k, v) in d.as_object().into_iter().flatten() {
                    match k.as_str() {
                        "instanceTypes" => types = v
                            .as_array()
                            .map(|l| l.iter().filter_map(|x| x.as_str().map(String::from)).collect())
                            .unwrap_or_default(),
                        "onDemandBaseCapacity" | "onDemandPercentageAboveBaseCapacity" => {}
                        "spotAllocationStrategy"
                            if matches!(v.as_str(), Some("capacity-optimized" | "price-capacity-optimized")) => {}
                        "spotAllocationStrategy" | "spotInstancePools" | "maxPrice" => un.push(Unsupported {
                            path: at(k),
                            reason: "managed Spot nodegroups use EKS's price-capacity-optimized allocation and pay up to the On-Demand price".into(),
                        }),
                        other => un.push(Unsupported { path: at(other), reason: not_mapped(other) }),
                    }
                }
                if !types.is_empty() {
                    selector = None;
                } else if selector.is_none() {
                    types.push("m5.large".into());
                }
            }
            let private = r.bool("privateNetworking").unwrap_or(false);
            // its own subnets, by their key in vpc.subnets or by ID: only in an adopted VPC
            let mut ng_subnets = Vec::new();
            for (j, s) in r.strings("subnets").into_iter().enumerate() {
                let path = format!("{list}[{i}].subnets[{j}]");
                if network.existing.is_none() {
                    un.push(Unsupported {
                        path,
                        reason: "a nodegroup names its subnets only in an adopted VPC (vpc.id); in the VPC eksodus makes, it takes the private (or public) subnets of its availabilityZones".into(),
                    });
                } else if let Some(v) = subnet_names.get(&s) {
                    ng_subnets.push(v.clone());
                } else if subnet_names.values().any(|v| *v == s) {
                    ng_subnets.push(s);
                } else {
                    un.push(Unsupported {
                        path,
                        reason: format!("`{s}` is neither a name nor an ID of the subnets under vpc.subnets"),
                    });
                }
            }
            let max_unavailable =
                r.get("updateConfig").and_then(|u| u.get("maxUnavailable")).and_then(Value::as_u64).map(|n| n as u32);
            let max_unavailable_percentage = r
                .map
                .get("updateConfig")
                .and_then(|u| u.get("maxUnavailablePercentage"))
                .and_then(Value::as_u64)
                .map(|n| n as u32);
            if let Some(u) = r.map.get("updateConfig").and_then(Value::as_object) {
                for k in
                    u.keys().map(String::as_str).filter(|k| *k != "maxUnavailable" && *k != "maxUnavailablePercentage")
                {
                    un.push(Unsupported { path: format!("{list}[{i}].updateConfig.{k}"), reason: not_mapped(k) });
                }
            }
            // eksctl's `ami` is an AMI ID, or how eksctl should find one (`auto`, `auto-ssm`, `static`): EKS's
            // own AMI for the family then, which is what a managed nodegroup without one runs
            let ami = r.str("ami").filter(|a| a.starts_with("ami-"));
            let override_bootstrap_command = r.str("overrideBootstrapCommand");
            // the AMI type follows the family and, as eksctl picks it, what the selector chooses: ARM or GPU
            let (arm, gpu) =
                selector.as_ref().map_or((false, false), |s| (s.architecture == "arm64", s.gpus.min.unwrap_or(0) > 0));
            let al2023 = match (arm, gpu) {
                (false, false) => "AL2023_x86_64_STANDARD",
                (false, true) => "AL2023_x86_64_NVIDIA",
                (true, false) => "AL2023_ARM_64_STANDARD",
                (true, true) => "AL2023_ARM_64_NVIDIA",
            };
            let ami_type = match r.str("amiFamily").as_deref() {
                None if arm || gpu => Some(al2023.to_string()),
                None => None,
                Some("AmazonLinux2023") => Some(al2023.to_string()),
                Some("AmazonLinux2") => Some(
                    if arm {
                        "AL2_ARM_64"
                    } else if gpu {
                        "AL2_x86_64_GPU"
                    } else {
                        "AL2_x86_64"
                    }
                    .to_string(),
                ),
                Some("Bottlerocket") => Some(
                    match (arm, gpu) {
                        (false, false) => "BOTTLEROCKET_x86_64",
                        (false, true) => "BOTTLEROCKET_x86_64_NVIDIA",
                        (true, false) => "BOTTLEROCKET_ARM_64",
                        (true, true) => "BOTTLEROCKET_ARM_64_NVIDIA",
                    }
                    .to_string(),
                ),
                // Windows Server, Core or Full, of 2019, 2022 or 2025: EKS's Windows AMI types (x86 only, as
                // eksctl maps them; a GPU selector gets the same type)
                Some(other) => match windows_ami_type(other) {
                    Some(t) => {
                        if arm {
                            un.push(Unsupported {
                                path: format!("{list}[{i}].instanceSelector.cpuArchitecture"),
                                reason: format!("`{other}` runs on x86_64 instances only"),
                            });
                        }
                        Some(t.to_string())
                    }
                    None => {
                        un.push(Unsupported {
                            path: format!("{list}[{i}].amiFamily"),
                            reason: format!("`{other}`: eksodus makes nodegroups of EKS's AMI types: AmazonLinux2023, AmazonLinux2, Bottlerocket or WindowsServer{{2019,2022,2025}}{{Core,Full}}Container"),
                        });
                        None
                    }
                },
            };
            // containerd is the only runtime EKS's AMIs have had since Kubernetes 1.24, which is older than any
            // version EKS offers: eksctl's field says what the nodes run anyway
            match r.str("containerRuntime").as_deref() {
                None | Some("containerd") => {}
                Some(other) => un.push(Unsupported {
                    path: format!("{list}[{i}].containerRuntime"),
                    reason: format!("`{other}`: EKS's AMIs run containerd alone since Kubernetes 1.24 (older than any version EKS offers)"),
                }),
            }
            let ng_tags = r.str_map("tags");
            // ssh: a named key pair, a public key or a key file (imported as a key pair eksodus owns; eksctl's
            // default is ~/.ssh/id_rsa.pub) with the groups allowed to reach it maps to EKS remote access; SSM
            // alone needs nothing (the node role has AmazonSSMManagedInstanceCore). Without groups eksctl lets
            // a private nodegroup's VPC reach port 22 (and the internet a public one's): the VPC's CIDR here
            let mut ssh = None;
            if let Some(sv) = r.get("ssh").cloned() {
                let text = |k: &str| sv.get(k).and_then(Value::as_str).map(String::from);
                let (key, public_key, file) = (text("publicKeyName"), text("publicKey"), text("publicKeyPath"));
                let any_key = key.is_some() || public_key.is_some() || file.is_some();
                // eksctl's defaults: a key given allows SSH unless `allow: false` says otherwise
                let allow = sv.get("allow").and_then(Value::as_bool).unwrap_or(any_key);
                let mut groups: Vec<String> = sv
                    .get("sourceSecurityGroupIds")
                    .and_then(Value::as_array)
                    .map(|g| g.iter().filter_map(|x| x.as_str().map(String::from)).collect())
                    .unwrap_or_default();
                for k in sv.as_object().into_iter().flat_map(|m| m.keys()).map(String::as_str) {
                    match k {
                        "allow"
                        | "publicKeyName"
                        | "publicKey"
                        | "publicKeyPath"
                        | "sourceSecurityGroupIds"
                        | "enableSsm" => {}
                        other => {
                            un.push(Unsupported { path: format!("{list}[{i}].ssh.{k}"), reason: not_mapped(other) })
                        }
                    }
                }
                let mut source_cidrs = Vec::new();
                if !allow {
                    // the key on the nodes and no rule for port 22, as eksctl makes no SSH group then
                    groups.clear();
                } else if groups.is_empty() {
                    match (&network.existing, network.cidr) {
                        (None, Some(vpc)) => {
                            source_cidrs.push(vpc);
                            if !private && managed {
                                notes.push(Note {
                                    path: format!("{list}[{i}].ssh"),
                                    message: format!("eksctl opens port 22 of public nodes to the internet; eksodus lets in the VPC ({vpc}) alone (name sourceSecurityGroupIds for more)"),
                                });
                            }
                        }
                        _ => un.push(Unsupported {
                            path: format!("{list}[{i}].ssh.sourceSecurityGroupIds"),
                            reason: "eksctl would let the adopted VPC's CIDR reach port 22, which is not known offline; name the groups allowed to reach it".into(),
                        }),
                    }
                }
                if allow || any_key {
                    let public_key_file = match (&key, &public_key, file) {
                        (None, None, None) => Some("~/.ssh/id_rsa.pub".to_string()),
                        (_, _, f) => f,
                    };
                    ssh = Some(eksodus_core::spec::SshSpec {
                        key_name: key.unwrap_or_default(),
                        public_key,
                        public_key_file,
                        source_security_groups: groups,
                        source_cidrs,
                    });
                }
            }
            // iam: attachPolicyARNs (eksctl then attaches only those; eksodus keeps the node policies nodes need
            // beside them) and instanceRoleARN map; addon policies and inline documents do not
            let mut bounded_node = false;
            let mut node_iam = eksodus_core::spec::NodeIamSpec::default();
            if let Some(iv) = r.get("iam").cloned() {
                for (k, v) in iv.as_object().into_iter().flatten() {
                    let k = k.as_str();
                    match k {
                        "attachPolicyARNs" => {
                            node_iam.attach_policies = v
                                .as_array()
                                .map(|l| l.iter().filter_map(|x| x.as_str().map(String::from)).collect())
                                .unwrap_or_default()
                        }
                        "instanceRoleARN" => node_iam.role_arn = v.as_str().map(String::from),
                        "instanceRolePermissionsBoundary" => match v.as_str() {
                            Some(b) => {
                                bounded_node = true;
                                boundaries.push((format!("{list}[{i}].iam.{k}"), b.to_string()))
                            }
                            None => un.push(Unsupported {
                                path: format!("{list}[{i}].iam.{k}"),
                                reason: "a policy ARN".into(),
                            }),
                        },
                        "withAddonPolicies" => {
                            node_iam.well_known =
                                policy_switches(&format!("{list}[{i}].iam.withAddonPolicies"), v, addon_policy, &mut un)
                        }
                        other => {
                            un.push(Unsupported { path: format!("{list}[{i}].iam.{other}"), reason: not_mapped(other) })
                        }
                    }
                }
            }
            if !bounded_node {
                unbounded.push(format!("{list}[{i}].iam"));
            }
            // node repair: on or off, its limits and its per-condition overrides
            let mut node_repair = false;
            let mut node_repair_settings = None;
            if let Some(rv) = r.get("nodeRepairConfig").cloned() {
                let at = |k: &str| format!("{list}[{i}].nodeRepairConfig.{k}");
                let mut set = eksodus_core::spec::NodeRepairSettings::default();
                for (k, v) in rv.as_object().into_iter().flatten() {
                    let count = v.as_u64().and_then(|n| u32::try_from(n).ok());
                    match (k.as_str(), count) {
                        ("enabled", _) if v.is_boolean() => node_repair = v.as_bool() == Some(true),
                        ("maxUnhealthyNodeThresholdCount", Some(n)) => set.max_unhealthy_count = Some(n),
                        ("maxUnhealthyNodeThresholdPercentage", Some(n)) => set.max_unhealthy_percentage = Some(n),
                        ("maxParallelNodesRepairedCount", Some(n)) => set.max_parallel_count = Some(n),
                        ("maxParallelNodesRepairedPercentage", Some(n)) => set.max_parallel_percentage = Some(n),
                        ("nodeRepairConfigOverrides", _) if v.is_array() => {
                            for (j, o) in v.as_array().into_iter().flatten().enumerate() {
                                match repair_override(o) {
                                    Ok((o, note)) => {
                                        if let Some(message) = note {
                                            notes.push(Note { path: format!("{}[{j}]", at(k)), message });
                                        }
                                        set.overrides.push(o);
                                    }
                                    Err(reason) => un.push(Unsupported { path: format!("{}[{j}]", at(k)), reason }),
                                }
                            }
                        }
                        (other, _) => un.push(Unsupported { path: at(other), reason: not_mapped(other) }),
                    }
                }
                node_repair_settings = (set != Default::default()).then_some(set);
            }
            // the root volume beyond its size, the metadata service, extra security groups and a template of
            // the user's: eksodus's own launch template, or the user's
            let volume = eksodus_core::spec::VolumeSpec {
                volume_type: r.str("volumeType"),
                iops: r.u32("volumeIOPS"),
                throughput: r.u32("volumeThroughput"),
                encrypted: r.bool("volumeEncrypted").unwrap_or(false),
                kms_key: r.str("volumeKmsKeyID"),
            };
            let volume = (volume != eksodus_core::spec::VolumeSpec::default()).then_some(volume);
            let no_v1 = r.bool("disableIMDSv1").unwrap_or(false);
            let no_pods = r.bool("disablePodIMDS").unwrap_or(false);
            let imds_hop_limit = match (no_v1, no_pods) {
                (_, true) => Some(1),
                (true, false) => Some(2), // EKS's default for managed nodes
                (false, false) => None,
            };
            let mut security_groups = Vec::new();
            if let Some(sg) = r.get("securityGroups").cloned() {
                for (k, v) in sg.as_object().into_iter().flatten() {
                    match (k.as_str(), v) {
                        ("attachIDs", Value::Array(ids)) => {
                            security_groups = ids.iter().filter_map(|x| x.as_str().map(String::from)).collect()
                        }
                        ("withShared" | "withLocal", Value::Bool(false)) => {}
                        ("withShared" | "withLocal", _) => un.push(Unsupported {
                            path: format!("{list}[{i}].securityGroups.{k}"),
                            reason: "eksctl's own node security groups do not exist here: the nodes get the cluster's security group and the groups in attachIDs".into(),
                        }),
                        (other, _) => un.push(Unsupported {
                            path: format!("{list}[{i}].securityGroups.{other}"),
                            reason: not_mapped(other),
                        }),
                    }
                }
            }
            let mut launch_template = None;
            if let Some(lt) = r.get("launchTemplate").cloned() {
                let id = lt.get("id").and_then(Value::as_str).map(String::from);
                let version = match lt.get("version") {
                    Some(Value::String(v)) => Some(v.clone()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                };
                match (id, version) {
                    (Some(id), Some(version)) => {
                        launch_template = Some(eksodus_core::spec::LaunchTemplateRef { id, version })
                    }
                    (None, _) => un.push(Unsupported {
                        path: format!("{list}[{i}].launchTemplate.id"),
                        reason: "name the launch template by its ID".into(),
                    }),
                    (Some(_), None) => un.push(Unsupported {
                        path: format!("{list}[{i}].launchTemplate.version"),
                        reason: "name the version the nodes run (EKS keeps the number it is given; eksctl would take the default)".into(),
                    }),
                }
                for k in lt.as_object().into_iter().flat_map(|m| m.keys()).filter(|k| *k != "id" && *k != "version") {
                    un.push(Unsupported { path: format!("{list}[{i}].launchTemplate.{k}"), reason: not_mapped(k) });
                }
            }
            // Bottlerocket: the admin container and the settings eksctl writes under `settings`
            let mut bottlerocket = None;
            if let Some(b) = r.get("bottlerocket").cloned() {
                let mut spec = eksodus_core::spec::BottlerocketSpec::default();
                for (k, v) in b.as_object().into_iter().flatten() {
                    match (k.as_str(), v) {
                        ("enableAdminContainer", Value::Bool(on)) => spec.admin_container = *on,
                        ("settings", Value::Object(m)) => spec.settings = m.clone(),
                        (other, _) => un.push(Unsupported {
                            path: format!("{list}[{i}].bottlerocket.{other}"),
                            reason: not_mapped(other),
                        }),
                    }
                }
                bottlerocket = Some(spec);
            }
            let mut ng = NodegroupSpec {
                name,
                instance_types: types,
                min,
                max,
                desired,
                disk_size: r.u32("volumeSize"),
                ami_type,
                capacity_type: if spot { "SPOT".into() } else { "ON_DEMAND".into() },
                labels,
                taints,
                // a nodegroup's Local Zones are zones of the network like any other (the spec refuses a
                // nodegroup in both kinds, as eksctl does)
                zones: { r.strings("availabilityZones").into_iter().chain(r.strings("localZones")).collect() },
                subnets: ng_subnets,
                public: !private && managed,
                max_unavailable,
                max_unavailable_percentage,
                tags: ng_tags,
                ssh,
                iam: node_iam,
                node_repair,
                node_repair_settings,
                volume,
                imds_hop_limit,
                security_groups,
                pre_bootstrap_commands: r.strings("preBootstrapCommands"),
                instance_name: r.str("instanceName"),
                launch_template,
                ami,
                override_bootstrap_command,
                bottlerocket,
                instance_selector: selector,
            };
            if ng.ssh.is_some() && ng.launch_template.is_some() {
                // beside eksodus's template the key goes into it (as eksctl does); a template of the user's
                // holds its own key and groups
                un.push(Unsupported {
                    path: format!("{list}[{i}].ssh"),
                    reason: "with a launch template of yours EKS takes no remote access: name the key pair in your template and attach a security group that allows port 22".into(),
                });
                ng.ssh = None;
            }
            nodegroups.push(ng);
            let why = |k: &str| {
                match k {
                "volumeName" => {
                    "the volume's device follows the AMI family (/dev/xvda; Bottlerocket's data volume /dev/xvdb)"
                        .to_string()
                }
                // what a self-managed group's Auto Scaling group took: a managed nodegroup's group is EKS's
                "targetGroupARNs" | "classicLoadBalancerNames" => "a managed nodegroup's Auto Scaling group is EKS's, and EKS attaches no load balancer to it: put the nodes behind one from the cluster (a Service of type LoadBalancer, or the AWS Load Balancer Controller's TargetGroupBinding)".to_string(),
                "outpostARN" => OUTPOSTS.to_string(),
                "asgMetricsCollection" => "a managed nodegroup's Auto Scaling group is EKS's, and the EKS API has no setting for its group metrics: turn them on in Auto Scaling, or read the nodes' counts from the cluster (Container Insights)".to_string(),
                other => not_mapped(other),
            }
            };
            r.rest(&mut un, why);
        }
    }

    // addons
    let mut addons = Vec::new();
    if let Some(list) = top.get("addons").and_then(Value::as_array) {
        for (i, a) in list.iter().enumerate() {
            let mut r = Reader::new(format!("addons[{i}]"), a).ok_or("addons must be mappings")?;
            let Some(name) = r.str("name") else {
                un.push(Unsupported { path: format!("addons[{i}].name"), reason: "required".into() });
                continue;
            };
            let policies = r.strings("attachPolicyARNs");
            let well_known = match r.get("wellKnownPolicies") {
                Some(w) => policy_switches(&format!("addons[{i}].wellKnownPolicies"), w, well_known, &mut un),
                None => vec![],
            };
            let configuration_values = r
                .str("configurationValues")
                .and_then(|c| serde_json::from_str(&c).or_else(|_| serde_saphyr::from_str(&c)).ok());
            let addon_tags = r.str_map("tags");
            let policy_document = r.get("attachPolicy").cloned();
            addons.push(AddonSpec {
                policy_document,
                tags: addon_tags,
                name,
                version: r.str("version"),
                configuration_values,
                resolve_conflicts: r.str("resolveConflicts").map(|s| s.to_ascii_uppercase()),
                policies,
                well_known,
            });
            r.rest(&mut un, not_mapped);
        }
    }

    let mut encryption = None;
    if let Some(v) = top.get("secretsEncryption") {
        let mut r = Reader::new("secretsEncryption", v).ok_or("secretsEncryption must be a mapping")?;
        encryption = Some(EncryptionSpec { key_arn: r.str("keyARN"), deletion_window_days: 30 });
        r.rest(&mut un, not_mapped);
    }
    let mut logging = Vec::new();
    let mut log_retention_days = None;
    if let Some(v) = top.get("cloudWatch") {
        let mut cw = Reader::new("cloudWatch", v).ok_or("cloudWatch must be a mapping")?;
        if let Some(cl) = cw.get("clusterLogging") {
            let mut r = Reader::new("cloudWatch.clusterLogging", cl).ok_or("clusterLogging must be a mapping")?;
            log_retention_days = r.u32("logRetentionInDays");
            for t in r.strings("enableTypes") {
                if t == "*" || t == "all" {
                    logging = LOG_TYPES.iter().map(|s| s.to_string()).collect();
                } else if !logging.contains(&t) {
                    logging.push(t);
                }
            }
            r.rest(&mut un, not_mapped);
        }
        cw.rest(&mut un, not_mapped);
    }
    let mut service_ipv4_cidr = None;
    let mut ip_family = IpFamily::Ipv4;
    if let Some(v) = top.get("kubernetesNetworkConfig") {
        let mut r = Reader::new("kubernetesNetworkConfig", v).ok_or("kubernetesNetworkConfig must be a mapping")?;
        service_ipv4_cidr = r.str("serviceIPv4CIDR").and_then(|c| c.parse().ok());
        match r.str("ipFamily") {
            None => {}
            Some(f) if f.eq_ignore_ascii_case("ipv4") => {}
            Some(f) if f.eq_ignore_ascii_case("ipv6") => {
                ip_family = IpFamily::Ipv6;
                if service_ipv4_cidr.take().is_some() {
                    un.push(Unsupported {
                        path: "kubernetesNetworkConfig.serviceIPv4CIDR".into(),
                        reason: "an IPv6 cluster's services take addresses EKS picks from fc00::/7".into(),
                    });
                }
                // eksctl gives the VPC it makes IPv6 blocks for an IPv6 cluster; so does eksodus (`dual_stack`)
            }
            Some(f) => un.push(Unsupported {
                path: "kubernetesNetworkConfig.ipFamily".into(),
                reason: format!("`{f}` is neither IPv4 nor IPv6"),
            }),
        }
        r.rest(&mut un, not_mapped);
    }
    let mut support_type = None;
    if let Some(v) = top.get("upgradePolicy") {
        let mut r = Reader::new("upgradePolicy", v).ok_or("upgradePolicy must be a mapping")?;
        support_type = r.str("supportType").map(|s| s.to_ascii_uppercase());
        r.rest(&mut un, not_mapped);
    }
    // zonal shift and the control plane's scaling tier: cluster settings EKS changes in place
    let mut zonal_shift = false;
    if let Some(v) = top.get("zonalShiftConfig") {
        let mut r = Reader::new("zonalShiftConfig", v).ok_or("zonalShiftConfig must be a mapping")?;
        zonal_shift = r.bool("enabled").unwrap_or(false);
        r.rest(&mut un, not_mapped);
    }
    // hybrid nodes: eksctl's SSM role is one eksodus makes, a role of the user's is used as it is; eksctl's
    // IAM Roles Anywhere set-up (a trust anchor of the user's CA and a profile) and its gateway routes are not
    let mut remote_network = None;
    if let Some(v) = top.get("remoteNetworkConfig") {
        let mut r = Reader::new("remoteNetworkConfig", v).ok_or("remoteNetworkConfig must be a mapping")?;
        let networks = |r: &mut Reader<'_>, key: &'static str, un: &mut Vec<Unsupported>| {
            let mut out = Vec::new();
            let items = r.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
            for (i, item) in items.iter().enumerate() {
                let at = format!("remoteNetworkConfig.{key}[{i}]");
                let Some(mut n) = Reader::new(at.clone(), item) else {
                    un.push(Unsupported { path: at, reason: "a remote network is a mapping with cidrs".into() });
                    continue;
                };
                for (j, c) in n.strings("cidrs").iter().enumerate() {
                    match c.parse::<ipnet::Ipv4Net>() {
                        Ok(net) => out.push(net),
                        Err(_) => un.push(Unsupported {
                            path: format!("{at}.cidrs[{j}]"),
                            reason: format!("`{c}` is not an IPv4 CIDR"),
                        }),
                    }
                }
                n.rest(un, not_mapped);
            }
            out
        };
        let node_cidrs = networks(&mut r, "remoteNodeNetworks", &mut un);
        let pod_cidrs = networks(&mut r, "remotePodNetworks", &mut un);
        let mut role_arn = None;
        if let Some(v) = r.get("iam") {
            let mut i = Reader::new("remoteNetworkConfig.iam", v).ok_or("remoteNetworkConfig.iam must be a mapping")?;
            let provider = i.str("provider").unwrap_or_else(|| "SSM".into());
            role_arn = i.str("roleARN").filter(|a| !a.is_empty());
            let ca = i.get("caBundleCert").is_some();
            match (provider.to_ascii_lowercase().as_str(), &role_arn) {
                (_, Some(_)) if ca => notes.push(Note {
                    path: "remoteNetworkConfig.iam.caBundleCert".into(),
                    message: "the role named in roleARN is used as it is, so its Roles Anywhere trust anchor is yours (as with eksctl); the certificate is not used".into(),
                }),
                (_, Some(_)) | ("ssm", None) => {}
                ("ira", None) => un.push(Unsupported {
                    path: "remoteNetworkConfig.iam.provider".into(),
                    reason: "eksodus makes the hybrid nodes' role for SSM hybrid activations, not an IAM Roles Anywhere trust anchor and profile: use SSM, or name a role of yours set up for Roles Anywhere in roleARN".into(),
                }),
                (other, None) => un.push(Unsupported {
                    path: "remoteNetworkConfig.iam.provider".into(),
                    reason: format!("`{other}` is neither SSM nor IRA"),
                }),
            }
            i.rest(&mut un, not_mapped);
        }
        r.rest(&mut un, |k| match k {
            "vpcGatewayID" => "eksodus neither attaches a transit or virtual private gateway to the VPC nor routes the remote networks through it: attach it and add those routes to the private route tables (eksodus leaves routes it did not make alone)".into(),
            other => not_mapped(other),
        });
        remote_network = Some(eksodus_core::spec::RemoteNetworkSpec { node_cidrs, pod_cidrs, role_arn });
    }
    // Auto Mode: eksctl's pools default to both built-in ones; an empty list is none (and then no role)
    let mut auto_mode = None;
    if let Some(v) = top.get("autoModeConfig") {
        let mut r = Reader::new("autoModeConfig", v).ok_or("autoModeConfig must be a mapping")?;
        let enabled = r.bool("enabled").unwrap_or(false);
        let pools = r
            .get("nodePools")
            .map(|p| p.as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect::<Vec<_>>()));
        let role = r.str("nodeRoleARN").filter(|a| !a.is_empty());
        if let Some(b) = r.str("permissionsBoundaryARN") {
            // eksodus puts its own boundary (access.iam.permissions_boundary) on every role it makes
            boundaries.push(("autoModeConfig.permissionsBoundaryARN".into(), b));
        }
        match pools {
            Some(None) => un.push(Unsupported {
                path: "autoModeConfig.nodePools".into(),
                reason: "a list of node pool names is needed".into(),
            }),
            _ if !enabled => {
                if role.is_some() || pools.as_ref().is_some_and(|p| p.as_ref().is_some_and(|p| !p.is_empty())) {
                    un.push(Unsupported {
                        path: "autoModeConfig".into(),
                        reason: "node pools and a node role are for Auto Mode, and it is not enabled".into(),
                    });
                }
            }
            Some(Some(pools)) => {
                auto_mode = Some(eksodus_core::spec::AutoModeSpec { node_pools: pools, node_role_arn: role })
            }
            None => {
                auto_mode = Some(eksodus_core::spec::AutoModeSpec {
                    node_pools: eksodus_core::spec::AUTO_MODE_NODE_POOLS.iter().map(|p| p.to_string()).collect(),
                    node_role_arn: role,
                })
            }
        }
        r.rest(&mut un, not_mapped);
    }
    let mut control_plane_tier = None;
    if let Some(v) = top.get("controlPlaneScalingConfig") {
        let mut r = Reader::new("controlPlaneScalingConfig", v).ok_or("controlPlaneScalingConfig must be a mapping")?;
        if let Some(t) = r.str("tier") {
            if eksodus_core::spec::CONTROL_PLANE_TIERS.contains(&t.as_str()) {
                control_plane_tier = Some(t);
            } else {
                un.push(Unsupported {
                    path: "controlPlaneScalingConfig.tier".into(),
                    reason: format!(
                        "`{t}` is not one of EKS's tiers ({})",
                        eksodus_core::spec::CONTROL_PLANE_TIERS.join(", ")
                    ),
                });
            }
        }
        r.rest(&mut un, not_mapped);
    }
    let mut identity_providers = Vec::new();
    if let Some(ps) = top.get("identityProviders").and_then(Value::as_array) {
        for (i, p) in ps.iter().enumerate() {
            let mut r =
                Reader::new(format!("identityProviders[{i}]"), p).ok_or("identity providers must be mappings")?;
            let kind = r.str("type").unwrap_or_default();
            if !kind.eq_ignore_ascii_case("oidc") {
                un.push(Unsupported {
                    path: r.at("type"),
                    reason: format!("`{kind}`: EKS associates OIDC providers only"),
                });
                continue;
            }
            let required_claims = r
                .get("requiredClaims")
                .and_then(Value::as_object)
                .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
                .unwrap_or_default();
            identity_providers.push(eksodus_core::spec::IdentityProviderSpec {
                name: r.str("name").unwrap_or_default(),
                issuer_url: r.str("issuerURL").unwrap_or_default(),
                client_id: r.str("clientID").unwrap_or_default(),
                username_claim: r.str("usernameClaim"),
                username_prefix: r.str("usernamePrefix"),
                groups_claim: r.str("groupsClaim"),
                groups_prefix: r.str("groupsPrefix"),
                required_claims,
            });
            r.rest(&mut un, not_mapped);
        }
    }
    let mut fargate_profiles = Vec::new();
    if let Some(ps) = top.get("fargateProfiles").and_then(Value::as_array) {
        for (i, p) in ps.iter().enumerate() {
            let mut r = Reader::new(format!("fargateProfiles[{i}]"), p).ok_or("Fargate profiles must be mappings")?;
            let mut selectors = Vec::new();
            for (j, sel) in r.get("selectors").and_then(Value::as_array).into_iter().flatten().enumerate() {
                let mut sr = Reader::new(format!("fargateProfiles[{i}].selectors[{j}]"), sel)
                    .ok_or("Fargate selectors must be mappings")?;
                selectors.push(eksodus_core::spec::FargateSelector {
                    namespace: sr.str("namespace").unwrap_or_default(),
                    labels: sr.str_map("labels"),
                });
                sr.rest(&mut un, not_mapped);
            }
            // its subnets, by their key in vpc.subnets or by ID: only in an adopted VPC
            let mut subnets = Vec::new();
            for (j, s) in r.strings("subnets").into_iter().enumerate() {
                let path = format!("fargateProfiles[{i}].subnets[{j}]");
                if network.existing.is_none() {
                    un.push(Unsupported {
                        path,
                        reason: "a Fargate profile names its subnets only in an adopted VPC (vpc.id); in the VPC eksodus makes, it takes the private subnets".into(),
                    });
                } else if let Some(v) = subnet_names.get(&s) {
                    subnets.push(v.clone());
                } else if subnet_names.values().any(|v| *v == s) {
                    subnets.push(s);
                } else {
                    un.push(Unsupported {
                        path,
                        reason: format!("`{s}` is neither a name nor an ID of the subnets under vpc.subnets"),
                    });
                }
            }
            // what eksctl reports of a profile it read back, not a setting
            let _ = r.get("status");
            fargate_profiles.push(eksodus_core::spec::FargateProfileSpec {
                name: r.str("name").unwrap_or_default(),
                selectors,
                subnets,
                pod_execution_role_arn: r.str("podExecutionRoleARN"),
                tags: r.str_map("tags"),
            });
            r.rest(&mut un, not_mapped);
        }
    }
    let mut capabilities = Vec::new();
    if let Some(cs) = top.get("capabilities").and_then(Value::as_array) {
        for (i, c) in cs.iter().enumerate() {
            let mut r = Reader::new(format!("capabilities[{i}]"), c).ok_or("capabilities must be mappings")?;
            let name = r.str("name").unwrap_or_default();
            let kind_text = r.str("type").unwrap_or_default();
            let kind = eksodus_core::spec::CapabilityKind::parse(&kind_text);
            if kind.is_none() {
                un.push(Unsupported {
                    path: r.at("type"),
                    reason: format!("`{kind_text}` is not one of EKS's capability types (ACK, KRO, ARGOCD)"),
                });
            }
            match r.str("deletePropagationPolicy").as_deref() {
                None | Some("RETAIN") => {}
                Some(other) => un.push(Unsupported {
                    path: r.at("deletePropagationPolicy"),
                    reason: format!("`{other}`: EKS has RETAIN alone, which eksodus always uses (what a capability made outlives it)"),
                }),
            }
            if r.get("attachPolicy").is_some() {
                un.push(Unsupported {
                    path: r.at("attachPolicy"),
                    reason: "a capability role takes managed policies: make the document a policy of yours and list it under attachPolicyARNs".into(),
                });
            }
            if let Some(b) = r.str("permissionsBoundary") {
                if r.get("roleArn").is_none() {
                    boundaries.push((r.at("permissionsBoundary"), b));
                } else {
                    notes.push(Note {
                        path: r.at("permissionsBoundary"),
                        message: "the capability names a role of its own, which eksodus does not make, so there is nothing to bound".into(),
                    });
                }
            }
            let mut access_policies = Vec::new();
            for (j, p) in r.get("accessPolicies").and_then(Value::as_array).into_iter().flatten().enumerate() {
                let mut pr = Reader::new(format!("capabilities[{i}].accessPolicies[{j}]"), p)
                    .ok_or("access policies must be mappings")?;
                let policy = pr.str("policyARN").unwrap_or_default();
                let mut namespaces = vec![];
                if let Some(s) = pr.get("accessScope") {
                    let mut sr =
                        Reader::new(format!("{}.accessScope", pr.path), s).ok_or("accessScope must be a mapping")?;
                    let _ = sr.str("type");
                    namespaces = sr.strings("namespaces");
                    sr.rest(&mut un, not_mapped);
                }
                access_policies.push(PolicyAssociationSpec { policy, namespaces });
                pr.rest(&mut un, not_mapped);
            }
            let mut argocd = None;
            if let Some(cfg) = r.get("configuration") {
                let mut cr = Reader::new(format!("capabilities[{i}].configuration"), cfg)
                    .ok_or("a capability's configuration must be a mapping")?;
                if let Some(a) = cr.get("argocd") {
                    let mut ar = Reader::new(format!("{}.argocd", cr.path), a).ok_or("argocd must be a mapping")?;
                    let mut idc = (String::new(), None);
                    if let Some(v) = ar.get("awsIdc") {
                        let mut ir = Reader::new(format!("{}.awsIdc", ar.path), v).ok_or("awsIdc must be a mapping")?;
                        idc = (ir.str("idcInstanceArn").unwrap_or_default(), ir.str("idcRegion"));
                        ir.rest(&mut un, not_mapped);
                    }
                    let mut vpce_ids = vec![];
                    if let Some(v) = ar.get("networkAccess") {
                        let mut nr = Reader::new(format!("{}.networkAccess", ar.path), v)
                            .ok_or("networkAccess must be a mapping")?;
                        vpce_ids = nr.strings("vpceIds");
                        nr.rest(&mut un, not_mapped);
                    }
                    let mut rbac_role_mappings = vec![];
                    for (j, m) in ar.get("rbacRoleMappings").and_then(Value::as_array).into_iter().flatten().enumerate()
                    {
                        let mut mr = Reader::new(format!("{}.rbacRoleMappings[{j}]", ar.path), m)
                            .ok_or("role mappings must be mappings")?;
                        let mut identities = vec![];
                        for (k, id) in mr.get("identities").and_then(Value::as_array).into_iter().flatten().enumerate()
                        {
                            let mut idr = Reader::new(format!("{}.identities[{k}]", mr.path), id)
                                .ok_or("identities must be mappings")?;
                            identities.push(eksodus_core::spec::SsoIdentity {
                                id: idr.str("id").unwrap_or_default(),
                                kind: idr.str("type").unwrap_or_default(),
                            });
                            idr.rest(&mut un, not_mapped);
                        }
                        rbac_role_mappings.push(eksodus_core::spec::ArgoCdRoleMapping {
                            role: mr.str("role").unwrap_or_default(),
                            identities,
                        });
                        mr.rest(&mut un, not_mapped);
                    }
                    argocd = Some(eksodus_core::spec::ArgoCdSpec {
                        namespace: ar.str("namespace").unwrap_or_else(|| "argocd".into()),
                        idc_instance_arn: idc.0,
                        idc_region: idc.1,
                        rbac_role_mappings,
                        vpce_ids,
                    });
                    ar.rest(&mut un, not_mapped);
                }
                cr.rest(&mut un, not_mapped);
            }
            if let Some(kind) = kind {
                capabilities.push(eksodus_core::spec::CapabilitySpec {
                    name,
                    kind,
                    role_arn: r.str("roleArn"),
                    attach_policy_arns: r.strings("attachPolicyARNs"),
                    access_policies,
                    argocd,
                    tags: r.str_map("tags"),
                });
            }
            r.rest(&mut un, not_mapped);
        }
    }
    if let Some(v) = top.get("privateCluster") {
        let mut r = Reader::new("privateCluster", v).ok_or("privateCluster must be a mapping")?;
        let enabled = r.bool("enabled").unwrap_or(false);
        let skip = r.bool("skipEndpointCreation").unwrap_or(false);
        let extra = r.strings("additionalEndpointServices");
        if enabled {
            // as eksctl makes a fully-private cluster: the API endpoint private only, private subnets with no
            // NAT or internet gateway, and the endpoints its nodes need
            endpoint.public = false;
            endpoint.private = true;
            if network.existing.is_some() {
                if !skip {
                    un.push(Unsupported {
                        path: "privateCluster.skipEndpointCreation".into(),
                        reason: "eksodus never adds endpoints to a VPC it adopts; make them in your VPC and set skipEndpointCreation: true".into(),
                    });
                }
            } else if skip {
                un.push(Unsupported {
                    path: "privateCluster.skipEndpointCreation".into(),
                    reason: "only a VPC of yours can go without the endpoints; nodes in a VPC eksodus makes would never join".into(),
                });
            } else {
                network.nat = NatMode::None;
                network.subnets.public.enabled = false;
                let mut endpoints = VpcEndpointService::PRIVATE_CLUSTER.to_vec();
                for (i, name) in extra.iter().enumerate() {
                    // the optional services eksctl accepts
                    match name.as_str() {
                        "cloudformation" => endpoints.push(VpcEndpointService::CloudFormation),
                        "autoscaling" => endpoints.push(VpcEndpointService::Autoscaling),
                        "logs" => endpoints.push(VpcEndpointService::Logs),
                        other => un.push(Unsupported {
                            path: format!("privateCluster.additionalEndpointServices[{i}]"),
                            reason: format!("`{other}` is not one of eksctl's optional endpoint services (cloudformation, autoscaling, logs)"),
                        }),
                    }
                }
                // eksctl adds the logs endpoint whenever the control plane logs to CloudWatch
                if !logging.is_empty() {
                    endpoints.push(VpcEndpointService::Logs);
                }
                endpoints.sort();
                endpoints.dedup();
                network.vpc_endpoints = endpoints;
            }
        }
        r.rest(&mut un, not_mapped);
    }
    top.rest(&mut un, |k| match k {
        "gitops" | "git" => "GitOps bootstrap is out of eksodus's scope".into(),
        "karpenter" => "Karpenter is installed into the cluster (Helm) with its own IAM and SQS interruption queue; eksodus makes managed nodegroups only, and the local emulator has no instances for Karpenter to launch".into(),
        "outpost" => OUTPOSTS.into(),
        other => not_mapped(other),
    });

    // permissions boundaries: eksodus puts one on every role it makes, so eksctl's agree or are refused
    boundaries.retain(|(p, b)| {
        let ok = eksodus_core::spec::is_iam_arn(b, "policy");
        if !ok {
            un.push(Unsupported { path: p.clone(), reason: format!("`{b}` is not an IAM policy ARN") });
        }
        ok
    });
    if let Some((first_path, first)) = boundaries.first().cloned() {
        let differ: Vec<&(String, String)> = boundaries.iter().filter(|(_, b)| *b != first).collect();
        if differ.is_empty() {
            access.iam.permissions_boundary = Some(first);
            let mut open: Vec<String> = unbounded.clone();
            if !boundaries.iter().any(|(p, _)| p == "iam.serviceRolePermissionsBoundary") {
                open.insert(0, "the cluster's role".into());
            }
            if !open.is_empty() {
                notes.push(Note {
                    path: first_path,
                    message: format!(
                        "eksodus puts this boundary on every role it makes, including those eksctl leaves unbounded ({})",
                        open.join(", ")
                    ),
                });
            }
        } else {
            for (p, b) in differ {
                un.push(Unsupported {
                    path: p.clone(),
                    reason: format!("eksodus puts one permissions boundary on every role it makes: `{b}` differs from `{first}` ({first_path})"),
                });
            }
        }
    }
    let has_access = access != AccessSpec::default();
    let spec = EnvironmentSpec {
        name,
        region,
        tags,
        network,
        access: has_access.then_some(access),
        cluster: Some(ClusterSpec {
            version,
            endpoint,
            logging,
            log_retention_days,
            encryption,
            support_type,
            zonal_shift,
            control_plane_tier,
            control_plane_security_groups,
            control_plane_subnets,
            service_ipv4_cidr,
            ip_family,
            auto_mode,
            bootstrap_admin,
            nodegroups,
            addons,
            identity_providers,
            fargate_profiles,
            capabilities,
            remote_network,
        }),
    };
    Ok(Imported { spec, unsupported: un, notes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(name: &str) -> String {
        std::fs::read_to_string(format!("{}/testdata/eksctl/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    /// Every example imports whole into a valid spec.
    #[test]
    fn all_examples_import_whole() {
        let mut files: Vec<String> = std::fs::read_dir(format!("{}/testdata/eksctl", env!("CARGO_MANIFEST_DIR")))
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|f| f.ends_with(".yaml"))
            .collect();
        files.sort();
        assert_eq!(files.len(), 33);
        for f in &files {
            let text = example(f);
            assert!(is_eksctl(&text), "{f}");
            let imp = import(&text).unwrap_or_else(|e| panic!("{f}: {e}"));
            assert_eq!(imp.unsupported, vec![], "{f}");
            {
                // as loading the file would: a key file read into its key
                let mut spec = imp.spec.clone();
                for ssh in spec.cluster.iter_mut().flat_map(|c| &mut c.nodegroups).filter_map(|n| n.ssh.as_mut()) {
                    if ssh.public_key_file.take().is_some() {
                        ssh.public_key = Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA7e3Xtwqc9C64YrLdSOCNHrhmaoZW7aI5XFFj4JGlpK t@eksodus".into());
                    }
                }
                let errs = spec.validate();
                assert!(errs.is_empty(), "{f} imported cleanly but is not valid: {errs:#?}");
            }
        }
    }

    /// Example 30: an IPv6 cluster, in a VPC with IPv6 blocks as eksctl makes for one, whose vpc-cni has the
    /// policy the example writes for it.
    #[test]
    fn an_ipv6_cluster_maps_to_a_dual_stack_network() {
        let imp = import(&example("30-vpc-with-ip-family.yaml")).unwrap();
        assert_eq!(imp.unsupported, vec![]);
        let spec = &imp.spec;
        assert!(spec.ipv6_cluster() && spec.dual_stack());
        let cni = spec.cluster.as_ref().unwrap().addons.iter().find(|a| a.name == "vpc-cni").unwrap();
        assert_eq!(cni.policy_document.as_ref().unwrap()["Statement"][0]["Action"][0], "ec2:AssignIpv6Addresses");
        // an IPv4 range, or a family EKS does not have, is refused by path
        let text = "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata: {name: s, region: us-west-2, version: \"1.32\"}\nkubernetesNetworkConfig: {ipFamily: IPv6, serviceIPv4CIDR: 10.100.0.0/16}\n";
        let un = import(text).unwrap().unsupported;
        assert_eq!(un.iter().map(|u| u.path.as_str()).collect::<Vec<_>>(), ["kubernetesNetworkConfig.serviceIPv4CIDR"]);
        let un = import(&text.replace("IPv6, serviceIPv4CIDR: 10.100.0.0/16", "dual")).unwrap().unsupported;
        assert_eq!(un.iter().map(|u| u.path.as_str()).collect::<Vec<_>>(), ["kubernetesNetworkConfig.ipFamily"]);
        assert!(!import(&text.replace("IPv6, serviceIPv4CIDR: 10.100.0.0/16", "IPv4")).unwrap().spec.ipv6_cluster());
    }

    /// Example 42: Auto Mode with both built-in pools; an empty list is none, and settings without `enabled`
    /// are refused by path.
    #[test]
    fn auto_mode_maps_with_its_pools() {
        let imp = import(&example("42-auto-mode.yaml")).unwrap();
        assert_eq!(imp.unsupported, vec![]);
        let a = imp.spec.cluster.as_ref().unwrap().auto_mode.clone().unwrap();
        assert_eq!(a.node_pools, ["general-purpose", "system"]);
        assert!(a.owns_node_role());
        let text = |auto: &str| {
            format!("apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata: {{name: s, region: us-west-2, version: \"1.32\"}}\nautoModeConfig: {auto}\n")
        };
        let none = import(&text("{enabled: true, nodePools: []}")).unwrap();
        let a = none.spec.cluster.as_ref().unwrap().auto_mode.clone().unwrap();
        assert!(a.node_pools.is_empty() && !a.owns_node_role());
        let off = import(&text("{enabled: false, nodePools: [system]}")).unwrap();
        assert_eq!(off.unsupported.iter().map(|u| u.path.as_str()).collect::<Vec<_>>(), ["autoModeConfig"]);
        assert!(import(&text("{enabled: false}")).unwrap().spec.cluster.unwrap().auto_mode.is_none());
        let errs = import(&text("{enabled: true, nodePools: [gpu]}")).unwrap().spec.validate();
        assert!(errs.iter().any(|e| e.path == "cluster.auto_mode.node_pools[0]"), "{errs:?}");
    }

    /// Example 30's `addons[].attachPolicy`: the addon's own document, as written.
    #[test]
    fn an_addons_attach_policy_is_its_policy_document() {
        let text = "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata: {name: s, region: us-west-2, version: \"1.32\"}\naddons:\n- name: vpc-cni\n  attachPolicy:\n    Version: \"2012-10-17\"\n    Statement:\n    - {Effect: Allow, Action: [\"ec2:AssignIpv6Addresses\"], Resource: \"*\"}\n";
        let imp = import(text).unwrap();
        assert_eq!(imp.unsupported, vec![]);
        let a = &imp.spec.cluster.as_ref().unwrap().addons[0];
        assert_eq!(a.policy_document.as_ref().unwrap()["Statement"][0]["Action"][0], "ec2:AssignIpv6Addresses");
        assert!(a.has_policies());
    }

    /// Example 11: the log types and their retention, which eksodus keeps on a log group of its own.
    #[test]
    fn cluster_logging_maps_with_its_retention() {
        let imp = import(&example("11-cloudwatch-cluster-logging.yaml")).unwrap();
        let c = imp.spec.cluster.as_ref().unwrap();
        assert_eq!(c.log_retention_days, Some(60));
        let mut types = c.logging.clone();
        types.sort();
        assert_eq!(types, ["audit", "authenticator", "controllerManager"]);
        // a retention CloudWatch does not offer is refused by the spec, naming the field
        let text = "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata: {name: s, region: us-west-2, version: \"1.32\"}\ncloudWatch: {clusterLogging: {enableTypes: [api], logRetentionInDays: 61}}\n";
        let errs = import(text).unwrap().spec.validate();
        assert!(errs.iter().any(|e| e.to_string().contains("log_retention_days")), "{errs:?}");
    }

    /// Example 24: subnets named by key or ID, one given only by its block; each nodegroup takes its own.
    #[test]
    fn nodegroup_subnets_map_by_name_id_and_block() {
        let imp = import(&example("24-nodegroup-subnets.yaml")).unwrap();
        let ex = imp.spec.network.existing.as_ref().unwrap();
        assert_eq!(ex.subnet_ids.len(), 5);
        assert_eq!(ex.subnet_cidrs, ["192.168.160.0/19".parse::<ipnet::Ipv4Net>().unwrap()]);
        let ngs = &imp.spec.cluster.as_ref().unwrap().nodegroups;
        assert_eq!(ngs[0].subnets, ["subnet-0324095a4f2188967", "subnet-083814b087bad140b"]);
        assert_eq!(ngs[1].subnets, ["192.168.160.0/19", "subnet-0a96e24163ef2c9c3"]);
        // keys that are names leave the zones to the subnets
        assert_eq!(imp.spec.network.azs, AzSpec::Count(3));

        // a name nobody gave, and subnets in the VPC eksodus makes, are refused by path
        let text = "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata: {name: s, region: us-west-2, version: \"1.32\"}\nvpc:\n  id: vpc-1\n  subnets: {private: {us-west-2a: {id: subnet-1}, us-west-2b: {cidr: 10.0.1.0/24}, c: {cidr: nope}}}\nmanagedNodeGroups:\n- {name: a, subnets: [us-west-2a, us-west-2b, elsewhere]}\n";
        let imp = import(text).unwrap();
        let paths: Vec<&str> = imp.unsupported.iter().map(|u| u.path.as_str()).collect();
        assert_eq!(paths, ["vpc.subnets.private.c.cidr", "managedNodeGroups[0].subnets[2]"], "{:?}", imp.unsupported);
        assert_eq!(imp.spec.cluster.as_ref().unwrap().nodegroups[0].subnets, ["subnet-1", "10.0.1.0/24"]);
        assert_eq!(imp.spec.network.azs, AzSpec::Names(vec!["us-west-2a".into(), "us-west-2b".into()]));
        let text = "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata: {name: s, region: us-west-2, version: \"1.32\"}\nmanagedNodeGroups:\n- {name: a, subnets: [subnet-1]}\n";
        let imp = import(text).unwrap();
        assert_eq!(imp.unsupported[0].path, "managedNodeGroups[0].subnets[0]");
        assert!(imp.unsupported[0].reason.contains("only in an adopted VPC"), "{}", imp.unsupported[0].reason);
    }

    #[test]
    fn zonal_shift_scaling_tier_node_repair_and_volume_keys_map() {
        let c = |f: &str| import(&example(f)).unwrap();
        let imp = c("41-zonal-shift.yaml");
        assert!(imp.spec.cluster.as_ref().unwrap().zonal_shift);
        let imp = c("46-control-plane-scaling-config.yaml");
        assert_eq!(imp.spec.cluster.as_ref().unwrap().control_plane_tier.as_deref(), Some("tier-xl"));
        // a key ID, as eksctl's example gives it, is a key EC2's launch templates take
        let imp = c("10-encrypted-volumes.yaml");
        assert_eq!(imp.spec.validate(), vec![]);
        let ngs = &imp.spec.cluster.as_ref().unwrap().nodegroups;
        assert_eq!(ngs[1].volume.as_ref().unwrap().kms_key.as_deref(), Some("36c0b54e-64ed-4f2d-a1c7-96558764311e"));
        // the thresholds and overrides; eksctl's example words Terminate and Restart become EKS's own
        let imp = c("44-node-repair.yaml");
        assert_eq!(imp.spec.validate(), vec![]);
        let ngs = &imp.spec.cluster.as_ref().unwrap().nodegroups;
        assert!(ngs.iter().all(|n| n.node_repair));
        assert_eq!(ngs[0].node_repair_settings, None);
        let pct = ngs[1].node_repair_settings.as_ref().unwrap();
        assert_eq!((pct.max_unhealthy_percentage, pct.max_parallel_percentage), (Some(20), Some(15)));
        let gpu = ngs[3].node_repair_settings.as_ref().unwrap();
        assert_eq!((gpu.max_unhealthy_percentage, gpu.max_parallel_count), (Some(25), Some(1)));
        let actions: Vec<(&str, u32, &str)> =
            gpu.overrides.iter().map(|o| (o.reason.as_str(), o.wait_minutes, o.action.as_str())).collect();
        assert_eq!(actions, [("NvidiaXID13Error", 5, "Replace"), ("InterfaceNotUp", 15, "Reboot")]);
        assert_eq!(imp.notes.len(), 3, "{:?}", imp.notes);
        // the control plane's own groups map; its own subnets only in an adopted VPC (example 38 names them in
        // a VPC eksctl would make)
        let imp = import(EXAMPLE_38).unwrap();
        let paths: Vec<&str> = imp.unsupported.iter().map(|u| u.path.as_str()).collect();
        assert_eq!(paths, ["vpc.controlPlaneSubnetIDs"]);
        assert_eq!(imp.spec.cluster.as_ref().unwrap().control_plane_security_groups, ["sg-1234", "sg-5678"]);
        let adopted = EXAMPLE_38
            .replace(
                "vpc:\n",
                "vpc:\n  id: vpc-0a1b2c3d\n  subnets: {private: {us-west-2a: {id: subnet-0a1b2c3d}, us-west-2b: {id: subnet-0b2c3d4e}}}\n",
            )
            .replace("-1234", "-0123abcd")
            .replace("-5678", "-0567abcd");
        let imp = import(&adopted).unwrap();
        assert!(imp.unsupported.is_empty(), "{:?}", imp.unsupported);
        assert_eq!(imp.spec.validate(), vec![]);
        assert_eq!(imp.spec.cluster.as_ref().unwrap().control_plane_subnets, ["subnet-0123abcd", "subnet-0567abcd"]);
        // the control plane on private subnets is what eksodus does whenever there are any
        let imp = c("49-control-plane-on-private-subnets.yaml");
        assert!(imp.unsupported.is_empty(), "{:?}", imp.unsupported);
        // ... and refused by path where it cannot be, as are repair actions EKS does not have
        let text = "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata: {name: s, region: us-west-2, version: \"1.32\"}\nvpc:\n  id: vpc-1\n  controlPlaneOnPrivateSubnets: true\n  subnets: {private: {us-west-2a: {id: subnet-1}}, public: {us-west-2b: {id: subnet-2}}}\ncontrolPlaneScalingConfig: {tier: tier-9xl}\nmanagedNodeGroups:\n- name: a\n  nodeRepairConfig:\n    enabled: true\n    nodeRepairConfigOverrides: [{nodeMonitoringCondition: NetworkNotReady, nodeUnhealthyReason: InterfaceNotUp, repairAction: Explode}]\n";
        let mut paths: Vec<String> = import(text).unwrap().unsupported.into_iter().map(|u| u.path).collect();
        paths.sort();
        assert_eq!(
            paths,
            [
                "controlPlaneScalingConfig.tier",
                "managedNodeGroups[0].nodeRepairConfig.nodeRepairConfigOverrides[0]",
                "vpc.controlPlaneOnPrivateSubnets"
            ]
        );
    }

    #[test]
    fn an_inline_policy_of_a_service_account_is_its_roles_own_document() {
        let text = "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata: {name: s, region: us-west-2, version: \"1.32\"}\niam:\n  withOIDC: true\n  serviceAccounts:\n  - metadata: {name: autoscaler-service, namespace: kube-system}\n    attachPolicy:\n      Version: \"2012-10-17\"\n      Statement:\n      - {Effect: Allow, Action: [\"autoscaling:DescribeTags\"], Resource: \"*\"}\n";
        let imp = import(text).unwrap();
        assert!(imp.unsupported.is_empty(), "{:?}", imp.unsupported);
        let sa = &imp.spec.access.as_ref().unwrap().service_accounts[0];
        let doc = sa.policy_document.as_ref().unwrap();
        assert_eq!(doc["Statement"][0]["Action"][0], "autoscaling:DescribeTags");
    }

    #[test]
    fn pod_identity_associations_import_whole_with_users_roles_targets_and_service_accounts() {
        let imp = import(EXAMPLE_39).unwrap();
        assert!(imp.unsupported.is_empty(), "{:?}", imp.unsupported);
        let pis = &imp.spec.access.as_ref().unwrap().pod_identities;
        assert_eq!(pis.len(), 5);
        let cache = &pis[1];
        assert_eq!((cache.namespace.as_str(), cache.name.as_str()), ("dev", "app-cache-access"));
        assert_eq!(cache.policies.len(), 2);
        assert_eq!(cache.well_known, [WellKnownPolicy::AutoScaler, WellKnownPolicy::ExternalDns]);
        assert!(pis[2].policy_document.is_some());
        // a role of the user's: no role made, no boundary owed; the service account made when asked
        assert_eq!(pis[0].role_arn.as_deref(), Some("arn:aws:iam::111122223333:role/role-1"));
        assert!(pis[0].create_service_account && !pis[1].create_service_account);
        assert!(!pis[0].makes_role() && pis[1].makes_role());
        let cross = &pis[3];
        assert_eq!(cross.role_arn.as_deref(), Some("arn:aws:iam::111122223333:role/role-a"));
        assert_eq!(cross.target_role_arn.as_deref(), Some("arn:aws:iam::444455556666:role/role-b"));
        assert!(cross.disable_session_tags);
        assert_eq!(pis[4].target_role_arn.as_deref(), Some("arn:aws:iam::444455556666:role/role-b"));
        assert!(pis[4].makes_role() && !pis[4].disable_session_tags);
        assert_eq!(imp.spec.validate(), vec![]);
        // the one boundary given becomes every role's, with a note; the custom role names are noted too
        let access = imp.spec.access.as_ref().unwrap();
        assert_eq!(
            access.iam.permissions_boundary.as_deref(),
            Some("arn:aws:iam::111122223333:policy/permission-boundary")
        );
        let notes: Vec<&str> = imp.notes.iter().map(|n| n.path.as_str()).collect();
        assert!(notes.contains(&"iam.podIdentityAssociations[1].roleName"), "{notes:?}");
    }

    #[test]
    fn iam_service_accounts_import_whole_with_their_kubernetes_objects() {
        let imp = import(include_str!("../testdata/eksctl/13-iamserviceaccounts.yaml")).unwrap();
        assert!(imp.unsupported.is_empty(), "{:?}", imp.unsupported);
        assert_eq!(imp.spec.validate(), vec![]);
        let sas = &imp.spec.access.as_ref().unwrap().service_accounts;
        assert_eq!(sas.len(), 11);
        // eksctl makes every service account (no `roleOnly`), in the namespace it names or `default`
        assert!(sas.iter().all(|s| s.create_service_account));
        let s3 = &sas[0];
        assert_eq!((s3.namespace.as_str(), s3.name.as_str()), ("backend-apps", "s3-reader"));
        assert_eq!(s3.labels, BTreeMap::from([("aws-usage".to_string(), "application".to_string())]));
        // an inline document alone is enough for a role
        let own = sas.iter().find(|s| s.name == "autoscaler-service").unwrap();
        assert!(own.policies.is_empty() && own.well_known.is_empty() && own.policy_document.is_some());
        // a role of the user's is used as it is
        let app = sas.iter().find(|s| s.name == "some-app").unwrap();
        assert_eq!(app.role_arn.as_deref(), Some("arn:aws:iam::123:role/already-created-role-for-app"));
        assert!(!app.makes_role());
        let role_only = import(
            "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata: {name: s, region: us-west-2}\niam:\n  withOIDC: true\n  serviceAccounts:\n  - metadata: {name: a, namespace: b}\n    roleOnly: true\n    attachPolicyARNs: [arn:aws:iam::aws:policy/ReadOnlyAccess]\n",
        )
        .unwrap();
        assert!(role_only.unsupported.is_empty(), "{:?}", role_only.unsupported);
        assert!(!role_only.spec.access.unwrap().service_accounts[0].create_service_account);
    }

    /// eksctl's `examples/39-pod-identity-association.yaml` (commit `99984adb6164`, Apache-2.0).
    const EXAMPLE_39: &str = include_str!("../testdata/eksctl/39-pod-identity-association.yaml");

    /// eksctl's `examples/38-cluster-subnets-sgs.yaml` (commit `99984adb6164`, Apache-2.0, comments left out).
    const EXAMPLE_38: &str = r#"apiVersion: eksctl.io/v1alpha5
kind: ClusterConfig
metadata:
  name: cluster-38
  region: us-west-2
iam:
  withOIDC: true
vpc:
  controlPlaneSubnetIDs: [subnet-1234, subnet-5678]
  controlPlaneSecurityGroupIDs: [sg-1234, sg-5678]
  clusterEndpoints:
    publicAccess: true
    privateAccess: true
  publicAccessCIDRs: ["1.1.1.1/32"]
managedNodeGroups:
  - name: mng1
"#;

    /// eksctl's `examples/17-permissions-boundary.yaml` (commit `99984adb6164`, Apache-2.0), as it is: its
    /// service role's boundary ARN lacks a colon, so it cannot join the importable files of `testdata/`.
    const EXAMPLE_17: &str = r#"apiVersion: eksctl.io/v1alpha5
kind: ClusterConfig
metadata:
  name: cluster-17
  region: us-west-2
iam:
  withOIDC: true
  serviceRolePermissionsBoundary: "arn:aws:iam:11111:policy/entity/boundary"
  fargatePodExecutionRolePermissionsBoundary: "arn:aws:iam::11111:policy/entity/boundary"
  serviceAccounts:
    - metadata:
        name: s3-reader
      attachPolicyARNs:
      - "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"
      permissionsBoundary: "arn:aws:iam::11111:policy/entity/boundary"
nodeGroups:
  - name: "ng-1"
    desiredCapacity: 1
    iam:
      instanceRolePermissionsBoundary: "arn:aws:iam::11111:policy/entity/boundary"
"#;

    #[test]
    fn permissions_boundaries_that_agree_bound_every_role_and_others_are_refused() {
        // eksctl's example 17 with its one malformed ARN (a colon short) refused by path
        let imp = import(EXAMPLE_17).unwrap();
        let paths: Vec<&str> = imp.unsupported.iter().map(|u| u.path.as_str()).collect();
        assert_eq!(paths, ["iam.serviceRolePermissionsBoundary"], "{:?}", imp.unsupported);
        let b = "arn:aws:iam::11111:policy/entity/boundary";
        let access = imp.spec.access.as_ref().unwrap();
        assert_eq!(access.iam.permissions_boundary.as_deref(), Some(b));
        // eksctl's namespace when none is given
        assert_eq!(access.service_accounts[0].namespace, "default");
        let notes: Vec<&str> = imp.notes.iter().map(|n| n.path.as_str()).collect();
        assert!(notes.contains(&"iam.fargatePodExecutionRolePermissionsBoundary"), "{:?}", imp.notes);
        // the same file, mended: one boundary on every role, the cluster's too
        let mended = EXAMPLE_17.replace("arn:aws:iam:11111:", "arn:aws:iam::11111:");
        let imp = import(&mended).unwrap();
        assert!(imp.unsupported.is_empty(), "{:?}", imp.unsupported);
        assert_eq!(imp.spec.validate(), vec![]);
        assert!(imp.notes.iter().all(|n| !n.message.contains("unbounded")), "{:?}", imp.notes);
        // a second boundary is refused where it differs; a role eksctl leaves open is named in a note
        let two = "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata: {name: s, region: us-west-2, version: \"1.32\"}\niam:\n  serviceAccounts:\n  - {metadata: {name: a}, attachPolicyARNs: [arn:aws:iam::aws:policy/ReadOnlyAccess], permissionsBoundary: arn:aws:iam::1:policy/one}\nmanagedNodeGroups:\n- {name: n, iam: {instanceRolePermissionsBoundary: arn:aws:iam::1:policy/two}}\n- {name: m}\n";
        let imp = import(two).unwrap();
        let paths: Vec<&str> = imp.unsupported.iter().map(|u| u.path.as_str()).collect();
        assert_eq!(paths, ["managedNodeGroups[0].iam.instanceRolePermissionsBoundary"]);
        let one = two.replace("policy/two", "policy/one");
        let imp = import(&one).unwrap();
        assert!(imp.unsupported.is_empty(), "{:?}", imp.unsupported);
        let note = imp.notes.iter().find(|n| n.message.contains("unbounded")).unwrap();
        assert!(
            note.message.contains("the cluster's role") && note.message.contains("managedNodeGroups[1].iam"),
            "{note:?}"
        );
    }

    #[test]
    fn dual_stack_and_resource_names_map_onto_a_vpc_eksodus_makes_only() {
        let imp = import(&example("02-custom-vpc-cidr-no-nodes.yaml")).unwrap();
        let n = &imp.spec.network;
        assert!(n.ipv6);
        assert_eq!(n.hostname_type, HostnameType::ResourceName);
        assert_eq!(n.cidr, Some("10.10.0.0/16".parse().unwrap()));
        let adopted = r#"apiVersion: eksctl.io/v1alpha5
kind: ClusterConfig
metadata: {name: v6, region: eu-north-1}
vpc:
  id: vpc-0123456789abcdef0
  autoAllocateIPv6: true
  hostnameType: resource-name
  subnets:
    private:
      eu-north-1a: {id: subnet-0123456789abcdef0}
      eu-north-1b: {id: subnet-0123456789abcdef1}
"#;
        let imp = import(adopted).unwrap();
        let paths: Vec<&str> = imp.unsupported.iter().map(|u| u.path.as_str()).collect();
        assert_eq!(paths, ["vpc.autoAllocateIPv6", "vpc.hostnameType"], "{:#?}", imp.unsupported);
        assert!(!imp.spec.network.ipv6 && imp.spec.network.hostname_type.is_default());
        let bad = import(&example("02-custom-vpc-cidr-no-nodes.yaml").replace("resource-name", "instance-id")).unwrap();
        assert_eq!(bad.unsupported.len(), 1);
        assert!(bad.unsupported[0].path == "vpc.hostnameType" && bad.unsupported[0].reason.contains("resource-name"));
    }

    #[test]
    fn a_fully_private_cluster_gets_its_endpoints_and_loses_its_way_out() {
        let text = r#"apiVersion: eksctl.io/v1alpha5
kind: ClusterConfig
metadata: {name: private, region: us-west-2}
privateCluster:
  enabled: true
  additionalEndpointServices: [autoscaling]
cloudWatch: {clusterLogging: {enableTypes: [api]}}
managedNodeGroups:
- {name: ng, privateNetworking: true}
"#;
        let imp = import(text).unwrap();
        assert_eq!(imp.unsupported, vec![]);
        let n = &imp.spec.network;
        let names: Vec<&str> = n.vpc_endpoints.iter().map(|e| e.as_str()).collect();
        assert_eq!(names, ["ec2", "ecr.api", "ecr.dkr", "s3", "sts", "logs", "autoscaling"]);
        assert_eq!((n.nat, n.subnets.public.enabled), (NatMode::None, false));
        let c = imp.spec.cluster.as_ref().unwrap();
        assert!(!c.endpoint.public && c.endpoint.private);
        assert_eq!(imp.spec.validate(), vec![]);

        // a VPC of the user's: the endpoints are theirs to make, as eksctl's skipEndpointCreation says
        let adopted = format!(
            "{}vpc:\n  id: vpc-0123456789abcdef0\n  subnets:\n    private:\n      us-west-2a: {{id: subnet-0123456789abcdef0}}\n      us-west-2b: {{id: subnet-0123456789abcdef1}}\n",
            text.replace("  additionalEndpointServices: [autoscaling]\n", "  skipEndpointCreation: true\n")
        );
        let imp = import(&adopted).unwrap();
        assert_eq!(imp.unsupported, vec![]);
        assert!(imp.spec.network.vpc_endpoints.is_empty());
        let refused = import(&adopted.replace("  skipEndpointCreation: true\n", "")).unwrap();
        assert_eq!(refused.unsupported.len(), 1);
        assert_eq!(refused.unsupported[0].path, "privateCluster.skipEndpointCreation");
        let unknown = import(&text.replace("[autoscaling]", "[autoscaling, xray]")).unwrap();
        assert_eq!(unknown.unsupported[0].path, "privateCluster.additionalEndpointServices[1]");
    }

    #[test]
    fn volumes_metadata_and_launch_templates_map() {
        let text = r#"apiVersion: eksctl.io/v1alpha5
kind: ClusterConfig
metadata: {name: lt, region: us-west-2, version: "1.33"}
managedNodeGroups:
- name: a
  volumeSize: 100
  volumeType: io2
  volumeIOPS: 8000
  volumeEncrypted: true
  volumeKmsKeyID: arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab
  disableIMDSv1: true
  preBootstrapCommands: ["echo hi"]
- name: b
  updateConfig: {maxUnavailablePercentage: 25}
  disablePodIMDS: true
  securityGroups: {attachIDs: [sg-0abc], withShared: true}
- name: c
  launchTemplate: {id: lt-0abc}
- name: d
  launchTemplate: {id: lt-0abc, version: 4}
"#;
        let imp = import(text).unwrap();
        let ngs = &imp.spec.cluster.as_ref().unwrap().nodegroups;
        let v = ngs[0].volume.as_ref().unwrap();
        assert_eq!((v.volume_type.as_deref(), v.iops, v.encrypted), (Some("io2"), Some(8000), true));
        assert!(v.kms_key.as_deref().unwrap().ends_with("1234567890ab"));
        assert_eq!((ngs[0].disk_size, ngs[0].imds_hop_limit), (Some(100), Some(2)));
        assert_eq!(ngs[0].pre_bootstrap_commands, ["echo hi"]);
        assert_eq!((ngs[1].imds_hop_limit, ngs[1].security_groups.as_slice()), (Some(1), &["sg-0abc".to_string()][..]));
        assert_eq!(ngs[3].launch_template.as_ref().map(|l| l.version.as_str()), Some("4"));
        assert_eq!((ngs[1].max_unavailable, ngs[1].max_unavailable_percentage), (None, Some(25)));
        let paths: Vec<&str> = imp.unsupported.iter().map(|u| u.path.as_str()).collect();
        assert_eq!(
            paths,
            ["managedNodeGroups[1].securityGroups.withShared", "managedNodeGroups[2].launchTemplate.version"],
            "{:?}",
            imp.unsupported
        );
    }

    #[test]
    fn windows_families_map_to_eks_windows_types_on_roles_of_their_own() {
        // eksctl's examples 14 and 32, and the forms around them
        let text = r#"apiVersion: eksctl.io/v1alpha5
kind: ClusterConfig
metadata: {name: win, region: us-west-2, version: "1.33"}
nodeGroups:
- name: full19
  amiFamily: WindowsServer2019FullContainer
  containerRuntime: containerd
  minSize: 2
  maxSize: 3
- name: core25
  amiFamily: WindowsServer2025CoreContainer
- name: docker
  amiFamily: WindowsServer2022FullContainer
  containerRuntime: dockerd
managedNodeGroups:
- name: linux
  instanceType: t2.large
- name: arm
  amiFamily: WindowsServer2022CoreContainer
  instanceSelector: {vCPUs: 2, cpuArchitecture: arm64}
"#;
        let imp = import(text).unwrap();
        let ngs = &imp.spec.cluster.as_ref().unwrap().nodegroups;
        let by = |n: &str| ngs.iter().find(|g| g.name == n).unwrap();
        assert_eq!(by("full19").ami_type.as_deref(), Some("WINDOWS_FULL_2019_x86_64"));
        assert_eq!((by("full19").min, by("full19").max), (2, 3));
        assert_eq!(by("core25").ami_type.as_deref(), Some("WINDOWS_CORE_2025_x86_64"));
        assert!(by("core25").is_windows() && by("core25").has_own_role(), "Windows nodes get a role of their own");
        assert!(!by("linux").is_windows() && !by("linux").has_own_role());
        let mut paths: Vec<&str> = imp.unsupported.iter().map(|u| u.path.as_str()).collect();
        paths.sort();
        assert_eq!(
            paths,
            ["managedNodeGroups[1].instanceSelector.cpuArchitecture", "nodeGroups[2].containerRuntime"],
            "{:?}",
            imp.unsupported
        );
        // what is left, with the refused fields taken out, is a valid spec
        let mut spec = imp.spec.clone();
        spec.cluster.as_mut().unwrap().nodegroups.retain(|n| n.name != "arm");
        assert_eq!(spec.validate(), vec![]);
    }

    #[test]
    fn instance_selectors_map_with_the_ami_type_they_need() {
        // eksctl's example 28, and the forms around it
        let text = r#"apiVersion: eksctl.io/v1alpha5
kind: ClusterConfig
metadata: {name: sel, region: us-west-2, version: "1.33"}
nodeGroups:
- name: ng
  instanceSelector: {vCPUs: 2, memory: "4"}
managedNodeGroups:
- name: mng
  instanceSelector: {vCPUs: 2, memory: 2GiB, cpuArchitecture: x86_64}
- name: arm
  amiFamily: Bottlerocket
  spot: true
  instanceSelector: {vCPUs: 4, memory: 8192MiB, cpuArchitecture: arm64, deny: "^c"}
- name: gpu
  instanceSelector: {vCPUs: 4, gpus: 1, allow: "^g"}
- name: both
  instanceTypes: [c5.large]
  instanceSelector: {vCPUs: 2}
- name: bad
  amiFamily: Ubuntu2204
  instanceSelector: {memory: lots, cpuArchitecture: sparc, burstable: false}
"#;
        let imp = import(text).unwrap();
        let ngs = &imp.spec.cluster.as_ref().unwrap().nodegroups;
        let by = |n: &str| ngs.iter().find(|g| g.name == n).unwrap();
        let sel = |n: &str| by(n).instance_selector.clone().unwrap();
        use eksodus_core::spec::CountRange;
        assert_eq!((sel("ng").vcpus, sel("ng").memory_mib), (CountRange::exactly(2), CountRange::exactly(4096)));
        assert_eq!(sel("mng").memory_mib, CountRange::exactly(2048));
        assert!(
            by("mng").instance_types.is_empty() && by("ng").instance_types.is_empty(),
            "no default type beside a selector"
        );
        assert_eq!((sel("arm").architecture.as_str(), sel("arm").memory_mib), ("arm64", CountRange::exactly(8192)));
        assert_eq!(
            (by("arm").ami_type.as_deref(), by("arm").capacity_type.as_str()),
            (Some("BOTTLEROCKET_ARM_64"), "SPOT")
        );
        assert_eq!(sel("arm").deny.as_deref(), Some("^c"));
        assert_eq!(
            (sel("gpu").gpus, by("gpu").ami_type.as_deref()),
            (CountRange::exactly(1), Some("AL2023_x86_64_NVIDIA"))
        );
        assert_eq!(sel("ng").gpus, CountRange::none(), "no GPU types unless asked");
        assert_eq!(
            (by("both").instance_selector.as_ref(), by("both").instance_types.as_slice()),
            (None, &["c5.large".to_string()][..])
        );
        assert!(imp.notes.iter().any(|n| n.path == "managedNodeGroups[3].instanceSelector"), "{:?}", imp.notes);
        let paths: Vec<&str> = imp.unsupported.iter().map(|u| u.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "managedNodeGroups[4].instanceSelector.memory",
                "managedNodeGroups[4].instanceSelector.cpuArchitecture",
                "managedNodeGroups[4].instanceSelector.burstable",
                "managedNodeGroups[4].amiFamily",
            ],
            "{:?}",
            imp.unsupported
        );
        // what imports whole validates
        let good = import(&text[..text.find("- name: both").unwrap()]).unwrap();
        assert_eq!((good.unsupported.len(), good.spec.validate()), (0, vec![]));
        for (v, want) in [
            ("4", Some(4096)),
            ("0.5", Some(512)),
            ("512MiB", Some(512)),
            ("2 gb", Some(2048)),
            ("x", None),
            ("4TiB", None),
        ] {
            assert_eq!(eksctl_memory_mib(&serde_json::json!(v)), want, "{v}");
        }
        assert_eq!(eksctl_memory_mib(&serde_json::json!(16)), Some(16384));
    }

    #[test]
    fn an_all_spot_or_all_on_demand_distribution_maps_and_a_mix_is_refused() {
        let text = r#"apiVersion: eksctl.io/v1alpha5
kind: ClusterConfig
metadata: {name: spot, region: us-west-2, version: "1.33"}
nodeGroups:
- name: all-spot
  instancesDistribution:
    instanceTypes: [m5.large, m5a.large, m6i.large]
    onDemandBaseCapacity: 0
    onDemandPercentageAboveBaseCapacity: 0
    spotAllocationStrategy: capacity-optimized
- name: on-demand
  instancesDistribution: {instanceTypes: [c5.large]}
- name: mixed
  instancesDistribution:
    instanceTypes: [m5.large]
    onDemandBaseCapacity: 2
    onDemandPercentageAboveBaseCapacity: 50
    spotInstancePools: 2
"#;
        let imp = import(text).unwrap();
        let ngs = &imp.spec.cluster.as_ref().unwrap().nodegroups;
        assert_eq!((ngs[0].capacity_type.as_str(), ngs[0].instance_types.len()), ("SPOT", 3));
        assert_eq!(
            (ngs[1].capacity_type.as_str(), ngs[1].instance_types.as_slice()),
            ("ON_DEMAND", &["c5.large".to_string()][..])
        );
        let paths: Vec<&str> = imp.unsupported.iter().map(|u| u.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "nodeGroups[2].instancesDistribution.onDemandPercentageAboveBaseCapacity",
                "nodeGroups[2].instancesDistribution.spotInstancePools"
            ],
            "{:?}",
            imp.unsupported
        );
    }

    /// Example 05: what a self-managed group's Auto Scaling group took is refused with the reason, not as
    /// unknown keys; example 33: Local Zones map to the network's, and a nodegroup's to its zones.
    #[test]
    fn load_balancers_and_group_metrics_are_refused_and_local_zones_map() {
        let text = "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata: {name: c, region: us-west-2}\nlocalZones: [us-west-2-lax-1a, us-west-2-lax-1b]\nnodeGroups:\n- name: a\n  targetGroupARNs: [arn:aws:elasticloadbalancing:us-west-2:111122223333:targetgroup/t/1]\n  classicLoadBalancerNames: [clb]\n  asgMetricsCollection: [{granularity: 1Minute}]\n  localZones: [us-west-2-lax-1a]\n";
        let imp = import(text).unwrap();
        let un = &imp.unsupported;
        let by: BTreeMap<&str, &str> = un.iter().map(|u| (u.path.as_str(), u.reason.as_str())).collect();
        assert_eq!(by.len(), 3, "{un:?}");
        assert!(by["nodeGroups[0].targetGroupARNs"].contains("TargetGroupBinding"));
        assert!(by["nodeGroups[0].classicLoadBalancerNames"].contains("Service of type LoadBalancer"));
        assert!(by["nodeGroups[0].asgMetricsCollection"].contains("group metrics"));
        assert!(un.iter().all(|u| !u.reason.contains("no equivalent")), "{un:?}");
        assert_eq!(imp.spec.network.local_zones, ["us-west-2-lax-1a", "us-west-2-lax-1b"]);
        assert_eq!(imp.spec.cluster.as_ref().unwrap().nodegroups[0].zones, ["us-west-2-lax-1a"]);

        // the nodegroup runs where eksctl puts it: only in its Local Zones
        let ok = "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata: {name: c, region: us-west-2}\nlocalZones: [us-west-2-lax-1a]\nnodeGroups:\n- name: local-ng\n  localZones: [us-west-2-lax-1a]\n";
        let imp = import(ok).unwrap();
        assert!(imp.unsupported.is_empty(), "{:?}", imp.unsupported);
        assert_eq!(imp.spec.validate(), vec![]);
    }

    /// Examples 35 to 37 and eksctl's extended clusters: Outposts are refused, for the cluster and for a
    /// nodegroup, with EKS's reason.
    #[test]
    fn outposts_are_refused_with_the_reason() {
        let text = "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata: {name: c, region: us-west-2}\noutpost: {controlPlaneOutpostARN: 'arn:aws:outposts:us-west-2:1234:outpost/op-1234', controlPlaneInstanceType: m5.xlarge}\nnodeGroups:\n- name: outpost-ng\n  privateNetworking: true\n  outpostARN: 'arn:aws:outposts:us-west-2:1234:outpost/op-1234'\n";
        let un = import(text).unwrap().unsupported;
        let paths: Vec<&str> = un.iter().map(|u| u.path.as_str()).collect();
        assert_eq!(paths.len(), 2, "{un:?}");
        for p in ["outpost", "nodeGroups[0].outpostARN"] {
            let u = un.iter().find(|u| u.path == p).unwrap_or_else(|| panic!("{p}: {un:?}"));
            assert!(u.reason.contains("no managed nodegroups on an Outpost"), "{p}: {}", u.reason);
        }
    }

    /// Example 43: hybrid nodes on an SSM role eksodus makes; a role of the user's is used as it is; IAM Roles
    /// Anywhere (without a role of the user's) and a gateway to route through are refused with their reasons.
    #[test]
    fn hybrid_nodes_map_with_ssm_or_the_users_role() {
        let imp = import(&example("43-hybrid-nodes.yaml")).unwrap();
        assert_eq!(imp.unsupported, vec![]);
        let r = imp.spec.cluster.as_ref().unwrap().remote_network.clone().unwrap();
        assert_eq!(r.node_cidrs, ["10.80.146.0/24".parse::<ipnet::Ipv4Net>().unwrap()]);
        assert!(r.pod_cidrs.is_empty() && r.owns_role());
        assert_eq!(imp.spec.validate(), vec![]);
        let head = "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata: {name: h, region: us-west-2, version: '1.33'}\n";
        let with = |rnc: &str| import(&format!("{head}remoteNetworkConfig: {rnc}\n")).unwrap();
        let own = with("{iam: {provider: IRA, roleARN: 'arn:aws:iam::111122223333:role/hybrid', caBundleCert: pem}, remoteNodeNetworks: [{cidrs: [10.80.0.0/16]}], remotePodNetworks: [{cidrs: [10.81.0.0/16]}]}");
        assert_eq!(own.unsupported, vec![]);
        let r = own.spec.cluster.unwrap().remote_network.unwrap();
        assert_eq!(r.role_arn.as_deref(), Some("arn:aws:iam::111122223333:role/hybrid"));
        assert_eq!(r.pod_cidrs.len(), 1);
        assert_eq!(
            own.notes.iter().map(|n| n.path.as_str()).collect::<Vec<_>>(),
            ["remoteNetworkConfig.iam.caBundleCert"]
        );
        let refused = with("{iam: {provider: IRA, caBundleCert: pem}, vpcGatewayID: tgw-1, remoteNodeNetworks: [{cidrs: [10.80.0.0/16, nope]}]}");
        let paths: Vec<&str> = refused.unsupported.iter().map(|u| u.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "remoteNetworkConfig.remoteNodeNetworks[0].cidrs[1]",
                "remoteNetworkConfig.iam.provider",
                "remoteNetworkConfig.vpcGatewayID"
            ]
        );
        assert!(refused.unsupported[1].reason.contains("Roles Anywhere"), "{:?}", refused.unsupported[1]);
        assert!(refused.unsupported[2].reason.contains("route tables"), "{:?}", refused.unsupported[2]);
    }

    /// Examples 47 and 48: ACK and kro on roles eksodus makes, Argo CD with its Identity Center and role
    /// mappings; what EKS lacks is refused by path.
    #[test]
    fn capabilities_map_with_their_roles_policies_and_argocd_settings() {
        let imp = import(&example("47-auto-mode-with-ack-kro-capabilities.yaml")).unwrap();
        assert_eq!(imp.unsupported, vec![]);
        let caps = &imp.spec.cluster.as_ref().unwrap().capabilities;
        assert_eq!(caps.iter().map(|c| c.kind.as_str()).collect::<Vec<_>>(), ["ACK", "KRO"]);
        assert_eq!(caps[0].attach_policy_arns, ["arn:aws:iam::aws:policy/AdministratorAccess"]);
        assert!(caps[0].owns_role() && caps[1].access_policies[0].policy.ends_with("/AmazonEKSClusterAdminPolicy"));
        assert_eq!(caps[1].tags["Team"], "platform");
        let imp = import(&example("48-auto-mode-with-argocd-capabilities.yaml")).unwrap();
        assert_eq!(imp.unsupported, vec![]);
        let argo = imp.spec.cluster.as_ref().unwrap().capabilities[0].argocd.clone().unwrap();
        assert_eq!((argo.namespace.as_str(), argo.idc_region.as_deref()), ("argocd", Some("us-west-2")));
        assert_eq!(
            argo.rbac_role_mappings[0].identities.iter().map(|i| i.kind.as_str()).collect::<Vec<_>>(),
            ["SSO_USER", "SSO_GROUP"]
        );
        // a type EKS does not have, a propagation policy other than RETAIN, an inline policy, an unknown key
        let text = "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata: {name: c, region: us-west-2}\ncapabilities:\n- {name: a, type: FLUX}\n- {name: b, type: ACK, deletePropagationPolicy: DELETE, attachPolicy: {Version: '2012-10-17'}, extra: 1}\n- {name: k, type: KRO, roleArn: 'arn:aws:iam::111122223333:role/k', permissionsBoundary: 'arn:aws:iam::111122223333:policy/b'}\n";
        let imp = import(text).unwrap();
        let paths: Vec<&str> = imp.unsupported.iter().map(|u| u.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "capabilities[0].type",
                "capabilities[1].deletePropagationPolicy",
                "capabilities[1].attachPolicy",
                "capabilities[1].extra"
            ]
        );
        assert!(imp.notes.iter().any(|n| n.path == "capabilities[2].permissionsBoundary"), "{:?}", imp.notes);
    }

    #[test]
    fn fargate_profiles_map_with_their_selectors_tags_and_role() {
        let imp = import(&example("16-fargate-profile.yaml")).unwrap();
        assert!(imp.unsupported.is_empty(), "{:?}", imp.unsupported);
        let c = imp.spec.cluster.unwrap();
        let names: Vec<&str> = c.fargate_profiles.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["fp-default", "fp-dev"]);
        let ns: Vec<&str> = c.fargate_profiles[0].selectors.iter().map(|s| s.namespace.as_str()).collect();
        assert_eq!(ns, ["default", "kube-system"]);
        let dev = &c.fargate_profiles[1];
        assert_eq!(dev.selectors[0].labels["checks"], "passed");
        assert_eq!(dev.tags["name"], "fp-dev");
        assert!(c.owns_fargate_role());
        // a role of the user's, and subnets outside an adopted VPC refused by path
        let text = "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata: {name: c, region: us-west-2}\niam:\n  fargatePodExecutionRolePermissionsBoundary: arn:aws:iam::111122223333:policy/b\nfargateProfiles:\n- name: fp\n  podExecutionRoleARN: arn:aws:iam::111122223333:role/fp\n  subnets: [subnet-1]\n  selectors: [{namespace: default, extra: 1}]\n";
        let imp = import(text).unwrap();
        let paths: Vec<&str> = imp.unsupported.iter().map(|u| u.path.as_str()).collect();
        assert_eq!(paths, ["fargateProfiles[0].selectors[0].extra", "fargateProfiles[0].subnets[0]"]);
        let fp = &imp.spec.cluster.unwrap().fargate_profiles[0];
        assert_eq!(fp.pod_execution_role_arn.as_deref(), Some("arn:aws:iam::111122223333:role/fp"));
        // the boundary has no role of eksodus's to go on
        assert!(imp.notes.iter().any(|n| n.path == "iam.fargatePodExecutionRolePermissionsBoundary"));
    }

    #[test]
    fn examples_map_as_expected() {
        let imp = import(&example("01-simple-cluster.yaml")).unwrap();
        assert!(imp.unsupported.is_empty(), "{:?}", imp.unsupported);
        let c = imp.spec.cluster.unwrap();
        assert_eq!(c.logging, ["audit", "authenticator", "controllerManager"]);
        assert_eq!(c.nodegroups[0].instance_types, ["m5.large"]);
        assert_eq!(c.nodegroups[0].desired, 1);

        let imp = import(&example("09-nat-gateways.yaml")).unwrap();
        assert_eq!(imp.spec.network.nat, NatMode::PerAz);

        let imp = import(&example("04-existing-vpc.yaml")).unwrap();
        let ex = imp.spec.network.existing.unwrap();
        assert_eq!(ex.vpc_id, "vpc-0dd338ecf29863c55");
        assert_eq!(ex.subnet_ids.len(), 3);

        let imp = import(&example("40-access-entries.yaml")).unwrap();
        let a = imp.spec.access.unwrap();
        assert_eq!(a.authentication_mode, Some(AuthenticationMode::Api));
        assert_eq!(a.entries.len(), 4);
        assert_eq!(a.entries[1].policies[0].namespaces, ["default", "my-namespace", "dev-*"]);
        assert!(!imp.spec.cluster.unwrap().bootstrap_admin);

        let imp = import(&example("25-addons.yaml")).unwrap();
        assert!(imp.unsupported.is_empty(), "{:?}", imp.unsupported);
        let oldest = eksodus_core::spec::KUBERNETES_VERSIONS[0];
        assert_eq!(
            imp.spec.cluster.as_ref().unwrap().version,
            oldest,
            "1.18 is long gone: raised to the oldest offered"
        );
        assert_eq!(imp.notes.len(), 1, "{:?}", imp.notes);
        assert!(imp.notes[0].path == "metadata.version" && imp.notes[0].message.contains("1.18"), "{:?}", imp.notes);
        let addons = imp.spec.cluster.unwrap().addons;
        assert!(addons
            .iter()
            .any(|a| a.name == "aws-ebs-csi-driver" && a.well_known == [WellKnownPolicy::EbsCsiController]));

        let imp = import(&example("15-managed-nodes.yaml")).unwrap();
        let paths: Vec<&str> = imp.unsupported.iter().map(|u| u.path.as_str()).collect();
        assert!(!paths.iter().any(|p| p.contains(".ssh.")), "every ssh field maps on its own: {paths:?}");
        for p in
            ["managedNodeGroups[0].tags", "managedNodeGroups[0].securityGroups", "managedNodeGroups[3].launchTemplate"]
        {
            assert!(!paths.iter().any(|x| x.starts_with(p)), "{p} maps: {paths:?}");
        }
        let ngs = &imp.spec.cluster.as_ref().unwrap().nodegroups;
        assert_eq!(ngs[0].security_groups, ["sg-1", "sg-2"]);
        assert_eq!(
            ngs[3].launch_template,
            Some(eksodus_core::spec::LaunchTemplateRef { id: "lt-1234".into(), version: "3".into() })
        );
        let ng = &imp.spec.cluster.as_ref().unwrap().nodegroups[0];
        assert_eq!((ng.min, ng.desired, ng.max, ng.max_unavailable), (2, 3, 4, Some(3)));
        assert_eq!(ng.tags["nodegroup-role"], "worker");
        assert_eq!(ng.iam.well_known, [WellKnownPolicy::ExternalDns, WellKnownPolicy::CertManager]);
        // a custom AMI with its own bootstrap command maps (the example's placeholder ID is refused by validation)
        let custom = &imp.spec.cluster.as_ref().unwrap().nodegroups[2];
        assert_eq!(custom.ami.as_deref(), Some("ami-custom"));
        assert_eq!(custom.ami_type.as_deref(), Some("AL2_x86_64"));
        assert!(custom.override_bootstrap_command.as_deref().unwrap().contains("/etc/eks/bootstrap.sh cluster-15"));
        assert!(!paths.iter().any(|p| p.starts_with("managedNodeGroups[2]")), "{paths:?}");
        // its security groups make a launch template eksodus owns: the key file becomes the template's key
        // pair and the groups allowed in an SSH security group of the nodegroup; nothing of the file is lost
        let ssh = ng.ssh.as_ref().unwrap();
        assert_eq!(ssh.public_key_file.as_deref(), Some("~/.ssh/ec2_id_rsa.pub"));
        assert_eq!(ssh.source_security_groups, ["sg-00241fbb12c607007"]);
        assert!(ng.owns_template());
        assert!(imp.unsupported.is_empty(), "{:?}", imp.unsupported);

        // a named key pair with the groups allowed to reach it is EKS remote access; SSM alone needs nothing;
        // without groups the VPC may reach port 22 (eksctl's rule for private nodes, narrowed for public ones
        // with a note), and `allow: false` puts the key on the nodes with no rule at all
        let text = "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata: {name: s, region: us-west-2, version: \"1.32\"}\nvpc: {cidr: 10.40.0.0/16}\nmanagedNodeGroups:\n- name: a\n  ssh: {allow: true, publicKeyName: ops, sourceSecurityGroupIds: [sg-0123]}\n- name: b\n  ssh: {enableSsm: true}\n- name: c\n  ssh: {allow: true, publicKeyName: ops}\n- name: d\n  privateNetworking: true\n  ssh: {publicKeyName: ops}\n- name: e\n  ssh: {publicKeyName: ops, allow: false, sourceSecurityGroupIds: [sg-0123]}\n";
        let imp = import(text).unwrap();
        assert!(imp.unsupported.is_empty(), "{:?}", imp.unsupported);
        let ngs = &imp.spec.cluster.as_ref().unwrap().nodegroups;
        assert_eq!(ngs[0].ssh.as_ref().unwrap().key_name, "ops");
        assert_eq!(ngs[0].ssh.as_ref().unwrap().source_security_groups, ["sg-0123"]);
        assert!(!ngs[0].owns_template(), "groups alone are EKS's remote access");
        assert!(ngs[1].ssh.is_none());
        let vpc = "10.40.0.0/16".parse().unwrap();
        for ng in &ngs[2..4] {
            let ssh = ng.ssh.as_ref().unwrap();
            assert_eq!((ssh.source_cidrs.as_slice(), ssh.source_security_groups.len()), (&[vpc][..], 0), "{}", ng.name);
            assert!(ng.owns_template(), "{}: remote access takes no CIDRs", ng.name);
        }
        let notes: Vec<&str> = imp.notes.iter().map(|n| n.path.as_str()).collect();
        assert_eq!(notes, ["managedNodeGroups[2].ssh"], "only the public nodegroup is narrowed: {:?}", imp.notes);
        let key_only = ngs[4].ssh.as_ref().unwrap();
        assert!(key_only.source_security_groups.is_empty() && key_only.source_cidrs.is_empty(), "{key_only:?}");
        assert!(ngs[4].owns_template());
        // an adopted VPC's CIDR is not known offline
        let text = "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata: {name: s, region: us-west-2, version: \"1.32\"}\nvpc:\n  id: vpc-1\n  subnets: {private: {us-west-2a: {id: subnet-1}}}\nmanagedNodeGroups:\n- {name: a, privateNetworking: true, ssh: {allow: true, publicKeyName: ops}}\n";
        let paths: Vec<String> = import(text).unwrap().unsupported.into_iter().map(|u| u.path).collect();
        assert_eq!(paths, ["managedNodeGroups[0].ssh.sourceSecurityGroupIds"]);
        assert_eq!(ng.taints[1].effect, "NO_EXECUTE");

        // the instance name of a self-managed nodegroup maps to a launch template eksodus makes
        let imp = import(&example("03-two-nodegroups.yaml")).unwrap();
        assert!(imp.unsupported.is_empty(), "{:?}", imp.unsupported);
        assert_eq!(imp.spec.cluster.as_ref().unwrap().nodegroups[0].instance_name.as_deref(), Some("custom-node-name"));
        assert!(imp.spec.cluster.as_ref().unwrap().nodegroups[0].owns_template());

        let imp = import(&example("35-iamidentitymappings.yaml")).unwrap();
        assert!(imp.unsupported.is_empty(), "{:?}", imp.unsupported);
        let a = imp.spec.access.unwrap();
        assert_eq!(a.mappings.len(), 2);
        assert_eq!(a.accounts, ["000000000000"]);
        assert_eq!(
            a.service_access,
            [eksodus_core::spec::ServiceAccessSpec { service: "emr-containers".into(), namespace: "emr".into() }]
        );

        let imp = import(&example("27-oidc-provider.yaml")).unwrap();
        assert!(imp.unsupported.is_empty(), "{:?}", imp.unsupported);
        let idp = &imp.spec.cluster.unwrap().identity_providers[0];
        assert_eq!(
            (idp.name.as_str(), idp.client_id.as_str(), idp.username_claim.as_deref()),
            ("cognito-user-pool-1", "10basodnbu3gs9b1bf9r566btu", Some("email"))
        );
        assert_eq!(idp.issuer_url, "https://cognito-idp.us-west-2.amazonaws.com/us-west-2_Ur78RxTra");
    }

    #[test]
    fn old_versions_are_raised_with_a_note_and_unknown_ones_refused() {
        let doc = |v: &str| {
            format!("apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata: {{name: x, region: us-east-1, version: '{v}'}}\n")
        };
        let offered = eksodus_core::spec::KUBERNETES_VERSIONS;
        let imp = import(&doc("1.23")).unwrap();
        assert_eq!((imp.unsupported.len(), imp.notes.len()), (0, 1));
        assert_eq!(imp.spec.cluster.unwrap().version, offered[0]);
        let imp = import(&doc(offered[1])).unwrap();
        assert!(imp.notes.is_empty() && imp.unsupported.is_empty());
        assert_eq!(imp.spec.cluster.unwrap().version, offered[1], "an offered version is kept as it is");
        for v in ["1.99", "latest", "2.0"] {
            let imp = import(&doc(v)).unwrap();
            assert!(imp.notes.is_empty(), "{v}");
            assert_eq!(
                imp.unsupported.iter().map(|u| u.path.as_str()).collect::<Vec<_>>(),
                ["metadata.version"],
                "{v}"
            );
        }
    }

    #[test]
    fn well_known_policies_and_addon_policies_map_to_sets_and_unknown_keys_are_named() {
        let text = "apiVersion: eksctl.io/v1alpha5
kind: ClusterConfig
metadata: {name: wk, region: eu-west-1, version: '1.31'}
iam:
  withOIDC: true
  serviceAccounts:
    - metadata: {name: external-dns, namespace: kube-system}
      wellKnownPolicies: {externalDNS: true, certManager: false}
    - metadata: {name: builder, namespace: ci}
      wellKnownPolicies: {imageBuilder: true, teleport: true}
addons:
  - {name: aws-efs-csi-driver, wellKnownPolicies: {efsCSIController: true}}
managedNodeGroups:
  - name: ng
    iam: {withAddonPolicies: {autoScaler: true, albIngress: true, cloudWatch: true, ebs: false, flux: true}}
";
        let imp = import(text).unwrap();
        let paths: Vec<&str> = imp.unsupported.iter().map(|u| u.path.as_str()).collect();
        assert_eq!(
            paths,
            ["iam.serviceAccounts[1].wellKnownPolicies.teleport", "managedNodeGroups[0].iam.withAddonPolicies.flux"]
        );
        let a = imp.spec.access.unwrap();
        assert_eq!(a.service_accounts[0].well_known, [WellKnownPolicy::ExternalDns]);
        assert!(a.service_accounts[0].policies.is_empty());
        assert_eq!(a.service_accounts[1].well_known, [WellKnownPolicy::ImageBuilder]);
        let c = imp.spec.cluster.unwrap();
        assert_eq!(c.addons[0].well_known, [WellKnownPolicy::EfsCsiController]);
        assert_eq!(
            c.nodegroups[0].iam.well_known,
            [WellKnownPolicy::AutoScaler, WellKnownPolicy::AwsLoadBalancerController, WellKnownPolicy::CloudWatch]
        );
        assert!(c.nodegroups[0].iam.has_own_role());
    }

    #[test]
    fn not_eksctl_is_refused() {
        assert!(import("kind: Pod\napiVersion: v1\n").is_err());
        assert!(import("[").is_err());
        assert!(!is_eksctl("name: x"));
    }
}
