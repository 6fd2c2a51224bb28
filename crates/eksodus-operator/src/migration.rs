//! The `Migration` resource: workloads moved from a bundle or an etcd snapshot into a target cluster (an
//! `Environment`'s, or one a kubeconfig Secret names), in resumable phases — export (snapshots only), apply
//! (server-side, with a journal, so a restarted operator sends nothing twice), verify (objects equal, rollouts,
//! the DNS cutover table). It only reads its source: nothing is ever deleted from it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eksodus::migrate::live::{self, MigrateOptions};
use eksodus::migrate::{bundle, filter::Filters, transform::Rules};
use eksodus::EventSink;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, CustomResource, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::controller::{Context, MANAGER};
use crate::crd::Environment;
use crate::Error;

/// Where the workloads come from (exactly one of `bundle` and `etcdSnapshot`). Each is a path the operator
/// can read or an `s3://bucket/key` address (a bundle: the prefix its files are under).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationSource {
    /// A bundle directory (`cargo xtask migrate export`): a path, or the S3 prefix it was copied under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    /// An etcd snapshot of a dead control plane: a path (a snapshot file or a data directory) or an S3 object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_snapshot: Option<String>,
    /// The EncryptionConfiguration that encrypted the snapshot's Secrets (a path or an S3 object), when they
    /// were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_config: Option<String>,
    /// The region of the S3 bucket (default: the operator's region).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The credentials S3 is read with (default: the operator's own identity).
    #[serde(default, skip_serializing_if = "is_default")]
    pub credentials: crate::crd::Credentials,
}

fn is_default<T: Default + PartialEq>(t: &T) -> bool {
    *t == T::default()
}

impl MigrationSource {
    /// True when any part of the source is in S3.
    pub fn in_s3(&self) -> bool {
        [&self.bundle, &self.etcd_snapshot, &self.encryption_config]
            .into_iter()
            .flatten()
            .any(|p| crate::s3::S3Uri::parse(p).is_some())
    }
}

/// A key of a Secret in the resource's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct SecretKey {
    /// The Secret.
    pub name: String,
    /// The key (default `kubeconfig`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Where the workloads go (exactly one).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationTarget {
    /// An `Environment` in the same namespace: its cluster, reached with its credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// A kubeconfig in a Secret of the same namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig_secret: Option<SecretKey>,
}

/// Workloads moved into a cluster.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "eksodus.io",
    version = "v1alpha1",
    kind = "Migration",
    namespaced,
    status = "MigrationStatus",
    shortname = "eksmig",
    category = "eksodus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Objects","type":"integer","jsonPath":".status.objects"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct MigrationSpec {
    /// The source.
    pub source: MigrationSource,
    /// The target.
    pub target: MigrationTarget,
    /// How long verification waits for workloads to roll out, in seconds (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_timeout_seconds: Option<u64>,
}

/// One Service's load-balancer addresses, old and new: what DNS must move.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Cutover {
    /// `namespace/name`.
    pub service: String,
    /// Addresses in the source.
    pub old: Vec<String>,
    /// Addresses in the target (empty while pending).
    pub new: Vec<String>,
}

/// What the migration did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationStatus {
    /// The generation this status is for.
    #[serde(default)]
    pub observed_generation: i64,
    /// `Fetching` (from S3), `Exporting`, `Applying`, `Verifying`, `Succeeded` or `Failed`.
    #[serde(default)]
    pub phase: String,
    /// Words for people (why it failed, what it waits for).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// What the last reconcile downloaded from S3 (a source in S3 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched: Option<crate::s3::Fetched>,
    /// Objects in the bundle.
    #[serde(default)]
    pub objects: u64,
    /// Apply outcomes by kind of outcome (`created`, `updated`, `unchanged`, `failed`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub applied: BTreeMap<String, u64>,
    /// Objects verified equal in the target.
    #[serde(default)]
    pub verified: u64,
    /// Objects that failed, missing or different (at most 50, with the reason).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// Workloads not rolled out yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<String>,
    /// The DNS cutover table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cutover: Vec<Cutover>,
}

/// Checks the spec: exactly one source and one target.
pub fn check(spec: &MigrationSpec) -> Result<(), Vec<crate::crd::SpecError>> {
    let mut errs = Vec::new();
    let bad = |field: &str, message: &str| crate::crd::SpecError { field: field.into(), message: message.into() };
    match (&spec.source.bundle, &spec.source.etcd_snapshot) {
        (Some(_), Some(_)) => errs.push(bad("spec.source", "give bundle or etcdSnapshot, not both")),
        (None, None) => errs.push(bad("spec.source", "give bundle or etcdSnapshot")),
        _ => {}
    }
    if spec.source.encryption_config.is_some() && spec.source.etcd_snapshot.is_none() {
        errs.push(bad("spec.source.encryptionConfig", "only an etcd snapshot has encrypted values"));
    }
    for (field, value) in [
        ("spec.source.bundle", &spec.source.bundle),
        ("spec.source.etcdSnapshot", &spec.source.etcd_snapshot),
        ("spec.source.encryptionConfig", &spec.source.encryption_config),
    ] {
        match value.as_deref().map(|v| (v, crate::s3::S3Uri::parse(v))) {
            Some((_, Some(Err(e)))) => errs.push(bad(field, &e)),
            Some((_, Some(Ok(u)))) if u.key.is_empty() && field != "spec.source.bundle" => {
                errs.push(bad(field, "names a bucket, not an object"))
            }
            Some(("", None)) => errs.push(bad(field, "is empty")),
            _ => {}
        }
    }
    if (spec.source.region.is_some() || !is_default(&spec.source.credentials)) && !spec.source.in_s3() {
        errs.push(bad("spec.source", "region and credentials are for a source in S3, and none is"));
    }
    match (&spec.target.environment, &spec.target.kubeconfig_secret) {
        (Some(_), Some(_)) => errs.push(bad("spec.target", "give environment or kubeconfigSecret, not both")),
        (None, None) => errs.push(bad("spec.target", "give environment or kubeconfigSecret")),
        _ => {}
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

async fn write_status(ctx: &Context, m: &Migration, status: &MigrationStatus) -> Result<(), Error> {
    let api: Api<Migration> = Api::namespaced(ctx.client().clone(), &m.namespace().unwrap_or_default());
    let body =
        serde_json::json!({"apiVersion": Migration::api_version(&()), "kind": Migration::kind(&()), "status": status});
    api.patch_status(&m.name_any(), &PatchParams::apply(MANAGER).force(), &Patch::Apply(body))
        .await
        .map_err(Error::Kube)?;
    Ok(())
}

/// The directory of this migration's own files (an exported bundle, the apply journal).
fn work_dir(ctx: &Context, m: &Migration) -> PathBuf {
    ctx.settings().work_dir.join(m.namespace().unwrap_or_default()).join(m.uid().unwrap_or_else(|| m.name_any()))
}

/// A client of the target cluster, and its API server's URL (which names the apply journal).
async fn target_client(ctx: &Context, m: &Migration) -> Result<(kube::Client, String), Error> {
    let ns = m.namespace().unwrap_or_default();
    if let Some(sk) = &m.spec.target.kubeconfig_secret {
        let key = sk.key.clone().unwrap_or_else(|| "kubeconfig".into());
        let bad = |message: String| Error::Target(format!("Secret {ns}/{} key {key}: {message}", sk.name));
        let secret = Api::<Secret>::namespaced(ctx.client().clone(), &ns)
            .get_opt(&sk.name)
            .await
            .map_err(|e| bad(e.to_string()))?
            .ok_or_else(|| bad("no such Secret".into()))?;
        let text = secret
            .data
            .and_then(|d| d.get(&key).map(|v| String::from_utf8_lossy(&v.0).to_string()))
            .ok_or_else(|| bad("no such key".into()))?;
        let kc = kube::config::Kubeconfig::from_yaml(&text).map_err(|e| bad(e.to_string()))?;
        let conf =
            kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.map_err(|e| bad(e.to_string()))?;
        let url = conf.cluster_url.to_string();
        return Ok((kube::Client::try_from(conf).map_err(|e| bad(e.to_string()))?, url));
    }
    let name = m.spec.target.environment.clone().unwrap_or_default();
    let bad = |message: String| Error::Target(format!("Environment {ns}/{name}: {message}"));
    let env = Api::<Environment>::namespaced(ctx.client().clone(), &ns)
        .get_opt(&name)
        .await
        .map_err(Error::Kube)?
        .ok_or_else(|| bad("no such Environment".into()))?;
    let ready = env.status.as_ref().is_some_and(|s| crate::status::is_true(&s.conditions, "Ready"));
    if !ready {
        return Err(bad("not Ready yet".into()));
    }
    let spec = env.environment_spec().map_err(|e| bad(format!("{} spec problem(s)", e.len())))?;
    let e = ctx.environment(&env, spec, &crate::calls::CallCounter::default()).await?;
    let url = env.status.as_ref().and_then(|s| s.cluster_endpoint.clone()).unwrap_or_default();
    match e.kube().await.map_err(|e| bad(e.to_string()))? {
        Some(c) => Ok((c, url)),
        None => Err(bad("its cluster's API server is not reachable from the operator (cluster access is off)".into())),
    }
}

/// The source's parts as local paths: S3 objects downloaded into the work directory (only what changed since
/// the last download). True with them when the snapshot changed, so an earlier export of it is stale.
async fn local_source(
    ctx: &Context,
    m: &Migration,
    status: &mut MigrationStatus,
) -> Result<(MigrationSource, bool), Error> {
    let src = &m.spec.source;
    let mut local = src.clone();
    if !src.in_s3() {
        return Ok((local, false));
    }
    let mut total = crate::s3::Fetched::default();
    let ns = m.namespace().unwrap_or_default();
    let conf = ctx.s3_conf(src.region.as_deref(), &ns, src.credentials.secret_name.as_deref()).await?;
    let s3 = crate::s3::S3::new(&conf);
    let dir = work_dir(ctx, m).join("source");
    let mut snapshot_changed = false;
    for (value, name, is_dir) in [
        (&mut local.bundle, "bundle", true),
        (&mut local.etcd_snapshot, "snapshot.db", false),
        (&mut local.encryption_config, "encryption-config.yaml", false),
    ] {
        let Some(Some(Ok(uri))) = value.as_deref().map(crate::s3::S3Uri::parse) else { continue };
        let dest = dir.join(name);
        let fetched = if is_dir {
            crate::s3::fetch_prefix(&s3, &uri, &dest).await?
        } else {
            crate::s3::fetch_object(&s3, &uri, &dest).await?
        };
        if !is_dir {
            snapshot_changed |= fetched.downloaded > 0;
        }
        total += fetched;
        *value = Some(dest.display().to_string());
    }
    status.fetched = Some(total);
    Ok((local, snapshot_changed))
}

/// The bundle to apply: the source bundle, or one exported from the snapshot into the work directory (once:
/// an export that finished is reused until the snapshot changes).
fn bundle_dir(ctx: &Context, m: &Migration, src: &MigrationSource, stale: bool) -> Result<PathBuf, Error> {
    if let Some(b) = &src.bundle {
        return Ok(PathBuf::from(b));
    }
    let snapshot = PathBuf::from(src.etcd_snapshot.clone().unwrap_or_default());
    let dir = work_dir(ctx, m).join("bundle");
    if !stale && bundle::read(&dir).is_ok() {
        return Ok(dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| Error::Source(format!("{}: {e}", dir.display())))?;
    let keys = match &src.encryption_config {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| Error::Source(format!("{p}: {e}")))?;
            Some(Arc::new(
                eksodus::etcd::encryption::Keys::from_config(&text).map_err(|e| Error::Source(format!("{p}: {e}")))?,
            ))
        }
        None => None,
    };
    let export = bundle::Export::new(&dir, "", Filters::default(), Rules::default()).map_err(migrate_err)?;
    let snap = eksodus::migrate::source::stream_etcd(&snapshot, None, keys, &mut |job| export.push_job(job))
        .map_err(migrate_err)?;
    export.set_source(format!("etcd snapshot {} at revision {}", snapshot.display(), snap.revision));
    export.finish().map_err(migrate_err)?;
    Ok(dir)
}

fn migrate_err(e: eksodus::migrate::Error) -> Error {
    Error::from(eksodus::Error::from(e))
}

/// Reconciles one `Migration`: every phase runs again from its start each time (export is skipped once done,
/// apply skips what its journal has), so a restart anywhere continues where it was.
pub async fn reconcile(m: Arc<Migration>, ctx: Arc<Context>) -> Result<Action, Error> {
    let start = Instant::now();
    let generation = m.meta().generation.unwrap_or(0);
    let mut status = m.status.clone().unwrap_or_default();
    if status.observed_generation == generation && status.phase == "Succeeded" {
        return Ok(Action::await_change());
    }
    status.observed_generation = generation;
    if let Err(errs) = check(&m.spec) {
        status.phase = "Failed".into();
        status.message = errs.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
        write_status(&ctx, &m, &status).await?;
        ctx.metrics().reconciled("Migration", "invalid", start.elapsed());
        return Ok(Action::await_change());
    }
    let r = run(&m, &ctx, &mut status).await;
    if let Err(e) = &r {
        status.phase = "Failed".into();
        status.message = e.to_string();
    }
    write_status(&ctx, &m, &status).await?;
    let outcome = if r.is_ok() { status.phase.to_lowercase() } else { "error".to_string() };
    ctx.metrics().reconciled("Migration", &outcome, start.elapsed());
    if r.is_ok() {
        ctx.succeeded(&format!("migration/{}/{}", m.namespace().unwrap_or_default(), m.name_any()));
    }
    match r {
        Ok(done) if done => Ok(Action::await_change()),
        // workloads still rolling out: look again soon
        Ok(_) => Ok(Action::requeue(Duration::from_secs(15))),
        Err(e) => Err(e),
    }
}

/// Runs the phases; true when the migration is complete.
async fn run(m: &Migration, ctx: &Context, status: &mut MigrationStatus) -> Result<bool, Error> {
    if m.spec.source.in_s3() {
        status.phase = "Fetching".into();
        write_status(ctx, m, status).await?;
    }
    let (src, stale) = local_source(ctx, m, status).await?;
    if src.etcd_snapshot.is_some() {
        status.phase = "Exporting".into();
        write_status(ctx, m, status).await?;
    }
    let dir = bundle_dir(ctx, m, &src, stale)?;
    let (objects, report) = bundle::read(&dir).map_err(migrate_err)?;
    status.objects = objects.len() as u64;
    let (client, url) = target_client(ctx, m).await?;
    status.phase = "Applying".into();
    status.message.clear();
    write_status(ctx, m, status).await?;
    let journal_dir = work_dir(ctx, m);
    std::fs::create_dir_all(&journal_dir).map_err(|e| Error::Source(format!("{}: {e}", journal_dir.display())))?;
    let target = live::TargetId::of(&client, &url).await.map_err(migrate_err)?;
    let opts = MigrateOptions { journal: Some(live::journal_path(&journal_dir, &target)), ..Default::default() };
    let sink = EventSink::discard();
    let applied = live::apply(&client, &objects, &opts, &sink).await.map_err(migrate_err)?;
    status.applied = applied.counts().into_iter().map(|(k, v)| (k.to_string(), v as u64)).collect();
    status.problems = applied.problems().into_iter().take(50).collect();
    if !applied.is_success() {
        return Err(Error::Migration(format!("{} object(s) not applied", status.problems.len())));
    }
    status.phase = "Verifying".into();
    write_status(ctx, m, status).await?;
    let timeout = Duration::from_secs(m.spec.verify_timeout_seconds.unwrap_or(300));
    // one pass without waiting: a reconcile does not block on rollouts, it comes back for them
    let v =
        live::verify(&client, &objects, &report.load_balancers, Duration::ZERO, &sink).await.map_err(migrate_err)?;
    status.verified = (objects.len() - v.missing.len() - v.different.len() - v.unreadable.len()) as u64;
    status.problems = v
        .missing
        .iter()
        .map(|o| format!("{o}: missing"))
        .chain(v.different.iter().map(|(o, f)| format!("{o}: differs at {}", f.join(", "))))
        .chain(v.unreadable.iter().map(|(o, why)| format!("{o}: unreadable: {why}")))
        .take(50)
        .collect();
    status.waiting = v.rollouts.iter().filter(|r| !r.ready).map(|r| format!("{}: {}", r.object, r.detail)).collect();
    status.cutover = v
        .load_balancers
        .iter()
        .map(|(s, (old, new))| Cutover { service: s.clone(), old: old.clone(), new: new.clone() })
        .collect();
    if !v.objects_match() {
        return Err(Error::Migration(format!(
            "{} object(s) differ from the bundle in the target",
            status.problems.len()
        )));
    }
    if v.is_success() {
        status.phase = "Succeeded".into();
        status.message = format!("{} object(s) in the target as the bundle has them", status.verified);
        return Ok(true);
    }
    let waited = m.meta().creation_timestamp.as_ref().map(|t| {
        let now = k8s_openapi::jiff::Timestamp::now();
        Duration::from_secs(now.as_second().saturating_sub(t.0.as_second()).max(0) as u64)
    });
    status.message = format!(
        "{} workload(s) rolling out, {} load balancer(s) without an address",
        status.waiting.len(),
        v.load_balancers.values().filter(|(_, new)| new.is_empty()).count()
    );
    if waited.is_some_and(|w| w > timeout) {
        return Err(Error::Migration(format!("not complete after {}s: {}", timeout.as_secs(), status.message)));
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_migration_needs_one_source_and_one_target() {
        let mut s = MigrationSpec {
            source: MigrationSource { bundle: Some("/b".into()), ..Default::default() },
            target: MigrationTarget { environment: Some("shop".into()), ..Default::default() },
            verify_timeout_seconds: None,
        };
        assert!(check(&s).is_ok());
        s.source.etcd_snapshot = Some("/s".into());
        s.target.kubeconfig_secret = Some(SecretKey { name: "k".into(), key: None });
        s.source.encryption_config = Some("/e".into());
        let fields: Vec<String> = check(&s).unwrap_err().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["spec.source", "spec.target"]);
        s.source.etcd_snapshot = None;
        let fields: Vec<String> = check(&s).unwrap_err().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["spec.source.encryptionConfig", "spec.target"]);
    }

    #[test]
    fn s3_sources_are_checked_by_field() {
        let target = MigrationTarget { environment: Some("shop".into()), ..Default::default() };
        let spec =
            |source: MigrationSource| MigrationSpec { source, target: target.clone(), verify_timeout_seconds: None };
        let ok = MigrationSource {
            etcd_snapshot: Some("s3://backups/etcd/snap.db".into()),
            encryption_config: Some("/etc/enc.yaml".into()),
            region: Some("eu-west-1".into()),
            credentials: crate::crd::Credentials { secret_name: Some("reader".into()) },
            ..Default::default()
        };
        assert!(ok.in_s3());
        assert!(check(&spec(ok)).is_ok());
        assert!(check(&spec(MigrationSource { bundle: Some("s3://backups".into()), ..Default::default() })).is_ok());
        let errs = check(&spec(MigrationSource {
            etcd_snapshot: Some("s3://backups/".into()),
            encryption_config: Some("s3://Bad_Bucket/k".into()),
            ..Default::default()
        }))
        .unwrap_err();
        let got: Vec<(&str, &str)> = errs.iter().map(|e| (e.field.as_str(), e.message.as_str())).collect();
        assert_eq!(got[0], ("spec.source.etcdSnapshot", "names a bucket, not an object"));
        assert_eq!(got[1].0, "spec.source.encryptionConfig");
        assert!(got[1].1.contains("Bad_Bucket"), "{got:?}");
        // region and credentials mean nothing without S3
        let errs = check(&spec(MigrationSource {
            bundle: Some("/b".into()),
            region: Some("eu-west-1".into()),
            ..Default::default()
        }))
        .unwrap_err();
        assert_eq!(errs[0].field, "spec.source");
    }
}
