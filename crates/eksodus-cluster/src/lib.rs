//! The EKS lifecycle for eksodus. So far: the native EKS bearer token ([`token`]), which needs no aws CLI,
//! and kubeconfig entries ([`kubeconfig`]).
//! The control plane, nodegroups, addons and upgrades come with their issue.

pub mod kubeconfig;
pub mod token;
