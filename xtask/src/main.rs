//! `cargo xtask`: the thin driver of eksodus. It parses arguments, loads specs, renders plans and progress,
//! and asks before it changes anything. Every decision is made by the library crates.
//!
//! Please keep this crate free of logic a program embedding the crates would need, and of new dependencies.
#![allow(clippy::print_stdout, clippy::print_stderr)]

/// `println!` that stops quietly when stdout is closed (`| head`), instead of panicking.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}
/// `print!` that stops quietly when stdout is closed.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($t)*);
    }};
}

mod access;
mod bench;
mod demo;
mod env;
mod etcd;
mod fuzz;
mod migrate;
mod operator;
mod recover;
mod render;
mod run_tests;

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use eksodus::core::aws::AwsTarget;
use eksodus::core::engine::{ApplyOptions, Engine};
use eksodus::core::spec::{EnvironmentSpec, FieldErrors};
use eksodus::net::cni::{self, CniOptions};
use eksodus::net::ec2::Network;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "eksodus: rebuild a Kubernetes environment on EKS, safely and repeatably")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Parse and validate a spec offline; print it normalized, or every error with its field path (exit 1).
    Validate {
        /// The spec file.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show what `up` would do to the whole environment (exit 0: converged, 2: changes pending).
    Plan(env::EnvArgs),
    /// Create or update the whole environment (network, IAM, cluster, nodegroups, addons, access) until a new
    /// plan is empty.
    Up(env::EnvArgs),
    /// Remove everything the environment owns: Kubernetes load balancers first, then nodegroups, addons,
    /// access entries, the cluster, IAM and the network; report what is left.
    Down(env::EnvArgs),
    /// Upgrade the cluster one minor version at a time (control plane, addons, nodegroups), with a preflight
    /// per step; re-run after an interruption to continue.
    Upgrade {
        #[command(flatten)]
        args: env::EnvArgs,
        /// Target Kubernetes version (`1.33`).
        #[arg(long)]
        to: String,
    },
    /// Move workloads between clusters: export to a bundle, plan, apply, verify.
    Migrate {
        #[command(subcommand)]
        cmd: migrate::MigrateCmd,
    },
    /// Recover a dead cluster onto a new environment in one resumable command: inspect its etcd snapshot,
    /// export the bundle, bring the environment up, give the old aws-auth's people access, apply, verify,
    /// report (without --yes: print the plan; exit 2 when something would change).
    Recover(Box<recover::RecoverArgs>),
    /// Remake examples/recovery/etcd.db, the demo's lost cluster for machines without a real API server: a real
    /// one (EKSODUS_KUBE_APISERVER) populated with the story's workload, its Secrets encrypted with aescbc.
    #[command(hide = true)]
    RecordRecoveryFixture,
    /// Read Kubernetes objects out of an etcd snapshot or data directory (no etcd or API server needed).
    Etcd {
        #[command(subcommand)]
        cmd: etcd::EtcdCmd,
    },
    /// The VPC layer.
    Net {
        #[command(subcommand)]
        cmd: NetCmd,
    },
    /// IAM, aws-auth, access entries, and the policy eksodus needs.
    Access {
        #[command(subcommand)]
        cmd: access::AccessCmd,
    },
    /// Print the ExecCredential JSON a kubeconfig `exec` entry expects (a native EKS token, no aws CLI).
    Token {
        /// The spec file (its name is the cluster's).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Use the local emulator's credentials.
        #[arg(long)]
        local: bool,
        /// AWS profile.
        #[arg(long)]
        profile: Option<String>,
    },
    /// Write (or print) a kubeconfig for the environment's cluster, as `aws eks update-kubeconfig` does.
    Kubeconfig {
        /// The spec file.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Merge into this kubeconfig file instead of printing.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Use the local emulator.
        #[arg(long)]
        local: bool,
        /// AWS profile.
        #[arg(long)]
        profile: Option<String>,
        /// Use `aws eks get-token` in the exec entry instead of this tool.
        #[arg(long)]
        aws_cli: bool,
    },
    /// The Kubernetes operator: install manifests, or run it here against a cluster.
    Operator {
        #[command(subcommand)]
        cmd: operator::OperatorCmd,
    },
    /// The local AWS emulator used by `--local`.
    Local {
        #[command(subcommand)]
        cmd: LocalCmd,
    },
    /// The whole job on the local emulator: layout, plan, apply, empty re-plan, destroy, nothing left.
    Demo {
        /// Leave the environment in place instead of destroying it.
        #[arg(long)]
        keep: bool,
    },
    /// Everything CI runs: formatting, lints, and every test (installs the emulator first).
    Test {
        /// Skip clippy (faster local iteration).
        #[arg(long)]
        no_clippy: bool,
    },
    /// Runs every fuzz target (cargo-fuzz on nightly where installed, else a stable mutation fuzzer); crashes
    /// become regression inputs.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        time: u64,
        /// Only these targets (spec_yaml, eksctl, manifests, aws_auth, pb_decode, etcd_snapshot).
        targets: Vec<String>,
    },
    /// Benchmarks (not timed tests).
    Bench {
        /// Which: `net`, `up` or `migrate`.
        what: String,
    },
}

#[derive(Subcommand)]
enum NetCmd {
    /// Offline table of subnets, sizes and pod capacity.
    Layout {
        /// The spec file.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// Max pods per instance type: one `TYPE N` line each, nothing else on stdout.
    MaxPods(MaxPodsArgs),
    /// Show what apply would do (exit 0: nothing to do, 2: changes pending).
    Plan(AwsArgs),
    /// Create or update the network to match the spec.
    Apply(AwsArgs),
    /// Remove everything the environment's network owns.
    Destroy(AwsArgs),
}

#[derive(Subcommand)]
enum LocalCmd {
    /// Start the emulator (installing moto into a virtualenv under target/ if needed).
    Start,
    /// Stop it.
    Stop,
    /// Say whether it runs, and where.
    Status,
    /// (internal) Serve the proxy in front of the emulator until killed.
    #[command(hide = true)]
    Serve,
}

#[derive(Args)]
struct MaxPodsArgs {
    /// Instance types.
    types: Vec<String>,
    /// Every known instance type.
    #[arg(long)]
    all: bool,
    /// VPC CNI prefix delegation.
    #[arg(long)]
    prefix_delegation: bool,
    /// VPC CNI custom networking (one ENI fewer).
    #[arg(long)]
    custom_networking: bool,
    /// Limit on ENIs used for pods.
    #[arg(long)]
    max_eni: Option<u32>,
    /// An IPv6 cluster (prefix delegation always on).
    #[arg(long)]
    ipv6: bool,
    /// VPC CNI version.
    #[arg(long, default_value = eksodus::core::spec::DEFAULT_CNI_VERSION)]
    cni_version: String,
    /// vCPUs of the instance type(s), for the 110/250 caps.
    #[arg(long)]
    vcpus: Option<u32>,
    /// Look vCPUs up with EC2 DescribeInstanceTypes (standard AWS config, or `--local`).
    #[arg(long)]
    online: bool,
    /// With `--online`: ask the local emulator.
    #[arg(long)]
    local: bool,
    /// Print the value before the 110/250 caps.
    #[arg(long)]
    uncapped: bool,
}

#[derive(Args)]
struct AwsArgs {
    /// The spec file.
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
    /// Print JSON on stdout (progress goes to stderr).
    #[arg(long)]
    json: bool,
    /// Use the local emulator (started if needed) instead of AWS.
    #[arg(long)]
    local: bool,
    /// AWS profile.
    #[arg(long)]
    profile: Option<String>,
    /// Operations in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 << 20)
        .build()
        .expect("tokio runtime");
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Validate { file, json } => validate(&file, json),
        Cmd::Plan(a) => env::plan(a).await,
        Cmd::Up(a) => env::up(a).await,
        Cmd::Down(a) => env::down(a).await,
        Cmd::Upgrade { args, to } => env::upgrade(args, to).await,
        Cmd::Net { cmd } => net(cmd).await,
        Cmd::Migrate { cmd } => migrate::run(cmd).await,
        Cmd::Etcd { cmd } => etcd::run(cmd),
        Cmd::Recover(a) => recover::run(*a).await,
        Cmd::RecordRecoveryFixture => demo::record_fixture().await.map(|_| ExitCode::SUCCESS),
        Cmd::Local { cmd } => local(cmd).await,
        Cmd::Operator { cmd } => operator::run(cmd).await,
        Cmd::Access { cmd } => access::run(cmd).await,
        Cmd::Token { file, local, profile } => token(&file, local, profile).await,
        Cmd::Kubeconfig { file, out, local, profile, aws_cli } => kubeconfig(&file, out, local, profile, aws_cli).await,
        Cmd::Demo { keep } => demo::run(keep).await.map(|_| ExitCode::SUCCESS),
        Cmd::Test { no_clippy } => run_tests::run(!no_clippy),
        Cmd::Fuzz { time, targets } => fuzz::run(time, &targets),
        Cmd::Bench { what } => bench::run(&what).await.map(|_| ExitCode::SUCCESS),
    }
}

/// Loads and fully validates a spec offline; errors list every problem with its path.
fn load(file: &PathBuf) -> Result<EnvironmentSpec> {
    let f = eksodus::spec::read(file)?;
    for n in &f.notes {
        eprintln!("note: {}: {}", n.path, n.message);
    }
    Ok(eksodus::spec::validated(f.spec)?)
}

fn validate(file: &PathBuf, json: bool) -> Result<ExitCode> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    if eksodus::cluster::eksctl::is_eksctl(&text) {
        let imp = eksodus::cluster::eksctl::import(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        // checked as `up` would load it (key files read, relative to the file), printed as imported (a key
        // file stays a file)
        let mut loaded = imp.spec.clone();
        let errs = if !imp.unsupported.is_empty() {
            vec![]
        } else {
            match eksodus::spec::read_key_files(&mut loaded, file.parent().unwrap_or(std::path::Path::new("."))) {
                Ok(()) => eksodus::net::validate(&loaded),
                Err(eksodus::Error::Spec(eksodus::core::Error::Invalid(FieldErrors(errs)))) => errs,
                Err(e) => return Err(e.into()),
            }
        };
        let ok = imp.unsupported.is_empty() && errs.is_empty();
        if json {
            outln!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({"valid": ok, "source": "eksctl", "unsupported": imp.unsupported, "notes": imp.notes, "errors": errs, "spec": imp.spec})
                )?
            );
            return Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) });
        }
        for n in &imp.notes {
            eprintln!("note: {}: {}", n.path, n.message);
        }
        if ok {
            out!("{}", serde_saphyr::to_string(&imp.spec)?);
        } else {
            for u in &imp.unsupported {
                eprintln!("{}: unsupported: {}", u.path, u.reason);
            }
            if !errs.is_empty() {
                eprintln!("{}", FieldErrors(errs));
            }
        }
        return Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) });
    }
    let spec = match eksodus::spec::read(file) {
        Ok(s) => s.spec,
        Err(e) => {
            if json {
                let (path, message) = match &e {
                    eksodus::Error::Spec(eksodus::core::Error::Parse { path, message }) => {
                        (path.clone(), message.clone())
                    }
                    other => (String::new(), other.to_string()),
                };
                outln!("{}", serde_json::json!({"valid": false, "errors": [{"path": path, "message": message}]}));
            } else {
                eprintln!("error: {e}");
            }
            return Ok(ExitCode::from(1));
        }
    };
    let errs = eksodus::net::validate(&spec);
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"valid": errs.is_empty(), "errors": errs, "spec": spec}))?
        );
    } else if errs.is_empty() {
        out!("{}", serde_saphyr::to_string(&spec)?);
    } else {
        eprintln!("{}", FieldErrors(errs.clone()));
    }
    Ok(if errs.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

async fn local(cmd: LocalCmd) -> Result<ExitCode> {
    use eksodus_testkit::moto::{Daemon, ProxyDaemon};
    match cmd {
        LocalCmd::Start => {
            let p = local_endpoint().await?;
            outln!("local AWS emulator at {p}");
        }
        LocalCmd::Stop => {
            let proxy = ProxyDaemon::stop();
            let moto = Daemon::stop()?;
            outln!("{}", if proxy || moto { "stopped" } else { "was not running" });
        }
        LocalCmd::Status => match Daemon::running() {
            Some(d) => match ProxyDaemon::running(&d) {
                Some(p) => outln!("running at {} (proxy pid {}, moto pid {})", p.endpoint(), p.pid, d.pid),
                None => outln!("moto runs at {} (pid {}); its proxy does not", d.endpoint(), d.pid),
            },
            None => outln!("not running"),
        },
        LocalCmd::Serve => {
            let d = Daemon::running().context("the moto daemon is not running")?;
            ProxyDaemon::serve(d).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The local emulator's endpoint: moto behind the testkit's proxy (which answers the EKS calls moto lacks),
/// both started as background processes when not running.
async fn local_endpoint() -> Result<String> {
    use eksodus_testkit::moto::{Daemon, ProxyDaemon};
    let d = tokio::task::spawn_blocking(Daemon::ensure).await??;
    if let Some(p) = ProxyDaemon::running(&d) {
        return Ok(p.endpoint());
    }
    use std::os::unix::process::CommandExt;
    let log = std::fs::File::create(eksodus_testkit::moto::venv_dir().with_file_name("eksodus-local-proxy.log"))?;
    std::process::Command::new(std::env::current_exe()?)
        .args(["local", "serve"])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("starting the local proxy")?;
    let p = tokio::task::spawn_blocking(move || ProxyDaemon::wait_for(&d)).await??;
    Ok(p.endpoint())
}

/// The AWS target of a command: the local emulator, or the standard chain with the spec's region.
async fn target(region: &str, local: bool, profile: Option<String>) -> Result<AwsTarget> {
    if local {
        return Ok(AwsTarget::local(region, &local_endpoint().await?));
    }
    Ok(AwsTarget { region: region.to_string(), profile, ..AwsTarget::default() })
}

/// The credentials the SDK configuration resolves to (for native EKS tokens).
async fn credentials(conf: &aws_config::SdkConfig) -> Result<eksodus::cluster::token::Credentials> {
    use aws_credential_types::provider::ProvideCredentials;
    let provider = conf.credentials_provider().context("no AWS credentials configured")?;
    let c = provider.provide_credentials().await.context("loading AWS credentials")?;
    Ok(eksodus::cluster::token::Credentials {
        access_key_id: c.access_key_id().to_string(),
        secret_access_key: c.secret_access_key().to_string(),
        session_token: c.session_token().map(String::from),
    })
}

/// A client from a kubeconfig file (default: the standard one) and context, with the API server's URL.
async fn kube_client(kubeconfig: Option<&std::path::Path>, context: Option<&String>) -> Result<(kube::Client, String)> {
    let options = kube::config::KubeConfigOptions { context: context.cloned(), ..Default::default() };
    let config = match kubeconfig {
        Some(p) => {
            let kc = kube::config::Kubeconfig::read_from(p).with_context(|| format!("reading {}", p.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &options).await?
        }
        None => kube::Config::from_kubeconfig(&options).await.context("no kubeconfig (give --kubeconfig)")?,
    };
    let url = config.cluster_url.to_string();
    Ok((kube::Client::try_from(config)?, url))
}

fn confirm(what: &str, yes: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("refusing to {what} without --yes when standard input is not a terminal");
    }
    eprint!("Do you want to {what}? Only 'yes' will be accepted: ");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if line.trim() != "yes" {
        bail!("cancelled");
    }
    Ok(())
}

async fn net(cmd: NetCmd) -> Result<ExitCode> {
    match cmd {
        NetCmd::Layout { file } => {
            let spec = load(&file)?;
            if spec.network.existing.is_some() {
                bail!("network.existing adopts subnets as they are; there is no layout to plan");
            }
            out!("{}", render::layout(&eksodus::net::layout::plan(&spec)?));
            Ok(ExitCode::SUCCESS)
        }
        NetCmd::MaxPods(a) => max_pods(a).await,
        NetCmd::Plan(a) => {
            let spec = load(&a.file)?;
            let conf = target(&spec.region, a.local, a.profile.clone()).await?.load().await;
            let net =
                Network::new(aws_sdk_ec2_client(&conf), &spec).with_calls(eksodus::core::aws::Calls::new("ec2", &conf));
            let plan = net.plan(&spec).await?;
            if a.json {
                outln!("{}", serde_json::to_string_pretty(&render::plan_json(&plan))?);
            } else {
                out!("{}", render::plan(&plan));
            }
            Ok(if plan.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) })
        }
        NetCmd::Apply(a) => {
            let spec = load(&a.file)?;
            let conf = target(&spec.region, a.local, a.profile.clone()).await?.load().await;
            let net =
                Network::new(aws_sdk_ec2_client(&conf), &spec).with_calls(eksodus::core::aws::Calls::new("ec2", &conf));
            let plan = net.plan(&spec).await?;
            let json = a.json;
            if !json {
                out!("{}", render::plan(&plan));
            }
            if plan.is_empty() {
                if json {
                    outln!("{}", serde_json::json!({"plan": render::plan_json(&plan), "report": null}));
                }
                return Ok(ExitCode::SUCCESS);
            }
            confirm("apply these changes", a.yes)?;
            let progress = render::Progress::new(json);
            let opts = ApplyOptions { concurrency: a.concurrency, ..ApplyOptions::default() };
            let report = Engine::new(opts).apply(&plan, &net, &progress.sink()).await?;
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"plan": render::plan_json(&plan), "report": report})
                    )?
                );
            } else {
                out!("{}", render::report(&report));
            }
            report.into_result()?;
            Ok(ExitCode::SUCCESS)
        }
        NetCmd::Destroy(a) => {
            let spec = eksodus::spec::read(&a.file)?.spec; // a spec that no longer validates can still be destroyed
            let conf = target(&spec.region, a.local, a.profile.clone()).await?.load().await;
            let net =
                Network::new(aws_sdk_ec2_client(&conf), &spec).with_calls(eksodus::core::aws::Calls::new("ec2", &conf));
            let plan = net.destroy_plan().await?;
            if !a.json {
                out!("{}", render::plan(&plan));
            }
            if plan.is_empty() {
                return Ok(ExitCode::SUCCESS);
            }
            confirm("destroy these resources", a.yes)?;
            let progress = render::Progress::new(a.json);
            let opts = ApplyOptions { concurrency: a.concurrency, ..ApplyOptions::default() };
            let report = Engine::new(opts).apply(&plan, &net, &progress.sink()).await?;
            let left = net.tagged_leftovers().await?;
            if a.json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({"report": report, "tagged_left": left}))?
                );
            } else {
                out!("{}", render::report(&report));
                if left.is_empty() {
                    outln!("Nothing tagged eksodus.io/environment={} is left.", spec.name);
                } else {
                    outln!("Still tagged eksodus.io/environment={}:", spec.name);
                    for l in &left {
                        outln!("  {l}");
                    }
                }
            }
            report.into_result()?;
            if !left.is_empty() {
                bail!("{} tagged resource(s) remain", left.len());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn token(file: &std::path::Path, local: bool, profile: Option<String>) -> Result<ExitCode> {
    use eksodus::cluster::token::{exec_credential, UnixTime};
    let spec = eksodus::spec::read(file)?.spec;
    let conf = target(&spec.region, local, profile).await?.load().await;
    let creds = credentials(&conf).await?;
    outln!("{}", serde_json::to_string(&exec_credential(&spec.name, &spec.region, &creds, UnixTime::now()))?);
    Ok(ExitCode::SUCCESS)
}

async fn kubeconfig(
    file: &PathBuf,
    out: Option<PathBuf>,
    local: bool,
    profile: Option<String>,
    aws_cli: bool,
) -> Result<ExitCode> {
    use eksodus::cluster::kubeconfig::{document, merge, ExecCommand};
    let spec = eksodus::spec::read(file)?.spec;
    let conf = target(&spec.region, local, profile.clone()).await?.load().await;
    let environment = eksodus::cluster::environment::Environment::new(&conf, spec, ApplyOptions::default())?;
    let access = environment.cluster_access().await?;
    let exec = if aws_cli {
        ExecCommand::aws_cli(&access)
    } else {
        let me = std::env::current_exe()?.display().to_string();
        let spec_path = std::fs::canonicalize(file)?.display().to_string();
        let mut args = vec!["token".to_string(), "-f".to_string(), spec_path];
        if local {
            args.push("--local".into());
        }
        ExecCommand {
            command: me,
            args,
            env: profile.map(|p| vec![("AWS_PROFILE".to_string(), p)]).unwrap_or_default(),
        }
    };
    match out {
        None => out!("{}", serde_saphyr::to_string(&document(&access, &exec))?),
        Some(path) => {
            let mut existing: serde_json::Value = match std::fs::read_to_string(&path) {
                Ok(t) => {
                    serde_saphyr::from_str(&t).with_context(|| format!("{} is not a kubeconfig", path.display()))?
                }
                Err(_) => serde_json::Value::Null,
            };
            merge(&mut existing, &access, &exec);
            std::fs::write(&path, serde_saphyr::to_string(&existing)?)?;
            eprintln!("wrote context {} to {}", access.arn, path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn aws_sdk_ec2_client(conf: &aws_config::SdkConfig) -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::new(conf)
}

async fn max_pods(a: MaxPodsArgs) -> Result<ExitCode> {
    let version = eksodus::core::spec::parse_version(&a.cni_version)
        .with_context(|| format!("--cni-version `{}` is not a version like 1.19.2", a.cni_version))?;
    let opts = CniOptions {
        prefix_delegation: a.prefix_delegation,
        custom_networking: a.custom_networking,
        max_eni: a.max_eni,
        cni_version: version,
        ipv6: a.ipv6,
    };
    let types: Vec<String> =
        if a.all { cni::all().map(|l| l.instance_type.clone()).collect() } else { a.types.clone() };
    if types.is_empty() {
        bail!("name at least one instance type, or --all");
    }
    let mut limits = Vec::new();
    for t in &types {
        limits.push(cni::limits(t)?);
    }
    let vcpus = if a.online {
        let conf = target("us-east-1", a.local, None).await?.load().await;
        eksodus::net::ec2::describe_vcpus(&aws_sdk_ec2_client(&conf), &types).await?
    } else {
        Default::default()
    };
    for l in limits {
        let v = a.vcpus.or_else(|| vcpus.get(&l.instance_type).copied());
        outln!("{} {}", l.instance_type, cni::max_pods(l, &opts, v, a.uncapped).value);
    }
    Ok(ExitCode::SUCCESS)
}
