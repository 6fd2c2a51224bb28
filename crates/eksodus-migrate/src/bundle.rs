//! The pipeline from read objects to an ordered, transformed set ([`prepare`]), and the bundle directory that
//! holds it: `manifest.json` (`{"objects": [...]}` in apply order, each with `apiVersion`, `kind`, `namespace`
//! when namespaced, `name`, `file`, `wave`), one YAML file per object, and `report.json`. Every file is written
//! with mode 0600: bundles hold Secrets.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::io;
use crate::filter::{exclusion, Filters};
use crate::object::{Obj, ObjRef};
use crate::order::{order, order_indexed, Edge, Node};
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

/// The transform name a version conversion is reported under.
pub const SERVED_VERSION: &str = "served-version";

/// `o` in a version the target serves ([`crate::convert`]); `None` (with the error recorded) when it cannot be.
fn served(o: Obj, errors: &mut Vec<DocError>, converted: &mut HashSet<ObjRef>) -> Option<Obj> {
    let name = o.obj_ref().to_string();
    match crate::convert::to_served(o) {
        Ok(crate::convert::Converted::Unchanged(o)) => Some(o),
        Ok(crate::convert::Converted::From { obj, .. }) => {
            converted.insert(obj.obj_ref());
            Some(obj)
        }
        Err(reason) => {
            errors.push(DocError { at: name.clone(), object: Some(name), reason });
            None
        }
    }
}

/// Filters, transforms and orders what a source read.
pub fn prepare(read: Read, source: &str, filters: &Filters, rules: &Rules) -> Prepared {
    let mut report = Report { source: source.into(), errors: read.errors, ..Default::default() };
    let mut kept = Vec::new();
    let mut converted = HashSet::new();
    for o in read.objects {
        let Some(o) = served(o, &mut report.errors, &mut converted) else { continue };
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
        let lb = lb_addresses(&o);
        let was_converted = converted.contains(&o.obj_ref());
        let mut applied = transform::apply(&mut o, rules, &candidates);
        if was_converted {
            applied.insert(0, SERVED_VERSION);
        }
        // keyed by the name in the target: `verify` looks the old addresses up by the bundle's objects
        if let Some(lb) = lb {
            report.load_balancers.insert(format!("{}/{}", o.namespace(), o.name()), lb);
        }
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

/// YAML for a JSON value as `kubectl get -o yaml` would show it: block style, an object's `apiVersion`, `kind`
/// and `metadata` first, plain scalars wherever no YAML parser could read them as anything but the string
/// they are, multi-line strings as literal blocks, and everything else double-quoted with JSON's escapes (a
/// JSON string is a valid YAML double-quoted scalar). Hand-written because it is several times faster than a
/// general YAML emitter, which matters at tens of thousands of objects; a property test reads every output back.
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if m.is_empty() => out.push_str("{}\n"),
        Value::Array(a) if a.is_empty() => out.push_str("[]\n"),
        Value::Object(m) => {
            // the identity of a Kubernetes object first
            let first = ["apiVersion", "kind", "metadata"];
            let head = first.iter().filter_map(|k| m.get_key_value(*k));
            let rest = m.iter().filter(|(k, _)| !first.contains(&k.as_str()));
            for (k, x) in head.chain(rest) {
                yaml_entry(k, x, 0, &mut out);
            }
        }
        Value::Array(_) => yaml_emit(v, 0, &mut out),
        s => {
            yaml_scalar(s, 0, &mut out);
            out.push('\n');
        }
    }
    out
}

/// Whether a string can be written as a plain YAML scalar and read back as the same string by YAML 1.1 and
/// 1.2 parsers alike (so `yes`, `on`, `~`, `0x1F`, `1_000`, `2026-01-01` and `1:20` are quoted).
fn plain_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else { return false };
    if !(first.is_ascii_alphanumeric() || first == '/' || first == '_' || first == '.') {
        return false;
    }
    if s.ends_with(' ') || s.ends_with(':') || s.contains(": ") || s.contains(" #") {
        return false;
    }
    if !s.chars().all(|c| c.is_ascii_alphanumeric() || " _./:@+=,-()".contains(c)) {
        return false;
    }
    // words YAML 1.1 reads as booleans or null, whatever their case
    const WORDS: &[&str] = &["y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf"];
    let lower = s.to_ascii_lowercase();
    if WORDS.contains(&lower.trim_start_matches('.')) {
        return false;
    }
    // anything with a digit made only of number-and-time characters could be an int, a float (.5, 1e3,
    // 1_000), a base-60 number or a timestamp in one YAML version or another
    let numeric = s.chars().any(|c| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_hexdigit() || "+-._:xXoObBtTzZ ".contains(c));
    !numeric
}

/// A string as a YAML scalar on the current line: plain, a literal block (multi-line text), or double-quoted.
fn yaml_string(s: &str, indent: usize, out: &mut String) {
    if plain_ok(s) {
        out.push_str(s);
        return;
    }
    let block_ok = s.contains('\n')
        && !s.starts_with([' ', '\n'])
        && !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
        && s.split('\n').all(|l| !l.ends_with([' ', '\t']));
    if !block_ok {
        out.push_str(&serde_json::to_string(s).expect("a string serializes"));
        return;
    }
    let body = s.trim_end_matches('\n');
    let trailing = s.len() - body.len();
    out.push_str(match trailing {
        0 => "|-",
        1 => "|",
        _ => "|+",
    });
    let pad = " ".repeat(indent + 2);
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(&pad);
            out.push_str(line);
        }
    }
    // `|+` keeps the final newlines: write the ones after the last line as empty lines
    for _ in 1..trailing.max(1) {
        out.push('\n');
    }
}

fn yaml_scalar(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::String(s) => yaml_string(s, indent, out),
        other => out.push_str(&other.to_string()),
    }
}

fn yaml_key(k: &str, out: &mut String) {
    if plain_ok(k) && !k.contains(':') {
        out.push_str(k);
    } else {
        out.push_str(&serde_json::to_string(k).expect("a key serializes"));
    }
}

/// `key: value` at `indent`, its children below.
fn yaml_entry(k: &str, x: &Value, indent: usize, out: &mut String) {
    out.push_str(&" ".repeat(indent));
    yaml_key(k, out);
    out.push(':');
    match x {
        Value::Object(c) if !c.is_empty() => {
            out.push('\n');
            yaml_emit(x, indent + 2, out);
        }
        // a sequence under a key sits at the key's indentation, as kubectl writes it
        Value::Array(c) if !c.is_empty() => {
            out.push('\n');
            yaml_emit(x, indent, out);
        }
        Value::Object(_) => out.push_str(" {}\n"),
        Value::Array(_) => out.push_str(" []\n"),
        s => {
            out.push(' ');
            yaml_scalar(s, indent, out);
            out.push('\n');
        }
    }
}

fn yaml_emit(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                yaml_entry(k, x, indent, out);
            }
        }
        Value::Array(a) => {
            let pad = " ".repeat(indent);
            for x in a {
                out.push_str(&pad);
                out.push_str("- ");
                match x {
                    Value::Object(c) if !c.is_empty() => {
                        // the first key on the dash line, the rest aligned under it
                        let mut inner = String::new();
                        yaml_emit(x, indent + 2, &mut inner);
                        out.push_str(&inner[indent + 2..]);
                    }
                    Value::Array(c) if !c.is_empty() => {
                        out.push('\n');
                        yaml_emit(x, indent + 2, out);
                    }
                    Value::Object(_) => out.push_str("{}\n"),
                    Value::Array(_) => out.push_str("[]\n"),
                    s => {
                        yaml_scalar(s, indent + 2, out);
                        out.push('\n');
                    }
                }
            }
        }
        s => {
            out.push_str(&" ".repeat(indent));
            yaml_scalar(s, indent, out);
            out.push('\n');
        }
    }
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

/// File names inside a bundle: `objects/<namespace>/<kind>[.<group>]_<name>.yaml`, cluster-scoped objects under
/// `objects/_cluster/` (`_` is in no Kubernetes name, so neither the directory nor the separator can clash).
/// Per-namespace directories also let writers run in parallel without contending for one directory's lock.
/// Returns the directory and the file name without `.yaml`.
fn file_base(o: &Obj) -> (String, String) {
    file_base_of(o.group(), o.kind(), o.namespace(), o.name())
}

fn file_base_of(group: &str, kind: &str, namespace: &str, name: &str) -> (String, String) {
    let sub = if namespace.is_empty() { "_cluster".to_string() } else { safe(namespace) };
    let kind = safe(&kind.to_ascii_lowercase());
    let group = if group.is_empty() { String::new() } else { format!(".{}", safe(group)) };
    let base = format!("objects/{sub}/{kind}{group}_{}", safe(name));
    (sub, base)
}

/// The `n`th candidate file for a base (only names outside Kubernetes' rules, from hand-written manifests,
/// can need a second).
fn candidate(base: &str, n: u32) -> String {
    if n == 1 {
        format!("{base}.yaml")
    } else {
        format!("{base}-{n}.yaml")
    }
}

/// The per-namespace directories made so far.
#[derive(Default)]
struct Dirs(HashSet<String>);

impl Dirs {
    fn ensure(&mut self, dir: &Path, sub: String) -> Result<(), Error> {
        if !self.0.contains(&sub) {
            let d = dir.join("objects").join(&sub);
            std::fs::create_dir_all(&d).map_err(io(format!("creating {}", d.display())))?;
            self.0.insert(sub);
        }
        Ok(())
    }
}

/// Unique file names for objects written later (a prepared bundle knows all its names up front).
#[derive(Default)]
struct Names {
    used: HashSet<String>,
    dirs: Dirs,
}

impl Names {
    /// A new, unique file for `o`, its directory created.
    fn claim(&mut self, dir: &Path, o: &Obj) -> Result<String, Error> {
        let (sub, base) = file_base(o);
        self.dirs.ensure(dir, sub)?;
        let mut n = 1;
        while !self.used.insert(candidate(&base, n)) {
            n += 1;
        }
        Ok(candidate(&base, n))
    }
}

/// Writes `bytes` to a new file for `o` (mode 0600 from creation), the file system telling whether a name is
/// taken, so a streamed export keeps no set of names. Returns which [`candidate`] it got.
fn write_new(dir: &Path, dirs: &Mutex<Dirs>, o: &Obj, bytes: &[u8]) -> Result<u32, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let (sub, base) = file_base(o);
    dirs.lock().unwrap_or_else(|p| p.into_inner()).ensure(dir, sub)?;
    let mut n = 1;
    loop {
        let file = candidate(&base, n);
        let path = dir.join(&file);
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
            Ok(mut f) => {
                f.write_all(bytes).map_err(io(format!("writing {}", path.display())))?;
                return Ok(n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
            Err(e) => return Err(io(format!("writing {}", path.display()))(e)),
        }
    }
}

fn entry(o: &Obj, file: String, wave: u32) -> Entry {
    Entry {
        api_version: o.api_version().into(),
        kind: o.kind().into(),
        namespace: (!o.namespace().is_empty()).then(|| o.namespace().to_string()),
        name: o.name().into(),
        file,
        wave,
    }
}

fn clear_objects(dir: &Path) -> Result<(), Error> {
    let objects = dir.join("objects");
    if objects.exists() {
        std::fs::remove_dir_all(&objects).map_err(io(format!("clearing {}", objects.display())))?;
    }
    std::fs::create_dir_all(&objects).map_err(io(format!("creating {}", objects.display())))
}

fn write_index(dir: &Path, m: &Manifest, report: &Report) -> Result<(), Error> {
    write_private(&dir.join("manifest.json"), &serde_json::to_vec_pretty(m).expect("serializable"))?;
    write_private(&dir.join("report.json"), &serde_json::to_vec_pretty(report).expect("serializable"))
}

fn workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).min(8)
}

/// Writes a prepared bundle (replacing the objects of an earlier one in the same directory).
pub fn write(dir: &Path, p: &Prepared) -> Result<Manifest, Error> {
    clear_objects(dir)?;
    let mut names = Names::default();
    let mut m = Manifest::default();
    for (o, wave) in &p.objects {
        m.objects.push(entry(o, names.claim(dir, o)?, *wave));
    }
    // serializing and writing tens of thousands of files is the slow part: spread it over the cores
    let chunk = p.objects.len().div_ceil(workers()).max(1);
    std::thread::scope(|sc| {
        let handles: Vec<_> = p
            .objects
            .chunks(chunk)
            .zip(m.objects.chunks(chunk))
            .map(|(part, files)| {
                sc.spawn(move || -> Result<(), Error> {
                    for ((o, _), e) in part.iter().zip(files) {
                        // the directory was just made: a new file gets mode 0600 at creation
                        write_new_private(&dir.join(&e.file), to_yaml(&o.0).as_bytes())?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| h.join().unwrap_or_else(|_| Err(panicked(dir))))
    })?;
    write_index(dir, &m, &p.report)?;
    Ok(m)
}

fn panicked(dir: &Path) -> Error {
    Error::Bundle { path: dir.display().to_string(), message: "a writer thread panicked".into() }
}

const BATCH: usize = 32;

/// One unit of work for an [`Export`]: produces an object (decoding it, typically) or says why it cannot.
pub type Job = Box<dyn FnOnce() -> Result<Obj, DocError> + Send>;

/// What an [`Export`] wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exported {
    /// `manifest.json`.
    pub manifest: Manifest,
    /// `report.json`.
    pub report: Report,
}

impl Exported {
    /// Number of apply waves.
    pub fn waves(&self) -> u32 {
        self.manifest.objects.iter().map(|e| e.wave + 1).max().unwrap_or(0)
    }
}

/// A bundle written while its source is still being read: the same filters, transforms, order and files as
/// [`prepare`] + [`write()`], without holding the objects. Worker threads run each [`Job`] (so decoding is
/// parallel too), filter, transform, serialize and write the object, and keep only its manifest entry and
/// the [`Node`] ordering needs; [`finish`](Export::finish) orders them and writes `manifest.json` and
/// `report.json`. Memory stays flat in the number of objects, except for one kind: objects with owner
/// references wait (as compact JSON) until every object is known, because whether their owner is migrated
/// decides whether they are.
pub struct Export {
    tx: Option<mpsc::SyncSender<Vec<Job>>>,
    /// Jobs go to the workers in batches: one channel message per object costs more than a small object.
    batch: Mutex<Vec<Job>>,
    workers: Vec<std::thread::JoinHandle<()>>,
    shared: Arc<Shared>,
}

struct Shared {
    /// Where progress goes (objects read and written so far), if anywhere.
    events: std::sync::OnceLock<eksodus_core::events::EventSink>,
    /// Jobs done (objects made, or read errors).
    done: std::sync::atomic::AtomicU64,
    dir: PathBuf,
    filters: Filters,
    rules: Rules,
    dirs: Mutex<Dirs>,
    state: Mutex<State>,
}

/// Objects between two progress events of an [`Export`].
pub const PROGRESS_EVERY: u64 = 1000;

impl Shared {
    /// Counts one job; emits progress every [`PROGRESS_EVERY`] jobs, or now with `last`.
    fn progress(&self, last: bool) {
        use std::sync::atomic::Ordering;
        let Some(events) = self.events.get() else { return };
        let done = if last { self.done.load(Ordering::Relaxed) } else { self.done.fetch_add(1, Ordering::Relaxed) + 1 };
        if last || done % PROGRESS_EVERY == 0 {
            events.emit(eksodus_core::events::Event::Progress {
                phase: "export".into(),
                done,
                total: None,
                item: None,
                outcome: None,
            });
        }
    }
}

/// What an export keeps of a written object: enough to order it and make its manifest entry.
struct Written {
    /// Shared between objects of one `apiVersion`.
    api_version: Arc<str>,
    /// Which [`candidate`] file it was written to.
    n: u32,
    node: Node,
    /// Whether transforms changed its reference (its reference before them is then in `State::kept`).
    renamed: bool,
}

impl Written {
    fn entry(&self, wave: u32) -> Entry {
        let r = &self.node.obj;
        Entry {
            api_version: self.api_version.to_string(),
            kind: r.kind.clone(),
            namespace: (!r.namespace.is_empty()).then(|| r.namespace.clone()),
            name: r.name.clone(),
            file: candidate(&file_base_of(&r.group, &r.kind, &r.namespace, &r.name).1, self.n),
            wave,
        }
    }
}

#[derive(Default)]
struct State {
    report: Report,
    written: Vec<Written>,
    /// References before transforms of the objects that passed the filters, where the written ones do not
    /// say it: waiting objects, and objects the transforms renamed.
    kept: Vec<ObjRef>,
    api_versions: HashSet<Arc<str>>,
    /// Objects with owner references, as JSON, decided in `finish`.
    deferred: Vec<Vec<u8>>,
    /// Objects converted to a served version (few: only removed versions are converted).
    converted: HashSet<ObjRef>,
    failure: Option<Error>,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self, o: Obj) {
        let o = {
            let mut errors = Vec::new();
            let mut converted = HashSet::new();
            let Some(o) = served(o, &mut errors, &mut converted) else {
                self.state().report.errors.extend(errors);
                return;
            };
            if !converted.is_empty() {
                self.state().converted.extend(converted);
            }
            o
        };
        if let Some(reason) = exclusion(&o, &self.filters) {
            self.state().report.excluded.push(Excluded { object: o.obj_ref().to_string(), reason });
            return;
        }
        let owned = o.get("/metadata/ownerReferences").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
        if owned {
            let json = serde_json::to_vec(&o.0).expect("a JSON value serializes");
            let mut st = self.state();
            st.kept.push(o.obj_ref());
            st.deferred.push(json);
            return;
        }
        // without owner references, the set of migrated objects changes nothing in the transforms
        if let Err(e) = self.put(o, &BTreeSet::new(), true) {
            self.state().failure.get_or_insert(e);
        }
    }

    /// Transforms and writes one object; `new` when its reference is not yet in `State::kept`.
    fn put(&self, mut o: Obj, migrated: &BTreeSet<ObjRef>, new: bool) -> Result<(), Error> {
        let lb = lb_addresses(&o);
        let before = o.obj_ref();
        let mut applied = transform::apply(&mut o, &self.rules, migrated);
        if self.state().converted.contains(&before) {
            applied.insert(0, SERVED_VERSION);
        }
        let node = Node::of(&o);
        let n = write_new(&self.dir, &self.dirs, &o, to_yaml(&o.0).as_bytes())?;
        let renamed = node.obj != before;
        let mut st = self.state();
        if renamed && new {
            st.kept.push(before);
        }
        let api_version = match st.api_versions.get(o.api_version()) {
            Some(a) => a.clone(),
            None => {
                let a: Arc<str> = o.api_version().into();
                st.api_versions.insert(a.clone());
                a
            }
        };
        if let Some(lb) = lb {
            st.report.load_balancers.insert(format!("{}/{}", o.namespace(), o.name()), lb);
        }
        if !applied.is_empty() {
            st.report.transforms.insert(node.obj.to_string(), applied.iter().map(|s| s.to_string()).collect());
        }
        st.written.push(Written { api_version, n, node, renamed });
        Ok(())
    }
}

impl Export {
    /// Starts a bundle in `dir` (replacing the objects of an earlier one there).
    pub fn new(dir: &Path, source: &str, filters: Filters, rules: Rules) -> Result<Export, Error> {
        clear_objects(dir)?;
        let state = State { report: Report { source: source.into(), ..Default::default() }, ..Default::default() };
        let shared = Arc::new(Shared {
            events: std::sync::OnceLock::new(),
            done: std::sync::atomic::AtomicU64::new(0),
            dir: dir.to_path_buf(),
            filters,
            rules,
            dirs: Mutex::default(),
            state: Mutex::new(state),
        });
        let n = workers();
        // bounded: a fast reader waits for the writers instead of queueing the whole source in memory
        let (tx, rx) = mpsc::sync_channel::<Vec<Job>>(n * 4);
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..n)
            .map(|_| {
                let (rx, shared) = (rx.clone(), shared.clone());
                std::thread::spawn(move || loop {
                    let jobs = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok(jobs) = jobs else { return };
                    for job in jobs {
                        match job() {
                            Ok(o) => shared.take(o),
                            Err(e) => shared.state().report.errors.push(e),
                        }
                        shared.progress(false);
                    }
                })
            })
            .collect();
        Ok(Export { tx: Some(tx), batch: Mutex::default(), workers, shared })
    }

    /// Sends progress to `events`: [`Event::Progress`](eksodus_core::events::Event::Progress) with phase
    /// `export` every [`PROGRESS_EVERY`] objects and once at the end.
    pub fn with_events(self, events: eksodus_core::events::EventSink) -> Export {
        let _ = self.shared.events.set(events);
        self
    }

    /// Queues an object.
    pub fn push(&self, o: Obj) {
        self.push_job(Box::new(move || Ok(o)));
    }

    /// Queues a job that makes an object (it runs on a worker thread).
    pub fn push_job(&self, job: Job) {
        let full = {
            let mut b = self.batch.lock().unwrap_or_else(|p| p.into_inner());
            b.push(job);
            (b.len() >= BATCH).then(|| std::mem::take(&mut *b))
        };
        if let Some(jobs) = full {
            self.send(jobs);
        }
    }

    fn send(&self, jobs: Vec<Job>) {
        if let Some(tx) = &self.tx {
            // the workers outlive the sender; a send fails only if they all panicked, which finish reports
            let _ = tx.send(jobs);
        }
    }

    /// Names the source in the report (when it is known only once reading started).
    pub fn set_source(&self, source: String) {
        self.shared.state().report.source = source;
    }

    /// Records a document or key that could not be read.
    pub fn error(&self, e: DocError) {
        self.shared.state().report.errors.push(e);
    }

    /// Waits for the queued work, decides the objects with owner references, orders everything and writes
    /// `manifest.json` and `report.json`.
    pub fn finish(mut self) -> Result<Exported, Error> {
        let rest = std::mem::take(&mut *self.batch.lock().unwrap_or_else(|p| p.into_inner()));
        self.send(rest);
        drop(self.tx.take());
        let mut panics = 0;
        for w in self.workers.drain(..) {
            panics += usize::from(w.join().is_err());
        }
        if panics > 0 {
            return Err(panicked(&self.shared.dir));
        }
        self.shared.progress(true);
        let mut st = std::mem::take(&mut *self.shared.state());
        if let Some(e) = st.failure.take() {
            return Err(e);
        }
        let kept = std::mem::take(&mut st.kept);
        let migrated: BTreeSet<ObjRef> = if st.deferred.is_empty() {
            BTreeSet::new()
        } else {
            let written = st.written.iter().filter(|w| !w.renamed).map(|w| w.node.obj.clone());
            kept.into_iter().chain(written).collect()
        };
        for json in std::mem::take(&mut st.deferred) {
            let o = Obj(serde_json::from_slice(&json).expect("written by serde_json"));
            if let Some(owner) = transform::owned_by_migrated_controller(&o, &migrated) {
                st.report.excluded.push(Excluded {
                    object: o.obj_ref().to_string(),
                    reason: format!("owned by {owner}, which is migrated and makes it again"),
                });
                continue;
            }
            self.shared.put(o, &migrated, false)?;
            let mut more = std::mem::take(&mut *self.shared.state());
            st.written.append(&mut more.written);
            st.report.transforms.append(&mut more.report.transforms);
            st.report.load_balancers.append(&mut more.report.load_balancers);
        }
        drop(migrated);
        let written = std::mem::take(&mut st.written);
        let ord = {
            // ordering borrows the nodes where they are
            let nodes: Vec<&Node> = written.iter().map(|w| &w.node).collect();
            order_indexed(&nodes)
        };
        let mut report = st.report;
        report.cycles = ord.cycles.iter().map(|c| c.iter().map(ToString::to_string).collect()).collect();
        report.backward_edges =
            ord.backward.iter().map(|e: &Edge| format!("{} -> {} ({})", e.from, e.to, e.why)).collect();
        let mut objects: Vec<((u32, usize), &Written)> = ord.of.iter().copied().zip(&written).collect();
        objects.sort_unstable_by_key(|(k, _)| *k);
        // workers finish in any order: sort what they reported so a run's report is deterministic
        report.excluded.sort_by(|a, b| a.object.cmp(&b.object));
        report.errors.sort_by(|a, b| (&a.at, &a.object).cmp(&(&b.at, &b.object)));
        report.objects = objects.len();
        let manifest = Manifest { objects: objects.into_iter().map(|((w, _), o)| o.entry(w)).collect() };
        write_index(&self.shared.dir, &manifest, &report)?;
        Ok(Exported { manifest, report })
    }
}

impl Drop for Export {
    fn drop(&mut self) {
        drop(self.tx.take());
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
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
        let v: Value = serde_saphyr::from_str(&t).map_err(|err| bad(format!("{}: {err}", e.file)))?;
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
    fn a_streamed_export_writes_what_prepare_and_write_do() {
        streamed_equals_prepared(Rules::default());
        // renamed objects: the owner check still sees the names before the transforms
        let rename = Rules { namespaces: [("shop".to_string(), "store".to_string())].into(), ..Default::default() };
        streamed_equals_prepared(rename);
    }

    fn streamed_equals_prepared(rules: Rules) {
        let mut input = sample();
        input.objects.push(Obj(
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "shop"}}),
        ));
        // owned by a migrated controller: left out; owned by something not migrated: kept, reference dropped
        input.objects.push(Obj(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w-cfg",
            "namespace": "shop", "ownerReferences": [{"apiVersion": "example.com/v1", "kind": "Widget", "name": "w",
            "controller": true}]}})));
        input.objects.push(Obj(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "orphan",
            "namespace": "shop", "ownerReferences": [{"apiVersion": "example.com/v1", "kind": "Gone", "name": "g",
            "controller": true}]}})));
        input.errors.push(DocError { at: "x.yaml#0".into(), object: None, reason: "not YAML".into() });
        let p = prepare(input.clone(), "test", &Filters::default(), &rules);
        let a = tempfile::tempdir().unwrap();
        let m = write(a.path(), &p).unwrap();
        let b = tempfile::tempdir().unwrap();
        let ex = Export::new(b.path(), "test", Filters::default(), rules.clone()).unwrap();
        // the reverse order, from several threads' worth of jobs: the result must not depend on either
        for e in input.errors {
            ex.error(e);
        }
        for o in input.objects.into_iter().rev() {
            ex.push(o);
        }
        let done = ex.finish().unwrap();
        assert_eq!(done.manifest, m);
        let mut want = p.report.clone();
        want.excluded.sort_by(|x, y| x.object.cmp(&y.object));
        assert_eq!(done.report, want);
        assert!(done.report.excluded.iter().any(|e| e.object == "ConfigMap shop/w-cfg"));
        assert_eq!(done.waves(), m.objects.iter().map(|e| e.wave).max().unwrap() + 1);
        for e in &m.objects {
            let (x, y) =
                (std::fs::read(a.path().join(&e.file)).unwrap(), std::fs::read(b.path().join(&e.file)).unwrap());
            assert_eq!(x, y, "{}", e.file);
        }
        let orphan = m.objects.iter().find(|e| e.name == "orphan").unwrap();
        let text = std::fs::read_to_string(b.path().join(&orphan.file)).unwrap();
        assert!(!text.contains("ownerReferences"), "a dangling owner reference is dropped: {text}");
        assert_eq!(
            std::fs::read(a.path().join("report.json")).unwrap().len(),
            std::fs::read(b.path().join("report.json")).unwrap().len()
        );
    }

    #[test]
    fn an_export_reports_its_progress_in_counts() {
        let dir = tempfile::tempdir().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let events = eksodus_core::events::EventSink::new(move |e| {
            if let eksodus_core::events::Event::Progress { phase, done, .. } = e {
                s.lock().unwrap().push((phase.clone(), *done));
            }
        });
        let ex = Export::new(dir.path(), "test", Filters::default(), Rules::default()).unwrap().with_events(events);
        for i in 0..2 * PROGRESS_EVERY + 5 {
            ex.push(Obj(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("c{i}"), "namespace": "n"}})));
        }
        let done = ex.finish().unwrap();
        assert_eq!(done.report.objects as u64, 2 * PROGRESS_EVERY + 5);
        let seen = seen.lock().unwrap().clone();
        let counts: Vec<u64> = seen.iter().map(|(_, d)| *d).collect();
        assert_eq!(
            counts,
            [PROGRESS_EVERY, 2 * PROGRESS_EVERY, 2 * PROGRESS_EVERY + 5],
            "every {PROGRESS_EVERY}, and at the end"
        );
        assert!(seen.iter().all(|(p, _)| p == "export"));
    }

    #[test]
    fn names_that_clash_get_their_own_files() {
        let dir = tempfile::tempdir().unwrap();
        let ex = Export::new(dir.path(), "test", Filters::default(), Rules::default()).unwrap();
        // not valid Kubernetes names, but a hand-written manifest can hold them: both map to `a_b`
        ex.push(Obj(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a:b", "namespace": "n"}})));
        ex.push(Obj(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a;b", "namespace": "n"}})));
        let done = ex.finish().unwrap();
        let files: BTreeSet<&str> = done.manifest.objects.iter().map(|e| e.file.as_str()).collect();
        assert_eq!(files.len(), 2, "{files:?}");
        assert!(files.contains("objects/n/configmap_a_b.yaml"));
    }

    fn sample() -> Read {
        Read {
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
        }
    }

    #[test]
    fn a_bundle_round_trips_privately_in_order() {
        let input = sample();
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
            let back: Value = serde_saphyr::from_str(&text).map_err(|e| proptest::test_runner::TestCaseError::fail(format!("{e}\n{text}")))?;
            proptest::prop_assert_eq!(back, v, "{}", text);
        }
    }

    #[test]
    fn object_files_read_like_kubectl_output() {
        let o = json!({"data": {"nginx.conf": "server {\n  listen 80;\n}\n", "enabled": "yes", "port": "8080", "mode": "production"},
            "metadata": {"name": "web", "namespace": "shop", "labels": {"app.kubernetes.io/name": "web"}}, "kind": "ConfigMap", "apiVersion": "v1"});
        assert_eq!(
            to_yaml(&o),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n  namespace: shop\n  labels:\n    app.kubernetes.io/name: web\ndata:\n  nginx.conf: |\n    server {\n      listen 80;\n    }\n  enabled: \"yes\"\n  port: \"8080\"\n  mode: production\n"
        );
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}}}});
        assert_eq!(
            to_yaml(&d),
            "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.27\n        ports:\n        - containerPort: 80\n"
        );
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
                Just("2026-01-01"),
                Just("0x1F"),
                Just("1_000"),
                Just("1:20"),
                Just(".5"),
                Just("ON"),
                Just("server {\n  listen 80;\n}\n"),
                Just("a\n\nb"),
                Just("x\n\n\n"),
                Just("trailing \nspace"),
                Just("line\n  indented\n"),
                Just("tab\tin\nblock")
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
