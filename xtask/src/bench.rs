//! `cargo xtask bench net`: planner speed, apply wall time against the critical-path bound under 200 ms of
//! injected latency per call, and the calls of a no-op re-plan. `cargo xtask bench up`: the same for the whole
//! environment (network, IAM, cluster, nodegroups, addons, access). `cargo xtask bench migrate`: preparing 100k
//! objects, and applying 5k to a fresh API server against kubectl and against the server's own ceiling.
//! `cargo xtask bench etcd`: a snapshot of 60k 4 KB ConfigMaps written through a real etcd, exported to a
//! bundle, next to `etcdctl snapshot status`. Prints numbers; asserts nothing.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use eksodus::core::aws::AwsTarget;
use eksodus::core::engine::{ApplyOptions, Engine};
use eksodus::core::events::EventSink;
use eksodus::core::plan::{diff, Cost, Desired, Observed};
use eksodus::core::spec::EnvironmentSpec;
use eksodus::net::ec2::Network;
use eksodus::net::layout::{carve, CarveRequest};
use eksodus_testkit::{FaultConfig, LocalAws};
use serde_json::json;

const SPEC: &str = include_str!("../../examples/demo.yaml");
const LATENCY: Duration = Duration::from_millis(200);

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Runs a benchmark by name.
pub async fn run(what: &str) -> Result<()> {
    match what {
        "net" => net().await,
        "up" => up().await,
        "migrate" => migrate().await,
        "etcd" => etcd(),
        "faults" => faults().await,
        "operator" => operator().await,
        other => bail!("unknown benchmark `{other}` (known: net, up, migrate, etcd, faults, operator)"),
    }
}

async fn net() -> Result<()> {
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    outln!("bench net ({profile} build)");

    // 1. the planners at their largest: a /16 carved into 4096 /28 subnets, and the diff of that many
    let parent = "10.0.0.0/16".parse()?;
    let reqs: Vec<CarveRequest> = (0..4096).map(|i| CarveRequest { label: format!("s{i}"), prefix: 28 }).collect();
    let mut times = vec![];
    let mut subnets = vec![];
    for _ in 0..20 {
        let t = Instant::now();
        subnets = carve(parent, &reqs).map_err(|e| anyhow::anyhow!("{e}"))?;
        times.push(t.elapsed());
    }
    outln!("carve /16 into {} /28 subnets: median {:?} over 20 runs", subnets.len(), median(times));
    let desired: Vec<Desired> = subnets
        .iter()
        .enumerate()
        .map(|(i, c)| Desired {
            key: format!("subnet/{i}"),
            kind: "subnet".into(),
            props: json!({"cidr": c.to_string(), "tags": {"a": "b"}}).as_object().cloned().unwrap_or_default(),
            immutable: vec!["cidr".into()],
            depends_on: vec![],
            cost: Cost::new(1, 1, 1),
        })
        .collect();
    let observed: Vec<Observed> = desired
        .iter()
        .map(|d| Observed {
            key: d.key.clone(),
            kind: d.kind.clone(),
            physical_id: format!("id-{}", d.key),
            props: d.props.clone(),
            depends_on: vec![],
            delete_cost: 1,
        })
        .collect();
    let mut times = vec![];
    for _ in 0..20 {
        let t = Instant::now();
        let p = diff(&desired, &observed);
        times.push(t.elapsed());
        assert!(p.is_empty());
    }
    outln!("diff of 4096 desired against 4096 observed subnets: median {:?} over 20 runs", median(times));
    let mut spec6 = EnvironmentSpec::from_yaml("name: b\nregion: us-east-1\nnetwork: {cidr: 10.0.0.0/16, azs: 6, nat: per-az, cni: {custom_networking: {secondary_cidr: 100.64.0.0/16}}}")?;
    spec6.network.subnets.public.prefix = Some(28);
    let mut times = vec![];
    let mut n = 0;
    for _ in 0..200 {
        let t = Instant::now();
        n = eksodus::net::layout::plan(&spec6)?.subnets.len();
        times.push(t.elapsed());
    }
    outln!("layout of a 6-zone spec ({n} subnets): median {:?} over 200 runs", median(times));

    // 2. apply under 200 ms per call, against the plan's critical-path bound
    let spec = EnvironmentSpec::from_yaml(SPEC)?;
    let aws = LocalAws::start(FaultConfig { latency: LATENCY, ..Default::default() }).await?;
    let conf = AwsTarget::local(&spec.region, &aws.endpoint()).load().await;
    let net = Network::new(aws_sdk_ec2::Client::new(&conf), &spec).with_retry(ApplyOptions::fast());
    // per-call overhead of this build, client to emulator and back, with no injected latency
    aws.proxy.set_config(FaultConfig { account_id: Some(aws.account_id.clone()), ..Default::default() });
    let ec2 = aws_sdk_ec2::Client::new(&conf);
    ec2.describe_vpcs().send().await?;
    let mut times = vec![];
    for _ in 0..20 {
        let t = Instant::now();
        ec2.describe_vpcs().send().await?;
        times.push(t.elapsed());
    }
    let overhead = median(times);
    outln!("round trip of one call without injected latency: median {overhead:?}");
    aws.proxy.set_config(FaultConfig {
        latency: LATENCY,
        account_id: Some(aws.account_id.clone()),
        ..Default::default()
    });
    aws.proxy.reset_stats();
    let t = Instant::now();
    let plan = net.plan(&spec).await?;
    let plan_time = t.elapsed();
    let plan_calls = aws.proxy.stats().total();
    let cp = plan.critical_path_calls()?;
    aws.proxy.reset_stats();
    let engine = Engine::new(ApplyOptions::fast());
    let t = Instant::now();
    engine.apply(&plan, &net, &EventSink::discard()).await?.into_result()?;
    let wall = t.elapsed();
    let stats = aws.proxy.stats();
    let bound = LATENCY * cp;
    outln!(
        "plan of {} resources with 200 ms/call: {:.2}s ({} calls)",
        plan.steps.len(),
        plan_time.as_secs_f64(),
        plan_calls
    );
    outln!(
        "apply: {} operations, {} calls, wall {:.2}s; critical path {} calls = {:.2}s; ratio {:.3} (target <= 1.15)",
        plan.changes().count(),
        stats.total(),
        wall.as_secs_f64(),
        cp,
        bound.as_secs_f64(),
        wall.as_secs_f64() / bound.as_secs_f64()
    );

    // 3. a no-op re-plan
    aws.proxy.reset_stats();
    let t = Instant::now();
    let again = net.plan(&spec).await?;
    let s = aws.proxy.stats();
    outln!(
        "no-op re-plan: {} calls ({}), {:.2}s, empty: {}",
        s.total(),
        s.by_operation().iter().map(|(k, v)| format!("{k} x{v}")).collect::<Vec<_>>().join(", "),
        t.elapsed().as_secs_f64(),
        again.is_empty()
    );
    aws.proxy.set_config(FaultConfig {
        latency: Duration::ZERO,
        account_id: Some(aws.account_id.clone()),
        ..Default::default()
    });
    engine.apply(&net.destroy_plan().await?, &net, &EventSink::discard()).await?.into_result()?;
    Ok(())
}

/// How many reads of a plan of the whole environment depend on each other, at most (from the code of
/// `Environment::plan`): DescribeCluster -> ListNodegroups/ListAddons/ListAccessEntries/ListPodIdentityAssociations
/// -> one describe each, with the network (DescribeVpcs -> per-VPC reads) and IAM (ListOpenIDConnectProviders ->
/// GetOpenIDConnectProvider) beside it: 3. Without a cluster the account comes from STS after the reads:
/// 2 + 1. When a nodegroup or an addon is to be made, the instance types' vCPUs and the addon catalogue are read
/// after discovery (what is missing decides what to look up): one more.
fn read_depth(p: &eksodus::EnvPlan) -> u32 {
    use eksodus::core::plan::Action;
    let looks_up =
        p.plan.steps.iter().any(|s| s.action == Action::Create && (s.kind == "eks-addon" || s.kind == "eks-nodegroup"));
    3 + u32::from(looks_up)
}

/// The whole environment of the demo spec under 200 ms per call: each round's apply against its plan's critical
/// path, the full `up` wall time, and the calls of a no-op re-plan by operation.
async fn up() -> Result<()> {
    use eksodus::cluster::environment::Environment;
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    outln!("bench up ({profile} build, 200 ms injected per AWS call)");
    let spec = EnvironmentSpec::from_yaml(SPEC)?;
    let aws = LocalAws::start(FaultConfig::default()).await?;
    let conf = AwsTarget::local(&spec.region, &aws.endpoint()).load().await;
    let env = Environment::new(&conf, spec.clone(), ApplyOptions::fast())?;
    // warm the emulator's lazily loaded services, then inject latency
    env.plan().await?;
    aws.proxy.set_config(FaultConfig {
        latency: LATENCY,
        account_id: Some(aws.account_id.clone()),
        ..Default::default()
    });
    aws.proxy.reset_stats();
    let start = Instant::now();
    let (mut apply_wall, mut cp_total, mut round, mut depth_total) = (Duration::ZERO, 0u32, 0, 0u32);
    loop {
        round += 1;
        let t = Instant::now();
        let p = env.plan().await?;
        let plan_time = t.elapsed();
        depth_total += read_depth(&p);
        if p.is_converged() {
            outln!("round {round}: plan {:.2}s, empty", plan_time.as_secs_f64());
            break;
        }
        let cp = p.plan.critical_path_calls()?;
        let t = Instant::now();
        env.apply(&p, &EventSink::discard()).await?.into_result()?;
        let wall = t.elapsed();
        outln!(
            "round {round}: plan {:.2}s; apply {} operations, wall {:.2}s, critical path {cp} calls = {:.2}s, ratio {:.3}",
            plan_time.as_secs_f64(),
            p.plan.changes().count(),
            wall.as_secs_f64(),
            (LATENCY * cp).as_secs_f64(),
            wall.as_secs_f64() / (LATENCY * cp).as_secs_f64()
        );
        apply_wall += wall;
        cp_total += cp;
        if round > eksodus::cluster::environment::MAX_ROUNDS {
            bail!("no empty plan after {round} rounds");
        }
    }
    let bound = LATENCY * cp_total;
    outln!(
        "applies: wall {:.2}s against the critical-path bound {:.2}s ({cp_total} calls): ratio {:.3} (target <= 1.15)",
        apply_wall.as_secs_f64(),
        bound.as_secs_f64(),
        apply_wall.as_secs_f64() / bound.as_secs_f64()
    );
    let full = start.elapsed();
    let full_bound = LATENCY * (cp_total + depth_total);
    outln!(
        "full up, plans included: {:.2}s, {} calls; bound {:.2}s (plans' read depth {depth_total} + critical path {cp_total} calls): ratio {:.3} (target <= 1.3)",
        full.as_secs_f64(),
        aws.proxy.stats().total(),
        full_bound.as_secs_f64(),
        full.as_secs_f64() / full_bound.as_secs_f64()
    );
    aws.proxy.reset_stats();
    let t = Instant::now();
    let again = env.plan().await?;
    let replan = t.elapsed();
    let s = aws.proxy.stats();
    let depth = read_depth(&again);
    outln!(
        "no-op re-plan: {} calls (target <= 25), {:.2}s against read depth {depth} x 200 ms = {:.2}s: ratio {:.3} (target <= 1.5), empty: {}\n  {}",
        s.total(),
        replan.as_secs_f64(),
        (LATENCY * depth).as_secs_f64(),
        replan.as_secs_f64() / (LATENCY * depth).as_secs_f64(),
        again.is_converged(),
        s.by_operation().iter().map(|(k, v)| format!("{k} x{v}")).collect::<Vec<_>>().join(", ")
    );
    aws.proxy.set_config(FaultConfig { account_id: Some(aws.account_id.clone()), ..Default::default() });
    let down = env.down(&EventSink::discard(), Duration::from_secs(5)).await?;
    down.report.into_result()?;
    Ok(())
}

/// `up` of the demo environment at 200 ms per call with 0%, 10%, 20% and 40% of calls throttled, with the
/// production retry policy: wall time and calls per run, and the ratio to the fault-free run.
async fn faults() -> Result<()> {
    use eksodus::cluster::environment::Environment;
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    outln!("bench faults ({profile} build, 200 ms per AWS call, the production retry policy, 3 seeds per rate)");
    let spec = EnvironmentSpec::from_yaml(SPEC)?;
    let mut base: Option<(f64, f64)> = None;
    for rate in [0.0, 0.10, 0.20, 0.40] {
        let (mut wall, mut calls, mut throttled, mut applying) = (0.0, 0.0, 0.0, 0.0);
        let seeds = [42u64, 43, 44];
        for seed in seeds {
            let aws = LocalAws::start(FaultConfig::default()).await?;
            let conf = AwsTarget::local(&spec.region, &aws.endpoint()).load().await;
            let env = Environment::new(&conf, spec.clone(), ApplyOptions::default())?;
            env.plan().await?; // warm the emulator's lazily loaded services
            aws.proxy.set_config(FaultConfig {
                latency: LATENCY,
                throttle_rate: rate,
                seed,
                account_id: Some(aws.account_id.clone()),
                ..Default::default()
            });
            aws.proxy.reset_stats();
            let t = Instant::now();
            let up = env.up(&EventSink::discard()).await?;
            wall += t.elapsed().as_secs_f64();
            applying += up.rounds.iter().map(|r| r.report.elapsed_ms).sum::<u64>() as f64 / 1000.0;
            let stats = aws.proxy.stats();
            calls += stats.total() as f64;
            throttled += stats.faults() as f64;
            aws.proxy.set_config(FaultConfig { account_id: Some(aws.account_id.clone()), ..Default::default() });
            env.down(&EventSink::discard(), Duration::from_secs(5)).await?.report.into_result()?;
        }
        let n = seeds.len() as f64;
        let (wall, calls, throttled, applying) = (wall / n, calls / n, throttled / n, applying / n);
        let (bw, bc) = *base.get_or_insert((wall, calls));
        outln!(
            "{:>3.0}% throttled: up in {wall:.1}s ({:.1}s planning, {applying:.1}s applying), {calls:.0} calls ({throttled:.0} throttled); ratio to fault-free: time {:.2}, calls {:.2}{}",
            rate * 100.0,
            wall - applying,
            wall / bw,
            calls / bc,
            if (rate - 0.20).abs() < 1e-9 { " (target <= 1.5)" } else { "" }
        );
    }
    Ok(())
}

/// Peak resident memory of this process so far (`VmHWM`), in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// `n` generated objects over `namespaces` namespaces: ConfigMaps, Secrets, Deployments that use them, Services.
fn generated(n: usize, namespaces: usize) -> Vec<serde_json::Value> {
    (0..namespaces).map(namespace).chain((0..n).map(|i| generated_object(i, namespaces))).collect()
}

fn namespace(i: usize) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("bench-{i}")}})
}

/// The `i`th generated object.
fn generated_object(i: usize, namespaces: usize) -> serde_json::Value {
    let ns = format!("bench-{}", i % namespaces);
    let id = i / 4;
    match i % 4 {
        0 => {
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cfg-{id}"), "namespace": ns, "uid": "x", "resourceVersion": "1"}, "data": {"key": "value"}})
        }
        1 => {
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("sec-{id}"), "namespace": ns}, "type": "Opaque", "data": {"p": "cGFzcw=="}})
        }
        2 => {
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": format!("app-{id}"), "namespace": ns, "labels": {"app": format!("app-{id}")}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": format!("app-{id}")}}, "template": {"metadata": {"labels": {"app": format!("app-{id}")}},
            "spec": {"containers": [{"name": "c", "image": "docker.io/library/nginx:1.27", "envFrom": [{"configMapRef": {"name": format!("cfg-{id}")}}, {"secretRef": {"name": format!("sec-{id}")}}]}]}}},
            "status": {"replicas": 1}})
        }
        _ => {
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": format!("app-{id}"), "namespace": ns}, "spec": {"clusterIP": "10.0.0.1", "selector": {"app": format!("app-{id}")}, "ports": [{"port": 80}]}})
        }
    }
}

async fn migrate() -> Result<()> {
    use eksodus::migrate::bundle::prepare;
    use eksodus::migrate::live::{self, MigrateOptions};
    use eksodus::migrate::object::Obj;
    use futures::StreamExt;
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    outln!("bench migrate ({profile} build)");

    let rules = eksodus::migrate::transform::Rules::from_yaml(
        "image_registries: {docker.io/library/: 111122223333.dkr.ecr.us-east-1.amazonaws.com/hub/}\n",
    )?;
    // 1. stream 100k objects, made one at a time, into a bundle: what `migrate export` does (first, so the
    // process's peak memory is this step's)
    let before = peak_rss_mib();
    let dir = tempfile::tempdir()?;
    let t = Instant::now();
    let export = eksodus::migrate::bundle::Export::new(dir.path(), "bench", Default::default(), rules.clone())?;
    for i in 0..100 {
        export.push(Obj(namespace(i)));
    }
    for i in 0..100_000 {
        export.push(Obj(generated_object(i, 100)));
    }
    let done = export.finish()?;
    outln!(
        "stream {} objects into a bundle (filter, transform, order, one YAML file each): {:.2}s, {} waves; peak RSS {:.0} MiB (before: {:.0} MiB)",
        done.report.objects,
        t.elapsed().as_secs_f64(),
        done.waves(),
        peak_rss_mib(),
        before
    );
    drop(dir);

    // 2. the same, held in memory: prepare (filter, transform, order) without writing
    let read = eksodus::migrate::source::Read {
        objects: generated(100_000, 100).into_iter().map(Obj).collect(),
        errors: vec![],
    };
    let loaded = peak_rss_mib();
    let t = Instant::now();
    let p = prepare(read, "bench", &Default::default(), &rules);
    let took = t.elapsed();
    outln!(
        "prepare {} objects into {} waves: {:.2}s; peak RSS {:.0} MiB (objects loaded: {:.0} MiB, before: {:.0} MiB)",
        p.objects.len(),
        p.objects.iter().map(|(_, w)| *w).max().unwrap_or(0) + 1,
        took.as_secs_f64(),
        peak_rss_mib(),
        loaded,
        before
    );
    drop(p);

    // 3. apply 5k objects to a fresh server, four ways
    let objs = generated(5_000, 10);
    let read = eksodus::migrate::source::Read { objects: objs.iter().cloned().map(Obj).collect(), errors: vec![] };
    let p = prepare(read, "bench", &Default::default(), &Default::default());
    let real = eksodus_testkit::realkube::RealKube::available();
    outln!(
        "apply {} objects to a fresh {} API server each time",
        p.objects.len(),
        if real {
            "real (kube-apiserver 1.36 with etcd)"
        } else {
            "fake (no real one here: set EKSODUS_KUBE_APISERVER)"
        }
    );
    let quiet = eksodus::core::events::EventSink::discard();

    let server = BenchServer::start(real).await?;
    let c = server.client().await?;
    let t = Instant::now();
    let r = live::apply(&c, &p.objects, &MigrateOptions { concurrency: 16, ..Default::default() }, &quiet).await?;
    let ours = t.elapsed();
    outln!("eksodus apply (waves, journal off, 16 in flight): {:.2}s ({:?})", ours.as_secs_f64(), r.counts());
    drop(server);

    // the ceiling: the same objects, 16 requests in flight, no ordering, no discovery
    let server = BenchServer::start(real).await?;
    let c = server.client().await?;
    let discovery = kube::discovery::Discovery::new(c.clone()).run().await?;
    let mut list: Vec<Obj> = p.objects.iter().map(|(o, _)| o.clone()).collect();
    list.sort_by_key(|o| o.kind() != "Namespace"); // namespaces must exist; the rest in any order
    let (nss, rest): (Vec<Obj>, Vec<Obj>) = list.into_iter().partition(|o| o.kind() == "Namespace");
    let t = Instant::now();
    for batch in [nss, rest] {
        let d = &discovery;
        let c = &c;
        futures::stream::iter(batch)
            .map(|o| async move {
                let (g, v) = o.api_version().rsplit_once('/').unwrap_or(("", o.api_version()));
                let (ar, _) = d.resolve_gvk(&kube::core::GroupVersionKind::gvk(g, v, o.kind())).expect("served");
                let api: kube::Api<kube::api::DynamicObject> = if o.namespace().is_empty() {
                    kube::Api::all_with(c.clone(), &ar)
                } else {
                    kube::Api::namespaced_with(c.clone(), o.namespace(), &ar)
                };
                api.patch(o.name(), &kube::api::PatchParams::apply("ceiling"), &kube::api::Patch::Apply(&o.0))
                    .await
                    .map(|_| ())
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
    }
    let ceiling = t.elapsed();
    outln!("ceiling (16 concurrent applies, unordered): {:.2}s", ceiling.as_secs_f64());
    drop(server);

    // kubectl, on the same kind of fresh server, with and without client-side validation
    let dir = tempfile::tempdir()?;
    for (i, (o, _)) in p.objects.iter().enumerate() {
        std::fs::write(dir.path().join(format!("{i:05}.json")), serde_json::to_vec(&o.0)?)?;
    }
    let mut kubectl = Vec::new();
    for validate in [true, false] {
        let server = BenchServer::start(real).await?;
        let kc = dir.path().join("kubeconfig");
        std::fs::write(&kc, server.kubeconfig())?;
        let t = Instant::now();
        let mut cmd = std::process::Command::new("kubectl");
        cmd.args(["apply", "--server-side"]);
        if !validate {
            cmd.arg("--validate=false");
        }
        let out = cmd.arg("-f").arg(dir.path()).env("KUBECONFIG", &kc).output();
        let took = t.elapsed();
        let label = if validate {
            "kubectl apply --server-side -f DIR"
        } else {
            "kubectl apply --server-side --validate=false -f DIR"
        };
        match out {
            Ok(o) if o.status.success() => {
                outln!("{label}: {:.2}s", took.as_secs_f64());
                kubectl.push(took);
            }
            Ok(o) => outln!(
                "{label} failed after {:.2}s: {}",
                took.as_secs_f64(),
                String::from_utf8_lossy(&o.stderr).lines().next().unwrap_or("")
            ),
            Err(e) => outln!("kubectl not runnable: {e}"),
        }
    }
    outln!(
        "eksodus throughput / ceiling = {:.2} (target >= 0.9); {}",
        ceiling.as_secs_f64() / ours.as_secs_f64(),
        kubectl
            .iter()
            .zip(["kubectl", "kubectl --validate=false"])
            .map(|(k, l)| format!("{l} / eksodus time = {:.2}", k.as_secs_f64() / ours.as_secs_f64()))
            .collect::<Vec<_>>()
            .join("; ")
    );
    Ok(())
}

/// A fresh API server for one benchmark run: the real one when the machine has it, else the fake.
enum BenchServer {
    Real(eksodus_testkit::realkube::RealKube),
    Fake(eksodus_testkit::kubeapi::FakeKube),
}

impl BenchServer {
    async fn start(real: bool) -> Result<Self> {
        Ok(if real {
            BenchServer::Real(eksodus_testkit::realkube::RealKube::start(Default::default()).await?)
        } else {
            BenchServer::Fake(eksodus_testkit::kubeapi::FakeKube::start().await?)
        })
    }

    async fn client(&self) -> Result<kube::Client> {
        Ok(match self {
            BenchServer::Real(k) => k.client().await?,
            BenchServer::Fake(k) => kube::Client::try_from(kube::Config::new(k.url().parse()?))?,
        })
    }

    fn kubeconfig(&self) -> String {
        match self {
            BenchServer::Real(k) => k.kubeconfig(),
            BenchServer::Fake(k) => k.kubeconfig(),
        }
    }
}

/// A ConfigMap as the API server stores it: the `k8s\0` envelope around its protobuf.
fn stored_configmap(ns: &str, name: &str, payload: &str) -> Vec<u8> {
    use eksodus::etcd::pb::put_bytes;
    let mut meta = Vec::new();
    put_bytes(&mut meta, 1, name.as_bytes());
    put_bytes(&mut meta, 3, ns.as_bytes());
    put_bytes(&mut meta, 5, format!("uid-{name}").as_bytes());
    let mut cm = Vec::new();
    put_bytes(&mut cm, 1, &meta);
    let mut entry = Vec::new();
    put_bytes(&mut entry, 1, b"payload");
    put_bytes(&mut entry, 2, payload.as_bytes());
    put_bytes(&mut cm, 2, &entry);
    let mut tm = Vec::new();
    put_bytes(&mut tm, 1, b"v1");
    put_bytes(&mut tm, 2, b"ConfigMap");
    let mut unknown = Vec::new();
    put_bytes(&mut unknown, 1, &tm);
    put_bytes(&mut unknown, 2, &cm);
    [b"k8s\x00".as_slice(), &unknown].concat()
}

fn etcd() -> Result<()> {
    use base64::Engine as _;
    use std::io::{Read as _, Write as _};
    use std::net::{Ipv4Addr, TcpListener, TcpStream};
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    outln!("bench etcd ({profile} build of the exporter)");
    let free = || -> Result<u16> { Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port()) };
    let dir = tempfile::tempdir()?;
    let (client, peer) = (free()?, free()?);
    let mut child = std::process::Command::new("etcd")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args([
            "--listen-client-urls",
            &format!("http://127.0.0.1:{client}"),
            "--advertise-client-urls",
            &format!("http://127.0.0.1:{client}"),
        ])
        .args([
            "--listen-peer-urls",
            &format!("http://127.0.0.1:{peer}"),
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{peer}"),
        ])
        .args(["--initial-cluster", &format!("default=http://127.0.0.1:{peer}"), "--quota-backend-bytes", "4294967296"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("etcd (apt-get install etcd-server etcd-client): {e}"))?;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let put = |key: &str, value: &[u8]| -> Result<()> {
        let body = json!({"key": b64(key.as_bytes()), "value": b64(value)}).to_string();
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, client))?;
        write!(s, "POST /v3/kv/put HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())?;
        let mut r = String::new();
        s.read_to_string(&mut r)?;
        if !r.starts_with("HTTP/1.1 200") {
            bail!("etcd put: {}", r.lines().next().unwrap_or(""));
        }
        Ok(())
    };
    let start = Instant::now();
    while put("/warmup", b"x").is_err() {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            bail!("etcd did not start");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let n = 60_000usize;
    let payload: String = "x".repeat(4000);
    let t = Instant::now();
    std::thread::scope(|sc| -> Result<()> {
        let handles: Vec<_> = (0..8)
            .map(|w| {
                let payload = &payload;
                let put = &put;
                sc.spawn(move || -> Result<()> {
                    for i in (w..n).step_by(8) {
                        let ns = format!("ns-{}", i % 20);
                        let name = format!("cm-{i:05}");
                        put(&format!("/registry/configmaps/{ns}/{name}"), &stored_configmap(&ns, &name, payload))?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("writer panicked"))??;
        }
        Ok(())
    })?;
    outln!("wrote {n} ConfigMaps of ~4 KB through etcd in {:.1}s", t.elapsed().as_secs_f64());
    let snap = dir.path().join("snap.db");
    let out = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &format!("http://127.0.0.1:{client}"), "snapshot", "save"])
        .arg(&snap)
        .output()?;
    let _ = child.kill();
    let _ = child.wait();
    if !out.status.success() {
        bail!("etcdctl snapshot save: {}", String::from_utf8_lossy(&out.stderr));
    }
    let size = std::fs::metadata(&snap)?.len() as f64 / 1e6;
    // keep the snapshot for profiling the export on its own
    if let Some(keep) = std::env::var_os("EKSODUS_BENCH_KEEP_SNAPSHOT") {
        std::fs::copy(&snap, keep)?;
    }
    let t = Instant::now();
    let status = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["snapshot", "status", "-w", "table"])
        .arg(&snap)
        .output()?;
    outln!(
        "etcdctl snapshot status: {:.2}s\n{}",
        t.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&status.stdout).trim()
    );
    // etcd leaves a gigabyte of dirty pages behind; flush them so the export is not timed against the writeback
    let _ = std::process::Command::new("sync").status();
    // the export in a process of its own, so its peak memory is its own
    let export = |bundle: std::path::PathBuf, extra: &[String]| -> Result<(f64, String, String, String)> {
        let t = Instant::now();
        let out = std::process::Command::new(std::env::current_exe()?)
            .args(["migrate", "export", "--from-etcd-snapshot"])
            .arg(&snap)
            .args(extra)
            .arg("--out")
            .arg(&bundle)
            .env("EKSODUS_REPORT_PEAK_RSS", "1")
            .output()?;
        let wall = t.elapsed().as_secs_f64();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let rss = stderr.lines().find_map(|l| l.strip_prefix("peak RSS MiB: ")).unwrap_or("?").to_string();
        let phases = stderr.lines().find(|l| l.starts_with("phases: ")).unwrap_or("").to_string();
        // kept until the end: deleting 60k files just before the next export slows its file creation
        Ok((wall, rss, phases, String::from_utf8_lossy(&out.stdout).trim().to_string()))
    };
    let (wall, rss, phases, summary) = export(dir.path().join("bundle"), &[])?;
    outln!("{phases}");
    outln!("{summary}");
    outln!(
        "export {size:.0} MB snapshot to a bundle: {wall:.2}s, {:.0} MB/s, peak RSS {rss} MiB (targets: under 4 s, under 300 MB)",
        size / wall
    );
    // the same file read at the revision where half the objects existed: memory follows the number of
    // objects kept (a few hundred bytes of manifest entry and ordering node each), not the bytes read
    let half = (n / 2 + 2).to_string();
    let (wall, rss_half, _, summary) =
        export(dir.path().join("bundle-half"), &["--revision".to_string(), half.clone()])?;
    outln!("at revision {half}: {} in {wall:.2}s, peak RSS {rss_half} MiB", summary.lines().next().unwrap_or(""));
    // creating 60k files costs what the file system makes it cost (on ext4, seconds more within a few minutes
    // of deleting many files): the same export into memory shows the exporter's own time
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        let mem = tempfile::tempdir_in(shm)?;
        let (wall, rss, _, _) = export(mem.path().join("bundle"), &[])?;
        outln!(
            "the same export to a bundle in memory (tmpfs): {wall:.2}s, {:.0} MB/s, peak RSS {rss} MiB",
            size / wall
        );
    }
    Ok(())
}

/// The operator's time to Ready for 1, 10 and 50 network environments at 200 ms per AWS call, against the same
/// number of `up`s one after another (one `up` measured, times N), on a real API server.
async fn operator() -> Result<()> {
    use eksodus::Environment;
    use eksodus_operator::crd::Environment as Resource;
    use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
    use kube::{Api, CustomResourceExt};
    use std::sync::Arc;

    if !eksodus_testkit::realkube::RealKube::available() {
        bail!(
            "{} must name a kube-apiserver binary (the operator needs watches)",
            eksodus_testkit::realkube::BINARY_VAR
        );
    }
    const CONCURRENCY: u16 = 16;
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    outln!("bench operator ({profile} build, 200 ms injected per AWS call, {CONCURRENCY} reconciles at once)");
    let server = eksodus_testkit::realkube::RealKube::start(Default::default()).await?;
    let client = server.client().await?;
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    crds.patch("environments.eksodus.io", &PatchParams::apply("bench").force(), &Patch::Apply(&Resource::crd()))
        .await?;
    let net = |i: usize| json!({"region": "us-east-1", "network": {"cidr": format!("10.{}.0.0/16", 100 + i), "azs": 2, "nat": "single"}});
    let slow = |aws: &LocalAws| FaultConfig {
        latency: LATENCY,
        account_id: Some(aws.account_id.clone()),
        ..Default::default()
    };

    // one `up` alone, the unit of the sequential baseline
    let aws = LocalAws::start(FaultConfig::default()).await?;
    let conf = AwsTarget::local("us-east-1", &aws.endpoint()).load().await;
    let mut v = net(0);
    v["name"] = json!("bench-alone");
    let spec = eksodus::spec::from_str(&v.to_string())?;
    let env =
        Environment::builder(spec).aws(&conf).options(ApplyOptions::fast()).kube(eksodus::KubeAccess::None).build()?;
    env.plan().await?;
    aws.proxy.set_config(slow(&aws));
    let t = Instant::now();
    env.up(&EventSink::discard()).await?;
    let one = t.elapsed();
    outln!("one up alone: {:.1}s, {} calls", one.as_secs_f64(), aws.proxy.stats().total());

    let mut round = 0;
    for n in [1usize, 10, 50] {
        round += 1;
        let ns = format!("bench-{round}");
        let namespace: k8s_openapi::api::core::v1::Namespace =
            serde_json::from_value(json!({"metadata": {"name": ns}}))?;
        Api::all(client.clone()).create(&PostParams::default(), &namespace).await?;
        let aws = LocalAws::start(FaultConfig::default()).await?;
        // warm the emulator, then slow it down
        Environment::builder(eksodus::spec::from_str(
            "name: warm\nregion: us-east-1\nnetwork: {cidr: 10.0.0.0/16, azs: 2}\n",
        )?)
        .aws(&AwsTarget::local("us-east-1", &aws.endpoint()).load().await)
        .kube(eksodus::KubeAccess::None)
        .build()?
        .plan()
        .await?;
        aws.proxy.set_config(slow(&aws));
        aws.proxy.reset_stats();
        let settings = eksodus_operator::Settings {
            namespace: Some(ns.clone()),
            aws: AwsTarget::local("us-east-1", &aws.endpoint()),
            cluster_access: eksodus_operator::ClusterAccess::None,
            options: ApplyOptions::fast(),
            concurrency: CONCURRENCY,
            ..Default::default()
        };
        let metrics = Arc::new(eksodus_operator::metrics::Metrics::default());
        let options = eksodus_operator::RunOptions { settings, lease: None, metrics_addr: None };
        let task =
            tokio::spawn(eksodus_operator::run(client.clone(), options, metrics.clone(), std::future::pending()));
        let api: Api<Resource> = Api::namespaced(client.clone(), &ns);
        let start = Instant::now();
        for i in 0..n {
            let r: Resource =
                serde_json::from_value(json!({"apiVersion": "eksodus.io/v1alpha1", "kind": "Environment",
                "metadata": {"name": format!("env-{i}")}, "spec": {"environment": net(i)}}))?;
            api.create(&PostParams::default(), &r).await?;
        }
        loop {
            let all = api.list(&Default::default()).await?;
            let ready = all
                .items
                .iter()
                .filter(|e| {
                    e.status.as_ref().is_some_and(|s| eksodus_operator::status::is_true(&s.conditions, "Ready"))
                })
                .count();
            if ready == n {
                break;
            }
            if start.elapsed() > Duration::from_secs(1800) {
                bail!("{ready} of {n} Ready after 30 minutes");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let took = start.elapsed();
        task.abort();
        let stats = aws.proxy.stats();
        let sequential = one * n as u32;
        outln!(
            "{n:>2} environment(s): all Ready in {:.1}s; {n} sequential ups {:.1}s; ratio {:.1}x; {:.1} calls per environment, {} throttled",
            took.as_secs_f64(),
            sequential.as_secs_f64(),
            sequential.as_secs_f64() / took.as_secs_f64(),
            stats.total() as f64 / n as f64,
            stats.calls.iter().filter(|c| c.fault == Some(eksodus_testkit::Fault::Throttled)).count()
        );
        for i in 0..n {
            let name = format!("env-{i}");
            api.patch(&name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await?;
            api.delete(&name, &DeleteParams::default()).await?;
        }
    }
    Ok(())
}
