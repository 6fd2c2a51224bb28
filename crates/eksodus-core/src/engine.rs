//! Applying a [`Plan`]: a dependency DAG of operations run with bounded concurrency, retries with backoff and
//! jitter on throttling and transient errors, and progress events.
//!
//! The engine knows nothing about AWS. A reconciler implements [`Executor`] for its resource kinds; the engine
//! calls it once per operation and attempt. Three rules keep a re-run after a crash safe:
//!
//! 1. Every create tags its resource in the create call itself, so an interrupted create is found by the next
//!    discovery.
//! 2. On a retry (`attempt > 1`) of a create, the executor looks the resource up by its tags before creating,
//!    because the failed attempt may have succeeded on the server (a dropped response). This is also why the
//!    SDK's own retries are turned off ([`crate::aws`]): a blind SDK retry of `CreateVpc` makes a duplicate.
//! 3. Idempotency tokens ([`OpContext::client_token`]) are derived from the resource key, its wanted
//!    properties and the physical IDs it depends on, so the same create sends the same token after a crash,
//!    but a create after a destroy (new dependency IDs) sends a new one.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use rand::Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::events::{Event, EventSink};
use crate::plan::{Action, Plan, Step};
use crate::Error;

/// A boxed future, as [`Executor`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How an error should be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The service asked us to slow down: retry with a longer backoff.
    Throttling,
    /// A 5xx, a dropped connection, a timeout, or an eventual-consistency error: retry.
    Transient,
    /// Retrying will not help.
    Permanent,
}

/// An operation's failure, classified for the retry loop.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StepError {
    /// Retry class.
    pub class: ErrorClass,
    /// The service's error code, when it gave one.
    pub code: Option<String>,
    /// The service's request ID, when it answered (what AWS support asks for).
    pub request_id: Option<String>,
    /// Human message (names the resource and the call).
    pub message: String,
    /// The underlying error.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StepError {
    /// A permanent error with a message.
    pub fn permanent(message: impl Into<String>) -> Self {
        StepError { class: ErrorClass::Permanent, code: None, request_id: None, message: message.into(), source: None }
    }

    /// A transient error with a message.
    pub fn transient(message: impl Into<String>) -> Self {
        StepError { class: ErrorClass::Transient, code: None, request_id: None, message: message.into(), source: None }
    }

    /// Whether the retry loop may try again.
    pub fn is_retryable(&self) -> bool {
        self.class != ErrorClass::Permanent
    }
}

/// Which half of a step an operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// Create the resource.
    Create,
    /// Change it in place.
    Update,
    /// Delete it.
    Delete,
}

/// One unit of work handed to an [`Executor`].
#[derive(Debug, Clone)]
pub struct Operation {
    /// What to do.
    pub kind: OpKind,
    /// The plan step it belongs to.
    pub step: Arc<Step>,
}

/// Physical IDs known so far, by logical key: discovered ones, then the ones creates return.
#[derive(Debug, Default)]
pub struct Resolved(Mutex<HashMap<String, String>>);

impl Resolved {
    /// The physical ID of `key`, if known.
    pub fn get(&self, key: &str) -> Option<String> {
        self.0.lock().expect("resolved map").get(key).cloned()
    }
    fn set(&self, key: &str, id: String) {
        self.0.lock().expect("resolved map").insert(key.to_string(), id);
    }
    fn remove(&self, key: &str) {
        self.0.lock().expect("resolved map").remove(key);
    }
}

/// What an executor sees of the run it is part of.
#[derive(Debug, Clone)]
pub struct OpContext {
    /// 1-based attempt number of this call.
    pub attempt: u32,
    /// Step ID, for events.
    pub step_id: String,
    /// Event sink.
    pub events: EventSink,
    /// Polling and timeout settings for waiters.
    pub waits: WaitOptions,
    resolved: Arc<Resolved>,
    leftovers: Arc<Mutex<Vec<Leftover>>>,
}

impl OpContext {
    /// The physical ID of a resource this one depends on.
    pub fn physical_id(&self, key: &str) -> Result<String, StepError> {
        self.resolved.get(key).ok_or_else(|| StepError::permanent(format!("`{key}` has no physical ID yet")))
    }

    /// A stable idempotency token (at most 64 characters) for creating `step`: the same after a crash, new
    /// when the wanted properties or the physical IDs of the dependencies change.
    pub fn client_token(&self, step: &Step) -> String {
        let mut h = Sha256::new();
        h.update(step.key.as_bytes());
        h.update([0]);
        if let Some(d) = &step.desired {
            h.update(serde_json::to_string(d).unwrap_or_default().as_bytes());
        }
        for dep in &step.depends_on {
            h.update([0]);
            h.update(dep.as_bytes());
            h.update([1]);
            h.update(self.resolved.get(dep).unwrap_or_default().as_bytes());
        }
        let digest = h.finalize();
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!("eksodus-{hex}")
    }

    /// Records something that could not be removed, or was removed though not owned; also emits an event.
    pub fn leftover(&self, resource: impl Into<String>, reason: impl Into<String>) {
        let l = Leftover { resource: resource.into(), reason: reason.into() };
        self.events.emit(Event::Leftover { resource: l.resource.clone(), reason: l.reason.clone() });
        self.leftovers.lock().expect("leftovers").push(l);
    }

    /// Polls until `poll` reports ready, fails, or `timeout` passes. Transient errors while polling are
    /// retried; the interval grows from `waits.initial_interval` to `waits.max_interval`.
    pub async fn wait_until<T, F, Fut>(&self, what: &str, timeout: Duration, mut poll: F) -> Result<T, StepError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<WaitState<T>, StepError>>,
    {
        let start = Instant::now();
        let mut interval = self.waits.initial_interval;
        let mut transient_errors = 0;
        loop {
            match poll().await {
                Ok(WaitState::Ready(v)) => return Ok(v),
                Ok(WaitState::Failed(why)) => return Err(StepError::permanent(format!("{what}: {why}"))),
                Ok(WaitState::Pending(status)) => {
                    self.events.emit(Event::StepWaiting {
                        id: self.step_id.clone(),
                        status,
                        elapsed_ms: start.elapsed().as_millis() as u64,
                    });
                }
                Err(e) if e.is_retryable() && transient_errors < 20 => transient_errors += 1,
                Err(e) => return Err(e),
            }
            if start.elapsed() >= timeout {
                return Err(StepError::permanent(format!("timed out after {}s waiting for {what}", timeout.as_secs())));
            }
            tokio::time::sleep(interval.min(timeout.saturating_sub(start.elapsed()))).await;
            interval = (interval * 2).min(self.waits.max_interval);
        }
    }
}

/// What a waiter's poll found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitState<T> {
    /// Done, with a value.
    Ready(T),
    /// Not yet; the current status.
    Pending(String),
    /// It will never get there; why.
    Failed(String),
}

/// Something left behind, or removed though it was not ours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leftover {
    /// The resource (`eni-0abc in subnet-0def`).
    pub resource: String,
    /// Why.
    pub reason: String,
}

/// The per-resource-kind code the engine drives.
pub trait Executor: Send + Sync {
    /// Runs one attempt of one operation, returning the resource's physical ID (for creates).
    fn execute<'a>(&'a self, op: &'a Operation, ctx: &'a OpContext)
        -> BoxFuture<'a, Result<Option<String>, StepError>>;
}

/// Dispatches each operation to the executor of its resource kind, so one plan (one DAG) can span
/// components: the network, IAM, access entries, ...
#[derive(Default)]
pub struct Router<'a> {
    routes: Vec<(&'a [&'a str], &'a dyn Executor)>,
}

impl<'a> Router<'a> {
    /// An empty router.
    pub fn new() -> Self {
        Router { routes: Vec::new() }
    }

    /// Sends operations on `kinds` to `exec`.
    pub fn route(mut self, kinds: &'a [&'a str], exec: &'a dyn Executor) -> Self {
        self.routes.push((kinds, exec));
        self
    }
}

impl std::fmt::Debug for Router<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.routes.iter().map(|(k, _)| k)).finish()
    }
}

impl Executor for Router<'_> {
    fn execute<'b>(
        &'b self,
        op: &'b Operation,
        ctx: &'b OpContext,
    ) -> BoxFuture<'b, Result<Option<String>, StepError>> {
        match self.routes.iter().find(|(kinds, _)| kinds.contains(&op.step.kind.as_str())) {
            Some((_, exec)) => exec.execute(op, ctx),
            None => Box::pin(async move {
                Err(StepError::permanent(format!("{}: no executor handles kind {}", op.step.id, op.step.kind)))
            }),
        }
    }
}

/// Waiter polling settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitOptions {
    /// First poll interval.
    pub initial_interval: Duration,
    /// Longest poll interval.
    pub max_interval: Duration,
    /// Default timeout for a waiter.
    pub timeout: Duration,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions {
            initial_interval: Duration::from_secs(2),
            max_interval: Duration::from_secs(15),
            timeout: Duration::from_secs(20 * 60),
        }
    }
}

/// Engine settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Operations in flight at once.
    pub concurrency: usize,
    /// Attempts per operation before it fails.
    pub max_attempts: u32,
    /// Backoff after the first transient failure (doubled each time, with jitter).
    pub base_delay: Duration,
    /// Backoff after the first throttling failure.
    pub throttle_base_delay: Duration,
    /// Longest backoff.
    pub max_delay: Duration,
    /// Waiter settings handed to executors.
    pub waits: WaitOptions,
    /// The retry policy of each AWS or Kubernetes call an executor makes ([`crate::retry`]).
    pub calls: crate::retry::Policy,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            concurrency: 16,
            max_attempts: 10,
            base_delay: Duration::from_millis(200),
            throttle_base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
            waits: WaitOptions::default(),
            calls: crate::retry::Policy::default(),
        }
    }
}

impl ApplyOptions {
    /// Short delays, for tests and the local emulator.
    pub fn fast() -> Self {
        ApplyOptions {
            base_delay: Duration::from_millis(5),
            throttle_base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(200),
            waits: WaitOptions {
                initial_interval: Duration::from_millis(20),
                max_interval: Duration::from_millis(200),
                timeout: Duration::from_secs(60),
            },
            calls: crate::retry::Policy::fast(),
            ..Self::default()
        }
    }
}

/// How one operation ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// It succeeded.
    Done {
        /// Physical ID created or touched.
        physical_id: Option<String>,
        /// Attempts it took.
        attempts: u32,
    },
    /// It failed after retries.
    Failed {
        /// The last error.
        error: String,
        /// Its class.
        class: ErrorClass,
        /// Its service code.
        code: Option<String>,
    },
    /// It did not run because a dependency failed.
    Skipped {
        /// The failed operation it waited for.
        because: String,
    },
}

/// One operation's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpReport {
    /// Step ID.
    pub id: String,
    /// Which half of the step.
    pub op: OpKind,
    /// Result.
    pub outcome: Outcome,
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct ApplyReport {
    /// Every operation, in completion order.
    pub ops: Vec<OpReport>,
    /// Things left behind or removed though not owned.
    pub leftovers: Vec<Leftover>,
    /// Wall time in milliseconds.
    pub elapsed_ms: u64,
}

impl ApplyReport {
    /// Whether every operation succeeded.
    pub fn is_success(&self) -> bool {
        self.ops.iter().all(|o| matches!(o.outcome, Outcome::Done { .. }))
    }

    /// Converts a partial failure into [`Error::ApplyIncomplete`].
    pub fn into_result(self) -> Result<Self, Error> {
        let failed = self.ops.iter().filter(|o| matches!(o.outcome, Outcome::Failed { .. })).count();
        let skipped = self.ops.iter().filter(|o| matches!(o.outcome, Outcome::Skipped { .. })).count();
        if failed + skipped == 0 {
            Ok(self)
        } else {
            Err(Error::ApplyIncomplete { failed, skipped })
        }
    }

    /// The failed operations with their errors.
    pub fn failures(&self) -> impl Iterator<Item = (&str, &str)> {
        self.ops.iter().filter_map(|o| match &o.outcome {
            Outcome::Failed { error, .. } => Some((o.id.as_str(), error.as_str())),
            _ => None,
        })
    }
}

/// A plan turned into operations and their ordering edges.
#[derive(Debug)]
pub(crate) struct OpGraph {
    pub(crate) ops: Vec<Operation>,
    /// `deps[i]`: operations that must finish before `i` starts.
    pub(crate) deps: Vec<Vec<usize>>,
    weights: Vec<u32>,
}

impl OpGraph {
    pub(crate) fn build(plan: &Plan) -> Result<Self, Error> {
        let mut ops = Vec::new();
        let mut weights = Vec::new();
        // per step: (forward op index, delete op index)
        let mut fwd: HashMap<&str, usize> = HashMap::new();
        let mut del_by_step: Vec<(usize, &Step)> = Vec::new();
        let mut fwd_by_step: Vec<(usize, &Step)> = Vec::new();
        for s in &plan.steps {
            let st = Arc::new(s.clone());
            match s.action {
                Action::NoOp => {}
                Action::Create | Action::Update => {
                    let kind = if s.action == Action::Create { OpKind::Create } else { OpKind::Update };
                    ops.push(Operation { kind, step: st });
                    weights.push(s.calls);
                    fwd.insert(s.key.as_str(), ops.len() - 1);
                    fwd_by_step.push((ops.len() - 1, s));
                }
                Action::Delete => {
                    ops.push(Operation { kind: OpKind::Delete, step: st });
                    weights.push(s.calls);
                    del_by_step.push((ops.len() - 1, s));
                }
                Action::Replace => {
                    ops.push(Operation { kind: OpKind::Delete, step: st.clone() });
                    weights.push(s.delete_calls);
                    del_by_step.push((ops.len() - 1, s));
                    ops.push(Operation { kind: OpKind::Create, step: st });
                    weights.push(s.calls);
                    fwd.insert(s.key.as_str(), ops.len() - 1);
                    fwd_by_step.push((ops.len() - 1, s));
                }
            }
        }
        let mut deps: Vec<HashSet<usize>> = vec![HashSet::new(); ops.len()];
        let planned: HashSet<&str> =
            plan.steps.iter().filter(|s| s.action != Action::Delete).map(|s| s.key.as_str()).collect();
        // A replaced step's create runs after its own delete.
        for (i, s) in &fwd_by_step {
            if s.action == Action::Replace {
                deps[*i].insert(i - 1);
            }
        }
        // Forward ops after the forward ops of what they depend on.
        for (i, s) in &fwd_by_step {
            for d in &s.depends_on {
                if let Some(&j) = fwd.get(d.as_str()) {
                    deps[*i].insert(j);
                } else if !planned.contains(d.as_str()) {
                    return Err(Error::MissingDependency { step: s.id.clone(), missing: d.clone() });
                }
            }
        }
        // Deletes after every op of steps whose existing resource sits on the deleted one.
        for (i, s) in &del_by_step {
            for (j, op) in ops.iter().enumerate() {
                if j == *i || op.kind == OpKind::Create {
                    continue;
                }
                let other = &op.step;
                if other.id != s.id && other.observed_depends_on.iter().any(|d| d == &s.key) {
                    deps[*i].insert(j);
                }
            }
        }
        // Creates after deletes of the same kind (a deleted subnet frees the CIDR a new one takes).
        for (i, s) in &fwd_by_step {
            if ops[*i].kind != OpKind::Create {
                continue;
            }
            for (j, d) in &del_by_step {
                if d.kind == s.kind && !deps[*j].contains(i) {
                    deps[*i].insert(*j);
                }
            }
        }
        let deps: Vec<Vec<usize>> = deps
            .into_iter()
            .map(|s| {
                let mut v: Vec<usize> = s.into_iter().collect();
                v.sort_unstable();
                v
            })
            .collect();
        let g = OpGraph { ops, deps, weights };
        g.topo_order()?;
        Ok(g)
    }

    fn topo_order(&self) -> Result<Vec<usize>, Error> {
        let n = self.ops.len();
        let mut indeg: Vec<usize> = self.deps.iter().map(Vec::len).collect();
        let mut rdeps = vec![Vec::new(); n];
        for (i, ds) in self.deps.iter().enumerate() {
            for &d in ds {
                rdeps[d].push(i);
            }
        }
        let mut ready: Vec<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(i) = ready.pop() {
            order.push(i);
            for &j in &rdeps[i] {
                indeg[j] -= 1;
                if indeg[j] == 0 {
                    ready.push(j);
                }
            }
        }
        if order.len() < n {
            let cyc: Vec<String> = (0..n)
                .filter(|&i| indeg[i] > 0)
                .map(|i| format!("{:?} {}", self.ops[i].kind, self.ops[i].step.id))
                .collect();
            return Err(Error::Cycle(cyc));
        }
        Ok(order)
    }

    /// For each operation, the heaviest chain from it to the end of the plan (itself included): starting
    /// the ready operation with the largest tail first keeps the critical path moving (list scheduling).
    pub(crate) fn tails(&self) -> Vec<u32> {
        let order = self.topo_order().unwrap_or_default();
        let mut rdeps = vec![Vec::new(); self.ops.len()];
        for (i, ds) in self.deps.iter().enumerate() {
            for &d in ds {
                rdeps[d].push(i);
            }
        }
        let mut tail = vec![0u32; self.ops.len()];
        for &i in order.iter().rev() {
            tail[i] = self.weights[i] + rdeps[i].iter().map(|&j| tail[j]).max().unwrap_or(0);
        }
        tail
    }

    pub(crate) fn critical_path(&self) -> u32 {
        let order = self.topo_order().unwrap_or_default();
        let mut finish = vec![0u32; self.ops.len()];
        for &i in &order {
            let start = self.deps[i].iter().map(|&d| finish[d]).max().unwrap_or(0);
            finish[i] = start + self.weights[i];
        }
        finish.into_iter().max().unwrap_or(0)
    }
}

/// Applies plans.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    /// Settings.
    pub options: ApplyOptions,
}

impl Engine {
    /// An engine with these settings.
    pub fn new(options: ApplyOptions) -> Self {
        Engine { options }
    }

    /// Runs every operation of `plan` in dependency order. Independent branches go on when one fails; the
    /// failed operation's dependents are skipped. The report lists every operation's outcome.
    pub async fn apply(&self, plan: &Plan, exec: &dyn Executor, events: &EventSink) -> Result<ApplyReport, Error> {
        let graph = OpGraph::build(plan)?;
        let start = Instant::now();
        let resolved = Arc::new(Resolved::default());
        for s in &plan.steps {
            if let (Some(id), true) = (&s.physical_id, s.id == s.key) {
                resolved.set(&s.key, id.clone());
            }
        }
        let leftovers = Arc::new(Mutex::new(Vec::new()));
        events.emit(Event::PhaseStarted { phase: "apply".into(), total: graph.ops.len() });

        let n = graph.ops.len();
        let mut remaining: Vec<usize> = graph.deps.iter().map(Vec::len).collect();
        let mut rdeps = vec![Vec::new(); n];
        for (i, ds) in graph.deps.iter().enumerate() {
            for &d in ds {
                rdeps[d].push(i);
            }
        }
        let mut failed_because: Vec<Option<String>> = vec![None; n];
        let tails = graph.tails();
        // `ready` is popped from the end: keep it sorted so the largest tail (then plan order) comes first
        let sort_ready = |ready: &mut Vec<usize>| ready.sort_by_key(|&i| (tails[i], std::cmp::Reverse(i)));
        let mut ready: Vec<usize> = (0..n).filter(|&i| remaining[i] == 0).collect();
        sort_ready(&mut ready);
        let mut running = FuturesUnordered::new();
        let mut report = ApplyReport::default();

        let slots = self.options.concurrency.max(1);
        loop {
            // start ready operations, largest tail first, while slots are free (skips take no slot)
            while running.len() < slots {
                let Some(i) = ready.pop() else { break };
                let op = &graph.ops[i];
                if let Some(because) = failed_because[i].clone() {
                    events.emit(Event::StepSkipped { id: op.step.id.clone(), because: because.clone() });
                    report.ops.push(OpReport {
                        id: op.step.id.clone(),
                        op: op.kind,
                        outcome: Outcome::Skipped { because },
                    });
                    let id = op.step.id.clone();
                    for &j in &rdeps[i] {
                        failed_because[j].get_or_insert_with(|| id.clone());
                        remaining[j] -= 1;
                        if remaining[j] == 0 {
                            ready.push(j);
                        }
                    }
                    continue;
                }
                let ctx = OpContext {
                    attempt: 1,
                    step_id: op.step.id.clone(),
                    events: events.clone(),
                    waits: self.options.waits,
                    resolved: resolved.clone(),
                    leftovers: leftovers.clone(),
                };
                let opts = self.options;
                running.push(async move { (i, run_op(op, ctx, exec, opts).await) });
            }
            let Some((i, result)) = running.next().await else { break };
            let ready_before = ready.len();
            let op = &graph.ops[i];
            let outcome = match result {
                Ok((pid, attempts)) => {
                    match op.kind {
                        OpKind::Create | OpKind::Update => {
                            if let Some(id) = &pid {
                                resolved.set(&op.step.key, id.clone());
                            }
                        }
                        OpKind::Delete if op.step.id == op.step.key => resolved.remove(&op.step.key),
                        OpKind::Delete => {}
                    }
                    Outcome::Done { physical_id: pid, attempts }
                }
                Err(e) => {
                    for &j in &rdeps[i] {
                        failed_because[j].get_or_insert_with(|| op.step.id.clone());
                    }
                    Outcome::Failed { error: e.message.clone(), class: e.class, code: e.code.clone() }
                }
            };
            report.ops.push(OpReport { id: op.step.id.clone(), op: op.kind, outcome });
            for &j in &rdeps[i] {
                remaining[j] -= 1;
                if remaining[j] == 0 {
                    ready.push(j);
                }
            }
            if ready.len() != ready_before {
                sort_ready(&mut ready);
            }
        }
        report.leftovers = std::mem::take(&mut *leftovers.lock().expect("leftovers"));
        report.elapsed_ms = start.elapsed().as_millis() as u64;
        events.emit(Event::PhaseFinished { phase: "apply".into(), elapsed_ms: report.elapsed_ms });
        Ok(report)
    }
}

async fn run_op(
    op: &Operation,
    mut ctx: OpContext,
    exec: &dyn Executor,
    opts: ApplyOptions,
) -> Result<(Option<String>, u32), StepError> {
    let action = match op.kind {
        OpKind::Create if op.step.action == Action::Replace => Action::Replace,
        OpKind::Create => Action::Create,
        OpKind::Update => Action::Update,
        OpKind::Delete => Action::Delete,
    };
    ctx.events.emit(Event::StepStarted { id: op.step.id.clone(), action });
    let start = Instant::now();
    let mut attempt = 1;
    loop {
        ctx.attempt = attempt;
        match exec.execute(op, &ctx).await {
            Ok(pid) => {
                ctx.events.emit(Event::StepFinished {
                    id: op.step.id.clone(),
                    action,
                    physical_id: pid.clone(),
                    elapsed_ms: start.elapsed().as_millis() as u64,
                });
                return Ok((pid, attempt));
            }
            Err(e) if may_retry(&e, attempt, &opts) => {
                let delay = backoff(&opts, e.class, attempt);
                ctx.events.emit(Event::StepRetrying {
                    id: op.step.id.clone(),
                    attempt,
                    delay_ms: delay.as_millis() as u64,
                    error: e.message.clone(),
                });
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            Err(e) => {
                ctx.events.emit(Event::StepFailed { id: op.step.id.clone(), error: e.message.clone() });
                return Err(e);
            }
        }
    }
}

/// Whether an operation (or a sequence of calls) is tried again after `e`. Each AWS and Kubernetes call is
/// retried on its own ([`crate::retry`]), so what reaches this level is an ambiguous write (a create that may
/// have happened: the operation looks before it creates again), an eventual-consistency answer, or throttling
/// that outlasted a call's whole budget, which two more tries at most will not change.
fn may_retry(e: &StepError, attempt: u32, opts: &ApplyOptions) -> bool {
    match e.class {
        ErrorClass::Permanent => false,
        ErrorClass::Throttling => attempt < opts.max_attempts.min(3),
        ErrorClass::Transient => attempt < opts.max_attempts,
    }
}

/// Runs a sequence of calls with the retry policy the engine applies to operations (what `may_retry` calls retryable).
pub async fn retry<T, F, Fut>(opts: &ApplyOptions, mut call: F) -> Result<T, StepError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StepError>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) if may_retry(&e, attempt, opts) => {
                tokio::time::sleep(backoff(opts, e.class, attempt)).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Exponential backoff with "equal jitter": half fixed, half random, capped at `max_delay`.
fn backoff(opts: &ApplyOptions, class: ErrorClass, attempt: u32) -> Duration {
    let base = if class == ErrorClass::Throttling { opts.throttle_base_delay } else { opts.base_delay };
    let exp = base.saturating_mul(1u32 << (attempt - 1).min(16)).min(opts.max_delay);
    let half = exp / 2;
    half + Duration::from_micros(rand::thread_rng().gen_range(0..=half.as_micros() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{diff, Cost, Desired, Observed};
    use serde_json::json;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn d(key: &str, deps: &[&str], cidr: &str) -> Desired {
        Desired {
            key: key.into(),
            kind: key.split('/').next().unwrap().into(),
            props: json!({ "cidr": cidr }).as_object().unwrap().clone(),
            immutable: vec!["cidr".into()],
            depends_on: deps.iter().map(|s| s.to_string()).collect(),
            cost: Cost::new(2, 1, 1),
        }
    }

    /// Records the order of operations, fails some a given number of times.
    struct Recorder {
        log: Mutex<Vec<String>>,
        flaky: HashMap<String, (u32, ErrorClass)>,
        calls: AtomicU32,
        in_flight: AtomicU32,
        max_in_flight: AtomicU32,
    }

    impl Recorder {
        fn new(flaky: &[(&str, u32, ErrorClass)]) -> Self {
            Recorder {
                log: Mutex::default(),
                flaky: flaky.iter().map(|(k, n, c)| (k.to_string(), (*n, *c))).collect(),
                calls: AtomicU32::new(0),
                in_flight: AtomicU32::new(0),
                max_in_flight: AtomicU32::new(0),
            }
        }
    }

    impl Executor for Recorder {
        fn execute<'a>(
            &'a self,
            op: &'a Operation,
            ctx: &'a OpContext,
        ) -> BoxFuture<'a, Result<Option<String>, StepError>> {
            Box::pin(async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                self.max_in_flight.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                if let Some((n, class)) = self.flaky.get(&op.step.id) {
                    if ctx.attempt <= *n {
                        return Err(StepError {
                            class: *class,
                            code: None,
                            request_id: None,
                            message: "injected".into(),
                            source: None,
                        });
                    }
                }
                for dep in &op.step.depends_on {
                    if op.kind != OpKind::Delete {
                        ctx.physical_id(dep)?;
                    }
                }
                self.log.lock().unwrap().push(format!("{:?} {}", op.kind, op.step.id));
                Ok(Some(format!("id-{}", op.step.key)))
            })
        }
    }

    fn pos(log: &[String], entry: &str) -> usize {
        log.iter().position(|l| l == entry).unwrap_or_else(|| panic!("{entry} not in {log:?}"))
    }

    #[tokio::test]
    async fn creates_follow_dependencies_and_retries_converge() {
        let want = [
            d("vpc", &[], "10.0.0.0/16"),
            d("subnet/a", &["vpc"], "10.0.0.0/24"),
            d("subnet/b", &["vpc"], "10.0.1.0/24"),
            d("rt/a", &["subnet/a"], ""),
        ];
        let plan = diff(&want, &[]);
        assert_eq!(plan.critical_path_calls().unwrap(), 6);
        let rec = Recorder::new(&[("subnet/a", 2, ErrorClass::Throttling), ("vpc", 1, ErrorClass::Transient)]);
        let report = Engine::new(ApplyOptions::fast()).apply(&plan, &rec, &EventSink::discard()).await.unwrap();
        assert!(report.is_success(), "{report:#?}");
        let log = rec.log.lock().unwrap().clone();
        assert!(pos(&log, "Create vpc") < pos(&log, "Create subnet/a"));
        assert!(pos(&log, "Create subnet/a") < pos(&log, "Create rt/a"));
        assert_eq!(rec.calls.load(Ordering::SeqCst), 4 + 3);
    }

    #[tokio::test]
    async fn a_permanent_failure_skips_dependents_only() {
        let want =
            [d("vpc", &[], "x"), d("subnet/a", &["vpc"], "a"), d("rt/a", &["subnet/a"], ""), d("eip/a", &[], "")];
        let plan = diff(&want, &[]);
        let rec = Recorder::new(&[("subnet/a", 99, ErrorClass::Permanent)]);
        let report = Engine::new(ApplyOptions::fast()).apply(&plan, &rec, &EventSink::discard()).await.unwrap();
        let out: HashMap<_, _> = report.ops.iter().map(|o| (o.id.as_str(), &o.outcome)).collect();
        assert!(matches!(out["subnet/a"], Outcome::Failed { .. }));
        assert!(matches!(out["rt/a"], Outcome::Skipped { .. }));
        assert!(matches!(out["eip/a"], Outcome::Done { .. }));
        assert!(matches!(out["vpc"], Outcome::Done { .. }));
        assert!(matches!(report.into_result(), Err(Error::ApplyIncomplete { failed: 1, skipped: 1 })));
    }

    #[tokio::test]
    async fn deletes_run_in_reverse_dependency_order_and_replace_deletes_first() {
        let obs = |key: &str, deps: &[&str]| Observed {
            key: key.into(),
            kind: key.split('/').next().unwrap().into(),
            physical_id: format!("old-{key}"),
            props: json!({"cidr": "old"}).as_object().unwrap().clone(),
            depends_on: deps.iter().map(|s| s.to_string()).collect(),
            delete_cost: 1,
        };
        let observed = [obs("vpc", &[]), obs("subnet/a", &["vpc"]), obs("rt/a", &["subnet/a"])];
        let plan = Plan::destroy(&observed);
        let rec = Recorder::new(&[]);
        Engine::new(ApplyOptions::fast())
            .apply(&plan, &rec, &EventSink::discard())
            .await
            .unwrap()
            .into_result()
            .unwrap();
        let log = rec.log.lock().unwrap().clone();
        assert!(pos(&log, "Delete rt/a@old-rt/a") < pos(&log, "Delete subnet/a@old-subnet/a"));
        assert!(pos(&log, "Delete subnet/a@old-subnet/a") < pos(&log, "Delete vpc@old-vpc"));

        // replace the VPC: everything on it is replaced, deletes first
        let want = [d("vpc", &[], "new"), d("subnet/a", &["vpc"], "old"), d("rt/a", &["subnet/a"], "old")];
        let plan = diff(&want, &observed);
        assert_eq!(plan.summary().replace, 3);
        let rec = Recorder::new(&[]);
        Engine::new(ApplyOptions::fast())
            .apply(&plan, &rec, &EventSink::discard())
            .await
            .unwrap()
            .into_result()
            .unwrap();
        let log = rec.log.lock().unwrap().clone();
        assert!(pos(&log, "Delete rt/a") < pos(&log, "Delete subnet/a"));
        assert!(pos(&log, "Delete subnet/a") < pos(&log, "Delete vpc"));
        assert!(pos(&log, "Delete vpc") < pos(&log, "Create vpc"));
        assert!(pos(&log, "Create vpc") < pos(&log, "Create subnet/a"));
    }

    #[tokio::test]
    async fn concurrency_is_bounded() {
        let want: Vec<Desired> = (0..20).map(|i| d(&format!("eip/{i}"), &[], "")).collect();
        let plan = diff(&want, &[]);
        let rec = Recorder::new(&[]);
        let opts = ApplyOptions { concurrency: 3, ..ApplyOptions::fast() };
        Engine::new(opts).apply(&plan, &rec, &EventSink::discard()).await.unwrap().into_result().unwrap();
        assert_eq!(rec.max_in_flight.load(Ordering::SeqCst), 3);
        assert_eq!(plan.critical_path_calls().unwrap(), 2);
    }

    #[tokio::test]
    async fn the_longest_chain_starts_first() {
        // with one slot, the head of the longest chain must run before the independent single steps
        let mut want: Vec<Desired> = (0..5).map(|i| d(&format!("eip/{i}"), &[], "")).collect();
        want.push(d("vpc", &[], "x"));
        want.push(d("subnet/a", &["vpc"], "a"));
        want.push(d("rt/a", &["subnet/a"], ""));
        let plan = diff(&want, &[]);
        let rec = Recorder::new(&[]);
        let opts = ApplyOptions { concurrency: 1, ..ApplyOptions::fast() };
        Engine::new(opts).apply(&plan, &rec, &EventSink::discard()).await.unwrap().into_result().unwrap();
        let log = rec.log.lock().unwrap().clone();
        assert_eq!(log[0], "Create vpc", "{log:?}");
        assert_eq!(log[1], "Create subnet/a", "{log:?}");
    }

    #[test]
    fn missing_dependency_is_an_error() {
        let plan = diff(&[d("subnet/a", &["vpc"], "a")], &[]);
        assert!(matches!(plan.critical_path_calls(), Err(Error::MissingDependency { .. })));
    }

    #[test]
    fn cycles_are_reported() {
        let plan = diff(&[d("a", &["b"], ""), d("b", &["a"], "")], &[]);
        assert!(matches!(plan.critical_path_calls(), Err(Error::Cycle(_))));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let o = ApplyOptions::default();
        let b1 = backoff(&o, ErrorClass::Transient, 1);
        assert!(b1 >= Duration::from_millis(100) && b1 <= Duration::from_millis(200));
        let t1 = backoff(&o, ErrorClass::Throttling, 1);
        assert!(t1 >= Duration::from_millis(250));
        assert!(backoff(&o, ErrorClass::Transient, 30) <= o.max_delay);
    }
}
