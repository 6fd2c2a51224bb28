//! Test-only support for eksodus: the local AWS emulator and a fault-injecting proxy in front of it.
//!
//! - [`moto`]: installs the pinned `moto[server]` into a virtualenv under `target/` and runs it on 127.0.0.1;
//! - [`proxy`]: counts calls per operation and injects latency, throttling, 5xx, dropped connections and crashes;
//!   it answers what moto lacks of EKS ([`eks`]) and puts right what moto's EC2 gets wrong ([`ec2`]);
//! - [`LocalAws`]: one isolated account on the process's shared server, behind its own proxy;
//! - [`kubeapi`]: a fake Kubernetes API server over real HTTP (two instances are two clusters);
//! - [`realkube`]: a real `kube-apiserver` with its own etcd, when [`realkube::BINARY_VAR`] names the binary;
//! - [`supervise`]: child processes that stop by PID when dropped or when the test process dies;
//! - [`workload`]: the recovery story's workload, its stand-in controllers, and a lost cluster's snapshot.
//!
//! Nothing here is needed at run time by the library crates; `xtask --local` and the demo use it too.

pub mod ec2;
pub mod eks;
pub mod kubeapi;
pub mod kubeproxy;
pub mod moto;
pub mod proxy;
pub mod realkube;
pub mod supervise;
pub mod workload;

use std::sync::atomic::{AtomicU64, Ordering};

pub use moto::Moto;
pub use proxy::{Fault, FaultConfig, FaultProxy, RateLimit, Stats};

/// Serves HTTP/1 on `listener` with `handle` until the returned task is aborted.
pub(crate) fn serve<F, Fut>(listener: tokio::net::TcpListener, handle: F) -> tokio::task::JoinHandle<()>
where
    F: Fn(hyper::Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<
            Output = Result<
                hyper::Response<http_body_util::Full<bytes::Bytes>>,
                Box<dyn std::error::Error + Send + Sync>,
            >,
        > + Send
        + 'static,
{
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let handle = handle.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(handle);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}

/// Errors of the testkit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Installing or starting moto failed.
    #[error("local AWS emulator: {0}")]
    Install(String),
    /// An IO operation failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
}

/// A fresh moto account on the shared server, reached through a fault proxy: tests using different
/// `LocalAws` values never see each other's resources.
#[derive(Debug)]
pub struct LocalAws {
    /// The proxy (use its stats and fault settings).
    pub proxy: FaultProxy,
    /// The moto account this instance uses.
    pub account_id: String,
}

impl LocalAws {
    /// Starts (or reuses) the process's moto server and a proxy with `faults` for a new account.
    pub async fn start(mut faults: FaultConfig) -> Result<LocalAws, Error> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let moto = tokio::task::spawn_blocking(Moto::shared)
            .await
            .map_err(|e| Error::Install(format!("moto start task failed: {e}")))??;
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let account_id = format!("{:012}", 100_000_000_000u64 + (std::process::id() as u64 % 100_000) * 10_000 + n);
        faults.account_id = Some(account_id.clone());
        let proxy = FaultProxy::start(&moto.endpoint(), faults).await?;
        Ok(LocalAws { proxy, account_id })
    }

    /// The endpoint to give the AWS SDK.
    pub fn endpoint(&self) -> String {
        self.proxy.endpoint()
    }
}
