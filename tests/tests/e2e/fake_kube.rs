//! The fake API server behaves like kube-apiserver where eksodus depends on it, seen through kube-rs. The same
//! bodies run on the testkit's real API server when it is available; `kube_conformance` compares the two
//! request by request.

use eksodus_e2e::Cluster;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Error};
use serde_json::json;

fn cm(name: &str, data: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": "x"}}, "data": data})).unwrap()
}

fn reason(e: &Error) -> (u16, String) {
    match e {
        Error::Api(s) => (s.code, s.reason.clone()),
        other => panic!("not an API status: {other}"),
    }
}

#[tokio::test]
async fn writes_follow_apiserver_semantics() {
    let c = Cluster::start("semantics").await;
    let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), &c.namespace);
    let pp = PostParams::default();

    let created = api.create(&pp, &cm("a", json!({"k": "1"}))).await.unwrap();
    let rv1 = created.metadata.resource_version.clone().unwrap();
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
    assert_eq!(reason(&api.create(&pp, &cm("a", json!({}))).await.unwrap_err()), (409, "AlreadyExists".into()));
    assert_eq!(reason(&api.get("nope").await.unwrap_err()), (404, "NotFound".into()));

    // replace with the current resourceVersion works and bumps it; a stale one is a 409 Conflict
    let mut next = created.clone();
    next.data = Some([("k".to_string(), "2".to_string())].into());
    let replaced = api.replace("a", &pp, &next).await.unwrap();
    assert_ne!(replaced.metadata.resource_version.as_ref().unwrap(), &rv1);
    assert_eq!(reason(&api.replace("a", &pp, &next).await.unwrap_err()), (409, "Conflict".into()));

    // merge patch and JSON patch
    api.patch("a", &PatchParams::default(), &Patch::Merge(json!({"data": {"m": "merged"}}))).await.unwrap();
    let jp: json_patch::Patch =
        serde_json::from_value(json!([{"op": "add", "path": "/data/j", "value": "json"}])).unwrap();
    api.patch("a", &PatchParams::default(), &Patch::<()>::Json(jp)).await.unwrap();
    let got = api.get("a").await.unwrap().data.unwrap();
    assert_eq!((got["k"].as_str(), got["m"].as_str(), got["j"].as_str()), ("2", "merged", "json"));

    // server-side apply creates, then merges; dryRun stores nothing
    let ssa = PatchParams::apply("eksodus");
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}, "data": {"x": "1"}});
    let dry = PatchParams { dry_run: true, ..ssa.clone() };
    api.patch("b", &dry, &Patch::Apply(&body)).await.unwrap();
    assert!(api.get_opt("b").await.unwrap().is_none(), "dry run stored the object");
    api.patch("b", &ssa, &Patch::Apply(&body)).await.unwrap();
    api.patch(
        "b",
        &ssa,
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}, "data": {"y": "2"}})),
    )
    .await
    .unwrap();
    // a field its manager applies no more is removed (nobody else owns it)
    assert_eq!(api.get("b").await.unwrap().data.unwrap().len(), 1);

    // a namespaced object in a namespace that does not exist
    let missing: Api<ConfigMap> = Api::namespaced(c.client.clone(), "no-such-namespace-eksodus");
    assert_eq!(reason(&missing.create(&pp, &cm("z", json!({}))).await.unwrap_err()).0, 404);

    // pagination with limit/continue, and label selectors
    for i in 0..7 {
        api.create(&pp, &cm(&format!("p{i}"), json!({}))).await.unwrap();
    }
    let mut seen = 0;
    let mut lp = ListParams::default().labels("app=x").limit(3);
    loop {
        let page = api.list(&lp).await.unwrap();
        seen += page.items.len();
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(cont) => lp = lp.continue_token(&cont),
            None => break,
        }
    }
    assert_eq!(seen, 8, "a and p0..p6 carry app=x (b was applied without labels)");
    assert!(api.list(&ListParams::default().labels("app=y")).await.unwrap().items.is_empty());

    api.delete("a", &Default::default()).await.unwrap();
    assert_eq!(reason(&api.delete("a", &Default::default()).await.unwrap_err()), (404, "NotFound".into()));
    c.cleanup().await;
}

#[tokio::test]
async fn discovery_lists_core_and_groups() {
    let c = Cluster::start("discovery").await;
    let d = kube::Discovery::new(c.client.clone()).run().await.unwrap();
    let groups: Vec<String> = d.groups().map(|g| g.name().to_string()).collect();
    for g in ["", "apps", "rbac.authorization.k8s.io"] {
        assert!(groups.iter().any(|x| x == g), "{g:?} missing from {groups:?}");
    }
    assert!(d.groups().any(|g| g.recommended_resources().iter().any(|(r, _)| r.kind == "ConfigMap")));
    c.cleanup().await;
}
