//! The desired state of nodegroups and addons, and its diff against what DescribeNodegroup reports.

use super::discover::observed_nodegroup;
use super::*;
use aws_sdk_eks::types::{
    CapacityTypes, Nodegroup, NodegroupScalingConfig, NodegroupUpdateConfig, RemoteAccessConfig, Taint, TaintEffect,
};

const SPEC: &str = r#"
name: shop
region: us-east-1
tags: {team: platform}
network: {cidr: 10.42.0.0/16, azs: 2}
cluster:
  version: "1.33"
  nodegroups:
    - name: general
      instance_types: [t3.medium, m5.large]
      min: 2
      max: 6
      desired: 3
      zones: [us-east-1b]
      labels: {workload: general}
      taints:
        - {key: b, value: x, effect: NO_SCHEDULE}
        - {key: a, effect: NO_EXECUTE}
      tags: {cost-center: shop}
      ssh: {key_name: ops, source_security_groups: [sg-2, sg-1]}
    - name: batch
      instance_types: [c5.large]
      iam: {attach_policies: ["arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"]}
"#;

fn spec(yaml: &str) -> EnvironmentSpec {
    EnvironmentSpec::from_yaml(yaml).expect("spec")
}

fn eks(spec: &EnvironmentSpec) -> Eks {
    let conf = aws_sdk_eks::Config::builder()
        .behavior_version(aws_sdk_eks::config::BehaviorVersion::latest())
        .region(aws_sdk_eks::config::Region::new(spec.region.clone()))
        .build();
    let ec2 = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::Config::builder()
            .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
            .region(aws_sdk_ec2::config::Region::new(spec.region.clone()))
            .build(),
    );
    Eks::new(Client::from_conf(conf), ec2, spec)
}

struct Owned {
    installed: BTreeMap<String, String>,
    iam_keys: BTreeSet<String>,
}

fn desired(spec: &EnvironmentSpec) -> Result<DesiredSet, Error> {
    desired_owning(spec, &Owned { installed: BTreeMap::new(), iam_keys: BTreeSet::new() })
}

/// [`desired`] where `owned` says which addons are installed and which IAM roles exist.
fn desired_owning(spec: &EnvironmentSpec, owned: &Owned) -> Result<DesiredSet, Error> {
    let zones = |tier: &str| -> BTreeMap<String, String> {
        ["us-east-1a", "us-east-1b"].iter().map(|z| (z.to_string(), format!("subnet/{tier}/{z}"))).collect()
    };
    let inp = Inputs {
        account: "111122223333",
        version: "1.33",
        catalogue: None,
        installed_addons: &owned.installed,
        iam_keys: &owned.iam_keys,
        cluster_subnets: vec!["subnet/private/us-east-1a".into(), "subnet/private/us-east-1b".into()],
        private_subnets: zones("private"),
        public_subnets: zones("public"),
        security_groups: vec!["sg/cluster".into()],
        max_pods: [("t3.medium".to_string(), 17), ("m5.large".to_string(), 29)].into_iter().collect(),
        cluster_security_group: Some("sg-0c1u5te7".into()),
        cluster_bootstrap: Some(ClusterBootstrap {
            endpoint: "https://ABCDEF.gr7.us-east-1.eks.amazonaws.com".into(),
            certificate_authority: "LS0tLS1CRUdJTg==".into(),
            service_cidr: "10.100.0.0/16".into(),
        }),
    };
    eks(spec).desired(spec, &inp)
}

fn nodegroup(set: &DesiredSet, name: &str) -> (NodegroupProps, Desired) {
    let d = set.desired.iter().find(|d| d.key == nodegroup_key(name)).expect("nodegroup planned").clone();
    (from_props(&d.key, &d.props).expect("typed"), d)
}

#[test]
fn nodegroup_desired_state_is_normalized_and_complete() {
    let set = desired(&spec(SPEC)).unwrap();
    let (general, d) = nodegroup(&set, "general");
    assert_eq!(general.instance_types, ["m5.large", "t3.medium"], "sorted, so a reordering is no change");
    assert_eq!(general.max_pods, Some(17), "the smallest instance type decides max pods");
    assert_eq!(general.subnets, ["subnet/private/us-east-1b"], "only the nodegroup's zones");
    assert_eq!(general.scaling, Scaling { min: 2, max: 6, desired: 3 });
    assert_eq!(general.disk_size, Some(DEFAULT_DISK_SIZE));
    assert_eq!((general.launch_template.as_deref(), general.launch_template_version.as_deref()), (None, None));
    assert_eq!(general.ami_type, DEFAULT_AMI_TYPE);
    assert_eq!((general.max_unavailable, general.max_unavailable_percentage), (Some(1), None));
    assert_eq!(
        general.taints.iter().map(|t| (t.key.as_str(), t.value.as_str())).collect::<Vec<_>>(),
        [("a", ""), ("b", "x")],
        "sorted, an absent value as EKS reports it"
    );
    assert_eq!(general.tags.get("team").map(String::as_str), Some("platform"), "the environment's tags");
    assert_eq!(general.tags.get("cost-center").map(String::as_str), Some("shop"), "and the nodegroup's");
    assert_eq!(general.remote_access.as_ref().unwrap().source_security_groups, ["sg-1", "sg-2"]);
    assert_eq!(general.node_role_arn, "arn:aws:iam::111122223333:role/eksodus/shop/shop-node");
    assert!(d.depends_on.contains(&"role/node".to_string()) && d.depends_on.contains(&CLUSTER_KEY.to_string()));
    assert!(d.depends_on.contains(&"subnet/private/us-east-1b".to_string()));
    for f in ["instance_types", "subnets", "node_role_arn", "remote_access", "disk_size"] {
        assert!(d.immutable.iter().any(|i| i == f), "{f} forces a replacement");
    }

    let (batch, d) = nodegroup(&set, "batch");
    assert_eq!(batch.node_role_arn, "arn:aws:iam::111122223333:role/eksodus/shop/shop-node-batch", "its own role");
    assert!(d.depends_on.contains(&eksodus_access::iam::nodegroup_role_key("batch")));
    assert_eq!(batch.max_pods, None, "an instance type outside the table has no max pods");
}

#[test]
fn a_nodegroup_without_a_subnet_in_its_zones_names_its_field() {
    let text = SPEC.replace("zones: [us-east-1b]", "zones: [us-east-1z]");
    match desired(&spec(&text)) {
        Err(Error::Spec { field, message }) => {
            assert_eq!(field, "cluster.nodegroups[0]");
            assert!(message.contains("no private subnet"), "{message}");
        }
        other => panic!("expected a spec error, got {other:?}"),
    }
}

/// What DescribeNodegroup returns for a nodegroup created from `p` (subnet IDs as the network's keys).
fn described(p: &NodegroupProps, key: &str) -> Nodegroup {
    let mut tags: HashMap<String, String> =
        tags::ownership("shop", COMPONENT, key, &BTreeMap::new()).into_iter().collect();
    tags.extend(p.tags.clone());
    let mut n = Nodegroup::builder()
        .nodegroup_name(&p.name)
        .nodegroup_arn(format!("arn:aws:eks:us-east-1:111122223333:nodegroup/shop/{}/x", p.name))
        .version(&p.version)
        .set_instance_types(Some(p.instance_types.iter().rev().cloned().collect()))
        .capacity_type(CapacityTypes::from(p.capacity_type.as_str()))
        .ami_type(aws_sdk_eks::types::AmiTypes::from(p.ami_type.as_str()))
        // moto and EKS differ here: EKS reports no disk size with a launch template (the proxy removes moto's)
        .set_disk_size(p.disk_size.map(|d| d as i32))
        .set_subnets(Some(p.subnets.clone()))
        .node_role(&p.node_role_arn)
        .scaling_config(
            NodegroupScalingConfig::builder()
                .min_size(p.scaling.min as i32)
                .max_size(p.scaling.max as i32)
                .desired_size(p.scaling.desired as i32)
                .build(),
        )
        .set_labels(Some(p.labels.clone().into_iter().collect()))
        .update_config(
            NodegroupUpdateConfig::builder()
                .set_max_unavailable(p.max_unavailable.map(|m| m as i32))
                .set_max_unavailable_percentage(p.max_unavailable_percentage.map(|m| m as i32))
                .build(),
        )
        .set_tags(Some(tags))
        .status(aws_sdk_eks::types::NodegroupStatus::Active);
    for t in p.taints.iter().rev() {
        n = n.taints(
            Taint::builder()
                .key(&t.key)
                .set_value((!t.value.is_empty()).then(|| t.value.clone()))
                .effect(TaintEffect::from(t.effect.as_str()))
                .build(),
        );
    }
    if p.node_repair {
        n = n.node_repair_config(aws_sdk_eks::types::NodeRepairConfig::builder().enabled(true).build());
    }
    if let (Some(t), Some(v)) = (&p.launch_template, &p.launch_template_version) {
        n = n.launch_template(aws_sdk_eks::types::LaunchTemplateSpecification::builder().id(t).version(v).build());
    }
    if let Some(r) = &p.remote_access {
        n = n.remote_access(
            RemoteAccessConfig::builder()
                .ec2_ssh_key(&r.key_name)
                .set_source_security_groups(Some(r.source_security_groups.iter().rev().cloned().collect()))
                .build(),
        );
    }
    n.build()
}

fn plan_against(desired: &DesiredSet, found: Vec<Observed>) -> Plan {
    let s = spec(SPEC);
    let ngs: Vec<Desired> = desired.desired.iter().filter(|d| d.kind == "eks-nodegroup").cloned().collect();
    eks(&s).diff(&ngs, &Found { observed: found, ..Found::default() }).unwrap()
}

fn observe(p: &NodegroupProps, key: &str) -> Observed {
    observed_nodegroup("shop", &described(p, key), key.to_string(), &|s: &str| s.to_string()).0
}

#[test]
fn what_discovery_reads_back_after_a_create_plans_nothing() {
    let set = desired(&spec(SPEC)).unwrap();
    let found: Vec<Observed> = ["general", "batch"]
        .iter()
        .map(|n| {
            let (p, d) = nodegroup(&set, n);
            observe(&p, &d.key)
        })
        .collect();
    let plan = plan_against(&set, found);
    let changed: Vec<String> = plan.changes().map(|s| format!("{} {:?}", s.key, s.changes)).collect();
    assert!(changed.is_empty(), "a re-plan after create is empty, got {changed:#?}");
}

#[test]
fn scaling_labels_and_taints_update_in_place_and_instance_types_replace() {
    let set = desired(&spec(SPEC)).unwrap();
    let (p, d) = nodegroup(&set, "general");
    let (b, bd) = nodegroup(&set, "batch");
    let mut was = p.clone();
    was.scaling.desired = 5;
    was.labels.insert("old".into(), "yes".into());
    was.taints.pop();
    let plan = plan_against(&set, vec![observe(&was, &d.key), observe(&b, &bd.key)]);
    let step = plan.steps.iter().find(|s| s.key == d.key).unwrap();
    assert_eq!(step.action, Action::Update);
    let fields: BTreeSet<&str> = step.changes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(fields, ["labels", "scaling", "taints"].into_iter().collect());

    let mut was = p.clone();
    was.instance_types = vec!["m5.large".into()];
    let plan = plan_against(&set, vec![observe(&was, &d.key), observe(&b, &bd.key)]);
    let step = plan.steps.iter().find(|s| s.key == d.key).unwrap();
    assert_eq!(step.action, Action::Replace, "{:?}", step.reasons);
    assert!(step.reasons[0].contains("instance_types"), "{:?}", step.reasons);
}

const TEMPLATED: &str = r#"
name: shop
region: us-east-1
tags: {team: platform}
network: {cidr: 10.42.0.0/16, azs: 2, cni: {mode: prefix-delegation}}
cluster:
  version: "1.33"
  nodegroups:
    - name: data
      instance_types: [m5.large]
      disk_size: 120
      volume: {type: io2, iops: 9000, kms_key: "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"}
      security_groups: [sg-0user]
      instance_name: shop-data
      tags: {team: data}
    - name: brock
      instance_types: [m5.large]
      ami_type: BOTTLEROCKET_x86_64
      imds_hop_limit: 1
    - name: theirs
      instance_types: [m5.large]
      launch_template: {id: lt-0user, version: "7"}
"#;

fn template(set: &DesiredSet, ng: &str) -> (LaunchTemplateProps, Desired) {
    let d = set.desired.iter().find(|d| d.key == template_key(ng)).expect("template planned").clone();
    (from_props(&d.key, &d.props).unwrap(), d)
}

#[test]
fn a_nodegroup_with_template_settings_gets_a_template_it_depends_on() {
    let set = desired(&spec(TEMPLATED)).unwrap();
    let (t, td) = template(&set, "data");
    assert_eq!(t.name, "shop-data");
    assert_eq!(
        (t.device.as_str(), t.volume_size, t.volume_type.as_str(), t.iops),
        ("/dev/xvda", 120, "io2", Some(9000))
    );
    assert!(t.encrypted, "a KMS key implies encryption");
    assert_eq!((t.imds_v2_required, t.hop_limit), (true, DEFAULT_HOP_LIMIT));
    assert_eq!(t.security_groups, ["sg-0c1u5te7", "sg-0user"], "the cluster's security group beside the user's");
    assert_eq!(td.depends_on, [CLUSTER_KEY], "it waits for the cluster, whose security group it names");
    assert_eq!(t.instance_tags["Name"], "shop-data");
    assert_eq!(t.instance_tags["team"], "data", "the nodegroup's tags over the environment's");
    let user_data = t.user_data.as_deref().unwrap();
    assert!(user_data.contains("maxPods: 29"), "prefix delegation: eksodus-net's figure for the nodes\n{user_data}");
    let (ng, d) = nodegroup(&set, "data");
    assert_eq!(ng.launch_template.as_deref(), Some("lt/data"));
    assert_eq!(ng.launch_template_version, Some(t.digest()));
    assert_eq!(ng.disk_size, None, "the template holds the volume");
    assert!(d.depends_on.contains(&"lt/data".to_string()));
    assert!(d.immutable.contains(&"launch_template".to_string()));
    assert!(!d.immutable.contains(&"launch_template_version".to_string()), "a new version rolls in place");

    // Bottlerocket: its data volume, TOML user data, no cluster dependency without security groups
    let (b, bd) = template(&set, "brock");
    assert_eq!((b.device.as_str(), b.hop_limit), ("/dev/xvdb", 1));
    assert_eq!(b.user_data.as_deref(), Some("[settings.kubernetes]\nmax-pods = 29\n"));
    assert!(bd.depends_on.is_empty());

    // the user's own: no template planned, the nodegroup names it
    assert!(set.desired.iter().all(|d| d.key != template_key("theirs")));
    let (theirs, _) = nodegroup(&set, "theirs");
    assert_eq!(
        (theirs.launch_template.as_deref(), theirs.launch_template_version.as_deref()),
        (Some("lt-0user"), Some("7"))
    );

    // read back as EKS reports the nodegroups (after discovery recognised eksodus's version): nothing to do
    let found: Vec<Observed> = ["data", "brock", "theirs"]
        .iter()
        .map(|n| {
            let (p, d) = nodegroup(&set, n);
            observe(&p, &d.key)
        })
        .collect();
    let ngs: Vec<Desired> = set.desired.iter().filter(|d| d.kind == "eks-nodegroup").cloned().collect();
    let plan = eks(&spec(TEMPLATED)).diff(&ngs, &Found { observed: found, ..Found::default() }).unwrap();
    let changed: Vec<String> = plan.changes().map(|s| format!("{} {:?}", s.key, s.changes)).collect();
    assert!(changed.is_empty(), "{changed:#?}");
}

/// The inputs of a plan made before the cluster exists (one zone, nothing known of the cluster).
fn before_the_cluster(owned: &Owned) -> Inputs<'_> {
    Inputs {
        account: "111122223333",
        version: "1.33",
        catalogue: None,
        installed_addons: &owned.installed,
        iam_keys: &owned.iam_keys,
        cluster_subnets: vec!["subnet/private/us-east-1a".into()],
        private_subnets: [("us-east-1a".to_string(), "subnet/private/us-east-1a".to_string())].into(),
        public_subnets: BTreeMap::new(),
        security_groups: vec![],
        max_pods: BTreeMap::new(),
        cluster_security_group: None,
        cluster_bootstrap: None,
    }
}

#[test]
fn a_template_with_security_groups_waits_for_the_cluster_security_group() {
    let s = spec(TEMPLATED);
    let owned = Owned { installed: BTreeMap::new(), iam_keys: BTreeSet::new() };
    let inp = before_the_cluster(&owned);
    let set = eks(&s).desired(&s, &inp).unwrap();
    assert!(set.desired.iter().all(|d| d.key != "lt/data" && d.key != "eks/nodegroup/data"));
    assert!(set.deferred.iter().any(|d| d.contains("lt/data") && d.contains("security group")), "{:?}", set.deferred);
    assert!(set.desired.iter().any(|d| d.key == "lt/brock"), "the others are not held back");
}

#[test]
fn a_content_change_is_a_new_version_in_place_and_a_template_change_replaces() {
    let set = desired(&spec(TEMPLATED)).unwrap();
    let (p, d) = nodegroup(&set, "data");
    let mut was = p.clone();
    was.launch_template_version = Some("sha256:0000000000000000".into());
    let mut theirs_was = nodegroup(&set, "theirs").0;
    theirs_was.launch_template = Some("lt-0other".into());
    let (b, bd) = nodegroup(&set, "brock");
    let (t, td) = nodegroup(&set, "theirs");
    let _ = t;
    let ngs: Vec<Desired> = set.desired.iter().filter(|d| d.kind == "eks-nodegroup").cloned().collect();
    let found = vec![observe(&was, &d.key), observe(&b, &bd.key), observe(&theirs_was, &td.key)];
    let plan = eks(&spec(TEMPLATED)).diff(&ngs, &Found { observed: found, ..Found::default() }).unwrap();
    let by_key = |k: &str| plan.steps.iter().find(|s| s.key == k).unwrap();
    assert_eq!(by_key(&d.key).action, Action::Update);
    assert_eq!(by_key(&td.key).action, Action::Replace, "EKS cannot move a nodegroup to another template");
}

/// The head of the small specs below: one environment, its nodegroups to follow.
const SHOP: &str = "
name: shop
region: us-east-1
network: {cidr: 10.0.0.0/16, azs: 2}
cluster:
  version: '1.33'
  nodegroups:
";

fn custom() -> String {
    format!(
        "{SHOP}    - name: gpu
      instance_types: [m5.large]
      ami: ami-0123456789abcdef0
      ami_type: AL2023_x86_64_STANDARD
      labels: {{tier: gpu}}
      taints: [{{key: gpu, value: 'true', effect: NO_SCHEDULE}}]
"
    )
}

#[test]
fn a_custom_ami_is_a_template_with_the_whole_bootstrap_and_a_nodegroup_without_a_version() {
    let set = desired(&spec(&custom())).unwrap();
    let (ng, d) = nodegroup(&set, "gpu");
    assert_eq!(ng.ami_type, "CUSTOM");
    assert_eq!(ng.version, "", "EKS takes no version for a custom AMI");
    assert_eq!(ng.launch_template.as_deref(), Some("lt/gpu"));
    assert!(d.depends_on.contains(&"lt/gpu".to_string()));
    let lt = set.desired.iter().find(|d| d.key == "lt/gpu").unwrap();
    let t: LaunchTemplateProps = from_props(&lt.key, &lt.props).unwrap();
    assert_eq!(t.image_id.as_deref(), Some("ami-0123456789abcdef0"));
    let ud = t.user_data.clone().unwrap();
    assert!(ud.contains("apiServerEndpoint: \"https://ABCDEF.gr7.us-east-1.eks.amazonaws.com\""), "{ud}");
    assert!(ud.contains("cidr: \"10.100.0.0/16\""), "{ud}");
    // EKS computes no max pods for a custom AMI: eksodus's figure for m5.large
    assert!(ud.contains("maxPods: 29"), "{ud}");
    assert!(ud.contains("eks.amazonaws.com/nodegroup-image=ami-0123456789abcdef0"), "{ud}");
    assert!(ud.contains("--register-with-taints=gpu=true:NoSchedule"), "{ud}");
    assert!(lt.depends_on.contains(&CLUSTER_KEY.to_string()), "the bootstrap names the cluster");
    // the digest of a template without an AMI is what it was before templates could carry one
    let plain = LaunchTemplateProps { image_id: None, ..t.clone() };
    assert!(!to_props(&plain).contains_key("image_id"));
}

#[test]
fn a_custom_ami_waits_for_the_cluster_to_say_where_it_is() {
    let s = spec(&custom());
    let owned = Owned { installed: BTreeMap::new(), iam_keys: BTreeSet::new() };
    let inp = Inputs { cluster_security_group: Some("sg-1".into()), ..before_the_cluster(&owned) };
    let set = eks(&s).desired(&s, &inp).unwrap();
    assert!(set.desired.iter().all(|d| d.key != "lt/gpu" && d.key != "eks/nodegroup/gpu"));
    assert!(set.deferred.iter().any(|d| d.contains("lt/gpu") && d.contains("endpoint and CA")), "{:?}", set.deferred);
}

#[test]
fn ssh_beside_eksodus_template_is_the_templates_key_and_an_ssh_group_not_remote_access() {
    let text = &format!("{SHOP}    - name: ops
      instance_types: [m5.large]
      disk_size: 40
      volume: {{type: gp3}}
      ssh: {{public_key: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOpsKeyOfTheTeam ops@shop', source_security_groups: [sg-0bastion]}}
");
    let s = spec(text);
    let set = desired(&s).unwrap();
    let (ng, _) = nodegroup(&set, "ops");
    assert!(ng.remote_access.is_none(), "EKS takes no remote access beside a template");
    let (t, d) = template(&set, "ops");
    let kp = set.desired.iter().find(|d| d.kind == "ec2-key-pair").expect("the public key is imported");
    assert_eq!(t.key_name.as_deref(), kp.props["name"].as_str());
    // the SSH group by its key (made by the network component), beside the cluster's own group
    assert_eq!(t.security_groups, ["sg-0c1u5te7", "sg/ssh/ops"]);
    for dep in [CLUSTER_KEY, "sg/ssh/ops", kp.key.as_str()] {
        assert!(d.depends_on.iter().any(|x| x == dep), "{dep}: {:?}", d.depends_on);
    }
    // the digest names the group by key, so it is the same before and after the group exists
    assert_eq!(ng.launch_template_version, Some(t.digest()));
    // a new key is a new pair the template names: new content, so a new version the nodegroup rolls onto
    let s2 = spec(&text.replace("AAAAIOpsKeyOfTheTeam", "AAAAINewKeyOfTheTeam"));
    let set2 = desired(&s2).unwrap();
    let (t2, _) = template(&set2, "ops");
    assert_ne!(t2.key_name, t.key_name);
    assert_ne!(t2.digest(), t.digest());
    assert_eq!(nodegroup(&set2, "ops").0.launch_template_version, Some(t2.digest()));
}

/// The family is fixed at creation: EKS has no call that changes it, and eksodus never replaces a cluster on
/// its own, so a change is refused naming the field.
#[test]
fn the_ip_family_is_planned_and_a_change_is_refused_not_a_replacement() {
    let v6 = spec(&SPEC.replace("  version: \"1.33\"\n", "  version: \"1.33\"\n  ip_family: ipv6\n"));
    assert!(v6.ipv6_cluster());
    let set = desired(&v6).unwrap();
    let cluster = set.desired.iter().find(|d| d.key == CLUSTER_KEY).unwrap().clone();
    assert_eq!(cluster.props["ip_family"], "ipv6");
    assert!(cluster.props.get("service_cidr").is_none(), "EKS picks an IPv6 cluster's range");
    let v4 = desired(&spec(SPEC)).unwrap();
    assert_eq!(v4.desired.iter().find(|d| d.key == CLUSTER_KEY).unwrap().props["ip_family"], "ipv4");
    let found = |family: &str| {
        let mut props = cluster.props.clone();
        props.insert("ip_family".into(), json!(family));
        Observed {
            key: CLUSTER_KEY.into(),
            kind: cluster.kind.clone(),
            physical_id: "shop".into(),
            props,
            depends_on: vec![],
            delete_cost: 1,
        }
    };
    let diff = |family: &str| {
        eks(&v6).diff(std::slice::from_ref(&cluster), &Found { observed: vec![found(family)], ..Found::default() })
    };
    assert_eq!(diff("ipv6").unwrap().changes().count(), 0);
    match diff("ipv4") {
        Err(Error::ClusterReplacement { fields }) => assert_eq!(fields, ["ip_family"]),
        other => panic!("an IPv4 cluster is not turned into an IPv6 one: {other:?}"),
    }
}

const FARGATE: &str = r#"
name: shop
region: us-east-1
tags: {team: platform}
network: {cidr: 10.42.0.0/16, azs: 2}
cluster:
  version: "1.33"
  addons: [{name: coredns}]
  fargate_profiles:
    - name: system
      selectors: [{namespace: kube-system, labels: {k8s-app: kube-dns}}, {namespace: default}]
      tags: {cost-center: shop}
    - name: theirs
      selectors: [{namespace: 'team-*'}]
      pod_execution_role_arn: arn:aws:iam::111122223333:role/their-fargate
"#;

/// A profile as EKS would describe it after creating `p` (tags as eksodus sends them).
fn described_profile(e: &Eks, p: &FargateProfileProps, key: &str) -> aws_sdk_eks::types::FargateProfile {
    let mut b = aws_sdk_eks::types::FargateProfile::builder()
        .fargate_profile_name(&p.name)
        .fargate_profile_arn(format!("arn:aws:eks:us-east-1:111122223333:fargateprofile/shop/{}/1", p.name))
        .pod_execution_role_arn(&p.pod_execution_role_arn)
        .status(aws_sdk_eks::types::FargateProfileStatus::Active)
        .set_subnets(Some(p.subnets.iter().rev().cloned().collect()))
        .set_tags(Some(e.tags_over(key, &p.tags)));
    for s in p.selectors.iter().rev() {
        b = b.selectors(
            aws_sdk_eks::types::FargateProfileSelector::builder()
                .namespace(&s.namespace)
                .set_labels(Some(s.labels.clone().into_iter().collect()))
                .build(),
        );
    }
    b.build()
}

#[test]
fn fargate_profiles_run_in_the_private_subnets_as_eksodus_role_and_read_back_as_planned() {
    let s = spec(FARGATE);
    let installed = [("coredns".to_string(), "v1.12.1-eksbuild.2".to_string())].into();
    let set = desired_owning(&s, &Owned { installed, iam_keys: BTreeSet::new() }).unwrap();
    let profiles: Vec<&Desired> = set.desired.iter().filter(|d| d.kind == "eks-fargate-profile").collect();
    assert_eq!(profiles.len(), 2);
    let system: FargateProfileProps = from_props("system", &profiles[0].props).unwrap();
    assert_eq!(system.subnets, ["subnet/private/us-east-1a", "subnet/private/us-east-1b"]);
    assert_eq!(system.pod_execution_role_arn, "arn:aws:iam::111122223333:role/eksodus/shop/shop-fargate");
    assert_eq!(system.tags, [("cost-center", "shop"), ("team", "platform")].map(|(k, v)| (k.into(), v.into())).into());
    assert_eq!(system.selectors[0].namespace, "default", "selectors are sorted");
    assert!(profiles[0].depends_on.contains(&eksodus_access::iam::FARGATE_ROLE_KEY.to_string()));
    let theirs: FargateProfileProps = from_props("theirs", &profiles[1].props).unwrap();
    assert_eq!(theirs.pod_execution_role_arn, "arn:aws:iam::111122223333:role/their-fargate");
    assert!(!profiles[1].depends_on.iter().any(|d| d.starts_with("role/")), "{:?}", profiles[1].depends_on);
    // CoreDNS may run on Fargate: it waits for the profiles
    let coredns = set.desired.iter().find(|d| d.key == addon_key("coredns")).unwrap();
    assert!(coredns.depends_on.contains(&fargate_profile_key("system")), "{:?}", coredns.depends_on);

    // what EKS reports back plans nothing; a selector change replaces, a tag change updates
    let e = eks(&s);
    let observe = |p: &FargateProfileProps, key: &str| {
        fargate::observed_fargate_profile("shop", &described_profile(&e, p, key), &|s: &str| s.to_string())
    };
    let want: Vec<Desired> = profiles.iter().map(|d| (*d).clone()).collect();
    let plan = |found: Vec<Observed>| e.diff(&want, &Found { observed: found, ..Found::default() }).unwrap();
    let same = plan(vec![observe(&system, &profiles[0].key), observe(&theirs, &profiles[1].key)]);
    assert_eq!(same.changes().count(), 0, "{:#?}", same.changes().collect::<Vec<_>>());
    let own_role = observe(&system, &profiles[0].key);
    assert!(own_role.depends_on.contains(&eksodus_access::iam::FARGATE_ROLE_KEY.to_string()));
    let mut was = system.clone();
    was.selectors.pop();
    was.tags.remove("cost-center");
    let p = plan(vec![observe(&was, &profiles[0].key), observe(&theirs, &profiles[1].key)]);
    let step = p.steps.iter().find(|st| st.key == profiles[0].key).unwrap();
    assert_eq!(step.action, Action::Replace, "{:?}", step.reasons);
    // a tag the spec adds (the environment's tags are always there)
    let mut tagged = s.clone();
    tagged.cluster.as_mut().unwrap().fargate_profiles[1].tags = [("owner".to_string(), "sre".to_string())].into();
    let installed = [("coredns".to_string(), "v1.12.1-eksbuild.2".to_string())].into();
    let more = desired_owning(&tagged, &Owned { installed, iam_keys: BTreeSet::new() }).unwrap();
    let want: Vec<Desired> = more.desired.into_iter().filter(|d| d.kind == "eks-fargate-profile").collect();
    let found = vec![observe(&system, &profiles[0].key), observe(&theirs, &profiles[1].key)];
    let p = e.diff(&want, &Found { observed: found, ..Found::default() }).unwrap();
    let step = p.steps.iter().find(|st| st.key == profiles[1].key).unwrap();
    assert_eq!(step.action, Action::Update);
    assert_eq!(step.changes.iter().map(|c| c.field.as_str()).collect::<Vec<_>>(), ["tags"]);
}

#[test]
fn a_fargate_profile_without_a_private_subnet_names_its_field() {
    let s = spec(FARGATE);
    let installed = [("coredns".to_string(), "v1.12.1-eksbuild.2".to_string())].into();
    let owned = Owned { installed, iam_keys: BTreeSet::new() };
    let mut inp = before_the_cluster(&owned);
    inp.private_subnets.clear();
    let err = eks(&s).desired(&s, &inp).unwrap_err();
    assert!(matches!(&err, Error::Spec { field, .. } if field == "cluster.fargate_profiles[0]"), "{err:?}");
}

const CAPABILITIES: &str = r#"
name: shop
region: us-east-1
tags: {team: platform}
network: {cidr: 10.42.0.0/16, azs: 2}
cluster:
  version: "1.33"
  capabilities:
    - name: ack
      type: ACK
      attach_policy_arns: [arn:aws:iam::aws:policy/AmazonS3FullAccess]
      access_policies: [{policy: AmazonEKSACKPolicy}, {policy: AmazonEKSEditPolicy, namespaces: [shop, infra]}]
      tags: {cost-center: shop}
    - name: gitops
      type: ARGOCD
      role_arn: arn:aws:iam::111122223333:role/their-argocd
      argocd:
        idc_instance_arn: arn:aws:sso:::instance/ssoins-0123456789abcdef
        rbac_role_mappings:
          - role: VIEWER
            identities: [{id: g2, type: SSO_GROUP}, {id: u1, type: SSO_USER}]
          - role: ADMIN
            identities: [{id: g1, type: SSO_GROUP}]
"#;

/// A capability as EKS would describe it after creating `p`, with the configuration in EKS's order.
fn described_capability(e: &Eks, p: &CapabilityProps, key: &str) -> aws_sdk_eks::types::Capability {
    use aws_sdk_eks::types::{
        ArgoCdAwsIdcConfigResponse, ArgoCdConfigResponse, ArgoCdRole, ArgoCdRoleMapping,
        CapabilityConfigurationResponse, SsoIdentity, SsoIdentityType,
    };
    let mut b = aws_sdk_eks::types::Capability::builder()
        .capability_name(&p.name)
        .arn(format!("arn:aws:eks:us-east-1:111122223333:capability/shop/{}/1", p.name))
        .r#type(aws_sdk_eks::types::CapabilityType::from(p.kind.as_str()))
        .role_arn(&p.role_arn)
        .status(aws_sdk_eks::types::CapabilityStatus::Active)
        .set_tags(Some(e.tags_over(key, &p.tags)));
    if let Some(idc) = &p.idc_instance_arn {
        let mut argo = ArgoCdConfigResponse::builder().set_namespace(p.argocd_namespace.clone()).aws_idc(
            ArgoCdAwsIdcConfigResponse::builder().idc_instance_arn(idc).set_idc_region(p.idc_region.clone()).build(),
        );
        for m in p.rbac_role_mappings.iter().rev() {
            let ids = m.identities.iter().rev().map(|i| {
                SsoIdentity::builder().id(&i.id).r#type(SsoIdentityType::from(i.kind.as_str())).build().unwrap()
            });
            argo = argo.rbac_role_mappings(
                ArgoCdRoleMapping::builder()
                    .role(ArgoCdRole::from(m.role.as_str()))
                    .set_identities(Some(ids.collect()))
                    .build()
                    .unwrap(),
            );
        }
        b = b.configuration(CapabilityConfigurationResponse::builder().argo_cd(argo.build()).build());
    }
    b.build()
}

#[test]
fn capabilities_run_as_their_roles_and_read_back_as_planned() {
    let s = spec(CAPABILITIES);
    let set = desired(&s).unwrap();
    let caps: Vec<&Desired> = set.desired.iter().filter(|d| d.kind == "eks-capability").collect();
    assert_eq!(caps.len(), 2);
    let ack: CapabilityProps = from_props("ack", &caps[0].props).unwrap();
    assert_eq!(ack.role_arn, "arn:aws:iam::111122223333:role/eksodus/shop/shop-capability-ack");
    assert!(caps[0].depends_on.contains(&eksodus_access::iam::capability_role_key("ack")));
    // EKS's own ACK policy is no change of the spec's; the other is scoped to its namespaces, sorted
    assert_eq!(
        ack.access_policies,
        ["arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy|namespace:infra,shop"]
    );
    assert_eq!(ack.tags, [("cost-center", "shop"), ("team", "platform")].map(|(k, v)| (k.into(), v.into())).into());
    let argo: CapabilityProps = from_props("gitops", &caps[1].props).unwrap();
    assert_eq!(argo.role_arn, "arn:aws:iam::111122223333:role/their-argocd");
    assert!(!caps[1].depends_on.iter().any(|d| d.starts_with("role/")), "{:?}", caps[1].depends_on);
    assert_eq!((argo.argocd_namespace.as_deref(), argo.idc_region.as_deref()), (Some("argocd"), Some("us-east-1")));
    assert_eq!(argo.rbac_role_mappings[0].role, "ADMIN", "mappings are sorted");

    // what EKS reports back (its own policies on the entry, mappings in another order) plans nothing
    let e = eks(&s);
    let eks_own = |p: &CapabilityProps| -> Vec<String> {
        let k = eksodus_core::spec::CapabilityKind::parse(&p.kind).unwrap();
        k.eks_access_policies("argocd")
            .into_iter()
            .map(|(p, ns)| eksodus_access::entries::policy_line(p, &ns))
            .collect()
    };
    let observe = |p: &CapabilityProps, key: &str| {
        let mut policies = p.access_policies.clone();
        policies.extend(eks_own(p));
        capability::observed_capability("shop", &described_capability(&e, p, key), &policies)
    };
    let want: Vec<Desired> = caps.iter().map(|d| (*d).clone()).collect();
    let plan = |found: Vec<Observed>| e.diff(&want, &Found { observed: found, ..Found::default() }).unwrap();
    let same = plan(vec![observe(&ack, &caps[0].key), observe(&argo, &caps[1].key)]);
    assert_eq!(same.changes().count(), 0, "{:#?}", same.changes().collect::<Vec<_>>());
    assert!(observe(&ack, &caps[0].key).depends_on.contains(&eksodus_access::iam::capability_role_key("ack")));

    // a mapping or an access policy changes in place; a namespace replaces
    let mut was = argo.clone();
    was.rbac_role_mappings.pop();
    let mut ack_was = ack.clone();
    ack_was.access_policies.clear();
    let p = plan(vec![observe(&ack_was, &caps[0].key), observe(&was, &caps[1].key)]);
    for (key, field) in [(&caps[0].key, "access_policies"), (&caps[1].key, "rbac_role_mappings")] {
        let step = p.steps.iter().find(|st| &st.key == key).unwrap();
        assert_eq!(step.action, Action::Update, "{key}: {:?}", step.reasons);
        assert_eq!(step.changes.iter().map(|c| c.field.as_str()).collect::<Vec<_>>(), [field]);
    }
    let mut moved = argo.clone();
    moved.argocd_namespace = Some("gitops".into());
    let p = plan(vec![observe(&ack, &caps[0].key), observe(&moved, &caps[1].key)]);
    let step = p.steps.iter().find(|st| st.key == caps[1].key).unwrap();
    assert_eq!(step.action, Action::Replace, "{:?}", step.reasons);
}
