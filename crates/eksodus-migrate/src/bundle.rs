//! The pipeline from read objects to an ordered, transformed set ([`prepare`]), and the bundle directory that
//! holds it: `manifest.json` (`{"objects": [...]}` in apply order, each with `apiVersion`, `kind`, `namespace`
//! when namespaced, `name`, `file`, `wave`), one YAML file per object, and `report.json`. Every file is written
//! with mode 0600: bundles hold Secrets.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::io;
use crate::filter::{exclusion, Filters};
use crate::object::{Obj, ObjRef};
use crate::order::{order, Edge};
use crate::source::{DocError, Read};
use crate::transform::{self, Rules};
use crate::Error;

/// An object left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Excluded {
    /// The object.
    pub object: String,
    /// Why.
    pub reason: String,
}

/// What the export did, object by object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Where the objects came from.
    pub source: String,
    /// Objects migrated.
    pub objects: usize,
    /// Objects left out, with reasons.
    pub excluded: Vec<Excluded>,
    /// Rules that changed each object.
    pub transforms: BTreeMap<String, Vec<String>>,
    /// Documents or objects that could not be read.
    pub errors: Vec<DocError>,
    /// Dependency cycles (members).
    pub cycles: Vec<Vec<String>>,
    /// Dependencies on later categories (ignored for ordering).
    pub backward_edges: Vec<String>,
    /// `namespace/name` → load-balancer hostnames or IPs of Services in the source (for the DNS cutover).
    pub load_balancers: BTreeMap<String, Vec<String>>,
}

/// The ordered, transformed objects of a run.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    /// Objects with their waves, in apply order.
    pub objects: Vec<(Obj, u32)>,
    /// The report.
    pub report: Report,
}

fn lb_addresses(o: &Obj) -> Option<Vec<String>> {
    if o.kind() != "Service" || !o.group().is_empty() {
        return None;
    }
    let list: Vec<String> = o
        .get("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("hostname").or_else(|| i.get("ip")).and_then(Value::as_str).map(String::from))
        .collect();
    (!list.is_empty()).then_some(list)
}

/// Filters, transforms and orders what a source read.
pub fn prepare(read: Read, source: &str, filters: &Filters, rules: &Rules) -> Prepared {
    let mut report = Report { source: source.into(), errors: read.errors, ..Default::default() };
    let mut kept = Vec::new();
    for o in read.objects {
        match exclusion(&o, filters) {
            Some(reason) => report.excluded.push(Excluded { object: o.obj_ref().to_string(), reason }),
            None => kept.push(o),
        }
    }
    let candidates: BTreeSet<ObjRef> = kept.iter().map(Obj::obj_ref).collect();
    let mut objs = Vec::with_capacity(kept.len());
    for mut o in kept {
        if let Some(owner) = transform::owned_by_migrated_controller(&o, &candidates) {
            report.excluded.push(Excluded {
                object: o.obj_ref().to_string(),
                reason: format!("owned by {owner}, which is migrated and makes it again"),
            });
            continue;
        }
        if let Some(lb) = lb_addresses(&o) {
            report.load_balancers.insert(format!("{}/{}", o.namespace(), o.name()), lb);
        }
        let applied = transform::apply(&mut o, rules, &candidates);
        if !applied.is_empty() {
            report.transforms.insert(o.obj_ref().to_string(), applied.iter().map(|s| s.to_string()).collect());
        }
        objs.push(o);
    }
    let ord = order(&objs);
    report.cycles = ord.cycles.iter().map(|c| c.iter().map(ToString::to_string).collect()).collect();
    report.backward_edges = ord.backward.iter().map(|e: &Edge| format!("{} -> {} ({})", e.from, e.to, e.why)).collect();
    let mut out: Vec<(Obj, u32)> = objs
        .into_iter()
        .map(|o| {
            let w = ord.waves[&o.obj_ref()];
            (o, w)
        })
        .collect();
    out.sort_by(|(a, wa), (b, wb)| (wa, a.obj_ref()).cmp(&(wb, b.obj_ref())));
    report.objects = out.len();
    Prepared { objects: out, report }
}

/// One entry of `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// `apiVersion`.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// Namespace; absent for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// File, relative to the bundle.
    pub file: String,
    /// Apply wave.
    pub wave: u32,
}

/// `manifest.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Every object, in apply order.
    pub objects: Vec<Entry>,
}

fn safe(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect()
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io(format!("writing {}", path.display())))?;
    // an existing file keeps its mode on open: set it
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io(format!("chmod {}", path.display())))?;
    f.write_all(bytes).map_err(io(format!("writing {}", path.display())))
}

/// YAML for a JSON value, block style, every string double-quoted with JSON's escapes (a JSON string is a valid
/// YAML double-quoted scalar, so nothing can be misread as a number, a bool or a date). Several times faster than
/// a general YAML emitter, which matters at tens of thousands of objects.
pub fn to_yaml(v: &Value) -> String {
    fn scalar(v: &Value) -> String {
        match v {
            Value::String(s) => serde_json::to_string(s).expect("a string serializes"),
            other => other.to_string(),
        }
    }
    fn emit(v: &Value, indent: usize, out: &mut String) {
        let pad = " ".repeat(indent);
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    out.push_str(&pad);
                    out.push_str(&serde_json::to_string(k).expect("a key serializes"));
                    out.push(':');
                    match x {
                        Value::Object(c) if !c.is_empty() => {
                            out.push('\n');
                            emit(x, indent + 2, out);
                        }
                        Value::Array(c) if !c.is_empty() => {
                            out.push('\n');
                            emit(x, indent, out);
                        }
                        Value::Object(_) => out.push_str(" {}\n"),
                        Value::Array(_) => out.push_str(" []\n"),
                        s => {
                            out.push(' ');
                            out.push_str(&scalar(s));
                            out.push('\n');
                        }
                    }
                }
            }
            Value::Array(a) => {
                for x in a {
                    out.push_str(&pad);
                    out.push_str("- ");
                    match x {
                        Value::Object(c) if !c.is_empty() => {
                            // the first key on the dash line, the rest aligned under it
                            let mut inner = String::new();
                            emit(x, indent + 2, &mut inner);
                            out.push_str(inner.trim_start());
                        }
                        Value::Array(c) if !c.is_empty() => {
                            out.push('\n');
                            emit(x, indent + 2, out);
                        }
                        Value::Object(_) => out.push_str("{}\n"),
                        Value::Array(_) => out.push_str("[]\n"),
                        s => {
                            out.push_str(&scalar(s));
                            out.push('\n');
                        }
                    }
                }
            }
            s => {
                out.push_str(&pad);
                out.push_str(&scalar(s));
                out.push('\n');
            }
        }
    }
    let mut out = String::new();
    match v {
        Value::Object(m) if m.is_empty() => out.push_str("{}\n"),
        Value::Array(a) if a.is_empty() => out.push_str("[]\n"),
        _ => emit(v, 0, &mut out),
    }
    out
}

fn write_new_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(format!("writing {}", path.display())))?;
    f.write_all(bytes).map_err(io(format!("writing {}", path.display())))
}

/// Writes a bundle (replacing the objects of an earlier one in the same directory).
pub fn write(dir: &Path, p: &Prepared) -> Result<Manifest, Error> {
    let objects = dir.join("objects");
    if objects.exists() {
        std::fs::remove_dir_all(&objects).map_err(io(format!("clearing {}", objects.display())))?;
    }
    std::fs::create_dir_all(&objects).map_err(io(format!("creating {}", objects.display())))?;
    let file_of = |i: usize, o: &Obj| {
        format!(
            "objects/{i:06}-{}-{}{}.yaml",
            safe(&o.kind().to_ascii_lowercase()),
            if o.namespace().is_empty() { String::new() } else { format!("{}-", safe(o.namespace())) },
            safe(o.name())
        )
    };
    // serializing and writing tens of thousands of files is the slow part: spread it over the cores
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).min(8);
    let chunk = p.objects.len().div_ceil(threads).max(1);
    let results: Vec<Result<(), Error>> = std::thread::scope(|sc| {
        let handles: Vec<_> = p
            .objects
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                let file_of = &file_of;
                sc.spawn(move || -> Result<(), Error> {
                    for (j, (o, _)) in part.iter().enumerate() {
                        let file = file_of(c * chunk + j, o);
                        let yaml = to_yaml(&o.0);
                        // the directory was just made: a new file gets mode 0600 at creation
                        write_new_private(&dir.join(&file), yaml.as_bytes())?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::Bundle { path: dir.display().to_string(), message: "a writer thread panicked".into() })
                })
            })
            .collect()
    });
    for r in results {
        r?;
    }
    let mut m = Manifest::default();
    for (i, (o, wave)) in p.objects.iter().enumerate() {
        m.objects.push(Entry {
            api_version: o.api_version().into(),
            kind: o.kind().into(),
            namespace: (!o.namespace().is_empty()).then(|| o.namespace().to_string()),
            name: o.name().into(),
            file: file_of(i, o),
            wave: *wave,
        });
    }
    let text = serde_json::to_vec_pretty(&m).expect("serializable");
    write_private(&dir.join("manifest.json"), &text)?;
    write_private(&dir.join("report.json"), &serde_json::to_vec_pretty(&p.report).expect("serializable"))?;
    Ok(m)
}

/// Reads a bundle: its objects with their waves in manifest order, and its report.
pub fn read(dir: &Path) -> Result<(Vec<(Obj, u32)>, Report), Error> {
    let bad = |m: String| Error::Bundle { path: dir.display().to_string(), message: m };
    let text = std::fs::read_to_string(dir.join("manifest.json"))
        .map_err(io(format!("reading {}/manifest.json", dir.display())))?;
    let m: Manifest = serde_json::from_str(&text).map_err(|e| bad(format!("manifest.json: {e}")))?;
    let mut out = Vec::with_capacity(m.objects.len());
    for (i, e) in m.objects.iter().enumerate() {
        if e.file.contains("..") || e.file.starts_with('/') {
            return Err(bad(format!("objects[{i}].file `{}` leaves the bundle", e.file)));
        }
        let t = std::fs::read_to_string(dir.join(&e.file)).map_err(io(format!("reading {}", e.file)))?;
        let v: Value = serde_yaml::from_str(&t).map_err(|err| bad(format!("{}: {err}", e.file)))?;
        let o = Obj(v);
        if o.kind() != e.kind || o.name() != e.name || o.namespace() != e.namespace.as_deref().unwrap_or("") {
            return Err(bad(format!("objects[{i}]: {} holds {}, not {} {}", e.file, o.obj_ref(), e.kind, e.name)));
        }
        out.push((o, e.wave));
    }
    let report = std::fs::read_to_string(dir.join("report.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    Ok((out, report))
}

/// A Secret for display: its data keys, never its values.
pub fn redact(o: &Obj) -> Value {
    let mut v = o.0.clone();
    if o.kind() == "Secret" && o.group().is_empty() {
        for field in ["data", "stringData"] {
            if let Some(m) = v.get_mut(field).and_then(Value::as_object_mut) {
                for val in m.values_mut() {
                    *val = Value::String("(redacted)".into());
                }
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_bundle_round_trips_privately_in_order() {
        let input = Read {
            objects: vec![
                Obj(
                    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop", "uid": "1"}, "spec": {}}),
                ),
                Obj(
                    json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-1", "namespace": "shop", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "controller": true}]}}),
                ),
                Obj(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})),
                Obj(
                    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"}, "data": {"password": "c2VjcmV0"}}),
                ),
                Obj(
                    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"}, "spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {"ingress": [{"hostname": "old.example.com"}]}}}),
                ),
                Obj(
                    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt", "namespace": "shop"}}),
                ),
            ],
            errors: vec![],
        };
        let p = prepare(input, "test", &Filters::default(), &Rules::default());
        let order: Vec<String> = p.objects.iter().map(|(o, _)| o.obj_ref().to_string()).collect();
        assert_eq!(order, vec!["Namespace shop", "Secret shop/db", "apps/Deployment shop/web", "Service shop/web"]);
        assert_eq!(p.report.excluded.len(), 2);
        assert!(p.report.excluded.iter().any(|e| e.object.contains("ReplicaSet") && e.reason.contains("controller")));
        assert_eq!(p.report.load_balancers["shop/web"], vec!["old.example.com"]);
        let dir = tempfile::tempdir().unwrap();
        let m = write(dir.path(), &p).unwrap();
        assert_eq!(m.objects[0].namespace, None);
        assert_eq!(m.objects[1].namespace.as_deref(), Some("shop"));
        use std::os::unix::fs::PermissionsExt;
        for e in &m.objects {
            let mode = std::fs::metadata(dir.path().join(&e.file)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", e.file);
        }
        let (back, report) = read(dir.path()).unwrap();
        assert_eq!(back, p.objects);
        assert_eq!(report, p.report);
        let shown = redact(&back[1].0);
        assert_eq!(shown["data"]["password"], "(redacted)");
        assert!(!serde_json::to_string(&report).unwrap().contains("c2VjcmV0"), "the report holds no secret value");
    }

    proptest::proptest! {
        /// The YAML written for any JSON value reads back as that value.
        #[test]
        fn yaml_round_trips(v in arb_json()) {
            let text = to_yaml(&v);
            let back: Value = serde_yaml::from_str(&text).map_err(|e| proptest::test_runner::TestCaseError::fail(format!("{e}\n{text}")))?;
            proptest::prop_assert_eq!(back, v, "{}", text);
        }
    }

    fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[ -~]{0,12}".prop_map(Value::String),
            prop_oneof![
                Just("yes"),
                Just("1.0"),
                Just("~"),
                Just("- x"),
                Just("a: b"),
                Just("#c"),
                Just("\n\t\"x\"é"),
                Just("2026-01-01")
            ]
            .prop_map(|s| Value::String(s.into())),
        ];
        leaf.prop_recursive(4, 40, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-zA-Z:.#/ -]{0,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
