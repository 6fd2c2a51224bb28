//! The launch templates eksodus makes for nodegroups (kind `ec2-launch-template`, key `lt/<nodegroup>`).
//!
//! Found by ownership tags, like every other resource. A template is never edited in place: a change of content
//! is a new version, made the default, and the nodegroup is moved to it (`UpdateNodegroupVersion`), which
//! rolls its nodes. Each version's description carries the digest of its content
//! ([`LaunchTemplateProps::digest`]), so discovery knows which content a nodegroup runs, and a retried create
//! finds the version it made instead of making another. The name is unique per account and region, so a create
//! whose answer was lost fails on the retry with `AlreadyExists`, and the template is adopted when it carries
//! this environment's tags.

use aws_sdk_ec2::types::{
    Filter, LaunchTemplateBlockDeviceMappingRequest, LaunchTemplateEbsBlockDeviceRequest,
    LaunchTemplateHttpTokensState, LaunchTemplateInstanceMetadataEndpointState,
    LaunchTemplateInstanceMetadataOptionsRequest, LaunchTemplateTagSpecificationRequest, LaunchTemplateVersion,
    RequestLaunchTemplateData, ResourceType, Tag, TagSpecification, VolumeType,
};

use super::*;

/// What each version's description starts with, before the digest of its content.
const DESCRIPTION: &str = "eksodus ";

/// A template discovery found.
#[derive(Debug, Clone)]
pub(super) struct FoundTemplate {
    /// As an observed resource, with the content of its default version.
    pub observed: Observed,
    /// Its ID.
    pub id: String,
    /// Version number → the digest in its description (versions eksodus made).
    pub digests: BTreeMap<i64, String>,
}

pub(super) fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// The EC2 filters that list what this environment's EKS component owns (tags are checked again on each
/// result: moto ignores tag filters on some kinds).
pub(super) fn owned_filters(env: &str) -> [Filter; 2] {
    [filter(&format!("tag:{}", tags::ENVIRONMENT), env), filter(&format!("tag:{}", tags::COMPONENT), COMPONENT)]
}

/// An EC2 resource's tags, when they say this environment's EKS component owns it.
pub(super) fn owned_tags(env: &str, t: &[Tag]) -> Option<BTreeMap<String, String>> {
    let tg: BTreeMap<String, String> =
        t.iter().filter_map(|x| Some((x.key()?.to_string(), x.value()?.to_string()))).collect();
    tags::is_owned(&tg, env, COMPONENT).then_some(tg)
}

/// The content of a template version, in the shape of [`LaunchTemplateProps`].
pub(super) fn observed_props(name: &str, v: &LaunchTemplateVersion) -> Map<String, Value> {
    let d = v.launch_template_data();
    let bdm = d.and_then(|d| d.block_device_mappings().first());
    let ebs = bdm.and_then(|b| b.ebs());
    let md = d.and_then(|d| d.metadata_options());
    let mut groups: Vec<String> = d.map(|d| d.security_group_ids().to_vec()).unwrap_or_default();
    groups.sort();
    let instance_tags: BTreeMap<String, String> = d
        .map(|d| d.tag_specifications())
        .unwrap_or_default()
        .iter()
        .filter(|t| t.resource_type() == Some(&ResourceType::Instance))
        .flat_map(|t| t.tags())
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
        .collect();
    let mut p = props(json!({
        "name": name,
        "device": bdm.and_then(|b| b.device_name()),
        "volume_size": ebs.and_then(|e| e.volume_size()),
        "volume_type": ebs.and_then(|e| e.volume_type()).map(|t| t.as_str()),
        "iops": ebs.and_then(|e| e.iops()),
        "throughput": ebs.and_then(|e| e.throughput()),
        "encrypted": ebs.and_then(|e| e.encrypted()).unwrap_or(false),
        "kms_key": ebs.and_then(|e| e.kms_key_id()),
        "imds_v2_required": md.and_then(|m| m.http_tokens()) == Some(&LaunchTemplateHttpTokensState::Required),
        "hop_limit": md.and_then(|m| m.http_put_response_hop_limit()),
        "security_groups": groups,
        "user_data": d.and_then(|d| d.user_data()).and_then(crate::userdata::decode),
        "instance_tags": instance_tags,
    }));
    // as the desired side serializes them: absent when the template names no AMI or key pair
    if let Some(ami) = d.and_then(|d| d.image_id()) {
        p.insert("image_id".into(), json!(ami));
    }
    if let Some(k) = d.and_then(|d| d.key_name()) {
        p.insert("key_name".into(), json!(k));
    }
    p
}

/// Replaces a nodegroup's template ID and version number with the template's key and the digest of the
/// content it runs, as the desired side has them (a version eksodus did not make keeps its number).
pub(super) fn recognise(o: &mut Observed, templates: &[FoundTemplate]) {
    let Some(id) = o.props.get("launch_template").and_then(Value::as_str).map(String::from) else { return };
    let Some(t) = templates.iter().find(|t| t.id == id) else { return };
    let number = o.props.get("launch_template_version").and_then(Value::as_str).and_then(|v| v.parse::<i64>().ok());
    let version = match number.and_then(|n| t.digests.get(&n)) {
        Some(d) => d.clone(),
        None => format!("version {}", number.map(|n| n.to_string()).unwrap_or_default()),
    };
    o.props.insert("launch_template".into(), json!(t.observed.key));
    o.props.insert("launch_template_version".into(), json!(version));
    if !o.depends_on.contains(&t.observed.key) {
        o.depends_on.push(t.observed.key.clone());
    }
}

/// What EC2 takes for a template's content.
fn request_data(w: &LaunchTemplateProps, groups: &[String]) -> RequestLaunchTemplateData {
    let ebs = LaunchTemplateEbsBlockDeviceRequest::builder()
        .volume_size(w.volume_size as i32)
        .volume_type(VolumeType::from(w.volume_type.as_str()))
        .set_iops(w.iops.map(|i| i as i32))
        .set_throughput(w.throughput.map(|t| t as i32))
        .encrypted(w.encrypted)
        .set_kms_key_id(w.kms_key.clone())
        .delete_on_termination(true)
        .build();
    let tags: Vec<Tag> = w.instance_tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
    let tag_specs = (!tags.is_empty()).then(|| {
        [ResourceType::Instance, ResourceType::Volume]
            .into_iter()
            .map(|r| {
                LaunchTemplateTagSpecificationRequest::builder().resource_type(r).set_tags(Some(tags.clone())).build()
            })
            .collect::<Vec<_>>()
    });
    RequestLaunchTemplateData::builder()
        .block_device_mappings(
            LaunchTemplateBlockDeviceMappingRequest::builder().device_name(&w.device).ebs(ebs).build(),
        )
        .metadata_options(
            LaunchTemplateInstanceMetadataOptionsRequest::builder()
                .http_endpoint(LaunchTemplateInstanceMetadataEndpointState::Enabled)
                .http_tokens(if w.imds_v2_required {
                    LaunchTemplateHttpTokensState::Required
                } else {
                    LaunchTemplateHttpTokensState::Optional
                })
                .http_put_response_hop_limit(i32::from(w.hop_limit))
                .build(),
        )
        .set_image_id(w.image_id.clone())
        .set_security_group_ids((!groups.is_empty()).then(|| groups.to_vec()))
        .set_key_name(w.key_name.clone())
        .set_user_data(w.user_data.as_deref().map(crate::userdata::encode))
        .set_tag_specifications(tag_specs)
        .build()
}

impl Eks {
    /// The launch templates this environment owns, each with its versions' digests (one listing, and one
    /// listing of versions per template).
    pub(super) async fn discover_templates(&self) -> Result<Vec<FoundTemplate>, StepError> {
        let listed = retry(&self.reads, || async {
            self.ec2_calls
                .read_step("DescribeLaunchTemplates", || {
                    self.ec2
                        .describe_launch_templates()
                        .set_filters(Some(owned_filters(&self.env).to_vec()))
                        .max_results(200)
                        .send()
                })
                .await
        })
        .await?;
        let owned: Vec<(String, String, String, i64)> = listed
            .launch_templates()
            .iter()
            .filter_map(|t| {
                let tg = owned_tags(&self.env, t.tags())?;
                Some((
                    t.launch_template_id()?.to_string(),
                    t.launch_template_name().unwrap_or_default().to_string(),
                    tg.get(tags::RESOURCE)?.clone(),
                    t.default_version_number().unwrap_or(1),
                ))
            })
            .collect();
        try_join_all(owned.into_iter().map(|(id, name, key, default)| async move {
            let versions = self.template_versions(&id).await?;
            let digests = versions
                .iter()
                .filter_map(|v| {
                    let d = v.version_description()?.strip_prefix(DESCRIPTION)?;
                    Some((v.version_number()?, d.to_string()))
                })
                .collect();
            let current = versions.iter().find(|v| v.version_number() == Some(default));
            let mut p = current.map(|v| observed_props(&name, v)).unwrap_or_default();
            p.insert("name".into(), json!(name));
            let groups = p.get("security_groups").and_then(Value::as_array).is_some_and(|g| !g.is_empty());
            Ok::<_, StepError>(FoundTemplate {
                observed: Observed {
                    key,
                    kind: "ec2-launch-template".into(),
                    physical_id: id.clone(),
                    props: p,
                    depends_on: if groups { vec![CLUSTER_KEY.to_string()] } else { vec![] },
                    delete_cost: 1,
                },
                id,
                digests,
            })
        }))
        .await
    }

    /// Every version of a template.
    async fn template_versions(&self, id: &str) -> Result<Vec<LaunchTemplateVersion>, StepError> {
        retry(&self.reads, || async {
            let mut out = Vec::new();
            let mut token = None;
            loop {
                let r = self
                    .ec2_calls
                    .read_step(format!("DescribeLaunchTemplateVersions {id}"), || {
                        self.ec2
                            .describe_launch_template_versions()
                            .launch_template_id(id)
                            .max_results(200)
                            .set_next_token(token.clone())
                            .send()
                    })
                    .await?;
                out.extend(r.launch_template_versions().iter().cloned());
                token = r.next_token().filter(|t| !t.is_empty()).map(String::from);
                if token.is_none() {
                    return Ok(out);
                }
            }
        })
        .await
    }

    /// The number of the version of template `id` whose content has `digest`.
    pub(super) async fn template_version_number(&self, id: &str, digest: &str) -> Result<Option<i64>, StepError> {
        Ok(self.template_version(id, digest).await?.map(|(n, _)| n))
    }

    /// The newest version of template `id` holding the content with `digest`, and whether it is the default.
    async fn template_version(&self, id: &str, digest: &str) -> Result<Option<(i64, bool)>, StepError> {
        let want = format!("{DESCRIPTION}{digest}");
        Ok(self
            .template_versions(id)
            .await?
            .iter()
            .filter(|v| v.version_description() == Some(want.as_str()))
            .filter_map(|v| Some((v.version_number()?, v.default_version().unwrap_or(false))))
            .max_by_key(|(n, _)| *n))
    }

    /// The template's security groups as EC2 takes them: a group of the network component's (a nodegroup's
    /// SSH group) is named by its key in the properties, so that the digest is known before the group exists.
    fn template_groups(&self, ctx: &OpContext, w: &LaunchTemplateProps) -> Result<Vec<String>, StepError> {
        w.security_groups.iter().map(|g| self.resolve(ctx, g)).collect()
    }

    /// The ID of the template named `name` when it exists; an error when it is not this environment's.
    async fn find_template(&self, name: &str) -> Result<Option<String>, StepError> {
        let r = self
            .ec2_calls
            .read(|| self.ec2.describe_launch_templates().filters(filter("launch-template-name", name)).send())
            .await
            .map_err(|e| step_error(format!("DescribeLaunchTemplates {name}"), e))?;
        let Some(t) = r.launch_templates().first() else { return Ok(None) };
        let tg: BTreeMap<String, String> =
            t.tags().iter().filter_map(|x| Some((x.key()?.to_string(), x.value()?.to_string()))).collect();
        if !tags::is_owned(&tg, &self.env, COMPONENT) {
            return Err(StepError::permanent(format!(
                "launch template {name} exists and is not owned by environment {}",
                self.env
            )));
        }
        Ok(t.launch_template_id().map(String::from))
    }

    /// Makes the template's default version hold `w`: the version with its digest when one exists (a retry,
    /// or a return to earlier content), a new one otherwise.
    async fn ensure_version(
        &self,
        ctx: &OpContext,
        id: &str,
        w: &LaunchTemplateProps,
        token: &str,
    ) -> Result<(), StepError> {
        let digest = w.digest();
        let groups = self.template_groups(ctx, w)?;
        let number = match self.template_version(id, &digest).await? {
            // already the default (an adopt after a lost answer, or nothing to do): no write
            Some((_, true)) => return Ok(()),
            Some((n, false)) => n,
            None => {
                let r = self
                    .ec2_calls
                    .create(|| {
                        self.ec2
                            .create_launch_template_version()
                            .launch_template_id(id)
                            .version_description(format!("{DESCRIPTION}{digest}"))
                            .launch_template_data(request_data(w, &groups))
                            .client_token(token)
                            .send()
                    })
                    .await;
                match r {
                    Ok(r) => r.launch_template_version().and_then(|v| v.version_number()).ok_or_else(|| {
                        StepError::permanent(format!("CreateLaunchTemplateVersion {id} answered no version number"))
                    })?,
                    // the answer of the first try was lost: the version exists now
                    Err(e) if ctx.attempt > 1 && error_code(&e).is_some() => {
                        match self.template_version_number(id, &digest).await? {
                            Some(n) => n,
                            None => return Err(step_error(format!("CreateLaunchTemplateVersion {id}"), e)),
                        }
                    }
                    Err(e) => return Err(step_error(format!("CreateLaunchTemplateVersion {id}"), e)),
                }
            }
        };
        self.ec2_calls
            .read_step(format!("ModifyLaunchTemplate {id}"), || {
                self.ec2.modify_launch_template().launch_template_id(id).default_version(number.to_string()).send()
            })
            .await?;
        Ok(())
    }

    pub(super) async fn create_template(&self, op: &Operation, ctx: &OpContext) -> Result<Option<String>, StepError> {
        let s = &op.step;
        let w: LaunchTemplateProps =
            from_props(&s.key, &s.desired.clone().unwrap_or_default()).map_err(StepError::permanent)?;
        let token = ctx.client_token(s);
        if ctx.attempt > 1 {
            if let Some(id) = self.find_template(&w.name).await? {
                self.ensure_version(ctx, &id, &w, &token).await?;
                return Ok(Some(id));
            }
        }
        let own: Vec<Tag> =
            self.owner_tags(&s.key).into_iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
        let groups = self.template_groups(ctx, &w)?;
        let r = self
            .ec2_calls
            .create(|| {
                self.ec2
                    .create_launch_template()
                    .launch_template_name(&w.name)
                    .version_description(format!("{DESCRIPTION}{}", w.digest()))
                    .launch_template_data(request_data(&w, &groups))
                    .tag_specifications(
                        TagSpecification::builder()
                            .resource_type(ResourceType::LaunchTemplate)
                            .set_tags(Some(own.clone()))
                            .build(),
                    )
                    .client_token(&token)
                    .send()
            })
            .await;
        match r {
            Ok(r) => r
                .launch_template()
                .and_then(|t| t.launch_template_id())
                .map(|id| Some(id.to_string()))
                .ok_or_else(|| StepError::permanent(format!("CreateLaunchTemplate {} answered no ID", w.name))),
            Err(e) if error_code(&e) == Some("InvalidLaunchTemplateName.AlreadyExistsException") => {
                let Some(id) = self.find_template(&w.name).await? else {
                    return Err(step_error(format!("CreateLaunchTemplate {}", w.name), e));
                };
                self.ensure_version(ctx, &id, &w, &token).await?;
                Ok(Some(id))
            }
            Err(e) => Err(step_error(format!("CreateLaunchTemplate {}", w.name), e)),
        }
    }

    pub(super) async fn update_template(&self, op: &Operation, ctx: &OpContext) -> Result<Option<String>, StepError> {
        let s = &op.step;
        let w: LaunchTemplateProps =
            from_props(&s.key, &s.desired.clone().unwrap_or_default()).map_err(StepError::permanent)?;
        let id = s.physical_id.clone().unwrap_or_default();
        self.ensure_version(ctx, &id, &w, &ctx.client_token(s)).await?;
        Ok(Some(id))
    }

    pub(super) async fn delete_template(&self, op: &Operation) -> Result<Option<String>, StepError> {
        let id = op.step.physical_id.clone().unwrap_or_default();
        match self.ec2_calls.read(|| self.ec2.delete_launch_template().launch_template_id(&id).send()).await {
            Ok(_) => Ok(Some(id)),
            // gone already (a retry after a lost answer): EC2 says so by ID; moto answers the name's code
            Err(e)
                if error_code(&e).is_some_and(|c| {
                    c.starts_with("InvalidLaunchTemplateId.NotFound")
                        || c == "InvalidLaunchTemplateName.NotFoundException"
                }) =>
            {
                Ok(Some(id))
            }
            Err(e) => Err(step_error(format!("DeleteLaunchTemplate {id}"), e)),
        }
    }

    /// The template ID and version number a nodegroup is created with or moved to: for eksodus's template
    /// (a key) the version with the wanted digest, for the user's the ID and number as given.
    pub(super) async fn template_for(
        &self,
        ctx: &OpContext,
        template: &str,
        version: &str,
    ) -> Result<(String, String), StepError> {
        if !template.starts_with("lt/") {
            return Ok((template.to_string(), version.to_string()));
        }
        let id = ctx.physical_id(template)?;
        // transient: EC2 is eventually consistent, and a version just made may not be listed yet
        let number = self.template_version_number(&id, version).await?.ok_or_else(|| {
            StepError::transient(format!("launch template {id} has no version with content {version} (yet)"))
        })?;
        Ok((id, number.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props() -> LaunchTemplateProps {
        LaunchTemplateProps {
            name: "shop-general".into(),
            image_id: None,
            device: "/dev/xvda".into(),
            volume_size: 80,
            volume_type: "gp3".into(),
            iops: Some(6000),
            throughput: Some(250),
            encrypted: true,
            kms_key: Some("arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab".into()),
            imds_v2_required: true,
            hop_limit: 1,
            security_groups: vec!["sg-0aaa".into(), "sg-0bbb".into()],
            key_name: None,
            user_data: Some("[settings.kubernetes]\nmax-pods = 110\n".into()),
            instance_tags: [("Name".to_string(), "shop-node".to_string()), ("team".into(), "shop".into())].into(),
        }
    }

    /// What EC2 answers for a version made from `w` (the request's content as the response shape).
    fn answered(w: &LaunchTemplateProps) -> LaunchTemplateVersion {
        use aws_sdk_ec2::types::{
            LaunchTemplateBlockDeviceMapping, LaunchTemplateEbsBlockDevice, LaunchTemplateInstanceMetadataOptions,
            LaunchTemplateTagSpecification, ResponseLaunchTemplateData,
        };
        let r = request_data(w, &w.security_groups);
        let b = &r.block_device_mappings()[0];
        let e = b.ebs().unwrap();
        let m = r.metadata_options().unwrap();
        let data = ResponseLaunchTemplateData::builder()
            .block_device_mappings(
                LaunchTemplateBlockDeviceMapping::builder()
                    .set_device_name(b.device_name().map(String::from))
                    .ebs(
                        LaunchTemplateEbsBlockDevice::builder()
                            .set_volume_size(e.volume_size())
                            .set_volume_type(e.volume_type().cloned())
                            .set_iops(e.iops())
                            .set_throughput(e.throughput())
                            .set_encrypted(e.encrypted())
                            .set_kms_key_id(e.kms_key_id().map(String::from))
                            .build(),
                    )
                    .build(),
            )
            .metadata_options(
                LaunchTemplateInstanceMetadataOptions::builder()
                    .set_http_tokens(m.http_tokens().cloned())
                    .set_http_put_response_hop_limit(m.http_put_response_hop_limit())
                    .build(),
            )
            .set_security_group_ids(Some(r.security_group_ids().to_vec()))
            .set_key_name(r.key_name().map(String::from))
            .set_image_id(r.image_id().map(String::from))
            .set_user_data(r.user_data().map(String::from))
            .set_tag_specifications(Some(
                r.tag_specifications()
                    .iter()
                    .map(|t| {
                        LaunchTemplateTagSpecification::builder()
                            .set_resource_type(t.resource_type().cloned())
                            .set_tags(Some(t.tags().to_vec()))
                            .build()
                    })
                    .collect(),
            ))
            .build();
        LaunchTemplateVersion::builder()
            .version_number(3)
            .version_description(format!("{DESCRIPTION}{}", w.digest()))
            .launch_template_data(data)
            .build()
    }

    #[test]
    fn what_is_sent_reads_back_as_the_same_properties() {
        for w in [
            props(),
            LaunchTemplateProps {
                iops: None,
                throughput: None,
                kms_key: None,
                user_data: None,
                security_groups: vec![],
                instance_tags: BTreeMap::new(),
                ..props()
            },
            LaunchTemplateProps {
                key_name: Some("shop-ops-1a2b3c4d".into()),
                image_id: Some("ami-0123456789abcdef0".into()),
                ..props()
            },
        ] {
            let got = observed_props(&w.name, &answered(&w));
            assert_eq!(from_props::<LaunchTemplateProps>("lt/general", &got).unwrap(), w);
        }
    }

    #[test]
    fn tags_go_to_instances_and_volumes_and_imdsv2_is_required() {
        let r = request_data(&props(), &props().security_groups);
        let kinds: Vec<_> = r.tag_specifications().iter().filter_map(|t| t.resource_type().cloned()).collect();
        assert_eq!(kinds, vec![ResourceType::Instance, ResourceType::Volume]);
        let m = r.metadata_options().unwrap();
        assert_eq!(m.http_tokens(), Some(&LaunchTemplateHttpTokensState::Required));
        assert_eq!(m.http_put_response_hop_limit(), Some(1));
        assert_eq!(crate::userdata::decode(r.user_data().unwrap()).as_deref(), props().user_data.as_deref());
    }

    #[test]
    fn the_digest_follows_content_not_the_name() {
        let a = props();
        let renamed = LaunchTemplateProps { name: "other".into(), ..props() };
        let bigger = LaunchTemplateProps { volume_size: 81, ..props() };
        assert_eq!(a.digest(), renamed.digest());
        assert_ne!(a.digest(), bigger.digest());
        assert!(a.digest().starts_with("sha256:") && a.digest().len() == 7 + 16);
    }

    #[test]
    fn a_nodegroup_on_a_version_eksodus_made_shows_its_digest() {
        let w = props();
        let found = FoundTemplate {
            observed: Observed {
                key: "lt/general".into(),
                kind: "ec2-launch-template".into(),
                physical_id: "lt-0abc".into(),
                props: Map::new(),
                depends_on: vec![],
                delete_cost: 1,
            },
            id: "lt-0abc".into(),
            digests: [(3, w.digest())].into(),
        };
        let ng = |version: &str| Observed {
            key: "eks/nodegroup/general".into(),
            kind: "eks-nodegroup".into(),
            physical_id: "general".into(),
            props: props_of(json!({"launch_template": "lt-0abc", "launch_template_version": version})),
            depends_on: vec![],
            delete_cost: 2,
        };
        let mut o = ng("3");
        recognise(&mut o, std::slice::from_ref(&found));
        assert_eq!(o.props["launch_template"], "lt/general");
        assert_eq!(o.props["launch_template_version"], json!(w.digest()));
        assert_eq!(o.depends_on, vec!["lt/general".to_string()]);
        // a version made by hand is shown by number, so the plan moves the nodes back to eksodus's
        let mut o = ng("4");
        recognise(&mut o, std::slice::from_ref(&found));
        assert_eq!(o.props["launch_template_version"], "version 4");
        // the user's template is left as EKS reports it
        let mut o = Observed {
            props: props_of(json!({"launch_template": "lt-0user", "launch_template_version": "7"})),
            ..ng("7")
        };
        recognise(&mut o, &[found]);
        assert_eq!(o.props["launch_template"], "lt-0user");
        assert_eq!(o.props["launch_template_version"], "7");
    }

    fn props_of(v: Value) -> Map<String, Value> {
        eksodus_core::plan::props(v)
    }
}
