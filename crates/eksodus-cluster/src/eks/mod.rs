//! The EKS reconciler (feature `aws`): the control plane, managed nodegroups, addons, and the version steps of
//! an upgrade, discovered by name and ownership tags, diffed, and driven through the engine with waiters.
//!
//! | key | kind | depends on |
//! |---|---|---|
//! | `eks/cluster` | eks-cluster | `role/cluster`, the cluster subnets, `sg/cluster` |
//! | `eks/addon/<name>` | eks-addon | `eks/cluster`, its IRSA role; addons other than [`addons::before_nodes`] also the nodegroups |
//! | `eks/nodegroup/<name>` | eks-nodegroup | `eks/cluster`, `role/node`, its subnets, the addons nodes need |
//! | `upgrade/<version>/...` | eks-version | the previous part of the upgrade (control plane, then addons, then nodegroups) |
//!
//! A cluster of the environment's name that does not carry the environment's ownership tags is never adopted,
//! changed or deleted: planning fails instead. The control plane is never replaced: a plan that would is refused
//! ([`Error::ClusterReplacement`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use aws_sdk_eks::types::{
    AmiTypes, AuthenticationMode as EksMode, CapacityTypes, CreateAccessConfigRequest, EncryptionConfig,
    KubernetesNetworkConfigRequest, LogSetup, LogType, Logging, NodegroupScalingConfig, NodegroupUpdateConfig,
    Provider, RemoteAccessConfig, ResolveConflicts, SupportType, Taint, TaintEffect, UpdateLabelsPayload,
    UpdateTaintsPayload, UpgradePolicyRequest, VpcConfigRequest,
};
use aws_sdk_eks::Client;
use futures::future::try_join_all;
use serde::Serialize;
use serde_json::{json, Map, Value};

use eksodus_core::aws::{error_code, step_error, Calls};
use eksodus_core::engine::{
    retry, ApplyOptions, BoxFuture, ErrorClass, Executor, OpContext, OpKind, Operation, StepError, WaitState,
};
use eksodus_core::plan::{self, Action, Cost, Desired, Observed, Plan};
use eksodus_core::spec::{AuthenticationMode, EnvironmentSpec};
use eksodus_core::tags;

mod props;
#[cfg(test)]
mod tests;

use props::{from_props, to_props};
pub use props::{AddonProps, NodegroupProps, RemoteAccessProps, Scaling, TaintProps};

use crate::addons::{self, AddonVersion, Catalogue};
use crate::upgrade::{self, ClusterState, Preflight};
use crate::Error;

/// The component name in ownership tags.
pub const COMPONENT: &str = "cluster";

/// Resource kinds this reconciler executes.
pub const KINDS: &[&str] = &["eks-cluster", "eks-nodegroup", "eks-addon", "eks-version"];

/// Key of the control plane.
pub const CLUSTER_KEY: &str = "eks/cluster";

/// The IAM actions this reconciler uses (for the permissions document).
pub const ACTIONS: &[&str] = &[
    "eks:CreateCluster",
    "eks:DescribeCluster",
    "eks:UpdateClusterConfig",
    "eks:UpdateClusterVersion",
    "eks:DeleteCluster",
    "eks:DescribeUpdate",
    "eks:CreateNodegroup",
    "eks:DescribeNodegroup",
    "eks:ListNodegroups",
    "eks:UpdateNodegroupConfig",
    "eks:UpdateNodegroupVersion",
    "eks:DeleteNodegroup",
    "eks:CreateAddon",
    "eks:DescribeAddon",
    "eks:ListAddons",
    "eks:UpdateAddon",
    "eks:DeleteAddon",
    "eks:DescribeAddonVersions",
    "eks:TagResource",
    "iam:PassRole",
];

/// Settings taken only at creation: the control plane's authentication mode (it moves later through the
/// access component, forward only), bootstrap admin and support type; a nodegroup's max pods (recorded as the
/// `eksodus.io/max-pods` tag, computed with the instance's vCPUs, which only a create looks up); an addon's
/// `resolve_conflicts`, which is a parameter of each call, not a setting EKS keeps.
pub const CREATE_ONLY: &[&str] =
    &["authentication_mode", "bootstrap_admin", "support_type", "max_pods", "resolve_conflicts"];

/// Key of a nodegroup.
pub fn nodegroup_key(name: &str) -> String {
    format!("eks/nodegroup/{name}")
}

/// Key of an addon.
pub fn addon_key(name: &str) -> String {
    format!("eks/addon/{name}")
}

/// The default AMI type of nodegroups that do not set one.
pub const DEFAULT_AMI_TYPE: &str = "AL2023_x86_64_STANDARD";
/// The default root volume of nodegroups that do not set one, in GiB (EKS's default).
pub const DEFAULT_DISK_SIZE: u32 = 20;

/// What discovery found of the control plane.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClusterInfo {
    /// Name.
    pub name: String,
    /// ARN.
    pub arn: String,
    /// Account ID (from the ARN).
    pub account: String,
    /// `CREATING`, `ACTIVE`, `UPDATING`, `DELETING`, `FAILED`.
    pub status: String,
    /// Kubernetes version.
    pub version: String,
    /// API server endpoint.
    pub endpoint: Option<String>,
    /// Base64 CA bundle.
    pub certificate_authority: Option<String>,
    /// OIDC issuer URL (for IRSA).
    pub oidc_issuer: Option<String>,
    /// Authentication mode.
    pub authentication_mode: Option<AuthenticationMode>,
    /// Subnets of the control plane's network interfaces.
    pub subnet_ids: Vec<String>,
    /// Health issues EKS reports.
    pub health: Vec<String>,
    /// Whether it carries this environment's ownership tags.
    pub owned: bool,
}

/// Everything discovery found.
#[derive(Debug, Clone, Default)]
pub struct Found {
    /// The control plane, when a cluster of the environment's name exists.
    pub cluster: Option<ClusterInfo>,
    /// Owned cluster, nodegroups and addons as observed resources.
    pub observed: Vec<Observed>,
    /// Nodegroup → (version, status).
    pub nodegroups: BTreeMap<String, (String, String)>,
    /// Addon → version.
    pub addons: BTreeMap<String, String>,
}

impl Found {
    /// Replaces the physical IDs of other components (subnets, security groups, the KMS key) with their keys
    /// and adds those keys to the dependencies, as a discovery given the map would have: so EKS can be
    /// discovered while the components it refers to still are.
    pub fn rekey(&mut self, ids_to_keys: &HashMap<String, String>) {
        for o in &mut self.observed {
            let mut added = Vec::new();
            for field in ["subnets", "security_groups"] {
                if let Some(Value::Array(a)) = o.props.get_mut(field) {
                    for v in a.iter_mut() {
                        if let Some(k) = v.as_str().and_then(|s| ids_to_keys.get(s)) {
                            added.push(k.clone());
                            *v = json!(k);
                        }
                    }
                    if field == "subnets" {
                        a.sort_by(|x, y| x.as_str().cmp(&y.as_str()));
                    }
                }
            }
            if let Some(Value::String(s)) = o.props.get_mut("encryption_key") {
                if let Some(k) = ids_to_keys.get(s.as_str()) {
                    if k == crate::kms::KEY {
                        added.push(k.clone());
                    }
                    *s = k.clone();
                }
            }
            for k in added {
                if !o.depends_on.contains(&k) {
                    o.depends_on.push(k);
                }
            }
        }
    }
}

/// What the desired state depends on that only discovery knows.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// Account ID (role ARNs).
    pub account: &'a str,
    /// The Kubernetes version the nodegroups and addons are planned for (the cluster's when it exists).
    pub version: &'a str,
    /// What EKS offers for `version` (needed to resolve addons that are not installed or are pinned).
    pub catalogue: Option<&'a Catalogue>,
    /// Installed addon versions (kept when the spec does not pin one: EKS never moves an addon by itself,
    /// and neither does a re-plan).
    pub installed_addons: &'a BTreeMap<String, String>,
    /// Keys of the IRSA roles the IAM plan has (an addon whose role cannot be planned yet is deferred).
    pub iam_keys: &'a BTreeSet<String>,
    /// Cluster subnets: keys of the network component (`subnet/private/us-east-1a`), or IDs when adopted.
    pub cluster_subnets: Vec<String>,
    /// Zone → node subnet (key or ID), private tier.
    pub private_subnets: BTreeMap<String, String>,
    /// Zone → node subnet (key or ID), public tier.
    pub public_subnets: BTreeMap<String, String>,
    /// Security groups for the control plane (keys or IDs).
    pub security_groups: Vec<String>,
    /// Max pods per node for an instance type under the spec's CNI mode (eksodus-net's capacity math).
    pub max_pods: BTreeMap<String, u32>,
}

/// The desired resources, and what had to wait for a later round.
#[derive(Debug, Clone, Default)]
pub struct DesiredSet {
    /// Resources.
    pub desired: Vec<Desired>,
    /// Resources left out until something they need exists (`key: why`).
    pub deferred: Vec<String>,
}

/// Reconciles one environment's EKS cluster.
#[derive(Debug, Clone)]
pub struct Eks {
    eks: Client,
    name: String,
    env: String,
    partition: &'static str,
    user_tags: BTreeMap<String, String>,
    reads: ApplyOptions,
    calls: Calls,
}

fn props(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn tag_map(t: Option<&HashMap<String, String>>) -> BTreeMap<String, String> {
    t.map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default()
}

fn is_not_found(code: Option<&str>) -> bool {
    code == Some("ResourceNotFoundException")
}

/// `ResourceInUseException` on an update or delete means "another update is still running" (or nodegroups are
/// still being deleted): wait and retry, bounded by the engine.
fn busy<E>(
    what: String,
    e: aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> StepError
where
    E: aws_sdk_eks::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = error_code(&e).map(String::from);
    let mut se = step_error(what, e);
    if code.as_deref() == Some("ResourceInUseException") {
        se.class = ErrorClass::Transient;
    }
    se
}

/// What a waiter sees of a nodegroup or addon.
struct Member {
    status: String,
    version: Option<String>,
    health: String,
}

/// EKS health issues as one line: `code: message; ...`.
fn health<'a>(issues: impl Iterator<Item = (Option<&'a str>, Option<&'a str>)>) -> String {
    issues.map(|(c, m)| format!("{}: {}", c.unwrap_or("?"), m.unwrap_or_default())).collect::<Vec<_>>().join("; ")
}

fn strings(m: &Map<String, Value>, k: &str) -> Vec<String> {
    m.get(k).and_then(Value::as_array).into_iter().flatten().filter_map(|v| v.as_str().map(String::from)).collect()
}

fn text(m: &Map<String, Value>, k: &str) -> Option<String> {
    m.get(k).and_then(Value::as_str).map(String::from)
}

fn is_physical(v: &str) -> bool {
    v.starts_with("subnet-") || v.starts_with("sg-")
}

/// A role ARN from its parts.
fn role_arn(partition: &str, account: &str, spec: &EnvironmentSpec, purpose: &str) -> String {
    format!(
        "arn:{partition}:iam::{account}:role{}{}",
        eksodus_access::iam::role_path(spec),
        eksodus_access::iam::role_name(&spec.name, purpose)
    )
}

impl Eks {
    /// A reconciler for `spec`'s cluster (named after the environment).
    pub fn new(eks: Client, spec: &EnvironmentSpec) -> Self {
        let calls = Calls::for_region("eks", &eks.config().region().map(|r| r.to_string()).unwrap_or_default());
        Eks {
            eks,
            name: spec.name.clone(),
            env: spec.name.clone(),
            partition: eksodus_access::policy::partition(&spec.region),
            user_tags: spec.tags.clone(),
            reads: ApplyOptions::default(),
            calls,
        }
    }

    /// Uses `opts`' retry policy for reads made outside the engine.
    pub fn with_retry(mut self, opts: ApplyOptions) -> Self {
        self.calls = self.calls.with_policy(opts.calls);
        self.reads = opts;
        self
    }

    /// The caller of EKS this reconciler uses.
    pub fn calls(&self) -> &Calls {
        &self.calls
    }

    /// Calls AWS through `calls` (keyed to the SDK configuration's region and endpoint, shared with every other
    /// client of the process that talks to the same place).
    pub fn with_calls(mut self, calls: Calls) -> Self {
        self.calls = calls.with_policy(*self.calls.policy());
        self
    }

    /// The cluster's name.
    pub fn cluster_name(&self) -> &str {
        &self.name
    }

    fn user_tag_props(&self) -> Value {
        json!(self.user_tags)
    }

    fn owner_tags(&self, key: &str) -> HashMap<String, String> {
        tags::ownership(&self.env, COMPONENT, key, &self.user_tags).into_iter().collect()
    }

    /// The resources `spec` wants, given what discovery knows.
    pub fn desired(&self, spec: &EnvironmentSpec, inp: &Inputs<'_>) -> Result<DesiredSet, Error> {
        let Some(c) = &spec.cluster else { return Ok(DesiredSet::default()) };
        let mut out = DesiredSet::default();
        let mut logging = c.logging.clone();
        logging.sort();
        logging.dedup();
        let mut cidrs: Vec<String> = c.endpoint.public_cidrs.iter().map(|n| n.to_string()).collect();
        if c.endpoint.public && cidrs.is_empty() {
            cidrs.push("0.0.0.0/0".into());
        }
        cidrs.sort();
        let mut subnets = inp.cluster_subnets.clone();
        subnets.sort();
        let created_key = crate::kms::wanted(spec).is_some();
        let key_arn = if created_key {
            Some(crate::kms::KEY.to_string())
        } else {
            c.encryption.as_ref().and_then(|e| e.key_arn.clone())
        };
        let cluster_role = "role/cluster".to_string();
        let mut deps: Vec<String> = vec![cluster_role.clone()];
        if created_key {
            deps.push(crate::kms::KEY.into());
        }
        deps.extend(subnets.iter().filter(|s| !is_physical(s)).cloned());
        deps.extend(inp.security_groups.iter().filter(|s| !is_physical(s)).cloned());
        let mut p = json!({
            "name": self.name,
            "version": inp.version,
            "role_arn": role_arn(self.partition, inp.account, spec, "cluster"),
            "subnets": subnets,
            "security_groups": inp.security_groups,
            "endpoint_public": c.endpoint.public,
            "endpoint_private": c.endpoint.private,
            "public_cidrs": if c.endpoint.public { json!(cidrs) } else { json!([]) },
            "logging": logging,
            "encryption_key": key_arn,
            "tags": self.user_tag_props(),
        });
        if let Some(s) = &c.service_ipv4_cidr {
            p["service_cidr"] = json!(s.to_string());
        }
        // create-only settings: later changes go through the access component (the mode) or are not made
        let mode =
            spec.access.as_ref().and_then(|a| a.authentication_mode).unwrap_or(AuthenticationMode::ApiAndConfigMap);
        p["authentication_mode"] = json!(mode.as_str());
        p["bootstrap_admin"] = json!(c.bootstrap_admin);
        if let Some(t) = &c.support_type {
            p["support_type"] = json!(t);
        }
        out.desired.push(Desired {
            key: CLUSTER_KEY.into(),
            kind: "eks-cluster".into(),
            props: props(p),
            immutable: ["name", "role_arn", "subnets", "security_groups", "encryption_key", "service_cidr"]
                .map(String::from)
                .to_vec(),
            depends_on: deps,
            cost: Cost::new(2, 3, 2),
        });

        // addons first: nodegroups depend on the ones nodes need
        let mut node_addons = Vec::new();
        let mut later_addons = Vec::new();
        for (i, a) in c.addons.iter().enumerate() {
            let key = addon_key(&a.name);
            let version = match (a.version.as_deref(), inp.installed_addons.get(&a.name)) {
                (None, Some(installed)) => installed.clone(),
                (Some(v), Some(installed)) if v == installed => installed.clone(),
                (wanted, _) => match inp.catalogue {
                    Some(cat) => cat
                        .resolve(&a.name, wanted)
                        .map_err(|m| Error::Spec { field: format!("cluster.addons[{i}].version"), message: m })?,
                    None => {
                        return Err(Error::Spec {
                            field: format!("cluster.addons[{i}]"),
                            message: "the addon catalogue for the cluster version was not read".into(),
                        })
                    }
                },
            };
            let mut role = None;
            let mut adeps = vec![CLUSTER_KEY.to_string()];
            let sa = addons::service_account(&a.name);
            let irsa = sa.map(|(ns, n)| format!("role/irsa/{ns}/{n}"));
            let wants_role = !a.policies.is_empty()
                || (a.name == "vpc-cni" && spec.access.as_ref().is_some_and(|x| x.iam.cni_irsa))
                || sa.is_some_and(|(ns, n)| {
                    spec.access
                        .as_ref()
                        .is_some_and(|x| x.service_accounts.iter().any(|s| s.namespace == ns && s.name == n))
                });
            if wants_role {
                let (Some((ns, n)), Some(rk)) = (sa, irsa) else {
                    return Err(Error::Spec {
                        field: format!("cluster.addons[{i}].policies"),
                        message: format!("eksodus does not know the service account of addon `{}`", a.name),
                    });
                };
                if !inp.iam_keys.contains(&rk) {
                    out.deferred.push(format!("{key}: waits for its IAM role {rk} (needs the cluster's OIDC issuer)"));
                    continue;
                }
                role = Some(role_arn(self.partition, inp.account, spec, &format!("{ns}-{n}")));
                adeps.push(rk);
            }
            let user_cfg = a.configuration_values.as_ref();
            let cfg =
                if a.name == "vpc-cni" { addons::vpc_cni_configuration(spec, user_cfg) } else { user_cfg.cloned() };
            let d = Desired {
                key: key.clone(),
                kind: "eks-addon".into(),
                props: to_props(&AddonProps {
                    name: a.name.clone(),
                    version,
                    configuration: cfg.as_ref().map(addons::canonical_json),
                    role_arn: role,
                    resolve_conflicts: a.resolve_conflicts.clone().unwrap_or_else(|| "OVERWRITE".into()),
                    tags: self.user_tags.clone(),
                }),
                immutable: vec!["name".into()],
                depends_on: adeps,
                cost: Cost::new(2, 2, 2),
            };
            if addons::before_nodes(&a.name) {
                node_addons.push(d);
            } else {
                later_addons.push(d);
            }
        }
        let node_addon_keys: Vec<String> = node_addons.iter().map(|d| d.key.clone()).collect();
        let mut ng_keys = Vec::new();
        for (i, n) in c.nodegroups.iter().enumerate() {
            let tier = if n.public { &inp.public_subnets } else { &inp.private_subnets };
            let mut subnets: Vec<String> = tier
                .iter()
                .filter(|(az, _)| n.zones.is_empty() || n.zones.contains(az))
                .map(|(_, s)| s.clone())
                .collect();
            subnets.sort();
            if subnets.is_empty() {
                return Err(Error::Spec {
                    field: format!("cluster.nodegroups[{i}]"),
                    message: format!("no {} subnet in its zones", if n.public { "public" } else { "private" }),
                });
            }
            let mut types = n.instance_types.clone();
            types.sort();
            let max_pods = types.iter().filter_map(|t| inp.max_pods.get(t).copied()).min();
            let mut taints: Vec<TaintProps> = n
                .taints
                .iter()
                .map(|t| TaintProps {
                    key: t.key.clone(),
                    value: t.value.clone().unwrap_or_default(),
                    effect: t.effect.clone(),
                })
                .collect();
            taints.sort();
            let mut tags = self.user_tags.clone();
            tags.extend(n.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            let remote_access = n.ssh.as_ref().map(|ssh| {
                let mut groups = ssh.source_security_groups.clone();
                groups.sort();
                RemoteAccessProps { key_name: ssh.key_name.clone(), source_security_groups: groups }
            });
            // the nodes' role: the user's, the nodegroup's own (extra policies), or the environment's
            let (node_role_arn, role_dep) = match (&n.iam.role_arn, n.iam.attach_policies.is_empty()) {
                (Some(arn), _) => (arn.clone(), None),
                (None, false) => (
                    role_arn(self.partition, inp.account, spec, &format!("node-{}", n.name)),
                    Some(eksodus_access::iam::nodegroup_role_key(&n.name)),
                ),
                (None, true) => (role_arn(self.partition, inp.account, spec, "node"), Some("role/node".to_string())),
            };
            let mut deps = vec![CLUSTER_KEY.to_string()];
            deps.extend(role_dep);
            deps.extend(subnets.iter().filter(|s| !is_physical(s)).cloned());
            deps.extend(node_addon_keys.iter().cloned());
            let key = nodegroup_key(&n.name);
            ng_keys.push(key.clone());
            out.desired.push(Desired {
                key,
                kind: "eks-nodegroup".into(),
                props: to_props(&NodegroupProps {
                    name: n.name.clone(),
                    version: inp.version.to_string(),
                    instance_types: types,
                    capacity_type: n.capacity_type.clone(),
                    ami_type: n.ami_type.clone().unwrap_or_else(|| DEFAULT_AMI_TYPE.into()),
                    disk_size: n.disk_size.unwrap_or(DEFAULT_DISK_SIZE),
                    subnets,
                    node_role_arn,
                    scaling: Scaling { min: n.min, max: n.max, desired: n.desired },
                    labels: n.labels.clone(),
                    taints,
                    max_unavailable: n.max_unavailable.unwrap_or(1),
                    max_pods,
                    tags,
                    remote_access,
                }),
                immutable: [
                    "name",
                    "remote_access",
                    "instance_types",
                    "capacity_type",
                    "ami_type",
                    "disk_size",
                    "subnets",
                    "node_role_arn",
                ]
                .map(String::from)
                .to_vec(),
                depends_on: deps,
                cost: Cost::new(2, 3, 2),
            });
        }
        for mut d in later_addons {
            d.depends_on.extend(ng_keys.iter().cloned());
            out.desired.push(d);
        }
        out.desired.extend(node_addons);
        Ok(out)
    }

    /// Reads the control plane, its nodegroups and addons (one describe each).
    pub async fn discover(&self, ids_to_keys: &HashMap<String, String>) -> Result<Found, Error> {
        Box::pin(self.discover_inner(ids_to_keys)).await
    }

    async fn describe_cluster(&self) -> Result<Option<aws_sdk_eks::types::Cluster>, StepError> {
        match self.calls.read(|| self.eks.describe_cluster().name(&self.name).send()).await {
            Ok(r) => Ok(r.cluster().cloned()),
            Err(e) if is_not_found(error_code(&e)) => Ok(None),
            Err(e) => Err(step_error(format!("DescribeCluster {}", self.name), e)),
        }
    }

    async fn discover_inner(&self, ids_to_keys: &HashMap<String, String>) -> Result<Found, Error> {
        let key_of = |id: &str| ids_to_keys.get(id).cloned().unwrap_or_else(|| id.to_string());
        let Some(c) = retry(&self.reads, || self.describe_cluster()).await? else { return Ok(Found::default()) };
        let t = tag_map(c.tags());
        let owned = tags::is_owned(&t, &self.env, COMPONENT);
        let arn = c.arn().unwrap_or_default().to_string();
        let vpc = c.resources_vpc_config();
        let info = ClusterInfo {
            name: self.name.clone(),
            account: arn.split(':').nth(4).unwrap_or_default().to_string(),
            arn: arn.clone(),
            status: c.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
            version: c.version().unwrap_or_default().to_string(),
            endpoint: c.endpoint().map(String::from),
            certificate_authority: c.certificate_authority().and_then(|a| a.data()).map(String::from),
            oidc_issuer: c.identity().and_then(|i| i.oidc()).and_then(|o| o.issuer()).map(String::from),
            authentication_mode: c
                .access_config()
                .and_then(|a| a.authentication_mode())
                .and_then(|m| AuthenticationMode::parse(m.as_str())),
            subnet_ids: vpc.map(|v| v.subnet_ids().to_vec()).unwrap_or_default(),
            health: c
                .health()
                .map(|h| h.issues())
                .unwrap_or_default()
                .iter()
                .map(|i| {
                    format!("{}: {}", i.code().map(|c| c.as_str()).unwrap_or("?"), i.message().unwrap_or_default())
                })
                .collect(),
            owned,
        };
        let mut found = Found { cluster: Some(info.clone()), ..Default::default() };
        if !owned {
            return Ok(found);
        }
        let mut subnets: Vec<String> = info.subnet_ids.iter().map(|s| key_of(s)).collect();
        subnets.sort();
        let sgs: Vec<String> =
            vpc.map(|v| v.security_group_ids().iter().map(|s| key_of(s)).collect()).unwrap_or_default();
        let mut logging: Vec<String> = c
            .logging()
            .map(|l| {
                l.cluster_logging()
                    .iter()
                    .filter(|s| s.enabled() == Some(true))
                    .flat_map(|s| s.types().iter().map(|t| t.as_str().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        logging.sort();
        logging.dedup();
        let mut cidrs: Vec<String> = vpc.map(|v| v.public_access_cidrs().to_vec()).unwrap_or_default();
        cidrs.sort();
        let public = vpc.map(|v| v.endpoint_public_access()).unwrap_or(true);
        let encryption_key: Option<String> =
            c.encryption_config().iter().find_map(|e| e.provider().and_then(|p| p.key_arn())).map(&key_of);
        let mut p = json!({
            "name": c.name(),
            "version": info.version,
            "role_arn": c.role_arn(),
            "subnets": subnets,
            "security_groups": sgs,
            "endpoint_public": public,
            "endpoint_private": vpc.map(|v| v.endpoint_private_access()).unwrap_or(false),
            "public_cidrs": if public { json!(cidrs) } else { json!([]) },
            "logging": logging,
            "encryption_key": encryption_key.clone(),
            "tags": t,
        });
        if let Some(s) = c.kubernetes_network_config().and_then(|k| k.service_ipv4_cidr()) {
            p["service_cidr"] = json!(s);
        }
        let mut cdeps = vec!["role/cluster".to_string()];
        if encryption_key.as_deref() == Some(crate::kms::KEY) {
            cdeps.push(crate::kms::KEY.into());
        }
        cdeps.extend(subnets.iter().chain(sgs.iter()).filter(|s| !is_physical(s)).cloned());
        found.observed.push(Observed {
            key: CLUSTER_KEY.into(),
            kind: "eks-cluster".into(),
            physical_id: self.name.clone(),
            props: props(p),
            depends_on: cdeps,
            delete_cost: 2,
        });

        let (ngs, addon_names) = retry(&self.reads, || async {
            let nodegroups = async {
                let mut ngs = Vec::new();
                let mut token = None;
                loop {
                    let r = self
                        .calls
                        .read(|| {
                            self.eks.list_nodegroups().cluster_name(&self.name).set_next_token(token.clone()).send()
                        })
                        .await
                        .map_err(|e| step_error(format!("ListNodegroups {}", self.name), e))?;
                    ngs.extend(r.nodegroups().iter().cloned());
                    token = r.next_token().map(String::from);
                    if token.is_none() {
                        break;
                    }
                }
                Ok::<_, StepError>(ngs)
            };
            let addons = async {
                let mut addons = Vec::new();
                let mut token = None;
                loop {
                    let r = self
                        .calls
                        .read(|| self.eks.list_addons().cluster_name(&self.name).set_next_token(token.clone()).send())
                        .await
                        .map_err(|e| step_error(format!("ListAddons {}", self.name), e))?;
                    addons.extend(r.addons().iter().cloned());
                    token = r.next_token().map(String::from);
                    if token.is_none() {
                        break;
                    }
                }
                Ok::<_, StepError>(addons)
            };
            tokio::try_join!(nodegroups, addons)
        })
        .await?;
        let (ng_found, addon_found) = tokio::try_join!(
            try_join_all(ngs.iter().map(|n| self.observe_nodegroup(n, &key_of))),
            try_join_all(addon_names.iter().map(|a| self.observe_addon(a))),
        )?;
        for (o, version, status) in ng_found.into_iter().flatten() {
            let name = o.physical_id.clone();
            found.nodegroups.insert(name, (version, status));
            found.observed.push(o);
        }
        for (o, version) in addon_found.into_iter().flatten() {
            found.addons.insert(o.physical_id.clone(), version);
            found.observed.push(o);
        }
        found.observed.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    async fn observe_nodegroup(
        &self,
        name: &str,
        key_of: &(dyn Fn(&str) -> String + Sync),
    ) -> Result<Option<(Observed, String, String)>, StepError> {
        let r = retry(&self.reads, || async {
            match self
                .calls
                .read(|| self.eks.describe_nodegroup().cluster_name(&self.name).nodegroup_name(name).send())
                .await
            {
                Ok(r) => Ok(r.nodegroup().cloned()),
                Err(e) if is_not_found(error_code(&e)) => Ok(None),
                Err(e) => Err(step_error(format!("DescribeNodegroup {name}"), e)),
            }
        })
        .await?;
        let Some(n) = r else { return Ok(None) };
        let t = tag_map(n.tags());
        if !tags::is_owned(&t, &self.env, COMPONENT) {
            return Ok(None);
        }
        let Some(key) = t.get(tags::RESOURCE).cloned() else { return Ok(None) };
        Ok(Some(observed_nodegroup(&self.env, &n, key, key_of)))
    }

    async fn observe_addon(&self, name: &str) -> Result<Option<(Observed, String)>, StepError> {
        let r = retry(&self.reads, || async {
            match self.calls.read(|| self.eks.describe_addon().cluster_name(&self.name).addon_name(name).send()).await {
                Ok(r) => Ok(r.addon().cloned()),
                Err(e) if is_not_found(error_code(&e)) => Ok(None),
                Err(e) => Err(step_error(format!("DescribeAddon {name}"), e)),
            }
        })
        .await?;
        let Some(a) = r else { return Ok(None) };
        let t = tag_map(a.tags());
        let version = a.addon_version().unwrap_or_default().to_string();
        if !tags::is_owned(&t, &self.env, COMPONENT) {
            return Ok(None);
        }
        let cfg = a.configuration_values().filter(|s| !s.trim().is_empty()).map(|s| {
            serde_json::from_str::<Value>(s)
                .or_else(|_| serde_saphyr::from_str::<Value>(s))
                .map(|v| addons::canonical_json(&v))
                .unwrap_or_else(|_| s.to_string())
        });
        let mut deps = vec![CLUSTER_KEY.to_string()];
        if let Some((ns, n)) = addons::service_account(name) {
            if a.service_account_role_arn().is_some() {
                deps.push(format!("role/irsa/{ns}/{n}"));
            }
        }
        let o = Observed {
            key: addon_key(name),
            kind: "eks-addon".into(),
            physical_id: name.to_string(),
            props: props(json!({
                "name": name,
                "version": version,
                "configuration": cfg,
                "role_arn": a.service_account_role_arn(),
                "tags": t,
                "arn": a.addon_arn(),
            })),
            depends_on: deps,
            delete_cost: 2,
        };
        Ok(Some((o, version)))
    }

    /// What EKS offers for Kubernetes `version` (`DescribeAddonVersions`, every page).
    pub async fn catalogue(&self, version: &str) -> Result<Catalogue, Error> {
        let addons = retry(&self.reads, || async {
            let mut out: Vec<(String, Vec<AddonVersion>)> = Vec::new();
            let mut token = None;
            loop {
                let r = self
                    .calls
                    .read(|| {
                        self.eks
                            .describe_addon_versions()
                            .kubernetes_version(version)
                            .set_next_token(token.clone())
                            .send()
                    })
                    .await
                    .map_err(|e| step_error(format!("DescribeAddonVersions {version}"), e))?;
                for a in r.addons() {
                    let versions = a
                        .addon_versions()
                        .iter()
                        .map(|v| AddonVersion {
                            version: v.addon_version().unwrap_or_default().to_string(),
                            clusters: v
                                .compatibilities()
                                .iter()
                                .filter_map(|c| c.cluster_version().map(String::from))
                                .collect(),
                            default_for: v
                                .compatibilities()
                                .iter()
                                .filter(|c| c.default_version())
                                .filter_map(|c| c.cluster_version().map(String::from))
                                .collect(),
                        })
                        .collect();
                    out.push((a.addon_name().unwrap_or_default().to_string(), versions));
                }
                token = r.next_token().map(String::from);
                if token.is_none() {
                    break;
                }
            }
            Ok(out)
        })
        .await?;
        Ok(Catalogue::new(version, addons))
    }

    /// Diffs, and refuses a plan that would replace the control plane. Settings EKS takes only at creation
    /// ([`CREATE_ONLY`]) never make an update.
    pub fn diff(&self, desired: &[Desired], found: &Found) -> Result<Plan, Error> {
        let mut plan = plan::diff(desired, &found.observed);
        for s in plan.steps.iter_mut().filter(|s| s.action == Action::Update) {
            s.changes.retain(|c| !CREATE_ONLY.contains(&c.field.as_str()));
            if s.changes.is_empty() {
                s.action = Action::NoOp;
                s.reasons.clear();
            }
        }
        if let Some(s) = plan.steps.iter().find(|s| s.kind == "eks-cluster" && s.action == Action::Replace) {
            let fields = s.changes.iter().filter(|c| c.forces_replacement).map(|c| c.field.clone()).collect();
            return Err(Error::ClusterReplacement { fields });
        }
        Ok(plan)
    }

    /// The upgrade from the discovered state to `to`: every step's preflight, and the plan (control plane,
    /// then addons, then nodegroups, per minor version). Fails with [`Error::Preflight`] when a step is
    /// blocked, before anything changes. `pinned` are the addon versions the spec fixes.
    pub async fn upgrade_plan(
        &self,
        found: &Found,
        to: &str,
        pinned: &BTreeMap<String, String>,
        subnet_free: BTreeMap<String, u32>,
        deprecated_apis: Option<Vec<upgrade::DeprecatedApi>>,
    ) -> Result<(Vec<Preflight>, Plan), Error> {
        let Some(c) = found.cluster.as_ref().filter(|c| c.owned) else {
            return Err(Error::NotReady {
                what: format!("environment {}", self.name),
                message: "it owns no cluster to upgrade (run up first)".into(),
            });
        };
        let versions = upgrade::steps(&c.version, to).map_err(|m| Error::Spec { field: "--to".into(), message: m })?;
        let mut desired = Vec::new();
        let mut observed = Vec::new();
        let step = |key: String, target: Value, current: Value, deps: Vec<String>, pid: &str| {
            (
                Desired {
                    key: key.clone(),
                    kind: "eks-version".into(),
                    props: props(json!({"version": target})),
                    immutable: vec![],
                    depends_on: deps,
                    cost: Cost::new(0, 2, 0),
                },
                Observed {
                    key,
                    kind: "eks-version".into(),
                    physical_id: pid.to_string(),
                    props: props(json!({"version": current})),
                    depends_on: vec![],
                    delete_cost: 0,
                },
            )
        };
        // catch up at the current version first: nodegroups behind the control plane, addons not at what the
        // version wants (an upgrade interrupted after its control-plane step)
        let mut state = ClusterState {
            version: c.version.clone(),
            status: c.status.clone(),
            nodegroups: found.nodegroups.iter().map(|(n, (v, _))| (n.clone(), v.clone())).collect(),
            addons: found.addons.clone(),
            subnet_free,
            deprecated_apis,
        };
        let mut prev: Vec<String> = Vec::new();
        let mut preflights = Vec::new();
        let push_parts = |ver: &str,
                          cat: &Catalogue,
                          state: &mut ClusterState,
                          prev: &mut Vec<String>,
                          with_cp: bool,
                          desired: &mut Vec<Desired>,
                          observed: &mut Vec<Observed>|
         -> Result<(), Error> {
            let mut cp = prev.clone();
            if with_cp {
                let key = format!("upgrade/{ver}/cluster");
                let (d, o) = step(key.clone(), json!(ver), json!(state.version), prev.clone(), &self.name);
                desired.push(d);
                observed.push(o);
                cp = vec![key];
                state.version = ver.to_string();
            }
            let mut addon_keys = Vec::new();
            for (name, current) in state.addons.clone() {
                let want = match pinned.get(&name) {
                    Some(v) => v.clone(),
                    None => cat
                        .resolve(&name, None)
                        .map_err(|m| Error::Spec { field: format!("addon {name}"), message: m })?,
                };
                if want == current {
                    continue;
                }
                let key = format!("upgrade/{ver}/addon/{name}");
                let (d, o) = step(key.clone(), json!(want), json!(current), cp.clone(), &name);
                desired.push(d);
                observed.push(o);
                addon_keys.push(key);
                state.addons.insert(name, want);
            }
            let ng_deps: Vec<String> = cp.iter().chain(addon_keys.iter()).cloned().collect();
            let mut ng_keys = Vec::new();
            for (name, current) in state.nodegroups.clone() {
                if current == ver {
                    continue;
                }
                let key = format!("upgrade/{ver}/nodegroup/{name}");
                let (d, o) = step(key.clone(), json!(ver), json!(current), ng_deps.clone(), &name);
                desired.push(d);
                observed.push(o);
                ng_keys.push(key);
                state.nodegroups.insert(name, ver.to_string());
            }
            let mut next: Vec<String> = ng_deps;
            next.extend(ng_keys);
            if !next.is_empty() {
                *prev = next;
            }
            Ok(())
        };
        let current_cat = self.catalogue(&c.version).await?;
        push_parts(&c.version.clone(), &current_cat, &mut state, &mut prev, false, &mut desired, &mut observed)?;
        for v in &versions {
            let cat = self.catalogue(v).await?;
            let pf = upgrade::preflight(&state, v, &cat, pinned);
            let blockers = pf.blockers();
            preflights.push(pf);
            if !blockers.is_empty() {
                return Err(Error::Preflight { target: v.clone(), blockers });
            }
            push_parts(v, &cat, &mut state, &mut prev, true, &mut desired, &mut observed)?;
            state.status = "ACTIVE".into();
        }
        let plan = plan::diff(&desired, &observed);
        plan.critical_path_calls()?;
        Ok((preflights, plan))
    }

    fn wait_timeout(&self, ctx: &OpContext, kind: &str) -> Duration {
        // control planes take 10-15 minutes to create and update; give them twice the default
        if kind == "eks-cluster" || kind == "eks-version" {
            ctx.waits.timeout * 2
        } else {
            ctx.waits.timeout
        }
    }

    async fn wait_cluster(&self, ctx: &OpContext, what: &str, version: Option<&str>) -> Result<(), StepError> {
        ctx.wait_until(what, self.wait_timeout(ctx, "eks-cluster"), || async {
            let Some(c) = self.describe_cluster().await? else {
                return Ok(WaitState::Failed(format!("cluster {} disappeared", self.name)));
            };
            let status = c.status().map(|s| s.as_str().to_string()).unwrap_or_default();
            Ok(match status.as_str() {
                "ACTIVE" if version.is_none_or(|v| c.version() == Some(v)) => WaitState::Ready(()),
                "FAILED" => WaitState::Failed(format!(
                    "cluster {} FAILED: {}",
                    self.name,
                    health(
                        c.health()
                            .map(|h| h.issues())
                            .unwrap_or_default()
                            .iter()
                            .map(|i| (i.code().map(|c| c.as_str()), i.message()))
                    )
                )),
                other => WaitState::Pending(format!("cluster {other}")),
            })
        })
        .await
    }

    async fn wait_cluster_gone(&self, ctx: &OpContext) -> Result<(), StepError> {
        ctx.wait_until("cluster deletion", self.wait_timeout(ctx, "eks-cluster"), || async {
            Ok(match self.describe_cluster().await? {
                None => WaitState::Ready(()),
                Some(c) => WaitState::Pending(format!(
                    "cluster {}",
                    c.status().map(|s| s.as_str().to_string()).unwrap_or_default()
                )),
            })
        })
        .await
    }

    async fn describe_nodegroup(&self, ng: &str) -> Result<Option<aws_sdk_eks::types::Nodegroup>, StepError> {
        match self.calls.read(|| self.eks.describe_nodegroup().cluster_name(&self.name).nodegroup_name(ng).send()).await
        {
            Ok(r) => Ok(r.nodegroup().cloned()),
            Err(e) if is_not_found(error_code(&e)) => Ok(None),
            Err(e) => Err(step_error(format!("DescribeNodegroup {ng}"), e)),
        }
    }

    async fn wait_nodegroup(
        &self,
        ctx: &OpContext,
        ng: &str,
        version: Option<&str>,
        gone: bool,
    ) -> Result<(), StepError> {
        let what = format!("nodegroup {ng}");
        self.wait_member(
            ctx,
            &what,
            "eks-nodegroup",
            version,
            gone,
            &["CREATE_FAILED", "DELETE_FAILED", "DEGRADED"],
            || async {
                Ok(self.describe_nodegroup(ng).await?.map(|n| Member {
                    status: n.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
                    version: n.version().map(String::from),
                    health: health(
                        n.health()
                            .map(|h| h.issues())
                            .unwrap_or_default()
                            .iter()
                            .map(|i| (i.code().map(|c| c.as_str()), i.message())),
                    ),
                }))
            },
        )
        .await
    }

    /// Polls a nodegroup or addon until it is ACTIVE (at `version`, when given), gone (`gone`), or in a failed
    /// status (then with EKS's health issues).
    #[allow(clippy::too_many_arguments)]
    async fn wait_member<F, Fut>(
        &self,
        ctx: &OpContext,
        what: &str,
        kind: &str,
        version: Option<&str>,
        gone: bool,
        failed: &[&str],
        fetch: F,
    ) -> Result<(), StepError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Option<Member>, StepError>>,
    {
        ctx.wait_until(what, self.wait_timeout(ctx, kind), || async {
            let Some(m) = fetch().await? else {
                return Ok(if gone { WaitState::Ready(()) } else { WaitState::Failed(format!("{what} disappeared")) });
            };
            if gone {
                return Ok(WaitState::Pending(format!("{what} {}", m.status)));
            }
            Ok(if m.status == "ACTIVE" && version.is_none_or(|v| m.version.as_deref() == Some(v)) {
                WaitState::Ready(())
            } else if failed.contains(&m.status.as_str()) {
                WaitState::Failed(format!("{what} {}: {}", m.status, m.health))
            } else {
                WaitState::Pending(format!("{what} {}", m.status))
            })
        })
        .await
    }

    async fn describe_addon(&self, name: &str) -> Result<Option<aws_sdk_eks::types::Addon>, StepError> {
        match self.calls.read(|| self.eks.describe_addon().cluster_name(&self.name).addon_name(name).send()).await {
            Ok(r) => Ok(r.addon().cloned()),
            Err(e) if is_not_found(error_code(&e)) => Ok(None),
            Err(e) => Err(step_error(format!("DescribeAddon {name}"), e)),
        }
    }

    async fn wait_addon(
        &self,
        ctx: &OpContext,
        name: &str,
        version: Option<&str>,
        gone: bool,
    ) -> Result<(), StepError> {
        let what = format!("addon {name}");
        let failed = ["CREATE_FAILED", "UPDATE_FAILED", "DELETE_FAILED", "DEGRADED"];
        self.wait_member(ctx, &what, "eks-addon", version, gone, &failed, || async {
            Ok(self.describe_addon(name).await?.map(|a| Member {
                status: a.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
                version: a.addon_version().map(String::from),
                health: health(
                    a.health()
                        .map(|h| h.issues())
                        .unwrap_or_default()
                        .iter()
                        .map(|i| (i.code().map(|c| c.as_str()), i.message())),
                ),
            }))
        })
        .await
    }

    /// Waits for an update EKS returned (`DescribeUpdate`), for the cluster or one nodegroup/addon.
    async fn wait_update(
        &self,
        ctx: &OpContext,
        id: &str,
        nodegroup: Option<&str>,
        addon: Option<&str>,
    ) -> Result<(), StepError> {
        ctx.wait_until(&format!("update {id}"), self.wait_timeout(ctx, "eks-cluster"), || async {
            let r = self
                .calls
                .read(|| {
                    self.eks
                        .describe_update()
                        .name(&self.name)
                        .update_id(id)
                        .set_nodegroup_name(nodegroup.map(String::from))
                        .set_addon_name(addon.map(String::from))
                        .send()
                })
                .await
                .map_err(|e| step_error(format!("DescribeUpdate {id}"), e))?;
            let Some(u) = r.update() else { return Ok(WaitState::Failed(format!("update {id} not found"))) };
            let status = u.status().map(|s| s.as_str().to_string()).unwrap_or_default();
            Ok(match status.as_str() {
                "Successful" => WaitState::Ready(()),
                "Failed" | "Cancelled" => WaitState::Failed(format!(
                    "update {id} {status}: {}",
                    u.errors().iter().filter_map(|e| e.error_message()).collect::<Vec<_>>().join("; ")
                )),
                other => WaitState::Pending(format!("update {other}")),
            })
        })
        .await
    }

    fn resolve(&self, ctx: &OpContext, v: &str) -> Result<String, StepError> {
        if is_physical(v) {
            Ok(v.to_string())
        } else {
            ctx.physical_id(v)
        }
    }

    async fn create_cluster(&self, op: &Operation, ctx: &OpContext) -> Result<Option<String>, StepError> {
        let s = &op.step;
        let w = s.desired.clone().unwrap_or_default();
        if ctx.attempt > 1 && self.adopt_cluster(ctx).await? {
            return Ok(Some(self.name.clone()));
        }
        let subnets = strings(&w, "subnets").iter().map(|k| self.resolve(ctx, k)).collect::<Result<Vec<_>, _>>()?;
        let sgs = strings(&w, "security_groups").iter().map(|k| self.resolve(ctx, k)).collect::<Result<Vec<_>, _>>()?;
        let public = w.get("endpoint_public").and_then(Value::as_bool).unwrap_or(true);
        let mut vpc = VpcConfigRequest::builder()
            .set_subnet_ids(Some(subnets))
            .set_security_group_ids(Some(sgs))
            .endpoint_public_access(public)
            .endpoint_private_access(w.get("endpoint_private").and_then(Value::as_bool).unwrap_or(false));
        if public {
            vpc = vpc.set_public_access_cidrs(Some(strings(&w, "public_cidrs")));
        }
        let logs = strings(&w, "logging");
        let mut req = self
            .eks
            .create_cluster()
            .name(&self.name)
            .version(text(&w, "version").unwrap_or_default())
            .role_arn(text(&w, "role_arn").unwrap_or_default())
            .resources_vpc_config(vpc.build())
            .set_tags(Some(self.owner_tags(&s.key)))
            .client_request_token(ctx.client_token(s));
        if !logs.is_empty() {
            req = req.logging(
                Logging::builder()
                    .cluster_logging(
                        LogSetup::builder()
                            .set_types(Some(logs.iter().map(|l| LogType::from(l.as_str())).collect()))
                            .enabled(true)
                            .build(),
                    )
                    .build(),
            );
        }
        if let Some(k) = text(&w, "encryption_key") {
            let k = if k == crate::kms::KEY { ctx.physical_id(&k)? } else { k };
            req = req.encryption_config(secrets_encryption(k));
        }
        if let Some(cidr) = text(&w, "service_cidr") {
            req = req
                .kubernetes_network_config(KubernetesNetworkConfigRequest::builder().service_ipv4_cidr(cidr).build());
        }
        if let Some(mode) = text(&w, "authentication_mode") {
            req = req.access_config(
                CreateAccessConfigRequest::builder()
                    .authentication_mode(EksMode::from(mode.as_str()))
                    .bootstrap_cluster_creator_admin_permissions(
                        w.get("bootstrap_admin").and_then(Value::as_bool).unwrap_or(true),
                    )
                    .build(),
            );
        }
        if let Some(t) = text(&w, "support_type") {
            req =
                req.upgrade_policy(UpgradePolicyRequest::builder().support_type(SupportType::from(t.as_str())).build());
        }
        match self.calls.read(|| req.clone().send()).await {
            Ok(_) => {}
            Err(e) if error_code(&e) == Some("ResourceInUseException") => {
                // made by an attempt whose answer was lost, or by someone else
                if self.adopt_cluster(ctx).await? {
                    return Ok(Some(self.name.clone()));
                }
            }
            Err(e) => return Err(step_error(format!("CreateCluster {}", self.name), e)),
        }
        self.wait_cluster(ctx, "cluster creation", None).await?;
        Ok(Some(self.name.clone()))
    }

    /// A retried create first looks for what an earlier attempt made: `true` when the cluster exists, is
    /// ours, and is now ACTIVE; an error when it exists and is not ours.
    async fn adopt_cluster(&self, ctx: &OpContext) -> Result<bool, StepError> {
        let Some(c) = self.describe_cluster().await? else { return Ok(false) };
        if !tags::is_owned(&tag_map(c.tags()), &self.env, COMPONENT) {
            return Err(StepError::permanent(format!(
                "an EKS cluster named {} exists and is not owned by environment {}",
                self.name, self.env
            )));
        }
        self.wait_cluster(ctx, "cluster creation", None).await?;
        Ok(true)
    }

    async fn update_cluster(&self, op: &Operation, ctx: &OpContext) -> Result<Option<String>, StepError> {
        let s = &op.step;
        let w = s.desired.clone().unwrap_or_default();
        let changed = |f: &str| s.changes.iter().any(|c| c.field == f);
        if changed("endpoint_public") || changed("endpoint_private") || changed("public_cidrs") {
            let public = w.get("endpoint_public").and_then(Value::as_bool).unwrap_or(true);
            let mut vpc = VpcConfigRequest::builder()
                .endpoint_public_access(public)
                .endpoint_private_access(w.get("endpoint_private").and_then(Value::as_bool).unwrap_or(false));
            if public {
                vpc = vpc.set_public_access_cidrs(Some(strings(&w, "public_cidrs")));
            }
            let r = self
                .calls
                .read(|| {
                    self.eks
                        .update_cluster_config()
                        .name(&self.name)
                        .resources_vpc_config(vpc.clone().build())
                        .client_request_token(format!("{}-endpoint", &ctx.client_token(s)[..40]))
                        .send()
                })
                .await
                .map_err(|e| busy(format!("UpdateClusterConfig endpoint {}", self.name), e))?;
            if let Some(id) = r.update().and_then(|u| u.id()) {
                self.wait_update(ctx, id, None, None).await?;
            }
        }
        if changed("logging") {
            let want = strings(&w, "logging");
            let off: Vec<String> =
                eksodus_core::spec::LOG_TYPES.iter().map(|s| s.to_string()).filter(|t| !want.contains(t)).collect();
            let mut setups = Vec::new();
            if !want.is_empty() {
                setups.push(
                    LogSetup::builder()
                        .set_types(Some(want.iter().map(|l| LogType::from(l.as_str())).collect()))
                        .enabled(true)
                        .build(),
                );
            }
            if !off.is_empty() {
                setups.push(
                    LogSetup::builder()
                        .set_types(Some(off.iter().map(|l| LogType::from(l.as_str())).collect()))
                        .enabled(false)
                        .build(),
                );
            }
            let r = self
                .calls
                .read(|| {
                    self.eks
                        .update_cluster_config()
                        .name(&self.name)
                        .logging(Logging::builder().set_cluster_logging(Some(setups.clone())).build())
                        .client_request_token(format!("{}-logging", &ctx.client_token(s)[..40]))
                        .send()
                })
                .await
                .map_err(|e| busy(format!("UpdateClusterConfig logging {}", self.name), e))?;
            if let Some(id) = r.update().and_then(|u| u.id()) {
                self.wait_update(ctx, id, None, None).await?;
            }
        }
        if changed("tags") {
            let arn = match self.describe_cluster().await? {
                Some(c) => c.arn().unwrap_or_default().to_string(),
                None => return Err(StepError::permanent(format!("cluster {} is gone", self.name))),
            };
            self.tag(&arn, &s.key).await?;
        }
        if changed("version") {
            return Err(StepError::permanent(format!(
                "cluster {}: the version changes only through an upgrade (one minor at a time, with preflight)",
                self.name
            )));
        }
        Ok(Some(self.name.clone()))
    }

    async fn tag(&self, arn: &str, key: &str) -> Result<(), StepError> {
        self.calls
            .read(|| self.eks.tag_resource().resource_arn(arn).set_tags(Some(self.owner_tags(key))).send())
            .await
            .map_err(|e| step_error(format!("TagResource {arn}"), e))?;
        Ok(())
    }

    async fn delete_cluster(&self, ctx: &OpContext) -> Result<Option<String>, StepError> {
        match self.calls.read(|| self.eks.delete_cluster().name(&self.name).send()).await {
            Ok(_) => {}
            Err(e) if is_not_found(error_code(&e)) => return Ok(Some(self.name.clone())),
            Err(e) => return Err(busy(format!("DeleteCluster {}", self.name), e)),
        }
        self.wait_cluster_gone(ctx).await?;
        Ok(Some(self.name.clone()))
    }

    async fn create_nodegroup(&self, op: &Operation, ctx: &OpContext) -> Result<Option<String>, StepError> {
        let s = &op.step;
        let w: NodegroupProps =
            from_props(&s.key, &s.desired.clone().unwrap_or_default()).map_err(StepError::permanent)?;
        let name = w.name.clone();
        if ctx.attempt > 1 && self.adopt_nodegroup(ctx, &name).await? {
            return Ok(Some(name));
        }
        let subnets = w.subnets.iter().map(|k| self.resolve(ctx, k)).collect::<Result<Vec<_>, _>>()?;
        let labels: HashMap<String, String> = w.labels.clone().into_iter().collect();
        let mut tags = self.owner_tags(&s.key);
        // the nodegroup's own tags over the environment's (ownership tags stay eksodus's)
        for (k, v) in &w.tags {
            tags.entry(k.clone()).or_insert_with(|| v.clone());
        }
        if let Some(m) = w.max_pods {
            tags.insert("eksodus.io/max-pods".into(), m.to_string());
        }
        let remote_access = w.remote_access.as_ref().map(|r| {
            RemoteAccessConfig::builder()
                .ec2_ssh_key(&r.key_name)
                .set_source_security_groups(Some(r.source_security_groups.clone()))
                .build()
        });
        let taints = sdk_taints(&w.taints);
        let r = self
            .calls
            .create(|| {
                self.eks
                    .create_nodegroup()
                    .cluster_name(&self.name)
                    .nodegroup_name(&name)
                    .version(&w.version)
                    .scaling_config(scaling_config(&w.scaling))
                    .disk_size(w.disk_size as i32)
                    .set_subnets(Some(subnets.clone()))
                    .set_instance_types(Some(w.instance_types.clone()))
                    .ami_type(AmiTypes::from(w.ami_type.as_str()))
                    .capacity_type(CapacityTypes::from(w.capacity_type.as_str()))
                    .node_role(&w.node_role_arn)
                    .set_labels((!labels.is_empty()).then_some(labels.clone()))
                    .set_taints(Some(taints.clone()).filter(|t| !t.is_empty()))
                    .update_config(NodegroupUpdateConfig::builder().max_unavailable(w.max_unavailable as i32).build())
                    .set_tags(Some(tags.clone()))
                    .set_remote_access(remote_access.clone())
                    .client_request_token(ctx.client_token(s))
                    .send()
            })
            .await;
        match r {
            Ok(_) => {}
            Err(e) if error_code(&e) == Some("ResourceInUseException") => {
                if self.adopt_nodegroup(ctx, &name).await? {
                    return Ok(Some(name));
                }
            }
            Err(e) => return Err(step_error(format!("CreateNodegroup {name}"), e)),
        }
        self.wait_nodegroup(ctx, &name, None, false).await?;
        Ok(Some(name))
    }

    async fn adopt_nodegroup(&self, ctx: &OpContext, name: &str) -> Result<bool, StepError> {
        let Some(n) = self.describe_nodegroup(name).await? else { return Ok(false) };
        if !tags::is_owned(&tag_map(n.tags()), &self.env, COMPONENT) {
            return Err(StepError::permanent(format!(
                "nodegroup {name} exists in cluster {} and is not owned by environment {}",
                self.name, self.env
            )));
        }
        self.wait_nodegroup(ctx, name, None, false).await?;
        Ok(true)
    }

    async fn update_nodegroup(&self, op: &Operation, ctx: &OpContext) -> Result<Option<String>, StepError> {
        let s = &op.step;
        let w: NodegroupProps =
            from_props(&s.key, &s.desired.clone().unwrap_or_default()).map_err(StepError::permanent)?;
        // what EKS reported: read as found (fields EKS leaves out are empty)
        let have = s.observed.clone().unwrap_or_default();
        let name = s.physical_id.clone().unwrap_or_default();
        let changed = |f: &str| s.changes.iter().any(|c| c.field == f);
        if changed("version") {
            self.nodegroup_version(ctx, &name, &w.version, &ctx.client_token(s)).await?;
        }
        if changed("scaling") || changed("labels") || changed("taints") || changed("max_unavailable") {
            let mut req = self
                .eks
                .update_nodegroup_config()
                .cluster_name(&self.name)
                .nodegroup_name(&name)
                .client_request_token(format!("{}-config", &ctx.client_token(s)[..40]));
            if changed("scaling") {
                req = req.scaling_config(scaling_config(&w.scaling));
            }
            if changed("labels") {
                let had: BTreeMap<String, String> = have
                    .get("labels")
                    .and_then(Value::as_object)
                    .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
                    .unwrap_or_default();
                let want = &w.labels;
                let add: HashMap<String, String> =
                    want.iter().filter(|(k, v)| had.get(*k) != Some(v)).map(|(k, v)| (k.clone(), v.clone())).collect();
                let remove: Vec<String> = had.keys().filter(|k| !want.contains_key(*k)).cloned().collect();
                req = req.labels(
                    UpdateLabelsPayload::builder()
                        .set_add_or_update_labels((!add.is_empty()).then_some(add))
                        .set_remove_labels((!remove.is_empty()).then_some(remove))
                        .build(),
                );
            }
            if changed("taints") {
                let had: Vec<TaintProps> =
                    have.get("taints").cloned().and_then(|t| serde_json::from_value(t).ok()).unwrap_or_default();
                let add: Vec<TaintProps> = w.taints.iter().filter(|t| !had.contains(t)).cloned().collect();
                let remove: Vec<TaintProps> = had.iter().filter(|t| !w.taints.contains(t)).cloned().collect();
                req = req.taints(
                    UpdateTaintsPayload::builder()
                        .set_add_or_update_taints(Some(sdk_taints(&add)).filter(|t| !t.is_empty()))
                        .set_remove_taints(Some(sdk_taints(&remove)).filter(|t| !t.is_empty()))
                        .build(),
                );
            }
            if changed("max_unavailable") {
                req = req
                    .update_config(NodegroupUpdateConfig::builder().max_unavailable(w.max_unavailable as i32).build());
            }
            let r = self
                .calls
                .read(|| req.clone().send())
                .await
                .map_err(|e| busy(format!("UpdateNodegroupConfig {name}"), e))?;
            match r.update().and_then(|u| u.id()) {
                Some(id) => self.wait_update(ctx, id, Some(&name), None).await?,
                None => self.wait_nodegroup(ctx, &name, None, false).await?,
            }
        }
        if changed("tags") {
            if let Some(arn) = have.get("arn").and_then(Value::as_str) {
                let mut t = self.owner_tags(&s.key);
                t.extend(w.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
                self.calls
                    .read(|| self.eks.tag_resource().resource_arn(arn).set_tags(Some(t.clone())).send())
                    .await
                    .map_err(|e| step_error(format!("TagResource {arn}"), e))?;
            }
        }
        Ok(Some(name))
    }

    async fn nodegroup_version(
        &self,
        ctx: &OpContext,
        name: &str,
        version: &str,
        token: &str,
    ) -> Result<(), StepError> {
        let Some(n) = self.describe_nodegroup(name).await? else {
            return Err(StepError::permanent(format!("nodegroup {name} does not exist")));
        };
        let status = n.status().map(|s| s.as_str().to_string()).unwrap_or_default();
        if n.version() == Some(version) && status == "ACTIVE" {
            return Ok(());
        }
        if n.version() != Some(version) && status == "ACTIVE" {
            self.calls
                .read(|| {
                    self.eks
                        .update_nodegroup_version()
                        .cluster_name(&self.name)
                        .nodegroup_name(name)
                        .version(version)
                        .client_request_token(token)
                        .send()
                })
                .await
                .map_err(|e| busy(format!("UpdateNodegroupVersion {name} to {version}"), e))?;
        }
        self.wait_nodegroup(ctx, name, Some(version), false).await
    }

    async fn delete_nodegroup(&self, op: &Operation, ctx: &OpContext) -> Result<Option<String>, StepError> {
        let name = op.step.physical_id.clone().unwrap_or_default();
        match self
            .calls
            .read(|| self.eks.delete_nodegroup().cluster_name(&self.name).nodegroup_name(&name).send())
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(error_code(&e)) => return Ok(Some(name)),
            Err(e) => return Err(busy(format!("DeleteNodegroup {name}"), e)),
        }
        self.wait_nodegroup(ctx, &name, None, true).await?;
        Ok(Some(name))
    }

    async fn create_addon(&self, op: &Operation, ctx: &OpContext) -> Result<Option<String>, StepError> {
        let s = &op.step;
        let w: AddonProps = from_props(&s.key, &s.desired.clone().unwrap_or_default()).map_err(StepError::permanent)?;
        let name = w.name.clone();
        if ctx.attempt > 1 && self.adopt_addon(ctx, &name).await? {
            return Ok(Some(name));
        }
        let r = self
            .calls
            .create(|| {
                self.eks
                    .create_addon()
                    .cluster_name(&self.name)
                    .addon_name(&name)
                    .addon_version(&w.version)
                    .set_service_account_role_arn(w.role_arn.clone())
                    .set_configuration_values(w.configuration.clone())
                    .resolve_conflicts(ResolveConflicts::from(w.resolve_conflicts.as_str()))
                    .set_tags(Some(self.owner_tags(&s.key)))
                    .client_request_token(ctx.client_token(s))
                    .send()
            })
            .await;
        match r {
            Ok(_) => {}
            Err(e) if error_code(&e) == Some("ResourceInUseException") => {
                if self.adopt_addon(ctx, &name).await? {
                    return Ok(Some(name));
                }
            }
            Err(e) => return Err(step_error(format!("CreateAddon {name}"), e)),
        }
        self.wait_addon(ctx, &name, None, false).await?;
        Ok(Some(name))
    }

    async fn adopt_addon(&self, ctx: &OpContext, name: &str) -> Result<bool, StepError> {
        let Some(a) = self.describe_addon(name).await? else { return Ok(false) };
        if !tags::is_owned(&tag_map(a.tags()), &self.env, COMPONENT) {
            return Err(StepError::permanent(format!(
                "addon {name} is installed in cluster {} and not owned by environment {}; remove it or leave it out of the spec",
                self.name, self.env
            )));
        }
        self.wait_addon(ctx, name, None, false).await?;
        Ok(true)
    }

    async fn addon_update(
        &self,
        ctx: &OpContext,
        name: &str,
        w: &Map<String, Value>,
        token: &str,
    ) -> Result<(), StepError> {
        let version = text(w, "version");
        if let Some(a) = self.describe_addon(name).await? {
            let status = a.status().map(|s| s.as_str().to_string()).unwrap_or_default();
            let same_version = version.is_none() || a.addon_version() == version.as_deref();
            let only_version = !w.contains_key("configuration") && !w.contains_key("role_arn");
            if same_version && only_version && status == "ACTIVE" {
                return Ok(()); // an upgrade step already done
            }
        }
        let mut req = self
            .eks
            .update_addon()
            .cluster_name(&self.name)
            .addon_name(name)
            .set_addon_version(version.clone())
            .resolve_conflicts(ResolveConflicts::from(
                text(w, "resolve_conflicts").unwrap_or_else(|| "OVERWRITE".into()).as_str(),
            ))
            .client_request_token(token);
        if w.contains_key("configuration") {
            // an empty string clears configuration values
            req = req.configuration_values(text(w, "configuration").unwrap_or_default());
        }
        if w.contains_key("role_arn") {
            req = req.service_account_role_arn(text(w, "role_arn").unwrap_or_default());
        }
        let r = self.calls.read(|| req.clone().send()).await.map_err(|e| busy(format!("UpdateAddon {name}"), e))?;
        if let Some(id) = r.update().and_then(|u| u.id()) {
            self.wait_update(ctx, id, None, Some(name)).await?;
        }
        self.wait_addon(ctx, name, version.as_deref(), false).await
    }

    async fn delete_addon(&self, op: &Operation, ctx: &OpContext) -> Result<Option<String>, StepError> {
        let name = op.step.physical_id.clone().unwrap_or_default();
        match self.calls.read(|| self.eks.delete_addon().cluster_name(&self.name).addon_name(&name).send()).await {
            Ok(_) => {}
            Err(e) if is_not_found(error_code(&e)) => return Ok(Some(name)),
            Err(e) => return Err(busy(format!("DeleteAddon {name}"), e)),
        }
        self.wait_addon(ctx, &name, None, true).await?;
        Ok(Some(name))
    }

    async fn version_step(&self, op: &Operation, ctx: &OpContext) -> Result<Option<String>, StepError> {
        let s = &op.step;
        let target = s.desired.as_ref().and_then(|d| text(d, "version")).unwrap_or_default();
        let pid = s.physical_id.clone().unwrap_or_default();
        let token = ctx.client_token(s);
        let parts: Vec<&str> = s.key.split('/').collect();
        match parts.get(2).copied() {
            Some("cluster") => {
                let Some(c) = self.describe_cluster().await? else {
                    return Err(StepError::permanent(format!("cluster {} does not exist", self.name)));
                };
                let status = c.status().map(|s| s.as_str().to_string()).unwrap_or_default();
                let at = c.version().unwrap_or_default().to_string();
                if at == target && status == "ACTIVE" {
                    return Ok(Some(pid));
                }
                if at != target && status == "ACTIVE" {
                    self.calls
                        .read(|| {
                            self.eks
                                .update_cluster_version()
                                .name(&self.name)
                                .version(&target)
                                .client_request_token(token.clone())
                                .send()
                        })
                        .await
                        .map_err(|e| busy(format!("UpdateClusterVersion {} to {target}", self.name), e))?;
                }
                self.wait_cluster(ctx, &format!("control plane at {target}"), Some(&target)).await?;
            }
            Some("addon") => {
                let mut w = Map::new();
                w.insert("version".into(), json!(target));
                self.addon_update(ctx, &pid, &w, &token).await?;
            }
            Some("nodegroup") => self.nodegroup_version(ctx, &pid, &target, &token).await?,
            _ => return Err(StepError::permanent(format!("unknown upgrade step {}", s.key))),
        }
        Ok(Some(pid))
    }
}

/// Envelope encryption of secrets with a KMS key. `resources` is deprecated in the SDK model (EKS now encrypts
/// all API data), but clusters on older platform versions still read it; `secrets` is the only value.
#[allow(deprecated)]
fn secrets_encryption(key_arn: String) -> EncryptionConfig {
    EncryptionConfig::builder().resources("secrets").provider(Provider::builder().key_arn(key_arn).build()).build()
}

/// A nodegroup as DescribeNodegroup reports it, in the shape of [`NodegroupProps`] (plus its ARN), with its
/// version and status. `key_of` maps subnet IDs to the network component's keys.
fn observed_nodegroup(
    env: &str,
    n: &aws_sdk_eks::types::Nodegroup,
    key: String,
    key_of: &(dyn Fn(&str) -> String + Sync),
) -> (Observed, String, String) {
    let name = n.nodegroup_name().unwrap_or_default();
    let t = tag_map(n.tags());
    let mut types = n.instance_types().to_vec();
    types.sort();
    let mut subnets: Vec<String> = n.subnets().iter().map(|s| key_of(s)).collect();
    subnets.sort();
    let mut taints: Vec<TaintProps> = n
        .taints()
        .iter()
        .map(|t| TaintProps {
            key: t.key().unwrap_or_default().into(),
            value: t.value().unwrap_or_default().into(),
            effect: t.effect().map(|e| e.as_str()).unwrap_or_default().into(),
        })
        .collect();
    taints.sort();
    let labels: BTreeMap<String, String> =
        n.labels().map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
    let sc = n.scaling_config();
    let version = n.version().unwrap_or_default().to_string();
    let status = n.status().map(|s| s.as_str().to_string()).unwrap_or_default();
    // the role it sits on: its own (a nodegroup with extra policies) or the environment's
    let own_role = eksodus_access::iam::role_name(env, &format!("node-{name}"));
    let role_key = if n.node_role().is_some_and(|r| r.ends_with(&format!("/{own_role}"))) {
        eksodus_access::iam::nodegroup_role_key(name)
    } else {
        "role/node".to_string()
    };
    let mut deps = vec![CLUSTER_KEY.to_string(), role_key];
    deps.extend(subnets.iter().filter(|s| !is_physical(s)).cloned());
    let o = Observed {
        key,
        kind: "eks-nodegroup".into(),
        physical_id: name.to_string(),
        props: props(json!({
            "name": name,
            "version": version,
            "instance_types": types,
            "capacity_type": n.capacity_type().map(|c| c.as_str()),
            "ami_type": n.ami_type().map(|a| a.as_str()),
            "disk_size": n.disk_size(),
            "subnets": subnets,
            "node_role_arn": n.node_role(),
            "scaling": {"min": sc.and_then(|s| s.min_size()), "max": sc.and_then(|s| s.max_size()), "desired": sc.and_then(|s| s.desired_size())},
            "labels": labels,
            "taints": taints,
            "max_unavailable": n.update_config().and_then(|u| u.max_unavailable()).unwrap_or(1),
            "tags": t,
            "remote_access": n.remote_access().and_then(|r| r.ec2_ssh_key()).map(|key| {
                let mut groups = n.remote_access().map(|r| r.source_security_groups().to_vec()).unwrap_or_default();
                groups.sort();
                json!({"key_name": key, "source_security_groups": groups})
            }),
            "arn": n.nodegroup_arn(),
        })),
        depends_on: deps,
        delete_cost: 2,
    };
    (o, version, status)
}

fn sdk_taints(t: &[TaintProps]) -> Vec<Taint> {
    t.iter()
        .map(|t| {
            Taint::builder()
                .key(&t.key)
                .set_value((!t.value.is_empty()).then(|| t.value.clone()))
                .effect(TaintEffect::from(t.effect.as_str()))
                .build()
        })
        .collect()
}

fn scaling_config(s: &Scaling) -> NodegroupScalingConfig {
    NodegroupScalingConfig::builder()
        .min_size(s.min as i32)
        .max_size(s.max as i32)
        .desired_size(s.desired as i32)
        .build()
}

impl Executor for Eks {
    fn execute<'a>(
        &'a self,
        op: &'a Operation,
        ctx: &'a OpContext,
    ) -> BoxFuture<'a, Result<Option<String>, StepError>> {
        Box::pin(async move {
            let s = &op.step;
            match (s.kind.as_str(), op.kind) {
                ("eks-cluster", OpKind::Create) => self.create_cluster(op, ctx).await,
                ("eks-cluster", OpKind::Update) => self.update_cluster(op, ctx).await,
                ("eks-cluster", OpKind::Delete) => self.delete_cluster(ctx).await,
                ("eks-nodegroup", OpKind::Create) => self.create_nodegroup(op, ctx).await,
                ("eks-nodegroup", OpKind::Update) => self.update_nodegroup(op, ctx).await,
                ("eks-nodegroup", OpKind::Delete) => self.delete_nodegroup(op, ctx).await,
                ("eks-addon", OpKind::Create) => self.create_addon(op, ctx).await,
                ("eks-addon", OpKind::Update) => {
                    let w: AddonProps =
                        from_props(&s.key, &s.desired.clone().unwrap_or_default()).map_err(StepError::permanent)?;
                    let name = s.physical_id.clone().unwrap_or_default();
                    let changed = |f: &str| s.changes.iter().any(|c| c.field == f);
                    // the update request: what changed (an absent field is left as it is)
                    let mut req = Map::new();
                    req.insert("version".into(), json!(w.version));
                    req.insert("resolve_conflicts".into(), json!(w.resolve_conflicts));
                    if changed("configuration") {
                        req.insert("configuration".into(), json!(w.configuration));
                    }
                    if changed("role_arn") {
                        req.insert("role_arn".into(), json!(w.role_arn));
                    }
                    if changed("version") || changed("configuration") || changed("role_arn") {
                        self.addon_update(ctx, &name, &req, &ctx.client_token(s)).await?;
                    }
                    if changed("tags") {
                        if let Some(arn) = s.observed.as_ref().and_then(|o| text(o, "arn")) {
                            self.tag(&arn, &s.key).await?;
                        }
                    }
                    Ok(Some(name))
                }
                ("eks-addon", OpKind::Delete) => self.delete_addon(op, ctx).await,
                ("eks-version", OpKind::Update) => self.version_step(op, ctx).await,
                ("eks-version", _) => Ok(None),
                (k, _) => Err(StepError::permanent(format!("{}: eks cannot handle kind {k}", s.id))),
            }
        })
    }
}
