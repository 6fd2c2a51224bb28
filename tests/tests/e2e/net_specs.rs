//! Bad specs fail with clear errors and make zero AWS calls; adopting an existing VPC; teardown of leftovers.

use aws_sdk_ec2::types::{Filter, IpPermission, UserIdGroupPair};
use eksodus_core::spec::EnvironmentSpec;
use eksodus_e2e::{spec, Env, SMALL};
use eksodus_testkit::FaultConfig;

/// Loads a spec the way the driver does: parse, then plan (which validates before any call).
async fn plan_error(env: &Env, yaml: &str) -> String {
    match EnvironmentSpec::from_yaml(yaml) {
        Err(e) => e.to_string(),
        Ok(s) => env.network(&s).plan(&s).await.expect_err("a bad spec must not plan").to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_specs_fail_before_any_aws_call() {
    let env = Env::start(FaultConfig::default()).await;
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "overlapping CIDRs",
            "name: x\nregion: us-east-1\nnetwork:\n  cidr: 10.0.0.0/16\n  azs: 2\n  cni: {custom_networking: {secondary_cidr: 10.0.64.0/18}}\n",
            &["network.cni.custom_networking.secondary_cidr", "overlaps"],
        ),
        (
            "VPC too small for the demand",
            "name: x\nregion: us-east-1\nnetwork:\n  cidr: 10.0.0.0/24\n  azs: 3\n  demand: {nodes_per_az: 40, instance_type: m5.large}\n",
            &["network.cidr", "short by"],
        ),
        (
            "unknown instance type",
            "name: x\nregion: us-east-1\nnetwork:\n  cidr: 10.0.0.0/16\n  azs: 2\n  demand: {nodes_per_az: 4, instance_type: m5.gigantic}\n",
            &["network.demand.instance_type", "m5.gigantic"],
        ),
        ("a single AZ", "name: x\nregion: us-east-1\nnetwork: {cidr: 10.0.0.0/16, azs: 1}\n", &["network.azs", "two"]),
        (
            "a private cluster's nodes without the endpoints they need",
            "name: x\nregion: us-east-1\nnetwork:\n  cidr: 10.0.0.0/16\n  azs: 2\n  nat: none\n  subnets: {public: {enabled: false}}\n  vpc_endpoints: [ec2, s3]\ncluster:\n  version: \"1.33\"\n  nodegroups: [{name: ng, instance_types: [m5.large]}]\n",
            &["network.vpc_endpoints", "ecr.api, ecr.dkr, sts"],
        ),
        (
            "per-AZ NAT without public subnets",
            "name: x\nregion: us-east-1\nnetwork:\n  cidr: 10.0.0.0/16\n  azs: 2\n  nat: per-az\n  subnets: {public: {enabled: false}}\n",
            &["network.nat", "public"],
        ),
        ("malformed YAML", "name: x\nregion: us-east-1\nnetwork: {cidr: 10.0.0.0/16, azs: [\n", &["malformed"]),
        ("a wrong type", "name: x\nregion: us-east-1\nnetwork: {cidr: not-a-cidr, azs: 2}\n", &["network.cidr"]),
        ("an unknown field", "name: x\nregion: us-east-1\nnetwork: {cidr: 10.0.0.0/16, azs: 2, natt: single}\n", &["natt"]),
    ];
    for (what, yaml, needles) in cases {
        let err = plan_error(&env, yaml).await;
        for n in *needles {
            assert!(err.contains(n), "{what}: `{err}` does not mention `{n}`");
        }
    }
    assert_eq!(
        env.aws.proxy.stats().total(),
        0,
        "bad specs made AWS calls: {:?}",
        env.aws.proxy.stats().by_operation()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopting_an_existing_vpc_creates_only_what_is_ours() {
    let env = Env::start(FaultConfig::default()).await;
    let vpc = env
        .ec2
        .create_vpc()
        .cidr_block("10.50.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc()
        .unwrap()
        .vpc_id()
        .unwrap()
        .to_string();
    let mut subnets = vec![];
    for (cidr, az) in [("10.50.0.0/20", "us-east-1a"), ("10.50.16.0/20", "us-east-1b"), ("10.50.32.0/28", "us-east-1a")]
    {
        let r = env.ec2.create_subnet().vpc_id(&vpc).cidr_block(cidr).availability_zone(az).send().await.unwrap();
        subnets.push(r.subnet().unwrap().subnet_id().unwrap().to_string());
    }
    let yaml = |ids: &[String]| {
        format!("name: adopt\nregion: us-east-1\nnetwork:\n  azs: 2\n  nat: none\n  existing: {{vpc_id: {vpc}, subnet_ids: [{}]}}\n", ids.join(", "))
    };
    // one zone only
    let s = spec(&yaml(&subnets[..1]));
    let err = env.network(&s).plan(&s).await.unwrap_err().to_string();
    assert!(err.contains("network.existing.subnet_ids"), "{err}");
    // a subnet too small to keep EKS's free addresses (a /28 has 11, fine), and a missing subnet
    let s = spec(&yaml(&[subnets[0].clone(), "subnet-0123456789abcdef0".into()]));
    let err = env.network(&s).plan(&s).await.unwrap_err().to_string();
    assert!(err.contains("network.existing.subnet_ids[1]") && err.contains("does not exist"), "{err}");

    let s = spec(&yaml(&subnets[..2]));
    let plan = env.network(&s).plan(&s).await.unwrap();
    assert_eq!(plan.changes().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["sg/cluster"]);
    env.apply(&s).await.unwrap().into_result().unwrap();
    assert!(env.plan(&s).await.is_empty());
    env.destroy(&s).await.unwrap().into_result().unwrap();
    // the adopted VPC and subnets are untouched
    let left =
        env.ec2.describe_subnets().filters(Filter::builder().name("vpc-id").values(&vpc).build()).send().await.unwrap();
    assert_eq!(left.subnets().len(), 3);
    assert!(env.network(&s).tagged_leftovers().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_removes_leftovers_inside_owned_resources_and_reports_them() {
    let env = Env::start(FaultConfig::default()).await;
    let s = spec(SMALL);
    env.apply(&s).await.unwrap().into_result().unwrap();
    let owned = |name: &str, value: &str| Filter::builder().name(name).values(value).build();
    let subnet = env
        .ec2
        .describe_subnets()
        .filters(owned("tag:eksodus.io/resource", "subnet/private/us-east-1a"))
        .send()
        .await
        .unwrap()
        .subnets()[0]
        .clone();
    let vpc = subnet.vpc_id().unwrap().to_string();
    // what a CNI or load balancer controller leaves behind: an unattached ENI, and a group referring to ours
    let eni = env.ec2.create_network_interface().subnet_id(subnet.subnet_id().unwrap()).send().await.unwrap();
    let eni_id = eni.network_interface().unwrap().network_interface_id().unwrap().to_string();
    let ours = env
        .ec2
        .describe_security_groups()
        .filters(owned("tag:eksodus.io/resource", "sg/cluster"))
        .send()
        .await
        .unwrap()
        .security_groups()[0]
        .group_id()
        .unwrap()
        .to_string();
    let foreign = env
        .ec2
        .create_security_group()
        .group_name("k8s-elb-leftover")
        .description("left by a controller")
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap();
    let foreign_id = foreign.group_id().unwrap().to_string();
    env.ec2
        .authorize_security_group_ingress()
        .group_id(&foreign_id)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(443)
                .to_port(443)
                .user_id_group_pairs(UserIdGroupPair::builder().group_id(&ours).build())
                .build(),
        )
        .send()
        .await
        .unwrap();

    let report = env.destroy(&s).await.unwrap();
    assert!(report.is_success(), "{:?}", report.failures().collect::<Vec<_>>());
    let reported: Vec<String> = report.leftovers.iter().map(|l| l.resource.clone()).collect();
    assert!(reported.iter().any(|r| r.contains(&eni_id)), "{reported:?}");
    assert!(reported.iter().any(|r| r.contains(&foreign_id)), "{reported:?}");
    assert_eq!(env.inventory().await.vpcs, 0);
    assert!(env.network(&s).tagged_leftovers().await.unwrap().is_empty());
}

/// Two environments in one account never see, adopt or delete each other's resources, even where the
/// emulator ignores tag filters (it does for NAT gateways).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environments_in_one_account_are_isolated() {
    let env = Env::start(FaultConfig::default()).await;
    let a = spec(SMALL);
    let b = spec(&SMALL.replace("name: small", "name: other").replace("10.30.0.0/20", "10.31.0.0/20"));
    env.apply(&a).await.unwrap().into_result().unwrap();
    env.apply(&b).await.unwrap().into_result().unwrap();
    assert!(env.plan(&a).await.is_empty());
    assert!(env.plan(&b).await.is_empty());
    env.destroy(&a).await.unwrap().into_result().unwrap();
    assert!(env.plan(&b).await.is_empty(), "destroying one environment touched the other");
    assert_eq!(env.inventory().await.nat_gateways, 1);
    env.destroy(&b).await.unwrap().into_result().unwrap();
    assert_eq!(env.inventory().await.vpcs, 0);
}

/// A private network: no public subnets, NAT or internet gateway, and the endpoints its nodes need. Each
/// interface endpoint has an interface in every private subnet, private DNS and the endpoints' group (443
/// from the VPC); S3 is a gateway on the private route tables. A zone added extends them in place, a service
/// swapped is one endpoint made and one deleted, and destroy leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_network_reaches_aws_through_its_endpoints() {
    let env = Env::start(FaultConfig::default()).await;
    let mut s = spec(
        "name: private\nregion: us-east-1\nnetwork:\n  cidr: 10.40.0.0/20\n  azs: 2\n  nat: none\n  subnets: {public: {enabled: false}, private: {prefix: 24}}\n  vpc_endpoints: [ec2, ecr.api, ecr.dkr, s3, sts]\n",
    );
    let r = env.apply(&s).await.unwrap();
    assert!(r.is_success(), "{:?}", r.failures().collect::<Vec<_>>());
    let again = env.plan(&s).await;
    assert!(
        again.is_empty(),
        "re-plan after apply: {:#?}",
        again.changes().map(|c| (&c.id, &c.changes)).collect::<Vec<_>>()
    );
    let check = |zones: usize, services: &'static [&'static str]| {
        let env = &env;
        async move {
            let mine = Filter::builder().name("tag:eksodus.io/environment").values("private").build();
            let subnets = env.ec2.describe_subnets().filters(mine.clone()).send().await.unwrap();
            let mut subnet_ids: Vec<&str> = subnets.subnets().iter().filter_map(|s| s.subnet_id()).collect();
            subnet_ids.sort();
            assert_eq!(subnet_ids.len(), zones);
            let tables = env.ec2.describe_route_tables().filters(mine.clone()).send().await.unwrap();
            let mut table_ids: Vec<&str> = tables.route_tables().iter().filter_map(|t| t.route_table_id()).collect();
            table_ids.sort();
            let igws = env.ec2.describe_internet_gateways().filters(mine.clone()).send().await.unwrap();
            assert!(igws.internet_gateways().is_empty());
            let groups = env.ec2.describe_security_groups().filters(mine.clone()).send().await.unwrap();
            let sg = groups.security_groups().iter().find(|g| g.group_name() == Some("private-endpoints")).unwrap();
            let https: Vec<&str> = sg
                .ip_permissions()
                .iter()
                .filter(|p| p.from_port() == Some(443) && p.to_port() == Some(443))
                .flat_map(|p| p.ip_ranges().iter().filter_map(|r| r.cidr_ip()))
                .collect();
            assert_eq!(https, ["10.40.0.0/20"]);
            let r = env.ec2.describe_vpc_endpoints().filters(mine).send().await.unwrap();
            let live: Vec<_> =
                r.vpc_endpoints().iter().filter(|e| e.state().map(|s| s.as_str()) == Some("available")).collect();
            let mut names: Vec<&str> = live.iter().filter_map(|e| e.service_name()).collect();
            names.sort();
            let mut want: Vec<String> = services.iter().map(|s| format!("com.amazonaws.us-east-1.{s}")).collect();
            want.sort();
            assert_eq!(names, want);
            for e in live {
                let name = e.service_name().unwrap();
                if name.ends_with(".s3") {
                    assert_eq!(e.vpc_endpoint_type().unwrap().as_str(), "Gateway");
                    let mut t: Vec<&str> = e.route_table_ids().iter().map(String::as_str).collect();
                    t.sort();
                    assert_eq!(t, table_ids, "{name}");
                    // and each of those tables routes S3's prefix list to it
                    let id = e.vpc_endpoint_id();
                    for table in tables.route_tables() {
                        let routed = table
                            .routes()
                            .iter()
                            .any(|r| r.gateway_id() == id && r.destination_prefix_list_id().is_some());
                        assert!(routed, "{:?} has no route to {id:?}", table.route_table_id());
                    }
                } else {
                    assert_eq!(e.vpc_endpoint_type().unwrap().as_str(), "Interface");
                    let mut sn: Vec<&str> = e.subnet_ids().iter().map(String::as_str).collect();
                    sn.sort();
                    assert_eq!(sn, subnet_ids, "{name}");
                    assert_eq!(e.private_dns_enabled(), Some(true), "{name}");
                    let g: Vec<&str> = e.groups().iter().filter_map(|g| g.group_id()).collect();
                    assert_eq!(g, [sg.group_id().unwrap()], "{name}");
                }
            }
        }
    };
    check(2, &["ec2", "ecr.api", "ecr.dkr", "s3", "sts"]).await;

    // a third zone: its subnet and route table join the endpoints in place
    s.network.azs = eksodus_core::spec::AzSpec::Count(3);
    let p = env.plan(&s).await;
    let sum = p.summary();
    assert_eq!((sum.replace, sum.delete), (0, 0), "{sum}");
    let updated: Vec<&str> = p.changes().filter(|c| c.kind == "vpc-endpoint").map(|c| c.id.as_str()).collect();
    assert_eq!(updated, ["vpce/ec2", "vpce/ecr.api", "vpce/ecr.dkr", "vpce/s3", "vpce/sts"]);
    let r = env.apply(&s).await.unwrap();
    assert!(r.is_success(), "{:?}", r.failures().collect::<Vec<_>>());
    assert!(env.plan(&s).await.is_empty(), "re-plan after a zone was added");
    check(3, &["ec2", "ecr.api", "ecr.dkr", "s3", "sts"]).await;

    // sts swapped for logs: one endpoint made, one deleted
    s.network.vpc_endpoints.retain(|e| e.as_str() != "sts");
    s.network.vpc_endpoints.push(eksodus_core::spec::VpcEndpointService::Logs);
    let sum = env.plan(&s).await.summary();
    assert_eq!((sum.create, sum.update, sum.replace, sum.delete), (1, 0, 0, 1), "{sum}");
    let r = env.apply(&s).await.unwrap();
    assert!(r.is_success(), "{:?}", r.failures().collect::<Vec<_>>());
    assert!(env.plan(&s).await.is_empty());
    check(3, &["ec2", "ecr.api", "ecr.dkr", "logs", "s3"]).await;

    let r = env.destroy(&s).await.unwrap();
    assert!(r.is_success(), "{:?}", r.failures().collect::<Vec<_>>());
    let left = env.network(&s).tagged_leftovers().await.unwrap();
    assert!(left.is_empty(), "left behind: {left:?}");
    for op in env.aws.proxy.stats().by_operation().keys() {
        assert!(eksodus_net::ec2::ACTIONS.contains(&op.as_str()), "{op} is called but missing from ec2::ACTIONS");
    }
}
