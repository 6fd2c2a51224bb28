//! The EKS lifecycle for eksodus. So far: the native EKS bearer token ([`token`]), which needs no aws CLI,
//! kubeconfig entries ([`kubeconfig`]), and the import of eksctl ClusterConfig files ([`eksctl`]).
//! The control plane, nodegroups, addons and upgrades come with their issue.

pub mod eksctl;
pub mod kubeconfig;
pub mod token;
