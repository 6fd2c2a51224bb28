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
    /// IAM roles, OIDC and IRSA, aws-auth mappings and EKS access entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessSpec>,
    /// The EKS control plane, its nodegroups and addons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterSpec>,
}

/// Kubernetes versions EKS offers (standard and extended support); the one list the validation reads.
pub const KUBERNETES_VERSIONS: &[&str] = &["1.28", "1.29", "1.30", "1.31", "1.32", "1.33", "1.34", "1.35"];
/// The control plane's scaling tiers EKS offers (`ProvisionedControlPlaneTier`), `standard` being the default.
pub const CONTROL_PLANE_TIERS: &[&str] = &["standard", "tier-xl", "tier-2xl", "tier-4xl", "tier-8xl"];
/// Control-plane log types EKS can send to CloudWatch.
pub const LOG_TYPES: &[&str] = &["api", "audit", "authenticator", "controllerManager", "scheduler"];

/// The EKS control plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// Kubernetes version, such as `1.31`.
    pub version: String,
    /// API server endpoint access.
    #[serde(default)]
    pub endpoint: EndpointSpec,
    /// Control-plane log types sent to CloudWatch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logging: Vec<String>,
    /// Days CloudWatch keeps the control plane's logs (one of CloudWatch's [`LOG_RETENTION_DAYS`]; needs
    /// `logging`). eksodus then makes the log group `/aws/eks/<name>/cluster` itself, before the cluster, so
    /// it carries the environment's tags and `down` deletes it; without it EKS makes the group, keeps logs
    /// forever and leaves the group behind. Changed in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_retention_days: Option<u32>,
    /// Envelope encryption of Kubernetes secrets with KMS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionSpec>,
    /// `STANDARD` or `EXTENDED` version support.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support_type: Option<String>,
    /// Security groups of yours (`sg-...`, up to four) the control plane's network interfaces get beside the
    /// cluster's own group (eksctl's `controlPlaneSecurityGroupIDs`). Changed in place.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub control_plane_security_groups: Vec<String>,
    /// The subnets of an adopted VPC the control plane's network interfaces go in, when they are not the
    /// nodes' (`network.existing.subnet_ids`): eksctl's `controlPlaneSubnetIDs`, such as small dedicated
    /// subnets. In at least two zones; fixed at creation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub control_plane_subnets: Vec<String>,
    /// Zonal shift: lets Amazon Application Recovery Controller move the cluster's traffic away from an
    /// impaired Availability Zone (eksctl's `zonalShiftConfig.enabled`). Turned on and off in place.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub zonal_shift: bool,
    /// The control plane's scaling tier: `standard` (EKS's default, scaled on demand) or a provisioned tier
    /// held ready ahead of load and billed by the hour: `tier-xl`, `tier-2xl`, `tier-4xl`, `tier-8xl`
    /// (eksctl's `controlPlaneScalingConfig.tier`). Changed in place; unset is `standard`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_tier: Option<String>,
    /// Service CIDR of the cluster (IPv4 clusters only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_ipv4_cidr: Option<Ipv4Net>,
    /// The address family of pods and services (EKS's `kubernetesNetworkConfig.ipFamily`, eksctl's
    /// `kubernetesNetworkConfig.ipFamily`), fixed at creation. `ipv6` gives pods addresses from their node
    /// subnet's IPv6 block and services addresses EKS picks from `fc00::/7`; it makes the VPC dual-stack
    /// (see [`NetworkSpec::ipv6`]) with an egress-only internet gateway for the private subnets, and needs
    /// Linux nodes on Nitro instances and VPC CNI 1.10.1 or later.
    #[serde(default, skip_serializing_if = "IpFamily::is_default")]
    pub ip_family: IpFamily,
    /// EKS Auto Mode (eksctl's `autoModeConfig`): EKS runs the nodes (from the node pools named here),
    /// block storage and load balancing itself, turned on as one, and the cluster role gets the four policies
    /// that lets it. Managed nodegroups may run beside it. Turned on and off in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_mode: Option<AutoModeSpec>,
    /// Give the cluster creator cluster-admin through an access entry.
    #[serde(default = "yes")]
    pub bootstrap_admin: bool,
    /// Managed nodegroups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodegroups: Vec<NodegroupSpec>,
    /// EKS addons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addons: Vec<AddonSpec>,
    /// OIDC identity providers people sign in to the cluster with (EKS allows one per cluster). Their
    /// settings are fixed once associated: a change disassociates and associates again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identity_providers: Vec<IdentityProviderSpec>,
    /// Fargate profiles (eksctl's `fargateProfiles`): pods whose namespace and labels a profile selects run
    /// on Fargate, in the private subnets, as the pod execution role (one eksodus makes unless a profile
    /// names its own). EKS changes nothing of a profile but its tags, so any other change replaces it, and
    /// it creates or deletes one profile of a cluster at a time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fargate_profiles: Vec<FargateProfileSpec>,
    /// EKS capabilities (eksctl's `capabilities`): Argo CD, AWS Controllers for Kubernetes (ACK) and kro, run
    /// by EKS outside the cluster's nodes, each as a capability role (one eksodus makes unless it names its
    /// own) that EKS lets into the cluster through an access entry. One of each type per cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<CapabilitySpec>,
    /// EKS Hybrid Nodes (eksctl's `remoteNetworkConfig`): machines of yours outside AWS join the cluster as
    /// nodes from the networks named here. Changed in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_network: Option<RemoteNetworkSpec>,
}

/// EKS Hybrid Nodes: the networks outside AWS that nodes (and their pods) have addresses in, and the role
/// those nodes act as. The cluster knows the networks (EKS `remoteNetworkConfig`, changed in place), the
/// cluster security group lets them reach the API server on port 443, and the role gets a `HYBRID_LINUX`
/// access entry. The route between the VPC and those networks (a transit gateway, Site-to-Site VPN or Direct
/// Connect) and the SSM hybrid activation the nodes register with (`nodeadm init`) are yours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteNetworkSpec {
    /// The networks hybrid nodes have addresses in (EKS's `remoteNodeNetworks`): RFC 1918 blocks, apart from
    /// the VPC's and the services' blocks and from each other.
    pub node_cidrs: Vec<Ipv4Net>,
    /// The networks pods on hybrid nodes get addresses from, when the CNI there (Cilium, Calico) gives them
    /// addresses routed from the VPC (EKS's `remotePodNetworks`): webhooks that run on hybrid nodes need it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pod_cidrs: Vec<Ipv4Net>,
    /// The role hybrid nodes act as: one of yours (its SSM or IAM Roles Anywhere set-up is yours too), or,
    /// unset, one eksodus makes for SSM hybrid activations (`<env>-hybrid-nodes`, trusted by Systems Manager,
    /// with what `nodeadm` needs: `eks:DescribeCluster`, image pulls from ECR and SSM's managed instance
    /// policy, and deregistering itself on uninstall).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

impl RemoteNetworkSpec {
    /// Whether eksodus makes the hybrid nodes' role.
    pub fn owns_role(&self) -> bool {
        self.role_arn.is_none()
    }

    /// Every block, nodes' first.
    pub fn all_cidrs(&self) -> impl Iterator<Item = &Ipv4Net> {
        self.node_cidrs.iter().chain(&self.pod_cidrs)
    }
}

/// The private IPv4 ranges of RFC 1918, which EKS requires hybrid nodes' and their pods' networks to be in.
pub const RFC1918: &[&str] = &["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"];

/// The service block EKS gives a cluster whose `service_ipv4_cidr` is unset: `172.20.0.0/16` when the VPC's
/// block is in `10.0.0.0/8`, else `10.100.0.0/16` (EKS's `serviceIpv4Cidr` reference).
pub fn default_service_cidr(vpc: Ipv4Net) -> Ipv4Net {
    let ten: Ipv4Net = "10.0.0.0/8".parse().expect("a CIDR");
    if ten.contains(&vpc.network()) {
        "172.20.0.0/16".parse().expect("a CIDR")
    } else {
        "10.100.0.0/16".parse().expect("a CIDR")
    }
}

/// An EKS capability (EKS `CreateCapability`). Its name, type, Argo CD namespace and Identity Center
/// instance are fixed once made (a change replaces it); its role, Argo CD role mappings and network access,
/// access policies and tags change in place. Deleting it retains what it made (EKS's `RETAIN`, the only
/// delete propagation policy EKS has): an ACK bucket outlives the capability that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilitySpec {
    /// The capability's name in EKS.
    pub name: String,
    /// `ACK`, `KRO` or `ARGOCD`.
    #[serde(rename = "type")]
    pub kind: CapabilityKind,
    /// The capability role, of yours (trusting `capabilities.eks.amazonaws.com`); unset, eksodus makes
    /// `<env>-capability-<name>` with `attach_policy_arns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// IAM policies for the role eksodus makes (what ACK may do in AWS, for one); kro needs none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attach_policy_arns: Vec<String>,
    /// Access policies associated with the access entry EKS makes for the role, beside the one EKS
    /// associates itself (`AmazonEKSACKPolicy`, `AmazonEKSKROPolicy`, or Argo CD's two).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_policies: Vec<PolicyAssociationSpec>,
    /// Argo CD's settings; required for `ARGOCD`, refused for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argocd: Option<ArgoCdSpec>,
    /// Tags of the capability, beside the environment's. Changed in place.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// The kind of an EKS capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CapabilityKind {
    /// AWS Controllers for Kubernetes: AWS resources as Kubernetes objects.
    #[serde(rename = "ACK")]
    Ack,
    /// Kube Resource Orchestrator: APIs made of other Kubernetes objects.
    #[serde(rename = "KRO")]
    Kro,
    /// Argo CD: GitOps delivery.
    #[serde(rename = "ARGOCD")]
    ArgoCd,
}

impl CapabilityKind {
    /// The EKS API name.
    pub fn as_str(self) -> &'static str {
        match self {
            CapabilityKind::Ack => "ACK",
            CapabilityKind::Kro => "KRO",
            CapabilityKind::ArgoCd => "ARGOCD",
        }
    }

    /// Parses the EKS API name.
    pub fn parse(s: &str) -> Option<Self> {
        [CapabilityKind::Ack, CapabilityKind::Kro, CapabilityKind::ArgoCd].into_iter().find(|k| k.as_str() == s)
    }

    /// The access policies EKS associates with the capability role's access entry itself, each with the
    /// namespaces it is scoped to (none: the cluster), for an Argo CD in `argocd_namespace` (EKS's "Security
    /// considerations for EKS Capabilities" and each capability's permissions page).
    pub fn eks_access_policies(self, argocd_namespace: &str) -> Vec<(&'static str, Vec<String>)> {
        match self {
            CapabilityKind::Ack => vec![("AmazonEKSACKPolicy", vec![])],
            CapabilityKind::Kro => vec![("AmazonEKSKROPolicy", vec![])],
            CapabilityKind::ArgoCd => vec![
                ("AmazonEKSArgoCDClusterPolicy", vec![]),
                ("AmazonEKSArgoCDPolicy", vec![argocd_namespace.to_string()]),
            ],
        }
    }
}

/// Argo CD's settings: who signs in to it (AWS IAM Identity Center) and from where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgoCdSpec {
    /// The namespace Argo CD's applications live in (fixed once made).
    #[serde(default = "default_argocd_namespace")]
    pub namespace: String,
    /// The IAM Identity Center instance people sign in through (fixed once made).
    pub idc_instance_arn: String,
    /// The Identity Center instance's region, when not the cluster's (fixed once made).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idc_region: Option<String>,
    /// Argo CD roles given to Identity Center users and groups. Changed in place.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rbac_role_mappings: Vec<ArgoCdRoleMapping>,
    /// VPC endpoints (`vpce-...`) Argo CD is reached through privately; none: its public endpoint. Changed
    /// in place.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vpce_ids: Vec<String>,
}

fn default_argocd_namespace() -> String {
    "argocd".into()
}

/// One Argo CD role and who has it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgoCdRoleMapping {
    /// `ADMIN`, `EDITOR` or `VIEWER`.
    pub role: String,
    /// Identity Center users and groups.
    pub identities: Vec<SsoIdentity>,
}

/// An IAM Identity Center user or group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsoIdentity {
    /// The user's or group's ID in Identity Center.
    pub id: String,
    /// `SSO_USER` or `SSO_GROUP`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// The Argo CD roles EKS's capability maps.
pub const ARGOCD_ROLES: &[&str] = &["ADMIN", "EDITOR", "VIEWER"];
/// The Identity Center identity types an Argo CD role mapping takes.
pub const SSO_IDENTITY_TYPES: &[&str] = &["SSO_USER", "SSO_GROUP"];

impl CapabilitySpec {
    /// Whether eksodus makes the capability's role (it names none of its own).
    pub fn owns_role(&self) -> bool {
        self.role_arn.is_none()
    }
}

/// A Fargate profile (EKS `CreateFargateProfile`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FargateProfileSpec {
    /// The profile's name in EKS.
    pub name: String,
    /// Which pods run on Fargate: a pod matching any selector does (one to five).
    pub selectors: Vec<FargateSelector>,
    /// Subnets of an adopted VPC (`network.existing`) the pods go in; private ones only, as Fargate gives
    /// pods no public address. Unset: every private subnet of the environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<String>,
    /// The pod execution role, of yours; unset, eksodus makes `<env>-fargate` (EKS's Fargate pod execution
    /// policy) and every profile without a role uses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_execution_role_arn: Option<String>,
    /// Tags of the profile, beside the environment's. Changed in place.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// Which pods a Fargate profile takes: those of a namespace (`*` and `?` match any characters and one
/// character) that carry every label given.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FargateSelector {
    /// The namespace, or a pattern of namespaces.
    pub namespace: String,
    /// Labels a pod must carry (up to five).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// The Fargate profiles EKS lets a cluster have (its service quota's default).
pub const MAX_FARGATE_PROFILES: usize = 10;

impl ClusterSpec {
    /// Whether eksodus makes the Fargate pod execution role: some profile names no role of its own.
    pub fn owns_fargate_role(&self) -> bool {
        self.fargate_profiles.iter().any(|p| p.pod_execution_role_arn.is_none())
    }
}

/// EKS Auto Mode's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoModeSpec {
    /// The built-in node pools EKS keeps: `general-purpose` and `system` (both, unless set); empty for none,
    /// when only node pools of your own (Kubernetes `NodePool` objects) launch nodes.
    #[serde(default = "default_node_pools")]
    pub node_pools: Vec<String>,
    /// The role the built-in pools' nodes run as, of yours; unset, eksodus makes `<env>-auto-node` (EKS's
    /// minimal node policy and ECR pull) when there are pools. EKS does not change it once Auto Mode is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_role_arn: Option<String>,
}

/// EKS Auto Mode's built-in node pools.
pub const AUTO_MODE_NODE_POOLS: &[&str] = &["general-purpose", "system"];

fn default_node_pools() -> Vec<String> {
    AUTO_MODE_NODE_POOLS.iter().map(|p| p.to_string()).collect()
}

impl AutoModeSpec {
    /// Whether eksodus makes the pools' node role (there are pools, and no role of yours).
    pub fn owns_node_role(&self) -> bool {
        !self.node_pools.is_empty() && self.node_role_arn.is_none()
    }
}

/// The address family of a cluster's pods and services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpFamily {
    /// IPv4 addresses (EKS's default).
    #[default]
    Ipv4,
    /// IPv6 addresses (EKS does not give pods both).
    Ipv6,
}

impl IpFamily {
    /// EKS's name of the family (`ipv4`, `ipv6`).
    pub fn as_str(self) -> &'static str {
        match self {
            IpFamily::Ipv4 => "ipv4",
            IpFamily::Ipv6 => "ipv6",
        }
    }

    /// Whether it is EKS's default, `ipv4`.
    pub fn is_default(&self) -> bool {
        *self == IpFamily::Ipv4
    }
}

/// API server endpoint access.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// Reachable from the internet.
    #[serde(default = "yes")]
    pub public: bool,
    /// Reachable from inside the VPC.
    #[serde(default = "yes")]
    pub private: bool,
    /// CIDRs allowed to reach the public endpoint (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub public_cidrs: Vec<Ipv4Net>,
}

impl Default for EndpointSpec {
    fn default() -> Self {
        EndpointSpec { public: true, private: true, public_cidrs: vec![] }
    }
}

/// KMS secrets encryption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionSpec {
    /// An existing key's ARN; absent means eksodus creates a key and an alias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_arn: Option<String>,
    /// Days a created key waits, after `down`, before KMS deletes it (7 to 30; KMS's default is 30). Until
    /// then an `up` of the same environment takes the key back, and the secrets it encrypted stay readable.
    #[serde(default = "thirty")]
    pub deletion_window_days: u32,
}

/// A managed nodegroup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodegroupSpec {
    /// Name.
    pub name: String,
    /// Instance types (several for Spot diversity); empty with an `instance_selector`.
    #[serde(default)]
    pub instance_types: Vec<String>,
    /// Minimum nodes.
    #[serde(default = "one")]
    pub min: u32,
    /// Maximum nodes.
    #[serde(default = "one")]
    pub max: u32,
    /// Desired nodes.
    #[serde(default = "one")]
    pub desired: u32,
    /// Root volume size in GiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_size: Option<u32>,
    /// AMI type (`AL2023_x86_64_STANDARD`, ...). A Windows type ([`WINDOWS_AMI_TYPES`]) makes Windows nodes:
    /// they get a node role of their own, a 50 GiB root volume by default (EKS's), and eksodus turns on the VPC
    /// CNI's Windows IP address management in the cluster (`kube-system/amazon-vpc-cni`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ami_type: Option<String>,
    /// `ON_DEMAND` or `SPOT`.
    #[serde(default = "on_demand")]
    pub capacity_type: String,
    /// Node labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Node taints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<TaintSpec>,
    /// Zones to use (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<String>,
    /// Put nodes in the public subnets instead of the private ones.
    #[serde(default)]
    pub public: bool,
    /// In an adopted VPC, the subnets the nodes go in: each an ID of `network.existing.subnet_ids` or a
    /// block of `network.existing.subnet_cidrs` (every adopted subnet when empty). Fixed at creation: a
    /// change replaces the nodegroup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<String>,
    /// Nodes replaced at once during updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<u32>,
    /// Or the share of the nodes replaced at once, 1 to 100 (instead of `max_unavailable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable_percentage: Option<u32>,
    /// Tags of the nodegroup itself, over the environment's (cost allocation, cluster-autoscaler discovery).
    /// EKS does not copy a managed nodegroup's tags to its instances or volumes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Break-glass SSH to the nodes with an EC2 key pair (EKS remote access; fixed at creation: a change
    /// replaces the nodegroup). Without it nodes are reached through SSM Session Manager (the node role has
    /// `AmazonSSMManagedInstanceCore`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshSpec>,
    /// The nodes' IAM role: the environment's node role (default), one of the nodegroup's own with extra
    /// policies, or a role of the user's.
    #[serde(default, skip_serializing_if = "NodeIamSpec::is_default")]
    pub iam: NodeIamSpec,
    /// EKS node auto repair: nodes that report unhealthy (kubelet, container runtime, GPU, network) are
    /// replaced by EKS. Changed in place.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub node_repair: bool,
    /// How far node repair goes: when it stops, how many nodes it repairs at once, and what it does for a
    /// given condition (needs `node_repair`; EKS's own defaults when unset). Changed in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_repair_settings: Option<NodeRepairSettings>,
    /// The root volume's type, IOPS, throughput and encryption (its size stays `disk_size`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeSpec>,
    /// The instance metadata service's hop limit (IMDSv2 is always required on nodes of a template eksodus
    /// makes): 1 keeps pods off the node's credentials, 2 lets pods without host networking reach them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imds_hop_limit: Option<u8>,
    /// Security groups (`sg-...`) the nodes get. EKS then leaves out the cluster security group, so eksodus
    /// adds it to these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_groups: Vec<String>,
    /// Shell commands run on each node before it joins the cluster (Amazon Linux 2023: a shell part beside the
    /// `nodeadm` configuration EKS merges in).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_bootstrap_commands: Vec<String>,
    /// The nodes' `Name` tag (the EC2 console's instance name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_name: Option<String>,
    /// A launch template of the user's, by ID and version: eksodus never changes it; a new version here rolls
    /// the nodes. Excludes the fields that would make eksodus's own template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_template: Option<LaunchTemplateRef>,
    /// A custom AMI (`ami-...`) for the nodes, of the family `ami_type` names (Amazon Linux 2023, Amazon Linux
    /// 2 or Bottlerocket). EKS then merges none of its bootstrap: eksodus's template carries all of it (the
    /// cluster's endpoint, CA and service CIDR, the nodegroup's labels and taints), and the nodegroup has no
    /// Kubernetes version of its own: a new AMI here rolls the nodes, `upgrade` leaves them to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ami: Option<String>,
    /// With `ami` on Amazon Linux: the shell that joins the node instead of eksodus's bootstrap (eksctl's
    /// `overrideBootstrapCommand`); the pre-bootstrap commands run before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_bootstrap_command: Option<String>,
    /// Bottlerocket nodes: the admin container and more settings, written into the TOML user data of
    /// eksodus's launch template (eksctl's `bottlerocket`). A change is a new template version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bottlerocket: Option<BottlerocketSpec>,
    /// Instance types chosen by what they offer instead of by name (eksctl's `instanceSelector`), with
    /// `instance_types` left empty. The plan that makes the nodegroup resolves it against EC2's instance types
    /// offered in its zones; later plans keep the types it runs while they still satisfy the selector, so a
    /// type EC2 adds later does not replace the nodes, and a changed selector does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_selector: Option<InstanceSelectorSpec>,
}

/// The most instance types a selector may resolve to (eksctl's limit): more says the criteria are too wide.
pub const MAX_SELECTED_TYPES: usize = 40;

/// What a nodegroup's instance types must offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceSelectorSpec {
    /// vCPUs per instance: a number (exactly) or `{min, max}`.
    #[serde(default, skip_serializing_if = "CountRange::is_any")]
    pub vcpus: CountRange,
    /// Memory per instance in MiB: a number (exactly) or `{min, max}`.
    #[serde(default, skip_serializing_if = "CountRange::is_any")]
    pub memory_mib: CountRange,
    /// GPUs per instance. None unless asked for: a GPU type needs a GPU AMI type, and costs more than its
    /// vCPUs and memory suggest.
    #[serde(default = "CountRange::none")]
    pub gpus: CountRange,
    /// `x86_64` (default) or `arm64`; the nodegroup's AMI type must be built for it.
    #[serde(default = "x86_64")]
    pub architecture: String,
    /// Only types whose name this regular expression matches (unanchored, as eksctl's `allow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<String>,
    /// No type whose name this regular expression matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny: Option<String>,
}

fn x86_64() -> String {
    "x86_64".into()
}

/// A range of counts, both ends included; an end not given is open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CountRange {
    /// Fewest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u32>,
    /// Most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum CountRangeRepr {
    Exactly(u32),
    Range(RangeFields),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeFields {
    #[serde(default)]
    min: Option<u32>,
    #[serde(default)]
    max: Option<u32>,
}

impl<'de> Deserialize<'de> for CountRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match CountRangeRepr::deserialize(d)? {
            CountRangeRepr::Exactly(n) => CountRange::exactly(n),
            CountRangeRepr::Range(RangeFields { min, max }) => CountRange { min, max },
        })
    }
}

impl std::fmt::Display for CountRange {
    /// `4`, `2-8`, `at least 2`, `at most 8` or `any`: how a message says what was asked for.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.min, self.max) {
            (Some(a), Some(b)) if a == b => write!(f, "{a}"),
            (Some(a), Some(b)) => write!(f, "{a}-{b}"),
            (Some(a), None) => write!(f, "at least {a}"),
            (None, Some(b)) => write!(f, "at most {b}"),
            (None, None) => f.write_str("any"),
        }
    }
}

impl CountRange {
    /// Exactly `n`.
    pub fn exactly(n: u32) -> Self {
        CountRange { min: Some(n), max: Some(n) }
    }
    /// Exactly none.
    pub fn none() -> Self {
        CountRange::exactly(0)
    }
    /// Whether both ends are open.
    pub fn is_any(&self) -> bool {
        self.min.is_none() && self.max.is_none()
    }
    /// Whether `n` lies in the range.
    pub fn contains(&self, n: u32) -> bool {
        self.min.is_none_or(|m| n >= m) && self.max.is_none_or(|m| n <= m)
    }
}

impl Default for InstanceSelectorSpec {
    fn default() -> Self {
        InstanceSelectorSpec {
            vcpus: CountRange::default(),
            memory_mib: CountRange::default(),
            gpus: CountRange::none(),
            architecture: x86_64(),
            allow: None,
            deny: None,
        }
    }
}

/// What a Bottlerocket nodegroup's settings add to what EKS and eksodus write.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BottlerocketSpec {
    /// Run the admin host container (`settings.host-containers.admin.enabled`): a root shell on the node for
    /// break-glass work, reached through the control container (SSM) or SSH (eksctl's
    /// `enableAdminContainer`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin_container: bool,
    /// More settings under `settings`, as Bottlerocket's settings reference names them (`motd`,
    /// `kernel.sysctl`, `kubernetes.cpu-manager-policy`, ...): tables, strings, numbers, booleans and lists
    /// of them. What eksodus and EKS write themselves (the cluster's bootstrap, max pods, node labels and
    /// taints, the admin container) is refused here.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

/// The settings eksodus or EKS write on Bottlerocket nodes, which `bottlerocket.settings` may not set.
pub const BOTTLEROCKET_RESERVED: &[&str] = &[
    "kubernetes.cluster-name",
    "kubernetes.api-server",
    "kubernetes.cluster-certificate",
    "kubernetes.cluster-dns-ip",
    "kubernetes.max-pods",
    "kubernetes.node-labels",
    "kubernetes.node-taints",
    "host-containers.admin.enabled",
];

impl NodegroupSpec {
    /// Whether the nodes run Windows (a `WINDOWS_...` AMI type).
    pub fn is_windows(&self) -> bool {
        self.ami_type.as_deref().is_some_and(|t| t.starts_with("WINDOWS_"))
    }

    /// Whether eksodus makes the nodegroup a node role of its own: it has extra policies, or it runs Windows
    /// (EKS gives a node role one kind of access to the cluster, as Linux or as Windows nodes, so Windows nodes
    /// cannot share the Linux nodes' role), and it names no role of the user's.
    pub fn has_own_role(&self) -> bool {
        self.iam.role_arn.is_none() && (self.is_windows() || self.iam.has_own_role())
    }

    /// Whether the nodegroup needs a launch template eksodus makes and owns: one of `volume`,
    /// `imds_hop_limit`, `security_groups`, `pre_bootstrap_commands`, `instance_name` or `ami` is set, or SSH
    /// that EKS's remote access cannot carry ([`SshSpec::needs_template`]). Its instance
    /// and volume tags then carry the nodegroup's tags too (EKS alone tags neither).
    pub fn owns_template(&self) -> bool {
        self.volume.is_some()
            || self.imds_hop_limit.is_some()
            || !self.security_groups.is_empty()
            || !self.pre_bootstrap_commands.is_empty()
            || self.instance_name.is_some()
            || self.ami.is_some()
            || self.ssh.as_ref().is_some_and(SshSpec::needs_template)
            || self.bottlerocket.is_some()
    }

    /// The names of the set fields that need eksodus's own launch template.
    fn template_fields(&self) -> Vec<&'static str> {
        let mut f = Vec::new();
        if self.volume.is_some() {
            f.push("volume");
        }
        if self.imds_hop_limit.is_some() {
            f.push("imds_hop_limit");
        }
        if !self.security_groups.is_empty() {
            f.push("security_groups");
        }
        if !self.pre_bootstrap_commands.is_empty() {
            f.push("pre_bootstrap_commands");
        }
        if self.instance_name.is_some() {
            f.push("instance_name");
        }
        if self.ami.is_some() {
            f.push("ami");
        }
        if self.bottlerocket.is_some() {
            f.push("bottlerocket");
        }
        f
    }
}

/// A nodegroup's root EBS volume.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeSpec {
    /// `gp3` (default), `gp2`, `io1` or `io2`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub volume_type: Option<String>,
    /// Provisioned IOPS (gp3: 3000 to 80000; io1: 100 to 64000; io2: 100 to 256000; required for io1/io2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iops: Option<u32>,
    /// Throughput in MiB/s (gp3 only: 125 to 2000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<u32>,
    /// Encrypt the volume (with the account's default EBS key unless `kms_key` names one).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub encrypted: bool,
    /// The KMS key of an encrypted volume, as EC2 takes one: its ID, `alias/<name>`, or the ARN of either;
    /// implies `encrypted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key: Option<String>,
}

/// A launch template of the user's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchTemplateRef {
    /// Its ID (`lt-...`).
    pub id: String,
    /// The version the nodes run (a number; EKS does not follow `$Default` or `$Latest` by itself).
    pub version: String,
}

/// A nodegroup's IAM role.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeIamSpec {
    /// Managed or customer policy ARNs attached beside the node policies; the nodegroup then gets a role of its
    /// own (`<environment>-node-<nodegroup>`), so other nodegroups do not get them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attach_policies: Vec<String>,
    /// An existing role (its ARN) for the nodes instead of one eksodus makes; eksodus never changes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// Permission sets of well-known add-ons for every pod on these nodes (eksctl's `withAddonPolicies`); the
    /// nodegroup then gets a role of its own. IRSA or Pod Identity roles (`access.service_accounts`) give them
    /// to one service account instead, which is narrower.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub well_known: Vec<WellKnownPolicy>,
}

impl NodeIamSpec {
    /// Whether the nodegroup uses the environment's node role.
    pub fn is_default(&self) -> bool {
        self.attach_policies.is_empty() && self.role_arn.is_none() && self.well_known.is_empty()
    }

    /// Whether eksodus makes the nodegroup a node role of its own (extra policies, no role of the user's).
    pub fn has_own_role(&self) -> bool {
        self.role_arn.is_none() && !(self.attach_policies.is_empty() && self.well_known.is_empty())
    }
}

/// SSH access to a nodegroup's nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshSpec {
    /// An EC2 key pair of yours, by name (give this, `public_key` or `public_key_file`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key_name: String,
    /// An OpenSSH public key (`ssh-ed25519 AAAA... comment`): eksodus imports it as a key pair it owns
    /// (`<environment>-<nodegroup>-<digest>`, so a new key is a new pair and new nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// A file holding that public key (`~/` is the home directory; a relative path is the spec file's
    /// directory's): read into `public_key` when the spec file is loaded (eksctl's `publicKeyPath`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_file: Option<String>,
    /// Security groups allowed to reach port 22 (`sg-...`).
    ///
    /// On a plain managed nodegroup this is EKS's remote access. Beside eksodus's launch template (which EKS
    /// takes no remote access with) the template names the key pair, and eksodus makes the nodegroup a
    /// security group `<environment>-<nodegroup>-ssh` that lets these groups reach port 22.
    #[serde(default)]
    pub source_security_groups: Vec<String>,
    /// IPv4 CIDR blocks allowed to reach port 22 (eksctl lets a private nodegroup's VPC in this way), kept in
    /// the same `-ssh` group.
    ///
    /// EKS's remote access takes only groups, and with none it opens port 22 to 0.0.0.0/0, so a nodegroup
    /// with CIDRs here, or with no source at all, gets eksodus's launch template. With no source the nodes
    /// have the key and nothing lets port 22 in until a group of yours does (eksctl's `allow: false`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_cidrs: Vec<Ipv4Net>,
}

impl SshSpec {
    /// Whether EKS's remote access cannot carry this (it takes groups alone, and opens port 22 to the
    /// internet without one), so that the nodegroup needs eksodus's launch template and its SSH group.
    pub fn needs_template(&self) -> bool {
        self.source_security_groups.is_empty() || !self.source_cidrs.is_empty()
    }
}

/// The limits and per-condition actions of EKS node repair (its `NodeRepairConfig` beyond `enabled`). Each
/// limit is a node count or a percentage of the nodegroup, not both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeRepairSettings {
    /// Repair stops while more than this many nodes are unhealthy (a wider failure is not the nodes').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unhealthy_count: Option<u32>,
    /// Or while more than this share of them is (1 to 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unhealthy_percentage: Option<u32>,
    /// At most this many nodes are repaired at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel_count: Option<u32>,
    /// Or at most this share of them (1 to 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel_percentage: Option<u32>,
    /// What repair does for a condition the node monitoring agent reports, instead of EKS's default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<NodeRepairOverride>,
}

/// One condition's repair: after `wait_minutes` of `condition` with `reason`, do `action`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeRepairOverride {
    /// The node condition the node monitoring agent sets (`AcceleratedInstanceNotReady`, `NetworkNotReady`,
    /// ...).
    pub condition: String,
    /// The reason it gives (`NvidiaXID13Error`, `InterfaceNotUp`, ...).
    pub reason: String,
    /// Minutes the condition lasts before repair acts.
    pub wait_minutes: u32,
    /// `Replace`, `Reboot` or `NoAction`.
    pub action: String,
}

/// The repair actions EKS takes (`RepairAction`).
pub const REPAIR_ACTIONS: &[&str] = &["Replace", "Reboot", "NoAction"];

/// The key types EC2 imports, as OpenSSH names them.
pub const SSH_KEY_TYPES: &[&str] =
    &["ssh-rsa", "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"];

fn one() -> u32 {
    1
}

fn thirty() -> u32 {
    30
}

fn on_demand() -> String {
    "ON_DEMAND".into()
}

/// A node taint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaintSpec {
    /// Key.
    pub key: String,
    /// Value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `NO_SCHEDULE`, `NO_EXECUTE` or `PREFER_NO_SCHEDULE`.
    pub effect: String,
}

/// An EKS addon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddonSpec {
    /// Addon name (`vpc-cni`, `coredns`, ...).
    pub name: String,
    /// A version, `latest`, or absent for EKS's default for the cluster version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Configuration values (JSON schema of the addon).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_values: Option<serde_json::Value>,
    /// `OVERWRITE`, `NONE` or `PRESERVE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolve_conflicts: Option<String>,
    /// Managed policies for the addon's service-account role (IRSA); none (and no `well_known`) means no role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    /// Well-known permission sets for the same role (eksctl's `wellKnownPolicies`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub well_known: Vec<WellKnownPolicy>,
    /// An IAM policy document of the addon's own for the same role (eksctl's `attachPolicy`), kept as the
    /// role's inline policy [`OWN_POLICY_NAME`], as a service account's `policy_document` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_document: Option<serde_json::Value>,
    /// Tags of the addon itself, over the environment's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

impl AddonSpec {
    /// Whether the spec gives the addon permissions of its own (an IRSA role for its service account).
    pub fn has_policies(&self) -> bool {
        !self.policies.is_empty() || !self.well_known.is_empty() || self.policy_document.is_some()
    }
}

/// Who may do what: IAM roles for the cluster, nodes and service accounts, and Kubernetes access.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessSpec {
    /// Options for the IAM roles eksodus creates.
    #[serde(default)]
    pub iam: IamSpec,
    /// The cluster's OIDC issuer URL; normally read from the cluster, given here to plan IRSA before it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_issuer: Option<String>,
    /// IAM roles for service accounts (IRSA).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<ServiceAccountRole>,
    /// EKS Pod Identity: a role for a service account, bound by an association (no OIDC provider needed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pod_identities: Vec<ServiceAccountRole>,
    /// aws-auth mappings eksodus manages (others' entries are never touched).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mappings: Vec<MappingSpec>,
    /// AWS accounts whose every IAM identity may authenticate, each as its own ARN with no groups (aws-auth
    /// `mapAccounts`; RBAC bindings to those names decide what they may do). aws-auth only: access entries
    /// have no equivalent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<String>,
    /// AWS services let into a namespace through their service-linked role (eksctl's `iamIdentityMappings[]`
    /// with `serviceName`): the aws-auth mapping and the RBAC the service documents.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_access: Vec<ServiceAccessSpec>,
    /// EKS access entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<AccessEntrySpec>,
    /// The cluster's authentication mode; it only ever moves towards `API`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_mode: Option<AuthenticationMode>,
}

/// Options for the IAM roles eksodus creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IamSpec {
    /// IAM path of every role (`/` to `/a/b/`); the environment name is appended.
    #[serde(default = "default_iam_path")]
    pub path: String,
    /// Permissions boundary policy ARN put on every role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions_boundary: Option<String>,
    /// Give the VPC CNI (`kube-system/aws-node`) its own IRSA role instead of the CNI policy on the node role.
    #[serde(default)]
    pub cni_irsa: bool,
}

fn default_iam_path() -> String {
    "/eksodus/".into()
}

impl Default for IamSpec {
    fn default() -> Self {
        IamSpec { path: default_iam_path(), permissions_boundary: None, cni_irsa: false }
    }
}

/// An IAM role assumed by one Kubernetes service account: through the cluster's OIDC provider (IRSA,
/// `access.service_accounts`) or through an EKS Pod Identity association (`access.pod_identities`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccountRole {
    /// Namespace of the service account.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Managed policy ARNs to attach.
    #[serde(default)]
    pub policies: Vec<String>,
    /// Permission sets of well-known controllers (eksctl's `wellKnownPolicies`): managed policies where AWS
    /// publishes one, inline policies on the role otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub well_known: Vec<WellKnownPolicy>,
    /// An IAM policy document of yours (`Version` and `Statement`), put on the role as its inline policy
    /// `eksodus-own` (eksctl's `attachPolicy`) and kept in step with the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_document: Option<serde_json::Value>,
    /// A role of yours (eksctl's `attachRoleARN` / `roleARN`): eksodus makes no role and gives no policy, and
    /// the service account (or the association) uses this one, whose trust policy is yours to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// Make the Kubernetes service account too, in its namespace (made if missing; never deleted), labelled
    /// `eksodus.io/environment` so it is known as eksodus's; an IRSA one carries the
    /// `eks.amazonaws.com/role-arn` annotation. One that exists without that label is the user's: it is
    /// left alone and reported (eksctl's default without `--override-existing-serviceaccounts`). One eksodus
    /// made and the spec no longer lists is deleted.
    #[serde(default, skip_serializing_if = "is_false")]
    pub create_service_account: bool,
    /// Labels of the service account eksodus makes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations of the service account eksodus makes (its role annotation is eksodus's own).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Pod Identity only: a role in another account the pod's credentials are for, assumed through `role_arn`
    /// (or the role eksodus makes), which must be allowed to assume it (`targetRoleArn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_role_arn: Option<String>,
    /// Pod Identity only: leave out the session tags EKS adds to the credentials (`disableSessionTags`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub disable_session_tags: bool,
}

impl ServiceAccountRole {
    /// Whether eksodus makes the role (no `role_arn` of the user's).
    pub fn makes_role(&self) -> bool {
        self.role_arn.is_none()
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The annotation of an IRSA service account naming its role.
pub const IRSA_ROLE_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

/// The label that marks a Kubernetes object eksodus made, with its environment's name as the value.
pub const OWNER_LABEL: &str = "eksodus.io/environment";

/// The retention periods CloudWatch Logs takes, in days (its `PutRetentionPolicy` API reference).
pub const LOG_RETENTION_DAYS: &[u32] =
    &[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

/// The name of the inline policy that holds a service account role's own `policy_document`.
pub const OWN_POLICY_NAME: &str = "eksodus-own";

/// The permissions a well-known controller or add-on needs, by name (eksctl's `wellKnownPolicies` and
/// `withAddonPolicies`). Each stands for AWS managed policies and/or inline statements kept as data in
/// `eksodus-access` with their source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WellKnownPolicy {
    /// Push and pull images in ECR (`AmazonEC2ContainerRegistryPowerUser`).
    ImageBuilder,
    /// The cluster autoscaler: read and scale Auto Scaling groups.
    AutoScaler,
    /// The AWS Load Balancer Controller: load balancers, target groups and their security groups.
    AwsLoadBalancerController,
    /// external-dns: change records in Route 53 hosted zones.
    ExternalDns,
    /// cert-manager: DNS-01 challenges in Route 53.
    CertManager,
    /// The EBS CSI driver (`AmazonEBSCSIDriverPolicy`).
    EbsCsiController,
    /// The EFS CSI driver: access points tagged for it.
    EfsCsiController,
    /// EFS: the whole file system API and the ENIs its mount targets use.
    Efs,
    /// FSx: the whole FSx API and its service-linked roles.
    Fsx,
    /// App Mesh controller.
    AppMesh,
    /// App Mesh controller (preview API).
    AppMeshPreview,
    /// AWS X-Ray daemon.
    #[serde(rename = "xray")]
    XRay,
    /// CloudWatch agent (`CloudWatchAgentServerPolicy`).
    CloudWatch,
}

impl WellKnownPolicy {
    /// Every set, in a fixed order.
    pub const ALL: &'static [WellKnownPolicy] = &[
        WellKnownPolicy::ImageBuilder,
        WellKnownPolicy::AutoScaler,
        WellKnownPolicy::AwsLoadBalancerController,
        WellKnownPolicy::ExternalDns,
        WellKnownPolicy::CertManager,
        WellKnownPolicy::EbsCsiController,
        WellKnownPolicy::EfsCsiController,
        WellKnownPolicy::Efs,
        WellKnownPolicy::Fsx,
        WellKnownPolicy::AppMesh,
        WellKnownPolicy::AppMeshPreview,
        WellKnownPolicy::XRay,
        WellKnownPolicy::CloudWatch,
    ];

    /// The name as written in a spec (`external-dns`).
    pub fn name(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
    }
}

/// An AWS service let into one namespace of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccessSpec {
    /// The service: `emr-containers` (EMR on EKS).
    pub service: String,
    /// The namespace it works in (it must exist).
    pub namespace: String,
}

/// Services [`ServiceAccessSpec`] knows: name, the service-linked role it maps, the Kubernetes username.
pub const SERVICE_ACCESS: &[(&str, &str, &str)] =
    &[("emr-containers", "AWSServiceRoleForAmazonEMRContainers", "emr-containers")];

/// One aws-auth mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingSpec {
    /// IAM role ARN (give this or `userarn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolearn: Option<String>,
    /// IAM user ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userarn: Option<String>,
    /// Kubernetes username (templates like `{{SessionName}}` allowed).
    pub username: String,
    /// Kubernetes groups.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// One EKS access entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessEntrySpec {
    /// IAM principal ARN.
    pub principal_arn: String,
    /// `STANDARD`, `EC2_LINUX`, `EC2_WINDOWS`, `FARGATE_LINUX` or `HYBRID_LINUX`.
    #[serde(rename = "type", default = "default_entry_type")]
    pub entry_type: String,
    /// Kubernetes groups (STANDARD only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kubernetes_groups: Vec<String>,
    /// Kubernetes username (STANDARD only; EKS picks one when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Access policies to associate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<PolicyAssociationSpec>,
}

fn default_entry_type() -> String {
    "STANDARD".into()
}

/// An access policy associated with an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyAssociationSpec {
    /// Policy name (`AmazonEKSClusterAdminPolicy`) or ARN.
    pub policy: String,
    /// Namespaces it applies to; empty means the whole cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
}

/// The EKS authentication mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthenticationMode {
    /// Only the aws-auth ConfigMap.
    ConfigMap,
    /// Access entries and the ConfigMap.
    ApiAndConfigMap,
    /// Only access entries.
    Api,
}

impl AuthenticationMode {
    /// Whether aws-auth is read in this mode.
    pub fn reads_config_map(self) -> bool {
        self != AuthenticationMode::Api
    }
    /// Whether access entries are read in this mode.
    pub fn reads_access_entries(self) -> bool {
        self != AuthenticationMode::ConfigMap
    }
    /// The EKS API name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthenticationMode::ConfigMap => "CONFIG_MAP",
            AuthenticationMode::ApiAndConfigMap => "API_AND_CONFIG_MAP",
            AuthenticationMode::Api => "API",
        }
    }
    /// Parses the EKS API name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "CONFIG_MAP" => Some(AuthenticationMode::ConfigMap),
            "API_AND_CONFIG_MAP" => Some(AuthenticationMode::ApiAndConfigMap),
            "API" => Some(AuthenticationMode::Api),
            _ => None,
        }
    }
}

/// The VPC layer of an environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// Primary VPC CIDR, a prefix from /16 to /24. Required unless `existing` adopts a VPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<Ipv4Net>,
    /// Availability zones: a count (the region's first zones, asked of EC2 at plan time) or explicit names.
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
    /// Dual-stack subnets (eksctl's `vpc.autoAllocateIPv6`): the VPC gets an Amazon-provided IPv6 /56, every
    /// subnet a /64 of it, and the public route table an IPv6 default route to the internet gateway. The
    /// cluster itself stays IPv4 unless `cluster.ip_family` is `ipv6`, which implies this; only a VPC eksodus
    /// makes can have it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ipv6: bool,
    /// How instances launched into the subnets are named in DNS (eksctl's `vpc.hostnameType`); only a VPC
    /// eksodus makes can have it.
    #[serde(default, skip_serializing_if = "HostnameType::is_default")]
    pub hostname_type: HostnameType,
    /// VPC endpoints of AWS services, for a private cluster whose nodes have no route to the internet
    /// (eksctl's `privateCluster`): interface endpoints in the private subnets with private DNS, reached on
    /// port 443 from the VPC, and S3 as a gateway endpoint on the private route tables. Nodes without NAT
    /// need at least [`VpcEndpointService::PRIVATE_CLUSTER`]. Only a VPC eksodus makes can have them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vpc_endpoints: Vec<VpcEndpointService>,
    /// AWS Local Zones (eksctl's `localZones`), such as `us-west-2-lax-1a`: each gets a public and a private
    /// subnet beside the availability zones', sized as theirs, for the nodegroups that name the zone in their
    /// `zones`. EKS places neither the control plane's interfaces nor Fargate pods in a Local Zone, so the
    /// cluster's subnets, Fargate profiles, interface endpoints, NAT gateways and nodegroups that name no
    /// zones stay in the availability zones; a Local Zone's private subnet reaches the internet through the
    /// first zone's NAT gateway. The account must have opted into the zone's group (checked with EC2 at plan
    /// time). Only a VPC eksodus makes, on IPv4 and without custom networking, can have them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub local_zones: Vec<String>,
}

/// An AWS service reached through a VPC endpoint, by the last part of its endpoint service name
/// (`com.amazonaws.<region>.<name>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum VpcEndpointService {
    /// EC2 (the VPC CNI's ENI calls, the node's own lookups).
    #[serde(rename = "ec2")]
    Ec2,
    /// ECR's API (image manifests).
    #[serde(rename = "ecr.api")]
    EcrApi,
    /// ECR's registry (image layers' addresses).
    #[serde(rename = "ecr.dkr")]
    EcrDkr,
    /// S3, as a gateway endpoint (ECR's image layers live in S3).
    #[serde(rename = "s3")]
    S3,
    /// STS (IAM roles for service accounts).
    #[serde(rename = "sts")]
    Sts,
    /// CloudWatch Logs.
    #[serde(rename = "logs")]
    Logs,
    /// Elastic Load Balancing (the AWS Load Balancer Controller).
    #[serde(rename = "elasticloadbalancing")]
    ElasticLoadBalancing,
    /// EC2 Auto Scaling (the cluster autoscaler).
    #[serde(rename = "autoscaling")]
    Autoscaling,
    /// CloudFormation.
    #[serde(rename = "cloudformation")]
    CloudFormation,
    /// EKS Pod Identity's credentials.
    #[serde(rename = "eks-auth")]
    EksAuth,
    /// Systems Manager (Session Manager instead of SSH), with `ssmmessages` and `ec2messages`.
    #[serde(rename = "ssm")]
    Ssm,
    /// Session Manager's channels.
    #[serde(rename = "ssmmessages")]
    SsmMessages,
    /// Systems Manager's agent messages.
    #[serde(rename = "ec2messages")]
    Ec2Messages,
    /// Secrets Manager.
    #[serde(rename = "secretsmanager")]
    SecretsManager,
    /// KMS.
    #[serde(rename = "kms")]
    Kms,
}

impl VpcEndpointService {
    /// What nodes without a route to the internet need to join and pull images: eksctl's required endpoint
    /// services for a fully-private cluster (its `endpoint_service.go`), as the EKS user guide's private
    /// cluster requirements list them.
    pub const PRIVATE_CLUSTER: &'static [VpcEndpointService] = &[
        VpcEndpointService::Ec2,
        VpcEndpointService::EcrApi,
        VpcEndpointService::EcrDkr,
        VpcEndpointService::S3,
        VpcEndpointService::Sts,
    ];

    /// The name in specs and endpoint service names.
    pub fn as_str(self) -> &'static str {
        match self {
            VpcEndpointService::Ec2 => "ec2",
            VpcEndpointService::EcrApi => "ecr.api",
            VpcEndpointService::EcrDkr => "ecr.dkr",
            VpcEndpointService::S3 => "s3",
            VpcEndpointService::Sts => "sts",
            VpcEndpointService::Logs => "logs",
            VpcEndpointService::ElasticLoadBalancing => "elasticloadbalancing",
            VpcEndpointService::Autoscaling => "autoscaling",
            VpcEndpointService::CloudFormation => "cloudformation",
            VpcEndpointService::EksAuth => "eks-auth",
            VpcEndpointService::Ssm => "ssm",
            VpcEndpointService::SsmMessages => "ssmmessages",
            VpcEndpointService::Ec2Messages => "ec2messages",
            VpcEndpointService::SecretsManager => "secretsmanager",
            VpcEndpointService::Kms => "kms",
        }
    }

    /// Its endpoint service name in `region`. In the China regions the services eksctl's table marks carry a
    /// `cn.` prefix.
    pub fn service_name(self, region: &str) -> String {
        let china = region.starts_with("cn-")
            && matches!(
                self,
                VpcEndpointService::Ec2
                    | VpcEndpointService::EcrApi
                    | VpcEndpointService::EcrDkr
                    | VpcEndpointService::Sts
                    | VpcEndpointService::CloudFormation
            );
        format!("{}com.amazonaws.{region}.{}", if china { "cn." } else { "" }, self.as_str())
    }

    /// Whether eksodus makes it as a gateway endpoint (S3: free, and routes rather than interfaces).
    pub fn is_gateway(self) -> bool {
        self == VpcEndpointService::S3
    }
}

impl fmt::Display for VpcEndpointService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The hostname type of instances launched into a subnet (its `PrivateDnsHostnameTypeOnLaunch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostnameType {
    /// Named after the private IPv4 address (`ip-10-0-1-5.<region>.compute.internal`), EC2's default.
    #[default]
    IpName,
    /// Named after the instance ID (`i-0123456789abcdef0.<region>.compute.internal`).
    ResourceName,
}

impl HostnameType {
    /// EC2's name of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            HostnameType::IpName => "ip-name",
            HostnameType::ResourceName => "resource-name",
        }
    }

    /// Whether this is EC2's default.
    pub fn is_default(&self) -> bool {
        *self == HostnameType::IpName
    }
}

/// Availability zones as a count or as names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AzSpec {
    /// This many zones: the region's first ones by name as EC2 lists them, resolved at plan time (offline, the
    /// region's name with the suffixes `a`, `b`, `c`, ...).
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

/// An OIDC identity provider of the cluster (EKS `AssociateIdentityProviderConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityProviderSpec {
    /// The configuration's name in EKS.
    pub name: String,
    /// The issuer URL (`https://`, as in the provider's discovery document).
    pub issuer_url: String,
    /// The client ID the provider issues ID tokens for.
    pub client_id: String,
    /// The claim holding the username (`sub` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_claim: Option<String>,
    /// Prefix put before usernames (may not start with `system:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_prefix: Option<String>,
    /// The claim holding the groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_claim: Option<String>,
    /// Prefix put before groups (may not start with `system:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_prefix: Option<String>,
    /// Claims a token must carry with these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub required_claims: BTreeMap<String, String>,
}

/// An existing VPC to adopt: eksodus never deletes what it adopts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExistingNetwork {
    /// The VPC ID (`vpc-...`).
    pub vpc_id: String,
    /// Subnet IDs (`subnet-...`); with `subnet_cidrs`, in at least two zones.
    #[serde(default)]
    pub subnet_ids: Vec<String>,
    /// More subnets of the VPC, named by their CIDR block instead of their ID (eksctl's `vpc.subnets`
    /// entries that give only a `cidr`): looked up in the VPC when planning, an error naming the entry when
    /// no subnet of the VPC has that block.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnet_cidrs: Vec<Ipv4Net>,
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
        // serde_path_to_error runs inside the deserializer's closure; the path it found is carried out beside the
        // YAML error, which is what the closure must return.
        let mut path = String::new();
        serde_saphyr::with_deserializer_from_str(text, |de| {
            serde_path_to_error::deserialize(de).map_err(|e| {
                let p = e.path().to_string();
                path = if p == "." { String::new() } else { p };
                e.into_inner()
            })
        })
        .map_err(|e| Error::Parse { path, message: e.to_string() })
    }

    /// Whether the cluster's pods and services are IPv6 (`cluster.ip_family`).
    pub fn ipv6_cluster(&self) -> bool {
        self.cluster.as_ref().is_some_and(|c| c.ip_family == IpFamily::Ipv6)
    }

    /// Whether the subnets eksodus makes are dual-stack: asked for (`network.ipv6`), or needed by an IPv6
    /// cluster.
    pub fn dual_stack(&self) -> bool {
        self.network.ipv6 || self.ipv6_cluster()
    }

    /// The availability zone names: explicit ones, or the region followed by `a`, `b`, ... (offline; a plan asks
    /// EC2 which zones a count stands for, as letters name zones some regions do not have).
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
        if let Some(a) = &self.access {
            validate_access(a, &mut errs);
        }
        if let Some(c) = &self.cluster {
            // zones given as a count are named by EC2 at plan time, where the nodegroups' zones are checked again
            let zones = matches!(self.network.azs, AzSpec::Names(_)).then(|| {
                self.az_names().into_iter().chain(self.network.local_zones.iter().cloned()).collect::<Vec<_>>()
            });
            validate_cluster(c, zones.as_deref(), self.network.existing.is_some(), &mut errs);
            self.validate_nodegroup_subnets(c, &mut errs);
            if c.ip_family == IpFamily::Ipv6 {
                self.validate_ipv6_cluster(c, &mut errs);
            }
            if let Some(a) = &c.auto_mode {
                self.validate_auto_mode(a, &mut errs);
            }
            self.validate_fargate_profiles(c, &mut errs);
            self.validate_capabilities(c, &mut errs);
            if let Some(r) = &c.remote_network {
                self.validate_remote_network(c, r, &mut errs);
            }
            self.validate_windows(c, &mut errs);
        }
        errs
    }

    /// Fargate profiles as EKS takes them (the CreateFargateProfile API reference and EKS's Fargate
    /// considerations): unique names, one to five selectors of a namespace and at most five labels each, private
    /// subnets (of an adopted VPC when named), and a role ARN when one is given.
    fn validate_fargate_profiles(&self, c: &ClusterSpec, errs: &mut Vec<FieldError>) {
        let ps = &c.fargate_profiles;
        if ps.len() > MAX_FARGATE_PROFILES {
            errs.push(FieldError::new(
                "cluster.fargate_profiles",
                format!("EKS allows {MAX_FARGATE_PROFILES} Fargate profiles per cluster, {} are given", ps.len()),
            ));
        }
        if !ps.is_empty() && self.network.existing.is_none() && !self.network.subnets.private.enabled {
            errs.push(FieldError::new(
                "cluster.fargate_profiles",
                "Fargate runs pods in private subnets only, and network.subnets.private is turned off",
            ));
        }
        let mut names = BTreeSet::new();
        for (i, p) in ps.iter().enumerate() {
            let at = |f: &str| format!("cluster.fargate_profiles[{i}].{f}");
            if !is_eks_name(&p.name) {
                errs.push(FieldError::new(
                    at("name"),
                    format!("`{}` must be 1 to 100 letters, digits, - and _, starting with a letter or digit", p.name),
                ));
            } else if !names.insert(&p.name) {
                errs.push(FieldError::new(at("name"), format!("`{}` is named twice", p.name)));
            }
            if p.selectors.is_empty() || p.selectors.len() > 5 {
                errs.push(FieldError::new(
                    at("selectors"),
                    format!("a profile takes one to five selectors, {} are given", p.selectors.len()),
                ));
            }
            for (j, s) in p.selectors.iter().enumerate() {
                let pattern = s.namespace.replace(['*', '?'], "a");
                if s.namespace.is_empty() || !(is_dns_label(&pattern) || s.namespace.chars().all(|c| c == '*')) {
                    errs.push(FieldError::new(
                        at(&format!("selectors[{j}].namespace")),
                        format!("`{}` is not a namespace or a pattern of one (* and ?)", s.namespace),
                    ));
                }
                if s.labels.len() > 5 {
                    errs.push(FieldError::new(
                        at(&format!("selectors[{j}].labels")),
                        format!("a selector takes at most five labels, {} are given", s.labels.len()),
                    ));
                }
            }
            if !p.subnets.is_empty() {
                match &self.network.existing {
                    None => errs.push(FieldError::new(
                        at("subnets"),
                        "subnets are named only in an adopted VPC (network.existing); in the VPC eksodus makes, profiles use its private subnets",
                    )),
                    Some(e) => {
                        for (j, s) in p.subnets.iter().enumerate() {
                            let known = e.subnet_ids.contains(s)
                                || s.parse::<Ipv4Net>().is_ok_and(|c| e.subnet_cidrs.contains(&c));
                            if !known {
                                errs.push(FieldError::new(
                                    at(&format!("subnets[{j}]")),
                                    format!("`{s}` is neither an ID of network.existing.subnet_ids nor a block of network.existing.subnet_cidrs"),
                                ));
                            }
                        }
                    }
                }
            }
            if let Some(r) = &p.pod_execution_role_arn {
                if !is_iam_arn(r, "role") {
                    errs.push(FieldError::new(at("pod_execution_role_arn"), format!("`{r}` is not an IAM role ARN")));
                }
            }
            let mut tag_errs = Vec::new();
            validate_tags(&p.tags, &mut tag_errs);
            errs.extend(tag_errs.into_iter().map(|e| FieldError::new(at(&e.path), e.message)));
        }
    }

    /// Hybrid nodes' networks as EKS takes them (the `RemoteNodeNetwork` API reference): network addresses of
    /// RFC 1918 blocks that overlap neither each other, the VPC's blocks, nor the services' block; an IPv4
    /// cluster; an authentication mode with access entries (the nodes' role gets one); a role ARN when one
    /// is given, which no entry of `access.entries` names too.
    fn validate_remote_network(&self, c: &ClusterSpec, r: &RemoteNetworkSpec, errs: &mut Vec<FieldError>) {
        let at = |f: &str| format!("cluster.remote_network.{f}");
        if r.node_cidrs.is_empty() {
            errs.push(FieldError::new(at("node_cidrs"), "name the networks the hybrid nodes are in"));
        }
        if c.ip_family == IpFamily::Ipv6 {
            errs.push(FieldError::new(
                "cluster.remote_network",
                "EKS Hybrid Nodes join IPv4 clusters only, and cluster.ip_family is ipv6",
            ));
        }
        if self.access.as_ref().and_then(|a| a.authentication_mode) == Some(AuthenticationMode::ConfigMap) {
            errs.push(FieldError::new(
                "cluster.remote_network",
                "hybrid nodes are let in through a HYBRID_LINUX access entry, and authentication mode CONFIG_MAP has none: use API_AND_CONFIG_MAP or API",
            ));
        }
        let private: Vec<Ipv4Net> = RFC1918.iter().map(|c| c.parse().expect("a CIDR")).collect();
        // the blocks EKS keeps hybrid networks apart from, as far as the spec knows them
        let mut taken: Vec<(String, Ipv4Net)> = Vec::new();
        if let Some(v) = self.network.cidr {
            taken.push(("the VPC's block (network.cidr)".into(), v));
        }
        if let Some(cn) = &self.network.cni.custom_networking {
            taken
                .push(("the pods' VPC block (network.cni.custom_networking.secondary_cidr)".into(), cn.secondary_cidr));
        }
        if let Some(e) = &self.network.existing {
            taken.extend(e.subnet_cidrs.iter().map(|s| (format!("the VPC's subnet {s}"), *s)));
        }
        match (c.service_ipv4_cidr, self.network.cidr) {
            (Some(s), _) => taken.push(("the services' block (cluster.service_ipv4_cidr)".into(), s)),
            (None, Some(v)) => taken.push((
                format!("the services' block EKS picks for this VPC ({})", default_service_cidr(v)),
                default_service_cidr(v),
            )),
            (None, None) => {}
        }
        let named = r.node_cidrs.iter().enumerate().map(|(i, n)| (at(&format!("node_cidrs[{i}]")), n));
        let named: Vec<(String, &Ipv4Net)> =
            named.chain(r.pod_cidrs.iter().enumerate().map(|(i, n)| (at(&format!("pod_cidrs[{i}]")), n))).collect();
        for (i, (path, n)) in named.iter().enumerate() {
            if n.trunc() != **n {
                errs.push(FieldError::new(path, format!("`{n}` has host bits set: the network is {}", n.trunc())));
                continue;
            }
            if !private.iter().any(|p| p.contains(*n)) {
                errs.push(FieldError::new(
                    path,
                    format!(
                        "`{n}` is not in a private range of RFC 1918 ({}), which EKS requires of hybrid networks",
                        RFC1918.join(", ")
                    ),
                ));
                continue;
            }
            if let Some((what, _)) = taken.iter().find(|(_, t)| overlaps(t, n)) {
                errs.push(FieldError::new(path, format!("`{n}` overlaps {what}")));
            }
            if let Some((other, _)) = named[..i].iter().find(|(_, m)| overlaps(m, n)) {
                errs.push(FieldError::new(path, format!("`{n}` overlaps {other}")));
            }
        }
        if let Some(role) = &r.role_arn {
            if !is_iam_arn(role, "role") {
                errs.push(FieldError::new(at("role_arn"), format!("`{role}` is not an IAM role ARN")));
            }
            let entries = self.access.iter().flat_map(|a| &a.entries);
            if let Some(i) = entries.clone().position(|e| &e.principal_arn == role) {
                errs.push(FieldError::new(
                    format!("access.entries[{i}]"),
                    "eksodus makes the access entry of the hybrid nodes' role (cluster.remote_network.role_arn) itself: leave this one out",
                ));
            }
        }
    }

    /// Capabilities as EKS takes them (the CreateCapability API reference): unique names of 1 to 100 letters,
    /// digits, `-` and `_`, one capability of each type, an IAM role ARN when one is given (policies to attach
    /// only to a role eksodus makes), Argo CD's settings for `ARGOCD` alone, and access entries to let the role
    /// in (an authentication mode other than `CONFIG_MAP`).
    fn validate_capabilities(&self, c: &ClusterSpec, errs: &mut Vec<FieldError>) {
        let caps = &c.capabilities;
        if caps.is_empty() {
            return;
        }
        if self.access.as_ref().and_then(|a| a.authentication_mode) == Some(AuthenticationMode::ConfigMap) {
            errs.push(FieldError::new(
                "cluster.capabilities",
                "EKS lets a capability's role into the cluster through an access entry, and authentication mode CONFIG_MAP has none: use API_AND_CONFIG_MAP or API",
            ));
        }
        let mut names = BTreeSet::new();
        let mut kinds = BTreeMap::new();
        for (i, p) in caps.iter().enumerate() {
            let at = |f: &str| format!("cluster.capabilities[{i}].{f}");
            if !is_eks_name(&p.name) {
                errs.push(FieldError::new(
                    at("name"),
                    format!("`{}` must be 1 to 100 letters, digits, - and _, starting with a letter or digit", p.name),
                ));
            } else if !names.insert(&p.name) {
                errs.push(FieldError::new(at("name"), format!("`{}` is named twice", p.name)));
            }
            if let Some(first) = kinds.insert(p.kind, i) {
                errs.push(FieldError::new(
                    at("type"),
                    format!(
                        "EKS runs one capability of each type per cluster, and cluster.capabilities[{first}] is {} too",
                        p.kind.as_str()
                    ),
                ));
            }
            match &p.role_arn {
                Some(r) if !is_iam_arn(r, "role") => {
                    errs.push(FieldError::new(at("role_arn"), format!("`{r}` is not an IAM role ARN")))
                }
                Some(_) if !p.attach_policy_arns.is_empty() => errs.push(FieldError::new(
                    at("attach_policy_arns"),
                    "policies are attached to the role eksodus makes; a role of yours (role_arn) keeps the policies you gave it",
                )),
                _ => {}
            }
            for (j, a) in p.attach_policy_arns.iter().enumerate() {
                if !is_iam_arn(a, "policy") {
                    errs.push(FieldError::new(
                        at(&format!("attach_policy_arns[{j}]")),
                        format!("`{a}` is not an IAM policy ARN"),
                    ));
                }
            }
            for (j, ap) in p.access_policies.iter().enumerate() {
                if ap.policy.is_empty()
                    || (ap.policy.starts_with("arn:") && !ap.policy.contains(":cluster-access-policy/"))
                {
                    errs.push(FieldError::new(
                        at(&format!("access_policies[{j}].policy")),
                        format!("`{}` is not an EKS access policy name or ARN", ap.policy),
                    ));
                }
                for (k, ns) in ap.namespaces.iter().enumerate() {
                    if !is_dns_label(ns) {
                        errs.push(FieldError::new(
                            at(&format!("access_policies[{j}].namespaces[{k}]")),
                            format!("`{ns}` is not a Kubernetes namespace name"),
                        ));
                    }
                }
            }
            match (&p.argocd, p.kind) {
                (None, CapabilityKind::ArgoCd) => errs.push(FieldError::new(
                    at("argocd"),
                    "an ARGOCD capability needs its settings: at least argocd.idc_instance_arn, the IAM Identity Center people sign in to Argo CD through",
                )),
                (Some(_), k) if k != CapabilityKind::ArgoCd => errs.push(FieldError::new(
                    at("argocd"),
                    format!("Argo CD's settings are for an ARGOCD capability, and this one is {}", k.as_str()),
                )),
                (Some(a), _) => validate_argocd(a, &at, errs),
                (None, _) => {}
            }
            let mut tag_errs = Vec::new();
            validate_tags(&p.tags, &mut tag_errs);
            errs.extend(tag_errs.into_iter().map(|e| FieldError::new(at(&e.path), e.message)));
        }
    }

    /// Auto Mode's pools and role, as EKS takes them (and eksctl's `ValidateAutoModeConfig` checks).
    fn validate_auto_mode(&self, a: &AutoModeSpec, errs: &mut Vec<FieldError>) {
        let mut seen = BTreeSet::new();
        for (i, p) in a.node_pools.iter().enumerate() {
            if !AUTO_MODE_NODE_POOLS.contains(&p.as_str()) {
                errs.push(FieldError::new(
                    format!("cluster.auto_mode.node_pools[{i}]"),
                    format!("`{p}` is not a built-in node pool ({})", AUTO_MODE_NODE_POOLS.join(", ")),
                ));
            } else if !seen.insert(p) {
                errs.push(FieldError::new(
                    format!("cluster.auto_mode.node_pools[{i}]"),
                    format!("`{p}` is named twice"),
                ));
            }
        }
        if let Some(r) = &a.node_role_arn {
            if a.node_pools.is_empty() {
                errs.push(FieldError::new(
                    "cluster.auto_mode.node_role_arn",
                    "the role is for the built-in node pools' nodes, and none are named",
                ));
            } else if !(r.starts_with("arn:") && r.contains(":iam::") && r.contains(":role/")) {
                errs.push(FieldError::new("cluster.auto_mode.node_role_arn", format!("`{r}` is not an IAM role ARN")));
            }
        }
        let mode = self.access.as_ref().and_then(|x| x.authentication_mode);
        if mode == Some(AuthenticationMode::ConfigMap) {
            errs.push(FieldError::new(
                "access.authentication_mode",
                "Auto Mode gives its nodes access through access entries, which CONFIG_MAP does not have",
            ));
        }
    }

    /// What an IPv6 cluster rules out (EKS's IPv6 considerations).
    fn validate_ipv6_cluster(&self, c: &ClusterSpec, errs: &mut Vec<FieldError>) {
        if c.service_ipv4_cidr.is_some() {
            errs.push(FieldError::new(
                "cluster.service_ipv4_cidr",
                "an IPv6 cluster's services take addresses EKS picks from fc00::/7; leave it unset",
            ));
        }
        if self.network.cni.custom_networking.is_some() {
            errs.push(FieldError::new(
                "network.cni.custom_networking",
                "in an IPv6 cluster pods take addresses from their node subnet's IPv6 block, so IPv4 pod subnets have nothing to do",
            ));
        }
        if parse_version(&self.network.cni.version).is_some_and(|v| v < (1, 10)) {
            errs.push(FieldError::new(
                "network.cni.version",
                format!("IPv6 clusters need VPC CNI 1.10.1 or later, not {}", self.network.cni.version),
            ));
        }
        for (i, n) in c.nodegroups.iter().enumerate() {
            if n.ami_type.as_deref().is_some_and(|t| t.starts_with("WINDOWS")) {
                errs.push(FieldError::new(
                    format!("cluster.nodegroups[{i}].ami_type"),
                    "IPv6 clusters run Linux nodes only (EKS has no IPv6 Windows pods)",
                ));
            }
        }
    }

    /// Windows nodegroups: a Windows AMI type EKS has, beside something that runs the cluster's Linux-only
    /// system pods (CoreDNS), and none of what EKS's Windows nodes lack (custom networking; SSH through a group
    /// of eksodus's, which opens port 22 where Windows takes RDP on 3389). IPv6 is refused with the IPv6
    /// cluster's checks.
    fn validate_windows(&self, c: &ClusterSpec, errs: &mut Vec<FieldError>) {
        let linux_runs_system_pods = c.nodegroups.iter().any(|n| !n.is_windows())
            || c.auto_mode.is_some()
            || c.fargate_profiles.iter().any(|f| f.selectors.iter().any(|s| s.namespace == "kube-system"));
        for (i, n) in c.nodegroups.iter().enumerate().filter(|(_, n)| n.is_windows()) {
            let at = |f: &str| format!("cluster.nodegroups[{i}].{f}");
            let t = n.ami_type.as_deref().unwrap_or_default();
            if !WINDOWS_AMI_TYPES.contains(&t) {
                errs.push(FieldError::new(
                    at("ami_type"),
                    format!("`{t}` is not a Windows AMI type EKS has ({})", WINDOWS_AMI_TYPES.join(", ")),
                ));
            }
            if !linux_runs_system_pods {
                errs.push(FieldError::new(
                    at("ami_type"),
                    "CoreDNS and the other system pods run on Linux only: add a Linux nodegroup (or a Fargate profile for kube-system) beside the Windows ones",
                ));
            }
            if self.network.cni.custom_networking.is_some() {
                errs.push(FieldError::new(
                    at("ami_type"),
                    "Windows nodes cannot use custom networking (network.cni.custom_networking): EKS gives their pods addresses of the node's own subnet",
                ));
            }
            if n.ssh.is_some() && n.owns_template() {
                errs.push(FieldError::new(
                    at("ssh"),
                    "eksodus's SSH group opens port 22, and Windows nodes take RDP on 3389: name source_security_groups alone (EKS's remote access opens 3389 to them), or reach the nodes through SSM",
                ));
            }
        }
    }

    /// A nodegroup's own subnets: only in an adopted VPC, and each one of the subnets adopted.
    fn validate_nodegroup_subnets(&self, c: &ClusterSpec, errs: &mut Vec<FieldError>) {
        for (i, n) in c.nodegroups.iter().enumerate() {
            if n.subnets.is_empty() {
                continue;
            }
            let Some(e) = &self.network.existing else {
                errs.push(FieldError::new(
                    format!("cluster.nodegroups[{i}].subnets"),
                    "subnets are named only in an adopted VPC (network.existing); in the VPC eksodus makes, choose them with zones and public",
                ));
                continue;
            };
            if !n.zones.is_empty() {
                errs.push(FieldError::new(
                    format!("cluster.nodegroups[{i}].subnets"),
                    "give subnets or zones, not both",
                ));
            }
            for (j, s) in n.subnets.iter().enumerate() {
                let known = e.subnet_ids.contains(s) || s.parse::<Ipv4Net>().is_ok_and(|c| e.subnet_cidrs.contains(&c));
                if !known {
                    errs.push(FieldError::new(
                        format!("cluster.nodegroups[{i}].subnets[{j}]"),
                        format!("`{s}` is neither an ID of network.existing.subnet_ids nor a block of network.existing.subnet_cidrs"),
                    ));
                }
            }
        }
    }

    /// Local Zones are named as EC2 names them (`<region>-<group>-<n><letter>`), apart from the availability
    /// zones, and only where eksodus lays the subnets out on IPv4 without custom networking (eksctl refuses
    /// them with a VPC of one's own and with IPv6 as well).
    fn validate_local_zones(&self, errs: &mut Vec<FieldError>) {
        let n = &self.network;
        if n.local_zones.is_empty() {
            return;
        }
        let why_not = if n.existing.is_some() {
            Some("Local Zone subnets are laid out only in a VPC eksodus makes; in an adopted VPC, name your Local Zone subnets in network.existing and a nodegroup's subnets")
        } else if self.dual_stack() {
            Some("Local Zones are laid out on IPv4 only (network.ipv6 and an IPv6 cluster are not offered with them)")
        } else if n.cni.custom_networking.is_some() {
            Some("custom networking's pod subnets are laid out in the availability zones only; leave out either")
        } else {
            None
        };
        if let Some(why) = why_not {
            errs.push(FieldError::new("network.local_zones", why));
        }
        let regional = matches!(n.azs, AzSpec::Names(_)).then(|| self.az_names()).unwrap_or_default();
        let mut seen = BTreeSet::new();
        for (i, z) in n.local_zones.iter().enumerate() {
            let at = format!("network.local_zones[{i}]");
            if !seen.insert(z) {
                errs.push(FieldError::new(at.clone(), format!("`{z}` is listed twice")));
            }
            if regional.contains(z) {
                errs.push(FieldError::new(at.clone(), format!("`{z}` is listed in network.azs as well")));
            }
            if !is_local_zone_of(z, &self.region) {
                errs.push(FieldError::new(
                    at,
                    format!("`{z}` is not a Local Zone of region {} (named like {}-lax-1a)", self.region, self.region),
                ));
            }
        }
        // as eksctl has it: a Local Zone offers other instance types and prices than the region, so one
        // nodegroup's Auto Scaling group does not span both
        for (i, ng) in self.cluster.iter().flat_map(|c| c.nodegroups.iter().enumerate()) {
            let local = ng.zones.iter().filter(|z| n.local_zones.contains(z)).count();
            if local > 0 && local < ng.zones.len() {
                errs.push(FieldError::new(
                    format!("cluster.nodegroups[{i}].zones"),
                    "a nodegroup runs in Local Zones or in availability zones, not both: split it in two",
                ));
            }
        }
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
        self.validate_local_zones(errs);
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
        let mut seen_endpoints = BTreeSet::new();
        for (i, e) in n.vpc_endpoints.iter().enumerate() {
            if !seen_endpoints.insert(*e) {
                errs.push(FieldError::new(format!("network.vpc_endpoints[{i}]"), format!("`{e}` is listed twice")));
            }
        }
        let nodes = self.cluster.as_ref().is_some_and(|c| !c.nodegroups.is_empty());
        if !n.vpc_endpoints.is_empty() && n.nat == NatMode::None && n.existing.is_none() && nodes {
            // a private cluster's nodes that cannot reach EC2, ECR, S3 or STS never join
            let missing: Vec<&str> = VpcEndpointService::PRIVATE_CLUSTER
                .iter()
                .filter(|e| !n.vpc_endpoints.contains(e))
                .map(|e| e.as_str())
                .collect();
            if !missing.is_empty() {
                errs.push(FieldError::new(
                    "network.vpc_endpoints",
                    format!(
                        "nodes without NAT reach AWS only through endpoints, and cannot join or pull images without {}",
                        missing.join(", ")
                    ),
                ));
            }
        }
        if let Some(e) = &n.existing {
            if !n.vpc_endpoints.is_empty() {
                errs.push(FieldError::new(
                    "network.vpc_endpoints",
                    "endpoints are made only in a VPC eksodus makes; an adopted VPC keeps the endpoints it has",
                ));
            }
            // eksodus never changes an adopted VPC or its subnets
            if n.ipv6 {
                errs.push(FieldError::new(
                    "network.ipv6",
                    "dual-stack subnets are made only in a VPC eksodus makes; an adopted VPC keeps the blocks it has",
                ));
            }
            if !n.hostname_type.is_default() {
                errs.push(FieldError::new(
                    "network.hostname_type",
                    "set only on subnets eksodus makes; an adopted subnet keeps its own hostname type",
                ));
            }
            if !is_aws_id(&e.vpc_id, "vpc-") {
                errs.push(FieldError::new(
                    "network.existing.vpc_id",
                    format!("`{}` is not a VPC ID (vpc-...)", e.vpc_id),
                ));
            }
            if e.subnet_ids.len() + e.subnet_cidrs.len() < 2 {
                errs.push(FieldError::new(
                    "network.existing.subnet_ids",
                    "EKS needs subnets in at least two availability zones",
                ));
            }
            let mut blocks = BTreeSet::new();
            for (i, c) in e.subnet_cidrs.iter().enumerate() {
                if c.trunc() != *c {
                    errs.push(FieldError::new(
                        format!("network.existing.subnet_cidrs[{i}]"),
                        format!("`{c}` has host bits set; a subnet's block is {}", c.trunc()),
                    ));
                } else if !blocks.insert(c) {
                    errs.push(FieldError::new(
                        format!("network.existing.subnet_cidrs[{i}]"),
                        format!("`{c}` is listed twice"),
                    ));
                }
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

/// The Kubernetes service account an EKS addon's pods run as, when the addon calls AWS APIs and so takes an
/// IRSA role (from each addon's EKS documentation).
pub fn addon_service_account(addon: &str) -> Option<(&'static str, &'static str)> {
    Some(match addon {
        "vpc-cni" => ("kube-system", "aws-node"),
        "aws-ebs-csi-driver" => ("kube-system", "ebs-csi-controller-sa"),
        "aws-efs-csi-driver" => ("kube-system", "efs-csi-controller-sa"),
        "aws-mountpoint-s3-csi-driver" => ("kube-system", "s3-csi-driver-sa"),
        "amazon-cloudwatch-observability" => ("amazon-cloudwatch", "cloudwatch-agent"),
        _ => return None,
    })
}

/// EKS's Windows AMI types (Windows Server 2019, 2022 and 2025, Core and Full; the EKS API's `AMITypes`).
pub const WINDOWS_AMI_TYPES: &[&str] = &[
    "WINDOWS_CORE_2019_x86_64",
    "WINDOWS_FULL_2019_x86_64",
    "WINDOWS_CORE_2022_x86_64",
    "WINDOWS_FULL_2022_x86_64",
    "WINDOWS_CORE_2025_x86_64",
    "WINDOWS_FULL_2025_x86_64",
];

/// Entry types EKS accepts.
pub const ACCESS_ENTRY_TYPES: &[&str] = &["STANDARD", "EC2_LINUX", "EC2_WINDOWS", "FARGATE_LINUX", "HYBRID_LINUX"];

/// Whether `arn` is an IAM ARN of a `what` (`role`, `policy`, ...): `arn:<partition>:iam::<account>:<what>/...`.
pub fn is_iam_arn(arn: &str, what: &str) -> bool {
    let p: Vec<&str> = arn.splitn(6, ':').collect();
    p.len() == 6
        && p[0] == "arn"
        && p[1].starts_with("aws")
        && p[2] == "iam"
        && p[5].starts_with(&format!("{what}/"))
        && p[5].len() > what.len() + 1
}

/// Whether two blocks share an address.
fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// EKS's names of Fargate profiles and capabilities: 1 to 100 letters, digits, `-` and `_`, starting with a
/// letter or digit.
fn is_eks_name(n: &str) -> bool {
    (1..=100).contains(&n.len())
        && n.starts_with(|c: char| c.is_ascii_alphanumeric())
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Argo CD's settings: a namespace name, an Identity Center instance ARN (`arn:<partition>:sso:::instance/...`)
/// and region, known roles with known identity types, and VPC endpoint IDs.
fn validate_argocd(a: &ArgoCdSpec, at: &dyn Fn(&str) -> String, errs: &mut Vec<FieldError>) {
    if !is_dns_label(&a.namespace) {
        errs.push(FieldError::new(
            at("argocd.namespace"),
            format!("`{}` is not a Kubernetes namespace name", a.namespace),
        ));
    }
    let p: Vec<&str> = a.idc_instance_arn.splitn(6, ':').collect();
    let idc_ok = p.len() == 6
        && p[0] == "arn"
        && p[1].starts_with("aws")
        && p[2] == "sso"
        && p[5].strip_prefix("instance/").is_some_and(|i| !i.is_empty());
    if !idc_ok {
        errs.push(FieldError::new(
            at("argocd.idc_instance_arn"),
            format!(
                "`{}` is not an IAM Identity Center instance ARN (arn:aws:sso:::instance/ssoins-...)",
                a.idc_instance_arn
            ),
        ));
    }
    if let Some(r) = a.idc_region.as_deref().filter(|r| !is_region(r)) {
        errs.push(FieldError::new(at("argocd.idc_region"), format!("`{r}` is not an AWS region name")));
    }
    let mut roles = BTreeSet::new();
    for (j, m) in a.rbac_role_mappings.iter().enumerate() {
        let at_m = |f: &str| at(&format!("argocd.rbac_role_mappings[{j}].{f}"));
        if !ARGOCD_ROLES.contains(&m.role.as_str()) {
            errs.push(FieldError::new(at_m("role"), format!("`{}` is not one of {}", m.role, ARGOCD_ROLES.join(", "))));
        } else if !roles.insert(&m.role) {
            errs.push(FieldError::new(at_m("role"), format!("{} is mapped twice: list its identities once", m.role)));
        }
        if m.identities.is_empty() {
            errs.push(FieldError::new(at_m("identities"), "a role mapping names at least one user or group"));
        }
        for (k, id) in m.identities.iter().enumerate() {
            if id.id.is_empty() {
                errs.push(FieldError::new(at_m(&format!("identities[{k}].id")), "must not be empty"));
            }
            if !SSO_IDENTITY_TYPES.contains(&id.kind.as_str()) {
                errs.push(FieldError::new(
                    at_m(&format!("identities[{k}].type")),
                    format!("`{}` is not one of {}", id.kind, SSO_IDENTITY_TYPES.join(", ")),
                ));
            }
        }
    }
    for (j, v) in a.vpce_ids.iter().enumerate() {
        if !is_aws_id(v, "vpce-") {
            errs.push(FieldError::new(at(&format!("argocd.vpce_ids[{j}]")), format!("`{v}` is not a VPC endpoint ID")));
        }
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Kubernetes label value syntax: empty, or at most 63 of `[A-Za-z0-9._-]`, alphanumeric at both ends.
fn is_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// Kubernetes label and annotation key syntax: an optional DNS subdomain prefix (at most 253) and `/`, then a
/// name like a label value but not empty.
fn label_key(k: &str) -> Result<(), String> {
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix {
        if p.is_empty() || p.len() > 253 || !p.split('.').all(is_dns_label) {
            return Err(format!("`{p}` is not a DNS subdomain prefix for the key `{k}`"));
        }
    }
    if name.is_empty() || !is_label_value(name) {
        return Err(format!("`{k}` is not a key: its name must be at most 63 of letters, digits, `-`, `_`, `.`"));
    }
    Ok(())
}

fn validate_sa_roles(list: &[ServiceAccountRole], field: &str, pod_identity: bool, errs: &mut Vec<FieldError>) {
    let mut seen = BTreeSet::new();
    for (i, sa) in list.iter().enumerate() {
        let at = |f: &str| format!("{field}[{i}].{f}");
        if !is_dns_label(&sa.namespace) {
            errs.push(FieldError::new(
                at("namespace"),
                format!("`{}` is not a Kubernetes namespace name", sa.namespace),
            ));
        }
        if !is_dns_label(&sa.name) {
            errs.push(FieldError::new(at("name"), format!("`{}` is not a Kubernetes service account name", sa.name)));
        }
        match &sa.role_arn {
            Some(r) => {
                if !is_iam_arn(r, "role") {
                    errs.push(FieldError::new(at("role_arn"), format!("`{r}` is not an IAM role ARN")));
                }
                if !sa.policies.is_empty() || !sa.well_known.is_empty() || sa.policy_document.is_some() {
                    errs.push(FieldError::new(
                        at("role_arn"),
                        "a role of yours keeps its own policies: drop policies, well_known and policy_document",
                    ));
                }
            }
            None if sa.policies.is_empty() && sa.well_known.is_empty() && sa.policy_document.is_none() => {
                errs.push(FieldError::new(
                    at("policies"),
                    "give the role policies, well_known sets, a policy_document, or a role_arn of yours",
                ));
            }
            None => {}
        }
        if let Some(t) = &sa.target_role_arn {
            if !pod_identity {
                errs.push(FieldError::new(at("target_role_arn"), "only pod identity associations take a target role"));
            } else if !is_iam_arn(t, "role") {
                errs.push(FieldError::new(at("target_role_arn"), format!("`{t}` is not an IAM role ARN")));
            }
        }
        if sa.disable_session_tags && !pod_identity {
            errs.push(FieldError::new(at("disable_session_tags"), "only pod identity associations have session tags"));
        }
        if !sa.create_service_account && (!sa.labels.is_empty() || !sa.annotations.is_empty()) {
            let f = if sa.labels.is_empty() { "annotations" } else { "labels" };
            errs.push(FieldError::new(
                at(f),
                "labels and annotations are for a service account eksodus makes: set create_service_account",
            ));
        }
        for (k, v) in &sa.labels {
            if let Err(why) = label_key(k) {
                errs.push(FieldError::new(at(&format!("labels.{k}")), why));
            } else if k == OWNER_LABEL {
                errs.push(FieldError::new(at(&format!("labels.{k}")), "this label is eksodus's own mark"));
            }
            if !is_label_value(v) {
                errs.push(FieldError::new(
                    at(&format!("labels.{k}")),
                    format!("`{v}` is not a label value (at most 63 letters, digits, `-`, `_`, `.`, alphanumeric at both ends)"),
                ));
            }
        }
        for k in sa.annotations.keys() {
            if let Err(why) = label_key(k) {
                errs.push(FieldError::new(at(&format!("annotations.{k}")), why));
            } else if k == IRSA_ROLE_ANNOTATION {
                errs.push(FieldError::new(
                    at(&format!("annotations.{k}")),
                    "eksodus writes the role annotation itself (give role_arn for a role of yours)",
                ));
            }
        }
        if !seen.insert((&sa.namespace, &sa.name)) {
            errs.push(FieldError::new(at("name"), format!("{}/{} is listed twice", sa.namespace, sa.name)));
        }
        for (j, pol) in sa.policies.iter().enumerate() {
            if !is_iam_arn(pol, "policy") {
                errs.push(FieldError::new(
                    format!("{field}[{i}].policies[{j}]"),
                    format!("`{pol}` is not an IAM policy ARN"),
                ));
            }
        }
    }
}

fn validate_access(a: &AccessSpec, errs: &mut Vec<FieldError>) {
    let p = &a.iam.path;
    if !p.starts_with('/') || !p.ends_with('/') || p.len() > 400 || p.contains("//") {
        errs.push(FieldError::new(
            "access.iam.path",
            format!("`{p}` is not an IAM path like /team/ (starts and ends with /)"),
        ));
    }
    if let Some(b) = &a.iam.permissions_boundary {
        if !is_iam_arn(b, "policy") {
            errs.push(FieldError::new("access.iam.permissions_boundary", format!("`{b}` is not an IAM policy ARN")));
        }
    }
    if let Some(i) = &a.oidc_issuer {
        if !i.starts_with("https://") {
            errs.push(FieldError::new("access.oidc_issuer", format!("`{i}` must be an https:// URL")));
        }
    }
    validate_sa_roles(&a.service_accounts, "access.service_accounts", false, errs);
    validate_sa_roles(&a.pod_identities, "access.pod_identities", true, errs);
    for (i, m) in a.mappings.iter().enumerate() {
        let at = |f: &str| format!("access.mappings[{i}].{f}");
        match (&m.rolearn, &m.userarn) {
            (Some(r), None) if !is_iam_arn(r, "role") => {
                errs.push(FieldError::new(at("rolearn"), format!("`{r}` is not an IAM role ARN")))
            }
            (None, Some(u)) if !is_iam_arn(u, "user") => {
                errs.push(FieldError::new(at("userarn"), format!("`{u}` is not an IAM user ARN")))
            }
            (Some(_), Some(_)) | (None, None) => {
                errs.push(FieldError::new(at("rolearn"), "give exactly one of rolearn and userarn"))
            }
            _ => {}
        }
        if m.username.is_empty() {
            errs.push(FieldError::new(at("username"), "must not be empty"));
        }
    }
    for (i, acct) in a.accounts.iter().enumerate() {
        if acct.len() != 12 || !acct.chars().all(|c| c.is_ascii_digit()) {
            errs.push(FieldError::new(
                format!("access.accounts[{i}]"),
                format!("`{acct}` is not a 12-digit AWS account ID"),
            ));
        } else if a.accounts[..i].contains(acct) {
            errs.push(FieldError::new(format!("access.accounts[{i}]"), format!("{acct} is listed twice")));
        }
    }
    for (i, sa) in a.service_access.iter().enumerate() {
        if !SERVICE_ACCESS.iter().any(|(n, _, _)| *n == sa.service) {
            errs.push(FieldError::new(
                format!("access.service_access[{i}].service"),
                format!(
                    "`{}` is not one of {}",
                    sa.service,
                    SERVICE_ACCESS.iter().map(|(n, _, _)| *n).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        if !is_dns_label(&sa.namespace) {
            errs.push(FieldError::new(
                format!("access.service_access[{i}].namespace"),
                format!("`{}` is not a Kubernetes namespace name", sa.namespace),
            ));
        }
    }
    if !a.service_access.is_empty() && a.authentication_mode == Some(AuthenticationMode::Api) {
        errs.push(FieldError::new(
            "access.service_access",
            "authentication mode API reads no aws-auth ConfigMap: use API_AND_CONFIG_MAP or CONFIG_MAP",
        ));
    }
    if !a.accounts.is_empty() && a.authentication_mode == Some(AuthenticationMode::Api) {
        errs.push(FieldError::new(
            "access.accounts",
            "authentication mode API reads no aws-auth ConfigMap, and access entries cannot admit a whole account: use API_AND_CONFIG_MAP or CONFIG_MAP",
        ));
    }
    let mut principals = BTreeSet::new();
    for (i, e) in a.entries.iter().enumerate() {
        let at = |f: &str| format!("access.entries[{i}].{f}");
        if !(is_iam_arn(&e.principal_arn, "role") || is_iam_arn(&e.principal_arn, "user")) {
            errs.push(FieldError::new(
                at("principal_arn"),
                format!("`{}` is not an IAM role or user ARN", e.principal_arn),
            ));
        }
        if !principals.insert(&e.principal_arn) {
            errs.push(FieldError::new(at("principal_arn"), format!("`{}` has two entries", e.principal_arn)));
        }
        if !ACCESS_ENTRY_TYPES.contains(&e.entry_type.as_str()) {
            errs.push(FieldError::new(
                at("type"),
                format!("`{}` is not one of {}", e.entry_type, ACCESS_ENTRY_TYPES.join(", ")),
            ));
        } else if e.entry_type != "STANDARD"
            && (!e.kubernetes_groups.is_empty() || e.username.is_some() || !e.policies.is_empty())
        {
            errs.push(FieldError::new(
                at("type"),
                format!("{} entries take no groups, username or policies", e.entry_type),
            ));
        }
        for (j, g) in e.kubernetes_groups.iter().enumerate() {
            if g.starts_with("system:") {
                errs.push(FieldError::new(format!("access.entries[{i}].kubernetes_groups[{j}]"), format!("EKS refuses groups starting with system: (`{g}`); associate AmazonEKSClusterAdminPolicy instead")));
            }
        }
    }
}

/// EKS's rules for identity provider configs: one per cluster, a name of 1 to 100 letters, digits, `-` and
/// `_`, an `https://` issuer, and prefixes outside `system:`.
fn validate_identity_providers(ips: &[IdentityProviderSpec], errs: &mut Vec<FieldError>) {
    if ips.len() > 1 {
        errs.push(FieldError::new(
            "cluster.identity_providers",
            format!("EKS associates one OIDC identity provider per cluster, {} are given", ips.len()),
        ));
    }
    for (i, p) in ips.iter().enumerate() {
        let at = |f: &str| format!("cluster.identity_providers[{i}].{f}");
        let name_ok = (1..=100).contains(&p.name.len())
            && p.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            errs.push(FieldError::new(at("name"), format!("`{}` must be 1 to 100 letters, digits, - and _", p.name)));
        }
        let host = p.issuer_url.strip_prefix("https://").unwrap_or_default();
        if host.is_empty() || host.starts_with('/') || p.issuer_url.contains(char::is_whitespace) {
            errs.push(FieldError::new(at("issuer_url"), format!("`{}` is not an https:// URL", p.issuer_url)));
        }
        if p.client_id.trim().is_empty() {
            errs.push(FieldError::new(at("client_id"), "required"));
        }
        for (f, v) in [("username_prefix", &p.username_prefix), ("groups_prefix", &p.groups_prefix)] {
            if v.as_deref().is_some_and(|v| v.starts_with("system:")) {
                errs.push(FieldError::new(at(f), "may not start with system: (reserved for Kubernetes)"));
            }
        }
    }
}

fn validate_cluster(c: &ClusterSpec, zones: Option<&[String]>, adopted: bool, errs: &mut Vec<FieldError>) {
    if !KUBERNETES_VERSIONS.contains(&c.version.as_str()) {
        errs.push(FieldError::new(
            "cluster.version",
            format!(
                "`{}` is not a version EKS offers ({} to {})",
                c.version,
                KUBERNETES_VERSIONS[0],
                KUBERNETES_VERSIONS[KUBERNETES_VERSIONS.len() - 1]
            ),
        ));
    }
    if !c.endpoint.public && !c.endpoint.private {
        errs.push(FieldError::new("cluster.endpoint", "at least one of public and private access is needed"));
    }
    validate_identity_providers(&c.identity_providers, errs);
    if !c.endpoint.public && !c.endpoint.public_cidrs.is_empty() {
        errs.push(FieldError::new("cluster.endpoint.public_cidrs", "public CIDRs need public access"));
    }
    for (i, l) in c.logging.iter().enumerate() {
        if !LOG_TYPES.contains(&l.as_str()) {
            errs.push(FieldError::new(
                format!("cluster.logging[{i}]"),
                format!("`{l}` is not one of {}", LOG_TYPES.join(", ")),
            ));
        }
    }
    if let Some(e) = &c.encryption {
        if !(7..=30).contains(&e.deletion_window_days) {
            errs.push(FieldError::new(
                "cluster.encryption.deletion_window_days",
                format!("{} is not between 7 and 30 days, as KMS requires", e.deletion_window_days),
            ));
        }
    }
    if let Some(k) = c.encryption.as_ref().and_then(|e| e.key_arn.as_ref()) {
        if !k.starts_with("arn:") || !k.contains(":kms:") {
            errs.push(FieldError::new("cluster.encryption.key_arn", format!("`{k}` is not a KMS key ARN")));
        }
    }
    if let Some(d) = c.log_retention_days {
        if !LOG_RETENTION_DAYS.contains(&d) {
            errs.push(FieldError::new(
                "cluster.log_retention_days",
                format!(
                    "CloudWatch keeps logs for one of {} days, not {d}",
                    LOG_RETENTION_DAYS.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        if c.logging.is_empty() {
            errs.push(FieldError::new(
                "cluster.log_retention_days",
                "the control plane sends no logs: name the log types in cluster.logging",
            ));
        }
    }
    for (j, g) in c.control_plane_security_groups.iter().enumerate() {
        if !is_aws_id(g, "sg-") {
            errs.push(FieldError::new(
                format!("cluster.control_plane_security_groups[{j}]"),
                format!("`{g}` is not a security group ID (sg-...)"),
            ));
        }
    }
    if c.control_plane_security_groups.len() > 4 {
        errs.push(FieldError::new(
            "cluster.control_plane_security_groups",
            "EKS takes five security groups for the control plane, one of them the cluster's own: four of yours at most",
        ));
    }
    if !c.control_plane_subnets.is_empty() {
        if !adopted {
            errs.push(FieldError::new(
                "cluster.control_plane_subnets",
                "subnets of yours exist only in a VPC of yours: adopt it with network.existing (in a VPC eksodus makes, the control plane is in its private subnets)",
            ));
        }
        if c.control_plane_subnets.len() < 2 {
            errs.push(FieldError::new("cluster.control_plane_subnets", "EKS needs subnets in at least two zones"));
        }
        for (j, id) in c.control_plane_subnets.iter().enumerate() {
            if !is_aws_id(id, "subnet-") {
                errs.push(FieldError::new(
                    format!("cluster.control_plane_subnets[{j}]"),
                    format!("`{id}` is not a subnet ID (subnet-...)"),
                ));
            }
        }
    }
    if let Some(t) = c.control_plane_tier.as_deref().filter(|t| !CONTROL_PLANE_TIERS.contains(t)) {
        errs.push(FieldError::new(
            "cluster.control_plane_tier",
            format!("`{t}` is not one of EKS's tiers ({})", CONTROL_PLANE_TIERS.join(", ")),
        ));
    }
    if let Some(t) = &c.support_type {
        if t != "STANDARD" && t != "EXTENDED" {
            errs.push(FieldError::new("cluster.support_type", format!("`{t}` is not STANDARD or EXTENDED")));
        }
    }
    let mut names = BTreeSet::new();
    for (i, n) in c.nodegroups.iter().enumerate() {
        let at = |f: &str| format!("cluster.nodegroups[{i}].{f}");
        if !is_dns_label(&n.name) {
            errs.push(FieldError::new(
                at("name"),
                format!("`{}` must be lowercase letters, digits and hyphens", n.name),
            ));
        }
        if !names.insert(&n.name) {
            errs.push(FieldError::new(at("name"), format!("`{}` is listed twice", n.name)));
        }
        match &n.instance_selector {
            None if n.instance_types.is_empty() => errs.push(FieldError::new(
                at("instance_types"),
                "at least one instance type is needed (or an instance_selector)",
            )),
            None => {}
            Some(sel) => validate_selector(n, sel, &at, errs),
        }
        if n.max == 0 || n.min > n.desired || n.desired > n.max {
            errs.push(FieldError::new(
                at("desired"),
                format!("need min <= desired <= max and max >= 1, got {} <= {} <= {}", n.min, n.desired, n.max),
            ));
        }
        if n.capacity_type != "ON_DEMAND" && n.capacity_type != "SPOT" {
            errs.push(FieldError::new(at("capacity_type"), format!("`{}` is not ON_DEMAND or SPOT", n.capacity_type)));
        }
        if n.disk_size == Some(0) {
            errs.push(FieldError::new(at("disk_size"), "must be at least 1 GiB"));
        }
        for (j, t) in n.taints.iter().enumerate() {
            if !["NO_SCHEDULE", "NO_EXECUTE", "PREFER_NO_SCHEDULE"].contains(&t.effect.as_str()) {
                errs.push(FieldError::new(
                    format!("cluster.nodegroups[{i}].taints[{j}].effect"),
                    format!("`{}` is not NO_SCHEDULE, NO_EXECUTE or PREFER_NO_SCHEDULE", t.effect),
                ));
            }
        }
        let mut tag_errs = Vec::new();
        validate_tags(&n.tags, &mut tag_errs);
        errs.extend(
            tag_errs.into_iter().map(|e| FieldError::new(format!("cluster.nodegroups[{i}].{}", e.path), e.message)),
        );
        if n.iam.role_arn.is_some() && !(n.iam.attach_policies.is_empty() && n.iam.well_known.is_empty()) {
            errs.push(FieldError::new(
                at("iam"),
                "give either role_arn (a role of yours, never changed) or attach_policies/well_known (a role eksodus makes), not both",
            ));
        }
        if let Some(r) = &n.iam.role_arn {
            if !(r.starts_with("arn:") && r.contains(":role/")) {
                errs.push(FieldError::new(at("iam.role_arn"), format!("`{r}` is not an IAM role ARN")));
            }
        }
        for (j, p) in n.iam.attach_policies.iter().enumerate() {
            if !(p.starts_with("arn:") && p.contains(":policy/")) {
                errs.push(FieldError::new(
                    format!("cluster.nodegroups[{i}].iam.attach_policies[{j}]"),
                    format!("`{p}` is not an IAM policy ARN"),
                ));
            }
        }
        if let Some(ssh) = &n.ssh {
            let given = [!ssh.key_name.is_empty(), ssh.public_key.is_some(), ssh.public_key_file.is_some()];
            if given.iter().filter(|g| **g).count() != 1 {
                errs.push(FieldError::new(at("ssh"), "give exactly one of key_name, public_key and public_key_file"));
            } else if !ssh.key_name.is_empty() && (ssh.key_name.trim().is_empty() || ssh.key_name.len() > 255) {
                errs.push(FieldError::new(at("ssh.key_name"), "the key pair's name, 1 to 255 characters"));
            }
            if let Some(f) = &ssh.public_key_file {
                errs.push(FieldError::new(
                    at("ssh.public_key_file"),
                    format!("`{f}` was not read: it is read when the spec file is loaded (eksodus::spec::read), or give public_key"),
                ));
            }
            if let Some(k) = &ssh.public_key {
                let mut parts = k.split_whitespace();
                let ok = parts.next().is_some_and(|t| SSH_KEY_TYPES.contains(&t))
                    && parts.next().is_some_and(|b| {
                        b.len() >= 16 && b.chars().all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c))
                    });
                if !ok {
                    errs.push(FieldError::new(
                        at("ssh.public_key"),
                        format!("not an OpenSSH public key: its type ({}) and base64 key", SSH_KEY_TYPES.join(", ")),
                    ));
                }
            }
            for (j, c) in ssh.source_cidrs.iter().enumerate() {
                if c.prefix_len() == 0 {
                    errs.push(FieldError::new(
                        format!("cluster.nodegroups[{i}].ssh.source_cidrs[{j}]"),
                        "0.0.0.0/0 opens port 22 to the internet; name the networks that need it",
                    ));
                }
            }
            for (j, g) in ssh.source_security_groups.iter().enumerate() {
                if !g.starts_with("sg-") {
                    errs.push(FieldError::new(
                        format!("cluster.nodegroups[{i}].ssh.source_security_groups[{j}]"),
                        format!("`{g}` is not a security group ID (sg-...)"),
                    ));
                }
            }
        }
        validate_template_fields(n, &at, errs);
        if let Some(r) = &n.node_repair_settings {
            if !n.node_repair {
                errs.push(FieldError::new(at("node_repair_settings"), "needs node_repair: true"));
            }
            for (what, count, pct) in [
                ("max_unhealthy", r.max_unhealthy_count, r.max_unhealthy_percentage),
                ("max_parallel", r.max_parallel_count, r.max_parallel_percentage),
            ] {
                if count.is_some() && pct.is_some() {
                    errs.push(FieldError::new(
                        at(&format!("node_repair_settings.{what}_percentage")),
                        format!("give {what}_count or {what}_percentage, not both"),
                    ));
                }
                if count == Some(0) {
                    errs.push(FieldError::new(at(&format!("node_repair_settings.{what}_count")), "at least 1"));
                }
                if let Some(p) = pct.filter(|p| !(1..=100).contains(p)) {
                    errs.push(FieldError::new(
                        at(&format!("node_repair_settings.{what}_percentage")),
                        format!("must be 1 to 100, not {p}"),
                    ));
                }
            }
            let mut seen = BTreeSet::new();
            for (j, o) in r.overrides.iter().enumerate() {
                let at_o = |f: &str| at(&format!("node_repair_settings.overrides[{j}].{f}"));
                if o.condition.trim().is_empty() {
                    errs.push(FieldError::new(at_o("condition"), "required"));
                }
                if o.reason.trim().is_empty() {
                    errs.push(FieldError::new(at_o("reason"), "required"));
                }
                if !REPAIR_ACTIONS.contains(&o.action.as_str()) {
                    errs.push(FieldError::new(
                        at_o("action"),
                        format!("`{}` is not one of EKS's repair actions ({})", o.action, REPAIR_ACTIONS.join(", ")),
                    ));
                }
                if !seen.insert((&o.condition, &o.reason)) {
                    errs.push(FieldError::new(at_o("reason"), "this condition and reason are given twice"));
                }
            }
        }
        if let Some(p) = n.max_unavailable_percentage {
            if n.max_unavailable.is_some() {
                errs.push(FieldError::new(
                    at("max_unavailable_percentage"),
                    "give max_unavailable or max_unavailable_percentage, not both",
                ));
            }
            if !(1..=100).contains(&p) {
                errs.push(FieldError::new(at("max_unavailable_percentage"), format!("must be 1 to 100, not {p}")));
            }
        }
        if n.max_unavailable == Some(0) || n.max_unavailable.is_some_and(|m| m > 100) {
            errs.push(FieldError::new(at("max_unavailable"), "EKS takes 1 to 100 nodes at once"));
        }
        for (j, z) in n.zones.iter().enumerate() {
            let Some(zones) = zones else { break };
            if !zones.contains(z) {
                errs.push(FieldError::new(
                    format!("cluster.nodegroups[{i}].zones[{j}]"),
                    format!("`{z}` is not one of the network's zones ({})", zones.join(", ")),
                ));
            }
        }
    }
    let mut addons = BTreeSet::new();
    for (i, a) in c.addons.iter().enumerate() {
        if !addons.insert(&a.name) {
            errs.push(FieldError::new(format!("cluster.addons[{i}].name"), format!("`{}` is listed twice", a.name)));
        }
        let mut tag_errs = Vec::new();
        validate_tags(&a.tags, &mut tag_errs);
        errs.extend(
            tag_errs.into_iter().map(|e| FieldError::new(format!("cluster.addons[{i}].{}", e.path), e.message)),
        );
        if let Some(r) = &a.resolve_conflicts {
            if !["OVERWRITE", "NONE", "PRESERVE"].contains(&r.as_str()) {
                errs.push(FieldError::new(
                    format!("cluster.addons[{i}].resolve_conflicts"),
                    format!("`{r}` is not OVERWRITE, NONE or PRESERVE"),
                ));
            }
        }
        if a.has_policies() && addon_service_account(&a.name).is_none() {
            errs.push(FieldError::new(
                format!("cluster.addons[{i}].policies"),
                format!(
                    "eksodus does not know which service account addon `{}` runs as, so it cannot give it a role",
                    a.name
                ),
            ));
        }
        if let Some(v) = &a.version {
            if v != "latest" && !v.starts_with('v') {
                errs.push(FieldError::new(
                    format!("cluster.addons[{i}].version"),
                    format!("`{v}` is not an addon version (like v1.19.5-eksbuild.1) or `latest`"),
                ));
            }
        }
    }
}

/// An inclusive range of a volume setting.
type Range = Option<(u32, u32)>;

/// EBS limits of root volumes (Amazon EBS volume types, gp3 as raised in 2025): (type, IOPS range, whether
/// IOPS must be given, throughput range).
const VOLUME_TYPES: &[(&str, Range, bool, Range)] = &[
    ("gp3", Some((3000, 80000)), false, Some((125, 2000))),
    ("gp2", None, false, None),
    ("io1", Some((100, 64000)), true, None),
    ("io2", Some((100, 256000)), true, None),
];

/// Whether `k` names a KMS key as EC2's launch templates take one: a key ID (a UUID, or `mrk-` and 32 hex
/// digits for a multi-Region key), `alias/<name>`, or the ARN of a key or an alias.
fn is_kms_key_ref(k: &str) -> bool {
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    let key_id = |s: &str| match s.strip_prefix("mrk-") {
        Some(m) => m.len() == 32 && hex(m),
        None => {
            let parts: Vec<&str> = s.split('-').collect();
            parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12]) && parts.iter().all(|p| hex(p))
        }
    };
    let alias = |s: &str| {
        s.strip_prefix("alias/").is_some_and(|n| {
            !n.is_empty()
                && !n.starts_with("aws/")
                && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b))
        })
    };
    match k.strip_prefix("arn:") {
        // arn:<partition>:kms:<region>:<account>:key/<id> or :alias/<name>
        Some(rest) => {
            let f: Vec<&str> = rest.splitn(5, ':').collect();
            f.len() == 5 && f[1] == "kms" && (f[4].strip_prefix("key/").is_some_and(key_id) || alias(f[4]))
        }
        None => key_id(k) || alias(k),
    }
}

/// Each setting is a TOML table, string, number, boolean or list of those scalars, under a key TOML can name,
/// and none is one eksodus or EKS writes ([`BOTTLEROCKET_RESERVED`]).
fn validate_bottlerocket_settings(
    m: &serde_json::Map<String, serde_json::Value>,
    prefix: &str,
    at: &dyn Fn(&str) -> String,
    errs: &mut Vec<FieldError>,
) {
    use serde_json::Value;
    for (k, v) in m {
        let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        if k.is_empty() {
            errs.push(FieldError::new(at(&path), "a setting needs a name"));
            continue;
        }
        if BOTTLEROCKET_RESERVED.contains(&path.as_str()) {
            let what = if path.starts_with("host-containers") {
                "set by admin_container"
            } else if path.ends_with("node-labels") || path.ends_with("node-taints") {
                "set from the nodegroup's labels and taints"
            } else {
                "written by eksodus and EKS"
            };
            errs.push(FieldError::new(at(&path), what));
            continue;
        }
        if prefix.is_empty() && k == "kubernetes" && !v.is_object() {
            errs.push(FieldError::new(at(&path), "the kubelet's settings are a table"));
            continue;
        }
        let scalar = |v: &Value| matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_));
        match v {
            Value::Object(sub) => validate_bottlerocket_settings(sub, &path, at, errs),
            Value::Array(items) if items.iter().all(scalar) => {}
            v if scalar(v) => {}
            _ => errs.push(FieldError::new(
                at(&path),
                "a setting is a table, a string, a number, a boolean or a list of those",
            )),
        }
    }
}

fn validate_selector(
    n: &NodegroupSpec,
    sel: &InstanceSelectorSpec,
    at: &dyn Fn(&str) -> String,
    errs: &mut Vec<FieldError>,
) {
    if !n.instance_types.is_empty() {
        errs.push(FieldError::new(
            at("instance_types"),
            "give instance_types or instance_selector, not both (the selector chooses the types)",
        ));
    }
    for (f, r) in [("vcpus", sel.vcpus), ("memory_mib", sel.memory_mib), ("gpus", sel.gpus)] {
        if let (Some(lo), Some(hi)) = (r.min, r.max) {
            if lo > hi {
                errs.push(FieldError::new(
                    at(&format!("instance_selector.{f}")),
                    format!("min {lo} is above max {hi}"),
                ));
            }
        }
    }
    if sel.vcpus.max == Some(0) || sel.memory_mib.max == Some(0) {
        let f = if sel.vcpus.max == Some(0) { "vcpus" } else { "memory_mib" };
        errs.push(FieldError::new(at(&format!("instance_selector.{f}")), "no instance type has none"));
    }
    let arm = match sel.architecture.as_str() {
        "x86_64" => false,
        "arm64" => true,
        other => {
            errs.push(FieldError::new(
                at("instance_selector.architecture"),
                format!("`{other}` is not x86_64 or arm64"),
            ));
            return;
        }
    };
    // the AMI must run on what is chosen: EKS would make the nodegroup and its nodes would never boot
    let ami = n.ami_type.as_deref().unwrap_or("AL2023_x86_64_STANDARD");
    if ami.contains("ARM_64") != arm {
        errs.push(FieldError::new(
            at("ami_type"),
            format!(
                "`{ami}` does not run on the {} types the selector chooses{}",
                sel.architecture,
                if arm { " (AL2023_ARM_64_STANDARD or BOTTLEROCKET_ARM_64, say)" } else { "" }
            ),
        ));
    }
    let gpu_ami = ["NVIDIA", "NEURON", "GPU"].iter().any(|g| ami.contains(g));
    if sel.gpus.min.unwrap_or(0) > 0 && !gpu_ami && n.ami.is_none() {
        errs.push(FieldError::new(
            at("ami_type"),
            format!("`{ami}` has no GPU drivers for the GPU types the selector chooses (AL2023_x86_64_NVIDIA, say)"),
        ));
    }
    for (f, re) in [("allow", &sel.allow), ("deny", &sel.deny)] {
        if let Some(re) = re {
            if let Err(e) = regex::Regex::new(re) {
                errs.push(FieldError::new(
                    at(&format!("instance_selector.{f}")),
                    format!("not a regular expression: {e}"),
                ));
            }
        }
    }
}

fn validate_template_fields(n: &NodegroupSpec, at: &dyn Fn(&str) -> String, errs: &mut Vec<FieldError>) {
    if let Some(lt) = &n.launch_template {
        if !lt.id.starts_with("lt-") {
            errs.push(FieldError::new(
                at("launch_template.id"),
                format!("`{}` is not a launch template ID (lt-...)", lt.id),
            ));
        }
        if lt.version.parse::<u64>().map_or(true, |v| v == 0) {
            errs.push(FieldError::new(
                at("launch_template.version"),
                format!("`{}` is not a version number (EKS keeps the number it was given)", lt.version),
            ));
        }
        for f in n.template_fields() {
            errs.push(FieldError::new(
                at(f),
                "belongs in your launch template: a nodegroup takes either yours (launch_template) or one eksodus makes",
            ));
        }
        if n.disk_size.is_some() {
            errs.push(FieldError::new(
                at("disk_size"),
                "EKS takes no disk size with a launch template: set it in yours",
            ));
        }
    }
    if n.ssh.is_some() && n.launch_template.is_some() {
        errs.push(FieldError::new(
            at("ssh"),
            "EKS takes no remote access with a launch template of yours: name the key pair in your template and attach a security group that allows port 22",
        ));
    }
    if let Some(v) = &n.volume {
        let ty = v.volume_type.as_deref().unwrap_or("gp3");
        match VOLUME_TYPES.iter().find(|t| t.0 == ty) {
            None => errs.push(FieldError::new(at("volume.type"), format!("`{ty}` is not gp3, gp2, io1 or io2"))),
            Some(&(_, iops, iops_required, throughput)) => {
                match (v.iops, iops) {
                    (Some(_), None) => {
                        errs.push(FieldError::new(at("volume.iops"), format!("{ty} volumes take no provisioned IOPS")))
                    }
                    (Some(x), Some((lo, hi))) if x < lo || x > hi => {
                        errs.push(FieldError::new(at("volume.iops"), format!("{ty} takes {lo} to {hi} IOPS, not {x}")))
                    }
                    (None, _) if iops_required => {
                        errs.push(FieldError::new(at("volume.iops"), format!("{ty} volumes need their IOPS")))
                    }
                    _ => {}
                }
                match (v.throughput, throughput) {
                    (Some(_), None) => {
                        errs.push(FieldError::new(at("volume.throughput"), format!("{ty} volumes take no throughput")))
                    }
                    (Some(x), Some((lo, hi))) if x < lo || x > hi => errs.push(FieldError::new(
                        at("volume.throughput"),
                        format!("{ty} takes {lo} to {hi} MiB/s, not {x}"),
                    )),
                    _ => {}
                }
            }
        }
        if let Some(k) = &v.kms_key {
            if !is_kms_key_ref(k) {
                errs.push(FieldError::new(
                    at("volume.kms_key"),
                    format!("`{k}` is not a KMS key (its ID, an alias/..., or the ARN of either)"),
                ));
            }
        }
    }
    if let Some(h) = n.imds_hop_limit {
        if !(1..=64).contains(&h) {
            errs.push(FieldError::new(at("imds_hop_limit"), format!("must be 1 to 64, not {h}")));
        }
    }
    for (j, g) in n.security_groups.iter().enumerate() {
        if !g.starts_with("sg-") {
            errs.push(FieldError::new(
                at(&format!("security_groups[{j}]")),
                format!("`{g}` is not a security group ID (sg-...)"),
            ));
        }
    }
    // an ENI takes 5 security groups by default, and eksodus adds the cluster's (and the SSH group)
    let added = 1 + usize::from(n.ssh.is_some() && n.owns_template());
    if n.security_groups.len() + added > 5 {
        let what = if added == 2 { "the cluster's and the SSH group" } else { "the cluster's" };
        errs.push(FieldError::new(
            at("security_groups"),
            format!("{} groups and {what} exceed the 5 a network interface takes", n.security_groups.len()),
        ));
    }
    let family = n.ami_type.as_deref().unwrap_or("AL2023");
    if let Some(ami) = &n.ami {
        // the form only: whether the AMI exists in the region (and fits the family's architecture) is asked
        // of EC2 by the plan, before anything is made
        let rest = ami.strip_prefix("ami-").unwrap_or_default();
        if rest.is_empty() || !rest.chars().all(|c| c.is_ascii_alphanumeric()) {
            errs.push(FieldError::new(at("ami"), format!("`{ami}` is not an AMI ID (ami-...)")));
        }
        if family.starts_with("WINDOWS_") {
            errs.push(FieldError::new(
                at("ami"),
                "a custom Windows AMI joins through a PowerShell bootstrap eksodus does not write: leave out ami, and EKS's Windows AMI of the ami_type bootstraps the nodes",
            ));
        } else if !(family.starts_with("AL2023") || family.starts_with("AL2_") || family.starts_with("BOTTLEROCKET")) {
            errs.push(FieldError::new(
                at("ami_type"),
                format!("`{family}`: a custom AMI's family must be Amazon Linux 2023, Amazon Linux 2 or Bottlerocket (its ami_type names it), so eksodus can write its bootstrap"),
            ));
        }
    }
    if let Some(o) = &n.override_bootstrap_command {
        if n.ami.is_none() {
            errs.push(FieldError::new(
                at("override_bootstrap_command"),
                "replaces the bootstrap of a custom AMI: give `ami` too (on EKS's AMIs, EKS bootstraps the node)",
            ));
        } else if family.starts_with("BOTTLEROCKET") {
            errs.push(FieldError::new(
                at("override_bootstrap_command"),
                "Bottlerocket nodes join from their settings, not a shell command",
            ));
        } else if family.starts_with("AL2023") {
            errs.push(FieldError::new(at("override_bootstrap_command"), "Amazon Linux 2023 nodes join through nodeadm, from the NodeConfig eksodus writes: use pre_bootstrap_commands for what runs before"));
        } else if o.trim().is_empty() {
            errs.push(FieldError::new(at("override_bootstrap_command"), "must not be empty"));
        }
    }
    if let Some(b) = &n.bottlerocket {
        if !family.starts_with("BOTTLEROCKET") {
            errs.push(FieldError::new(
                at("bottlerocket"),
                format!("Bottlerocket settings need a Bottlerocket ami_type, not `{family}`"),
            ));
        }
        validate_bottlerocket_settings(&b.settings, "", &|f| at(&format!("bottlerocket.settings.{f}")), errs);
    }
    let shell_family = family.starts_with("AL2023") || (n.ami.is_some() && family.starts_with("AL2_"));
    if !n.pre_bootstrap_commands.is_empty() && n.ami_type.is_some() && !shell_family {
        errs.push(FieldError::new(
            at("pre_bootstrap_commands"),
            format!(
                "shell commands before bootstrap are supported on Amazon Linux 2023 nodes, not `{}` (Bottlerocket has no shell on the host: use its bootstrap containers)",
                n.ami_type.as_deref().unwrap_or_default()
            ),
        ));
    }
    if let Some(name) = &n.instance_name {
        if name.is_empty() || name.chars().count() > 256 {
            errs.push(FieldError::new(at("instance_name"), "a Name tag of 1 to 256 characters"));
        }
    }
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

/// `us-west-2-lax-1a`: the region, the zone group's city code, then a number and the zone's letter (Wavelength
/// Zones, `us-east-1-wl1-bos-wlz-1`, do not match).
fn is_local_zone_of(z: &str, region: &str) -> bool {
    let Some(rest) = z.strip_prefix(region).and_then(|r| r.strip_prefix('-')) else { return false };
    let Some((city, zone)) = rest.split_once('-') else { return false };
    let (digits, letter) = zone.split_at(zone.len().saturating_sub(1));
    (2..=5).contains(&city.len())
        && city.chars().all(|c| c.is_ascii_lowercase())
        && !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && letter.chars().all(|c| c.is_ascii_lowercase())
        && !letter.is_empty()
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
    fn service_account_roles_name_what_is_wrong_by_field() {
        let with = |sas: &str, pis: &str| {
            EnvironmentSpec::from_yaml(&format!("{GOOD}access:\n  service_accounts: {sas}\n  pod_identities: {pis}\n"))
                .unwrap()
                .validate()
                .into_iter()
                .map(|e| e.path)
                .collect::<Vec<_>>()
        };
        let role = "arn:aws:iam::111122223333:role/mine";
        let ok_irsa = format!(
            "{{namespace: apps, name: web, role_arn: '{role}', create_service_account: true, \
             labels: {{team: web}}, annotations: {{'example.com/owner': web}}}}"
        );
        let ok_pi = format!(
            "{{namespace: apps, name: job, policy_document: {{Version: '2012-10-17', Statement: []}}, \
             target_role_arn: '{role}', disable_session_tags: true}}"
        );
        assert_eq!(with(&format!("[{ok_irsa}]"), &format!("[{ok_pi}]")), Vec::<String>::new());
        let bad_irsa = format!(
            "{{namespace: apps, name: a, role_arn: '{role}', policies: ['arn:aws:iam::aws:policy/X'], \
             target_role_arn: '{role}', disable_session_tags: true}}"
        );
        let no_sa = "{namespace: apps, name: b, policies: ['arn:aws:iam::aws:policy/X'], labels: {team: b}}";
        let reserved = "{namespace: apps, name: c, policies: ['arn:aws:iam::aws:policy/X'], \
             create_service_account: true, labels: {'eksodus.io/environment': other, bad: 'not ok!'}, \
             annotations: {'eks.amazonaws.com/role-arn': x}}";
        let bad_pi = "{namespace: apps, name: d, role_arn: 'arn:aws:iam::111122223333:user/u', \
             target_role_arn: 'nope'}";
        assert_eq!(
            with(&format!("[{bad_irsa}, {no_sa}, {reserved}]"), &format!("[{bad_pi}]")),
            [
                "access.service_accounts[0].role_arn",
                "access.service_accounts[0].target_role_arn",
                "access.service_accounts[0].disable_session_tags",
                "access.service_accounts[1].labels",
                "access.service_accounts[2].labels.bad",
                "access.service_accounts[2].labels.eksodus.io/environment",
                "access.service_accounts[2].annotations.eks.amazonaws.com/role-arn",
                "access.pod_identities[0].role_arn",
                "access.pod_identities[0].target_role_arn",
            ]
        );
    }

    #[test]
    fn identity_providers_follow_eks_rules() {
        let with = |ips: &str| {
            EnvironmentSpec::from_yaml(&format!("{GOOD}cluster:\n  version: '1.33'\n  identity_providers: {ips}\n"))
                .unwrap()
                .validate()
                .into_iter()
                .map(|e| e.path)
                .collect::<Vec<_>>()
        };
        let ok =
            "{name: corp-sso, issuer_url: 'https://sso.example.com', client_id: kubernetes, username_prefix: 'sso:'}";
        assert_eq!(with(&format!("[{ok}]")), Vec::<String>::new());
        let bad = "{name: 'bad name', issuer_url: 'http://sso.example.com', client_id: ' ', groups_prefix: 'system:x'}";
        assert_eq!(
            with(&format!("[{ok}, {bad}]")),
            [
                "cluster.identity_providers",
                "cluster.identity_providers[1].name",
                "cluster.identity_providers[1].issuer_url",
                "cluster.identity_providers[1].client_id",
                "cluster.identity_providers[1].groups_prefix",
            ]
        );
    }

    #[test]
    fn capabilities_follow_eks_rules() {
        let with = |extra: &str, caps: &str| {
            EnvironmentSpec::from_yaml(&format!("{GOOD}{extra}cluster:\n  version: '1.33'\n  capabilities: {caps}\n"))
                .unwrap()
                .validate()
                .into_iter()
                .map(|e| e.path)
                .collect::<Vec<_>>()
        };
        let argo = "{name: gitops, type: ARGOCD, argocd: {idc_instance_arn: 'arn:aws:sso:::instance/ssoins-1', rbac_role_mappings: [{role: ADMIN, identities: [{id: g, type: SSO_GROUP}]}]}}";
        let ack = "{name: ack, type: ACK, attach_policy_arns: ['arn:aws:iam::aws:policy/AmazonS3FullAccess'], access_policies: [{policy: AmazonEKSEditPolicy, namespaces: [shop]}]}";
        assert_eq!(with("", &format!("[{argo}, {ack}, {{name: kro, type: KRO}}]")), Vec::<String>::new());
        let caps =
            EnvironmentSpec::from_yaml(&format!("{GOOD}cluster:\n  version: '1.33'\n  capabilities: [{argo}]\n"))
                .unwrap()
                .cluster
                .unwrap()
                .capabilities;
        assert_eq!(caps[0].argocd.as_ref().unwrap().namespace, "argocd", "Argo CD's default namespace");
        assert!(caps[0].owns_role());
        // a second ACK, a user's role with policies to attach, Argo CD's settings on kro, bad Argo CD settings
        let bad = [
            "{name: ack2, type: ACK, role_arn: 'arn:aws:iam::111122223333:role/r', attach_policy_arns: ['arn:aws:iam::aws:policy/P']}",
            "{name: 'bad name', type: KRO, argocd: {idc_instance_arn: 'arn:aws:sso:::instance/x'}}",
            "{name: gitops, type: ARGOCD}",
            "{name: argo2, type: ARGOCD, access_policies: [{policy: 'arn:aws:iam::aws:policy/P'}], argocd: {namespace: Argo, idc_instance_arn: 'arn:aws:iam::1:role/x', idc_region: nowhere, vpce_ids: [vpc-1], rbac_role_mappings: [{role: OWNER, identities: []}, {role: VIEWER, identities: [{id: '', type: IAM_USER}]}]}}",
        ]
        .join(", ");
        assert_eq!(
            with("", &format!("[{ack}, {bad}]")),
            [
                "cluster.capabilities[1].type",
                "cluster.capabilities[1].attach_policy_arns",
                "cluster.capabilities[2].name",
                "cluster.capabilities[2].argocd",
                "cluster.capabilities[3].argocd",
                "cluster.capabilities[4].type",
                "cluster.capabilities[4].access_policies[0].policy",
                "cluster.capabilities[4].argocd.namespace",
                "cluster.capabilities[4].argocd.idc_instance_arn",
                "cluster.capabilities[4].argocd.idc_region",
                "cluster.capabilities[4].argocd.rbac_role_mappings[0].role",
                "cluster.capabilities[4].argocd.rbac_role_mappings[0].identities",
                "cluster.capabilities[4].argocd.rbac_role_mappings[1].identities[0].id",
                "cluster.capabilities[4].argocd.rbac_role_mappings[1].identities[0].type",
                "cluster.capabilities[4].argocd.vpce_ids[0]",
            ]
        );
        // the role gets in through an access entry, which CONFIG_MAP does not have
        let cm = "access: {authentication_mode: CONFIG_MAP}\n";
        assert_eq!(with(cm, "[{name: kro, type: KRO}]"), ["cluster.capabilities"]);
    }

    #[test]
    fn local_zones_are_named_as_ec2_names_them_and_kept_apart_from_the_region() {
        let base = "name: lz\nregion: us-west-2\nnetwork:\n  cidr: 10.0.0.0/16\n  azs: [us-west-2a, us-west-2b]\n";
        let ok = format!("{base}  local_zones: [us-west-2-lax-1a, us-west-2-lax-1b]\ncluster:\n  version: \"1.33\"\n  nodegroups:\n  - {{name: edge, instance_types: [m5.large], zones: [us-west-2-lax-1a]}}\n  - {{name: main, instance_types: [m5.large]}}\n");
        let spec = EnvironmentSpec::from_yaml(&ok).unwrap();
        assert_eq!(spec.validate(), vec![], "a nodegroup may name a Local Zone as one of its zones");
        for (z, region) in
            [("us-west-2-lax-1a", "us-west-2"), ("us-east-1-bos-1a", "us-east-1"), ("us-west-2-atl-12b", "us-west-2")]
        {
            assert!(is_local_zone_of(z, region), "{z}");
        }
        assert!(!is_local_zone_of("us-east-1-bos-1a", "us-west-2"));
        for z in ["us-west-2a", "us-west-2-wl1-sea-wlz-1", "us-west-2-lax-a", "us-west-2-LAX-1a", "us-west-2-lax-1"] {
            assert!(!is_local_zone_of(z, "us-west-2"), "{z}");
        }

        let bad = format!("{base}  local_zones: [us-west-2-lax-1a, us-west-2-lax-1a, us-west-2b, us-east-1-bos-1a]\n  ipv6: true\ncluster:\n  version: \"1.33\"\n  nodegroups:\n  - {{name: both, instance_types: [m5.large], zones: [us-west-2a, us-west-2-lax-1a]}}\n");
        let errs = EnvironmentSpec::from_yaml(&bad).unwrap().validate();
        let at = |f: &str| errs.iter().find(|e| e.path == f).map(|e| e.message.clone()).unwrap_or_default();
        assert!(at("network.local_zones").contains("IPv4 only"), "{errs:?}");
        assert!(at("network.local_zones[1]").contains("twice"), "{errs:?}");
        assert!(at("network.local_zones[2]").contains("network.azs as well"), "{errs:?}");
        assert!(at("network.local_zones[3]").contains("not a Local Zone of region us-west-2"), "{errs:?}");
        assert!(at("cluster.nodegroups[0].zones").contains("not both"), "{errs:?}");

        let adopted = "name: lz\nregion: us-west-2\nnetwork:\n  azs: 2\n  local_zones: [us-west-2-lax-1a]\n  existing: {vpc_id: vpc-0123456789abcdef0, subnet_ids: [subnet-0123456789abcdef0]}\n";
        let errs = EnvironmentSpec::from_yaml(adopted).unwrap().validate();
        assert!(
            errs.iter().any(|e| e.path == "network.local_zones" && e.message.contains("VPC eksodus makes")),
            "{errs:?}"
        );
    }

    #[test]
    fn hybrid_networks_are_private_apart_and_let_in_by_access_entry() {
        let with = |extra: &str, cluster: &str, remote: &str| {
            EnvironmentSpec::from_yaml(&format!(
                "{GOOD}{extra}cluster:\n  version: '1.33'\n{cluster}  remote_network: {remote}\n"
            ))
            .unwrap()
            .validate()
            .into_iter()
            .map(|e| e.path)
            .collect::<Vec<_>>()
        };
        let ok = "{node_cidrs: [10.80.146.0/24], pod_cidrs: [10.81.0.0/16]}";
        assert_eq!(with("", "", ok), Vec::<String>::new());
        let r = EnvironmentSpec::from_yaml(&format!("{GOOD}cluster:\n  version: '1.33'\n  remote_network: {ok}\n"))
            .unwrap()
            .cluster
            .unwrap()
            .remote_network
            .unwrap();
        assert!(r.owns_role());
        assert_eq!(r.all_cidrs().count(), 2);
        // host bits, a public block, the VPC's block, the services' block, two that overlap, a bad role
        let bad = "{node_cidrs: [10.80.146.1/24, 8.8.8.0/24, 10.0.1.0/24, 172.20.0.0/24], pod_cidrs: [192.168.0.0/16, 192.168.4.0/24], role_arn: 'arn:aws:iam::1:user/u'}";
        assert_eq!(
            with("", "", bad),
            [
                "cluster.remote_network.node_cidrs[0]",
                "cluster.remote_network.node_cidrs[1]",
                "cluster.remote_network.node_cidrs[2]",
                "cluster.remote_network.node_cidrs[3]",
                "cluster.remote_network.pod_cidrs[1]",
                "cluster.remote_network.role_arn",
            ]
        );
        // the services' block EKS picks depends on the VPC's: 172.20.0.0/16 for a VPC in 10.0.0.0/8
        assert_eq!(default_service_cidr("10.42.0.0/16".parse().unwrap()).to_string(), "172.20.0.0/16");
        assert_eq!(default_service_cidr("192.168.0.0/16".parse().unwrap()).to_string(), "10.100.0.0/16");
        // an explicit service block is checked instead
        assert_eq!(with("", "  service_ipv4_cidr: 10.80.0.0/16\n", ok), ["cluster.remote_network.node_cidrs[0]"]);
        // no networks; an IPv6 cluster; CONFIG_MAP; the role's entry written by hand too
        assert_eq!(with("", "", "{node_cidrs: []}"), ["cluster.remote_network.node_cidrs"]);
        let cm = "access: {authentication_mode: CONFIG_MAP}\n";
        assert_eq!(with(cm, "", ok), ["cluster.remote_network"]);
        let role = "arn:aws:iam::111122223333:role/hybrid";
        let entry = format!("access: {{entries: [{{principal_arn: '{role}', type: HYBRID_LINUX}}]}}\n");
        assert_eq!(with(&entry, "", ok), Vec::<String>::new(), "a HYBRID_LINUX entry of another role is the user's");
        let both = format!("{{node_cidrs: [10.80.146.0/24], role_arn: '{role}'}}");
        assert_eq!(with(&entry, "", &both), ["access.entries[0]"]);
    }

    #[test]
    fn fargate_profiles_follow_eks_rules() {
        let with = |extra: &str, fps: &str| {
            EnvironmentSpec::from_yaml(&format!(
                "{GOOD}{extra}cluster:\n  version: '1.33'\n  fargate_profiles: {fps}\n"
            ))
            .unwrap()
            .validate()
            .into_iter()
            .map(|e| e.path)
            .collect::<Vec<_>>()
        };
        let ok = "{name: fp-default, selectors: [{namespace: default}, {namespace: 'team-*', labels: {env: dev}}]}";
        assert_eq!(with("", &format!("[{ok}]")), Vec::<String>::new());
        let s = EnvironmentSpec::from_yaml(&format!("{GOOD}cluster:\n  version: '1.33'\n  fargate_profiles: [{ok}]\n"))
            .unwrap();
        assert!(s.cluster.unwrap().owns_fargate_role());
        let six = (0..6).map(|i| format!("k{i}: v")).collect::<Vec<_>>().join(", ");
        let bad = format!(
            "{{name: fp-default, selectors: [{{namespace: 'Bad_NS'}}, {{namespace: x, labels: {{{six}}}}}], subnets: [subnet-0123456789abcdef0], pod_execution_role_arn: 'arn:aws:iam::1:user/x', tags: {{'aws:x': y}}}}"
        );
        assert_eq!(
            with("", &format!("[{ok}, {bad}, {{name: '-x', selectors: []}}]")),
            [
                "cluster.fargate_profiles[1].name",
                "cluster.fargate_profiles[1].selectors[0].namespace",
                "cluster.fargate_profiles[1].selectors[1].labels",
                "cluster.fargate_profiles[1].subnets",
                "cluster.fargate_profiles[1].pod_execution_role_arn",
                "cluster.fargate_profiles[1].tags.aws:x",
                "cluster.fargate_profiles[2].name",
                "cluster.fargate_profiles[2].selectors",
            ]
        );
        // Fargate needs private subnets
        let public_only =
            "network:\n  cidr: 10.0.0.0/16\n  azs: 3\n  nat: none\n  subnets: {private: {enabled: false}}\n";
        let spec = format!(
            "name: demo\nregion: us-east-1\n{public_only}cluster:\n  version: '1.33'\n  fargate_profiles: [{ok}]\n"
        );
        let errs = EnvironmentSpec::from_yaml(&spec).unwrap().validate();
        assert!(errs.iter().any(|e| e.path == "cluster.fargate_profiles" && e.message.contains("private")), "{errs:?}");
    }

    #[test]
    fn a_volume_key_is_named_as_ec2_takes_one() {
        for ok in [
            "36c0b54e-64ed-4f2d-a1c7-96558764311e",
            "mrk-1234abcd12ab34cd56ef1234567890ab",
            "alias/ebs-nodes",
            "arn:aws:kms:eu-west-1:111122223333:key/36c0b54e-64ed-4f2d-a1c7-96558764311e",
            "arn:aws-us-gov:kms:us-gov-west-1:111122223333:alias/ebs-nodes",
        ] {
            assert!(is_kms_key_ref(ok), "{ok}");
        }
        for bad in [
            "",
            "36c0b54e",
            "36c0b54e-64ed-4f2d-a1c7-96558764311g",
            "alias/",
            "alias/aws/ebs", // AWS's own alias: EBS's default key is `encrypted` without a key
            "arn:aws:kms:eu-west-1:111122223333:key/k",
            "arn:aws:iam::111122223333:role/r",
            "key/36c0b54e-64ed-4f2d-a1c7-96558764311e",
        ] {
            assert!(!is_kms_key_ref(bad), "{bad}");
        }
    }

    #[test]
    fn nodegroup_subnets_are_adopted_ones_named_by_id_or_block() {
        let paths = |network: &str, ngs: &str| {
            let text = format!(
                "name: t\nregion: eu-west-1\nnetwork: {network}\ncluster:\n  version: '1.33'\n  nodegroups: {ngs}\n"
            );
            let mut e: Vec<String> =
                EnvironmentSpec::from_yaml(&text).unwrap().validate().into_iter().map(|e| e.path).collect();
            e.sort();
            e
        };
        let adopted =
            "{azs: 2, existing: {vpc_id: vpc-0a1b2c3d, subnet_ids: [subnet-0a1b2c3d], subnet_cidrs: [10.1.2.0/24]}}";
        let none: Vec<String> = vec![];
        assert_eq!(
            paths(adopted, "[{name: a, instance_types: [m5.large], subnets: [subnet-0a1b2c3d, 10.1.2.0/24]}]"),
            none
        );
        assert_eq!(
            paths(
                adopted,
                "[{name: a, instance_types: [m5.large], subnets: [subnet-0f0f0f0f, 10.1.3.0/24], zones: [eu-west-1a]}]"
            ),
            ["cluster.nodegroups[0].subnets", "cluster.nodegroups[0].subnets[0]", "cluster.nodegroups[0].subnets[1]"]
        );
        assert_eq!(
            paths("{cidr: 10.0.0.0/16, azs: 2}", "[{name: a, instance_types: [m5.large], subnets: [subnet-0a1b2c3d]}]"),
            ["cluster.nodegroups[0].subnets"]
        );
        let bad = "{azs: 2, existing: {vpc_id: vpc-0a1b2c3d, subnet_ids: [subnet-0a1b2c3d], subnet_cidrs: [10.1.2.1/24, 10.1.4.0/24, 10.1.4.0/24]}}";
        assert_eq!(paths(bad, "[]"), ["network.existing.subnet_cidrs[0]", "network.existing.subnet_cidrs[2]"]);
    }

    #[test]
    fn instance_selectors_read_both_forms_and_name_what_is_wrong() {
        let with = |ngs: &str| {
            let mut e: Vec<String> =
                EnvironmentSpec::from_yaml(&format!("{GOOD}cluster:\n  version: '1.33'\n  nodegroups: {ngs}\n"))
                    .unwrap()
                    .validate()
                    .into_iter()
                    .map(|e| e.path)
                    .collect();
            e.sort();
            e
        };
        let good = "[{name: a, instance_selector: {vcpus: 2, memory_mib: {min: 4096, max: 8192}}},
            {name: b, ami_type: AL2023_ARM_64_STANDARD, instance_selector: {vcpus: {min: 4}, architecture: arm64, deny: 'g\\.'}},
            {name: c, ami_type: AL2023_x86_64_NVIDIA, instance_selector: {gpus: {min: 1, max: 4}, allow: '^g[4-6]'}}]";
        assert_eq!(with(good), Vec::<String>::new());
        let spec =
            EnvironmentSpec::from_yaml(&format!("{GOOD}cluster:\n  version: '1.33'\n  nodegroups: {good}\n")).unwrap();
        let ngs = &spec.cluster.as_ref().unwrap().nodegroups;
        let a = ngs[0].instance_selector.as_ref().unwrap();
        assert_eq!((a.vcpus, a.memory_mib.min, a.memory_mib.max), (CountRange::exactly(2), Some(4096), Some(8192)));
        assert_eq!((a.gpus, a.architecture.as_str()), (CountRange::none(), "x86_64"), "no GPUs and x86 unless asked");
        assert!(a.memory_mib.contains(4096) && a.memory_mib.contains(8192) && !a.memory_mib.contains(8193));
        assert!(ngs[1].instance_selector.as_ref().unwrap().vcpus.contains(u32::MAX));
        let bad = "[{name: a, instance_types: [m5.large], instance_selector: {vcpus: {min: 4, max: 2}, memory_mib: 0}},
            {name: b, instance_selector: {architecture: arm64}},
            {name: c, instance_selector: {architecture: sparc, gpus: 1}},
            {name: d, instance_selector: {gpus: {min: 1}, allow: '(', deny: '[a'}},
            {name: e}]";
        assert_eq!(
            with(bad),
            [
                "cluster.nodegroups[0].instance_selector.memory_mib",
                "cluster.nodegroups[0].instance_selector.vcpus",
                "cluster.nodegroups[0].instance_types",
                "cluster.nodegroups[1].ami_type",
                "cluster.nodegroups[2].instance_selector.architecture",
                "cluster.nodegroups[3].ami_type",
                "cluster.nodegroups[3].instance_selector.allow",
                "cluster.nodegroups[3].instance_selector.deny",
                "cluster.nodegroups[4].instance_types",
            ]
        );
        // a misspelt end of a range is refused, not read as open
        let typo = format!(
            "{GOOD}cluster:\n  version: '1.33'\n  nodegroups: [{{name: a, instance_selector: {{vcpus: {{mn: 2}}}}}}]\n"
        );
        assert!(EnvironmentSpec::from_yaml(&typo).is_err());
    }

    #[test]
    fn bottlerocket_repair_ssh_and_tier_errors_name_their_fields() {
        let with = |extra: &str, ngs: &str| {
            let mut e: Vec<String> =
                EnvironmentSpec::from_yaml(&format!("{GOOD}cluster:\n  version: '1.33'\n{extra}  nodegroups: {ngs}\n"))
                    .unwrap()
                    .validate()
                    .into_iter()
                    .map(|e| e.path)
                    .collect();
            e.sort();
            e
        };
        let good = "[{name: a, instance_types: [m5.large], ami_type: BOTTLEROCKET_x86_64, bottlerocket: {admin_container: true, settings: {motd: hi, kernel: {sysctl: {vm.max_map_count: '262144'}}, ntp: {time-servers: [a, b]}}}},
            {name: b, instance_types: [m5.large], node_repair: true, node_repair_settings: {max_unhealthy_count: 3, max_parallel_percentage: 10, overrides: [{condition: NetworkNotReady, reason: InterfaceNotUp, wait_minutes: 5, action: Reboot}]}},
            {name: c, instance_types: [m5.large], ssh: {key_name: k, source_cidrs: [10.0.0.0/8]}}]";
        assert_eq!(with("  zonal_shift: true\n  control_plane_tier: tier-2xl\n", good), Vec::<String>::new());
        let bad = "[{name: a, instance_types: [m5.large], bottlerocket: {settings: {kubernetes: {max-pods: 9, node-labels: {a: b}}, host-containers: {admin: {enabled: false}}, list: [{x: 1}], none: null, '': 1}}},
            {name: b, instance_types: [m5.large], node_repair_settings: {max_unhealthy_count: 0, max_unhealthy_percentage: 5, max_parallel_percentage: 101, overrides: [{condition: '', reason: r, wait_minutes: 1, action: Terminate}, {condition: '', reason: r, wait_minutes: 2, action: Reboot}]}},
            {name: c, instance_types: [m5.large], ssh: {key_name: k, source_cidrs: [0.0.0.0/0]}}]";
        assert_eq!(
            with("  control_plane_tier: tier-xxl\n", bad),
            [
                "cluster.control_plane_tier",
                "cluster.nodegroups[0].bottlerocket",
                "cluster.nodegroups[0].bottlerocket.settings.",
                "cluster.nodegroups[0].bottlerocket.settings.host-containers.admin.enabled",
                "cluster.nodegroups[0].bottlerocket.settings.kubernetes.max-pods",
                "cluster.nodegroups[0].bottlerocket.settings.kubernetes.node-labels",
                "cluster.nodegroups[0].bottlerocket.settings.list",
                "cluster.nodegroups[0].bottlerocket.settings.none",
                "cluster.nodegroups[1].node_repair_settings",
                "cluster.nodegroups[1].node_repair_settings.max_parallel_percentage",
                "cluster.nodegroups[1].node_repair_settings.max_unhealthy_count",
                "cluster.nodegroups[1].node_repair_settings.max_unhealthy_percentage",
                "cluster.nodegroups[1].node_repair_settings.overrides[0].action",
                "cluster.nodegroups[1].node_repair_settings.overrides[0].condition",
                "cluster.nodegroups[1].node_repair_settings.overrides[1].condition",
                "cluster.nodegroups[1].node_repair_settings.overrides[1].reason",
                "cluster.nodegroups[2].ssh.source_cidrs[0]",
            ]
        );
    }

    #[test]
    fn launch_template_fields_follow_ebs_and_eks_rules() {
        let with = |ngs: &str| {
            EnvironmentSpec::from_yaml(&format!("{GOOD}cluster:\n  version: '1.33'\n  nodegroups: {ngs}\n"))
                .unwrap()
                .validate()
                .into_iter()
                .map(|e| e.path)
                .collect::<Vec<_>>()
        };
        let ok = "{name: a, instance_types: [m5.large], disk_size: 80, volume: {type: gp3, iops: 6000, throughput: 500, kms_key: 'arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab'}, imds_hop_limit: 1, security_groups: [sg-1], pre_bootstrap_commands: [echo], instance_name: n}";
        let theirs = "{name: b, instance_types: [m5.large], launch_template: {id: lt-0abc, version: '3'}}";
        assert_eq!(with(&format!("[{ok}, {theirs}]")), Vec::<String>::new());
        let bad_volume = "{name: c, instance_types: [m5.large], volume: {type: gp2, iops: 100, throughput: 3000}, imds_hop_limit: 0, security_groups: [default, sg-1, sg-2, sg-3, sg-4]}";
        let mixed = "{name: d, instance_types: [m5.large], disk_size: 50, instance_name: x, launch_template: {id: abc, version: $Latest}, ssh: {key_name: k, source_security_groups: [sg-9]}}";
        let io = "{name: e, instance_types: [m5.large], volume: {type: io2}, ami_type: BOTTLEROCKET_x86_64, pre_bootstrap_commands: [echo], max_unavailable: 2, max_unavailable_percentage: 101}";
        assert_eq!(
            with(&format!("[{bad_volume}, {mixed}, {io}]")),
            [
                "cluster.nodegroups[0].volume.iops",
                "cluster.nodegroups[0].volume.throughput",
                "cluster.nodegroups[0].imds_hop_limit",
                "cluster.nodegroups[0].security_groups[0]",
                "cluster.nodegroups[0].security_groups",
                "cluster.nodegroups[1].launch_template.id",
                "cluster.nodegroups[1].launch_template.version",
                "cluster.nodegroups[1].instance_name",
                "cluster.nodegroups[1].disk_size",
                "cluster.nodegroups[1].ssh",
                "cluster.nodegroups[2].volume.iops",
                "cluster.nodegroups[2].pre_bootstrap_commands",
                "cluster.nodegroups[2].max_unavailable_percentage",
                "cluster.nodegroups[2].max_unavailable_percentage",
            ]
        );
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
    fn windows_nodegroups_need_linux_beside_them_and_refuse_what_windows_nodes_lack() {
        let spec = |network: &str, nodegroups: &str, fargate: &str| {
            format!("name: demo\nregion: us-east-1\nnetwork: {{cidr: 10.0.0.0/16, azs: 2{network}}}\ncluster:\n  version: '1.33'\n  nodegroups: [{nodegroups}]\n{fargate}")
        };
        let win = "{name: win, instance_types: [m5.large], ami_type: WINDOWS_FULL_2022_x86_64}";
        let linux = "{name: linux, instance_types: [m5.large]}";
        // beside a Linux nodegroup, or a Fargate profile that takes kube-system, it is fine
        assert_eq!(errors_of(&spec("", &format!("{win}, {linux}"), "")), Vec::<String>::new());
        let kube_system = "  fargate_profiles: [{name: sys, selectors: [{namespace: kube-system}]}]\n";
        assert_eq!(errors_of(&spec("", win, kube_system)), Vec::<String>::new());
        // alone, CoreDNS has nowhere to run; a Fargate profile of another namespace does not help
        let other = "  fargate_profiles: [{name: apps, selectors: [{namespace: apps}]}]\n";
        for f in ["", other] {
            let errs = errors_of(&spec("", win, f));
            assert!(
                errs.len() == 1 && errs[0].starts_with("cluster.nodegroups[0].ami_type:") && errs[0].contains("Linux"),
                "{errs:?}"
            );
        }
        // a type EKS does not have, custom networking, and SSH through eksodus's port-22 group
        let errs = errors_of(&spec(
            ", cni: {custom_networking: {secondary_cidr: 100.64.0.0/16}}",
            &format!("{linux}, {{name: w2, instance_types: [m5.large], ami_type: WINDOWS_CORE_2016_x86_64}}, {{name: w3, instance_types: [m5.large], ami_type: WINDOWS_CORE_2019_x86_64, ssh: {{key_name: ops}}}}"),
            "",
        ));
        for (p, needle) in [
            ("cluster.nodegroups[1].ami_type", "WINDOWS_CORE_2016_x86_64"),
            ("cluster.nodegroups[1].ami_type", "custom networking"),
            ("cluster.nodegroups[2].ami_type", "custom networking"),
            ("cluster.nodegroups[2].ssh", "3389"),
        ] {
            assert!(
                errs.iter().any(|e| e.starts_with(&format!("{p}:")) && e.contains(needle)),
                "{p} {needle}: {errs:#?}"
            );
        }
        // EKS's remote access (groups alone, no template) is RDP from those groups: allowed
        let rdp = "{name: w, instance_types: [m5.large], ami_type: WINDOWS_CORE_2019_x86_64, ssh: {key_name: ops, source_security_groups: [sg-0aaa]}}";
        assert_eq!(errors_of(&spec("", &format!("{linux}, {rdp}"), "")), Vec::<String>::new());
        // and a custom AMI, shell commands or Bottlerocket settings are not for Windows nodes
        let custom = "{name: w, instance_types: [m5.large], ami_type: WINDOWS_FULL_2022_x86_64, ami: ami-0123456789abcdef0, pre_bootstrap_commands: [echo]}";
        let errs = errors_of(&spec("", &format!("{linux}, {custom}"), ""));
        for p in ["cluster.nodegroups[1].ami", "cluster.nodegroups[1].pre_bootstrap_commands"] {
            assert!(errs.iter().any(|e| e.starts_with(&format!("{p}:"))), "missing {p} in {errs:#?}");
        }
    }

    #[test]
    fn an_ipv6_cluster_refuses_what_it_cannot_have_and_implies_a_dual_stack_vpc() {
        let base = "
name: demo
region: us-east-1
network: {cidr: 10.0.0.0/16, azs: 2, cni: {version: '1.9.3', custom_networking: {secondary_cidr: 100.64.0.0/16}}}
cluster:
  version: '1.33'
  ip_family: ipv6
  service_ipv4_cidr: 10.100.0.0/16
  nodegroups: [{name: win, ami_type: WINDOWS_CORE_2022_x86_64}]
";
        let errs = errors_of(base);
        for p in [
            "cluster.service_ipv4_cidr",
            "network.cni.custom_networking",
            "network.cni.version",
            "cluster.nodegroups[0].ami_type",
        ] {
            assert!(errs.iter().any(|e| e.starts_with(&format!("{p}:"))), "missing {p} in {errs:#?}");
        }
        // the same cluster in IPv4 has none of these errors, and no IPv6 block unless asked
        let v4 = base.replace("  ip_family: ipv6\n", "");
        assert!(
            errors_of(&v4)
                .iter()
                .all(|e| !e.starts_with("network.cni.") && !e.starts_with("cluster.service_ipv4_cidr")),
            "{:#?}",
            errors_of(&v4)
        );
        let spec = EnvironmentSpec::from_yaml(&v4).unwrap();
        assert!(!spec.ipv6_cluster() && !spec.dual_stack());
        let spec = EnvironmentSpec::from_yaml(base).unwrap();
        assert!(spec.ipv6_cluster() && spec.dual_stack());
        // the family round-trips, and IPv4 (the default) is left out
        let text = serde_saphyr::to_string(&spec).unwrap();
        assert!(text.contains("ip_family: ipv6"), "{text}");
        assert!(!serde_saphyr::to_string(&EnvironmentSpec::from_yaml(&v4).unwrap()).unwrap().contains("ip_family"));
        assert!(EnvironmentSpec::from_yaml(&base.replace("ip_family: ipv6", "ip_family: dual")).is_err());
    }

    #[test]
    fn cluster_errors_name_their_fields() {
        let errs = errors_of(
            "
name: demo
region: us-east-1
network: {cidr: 10.0.0.0/16, azs: [us-east-1a, us-east-1b]}
cluster:
  version: '1.20'
  endpoint: {public: false, private: false}
  logging: [api, everything]
  nodegroups:
    - {name: ng, instance_types: [], min: 3, desired: 2, max: 4, taints: [{key: a, effect: NoSchedule}], zones: [us-east-1z]}
  addons: [{name: coredns, resolve_conflicts: MERGE}, {name: coredns}]
",
        );
        for p in [
            "cluster.version",
            "cluster.endpoint",
            "cluster.logging[1]",
            "cluster.nodegroups[0].instance_types",
            "cluster.nodegroups[0].desired",
            "cluster.nodegroups[0].taints[0].effect",
            "cluster.nodegroups[0].zones[0]",
            "cluster.addons[0].resolve_conflicts",
            "cluster.addons[1].name",
        ] {
            assert!(errs.iter().any(|e| e.starts_with(&format!("{p}:"))), "missing {p} in {errs:#?}");
        }
        // with a count, EC2 names the zones at plan time, and a nodegroup's zones are checked then
        let counted = errors_of(
            "
name: demo
region: ap-northeast-1
network: {cidr: 10.0.0.0/16, azs: 2}
cluster:
  version: '1.33'
  nodegroups: [{name: ng, instance_types: [m5.large], zones: [ap-northeast-1c]}]
",
        );
        assert_eq!(counted, Vec::<String>::new());
    }

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("1.19.2"), Some((1, 19)));
        assert_eq!(parse_version("v1.9.0-eksbuild.1"), Some((1, 9)));
        assert_eq!(parse_version("x"), None);
    }
}
