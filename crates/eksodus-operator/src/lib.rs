//! eksodus as a Kubernetes controller: `Environment` resources (`eksodus.io/v1alpha1`) reconciled to AWS with
//! the same engine as `cargo xtask up` — plan, apply, drift checks, and `down` behind a finalizer.
//!
//! The engine keeps no state file (resources are found by their ownership tags, creates carry idempotency
//! tokens), which is what makes a controller safe here: a reconcile cut short by a crash, a restart or a
//! leader change is run again from discovery and converges without duplicates.
//!
//! - [`crd`]: the `Environment` resource types, the source of its CRD.
//! - [`migration`]: the `Migration` resource and its reconcile (bundle or etcd snapshot -> a cluster).
//! - [`controller`]: reconcile, finalizer, backoff, [`controller::run`].
//! - [`lease`]: leader election on a `coordination.k8s.io` Lease.
//! - [`metrics`]: Prometheus metrics and health endpoints.
//! - [`manifests`]: the install manifests (CRD, RBAC, Deployment).
//! - [`run`]: all of it, as the `eksodus-operator` binary runs it.
//!
//! The library selects no Kubernetes version of `k8s-openapi`; the binary (feature `bin`) selects its own.

pub mod calls;
pub mod controller;
pub mod crd;
pub mod lease;
pub mod manifests;
pub mod metrics;
pub mod migration;
pub mod s3;
pub mod status;

use std::net::SocketAddr;
use std::sync::Arc;

pub use controller::{ClusterAccess, Settings};
pub use crd::{Environment, EnvironmentResourceSpec, EnvironmentStatus};

/// Everything that can go wrong in the operator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[source] kube::Error),
    /// The `Environment` CRD is not served (install it with `cargo xtask operator manifests | kubectl apply -f -`).
    #[error("the Environment CRD is not installed or not readable: {0}")]
    CrdMissing(#[source] kube::Error),
    /// The environment's plan, apply or down failed.
    #[error(transparent)]
    Environment(#[from] Box<eksodus::Error>),
    /// The spec is invalid (every problem listed).
    #[error("{} problem(s) in the spec: {}", .0.len(), .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<crd::SpecError>),
    /// The credentials Secret is missing or incomplete.
    #[error("credentials Secret {secret}: {message}")]
    Credentials {
        /// `namespace/name`.
        secret: String,
        /// What is wrong.
        message: String,
    },
    /// Another `Environment` already claims this environment name in this region.
    #[error("environment {name} in {region} is already claimed by Environment {other}")]
    NameConflict {
        /// The environment name.
        name: String,
        /// The region.
        region: String,
        /// The resource that claims it (`namespace/name`).
        other: String,
    },
    /// `down` finished but owned resources remain; deletion waits.
    #[error("{} owned resource(s) remain after down: {}", .0.len(), .0.join(", "))]
    Leftovers(Vec<String>),
    /// Adding or removing the finalizer failed, or the reconcile inside it did.
    #[error("{0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// A migration's target cluster cannot be reached.
    #[error("migration target: {0}")]
    Target(String),
    /// A migration's source cannot be read.
    #[error("migration source: {0}")]
    Source(String),
    /// A migration source in S3 could not be read (after the call's retries).
    #[error("{uri}: {source}")]
    S3 {
        /// The object or prefix.
        uri: String,
        /// The failed call, with its AWS error code and request ID.
        #[source]
        source: eksodus::core::engine::StepError,
    },
    /// A migration did not complete (objects not applied, or different in the target).
    #[error("migration: {0}")]
    Migration(String),
    /// This replica lost the leader lease; it stopped reconciling.
    #[error("lost the leader lease {0}")]
    LeaseLost(String),
    /// The metrics endpoint could not listen.
    #[error("metrics endpoint {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl From<eksodus::Error> for Error {
    fn from(e: eksodus::Error) -> Self {
        Error::Environment(Box::new(e))
    }
}

/// How [`run`] runs the operator.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The controller's settings.
    pub settings: Settings,
    /// Leader election (None: this replica leads alone, as for `--local` runs).
    pub lease: Option<lease::LeaseConfig>,
    /// Where `/metrics`, `/healthz` and `/readyz` listen (None: nowhere).
    pub metrics_addr: Option<SocketAddr>,
}

/// Runs the operator: the metrics endpoint, then (with a lease) waits to lead, then the controller until
/// `shutdown` completes (the lease is then released, so a standby takes over at once), the watch ends, or the
/// lease is lost ([`Error::LeaseLost`]: the process should exit, as client-go's do, and be restarted as a
/// candidate).
pub async fn run(
    client: kube::Client,
    options: RunOptions,
    metrics: Arc<metrics::Metrics>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    let _server = match options.metrics_addr {
        Some(addr) => {
            let (_, task) =
                metrics::serve(addr, metrics.clone()).await.map_err(|source| Error::Listen { addr, source })?;
            Some(AbortOnDrop(task))
        }
        None => None,
    };
    let mut shutdown = std::pin::pin!(shutdown);
    let Some(lease) = options.lease else {
        metrics.set_leader(true);
        return tokio::select! {
            r = controller::run(client, options.settings, metrics) => r,
            () = &mut shutdown => Ok(()),
        };
    };
    let name = format!("{}/{}", lease.namespace, lease.name);
    let mut lock = lease::LeaseLock::new(client.clone(), lease);
    // a standby is ready: it answers and is waiting to lead
    metrics.set_ready(true);
    tokio::select! {
        r = lock.acquire() => r.map_err(Error::Kube)?,
        () = &mut shutdown => return Ok(()),
    }
    metrics.set_leader(true);
    let result = {
        let hold = async {
            lock.hold().await;
            Err(Error::LeaseLost(name))
        };
        tokio::select! {
            r = controller::run(client, options.settings, metrics.clone()) => r,
            r = hold => r,
            () = &mut shutdown => Ok(()),
        }
    };
    metrics.set_leader(false);
    if result.is_ok() {
        let _ = lock.release().await;
    }
    result
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
