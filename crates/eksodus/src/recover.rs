//! Disaster recovery as one resumable job: from a dead control plane's etcd snapshot to workloads verified on
//! a new EKS cluster.
//!
//! Phases, in order, each recorded in `recovery.json` in the recovery directory when done and skipped when a
//! later run finds it done: **inspect** the snapshot (hash, damage; a damaged one is refused unless accepted,
//! naming what would be lost), **export** the bundle (what the new cluster makes itself left out, CRDs in a
//! served version, Secrets decrypted), **up** the environment (with the old cluster's aws-auth carried into its
//! access), **access** (the aws-auth merge when the spec keeps the ConfigMap mode), **apply** the bundle
//! (its own per-object journal resumes inside the phase), **verify** (every object present and equal, rollouts,
//! the DNS cutover table), then the **report** (time per phase, what was recovered, left out, lost, who has
//! access) written next to the bundle.
//!
//! A recovery directory belongs to one snapshot: a run with another one is refused rather than mixed.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eksodus_access::awsauth::AwsAuth;
use eksodus_core::engine::ApplyOptions;
use eksodus_core::events::{Event, EventSink};
use eksodus_core::spec::{AccessSpec, AuthenticationMode, EnvironmentSpec, MappingSpec};
use eksodus_migrate::bundle;
use eksodus_migrate::filter::Filters;
use eksodus_migrate::live::{self, MigrateOptions};
use eksodus_migrate::transform::Rules;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{EnvPlan, Environment, Error, KubeAccess};

/// The etcd key of the old cluster's aws-auth ConfigMap.
const AWS_AUTH_KEY: &str = "/registry/configmaps/kube-system/aws-auth";

/// A phase of a recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Read and check the snapshot.
    Inspect,
    /// Write the bundle.
    Export,
    /// Create the environment.
    Up,
    /// Give the old cluster's people and roles access.
    Access,
    /// Apply the bundle.
    Apply,
    /// Check the target.
    Verify,
}

impl Phase {
    /// Every phase in order.
    pub const ALL: [Phase; 6] = [Phase::Inspect, Phase::Export, Phase::Up, Phase::Access, Phase::Apply, Phase::Verify];

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Inspect => "inspect",
            Phase::Export => "export",
            Phase::Up => "up",
            Phase::Access => "access",
            Phase::Apply => "apply",
            Phase::Verify => "verify",
        }
    }
}

/// What a recovery reads and where it writes.
#[derive(Debug, Clone)]
pub struct RecoveryOptions {
    /// The etcd snapshot file (or data directory) of the dead cluster.
    pub snapshot: PathBuf,
    /// The recovery directory: the journal, the bundle (`bundle/`) and the report.
    pub dir: PathBuf,
    /// The old API server's EncryptionConfiguration (YAML text), to decrypt what it encrypted at rest.
    pub encryption_config: Option<String>,
    /// Mapping rules for the export (storage classes, registries, ...).
    pub rules: Rules,
    /// Read the snapshot at this revision instead of the newest.
    pub revision: Option<i64>,
    /// Go on with a damaged snapshot, or with objects that cannot be read (what cannot be read is reported as
    /// lost). Without it, `run` refuses both before anything is created.
    pub accept_damage: bool,
    /// Requests in flight within an apply wave.
    pub concurrency: usize,
    /// How long to wait for CRDs, webhook backends and rollouts.
    pub wait: Duration,
}

impl RecoveryOptions {
    /// Options for `snapshot` into `dir`, with defaults for the rest.
    pub fn new(snapshot: impl Into<PathBuf>, dir: impl Into<PathBuf>) -> Self {
        RecoveryOptions {
            snapshot: snapshot.into(),
            dir: dir.into(),
            encryption_config: None,
            rules: Rules::default(),
            revision: None,
            accept_damage: false,
            concurrency: 16,
            wait: Duration::from_secs(300),
        }
    }
}

/// What the snapshot holds and how sound it is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Inspection {
    /// sha256 of the snapshot file.
    pub sha256: String,
    /// The trailing-hash check of `etcdctl snapshot save`: `hash_matches`, `hash_mismatch` (the file changed
    /// after it was saved) or `no_hash`.
    pub integrity: String,
    /// The revision read.
    pub revision: i64,
    /// Live keys at that revision.
    pub keys: usize,
    /// What cannot be read (page, key, reason), as text.
    pub damage: Vec<String>,
}

impl Inspection {
    /// Whether anything is damaged.
    pub fn is_damaged(&self) -> bool {
        !self.damage.is_empty() || self.integrity == "hash_mismatch"
    }
}

/// Who gets access to the new cluster, from the old cluster's aws-auth.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AccessChanges {
    /// How access is given: `access entries` or `aws-auth`.
    pub by: String,
    /// Principal ARN → Kubernetes groups (and username), as granted.
    pub granted: BTreeMap<String, String>,
    /// Mappings not carried over, with the reason.
    pub not_carried: Vec<(String, String)>,
}

/// The bundle in numbers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BundleSummary {
    /// Objects to apply.
    pub objects: usize,
    /// Per namespace (`(cluster)` for cluster-scoped), per `group/Kind`: how many.
    pub by_namespace: BTreeMap<String, BTreeMap<String, usize>>,
    /// Objects left out on purpose, with the reason (`object: reason`).
    pub excluded: Vec<String>,
    /// Keys that could not be read back (damage, encryption without its key, unknown encodings).
    pub lost: Vec<String>,
}

/// Everything a recovery would do, before it does anything outside the recovery directory.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveryPlan {
    /// The snapshot.
    pub inspection: Inspection,
    /// The bundle that will be applied.
    pub bundle: BundleSummary,
    /// Who gets access.
    pub access: AccessChanges,
    /// The environment plan (network, IAM, cluster, nodegroups, addons, access entries).
    pub environment: EnvPlan,
    /// Phases already done by an earlier run.
    pub done: Vec<Phase>,
}

impl RecoveryPlan {
    /// Whether running the recovery would change anything.
    pub fn has_changes(&self) -> bool {
        !self.environment.is_converged() || Phase::ALL.iter().any(|p| !self.done.contains(p))
    }
}

/// One phase's time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseTime {
    /// The phase.
    pub phase: Phase,
    /// Milliseconds it took (in the run that did it).
    pub elapsed_ms: u64,
    /// Whether this run skipped it (an earlier run, or `plan` in this process, did it).
    pub skipped: bool,
    /// What it did, in a line.
    pub summary: String,
}

/// One DNS record to move.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cutover {
    /// `namespace/name` of the Service.
    pub service: String,
    /// Its addresses in the old cluster.
    pub old: Vec<String>,
    /// Its addresses in the new one (empty while pending).
    pub new: Vec<String>,
}

/// What a recovery did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecoveryReport {
    /// Each phase, in order.
    pub phases: Vec<PhaseTime>,
    /// The recovery time: the sum of the phases' times.
    pub recovery_ms: u64,
    /// Objects applied and verified.
    pub recovered: usize,
    /// The bundle (left out and lost objects with their reasons).
    pub bundle: BundleSummary,
    /// Who has access.
    pub access: AccessChanges,
    /// Objects of the bundle missing or different in the target after apply (empty on success).
    pub unverified: Vec<String>,
    /// Workloads not rolled out.
    pub not_rolled_out: Vec<String>,
    /// The DNS cutover table.
    pub cutover: Vec<Cutover>,
    /// The recovery directory.
    pub dir: PathBuf,
}

impl RecoveryReport {
    /// Whether every object is in place and every workload rolled out.
    pub fn is_success(&self) -> bool {
        self.unverified.is_empty() && self.not_rolled_out.is_empty()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Journal {
    snapshot_sha256: String,
    done: BTreeMap<Phase, PhaseTime>,
    inspection: Option<Inspection>,
    bundle: Option<BundleSummary>,
    /// Phases this process finished (the others in `done` were finished by an earlier run).
    #[serde(skip)]
    ran: std::collections::BTreeSet<Phase>,
}

/// A recovery of one snapshot into the environment of one spec.
///
/// ```no_run
/// # async fn run() -> Result<(), eksodus::Error> {
/// use eksodus::prelude::*;
/// use eksodus::recover::{Recovery, RecoveryOptions};
///
/// let spec = eksodus::spec::from_file("prod.yaml")?;
/// let conf = AwsTarget { region: spec.region.clone(), ..AwsTarget::default() }.load().await;
/// let recovery = Recovery::new(spec, &conf, RecoveryOptions::new("etcd.db", "recovery-prod"))?;
/// let plan = recovery.plan(&EventSink::discard()).await?; // reads only; writes nothing outside the directory
/// println!("{} object(s) to recover", plan.bundle.objects);
/// let report = recovery.run(&EventSink::discard()).await?; // resumable: a re-run skips finished phases
/// println!("{} DNS record(s) to move", report.cutover.len());
/// # Ok(()) }
/// ```
pub struct Recovery {
    spec: EnvironmentSpec,
    access: AccessChanges,
    conf: aws_config::SdkConfig,
    kube: Option<KubeAccess>,
    engine: ApplyOptions,
    opts: RecoveryOptions,
    force: bool,
}

impl std::fmt::Debug for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recovery").field("env", &self.spec.name).field("opts", &self.opts).finish()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.display().to_string(), source }
}

fn refuse(phase: Phase, message: impl Into<String>) -> Error {
    Error::Recovery { phase: phase.as_str().into(), message: message.into() }
}

impl Recovery {
    /// A recovery of `opts.snapshot` into the environment of `spec` on the AWS of `conf`. Reads the old
    /// cluster's aws-auth from the snapshot now, so the environment's plan already says who gets access.
    pub fn new(spec: EnvironmentSpec, conf: &aws_config::SdkConfig, opts: RecoveryOptions) -> Result<Self, Error> {
        let keys = encryption_keys(&opts)?;
        let aws_auth = read_aws_auth(&opts.snapshot, opts.revision, keys.as_deref())?;
        let (spec, access) = with_old_access(spec, aws_auth.as_ref());
        Ok(Recovery {
            spec,
            access,
            conf: conf.clone(),
            kube: None,
            engine: ApplyOptions::default(),
            opts,
            force: false,
        })
    }

    /// How the new cluster's API server is reached (default: its endpoint, with tokens from `conf`'s
    /// credentials).
    pub fn kube(mut self, kube: KubeAccess) -> Self {
        self.kube = Some(kube);
        self
    }

    /// Engine options for the environment.
    pub fn engine_options(mut self, options: ApplyOptions) -> Self {
        self.engine = options;
        self
    }

    /// Skips the lockout guard of access changes.
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// The spec with the old cluster's access carried in.
    pub fn spec(&self) -> &EnvironmentSpec {
        &self.spec
    }

    fn environment(&self) -> Result<Environment, Error> {
        let mut b = Environment::builder(self.spec.clone()).aws(&self.conf).options(self.engine).force(self.force);
        if let Some(k) = &self.kube {
            b = b.kube(k.clone());
        }
        Ok(b.build()?)
    }

    fn journal_path(&self) -> PathBuf {
        self.opts.dir.join("recovery.json")
    }

    fn bundle_dir(&self) -> PathBuf {
        self.opts.dir.join("bundle")
    }

    fn load_journal(&self, sha: &str) -> Result<Journal, Error> {
        let p = self.journal_path();
        let j: Journal = match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| refuse(Phase::Inspect, format!("{} is not a recovery journal: {e}", p.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Journal::default(),
            Err(e) => return Err(io(&p)(e)),
        };
        if !j.snapshot_sha256.is_empty() && j.snapshot_sha256 != sha {
            return Err(refuse(
                Phase::Inspect,
                format!(
                    "{} belongs to another snapshot (sha256 {}); use a new recovery directory",
                    self.opts.dir.display(),
                    j.snapshot_sha256
                ),
            ));
        }
        Ok(j)
    }

    fn save_journal(&self, j: &Journal) -> Result<(), Error> {
        let p = self.journal_path();
        let tmp = p.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(j).unwrap_or_default()).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &p).map_err(io(&p))
    }

    /// Inspects the snapshot, exports the bundle into the recovery directory (nothing outside it changes) and
    /// plans the environment: what [`Recovery::run`] would do.
    pub async fn plan(&self, events: &EventSink) -> Result<RecoveryPlan, Error> {
        std::fs::create_dir_all(&self.opts.dir).map_err(io(&self.opts.dir))?;
        let (inspection, mut journal) = self.inspect(events)?;
        let bundle = self.export(&mut journal, events)?;
        let environment = self.environment()?.plan().await?;
        Ok(RecoveryPlan {
            inspection,
            bundle,
            access: self.access.clone(),
            environment,
            done: journal.done.keys().copied().collect(),
        })
    }

    /// Runs every phase not done yet; safe to run again after an interruption at any point.
    pub async fn run(&self, events: &EventSink) -> Result<RecoveryReport, Error> {
        std::fs::create_dir_all(&self.opts.dir).map_err(io(&self.opts.dir))?;
        let (_, mut journal) = self.inspect(events)?;
        let bundle = self.export(&mut journal, events)?;
        if !bundle.lost.is_empty() && !self.opts.accept_damage {
            // keys that could not be read (damage, or Secrets without the right encryption key) would be missing
            // from the new cluster: refuse before anything is created, naming them
            return Err(refuse(
                Phase::Export,
                format!(
                    "{} object(s) of the snapshot cannot be read (is the encryption configuration the old API server's?); accept the damage to go on without them: {}",
                    bundle.lost.len(),
                    bundle.lost.join("; ")
                ),
            ));
        }
        let env = self.environment()?;

        if !journal.done.contains_key(&Phase::Up) {
            let t = self.start(Phase::Up, events);
            let up = env.up(events).await?;
            let summary = match &up.kube_skipped {
                Some(s) => return Err(refuse(Phase::Up, format!("the new cluster's Kubernetes side: {s}"))),
                None => format!("{} round(s), converged", up.rounds.len()),
            };
            self.finish(&mut journal, Phase::Up, t, summary, events)?;
        }
        let client = env
            .kube()
            .await?
            .ok_or_else(|| refuse(Phase::Access, "no access to the new cluster's API server (KubeAccess::None)"))?;
        eksodus_cluster::kube_side::reachable(&client, self.opts.wait).await?;

        if !journal.done.contains_key(&Phase::Access) {
            let t = self.start(Phase::Access, events);
            if self.access.by == "aws-auth" {
                let api = eksodus_access::cluster::AwsAuthApi::new(client.clone());
                let opts = eksodus_access::cluster::EditOptions { force: self.force, ..Default::default() };
                api.apply_spec(&self.spec, None, &opts).await?;
            }
            let summary = format!("{} principal(s) by {}", self.access.granted.len(), self.access.by);
            self.finish(&mut journal, Phase::Access, t, summary, events)?;
        }

        let (objects, report) = bundle::read(&self.bundle_dir())?;
        if !journal.done.contains_key(&Phase::Apply) {
            let t = self.start(Phase::Apply, events);
            // the journal is per cluster: its kube-system UID tells a recreated cluster from the old one, so
            // the label needs no second DescribeCluster for the endpoint
            let label = format!("eks {}/{}", self.spec.region, self.spec.name);
            let target = live::TargetId::of(&client, &label).await?;
            let opts = MigrateOptions {
                concurrency: self.opts.concurrency,
                dry_run: false,
                journal: Some(live::journal_path(&self.bundle_dir(), &target)),
                wait: self.opts.wait,
            };
            let t_objects = Instant::now();
            let r = live::apply(&client, &objects, &opts, events).await?;
            events.emit(Event::PhaseFinished {
                phase: "recover/apply/objects".into(),
                elapsed_ms: t_objects.elapsed().as_millis() as u64,
            });
            if !r.is_success() {
                let failed = r.problems();
                return Err(refuse(
                    Phase::Apply,
                    format!("not applied (run again to retry them): {}", failed.join("; ")),
                ));
            }
            self.finish(&mut journal, Phase::Apply, t, format!("{:?}", r.counts()), events)?;
        }

        let t = self.start(Phase::Verify, events);
        let v = live::verify(&client, &objects, &report.load_balancers, self.opts.wait, events).await?;
        let mut unverified: Vec<String> = v.missing.iter().map(|m| format!("{m}: missing")).collect();
        unverified.extend(v.different.iter().map(|(o, f)| format!("{o}: differs in {}", f.join(", "))));
        unverified.extend(v.unreadable.iter().map(|(o, why)| format!("{o}: unreadable: {why}")));
        let not_rolled_out: Vec<String> =
            v.rollouts.iter().filter(|r| !r.ready).map(|r| format!("{}: {}", r.object, r.detail)).collect();
        let cutover = v
            .load_balancers
            .iter()
            .map(|(s, (old, new))| Cutover { service: s.clone(), old: old.clone(), new: new.clone() })
            .collect();
        let summary = format!("{} missing or different, {} not rolled out", unverified.len(), not_rolled_out.len());
        // recorded only when it passes: a later run checks again
        if unverified.is_empty() && not_rolled_out.is_empty() {
            self.finish(&mut journal, Phase::Verify, t, summary, events)?;
        }

        let phases: Vec<PhaseTime> = Phase::ALL
            .iter()
            .filter_map(|p| journal.done.get(p).cloned())
            .map(|mut p| {
                p.skipped = !journal.ran.contains(&p.phase);
                p
            })
            .collect();
        let out = RecoveryReport {
            recovery_ms: phases.iter().map(|p| p.elapsed_ms).sum(),
            phases,
            recovered: objects.len() - unverified.len(),
            bundle,
            access: self.access.clone(),
            unverified,
            not_rolled_out,
            cutover,
            dir: self.opts.dir.clone(),
        };
        let p = self.opts.dir.join("report.json");
        std::fs::write(&p, serde_json::to_vec_pretty(&out).unwrap_or_default()).map_err(io(&p))?;
        Ok(out)
    }

    fn start(&self, phase: Phase, events: &EventSink) -> Instant {
        events.emit(Event::PhaseStarted { phase: format!("recover/{}", phase.as_str()), total: 1 });
        Instant::now()
    }

    fn finish(
        &self,
        journal: &mut Journal,
        phase: Phase,
        t: Instant,
        summary: String,
        events: &EventSink,
    ) -> Result<(), Error> {
        let elapsed_ms = t.elapsed().as_millis() as u64;
        events.emit(Event::PhaseFinished { phase: format!("recover/{}", phase.as_str()), elapsed_ms });
        journal.done.insert(phase, PhaseTime { phase, elapsed_ms, skipped: false, summary });
        journal.ran.insert(phase);
        self.save_journal(journal)
    }

    /// The inspect phase: hash and scan the snapshot, refuse damage unless accepted.
    fn inspect(&self, events: &EventSink) -> Result<(Inspection, Journal), Error> {
        let t = self.start(Phase::Inspect, events);
        let sha = sha256_file(&eksodus_etcd::db_path(&self.opts.snapshot))?;
        let mut journal = self.load_journal(&sha)?;
        let inspection = match (&journal.inspection, journal.done.get(&Phase::Inspect)) {
            (Some(i), Some(_)) => i.clone(),
            _ => {
                let snap = eksodus_etcd::Snapshot::scan(&self.opts.snapshot, self.opts.revision)?;
                Inspection {
                    sha256: sha.clone(),
                    integrity: serde_json::to_value(&snap.integrity)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_else(|| format!("{:?}", snap.integrity)),
                    revision: snap.revision,
                    keys: snap.entries.len(),
                    damage: snap.damage.iter().map(damage_line).collect(),
                }
            }
        };
        if inspection.is_damaged() && !self.opts.accept_damage {
            return Err(refuse(
                Phase::Inspect,
                format!(
                    "the snapshot is damaged (integrity: {}); accept the damage to go on without: {}",
                    inspection.integrity,
                    if inspection.damage.is_empty() {
                        "(the file changed after it was saved)".into()
                    } else {
                        inspection.damage.join("; ")
                    }
                ),
            ));
        }
        journal.snapshot_sha256 = sha;
        if !journal.done.contains_key(&Phase::Inspect) {
            journal.inspection = Some(inspection.clone());
            let summary = format!(
                "revision {}, {} keys, {} damaged",
                inspection.revision,
                inspection.keys,
                inspection.damage.len()
            );
            self.finish(&mut journal, Phase::Inspect, t, summary, events)?;
        }
        Ok((inspection, journal))
    }

    /// The export phase: the bundle from the snapshot, streamed.
    fn export(&self, journal: &mut Journal, events: &EventSink) -> Result<BundleSummary, Error> {
        if let (Some(b), Some(_)) = (&journal.bundle, journal.done.get(&Phase::Export)) {
            if self.bundle_dir().join("manifest.json").exists() {
                return Ok(b.clone());
            }
        }
        let t = self.start(Phase::Export, events);
        let dir = self.bundle_dir();
        let export =
            bundle::Export::new(&dir, "", Filters::default(), self.opts.rules.clone())?.with_events(events.clone());
        let keys = encryption_keys(&self.opts)?;
        let snap = eksodus_migrate::source::stream_etcd(&self.opts.snapshot, self.opts.revision, keys, &mut |job| {
            export.push_job(job)
        })?;
        export.set_source(format!("etcd snapshot {} at revision {}", self.opts.snapshot.display(), snap.revision));
        let done = export.finish()?;
        let (objects, _) = bundle::read(&dir)?;
        let mut by_namespace: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        for (o, _) in &objects {
            let ns = if o.namespace().is_empty() { "(cluster)".to_string() } else { o.namespace().to_string() };
            let kind = o.obj_ref().group_kind();
            *by_namespace.entry(ns).or_default().entry(kind).or_default() += 1;
        }
        let summary = BundleSummary {
            objects: done.report.objects,
            by_namespace,
            excluded: done.report.excluded.iter().map(|e| format!("{}: {}", e.object, e.reason)).collect(),
            lost: done
                .report
                .errors
                .iter()
                .map(|e| format!("{}: {}", e.object.clone().unwrap_or_else(|| e.at.clone()), e.reason))
                .collect(),
        };
        journal.bundle = Some(summary.clone());
        let line =
            format!("{} object(s), {} left out, {} lost", summary.objects, summary.excluded.len(), summary.lost.len());
        self.finish(journal, Phase::Export, t, line, events)?;
        Ok(summary)
    }
}

fn damage_line(d: &eksodus_etcd::Damage) -> String {
    format!(
        "{}{}: {}",
        d.key.clone().unwrap_or_else(|| "(unknown key)".into()),
        d.page.map(|p| format!(" (page {p})")).unwrap_or_default(),
        d.reason
    )
}

fn sha256_file(path: &Path) -> Result<String, Error> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn encryption_keys(opts: &RecoveryOptions) -> Result<Option<Arc<eksodus_etcd::encryption::Keys>>, Error> {
    match &opts.encryption_config {
        None => Ok(None),
        Some(text) => eksodus_etcd::encryption::Keys::from_config(text)
            .map(|k| Some(Arc::new(k)))
            .map_err(|m| refuse(Phase::Export, format!("the encryption configuration: {m}"))),
    }
}

/// The old cluster's `kube-system/aws-auth` from the snapshot, when it has one that can be read.
pub fn read_aws_auth(
    snapshot: &Path,
    revision: Option<i64>,
    keys: Option<&eksodus_etcd::encryption::Keys>,
) -> Result<Option<AwsAuth>, Error> {
    let snap = eksodus_etcd::Snapshot::scan(snapshot, revision)?;
    let mut found = None;
    snap.for_each_value(|entry, value| {
        if entry.key == AWS_AUTH_KEY {
            found = Some(eksodus_etcd::recover_value(entry, value, keys));
        }
    })?;
    match found {
        None => Ok(None),
        Some(eksodus_etcd::Recovered::Lost { reason, .. }) => {
            Err(refuse(Phase::Inspect, format!("kube-system/aws-auth is in the snapshot but unreadable: {reason}")))
        }
        Some(eksodus_etcd::Recovered::Object(v)) => {
            let data: BTreeMap<String, String> =
                v.get("data").and_then(|d| serde_json::from_value(d.clone()).ok()).unwrap_or_default();
            AwsAuth::parse(&data)
                .map(Some)
                .map_err(|p| refuse(Phase::Inspect, format!("the old cluster's aws-auth is malformed: {p}")))
        }
    }
}

/// `spec` with the old cluster's aws-auth carried into its access: access entries when the spec's
/// authentication mode reads them (the default), aws-auth mappings otherwise. Node roles of the old cluster
/// are not carried (the new nodegroups have their own), and neither is anything the spec already names.
pub fn with_old_access(mut spec: EnvironmentSpec, aws_auth: Option<&AwsAuth>) -> (EnvironmentSpec, AccessChanges) {
    let mode = spec.access.as_ref().and_then(|a| a.authentication_mode).unwrap_or(AuthenticationMode::ApiAndConfigMap);
    let mut changes = AccessChanges {
        by: if mode == AuthenticationMode::ConfigMap { "aws-auth".into() } else { "access entries".into() },
        ..Default::default()
    };
    let Some(aws_auth) = aws_auth else { return (spec, changes) };
    let access = spec.access.get_or_insert_with(AccessSpec::default);
    if mode == AuthenticationMode::ConfigMap {
        for m in &aws_auth.mappings {
            if m.groups.iter().any(|g| g == "system:nodes") {
                changes.not_carried.push((m.arn.clone(), "a node role of the old cluster".into()));
                continue;
            }
            let named = access
                .mappings
                .iter()
                .any(|x| x.rolearn.as_deref() == Some(&m.arn) || x.userarn.as_deref() == Some(&m.arn));
            if named {
                continue;
            }
            let role = m.kind == eksodus_access::awsauth::Kind::Role;
            access.mappings.push(MappingSpec {
                rolearn: role.then(|| m.arn.clone()),
                userarn: (!role).then(|| m.arn.clone()),
                username: m.username.clone().unwrap_or_else(|| m.arn.clone()),
                groups: m.groups.clone(),
            });
            changes.granted.insert(m.arn.clone(), m.groups.join(","));
        }
    } else {
        let plan = eksodus_access::migrate::plan(aws_auth, mode, &[]);
        for u in plan.unmapped {
            changes.not_carried.push((u.what, u.reason));
        }
        for e in plan.entries {
            if e.entry_type != "STANDARD" {
                changes
                    .not_carried
                    .push((e.principal_arn, format!("a node role of the old cluster ({})", e.entry_type)));
                continue;
            }
            if access.entries.iter().any(|x| x.principal_arn == e.principal_arn) {
                continue;
            }
            let what = if e.policies.is_empty() {
                format!("groups {}", e.kubernetes_groups.join(","))
            } else {
                format!(
                    "{} {}",
                    e.policies.iter().map(|p| p.policy.as_str()).collect::<Vec<_>>().join(","),
                    if e.kubernetes_groups.is_empty() {
                        String::new()
                    } else {
                        format!("groups {}", e.kubernetes_groups.join(","))
                    }
                )
            };
            changes.granted.insert(e.principal_arn.clone(), what.trim().to_string());
            access.entries.push(e);
        }
    }
    (spec, changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aws_auth() -> AwsAuth {
        let roles = "- rolearn: arn:aws:iam::111122223333:role/ops\n  username: ops\n  groups: [system:masters]\n\
                     - rolearn: arn:aws:iam::111122223333:role/nodes\n  username: system:node:{{EC2PrivateDNSName}}\n  groups: [system:bootstrappers, system:nodes]\n\
                     - rolearn: arn:aws:iam::111122223333:role/dev\n  username: dev\n  groups: [developers]\n";
        AwsAuth::parse(&BTreeMap::from([("mapRoles".to_string(), roles.to_string())])).unwrap()
    }

    fn spec(mode: &str) -> EnvironmentSpec {
        EnvironmentSpec::from_yaml(&format!(
            "name: r\nregion: us-east-1\nnetwork: {{cidr: 10.0.0.0/16, azs: 2}}\naccess:\n  authentication_mode: {mode}\n  entries:\n  - principal_arn: arn:aws:iam::111122223333:role/dev\n"
        ))
        .unwrap()
    }

    #[test]
    fn old_access_becomes_entries_or_mappings_without_node_roles_or_duplicates() {
        let (s, c) = with_old_access(spec("API"), Some(&aws_auth()));
        let entries = &s.access.as_ref().unwrap().entries;
        assert_eq!(entries.len(), 2, "the spec's dev entry is kept, ops added, nodes not: {entries:?}");
        assert!(c.granted.contains_key("arn:aws:iam::111122223333:role/ops"), "{c:?}");
        assert!(c.granted["arn:aws:iam::111122223333:role/ops"].contains("AmazonEKSClusterAdminPolicy"), "{c:?}");
        assert!(c.not_carried.iter().any(|(a, _)| a.ends_with("role/nodes")), "{c:?}");
        assert_eq!(c.by, "access entries");

        let (s, c) = with_old_access(spec("CONFIG_MAP"), Some(&aws_auth()));
        let m = &s.access.as_ref().unwrap().mappings;
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!(c.by, "aws-auth");
        assert!(!c.granted.contains_key("arn:aws:iam::111122223333:role/nodes"));

        let (same, c) = with_old_access(spec("API"), None);
        assert_eq!(same, spec("API"));
        assert!(c.granted.is_empty());
    }
}
