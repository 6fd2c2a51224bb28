//! The CloudWatch log group of the control plane's logs, when the spec sets their retention (feature `aws`):
//! key `logs/cluster`, kind `logs-group`, named `/aws/eks/<cluster>/cluster` as EKS names it.
//!
//! EKS writes to that group and makes it when it is missing, with no retention and no tags, and never deletes
//! it. eksodus makes it first, with the retention and the environment's tags, so the cluster finds it (the
//! cluster depends on it), a retention change is one `PutRetentionPolicy`, and `down` deletes it after the
//! cluster. A group of that name without this environment's tags is someone else's (or EKS's, from before):
//! it is left alone and the plan says so, and the retention is not set on it.

use std::collections::BTreeMap;

use aws_sdk_cloudwatchlogs::Client;
use serde_json::{json, Value};

use eksodus_core::aws::{error_code, step_error, Calls};
use eksodus_core::engine::{retry, ApplyOptions, BoxFuture, Executor, OpContext, OpKind, Operation, StepError};
use eksodus_core::plan::{Cost, Desired, Observed};
use eksodus_core::spec::EnvironmentSpec;
use eksodus_core::tags;

/// The component name in ownership tags (the group belongs with the cluster).
pub const COMPONENT: &str = crate::eks::COMPONENT;
/// Resource kinds this reconciler executes.
pub const KINDS: &[&str] = &["logs-group"];
/// Key of the control plane's log group.
pub const KEY: &str = "logs/cluster";
/// The IAM actions every plan of a spec with a retention uses (looking for the group).
pub const READ_ACTIONS: &[&str] = &["logs:DescribeLogGroups", "logs:ListTagsForResource"];
/// The calls of making, changing and deleting the group (with [`READ_ACTIONS`]).
pub const ACTIONS: &[&str] = &[
    "logs:CreateLogGroup",
    "logs:PutRetentionPolicy",
    "logs:DeleteLogGroup",
    "logs:TagResource",
    "logs:UntagResource",
    "logs:DescribeLogGroups",
    "logs:ListTagsForResource",
];

/// The name EKS gives the control plane's log group.
pub fn group_name(cluster: &str) -> String {
    format!("/aws/eks/{cluster}/cluster")
}

/// The retention the spec wants, when it wants eksodus to make the group.
pub fn wanted(spec: &EnvironmentSpec) -> Option<u32> {
    spec.cluster.as_ref()?.log_retention_days
}

/// What discovery found under the group's name.
#[derive(Debug, Clone, Default)]
pub struct Found {
    /// The group, when it is this environment's.
    pub observed: Vec<Observed>,
    /// The group's name, when one of that name exists and is not this environment's.
    pub foreign: Option<String>,
}

/// Reconciles the control plane's log group.
#[derive(Debug, Clone)]
pub struct Logs {
    logs: Client,
    env: String,
    user_tags: BTreeMap<String, String>,
    reads: ApplyOptions,
    calls: Calls,
}

impl Logs {
    /// A reconciler for `spec`'s group.
    pub fn new(logs: Client, spec: &EnvironmentSpec) -> Self {
        let calls = Calls::for_region("logs", &logs.config().region().map(|r| r.to_string()).unwrap_or_default());
        Logs { logs, env: spec.name.clone(), user_tags: spec.tags.clone(), reads: ApplyOptions::default(), calls }
    }

    /// Uses `opts`' retry policy for reads made outside the engine.
    pub fn with_retry(mut self, opts: ApplyOptions) -> Self {
        self.calls = self.calls.with_policy(opts.calls);
        self.reads = opts;
        self
    }

    /// Calls AWS through `calls` (shared with every client of the process that talks to the same place).
    pub fn with_calls(mut self, calls: Calls) -> Self {
        self.calls = calls.with_policy(*self.calls.policy());
        self
    }

    /// The group `spec` wants, unless one of its name is someone else's (`found.foreign`).
    pub fn desired(&self, spec: &EnvironmentSpec, found: &Found) -> Vec<Desired> {
        let Some(days) = wanted(spec) else { return vec![] };
        if found.foreign.is_some() {
            return vec![];
        }
        vec![Desired {
            key: KEY.into(),
            kind: "logs-group".into(),
            props: json!({"name": group_name(&self.env), "retention_days": days, "tags": self.user_tags})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            immutable: vec!["name".into()],
            depends_on: vec![],
            cost: Cost::new(1, 1, 1),
        }]
    }

    /// Finds the group by its name, and keeps it when its tags say it is this environment's.
    pub async fn discover(&self) -> Result<Found, StepError> {
        let name = group_name(&self.env);
        let group = retry(&self.reads, || async {
            let r = self
                .calls
                .read(|| self.logs.describe_log_groups().log_group_name_prefix(&name).send())
                .await
                .map_err(|e| step_error("DescribeLogGroups", e))?;
            Ok(r.log_groups().iter().find(|g| g.log_group_name() == Some(name.as_str())).cloned())
        })
        .await?;
        let Some(g) = group else { return Ok(Found::default()) };
        // the ARN without the `:*` that `arn` carries, as the tagging calls take it
        let arn = g
            .log_group_arn()
            .map(String::from)
            .or_else(|| g.arn().map(|a| a.trim_end_matches(":*").to_string()))
            .unwrap_or_default();
        let t = retry(&self.reads, || async {
            self.calls
                .read(|| self.logs.list_tags_for_resource().resource_arn(&arn).send())
                .await
                .map_err(|e| step_error(format!("ListTagsForResource {arn}"), e))
        })
        .await?;
        let t: BTreeMap<String, String> = t.tags().map(|m| m.clone().into_iter().collect()).unwrap_or_default();
        if !tags::is_owned(&t, &self.env, COMPONENT) {
            return Ok(Found { observed: vec![], foreign: Some(name) });
        }
        let user: BTreeMap<String, String> =
            t.into_iter().filter(|(k, _)| !k.starts_with(tags::PREFIX) && k != tags::NAME).collect();
        Ok(Found {
            observed: vec![Observed {
                key: KEY.into(),
                kind: "logs-group".into(),
                physical_id: arn,
                props: json!({"name": name, "retention_days": g.retention_in_days(), "tags": user})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                depends_on: vec![],
                delete_cost: 1,
            }],
            foreign: None,
        })
    }

    fn days(op: &Operation) -> Result<i32, StepError> {
        op.step
            .desired
            .as_ref()
            .and_then(|d| d.get("retention_days"))
            .and_then(Value::as_i64)
            .map(|d| d as i32)
            .ok_or_else(|| StepError::permanent(format!("{}: no retention_days in the plan", op.step.key)))
    }

    async fn create(&self, op: &Operation) -> Result<Option<String>, StepError> {
        let name = group_name(&self.env);
        let tags: std::collections::HashMap<String, String> =
            tags::ownership(&self.env, COMPONENT, KEY, &self.user_tags).into_iter().collect();
        let made = self
            .calls
            .create(|| self.logs.create_log_group().log_group_name(&name).set_tags(Some(tags.clone())).send());
        match made.await {
            Ok(_) => {}
            // an earlier attempt made it; anyone else's was found by discovery and never planned
            Err(e) if error_code(&e) == Some("ResourceAlreadyExistsException") => {}
            Err(e) => return Err(step_error(format!("CreateLogGroup {name}"), e)),
        }
        self.put_retention(&name, Self::days(op)?).await?;
        // its ARN, as discovery names it
        let found = self.discover().await?;
        Ok(found.observed.into_iter().next().map(|o| o.physical_id).or(Some(name)))
    }

    async fn put_retention(&self, name: &str, days: i32) -> Result<(), StepError> {
        self.calls
            .read(|| self.logs.put_retention_policy().log_group_name(name).retention_in_days(days).send())
            .await
            .map_err(|e| step_error(format!("PutRetentionPolicy {name}"), e))?;
        Ok(())
    }

    /// The retention, then the tags: the user's set again, and the ones taken out of the spec removed.
    async fn update(&self, op: &Operation) -> Result<Option<String>, StepError> {
        let arn = op.step.physical_id.clone().unwrap_or_default();
        let name = group_name(&self.env);
        let have = op.step.observed.clone().unwrap_or_default();
        let days = Self::days(op)?;
        if have.get("retention_days").and_then(Value::as_i64) != Some(days as i64) {
            self.put_retention(&name, days).await?;
        }
        let want: std::collections::HashMap<String, String> =
            tags::ownership(&self.env, COMPONENT, KEY, &self.user_tags).into_iter().collect();
        let gone: Vec<String> = have
            .get("tags")
            .and_then(Value::as_object)
            .map(|m| m.keys().filter(|k| !want.contains_key(*k)).cloned().collect())
            .unwrap_or_default();
        self.calls
            .read(|| self.logs.tag_resource().resource_arn(&arn).set_tags(Some(want.clone())).send())
            .await
            .map_err(|e| step_error(format!("TagResource {arn}"), e))?;
        if !gone.is_empty() {
            self.calls
                .read(|| self.logs.untag_resource().resource_arn(&arn).set_tag_keys(Some(gone.clone())).send())
                .await
                .map_err(|e| step_error(format!("UntagResource {arn}"), e))?;
        }
        Ok(Some(arn))
    }

    async fn delete(&self, op: &Operation) -> Result<Option<String>, StepError> {
        let name = op
            .step
            .observed
            .as_ref()
            .and_then(|o| o.get("name"))
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| group_name(&self.env));
        match self.calls.read(|| self.logs.delete_log_group().log_group_name(&name).send()).await {
            Ok(_) => {}
            Err(e) if error_code(&e) == Some("ResourceNotFoundException") => {}
            Err(e) => return Err(step_error(format!("DeleteLogGroup {name}"), e)),
        }
        Ok(Some(name))
    }
}

impl Executor for Logs {
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
