//! Execution: the calls of each create, update and delete (each call retried on its own), adoption after a
//! lost response, and the waiters.

use super::*;
use aws_sdk_ec2::types::VpcEndpointType;

impl Network {
    pub(super) fn vpc_id(&self, ctx: &OpContext) -> Result<String, StepError> {
        match &self.adopted_vpc {
            Some(v) => Ok(v.clone()),
            None => ctx.physical_id("vpc"),
        }
    }

    /// Looks a taggable resource up by its key (used before re-creating after a failed attempt). The tags of
    /// each result are checked here too: a server that ignores a filter (moto does, for NAT gateways) must not
    /// make us adopt another resource.
    pub(super) async fn find_tagged(&self, kind: &str, key: &str) -> Result<Option<String>, StepError> {
        let mut f = self.owned_filters();
        f.push(filter(&format!("tag:{}", tags::RESOURCE), key));
        let mine = |t: &[Tag]| {
            let t = tag_map(t);
            tags::is_owned(&t, &self.env, COMPONENT) && t.get(tags::RESOURCE).map(String::as_str) == Some(key)
        };
        let first = |found: Vec<(Option<&str>, &[Tag])>| {
            found.into_iter().find(|(_, t)| mine(t)).and_then(|(id, _)| id.map(String::from))
        };
        Ok(match kind {
            "vpc" => {
                let r = self
                    .calls
                    .read(|| self.ec2.describe_vpcs().set_filters(Some(f.clone())).send())
                    .await
                    .map_err(se(format!("DescribeVpcs for {key}")))?;
                first(r.vpcs().iter().map(|v| (v.vpc_id(), v.tags())).collect())
            }
            "subnet" => {
                let r = self
                    .calls
                    .read(|| self.ec2.describe_subnets().set_filters(Some(f.clone())).send())
                    .await
                    .map_err(se(format!("DescribeSubnets for {key}")))?;
                first(r.subnets().iter().map(|v| (v.subnet_id(), v.tags())).collect())
            }
            "internet-gateway" => {
                let r = self
                    .calls
                    .read(|| self.ec2.describe_internet_gateways().set_filters(Some(f.clone())).send())
                    .await
                    .map_err(se(format!("DescribeInternetGateways for {key}")))?;
                first(r.internet_gateways().iter().map(|v| (v.internet_gateway_id(), v.tags())).collect())
            }
            "egress-only-igw" => {
                let r = self
                    .calls
                    .read(|| self.ec2.describe_egress_only_internet_gateways().set_filters(Some(f.clone())).send())
                    .await
                    .map_err(se(format!("DescribeEgressOnlyInternetGateways for {key}")))?;
                first(
                    r.egress_only_internet_gateways()
                        .iter()
                        .map(|v| (v.egress_only_internet_gateway_id(), v.tags()))
                        .collect(),
                )
            }
            "eip" => {
                let r = self
                    .calls
                    .read(|| self.ec2.describe_addresses().set_filters(Some(f.clone())).send())
                    .await
                    .map_err(se(format!("DescribeAddresses for {key}")))?;
                first(r.addresses().iter().map(|v| (v.allocation_id(), v.tags())).collect())
            }
            "nat-gateway" => {
                let r = self
                    .calls
                    .read(|| self.ec2.describe_nat_gateways().set_filter(Some(f.clone())).send())
                    .await
                    .map_err(se(format!("DescribeNatGateways for {key}")))?;
                first(
                    r.nat_gateways()
                        .iter()
                        .filter(|n| matches!(n.state(), Some(NatGatewayState::Pending | NatGatewayState::Available)))
                        .map(|v| (v.nat_gateway_id(), v.tags()))
                        .collect(),
                )
            }
            "route-table" => {
                let r = self
                    .calls
                    .read(|| self.ec2.describe_route_tables().set_filters(Some(f.clone())).send())
                    .await
                    .map_err(se(format!("DescribeRouteTables for {key}")))?;
                first(r.route_tables().iter().map(|v| (v.route_table_id(), v.tags())).collect())
            }
            "security-group" => {
                let r = self
                    .calls
                    .read(|| self.ec2.describe_security_groups().set_filters(Some(f.clone())).send())
                    .await
                    .map_err(se(format!("DescribeSecurityGroups for {key}")))?;
                first(r.security_groups().iter().map(|v| (v.group_id(), v.tags())).collect())
            }
            "vpc-endpoint" => {
                let r = self
                    .calls
                    .read(|| self.ec2.describe_vpc_endpoints().set_filters(Some(f.clone())).send())
                    .await
                    .map_err(se(format!("DescribeVpcEndpoints for {key}")))?;
                first(
                    r.vpc_endpoints()
                        .iter()
                        .filter(|e| !matches!(endpoint_state(e).as_str(), "deleted" | "deleting" | "failed"))
                        .map(|v| (v.vpc_endpoint_id(), v.tags()))
                        .collect(),
                )
            }
            _ => None,
        })
    }

    pub(super) async fn create(&self, op: &Operation, ctx: &OpContext) -> Result<Option<String>, StepError> {
        let s = &op.step;
        let want = s.desired.clone().unwrap_or_default();
        let str_of = |k: &str| want.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let extra_tags = want.get(plan::TAGS).and_then(Value::as_object).cloned().unwrap_or_default();
        let key = s.key.as_str();
        let what = |call: &str| format!("{call} for {key}");
        // A failed earlier attempt may have created the resource: look before creating again.
        if ctx.attempt > 1 {
            if let Some(id) = self.find_tagged(&s.kind, key).await? {
                // finish whatever the create does after the create call itself
                self.update_props(s.kind.as_str(), key, &id, &want, None, ctx).await?;
                if s.kind == "nat-gateway" {
                    self.wait_nat(ctx, &id, true).await?;
                }
                if s.kind == "vpc-endpoint" {
                    self.wait_endpoint(ctx, &id, true).await?;
                }
                return Ok(Some(id));
            }
        }
        match s.kind.as_str() {
            "vpc" => {
                let r = self
                    .calls
                    .create(|| {
                        self.ec2
                            .create_vpc()
                            .cidr_block(str_of("cidr"))
                            .tag_specifications(self.tag_spec(ResourceType::Vpc, key, &extra_tags))
                            .send()
                    })
                    .await
                    .map_err(|e| step_error(what("CreateVpc"), e))?;
                let id = r.vpc().and_then(|v| v.vpc_id()).unwrap_or_default().to_string();
                self.update_props("vpc", key, &id, &want, None, ctx).await?;
                Ok(Some(id))
            }
            "vpc-cidr" => {
                let vpc = ctx.physical_id("vpc")?;
                let cidr = str_of("cidr");
                match self
                    .calls
                    .create(|| self.ec2.associate_vpc_cidr_block().vpc_id(&vpc).cidr_block(&cidr).send())
                    .await
                {
                    Ok(r) => Ok(r.cidr_block_association().and_then(|a| a.association_id()).map(String::from)),
                    Err(e) => {
                        // already associated (a lost response): find the association
                        let found = self.find_cidr_association(&vpc, &cidr).await?;
                        match found {
                            Some(id) => Ok(Some(id)),
                            None => Err(step_error(what("AssociateVpcCidrBlock"), e)),
                        }
                    }
                }
            }
            "vpc-ipv6-cidr" => {
                let vpc = ctx.physical_id("vpc")?;
                // the association takes no token: a block already there (a lost response, a crash after the
                // call) is the one this step made
                if let Some((aid, _)) = self.vpc_ipv6_block(&vpc).await? {
                    return Ok(Some(aid));
                }
                let r = self
                    .calls
                    .create(|| {
                        self.ec2.associate_vpc_cidr_block().vpc_id(&vpc).amazon_provided_ipv6_cidr_block(true).send()
                    })
                    .await
                    .map_err(|e| step_error(what("AssociateVpcCidrBlock"), e))?;
                Ok(r.ipv6_cidr_block_association().and_then(|a| a.association_id()).map(String::from))
            }
            "subnet" => {
                let vpc = ctx.physical_id("vpc")?;
                let r = self
                    .calls
                    .create(|| {
                        self.ec2
                            .create_subnet()
                            .vpc_id(vpc.clone())
                            .cidr_block(str_of("cidr"))
                            .availability_zone(str_of("az"))
                            .tag_specifications(self.tag_spec(ResourceType::Subnet, key, &extra_tags))
                            .send()
                    })
                    .await
                    .map_err(|e| step_error(what("CreateSubnet"), e))?;
                let id = r.subnet().and_then(|v| v.subnet_id()).unwrap_or_default().to_string();
                self.update_props("subnet", key, &id, &want, None, ctx).await?;
                Ok(Some(id))
            }
            "internet-gateway" => {
                let r = self
                    .calls
                    .create(|| {
                        self.ec2
                            .create_internet_gateway()
                            .tag_specifications(self.tag_spec(ResourceType::InternetGateway, key, &extra_tags))
                            .send()
                    })
                    .await
                    .map_err(|e| step_error(what("CreateInternetGateway"), e))?;
                let id = r.internet_gateway().and_then(|v| v.internet_gateway_id()).unwrap_or_default().to_string();
                self.update_props("internet-gateway", key, &id, &want, None, ctx).await?;
                Ok(Some(id))
            }
            "egress-only-igw" => {
                let vpc = self.vpc_id(ctx)?;
                let r = self
                    .calls
                    .create(|| {
                        self.ec2
                            .create_egress_only_internet_gateway()
                            .vpc_id(vpc.clone())
                            .client_token(ctx.client_token(s))
                            .tag_specifications(self.tag_spec(
                                ResourceType::EgressOnlyInternetGateway,
                                key,
                                &extra_tags,
                            ))
                            .send()
                    })
                    .await
                    .map_err(|e| step_error(what("CreateEgressOnlyInternetGateway"), e))?;
                Ok(r.egress_only_internet_gateway().and_then(|g| g.egress_only_internet_gateway_id()).map(String::from))
            }
            "eip" => {
                let r = self
                    .calls
                    .create(|| {
                        self.ec2
                            .allocate_address()
                            .domain(DomainType::Vpc)
                            .tag_specifications(self.tag_spec(ResourceType::ElasticIp, key, &extra_tags))
                            .send()
                    })
                    .await
                    .map_err(|e| step_error(what("AllocateAddress"), e))?;
                Ok(r.allocation_id().map(String::from))
            }
            "nat-gateway" => {
                let subnet = ctx.physical_id(&str_of("subnet"))?;
                let alloc = ctx.physical_id(&str_of("eip"))?;
                let r = self
                    .calls
                    .create(|| {
                        self.ec2
                            .create_nat_gateway()
                            .subnet_id(subnet.clone())
                            .allocation_id(alloc.clone())
                            .client_token(ctx.client_token(s))
                            .tag_specifications(self.tag_spec(ResourceType::Natgateway, key, &extra_tags))
                            .send()
                    })
                    .await
                    .map_err(|e| step_error(what("CreateNatGateway"), e))?;
                let n = r.nat_gateway();
                let id = n.and_then(|v| v.nat_gateway_id()).unwrap_or_default().to_string();
                if n.and_then(|n| n.state()) != Some(&NatGatewayState::Available) {
                    self.wait_nat(ctx, &id, true).await?;
                }
                Ok(Some(id))
            }
            "route-table" => {
                let vpc = self.vpc_id(ctx)?;
                let r = self
                    .calls
                    .create(|| {
                        self.ec2
                            .create_route_table()
                            .vpc_id(vpc.clone())
                            .tag_specifications(self.tag_spec(ResourceType::RouteTable, key, &extra_tags))
                            .send()
                    })
                    .await
                    .map_err(|e| step_error(what("CreateRouteTable"), e))?;
                Ok(r.route_table().and_then(|v| v.route_table_id()).map(String::from))
            }
            "route" => {
                let rtb = ctx.physical_id(&str_of("route_table"))?;
                let dest = str_of("destination");
                let target_key = str_of("target");
                let target = ctx.physical_id(&target_key)?;
                let mut req = self.ec2.create_route().route_table_id(&rtb);
                req = if is_ipv6(&dest) {
                    req.destination_ipv6_cidr_block(&dest)
                } else {
                    req.destination_cidr_block(&dest)
                };
                req = match target_kind(&target_key) {
                    Target::Nat => req.nat_gateway_id(&target),
                    Target::EgressOnly => req.egress_only_internet_gateway_id(&target),
                    Target::Gateway => req.gateway_id(&target),
                };
                match self.calls.read(|| req.clone().send()).await {
                    Ok(_) => {}
                    Err(e) if error_code(&e) == Some("RouteAlreadyExists") => {
                        // a lost response, or someone else's route: make it point where we want
                        let mut rep = self.replace_route(&rtb, &dest);
                        rep = match target_kind(&target_key) {
                            Target::Nat => rep.nat_gateway_id(&target),
                            Target::EgressOnly => rep.egress_only_internet_gateway_id(&target),
                            Target::Gateway => rep.gateway_id(&target),
                        };
                        self.calls
                            .read(|| rep.clone().send())
                            .await
                            .map_err(|e| step_error(what("ReplaceRoute"), e))?;
                    }
                    Err(e) => return Err(step_error(what("CreateRoute"), e)),
                }
                Ok(Some(format!("{rtb}|{dest}")))
            }
            "rt-association" => {
                let rtb = ctx.physical_id(&str_of("route_table"))?;
                let subnet = ctx.physical_id(&str_of("subnet"))?;
                match self
                    .calls
                    .read(|| self.ec2.associate_route_table().route_table_id(&rtb).subnet_id(&subnet).send())
                    .await
                {
                    Ok(r) => Ok(r.association_id().map(String::from)),
                    Err(e) if error_code(&e) == Some("Resource.AlreadyAssociated") => {
                        let (aid, current) = self
                            .find_association(&subnet)
                            .await?
                            .ok_or_else(|| step_error(what("AssociateRouteTable"), e))?;
                        if current != rtb {
                            self.calls
                                .read(|| {
                                    self.ec2
                                        .replace_route_table_association()
                                        .association_id(&aid)
                                        .route_table_id(&rtb)
                                        .send()
                                })
                                .await
                                .map_err(|e| step_error(what("ReplaceRouteTableAssociation"), e))
                                .map(|r| r.new_association_id().map(String::from))
                        } else {
                            Ok(Some(aid))
                        }
                    }
                    Err(e) => Err(step_error(what("AssociateRouteTable"), e)),
                }
            }
            "security-group" => {
                let vpc = self.vpc_id(ctx)?;
                let r = self
                    .calls
                    .create(|| {
                        self.ec2
                            .create_security_group()
                            .vpc_id(vpc.clone())
                            .group_name(str_of("name"))
                            .description(str_of("description"))
                            .tag_specifications(self.tag_spec(ResourceType::SecurityGroup, key, &extra_tags))
                            .send()
                    })
                    .await
                    .map_err(|e| step_error(what("CreateSecurityGroup"), e))?;
                let id = r.group_id().unwrap_or_default().to_string();
                self.update_props("security-group", key, &id, &want, None, ctx).await?;
                Ok(Some(id))
            }
            "vpc-endpoint" => {
                let vpc = self.vpc_id(ctx)?;
                let ids = |k: &str| -> Result<Vec<String>, StepError> {
                    keys_of(&want, k).iter().map(|k| ctx.physical_id(k)).collect()
                };
                let (subnets, tables, groups) = (ids("subnets")?, ids("route_tables")?, ids("security_groups")?);
                let gateway = str_of("endpoint_type") == "Gateway";
                let r = self
                    .calls
                    .create(|| {
                        let mut req = self
                            .ec2
                            .create_vpc_endpoint()
                            .vpc_id(&vpc)
                            .service_name(str_of("service"))
                            .vpc_endpoint_type(if gateway {
                                VpcEndpointType::Gateway
                            } else {
                                VpcEndpointType::Interface
                            })
                            .client_token(ctx.client_token(s))
                            .tag_specifications(self.tag_spec(ResourceType::VpcEndpoint, key, &extra_tags));
                        if gateway {
                            req = req.set_route_table_ids(Some(tables.clone()));
                        } else {
                            req = req
                                .set_subnet_ids(Some(subnets.clone()))
                                .set_security_group_ids(Some(groups.clone()))
                                .private_dns_enabled(bool_of(&want, "private_dns"));
                        }
                        req.send()
                    })
                    .await
                    .map_err(|e| step_error(what("CreateVpcEndpoint"), e))?;
                let id = r.vpc_endpoint().and_then(|e| e.vpc_endpoint_id()).unwrap_or_default().to_string();
                self.wait_endpoint(ctx, &id, true).await?;
                Ok(Some(id))
            }
            other => Err(StepError::permanent(format!("{key}: unknown kind {other}"))),
        }
    }

    /// Brings an existing resource's mutable properties to `want`; `have` is what discovery saw (None right
    /// after a create, when the defaults are known).
    /// Adds an ingress rule to a group; one already there (a retry after a lost response) is success.
    async fn authorize(&self, id: &str, perm: IpPermission, what: String) -> Result<(), StepError> {
        match self
            .calls
            .read(|| self.ec2.authorize_security_group_ingress().group_id(id).ip_permissions(perm.clone()).send())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if error_code(&e) == Some("InvalidPermission.Duplicate") => Ok(()),
            Err(e) => Err(step_error(what, e)),
        }
    }

    async fn set_assign_ipv6(&self, key: &str, id: &str, on: bool) -> Result<(), StepError> {
        self.calls
            .read(|| {
                self.ec2
                    .modify_subnet_attribute()
                    .subnet_id(id)
                    .assign_ipv6_address_on_creation(AttributeBooleanValue::builder().value(on).build())
                    .send()
            })
            .await
            .map(|_| ())
            .map_err(|e| step_error(format!("ModifySubnetAttribute for {key}"), e))
    }

    pub(super) async fn update_props(
        &self,
        kind: &str,
        key: &str,
        id: &str,
        want: &Map<String, Value>,
        have: Option<&Map<String, Value>>,
        ctx: &OpContext,
    ) -> Result<(), StepError> {
        let differs = |k: &str, default: Value| -> bool {
            let w = want.get(k);
            let h = have.and_then(|h| h.get(k)).cloned().unwrap_or(default);
            w.is_some() && w != Some(&h)
        };
        let what = |call: &str| format!("{call} for {key}");
        let bool_of = |k: &str| want.get(k).and_then(Value::as_bool).unwrap_or(false);
        match kind {
            "vpc" => {
                // DNS hostnames needs DNS support; a new VPC has support on and hostnames off.
                let dns_s = differs("dns_support", json!(true));
                let dns_h = differs("dns_hostnames", json!(false));
                let set = |attr: &'static str, v: bool| async move {
                    let b = AttributeBooleanValue::builder().value(v).build();
                    let req = self.ec2.modify_vpc_attribute().vpc_id(id);
                    let req = if attr == "support" { req.enable_dns_support(b) } else { req.enable_dns_hostnames(b) };
                    self.calls
                        .read(|| req.clone().send())
                        .await
                        .map(|_| ())
                        .map_err(|e| step_error(what("ModifyVpcAttribute"), e))
                };
                if dns_s && bool_of("dns_support") {
                    set("support", true).await?;
                }
                if dns_h {
                    set("hostnames", bool_of("dns_hostnames")).await?;
                }
                if dns_s && !bool_of("dns_support") {
                    set("support", false).await?;
                }
            }
            "subnet" => {
                if differs("map_public_ip", json!(false)) {
                    self.calls
                        .read(|| {
                            self.ec2
                                .modify_subnet_attribute()
                                .subnet_id(id)
                                .map_public_ip_on_launch(
                                    AttributeBooleanValue::builder().value(bool_of("map_public_ip")).build(),
                                )
                                .send()
                        })
                        .await
                        .map_err(|e| step_error(what("ModifySubnetAttribute"), e))?;
                }
                if differs("hostname_type", json!("ip-name")) {
                    let t = HostnameType::from(want.get("hostname_type").and_then(Value::as_str).unwrap_or("ip-name"));
                    self.calls
                        .read(|| {
                            self.ec2
                                .modify_subnet_attribute()
                                .subnet_id(id)
                                .private_dns_hostname_type_on_launch(t.clone())
                                .send()
                        })
                        .await
                        .map_err(|e| step_error(what("ModifySubnetAttribute"), e))?;
                }
                // turned off before a block goes, and on once it is there: EC2 wants a block for it
                let assign = differs("assign_ipv6", json!(false));
                if assign && !bool_of("assign_ipv6") {
                    self.set_assign_ipv6(key, id, false).await?;
                }
                if differs("ipv6_index", Value::Null) {
                    let index = want.get("ipv6_index").and_then(Value::as_u64).and_then(|i| u8::try_from(i).ok());
                    self.set_subnet_ipv6(key, id, index, ctx).await?;
                }
                if assign && bool_of("assign_ipv6") {
                    self.set_assign_ipv6(key, id, true).await?;
                }
            }
            "internet-gateway" if differs("attached", json!(false)) && bool_of("attached") => {
                let vpc = self.vpc_id(ctx)?;
                match self
                    .calls
                    .read(|| self.ec2.attach_internet_gateway().internet_gateway_id(id).vpc_id(&vpc).send())
                    .await
                {
                    Ok(_) => {}
                    Err(e) if error_code(&e) == Some("Resource.AlreadyAssociated") => {}
                    Err(e) => return Err(step_error(what("AttachInternetGateway"), e)),
                }
            }
            "security-group" if differs("self_ingress", json!(false)) && bool_of("self_ingress") => {
                let perm = IpPermission::builder()
                    .ip_protocol("-1")
                    .user_id_group_pairs(UserIdGroupPair::builder().group_id(id).build())
                    .build();
                self.authorize(id, perm, what("AuthorizeSecurityGroupIngress")).await?;
            }
            _ => {}
        }
        if kind == "security-group" {
            // the SSH and HTTPS rules: each source added or taken away on its own, so a rule of someone else's
            // on another port is never touched
            for rule in PORT_RULES {
                let (w, h) = (list_of(Some(want), rule.property), list_of(have, rule.property));
                let add: Vec<String> = w.iter().filter(|g| !h.contains(g)).cloned().collect();
                let remove: Vec<String> = h.iter().filter(|g| !w.contains(g)).cloned().collect();
                if !add.is_empty() {
                    self.authorize(id, rule.permission(&add), what("AuthorizeSecurityGroupIngress")).await?;
                }
                if want.contains_key(rule.property) && !remove.is_empty() {
                    let perm = rule.permission(&remove);
                    self.op_gone(what("RevokeSecurityGroupIngress"), || {
                        self.ec2.revoke_security_group_ingress().group_id(id).ip_permissions(perm.clone()).send()
                    })
                    .await?;
                }
            }
        }
        if kind == "vpc-endpoint" {
            if let Some(have) = have {
                self.modify_endpoint(key, id, want, have, ctx).await?;
            }
        }
        // Tags: add what is missing (never remove tags someone else put on).
        if let (Some(h), Some(Value::Object(w))) = (have, want.get(plan::TAGS)) {
            let ht = h.get(plan::TAGS).and_then(Value::as_object);
            let missing: Vec<Tag> = w
                .iter()
                .filter(|(k, v)| ht.and_then(|t| t.get(*k)) != Some(*v))
                .map(|(k, v)| Tag::builder().key(k).value(v.as_str().unwrap_or("")).build())
                .collect();
            if !missing.is_empty() {
                self.calls
                    .read(|| self.ec2.create_tags().resources(id).set_tags(Some(missing.clone())).send())
                    .await
                    .map_err(|e| step_error(what("CreateTags"), e))?;
            }
        }
        Ok(())
    }

    pub(super) async fn update(&self, op: &Operation, ctx: &OpContext) -> Result<Option<String>, StepError> {
        let s = &op.step;
        let id = s.physical_id.clone().unwrap_or_default();
        let want = s.desired.clone().unwrap_or_default();
        match s.kind.as_str() {
            "route" => {
                let rtb = ctx.physical_id(want.get("route_table").and_then(Value::as_str).unwrap_or(""))?;
                let target_key = want.get("target").and_then(Value::as_str).unwrap_or("").to_string();
                let target = ctx.physical_id(&target_key)?;
                let dest = want.get("destination").and_then(Value::as_str).unwrap_or("0.0.0.0/0");
                let mut rep = self.replace_route(&rtb, dest);
                rep = match target_kind(&target_key) {
                    Target::Nat => rep.nat_gateway_id(&target),
                    Target::EgressOnly => rep.egress_only_internet_gateway_id(&target),
                    Target::Gateway => rep.gateway_id(&target),
                };
                self.calls
                    .read(|| rep.clone().send())
                    .await
                    .map_err(|e| step_error(format!("ReplaceRoute for {}", s.key), e))?;
                Ok(Some(id))
            }
            "rt-association" => {
                let rtb = ctx.physical_id(want.get("route_table").and_then(Value::as_str).unwrap_or(""))?;
                let r = self
                    .calls
                    .read(|| {
                        self.ec2
                            .replace_route_table_association()
                            .association_id(&id)
                            .route_table_id(rtb.clone())
                            .send()
                    })
                    .await
                    .map_err(|e| step_error(format!("ReplaceRouteTableAssociation for {}", s.key), e))?;
                Ok(r.new_association_id().map(String::from))
            }
            kind => {
                self.update_props(kind, &s.key, &id, &want, s.observed.as_ref(), ctx).await?;
                Ok(Some(id))
            }
        }
    }

    pub(super) async fn delete(&self, op: &Operation, ctx: &OpContext) -> Result<Option<String>, StepError> {
        let s = &op.step;
        let id = s.physical_id.clone().unwrap_or_default();
        let what = |call: &str| format!("{call} for {} ({id})", s.key);
        match s.kind.as_str() {
            "vpc" => {
                self.clear_vpc(&id, ctx).await?;
                self.op_gone(what("DeleteVpc"), || self.ec2.delete_vpc().vpc_id(&id).send()).await?;
            }
            "vpc-cidr" | "vpc-ipv6-cidr" => {
                self.op_gone(what("DisassociateVpcCidrBlock"), || {
                    self.ec2.disassociate_vpc_cidr_block().association_id(&id).send()
                })
                .await?
            }
            "subnet" => {
                self.clear_subnet(&id, ctx).await?;
                self.op_gone(what("DeleteSubnet"), || self.ec2.delete_subnet().subnet_id(&id).send()).await?;
            }
            "internet-gateway" => {
                let g = self
                    .op_read(what("DescribeInternetGateways"), || {
                        self.ec2.describe_internet_gateways().internet_gateway_ids(&id).send()
                    })
                    .await;
                if let Ok(g) = g {
                    for a in g.internet_gateways().iter().flat_map(|g| g.attachments()) {
                        if let Some(v) = a.vpc_id() {
                            self.op_gone(what("DetachInternetGateway"), || {
                                self.ec2.detach_internet_gateway().internet_gateway_id(&id).vpc_id(v).send()
                            })
                            .await?;
                        }
                    }
                }
                self.op_gone(what("DeleteInternetGateway"), || {
                    self.ec2.delete_internet_gateway().internet_gateway_id(&id).send()
                })
                .await?;
            }
            "egress-only-igw" => {
                self.op_gone(what("DeleteEgressOnlyInternetGateway"), || {
                    self.ec2.delete_egress_only_internet_gateway().egress_only_internet_gateway_id(&id).send()
                })
                .await?
            }
            "eip" => {
                self.op_gone(what("ReleaseAddress"), || self.ec2.release_address().allocation_id(&id).send()).await?
            }
            "nat-gateway" => {
                // its interface normally goes with it; remove it if it outlives the gateway (it does on moto)
                // not knowing its interface would leak it and block the subnet: a failed read fails the attempt
                let enis: Vec<String> = retry(&self.reads, || async {
                    match self.calls.read(|| self.ec2.describe_nat_gateways().nat_gateway_ids(&id).send()).await {
                        Ok(r) => Ok(r
                            .nat_gateways()
                            .iter()
                            .flat_map(|n| n.nat_gateway_addresses())
                            .filter_map(|a| a.network_interface_id().map(String::from))
                            .collect()),
                        Err(e) if is_gone(error_code(&e)) => Ok(vec![]),
                        Err(e) => Err(step_error(what("DescribeNatGateways"), e)),
                    }
                })
                .await?;
                self.op_gone(what("DeleteNatGateway"), || self.ec2.delete_nat_gateway().nat_gateway_id(&id).send())
                    .await?;
                self.wait_nat(ctx, &id, false).await?;
                for eni in enis {
                    self.op_gone(format!("DeleteNetworkInterface {eni} of {id}"), || {
                        self.ec2.delete_network_interface().network_interface_id(&eni).send()
                    })
                    .await?;
                }
            }
            "route-table" => {
                // associations are their own resources and are gone by now; foreign ones would block the delete
                self.op_gone(what("DeleteRouteTable"), || self.ec2.delete_route_table().route_table_id(&id).send())
                    .await?;
            }
            "route" => {
                let (rtb, dest) = id.split_once('|').unwrap_or((&id, "0.0.0.0/0"));
                let req = self.ec2.delete_route().route_table_id(rtb);
                let req = if is_ipv6(dest) {
                    req.destination_ipv6_cidr_block(dest)
                } else {
                    req.destination_cidr_block(dest)
                };
                self.op_gone(what("DeleteRoute"), || req.clone().send()).await?;
            }
            "rt-association" => {
                self.op_gone(what("DisassociateRouteTable"), || {
                    self.ec2.disassociate_route_table().association_id(&id).send()
                })
                .await?
            }
            "security-group" => {
                self.unreference_group(&id, ctx).await?;
                self.op_gone(what("DeleteSecurityGroup"), || self.ec2.delete_security_group().group_id(&id).send())
                    .await?;
            }
            "vpc-endpoint" => {
                // EC2 answers a refused delete with success (the refusal is in `Unsuccessful`), and moto answers a
                // delete that failed half-way with a NotFound that reads as "already gone": the endpoint is
                // looked at again, and one still there fails the attempt so that it is retried
                self.op_gone(what("DeleteVpcEndpoints"), || {
                    self.ec2.delete_vpc_endpoints().vpc_endpoint_ids(&id).send()
                })
                .await?;
                let left = self
                    .op_read(what("DescribeVpcEndpoints"), || {
                        self.ec2.describe_vpc_endpoints().vpc_endpoint_ids(&id).send()
                    })
                    .await;
                if let Ok(left) = left {
                    if left
                        .vpc_endpoints()
                        .iter()
                        .any(|e| matches!(endpoint_state(e).as_str(), "available" | "pending"))
                    {
                        return Err(StepError::transient(format!(
                            "{} ({id}): the endpoint is still there after DeleteVpcEndpoints",
                            s.key
                        )));
                    }
                }
                // its interfaces go with it: the subnets after it wait for that
                self.wait_endpoint(ctx, &id, false).await?;
            }
            other => return Err(StepError::permanent(format!("{}: unknown kind {other}", s.key))),
        }
        Ok(Some(id))
    }

    /// Brings an endpoint's subnets, route tables, groups and private DNS to `want` (ModifyVpcEndpoint adds and
    /// removes by ID, so a retry after a lost answer asks for what is already so and succeeds).
    async fn modify_endpoint(
        &self,
        key: &str,
        id: &str,
        want: &Map<String, Value>,
        have: &Map<String, Value>,
        ctx: &OpContext,
    ) -> Result<(), StepError> {
        let diff = |k: &str| -> Result<(Vec<String>, Vec<String>), StepError> {
            let (w, h) = (keys_of(want, k), keys_of(have, k));
            let add = w.iter().filter(|x| !h.contains(x)).map(|x| ctx.physical_id(x)).collect::<Result<_, _>>()?;
            // what is to go is named by ID: a foreign one discovery showed as `(foreign <id>)`, ours by key
            let remove = h
                .iter()
                .filter(|x| !w.contains(x))
                .map(|x| match x.strip_prefix("(foreign ").and_then(|x| x.strip_suffix(')')) {
                    Some(foreign) => Ok(foreign.to_string()),
                    None => ctx.physical_id(x),
                })
                .collect::<Result<_, _>>()?;
            Ok((add, remove))
        };
        let (sa, sr) = diff("subnets")?;
        let (ta, tr) = diff("route_tables")?;
        let (ga, gr) = diff("security_groups")?;
        let dns = (want.get("private_dns") != have.get("private_dns")).then(|| bool_of(want, "private_dns"));
        if sa.is_empty()
            && sr.is_empty()
            && ta.is_empty()
            && tr.is_empty()
            && ga.is_empty()
            && gr.is_empty()
            && dns.is_none()
        {
            return Ok(());
        }
        let non_empty = |v: Vec<String>| (!v.is_empty()).then_some(v);
        let req = self
            .ec2
            .modify_vpc_endpoint()
            .vpc_endpoint_id(id)
            .set_add_subnet_ids(non_empty(sa))
            .set_remove_subnet_ids(non_empty(sr))
            .set_add_route_table_ids(non_empty(ta))
            .set_remove_route_table_ids(non_empty(tr))
            .set_add_security_group_ids(non_empty(ga))
            .set_remove_security_group_ids(non_empty(gr))
            .set_private_dns_enabled(dns);
        self.calls
            .read(|| req.clone().send())
            .await
            .map_err(|e| step_error(format!("ModifyVpcEndpoint for {key}"), e))?;
        Ok(())
    }

    /// Waits for an endpoint to be available (or, with `available` false, deleted).
    pub(super) async fn wait_endpoint(&self, ctx: &OpContext, id: &str, available: bool) -> Result<(), StepError> {
        let what = if available {
            format!("VPC endpoint {id} to become available")
        } else {
            format!("VPC endpoint {id} to be deleted")
        };
        ctx.wait_until(&what, ctx.waits.timeout, || async {
            let r = self.calls.read(|| self.ec2.describe_vpc_endpoints().vpc_endpoint_ids(id).send()).await;
            let r = match r {
                Err(e) if is_gone(error_code(&e)) && !available => return Ok(WaitState::Ready(())),
                other => other.map_err(|e| step_error(format!("DescribeVpcEndpoints {id}"), e))?,
            };
            let Some(e) = r.vpc_endpoints().first() else {
                return Ok(if available { WaitState::Pending("not visible yet".into()) } else { WaitState::Ready(()) });
            };
            let state = endpoint_state(e);
            Ok(match (available, state.as_str()) {
                (true, "available") => WaitState::Ready(()),
                (true, s @ ("failed" | "rejected" | "deleted" | "deleting" | "expired")) => {
                    let why = e.last_error().and_then(|l| l.message()).unwrap_or("");
                    WaitState::Failed(format!("VPC endpoint is {s}: {why}"))
                }
                (false, "deleted") => WaitState::Ready(()),
                (_, "") => WaitState::Pending("pending".into()),
                (_, s) => WaitState::Pending(s.to_string()),
            })
        })
        .await
    }

    /// A ReplaceRoute of `dest` (IPv4 or IPv6) in `rtb`, its target still to be set.
    fn replace_route(
        &self,
        rtb: &str,
        dest: &str,
    ) -> aws_sdk_ec2::operation::replace_route::builders::ReplaceRouteFluentBuilder {
        let rep = self.ec2.replace_route().route_table_id(rtb);
        if is_ipv6(dest) {
            rep.destination_ipv6_cidr_block(dest)
        } else {
            rep.destination_cidr_block(dest)
        }
    }

    /// The VPC's IPv6 block from Amazon's pool that is associated or being associated: (association, block).
    pub(super) async fn vpc_ipv6_block(
        &self,
        vpc: &str,
    ) -> Result<Option<(String, Option<ipnet::Ipv6Net>)>, StepError> {
        let r = self.op_read(format!("DescribeVpcs {vpc}"), || self.ec2.describe_vpcs().vpc_ids(vpc).send()).await?;
        Ok(r.vpcs()
            .iter()
            .flat_map(|v| v.ipv6_cidr_block_association_set())
            .find(|a| {
                a.ipv6_pool() == Some(AMAZON_POOL)
                    && a.ipv6_cidr_block_state().and_then(|s| s.state()).is_some_and(|s| {
                        matches!(s, VpcCidrBlockStateCode::Associated | VpcCidrBlockStateCode::Associating)
                    })
            })
            .and_then(|a| {
                let block = a.ipv6_cidr_block().and_then(|b| b.parse().ok()).filter(|_| {
                    a.ipv6_cidr_block_state().and_then(|s| s.state()) == Some(&VpcCidrBlockStateCode::Associated)
                });
                Some((a.association_id()?.to_string(), block))
            }))
    }

    /// Gives a subnet the `index`-th /64 of its VPC's IPv6 block, or no block: reads what it has first, takes
    /// away any other block and adds the wanted one if missing, so it is safe after a lost response.
    pub(super) async fn set_subnet_ipv6(
        &self,
        key: &str,
        subnet: &str,
        index: Option<u8>,
        ctx: &OpContext,
    ) -> Result<(), StepError> {
        let what = |call: &str| format!("{call} for {key}");
        let want = match index {
            None => None,
            Some(i) => {
                let vpc = self.vpc_id(ctx)?;
                // a block just asked for is `associating` for a moment: its address is known once associated
                let block = ctx
                    .wait_until(&format!("the IPv6 block of {vpc} to be associated"), ctx.waits.timeout, || async {
                        Ok(match self.vpc_ipv6_block(&vpc).await? {
                            Some((_, Some(b))) => WaitState::Ready(b),
                            Some((_, None)) => WaitState::Pending("associating".into()),
                            None => WaitState::Failed(format!("{vpc} has no IPv6 block from Amazon's pool")),
                        })
                    })
                    .await?;
                Some(layout::ipv6_subnet(block, i))
            }
        };
        let r = self.op_read(what("DescribeSubnets"), || self.ec2.describe_subnets().subnet_ids(subnet).send()).await?;
        let mut present = false;
        for a in r.subnets().iter().flat_map(|s| s.ipv6_cidr_block_association_set()) {
            let live = a.ipv6_cidr_block_state().and_then(|s| s.state()).is_some_and(|s| {
                matches!(s, SubnetCidrBlockStateCode::Associated | SubnetCidrBlockStateCode::Associating)
            });
            let block: Option<ipnet::Ipv6Net> = a.ipv6_cidr_block().and_then(|b| b.parse().ok());
            if !live {
                continue;
            }
            if block.is_some() && block == want {
                present = true;
                continue;
            }
            let Some(aid) = a.association_id() else { continue };
            self.op_gone(what("DisassociateSubnetCidrBlock"), || {
                self.ec2.disassociate_subnet_cidr_block().association_id(aid).send()
            })
            .await?;
        }
        if let (Some(b), false) = (want, present) {
            self.calls
                .read(|| self.ec2.associate_subnet_cidr_block().subnet_id(subnet).ipv6_cidr_block(b.to_string()).send())
                .await
                .map_err(|e| step_error(what("AssociateSubnetCidrBlock"), e))?;
        }
        Ok(())
    }

    pub(super) async fn wait_nat(&self, ctx: &OpContext, id: &str, available: bool) -> Result<(), StepError> {
        let what = if available {
            format!("NAT gateway {id} to become available")
        } else {
            format!("NAT gateway {id} to be deleted")
        };
        ctx.wait_until(&what, ctx.waits.timeout, || async {
            let r = self.calls.read(|| self.ec2.describe_nat_gateways().nat_gateway_ids(id).send()).await;
            let r = match r {
                Err(e) if is_gone(error_code(&e)) && !available => return Ok(WaitState::Ready(())),
                other => other.map_err(|e| step_error(format!("DescribeNatGateways {id}"), e))?,
            };
            let Some(n) = r.nat_gateways().first() else {
                return Ok(if available { WaitState::Pending("not visible yet".into()) } else { WaitState::Ready(()) });
            };
            let state = n.state().cloned().unwrap_or(NatGatewayState::Pending);
            Ok(match (available, state) {
                (true, NatGatewayState::Available) => WaitState::Ready(()),
                (true, NatGatewayState::Failed) => WaitState::Failed(format!(
                    "NAT gateway failed: {} {}",
                    n.failure_code().unwrap_or(""),
                    n.failure_message().unwrap_or("")
                )),
                (false, NatGatewayState::Deleted) => WaitState::Ready(()),
                (_, s) => WaitState::Pending(s.as_str().to_string()),
            })
        })
        .await
    }

    pub(super) async fn find_cidr_association(&self, vpc: &str, cidr: &str) -> Result<Option<String>, StepError> {
        let r = self.op_read(format!("DescribeVpcs {vpc}"), || self.ec2.describe_vpcs().vpc_ids(vpc).send()).await?;
        Ok(r.vpcs()
            .iter()
            .flat_map(|v| v.cidr_block_association_set())
            .find(|a| {
                a.cidr_block() == Some(cidr)
                    && a.cidr_block_state()
                        .and_then(|s| s.state())
                        .is_some_and(|s| s.as_str() == "associated" || s.as_str() == "associating")
            })
            .and_then(|a| a.association_id())
            .map(String::from))
    }

    pub(super) async fn find_association(&self, subnet: &str) -> Result<Option<(String, String)>, StepError> {
        let r = self
            .op_read(format!("DescribeRouteTables for {subnet}"), || {
                self.ec2.describe_route_tables().filters(filter("association.subnet-id", subnet)).send()
            })
            .await?;
        Ok(r.route_tables().iter().find_map(|t| {
            t.associations()
                .iter()
                .find(|a| a.subnet_id() == Some(subnet))
                .and_then(|a| Some((a.route_table_association_id()?.to_string(), t.route_table_id()?.to_string())))
        }))
    }

    /// Removes what blocks a subnet's deletion and is safe to remove: unattached network interfaces (left by
    /// the CNI or a load balancer controller) and its route-table association. Interfaces in use are reported.
    pub(super) async fn clear_subnet(&self, subnet: &str, ctx: &OpContext) -> Result<(), StepError> {
        let enis = self
            .op_read(format!("DescribeNetworkInterfaces in {subnet}"), || {
                self.ec2.describe_network_interfaces().filters(filter("subnet-id", subnet)).send()
            })
            .await?;
        for n in enis.network_interfaces() {
            let eni = n.network_interface_id().unwrap_or_default();
            // a NAT gateway's own interface outlives it briefly (and for ever on the emulator): it was ours
            let ours = n.interface_type().is_some_and(|t| t.as_str() == "nat_gateway")
                || n.description().is_some_and(|d| d.starts_with("Interface for NAT Gateway"));
            if n.status().is_some_and(|s| s.as_str() == "available") {
                self.op_gone(format!("DeleteNetworkInterface {eni}"), || {
                    self.ec2.delete_network_interface().network_interface_id(eni).send()
                })
                .await?;
                if ctx.attempt == 1 && !ours {
                    ctx.leftover(
                        format!("network-interface {eni} in {subnet}"),
                        "was unattached and blocked the subnet's deletion; removed",
                    );
                }
            } else if ctx.attempt == 1 {
                ctx.leftover(
                    format!("network-interface {eni} in {subnet}"),
                    format!(
                        "in use ({}); the subnet cannot be deleted until it is released",
                        n.description().unwrap_or("no description")
                    ),
                );
            }
        }
        // moto keeps a deleted subnet's association; real EC2 drops it. Disassociating first works on both.
        if let Some((aid, _)) = self.find_association(subnet).await? {
            self.op_gone(format!("DisassociateRouteTable {aid}"), || {
                self.ec2.disassociate_route_table().association_id(&aid).send()
            })
            .await?;
        }
        Ok(())
    }

    /// Removes security groups that others left inside a VPC we own (they block its deletion), after revoking
    /// their rules so groups referencing each other can go.
    pub(super) async fn clear_vpc(&self, vpc: &str, ctx: &OpContext) -> Result<(), StepError> {
        let r = self
            .op_read(format!("DescribeSecurityGroups in {vpc}"), || {
                self.ec2.describe_security_groups().filters(filter("vpc-id", vpc)).send()
            })
            .await?;
        let foreign: Vec<_> = r.security_groups().iter().filter(|g| g.group_name() != Some("default")).collect();
        for g in &foreign {
            let gid = g.group_id().unwrap_or_default();
            if !g.ip_permissions().is_empty() {
                self.op_gone(format!("RevokeSecurityGroupIngress {gid}"), || {
                    self.ec2
                        .revoke_security_group_ingress()
                        .group_id(gid)
                        .set_ip_permissions(Some(g.ip_permissions().to_vec()))
                        .send()
                })
                .await?;
            }
        }
        for g in &foreign {
            let gid = g.group_id().unwrap_or_default();
            self.op_gone(format!("DeleteSecurityGroup {gid}"), || {
                self.ec2.delete_security_group().group_id(gid).send()
            })
            .await?;
            ctx.leftover(
                format!("security-group {gid} ({}) in {vpc}", g.group_name().unwrap_or("?")),
                "not created by eksodus but left in its VPC; removed",
            );
        }
        Ok(())
    }

    /// Revokes rules in other groups that refer to `group`, which would block its deletion.
    pub(super) async fn unreference_group(&self, group: &str, ctx: &OpContext) -> Result<(), StepError> {
        let r = self
            .op_read(format!("DescribeSecurityGroups referencing {group}"), || {
                self.ec2.describe_security_groups().filters(filter("ip-permission.group-id", group)).send()
            })
            .await?;
        for g in r.security_groups() {
            let gid = g.group_id().unwrap_or_default();
            if gid == group {
                continue;
            }
            let perms: Vec<IpPermission> = g
                .ip_permissions()
                .iter()
                .filter(|p| p.user_id_group_pairs().iter().any(|u| u.group_id() == Some(group)))
                .cloned()
                .collect();
            if perms.is_empty() {
                continue;
            }
            self.op_gone(format!("RevokeSecurityGroupIngress {gid}"), || {
                self.ec2.revoke_security_group_ingress().group_id(gid).set_ip_permissions(Some(perms.clone())).send()
            })
            .await?;
            ctx.leftover(
                format!("rules of security-group {gid} referring to {group}"),
                "blocked the deletion of our group; revoked",
            );
        }
        Ok(())
    }
}

impl Executor for Network {
    fn execute<'a>(
        &'a self,
        op: &'a Operation,
        ctx: &'a OpContext,
    ) -> BoxFuture<'a, Result<Option<String>, StepError>> {
        Box::pin(async move {
            if let (OpKind::Create | OpKind::Update, Some(want)) = (op.kind, &op.step.desired) {
                props::check(&op.step.kind, &op.step.key, want).map_err(StepError::permanent)?;
            }
            match op.kind {
                OpKind::Create => self.create(op, ctx).await,
                OpKind::Update => self.update(op, ctx).await,
                OpKind::Delete => self.delete(op, ctx).await,
            }
        })
    }
}

/// What a route's target key names, for the field of `CreateRoute` and `ReplaceRoute` it goes in.
enum Target {
    Nat,
    EgressOnly,
    Gateway,
}

fn target_kind(key: &str) -> Target {
    if key.starts_with("nat/") {
        Target::Nat
    } else if key == EIGW_KEY {
        Target::EgressOnly
    } else {
        Target::Gateway
    }
}
