//! Plans the recovery of a dead cluster from its etcd snapshot onto a new environment, and runs it with
//! `--yes`: `cargo run -p eksodus --example recover_from_etcd -- SPEC SNAPSHOT [--yes]`. Re-run it after an
//! interruption: finished phases are skipped.
#![allow(clippy::print_stdout)]

use eksodus::prelude::*;
use eksodus::recover::{Recovery, RecoveryOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (spec, snapshot) = match args.as_slice() {
        [s, f, ..] => (eksodus::spec::from_file(s)?, f.clone()),
        _ => return Err("usage: recover_from_etcd SPEC SNAPSHOT [--yes]".into()),
    };
    let conf = AwsTarget { region: spec.region.clone(), ..AwsTarget::default() }.load().await;
    let dir = format!("recovery-{}", spec.name);
    let recovery = Recovery::new(spec, &conf, RecoveryOptions::new(snapshot, dir))?;
    let plan = recovery.plan(&EventSink::discard()).await?;
    println!(
        "{} object(s) to recover, {} lost; {} principal(s) get access; environment: {}",
        plan.bundle.objects,
        plan.bundle.lost.len(),
        plan.access.granted.len(),
        plan.environment.plan.summary()
    );
    if !args.iter().any(|a| a == "--yes") {
        return Ok(());
    }
    let report = recovery.run(&EventSink::new(|e| println!("{e:?}"))).await?;
    for p in &report.phases {
        println!("{:<8} {:>8} ms  {}", p.phase.as_str(), p.elapsed_ms, p.summary);
    }
    for c in &report.cutover {
        println!("DNS {}: {} -> {}", c.service, c.old.join(","), c.new.join(","));
    }
    Ok(())
}
