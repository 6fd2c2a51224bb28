//! The facade's examples run to the end, as an embedder would run them: against the local emulator through the
//! standard AWS environment variables (`AWS_ENDPOINT_URL` and test credentials), nothing special-cased.

use std::path::{Path, PathBuf};
use std::process::Command;

use eksodus_testkit::{FaultConfig, LocalAws};

const EXAMPLES: [&str; 4] = ["plan_json", "up_and_down", "migrate_dir", "recover_from_etcd"];

/// The facade's examples: those `cargo test --all-targets` built beside this binary, or built now when this
/// test binary was built alone (building them with other features than the test run's would rebuild half the
/// dependency tree, so a build happens only when one is missing).
fn examples() -> PathBuf {
    // test binaries live in target/<profile>/deps; examples in target/<profile>/examples
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().join("examples");
    if EXAMPLES.iter().all(|e| dir.join(e).exists()) {
        return dir;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(cargo)
        .current_dir(&root)
        .args(["build", "-p", "eksodus", "--examples", "--message-format=short"])
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "building the examples: {}", String::from_utf8_lossy(&out.stderr));
    dir
}

fn run(bin: &Path, aws: &LocalAws, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin)
        .args(args)
        .env("AWS_ENDPOINT_URL", aws.endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("the example runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

const NETWORK_ONLY: &str = "name: example\nregion: us-east-1\nnetwork: {cidr: 10.90.0.0/16, azs: 2, nat: single}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_facade_examples_run_to_the_end() {
    let dir = examples();
    let work = tempfile::tempdir().unwrap();
    let spec = work.path().join("example.yaml");
    std::fs::write(&spec, NETWORK_ONLY).unwrap();
    let aws = LocalAws::start(FaultConfig::default()).await.unwrap();
    let spec_arg = spec.to_str().unwrap();

    // plan_json: changes pending -> exit 2, the plan as JSON
    let (code, out, err) = run(&dir.join("plan_json"), &aws, &[spec_arg]);
    assert_eq!(code, 2, "{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert!(plan["plan"]["steps"].as_array().is_some_and(|s| s.len() > 10), "{out}");

    // up_and_down: the whole cycle, nothing left
    let (code, out, err) = run(&dir.join("up_and_down"), &aws, &[spec_arg]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("down: 0 left"), "{out}");

    // migrate_dir: manifests to a bundle, offline
    let manifests = work.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(
        manifests.join("app.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: web, namespace: shop}\ndata: {MODE: production}\n",
    )
    .unwrap();
    let bundle = work.path().join("bundle");
    let (code, out, err) =
        run(&dir.join("migrate_dir"), &aws, &[manifests.to_str().unwrap(), bundle.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2 object(s)"), "{out}");
    assert!(bundle.join("manifest.json").exists());
    // ... and applied and verified on a cluster named by a kubeconfig context (a real API server where there is
    // one), as an embedder runs it
    let nc = eksodus_testkit::workload::NewCluster::start(true).await.unwrap();
    let (kubeconfig, context) = match &nc.real {
        Some(r) => (r.kubeconfig_path(), "real"),
        None => {
            let p = work.path().join("kubeconfig");
            let url = nc.fake.url();
            std::fs::write(&p, format!("apiVersion: v1\nkind: Config\nclusters: [{{name: fake, cluster: {{server: \"{url}\"}}}}]\nusers: [{{name: fake, user: {{}}}}]\ncontexts: [{{name: fake, context: {{cluster: fake, user: fake}}}}]\ncurrent-context: fake\n")).unwrap();
            (p, "fake")
        }
    };
    println!("migrate_dir applies to {}", nc.describe());
    let bundle2 = work.path().join("bundle2");
    let out = Command::new(dir.join("migrate_dir"))
        .current_dir(work.path())
        .args([manifests.to_str().unwrap(), bundle2.to_str().unwrap(), context])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("verified: 2 object(s)"), "{text}");
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(nc.client.clone(), "shop");
    assert_eq!(cms.get("web").await.unwrap().data.unwrap()["MODE"], "production");

    // recover_from_etcd: the plan of a recovery from the committed snapshot
    let recover_spec = work.path().join("recover.yaml");
    std::fs::write(
        &recover_spec,
        "name: reborn\nregion: us-east-1\nnetwork: {cidr: 10.91.0.0/16, azs: 2, nat: single}\ncluster:\n  version: \"1.33\"\n  nodegroups: [{name: general, instance_types: [m5.large]}]\n",
    )
    .unwrap();
    let snapshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/recovery/etcd.db");
    let out = Command::new(dir.join("recover_from_etcd"))
        .current_dir(work.path())
        .args([recover_spec.to_str().unwrap(), snapshot.to_str().unwrap()])
        .env("AWS_ENDPOINT_URL", aws.endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    // the Secrets are encrypted and the example gives no key: they are listed as lost, the rest is there
    assert!(text.contains("object(s) to recover, 2 lost; 2 principal(s) get access"), "{text}");
}
