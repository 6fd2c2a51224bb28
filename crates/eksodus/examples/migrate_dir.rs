//! Turns a directory of manifests into an ordered migration bundle (offline), and when a kubeconfig context is
//! given applies it to that cluster and verifies it there (every object as the bundle has it, workloads rolled
//! out): `cargo run -p eksodus --example migrate_dir -- DIR BUNDLE [CONTEXT]`.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;

use eksodus::migrate::{bundle, filter::Filters, live, source, transform::Rules};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (dir, out) = match (args.next(), args.next()) {
        (Some(d), Some(o)) => (PathBuf::from(d), PathBuf::from(o)),
        _ => return Err("usage: migrate_dir DIR BUNDLE [CONTEXT]".into()),
    };
    let read = source::read_dir(&dir)?;
    for e in &read.errors {
        println!("unreadable: {}: {}", e.at, e.reason);
    }
    let prepared = bundle::prepare(read, &dir.display().to_string(), &Filters::default(), &Rules::default());
    bundle::write(&out, &prepared)?;
    println!("{} object(s) into {}", prepared.report.objects, out.display());
    let Some(context) = args.next() else { return Ok(()) };
    let options = kube::config::KubeConfigOptions { context: Some(context), ..Default::default() };
    let client = kube::Client::try_from(kube::Config::from_kubeconfig(&options).await?)?;
    let (objects, _) = bundle::read(&out)?;
    // progress as events: one per object applied, with counts
    let events = eksodus::EventSink::new(|e| {
        if let eksodus::Event::Progress { done, total: Some(total), item: Some(item), outcome, .. } = e {
            println!("[{done}/{total}] {item}: {}", outcome.as_deref().unwrap_or(""));
        }
    });
    let report = live::apply(&client, &objects, &live::MigrateOptions::default(), &events).await?;
    println!("{:?}", report.counts());
    let check =
        live::verify(&client, &objects, &Default::default(), std::time::Duration::from_secs(60), &events).await?;
    if !check.objects_match() {
        return Err(format!("verify: missing {:?}, different {:?}", check.missing, check.different).into());
    }
    println!("verified: {} object(s) as the bundle has them", objects.len());
    Ok(())
}
