//! The facade's error: each crate's own error, kept whole (its variants and causes), plus what the facade
//! itself checks.

/// A result with the facade's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong through the facade.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A spec is malformed or invalid; the message names every field at fault.
    #[error(transparent)]
    Spec(#[from] eksodus_core::Error),
    /// An eksctl `ClusterConfig` uses fields eksodus cannot carry over; nothing was done.
    #[error("{path}: {} eksctl field(s) eksodus cannot carry over: {}", .fields.len(),
        .fields.iter().map(|u| format!("{} ({})", u.path, u.reason)).collect::<Vec<_>>().join("; "))]
    Unsupported {
        /// The file.
        path: String,
        /// Each field with the reason.
        fields: Vec<eksodus_cluster::eksctl::Unsupported>,
    },
    /// An environment operation failed (AWS, the cluster's Kubernetes side, a refused change).
    #[error(transparent)]
    Environment(#[from] eksodus_cluster::Error),
    /// A migration step failed.
    #[cfg(feature = "migrate")]
    #[error(transparent)]
    Migrate(#[from] eksodus_migrate::Error),
    /// An etcd snapshot could not be read as a whole.
    #[cfg(feature = "etcd")]
    #[error(transparent)]
    Etcd(#[from] eksodus_etcd::Error),
    /// An access operation failed (aws-auth, access entries, IAM), or was refused by the lockout guard.
    #[cfg(feature = "access")]
    #[error(transparent)]
    Access(#[from] eksodus_access::Error),
    /// A recovery cannot go on as asked; nothing of the refused phase was done.
    #[error("recovery, {phase}: {message}")]
    Recovery {
        /// The phase (`inspect`, `export`, `up`, `access`, `apply`, `verify`).
        phase: String,
        /// What is wrong and what to do.
        message: String,
    },
}
