//! A fake Kubernetes API server over real HTTP, modelled on documented kube-apiserver behaviour, for tests of
//! code that uses kube-rs: two instances act as two clusters.
//!
//! What it does:
//! - discovery (`/api`, `/api/v1`, `/apis`, `/apis/{group}/{version}`) for core/v1 and the built-in groups it
//!   knows, plus any resource registered with [`FakeKube::register`];
//! - create (POST), get and list (GET, with `labelSelector`, `limit` and `continue`), replace (PUT), merge,
//!   strategic-merge (treated as merge) and JSON patch, server-side apply (`application/apply-patch+yaml`,
//!   create or merge), delete; `dryRun=All` on every write;
//! - a cluster-wide `resourceVersion` bumped on every write; a PUT or patch carrying a stale
//!   `metadata.resourceVersion` gets 409 `Conflict`; `NotFound` and `AlreadyExists` as `Status` objects with
//!   the apiserver's reasons and messages;
//! - server-side apply ownership per field manager: applying a field another manager applied with a different
//!   value is a 409 `Conflict` unless `force=true` (which takes the field over);
//! - CRDs: creating one serves its types from then on (discovery included) and reports it `Established`;
//! - `/metrics` as Prometheus text (settable, for the deprecated-API gauge);
//! - namespaces: a namespaced object needs its namespace to exist (`default`, `kube-system`, `kube-public` do).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::Error;

/// A resource type the server serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    /// Served from a CustomResourceDefinition (its list items carry `apiVersion` and `kind`, and every object
    /// has a `generation`).
    pub custom: bool,
    /// API group (empty for core).
    pub group: String,
    /// Version.
    pub version: String,
    /// Plural resource name (`configmaps`).
    pub plural: String,
    /// Kind (`ConfigMap`).
    pub kind: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
}

impl ResourceType {
    fn new(group: &str, version: &str, plural: &str, kind: &str, namespaced: bool) -> Self {
        ResourceType {
            custom: false,
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            kind: kind.into(),
            namespaced,
        }
    }
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    fn singular(&self) -> String {
        self.kind.to_ascii_lowercase()
    }
}

fn builtin() -> Vec<ResourceType> {
    let r = ResourceType::new;
    vec![
        r("", "v1", "namespaces", "Namespace", false),
        r("", "v1", "configmaps", "ConfigMap", true),
        r("", "v1", "secrets", "Secret", true),
        r("", "v1", "services", "Service", true),
        r("", "v1", "serviceaccounts", "ServiceAccount", true),
        r("", "v1", "pods", "Pod", true),
        r("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", true),
        r("", "v1", "persistentvolumes", "PersistentVolume", false),
        r("", "v1", "nodes", "Node", false),
        r("", "v1", "endpoints", "Endpoints", true),
        r("", "v1", "events", "Event", true),
        r("apps", "v1", "deployments", "Deployment", true),
        r("apps", "v1", "statefulsets", "StatefulSet", true),
        r("apps", "v1", "daemonsets", "DaemonSet", true),
        r("apps", "v1", "replicasets", "ReplicaSet", true),
        r("batch", "v1", "jobs", "Job", true),
        r("batch", "v1", "cronjobs", "CronJob", true),
        r("rbac.authorization.k8s.io", "v1", "roles", "Role", true),
        r("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true),
        r("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false),
        r("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false),
        r("networking.k8s.io", "v1", "ingresses", "Ingress", true),
        r("networking.k8s.io", "v1", "ingressclasses", "IngressClass", false),
        r("storage.k8s.io", "v1", "storageclasses", "StorageClass", false),
        r("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", false),
        r("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true),
        r("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", false),
        r(
            "admissionregistration.k8s.io",
            "v1",
            "validatingwebhookconfigurations",
            "ValidatingWebhookConfiguration",
            false,
        ),
        r("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", "MutatingWebhookConfiguration", false),
    ]
}

/// What `/metrics` serves until [`FakeKube::set_metrics`]: the deprecated-API gauge's header, no series (no
/// client has requested a deprecated API).
pub const DEFAULT_METRICS: &str = "# HELP apiserver_requested_deprecated_apis [STABLE] Gauge of deprecated APIs that have been requested, broken out by API group, version, resource, subresource, and removed_release.\n# TYPE apiserver_requested_deprecated_apis gauge\n";

type Key = (String, String, String, String); // group, plural, namespace, name

/// A field path, its segments joined by NUL (keys such as `app.kubernetes.io/name` hold dots).
type Path = String;

fn path_of(segs: &[&str]) -> Path {
    segs.join("\0")
}

/// `.data.x`, as the API server names a field in conflicts.
fn dotted(p: &str) -> String {
    p.split('\0').map(|s| format!(".{s}")).collect()
}

/// One entry of `metadata.managedFields`: a manager, its operation, and the leaf fields it owns.
#[derive(Debug, Clone)]
struct Owner {
    manager: String,
    operation: &'static str,
    api_version: String,
    fields: BTreeSet<Path>,
}

#[derive(Default)]
struct Store {
    types: Vec<ResourceType>,
    objects: BTreeMap<Key, Value>,
    /// Field ownership per object, in the order managers first wrote.
    owners: BTreeMap<Key, Vec<Owner>>,
}

/// Fields no manager owns: identity, server-set metadata, status.
fn unowned(segs: &[&str]) -> bool {
    matches!(
        segs,
        ["apiVersion"]
            | ["kind"]
            | ["status", ..]
            | ["metadata", "name" | "namespace" | "resourceVersion" | "uid" | "creationTimestamp" | "generation"]
            | ["metadata", "managedFields" | "deletionTimestamp" | "selfLink", ..]
    )
}

/// Leaf fields of an object (arrays are atomic, an empty map is a leaf), minus the fields no manager owns.
fn leaf_fields(v: &Value) -> BTreeSet<Path> {
    fn walk<'a>(v: &'a Value, segs: &mut Vec<&'a str>, out: &mut BTreeSet<Path>) {
        if unowned(segs) {
            return;
        }
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, x) in m {
                    segs.push(k);
                    walk(x, segs, out);
                    segs.pop();
                }
            }
            _ if segs.is_empty() => {}
            _ => {
                out.insert(path_of(segs));
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

fn at_path<'a>(v: &'a Value, p: &str) -> Option<&'a Value> {
    p.split('\0').try_fold(v, |cur, seg| cur.get(seg))
}

/// Removes a field and the maps it leaves empty.
fn remove_path(v: &mut Value, p: &str) {
    fn go(v: &mut Value, segs: &[&str]) {
        let Some(m) = v.as_object_mut() else { return };
        match segs {
            [last] => {
                m.remove(*last);
            }
            [first, rest @ ..] => {
                if let Some(child) = m.get_mut(*first) {
                    go(child, rest);
                    if child.as_object().is_some_and(|c| c.is_empty()) {
                        m.remove(*first);
                    }
                }
            }
            [] => {}
        }
    }
    let segs: Vec<&str> = p.split('\0').collect();
    go(v, &segs);
}

/// Fields whose value differs between `old` and `new` (or that only one has).
fn changed_fields(old: Option<&Value>, new: &Value) -> (BTreeSet<Path>, BTreeSet<Path>) {
    let after = leaf_fields(new);
    let before = old.map(leaf_fields).unwrap_or_default();
    let changed = after.iter().filter(|p| old.and_then(|o| at_path(o, p)) != at_path(new, p)).cloned().collect();
    let removed = before.difference(&after).cloned().collect();
    (changed, removed)
}

/// `metadata.managedFields` as the API server writes it (`fieldsV1` as nested `f:` maps).
fn managed_fields(owners: &[Owner]) -> Value {
    let entries: Vec<Value> = owners
        .iter()
        .filter(|o| !o.fields.is_empty())
        .map(|o| {
            let mut root = Map::new();
            for p in &o.fields {
                let mut cur = &mut root;
                for seg in p.split('\0') {
                    cur = cur
                        .entry(format!("f:{seg}"))
                        .or_insert_with(|| json!({}))
                        .as_object_mut()
                        .expect("fieldsV1 nodes are maps");
                }
            }
            json!({"manager": o.manager, "operation": o.operation, "apiVersion": o.api_version,
                   "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": root})
        })
        .collect();
    Value::Array(entries)
}

/// Puts `metadata.managedFields` on an object as served (left out when nobody owns a field).
fn show_owners(obj: &mut Value, owners: &[Owner]) {
    let mf = managed_fields(owners);
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if mf.as_array().is_some_and(Vec::is_empty) {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), mf);
        }
    }
}

/// Kinds whose objects carry `metadata.generation` on a real API server (custom resources always do).
fn has_generation(t: &ResourceType) -> bool {
    t.custom
        || matches!(
            t.group.as_str(),
            "apps"
                | "batch"
                | "policy"
                | "autoscaling"
                | "networking.k8s.io"
                | "apiextensions.k8s.io"
                | "admissionregistration.k8s.io"
                | "flowcontrol.apiserver.k8s.io"
        )
}

/// A CRD's served types.
fn crd_types(crd: &Value) -> Vec<ResourceType> {
    let g = crd.pointer("/spec/group").and_then(Value::as_str).unwrap_or_default();
    let plural = crd.pointer("/spec/names/plural").and_then(Value::as_str).unwrap_or_default();
    let kind = crd.pointer("/spec/names/kind").and_then(Value::as_str).unwrap_or_default();
    let namespaced = crd.pointer("/spec/scope").and_then(Value::as_str) != Some("Cluster");
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("served").and_then(Value::as_bool) != Some(false))
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .map(|v| ResourceType { custom: true, ..ResourceType::new(g, v, plural, kind, namespaced) })
        .collect()
}

struct State {
    store: Mutex<Store>,
    rv: AtomicU64,
    uid: AtomicU64,
    requests: AtomicU64,
    metrics: Mutex<String>,
}

/// A running fake API server; stops when dropped.
pub struct FakeKube {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for FakeKube {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeKube").field("addr", &self.addr).finish()
    }
}

impl FakeKube {
    /// Starts a server on 127.0.0.1 at a free port; must be called inside a tokio runtime.
    pub async fn start() -> Result<FakeKube, Error> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| Error::Io { what: "binding the fake API server".into(), source: e })?;
        let addr =
            listener.local_addr().map_err(|e| Error::Io { what: "fake API server address".into(), source: e })?;
        let state = Arc::new(State {
            store: Mutex::new(Store { types: builtin(), ..Default::default() }),
            rv: AtomicU64::new(1000),
            uid: AtomicU64::new(1),
            requests: AtomicU64::new(0),
            metrics: Mutex::new(DEFAULT_METRICS.to_string()),
        });
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            state.insert_raw("", "namespaces", "", ns, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}));
        }
        let st = state.clone();
        let task = crate::serve(listener, move |req| {
            let st = st.clone();
            async move { Ok(st.handle(req).await) }
        });
        Ok(FakeKube { addr, state, task })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig document pointing at this server (context `fake`).
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"{}\"}}\nusers:\n- name: fake\n  user: {{token: fake}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: fake, namespace: default}}\ncurrent-context: fake\n",
            self.url()
        )
    }

    /// Sets the Prometheus text `/metrics` serves (the upgrade preflight reads
    /// `apiserver_requested_deprecated_apis` there).
    pub fn set_metrics(&self, text: &str) {
        *self.state.metrics.lock().expect("metrics") = text.to_string();
    }

    /// Serves another resource type (a CRD's, for instance) from now on.
    pub fn register(&self, group: &str, version: &str, plural: &str, kind: &str, namespaced: bool) {
        let rt = ResourceType { custom: true, ..ResourceType::new(group, version, plural, kind, namespaced) };
        self.state.store.lock().expect("store").types.push(rt);
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn respond(code: StatusCode, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("valid response")
}

/// The API server's answer to a path it does not serve: Go's plain-text "404 page not found".
fn no_route() -> Box<Response<Full<Bytes>>> {
    Box::new(
        Response::builder()
            .status(StatusCode::NOT_FOUND)
            .header("content-type", "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from_static(b"404 page not found\n")))
            .expect("valid response"),
    )
}

/// A `Status` object as the apiserver writes it (empty details fields left out, as Go's `omitempty` does).
fn status(code: u16, reason: &str, message: String, mut details: Value) -> Response<Full<Bytes>> {
    if let Some(d) = details.as_object_mut() {
        d.retain(|_, v| !(v.as_str() == Some("") || v.as_array().is_some_and(Vec::is_empty)));
    }
    respond(
        StatusCode::from_u16(code).expect("status code"),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "details": details, "code": code}),
    )
}

struct Target {
    rt: ResourceType,
    namespace: String,
    name: Option<String>,
    /// The request is for the `status` subresource: only `status` is written.
    status: bool,
}

fn query(uri: &hyper::Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    urlencoding::decode(&s.replace('+', " ")).map(|c| c.into_owned()).unwrap_or_else(|_| s.to_string())
}

fn matches_selector(obj: &Value, selector: &str) -> bool {
    let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
    selector.split(',').filter(|s| !s.is_empty()).all(|req| {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        if let Some((k, v)) = req.split_once("!=") {
            get(k.trim()) != Some(v.trim())
        } else if let Some((k, v)) = req.split_once("==").or_else(|| req.split_once('=')) {
            get(k.trim()) == Some(v.trim())
        } else if let Some(k) = req.strip_prefix('!') {
            get(k.trim()).is_none()
        } else {
            get(req.trim()).is_some()
        }
    })
}

/// The resource name in messages: `configmaps`, `widgets.example.com`.
fn resource_name(rt: &ResourceType) -> String {
    if rt.group.is_empty() {
        rt.plural.clone()
    } else {
        format!("{}.{}", rt.plural, rt.group)
    }
}

/// The field manager of a request: `fieldManager`, else the client's User-Agent up to its `/`, else `unknown`.
fn manager_of(q: &BTreeMap<String, String>, ua: Option<&str>) -> String {
    q.get("fieldManager")
        .filter(|m| !m.is_empty())
        .cloned()
        .or_else(|| ua.and_then(|u| u.split('/').next()).filter(|u| !u.is_empty()).map(String::from))
        .unwrap_or_else(|| "unknown".into())
}

/// What the API server's strategies and admission do to a new object of a built-in kind: empty maps left out,
/// `stringData` folded into a Secret's `data`, the storage-protection finalizers added.
fn admit(rt: &ResourceType, obj: &mut Value, create: bool) {
    if rt.custom {
        return;
    }
    if rt.group.is_empty() && rt.kind == "Secret" {
        if let Some(Value::Object(sd)) = obj.as_object_mut().and_then(|m| m.remove("stringData")) {
            use base64::Engine as _;
            let data = obj.as_object_mut().expect("an object").entry("data").or_insert_with(|| json!({}));
            for (k, v) in sd {
                data[k] = json!(base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap_or_default()));
            }
        }
    }
    for (parent, key) in [("/metadata", "labels"), ("/metadata", "annotations"), ("", "data"), ("", "binaryData")] {
        let empty = obj.pointer(&format!("{parent}/{key}")).is_some_and(|v| v.as_object().is_some_and(Map::is_empty));
        if empty {
            if let Some(m) = obj.pointer_mut(parent).and_then(Value::as_object_mut) {
                m.remove(key);
            }
        }
    }
    let finalizer = match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "PersistentVolumeClaim") => Some("kubernetes.io/pvc-protection"),
        ("", "PersistentVolume") => Some("kubernetes.io/pv-protection"),
        _ => None,
    };
    if let (true, Some(f)) = (create, finalizer) {
        let meta = obj["metadata"].as_object_mut().expect("metadata");
        let list = meta.entry("finalizers").or_insert_with(|| json!([]));
        if let Some(a) = list.as_array_mut() {
            if !a.iter().any(|x| x == f) {
                a.push(json!(f));
            }
        }
    }
    if create && rt.group.is_empty() && rt.kind == "Namespace" {
        obj["spec"] = json!({"finalizers": ["kubernetes"]});
        obj["status"] = json!({"phase": "Active"});
        let meta = obj["metadata"].as_object_mut().expect("metadata");
        let name = meta.get("name").cloned().unwrap_or(json!(""));
        let labels = meta.entry("labels").or_insert_with(|| json!({}));
        labels["kubernetes.io/metadata.name"] = name;
    }
}

/// A CRD as its create returns it: conversion and list kind defaulted, status not yet filled.
fn crd_defaults(obj: &mut Value) {
    let kind = obj.pointer("/spec/names/kind").and_then(Value::as_str).unwrap_or_default().to_string();
    if let Some(names) = obj.pointer_mut("/spec/names").and_then(Value::as_object_mut) {
        names.entry("listKind").or_insert_with(|| json!(format!("{kind}List")));
    }
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        spec.entry("conversion").or_insert_with(|| json!({"strategy": "None"}));
    }
    let stored: Vec<Value> = obj
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .filter_map(|v| v.get("name").cloned())
        .collect();
    obj["status"] = json!({"conditions": null, "acceptedNames": {"plural": "", "kind": ""}, "storedVersions": stored});
}

/// A CRD once the apiextensions controllers accepted its names and established it.
fn crd_established(obj: &mut Value) {
    let names = obj.pointer("/spec/names").cloned().unwrap_or(json!({}));
    obj["status"]["acceptedNames"] = names;
    obj["status"]["conditions"] = json!([
        {"type": "NamesAccepted", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z", "reason": "NoConflicts", "message": "no conflicts found"},
        {"type": "Established", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}
    ]);
}

/// Merges `applied` into `cur` as server-side apply does for maps (lists and scalars are replaced).
fn merge_applied(cur: &mut Value, applied: &Value) {
    match (cur, applied) {
        (Value::Object(c), Value::Object(a)) => {
            for (k, v) in a {
                match c.get_mut(k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge_applied(slot, v),
                    _ => {
                        c.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (c, a) => *c = a.clone(),
    }
}

impl State {
    fn next_rv(&self) -> u64 {
        self.rv.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn insert_raw(&self, group: &str, plural: &str, ns: &str, name: &str, mut obj: Value) {
        let rv = self.next_rv();
        let uid = self.uid.fetch_add(1, Ordering::SeqCst);
        let meta = obj["metadata"].as_object_mut().expect("metadata");
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        meta.insert("uid".into(), json!(format!("00000000-0000-4000-8000-{uid:012}")));
        meta.insert("creationTimestamp".into(), json!("2026-01-01T00:00:00Z"));
        self.store.lock().expect("store").objects.insert((group.into(), plural.into(), ns.into(), name.into()), obj);
    }

    fn route(&self, path: &str) -> Result<Target, Box<Response<Full<Bytes>>>> {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
            ["api", v, rest @ ..] => ("", v, rest),
            ["apis", g, v, rest @ ..] => (g, v, rest),
            _ => return Err(no_route()),
        };
        let (namespace, plural, name) = match rest {
            ["namespaces", ns, plural] => (ns.to_string(), *plural, None),
            ["namespaces", ns, plural, name] => (ns.to_string(), *plural, Some(name.to_string())),
            ["namespaces", ns, plural, name, "status"] => (ns.to_string(), *plural, Some(name.to_string())),
            [plural] => (String::new(), *plural, None),
            [plural, name] => (String::new(), *plural, Some(name.to_string())),
            [plural, name, "status"] => (String::new(), *plural, Some(name.to_string())),
            _ => return Err(no_route()),
        };
        // `/api/v1/namespaces/{name}` is the namespace object itself
        let (namespace, plural, name) = if rest.len() == 2 && rest[0] == "namespaces" {
            (String::new(), "namespaces", Some(rest[1].to_string()))
        } else {
            (namespace, plural, name)
        };
        let store = self.store.lock().expect("store");
        let rt = store.types.iter().find(|t| t.group == group && t.version == version && t.plural == plural).cloned();
        drop(store);
        let rt = rt.ok_or_else(no_route)?;
        let status = matches!(rest, ["namespaces", _, _, _, "status"] | [_, _, "status"]);
        Ok(Target { rt, namespace, name, status })
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let (parts, body) = req.into_parts();
        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let path = parts.uri.path().to_string();
        let q = query(&parts.uri);
        if parts.method == Method::GET {
            if path == "/metrics" {
                let text = self.metrics.lock().expect("metrics").clone();
                return Response::builder()
                    .status(StatusCode::OK)
                    .header("content-type", "text/plain; version=0.0.4")
                    .body(Full::new(Bytes::from(text)))
                    .expect("response");
            }
            if let Some(resp) = self.discovery(&path) {
                return resp;
            }
        }
        let t = match self.route(&path) {
            Ok(t) => t,
            Err(resp) => return *resp,
        };
        let dry = q.get("dryRun").is_some_and(|v| v == "All");
        let ctype =
            parts.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("application/json").to_string();
        let ua = parts.headers.get("user-agent").and_then(|v| v.to_str().ok());
        let manager = manager_of(&q, ua);
        let bad_body = |e: serde_json::Error| {
            status(400, "BadRequest", format!("the body of the request was in an unknown format: {e}"), json!({}))
        };
        match (parts.method.clone(), &t.name) {
            (Method::GET, None) => self.list(&t, &q),
            (Method::GET, Some(n)) => match self.get(&t, n) {
                Some(o) => respond(StatusCode::OK, o),
                None => self.not_found(&t, n),
            },
            (Method::POST, None) => match serde_json::from_slice::<Value>(&body) {
                Ok(obj) => self.create(&t, obj, dry, &manager, "Update"),
                Err(e) => bad_body(e),
            },
            (Method::PUT, Some(n)) => match serde_json::from_slice::<Value>(&body) {
                Ok(obj) => self.replace(&t, n, obj, dry, &manager),
                Err(e) => bad_body(e),
            },
            (Method::PATCH, Some(n)) => self.patch(&t, n, &ctype, &body, &q, dry, &manager),
            (Method::DELETE, Some(n)) => self.delete(&t, n, dry),
            _ => status(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource".into(),
                json!({}),
            ),
        }
    }

    fn discovery(&self, path: &str) -> Option<Response<Full<Bytes>>> {
        let store = self.store.lock().expect("store");
        let list = |group: &str, version: &str| {
            let resources: Vec<Value> = store
                .types
                .iter()
                .filter(|t| t.group == group && t.version == version)
                .map(|t| {
                    // a namespace cannot be deleted as a collection
                    let verbs = if t.plural == "namespaces" {
                        json!(["create", "delete", "get", "list", "patch", "update", "watch"])
                    } else {
                        json!(["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"])
                    };
                    json!({"name": t.plural, "singularName": t.singular(), "namespaced": t.namespaced, "kind": t.kind, "verbs": verbs})
                })
                .collect();
            let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
        };
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        Some(match segs.as_slice() {
            ["api"] => respond(
                StatusCode::OK,
                json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
            ),
            ["api", "v1"] => respond(StatusCode::OK, list("", "v1")),
            ["apis"] => {
                let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
                for t in store.types.iter().filter(|t| !t.group.is_empty()) {
                    let v = groups.entry(t.group.as_str()).or_default();
                    if !v.contains(&t.version.as_str()) {
                        v.push(t.version.as_str());
                    }
                }
                let groups: Vec<Value> = groups
                    .into_iter()
                    .map(|(g, vs)| {
                        let versions: Vec<Value> =
                            vs.iter().map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v})).collect();
                        json!({"name": g, "versions": versions, "preferredVersion": versions[0]})
                    })
                    .collect();
                respond(StatusCode::OK, json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
            }
            ["apis", g, v] => {
                if !store.types.iter().any(|t| t.group == *g && t.version == *v) {
                    return Some(*no_route());
                }
                respond(StatusCode::OK, list(g, v))
            }
            ["version"] => respond(
                StatusCode::OK,
                json!({"major": "1", "minor": "36", "gitVersion": "v1.36.2-eksodus-fake", "platform": "linux/amd64"}),
            ),
            _ => return None,
        })
    }

    fn key(t: &Target, name: &str) -> Key {
        (
            t.rt.group.clone(),
            t.rt.plural.clone(),
            if t.rt.namespaced { t.namespace.clone() } else { String::new() },
            name.to_string(),
        )
    }

    /// The object as served: with its managed fields.
    fn get(&self, t: &Target, name: &str) -> Option<Value> {
        let store = self.store.lock().expect("store");
        let key = Self::key(t, name);
        let mut o = store.objects.get(&key).cloned()?;
        show_owners(&mut o, store.owners.get(&key).map(Vec::as_slice).unwrap_or(&[]));
        Some(o)
    }

    fn not_found(&self, t: &Target, name: &str) -> Response<Full<Bytes>> {
        status(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", resource_name(&t.rt)),
            json!({"name": name, "group": t.rt.group, "kind": t.rt.plural}),
        )
    }

    /// A list page. The continue token is the position in the type's key order after the last key scanned, so,
    /// as on the API server, a page filled by a selector says "continue" while any key is left, matching or not.
    fn list(&self, t: &Target, q: &BTreeMap<String, String>) -> Response<Full<Bytes>> {
        let keys: Vec<Key> = {
            let store = self.store.lock().expect("store");
            store
                .objects
                .keys()
                .filter(|(g, p, ns, _)| {
                    *g == t.rt.group
                        && *p == t.rt.plural
                        && (!t.rt.namespaced || t.namespace.is_empty() || *ns == t.namespace)
                })
                .cloned()
                .collect()
        };
        let start: usize = q.get("continue").and_then(|c| c.parse().ok()).unwrap_or(0);
        let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).filter(|l| *l > 0).unwrap_or(usize::MAX);
        let selector = q.get("labelSelector").filter(|s| !s.is_empty());
        let mut items = Vec::new();
        let mut pos = start;
        while pos < keys.len() && items.len() < limit {
            let k = &keys[pos];
            pos += 1;
            let Some(mut o) =
                self.get(&Target { rt: t.rt.clone(), namespace: k.2.clone(), name: None, status: false }, &k.3)
            else {
                continue;
            };
            if selector.is_some_and(|s| !matches_selector(&o, s)) {
                continue;
            }
            // items of a built-in list carry no apiVersion/kind of their own
            if !t.rt.custom {
                if let Some(m) = o.as_object_mut() {
                    m.remove("apiVersion");
                    m.remove("kind");
                }
            }
            items.push(o);
        }
        let mut meta = json!({"resourceVersion": self.rv.load(Ordering::SeqCst).to_string()});
        if pos < keys.len() {
            meta["continue"] = json!(pos.to_string());
            if selector.is_none() {
                meta["remainingItemCount"] = json!(keys.len() - pos);
            }
        }
        respond(
            StatusCode::OK,
            json!({"kind": format!("{}List", t.rt.kind), "apiVersion": t.rt.api_version(), "metadata": meta, "items": items}),
        )
    }

    /// Why an object cannot be created in `t`'s namespace: it does not exist, or it is being deleted.
    fn namespace_refuses(&self, t: &Target, name: &str) -> Option<Response<Full<Bytes>>> {
        if !t.rt.namespaced {
            return None;
        }
        let store = self.store.lock().expect("store");
        let ns = store.objects.get(&(String::new(), "namespaces".into(), String::new(), t.namespace.clone())).cloned();
        drop(store);
        match ns {
            None => Some(status(
                404,
                "NotFound",
                format!("namespaces \"{}\" not found", t.namespace),
                json!({"name": t.namespace, "kind": "namespaces"}),
            )),
            Some(n) if n.pointer("/metadata/deletionTimestamp").is_some() => Some(status(
                403,
                "Forbidden",
                format!(
                    "{} \"{name}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
                    resource_name(&t.rt),
                    t.namespace
                ),
                json!({"name": name, "group": t.rt.group, "kind": t.rt.plural, "causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {} is being terminated", t.namespace), "field": "metadata.namespace"}]}),
            )),
            Some(_) => None,
        }
    }

    fn stamp(&self, t: &Target, obj: &mut Value, name: &str) {
        obj["apiVersion"] = json!(t.rt.api_version());
        obj["kind"] = json!(t.rt.kind);
        let meta = obj["metadata"].as_object_mut().expect("object with metadata");
        meta.insert("name".into(), json!(name));
        if t.rt.namespaced {
            meta.insert("namespace".into(), json!(t.namespace));
        } else {
            meta.remove("namespace");
        }
    }

    /// Records an Update operation's ownership: `manager` owns what it changed, others lose it, and removed fields
    /// are nobody's.
    fn record_update(store: &mut Store, key: &Key, manager: &str, api_version: &str, old: Option<&Value>, new: &Value) {
        let (changed, removed) = changed_fields(old, new);
        let owners = store.owners.entry(key.clone()).or_default();
        for o in owners.iter_mut() {
            o.fields.retain(|f| !changed.contains(f) && !removed.contains(f));
        }
        match owners.iter_mut().find(|o| o.manager == manager && o.operation == "Update") {
            Some(o) => o.fields.extend(changed),
            None => owners.push(Owner {
                manager: manager.into(),
                operation: "Update",
                api_version: api_version.into(),
                fields: changed,
            }),
        }
        owners.retain(|o| !o.fields.is_empty());
    }

    fn create(
        &self,
        t: &Target,
        mut obj: Value,
        dry: bool,
        manager: &str,
        operation: &'static str,
    ) -> Response<Full<Bytes>> {
        if !obj.is_object() {
            return status(400, "BadRequest", "the body must be an object".into(), json!({}));
        }
        if !obj.get("metadata").is_some_and(Value::is_object) {
            obj["metadata"] = json!({});
        }
        let name = match obj.pointer("/metadata/name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => match obj.pointer("/metadata/generateName").and_then(Value::as_str) {
                Some(p) => format!("{p}{:05x}", self.uid.fetch_add(1, Ordering::SeqCst)),
                None => {
                    return status(
                        422,
                        "Invalid",
                        format!(
                            "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                            t.rt.kind
                        ),
                        json!({"kind": t.rt.kind, "causes": [{"reason": "FieldValueRequired", "message": "Required value: name or generateName is required", "field": "metadata.name"}]}),
                    )
                }
            },
        };
        if let Some(resp) = self.namespace_refuses(t, &name) {
            return resp;
        }
        self.stamp(t, &mut obj, &name);
        // an applier owns what it applied; an updater owns everything the object holds after admission
        let applied_fields = leaf_fields(&obj);
        admit(&t.rt, &mut obj, true);
        let key = Self::key(t, &name);
        let mut store = self.store.lock().expect("store");
        if store.objects.contains_key(&key) {
            return status(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", resource_name(&t.rt)),
                json!({"name": name, "group": t.rt.group, "kind": t.rt.plural}),
            );
        }
        let meta = obj["metadata"].as_object_mut().expect("metadata");
        meta.insert(
            "uid".into(),
            json!(format!("00000000-0000-4000-8000-{:012}", self.uid.fetch_add(1, Ordering::SeqCst))),
        );
        meta.insert("creationTimestamp".into(), json!("2026-01-01T00:00:00Z"));
        if has_generation(&t.rt) {
            meta.insert("generation".into(), json!(1));
        }
        meta.remove("managedFields");
        meta.remove("resourceVersion");
        let is_crd = t.rt.group == "apiextensions.k8s.io" && t.rt.plural == "customresourcedefinitions";
        if is_crd {
            crd_defaults(&mut obj);
        }
        let fields = if operation == "Apply" {
            leaf_fields(&obj).intersection(&applied_fields).cloned().collect()
        } else {
            leaf_fields(&obj)
        };
        let owner = Owner { manager: manager.into(), operation, api_version: t.rt.api_version(), fields };
        let mut shown = obj.clone();
        show_owners(&mut shown, std::slice::from_ref(&owner));
        if dry {
            return respond(StatusCode::CREATED, shown);
        }
        let rv = self.next_rv().to_string();
        obj["metadata"]["resourceVersion"] = json!(rv);
        shown["metadata"]["resourceVersion"] = json!(rv);
        store.owners.insert(key.clone(), vec![owner]);
        if is_crd {
            // the apiextensions controllers: serve the new types and establish the CRD (a later write)
            for rt in crd_types(&obj) {
                if !store.types.contains(&rt) {
                    store.types.push(rt);
                }
            }
            crd_established(&mut obj);
            obj["metadata"]["resourceVersion"] = json!(self.next_rv().to_string());
        }
        store.objects.insert(key, obj);
        respond(StatusCode::CREATED, shown)
    }

    /// Stores `new` over the current object after an update by `manager` (a PUT or a non-apply patch, or a server-side
    /// apply whose ownership the caller records); `precondition` is the client's resourceVersion.
    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        t: &Target,
        name: &str,
        mut new: Value,
        precondition: Option<String>,
        dry: bool,
        manager: &str,
        apply_owners: Option<Vec<Owner>>,
    ) -> Response<Full<Bytes>> {
        let key = Self::key(t, name);
        let mut store = self.store.lock().expect("store");
        let Some(old) = store.objects.get(&key).cloned() else {
            drop(store);
            return self.not_found(t, name);
        };
        let current = old.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("").to_string();
        if let Some(p) = precondition.filter(|p| !p.is_empty()) {
            if p != current {
                return status(
                    409,
                    "Conflict",
                    format!("Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again", resource_name(&t.rt)),
                    json!({"name": name, "group": t.rt.group, "kind": t.rt.plural}),
                );
            }
        }
        if t.status {
            // the status subresource writes status and nothing else
            let st = new.get("status").cloned();
            new = old.clone();
            match st {
                Some(st) => new["status"] = st,
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
        self.stamp(t, &mut new, name);
        admit(&t.rt, &mut new, false);
        let meta = new["metadata"].as_object_mut().expect("metadata");
        for k in ["uid", "creationTimestamp", "generation", "deletionTimestamp"] {
            match old.pointer(&format!("/metadata/{k}")) {
                Some(v) => meta.insert(k.into(), v.clone()),
                None => meta.remove(k),
            };
        }
        meta.remove("managedFields");
        meta.insert("resourceVersion".into(), json!(current));
        // status is written through its subresource only (kept from the stored object on a main-resource write)
        if !t.status {
            if let Some(st) = old.get("status") {
                new["status"] = st.clone();
            } else if let Some(m) = new.as_object_mut() {
                m.remove("status");
            }
        }
        let owners_before = store.owners.get(&key).cloned().unwrap_or_default();
        let mut scratch = Store { owners: [(key.clone(), owners_before.clone())].into(), ..Default::default() };
        match apply_owners {
            Some(o) => {
                scratch.owners.insert(key.clone(), o);
            }
            None => Self::record_update(&mut scratch, &key, manager, &t.rt.api_version(), Some(&old), &new),
        }
        let owners = scratch.owners.remove(&key).unwrap_or_default();
        let changed = old != new;
        if changed && old.get("spec") != new.get("spec") {
            if let Some(g) = old.pointer("/metadata/generation").and_then(Value::as_i64) {
                new["metadata"]["generation"] = json!(g + 1);
            }
        }
        let ownership_changed = managed_fields(&owners) != managed_fields(&owners_before);
        if (changed || ownership_changed) && !dry {
            new["metadata"]["resourceVersion"] = json!(self.next_rv().to_string());
            store.owners.insert(key.clone(), owners.clone());
            store.objects.insert(key, new.clone());
        }
        // a no-op write stores nothing and keeps the resourceVersion, as the API server does
        show_owners(&mut new, &owners);
        respond(StatusCode::OK, new)
    }

    fn replace(&self, t: &Target, name: &str, mut obj: Value, dry: bool, manager: &str) -> Response<Full<Bytes>> {
        if !obj.get("metadata").is_some_and(Value::is_object) {
            obj["metadata"] = json!({});
        }
        if let Some(n) = obj.pointer("/metadata/name").and_then(Value::as_str) {
            if n != name {
                return status(
                    400,
                    "BadRequest",
                    format!("the name of the object ({n}) does not match the name on the URL ({name})"),
                    json!({}),
                );
            }
        }
        // built-in kinds allow an update without a resourceVersion (unconditional)
        let rv = obj.pointer("/metadata/resourceVersion").and_then(Value::as_str).map(String::from);
        self.write(t, name, obj, rv, dry, manager, None)
    }

    #[allow(clippy::too_many_arguments)]
    fn patch(
        &self,
        t: &Target,
        name: &str,
        ctype: &str,
        body: &[u8],
        q: &BTreeMap<String, String>,
        dry: bool,
        manager: &str,
    ) -> Response<Full<Bytes>> {
        let ctype = ctype.split(';').next().unwrap_or("").trim();
        let current = self.store.lock().expect("store").objects.get(&Self::key(t, name)).cloned();
        match ctype {
            "application/apply-patch+yaml" => {
                if q.get("fieldManager").is_none_or(String::is_empty) {
                    return status(422, "Invalid", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch".into(),
                        json!({"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [{"reason": "FieldValueRequired", "message": "Required value: is required for apply patch", "field": "fieldManager"}]}));
                }
                let applied: Value = match serde_saphyr::from_slice(body) {
                    Ok(v) => v,
                    Err(e) => return status(400, "BadRequest", format!("error decoding YAML: {e}"), json!({})),
                };
                self.apply(t, name, applied, current, q.get("force").is_some_and(|f| f == "true"), dry, manager)
            }
            "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                let Some(mut cur) = current else { return self.not_found(t, name) };
                let p: Value = match serde_json::from_slice(body) {
                    Ok(v) => v,
                    Err(e) => return status(400, "BadRequest", format!("error decoding patch: {e}"), json!({})),
                };
                let rv = p.pointer("/metadata/resourceVersion").and_then(Value::as_str).map(String::from);
                json_patch::merge(&mut cur, &p);
                self.write(t, name, cur, rv, dry, manager, None)
            }
            "application/json-patch+json" => {
                let Some(mut cur) = current else { return self.not_found(t, name) };
                let p: json_patch::Patch = match serde_json::from_slice(body) {
                    Ok(v) => v,
                    Err(e) => return status(400, "BadRequest", format!("error decoding patch: {e}"), json!({})),
                };
                let before_rv = cur.pointer("/metadata/resourceVersion").cloned();
                if json_patch::patch(&mut cur, &p.0).is_err() {
                    // a failed `test` operation is how JSON-patch clients express preconditions
                    return status(422, "Invalid", "the server rejected our request due to an error in our request".into(), json!({}));
                }
                let rv = cur.pointer("/metadata/resourceVersion").filter(|v| Some(*v) != before_rv.as_ref()).and_then(Value::as_str).map(String::from);
                self.write(t, name, cur, rv, dry, manager, None)
            }
            other => status(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other})"), json!({})),
        }
    }

    /// Server-side apply: fields other managers own with another value are conflicts unless forced (then taken
    /// from them); the same value is owned together; fields this manager applied before and applies no more
    /// are removed unless someone else owns them.
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        t: &Target,
        name: &str,
        mut applied: Value,
        current: Option<Value>,
        force: bool,
        dry: bool,
        manager: &str,
    ) -> Response<Full<Bytes>> {
        if !applied.get("metadata").is_some_and(Value::is_object) {
            applied["metadata"] = json!({});
        }
        applied["metadata"]["name"] = json!(name);
        let Some(cur) = current else {
            return self.create(t, applied, dry, manager, "Apply");
        };
        let mut want = leaf_fields(&applied);
        let key = Self::key(t, name);
        let mut owners = self.store.lock().expect("store").owners.get(&key).cloned().unwrap_or_default();
        // conflicts: grouped by manager for the message, in ownership order for the causes
        let mut causes = Vec::new();
        let mut by_manager: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for o in owners.iter().filter(|o| !(o.manager == manager && o.operation == "Apply")) {
            for f in o.fields.intersection(&want) {
                if at_path(&cur, f) != at_path(&applied, f) {
                    causes.push(json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{}\"", o.manager), "field": dotted(f)}));
                    by_manager.entry(o.manager.clone()).or_default().push(dotted(f));
                }
            }
        }
        if !causes.is_empty() && !force {
            let n = causes.len();
            let text: Vec<String> = by_manager
                .iter()
                .map(|(m, fs)| {
                    format!(
                        "conflicts with \"{m}\":\n{}",
                        fs.iter().map(|f| format!("- {f}")).collect::<Vec<_>>().join("\n")
                    )
                })
                .collect();
            let message = if n == 1 {
                let (m, fs) = by_manager.iter().next().expect("one conflict");
                format!("Apply failed with 1 conflict: conflict with \"{m}\": {}", fs[0])
            } else {
                format!("Apply failed with {n} conflicts: {}", text.join("\n"))
            };
            return status(409, "Conflict", message, json!({"causes": causes}));
        }
        let mut next = cur.clone();
        let previous: BTreeSet<Path> = owners
            .iter()
            .find(|o| o.manager == manager && o.operation == "Apply")
            .map(|o| o.fields.clone())
            .unwrap_or_default();
        for f in previous.difference(&want) {
            let shared =
                owners.iter().any(|o| !(o.manager == manager && o.operation == "Apply") && o.fields.contains(f));
            if !shared {
                remove_path(&mut next, f);
            }
        }
        if let Some(m) = applied.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        merge_applied(&mut next, &applied);
        if force {
            // forced: the conflicting fields change hands; fields applied with the value they have stay shared
            for o in owners.iter_mut().filter(|o| !(o.manager == manager && o.operation == "Apply")) {
                o.fields.retain(|f| !want.contains(f) || at_path(&cur, f) == at_path(&applied, f));
            }
        }
        want.retain(|f| at_path(&next, f).is_some());
        match owners.iter_mut().find(|o| o.manager == manager && o.operation == "Apply") {
            Some(o) => o.fields = want,
            None => owners.push(Owner {
                manager: manager.into(),
                operation: "Apply",
                api_version: t.rt.api_version(),
                fields: want,
            }),
        }
        owners.retain(|o| !o.fields.is_empty());
        self.write(t, name, next, None, dry, manager, Some(owners))
    }

    /// Deletes an object: gone at once (the answer is a `Success` status), or, with finalizers (or a namespace,
    /// which the namespace controller empties first), marked for deletion and returned as it now is.
    fn delete(&self, t: &Target, name: &str, dry: bool) -> Response<Full<Bytes>> {
        let key = Self::key(t, name);
        let mut store = self.store.lock().expect("store");
        let Some(mut obj) = store.objects.get(&key).cloned() else {
            drop(store);
            return self.not_found(t, name);
        };
        let is_crd = t.rt.group == "apiextensions.k8s.io" && t.rt.plural == "customresourcedefinitions";
        let is_ns = t.rt.group.is_empty() && t.rt.plural == "namespaces";
        let finalizers = obj.pointer("/metadata/finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty());
        if is_crd || is_ns || finalizers {
            if obj.pointer("/metadata/deletionTimestamp").is_none() {
                obj["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
                if is_crd {
                    obj["metadata"]["finalizers"] = json!(["customresourcecleanup.apiextensions.k8s.io"]);
                    if let Some(cs) = obj.pointer_mut("/status/conditions").and_then(Value::as_array_mut) {
                        cs.push(json!({"type": "Terminating", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z", "reason": "InstanceDeletionPending", "message": "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon"}));
                    }
                }
                if is_ns {
                    obj["status"]["phase"] = json!("Terminating");
                }
                if !dry {
                    obj["metadata"]["resourceVersion"] = json!(self.next_rv().to_string());
                }
            }
            let mut shown = obj.clone();
            show_owners(&mut shown, store.owners.get(&key).map(Vec::as_slice).unwrap_or(&[]));
            if !dry {
                if is_crd {
                    // the apiextensions controller removes the custom resources, the types, then the CRD
                    let gone = crd_types(&obj);
                    store.types.retain(|rt| !gone.contains(rt));
                    store.objects.retain(|(g, p, _, _), _| !gone.iter().any(|rt| &rt.group == g && &rt.plural == p));
                    store.objects.remove(&key);
                    store.owners.remove(&key);
                } else {
                    // a namespace stays Terminating (no controller empties it), as on a control plane without one
                    store.objects.insert(key, obj);
                }
            }
            return respond(StatusCode::OK, shown);
        }
        let uid = obj.pointer("/metadata/uid").cloned().unwrap_or(json!(""));
        if !dry {
            store.objects.remove(&key);
            store.owners.remove(&key);
            self.next_rv();
        }
        respond(
            StatusCode::OK,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                   "details": {"name": name, "group": t.rt.group, "kind": t.rt.plural, "uid": uid}})
            .as_object()
            .map(|m| {
                let mut m = m.clone();
                if let Some(d) = m.get_mut("details").and_then(Value::as_object_mut) {
                    d.retain(|_, v| v.as_str() != Some(""));
                }
                Value::Object(m)
            })
            .unwrap_or_default(),
        )
    }
}
