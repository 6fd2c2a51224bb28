//! `plan|up|down|upgrade`: the whole environment, rendered. All decisions are `eksodus::cluster::environment`'s.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use eksodus::cluster::environment::{EnvPlan, Environment, KubeAccess};
use eksodus::cluster::upgrade::{Preflight, Status};

use crate::render;

/// Arguments shared by the environment commands.
#[derive(Args)]
pub struct EnvArgs {
    /// The spec file: eksodus's own, or an eksctl ClusterConfig.
    #[arg(short = 'f', long = "file")]
    pub file: std::path::PathBuf,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    /// Print JSON on stdout (progress goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Use the local emulator (started if needed) instead of AWS.
    #[arg(long)]
    pub local: bool,
    /// AWS profile.
    #[arg(long)]
    pub profile: Option<String>,
    /// Skip the access-entry lockout guard.
    #[arg(long)]
    pub force: bool,
    /// Do not talk to the cluster's API server (a private endpoint, a broken control plane): `down` removes the
    /// load balancers its controllers made by their tags instead, `up` leaves the Kubernetes-side steps pending.
    #[arg(long)]
    pub skip_kubernetes: bool,
}

async fn environment(a: &EnvArgs) -> Result<Environment> {
    let spec = eksodus::spec::read(&a.file)?.spec;
    let conf = crate::target(&spec.region, a.local, a.profile.clone()).await?.load().await;
    let mut b = Environment::builder(spec).aws(&conf).force(a.force);
    if a.local || a.skip_kubernetes {
        // the emulated cluster's endpoint leads nowhere, or the user said not to try
        b = b.kube(KubeAccess::None);
    }
    // otherwise tokens are signed with the configuration's credentials, refreshed as they expire
    Ok(b.build()?)
}

fn render_env_plan(p: &EnvPlan) -> String {
    let mut out = render::plan(&p.plan);
    for d in &p.deferred {
        let _ = writeln!(out, "  (after this round) {d}");
    }
    for n in &p.notes {
        let _ = writeln!(out, "  note: {n}");
    }
    out
}

fn plan_json(p: &EnvPlan) -> serde_json::Value {
    serde_json::json!({
        "plan": render::plan_json(&p.plan),
        "deferred": p.deferred,
        "notes": p.notes,
        "cluster": p.cluster,
    })
}

/// `plan`: exit 0 when converged, 2 when something would change.
pub async fn plan(a: EnvArgs) -> Result<ExitCode> {
    let env = environment(&a).await?;
    let p = env.plan().await?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&plan_json(&p))?);
    } else {
        out!("{}", render_env_plan(&p));
    }
    Ok(if p.is_converged() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

/// `up`: plan, confirm, apply in rounds until the plan is empty.
pub async fn up(a: EnvArgs) -> Result<ExitCode> {
    let env = environment(&a).await?;
    let p = env.plan().await?;
    if !a.json {
        out!("{}", render_env_plan(&p));
    }
    if p.is_converged() {
        if a.json {
            outln!("{}", serde_json::json!({"plan": plan_json(&p), "rounds": []}));
        }
        return Ok(ExitCode::SUCCESS);
    }
    if p.plan.changes().any(|s| eksodus::cluster::environment::is_destructive(s.action)) {
        eprintln!("This plan deletes or replaces resources.");
    }
    crate::confirm("apply these changes", a.yes)?;
    let progress = render::Progress::new(a.json);
    let report = env.up_from(p, &progress.sink()).await?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for (i, r) in report.rounds.iter().enumerate() {
            outln!("\nRound {}: {}", i + 1, r.plan.plan.summary());
            out!("{}", render::report(&r.report));
        }
        if !report.aws_auth.is_empty() {
            outln!("aws-auth: {} change(s) merged into kube-system/aws-auth", report.aws_auth.len());
        }
        for c in &report.service_accounts {
            use eksodus::access::serviceaccounts::Change;
            match c {
                Change::Created { service_account } => outln!("service account {service_account}: created"),
                Change::Updated { service_account } => outln!("service account {service_account}: updated"),
                Change::Deleted { service_account } => outln!("service account {service_account}: deleted (no longer in the spec)"),
                Change::NotOurs { service_account } => outln!(
                    "service account {service_account}: exists and is not eksodus's, left as it is (give it the role yourself)"
                ),
            }
        }
        if !report.eni_configs.is_empty() {
            outln!("ENIConfigs applied: {}", report.eni_configs.join(", "));
        }
        if !report.cni_config.is_empty() {
            outln!("kube-system/amazon-vpc-cni: {} set to true (Windows nodes)", report.cni_config.join(", "));
        }
        if let Some(s) = &report.kube_skipped {
            outln!("skipped: {s}");
        }
        outln!("Converged: a new plan is empty.");
    }
    Ok(ExitCode::SUCCESS)
}

/// `down`: plan the removal, confirm, clean up the Kubernetes side, remove, report what is left.
pub async fn down(a: EnvArgs) -> Result<ExitCode> {
    let env = environment(&a).await?;
    let destroy = env.destroy_plan().await?;
    if !a.json {
        out!("{}", render::plan(&destroy.plan));
    }
    if destroy.plan.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    crate::confirm("destroy these resources", a.yes)?;
    let progress = render::Progress::new(a.json);
    let report = env.down_from(destroy, &progress.sink(), Duration::from_secs(600)).await?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        if let Some(c) = &report.cleanup {
            outln!(
                "Kubernetes cleanup: {} LoadBalancer Service(s), {} Ingress(es) deleted{}",
                c.services.len(),
                c.ingresses.len(),
                if c.remaining.is_empty() {
                    String::new()
                } else {
                    format!("; still there: {}", c.remaining.join(", "))
                }
            );
        }
        if let Some(s) = &report.kube_skipped {
            outln!("skipped: {s}");
        }
        if let Some(sw) = report.swept.as_ref().filter(|s| !s.load_balancers.is_empty() || !s.target_groups.is_empty())
        {
            outln!(
                "removed by their cluster tags: {} load balancer(s), {} target group(s)",
                sw.load_balancers.len(),
                sw.target_groups.len()
            );
        }
        for f in report.swept.iter().flat_map(|s| &s.failed) {
            outln!("  could not remove: {f}");
        }
        out!("{}", render::report(&report.report));
        for n in &report.not_checked {
            outln!("not checked: {n}");
        }
        if report.remaining.is_empty() {
            outln!("Nothing tagged eksodus.io/environment={} is left.", env.spec.name);
        } else {
            outln!("Still there:");
            for l in &report.remaining {
                outln!("  {l}");
            }
        }
    }
    if !report.report.is_success() || !report.remaining.is_empty() {
        bail!("down left {} resource(s)", report.remaining.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// A preflight as a table.
pub fn render_preflight(p: &Preflight) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Preflight {} -> {}:", p.from, p.to);
    for c in &p.checks {
        let mark = match c.status {
            Status::Pass => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Skipped => "skip",
        };
        let _ = writeln!(out, "  [{mark}] {:<20} {}", c.name, c.detail);
    }
    out
}

/// `upgrade --to`: preflight every step, show the plan, confirm, apply.
pub async fn upgrade(a: EnvArgs, to: String) -> Result<ExitCode> {
    let env = environment(&a).await?;
    let (preflights, plan, _) = env.upgrade_plan(&to).await?;
    if !a.json {
        for p in &preflights {
            out!("{}", render_preflight(p));
        }
        out!("{}", render::plan(&plan));
    }
    if plan.is_empty() {
        if a.json {
            outln!("{}", serde_json::json!({"preflights": preflights, "plan": render::plan_json(&plan)}));
        }
        return Ok(ExitCode::SUCCESS);
    }
    crate::confirm(&format!("upgrade to {to}"), a.yes)?;
    let progress = render::Progress::new(a.json);
    let report = env.upgrade_from(preflights, plan, &progress.sink()).await?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else if let Some(r) = &report.report {
        out!("{}", render::report(r));
        outln!("Set cluster.version to {to} in the spec so the next plan is empty.");
    }
    if report.report.as_ref().is_some_and(|r| !r.is_success()) {
        bail!("the upgrade did not finish; run it again to continue from where the cluster is");
    }
    Ok(ExitCode::SUCCESS)
}
