//! Fargate profiles: what the spec wants, what EKS reports, and their create, delete and tag changes.
//!
//! EKS changes nothing of a profile but its tags, so every other change replaces it (delete, then create
//! under the same name). It also creates or deletes only one profile of a cluster at a time, refusing a
//! second with `ResourceInUseException` while one is `CREATING` or `DELETING`; this reconciler runs its own
//! profile changes one after another (a lock held from the call until the profile settles) and treats the
//! refusal as busy, to be tried again, for the case of another client changing a profile meanwhile.

use super::*;

use aws_sdk_eks::types::{FargateProfile, FargateProfileSelector};
use eksodus_access::iam::FARGATE_ROLE_KEY;

/// Key of a Fargate profile.
pub fn fargate_profile_key(name: &str) -> String {
    format!("eks/fargate-profile/{name}")
}

/// Statuses a profile does not leave by itself.
const FAILED: &[&str] = &["CREATE_FAILED", "DELETE_FAILED"];

impl Eks {
    /// The profiles `c` wants, in `inp`'s private subnets (or the adopted ones a profile names).
    pub(super) fn desired_fargate_profiles(
        &self,
        spec: &EnvironmentSpec,
        c: &eksodus_core::spec::ClusterSpec,
        inp: &Inputs<'_>,
    ) -> Result<Vec<Desired>, Error> {
        let mut out = Vec::new();
        for (i, p) in c.fargate_profiles.iter().enumerate() {
            // EKS runs no Fargate pod in a Local Zone
            let mut subnets: Vec<String> = inp
                .private_subnets
                .iter()
                .filter(|(az, _)| !spec.network.local_zones.contains(az))
                .map(|(_, s)| s)
                .filter(|s| p.subnets.is_empty() || p.subnets.contains(s))
                .cloned()
                .collect();
            subnets.sort();
            subnets.dedup();
            if subnets.is_empty() {
                let message = if p.subnets.is_empty() {
                    "the environment has no private subnet, and Fargate runs pods in private subnets only"
                } else {
                    "none of its subnets is a private subnet of the environment (Fargate takes private ones only)"
                };
                return Err(Error::Spec { field: format!("cluster.fargate_profiles[{i}]"), message: message.into() });
            }
            let (role, role_dep) = match &p.pod_execution_role_arn {
                Some(r) => (r.clone(), None),
                None => (role_arn(self.partition, inp.account, spec, "fargate"), Some(FARGATE_ROLE_KEY.to_string())),
            };
            let mut selectors = p.selectors.clone();
            selectors.sort();
            let mut tags = self.user_tags.clone();
            tags.extend(p.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            let mut deps = vec![CLUSTER_KEY.to_string()];
            deps.extend(role_dep);
            deps.extend(subnets.iter().filter(|s| !is_physical(s)).cloned());
            out.push(Desired {
                key: fargate_profile_key(&p.name),
                kind: "eks-fargate-profile".into(),
                props: to_props(&FargateProfileProps {
                    name: p.name.clone(),
                    selectors,
                    subnets,
                    pod_execution_role_arn: role,
                    tags,
                }),
                immutable: ["name", "selectors", "subnets", "pod_execution_role_arn"].map(String::from).to_vec(),
                depends_on: deps,
                cost: Cost::new(2, 2, 2),
            });
        }
        Ok(out)
    }

    /// The names of the cluster's Fargate profiles, every page.
    pub(super) async fn list_fargate_profiles(&self) -> Result<Vec<String>, StepError> {
        super::discover::pages(|token| async move {
            let r = self
                .calls
                .read(|| self.eks.list_fargate_profiles().cluster_name(&self.name).set_next_token(token.clone()).send())
                .await
                .map_err(|e| step_error(format!("ListFargateProfiles {}", self.name), e))?;
            Ok((r.fargate_profile_names().to_vec(), r.next_token().map(String::from)))
        })
        .await
    }

    pub(super) async fn describe_fargate_profile(&self, name: &str) -> Result<Option<FargateProfile>, StepError> {
        match self
            .calls
            .read(|| self.eks.describe_fargate_profile().cluster_name(&self.name).fargate_profile_name(name).send())
            .await
        {
            Ok(r) => Ok(r.fargate_profile().cloned()),
            Err(e) if is_not_found(error_code(&e)) => Ok(None),
            Err(e) => Err(step_error(format!("DescribeFargateProfile {name}"), e)),
        }
    }

    /// A profile, when this environment owns it.
    pub(super) async fn observe_fargate_profile(
        &self,
        name: &str,
        key_of: &(dyn Fn(&str) -> String + Sync),
    ) -> Result<Option<Observed>, StepError> {
        let r = retry(&self.reads, || async { self.describe_fargate_profile(name).await }).await?;
        let Some(p) = r else { return Ok(None) };
        if !tags::is_owned(&tag_map(p.tags()), &self.env, COMPONENT) {
            return Ok(None);
        }
        Ok(Some(observed_fargate_profile(&self.env, &p, key_of)))
    }

    async fn wait_fargate_profile(&self, ctx: &OpContext, name: &str, gone: bool) -> Result<(), StepError> {
        let what = format!("Fargate profile {name}");
        self.wait_member(ctx, &what, "eks-fargate-profile", None, gone, FAILED, || async {
            Ok(self.describe_fargate_profile(name).await?.map(|p| Member {
                status: p.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
                version: None,
                health: health(p.health().map(|h| h.issues())),
            }))
        })
        .await
    }

    pub(super) async fn create_fargate_profile(
        &self,
        op: &Operation,
        ctx: &OpContext,
    ) -> Result<Option<String>, StepError> {
        let s = &op.step;
        let w: FargateProfileProps =
            from_props(&s.key, &s.desired.clone().unwrap_or_default()).map_err(StepError::permanent)?;
        let name = w.name.clone();
        let _one_at_a_time = self.fargate_lock.lock().await;
        match self.describe_fargate_profile(&name).await? {
            // a create that happened before a crash or a lost answer: wait for it
            Some(p) if tags::is_owned(&tag_map(p.tags()), &self.env, COMPONENT) => {
                if p.status().is_some_and(|st| st.as_str() == "DELETING") {
                    self.wait_fargate_profile(ctx, &name, true).await?;
                } else {
                    self.wait_fargate_profile(ctx, &name, false).await?;
                    return Ok(Some(name));
                }
            }
            Some(_) => {
                return Err(StepError::permanent(format!(
                    "Fargate profile {name} exists in cluster {} and is not owned by environment {}; remove it or rename the profile",
                    self.name, self.env
                )))
            }
            None => {}
        }
        let selectors: Vec<FargateProfileSelector> = w
            .selectors
            .iter()
            .map(|sel| {
                FargateProfileSelector::builder()
                    .namespace(&sel.namespace)
                    .set_labels(
                        Some(sel.labels.clone().into_iter().collect::<HashMap<_, _>>()).filter(|l| !l.is_empty()),
                    )
                    .build()
            })
            .collect();
        let subnets = w.subnets.iter().map(|k| self.resolve(ctx, k)).collect::<Result<Vec<_>, _>>()?;
        self.calls
            .create(|| {
                self.eks
                    .create_fargate_profile()
                    .cluster_name(&self.name)
                    .fargate_profile_name(&name)
                    .pod_execution_role_arn(&w.pod_execution_role_arn)
                    .set_selectors(Some(selectors.clone()))
                    .set_subnets(Some(subnets.clone()))
                    .set_tags(Some(self.tags_over(&s.key, &w.tags)))
                    .client_request_token(ctx.client_token(s))
                    .send()
            })
            .await
            .map_err(|e| busy(format!("CreateFargateProfile {name}"), e))?;
        self.wait_fargate_profile(ctx, &name, false).await?;
        Ok(Some(name))
    }

    pub(super) async fn update_fargate_profile(
        &self,
        op: &Operation,
        _ctx: &OpContext,
    ) -> Result<Option<String>, StepError> {
        let s = &op.step;
        let w: FargateProfileProps =
            from_props(&s.key, &s.desired.clone().unwrap_or_default()).map_err(StepError::permanent)?;
        // only the tags change in place: every other field is immutable and replaces the profile
        if let Some(arn) = s.observed.as_ref().and_then(|o| text(o, "arn")) {
            let t = self.tags_over(&s.key, &w.tags);
            self.calls
                .read(|| self.eks.tag_resource().resource_arn(&arn).set_tags(Some(t.clone())).send())
                .await
                .map_err(|e| step_error(format!("TagResource {arn}"), e))?;
        }
        Ok(s.physical_id.clone())
    }

    pub(super) async fn delete_fargate_profile(
        &self,
        op: &Operation,
        ctx: &OpContext,
    ) -> Result<Option<String>, StepError> {
        let name = op.step.physical_id.clone().unwrap_or_default();
        let _one_at_a_time = self.fargate_lock.lock().await;
        match self
            .calls
            .read(|| self.eks.delete_fargate_profile().cluster_name(&self.name).fargate_profile_name(&name).send())
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(error_code(&e)) => return Ok(Some(name)),
            Err(e) => return Err(busy(format!("DeleteFargateProfile {name}"), e)),
        }
        self.wait_fargate_profile(ctx, &name, true).await?;
        Ok(Some(name))
    }
}

/// A profile as EKS reports it, in the shape of [`FargateProfileProps`] (plus its ARN and status). `key_of`
/// maps subnet IDs to the network component's keys.
pub(super) fn observed_fargate_profile(
    env: &str,
    p: &FargateProfile,
    key_of: &(dyn Fn(&str) -> String + Sync),
) -> Observed {
    let name = p.fargate_profile_name().unwrap_or_default().to_string();
    let mut selectors: Vec<eksodus_core::spec::FargateSelector> = p
        .selectors()
        .iter()
        .map(|s| eksodus_core::spec::FargateSelector {
            namespace: s.namespace().unwrap_or_default().to_string(),
            labels: s.labels().map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default(),
        })
        .collect();
    selectors.sort();
    let mut subnets: Vec<String> = p.subnets().iter().map(|s| key_of(s)).collect();
    subnets.sort();
    let role = p.pod_execution_role_arn().unwrap_or_default().to_string();
    let mut deps = vec![CLUSTER_KEY.to_string()];
    // the role eksodus made outlives the profiles that run as it
    if role.ends_with(&format!("/{}", eksodus_access::iam::role_name(env, "fargate"))) {
        deps.push(FARGATE_ROLE_KEY.to_string());
    }
    deps.extend(subnets.iter().filter(|s| !is_physical(s)).cloned());
    let mut props = to_props(&FargateProfileProps {
        name: name.clone(),
        selectors,
        subnets,
        pod_execution_role_arn: role,
        tags: tag_map(p.tags()),
    });
    props.insert("arn".into(), json!(p.fargate_profile_arn()));
    props.insert("status".into(), json!(p.status().map(|s| s.as_str())));
    Observed {
        key: fargate_profile_key(&name),
        kind: "eks-fargate-profile".into(),
        physical_id: name,
        props,
        depends_on: deps,
        delete_cost: 2,
    }
}
