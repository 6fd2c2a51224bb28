//! The IAM reconciler (feature `aws`): cluster and node roles, the cluster's OIDC provider, and IRSA roles,
//! discovered by path and ownership tags and applied through the engine.
//!
//! | key | kind | depends on |
//! |---|---|---|
//! | `role/cluster`, `role/node`, `role/auto-node` (Auto Mode's pools, unless the user names a role) | iam-role | |
//! | `role/fargate` (the pod execution role of Fargate profiles that name none) | iam-role | |
//! | `role/capability/<name>` (an EKS capability's role, unless it names one) | iam-role | |
//! | `role/hybrid-nodes` (the role hybrid nodes act as, unless `cluster.remote_network` names one) | iam-role | |
//! | `oidc` | oidc-provider | |
//! | `role/irsa/<namespace>/<name>` | iam-role | oidc |
//! | `role/pod/<namespace>/<name>` | iam-role | (EKS Pod Identity; its association is in `entries`) |
//!
//! Every role lives under `<access.iam.path><environment>/`, so one `ListRoles` call finds them all. A role's
//! inline policies (the well-known sets AWS publishes no managed policy for) are part of its properties, read
//! with it by `GetAccountAuthorizationDetails` and written with `PutRolePolicy`.

use std::collections::BTreeMap;

use aws_sdk_iam::types::Tag;
use aws_sdk_iam::Client;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use futures::future::try_join_all;
use serde_json::{json, Map, Value};

use eksodus_core::aws::{error_code, step_error, Calls};
use eksodus_core::engine::{
    retry, ApplyOptions, BoxFuture, ErrorClass, Executor, OpContext, OpKind, Operation, StepError,
};
use eksodus_core::plan::{self, Cost, Desired, Observed, Plan};
use eksodus_core::spec::{EnvironmentSpec, ServiceAccountRole};
use eksodus_core::tags;

use eksodus_core::spec::WellKnownPolicy;

use crate::policy::{self, PolicyDocument};
use crate::wellknown;

/// The component name in ownership tags.
pub const COMPONENT: &str = "access";

/// The resource kinds this reconciler executes.
pub const KINDS: &[&str] = &["iam-role", "oidc-provider"];

/// Every IAM action this module calls (kept complete by a test that watches the calls).
pub const ACTIONS: &[&str] = &[
    "iam:GetAccountAuthorizationDetails",
    "iam:GetRole",
    "iam:CreateRole",
    "iam:DeleteRole",
    "iam:TagRole",
    "iam:UpdateAssumeRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:DeleteRolePermissionsBoundary",
    "iam:ListAttachedRolePolicies",
    "iam:AttachRolePolicy",
    "iam:DetachRolePolicy",
    "iam:ListRolePolicies",
    "iam:GetRolePolicy",
    "iam:PutRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:ListInstanceProfilesForRole",
    "iam:RemoveRoleFromInstanceProfile",
    "iam:ListOpenIDConnectProviders",
    "iam:GetOpenIDConnectProvider",
    "iam:CreateOpenIDConnectProvider",
    "iam:DeleteOpenIDConnectProvider",
    "iam:TagOpenIDConnectProvider",
    "iam:AddClientIDToOpenIDConnectProvider",
    "iam:RemoveClientIDFromOpenIDConnectProvider",
    "iam:UpdateOpenIDConnectProviderThumbprint",
];

/// Reconciles one environment's IAM.
#[derive(Debug, Clone)]
pub struct Iam {
    iam: Client,
    env: String,
    partition: &'static str,
    user_tags: BTreeMap<String, String>,
    reads: ApplyOptions,
    calls: Calls,
}

/// How a call inside an operation turns its outcome into the step's (see `op_call`).
use eksodus_core::aws::Judge;

use eksodus_core::plan::props;

fn tag_map(t: &[Tag]) -> BTreeMap<String, String> {
    t.iter().map(|t| (t.key().to_string(), t.value().to_string())).collect()
}

/// The logical key of the node role a nodegroup with its own policies gets.
pub fn nodegroup_role_key(nodegroup: &str) -> String {
    format!("role/node/{nodegroup}")
}

/// The key of the role Auto Mode's built-in node pools run as, when eksodus makes it.
pub const AUTO_NODE_ROLE_KEY: &str = "role/auto-node";

/// The key of the Fargate pod execution role, when eksodus makes it.
pub const FARGATE_ROLE_KEY: &str = "role/fargate";

/// The key of the role hybrid nodes act as, when eksodus makes it.
pub const HYBRID_ROLE_KEY: &str = "role/hybrid-nodes";

/// The name of the inline policy of the hybrid nodes' role: what `nodeadm` calls.
pub const HYBRID_POLICY_NAME: &str = "eksodus-hybrid-nodes";

/// The ARN of the role hybrid nodes act as (`cluster.remote_network`): the user's `role_arn`, or the one
/// eksodus makes. `None` without hybrid nodes.
pub fn hybrid_role_arn(spec: &EnvironmentSpec, account: &str) -> Option<String> {
    let r = spec.cluster.as_ref()?.remote_network.as_ref()?;
    Some(r.role_arn.clone().unwrap_or_else(|| own_role_arn(spec, account, "hybrid-nodes")))
}

/// The logical key of the role eksodus makes for an EKS capability.
pub fn capability_role_key(capability: &str) -> String {
    format!("role/capability/{capability}")
}

/// The purpose part of a capability role's name (`<env>-capability-<name>`).
pub fn capability_role_purpose(capability: &str) -> String {
    format!("capability-{capability}")
}

/// A role name of at most 64 characters: the readable form, or its head plus a hash when too long.
pub fn role_name(env: &str, purpose: &str) -> String {
    let full = format!("{env}-{purpose}");
    if full.len() <= 64 {
        return full;
    }
    let h = full.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
    format!("{}-{:08x}", &full[..55], h as u32)
}

/// The ARN of the role a Pod Identity association gives its service account: the user's `role_arn`, or the
/// one eksodus makes (known before the role exists).
pub fn pod_identity_role_arn(spec: &EnvironmentSpec, account: &str, sa: &ServiceAccountRole) -> String {
    match &sa.role_arn {
        Some(r) => r.clone(),
        None => own_role_arn(spec, account, &format!("pod-{}-{}", sa.namespace, sa.name)),
    }
}

/// The ARN of the IRSA role a service account's `eks.amazonaws.com/role-arn` annotation names: the user's
/// `role_arn`, or the one eksodus makes.
pub fn irsa_role_arn(spec: &EnvironmentSpec, account: &str, sa: &ServiceAccountRole) -> String {
    match &sa.role_arn {
        Some(r) => r.clone(),
        None => own_role_arn(spec, account, &format!("{}-{}", sa.namespace, sa.name)),
    }
}

fn own_role_arn(spec: &EnvironmentSpec, account: &str, purpose: &str) -> String {
    format!(
        "arn:{}:iam::{account}:role{}{}",
        policy::partition(&spec.region),
        role_path(spec),
        role_name(&spec.name, purpose)
    )
}

/// The IAM path of an environment's roles.
pub fn role_path(spec: &EnvironmentSpec) -> String {
    let base = spec.access.as_ref().map(|a| a.iam.path.clone()).unwrap_or_else(|| "/eksodus/".into());
    format!("{base}{}/", spec.name)
}

/// Whether an IAM error is the eventual consistency of something just created (a new OIDC provider or role
/// not yet visible): worth retrying, bounded by the engine.
fn propagation(code: Option<&str>, message: &str) -> bool {
    match code {
        Some("MalformedPolicyDocument") => message.contains("Invalid principal"),
        Some("NoSuchEntity") => true,
        _ => false,
    }
}

fn iam_error<E>(what: String, e: SdkError<E, HttpResponse>) -> StepError
where
    E: aws_sdk_iam::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = error_code(&e).map(String::from);
    let mut se = step_error(what, e);
    if propagation(code.as_deref(), &se.message) {
        se.class = ErrorClass::Transient;
    }
    se
}

impl Iam {
    /// A reconciler for `spec`'s environment.
    pub fn new(iam: Client, spec: &EnvironmentSpec) -> Self {
        let calls = Calls::for_region("iam", &iam.config().region().map(|r| r.to_string()).unwrap_or_default());
        Iam {
            iam,
            env: spec.name.clone(),
            partition: policy::partition(&spec.region),
            user_tags: spec.tags.clone(),
            reads: ApplyOptions::default(),
            calls,
        }
    }

    /// Uses `opts`' retry policy for reads made outside the engine.
    pub fn with_retry(mut self, opts: ApplyOptions) -> Self {
        self.calls = self.calls.with_policy(opts.calls);
        self.reads = opts;
        self
    }

    /// Calls AWS through `calls` (keyed to the SDK configuration's region and endpoint, shared with every other
    /// client of the process that talks to the same place).
    pub fn with_calls(mut self, calls: Calls) -> Self {
        self.calls = calls.with_policy(*self.calls.policy());
        self
    }

    fn tags(&self, key: &str) -> Vec<Tag> {
        tags::ownership(&self.env, COMPONENT, key, &self.user_tags)
            .into_iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build().expect("key and value are set"))
            .collect()
    }

    /// The OIDC provider ARN for an issuer in `account`.
    pub fn provider_arn(&self, account: &str, issuer: &str) -> String {
        format!("arn:{}:iam::{account}:oidc-provider/{}", self.partition, issuer.trim_start_matches("https://"))
    }

    /// The resources `spec` wants. `issuer` is the cluster's OIDC issuer (IRSA needs it) and `account` the
    /// account ID (for the provider ARN in trust policies).
    pub fn desired(&self, spec: &EnvironmentSpec, issuer: Option<&str>, account: &str) -> Vec<Desired> {
        let access = spec.access.clone().unwrap_or_default();
        let path = role_path(spec);
        let boundary = access.iam.permissions_boundary.clone();
        let mut user_tags = Map::new();
        for (k, v) in &self.user_tags {
            user_tags.insert(k.clone(), json!(v));
        }
        let role = |key: &str,
                    name: String,
                    trust: PolicyDocument,
                    policies: Vec<String>,
                    well_known: &[WellKnownPolicy],
                    deps: Vec<String>| {
            let extra = wellknown::resolve(self.partition, well_known);
            let mut policies = policies;
            policies.extend(extra.managed);
            policies.sort();
            policies.dedup();
            let inline: Map<String, Value> = extra.inline.iter().map(|(n, d)| (n.clone(), d.canonical())).collect();
            Desired {
                key: key.into(),
                kind: "iam-role".into(),
                props: props(json!({
                    "name": name, "path": path, "trust": trust.canonical(), "boundary": boundary, "policies": policies,
                    "inline": inline, "tags": user_tags,
                })),
                immutable: vec!["name".into(), "path".into()],
                depends_on: deps,
                cost: Cost::new(2, 1, 3),
            }
        };
        let m = |n: &str| policy::managed(self.partition, n);
        // the VPC CNI's grant goes on the node roles unless aws-node has a role of its own; AWS's managed
        // policy covers IPv4 only, so an IPv6 cluster's CNI gets the IPv6 document inline instead
        let ipv6 = spec.ipv6_cluster();
        let cni_on_node = !access.iam.cni_irsa && !ipv6;
        // Auto Mode: EKS runs nodes, volumes and load balancers as the cluster role, tagging its sessions
        let auto = spec.cluster.as_ref().and_then(|c| c.auto_mode.as_ref());
        let cluster_trust = if auto.is_some() {
            PolicyDocument::trust_service_tagged("eks.amazonaws.com")
        } else {
            PolicyDocument::trust_service("eks.amazonaws.com")
        };
        let auto_policies = auto.map_or(&[][..], |_| policy::AUTO_MODE_CLUSTER_POLICIES);
        let mut out = vec![
            role(
                "role/cluster",
                role_name(&self.env, "cluster"),
                cluster_trust,
                policy::CLUSTER_POLICIES.iter().chain(auto_policies).map(|p| m(p)).collect(),
                &[],
                vec![],
            ),
            role(
                "role/node",
                role_name(&self.env, "node"),
                PolicyDocument::trust_service("ec2.amazonaws.com"),
                policy::NODE_POLICIES.iter().map(|p| m(p)).chain(cni_on_node.then(|| m(policy::CNI_POLICY))).collect(),
                &[],
                vec![],
            ),
        ];
        // the built-in node pools' nodes run as a role of their own (EKS refuses the cluster role for it)
        if auto.is_some_and(|a| a.owns_node_role()) {
            out.push(role(
                AUTO_NODE_ROLE_KEY,
                role_name(&self.env, "auto-node"),
                PolicyDocument::trust_service("ec2.amazonaws.com"),
                policy::AUTO_MODE_NODE_POLICIES.iter().map(|p| m(p)).collect(),
                &[],
                vec![],
            ));
        }
        // Fargate's pods run as a pod execution role, which eksodus makes unless every profile names one
        if spec.cluster.as_ref().is_some_and(|c| c.owns_fargate_role()) {
            out.push(role(
                FARGATE_ROLE_KEY,
                role_name(&self.env, "fargate"),
                PolicyDocument::trust_fargate(self.partition, &spec.region, account, &self.env),
                policy::FARGATE_POLICIES.iter().map(|p| m(p)).collect(),
                &[],
                vec![],
            ));
        }
        // an EKS capability acts as its capability role, both in AWS (ACK's calls) and, through the access
        // entry EKS makes for it, in the cluster; EKS assumes it and tags the session (AWS's "Amazon EKS
        // capability IAM role")
        for c in spec.cluster.iter().flat_map(|c| &c.capabilities).filter(|c| c.owns_role()) {
            let mut policies = c.attach_policy_arns.clone();
            policies.sort();
            policies.dedup();
            out.push(role(
                &capability_role_key(&c.name),
                role_name(&self.env, &capability_role_purpose(&c.name)),
                PolicyDocument::trust_service_tagged(policy::CAPABILITY_SERVICE),
                policies,
                &[],
                vec![],
            ));
        }
        // hybrid nodes register with an SSM hybrid activation of this role, which Systems Manager assumes for
        // them; `nodeadm` reads the cluster, the kubelet pulls images from ECR (AWS's "Prepare credentials for
        // hybrid nodes")
        if spec.cluster.as_ref().and_then(|c| c.remote_network.as_ref()).is_some_and(|r| r.owns_role()) {
            let mut d = role(
                HYBRID_ROLE_KEY,
                role_name(&self.env, "hybrid-nodes"),
                PolicyDocument::trust_service("ssm.amazonaws.com"),
                policy::HYBRID_NODE_POLICIES.iter().map(|p| m(p)).collect(),
                &[],
                vec![],
            );
            let doc = policy::hybrid_nodes(self.partition, &spec.region, account, &self.env);
            if let Some(Value::Object(inline)) = d.props.get_mut("inline") {
                inline.insert(HYBRID_POLICY_NAME.into(), doc.canonical());
            }
            out.push(d);
        }
        // a nodegroup with extra policies gets a node role of its own, so its policies reach only its nodes
        for n in spec.cluster.iter().flat_map(|c| &c.nodegroups) {
            if !n.has_own_role() {
                continue;
            }
            let mut policies: Vec<String> = policy::NODE_POLICIES
                .iter()
                .map(|p| m(p))
                .chain(cni_on_node.then(|| m(policy::CNI_POLICY)))
                .chain(n.iam.attach_policies.iter().cloned())
                .collect();
            policies.sort();
            policies.dedup();
            out.push(role(
                &nodegroup_role_key(&n.name),
                role_name(&self.env, &format!("node-{}", n.name)),
                PolicyDocument::trust_service("ec2.amazonaws.com"),
                policies,
                &n.iam.well_known,
                vec![],
            ));
        }
        let mut sas = access.service_accounts.clone();
        if access.iam.cni_irsa && !sas.iter().any(|s| s.namespace == "kube-system" && s.name == "aws-node") {
            sas.push(eksodus_core::spec::ServiceAccountRole {
                namespace: "kube-system".into(),
                name: "aws-node".into(),
                policies: if ipv6 { vec![] } else { vec![m(policy::CNI_POLICY)] },
                ..Default::default()
            });
        }
        // addons that call AWS get their service account's IRSA role (vpc-cni's is `cni_irsa` above)
        for a in spec.cluster.iter().flat_map(|c| &c.addons).filter(|a| a.has_policies()) {
            let Some((ns, name)) = eksodus_core::spec::addon_service_account(&a.name) else { continue };
            match sas.iter_mut().find(|s| s.namespace == ns && s.name == name) {
                Some(s) => {
                    for p in &a.policies {
                        if !s.policies.contains(p) {
                            s.policies.push(p.clone());
                        }
                    }
                    for w in &a.well_known {
                        if !s.well_known.contains(w) {
                            s.well_known.push(*w);
                        }
                    }
                    // validation refuses two documents for one role
                    if s.policy_document.is_none() {
                        s.policy_document = a.policy_document.clone();
                    }
                }
                None => sas.push(eksodus_core::spec::ServiceAccountRole {
                    namespace: ns.into(),
                    name: name.into(),
                    policies: a.policies.clone(),
                    well_known: a.well_known.clone(),
                    policy_document: a.policy_document.clone(),
                    ..Default::default()
                }),
            }
        }
        for sa in access.pod_identities.iter().filter(|s| s.makes_role()) {
            out.push(with_own_policy(
                role(
                    &format!("role/pod/{}/{}", sa.namespace, sa.name),
                    role_name(&self.env, &format!("pod-{}-{}", sa.namespace, sa.name)),
                    PolicyDocument::trust_pod_identity(),
                    sa.policies.clone(),
                    &sa.well_known,
                    vec![],
                ),
                sa,
            ));
        }
        if let Some(issuer) = issuer {
            let url = issuer.trim_start_matches("https://").to_string();
            out.push(Desired {
                key: "oidc".into(),
                kind: "oidc-provider".into(),
                props: props(json!({"url": url, "client_ids": ["sts.amazonaws.com"], "thumbprints": [policy::EKS_OIDC_THUMBPRINT], "tags": user_tags})),
                immutable: vec!["url".into()],
                depends_on: vec![],
                cost: Cost::new(1, 1, 1),
            });
            let provider = self.provider_arn(account, issuer);
            for sa in sas.iter().filter(|s| s.makes_role()) {
                out.push(with_own_policy(
                    role(
                        &format!("role/irsa/{}/{}", sa.namespace, sa.name),
                        role_name(&self.env, &format!("{}-{}", sa.namespace, sa.name)),
                        PolicyDocument::trust_service_account(&provider, issuer, &sa.namespace, &sa.name),
                        sa.policies.clone(),
                        &sa.well_known,
                        vec!["oidc".into()],
                    ),
                    sa,
                ));
            }
        }
        if ipv6 {
            let doc = policy::cni_ipv6(self.partition).canonical();
            for d in &mut out {
                let cni_role = if access.iam.cni_irsa {
                    d.key == "role/irsa/kube-system/aws-node" || d.key == "role/pod/kube-system/aws-node"
                } else {
                    d.key == "role/node" || d.key.starts_with(&nodegroup_role_key(""))
                };
                if let (true, Some(Value::Object(inline))) = (cni_role, d.props.get_mut("inline")) {
                    inline.insert(policy::CNI_IPV6_POLICY_NAME.into(), doc.clone());
                }
            }
        }
        out
    }

    /// Finds the owned roles (by path, then tags) and OIDC providers (by tags).
    pub async fn discover(&self, spec: &EnvironmentSpec) -> Result<Vec<Observed>, StepError> {
        Box::pin(self.discover_inner(spec)).await
    }

    async fn discover_inner(&self, spec: &EnvironmentSpec) -> Result<Vec<Observed>, StepError> {
        // One paginated GetAccountAuthorizationDetails gives every role with its trust policy, attached
        // policies, boundary and tags: two calls per role fewer than ListRoles + GetRole +
        // ListAttachedRolePolicies. The path keeps foreign roles out before the tags are even read.
        let path = role_path(spec);
        let roles = retry(&self.reads, || async {
            let mut out = Vec::new();
            let mut marker = None;
            loop {
                let r = self
                    .calls
                    .read(|| {
                        self.iam
                            .get_account_authorization_details()
                            .filter(aws_sdk_iam::types::EntityType::Role)
                            .set_marker(marker.clone())
                            .send()
                    })
                    .await
                    .map_err(|e| iam_error("GetAccountAuthorizationDetails".into(), e))?;
                out.extend(r.role_detail_list().iter().filter(|d| d.path() == Some(path.as_str())).cloned());
                marker = r.marker().map(String::from);
                if !r.is_truncated() || marker.is_none() {
                    break;
                }
            }
            Ok(out)
        })
        .await?;
        let mut out: Vec<Observed> = roles.iter().filter_map(|r| self.observe_role(r)).collect();
        let providers = retry(&self.reads, || async {
            self.calls
                .read(|| self.iam.list_open_id_connect_providers().send())
                .await
                .map_err(|e| iam_error("ListOpenIDConnectProviders".into(), e))
        })
        .await?;
        for p in providers.open_id_connect_provider_list() {
            let Some(arn) = p.arn() else { continue };
            let r = retry(&self.reads, || async {
                self.calls
                    .read(|| self.iam.get_open_id_connect_provider().open_id_connect_provider_arn(arn).send())
                    .await
                    .map_err(|e| iam_error(format!("GetOpenIDConnectProvider {arn}"), e))
            })
            .await?;
            let t = tag_map(r.tags());
            if !tags::is_owned(&t, &self.env, COMPONENT) {
                continue;
            }
            let mut client_ids = r.client_id_list().to_vec();
            client_ids.sort();
            out.push(Observed {
                key: t.get(tags::RESOURCE).cloned().unwrap_or_else(|| "oidc".into()),
                kind: "oidc-provider".into(),
                physical_id: arn.to_string(),
                props: props(json!({"url": r.url().map(|u| u.trim_start_matches("https://")), "client_ids": client_ids, "thumbprints": r.thumbprint_list(), "tags": t})),
                depends_on: vec![],
                delete_cost: 1,
            });
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// One role by name (the create-retry path): `GetRole` + `ListAttachedRolePolicies`.
    async fn observe_role_named(&self, name: &str) -> Result<Option<Observed>, StepError> {
        let (role, attached, inline) = retry(&self.reads, || async {
            let role = self
                .calls
                .read(|| self.iam.get_role().role_name(name).send())
                .await
                .map_err(|e| iam_error(format!("GetRole {name}"), e))?;
            let attached = self
                .calls
                .read(|| self.iam.list_attached_role_policies().role_name(name).send())
                .await
                .map_err(|e| iam_error(format!("ListAttachedRolePolicies {name}"), e))?;
            let names = self
                .calls
                .read(|| self.iam.list_role_policies().role_name(name).send())
                .await
                .map_err(|e| iam_error(format!("ListRolePolicies {name}"), e))?;
            let inline = try_join_all(names.policy_names().iter().map(|p| async move {
                let r = self
                    .calls
                    .read(|| self.iam.get_role_policy().role_name(name).policy_name(p).send())
                    .await
                    .map_err(|e| iam_error(format!("GetRolePolicy {p} of {name}"), e))?;
                Ok::<_, StepError>(
                    aws_sdk_iam::types::PolicyDetail::builder()
                        .policy_name(p)
                        .policy_document(r.policy_document())
                        .build(),
                )
            }))
            .await?;
            Ok((role, attached, inline))
        })
        .await?;
        let Some(r) = role.role() else { return Ok(None) };
        let detail = aws_sdk_iam::types::RoleDetail::builder()
            .role_name(r.role_name())
            .path(r.path())
            .set_assume_role_policy_document(r.assume_role_policy_document().map(String::from))
            .set_attached_managed_policies(Some(attached.attached_policies().to_vec()))
            .set_permissions_boundary(r.permissions_boundary().cloned())
            .set_role_policy_list(Some(inline))
            .set_tags(Some(r.tags().to_vec()))
            .build();
        Ok(self.observe_role(&detail))
    }

    fn observe_role(&self, r: &aws_sdk_iam::types::RoleDetail) -> Option<Observed> {
        let t = tag_map(r.tags());
        if !tags::is_owned(&t, &self.env, COMPONENT) {
            return None;
        }
        let key = t.get(tags::RESOURCE).cloned()?;
        let mut policies: Vec<String> =
            r.attached_managed_policies().iter().filter_map(|p| p.policy_arn().map(String::from)).collect();
        policies.sort();
        let trust = r.assume_role_policy_document().and_then(PolicyDocument::canonical_from_iam).unwrap_or(Value::Null);
        // a document that does not parse as eksodus writes them compares unequal and is put again
        let inline: Map<String, Value> = r
            .role_policy_list()
            .iter()
            .filter_map(|p| {
                let doc = p.policy_document().and_then(PolicyDocument::canonical_from_iam).unwrap_or(Value::Null);
                Some((p.policy_name()?.to_string(), doc))
            })
            .collect();
        let deps = if key.starts_with("role/irsa/") { vec!["oidc".to_string()] } else { vec![] };
        let name = r.role_name().unwrap_or_default();
        Some(Observed {
            key,
            kind: "iam-role".into(),
            physical_id: name.to_string(),
            props: props(json!({
                "name": name, "path": r.path(), "trust": trust,
                "boundary": r.permissions_boundary().and_then(|b| b.permissions_boundary_arn()),
                "policies": policies, "inline": inline, "tags": t,
            })),
            depends_on: deps,
            delete_cost: 3,
        })
    }

    /// Plans the IAM part of `spec`.
    pub async fn plan(&self, spec: &EnvironmentSpec, issuer: Option<&str>, account: &str) -> Result<Plan, StepError> {
        let observed = self.discover(spec).await?;
        Ok(plan::diff(&self.desired(spec, issuer, account), &observed))
    }

    /// The plan that removes every owned role and provider.
    pub async fn destroy_plan(&self, spec: &EnvironmentSpec) -> Result<Plan, StepError> {
        Ok(Plan::destroy(&self.discover(spec).await?))
    }

    async fn sync_role(
        &self,
        name: &str,
        want: &Map<String, Value>,
        have: Option<&Map<String, Value>>,
    ) -> Result<(), StepError> {
        let list = |m: Option<&Map<String, Value>>, k: &str| -> Vec<String> {
            m.and_then(|m| m.get(k))
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
                .unwrap_or_default()
        };
        let want_p = list(Some(want), "policies");
        let have_p = list(have, "policies");
        try_join_all(want_p.iter().filter(|p| !have_p.contains(p)).map(|p| async move {
            self.calls
                .read(|| self.iam.attach_role_policy().role_name(name).policy_arn(p).send())
                .await
                .map_err(|e| iam_error(format!("AttachRolePolicy {p} to {name}"), e))
                .map(|_| ())
        }))
        .await?;
        try_join_all(have_p.iter().filter(|p| !want_p.contains(p)).map(|p| async move {
            match self.calls.read(|| self.iam.detach_role_policy().role_name(name).policy_arn(p).send()).await {
                Ok(_) => Ok(()),
                Err(e) if error_code(&e) == Some("NoSuchEntity") => Ok(()),
                Err(e) => Err(iam_error(format!("DetachRolePolicy {p} from {name}"), e)),
            }
        }))
        .await?;
        let empty = Map::new();
        let want_i = want.get("inline").and_then(Value::as_object).unwrap_or(&empty);
        let have_i = have.and_then(|h| h.get("inline")).and_then(Value::as_object).unwrap_or(&empty);
        try_join_all(want_i.iter().filter(|(n, d)| have_i.get(*n) != Some(*d)).map(|(p, d)| async move {
            let doc: PolicyDocument = serde_json::from_value(d.clone())
                .map_err(|e| StepError::permanent(format!("inline policy {p} of {name}: {e}")))?;
            let text = serde_json::to_string(&doc).expect("serializable");
            self.calls
                .read(|| self.iam.put_role_policy().role_name(name).policy_name(p).policy_document(&text).send())
                .await
                .map_err(|e| iam_error(format!("PutRolePolicy {p} of {name}"), e))
                .map(|_| ())
        }))
        .await?;
        try_join_all(have_i.keys().filter(|p| !want_i.contains_key(*p)).map(|p| async move {
            match self.calls.read(|| self.iam.delete_role_policy().role_name(name).policy_name(p).send()).await {
                Ok(_) => Ok(()),
                Err(e) if error_code(&e) == Some("NoSuchEntity") => Ok(()),
                Err(e) => Err(iam_error(format!("DeleteRolePolicy {p} of {name}"), e)),
            }
        }))
        .await?;
        let Some(have) = have else { return Ok(()) };
        if want.get("trust") != have.get("trust") {
            let doc: PolicyDocument = serde_json::from_value(want["trust"].clone())
                .map_err(|e| StepError::permanent(format!("trust policy of {name}: {e}")))?;
            self.calls
                .read(|| {
                    self.iam
                        .update_assume_role_policy()
                        .role_name(name)
                        .policy_document(serde_json::to_string(&doc).expect("serializable"))
                        .send()
                })
                .await
                .map_err(|e| iam_error(format!("UpdateAssumeRolePolicy {name}"), e))?;
        }
        if want.get("boundary") != have.get("boundary") {
            match want.get("boundary").and_then(Value::as_str) {
                Some(b) => {
                    self.calls
                        .read(|| {
                            self.iam.put_role_permissions_boundary().role_name(name).permissions_boundary(b).send()
                        })
                        .await
                        .map_err(|e| iam_error(format!("PutRolePermissionsBoundary {name}"), e))?;
                }
                None => {
                    self.calls
                        .read(|| self.iam.delete_role_permissions_boundary().role_name(name).send())
                        .await
                        .map_err(|e| iam_error(format!("DeleteRolePermissionsBoundary {name}"), e))?;
                }
            }
        }
        Ok(())
    }

    async fn create(&self, op: &Operation) -> Result<Option<String>, StepError> {
        let s = &op.step;
        let want = s.desired.clone().unwrap_or_default();
        let get = |k: &str| want.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        match s.kind.as_str() {
            "iam-role" => {
                let name = get("name");
                let doc: PolicyDocument = serde_json::from_value(want["trust"].clone())
                    .map_err(|e| StepError::permanent(format!("trust policy of {name}: {e}")))?;
                let mut req = self
                    .iam
                    .create_role()
                    .role_name(&name)
                    .path(get("path"))
                    .assume_role_policy_document(serde_json::to_string(&doc).expect("serializable"))
                    .description(format!("eksodus {} {}", self.env, s.key))
                    .set_tags(Some(self.tags(&s.key)));
                if let Some(b) = want.get("boundary").and_then(Value::as_str) {
                    req = req.permissions_boundary(b);
                }
                let have = match self.calls.read(|| req.clone().send()).await {
                    Ok(_) => None,
                    Err(e) if error_code(&e) == Some("EntityAlreadyExists") => {
                        // an earlier attempt created it (or someone else did: then it is not ours to take)
                        let observed = self.observe_role_named(&name).await?;
                        match observed {
                            Some(o) if o.key == s.key => Some(o.props),
                            _ => {
                                return Err(StepError::permanent(format!(
                                    "role {name} exists and is not owned by environment {}",
                                    self.env
                                )))
                            }
                        }
                    }
                    Err(e) => return Err(iam_error(format!("CreateRole {name}"), e)),
                };
                self.sync_role(&name, &want, have.as_ref()).await?;
                Ok(Some(name))
            }
            "oidc-provider" => {
                let url = get("url");
                let ids: Vec<String> = want["client_ids"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect();
                let thumbs: Vec<String> = want["thumbprints"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect();
                let r = self
                    .calls
                    .create(|| {
                        self.iam
                            .create_open_id_connect_provider()
                            .url(format!("https://{url}"))
                            .set_client_id_list(Some(ids.clone()))
                            .set_thumbprint_list(Some(thumbs.clone()))
                            .set_tags(Some(self.tags(&s.key)))
                            .send()
                    })
                    .await;
                match r {
                    Ok(r) => Ok(r.open_id_connect_provider_arn().map(String::from)),
                    Err(e) if error_code(&e) == Some("EntityAlreadyExists") => {
                        let list = self
                            .calls
                            .read(|| self.iam.list_open_id_connect_providers().send())
                            .await
                            .map_err(|e| iam_error("ListOpenIDConnectProviders".into(), e))?;
                        let arn = list
                            .open_id_connect_provider_list()
                            .iter()
                            .filter_map(|p| p.arn())
                            .find(|a| a.ends_with(&format!("oidc-provider/{url}")))
                            .map(String::from);
                        arn.map(Some).ok_or_else(|| {
                            StepError::permanent(format!("OIDC provider for {url} exists but cannot be found"))
                        })
                    }
                    Err(e) => Err(iam_error(format!("CreateOpenIDConnectProvider {url}"), e)),
                }
            }
            other => Err(StepError::permanent(format!("{}: unknown kind {other}", s.key))),
        }
    }

    async fn update(&self, op: &Operation) -> Result<Option<String>, StepError> {
        let s = &op.step;
        let id = s.physical_id.clone().unwrap_or_default();
        let want = s.desired.clone().unwrap_or_default();
        let have = s.observed.clone().unwrap_or_default();
        match s.kind.as_str() {
            "iam-role" => {
                self.sync_role(&id, &want, Some(&have)).await?;
                let missing = self.missing_tags(&want, &have);
                if !missing.is_empty() {
                    self.calls
                        .read(|| self.iam.tag_role().role_name(&id).set_tags(Some(missing.clone())).send())
                        .await
                        .map_err(|e| iam_error(format!("TagRole {id}"), e))?;
                }
            }
            "oidc-provider" => {
                let list = |m: &Map<String, Value>, k: &str| -> Vec<String> {
                    m.get(k)
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
                        .unwrap_or_default()
                };
                for c in list(&want, "client_ids").iter().filter(|c| !list(&have, "client_ids").contains(c)) {
                    self.calls
                        .read(|| {
                            self.iam
                                .add_client_id_to_open_id_connect_provider()
                                .open_id_connect_provider_arn(&id)
                                .client_id(c)
                                .send()
                        })
                        .await
                        .map_err(|e| iam_error(format!("AddClientIDToOpenIDConnectProvider {id}"), e))?;
                }
                for c in list(&have, "client_ids").iter().filter(|c| !list(&want, "client_ids").contains(c)) {
                    self.calls
                        .read(|| {
                            self.iam
                                .remove_client_id_from_open_id_connect_provider()
                                .open_id_connect_provider_arn(&id)
                                .client_id(c)
                                .send()
                        })
                        .await
                        .map_err(|e| iam_error(format!("RemoveClientIDFromOpenIDConnectProvider {id}"), e))?;
                }
                if want.get("thumbprints") != have.get("thumbprints") {
                    self.calls
                        .read(|| {
                            self.iam
                                .update_open_id_connect_provider_thumbprint()
                                .open_id_connect_provider_arn(&id)
                                .set_thumbprint_list(Some(list(&want, "thumbprints")))
                                .send()
                        })
                        .await
                        .map_err(|e| iam_error(format!("UpdateOpenIDConnectProviderThumbprint {id}"), e))?;
                }
                let missing = self.missing_tags(&want, &have);
                if !missing.is_empty() {
                    self.calls
                        .read(|| {
                            self.iam
                                .tag_open_id_connect_provider()
                                .open_id_connect_provider_arn(&id)
                                .set_tags(Some(missing.clone()))
                                .send()
                        })
                        .await
                        .map_err(|e| iam_error(format!("TagOpenIDConnectProvider {id}"), e))?;
                }
            }
            other => return Err(StepError::permanent(format!("{}: unknown kind {other}", s.key))),
        }
        Ok(Some(id))
    }

    fn missing_tags(&self, want: &Map<String, Value>, have: &Map<String, Value>) -> Vec<Tag> {
        let have_t = have.get(plan::TAGS).and_then(Value::as_object);
        want.get(plan::TAGS)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter(|(k, v)| have_t.and_then(|h| h.get(*k)) != Some(*v))
            .filter_map(|(k, v)| Tag::builder().key(k).value(v.as_str().unwrap_or("")).build().ok())
            .collect()
    }

    /// One idempotent removal: `NoSuchEntity` counts as done, `DeleteConflict` is transient (something is
    /// still attached, or IAM has not caught up), throttling and 5xx retry this call alone.
    async fn removal<T, E, F, Fut>(&self, what: String, call: F) -> Result<(), StepError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: aws_sdk_iam::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.op_call(what, call, |what, r| match r {
            Ok(_) => Ok(()),
            Err(e) if error_code(&e) == Some("NoSuchEntity") => Ok(()),
            Err(e) if error_code(&e) == Some("DeleteConflict") => {
                let mut se = iam_error(what, e);
                se.class = ErrorClass::Transient;
                Err(se)
            }
            Err(e) => Err(iam_error(what, e)),
        })
        .await
    }

    /// One read inside an operation, retried on its own.
    async fn op_read<T, E, F, Fut>(&self, what: String, call: F) -> Result<T, StepError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: aws_sdk_iam::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.op_call(what, call, |what, r| r.map_err(|e| iam_error(what, e))).await
    }

    /// One call inside an operation, through the IAM call limiter and retried on its own with the read
    /// policy ([`eksodus_core::aws::op_call`]); `judge` turns its outcome into the step's.
    async fn op_call<T, U, E, F, Fut>(&self, what: String, call: F, judge: Judge<T, U, E>) -> Result<U, StepError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: aws_sdk_iam::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        eksodus_core::aws::op_call(&self.reads, &self.calls, what, call, judge).await
    }

    async fn delete(&self, op: &Operation) -> Result<Option<String>, StepError> {
        let s = &op.step;
        let id = s.physical_id.clone().unwrap_or_default();
        let gone = |c: Option<&str>| c == Some("NoSuchEntity");
        match s.kind.as_str() {
            "iam-role" => {
                // Each call retries on its own (throttling, 5xx), so a fault late in the sequence does not
                // repeat the calls before it; "already gone" counts as done.
                let attached = retry(&self.reads, || async {
                    match self.calls.read(|| self.iam.list_attached_role_policies().role_name(&id).send()).await {
                        Ok(r) => Ok(Some(
                            r.attached_policies().iter().filter_map(|p| p.policy_arn().map(String::from)).collect(),
                        )),
                        Err(e) if gone(error_code(&e)) => Ok(None),
                        Err(e) => Err(iam_error(format!("ListAttachedRolePolicies {id}"), e)),
                    }
                })
                .await?;
                let Some(attached): Option<Vec<String>> = attached else { return Ok(Some(id)) };
                let idr = id.as_str();
                try_join_all(attached.iter().map(|p| {
                    self.removal(format!("DetachRolePolicy {p} from {idr}"), move || {
                        self.iam.detach_role_policy().role_name(idr).policy_arn(p).send()
                    })
                }))
                .await?;
                let inline = self
                    .op_read(format!("ListRolePolicies {id}"), || self.iam.list_role_policies().role_name(&id).send())
                    .await?;
                for p in inline.policy_names() {
                    self.removal(format!("DeleteRolePolicy {p} of {id}"), || {
                        self.iam.delete_role_policy().role_name(&id).policy_name(p).send()
                    })
                    .await?;
                }
                let profiles = self
                    .op_read(format!("ListInstanceProfilesForRole {id}"), || {
                        self.iam.list_instance_profiles_for_role().role_name(&id).send()
                    })
                    .await?;
                for p in profiles.instance_profiles() {
                    let name = p.instance_profile_name();
                    self.removal(format!("RemoveRoleFromInstanceProfile {name} {id}"), || {
                        self.iam.remove_role_from_instance_profile().instance_profile_name(name).role_name(&id).send()
                    })
                    .await?;
                }
                // DeleteConflict: something attached meanwhile (or IAM has not caught up); the engine retries
                // the whole operation, which lists again
                self.removal(format!("DeleteRole {id}"), || self.iam.delete_role().role_name(&id).send()).await?;
            }
            "oidc-provider" => {
                self.removal(format!("DeleteOpenIDConnectProvider {id}"), || {
                    self.iam.delete_open_id_connect_provider().open_id_connect_provider_arn(&id).send()
                })
                .await?
            }
            other => return Err(StepError::permanent(format!("{}: unknown kind {other}", s.key))),
        }
        Ok(Some(id))
    }
}

impl Executor for Iam {
    fn execute<'a>(
        &'a self,
        op: &'a Operation,
        _ctx: &'a OpContext,
    ) -> BoxFuture<'a, Result<Option<String>, StepError>> {
        Box::pin(async move {
            match op.kind {
                OpKind::Create => self.create(op).await,
                OpKind::Update => self.update(op).await,
                OpKind::Delete => self.delete(op).await,
            }
        })
    }
}

/// A service account role with its own policy document as the inline policy
/// [`OWN_POLICY_NAME`](eksodus_core::spec::OWN_POLICY_NAME), in the canonical form discovery reads back
/// (validation has made sure the document parses).
fn with_own_policy(mut d: Desired, sa: &eksodus_core::spec::ServiceAccountRole) -> Desired {
    let own = sa.policy_document.clone().and_then(|v| serde_json::from_value::<PolicyDocument>(v).ok());
    if let (Some(doc), Some(Value::Object(inline))) = (own, d.props.get_mut("inline")) {
        inline.insert(eksodus_core::spec::OWN_POLICY_NAME.into(), doc.canonical());
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_fit_iam_limits() {
        assert_eq!(role_name("prod", "node"), "prod-node");
        let long = role_name("an-environment-with-a-rather-long-name", "kube-system-ebs-csi-controller-sa");
        assert_eq!(long.len(), 64);
        assert_ne!(long, role_name("an-environment-with-a-rather-long-name", "kube-system-ebs-csi-controller-sb"));
        assert!(propagation(Some("MalformedPolicyDocument"), "Invalid principal in policy"));
        assert!(!propagation(Some("MalformedPolicyDocument"), "Syntax errors in policy"));
    }

    /// eksctl's `addons[].attachPolicy`: the addon's own document is the inline policy of its service
    /// account's IRSA role, beside its managed policies.
    #[test]
    fn an_addons_own_document_is_its_roles_inline_policy() {
        let spec: EnvironmentSpec = serde_saphyr::from_str(
            "name: a\nregion: eu-west-1\nnetwork: {cidr: 10.0.0.0/16, azs: 2}\ncluster:\n  version: '1.31'\n  addons:\n    - {name: aws-ebs-csi-driver, policies: [arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy], policy_document: {Version: '2012-10-17', Statement: [{Effect: Allow, Action: ['kms:CreateGrant'], Resource: '*'}]}}\n",
        )
        .unwrap();
        let conf = aws_sdk_iam::Config::builder()
            .behavior_version(aws_sdk_iam::config::BehaviorVersion::latest())
            .region(aws_sdk_iam::config::Region::new("eu-west-1"))
            .build();
        let iam = Iam::new(Client::from_conf(conf), &spec);
        let desired = iam.desired(&spec, Some("https://oidc.eks.eu-west-1.amazonaws.com/id/ABC"), "111122223333");
        let (ns, sa) = eksodus_core::spec::addon_service_account("aws-ebs-csi-driver").unwrap();
        let role = desired.iter().find(|d| d.key == format!("role/irsa/{ns}/{sa}")).expect("the addon's role");
        let own = &role.props["inline"][eksodus_core::spec::OWN_POLICY_NAME];
        assert!(own.to_string().contains("kms:CreateGrant"), "{own}");
        assert_eq!(role.props["policies"], json!(["arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"]));
    }

    /// What IAM wants for a spec that must be valid, with an OIDC issuer.
    fn desired_of(yaml: &str) -> Vec<Desired> {
        let spec: EnvironmentSpec = serde_saphyr::from_str(yaml).unwrap();
        assert_eq!(spec.validate(), vec![], "{yaml}");
        let conf = aws_sdk_iam::Config::builder()
            .behavior_version(aws_sdk_iam::config::BehaviorVersion::latest())
            .region(aws_sdk_iam::config::Region::new("eu-west-1"))
            .build();
        Iam::new(Client::from_conf(conf), &spec).desired(
            &spec,
            Some("https://oidc.eks.eu-west-1.amazonaws.com/id/ABC"),
            "111122223333",
        )
    }

    /// AWS's managed CNI policy grants IPv4 only: in an IPv6 cluster the role the VPC CNI runs as (the nodes',
    /// or aws-node's own) holds the IPv6 document inline instead, and nothing else gains it.
    #[test]
    fn an_ipv6_clusters_cni_role_holds_the_ipv6_grant_instead_of_the_managed_policy() {
        let yaml = "name: a\nregion: eu-west-1\nnetwork: {cidr: 10.0.0.0/16, azs: 2}\ncluster:\n  version: '1.31'\n  ip_family: ipv6\n  nodegroups: [{name: ng, instance_types: [m5.large]}, {name: own, instance_types: [m5.large], iam: {attach_policies: ['arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore']}}]\n";
        let managed = policy::managed("aws", policy::CNI_POLICY);
        let ipv6 = policy::cni_ipv6("aws").canonical();
        let holds = |d: &Desired| {
            let inline = d.props["inline"].get(policy::CNI_IPV6_POLICY_NAME).cloned();
            (inline, d.props["policies"].as_array().unwrap().contains(&json!(managed)))
        };
        let desired = desired_of(yaml);
        let node_roles: Vec<&Desired> =
            desired.iter().filter(|d| d.key == "role/node" || d.key.starts_with(&nodegroup_role_key(""))).collect();
        assert_eq!(node_roles.len(), 2, "{:?}", desired.iter().map(|d| &d.key).collect::<Vec<_>>());
        for d in &node_roles {
            assert_eq!(holds(d), (Some(ipv6.clone()), false), "{}", d.key);
        }
        for d in desired.iter().filter(|d| d.kind == "role" && !node_roles.iter().any(|n| n.key == d.key)) {
            assert_eq!(holds(d), (None, false), "{}", d.key);
        }
        // aws-node with a role of its own: that role holds it, and the nodes' roles do not
        let desired = desired_of(&format!("{yaml}access: {{iam: {{cni_irsa: true}}}}\n"));
        let cni = desired.iter().find(|d| d.key == "role/irsa/kube-system/aws-node").expect("aws-node's role");
        assert_eq!(holds(cni), (Some(ipv6.clone()), false));
        for d in desired.iter().filter(|d| d.key == "role/node" || d.key.starts_with(&nodegroup_role_key(""))) {
            assert_eq!(holds(d), (None, false), "{}", d.key);
        }
        // IPv4: the managed policy on the nodes, no IPv6 document anywhere
        let desired = desired_of(&yaml.replace("  ip_family: ipv6\n", ""));
        let node = desired.iter().find(|d| d.key == "role/node").unwrap();
        assert_eq!(holds(node), (None, true));
    }

    /// Auto Mode: the cluster role also holds the four Auto Mode policies and lets EKS tag its sessions; the
    /// built-in pools' nodes get a role of their own unless the user names one.
    #[test]
    fn auto_mode_adds_the_cluster_policies_and_a_node_role_for_the_pools() {
        let yaml = "name: a\nregion: eu-west-1\nnetwork: {cidr: 10.0.0.0/16, azs: 2}\ncluster:\n  version: '1.31'\n  auto_mode: {}\n";
        let desired = desired_of(yaml);
        let cluster = desired.iter().find(|d| d.key == "role/cluster").unwrap();
        for p in policy::AUTO_MODE_CLUSTER_POLICIES {
            assert!(cluster.props["policies"].as_array().unwrap().contains(&json!(policy::managed("aws", p))), "{p}");
        }
        assert!(cluster.props["trust"].to_string().contains("sts:TagSession"));
        let node = desired.iter().find(|d| d.key == AUTO_NODE_ROLE_KEY).expect("the pools' role");
        assert_eq!(node.props["name"], "a-auto-node");
        let theirs = desired_of(
            &yaml.replace("auto_mode: {}", "auto_mode: {node_role_arn: 'arn:aws:iam::111122223333:role/mine'}"),
        );
        assert!(!theirs.iter().any(|d| d.key == AUTO_NODE_ROLE_KEY));
        let plain = desired_of(&yaml.replace("  auto_mode: {}\n", ""));
        let cluster = plain.iter().find(|d| d.key == "role/cluster").unwrap();
        assert_eq!(cluster.props["policies"].as_array().unwrap().len(), policy::CLUSTER_POLICIES.len());
        assert!(!cluster.props["trust"].to_string().contains("sts:TagSession"));
    }

    #[test]
    fn hybrid_nodes_get_an_ssm_role_for_nodeadm_unless_they_name_their_own() {
        let yaml = "name: a\nregion: eu-west-1\nnetwork: {cidr: 10.0.0.0/16, azs: 2}\ncluster:\n  version: '1.33'\n  remote_network: {node_cidrs: [192.168.10.0/24]}\n";
        let desired = desired_of(yaml);
        let role = desired.iter().find(|d| d.key == HYBRID_ROLE_KEY).expect("the hybrid nodes' role");
        assert_eq!(role.props["name"], "a-hybrid-nodes");
        assert!(role.props["trust"].to_string().contains("ssm.amazonaws.com"));
        let policies = role.props["policies"].as_array().unwrap();
        for p in policy::HYBRID_NODE_POLICIES {
            assert!(policies.contains(&json!(policy::managed("aws", p))), "{p}");
        }
        let inline = role.props["inline"][HYBRID_POLICY_NAME].to_string();
        assert!(inline.contains("arn:aws:eks:eu-west-1:111122223333:cluster/a"), "{inline}");
        assert!(inline.contains("ssm:DeregisterManagedInstance") && inline.contains("ssm:DescribeInstanceInformation"));
        let spec = EnvironmentSpec::from_yaml(yaml).unwrap();
        assert_eq!(
            hybrid_role_arn(&spec, "111122223333").as_deref(),
            Some("arn:aws:iam::111122223333:role/eksodus/a/a-hybrid-nodes")
        );
        let theirs = yaml.replace("]}", "], role_arn: 'arn:aws:iam::111122223333:role/onprem'}");
        assert!(!desired_of(&theirs).iter().any(|d| d.key == HYBRID_ROLE_KEY));
        let spec = EnvironmentSpec::from_yaml(&theirs).unwrap();
        assert_eq!(hybrid_role_arn(&spec, "1").as_deref(), Some("arn:aws:iam::111122223333:role/onprem"));
        assert_eq!(
            hybrid_role_arn(
                &EnvironmentSpec::from_yaml(&yaml.replace("  remote_network: {node_cidrs: [192.168.10.0/24]}\n", ""))
                    .unwrap(),
                "1"
            ),
            None
        );
    }
}
