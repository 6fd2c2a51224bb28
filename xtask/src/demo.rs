//! `cargo xtask demo`: the main job end to end on the local emulator, with a summary: the whole environment up,
//! an empty second plan, an upgrade across two minor versions, then down with nothing left.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use eksodus_cluster::environment::{Environment, KubeAccess};
use eksodus_core::aws::AwsTarget;
use eksodus_core::engine::ApplyOptions;
use eksodus_core::spec::EnvironmentSpec;
use eksodus_testkit::kubeapi::FakeKube;
use eksodus_testkit::{FaultConfig, LocalAws};

use crate::render;

const SPEC: &str = include_str!("../../examples/demo.yaml");

/// The version the demo upgrades to: two minors past the spec's.
const UPGRADE_TO: &str = "1.33";

struct Phase {
    name: &'static str,
    seconds: f64,
    calls: usize,
    writes: usize,
    note: String,
}

fn heading(s: &str) {
    outln!("\n=== {s} ===");
}

/// Runs the demo; `keep` leaves the environment in place (on a throw-away emulator, so only for looking).
pub async fn run(keep: bool) -> Result<()> {
    let total = Instant::now();
    heading("Spec (examples/demo.yaml)");
    let spec = EnvironmentSpec::from_yaml(SPEC)?;
    eksodus_cluster::environment::validate(&spec)?;
    let c = spec.cluster.as_ref().expect("the demo spec has a cluster");
    outln!(
        "environment `{}` in {}: valid; Kubernetes {}, {} nodegroup(s), {} addon(s)",
        spec.name,
        spec.region,
        c.version,
        c.nodegroups.len(),
        c.addons.len()
    );

    heading("Layout (offline)");
    out!("{}", render::layout(&eksodus_net::layout::plan(&spec)?));

    eprintln!("\nstarting the local AWS emulator (moto {})...", eksodus_testkit::moto::MOTO_VERSION);
    let aws = LocalAws::start(FaultConfig { eks_pending_describes: 2, ..Default::default() }).await?;
    let conf = AwsTarget::local(&spec.region, &aws.endpoint()).load().await;
    // The emulated cluster's endpoint leads nowhere; a fake API server stands in for its Kubernetes side.
    let kube = FakeKube::start().await?;
    kube.register("crd.k8s.amazonaws.com", "v1alpha1", "eniconfigs", "ENIConfig", false);
    let client = || -> Result<kube::Client> { Ok(kube::Client::try_from(kube::Config::new(kube.url().parse()?))?) };
    let env_for = |s: &EnvironmentSpec| -> Result<Environment> {
        Ok(Environment::new(&conf, s.clone(), ApplyOptions::fast())?.with_kube(KubeAccess::Client(client()?)))
    };
    let env = env_for(&spec)?;
    let mut phases = Vec::new();
    let mut measure = |name: &'static str, start: Instant, note: String, aws: &LocalAws| {
        let s = aws.proxy.stats();
        phases.push(Phase {
            name,
            seconds: start.elapsed().as_secs_f64(),
            calls: s.total(),
            writes: s.mutations_applied(),
            note,
        });
        aws.proxy.reset_stats();
    };

    heading("Plan");
    let t = Instant::now();
    let plan = env.plan().await?;
    out!("{}", render::plan(&plan.plan));
    for d in &plan.deferred {
        outln!("  (after this round) {d}");
    }
    outln!("critical path: {} sequential API calls", plan.plan.critical_path_calls()?);
    measure("plan", t, plan.plan.summary().to_string(), &aws);

    heading("Up");
    let t = Instant::now();
    let progress = render::Progress::new(false);
    let up = env.up_from(plan, &progress.sink()).await?;
    for (i, r) in up.rounds.iter().enumerate() {
        outln!("round {}: {}", i + 1, r.plan.plan.summary());
        out!("{}", render::report(&r.report));
    }
    outln!("ENIConfigs in the cluster: {}", up.eni_configs.join(", "));
    let ops: usize = up.rounds.iter().map(|r| r.report.ops.len()).sum();
    measure("up", t, format!("{ops} operations in {} round(s)", up.rounds.len()), &aws);

    heading("Plan again");
    let t = Instant::now();
    let again = env.plan().await?;
    out!("{}", render::plan(&again.plan));
    if !again.is_converged() {
        bail!("the plan after up is not empty");
    }
    let calls = aws.proxy.stats().total();
    measure("re-plan", t, format!("no changes, {calls} AWS calls"), &aws);

    heading("A workload with a load balancer");
    let svc: k8s_openapi::api::core::v1::Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "storefront", "namespace": "default"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 443}]}
    }))?;
    kube::Api::<k8s_openapi::api::core::v1::Service>::namespaced(client()?, "default")
        .create(&Default::default(), &svc)
        .await?;
    outln!("Service default/storefront (type LoadBalancer) created; down must remove it before the VPC");

    heading(&format!("Upgrade {} -> {UPGRADE_TO}", c.version));
    let t = Instant::now();
    let progress = render::Progress::new(false);
    let up2 = env.upgrade(UPGRADE_TO, &progress.sink()).await?;
    for p in &up2.preflights {
        out!("{}", crate::env::render_preflight(p));
    }
    out!("{}", render::plan(&up2.plan));
    if let Some(r) = &up2.report {
        out!("{}", render::report(r));
        r.clone().into_result()?;
    }
    measure("upgrade", t, format!("{} -> {UPGRADE_TO}, {} steps", c.version, up2.plan.changes().count()), &aws);

    let mut upgraded = spec.clone();
    if let Some(c) = upgraded.cluster.as_mut() {
        c.version = UPGRADE_TO.into();
    }
    let env = env_for(&upgraded)?;
    heading(&format!("Plan again (spec at {UPGRADE_TO})"));
    let t = Instant::now();
    let again = env.plan().await?;
    out!("{}", render::plan(&again.plan));
    if !again.is_converged() {
        bail!("the plan after the upgrade is not empty");
    }
    measure("re-plan", t, "no changes".into(), &aws);

    if keep {
        outln!("\n--keep: leaving the environment in place (the emulator stops with this process)");
    } else {
        heading("Down");
        let t = Instant::now();
        let progress = render::Progress::new(false);
        let down = env.down(&progress.sink(), Duration::from_secs(30)).await?;
        if let Some(c) = &down.cleanup {
            outln!("Kubernetes first: deleted LoadBalancer Services {:?}, Ingresses {:?}", c.services, c.ingresses);
        }
        out!("{}", render::report(&down.report));
        down.report.clone().into_result()?;
        measure("down", t, format!("{} operations", down.report.ops.len()), &aws);

        heading("What is left");
        if down.remaining.is_empty() && down.report.leftovers.is_empty() {
            outln!(
                "nothing tagged eksodus.io/environment={} (VPC, subnets, gateways, addresses, route tables, security groups, interfaces, IAM roles, OIDC provider, cluster, nodegroups, addons, access entries)",
                spec.name
            );
        } else {
            for l in &down.remaining {
                outln!("  {l}");
            }
            for l in &down.report.leftovers {
                outln!("  {}: {}", l.resource, l.reason);
            }
            bail!("{} tagged resource(s) remain", down.remaining.len());
        }
    }

    heading("Summary");
    outln!("{:<15} {:>8} {:>10} {:>7}  NOTE", "PHASE", "TIME", "AWS CALLS", "WRITES");
    for p in &phases {
        outln!("{:<15} {:>7.2}s {:>10} {:>7}  {}", p.name, p.seconds, p.calls, p.writes, p.note);
    }
    outln!(
        "total {:.1}s on the local emulator (it holds EKS resources in CREATING/UPDATING for two describes; real clusters take 10-15 minutes)",
        total.elapsed().as_secs_f64()
    );
    Ok(())
}
