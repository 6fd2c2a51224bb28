//! apply -> empty plan -> destroy -> nothing tagged left, on the local emulator.

use eksodus_e2e::{spec, Env, Inventory, FULL};
use eksodus_testkit::FaultConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_replan_destroy_leaves_nothing() {
    let env = Env::start(FaultConfig::default()).await;
    let s = spec(FULL);
    let first = env.plan(&s).await;
    let sum = first.summary();
    // vpc, secondary cidr, 9 subnets, igw, 3 eip, 3 nat, 4 route tables, 4 routes, 9 associations, 1 sg
    assert_eq!((sum.create, sum.update, sum.delete), (36, 0, 0), "{sum}");

    let report = env.apply(&s).await.unwrap();
    assert!(report.is_success(), "{:?}", report.failures().collect::<Vec<_>>());
    assert!(env.plan(&s).await.is_empty(), "re-plan after apply must be empty");
    assert_eq!(
        env.inventory().await,
        Inventory { vpcs: 1, subnets: 9, nat_gateways: 3, eips: 3, internet_gateways: 1 }
    );

    for op in env.aws.proxy.stats().by_operation().keys() {
        assert!(
            eksodus_net::ec2::ACTIONS.contains(&op.as_str()),
            "{op} is called by apply but missing from ec2::ACTIONS"
        );
    }
    // a no-op re-plan is cheap
    env.aws.proxy.reset_stats();
    env.plan(&s).await;
    let calls = env.aws.proxy.stats();
    assert!(calls.total() <= 9, "{:?}", calls.by_operation());
    assert_eq!(calls.mutations_applied(), 0);

    let report = env.destroy(&s).await.unwrap();
    assert!(report.is_success(), "{:?}", report.failures().collect::<Vec<_>>());
    // every EC2 call of plan, apply and destroy is in the declared action list (the IAM policy's source)
    for op in env.aws.proxy.stats().by_operation().keys() {
        assert!(eksodus_net::ec2::ACTIONS.contains(&op.as_str()), "{op} is called but missing from ec2::ACTIONS");
    }
    let left = env.network(&s).tagged_leftovers().await.unwrap();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert_eq!(
        env.inventory().await,
        Inventory { vpcs: 0, subnets: 0, nat_gateways: 0, eips: 0, internet_gateways: 0 }
    );
    assert_eq!(env.network(&s).destroy_plan().await.unwrap().changes().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_spec_updates_in_place_or_replaces() {
    let env = Env::start(FaultConfig::default()).await;
    let mut s = spec(FULL);
    env.apply(&s).await.unwrap().into_result().unwrap();

    // per-az -> single NAT: two NATs and EIPs go, two routes are repointed
    s.network.nat = eksodus_core::spec::NatMode::Single;
    let p = env.plan(&s).await;
    let sum = p.summary();
    assert_eq!(
        (sum.create, sum.update, sum.replace, sum.delete),
        (0, 2, 0, 4),
        "{sum}\n{:#?}",
        p.changes().collect::<Vec<_>>()
    );
    env.apply(&s).await.unwrap().into_result().unwrap();
    assert!(env.plan(&s).await.is_empty());
    assert_eq!(env.inventory().await.nat_gateways, 1);

    // a user tag changes: tags are updated in place
    s.tags.insert("team".into(), "infra".into());
    let sum = env.plan(&s).await.summary();
    assert_eq!(sum.replace + sum.delete + sum.create, 0, "{sum}");
    assert!(sum.update > 0);
    env.apply(&s).await.unwrap().into_result().unwrap();
    assert!(env.plan(&s).await.is_empty());

    // drift: someone turns DNS hostnames off; the plan repairs it
    let vpc = env
        .ec2
        .describe_vpcs()
        .filters(aws_sdk_ec2::types::Filter::builder().name("tag:eksodus.io/environment").values("e2e").build())
        .send()
        .await
        .unwrap();
    let vpc_id = vpc.vpcs()[0].vpc_id().unwrap().to_string();
    env.ec2
        .modify_vpc_attribute()
        .vpc_id(&vpc_id)
        .enable_dns_hostnames(aws_sdk_ec2::types::AttributeBooleanValue::builder().value(false).build())
        .send()
        .await
        .unwrap();
    let p = env.plan(&s).await;
    assert_eq!(p.changes().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["vpc"]);
    env.apply(&s).await.unwrap().into_result().unwrap();
    assert!(env.plan(&s).await.is_empty());

    env.destroy(&s).await.unwrap().into_result().unwrap();
    assert!(env.network(&s).tagged_leftovers().await.unwrap().is_empty());
}
