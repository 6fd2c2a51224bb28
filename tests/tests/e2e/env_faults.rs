//! The whole environment under faults: `up`, `upgrade` and `down` over many seeds of throttling, 5xx, dropped
//! connections and lost responses (nothing duplicated, nothing left); a crash at every write of `down`; and a
//! `down` whose cluster API server does not even resolve.

use std::time::Duration;

use eksodus_cluster::environment::KubeAccess;
use eksodus_core::events::EventSink;
use eksodus_e2e::spec;
use eksodus_testkit::FaultConfig;

use crate::env_lifecycle::{setup, ENV};

/// The faults of the issue: 20% throttling, 5% 5xx, 2% dropped connections, 2% responses lost after moto acted.
fn faults(seed: u64) -> FaultConfig {
    FaultConfig {
        seed,
        throttle_rate: 0.20,
        server_error_rate: 0.05,
        drop_rate: 0.02,
        lost_response_rate: 0.02,
        ..Default::default()
    }
}

/// Counts of what duplicates would show up in: VPCs, clusters, nodegroups, roles, NAT gateways, launch
/// templates.
async fn census(st: &crate::env_lifecycle::Setup) -> (usize, usize, usize, usize, usize, usize) {
    let ec2 = aws_sdk_ec2::Client::new(&st.conf);
    let eks = aws_sdk_eks::Client::new(&st.conf);
    let iam = aws_sdk_iam::Client::new(&st.conf);
    let vpcs = ec2.describe_vpcs().send().await.unwrap();
    let vpcs = vpcs.vpcs().iter().filter(|v| v.is_default() != Some(true)).count();
    let nats = ec2.describe_nat_gateways().send().await.unwrap();
    let nats = nats
        .nat_gateways()
        .iter()
        .filter(|n| !matches!(n.state().map(|s| s.as_str()), Some("deleted") | Some("deleting")))
        .count();
    let clusters = eks.list_clusters().send().await.unwrap().clusters().len();
    let nodegroups = match eks.list_nodegroups().cluster_name("envtest").send().await {
        Ok(r) => r.nodegroups().len(),
        Err(_) => 0,
    };
    let roles = iam.list_roles().path_prefix("/eksodus/").send().await.unwrap().roles().len();
    let templates = ec2.describe_launch_templates().send().await.unwrap().launch_templates().len();
    (vpcs, clusters, nodegroups, roles, nats, templates)
}

/// One seed: `up`, `upgrade` and `down` through the faults, then the same checks a fault-free run passes.
async fn one_seed(seed: u64) {
    let s = spec(ENV);
    let st = setup(faults(seed)).await;
    let env = st.env(&s);
    env.up(&EventSink::discard()).await.unwrap_or_else(|e| panic!("seed {seed}: up: {e}"));
    let after_up = {
        st.aws.proxy.heal();
        let c = census(&st).await;
        let pairs = aws_sdk_ec2::Client::new(&st.conf).describe_key_pairs().send().await.unwrap();
        assert_eq!(pairs.key_pairs().len(), 1, "seed {seed}: one imported key pair");
        // new draws for what follows, in the same emulator account
        st.aws.proxy.set_config(FaultConfig { account_id: st.aws.proxy.config().account_id, ..faults(seed + 1000) });
        c
    };
    assert_eq!(
        (after_up.0, after_up.1, after_up.2, after_up.4, after_up.5),
        (1, 1, 2, 1, 1),
        "seed {seed}: duplicates after up"
    );
    let plan = env.plan().await.unwrap_or_else(|e| panic!("seed {seed}: plan: {e}"));
    assert!(plan.is_converged(), "seed {seed}: {:?}", plan.plan.changes().map(|c| &c.id).collect::<Vec<_>>());
    let up = env.upgrade("1.32", &EventSink::discard()).await.unwrap_or_else(|e| panic!("seed {seed}: upgrade: {e}"));
    let r = up.report.unwrap();
    assert!(r.is_success(), "seed {seed}: upgrade incomplete: {:?}", r.failures().collect::<Vec<_>>());
    let down = st
        .env(&crate::env_lifecycle::with_version(&s, "1.32"))
        .down(&EventSink::discard(), Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("seed {seed}: down: {e}"));
    assert!(down.report.is_success(), "seed {seed}: {:?}", down.report.failures().collect::<Vec<_>>());
    st.aws.proxy.heal();
    assert!(down.remaining.is_empty(), "seed {seed}: left {:?}", down.remaining);
    let c = census(&st).await;
    assert_eq!(c, (0, 0, 0, 0, 0, 0), "seed {seed}: something survived down");
    let pairs = aws_sdk_ec2::Client::new(&st.conf).describe_key_pairs().send().await.unwrap();
    assert!(pairs.key_pairs().is_empty(), "seed {seed}: a key pair survived down");
    let stats = st.aws.proxy.stats();
    assert!(stats.faults() > 20, "seed {seed}: only {} faults were injected", stats.faults());
}

/// 20 seeds, four at a time (each on its own emulator account and proxy, so its own rate limiters).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn up_upgrade_down_converge_over_twenty_seeds_of_faults() {
    use futures::StreamExt;
    let seeds: Vec<u64> = (1..=20).collect();
    futures::stream::iter(seeds).map(one_seed).buffer_unordered(4).collect::<Vec<()>>().await;
}

/// `down` after a crash at every write it makes: a re-run removes everything, nothing tagged is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_resumes_after_a_crash_at_every_write() {
    let s = spec(ENV);
    let mut k = 1;
    loop {
        let st = setup(FaultConfig::default()).await;
        let env = st.env(&s);
        env.up(&EventSink::discard()).await.unwrap();
        st.aws.proxy.set_config(FaultConfig { crash_after_mutations: Some(k), ..st.aws.proxy.config() });
        let crashed = env.down(&EventSink::discard(), Duration::from_secs(1)).await;
        let done = matches!(&crashed, Ok(d) if d.report.is_success() && d.remaining.is_empty());
        st.aws.proxy.heal();
        let again = st.env(&s).down(&EventSink::discard(), Duration::from_secs(1)).await;
        let again = again.unwrap_or_else(|e| panic!("k={k}: re-run failed: {e}"));
        assert!(again.report.is_success(), "k={k}: {:?}", again.report.failures().collect::<Vec<_>>());
        assert!(again.remaining.is_empty(), "k={k}: left {:?}", again.remaining);
        assert_eq!(census(&st).await, (0, 0, 0, 0, 0, 0), "k={k}");
        let pairs = aws_sdk_ec2::Client::new(&st.conf).describe_key_pairs().send().await.unwrap();
        assert!(pairs.key_pairs().is_empty(), "k={k}: a key pair survived down");
        if done {
            break; // k passed the number of writes a down makes
        }
        k += 1;
    }
    assert!(k > 20, "down made only {k} writes");
}

/// A cluster whose API server does not resolve: `down` says so, removes the load balancers and target groups
/// its controllers tagged in the VPC (not those elsewhere), leaves the volumes with data and names them, and
/// nothing tagged for the environment is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_does_not_depend_on_the_cluster_answering() {
    use aws_sdk_elasticloadbalancingv2::types::Tag as Tag2;
    let s = spec(ENV);
    let st = setup(FaultConfig::default()).await;
    st.env(&s).up(&EventSink::discard()).await.unwrap();
    let ec2 = aws_sdk_ec2::Client::new(&st.conf);
    let elbv2 = aws_sdk_elasticloadbalancingv2::Client::new(&st.conf);
    let elb = aws_sdk_elasticloadbalancing::Client::new(&st.conf);
    // what the cluster's controllers made: an NLB and a target group (AWS Load Balancer Controller), a classic
    // ELB (in-tree cloud provider), a volume (EBS CSI driver); and an NLB tagged for the cluster outside its VPC
    let f = aws_sdk_ec2::types::Filter::builder().name("tag:eksodus.io/environment").values("envtest").build();
    let subnets = ec2.describe_subnets().filters(f).send().await.unwrap();
    let public: Vec<String> = subnets
        .subnets()
        .iter()
        .filter(|sn| sn.tags().iter().any(|t| t.key() == Some("kubernetes.io/role/elb")))
        .filter_map(|sn| sn.subnet_id().map(String::from))
        .collect();
    let vpc = subnets.subnets()[0].vpc_id().unwrap().to_string();
    let lbc = Tag2::builder().key("elbv2.k8s.aws/cluster").value("envtest").build();
    elbv2
        .create_load_balancer()
        .name("k8s-shop-web")
        .r#type(aws_sdk_elasticloadbalancingv2::types::LoadBalancerTypeEnum::Network)
        .set_subnets(Some(public.clone()))
        .tags(lbc.clone())
        .send()
        .await
        .unwrap();
    elbv2
        .create_target_group()
        .name("k8s-shop-web-tg")
        .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Tcp)
        .port(80)
        .vpc_id(&vpc)
        .tags(lbc.clone())
        .send()
        .await
        .unwrap();
    elb.create_load_balancer()
        .load_balancer_name("a1b2c3legacy")
        .set_subnets(Some(public.clone()))
        .listeners(
            aws_sdk_elasticloadbalancing::types::Listener::builder()
                .protocol("TCP")
                .load_balancer_port(80)
                .instance_port(30080)
                .build()
                .unwrap(),
        )
        .tags(
            aws_sdk_elasticloadbalancing::types::Tag::builder()
                .key("kubernetes.io/cluster/envtest")
                .value("owned")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let default_subnets = ec2
        .describe_subnets()
        .filters(aws_sdk_ec2::types::Filter::builder().name("default-for-az").values("true").build())
        .send()
        .await
        .unwrap();
    let elsewhere: Vec<String> =
        default_subnets.subnets().iter().filter_map(|s| s.subnet_id().map(String::from)).take(2).collect();
    elbv2
        .create_load_balancer()
        .name("someone-elses")
        .r#type(aws_sdk_elasticloadbalancingv2::types::LoadBalancerTypeEnum::Network)
        .set_subnets(Some(elsewhere))
        .tags(lbc)
        .send()
        .await
        .unwrap();
    let vol = ec2
        .create_volume()
        .availability_zone("us-east-1a")
        .size(10)
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Volume)
                .tags(aws_sdk_ec2::types::Tag::builder().key("kubernetes.io/cluster/envtest").value("owned").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let vol = vol.volume_id().unwrap().to_string();

    // the API server's address does not resolve
    let unreachable =
        kube::Client::try_from(kube::Config::new("https://eksodus-unreachable.invalid".parse().unwrap())).unwrap();
    let env =
        eksodus_cluster::environment::Environment::new(&st.conf, s.clone(), eksodus_core::engine::ApplyOptions::fast())
            .unwrap()
            .with_kube(KubeAccess::Client(unreachable));
    let down = env.down(&EventSink::discard(), Duration::from_secs(1)).await.expect("down goes on without the cluster");
    assert!(down.kube_skipped.as_deref().is_some_and(|k| k.contains("cannot reach")), "{:?}", down.kube_skipped);
    let swept = down.swept.clone().unwrap();
    assert_eq!(swept.load_balancers.len(), 2, "{swept:?}");
    assert_eq!(swept.target_groups.len(), 1, "{swept:?}");
    assert!(down.report.is_success(), "{:?}", down.report.failures().collect::<Vec<_>>());
    assert!(down.remaining.is_empty(), "{:?}", down.remaining);
    assert!(down.not_checked.iter().any(|n| n.contains(&vol) && n.contains("left in place")), "{:?}", down.not_checked);
    assert!(down.not_checked.iter().any(|n| n.contains("cannot reach")), "{:?}", down.not_checked);
    // what was not the environment's is untouched
    let left = elbv2.describe_load_balancers().send().await.unwrap();
    let names: Vec<&str> = left.load_balancers().iter().filter_map(|l| l.load_balancer_name()).collect();
    assert_eq!(names, vec!["someone-elses"]);
    let vols = ec2.describe_volumes().volume_ids(&vol).send().await.unwrap();
    assert_eq!(vols.volumes().len(), 1, "the volume with data stays");
}
