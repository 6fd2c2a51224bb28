//! Live clusters (feature `kube`): export every listable resource of a source (preferred versions, paginated
//! lists; the source is only ever read), and apply a prepared set to a target with server-side apply: a
//! dry-run diff first, waves in order with bounded concurrency inside each, CRDs waited for until Established,
//! webhooks held until their Services have ready endpoints, a journal so an interrupted apply resumes and a
//! re-run is a no-op, and per-object errors (conflicts, immutable fields) that do not stop the rest.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use futures::FutureExt;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{verbs, ApiCapabilities, Discovery, Scope};
use kube::Client;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use eksodus_core::events::{Event, EventSink};

use crate::error::io;
use crate::object::Obj;
use crate::object::Ptr;
use crate::source::{DocError, Read};
use crate::Error;

/// Field manager of every apply.
pub use eksodus_core::FIELD_MANAGER;

/// One Kubernetes call under the retry policy of every remote call (429, 5xx and lost connections retried).
async fn retried<T, F, Fut>(f: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    eksodus_core::kube::call(f).await
}

async fn discover(client: &Client) -> Result<Discovery, Error> {
    retried(|| Discovery::new(client.clone()).run()).await.map_err(kerr("discovery"))
}

fn kerr(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Kube { what, source }
}

/// Reads every listable resource of a cluster (preferred versions; paginated). Subresources and resources that
/// cannot be listed are skipped; a resource that fails to list is a per-resource error, the rest goes on.
/// Progress goes to `events` as [`Event::Progress`] (phase `export`), one per resource type listed.
pub async fn export(client: &Client, page: u32, events: &EventSink) -> Result<Read, Error> {
    let mut out = Read::default();
    export_into(client, page, events, &mut |r| match r {
        Ok(o) => out.objects.push(o),
        Err(e) => out.errors.push(e),
    })
    .await?;
    Ok(out)
}

/// Like [`export`], handing each object (or list error) to `sink` as its page arrives instead of collecting
/// them, so a [`crate::bundle::Export`] can write a large cluster with only one page in memory.
pub async fn export_into(
    client: &Client,
    page: u32,
    events: &EventSink,
    sink: &mut (dyn FnMut(Result<Obj, DocError>) + Send),
) -> Result<(), Error> {
    let discovery = discover(client).await?;
    let mut listed = 0u64;
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if !caps.supports_operation(verbs::LIST) || ar.plural.contains('/') {
                continue;
            }
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
            let mut token: Option<String> = None;
            let mut count = 0u64;
            loop {
                let mut lp = ListParams::default().limit(page);
                if let Some(t) = &token {
                    lp = lp.continue_token(t);
                }
                match retried(|| api.list(&lp)).await {
                    Ok(list) => {
                        for item in list.items {
                            let mut v = serde_json::to_value(&item).unwrap_or(Value::Null);
                            // list items carry no apiVersion/kind of their own
                            v["apiVersion"] = Value::String(ar.api_version.clone());
                            v["kind"] = Value::String(ar.kind.clone());
                            sink(Ok(Obj(v)));
                            count += 1;
                        }
                        token = list.metadata.continue_.filter(|t| !t.is_empty());
                        if token.is_none() {
                            break;
                        }
                    }
                    Err(e) => {
                        sink(Err(DocError { at: format!("list {}", ar.plural), object: None, reason: e.to_string() }));
                        break;
                    }
                }
            }
            listed += count;
            events.emit(Event::Progress {
                phase: "export".into(),
                done: listed,
                total: None,
                item: Some(format!("{}/{}", ar.group, ar.kind)),
                outcome: Some(format!("{count} listed")),
            });
        }
    }
    Ok(())
}

/// What happened to one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// It did not exist and would be / was created.
    Created,
    /// It existed and changed in these fields (paths; Secret values never shown).
    Updated {
        /// Changed field paths.
        fields: Vec<String>,
    },
    /// Already as wanted (dry run).
    Unchanged,
    /// It existed and was applied (changed or not: an apply does not read first; re-applying what is there
    /// changes nothing on the server, not even its resourceVersion).
    Applied,
    /// The journal says an earlier run applied exactly this.
    Journaled,
    /// The server refused it.
    Failed {
        /// `Conflict`, `Invalid`, `NotFound`, ... (the Status reason).
        reason: String,
        /// The server's message.
        message: String,
    },
    /// It was not tried (its wave's precondition failed).
    Held {
        /// Why.
        why: String,
    },
}

impl Outcome {
    /// One word for it, as progress events and reports show it.
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Updated { .. } => "updated",
            Outcome::Unchanged => "unchanged",
            Outcome::Journaled => "done before",
            Outcome::Applied => "applied",
            Outcome::Failed { .. } => "failed",
            Outcome::Held { .. } => "held",
        }
    }
}

/// One object's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectResult {
    /// The object.
    pub object: String,
    /// Its wave.
    pub wave: u32,
    /// What happened.
    pub outcome: Outcome,
}

/// The result of a plan (dry run) or an apply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrateReport {
    /// Per object, in apply order.
    pub objects: Vec<ObjectResult>,
    /// Wall time.
    pub elapsed_ms: u64,
}

impl MigrateReport {
    /// Every object that was not applied, as `object: reason: message` (or `object: held: why`).
    pub fn problems(&self) -> Vec<String> {
        self.objects
            .iter()
            .filter_map(|o| match &o.outcome {
                Outcome::Failed { reason, message } => Some(format!("{}: {reason}: {message}", o.object)),
                Outcome::Held { why } => Some(format!("{}: held: {why}", o.object)),
                _ => None,
            })
            .collect()
    }

    /// Counts by outcome name.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for o in &self.objects {
            let k = match o.outcome {
                Outcome::Created => "created",
                Outcome::Updated { .. } => "updated",
                Outcome::Unchanged => "unchanged",
                Outcome::Applied => "applied",
                Outcome::Journaled => "journaled",
                Outcome::Failed { .. } => "failed",
                Outcome::Held { .. } => "held",
            };
            *m.entry(k).or_insert(0) += 1;
        }
        m
    }

    /// Whether every object is in place.
    pub fn is_success(&self) -> bool {
        self.objects.iter().all(|o| !matches!(o.outcome, Outcome::Failed { .. } | Outcome::Held { .. }))
    }
}

/// Apply settings.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// Requests in flight within a wave.
    pub concurrency: usize,
    /// Validate with the server and diff, store nothing.
    pub dry_run: bool,
    /// Where the journal lives (`None`: no journal).
    pub journal: Option<PathBuf>,
    /// How long to wait for CRDs to be Established and webhook Services to have endpoints.
    pub wait: Duration,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        MigrateOptions { concurrency: 16, dry_run: false, journal: None, wait: Duration::from_secs(120) }
    }
}

/// The journal of applies to one target: one line per object applied, with the hash of what was applied.
#[derive(Debug, Default)]
struct Journal {
    done: HashMap<String, String>,
    file: Option<std::fs::File>,
}

impl Journal {
    fn open(path: Option<&Path>) -> Result<Journal, Error> {
        let Some(path) = path else { return Ok(Journal::default()) };
        let mut done = HashMap::new();
        if let Ok(text) = std::fs::read_to_string(path) {
            for line in text.lines() {
                // a line cut by a crash does not parse and is ignored: that object is applied again
                if let Ok(e) = serde_json::from_str::<JournalLine>(line) {
                    done.insert(e.object, e.hash);
                }
            }
        }
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(io(format!("opening journal {}", path.display())))?;
        Ok(Journal { done, file: Some(file) })
    }

    fn record(&mut self, object: &str, hash: &str) -> Result<(), Error> {
        if let Some(f) = &mut self.file {
            let line =
                serde_json::to_string(&JournalLine { object: object.into(), hash: hash.into() }).expect("serializable");
            writeln!(f, "{line}").map_err(io("writing the journal"))?;
        }
        self.done.insert(object.into(), hash.into());
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct JournalLine {
    object: String,
    hash: String,
}

/// Who a target cluster is: its API server's URL and the UID of its `kube-system` namespace. A cluster recreated
/// at the same URL has a new UID, so it gets a new journal and everything is applied to it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetId {
    /// The API server's URL.
    pub url: String,
    /// `kube-system`'s UID.
    pub uid: String,
}

impl TargetId {
    /// Reads the identity of the cluster `client` talks to; `url` is the API server URL it was made for.
    pub async fn of(client: &Client, url: &str) -> Result<TargetId, Error> {
        let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        let ks = retried(|| ns.get("kube-system")).await.map_err(kerr("reading namespace kube-system"))?;
        Ok(TargetId { url: url.to_string(), uid: ks.metadata.uid.unwrap_or_default() })
    }
}

/// The journal file of a target, next to the bundle: one per cluster (URL and `kube-system` UID).
pub fn journal_path(bundle: &Path, target: &TargetId) -> PathBuf {
    let mut h = Sha256::new();
    h.update(target.url.as_bytes());
    h.update([0]);
    h.update(target.uid.as_bytes());
    let id: String = h.finalize().iter().take(6).map(|b| format!("{b:02x}")).collect();
    bundle.join(format!("journal-{id}.jsonl"))
}

fn hash(o: &Obj) -> String {
    let h = Sha256::digest(serde_json::to_vec(&o.0).unwrap_or_default());
    h.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Fields the server owns: never part of a diff.
fn comparable(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in ["resourceVersion", "uid", "generation", "creationTimestamp", "managedFields", "selfLink"] {
            m.remove(k);
        }
    }
    if let Some(m) = v.as_object_mut() {
        m.remove("status");
    }
    v
}

/// Paths that differ between two values (leaves, `a.b[2].c`).
pub fn changed_paths(before: &Value, after: &Value, prefix: &str, out: &mut Vec<String>) {
    match (before, after) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => changed_paths(x, y, &p, out),
                    _ => out.push(p),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                changed_paths(x, y, &format!("{prefix}[{i}]"), out);
            }
        }
        (a, b) if a != b => out.push(prefix.to_string()),
        _ => {}
    }
}

struct Target {
    client: Client,
    discovery: Discovery,
}

impl Target {
    async fn new(client: &Client) -> Result<Target, Error> {
        let discovery = discover(client).await?;
        Ok(Target { client: client.clone(), discovery })
    }

    /// Discovers until every served version of `crds` resolves, or `timeout` passes (then the custom resources
    /// that are still not served fail one by one, naming their kind).
    async fn serving(client: &Client, crds: &[&Obj], timeout: Duration) -> Result<Target, Error> {
        let wanted: Vec<GroupVersionKind> = crds.iter().flat_map(|c| crd_kinds(c)).collect();
        let start = Instant::now();
        loop {
            let target = Target::new(client).await?;
            let missing = wanted.iter().any(|g| target.discovery.resolve_gvk(g).is_none());
            if !missing || start.elapsed() >= timeout {
                return Ok(target);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn api(&self, o: &Obj) -> Result<(Api<DynamicObject>, ApiCapabilities), String> {
        let (g, v) = match o.api_version().rsplit_once('/') {
            Some((g, v)) => (g, v),
            None => ("", o.api_version()),
        };
        let gvk = GroupVersionKind::gvk(g, v, o.kind());
        let (ar, caps): (ApiResource, ApiCapabilities) = self
            .discovery
            .resolve_gvk(&gvk)
            .ok_or_else(|| format!("the target serves no {} {}", o.api_version(), o.kind()))?;
        let api = match caps.scope {
            Scope::Namespaced => Api::namespaced_with(self.client.clone(), o.namespace(), &ar),
            Scope::Cluster => Api::all_with(self.client.clone(), &ar),
        };
        Ok((api, caps))
    }

    async fn one(&self, o: &Obj, dry_run: bool) -> Outcome {
        let (api, _) = match self.api(o) {
            Ok(a) => a,
            Err(m) => return Outcome::Failed { reason: "NotFound".into(), message: m },
        };
        if !dry_run {
            return self.apply_one(&api, o).await;
        }
        let current = match retried(|| api.get_opt(o.name())).await {
            Ok(c) => c.map(|c| serde_json::to_value(c).unwrap_or(Value::Null)),
            Err(e) => return failed(e),
        };
        let mut pp = PatchParams::apply(FIELD_MANAGER);
        if dry_run {
            pp = pp.dry_run();
        }
        let patch = Patch::Apply(&o.0);
        match retried(|| api.patch(o.name(), &pp, &patch)).await {
            Ok(after) => {
                let after = serde_json::to_value(after).unwrap_or(Value::Null);
                match current {
                    None => Outcome::Created,
                    Some(before) => {
                        let mut fields = Vec::new();
                        changed_paths(&comparable(&before), &comparable(&after), "", &mut fields);
                        if fields.is_empty() {
                            Outcome::Unchanged
                        } else {
                            Outcome::Updated { fields }
                        }
                    }
                }
            }
            Err(e) => failed(e),
        }
    }
}

impl Target {
    /// The objects of `objs` the target already holds as the bundle has them ([`mismatches`] finds nothing),
    /// found with one paginated list per resource and namespace instead of a read per object.
    async fn already_in_place(&self, objs: &[&Obj]) -> HashSet<String> {
        let mut groups: BTreeMap<(String, String, String), Vec<&Obj>> = BTreeMap::new();
        for o in objs {
            groups
                .entry((o.api_version().to_string(), o.kind().to_string(), o.namespace().to_string()))
                .or_default()
                .push(o);
        }
        let mut found = HashSet::new();
        for ((_, _, _), members) in groups {
            let Ok((api, _)) = self.api(members[0]) else { continue };
            let wanted: HashMap<&str, &Obj> = members.iter().map(|o| (o.name(), *o)).collect();
            let mut lp = ListParams::default().limit(500);
            loop {
                let Ok(page) = retried(|| api.list(&lp)).await else { break };
                for item in &page.items {
                    let Some(o) = item.metadata.name.as_deref().and_then(|n| wanted.get(n)) else { continue };
                    let mut got = serde_json::to_value(item).unwrap_or(Value::Null);
                    // list items carry no apiVersion/kind of their own
                    got["apiVersion"] = Value::String(o.api_version().to_string());
                    got["kind"] = Value::String(o.kind().to_string());
                    let mut diff = Vec::new();
                    mismatches(&as_stored(o), &got, "", &mut diff);
                    if diff.is_empty() {
                        found.insert(o.obj_ref().to_string());
                    }
                }
                match page.metadata.continue_.filter(|c| !c.is_empty()) {
                    Some(c) => lp = lp.continue_token(&c),
                    None => break,
                }
            }
        }
        found
    }

    /// One server-side apply, one request: the status code tells a create (201) from an apply to an existing
    /// object (200), so applying costs no read. A throttled, failed (5xx) or lost request is sent again: an
    /// apply is idempotent.
    async fn apply_one(&self, api: &Api<DynamicObject>, o: &Obj) -> Outcome {
        let req = match kube::core::Request::new(api.resource_url()).patch(
            o.name(),
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Apply(&o.0),
        ) {
            Ok(r) => r,
            Err(e) => return Outcome::Failed { reason: "BadRequest".into(), message: e.to_string() },
        };
        let result = retried(|| async {
            let resp = self.client.send(req.clone().map(kube::client::Body::from)).await?;
            let code = resp.status();
            if code.is_success() {
                return Ok(if code == http::StatusCode::CREATED { Outcome::Created } else { Outcome::Applied });
            }
            let body = resp.into_body().collect_bytes().await.unwrap_or_default();
            let status = serde_json::from_slice::<kube::core::Status>(&body).unwrap_or_else(|_| {
                kube::core::Status::failure(
                    &String::from_utf8_lossy(&body).chars().take(300).collect::<String>(),
                    code.canonical_reason().unwrap_or("Error"),
                )
                .with_code(code.as_u16())
            });
            Err(kube::Error::Api(Box::new(status)))
        })
        .await;
        match result {
            Ok(outcome) => outcome,
            Err(e) => failed(e),
        }
    }
}

fn failed(e: kube::Error) -> Outcome {
    match e {
        kube::Error::Api(s) => Outcome::Failed { reason: s.reason.clone(), message: s.message.clone() },
        other => Outcome::Failed { reason: "Error".into(), message: other.to_string() },
    }
}

/// Applies (or, with `dry_run`, diffs) objects in their waves. Per-object failures are reported; the rest
/// proceeds. Objects the journal records with the same content are not sent again.
pub async fn apply(
    client: &Client,
    objects: &[(Obj, u32)],
    opts: &MigrateOptions,
    events: &EventSink,
) -> Result<MigrateReport, Error> {
    let start = Instant::now();
    let total = objects.len() as u64;
    let finished = std::sync::atomic::AtomicU64::new(0);
    let finished = &finished;
    let mut target = Target::new(client).await?;
    let journal = Mutex::new(if opts.dry_run { Journal::default() } else { Journal::open(opts.journal.as_deref())? });
    let mut waves: BTreeMap<u32, Vec<&Obj>> = BTreeMap::new();
    for (o, w) in objects {
        waves.entry(*w).or_default().push(o);
    }
    let mut results: Vec<ObjectResult> = Vec::new();
    for (wave, objs) in waves {
        let wave_start = Instant::now();
        events.emit(Event::PhaseStarted { phase: format!("apply/wave {wave}"), total: objs.len() });
        // webhooks only once their Services have ready endpoints (a webhook without a backend blocks the API)
        let mut held: BTreeMap<String, String> = BTreeMap::new();
        if !opts.dry_run {
            for o in objs.iter().filter(|o| o.group() == "admissionregistration.k8s.io") {
                if let Err(why) = wait_for_backends(client, o, opts.wait).await {
                    held.insert(o.obj_ref().to_string(), why);
                }
            }
        }
        // what the target already holds as the bundle has it is not written again: re-applying an unchanged
        // bundle changes nothing, not even a resourceVersion (some kinds, PVCs among them, are rewritten by any
        // update because the server defaults them on read)
        let in_place = if opts.dry_run {
            HashSet::new()
        } else {
            let pending: Vec<&Obj> = {
                let j = journal.lock().expect("journal");
                objs.iter().copied().filter(|o| j.done.get(&o.obj_ref().to_string()) != Some(&hash(o))).collect()
            };
            target.already_in_place(&pending).await
        };
        let tgt = &target;
        let journal = &journal;
        let in_place = &in_place;
        // the futures are made first and streamed as a Vec of boxed, nameable Send futures: with the closure
        // inside the stream's type, the compiler cannot prove `apply`'s future Send, and an embedder could not
        // spawn it or await it in a controller's reconcile
        let futures: Vec<futures::future::BoxFuture<'_, ObjectResult>> = objs
            .iter()
            .copied()
            .map(|o| {
                let held = held.get(&o.obj_ref().to_string()).cloned();
                async move {
                    let name = o.obj_ref().to_string();
                    let h = hash(o);
                    let outcome = if let Some(why) = held {
                        Outcome::Held { why }
                    } else if journal.lock().expect("journal").done.get(&name) == Some(&h) {
                        Outcome::Journaled
                    } else {
                        let out =
                            if in_place.contains(&name) { Outcome::Unchanged } else { tgt.one(o, opts.dry_run).await };
                        if !opts.dry_run && !matches!(out, Outcome::Failed { .. }) {
                            if let Err(e) = journal.lock().expect("journal").record(&name, &h) {
                                return ObjectResult {
                                    object: name,
                                    wave,
                                    outcome: Outcome::Failed { reason: "Journal".into(), message: e.to_string() },
                                };
                            }
                        }
                        out
                    };
                    events.emit(Event::Progress {
                        phase: "apply".into(),
                        done: finished.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
                        total: Some(total),
                        item: Some(name.clone()),
                        outcome: Some(outcome.word().into()),
                    });
                    ObjectResult { object: name, wave, outcome }
                }
                .boxed()
            })
            .collect();
        let done: Vec<ObjectResult> = stream::iter(futures).buffer_unordered(opts.concurrency.max(1)).collect().await;
        let mut done = done;
        done.sort_by(|a, b| a.object.cmp(&b.object));
        // CRDs must be Established before their custom resources; then the target serves new types
        let crds: Vec<&Obj> = objs.iter().copied().filter(|o| o.kind() == "CustomResourceDefinition").collect();
        if !crds.is_empty() && !opts.dry_run {
            for c in &crds {
                if let Err(why) = wait_established(client, c.name(), opts.wait).await {
                    if let Some(r) = done.iter_mut().find(|r| r.object == c.obj_ref().to_string()) {
                        r.outcome = Outcome::Failed { reason: "NotEstablished".into(), message: why };
                    }
                }
            }
            // Established is not yet served: a real API server adds the kind to discovery a moment later
            target = Target::serving(client, &crds, opts.wait).await?;
        }
        results.extend(done);
        events.emit(Event::PhaseFinished {
            phase: format!("apply/wave {wave}"),
            elapsed_ms: wave_start.elapsed().as_millis() as u64,
        });
    }
    Ok(MigrateReport { objects: results, elapsed_ms: start.elapsed().as_millis() as u64 })
}

/// The group/version/kind of every served version of a CRD.
fn crd_kinds(crd: &Obj) -> Vec<GroupVersionKind> {
    let (Some(group), Some(kind)) =
        (crd.get("/spec/group").and_then(Value::as_str), crd.get("/spec/names/kind").and_then(Value::as_str))
    else {
        return Vec::new();
    };
    crd.get("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v["served"] != false)
        .filter_map(|v| v["name"].as_str())
        .map(|v| GroupVersionKind::gvk(group, v, kind))
        .collect()
}

async fn wait_established(client: &Client, name: &str, timeout: Duration) -> Result<(), String> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
        "customresourcedefinitions",
    );
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let start = Instant::now();
    loop {
        if let Ok(Some(c)) = retried(|| api.get_opt(name)).await {
            let ok = c
                .data
                .at("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Established" && c["status"] == "True"));
            if ok {
                return Ok(());
            }
        }
        if start.elapsed() >= timeout {
            return Err(format!("CRD {name} was not Established after {}s", timeout.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_for_backends(client: &Client, hook: &Obj, timeout: Duration) -> Result<(), String> {
    let services: Vec<(String, String)> = hook
        .get("/webhooks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|w| {
            Some((
                w.at("/clientConfig/service/namespace")?.as_str()?.to_string(),
                w.at("/clientConfig/service/name")?.as_str()?.to_string(),
            ))
        })
        .collect();
    let start = Instant::now();
    for (ns, name) in services {
        loop {
            if service_has_ready_endpoints(client, &ns, &name).await {
                break;
            }
            if start.elapsed() >= timeout {
                return Err(format!(
                    "Service {ns}/{name} has no ready endpoints after {}s; the webhook would block the API",
                    timeout.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// A slice's endpoints: a list up to Kubernetes 1.35, optional from 1.36 on (k8s-openapi follows the API, and the
/// embedding application picks the version).
// Only one of the two macros expands, so clippy sees a late initialization it cannot move.
#[allow(clippy::needless_late_init)]
fn slice_endpoints(s: &k8s_openapi::api::discovery::v1::EndpointSlice) -> &[k8s_openapi::api::discovery::v1::Endpoint] {
    let endpoints: &[k8s_openapi::api::discovery::v1::Endpoint];
    k8s_openapi::k8s_if_le_1_35! { endpoints = &s.endpoints; }
    k8s_openapi::k8s_if_ge_1_36! { endpoints = s.endpoints.as_deref().unwrap_or_default(); }
    endpoints
}

/// Whether a Service has a ready endpoint: an EndpointSlice of it (label `kubernetes.io/service-name`) with an
/// endpoint not marked unready, or, on clusters that still fill them, an Endpoints object with an address.
async fn service_has_ready_endpoints(client: &Client, ns: &str, name: &str) -> bool {
    let slices: Api<k8s_openapi::api::discovery::v1::EndpointSlice> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={name}"));
    if let Ok(list) = retried(|| slices.list(&lp)).await {
        let ready = list
            .items
            .iter()
            .flat_map(slice_endpoints)
            .any(|e| !e.addresses.is_empty() && e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true));
        if ready {
            return true;
        }
    }
    let eps: Api<k8s_openapi::api::core::v1::Endpoints> = Api::namespaced(client.clone(), ns);
    retried(|| eps.get_opt(name)).await.ok().flatten().is_some_and(|e| {
        e.subsets.unwrap_or_default().iter().any(|s| s.addresses.as_ref().is_some_and(|a| !a.is_empty()))
    })
}

/// One workload's rollout, or one Service's new address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// The object.
    pub object: String,
    /// Whether it is ready.
    pub ready: bool,
    /// What was seen.
    pub detail: String,
}

/// What verification found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Objects of the bundle the target does not have.
    pub missing: Vec<String>,
    /// Objects of the target that differ from the bundle's, with the differing field paths (values are never
    /// shown: they may be Secret data).
    pub different: BTreeMap<String, Vec<String>>,
    /// Objects that could not be read (the reason).
    pub unreadable: BTreeMap<String, String>,
    /// Workload rollouts.
    pub rollouts: Vec<Check>,
    /// `namespace/name`: old addresses → new addresses, for the DNS cutover.
    pub load_balancers: BTreeMap<String, (Vec<String>, Vec<String>)>,
}

impl Verification {
    /// Whether every object of the bundle is in the target as the bundle has it.
    pub fn objects_match(&self) -> bool {
        self.missing.is_empty() && self.different.is_empty() && self.unreadable.is_empty()
    }

    /// Whether every object matches, every workload rolled out and every load balancer has an address.
    pub fn is_success(&self) -> bool {
        self.objects_match()
            && self.rollouts.iter().all(|c| c.ready)
            && self.load_balancers.values().all(|(_, new)| !new.is_empty())
    }
}

fn rollout(o: &Value, kind: &str) -> Option<(bool, String)> {
    let n = |p: &str| o.at(p).and_then(Value::as_i64).unwrap_or(0);
    let gen_ok = n("/status/observedGeneration") >= n("/metadata/generation");
    Some(match kind {
        "Deployment" => {
            let want = o.at("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
            let (upd, avail) = (n("/status/updatedReplicas"), n("/status/availableReplicas"));
            (gen_ok && upd >= want && avail >= want, format!("{avail}/{want} available, {upd} updated"))
        }
        "StatefulSet" => {
            let want = o.at("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
            let ready = n("/status/readyReplicas");
            (gen_ok && ready >= want, format!("{ready}/{want} ready"))
        }
        "DaemonSet" => {
            let (want, ready) = (n("/status/desiredNumberScheduled"), n("/status/numberReady"));
            (gen_ok && want > 0 && ready >= want, format!("{ready}/{want} ready"))
        }
        "Job" => {
            let complete = o
                .at("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Complete" && c["status"] == "True"));
            (complete, format!("{} succeeded", n("/status/succeeded")))
        }
        _ => return None,
    })
}

/// The paths where `want` (an object of the bundle) is not contained in `got` (the target's object): every
/// field the bundle sets must be there with the same value; the server may add fields (defaults, its own
/// metadata) and elements of sets it manages. A `null` in the bundle matches an absent field.
pub fn mismatches(want: &Value, got: &Value, at: &str, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                let p = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
                match g.get(k) {
                    Some(gv) => mismatches(wv, gv, &p, out),
                    None if wv.is_null() => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => {
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                mismatches(wv, gv, &format!("{at}[{i}]"), out);
            }
        }
        (Value::Null, Value::Array(g)) if g.is_empty() => {}
        (Value::Null, Value::Object(g)) if g.is_empty() => {}
        (w, g) if w == g => {}
        _ => out.push(at.to_string()),
    }
}

/// The bundle object as the server will store it, where the two spell the same thing differently
/// (`stringData` is stored as base64 `data`).
fn as_stored(o: &Obj) -> Value {
    let mut v = comparable(&o.0);
    if o.group().is_empty() && o.kind() == "Secret" {
        if let Some(Value::Object(sd)) = v.as_object_mut().and_then(|m| m.remove("stringData")) {
            use base64::Engine as _;
            let data = v
                .as_object_mut()
                .expect("an object")
                .entry("data")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(d) = data.as_object_mut() {
                for (k, x) in sd {
                    let text = x.as_str().unwrap_or_default();
                    d.insert(k, Value::String(base64::engine::general_purpose::STANDARD.encode(text)));
                }
            }
        }
    }
    v
}

/// What looking an object up in the target found: absent, or present with the paths that differ; or why it
/// could not be read.
type Looked = Result<Option<Vec<String>>, String>;

/// Checks that every object of the bundle is in the target and contains what the bundle has ([`mismatches`]),
/// waits (up to `timeout`) for the workloads among them to roll out, and reads the new load-balancer addresses
/// of its Services. `old_lbs` come from the export's report.
pub async fn verify(
    client: &Client,
    objects: &[(Obj, u32)],
    old_lbs: &BTreeMap<String, Vec<String>>,
    timeout: Duration,
    events: &EventSink,
) -> Result<Verification, Error> {
    let target = Target::new(client).await?;
    let start = Instant::now();
    let mut v = Verification::default();
    let tgt = &target;
    let total = objects.len() as u64;
    let checked = std::sync::atomic::AtomicU64::new(0);
    let checked = &checked;
    // boxed futures in a Vec, not a closure in the stream: `verify` stays Send (see `apply`)
    let futures: Vec<futures::future::BoxFuture<'_, (String, Looked)>> = objects
        .iter()
        .map(|(o, _)| {
            async move {
                let name = o.obj_ref().to_string();
                // a kind the target does not serve (its CRD is missing): the object is missing too
                let Ok((api, _)) = tgt.api(o) else { return (name, Ok(None)) };
                let r = match retried(|| api.get_opt(o.name())).await {
                    Ok(None) => Ok(None),
                    Ok(Some(got)) => {
                        let got = serde_json::to_value(got).unwrap_or(Value::Null);
                        let mut diff = Vec::new();
                        mismatches(&as_stored(o), &got, "", &mut diff);
                        Ok(Some(diff))
                    }
                    Err(e) => Err(e.to_string()),
                };
                let outcome = match &r {
                    Ok(None) => "missing",
                    Ok(Some(d)) if d.is_empty() => "equal",
                    Ok(Some(_)) => "different",
                    Err(_) => "unreadable",
                };
                events.emit(Event::Progress {
                    phase: "verify".into(),
                    done: checked.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
                    total: Some(total),
                    item: Some(name.clone()),
                    outcome: Some(outcome.into()),
                });
                (name, r)
            }
            .boxed()
        })
        .collect();
    let found: Vec<(String, Looked)> = stream::iter(futures).buffer_unordered(16).collect().await;
    for (name, r) in found {
        match r {
            Ok(None) => v.missing.push(name),
            Ok(Some(diff)) if diff.is_empty() => {}
            Ok(Some(diff)) => {
                v.different.insert(name, diff);
            }
            Err(e) => {
                v.unreadable.insert(name, e);
            }
        }
    }
    v.missing.sort();
    let workloads: Vec<&Obj> = objects
        .iter()
        .map(|(o, _)| o)
        .filter(|o| {
            matches!((o.group(), o.kind()), ("apps", "Deployment" | "StatefulSet" | "DaemonSet") | ("batch", "Job"))
        })
        .collect();
    for o in workloads {
        let Ok((api, _)) = target.api(o) else { continue };
        loop {
            let cur = retried(|| api.get_opt(o.name()))
                .await
                .ok()
                .flatten()
                .map(|c| serde_json::to_value(c).unwrap_or(Value::Null));
            let (ready, detail) = match &cur {
                None => (false, "missing in the target".to_string()),
                Some(c) => rollout(c, o.kind()).unwrap_or((true, String::new())),
            };
            if ready || start.elapsed() >= timeout {
                v.rollouts.push(Check { object: o.obj_ref().to_string(), ready, detail });
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    for (o, _) in objects.iter().filter(|(o, _)| o.kind() == "Service" && o.group().is_empty()) {
        if o.get("/spec/type").and_then(Value::as_str) != Some("LoadBalancer") {
            continue;
        }
        let api: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), o.namespace());
        // the cloud's load balancer takes a while: wait for its address within the same time as rollouts
        let new: Vec<String> = loop {
            let new: Vec<String> = retried(|| api.get_opt(o.name()))
                .await
                .ok()
                .flatten()
                .and_then(|s| s.status?.load_balancer?.ingress)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|i| i.hostname.or(i.ip))
                .collect();
            if !new.is_empty() || start.elapsed() >= timeout {
                break new;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let key = format!("{}/{}", o.namespace(), o.name());
        v.load_balancers.insert(key.clone(), (old_lbs.get(&key).cloned().unwrap_or_default(), new));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Compiled, never run: `apply` and `verify` can be spawned or awaited in a controller's reconcile.
    #[allow(dead_code)]
    fn apply_and_verify_are_send(c: &Client, o: &[(Obj, u32)], opts: &MigrateOptions, e: &EventSink) {
        fn is_send<T: Send>(_: T) {}
        is_send(apply(c, o, opts, e));
        is_send(verify(c, o, &BTreeMap::new(), Duration::ZERO, e));
    }

    #[test]
    fn a_crd_is_waited_for_in_every_served_version() {
        let crd = Obj(json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.x.io"},
            "spec": {"group": "x.io", "names": {"kind": "Widget", "plural": "widgets"},
                     "versions": [{"name": "v1", "served": true}, {"name": "v0", "served": false}, {"name": "v2"}]}}));
        let kinds: Vec<String> =
            crd_kinds(&crd).iter().map(|g| format!("{}/{}/{}", g.group, g.version, g.kind)).collect();
        assert_eq!(kinds, ["x.io/v1/Widget", "x.io/v2/Widget"]);
        assert!(crd_kinds(&Obj(json!({"kind": "CustomResourceDefinition"}))).is_empty());
    }

    #[test]
    fn diffs_name_paths_and_ignore_server_fields() {
        let a = json!({"metadata": {"name": "x", "resourceVersion": "1", "labels": {"a": "1"}}, "data": {"k": "v", "gone": "x"}, "spec": {"ports": [{"port": 1}]}});
        let b = json!({"metadata": {"name": "x", "resourceVersion": "2", "labels": {"a": "2"}}, "data": {"k": "v"}, "spec": {"ports": [{"port": 2}]}, "status": {"x": 1}});
        let mut out = Vec::new();
        changed_paths(&comparable(&a), &comparable(&b), "", &mut out);
        assert_eq!(out, vec!["data.gone", "metadata.labels.a", "spec.ports[0].port"]);
    }

    #[test]
    fn verification_finds_what_differs_but_not_what_the_server_added() {
        let want = json!({"metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"k": "v"}, "rules": null});
        let got =
            json!({"metadata": {"name": "c", "uid": "u", "labels": {"a": "1", "added": "x"}}, "data": {"k": "v"}});
        let mut out = Vec::new();
        mismatches(&want, &got, "", &mut out);
        assert!(out.is_empty(), "{out:?}");
        let got = json!({"metadata": {"name": "c", "labels": {"a": "2"}}, "data": {}});
        mismatches(&want, &got, "", &mut out);
        assert_eq!(out, vec!["metadata.labels.a", "data.k"]);
        let secret = Obj(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"p": "hunter2"}}),
        );
        assert_eq!(as_stored(&secret)["data"]["p"], "aHVudGVyMg==");
    }

    #[test]
    fn rollouts_are_judged_like_kubectl_rollout_status() {
        let d = json!({"metadata": {"generation": 2}, "spec": {"replicas": 3}, "status": {"observedGeneration": 2, "updatedReplicas": 3, "availableReplicas": 3}});
        assert!(rollout(&d, "Deployment").unwrap().0);
        let d = json!({"metadata": {"generation": 3}, "spec": {"replicas": 3}, "status": {"observedGeneration": 2, "updatedReplicas": 3, "availableReplicas": 3}});
        assert!(!rollout(&d, "Deployment").unwrap().0, "an unobserved generation is not rolled out");
        let j = json!({"status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}});
        assert!(rollout(&j, "Job").unwrap().0);
        assert!(rollout(&json!({}), "ConfigMap").is_none());
    }
}
