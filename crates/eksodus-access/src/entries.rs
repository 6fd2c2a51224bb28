//! EKS access entries and the authentication mode (feature `aws`), discovered and diffed like every other
//! resource.
//!
//! | key | kind | depends on |
//! |---|---|---|
//! | `auth-mode` | cluster-auth-mode | |
//! | `entry/<principal ARN>` | access-entry | auth-mode (when the spec sets one) |
//! | `pod-identity/<namespace>/<name>` | pod-identity-association | |
//!
//! Only entries carrying this environment's ownership tags are ever updated or deleted; the others (the
//! cluster creator's, nodegroup roles EKS added) are read for the lockout guard and the migration plan.

use aws_sdk_eks::types::{AccessScope, AccessScopeType, AuthenticationMode as EksMode};
use aws_sdk_eks::Client;
use futures::future::try_join_all;
use serde_json::{json, Map, Value};

use eksodus_core::aws::{error_code, step_error, Calls};
use eksodus_core::engine::{
    retry, ApplyOptions, BoxFuture, Executor, OpContext, OpKind, Operation, StepError, WaitState,
};
use eksodus_core::plan::{self, Cost, Desired, Observed, Plan};
use eksodus_core::spec::{AuthenticationMode, EnvironmentSpec};
use eksodus_core::tags;

use crate::guard::{EntrySummary, CLUSTER_ADMIN_POLICY};

/// The component name in ownership tags.
pub const COMPONENT: &str = crate::iam::COMPONENT;

/// The resource kinds this reconciler executes.
pub const KINDS: &[&str] = &["cluster-auth-mode", "access-entry", "pod-identity-association"];

/// The component of entries created by the aws-auth migration.
pub const MIGRATION_COMPONENT: &str = "access-migration";

/// Every EKS action this module calls.
pub const ACTIONS: &[&str] = &[
    "eks:DescribeCluster",
    "eks:UpdateClusterConfig",
    "eks:DescribeUpdate",
    "eks:ListAccessEntries",
    "eks:DescribeAccessEntry",
    "eks:CreateAccessEntry",
    "eks:UpdateAccessEntry",
    "eks:DeleteAccessEntry",
    "eks:AssociateAccessPolicy",
    "eks:DisassociateAccessPolicy",
    "eks:ListAssociatedAccessPolicies",
    "eks:TagResource",
    "eks:ListPodIdentityAssociations",
    "eks:DescribePodIdentityAssociation",
    "eks:CreatePodIdentityAssociation",
    "eks:UpdatePodIdentityAssociation",
    "eks:DeletePodIdentityAssociation",
];

/// The ARN of an access policy given by name or ARN.
pub fn policy_arn(p: &str) -> String {
    if p.starts_with("arn:") {
        p.to_string()
    } else {
        format!("arn:aws:eks::aws:cluster-access-policy/{p}")
    }
}

fn scope_string(kind: &str, namespaces: &[String]) -> String {
    if kind == "cluster" || namespaces.is_empty() {
        "cluster".into()
    } else {
        let mut ns = namespaces.to_vec();
        ns.sort();
        format!("namespace:{}", ns.join(","))
    }
}

/// An access policy association as eksodus compares them: `<policy ARN>|cluster`, or
/// `<policy ARN>|namespace:<a>,<b>` with the namespaces sorted.
pub fn policy_line(policy: &str, namespaces: &[String]) -> String {
    let kind = if namespaces.is_empty() { "cluster" } else { "namespace" };
    format!("{}|{}", policy_arn(policy), scope_string(kind, namespaces))
}

/// The access policies associated with `principal`'s entry in `cluster`, as [`policy_line`]s, sorted. One
/// read; the caller retries.
pub async fn associated_policies(
    eks: &Client,
    calls: &Calls,
    cluster: &str,
    principal: &str,
) -> Result<Vec<String>, StepError> {
    let pol = calls
        .read(|| eks.list_associated_access_policies().cluster_name(cluster).principal_arn(principal).send())
        .await
        .map_err(|e| step_error(format!("ListAssociatedAccessPolicies {principal}"), e))?;
    let mut policies: Vec<String> = pol
        .associated_access_policies()
        .iter()
        .map(|p| {
            let scope = p.access_scope();
            let kind =
                scope.and_then(|s| s.r#type()).map(|t| t.as_str().to_string()).unwrap_or_else(|| "cluster".into());
            format!(
                "{}|{}",
                p.policy_arn().unwrap_or_default(),
                scope_string(&kind, scope.map(|s| s.namespaces()).unwrap_or_default())
            )
        })
        .collect();
    policies.sort();
    Ok(policies)
}

/// Associates `policies` ([`policy_line`]s) with `principal`'s entry (a changed scope is associated again)
/// and disassociates those of `remove` no longer among them. Each call is retried on its own by `calls`.
pub async fn associate_policies(
    eks: &Client,
    calls: &Calls,
    cluster: &str,
    principal: &str,
    policies: &[String],
    remove: &[String],
) -> Result<(), StepError> {
    let c = cluster;
    try_join_all(policies.iter().map(|p| async move {
        let (arn, scope) = p.split_once('|').unwrap_or((p, "cluster"));
        let s = match scope.strip_prefix("namespace:") {
            Some(ns) => AccessScope::builder()
                .r#type(AccessScopeType::Namespace)
                .set_namespaces(Some(ns.split(',').map(String::from).collect()))
                .build(),
            None => AccessScope::builder().r#type(AccessScopeType::Cluster).build(),
        };
        calls
            .read(|| {
                eks.associate_access_policy()
                    .cluster_name(c)
                    .principal_arn(principal)
                    .policy_arn(arn)
                    .access_scope(s.clone())
                    .send()
            })
            .await
            .map(|_| ())
            .map_err(|e| step_error(format!("AssociateAccessPolicy {arn} to {principal}"), e))
    }))
    .await?;
    // a policy whose scope changed was re-associated above; only policies no longer wanted go
    let keep: Vec<&str> = policies.iter().map(|p| p.split('|').next().unwrap_or(p)).collect();
    try_join_all(remove.iter().map(|p| p.split('|').next().unwrap_or(p)).filter(|arn| !keep.contains(arn)).map(
        |arn| async move {
            match calls
                .read(|| {
                    eks.disassociate_access_policy().cluster_name(c).principal_arn(principal).policy_arn(arn).send()
                })
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if error_code(&e) == Some("ResourceNotFoundException") => Ok(()),
                Err(e) => Err(step_error(format!("DisassociateAccessPolicy {arn} from {principal}"), e)),
            }
        },
    ))
    .await?;
    Ok(())
}

/// What discovery found of a cluster's access.
#[derive(Debug, Clone, Default)]
pub struct AccessDiscovery {
    /// The cluster's authentication mode.
    pub mode: Option<AuthenticationMode>,
    /// Owned entries (and the mode, as a resource).
    pub observed: Vec<Observed>,
    /// Every entry, owned or not, for the guard and the migration plan.
    pub all: Vec<EntrySummary>,
    /// Entries not owned whose policies were not read yet (their `cluster_admin` is unknown): read only when
    /// the guard needs them, which keeps a no-op plan cheap.
    pub unresolved: Vec<String>,
}

/// Reconciles one cluster's access entries and authentication mode.
#[derive(Debug, Clone)]
pub struct AccessEntries {
    eks: Client,
    env: String,
    component: &'static str,
    mappings: Option<Vec<crate::awsauth::Mapping>>,
    force: bool,
    account: Option<String>,
    cluster: String,
    user_tags: std::collections::BTreeMap<String, String>,
    reads: ApplyOptions,
    calls: Calls,
    known_mode: Option<Option<AuthenticationMode>>,
}

impl AccessEntries {
    /// For `spec`'s cluster (named after the environment).
    pub fn new(eks: Client, spec: &EnvironmentSpec) -> Self {
        let calls = Calls::for_region("eks", &eks.config().region().map(|r| r.to_string()).unwrap_or_default());
        AccessEntries {
            eks,
            env: spec.name.clone(),
            component: COMPONENT,
            mappings: None,
            force: false,
            account: None,
            cluster: spec.name.clone(),
            user_tags: spec.tags.clone(),
            reads: ApplyOptions::default(),
            calls,
            known_mode: None,
        }
    }

    /// The authentication mode as the caller just read it (from its own `DescribeCluster`), so discovery
    /// does not describe the cluster again.
    pub fn with_known_mode(mut self, mode: Option<AuthenticationMode>) -> Self {
        self.known_mode = Some(mode);
        self
    }

    /// The reconciler for entries the aws-auth migration creates: tagged with their own component, so the
    /// spec's entries never delete them and the migration never touches the spec's.
    pub fn for_migration(mut self) -> Self {
        self.component = MIGRATION_COMPONENT;
        self
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

    /// The cluster's aws-auth mappings, so the lockout guard counts admins there too. Without them the
    /// guard can only judge modes that ignore aws-auth.
    pub fn with_aws_auth(mut self, mappings: Vec<crate::awsauth::Mapping>) -> Self {
        self.mappings = Some(mappings);
        self
    }

    /// The account ID, needed to name the Pod Identity roles in associations.
    pub fn with_account(mut self, account: &str) -> Self {
        self.account = Some(account.to_string());
        self
    }

    /// Skips the lockout guard.
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// Refuses a plan after which nobody could administer the cluster (an admin entry deleted, or a move to
    /// `API` with no admin entry).
    fn guard(&self, found: &AccessDiscovery, plan: &Plan) -> Result<(), crate::Error> {
        use crate::guard::{check, Snapshot};
        let Some(mode_before) = found.mode else { return Ok(()) };
        let mode_after = plan
            .steps
            .iter()
            .find(|s| s.kind == "cluster-auth-mode")
            .and_then(|s| s.desired.as_ref())
            .and_then(|d| d.get("mode").and_then(Value::as_str))
            .and_then(AuthenticationMode::parse)
            .unwrap_or(mode_before);
        let mut after: Vec<EntrySummary> = found.all.clone();
        for st in plan.steps.iter().filter(|s| s.kind == "access-entry") {
            let principal = st.key.trim_start_matches("entry/").to_string();
            after.retain(|e| e.principal_arn != principal || st.action == eksodus_core::plan::Action::NoOp);
            if st.action == eksodus_core::plan::Action::Delete {
                continue;
            }
            if let Some(d) = &st.desired {
                let pols = strings(d, "policies");
                after.retain(|e| e.principal_arn != principal);
                after.push(EntrySummary {
                    principal_arn: principal,
                    entry_type: d.get("type").and_then(Value::as_str).unwrap_or("STANDARD").into(),
                    groups: strings(d, "groups"),
                    cluster_admin: pols.iter().any(|p| p == &format!("{CLUSTER_ADMIN_POLICY}|cluster")),
                });
            }
        }
        let known = self.mappings.is_some();
        if !known && mode_after.reads_config_map() {
            return Ok(()); // admins may sit in aws-auth, which this reconciler cannot see
        }
        let mappings = self.mappings.clone().unwrap_or_default();
        let before = Snapshot { mode: mode_before, mappings: mappings.clone(), entries: found.all.clone() };
        let after = Snapshot { mode: mode_after, mappings, entries: after };
        check(&before, &after, &[], self.force).map_err(crate::Error::Lockout)
    }

    /// The resources `spec` wants.
    pub fn desired(&self, spec: &EnvironmentSpec) -> Vec<Desired> {
        let a = spec.access.clone().unwrap_or_default();
        // hybrid nodes get in as their role, through the entry type EKS gives them their node identity by
        let mut entries = a.entries.clone();
        if let Some(arn) = crate::iam::hybrid_role_arn(spec, self.account.as_deref().unwrap_or("ACCOUNT")) {
            entries.push(eksodus_core::spec::AccessEntrySpec {
                principal_arn: arn,
                entry_type: "HYBRID_LINUX".into(),
                kubernetes_groups: vec![],
                username: None,
                policies: vec![],
            });
        }
        let mut out = self.desired_for(a.authentication_mode, &entries);
        let user_tags: Map<String, Value> = self.user_tags.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        for sa in &a.pod_identities {
            let role = crate::iam::pod_identity_role_arn(spec, self.account.as_deref().unwrap_or("ACCOUNT"), sa);
            out.push(Desired {
                key: format!("pod-identity/{}/{}", sa.namespace, sa.name),
                kind: "pod-identity-association".into(),
                props: pod_identity_props(
                    &sa.namespace,
                    &sa.name,
                    &role,
                    sa.target_role_arn.as_deref(),
                    sa.disable_session_tags,
                    &user_tags,
                ),
                // the API documents no way to take a target role off an association: a new target is a new one
                immutable: vec!["namespace".into(), "service_account".into(), "target_role_arn".into()],
                depends_on: vec![],
                cost: Cost::new(1, 1, 1),
            });
        }
        out
    }

    /// The resources for a mode and a list of entries.
    pub fn desired_for(
        &self,
        mode: Option<AuthenticationMode>,
        entries: &[eksodus_core::spec::AccessEntrySpec],
    ) -> Vec<Desired> {
        let mut out = Vec::new();
        let mut deps = vec![];
        if let Some(m) = mode {
            out.push(Desired {
                key: "auth-mode".into(),
                kind: "cluster-auth-mode".into(),
                props: json!({"mode": m.as_str()}).as_object().cloned().unwrap_or_default(),
                immutable: vec![],
                depends_on: vec![],
                cost: Cost::new(2, 2, 0),
            });
            deps.push("auth-mode".to_string());
        }
        let user_tags: Map<String, Value> = self.user_tags.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        for e in entries {
            let mut groups = e.kubernetes_groups.clone();
            groups.sort();
            let mut policies: Vec<String> = e
                .policies
                .iter()
                .map(|p| format!("{}|{}", policy_arn(&p.policy), scope_string("namespace", &p.namespaces)))
                .collect();
            policies.sort();
            let mut props = json!({"type": e.entry_type, "policies": policies, "tags": user_tags});
            if e.entry_type == "STANDARD" {
                // EKS sets the groups of node and Fargate entries itself
                props["groups"] = json!(groups);
            }
            if let Some(u) = &e.username {
                props["username"] = json!(u);
            }
            out.push(Desired {
                key: format!("entry/{}", e.principal_arn),
                kind: "access-entry".into(),
                props: props.as_object().cloned().unwrap_or_default(),
                immutable: vec!["type".into()],
                depends_on: deps.clone(),
                cost: Cost::new(2, 2, 1),
            });
        }
        out
    }

    /// Reads the mode and every entry; keeps the owned ones as observed resources.
    pub async fn discover(&self) -> Result<AccessDiscovery, StepError> {
        Box::pin(self.discover_inner()).await
    }

    async fn discover_inner(&self) -> Result<AccessDiscovery, StepError> {
        let c = &self.cluster;
        let mode = match self.known_mode {
            Some(m) => m,
            None => {
                let cluster = retry(&self.reads, || async {
                    self.calls
                        .read(|| self.eks.describe_cluster().name(c).send())
                        .await
                        .map_err(|e| step_error(format!("DescribeCluster {c}"), e))
                })
                .await?;
                cluster
                    .cluster()
                    .and_then(|c| c.access_config())
                    .and_then(|a| a.authentication_mode())
                    .and_then(|m| AuthenticationMode::parse(m.as_str()))
            }
        };
        let mut out = AccessDiscovery { mode, ..Default::default() };
        if let Some(m) = mode {
            out.observed.push(Observed {
                key: "auth-mode".into(),
                kind: "cluster-auth-mode".into(),
                physical_id: c.clone(),
                props: json!({"mode": m.as_str()}).as_object().cloned().unwrap_or_default(),
                depends_on: vec![],
                delete_cost: 0,
            });
        }
        // pod identities and access entries are independent: read together; each entry's policies are read
        // right after its own describe, all entries at once (the chain is list -> describe -> policies)
        let reads_entries = mode.is_some_and(AuthenticationMode::reads_access_entries);
        let entries = async {
            if !reads_entries {
                return Ok(Vec::new());
            }
            let principals = retry(&self.reads, || async {
                let mut all = Vec::new();
                let mut token = None;
                loop {
                    let r = self
                        .calls
                        .read(|| self.eks.list_access_entries().cluster_name(c).set_next_token(token.clone()).send())
                        .await
                        .map_err(|e| step_error(format!("ListAccessEntries {c}"), e))?;
                    all.extend(r.access_entries().iter().cloned());
                    token = r.next_token().map(String::from);
                    if token.is_none() {
                        break;
                    }
                }
                Ok(all)
            })
            .await?;
            try_join_all(principals.iter().map(|p| async move {
                let e = retry(&self.reads, || async {
                    self.calls
                        .read(|| self.eks.describe_access_entry().cluster_name(c).principal_arn(p).send())
                        .await
                        .map_err(|e| step_error(format!("DescribeAccessEntry {p}"), e))
                })
                .await?;
                let Some(entry) = e.access_entry().cloned() else { return Ok(None) };
                let t: std::collections::BTreeMap<String, String> =
                    entry.tags().map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
                let owned = tags::is_owned(&t, &self.env, self.component);
                let principal = entry.principal_arn().unwrap_or_default().to_string();
                let policies = if owned { self.policies_of(&principal).await? } else { vec![] };
                Ok::<_, StepError>(Some((entry, t, owned, policies)))
            }))
            .await
        };
        let (pods, details) = tokio::try_join!(self.discover_pod_identities(), entries)?;
        out.observed.extend(pods);
        for (entry, t, owned, policies) in details.into_iter().flatten() {
            let principal = entry.principal_arn().unwrap_or_default().to_string();
            let mut groups = entry.kubernetes_groups().to_vec();
            groups.sort();
            let typ = entry.r#type().unwrap_or("STANDARD").to_string();
            out.all.push(EntrySummary {
                principal_arn: principal.clone(),
                entry_type: typ.clone(),
                groups: groups.clone(),
                cluster_admin: policies.iter().any(|p| p == &format!("{CLUSTER_ADMIN_POLICY}|cluster")),
            });
            if !owned {
                out.unresolved.push(principal);
                continue;
            }
            out.observed.push(Observed {
                key: format!("entry/{principal}"),
                kind: "access-entry".into(),
                physical_id: principal.clone(),
                props: json!({"type": typ, "groups": groups, "policies": policies, "username": entry.username(), "tags": t}).as_object().cloned().unwrap_or_default(),
                depends_on: vec![],
                delete_cost: 1,
            });
        }
        Ok(out)
    }

    /// The access policies of one entry, as `policy|scope` strings.
    async fn policies_of(&self, principal: &str) -> Result<Vec<String>, StepError> {
        retry(&self.reads, || associated_policies(&self.eks, &self.calls, &self.cluster, principal)).await
    }

    /// Reads the policies of the entries discovery left unresolved (the guard needs to know who is admin).
    pub async fn resolve_admins(&self, found: &mut AccessDiscovery) -> Result<(), StepError> {
        let unresolved = std::mem::take(&mut found.unresolved);
        let admin = format!("{CLUSTER_ADMIN_POLICY}|cluster");
        for p in unresolved {
            let pols = self.policies_of(&p).await?;
            if let Some(e) = found.all.iter_mut().find(|e| e.principal_arn == p) {
                e.cluster_admin = pols.contains(&admin);
            }
        }
        Ok(())
    }

    async fn discover_pod_identities(&self) -> Result<Vec<Observed>, StepError> {
        let c = &self.cluster;
        let ids = retry(&self.reads, || async {
            let mut all = Vec::new();
            let mut token = None;
            loop {
                let r = self
                    .calls
                    .read(|| {
                        self.eks.list_pod_identity_associations().cluster_name(c).set_next_token(token.clone()).send()
                    })
                    .await
                    .map_err(|e| step_error(format!("ListPodIdentityAssociations {c}"), e))?;
                all.extend(r.associations().iter().filter_map(|a| a.association_id().map(String::from)));
                token = r.next_token().map(String::from);
                if token.is_none() {
                    break;
                }
            }
            Ok(all)
        })
        .await?;
        let found = try_join_all(ids.iter().map(|id| async move {
            retry(&self.reads, || async {
                self.calls
                    .read(|| self.eks.describe_pod_identity_association().cluster_name(c).association_id(id).send())
                    .await
                    .map_err(|e| step_error(format!("DescribePodIdentityAssociation {id}"), e))
            })
            .await
        }))
        .await?;
        let mut out = Vec::new();
        for r in found {
            let Some(a) = r.association() else { continue };
            let t: std::collections::BTreeMap<String, String> =
                a.tags().map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
            if !tags::is_owned(&t, &self.env, self.component) {
                continue;
            }
            out.push(Observed {
                key: format!(
                    "pod-identity/{}/{}",
                    a.namespace().unwrap_or_default(),
                    a.service_account().unwrap_or_default()
                ),
                kind: "pod-identity-association".into(),
                physical_id: a.association_id().unwrap_or_default().to_string(),
                props: pod_identity_props(
                    a.namespace().unwrap_or_default(),
                    a.service_account().unwrap_or_default(),
                    a.role_arn().unwrap_or_default(),
                    a.target_role_arn(),
                    a.disable_session_tags().unwrap_or(false),
                    &t.iter().map(|(k, v)| (k.clone(), json!(v))).collect(),
                ),
                depends_on: vec![],
                delete_cost: 1,
            });
        }
        Ok(out)
    }

    /// Plans access entries and the mode. Refuses, before anything runs, a mode that would go backwards.
    ///
    /// Errors: [`Invalid`](crate::Error::Invalid) naming the field, [`Lockout`](crate::Error::Lockout) from
    /// the guard, [`Aws`](crate::Error::Aws) when discovery fails.
    pub async fn plan(&self, spec: &EnvironmentSpec) -> Result<Plan, crate::Error> {
        let found = self.discover().await?;
        self.plan_from(spec, found).await
    }

    /// [`AccessEntries::plan`] from a discovery made earlier (a driver that reads everything at once); reads
    /// only the policies of entries the guard must judge.
    pub async fn plan_from(&self, spec: &EnvironmentSpec, found: AccessDiscovery) -> Result<Plan, crate::Error> {
        let invalid = |field: &str, message: String| crate::Error::Invalid { field: field.into(), message };
        if let (Some(have), Some(want)) = (found.mode, spec.access.as_ref().and_then(|a| a.authentication_mode)) {
            if want < have {
                return Err(invalid(
                    "access.authentication_mode",
                    format!(
                        "the cluster uses {} and EKS never moves back to {}; keep {} or later",
                        have.as_str(),
                        want.as_str(),
                        have.as_str()
                    ),
                ));
            }
        }
        if spec.access.as_ref().is_some_and(|a| !a.pod_identities.is_empty()) && self.account.is_none() {
            return Err(invalid(
                "access.pod_identities",
                "the account ID is needed to name their roles (with_account)".to_string(),
            ));
        }
        let wants_entries = spec.access.as_ref().is_some_and(|a| !a.entries.is_empty());
        let mode_after = spec.access.as_ref().and_then(|a| a.authentication_mode).or(found.mode);
        if wants_entries && !mode_after.is_some_and(AuthenticationMode::reads_access_entries) {
            return Err(invalid(
                "access.entries",
                "the cluster's authentication mode is CONFIG_MAP; set access.authentication_mode to API_AND_CONFIG_MAP"
                    .to_string(),
            ));
        }
        // the mode is never "deleted": a spec without one leaves it as it is
        let mut observed = found.observed.clone();
        if spec.access.as_ref().and_then(|a| a.authentication_mode).is_none() {
            observed.retain(|o| o.kind != "cluster-auth-mode");
        }
        let plan = plan::diff(&self.desired(spec), &observed);
        let mut found = found;
        if plan.changes().any(|s| s.kind == "cluster-auth-mode" || s.kind == "access-entry") {
            self.resolve_admins(&mut found).await?;
        }
        self.guard(&found, &plan)?;
        Ok(plan)
    }

    /// The migration of `aws_auth` to access entries: the typed plan (what becomes which entry, what has no
    /// equivalent) and the engine plan that does it (the mode step, then the entries).
    pub async fn plan_migration(
        &self,
        aws_auth: &crate::awsauth::AwsAuth,
    ) -> Result<(crate::migrate::MigrationPlan, Plan), crate::Error> {
        let mut found = self.discover().await?;
        self.resolve_admins(&mut found).await?;
        let mode = found.mode.unwrap_or(AuthenticationMode::ConfigMap);
        let mp = crate::migrate::plan(aws_auth, mode, &found.all);
        let desired = self.desired_for(mp.mode_steps.last().copied(), &mp.entries);
        let keys: std::collections::BTreeSet<&str> = desired.iter().map(|d| d.key.as_str()).collect();
        let observed: Vec<Observed> = found.observed.into_iter().filter(|o| keys.contains(o.key.as_str())).collect();
        Ok((mp, plan::diff(&desired, &observed)))
    }

    /// The plan that removes every owned entry (the mode stays).
    pub async fn destroy_plan(&self) -> Result<Plan, crate::Error> {
        let mut found = self.discover().await?;
        found.observed.retain(|o| o.kind == "access-entry" || o.kind == "pod-identity-association");
        let plan = Plan::destroy(&found.observed);
        if plan.changes().any(|s| s.kind == "access-entry") && !self.force {
            self.resolve_admins(&mut found).await?;
        }
        self.guard(&found, &plan)?;
        Ok(plan)
    }

    async fn associate(&self, principal: &str, policies: &[String], remove: &[String]) -> Result<(), StepError> {
        associate_policies(&self.eks, &self.calls, &self.cluster, principal, policies, remove).await
    }

    async fn set_mode(&self, mode: &str, ctx: &OpContext) -> Result<(), StepError> {
        let c = &self.cluster;
        let r = self
            .calls
            .read(|| {
                self.eks
                    .update_cluster_config()
                    .name(c)
                    .access_config(
                        aws_sdk_eks::types::UpdateAccessConfigRequest::builder()
                            .authentication_mode(EksMode::from(mode))
                            .build(),
                    )
                    .send()
            })
            .await
            .map_err(|e| step_error(format!("UpdateClusterConfig {c} authenticationMode={mode}"), e))?;
        let Some(id) = r.update().and_then(|u| u.id()).map(String::from) else { return Ok(()) };
        ctx.wait_until(&format!("authentication mode {mode} on {c}"), ctx.waits.timeout, || async {
            let u = self
                .calls
                .read(|| self.eks.describe_update().name(c).update_id(&id).send())
                .await
                .map_err(|e| step_error(format!("DescribeUpdate {id}"), e))?;
            let status = u.update().and_then(|u| u.status()).map(|s| s.as_str().to_string()).unwrap_or_default();
            Ok(match status.as_str() {
                "Successful" => WaitState::Ready(()),
                "Failed" | "Cancelled" => WaitState::Failed(format!("update {id} {status}")),
                s => WaitState::Pending(s.to_string()),
            })
        })
        .await
    }
}

fn strings(m: &Map<String, Value>, k: &str) -> Vec<String> {
    m.get(k)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

impl Executor for AccessEntries {
    fn execute<'a>(
        &'a self,
        op: &'a Operation,
        ctx: &'a OpContext,
    ) -> BoxFuture<'a, Result<Option<String>, StepError>> {
        Box::pin(async move {
            let s = &op.step;
            let c = &self.cluster;
            let want = s.desired.clone().unwrap_or_default();
            match (s.kind.as_str(), op.kind) {
                ("cluster-auth-mode", OpKind::Update | OpKind::Create) => {
                    self.set_mode(want["mode"].as_str().unwrap_or("API_AND_CONFIG_MAP"), ctx).await?;
                    Ok(Some(c.clone()))
                }
                ("cluster-auth-mode", OpKind::Delete) => Ok(None),
                ("pod-identity-association", OpKind::Create) => {
                    let get = |k: &str| want.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                    let (ns, sa) = (get("namespace"), get("service_account"));
                    let t = tags::ownership(&self.env, self.component, &s.key, &self.user_tags);
                    let r = self
                        .calls
                        .create(|| {
                            self.eks
                                .create_pod_identity_association()
                                .cluster_name(c)
                                .namespace(&ns)
                                .service_account(&sa)
                                .role_arn(get("role_arn"))
                                .set_target_role_arn(
                                    want.get("target_role_arn").and_then(Value::as_str).map(String::from),
                                )
                                .disable_session_tags(
                                    want.get("disable_session_tags").and_then(Value::as_bool).unwrap_or(false),
                                )
                                .set_tags(Some(t.clone().into_iter().collect()))
                                .client_request_token(ctx.client_token(s))
                                .send()
                        })
                        .await;
                    match r {
                        Ok(r) => Ok(r.association().and_then(|a| a.association_id()).map(String::from)),
                        Err(e) if error_code(&e) == Some("ResourceInUseException") => {
                            // an earlier attempt made it: adopt it only if it is ours
                            let mine = self.discover_pod_identities().await?.into_iter().find(|o| o.key == s.key);
                            match mine {
                                Some(o) => Ok(Some(o.physical_id)),
                                None => Err(StepError::permanent(format!("a Pod Identity association for {ns}/{sa} exists and is not owned by environment {}", self.env))),
                            }
                        }
                        Err(e) => Err(step_error(format!("CreatePodIdentityAssociation {ns}/{sa}"), e)),
                    }
                }
                ("pod-identity-association", OpKind::Update) => {
                    let id = s.physical_id.clone().unwrap_or_default();
                    self.calls
                        .read(|| {
                            self.eks
                                .update_pod_identity_association()
                                .cluster_name(c)
                                .association_id(&id)
                                .role_arn(want.get("role_arn").and_then(Value::as_str).unwrap_or_default())
                                .disable_session_tags(
                                    want.get("disable_session_tags").and_then(Value::as_bool).unwrap_or(false),
                                )
                                .send()
                        })
                        .await
                        .map_err(|e| step_error(format!("UpdatePodIdentityAssociation {id}"), e))?;
                    Ok(Some(id))
                }
                ("pod-identity-association", OpKind::Delete) => {
                    let id = s.physical_id.clone().unwrap_or_default();
                    match self
                        .calls
                        .read(|| self.eks.delete_pod_identity_association().cluster_name(c).association_id(&id).send())
                        .await
                    {
                        Ok(_) => Ok(Some(id)),
                        Err(e) if error_code(&e) == Some("ResourceNotFoundException") => Ok(Some(id)),
                        Err(e) => Err(step_error(format!("DeletePodIdentityAssociation {id}"), e)),
                    }
                }
                ("access-entry", OpKind::Create) => {
                    let principal = s.key.trim_start_matches("entry/").to_string();
                    let t = tags::ownership(&self.env, self.component, &s.key, &self.user_tags);
                    let r = self
                        .calls
                        .create(|| {
                            self.eks
                                .create_access_entry()
                                .cluster_name(c)
                                .principal_arn(&principal)
                                .r#type(want["type"].as_str().unwrap_or("STANDARD"))
                                .set_kubernetes_groups(Some(strings(&want, "groups")).filter(|g| !g.is_empty()))
                                .set_username(want.get("username").and_then(Value::as_str).map(String::from))
                                .set_tags(Some(t.clone().into_iter().collect()))
                                .client_request_token(ctx.client_token(s))
                                .send()
                        })
                        .await;
                    let existing_policies = match r {
                        Ok(_) => vec![],
                        Err(e) if error_code(&e) == Some("ResourceInUseException") => {
                            // an earlier attempt created it: adopt it only if it carries our tags
                            let d = self
                                .calls
                                .read(|| {
                                    self.eks.describe_access_entry().cluster_name(c).principal_arn(&principal).send()
                                })
                                .await
                                .map_err(|e| step_error(format!("DescribeAccessEntry {principal}"), e))?;
                            let ours = d.access_entry().and_then(|e| e.tags()).is_some_and(|t| {
                                t.get(tags::ENVIRONMENT).map(String::as_str) == Some(self.env.as_str())
                            });
                            if !ours {
                                return Err(StepError::permanent(format!(
                                    "an access entry for {principal} exists and is not owned by environment {}",
                                    self.env
                                )));
                            }
                            vec![]
                        }
                        Err(e) => return Err(step_error(format!("CreateAccessEntry {principal}"), e)),
                    };
                    self.associate(&principal, &strings(&want, "policies"), &existing_policies).await?;
                    Ok(Some(principal))
                }
                ("access-entry", OpKind::Update) => {
                    let principal = s.physical_id.clone().unwrap_or_default();
                    let have = s.observed.clone().unwrap_or_default();
                    if want.get("groups") != have.get("groups")
                        || (want.get("username").is_some() && want.get("username") != have.get("username"))
                    {
                        self.calls
                            .read(|| {
                                self.eks
                                    .update_access_entry()
                                    .cluster_name(c)
                                    .principal_arn(&principal)
                                    .set_kubernetes_groups(Some(strings(&want, "groups")))
                                    .set_username(want.get("username").and_then(Value::as_str).map(String::from))
                                    .send()
                            })
                            .await
                            .map_err(|e| step_error(format!("UpdateAccessEntry {principal}"), e))?;
                    }
                    let want_p = strings(&want, "policies");
                    let have_p = strings(&have, "policies");
                    let add: Vec<String> = want_p.iter().filter(|p| !have_p.contains(p)).cloned().collect();
                    let remove: Vec<String> = have_p.iter().filter(|p| !want_p.contains(p)).cloned().collect();
                    self.associate(&principal, &add, &remove).await?;
                    Ok(Some(principal))
                }
                ("access-entry", OpKind::Delete) => {
                    let principal = s.physical_id.clone().unwrap_or_default();
                    match self
                        .calls
                        .read(|| self.eks.delete_access_entry().cluster_name(c).principal_arn(&principal).send())
                        .await
                    {
                        Ok(_) => Ok(Some(principal)),
                        Err(e) if error_code(&e) == Some("ResourceNotFoundException") => Ok(Some(principal)),
                        Err(e) => Err(step_error(format!("DeleteAccessEntry {principal}"), e)),
                    }
                }
                (kind, _) => Err(StepError::permanent(format!("{}: unknown kind {kind}", s.key))),
            }
        })
    }
}

/// The props of a Pod Identity association, the same from the spec and from EKS so that a re-plan is empty.
fn pod_identity_props(
    namespace: &str,
    service_account: &str,
    role_arn: &str,
    target_role_arn: Option<&str>,
    disable_session_tags: bool,
    tags: &Map<String, Value>,
) -> Map<String, Value> {
    let mut p = Map::new();
    p.insert("namespace".into(), json!(namespace));
    p.insert("service_account".into(), json!(service_account));
    p.insert("role_arn".into(), json!(role_arn));
    p.insert("target_role_arn".into(), json!(target_role_arn));
    p.insert("disable_session_tags".into(), json!(disable_session_tags));
    p.insert("tags".into(), Value::Object(tags.clone()));
    p
}
