//! The facade as an embedder uses it: a spec file of either format, and an environment built from the
//! embedder's own SDK configuration (SDK retries on, as `aws_config::defaults` gives them), whose lost create
//! responses must not make duplicates.

use aws_config::retry::RetryConfig;
use eksodus::{ApplyOptions, Environment, EventSink, KubeAccess};
use eksodus_testkit::proxy::Fault;
use eksodus_testkit::{FaultConfig, LocalAws};

const SPEC: &str = "name: embedded\nregion: us-east-1\nnetwork: {cidr: 10.80.0.0/16, azs: 2, nat: single}\n";

async fn vpcs(conf: &aws_config::SdkConfig) -> usize {
    let ec2 = aws_sdk_ec2::Client::new(conf);
    let out = ec2
        .describe_vpcs()
        .filters(aws_sdk_ec2::types::Filter::builder().name("tag:eksodus.io/environment").values("embedded").build())
        .send()
        .await
        .unwrap();
    out.vpcs().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedders_sdk_config_with_retries_makes_no_duplicate_on_a_lost_create() {
    let spec = eksodus::spec::from_str(SPEC).unwrap();
    let mut lost_creates = 0;
    for seed in 0..12 {
        let aws = LocalAws::start(FaultConfig { seed, lost_response_rate: 0.3, ..Default::default() }).await.unwrap();
        // what an embedder has: the default chain with the SDK's standard retries (a lost response is retried
        // blindly by the SDK, which would create a second VPC)
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(aws.endpoint())
            .credentials_provider(aws_credential_types::Credentials::new("testing", "testing", None, None, "test"))
            .retry_config(RetryConfig::standard().with_max_attempts(5))
            .load()
            .await;
        let env = Environment::builder(spec.clone())
            .aws(&conf)
            .options(ApplyOptions::fast())
            .kube(KubeAccess::None)
            .build()
            .unwrap();
        env.up(&EventSink::discard()).await.unwrap();
        let stats = aws.proxy.stats();
        let lost =
            stats.calls.iter().filter(|c| c.operation == "CreateVpc" && c.fault == Some(Fault::DroppedAfter)).count();
        lost_creates += lost;
        aws.proxy.heal();
        assert_eq!(vpcs(&conf).await, 1, "seed {seed}: one VPC, whatever was lost ({lost} CreateVpc responses)");
        assert!(env.plan().await.unwrap().is_converged());
        if lost_creates >= 2 {
            break;
        }
    }
    assert!(lost_creates >= 1, "no seed lost a CreateVpc response: the test proved nothing");
}

#[test]
fn eksctl_files_come_through_the_facade_validated() {
    let home_key = dirs_home().join(".ssh/id_rsa.pub");
    let default_key_missing = |e: &str| {
        let problems: Vec<&str> = e.lines().filter(|l| l.starts_with("  - ")).collect();
        !home_key.exists()
            && !problems.is_empty()
            && problems
                .iter()
                .all(|l| l.contains("ssh.public_key_file") && l.contains(".ssh/id_rsa.pub` cannot be read"))
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/eksodus-cluster/testdata/eksctl");
    // the files are read from a copy whose SSH key files are beside them (a key file is read when the spec
    // is: eksctl's `~/.ssh/...` names one on the user's machine)
    let here = tempfile::tempdir().unwrap();
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA7e3Xtwqc9C64YrLdSOCNHrhmaoZW7aI5XFFj4JGlpK e2e@eksodus";
    let mut imported = 0;
    let mut keys_read = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        if !eksodus_cluster::eksctl::is_eksctl(&text) {
            continue;
        }
        let text = text.replace("publicKeyPath: ~/.ssh/", "publicKeyPath: keys/");
        let copy = here.path().join(p.file_name().unwrap());
        std::fs::write(&copy, &text).unwrap();
        for line in text.lines().filter_map(|l| l.trim().strip_prefix("publicKeyPath: keys/")) {
            std::fs::create_dir_all(here.path().join("keys")).unwrap();
            std::fs::write(here.path().join("keys").join(line.trim()), format!("{key}\n")).unwrap();
        }
        match eksodus::spec::read(&copy) {
            Ok(f) => {
                assert_eq!(f.format, eksodus::spec::Format::Eksctl);
                let ssh = f.spec.cluster.iter().flat_map(|c| &c.nodegroups).filter_map(|n| n.ssh.as_ref());
                for s in ssh.filter(|s| s.key_name.is_empty()) {
                    assert_eq!((s.public_key.as_deref(), s.public_key_file.as_deref()), (Some(key), None));
                    keys_read += 1;
                }
                imported += 1;
            }
            Err(eksodus::Error::Unsupported { fields, .. }) => assert!(!fields.is_empty()),
            // `ssh.allow` without a key is eksctl's default key, ~/.ssh/id_rsa.pub on the user's machine: read
            // as eksctl reads it, and named when it is not there
            Err(e) if default_key_missing(&e.to_string()) => imported += 1,
            Err(e) => panic!("{}: {e}", p.display()),
        }
    }
    assert!(imported >= 5, "{imported}");
    assert!(keys_read >= 1, "no example's key file was read: the copy proved nothing");
}

/// The home directory, as a key file's `~/` is read.
fn dirs_home() -> std::path::PathBuf {
    std::env::var_os("HOME").map(std::path::PathBuf::from).unwrap_or_default()
}
