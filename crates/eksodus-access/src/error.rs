//! The error type of eksodus-access.

use crate::awsauth::Problems;
use crate::guard::Lockout;

/// Errors of the access planners and reconcilers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The aws-auth ConfigMap in the cluster (or a file) is malformed; nothing was changed.
    #[error("{0}")]
    Malformed(#[source] Problems),
    /// The change would lock administrators or nodes out; nothing was changed.
    #[error("{0}")]
    Lockout(#[source] Lockout),
    /// Concurrent writers kept winning; nothing was changed by this call.
    #[error("gave up after {attempts} read-merge-write rounds lost to concurrent writers")]
    TooManyConflicts {
        /// Rounds tried.
        attempts: u32,
    },
    /// The spec (or a caller's input) asks for what the cluster cannot do; names the field; nothing was changed.
    #[error("{field}: {message}")]
    Invalid {
        /// Dotted spec path (`access.authentication_mode`).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// An AWS call failed: its code and request ID are on the [`StepError`](eksodus_core::engine::StepError).
    #[error(transparent)]
    Aws(#[from] eksodus_core::engine::StepError),
    /// A Kubernetes API call failed.
    #[cfg(feature = "kube")]
    #[error("Kubernetes API: {0}")]
    Kube(#[source] kube::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
