//! The EC2 reconciler: desired network resources from a [`Layout`], discovery by ownership tags, and an
//! [`Executor`] that creates, updates and deletes them through the engine.
//!
//! Resource keys (the `eksodus.io/resource` tag, or derived for untaggable things):
//!
//! | key | kind | depends on |
//! |---|---|---|
//! | `vpc` | vpc | |
//! | `vpc-cidr/secondary` | vpc-cidr | vpc |
//! | `subnet/<tier>/<az>` | subnet | vpc (pods: vpc-cidr/secondary) |
//! | `igw` | internet-gateway | vpc |
//! | `eip/<az>` | eip | |
//! | `nat/<az>` | nat-gateway | `subnet/public/<az>`, `eip/<az>`, igw |
//! | `rtb/public`, `rtb/private/<az>` | route-table | vpc |
//! | `route/public/default`, `route/private/<az>/default` | route | its table, its target |
//! | `rtassoc/<tier>/<az>` | rt-association | its table, its subnet |
//! | `sg/cluster` | security-group | vpc |
//!
//! Properties that refer to other resources hold their logical keys, never physical IDs, so a plan can be made
//! before anything exists and compares equal after apply.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{
    AttributeBooleanValue, DomainType, Filter, IpPermission, NatGatewayState, ResourceType, Tag, TagSpecification,
    UserIdGroupPair, VpcAttributeName,
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
use eksodus_core::spec::{EnvironmentSpec, FieldError, NatMode};
use eksodus_core::tags;

use crate::layout::{self, Layout, Tier};
use crate::Error;

/// The component name in ownership tags.
pub const COMPONENT: &str = "network";

/// Every EC2 action this module calls (kept complete by a test that watches the calls).
pub const ACTIONS: &[&str] = &[
    "ec2:AllocateAddress",
    "ec2:AssociateRouteTable",
    "ec2:AssociateVpcCidrBlock",
    "ec2:AttachInternetGateway",
    "ec2:AuthorizeSecurityGroupIngress",
    "ec2:CreateInternetGateway",
    "ec2:CreateNatGateway",
    "ec2:CreateRoute",
    "ec2:CreateRouteTable",
    "ec2:CreateSecurityGroup",
    "ec2:CreateSubnet",
    "ec2:CreateTags",
    "ec2:CreateVpc",
    "ec2:DeleteInternetGateway",
    "ec2:DeleteNatGateway",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteRoute",
    "ec2:DeleteRouteTable",
    "ec2:DeleteSecurityGroup",
    "ec2:DeleteSubnet",
    "ec2:DeleteVpc",
    "ec2:DescribeAddresses",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeInternetGateways",
    "ec2:DescribeNatGateways",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeRouteTables",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcAttribute",
    "ec2:DescribeVpcs",
    "ec2:DetachInternetGateway",
    "ec2:DisassociateRouteTable",
    "ec2:DisassociateVpcCidrBlock",
    "ec2:ModifySubnetAttribute",
    "ec2:ModifyVpcAttribute",
    "ec2:ReleaseAddress",
    "ec2:ReplaceRoute",
    "ec2:ReplaceRouteTableAssociation",
    "ec2:RevokeSecurityGroupIngress",
];

/// Tag Kubernetes uses to find the subnets of a cluster.
pub fn cluster_tag(cluster: &str) -> String {
    format!("kubernetes.io/cluster/{cluster}")
}

/// Role tag for subnets of internet-facing load balancers.
pub const ELB_TAG: &str = "kubernetes.io/role/elb";
/// Role tag for subnets of internal load balancers.
pub const INTERNAL_ELB_TAG: &str = "kubernetes.io/role/internal-elb";

/// The resource kinds this reconciler executes (for [`eksodus_core::engine::Router`]).
pub const KINDS: &[&str] = &[
    "vpc",
    "vpc-cidr",
    "subnet",
    "internet-gateway",
    "eip",
    "nat-gateway",
    "route-table",
    "route",
    "rt-association",
    "security-group",
];

/// Kinds that carry tags (the others are found through their parent).
const TAGGABLE: &[&str] = &["vpc", "subnet", "internet-gateway", "eip", "nat-gateway", "route-table", "security-group"];

/// Reconciles one environment's network.
#[derive(Debug, Clone)]
pub struct Network {
    ec2: Client,
    env: String,
    user_tags: BTreeMap<String, String>,
    adopted_vpc: Option<String>,
    reads: ApplyOptions,
    calls: Calls,
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
        }
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

    /// The resources `spec` wants, for `layout` (absent when adopting an existing VPC).
    pub fn desired(&self, spec: &EnvironmentSpec, layout: Option<&Layout>) -> Vec<Desired> {
        let mut out = Vec::new();
        let user_tags = &self.user_tags;
        let d = |key: &str, kind: &str, p: Value, immutable: &[&str], deps: Vec<String>, cost: Cost| {
            let mut p = props(p);
            if TAGGABLE.contains(&kind) {
                // the user's tags are wanted on every taggable resource, next to any kind-specific ones
                let t = p.entry(plan::TAGS).or_insert_with(|| json!({}));
                if let Value::Object(t) = t {
                    for (k, v) in user_tags {
                        t.entry(k.clone()).or_insert_with(|| json!(v));
                    }
                }
            }
            Desired {
                key: key.to_string(),
                kind: kind.to_string(),
                props: p,
                immutable: immutable.iter().map(|s| s.to_string()).collect(),
                depends_on: deps,
                cost,
            }
        };
        let Some(layout) = layout else {
            // Adopted VPC: only the cluster security group is ours.
            out.push(d(
                "sg/cluster",
                "security-group",
                json!({"name": format!("{}-cluster", self.env), "description": "eksodus cluster security group", "self_ingress": true}),
                &["name", "description"],
                vec![],
                Cost::new(2, 1, 2),
            ));
            return out;
        };
        out.push(d(
            "vpc",
            "vpc",
            json!({"cidr": layout.vpc.to_string(), "dns_support": true, "dns_hostnames": true}),
            &["cidr"],
            vec![],
            Cost::new(2, 1, 2),
        ));
        if let Some(sec) = layout.secondary {
            out.push(d(
                "vpc-cidr/secondary",
                "vpc-cidr",
                json!({"cidr": sec.to_string()}),
                &["cidr"],
                vec!["vpc".into()],
                Cost::new(1, 0, 1),
            ));
        }
        let public = layout.subnets.iter().any(|s| s.tier == Tier::Public);
        for s in &layout.subnets {
            let mut t = Map::new();
            t.insert(cluster_tag(&spec.name), json!("shared"));
            match s.tier {
                Tier::Public => {
                    t.insert(ELB_TAG.into(), json!("1"));
                }
                Tier::Private => {
                    t.insert(INTERNAL_ELB_TAG.into(), json!("1"));
                }
                Tier::Pods => {}
            }
            let mut deps = vec!["vpc".to_string()];
            if s.tier == Tier::Pods {
                deps.push("vpc-cidr/secondary".into());
            }
            let public_ip = s.tier == Tier::Public;
            out.push(d(
                &s.key(),
                "subnet",
                json!({"cidr": s.cidr.to_string(), "az": s.az, "map_public_ip": public_ip, "tags": t}),
                &["cidr", "az"],
                deps,
                Cost::new(if public_ip { 2 } else { 1 }, 1, 2),
            ));
        }
        if public {
            out.push(d(
                "igw",
                "internet-gateway",
                json!({"attached": true}),
                &[],
                vec!["vpc".into()],
                Cost::new(2, 1, 2),
            ));
            out.push(d("rtb/public", "route-table", json!({}), &[], vec!["vpc".into()], Cost::new(1, 0, 1)));
            out.push(d(
                "route/public/default",
                "route",
                json!({"route_table": "rtb/public", "destination": "0.0.0.0/0", "target": "igw"}),
                &["route_table", "destination"],
                vec!["rtb/public".into(), "igw".into()],
                Cost::new(1, 1, 1),
            ));
        }
        let nat_azs: Vec<&String> = match spec.network.nat {
            NatMode::None => vec![],
            NatMode::Single => layout.azs.iter().take(1).collect(),
            NatMode::PerAz => layout.azs.iter().collect(),
        };
        for az in &nat_azs {
            out.push(d(&format!("eip/{az}"), "eip", json!({}), &[], vec![], Cost::new(1, 0, 1)));
            out.push(d(
                &format!("nat/{az}"),
                "nat-gateway",
                json!({"subnet": format!("subnet/public/{az}"), "eip": format!("eip/{az}"), "healthy": true}),
                &["subnet", "eip", "healthy"],
                vec![format!("subnet/public/{az}"), format!("eip/{az}"), "igw".into()],
                Cost::new(1, 0, 2),
            ));
        }
        for az in &layout.azs {
            let rtb = format!("rtb/private/{az}");
            out.push(d(&rtb, "route-table", json!({}), &[], vec!["vpc".into()], Cost::new(1, 0, 1)));
            if let Some(nat_az) = match spec.network.nat {
                NatMode::None => None,
                NatMode::Single => nat_azs.first().copied(),
                NatMode::PerAz => Some(az),
            } {
                let nat = format!("nat/{nat_az}");
                out.push(d(
                    &format!("route/private/{az}/default"),
                    "route",
                    json!({"route_table": rtb, "destination": "0.0.0.0/0", "target": nat}),
                    &["route_table", "destination"],
                    vec![rtb.clone(), nat.clone()],
                    Cost::new(1, 1, 1),
                ));
            }
        }
        for s in &layout.subnets {
            let rtb = match s.tier {
                Tier::Public => "rtb/public".to_string(),
                _ => format!("rtb/private/{}", s.az),
            };
            out.push(d(
                &format!("rtassoc/{}/{}", s.tier, s.az),
                "rt-association",
                json!({"route_table": rtb, "subnet": s.key()}),
                &["subnet"],
                vec![rtb.clone(), s.key()],
                Cost::new(1, 1, 1),
            ));
        }
        out.push(d(
            "sg/cluster",
            "security-group",
            json!({"name": format!("{}-cluster", self.env), "description": "eksodus cluster security group", "self_ingress": true}),
            &["name", "description"],
            vec!["vpc".into()],
            Cost::new(2, 1, 2),
        ));
        out
    }

    /// Finds every owned network resource (a handful of Describe calls, run concurrently), retrying
    /// throttling and transient errors.
    pub async fn discover(&self) -> Result<Discovery, Error> {
        // boxed: the SDK's futures are large, and callers should not have to carry them on their stack
        Box::pin(self.discover_inner()).await
    }

    async fn discover_inner(&self) -> Result<Discovery, Error> {
        let f = self.owned_filters();
        let (vpcs, subnets, igws, eips, nats, rtbs, sgs) = tokio::try_join!(
            self.read("DescribeVpcs", || self.ec2.describe_vpcs().set_filters(Some(f.clone())).send()),
            self.read("DescribeSubnets", || self.ec2.describe_subnets().set_filters(Some(f.clone())).send()),
            self.read("DescribeInternetGateways", || self
                .ec2
                .describe_internet_gateways()
                .set_filters(Some(f.clone()))
                .send()),
            self.read("DescribeAddresses", || self.ec2.describe_addresses().set_filters(Some(f.clone())).send()),
            self.read("DescribeNatGateways", || self.ec2.describe_nat_gateways().set_filter(Some(f.clone())).send()),
            self.read("DescribeRouteTables", || self.ec2.describe_route_tables().set_filters(Some(f.clone())).send()),
            self.read("DescribeSecurityGroups", || self
                .ec2
                .describe_security_groups()
                .set_filters(Some(f.clone()))
                .send()),
        )?;
        let mut d = Discovery::default();
        // keep only what this environment's network owns, whatever filters the server honoured
        let key_of = |t: &[Tag]| {
            let t = tag_map(t);
            if tags::is_owned(&t, &self.env, COMPONENT) {
                t.get(tags::RESOURCE).cloned()
            } else {
                None
            }
        };

        for v in vpcs.vpcs() {
            let (Some(id), Some(key)) = (v.vpc_id(), key_of(v.tags())) else { continue };
            d.keys.insert(id.to_string(), key.clone());
            let (dns_s, dns_h) = tokio::try_join!(
                async {
                    self.read("DescribeVpcAttribute", || {
                        self.ec2
                            .describe_vpc_attribute()
                            .vpc_id(id)
                            .attribute(VpcAttributeName::EnableDnsSupport)
                            .send()
                    })
                    .await
                },
                async {
                    self.read("DescribeVpcAttribute", || {
                        self.ec2
                            .describe_vpc_attribute()
                            .vpc_id(id)
                            .attribute(VpcAttributeName::EnableDnsHostnames)
                            .send()
                    })
                    .await
                },
            )?;
            d.observed.push(Observed {
                key: key.clone(),
                kind: "vpc".into(),
                physical_id: id.to_string(),
                props: props(json!({
                    "cidr": v.cidr_block(),
                    "dns_support": dns_s.enable_dns_support().and_then(|a| a.value()).unwrap_or(false),
                    "dns_hostnames": dns_h.enable_dns_hostnames().and_then(|a| a.value()).unwrap_or(false),
                    "tags": tag_map(v.tags()),
                })),
                depends_on: vec![],
                delete_cost: 2,
            });
            for a in v.cidr_block_association_set() {
                let state =
                    a.cidr_block_state().and_then(|s| s.state()).map(|s| s.as_str().to_string()).unwrap_or_default();
                if a.cidr_block() == v.cidr_block() || !(state == "associated" || state == "associating") {
                    continue;
                }
                d.observed.push(Observed {
                    key: "vpc-cidr/secondary".into(),
                    kind: "vpc-cidr".into(),
                    physical_id: a.association_id().unwrap_or_default().to_string(),
                    props: props(json!({"cidr": a.cidr_block()})),
                    depends_on: vec![key.clone()],
                    delete_cost: 1,
                });
            }
        }
        for s in subnets.subnets() {
            let (Some(id), Some(key)) = (s.subnet_id(), key_of(s.tags())) else { continue };
            d.keys.insert(id.to_string(), key.clone());
            let mut deps = vec!["vpc".to_string()];
            if key.starts_with("subnet/pods/") {
                deps.push("vpc-cidr/secondary".into());
            }
            d.observed.push(Observed {
                key,
                kind: "subnet".into(),
                physical_id: id.to_string(),
                props: props(json!({
                    "cidr": s.cidr_block(),
                    "az": s.availability_zone(),
                    "map_public_ip": s.map_public_ip_on_launch().unwrap_or(false),
                    "tags": tag_map(s.tags()),
                })),
                depends_on: deps,
                delete_cost: 2,
            });
        }
        for g in igws.internet_gateways() {
            let (Some(id), Some(key)) = (g.internet_gateway_id(), key_of(g.tags())) else { continue };
            d.keys.insert(id.to_string(), key.clone());
            let attached = g
                .attachments()
                .iter()
                .any(|a| a.state().is_some_and(|s| s.as_str() == "available" || s.as_str() == "attached"));
            d.observed.push(Observed {
                key,
                kind: "internet-gateway".into(),
                physical_id: id.to_string(),
                props: props(json!({"attached": attached, "tags": tag_map(g.tags())})),
                depends_on: vec!["vpc".into()],
                delete_cost: 2,
            });
        }
        for a in eips.addresses() {
            let (Some(id), Some(key)) = (a.allocation_id(), key_of(a.tags())) else { continue };
            d.keys.insert(id.to_string(), key.clone());
            d.observed.push(Observed {
                key,
                kind: "eip".into(),
                physical_id: id.to_string(),
                props: props(json!({"tags": tag_map(a.tags())})),
                depends_on: vec![],
                delete_cost: 1,
            });
        }
        for t in rtbs.route_tables() {
            let (Some(id), Some(key)) = (t.route_table_id(), key_of(t.tags())) else { continue };
            d.keys.insert(id.to_string(), key.clone());
        }
        for g in sgs.security_groups() {
            let (Some(id), Some(key)) = (g.group_id(), key_of(g.tags())) else { continue };
            d.keys.insert(id.to_string(), key.clone());
            let self_ingress = g.ip_permissions().iter().any(|p| {
                p.ip_protocol() == Some("-1") && p.user_id_group_pairs().iter().any(|u| u.group_id() == Some(id))
            });
            d.observed.push(Observed {
                key,
                kind: "security-group".into(),
                physical_id: id.to_string(),
                props: props(json!({
                    "name": g.group_name(),
                    "description": g.description(),
                    "self_ingress": self_ingress,
                    "tags": tag_map(g.tags()),
                })),
                depends_on: if self.adopted_vpc.is_some() { vec![] } else { vec!["vpc".into()] },
                delete_cost: 2,
            });
        }
        // NAT gateways: their subnet and EIP are referred to by key.
        for n in nats.nat_gateways() {
            let state = n.state().cloned();
            if matches!(state, Some(NatGatewayState::Deleted) | Some(NatGatewayState::Deleting)) {
                continue;
            }
            let (Some(id), Some(key)) = (n.nat_gateway_id(), key_of(n.tags())) else { continue };
            d.keys.insert(id.to_string(), key.clone());
            let subnet = n
                .subnet_id()
                .and_then(|s| d.keys.get(s))
                .cloned()
                .unwrap_or_else(|| format!("(foreign {})", n.subnet_id().unwrap_or("?")));
            let alloc = n.nat_gateway_addresses().iter().find_map(|a| a.allocation_id());
            let eip = alloc
                .and_then(|a| d.keys.get(a))
                .cloned()
                .unwrap_or_else(|| format!("(foreign {})", alloc.unwrap_or("?")));
            let mut deps = vec![subnet.clone(), eip.clone(), "igw".into()];
            deps.retain(|k| !k.starts_with('('));
            d.observed.push(Observed {
                key,
                kind: "nat-gateway".into(),
                physical_id: id.to_string(),
                props: props(json!({
                    "subnet": subnet,
                    "eip": eip,
                    "healthy": state != Some(NatGatewayState::Failed),
                    "tags": tag_map(n.tags()),
                })),
                depends_on: deps,
                delete_cost: 2,
            });
        }
        // Route tables, then their routes and associations (untaggable, found through the table).
        for t in rtbs.route_tables() {
            let (Some(id), Some(key)) = (t.route_table_id(), key_of(t.tags())) else { continue };
            d.observed.push(Observed {
                key: key.clone(),
                kind: "route-table".into(),
                physical_id: id.to_string(),
                props: props(json!({"tags": tag_map(t.tags())})),
                depends_on: vec!["vpc".into()],
                delete_cost: 1,
            });
            let suffix = key.strip_prefix("rtb/").unwrap_or(&key).to_string();
            for r in t.routes() {
                if r.destination_cidr_block() != Some("0.0.0.0/0") {
                    continue;
                }
                let target_id = r.gateway_id().or(r.nat_gateway_id()).unwrap_or("");
                let target = d.keys.get(target_id).cloned().unwrap_or_else(|| format!("(foreign {target_id})"));
                let mut deps = vec![key.clone(), target.clone()];
                deps.retain(|k| !k.starts_with('('));
                d.observed.push(Observed {
                    key: format!("route/{suffix}/default"),
                    kind: "route".into(),
                    physical_id: format!("{id}|0.0.0.0/0"),
                    props: props(json!({"route_table": key, "destination": "0.0.0.0/0", "target": target})),
                    depends_on: deps,
                    delete_cost: 1,
                });
            }
            for a in t.associations() {
                if a.main() == Some(true) {
                    continue;
                }
                let (Some(aid), Some(sid)) = (a.route_table_association_id(), a.subnet_id()) else { continue };
                let subnet_key = d.keys.get(sid).cloned();
                let assoc_key = match &subnet_key {
                    Some(sk) => sk.replacen("subnet/", "rtassoc/", 1),
                    None => format!("rtassoc/foreign/{sid}"),
                };
                d.observed.push(Observed {
                    key: assoc_key,
                    kind: "rt-association".into(),
                    physical_id: aid.to_string(),
                    props: props(
                        json!({"route_table": key, "subnet": subnet_key.clone().unwrap_or_else(|| sid.to_string())}),
                    ),
                    depends_on: subnet_key.into_iter().chain([key.clone()]).collect(),
                    delete_cost: 1,
                });
            }
        }
        d.observed.sort_by(|a, b| (&a.key, &a.physical_id).cmp(&(&b.key, &b.physical_id)));
        Ok(d)
    }

    /// Plans `spec`'s network: offline validation and layout, then discovery and diff. A converged network
    /// gives an empty plan.
    pub async fn plan(&self, spec: &EnvironmentSpec) -> Result<Plan, Error> {
        Ok(self.plan_with_discovery(spec).await?.0)
    }

    /// [`Network::plan`], also returning what discovery found (its physical ID → key map lets other components
    /// name network resources by key).
    pub async fn plan_with_discovery(&self, spec: &EnvironmentSpec) -> Result<(Plan, Discovery), Error> {
        let errs = crate::validate(spec);
        if !errs.is_empty() {
            return Err(Error::Core(eksodus_core::Error::Invalid(eksodus_core::spec::FieldErrors(errs))));
        }
        let layout = match spec.network.existing {
            None => Some(layout::plan(spec)?),
            Some(_) => {
                let errs = self.validate_existing(spec).await?;
                if !errs.is_empty() {
                    return Err(Error::Core(eksodus_core::Error::Invalid(eksodus_core::spec::FieldErrors(errs))));
                }
                None
            }
        };
        let found = self.discover().await?;
        let plan = plan::diff(&self.desired(spec, layout.as_ref()), &found.observed);
        plan.critical_path_calls()?; // rejects cycles and dangling dependencies before anything runs
        Ok((plan, found))
    }

    /// Free addresses per subnet (`DescribeSubnets`), for the upgrade preflight.
    pub async fn subnet_free(&self, ids: &[String]) -> Result<BTreeMap<String, u32>, Error> {
        if ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        let r = self
            .read("DescribeSubnets", || self.ec2.describe_subnets().set_subnet_ids(Some(ids.to_vec())).send())
            .await?;
        Ok(r.subnets()
            .iter()
            .filter_map(|s| Some((s.subnet_id()?.to_string(), s.available_ip_address_count()? as u32)))
            .collect())
    }

    /// The plan that removes everything this environment's network owns.
    pub async fn destroy_plan(&self) -> Result<Plan, Error> {
        Ok(Plan::destroy(&self.discover().await?.observed))
    }

    /// Checks an adopted VPC and subnets: they exist, the subnets are in that VPC, in two zones at least, and
    /// each keeps the free addresses EKS needs.
    pub async fn validate_existing(&self, spec: &EnvironmentSpec) -> Result<Vec<FieldError>, Error> {
        retry(&self.reads, || async { Box::pin(self.validate_existing_once(spec)).await.map_err(into_step) })
            .await
            .map_err(Error::Aws)
    }

    async fn validate_existing_once(&self, spec: &EnvironmentSpec) -> Result<Vec<FieldError>, Error> {
        let Some(ex) = &spec.network.existing else { return Ok(vec![]) };
        let mut errs = Vec::new();
        match self.calls.read(|| self.ec2.describe_vpcs().vpc_ids(&ex.vpc_id).send()).await {
            Ok(_) => {}
            Err(e) if is_gone(error_code(&e)) => {
                errs.push(FieldError::new("network.existing.vpc_id", format!("VPC {} does not exist", ex.vpc_id)));
                return Ok(errs);
            }
            Err(e) => return Err(Error::Aws(step_error("DescribeVpcs", e))),
        }
        let subnets = match self
            .calls
            .read(|| self.ec2.describe_subnets().set_subnet_ids(Some(ex.subnet_ids.clone())).send())
            .await
        {
            Ok(r) => r.subnets().to_vec(),
            Err(e) if is_gone(error_code(&e)) => {
                // find which ones are missing, one by one
                let mut found = Vec::new();
                for (i, id) in ex.subnet_ids.iter().enumerate() {
                    match self.calls.read(|| self.ec2.describe_subnets().subnet_ids(id).send()).await {
                        Ok(r) => found.extend(r.subnets().to_vec()),
                        Err(_) => errs.push(FieldError::new(
                            format!("network.existing.subnet_ids[{i}]"),
                            format!("subnet {id} does not exist"),
                        )),
                    }
                }
                found
            }
            Err(e) => return Err(Error::Aws(step_error("DescribeSubnets", e))),
        };
        let mut azs = std::collections::BTreeSet::new();
        for s in &subnets {
            let i = ex.subnet_ids.iter().position(|x| Some(x.as_str()) == s.subnet_id()).unwrap_or(0);
            let path = format!("network.existing.subnet_ids[{i}]");
            if s.vpc_id() != Some(ex.vpc_id.as_str()) {
                errs.push(FieldError::new(
                    path.clone(),
                    format!(
                        "subnet {} is in {}, not {}",
                        s.subnet_id().unwrap_or("?"),
                        s.vpc_id().unwrap_or("?"),
                        ex.vpc_id
                    ),
                ));
            }
            let free = s.available_ip_address_count().unwrap_or(0);
            if free < crate::cni::EKS_UPGRADE_FREE as i32 + 1 {
                errs.push(FieldError::new(
                    path,
                    format!("subnet {} has {free} free addresses; EKS needs at least 6", s.subnet_id().unwrap_or("?")),
                ));
            }
            if let Some(az) = s.availability_zone() {
                azs.insert(az.to_string());
            }
        }
        if azs.len() < 2 && !subnets.is_empty() {
            errs.push(FieldError::new(
                "network.existing.subnet_ids",
                format!("the subnets span {} availability zone(s); EKS needs two at least", azs.len()),
            ));
        }
        Ok(errs)
    }

    /// Every EC2 resource still carrying this environment's tag, of every type the network creates, plus
    /// network interfaces: what "nothing left" is checked against.
    pub async fn tagged_leftovers(&self) -> Result<Vec<String>, Error> {
        Box::pin(self.tagged_leftovers_inner()).await
    }

    async fn tagged_leftovers_inner(&self) -> Result<Vec<String>, Error> {
        let f = vec![filter(&format!("tag:{}", tags::ENVIRONMENT), &self.env)];
        let mut out = Vec::new();
        for v in
            self.read("DescribeVpcs", || self.ec2.describe_vpcs().set_filters(Some(f.clone())).send()).await?.vpcs()
        {
            out.push(format!("vpc {}", v.vpc_id().unwrap_or("?")));
        }
        for s in self
            .read("DescribeSubnets", || self.ec2.describe_subnets().set_filters(Some(f.clone())).send())
            .await?
            .subnets()
        {
            out.push(format!("subnet {}", s.subnet_id().unwrap_or("?")));
        }
        for g in self
            .read("DescribeInternetGateways", || {
                self.ec2.describe_internet_gateways().set_filters(Some(f.clone())).send()
            })
            .await?
            .internet_gateways()
        {
            out.push(format!("internet-gateway {}", g.internet_gateway_id().unwrap_or("?")));
        }
        for a in self
            .read("DescribeAddresses", || self.ec2.describe_addresses().set_filters(Some(f.clone())).send())
            .await?
            .addresses()
        {
            out.push(format!("eip {}", a.allocation_id().unwrap_or("?")));
        }
        for n in self
            .read("DescribeNatGateways", || self.ec2.describe_nat_gateways().set_filter(Some(f.clone())).send())
            .await?
            .nat_gateways()
        {
            if !matches!(n.state(), Some(NatGatewayState::Deleted)) {
                out.push(format!(
                    "nat-gateway {} ({})",
                    n.nat_gateway_id().unwrap_or("?"),
                    n.state().map(|s| s.as_str()).unwrap_or("?")
                ));
            }
        }
        for t in self
            .read("DescribeRouteTables", || self.ec2.describe_route_tables().set_filters(Some(f.clone())).send())
            .await?
            .route_tables()
        {
            out.push(format!("route-table {}", t.route_table_id().unwrap_or("?")));
        }
        for g in self
            .read("DescribeSecurityGroups", || self.ec2.describe_security_groups().set_filters(Some(f.clone())).send())
            .await?
            .security_groups()
        {
            out.push(format!("security-group {}", g.group_id().unwrap_or("?")));
        }
        for n in self
            .read("DescribeNetworkInterfaces", || {
                self.ec2.describe_network_interfaces().set_filters(Some(f.clone())).send()
            })
            .await?
            .network_interfaces()
        {
            out.push(format!("network-interface {}", n.network_interface_id().unwrap_or("?")));
        }
        Ok(out)
    }

    fn vpc_id(&self, ctx: &OpContext) -> Result<String, StepError> {
        match &self.adopted_vpc {
            Some(v) => Ok(v.clone()),
            None => ctx.physical_id("vpc"),
        }
    }

    /// Looks a taggable resource up by its key (used before re-creating after a failed attempt). The tags of
    /// each result are checked here too: a server that ignores a filter (moto does, for NAT gateways) must not
    /// make us adopt another resource.
    async fn find_tagged(&self, kind: &str, key: &str) -> Result<Option<String>, StepError> {
        let mut f = self.owned_filters();
        f.push(filter(&format!("tag:{}", tags::RESOURCE), key));
        let mine = |t: &[Tag]| {
            let t = tag_map(t);
            tags::is_owned(&t, &self.env, COMPONENT) && t.get(tags::RESOURCE).map(String::as_str) == Some(key)
        };
        let first = |found: Vec<(Option<&str>, &[Tag])>| {
            found.into_iter().find(|(_, t)| mine(t)).and_then(|(id, _)| id.map(String::from))
        };
        Ok(match kind {
            "vpc" => {
                let r = self
                    .calls
                    .read(|| self.ec2.describe_vpcs().set_filters(Some(f.clone())).send())
                    .await
                    .map_err(se(format!("DescribeVpcs for {key}")))?;
                first(r.vpcs().iter().map(|v| (v.vpc_id(), v.tags())).collect())
            }
            "subnet" => {
                let r = self
                    .calls
                    .read(|| self.ec2.describe_subnets().set_filters(Some(f.clone())).send())
                    .await
                    .map_err(se(format!("DescribeSubnets for {key}")))?;
                first(r.subnets().iter().map(|v| (v.subnet_id(), v.tags())).collect())
            }
            "internet-gateway" => {
                let r = self
                    .calls
                    .read(|| self.ec2.describe_internet_gateways().set_filters(Some(f.clone())).send())
                    .await
                    .map_err(se(format!("DescribeInternetGateways for {key}")))?;
                first(r.internet_gateways().iter().map(|v| (v.internet_gateway_id(), v.tags())).collect())
            }
            "eip" => {
                let r = self
                    .calls
                    .read(|| self.ec2.describe_addresses().set_filters(Some(f.clone())).send())
                    .await
                    .map_err(se(format!("DescribeAddresses for {key}")))?;
                first(r.addresses().iter().map(|v| (v.allocation_id(), v.tags())).collect())
            }
            "nat-gateway" => {
                let r = self
                    .calls
                    .read(|| self.ec2.describe_nat_gateways().set_filter(Some(f.clone())).send())
                    .await
                    .map_err(se(format!("DescribeNatGateways for {key}")))?;
                first(
                    r.nat_gateways()
                        .iter()
                        .filter(|n| matches!(n.state(), Some(NatGatewayState::Pending | NatGatewayState::Available)))
                        .map(|v| (v.nat_gateway_id(), v.tags()))
                        .collect(),
                )
            }
            "route-table" => {
                let r = self
                    .calls
                    .read(|| self.ec2.describe_route_tables().set_filters(Some(f.clone())).send())
                    .await
                    .map_err(se(format!("DescribeRouteTables for {key}")))?;
                first(r.route_tables().iter().map(|v| (v.route_table_id(), v.tags())).collect())
            }
            "security-group" => {
                let r = self
                    .calls
                    .read(|| self.ec2.describe_security_groups().set_filters(Some(f.clone())).send())
                    .await
                    .map_err(se(format!("DescribeSecurityGroups for {key}")))?;
                first(r.security_groups().iter().map(|v| (v.group_id(), v.tags())).collect())
            }
            _ => None,
        })
    }

    async fn create(&self, op: &Operation, ctx: &OpContext) -> Result<Option<String>, StepError> {
        let s = &op.step;
        let want = s.desired.clone().unwrap_or_default();
        let str_of = |k: &str| want.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let extra_tags = want.get(plan::TAGS).and_then(Value::as_object).cloned().unwrap_or_default();
        let key = s.key.as_str();
        let what = |call: &str| format!("{call} for {key}");
        // A failed earlier attempt may have created the resource: look before creating again.
        if ctx.attempt > 1 {
            if let Some(id) = self.find_tagged(&s.kind, key).await? {
                // finish whatever the create does after the create call itself
                self.update_props(s.kind.as_str(), key, &id, &want, None, ctx).await?;
                if s.kind == "nat-gateway" {
                    self.wait_nat(ctx, &id, true).await?;
                }
                return Ok(Some(id));
            }
        }
        match s.kind.as_str() {
            "vpc" => {
                let r = self
                    .calls
                    .create(|| {
                        self.ec2
                            .create_vpc()
                            .cidr_block(str_of("cidr"))
                            .tag_specifications(self.tag_spec(ResourceType::Vpc, key, &extra_tags))
                            .send()
                    })
                    .await
                    .map_err(|e| step_error(what("CreateVpc"), e))?;
                let id = r.vpc().and_then(|v| v.vpc_id()).unwrap_or_default().to_string();
                self.update_props("vpc", key, &id, &want, None, ctx).await?;
                Ok(Some(id))
            }
            "vpc-cidr" => {
                let vpc = ctx.physical_id("vpc")?;
                let cidr = str_of("cidr");
                match self
                    .calls
                    .create(|| self.ec2.associate_vpc_cidr_block().vpc_id(&vpc).cidr_block(&cidr).send())
                    .await
                {
                    Ok(r) => Ok(r.cidr_block_association().and_then(|a| a.association_id()).map(String::from)),
                    Err(e) => {
                        // already associated (a lost response): find the association
                        let found = self.find_cidr_association(&vpc, &cidr).await?;
                        match found {
                            Some(id) => Ok(Some(id)),
                            None => Err(step_error(what("AssociateVpcCidrBlock"), e)),
                        }
                    }
                }
            }
            "subnet" => {
                let vpc = ctx.physical_id("vpc")?;
                let r = self
                    .calls
                    .create(|| {
                        self.ec2
                            .create_subnet()
                            .vpc_id(vpc.clone())
                            .cidr_block(str_of("cidr"))
                            .availability_zone(str_of("az"))
                            .tag_specifications(self.tag_spec(ResourceType::Subnet, key, &extra_tags))
                            .send()
                    })
                    .await
                    .map_err(|e| step_error(what("CreateSubnet"), e))?;
                let id = r.subnet().and_then(|v| v.subnet_id()).unwrap_or_default().to_string();
                self.update_props("subnet", key, &id, &want, None, ctx).await?;
                Ok(Some(id))
            }
            "internet-gateway" => {
                let r = self
                    .calls
                    .create(|| {
                        self.ec2
                            .create_internet_gateway()
                            .tag_specifications(self.tag_spec(ResourceType::InternetGateway, key, &extra_tags))
                            .send()
                    })
                    .await
                    .map_err(|e| step_error(what("CreateInternetGateway"), e))?;
                let id = r.internet_gateway().and_then(|v| v.internet_gateway_id()).unwrap_or_default().to_string();
                self.update_props("internet-gateway", key, &id, &want, None, ctx).await?;
                Ok(Some(id))
            }
            "eip" => {
                let r = self
                    .calls
                    .create(|| {
                        self.ec2
                            .allocate_address()
                            .domain(DomainType::Vpc)
                            .tag_specifications(self.tag_spec(ResourceType::ElasticIp, key, &extra_tags))
                            .send()
                    })
                    .await
                    .map_err(|e| step_error(what("AllocateAddress"), e))?;
                Ok(r.allocation_id().map(String::from))
            }
            "nat-gateway" => {
                let subnet = ctx.physical_id(&str_of("subnet"))?;
                let alloc = ctx.physical_id(&str_of("eip"))?;
                let r = self
                    .calls
                    .create(|| {
                        self.ec2
                            .create_nat_gateway()
                            .subnet_id(subnet.clone())
                            .allocation_id(alloc.clone())
                            .client_token(ctx.client_token(s))
                            .tag_specifications(self.tag_spec(ResourceType::Natgateway, key, &extra_tags))
                            .send()
                    })
                    .await
                    .map_err(|e| step_error(what("CreateNatGateway"), e))?;
                let n = r.nat_gateway();
                let id = n.and_then(|v| v.nat_gateway_id()).unwrap_or_default().to_string();
                if n.and_then(|n| n.state()) != Some(&NatGatewayState::Available) {
                    self.wait_nat(ctx, &id, true).await?;
                }
                Ok(Some(id))
            }
            "route-table" => {
                let vpc = self.vpc_id(ctx)?;
                let r = self
                    .calls
                    .create(|| {
                        self.ec2
                            .create_route_table()
                            .vpc_id(vpc.clone())
                            .tag_specifications(self.tag_spec(ResourceType::RouteTable, key, &extra_tags))
                            .send()
                    })
                    .await
                    .map_err(|e| step_error(what("CreateRouteTable"), e))?;
                Ok(r.route_table().and_then(|v| v.route_table_id()).map(String::from))
            }
            "route" => {
                let rtb = ctx.physical_id(&str_of("route_table"))?;
                let dest = str_of("destination");
                let target_key = str_of("target");
                let target = ctx.physical_id(&target_key)?;
                let mut req = self.ec2.create_route().route_table_id(&rtb).destination_cidr_block(&dest);
                req =
                    if target_key.starts_with("nat/") { req.nat_gateway_id(&target) } else { req.gateway_id(&target) };
                match self.calls.read(|| req.clone().send()).await {
                    Ok(_) => {}
                    Err(e) if error_code(&e) == Some("RouteAlreadyExists") => {
                        // a lost response, or someone else's route: make it point where we want
                        let mut rep = self.ec2.replace_route().route_table_id(&rtb).destination_cidr_block(&dest);
                        rep = if target_key.starts_with("nat/") {
                            rep.nat_gateway_id(&target)
                        } else {
                            rep.gateway_id(&target)
                        };
                        self.calls
                            .read(|| rep.clone().send())
                            .await
                            .map_err(|e| step_error(what("ReplaceRoute"), e))?;
                    }
                    Err(e) => return Err(step_error(what("CreateRoute"), e)),
                }
                Ok(Some(format!("{rtb}|{dest}")))
            }
            "rt-association" => {
                let rtb = ctx.physical_id(&str_of("route_table"))?;
                let subnet = ctx.physical_id(&str_of("subnet"))?;
                match self
                    .calls
                    .read(|| self.ec2.associate_route_table().route_table_id(&rtb).subnet_id(&subnet).send())
                    .await
                {
                    Ok(r) => Ok(r.association_id().map(String::from)),
                    Err(e) if error_code(&e) == Some("Resource.AlreadyAssociated") => {
                        let (aid, current) = self
                            .find_association(&subnet)
                            .await?
                            .ok_or_else(|| step_error(what("AssociateRouteTable"), e))?;
                        if current != rtb {
                            self.calls
                                .read(|| {
                                    self.ec2
                                        .replace_route_table_association()
                                        .association_id(&aid)
                                        .route_table_id(&rtb)
                                        .send()
                                })
                                .await
                                .map_err(|e| step_error(what("ReplaceRouteTableAssociation"), e))
                                .map(|r| r.new_association_id().map(String::from))
                        } else {
                            Ok(Some(aid))
                        }
                    }
                    Err(e) => Err(step_error(what("AssociateRouteTable"), e)),
                }
            }
            "security-group" => {
                let vpc = self.vpc_id(ctx)?;
                let r = self
                    .calls
                    .create(|| {
                        self.ec2
                            .create_security_group()
                            .vpc_id(vpc.clone())
                            .group_name(str_of("name"))
                            .description(str_of("description"))
                            .tag_specifications(self.tag_spec(ResourceType::SecurityGroup, key, &extra_tags))
                            .send()
                    })
                    .await
                    .map_err(|e| step_error(what("CreateSecurityGroup"), e))?;
                let id = r.group_id().unwrap_or_default().to_string();
                self.update_props("security-group", key, &id, &want, None, ctx).await?;
                Ok(Some(id))
            }
            other => Err(StepError::permanent(format!("{key}: unknown kind {other}"))),
        }
    }

    /// Brings an existing resource's mutable properties to `want`; `have` is what discovery saw (None right
    /// after a create, when the defaults are known).
    async fn update_props(
        &self,
        kind: &str,
        key: &str,
        id: &str,
        want: &Map<String, Value>,
        have: Option<&Map<String, Value>>,
        ctx: &OpContext,
    ) -> Result<(), StepError> {
        let differs = |k: &str, default: Value| -> bool {
            let w = want.get(k);
            let h = have.and_then(|h| h.get(k)).cloned().unwrap_or(default);
            w.is_some() && w != Some(&h)
        };
        let what = |call: &str| format!("{call} for {key}");
        let bool_of = |k: &str| want.get(k).and_then(Value::as_bool).unwrap_or(false);
        match kind {
            "vpc" => {
                // DNS hostnames needs DNS support; a new VPC has support on and hostnames off.
                let dns_s = differs("dns_support", json!(true));
                let dns_h = differs("dns_hostnames", json!(false));
                let set = |attr: &'static str, v: bool| async move {
                    let b = AttributeBooleanValue::builder().value(v).build();
                    let req = self.ec2.modify_vpc_attribute().vpc_id(id);
                    let req = if attr == "support" { req.enable_dns_support(b) } else { req.enable_dns_hostnames(b) };
                    self.calls
                        .read(|| req.clone().send())
                        .await
                        .map(|_| ())
                        .map_err(|e| step_error(what("ModifyVpcAttribute"), e))
                };
                if dns_s && bool_of("dns_support") {
                    set("support", true).await?;
                }
                if dns_h {
                    set("hostnames", bool_of("dns_hostnames")).await?;
                }
                if dns_s && !bool_of("dns_support") {
                    set("support", false).await?;
                }
            }
            "subnet" if differs("map_public_ip", json!(false)) => {
                self.calls
                    .read(|| {
                        self.ec2
                            .modify_subnet_attribute()
                            .subnet_id(id)
                            .map_public_ip_on_launch(
                                AttributeBooleanValue::builder().value(bool_of("map_public_ip")).build(),
                            )
                            .send()
                    })
                    .await
                    .map_err(|e| step_error(what("ModifySubnetAttribute"), e))?;
            }
            "internet-gateway" if differs("attached", json!(false)) && bool_of("attached") => {
                let vpc = self.vpc_id(ctx)?;
                match self
                    .calls
                    .read(|| self.ec2.attach_internet_gateway().internet_gateway_id(id).vpc_id(&vpc).send())
                    .await
                {
                    Ok(_) => {}
                    Err(e) if error_code(&e) == Some("Resource.AlreadyAssociated") => {}
                    Err(e) => return Err(step_error(what("AttachInternetGateway"), e)),
                }
            }
            "security-group" if differs("self_ingress", json!(false)) && bool_of("self_ingress") => {
                let perm = IpPermission::builder()
                    .ip_protocol("-1")
                    .user_id_group_pairs(UserIdGroupPair::builder().group_id(id).build())
                    .build();
                match self
                    .calls
                    .read(|| {
                        self.ec2.authorize_security_group_ingress().group_id(id).ip_permissions(perm.clone()).send()
                    })
                    .await
                {
                    Ok(_) => {}
                    Err(e) if error_code(&e) == Some("InvalidPermission.Duplicate") => {}
                    Err(e) => return Err(step_error(what("AuthorizeSecurityGroupIngress"), e)),
                }
            }
            _ => {}
        }
        // Tags: add what is missing (never remove tags someone else put on).
        if let (Some(h), Some(Value::Object(w))) = (have, want.get(plan::TAGS)) {
            let ht = h.get(plan::TAGS).and_then(Value::as_object);
            let missing: Vec<Tag> = w
                .iter()
                .filter(|(k, v)| ht.and_then(|t| t.get(*k)) != Some(*v))
                .map(|(k, v)| Tag::builder().key(k).value(v.as_str().unwrap_or("")).build())
                .collect();
            if !missing.is_empty() {
                self.calls
                    .read(|| self.ec2.create_tags().resources(id).set_tags(Some(missing.clone())).send())
                    .await
                    .map_err(|e| step_error(what("CreateTags"), e))?;
            }
        }
        Ok(())
    }

    async fn update(&self, op: &Operation, ctx: &OpContext) -> Result<Option<String>, StepError> {
        let s = &op.step;
        let id = s.physical_id.clone().unwrap_or_default();
        let want = s.desired.clone().unwrap_or_default();
        match s.kind.as_str() {
            "route" => {
                let rtb = ctx.physical_id(want.get("route_table").and_then(Value::as_str).unwrap_or(""))?;
                let target_key = want.get("target").and_then(Value::as_str).unwrap_or("").to_string();
                let target = ctx.physical_id(&target_key)?;
                let dest = want.get("destination").and_then(Value::as_str).unwrap_or("0.0.0.0/0");
                let mut rep = self.ec2.replace_route().route_table_id(&rtb).destination_cidr_block(dest);
                rep =
                    if target_key.starts_with("nat/") { rep.nat_gateway_id(&target) } else { rep.gateway_id(&target) };
                self.calls
                    .read(|| rep.clone().send())
                    .await
                    .map_err(|e| step_error(format!("ReplaceRoute for {}", s.key), e))?;
                Ok(Some(id))
            }
            "rt-association" => {
                let rtb = ctx.physical_id(want.get("route_table").and_then(Value::as_str).unwrap_or(""))?;
                let r = self
                    .calls
                    .read(|| {
                        self.ec2
                            .replace_route_table_association()
                            .association_id(&id)
                            .route_table_id(rtb.clone())
                            .send()
                    })
                    .await
                    .map_err(|e| step_error(format!("ReplaceRouteTableAssociation for {}", s.key), e))?;
                Ok(r.new_association_id().map(String::from))
            }
            kind => {
                self.update_props(kind, &s.key, &id, &want, s.observed.as_ref(), ctx).await?;
                Ok(Some(id))
            }
        }
    }

    async fn delete(&self, op: &Operation, ctx: &OpContext) -> Result<Option<String>, StepError> {
        let s = &op.step;
        let id = s.physical_id.clone().unwrap_or_default();
        let what = |call: &str| format!("{call} for {} ({id})", s.key);
        match s.kind.as_str() {
            "vpc" => {
                self.clear_vpc(&id, ctx).await?;
                self.op_gone(what("DeleteVpc"), || self.ec2.delete_vpc().vpc_id(&id).send()).await?;
            }
            "vpc-cidr" => {
                self.op_gone(what("DisassociateVpcCidrBlock"), || {
                    self.ec2.disassociate_vpc_cidr_block().association_id(&id).send()
                })
                .await?
            }
            "subnet" => {
                self.clear_subnet(&id, ctx).await?;
                self.op_gone(what("DeleteSubnet"), || self.ec2.delete_subnet().subnet_id(&id).send()).await?;
            }
            "internet-gateway" => {
                let g = self
                    .op_read(what("DescribeInternetGateways"), || {
                        self.ec2.describe_internet_gateways().internet_gateway_ids(&id).send()
                    })
                    .await;
                if let Ok(g) = g {
                    for a in g.internet_gateways().iter().flat_map(|g| g.attachments()) {
                        if let Some(v) = a.vpc_id() {
                            self.op_gone(what("DetachInternetGateway"), || {
                                self.ec2.detach_internet_gateway().internet_gateway_id(&id).vpc_id(v).send()
                            })
                            .await?;
                        }
                    }
                }
                self.op_gone(what("DeleteInternetGateway"), || {
                    self.ec2.delete_internet_gateway().internet_gateway_id(&id).send()
                })
                .await?;
            }
            "eip" => {
                self.op_gone(what("ReleaseAddress"), || self.ec2.release_address().allocation_id(&id).send()).await?
            }
            "nat-gateway" => {
                // its interface normally goes with it; remove it if it outlives the gateway (it does on moto)
                // not knowing its interface would leak it and block the subnet: a failed read fails the attempt
                let enis: Vec<String> = retry(&self.reads, || async {
                    match self.calls.read(|| self.ec2.describe_nat_gateways().nat_gateway_ids(&id).send()).await {
                        Ok(r) => Ok(r
                            .nat_gateways()
                            .iter()
                            .flat_map(|n| n.nat_gateway_addresses())
                            .filter_map(|a| a.network_interface_id().map(String::from))
                            .collect()),
                        Err(e) if is_gone(error_code(&e)) => Ok(vec![]),
                        Err(e) => Err(step_error(what("DescribeNatGateways"), e)),
                    }
                })
                .await?;
                self.op_gone(what("DeleteNatGateway"), || self.ec2.delete_nat_gateway().nat_gateway_id(&id).send())
                    .await?;
                self.wait_nat(ctx, &id, false).await?;
                for eni in enis {
                    self.op_gone(format!("DeleteNetworkInterface {eni} of {id}"), || {
                        self.ec2.delete_network_interface().network_interface_id(&eni).send()
                    })
                    .await?;
                }
            }
            "route-table" => {
                // associations are their own resources and are gone by now; foreign ones would block the delete
                self.op_gone(what("DeleteRouteTable"), || self.ec2.delete_route_table().route_table_id(&id).send())
                    .await?;
            }
            "route" => {
                let (rtb, dest) = id.split_once('|').unwrap_or((&id, "0.0.0.0/0"));
                self.op_gone(what("DeleteRoute"), || {
                    self.ec2.delete_route().route_table_id(rtb).destination_cidr_block(dest).send()
                })
                .await?;
            }
            "rt-association" => {
                self.op_gone(what("DisassociateRouteTable"), || {
                    self.ec2.disassociate_route_table().association_id(&id).send()
                })
                .await?
            }
            "security-group" => {
                self.unreference_group(&id, ctx).await?;
                self.op_gone(what("DeleteSecurityGroup"), || self.ec2.delete_security_group().group_id(&id).send())
                    .await?;
            }
            other => return Err(StepError::permanent(format!("{}: unknown kind {other}", s.key))),
        }
        Ok(Some(id))
    }

    async fn wait_nat(&self, ctx: &OpContext, id: &str, available: bool) -> Result<(), StepError> {
        let what = if available {
            format!("NAT gateway {id} to become available")
        } else {
            format!("NAT gateway {id} to be deleted")
        };
        ctx.wait_until(&what, ctx.waits.timeout, || async {
            let r = self.calls.read(|| self.ec2.describe_nat_gateways().nat_gateway_ids(id).send()).await;
            let r = match r {
                Err(e) if is_gone(error_code(&e)) && !available => return Ok(WaitState::Ready(())),
                other => other.map_err(|e| step_error(format!("DescribeNatGateways {id}"), e))?,
            };
            let Some(n) = r.nat_gateways().first() else {
                return Ok(if available { WaitState::Pending("not visible yet".into()) } else { WaitState::Ready(()) });
            };
            let state = n.state().cloned().unwrap_or(NatGatewayState::Pending);
            Ok(match (available, state) {
                (true, NatGatewayState::Available) => WaitState::Ready(()),
                (true, NatGatewayState::Failed) => WaitState::Failed(format!(
                    "NAT gateway failed: {} {}",
                    n.failure_code().unwrap_or(""),
                    n.failure_message().unwrap_or("")
                )),
                (false, NatGatewayState::Deleted) => WaitState::Ready(()),
                (_, s) => WaitState::Pending(s.as_str().to_string()),
            })
        })
        .await
    }

    async fn find_cidr_association(&self, vpc: &str, cidr: &str) -> Result<Option<String>, StepError> {
        let r = self.op_read(format!("DescribeVpcs {vpc}"), || self.ec2.describe_vpcs().vpc_ids(vpc).send()).await?;
        Ok(r.vpcs()
            .iter()
            .flat_map(|v| v.cidr_block_association_set())
            .find(|a| {
                a.cidr_block() == Some(cidr)
                    && a.cidr_block_state()
                        .and_then(|s| s.state())
                        .is_some_and(|s| s.as_str() == "associated" || s.as_str() == "associating")
            })
            .and_then(|a| a.association_id())
            .map(String::from))
    }

    async fn find_association(&self, subnet: &str) -> Result<Option<(String, String)>, StepError> {
        let r = self
            .op_read(format!("DescribeRouteTables for {subnet}"), || {
                self.ec2.describe_route_tables().filters(filter("association.subnet-id", subnet)).send()
            })
            .await?;
        Ok(r.route_tables().iter().find_map(|t| {
            t.associations()
                .iter()
                .find(|a| a.subnet_id() == Some(subnet))
                .and_then(|a| Some((a.route_table_association_id()?.to_string(), t.route_table_id()?.to_string())))
        }))
    }

    /// Removes what blocks a subnet's deletion and is safe to remove: unattached network interfaces (left by
    /// the CNI or a load balancer controller) and its route-table association. Interfaces in use are reported.
    async fn clear_subnet(&self, subnet: &str, ctx: &OpContext) -> Result<(), StepError> {
        let enis = self
            .op_read(format!("DescribeNetworkInterfaces in {subnet}"), || {
                self.ec2.describe_network_interfaces().filters(filter("subnet-id", subnet)).send()
            })
            .await?;
        for n in enis.network_interfaces() {
            let eni = n.network_interface_id().unwrap_or_default();
            // a NAT gateway's own interface outlives it briefly (and for ever on the emulator): it was ours
            let ours = n.interface_type().is_some_and(|t| t.as_str() == "nat_gateway")
                || n.description().is_some_and(|d| d.starts_with("Interface for NAT Gateway"));
            if n.status().is_some_and(|s| s.as_str() == "available") {
                self.op_gone(format!("DeleteNetworkInterface {eni}"), || {
                    self.ec2.delete_network_interface().network_interface_id(eni).send()
                })
                .await?;
                if ctx.attempt == 1 && !ours {
                    ctx.leftover(
                        format!("network-interface {eni} in {subnet}"),
                        "was unattached and blocked the subnet's deletion; removed",
                    );
                }
            } else if ctx.attempt == 1 {
                ctx.leftover(
                    format!("network-interface {eni} in {subnet}"),
                    format!(
                        "in use ({}); the subnet cannot be deleted until it is released",
                        n.description().unwrap_or("no description")
                    ),
                );
            }
        }
        // moto keeps a deleted subnet's association; real EC2 drops it. Disassociating first works on both.
        if let Some((aid, _)) = self.find_association(subnet).await? {
            self.op_gone(format!("DisassociateRouteTable {aid}"), || {
                self.ec2.disassociate_route_table().association_id(&aid).send()
            })
            .await?;
        }
        Ok(())
    }

    /// Removes security groups that others left inside a VPC we own (they block its deletion), after revoking
    /// their rules so groups referencing each other can go.
    async fn clear_vpc(&self, vpc: &str, ctx: &OpContext) -> Result<(), StepError> {
        let r = self
            .op_read(format!("DescribeSecurityGroups in {vpc}"), || {
                self.ec2.describe_security_groups().filters(filter("vpc-id", vpc)).send()
            })
            .await?;
        let foreign: Vec<_> = r.security_groups().iter().filter(|g| g.group_name() != Some("default")).collect();
        for g in &foreign {
            let gid = g.group_id().unwrap_or_default();
            if !g.ip_permissions().is_empty() {
                self.op_gone(format!("RevokeSecurityGroupIngress {gid}"), || {
                    self.ec2
                        .revoke_security_group_ingress()
                        .group_id(gid)
                        .set_ip_permissions(Some(g.ip_permissions().to_vec()))
                        .send()
                })
                .await?;
            }
        }
        for g in &foreign {
            let gid = g.group_id().unwrap_or_default();
            self.op_gone(format!("DeleteSecurityGroup {gid}"), || {
                self.ec2.delete_security_group().group_id(gid).send()
            })
            .await?;
            ctx.leftover(
                format!("security-group {gid} ({}) in {vpc}", g.group_name().unwrap_or("?")),
                "not created by eksodus but left in its VPC; removed",
            );
        }
        Ok(())
    }

    /// Revokes rules in other groups that refer to `group`, which would block its deletion.
    async fn unreference_group(&self, group: &str, ctx: &OpContext) -> Result<(), StepError> {
        let r = self
            .op_read(format!("DescribeSecurityGroups referencing {group}"), || {
                self.ec2.describe_security_groups().filters(filter("ip-permission.group-id", group)).send()
            })
            .await?;
        for g in r.security_groups() {
            let gid = g.group_id().unwrap_or_default();
            if gid == group {
                continue;
            }
            let perms: Vec<IpPermission> = g
                .ip_permissions()
                .iter()
                .filter(|p| p.user_id_group_pairs().iter().any(|u| u.group_id() == Some(group)))
                .cloned()
                .collect();
            if perms.is_empty() {
                continue;
            }
            self.op_gone(format!("RevokeSecurityGroupIngress {gid}"), || {
                self.ec2.revoke_security_group_ingress().group_id(gid).set_ip_permissions(Some(perms.clone())).send()
            })
            .await?;
            ctx.leftover(
                format!("rules of security-group {gid} referring to {group}"),
                "blocked the deletion of our group; revoked",
            );
        }
        Ok(())
    }
}

impl Executor for Network {
    fn execute<'a>(
        &'a self,
        op: &'a Operation,
        ctx: &'a OpContext,
    ) -> BoxFuture<'a, Result<Option<String>, StepError>> {
        Box::pin(async move {
            match op.kind {
                OpKind::Create => self.create(op, ctx).await,
                OpKind::Update => self.update(op, ctx).await,
                OpKind::Delete => self.delete(op, ctx).await,
            }
        })
    }
}

/// vCPU counts of instance types from EC2 DescribeInstanceTypes, for the max-pods caps.
pub async fn describe_vcpus(ec2: &Client, types: &[String]) -> Result<BTreeMap<String, u32>, Error> {
    let region = ec2.config().region().map(|r| r.to_string()).unwrap_or_default();
    let calls = Calls::for_region("ec2", &region);
    let mut out = BTreeMap::new();
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
