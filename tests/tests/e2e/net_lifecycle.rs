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
    // one describe per kind (nine, run at once: egress-only gateways are looked for even in an IPv4 network,
    // so one left by an IPv6 spec is still found), the VPC's two DNS attributes, and the region's zones (the
    // spec counts its zones, and EC2 says which they are)
    assert!(calls.total() <= 12, "{:?}", calls.by_operation());
    assert_eq!(calls.by_operation().get("ec2:DescribeAvailabilityZones"), Some(&1));
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

/// Dual-stack and resource names are turned on, then off, on a running network: the subnets stay (their IDs
/// are the same), they get and lose their /64s, the VPC its /56 and the public table its `::/0` route, and each
/// step re-plans as empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_stack_and_hostname_type_change_in_place_both_ways() {
    let env = Env::start(FaultConfig::default()).await;
    let mut s = spec(FULL);
    env.apply(&s).await.unwrap().into_result().unwrap();
    let ids = || async {
        let f = aws_sdk_ec2::types::Filter::builder().name("tag:eksodus.io/environment").values("e2e").build();
        let r = env.ec2.describe_subnets().filters(f).send().await.unwrap();
        let mut v: Vec<(String, String)> = r
            .subnets()
            .iter()
            .map(|s| {
                let t = s.private_dns_name_options_on_launch().and_then(|o| o.hostname_type()).unwrap();
                (s.subnet_id().unwrap().to_string(), t.as_str().to_string())
            })
            .collect();
        v.sort();
        v
    };
    let before = ids().await;
    assert_eq!(before.len(), 9);

    s.network.ipv6 = true;
    s.network.hostname_type = eksodus_core::spec::HostnameType::ResourceName;
    let p = env.plan(&s).await;
    let sum = p.summary();
    // the VPC's block and the IPv6 route are new; all nine subnets change in place
    assert_eq!((sum.create, sum.update, sum.replace, sum.delete), (2, 9, 0, 0), "{sum}");
    env.apply(&s).await.unwrap().into_result().unwrap();
    assert!(env.plan(&s).await.is_empty(), "re-plan after turning dual-stack on");
    assert_eq!(env.ipv6_blocks().await, (1, 9));
    let on = ids().await;
    assert_eq!(on.iter().map(|x| &x.0).collect::<Vec<_>>(), before.iter().map(|x| &x.0).collect::<Vec<_>>());
    assert!(on.iter().all(|(_, t)| t == "resource-name"), "{on:?}");

    s.network.ipv6 = false;
    s.network.hostname_type = eksodus_core::spec::HostnameType::IpName;
    let p = env.plan(&s).await;
    let sum = p.summary();
    assert_eq!((sum.create, sum.update, sum.replace, sum.delete), (0, 9, 0, 2), "{sum}");
    env.apply(&s).await.unwrap().into_result().unwrap();
    assert!(env.plan(&s).await.is_empty(), "re-plan after turning dual-stack off");
    assert_eq!(env.ipv6_blocks().await, (0, 0));
    assert_eq!(ids().await, before);

    // on again, then destroyed with the blocks in place: nothing is left
    s.network.ipv6 = true;
    env.apply(&s).await.unwrap().into_result().unwrap();
    assert!(env.plan(&s).await.is_empty());
    env.destroy(&s).await.unwrap().into_result().unwrap();
    assert!(env.network(&s).tagged_leftovers().await.unwrap().is_empty());
    for op in env.aws.proxy.stats().by_operation().keys() {
        assert!(eksodus_net::ec2::ACTIONS.contains(&op.as_str()), "{op} is called but missing from ec2::ACTIONS");
    }
}
