//! `cargo xtask migrate export|plan|apply|verify`: renders what `eksodus::migrate` does.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use eksodus::migrate::bundle;
use eksodus::migrate::filter::Filters;
use eksodus::migrate::live::{self, MigrateOptions, Outcome};
use eksodus::migrate::transform::Rules;
use eksodus::{Event, EventSink};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Migration commands.
#[derive(Subcommand)]
pub enum MigrateCmd {
    /// Read a cluster (or a directory of manifests), filter, transform and order it into a bundle.
    Export(Box<ExportArgs>),
    /// Dry-run the bundle against the target: what would be created or changed, per object (exit 2 when
    /// something would change).
    Plan(TargetArgs),
    /// Apply the bundle with server-side apply, wave by wave; resumes where an interrupted run stopped.
    Apply(TargetArgs),
    /// Wait for the bundle's workloads to roll out in the target; show load-balancer addresses old -> new.
    Verify(TargetArgs),
}

/// `migrate export`.
#[derive(Args)]
pub struct ExportArgs {
    /// The source cluster's context.
    #[arg(long, conflicts_with = "from_dir")]
    from_context: Option<String>,
    /// A directory of manifests (YAML, JSON, Lists) instead of a cluster.
    #[arg(long, conflicts_with = "from_etcd_snapshot")]
    from_dir: Option<PathBuf>,
    /// An etcd snapshot file or data directory instead of a cluster (the dead-control-plane case).
    #[arg(long)]
    from_etcd_snapshot: Option<PathBuf>,
    /// With `--from-etcd-snapshot`: read at this revision instead of the newest.
    #[arg(long)]
    revision: Option<i64>,
    /// With `--from-etcd-snapshot`: the API server's EncryptionConfiguration, to decrypt values encrypted at rest.
    #[arg(long)]
    encryption_config: Option<PathBuf>,
    /// The bundle directory to write.
    #[arg(long)]
    out: PathBuf,
    /// Kubeconfig file (default: the standard one).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Mapping rules (storage classes, ingress classes, registries, IRSA roles, namespaces) as YAML.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Only these namespaces.
    #[arg(long = "include-namespace")]
    include_namespaces: Vec<String>,
    /// Never these namespaces.
    #[arg(long = "exclude-namespace")]
    exclude_namespaces: Vec<String>,
    /// Only these resources (`apps/Deployment`, `ConfigMap`).
    #[arg(long = "include-resource")]
    include_resources: Vec<String>,
    /// Never these resources.
    #[arg(long = "exclude-resource")]
    exclude_resources: Vec<String>,
    /// Label selector.
    #[arg(long, short = 'l')]
    selector: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// The commands that talk to the target.
#[derive(Args)]
pub struct TargetArgs {
    /// The bundle directory.
    bundle: PathBuf,
    /// The target cluster's context.
    #[arg(long)]
    to_context: Option<String>,
    /// Kubeconfig file (default: the standard one).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Do not ask before applying.
    #[arg(long)]
    yes: bool,
    /// Requests in flight within a wave.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds to wait for CRDs, webhook backends, and (verify) rollouts.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

async fn client(kubeconfig: Option<&Path>, context: Option<&String>) -> Result<(kube::Client, String)> {
    crate::kube_client(kubeconfig, context).await
}

/// A sink that moves `b` to each progress event's count.
fn counting(b: &ProgressBar) -> EventSink {
    let b = b.clone();
    EventSink::new(move |e| {
        if let Event::Progress { done, .. } = e {
            b.set_position(*done);
        }
    })
}

fn bar(json: bool, total: u64, what: &str) -> ProgressBar {
    let b = ProgressBar::with_draw_target(
        Some(total),
        if json { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() },
    );
    b.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} {elapsed}")
            .expect("template")
            .progress_chars("=> "),
    );
    b.set_message(what.to_string());
    b
}

/// Runs one migration command.
pub async fn run(cmd: MigrateCmd) -> Result<ExitCode> {
    match cmd {
        MigrateCmd::Export(a) => export(*a).await,
        MigrateCmd::Plan(a) => apply(a, true).await,
        MigrateCmd::Apply(a) => apply(a, false).await,
        MigrateCmd::Verify(a) => verify(a).await,
    }
}

async fn export(a: ExportArgs) -> Result<ExitCode> {
    let rules = match &a.rules {
        Some(p) => Rules::from_yaml(&std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)?,
        None => Rules::default(),
    };
    let filters = Filters {
        include_namespaces: a.include_namespaces,
        exclude_namespaces: a.exclude_namespaces,
        include_resources: a.include_resources,
        exclude_resources: a.exclude_resources,
        selector: a.selector,
        include_system_namespaces: false,
    };
    filters.validate()?;
    let t = std::time::Instant::now();
    // objects are filtered, transformed and written while the source is still being read
    // each source names itself once it is open (the revision read, the cluster's URL)
    let exported = bar(a.json, 0, "exported");
    let export = bundle::Export::new(&a.out, "", filters, rules)?.with_events(counting(&exported));
    let feed = |read: eksodus::migrate::source::Read| {
        read.errors.into_iter().for_each(|e| export.error(e));
        read.objects.into_iter().for_each(|o| export.push(o));
    };
    match (&a.from_dir, &a.from_etcd_snapshot, &a.from_context) {
        (Some(d), _, _) => {
            export.set_source(format!("directory {}", d.display()));
            feed(eksodus::migrate::source::read_dir(d)?)
        }
        (None, Some(f), _) => {
            let keys = match &a.encryption_config {
                Some(p) => Some(Arc::new(
                    eksodus::etcd::encryption::Keys::from_config(
                        &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
                    )
                    .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
                )),
                None => None,
            };
            let snap = eksodus::migrate::source::stream_etcd(f, a.revision, keys, &mut |job| export.push_job(job))?;
            export.set_source(format!("etcd snapshot {} at revision {}", f.display(), snap.revision));
        }
        (None, None, ctx) => {
            let (c, url) = client(a.kubeconfig.as_deref(), ctx.as_ref()).await?;
            export.set_source(format!("cluster {url}"));
            let b = bar(a.json, 0, "listing");
            // each page goes to the export's writers as it arrives
            live::export_into(&c, 500, &counting(&b), &mut |r| match r {
                Ok(o) => export.push(o),
                Err(e) => export.error(e),
            })
            .await?;
            b.finish_and_clear();
        }
    }
    let read_s = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let done = export.finish()?;
    exported.finish_and_clear();
    let finish_s = t.elapsed().as_secs_f64();
    if std::env::var_os("EKSODUS_REPORT_PEAK_RSS").is_some() {
        eprintln!("phases: read+write {read_s:.2}s, order+manifest {finish_s:.2}s");
        // for `cargo xtask bench etcd`, which runs the export as a process of its own
        let hwm = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        });
        eprintln!("peak RSS MiB: {}", hwm.map_or("?".into(), |k| (k / 1024).to_string()));
    }
    let report = &done.report;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(report)?);
    } else {
        outln!("{} object(s) in {} wave(s) written to {}", report.objects, done.waves(), a.out.display());
        outln!("{} left out (reasons in report.json)", report.excluded.len());
        for e in &report.errors {
            outln!("  error: {}: {}", e.at, e.reason);
        }
        for c in &report.cycles {
            outln!("  cycle: {}", c.join(" -> "));
        }
    }
    Ok(if report.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

async fn apply(a: TargetArgs, dry_run: bool) -> Result<ExitCode> {
    let (objects, _) = bundle::read(&a.bundle)?;
    let (c, url) = client(a.kubeconfig.as_deref(), a.to_context.as_ref()).await?;
    if !dry_run {
        crate::confirm(&format!("apply {} object(s) to {url}", objects.len()), a.yes)?;
    }
    let b = bar(a.json, objects.len() as u64, if dry_run { "diffing" } else { "applying" });
    let opts = MigrateOptions {
        concurrency: a.concurrency,
        dry_run,
        // one journal per cluster: a target recreated at the same URL is a new cluster, applied to again
        journal: if dry_run { None } else { Some(live::journal_path(&a.bundle, &live::TargetId::of(&c, &url).await?)) },
        wait: Duration::from_secs(a.timeout),
    };
    let report = live::apply(&c, &objects, &opts, &counting(&b)).await?;
    b.finish_and_clear();
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for o in &report.objects {
            match &o.outcome {
                Outcome::Created => outln!("  + {}", o.object),
                Outcome::Updated { fields } => outln!("  ~ {}: {}", o.object, fields.join(", ")),
                Outcome::Failed { reason, message } => outln!("  ! {}: {reason}: {message}", o.object),
                Outcome::Held { why } => outln!("  ! {}: held: {why}", o.object),
                Outcome::Unchanged | Outcome::Journaled | Outcome::Applied => {}
            }
        }
        outln!("{:?} in {:.1}s", report.counts(), report.elapsed_ms as f64 / 1000.0);
    }
    if !report.is_success() {
        bail!("some objects were not applied; fix them and run again (the journal skips what is done)");
    }
    let changes = report.objects.iter().any(|o| matches!(o.outcome, Outcome::Created | Outcome::Updated { .. }));
    Ok(if dry_run && changes { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

async fn verify(a: TargetArgs) -> Result<ExitCode> {
    let (objects, report) = bundle::read(&a.bundle)?;
    let (c, _) = client(a.kubeconfig.as_deref(), a.to_context.as_ref()).await?;
    let b = bar(a.json, objects.len() as u64, "verifying");
    let v = live::verify(&c, &objects, &report.load_balancers, Duration::from_secs(a.timeout), &counting(&b)).await?;
    b.finish_and_clear();
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for m in &v.missing {
            outln!("  MISSING {m}");
        }
        for (o, fields) in &v.different {
            outln!("  DIFFERS {o}: {}", fields.join(", "));
        }
        for (o, why) in &v.unreadable {
            outln!("  UNREADABLE {o}: {why}");
        }
        outln!(
            "{} of {} object(s) in the target as the bundle has them",
            objects.len() - v.missing.len() - v.different.len() - v.unreadable.len(),
            objects.len()
        );
        for r in &v.rollouts {
            outln!("  {} {}: {}", if r.ready { "ok  " } else { "WAIT" }, r.object, r.detail);
        }
        for (svc, (old, new)) in &v.load_balancers {
            outln!(
                "  DNS {svc}: {} -> {}",
                old.join(","),
                if new.is_empty() { "(pending)".into() } else { new.join(",") }
            );
        }
    }
    Ok(if v.is_success() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
