//! eksodus: rebuild a Kubernetes environment on Amazon EKS from a spec, safely and repeatably, and move its
//! workloads over — the stable API of the eksodus crates for Rust services and `cargo xtask` scripts.
//!
//! - [`spec`]: read a spec file (eksodus's own format or an eksctl `ClusterConfig`), validated with every
//!   problem named by its field path.
//! - [`Environment`] (feature `env`): plan, `up`, `upgrade`, `down` of a whole environment (VPC, IAM,
//!   cluster, nodegroups, addons, access). No state file: what exists is found by ownership tags, creates carry
//!   idempotency tokens, and every method is safe to call again after a crash at any point.
//! - [`migrate`] (feature `migrate`): export workloads to a bundle, transform, order, apply, verify.
//! - [`etcd`] (feature `etcd`): read Kubernetes objects out of an etcd snapshot of a dead control plane.
//! - [`access`] (feature `access`): aws-auth, EKS access entries, IAM roles.
//! - [`recover`] (all features): the whole disaster recovery, from an etcd snapshot to workloads verified on
//!   a new cluster, in resumable phases.
//!
//! Libraries never print: everything reports through [`EventSink`] and typed results.
//!
//! ```no_run
//! # async fn run() -> Result<(), eksodus::Error> {
//! use eksodus::prelude::*;
//!
//! let spec = eksodus::spec::from_file("environment.yaml")?;
//! let conf = AwsTarget { region: spec.region.clone(), ..AwsTarget::default() }.load().await;
//! let env = Environment::builder(spec).aws(&conf).build()?;
//! let plan = env.plan().await?;
//! if !plan.is_converged() {
//!     env.up_from(plan, &EventSink::discard()).await?;
//! }
//! # Ok(()) }
//! ```
//!
//! Kubernetes types come from `k8s-openapi`, whose Kubernetes version is chosen by the final application:
//! depend on `k8s-openapi` with the `v1_xx` feature of the clusters you run (eksodus's crates select none).

mod error;
pub mod spec;

pub use error::{Error, Result};

pub use eksodus_core::engine::{ApplyOptions, ApplyReport};
pub use eksodus_core::events::{Event, EventSink};
pub use eksodus_core::plan::Plan;
pub use eksodus_core::retry::Policy as RetryPolicy;
pub use eksodus_core::spec::{EnvironmentSpec, FieldError, FieldErrors};
pub use eksodus_core::tags;

/// AWS configuration: the standard credential chain or the local emulator, with eksodus's retry rules.
#[cfg(feature = "env")]
pub mod aws {
    pub use eksodus_core::aws::{without_sdk_retries, AwsTarget};
}

#[cfg(feature = "env")]
pub use eksodus_cluster::environment::{
    DestroyPlan, DownReport, EnvPlan, Environment, EnvironmentBuilder, KubeAccess, UpReport, UpgradeReport,
};
/// The least-privilege IAM policy eksodus needs for an environment.
#[cfg(feature = "env")]
pub use eksodus_cluster::policy;
/// Kubeconfig entries and native EKS tokens.
pub use eksodus_cluster::{kubeconfig, token};

/// The shared vocabulary and the engine (spec types, tags, plans, the apply engine, retries, AWS configuration
/// with feature `env`), for programs that drive components one by one as `cargo xtask` does.
pub use eksodus_core as core;

/// The EKS lifecycle and the whole-environment driver, component by component (eksctl import, tokens,
/// kubeconfig, upgrades, the EKS reconciler).
#[cfg(feature = "env")]
pub use eksodus_cluster as cluster;

/// Workload migration: sources, filters, transforms, ordering, bundles, apply with a journal, verification.
#[cfg(feature = "migrate")]
pub use eksodus_migrate as migrate;

/// Kubernetes objects out of etcd snapshots.
#[cfg(feature = "etcd")]
pub use eksodus_etcd as etcd;

/// aws-auth, EKS access entries and IAM roles.
#[cfg(feature = "access")]
pub use eksodus_access as access;

/// The VPC layer: CIDR layout and VPC CNI capacity math (pure), and the EC2 reconciler.
#[cfg(feature = "env")]
pub use eksodus_net as net;

#[cfg(all(feature = "env", feature = "migrate", feature = "etcd", feature = "access"))]
pub mod recover;

/// What most programs need, in one `use`.
pub mod prelude {
    #[cfg(feature = "env")]
    pub use crate::aws::AwsTarget;
    pub use crate::{ApplyOptions, EnvironmentSpec, Error, Event, EventSink};
    #[cfg(feature = "env")]
    pub use crate::{Environment, KubeAccess};
}
