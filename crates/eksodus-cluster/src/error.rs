//! The error type of eksodus-cluster.

/// Errors of the EKS planners, reconciler and environment driver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The spec asks for something EKS or the cluster cannot give; names the spec field at fault.
    #[error("{field}: {message}")]
    Spec {
        /// Dotted spec path.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The upgrade preflight found blockers; nothing was changed.
    #[error("upgrade to {target} blocked: {}", blockers.join("; "))]
    Preflight {
        /// The version the blocked step goes to.
        target: String,
        /// What blocks it.
        blockers: Vec<String>,
    },
    /// The plan would replace the cluster (every workload and the etcd data would go).
    #[error("the plan replaces the EKS cluster because {} changed; EKS cannot change them in place. Delete the environment first if that is what you want", fields.join(", "))]
    ClusterReplacement {
        /// The immutable fields that differ.
        fields: Vec<String>,
    },
    /// Applying a plan left steps failed (each listed with its error) or skipped; a re-run continues.
    #[error("{} step(s) failed: {}", failures.len(), failures.join("; "))]
    Incomplete {
        /// `step: error` per failed step.
        failures: Vec<String>,
    },
    /// A value that came from outside (a cluster's endpoint or CA, a file) is not what it must be.
    #[error("{what}: {message}")]
    Invalid {
        /// What it is.
        what: String,
        /// What is wrong with it.
        message: String,
    },
    /// Something is not ready for what was asked of it (a cluster without an endpoint yet).
    #[error("{what} is not ready: {message}")]
    NotReady {
        /// What.
        what: String,
        /// Why.
        message: String,
    },
    /// `up` stopped without reaching an empty plan (something keeps changing, or waits on what never comes).
    #[error("the environment did not converge: {message}")]
    NotConverged {
        /// What still changes or waits.
        message: String,
    },
    /// AWS credentials could not be loaded.
    #[error("AWS credentials: {0}")]
    Credentials(String),
    /// An AWS call made outside the engine (discovery, validation) failed.
    #[error("{0}")]
    Aws(#[source] eksodus_core::engine::StepError),
    /// The network component failed.
    #[cfg(feature = "aws")]
    #[error(transparent)]
    Network(#[from] eksodus_net::Error),
    /// The access component failed.
    #[cfg(feature = "aws")]
    #[error(transparent)]
    Access(#[from] eksodus_access::Error),
    /// A Kubernetes call failed.
    #[cfg(feature = "aws")]
    #[error("Kubernetes: {what}: {source}")]
    Kube {
        /// The call and object.
        what: String,
        /// The kube-rs error.
        #[source]
        source: kube::Error,
    },
    /// The engine failed (a cycle, an incomplete apply, ...), or the spec is invalid.
    #[error(transparent)]
    Core(#[from] eksodus_core::Error),
}

impl Error {
    /// Whether this is a failure to talk to the cluster's API server (as opposed to AWS or the spec).
    pub fn is_kube(&self) -> bool {
        #[cfg(feature = "aws")]
        if matches!(self, Error::Kube { .. }) {
            return true;
        }
        false
    }
}

impl From<eksodus_core::engine::StepError> for Error {
    fn from(e: eksodus_core::engine::StepError) -> Self {
        Error::Aws(e)
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
