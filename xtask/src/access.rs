//! `cargo xtask access ...`: aws-auth, access entries, IAM, and the policy eksodus itself needs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use eksodus::access::awsauth::{AwsAuth, Change, Kind, Mapping};
use eksodus::access::cluster::{AwsAuthApi, EditOptions};
use eksodus::access::entries::AccessEntries;
use eksodus::access::iam::Iam;
use eksodus::core::engine::{ApplyOptions, Engine};
use eksodus::core::plan::Plan;
use eksodus::core::spec::EnvironmentSpec;
use serde_json::{json, Value};

use crate::{confirm, load, render, target};

#[derive(Subcommand)]
pub enum AccessCmd {
    /// The aws-auth ConfigMap.
    AwsAuth {
        #[command(subcommand)]
        cmd: AwsAuthCmd,
    },
    /// EKS access entries and the authentication mode.
    Entries {
        #[command(subcommand)]
        cmd: EntriesCmd,
    },
    /// IAM roles (cluster, node, IRSA) and the OIDC provider.
    Iam {
        #[command(subcommand)]
        cmd: IamCmd,
    },
    /// Plan, then apply, the move from aws-auth to access entries (mode CONFIG_MAP -> API_AND_CONFIG_MAP).
    MigrateToAccessEntries {
        #[command(flatten)]
        kube: KubeArgs,
        #[command(flatten)]
        aws: AwsOnly,
        /// The spec file.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Print the least-privilege IAM policy eksodus needs for every AWS call it makes on the environment of a
    /// spec (up, upgrade, down; KMS actions only when the spec has eksodus create the secrets key).
    IamPolicy {
        /// The spec file (its name scopes iam:PassRole; its encryption decides the KMS actions).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum AwsAuthCmd {
    /// Parse a ConfigMap YAML file and print the normalized mappings (exit 1 naming entry and field).
    Check {
        /// The file.
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show what `apply` would change in the cluster's aws-auth.
    Diff(AwsAuthArgs),
    /// Merge the spec's mappings into the cluster's aws-auth (others' entries are kept).
    Apply(AwsAuthArgs),
}

#[derive(Args)]
pub struct KubeArgs {
    /// Kubeconfig file (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Context in the kubeconfig.
    #[arg(long)]
    context: Option<String>,
}

#[derive(Args)]
pub struct AwsOnly {
    /// Use the local emulator.
    #[arg(long)]
    local: bool,
    /// AWS profile.
    #[arg(long)]
    profile: Option<String>,
}

#[derive(Args)]
pub struct AwsAuthArgs {
    /// The spec file.
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    #[command(flatten)]
    kube: KubeArgs,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
    /// Skip the lockout guard.
    #[arg(long)]
    force: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum EntriesCmd {
    /// Show what apply would do (exit 2 when changes are pending).
    Plan(SpecAws),
    /// Create, update and delete the spec's access entries; move the mode forward if asked.
    Apply(SpecAws),
}

#[derive(Subcommand)]
pub enum IamCmd {
    /// Show what apply would do (exit 2 when changes are pending).
    Plan(SpecAws),
    /// Create or update the roles and the OIDC provider.
    Apply(SpecAws),
    /// Remove every role and provider the environment owns.
    Destroy(SpecAws),
}

#[derive(Args)]
pub struct SpecAws {
    /// The spec file.
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    #[command(flatten)]
    aws: AwsOnly,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

async fn kube_client(k: &KubeArgs) -> Result<kube::Client> {
    Ok(crate::kube_client(k.kubeconfig.as_deref(), k.context.as_ref()).await?.0)
}

fn mapping_json(m: &Mapping) -> Value {
    json!({
        "kind": m.kind, "arn": m.arn, "normalized_arn": eksodus::access::awsauth::normalize_arn(m.kind, &m.arn),
        "username": m.username, "groups": m.groups,
    })
}

fn show_changes(changes: &[Change]) {
    if changes.is_empty() {
        outln!("No changes to aws-auth.");
    }
    for c in changes {
        match c {
            Change::Added { mapping } => outln!(
                "  + {:?} {} -> {} {:?}",
                mapping.kind,
                mapping.arn,
                mapping.username.as_deref().unwrap_or(""),
                mapping.groups
            ),
            Change::Updated { from, to } => outln!(
                "  ~ {:?} {}: {:?} {:?} -> {:?} {:?}",
                to.kind,
                to.arn,
                from.username,
                from.groups,
                to.username,
                to.groups
            ),
            Change::Removed { mapping } => outln!("  - {:?} {}", mapping.kind, mapping.arn),
            Change::AccountAdded { account } => outln!("  + Account {account}"),
            Change::AccountRemoved { account } => outln!("  - Account {account}"),
        }
    }
}

async fn clients(spec: &EnvironmentSpec, a: &AwsOnly) -> Result<aws_config::SdkConfig> {
    Ok(target(&spec.region, a.local, a.profile.clone()).await?.load().await)
}

async fn run_plan(plan: &Plan, exec: &dyn eksodus::core::engine::Executor, yes: bool, json: bool) -> Result<ExitCode> {
    if !json {
        out!("{}", render::plan(plan));
    }
    if plan.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    confirm("apply these changes", yes)?;
    let progress = render::Progress::new(json);
    let report = Engine::new(ApplyOptions::default()).apply(plan, exec, &progress.sink()).await?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&json!({"plan": render::plan_json(plan), "report": report}))?);
    } else {
        out!("{}", render::report(&report));
    }
    report.into_result()?;
    Ok(ExitCode::SUCCESS)
}

fn print_plan(plan: &Plan, json: bool) -> Result<ExitCode> {
    if json {
        outln!("{}", serde_json::to_string_pretty(&render::plan_json(plan))?);
    } else {
        out!("{}", render::plan(plan));
    }
    Ok(if plan.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

/// The account the credentials belong to.
async fn account_of(conf: &aws_config::SdkConfig) -> Result<String> {
    let id = aws_sdk_sts::Client::new(conf).get_caller_identity().send().await.context("STS GetCallerIdentity")?;
    Ok(id.account().unwrap_or_default().to_string())
}

/// The cluster's OIDC issuer: the spec's, or the cluster's when it exists.
async fn issuer(spec: &EnvironmentSpec, eks: &aws_sdk_eks::Client) -> Option<String> {
    if let Some(i) = spec.access.as_ref().and_then(|a| a.oidc_issuer.clone()) {
        return Some(i);
    }
    let c = eks.describe_cluster().name(&spec.name).send().await.ok()?;
    c.cluster()?.identity()?.oidc()?.issuer().map(String::from)
}

pub async fn run(cmd: AccessCmd) -> Result<ExitCode> {
    match cmd {
        AccessCmd::AwsAuth { cmd: AwsAuthCmd::Check { file, json } } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let parsed = eksodus::access::awsauth::data_from_manifest(&text)
                .map_err(|e| {
                    eksodus::access::awsauth::Problems(vec![eksodus::access::awsauth::Problem {
                        path: String::new(),
                        message: e,
                    }])
                })
                .and_then(|d| AwsAuth::parse(&d));
            match parsed {
                Ok(a) => {
                    if json {
                        outln!(
                            "{}",
                            serde_json::to_string_pretty(
                                &json!({"valid": true, "mappings": a.mappings.iter().map(mapping_json).collect::<Vec<_>>(), "accounts": a.accounts})
                            )?
                        );
                    } else {
                        for m in &a.mappings {
                            let n = eksodus::access::awsauth::normalize_arn(m.kind, &m.arn);
                            let note = if n != m.arn { format!(" (matches as {n})") } else { String::new() };
                            outln!(
                                "{:<5} {}{note}  username={}  groups={}",
                                if m.kind == Kind::Role { "role" } else { "user" },
                                m.arn,
                                m.username.as_deref().unwrap_or("-"),
                                m.groups.join(",")
                            );
                        }
                        for acct in &a.accounts {
                            outln!("account {acct}");
                        }
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(problems) => {
                    if json {
                        outln!("{}", serde_json::to_string_pretty(&json!({"valid": false, "errors": problems.0}))?);
                    } else {
                        eprintln!("{problems}");
                    }
                    Ok(ExitCode::from(1))
                }
            }
        }
        AccessCmd::AwsAuth { cmd: AwsAuthCmd::Diff(a) } => aws_auth(a, true).await,
        AccessCmd::AwsAuth { cmd: AwsAuthCmd::Apply(a) } => aws_auth(a, false).await,
        AccessCmd::Entries { cmd } => {
            let (a, apply) = match cmd {
                EntriesCmd::Plan(a) => (a, false),
                EntriesCmd::Apply(a) => (a, true),
            };
            let spec = load(&a.file)?;
            let conf = clients(&spec, &a.aws).await?;
            let account = account_of(&conf).await?;
            let ae = AccessEntries::new(aws_sdk_eks::Client::new(&conf), &spec).with_account(&account);
            let plan = ae.plan(&spec).await?;
            if apply {
                run_plan(&plan, &ae, a.yes, a.json).await
            } else {
                print_plan(&plan, a.json)
            }
        }
        AccessCmd::Iam { cmd } => {
            let (a, mode) = match cmd {
                IamCmd::Plan(a) => (a, 0),
                IamCmd::Apply(a) => (a, 1),
                IamCmd::Destroy(a) => (a, 2),
            };
            let spec = if mode == 2 { eksodus::spec::read(&a.file)?.spec } else { load(&a.file)? };
            let conf = clients(&spec, &a.aws).await?;
            let iam = Iam::new(aws_sdk_iam::Client::new(&conf), &spec);
            let account = account_of(&conf).await?;
            let issuer = issuer(&spec, &aws_sdk_eks::Client::new(&conf)).await;
            let plan = if mode == 2 {
                iam.destroy_plan(&spec).await?
            } else {
                iam.plan(&spec, issuer.as_deref(), &account).await?
            };
            if mode == 0 {
                if issuer.is_none()
                    && spec.access.as_ref().is_some_and(|x| !x.service_accounts.is_empty() || x.iam.cni_irsa)
                {
                    eprintln!("note: no OIDC issuer yet (no access.oidc_issuer and no cluster): IRSA roles are planned once the cluster exists");
                }
                print_plan(&plan, a.json)
            } else {
                run_plan(&plan, &iam, a.yes, a.json).await
            }
        }
        AccessCmd::MigrateToAccessEntries { kube, aws, file, yes } => {
            let spec = load(&file)?;
            let client = kube_client(&kube).await?;
            let current = AwsAuthApi::new(client).read().await?;
            let conf = clients(&spec, &aws).await?;
            let ae = AccessEntries::new(aws_sdk_eks::Client::new(&conf), &spec).for_migration();
            let (mp, plan) = ae.plan_migration(&current).await?;
            for m in &mp.mode_steps {
                outln!("mode: move to {} (one way)", m.as_str());
            }
            for e in &mp.entries {
                outln!(
                    "entry: {} {} groups={:?} policies={:?}",
                    e.entry_type,
                    e.principal_arn,
                    e.kubernetes_groups,
                    e.policies.iter().map(|p| &p.policy).collect::<Vec<_>>()
                );
            }
            for u in &mp.unmapped {
                outln!("no entry: {}: {}", u.what, u.reason);
            }
            outln!("next: {}", mp.next);
            run_plan(&plan, &ae, yes, false).await
        }
        AccessCmd::IamPolicy { file } => {
            let spec = load(&file)?;
            outln!("{}", serde_json::to_string_pretty(&eksodus::cluster::policy::document(&spec))?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn aws_auth(a: AwsAuthArgs, diff_only: bool) -> Result<ExitCode> {
    let spec = load(&a.file)?;
    if spec.access.is_none() {
        bail!("the spec has no access section");
    }
    let api = AwsAuthApi::new(kube_client(&a.kube).await?);
    let opts = EditOptions { force: a.force, dry_run: true, ..Default::default() };
    let preview = api.apply_spec(&spec, None, &opts).await?;
    if a.json && diff_only {
        outln!("{}", serde_json::to_string_pretty(&json!({"changes": preview.changes}))?);
    } else {
        show_changes(&preview.changes);
    }
    if diff_only || preview.changes.is_empty() {
        return Ok(if preview.changes.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) });
    }
    confirm("write these changes to kube-system/aws-auth", a.yes)?;
    let done = api.apply_spec(&spec, None, &EditOptions { force: a.force, ..Default::default() }).await?;
    outln!("aws-auth updated: {} change(s) in {} read-merge-write round(s)", done.changes.len(), done.attempts);
    Ok(ExitCode::SUCCESS)
}
