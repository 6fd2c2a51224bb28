//! aws-auth in a live cluster (feature `kube`): read, merge, guard, write with a resourceVersion precondition;
//! on a conflict read and merge again. Entries others added are never dropped, because every write starts
//! from what the server holds at that moment.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use eksodus_core::kube::call as kcall;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use rand::Rng;
use serde::Serialize;

use eksodus_core::spec::EnvironmentSpec;

use crate::awsauth::{AwsAuth, Change, Edit, Kind, Mapping};
use crate::guard::{self, AuthMode, EntrySummary, Snapshot};
use crate::Error;

/// Namespace of the ConfigMap.
pub const NAMESPACE: &str = "kube-system";
/// Name of the ConfigMap.
pub const NAME: &str = "aws-auth";
/// Annotation listing the mappings eksodus manages (`role|arn` per line), so it removes only its own.
pub const MANAGED_ANNOTATION: &str = "eksodus.io/aws-auth-managed";
/// Field manager name on writes.
pub use eksodus_core::FIELD_MANAGER;

/// How an edit is done.
#[derive(Debug, Clone)]
pub struct EditOptions {
    /// Skip the lockout guard.
    pub force: bool,
    /// Validate with the server (`dryRun=All`) but store nothing.
    pub dry_run: bool,
    /// Node roles nodegroups use now (the guard refuses cutting them off). Empty means "not known": then every
    /// role the current aws-auth admits as a node (`system:nodes`) counts as in use, so an edit that does not
    /// know the nodegroups cannot lock their nodes out either.
    pub nodegroup_roles: Vec<String>,
    /// The cluster's authentication mode.
    pub mode: AuthMode,
    /// The cluster's access entries (admins there count for the guard).
    pub entries: Vec<EntrySummary>,
    /// Read-merge-write rounds before giving up on conflicts.
    pub max_attempts: u32,
}

impl Default for EditOptions {
    fn default() -> Self {
        EditOptions {
            force: false,
            dry_run: false,
            nodegroup_roles: vec![],
            mode: AuthMode::ConfigMap,
            entries: vec![],
            max_attempts: 50,
        }
    }
}

/// What an edit did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EditOutcome {
    /// The changes (empty when the ConfigMap already was as wanted).
    pub changes: Vec<Change>,
    /// Read-merge-write rounds it took (more than one means it met concurrent writers).
    pub attempts: u32,
    /// Whether the ConfigMap was created.
    pub created: bool,
    /// Whether anything was stored (false for dry runs and no-ops).
    pub written: bool,
}

fn managed_of(cm: Option<&ConfigMap>) -> BTreeSet<(Kind, String)> {
    cm.and_then(|c| c.metadata.annotations.as_ref())
        .and_then(|a| a.get(MANAGED_ANNOTATION))
        .map(|v| {
            v.lines()
                .filter_map(|l| {
                    let (k, arn) = l.split_once('|')?;
                    let kind = match k {
                        "role" => Kind::Role,
                        "user" => Kind::User,
                        _ => return None,
                    };
                    Some((kind, arn.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The accounts eksodus added to `mapAccounts` (`account|ID` lines of the same annotation).
fn managed_accounts_of(cm: Option<&ConfigMap>) -> BTreeSet<String> {
    cm.and_then(|c| c.metadata.annotations.as_ref())
        .and_then(|a| a.get(MANAGED_ANNOTATION))
        .map(|v| v.lines().filter_map(|l| l.strip_prefix("account|").map(String::from)).collect())
        .unwrap_or_default()
}

fn render_managed(m: &BTreeSet<(Kind, String)>, accounts: &BTreeSet<String>) -> String {
    m.iter()
        .map(|(k, a)| format!("{}|{a}", if *k == Kind::Role { "role" } else { "user" }))
        .chain(accounts.iter().map(|a| format!("account|{a}")))
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// The aws-auth ConfigMap of one cluster.
#[derive(Clone)]
pub struct AwsAuthApi {
    api: Api<ConfigMap>,
}

impl std::fmt::Debug for AwsAuthApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AwsAuthApi")
    }
}

impl AwsAuthApi {
    /// For the cluster `client` talks to.
    pub fn new(client: Client) -> Self {
        Self::in_namespace(client, NAMESPACE)
    }

    /// An `aws-auth` ConfigMap in another namespace: tests use a throw-away one, never a real cluster's
    /// `kube-system`.
    pub fn in_namespace(client: Client, namespace: &str) -> Self {
        AwsAuthApi { api: Api::namespaced(client, namespace) }
    }

    /// The current mappings (empty when the ConfigMap does not exist).
    pub async fn read(&self) -> Result<AwsAuth, Error> {
        let cm = kcall(|| self.api.get_opt(NAME)).await.map_err(Error::Kube)?;
        let data: BTreeMap<String, String> = cm.and_then(|c| c.data).unwrap_or_default();
        AwsAuth::parse(&data).map_err(Error::Malformed)
    }

    /// Edits the ConfigMap: `decide` sees the current mappings and the managed set and returns the edits and
    /// the new managed set. Repeated from a fresh read after every conflict.
    pub async fn edit<F>(&self, decide: F, opts: &EditOptions) -> Result<EditOutcome, Error>
    where
        F: FnMut(&AwsAuth, &BTreeSet<(Kind, String)>) -> (Vec<Edit>, BTreeSet<(Kind, String)>),
    {
        self.edit_with_accounts(decide, None, opts).await
    }

    /// [`AwsAuthApi::edit`], and when `accounts` is given, `mapAccounts` made to hold them: accounts eksodus
    /// added before and no longer wanted are removed, accounts others added are kept.
    async fn edit_with_accounts<F>(
        &self,
        mut decide: F,
        accounts: Option<&[String]>,
        opts: &EditOptions,
    ) -> Result<EditOutcome, Error>
    where
        F: FnMut(&AwsAuth, &BTreeSet<(Kind, String)>) -> (Vec<Edit>, BTreeSet<(Kind, String)>),
    {
        let pp = PostParams { dry_run: opts.dry_run, field_manager: Some(FIELD_MANAGER.into()) };
        for attempt in 1..=opts.max_attempts.max(1) {
            let current = kcall(|| self.api.get_opt(NAME)).await.map_err(Error::Kube)?;
            let data: BTreeMap<String, String> = current.as_ref().and_then(|c| c.data.clone()).unwrap_or_default();
            let before = AwsAuth::parse(&data).map_err(Error::Malformed)?;
            let managed = managed_of(current.as_ref());
            let managed_accounts = managed_accounts_of(current.as_ref());
            let (mut edits, new_managed) = decide(&before, &managed);
            let new_accounts = match accounts {
                Some(want) => {
                    edits.extend(before.account_edits_towards(want, &managed_accounts));
                    want.iter().cloned().collect()
                }
                None => managed_accounts.clone(),
            };
            let mut after = before.clone();
            let changes = after.apply(&edits);
            if changes.is_empty() && new_managed == managed && new_accounts == managed_accounts {
                return Ok(EditOutcome { changes, attempts: attempt, created: false, written: false });
            }
            let snap =
                |a: &AwsAuth| Snapshot { mode: opts.mode, mappings: a.mappings.clone(), entries: opts.entries.clone() };
            let node_roles: Vec<String> = if opts.nodegroup_roles.is_empty() {
                before
                    .mappings
                    .iter()
                    .filter(|m| m.kind == Kind::Role && m.groups.iter().any(|g| g == "system:nodes"))
                    .map(|m| m.arn.clone())
                    .collect()
            } else {
                opts.nodegroup_roles.clone()
            };
            guard::check(&snap(&before), &snap(&after), &node_roles, opts.force).map_err(Error::Lockout)?;
            let mut annotations = current.as_ref().and_then(|c| c.metadata.annotations.clone()).unwrap_or_default();
            if new_managed.is_empty() && new_accounts.is_empty() {
                annotations.remove(MANAGED_ANNOTATION);
            } else {
                annotations.insert(MANAGED_ANNOTATION.into(), render_managed(&new_managed, &new_accounts));
            }
            let result = match &current {
                None => {
                    let cm = ConfigMap {
                        metadata: ObjectMeta {
                            name: Some(NAME.into()),
                            annotations: Some(annotations),
                            ..Default::default()
                        },
                        data: Some(after.render()),
                        ..Default::default()
                    };
                    kcall(|| self.api.create(&pp, &cm)).await.map(|_| true)
                }
                Some(cur) => {
                    let mut cm = cur.clone();
                    cm.metadata.managed_fields = None;
                    cm.metadata.annotations = Some(annotations);
                    cm.data = Some(after.render());
                    // metadata.resourceVersion is still the one read: the server refuses a stale write with 409
                    kcall(|| self.api.replace(NAME, &pp, &cm)).await.map(|_| false)
                }
            };
            match result {
                Ok(created) => return Ok(EditOutcome { changes, attempts: attempt, created, written: !opts.dry_run }),
                Err(e) if is_status(&e, 409) => {
                    // Conflict (stale resourceVersion) or AlreadyExists (created meanwhile): read and merge again
                    let backoff = Duration::from_millis(rand::thread_rng().gen_range(1..=(5 * attempt.min(20) as u64)));
                    tokio::time::sleep(backoff).await;
                }
                Err(e) => return Err(Error::Kube(e)),
            }
        }
        Err(Error::TooManyConflicts { attempts: opts.max_attempts })
    }

    /// Applies a fixed list of edits (upserts and removals), merged into whatever the server holds.
    pub async fn apply_edits(&self, edits: &[Edit], opts: &EditOptions) -> Result<EditOutcome, Error> {
        self.edit(|_, managed| (edits.to_vec(), managed.clone()), opts).await
    }

    /// Makes the mappings eksodus manages equal `desired`: adds and updates them, removes the ones it added
    /// before and `desired` no longer has, and leaves every other mapping alone.
    pub async fn apply_desired(&self, desired: &[Mapping], opts: &EditOptions) -> Result<EditOutcome, Error> {
        let keys: BTreeSet<(Kind, String)> = desired.iter().map(Mapping::key).collect();
        self.edit(|current, managed| (current.edits_towards(desired, managed), keys.clone()), opts).await
    }

    /// Makes aws-auth hold what `spec` asks for: its mappings ([`AwsAuthApi::apply_desired`]), the mappings
    /// of its service access in `account`, and its accounts in `mapAccounts`, in one read-merge-write.
    /// Service access without the account is refused ([`Error::Invalid`]) before anything is read.
    pub async fn apply_spec(
        &self,
        spec: &EnvironmentSpec,
        account: Option<&str>,
        opts: &EditOptions,
    ) -> Result<EditOutcome, Error> {
        let mut desired = crate::awsauth::desired_mappings(spec);
        let services = spec.access.as_ref().is_some_and(|a| !a.service_access.is_empty());
        match account {
            Some(acct) => desired.extend(crate::awsauth::service_mappings(spec, acct)),
            None if services => {
                return Err(Error::Invalid {
                    field: "access.service_access".into(),
                    message: "a service's role mapping names the cluster's account, which is not known here".into(),
                })
            }
            None => {}
        }
        let accounts = crate::awsauth::desired_accounts(spec);
        let keys: BTreeSet<(Kind, String)> = desired.iter().map(Mapping::key).collect();
        self.edit_with_accounts(
            |current, managed| (current.edits_towards(&desired, managed), keys.clone()),
            Some(&accounts),
            opts,
        )
        .await
    }
}
