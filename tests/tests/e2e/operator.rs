//! The operator on the real API server against the AWS emulator: an `Environment` resource made Ready with
//! the resources `up` makes, changed in place, and removed by its finalizer with nothing tagged left; a bad
//! spec Degraded with every field error and no AWS call; drift reported (mode Observe) then repaired (mode
//! Apply); the leader Lease taken over when its holder stops renewing.
//!
//! The operator needs watches, finalizers and the status subresource of a served CRD, which the fake API
//! server does not have: these tests run on the real one (CI always has it) and say so when skipped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use eksodus::aws::AwsTarget;
use eksodus::{ApplyOptions, EventSink};
use eksodus_operator::crd::Environment;
use eksodus_operator::lease::{LeaseConfig, LeaseLock};
use eksodus_operator::metrics::Metrics;
use eksodus_operator::{ClusterAccess, RunOptions, Settings};
use eksodus_testkit::{FaultConfig, LocalAws};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, CustomResourceExt};
use serde_json::json;

/// A network, a cluster with a nodegroup and two addons.
const SPEC: &str = r#"{"region": "us-east-1",
  "network": {"cidr": "10.70.0.0/16", "azs": 2, "nat": "single"},
  "cluster": {"version": "1.31", "nodegroups": [{"name": "general", "instance_types": ["m5.large"], "min": 1, "max": 3, "desired": 2}],
              "addons": [{"name": "vpc-cni"}, {"name": "kube-proxy"}]}}"#;

/// The test's namespace on the real API server, with the CRD installed; None (and a note) on the fake.
async fn cluster(test: &str) -> Option<eksodus_e2e::Cluster> {
    let c = eksodus_e2e::Cluster::start(test).await;
    if !c.is_real() {
        println!("[{test}] skipped: the operator needs a real API server (watches, finalizers, CRDs)");
        return None;
    }
    install_crd(&c.client).await;
    Some(c)
}

/// Applies the CRD (server-side, idempotent across tests sharing the server) and waits until it is served.
async fn install_crd(client: &kube::Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in [Environment::crd(), eksodus_operator::migration::Migration::crd()] {
        let name = crd.metadata.name.clone().unwrap();
        crds.patch(&name, &PatchParams::apply("eksodus-e2e").force(), &Patch::Apply(&crd)).await.expect("CRD applied");
    }
    let envs: Api<Environment> = Api::all(client.clone());
    let migrations: Api<eksodus_operator::migration::Migration> = Api::all(client.clone());
    for _ in 0..100 {
        if envs.list(&Default::default()).await.is_ok() && migrations.list(&Default::default()).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the Environment CRD was never served");
}

struct Operator {
    task: tokio::task::JoinHandle<Result<(), eksodus_operator::Error>>,
    metrics: Arc<Metrics>,
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn settings(namespace: &str, aws: &LocalAws) -> Settings {
    Settings {
        namespace: Some(namespace.to_string()),
        aws: AwsTarget::local("us-east-1", &aws.endpoint()),
        cluster_access: ClusterAccess::None,
        options: ApplyOptions::fast(),
        concurrency: 4,
        drift_interval: Duration::from_secs(600),
        cleanup_timeout: Duration::from_secs(30),
        identity: "e2e".into(),
        work_dir: std::env::temp_dir().join(format!("eksodus-e2e-operator-{namespace}")),
    }
}

fn start(client: &kube::Client, settings: Settings, metrics_addr: Option<std::net::SocketAddr>) -> Operator {
    let metrics = Arc::new(Metrics::default());
    let options = RunOptions { settings, lease: None, metrics_addr };
    let task = tokio::spawn(eksodus_operator::run(client.clone(), options, metrics.clone(), std::future::pending()));
    Operator { task, metrics }
}

fn resource(name: &str, environment: serde_json::Value, extra: serde_json::Value) -> Environment {
    let mut spec = json!({"environment": environment});
    spec.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    serde_json::from_value(
        json!({"apiVersion": "eksodus.io/v1alpha1", "kind": "Environment", "metadata": {"name": name}, "spec": spec}),
    )
    .unwrap()
}

fn condition(e: &Environment, t: &str) -> Option<(String, String)> {
    let c = eksodus_operator::status::get(&e.status.as_ref()?.conditions, t)?;
    Some((c.status.clone(), c.reason.clone()))
}

/// Polls `name` until `ok` holds for the current generation's status, or panics after `within` with the last
/// status seen.
async fn wait_for(
    api: &Api<Environment>,
    name: &str,
    within: Duration,
    what: &str,
    ok: impl Fn(&Environment) -> bool,
) -> Environment {
    let start = Instant::now();
    loop {
        let e = api.get(name).await.expect("get");
        let current = e.status.as_ref().is_some_and(|s| Some(s.observed_generation) == e.metadata.generation);
        if current && ok(&e) {
            return e;
        }
        assert!(start.elapsed() < within, "{name}: not {what} after {within:?}: {:#?}", e.status);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn wait_gone(api: &Api<Environment>, name: &str, within: Duration) {
    let start = Instant::now();
    while let Some(e) = api.get_opt(name).await.expect("get") {
        assert!(start.elapsed() < within, "{name}: still there after {within:?}: {:#?}", e.status);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn ready(e: &Environment) -> bool {
    condition(e, "Ready").is_some_and(|(s, _)| s == "True")
}

async fn facade_env(aws: &LocalAws, text: &str, name: &str) -> eksodus::Environment {
    let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
    v["name"] = json!(name);
    let spec = eksodus::spec::from_str(&v.to_string()).unwrap();
    let conf = AwsTarget::local("us-east-1", &aws.endpoint()).load().await;
    eksodus::Environment::builder(spec)
        .aws(&conf)
        .options(ApplyOptions::fast())
        .kube(eksodus::KubeAccess::None)
        .build()
        .unwrap()
}

/// The kinds of what is tagged, sorted: two environments of one spec must have the same.
async fn kinds(env: &eksodus::Environment) -> Vec<String> {
    let mut k: Vec<String> =
        env.remaining().await.unwrap().iter().map(|r| r.split(' ').next().unwrap_or_default().to_string()).collect();
    k.sort();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_environment_resource_is_made_changed_and_removed() {
    let Some(c) = cluster("operator-lifecycle").await else { return };
    let aws = LocalAws::start(FaultConfig { eks_pending_describes: 2, ..Default::default() }).await.unwrap();
    let op = start(&c.client, settings(&c.namespace, &aws), Some("127.0.0.1:0".parse().unwrap()));
    let api: Api<Environment> = Api::namespaced(c.client.clone(), &c.namespace);
    let spec: serde_json::Value = serde_json::from_str(SPEC).unwrap();
    api.create(&PostParams::default(), &resource("team-a", spec.clone(), json!({}))).await.unwrap();
    let e = wait_for(&api, "team-a", Duration::from_secs(300), "Ready", ready).await;
    let st = e.status.clone().unwrap();
    assert!(e.metadata.finalizers.as_ref().is_some_and(|f| f.iter().any(|f| f == "eksodus.io/down")));
    assert_eq!(condition(&e, "Degraded"), Some(("False".into(), "Converged".into())));
    assert!(st.cluster_endpoint.is_some(), "{st:#?}");
    assert_eq!(st.account.as_deref(), Some(aws.account_id.as_str()));
    let last = st.last_reconcile.clone().unwrap();
    assert!(last.aws_calls > 0 && last.aws_calls_by_operation.contains_key("ec2:DescribeVpcs"), "{last:#?}");

    // the resources are those `up` makes: the same kinds as the same spec brought up directly, and a plan of
    // the resource's environment is empty
    let direct = LocalAws::start(FaultConfig { eks_pending_describes: 2, ..Default::default() }).await.unwrap();
    let other = facade_env(&direct, SPEC, "team-a").await;
    other.up(&EventSink::discard()).await.unwrap();
    let mine = facade_env(&aws, SPEC, "team-a").await;
    assert_eq!(kinds(&mine).await, kinds(&other).await);
    assert!(mine.plan().await.unwrap().is_converged());
    other.down(&EventSink::discard(), Duration::from_secs(10)).await.unwrap();

    // a changed spec is applied (in place: the nodegroup's size)
    let patch = json!({"spec": {"environment": {"cluster": {"nodegroups": [{"name": "general", "instance_types": ["m5.large"], "min": 1, "max": 3, "desired": 3}]}}}});
    let before = e.metadata.generation.unwrap();
    api.patch("team-a", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let e = wait_for(&api, "team-a", Duration::from_secs(300), "Ready at the new generation", ready).await;
    assert!(e.metadata.generation.unwrap() > before);
    let eks = aws_sdk_eks::Client::new(&AwsTarget::local("us-east-1", &aws.endpoint()).load().await);
    let ng = eks.describe_nodegroup().cluster_name("team-a").nodegroup_name("general").send().await.unwrap();
    assert_eq!(ng.nodegroup().and_then(|n| n.scaling_config()).and_then(|s| s.desired_size()), Some(3));

    // the metrics say what happened
    let text = op.metrics.render();
    assert!(text.contains("eksodus_reconciles_total{kind=\"Environment\",outcome=\"applied\"}"), "{text}");
    assert!(text.contains("eksodus_aws_calls_total{service=\"eks\",operation=\"CreateNodegroup\"} 1"), "{text}");

    // deleting it runs down; the finalizer lets go once nothing tagged is left
    api.delete("team-a", &DeleteParams::default()).await.unwrap();
    wait_gone(&api, "team-a", Duration::from_secs(300)).await;
    assert_eq!(mine.remaining().await.unwrap(), Vec::<String>::new());
    drop(op);
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_spec_is_degraded_with_every_field_error_and_no_aws_call() {
    let Some(c) = cluster("operator-invalid").await else { return };
    let aws = LocalAws::start(FaultConfig::default()).await.unwrap();
    let _op = start(&c.client, settings(&c.namespace, &aws), None);
    let api: Api<Environment> = Api::namespaced(c.client.clone(), &c.namespace);
    let bad = json!({"name": "Bad_Name", "region": "nowhere", "network": {"cidr": "10.0.0.0/16", "azs": 7}});
    api.create(&PostParams::default(), &resource("bad", bad, json!({}))).await.unwrap();
    let e = wait_for(&api, "bad", Duration::from_secs(60), "Degraded", |e| {
        condition(e, "Degraded").is_some_and(|(s, r)| s == "True" && r == "InvalidSpec")
    })
    .await;
    let fields: Vec<String> = e.status.as_ref().unwrap().field_errors.iter().map(|f| f.field.clone()).collect();
    for want in ["spec.environment.name", "spec.environment.region"] {
        assert!(fields.iter().any(|f| f == want), "{want} missing from {fields:?}");
    }
    assert_eq!(condition(&e, "Ready").map(|r| r.0), Some("False".into()));
    // a resource that never validated made nothing: deleting it lets go at once
    api.delete("bad", &DeleteParams::default()).await.unwrap();
    wait_gone(&api, "bad", Duration::from_secs(60)).await;
    assert_eq!(aws.proxy.stats().calls.len(), 0, "{:?}", aws.proxy.stats().calls);
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_reported_when_observing_and_repaired_when_applying() {
    let Some(c) = cluster("operator-drift").await else { return };
    let aws = LocalAws::start(FaultConfig::default()).await.unwrap();
    let mut s = settings(&c.namespace, &aws);
    s.drift_interval = Duration::from_secs(2);
    let _op = start(&c.client, s, None);
    let api: Api<Environment> = Api::namespaced(c.client.clone(), &c.namespace);
    let net = json!({"region": "us-east-1", "network": {"cidr": "10.71.0.0/16", "azs": 2, "nat": "single"}});
    api.create(&PostParams::default(), &resource("drifty", net, json!({"mode": "Observe"}))).await.unwrap();
    // observing an environment that does not exist yet: all of it is drift, and nothing is made
    let e = wait_for(&api, "drifty", Duration::from_secs(60), "Drifted", |e| {
        condition(e, "Drifted").is_some_and(|(s, _)| s == "True")
    })
    .await;
    assert!(e.status.as_ref().unwrap().last_plan.create > 5, "{:#?}", e.status);
    let ec2 = aws_sdk_ec2::Client::new(&AwsTarget::local("us-east-1", &aws.endpoint()).load().await);
    let tagged = || aws_sdk_ec2::types::Filter::builder().name("tag:eksodus.io/environment").values("drifty").build();
    assert!(ec2.describe_vpcs().filters(tagged()).send().await.unwrap().vpcs().is_empty());

    api.patch("drifty", &PatchParams::default(), &Patch::Merge(json!({"spec": {"mode": "Apply"}}))).await.unwrap();
    wait_for(&api, "drifty", Duration::from_secs(120), "Ready", ready).await;

    // observing from now on (set before the deletion: in mode Apply a drift check two seconds later would
    // repair it before the test could look), then a route table deleted behind the operator's back
    api.patch("drifty", &PatchParams::default(), &Patch::Merge(json!({"spec": {"mode": "Observe"}}))).await.unwrap();
    wait_for(&api, "drifty", Duration::from_secs(60), "Ready while observing", ready).await;
    let tables = ec2.describe_route_tables().filters(tagged()).send().await.unwrap();
    let rt = tables
        .route_tables()
        .iter()
        .find(|t| !t.associations().iter().any(|a| a.main() == Some(true)) && !t.associations().is_empty())
        .expect("an associated route table")
        .clone();
    for a in rt.associations() {
        ec2.disassociate_route_table().association_id(a.route_table_association_id().unwrap()).send().await.unwrap();
    }
    ec2.delete_route_table().route_table_id(rt.route_table_id().unwrap()).send().await.unwrap();
    let gone = rt.route_table_id().unwrap().to_string();

    // observed: Drifted at the next drift check, and nothing repaired
    let e = wait_for(&api, "drifty", Duration::from_secs(60), "Drifted", |e| {
        condition(e, "Drifted").is_some_and(|(s, _)| s == "True")
    })
    .await;
    assert!(e.status.as_ref().unwrap().plan_steps.iter().any(|s| s.contains("route")), "{:#?}", e.status);
    let count = |t: &aws_sdk_ec2::operation::describe_route_tables::DescribeRouteTablesOutput| t.route_tables().len();
    let after_delete = count(&ec2.describe_route_tables().filters(tagged()).send().await.unwrap());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count(&ec2.describe_route_tables().filters(tagged()).send().await.unwrap()), after_delete);

    // applied: repaired on the next drift check
    api.patch("drifty", &PatchParams::default(), &Patch::Merge(json!({"spec": {"mode": "Apply"}}))).await.unwrap();
    wait_for(&api, "drifty", Duration::from_secs(120), "Ready again", ready).await;
    let tables = ec2.describe_route_tables().filters(tagged()).send().await.unwrap();
    assert_eq!(tables.route_tables().len(), after_delete + 1);
    assert!(tables.route_tables().iter().all(|t| t.route_table_id() != Some(gone.as_str())));

    api.delete("drifty", &DeleteParams::default()).await.unwrap();
    wait_gone(&api, "drifty", Duration::from_secs(300)).await;
    assert!(ec2.describe_vpcs().filters(tagged()).send().await.unwrap().vpcs().is_empty());
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_the_lease_when_the_leader_stops_renewing() {
    let Some(c) = cluster("operator-lease").await else { return };
    let config = |who: &str| LeaseConfig {
        duration: Duration::from_secs(2),
        renew_deadline: Duration::from_millis(1500),
        retry_period: Duration::from_millis(200),
        ..LeaseConfig::new(&c.namespace, "eksodus-operator", who)
    };
    let mut a = LeaseLock::new(c.client.clone(), config("a"));
    let mut b = LeaseLock::new(c.client.clone(), config("b"));
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert!(!b.try_acquire_or_renew().await.unwrap(), "held and fresh");
    assert!(a.try_acquire_or_renew().await.unwrap(), "the holder renews");
    // the leader dies (stops renewing): the standby takes over after a lease duration, not before
    let start = Instant::now();
    b.acquire().await.unwrap();
    let took = start.elapsed();
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(6), "{took:?}");
    assert_eq!(a.holder().await.unwrap().as_deref(), Some("b"));
    assert!(!a.try_acquire_or_renew().await.unwrap(), "the old leader learns it lost");
    // a leader that stops cleanly hands over at once
    b.release().await.unwrap();
    let start = Instant::now();
    a.acquire().await.unwrap();
    assert!(start.elapsed() < Duration::from_secs(1));
    c.cleanup().await;
}

/// The `eksodus-operator` binary: built beside this test binary by `cargo xtask test` (feature
/// `eksodus-operator/bin` in the same build), or built now when missing.
fn operator_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(std::path::Path::parent).unwrap().join("eksodus-operator");
    if bin.exists() {
        return bin;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::process::Command::new(cargo)
        .current_dir(&root)
        .args(["build", "-p", "eksodus-operator", "--features", "bin", "--message-format=short"])
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "building the operator: {}", String::from_utf8_lossy(&out.stderr));
    bin
}

/// A replica of the operator as a process of its own (killed, by its PID, when dropped).
struct Replica(std::process::Child);

impl Replica {
    fn start(bin: &std::path::Path, kubeconfig: &std::path::Path, ns: &str, who: &str, aws: &LocalAws) -> Replica {
        let log = std::env::temp_dir().join(format!("eksodus-operator-{ns}-{who}.log"));
        let child = std::process::Command::new(bin)
            .args(["--namespace", ns, "--lease-namespace", ns, "--identity", who, "--aws-endpoint"])
            .arg(aws.endpoint())
            .args([
                "--metrics-addr",
                "127.0.0.1:0",
                "--lease-duration",
                "3",
                "--renew-deadline",
                "2",
                "--retry-period",
                "0.5",
            ])
            .env("KUBECONFIG", kubeconfig)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("the operator starts");
        Replica(child)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn holder(client: &kube::Client, ns: &str) -> Option<String> {
    LeaseLock::new(client.clone(), LeaseConfig::new(ns, "eksodus-operator", "observer")).holder().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_finishes_what_a_killed_leader_started_without_duplicates() {
    let Some(c) = cluster("operator-failover").await else { return };
    let kubeconfig = c.real.as_ref().unwrap().get().kubeconfig_path();
    let bin = operator_binary();
    // slow calls, so the leader is surely killed in the middle of its apply
    let aws = LocalAws::start(FaultConfig {
        eks_pending_describes: 2,
        latency: Duration::from_millis(40),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut a = Replica::start(&bin, &kubeconfig, &c.namespace, "a", &aws);
    let start = Instant::now();
    while holder(&c.client, &c.namespace).await.as_deref() != Some("a") {
        assert!(start.elapsed() < Duration::from_secs(60), "replica a never took the lease");
        assert!(a.0.try_wait().unwrap().is_none(), "replica a exited");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut b = Replica::start(&bin, &kubeconfig, &c.namespace, "b", &aws);
    let api: Api<Environment> = Api::namespaced(c.client.clone(), &c.namespace);
    let spec: serde_json::Value = serde_json::from_str(SPEC).unwrap();
    api.create(&PostParams::default(), &resource("failover", spec, json!({}))).await.unwrap();
    // mid-apply: the VPC is made, the cluster is not yet
    let start = Instant::now();
    loop {
        let calls = aws.proxy.stats().calls;
        let made = |op: &str| calls.iter().any(|c| c.operation == op);
        if made("CreateVpc") && !made("CreateNodegroup") {
            break;
        }
        assert!(!made("CreateNodegroup"), "the apply went too far before the kill could land");
        assert!(start.elapsed() < Duration::from_secs(120), "replica a never started applying");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.0.kill().unwrap();
    a.0.wait().unwrap();
    let killed = Instant::now();
    let e = wait_for(&api, "failover", Duration::from_secs(300), "Ready after the takeover", ready).await;
    println!("[operator-failover] Ready {:.1}s after the leader was killed", killed.elapsed().as_secs_f64());
    assert_eq!(holder(&c.client, &c.namespace).await.as_deref(), Some("b"));
    assert!(e.status.unwrap().last_reconcile.is_some());
    // no duplicate: one of each, and the plan of the same spec is empty
    let conf = AwsTarget::local("us-east-1", &aws.endpoint()).load().await;
    let ec2 = aws_sdk_ec2::Client::new(&conf);
    let tagged = aws_sdk_ec2::types::Filter::builder().name("tag:eksodus.io/environment").values("failover").build();
    assert_eq!(ec2.describe_vpcs().filters(tagged.clone()).send().await.unwrap().vpcs().len(), 1);
    let nats = ec2.describe_nat_gateways().filter(tagged.clone()).send().await.unwrap();
    let live = nats.nat_gateways().iter().filter(|n| n.state().is_some_and(|s| s.as_str() == "available")).count();
    assert_eq!(live, 1);
    let eks = aws_sdk_eks::Client::new(&conf);
    assert_eq!(eks.list_clusters().send().await.unwrap().clusters().len(), 1);
    assert_eq!(eks.list_nodegroups().cluster_name("failover").send().await.unwrap().nodegroups().len(), 1);
    let mine = facade_env(&aws, SPEC, "failover").await;
    assert!(mine.plan().await.unwrap().is_converged());
    api.delete("failover", &DeleteParams::default()).await.unwrap();
    wait_gone(&api, "failover", Duration::from_secs(300)).await;
    assert_eq!(mine.remaining().await.unwrap(), Vec::<String>::new());
    // stopped as Kubernetes stops a pod (SIGTERM, to its PID): it hands the lease over on the way out
    let term = std::process::Command::new("kill").args(["-TERM", &b.0.id().to_string()]).status().unwrap();
    assert!(term.success());
    let status = b.0.wait().unwrap();
    assert!(status.success(), "a clean stop exits 0: {status:?}");
    assert_eq!(holder(&c.client, &c.namespace).await, None, "the lease was released");
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_install_manifests_are_accepted_by_the_api_server() {
    use kube::api::{DynamicObject, GroupVersionKind};
    let Some(c) = cluster("operator-manifests").await else { return };
    let install = eksodus_operator::manifests::Install {
        namespace: c.namespace.clone(),
        credential_namespaces: vec![c.namespace.clone()],
        role_arn: Some("arn:aws:iam::111122223333:role/eksodus-operator".into()),
        ..Default::default()
    };
    let discovery = kube::discovery::Discovery::new(c.client.clone()).run().await.unwrap();
    let mut checked = 0;
    for o in eksodus_operator::manifests::objects(&install) {
        if o["kind"] == "Namespace" {
            continue; // the test's namespace exists
        }
        let (g, v) =
            o["apiVersion"].as_str().unwrap().rsplit_once('/').unwrap_or(("", o["apiVersion"].as_str().unwrap()));
        let (ar, caps) =
            discovery.resolve_gvk(&GroupVersionKind::gvk(g, v, o["kind"].as_str().unwrap())).expect("served");
        let api: Api<DynamicObject> = match caps.scope {
            kube::discovery::Scope::Namespaced => Api::namespaced_with(c.client.clone(), &c.namespace, &ar),
            kube::discovery::Scope::Cluster => Api::all_with(c.client.clone(), &ar),
        };
        let obj: DynamicObject = serde_json::from_value(o.clone()).unwrap();
        let name = obj.metadata.name.clone().unwrap();
        // validated and admitted by the real server, stored nowhere
        let pp = PatchParams::apply("eksodus-e2e").force().dry_run();
        api.patch(&name, &pp, &Patch::Apply(&obj)).await.unwrap_or_else(|e| panic!("{} {name}: {e}", o["kind"]));
        checked += 1;
    }
    assert_eq!(
        checked, 11,
        "two CRDs, service account, two cluster roles and bindings, a role and binding, Deployment, Service"
    );
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_environments_converge_under_one_rate_limit() {
    const N: usize = 50;
    let Some(c) = cluster("operator-fleet").await else { return };
    let net = |i: usize| json!({"region": "us-east-1", "network": {"cidr": format!("10.{}.0.0/16", 100 + i), "azs": 2, "nat": "single"}});
    // what one `up` of such an environment costs, alone on an account
    let alone = LocalAws::start(FaultConfig::default()).await.unwrap();
    facade_env(&alone, &net(0).to_string(), "fleet-alone").await.up(&EventSink::discard()).await.unwrap();
    let single = alone.proxy.stats().calls.len();

    // one account for all of them, limited as AWS limits an account: far fewer calls per second than 50
    // environments planned at once would make
    let limit = eksodus_testkit::RateLimit { per_second: 40.0, burst: 40.0 };
    let aws = LocalAws::start(FaultConfig { rate_limit: Some(limit), ..Default::default() }).await.unwrap();
    let mut s = settings(&c.namespace, &aws);
    s.concurrency = 16;
    let op = start(&c.client, s, None);
    let api: Api<Environment> = Api::namespaced(c.client.clone(), &c.namespace);
    let started = Instant::now();
    for i in 0..N {
        api.create(&PostParams::default(), &resource(&format!("fleet-{i}"), net(i), json!({}))).await.unwrap();
    }
    for i in 0..N {
        wait_for(&api, &format!("fleet-{i}"), Duration::from_secs(900), "Ready", ready).await;
    }
    let took = started.elapsed();
    let stats = aws.proxy.stats();
    let throttled = stats.calls.iter().filter(|c| c.fault == Some(eksodus_testkit::Fault::Throttled)).count();
    let answered = stats.calls.len() - throttled;
    println!(
        "[operator-fleet] {N} environments Ready in {:.1}s; {answered} calls answered ({:.1} per environment, {single} for one up alone), {throttled} throttled",
        took.as_secs_f64(),
        answered as f64 / N as f64
    );
    // the same work as N single `up`s, within 10%; every call that failed for throttling was retried on its own
    assert!((answered as f64) <= 1.1 * (single * N) as f64, "{answered} calls for {N} x {single}");
    let errors: u64 = op.metrics.reconciles().iter().filter(|((_, o), _)| o == "error").map(|(_, n)| n).sum();
    assert_eq!(errors, 0, "no reconcile failed: {:?}", op.metrics.reconciles());
    assert!(throttled > 0, "the limit never bit: the test proved nothing");
    drop(op);
    // let them go without tearing 50 networks down (the account is the test's own)
    for i in 0..N {
        let name = format!("fleet-{i}");
        api.patch(&name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}})))
            .await
            .unwrap();
        api.delete(&name, &DeleteParams::default()).await.unwrap();
    }
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_resource_moves_a_bundle_into_a_cluster_once() {
    use eksodus_operator::migration::Migration;
    let Some(c) = cluster("operator-migration").await else { return };
    let target = eksodus_e2e::Cluster::start_with("operator-migration-target", "EKSODUS_TEST_KUBECONFIG_TARGET").await;
    let ns = target.namespace.clone();
    // a bundle of four objects for the target's namespace, made as `migrate export --from-dir` makes one
    let manifests = tempfile::tempdir().unwrap();
    std::fs::write(
        manifests.path().join("app.yaml"),
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings, namespace: {ns}}}\ndata: {{mode: blue}}\n---\n\
             apiVersion: v1\nkind: Secret\nmetadata: {{name: token, namespace: {ns}}}\nstringData: {{token: s3cret}}\n---\n\
             apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: app, namespace: {ns}}}\n---\n\
             apiVersion: v1\nkind: Service\nmetadata: {{name: app, namespace: {ns}}}\nspec: {{ports: [{{port: 80}}], selector: {{app: app}}}}\n"
        ),
    )
    .unwrap();
    let read = eksodus::migrate::source::read_dir(manifests.path()).unwrap();
    let prepared = eksodus::migrate::bundle::prepare(read, "test", &Default::default(), &Default::default());
    let bundle = tempfile::tempdir().unwrap();
    eksodus::migrate::bundle::write(bundle.path(), &prepared).unwrap();
    // the target's kubeconfig in a Secret beside the Migration
    let kubeconfig = target.real.as_ref().unwrap().get().kubeconfig();
    let secret: k8s_openapi::api::core::v1::Secret =
        serde_json::from_value(json!({"metadata": {"name": "target"}, "stringData": {"kubeconfig": kubeconfig}}))
            .unwrap();
    Api::namespaced(c.client.clone(), &c.namespace).create(&PostParams::default(), &secret).await.unwrap();
    let aws = LocalAws::start(FaultConfig::default()).await.unwrap();
    let _op = start(&c.client, settings(&c.namespace, &aws), None);
    let api: Api<Migration> = Api::namespaced(c.client.clone(), &c.namespace);
    let m: Migration = serde_json::from_value(json!({"apiVersion": "eksodus.io/v1alpha1", "kind": "Migration",
        "metadata": {"name": "move"},
        "spec": {"source": {"bundle": bundle.path()}, "target": {"kubeconfigSecret": {"name": "target"}}}}))
    .unwrap();
    api.create(&PostParams::default(), &m).await.unwrap();
    let done = |phase: &'static str| {
        move |m: &Migration| {
            m.status.as_ref().is_some_and(|s| s.phase == phase && Some(s.observed_generation) == m.metadata.generation)
        }
    };
    let status = wait_migration(&api, "move", done("Succeeded")).await;
    assert_eq!((status.objects, status.verified), (4, 4), "{status:#?}");
    assert_eq!(status.applied.get("created"), Some(&4), "{status:#?}");
    let cm: k8s_openapi::api::core::v1::ConfigMap =
        Api::namespaced(target.client.clone(), &ns).get("settings").await.unwrap();
    assert_eq!(cm.data.unwrap()["mode"], "blue");
    // asked again (a new generation): the journal sends nothing twice
    api.patch("move", &PatchParams::default(), &Patch::Merge(json!({"spec": {"verifyTimeoutSeconds": 60}})))
        .await
        .unwrap();
    let status = wait_migration(&api, "move", done("Succeeded")).await;
    assert_eq!(status.applied.get("journaled"), Some(&4), "{status:#?}");
    // a migration without a source fails, naming the field, and touches nothing
    let bad: Migration = serde_json::from_value(json!({"apiVersion": "eksodus.io/v1alpha1", "kind": "Migration",
        "metadata": {"name": "bad"}, "spec": {"source": {}, "target": {"kubeconfigSecret": {"name": "target"}}}}))
    .unwrap();
    api.create(&PostParams::default(), &bad).await.unwrap();
    let status = wait_migration(&api, "bad", done("Failed")).await;
    assert!(status.message.contains("spec.source"), "{status:#?}");
    // an Environment target that does not exist is named, and nothing is applied
    let orphan: Migration = serde_json::from_value(json!({"apiVersion": "eksodus.io/v1alpha1", "kind": "Migration",
        "metadata": {"name": "orphan"}, "spec": {"source": {"bundle": bundle.path()}, "target": {"environment": "nowhere"}}}))
    .unwrap();
    api.create(&PostParams::default(), &orphan).await.unwrap();
    let status = wait_migration(&api, "orphan", done("Failed")).await;
    assert!(status.message.contains("nowhere") && status.message.contains("no such Environment"), "{status:#?}");
    assert!(status.applied.is_empty(), "{status:#?}");

    // the bundle copied to S3 with its ConfigMap changed, read back through 5xx answers and dropped
    // connections: each call retried on its own, the change applied as an update
    let settings_yaml = bundle_file(bundle.path(), "ConfigMap");
    let text = std::fs::read_to_string(&settings_yaml).unwrap().replace("blue", "green");
    std::fs::write(&settings_yaml, text).unwrap();
    let s3 = s3_client(&aws.endpoint());
    s3.create_bucket().bucket("eksodus-e2e-bundles").send().await.expect("bucket");
    let mut files = 0;
    for entry in walk(bundle.path()) {
        let key = format!("shop/{}", entry.strip_prefix(bundle.path()).unwrap().display());
        let body = aws_sdk_s3::primitives::ByteStream::from(std::fs::read(&entry).unwrap());
        s3.put_object().bucket("eksodus-e2e-bundles").key(key).body(body).send().await.expect("put");
        files += 1;
    }
    aws.proxy.set_config(FaultConfig { seed: 14, server_error_rate: 0.2, drop_rate: 0.2, ..aws.proxy.config() });
    let from_s3: Migration = serde_json::from_value(json!({"apiVersion": "eksodus.io/v1alpha1", "kind": "Migration",
        "metadata": {"name": "from-s3"},
        "spec": {"source": {"bundle": "s3://eksodus-e2e-bundles/shop"}, "target": {"kubeconfigSecret": {"name": "target"}}}}))
    .unwrap();
    api.create(&PostParams::default(), &from_s3).await.unwrap();
    let status = wait_migration(&api, "from-s3", done("Succeeded")).await;
    let fetched = status.fetched.unwrap();
    assert_eq!((fetched.downloaded, fetched.unchanged), (files, 0), "{status:#?}");
    assert_eq!(status.applied.get("applied"), Some(&1), "{status:#?}");
    let cm: k8s_openapi::api::core::v1::ConfigMap =
        Api::namespaced(target.client.clone(), &ns).get("settings").await.unwrap();
    assert_eq!(cm.data.unwrap()["mode"], "green");
    let faults = aws.proxy.stats().calls.iter().filter(|c| c.service == "s3" && c.fault.is_some()).count();
    assert!(faults > 0, "no fault was injected into the S3 reads");
    // the next generation downloads nothing: every ETag is as recorded
    api.patch("from-s3", &PatchParams::default(), &Patch::Merge(json!({"spec": {"verifyTimeoutSeconds": 60}})))
        .await
        .unwrap();
    let status = wait_migration(&api, "from-s3", |m: &Migration| {
        done("Succeeded")(m) && m.status.as_ref().is_some_and(|s| s.applied.contains_key("journaled"))
    })
    .await;
    let fetched = status.fetched.unwrap();
    assert_eq!((fetched.downloaded, fetched.unchanged), (0, files), "{status:#?}");
    target.cleanup().await;
    c.cleanup().await;
}

/// An S3 client of the emulator for the test's own uploads (SDK retries on: the faults are for the operator).
fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "e2e"))
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::standard().with_max_attempts(10))
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The bundle file holding the object of `kind`.
fn bundle_file(dir: &std::path::Path, kind: &str) -> std::path::PathBuf {
    walk(dir)
        .into_iter()
        .find(|p| {
            std::fs::read_to_string(p).is_ok_and(|t| t.contains(&format!("kind: {kind}")))
                && !p.ends_with("manifest.json")
        })
        .unwrap_or_else(|| panic!("no {kind} in the bundle"))
}

async fn wait_migration(
    api: &Api<eksodus_operator::migration::Migration>,
    name: &str,
    ok: impl Fn(&eksodus_operator::migration::Migration) -> bool,
) -> eksodus_operator::migration::MigrationStatus {
    let start = Instant::now();
    loop {
        let m = api.get(name).await.unwrap();
        if ok(&m) {
            return m.status.unwrap();
        }
        assert!(start.elapsed() < Duration::from_secs(120), "{name}: {:#?}", m.status);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_come_from_the_named_secret_and_its_absence_is_reported() {
    let Some(c) = cluster("operator-credentials").await else { return };
    let aws = LocalAws::start(FaultConfig::default()).await.unwrap();
    let _op = start(&c.client, settings(&c.namespace, &aws), None);
    let api: Api<Environment> = Api::namespaced(c.client.clone(), &c.namespace);
    let net = json!({"region": "us-east-1", "network": {"cidr": "10.72.0.0/16", "azs": 2, "nat": "none"}});
    api.create(&PostParams::default(), &resource("keyed", net, json!({"credentials": {"secretName": "keyed-aws"}})))
        .await
        .unwrap();
    let e = wait_for(&api, "keyed", Duration::from_secs(60), "Degraded for want of credentials", |e| {
        condition(e, "Degraded").is_some_and(|(s, r)| s == "True" && r == "CredentialsUnavailable")
    })
    .await;
    let message = eksodus_operator::status::get(&e.status.unwrap().conditions, "Degraded").unwrap().message.clone();
    assert!(message.contains("keyed-aws") && message.contains("no such Secret"), "{message}");
    assert_eq!(aws.proxy.stats().calls.len(), 0, "nothing is asked of AWS without credentials");
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({"metadata": {"name": "keyed-aws"},
        "stringData": {"AWS_ACCESS_KEY_ID": "AKIDTEAMA", "AWS_SECRET_ACCESS_KEY": "team-a-secret"}}))
    .unwrap();
    Api::namespaced(c.client.clone(), &c.namespace).create(&PostParams::default(), &secret).await.unwrap();
    // the failed reconcile is retried with backoff (5 s, then 10 s): the Secret is picked up without a spec change
    wait_for(&api, "keyed", Duration::from_secs(90), "Ready", ready).await;
    // the calls were signed with the Secret's key, not the operator's own (the emulator's "testing")
    let keys: std::collections::BTreeSet<String> =
        aws.proxy.stats().calls.iter().map(|c| c.access_key.clone()).collect();
    assert_eq!(keys.into_iter().collect::<Vec<_>>(), ["AKIDTEAMA"]);
    api.delete("keyed", &DeleteParams::default()).await.unwrap();
    wait_gone(&api, "keyed", Duration::from_secs(120)).await;
    c.cleanup().await;
}

/// One S3 object (an etcd snapshot) mirrored into a file through dropped connections and 5xx answers: fetched
/// whole, not fetched again while its ETag is unchanged, fetched again when it changes; a missing object is
/// an error naming it with S3's code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_object_is_downloaded_once_per_version_through_faults() {
    use eksodus_operator::s3::{fetch_object, S3Uri, S3};
    let aws = LocalAws::start(FaultConfig::default()).await.unwrap();
    let up = s3_client(&aws.endpoint());
    up.create_bucket().bucket("eksodus-e2e-snapshots").send().await.expect("bucket");
    let snapshot: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let put = |body: Vec<u8>| {
        up.put_object()
            .bucket("eksodus-e2e-snapshots")
            .key("etcd/snap.db")
            .body(aws_sdk_s3::primitives::ByteStream::from(body))
            .send()
    };
    put(snapshot.clone()).await.expect("put");
    aws.proxy.set_config(FaultConfig { seed: 3, server_error_rate: 0.25, drop_rate: 0.25, ..aws.proxy.config() });
    let conf = AwsTarget::local("us-east-1", &aws.endpoint()).load().await;
    let s3 = S3::new(&conf);
    let uri = S3Uri::parse("s3://eksodus-e2e-snapshots/etcd/snap.db").unwrap().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("source/snapshot.db");
    let mut downloads = Vec::new();
    for _ in 0..3 {
        downloads.push(fetch_object(&s3, &uri, &dest).await.expect("fetched through the faults").downloaded);
    }
    assert_eq!(downloads, [1, 0, 0]);
    assert!(std::fs::read(&dest).unwrap() == snapshot, "the file is the object");
    let faults = aws.proxy.stats().calls.iter().filter(|c| c.fault.is_some()).count();
    assert!(faults > 0, "no fault was injected");
    aws.proxy.heal();
    let changed: Vec<u8> = snapshot.iter().rev().copied().collect();
    put(changed.clone()).await.expect("put");
    assert_eq!(fetch_object(&s3, &uri, &dest).await.unwrap().downloaded, 1);
    assert!(std::fs::read(&dest).unwrap() == changed, "the file is the new version");
    let missing = S3Uri::parse("s3://eksodus-e2e-snapshots/etcd/none.db").unwrap().unwrap();
    let e = fetch_object(&s3, &missing, &dir.path().join("none.db")).await.unwrap_err().to_string();
    assert!(e.contains("s3://eksodus-e2e-snapshots/etcd/none.db") && e.contains("HeadObject"), "{e}");
}
