//! EKS capabilities (Argo CD, ACK, kro): what the spec wants, what EKS reports, and their create, update and
//! delete.
//!
//! A capability runs in EKS, not on the cluster's nodes, as its capability role; EKS lets the role into the
//! cluster through an access entry it makes itself and associates one access policy of the capability's type
//! with (two for Argo CD). The access policies the spec adds go on that entry and are part of the capability's
//! properties here: the entry carries no ownership tags, as EKS made it, and the access-entry reconciler leaves
//! it alone. The name, type, Argo CD namespace and Identity Center instance are fixed (a change replaces the
//! capability); the role, Argo CD's role mappings and network access change in place with
//! `UpdateCapability`, the tags with `TagResource`. Deleting one always retains what it made in AWS and the
//! cluster (`RETAIN`, the only delete propagation policy EKS has).

use super::*;

use aws_sdk_eks::types::{
    ArgoCdAwsIdcConfigRequest, ArgoCdConfigRequest, ArgoCdNetworkAccessConfigRequest, ArgoCdRole, ArgoCdRoleMapping,
    Capability, CapabilityConfigurationRequest, CapabilityDeletePropagationPolicy, CapabilityType, SsoIdentity,
    SsoIdentityType, UpdateArgoCdConfig, UpdateCapabilityConfiguration, UpdateRoleMappings,
};
use eksodus_access::entries::{associate_policies, associated_policies, policy_arn, policy_line};
use eksodus_core::spec::{CapabilityKind, CapabilitySpec};

/// Key of a capability.
pub fn capability_key(name: &str) -> String {
    format!("eks/capability/{name}")
}

/// Statuses a capability does not leave by itself.
const FAILED: &[&str] = &["CREATE_FAILED", "DELETE_FAILED", "DEGRADED"];

/// What a capability should be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilityProps {
    /// Capability name.
    pub name: String,
    /// `ACK`, `KRO` or `ARGOCD`.
    pub kind: String,
    /// The capability role.
    pub role_arn: String,
    /// Access policies on the role's entry beyond EKS's own, as `policy ARN|scope`, sorted.
    pub access_policies: Vec<String>,
    /// Argo CD's namespace (fixed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argocd_namespace: Option<String>,
    /// The Identity Center instance (fixed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idc_instance_arn: Option<String>,
    /// The Identity Center instance's region, the cluster's unless the spec names another (fixed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idc_region: Option<String>,
    /// Argo CD role mappings, sorted (identities sorted too).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rbac_role_mappings: Vec<eksodus_core::spec::ArgoCdRoleMapping>,
    /// VPC endpoints Argo CD is reached through, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vpce_ids: Vec<String>,
    /// User tags.
    pub tags: BTreeMap<String, String>,
}

/// The ARNs of the access policies EKS associates itself for a capability of `kind`.
fn eks_policy_arns(kind: &str, argocd_namespace: Option<&str>) -> Vec<String> {
    CapabilityKind::parse(kind)
        .map(|k| k.eks_access_policies(argocd_namespace.unwrap_or("argocd")))
        .unwrap_or_default()
        .into_iter()
        .map(|(p, _)| policy_arn(p))
        .collect()
}

/// The spec's access policies as lines, without those EKS associates itself (listing one is no change).
fn wanted_access_policies(c: &CapabilitySpec) -> Vec<String> {
    let ns = c.argocd.as_ref().map(|a| a.namespace.as_str());
    let eks_own = eks_policy_arns(c.kind.as_str(), ns);
    let mut out: Vec<String> = c
        .access_policies
        .iter()
        .filter(|p| !eks_own.contains(&policy_arn(&p.policy)))
        .map(|p| policy_line(&p.policy, &p.namespaces))
        .collect();
    out.sort();
    out.dedup();
    out
}

fn sorted_mappings(m: &[eksodus_core::spec::ArgoCdRoleMapping]) -> Vec<eksodus_core::spec::ArgoCdRoleMapping> {
    let mut out: Vec<_> = m
        .iter()
        .map(|m| {
            let mut m = m.clone();
            m.identities.sort();
            m.identities.dedup();
            m
        })
        .collect();
    out.sort();
    out
}

fn sdk_mapping(m: &eksodus_core::spec::ArgoCdRoleMapping) -> Result<ArgoCdRoleMapping, StepError> {
    let identities = m
        .identities
        .iter()
        .map(|i| {
            SsoIdentity::builder()
                .id(&i.id)
                .r#type(SsoIdentityType::from(i.kind.as_str()))
                .build()
                .map_err(|e| StepError::permanent(format!("Argo CD identity {}: {e}", i.id)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    ArgoCdRoleMapping::builder()
        .role(ArgoCdRole::from(m.role.as_str()))
        .set_identities(Some(identities))
        .build()
        .map_err(|e| StepError::permanent(format!("Argo CD role mapping {}: {e}", m.role)))
}

impl Eks {
    /// The capabilities `c` wants.
    pub(super) fn desired_capabilities(
        &self,
        spec: &EnvironmentSpec,
        c: &eksodus_core::spec::ClusterSpec,
        inp: &Inputs<'_>,
    ) -> Vec<Desired> {
        c.capabilities
            .iter()
            .map(|cap| {
                let (role, role_dep) = match &cap.role_arn {
                    Some(r) => (r.clone(), None),
                    None => (
                        role_arn(
                            self.partition,
                            inp.account,
                            spec,
                            &eksodus_access::iam::capability_role_purpose(&cap.name),
                        ),
                        Some(eksodus_access::iam::capability_role_key(&cap.name)),
                    ),
                };
                let mut tags = self.user_tags.clone();
                tags.extend(cap.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
                let argo = cap.argocd.as_ref();
                let mut vpce_ids: Vec<String> = argo.map(|a| a.vpce_ids.clone()).unwrap_or_default();
                vpce_ids.sort();
                vpce_ids.dedup();
                let mut deps = vec![CLUSTER_KEY.to_string()];
                deps.extend(role_dep);
                Desired {
                    key: capability_key(&cap.name),
                    kind: "eks-capability".into(),
                    props: to_props(&CapabilityProps {
                        name: cap.name.clone(),
                        kind: cap.kind.as_str().into(),
                        role_arn: role,
                        access_policies: wanted_access_policies(cap),
                        argocd_namespace: argo.map(|a| a.namespace.clone()),
                        idc_instance_arn: argo.map(|a| a.idc_instance_arn.clone()),
                        idc_region: argo.map(|a| a.idc_region.clone().unwrap_or_else(|| spec.region.clone())),
                        rbac_role_mappings: argo.map(|a| sorted_mappings(&a.rbac_role_mappings)).unwrap_or_default(),
                        vpce_ids,
                        tags,
                    }),
                    immutable: ["name", "kind", "argocd_namespace", "idc_instance_arn", "idc_region"]
                        .map(String::from)
                        .to_vec(),
                    depends_on: deps,
                    cost: Cost::new(2, 2, 2),
                }
            })
            .collect()
    }

    /// The names of the cluster's capabilities, every page.
    pub(super) async fn list_capabilities(&self) -> Result<Vec<String>, StepError> {
        super::discover::pages(|token| async move {
            let r = self
                .calls
                .read(|| self.eks.list_capabilities().cluster_name(&self.name).set_next_token(token.clone()).send())
                .await
                .map_err(|e| step_error(format!("ListCapabilities {}", self.name), e))?;
            let names = r.capabilities().iter().filter_map(|c| c.capability_name().map(String::from)).collect();
            Ok((names, r.next_token().map(String::from)))
        })
        .await
    }

    pub(super) async fn describe_capability(&self, name: &str) -> Result<Option<Capability>, StepError> {
        match self
            .calls
            .read(|| self.eks.describe_capability().cluster_name(&self.name).capability_name(name).send())
            .await
        {
            Ok(r) => Ok(r.capability().cloned()),
            Err(e) if is_not_found(error_code(&e)) => Ok(None),
            Err(e) => Err(step_error(format!("DescribeCapability {name}"), e)),
        }
    }

    /// The access policies on `role`'s entry; none while EKS has not made the entry yet.
    async fn capability_policies(&self, role: &str) -> Result<Vec<String>, StepError> {
        match associated_policies(&self.eks, &self.calls, &self.name, role).await {
            Err(e) if is_not_found(e.code.as_deref()) => Ok(vec![]),
            other => other,
        }
    }

    /// A capability, when this environment owns it, with the access policies on its role's entry.
    pub(super) async fn observe_capability(&self, name: &str) -> Result<Option<Observed>, StepError> {
        let r = retry(&self.reads, || async { self.describe_capability(name).await }).await?;
        let Some(c) = r else { return Ok(None) };
        if !tags::is_owned(&tag_map(c.tags()), &self.env, COMPONENT) {
            return Ok(None);
        }
        let role = c.role_arn().unwrap_or_default().to_string();
        let policies = retry(&self.reads, || async { self.capability_policies(&role).await }).await?;
        Ok(Some(observed_capability(&self.env, &c, &policies)))
    }

    async fn wait_capability(&self, ctx: &OpContext, name: &str, gone: bool) -> Result<(), StepError> {
        let what = format!("capability {name}");
        self.wait_member(ctx, &what, "eks-capability", None, gone, FAILED, || async {
            Ok(self.describe_capability(name).await?.map(|c| Member {
                status: c.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
                version: None,
                health: health(c.health().map(|h| h.issues())),
            }))
        })
        .await
    }

    /// Associates the spec's access policies with the capability role's entry and takes off those the spec
    /// dropped. EKS makes the entry itself once the capability is up, perhaps a while after it shows ACTIVE
    /// (eksctl polls for it for minutes), so the entry is waited for first; should it vanish meanwhile, the
    /// step is busy, to be tried again.
    async fn set_capability_policies(
        &self,
        ctx: &OpContext,
        role: &str,
        want: &[String],
        had: &[String],
    ) -> Result<(), StepError> {
        if want.is_empty() && had.is_empty() {
            return Ok(());
        }
        let what = format!("access entry EKS makes for {role}");
        ctx.wait_until(&what, self.wait_timeout(ctx, "eks-capability"), || async {
            match self
                .calls
                .read(|| self.eks.describe_access_entry().cluster_name(&self.name).principal_arn(role).send())
                .await
            {
                Ok(_) => Ok(WaitState::Ready(())),
                Err(e) if is_not_found(error_code(&e)) => Ok(WaitState::Pending("not made yet".into())),
                Err(e) => Err(step_error(format!("DescribeAccessEntry {role}"), e)),
            }
        })
        .await?;
        associate_policies(&self.eks, &self.calls, &self.name, role, want, had).await.map_err(|mut e| {
            if is_not_found(e.code.as_deref()) {
                e.class = ErrorClass::Transient;
            }
            e
        })
    }

    pub(super) async fn create_capability(&self, op: &Operation, ctx: &OpContext) -> Result<Option<String>, StepError> {
        let s = &op.step;
        let w: CapabilityProps =
            from_props(&s.key, &s.desired.clone().unwrap_or_default()).map_err(StepError::permanent)?;
        let name = w.name.clone();
        match self.describe_capability(&name).await? {
            // a create that happened before a crash or a lost answer: wait for it, then finish its policies
            Some(c) if tags::is_owned(&tag_map(c.tags()), &self.env, COMPONENT) => {
                if c.status().is_some_and(|st| st.as_str() == "DELETING") {
                    self.wait_capability(ctx, &name, true).await?;
                } else {
                    self.wait_capability(ctx, &name, false).await?;
                    let had = self.capability_policies(&w.role_arn).await?;
                    let had = without_eks_policies(&had, &w.kind, w.argocd_namespace.as_deref());
                    self.set_capability_policies(ctx, &w.role_arn, &w.access_policies, &had).await?;
                    return Ok(Some(name));
                }
            }
            Some(_) => {
                return Err(StepError::permanent(format!(
                    "capability {name} exists in cluster {} and is not owned by environment {}; remove it or rename the capability",
                    self.name, self.env
                )))
            }
            None => {}
        }
        let configuration = match &w.idc_instance_arn {
            Some(idc) => {
                let mappings = w.rbac_role_mappings.iter().map(sdk_mapping).collect::<Result<Vec<_>, _>>()?;
                let argo = ArgoCdConfigRequest::builder()
                    .set_namespace(w.argocd_namespace.clone())
                    .aws_idc(
                        ArgoCdAwsIdcConfigRequest::builder()
                            .idc_instance_arn(idc)
                            .set_idc_region(w.idc_region.clone())
                            .build()
                            .map_err(|e| StepError::permanent(format!("capability {name}: {e}")))?,
                    )
                    .set_rbac_role_mappings(Some(mappings).filter(|m| !m.is_empty()))
                    .set_network_access((!w.vpce_ids.is_empty()).then(|| {
                        ArgoCdNetworkAccessConfigRequest::builder().set_vpce_ids(Some(w.vpce_ids.clone())).build()
                    }))
                    .build();
                Some(CapabilityConfigurationRequest::builder().argo_cd(argo).build())
            }
            None => None,
        };
        self.calls
            .create(|| {
                self.eks
                    .create_capability()
                    .cluster_name(&self.name)
                    .capability_name(&name)
                    .r#type(CapabilityType::from(w.kind.as_str()))
                    .role_arn(&w.role_arn)
                    .set_configuration(configuration.clone())
                    .delete_propagation_policy(CapabilityDeletePropagationPolicy::Retain)
                    .set_tags(Some(self.tags_over(&s.key, &w.tags)))
                    .client_request_token(ctx.client_token(s))
                    .send()
            })
            .await
            .map_err(|e| busy(format!("CreateCapability {name}"), e))?;
        self.wait_capability(ctx, &name, false).await?;
        self.set_capability_policies(ctx, &w.role_arn, &w.access_policies, &[]).await?;
        Ok(Some(name))
    }

    pub(super) async fn update_capability(&self, op: &Operation, ctx: &OpContext) -> Result<Option<String>, StepError> {
        let s = &op.step;
        let w: CapabilityProps =
            from_props(&s.key, &s.desired.clone().unwrap_or_default()).map_err(StepError::permanent)?;
        let name = w.name.clone();
        let was: CapabilityProps = s
            .observed
            .as_ref()
            .map(|o| {
                let mut o = o.clone();
                o.remove("arn");
                o.remove("status");
                from_props(&s.key, &o)
            })
            .transpose()
            .map_err(StepError::permanent)?
            .ok_or_else(|| StepError::permanent(format!("capability {name}: nothing observed to update")))?;
        if let Some(arn) = s.observed.as_ref().and_then(|o| text(o, "arn")).filter(|_| was.tags != w.tags) {
            let t = self.tags_over(&s.key, &w.tags);
            self.calls
                .read(|| self.eks.tag_resource().resource_arn(&arn).set_tags(Some(t.clone())).send())
                .await
                .map_err(|e| step_error(format!("TagResource {arn}"), e))?;
        }
        let role_changed = was.role_arn != w.role_arn;
        let mut argo = UpdateArgoCdConfig::builder();
        let mut argo_changed = false;
        if was.rbac_role_mappings != w.rbac_role_mappings {
            let changed: Vec<_> = w.rbac_role_mappings.iter().filter(|m| !was.rbac_role_mappings.contains(m)).collect();
            let gone: Vec<_> = was
                .rbac_role_mappings
                .iter()
                .filter(|m| !w.rbac_role_mappings.iter().any(|n| n.role == m.role))
                .collect();
            let add = changed.into_iter().map(sdk_mapping).collect::<Result<Vec<_>, _>>()?;
            let remove = gone.into_iter().map(sdk_mapping).collect::<Result<Vec<_>, _>>()?;
            argo = argo.rbac_role_mappings(
                UpdateRoleMappings::builder()
                    .set_add_or_update_role_mappings(Some(add).filter(|a| !a.is_empty()))
                    .set_remove_role_mappings(Some(remove).filter(|r| !r.is_empty()))
                    .build(),
            );
            argo_changed = true;
        }
        if was.vpce_ids != w.vpce_ids {
            argo = argo.network_access(
                ArgoCdNetworkAccessConfigRequest::builder().set_vpce_ids(Some(w.vpce_ids.clone())).build(),
            );
            argo_changed = true;
        }
        if role_changed || argo_changed {
            let config = argo_changed.then(|| UpdateCapabilityConfiguration::builder().argo_cd(argo.build()).build());
            self.calls
                .create(|| {
                    self.eks
                        .update_capability()
                        .cluster_name(&self.name)
                        .capability_name(&name)
                        .set_role_arn(role_changed.then(|| w.role_arn.clone()))
                        .set_configuration(config.clone())
                        .client_request_token(ctx.client_token(s))
                        .send()
                })
                .await
                .map_err(|e| busy(format!("UpdateCapability {name}"), e))?;
            self.wait_capability(ctx, &name, false).await?;
        }
        // a new role has an entry of its own, with none of the old one's policies
        let had = if role_changed { vec![] } else { was.access_policies.clone() };
        if role_changed || had != w.access_policies {
            self.set_capability_policies(ctx, &w.role_arn, &w.access_policies, &had).await?;
        }
        Ok(Some(name))
    }

    pub(super) async fn delete_capability(&self, op: &Operation, ctx: &OpContext) -> Result<Option<String>, StepError> {
        let name = op.step.physical_id.clone().unwrap_or_default();
        match self
            .calls
            .read(|| self.eks.delete_capability().cluster_name(&self.name).capability_name(&name).send())
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(error_code(&e)) => return Ok(Some(name)),
            Err(e) => return Err(busy(format!("DeleteCapability {name}"), e)),
        }
        self.wait_capability(ctx, &name, true).await?;
        Ok(Some(name))
    }
}

/// `policies` without those EKS associates itself for a capability of `kind`.
fn without_eks_policies(policies: &[String], kind: &str, argocd_namespace: Option<&str>) -> Vec<String> {
    let eks_own = eks_policy_arns(kind, argocd_namespace);
    policies.iter().filter(|p| !eks_own.iter().any(|a| p.split('|').next() == Some(a.as_str()))).cloned().collect()
}

/// A capability as EKS reports it, in the shape of [`CapabilityProps`] (plus its ARN and status), with the
/// access policies `policies` read from its role's entry.
pub(super) fn observed_capability(env: &str, c: &Capability, policies: &[String]) -> Observed {
    let name = c.capability_name().unwrap_or_default().to_string();
    let kind = c.r#type().map(|t| t.as_str().to_string()).unwrap_or_default();
    let role = c.role_arn().unwrap_or_default().to_string();
    let argo = c.configuration().and_then(|x| x.argo_cd());
    let namespace = argo.and_then(|a| a.namespace()).map(String::from);
    let mappings: Vec<eksodus_core::spec::ArgoCdRoleMapping> = argo
        .map(|a| a.rbac_role_mappings())
        .unwrap_or_default()
        .iter()
        .map(|m| eksodus_core::spec::ArgoCdRoleMapping {
            role: m.role().as_str().to_string(),
            identities: m
                .identities()
                .iter()
                .map(|i| eksodus_core::spec::SsoIdentity { id: i.id().to_string(), kind: i.r#type().as_str().into() })
                .collect(),
        })
        .collect();
    let mut vpce_ids: Vec<String> =
        argo.and_then(|a| a.network_access()).map(|n| n.vpce_ids().to_vec()).unwrap_or_default();
    vpce_ids.sort();
    let mut access_policies = without_eks_policies(policies, &kind, namespace.as_deref());
    access_policies.sort();
    let mut deps = vec![CLUSTER_KEY.to_string()];
    // the role eksodus made outlives the capability that acts as it
    let own_role = eksodus_access::iam::role_name(env, &eksodus_access::iam::capability_role_purpose(&name));
    if role.ends_with(&format!("/{own_role}")) {
        deps.push(eksodus_access::iam::capability_role_key(&name));
    }
    let mut props = to_props(&CapabilityProps {
        name: name.clone(),
        kind,
        role_arn: role,
        access_policies,
        argocd_namespace: namespace,
        idc_instance_arn: argo.and_then(|a| a.aws_idc()).and_then(|i| i.idc_instance_arn()).map(String::from),
        idc_region: argo.and_then(|a| a.aws_idc()).and_then(|i| i.idc_region()).map(String::from),
        rbac_role_mappings: sorted_mappings(&mappings),
        vpce_ids,
        tags: tag_map(c.tags()),
    });
    props.insert("arn".into(), json!(c.arn()));
    props.insert("status".into(), json!(c.status().map(|s| s.as_str())));
    Observed {
        key: capability_key(&name),
        kind: "eks-capability".into(),
        physical_id: name,
        props,
        depends_on: deps,
        delete_cost: 2,
    }
}
