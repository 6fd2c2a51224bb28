//! The desired state: the network resources a spec and its layout want, built from their typed properties.

use super::*;

/// How `desired` makes one resource: key, kind, properties, immutable properties, dependencies, cost.
type MakeDesired<'a> = dyn Fn(&str, &str, Map<String, Value>, &[&str], Vec<String>, Cost) -> Desired + 'a;

impl Network {
    /// The resources `spec` wants, for `layout` (absent when adopting an existing VPC).
    pub fn desired(&self, spec: &EnvironmentSpec, layout: Option<&Layout>) -> Vec<Desired> {
        let mut out = Vec::new();
        let user_tags = &self.user_tags;
        let d =
            |key: &str, kind: &str, mut p: Map<String, Value>, immutable: &[&str], deps: Vec<String>, cost: Cost| {
                if TAGGABLE.contains(&kind) {
                    // the user's tags are wanted on every taggable resource, next to any kind-specific ones
                    let t = p.entry(plan::TAGS).or_insert_with(|| json!({}));
                    if let Value::Object(t) = t {
                        for (k, v) in user_tags {
                            t.entry(k.clone()).or_insert_with(|| json!(v));
                        }
                    }
                }
                Desired {
                    key: key.to_string(),
                    kind: kind.to_string(),
                    props: p,
                    immutable: immutable.iter().map(|s| s.to_string()).collect(),
                    depends_on: deps,
                    cost,
                }
            };
        // the cluster security group: the only resource of an adopted VPC that is ours, and the last of our own
        let cluster_sg = to_props(&SecurityGroupProps {
            name: format!("{}-cluster", self.env),
            description: "eksodus cluster security group".into(),
            self_ingress: true,
            ssh_from: None,
            ssh_from_cidrs: None,
            https_from: vec![],
            remote_https_from: Some(remote_https_from(spec)),
            tags: BTreeMap::new(),
        });
        let sg_cost = Cost::new(2, 1, 2);
        // a nodegroup on eksodus's launch template reached over SSH: EKS makes no remote-access group beside a
        // template, so the template names this one
        let vpc_dep = if layout.is_some() { vec!["vpc".to_string()] } else { vec![] };
        for n in spec.cluster.iter().flat_map(|c| &c.nodegroups).filter(|n| n.ssh.is_some() && n.owns_template()) {
            let ssh = n.ssh.as_ref().expect("filtered on");
            let mut from = ssh.source_security_groups.clone();
            from.sort();
            from.dedup();
            let mut cidrs: Vec<String> = ssh.source_cidrs.iter().map(|c| c.trunc().to_string()).collect();
            cidrs.sort();
            cidrs.dedup();
            let p = to_props(&SecurityGroupProps {
                name: ssh_group_name(&self.env, &n.name),
                description: format!("eksodus: SSH to the nodes of nodegroup {}", n.name),
                self_ingress: false,
                ssh_from: Some(from),
                ssh_from_cidrs: Some(cidrs),
                https_from: vec![],
                remote_https_from: None,
                tags: BTreeMap::new(),
            });
            out.push(d(
                &ssh_group_key(&n.name),
                "security-group",
                p,
                &["name", "description"],
                vpc_dep.clone(),
                sg_cost,
            ));
        }
        let Some(layout) = layout else {
            // Adopted VPC: only the security groups are ours.
            out.push(d(
                CLUSTER_SG_KEY,
                "security-group",
                cluster_sg.clone(),
                &["name", "description"],
                vec![],
                sg_cost,
            ));
            return out;
        };
        out.push(d(
            "vpc",
            "vpc",
            to_props(&VpcProps {
                cidr: layout.vpc.to_string(),
                dns_support: true,
                dns_hostnames: true,
                tags: BTreeMap::new(),
            }),
            &["cidr"],
            vec![],
            Cost::new(2, 1, 2),
        ));
        if let Some(sec) = layout.secondary {
            out.push(d(
                "vpc-cidr/secondary",
                "vpc-cidr",
                to_props(&VpcCidrProps { cidr: sec.to_string() }),
                &["cidr"],
                vec!["vpc".into()],
                Cost::new(1, 0, 1),
            ));
        }
        let ipv6 = spec.dual_stack();
        // an IPv6 cluster's nodes and pods need IPv6 addresses and, from the private subnets, a way out
        let ipv6_cluster = spec.ipv6_cluster();
        if ipv6 {
            // checked for before associating, since the association carries no token
            out.push(d(
                IPV6_CIDR_KEY,
                "vpc-ipv6-cidr",
                to_props(&VpcIpv6CidrProps { pool: AMAZON_POOL.into() }),
                &["pool"],
                vec!["vpc".into()],
                Cost::new(2, 0, 1),
            ));
        }
        let public = layout.subnets.iter().any(|s| s.tier == Tier::Public);
        for s in &layout.subnets {
            let mut t = BTreeMap::new();
            t.insert(cluster_tag(&spec.name), "shared".to_string());
            // a Local Zone's subnets carry no load balancer role: only ALBs run there, so the controllers'
            // discovery would put an NLB or a classic ELB in a zone that has none (an ALB in the Local Zone
            // names its subnet in its annotations)
            match s.tier {
                _ if layout.is_local(&s.az) => {}
                Tier::Public => {
                    t.insert(ELB_TAG.into(), "1".into());
                }
                Tier::Private => {
                    t.insert(INTERNAL_ELB_TAG.into(), "1".into());
                }
                Tier::Pods => {}
            }
            let mut deps = vec!["vpc".to_string()];
            if s.tier == Tier::Pods {
                deps.push("vpc-cidr/secondary".into());
            }
            if s.ipv6_index.is_some() {
                deps.push(IPV6_CIDR_KEY.into());
            }
            let public_ip = s.tier == Tier::Public;
            let hostname = spec.network.hostname_type;
            // the create call, then one call per attribute that is not EC2's default, and three (the VPC's
            // block, the subnet's, the association) for an IPv6 block
            let assign_ipv6 = ipv6_cluster && s.ipv6_index.is_some();
            let create = 1
                + u32::from(public_ip)
                + u32::from(!hostname.is_default())
                + u32::from(assign_ipv6)
                + if s.ipv6_index.is_some() { 3 } else { 0 };
            out.push(d(
                &s.key(),
                "subnet",
                to_props(&SubnetProps {
                    cidr: s.cidr.to_string(),
                    az: s.az.clone(),
                    map_public_ip: public_ip,
                    ipv6_index: s.ipv6_index,
                    assign_ipv6,
                    hostname_type: hostname.as_str().into(),
                    tags: t,
                }),
                &["cidr", "az"],
                deps,
                Cost::new(create, 1, 2),
            ));
        }
        if public {
            out.push(d(
                "igw",
                "internet-gateway",
                to_props(&InternetGatewayProps { attached: true, tags: BTreeMap::new() }),
                &[],
                vec!["vpc".into()],
                Cost::new(2, 1, 2),
            ));
            out.push(d(
                "rtb/public",
                "route-table",
                to_props(&TagsOnly::default()),
                &[],
                vec!["vpc".into()],
                Cost::new(1, 0, 1),
            ));
            out.push(d(
                "route/public/default",
                "route",
                to_props(&RouteProps {
                    route_table: "rtb/public".into(),
                    destination: "0.0.0.0/0".into(),
                    target: "igw".into(),
                }),
                &["route_table", "destination"],
                vec!["rtb/public".into(), "igw".into()],
                Cost::new(1, 1, 1),
            ));
            if ipv6 {
                // as eksctl does: the public subnets reach the internet over IPv6 too; the private ones get an
                // egress-only gateway in an IPv6 cluster (below), and otherwise stay IPv4-only outbound
                out.push(d(
                    "route/public/default-ipv6",
                    "route",
                    to_props(&RouteProps {
                        route_table: "rtb/public".into(),
                        destination: IPV6_DEFAULT.into(),
                        target: "igw".into(),
                    }),
                    &["route_table", "destination"],
                    vec!["rtb/public".into(), "igw".into(), IPV6_CIDR_KEY.into()],
                    Cost::new(1, 1, 1),
                ));
            }
        }
        let nat_azs: Vec<&String> = match spec.network.nat {
            NatMode::None => vec![],
            NatMode::Single => layout.azs.iter().take(1).collect(),
            NatMode::PerAz => layout.azs.iter().collect(),
        };
        for az in &nat_azs {
            out.push(d(&format!("eip/{az}"), "eip", to_props(&TagsOnly::default()), &[], vec![], Cost::new(1, 0, 1)));
            out.push(d(
                &format!("nat/{az}"),
                "nat-gateway",
                to_props(&NatGatewayProps {
                    subnet: format!("subnet/public/{az}"),
                    eip: format!("eip/{az}"),
                    healthy: true,
                    tags: BTreeMap::new(),
                }),
                &["subnet", "eip", "healthy"],
                vec![format!("subnet/public/{az}"), format!("eip/{az}"), "igw".into()],
                Cost::new(1, 0, 2),
            ));
        }
        if ipv6_cluster {
            out.push(d(
                EIGW_KEY,
                "egress-only-igw",
                to_props(&TagsOnly::default()),
                &[],
                vec!["vpc".into()],
                Cost::new(1, 0, 1),
            ));
        }
        // a Local Zone's private subnets reach the internet through the first zone's NAT gateway: NAT gateways
        // are not offered in every Local Zone, and eksctl routes them the same way
        for az in layout.azs.iter().chain(&layout.local_zones) {
            let rtb = format!("rtb/private/{az}");
            if ipv6_cluster {
                // pods and nodes reach IPv6 addresses outside, and nothing outside reaches in (eksctl's IPv6
                // VPC has the same route)
                out.push(d(
                    &format!("route/private/{az}/default-ipv6"),
                    "route",
                    to_props(&RouteProps {
                        route_table: rtb.clone(),
                        destination: IPV6_DEFAULT.into(),
                        target: EIGW_KEY.into(),
                    }),
                    &["route_table", "destination"],
                    vec![rtb.clone(), EIGW_KEY.into(), IPV6_CIDR_KEY.into()],
                    Cost::new(1, 1, 1),
                ));
            }
            out.push(d(
                &rtb,
                "route-table",
                to_props(&TagsOnly::default()),
                &[],
                vec!["vpc".into()],
                Cost::new(1, 0, 1),
            ));
            if let Some(nat_az) = match spec.network.nat {
                NatMode::None => None,
                NatMode::PerAz if !layout.is_local(az) => Some(az),
                NatMode::Single | NatMode::PerAz => nat_azs.first().copied(),
            } {
                let nat = format!("nat/{nat_az}");
                out.push(d(
                    &format!("route/private/{az}/default"),
                    "route",
                    to_props(&RouteProps {
                        route_table: rtb.clone(),
                        destination: "0.0.0.0/0".into(),
                        target: nat.clone(),
                    }),
                    &["route_table", "destination"],
                    vec![rtb.clone(), nat.clone()],
                    Cost::new(1, 1, 1),
                ));
            }
        }
        if !spec.network.vpc_endpoints.is_empty() {
            self.endpoints(spec, layout, &mut out, &d);
        }
        for s in &layout.subnets {
            let rtb = match s.tier {
                Tier::Public => "rtb/public".to_string(),
                _ => format!("rtb/private/{}", s.az),
            };
            out.push(d(
                &format!("rtassoc/{}/{}", s.tier, s.az),
                "rt-association",
                to_props(&RtAssociationProps { route_table: rtb.clone(), subnet: s.key() }),
                &["subnet"],
                vec![rtb.clone(), s.key()],
                Cost::new(1, 1, 1),
            ));
        }
        out.push(d(
            CLUSTER_SG_KEY,
            "security-group",
            cluster_sg,
            &["name", "description"],
            vec!["vpc".into()],
            sg_cost,
        ));
        out
    }

    /// A private cluster's VPC endpoints and the security group that lets the VPC reach them on port 443.
    fn endpoints(&self, spec: &EnvironmentSpec, layout: &Layout, out: &mut Vec<Desired>, d: &MakeDesired<'_>) {
        // the pods' secondary CIDR too: with custom networking, pods call AWS from their own addresses
        let mut from: Vec<String> =
            std::iter::once(layout.vpc).chain(layout.secondary).map(|c| c.to_string()).collect();
        from.sort();
        out.push(d(
            ENDPOINTS_SG_KEY,
            "security-group",
            to_props(&SecurityGroupProps {
                name: format!("{}-endpoints", self.env),
                description: "eksodus: HTTPS to the VPC endpoints from the VPC".into(),
                self_ingress: false,
                ssh_from: None,
                ssh_from_cidrs: None,
                https_from: from,
                remote_https_from: None,
                tags: BTreeMap::new(),
            }),
            &["name", "description"],
            vec!["vpc".into()],
            Cost::new(2, 1, 2),
        ));
        // interface endpoints are offered in the availability zones; a Local Zone reaches them through the
        // VPC, and S3's gateway routes from its table as from the others
        let mut subnets: Vec<String> = layout
            .subnets
            .iter()
            .filter(|s| s.tier == Tier::Private && !layout.is_local(&s.az))
            .map(|s| s.key())
            .collect();
        subnets.sort();
        let mut tables: Vec<String> =
            layout.azs.iter().chain(&layout.local_zones).map(|az| format!("rtb/private/{az}")).collect();
        tables.sort();
        let mut services = spec.network.vpc_endpoints.clone();
        services.sort();
        services.dedup();
        for e in services {
            let (p, deps) = if e.is_gateway() {
                let p = VpcEndpointProps {
                    service: e.service_name(&spec.region),
                    endpoint_type: "Gateway".into(),
                    subnets: vec![],
                    route_tables: tables.clone(),
                    security_groups: vec![],
                    private_dns: false,
                    tags: BTreeMap::new(),
                };
                (p, tables.clone())
            } else {
                let p = VpcEndpointProps {
                    service: e.service_name(&spec.region),
                    endpoint_type: "Interface".into(),
                    subnets: subnets.clone(),
                    route_tables: vec![],
                    security_groups: vec![ENDPOINTS_SG_KEY.into()],
                    private_dns: true,
                    tags: BTreeMap::new(),
                };
                (p, subnets.iter().cloned().chain([ENDPOINTS_SG_KEY.to_string()]).collect())
            };
            let deps = std::iter::once("vpc".to_string()).chain(deps).collect();
            // the create, and the describes of its wait
            out.push(d(
                &endpoint_key(e),
                "vpc-endpoint",
                to_props(&p),
                &["service", "endpoint_type"],
                deps,
                Cost::new(2, 1, 2),
            ));
        }
    }
}

/// The networks of hybrid nodes and their pods, which reach the API server through the cluster's group on
/// port 443 (sorted, each once).
fn remote_https_from(spec: &EnvironmentSpec) -> Vec<String> {
    let mut v: Vec<String> = spec
        .cluster
        .iter()
        .filter_map(|c| c.remote_network.as_ref())
        .flat_map(|r| r.all_cidrs())
        .map(|n| n.to_string())
        .collect();
    v.sort();
    v.dedup();
    v
}
