//! Access for eksodus: who may do what, in AWS and in the cluster.
//!
//! - [`awsauth`]: the `kube-system/aws-auth` ConfigMap as data, parsed and written back losslessly (pure);
//! - [`guard`]: the lockout guard that refuses changes leaving nobody able to administer the cluster (pure);
//! - [`policy`]: IAM policy documents as typed values, trust policies, managed policy sets (pure);
//! - `cluster` (feature `kube`): read-merge-write of aws-auth with resourceVersion preconditions;
//! - `iam` (feature `aws`): cluster, node and IRSA roles and the OIDC provider, through the engine.

pub mod awsauth;
#[cfg(feature = "kube")]
pub mod cluster;
mod error;
pub mod guard;
#[cfg(feature = "aws")]
pub mod iam;
pub mod policy;

pub use error::{Error, Result};
