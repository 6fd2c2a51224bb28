//! `cargo xtask demo`: the project's story end to end on the local emulator. A self-managed cluster's etcd
//! snapshot (a real API server's, filled with a realistic workload, where the machine has one; the committed
//! fixture otherwise) is all that is left of it; `recover` plans and then builds the new environment, gives
//! the old aws-auth's people access, applies and verifies the workload and prints the DNS cutover table; a
//! second plan is empty; an upgrade across two minor versions; `down` leaves nothing.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use eksodus::cluster::environment::{Environment, KubeAccess};
use eksodus::core::aws::AwsTarget;
use eksodus::core::engine::ApplyOptions;
use eksodus::core::spec::EnvironmentSpec;
use eksodus_testkit::{FaultConfig, LocalAws};

use crate::render;
use eksodus::recover::{Recovery, RecoveryOptions};

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
    eksodus::cluster::environment::validate(&spec)?;
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
    out!("{}", render::layout(&eksodus::net::layout::plan(&spec)?));

    heading("The lost cluster");
    let work = tempfile::tempdir()?;
    let snapshot = if eksodus_testkit::realkube::RealKube::available() {
        eprintln!("starting a real API server for the old cluster, filling it with the workload...");
        let s = eksodus_testkit::workload::lost_cluster_snapshot(work.path()).await.map_err(anyhow::Error::msg)?;
        outln!("a self-managed cluster (a real kube-apiserver with etcd, Secrets encrypted with aescbc) held the workload;");
        s
    } else {
        outln!(
            "the committed snapshot of a self-managed cluster (Secrets encrypted with aescbc) holding the workload;"
        );
        fixture()
    };
    outln!(
        "its etcd was saved to {} ({} KiB), then its control plane was lost.",
        snapshot.file_name().and_then(|n| n.to_str()).unwrap_or("etcd.db"),
        std::fs::metadata(&snapshot)?.len() / 1024
    );

    eprintln!("\nstarting the local AWS emulator (moto {})...", eksodus_testkit::moto::MOTO_VERSION);
    let aws = LocalAws::start(FaultConfig { eks_pending_describes: 2, ..Default::default() }).await?;
    let conf = AwsTarget::local(&spec.region, &aws.endpoint()).load().await;
    // The emulated cluster's endpoint leads nowhere: an API server stands in for its Kubernetes side (a real
    // one where the machine has it), with stand-ins for the controllers that roll out and give load balancers
    let nc = eksodus_testkit::workload::NewCluster::start(true).await.map_err(anyhow::Error::msg)?;
    let _controllers = eksodus_testkit::workload::Controllers::start(nc.client.clone());
    let env_for = |s: &EnvironmentSpec| -> Result<Environment> {
        Ok(Environment::builder(s.clone())
            .aws(&conf)
            .options(ApplyOptions::fast())
            .kube(KubeAccess::Client(nc.client.clone()))
            .build()?)
    };
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

    heading("Recover: the plan");
    outln!(
        "cargo xtask recover -f examples/demo.yaml --from-etcd-snapshot etcd.db --encryption-config encryption.yaml"
    );
    let t = Instant::now();
    let mut opts = RecoveryOptions::new(&snapshot, work.path().join(format!("recovery-{}", spec.name)));
    opts.encryption_config = Some(eksodus_testkit::workload::ENCRYPTION.into());
    opts.wait = Duration::from_secs(60);
    let recovery = Recovery::new(spec.clone(), &conf, opts)?
        .engine_options(ApplyOptions::fast())
        .kube(KubeAccess::Client(nc.client.clone()));
    let plan = recovery.plan(&eksodus::EventSink::discard()).await?;
    out!("{}", crate::recover::render_plan(&plan));
    outln!("critical path: {} sequential API calls", plan.environment.plan.critical_path_calls()?);
    measure("recover plan", t, format!("{} objects, {}", plan.bundle.objects, plan.environment.plan.summary()), &aws);

    heading("Recover");
    outln!("the new cluster's Kubernetes side: {}", nc.describe());
    let t = Instant::now();
    let progress = render::Progress::new(false);
    let report = recovery.run(&progress.sink()).await?;
    drop(progress);
    out!("{}", crate::recover::render_report(&report));
    if !report.is_success() {
        bail!("the recovery did not verify");
    }
    let recovery_seconds = report.recovery_ms as f64 / 1000.0;
    measure("recover", t, format!("{} objects recovered and verified", report.recovered), &aws);
    let spec = recovery.spec().clone();
    let c = spec.cluster.as_ref().expect("the demo spec has a cluster");
    let env = env_for(&spec)?;

    heading("Plan again");
    let t = Instant::now();
    let again = env.plan().await?;
    out!("{}", render::plan(&again.plan));
    if !again.is_converged() {
        bail!("the plan after up is not empty");
    }
    let calls = aws.proxy.stats().total();
    measure("re-plan", t, format!("no changes, {calls} AWS calls"), &aws);

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
        "recovery time {recovery_seconds:.1}s from the snapshot to verified workloads (the seed's outage: two days down at about $40K an hour, then three days of rebuilding by hand; on real AWS the cluster's 10-15 minutes of creation dominate)"
    );
    outln!(
        "total {:.1}s on the local emulator (it holds EKS resources in CREATING/UPDATING for two describes; real clusters take 10-15 minutes)",
        total.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The committed snapshot of the story's lost cluster.
pub fn fixture() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/recovery/etcd.db")
}

/// Remakes [`fixture`] from a real API server.
pub async fn record_fixture() -> Result<()> {
    if !eksodus_testkit::realkube::RealKube::available() {
        bail!("{} must name a kube-apiserver binary", eksodus_testkit::realkube::BINARY_VAR);
    }
    let dir = tempfile::tempdir()?;
    let snap = eksodus_testkit::workload::lost_cluster_snapshot(dir.path()).await.map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(fixture().parent().expect("a parent"))?;
    std::fs::copy(&snap, fixture())?;
    outln!("{} ({} bytes)", fixture().display(), std::fs::metadata(fixture())?.len());
    Ok(())
}
