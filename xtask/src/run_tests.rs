//! `cargo xtask test`: everything CI runs, in the order that fails fastest.

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Result};

fn step(name: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("==> {name}: {cmd:?}");
    let start = Instant::now();
    let status = cmd.status()?;
    eprintln!("<== {name}: {status} in {:.0}s", start.elapsed().as_secs_f64());
    if !status.success() {
        bail!("{name} failed");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// The operator's binary is built with the tests (its feature in the same build, so no dependency is built
/// twice): the leader-election test runs two of them and kills one.
const OPERATOR_BIN: &str = "eksodus-operator/bin";

/// Runs formatting, lints, the emulator install, every test, and cargo-deny's offline checks when installed.
pub fn run(clippy: bool) -> Result<std::process::ExitCode> {
    let start = Instant::now();
    step("format", cargo().args(["fmt", "--all", "--", "--check"]))?;
    if clippy {
        step(
            "clippy",
            cargo().args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--features",
                OPERATOR_BIN,
                "--",
                "-D",
                "warnings",
            ]),
        )?;
    }
    // Every public item's docs build without a broken link or malformed HTML (an embedder reads them first).
    // Every step builds with the same features, so each dependency is compiled once per mode (check, build):
    // a step with another feature set rebuilds the AWS SDK crates beside the others, gigabytes of disk.
    step(
        "docs",
        cargo()
            .args(["doc", "--workspace", "--no-deps", "--features", OPERATOR_BIN])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    eprintln!(
        "==> local AWS emulator: moto {} in {}",
        eksodus_testkit::moto::MOTO_VERSION,
        eksodus_testkit::moto::venv_dir().display()
    );
    eksodus_testkit::moto::ensure_installed()?;
    step("tests", cargo().args(["test", "--workspace", "--all-targets", "--features", OPERATOR_BIN]))?;
    step("doc tests", cargo().args(["test", "--workspace", "--doc", "--features", OPERATOR_BIN]))?;
    // An application outside the workspace on Kubernetes 1.36 (the workspace's own tests use 1.33): the libraries
    // leave k8s-openapi's version to it and compile against that version's types. It shares the target
    // directory, so the dependencies it has in common with the workspace are built once.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace");
    step(
        "embedder on Kubernetes 1.36",
        cargo()
            .args(["run", "--quiet", "--manifest-path"])
            .arg(root.join("tests/embedder/Cargo.toml"))
            .arg("--")
            .arg(root.join("examples/recovery/etcd.db"))
            .env("CARGO_TARGET_DIR", root.join("target"))
            .env_remove("K8S_OPENAPI_ENABLED_VERSION"),
    )?;
    let deny = Command::new("cargo-deny").arg("--version").output().is_ok_and(|o| o.status.success());
    if deny {
        // cargo-deny reads the metadata of every target platform, but a build downloads only the host's crates
        // (windows-sys and friends stay missing on a fresh machine): fetch them all first, which is a no-op
        // when the registry cache already holds them. Advisories need the advisory database from the network;
        // licenses, bans and sources do not.
        step("fetch all platforms' crates", cargo().arg("fetch"))?;
        step("cargo deny", cargo().args(["deny", "--offline", "check", "licenses", "bans", "sources"]))?;
    } else {
        eprintln!("(cargo-deny not installed: skipping the license, ban and source checks)");
    }
    eprintln!("all checks passed in {:.0}s", start.elapsed().as_secs_f64());
    Ok(std::process::ExitCode::SUCCESS)
}
