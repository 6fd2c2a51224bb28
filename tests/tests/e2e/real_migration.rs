//! The migration on real Kubernetes API servers (the testkit's v1.36 kube-apiserver with its own etcd): a source
//! populated through its API as a user would have it, a second, empty server as the target.
//!
//! - the live export holds nothing an empty server makes itself;
//! - export → apply → every object equal on the target after transforms → a re-apply without the journal
//!   changes no resourceVersion;
//! - the source's etcd snapshot exports object for object what the live export does (CRDs in v1, Secrets
//!   decrypted from aescbc);
//! - a webhook whose Service has no ready endpoint is held, and applied once an EndpointSlice is ready;
//! - the target recreated at the same URL gets everything again; `verify` names a missing object.
//!
//! Skipped (saying so) where no real API server is available: the fake cannot store into etcd.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use eksodus_core::events::EventSink;
use eksodus_migrate::bundle::{self, prepare, Export};
use eksodus_migrate::filter::Filters;
use eksodus_migrate::live::{self, MigrateOptions, Outcome, TargetId};
use eksodus_migrate::object::Obj;
use eksodus_migrate::transform::Rules;
use eksodus_testkit::realkube::{Options, RealKube};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::Discovery;
use serde_json::{json, Value};

/// The source's encryption at rest: Secrets with aescbc (the testkit's fixed test key).
pub use eksodus_testkit::workload::ENCRYPTION;

fn quiet() -> EventSink {
    EventSink::discard()
}

pub async fn api_for(c: &kube::Client, d: &Discovery, o: &Value) -> Api<DynamicObject> {
    let obj = Obj(o.clone());
    let (g, v) = obj.api_version().rsplit_once('/').unwrap_or(("", obj.api_version()));
    let (ar, caps) = d
        .resolve_gvk(&GroupVersionKind::gvk(g, v, obj.kind()))
        .unwrap_or_else(|| panic!("the server serves no {}", obj.obj_ref()));
    if caps.scope == kube::discovery::Scope::Namespaced {
        Api::namespaced_with(c.clone(), obj.namespace(), &ar)
    } else {
        Api::all_with(c.clone(), &ar)
    }
}

/// Creates `objs` in order (discovery is refreshed after a CRD so its kind can follow).
pub async fn create(c: &kube::Client, objs: &[Value]) {
    let mut d = Discovery::new(c.clone()).run().await.unwrap();
    for o in objs {
        let api = api_for(c, &d, o).await;
        let obj: DynamicObject = serde_json::from_value(o.clone()).unwrap();
        api.create(&PostParams::default(), &obj)
            .await
            .unwrap_or_else(|e| panic!("create {}: {e}", Obj(o.clone()).obj_ref()));
        if o["kind"] == "CustomResourceDefinition" {
            // wait until it serves its kind
            for _ in 0..100 {
                d = Discovery::new(c.clone()).run().await.unwrap();
                if d.groups().any(|g| g.name() == o["spec"]["group"].as_str().unwrap()) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn replace(c: &kube::Client, o: &Value) {
    let d = Discovery::new(c.clone()).run().await.unwrap();
    let api = api_for(c, &d, o).await;
    let name = o["metadata"]["name"].as_str().unwrap();
    let mut cur = api.get(name).await.unwrap();
    cur.data = o
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| !["apiVersion", "kind", "metadata"].contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect::<serde_json::Map<_, _>>()
        .into();
    api.replace(name, &PostParams::default(), &cur).await.unwrap();
}

async fn delete(c: &kube::Client, o: &Value) {
    let d = Discovery::new(c.clone()).run().await.unwrap();
    api_for(c, &d, o).await.delete(o["metadata"]["name"].as_str().unwrap(), &Default::default()).await.unwrap();
}

/// A cluster as a user has it: namespaces, RBAC, a CRD and a custom resource, a validating webhook with its
/// Service, a PVC, a Deployment with its ReplicaSet and Pod, a LoadBalancer Service, an Ingress, ConfigMaps
/// and Secrets with a history of updates and deletes.
pub async fn populate(c: &kube::Client) {
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced", "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer", "minimum": 0}, "color": {"type": "string"}}}, "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}},
                "subresources": {"status": {}},
                "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]}]}});
    let objs = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"team": "web"}}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ops"}}),
        crd,
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "blue", "namespace": "shop"}, "spec": {"size": 3, "color": "blue"}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "web", "namespace": "shop"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "reader", "namespace": "shop"}, "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "web-reader", "namespace": "shop"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"}, "subjects": [{"kind": "ServiceAccount", "name": "web", "namespace": "shop"}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "widget-viewer"}, "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get", "list", "watch"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "ops-widget-viewer"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "widget-viewer"}, "subjects": [{"kind": "Group", "name": "ops", "apiGroup": "rbac.authorization.k8s.io"}]}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hook", "namespace": "ops"}, "spec": {"selector": {"app": "hook"}, "ports": [{"port": 443, "targetPort": 8443}]}}),
        // a webhook on a kind nothing in the tests creates, so an unreachable backend never blocks the test
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "gadget-policy"},
            "webhooks": [{"name": "gadgets.example.com", "sideEffects": "None", "admissionReviewVersions": ["v1"], "failurePolicy": "Fail",
                "clientConfig": {"service": {"namespace": "ops", "name": "hook", "path": "/validate"}},
                "rules": [{"apiGroups": ["example.com"], "apiVersions": ["v1"], "resources": ["gadgets"], "operations": ["CREATE"]}]}]}),
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "shop"}, "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "standard", "resources": {"requests": {"storage": "1Gi"}}}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-config", "namespace": "shop"}, "data": {"MODE": "production", "nginx.conf": "server {\n  listen 80;\n}\n"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "rotating", "namespace": "shop"}, "data": {"generation": "1"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "temp", "namespace": "shop"}, "data": {"x": "y"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"}, "type": "Opaque", "stringData": {"password": "first"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "old", "namespace": "shop"}, "type": "Opaque", "stringData": {"token": "gone"}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"serviceAccountName": "web", "containers": [{"name": "web", "image": "docker.io/library/nginx:1.27", "envFrom": [{"configMapRef": {"name": "web-config"}}], "env": [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}], "volumeMounts": [{"name": "data", "mountPath": "/data"}]}], "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}}}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"}, "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 80}]}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web", "namespace": "shop"}, "spec": {"ingressClassName": "nginx", "rules": [{"host": "shop.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}),
        json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "shop-high"}, "value": 1000, "description": "checkout"}),
    ];
    create(c, &objs).await;
    // what the controllers of a live cluster would have made: a ReplicaSet and a Pod, owned
    let d = Discovery::new(c.clone()).run().await.unwrap();
    let dep = api_for(c, &d, &objs[17]).await.get("web").await.unwrap();
    let dep_uid = dep.metadata.uid.clone().unwrap();
    let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-5d9c", "namespace": "shop", "labels": {"app": "web", "pod-template-hash": "5d9c"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": dep_uid, "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d9c"}}, "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": "5d9c"}}, "spec": {"containers": [{"name": "web", "image": "docker.io/library/nginx:1.27"}]}}}});
    create(c, std::slice::from_ref(&rs)).await;
    let rs_uid = api_for(c, &d, &rs).await.get("web-5d9c").await.unwrap().metadata.uid.unwrap();
    create(c, &[json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-5d9c-abcde", "namespace": "shop", "labels": {"app": "web", "pod-template-hash": "5d9c"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d9c", "uid": rs_uid, "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"containers": [{"name": "web", "image": "docker.io/library/nginx:1.27"}]}})]).await;
    // history: updates and deletes
    for g in 2..=4 {
        replace(c, &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "rotating", "namespace": "shop"}, "data": {"generation": g.to_string()}})).await;
    }
    for p in ["c2Vjb25k", "dGhpcmQ="] {
        replace(c, &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"}, "type": "Opaque", "data": {"password": p}})).await;
    }
    delete(c, &objs[14]).await; // ConfigMap temp
    delete(c, &objs[16]).await; // Secret old
                                // the old load balancer's address, as the cloud controller would have set it
    let svc: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(c.clone(), "shop");
    svc.patch_status(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": [{"hostname": "old-lb.example.com"}]}}})),
    )
    .await
    .unwrap();
}

/// The user objects `populate` leaves, as they appear in the bundle (the ReplicaSet and Pod are remade by the
/// Deployment's controller on the target).
const EXPECTED: &[&str] = &[
    "Namespace shop",
    "Namespace ops",
    "apiextensions.k8s.io/CustomResourceDefinition widgets.example.com",
    "example.com/Widget shop/blue",
    "ServiceAccount shop/web",
    "rbac.authorization.k8s.io/Role shop/reader",
    "rbac.authorization.k8s.io/RoleBinding shop/web-reader",
    "rbac.authorization.k8s.io/ClusterRole widget-viewer",
    "rbac.authorization.k8s.io/ClusterRoleBinding ops-widget-viewer",
    "Service ops/hook",
    "admissionregistration.k8s.io/ValidatingWebhookConfiguration gadget-policy",
    "PersistentVolumeClaim shop/data",
    "ConfigMap shop/web-config",
    "ConfigMap shop/rotating",
    "Secret shop/db",
    "apps/Deployment shop/web",
    "Service shop/web",
    "networking.k8s.io/Ingress shop/web",
    "scheduling.k8s.io/PriorityClass shop-high",
];

fn rules() -> Rules {
    Rules::from_yaml("storage_classes: {standard: gp3}\ningress_classes: {nginx: alb}\n").unwrap()
}

/// Every object of a cluster, by reference, with its resourceVersion.
async fn inventory(c: &kube::Client) -> BTreeMap<String, String> {
    let read = live::export(c, 500, &quiet()).await.unwrap();
    assert!(read.errors.is_empty(), "{:?}", read.errors);
    read.objects
        .iter()
        .map(|o| {
            let rv = o.get("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or_default().to_string();
            (o.obj_ref().to_string(), rv)
        })
        .collect()
}

fn snapshot(kube: &RealKube, dir: &Path) -> std::path::PathBuf {
    eksodus_testkit::workload::snapshot(kube, dir).expect("etcdctl snapshot save")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn export_apply_verify_and_recover_on_real_servers() {
    if !RealKube::available() {
        println!("skipped: {} is not set, no real API server on this machine", eksodus_testkit::realkube::BINARY_VAR);
        return;
    }
    let (src, dst) = tokio::join!(
        RealKube::start(Options { encryption_config: Some(ENCRYPTION.into()), ..Default::default() }),
        RealKube::start(Options::default())
    );
    let (src, mut dst) = (src.unwrap(), dst.unwrap());
    let (sc, mut dc) = (src.client().await.unwrap(), dst.client().await.unwrap());
    populate(&sc).await;
    let empty = inventory(&dc).await;
    let source_before = inventory(&sc).await;

    // live export: the user's objects, nothing an empty server makes itself
    let read = live::export(&sc, 7, &quiet()).await.unwrap();
    assert!(read.errors.is_empty(), "{:?}", read.errors);
    let p = prepare(read, "live", &Filters::default(), &rules());
    let got: BTreeSet<String> = p.objects.iter().map(|(o, _)| o.obj_ref().to_string()).collect();
    let want: BTreeSet<String> = EXPECTED.iter().map(|s| s.to_string()).collect();
    assert_eq!(got, want, "exported {} objects; excluded: {:#?}", got.len(), p.report.excluded);
    for r in &got {
        assert!(!empty.contains_key(r), "{r} is made by every server, yet exported");
    }
    assert!(p.report.excluded.iter().any(|e| e.object.contains("ReplicaSet") && e.reason.contains("controller")));
    assert_eq!(p.report.load_balancers["shop/web"], vec!["old-lb.example.com"]);
    let pvc = &p.objects.iter().find(|(o, _)| o.kind() == "PersistentVolumeClaim").unwrap().0;
    assert!(pvc.get("/metadata/finalizers").is_none(), "finalizers are not carried over: {}", pvc.0);
    let dir = tempfile::tempdir().unwrap();
    bundle::write(dir.path(), &p).unwrap();
    let (objects, report) = bundle::read(dir.path()).unwrap();

    // apply: the webhook is held while its Service has no ready endpoint
    let target = TargetId::of(&dc, &dst.url()).await.unwrap();
    let journal = live::journal_path(dir.path(), &target);
    let opts = MigrateOptions { journal: Some(journal.clone()), wait: Duration::from_secs(2), ..Default::default() };
    let first = live::apply(&dc, &objects, &opts, &quiet()).await.unwrap();
    let failed: Vec<_> = first.objects.iter().filter(|o| matches!(o.outcome, Outcome::Failed { .. })).collect();
    assert!(failed.is_empty(), "{failed:#?}");
    let held: Vec<&str> =
        first.objects.iter().filter(|o| matches!(o.outcome, Outcome::Held { .. })).map(|o| o.object.as_str()).collect();
    assert_eq!(held, vec!["admissionregistration.k8s.io/ValidatingWebhookConfiguration gadget-policy"]);
    // an EndpointSlice with a ready endpoint releases it; everything else is in the journal
    create(
        &dc,
        &[json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "hook-1", "namespace": "ops", "labels": {"kubernetes.io/service-name": "hook"}},
            "addressType": "IPv4", "endpoints": [{"addresses": ["10.1.2.3"], "conditions": {"ready": true}}], "ports": [{"port": 8443, "protocol": "TCP"}]})],
    )
    .await;
    let second = live::apply(&dc, &objects, &opts, &quiet()).await.unwrap();
    assert!(second.is_success(), "{:#?}", second.objects);
    assert_eq!(second.counts().get("journaled"), Some(&(objects.len() - 1)), "{:?}", second.counts());

    // every object is on the target as the bundle has it
    let v = live::verify(&dc, &objects, &report.load_balancers, Duration::ZERO, &quiet()).await.unwrap();
    assert!(v.objects_match(), "missing {:?}, different {:?}, unreadable {:?}", v.missing, v.different, v.unreadable);
    assert_eq!(v.load_balancers["shop/web"].0, vec!["old-lb.example.com"]);

    // a re-apply of the unchanged bundle without a journal changes nothing
    let before = inventory(&dc).await;
    let again = live::apply(&dc, &objects, &MigrateOptions::default(), &quiet()).await.unwrap();
    assert!(again.is_success(), "{:#?}", again.objects);
    let after = inventory(&dc).await;
    let mine: BTreeSet<String> = objects.iter().map(|(o, _)| o.obj_ref().to_string()).collect();
    let moved: Vec<&String> =
        before.iter().filter(|(k, v)| mine.contains(*k) && after.get(*k) != Some(v)).map(|(k, _)| k).collect();
    assert!(moved.is_empty(), "a re-apply changed {moved:?}");

    // the source's etcd: the same objects as the live export, object for object
    let snap = snapshot(&src, dir.path());
    let keys = eksodus_etcd::encryption::Keys::from_config(ENCRYPTION).unwrap();
    let edir = tempfile::tempdir().unwrap();
    let export = Export::new(edir.path(), "etcd", Filters::default(), rules()).unwrap();
    eksodus_migrate::source::stream_etcd(&snap, None, Some(Arc::new(keys)), &mut |job| export.push_job(job)).unwrap();
    let done = export.finish().unwrap();
    assert!(done.report.errors.is_empty(), "{:#?}", done.report.errors);
    // the API server stores CRDs as apiextensions.k8s.io/v1beta1: converted to the v1 the target serves
    let crd = "apiextensions.k8s.io/CustomResourceDefinition widgets.example.com";
    assert_eq!(done.report.transforms[crd][0], bundle::SERVED_VERSION, "{:?}", done.report.transforms[crd]);
    let (from_etcd, _) = bundle::read(edir.path()).unwrap();
    let live_by: BTreeMap<String, &Value> = objects.iter().map(|(o, _)| (o.obj_ref().to_string(), &o.0)).collect();
    let etcd_by: BTreeMap<String, &Value> = from_etcd.iter().map(|(o, _)| (o.obj_ref().to_string(), &o.0)).collect();
    assert_eq!(etcd_by.keys().collect::<Vec<_>>(), live_by.keys().collect::<Vec<_>>());
    for (k, lv) in &live_by {
        let ev = etcd_by[k];
        if ev != *lv {
            let mut d = Vec::new();
            live::changed_paths(lv, ev, "", &mut d);
            panic!("{k} differs between the live and the etcd export at {d:?}\nlive: {lv}\netcd: {ev}");
        }
    }
    // the source was only read (the API server's own lease renews itself: leases are left out)
    let source_after = inventory(&sc).await;
    let moved: Vec<&String> = source_before
        .iter()
        .filter(|(k, v)| !k.starts_with("coordination.k8s.io/Lease") && source_after.get(*k) != Some(v))
        .map(|(k, _)| k)
        .collect();
    assert!(moved.is_empty(), "the export wrote to the source: {moved:?}");

    // the target recreated at the same URL: a new cluster, so a new journal, and everything is applied again
    dst.recreate().await.unwrap();
    dc = dst.client().await.unwrap();
    let v = live::verify(&dc, &objects, &report.load_balancers, Duration::ZERO, &quiet()).await.unwrap();
    assert_eq!(v.missing.len(), objects.len(), "verify names every missing object: {:?}", v.missing);
    assert!(!v.is_success());
    let target2 = TargetId::of(&dc, &dst.url()).await.unwrap();
    assert_eq!(target2.url, target.url);
    assert_ne!(target2.uid, target.uid);
    let opts = MigrateOptions {
        journal: Some(live::journal_path(dir.path(), &target2)),
        wait: Duration::from_secs(2),
        ..Default::default()
    };
    let third = live::apply(&dc, &objects, &opts, &quiet()).await.unwrap();
    let journaled = third.counts().get("journaled").copied().unwrap_or(0);
    assert_eq!(journaled, 0, "a recreated cluster gets everything again: {:?}", third.counts());
    assert!(third.objects.iter().filter(|o| matches!(o.outcome, Outcome::Created)).count() >= objects.len() - 1);
}
