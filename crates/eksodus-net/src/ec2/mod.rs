//! The EC2 reconciler: desired network resources from a [`Layout`], discovery by ownership tags, and an
//! [`Executor`] that creates, updates and deletes them through the engine.
//!
//! Resource keys (the `eksodus.io/resource` tag, or derived for untaggable things):
//!
//! | key | kind | depends on |
//! |---|---|---|
//! | `vpc` | vpc | |
//! | `vpc-cidr/secondary` | vpc-cidr | vpc |
//! | `vpc-cidr/ipv6` | vpc-ipv6-cidr | vpc |
//! | `subnet/<tier>/<az>` | subnet | vpc (pods: vpc-cidr/secondary; dual-stack: vpc-cidr/ipv6) |
//! | `igw` | internet-gateway | vpc |
//! | `eigw` | egress-only-igw (an IPv6 cluster's) | vpc |
//! | `eip/<az>` | eip | |
//! | `nat/<az>` | nat-gateway | `subnet/public/<az>`, `eip/<az>`, igw |
//! | `rtb/public`, `rtb/private/<az>` | route-table | vpc |
//! | `route/public/default`, `route/private/<az>/default` | route | its table, its target |
//! | `route/public/default-ipv6` | route | rtb/public, igw, vpc-cidr/ipv6 |
//! | `route/private/<az>/default-ipv6` | route (an IPv6 cluster's) | its table, eigw, vpc-cidr/ipv6 |
//! | `rtassoc/<tier>/<az>` | rt-association | its table, its subnet |
//! | `sg/cluster` | security-group | vpc |
//! | `sg/endpoints` | security-group | vpc |
//! | `vpce/<service>` | vpc-endpoint | vpc; interface: the private subnets, `sg/endpoints`; gateway: the private tables |
//!
//! Properties that refer to other resources hold their logical keys, never physical IDs, so a plan can be made
//! before anything exists and compares equal after apply.

mod desired;
mod discover;
mod execute;
mod props;
#[cfg(test)]
mod tests;

use props::to_props;
pub use props::{
    InternetGatewayProps, NatGatewayProps, RouteProps, RtAssociationProps, SecurityGroupProps, SubnetProps, TagsOnly,
    VpcCidrProps, VpcEndpointProps, VpcIpv6CidrProps, VpcProps,
};

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::sync::{Arc, OnceLock};

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{
    AttributeBooleanValue, DomainType, Filter, HostnameType, IpPermission, NatGatewayState, ResourceType,
    SubnetCidrBlockStateCode, Tag, TagSpecification, UserIdGroupPair, VpcAttributeName, VpcCidrBlockStateCode,
};
use aws_sdk_ec2::Client;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use serde_json::{json, Map, Value};

use eksodus_core::aws::{error_code, step_error, Calls};
use eksodus_core::engine::{
    retry, ApplyOptions, BoxFuture, ErrorClass, Executor, OpContext, OpKind, Operation, StepError, WaitState,
};
use eksodus_core::plan::{self, Cost, Desired, Observed, Plan};
use eksodus_core::spec::{AzSpec, EnvironmentSpec, FieldError, NatMode, VpcEndpointService};
use eksodus_core::tags;

use crate::layout::{self, Layout, ListedZone, Tier};
use crate::Error;

/// The component name in ownership tags.
pub const COMPONENT: &str = "network";

/// Every EC2 action this module calls (kept complete by a test that watches the calls).
pub const ACTIONS: &[&str] = &[
    "ec2:AllocateAddress",
    "ec2:AssociateRouteTable",
    "ec2:AssociateSubnetCidrBlock",
    "ec2:AssociateVpcCidrBlock",
    "ec2:AttachInternetGateway",
    "ec2:AuthorizeSecurityGroupIngress",
    "ec2:CreateEgressOnlyInternetGateway",
    "ec2:CreateInternetGateway",
    "ec2:CreateNatGateway",
    "ec2:CreateRoute",
    "ec2:CreateRouteTable",
    "ec2:CreateSecurityGroup",
    "ec2:CreateSubnet",
    "ec2:CreateTags",
    "ec2:CreateVpc",
    "ec2:CreateVpcEndpoint",
    "ec2:DeleteEgressOnlyInternetGateway",
    "ec2:DeleteInternetGateway",
    "ec2:DeleteNatGateway",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteRoute",
    "ec2:DeleteRouteTable",
    "ec2:DeleteSecurityGroup",
    "ec2:DeleteSubnet",
    "ec2:DeleteVpc",
    "ec2:DeleteVpcEndpoints",
    "ec2:DescribeAddresses",
    "ec2:DescribeAvailabilityZones",
    "ec2:DescribeEgressOnlyInternetGateways",
    "ec2:DescribeImages",
    "ec2:DescribeInstanceTypeOfferings",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeInternetGateways",
    "ec2:DescribeNatGateways",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeRouteTables",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcAttribute",
    "ec2:DescribeVpcEndpoints",
    "ec2:DescribeVpcs",
    "ec2:DetachInternetGateway",
    "ec2:DisassociateRouteTable",
    "ec2:DisassociateSubnetCidrBlock",
    "ec2:DisassociateVpcCidrBlock",
    "ec2:ModifySubnetAttribute",
    "ec2:ModifyVpcAttribute",
    "ec2:ModifyVpcEndpoint",
    "ec2:ReleaseAddress",
    "ec2:ReplaceRoute",
    "ec2:ReplaceRouteTableAssociation",
    "ec2:RevokeSecurityGroupIngress",
];

/// Tag Kubernetes uses to find the subnets of a cluster.
pub fn cluster_tag(cluster: &str) -> String {
    format!("kubernetes.io/cluster/{cluster}")
}

/// The key of the security group that lets a nodegroup on eksodus's launch template be reached over SSH.
pub fn ssh_group_key(nodegroup: &str) -> String {
    format!("sg/ssh/{nodegroup}")
}

/// Its name: `<environment>-<nodegroup>-ssh`.
pub fn ssh_group_name(env: &str, nodegroup: &str) -> String {
    format!("{env}-{nodegroup}-ssh")
}

/// The key of the VPC's IPv6 block (dual-stack).
pub const IPV6_CIDR_KEY: &str = "vpc-cidr/ipv6";
/// EC2's name of Amazon's pool of IPv6 addresses.
const AMAZON_POOL: &str = "Amazon";
/// The IPv6 default route's destination.
const IPV6_DEFAULT: &str = "::/0";
/// The key of the egress-only internet gateway of an IPv6 cluster's private subnets.
pub const EIGW_KEY: &str = "eigw";

/// The key of the security group of the VPC endpoints.
pub const ENDPOINTS_SG_KEY: &str = "sg/endpoints";

/// The key of the VPC endpoint of `service`.
pub fn endpoint_key(service: VpcEndpointService) -> String {
    format!("vpce/{service}")
}

/// Role tag for subnets of internet-facing load balancers.
pub const ELB_TAG: &str = "kubernetes.io/role/elb";
/// Role tag for subnets of internal load balancers.
pub const INTERNAL_ELB_TAG: &str = "kubernetes.io/role/internal-elb";

/// The resource kinds this reconciler executes (for [`eksodus_core::engine::Router`]).
pub const KINDS: &[&str] = &[
    "vpc",
    "vpc-cidr",
    "vpc-ipv6-cidr",
    "subnet",
    "internet-gateway",
    "egress-only-igw",
    "eip",
    "nat-gateway",
    "route-table",
    "route",
    "rt-association",
    "security-group",
    "vpc-endpoint",
];

/// Kinds that carry tags (the others are found through their parent).
const TAGGABLE: &[&str] = &[
    "vpc",
    "subnet",
    "internet-gateway",
    "egress-only-igw",
    "eip",
    "nat-gateway",
    "route-table",
    "security-group",
    "vpc-endpoint",
];

/// Reconciles one environment's network.
#[derive(Debug, Clone)]
pub struct Network {
    ec2: Client,
    env: String,
    user_tags: BTreeMap<String, String>,
    adopted_vpc: Option<String>,
    reads: ApplyOptions,
    calls: Calls,
    /// The region's zones as EC2 lists them, read once (the listing does not change under a running process).
    zones: Arc<OnceLock<Vec<ListedZone>>>,
}

/// What discovery found: the observed resources and their physical ID → key map.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// Owned resources.
    pub observed: Vec<Observed>,
    /// Physical ID → logical key of every owned resource.
    pub keys: HashMap<String, String>,
}

use eksodus_core::aws::Judge;

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

use eksodus_core::plan::props;

/// A TCP port rule eksodus keeps on a group, source by source: the SSH rules (port 22 from groups, and from
/// CIDRs) and the endpoints' HTTPS rule (port 443 from CIDRs). Each names its property in
/// [`SecurityGroupProps`].
#[derive(Debug, Clone, Copy)]
struct PortRule {
    /// The property listing the sources.
    property: &'static str,
    port: i32,
    /// Sources are security groups (else CIDRs).
    groups: bool,
    /// The description its CIDR sources carry, which tells them from rules of the same port that are not
    /// this rule's; `None` for a rule whose sources carry no description of eksodus's.
    description: Option<&'static str>,
}

/// The key of the cluster's security group (the control plane's and the nodes').
pub const CLUSTER_SG_KEY: &str = "sg/cluster";

/// The description of the cluster group's rules that let hybrid nodes' networks reach the API server: how
/// eksodus tells its own port-443 sources on that group from anyone else's.
pub const REMOTE_RULE_DESCRIPTION: &str = "eksodus: hybrid nodes and pods to the API server";

const SSH: PortRule = PortRule { property: "ssh_from", port: 22, groups: true, description: None };
const SSH_CIDRS: PortRule = PortRule { property: "ssh_from_cidrs", port: 22, groups: false, description: None };
const HTTPS: PortRule = PortRule { property: "https_from", port: 443, groups: false, description: None };
const REMOTE_HTTPS: PortRule =
    PortRule { property: "remote_https_from", port: 443, groups: false, description: Some(REMOTE_RULE_DESCRIPTION) };
/// Every rule eksodus keeps, source by source.
const PORT_RULES: [PortRule; 4] = [SSH, SSH_CIDRS, HTTPS, REMOTE_HTTPS];

impl PortRule {
    /// Whether `p` is this rule: TCP on its port alone.
    fn matches(self, p: &IpPermission) -> bool {
        matches!(p.ip_protocol(), Some("tcp") | Some("6"))
            && p.from_port() == Some(self.port)
            && p.to_port() == Some(self.port)
    }

    /// The sources a group's rules let in on this port, sorted, each once.
    fn sources(self, perms: &[IpPermission]) -> Vec<String> {
        let mut v: Vec<String> = perms
            .iter()
            .filter(|p| self.matches(p))
            .flat_map(|p| {
                if self.groups {
                    p.user_id_group_pairs().iter().filter_map(|u| u.group_id().map(String::from)).collect::<Vec<_>>()
                } else {
                    // a source belongs to the rule whose description it carries
                    p.ip_ranges()
                        .iter()
                        .filter(|r| match self.description {
                            Some(d) => r.description() == Some(d),
                            None => r.description() != Some(REMOTE_RULE_DESCRIPTION),
                        })
                        .filter_map(|r| r.cidr_ip().map(String::from))
                        .collect()
                }
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The rule from these sources.
    fn permission(self, from: &[String]) -> IpPermission {
        let b = IpPermission::builder().ip_protocol("tcp").from_port(self.port).to_port(self.port);
        if self.groups {
            b.set_user_id_group_pairs(Some(
                from.iter().map(|g| UserIdGroupPair::builder().group_id(g).build()).collect(),
            ))
        } else {
            b.set_ip_ranges(Some(
                from.iter()
                    .map(|c| {
                        aws_sdk_ec2::types::IpRange::builder()
                            .cidr_ip(c)
                            .set_description(self.description.map(String::from))
                            .build()
                    })
                    .collect(),
            ))
        }
        .build()
    }
}

/// Whether a route destination is an IPv6 block.
fn is_ipv6(dest: &str) -> bool {
    dest.contains(':')
}

/// A subnet's IPv6 block, if it has one that is not being taken away.
fn subnet_ipv6_block(s: &aws_sdk_ec2::types::Subnet) -> Option<ipnet::Ipv6Net> {
    s.ipv6_cidr_block_association_set()
        .iter()
        .filter(|a| {
            a.ipv6_cidr_block_state().and_then(|s| s.state()).is_some_and(|s| {
                matches!(s, SubnetCidrBlockStateCode::Associated | SubnetCidrBlockStateCode::Associating)
            })
        })
        .find_map(|a| a.ipv6_cidr_block()?.parse().ok())
}

/// A VPC endpoint's state, lower case. EC2 writes `available`, `pending`, `deleted`, ... while the SDK's enum
/// spells them capitalized (`Available`), so its variants never match what the service sends.
fn endpoint_state(e: &aws_sdk_ec2::types::VpcEndpoint) -> String {
    e.state().map(|s| s.as_str().to_ascii_lowercase()).unwrap_or_default()
}

/// A list of strings in a property map (keys or CIDRs); empty when absent.
fn list_of(m: Option<&Map<String, Value>>, k: &str) -> Vec<String> {
    m.and_then(|m| m.get(k))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// The keys a property lists.
fn keys_of(m: &Map<String, Value>, k: &str) -> Vec<String> {
    list_of(Some(m), k)
}

/// A boolean property; false when absent.
fn bool_of(m: &Map<String, Value>, k: &str) -> bool {
    m.get(k).and_then(Value::as_bool).unwrap_or(false)
}

fn tag_map(t: &[Tag]) -> BTreeMap<String, String> {
    t.iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string()))).collect()
}

fn is_gone(code: Option<&str>) -> bool {
    code.is_some_and(|c| c.ends_with(".NotFound") || c.ends_with("NotFound") || c == "Gateway.NotAttached")
}

impl Network {
    /// A lookup inside an operation, retried on its own with the read policy: one throttled read must not throw
    /// away the writes the attempt already made and start it over.
    async fn op_read<T, E, F, Fut>(&self, what: String, call: F) -> Result<T, StepError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.op_call(what, call, |what, r| r.map_err(|e| step_error(what, e))).await
    }

    /// One idempotent removal inside an operation (a delete, detach, disassociate or revoke): "already gone"
    /// counts as done, and throttling or a transient error retries this call alone with the read policy, so a
    /// fault late in a multi-call operation does not throw away the calls before it.
    async fn op_gone<T, E, F, Fut>(&self, what: String, call: F) -> Result<(), StepError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.op_call(what, call, gone_ok).await
    }

    /// One call inside an operation, retried on its own ([`Calls::read`]); `judge` turns its outcome into the
    /// step's. An eventual-consistency answer the judge calls transient (a dependency still being released) is
    /// tried again with the engine's backoff.
    async fn op_call<T, U, E, F, Fut>(&self, what: String, call: F, judge: Judge<T, U, E>) -> Result<U, StepError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        eksodus_core::aws::op_call(&self.reads, &self.calls, what, call, judge).await
    }

    /// One read, retried on throttling and transient errors with the reconciler's read policy.
    async fn read<T, E, F, Fut>(&self, what: &'static str, call: F) -> Result<T, Error>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.op_read(what.to_string(), call).await.map_err(Error::Aws)
    }
}

fn into_step(e: Error) -> StepError {
    match e {
        Error::Aws(se) => se,
        other => StepError::permanent(other.to_string()),
    }
}

/// Maps an SDK error of a call made by an operation.
fn se<E>(what: String) -> impl FnOnce(SdkError<E, HttpResponse>) -> StepError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    move |err| step_error(what, err)
}

/// Treats "already gone" as success for deletes.
fn gone_ok<T, E>(what: impl Display, r: Result<T, SdkError<E, HttpResponse>>) -> Result<(), StepError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match r {
        Ok(_) => Ok(()),
        Err(e) if is_gone(error_code(&e)) => Ok(()),
        Err(e) if error_code(&e) == Some("DependencyViolation") => {
            // Usually eventual consistency right after a dependent was removed: retry, bounded by the engine.
            let mut se = step_error(what, e);
            se.class = ErrorClass::Transient;
            Err(se)
        }
        Err(e) => Err(step_error(what, e)),
    }
}

impl Network {
    /// A reconciler for `spec`'s environment.
    pub fn new(ec2: Client, spec: &EnvironmentSpec) -> Self {
        let calls = Calls::for_region("ec2", &ec2.config().region().map(|r| r.to_string()).unwrap_or_default());
        Network {
            ec2,
            calls,
            env: spec.name.clone(),
            user_tags: spec.tags.clone(),
            adopted_vpc: spec.network.existing.as_ref().map(|e| e.vpc_id.clone()),
            reads: ApplyOptions::default(),
            zones: Arc::default(),
        }
    }

    /// `spec` with `network.azs: N` replaced by the zones it stands for in the region ([`layout::pick_zones`],
    /// read from EC2 once per reconciler); `None` when the spec names its zones or adopts a VPC. Its Local
    /// Zones are checked against the same listing ([`layout::check_local_zones`]).
    pub async fn resolve_zones(&self, spec: &EnvironmentSpec) -> Result<Option<EnvironmentSpec>, Error> {
        let count = match spec.network.azs {
            AzSpec::Count(n) => Some(n),
            AzSpec::Names(_) => None,
        };
        if spec.network.existing.is_some() || (count.is_none() && spec.network.local_zones.is_empty()) {
            return Ok(None);
        }
        let listed = match self.zones.get() {
            Some(z) => z.clone(),
            None => {
                let r =
                    self.read("DescribeAvailabilityZones", || self.ec2.describe_availability_zones().send()).await?;
                let z: Vec<ListedZone> = r
                    .availability_zones()
                    .iter()
                    .filter_map(|z| {
                        Some(ListedZone {
                            name: z.zone_name()?.to_string(),
                            zone_type: z.zone_type().map(String::from),
                            opt_in_status: z.opt_in_status().map(|s| s.as_str().to_string()),
                        })
                    })
                    .collect();
                let _ = self.zones.set(z.clone());
                z
            }
        };
        layout::check_local_zones(&listed, &spec.network.local_zones)?;
        let Some(n) = count else { return Ok(None) };
        let mut out = spec.clone();
        out.network.azs = AzSpec::Names(layout::pick_zones(&listed, n.into())?);
        Ok(Some(out))
    }

    /// Uses `opts`' retry policies: its call policy for every AWS call, its operation policy for the
    /// eventual-consistency retries inside operations.
    pub fn with_retry(mut self, opts: ApplyOptions) -> Self {
        self.reads = opts;
        self.calls = self.calls.with_policy(opts.calls);
        self
    }

    /// The caller of EC2 this reconciler uses.
    pub fn calls(&self) -> &Calls {
        &self.calls
    }

    /// Calls AWS through `calls` (keyed to the SDK configuration's region and endpoint, and so shared with every
    /// other client of the process that talks to the same place).
    pub fn with_calls(mut self, calls: Calls) -> Self {
        self.calls = calls.with_policy(*self.calls.policy());
        self
    }

    fn owner_tags(&self, key: &str) -> BTreeMap<String, String> {
        tags::ownership(&self.env, COMPONENT, key, &self.user_tags)
    }

    fn tag_spec(&self, rt: ResourceType, key: &str, extra: &Map<String, Value>) -> TagSpecification {
        let mut all = self.owner_tags(key);
        for (k, v) in extra {
            all.insert(k.clone(), v.as_str().unwrap_or("").to_string());
        }
        TagSpecification::builder()
            .resource_type(rt)
            .set_tags(Some(all.into_iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()))
            .build()
    }

    fn owned_filters(&self) -> Vec<Filter> {
        vec![
            filter(&format!("tag:{}", tags::ENVIRONMENT), &self.env),
            filter(&format!("tag:{}", tags::COMPONENT), COMPONENT),
        ]
    }
}

/// The architecture (`x86_64`, `arm64`) of each AMI EC2 shows this account in its region; an AMI missing from
/// the answer does not exist there, or is not shared with the account. One DescribeImages per AMI, so that a
/// missing one does not hide the others (EC2 fails the whole call on one unknown ID).
pub async fn describe_images(ec2: &Client, ids: &[String]) -> Result<BTreeMap<String, String>, Error> {
    let region = ec2.config().region().map(|r| r.to_string()).unwrap_or_default();
    let calls = Calls::for_region("ec2", &region);
    let mut ids = ids.to_vec();
    ids.sort();
    ids.dedup();
    let mut out = BTreeMap::new();
    for id in ids {
        match calls.read(|| ec2.describe_images().image_ids(&id).send()).await {
            Ok(r) => {
                for i in r.images() {
                    if let Some(got) = i.image_id() {
                        let arch = i.architecture().map(|a| a.as_str().to_string()).unwrap_or_default();
                        out.insert(got.to_string(), arch);
                    }
                }
            }
            Err(e) if error_code(&e).is_some_and(|c| c.starts_with("InvalidAMIID.")) => {}
            Err(e) => return Err(Error::Aws(step_error("DescribeImages", e))),
        }
    }
    Ok(out)
}

/// vCPU counts of instance types from EC2 DescribeInstanceTypes, for the max-pods caps.
pub async fn describe_vcpus(ec2: &Client, types: &[String]) -> Result<BTreeMap<String, u32>, Error> {
    let region = ec2.config().region().map(|r| r.to_string()).unwrap_or_default();
    let calls = Calls::for_region("ec2", &region);
    let mut out = BTreeMap::new();
    // each type once: two nodegroups of one type would otherwise name it twice, which EC2 refuses
    // (InvalidInstanceType) and was hidden while a failed lookup fell back to no vCPUs
    let mut types = types.to_vec();
    types.sort();
    types.dedup();
    for chunk in types.chunks(100) {
        let wanted: Vec<aws_sdk_ec2::types::InstanceType> =
            chunk.iter().map(|t| aws_sdk_ec2::types::InstanceType::from(t.as_str())).collect();
        let r = calls
            .read(|| ec2.describe_instance_types().set_instance_types(Some(wanted.clone())).send())
            .await
            .map_err(|e| Error::Aws(step_error("DescribeInstanceTypes", e)))?;
        for t in r.instance_types() {
            if let (Some(name), Some(v)) = (t.instance_type(), t.v_cpu_info().and_then(|v| v.default_v_cpus())) {
                out.insert(name.as_str().to_string(), v as u32);
            }
        }
    }
    Ok(out)
}

/// The IDs of the subnets of `vpc_id` whose IPv4 block is each of `cidrs`, in order; `None` where the VPC has
/// no such subnet. One DescribeSubnets call (filtered by VPC and blocks), retried on its own.
pub async fn subnets_by_cidr(
    ec2: &Client,
    vpc_id: &str,
    cidrs: &[ipnet::Ipv4Net],
) -> Result<Vec<Option<String>>, Error> {
    use aws_sdk_ec2::types::Filter;
    if cidrs.is_empty() {
        return Ok(vec![]);
    }
    let region = ec2.config().region().map(|r| r.to_string()).unwrap_or_default();
    let calls = Calls::for_region("ec2", &region);
    let blocks: Vec<String> = cidrs.iter().map(|c| c.to_string()).collect();
    let r = calls
        .read(|| {
            ec2.describe_subnets()
                .filters(Filter::builder().name("vpc-id").values(vpc_id).build())
                .filters(Filter::builder().name("cidr-block").set_values(Some(blocks.clone())).build())
                .send()
        })
        .await
        .map_err(|e| Error::Aws(step_error("DescribeSubnets", e)))?;
    let by_block: BTreeMap<&str, &str> =
        r.subnets().iter().filter_map(|s| Some((s.cidr_block()?, s.subnet_id()?))).collect();
    Ok(blocks.iter().map(|b| by_block.get(b.as_str()).map(|id| id.to_string())).collect())
}

/// What EC2 says of instance types for [`crate::select`]: `names` alone, or every type of the region (all
/// pages of DescribeInstanceTypes), each with the zones it is offered in (DescribeInstanceTypeOfferings). A
/// name EC2 does not know is left out, not an error: the selector then says it no longer matches.
pub async fn instance_catalogue(
    ec2: &Client,
    names: Option<&[String]>,
) -> Result<Vec<crate::select::InstanceTypeInfo>, Error> {
    use aws_sdk_ec2::types::{Filter, InstanceType, LocationType};
    let region = ec2.config().region().map(|r| r.to_string()).unwrap_or_default();
    let calls = Calls::for_region("ec2", &region);
    let mut raw = Vec::new();
    match names {
        Some(names) => {
            // one call per name: a name EC2 dropped would fail a call naming several (InvalidInstanceType)
            let mut names = names.to_vec();
            names.sort();
            names.dedup();
            for n in names {
                let r = calls
                    .read(|| ec2.describe_instance_types().instance_types(InstanceType::from(n.as_str())).send())
                    .await;
                match r {
                    Ok(r) => raw.extend(r.instance_types().iter().cloned()),
                    Err(e) if error_code(&e).is_some_and(|c| c == "InvalidInstanceType") => {}
                    Err(e) => return Err(Error::Aws(step_error("DescribeInstanceTypes", e))),
                }
            }
        }
        None => {
            let mut token: Option<String> = None;
            loop {
                let r = calls
                    .read(|| ec2.describe_instance_types().max_results(100).set_next_token(token.clone()).send())
                    .await
                    .map_err(|e| Error::Aws(step_error("DescribeInstanceTypes", e)))?;
                raw.extend(r.instance_types().iter().cloned());
                token = r.next_token().filter(|t| !t.is_empty()).map(String::from);
                if token.is_none() {
                    break;
                }
            }
        }
    }
    // where each is offered: the region's offerings by zone (of the types named, when types are named)
    let mut zones: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    let wanted: Vec<String> = raw.iter().filter_map(|t| t.instance_type().map(|n| n.as_str().to_string())).collect();
    let filters: Vec<Option<Filter>> = match names {
        None => vec![None],
        Some(_) => wanted
            .chunks(100)
            .map(|c| Some(Filter::builder().name("instance-type").set_values(Some(c.to_vec())).build()))
            .collect(),
    };
    for filter in filters {
        let mut token: Option<String> = None;
        loop {
            let r = calls
                .read(|| {
                    ec2.describe_instance_type_offerings()
                        .location_type(LocationType::AvailabilityZone)
                        .set_filters(filter.clone().map(|f| vec![f]))
                        .set_next_token(token.clone())
                        .send()
                })
                .await
                .map_err(|e| Error::Aws(step_error("DescribeInstanceTypeOfferings", e)))?;
            for o in r.instance_type_offerings() {
                if let (Some(t), Some(z)) = (o.instance_type(), o.location()) {
                    zones.entry(t.as_str().to_string()).or_default().insert(z.to_string());
                }
            }
            token = r.next_token().filter(|t| !t.is_empty()).map(String::from);
            if token.is_none() {
                break;
            }
        }
    }
    Ok(raw
        .iter()
        .filter_map(|t| {
            let name = t.instance_type()?.as_str().to_string();
            Some(crate::select::InstanceTypeInfo {
                vcpus: t.v_cpu_info().and_then(|v| v.default_v_cpus()).unwrap_or(0) as u32,
                memory_mib: t.memory_info().and_then(|m| m.size_in_mib()).unwrap_or(0) as u32,
                gpus: t
                    .gpu_info()
                    .map(|g| g.gpus().iter().map(|d| d.count().unwrap_or(0).max(0) as u32).sum())
                    .unwrap_or(0),
                architectures: t
                    .processor_info()
                    .map(|p| p.supported_architectures().iter().map(|a| a.as_str().to_string()).collect())
                    .unwrap_or_default(),
                usage_classes: t.supported_usage_classes().iter().map(|c| c.as_str().to_string()).collect(),
                zones: zones.remove(&name).unwrap_or_default(),
                name,
            })
        })
        .collect())
}
