//! Shared vocabulary and the plan → apply engine of eksodus.
//!
//! - [`spec`]: the declarative [`EnvironmentSpec`](spec::EnvironmentSpec) and its structural validation;
//! - [`tags`]: ownership tags, how resources are found without a state file;
//! - [`plan`]: desired vs observed resources and the pure [`diff`](plan::diff) into a typed [`Plan`](plan::Plan);
//! - [`engine`]: applying a plan as a dependency DAG with bounded concurrency, retries and waiters;
//! - [`events`]: progress events (libraries never print);
//! - [`retry`]: the one retry policy of every remote call (per call, budgeted in time, adaptive rate);
//! - `aws` (feature `aws`): SDK configuration with retries owned by eksodus, and error classification;
//! - `kube` (feature `kube`): Kubernetes calls under the same policy.
//!
//! ```
//! use eksodus_core::spec::EnvironmentSpec;
//! let spec = EnvironmentSpec::from_yaml("name: demo\nregion: eu-west-1\nnetwork: {cidr: 10.0.0.0/16, azs: 2}")?;
//! assert!(spec.validate().is_empty());
//! # Ok::<_, eksodus_core::Error>(())
//! ```

#[cfg(feature = "aws")]
pub mod aws;
pub mod engine;
mod error;
pub mod events;
#[cfg(feature = "kube")]
pub mod kube;
pub mod operations;
pub mod plan;
pub mod retry;
pub mod spec;
pub mod tags;

pub use error::{Error, Result};

/// The field manager eksodus writes Kubernetes objects as (server-side apply and creates), in every crate.
pub const FIELD_MANAGER: &str = "eksodus";
