//! The network's desired state: every resource typed, tagged and wired as the executor expects.

use super::*;

const SPEC: &str = r#"
name: shop
region: us-east-1
tags: {team: platform}
network:
  cidr: 10.42.0.0/16
  azs: 2
  nat: single
  cni: {mode: secondary-ip, custom_networking: {secondary_cidr: 100.64.0.0/16}}
"#;

fn network(spec: &EnvironmentSpec) -> Network {
    let conf = aws_sdk_ec2::Config::builder()
        .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
        .region(aws_sdk_ec2::config::Region::new(spec.region.clone()))
        .build();
    Network::new(Client::from_conf(conf), spec)
}

#[test]
fn every_desired_resource_fits_its_type_and_carries_the_users_tags() {
    let spec = EnvironmentSpec::from_yaml(SPEC).unwrap();
    let layout = crate::layout::plan(&spec).unwrap();
    let desired = network(&spec).desired(&spec, Some(&layout));
    for d in &desired {
        props::check(&d.kind, &d.key, &d.props).unwrap_or_else(|e| panic!("{e}"));
        if TAGGABLE.contains(&d.kind.as_str()) {
            assert_eq!(d.props[plan::TAGS]["team"], "platform", "{} has the user's tags", d.key);
        }
        for dep in &d.depends_on {
            assert!(desired.iter().any(|x| &x.key == dep), "{} depends on {dep}, which is not planned", d.key);
        }
    }
    let kinds: BTreeMap<&str, usize> = desired.iter().fold(BTreeMap::new(), |mut m, d| {
        *m.entry(d.kind.as_str()).or_default() += 1;
        m
    });
    // two zones, three tiers, one NAT gateway (single), one route per route table
    assert_eq!(kinds.get("subnet"), Some(&6), "{kinds:?}");
    assert_eq!(kinds.get("nat-gateway"), Some(&1));
    assert_eq!(kinds.get("route"), Some(&3));
    assert_eq!(kinds.get("vpc-cidr"), Some(&1));
    let public: SubnetProps = serde_json::from_value(Value::Object(
        desired.iter().find(|d| d.key == "subnet/public/us-east-1a").unwrap().props.clone(),
    ))
    .unwrap();
    assert!(public.map_public_ip);
    assert_eq!(public.tags.get(ELB_TAG).map(String::as_str), Some("1"));
    assert_eq!(public.tags.get(&cluster_tag("shop")).map(String::as_str), Some("shared"));
    let private = desired.iter().find(|d| d.key == "route/private/us-east-1b/default").unwrap();
    assert_eq!(private.props["target"], "nat/us-east-1a", "a single NAT gateway serves every zone");
}

#[test]
fn an_adopted_vpc_plans_only_the_cluster_security_group() {
    let spec = EnvironmentSpec::from_yaml(SPEC).unwrap();
    let desired = network(&spec).desired(&spec, None);
    assert_eq!(desired.iter().map(|d| d.key.as_str()).collect::<Vec<_>>(), ["sg/cluster"]);
    props::check("security-group", "sg/cluster", &desired[0].props).unwrap();
}

#[test]
fn ssh_beside_a_template_is_a_security_group_of_the_nodegroup_with_port_22_from_the_sources() {
    let yaml = format!(
        "{SPEC}\ncluster:\n  version: '1.33'\n  nodegroups:\n    - {{name: ops, instance_types: [m5.large], disk_size: 40, volume: {{type: gp3}}, ssh: {{key_name: ops, source_security_groups: [sg-0bbb, sg-0aaa, sg-0bbb]}}}}\n    - {{name: plain, instance_types: [m5.large], ssh: {{key_name: ops, source_security_groups: [sg-0aaa]}}}}\n    - {{name: vpn, instance_types: [m5.large], ssh: {{key_name: ops, source_cidrs: [10.8.0.0/16, 172.16.4.9/24]}}}}\n    - {{name: keyonly, instance_types: [m5.large], ssh: {{key_name: ops}}}}\n"
    );
    let spec = EnvironmentSpec::from_yaml(&yaml).unwrap();
    assert_eq!(spec.validate(), vec![]);
    let desired = network(&spec).desired(&spec, None);
    // the plain nodegroup is EKS's remote access: EKS makes its group; CIDRs, or no source at all, are not
    // remote access (it takes groups only, and opens port 22 to the internet without one)
    let keys: Vec<&str> = desired.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(keys, ["sg/ssh/ops", "sg/ssh/vpn", "sg/ssh/keyonly", "sg/cluster"]);
    let group = |i: usize| -> props::SecurityGroupProps {
        props::check("security-group", &desired[i].key, &desired[i].props).unwrap();
        serde_json::from_value(Value::Object(desired[i].props.clone())).unwrap()
    };
    let sg = group(0);
    assert_eq!(sg.ssh_from.as_deref(), Some(&["sg-0aaa".to_string(), "sg-0bbb".to_string()][..]), "sorted, once");
    assert_eq!(sg.ssh_from_cidrs.as_deref(), Some(&[][..]), "none, and said so: a CIDR rule left is taken away");
    assert_eq!(sg.name, ssh_group_name("shop", "ops"));
    assert!(!sg.self_ingress);
    let vpn = group(1);
    assert_eq!(vpn.ssh_from.as_deref(), Some(&[][..]));
    assert_eq!(vpn.ssh_from_cidrs.unwrap(), ["10.8.0.0/16", "172.16.4.0/24"], "as networks, sorted");
    let key_only = group(2);
    assert_eq!((key_only.ssh_from.unwrap().len(), key_only.ssh_from_cidrs.unwrap().len()), (0, 0));
    // the cluster group's properties are what they were (its port-22 rules are not eksodus's)
    assert!(!desired[3].props.contains_key("ssh_from") && !desired[3].props.contains_key("ssh_from_cidrs"));
}

/// Every resource fits its kind's properties and sits only on resources that are planned.
fn well_formed(desired: &[Desired]) {
    for d in desired {
        props::check(&d.kind, &d.key, &d.props).unwrap_or_else(|e| panic!("{e}"));
        for dep in &d.depends_on {
            assert!(desired.iter().any(|x| &x.key == dep), "{} depends on {dep}, which is not planned", d.key);
        }
    }
}

#[test]
fn dual_stack_and_endpoints_are_wired_to_what_they_sit_on() {
    let yaml = SPEC.replace("nat: single", "nat: single\n  ipv6: true\n  vpc_endpoints: [sts, s3, ec2]");
    let spec = EnvironmentSpec::from_yaml(&yaml).unwrap();
    assert_eq!(spec.validate(), vec![]);
    let layout = crate::layout::plan(&spec).unwrap();
    let desired = network(&spec).desired(&spec, Some(&layout));
    let get = |k: &str| desired.iter().find(|d| d.key == k).unwrap_or_else(|| panic!("{k} is not planned"));
    well_formed(&desired);
    // every subnet sits on the VPC's IPv6 block and has its own /64 of it; the IPv6 route too
    let subnets: Vec<&Desired> = desired.iter().filter(|d| d.kind == "subnet").collect();
    let mut indexes: Vec<u64> = subnets.iter().map(|d| d.props["ipv6_index"].as_u64().unwrap()).collect();
    assert!(subnets.iter().all(|d| d.depends_on.iter().any(|x| x == IPV6_CIDR_KEY)));
    indexes.dedup();
    assert_eq!(indexes.len(), subnets.len());
    let v6 = get("route/public/default-ipv6");
    assert_eq!((v6.props["destination"].as_str(), v6.props["target"].as_str()), (Some("::/0"), Some("igw")));
    assert!(v6.depends_on.iter().any(|x| x == IPV6_CIDR_KEY));

    // the endpoints: interfaces in the private subnets behind the endpoints' group, S3 on the private tables
    let sg: SecurityGroupProps = serde_json::from_value(Value::Object(get(ENDPOINTS_SG_KEY).props.clone())).unwrap();
    assert_eq!(sg.https_from, ["10.42.0.0/16", "100.64.0.0/16"], "the VPC, and the pods' CIDR");
    let sts: VpcEndpointProps = serde_json::from_value(Value::Object(get("vpce/sts").props.clone())).unwrap();
    assert_eq!(sts.service, "com.amazonaws.us-east-1.sts");
    assert_eq!(sts.subnets, ["subnet/private/us-east-1a", "subnet/private/us-east-1b"]);
    assert_eq!((sts.security_groups, sts.private_dns), (vec![ENDPOINTS_SG_KEY.to_string()], true));
    let s3: VpcEndpointProps = serde_json::from_value(Value::Object(get("vpce/s3").props.clone())).unwrap();
    assert_eq!((s3.endpoint_type.as_str(), s3.subnets.len()), ("Gateway", 0));
    assert_eq!(s3.route_tables, ["rtb/private/us-east-1a", "rtb/private/us-east-1b"]);
    assert_eq!(get("vpce/ec2").props[plan::TAGS]["team"], "platform");
    let order: Vec<&str> = desired.iter().filter(|d| d.kind == "vpc-endpoint").map(|d| d.key.as_str()).collect();
    assert_eq!(order, ["vpce/ec2", "vpce/s3", "vpce/sts"]);

    // a China region's prefix, where eksctl's table has one
    assert_eq!(VpcEndpointService::EcrApi.service_name("cn-north-1"), "cn.com.amazonaws.cn-north-1.ecr.api");
    assert_eq!(VpcEndpointService::S3.service_name("cn-north-1"), "com.amazonaws.cn-north-1.s3");
}

#[test]
fn an_ipv6_cluster_gets_ipv6_on_every_subnet_and_private_egress_through_an_egress_only_gateway() {
    let yaml = "name: shop\nregion: us-east-1\nnetwork: {cidr: 10.42.0.0/16, azs: 2, nat: single}\ncluster:\n  version: '1.33'\n  ip_family: ipv6\n  nodegroups: [{name: ng, instance_types: [m5.large]}]\n";
    let spec = EnvironmentSpec::from_yaml(yaml).unwrap();
    assert_eq!(spec.validate(), vec![]);
    assert!(!spec.network.ipv6 && spec.dual_stack(), "the family implies the VPC's IPv6 block");
    let layout = crate::layout::plan(&spec).unwrap();
    let desired = network(&spec).desired(&spec, Some(&layout));
    let get = |k: &str| desired.iter().find(|d| d.key == k).unwrap_or_else(|| panic!("{k} is not planned"));
    well_formed(&desired);
    assert!(desired.iter().any(|d| d.key == IPV6_CIDR_KEY));
    let subnets: Vec<&Desired> = desired.iter().filter(|d| d.kind == "subnet").collect();
    assert!(!subnets.is_empty());
    for s in &subnets {
        assert!(s.props["ipv6_index"].is_u64(), "{}", s.key);
        assert_eq!(s.props["assign_ipv6"], true, "{}", s.key);
    }
    let eigw = get(EIGW_KEY);
    assert_eq!((eigw.kind.as_str(), eigw.depends_on.as_slice()), ("egress-only-igw", &["vpc".to_string()][..]));
    for az in &layout.azs {
        let r = get(&format!("route/private/{az}/default-ipv6"));
        assert_eq!((r.props["destination"].as_str(), r.props["target"].as_str()), (Some("::/0"), Some(EIGW_KEY)));
        assert!(r.depends_on.iter().any(|x| x == EIGW_KEY) && r.depends_on.iter().any(|x| x == IPV6_CIDR_KEY));
    }
    // the public side is as in any dual-stack VPC
    assert_eq!(get("route/public/default-ipv6").props["target"], "igw");

    // a dual-stack VPC under an IPv4 cluster: blocks, but nodes take no IPv6 address and no egress-only gateway
    let v4 = EnvironmentSpec::from_yaml(
        &yaml.replace("  ip_family: ipv6\n", "").replace("nat: single", "nat: single, ipv6: true"),
    )
    .unwrap();
    assert!(v4.dual_stack() && !v4.ipv6_cluster());
    let desired = network(&v4).desired(&v4, Some(&crate::layout::plan(&v4).unwrap()));
    assert!(desired.iter().filter(|d| d.kind == "subnet").all(|d| d.props["assign_ipv6"] == false));
    assert!(!desired.iter().any(
        |d| d.kind == "egress-only-igw" || d.key.ends_with("/default-ipv6") && d.key.starts_with("route/private/")
    ));
}

#[test]
fn hybrid_networks_reach_the_api_server_through_the_cluster_group_by_rules_eksodus_marks() {
    let yaml = format!(
        "{SPEC}cluster:\n  version: '1.33'\n  remote_network: {{node_cidrs: [10.80.0.0/16, 10.80.0.0/16], pod_cidrs: [10.81.0.0/16]}}\n"
    );
    let spec = EnvironmentSpec::from_yaml(&yaml).unwrap();
    let layout = crate::layout::plan(&spec).unwrap();
    let group = |spec: &EnvironmentSpec| -> SecurityGroupProps {
        let desired = network(spec).desired(spec, Some(&layout));
        let d = desired.iter().find(|d| d.key == CLUSTER_SG_KEY).unwrap();
        serde_json::from_value(Value::Object(d.props.clone())).unwrap()
    };
    assert_eq!(group(&spec).remote_https_from, Some(vec!["10.80.0.0/16".to_string(), "10.81.0.0/16".to_string()]));
    // without hybrid nodes the list is still kept (empty), so taking the networks away revokes their rules
    let none = EnvironmentSpec::from_yaml(SPEC).unwrap();
    assert_eq!(group(&none).remote_https_from, Some(vec![]));

    // on the group, a port-443 source belongs to the rule whose description it carries
    let range = |c: &str, d: Option<&str>| {
        aws_sdk_ec2::types::IpRange::builder().cidr_ip(c).set_description(d.map(String::from)).build()
    };
    let perm = IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(443)
        .to_port(443)
        .ip_ranges(range("10.80.0.0/16", Some(REMOTE_RULE_DESCRIPTION)))
        .ip_ranges(range("203.0.113.0/24", Some("the user's VPN")))
        .ip_ranges(range("198.51.100.0/24", None))
        .build();
    assert_eq!(REMOTE_HTTPS.sources(std::slice::from_ref(&perm)), ["10.80.0.0/16"]);
    assert_eq!(HTTPS.sources(std::slice::from_ref(&perm)), ["198.51.100.0/24", "203.0.113.0/24"]);
    let made = REMOTE_HTTPS.permission(&["10.81.0.0/16".to_string()]);
    assert_eq!(made.ip_ranges()[0].description(), Some(REMOTE_RULE_DESCRIPTION));
    assert_eq!(HTTPS.permission(&["10.81.0.0/16".to_string()]).ip_ranges()[0].description(), None);
}

#[test]
fn a_local_zone_routes_through_the_first_nat_and_takes_no_load_balancer_or_endpoint() {
    let yaml = "name: edge\nregion: us-west-2\nnetwork:\n  cidr: 10.42.0.0/16\n  azs: [us-west-2a, us-west-2b]\n  nat: per-az\n  local_zones: [us-west-2-lax-1a]\n  vpc_endpoints: [sts, s3]\n";
    let spec = EnvironmentSpec::from_yaml(yaml).unwrap();
    assert_eq!(spec.validate(), vec![]);
    let layout = crate::layout::plan(&spec).unwrap();
    let desired = network(&spec).desired(&spec, Some(&layout));
    well_formed(&desired);
    let get = |k: &str| desired.iter().find(|d| d.key == k).unwrap_or_else(|| panic!("{k} is not planned"));
    let subnet = |k: &str| -> SubnetProps { serde_json::from_value(Value::Object(get(k).props.clone())).unwrap() };
    for tier in ["public", "private"] {
        let s = subnet(&format!("subnet/{tier}/us-west-2-lax-1a"));
        assert_eq!(s.az, "us-west-2-lax-1a");
        assert!(!s.tags.contains_key(ELB_TAG) && !s.tags.contains_key(INTERNAL_ELB_TAG), "{tier}: {:?}", s.tags);
        assert_eq!(s.tags.get(&cluster_tag("edge")).map(String::as_str), Some("shared"));
    }
    assert_eq!(subnet("subnet/private/us-west-2b").tags.get(INTERNAL_ELB_TAG).map(String::as_str), Some("1"));
    // a NAT gateway per availability zone, none in the Local Zone, whose private table uses the first
    assert!(desired.iter().all(|d| d.key != "nat/us-west-2-lax-1a"));
    assert_eq!(get("route/private/us-west-2b/default").props["target"], "nat/us-west-2b");
    assert_eq!(get("route/private/us-west-2-lax-1a/default").props["target"], "nat/us-west-2a");
    assert_eq!(get("rtassoc/private/us-west-2-lax-1a").props["route_table"], "rtb/private/us-west-2-lax-1a");
    let sts: VpcEndpointProps = serde_json::from_value(Value::Object(get("vpce/sts").props.clone())).unwrap();
    assert_eq!(sts.subnets, ["subnet/private/us-west-2a", "subnet/private/us-west-2b"]);
    let s3: VpcEndpointProps = serde_json::from_value(Value::Object(get("vpce/s3").props.clone())).unwrap();
    assert!(s3.route_tables.contains(&"rtb/private/us-west-2-lax-1a".to_string()), "{:?}", s3.route_tables);
}
