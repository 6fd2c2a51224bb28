//! The whole environment on the emulator: up (network, IAM, cluster, nodegroups, addons, access), an empty
//! plan, an upgrade across two minor versions, down with nothing tagged left; crash-resume of `up` and of
//! `upgrade` at every write; bad specs refused before any write.

use std::time::Duration;

use eksodus_cluster::environment::{Environment, KubeAccess};
use eksodus_core::aws::AwsTarget;
use eksodus_core::engine::ApplyOptions;
use eksodus_core::events::EventSink;
use eksodus_core::spec::EnvironmentSpec;
use eksodus_e2e::spec;
use eksodus_testkit::{FaultConfig, LocalAws};
use k8s_openapi::api::core::v1::Service;

/// A small but complete environment: 2 zones, one NAT, custom networking, a nodegroup, four addons (two with
/// IRSA roles), a Pod Identity association and an access entry.
pub const ENV: &str = r#"
name: envtest
region: us-east-1
tags: {team: platform}
network:
  cidr: 10.60.0.0/16
  azs: 2
  nat: single
  cni:
    mode: prefix-delegation
    custom_networking: {secondary_cidr: 100.64.0.0/20}
access:
  iam: {cni_irsa: true}
  authentication_mode: API_AND_CONFIG_MAP
  pod_identities:
    - {namespace: shop, name: checkout, policies: [arn:aws:iam::aws:policy/AmazonDynamoDBReadOnlyAccess]}
  entries:
    - principal_arn: arn:aws:iam::123456789012:role/platform-admins
      policies: [{policy: AmazonEKSClusterAdminPolicy}]
cluster:
  version: "1.31"
  logging: [api, audit]
  nodegroups:
    - {name: general, instance_types: [m5.large], min: 1, max: 3, desired: 2, labels: {tier: general}, imds_hop_limit: 1}
    - name: ops
      instance_types: [m5.large]
      min: 1
      max: 2
      desired: 1
      ssh: {public_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA7e3Xtwqc9C64YrLdSOCNHrhmaoZW7aI5XFFj4JGlpK e2e@eksodus", source_security_groups: [sg-0a1b2c3d]}
      iam: {well_known: [auto-scaler]}
  addons:
    - {name: vpc-cni}
    - {name: kube-proxy}
    - {name: coredns}
    - {name: aws-ebs-csi-driver, policies: [arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy]}
"#;

pub struct Setup {
    pub aws: LocalAws,
    pub conf: aws_config::SdkConfig,
    /// The cluster's API server: the testkit's fake (settable `/metrics`), or a real one.
    pub kube: eksodus_testkit::kubeapi::FakeKube,
    /// A real API server standing in for the cluster's, when the test asked for one and the machine has it.
    pub _real: Option<eksodus_testkit::realkube::RealKube>,
    pub client: kube::Client,
}

pub async fn setup(faults: FaultConfig) -> Setup {
    setup_kube(faults, false).await
}

/// Like [`setup`]; with `real`, the cluster's Kubernetes side is a real API server of its own (ENIConfigs are
/// cluster-scoped, so it is not shared) when the machine has one.
pub async fn setup_kube(faults: FaultConfig, real: bool) -> Setup {
    let aws = LocalAws::start(faults).await.expect("emulator");
    let conf = AwsTarget::local("us-east-1", &aws.endpoint()).load().await;
    let nc = eksodus_testkit::workload::NewCluster::start(real).await.expect("the cluster's API server");
    if real {
        println!("the cluster's Kubernetes side is {}", nc.describe());
    }
    Setup { aws, conf, kube: nc.fake, _real: nc.real, client: nc.client }
}

impl Setup {
    pub fn env(&self, spec: &EnvironmentSpec) -> Environment {
        Environment::new(&self.conf, spec.clone(), ApplyOptions::fast())
            .unwrap()
            .with_kube(KubeAccess::Client(self.client.clone()))
    }
}

pub fn with_version(s: &EnvironmentSpec, v: &str) -> EnvironmentSpec {
    let mut s = s.clone();
    s.cluster.as_mut().unwrap().version = v.into();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_plan_upgrade_down_leaves_nothing() {
    let s = spec(ENV);
    let st = setup_kube(FaultConfig { eks_pending_describes: 2, ..Default::default() }, true).await;
    let env = st.env(&s);
    let up = env.up(&EventSink::discard()).await.unwrap();
    assert!(up.rounds.len() >= 2, "IRSA roles and their addons need a second round");
    assert!(up.converged.is_converged());
    assert_eq!(up.eni_configs, vec!["us-east-1a", "us-east-1b"]);
    let found = env.eks.discover(&Default::default()).await.unwrap();
    let c = found.cluster.clone().unwrap();
    assert_eq!((c.version.as_str(), c.status.as_str()), ("1.31", "ACTIVE"));
    assert_eq!(found.nodegroups["general"].0, "1.31");
    assert_eq!(found.addons.len(), 4);
    let cni = found.observed.iter().find(|o| o.key == "eks/addon/vpc-cni").unwrap();
    assert!(cni.props["configuration"].as_str().unwrap().contains("ENABLE_PREFIX_DELEGATION"));
    assert!(cni.props["role_arn"].as_str().unwrap().ends_with("role/eksodus/envtest/envtest-kube-system-aws-node"));

    let again = env.plan().await.unwrap();
    assert!(again.is_converged(), "{:#?}", again.plan.changes().map(|c| (&c.id, &c.changes)).collect::<Vec<_>>());

    // a changed setting updates in place
    let mut changed = s.clone();
    let c = changed.cluster.as_mut().unwrap();
    c.logging = vec!["api".into()];
    c.nodegroups[0].desired = 3;
    let p = st.env(&changed).plan().await.unwrap();
    let ids: Vec<&str> = p.plan.changes().map(|c| c.key.as_str()).collect();
    assert_eq!(ids, vec!["eks/cluster", "eks/nodegroup/general"]);
    st.env(&changed).up(&EventSink::discard()).await.unwrap();
    let s = changed;

    // the spec asking two minors ahead is refused, naming the way
    let e = st.env(&with_version(&s, "1.33")).plan().await.unwrap_err().to_string();
    assert!(e.contains("cluster.version") && e.contains("upgrade --to 1.33"), "{e}");

    let up2 = env.upgrade("1.33", &EventSink::discard()).await.unwrap();
    assert_eq!(up2.preflights.len(), 2);
    assert!(up2.report.unwrap().is_success());
    let found = env.eks.discover(&Default::default()).await.unwrap();
    assert_eq!(found.cluster.unwrap().version, "1.33");
    assert_eq!(found.nodegroups["general"].0, "1.33");
    assert_eq!(found.addons["kube-proxy"], "v1.33.0-eksbuild.1");
    assert_eq!(found.addons["coredns"], "v1.12.1-eksbuild.2");
    let s133 = with_version(&s, "1.33");
    let p = st.env(&s133).plan().await.unwrap();
    assert!(p.is_converged(), "{:#?}", p.plan.changes().map(|c| (&c.id, &c.changes)).collect::<Vec<_>>());
    // upgrading again is a no-op
    assert!(env.upgrade("1.33", &EventSink::discard()).await.unwrap().plan.is_empty());

    // a LoadBalancer Service holds an AWS load balancer: down deletes it first
    let svc: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}
    }))
    .unwrap();
    kube::Api::<Service>::namespaced(st.client.clone(), "default").create(&Default::default(), &svc).await.unwrap();

    let down = st.env(&s133).down(&EventSink::discard(), Duration::from_secs(10)).await.unwrap();
    assert!(down.report.is_success(), "{:?}", down.report.failures().collect::<Vec<_>>());
    assert_eq!(down.cleanup.unwrap().services, vec!["default/web"]);
    assert!(down.remaining.is_empty(), "{:?}", down.remaining);
    let again = st.env(&s133).down(&EventSink::discard(), Duration::from_secs(1)).await.unwrap();
    assert!(again.plan.is_empty(), "down is idempotent");
    policy_covers_every_call(&st, &s133);
}

/// The IAM policy `access iam-policy` prints for the spec allows every call the proxy saw (up, upgrade, down).
fn policy_covers_every_call(st: &Setup, s: &EnvironmentSpec) {
    let allowed = eksodus_cluster::policy::actions(s);
    let seen = st.aws.proxy.stats().by_operation();
    assert!(seen.len() > 30, "{seen:?}");
    let missing: Vec<&String> = seen.keys().filter(|op| !allowed.contains(op.as_str())).collect();
    assert!(missing.is_empty(), "called but not in the policy: {missing:?}");
}

/// Writes a clean `up` makes.
async fn writes_of_clean_up(s: &EnvironmentSpec) -> usize {
    let st = setup(FaultConfig::default()).await;
    st.env(s).up(&EventSink::discard()).await.unwrap();
    st.aws.proxy.stats().mutations_applied()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_resumes_after_a_crash_at_every_kth_write() {
    let s = spec(ENV);
    let m = writes_of_clean_up(&s).await;
    assert!(m >= 40, "a clean up makes {m} writes");
    // every write in the EKS part (the network's are covered one by one in net_resilience), every 7th before
    let ks: Vec<u64> = (1..=m as u64).filter(|k| k % 7 == 0 || *k + 24 > m as u64).collect();
    for k in ks {
        let st = setup(FaultConfig { crash_after_mutations: Some(k), ..Default::default() }).await;
        let crashed = st.env(&s).up(&EventSink::discard()).await;
        assert!(crashed.is_err() || k >= m as u64, "k={k}: the crash must interrupt up");
        st.aws.proxy.heal();
        let env = st.env(&s);
        env.up(&EventSink::discard()).await.unwrap_or_else(|e| panic!("k={k}: re-run failed: {e}"));
        let p = env.plan().await.unwrap();
        assert!(p.is_converged(), "k={k}: {:?}", p.plan.changes().map(|c| &c.id).collect::<Vec<_>>());
        let found = env.eks.discover(&Default::default()).await.unwrap();
        assert_eq!((found.nodegroups.len(), found.addons.len()), (2, 4), "k={k}");
        let pairs = aws_sdk_ec2::Client::new(&st.conf).describe_key_pairs().send().await.unwrap();
        assert_eq!(pairs.key_pairs().len(), 1, "k={k}: one imported key pair");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_resumes_after_a_crash_at_every_write() {
    let s = spec(ENV);
    let mut k = 1;
    loop {
        let st = setup(FaultConfig::default()).await;
        let env = st.env(&s);
        env.up(&EventSink::discard()).await.unwrap();
        st.aws.proxy.set_config(FaultConfig { crash_after_mutations: Some(k), ..st.aws.proxy.config() });
        let crashed = env.upgrade("1.33", &EventSink::discard()).await;
        let finished = matches!(&crashed, Ok(r) if r.report.as_ref().is_some_and(|r| r.is_success()));
        st.aws.proxy.heal();
        let env = st.env(&s);
        let r = env.upgrade("1.33", &EventSink::discard()).await.unwrap_or_else(|e| panic!("k={k}: {e}"));
        assert!(r.report.is_none_or(|r| r.is_success()), "k={k}");
        let found = env.eks.discover(&Default::default()).await.unwrap();
        assert_eq!(found.cluster.unwrap().version, "1.33", "k={k}");
        assert_eq!(found.nodegroups["general"].0, "1.33", "k={k}");
        let p = st.env(&with_version(&s, "1.33")).plan().await.unwrap();
        assert!(p.is_converged(), "k={k}: {:?}", p.plan.changes().map(|c| &c.id).collect::<Vec<_>>());
        if finished {
            break;
        }
        k += 1;
    }
    assert!(k >= 6, "an upgrade across two minors makes {k} writes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_specs_fail_before_any_write() {
    let st = setup(FaultConfig::default()).await;
    let bad_version = ENV.replace("version: \"1.31\"", "version: \"1.27\"");
    let e = eksodus_core::spec::EnvironmentSpec::from_yaml(&bad_version)
        .map(|s| Environment::new(&st.conf, s, ApplyOptions::fast()).map(|_| ()))
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(e.contains("cluster.version") && e.contains("1.27"), "{e}");
    assert_eq!(st.aws.proxy.stats().total(), 0, "an unsupported version needs no AWS call");

    let not_offered = ENV.replace("{name: coredns}", "{name: coredns, version: v1.10.1-eksbuild.18}");
    let e = st.env(&spec(&not_offered)).plan().await.unwrap_err().to_string();
    assert!(
        e.contains("cluster.addons[2].version")
            && e.contains("not offered for Kubernetes 1.31")
            && e.contains("v1.11.4"),
        "{e}"
    );
    let unknown = ENV.replace("{name: coredns}", "{name: kube-dns}");
    let e = st.env(&spec(&unknown)).plan().await.unwrap_err().to_string();
    assert!(e.contains("cluster.addons[2].version") && e.contains("no addon `kube-dns`"), "{e}");
    assert_eq!(st.aws.proxy.stats().mutations_applied(), 0);

    // a skipped minor on an existing cluster: refused by plan, before any write
    st.env(&spec(ENV)).up(&EventSink::discard()).await.unwrap();
    st.aws.proxy.reset_stats();
    let e = st.env(&with_version(&spec(ENV), "1.33")).plan().await.unwrap_err().to_string();
    assert!(e.contains("skips 1 minor"), "{e}");
    let e = st.env(&spec(ENV)).upgrade("1.30", &EventSink::discard()).await.unwrap_err().to_string();
    assert!(e.contains("cannot go back"), "{e}");
    assert_eq!(st.aws.proxy.stats().mutations_applied(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_nodegroup_reports_its_health_issue() {
    let st = setup(FaultConfig { eks_fail: vec!["general".into()], ..Default::default() }).await;
    let e = st.env(&spec(ENV)).up(&EventSink::discard()).await.unwrap_err().to_string();
    assert!(e.contains("AsgInstanceLaunchFailures"), "{e}");
}

/// Encryption without a named key: eksodus makes one with an alias; `down` schedules its deletion instead of
/// deleting it; an `up` inside the window takes the same key back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_secrets_key_survives_down_until_its_window_ends() {
    let yaml =
        ENV.replace("  logging: [api, audit]\n", "  logging: [api, audit]\n  encryption: {deletion_window_days: 7}\n");
    let s = spec(&yaml);
    let st = setup(FaultConfig::default()).await;
    let env = st.env(&s);
    env.up(&EventSink::discard()).await.unwrap();
    let key = env.kms.discover().await.unwrap().pop().expect("the key");
    let found = env.eks.discover(&Default::default()).await.unwrap();
    let cluster = found.observed.iter().find(|o| o.key == "eks/cluster").unwrap();
    assert_eq!(cluster.props["encryption_key"], key.physical_id.as_str());
    assert!(env.plan().await.unwrap().is_converged());

    let down = env.down(&EventSink::discard(), Duration::from_secs(5)).await.unwrap();
    assert!(down.report.is_success(), "{:?}", down.report.failures().collect::<Vec<_>>());
    assert!(down.remaining.is_empty(), "{:?} {:?}", down.remaining, env.kms.discover().await.unwrap());
    let note = down.report.leftovers.iter().find(|l| l.resource.contains(&key.physical_id)).expect("a note on the key");
    assert!(note.reason.contains("7 days"), "{}", note.reason);
    assert!(env.destroy_plan().await.unwrap().plan.is_empty(), "a pending key is not planned again");

    env.up(&EventSink::discard()).await.unwrap();
    let again = env.kms.discover().await.unwrap().pop().unwrap();
    assert_eq!(again.physical_id, key.physical_id, "the same key, taken back");
    assert_eq!(again.props["state"], "Enabled");
    env.down(&EventSink::discard(), Duration::from_secs(5)).await.unwrap();
    policy_covers_every_call(&st, &s);
}

/// The upgrade preflight reads the API server's deprecated-API gauge and blocks a step that removes an API
/// clients still use; nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preflight_blocks_on_a_removed_api_still_in_use() {
    let s = spec(ENV);
    let st = setup(FaultConfig::default()).await;
    let env = st.env(&s);
    env.up(&EventSink::discard()).await.unwrap();
    st.kube.set_metrics(
        "apiserver_requested_deprecated_apis{group=\"flowcontrol.apiserver.k8s.io\",removed_release=\"1.32\",resource=\"flowschemas\",subresource=\"\",version=\"v1beta3\"} 1\n",
    );
    st.aws.proxy.reset_stats();
    let e = env.upgrade("1.33", &EventSink::discard()).await.unwrap_err().to_string();
    assert!(
        e.contains("upgrade to 1.32 blocked") && e.contains("flowcontrol.apiserver.k8s.io/v1beta3 flowschemas"),
        "{e}"
    );
    assert_eq!(st.aws.proxy.stats().mutations_applied(), 0);
    st.kube.set_metrics(eksodus_testkit::kubeapi::DEFAULT_METRICS);
    let (pre, _, _) = env.upgrade_plan("1.33").await.unwrap();
    let check = pre[0].checks.iter().find(|c| c.name == "deprecated-apis").unwrap();
    assert_eq!(check.status, eksodus_cluster::upgrade::Status::Pass);
}

/// A nodegroup's own tags, SSH (EKS remote access) and node role with extra policies are created as asked and
/// read back equal: a re-plan is empty; a new SSH key replaces the nodegroup (EKS takes remote access only at
/// creation); down removes the nodegroup's role too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodegroup_tags_ssh_and_roles_are_created_and_read_back() {
    let yaml = ENV.replace(
        "    - {name: general, instance_types: [m5.large], min: 1, max: 3, desired: 2, labels: {tier: general}, imds_hop_limit: 1}\n",
        // no launch template here: EKS takes remote access only without one
        "    - {name: general, instance_types: [m5.large], min: 1, max: 3, desired: 2, labels: {tier: general},\n       tags: {cost-center: web, k8s.io/cluster-autoscaler/enabled: \"true\"},\n       ssh: {key_name: ops, source_security_groups: [sg-0a1b2c3d]}}\n    - {name: batch, instance_types: [m5.large], iam: {attach_policies: [arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess]}}\n",
    );
    let s = spec(&yaml);
    let st = setup(FaultConfig::default()).await;
    let env = st.env(&s);
    env.up(&EventSink::discard()).await.unwrap();
    let found = env.eks.discover(&Default::default()).await.unwrap();
    let ng = found.observed.iter().find(|o| o.key == "eks/nodegroup/general").unwrap();
    assert_eq!(ng.props["remote_access"]["key_name"], "ops", "{:?}", ng.props);
    assert_eq!(ng.props["remote_access"]["source_security_groups"][0], "sg-0a1b2c3d");
    assert_eq!(ng.props["tags"]["cost-center"], "web");
    assert_eq!(ng.props["tags"]["team"], "platform", "the environment's tags stay");
    assert!(ng.props["node_role_arn"].as_str().unwrap().ends_with("/envtest-node"), "{:?}", ng.props);
    // a nodegroup with extra policies runs on a role of its own that has them
    let batch = found.observed.iter().find(|o| o.key == "eks/nodegroup/batch").unwrap();
    assert!(batch.props["node_role_arn"].as_str().unwrap().ends_with("/envtest-node-batch"), "{:?}", batch.props);
    let iam = aws_sdk_iam::Client::new(&st.conf);
    let attached = iam.list_attached_role_policies().role_name("envtest-node-batch").send().await.unwrap();
    let arns: Vec<&str> = attached.attached_policies().iter().filter_map(|p| p.policy_arn()).collect();
    assert!(arns.contains(&"arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"), "{arns:?}");
    assert!(arns.contains(&"arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy"), "{arns:?}");
    let again = env.plan().await.unwrap();
    assert!(again.is_converged(), "{:#?}", again.plan.changes().map(|c| (&c.id, &c.changes)).collect::<Vec<_>>());

    let mut other = s.clone();
    other.cluster.as_mut().unwrap().nodegroups[0].ssh.as_mut().unwrap().key_name = "ops-2".into();
    let p = st.env(&other).plan().await.unwrap();
    let ng = p.plan.changes().find(|c| c.key == "eks/nodegroup/general").expect("the nodegroup changes");
    assert!(ng.changes.iter().any(|c| c.field == "remote_access" && c.forces_replacement), "{:?}", ng.changes);
    let down = env.down(&EventSink::discard(), Duration::from_secs(5)).await.unwrap();
    assert!(down.remaining.is_empty(), "{:?}", down.remaining);
}

/// An account whose only permissions are the policy `access iam-policy` prints: `up` and `down` need nothing
/// else (the proxy refuses every other action with the service's access-denied error, before moto sees it), and
/// an action taken out of it is refused with its code, so the restriction is real.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_and_down_need_nothing_outside_the_policy() {
    let s = spec(ENV);
    let allowed: std::collections::BTreeSet<String> =
        eksodus_cluster::policy::actions(&s).into_iter().map(String::from).collect();
    let st = setup(FaultConfig { allowed_actions: Some(allowed.clone()), ..Default::default() }).await;
    let env = st.env(&s);
    let up = env.up(&EventSink::discard()).await.unwrap();
    assert!(up.converged.is_converged());
    let down = env.down(&EventSink::discard(), Duration::from_secs(5)).await.unwrap();
    assert!(down.report.is_success(), "{:?}", down.report.failures().collect::<Vec<_>>());
    let stats = st.aws.proxy.stats();
    let denied: Vec<String> = stats
        .calls
        .iter()
        .filter(|c| c.fault == Some(eksodus_testkit::Fault::Denied))
        .map(|c| format!("{}:{}", c.service, c.operation))
        .collect();
    assert!(denied.is_empty(), "refused: {denied:?}");
    assert!(stats.calls.len() > 50, "the run went through the restricted account");

    let mut narrower = allowed;
    assert!(narrower.remove("eks:CreateNodegroup"));
    let st = setup(FaultConfig { allowed_actions: Some(narrower), ..Default::default() }).await;
    let err = st.env(&s).up(&EventSink::discard()).await.unwrap_err().to_string();
    assert!(err.contains("AccessDeniedException") && err.contains("CreateNodegroup"), "{err}");
}

/// Node repair and addon tags change in place; an identity provider's settings cannot change in EKS, so a
/// change replaces it; a resource's own tags win over the environment's; all re-plan as empty and go with
/// `down`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_repair_and_tags_update_in_place_and_an_identity_provider_is_replaced() {
    let s = spec(
        r#"
name: repair
region: us-east-1
tags: {team: platform}
network: {cidr: 10.61.0.0/16, azs: 2, nat: none}
cluster:
  version: "1.33"
  nodegroups:
    - {name: general, instance_types: [m5.large], node_repair: true, tags: {team: batch}}
  addons:
    - {name: kube-proxy, tags: {cost-center: "4711"}}
  identity_providers:
    - {name: corp-sso, issuer_url: "https://sso.example.com", client_id: kubernetes, username_claim: email, username_prefix: "sso:"}
"#,
    );
    let st = setup(FaultConfig { eks_pending_describes: 1, ..Default::default() }).await;
    st.env(&s).up(&EventSink::discard()).await.unwrap();
    let eks = aws_sdk_eks::Client::new(&st.conf);
    let ng = eks.describe_nodegroup().cluster_name("repair").nodegroup_name("general").send().await.unwrap();
    assert_eq!(ng.nodegroup().unwrap().node_repair_config().and_then(|r| r.enabled()), Some(true));
    // a resource's own tags win over the environment's
    assert_eq!(ng.nodegroup().unwrap().tags().unwrap()["team"], "batch");
    let addon = eks.describe_addon().cluster_name("repair").addon_name("kube-proxy").send().await.unwrap();
    let tags = addon.addon().unwrap().tags().unwrap();
    assert_eq!((tags["cost-center"].as_str(), tags["team"].as_str()), ("4711", "platform"));
    let again = st.env(&s).plan().await.unwrap();
    assert!(again.is_converged(), "{:#?}", again.plan.changes().map(|c| (&c.id, &c.changes)).collect::<Vec<_>>());

    let mut changed = s.clone();
    let c = changed.cluster.as_mut().unwrap();
    c.nodegroups[0].node_repair = false;
    c.nodegroups[0].max_unavailable_percentage = Some(25);
    c.identity_providers[0].client_id = "kubernetes-prod".into();
    c.addons[0].tags.insert("cost-center".into(), "4712".into());
    let p = st.env(&changed).plan().await.unwrap();
    let mut steps: Vec<(String, String)> =
        p.plan.changes().map(|c| (c.key.clone(), format!("{:?}", c.action))).collect();
    steps.sort();
    assert_eq!(
        steps,
        [
            ("eks/addon/kube-proxy".to_string(), "Update".to_string()),
            ("eks/identity-provider/corp-sso".to_string(), "Replace".to_string()),
            ("eks/nodegroup/general".to_string(), "Update".to_string())
        ]
    );
    st.env(&changed).up(&EventSink::discard()).await.unwrap();
    let ng = eks.describe_nodegroup().cluster_name("repair").nodegroup_name("general").send().await.unwrap();
    assert_eq!(ng.nodegroup().unwrap().node_repair_config().and_then(|r| r.enabled()), Some(false));
    let u = ng.nodegroup().unwrap().update_config().unwrap();
    assert_eq!((u.max_unavailable(), u.max_unavailable_percentage()), (None, Some(25)));
    let idp = eks
        .describe_identity_provider_config()
        .cluster_name("repair")
        .identity_provider_config(
            aws_sdk_eks::types::IdentityProviderConfig::builder().r#type("oidc").name("corp-sso").build().unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(idp.identity_provider_config().unwrap().oidc().unwrap().client_id(), Some("kubernetes-prod"));
    let addon = eks.describe_addon().cluster_name("repair").addon_name("kube-proxy").send().await.unwrap();
    assert_eq!(addon.addon().unwrap().tags().unwrap()["cost-center"], "4712");
    let again = st.env(&changed).plan().await.unwrap();
    assert!(again.is_converged(), "{:#?}", again.plan.changes().map(|c| (&c.id, &c.changes)).collect::<Vec<_>>());
    let down = st.env(&changed).down(&EventSink::discard(), Duration::from_secs(5)).await.unwrap();
    assert!(down.report.is_success(), "{:?}", down.report.failures().collect::<Vec<_>>());
    assert!(down.remaining.is_empty(), "{:?}", down.remaining);
}

/// The sources of port 22 on a security group, by name: (groups, CIDRs), each sorted.
async fn ssh_sources(ec2: &aws_sdk_ec2::Client, group: &str) -> (Vec<String>, Vec<String>) {
    let f = aws_sdk_ec2::types::Filter::builder().name("group-name").values(group).build();
    let r = ec2.describe_security_groups().filters(f).send().await.unwrap();
    let [g] = r.security_groups() else { panic!("one {group}: {:?}", r.security_groups()) };
    let ssh: Vec<&aws_sdk_ec2::types::IpPermission> =
        g.ip_permissions().iter().filter(|p| p.from_port() == Some(22) && p.to_port() == Some(22)).collect();
    let mut groups: Vec<String> = ssh
        .iter()
        .flat_map(|p| p.user_id_group_pairs().iter().filter_map(|u| u.group_id().map(String::from)))
        .collect();
    let mut cidrs: Vec<String> =
        ssh.iter().flat_map(|p| p.ip_ranges().iter().filter_map(|r| r.cidr_ip().map(String::from))).collect();
    groups.sort();
    cidrs.sort();
    (groups, cidrs)
}

/// The control plane's zonal shift and scaling tier, a nodegroup's repair limits and overrides, and the
/// sources of an SSH group (CIDRs, then a group of the user's instead) are set at creation, read back from
/// EKS and EC2, changed in place (no nodegroup replaced, a CIDR rule no longer wanted taken away), and each
/// state re-plans as empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zonal_shift_scaling_tier_repair_limits_and_ssh_sources_change_in_place() {
    let s = spec(
        r#"
name: tiers
region: us-east-1
network: {cidr: 10.62.0.0/16, azs: 2, nat: none}
cluster:
  version: "1.33"
  zonal_shift: true
  control_plane_tier: tier-xl
  nodegroups:
    - name: general
      instance_types: [m5.large]
      node_repair: true
      node_repair_settings:
        max_unhealthy_percentage: 20
        max_parallel_count: 1
        overrides:
          - {condition: NetworkNotReady, reason: InterfaceNotUp, wait_minutes: 15, action: Reboot}
          - {condition: AcceleratedInstanceNotReady, reason: NvidiaXID13Error, wait_minutes: 5, action: Replace}
    - {name: ops, instance_types: [m5.large], imds_hop_limit: 1, ssh: {key_name: ops, source_cidrs: [10.62.0.0/16, 192.168.10.0/24]}}
"#,
    );
    assert_eq!(s.validate(), vec![]);
    let st = setup(FaultConfig { eks_pending_describes: 1, ..Default::default() }).await;
    let ec2 = aws_sdk_ec2::Client::new(&st.conf);
    let bastion = ec2.create_security_group().group_name("bastion").description("the user's").send().await.unwrap();
    let bastion = bastion.group_id().unwrap().to_string();
    st.env(&s).up(&EventSink::discard()).await.unwrap();
    let eks = aws_sdk_eks::Client::new(&st.conf);
    let cluster = eks.describe_cluster().name("tiers").send().await.unwrap().cluster().unwrap().clone();
    assert_eq!(cluster.zonal_shift_config().and_then(|z| z.enabled()), Some(true));
    let tier = |c: &aws_sdk_eks::types::Cluster| {
        c.control_plane_scaling_config().and_then(|t| t.tier()).map(|t| t.as_str().to_string())
    };
    assert_eq!(tier(&cluster).as_deref(), Some("tier-xl"));
    let ng = describe_nodegroup(&eks, "tiers", "general").await;
    let r = ng.node_repair_config().unwrap();
    assert_eq!(
        (r.enabled(), r.max_unhealthy_node_threshold_percentage(), r.max_parallel_nodes_repaired_count()),
        (Some(true), Some(20), Some(1))
    );
    let mut overrides: Vec<(&str, Option<i32>, &str)> = r
        .node_repair_config_overrides()
        .iter()
        .map(|o| {
            (o.node_unhealthy_reason().unwrap(), o.min_repair_wait_time_mins(), o.repair_action().unwrap().as_str())
        })
        .collect();
    overrides.sort();
    assert_eq!(overrides, [("InterfaceNotUp", Some(15), "Reboot"), ("NvidiaXID13Error", Some(5), "Replace")]);
    let group = eksodus_net::ec2::ssh_group_name("tiers", "ops");
    let cidrs = vec!["10.62.0.0/16".to_string(), "192.168.10.0/24".to_string()];
    assert_eq!(ssh_sources(&ec2, &group).await, (vec![], cidrs));
    // CIDRs are not EKS's remote access: the nodegroup runs eksodus's template, which names the key
    assert!(describe_nodegroup(&eks, "tiers", "ops").await.remote_access().is_none());
    let again = st.env(&s).plan().await.unwrap();
    assert!(again.is_converged(), "{:#?}", again.plan.changes().map(|c| (&c.id, &c.changes)).collect::<Vec<_>>());

    let mut changed = s.clone();
    let c = changed.cluster.as_mut().unwrap();
    c.zonal_shift = false;
    c.control_plane_tier = None;
    c.control_plane_security_groups = vec![bastion.clone()];
    let r = c.nodegroups[0].node_repair_settings.as_mut().unwrap();
    r.max_unhealthy_percentage = None;
    r.max_unhealthy_count = Some(3);
    r.overrides.truncate(1);
    let ssh = c.nodegroups[1].ssh.as_mut().unwrap();
    ssh.source_cidrs.clear();
    ssh.source_security_groups = vec![bastion.clone()];
    let p = st.env(&changed).plan().await.unwrap();
    let mut steps: Vec<(String, String)> =
        p.plan.changes().map(|c| (c.key.clone(), format!("{:?}", c.action))).collect();
    steps.sort();
    let update = |k: &str| (k.to_string(), "Update".to_string());
    assert_eq!(steps, [update("eks/cluster"), update("eks/nodegroup/general"), update("sg/ssh/ops")]);
    st.env(&changed).up(&EventSink::discard()).await.unwrap();
    let cluster = eks.describe_cluster().name("tiers").send().await.unwrap().cluster().unwrap().clone();
    assert_eq!(cluster.zonal_shift_config().and_then(|z| z.enabled()), Some(false));
    assert_eq!(tier(&cluster).as_deref(), Some("standard"));
    // the user's group beside the cluster's own, swapped in place
    let groups = cluster.resources_vpc_config().unwrap().security_group_ids();
    assert_eq!(groups.len(), 2, "{groups:?}");
    assert!(groups.contains(&bastion), "{groups:?}");
    let ng = describe_nodegroup(&eks, "tiers", "general").await;
    let r = ng.node_repair_config().unwrap();
    assert_eq!((r.max_unhealthy_node_threshold_count(), r.max_unhealthy_node_threshold_percentage()), (Some(3), None));
    assert_eq!(r.node_repair_config_overrides().len(), 1);
    assert_eq!(ssh_sources(&ec2, &group).await, (vec![bastion.clone()], vec![]), "the CIDR rules are taken away");
    let again = st.env(&changed).plan().await.unwrap();
    assert!(again.is_converged(), "{:#?}", again.plan.changes().map(|c| (&c.id, &c.changes)).collect::<Vec<_>>());
    policy_covers_every_call(&st, &changed);
    let down = st.env(&changed).down(&EventSink::discard(), Duration::from_secs(5)).await.unwrap();
    assert!(down.report.is_success(), "{:?}", down.report.failures().collect::<Vec<_>>());
    assert!(down.remaining.is_empty(), "{:?}", down.remaining);
    // the user's group stays
    let left = ec2.describe_security_groups().group_ids(&bastion).send().await.unwrap();
    assert_eq!(left.security_groups().len(), 1);
}

/// A nodegroup as EKS describes it.
async fn describe_nodegroup(eks: &aws_sdk_eks::Client, cluster: &str, name: &str) -> aws_sdk_eks::types::Nodegroup {
    eks.describe_nodegroup()
        .cluster_name(cluster)
        .nodegroup_name(name)
        .send()
        .await
        .unwrap()
        .nodegroup()
        .unwrap()
        .clone()
}

/// The default version of a launch template, by name or by ID.
async fn default_template_version(
    ec2: &aws_sdk_ec2::Client,
    name: Option<&str>,
    id: Option<&str>,
) -> aws_sdk_ec2::types::LaunchTemplateVersion {
    let v = ec2
        .describe_launch_template_versions()
        .set_launch_template_name(name.map(String::from))
        .set_launch_template_id(id.map(String::from))
        .versions("$Default")
        .send()
        .await
        .unwrap();
    v.launch_template_versions()[0].clone()
}

/// Custom AMIs: eksodus's template names the AMI and carries the whole bootstrap with the cluster's endpoint, CA
/// and service CIDR; EKS reports the nodegroups as CUSTOM with no version of eksodus's; a new AMI is a new
/// template version that rolls the nodes; `upgrade` moves the control plane and leaves them to their AMI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_amis_carry_their_bootstrap_roll_on_a_new_ami_and_sit_out_upgrades() {
    let st = setup(FaultConfig::default()).await;
    let ec2 = aws_sdk_ec2::Client::new(&st.conf);
    let eks = aws_sdk_eks::Client::new(&st.conf);
    // the AMIs are the user's: registered in the emulator first (plan refuses an AMI EC2 does not show)
    let register = |name: &'static str| {
        let ec2 = ec2.clone();
        async move { ec2.register_image().name(name).send().await.unwrap().image_id().unwrap().to_string() }
    };
    let (ami_a, ami_b, ami_legacy) =
        (register("hardened-1").await, register("hardened-2").await, register("legacy").await);
    // two public keys made for this test (their private halves were thrown away)
    let key = |n: u8| {
        match n {
            1 => "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA7e3Xtwqc9C64YrLdSOCNHrhmaoZW7aI5XFFj4JGlpK e2e@eksodus",
            _ => "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJtcEGy+KuoVsq3RIzDfWLPn14EEUqhEq3IkQL5kfjGL e2e@eksodus",
        }
        .to_string()
    };
    let yaml_with = |version: &str, ami: &str, k: &str| {
        let legacy = &ami_legacy;
        format!(
            r#"
name: amis
region: us-east-1
network: {{cidr: 10.63.0.0/16, azs: 2, nat: none}}
cluster:
  version: "{version}"
  nodegroups:
    - {{name: std, instance_types: [m5.large], ssh: {{public_key: "{k}", source_security_groups: [sg-0a1b2c3d]}}}}
    - name: hardened
      instance_types: [m5.large]
      ami: {ami}
      ami_type: AL2023_x86_64_STANDARD
      labels: {{tier: hardened}}
      taints: [{{key: hardened, value: "true", effect: NO_SCHEDULE}}]
    - name: legacy
      instance_types: [m5.large]
      ami: {legacy}
      ami_type: AL2_x86_64
      pre_bootstrap_commands: ["echo before"]
      override_bootstrap_command: "/etc/eks/bootstrap.sh amis"
"#
        )
    };
    let yaml = |version: &str, ami: &str| yaml_with(version, ami, &key(1));
    // an AMI EC2 does not show, or one of the other architecture, is refused by its field before anything is made
    // (an AMI registered in the emulator has no architecture; its public Amazon images have one)
    let arch = aws_sdk_ec2::types::Filter::builder().name("architecture").values("x86_64").build();
    let public = ec2.describe_images().owners("amazon").filters(arch).send().await.unwrap();
    let x86 = public
        .images()
        .iter()
        .filter_map(|i| i.image_id())
        .find(|id| id.strip_prefix("ami-").is_some_and(|r| r.chars().all(|c| c.is_ascii_alphanumeric())))
        .unwrap()
        .to_string();
    for (ami, ami_type, says) in [
        ("ami-0123456789abcdef0", "AL2023_x86_64_STANDARD", "no AMI"),
        (x86.as_str(), "AL2023_ARM_64_STANDARD", "is an x86_64 image"),
    ] {
        let bad =
            spec(&yaml("1.32", ami).replace("ami_type: AL2023_x86_64_STANDARD", &format!("ami_type: {ami_type}")));
        let e = st.env(&bad).plan().await.unwrap_err().to_string();
        assert!(e.contains("cluster.nodegroups[1].ami") && e.contains(says), "{e}");
    }
    let s = spec(&yaml("1.32", &ami_a));
    st.env(&s).up(&EventSink::discard()).await.unwrap();
    let again = st.env(&s).plan().await.unwrap();
    assert!(again.is_converged(), "{:#?}", again.plan.changes().map(|c| (&c.id, &c.changes)).collect::<Vec<_>>());

    let cluster = eks.describe_cluster().name("amis").send().await.unwrap().cluster().unwrap().clone();
    let template = |name: &'static str| default_template_version(&ec2, Some(name), None);
    let hardened = template("amis-hardened").await;
    let d = hardened.launch_template_data().unwrap();
    assert_eq!(d.image_id(), Some(ami_a.as_str()));
    let ud = eksodus_cluster::userdata::decode(d.user_data().unwrap()).unwrap();
    assert!(ud.contains(&format!("apiServerEndpoint: \"{}\"", cluster.endpoint().unwrap())), "{ud}");
    assert!(
        ud.contains(&format!("certificateAuthority: \"{}\"", cluster.certificate_authority().unwrap().data().unwrap()))
    );
    let cidr = cluster.kubernetes_network_config().unwrap().service_ipv4_cidr().unwrap();
    assert!(ud.contains(&format!("cidr: \"{cidr}\"")), "{ud}");
    assert!(ud.contains("eks.amazonaws.com/nodegroup=hardened") && ud.contains("tier=hardened"), "{ud}");
    assert!(ud.contains("--register-with-taints=hardened=true:NoSchedule"), "{ud}");
    let legacy = template("amis-legacy").await;
    let ud = eksodus_cluster::userdata::decode(legacy.launch_template_data().unwrap().user_data().unwrap()).unwrap();
    assert!(ud.ends_with("echo before\n/etc/eks/bootstrap.sh amis\n"), "{ud}");
    let ng = |name: &'static str| describe_nodegroup(&eks, "amis", name);
    assert_eq!(ng("hardened").await.ami_type().map(|a| a.as_str()), Some("CUSTOM"));
    assert_eq!(ng("legacy").await.ami_type().map(|a| a.as_str()), Some("CUSTOM"));
    assert_ne!(ng("std").await.ami_type().map(|a| a.as_str()), Some("CUSTOM"));
    // the public key became a key pair eksodus owns, named after the key, and the nodes' SSH key
    let pair = eksodus_cluster::eks::key_pair_name("amis", "std", &key(1));
    let pairs = ec2.describe_key_pairs().key_names(&pair).send().await.unwrap();
    let tags: Vec<(&str, &str)> =
        pairs.key_pairs()[0].tags().iter().map(|t| (t.key().unwrap(), t.value().unwrap())).collect();
    assert!(tags.contains(&("eksodus.io/environment", "amis")), "{tags:?}");
    assert_eq!(ng("std").await.remote_access().and_then(|r| r.ec2_ssh_key()), Some(pair.as_str()));

    // a new AMI: a new version of the template, the nodegroup rolled onto it, nothing else
    let s2 = spec(&yaml("1.32", &ami_b));
    let p = st.env(&s2).plan().await.unwrap();
    let mut keys: Vec<&str> = p.plan.changes().map(|c| c.key.as_str()).collect();
    keys.sort();
    assert_eq!(keys, ["eks/nodegroup/hardened", "lt/hardened"]);
    st.env(&s2).up_from(p, &EventSink::discard()).await.unwrap();
    assert_eq!(template("amis-hardened").await.launch_template_data().unwrap().image_id(), Some(ami_b.as_str()));
    assert_eq!(ng("hardened").await.launch_template().and_then(|t| t.version()), Some("2"));
    assert!(st.env(&s2).plan().await.unwrap().is_converged());

    // a new public key: a new pair and new nodes (EKS's remote access is fixed at creation); the old pair goes
    let s3 = spec(&yaml_with("1.32", &ami_b, &key(2)));
    let p = st.env(&s3).plan().await.unwrap();
    let mut steps: Vec<(String, String)> =
        p.plan.changes().map(|c| (c.key.clone(), format!("{:?}", c.action))).collect();
    steps.sort();
    assert_eq!(
        steps,
        [("eks/nodegroup/std".to_string(), "Replace".to_string()), ("kp/std".to_string(), "Replace".to_string())]
    );
    st.env(&s3).up_from(p, &EventSink::discard()).await.unwrap();
    assert!(ec2.describe_key_pairs().key_names(&pair).send().await.is_err(), "the old pair is gone");
    let pair2 = eksodus_cluster::eks::key_pair_name("amis", "std", &key(2));
    assert_eq!(ng("std").await.remote_access().and_then(|r| r.ec2_ssh_key()), Some(pair2.as_str()));
    assert!(st.env(&s3).plan().await.unwrap().is_converged());
    let s2 = s3;
    let yaml = |version: &str, ami: &str| yaml_with(version, ami, &key(2));

    // upgrade: the control plane and the EKS-AMI nodegroup move; the custom ones are left to their AMIs
    let env = st.env(&s2);
    let up = env.upgrade("1.33", &EventSink::discard()).await.unwrap();
    assert!(up.report.unwrap().is_success());
    let keys: Vec<String> = up.plan.changes().map(|c| c.key.clone()).collect();
    assert!(keys.iter().any(|k| k == "upgrade/1.33/nodegroup/std"), "{keys:?}");
    assert!(!keys.iter().any(|k| k.contains("hardened") || k.contains("legacy")), "{keys:?}");
    let s133 = spec(&yaml("1.33", &ami_b));
    let p = st.env(&s133).plan().await.unwrap();
    assert!(p.is_converged(), "{:#?}", p.plan.changes().map(|c| (&c.id, &c.changes)).collect::<Vec<_>>());

    let down = st.env(&s133).down(&EventSink::discard(), Duration::from_secs(5)).await.unwrap();
    assert!(down.report.is_success(), "{:?}", down.report.failures().collect::<Vec<_>>());
    assert!(down.remaining.is_empty(), "{:?}", down.remaining);
    let left = ec2.describe_launch_templates().send().await.unwrap();
    assert!(left.launch_templates().iter().all(|t| !t.launch_template_name().unwrap_or("").starts_with("amis-")));
    let left = ec2.describe_key_pairs().send().await.unwrap();
    assert!(left.key_pairs().iter().all(|k| !k.key_name().unwrap_or("").starts_with("amis-")), "{left:?}");
}

/// Launch templates: a nodegroup given volume, metadata, security group, instance name or pre-bootstrap
/// settings gets a template eksodus makes (the content EC2 holds is checked field by field); a change of
/// content is a new template version and rolls the nodegroup onto it; a nodegroup on the user's own template
/// moves when its version number changes; both re-plan as empty, and `down` removes eksodus's template and
/// EKS's cluster security group, and leaves the user's template alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_templates_are_made_versioned_rolled_and_removed() {
    let st = setup(FaultConfig { eks_pending_describes: 1, ..Default::default() }).await;
    let ec2 = aws_sdk_ec2::Client::new(&st.conf);
    let eks = aws_sdk_eks::Client::new(&st.conf);
    // the user's own template, with two versions
    let data = |size: i32| {
        aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
            .block_device_mappings(
                aws_sdk_ec2::types::LaunchTemplateBlockDeviceMappingRequest::builder()
                    .device_name("/dev/xvda")
                    .ebs(aws_sdk_ec2::types::LaunchTemplateEbsBlockDeviceRequest::builder().volume_size(size).build())
                    .build(),
            )
            .build()
    };
    let theirs = ec2
        .create_launch_template()
        .launch_template_name("team-nodes")
        .launch_template_data(data(50))
        .send()
        .await
        .unwrap()
        .launch_template()
        .and_then(|t| t.launch_template_id())
        .unwrap()
        .to_string();
    ec2.create_launch_template_version()
        .launch_template_id(&theirs)
        .launch_template_data(data(60))
        .send()
        .await
        .unwrap();
    let yaml = format!(
        r#"
name: templ
region: us-east-1
tags: {{team: platform}}
network: {{cidr: 10.62.0.0/16, azs: 2, nat: none, cni: {{mode: prefix-delegation}}}}
cluster:
  version: "1.33"
  nodegroups:
    - name: ours
      instance_types: [m5.large]
      disk_size: 80
      volume: {{type: gp3, iops: 4000, throughput: 250, encrypted: true}}
      imds_hop_limit: 1
      instance_name: templ-node
      pre_bootstrap_commands: ["sysctl -w net.core.somaxconn=4096"]
      tags: {{cost-center: "4711"}}
    - name: theirs
      instance_types: [m5.large]
      launch_template: {{id: {theirs}, version: "1"}}
"#
    );
    let s = spec(&yaml);
    st.env(&s).up(&EventSink::discard()).await.unwrap();

    // eksodus's template, as EC2 holds it
    let ours_id =
        ec2.describe_launch_templates().launch_template_names("templ-ours").send().await.unwrap().launch_templates()[0]
            .launch_template_id()
            .unwrap()
            .to_string();
    let v1 = default_template_version(&ec2, None, Some(&ours_id)).await;
    let d = v1.launch_template_data().unwrap();
    let ebs = d.block_device_mappings()[0].ebs().unwrap();
    assert_eq!(d.block_device_mappings()[0].device_name(), Some("/dev/xvda"));
    assert_eq!(
        (ebs.volume_size(), ebs.iops(), ebs.throughput(), ebs.encrypted()),
        (Some(80), Some(4000), Some(250), Some(true))
    );
    assert_eq!(ebs.volume_type().map(|t| t.as_str()), Some("gp3"));
    let md = d.metadata_options().unwrap();
    assert_eq!(md.http_tokens().map(|t| t.as_str()), Some("required"));
    assert_eq!(md.http_put_response_hop_limit(), Some(1));
    let user_data = eksodus_cluster::userdata::decode(d.user_data().unwrap()).unwrap();
    assert!(user_data.starts_with("MIME-Version: 1.0\n"), "{user_data}");
    assert!(
        user_data.contains("maxPods: 110") && user_data.contains("sysctl -w net.core.somaxconn=4096"),
        "{user_data}"
    );
    // (moto also copies the template's own tags into its data, which EC2 does not)
    let kinds: Vec<&str> =
        d.tag_specifications().iter().filter_map(|t| t.resource_type()).map(|r| r.as_str()).collect();
    assert!(kinds.contains(&"instance") && kinds.contains(&"volume"), "{kinds:?}");
    for spec in
        d.tag_specifications().iter().filter(|t| t.resource_type().is_some_and(|r| r.as_str() != "launch-template"))
    {
        let t: std::collections::BTreeMap<_, _> =
            spec.tags().iter().map(|t| (t.key().unwrap(), t.value().unwrap())).collect();
        assert_eq!((t["Name"], t["team"], t["cost-center"]), ("templ-node", "platform", "4711"), "{spec:?}");
    }
    let ng = |name: &'static str| describe_nodegroup(&eks, "templ", name);
    let n = ng("ours").await;
    assert_eq!(n.launch_template().and_then(|t| t.id()), Some(ours_id.as_str()));
    assert_eq!(n.launch_template().and_then(|t| t.version()), Some("1"));
    assert_eq!(n.disk_size(), None, "EKS reports no disk size with a launch template");
    assert_eq!(ng("theirs").await.launch_template().and_then(|t| t.version()), Some("1"));
    let again = st.env(&s).plan().await.unwrap();
    assert!(again.is_converged(), "{:#?}", again.plan.changes().map(|c| (&c.id, &c.changes)).collect::<Vec<_>>());

    // a bigger volume and a security group of the user's: a new version of eksodus's template, with the
    // cluster's security group beside the user's; the user's template moves to version 2
    let vpc = eks
        .describe_cluster()
        .name("templ")
        .send()
        .await
        .unwrap()
        .cluster()
        .unwrap()
        .resources_vpc_config()
        .unwrap()
        .clone();
    let cluster_sg = vpc.cluster_security_group_id().expect("EKS reports the cluster security group").to_string();
    let vpc_id = ec2.describe_subnets().subnet_ids(&vpc.subnet_ids()[0]).send().await.unwrap().subnets()[0]
        .vpc_id()
        .unwrap()
        .to_string();
    let user_sg = ec2
        .create_security_group()
        .group_name("templ-extra")
        .description("the user's")
        .vpc_id(&vpc_id)
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_string();
    let mut changed = s.clone();
    let c = changed.cluster.as_mut().unwrap();
    c.nodegroups[0].disk_size = Some(100);
    c.nodegroups[0].security_groups = vec![user_sg.clone()];
    c.nodegroups[1].launch_template.as_mut().unwrap().version = "2".into();
    let p = st.env(&changed).plan().await.unwrap();
    let mut steps: Vec<(String, String, Vec<String>)> = p
        .plan
        .changes()
        .map(|c| {
            let mut fields: Vec<String> = c.changes.iter().map(|f| f.field.clone()).collect();
            fields.sort();
            (c.key.clone(), format!("{:?}", c.action), fields)
        })
        .collect();
    steps.sort();
    assert_eq!(
        steps,
        [
            ("eks/nodegroup/ours".to_string(), "Update".to_string(), vec!["launch_template_version".to_string()]),
            ("eks/nodegroup/theirs".to_string(), "Update".to_string(), vec!["launch_template_version".to_string()]),
            (
                "lt/ours".to_string(),
                "Update".to_string(),
                vec!["security_groups".to_string(), "volume_size".to_string()]
            ),
        ]
    );
    st.env(&changed).up(&EventSink::discard()).await.unwrap();
    let v2 = default_template_version(&ec2, None, Some(&ours_id)).await;
    assert_eq!(v2.version_number(), Some(2));
    let d = v2.launch_template_data().unwrap();
    assert_eq!(d.block_device_mappings()[0].ebs().unwrap().volume_size(), Some(100));
    let mut groups = d.security_group_ids().to_vec();
    groups.sort();
    let mut want = vec![cluster_sg.clone(), user_sg.clone()];
    want.sort();
    assert_eq!(groups, want);
    assert_eq!(ng("ours").await.launch_template().and_then(|t| t.version()), Some("2"));
    assert_eq!(ng("theirs").await.launch_template().and_then(|t| t.version()), Some("2"));
    let again = st.env(&changed).plan().await.unwrap();
    assert!(again.is_converged(), "{:#?}", again.plan.changes().map(|c| (&c.id, &c.changes)).collect::<Vec<_>>());

    ec2.delete_security_group().group_id(&user_sg).send().await.unwrap();
    let down = st.env(&changed).down(&EventSink::discard(), Duration::from_secs(5)).await.unwrap();
    assert!(down.report.is_success(), "{:?}", down.report.failures().collect::<Vec<_>>());
    assert!(down.remaining.is_empty(), "{:?}", down.remaining);
    let left: Vec<String> = ec2
        .describe_launch_templates()
        .send()
        .await
        .unwrap()
        .launch_templates()
        .iter()
        .filter_map(|t| t.launch_template_name().map(String::from))
        .collect();
    assert_eq!(left, vec!["team-nodes".to_string()], "eksodus's template goes, the user's stays");
    let sgs = ec2.describe_security_groups().group_ids(&cluster_sg).send().await;
    assert!(
        sgs.is_err() || sgs.unwrap().security_groups().is_empty(),
        "the cluster security group goes with the cluster"
    );
}

/// The service accounts eksodus makes for its roles: made with their namespaces, changed in place when their
/// labels change, deleted when the spec drops them (their namespace stays), and one of the user's with the same
/// name as a spec entry is left exactly as it was and reported, every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_accounts_are_made_changed_and_deleted_and_the_users_are_left_alone() {
    use eksodus_access::serviceaccounts::Change;
    use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
    const SAS: &str = r#"
name: satest
region: us-east-1
network: {cidr: 10.61.0.0/16, azs: 2, nat: single}
access:
  service_accounts:
    - {namespace: apps, name: web, policies: [arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess], create_service_account: true, labels: {team: web}, annotations: {example.com/owner: web}}
    - {namespace: apps, name: theirs, policies: [arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess], create_service_account: true}
  pod_identities:
    - {namespace: jobs, name: worker, policies: [arn:aws:iam::aws:policy/AmazonDynamoDBReadOnlyAccess], create_service_account: true}
cluster:
  version: "1.33"
  nodegroups:
    - {name: general, instance_types: [m5.large], min: 1, max: 2, desired: 1}
  addons:
    - {name: eks-pod-identity-agent}
"#;
    let s = spec(SAS);
    assert_eq!(s.validate(), vec![]);
    let st = setup_kube(FaultConfig::default(), true).await;
    // the user's own service account, in a namespace of theirs
    let ns: kube::Api<Namespace> = kube::Api::all(st.client.clone());
    ns.create(&Default::default(), &serde_json::from_value(serde_json::json!({"metadata": {"name": "apps"}})).unwrap())
        .await
        .unwrap();
    let apps: kube::Api<ServiceAccount> = kube::Api::namespaced(st.client.clone(), "apps");
    let theirs = serde_json::json!({"metadata": {"name": "theirs", "labels": {"owner": "me"}}});
    let theirs = apps.create(&Default::default(), &serde_json::from_value(theirs).unwrap()).await.unwrap();
    let created = |sa: &str| Change::Created { service_account: sa.into() };
    let not_ours = Change::NotOurs { service_account: "apps/theirs".into() };

    let up = st.env(&s).up(&EventSink::discard()).await.unwrap();
    let mut got = up.service_accounts.clone();
    got.sort_by_key(|c| format!("{c:?}"));
    let mut want = vec![created("apps/web"), created("jobs/worker"), not_ours.clone()];
    want.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(got, want);
    let web = apps.get("web").await.unwrap();
    let labels = web.metadata.labels.clone().unwrap();
    assert_eq!(labels.get("team").map(String::as_str), Some("web"));
    assert_eq!(labels.get("eksodus.io/environment").map(String::as_str), Some("satest"));
    let notes = web.metadata.annotations.clone().unwrap();
    assert_eq!(notes.get("example.com/owner").map(String::as_str), Some("web"));
    let role =
        eksodus_access::iam::irsa_role_arn(&s, &st.aws.account_id, &s.access.as_ref().unwrap().service_accounts[0]);
    assert_eq!(notes.get("eks.amazonaws.com/role-arn"), Some(&role));
    // and the role is there for it
    let iam = aws_sdk_iam::Client::new(&st.conf);
    iam.get_role().role_name(role.rsplit('/').next().unwrap()).send().await.unwrap();
    let jobs: kube::Api<ServiceAccount> = kube::Api::namespaced(st.client.clone(), "jobs");
    let worker = jobs.get("worker").await.unwrap();
    assert!(
        !worker.metadata.annotations.unwrap_or_default().contains_key("eks.amazonaws.com/role-arn"),
        "pod identity needs no annotation"
    );
    // the user's is as it was: not even a resourceVersion moved
    let after = apps.get("theirs").await.unwrap();
    assert_eq!(after.metadata.resource_version, theirs.metadata.resource_version);
    assert_eq!(after.metadata.labels, theirs.metadata.labels);

    // a second up changes nothing, and says again that the user's is theirs
    let again = st.env(&s).up(&EventSink::discard()).await.unwrap();
    assert_eq!(again.service_accounts, vec![not_ours.clone()]);

    // a label changes in place; a dropped entry's service account goes, its namespace stays
    let mut changed = s.clone();
    let a = changed.access.as_mut().unwrap();
    a.service_accounts[0].labels.insert("team".into(), "storefront".into());
    a.pod_identities.clear();
    a.service_accounts[0].annotations.clear();
    let up = st.env(&changed).up(&EventSink::discard()).await.unwrap();
    let mut got = up.service_accounts.clone();
    got.sort_by_key(|c| format!("{c:?}"));
    let mut want = vec![
        Change::Updated { service_account: "apps/web".into() },
        Change::Deleted { service_account: "jobs/worker".into() },
        not_ours.clone(),
    ];
    want.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(got, want);
    let web = apps.get("web").await.unwrap();
    assert_eq!(web.metadata.labels.unwrap().get("team").map(String::as_str), Some("storefront"));
    // an annotation the spec dropped is dropped too (eksodus's field manager owned it)
    assert!(!web.metadata.annotations.unwrap_or_default().contains_key("example.com/owner"));
    assert!(jobs.get_opt("worker").await.unwrap().is_none());
    assert!(ns.get_opt("jobs").await.unwrap().is_some(), "a namespace is never deleted");
    let p = st.env(&changed).plan().await.unwrap();
    assert!(p.is_converged(), "{:#?}", p.plan.changes().map(|c| (&c.id, &c.changes)).collect::<Vec<_>>());
    let down = st.env(&changed).down(&EventSink::discard(), Duration::from_secs(5)).await.unwrap();
    assert!(down.remaining.is_empty(), "{:?}", down.remaining);
    assert_eq!(apps.get("theirs").await.unwrap().metadata.labels, theirs.metadata.labels);
}

/// (vCPUs, MiB) of each instance type, read from EC2.
async fn resources_of(ec2: &aws_sdk_ec2::Client, types: &[String]) -> Vec<(i32, i64)> {
    let wanted: Vec<aws_sdk_ec2::types::InstanceType> = types.iter().map(|t| t.as_str().into()).collect();
    let d = ec2.describe_instance_types().set_instance_types(Some(wanted)).send().await.unwrap();
    assert_eq!(d.instance_types().len(), types.len(), "{types:?}");
    d.instance_types()
        .iter()
        .map(|t| {
            (
                t.v_cpu_info().and_then(|v| v.default_v_cpus()).unwrap(),
                t.memory_info().and_then(|m| m.size_in_mib()).unwrap(),
            )
        })
        .collect()
}

/// A nodegroup that asks for resources instead of naming types: the selector's choice is applied and
/// re-plans as empty; a looser selector the running types still satisfy changes nothing (no roll of a
/// working nodegroup because the catalogue grew); one they do not satisfy replaces the nodegroup with a new
/// choice; down leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_selector_is_kept_while_the_running_types_satisfy_it_and_replaced_when_not() {
    let s = spec(
        r#"
name: picker
region: us-east-1
network: {cidr: 10.63.0.0/16, azs: 2, nat: none}
cluster:
  version: "1.33"
  nodegroups:
    - {name: flex, instance_selector: {vcpus: 2, memory_mib: 4096}, min: 1, max: 3, desired: 1}
"#,
    );
    let st = setup(FaultConfig { eks_pending_describes: 1, ..Default::default() }).await;
    let (eks, ec2) = (aws_sdk_eks::Client::new(&st.conf), aws_sdk_ec2::Client::new(&st.conf));
    let first = st.env(&s).plan().await.unwrap();
    assert!(first.notes.iter().any(|n| n.contains("nodegroup flex: the instance selector chose")), "{:?}", first.notes);
    st.env(&s).up(&EventSink::discard()).await.unwrap();
    let types = describe_nodegroup(&eks, "picker", "flex").await.instance_types().to_vec();
    assert!(types.len() > 1, "{types:?}");
    assert!(resources_of(&ec2, &types).await.iter().all(|r| *r == (2, 4096)), "{types:?}");
    let again = st.env(&s).plan().await.unwrap();
    assert!(again.is_converged(), "{:#?}", again.plan.changes().map(|c| (&c.id, &c.changes)).collect::<Vec<_>>());
    assert!(again.notes.iter().any(|n| n.contains("keeps the")), "{:?}", again.notes);

    // looser: more types would match now, but the running ones still do
    let mut looser = s.clone();
    let sel = looser.cluster.as_mut().unwrap().nodegroups[0].instance_selector.as_mut().unwrap();
    sel.memory_mib = serde_json::from_str(r#"{"min": 2048, "max": 8192}"#).unwrap();
    let p = st.env(&looser).plan().await.unwrap();
    assert!(p.is_converged(), "{:#?}", p.plan.changes().map(|c| (&c.id, &c.changes)).collect::<Vec<_>>());

    // four vCPUs and 4 GiB: no such type, and the error says what was asked for
    let mut bigger = s.clone();
    let sel = bigger.cluster.as_mut().unwrap().nodegroups[0].instance_selector.as_mut().unwrap();
    sel.vcpus = serde_json::from_str("4").unwrap();
    let e = st.env(&bigger).plan().await.unwrap_err().to_string();
    assert!(
        e.contains("cluster.nodegroups[0].instance_selector")
            && e.contains("no On-Demand x86_64 instance type has 4 vCPUs, 4096 MiB of memory and 0 GPUs"),
        "{e}"
    );
    // four vCPUs and 8 GiB: none of the running types, so a new choice and a new nodegroup
    let sel = bigger.cluster.as_mut().unwrap().nodegroups[0].instance_selector.as_mut().unwrap();
    sel.memory_mib = serde_json::from_str("8192").unwrap();
    let p = st.env(&bigger).plan().await.unwrap();
    let ng = p.plan.changes().find(|c| c.key == "eks/nodegroup/flex").expect("the nodegroup changes");
    assert_eq!(format!("{:?}", ng.action), "Replace", "{:?}", ng.changes);
    st.env(&bigger).up(&EventSink::discard()).await.unwrap();
    let now = describe_nodegroup(&eks, "picker", "flex").await.instance_types().to_vec();
    assert!(resources_of(&ec2, &now).await.iter().all(|r| *r == (4, 8192)), "{now:?}");
    let again = st.env(&bigger).plan().await.unwrap();
    assert!(again.is_converged(), "{:#?}", again.plan.changes().map(|c| (&c.id, &c.changes)).collect::<Vec<_>>());

    let down = st.env(&bigger).down(&EventSink::discard(), Duration::from_secs(5)).await.unwrap();
    assert!(down.report.is_success(), "{:?}", down.report.failures().collect::<Vec<_>>());
    assert!(down.remaining.is_empty(), "{:?}", down.remaining);
}

/// The retention and tags of the group named `name`, or `None` without one.
async fn log_group(logs: &aws_sdk_cloudwatchlogs::Client, name: &str) -> Option<(Option<i32>, Vec<(String, String)>)> {
    let r = logs.describe_log_groups().log_group_name_prefix(name).send().await.unwrap();
    let g = r.log_groups().iter().find(|g| g.log_group_name() == Some(name))?.clone();
    let arn = g.log_group_arn().map(String::from).unwrap_or_else(|| g.arn().unwrap().trim_end_matches(":*").into());
    let t = logs.list_tags_for_resource().resource_arn(&arn).send().await.unwrap();
    let mut tags: Vec<(String, String)> = t.tags().cloned().unwrap_or_default().into_iter().collect();
    tags.sort();
    Some((g.retention_in_days(), tags))
}

/// Plans `s` (the log group's step is `action`), applies it, checks the group's retention is `days` and that a
/// re-plan is empty; the group's tags.
async fn apply_log_group(
    st: &Setup,
    s: &EnvironmentSpec,
    logs: &aws_sdk_cloudwatchlogs::Client,
    name: &str,
    action: &str,
    days: i32,
) -> Vec<(String, String)> {
    let p = st.env(s).plan().await.unwrap();
    let step = p.plan.changes().find(|c| c.key == "logs/cluster").expect("the group is planned");
    assert_eq!(format!("{:?}", step.action), action);
    st.env(s).up(&EventSink::discard()).await.unwrap();
    let (have, tags) = log_group(logs, name).await.expect("the group");
    assert_eq!(have, Some(days));
    let again = st.env(s).plan().await.unwrap();
    assert!(again.is_converged(), "{:#?}", again.plan.changes().map(|c| (&c.id, &c.changes)).collect::<Vec<_>>());
    tags
}

/// With `log_retention_days`, the control plane's log group is eksodus's: made before the cluster with the
/// retention and tags, re-planned as empty, a retention or tag change is one in-place update, and down deletes
/// it after the cluster. A group of that name someone else made is left as it is, and the plan says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_log_group_is_made_with_its_retention_changed_in_place_and_deleted() {
    let s = spec(
        r#"
name: logret
region: us-east-1
tags: {team: platform}
network: {cidr: 10.62.0.0/16, azs: 2, nat: none}
cluster:
  version: "1.33"
  logging: [api, audit]
  log_retention_days: 30
  nodegroups:
    - {name: general, instance_types: [m5.large]}
"#,
    );
    let st = setup(FaultConfig::default()).await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&st.conf);
    let name = "/aws/eks/logret/cluster";
    let tags = apply_log_group(&st, &s, &logs, name, "Create", 30).await;
    assert!(tags.contains(&("team".into(), "platform".into())), "{tags:?}");
    assert!(tags.contains(&("eksodus.io/environment".into(), "logret".into())), "{tags:?}");

    let mut changed = s.clone();
    changed.cluster.as_mut().unwrap().log_retention_days = Some(90);
    changed.tags = [("team".to_string(), "data".to_string())].into();
    let tags = apply_log_group(&st, &changed, &logs, name, "Update", 90).await;
    assert!(tags.contains(&("team".into(), "data".into())), "{tags:?}");
    let down = st.env(&changed).down(&EventSink::discard(), Duration::from_secs(5)).await.unwrap();
    assert!(down.report.is_success(), "{:?}", down.report.failures().collect::<Vec<_>>());
    assert!(down.remaining.is_empty(), "{:?}", down.remaining);
    assert_eq!(log_group(&logs, name).await, None, "down deletes the group");

    // someone else's group of the name: not planned, not changed, not deleted (another environment's name,
    // as moto keeps a deleted group's tags and gives them to the next group of its name)
    let mut s = s.clone();
    s.name = "logforeign".into();
    let name = "/aws/eks/logforeign/cluster";
    logs.create_log_group().log_group_name(name).send().await.unwrap();
    let p = st.env(&s).plan().await.unwrap();
    assert!(
        p.plan.changes().all(|c| c.key != "logs/cluster"),
        "{:#?}",
        p.plan.changes().map(|c| (&c.id, &c.action, &c.changes)).collect::<Vec<_>>()
    );
    assert!(p.notes.iter().any(|n| n.contains(name) && n.contains("not this environment's")), "{:?}", p.notes);
    st.env(&s).up(&EventSink::discard()).await.unwrap();
    let down = st.env(&s).down(&EventSink::discard(), Duration::from_secs(5)).await.unwrap();
    assert!(down.report.is_success(), "{:?}", down.report.failures().collect::<Vec<_>>());
    assert_eq!(log_group(&logs, name).await, Some((None, vec![])), "the foreign group is left as it was");
    policy_covers_every_call(&st, &s);
}

const AUTO_MODE_SPEC: &str = r#"
name: automode
region: us-east-1
network: {cidr: 10.63.0.0/16, azs: 2, nat: none}
cluster:
  version: "1.33"
  nodegroups: [{name: general, instance_types: [m5.large]}]
"#;

/// Auto Mode turned on for a running cluster and off again, in place: compute, block storage and load
/// balancing change in one update, the cluster role gains and keeps the policies it needs while on, the pools'
/// node role comes and goes, and each state re-plans as empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_mode_turns_on_and_off_in_place() {
    let s = spec(AUTO_MODE_SPEC);
    assert_eq!(s.validate(), vec![]);
    let st = setup(FaultConfig::default()).await;
    st.env(&s).up(&EventSink::discard()).await.unwrap();
    let eks = aws_sdk_eks::Client::new(&st.conf);
    let iam = aws_sdk_iam::Client::new(&st.conf);
    let compute = |c: &aws_sdk_eks::types::Cluster| c.compute_config().and_then(|x| x.enabled()).unwrap_or(false);
    let cluster = eks.describe_cluster().name("automode").send().await.unwrap().cluster().unwrap().clone();
    assert!(!compute(&cluster));

    let on = spec(&format!("{}  auto_mode: {{node_pools: [system]}}\n", AUTO_MODE_SPEC));
    let p = st.env(&on).plan().await.unwrap();
    let mut steps: Vec<(String, String)> =
        p.plan.changes().map(|c| (c.key.clone(), format!("{:?}", c.action))).collect();
    steps.sort();
    let step = |k: &str, a: &str| (k.to_string(), a.to_string());
    assert_eq!(
        steps,
        [step("eks/cluster", "Update"), step("role/auto-node", "Create"), step("role/cluster", "Update")],
        "nothing replaced"
    );
    st.env(&on).up(&EventSink::discard()).await.unwrap();
    let cluster = eks.describe_cluster().name("automode").send().await.unwrap().cluster().unwrap().clone();
    assert!(compute(&cluster));
    assert_eq!(cluster.compute_config().unwrap().node_pools(), ["system"]);
    assert!(cluster.compute_config().unwrap().node_role_arn().is_some_and(|r| r.ends_with("/automode-auto-node")));
    assert_eq!(cluster.storage_config().and_then(|x| x.block_storage()).and_then(|b| b.enabled()), Some(true));
    let attached = iam.list_attached_role_policies().role_name("automode-cluster").send().await.unwrap();
    assert!(attached.attached_policies().iter().any(|p| p.policy_name() == Some("AmazonEKSComputePolicy")));
    let again = st.env(&on).plan().await.unwrap();
    assert!(again.is_converged(), "{:#?}", again.plan.changes().map(|c| (&c.id, &c.changes)).collect::<Vec<_>>());

    st.env(&s).up(&EventSink::discard()).await.unwrap();
    let cluster = eks.describe_cluster().name("automode").send().await.unwrap().cluster().unwrap().clone();
    assert!(!compute(&cluster));
    assert_eq!(cluster.storage_config().and_then(|x| x.block_storage()).and_then(|b| b.enabled()), Some(false));
    assert!(iam.get_role().role_name("automode-auto-node").send().await.is_err(), "the pools' role is gone");
    let again = st.env(&s).plan().await.unwrap();
    assert!(again.is_converged(), "{:#?}", again.plan.changes().map(|c| (&c.id, &c.changes)).collect::<Vec<_>>());
    policy_covers_every_call(&st, &on);
    let down = st.env(&s).down(&EventSink::discard(), Duration::from_secs(5)).await.unwrap();
    assert!(down.report.is_success(), "{:?}", down.report.failures().collect::<Vec<_>>());
    assert!(down.remaining.is_empty(), "{:?}", down.remaining);
}

const HYBRID_SPEC: &str = r#"
name: hybrid
region: us-east-1
network: {cidr: 10.70.0.0/16, azs: 2, nat: single}
cluster:
  version: "1.33"
  nodegroups: [{name: general, instance_types: [m5.large]}]
"#;

/// The security group of this name.
async fn group_named(ec2: &aws_sdk_ec2::Client, name: &str) -> aws_sdk_ec2::types::SecurityGroup {
    let f = aws_sdk_ec2::types::Filter::builder().name("group-name").values(name).build();
    ec2.describe_security_groups().filters(f).send().await.unwrap().security_groups()[0].clone()
}

/// The port-443 sources of a group, as (eksodus's, anyone else's).
async fn https_sources(ec2: &aws_sdk_ec2::Client, group: &str) -> (Vec<String>, Vec<String>) {
    let g = group_named(ec2, group).await;
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for r in g.ip_permissions().iter().filter(|p| p.from_port() == Some(443)) {
        for x in r.ip_ranges() {
            let c = x.cidr_ip().unwrap_or_default().to_string();
            if x.description() == Some(eksodus_net::ec2::REMOTE_RULE_DESCRIPTION) {
                ours.push(c)
            } else {
                theirs.push(c)
            }
        }
    }
    ours.sort();
    theirs.sort();
    (ours, theirs)
}

/// Hybrid nodes added to a running cluster, their networks changed and then taken away, each in place: the
/// cluster's remote networks, the role eksodus makes for them with its HYBRID_LINUX entry, and the cluster
/// group's port-443 rules from those networks; a rule of the user's on the same port is left alone, and each
/// re-plan is empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_nodes_networks_role_and_entry_are_added_changed_and_taken_away_in_place() {
    let s = spec(HYBRID_SPEC);
    let st = setup(FaultConfig::default()).await;
    st.env(&s).up(&EventSink::discard()).await.unwrap();
    let eks = aws_sdk_eks::Client::new(&st.conf);
    let ec2 = aws_sdk_ec2::Client::new(&st.conf);
    let iam = aws_sdk_iam::Client::new(&st.conf);
    let with = |remote: &str| spec(&format!("{HYBRID_SPEC}  remote_network: {remote}\n"));
    let on = with("{node_cidrs: [192.168.100.0/24], pod_cidrs: [192.168.128.0/18]}");
    assert_eq!(on.validate(), vec![]);
    let p = st.env(&on).plan().await.unwrap();
    let mut steps: Vec<(String, String)> =
        p.plan.changes().map(|c| (c.key.clone(), format!("{:?}", c.action))).collect();
    steps.sort();
    let role = eksodus::access::iam::hybrid_role_arn(&on, &st.aws.account_id).unwrap();
    let step = |k: &str, a: &str| (k.to_string(), a.to_string());
    assert_eq!(
        steps,
        [
            step("eks/cluster", "Update"),
            step(&format!("entry/{role}"), "Create"),
            step("role/hybrid-nodes", "Create"),
            step("sg/cluster", "Update"),
        ],
        "nothing replaced"
    );
    st.env(&on).up(&EventSink::discard()).await.unwrap();
    let networks = |c: &aws_sdk_eks::types::Cluster| {
        let r = c.remote_network_config();
        let nodes: Vec<String> =
            r.iter().flat_map(|r| r.remote_node_networks()).flat_map(|n| n.cidrs().to_vec()).collect();
        let pods: Vec<String> =
            r.iter().flat_map(|r| r.remote_pod_networks()).flat_map(|n| n.cidrs().to_vec()).collect();
        (nodes, pods)
    };
    let cluster = eks.describe_cluster().name("hybrid").send().await.unwrap().cluster.unwrap();
    let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(networks(&cluster), (v(&["192.168.100.0/24"]), v(&["192.168.128.0/18"])));
    let entry = eks.describe_access_entry().cluster_name("hybrid").principal_arn(&role).send().await.unwrap();
    assert_eq!(entry.access_entry().and_then(|e| e.r#type()), Some("HYBRID_LINUX"));
    let inline = iam.list_role_policies().role_name("hybrid-hybrid-nodes").send().await.unwrap();
    assert_eq!(inline.policy_names(), [eksodus::access::iam::HYBRID_POLICY_NAME]);
    assert_eq!(https_sources(&ec2, "hybrid-cluster").await, (v(&["192.168.100.0/24", "192.168.128.0/18"]), vec![]));
    let again = st.env(&on).plan().await.unwrap();
    assert!(again.is_converged(), "{:#?}", again.plan.changes().map(|c| (&c.id, &c.changes)).collect::<Vec<_>>());

    // a rule of the user's on the same port (their VPN), then other networks: only eksodus's rules follow
    let group = group_named(&ec2, "hybrid-cluster").await.group_id().unwrap().to_string();
    let vpn = aws_sdk_ec2::types::IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(443)
        .to_port(443)
        .ip_ranges(aws_sdk_ec2::types::IpRange::builder().cidr_ip("172.31.0.0/16").description("the VPN").build())
        .build();
    ec2.authorize_security_group_ingress().group_id(&group).ip_permissions(vpn).send().await.unwrap();
    let moved = with("{node_cidrs: [192.168.100.0/24, 172.16.8.0/22]}");
    let p = st.env(&moved).plan().await.unwrap();
    let keys: Vec<&str> = p.plan.changes().map(|c| c.key.as_str()).collect();
    assert_eq!(keys.len(), 2, "the cluster and its group change, in place: {keys:?}");
    assert!(p.plan.changes().all(|c| format!("{:?}", c.action) == "Update"));
    st.env(&moved).up(&EventSink::discard()).await.unwrap();
    let cluster = eks.describe_cluster().name("hybrid").send().await.unwrap().cluster.unwrap();
    assert_eq!(networks(&cluster), (v(&["172.16.8.0/22", "192.168.100.0/24"]), vec![]));
    assert_eq!(
        https_sources(&ec2, "hybrid-cluster").await,
        (v(&["172.16.8.0/22", "192.168.100.0/24"]), v(&["172.31.0.0/16"]))
    );
    assert!(st.env(&moved).plan().await.unwrap().is_converged());

    // taken away: no networks, rules, role or entry are left; the user's rule stays
    st.env(&s).up(&EventSink::discard()).await.unwrap();
    let cluster = eks.describe_cluster().name("hybrid").send().await.unwrap().cluster.unwrap();
    assert_eq!(networks(&cluster), (vec![], vec![]));
    assert_eq!(https_sources(&ec2, "hybrid-cluster").await, (vec![], v(&["172.31.0.0/16"])));
    assert!(iam.get_role().role_name("hybrid-hybrid-nodes").send().await.is_err(), "the role is gone");
    assert!(eks.describe_access_entry().cluster_name("hybrid").principal_arn(&role).send().await.is_err());
    let again = st.env(&s).plan().await.unwrap();
    assert!(again.is_converged(), "{:#?}", again.plan.changes().map(|c| (&c.id, &c.changes)).collect::<Vec<_>>());
    policy_covers_every_call(&st, &on);
    let down = st.env(&s).down(&EventSink::discard(), Duration::from_secs(5)).await.unwrap();
    assert!(down.report.is_success(), "{:?}", down.report.failures().collect::<Vec<_>>());
    assert!(down.remaining.is_empty(), "{:?}", down.remaining);
}

const FARGATE_SPEC: &str = r#"
name: fargate
region: us-east-1
tags: {team: platform}
network: {cidr: 10.64.0.0/16, azs: 2, nat: single}
cluster:
  version: "1.33"
  nodegroups: [{name: general, instance_types: [m5.large]}]
  fargate_profiles:
    - name: system
      selectors: [{namespace: kube-system, labels: {k8s-app: kube-dns}}]
    - name: apps
      selectors: [{namespace: 'team-*'}, {namespace: default}]
      tags: {cost-center: shop}
"#;

/// Fargate profiles as EKS makes them: one at a time (the emulator answers 409 to a second while one is
/// CREATING or DELETING), in the private subnets, running as the pod execution role eksodus made; a re-plan is
/// empty, a tag change is one in-place update, a selector change replaces the profile, and down deletes the
/// profiles before the cluster and the role after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fargate_profiles_are_made_one_at_a_time_retagged_in_place_replaced_and_deleted() {
    let s = spec(FARGATE_SPEC);
    assert_eq!(s.validate(), vec![]);
    let st = setup(FaultConfig { eks_pending_describes: 1, ..Default::default() }).await;
    let eks = aws_sdk_eks::Client::new(&st.conf);
    let ec2 = aws_sdk_ec2::Client::new(&st.conf);
    let iam = aws_sdk_iam::Client::new(&st.conf);
    st.env(&s).up(&EventSink::discard()).await.unwrap();

    let describe = |name: &'static str| {
        let eks = eks.clone();
        async move {
            let r = eks.describe_fargate_profile().cluster_name("fargate").fargate_profile_name(name).send().await;
            r.unwrap().fargate_profile().unwrap().clone()
        }
    };
    let mut names =
        eks.list_fargate_profiles().cluster_name("fargate").send().await.unwrap().fargate_profile_names().to_vec();
    names.sort();
    assert_eq!(names, ["apps", "system"]);
    let apps = describe("apps").await;
    assert_eq!(apps.status().map(|s| s.as_str()), Some("ACTIVE"));
    assert!(apps.pod_execution_role_arn().unwrap().ends_with("/fargate-fargate"), "{apps:?}");
    let tags = apps.tags().unwrap();
    assert_eq!(tags.get("cost-center").map(String::as_str), Some("shop"));
    assert_eq!(tags.get("team").map(String::as_str), Some("platform"));
    // the subnets are the private ones: none routes to an internet gateway
    assert_eq!(apps.subnets().len(), 2);
    for subnet in apps.subnets() {
        let rt = ec2
            .describe_route_tables()
            .filters(aws_sdk_ec2::types::Filter::builder().name("association.subnet-id").values(subnet).build())
            .send()
            .await
            .unwrap();
        let routes: Vec<_> = rt.route_tables().iter().flat_map(|t| t.routes()).collect();
        assert!(!routes.is_empty() && routes.iter().all(|r| !r.gateway_id().unwrap_or("").starts_with("igw-")));
    }
    let role = iam.get_role().role_name("fargate-fargate").send().await.unwrap();
    let doc = role.role().unwrap().assume_role_policy_document().unwrap();
    let trust = eksodus_access::policy::PolicyDocument::canonical_from_iam(doc).expect("a policy document");
    assert!(trust.to_string().contains("eks-fargate-pods.amazonaws.com"), "{trust}");
    let again = st.env(&s).plan().await.unwrap();
    assert!(again.is_converged(), "{:#?}", again.plan.changes().map(|c| (&c.id, &c.changes)).collect::<Vec<_>>());

    // a tag is one update in place: the profile stays as it is
    let mut retagged = s.clone();
    retagged.cluster.as_mut().unwrap().fargate_profiles[0].tags = [("owner".to_string(), "sre".to_string())].into();
    let p = st.env(&retagged).plan().await.unwrap();
    let steps: Vec<(String, String)> = p.plan.changes().map(|c| (c.key.clone(), format!("{:?}", c.action))).collect();
    assert_eq!(steps, [("eks/fargate-profile/system".to_string(), "Update".to_string())]);
    let before = describe("system").await.fargate_profile_arn().map(String::from);
    st.env(&retagged).up(&EventSink::discard()).await.unwrap();
    let system = describe("system").await;
    assert_eq!(system.tags().unwrap().get("owner").map(String::as_str), Some("sre"));
    assert_eq!(system.fargate_profile_arn().map(String::from), before, "the same profile, retagged");

    // a selector cannot change in place: the profile is replaced, and the other one is left alone
    let mut reselected = retagged.clone();
    reselected.cluster.as_mut().unwrap().fargate_profiles[0].selectors[0].labels.clear();
    let p = st.env(&reselected).plan().await.unwrap();
    let steps: Vec<(String, String)> = p.plan.changes().map(|c| (c.key.clone(), format!("{:?}", c.action))).collect();
    assert_eq!(steps, [("eks/fargate-profile/system".to_string(), "Replace".to_string())]);
    let apps_arn = describe("apps").await.fargate_profile_arn().map(String::from);
    st.env(&reselected).up(&EventSink::discard()).await.unwrap();
    let system = describe("system").await;
    assert!(system.selectors()[0].labels().is_none_or(|l| l.is_empty()), "{system:?}");
    assert_ne!(system.fargate_profile_arn().map(String::from), before, "a new profile");
    assert_eq!(system.tags().unwrap().get("owner").map(String::as_str), Some("sre"), "made with its tags");
    assert_eq!(describe("apps").await.fargate_profile_arn().map(String::from), apps_arn);
    let again = st.env(&reselected).plan().await.unwrap();
    assert!(again.is_converged(), "{:#?}", again.plan.changes().map(|c| (&c.id, &c.changes)).collect::<Vec<_>>());
    policy_covers_every_call(&st, &reselected);

    let down = st.env(&reselected).down(&EventSink::discard(), Duration::from_secs(5)).await.unwrap();
    assert!(down.report.is_success(), "{:?}", down.report.failures().collect::<Vec<_>>());
    assert!(down.remaining.is_empty(), "{:?}", down.remaining);
    assert!(iam.get_role().role_name("fargate-fargate").send().await.is_err(), "the pod execution role is gone");
    assert!(eks.describe_cluster().name("fargate").send().await.is_err(), "the cluster is gone");
    // one create and one delete per profile made: the lock kept eksodus from racing EKS's one-at-a-time rule
    let seen = st.aws.proxy.stats().by_operation();
    assert_eq!(seen.get("eks:CreateFargateProfile"), Some(&3), "{seen:?}");
    assert_eq!(seen.get("eks:DeleteFargateProfile"), Some(&3), "{seen:?}");
}

/// `up` crashed at each of its last writes (the Fargate profiles come last, after the cluster) converges when
/// run again: each profile once, adopted where its create had landed, and a re-plan is empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fargate_profiles_resume_after_a_crash_at_each_of_the_last_writes() {
    let s = spec(FARGATE_SPEC);
    let m = writes_of_clean_up(&s).await as u64;
    for k in m.saturating_sub(6)..=m {
        let st =
            setup(FaultConfig { crash_after_mutations: Some(k), eks_pending_describes: 1, ..Default::default() }).await;
        let crashed = st.env(&s).up(&EventSink::discard()).await;
        assert!(crashed.is_err() || k >= m, "k={k}: the crash must interrupt up");
        st.aws.proxy.heal();
        let env = st.env(&s);
        env.up(&EventSink::discard()).await.unwrap_or_else(|e| panic!("k={k}: re-run failed: {e}"));
        let p = env.plan().await.unwrap();
        assert!(p.is_converged(), "k={k}: {:?}", p.plan.changes().map(|c| &c.id).collect::<Vec<_>>());
        let eks = aws_sdk_eks::Client::new(&st.conf);
        let mut names =
            eks.list_fargate_profiles().cluster_name("fargate").send().await.unwrap().fargate_profile_names().to_vec();
        names.sort();
        assert_eq!(names, ["apps", "system"], "k={k}");
    }
}

const CAPABILITY_SPEC: &str = r#"
name: caps
region: us-east-1
tags: {team: platform}
network: {cidr: 10.66.0.0/16, azs: 2, nat: single}
cluster:
  version: "1.33"
  capabilities:
    - name: ack
      type: ACK
      attach_policy_arns: [arn:aws:iam::aws:policy/AmazonS3FullAccess]
      access_policies: [{policy: AmazonEKSEditPolicy, namespaces: [shop]}]
      tags: {cost-center: shop}
    - name: gitops
      type: ARGOCD
      argocd:
        idc_instance_arn: arn:aws:sso:::instance/ssoins-0123456789abcdef
        rbac_role_mappings: [{role: ADMIN, identities: [{id: g1, type: SSO_GROUP}]}]
"#;

/// The access policies on a principal's entry, as `<policy name>|<scope>`, sorted.
async fn entry_policies(eks: &aws_sdk_eks::Client, cluster: &str, principal: &str) -> Vec<String> {
    let r = eks.list_associated_access_policies().cluster_name(cluster).principal_arn(principal).send().await.unwrap();
    let mut out: Vec<String> = r
        .associated_access_policies()
        .iter()
        .map(|p| {
            let name = p.policy_arn().unwrap_or_default().rsplit('/').next().unwrap_or_default().to_string();
            let ns = p.access_scope().map(|s| s.namespaces().join(",")).unwrap_or_default();
            format!("{name}|{ns}")
        })
        .collect();
    out.sort();
    out
}

/// EKS capabilities as EKS runs them: each as the role eksodus made for it (trusting the capabilities
/// service, with the spec's policies), let into the cluster by the access entry EKS makes with its own access
/// policy, beside which the spec's go; a re-plan is empty, role mappings and access policies change in place,
/// a new Argo CD namespace replaces the capability, and down deletes the capabilities (and with them EKS's
/// entries) before the cluster and their roles after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_run_as_their_roles_change_in_place_are_replaced_and_deleted() {
    let s = spec(CAPABILITY_SPEC);
    assert_eq!(s.validate(), vec![]);
    let st = setup(FaultConfig { eks_pending_describes: 1, ..Default::default() }).await;
    let eks = aws_sdk_eks::Client::new(&st.conf);
    let iam = aws_sdk_iam::Client::new(&st.conf);
    st.env(&s).up(&EventSink::discard()).await.unwrap();

    let describe = |name: &'static str| {
        let eks = eks.clone();
        async move {
            let r = eks.describe_capability().cluster_name("caps").capability_name(name).send().await;
            r.unwrap().capability().unwrap().clone()
        }
    };
    let mut names: Vec<String> = eks
        .list_capabilities()
        .cluster_name("caps")
        .send()
        .await
        .unwrap()
        .capabilities()
        .iter()
        .filter_map(|c| c.capability_name().map(String::from))
        .collect();
    names.sort();
    assert_eq!(names, ["ack", "gitops"]);
    let ack = describe("ack").await;
    assert_eq!(ack.status().map(|s| s.as_str()), Some("ACTIVE"));
    assert_eq!(ack.delete_propagation_policy().map(|p| p.as_str()), Some("RETAIN"));
    let ack_role = ack.role_arn().unwrap().to_string();
    assert!(ack_role.ends_with("/caps-capability-ack"), "{ack_role}");
    let tags = ack.tags().unwrap();
    assert_eq!(
        (tags.get("cost-center").map(String::as_str), tags.get("team").map(String::as_str)),
        (Some("shop"), Some("platform"))
    );
    let role = iam.get_role().role_name("caps-capability-ack").send().await.unwrap();
    let doc = role.role().unwrap().assume_role_policy_document().unwrap();
    let trust = eksodus_access::policy::PolicyDocument::canonical_from_iam(doc).expect("a policy document").to_string();
    assert!(trust.contains("capabilities.eks.amazonaws.com") && trust.contains("sts:TagSession"), "{trust}");
    let attached = iam.list_attached_role_policies().role_name("caps-capability-ack").send().await.unwrap();
    let attached: Vec<&str> = attached.attached_policies().iter().filter_map(|p| p.policy_name()).collect();
    assert_eq!(attached, ["AmazonS3FullAccess"]);
    // EKS's own policy on the entry it made, and the spec's beside it
    assert_eq!(entry_policies(&eks, "caps", &ack_role).await, ["AmazonEKSACKPolicy|", "AmazonEKSEditPolicy|shop"]);
    let gitops = describe("gitops").await;
    let argo = gitops.configuration().and_then(|c| c.argo_cd()).unwrap();
    assert_eq!(argo.namespace(), Some("argocd"));
    assert_eq!(argo.aws_idc().and_then(|i| i.idc_region()), Some("us-east-1"));
    let again = st.env(&s).plan().await.unwrap();
    assert!(again.is_converged(), "{:#?}", again.plan.changes().map(|c| (&c.id, &c.changes)).collect::<Vec<_>>());

    // a role mapping and an access policy's namespaces change in place: the capabilities stay
    let mut changed = s.clone();
    {
        let caps = &mut changed.cluster.as_mut().unwrap().capabilities;
        caps[0].access_policies[0].namespaces = vec!["shop".into(), "infra".into()];
        caps[0].access_policies.push(eksodus_core::spec::PolicyAssociationSpec {
            policy: "AmazonEKSViewPolicy".into(),
            namespaces: vec![],
        });
        let argo = caps[1].argocd.as_mut().unwrap();
        argo.rbac_role_mappings.push(eksodus_core::spec::ArgoCdRoleMapping {
            role: "VIEWER".into(),
            identities: vec![eksodus_core::spec::SsoIdentity { id: "u1".into(), kind: "SSO_USER".into() }],
        });
    }
    let p = st.env(&changed).plan().await.unwrap();
    let steps: Vec<(String, String)> = p.plan.changes().map(|c| (c.key.clone(), format!("{:?}", c.action))).collect();
    assert_eq!(
        steps,
        [
            ("eks/capability/ack".to_string(), "Update".to_string()),
            ("eks/capability/gitops".to_string(), "Update".to_string())
        ]
    );
    let (ack_arn, gitops_arn) = (ack.arn().map(String::from), gitops.arn().map(String::from));
    st.env(&changed).up(&EventSink::discard()).await.unwrap();
    assert_eq!(
        entry_policies(&eks, "caps", &ack_role).await,
        ["AmazonEKSACKPolicy|", "AmazonEKSEditPolicy|infra,shop", "AmazonEKSViewPolicy|"]
    );
    let gitops = describe("gitops").await;
    let roles: Vec<&str> = gitops
        .configuration()
        .and_then(|c| c.argo_cd())
        .unwrap()
        .rbac_role_mappings()
        .iter()
        .map(|m| m.role().as_str())
        .collect();
    assert_eq!(roles, ["ADMIN", "VIEWER"]);
    assert_eq!(
        (describe("ack").await.arn().map(String::from), gitops.arn().map(String::from)),
        (ack_arn, gitops_arn.clone())
    );
    let again = st.env(&changed).plan().await.unwrap();
    assert!(again.is_converged(), "{:#?}", again.plan.changes().map(|c| (&c.id, &c.changes)).collect::<Vec<_>>());

    // dropping them takes them off again; a new Argo CD namespace replaces that capability alone
    let mut moved = s.clone();
    moved.cluster.as_mut().unwrap().capabilities[1].argocd.as_mut().unwrap().namespace = "gitops".into();
    let p = st.env(&moved).plan().await.unwrap();
    let steps: Vec<(String, String)> = p.plan.changes().map(|c| (c.key.clone(), format!("{:?}", c.action))).collect();
    assert_eq!(
        steps,
        [
            ("eks/capability/ack".to_string(), "Update".to_string()),
            ("eks/capability/gitops".to_string(), "Replace".to_string())
        ]
    );
    st.env(&moved).up(&EventSink::discard()).await.unwrap();
    assert_eq!(entry_policies(&eks, "caps", &ack_role).await, ["AmazonEKSACKPolicy|", "AmazonEKSEditPolicy|shop"]);
    let gitops = describe("gitops").await;
    assert_eq!(gitops.configuration().and_then(|c| c.argo_cd()).and_then(|a| a.namespace()), Some("gitops"));
    assert_ne!(gitops.arn().map(String::from), gitops_arn, "a new capability");
    let gitops_role = gitops.role_arn().unwrap().to_string();
    assert!(entry_policies(&eks, "caps", &gitops_role).await.contains(&"AmazonEKSArgoCDPolicy|gitops".to_string()));
    let again = st.env(&moved).plan().await.unwrap();
    assert!(again.is_converged(), "{:#?}", again.plan.changes().map(|c| (&c.id, &c.changes)).collect::<Vec<_>>());
    policy_covers_every_call(&st, &changed);
    policy_covers_every_call(&st, &moved);

    let down = st.env(&moved).down(&EventSink::discard(), Duration::from_secs(5)).await.unwrap();
    assert!(down.report.is_success(), "{:?}", down.report.failures().collect::<Vec<_>>());
    assert!(down.remaining.is_empty(), "{:?}", down.remaining);
    for r in ["caps-capability-ack", "caps-capability-gitops"] {
        assert!(iam.get_role().role_name(r).send().await.is_err(), "{r} is gone");
    }
    assert!(eks.describe_cluster().name("caps").send().await.is_err(), "the cluster is gone");
    let seen = st.aws.proxy.stats().by_operation();
    assert_eq!(seen.get("eks:CreateCapability"), Some(&3), "{seen:?}");
    assert_eq!(seen.get("eks:DeleteCapability"), Some(&3), "{seen:?}");
}

/// `up` crashed at each of its last writes (the capabilities and their access policies come last) converges
/// when run again: each capability once, adopted where its create had landed, its policies on its entry, and
/// a re-plan is empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_resume_after_a_crash_at_each_of_the_last_writes() {
    let s = spec(CAPABILITY_SPEC);
    let m = writes_of_clean_up(&s).await as u64;
    for k in m.saturating_sub(6)..=m {
        let st =
            setup(FaultConfig { crash_after_mutations: Some(k), eks_pending_describes: 1, ..Default::default() }).await;
        let crashed = st.env(&s).up(&EventSink::discard()).await;
        assert!(crashed.is_err() || k >= m, "k={k}: the crash must interrupt up");
        st.aws.proxy.heal();
        let env = st.env(&s);
        env.up(&EventSink::discard()).await.unwrap_or_else(|e| panic!("k={k}: re-run failed: {e}"));
        let p = env.plan().await.unwrap();
        assert!(p.is_converged(), "k={k}: {:?}", p.plan.changes().map(|c| &c.id).collect::<Vec<_>>());
        let eks = aws_sdk_eks::Client::new(&st.conf);
        let caps = eks.list_capabilities().cluster_name("caps").send().await.unwrap();
        let mut names: Vec<&str> = caps.capabilities().iter().filter_map(|c| c.capability_name()).collect();
        names.sort();
        assert_eq!(names, ["ack", "gitops"], "k={k}");
        let ack = eks.describe_capability().cluster_name("caps").capability_name("ack").send().await.unwrap();
        let role = ack.capability().unwrap().role_arn().unwrap().to_string();
        assert!(entry_policies(&eks, "caps", &role).await.contains(&"AmazonEKSEditPolicy|shop".to_string()), "k={k}");
    }
}
