//! Brings an environment up, shows that a second plan is empty, and removes it again, printing the engine's
//! events as they come. The SDK configuration is the embedder's own: whatever retries it sets, eksodus turns
//! them off and retries each call itself, so a lost create response never makes a duplicate.
//!
//! `cargo run -p eksodus --example up_and_down -- SPEC` (real AWS: it creates what SPEC describes).
#![allow(clippy::print_stdout)]

use std::time::Duration;

use eksodus::prelude::*;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: up_and_down SPEC")?;
    let spec = eksodus::spec::from_file(&path)?;
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(spec.region.clone()))
        .load()
        .await;
    let env = Environment::builder(spec).aws(&conf).build()?;
    let events = EventSink::new(|e| match e {
        Event::StepFinished { id, elapsed_ms, .. } => println!("done  {id} ({elapsed_ms} ms)"),
        Event::StepRetrying { id, attempt, error, .. } => println!("retry {id} #{attempt}: {error}"),
        Event::StepFailed { id, error } => println!("FAIL  {id}: {error}"),
        _ => {}
    });
    let up = env.up(&events).await?;
    println!("up: {} round(s)", up.rounds.len());
    assert!(env.plan().await?.is_converged(), "a plan after up is empty");
    let down = env.down(&events, Duration::from_secs(600)).await?;
    println!("down: {} left, {} not checked", down.remaining.len(), down.not_checked.len());
    for l in &down.remaining {
        println!("  left: {l}");
    }
    Ok(())
}
