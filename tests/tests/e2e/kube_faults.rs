//! The Kubernetes side through the testkit's fault proxy (429 with Retry-After, 5xx before and after the server
//! acted, dropped connections, lost responses), in front of the real API server when there is one: a migration
//! apply ends with the same journal and the same objects as a fault-free run, and concurrent aws-auth editors lose
//! nothing.

use std::collections::BTreeMap;

use eksodus_access::awsauth::{Edit, Mapping};
use eksodus_access::cluster::{AwsAuthApi, EditOptions};
use eksodus_core::events::EventSink;
use eksodus_e2e::Cluster;
use eksodus_migrate::bundle::prepare;
use eksodus_migrate::live::{self, MigrateOptions, TargetId};
use eksodus_migrate::object::Obj;
use eksodus_migrate::transform::Rules;
use eksodus_testkit::kubeproxy::{KubeFaults, KubeProxy};
use serde_json::{json, Value};

fn faults(seed: u64) -> KubeFaults {
    KubeFaults {
        seed,
        throttle_rate: 0.15,
        server_error_rate: 0.05,
        drop_rate: 0.03,
        lost_response_rate: 0.03,
        cut_watches_after: None,
    }
}

fn objects(ns: &str) -> Vec<Value> {
    let mut v = vec![json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})];
    for i in 0..25 {
        v.push(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i}"), "namespace": ns}, "data": {"i": i.to_string()}}));
    }
    for i in 0..5 {
        v.push(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("s-{i}"), "namespace": ns}, "type": "Opaque", "data": {"k": "dmFsdWU="}}));
        v.push(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": format!("d-{i}"), "namespace": ns}, "spec": {"replicas": 1, "selector": {"matchLabels": {"app": format!("d-{i}")}}, "template": {"metadata": {"labels": {"app": format!("d-{i}")}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}));
    }
    v
}

/// The objects of a namespace as the target holds them, server fields and the namespace name left out.
async fn state(c: &kube::Client, ns: &str) -> BTreeMap<String, Value> {
    let quiet = EventSink::discard();
    let read = live::export(c, 500, &quiet).await.unwrap();
    read.objects
        .into_iter()
        .filter(|o| o.namespace() == ns || (o.kind() == "Namespace" && o.name() == ns))
        .map(|o| {
            let mut v = o.0.clone();
            if let Some(m) = v["metadata"].as_object_mut() {
                for k in
                    ["uid", "resourceVersion", "creationTimestamp", "managedFields", "namespace", "name", "generation"]
                {
                    m.remove(k);
                }
                if let Some(Value::Object(l)) = m.get_mut("labels") {
                    l.remove("kubernetes.io/metadata.name");
                }
            }
            (format!("{}/{}", o.kind(), if o.kind() == "Namespace" { "ns" } else { o.name() }), v)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_through_faults_ends_as_a_fault_free_one() {
    let c = Cluster::start("kube-faults").await;
    let quiet = EventSink::discard();
    let base = c.namespace.clone();
    let (clean_ns, faulty_ns) = (format!("{base}-clean"), format!("{base}-faulty"));
    let bundle = |ns: &str| {
        let read =
            eksodus_migrate::source::Read { objects: objects(ns).into_iter().map(Obj).collect(), errors: vec![] };
        prepare(read, "test", &Default::default(), &Rules::default()).objects
    };
    let dir = tempfile::tempdir().unwrap();
    // fault-free
    let id = TargetId::of(&c.client, "direct").await.unwrap();
    let clean_journal = dir.path().join("clean.jsonl");
    let opts = MigrateOptions { journal: Some(clean_journal.clone()), ..Default::default() };
    let r = live::apply(&c.client, &bundle(&clean_ns), &opts, &quiet).await.unwrap();
    assert!(r.is_success(), "{:?}", r.counts());
    // through the faults
    let proxy = KubeProxy::start(c.client.clone(), faults(7)).await.unwrap();
    let pc = proxy.client().unwrap();
    assert_eq!(TargetId::of(&pc, "direct").await.unwrap(), id);
    let faulty_journal = dir.path().join("faulty.jsonl");
    let opts = MigrateOptions { journal: Some(faulty_journal.clone()), ..Default::default() };
    let r = live::apply(&pc, &bundle(&faulty_ns), &opts, &quiet).await.unwrap();
    assert!(
        r.is_success(),
        "{:?}",
        r.objects
            .iter()
            .filter(|o| !matches!(
                o.outcome,
                live::Outcome::Created | live::Outcome::Applied | live::Outcome::Unchanged
            ))
            .collect::<Vec<_>>()
    );
    assert!(proxy.stats().faults >= 5, "only {:?}", proxy.stats());
    // the same journal (object by object, with the same content hashes) and the same objects
    let journal = |p: &std::path::Path, ns: &str| -> Vec<String> {
        let mut l: Vec<String> = std::fs::read_to_string(p).unwrap().lines().map(|l| l.replace(ns, "NS")).collect();
        l.sort();
        l
    };
    let (a, b) = (journal(&clean_journal, &clean_ns), journal(&faulty_journal, &faulty_ns));
    assert_eq!(a.len(), objects("x").len());
    // content hashes include the namespace name: compare the objects named
    let names = |l: &[String]| -> Vec<String> {
        l.iter().map(|x| serde_json::from_str::<Value>(x).unwrap()["object"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(names(&a), names(&b));
    assert_eq!(state(&c.client, &clean_ns).await, state(&c.client, &faulty_ns).await);
    // and a verify through the faults finds everything
    let v =
        live::verify(&pc, &bundle(&faulty_ns), &Default::default(), std::time::Duration::ZERO, &quiet).await.unwrap();
    assert!(v.objects_match(), "{:?} {:?}", v.missing, v.different);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_auth_editors_lose_nothing_through_faults() {
    let c = Cluster::start("kube-faults-awsauth").await;
    let proxy = KubeProxy::start(c.client.clone(), faults(11)).await.unwrap();
    let api = AwsAuthApi::in_namespace(proxy.client().unwrap(), &c.namespace);
    let tasks = (0..20).map(|i| {
        let api = api.clone();
        tokio::spawn(async move {
            let m = Mapping::role(
                &format!("arn:aws:iam::111122223333:role/team-{i}"),
                &format!("team-{i}"),
                &[&format!("team-{i}")],
            );
            api.apply_edits(&[Edit::Upsert(m)], &EditOptions { max_attempts: 200, ..Default::default() }).await.unwrap()
        })
    });
    for t in tasks {
        t.await.unwrap();
    }
    let direct = AwsAuthApi::in_namespace(c.client.clone(), &c.namespace);
    let auth = direct.read().await.unwrap();
    assert_eq!(auth.mappings.len(), 20, "every editor's mapping is there");
    assert!(proxy.stats().faults > 0);
}

/// Windows IP address management is merged into the VPC CNI's ConfigMap: made when missing, a second run
/// writes nothing, the keys the addon and the user wrote stay, and a writer racing it through faults loses
/// nothing (both sides write on the resourceVersion they read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_ipam_is_read_merged_and_written_beside_everyone_elses_keys() {
    use eksodus::cluster::kube_side::{enable_windows_ipam, VPC_CNI_CONFIGMAP, WINDOWS_IPAM_KEY};
    use k8s_openapi::api::core::v1::ConfigMap;
    let nc = eksodus_testkit::workload::NewCluster::start(true).await.unwrap();
    println!("on {}", nc.describe());
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(nc.client.clone(), "kube-system");
    assert!(enable_windows_ipam(&nc.client).await.unwrap(), "made when missing");
    assert!(!enable_windows_ipam(&nc.client).await.unwrap(), "on already: nothing written");
    let data = api.get(VPC_CNI_CONFIGMAP).await.unwrap().data.unwrap();
    assert_eq!(data.get(WINDOWS_IPAM_KEY).map(String::as_str), Some("true"));

    // as the VPC CNI addon writes it (Windows IPAM off), with a key of the user's that a racer keeps bumping
    api.delete(VPC_CNI_CONFIGMAP, &Default::default()).await.unwrap();
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": VPC_CNI_CONFIGMAP, "namespace": "kube-system"},
        "data": {"enable-network-policy-controller": "false", WINDOWS_IPAM_KEY: "false", "enable-windows-prefix-delegation": "false", "mine": "0"},
    }))
    .unwrap();
    api.create(&Default::default(), &cm).await.unwrap();
    let proxy = KubeProxy::start(nc.client.clone(), faults(21)).await.unwrap();
    let racer = {
        let api = api.clone();
        tokio::spawn(async move {
            for i in 1..=30 {
                loop {
                    let mut cur = api.get(VPC_CNI_CONFIGMAP).await.unwrap();
                    cur.metadata.managed_fields = None;
                    cur.data.get_or_insert_with(Default::default).insert("mine".into(), i.to_string());
                    match api.replace(VPC_CNI_CONFIGMAP, &Default::default(), &cur).await {
                        Ok(_) => break,
                        Err(kube::Error::Api(e)) if e.code == 409 => continue,
                        Err(e) => panic!("racer: {e}"),
                    }
                }
            }
        })
    };
    enable_windows_ipam(&proxy.client().unwrap()).await.unwrap();
    racer.await.unwrap();
    let data = api.get(VPC_CNI_CONFIGMAP).await.unwrap().data.unwrap();
    assert_eq!(data.get(WINDOWS_IPAM_KEY).map(String::as_str), Some("true"), "{data:?}");
    assert_eq!(data.get("mine").map(String::as_str), Some("30"), "the racer's last write stays");
    assert_eq!(data.get("enable-windows-prefix-delegation").map(String::as_str), Some("false"));
    assert_eq!(data.len(), 4, "{data:?}");
}
