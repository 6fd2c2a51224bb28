//! Shared vocabulary and the plan → apply engine of eksodus.
//!
//! - [`spec`]: the declarative [`EnvironmentSpec`](spec::EnvironmentSpec) and its structural validation;
//! - [`tags`]: ownership tags, how resources are found without a state file;
//! - [`plan`]: desired vs observed resources and the pure [`diff`](plan::diff) into a typed [`Plan`](plan::Plan);
//! - [`engine`]: applying a plan as a dependency DAG with bounded concurrency, retries and waiters;
//! - [`events`]: progress events (libraries never print);
//! - `aws` (feature `aws`): SDK configuration with retries owned by the engine, and error classification.
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
pub mod permissions;
pub mod plan;
pub mod spec;
pub mod tags;

pub use error::{Error, Result};
