//! Sources that are files: a directory of plain manifests (multi-document YAML, JSON, `List` kinds), and a
//! bundle an earlier export wrote. Live clusters are in [`crate::live`]. A malformed document is an error of
//! that document; the rest is read.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::io;
use crate::object::Ptr;
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
    if kind.ends_with("List") && m.get("items").is_some_and(Value::is_array) {
        for (i, item) in m["items"].as_array().cloned().unwrap_or_default().into_iter().enumerate() {
            take(item, &format!("{at} items[{i}]"), into, seen);
        }
        return;
    }
    match check(v, at) {
        Ok(o) => {
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
        Err(e) => into.errors.push(e),
    }
}

/// One object with the fields every object needs (`kind`, `apiVersion`, `metadata.name`).
fn check(v: Value, at: &str) -> Result<Obj, DocError> {
    let field = |p: &str| v.at(p).and_then(Value::as_str).unwrap_or_default();
    let (kind, api, name) = (field("/kind"), field("/apiVersion"), field("/metadata/name"));
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
        return Err(DocError {
            at: at.into(),
            object: (!name.is_empty()).then(|| name.to_string()),
            reason: format!("missing {}", missing.join(", ")),
        });
    }
    Ok(Obj(v))
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
        match serde_saphyr::from_str::<Value>(&doc) {
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
    let mut out = Read::default();
    let keys = keys.cloned().map(std::sync::Arc::new);
    let snap = stream_etcd(path, revision, keys, &mut |job| match job() {
        Ok(o) => out.objects.push(o),
        Err(e) => out.errors.push(e),
    })?;
    Ok((out, snap))
}

/// Streams the objects of an etcd snapshot (or data directory) at `revision` as jobs (see
/// [`crate::bundle::Export`]): the snapshot is scanned for keys and revisions first, then its values are read
/// again page by page, and each becomes a job that decrypts and decodes it. Neither the values nor the objects
/// are ever all held. Damage and keys that cannot be read back are jobs that return their error. Returns the
/// scan (revision range, damage, counts).
#[cfg(feature = "etcd")]
pub fn stream_etcd(
    path: &Path,
    revision: Option<i64>,
    keys: Option<std::sync::Arc<eksodus_etcd::encryption::Keys>>,
    push: &mut dyn FnMut(crate::bundle::Job),
) -> Result<eksodus_etcd::Snapshot, Error> {
    let failed = |e: eksodus_etcd::Error| Error::Bundle { path: path.display().to_string(), message: e.to_string() };
    let snap = eksodus_etcd::Snapshot::scan(path, revision).map_err(failed)?;
    let damage = |d: &eksodus_etcd::Damage| DocError {
        at: format!("{}{}", path.display(), d.page.map(|p| format!(" page {p}")).unwrap_or_default()),
        object: d.key.clone(),
        reason: d.reason.clone(),
    };
    for d in &snap.damage {
        let e = damage(d);
        push(Box::new(move || Err(e)));
    }
    let lost = snap
        .for_each_value(|entry, value| {
            if entry.resource.is_none() {
                return; // internal keys of the API server (allocators, leases of API servers), not objects
            }
            let (entry, value, keys) = (entry.clone(), value.to_vec(), keys.clone());
            push(Box::new(move || match eksodus_etcd::recover_value(&entry, &value, keys.as_deref()) {
                eksodus_etcd::Recovered::Object(v) => matches_key(check(v, &entry.key)?, &entry),
                eksodus_etcd::Recovered::Lost { key, reason } => Err(DocError { at: key, object: None, reason }),
            }));
        })
        .map_err(failed)?;
    for d in &lost {
        let e = damage(d);
        push(Box::new(move || Err(e)));
    }
    Ok(snap)
}

/// The API server derives a key from the object's namespace and name, so a stored object that names itself
/// otherwise was not written by it (or is damaged): it is an error of its key rather than a second copy of
/// whatever it claims to be.
#[cfg(feature = "etcd")]
fn matches_key(o: Obj, entry: &eksodus_etcd::Entry) -> Result<Obj, DocError> {
    match &entry.resource {
        Some(r) if r.namespace != o.namespace() || r.name != o.name() => Err(DocError {
            at: entry.key.clone(),
            object: Some(o.obj_ref().to_string()),
            reason: format!(
                "the stored object is {} but its key is for {}{}; left out",
                o.obj_ref(),
                if r.namespace.is_empty() { String::new() } else { format!("{}/", r.namespace) },
                r.name
            ),
        }),
        _ => Ok(o),
    }
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
