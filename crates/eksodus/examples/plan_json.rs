//! Plans an environment and prints the plan as JSON (exit 2 when something would change).
//!
//! `cargo run -p eksodus --example plan_json -- examples/demo.yaml` with AWS credentials, or against the local
//! emulator: `cargo xtask local start`, then `AWS_ENDPOINT_URL=<its endpoint>` and test credentials.
#![allow(clippy::print_stdout)]

use eksodus::prelude::*;

#[tokio::main]
async fn main() -> Result<std::process::ExitCode, Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: plan_json SPEC")?;
    let spec = eksodus::spec::from_file(&path)?;
    let conf = AwsTarget { region: spec.region.clone(), ..AwsTarget::default() }.load().await;
    // planning reads only; the Kubernetes side is not needed for it
    let env = Environment::builder(spec).aws(&conf).kube(KubeAccess::None).build()?;
    let plan = env.plan().await?;
    println!("{}", serde_json::to_string_pretty(&plan)?);
    Ok(if plan.is_converged() { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::from(2) })
}
