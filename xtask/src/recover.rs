//! `cargo xtask recover`: renders what `eksodus::recover::Recovery` plans and does.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use eksodus::recover::{Recovery, RecoveryOptions, RecoveryPlan, RecoveryReport};
use eksodus::{EventSink, KubeAccess};

use crate::render;

/// `recover`.
#[derive(Args)]
pub struct RecoverArgs {
    /// The spec of the new environment (eksodus's own, or an eksctl ClusterConfig).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// The dead cluster's etcd snapshot file (or data directory).
    #[arg(long)]
    pub from_etcd_snapshot: PathBuf,
    /// The old API server's EncryptionConfiguration, to decrypt Secrets encrypted at rest.
    #[arg(long)]
    pub encryption_config: Option<PathBuf>,
    /// Mapping rules for the export (storage classes, registries, namespaces) as YAML.
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Read the snapshot at this revision instead of the newest.
    #[arg(long)]
    pub revision: Option<i64>,
    /// The recovery directory (journal, bundle, report); default `recovery-<environment>`.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Go on with a damaged snapshot; what cannot be read is reported as lost.
    #[arg(long)]
    pub accept_damage: bool,
    /// Do it (without: print the plan and exit 2 when something would change).
    #[arg(long)]
    pub yes: bool,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Use the local emulator (started if needed) instead of AWS.
    #[arg(long)]
    pub local: bool,
    /// AWS profile.
    #[arg(long)]
    pub profile: Option<String>,
    /// Reach the new cluster through this kubeconfig instead of its endpoint (with `--local`: the API server
    /// standing in for the emulated cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Seconds to wait for CRDs, webhook backends and rollouts.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Skip the lockout guard of access changes.
    #[arg(long)]
    pub force: bool,
}

/// Runs `recover`.
pub async fn run(a: RecoverArgs) -> Result<ExitCode> {
    let spec = eksodus::spec::from_file(&a.file)?;
    let conf = crate::target(&spec.region, a.local, a.profile.clone()).await?.load().await;
    let mut opts = RecoveryOptions::new(
        &a.from_etcd_snapshot,
        a.dir.clone().unwrap_or_else(|| PathBuf::from(format!("recovery-{}", spec.name))),
    );
    opts.encryption_config = match &a.encryption_config {
        Some(p) => Some(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?),
        None => None,
    };
    if let Some(p) = &a.rules {
        opts.rules = eksodus::migrate::transform::Rules::from_yaml(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )?;
    }
    opts.revision = a.revision;
    opts.accept_damage = a.accept_damage;
    opts.wait = Duration::from_secs(a.timeout);
    let mut recovery = Recovery::new(spec, &conf, opts)?.force(a.force);
    match &a.kubeconfig {
        Some(k) => recovery = recovery.kube(KubeAccess::Client(crate::kube_client(Some(k), None).await?.0)),
        None if a.local => anyhow::bail!(
            "with --local the emulated cluster's endpoint leads nowhere: give --kubeconfig of an API server standing in for it"
        ),
        None => {}
    }
    let plan = recovery.plan(&EventSink::discard()).await?;
    if !a.yes {
        if a.json {
            outln!("{}", serde_json::to_string_pretty(&plan)?);
        } else {
            out!("{}", render_plan(&plan));
        }
        return Ok(if plan.has_changes() { ExitCode::from(2) } else { ExitCode::SUCCESS });
    }
    if !a.json {
        out!("{}", render_plan(&plan));
    }
    let progress = render::Progress::new(a.json);
    let report = recovery.run(&progress.sink()).await?;
    drop(progress);
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        out!("{}", render_report(&report));
    }
    Ok(if report.is_success() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The plan as text: the snapshot, the bundle by namespace and kind, who gets access, the environment plan.
pub fn render_plan(p: &RecoveryPlan) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let i = &p.inspection;
    let _ = writeln!(
        s,
        "snapshot: revision {}, {} keys, integrity {}, sha256 {}",
        i.revision,
        i.keys,
        i.integrity,
        &i.sha256[..12.min(i.sha256.len())]
    );
    for d in &i.damage {
        let _ = writeln!(s, "  damaged: {d}");
    }
    let _ = writeln!(
        s,
        "bundle: {} object(s), {} left out (the new cluster makes them), {} lost",
        p.bundle.objects,
        p.bundle.excluded.len(),
        p.bundle.lost.len()
    );
    for (ns, kinds) in &p.bundle.by_namespace {
        let list: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let _ = writeln!(s, "  {ns}: {}", list.join(", "));
    }
    for l in &p.bundle.lost {
        let _ = writeln!(s, "  LOST {l}");
    }
    let _ = writeln!(s, "access (by {}):", p.access.by);
    for (who, what) in &p.access.granted {
        let _ = writeln!(s, "  + {who}: {what}");
    }
    for (who, why) in &p.access.not_carried {
        let _ = writeln!(s, "  - {who}: not carried: {why}");
    }
    let _ = writeln!(s, "environment:");
    s.push_str(&render::plan(&p.environment.plan));
    if !p.done.is_empty() {
        let done: Vec<&str> = p.done.iter().map(|d| d.as_str()).collect();
        let _ = writeln!(s, "done by an earlier run: {}", done.join(", "));
    }
    s
}

/// The report as text: time per phase, what was recovered, the DNS cutover table.
pub fn render_report(r: &RecoveryReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    for p in &r.phases {
        let when = if p.skipped { " (done before)" } else { "" };
        let _ = writeln!(s, "  {:<8} {:>8.1}s  {}{when}", p.phase.as_str(), p.elapsed_ms as f64 / 1000.0, p.summary);
    }
    let _ = writeln!(s, "recovery time: {:.1}s", r.recovery_ms as f64 / 1000.0);
    let _ = writeln!(
        s,
        "{} object(s) recovered and verified; {} left out; {} lost",
        r.recovered,
        r.bundle.excluded.len(),
        r.bundle.lost.len()
    );
    for u in &r.unverified {
        let _ = writeln!(s, "  NOT VERIFIED {u}");
    }
    for u in &r.not_rolled_out {
        let _ = writeln!(s, "  NOT ROLLED OUT {u}");
    }
    if !r.cutover.is_empty() {
        let _ = writeln!(s, "DNS cutover:");
        for c in &r.cutover {
            let new = if c.new.is_empty() { "(pending)".to_string() } else { c.new.join(",") };
            let _ = writeln!(s, "  {:<32} {} -> {new}", c.service, c.old.join(","));
        }
    }
    let _ = writeln!(s, "report: {}", r.dir.join("report.json").display());
    s
}
