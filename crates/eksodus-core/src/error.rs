//! The error type of eksodus-core.

use crate::spec::FieldErrors;

/// Errors of the spec loader and the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The spec document is not valid YAML or does not have the expected shape.
    #[error("spec is malformed{}: {message}", if path.is_empty() { String::new() } else { format!(" at `{path}`") })]
    Parse {
        /// Dotted path of the field at fault (empty for a document-level problem).
        path: String,
        /// What the parser said.
        message: String,
    },
    /// The spec parsed but is not valid; every problem is listed.
    #[error("{0}")]
    Invalid(#[source] FieldErrors),
    /// The plan is not a DAG: the listed steps depend on each other in a cycle.
    #[error("the plan has a dependency cycle through: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    /// A step depends on a resource that is neither in the plan nor discovered.
    #[error("step `{step}` depends on `{missing}`, which is neither planned nor discovered")]
    MissingDependency {
        /// The dependent step.
        step: String,
        /// The unknown dependency.
        missing: String,
    },
    /// Applying the plan left some steps failed or skipped; the report says which and why.
    #[error("apply did not converge: {failed} step(s) failed, {skipped} skipped")]
    ApplyIncomplete {
        /// Steps that failed.
        failed: usize,
        /// Steps skipped because something they depend on failed.
        skipped: usize,
    },
    /// A waiter gave up.
    #[error("timed out after {seconds}s waiting for {what}")]
    WaitTimeout {
        /// What was awaited.
        what: String,
        /// How long it waited.
        seconds: u64,
    },
    /// Loading AWS configuration failed.
    #[error("AWS configuration: {0}")]
    AwsConfig(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
