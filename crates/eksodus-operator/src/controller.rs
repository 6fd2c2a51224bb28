//! The `Environment` controller: reconcile = validate, plan, then apply (mode `Apply`) or report drift (mode
//! `Observe`); a finalizer runs `down` on deletion and keeps the resource while owned resources remain. Every
//! reconcile starts from discovery (tags and idempotency tokens, no state file), so a reconcile cut short by a
//! crash, a lost lease or a restart is simply run again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_credential_types::provider::SharedCredentialsProvider;
use eksodus::aws::AwsTarget;
use eksodus::{ApplyOptions, EnvPlan, EnvironmentSpec, EventSink, KubeAccess};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{finalizer, Event as Finalize};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::{Api, Resource, ResourceExt};
use rand::Rng;

use crate::calls::CallCounter;
use crate::crd::{DeletionPolicy, Environment, EnvironmentStatus, LastReconcile, Mode, PlanSummary};
use crate::metrics::Metrics;
use crate::migration::Migration;
use crate::status::{self, Observation};
use crate::Error;

/// The finalizer on every `Environment` the operator has acted on.
pub const FINALIZER: &str = "eksodus.io/down";
/// The field manager of the operator's status writes.
pub const MANAGER: &str = "eksodus-operator";
/// Default seconds between drift checks of a converged environment.
pub const DEFAULT_DRIFT_INTERVAL: Duration = Duration::from_secs(600);
/// Plan steps listed in status, at most.
const MAX_STEPS: usize = 50;

/// How the AWS side of the environments' Kubernetes work is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClusterAccess {
    /// Through each cluster's endpoint with native EKS tokens from the environment's credentials.
    #[default]
    Tokens,
    /// Not at all (the local emulator's clusters have no API server): the Kubernetes-side steps are skipped.
    None,
}

/// The operator's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Watch only this namespace (default: all).
    pub namespace: Option<String>,
    /// Where AWS is (region comes from each environment's spec): the standard chain, or the local emulator.
    pub aws: AwsTarget,
    /// How clusters' API servers are reached.
    pub cluster_access: ClusterAccess,
    /// Engine options.
    pub options: ApplyOptions,
    /// Environments reconciled at once, at most.
    pub concurrency: u16,
    /// Drift check interval when an environment does not set one.
    pub drift_interval: Duration,
    /// How long `down` waits for the cluster's load balancers to go.
    pub cleanup_timeout: Duration,
    /// This replica's name (events' reporting instance, the lease holder).
    pub identity: String,
    /// Where migrations keep their files (bundles exported from snapshots, apply journals).
    pub work_dir: std::path::PathBuf,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            namespace: None,
            aws: AwsTarget::default(),
            cluster_access: ClusterAccess::Tokens,
            options: ApplyOptions::default(),
            concurrency: 8,
            drift_interval: DEFAULT_DRIFT_INTERVAL,
            cleanup_timeout: Duration::from_secs(300),
            identity: "eksodus-operator".into(),
            work_dir: std::env::temp_dir().join("eksodus-operator"),
        }
    }
}

/// What reconciles share.
pub struct Context {
    client: kube::Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    recorder: Recorder,
    failures: Mutex<HashMap<String, u32>>,
    confs: tokio::sync::Mutex<HashMap<String, SdkConfig>>,
    /// One HTTPS client (one connection pool) for every environment.
    http: aws_smithy_runtime_api::client::http::SharedHttpClient,
}

impl Context {
    /// A context for `client`, reporting to `metrics`.
    pub fn new(client: kube::Client, settings: Settings, metrics: Arc<Metrics>) -> Arc<Context> {
        let reporter = Reporter { controller: MANAGER.into(), instance: Some(settings.identity.clone()) };
        Arc::new(Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            settings,
            metrics,
            failures: Mutex::default(),
            confs: tokio::sync::Mutex::default(),
            http: {
                use aws_smithy_http_client::tls;
                aws_smithy_http_client::Builder::new()
                    .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
                    .build_https()
            },
        })
    }

    /// The Kubernetes client.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Counts one more failure in a row of `key` (a `kind` object) and says when to try again.
    fn failed(&self, kind: &str, key: String) -> Action {
        let n = {
            let mut f = self.failures.lock().expect("failures");
            let n = f.entry(key).or_default();
            *n = n.saturating_add(1);
            *n
        };
        self.metrics.reconciled(kind, "error", Duration::ZERO);
        Action::requeue(backoff(n, rand::thread_rng().gen_range(0.5..1.0)))
    }

    /// Forgets the failures in a row of `key` (its backoff starts over).
    pub(crate) fn succeeded(&self, key: &str) {
        self.failures.lock().expect("failures").remove(key);
    }

    /// The SDK configuration for `region` (loaded once per region: the credential chain is asked once, its
    /// providers refresh themselves).
    async fn base_conf(&self, region: &str) -> SdkConfig {
        let mut confs = self.confs.lock().await;
        if let Some(c) = confs.get(region) {
            return c.clone();
        }
        let c = AwsTarget { region: region.to_string(), ..self.settings.aws.clone() }.load().await;
        confs.insert(region.to_string(), c.clone());
        c
    }

    /// The environment of `o` with calls counted into `counter`.
    pub(crate) async fn environment(
        &self,
        o: &Environment,
        spec: EnvironmentSpec,
        counter: &CallCounter,
    ) -> Result<eksodus::Environment, Error> {
        let base = self.base_conf(&spec.region).await;
        let mut b = base.to_builder();
        if let Some(secret) = &o.spec.credentials.secret_name {
            b.set_credentials_provider(Some(
                self.secret_credentials(&o.namespace().unwrap_or_default(), secret).await?,
            ));
        }
        // the configuration carries no client when the SDK's default is used: make that default explicit
        let http = base.http_client().unwrap_or_else(|| self.http.clone());
        b.set_http_client(Some(counter.wrap(http, Some(self.metrics.aws_calls.clone()))));
        let conf = b.build();
        let mut env = eksodus::Environment::builder(spec).aws(&conf).options(self.settings.options);
        if self.settings.cluster_access == ClusterAccess::None {
            env = env.kube(KubeAccess::None);
        }
        env.build().map_err(env_err)
    }

    /// The SDK configuration for a migration's S3 source in `region` (the operator's own region by default),
    /// with the credentials of the Secret `secret` in `ns` when one is named, and calls counted in the metrics.
    pub(crate) async fn s3_conf(
        &self,
        region: Option<&str>,
        ns: &str,
        secret: Option<&str>,
    ) -> Result<SdkConfig, Error> {
        let base = self.base_conf(region.unwrap_or(&self.settings.aws.region)).await;
        let mut b = base.to_builder();
        if let Some(secret) = secret {
            b.set_credentials_provider(Some(self.secret_credentials(ns, secret).await?));
        }
        let http = base.http_client().unwrap_or_else(|| self.http.clone());
        b.set_http_client(Some(CallCounter::default().wrap(http, Some(self.metrics.aws_calls.clone()))));
        Ok(b.build())
    }

    async fn secret_credentials(&self, ns: &str, name: &str) -> Result<SharedCredentialsProvider, Error> {
        let bad = |message: String| Error::Credentials { secret: format!("{ns}/{name}"), message };
        let secret = Api::<Secret>::namespaced(self.client.clone(), ns)
            .get_opt(name)
            .await
            .map_err(|e| bad(e.to_string()))?
            .ok_or_else(|| bad("no such Secret".into()))?;
        let data = secret.data.unwrap_or_default();
        let field = |k: &str| data.get(k).map(|v| String::from_utf8_lossy(&v.0).trim().to_string());
        let (Some(id), Some(key)) = (field("AWS_ACCESS_KEY_ID"), field("AWS_SECRET_ACCESS_KEY")) else {
            return Err(bad("needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into()));
        };
        let creds = aws_credential_types::Credentials::new(id, key, field("AWS_SESSION_TOKEN"), None, "secret");
        Ok(SharedCredentialsProvider::new(creds))
    }

    async fn publish(&self, o: &Environment, type_: EventType, reason: &str, note: String) {
        let ev =
            KubeEvent { type_, reason: reason.into(), note: Some(note), action: "Reconcile".into(), secondary: None };
        // an event that cannot be written is not a reason to fail a reconcile
        let _ = self.recorder.publish(&ev, &o.object_ref(&())).await;
    }
}

/// The plan's counts.
pub fn summarize(p: &EnvPlan) -> PlanSummary {
    let s = p.plan.summary();
    let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    PlanSummary {
        create: n(s.create),
        update: n(s.update),
        replace: n(s.replace),
        delete: n(s.delete),
        deferred: n(p.deferred.len()),
    }
}

fn steps(p: &EnvPlan) -> Vec<String> {
    p.plan
        .steps
        .iter()
        .filter(|s| s.action != eksodus::core::plan::Action::NoOp)
        .map(|s| format!("{} {} ({})", s.action.symbol(), s.key, s.kind))
        .chain(p.deferred.iter().map(|d| format!("(later) {d}")))
        .take(MAX_STEPS)
        .collect()
}

/// One reconcile's bookkeeping: the status being built and the calls counted.
struct Pass<'a> {
    ctx: &'a Context,
    obj: &'a Environment,
    api: Api<Environment>,
    status: EnvironmentStatus,
    calls: CallCounter,
    start: Instant,
}

impl<'a> Pass<'a> {
    fn new(ctx: &'a Context, obj: &'a Environment) -> Self {
        let api = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
        Pass {
            ctx,
            obj,
            api,
            status: obj.status.clone().unwrap_or_default(),
            calls: CallCounter::default(),
            start: Instant::now(),
        }
    }

    fn generation(&self) -> i64 {
        self.obj.metadata.generation.unwrap_or(0)
    }

    /// Writes the status after `obs` (server-side apply: fields this manager no longer sets are removed).
    async fn write(&mut self, obs: &Observation) -> Result<(), Error> {
        let now = Timestamp::now().to_string();
        self.status.conditions = status::conditions(&self.status.conditions, obs, self.generation(), &now);
        self.status.observed_generation = self.generation();
        self.status.last_reconcile = Some(LastReconcile {
            time: now,
            duration_ms: self.start.elapsed().as_millis() as u64,
            aws_calls: self.calls.total(),
            aws_calls_by_operation: self.calls.snapshot(),
        });
        let body = serde_json::json!({
            "apiVersion": Environment::api_version(&()),
            "kind": Environment::kind(&()),
            "status": self.status,
        });
        self.api
            .patch_status(&self.obj.name_any(), &PatchParams::apply(MANAGER).force(), &Patch::Apply(body))
            .await
            .map_err(Error::Kube)?;
        Ok(())
    }

    /// Records a failure in status and returns it as the reconcile's error.
    async fn fail(&mut self, reason: &str, e: Error) -> Error {
        let obs = Observation::Failed { reason: reason.into(), message: e.to_string() };
        self.ctx.publish(self.obj, EventType::Warning, reason, e.to_string()).await;
        match self.write(&obs).await {
            Ok(()) => e,
            Err(w) => w,
        }
    }
}

fn env_err(e: eksodus::cluster::Error) -> Error {
    Error::from(eksodus::Error::from(e))
}

fn jittered(d: Duration) -> Duration {
    let f: f64 = rand::thread_rng().gen_range(0.9..1.1);
    d.mul_f64(f)
}

fn drift_interval(o: &Environment, ctx: &Context) -> Duration {
    o.spec.drift_interval_seconds.map(Duration::from_secs).unwrap_or(ctx.settings.drift_interval)
}

async fn apply(o: Arc<Environment>, ctx: &Context) -> Result<Action, Error> {
    let mut pass = Pass::new(ctx, &o);
    let requeue = Action::requeue(jittered(drift_interval(&o, ctx)));
    if o.spec.paused {
        pass.write(&Observation::Paused).await?;
        ctx.metrics.reconciled("Environment", "paused", pass.start.elapsed());
        return Ok(Action::await_change());
    }
    let spec = match o.environment_spec() {
        Ok(s) => {
            pass.status.field_errors.clear();
            s
        }
        Err(errs) => {
            // bad input: said in status, and nothing is asked of AWS
            let note = errs.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
            ctx.publish(&o, EventType::Warning, "InvalidSpec", note).await;
            pass.status.field_errors = errs.clone();
            pass.write(&Observation::Invalid(errs)).await?;
            ctx.metrics.reconciled("Environment", "invalid", pass.start.elapsed());
            return Ok(Action::await_change());
        }
    };
    if let Some(other) = claimed_by_another(&o, &spec, ctx).await? {
        let e = Error::NameConflict { name: spec.name.clone(), region: spec.region.clone(), other };
        let err = pass.fail("NameConflict", e).await;
        ctx.metrics.reconciled("Environment", "conflict", pass.start.elapsed());
        return match err {
            Error::NameConflict { .. } => Ok(requeue),
            other => Err(other),
        };
    }
    let env = match ctx.environment(&o, spec, &pass.calls).await {
        Ok(e) => e,
        Err(e) => return Err(pass.fail("CredentialsUnavailable", e).await),
    };
    let plan = match env.plan().await {
        Ok(p) => p,
        Err(e) => return Err(pass.fail("PlanFailed", env_err(e)).await),
    };
    pass.status.account = Some(plan.account.clone()).filter(|a| !a.is_empty());
    pass.status.cluster_endpoint = plan.cluster.as_ref().and_then(|c| c.endpoint.clone());
    let summary = summarize(&plan);
    pass.status.last_plan = summary;
    if plan.is_converged() {
        pass.status.plan_steps.clear();
        pass.write(&Observation::Converged).await?;
        ctx.metrics.reconciled("Environment", "converged", pass.start.elapsed());
        return Ok(requeue);
    }
    pass.status.plan_steps = steps(&plan);
    if o.spec.mode == Mode::Observe {
        let was = status::is_true(&pass.status.conditions, "Drifted");
        pass.write(&Observation::Drifted(summary)).await?;
        if !was {
            ctx.publish(&o, EventType::Normal, "Drifted", status::describe(&summary)).await;
        }
        ctx.metrics.reconciled("Environment", "drifted", pass.start.elapsed());
        return Ok(requeue);
    }
    let drift =
        pass.status.observed_generation == pass.generation() && status::is_true(&pass.status.conditions, "Ready");
    pass.write(&Observation::Applying { summary, drift }).await?;
    let reason = if drift { "RepairingDrift" } else { "Applying" };
    ctx.publish(&o, EventType::Normal, reason, status::describe(&summary)).await;
    let sink = EventSink::discard();
    match env.up_from(plan, &sink).await {
        Ok(report) => {
            pass.status.last_plan = summarize(&report.converged);
            pass.status.plan_steps.clear();
            pass.status.cluster_endpoint = report.converged.cluster.as_ref().and_then(|c| c.endpoint.clone());
            pass.write(&Observation::Converged).await?;
            let note = format!("converged in {} round(s), {} AWS call(s)", report.rounds.len(), pass.calls.total());
            ctx.publish(&o, EventType::Normal, "Converged", note).await;
            ctx.metrics.reconciled("Environment", "applied", pass.start.elapsed());
            Ok(requeue)
        }
        Err(e) => Err(pass.fail("ApplyFailed", env_err(e)).await),
    }
}

async fn cleanup(o: Arc<Environment>, ctx: &Context) -> Result<Action, Error> {
    let mut pass = Pass::new(ctx, &o);
    if o.spec.deletion_policy == DeletionPolicy::Orphan || o.spec.mode == Mode::Observe {
        // observe mode never changes AWS, deletion included
        let why = if o.spec.mode == Mode::Observe { "mode Observe" } else { "deletionPolicy Orphan" };
        ctx.publish(&o, EventType::Normal, "Orphaned", format!("{why}: AWS resources are left as they are")).await;
        ctx.metrics.reconciled("Environment", "orphaned", pass.start.elapsed());
        return Ok(Action::await_change());
    }
    let spec = match o.environment_spec() {
        Ok(s) => s,
        // no plan ever ran for it (no account was ever recorded), so it made nothing: nothing to remove
        Err(_) if pass.status.account.is_none() => {
            ctx.publish(&o, EventType::Normal, "Deleted", "the spec never validated: nothing was made".into()).await;
            ctx.metrics.reconciled("Environment", "deleted", pass.start.elapsed());
            return Ok(Action::await_change());
        }
        // it did make things, and down cannot be planned without a valid spec: fix it, or set Orphan
        Err(errs) => return Err(pass.fail("CannotDelete", Error::Invalid(errs)).await),
    };
    pass.write(&Observation::Deleting).await?;
    ctx.publish(&o, EventType::Normal, "Deleting", "down is removing the environment".into()).await;
    let env = match ctx.environment(&o, spec, &pass.calls).await {
        Ok(e) => e,
        Err(e) => return Err(pass.fail("CredentialsUnavailable", e).await),
    };
    let report = match env.down(&EventSink::discard(), ctx.settings.cleanup_timeout).await {
        Ok(r) => r,
        Err(e) => return Err(pass.fail("DownFailed", env_err(e)).await),
    };
    let mut left: Vec<String> = report.remaining.clone();
    left.extend(report.report.leftovers.iter().map(|l| format!("{} ({})", l.resource, l.reason)));
    left.extend(report.not_checked.iter().cloned());
    pass.status.leftovers = left;
    if !report.remaining.is_empty() {
        let e = Error::Leftovers(report.remaining.clone());
        pass.write(&Observation::Leftovers(report.remaining)).await?;
        ctx.publish(&o, EventType::Warning, "Leftovers", e.to_string()).await;
        ctx.metrics.reconciled("Environment", "error", pass.start.elapsed());
        return Err(e);
    }
    ctx.publish(
        &o,
        EventType::Normal,
        "Deleted",
        format!("down removed the environment ({} AWS calls)", pass.calls.total()),
    )
    .await;
    ctx.metrics.reconciled("Environment", "deleted", pass.start.elapsed());
    Ok(Action::await_change())
}

/// Another `Environment` (created earlier) whose spec names the same environment in the same region: two
/// resources would fight over one set of tagged AWS resources, so the later one is refused.
async fn claimed_by_another(o: &Environment, spec: &EnvironmentSpec, ctx: &Context) -> Result<Option<String>, Error> {
    let api: Api<Environment> = match &ctx.settings.namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let all = api.list(&ListParams::default()).await.map_err(Error::Kube)?;
    ctx.metrics.set_environments(all.items.len() as u64);
    let key = |e: &Environment| (e.metadata.creation_timestamp.clone().map(|t| t.0), e.uid());
    Ok(all
        .items
        .iter()
        .filter(|other| other.uid() != o.uid() && other.metadata.deletion_timestamp.is_none() && key(other) < key(o))
        .find(|other| other.environment_spec().is_ok_and(|s| s.name == spec.name && s.region == spec.region))
        .map(|other| format!("{}/{}", other.namespace().unwrap_or_default(), other.name_any())))
}

/// Reconciles one `Environment`.
pub async fn reconcile(o: Arc<Environment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = o.namespace().unwrap_or_default();
    let api: Api<Environment> = Api::namespaced(ctx.client.clone(), &ns);
    let key = format!("{ns}/{}", o.name_any());
    let r = finalizer(&api, FINALIZER, o, |event| async {
        match event {
            Finalize::Apply(o) => apply(o, &ctx).await,
            Finalize::Cleanup(o) => cleanup(o, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    if r.is_ok() {
        ctx.failures.lock().expect("failures").remove(&key);
    }
    r
}

/// After a failed reconcile: again after a jittered, exponentially growing delay (5 s doubling to 5 min), so
/// throttled or failing environments back off without holding the others up.
pub fn error_policy(o: Arc<Environment>, _e: &Error, ctx: Arc<Context>) -> Action {
    ctx.failed("Environment", format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any()))
}

/// The delay after the `n`th failure in a row, scaled by `jitter` (0.5..1: half jitter keeps a floor).
pub fn backoff(n: u32, jitter: f64) -> Duration {
    let base = 5u64.saturating_mul(1u64 << n.saturating_sub(1).min(16)).min(300);
    Duration::from_secs(base).mul_f64(jitter)
}

/// Runs the controllers until the watches end: `Environment`s (in `settings.namespace` or everywhere),
/// reconciled on spec, finalizer and deletion changes (not on the operator's own status writes) and on each
/// environment's drift interval; `Migration`s, on spec changes and while their workloads roll out.
pub async fn run(client: kube::Client, settings: Settings, metrics: Arc<Metrics>) -> Result<(), Error> {
    let api: Api<Environment> = match &settings.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    // the CRDs must be installed: say so at once instead of retrying a watch forever
    api.list(&ListParams::default().limit(1)).await.map_err(Error::CrdMissing)?;
    metrics.set_ready(true);
    let concurrency = settings.concurrency.max(1);
    let ctx = Context::new(client, settings, metrics);
    let (reader, writer) = reflector::store();
    let changes = |e: &Environment| {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (e.metadata.generation, &e.metadata.finalizers, e.metadata.deletion_timestamp.is_some()).hash(&mut h);
        Some(h.finish())
    };
    let stream = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(changes, Default::default());
    let environments = Controller::for_stream(stream, reader)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|_| futures::future::ready(()));
    let migrations: Api<Migration> = match &ctx.settings.namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    migrations.list(&ListParams::default().limit(1)).await.map_err(Error::CrdMissing)?;
    let (reader, writer) = reflector::store();
    let generation = |m: &Migration| m.metadata.generation.map(|g| g as u64);
    let stream = watcher(migrations, watcher::Config::default().any_semantic())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(generation, Default::default());
    let migrations = Controller::for_stream(stream, reader)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .run(crate::migration::reconcile, migration_error_policy, ctx)
        .for_each(|_| futures::future::ready(()));
    futures::join!(environments, migrations);
    Ok(())
}

/// After a failed migration reconcile: the same backoff as environments'.
fn migration_error_policy(m: Arc<Migration>, _e: &Error, ctx: Arc<Context>) -> Action {
    ctx.failed("Migration", format!("migration/{}/{}", m.namespace().unwrap_or_default(), m.name_any()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_ceiling() {
        let secs: Vec<u64> = (1..=9).map(|n| backoff(n, 1.0).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(backoff(1, 0.5), Duration::from_millis(2500));
        assert_eq!(backoff(u32::MAX, 1.0).as_secs(), 300);
    }

    #[test]
    fn spec_errors_are_listed_in_the_error() {
        let e = crate::crd::SpecError { field: "spec.environment.name".into(), message: "x".into() };
        assert_eq!(Error::Invalid(vec![e.clone()]).to_string(), "1 problem(s) in the spec: spec.environment.name: x");
    }
}
