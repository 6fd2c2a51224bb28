//! Access for eksodus: who may do what, in AWS and in the cluster.
//!
//! - [`awsauth`]: the `kube-system/aws-auth` ConfigMap as data, parsed and written back losslessly (pure);
//! - [`guard`]: the lockout guard that refuses changes leaving nobody able to administer the cluster (pure);
//! - [`policy`]: IAM policy documents as typed values, trust policies, managed policy sets (pure);
//! - [`wellknown`]: the permission sets of well-known controllers (eksctl's `wellKnownPolicies`) (pure);
//! - `cluster` (feature `kube`): read-merge-write of aws-auth with resourceVersion preconditions;
//! - [`migrate`]: the aws-auth → access entries migration plan (pure);
//! - [`serviceaccounts`]: the Kubernetes service accounts of the IRSA and Pod Identity roles, and which of the
//!   cluster's to change, leave or delete (pure);
//! - `iam` (feature `aws`): cluster, node and IRSA roles and the OIDC provider, through the engine;
//! - `entries` (feature `aws`): EKS access entries and the authentication mode, through the engine.

pub mod awsauth;
#[cfg(feature = "kube")]
pub mod cluster;
#[cfg(feature = "aws")]
pub mod entries;
mod error;
pub mod guard;
#[cfg(feature = "aws")]
pub mod iam;
pub mod migrate;
pub mod policy;
pub mod serviceaccounts;
pub mod wellknown;

pub use error::{Error, Result};
