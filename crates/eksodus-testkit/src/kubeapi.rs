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

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::Error;

/// A resource type the server serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
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

#[derive(Default)]
struct Store {
    types: Vec<ResourceType>,
    objects: BTreeMap<Key, Value>,
    /// Server-side apply ownership: object → field manager → the leaf fields it applied.
    managers: BTreeMap<Key, BTreeMap<String, std::collections::BTreeSet<String>>>,
}

/// Leaf fields of an applied object (arrays count as one field), as `.spec.replicas`, minus identity.
fn leaf_fields(v: &Value, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                let p = format!("{prefix}.{k}");
                if matches!(
                    p.as_str(),
                    ".apiVersion" | ".kind" | ".metadata.name" | ".metadata.namespace" | ".metadata.resourceVersion"
                ) {
                    continue;
                }
                leaf_fields(x, &p, out);
            }
        }
        _ => {
            out.insert(prefix.to_string());
        }
    }
}

fn at_path<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let pointer: String =
        path.split('.').skip(1).map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1"))).collect();
    v.pointer(&pointer)
}

/// A CRD's served types: (group, version, plural, kind, namespaced).
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
        .map(|v| ResourceType::new(g, v, plural, kind, namespaced))
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
        self.state.store.lock().expect("store").types.push(ResourceType::new(group, version, plural, kind, namespaced));
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

/// The apiserver's answer to a path it does not serve.
fn no_route() -> Box<Response<Full<Bytes>>> {
    Box::new(status(404, "NotFound", "the server could not find the requested resource".into(), json!({})))
}

/// A `Status` object as the apiserver writes it.
fn status(code: u16, reason: &str, message: String, details: Value) -> Response<Full<Bytes>> {
    respond(
        StatusCode::from_u16(code).expect("status code"),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "details": details, "code": code}),
    )
}

struct Target {
    rt: ResourceType,
    namespace: String,
    name: Option<String>,
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
        let rt = rt.ok_or_else(|| {
            status(404, "NotFound", "the server could not find the requested resource".into(), json!({}))
        })?;
        Ok(Target { rt, namespace, name })
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
        match (parts.method.clone(), &t.name) {
            (Method::GET, None) => self.list(&t, &q),
            (Method::GET, Some(n)) => match self.get(&t, n) {
                Some(o) => respond(StatusCode::OK, o),
                None => self.not_found(&t, n),
            },
            (Method::POST, None) => match serde_json::from_slice::<Value>(&body) {
                Ok(obj) => self.create(&t, obj, dry),
                Err(e) => status(
                    400,
                    "BadRequest",
                    format!("the body of the request was in an unknown format: {e}"),
                    json!({}),
                ),
            },
            (Method::PUT, Some(n)) => match serde_json::from_slice::<Value>(&body) {
                Ok(obj) => self.replace(&t, n, obj, dry),
                Err(e) => status(
                    400,
                    "BadRequest",
                    format!("the body of the request was in an unknown format: {e}"),
                    json!({}),
                ),
            },
            (Method::PATCH, Some(n)) => self.patch(&t, n, &ctype, &body, &q, dry),
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
                    json!({"name": t.plural, "singularName": t.singular(), "namespaced": t.namespaced, "kind": t.kind,
                           "verbs": ["create", "delete", "get", "list", "patch", "update"]})
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
                    return Some(status(
                        404,
                        "NotFound",
                        "the server could not find the requested resource".into(),
                        json!({}),
                    ));
                }
                respond(StatusCode::OK, list(g, v))
            }
            ["version"] => respond(
                StatusCode::OK,
                json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-eksodus-fake", "platform": "linux/amd64"}),
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

    fn get(&self, t: &Target, name: &str) -> Option<Value> {
        self.store.lock().expect("store").objects.get(&Self::key(t, name)).cloned()
    }

    fn not_found(&self, t: &Target, name: &str) -> Response<Full<Bytes>> {
        let res = if t.rt.group.is_empty() { t.rt.plural.clone() } else { format!("{}.{}", t.rt.plural, t.rt.group) };
        status(
            404,
            "NotFound",
            format!("{res} \"{name}\" not found"),
            json!({"name": name, "group": t.rt.group, "kind": t.rt.plural}),
        )
    }

    fn list(&self, t: &Target, q: &BTreeMap<String, String>) -> Response<Full<Bytes>> {
        let store = self.store.lock().expect("store");
        let mut items: Vec<Value> = store
            .objects
            .iter()
            .filter(|((g, p, ns, _), _)| {
                *g == t.rt.group
                    && *p == t.rt.plural
                    && (!t.rt.namespaced || t.namespace.is_empty() || *ns == t.namespace)
            })
            .map(|(_, v)| v.clone())
            .filter(|o| q.get("labelSelector").is_none_or(|s| matches_selector(o, s)))
            .collect();
        drop(store);
        let start: usize = q.get("continue").and_then(|c| c.parse().ok()).unwrap_or(0);
        let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).filter(|l| *l > 0).unwrap_or(usize::MAX);
        let total = items.len();
        items = items.into_iter().skip(start).take(limit).collect();
        let next = start + items.len();
        let mut meta = json!({"resourceVersion": self.rv.load(Ordering::SeqCst).to_string()});
        if next < total {
            meta["continue"] = json!(next.to_string());
            meta["remainingItemCount"] = json!(total - next);
        }
        respond(
            StatusCode::OK,
            json!({"kind": format!("{}List", t.rt.kind), "apiVersion": t.rt.api_version(), "metadata": meta, "items": items}),
        )
    }

    fn namespace_missing(&self, t: &Target) -> Option<Response<Full<Bytes>>> {
        if !t.rt.namespaced {
            return None;
        }
        let exists = self.store.lock().expect("store").objects.contains_key(&(
            String::new(),
            "namespaces".into(),
            String::new(),
            t.namespace.clone(),
        ));
        (!exists).then(|| {
            status(
                404,
                "NotFound",
                format!("namespaces \"{}\" not found", t.namespace),
                json!({"name": t.namespace, "kind": "namespaces"}),
            )
        })
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

    fn create(&self, t: &Target, mut obj: Value, dry: bool) -> Response<Full<Bytes>> {
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
                        json!({"kind": t.rt.kind}),
                    )
                }
            },
        };
        if let Some(resp) = self.namespace_missing(t) {
            return resp;
        }
        self.stamp(t, &mut obj, &name);
        let key = Self::key(t, &name);
        let mut store = self.store.lock().expect("store");
        if store.objects.contains_key(&key) {
            let res =
                if t.rt.group.is_empty() { t.rt.plural.clone() } else { format!("{}.{}", t.rt.plural, t.rt.group) };
            return status(
                409,
                "AlreadyExists",
                format!("{res} \"{name}\" already exists"),
                json!({"name": name, "group": t.rt.group, "kind": t.rt.plural}),
            );
        }
        let meta = obj["metadata"].as_object_mut().expect("metadata");
        meta.insert(
            "uid".into(),
            json!(format!("00000000-0000-4000-8000-{:012}", self.uid.fetch_add(1, Ordering::SeqCst))),
        );
        meta.insert("creationTimestamp".into(), json!("2026-01-01T00:00:00Z"));
        meta.insert("generation".into(), json!(1));
        meta.remove("managedFields");
        if dry {
            meta.insert("resourceVersion".into(), json!(""));
            return respond(StatusCode::CREATED, obj);
        }
        meta.insert("resourceVersion".into(), json!(self.next_rv().to_string()));
        if t.rt.group == "apiextensions.k8s.io" && t.rt.plural == "customresourcedefinitions" {
            // the apiextensions controller: serve the new types and report the CRD Established
            for rt in crd_types(&obj) {
                if !store.types.contains(&rt) {
                    store.types.push(rt);
                }
            }
            obj["status"] = json!({"conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts"},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted"}
            ]});
        }
        store.objects.insert(key, obj.clone());
        respond(StatusCode::CREATED, obj)
    }

    /// Stores `new` over `old`, keeping server-owned metadata; `precondition` is the client's resourceVersion.
    fn write(
        &self,
        t: &Target,
        name: &str,
        mut new: Value,
        precondition: Option<String>,
        dry: bool,
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
                let res =
                    if t.rt.group.is_empty() { t.rt.plural.clone() } else { format!("{}.{}", t.rt.plural, t.rt.group) };
                return status(
                    409,
                    "Conflict",
                    format!("Operation cannot be fulfilled on {res} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"),
                    json!({"name": name, "group": t.rt.group, "kind": t.rt.plural}),
                );
            }
        }
        self.stamp(t, &mut new, name);
        let meta = new["metadata"].as_object_mut().expect("metadata");
        for k in ["uid", "creationTimestamp"] {
            if let Some(v) = old.pointer(&format!("/metadata/{k}")) {
                meta.insert(k.into(), v.clone());
            }
        }
        meta.remove("managedFields");
        let changed = {
            let strip = |v: &Value| {
                let mut v = v.clone();
                if let Some(m) = v["metadata"].as_object_mut() {
                    m.remove("resourceVersion");
                    m.remove("generation");
                }
                v
            };
            strip(&old) != strip(&new)
        };
        let generation = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
        let meta = new["metadata"].as_object_mut().expect("metadata");
        if !changed {
            // a no-op write does not bump the resourceVersion, as the apiserver does
            meta.insert("resourceVersion".into(), json!(current));
            meta.insert("generation".into(), json!(generation));
            return respond(StatusCode::OK, new);
        }
        let spec_changed = old.get("spec") != new.get("spec");
        let meta = new["metadata"].as_object_mut().expect("metadata");
        meta.insert("generation".into(), json!(if spec_changed { generation + 1 } else { generation }));
        if dry {
            meta.insert("resourceVersion".into(), json!(current));
            return respond(StatusCode::OK, new);
        }
        meta.insert("resourceVersion".into(), json!(self.next_rv().to_string()));
        store.objects.insert(key, new.clone());
        respond(StatusCode::OK, new)
    }

    fn replace(&self, t: &Target, name: &str, mut obj: Value, dry: bool) -> Response<Full<Bytes>> {
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
        let rv = obj.pointer("/metadata/resourceVersion").and_then(Value::as_str).map(String::from);
        if rv.as_deref().is_none_or(str::is_empty) && self.get(t, name).is_some() {
            return status(422, "Invalid", format!("{} \"{name}\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update", t.rt.kind), json!({"name": name, "kind": t.rt.kind}));
        }
        self.write(t, name, obj, rv, dry)
    }

    fn patch(
        &self,
        t: &Target,
        name: &str,
        ctype: &str,
        body: &[u8],
        q: &BTreeMap<String, String>,
        dry: bool,
    ) -> Response<Full<Bytes>> {
        let ctype = ctype.split(';').next().unwrap_or("").trim();
        let current = self.get(t, name);
        match ctype {
            "application/apply-patch+yaml" => {
                if q.get("fieldManager").is_none_or(String::is_empty) {
                    return status(422, "Invalid", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch".into(), json!({}));
                }
                let applied: Value = match serde_yaml::from_slice(body) {
                    Ok(v) => v,
                    Err(e) => return status(400, "BadRequest", format!("error decoding YAML: {e}"), json!({})),
                };
                let manager = q.get("fieldManager").cloned().unwrap_or_default();
                let force = q.get("force").is_some_and(|f| f == "true");
                let mut fields = std::collections::BTreeSet::new();
                leaf_fields(&applied, "", &mut fields);
                let key = Self::key(t, name);
                // fields another manager applied with a different value are a conflict unless forced
                if let Some(cur) = &current {
                    let store = self.store.lock().expect("store");
                    let owners = store.managers.get(&key).cloned().unwrap_or_default();
                    drop(store);
                    let mut conflicts = Vec::new();
                    for (m, owned) in owners.iter().filter(|(m, _)| **m != manager) {
                        for f in owned.intersection(&fields) {
                            if at_path(cur, f) != at_path(&applied, f) {
                                conflicts.push(format!("conflict with \"{m}\": {f}"));
                            }
                        }
                    }
                    if !conflicts.is_empty() && !force {
                        return status(
                            409,
                            "Conflict",
                            format!("Apply failed with {} conflict{}: {}", conflicts.len(), if conflicts.len() == 1 { "" } else { "s" }, conflicts.join("\n")),
                            json!({"name": name, "group": t.rt.group, "kind": t.rt.plural, "causes": conflicts.iter().map(|c| json!({"reason": "FieldManagerConflict", "message": c})).collect::<Vec<_>>()}),
                        );
                    }
                }
                let resp = match current {
                    None => {
                        let mut obj = applied;
                        if !obj.get("metadata").is_some_and(Value::is_object) {
                            obj["metadata"] = json!({});
                        }
                        obj["metadata"]["name"] = json!(name);
                        self.create(t, obj, dry)
                    }
                    Some(mut cur) => {
                        let rv = applied.pointer("/metadata/resourceVersion").and_then(Value::as_str).map(String::from);
                        json_patch::merge(&mut cur, &applied);
                        self.write(t, name, cur, rv, dry)
                    }
                };
                if resp.status().is_success() && !dry {
                    let mut store = self.store.lock().expect("store");
                    let owners = store.managers.entry(key).or_default();
                    for (m, owned) in owners.iter_mut().filter(|(m, _)| **m != manager) {
                        let _ = m;
                        owned.retain(|f| !fields.contains(f));
                    }
                    owners.insert(manager, fields);
                }
                resp
            }
            "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                let Some(mut cur) = current else { return self.not_found(t, name) };
                let p: Value = match serde_json::from_slice(body) {
                    Ok(v) => v,
                    Err(e) => return status(400, "BadRequest", format!("error decoding patch: {e}"), json!({})),
                };
                let rv = p.pointer("/metadata/resourceVersion").and_then(Value::as_str).map(String::from);
                json_patch::merge(&mut cur, &p);
                self.write(t, name, cur, rv, dry)
            }
            "application/json-patch+json" => {
                let Some(mut cur) = current else { return self.not_found(t, name) };
                let p: json_patch::Patch = match serde_json::from_slice(body) {
                    Ok(v) => v,
                    Err(e) => return status(400, "BadRequest", format!("error decoding patch: {e}"), json!({})),
                };
                let before_rv = cur.pointer("/metadata/resourceVersion").cloned();
                if let Err(e) = json_patch::patch(&mut cur, &p.0) {
                    // a failed `test` operation is how JSON-patch clients express preconditions
                    return status(422, "Invalid", format!("the server rejected our request due to an error in our request: {e}"), json!({}));
                }
                let rv = cur.pointer("/metadata/resourceVersion").filter(|v| Some(*v) != before_rv.as_ref()).and_then(Value::as_str).map(String::from);
                self.write(t, name, cur, rv, dry)
            }
            other => status(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other})"), json!({})),
        }
    }

    fn delete(&self, t: &Target, name: &str, dry: bool) -> Response<Full<Bytes>> {
        let key = Self::key(t, name);
        let mut store = self.store.lock().expect("store");
        let Some(obj) = store.objects.get(&key).cloned() else {
            drop(store);
            return self.not_found(t, name);
        };
        if !dry {
            store.objects.remove(&key);
            store.managers.remove(&key);
            if t.rt.plural == "namespaces" {
                store.objects.retain(|(_, _, ns, _), _| ns != name);
            }
            self.next_rv();
        }
        respond(StatusCode::OK, obj)
    }
}
