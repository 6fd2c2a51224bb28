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
        "{SPEC}\ncluster:\n  version: '1.33'\n  nodegroups:\n    - {{name: ops, instance_types: [m5.large], disk_size: 40, volume: {{type: gp3}}, ssh: {{key_name: ops, source_security_groups: [sg-0bbb, sg-0aaa, sg-0bbb]}}}}\n    - {{name: plain, instance_types: [m5.large], ssh: {{key_name: ops, source_security_groups: [sg-0aaa]}}}}\n"
    );
    let spec = EnvironmentSpec::from_yaml(&yaml).unwrap();
    let desired = network(&spec).desired(&spec, None);
    // the plain nodegroup is EKS's remote access: EKS makes its group
    let keys: Vec<&str> = desired.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(keys, ["sg/ssh/ops", "sg/cluster"]);
    let sg: props::SecurityGroupProps = serde_json::from_value(Value::Object(desired[0].props.clone())).unwrap();
    assert_eq!(sg.ssh_from, ["sg-0aaa", "sg-0bbb"], "sorted, each once");
    assert_eq!(sg.name, ssh_group_name("shop", "ops"));
    assert!(!sg.self_ingress);
    // the cluster group's properties are what they were (no empty list written)
    assert!(!desired[1].props.contains_key("ssh_from"));
}
