//! Sources that are files: a directory of plain manifests (multi-document YAML, JSON, `List` kinds), and a
//! bundle an earlier export wrote. Live clusters are in [`crate::live`]. A malformed document is an error of
//! that document; the rest is read.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::io;
use crate::object::{Obj, ObjRef};
use crate::Error;

/// A document that could not become an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocError {
    /// File, and document index within it (`app.yaml#2`).
    pub at: String,
    /// The object, when it got that far.
    pub object: Option<String>,
    /// What is wrong.
    pub reason: String,
}

/// What a source read.
#[derive(Debug, Clone, Default)]
pub struct Read {
    /// Objects, in the order found.
    pub objects: Vec<Obj>,
    /// Documents that could not be read.
    pub errors: Vec<DocError>,
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(format!("reading directory {}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, out)?;
        } else if p.extension().and_then(|e| e.to_str()).is_some_and(|e| matches!(e, "yaml" | "yml" | "json")) {
            out.push(p);
        }
    }
    Ok(())
}

/// Checks one document and flattens `List`s into `into`.
fn take(v: Value, at: &str, into: &mut Read, seen: &mut BTreeSet<ObjRef>) {
    if v.is_null() {
        return; // an empty document (`---` at the end)
    }
    let Some(m) = v.as_object() else {
        into.errors.push(DocError { at: at.into(), object: None, reason: "not a mapping".into() });
        return;
    };
    let kind = m.get("kind").and_then(Value::as_str).unwrap_or_default();
    let api = m.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    if kind.ends_with("List") && m.get("items").is_some_and(Value::is_array) {
        for (i, item) in m["items"].as_array().cloned().unwrap_or_default().into_iter().enumerate() {
            take(item, &format!("{at} items[{i}]"), into, seen);
        }
        return;
    }
    let name = m.get("metadata").and_then(|md| md.get("name")).and_then(Value::as_str).unwrap_or_default();
    let mut missing = Vec::new();
    if kind.is_empty() {
        missing.push("kind");
    }
    if api.is_empty() {
        missing.push("apiVersion");
    }
    if name.is_empty() {
        missing.push("metadata.name");
    }
    if !missing.is_empty() {
        into.errors.push(DocError {
            at: at.into(),
            object: (!name.is_empty()).then(|| name.to_string()),
            reason: format!("missing {}", missing.join(", ")),
        });
        return;
    }
    let o = Obj(v);
    let r = o.obj_ref();
    if !seen.insert(r.clone()) {
        into.errors.push(DocError {
            at: at.into(),
            object: Some(r.to_string()),
            reason: "duplicate: the same object appears earlier; the first one is kept".into(),
        });
        return;
    }
    into.objects.push(o);
}

/// Reads every `.yaml`, `.yml` and `.json` file under `dir` (sorted, recursively).
pub fn read_dir(dir: &Path) -> Result<Read, Error> {
    let mut paths = Vec::new();
    files(dir, &mut paths)?;
    let mut out = Read::default();
    let mut seen = BTreeSet::new();
    for p in paths {
        let text = std::fs::read_to_string(&p).map_err(io(format!("reading {}", p.display())))?;
        let name = p.strip_prefix(dir).unwrap_or(&p).display().to_string();
        read_text(&text, &name, p.extension().and_then(|e| e.to_str()) == Some("json"), &mut out, &mut seen);
    }
    Ok(out)
}

/// Reads one file's text (YAML documents, or one JSON value).
pub fn read_text(text: &str, name: &str, json: bool, out: &mut Read, seen: &mut BTreeSet<ObjRef>) {
    if json {
        match serde_json::from_str::<Value>(text) {
            Ok(v) => take(v, name, out, seen),
            Err(e) => out.errors.push(DocError { at: name.into(), object: None, reason: format!("not JSON: {e}") }),
        }
        return;
    }
    // split on document markers ourselves, so one malformed document does not lose the ones after it
    for (i, doc) in split_documents(text).into_iter().enumerate() {
        let at = format!("{name}#{i}");
        match serde_yaml::from_str::<Value>(&doc) {
            Ok(v) => take(v, &at, out, seen),
            Err(e) => out.errors.push(DocError { at, object: None, reason: format!("not YAML: {e}") }),
        }
    }
}

/// Reads the objects of an etcd snapshot (or data directory) at `revision` (`None`: the newest). Keys that
/// could not be read back (damage, encryption, unknown encodings) are per-key errors; the rest is returned.
#[cfg(feature = "etcd")]
pub fn read_etcd(
    path: &Path,
    revision: Option<i64>,
    keys: Option<&eksodus_etcd::encryption::Keys>,
) -> Result<(Read, eksodus_etcd::Snapshot), Error> {
    let mut snap = eksodus_etcd::Snapshot::open(path, revision)
        .map_err(|e| Error::Bundle { path: path.display().to_string(), message: e.to_string() })?;
    let mut out = Read::default();
    let mut seen = BTreeSet::new();
    for d in &snap.damage {
        out.errors.push(DocError {
            at: format!("{}{}", path.display(), d.page.map(|p| format!(" page {p}")).unwrap_or_default()),
            object: d.key.clone(),
            reason: d.reason.clone(),
        });
    }
    // each stored value is dropped once decoded, so the values and the objects are never both held whole
    for e in std::mem::take(&mut snap.entries) {
        if e.resource.is_none() {
            continue; // internal keys of the API server (allocators, leases of API servers), not objects
        }
        match eksodus_etcd::recover_with(&e, keys) {
            eksodus_etcd::Recovered::Object(v) => take(v, &e.key, &mut out, &mut seen),
            eksodus_etcd::Recovered::Lost { key, reason } => {
                out.errors.push(DocError { at: key, object: None, reason })
            }
        }
    }
    Ok((out, snap))
}

/// Splits a YAML stream at `---` lines (a marker may carry a comment); `...` ends a document.
pub fn split_documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        let t = line.trim_end();
        if t == "---" || t.starts_with("--- ") || t.starts_with("---\t") {
            docs.push(String::new());
            let rest = t[3..].trim_start();
            if !rest.is_empty() && !rest.starts_with('#') {
                let last = docs.last_mut().expect("a document");
                last.push_str(rest);
                last.push('\n');
            }
        } else if t == "..." {
            docs.push(String::new());
        } else {
            let last = docs.last_mut().expect("a document");
            last.push_str(line);
            last.push('\n');
        }
    }
    docs.retain(|d| d.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')));
    docs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_documents_are_errors_and_the_rest_is_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one, namespace: x}\n---\nkind: ConfigMap\nmetadata: {name: two}\n---\n: bad: [\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: s, namespace: x}}\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: one, namespace: x}}\n---\n# only a comment\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(
            dir.path().join("sub/b.json"),
            r#"{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "x"}}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("sub/c.json"), "{nope").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let r = read_dir(dir.path()).unwrap();
        let names: Vec<String> = r.objects.iter().map(|o| o.obj_ref().to_string()).collect();
        assert_eq!(names, vec!["ConfigMap x/one", "Secret x/s", "apps/Deployment x/d"]);
        let errs: Vec<String> = r.errors.iter().map(|e| format!("{}: {}", e.at, e.reason)).collect();
        assert_eq!(errs.len(), 4, "{errs:#?}");
        assert!(errs[0].starts_with("a.yaml#1: missing apiVersion"), "{errs:#?}");
        assert!(errs[1].starts_with("a.yaml#2: not YAML"), "{errs:#?}");
        assert!(errs[2].contains("items[1]") && errs[2].contains("duplicate"), "{errs:#?}");
        assert!(errs[3].starts_with("sub/c.json: not JSON"), "{errs:#?}");
    }
}
