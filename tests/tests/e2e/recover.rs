//! Disaster recovery end to end: a lost cluster's etcd snapshot (taken from a real API server holding the
//! story's workload, or the committed fixture where the machine has none) recovered onto a new environment on
//! the emulator whose Kubernetes side is a real API server (or the fake): plan first, then every phase; the
//! old aws-auth's people get access entries, every object is verified, the DNS cutover table names old and new
//! addresses; a re-run does nothing; a run interrupted by a crash continues; a damaged snapshot is refused.

use std::path::{Path, PathBuf};

use eksodus::recover::{Phase, Recovery, RecoveryOptions};
use eksodus::{ApplyOptions, EventSink, KubeAccess};
use eksodus_core::aws::AwsTarget;
use eksodus_e2e::spec;
use eksodus_testkit::workload::{self, Controllers, NewCluster};
use eksodus_testkit::{FaultConfig, LocalAws};

/// The new environment: small, with access entries (so the old aws-auth becomes entries).
const SPEC: &str = r#"
name: reborn
region: us-east-1
network: {cidr: 10.70.0.0/16, azs: 2, nat: single}
access:
  authentication_mode: API_AND_CONFIG_MAP
cluster:
  version: "1.33"
  nodegroups:
    - {name: general, instance_types: [m5.large], min: 1, max: 3, desired: 2}
  addons:
    - {name: vpc-cni}
    - {name: kube-proxy}
    - {name: coredns}
"#;

/// The committed snapshot of the story's lost cluster (`cargo xtask record-recovery-fixture` remakes it).
pub fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/recovery/etcd.db")
}

async fn lost_snapshot(dir: &Path) -> PathBuf {
    if eksodus_testkit::realkube::RealKube::available() {
        println!("the lost cluster is a real API server; its snapshot is taken now");
        workload::lost_cluster_snapshot(dir).await.expect("the lost cluster's snapshot")
    } else {
        println!("no real API server: the lost cluster is the committed snapshot");
        fixture()
    }
}

fn options(snap: &Path, dir: &Path) -> RecoveryOptions {
    let mut o = RecoveryOptions::new(snap, dir.join("recovery"));
    o.encryption_config = Some(workload::ENCRYPTION.into());
    o.wait = std::time::Duration::from_secs(30);
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_cluster_is_recovered_onto_a_new_environment() {
    let dir = tempfile::tempdir().unwrap();
    let snap = lost_snapshot(dir.path()).await;
    let aws = LocalAws::start(FaultConfig::default()).await.unwrap();
    let conf = AwsTarget::local("us-east-1", &aws.endpoint()).load().await;
    let nc = NewCluster::start(true).await.unwrap();
    println!("the new cluster's Kubernetes side is {}", nc.describe());
    let _controllers = Controllers::start(nc.client.clone());
    let recovery = || {
        Recovery::new(spec(SPEC), &conf, options(&snap, dir.path()))
            .unwrap()
            .engine_options(ApplyOptions::fast())
            .kube(KubeAccess::Client(nc.client.clone()))
    };

    // the plan: nothing outside the recovery directory changes
    let plan = recovery().plan(&EventSink::discard()).await.unwrap();
    assert_eq!(aws.proxy.stats().mutations_applied(), 0, "planning writes nothing to AWS");
    assert!(plan.has_changes());
    assert!(!plan.inspection.is_damaged(), "{:?}", plan.inspection);
    let expected = workload::expected_after_recovery();
    assert_eq!(plan.bundle.objects, expected.len(), "{:#?}", plan.bundle);
    assert!(plan.bundle.lost.is_empty(), "{:?}", plan.bundle.lost);
    assert_eq!(plan.bundle.by_namespace["storefront"]["apps/Deployment"], 2);
    assert!(
        plan.access.granted["arn:aws:iam::123456789012:role/platform-admin"].contains("AmazonEKSClusterAdminPolicy")
    );
    assert!(plan.access.granted.contains_key("arn:aws:iam::123456789012:role/developers"));
    assert!(plan.access.not_carried.iter().any(|(who, _)| who.ends_with("role/old-nodes")), "{:?}", plan.access);
    assert!(plan.environment.plan.changes().any(|c| c.key == "eks/cluster"));

    // a crash in the middle of `up`: the next run continues
    aws.proxy.set_config(FaultConfig { crash_after_mutations: Some(25), ..aws.proxy.config() });
    assert!(recovery().run(&EventSink::discard()).await.is_err(), "the crash stops the run");
    aws.proxy.heal();
    let report = recovery().run(&EventSink::discard()).await.unwrap();
    assert!(report.is_success(), "{report:#?}");
    assert_eq!(report.recovered, expected.len());
    let phases: Vec<Phase> = report.phases.iter().map(|p| p.phase).collect();
    assert_eq!(phases, Phase::ALL.to_vec());
    let web = report.cutover.iter().find(|c| c.service == "storefront/web").expect("web in the cutover table");
    assert_eq!(web.old, vec![workload::old_address("storefront", "web")]);
    assert_eq!(web.new, vec!["web-storefront.new-lb.example.com"]);
    assert!(dir.path().join("recovery/report.json").exists());

    // Secrets were decrypted from aescbc and are readable on the new cluster
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(nc.client.clone(), "payments");
    let s = secrets.get("payments-api").await.unwrap();
    assert_eq!(s.data.unwrap()["API_KEY"].0, b"sk_live_demo_only");

    // the old admins have access entries on the new cluster
    let eks = aws_sdk_eks::Client::new(&conf);
    let entries = eks.list_access_entries().cluster_name("reborn").send().await.unwrap();
    let arns: Vec<&str> = entries.access_entries().iter().map(String::as_str).collect();
    assert!(arns.contains(&"arn:aws:iam::123456789012:role/platform-admin"), "{arns:?}");
    assert!(arns.contains(&"arn:aws:iam::123456789012:role/developers"), "{arns:?}");

    // a re-run changes nothing, in AWS or in the cluster
    aws.proxy.reset_stats();
    let before = versions(&nc.client).await;
    let again = recovery().run(&EventSink::discard()).await.unwrap();
    assert!(again.is_success());
    // every phase but verify (which checks again each time) was done before
    assert!(again.phases.iter().all(|p| p.skipped == (p.phase != Phase::Verify)), "{:?}", again.phases);
    assert!(!report.phases.iter().find(|p| p.phase == Phase::Up).unwrap().skipped, "the run that did up");
    assert_eq!(aws.proxy.stats().mutations_applied(), 0, "a finished recovery run again writes nothing");
    assert_eq!(versions(&nc.client).await, before, "a re-run changed objects in the new cluster");
    // an interruption inside apply (the journal of the apply phase and its record gone, objects in place):
    // the re-run applies nothing twice
    let journal: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("recovery/recovery.json")).unwrap()).unwrap();
    let mut j = journal.clone();
    j["done"].as_object_mut().unwrap().remove("apply");
    j["done"].as_object_mut().unwrap().remove("verify");
    std::fs::write(dir.path().join("recovery/recovery.json"), serde_json::to_vec(&j).unwrap()).unwrap();
    for f in std::fs::read_dir(dir.path().join("recovery/bundle")).unwrap() {
        let p = f.unwrap().path();
        if p.file_name().unwrap().to_string_lossy().starts_with("journal-") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let resumed = recovery().run(&EventSink::discard()).await.unwrap();
    assert!(resumed.is_success());
    assert_eq!(versions(&nc.client).await, before, "objects already in place were applied again");
    assert!(!recovery().plan(&EventSink::discard()).await.unwrap().has_changes());

    // down leaves nothing
    let env = eksodus::Environment::builder(recovery().spec().clone())
        .aws(&conf)
        .options(ApplyOptions::fast())
        .kube(KubeAccess::Client(nc.client.clone()))
        .build()
        .unwrap();
    let down = env.down(&EventSink::discard(), std::time::Duration::from_secs(5)).await.unwrap();
    assert!(down.remaining.is_empty(), "{:?}", down.remaining);
}

/// `resourceVersion` of every object of the workload's namespaces (and its cluster-scoped objects) in `c`.
async fn versions(c: &kube::Client) -> std::collections::BTreeMap<String, String> {
    use kube::api::{Api, DynamicObject};
    let d = kube::discovery::Discovery::new(c.clone()).run().await.unwrap();
    let mut out = std::collections::BTreeMap::new();
    for want in workload::expected_after_recovery() {
        let (gk, name) = want.split_once(' ').unwrap();
        let (group, kind) = gk.rsplit_once('/').unwrap_or(("", gk));
        let (ar, caps) = d
            .groups()
            .filter(|g| g.name() == group)
            .flat_map(|g| g.recommended_resources())
            .find(|(ar, _)| ar.kind == kind)
            .unwrap_or_else(|| panic!("{gk} not served"));
        let api: Api<DynamicObject> = match (caps.scope, name.split_once('/')) {
            (kube::discovery::Scope::Namespaced, Some((ns, _))) => Api::namespaced_with(c.clone(), ns, &ar),
            _ => Api::all_with(c.clone(), &ar),
        };
        let short = name.rsplit('/').next().unwrap();
        let o = api.get(short).await.unwrap_or_else(|e| panic!("{want}: {e}"));
        out.insert(want.clone(), o.metadata.resource_version.unwrap_or_default());
    }
    out
}

/// Bad input fails before any AWS call, naming the problem: no snapshot; the wrong encryption key (Secrets
/// cannot be read: listed by `plan`, refused by `run`); a spec that does not validate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_fails_before_any_aws_call() {
    let dir = tempfile::tempdir().unwrap();
    let aws = LocalAws::start(FaultConfig::default()).await.unwrap();
    let conf = AwsTarget::local("us-east-1", &aws.endpoint()).load().await;

    let missing = dir.path().join("no-such.db");
    let e = Recovery::new(spec(SPEC), &conf, options(&missing, dir.path())).unwrap_err().to_string();
    assert!(e.contains("no-such.db"), "{e}");

    let mut o = options(&fixture(), &dir.path().join("wrong-key"));
    o.encryption_config = Some(
        workload::ENCRYPTION
            .replace("c2VjcmV0LWtleS1vZi0zMi1ieXRlcy1mb3ItdGVzdHM=", "d3Jvbmcta2V5LW9mLTMyLWJ5dGVzLWZvci10ZXN0cyE="),
    );
    let r = Recovery::new(spec(SPEC), &conf, o).unwrap();
    let plan = r.plan(&EventSink::discard()).await.unwrap();
    assert_eq!(plan.bundle.lost.len(), 2, "both Secrets: {:?}", plan.bundle.lost);
    let e = r.run(&EventSink::discard()).await.unwrap_err().to_string();
    assert!(e.contains("cannot be read") && e.contains("payments-api"), "{e}");

    let e = eksodus::spec::from_str(&SPEC.replace("10.70.0.0/16", "10.70.0.0/28")).unwrap_err().to_string();
    assert!(e.contains("network.cidr"), "{e}");
    assert_eq!(aws.proxy.stats().mutations_applied(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_snapshot_is_refused_unless_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let damaged = dir.path().join("damaged.db");
    let mut bytes = std::fs::read(fixture()).unwrap();
    // the trailing sha256 `etcdctl snapshot save` appended no longer matches: the file changed after it was saved
    let at = bytes.len() - 5;
    bytes[at] ^= 0xff;
    std::fs::write(&damaged, &bytes).unwrap();
    let aws = LocalAws::start(FaultConfig::default()).await.unwrap();
    let conf = AwsTarget::local("us-east-1", &aws.endpoint()).load().await;
    let r = Recovery::new(spec(SPEC), &conf, options(&damaged, dir.path())).unwrap();
    let e = r.plan(&EventSink::discard()).await.unwrap_err().to_string();
    assert!(e.contains("inspect") && e.contains("damaged"), "{e}");
    assert!(!dir.path().join("recovery/bundle").exists(), "nothing exported");

    let mut o = options(&damaged, &dir.path().join("accepted"));
    o.accept_damage = true;
    let plan = Recovery::new(spec(SPEC), &conf, o).unwrap().plan(&EventSink::discard()).await.unwrap();
    assert!(plan.inspection.is_damaged());
    assert_eq!(aws.proxy.stats().mutations_applied(), 0);

    // a recovery directory belongs to one snapshot
    let other = Recovery::new(spec(SPEC), &conf, options(&fixture(), &dir.path().join("accepted"))).unwrap();
    let e = other.plan(&EventSink::discard()).await.unwrap_err().to_string();
    assert!(e.contains("another snapshot"), "{e}");
}
