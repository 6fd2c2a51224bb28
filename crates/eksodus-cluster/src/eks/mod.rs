//! The EKS reconciler (feature `aws`): the control plane, managed nodegroups, addons, and the version steps of
//! an upgrade, discovered by name and ownership tags, diffed, and driven through the engine with waiters.
//!
//! | key | kind | depends on |
//! |---|---|---|
//! | `eks/cluster` | eks-cluster | `role/cluster`, the cluster subnets, `sg/cluster` |
//! | `eks/addon/<name>` | eks-addon | `eks/cluster`, its IRSA role; addons other than [`addons::before_nodes`] also the nodegroups |
//! | `eks/identity-provider/<name>` | eks-identity-provider | `eks/cluster` |
//! | `eks/fargate-profile/<name>` | eks-fargate-profile | `eks/cluster`, `role/fargate` (unless it names a role), its subnets |
//! | `eks/capability/<name>` | eks-capability | `eks/cluster`, `role/capability/<name>` (unless it names a role) |
//! | `kp/<nodegroup>` | ec2-key-pair | (a public key of the spec's, imported) |
//! | `lt/<nodegroup>` | ec2-launch-template | `eks/cluster` when it lists security groups (it adds the cluster's) |
//! | `eks/nodegroup/<name>` | eks-nodegroup | `eks/cluster`, `role/node`, its subnets, the addons nodes need, its `lt/` |
//! | `upgrade/<version>/...` | eks-version | the previous part of the upgrade (control plane, then addons, then nodegroups) |
//!
//! A cluster of the environment's name that does not carry the environment's ownership tags is never adopted,
//! changed or deleted: planning fails instead. The control plane is never replaced: a plan that would is refused
//! ([`Error::ClusterReplacement`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use aws_sdk_eks::types::{
    AmiTypes, AuthenticationMode as EksMode, CapacityTypes, ControlPlaneScalingConfig, CreateAccessConfigRequest,
    ElasticLoadBalancing, EncryptionConfig, IdentityProviderConfig, KubernetesNetworkConfigRequest,
    LaunchTemplateSpecification, LogSetup, LogType, Logging, NodeRepairConfig, NodegroupScalingConfig,
    NodegroupUpdateConfig, OidcIdentityProviderConfigRequest, Provider, ProvisionedControlPlaneTier,
    RemoteAccessConfig, RemoteNetworkConfigRequest, RemoteNodeNetwork, RemotePodNetwork, ResolveConflicts, SupportType,
    Taint, TaintEffect, UpdateLabelsPayload, UpdateTaintsPayload, UpgradePolicyRequest, VpcConfigRequest,
    ZonalShiftConfigRequest,
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

mod capability;
mod desired;
mod discover;
mod execute;
mod fargate;
mod keypair;
mod props;
mod template;
#[cfg(test)]
mod tests;

pub use capability::{capability_key, CapabilityProps};
pub use fargate::fargate_profile_key;
pub use keypair::{key_pair_key, key_pair_name, KeyPairProps};
use props::{from_props, to_props};
pub use props::{
    AddonProps, FargateProfileProps, IdentityProviderProps, LaunchTemplateProps, NodegroupProps, RemoteAccessProps,
    Scaling, TaintProps,
};

use crate::addons::{self, AddonVersion, Catalogue};
use crate::upgrade::{self, ClusterState, Preflight};
use crate::Error;

/// The component name in ownership tags.
pub const COMPONENT: &str = "cluster";

/// Resource kinds this reconciler executes.
pub const KINDS: &[&str] = &[
    "eks-cluster",
    "eks-nodegroup",
    "eks-addon",
    "eks-identity-provider",
    "eks-fargate-profile",
    "eks-capability",
    "eks-version",
    "ec2-launch-template",
    "ec2-key-pair",
];

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
    "eks:AssociateIdentityProviderConfig",
    "eks:DescribeIdentityProviderConfig",
    "eks:ListIdentityProviderConfigs",
    "eks:DisassociateIdentityProviderConfig",
    "eks:CreateFargateProfile",
    "eks:DescribeFargateProfile",
    "eks:ListFargateProfiles",
    "eks:DeleteFargateProfile",
    "eks:CreateCapability",
    "eks:DescribeCapability",
    "eks:ListCapabilities",
    "eks:UpdateCapability",
    "eks:DeleteCapability",
    "eks:DescribeAccessEntry",
    "eks:ListAssociatedAccessPolicies",
    "eks:AssociateAccessPolicy",
    "eks:DisassociateAccessPolicy",
    "eks:TagResource",
    "iam:PassRole",
    "ec2:CreateLaunchTemplate",
    "ec2:CreateLaunchTemplateVersion",
    "ec2:ModifyLaunchTemplate",
    "ec2:DescribeLaunchTemplates",
    "ec2:DescribeLaunchTemplateVersions",
    "ec2:DeleteLaunchTemplate",
    "ec2:ImportKeyPair",
    "ec2:DescribeKeyPairs",
    "ec2:DeleteKeyPair",
    "ec2:CreateTags",
];

/// Settings taken only at creation: the control plane's authentication mode (it moves later through the
/// access component, forward only), bootstrap admin and support type; a nodegroup's max pods (recorded as the
/// `eksodus.io/max-pods` tag, computed with the instance's vCPUs, which only a create looks up); an addon's
/// `resolve_conflicts`, which is a parameter of each call, not a setting EKS keeps.
pub const CREATE_ONLY: &[&str] =
    &["authentication_mode", "bootstrap_admin", "support_type", "max_pods", "resolve_conflicts", "public_key"];

/// The control plane's default scaling tier, which a cluster that reports none is on.
pub(crate) const STANDARD_TIER: &str = "standard";

/// Key of a nodegroup.
pub fn nodegroup_key(name: &str) -> String {
    format!("eks/nodegroup/{name}")
}

/// Key of an OIDC identity provider config.
pub fn identity_provider_key(name: &str) -> String {
    format!("eks/identity-provider/{name}")
}

/// Key of the launch template eksodus makes for a nodegroup.
pub fn template_key(nodegroup: &str) -> String {
    format!("lt/{nodegroup}")
}

/// The name of the launch template eksodus makes for a nodegroup (unique in the account and region, as EC2
/// wants, since environment names are).
pub fn template_name(env: &str, nodegroup: &str) -> String {
    format!("{env}-{nodegroup}")
}

/// The metadata service hop limit of templates that do not set one (EKS's own default for managed nodes).
pub const DEFAULT_HOP_LIMIT: u8 = 2;

/// Whether the launch templates eksodus makes set the kubelet's max pods: EKS's own figure follows the ENI
/// formula, which under prefix delegation or custom networking counts the wrong addresses, so the nodes take
/// eksodus-net's instead (which needs the instance types' vCPUs for its 110/250 ceiling). An IPv6 cluster
/// always assigns prefixes, so it counts as prefix delegation.
pub fn sets_max_pods(spec: &EnvironmentSpec) -> bool {
    let cni = &spec.network.cni;
    cni.mode == eksodus_core::spec::CniMode::PrefixDelegation || cni.custom_networking.is_some() || spec.ipv6_cluster()
}

/// Key of an addon.
pub fn addon_key(name: &str) -> String {
    format!("eks/addon/{name}")
}

/// The default AMI type of nodegroups that do not set one.
pub const DEFAULT_AMI_TYPE: &str = "AL2023_x86_64_STANDARD";
/// The AMI type EKS reports for a nodegroup whose launch template names an AMI.
pub const CUSTOM_AMI_TYPE: &str = "CUSTOM";
/// The default root volume of nodegroups that do not set one, in GiB (EKS's default).
pub const DEFAULT_DISK_SIZE: u32 = 20;
/// The default root volume of Windows nodegroups, in GiB (EKS's default for them: Windows needs more).
pub const DEFAULT_WINDOWS_DISK_SIZE: u32 = 50;

/// The root volume of a nodegroup's nodes in GiB: its `disk_size`, or EKS's default for its OS.
pub fn disk_size(n: &eksodus_core::spec::NodegroupSpec) -> u32 {
    n.disk_size.unwrap_or(if n.is_windows() { DEFAULT_WINDOWS_DISK_SIZE } else { DEFAULT_DISK_SIZE })
}

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
    /// The security group EKS made for the cluster (control plane and nodes).
    pub security_group: Option<String>,
    /// Health issues EKS reports.
    pub health: Vec<String>,
    /// Whether it carries this environment's ownership tags.
    pub owned: bool,
    /// Its service CIDR (`kubernetesNetworkConfig.serviceIpv4Cidr`, or `serviceIpv6Cidr` in an IPv6 cluster).
    pub service_cidr: Option<String>,
}

impl ClusterInfo {
    /// What a custom AMI's node needs to join, once EKS reports all of it.
    pub fn bootstrap(&self) -> Option<ClusterBootstrap> {
        Some(ClusterBootstrap {
            endpoint: self.endpoint.clone()?,
            certificate_authority: self.certificate_authority.clone()?,
            service_cidr: self.service_cidr.clone()?,
        })
    }
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
                    // sorted as the desired side sorts them (a template's groups and the cluster's mix keys and
                    // IDs)
                    a.sort_by(|x, y| x.as_str().cmp(&y.as_str()));
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
    /// The security group EKS made with the cluster (`None` before the cluster exists).
    pub cluster_security_group: Option<String>,
    /// What a custom AMI's node needs to join (`None` before the cluster exists).
    pub cluster_bootstrap: Option<ClusterBootstrap>,
}

/// The cluster's side of a node's bootstrap, as `DescribeCluster` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterBootstrap {
    /// The API server endpoint.
    pub endpoint: String,
    /// The CA bundle, base64.
    pub certificate_authority: String,
    /// The service CIDR.
    pub service_cidr: String,
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
    ec2: aws_sdk_ec2::Client,
    ec2_calls: Calls,
    name: String,
    env: String,
    partition: &'static str,
    user_tags: BTreeMap<String, String>,
    reads: ApplyOptions,
    calls: Calls,
    /// Held while a Fargate profile is created or deleted: EKS changes one profile of a cluster at a time.
    fargate_lock: std::sync::Arc<futures::lock::Mutex<()>>,
}

use eksodus_core::plan::props;

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
/// A health issue as EKS reports one for a cluster, nodegroup, addon or Fargate profile: each is its own type
/// with the same two fields.
trait HealthIssue {
    /// `code: message`, with `?` for a missing code.
    fn line(&self) -> String;
}

macro_rules! health_issue {
    ($($t:ty),*) => {$(
        impl HealthIssue for $t {
            fn line(&self) -> String {
                format!("{}: {}", self.code().map(|c| c.as_str()).unwrap_or("?"), self.message().unwrap_or_default())
            }
        }
    )*};
}
health_issue!(
    aws_sdk_eks::types::ClusterIssue,
    aws_sdk_eks::types::Issue,
    aws_sdk_eks::types::AddonIssue,
    aws_sdk_eks::types::FargateProfileIssue,
    aws_sdk_eks::types::CapabilityIssue
);

/// Each issue as a line.
fn health_lines<I: HealthIssue>(issues: Option<&[I]>) -> Vec<String> {
    issues.unwrap_or_default().iter().map(HealthIssue::line).collect()
}

/// The issues on one line, `; ` between them.
fn health<I: HealthIssue>(issues: Option<&[I]>) -> String {
    health_lines(issues).join("; ")
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
    /// A reconciler for `spec`'s cluster (named after the environment); `ec2` makes its nodegroups' launch
    /// templates.
    pub fn new(eks: Client, ec2: aws_sdk_ec2::Client, spec: &EnvironmentSpec) -> Self {
        let region = eks.config().region().map(|r| r.to_string()).unwrap_or_default();
        let calls = Calls::for_region("eks", &region);
        Eks {
            eks,
            ec2,
            ec2_calls: Calls::for_region("ec2", &region),
            name: spec.name.clone(),
            env: spec.name.clone(),
            partition: eksodus_access::policy::partition(&spec.region),
            user_tags: spec.tags.clone(),
            reads: ApplyOptions::default(),
            calls,
            fargate_lock: Default::default(),
        }
    }

    /// Uses `opts`' retry policy for reads made outside the engine.
    pub fn with_retry(mut self, opts: ApplyOptions) -> Self {
        self.calls = self.calls.with_policy(opts.calls);
        self.ec2_calls = self.ec2_calls.with_policy(opts.calls);
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

    /// Calls EC2 (the launch templates) through `calls`, as [`Eks::with_calls`] does for EKS.
    pub fn with_ec2_calls(mut self, calls: Calls) -> Self {
        self.ec2_calls = calls.with_policy(*self.ec2_calls.policy());
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

    /// The ownership tags with a resource's own tags over the environment's (ownership tags stay eksodus's).
    fn tags_over(&self, key: &str, own: &BTreeMap<String, String>) -> HashMap<String, String> {
        let mut t = self.owner_tags(key);
        for (k, v) in own {
            if !k.starts_with(tags::PREFIX) {
                t.insert(k.clone(), v.clone());
            }
        }
        t
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
            // custom-AMI nodegroups (no version) move with their AMI, not with the control plane
            nodegroups: found
                .nodegroups
                .iter()
                .filter(|(_, (v, _))| !v.is_empty())
                .map(|(n, (v, _))| (n.clone(), v.clone()))
                .collect(),
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
}
