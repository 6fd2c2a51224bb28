//! The fuzz targets of eksodus as plain functions over bytes, shared by the cargo-fuzz binaries (`fuzz/`), the
//! stable-toolchain mutation fuzzer here ([`run`], what `cargo xtask fuzz` falls back to without a nightly
//! toolchain and cargo-fuzz), and the regression test that replays every input a fuzzer ever crashed on
//! (`regressions/<target>/`).
//!
//! Every target's contract is the same: any input is answered with a value or an error, never a panic.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

/// A target: its name and the function that must not panic on any input.
pub struct Target {
    /// Name (also the cargo-fuzz binary's and the regression directory's).
    pub name: &'static str,
    /// What it exercises.
    pub what: &'static str,
    /// The function under test.
    pub run: fn(&[u8]),
    /// Seed inputs, relative to the workspace root (files, or directories of files).
    pub seeds: &'static [&'static str],
}

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// An environment spec: YAML parsing and validation.
pub fn spec_yaml(data: &[u8]) {
    if let Some(t) = text(data) {
        if let Ok(s) = eksodus_core::spec::EnvironmentSpec::from_yaml(t) {
            let _ = s.validate();
        }
    }
}

/// An eksctl ClusterConfig: detection and import.
pub fn eksctl(data: &[u8]) {
    if let Some(t) = text(data) {
        let _ = eksodus_cluster::eksctl::is_eksctl(t);
        let _ = eksodus_cluster::eksctl::import(t);
    }
}

/// A manifest file: document splitting and object reading, as YAML and as JSON.
pub fn manifests(data: &[u8]) {
    if let Some(t) = text(data) {
        let _ = eksodus_migrate::source::split_documents(t);
        for json in [false, true] {
            let mut out = eksodus_migrate::source::Read::default();
            eksodus_migrate::source::read_text(t, "fuzz.yaml", json, &mut out, &mut Default::default());
            for o in &out.objects {
                let _ = eksodus_migrate::convert::to_served(o.clone());
            }
        }
    }
}

/// An aws-auth ConfigMap: its manifest, its sections, and a render of what parsed.
pub fn aws_auth(data: &[u8]) {
    if let Some(t) = text(data) {
        if let Ok(d) = eksodus_access::awsauth::data_from_manifest(t) {
            if let Ok(a) = eksodus_access::awsauth::AwsAuth::parse(&d) {
                let _ = a.render();
            }
        }
        let mut d = std::collections::BTreeMap::new();
        d.insert(eksodus_access::awsauth::MAP_ROLES.to_string(), t.to_string());
        d.insert(eksodus_access::awsauth::MAP_USERS.to_string(), t.to_string());
        let _ = eksodus_access::awsauth::AwsAuth::parse(&d);
    }
}

/// A stored value: envelope, decryption prefixes and the protobuf decoder.
pub fn pb_decode(data: &[u8]) {
    let _ = eksodus_etcd::decode_value(data, b"/registry/configmaps/a/b", None);
    let _ = eksodus_etcd::decode::object("v1", "Pod", data);
    let _ = eksodus_etcd::decode::object("apiextensions.k8s.io/v1beta1", "CustomResourceDefinition", data);
}

/// An etcd snapshot file: the bbolt reader, the MVCC fold and recovery of every live key.
pub fn etcd_snapshot(data: &[u8]) {
    if let Ok(s) = eksodus_etcd::Snapshot::from_bytes(Path::new("fuzz"), data, None) {
        for e in &s.entries {
            let _ = eksodus_etcd::recover(e);
        }
    }
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target { name: "spec_yaml", what: "environment spec parser and validation", run: spec_yaml, seeds: &["examples"] },
    Target {
        name: "eksctl",
        what: "eksctl ClusterConfig import",
        run: eksctl,
        seeds: &["crates/eksodus-cluster/testdata/eksctl"],
    },
    Target {
        name: "manifests",
        what: "manifest loader and version conversion",
        run: manifests,
        seeds: &["crates/eksodus-fuzzing/seeds/manifests"],
    },
    Target {
        name: "aws_auth",
        what: "aws-auth ConfigMap parser",
        run: aws_auth,
        seeds: &["crates/eksodus-fuzzing/seeds/aws_auth"],
    },
    Target {
        name: "pb_decode",
        what: "stored-value envelope and protobuf decoder",
        run: pb_decode,
        seeds: &["crates/eksodus-etcd/testdata/k8s-api"],
    },
    Target {
        name: "etcd_snapshot",
        what: "etcd snapshot (bbolt) reader",
        run: etcd_snapshot,
        seeds: &["crates/eksodus-fuzzing/seeds/etcd_snapshot"],
    },
];

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The seed inputs of a target (files under its seed paths, `.pb`/`.yaml`/`.json`/anything; at most 64 KiB each).
pub fn seeds(t: &Target) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for s in t.seeds {
        let p = workspace().join(s);
        let files: Vec<PathBuf> = if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(&p).into_iter().flatten().flatten().map(|e| e.path()).collect();
            v.sort();
            v
        } else {
            vec![p]
        };
        for f in files.into_iter().filter(|f| f.is_file()) {
            if let Ok(b) = std::fs::read(&f) {
                if b.len() <= 64 * 1024 {
                    out.push(b);
                }
            }
        }
    }
    if out.is_empty() {
        out.push(Vec::new());
    }
    out
}

/// The inputs that once made a target panic (`regressions/<target>/`).
pub fn regressions(t: &Target) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions").join(t.name);
    let mut v: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.path(), std::fs::read(e.path()).ok()?)))
        .collect();
    v.sort();
    v
}

/// What a fuzzing run did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Inputs tried.
    pub executions: u64,
    /// Inputs that panicked (saved under `regressions/<target>/`).
    pub crashes: Vec<PathBuf>,
}

/// Whether `run` panics on `input`.
pub fn panics(run: fn(&[u8]), input: &[u8]) -> bool {
    std::panic::catch_unwind(AssertUnwindSafe(|| run(input))).is_err()
}

/// A mutation fuzzer on the stable toolchain: mutates the seeds (bit flips, byte changes, insertions,
/// deletions, duplications, splices with another seed) for `time`, saving every input that panics.
pub fn run(t: &Target, time: Duration, seed: u64) -> Outcome {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let corpus = seeds(t);
    let mut out = Outcome::default();
    let start = Instant::now();
    // panics are expected findings here, not noise for the terminal
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    while start.elapsed() < time {
        let mut input = corpus[rng.gen_range(0..corpus.len())].clone();
        for _ in 0..rng.gen_range(1..8) {
            mutate(&mut input, &corpus, &mut rng);
        }
        out.executions += 1;
        if panics(t.run, &input) {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions").join(t.name);
            let _ = std::fs::create_dir_all(&dir);
            let name = dir.join(format!("crash-{:016x}", fnv(&input)));
            let _ = std::fs::write(&name, &input);
            out.crashes.push(name);
        }
    }
    std::panic::set_hook(hook);
    out
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, x| (h ^ u64::from(*x)).wrapping_mul(0x0000_0100_0000_01b3))
}

fn mutate(input: &mut Vec<u8>, corpus: &[Vec<u8>], rng: &mut impl Rng) {
    const INTERESTING: &[u8] = &[0, 1, 0x7f, 0x80, 0xff, b'\n', b':', b'-', b'[', b'{', b'"', b'\'', b'#', b'&', b'*'];
    let len = input.len();
    match rng.gen_range(0..7) {
        0 if len > 0 => {
            let i = rng.gen_range(0..len);
            input[i] ^= 1 << rng.gen_range(0..8);
        }
        1 if len > 0 => {
            let i = rng.gen_range(0..len);
            input[i] = INTERESTING[rng.gen_range(0..INTERESTING.len())];
        }
        2 => {
            let i = rng.gen_range(0..=len);
            input.insert(i, INTERESTING[rng.gen_range(0..INTERESTING.len())]);
        }
        3 if len > 0 => {
            let i = rng.gen_range(0..len);
            let n = rng.gen_range(1..=(len - i).min(16));
            input.drain(i..i + n);
        }
        4 if len > 0 => {
            let i = rng.gen_range(0..len);
            let n = rng.gen_range(1..=(len - i).min(32));
            let chunk: Vec<u8> = input[i..i + n].to_vec();
            let at = rng.gen_range(0..=len);
            input.splice(at..at, chunk);
        }
        5 => {
            let other = &corpus[rng.gen_range(0..corpus.len())];
            if !other.is_empty() {
                let i = rng.gen_range(0..other.len());
                let n = rng.gen_range(1..=(other.len() - i).min(64));
                let at = rng.gen_range(0..=len);
                input.splice(at..at, other[i..i + n].iter().copied());
            }
        }
        _ => {
            if len > 1 {
                let cut = rng.gen_range(0..len);
                input.truncate(cut);
            }
        }
    }
}
