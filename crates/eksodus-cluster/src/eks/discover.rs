//! Discovery: the control plane, nodegroups and addons as EKS reports them, in the shape of the desired
//! properties; the addon catalogue of a Kubernetes version.

use super::*;

impl Eks {
    /// Reads the control plane, its nodegroups and addons (one describe each).
    pub async fn discover(&self, ids_to_keys: &HashMap<String, String>) -> Result<Found, Error> {
        Box::pin(self.discover_inner(ids_to_keys)).await
    }

    pub(super) async fn describe_cluster(&self) -> Result<Option<aws_sdk_eks::types::Cluster>, StepError> {
        match self.calls.read(|| self.eks.describe_cluster().name(&self.name).send()).await {
            Ok(r) => Ok(r.cluster().cloned()),
            Err(e) if is_not_found(error_code(&e)) => Ok(None),
            Err(e) => Err(step_error(format!("DescribeCluster {}", self.name), e)),
        }
    }

    pub(super) async fn discover_inner(&self, ids_to_keys: &HashMap<String, String>) -> Result<Found, Error> {
        let c = self.describe().await?;
        self.discover_from(c, ids_to_keys).await
    }

    /// The cluster as EKS describes it (None when there is none), retried.
    pub async fn describe(&self) -> Result<Option<aws_sdk_eks::types::Cluster>, Error> {
        Ok(retry(&self.reads, || self.describe_cluster()).await?)
    }

    /// [`Eks::discover`] from a cluster already described (a driver reading what depends on the cluster at
    /// the same time as the cluster's nodegroups and addons).
    pub async fn discover_from(
        &self,
        cluster: Option<aws_sdk_eks::types::Cluster>,
        ids_to_keys: &HashMap<String, String>,
    ) -> Result<Found, Error> {
        Box::pin(self.discover_from_inner(cluster, ids_to_keys)).await
    }

    async fn discover_from_inner(
        &self,
        cluster: Option<aws_sdk_eks::types::Cluster>,
        ids_to_keys: &HashMap<String, String>,
    ) -> Result<Found, Error> {
        let key_of = |id: &str| ids_to_keys.get(id).cloned().unwrap_or_else(|| id.to_string());
        // the launch templates are EC2's: found whether or not the cluster exists (a crash between the two
        // creates, or a down that removed the cluster first, leaves them to find)
        let Some(c) = cluster else {
            let templates = self.discover_templates().await?;
            let mut found = Found::default();
            found.observed.extend(templates.into_iter().map(|t| t.observed));
            return Ok(found);
        };
        let t = tag_map(c.tags());
        let owned = tags::is_owned(&t, &self.env, COMPONENT);
        let arn = c.arn().unwrap_or_default().to_string();
        let vpc = c.resources_vpc_config();
        let info = ClusterInfo {
            name: self.name.clone(),
            account: arn.split(':').nth(4).unwrap_or_default().to_string(),
            arn: arn.clone(),
            status: c.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
            version: c.version().unwrap_or_default().to_string(),
            endpoint: c.endpoint().map(String::from),
            certificate_authority: c.certificate_authority().and_then(|a| a.data()).map(String::from),
            oidc_issuer: c.identity().and_then(|i| i.oidc()).and_then(|o| o.issuer()).map(String::from),
            authentication_mode: c
                .access_config()
                .and_then(|a| a.authentication_mode())
                .and_then(|m| AuthenticationMode::parse(m.as_str())),
            subnet_ids: vpc.map(|v| v.subnet_ids().to_vec()).unwrap_or_default(),
            security_group: vpc.and_then(|v| v.cluster_security_group_id()).map(String::from),
            service_cidr: c
                .kubernetes_network_config()
                .and_then(|k| k.service_ipv4_cidr().or(k.service_ipv6_cidr()))
                .map(String::from),
            health: health_lines(c.health().map(|h| h.issues())),
            owned,
        };
        let mut found = Found { cluster: Some(info.clone()), ..Default::default() };
        if !owned {
            return Ok(found);
        }
        let mut subnets: Vec<String> = info.subnet_ids.iter().map(|s| key_of(s)).collect();
        subnets.sort();
        let mut sgs: Vec<String> =
            vpc.map(|v| v.security_group_ids().iter().map(|s| key_of(s)).collect()).unwrap_or_default();
        sgs.sort();
        let mut logging: Vec<String> = c
            .logging()
            .map(|l| {
                l.cluster_logging()
                    .iter()
                    .filter(|s| s.enabled() == Some(true))
                    .flat_map(|s| s.types().iter().map(|t| t.as_str().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        logging.sort();
        logging.dedup();
        let mut cidrs: Vec<String> = vpc.map(|v| v.public_access_cidrs().to_vec()).unwrap_or_default();
        cidrs.sort();
        let public = vpc.map(|v| v.endpoint_public_access()).unwrap_or(true);
        let encryption_key: Option<String> =
            c.encryption_config().iter().find_map(|e| e.provider().and_then(|p| p.key_arn())).map(&key_of);
        let mut p = json!({
            "name": c.name(),
            "version": info.version,
            "role_arn": c.role_arn(),
            "subnets": subnets,
            "security_groups": sgs,
            "endpoint_public": public,
            "endpoint_private": vpc.map(|v| v.endpoint_private_access()).unwrap_or(false),
            "public_cidrs": if public { json!(cidrs) } else { json!([]) },
            "logging": logging,
            "encryption_key": encryption_key.clone(),
            "zonal_shift": c.zonal_shift_config().and_then(|z| z.enabled()).unwrap_or(false),
            "control_plane_tier": c
                .control_plane_scaling_config()
                .and_then(|s| s.tier())
                .map_or(STANDARD_TIER, |t| t.as_str()),
            "tags": t,
        });
        if let Some(s) = c.kubernetes_network_config().and_then(|k| k.service_ipv4_cidr()) {
            p["service_cidr"] = json!(s);
        }
        // EKS reports the family of every cluster; one made before it did is IPv4
        p["ip_family"] =
            json!(c.kubernetes_network_config().and_then(|k| k.ip_family()).map_or("ipv4", |f| f.as_str()));
        let remote = c.remote_network_config();
        let blocks = |nets: Vec<String>| {
            let mut v = nets;
            v.sort();
            v.dedup();
            v
        };
        p["remote_node_cidrs"] = json!(blocks(
            remote.iter().flat_map(|r| r.remote_node_networks()).flat_map(|n| n.cidrs().to_vec()).collect()
        ));
        p["remote_pod_cidrs"] = json!(blocks(
            remote.iter().flat_map(|r| r.remote_pod_networks()).flat_map(|n| n.cidrs().to_vec()).collect()
        ));
        // Auto Mode as EKS reports it: a cluster that turned it off keeps no pools or role here
        let compute = c.compute_config().filter(|cc| cc.enabled() == Some(true));
        let mut pools: Vec<String> = compute.map(|cc| cc.node_pools().to_vec()).unwrap_or_default();
        pools.sort();
        p["auto_mode"] = json!(compute.is_some());
        p["node_pools"] = json!(pools);
        p["auto_node_role"] = json!(compute.and_then(|cc| cc.node_role_arn()));
        let mut cdeps = vec!["role/cluster".to_string()];
        // the pools' role eksodus made outlives the cluster's use of it
        let own_auto_role = format!("/{}", eksodus_access::iam::role_name(&self.name, "auto-node"));
        if compute.and_then(|cc| cc.node_role_arn()).is_some_and(|r| r.ends_with(&own_auto_role)) {
            cdeps.push(eksodus_access::iam::AUTO_NODE_ROLE_KEY.into());
        }
        if encryption_key.as_deref() == Some(crate::kms::KEY) {
            cdeps.push(crate::kms::KEY.into());
        }
        cdeps.extend(subnets.iter().chain(sgs.iter()).filter(|s| !is_physical(s)).cloned());
        found.observed.push(Observed {
            key: CLUSTER_KEY.into(),
            kind: "eks-cluster".into(),
            physical_id: self.name.clone(),
            props: props(p),
            depends_on: cdeps,
            delete_cost: 2,
        });

        let lists = retry(&self.reads, || async {
            let nodegroups = pages(|token| async move {
                let r = self
                    .calls
                    .read(|| self.eks.list_nodegroups().cluster_name(&self.name).set_next_token(token.clone()).send())
                    .await
                    .map_err(|e| step_error(format!("ListNodegroups {}", self.name), e))?;
                Ok((r.nodegroups().to_vec(), r.next_token().map(String::from)))
            });
            let addons = pages(|token| async move {
                let r = self
                    .calls
                    .read(|| self.eks.list_addons().cluster_name(&self.name).set_next_token(token.clone()).send())
                    .await
                    .map_err(|e| step_error(format!("ListAddons {}", self.name), e))?;
                Ok((r.addons().to_vec(), r.next_token().map(String::from)))
            });
            let idps = pages(|token| async move {
                let r = self
                    .calls
                    .read(|| {
                        self.eks
                            .list_identity_provider_configs()
                            .cluster_name(&self.name)
                            .set_next_token(token.clone())
                            .send()
                    })
                    .await
                    .map_err(|e| step_error(format!("ListIdentityProviderConfigs {}", self.name), e))?;
                let oidc = r.identity_provider_configs().iter().filter(|c| c.r#type() == "oidc");
                Ok((oidc.map(|c| c.name().to_string()).collect(), r.next_token().map(String::from)))
            });
            tokio::try_join!(nodegroups, addons, idps, self.list_fargate_profiles(), self.list_capabilities())
        });
        let ((ngs, addon_names, idp_names, fargate_names, capability_names), templates, key_pairs) =
            tokio::try_join!(lists, self.discover_templates(), self.discover_key_pairs())?;
        found.observed.extend(key_pairs);
        let (ng_found, addon_found, idp_found, fargate_found, capability_found) = tokio::try_join!(
            try_join_all(ngs.iter().map(|n| self.observe_nodegroup(n, &key_of))),
            try_join_all(addon_names.iter().map(|a| self.observe_addon(a))),
            try_join_all(idp_names.iter().map(|n| self.observe_identity_provider(n))),
            try_join_all(fargate_names.iter().map(|n| self.observe_fargate_profile(n, &key_of))),
            try_join_all(capability_names.iter().map(|n| self.observe_capability(n))),
        )?;
        found.observed.extend(idp_found.into_iter().flatten());
        found.observed.extend(fargate_found.into_iter().flatten());
        found.observed.extend(capability_found.into_iter().flatten());
        for (mut o, version, status) in ng_found.into_iter().flatten() {
            template::recognise(&mut o, &templates);
            let name = o.physical_id.clone();
            found.nodegroups.insert(name, (version, status));
            found.observed.push(o);
        }
        for (o, version) in addon_found.into_iter().flatten() {
            found.addons.insert(o.physical_id.clone(), version);
            found.observed.push(o);
        }
        found.observed.extend(templates.into_iter().map(|t| t.observed));
        found.observed.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    pub(super) async fn observe_nodegroup(
        &self,
        name: &str,
        key_of: &(dyn Fn(&str) -> String + Sync),
    ) -> Result<Option<(Observed, String, String)>, StepError> {
        let r = retry(&self.reads, || async {
            match self
                .calls
                .read(|| self.eks.describe_nodegroup().cluster_name(&self.name).nodegroup_name(name).send())
                .await
            {
                Ok(r) => Ok(r.nodegroup().cloned()),
                Err(e) if is_not_found(error_code(&e)) => Ok(None),
                Err(e) => Err(step_error(format!("DescribeNodegroup {name}"), e)),
            }
        })
        .await?;
        let Some(n) = r else { return Ok(None) };
        let t = tag_map(n.tags());
        if !tags::is_owned(&t, &self.env, COMPONENT) {
            return Ok(None);
        }
        let Some(key) = t.get(tags::RESOURCE).cloned() else { return Ok(None) };
        Ok(Some(observed_nodegroup(&self.env, &n, key, key_of)))
    }

    /// An OIDC identity provider config, when this environment owns it.
    pub(super) async fn observe_identity_provider(&self, name: &str) -> Result<Option<Observed>, StepError> {
        let r = retry(&self.reads, || async { self.describe_identity_provider(name).await }).await?;
        let Some(c) = r else { return Ok(None) };
        let t = tag_map(c.tags());
        if !tags::is_owned(&t, &self.env, COMPONENT) {
            return Ok(None);
        }
        Ok(Some(observed_identity_provider(&c)))
    }

    pub(super) async fn observe_addon(&self, name: &str) -> Result<Option<(Observed, String)>, StepError> {
        let r = retry(&self.reads, || async {
            match self.calls.read(|| self.eks.describe_addon().cluster_name(&self.name).addon_name(name).send()).await {
                Ok(r) => Ok(r.addon().cloned()),
                Err(e) if is_not_found(error_code(&e)) => Ok(None),
                Err(e) => Err(step_error(format!("DescribeAddon {name}"), e)),
            }
        })
        .await?;
        let Some(a) = r else { return Ok(None) };
        let t = tag_map(a.tags());
        let version = a.addon_version().unwrap_or_default().to_string();
        if !tags::is_owned(&t, &self.env, COMPONENT) {
            return Ok(None);
        }
        let cfg = a.configuration_values().filter(|s| !s.trim().is_empty()).map(|s| {
            serde_json::from_str::<Value>(s)
                .or_else(|_| serde_saphyr::from_str::<Value>(s))
                .map(|v| addons::canonical_json(&v))
                .unwrap_or_else(|_| s.to_string())
        });
        let mut deps = vec![CLUSTER_KEY.to_string()];
        if let Some((ns, n)) = addons::service_account(name) {
            if a.service_account_role_arn().is_some() {
                deps.push(format!("role/irsa/{ns}/{n}"));
            }
        }
        let o = Observed {
            key: addon_key(name),
            kind: "eks-addon".into(),
            physical_id: name.to_string(),
            props: props(json!({
                "name": name,
                "version": version,
                "configuration": cfg,
                "role_arn": a.service_account_role_arn(),
                "tags": t,
                "arn": a.addon_arn(),
            })),
            depends_on: deps,
            delete_cost: 2,
        };
        Ok(Some((o, version)))
    }

    /// What EKS offers for Kubernetes `version` (`DescribeAddonVersions`, every page).
    pub async fn catalogue(&self, version: &str) -> Result<Catalogue, Error> {
        let addons = retry(&self.reads, || async {
            let mut out: Vec<(String, Vec<AddonVersion>)> = Vec::new();
            let mut token = None;
            loop {
                let r = self
                    .calls
                    .read(|| {
                        self.eks
                            .describe_addon_versions()
                            .kubernetes_version(version)
                            .set_next_token(token.clone())
                            .send()
                    })
                    .await
                    .map_err(|e| step_error(format!("DescribeAddonVersions {version}"), e))?;
                for a in r.addons() {
                    let versions = a
                        .addon_versions()
                        .iter()
                        .map(|v| AddonVersion {
                            version: v.addon_version().unwrap_or_default().to_string(),
                            clusters: v
                                .compatibilities()
                                .iter()
                                .filter_map(|c| c.cluster_version().map(String::from))
                                .collect(),
                            default_for: v
                                .compatibilities()
                                .iter()
                                .filter(|c| c.default_version())
                                .filter_map(|c| c.cluster_version().map(String::from))
                                .collect(),
                        })
                        .collect();
                    out.push((a.addon_name().unwrap_or_default().to_string(), versions));
                }
                token = r.next_token().map(String::from);
                if token.is_none() {
                    break;
                }
            }
            Ok(out)
        })
        .await?;
        Ok(Catalogue::new(version, addons))
    }
}

/// Every item of a paginated listing: `page` gets the token of the page to read (none for the first) and
/// returns its items and the next token.
pub(super) async fn pages<T, F, Fut>(mut page: F) -> Result<Vec<T>, StepError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, Option<String>), StepError>>,
{
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let (items, next) = page(token.take()).await?;
        out.extend(items);
        match next {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
}

/// An identity provider config as EKS reports it, in the shape of [`IdentityProviderProps`] (with its status).
pub(super) fn observed_identity_provider(c: &aws_sdk_eks::types::OidcIdentityProviderConfig) -> Observed {
    let name = c.identity_provider_config_name().unwrap_or_default().to_string();
    let mut p = to_props(&IdentityProviderProps {
        name: name.clone(),
        issuer_url: c.issuer_url().unwrap_or_default().to_string(),
        client_id: c.client_id().unwrap_or_default().to_string(),
        username_claim: c.username_claim().map(String::from),
        username_prefix: c.username_prefix().map(String::from),
        groups_claim: c.groups_claim().map(String::from),
        groups_prefix: c.groups_prefix().map(String::from),
        required_claims: c
            .required_claims()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
    });
    p.insert("status".into(), json!(c.status().map(|s| s.as_str())));
    Observed {
        key: identity_provider_key(&name),
        kind: "eks-identity-provider".into(),
        physical_id: name,
        props: p,
        depends_on: vec![CLUSTER_KEY.to_string()],
        delete_cost: 2,
    }
}

/// A nodegroup as DescribeNodegroup reports it, in the shape of [`NodegroupProps`] (plus its ARN), with its
/// version and status. `key_of` maps subnet IDs to the network component's keys.
pub(super) fn observed_nodegroup(
    env: &str,
    n: &aws_sdk_eks::types::Nodegroup,
    key: String,
    key_of: &(dyn Fn(&str) -> String + Sync),
) -> (Observed, String, String) {
    let name = n.nodegroup_name().unwrap_or_default();
    let t = tag_map(n.tags());
    let mut types = n.instance_types().to_vec();
    types.sort();
    let mut subnets: Vec<String> = n.subnets().iter().map(|s| key_of(s)).collect();
    subnets.sort();
    let mut taints: Vec<TaintProps> = n
        .taints()
        .iter()
        .map(|t| TaintProps {
            key: t.key().unwrap_or_default().into(),
            value: t.value().unwrap_or_default().into(),
            effect: t.effect().map(|e| e.as_str()).unwrap_or_default().into(),
        })
        .collect();
    taints.sort();
    let labels: BTreeMap<String, String> =
        n.labels().map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
    let sc = n.scaling_config();
    let template = n.launch_template();
    // a custom AMI's nodes run the AMI's kubelet: the version EKS reports is not one eksodus steers
    let custom = n.ami_type().map(|a| a.as_str()) == Some(super::CUSTOM_AMI_TYPE);
    let version = if custom { String::new() } else { n.version().unwrap_or_default().to_string() };
    let status = n.status().map(|s| s.as_str().to_string()).unwrap_or_default();
    // the role it sits on: its own (a nodegroup with extra policies) or the environment's
    let own_role = eksodus_access::iam::role_name(env, &format!("node-{name}"));
    let role_key = if n.node_role().is_some_and(|r| r.ends_with(&format!("/{own_role}"))) {
        eksodus_access::iam::nodegroup_role_key(name)
    } else {
        "role/node".to_string()
    };
    let mut deps = vec![CLUSTER_KEY.to_string(), role_key];
    deps.extend(subnets.iter().filter(|s| !is_physical(s)).cloned());
    let o = Observed {
        key,
        kind: "eks-nodegroup".into(),
        physical_id: name.to_string(),
        props: props(json!({
            "name": name,
            "version": version,
            "instance_types": types,
            "capacity_type": n.capacity_type().map(|c| c.as_str()),
            "ami_type": n.ami_type().map(|a| a.as_str()),
            // with a launch template the template holds the volume and the key pair (EKS takes neither)
            "disk_size": if template.is_some() { None } else { n.disk_size() },
            "subnets": subnets,
            "node_role_arn": n.node_role(),
            "scaling": {"min": sc.and_then(|s| s.min_size()), "max": sc.and_then(|s| s.max_size()), "desired": sc.and_then(|s| s.desired_size())},
            "labels": labels,
            "taints": taints,
            // EKS's default is one node at a time
            "max_unavailable": match n.update_config() {
                Some(u) if u.max_unavailable_percentage().is_some() => None,
                u => Some(u.and_then(|u| u.max_unavailable()).unwrap_or(1)),
            },
            "max_unavailable_percentage": n.update_config().and_then(|u| u.max_unavailable_percentage()),
            "tags": t,
            "remote_access": n.remote_access().filter(|_| template.is_none()).and_then(|r| r.ec2_ssh_key()).map(|key| {
                let mut groups = n.remote_access().map(|r| r.source_security_groups().to_vec()).unwrap_or_default();
                groups.sort();
                json!({"key_name": key, "source_security_groups": groups})
            }),
            "node_repair": n.node_repair_config().and_then(|r| r.enabled()).unwrap_or(false),
            "node_repair_settings": n.node_repair_config().and_then(repair_settings),
            "launch_template": template.and_then(|t| t.id()),
            "launch_template_version": template.and_then(|t| t.version()),
            "arn": n.nodegroup_arn(),
        })),
        depends_on: deps,
        delete_cost: 2,
    };
    (o, version, status)
}

/// The limits and overrides of a nodegroup's repair config, as the spec writes them; `None` when EKS's
/// defaults are in force (no limit and no override given).
fn repair_settings(r: &aws_sdk_eks::types::NodeRepairConfig) -> Option<eksodus_core::spec::NodeRepairSettings> {
    let n = |v: Option<i32>| v.and_then(|v| u32::try_from(v).ok());
    let mut overrides: Vec<eksodus_core::spec::NodeRepairOverride> = r
        .node_repair_config_overrides()
        .iter()
        .map(|o| eksodus_core::spec::NodeRepairOverride {
            condition: o.node_monitoring_condition().unwrap_or_default().to_string(),
            reason: o.node_unhealthy_reason().unwrap_or_default().to_string(),
            wait_minutes: n(o.min_repair_wait_time_mins()).unwrap_or(0),
            action: o.repair_action().map(|a| a.as_str().to_string()).unwrap_or_default(),
        })
        .collect();
    overrides.sort();
    let s = eksodus_core::spec::NodeRepairSettings {
        max_unhealthy_count: n(r.max_unhealthy_node_threshold_count()),
        max_unhealthy_percentage: n(r.max_unhealthy_node_threshold_percentage()),
        max_parallel_count: n(r.max_parallel_nodes_repaired_count()),
        max_parallel_percentage: n(r.max_parallel_nodes_repaired_percentage()),
        overrides,
    };
    (s != Default::default()).then_some(s)
}
