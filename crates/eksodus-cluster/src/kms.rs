//! The KMS key for secrets encryption that eksodus creates when the spec asks for encryption without naming a
//! key (feature `aws`): key `kms/secrets`, kind `kms-key`, with the alias `alias/eksodus/<environment>`.
//!
//! A KMS key is never deleted at once: `down` schedules its deletion after the spec's window (7 to 30 days),
//! because the cluster's secrets (and any etcd backup of them) cannot be read without it. Until the window
//! ends, the key is found again by its alias and tags, and an `up` of the same environment cancels the
//! deletion and enables it instead of making a new key.

use std::collections::BTreeMap;

use aws_sdk_kms::types::{KeyState, Tag};
use aws_sdk_kms::Client;
use serde_json::{json, Map, Value};

use eksodus_core::aws::{error_code, step_error, Calls};
use eksodus_core::engine::{retry, ApplyOptions, BoxFuture, Executor, OpContext, OpKind, Operation, StepError};
use eksodus_core::plan::{Cost, Desired, Observed};
use eksodus_core::spec::EnvironmentSpec;
use eksodus_core::tags;

/// The component name in ownership tags (the key belongs with the cluster).
pub const COMPONENT: &str = crate::eks::COMPONENT;
/// Resource kinds this reconciler executes.
pub const KINDS: &[&str] = &["kms-key"];
/// Key of the secrets key.
pub const KEY: &str = "kms/secrets";
/// The IAM actions every plan uses (looking for the key).
pub const READ_ACTIONS: &[&str] = &["kms:ListAliases", "kms:DescribeKey", "kms:ListResourceTags"];

/// The calls of creating, taking back and scheduling the deletion of a key (with [`READ_ACTIONS`]).
pub const ACTIONS: &[&str] = &[
    "kms:CreateKey",
    "kms:CreateAlias",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:ListAliases",
    "kms:ListResourceTags",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:EnableKey",
];

/// The alias of an environment's key.
pub fn alias(env: &str) -> String {
    format!("alias/eksodus/{env}")
}

/// The key ID in a key ARN. Calls take either on AWS; the emulator (moto 5.2) fails on an ARN in
/// `ScheduleKeyDeletion`, so eksodus sends IDs.
fn key_id(arn: &str) -> String {
    arn.rsplit_once("key/").map(|(_, id)| id.to_string()).unwrap_or_else(|| arn.to_string())
}

/// Whether the spec wants eksodus to make the key.
pub fn wanted(spec: &EnvironmentSpec) -> Option<u32> {
    let e = spec.cluster.as_ref()?.encryption.as_ref()?;
    e.key_arn.is_none().then_some(e.deletion_window_days)
}

/// Reconciles one environment's secrets key.
#[derive(Debug, Clone)]
pub struct Kms {
    kms: Client,
    env: String,
    user_tags: BTreeMap<String, String>,
    reads: ApplyOptions,
    calls: Calls,
    window: u32,
}

impl Kms {
    /// A reconciler for `spec`'s key.
    pub fn new(kms: Client, spec: &EnvironmentSpec) -> Self {
        let calls = Calls::for_region("kms", &kms.config().region().map(|r| r.to_string()).unwrap_or_default());
        Kms {
            kms,
            env: spec.name.clone(),
            user_tags: spec.tags.clone(),
            reads: ApplyOptions::default(),
            calls,
            window: wanted(spec).unwrap_or(30),
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

    /// The key `spec` wants, if it wants eksodus to make one.
    pub fn desired(&self, spec: &EnvironmentSpec) -> Vec<Desired> {
        if wanted(spec).is_none() {
            return vec![];
        }
        vec![Desired {
            key: KEY.into(),
            kind: "kms-key".into(),
            props: json!({"alias": alias(&self.env), "enabled": true, "tags": self.user_tags})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            immutable: vec![],
            depends_on: vec![],
            cost: Cost::new(2, 2, 2),
        }]
    }

    /// Finds the key by its alias, and keeps it when its tags say it is this environment's.
    pub async fn discover(&self) -> Result<Vec<Observed>, StepError> {
        let name = alias(&self.env);
        let target = retry(&self.reads, || async {
            let mut marker = None;
            loop {
                let r = self
                    .calls
                    .read(|| self.kms.list_aliases().set_marker(marker.clone()).send())
                    .await
                    .map_err(|e| step_error("ListAliases", e))?;
                if let Some(a) = r.aliases().iter().find(|a| a.alias_name() == Some(name.as_str())) {
                    return Ok(a.target_key_id().map(String::from));
                }
                marker = r.next_marker().map(String::from);
                if !r.truncated() || marker.is_none() {
                    return Ok(None);
                }
            }
        })
        .await?;
        let Some(id) = target else { return Ok(vec![]) };
        let (meta, tag_list) = retry(&self.reads, || async {
            let d = self
                .calls
                .read(|| self.kms.describe_key().key_id(&id).send())
                .await
                .map_err(|e| step_error(format!("DescribeKey {id}"), e))?;
            let t = self
                .calls
                .read(|| self.kms.list_resource_tags().key_id(&id).send())
                .await
                .map_err(|e| step_error(format!("ListResourceTags {id}"), e))?;
            Ok((d, t))
        })
        .await?;
        let t: BTreeMap<String, String> =
            tag_list.tags().iter().map(|t| (t.tag_key().to_string(), t.tag_value().to_string())).collect();
        if !tags::is_owned(&t, &self.env, COMPONENT) {
            return Ok(vec![]);
        }
        let Some(m) = meta.key_metadata() else { return Ok(vec![]) };
        let state = m.key_state().cloned();
        Ok(vec![Observed {
            key: KEY.into(),
            kind: "kms-key".into(),
            physical_id: m.arn().unwrap_or_default().to_string(),
            props: json!({
                "alias": name,
                "enabled": state == Some(KeyState::Enabled),
                "state": state.map(|s| s.as_str().to_string()),
                "tags": t,
            })
            .as_object()
            .cloned()
            .unwrap_or_default(),
            depends_on: vec![],
            delete_cost: 2,
        }])
    }

    fn tags(&self) -> Vec<Tag> {
        tags::ownership(&self.env, COMPONENT, KEY, &self.user_tags)
            .into_iter()
            .map(|(k, v)| Tag::builder().tag_key(k).tag_value(v).build().expect("key and value are set"))
            .collect()
    }

    async fn create(&self, op: &Operation, ctx: &OpContext) -> Result<Option<String>, StepError> {
        if ctx.attempt > 1 {
            // an earlier attempt may have made the key (and its alias)
            if let Some(o) = self.discover().await?.into_iter().next() {
                return Ok(Some(o.physical_id));
            }
        }
        let k = self
            .calls
            .create(|| {
                self.kms
                    .create_key()
                    .description(format!("eksodus {}: envelope encryption of Kubernetes secrets", self.env))
                    .set_tags(Some(self.tags()))
                    .send()
            })
            .await
            .map_err(|e| step_error("CreateKey", e))?;
        let Some(m) = k.key_metadata() else { return Err(StepError::permanent("CreateKey returned no key")) };
        let arn = m.arn().unwrap_or_default().to_string();
        let name = op.step.desired.as_ref().and_then(|d| d.get("alias")).and_then(Value::as_str).unwrap_or_default();
        match self.calls.create(|| self.kms.create_alias().alias_name(name).target_key_id(m.key_id()).send()).await {
            Ok(_) => {}
            Err(e) if error_code(&e) == Some("AlreadyExistsException") => {
                return Err(StepError::permanent(format!(
                    "{name} already names a key that is not this environment's; remove the alias or name a key in cluster.encryption.key_arn"
                )))
            }
            Err(e) => return Err(step_error(format!("CreateAlias {name}"), e)),
        }
        Ok(Some(arn))
    }

    async fn update(&self, op: &Operation) -> Result<Option<String>, StepError> {
        let arn = op.step.physical_id.clone().unwrap_or_default();
        let id = key_id(&arn);
        let have: Map<String, Value> = op.step.observed.clone().unwrap_or_default();
        if have.get("state").and_then(Value::as_str) == Some("PendingDeletion") {
            self.calls
                .read(|| self.kms.cancel_key_deletion().key_id(&id).send())
                .await
                .map_err(|e| step_error(format!("CancelKeyDeletion {id}"), e))?;
        }
        self.calls
            .read(|| self.kms.enable_key().key_id(&id).send())
            .await
            .map_err(|e| step_error(format!("EnableKey {id}"), e))?;
        Ok(Some(arn))
    }

    async fn delete(&self, op: &Operation, ctx: &OpContext) -> Result<Option<String>, StepError> {
        let arn = op.step.physical_id.clone().unwrap_or_default();
        let id = key_id(&arn);
        let have = op.step.observed.clone().unwrap_or_default();
        if have.get("state").and_then(Value::as_str) == Some("PendingDeletion") {
            return Ok(Some(arn));
        }
        let window = self.window as i32;
        match self
            .calls
            .read(|| self.kms.schedule_key_deletion().key_id(&id).pending_window_in_days(window).send())
            .await
        {
            Ok(_) => {}
            Err(e) if error_code(&e) == Some("KMSInvalidStateException") => {} // already pending
            Err(e) => return Err(step_error(format!("ScheduleKeyDeletion {id}"), e)),
        }
        ctx.leftover(
            format!("KMS key {arn}"),
            format!("scheduled for deletion in {window} days (KMS never deletes keys at once); an `up` before then takes it back"),
        );
        Ok(Some(arn))
    }
}

impl Executor for Kms {
    fn execute<'a>(
        &'a self,
        op: &'a Operation,
        ctx: &'a OpContext,
    ) -> BoxFuture<'a, Result<Option<String>, StepError>> {
        Box::pin(async move {
            match op.kind {
                OpKind::Create => self.create(op, ctx).await,
                OpKind::Update => self.update(op).await,
                OpKind::Delete => self.delete(op, ctx).await,
            }
        })
    }
}
