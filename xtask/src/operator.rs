//! `cargo xtask operator`: the install manifests, and the operator run outside the cluster.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::Subcommand;
use eksodus_operator::manifests::{self, Install};
use eksodus_operator::{ClusterAccess, RunOptions, Settings};

#[derive(Subcommand)]
pub enum OperatorCmd {
    /// Print the install manifests (CRD, least-privilege RBAC, a Deployment of two replicas) as YAML.
    Manifests {
        /// The operator's namespace.
        #[arg(long, default_value = "eksodus-system")]
        namespace: String,
        /// The container image of the `eksodus-operator` binary.
        #[arg(long)]
        image: Option<String>,
        /// Replicas (one leads, the others stand by).
        #[arg(long, default_value_t = 2)]
        replicas: u32,
        /// IAM role for the operator's service account (IRSA).
        #[arg(long)]
        role_arn: Option<String>,
        /// A namespace whose Secrets the operator may read for credentials (repeatable).
        #[arg(long = "credential-namespace")]
        credential_namespaces: Vec<String>,
        /// Only the CRDs.
        #[arg(long)]
        crd_only: bool,
    },
    /// Run the operator here, against the cluster a kubeconfig names (no leader election: one replica).
    Run {
        /// Kubeconfig (default: the standard one).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// Its context.
        #[arg(long)]
        context: Option<String>,
        /// AWS is the local emulator (started if needed); clusters' API servers are not contacted.
        #[arg(long)]
        local: bool,
        /// AWS profile.
        #[arg(long)]
        profile: Option<String>,
        /// Watch only this namespace.
        #[arg(long)]
        namespace: Option<String>,
        /// Where /metrics, /healthz and /readyz listen.
        #[arg(long, default_value = "127.0.0.1:8080")]
        metrics_addr: SocketAddr,
        /// Seconds between drift checks.
        #[arg(long, default_value_t = 600)]
        drift_interval: u64,
    },
}

pub async fn run(cmd: OperatorCmd) -> Result<ExitCode> {
    match cmd {
        OperatorCmd::Manifests { namespace, image, replicas, role_arn, credential_namespaces, crd_only } => {
            let mut i = Install { namespace, replicas, role_arn, credential_namespaces, ..Install::default() };
            if let Some(image) = image {
                i.image = image;
            }
            if crd_only {
                let crds: Vec<String> = manifests::objects(&i)
                    .iter()
                    .filter(|o| o["kind"] == "CustomResourceDefinition")
                    .map(serde_saphyr::to_string)
                    .collect::<Result<_, _>>()?;
                out!("{}", crds.join("---\n"));
            } else {
                out!("{}", manifests::yaml(&i));
            }
            Ok(ExitCode::SUCCESS)
        }
        OperatorCmd::Run { kubeconfig, context, local, profile, namespace, metrics_addr, drift_interval } => {
            let (client, url) = crate::kube_client(kubeconfig.as_deref(), context.as_ref()).await?;
            let aws = crate::target("us-east-1", local, profile).await?;
            let settings = Settings {
                namespace,
                aws,
                cluster_access: if local { ClusterAccess::None } else { ClusterAccess::Tokens },
                drift_interval: Duration::from_secs(drift_interval),
                identity: "xtask".into(),
                options: if local { eksodus::ApplyOptions::fast() } else { eksodus::ApplyOptions::default() },
                ..Settings::default()
            };
            eprintln!("eksodus operator: watching Environments on {url}; metrics on http://{metrics_addr}/metrics (Ctrl-C stops)");
            let options = RunOptions { settings, lease: None, metrics_addr: Some(metrics_addr) };
            let shutdown = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            eksodus_operator::run(client, options, Arc::default(), shutdown).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
