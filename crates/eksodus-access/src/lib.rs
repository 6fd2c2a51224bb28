//! Access for eksodus: who may do what, in AWS and in the cluster.
//!
//! - [`awsauth`]: the `kube-system/aws-auth` ConfigMap as data, parsed and written back losslessly (pure);
//! - [`guard`]: the lockout guard that refuses changes leaving nobody able to administer the cluster (pure);
//! - `cluster` (feature `kube`): read-merge-write of aws-auth with resourceVersion preconditions.

pub mod awsauth;
#[cfg(feature = "kube")]
pub mod cluster;
mod error;
pub mod guard;

pub use error::{Error, Result};
