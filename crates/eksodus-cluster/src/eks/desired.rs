//! The desired state: what the spec wants of the control plane, its addons and nodegroups, and the diff.

use super::*;

impl Eks {
    /// The resources `spec` wants, given what discovery knows.
    pub fn desired(&self, spec: &EnvironmentSpec, inp: &Inputs<'_>) -> Result<DesiredSet, Error> {
        let Some(c) = &spec.cluster else { return Ok(DesiredSet::default()) };
        let mut out = DesiredSet::default();
        let mut logging = c.logging.clone();
        logging.sort();
        logging.dedup();
        let mut cidrs: Vec<String> = c.endpoint.public_cidrs.iter().map(|n| n.to_string()).collect();
        if c.endpoint.public && cidrs.is_empty() {
            cidrs.push("0.0.0.0/0".into());
        }
        cidrs.sort();
        let mut subnets = inp.cluster_subnets.clone();
        subnets.sort();
        // the cluster's own group (by key) and the user's, as discovery reads them back
        let mut security_groups = inp.security_groups.clone();
        security_groups.extend(c.control_plane_security_groups.iter().cloned());
        security_groups.sort();
        security_groups.dedup();
        let created_key = crate::kms::wanted(spec).is_some();
        let key_arn = if created_key {
            Some(crate::kms::KEY.to_string())
        } else {
            c.encryption.as_ref().and_then(|e| e.key_arn.clone())
        };
        let cluster_role = "role/cluster".to_string();
        let mut deps: Vec<String> = vec![cluster_role.clone()];
        if created_key {
            deps.push(crate::kms::KEY.into());
        }
        deps.extend(subnets.iter().filter(|s| !is_physical(s)).cloned());
        deps.extend(inp.security_groups.iter().filter(|s| !is_physical(s)).cloned());
        let mut p = json!({
            "name": self.name,
            "version": inp.version,
            "role_arn": role_arn(self.partition, inp.account, spec, "cluster"),
            "subnets": subnets,
            "security_groups": security_groups,
            "endpoint_public": c.endpoint.public,
            "endpoint_private": c.endpoint.private,
            "public_cidrs": if c.endpoint.public { json!(cidrs) } else { json!([]) },
            "logging": logging,
            "encryption_key": key_arn,
            "zonal_shift": c.zonal_shift,
            "control_plane_tier": c.control_plane_tier.as_deref().unwrap_or(STANDARD_TIER),
            "tags": self.user_tag_props(),
        });
        if let Some(s) = &c.service_ipv4_cidr {
            p["service_cidr"] = json!(s.to_string());
        }
        p["ip_family"] = json!(c.ip_family.as_str());
        // hybrid nodes' networks, as EKS keeps them (one network of each kind, its blocks sorted)
        let remote = |f: fn(&eksodus_core::spec::RemoteNetworkSpec) -> &Vec<ipnet::Ipv4Net>| {
            let mut v: Vec<String> = c.remote_network.iter().flat_map(f).map(|n| n.to_string()).collect();
            v.sort();
            v.dedup();
            v
        };
        p["remote_node_cidrs"] = json!(remote(|r| &r.node_cidrs));
        p["remote_pod_cidrs"] = json!(remote(|r| &r.pod_cidrs));
        // Auto Mode's three parts go on and off together; its pools' role is the user's, or one eksodus makes
        let (pools, node_role) = match &c.auto_mode {
            Some(a) => {
                let mut pools = a.node_pools.clone();
                pools.sort();
                let role = match &a.node_role_arn {
                    Some(r) => Some(r.clone()),
                    None if a.owns_node_role() => {
                        deps.push(eksodus_access::iam::AUTO_NODE_ROLE_KEY.into());
                        Some(role_arn(self.partition, inp.account, spec, "auto-node"))
                    }
                    None => None,
                };
                (pools, role)
            }
            None => (vec![], None),
        };
        p["auto_mode"] = json!(c.auto_mode.is_some());
        p["node_pools"] = json!(pools);
        p["auto_node_role"] = json!(node_role);
        // create-only settings: later changes go through the access component (the mode) or are not made
        let mode =
            spec.access.as_ref().and_then(|a| a.authentication_mode).unwrap_or(AuthenticationMode::ApiAndConfigMap);
        p["authentication_mode"] = json!(mode.as_str());
        p["bootstrap_admin"] = json!(c.bootstrap_admin);
        if let Some(t) = &c.support_type {
            p["support_type"] = json!(t);
        }
        out.desired.push(Desired {
            key: CLUSTER_KEY.into(),
            kind: "eks-cluster".into(),
            props: props(p),
            immutable: ["name", "role_arn", "subnets", "encryption_key", "service_cidr", "ip_family"]
                .map(String::from)
                .to_vec(),
            depends_on: deps,
            cost: Cost::new(2, 3, 2),
        });

        // addons first: nodegroups depend on the ones nodes need
        let mut node_addons = Vec::new();
        let mut later_addons = Vec::new();
        for (i, a) in c.addons.iter().enumerate() {
            let key = addon_key(&a.name);
            let version = match (a.version.as_deref(), inp.installed_addons.get(&a.name)) {
                (None, Some(installed)) => installed.clone(),
                (Some(v), Some(installed)) if v == installed => installed.clone(),
                (wanted, _) => match inp.catalogue {
                    Some(cat) => cat
                        .resolve(&a.name, wanted)
                        .map_err(|m| Error::Spec { field: format!("cluster.addons[{i}].version"), message: m })?,
                    None => {
                        return Err(Error::Spec {
                            field: format!("cluster.addons[{i}]"),
                            message: "the addon catalogue for the cluster version was not read".into(),
                        })
                    }
                },
            };
            let mut role = None;
            let mut adeps = vec![CLUSTER_KEY.to_string()];
            let sa = addons::service_account(&a.name);
            let irsa = sa.map(|(ns, n)| format!("role/irsa/{ns}/{n}"));
            let wants_role = a.has_policies()
                || (a.name == "vpc-cni" && spec.access.as_ref().is_some_and(|x| x.iam.cni_irsa))
                || sa.is_some_and(|(ns, n)| {
                    spec.access
                        .as_ref()
                        .is_some_and(|x| x.service_accounts.iter().any(|s| s.namespace == ns && s.name == n))
                });
            // a role of the user's for the addon's service account: used as it is, with nothing to wait for
            let users_role = sa.and_then(|(ns, n)| {
                spec.access
                    .as_ref()?
                    .service_accounts
                    .iter()
                    .find(|s| s.namespace == ns && s.name == n)?
                    .role_arn
                    .clone()
            });
            if let Some(r) = users_role {
                role = Some(r);
            } else if wants_role {
                let (Some((ns, n)), Some(rk)) = (sa, irsa) else {
                    return Err(Error::Spec {
                        field: format!("cluster.addons[{i}].policies"),
                        message: format!("eksodus does not know the service account of addon `{}`", a.name),
                    });
                };
                if !inp.iam_keys.contains(&rk) {
                    out.deferred.push(format!("{key}: waits for its IAM role {rk} (needs the cluster's OIDC issuer)"));
                    continue;
                }
                role = Some(role_arn(self.partition, inp.account, spec, &format!("{ns}-{n}")));
                adeps.push(rk);
            }
            let user_cfg = a.configuration_values.as_ref();
            let cfg =
                if a.name == "vpc-cni" { addons::vpc_cni_configuration(spec, user_cfg) } else { user_cfg.cloned() };
            let d = Desired {
                key: key.clone(),
                kind: "eks-addon".into(),
                props: to_props(&AddonProps {
                    name: a.name.clone(),
                    version,
                    configuration: cfg.as_ref().map(addons::canonical_json),
                    role_arn: role,
                    resolve_conflicts: a.resolve_conflicts.clone().unwrap_or_else(|| "OVERWRITE".into()),
                    tags: {
                        let mut t = self.user_tags.clone();
                        t.extend(a.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
                        t
                    },
                }),
                immutable: vec!["name".into()],
                depends_on: adeps,
                cost: Cost::new(2, 2, 2),
            };
            if addons::before_nodes(&a.name) {
                node_addons.push(d);
            } else {
                later_addons.push(d);
            }
        }
        let node_addon_keys: Vec<String> = node_addons.iter().map(|d| d.key.clone()).collect();
        let mut ng_keys = Vec::new();
        for (i, n) in c.nodegroups.iter().enumerate() {
            let tier = if n.public { &inp.public_subnets } else { &inp.private_subnets };
            // an adopted VPC's subnets are keyed by their own IDs, so a nodegroup's own subnets pick them out
            // a nodegroup that names no zones runs in the region's, not in a Local Zone
            let local = &spec.network.local_zones;
            let mut subnets: Vec<String> = tier
                .iter()
                .filter(|(az, _)| if n.zones.is_empty() { !local.contains(az) } else { n.zones.contains(az) })
                .filter(|(_, s)| n.subnets.is_empty() || n.subnets.contains(s))
                .map(|(_, s)| s.clone())
                .collect();
            subnets.sort();
            if subnets.is_empty() {
                return Err(Error::Spec {
                    field: format!("cluster.nodegroups[{i}]"),
                    message: format!("no {} subnet in its zones", if n.public { "public" } else { "private" }),
                });
            }
            let mut types = n.instance_types.clone();
            types.sort();
            // Windows nodes give pods the addresses of one network interface, less its own (EKS's Windows
            // bootstrap sets that itself): the figure is shown, never written
            let max_pods = if n.is_windows() {
                types
                    .iter()
                    .filter_map(|t| eksodus_net::cni::limits(t).ok())
                    .map(eksodus_net::cni::windows_max_pods)
                    .min()
            } else {
                types.iter().filter_map(|t| inp.max_pods.get(t).copied()).min()
            };
            let mut taints: Vec<TaintProps> = n
                .taints
                .iter()
                .map(|t| TaintProps {
                    key: t.key.clone(),
                    value: t.value.clone().unwrap_or_default(),
                    effect: t.effect.clone(),
                })
                .collect();
            taints.sort();
            let mut tags = self.user_tags.clone();
            tags.extend(n.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            // a public key of the spec's: a key pair eksodus imports (its name follows the key)
            let mut key_pair = None;
            let remote_access = n.ssh.as_ref().map(|ssh| {
                let mut groups = ssh.source_security_groups.clone();
                groups.sort();
                let key_name = match &ssh.public_key {
                    Some(k) => {
                        let name = super::key_pair_name(&self.env, &n.name, k);
                        key_pair = Some(Desired {
                            key: super::key_pair_key(&n.name),
                            kind: "ec2-key-pair".into(),
                            props: to_props(&super::KeyPairProps {
                                name: name.clone(),
                                public_key: super::keypair::normalized(k),
                            }),
                            immutable: vec!["name".into()],
                            depends_on: vec![],
                            cost: Cost::new(1, 1, 1),
                        });
                        name
                    }
                    None => ssh.key_name.clone(),
                };
                RemoteAccessProps { key_name, source_security_groups: groups }
            });
            // the nodes' role: the user's, the nodegroup's own (extra policies), or the environment's
            let (node_role_arn, role_dep) = match (&n.iam.role_arn, !n.has_own_role()) {
                (Some(arn), _) => (arn.clone(), None),
                (None, false) => (
                    role_arn(self.partition, inp.account, spec, &format!("node-{}", n.name)),
                    Some(eksodus_access::iam::nodegroup_role_key(&n.name)),
                ),
                (None, true) => (role_arn(self.partition, inp.account, spec, "node"), Some("role/node".to_string())),
            };
            let mut deps = vec![CLUSTER_KEY.to_string()];
            deps.extend(role_dep);
            let key_pair_dep = key_pair.as_ref().map(|kp| kp.key.clone());
            if let Some(kp) = key_pair {
                deps.push(kp.key.clone());
                out.desired.push(kp);
            }
            deps.extend(subnets.iter().filter(|s| !is_physical(s)).cloned());
            deps.extend(node_addon_keys.iter().cloned());
            let ami_type = n.ami_type.clone().unwrap_or_else(|| DEFAULT_AMI_TYPE.into());
            // the launch template: the user's, or one eksodus makes (planned beside the nodegroup)
            let (launch_template, launch_template_version) = if let Some(lt) = &n.launch_template {
                (Some(lt.id.clone()), Some(lt.version.clone()))
            } else if n.owns_template() {
                let family = crate::userdata::Family::of(&ami_type);
                let Some(t) = self.template(spec, n, family, max_pods, remote_access.as_ref(), inp) else {
                    let what = if n.ami.is_some() {
                        "the cluster's endpoint and CA (a custom AMI's bootstrap names them)"
                    } else {
                        "the cluster's security group (EKS makes it with the cluster)"
                    };
                    out.deferred.push(format!(
                        "{} and {}: wait for {what}",
                        template_key(&n.name),
                        nodegroup_key(&n.name)
                    ));
                    continue;
                };
                let key = template_key(&n.name);
                let digest = t.digest();
                out.desired.push(Desired {
                    key: key.clone(),
                    kind: "ec2-launch-template".into(),
                    props: to_props(&t),
                    immutable: vec!["name".into()],
                    depends_on: {
                        let mut d = Vec::new();
                        if !t.security_groups.is_empty() || n.ami.is_some() {
                            d.push(CLUSTER_KEY.to_string());
                        }
                        d.extend(t.security_groups.iter().filter(|g| !is_physical(g)).cloned());
                        d.extend(key_pair_dep.clone());
                        d
                    },
                    cost: Cost::new(1, 1, 1),
                });
                deps.push(key.clone());
                (Some(key), Some(digest))
            } else {
                (None, None)
            };
            // beside eksodus's template the key and the SSH group are the template's; EKS takes no remote access
            let remote_access = remote_access.filter(|_| launch_template.is_none());
            let key = nodegroup_key(&n.name);
            ng_keys.push(key.clone());
            out.desired.push(Desired {
                key,
                kind: "eks-nodegroup".into(),
                props: to_props(&NodegroupProps {
                    name: n.name.clone(),
                    // a custom AMI's kubelet is the AMI's: EKS takes no version for it
                    version: if n.ami.is_some() { String::new() } else { inp.version.to_string() },
                    instance_types: types,
                    capacity_type: n.capacity_type.clone(),
                    ami_type: if n.ami.is_some() { CUSTOM_AMI_TYPE.to_string() } else { ami_type },
                    disk_size: launch_template.is_none().then(|| super::disk_size(n)),
                    subnets,
                    node_role_arn,
                    scaling: Scaling { min: n.min, max: n.max, desired: n.desired },
                    labels: n.labels.clone(),
                    taints,
                    max_unavailable: n.max_unavailable_percentage.is_none().then(|| n.max_unavailable.unwrap_or(1)),
                    max_unavailable_percentage: n.max_unavailable_percentage,
                    max_pods,
                    tags,
                    remote_access,
                    node_repair: n.node_repair,
                    node_repair_settings: n.node_repair_settings.clone().map(|mut r| {
                        r.overrides.sort();
                        r
                    }),
                    launch_template,
                    launch_template_version,
                }),
                immutable: [
                    "name",
                    "launch_template",
                    "remote_access",
                    "instance_types",
                    "capacity_type",
                    "ami_type",
                    "disk_size",
                    "subnets",
                    "node_role_arn",
                ]
                .map(String::from)
                .to_vec(),
                depends_on: deps,
                cost: Cost::new(2, 3, 2),
            });
        }
        for p in &c.identity_providers {
            out.desired.push(Desired {
                key: identity_provider_key(&p.name),
                kind: "eks-identity-provider".into(),
                props: to_props(&IdentityProviderProps {
                    name: p.name.clone(),
                    issuer_url: p.issuer_url.clone(),
                    client_id: p.client_id.clone(),
                    username_claim: p.username_claim.clone(),
                    username_prefix: p.username_prefix.clone(),
                    groups_claim: p.groups_claim.clone(),
                    groups_prefix: p.groups_prefix.clone(),
                    required_claims: p.required_claims.clone(),
                }),
                // EKS has no update for an identity provider config
                immutable: [
                    "name",
                    "issuer_url",
                    "client_id",
                    "username_claim",
                    "username_prefix",
                    "groups_claim",
                    "groups_prefix",
                    "required_claims",
                ]
                .map(String::from)
                .to_vec(),
                depends_on: vec![CLUSTER_KEY.to_string()],
                cost: Cost::new(2, 2, 2),
            });
        }
        // pods of the later addons (CoreDNS among them) may be the Fargate profiles' to run
        let fargate = self.desired_fargate_profiles(spec, c, inp)?;
        ng_keys.extend(fargate.iter().map(|d| d.key.clone()));
        out.desired.extend(fargate);
        for mut d in later_addons {
            d.depends_on.extend(ng_keys.iter().cloned());
            out.desired.push(d);
        }
        out.desired.extend(node_addons);
        out.desired.extend(self.desired_capabilities(spec, c, inp));
        Ok(out)
    }

    /// The launch template eksodus makes for nodegroup `n`, or `None` while it waits for the cluster's
    /// security group (nodes given security groups of their own need it beside them).
    fn template(
        &self,
        spec: &EnvironmentSpec,
        n: &eksodus_core::spec::NodegroupSpec,
        family: crate::userdata::Family,
        max_pods: Option<u32>,
        remote_access: Option<&RemoteAccessProps>,
        inp: &Inputs<'_>,
    ) -> Option<LaunchTemplateProps> {
        // SSH beside a template: the nodegroup's SSH group (the network component's, by key) and the key pair
        let ssh_group = n.ssh.as_ref().map(|_| eksodus_net::ec2::ssh_group_key(&n.name));
        let security_groups = if n.security_groups.is_empty() && ssh_group.is_none() {
            vec![]
        } else {
            let mut g = n.security_groups.clone();
            g.extend(ssh_group);
            g.push(inp.cluster_security_group.clone()?);
            g.sort();
            g.dedup();
            g
        };
        let own_max_pods = sets_max_pods(spec);
        // a custom AMI: the whole bootstrap, once the cluster exists and has said where it is
        let cb = match &n.ami {
            Some(_) => Some(inp.cluster_bootstrap.as_ref()?),
            None => None,
        };
        let bootstrap = cb.map(|cb| {
            let mut labels = vec![
                ("eks.amazonaws.com/nodegroup".to_string(), n.name.clone()),
                ("eks.amazonaws.com/nodegroup-image".to_string(), n.ami.clone().unwrap_or_default()),
                ("eks.amazonaws.com/capacityType".to_string(), n.capacity_type.clone()),
            ];
            labels.extend(n.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
            crate::userdata::Bootstrap {
                cluster: &self.name,
                endpoint: &cb.endpoint,
                certificate_authority: &cb.certificate_authority,
                service_cidr: &cb.service_cidr,
                labels,
                taints: n
                    .taints
                    .iter()
                    .map(|t| {
                        format!(
                            "{}={}:{}",
                            t.key,
                            t.value.as_deref().unwrap_or(""),
                            crate::userdata::kubelet_effect(&t.effect)
                        )
                    })
                    .collect(),
                override_command: n.override_bootstrap_command.as_deref(),
            }
        });
        // a custom AMI's kubelet learns max pods from eksodus alone (EKS computes none for it)
        let max_pods = if bootstrap.is_some() { max_pods } else { max_pods.filter(|_| own_max_pods) };
        // Bottlerocket's settings of the spec, the admin container among them
        let bottlerocket = n.bottlerocket.as_ref().map(|b| {
            let mut m = b.settings.clone();
            if b.admin_container {
                // beside any other host-container setting of the user's (validation keeps `enabled` for this)
                let hc = m.entry("host-containers").or_insert_with(|| serde_json::json!({}));
                if let Some(hc) = hc.as_object_mut() {
                    let admin = hc.entry("admin").or_insert_with(|| serde_json::json!({}));
                    if let Some(admin) = admin.as_object_mut() {
                        admin.insert("enabled".into(), serde_json::json!(true));
                    }
                }
            }
            m
        });
        let user_data = crate::userdata::render(
            family,
            &crate::userdata::NodeSettings {
                max_pods,
                pre_bootstrap_commands: &n.pre_bootstrap_commands,
                bootstrap,
                bottlerocket_settings: bottlerocket.as_ref(),
            },
        );
        let v = n.volume.clone().unwrap_or_default();
        let mut instance_tags = self.user_tags.clone();
        instance_tags.extend(n.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(name) = &n.instance_name {
            instance_tags.insert(tags::NAME.into(), name.clone());
        }
        Some(LaunchTemplateProps {
            name: template_name(&self.env, &n.name),
            image_id: n.ami.clone(),
            device: family.data_device().into(),
            volume_size: super::disk_size(n),
            volume_type: v.volume_type.clone().unwrap_or_else(|| "gp3".into()),
            iops: v.iops,
            throughput: v.throughput,
            encrypted: v.encrypted || v.kms_key.is_some(),
            kms_key: v.kms_key.clone(),
            imds_v2_required: true,
            hop_limit: n.imds_hop_limit.unwrap_or(DEFAULT_HOP_LIMIT),
            security_groups,
            key_name: remote_access.map(|r| r.key_name.clone()),
            user_data,
            instance_tags,
        })
    }

    /// Diffs, and refuses a plan that would replace the control plane. Settings EKS takes only at creation
    /// ([`CREATE_ONLY`]) never make an update.
    pub fn diff(&self, desired: &[Desired], found: &Found) -> Result<Plan, Error> {
        let mut plan = plan::diff(desired, &found.observed);
        for s in plan.steps.iter_mut().filter(|s| s.action == Action::Update) {
            s.changes.retain(|c| !CREATE_ONLY.contains(&c.field.as_str()));
            if s.changes.is_empty() {
                s.action = Action::NoOp;
                s.reasons.clear();
            }
        }
        if let Some(s) = plan.steps.iter().find(|s| s.kind == "eks-cluster" && s.action == Action::Replace) {
            let fields = s.changes.iter().filter(|c| c.forces_replacement).map(|c| c.field.clone()).collect();
            return Err(Error::ClusterReplacement { fields });
        }
        Ok(plan)
    }
}
