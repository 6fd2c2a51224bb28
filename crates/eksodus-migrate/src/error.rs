//! The error type of eksodus-migrate.

/// Errors of the migration pipeline. Problems with single objects are not errors of the run: they are listed
/// per object in the [`crate::bundle::Report`] and the rest proceeds.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A bundle's `manifest.json` is missing or malformed.
    #[error("bundle {path}: {message}")]
    Bundle {
        /// The bundle directory.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A rules file is malformed; names the field.
    #[error("{field}: {message}")]
    Rules {
        /// Dotted path of the field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A Kubernetes call failed for the whole run (discovery, listing), not for one object.
    #[cfg(feature = "kube")]
    #[error("Kubernetes: {what}")]
    Kube {
        /// The call.
        what: String,
        /// The kube-rs error.
        #[source]
        source: kube::Error,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}
