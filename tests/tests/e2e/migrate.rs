//! Workload migration between two clusters: two fake API servers, or the real clusters that
//! `EKSODUS_TEST_KUBECONFIG` (source) and `EKSODUS_TEST_KUBECONFIG_TARGET` name (each test in its own
//! namespaces). Export, bundle, apply, resume, re-apply, verify; the source is never written.

use std::collections::BTreeSet;

use eksodus_core::events::EventSink;
use eksodus_e2e::Cluster;
use eksodus_migrate::bundle::{self, prepare};
use eksodus_migrate::filter::Filters;
use eksodus_migrate::live::{self, MigrateOptions, Outcome};
use eksodus_migrate::object::Obj;
use eksodus_migrate::transform::Rules;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};

fn quiet() -> EventSink {
    EventSink::discard()
}

/// A small application in `ns`, as a user would have it: config, a secret, RBAC, a service account, storage,
/// a deployment using them, a LoadBalancer Service and an Ingress.
fn app(ns: &str) -> Vec<Value> {
    vec![
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-config", "namespace": ns, "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}}, "data": {"MODE": "production"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": ns}, "type": "Opaque", "data": {"password": "aHVudGVyMg=="}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "web", "namespace": ns}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "reader", "namespace": ns}, "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "web-reader", "namespace": ns}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"}, "subjects": [{"kind": "ServiceAccount", "name": "web", "namespace": ns}]}),
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": ns}, "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "standard", "resources": {"requests": {"storage": "1Gi"}}}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns, "labels": {"app": "web"}}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"serviceAccountName": "web", "containers": [{"name": "web", "image": "docker.io/library/nginx:1.27", "envFrom": [{"configMapRef": {"name": "web-config"}}], "env": [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]}], "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}}}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns}, "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 80}]}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web", "namespace": ns}, "spec": {"ingressClassName": "nginx", "rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}),
    ]
}

async fn create_all(c: &kube::Client, objs: &[Value]) {
    let discovery = kube::discovery::Discovery::new(c.clone()).run().await.unwrap();
    for o in objs {
        let obj = Obj(o.clone());
        let (g, v) = obj.api_version().rsplit_once('/').unwrap_or(("", obj.api_version()));
        let (ar, _) = discovery.resolve_gvk(&GroupVersionKind::gvk(g, v, obj.kind())).unwrap();
        let api: Api<DynamicObject> = if obj.namespace().is_empty() {
            Api::all_with(c.clone(), &ar)
        } else {
            Api::namespaced_with(c.clone(), obj.namespace(), &ar)
        };
        let d: DynamicObject = serde_json::from_value(o.clone()).unwrap();
        api.create(&PostParams::default(), &d).await.unwrap_or_else(|e| panic!("create {}: {e}", obj.obj_ref()));
    }
}

fn rules(src: &str, dst: &str) -> Rules {
    Rules::from_yaml(&format!(
        "namespaces: {{{src}: {dst}}}\nstorage_classes: {{standard: gp3}}\ningress_classes: {{nginx: alb}}\nimage_registries: {{docker.io/library/: 111122223333.dkr.ecr.us-east-1.amazonaws.com/hub/}}\nirsa: {{{src}/web: 'arn:aws:iam::111122223333:role/web'}}\n"
    ))
    .unwrap()
}

async fn source_and_target(test: &str) -> (Cluster, Cluster) {
    let src = Cluster::start_with(test, "EKSODUS_TEST_KUBECONFIG").await;
    let dst = Cluster::start_with(test, "EKSODUS_TEST_KUBECONFIG_TARGET").await;
    (src, dst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_apply_resume_reapply() {
    let (src, dst) = source_and_target("migrate").await;
    let objs = app(&src.namespace);
    create_all(&src.client, &objs).await;
    // what the controllers of a real cluster would have made: a ReplicaSet owned by the Deployment
    if src.fake.is_some() {
        create_all(&src.client, &[json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-5d9c", "namespace": src.namespace, "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "u", "controller": true}]}, "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}})]).await;
    }
    let src_rv_before = src_snapshot(&src).await;

    let read = live::export(&src.client, 3, &quiet()).await.unwrap();
    assert!(read.errors.is_empty(), "{:?}", read.errors);
    let filters = Filters { include_namespaces: vec![src.namespace.clone()], ..Default::default() };
    let p = prepare(read, "source", &filters, &rules(&src.namespace, &dst.namespace));
    let got: BTreeSet<String> = p.objects.iter().map(|(o, _)| format!("{}/{}", o.kind(), o.name())).collect();
    for want in [
        "ConfigMap/web-config",
        "Secret/db",
        "ServiceAccount/web",
        "Role/reader",
        "RoleBinding/web-reader",
        "PersistentVolumeClaim/data",
        "Deployment/web",
        "Service/web",
        "Ingress/web",
    ] {
        assert!(got.contains(want), "{want} missing from {got:?}");
    }
    assert!(!got.iter().any(|g| g.starts_with("ReplicaSet/")), "controller-owned objects are left to the controller");
    assert!(!got.contains("ServiceAccount/default") && !got.contains("ConfigMap/kube-root-ca.crt"));
    let bundle_dir = tempfile::tempdir().unwrap();
    let manifest = bundle::write(bundle_dir.path(), &p).unwrap();
    let (objects, report) = bundle::read(bundle_dir.path()).unwrap();
    assert_eq!(objects.len(), p.objects.len());
    // on a server shared with other tests, their cluster-scoped objects come along: apply only this test's
    let objects: Vec<(Obj, u32)> = objects
        .into_iter()
        .filter(|(o, _)| o.namespace() == dst.namespace || (o.kind() == "Namespace" && o.name() == dst.namespace))
        .collect();
    // streamed page by page into the writers (what `migrate export` does): the same bundle
    let streamed_dir = tempfile::tempdir().unwrap();
    let export =
        bundle::Export::new(streamed_dir.path(), "source", filters.clone(), rules(&src.namespace, &dst.namespace))
            .unwrap();
    live::export_into(&src.client, 3, &quiet(), &mut |r| match r {
        Ok(o) => export.push(o),
        Err(e) => export.error(e),
    })
    .await
    .unwrap();
    let streamed = export.finish().unwrap();
    assert_eq!(streamed.manifest, manifest);
    for e in &manifest.objects {
        assert_eq!(
            std::fs::read(bundle_dir.path().join(&e.file)).unwrap(),
            std::fs::read(streamed_dir.path().join(&e.file)).unwrap(),
            "{}",
            e.file
        );
    }

    // dry run: everything would be created, nothing stored
    let dry = live::apply(&dst.client, &objects, &MigrateOptions { dry_run: true, ..Default::default() }, &quiet())
        .await
        .unwrap();
    let created = dry.objects.iter().filter(|o| o.outcome == Outcome::Created).count();
    assert!(created >= objects.len() - 1, "{:?}", dry.counts()); // the target namespace exists already
    let cm: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(dst.client.clone(), &dst.namespace);
    assert!(cm.get_opt("web-config").await.unwrap().is_none(), "a dry run stores nothing");

    // an interrupted apply: only the first waves got through
    let journal = live::journal_path(bundle_dir.path(), &live::TargetId { url: "target".into(), uid: "u".into() });
    let opts = MigrateOptions { journal: Some(journal.clone()), concurrency: 4, ..Default::default() };
    let cut = objects.iter().position(|(o, _)| o.kind() == "Deployment").unwrap();
    let first = live::apply(&dst.client, &objects[..cut], &opts, &quiet()).await.unwrap();
    assert!(first.is_success(), "{:?}", first.objects);
    let resumed = live::apply(&dst.client, &objects, &opts, &quiet()).await.unwrap();
    assert!(resumed.is_success(), "{:?}", resumed.objects);
    let journaled = resumed.objects.iter().filter(|o| o.outcome == Outcome::Journaled).count();
    assert_eq!(journaled, cut, "the objects applied before the interruption are not sent again");
    // a re-run is a no-op: with the journal nothing is sent; without it the server finds nothing to change
    let again = live::apply(&dst.client, &objects, &opts, &quiet()).await.unwrap();
    assert!(again.objects.iter().all(|o| o.outcome == Outcome::Journaled), "{:?}", again.counts());
    let before = snapshot(&dst.client, &dst.namespace).await;
    let again = live::apply(&dst.client, &objects, &MigrateOptions::default(), &quiet()).await.unwrap();
    assert!(again.objects.iter().all(|o| o.outcome == Outcome::Unchanged), "{:?}", again.counts());
    assert_eq!(snapshot(&dst.client, &dst.namespace).await, before, "re-applying changed something");
    let dry = live::apply(&dst.client, &objects, &MigrateOptions { dry_run: true, ..Default::default() }, &quiet())
        .await
        .unwrap();
    assert!(
        dry.objects.iter().all(|o| o.outcome == Outcome::Unchanged),
        "{:?}",
        dry.objects.iter().filter(|o| o.outcome != Outcome::Unchanged).collect::<Vec<_>>()
    );

    // every object is in the target as transformed
    let discovery = kube::discovery::Discovery::new(dst.client.clone()).run().await.unwrap();
    for (o, _) in &objects {
        let (g, v) = o.api_version().rsplit_once('/').unwrap_or(("", o.api_version()));
        let (ar, _): (ApiResource, _) = discovery.resolve_gvk(&GroupVersionKind::gvk(g, v, o.kind())).unwrap();
        let api: Api<DynamicObject> = if o.namespace().is_empty() {
            Api::all_with(dst.client.clone(), &ar)
        } else {
            Api::namespaced_with(dst.client.clone(), o.namespace(), &ar)
        };
        let got = serde_json::to_value(api.get(o.name()).await.unwrap()).unwrap();
        for field in ["spec", "data", "rules", "roleRef", "subjects"] {
            if let Some(want) = o.0.get(field) {
                assert!(contains(&got[field], want), "{} {field}: {} vs {}", o.obj_ref(), got[field], want);
            }
        }
    }
    let dep = objects.iter().find(|(o, _)| o.kind() == "Deployment").unwrap();
    assert_eq!(
        dep.0.get("/spec/template/spec/containers/0/image").unwrap(),
        "111122223333.dkr.ecr.us-east-1.amazonaws.com/hub/nginx:1.27"
    );
    assert_eq!(dep.0.namespace(), dst.namespace);
    let sa = objects.iter().find(|(o, _)| o.kind() == "ServiceAccount").unwrap();
    assert_eq!(
        sa.0.get("/metadata/annotations/eks.amazonaws.com~1role-arn").unwrap(),
        "arn:aws:iam::111122223333:role/web"
    );
    assert!(report.transforms.values().flatten().any(|t| t == "storage-class"));

    // the source was only read
    assert_eq!(src_snapshot(&src).await, src_rv_before);
    src.cleanup().await;
    dst.cleanup().await;
}

/// `want` is contained in `got` (the server may add defaults).
fn contains(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => w.iter().all(|(k, v)| g.get(k).is_some_and(|x| contains(x, v))),
        (Value::Array(g), Value::Array(w)) => g.len() == w.len() && g.iter().zip(w).all(|(a, b)| contains(a, b)),
        (g, w) => g == w,
    }
}

async fn src_snapshot(c: &Cluster) -> Vec<(String, String)> {
    snapshot(&c.client, &c.namespace).await
}

/// Every object of a namespace with its resourceVersion.
async fn snapshot(client: &kube::Client, ns: &str) -> Vec<(String, String)> {
    let read = live::export(client, 500, &quiet()).await.unwrap();
    let mut v: Vec<(String, String)> = read
        .objects
        .iter()
        .filter(|o| o.namespace() == ns)
        .map(|o| {
            (
                o.obj_ref().to_string(),
                o.get("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or_default().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Conflicts and bad objects are reported per object; the rest is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_object_errors_do_not_stop_the_rest() {
    let (_src, dst) = source_and_target("migrate-errors").await;
    let ns = dst.namespace.clone();
    // someone else applied the ConfigMap's key with another value: eksodus must not silently take it over
    let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared", "namespace": ns}, "data": {"owner": "team-a"}});
    let api: Api<DynamicObject> = Api::namespaced_with(
        dst.client.clone(),
        &ns,
        &ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()),
    );
    api.patch("shared", &kube::api::PatchParams::apply("team-a"), &kube::api::Patch::Apply(&other)).await.unwrap();
    let objects = vec![
        (
            Obj(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared", "namespace": ns}, "data": {"owner": "eksodus"}}),
            ),
            0,
        ),
        (
            Obj(json!({"apiVersion": "example.com/v1", "kind": "Unknown", "metadata": {"name": "x", "namespace": ns}})),
            0,
        ),
        (
            Obj(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fine", "namespace": ns}, "data": {"a": "b"}}),
            ),
            1,
        ),
    ];
    // progress arrives as the environment's events: a wave phase, then one count per object with its outcome
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let events = EventSink::new(move |e| s.lock().unwrap().push(e.clone()));
    let r = live::apply(&dst.client, &objects, &MigrateOptions::default(), &events).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert!(seen.iter().any(
        |e| matches!(e, eksodus_core::events::Event::PhaseStarted { phase, .. } if phase.starts_with("apply/wave"))
    ));
    let progress: Vec<(u64, Option<u64>, String)> = seen
        .iter()
        .filter_map(|e| match e {
            eksodus_core::events::Event::Progress { phase, done, total, outcome, .. } if phase == "apply" => {
                Some((*done, *total, outcome.clone().unwrap_or_default()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(progress.len(), objects.len(), "{progress:?}");
    assert!(progress.iter().all(|(_, t, _)| *t == Some(objects.len() as u64)));
    assert_eq!(progress.iter().map(|(d, _, _)| *d).max(), Some(objects.len() as u64));
    assert_eq!(progress.iter().filter(|(_, _, o)| o == "failed").count(), 2, "{progress:?}");
    let by: std::collections::BTreeMap<&str, &Outcome> =
        r.objects.iter().map(|o| (o.object.as_str(), &o.outcome)).collect();
    let conflict = by.iter().find(|(k, _)| k.contains("shared")).unwrap().1;
    assert!(matches!(conflict, Outcome::Failed { reason, .. } if reason == "Conflict"), "{conflict:?}");
    let unknown = by.iter().find(|(k, _)| k.contains("Unknown")).unwrap().1;
    assert!(matches!(unknown, Outcome::Failed { message, .. } if message.contains("serves no")), "{unknown:?}");
    assert_eq!(*by.iter().find(|(k, _)| k.contains("fine")).unwrap().1, &Outcome::Created);
    dst.cleanup().await;
}

/// CRDs go first and are waited for; their custom resources follow once the target serves them. The group is
/// unique to the run, so the test can share a real API server with others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_follow_their_crd() {
    let (src, dst) = source_and_target("migrate-crd").await;
    let group = format!("{}.example.com", eksodus_e2e::unique_name("crd"));
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": format!("widgets.{group}")},
        "spec": {"group": group, "scope": "Namespaced", "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
    create_all(&src.client, &[crd]).await;
    // a real server serves a new CRD's kind a moment after it is Established
    let mut created = false;
    for _ in 0..50 {
        let d = kube::discovery::Discovery::new(src.client.clone()).run().await.unwrap();
        if d.resolve_gvk(&GroupVersionKind::gvk(&group, "v1", "Widget")).is_some() {
            create_all(&src.client, &[json!({"apiVersion": format!("{group}/v1"), "kind": "Widget", "metadata": {"name": "w", "namespace": src.namespace}, "spec": {"size": 3}})]).await;
            created = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(created, "the source never served the CRD's kind");
    let read = live::export(&src.client, 100, &quiet()).await.unwrap();
    let filters = Filters { include_namespaces: vec![src.namespace.clone()], ..Default::default() };
    let p = prepare(read, "source", &filters, &rules(&src.namespace, &dst.namespace));
    // the shared server holds other tests' CRDs: keep this test's
    let objects: Vec<(Obj, u32)> = p
        .objects
        .into_iter()
        .filter(|(o, _)| o.kind() != "CustomResourceDefinition" || o.name().ends_with(&group))
        .collect();
    let waves: Vec<(String, u32)> = objects.iter().map(|(o, w)| (o.kind().to_string(), *w)).collect();
    let crd_wave = waves.iter().find(|(k, _)| k == "CustomResourceDefinition").unwrap().1;
    let w_wave = waves.iter().find(|(k, _)| k == "Widget").unwrap().1;
    assert!(crd_wave < w_wave);
    let r = live::apply(&dst.client, &objects, &MigrateOptions::default(), &quiet()).await.unwrap();
    assert!(r.is_success(), "{:?}", r.objects);
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(&group, "v1", "Widget"), "widgets");
    let w: Api<DynamicObject> = Api::namespaced_with(dst.client.clone(), &dst.namespace, &ar);
    assert_eq!(w.get("w").await.unwrap().data["spec"]["size"], 3);
}
