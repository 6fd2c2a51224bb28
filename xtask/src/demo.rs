//! `cargo xtask demo`: the main job end to end on the local emulator, with a summary.

use std::time::Instant;

use anyhow::{bail, Result};
use eksodus_core::aws::AwsTarget;
use eksodus_core::engine::{ApplyOptions, Engine, Router};
use eksodus_core::spec::{EnvironmentSpec, FieldErrors};
use eksodus_net::ec2::Network;
use eksodus_testkit::{FaultConfig, LocalAws};

use crate::render;

const SPEC: &str = include_str!("../../examples/demo.yaml");

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
    let errs = eksodus_net::validate(&spec);
    if !errs.is_empty() {
        bail!(eksodus_core::Error::Invalid(FieldErrors(errs)));
    }
    outln!("environment `{}` in {}: valid", spec.name, spec.region);

    heading("Layout (offline)");
    let layout = eksodus_net::layout::plan(&spec)?;
    out!("{}", render::layout(&layout));

    eprintln!("\nstarting the local AWS emulator (moto {})...", eksodus_testkit::moto::MOTO_VERSION);
    let aws = LocalAws::start(FaultConfig::default()).await?;
    let conf = AwsTarget::local(&spec.region, &aws.endpoint()).load().await;
    let net = Network::new(aws_sdk_ec2::Client::new(&conf), &spec).with_retry(ApplyOptions::fast());
    let iam = eksodus_access::iam::Iam::new(aws_sdk_iam::Client::new(&conf), &spec).with_retry(ApplyOptions::fast());
    let issuer = spec.access.as_ref().and_then(|a| a.oidc_issuer.clone());
    let account = aws.account_id.clone();
    let router = Router::new().route(eksodus_net::ec2::KINDS, &net).route(eksodus_access::iam::KINDS, &iam);
    let engine = Engine::new(ApplyOptions::fast());
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
    let mut plan = net.plan(&spec).await?;
    plan.extend(iam.plan(&spec, issuer.as_deref(), &account).await?);
    out!("{}", render::plan(&plan));
    let cp = plan.critical_path_calls()?;
    outln!("critical path: {cp} sequential API calls");
    measure("plan", t, plan.summary().to_string(), &aws);

    heading("Apply");
    let t = Instant::now();
    let progress = render::Progress::new(false);
    let report = engine.apply(&plan, &router, &progress.sink()).await?;
    out!("{}", render::report(&report));
    measure("apply", t, format!("{} operations", report.ops.len()), &aws);
    report.into_result()?;

    heading("Plan again");
    let t = Instant::now();
    let mut again = net.plan(&spec).await?;
    again.extend(iam.plan(&spec, issuer.as_deref(), &account).await?);
    out!("{}", render::plan(&again));
    if !again.is_empty() {
        bail!("the plan after apply is not empty");
    }
    measure("re-plan", t, "no changes".into(), &aws);

    if keep {
        outln!("\n--keep: leaving the environment in place (the emulator stops with this process)");
    } else {
        heading("Destroy");
        let t = Instant::now();
        let mut destroy = net.destroy_plan().await?;
        destroy.extend(iam.destroy_plan(&spec).await?);
        outln!("Plan: {}.", destroy.summary());
        let progress = render::Progress::new(false);
        let report = engine.apply(&destroy, &router, &progress.sink()).await?;
        out!("{}", render::report(&report));
        measure(
            "destroy",
            t,
            format!("{} operations, {} leftover note(s)", report.ops.len(), report.leftovers.len()),
            &aws,
        );
        report.into_result()?;

        heading("What is left");
        let t = Instant::now();
        let mut left = net.tagged_leftovers().await?;
        left.extend(iam.discover(&spec).await?.into_iter().map(|o| format!("{} {}", o.kind, o.physical_id)));
        if left.is_empty() {
            outln!("nothing tagged eksodus.io/environment={} (VPCs, subnets, gateways, addresses, route tables, security groups, interfaces, IAM roles, OIDC providers)", spec.name);
        } else {
            for l in &left {
                outln!("  {l}");
            }
            bail!("{} tagged resource(s) remain", left.len());
        }
        measure("leftover check", t, "0 left".into(), &aws);
    }

    heading("Summary");
    outln!("{:<15} {:>8} {:>10} {:>7}  NOTE", "PHASE", "TIME", "AWS CALLS", "WRITES");
    for p in &phases {
        outln!("{:<15} {:>7.2}s {:>10} {:>7}  {}", p.name, p.seconds, p.calls, p.writes, p.note);
    }
    outln!(
        "total {:.1}s on the local emulator (moto: resources are ready at once; real NAT gateways take minutes)",
        total.elapsed().as_secs_f64()
    );
    Ok(())
}
