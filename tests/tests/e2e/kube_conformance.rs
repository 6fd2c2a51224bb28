//! The fake API server held to the real one: one scenario of raw HTTP requests (create, conflicts, replace with
//! a stale resourceVersion, merge and JSON patches, server-side apply with ownership, conflicts and force, dry
//! runs, pagination, label selectors, discovery, CRD establishment and custom resources, deletion) runs against
//! both, and every status code and normalized body must agree.
//!
//! The real server's answers are kept in `tests/testdata/kube-conformance.json`, so the fake is checked against
//! them on every machine; where a real server is available (CI), it is asked again and must still give the
//! recorded answers (`EKSODUS_RECORD_CONFORMANCE=1` records them anew).

use std::collections::BTreeMap;
use std::path::PathBuf;

use eksodus_testkit::realkube::RealKube;
use serde_json::{json, Value};

struct Step {
    name: &'static str,
    method: &'static str,
    path: String,
    ctype: &'static str,
    body: Option<Value>,
}

fn step(name: &'static str, method: &'static str, path: &str, ctype: &'static str, body: Option<Value>) -> Step {
    Step { name, method, path: path.to_string(), ctype, body }
}

const JSON: &str = "application/json";
const APPLY: &str = "application/apply-patch+yaml";
const MERGE: &str = "application/merge-patch+json";
const JSONPATCH: &str = "application/json-patch+json";
const NS: &str = "conformance";
const CRD: &str = "gizmos.conformance.example.com";

fn scenario(ns: &str) -> Vec<Step> {
    let cms = format!("/api/v1/namespaces/{ns}/configmaps");
    let cm = |n: &str| format!("{cms}/{n}");
    let cm_body = |n: &str, data: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n, "labels": {"app": "x"}}, "data": data});
    let apply = |n: &str, mgr: &str, force: bool| {
        format!("{}?fieldManager={mgr}{}", cm(n), if force { "&force=true" } else { "" })
    };
    let gizmos = format!("/apis/conformance.example.com/v1/namespaces/{ns}/gizmos");
    vec![
        step("create", "POST", &cms, JSON, Some(cm_body("a", json!({"k": "1"})))),
        step("create again", "POST", &cms, JSON, Some(cm_body("a", json!({})))),
        step("get missing", "GET", &cm("nope"), JSON, None),
        step(
            "create without a name",
            "POST",
            &cms,
            JSON,
            Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})),
        ),
        step(
            "create in a missing namespace",
            "POST",
            "/api/v1/namespaces/no-such-namespace-conformance/configmaps",
            JSON,
            Some(cm_body("z", json!({}))),
        ),
        step(
            "replace with the current resourceVersion",
            "PUT",
            &cm("a"),
            JSON,
            Some(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"app": "x"}, "resourceVersion": "{rv}"}, "data": {"k": "2"}}),
            ),
        ),
        step(
            "replace with a stale resourceVersion",
            "PUT",
            &cm("a"),
            JSON,
            Some(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "resourceVersion": "{stale}"}, "data": {"k": "3"}}),
            ),
        ),
        step(
            "replace without a resourceVersion",
            "PUT",
            &cm("a"),
            JSON,
            Some(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"app": "x"}}, "data": {"k": "4"}}),
            ),
        ),
        step("merge patch", "PATCH", &cm("a"), MERGE, Some(json!({"data": {"m": "merged"}}))),
        step(
            "json patch",
            "PATCH",
            &cm("a"),
            JSONPATCH,
            Some(json!([{"op": "add", "path": "/data/j", "value": "json"}])),
        ),
        step(
            "json patch with a failing test",
            "PATCH",
            &cm("a"),
            JSONPATCH,
            Some(json!([{"op": "test", "path": "/data/k", "value": "nope"}])),
        ),
        step("merge patch of a missing object", "PATCH", &cm("nope"), MERGE, Some(json!({"data": {"m": "x"}}))),
        step(
            "apply creates",
            "PATCH",
            &apply("b", "m1", false),
            APPLY,
            Some(cm_body("b", json!({"x": "1", "y": "1"}))),
        ),
        step(
            "apply again unchanged",
            "PATCH",
            &apply("b", "m1", false),
            APPLY,
            Some(cm_body("b", json!({"x": "1", "y": "1"}))),
        ),
        step(
            "apply without a field removes it",
            "PATCH",
            &apply("b", "m1", false),
            APPLY,
            Some(cm_body("b", json!({"x": "1"}))),
        ),
        step(
            "apply by another manager, same value",
            "PATCH",
            &apply("b", "m2", false),
            APPLY,
            Some(cm_body("b", json!({"x": "1"}))),
        ),
        step(
            "apply by another manager, other value",
            "PATCH",
            &apply("b", "m3", false),
            APPLY,
            Some(cm_body("b", json!({"x": "2"}))),
        ),
        step("apply forced", "PATCH", &apply("b", "m3", true), APPLY, Some(cm_body("b", json!({"x": "2"})))),
        step("get after force", "GET", &cm("b"), JSON, None),
        step("apply without a field manager", "PATCH", &cm("b"), APPLY, Some(cm_body("b", json!({})))),
        step(
            "apply a dry run",
            "PATCH",
            &format!("{}&dryRun=All", apply("c", "m1", false)),
            APPLY,
            Some(cm_body("c", json!({"d": "1"}))),
        ),
        step("the dry run stored nothing", "GET", &cm("c"), JSON, None),
        step("create a dry run", "POST", &format!("{cms}?dryRun=All"), JSON, Some(cm_body("c", json!({})))),
        step("create p0", "POST", &cms, JSON, Some(cm_body("p0", json!({})))),
        step("create p1", "POST", &cms, JSON, Some(cm_body("p1", json!({})))),
        step(
            "create q0 without the label",
            "POST",
            &cms,
            JSON,
            Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "q0"}})),
        ),
        step("list page 1", "GET", &format!("{cms}?labelSelector=app%3Dx&limit=2"), JSON, None),
        step("list page 2", "GET", &format!("{cms}?labelSelector=app%3Dx&limit=2&continue={{continue}}"), JSON, None),
        step("list by a selector nothing matches", "GET", &format!("{cms}?labelSelector=app%3Dy"), JSON, None),
        step("discovery core", "GET", "/api/v1", JSON, None),
        step("discovery groups", "GET", "/apis", JSON, None),
        step("discovery apps", "GET", "/apis/apps/v1", JSON, None),
        step("discovery of a missing group", "GET", "/apis/nosuch.example.com/v1", JSON, None),
        step(
            "create a CRD",
            "POST",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            JSON,
            Some(
                json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": CRD},
            "spec": {"group": "conformance.example.com", "scope": "Namespaced", "names": {"plural": "gizmos", "singular": "gizmo", "kind": "Gizmo"},
                "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}),
            ),
        ),
        step(
            "the CRD is Established",
            "WAIT",
            &format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD}"),
            JSON,
            None,
        ),
        step(
            "create a custom resource",
            "POST",
            &gizmos,
            JSON,
            Some(
                json!({"apiVersion": "conformance.example.com/v1", "kind": "Gizmo", "metadata": {"name": "g"}, "spec": {"size": 1}}),
            ),
        ),
        step("get the custom resource", "GET", &format!("{gizmos}/g"), JSON, None),
        step("delete", "DELETE", &cm("a"), JSON, None),
        step("delete again", "DELETE", &cm("a"), JSON, None),
        step("get deleted", "GET", &cm("a"), JSON, None),
        step("delete the custom resource", "DELETE", &format!("{gizmos}/g"), JSON, None),
        step(
            "delete the CRD",
            "DELETE",
            &format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD}"),
            JSON,
            None,
        ),
    ]
}

/// The parts of an answer that must agree: volatile fields (UIDs, resourceVersions, timestamps, field-manager
/// times) dropped, the test namespace renamed, discovery reduced to what eksodus reads of it.
fn normalize(step: &str, ns: &str, v: Value) -> Value {
    let text = v.to_string().replace(ns, NS);
    let mut v: Value = serde_json::from_str(&text).unwrap();
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                if let Some(Value::Object(meta)) = m.get_mut("metadata") {
                    for k in ["uid", "resourceVersion", "creationTimestamp", "selfLink"] {
                        meta.remove(k);
                    }
                    if let Some(Value::Array(mf)) = meta.get_mut("managedFields") {
                        // ownership as eksodus depends on it: who owns which leaf field, with which operation
                        // (the order of entries and the `.` markers of maps are the server's bookkeeping)
                        // (status written by the server's own controllers through the subresource is left out)
                        let mut owners: Vec<Value> = mf
                            .iter()
                            .filter(|f| f.get("subresource").is_none())
                            .map(|f| {
                                let mut leaves = Vec::new();
                                fields_v1(&f["fieldsV1"], "", &mut leaves);
                                leaves.sort();
                                json!({"manager": f["manager"], "operation": f["operation"], "fields": leaves})
                            })
                            .collect();
                        owners.sort_by_key(|o| o.to_string());
                        *mf = owners;
                    }
                    if meta.contains_key("deletionTimestamp") {
                        meta.insert("deletionTimestamp".into(), json!("<time>"));
                    }
                    if meta.get("continue").is_some_and(|c| c != "") {
                        meta.insert("continue".into(), json!("<continue>"));
                    }
                }
                m.remove("lastTransitionTime");
                if let Some(Value::Object(d)) = m.get_mut("details") {
                    d.remove("uid");
                    // the order of a conflict's causes follows the server's internal ordering of managers
                    if let Some(Value::Array(c)) = d.get_mut("causes") {
                        c.sort_by_key(|x| x.to_string());
                    }
                }
                for x in m.values_mut() {
                    strip(x);
                }
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    match step {
        "discovery core" | "discovery apps" => {
            // the resources eksodus reads, with what it reads of them
            let rs: BTreeMap<String, Value> = v["resources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| {
                    ["configmaps", "namespaces", "deployments", "services"].contains(&r["name"].as_str().unwrap_or(""))
                })
                .map(|r| {
                    let mut verbs: Vec<String> = r["verbs"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect();
                    verbs.sort();
                    (
                        r["name"].as_str().unwrap().to_string(),
                        json!({"kind": r["kind"], "namespaced": r["namespaced"], "verbs": verbs}),
                    )
                })
                .collect();
            json!({"groupVersion": v["groupVersion"], "resources": rs})
        }
        "discovery groups" => {
            let mut names: Vec<&str> = v["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|g| g["name"].as_str())
                .filter(|n| {
                    ["apps", "rbac.authorization.k8s.io", "apiextensions.k8s.io", "networking.k8s.io"].contains(n)
                })
                .collect();
            names.sort();
            json!({"kind": v["kind"], "groups": names})
        }
        _ => v,
    }
}

/// The leaf fields of a `fieldsV1` tree (`.data.k`), its `.` markers left out.
fn fields_v1(v: &Value, at: &str, out: &mut Vec<String>) {
    let Some(m) = v.as_object() else { return };
    let children: Vec<(&String, &Value)> = m.iter().filter(|(k, _)| k.as_str() != ".").collect();
    if children.is_empty() {
        if !at.is_empty() {
            out.push(at.to_string());
        }
        return;
    }
    for (k, x) in children {
        let seg = k.strip_prefix("f:").unwrap_or(k);
        fields_v1(x, &format!("{at}.{seg}"), out);
    }
}

/// Runs the scenario; returns the normalized answers by step.
async fn run(client: &kube::Client, ns: &str) -> Vec<(String, u16, Value)> {
    let mut out = Vec::new();
    let mut last_rv: BTreeMap<String, String> = BTreeMap::new();
    let mut first_rv: BTreeMap<String, String> = BTreeMap::new();
    let mut cont = String::new();
    for s in scenario(ns) {
        let object_path = s.path.split('?').next().unwrap().to_string();
        if s.method == "WAIT" {
            let mut established = json!(null);
            for _ in 0..100 {
                let req = http::Request::get(&s.path).body(Vec::new()).unwrap();
                let v: Value = serde_json::from_str(&client.request_text(req).await.unwrap()).unwrap();
                established = v["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|c| c["type"] == "Established")
                    .map(|c| c["status"].clone())
                    .unwrap_or(json!(null));
                if established == "True" {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            out.push((s.name.to_string(), 200, json!({"Established": established})));
            continue;
        }
        let body = s.body.map(|b| {
            b.to_string()
                .replace("{rv}", last_rv.get(&object_path).map(String::as_str).unwrap_or(""))
                .replace("{stale}", first_rv.get(&object_path).map(String::as_str).unwrap_or(""))
        });
        let path = s.path.replace("{continue}", &urlencode(&cont));
        let req = http::Request::builder()
            .method(s.method)
            .uri(&path)
            .header("content-type", s.ctype)
            .body(body.unwrap_or_default().into_bytes())
            .unwrap();
        let resp = client.send(req.map(kube::client::Body::from)).await.expect("a response");
        let code = resp.status().as_u16();
        let bytes = resp.into_body().collect_bytes().await.unwrap();
        let v: Value =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&bytes)}));
        if let Some(rv) = v.pointer("/metadata/resourceVersion").and_then(Value::as_str) {
            if v["kind"] != "Status" && !rv.is_empty() && !path.contains("dryRun") {
                let key = if s.method == "POST" {
                    format!("{}/{}", object_path, v["metadata"]["name"].as_str().unwrap_or(""))
                } else {
                    object_path.clone()
                };
                first_rv.entry(key.clone()).or_insert_with(|| rv.to_string());
                last_rv.insert(key, rv.to_string());
            }
        }
        if let Some(c) = v.pointer("/metadata/continue").and_then(Value::as_str) {
            cont = c.to_string();
        }
        out.push((s.name.to_string(), code, normalize(s.name, ns, v)));
    }
    out
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn recording() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/kube-conformance.json")
}

fn as_json(r: &[(String, u16, Value)]) -> Value {
    Value::Array(r.iter().map(|(s, c, b)| json!({"step": s, "code": c, "body": b})).collect())
}

/// Differences between two transcripts, step by step.
fn differences(want: &Value, got: &Value) -> Vec<String> {
    let (w, g) = (want.as_array().unwrap(), got.as_array().unwrap());
    let mut out = Vec::new();
    for (a, b) in w.iter().zip(g) {
        if a != b {
            let mut paths = Vec::new();
            eksodus_migrate::live::changed_paths(a, b, "", &mut paths);
            out.push(format!(
                "step `{}`: {}\n  real: {}\n  fake: {}",
                a["step"].as_str().unwrap_or("?"),
                paths.join(", "),
                a,
                b
            ));
        }
    }
    if w.len() != g.len() {
        out.push(format!("{} steps recorded, {} run", w.len(), g.len()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_answers_as_the_real_api_server_does() {
    let ns = eksodus_e2e::unique_name("conformance");
    // the real server first, when there is one: its answers are the reference
    let recorded: Value = if RealKube::available() {
        let real = RealKube::start(Default::default()).await.expect("real API server");
        let c = real.client().await.unwrap();
        eksodus_e2e::create_namespace(&c, &ns).await;
        let got = as_json(&run(&c, &ns).await);
        if std::env::var_os("EKSODUS_RECORD_CONFORMANCE").is_some() {
            std::fs::write(recording(), serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
        }
        let kept: Value = serde_json::from_str(&std::fs::read_to_string(recording()).unwrap()).unwrap();
        let d = differences(&kept, &got);
        assert!(d.is_empty(), "the real API server answers differently from the recording (record again with EKSODUS_RECORD_CONFORMANCE=1):\n{}", d.join("\n"));
        got
    } else {
        println!("the real API server is not available here: the fake is checked against the recorded answers");
        serde_json::from_str(&std::fs::read_to_string(recording()).unwrap()).unwrap()
    };
    let fake = eksodus_testkit::kubeapi::FakeKube::start().await.unwrap();
    let c = kube::Client::try_from(kube::Config::new(fake.url().parse().unwrap())).unwrap();
    eksodus_e2e::create_namespace(&c, &ns).await;
    let got = as_json(&run(&c, &ns).await);
    let d = differences(&recorded, &got);
    assert!(d.is_empty(), "{} step(s) differ between the real API server and the fake:\n{}", d.len(), d.join("\n"));
}
