//! The `eksodus-operator` binary: the controller with leader election, metrics and health endpoints, as the
//! install manifests' Deployment runs it.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use eksodus::aws::AwsTarget;
use eksodus_operator::lease::LeaseConfig;
use eksodus_operator::{manifests, ClusterAccess, RunOptions, Settings};

#[derive(Parser)]
#[command(version, about = "Reconciles eksodus Environment resources to AWS")]
struct Args {
    /// Watch only this namespace (default: all).
    #[arg(long)]
    namespace: Option<String>,
    /// The namespace of the leader Lease (default: no election, this replica leads).
    #[arg(long)]
    lease_namespace: Option<String>,
    /// This replica's name.
    #[arg(long, default_value = "eksodus-operator")]
    identity: String,
    /// Where /metrics, /healthz and /readyz listen.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Environments reconciled at once.
    #[arg(long, default_value_t = 8)]
    concurrency: u16,
    /// Seconds between drift checks.
    #[arg(long, default_value_t = 600)]
    drift_interval: u64,
    /// An AWS endpoint (the local emulator); clusters' API servers are then not contacted.
    #[arg(long)]
    aws_endpoint: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let a = Args::parse();
    let aws = match &a.aws_endpoint {
        Some(e) => AwsTarget::local("us-east-1", e),
        None => AwsTarget::default(),
    };
    let settings = Settings {
        namespace: a.namespace,
        aws,
        cluster_access: if a.aws_endpoint.is_some() { ClusterAccess::None } else { ClusterAccess::Tokens },
        concurrency: a.concurrency,
        drift_interval: Duration::from_secs(a.drift_interval),
        identity: a.identity.clone(),
        ..Settings::default()
    };
    let lease = a.lease_namespace.map(|ns| LeaseConfig::new(&ns, manifests::NAME, &a.identity));
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("eksodus-operator: no Kubernetes configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let options = RunOptions { settings, lease, metrics_addr: Some(a.metrics_addr) };
    match eksodus_operator::run(client, options, Arc::default(), shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eksodus-operator: {e}");
            ExitCode::FAILURE
        }
    }
}
