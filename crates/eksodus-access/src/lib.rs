//! Access for eksodus: who may do what, in AWS and in the cluster.
//!
//! - [`awsauth`]: the `kube-system/aws-auth` ConfigMap as data, parsed and written back losslessly (pure);
//! - [`guard`]: the lockout guard that refuses changes leaving nobody able to administer the cluster (pure).

pub mod awsauth;
pub mod guard;
