//! The EKS lifecycle for eksodus, and the whole environment.
//!
//! Pure parts (no IO, no SDK): the native EKS bearer token ([`token`]), kubeconfig entries ([`kubeconfig`]),
//! the import of eksctl ClusterConfig files ([`eksctl`]), addon version resolution and VPC CNI configuration
//! ([`addons`]), and upgrade steps with their preflight ([`upgrade`]).
//!
//! With the `aws` feature (default): the EKS reconciler ([`eks`]: control plane, nodegroups, addons, version
//! steps), the Kubernetes side ([`kube_side`]: ENIConfigs, the pre-delete load-balancer cleanup, the
//! deprecated-API metric), the sweep of what the cluster's controllers made in AWS ([`sweep`]), and
//! [`environment::Environment`], which plans and applies network, IAM, cluster and
//! access as one dependency graph.

pub mod addons;
pub mod eksctl;
mod error;
pub mod kubeconfig;
pub mod token;
pub mod upgrade;
pub mod userdata;

#[cfg(feature = "aws")]
pub mod eks;
#[cfg(feature = "aws")]
pub mod environment;
#[cfg(feature = "aws")]
pub mod kms;
#[cfg(feature = "aws")]
pub mod kube_side;
#[cfg(feature = "aws")]
pub mod logs;
#[cfg(feature = "aws")]
pub mod policy;
#[cfg(feature = "aws")]
pub mod sweep;

pub use error::{Error, Result};
