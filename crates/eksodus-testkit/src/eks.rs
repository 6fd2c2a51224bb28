//! The EKS operations moto lacks, answered by the proxy following the EKS API model (paths, JSON shapes,
//! error codes), with state per cluster that exists in moto:
//!
//! - access entries: `CreateAccessEntry`, `DescribeAccessEntry`, `ListAccessEntries`, `UpdateAccessEntry`,
//!   `DeleteAccessEntry`, `AssociateAccessPolicy`, `DisassociateAccessPolicy`, `ListAssociatedAccessPolicies`,
//!   `ListAccessPolicies`;
//! - Pod Identity associations: `Create`, `Describe`, `List`, `Update` and `DeletePodIdentityAssociation`;
//! - the authentication mode: `UpdateClusterConfig` with `accessConfig` (moto would wipe the VPC config), the
//!   `accessConfig` moto leaves out of `DescribeCluster`, and `DescribeUpdate` of those updates;
//! - the cluster's zonal shift and scaling tier, which moto's `CreateCluster` drops and its
//!   `UpdateClusterConfig` does not know: kept here, reported by `DescribeCluster`, changed by updates;
//! - Auto Mode's `computeConfig`, `storageConfig` and load balancing, which moto drops: kept, reported and
//!   changed together by `UpdateClusterConfig`, as EKS requires;
//! - the cluster's IP family and, for an IPv6 cluster, the service range EKS assigns (moto echoes the
//!   request's `kubernetesNetworkConfig`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use hyper::StatusCode;
use serde_json::{json, Value};

/// The access policies EKS offers (`ListAccessPolicies`).
pub const ACCESS_POLICIES: &[&str] = &[
    "AmazonEKSAdminPolicy",
    "AmazonEKSAdminViewPolicy",
    "AmazonEKSClusterAdminPolicy",
    "AmazonEKSEditPolicy",
    "AmazonEKSViewPolicy",
    "AmazonEKSAutoNodePolicy",
    "AmazonEKSBlockStoragePolicy",
    "AmazonEKSComputePolicy",
    "AmazonEKSLoadBalancingPolicy",
    "AmazonEKSNetworkingPolicy",
    "AmazonEKSACKPolicy",
    "AmazonEKSKROPolicy",
    "AmazonEKSArgoCDClusterPolicy",
    "AmazonEKSArgoCDPolicy",
];

/// The control plane's scaling tiers (EKS's `ProvisionedControlPlaneTier`).
const TIERS: &[&str] = &["standard", "tier-xl", "tier-2xl", "tier-4xl", "tier-8xl"];

/// Completes `kubernetesNetworkConfig` as EKS reports it: moto echoes the request, so a cluster created with
/// `ipFamily: ipv6` lacks the service range EKS assigns, and one created without a family lacks `ipFamily`.
/// EKS picks an IPv6 cluster's service range itself, a /108 of unique local addresses (fc00::/7), and reports
/// no IPv4 range for it; here the range is derived from the cluster name, so it is stable across describes.
fn network_config(name: &str, cluster: &mut Value) {
    let k = &mut cluster["kubernetesNetworkConfig"];
    if !k.is_object() {
        *k = json!({});
    }
    let family = k["ipFamily"].as_str().unwrap_or("ipv4").to_string();
    k["ipFamily"] = json!(family);
    if family == "ipv6" {
        // FNV-1a: a fixed hash, the same in every run and on every machine
        let h = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        let [a, b, c, d, e, ..] = h.to_be_bytes();
        k["serviceIpv6Cidr"] = json!(format!("fd{a:02x}:{b:02x}{c:02x}:{d:02x}{e:02x}::/108"));
        if let Some(m) = k.as_object_mut() {
            m.remove("serviceIpv4Cidr");
        }
    }
}

/// Operations answered here rather than by moto.
pub fn emulated(operation: &str) -> bool {
    matches!(
        operation,
        "CreateAccessEntry"
            | "DescribeAccessEntry"
            | "ListAccessEntries"
            | "UpdateAccessEntry"
            | "DeleteAccessEntry"
            | "AssociateAccessPolicy"
            | "DisassociateAccessPolicy"
            | "ListAssociatedAccessPolicies"
            | "ListAccessPolicies"
            | "CreatePodIdentityAssociation"
            | "DescribePodIdentityAssociation"
            | "ListPodIdentityAssociations"
            | "UpdatePodIdentityAssociation"
            | "DeletePodIdentityAssociation"
            | "CreateAddon"
            | "DescribeAddon"
            | "ListAddons"
            | "UpdateAddon"
            | "DeleteAddon"
            | "DescribeAddonVersions"
            | "UpdateClusterVersion"
            | "UpdateNodegroupVersion"
            | "ListUpdates"
            | "AssociateIdentityProviderConfig"
            | "DescribeIdentityProviderConfig"
            | "ListIdentityProviderConfigs"
            | "DisassociateIdentityProviderConfig"
            | "CreateFargateProfile"
            | "DescribeFargateProfile"
            | "ListFargateProfiles"
            | "DeleteFargateProfile"
            | "CreateCapability"
            | "DescribeCapability"
            | "ListCapabilities"
            | "UpdateCapability"
            | "DeleteCapability"
    )
}

/// The addon catalogue the emulator offers: name, then (version, oldest and newest compatible Kubernetes minor),
/// newest first. Emulator data shaped like EKS's, not a statement of what EKS offers today. kube-proxy gets
/// one version per Kubernetes minor, as on EKS.
/// An addon's versions: (version, oldest and newest compatible Kubernetes minor), newest first.
type AddonVersions = &'static [(&'static str, u32, u32)];

const ADDON_CATALOGUE: &[(&str, AddonVersions)] = &[
    ("vpc-cni", &[("v1.20.1-eksbuild.1", 29, 35), ("v1.19.5-eksbuild.1", 28, 34)]),
    ("coredns", &[("v1.12.1-eksbuild.2", 33, 35), ("v1.11.4-eksbuild.2", 29, 32), ("v1.10.1-eksbuild.18", 28, 30)]),
    ("aws-ebs-csi-driver", &[("v1.44.0-eksbuild.1", 28, 35)]),
    ("eks-pod-identity-agent", &[("v1.3.7-eksbuild.2", 28, 35)]),
];

fn minor(v: &str) -> Option<u32> {
    v.trim_start_matches('v').split('.').nth(1)?.parse().ok()
}

/// (version, compatible minors) of an addon, newest first.
fn addon_versions(name: &str) -> Option<Vec<(String, Vec<u32>)>> {
    if name == "kube-proxy" {
        return Some((28..=35).rev().map(|m| (format!("v1.{m}.0-eksbuild.1"), vec![m])).collect());
    }
    let (_, vs) = ADDON_CATALOGUE.iter().find(|(n, _)| *n == name)?;
    Some(vs.iter().map(|(v, lo, hi)| (v.to_string(), (*lo..=*hi).collect())).collect())
}

/// The version EKS would install for a cluster minor: the newest compatible one.
fn default_addon_version(name: &str, cluster_minor: u32) -> Option<String> {
    addon_versions(name)?.into_iter().find(|(_, c)| c.contains(&cluster_minor)).map(|(v, _)| v)
}

#[derive(Debug, Clone, Default)]
struct Entry {
    body: Value,
    policies: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Default)]
struct ClusterExtras {
    mode: String,
    bootstrap_admin: bool,
    creator: Option<(String, String, String, String)>,
    entries: BTreeMap<String, Entry>,
    updates: BTreeMap<String, Value>,
    pod_identities: BTreeMap<String, Value>,
    /// Kubernetes version as upgraded here (moto keeps the creation version).
    version: Option<String>,
    /// Describes left before the cluster settles, and the status it shows meanwhile.
    cluster_pending: (u32, &'static str),
    nodegroups: BTreeMap<String, NodegroupExtras>,
    addons: BTreeMap<String, (Value, u32)>,
    /// OIDC identity provider configs: the config, and describes left in its transient status (CREATING, or
    /// DELETING before it is gone).
    identity_providers: BTreeMap<String, (Value, u32)>,
    /// Fargate profiles: the profile as it settles, and describes left in its transient status (CREATING,
    /// or DELETING before it is gone).
    fargate_profiles: BTreeMap<String, (Value, u32)>,
    /// Capabilities: the capability as it settles, and describes left in its transient status (CREATING,
    /// UPDATING, or DELETING before it is gone).
    capabilities: BTreeMap<String, (Value, u32)>,
    /// Capabilities whose role's access entry EKS has not made yet: calls to the cluster left before it does,
    /// counted once the capability shows ACTIVE (EKS makes the entry a while after, as eksctl's wait for it
    /// shows).
    capability_entries_due: BTreeMap<String, u32>,
    /// Describes left before an update settles.
    update_pending: BTreeMap<String, u32>,
    /// `logging` and `resourcesVpcConfig` fields set by `UpdateClusterConfig` (moto would replace the whole
    /// VPC config), merged into `DescribeCluster`.
    config: serde_json::Map<String, Value>,
    /// Answers by `operation|path|clientRequestToken`.
    answered: BTreeMap<String, Value>,
    /// The cluster security group the emulation made in moto's EC2.
    security_group: Option<String>,
    /// Nodegroups whose launch template names an AMI (EKS reports them as `CUSTOM`).
    custom_ami: BTreeSet<String>,
}

#[derive(Debug, Clone, Default)]
struct NodegroupExtras {
    version: Option<String>,
    pending: (u32, &'static str),
    /// Whether the create asked for remote access: moto answers a default `remoteAccess` (key `eksKeypair`)
    /// for nodegroups created without one, which EKS does not.
    remote_access: bool,
    /// The create's `nodeRepairConfig`, which moto's CreateNodegroup drops (its UpdateNodegroupConfig keeps
    /// one, and then moto's answer carries it).
    node_repair: Option<Value>,
    /// The launch template (ID) the nodegroup was created with.
    template: Option<String>,
    /// The launch template version an update moved the nodegroup to.
    template_version: Option<String>,
    /// The nodegroup's tags: moto's TagResource and UntagResource take only cluster ARNs, so the emulation
    /// keeps them from the create on and answers `tags` in DescribeNodegroup from here.
    tags: serde_json::Map<String, Value>,
    /// The ARN moto gave it (seen in its first describe), so a stale ARN of an earlier nodegroup of the same
    /// name is not found, as in EKS.
    arn: Option<String>,
}

/// How the emulated EKS behaves: describes before resources settle, and which ones fail.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// Describes that show CREATING/UPDATING/DELETING (InProgress) before settling.
    pub pending_describes: u32,
    /// Names of clusters, nodegroups or addons that settle as failed.
    pub fail: Vec<String>,
}

/// State of the emulated operations, per (account, region, cluster).
#[derive(Debug, Default)]
pub struct EksState {
    clusters: Mutex<HashMap<(String, String, String), ClusterExtras>>,
}

/// A request as the emulation sees it.
#[derive(Debug)]
pub struct Req<'a> {
    /// Operation name.
    pub operation: &'a str,
    /// URL path.
    pub path: &'a str,
    /// JSON body (empty for GET/DELETE).
    pub body: &'a [u8],
    /// Account the call is for.
    pub account: &'a str,
    /// Region from the signature.
    pub region: &'a str,
    /// Query string (without `?`).
    pub query: &'a str,
    /// Emulated behaviour.
    pub behaviour: &'a Behaviour,
}

/// An answer: status, JSON body, and the error type header for failures.
pub type Answer = (StatusCode, Value, Option<&'static str>);

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn err(status: u16, code: &'static str, message: String) -> Answer {
    (StatusCode::from_u16(status).expect("status"), json!({"message": message}), Some(code))
}

fn decode(s: &str) -> String {
    urlencoding::decode(s).map(|c| c.into_owned()).unwrap_or_else(|_| s.to_string())
}

/// `arn:aws:iam::123:role/path/name` → ("role", "123", "name").
fn principal_parts(arn: &str) -> Option<(&str, &str, &str)> {
    let p: Vec<&str> = arn.splitn(6, ':').collect();
    if p.len() != 6 || p[0] != "arn" || p[2] != "iam" || p[4].len() != 12 {
        return None;
    }
    let (kind, rest) = p[5].split_once('/')?;
    if kind != "role" && kind != "user" {
        return None;
    }
    Some((kind, p[4], rest.rsplit('/').next()?))
}

impl ClusterExtras {
    /// The cluster creator's admin entry, as EKS adds it when the mode first reads access entries.
    fn add_creator_entry(&mut self) {
        let Some((account, region, name, creator)) = self.creator.clone() else { return };
        if self.entries.contains_key(&creator) {
            return;
        }
        let mut e = new_entry(&account, &region, &name, &creator, "STANDARD", vec![], None, json!({}));
        let admin = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy";
        e.policies.insert(admin.to_string(), json!({"policyArn": admin, "accessScope": {"type": "cluster", "namespaces": []}, "associatedAt": now(), "modifiedAt": now()}));
        self.entries.insert(creator, e);
    }
}

impl EksState {
    /// Records the `accessConfig` of a cluster moto just created (moto ignores it), with the creator's
    /// admin entry when the mode reads entries and `bootstrapClusterCreatorAdminPermissions` is not false.
    pub fn cluster_created(&self, account: &str, region: &str, request: &[u8], creator: &str, b: &Behaviour) {
        let body: Value = serde_json::from_slice(request).unwrap_or_default();
        let Some(name) = body["name"].as_str() else { return };
        let mode = body
            .pointer("/accessConfig/authenticationMode")
            .and_then(Value::as_str)
            .unwrap_or("CONFIG_MAP")
            .to_string();
        let bootstrap = body
            .pointer("/accessConfig/bootstrapClusterCreatorAdminPermissions")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let mut extras = ClusterExtras {
            mode: mode.clone(),
            bootstrap_admin: bootstrap,
            creator: Some((account.into(), region.into(), name.into(), creator.into())),
            version: body["version"].as_str().map(String::from),
            cluster_pending: (b.pending_describes, "CREATING"),
            ..Default::default()
        };
        // settings moto's CreateCluster drops
        for k in
            ["zonalShiftConfig", "controlPlaneScalingConfig", "computeConfig", "storageConfig", "remoteNetworkConfig"]
        {
            if body[k].is_object() {
                extras.config.insert(k.into(), body[k].clone());
            }
        }
        if bootstrap && mode != "CONFIG_MAP" {
            extras.add_creator_entry();
        }
        self.clusters.lock().expect("eks state").insert((account.into(), region.into(), name.into()), extras);
    }

    /// EKS's refusal to delete a cluster that still has Fargate profiles or capabilities (moto lets it go
    /// with them).
    pub fn refuse_cluster_delete(&self, account: &str, region: &str, name: &str) -> Option<Answer> {
        let mut clusters = self.clusters.lock().expect("eks state");
        let x = clusters.get_mut(&(account.into(), region.into(), name.into()))?;
        settle_fargate_profiles(x);
        settle_capabilities(x);
        if !x.fargate_profiles.is_empty() {
            return Some(err(
                409,
                "ResourceInUseException",
                format!("Cluster has Fargate profiles attached: delete them before deleting cluster {name}."),
            ));
        }
        // held to the stricter reading: a client that deletes a cluster's capabilities first works either way
        (!x.capabilities.is_empty()).then(|| {
            err(
                409,
                "ResourceInUseException",
                format!("Cluster has capabilities: delete them before deleting cluster {name}."),
            )
        })
    }

    /// Forgets a deleted cluster.
    pub fn cluster_deleted(&self, account: &str, region: &str, name: &str) -> Option<String> {
        self.clusters
            .lock()
            .expect("eks state")
            .remove(&(account.into(), region.into(), name.into()))
            .and_then(|x| x.security_group)
    }

    /// Records the security group the emulation made with a cluster (`DescribeCluster` reports it).
    pub fn set_security_group(&self, account: &str, region: &str, name: &str, group: &str) {
        if let Some(x) = self.clusters.lock().expect("eks state").get_mut(&(account.into(), region.into(), name.into()))
        {
            x.security_group = Some(group.to_string());
        }
    }

    /// Adds `accessConfig`, the network config's family and what else moto leaves out to a `DescribeCluster`
    /// answer from moto.
    pub fn decorate_describe(&self, account: &str, region: &str, body: &mut Value, b: &Behaviour) {
        let Some(name) = body.pointer("/cluster/name").and_then(Value::as_str).map(String::from) else { return };
        let mut clusters = self.clusters.lock().expect("eks state");
        let x = clusters.entry((account.into(), region.into(), name.clone())).or_insert_with(|| ClusterExtras {
            mode: "CONFIG_MAP".into(),
            bootstrap_admin: true,
            ..Default::default()
        });
        body["cluster"]["accessConfig"] =
            json!({"authenticationMode": x.mode, "bootstrapClusterCreatorAdminPermissions": x.bootstrap_admin});
        if let Some(v) = &x.version {
            body["cluster"]["version"] = json!(v);
        }
        for k in [
            "logging",
            "zonalShiftConfig",
            "controlPlaneScalingConfig",
            "computeConfig",
            "storageConfig",
            "remoteNetworkConfig",
        ] {
            if let Some(v) = x.config.get(k) {
                body["cluster"][k] = v.clone();
            }
        }
        if let Some(v) = x.config.get("elasticLoadBalancing") {
            body["cluster"]["kubernetesNetworkConfig"]["elasticLoadBalancing"] = v.clone();
        }
        network_config(&name, &mut body["cluster"]);
        if let Some(sg) = &x.security_group {
            body["cluster"]["resourcesVpcConfig"]["clusterSecurityGroupId"] = json!(sg);
        }
        if let Some(Value::Object(v)) = x.config.get("resourcesVpcConfig") {
            for (k, val) in v {
                body["cluster"]["resourcesVpcConfig"][k] = val.clone();
            }
        }
        let name = body.pointer("/cluster/name").and_then(Value::as_str).unwrap_or_default().to_string();
        if x.cluster_pending.0 > 0 {
            x.cluster_pending.0 -= 1;
            body["cluster"]["status"] = json!(x.cluster_pending.1);
        } else if b.fail.contains(&name) {
            body["cluster"]["status"] = json!("FAILED");
            body["cluster"]["health"] = json!({"issues": [{"code": "Ec2SubnetNotFound", "message": "One or more subnets were not found (emulated failure)", "resourceIds": []}]});
        }
    }

    /// Notes that the nodegroup about to be created runs a custom AMI (its launch template names one).
    pub fn will_be_custom(&self, account: &str, region: &str, cluster: &str, nodegroup: &str) {
        let mut clusters = self.clusters.lock().expect("eks state");
        if let Some(x) = clusters.get_mut(&(account.into(), region.into(), cluster.into())) {
            x.custom_ami.insert(nodegroup.to_string());
        }
    }

    /// Records a nodegroup moto just created (its version, and describes before it settles).
    pub fn nodegroup_created(&self, account: &str, region: &str, cluster: &str, request: &[u8], b: &Behaviour) {
        let body: Value = serde_json::from_slice(request).unwrap_or_default();
        let Some(ng) = body["nodegroupName"].as_str() else { return };
        let mut clusters = self.clusters.lock().expect("eks state");
        let x = clusters.entry((account.into(), region.into(), cluster.into())).or_insert_with(|| ClusterExtras {
            mode: "CONFIG_MAP".into(),
            bootstrap_admin: true,
            ..Default::default()
        });
        let version = body["version"].as_str().map(String::from).or_else(|| x.version.clone());
        let remote_access = body.get("remoteAccess").is_some_and(|r| !r.is_null());
        let node_repair = body.get("nodeRepairConfig").filter(|r| r.is_object()).cloned();
        x.nodegroups.insert(
            ng.to_string(),
            NodegroupExtras {
                version,
                pending: (b.pending_describes, "CREATING"),
                remote_access,
                node_repair,
                template: body.pointer("/launchTemplate/id").and_then(Value::as_str).map(String::from),
                template_version: None,
                tags: body["tags"].as_object().cloned().unwrap_or_default(),
                arn: None,
            },
        );
    }

    /// Adds what moto lacks to a `DescribeNodegroup` answer: the upgraded version, pending and failed states.
    pub fn decorate_nodegroup(&self, account: &str, region: &str, cluster: &str, body: &mut Value, b: &Behaviour) {
        let Some(ng) = body.pointer("/nodegroup/nodegroupName").and_then(Value::as_str).map(String::from) else {
            return;
        };
        let mut clusters = self.clusters.lock().expect("eks state");
        let Some(x) = clusters.get_mut(&(account.into(), region.into(), cluster.into())) else { return };
        let Some(n) = x.nodegroups.get_mut(&ng) else { return };
        if let Some(v) = &n.version {
            body["nodegroup"]["version"] = json!(v);
        }
        if let Some(arn) = body.pointer("/nodegroup/nodegroupArn").and_then(Value::as_str) {
            n.arn = Some(arn.to_string());
        }
        body["nodegroup"]["tags"] = Value::Object(n.tags.clone());
        if x.custom_ami.contains(&ng) {
            body["nodegroup"]["amiType"] = json!("CUSTOM");
        }
        if !n.remote_access {
            if let Some(m) = body["nodegroup"].as_object_mut() {
                m.remove("remoteAccess");
            }
        }
        // with a launch template EKS reports no disk size (the template holds the volume); moto fills in 20
        if body["nodegroup"]["launchTemplate"].is_object() {
            if let Some(m) = body["nodegroup"].as_object_mut() {
                m.remove("diskSize");
            }
            if let Some(v) = &n.template_version {
                body["nodegroup"]["launchTemplate"]["version"] = json!(v);
            }
        }
        if let Some(r) = &n.node_repair {
            if body["nodegroup"]["nodeRepairConfig"].is_null() {
                body["nodegroup"]["nodeRepairConfig"] = r.clone();
            }
        }
        if n.pending.0 > 0 {
            n.pending.0 -= 1;
            body["nodegroup"]["status"] = json!(n.pending.1);
        } else if b.fail.contains(&ng) {
            body["nodegroup"]["status"] = json!("CREATE_FAILED");
            body["nodegroup"]["health"] = json!({"issues": [{"code": "AsgInstanceLaunchFailures", "message": "Could not launch On-Demand Instances (emulated failure)", "resourceIds": []}]});
        }
    }

    /// `UpdateClusterConfig` with `accessConfig`: only CONFIG_MAP → API_AND_CONFIG_MAP → API. `None` when the
    /// request changes something else (then moto answers).
    pub fn update_access_config(&self, account: &str, region: &str, cluster: &str, request: &[u8]) -> Option<Answer> {
        let body: Value = serde_json::from_slice(request).ok()?;
        let mut clusters = self.clusters.lock().expect("eks state");
        let x = clusters.entry((account.into(), region.into(), cluster.into())).or_insert_with(|| ClusterExtras {
            mode: "CONFIG_MAP".into(),
            bootstrap_admin: true,
            ..Default::default()
        });
        let Some(wanted) = body.pointer("/accessConfig/authenticationMode").and_then(Value::as_str).map(String::from)
        else {
            // logging or endpoint access: EKS changes one kind of setting per update
            let (typ, params) = if let Some(c) = body.get("computeConfig").filter(|c| c.is_object()) {
                // Auto Mode: EKS takes its three parts together, and keeps the pools' role once it is on
                let on = c["enabled"].as_bool().unwrap_or(false);
                let storage = body.pointer("/storageConfig/blockStorage/enabled").and_then(Value::as_bool);
                let elb =
                    body.pointer("/kubernetesNetworkConfig/elasticLoadBalancing/enabled").and_then(Value::as_bool);
                if storage != Some(on) || elb != Some(on) {
                    return Some(err(
                        400,
                        "InvalidParameterException",
                        "For EKS Auto Mode, computeConfig.enabled, kubernetesNetworkConfig.elasticLoadBalancing.enabled and storageConfig.blockStorage.enabled must all be set to the same value".into(),
                    ));
                }
                let was = x.config.get("computeConfig").cloned().unwrap_or_default();
                if was["enabled"] == json!(true) && on && was.get("nodeRoleArn") != c.get("nodeRoleArn") {
                    return Some(err(
                        400,
                        "InvalidParameterException",
                        "The node role of a cluster with Auto Mode compute enabled cannot be changed".into(),
                    ));
                }
                x.config.insert("computeConfig".into(), c.clone());
                x.config.insert("storageConfig".into(), json!({"blockStorage": {"enabled": on}}));
                x.config.insert("elasticLoadBalancing".into(), json!({"enabled": on}));
                ("AutoModeUpdate", json!([{"type": "ComputeConfig", "value": c.to_string()}]))
            } else if let Some(l) = body.get("logging") {
                x.config.insert("logging".into(), l.clone());
                ("LoggingUpdate", json!([{"type": "ClusterLogging", "value": l.to_string()}]))
            } else if let Some(v) = body.get("resourcesVpcConfig").and_then(Value::as_object) {
                let slot = x.config.entry("resourcesVpcConfig").or_insert_with(|| json!({}));
                for (k, val) in v {
                    slot[k] = val.clone();
                }
                let params: Vec<Value> =
                    v.iter().map(|(k, val)| json!({"type": k, "value": val.to_string()})).collect();
                let typ = if v.contains_key("securityGroupIds") || v.contains_key("subnetIds") {
                    "VpcConfigUpdate"
                } else {
                    "EndpointAccessUpdate"
                };
                (typ, json!(params))
            } else if let Some(r) = body.get("remoteNetworkConfig").filter(|r| r.is_object()) {
                if let Some(refusal) = refuse_remote_network(r, &x.mode, None, None) {
                    return Some(refusal);
                }
                // EKS keeps the lists it was given, empty ones included (no remote networks)
                x.config.insert("remoteNetworkConfig".into(), remote_network_answer(r));
                ("RemoteNetworkConfigUpdate", json!([{"type": "RemoteNetworkConfig", "value": r.to_string()}]))
            } else if let Some(z) = body.get("zonalShiftConfig").filter(|z| z.is_object()) {
                let on = z["enabled"].as_bool().unwrap_or(false);
                x.config.insert("zonalShiftConfig".into(), json!({"enabled": on}));
                ("ZonalShiftConfigUpdate", json!([{"type": "ZonalShiftConfig", "value": on.to_string()}]))
            } else if let Some(t) = body.pointer("/controlPlaneScalingConfig/tier").and_then(Value::as_str) {
                if !TIERS.contains(&t) {
                    return Some(err(400, "InvalidParameterException", format!("Unsupported tier {t}")));
                }
                x.config.insert("controlPlaneScalingConfig".into(), json!({"tier": t}));
                ("ControlPlaneScalingConfigUpdate", json!([{"type": "ControlPlaneScalingConfig", "value": t}]))
            } else {
                return Some(err(
                    400,
                    "InvalidParameterException",
                    "No changes needed for the logging config provided".into(),
                ));
            };
            let u = new_update(x, typ, params, 0);
            return Some((StatusCode::OK, json!({"update": u}), None));
        };
        let rank = |m: &str| match m {
            "CONFIG_MAP" => Some(0),
            "API_AND_CONFIG_MAP" => Some(1),
            "API" => Some(2),
            _ => None,
        };
        let (Some(from), Some(to)) = (rank(&x.mode), rank(&wanted)) else {
            return Some(err(400, "InvalidParameterException", format!("Unsupported authentication mode {wanted}")));
        };
        if to == from {
            return Some(err(
                400,
                "InvalidParameterException",
                format!("Unsupported authentication mode update: the cluster already uses {wanted}"),
            ));
        }
        if to < from {
            return Some(err(
                400,
                "InvalidParameterException",
                format!("Unsupported authentication mode update from {} to {wanted}", x.mode),
            ));
        }
        if from == 0 && x.bootstrap_admin {
            x.add_creator_entry();
        }
        x.mode = wanted.clone();
        let id =
            format!("{:08x}-0000-4000-8000-{:012x}", x.updates.len() + 1, (now() * 1000.0) as u64 & 0xffff_ffff_ffff);
        let update = json!({"id": id, "status": "Successful", "type": "AccessConfigUpdate", "params": [{"type": "AuthenticationMode", "value": wanted}], "createdAt": now(), "errors": []});
        x.updates.insert(id, update.clone());
        Some((StatusCode::OK, json!({"update": update}), None))
    }

    /// Remembers an update moto made (`UpdateNodegroupConfig`), which moto's own `DescribeUpdate` cannot find.
    pub fn update_made(&self, account: &str, region: &str, cluster: &str, response: &Value) {
        let Some(u) = response.get("update") else { return };
        let Some(id) = u.get("id").and_then(Value::as_str) else { return };
        let mut clusters = self.clusters.lock().expect("eks state");
        if let Some(x) = clusters.get_mut(&(account.into(), region.into(), cluster.into())) {
            x.updates.insert(id.to_string(), u.clone());
        }
    }

    /// `DescribeUpdate` of an update made here or recorded by [`EksState::update_made`]; `None` otherwise.
    pub fn describe_update(&self, account: &str, region: &str, cluster: &str, id: &str) -> Option<Answer> {
        let mut clusters = self.clusters.lock().expect("eks state");
        let x = clusters.get_mut(&(account.into(), region.into(), cluster.into()))?;
        let mut u = x.updates.get(id)?.clone();
        if let Some(n) = x.update_pending.get_mut(id) {
            if *n > 0 {
                *n -= 1;
                u["status"] = json!("InProgress");
            }
        }
        Some((StatusCode::OK, json!({"update": u}), None))
    }

    /// `TagResource`, `UntagResource` and `ListTagsForResource` of an addon, identity provider config or
    /// Fargate profile (the resources only the emulation holds) or a nodegroup (whose tags moto cannot change); `None` for any other
    /// ARN (a cluster's: moto answers).
    pub fn tags(
        &self,
        account: &str,
        region: &str,
        operation: &str,
        arn: &str,
        query: &str,
        request: &[u8],
    ) -> Option<Answer> {
        let arn = decode(arn);
        let nodegroup = arn.split(":nodegroup/").nth(1);
        let rest = nodegroup
            .or_else(|| arn.split(":addon/").nth(1))
            .or_else(|| arn.split(":identityproviderconfig/").nth(1))
            .or_else(|| arn.split(":fargateprofile/").nth(1))
            .or_else(|| arn.split(":capability/").nth(1))?;
        let cluster = rest.split('/').next()?.to_string();
        let mut clusters = self.clusters.lock().expect("eks state");
        let missing = || err(404, "NotFoundException", "Resource was not found".into());
        let Some(x) = clusters.get_mut(&(account.into(), region.into(), cluster)) else { return Some(missing()) };
        let tags = match nodegroup {
            Some(rest) => {
                let name = rest.split('/').nth(1).unwrap_or_default();
                match x.nodegroups.get_mut(name) {
                    Some(n) if n.arn.as_deref().is_none_or(|a| a == arn) => &mut n.tags,
                    _ => return Some(missing()),
                }
            }
            None => {
                let item = x
                    .addons
                    .values_mut()
                    .map(|(a, _)| (a, "addonArn"))
                    .chain(x.identity_providers.values_mut().map(|(c, _)| (c, "identityProviderConfigArn")))
                    .chain(x.fargate_profiles.values_mut().map(|(p, _)| (p, "fargateProfileArn")))
                    .chain(x.capabilities.values_mut().map(|(c, _)| (c, "arn")))
                    .find(|(v, field)| v[*field].as_str() == Some(arn.as_str()))
                    .map(|(v, _)| v);
                let Some(item) = item else { return Some(missing()) };
                if !item["tags"].is_object() {
                    item["tags"] = json!({});
                }
                item["tags"].as_object_mut()?
            }
        };
        match operation {
            "TagResource" => {
                let body: Value = serde_json::from_slice(request).unwrap_or_default();
                for (k, v) in body["tags"].as_object().into_iter().flatten() {
                    tags.insert(k.clone(), v.clone());
                }
                Some((StatusCode::OK, json!({}), None))
            }
            "UntagResource" => {
                for key in query.split('&').filter_map(|kv| kv.strip_prefix("tagKeys=")) {
                    tags.remove(&decode(key));
                }
                Some((StatusCode::OK, json!({}), None))
            }
            _ => Some((StatusCode::OK, json!({"tags": tags}), None)),
        }
    }

    /// Answers an emulated operation. `cluster_exists` says whether moto knows the cluster.
    pub fn handle(&self, req: &Req<'_>, cluster_exists: bool) -> Answer {
        let segs: Vec<String> = req.path.trim_matches('/').split('/').map(decode).collect();
        if req.operation == "DescribeAddonVersions" {
            return addon_versions_answer(req.query);
        }
        if req.operation == "ListAccessPolicies" {
            let policies: Vec<Value> = ACCESS_POLICIES
                .iter()
                .map(|n| json!({"name": n, "arn": format!("arn:aws:eks::aws:cluster-access-policy/{n}")}))
                .collect();
            return (StatusCode::OK, json!({"accessPolicies": policies}), None);
        }
        let cluster = segs.get(1).cloned().unwrap_or_default();
        if !cluster_exists {
            return err(404, "ResourceNotFoundException", format!("No cluster found for name: {cluster}."));
        }
        let body: Value =
            if req.body.is_empty() { json!({}) } else { serde_json::from_slice(req.body).unwrap_or(json!({})) };
        let mut clusters = self.clusters.lock().expect("eks state");
        let x = clusters.entry((req.account.into(), req.region.into(), cluster.clone())).or_insert_with(|| {
            ClusterExtras { mode: "CONFIG_MAP".into(), bootstrap_admin: true, ..Default::default() }
        });
        // EKS's idempotency: a request repeating an earlier one's clientRequestToken gets that request's answer
        // and changes nothing (what a client retrying after a lost response relies on)
        let token = body["clientRequestToken"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(|t| format!("{}|{}|{t}", req.operation, segs.join("/")));
        if let Some(prev) = token.as_ref().and_then(|k| x.answered.get(k)) {
            return (StatusCode::OK, prev.clone(), None);
        }
        let answer = Self::handle_extras(x, req, &cluster, &segs, &body);
        if let (Some(k), true) = (token, answer.0.is_success()) {
            x.answered.insert(k, answer.1.clone());
        }
        answer
    }

    fn handle_extras(x: &mut ClusterExtras, req: &Req<'_>, cluster: &str, segs: &[String], body: &Value) -> Answer {
        let (cluster, segs, body) = (cluster.to_string(), segs.to_vec(), body.clone());
        make_due_capability_entries(x, req, &cluster);
        if req.operation.contains("PodIdentityAssociation") {
            return pod_identity(x, req, &cluster, &segs, &body);
        }
        if req.operation.contains("IdentityProviderConfig") {
            return identity_providers(x, req, &cluster, &body);
        }
        if req.operation.contains("FargateProfile") {
            return fargate_profiles(x, req, &cluster, &segs, &body);
        }
        if req.operation.contains("Capabilit") {
            return capabilities(x, req, &cluster, &segs, &body);
        }
        if matches!(
            req.operation,
            "CreateAddon"
                | "DescribeAddon"
                | "ListAddons"
                | "UpdateAddon"
                | "DeleteAddon"
                | "UpdateClusterVersion"
                | "UpdateNodegroupVersion"
                | "ListUpdates"
        ) {
            return lifecycle(x, req, &cluster, &segs, &body);
        }
        if x.mode == "CONFIG_MAP" {
            return err(400, "InvalidRequestException", "The cluster's authentication mode must be set to one of [API, API_AND_CONFIG_MAP] to perform this operation.".into());
        }
        let principal = segs.get(3).cloned().unwrap_or_default();
        let missing = |p: &str| {
            err(404, "ResourceNotFoundException", format!("The specified principalArn could not be found. You can view your available access entries with 'list-access-entries'. ({p})"))
        };
        match req.operation {
            "CreateAccessEntry" => {
                let Some(p) = body["principalArn"].as_str().map(String::from) else {
                    return err(400, "InvalidParameterException", "principalArn is required".into());
                };
                if principal_parts(&p).is_none() {
                    return err(
                        400,
                        "InvalidParameterException",
                        format!("The principalArn parameter format is not valid: {p}"),
                    );
                }
                if x.entries.contains_key(&p) {
                    return err(
                        409,
                        "ResourceInUseException",
                        format!("The specified access entry resource is already in use on this cluster. ({p})"),
                    );
                }
                let typ = body["type"].as_str().unwrap_or("STANDARD").to_string();
                let groups: Vec<String> = body["kubernetesGroups"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|g| g.as_str().map(String::from))
                    .collect();
                if let Some(g) = groups.iter().find(|g| g.starts_with("system:")) {
                    return err(
                        400,
                        "InvalidParameterException",
                        format!("The kubernetes group name {g} is invalid, it cannot start with system:"),
                    );
                }
                if typ != "STANDARD" && (!groups.is_empty() || body.get("username").is_some_and(|u| !u.is_null())) {
                    return err(400, "InvalidParameterException", format!("The kubernetesGroups and username parameters are not supported for access entry type {typ}"));
                }
                if !["STANDARD", "EC2_LINUX", "EC2_WINDOWS", "FARGATE_LINUX", "HYBRID_LINUX"].contains(&typ.as_str()) {
                    return err(400, "InvalidParameterException", format!("The type parameter {typ} is not valid"));
                }
                let e = new_entry(
                    req.account,
                    req.region,
                    &cluster,
                    &p,
                    &typ,
                    groups,
                    body["username"].as_str(),
                    body["tags"].clone(),
                );
                let out = e.body.clone();
                x.entries.insert(p, e);
                (StatusCode::OK, json!({"accessEntry": out}), None)
            }
            "DescribeAccessEntry" => match x.entries.get(&principal) {
                Some(e) => (StatusCode::OK, json!({"accessEntry": e.body}), None),
                None => missing(&principal),
            },
            "ListAccessEntries" => {
                let list: Vec<&String> = x.entries.keys().collect();
                (StatusCode::OK, json!({"accessEntries": list}), None)
            }
            "UpdateAccessEntry" => {
                let Some(e) = x.entries.get_mut(&principal) else { return missing(&principal) };
                if let Some(gs) = body.get("kubernetesGroups").and_then(Value::as_array) {
                    if let Some(g) = gs.iter().filter_map(Value::as_str).find(|g| g.starts_with("system:")) {
                        return err(
                            400,
                            "InvalidParameterException",
                            format!("The kubernetes group name {g} is invalid, it cannot start with system:"),
                        );
                    }
                    e.body["kubernetesGroups"] = json!(gs);
                }
                if let Some(u) = body.get("username").and_then(Value::as_str) {
                    e.body["username"] = json!(u);
                }
                e.body["modifiedAt"] = json!(now());
                (StatusCode::OK, json!({"accessEntry": e.body}), None)
            }
            "DeleteAccessEntry" => match x.entries.remove(&principal) {
                Some(_) => (StatusCode::OK, json!({}), None),
                None => missing(&principal),
            },
            "AssociateAccessPolicy" => {
                let Some(e) = x.entries.get_mut(&principal) else { return missing(&principal) };
                let Some(policy) = body["policyArn"].as_str() else {
                    return err(400, "InvalidParameterException", "policyArn is required".into());
                };
                let known =
                    ACCESS_POLICIES.iter().any(|n| policy == format!("arn:aws:eks::aws:cluster-access-policy/{n}"));
                if !known {
                    return err(400, "InvalidParameterException", format!("The policyArn {policy} is not valid"));
                }
                let scope = body["accessScope"].clone();
                match scope["type"].as_str() {
                    Some("cluster") => {}
                    Some("namespace") if scope["namespaces"].as_array().is_some_and(|n| !n.is_empty()) => {}
                    _ => {
                        return err(
                            400,
                            "InvalidParameterException",
                            "accessScope must be of type cluster, or namespace with at least one namespace".into(),
                        )
                    }
                }
                let at = e.policies.get(policy).and_then(|p| p["associatedAt"].as_f64()).unwrap_or_else(now);
                let assoc = json!({"policyArn": policy, "accessScope": {"type": scope["type"], "namespaces": scope["namespaces"].as_array().cloned().unwrap_or_default()}, "associatedAt": at, "modifiedAt": now()});
                e.policies.insert(policy.to_string(), assoc.clone());
                (
                    StatusCode::OK,
                    json!({"clusterName": cluster, "principalArn": principal, "associatedAccessPolicy": assoc}),
                    None,
                )
            }
            "DisassociateAccessPolicy" => {
                let Some(e) = x.entries.get_mut(&principal) else { return missing(&principal) };
                let policy = segs.get(5).cloned().unwrap_or_default();
                match e.policies.remove(&policy) {
                    Some(_) => (StatusCode::OK, json!({}), None),
                    None => err(
                        404,
                        "ResourceNotFoundException",
                        format!("The specified policy {policy} is not associated with this access entry"),
                    ),
                }
            }
            "ListAssociatedAccessPolicies" => {
                let Some(e) = x.entries.get(&principal) else { return missing(&principal) };
                let list: Vec<&Value> = e.policies.values().collect();
                (
                    StatusCode::OK,
                    json!({"clusterName": cluster, "principalArn": principal, "associatedAccessPolicies": list}),
                    None,
                )
            }
            other => err(400, "InvalidRequestException", format!("{other} is not emulated")),
        }
    }
}

fn query_param(q: &str, key: &str) -> Option<String> {
    q.split('&').find_map(|kv| kv.strip_prefix(&format!("{key}="))).map(decode)
}

fn addon_versions_answer(q: &str) -> Answer {
    let k8s = query_param(q, "kubernetesVersion");
    let k8s_minor = k8s.as_deref().and_then(|v| format!("v{v}").as_str().pipe_minor());
    let only = query_param(q, "addonName");
    let mut names: Vec<&str> = ADDON_CATALOGUE.iter().map(|(n, _)| *n).collect();
    names.push("kube-proxy");
    names.sort_unstable();
    let addons: Vec<Value> = names
        .into_iter()
        .filter(|n| only.as_deref().is_none_or(|o| o == *n))
        .filter_map(|n| {
            let versions: Vec<Value> = addon_versions(n)?
                .into_iter()
                .filter(|(_, c)| k8s_minor.is_none_or(|m| c.contains(&m)))
                .map(|(v, c)| {
                    let compat: Vec<Value> = c
                        .iter()
                        .filter(|m| k8s_minor.is_none_or(|k| k == **m))
                        .map(|m| json!({"clusterVersion": format!("1.{m}"), "platformVersions": ["*"], "defaultVersion": default_addon_version(n, *m).as_deref() == Some(v.as_str())}))
                        .collect();
                    json!({"addonVersion": v, "architecture": ["amd64", "arm64"], "compatibilities": compat, "requiresConfiguration": false})
                })
                .collect();
            Some(json!({"addonName": n, "type": "networking", "addonVersions": versions, "publisher": "eks", "owner": "aws"}))
        })
        .collect();
    (StatusCode::OK, json!({"addons": addons}), None)
}

trait PipeMinor {
    fn pipe_minor(&self) -> Option<u32>;
}
impl PipeMinor for &str {
    fn pipe_minor(&self) -> Option<u32> {
        minor(self)
    }
}

fn new_update(x: &mut ClusterExtras, typ: &str, params: Value, pending: u32) -> Value {
    let id = format!("{:08x}-0000-4000-8000-{:012x}", x.updates.len() + 1, (now() * 1000.0) as u64 & 0xffff_ffff_ffff);
    let u = json!({"id": id, "status": "Successful", "type": typ, "params": params, "createdAt": now(), "errors": []});
    x.updates.insert(id.clone(), u.clone());
    x.update_pending.insert(id, pending);
    let mut shown = u;
    if pending > 0 {
        shown["status"] = json!("InProgress");
    }
    shown
}

fn lifecycle(x: &mut ClusterExtras, req: &Req<'_>, cluster: &str, segs: &[String], body: &Value) -> Answer {
    let b = req.behaviour;
    let cluster_minor = x.version.as_deref().and_then(|v| minor(&format!("v{v}"))).unwrap_or(33);
    let addon_name = segs.get(3).cloned().unwrap_or_default();
    match req.operation {
        "UpdateClusterVersion" => {
            let Some(v) = body["version"].as_str() else {
                return err(400, "InvalidParameterException", "version is required".into());
            };
            let Some(to) = minor(&format!("v{v}")) else {
                return err(400, "InvalidParameterException", format!("Unsupported Kubernetes version {v}"));
            };
            let from = x.version.clone().unwrap_or_else(|| "1.33".into());
            if to != cluster_minor + 1 {
                return err(
                    400,
                    "InvalidParameterException",
                    format!("Unsupported Kubernetes minor version update from {from} to {v}"),
                );
            }
            x.version = Some(v.to_string());
            x.cluster_pending = (b.pending_describes, "UPDATING");
            let u = new_update(
                x,
                "VersionUpdate",
                json!([{"type": "Version", "value": v}, {"type": "PlatformVersion", "value": "eks.1"}]),
                b.pending_describes,
            );
            (StatusCode::OK, json!({"update": u}), None)
        }
        "UpdateNodegroupVersion" => {
            let ng = segs.get(3).cloned().unwrap_or_default();
            let Some(n) = x.nodegroups.get(&ng).cloned() else {
                return err(404, "ResourceNotFoundException", format!("No node group found for name: {ng}."));
            };
            // a launch template version alone: the Kubernetes version stays
            if let Some(lt) = body.get("launchTemplate").filter(|v| v.is_object()) {
                let Some(created_with) = n.template.clone() else {
                    return err(
                        400,
                        "InvalidParameterException",
                        format!("Nodegroup {ng} was not created with a launch template"),
                    );
                };
                if lt["id"].as_str().is_some_and(|id| id != created_with) {
                    return err(
                        400,
                        "InvalidParameterException",
                        format!("Launch template ID must be {created_with}, the one nodegroup {ng} was created with"),
                    );
                }
                let Some(v) = lt["version"].as_str().map(String::from) else {
                    return err(400, "InvalidParameterException", "launchTemplate.version is required".into());
                };
                if body["version"].is_null() {
                    x.nodegroups.insert(
                        ng.clone(),
                        NodegroupExtras {
                            template_version: Some(v.clone()),
                            pending: (b.pending_describes, "UPDATING"),
                            ..n.clone()
                        },
                    );
                    let u = new_update(
                        x,
                        "VersionUpdate",
                        json!([{"type": "LaunchTemplateVersion", "value": v}]),
                        b.pending_describes,
                    );
                    return (StatusCode::OK, json!({"update": u}), None);
                }
            }
            let target = body["version"]
                .as_str()
                .map(String::from)
                .or_else(|| x.version.clone())
                .unwrap_or_else(|| "1.33".into());
            let tm = minor(&format!("v{target}")).unwrap_or(0);
            if tm > cluster_minor {
                return err(
                    400,
                    "InvalidParameterException",
                    format!("Nodegroup version {target} cannot be newer than the cluster version 1.{cluster_minor}"),
                );
            }
            if n.version.as_deref() == Some(target.as_str()) {
                return err(400, "InvalidParameterException", format!("Nodegroup {ng} is already at version {target}"));
            }
            x.nodegroups.insert(
                ng.clone(),
                NodegroupExtras {
                    version: Some(target.clone()),
                    pending: (b.pending_describes, "UPDATING"),
                    template_version: body
                        .pointer("/launchTemplate/version")
                        .and_then(Value::as_str)
                        .map(String::from)
                        .or(n.template_version.clone()),
                    ..n.clone()
                },
            );
            let u = new_update(
                x,
                "VersionUpdate",
                json!([{"type": "Version", "value": target}, {"type": "ReleaseVersion", "value": format!("{target}.0-20260101")}]),
                b.pending_describes,
            );
            (StatusCode::OK, json!({"update": u}), None)
        }
        "ListUpdates" => {
            let ids: Vec<&String> = x.updates.keys().collect();
            (StatusCode::OK, json!({"updateIds": ids}), None)
        }
        "CreateAddon" => {
            let Some(name) = body["addonName"].as_str().map(String::from) else {
                return err(400, "InvalidParameterException", "addonName is required".into());
            };
            if x.addons.contains_key(&name) {
                return err(409, "ResourceInUseException", format!("Addon already exists: {name}"));
            }
            let Some(versions) = addon_versions(&name) else {
                return err(400, "InvalidParameterException", format!("Addon {name} specified is not supported"));
            };
            let version = match body["addonVersion"].as_str() {
                Some(v) => {
                    if !versions.iter().any(|(av, c)| av == v && c.contains(&cluster_minor)) {
                        return err(
                            400,
                            "InvalidParameterException",
                            format!("Addon version specified is not supported: {v} for Kubernetes 1.{cluster_minor}"),
                        );
                    }
                    v.to_string()
                }
                None => match default_addon_version(&name, cluster_minor) {
                    Some(v) => v,
                    None => {
                        return err(
                            400,
                            "InvalidParameterException",
                            format!("Addon {name} has no version for Kubernetes 1.{cluster_minor}"),
                        )
                    }
                },
            };
            let addon = json!({
                "addonName": name, "clusterName": cluster, "status": "ACTIVE", "addonVersion": version, "health": {"issues": []},
                "addonArn": format!("arn:aws:eks:{}:{}:addon/{cluster}/{name}/{:x}", req.region, req.account, (now() * 1e6) as u64),
                "createdAt": now(), "modifiedAt": now(), "serviceAccountRoleArn": body["serviceAccountRoleArn"], "tags": if body["tags"].is_object() { body["tags"].clone() } else { json!({}) },
                "configurationValues": body["configurationValues"], "publisher": "eks", "owner": "aws",
            });
            x.addons.insert(name, (addon.clone(), b.pending_describes));
            let mut shown = addon;
            if b.pending_describes > 0 {
                shown["status"] = json!("CREATING");
            }
            (StatusCode::OK, json!({"addon": shown}), None)
        }
        "DescribeAddon" => {
            let Some((a, pending)) = x.addons.get_mut(&addon_name) else {
                return err(
                    404,
                    "ResourceNotFoundException",
                    format!("No addon: {addon_name} found in cluster: {cluster}"),
                );
            };
            let mut shown = a.clone();
            if *pending > 0 {
                *pending -= 1;
                shown["status"] = json!(if shown["status"] == "ACTIVE" { "CREATING" } else { "UPDATING" });
            } else if b.fail.contains(&addon_name) {
                shown["status"] = json!("DEGRADED");
                shown["health"] = json!({"issues": [{"code": "InsufficientNumberOfReplicas", "message": "The add-on is unhealthy because it doesn't have the desired number of replicas (emulated failure)", "resourceIds": []}]});
            }
            (StatusCode::OK, json!({"addon": shown}), None)
        }
        "ListAddons" => {
            let names: Vec<&String> = x.addons.keys().collect();
            (StatusCode::OK, json!({"addons": names}), None)
        }
        "UpdateAddon" => {
            let Some((a, _)) = x.addons.get(&addon_name).cloned() else {
                return err(
                    404,
                    "ResourceNotFoundException",
                    format!("No addon: {addon_name} found in cluster: {cluster}"),
                );
            };
            let mut a = a;
            if let Some(v) = body["addonVersion"].as_str() {
                let ok = addon_versions(&addon_name)
                    .is_some_and(|vs| vs.iter().any(|(av, c)| av == v && c.contains(&cluster_minor)));
                if !ok {
                    return err(
                        400,
                        "InvalidParameterException",
                        format!("Addon version specified is not supported: {v} for Kubernetes 1.{cluster_minor}"),
                    );
                }
                a["addonVersion"] = json!(v);
            }
            for (k, f) in
                [("serviceAccountRoleArn", "serviceAccountRoleArn"), ("configurationValues", "configurationValues")]
            {
                if !body[k].is_null() {
                    a[f] = body[k].clone();
                }
            }
            a["modifiedAt"] = json!(now());
            x.addons.insert(addon_name.clone(), (a, b.pending_describes));
            let u = new_update(
                x,
                "AddonUpdate",
                json!([{"type": "AddonVersion", "value": body["addonVersion"]}]),
                b.pending_describes,
            );
            (StatusCode::OK, json!({"update": u}), None)
        }
        "DeleteAddon" => match x.addons.remove(&addon_name) {
            Some((mut a, _)) => {
                a["status"] = json!("DELETING");
                (StatusCode::OK, json!({"addon": a}), None)
            }
            None => {
                err(404, "ResourceNotFoundException", format!("No addon: {addon_name} found in cluster: {cluster}"))
            }
        },
        other => err(400, "InvalidRequestException", format!("{other} is not emulated")),
    }
}

/// OIDC identity provider configs as EKS keeps them: one per cluster, CREATING then ACTIVE, DELETING then gone,
/// never updated.
fn identity_providers(x: &mut ClusterExtras, req: &Req<'_>, cluster: &str, body: &Value) -> Answer {
    let b = req.behaviour;
    let missing = |name: &str| {
        err(404, "ResourceNotFoundException", format!("No identity provider configuration found for name: {name}."))
    };
    let asked = body.pointer("/identityProviderConfig/name").and_then(Value::as_str).unwrap_or_default().to_string();
    if !asked.is_empty() && body.pointer("/identityProviderConfig/type").and_then(Value::as_str) != Some("oidc") {
        return err(400, "InvalidParameterException", "identityProviderConfig.type must be oidc".into());
    }
    match req.operation {
        "AssociateIdentityProviderConfig" => {
            let o = &body["oidc"];
            let Some(name) = o["identityProviderConfigName"].as_str().map(String::from) else {
                return err(400, "InvalidParameterException", "oidc.identityProviderConfigName is required".into());
            };
            if x.identity_providers.contains_key(&name) {
                return err(409, "ResourceInUseException", format!("Identity provider config {name} already exists."));
            }
            if !x.identity_providers.is_empty() {
                return err(
                    400,
                    "InvalidRequestException",
                    "Identity provider config limit exceeded: a cluster can have only one OIDC identity provider."
                        .into(),
                );
            }
            for f in ["issuerUrl", "clientId"] {
                if o[f].as_str().is_none_or(str::is_empty) {
                    return err(400, "InvalidParameterException", format!("oidc.{f} is required"));
                }
            }
            if !o["issuerUrl"].as_str().unwrap_or_default().starts_with("https://") {
                return err(400, "InvalidParameterException", "issuerUrl must be an https URL".into());
            }
            let mut c = json!({
                "identityProviderConfigName": name,
                "identityProviderConfigArn": format!("arn:aws:eks:{}:{}:identityproviderconfig/{cluster}/oidc/{name}/{:x}", req.region, req.account, (now() * 1e6) as u64),
                "clusterName": cluster,
                "tags": if body["tags"].is_object() { body["tags"].clone() } else { json!({}) },
                "status": "ACTIVE",
            });
            for f in [
                "issuerUrl",
                "clientId",
                "usernameClaim",
                "usernamePrefix",
                "groupsClaim",
                "groupsPrefix",
                "requiredClaims",
            ] {
                if !o[f].is_null() {
                    c[f] = o[f].clone();
                }
            }
            x.identity_providers.insert(name.clone(), (c.clone(), b.pending_describes));
            let u = new_update(
                x,
                "AssociateIdentityProviderConfig",
                json!([{"type": "IdentityProviderConfig", "value": format!("[{{\"type\":\"oidc\",\"name\":\"{name}\"}}]")}]),
                b.pending_describes,
            );
            (StatusCode::OK, json!({"update": u, "tags": c["tags"]}), None)
        }
        "DescribeIdentityProviderConfig" => {
            let Some((c, pending)) = x.identity_providers.get_mut(&asked) else { return missing(&asked) };
            let mut shown = c.clone();
            if *pending > 0 {
                *pending -= 1;
                if shown["status"] == "ACTIVE" {
                    shown["status"] = json!("CREATING");
                }
            } else if c["status"] == "DELETING" {
                x.identity_providers.remove(&asked);
                return missing(&asked);
            }
            (StatusCode::OK, json!({"identityProviderConfig": {"oidc": shown}}), None)
        }
        "ListIdentityProviderConfigs" => {
            let list: Vec<Value> = x.identity_providers.keys().map(|n| json!({"type": "oidc", "name": n})).collect();
            (StatusCode::OK, json!({"identityProviderConfigs": list}), None)
        }
        "DisassociateIdentityProviderConfig" => {
            let Some((c, pending)) = x.identity_providers.get_mut(&asked) else { return missing(&asked) };
            c["status"] = json!("DELETING");
            *pending = b.pending_describes;
            let u = new_update(
                x,
                "DisassociateIdentityProviderConfig",
                json!([{"type": "IdentityProviderConfig", "value": format!("[{{\"type\":\"oidc\",\"name\":\"{asked}\"}}]")}]),
                b.pending_describes,
            );
            (StatusCode::OK, json!({"update": u}), None)
        }
        other => err(400, "InvalidRequestException", format!("{other} is not emulated")),
    }
}

/// Forgets the Fargate profiles whose deletion has finished.
fn settle_fargate_profiles(x: &mut ClusterExtras) {
    x.fargate_profiles.retain(|_, (p, pending)| *pending > 0 || p["status"] != "DELETING");
}

/// Fargate profiles as EKS keeps them (the CreateFargateProfile API reference): CREATING then ACTIVE,
/// DELETING then gone, never updated but for tags, and one profile of a cluster changing at a time, a second
/// create or delete refused with ResourceInUseException meanwhile. moto makes them ACTIVE at once and changes
/// any number together.
fn fargate_profiles(x: &mut ClusterExtras, req: &Req<'_>, cluster: &str, segs: &[String], body: &Value) -> Answer {
    let b = req.behaviour;
    settle_fargate_profiles(x);
    let missing =
        |name: &str| err(404, "ResourceNotFoundException", format!("No Fargate Profile found with name: {name}."));
    let changing = x
        .fargate_profiles
        .iter()
        .find(|(_, (_, pending))| *pending > 0)
        .map(|(n, (p, _))| (n.clone(), if p["status"] == "DELETING" { "DELETING" } else { "CREATING" }));
    let busy = |what: &str, name: &str, (other, status): (String, &str)| {
        err(
            409,
            "ResourceInUseException",
            format!("Cannot {what} Fargate Profile {name} because cluster {cluster} currently has Fargate profile {other} in status {status}"),
        )
    };
    let shown = |p: &Value, pending: u32| {
        let mut v = p.clone();
        if pending > 0 && v["status"] != "DELETING" {
            v["status"] = json!("CREATING");
        }
        v
    };
    let name = segs.get(3).cloned().unwrap_or_default();
    match req.operation {
        "CreateFargateProfile" => {
            let Some(name) = body["fargateProfileName"].as_str().filter(|n| !n.is_empty()).map(String::from) else {
                return err(400, "InvalidParameterException", "fargateProfileName is required".into());
            };
            if body["podExecutionRoleArn"].as_str().is_none_or(|r| !r.contains(":role/")) {
                return err(400, "InvalidParameterException", "podExecutionRoleArn must be an IAM role ARN".into());
            }
            let selectors = body["selectors"].as_array().cloned().unwrap_or_default();
            if selectors.is_empty() || selectors.len() > 5 {
                return err(400, "InvalidParameterException", "A Fargate profile takes 1 to 5 selectors".into());
            }
            for s in &selectors {
                if s["namespace"].as_str().is_none_or(str::is_empty) {
                    return err(400, "InvalidParameterException", "Every selector needs a namespace".into());
                }
                if s["labels"].as_object().is_some_and(|l| l.len() > 5) {
                    return err(400, "InvalidParameterException", "A selector takes at most 5 labels".into());
                }
            }
            if x.fargate_profiles.contains_key(&name) {
                return err(
                    409,
                    "ResourceInUseException",
                    "A Fargate Profile already exists with this name in this cluster.".into(),
                );
            }
            if let Some(c) = changing {
                return busy("create", &name, c);
            }
            let status = if b.fail.contains(&name) { "CREATE_FAILED" } else { "ACTIVE" };
            let p = json!({
                "fargateProfileName": name,
                "fargateProfileArn": format!("arn:aws:eks:{}:{}:fargateprofile/{cluster}/{name}/{:x}", req.region, req.account, (now() * 1e6) as u64),
                "clusterName": cluster,
                "createdAt": now(),
                "podExecutionRoleArn": body["podExecutionRoleArn"],
                "subnets": body["subnets"].as_array().cloned().unwrap_or_default(),
                "selectors": selectors,
                "status": status,
                "tags": if body["tags"].is_object() { body["tags"].clone() } else { json!({}) },
            });
            let answer = shown(&p, b.pending_describes);
            x.fargate_profiles.insert(name, (p, b.pending_describes));
            (StatusCode::OK, json!({"fargateProfile": answer}), None)
        }
        "DescribeFargateProfile" => {
            let Some((p, pending)) = x.fargate_profiles.get_mut(&name) else { return missing(&name) };
            let answer = shown(p, *pending);
            *pending = pending.saturating_sub(1);
            (StatusCode::OK, json!({"fargateProfile": answer}), None)
        }
        "ListFargateProfiles" => {
            let names: Vec<&String> = x.fargate_profiles.keys().collect();
            (StatusCode::OK, json!({"fargateProfileNames": names}), None)
        }
        "DeleteFargateProfile" => {
            if !x.fargate_profiles.contains_key(&name) {
                return missing(&name);
            }
            if let Some(c) = changing.filter(|(other, _)| *other != name) {
                return busy("delete", &name, c);
            }
            let (p, pending) = x.fargate_profiles.get_mut(&name).expect("checked above");
            if p["status"] != "DELETING" {
                p["status"] = json!("DELETING");
                *pending = b.pending_describes;
            }
            (StatusCode::OK, json!({"fargateProfile": p.clone()}), None)
        }
        other => err(400, "InvalidRequestException", format!("{other} is not emulated")),
    }
}

/// Forgets the capabilities whose deletion has finished, and with each the access entry EKS made for it.
fn settle_capabilities(x: &mut ClusterExtras) {
    let gone: Vec<String> = x
        .capabilities
        .iter()
        .filter(|(_, (c, pending))| *pending == 0 && c["status"] == "DELETING")
        .map(|(n, _)| n.clone())
        .collect();
    for n in gone {
        x.capability_entries_due.remove(&n);
        if let Some((c, _)) = x.capabilities.remove(&n) {
            let role = c["roleArn"].as_str().unwrap_or_default();
            // the entry goes unless another capability still acts as the same role
            if !x.capabilities.values().any(|(o, _)| o["roleArn"].as_str() == Some(role)) {
                x.entries.remove(role);
            }
        }
    }
}

/// Counts one call to the cluster against each capability that is up and whose access entry is due, and makes
/// those whose count ran out.
fn make_due_capability_entries(x: &mut ClusterExtras, req: &Req<'_>, cluster: &str) {
    let mut ready = vec![];
    for (name, left) in x.capability_entries_due.iter_mut() {
        let up = x.capabilities.get(name).is_some_and(|(c, pending)| *pending == 0 && c["status"] == "ACTIVE");
        if up {
            *left = left.saturating_sub(1);
            if *left == 0 {
                ready.push(name.clone());
            }
        }
    }
    for name in ready {
        x.capability_entries_due.remove(&name);
        let Some((c, _)) = x.capabilities.get(&name) else { continue };
        let (role, kind) =
            (c["roleArn"].as_str().unwrap_or_default().to_string(), c["type"].as_str().unwrap_or_default().to_string());
        let namespace = c["configuration"]["argoCd"]["namespace"].as_str().unwrap_or("argocd").to_string();
        capability_entry(x, req, cluster, &role, &kind, &namespace);
    }
}

/// The access policies EKS associates with a capability role's entry for a capability of `kind` (EKS's
/// "Security considerations for EKS Capabilities"): ACK's and kro's on the cluster, Argo CD's cluster policy
/// and its policy on its own namespace.
fn capability_policies(kind: &str, namespace: &str) -> Vec<(&'static str, Option<String>)> {
    match kind {
        "ACK" => vec![("AmazonEKSACKPolicy", None)],
        "KRO" => vec![("AmazonEKSKROPolicy", None)],
        _ => vec![("AmazonEKSArgoCDClusterPolicy", None), ("AmazonEKSArgoCDPolicy", Some(namespace.to_string()))],
    }
}

/// Makes (or keeps) the access entry EKS makes for a capability's role, with the type's access policies.
fn capability_entry(x: &mut ClusterExtras, req: &Req<'_>, cluster: &str, role: &str, kind: &str, namespace: &str) {
    let e = x
        .entries
        .entry(role.to_string())
        .or_insert_with(|| new_entry(req.account, req.region, cluster, role, "STANDARD", vec![], None, json!({})));
    for (p, ns) in capability_policies(kind, namespace) {
        let arn = format!("arn:aws:eks::aws:cluster-access-policy/{p}");
        let scope = match ns {
            Some(ns) => json!({"type": "namespace", "namespaces": [ns]}),
            None => json!({"type": "cluster", "namespaces": []}),
        };
        e.policies.entry(arn.clone()).or_insert_with(
            || json!({"policyArn": arn, "accessScope": scope, "associatedAt": now(), "modifiedAt": now()}),
        );
    }
}

/// Applies an `UpdateCapability` role mapping change: `addOrUpdateRoleMappings` sets a role's identities,
/// `removeRoleMappings` takes the identities listed off their role (a role left with none goes).
fn update_role_mappings(mappings: &mut Vec<Value>, change: &Value) {
    for m in change["addOrUpdateRoleMappings"].as_array().into_iter().flatten() {
        match mappings.iter_mut().find(|o| o["role"] == m["role"]) {
            Some(o) => *o = m.clone(),
            None => mappings.push(m.clone()),
        }
    }
    for m in change["removeRoleMappings"].as_array().into_iter().flatten() {
        let drop: Vec<&Value> = m["identities"].as_array().into_iter().flatten().collect();
        for o in mappings.iter_mut().filter(|o| o["role"] == m["role"]) {
            if let Some(ids) = o["identities"].as_array_mut() {
                ids.retain(|i| !drop.contains(&i));
            }
        }
        mappings.retain(|o| o["identities"].as_array().is_some_and(|i| !i.is_empty()));
    }
}

/// Capabilities as EKS keeps them (the CreateCapability, UpdateCapability and DeleteCapability API
/// references): one of each type per cluster, a role ARN, Argo CD's Identity Center for `ARGOCD` alone and
/// required there, CREATING then ACTIVE, UPDATING then ACTIVE, DELETING then gone; EKS makes the role's
/// access entry with the type's access policies a little after the capability is up (and removes it with the
/// capability), so the cluster must be in an authentication mode with access entries. moto has no
/// capabilities at all.
fn capabilities(x: &mut ClusterExtras, req: &Req<'_>, cluster: &str, segs: &[String], body: &Value) -> Answer {
    let b = req.behaviour;
    settle_capabilities(x);
    let missing = |name: &str| err(404, "ResourceNotFoundException", format!("Capability {name} not found."));
    let shown = |c: &Value, pending: u32| {
        let mut v = c.clone();
        if pending > 0 && v["status"] == "ACTIVE" {
            v["status"] = json!(if v["modifiedAt"] == v["createdAt"] { "CREATING" } else { "UPDATING" });
        }
        v
    };
    let name = segs.get(3).cloned().unwrap_or_default();
    match req.operation {
        "CreateCapability" => {
            let Some(name) = body["capabilityName"].as_str().filter(|n| !n.is_empty()).map(String::from) else {
                return err(400, "InvalidParameterException", "capabilityName is required".into());
            };
            let kind = body["type"].as_str().unwrap_or_default().to_string();
            if !["ACK", "KRO", "ARGOCD"].contains(&kind.as_str()) {
                return err(400, "InvalidParameterException", format!("The type parameter {kind} is not valid"));
            }
            let Some(role) = body["roleArn"].as_str().filter(|r| r.contains(":role/")).map(String::from) else {
                return err(400, "InvalidParameterException", "roleArn must be an IAM role ARN".into());
            };
            let argo = &body["configuration"]["argoCd"];
            if kind == "ARGOCD" && argo["awsIdc"]["idcInstanceArn"].as_str().is_none_or(str::is_empty) {
                return err(
                    400,
                    "InvalidParameterException",
                    "An ARGOCD capability requires configuration.argoCd.awsIdc.idcInstanceArn".into(),
                );
            }
            if kind != "ARGOCD" && !argo.is_null() {
                return err(
                    400,
                    "InvalidParameterException",
                    format!("configuration.argoCd is not supported for capability type {kind}"),
                );
            }
            if x.mode == "CONFIG_MAP" {
                return err(400, "InvalidRequestException", "The cluster's authentication mode must be set to one of [API, API_AND_CONFIG_MAP] to create a capability.".into());
            }
            if x.capabilities.contains_key(&name) {
                return err(
                    409,
                    "ResourceInUseException",
                    format!("Capability {name} already exists in cluster {cluster}."),
                );
            }
            if let Some(other) =
                x.capabilities.iter().find(|(_, (c, _))| c["type"] == kind.as_str()).map(|(n, _)| n.clone())
            {
                return err(
                    409,
                    "ResourceInUseException",
                    format!("Cluster {cluster} already has a capability of type {kind} ({other})."),
                );
            }
            let status = if b.fail.contains(&name) { "CREATE_FAILED" } else { "ACTIVE" };
            let mut configuration = json!({});
            if kind == "ARGOCD" {
                let namespace = argo["namespace"].as_str().unwrap_or("argocd");
                let mut a = json!({
                    "namespace": namespace,
                    "awsIdc": {"idcInstanceArn": argo["awsIdc"]["idcInstanceArn"], "idcRegion": argo["awsIdc"]["idcRegion"].as_str().unwrap_or(req.region)},
                    "rbacRoleMappings": argo["rbacRoleMappings"].as_array().cloned().unwrap_or_default(),
                    "serverUrl": format!("https://{name}.{cluster}.argocd.eks.{}.amazonaws.com", req.region),
                });
                if argo["networkAccess"].is_object() {
                    a["networkAccess"] = argo["networkAccess"].clone();
                }
                configuration = json!({"argoCd": a});
            }
            let at = now();
            let c = json!({
                "capabilityName": name,
                "arn": format!("arn:aws:eks:{}:{}:capability/{cluster}/{}/{name}/{:x}", req.region, req.account, kind.to_lowercase(), (at * 1e6) as u64),
                "clusterName": cluster,
                "type": kind,
                "roleArn": role,
                "status": status,
                "version": "v1",
                "configuration": configuration,
                "tags": if body["tags"].is_object() { body["tags"].clone() } else { json!({}) },
                "health": {"issues": []},
                "createdAt": at,
                "modifiedAt": at,
                "deletePropagationPolicy": body["deletePropagationPolicy"].as_str().unwrap_or("RETAIN"),
            });
            if status == "ACTIVE" {
                // the entry comes with the third call once the capability shows ACTIVE: a client that looks
                // for it right after seeing ACTIVE does not find it yet
                x.capability_entries_due.insert(name.clone(), 3);
            }
            let answer = shown(&c, b.pending_describes);
            x.capabilities.insert(name, (c, b.pending_describes));
            (StatusCode::OK, json!({"capability": answer}), None)
        }
        "DescribeCapability" => {
            let Some((c, pending)) = x.capabilities.get_mut(&name) else { return missing(&name) };
            let answer = shown(c, *pending);
            *pending = pending.saturating_sub(1);
            (StatusCode::OK, json!({"capability": answer}), None)
        }
        "ListCapabilities" => {
            let list: Vec<Value> = x
                .capabilities
                .values()
                .map(|(c, pending)| {
                    let c = shown(c, *pending);
                    json!({"capabilityName": c["capabilityName"], "arn": c["arn"], "type": c["type"], "status": c["status"], "version": c["version"], "createdAt": c["createdAt"], "modifiedAt": c["modifiedAt"]})
                })
                .collect();
            (StatusCode::OK, json!({"capabilities": list}), None)
        }
        "UpdateCapability" => {
            let Some((c, pending)) = x.capabilities.get_mut(&name) else { return missing(&name) };
            if *pending > 0 || c["status"] != "ACTIVE" {
                let st = shown(c, *pending)["status"].clone();
                return err(
                    409,
                    "ResourceInUseException",
                    format!("Capability {name} is {st}, and can be updated when ACTIVE."),
                );
            }
            let kind = c["type"].as_str().unwrap_or_default().to_string();
            let argo = &body["configuration"]["argoCd"];
            if !argo.is_null() && kind != "ARGOCD" {
                return err(
                    400,
                    "InvalidParameterException",
                    format!("configuration.argoCd is not supported for capability type {kind}"),
                );
            }
            let mut params = vec![];
            if let Some(role) = body["roleArn"].as_str() {
                if !role.contains(":role/") {
                    return err(400, "InvalidParameterException", "roleArn must be an IAM role ARN".into());
                }
                c["roleArn"] = json!(role);
                params.push(json!({"type": "RoleArn", "value": role}));
            }
            if argo["rbacRoleMappings"].is_object() {
                let cfg = &mut c["configuration"]["argoCd"]["rbacRoleMappings"];
                let mut mappings = cfg.as_array().cloned().unwrap_or_default();
                update_role_mappings(&mut mappings, &argo["rbacRoleMappings"]);
                *cfg = json!(mappings);
                params.push(json!({"type": "RoleMappingsToAddOrUpdate", "value": argo["rbacRoleMappings"]["addOrUpdateRoleMappings"].to_string()}));
            }
            if argo["networkAccess"].is_object() {
                c["configuration"]["argoCd"]["networkAccess"] = argo["networkAccess"].clone();
                params.push(json!({"type": "NetworkAccess", "value": argo["networkAccess"].to_string()}));
            }
            let at = now();
            c["modifiedAt"] = json!(at);
            *pending = b.pending_describes;
            let (role, namespace) = (
                c["roleArn"].as_str().unwrap_or_default().to_string(),
                c["configuration"]["argoCd"]["namespace"].as_str().unwrap_or("argocd").to_string(),
            );
            capability_entry(x, req, cluster, &role, &kind, &namespace);
            let update = json!({
                "id": format!("{:032x}", (at * 1e9) as u128),
                "status": "Successful",
                "type": "CapabilityUpdate",
                "params": params,
                "createdAt": at,
                "errors": [],
            });
            (StatusCode::OK, json!({"update": update}), None)
        }
        "DeleteCapability" => {
            let Some((c, pending)) = x.capabilities.get_mut(&name) else { return missing(&name) };
            if c["status"] != "DELETING" {
                c["status"] = json!("DELETING");
                *pending = b.pending_describes;
            }
            let answer = c.clone();
            settle_capabilities(x);
            (StatusCode::OK, json!({"capability": answer}), None)
        }
        other => err(400, "InvalidRequestException", format!("{other} is not emulated")),
    }
}

fn pod_identity(x: &mut ClusterExtras, req: &Req<'_>, cluster: &str, segs: &[String], body: &Value) -> Answer {
    let id = segs.get(3).cloned().unwrap_or_default();
    let missing =
        |id: &str| err(404, "ResourceNotFoundException", format!("No Pod Identity association found for id: {id}."));
    match req.operation {
        "CreatePodIdentityAssociation" => {
            let (Some(ns), Some(sa), Some(role)) =
                (body["namespace"].as_str(), body["serviceAccount"].as_str(), body["roleArn"].as_str())
            else {
                return err(
                    400,
                    "InvalidParameterException",
                    "namespace, serviceAccount and roleArn are required".into(),
                );
            };
            if principal_parts(role).is_none_or(|(k, _, _)| k != "role") {
                return err(400, "InvalidParameterException", format!("The roleArn {role} is not valid"));
            }
            if x.pod_identities.values().any(|a| a["namespace"] == ns && a["serviceAccount"] == sa) {
                return err(
                    409,
                    "ResourceInUseException",
                    format!("Association already exists for service account {ns}/{sa}"),
                );
            }
            let target = body["targetRoleArn"].as_str();
            if let Some(t) = target {
                if principal_parts(t).is_none_or(|(k, _, _)| k != "role") {
                    return err(400, "InvalidParameterException", format!("The targetRoleArn {t} is not valid"));
                }
            }
            let id = format!("a-{:017x}", (now() * 1e6) as u64 ^ x.pod_identities.len() as u64);
            let mut a = json!({
                "clusterName": cluster, "namespace": ns, "serviceAccount": sa, "roleArn": role,
                "disableSessionTags": body["disableSessionTags"].as_bool().unwrap_or(false),
                "associationArn": format!("arn:aws:eks:{}:{}:podidentityassociation/{cluster}/{id}", req.region, req.account),
                "associationId": id, "tags": if body["tags"].is_object() { body["tags"].clone() } else { json!({}) },
                "createdAt": now(), "modifiedAt": now(),
            });
            if let Some(t) = target {
                // the association's own ID for the target role's trust policy (`sts:ExternalId`)
                a["targetRoleArn"] = json!(t);
                a["externalId"] = json!(external_id(&id));
            }
            x.pod_identities.insert(id, a.clone());
            (StatusCode::OK, json!({"association": a}), None)
        }
        "DescribePodIdentityAssociation" => match x.pod_identities.get(&id) {
            Some(a) => (StatusCode::OK, json!({"association": a}), None),
            None => missing(&id),
        },
        "ListPodIdentityAssociations" => {
            let list: Vec<Value> = x
                .pod_identities
                .values()
                .map(|a| json!({"clusterName": a["clusterName"], "namespace": a["namespace"], "serviceAccount": a["serviceAccount"], "associationArn": a["associationArn"], "associationId": a["associationId"]}))
                .collect();
            (StatusCode::OK, json!({"associations": list}), None)
        }
        "UpdatePodIdentityAssociation" => {
            let Some(a) = x.pod_identities.get_mut(&id) else { return missing(&id) };
            if let Some(role) = body["roleArn"].as_str() {
                a["roleArn"] = json!(role);
            }
            if let Some(t) = body["targetRoleArn"].as_str() {
                if principal_parts(t).is_none_or(|(k, _, _)| k != "role") {
                    return err(400, "InvalidParameterException", format!("The targetRoleArn {t} is not valid"));
                }
                a["targetRoleArn"] = json!(t);
                if a["externalId"].is_null() {
                    a["externalId"] = json!(external_id(&id));
                }
            }
            if let Some(d) = body["disableSessionTags"].as_bool() {
                a["disableSessionTags"] = json!(d);
            }
            a["modifiedAt"] = json!(now());
            (StatusCode::OK, json!({"association": a}), None)
        }
        "DeletePodIdentityAssociation" => match x.pod_identities.remove(&id) {
            Some(a) => (StatusCode::OK, json!({"association": a}), None),
            None => missing(&id),
        },
        other => err(400, "InvalidRequestException", format!("{other} is not emulated")),
    }
}

/// A UUID-shaped external ID derived from the association ID, as EKS gives one to an association with a target
/// role.
fn external_id(id: &str) -> String {
    let h = |seed: u64| id.bytes().fold(seed, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
    let (a, b) = (h(0xcbf2_9ce4_8422_2325), h(0x8422_2325_cbf2_9ce4));
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

/// EKS's refusals of a `remoteNetworkConfig` (the `RemoteNodeNetwork` and `RemotePodNetwork` API reference):
/// at most one network of each kind, each block an RFC 1918 network of /8 to /32 that overlaps no other
/// block, the VPC's (`vpc`) or the services' (`service`); and access entries (a mode other than CONFIG_MAP)
/// to let the nodes in. `None` when EKS takes it.
pub fn refuse_remote_network(r: &Value, mode: &str, vpc: Option<&str>, service: Option<&str>) -> Option<Answer> {
    let bad = |m: String| Some(err(400, "InvalidParameterException", m));
    if mode == "CONFIG_MAP" {
        return bad(
            "Remote network config requires the cluster's authentication mode to be API or API_AND_CONFIG_MAP".into()
        );
    }
    let private: Vec<ipnet::Ipv4Net> =
        ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"].iter().filter_map(|c| c.parse().ok()).collect();
    let taken: Vec<ipnet::Ipv4Net> = [vpc, service].into_iter().flatten().filter_map(|c| c.parse().ok()).collect();
    let overlaps = |a: &ipnet::Ipv4Net, b: &ipnet::Ipv4Net| a.contains(&b.network()) || b.contains(&a.network());
    let mut seen: Vec<ipnet::Ipv4Net> = Vec::new();
    for kind in ["remoteNodeNetworks", "remotePodNetworks"] {
        let nets = r[kind].as_array().cloned().unwrap_or_default();
        if nets.len() > 1 {
            return bad(format!("{kind} can contain at most 1 network"));
        }
        for c in nets.iter().flat_map(|n| n["cidrs"].as_array().cloned().unwrap_or_default()) {
            let text = c.as_str().unwrap_or_default();
            let Ok(net) = text.parse::<ipnet::Ipv4Net>() else {
                return bad(format!("{text} in {kind} is not a valid IPv4 CIDR block"));
            };
            if net.trunc() != net || !private.iter().any(|p| p.contains(&net)) {
                return bad(format!("{text} in {kind} must be within an RFC-1918 IPv4 network range"));
            }
            if taken.iter().any(|t| overlaps(t, &net)) {
                return bad(format!("{text} in {kind} overlaps the VPC's or the Kubernetes service CIDR block"));
            }
            if seen.iter().any(|t| overlaps(t, &net)) {
                return bad(format!("{text} in {kind} overlaps another remote network CIDR block"));
            }
            seen.push(net);
        }
    }
    let has = |k: &str| {
        r[k].as_array().is_some_and(|n| n.iter().any(|n| n["cidrs"].as_array().is_some_and(|c| !c.is_empty())))
    };
    if has("remotePodNetworks") && !has("remoteNodeNetworks") {
        return bad("remotePodNetworks requires remoteNodeNetworks".into());
    }
    None
}

/// A `remoteNetworkConfig` as `DescribeCluster` reports it.
fn remote_network_answer(r: &Value) -> Value {
    let list = |k: &str| r[k].as_array().cloned().unwrap_or_default();
    json!({"remoteNodeNetworks": list("remoteNodeNetworks"), "remotePodNetworks": list("remotePodNetworks")})
}

#[allow(clippy::too_many_arguments)]
fn new_entry(
    account: &str,
    region: &str,
    cluster: &str,
    principal: &str,
    typ: &str,
    groups: Vec<String>,
    username: Option<&str>,
    tags: Value,
) -> Entry {
    let (kind, acct, name) = principal_parts(principal).unwrap_or(("user", account, "unknown"));
    let default_user = match (typ, kind) {
        ("EC2_LINUX" | "EC2_WINDOWS", _) => "system:node:{{EC2PrivateDNSName}}".to_string(),
        ("FARGATE_LINUX" | "HYBRID_LINUX", _) => "system:node:{{SessionName}}".to_string(),
        (_, "role") => format!("arn:aws:sts::{acct}:assumed-role/{name}/{{{{SessionName}}}}"),
        _ => principal.to_string(),
    };
    let groups = if groups.is_empty() && typ != "STANDARD" { vec!["system:nodes".to_string()] } else { groups };
    let body = json!({
        "clusterName": cluster,
        "principalArn": principal,
        "kubernetesGroups": groups,
        "accessEntryArn": format!("arn:aws:eks:{region}:{account}:access-entry/{cluster}/{kind}/{acct}/{name}/{:x}", (now() * 1e6) as u64),
        "createdAt": now(),
        "modifiedAt": now(),
        "tags": if tags.is_object() { tags } else { json!({}) },
        "username": username.map(String::from).unwrap_or(default_user),
        "type": typ,
    });
    Entry { body, policies: BTreeMap::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_networks_are_refused_as_eks_refuses_them() {
        let net = |nodes: &[&str], pods: &[&str]| {
            let list = |c: &[&str]| if c.is_empty() { json!([]) } else { json!([{"cidrs": c}]) };
            json!({"remoteNodeNetworks": list(nodes), "remotePodNetworks": list(pods)})
        };
        let vpc = Some("192.168.0.0/16");
        let service = Some("10.100.0.0/16");
        let refused =
            |r: &Value, mode: &str| refuse_remote_network(r, mode, vpc, service).map(|a| a.1["message"].to_string());
        assert_eq!(refused(&net(&["10.80.0.0/16"], &["10.81.0.0/16"]), "API"), None);
        assert_eq!(refused(&net(&[], &[]), "API_AND_CONFIG_MAP"), None, "empty lists take the networks away");
        for (bad, why) in [
            (net(&["10.80.0.0/16"], &[]), "CONFIG_MAP"),
            (net(&["8.8.8.0/24"], &[]), "RFC-1918"),
            (net(&["10.80.0.1/16"], &[]), "RFC-1918"),
            (net(&["192.168.4.0/24"], &[]), "overlaps the VPC"),
            (net(&["10.100.4.0/24"], &[]), "overlaps the VPC"),
            (net(&["10.80.0.0/16"], &["10.80.4.0/24"]), "another remote network"),
            (net(&[], &["10.81.0.0/16"]), "requires remoteNodeNetworks"),
            (net(&["nope"], &[]), "not a valid"),
        ] {
            let mode = if why == "CONFIG_MAP" { "CONFIG_MAP" } else { "API" };
            let m = refused(&bad, mode).unwrap_or_else(|| panic!("{bad} is taken"));
            assert!(m.contains(why), "{bad}: {m}");
        }
        let two = json!({"remoteNodeNetworks": [{"cidrs": ["10.80.0.0/16"]}, {"cidrs": ["10.90.0.0/16"]}]});
        assert!(refused(&two, "API").unwrap().contains("at most 1"));
    }

    #[test]
    fn an_ipv6_cluster_gets_a_stable_unique_local_service_range_and_no_ipv4_one() {
        let mut c = json!({"kubernetesNetworkConfig": {"ipFamily": "ipv6", "serviceIpv4Cidr": "172.20.0.0/16"}});
        network_config("shop", &mut c);
        let k = &c["kubernetesNetworkConfig"];
        let range = k["serviceIpv6Cidr"].as_str().unwrap();
        let (addr, len) = range.split_once('/').unwrap();
        let addr = u128::from(addr.parse::<std::net::Ipv6Addr>().unwrap());
        assert_eq!(len, "108");
        assert_eq!(addr & ((1 << 20) - 1), 0, "{range} is a network address");
        assert_eq!(addr >> 121, 0xfc >> 1, "{range} is a unique local address (fc00::/7)");
        assert!(k.get("serviceIpv4Cidr").is_none());
        let mut again = json!({"kubernetesNetworkConfig": {"ipFamily": "ipv6"}});
        network_config("shop", &mut again);
        assert_eq!(again["kubernetesNetworkConfig"]["serviceIpv6Cidr"], range);
        let mut other = json!({"kubernetesNetworkConfig": {"ipFamily": "ipv6"}});
        network_config("cart", &mut other);
        assert_ne!(other["kubernetesNetworkConfig"]["serviceIpv6Cidr"], range);
    }

    #[test]
    fn a_cluster_without_a_family_is_ipv4_and_keeps_its_range() {
        let mut c = json!({"kubernetesNetworkConfig": {"serviceIpv4Cidr": "10.100.0.0/16"}});
        network_config("shop", &mut c);
        assert_eq!(c["kubernetesNetworkConfig"], json!({"serviceIpv4Cidr": "10.100.0.0/16", "ipFamily": "ipv4"}));
        let mut bare = json!({});
        network_config("shop", &mut bare);
        assert_eq!(bare["kubernetesNetworkConfig"], json!({"ipFamily": "ipv4"}));
    }

    #[test]
    fn capabilities_are_one_per_type_with_the_entry_eks_makes_for_their_role() {
        let st = EksState::default();
        let b = Behaviour { pending_describes: 1, fail: vec![] };
        let call = |op: &str, path: &str, body: Value| {
            let body = body.to_string();
            let req = Req {
                operation: op,
                path,
                body: body.as_bytes(),
                account: "123456789012",
                region: "eu-west-1",
                query: "",
                behaviour: &b,
            };
            st.handle(&req, true)
        };
        let cap = |name: &str, kind: &str| {
            json!({"capabilityName": name, "type": kind, "roleArn": format!("arn:aws:iam::123456789012:role/{name}"),
                   "deletePropagationPolicy": "RETAIN"})
        };
        // a cluster without access entries takes no capability
        let (status, _, code) = call("CreateCapability", "/clusters/c/capabilities", cap("ack", "ACK"));
        assert_eq!((status.as_u16(), code), (400, Some("InvalidRequestException")));
        st.clusters.lock().unwrap().values_mut().for_each(|x| x.mode = "API_AND_CONFIG_MAP".into());
        let (status, a, _) = call("CreateCapability", "/clusters/c/capabilities", cap("ack", "ACK"));
        assert_eq!((status, a["capability"]["status"].as_str()), (StatusCode::OK, Some("CREATING")));
        // one of each type; Argo CD needs its Identity Center, and only Argo CD takes Argo CD's settings
        assert_eq!(call("CreateCapability", "/clusters/c/capabilities", cap("ack2", "ACK")).0.as_u16(), 409);
        assert_eq!(call("CreateCapability", "/clusters/c/capabilities", cap("argo", "ARGOCD")).0.as_u16(), 400);
        let mut kro = cap("kro", "KRO");
        kro["configuration"] = json!({"argoCd": {"namespace": "x"}});
        assert_eq!(call("CreateCapability", "/clusters/c/capabilities", kro).0.as_u16(), 400);
        let mut argo = cap("argo", "ARGOCD");
        argo["configuration"] = json!({"argoCd": {"awsIdc": {"idcInstanceArn": "arn:aws:sso:::instance/ssoins-1"},
            "rbacRoleMappings": [{"role": "ADMIN", "identities": [{"id": "a", "type": "SSO_USER"}, {"id": "b", "type": "SSO_USER"}]}]}});
        assert!(call("CreateCapability", "/clusters/c/capabilities", argo).0.is_success());
        // EKS's entry for each role, with the type's policies
        let policies = |role: &str| {
            let path =
                format!("/clusters/c/access-entries/arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2F{role}/access-policies");
            let (_, r, _) = call("ListAssociatedAccessPolicies", &path, json!({}));
            let mut p: Vec<String> = r["associatedAccessPolicies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    format!(
                        "{}|{}",
                        p["policyArn"].as_str().unwrap().rsplit('/').next().unwrap(),
                        p["accessScope"]["namespaces"]
                    )
                })
                .collect();
            p.sort();
            p
        };
        // not at once: the entry comes a little after the capability is up
        let entry = |role: &str| {
            let path = format!("/clusters/c/access-entries/arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2F{role}");
            call("DescribeAccessEntry", &path, json!({})).0.as_u16()
        };
        assert_eq!(entry("ack"), 404);
        let describe = |n: &str| call("DescribeCapability", &format!("/clusters/c/capabilities/{n}"), json!({})).1;
        assert_eq!(describe("ack")["capability"]["status"], "CREATING");
        assert_eq!(describe("ack")["capability"]["status"], "ACTIVE");
        assert_eq!(entry("ack"), 404);
        assert_eq!(entry("ack"), 200);
        assert_eq!(policies("ack"), ["AmazonEKSACKPolicy|[]"]);
        // an update waits for ACTIVE, then shows UPDATING; a removed identity leaves the rest of its role
        let change = json!({"configuration": {"argoCd": {"rbacRoleMappings": {
            "addOrUpdateRoleMappings": [{"role": "VIEWER", "identities": [{"id": "g", "type": "SSO_GROUP"}]}],
            "removeRoleMappings": [{"role": "ADMIN", "identities": [{"id": "b", "type": "SSO_USER"}]}]}}}});
        assert_eq!(call("UpdateCapability", "/clusters/c/capabilities/argo", change.clone()).0.as_u16(), 409);
        assert_eq!(describe("argo")["capability"]["status"], "CREATING");
        let (status, u, _) = call("UpdateCapability", "/clusters/c/capabilities/argo", change);
        assert_eq!((status, u["update"]["type"].as_str()), (StatusCode::OK, Some("CapabilityUpdate")));
        let shown = describe("argo");
        assert_eq!(shown["capability"]["status"], "UPDATING");
        let m = &shown["capability"]["configuration"]["argoCd"]["rbacRoleMappings"];
        assert_eq!(
            m,
            &json!([{"role": "ADMIN", "identities": [{"id": "a", "type": "SSO_USER"}]}, {"role": "VIEWER", "identities": [{"id": "g", "type": "SSO_GROUP"}]}])
        );
        assert_eq!(policies("argo"), ["AmazonEKSArgoCDClusterPolicy|[]", "AmazonEKSArgoCDPolicy|[\"argocd\"]"]);
        // the cluster cannot go while capabilities hold it; a deleted capability takes its entry with it
        assert!(st.refuse_cluster_delete("123456789012", "eu-west-1", "c").is_some());
        assert!(call("DeleteCapability", "/clusters/c/capabilities/ack", json!({})).0.is_success());
        assert_eq!(describe("ack")["capability"]["status"], "DELETING");
        assert_eq!(call("DescribeCapability", "/clusters/c/capabilities/ack", json!({})).0.as_u16(), 404);
        let (status, _, _) = call(
            "DescribeAccessEntry",
            "/clusters/c/access-entries/arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fack",
            json!({}),
        );
        assert_eq!(status.as_u16(), 404);
        let (_, list, _) = call("ListCapabilities", "/clusters/c/capabilities", json!({}));
        assert_eq!(list["capabilities"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn fargate_profiles_change_one_at_a_time_and_hold_their_cluster() {
        let st = EksState::default();
        let b = Behaviour { pending_describes: 2, fail: vec![] };
        let call = |op: &str, path: &str, body: Value| {
            let body = body.to_string();
            let req = Req {
                operation: op,
                path,
                body: body.as_bytes(),
                account: "123456789012",
                region: "eu-west-1",
                query: "",
                behaviour: &b,
            };
            st.handle(&req, true)
        };
        let profile = |name: &str| {
            json!({"fargateProfileName": name, "podExecutionRoleArn": "arn:aws:iam::123456789012:role/f",
                   "selectors": [{"namespace": "default"}], "subnets": ["subnet-1"]})
        };
        let (status, a, _) = call("CreateFargateProfile", "/clusters/c/fargate-profiles", profile("a"));
        assert_eq!((status, a["fargateProfile"]["status"].as_str()), (StatusCode::OK, Some("CREATING")));
        // a second profile waits for the first to settle
        let (status, _, code) = call("CreateFargateProfile", "/clusters/c/fargate-profiles", profile("b"));
        assert_eq!((status.as_u16(), code), (409, Some("ResourceInUseException")));
        let describe =
            |n: &str| call("DescribeFargateProfile", &format!("/clusters/c/fargate-profiles/{n}"), json!({}));
        assert_eq!(describe("a").1["fargateProfile"]["status"], "CREATING");
        assert_eq!(describe("a").1["fargateProfile"]["status"], "CREATING");
        assert_eq!(describe("a").1["fargateProfile"]["status"], "ACTIVE");
        assert!(call("CreateFargateProfile", "/clusters/c/fargate-profiles", profile("b")).0.is_success());
        // the same name again is refused, and so is a profile without selectors
        assert_eq!(call("CreateFargateProfile", "/clusters/c/fargate-profiles", profile("a")).0.as_u16(), 409);
        let mut bare = profile("z");
        bare["selectors"] = json!([]);
        assert_eq!(call("CreateFargateProfile", "/clusters/c/fargate-profiles", bare).0.as_u16(), 400);
        // the cluster cannot go while profiles hold it
        assert!(st.refuse_cluster_delete("123456789012", "eu-west-1", "c").is_some());
        assert_eq!(call("DeleteFargateProfile", "/clusters/c/fargate-profiles/a", json!({})).0.as_u16(), 409);
        describe("b");
        describe("b");
        assert!(call("DeleteFargateProfile", "/clusters/c/fargate-profiles/a", json!({})).0.is_success());
        assert_eq!(describe("a").1["fargateProfile"]["status"], "DELETING");
        describe("a");
        assert_eq!(describe("a").0.as_u16(), 404);
        assert!(call("DeleteFargateProfile", "/clusters/c/fargate-profiles/b", json!({})).0.is_success());
        describe("b");
        describe("b");
        let (_, list, _) = call("ListFargateProfiles", "/clusters/c/fargate-profiles", json!({}));
        assert_eq!(list["fargateProfileNames"], json!([]));
        assert!(st.refuse_cluster_delete("123456789012", "eu-west-1", "c").is_none());
    }
}
