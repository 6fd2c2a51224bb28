//! A loopback HTTP proxy in front of moto: counts calls per service and operation, isolates tests by account,
//! and injects faults in each service's real error shape.
//!
//! Faults are drawn deterministically: the random draw for a request depends only on the seed, the request's
//! service, operation and body, and how many times that exact request was seen before. So a run with the same
//! seed meets the same faults whatever the interleaving of concurrent calls, and a retried call gets a fresh draw.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::Error;

/// What to inject. All rates are probabilities per call, in `[0, 1]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FaultConfig {
    /// Seed of the deterministic draws.
    pub seed: u64,
    /// Delay added before every call is forwarded.
    pub latency: Duration,
    /// Share of calls answered with the service's throttling error.
    pub throttle_rate: f64,
    /// Share of calls answered with a 5xx (half before reaching moto, half after it acted).
    pub server_error_rate: f64,
    /// Share of calls whose connection is dropped (half before reaching moto, half after it acted).
    pub drop_rate: f64,
    /// Share of calls whose response is lost after moto acted on them (the create that happened but whose
    /// answer never came back).
    pub lost_response_rate: f64,
    /// After this many mutating calls have reached moto, every further call fails with a dropped
    /// connection, and so does the response of the k-th itself: a process that died right after its k-th write.
    pub crash_after_mutations: Option<u64>,
    /// Sends every call to this moto account (`x-moto-account-id`), isolating tests that share a server.
    pub account_id: Option<String>,
    /// EKS clusters, nodegroups, addons and updates report CREATING/UPDATING/DELETING (InProgress) for this
    /// many describes before they settle, so waiters and progress are exercised (moto settles at once).
    pub eks_pending_describes: u32,
    /// EKS resources (cluster, nodegroup or addon names) that settle as failed, with health issues.
    pub eks_fail: Vec<String>,
    /// An account restricted to an IAM policy: calls whose `service:Operation` is not listed are refused with
    /// the service's access-denied error before moto sees them (`None`: everything is allowed).
    pub allowed_actions: Option<std::collections::BTreeSet<String>>,
    /// Request rate limits per service, as AWS enforces them per account and region (a token bucket: `burst`
    /// calls at once, refilled at `per_second`); a call finding the bucket empty gets the service's throttling
    /// error. Deterministic, unlike `throttle_rate`: it throttles load, not chance.
    pub rate_limit: Option<RateLimit>,
}

/// A token bucket of [`FaultConfig::rate_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RateLimit {
    /// Sustained calls per second.
    pub per_second: f64,
    /// Calls allowed at once.
    pub burst: f64,
}

/// A fault the proxy injected into one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Answered with a throttling error; moto never saw it.
    Throttled,
    /// Answered with a 5xx before moto saw it.
    ServerErrorBefore,
    /// moto acted, then the answer was replaced by a 5xx.
    ServerErrorAfter,
    /// Connection dropped before moto saw it.
    DroppedBefore,
    /// moto acted, then the connection was dropped.
    DroppedAfter,
    /// Failed because the simulated crash point was passed.
    Crashed,
    /// Refused: the action is outside the account's allowed actions.
    Denied,
}

/// One call through the proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Call {
    /// Service signing name (`ec2`, `iam`, `eks`, ...).
    pub service: String,
    /// Operation name (`CreateVpc`).
    pub operation: String,
    /// Whether the operation changes state.
    pub mutating: bool,
    /// What was injected, if anything.
    pub fault: Option<Fault>,
    /// The access key ID that signed it (whose credentials the caller used).
    pub access_key: String,
}

/// Calls seen so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Every call in arrival order.
    pub calls: Vec<Call>,
}

impl Stats {
    /// Calls per `service:Operation`.
    pub fn by_operation(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for c in &self.calls {
            *m.entry(format!("{}:{}", c.service, c.operation)).or_insert(0) += 1;
        }
        m
    }

    /// Number of calls.
    pub fn total(&self) -> usize {
        self.calls.len()
    }

    /// Mutating calls that reached moto (not faulted before forwarding).
    pub fn mutations_applied(&self) -> usize {
        self.calls
            .iter()
            .filter(|c| {
                c.mutating
                    && !matches!(
                        c.fault,
                        Some(
                            Fault::Throttled
                                | Fault::ServerErrorBefore
                                | Fault::DroppedBefore
                                | Fault::Crashed
                                | Fault::Denied
                        )
                    )
            })
            .count()
    }

    /// Number of injected faults.
    pub fn faults(&self) -> usize {
        self.calls.iter().filter(|c| c.fault.is_some()).count()
    }
}

struct State {
    upstream: String,
    config: Mutex<FaultConfig>,
    stats: Mutex<Stats>,
    seen: Mutex<HashMap<u64, u32>>,
    mutations: AtomicU64,
    /// Tokens and last refill per service, for the rate limit.
    buckets: Mutex<HashMap<String, (f64, std::time::Instant)>>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    eks: crate::eks::EksState,
    ec2: crate::ec2::Ec2State,
}

/// The running proxy; stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy").field("addr", &self.addr).field("upstream", &self.state.upstream).finish()
    }
}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1 at a free port in front of `upstream` (`http://127.0.0.1:PORT`).
    /// Must be called inside a tokio runtime, which runs it.
    pub async fn start(upstream: &str, config: FaultConfig) -> Result<FaultProxy, Error> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| Error::Io { what: "binding the fault proxy".into(), source: e })?;
        let addr = listener.local_addr().map_err(|e| Error::Io { what: "fault proxy address".into(), source: e })?;
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_string(),
            config: Mutex::new(config),
            stats: Mutex::default(),
            seen: Mutex::default(),
            mutations: AtomicU64::new(0),
            buckets: Mutex::default(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            eks: crate::eks::EksState::default(),
            ec2: crate::ec2::Ec2State::default(),
        });
        let st = state.clone();
        let task = crate::serve(listener, move |req| handle(st.clone(), req));
        Ok(FaultProxy { addr, state, task })
    }

    /// `http://127.0.0.1:PORT` of the proxy: the endpoint to give the SDK.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the fault settings (the crash counter restarts).
    pub fn set_config(&self, config: FaultConfig) {
        *self.state.config.lock().expect("config") = config;
        self.state.mutations.store(0, Ordering::SeqCst);
    }

    /// The current settings.
    pub fn config(&self) -> FaultConfig {
        self.state.config.lock().expect("config").clone()
    }

    /// Turns every fault off (keeps the latency and account).
    pub fn heal(&self) {
        let mut c = self.config();
        c.throttle_rate = 0.0;
        c.server_error_rate = 0.0;
        c.drop_rate = 0.0;
        c.lost_response_rate = 0.0;
        c.crash_after_mutations = None;
        self.set_config(c);
    }

    /// A snapshot of the calls so far.
    pub fn stats(&self) -> Stats {
        self.state.stats.lock().expect("stats").clone()
    }

    /// Forgets the calls so far.
    pub fn reset_stats(&self) {
        *self.state.stats.lock().expect("stats") = Stats::default();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Resp = Response<Full<Bytes>>;

/// Returning `Err` makes hyper close the connection without an answer: a dropped connection.
#[derive(Debug)]
struct Dropped;
impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the fault proxy")
    }
}
impl std::error::Error for Dropped {}

async fn handle(st: Arc<State>, req: Request<Incoming>) -> Result<Resp, Box<dyn std::error::Error + Send + Sync>> {
    handle_inner(st, req).await.map_err(|d| Box::new(d) as Box<dyn std::error::Error + Send + Sync>)
}

async fn handle_inner(st: Arc<State>, req: Request<Incoming>) -> Result<Resp, Dropped> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let path = parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
    let control = path.starts_with("/moto-api");
    let service = service_of(&parts.headers);
    let operation = operation_of(&service, &parts.method, parts.uri.path(), &parts.headers, &body);
    let access_key =
        authorization(&parts.headers).and_then(eksodus_core::operations::access_key_of).unwrap_or_default().to_string();
    let mutating = is_mutating(&parts.method, &operation);
    let cfg = st.config.lock().expect("config").clone();

    let record = |fault: Option<Fault>| {
        if !control {
            st.stats.lock().expect("stats").calls.push(Call {
                service: service.clone(),
                operation: operation.clone(),
                mutating,
                fault,
                access_key: access_key.clone(),
            });
        }
    };

    if !cfg.latency.is_zero() && !control {
        tokio::time::sleep(cfg.latency).await;
    }
    if let Some(k) = cfg.crash_after_mutations {
        if !control && st.mutations.load(Ordering::SeqCst) >= k {
            // the process is dead: nothing it sends gets anywhere. Answered with an error no caller retries, so
            // the "dead" run ends at once instead of waiting out its retry budgets on a network that is gone
            record(Some(Fault::Crashed));
            return Ok(crashed_response(&service));
        }
    }
    if let Some(allowed) = &cfg.allowed_actions {
        if !control && !allowed.contains(&format!("{service}:{operation}")) {
            record(Some(Fault::Denied));
            return Ok(denied_response(&service, &operation));
        }
    }
    if let Some(limit) = cfg.rate_limit.filter(|_| !control) {
        let now = std::time::Instant::now();
        let mut buckets = st.buckets.lock().expect("buckets");
        let (tokens, last) = buckets.entry(service.clone()).or_insert((limit.burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * limit.per_second).min(limit.burst);
        *last = now;
        if *tokens < 1.0 {
            drop(buckets);
            record(Some(Fault::Throttled));
            return Ok(throttle_response(&service));
        }
        *tokens -= 1.0;
    }
    let (draw, before) = if control {
        (1.0, true)
    } else {
        let mut h = fnv(cfg.seed.to_le_bytes().as_slice(), FNV_OFFSET);
        h = fnv(service.as_bytes(), h);
        h = fnv(operation.as_bytes(), h);
        h = fnv(&body, h);
        let n = {
            let mut seen = st.seen.lock().expect("seen");
            let n = seen.entry(h).or_insert(0);
            *n += 1;
            *n
        };
        let mut rng = ChaCha8Rng::seed_from_u64(fnv(&n.to_le_bytes(), h));
        (rng.gen::<f64>(), rng.gen_bool(0.5))
    };
    let t = cfg.throttle_rate;
    let s = t + cfg.server_error_rate;
    let d = s + cfg.drop_rate;
    let l = d + cfg.lost_response_rate;
    let planned = if draw < t {
        Some(Fault::Throttled)
    } else if draw < s {
        Some(if before { Fault::ServerErrorBefore } else { Fault::ServerErrorAfter })
    } else if draw < d {
        Some(if before { Fault::DroppedBefore } else { Fault::DroppedAfter })
    } else if draw < l {
        Some(Fault::DroppedAfter)
    } else {
        None
    };
    match planned {
        Some(Fault::Throttled) => {
            record(planned);
            return Ok(throttle_response(&service));
        }
        Some(Fault::ServerErrorBefore) => {
            record(planned);
            return Ok(server_error_response(&service));
        }
        Some(Fault::DroppedBefore) => {
            record(planned);
            return Err(Dropped);
        }
        _ => {}
    }

    // answer what moto lacks, or forward
    let account = cfg.account_id.clone().unwrap_or_else(|| "123456789012".into());
    let region = region_of(&parts.headers);
    let forward = |p: String, method: hyper::Method, b: Bytes| {
        let mut builder = Request::builder().method(method).uri(format!("{}{}", st.upstream, p));
        for (k, v) in &parts.headers {
            if k != "content-length" {
                builder = builder.header(k, v);
            }
        }
        if let Some(acct) = &cfg.account_id {
            builder = builder.header("x-moto-account-id", acct.as_str());
        }
        let req = builder.body(Full::new(b));
        let client = st.client.clone();
        async move {
            let resp = client.request(req.map_err(|_| ())?).await.map_err(|_| ())?;
            let (rparts, rbody) = resp.into_parts();
            let rbody = rbody.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            Ok::<_, ()>((rparts.status, rparts.headers, rbody))
        }
    };
    let segs: Vec<&str> = parts.uri.path().trim_matches('/').split('/').collect();
    let cluster = if segs.first() == Some(&"clusters") { segs.get(1).copied().unwrap_or("") } else { "" };
    let behaviour = crate::eks::Behaviour { pending_describes: cfg.eks_pending_describes, fail: cfg.eks_fail.clone() };
    let mut emulated: Option<crate::eks::Answer> = None;
    if service == "eks" && !control {
        if crate::eks::emulated(&operation) {
            let exists = if cluster.is_empty() {
                true
            } else {
                matches!(forward(format!("/clusters/{cluster}"), hyper::Method::GET, Bytes::new()).await, Ok((s, _, _)) if s.is_success())
            };
            let req = crate::eks::Req {
                operation: &operation,
                path: parts.uri.path(),
                body: &body,
                account: &account,
                region: &region,
                query: parts.uri.query().unwrap_or(""),
                behaviour: &behaviour,
            };
            let local =
                (operation == "CreateFargateProfile").then(|| local_zone_subnet(&st, &body, "/subnets")).flatten();
            emulated = match fargate_public_subnet(&st, &parts.headers, &cfg, &operation, &body).await {
                // EKS runs no Fargate pod in a Local Zone (the emulator's wording)
                _ if local.is_some() => {
                    let (subnet, zone) = local.unwrap_or_default();
                    Some((
                        StatusCode::BAD_REQUEST,
                        serde_json::json!({"message": format!("Subnet {subnet} provided in Fargate Profile is in Local Zone {zone}, where Fargate does not run")}),
                        Some("InvalidParameterException"),
                    ))
                }
                Some(subnet) => Some((
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"message": format!("Subnet {subnet} provided in Fargate Profile is not a private subnet")}),
                    Some("InvalidParameterException"),
                )),
                None => Some(st.eks.handle(&req, exists)),
            };
        } else if operation == "CreateNodegroup" {
            // a launch template naming an AMI makes a CUSTOM nodegroup, and EKS refuses a version or an AMI
            // type beside it (the CreateNodegroup API reference); moto knows neither rule
            let req: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if let (Some(id), Some(v)) = (
                req.pointer("/launchTemplate/id").and_then(|v| v.as_str()),
                req.pointer("/launchTemplate/version").and_then(|v| v.as_str()),
            ) {
                let versions = ec2_call(
                    &st,
                    &parts.headers,
                    &cfg,
                    &[
                        ("Action", "DescribeLaunchTemplateVersions"),
                        ("LaunchTemplateId", id),
                        ("LaunchTemplateVersion.1", v),
                    ],
                )
                .await
                .unwrap_or_default();
                if xml_text(&versions, "imageId").is_some() {
                    if !req["version"].is_null() || !req["amiType"].is_null() {
                        emulated = Some((
                            StatusCode::BAD_REQUEST,
                            serde_json::json!({"message": "You cannot specify the field kubernetesVersion or amiType when using a custom AMI in the launch template"}),
                            Some("InvalidParameterException"),
                        ));
                    } else if let Some(ng) = req["nodegroupName"].as_str() {
                        st.eks.will_be_custom(&account, &region, cluster, ng);
                    }
                }
            }
        } else if operation == "CreateCluster"
            && local_zone_subnet(&st, &body, "/resourcesVpcConfig/subnetIds").is_some()
        {
            // EKS places no control plane interface in a Local Zone (the emulator's wording)
            let (subnet, zone) = local_zone_subnet(&st, &body, "/resourcesVpcConfig/subnetIds").unwrap_or_default();
            emulated = Some((
                StatusCode::BAD_REQUEST,
                serde_json::json!({"message": format!("Subnet {subnet} is in Local Zone {zone}; the cluster's subnets must be in availability zones")}),
                Some("InvalidParameterException"),
            ));
        } else if operation == "CreateCluster" {
            // hybrid nodes' networks, which moto ignores, checked as EKS does against the VPC's and the
            // services' blocks (EKS's default service block follows the VPC's)
            let req: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if let Some(r) = req.get("remoteNetworkConfig").filter(|r| r.is_object()) {
                let mode =
                    req.pointer("/accessConfig/authenticationMode").and_then(|m| m.as_str()).unwrap_or("CONFIG_MAP");
                let mut vpc_cidr = None;
                if let Some(subnet) = req.pointer("/resourcesVpcConfig/subnetIds/0").and_then(|v| v.as_str()) {
                    let subnets =
                        ec2_call(&st, &parts.headers, &cfg, &[("Action", "DescribeSubnets"), ("SubnetId.1", subnet)])
                            .await
                            .unwrap_or_default();
                    if let Some(vpc) = xml_text(&subnets, "vpcId") {
                        let vpcs = ec2_call(&st, &parts.headers, &cfg, &[("Action", "DescribeVpcs"), ("VpcId.1", vpc)])
                            .await
                            .unwrap_or_default();
                        vpc_cidr = xml_text(&vpcs, "cidrBlock").map(String::from);
                    }
                }
                let service = req
                    .pointer("/kubernetesNetworkConfig/serviceIpv4Cidr")
                    .and_then(|v| v.as_str())
                    .map(String::from)
                    .or_else(|| {
                        let ten: ipnet::Ipv4Net = "10.0.0.0/8".parse().ok()?;
                        let v: ipnet::Ipv4Net = vpc_cidr.as_deref()?.parse().ok()?;
                        Some(if ten.contains(&v.network()) { "172.20.0.0/16" } else { "10.100.0.0/16" }.to_string())
                    });
                emulated = crate::eks::refuse_remote_network(r, mode, vpc_cidr.as_deref(), service.as_deref());
            }
        } else if operation == "DeleteCluster" {
            emulated = st.eks.refuse_cluster_delete(&account, &region, cluster);
        } else if operation == "UpdateClusterConfig" {
            emulated = st.eks.update_access_config(&account, &region, cluster, &body);
        } else if operation == "DescribeUpdate" {
            emulated = st.eks.describe_update(&account, &region, cluster, segs.get(3).copied().unwrap_or(""));
        } else if matches!(operation.as_str(), "TagResource" | "UntagResource" | "ListTagsForResource") {
            // tags of the resources only the emulation holds, and of nodegroups (moto tags only clusters)
            emulated = st.eks.tags(
                &account,
                &region,
                &operation,
                &segs[1..].join("/"),
                parts.uri.query().unwrap_or(""),
                &body,
            );
        }
    }
    if service == "ec2" && !control {
        if let Some((code, message)) = st.ec2.refusal(&operation, &body) {
            record(None);
            return Ok(ec2_error(StatusCode::BAD_REQUEST, code, &message));
        }
    }
    let (rstatus, rheaders, rbody) = match emulated {
        Some((status, json, error_type)) => {
            let mut h = hyper::HeaderMap::new();
            h.insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
            if let Some(t) = error_type {
                h.insert("x-amzn-errortype", hyper::header::HeaderValue::from_static(t));
            }
            (status, h, Bytes::from(json.to_string()))
        }
        None => match forward(
            path.clone(),
            parts.method.clone(),
            match st.ec2.to_moto(&operation, &body).filter(|_| service == "ec2") {
                Some(b) => Bytes::from(b),
                None => body.clone(),
            },
        )
        .await
        {
            Ok((status, h, b)) => {
                let mut b = b;
                if service == "ec2" && status.is_success() {
                    if let Some(fixed) = st.ec2.answered(&operation, &region, &body, &String::from_utf8_lossy(&b)) {
                        b = Bytes::from(fixed);
                    }
                    if let Some(change) = crate::ec2::RouteTableChange::of(&operation, &body) {
                        gateway_routes(&st, &parts.headers, &cfg, &change).await;
                    }
                }
                if service == "eks" && status.is_success() {
                    match operation.as_str() {
                        "CreateCluster" => {
                            st.eks.cluster_created(
                                &account,
                                &region,
                                &body,
                                &format!("arn:aws:iam::{account}:user/moto"),
                                &behaviour,
                            );
                            // EKS makes a security group with every cluster (for the control plane's interfaces
                            // and the managed nodes); moto does not, so the emulation makes it in moto's EC2
                            let req: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                            let subnet = req.pointer("/resourcesVpcConfig/subnetIds/0").and_then(|v| v.as_str());
                            if let (Some(name), Some(subnet)) = (req["name"].as_str(), subnet) {
                                if let Some(sg) = cluster_security_group(&st, &parts.headers, &cfg, name, subnet).await
                                {
                                    st.eks.set_security_group(&account, &region, name, &sg);
                                }
                            }
                        }
                        "CreateNodegroup" => st.eks.nodegroup_created(&account, &region, cluster, &body, &behaviour),
                        "DescribeNodegroup" => {
                            if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&b) {
                                st.eks.decorate_nodegroup(&account, &region, cluster, &mut v, &behaviour);
                                b = Bytes::from(v.to_string());
                            }
                        }
                        "DeleteCluster" => {
                            // EKS removes the cluster's security group with it
                            if let Some(sg) = st.eks.cluster_deleted(&account, &region, cluster) {
                                ec2_call(
                                    &st,
                                    &parts.headers,
                                    &cfg,
                                    &[("Action", "DeleteSecurityGroup"), ("GroupId", &sg)],
                                )
                                .await;
                            }
                        }
                        "UpdateNodegroupConfig" => {
                            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&b) {
                                st.eks.update_made(&account, &region, cluster, &v);
                            }
                        }
                        "DescribeCluster" => {
                            if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&b) {
                                st.eks.decorate_describe(&account, &region, &mut v, &behaviour);
                                b = Bytes::from(v.to_string());
                            }
                        }
                        _ => {}
                    }
                }
                (status, h, b)
            }
            Err(()) => {
                record(Some(Fault::DroppedBefore));
                return Err(Dropped);
            }
        },
    };
    let mut crash_now = false;
    if mutating && !control && rstatus.is_success() {
        let m = st.mutations.fetch_add(1, Ordering::SeqCst) + 1;
        crash_now = cfg.crash_after_mutations.is_some_and(|k| m >= k);
    }
    if crash_now {
        record(Some(Fault::Crashed));
        return Err(Dropped);
    }
    record(planned);
    match planned {
        Some(Fault::ServerErrorAfter) => Ok(server_error_response(&service)),
        Some(Fault::DroppedAfter) => Err(Dropped),
        _ => {
            let mut out = Response::builder().status(rstatus);
            for (k, v) in &rheaders {
                if k != "transfer-encoding" && k != "content-length" && k != "connection" {
                    out = out.header(k, v);
                }
            }
            Ok(out.body(Full::new(rbody)).expect("valid response"))
        }
    }
}

/// A query-protocol EC2 call the proxy makes to moto itself, for what the emulated EKS does in EC2. It carries
/// the client's credentials (moto files it under the same account and region) with the credential scope's
/// service changed to EC2 (moto routes by it). Answers the body of a success.
async fn ec2_call(
    st: &State,
    headers: &hyper::HeaderMap,
    cfg: &FaultConfig,
    params: &[(&str, &str)],
) -> Option<String> {
    let mut form: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", urlencoding::encode(v))).collect();
    form.push("Version=2016-11-15".into());
    let mut b = Request::builder()
        .method(hyper::Method::POST)
        .uri(format!("{}/", st.upstream))
        .header("content-type", "application/x-www-form-urlencoded; charset=utf-8");
    if let Some(a) = authorization(headers) {
        b = b.header("authorization", a.replace("/eks/aws4_request", "/ec2/aws4_request"));
    }
    if let Some(acct) = &cfg.account_id {
        b = b.header("x-moto-account-id", acct.as_str());
    }
    let resp = st.client.request(b.body(Full::new(Bytes::from(form.join("&")))).ok()?).await.ok()?;
    let ok = resp.status().is_success();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    ok.then(|| String::from_utf8_lossy(&body).into_owned())
}

/// The first subnet of the list at `pointer` in a JSON request that the emulation made in a Local Zone, with
/// the zone.
fn local_zone_subnet(st: &State, body: &[u8], pointer: &str) -> Option<(String, String)> {
    let req: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    req.pointer(pointer)?
        .as_array()?
        .iter()
        .filter_map(|s| s.as_str())
        .find_map(|s| st.ec2.local_zone_of(s).map(|z| (s.to_string(), z.to_string())))
}

/// The first subnet of a `CreateFargateProfile` whose route table sends traffic to an internet gateway: EKS
/// takes private subnets only for Fargate. A subnet without a table of its own is taken as private (its VPC's
/// main table, which eksodus never routes to the internet).
async fn fargate_public_subnet(
    st: &State,
    headers: &hyper::HeaderMap,
    cfg: &FaultConfig,
    operation: &str,
    body: &[u8],
) -> Option<String> {
    if operation != "CreateFargateProfile" {
        return None;
    }
    let req: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    for subnet in req["subnets"].as_array().into_iter().flatten().filter_map(|s| s.as_str()) {
        let tables = ec2_call(
            st,
            headers,
            cfg,
            &[
                ("Action", "DescribeRouteTables"),
                ("Filter.1.Name", "association.subnet-id"),
                ("Filter.1.Value.1", subnet),
            ],
        )
        .await
        .unwrap_or_default();
        if tables.contains("<gatewayId>igw-") {
            return Some(subnet.to_string());
        }
    }
    None
}

/// Writes in moto the routes a gateway endpoint's added tables need (to its service's prefix list) and
/// removes those of its removed tables, as EC2 does with the tables of a gateway endpoint.
async fn gateway_routes(st: &State, headers: &hyper::HeaderMap, cfg: &FaultConfig, c: &crate::ec2::RouteTableChange) {
    let endpoint =
        ec2_call(st, headers, cfg, &[("Action", "DescribeVpcEndpoints"), ("VpcEndpointId.1", &c.endpoint)]).await;
    let Some(endpoint) = endpoint else { return };
    if !xml_text(&endpoint, "vpcEndpointType").is_some_and(|t| t.eq_ignore_ascii_case("gateway")) {
        return;
    }
    let Some(service) = xml_text(&endpoint, "serviceName") else { return };
    let lists = ec2_call(
        st,
        headers,
        cfg,
        &[
            ("Action", "DescribeManagedPrefixLists"),
            ("Filter.1.Name", "prefix-list-name"),
            ("Filter.1.Value.1", service),
        ],
    )
    .await;
    let Some(list) = lists.as_deref().and_then(|l| xml_text(l, "prefixListId")).map(String::from) else { return };
    for t in &c.add {
        let p = [
            ("Action", "CreateRoute"),
            ("RouteTableId", t.as_str()),
            ("DestinationPrefixListId", list.as_str()),
            ("GatewayId", c.endpoint.as_str()),
        ];
        ec2_call(st, headers, cfg, &p).await;
    }
    for t in &c.remove {
        let p = [("Action", "DeleteRoute"), ("RouteTableId", t.as_str()), ("DestinationPrefixListId", list.as_str())];
        ec2_call(st, headers, cfg, &p).await;
    }
}

/// The text of the first `<tag>` element of an EC2 answer.
fn xml_text<'a>(body: &'a str, tag: &str) -> Option<&'a str> {
    let start = body.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = body[start..].find(&format!("</{tag}>"))? + start;
    Some(&body[start..end])
}

/// Makes EKS's cluster security group (`eks-cluster-sg-<name>-<n>`, tagged as EKS tags it) in the VPC of the
/// cluster's first subnet.
async fn cluster_security_group(
    st: &State,
    headers: &hyper::HeaderMap,
    cfg: &FaultConfig,
    name: &str,
    subnet: &str,
) -> Option<String> {
    let subnets = ec2_call(st, headers, cfg, &[("Action", "DescribeSubnets"), ("SubnetId.1", subnet)]).await?;
    let vpc = xml_text(&subnets, "vpcId")?.to_string();
    let group = format!("eks-cluster-sg-{name}-{}", fnv(name.as_bytes(), FNV_OFFSET) % 1_000_000_000);
    let tag_key = format!("kubernetes.io/cluster/{name}");
    let created = ec2_call(
        st,
        headers,
        cfg,
        &[
            ("Action", "CreateSecurityGroup"),
            ("GroupName", &group),
            ("GroupDescription", "EKS created security group applied to ENI that is attached to EKS Control Plane master nodes, as well as any managed workloads."),
            ("VpcId", &vpc),
            ("TagSpecification.1.ResourceType", "security-group"),
            ("TagSpecification.1.Tag.1.Key", &tag_key),
            ("TagSpecification.1.Tag.1.Value", "owned"),
            ("TagSpecification.1.Tag.2.Key", "Name"),
            ("TagSpecification.1.Tag.2.Value", &group),
        ],
    )
    .await?;
    xml_text(&created, "groupId").map(String::from)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a: a tiny hash that is the same on every platform and Rust version.
fn fnv(bytes: &[u8], mut h: u64) -> u64 {
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The region from the SigV4 credential scope.
fn region_of(headers: &hyper::HeaderMap) -> String {
    authorization(headers).and_then(eksodus_core::operations::region_of).unwrap_or("us-east-1").to_string()
}

/// The signing name from the SigV4 `Authorization` header.
fn service_of(headers: &hyper::HeaderMap) -> String {
    authorization(headers).and_then(eksodus_core::operations::service_of).unwrap_or("unknown").to_string()
}

fn authorization(headers: &hyper::HeaderMap) -> Option<&str> {
    headers.get("authorization").and_then(|v| v.to_str().ok())
}

fn operation_of(service: &str, method: &hyper::Method, path: &str, headers: &hyper::HeaderMap, body: &[u8]) -> String {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    eksodus_core::operations::operation_of(service, method.as_str(), path, target, body)
}

const READ_PREFIXES: &[&str] =
    &["Describe", "List", "Get", "Search", "Check", "Lookup", "Simulate", "Generate", "Preview"];

fn is_mutating(method: &hyper::Method, operation: &str) -> bool {
    if operation.contains(' ') {
        return method != hyper::Method::GET && method != hyper::Method::HEAD;
    }
    !READ_PREFIXES.iter().any(|p| operation.starts_with(p))
}

fn request_id() -> String {
    let mut rng = rand::thread_rng();
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        rng.gen::<u32>(),
        rng.gen::<u16>(),
        rng.gen::<u16>() & 0xfff,
        rng.gen::<u16>() & 0xfff,
        rng.gen::<u64>() & 0xffff_ffff_ffff
    )
}

fn xml(status: StatusCode, body: String) -> Resp {
    Response::builder()
        .status(status)
        .header("content-type", "text/xml")
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Resp {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-amzn-errortype", code)
        .header("x-amzn-requestid", request_id())
        .body(Full::new(Bytes::from(serde_json::json!({ "message": message }).to_string())))
        .expect("valid response")
}

fn ec2_error(status: StatusCode, code: &str, message: &str) -> Resp {
    xml(
        status,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>{}</RequestID></Response>",
            request_id()
        ),
    )
}

fn query_error(service: &str, status: StatusCode, kind: &str, code: &str, message: &str) -> Resp {
    let ns = match service {
        "sts" => "https://sts.amazonaws.com/doc/2011-06-15/",
        _ => "https://iam.amazonaws.com/doc/2010-05-08/",
    };
    xml(
        status,
        format!(
            "<ErrorResponse xmlns=\"{ns}\"><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
            request_id()
        ),
    )
}

/// The throttling error each service really sends.
fn throttle_response(service: &str) -> Resp {
    match service {
        "ec2" => ec2_error(StatusCode::SERVICE_UNAVAILABLE, "RequestLimitExceeded", "Request limit exceeded."),
        "iam" | "sts" => query_error(service, StatusCode::BAD_REQUEST, "Sender", "Throttling", "Rate exceeded"),
        _ => json_error(StatusCode::TOO_MANY_REQUESTS, "ThrottlingException", "Rate exceeded"),
    }
}

/// The access-denied error each service sends for an action the caller's policy does not allow.
fn denied_response(service: &str, operation: &str) -> Resp {
    let msg = format!("User is not authorized to perform: {service}:{operation} (eksodus test proxy policy)");
    match service {
        "ec2" => ec2_error(StatusCode::FORBIDDEN, "UnauthorizedOperation", &msg),
        "iam" | "sts" => query_error(service, StatusCode::FORBIDDEN, "Sender", "AccessDenied", &msg),
        _ => json_error(StatusCode::FORBIDDEN, "AccessDeniedException", &msg),
    }
}

/// What every call gets once the simulated process has crashed: a client error no retry policy retries.
fn crashed_response(service: &str) -> Resp {
    let msg = "the simulated process crashed (eksodus test proxy): nothing is sent any more";
    match service {
        "ec2" => ec2_error(StatusCode::BAD_REQUEST, "EksodusTestCrashed", msg),
        "iam" | "sts" => query_error(service, StatusCode::BAD_REQUEST, "Sender", "EksodusTestCrashed", msg),
        _ => json_error(StatusCode::BAD_REQUEST, "EksodusTestCrashed", msg),
    }
}

/// The 5xx error each service really sends.
fn server_error_response(service: &str) -> Resp {
    match service {
        "ec2" => ec2_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "An internal error has occurred"),
        "iam" => query_error(
            service,
            StatusCode::INTERNAL_SERVER_ERROR,
            "Receiver",
            "ServiceFailure",
            "Request processing has failed due to some unknown error, exception or failure.",
        ),
        "sts" => query_error(
            service,
            StatusCode::INTERNAL_SERVER_ERROR,
            "Receiver",
            "InternalFailure",
            "An internal error occurred.",
        ),
        _ => json_error(StatusCode::INTERNAL_SERVER_ERROR, "ServerException", "An internal error occurred."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::Method;

    #[test]
    fn mutating_by_name_and_method() {
        assert!(is_mutating(&Method::POST, "CreateVpc"));
        assert!(!is_mutating(&Method::POST, "DescribeVpcs"));
        assert!(is_mutating(&Method::DELETE, "DELETE /x"));
        assert!(!is_mutating(&Method::GET, "GET /x"));
    }

    #[test]
    fn fnv_is_stable() {
        assert_eq!(fnv(b"", FNV_OFFSET), FNV_OFFSET);
        assert_eq!(fnv(b"a", FNV_OFFSET), 0xaf63_dc4c_8601_ec8c);
    }
}
