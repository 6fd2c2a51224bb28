//! Discovery by ownership tags, plans against it, checks of an adopted VPC, and what is left after a delete.

use super::*;

impl Network {
    /// Finds every owned network resource (a handful of Describe calls, run concurrently), retrying
    /// throttling and transient errors.
    pub async fn discover(&self) -> Result<Discovery, Error> {
        // boxed: the SDK's futures are large, and callers should not have to carry them on their stack
        Box::pin(self.discover_inner()).await
    }

    pub(super) async fn discover_inner(&self) -> Result<Discovery, Error> {
        let f = self.owned_filters();
        let (vpcs, subnets, igws, eigws, eips, nats, rtbs, sgs, vpces) = tokio::try_join!(
            self.read("DescribeVpcs", || self.ec2.describe_vpcs().set_filters(Some(f.clone())).send()),
            self.read("DescribeSubnets", || self.ec2.describe_subnets().set_filters(Some(f.clone())).send()),
            self.read("DescribeInternetGateways", || self
                .ec2
                .describe_internet_gateways()
                .set_filters(Some(f.clone()))
                .send()),
            // moto ignores these filters; the tags are checked below as for every kind
            self.read("DescribeEgressOnlyInternetGateways", || self
                .ec2
                .describe_egress_only_internet_gateways()
                .set_filters(Some(f.clone()))
                .send()),
            self.read("DescribeAddresses", || self.ec2.describe_addresses().set_filters(Some(f.clone())).send()),
            self.read("DescribeNatGateways", || self.ec2.describe_nat_gateways().set_filter(Some(f.clone())).send()),
            self.read("DescribeRouteTables", || self.ec2.describe_route_tables().set_filters(Some(f.clone())).send()),
            self.read("DescribeSecurityGroups", || self
                .ec2
                .describe_security_groups()
                .set_filters(Some(f.clone()))
                .send()),
            self.read("DescribeVpcEndpoints", || self.ec2.describe_vpc_endpoints().set_filters(Some(f.clone())).send()),
        )?;
        let mut d = Discovery::default();
        // keep only what this environment's network owns, whatever filters the server honoured
        let key_of = |t: &[Tag]| {
            let t = tag_map(t);
            if tags::is_owned(&t, &self.env, COMPONENT) {
                t.get(tags::RESOURCE).cloned()
            } else {
                None
            }
        };

        // each VPC's IPv6 block, against which a subnet's /64 is read back as an index
        let mut ipv6_blocks: HashMap<String, ipnet::Ipv6Net> = HashMap::new();
        for v in vpcs.vpcs() {
            let (Some(id), Some(key)) = (v.vpc_id(), key_of(v.tags())) else { continue };
            d.keys.insert(id.to_string(), key.clone());
            let (dns_s, dns_h) = tokio::try_join!(
                async {
                    self.read("DescribeVpcAttribute", || {
                        self.ec2
                            .describe_vpc_attribute()
                            .vpc_id(id)
                            .attribute(VpcAttributeName::EnableDnsSupport)
                            .send()
                    })
                    .await
                },
                async {
                    self.read("DescribeVpcAttribute", || {
                        self.ec2
                            .describe_vpc_attribute()
                            .vpc_id(id)
                            .attribute(VpcAttributeName::EnableDnsHostnames)
                            .send()
                    })
                    .await
                },
            )?;
            d.observed.push(Observed {
                key: key.clone(),
                kind: "vpc".into(),
                physical_id: id.to_string(),
                props: props(json!({
                    "cidr": v.cidr_block(),
                    "dns_support": dns_s.enable_dns_support().and_then(|a| a.value()).unwrap_or(false),
                    "dns_hostnames": dns_h.enable_dns_hostnames().and_then(|a| a.value()).unwrap_or(false),
                    "tags": tag_map(v.tags()),
                })),
                depends_on: vec![],
                delete_cost: 2,
            });
            for a in v.cidr_block_association_set() {
                let state =
                    a.cidr_block_state().and_then(|s| s.state()).map(|s| s.as_str().to_string()).unwrap_or_default();
                if a.cidr_block() == v.cidr_block() || !(state == "associated" || state == "associating") {
                    continue;
                }
                d.observed.push(Observed {
                    key: "vpc-cidr/secondary".into(),
                    kind: "vpc-cidr".into(),
                    physical_id: a.association_id().unwrap_or_default().to_string(),
                    props: props(json!({"cidr": a.cidr_block()})),
                    depends_on: vec![key.clone()],
                    delete_cost: 1,
                });
            }
            // a block being taken away is on its way out: neither wanted nor in the way
            for a in v.ipv6_cidr_block_association_set().iter().filter(|a| {
                a.ipv6_cidr_block_state().and_then(|s| s.state()).is_some_and(|s| {
                    matches!(s, VpcCidrBlockStateCode::Associated | VpcCidrBlockStateCode::Associating)
                })
            }) {
                if let Some(block) = a.ipv6_cidr_block().and_then(|b| b.parse().ok()) {
                    ipv6_blocks.entry(id.to_string()).or_insert(block);
                }
                d.observed.push(Observed {
                    key: IPV6_CIDR_KEY.into(),
                    kind: "vpc-ipv6-cidr".into(),
                    physical_id: a.association_id().unwrap_or_default().to_string(),
                    props: props(json!({"pool": a.ipv6_pool(), "cidr": a.ipv6_cidr_block()})),
                    depends_on: vec![key.clone()],
                    delete_cost: 1,
                });
            }
        }
        for s in subnets.subnets() {
            let (Some(id), Some(key)) = (s.subnet_id(), key_of(s.tags())) else { continue };
            d.keys.insert(id.to_string(), key.clone());
            let mut deps = vec!["vpc".to_string()];
            if key.starts_with("subnet/pods/") {
                deps.push("vpc-cidr/secondary".into());
            }
            let block = subnet_ipv6_block(s);
            let vpc_block = s.vpc_id().and_then(|v| ipv6_blocks.get(v)).copied();
            let ipv6_index = match (block, vpc_block) {
                (None, _) => Value::Null,
                (Some(b), Some(v)) => layout::ipv6_index(v, b).map_or_else(|| json!(b.to_string()), |i| json!(i)),
                // a block while the VPC has none left: shown as itself, so it differs from any index
                (Some(b), None) => json!(b.to_string()),
            };
            if block.is_some() {
                deps.push(IPV6_CIDR_KEY.into());
            }
            let hostname = s
                .private_dns_name_options_on_launch()
                .and_then(|o| o.hostname_type())
                .map_or("ip-name", |h| h.as_str());
            d.observed.push(Observed {
                key,
                kind: "subnet".into(),
                physical_id: id.to_string(),
                props: props(json!({
                    "cidr": s.cidr_block(),
                    "az": s.availability_zone(),
                    "map_public_ip": s.map_public_ip_on_launch().unwrap_or(false),
                    "ipv6_index": ipv6_index,
                    "assign_ipv6": s.assign_ipv6_address_on_creation().unwrap_or(false),
                    "hostname_type": hostname,
                    "tags": tag_map(s.tags()),
                })),
                depends_on: deps,
                delete_cost: 2,
            });
        }
        for g in igws.internet_gateways() {
            let (Some(id), Some(key)) = (g.internet_gateway_id(), key_of(g.tags())) else { continue };
            d.keys.insert(id.to_string(), key.clone());
            let attached = g
                .attachments()
                .iter()
                .any(|a| a.state().is_some_and(|s| s.as_str() == "available" || s.as_str() == "attached"));
            d.observed.push(Observed {
                key,
                kind: "internet-gateway".into(),
                physical_id: id.to_string(),
                props: props(json!({"attached": attached, "tags": tag_map(g.tags())})),
                depends_on: vec!["vpc".into()],
                delete_cost: 2,
            });
        }
        for g in eigws.egress_only_internet_gateways() {
            let (Some(id), Some(key)) = (g.egress_only_internet_gateway_id(), key_of(g.tags())) else { continue };
            d.keys.insert(id.to_string(), key.clone());
            d.observed.push(Observed {
                key,
                kind: "egress-only-igw".into(),
                physical_id: id.to_string(),
                props: props(json!({"tags": tag_map(g.tags())})),
                depends_on: vec!["vpc".into()],
                delete_cost: 1,
            });
        }
        for a in eips.addresses() {
            let (Some(id), Some(key)) = (a.allocation_id(), key_of(a.tags())) else { continue };
            d.keys.insert(id.to_string(), key.clone());
            d.observed.push(Observed {
                key,
                kind: "eip".into(),
                physical_id: id.to_string(),
                props: props(json!({"tags": tag_map(a.tags())})),
                depends_on: vec![],
                delete_cost: 1,
            });
        }
        for t in rtbs.route_tables() {
            let (Some(id), Some(key)) = (t.route_table_id(), key_of(t.tags())) else { continue };
            d.keys.insert(id.to_string(), key.clone());
        }
        for g in sgs.security_groups() {
            let (Some(id), Some(key)) = (g.group_id(), key_of(g.tags())) else { continue };
            d.keys.insert(id.to_string(), key.clone());
            let self_ingress = g.ip_permissions().iter().any(|p| {
                p.ip_protocol() == Some("-1") && p.user_id_group_pairs().iter().any(|u| u.group_id() == Some(id))
            });
            let mut p = props(json!({
                "name": g.group_name(),
                "description": g.description(),
                "self_ingress": self_ingress,
                "tags": tag_map(g.tags()),
            }));
            // written when there are sources, and always on a nodegroup's SSH group, whose desired side
            // lists its sources even when there are none
            let ssh_group = key.starts_with(&ssh_group_key(""));
            let cluster_group = key == CLUSTER_SG_KEY;
            for rule in PORT_RULES {
                let from = rule.sources(g.ip_permissions());
                let always =
                    (ssh_group && rule.port == SSH.port) || (cluster_group && rule.property == REMOTE_HTTPS.property);
                if !from.is_empty() || always {
                    p.insert(rule.property.into(), json!(from));
                }
            }
            d.observed.push(Observed {
                key,
                kind: "security-group".into(),
                physical_id: id.to_string(),
                props: p,
                depends_on: if self.adopted_vpc.is_some() { vec![] } else { vec!["vpc".into()] },
                delete_cost: 2,
            });
        }
        // NAT gateways: their subnet and EIP are referred to by key.
        for n in nats.nat_gateways() {
            let state = n.state().cloned();
            if matches!(state, Some(NatGatewayState::Deleted) | Some(NatGatewayState::Deleting)) {
                continue;
            }
            let (Some(id), Some(key)) = (n.nat_gateway_id(), key_of(n.tags())) else { continue };
            d.keys.insert(id.to_string(), key.clone());
            let subnet = n
                .subnet_id()
                .and_then(|s| d.keys.get(s))
                .cloned()
                .unwrap_or_else(|| format!("(foreign {})", n.subnet_id().unwrap_or("?")));
            let alloc = n.nat_gateway_addresses().iter().find_map(|a| a.allocation_id());
            let eip = alloc
                .and_then(|a| d.keys.get(a))
                .cloned()
                .unwrap_or_else(|| format!("(foreign {})", alloc.unwrap_or("?")));
            let mut deps = vec![subnet.clone(), eip.clone(), "igw".into()];
            deps.retain(|k| !k.starts_with('('));
            d.observed.push(Observed {
                key,
                kind: "nat-gateway".into(),
                physical_id: id.to_string(),
                props: props(json!({
                    "subnet": subnet,
                    "eip": eip,
                    "healthy": state != Some(NatGatewayState::Failed),
                    "tags": tag_map(n.tags()),
                })),
                depends_on: deps,
                delete_cost: 2,
            });
        }
        // Route tables, then their routes and associations (untaggable, found through the table).
        for t in rtbs.route_tables() {
            let (Some(id), Some(key)) = (t.route_table_id(), key_of(t.tags())) else { continue };
            d.observed.push(Observed {
                key: key.clone(),
                kind: "route-table".into(),
                physical_id: id.to_string(),
                props: props(json!({"tags": tag_map(t.tags())})),
                depends_on: vec!["vpc".into()],
                delete_cost: 1,
            });
            let suffix = key.strip_prefix("rtb/").unwrap_or(&key).to_string();
            for r in t.routes() {
                let (dest, name) = if r.destination_cidr_block() == Some("0.0.0.0/0") {
                    ("0.0.0.0/0", "default")
                } else if r.destination_ipv6_cidr_block() == Some(IPV6_DEFAULT) {
                    (IPV6_DEFAULT, "default-ipv6")
                } else {
                    continue;
                };
                let target_id =
                    r.gateway_id().or(r.nat_gateway_id()).or(r.egress_only_internet_gateway_id()).unwrap_or("");
                let target = d.keys.get(target_id).cloned().unwrap_or_else(|| format!("(foreign {target_id})"));
                let mut deps = vec![key.clone(), target.clone()];
                deps.retain(|k| !k.starts_with('('));
                if dest == IPV6_DEFAULT {
                    deps.push(IPV6_CIDR_KEY.into());
                }
                d.observed.push(Observed {
                    key: format!("route/{suffix}/{name}"),
                    kind: "route".into(),
                    physical_id: format!("{id}|{dest}"),
                    props: props(json!({"route_table": key, "destination": dest, "target": target})),
                    depends_on: deps,
                    delete_cost: 1,
                });
            }
            for a in t.associations() {
                if a.main() == Some(true) {
                    continue;
                }
                let (Some(aid), Some(sid)) = (a.route_table_association_id(), a.subnet_id()) else { continue };
                let subnet_key = d.keys.get(sid).cloned();
                let assoc_key = match &subnet_key {
                    Some(sk) => sk.replacen("subnet/", "rtassoc/", 1),
                    None => format!("rtassoc/foreign/{sid}"),
                };
                d.observed.push(Observed {
                    key: assoc_key,
                    kind: "rt-association".into(),
                    physical_id: aid.to_string(),
                    props: props(
                        json!({"route_table": key, "subnet": subnet_key.clone().unwrap_or_else(|| sid.to_string())}),
                    ),
                    depends_on: subnet_key.into_iter().chain([key.clone()]).collect(),
                    delete_cost: 1,
                });
            }
        }
        // VPC endpoints: their subnets, route tables and groups by key (all discovered above)
        for e in vpces.vpc_endpoints() {
            if matches!(endpoint_state(e).as_str(), "deleted" | "deleting" | "failed" | "rejected") {
                continue;
            }
            let (Some(id), Some(key)) = (e.vpc_endpoint_id(), key_of(e.tags())) else { continue };
            let by_key = |ids: Vec<&str>| -> Vec<String> {
                let mut v: Vec<String> = ids
                    .into_iter()
                    .map(|i| d.keys.get(i).cloned().unwrap_or_else(|| format!("(foreign {i})")))
                    .collect();
                v.sort();
                v
            };
            let subnets = by_key(e.subnet_ids().iter().map(String::as_str).collect());
            let tables = by_key(e.route_table_ids().iter().map(String::as_str).collect());
            let groups = by_key(e.groups().iter().filter_map(|g| g.group_id()).collect());
            let deps: Vec<String> = std::iter::once("vpc".to_string())
                .chain(subnets.iter().chain(&tables).chain(&groups).filter(|k| !k.starts_with('(')).cloned())
                .collect();
            let gateway = e.vpc_endpoint_type().is_some_and(|t| t.as_str().eq_ignore_ascii_case("gateway"));
            d.keys.insert(id.to_string(), key.clone());
            d.observed.push(Observed {
                key,
                kind: "vpc-endpoint".into(),
                physical_id: id.to_string(),
                props: props(json!({
                    "service": e.service_name(),
                    "endpoint_type": e.vpc_endpoint_type().map(|t| t.as_str()),
                    "subnets": subnets,
                    "route_tables": tables,
                    "security_groups": groups,
                    // a gateway has no DNS of its own, whatever the answer says (moto says true)
                    "private_dns": !gateway && e.private_dns_enabled().unwrap_or(false),
                    "tags": tag_map(e.tags()),
                })),
                depends_on: deps,
                delete_cost: 2,
            });
        }
        d.observed.sort_by(|a, b| (&a.key, &a.physical_id).cmp(&(&b.key, &b.physical_id)));
        Ok(d)
    }

    /// Plans `spec`'s network: offline validation and layout, then discovery and diff. A converged network
    /// gives an empty plan.
    pub async fn plan(&self, spec: &EnvironmentSpec) -> Result<Plan, Error> {
        Ok(self.plan_with_discovery(spec).await?.0)
    }

    /// [`Network::plan`], also returning what discovery found (its physical ID → key map lets other components
    /// name network resources by key).
    pub async fn plan_with_discovery(&self, spec: &EnvironmentSpec) -> Result<(Plan, Discovery), Error> {
        // a bad spec fails before any call: offline validation first (it checks zone names only where the spec
        // names them), then again once a counted `azs` is resolved to the zones EC2 lists
        let invalid = |errs: Vec<_>| Error::Core(eksodus_core::Error::Invalid(eksodus_core::spec::FieldErrors(errs)));
        let errs = crate::validate(spec);
        if !errs.is_empty() {
            return Err(invalid(errs));
        }
        let zoned = self.resolve_zones(spec).await?;
        let spec = match zoned.as_ref() {
            Some(resolved) => {
                let errs = crate::validate(resolved);
                if !errs.is_empty() {
                    return Err(invalid(errs));
                }
                resolved
            }
            None => spec,
        };
        let layout = match spec.network.existing {
            None => Some(layout::plan(spec)?),
            Some(_) => {
                let errs = self.validate_existing(spec).await?;
                if !errs.is_empty() {
                    return Err(Error::Core(eksodus_core::Error::Invalid(eksodus_core::spec::FieldErrors(errs))));
                }
                None
            }
        };
        let found = self.discover().await?;
        let plan = plan::diff(&self.desired(spec, layout.as_ref()), &found.observed);
        plan.critical_path_calls()?; // rejects cycles and dangling dependencies before anything runs
        Ok((plan, found))
    }

    /// Free addresses per subnet (`DescribeSubnets`), for the upgrade preflight.
    pub async fn subnet_free(&self, ids: &[String]) -> Result<BTreeMap<String, u32>, Error> {
        if ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        let r = self
            .read("DescribeSubnets", || self.ec2.describe_subnets().set_subnet_ids(Some(ids.to_vec())).send())
            .await?;
        Ok(r.subnets()
            .iter()
            .filter_map(|s| Some((s.subnet_id()?.to_string(), s.available_ip_address_count()? as u32)))
            .collect())
    }

    /// The plan that removes everything this environment's network owns.
    pub async fn destroy_plan(&self) -> Result<Plan, Error> {
        Ok(Plan::destroy(&self.discover().await?.observed))
    }

    /// Checks an adopted VPC and subnets: they exist, the subnets are in that VPC, in two zones at least, and
    /// each keeps the free addresses EKS needs.
    pub async fn validate_existing(&self, spec: &EnvironmentSpec) -> Result<Vec<FieldError>, Error> {
        retry(&self.reads, || async { Box::pin(self.validate_existing_once(spec)).await.map_err(into_step) })
            .await
            .map_err(Error::Aws)
    }

    pub(super) async fn validate_existing_once(&self, spec: &EnvironmentSpec) -> Result<Vec<FieldError>, Error> {
        let Some(ex) = &spec.network.existing else { return Ok(vec![]) };
        let mut errs = Vec::new();
        match self.calls.read(|| self.ec2.describe_vpcs().vpc_ids(&ex.vpc_id).send()).await {
            Ok(_) => {}
            Err(e) if is_gone(error_code(&e)) => {
                errs.push(FieldError::new("network.existing.vpc_id", format!("VPC {} does not exist", ex.vpc_id)));
                return Ok(errs);
            }
            Err(e) => return Err(Error::Aws(step_error("DescribeVpcs", e))),
        }
        let subnets = match self
            .calls
            .read(|| self.ec2.describe_subnets().set_subnet_ids(Some(ex.subnet_ids.clone())).send())
            .await
        {
            Ok(r) => r.subnets().to_vec(),
            Err(e) if is_gone(error_code(&e)) => {
                // find which ones are missing, one by one
                let mut found = Vec::new();
                for (i, id) in ex.subnet_ids.iter().enumerate() {
                    match self.calls.read(|| self.ec2.describe_subnets().subnet_ids(id).send()).await {
                        Ok(r) => found.extend(r.subnets().to_vec()),
                        Err(_) => errs.push(FieldError::new(
                            format!("network.existing.subnet_ids[{i}]"),
                            format!("subnet {id} does not exist"),
                        )),
                    }
                }
                found
            }
            Err(e) => return Err(Error::Aws(step_error("DescribeSubnets", e))),
        };
        let mut azs = std::collections::BTreeSet::new();
        for s in &subnets {
            let i = ex.subnet_ids.iter().position(|x| Some(x.as_str()) == s.subnet_id()).unwrap_or(0);
            let path = format!("network.existing.subnet_ids[{i}]");
            if s.vpc_id() != Some(ex.vpc_id.as_str()) {
                errs.push(FieldError::new(
                    path.clone(),
                    format!(
                        "subnet {} is in {}, not {}",
                        s.subnet_id().unwrap_or("?"),
                        s.vpc_id().unwrap_or("?"),
                        ex.vpc_id
                    ),
                ));
            }
            let free = s.available_ip_address_count().unwrap_or(0);
            if free < crate::cni::EKS_UPGRADE_FREE as i32 + 1 {
                errs.push(FieldError::new(
                    path,
                    format!("subnet {} has {free} free addresses; EKS needs at least 6", s.subnet_id().unwrap_or("?")),
                ));
            }
            if let Some(az) = s.availability_zone() {
                azs.insert(az.to_string());
            }
        }
        if azs.len() < 2 && !subnets.is_empty() {
            errs.push(FieldError::new(
                "network.existing.subnet_ids",
                format!("the subnets span {} availability zone(s); EKS needs two at least", azs.len()),
            ));
        }
        Ok(errs)
    }

    /// Every EC2 resource still carrying this environment's tag, of every type the network creates, plus
    /// network interfaces: what "nothing left" is checked against.
    pub async fn tagged_leftovers(&self) -> Result<Vec<String>, Error> {
        Box::pin(self.tagged_leftovers_inner()).await
    }

    pub(super) async fn tagged_leftovers_inner(&self) -> Result<Vec<String>, Error> {
        let f = vec![filter(&format!("tag:{}", tags::ENVIRONMENT), &self.env)];
        let mut out = Vec::new();
        for v in
            self.read("DescribeVpcs", || self.ec2.describe_vpcs().set_filters(Some(f.clone())).send()).await?.vpcs()
        {
            out.push(format!("vpc {}", v.vpc_id().unwrap_or("?")));
        }
        for s in self
            .read("DescribeSubnets", || self.ec2.describe_subnets().set_filters(Some(f.clone())).send())
            .await?
            .subnets()
        {
            out.push(format!("subnet {}", s.subnet_id().unwrap_or("?")));
        }
        for g in self
            .read("DescribeInternetGateways", || {
                self.ec2.describe_internet_gateways().set_filters(Some(f.clone())).send()
            })
            .await?
            .internet_gateways()
        {
            out.push(format!("internet-gateway {}", g.internet_gateway_id().unwrap_or("?")));
        }
        // moto ignores this filter: the tag is checked here
        for g in self
            .read("DescribeEgressOnlyInternetGateways", || {
                self.ec2.describe_egress_only_internet_gateways().set_filters(Some(f.clone())).send()
            })
            .await?
            .egress_only_internet_gateways()
            .iter()
            .filter(|g| tag_map(g.tags()).get(tags::ENVIRONMENT) == Some(&self.env))
        {
            out.push(format!("egress-only-igw {}", g.egress_only_internet_gateway_id().unwrap_or("?")));
        }
        for a in self
            .read("DescribeAddresses", || self.ec2.describe_addresses().set_filters(Some(f.clone())).send())
            .await?
            .addresses()
        {
            out.push(format!("eip {}", a.allocation_id().unwrap_or("?")));
        }
        for n in self
            .read("DescribeNatGateways", || self.ec2.describe_nat_gateways().set_filter(Some(f.clone())).send())
            .await?
            .nat_gateways()
        {
            if !matches!(n.state(), Some(NatGatewayState::Deleted)) {
                out.push(format!(
                    "nat-gateway {} ({})",
                    n.nat_gateway_id().unwrap_or("?"),
                    n.state().map(|s| s.as_str()).unwrap_or("?")
                ));
            }
        }
        for t in self
            .read("DescribeRouteTables", || self.ec2.describe_route_tables().set_filters(Some(f.clone())).send())
            .await?
            .route_tables()
        {
            out.push(format!("route-table {}", t.route_table_id().unwrap_or("?")));
        }
        for g in self
            .read("DescribeSecurityGroups", || self.ec2.describe_security_groups().set_filters(Some(f.clone())).send())
            .await?
            .security_groups()
        {
            out.push(format!("security-group {}", g.group_id().unwrap_or("?")));
        }
        for e in self
            .read("DescribeVpcEndpoints", || self.ec2.describe_vpc_endpoints().set_filters(Some(f.clone())).send())
            .await?
            .vpc_endpoints()
        {
            if endpoint_state(e) != "deleted" {
                out.push(format!(
                    "vpc-endpoint {} ({})",
                    e.vpc_endpoint_id().unwrap_or("?"),
                    e.state().map(|s| s.as_str()).unwrap_or("?")
                ));
            }
        }
        for n in self
            .read("DescribeNetworkInterfaces", || {
                self.ec2.describe_network_interfaces().set_filters(Some(f.clone())).send()
            })
            .await?
            .network_interfaces()
        {
            out.push(format!("network-interface {}", n.network_interface_id().unwrap_or("?")));
        }
        Ok(out)
    }
}
