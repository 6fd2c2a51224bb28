//! `cargo xtask etcd inspect|decode`: renders what `eksodus::etcd` reads.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use eksodus::etcd::{Inspection, Snapshot};

/// etcd commands.
#[derive(Subcommand)]
pub enum EtcdCmd {
    /// Revision range, key counts per resource, encodings, and the damage report of a snapshot or data directory.
    Inspect {
        /// A snapshot file (`etcdctl snapshot save`) or an etcd data directory.
        file: PathBuf,
        /// Read at this revision instead of the newest.
        #[arg(long)]
        revision: Option<i64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Decode one raw stored value (as `etcdctl get --print-value-only` writes it) and print the object as JSON.
    Decode {
        /// The file holding the value.
        file: PathBuf,
    },
}

/// Runs one etcd command.
pub fn run(cmd: EtcdCmd) -> Result<ExitCode> {
    match cmd {
        EtcdCmd::Inspect { file, revision, json } => {
            // keys and revisions only: the encodings are counted reading the values again one at a time
            let s = Snapshot::scan(&file, revision)?;
            let i = Inspection::from(&s);
            if json {
                outln!("{}", serde_json::to_string_pretty(&i)?);
            } else {
                outln!("{}: {:?}", i.path, i.integrity);
                outln!(
                    "page size {}, txid {}, {} pages, {} free",
                    i.meta.page_size,
                    i.meta.txid,
                    i.meta.high_water,
                    i.free_pages
                );
                if let Some((lo, hi)) = i.revisions {
                    outln!(
                        "revisions {lo}..{hi} (read at {}), compacted at {:?}, consistent index {:?}",
                        s.revision,
                        i.info.finished_compact,
                        i.info.consistent_index
                    );
                }
                outln!("{} live keys", i.keys);
                for (r, n) in &i.resources {
                    outln!("  {n:>8}  {r}");
                }
                outln!("encodings: {:?}", i.encodings);
                if i.damage.is_empty() {
                    outln!("no damage found");
                } else {
                    outln!("damage ({}):", i.damage.len());
                    for d in &i.damage {
                        outln!("  page {:?} key {:?}: {}", d.page, d.key, d.reason);
                    }
                }
            }
            Ok(if i.damage.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        EtcdCmd::Decode { file } => {
            let value = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            // `etcdctl get --print-value-only` ends the value with a newline of its own
            let decoded = eksodus::etcd::decode_value(&value, b"", None).or_else(|e| match value.strip_suffix(b"\n") {
                Some(v) => eksodus::etcd::decode_value(v, b"", None),
                None => Err(e),
            });
            match decoded {
                Ok(v) => {
                    outln!("{}", serde_json::to_string_pretty(&v)?);
                    Ok(ExitCode::SUCCESS)
                }
                Err(reason) => {
                    eprintln!("cannot decode {}: {reason}", file.display());
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}
