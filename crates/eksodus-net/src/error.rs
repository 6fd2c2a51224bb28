//! The error type of eksodus-net.

/// Errors of the network planners and reconciler.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The instance type is not in the bundled VPC CNI limits table.
    #[error("unknown instance type `{instance_type}`{}", if similar.is_empty() { String::new() } else { format!(" (known types like it: {})", similar.join(", ")) })]
    UnknownInstanceType {
        /// The name asked for.
        instance_type: String,
        /// Known names of the same family.
        similar: Vec<String>,
    },
    /// The layout cannot be planned; names the spec field at fault.
    #[error("{field}: {message}")]
    Layout {
        /// Dotted spec path.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// An adopted VPC or subnet does not meet EKS's requirements.
    #[error("{field}: {message}")]
    Adopt {
        /// Dotted spec path.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A nodegroup's instance selector matches no type, or too many; names the selector's field.
    #[error("{field}: {message}")]
    Selection {
        /// Dotted path within the nodegroup (`instance_selector...`).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// An AWS call made outside the engine (discovery, validation) failed.
    #[error("{0}")]
    Aws(#[source] eksodus_core::engine::StepError),
    /// The engine failed (a cycle, an incomplete apply, ...).
    #[error(transparent)]
    Core(#[from] eksodus_core::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
