//! Progress events: libraries emit these, drivers render them. Libraries never print.

use std::sync::Arc;

use serde::Serialize;

use crate::plan::Action;

/// Something that happened while planning or applying.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A phase (discover, apply, destroy, ...) began with this many units of work.
    PhaseStarted {
        /// Phase name.
        phase: String,
        /// Units of work in it.
        total: usize,
    },
    /// A phase ended.
    PhaseFinished {
        /// Phase name.
        phase: String,
        /// Wall time in milliseconds.
        elapsed_ms: u64,
    },
    /// A step began.
    StepStarted {
        /// Step ID.
        id: String,
        /// What it does.
        action: Action,
    },
    /// A step failed with a retryable error and will be tried again.
    StepRetrying {
        /// Step ID.
        id: String,
        /// The attempt that failed (1-based).
        attempt: u32,
        /// Delay before the next attempt.
        delay_ms: u64,
        /// The error, as text.
        error: String,
    },
    /// A step is waiting for a resource to reach a state.
    StepWaiting {
        /// Step ID.
        id: String,
        /// The state the resource is in now.
        status: String,
        /// Time waited so far.
        elapsed_ms: u64,
    },
    /// A step finished.
    StepFinished {
        /// Step ID.
        id: String,
        /// What it did.
        action: Action,
        /// The physical ID it created or touched.
        physical_id: Option<String>,
        /// Wall time in milliseconds.
        elapsed_ms: u64,
    },
    /// A step failed for good.
    StepFailed {
        /// Step ID.
        id: String,
        /// The error, as text.
        error: String,
    },
    /// A step was not run because a step it depends on failed.
    StepSkipped {
        /// Step ID.
        id: String,
        /// The failed dependency.
        because: String,
    },
    /// Something could not be removed (or was removed though it was not ours, to free what was).
    Leftover {
        /// The resource.
        resource: String,
        /// Why it is reported.
        reason: String,
    },
    /// Progress through the units of a long operation: objects exported, applied or verified, keys read from
    /// an etcd snapshot. Emitted as units finish (not necessarily for every one).
    Progress {
        /// The operation: `export`, `apply`, `verify`, `etcd`.
        phase: String,
        /// Units done so far.
        done: u64,
        /// Units in all, when known in advance.
        total: Option<u64>,
        /// The unit just done (`apps/Deployment shop/web`, a listed resource type), if one.
        item: Option<String>,
        /// What happened to it (`created`, `unchanged`, `failed`, `12 listed`), if anything to say.
        outcome: Option<String>,
    },
    /// Something a person should know while it runs (a step skipped, a fallback taken).
    Note {
        /// What happened.
        message: String,
    },
}

/// Where events go: a cheap, clonable callback.
#[derive(Clone)]
pub struct EventSink(Arc<dyn Fn(&Event) + Send + Sync>);

impl EventSink {
    /// A sink calling `f` for each event.
    pub fn new(f: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        EventSink(Arc::new(f))
    }

    /// A sink that drops everything.
    pub fn discard() -> Self {
        EventSink::new(|_| {})
    }

    /// Sends one event.
    pub fn emit(&self, e: Event) {
        (self.0)(&e)
    }
}

impl Default for EventSink {
    fn default() -> Self {
        Self::discard()
    }
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventSink")
    }
}
