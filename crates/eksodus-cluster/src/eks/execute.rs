//! Execution: the calls of each operation (create, update, delete, version steps), adoption after a lost
//! response, and the waiters.

use super::*;

impl Eks {
    pub(super) fn wait_timeout(&self, ctx: &OpContext, kind: &str) -> Duration {
        // control planes take 10-15 minutes to create and update; give them twice the default
        if kind == "eks-cluster" || kind == "eks-version" {
            ctx.waits.timeout * 2
        } else {
            ctx.waits.timeout
        }
    }

    pub(super) async fn wait_cluster(
        &self,
        ctx: &OpContext,
        what: &str,
        version: Option<&str>,
    ) -> Result<(), StepError> {
        ctx.wait_until(what, self.wait_timeout(ctx, "eks-cluster"), || async {
            let Some(c) = self.describe_cluster().await? else {
                return Ok(WaitState::Failed(format!("cluster {} disappeared", self.name)));
            };
            let status = c.status().map(|s| s.as_str().to_string()).unwrap_or_default();
            Ok(match status.as_str() {
                "ACTIVE" if version.is_none_or(|v| c.version() == Some(v)) => WaitState::Ready(()),
                "FAILED" => WaitState::Failed(format!(
                    "cluster {} FAILED: {}",
                    self.name,
                    health(c.health().map(|h| h.issues()))
                )),
                other => WaitState::Pending(format!("cluster {other}")),
            })
        })
        .await
    }

    pub(super) async fn wait_cluster_gone(&self, ctx: &OpContext) -> Result<(), StepError> {
        ctx.wait_until("cluster deletion", self.wait_timeout(ctx, "eks-cluster"), || async {
            Ok(match self.describe_cluster().await? {
                None => WaitState::Ready(()),
                Some(c) => WaitState::Pending(format!(
                    "cluster {}",
                    c.status().map(|s| s.as_str().to_string()).unwrap_or_default()
                )),
            })
        })
        .await
    }

    pub(super) async fn describe_nodegroup(
        &self,
        ng: &str,
    ) -> Result<Option<aws_sdk_eks::types::Nodegroup>, StepError> {
        match self.calls.read(|| self.eks.describe_nodegroup().cluster_name(&self.name).nodegroup_name(ng).send()).await
        {
            Ok(r) => Ok(r.nodegroup().cloned()),
            Err(e) if is_not_found(error_code(&e)) => Ok(None),
            Err(e) => Err(step_error(format!("DescribeNodegroup {ng}"), e)),
        }
    }

    pub(super) async fn wait_nodegroup(
        &self,
        ctx: &OpContext,
        ng: &str,
        version: Option<&str>,
        gone: bool,
    ) -> Result<(), StepError> {
        let what = format!("nodegroup {ng}");
        self.wait_member(
            ctx,
            &what,
            "eks-nodegroup",
            version,
            gone,
            &["CREATE_FAILED", "DELETE_FAILED", "DEGRADED"],
            || async {
                Ok(self.describe_nodegroup(ng).await?.map(|n| Member {
                    status: n.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
                    version: n.version().map(String::from),
                    health: health(n.health().map(|h| h.issues())),
                }))
            },
        )
        .await
    }

    /// Polls a nodegroup or addon until it is ACTIVE (at `version`, when given), gone (`gone`), or in a failed
    /// status (then with EKS's health issues).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn wait_member<F, Fut>(
        &self,
        ctx: &OpContext,
        what: &str,
        kind: &str,
        version: Option<&str>,
        gone: bool,
        failed: &[&str],
        fetch: F,
    ) -> Result<(), StepError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Option<Member>, StepError>>,
    {
        ctx.wait_until(what, self.wait_timeout(ctx, kind), || async {
            let Some(m) = fetch().await? else {
                return Ok(if gone { WaitState::Ready(()) } else { WaitState::Failed(format!("{what} disappeared")) });
            };
            if gone {
                return Ok(WaitState::Pending(format!("{what} {}", m.status)));
            }
            Ok(if m.status == "ACTIVE" && version.is_none_or(|v| m.version.as_deref() == Some(v)) {
                WaitState::Ready(())
            } else if failed.contains(&m.status.as_str()) {
                WaitState::Failed(format!("{what} {}: {}", m.status, m.health))
            } else {
                WaitState::Pending(format!("{what} {}", m.status))
            })
        })
        .await
    }

    pub(super) async fn describe_addon(&self, name: &str) -> Result<Option<aws_sdk_eks::types::Addon>, StepError> {
        match self.calls.read(|| self.eks.describe_addon().cluster_name(&self.name).addon_name(name).send()).await {
            Ok(r) => Ok(r.addon().cloned()),
            Err(e) if is_not_found(error_code(&e)) => Ok(None),
            Err(e) => Err(step_error(format!("DescribeAddon {name}"), e)),
        }
    }

    pub(super) async fn wait_addon(
        &self,
        ctx: &OpContext,
        name: &str,
        version: Option<&str>,
        gone: bool,
    ) -> Result<(), StepError> {
        let what = format!("addon {name}");
        let failed = ["CREATE_FAILED", "UPDATE_FAILED", "DELETE_FAILED", "DEGRADED"];
        self.wait_member(ctx, &what, "eks-addon", version, gone, &failed, || async {
            Ok(self.describe_addon(name).await?.map(|a| Member {
                status: a.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
                version: a.addon_version().map(String::from),
                health: health(a.health().map(|h| h.issues())),
            }))
        })
        .await
    }

    /// Waits for an update EKS returned (`DescribeUpdate`), for the cluster or one nodegroup/addon.
    pub(super) async fn wait_update(
        &self,
        ctx: &OpContext,
        id: &str,
        nodegroup: Option<&str>,
        addon: Option<&str>,
    ) -> Result<(), StepError> {
        ctx.wait_until(&format!("update {id}"), self.wait_timeout(ctx, "eks-cluster"), || async {
            let r = self
                .calls
                .read(|| {
                    self.eks
                        .describe_update()
                        .name(&self.name)
                        .update_id(id)
                        .set_nodegroup_name(nodegroup.map(String::from))
                        .set_addon_name(addon.map(String::from))
                        .send()
                })
                .await
                .map_err(|e| step_error(format!("DescribeUpdate {id}"), e))?;
            let Some(u) = r.update() else { return Ok(WaitState::Failed(format!("update {id} not found"))) };
            let status = u.status().map(|s| s.as_str().to_string()).unwrap_or_default();
            Ok(match status.as_str() {
                "Successful" => WaitState::Ready(()),
                "Failed" | "Cancelled" => WaitState::Failed(format!(
                    "update {id} {status}: {}",
                    u.errors().iter().filter_map(|e| e.error_message()).collect::<Vec<_>>().join("; ")
                )),
                other => WaitState::Pending(format!("update {other}")),
            })
        })
        .await
    }

    pub(super) fn resolve(&self, ctx: &OpContext, v: &str) -> Result<String, StepError> {
        if is_physical(v) {
            Ok(v.to_string())
        } else {
            ctx.physical_id(v)
        }
    }

    pub(super) async fn create_cluster(&self, op: &Operation, ctx: &OpContext) -> Result<Option<String>, StepError> {
        let s = &op.step;
        let w = s.desired.clone().unwrap_or_default();
        if ctx.attempt > 1 && self.adopt_cluster(ctx).await? {
            return Ok(Some(self.name.clone()));
        }
        let subnets = strings(&w, "subnets").iter().map(|k| self.resolve(ctx, k)).collect::<Result<Vec<_>, _>>()?;
        let sgs = strings(&w, "security_groups").iter().map(|k| self.resolve(ctx, k)).collect::<Result<Vec<_>, _>>()?;
        let public = w.get("endpoint_public").and_then(Value::as_bool).unwrap_or(true);
        let mut vpc = VpcConfigRequest::builder()
            .set_subnet_ids(Some(subnets))
            .set_security_group_ids(Some(sgs))
            .endpoint_public_access(public)
            .endpoint_private_access(w.get("endpoint_private").and_then(Value::as_bool).unwrap_or(false));
        if public {
            vpc = vpc.set_public_access_cidrs(Some(strings(&w, "public_cidrs")));
        }
        let logs = strings(&w, "logging");
        let mut req = self
            .eks
            .create_cluster()
            .name(&self.name)
            .version(text(&w, "version").unwrap_or_default())
            .role_arn(text(&w, "role_arn").unwrap_or_default())
            .resources_vpc_config(vpc.build())
            .set_tags(Some(self.owner_tags(&s.key)))
            .client_request_token(ctx.client_token(s));
        if !logs.is_empty() {
            req = req.logging(
                Logging::builder()
                    .cluster_logging(
                        LogSetup::builder()
                            .set_types(Some(logs.iter().map(|l| LogType::from(l.as_str())).collect()))
                            .enabled(true)
                            .build(),
                    )
                    .build(),
            );
        }
        if let Some(k) = text(&w, "encryption_key") {
            let k = if k == crate::kms::KEY { ctx.physical_id(&k)? } else { k };
            req = req.encryption_config(secrets_encryption(k));
        }
        let cidr = text(&w, "service_cidr");
        let ipv6 = text(&w, "ip_family").as_deref() == Some("ipv6");
        let auto = w.get("auto_mode").and_then(Value::as_bool).unwrap_or(false);
        if cidr.is_some() || ipv6 || auto {
            let mut k = KubernetesNetworkConfigRequest::builder().set_service_ipv4_cidr(cidr);
            if ipv6 {
                k = k.ip_family(aws_sdk_eks::types::IpFamily::Ipv6);
            }
            if auto {
                k = k.elastic_load_balancing(ElasticLoadBalancing::builder().enabled(true).build());
            }
            req = req.kubernetes_network_config(k.build());
        }
        if auto {
            req = req.compute_config(compute_config(&w, true)).storage_config(storage_config(true));
        }
        if let Some(mode) = text(&w, "authentication_mode") {
            req = req.access_config(
                CreateAccessConfigRequest::builder()
                    .authentication_mode(EksMode::from(mode.as_str()))
                    .bootstrap_cluster_creator_admin_permissions(
                        w.get("bootstrap_admin").and_then(Value::as_bool).unwrap_or(true),
                    )
                    .build(),
            );
        }
        if let Some(t) = text(&w, "support_type") {
            req =
                req.upgrade_policy(UpgradePolicyRequest::builder().support_type(SupportType::from(t.as_str())).build());
        }
        if w.get("zonal_shift").and_then(Value::as_bool) == Some(true) {
            req = req.zonal_shift_config(ZonalShiftConfigRequest::builder().enabled(true).build());
        }
        req = req.set_remote_network_config(remote_networks(&w));
        if let Some(t) = text(&w, "control_plane_tier").filter(|t| t != STANDARD_TIER) {
            req = req.control_plane_scaling_config(
                ControlPlaneScalingConfig::builder().tier(ProvisionedControlPlaneTier::from(t.as_str())).build(),
            );
        }
        match self.calls.read(|| req.clone().send()).await {
            Ok(_) => {}
            Err(e) if error_code(&e) == Some("ResourceInUseException") => {
                // made by an attempt whose answer was lost, or by someone else
                if self.adopt_cluster(ctx).await? {
                    return Ok(Some(self.name.clone()));
                }
            }
            Err(e) => return Err(step_error(format!("CreateCluster {}", self.name), e)),
        }
        self.wait_cluster(ctx, "cluster creation", None).await?;
        Ok(Some(self.name.clone()))
    }

    /// A retried create first looks for what an earlier attempt made: `true` when the cluster exists, is
    /// ours, and is now ACTIVE; an error when it exists and is not ours.
    pub(super) async fn adopt_cluster(&self, ctx: &OpContext) -> Result<bool, StepError> {
        let Some(c) = self.describe_cluster().await? else { return Ok(false) };
        if !tags::is_owned(&tag_map(c.tags()), &self.env, COMPONENT) {
            return Err(StepError::permanent(format!(
                "an EKS cluster named {} exists and is not owned by environment {}",
                self.name, self.env
            )));
        }
        self.wait_cluster(ctx, "cluster creation", None).await?;
        Ok(true)
    }

    /// One `UpdateClusterConfig` (EKS changes one kind of setting per update), with a token of its own made
    /// from the step's, then waited for until EKS has applied it.
    async fn update_config(
        &self,
        ctx: &OpContext,
        s: &eksodus_core::plan::Step,
        what: &str,
        token: &str,
        set: impl Fn(
            aws_sdk_eks::operation::update_cluster_config::builders::UpdateClusterConfigFluentBuilder,
        ) -> aws_sdk_eks::operation::update_cluster_config::builders::UpdateClusterConfigFluentBuilder,
    ) -> Result<(), StepError> {
        let token = format!("{}-{token}", &ctx.client_token(s)[..40]);
        let r = self
            .calls
            .read(|| set(self.eks.update_cluster_config().name(&self.name)).client_request_token(&token).send())
            .await
            .map_err(|e| busy(format!("UpdateClusterConfig {what} {}", self.name), e))?;
        if let Some(id) = r.update().and_then(|u| u.id()) {
            self.wait_update(ctx, id, None, None).await?;
        }
        Ok(())
    }

    pub(super) async fn update_cluster(&self, op: &Operation, ctx: &OpContext) -> Result<Option<String>, StepError> {
        let s = &op.step;
        let w = s.desired.clone().unwrap_or_default();
        let changed = |f: &str| s.changes.iter().any(|c| c.field == f);
        if changed("endpoint_public") || changed("endpoint_private") || changed("public_cidrs") {
            let public = w.get("endpoint_public").and_then(Value::as_bool).unwrap_or(true);
            let mut vpc = VpcConfigRequest::builder()
                .endpoint_public_access(public)
                .endpoint_private_access(w.get("endpoint_private").and_then(Value::as_bool).unwrap_or(false));
            if public {
                vpc = vpc.set_public_access_cidrs(Some(strings(&w, "public_cidrs")));
            }
            let vpc = vpc.build();
            self.update_config(ctx, s, "endpoint", "endpoint", |r| r.resources_vpc_config(vpc.clone())).await?;
        }
        // the control plane's security groups: EKS swaps them in place (a VPC config update of its own)
        if changed("security_groups") {
            let sgs =
                strings(&w, "security_groups").iter().map(|k| self.resolve(ctx, k)).collect::<Result<Vec<_>, _>>()?;
            let vpc = VpcConfigRequest::builder().set_security_group_ids(Some(sgs)).build();
            self.update_config(ctx, s, "security groups", "groups", |r| r.resources_vpc_config(vpc.clone())).await?;
        }
        if changed("logging") {
            let want = strings(&w, "logging");
            let off: Vec<String> =
                eksodus_core::spec::LOG_TYPES.iter().map(|s| s.to_string()).filter(|t| !want.contains(t)).collect();
            let mut setups = Vec::new();
            if !want.is_empty() {
                setups.push(
                    LogSetup::builder()
                        .set_types(Some(want.iter().map(|l| LogType::from(l.as_str())).collect()))
                        .enabled(true)
                        .build(),
                );
            }
            if !off.is_empty() {
                setups.push(
                    LogSetup::builder()
                        .set_types(Some(off.iter().map(|l| LogType::from(l.as_str())).collect()))
                        .enabled(false)
                        .build(),
                );
            }
            let logging = Logging::builder().set_cluster_logging(Some(setups)).build();
            self.update_config(ctx, s, "logging", "logging", |r| r.logging(logging.clone())).await?;
        }
        // Auto Mode: compute, block storage and load balancing in one update, as EKS requires
        if changed("auto_mode") || changed("node_pools") || changed("auto_node_role") {
            let on = w.get("auto_mode").and_then(Value::as_bool).unwrap_or(false);
            let (compute, storage) = (compute_config(&w, on), storage_config(on));
            let net = KubernetesNetworkConfigRequest::builder()
                .elastic_load_balancing(ElasticLoadBalancing::builder().enabled(on).build())
                .build();
            let pools = w.get("node_pools").and_then(Value::as_array).map_or(0, Vec::len);
            self.update_config(ctx, s, "Auto Mode", &format!("auto-{on}-{pools}"), |r| {
                r.compute_config(compute.clone()).storage_config(storage.clone()).kubernetes_network_config(net.clone())
            })
            .await?;
        }
        // zonal shift and the scaling tier: one setting per update, as EKS takes them
        if changed("zonal_shift") {
            let on = w.get("zonal_shift").and_then(Value::as_bool).unwrap_or(false);
            let z = ZonalShiftConfigRequest::builder().enabled(on).build();
            self.update_config(ctx, s, "zonal shift", &format!("zonal-{on}"), |r| r.zonal_shift_config(z.clone()))
                .await?;
        }
        // hybrid nodes' networks: added, changed and taken away (empty lists) in one update
        if changed("remote_node_cidrs") || changed("remote_pod_cidrs") {
            let r = remote_networks(&w).unwrap_or_else(|| {
                RemoteNetworkConfigRequest::builder()
                    .set_remote_node_networks(Some(vec![]))
                    .set_remote_pod_networks(Some(vec![]))
                    .build()
            });
            let all = [strings(&w, "remote_node_cidrs"), strings(&w, "remote_pod_cidrs")].concat().join(",");
            let h = all.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
            self.update_config(ctx, s, "remote networks", &format!("remote-{:08x}", h as u32), |q| {
                q.remote_network_config(r.clone())
            })
            .await?;
        }
        if changed("control_plane_tier") {
            let tier = text(&w, "control_plane_tier").unwrap_or_else(|| STANDARD_TIER.to_string());
            let c = ControlPlaneScalingConfig::builder().tier(ProvisionedControlPlaneTier::from(tier.as_str())).build();
            self.update_config(ctx, s, "scaling tier", &tier, |r| r.control_plane_scaling_config(c.clone())).await?;
        }
        if changed("tags") {
            let arn = match self.describe_cluster().await? {
                Some(c) => c.arn().unwrap_or_default().to_string(),
                None => return Err(StepError::permanent(format!("cluster {} is gone", self.name))),
            };
            self.tag(&arn, &s.key).await?;
        }
        if changed("version") {
            return Err(StepError::permanent(format!(
                "cluster {}: the version changes only through an upgrade (one minor at a time, with preflight)",
                self.name
            )));
        }
        Ok(Some(self.name.clone()))
    }

    pub(super) async fn tag(&self, arn: &str, key: &str) -> Result<(), StepError> {
        self.calls
            .read(|| self.eks.tag_resource().resource_arn(arn).set_tags(Some(self.owner_tags(key))).send())
            .await
            .map_err(|e| step_error(format!("TagResource {arn}"), e))?;
        Ok(())
    }

    pub(super) async fn delete_cluster(&self, ctx: &OpContext) -> Result<Option<String>, StepError> {
        match self.calls.read(|| self.eks.delete_cluster().name(&self.name).send()).await {
            Ok(_) => {}
            Err(e) if is_not_found(error_code(&e)) => return Ok(Some(self.name.clone())),
            Err(e) => return Err(busy(format!("DeleteCluster {}", self.name), e)),
        }
        self.wait_cluster_gone(ctx).await?;
        Ok(Some(self.name.clone()))
    }

    pub(super) async fn create_nodegroup(&self, op: &Operation, ctx: &OpContext) -> Result<Option<String>, StepError> {
        let s = &op.step;
        let w: NodegroupProps =
            from_props(&s.key, &s.desired.clone().unwrap_or_default()).map_err(StepError::permanent)?;
        let name = w.name.clone();
        if ctx.attempt > 1 && self.adopt_nodegroup(ctx, &name).await? {
            return Ok(Some(name));
        }
        let subnets = w.subnets.iter().map(|k| self.resolve(ctx, k)).collect::<Result<Vec<_>, _>>()?;
        let labels: HashMap<String, String> = w.labels.clone().into_iter().collect();
        let mut tags = self.tags_over(&s.key, &w.tags);
        if let Some(m) = w.max_pods {
            tags.insert("eksodus.io/max-pods".into(), m.to_string());
        }
        let remote_access = w.remote_access.as_ref().map(|r| {
            RemoteAccessConfig::builder()
                .ec2_ssh_key(&r.key_name)
                .set_source_security_groups(Some(r.source_security_groups.clone()))
                .build()
        });
        let taints = sdk_taints(&w.taints);
        let template = match (&w.launch_template, &w.launch_template_version) {
            (Some(t), Some(v)) => {
                let (id, version) = self.template_for(ctx, t, v).await?;
                Some(LaunchTemplateSpecification::builder().id(id).version(version).build())
            }
            _ => None,
        };
        let r = self
            .calls
            .create(|| {
                self.eks
                    .create_nodegroup()
                    .cluster_name(&self.name)
                    .nodegroup_name(&name)
                    // a custom AMI: neither a version nor an AMI type (EKS refuses both and reports CUSTOM)
                    .set_version((!w.version.is_empty()).then(|| w.version.clone()))
                    .scaling_config(scaling_config(&w.scaling))
                    .set_disk_size(w.disk_size.map(|d| d as i32))
                    .set_launch_template(template.clone())
                    .set_subnets(Some(subnets.clone()))
                    .set_instance_types(Some(w.instance_types.clone()))
                    .set_ami_type((w.ami_type != super::CUSTOM_AMI_TYPE).then(|| AmiTypes::from(w.ami_type.as_str())))
                    .capacity_type(CapacityTypes::from(w.capacity_type.as_str()))
                    .node_role(&w.node_role_arn)
                    .set_labels((!labels.is_empty()).then_some(labels.clone()))
                    .set_taints(Some(taints.clone()).filter(|t| !t.is_empty()))
                    .update_config(update_config(&w))
                    .set_tags(Some(tags.clone()))
                    .set_remote_access(remote_access.clone())
                    .set_node_repair_config(w.node_repair.then(|| repair_config(&w)))
                    .client_request_token(ctx.client_token(s))
                    .send()
            })
            .await;
        match r {
            Ok(_) => {}
            Err(e) if error_code(&e) == Some("ResourceInUseException") => {
                if self.adopt_nodegroup(ctx, &name).await? {
                    return Ok(Some(name));
                }
            }
            Err(e) => return Err(step_error(format!("CreateNodegroup {name}"), e)),
        }
        self.wait_nodegroup(ctx, &name, None, false).await?;
        Ok(Some(name))
    }

    pub(super) async fn adopt_nodegroup(&self, ctx: &OpContext, name: &str) -> Result<bool, StepError> {
        let Some(n) = self.describe_nodegroup(name).await? else { return Ok(false) };
        if !tags::is_owned(&tag_map(n.tags()), &self.env, COMPONENT) {
            return Err(StepError::permanent(format!(
                "nodegroup {name} exists in cluster {} and is not owned by environment {}",
                self.name, self.env
            )));
        }
        self.wait_nodegroup(ctx, name, None, false).await?;
        Ok(true)
    }

    pub(super) async fn update_nodegroup(&self, op: &Operation, ctx: &OpContext) -> Result<Option<String>, StepError> {
        let s = &op.step;
        let w: NodegroupProps =
            from_props(&s.key, &s.desired.clone().unwrap_or_default()).map_err(StepError::permanent)?;
        // what EKS reported: read as found (fields EKS leaves out are empty)
        let have = s.observed.clone().unwrap_or_default();
        let name = s.physical_id.clone().unwrap_or_default();
        let changed = |f: &str| s.changes.iter().any(|c| c.field == f);
        if changed("version") {
            self.nodegroup_version(ctx, &name, &w.version, &ctx.client_token(s)).await?;
        }
        if changed("launch_template_version") {
            if let (Some(t), Some(v)) = (&w.launch_template, &w.launch_template_version) {
                let (id, number) = self.template_for(ctx, t, v).await?;
                let token = format!("{}-template", &ctx.client_token(s)[..40]);
                self.nodegroup_template(ctx, &name, &id, &number, &token).await?;
            }
        }
        if changed("scaling")
            || changed("labels")
            || changed("taints")
            || changed("max_unavailable")
            || changed("max_unavailable_percentage")
            || changed("node_repair")
            || changed("node_repair_settings")
        {
            let mut req = self
                .eks
                .update_nodegroup_config()
                .cluster_name(&self.name)
                .nodegroup_name(&name)
                .client_request_token(format!("{}-config", &ctx.client_token(s)[..40]));
            if changed("scaling") {
                req = req.scaling_config(scaling_config(&w.scaling));
            }
            if changed("labels") {
                let had: BTreeMap<String, String> = have
                    .get("labels")
                    .and_then(Value::as_object)
                    .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
                    .unwrap_or_default();
                let want = &w.labels;
                let add: HashMap<String, String> =
                    want.iter().filter(|(k, v)| had.get(*k) != Some(v)).map(|(k, v)| (k.clone(), v.clone())).collect();
                let remove: Vec<String> = had.keys().filter(|k| !want.contains_key(*k)).cloned().collect();
                req = req.labels(
                    UpdateLabelsPayload::builder()
                        .set_add_or_update_labels((!add.is_empty()).then_some(add))
                        .set_remove_labels((!remove.is_empty()).then_some(remove))
                        .build(),
                );
            }
            if changed("taints") {
                let had: Vec<TaintProps> =
                    have.get("taints").cloned().and_then(|t| serde_json::from_value(t).ok()).unwrap_or_default();
                let add: Vec<TaintProps> = w.taints.iter().filter(|t| !had.contains(t)).cloned().collect();
                let remove: Vec<TaintProps> = had.iter().filter(|t| !w.taints.contains(t)).cloned().collect();
                req = req.taints(
                    UpdateTaintsPayload::builder()
                        .set_add_or_update_taints(Some(sdk_taints(&add)).filter(|t| !t.is_empty()))
                        .set_remove_taints(Some(sdk_taints(&remove)).filter(|t| !t.is_empty()))
                        .build(),
                );
            }
            if changed("node_repair") || changed("node_repair_settings") {
                req = req.node_repair_config(repair_config(&w));
            }
            if changed("max_unavailable") || changed("max_unavailable_percentage") {
                req = req.update_config(update_config(&w));
            }
            let r = self
                .calls
                .read(|| req.clone().send())
                .await
                .map_err(|e| busy(format!("UpdateNodegroupConfig {name}"), e))?;
            match r.update().and_then(|u| u.id()) {
                Some(id) => self.wait_update(ctx, id, Some(&name), None).await?,
                None => self.wait_nodegroup(ctx, &name, None, false).await?,
            }
        }
        if changed("tags") {
            if let Some(arn) = have.get("arn").and_then(Value::as_str) {
                let t = self.tags_over(&s.key, &w.tags);
                self.calls
                    .read(|| self.eks.tag_resource().resource_arn(arn).set_tags(Some(t.clone())).send())
                    .await
                    .map_err(|e| step_error(format!("TagResource {arn}"), e))?;
            }
        }
        Ok(Some(name))
    }

    pub(super) async fn nodegroup_version(
        &self,
        ctx: &OpContext,
        name: &str,
        version: &str,
        token: &str,
    ) -> Result<(), StepError> {
        self.roll_nodegroup(ctx, name, RollTo::Version(version), token).await
    }

    /// Moves a nodegroup to version `number` of launch template `id` (EKS rolls its nodes onto it).
    pub(super) async fn nodegroup_template(
        &self,
        ctx: &OpContext,
        name: &str,
        id: &str,
        number: &str,
        token: &str,
    ) -> Result<(), StepError> {
        self.roll_nodegroup(ctx, name, RollTo::Template { id, number }, token).await
    }

    /// One `UpdateNodegroupVersion` towards `to`, unless the nodegroup is there already; then waits until it
    /// is ACTIVE. A nodegroup ACTIVE on the wanted version or template costs one describe and no wait.
    async fn roll_nodegroup(&self, ctx: &OpContext, name: &str, to: RollTo<'_>, token: &str) -> Result<(), StepError> {
        let Some(n) = self.describe_nodegroup(name).await? else {
            return Err(StepError::permanent(format!("nodegroup {name} does not exist")));
        };
        let active = n.status().map(|s| s.as_str()) == Some("ACTIVE");
        let there = match to {
            RollTo::Version(v) => n.version() == Some(v),
            RollTo::Template { number, .. } => n.launch_template().and_then(|t| t.version()) == Some(number),
        };
        if there && active {
            return Ok(());
        }
        if active {
            let (req, what) = match to {
                RollTo::Version(v) => (self.eks.update_nodegroup_version().version(v), format!("version {v}")),
                RollTo::Template { id, number } => (
                    self.eks
                        .update_nodegroup_version()
                        .launch_template(LaunchTemplateSpecification::builder().id(id).version(number).build()),
                    format!("launch template {id} version {number}"),
                ),
            };
            let req = req.cluster_name(&self.name).nodegroup_name(name).client_request_token(token);
            self.calls
                .read(|| req.clone().send())
                .await
                .map_err(|e| busy(format!("UpdateNodegroupVersion {name} to {what}"), e))?;
        }
        let version = match to {
            RollTo::Version(v) => Some(v),
            RollTo::Template { .. } => None,
        };
        self.wait_nodegroup(ctx, name, version, false).await
    }

    pub(super) async fn delete_nodegroup(&self, op: &Operation, ctx: &OpContext) -> Result<Option<String>, StepError> {
        let name = op.step.physical_id.clone().unwrap_or_default();
        match self
            .calls
            .read(|| self.eks.delete_nodegroup().cluster_name(&self.name).nodegroup_name(&name).send())
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(error_code(&e)) => return Ok(Some(name)),
            Err(e) => return Err(busy(format!("DeleteNodegroup {name}"), e)),
        }
        self.wait_nodegroup(ctx, &name, None, true).await?;
        Ok(Some(name))
    }

    pub(super) async fn create_addon(&self, op: &Operation, ctx: &OpContext) -> Result<Option<String>, StepError> {
        let s = &op.step;
        let w: AddonProps = from_props(&s.key, &s.desired.clone().unwrap_or_default()).map_err(StepError::permanent)?;
        let name = w.name.clone();
        if ctx.attempt > 1 && self.adopt_addon(ctx, &name).await? {
            return Ok(Some(name));
        }
        let r = self
            .calls
            .create(|| {
                self.eks
                    .create_addon()
                    .cluster_name(&self.name)
                    .addon_name(&name)
                    .addon_version(&w.version)
                    .set_service_account_role_arn(w.role_arn.clone())
                    .set_configuration_values(w.configuration.clone())
                    .resolve_conflicts(ResolveConflicts::from(w.resolve_conflicts.as_str()))
                    .set_tags(Some(self.tags_over(&s.key, &w.tags)))
                    .client_request_token(ctx.client_token(s))
                    .send()
            })
            .await;
        match r {
            Ok(_) => {}
            Err(e) if error_code(&e) == Some("ResourceInUseException") => {
                if self.adopt_addon(ctx, &name).await? {
                    return Ok(Some(name));
                }
            }
            Err(e) => return Err(step_error(format!("CreateAddon {name}"), e)),
        }
        self.wait_addon(ctx, &name, None, false).await?;
        Ok(Some(name))
    }

    pub(super) async fn adopt_addon(&self, ctx: &OpContext, name: &str) -> Result<bool, StepError> {
        let Some(a) = self.describe_addon(name).await? else { return Ok(false) };
        if !tags::is_owned(&tag_map(a.tags()), &self.env, COMPONENT) {
            return Err(StepError::permanent(format!(
                "addon {name} is installed in cluster {} and not owned by environment {}; remove it or leave it out of the spec",
                self.name, self.env
            )));
        }
        self.wait_addon(ctx, name, None, false).await?;
        Ok(true)
    }

    pub(super) async fn addon_update(
        &self,
        ctx: &OpContext,
        name: &str,
        w: &Map<String, Value>,
        token: &str,
    ) -> Result<(), StepError> {
        let version = text(w, "version");
        if let Some(a) = self.describe_addon(name).await? {
            let status = a.status().map(|s| s.as_str().to_string()).unwrap_or_default();
            let same_version = version.is_none() || a.addon_version() == version.as_deref();
            let only_version = !w.contains_key("configuration") && !w.contains_key("role_arn");
            if same_version && only_version && status == "ACTIVE" {
                return Ok(()); // an upgrade step already done
            }
        }
        let mut req = self
            .eks
            .update_addon()
            .cluster_name(&self.name)
            .addon_name(name)
            .set_addon_version(version.clone())
            .resolve_conflicts(ResolveConflicts::from(
                text(w, "resolve_conflicts").unwrap_or_else(|| "OVERWRITE".into()).as_str(),
            ))
            .client_request_token(token);
        if w.contains_key("configuration") {
            // an empty string clears configuration values
            req = req.configuration_values(text(w, "configuration").unwrap_or_default());
        }
        if w.contains_key("role_arn") {
            req = req.service_account_role_arn(text(w, "role_arn").unwrap_or_default());
        }
        let r = self.calls.read(|| req.clone().send()).await.map_err(|e| busy(format!("UpdateAddon {name}"), e))?;
        if let Some(id) = r.update().and_then(|u| u.id()) {
            self.wait_update(ctx, id, None, Some(name)).await?;
        }
        self.wait_addon(ctx, name, version.as_deref(), false).await
    }

    pub(super) async fn delete_addon(&self, op: &Operation, ctx: &OpContext) -> Result<Option<String>, StepError> {
        let name = op.step.physical_id.clone().unwrap_or_default();
        match self.calls.read(|| self.eks.delete_addon().cluster_name(&self.name).addon_name(&name).send()).await {
            Ok(_) => {}
            Err(e) if is_not_found(error_code(&e)) => return Ok(Some(name)),
            Err(e) => return Err(busy(format!("DeleteAddon {name}"), e)),
        }
        self.wait_addon(ctx, &name, None, true).await?;
        Ok(Some(name))
    }

    pub(super) async fn describe_identity_provider(
        &self,
        name: &str,
    ) -> Result<Option<aws_sdk_eks::types::OidcIdentityProviderConfig>, StepError> {
        let id = oidc_config(name)?;
        match self
            .calls
            .read(|| {
                self.eks
                    .describe_identity_provider_config()
                    .cluster_name(&self.name)
                    .identity_provider_config(id.clone())
                    .send()
            })
            .await
        {
            Ok(r) => Ok(r.identity_provider_config().and_then(|c| c.oidc()).cloned()),
            Err(e) if is_not_found(error_code(&e)) => Ok(None),
            Err(e) => Err(step_error(format!("DescribeIdentityProviderConfig {name}"), e)),
        }
    }

    async fn wait_identity_provider(&self, ctx: &OpContext, name: &str, gone: bool) -> Result<(), StepError> {
        let what = format!("identity provider {name}");
        self.wait_member(ctx, &what, "eks-identity-provider", None, gone, &[], || async {
            Ok(self.describe_identity_provider(name).await?.map(|c| Member {
                status: c.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
                version: None,
                health: String::new(),
            }))
        })
        .await
    }

    pub(super) async fn associate_identity_provider(
        &self,
        op: &Operation,
        ctx: &OpContext,
    ) -> Result<Option<String>, StepError> {
        let s = &op.step;
        let w: IdentityProviderProps =
            from_props(&s.key, &s.desired.clone().unwrap_or_default()).map_err(StepError::permanent)?;
        let name = w.name.clone();
        let owned = |c: &aws_sdk_eks::types::OidcIdentityProviderConfig| {
            tags::is_owned(&tag_map(c.tags()), &self.env, COMPONENT)
        };
        if let Some(c) = self.describe_identity_provider(&name).await? {
            // a create that happened before a crash, or someone else's config of that name
            if !owned(&c) {
                return Err(StepError::permanent(format!(
                    "identity provider config {name} is associated with cluster {} and not owned by environment {}",
                    self.name, self.env
                )));
            }
        } else {
            let oidc = OidcIdentityProviderConfigRequest::builder()
                .identity_provider_config_name(&name)
                .issuer_url(&w.issuer_url)
                .client_id(&w.client_id)
                .set_username_claim(w.username_claim.clone())
                .set_username_prefix(w.username_prefix.clone())
                .set_groups_claim(w.groups_claim.clone())
                .set_groups_prefix(w.groups_prefix.clone())
                .set_required_claims(
                    Some(w.required_claims.clone().into_iter().collect::<HashMap<_, _>>()).filter(|m| !m.is_empty()),
                )
                .build()
                .map_err(|e| StepError::permanent(e.to_string()))?;
            self.calls
                .create(|| {
                    self.eks
                        .associate_identity_provider_config()
                        .cluster_name(&self.name)
                        .oidc(oidc.clone())
                        .set_tags(Some(self.owner_tags(&s.key)))
                        .client_request_token(ctx.client_token(s))
                        .send()
                })
                .await
                .map_err(|e| busy(format!("AssociateIdentityProviderConfig {name}"), e))?;
        }
        self.wait_identity_provider(ctx, &name, false).await?;
        Ok(Some(name))
    }

    pub(super) async fn disassociate_identity_provider(
        &self,
        op: &Operation,
        ctx: &OpContext,
    ) -> Result<Option<String>, StepError> {
        let name = op.step.physical_id.clone().unwrap_or_default();
        let id = oidc_config(&name)?;
        match self
            .calls
            .read(|| {
                self.eks
                    .disassociate_identity_provider_config()
                    .cluster_name(&self.name)
                    .identity_provider_config(id.clone())
                    .client_request_token(ctx.client_token(&op.step))
                    .send()
            })
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(error_code(&e)) => return Ok(Some(name)),
            Err(e) => return Err(busy(format!("DisassociateIdentityProviderConfig {name}"), e)),
        }
        self.wait_identity_provider(ctx, &name, true).await?;
        Ok(Some(name))
    }

    pub(super) async fn version_step(&self, op: &Operation, ctx: &OpContext) -> Result<Option<String>, StepError> {
        let s = &op.step;
        let target = s.desired.as_ref().and_then(|d| text(d, "version")).unwrap_or_default();
        let pid = s.physical_id.clone().unwrap_or_default();
        let token = ctx.client_token(s);
        let parts: Vec<&str> = s.key.split('/').collect();
        match parts.get(2).copied() {
            Some("cluster") => {
                let Some(c) = self.describe_cluster().await? else {
                    return Err(StepError::permanent(format!("cluster {} does not exist", self.name)));
                };
                let status = c.status().map(|s| s.as_str().to_string()).unwrap_or_default();
                let at = c.version().unwrap_or_default().to_string();
                if at == target && status == "ACTIVE" {
                    return Ok(Some(pid));
                }
                if at != target && status == "ACTIVE" {
                    self.calls
                        .read(|| {
                            self.eks
                                .update_cluster_version()
                                .name(&self.name)
                                .version(&target)
                                .client_request_token(token.clone())
                                .send()
                        })
                        .await
                        .map_err(|e| busy(format!("UpdateClusterVersion {} to {target}", self.name), e))?;
                }
                self.wait_cluster(ctx, &format!("control plane at {target}"), Some(&target)).await?;
            }
            Some("addon") => {
                let mut w = Map::new();
                w.insert("version".into(), json!(target));
                self.addon_update(ctx, &pid, &w, &token).await?;
            }
            Some("nodegroup") => self.nodegroup_version(ctx, &pid, &target, &token).await?,
            _ => return Err(StepError::permanent(format!("unknown upgrade step {}", s.key))),
        }
        Ok(Some(pid))
    }
}

/// The reference to the OIDC identity provider config `name`.
fn oidc_config(name: &str) -> Result<IdentityProviderConfig, StepError> {
    IdentityProviderConfig::builder().r#type("oidc").name(name).build().map_err(|e| StepError::permanent(e.to_string()))
}

/// Envelope encryption of secrets with a KMS key. `resources` is deprecated in the SDK model (EKS now encrypts
/// all API data), but clusters on older platform versions still read it; `secrets` is the only value.
#[allow(deprecated)]
fn secrets_encryption(key_arn: String) -> EncryptionConfig {
    EncryptionConfig::builder().resources("secrets").provider(Provider::builder().key_arn(key_arn).build()).build()
}

fn sdk_taints(t: &[TaintProps]) -> Vec<Taint> {
    t.iter()
        .map(|t| {
            Taint::builder()
                .key(&t.key)
                .set_value((!t.value.is_empty()).then(|| t.value.clone()))
                .effect(TaintEffect::from(t.effect.as_str()))
                .build()
        })
        .collect()
}

/// The hybrid nodes' networks of a cluster's properties as EKS takes them, one network of each kind; `None`
/// without them.
fn remote_networks(w: &Map<String, Value>) -> Option<RemoteNetworkConfigRequest> {
    let (node, pod) = (strings(w, "remote_node_cidrs"), strings(w, "remote_pod_cidrs"));
    if node.is_empty() && pod.is_empty() {
        return None;
    }
    let nodes = (!node.is_empty()).then(|| RemoteNodeNetwork::builder().set_cidrs(Some(node)).build());
    let pods = (!pod.is_empty()).then(|| RemotePodNetwork::builder().set_cidrs(Some(pod)).build());
    Some(
        RemoteNetworkConfigRequest::builder()
            .set_remote_node_networks(Some(nodes.into_iter().collect()))
            .set_remote_pod_networks(Some(pods.into_iter().collect()))
            .build(),
    )
}

/// How many nodes an update replaces at once: a count or a share.
fn update_config(w: &NodegroupProps) -> NodegroupUpdateConfig {
    NodegroupUpdateConfig::builder()
        .set_max_unavailable(w.max_unavailable.map(|m| m as i32))
        .set_max_unavailable_percentage(w.max_unavailable_percentage.map(|m| m as i32))
        .build()
}

fn scaling_config(s: &Scaling) -> NodegroupScalingConfig {
    NodegroupScalingConfig::builder()
        .min_size(s.min as i32)
        .max_size(s.max as i32)
        .desired_size(s.desired as i32)
        .build()
}

impl Executor for Eks {
    fn execute<'a>(
        &'a self,
        op: &'a Operation,
        ctx: &'a OpContext,
    ) -> BoxFuture<'a, Result<Option<String>, StepError>> {
        Box::pin(async move {
            let s = &op.step;
            match (s.kind.as_str(), op.kind) {
                ("eks-cluster", OpKind::Create) => self.create_cluster(op, ctx).await,
                ("eks-cluster", OpKind::Update) => self.update_cluster(op, ctx).await,
                ("eks-cluster", OpKind::Delete) => self.delete_cluster(ctx).await,
                ("eks-nodegroup", OpKind::Create) => self.create_nodegroup(op, ctx).await,
                ("eks-nodegroup", OpKind::Update) => self.update_nodegroup(op, ctx).await,
                ("eks-nodegroup", OpKind::Delete) => self.delete_nodegroup(op, ctx).await,
                ("eks-addon", OpKind::Create) => self.create_addon(op, ctx).await,
                ("eks-addon", OpKind::Update) => {
                    let w: AddonProps =
                        from_props(&s.key, &s.desired.clone().unwrap_or_default()).map_err(StepError::permanent)?;
                    let name = s.physical_id.clone().unwrap_or_default();
                    let changed = |f: &str| s.changes.iter().any(|c| c.field == f);
                    // the update request: what changed (an absent field is left as it is)
                    let mut req = Map::new();
                    req.insert("version".into(), json!(w.version));
                    req.insert("resolve_conflicts".into(), json!(w.resolve_conflicts));
                    if changed("configuration") {
                        req.insert("configuration".into(), json!(w.configuration));
                    }
                    if changed("role_arn") {
                        req.insert("role_arn".into(), json!(w.role_arn));
                    }
                    if changed("version") || changed("configuration") || changed("role_arn") {
                        self.addon_update(ctx, &name, &req, &ctx.client_token(s)).await?;
                    }
                    if changed("tags") {
                        if let Some(arn) = s.observed.as_ref().and_then(|o| text(o, "arn")) {
                            let t = self.tags_over(&s.key, &w.tags);
                            self.calls
                                .read(|| self.eks.tag_resource().resource_arn(&arn).set_tags(Some(t.clone())).send())
                                .await
                                .map_err(|e| step_error(format!("TagResource {arn}"), e))?;
                        }
                    }
                    Ok(Some(name))
                }
                ("eks-addon", OpKind::Delete) => self.delete_addon(op, ctx).await,
                ("eks-identity-provider", OpKind::Create) => self.associate_identity_provider(op, ctx).await,
                ("eks-identity-provider", OpKind::Delete) => self.disassociate_identity_provider(op, ctx).await,
                ("eks-fargate-profile", OpKind::Create) => self.create_fargate_profile(op, ctx).await,
                ("eks-fargate-profile", OpKind::Update) => self.update_fargate_profile(op, ctx).await,
                ("eks-fargate-profile", OpKind::Delete) => self.delete_fargate_profile(op, ctx).await,
                ("eks-capability", OpKind::Create) => self.create_capability(op, ctx).await,
                ("eks-capability", OpKind::Update) => self.update_capability(op, ctx).await,
                ("eks-capability", OpKind::Delete) => self.delete_capability(op, ctx).await,
                ("ec2-launch-template", OpKind::Create) => self.create_template(op, ctx).await,
                ("ec2-launch-template", OpKind::Update) => self.update_template(op, ctx).await,
                ("ec2-launch-template", OpKind::Delete) => self.delete_template(op).await,
                ("ec2-key-pair", OpKind::Create) => self.create_key_pair(op).await,
                ("ec2-key-pair", OpKind::Delete) => self.delete_key_pair(op).await,
                ("eks-version", OpKind::Update) => self.version_step(op, ctx).await,
                ("eks-version", _) => Ok(None),
                (k, _) => Err(StepError::permanent(format!("{}: eks cannot handle kind {k}", s.id))),
            }
        })
    }
}

/// What `UpdateNodegroupVersion` moves a nodegroup to.
#[derive(Clone, Copy)]
enum RollTo<'a> {
    /// A Kubernetes version (EKS's AMI for it).
    Version(&'a str),
    /// A version of the nodegroup's launch template.
    Template { id: &'a str, number: &'a str },
}

/// A nodegroup's repair config: on or off, with its limits and overrides (EKS's defaults without them).
fn repair_config(w: &NodegroupProps) -> NodeRepairConfig {
    let i = |v: Option<u32>| v.map(|v| v as i32);
    let r = w.node_repair_settings.clone().unwrap_or_default();
    NodeRepairConfig::builder()
        .enabled(w.node_repair)
        .set_max_unhealthy_node_threshold_count(i(r.max_unhealthy_count))
        .set_max_unhealthy_node_threshold_percentage(i(r.max_unhealthy_percentage))
        .set_max_parallel_nodes_repaired_count(i(r.max_parallel_count))
        .set_max_parallel_nodes_repaired_percentage(i(r.max_parallel_percentage))
        .set_node_repair_config_overrides((!r.overrides.is_empty()).then(|| {
            r.overrides
                .iter()
                .map(|o| {
                    aws_sdk_eks::types::NodeRepairConfigOverrides::builder()
                        .node_monitoring_condition(&o.condition)
                        .node_unhealthy_reason(&o.reason)
                        .min_repair_wait_time_mins(o.wait_minutes as i32)
                        .repair_action(aws_sdk_eks::types::RepairAction::from(o.action.as_str()))
                        .build()
                })
                .collect()
        }))
        .build()
}

/// Auto Mode's compute part from the cluster's properties: its pools and their role when on.
fn compute_config(w: &Map<String, Value>, on: bool) -> aws_sdk_eks::types::ComputeConfigRequest {
    let pools: Vec<String> = w
        .get("node_pools")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|p| p.as_str().map(String::from)).collect())
        .unwrap_or_default();
    let mut c = aws_sdk_eks::types::ComputeConfigRequest::builder().enabled(on);
    if on {
        c = c.set_node_pools(Some(pools)).set_node_role_arn(text(w, "auto_node_role"));
    }
    c.build()
}

/// Auto Mode's block storage part.
fn storage_config(on: bool) -> aws_sdk_eks::types::StorageConfigRequest {
    aws_sdk_eks::types::StorageConfigRequest::builder()
        .block_storage(aws_sdk_eks::types::BlockStorage::builder().enabled(on).build())
        .build()
}
