//! The `eksodus-operator` binary: the controller with leader election, metrics and health endpoints, as the
//! install manifests' Deployment runs it.
#![allow(clippy::print_stderr)]

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
    /// Seconds a lease lasts without renewal.
    #[arg(long, default_value_t = 15.0)]
    lease_duration: f64,
    /// Seconds the leader keeps trying to renew before it stops leading.
    #[arg(long, default_value_t = 10.0)]
    renew_deadline: f64,
    /// Seconds between tries and renewals.
    #[arg(long, default_value_t = 2.0)]
    retry_period: f64,
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
    /// Where migrations keep exported bundles and apply journals.
    #[arg(long, default_value = "/var/lib/eksodus")]
    work_dir: std::path::PathBuf,
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
        work_dir: a.work_dir.clone(),
        // the emulator makes resources ready at once: poll it as the tests do
        options: if a.aws_endpoint.is_some() {
            eksodus::ApplyOptions::fast()
        } else {
            eksodus::ApplyOptions::default()
        },
        ..Settings::default()
    };
    let lease = a.lease_namespace.map(|ns| LeaseConfig {
        duration: Duration::from_secs_f64(a.lease_duration),
        renew_deadline: Duration::from_secs_f64(a.renew_deadline),
        retry_period: Duration::from_secs_f64(a.retry_period),
        ..LeaseConfig::new(&ns, manifests::NAME, &a.identity)
    });
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("eksodus-operator: no Kubernetes configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Kubernetes stops a pod with SIGTERM; a terminal with Ctrl-C. Either way the lease is released on the way out.
    let shutdown = async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
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
