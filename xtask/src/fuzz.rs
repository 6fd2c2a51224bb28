//! `cargo xtask fuzz [--time T] [TARGET...]`: every fuzz target of `eksodus-fuzzing` for `T` seconds each, with
//! cargo-fuzz (libFuzzer, coverage-guided) on a nightly toolchain where both are installed, else with the
//! stable-toolchain mutation fuzzer. Executions and findings per target are printed and kept in
//! `target/fuzz-report.json`; every crash is copied to `crates/eksodus-fuzzing/regressions/<target>/`, where the
//! regression test replays it from then on.

use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::Result;

fn cargo_fuzz_available() -> bool {
    Command::new("cargo").args(["+nightly", "fuzz", "--version"]).output().is_ok_and(|o| o.status.success())
}

/// Runs one target with cargo-fuzz; returns (executions, crash files copied to the regressions).
fn with_cargo_fuzz(root: &Path, target: &str, secs: u64) -> Result<(u64, Vec<String>)> {
    let out = Command::new("cargo")
        .current_dir(root.join("fuzz"))
        .args(["+nightly", "fuzz", "run", target, "--", &format!("-max_total_time={secs}"), "-print_final_stats=1"])
        .output()?;
    let log = String::from_utf8_lossy(&out.stderr);
    let execs = log
        .lines()
        .find_map(|l| l.strip_prefix("stat::number_of_executed_units:").map(|n| n.trim().parse::<u64>().unwrap_or(0)))
        .unwrap_or(0);
    let mut crashes = Vec::new();
    let artifacts = root.join("fuzz/artifacts").join(target);
    let regressions = root.join("crates/eksodus-fuzzing/regressions").join(target);
    for e in std::fs::read_dir(&artifacts).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("crash-") || name.starts_with("oom-") || name.starts_with("timeout-") {
            std::fs::create_dir_all(&regressions)?;
            std::fs::copy(e.path(), regressions.join(&name))?;
            crashes.push(regressions.join(&name).display().to_string());
        }
    }
    if !out.status.success() && crashes.is_empty() {
        anyhow::bail!("cargo fuzz run {target} failed:\n{}", log.lines().rev().take(15).collect::<Vec<_>>().join("\n"));
    }
    Ok((execs, crashes))
}

pub fn run(time: u64, only: &[String]) -> Result<ExitCode> {
    let root = eksodus_fuzzing::workspace();
    let libfuzzer = cargo_fuzz_available();
    outln!(
        "fuzzing with {} for {time}s per target",
        if libfuzzer {
            "cargo-fuzz (libFuzzer, nightly)"
        } else {
            "the stable mutation fuzzer (for coverage-guided fuzzing: rustup toolchain install nightly; cargo install cargo-fuzz)"
        }
    );
    let mut report = Vec::new();
    let mut found = 0;
    for t in eksodus_fuzzing::TARGETS.iter().filter(|t| only.is_empty() || only.iter().any(|o| o == t.name)) {
        let (execs, crashes) = if libfuzzer {
            with_cargo_fuzz(&root, t.name, time)?
        } else {
            let o = eksodus_fuzzing::run(t, Duration::from_secs(time), time ^ 0x5eed);
            (o.executions, o.crashes.iter().map(|p| p.display().to_string()).collect())
        };
        outln!("{:<14} {:>12} executions  {} crash(es)  ({})", t.name, execs, crashes.len(), t.what);
        for c in &crashes {
            outln!("  saved {c}: the regression test replays it; fix the code, keep the file");
        }
        found += crashes.len();
        report.push(serde_json::json!({"target": t.name, "engine": if libfuzzer { "libfuzzer" } else { "stable-mutation" }, "seconds": time, "executions": execs, "crashes": crashes}));
    }
    let path = root.join("target/fuzz-report.json");
    std::fs::create_dir_all(root.join("target"))?;
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    outln!("report: {}", path.display());
    Ok(if found == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
