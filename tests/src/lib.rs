//! Shared harness of the end-to-end tests in `tests/tests/`: an isolated emulator account per test, and the
//! same plan → apply path that `cargo xtask net apply` takes.

// Tests say on stdout which Kubernetes server they ran on, and when they skip and why.
#![allow(clippy::print_stdout)]

use aws_sdk_ec2::Client;
use eksodus_core::aws::AwsTarget;
use eksodus_core::engine::{ApplyOptions, ApplyReport, Engine};
use eksodus_core::events::EventSink;
use eksodus_core::plan::Plan;
use eksodus_core::spec::EnvironmentSpec;
use eksodus_net::ec2::Network;
use eksodus_testkit::{FaultConfig, LocalAws};

/// A fresh emulator account behind a fault proxy, and an EC2 client pointed at it.
pub struct Env {
    /// The emulator (proxy stats, fault settings).
    pub aws: LocalAws,
    /// EC2 client through the proxy.
    pub ec2: Client,
    /// The SDK configuration (for the caller keyed to this emulator account's proxy).
    pub conf: aws_config::SdkConfig,
}

impl Env {
    /// Starts one with the given faults.
    pub async fn start(faults: FaultConfig) -> Env {
        let aws = LocalAws::start(faults).await.expect("local AWS emulator");
        let conf = AwsTarget::local("us-east-1", &aws.endpoint()).load().await;
        let ec2 = Client::new(&conf);
        Env { aws, ec2, conf }
    }

    /// The network reconciler for `spec`.
    pub fn network(&self, spec: &EnvironmentSpec) -> Network {
        Network::new(self.ec2.clone(), spec)
            .with_retry(ApplyOptions::fast())
            .with_calls(eksodus_core::aws::Calls::new("ec2", &self.conf))
    }

    /// Plans and applies `spec`'s network once; returns the report (which may hold failures).
    pub async fn apply(&self, spec: &EnvironmentSpec) -> Result<ApplyReport, eksodus_net::Error> {
        let net = self.network(spec);
        let plan = net.plan(spec).await?;
        Ok(Engine::new(ApplyOptions::fast()).apply(&plan, &net, &EventSink::discard()).await?)
    }

    /// Plans and applies the destruction of `spec`'s network once.
    pub async fn destroy(&self, spec: &EnvironmentSpec) -> Result<ApplyReport, eksodus_net::Error> {
        let net = self.network(spec);
        let plan = net.destroy_plan().await?;
        Ok(Engine::new(ApplyOptions::fast()).apply(&plan, &net, &EventSink::discard()).await?)
    }

    /// The current plan.
    pub async fn plan(&self, spec: &EnvironmentSpec) -> Plan {
        self.network(spec).plan(spec).await.expect("plan")
    }

    /// Every VPC, subnet, NAT gateway (not deleted) and Elastic IP in the account, tagged or not, except the
    /// default VPC and its subnets: what a duplicate or a leak would show up in.
    pub async fn inventory(&self) -> Inventory {
        let vpcs = self.ec2.describe_vpcs().send().await.unwrap();
        let vpc_ids: Vec<String> = vpcs
            .vpcs()
            .iter()
            .filter(|v| v.is_default() != Some(true))
            .filter_map(|v| v.vpc_id().map(String::from))
            .collect();
        let subnets = self.ec2.describe_subnets().send().await.unwrap();
        let nats = self.ec2.describe_nat_gateways().send().await.unwrap();
        let eips = self.ec2.describe_addresses().send().await.unwrap();
        let igws = self.ec2.describe_internet_gateways().send().await.unwrap();
        Inventory {
            vpcs: vpc_ids.len(),
            subnets: subnets
                .subnets()
                .iter()
                .filter(|s| s.vpc_id().is_some_and(|v| vpc_ids.iter().any(|x| x == v)))
                .count(),
            nat_gateways: nats
                .nat_gateways()
                .iter()
                .filter(|n| !matches!(n.state().map(|s| s.as_str()), Some("deleted") | Some("deleting")))
                .count(),
            eips: eips.addresses().len(),
            internet_gateways: igws.internet_gateways().len(),
        }
    }
}

impl Env {
    /// The associated IPv6 blocks of the non-default VPCs, and of their subnets: a block associated twice
    /// after a lost answer shows up here.
    pub async fn ipv6_blocks(&self) -> (usize, usize) {
        let vpcs = self.ec2.describe_vpcs().send().await.unwrap();
        let mine: Vec<&aws_sdk_ec2::types::Vpc> = vpcs.vpcs().iter().filter(|v| v.is_default() != Some(true)).collect();
        let live = |s: Option<&str>| matches!(s, Some("associated") | Some("associating"));
        let vpc_blocks = mine
            .iter()
            .flat_map(|v| v.ipv6_cidr_block_association_set())
            .filter(|a| live(a.ipv6_cidr_block_state().and_then(|s| s.state()).map(|s| s.as_str())))
            .count();
        let subnets = self.ec2.describe_subnets().send().await.unwrap();
        let subnet_blocks = subnets
            .subnets()
            .iter()
            .filter(|s| mine.iter().any(|v| v.vpc_id() == s.vpc_id()))
            .flat_map(|s| s.ipv6_cidr_block_association_set())
            .filter(|a| live(a.ipv6_cidr_block_state().and_then(|s| s.state()).map(|s| s.as_str())))
            .count();
        (vpc_blocks, subnet_blocks)
    }

    /// VPC endpoints not deleted, in the whole account.
    pub async fn live_endpoints(&self) -> usize {
        let r = self.ec2.describe_vpc_endpoints().send().await.unwrap();
        r.vpc_endpoints()
            .iter()
            .filter(|e| !matches!(e.state().map(|s| s.as_str()), Some("deleted") | Some("deleting")))
            .count()
    }
}

/// Counts of the resources duplicates and leaks would show up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inventory {
    /// Non-default VPCs.
    pub vpcs: usize,
    /// Subnets in those VPCs.
    pub subnets: usize,
    /// NAT gateways not deleted.
    pub nat_gateways: usize,
    /// Elastic IPs.
    pub eips: usize,
    /// Internet gateways.
    pub internet_gateways: usize,
}

/// Parses and structurally checks a spec.
pub fn spec(yaml: &str) -> EnvironmentSpec {
    EnvironmentSpec::from_yaml(yaml).expect("spec parses")
}

/// Three zones, NAT per zone, custom networking: every resource kind of the network component.
pub const FULL: &str = "
name: e2e
region: us-east-1
tags: {team: platform}
network:
  cidr: 10.20.0.0/16
  azs: 3
  nat: per-az
  cni:
    mode: prefix-delegation
    custom_networking: {secondary_cidr: 100.64.0.0/16}
";

/// Two zones, one NAT: the smaller spec used where many runs are needed.
pub const SMALL: &str = "
name: small
region: us-east-1
network:
  cidr: 10.30.0.0/20
  azs: 2
  nat: single
";

/// A Kubernetes cluster for a test: the testkit's real API server when `EKSODUS_KUBE_APISERVER` names the
/// binary (what CI does), else the real cluster a kubeconfig variable names, else a fresh fake API server.
/// Tests work in their own throw-away namespace either way, and say on stdout which server they ran on.
pub struct Cluster {
    /// Client for it.
    pub client: kube::Client,
    /// The fake server, when on neither a real server nor a real cluster.
    pub fake: Option<eksodus_testkit::kubeapi::FakeKube>,
    /// The testkit's real API server (shared by the tests of this binary), when on one.
    pub real: Option<std::sync::Arc<eksodus_testkit::realkube::SharedKube>>,
    /// The test's namespace.
    pub namespace: String,
}

/// Which server the Kubernetes-side tests run on: `real` (testkit), `external` (a kubeconfig) or `fake`.
pub fn kube_kind() -> &'static str {
    if eksodus_testkit::realkube::RealKube::available() {
        "real"
    } else if std::env::var_os("EKSODUS_TEST_KUBECONFIG").is_some() {
        "external"
    } else {
        "fake"
    }
}

impl Cluster {
    /// Connects (or starts a server) and creates a namespace named after `test`.
    pub async fn start(test: &str) -> Cluster {
        Self::start_with(test, "EKSODUS_TEST_KUBECONFIG").await
    }

    /// Like [`Cluster::start`]; `env_var` names the kubeconfig variable of an external cluster, and a name
    /// ending in `_TARGET` picks the second real server (the migration target).
    pub async fn start_with(test: &str, env_var: &str) -> Cluster {
        use eksodus_testkit::realkube::RealKube;
        let slot = if env_var.ends_with("_TARGET") { "target" } else { "source" };
        let (client, fake, real) = if RealKube::available() {
            let shared = RealKube::shared(slot).await.expect("real API server");
            let client = shared.get().client().await.expect("client");
            println!("[{test}] on the real API server ({slot}, {})", shared.get().url());
            (client, None, Some(shared))
        } else if let Ok(path) = std::env::var(env_var) {
            let kc = kube::config::Kubeconfig::read_from(&path).expect("readable kubeconfig");
            let conf = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.expect("kubeconfig");
            println!("[{test}] on the cluster {env_var} names");
            (kube::Client::try_from(conf).expect("client"), None, None)
        } else {
            let fake = eksodus_testkit::kubeapi::FakeKube::start().await.expect("fake API server");
            let conf = kube::Config::new(fake.url().parse().expect("url"));
            println!(
                "[{test}] on the fake API server ({} not set: no real API server here)",
                eksodus_testkit::realkube::BINARY_VAR
            );
            (kube::Client::try_from(conf).expect("client"), Some(fake), None)
        };
        let namespace = unique_name(&format!("eksodus-test-{test}"));
        create_namespace(&client, &namespace).await;
        Cluster { client, fake, real, namespace }
    }

    /// Whether this is a real API server (the testkit's or an external cluster's).
    pub fn is_real(&self) -> bool {
        self.fake.is_none()
    }

    /// Deletes the test namespace (on a real cluster this matters).
    pub async fn cleanup(self) {
        use k8s_openapi::api::core::v1::Namespace;
        let _ = kube::Api::<Namespace>::all(self.client.clone()).delete(&self.namespace, &Default::default()).await;
    }
}

/// `prefix-` and a suffix unique in this run (names of namespaces and cluster-scoped objects on shared servers).
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let suffix = (std::process::id() ^ t).wrapping_add(N.fetch_add(1, Ordering::SeqCst) * 7919) % 0xffffff;
    format!("{prefix}-{suffix:x}")
}

/// Creates a namespace.
pub async fn create_namespace(client: &kube::Client, name: &str) {
    use k8s_openapi::api::core::v1::Namespace;
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
    kube::Api::<Namespace>::all(client.clone()).create(&Default::default(), &ns).await.expect("create test namespace");
}
