//! The Kubernetes service accounts eksodus makes for its IRSA and Pod Identity roles (pure).
//!
//! An entry of `access.service_accounts` or `access.pod_identities` with `create_service_account` wants its
//! service account in the cluster: [`desired`] gives the objects, [`sort`] decides, from what the cluster has,
//! which to apply, which to leave alone and which to delete. The rules (eksctl's, without
//! `--override-existing-serviceaccounts`):
//!
//! - eksodus's service accounts carry [`OWNER_LABEL`] with the environment's name; only those are changed or
//!   deleted;
//! - one that exists without that label is the user's: it is left as it is and reported;
//! - one with the label that the spec no longer lists is deleted; its namespace is never deleted.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{json, Value};

use eksodus_core::spec::{EnvironmentSpec, ServiceAccountRole, IRSA_ROLE_ANNOTATION, OWNER_LABEL};

/// A service account eksodus wants, as it is applied (server-side apply, eksodus's field manager).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Wanted {
    /// Its namespace (made when missing).
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The object to apply.
    pub object: Value,
}

/// A service account as the cluster has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

/// What to do about the service accounts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actions {
    /// Service accounts to apply (missing, or eksodus's).
    pub apply: Vec<Wanted>,
    /// `namespace/name` of service accounts that exist and are not eksodus's: left alone.
    pub not_ours: Vec<String>,
    /// `(namespace, name)` of eksodus's service accounts the spec no longer lists.
    pub delete: Vec<(String, String)>,
}

/// What happened to one service account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// Made.
    Created {
        /// `namespace/name`.
        service_account: String,
    },
    /// Its labels or annotations changed.
    Updated {
        /// `namespace/name`.
        service_account: String,
    },
    /// Deleted: eksodus made it and the spec no longer lists it.
    Deleted {
        /// `namespace/name`.
        service_account: String,
    },
    /// It exists without eksodus's label, so it is the user's and was left as it is (its role annotation is
    /// the user's to add).
    NotOurs {
        /// `namespace/name`.
        service_account: String,
    },
}

/// The service accounts `spec` wants made, in spec order. `irsa_role_arn` gives the ARN an IRSA service
/// account's `eks.amazonaws.com/role-arn` annotation names (`iam::irsa_role_arn`); Pod Identity service
/// accounts get no role annotation (the association binds them).
pub fn desired(spec: &EnvironmentSpec, irsa_role_arn: impl Fn(&ServiceAccountRole) -> String) -> Vec<Wanted> {
    let Some(a) = &spec.access else { return vec![] };
    let irsa = a.service_accounts.iter().map(|s| (s, true));
    let pod = a.pod_identities.iter().map(|s| (s, false));
    irsa.chain(pod)
        .filter(|(s, _)| s.create_service_account)
        .map(|(s, is_irsa)| {
            let mut labels: BTreeMap<String, String> = s.labels.clone();
            labels.insert(OWNER_LABEL.into(), spec.name.clone());
            let mut annotations = s.annotations.clone();
            if is_irsa {
                annotations.insert(IRSA_ROLE_ANNOTATION.into(), irsa_role_arn(s));
            }
            let mut metadata = json!({"name": s.name, "namespace": s.namespace, "labels": labels});
            if !annotations.is_empty() {
                metadata["annotations"] = json!(annotations);
            }
            Wanted {
                namespace: s.namespace.clone(),
                name: s.name.clone(),
                object: json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata}),
            }
        })
        .collect()
}

/// The namespaces the wanted service accounts live in, each once.
pub fn namespaces(wanted: &[Wanted]) -> Vec<String> {
    wanted.iter().map(|w| w.namespace.clone()).collect::<BTreeSet<_>>().into_iter().collect()
}

/// Decides, from `existing` (every service account that is eksodus's for environment `env`, plus any other
/// one at a wanted name), what to apply, skip and delete.
pub fn sort(env: &str, wanted: &[Wanted], existing: &[Existing]) -> Actions {
    let ours = |e: &Existing| e.labels.get(OWNER_LABEL).is_some_and(|v| v == env);
    let mut out = Actions::default();
    for w in wanted {
        match existing.iter().find(|e| e.namespace == w.namespace && e.name == w.name) {
            Some(e) if !ours(e) => out.not_ours.push(format!("{}/{}", w.namespace, w.name)),
            _ => out.apply.push(w.clone()),
        }
    }
    for e in existing.iter().filter(|e| ours(e)) {
        if !wanted.iter().any(|w| w.namespace == e.namespace && w.name == e.name) {
            out.delete.push((e.namespace.clone(), e.name.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use eksodus_core::spec::AccessSpec;

    fn spec(access: AccessSpec) -> EnvironmentSpec {
        let mut s: EnvironmentSpec =
            serde_saphyr::from_str("name: demo\nregion: eu-west-1\nnetwork:\n  cidr: 10.0.0.0/16\n  azs: 2\n")
                .expect("spec");
        s.access = Some(access);
        s
    }

    fn sa(ns: &str, name: &str, create: bool) -> ServiceAccountRole {
        ServiceAccountRole {
            namespace: ns.into(),
            name: name.into(),
            policies: vec!["arn:aws:iam::aws:policy/ReadOnlyAccess".into()],
            create_service_account: create,
            ..Default::default()
        }
    }

    fn existing(ns: &str, name: &str, owner: Option<&str>) -> Existing {
        Existing {
            namespace: ns.into(),
            name: name.into(),
            labels: owner.map(|o| BTreeMap::from([(OWNER_LABEL.to_string(), o.to_string())])).unwrap_or_default(),
        }
    }

    #[test]
    fn irsa_accounts_name_their_role_and_pod_identity_ones_do_not() {
        let mut irsa = sa("apps", "web", true);
        irsa.labels.insert("team".into(), "shop".into());
        irsa.annotations.insert("example.com/owner".into(), "shop".into());
        let access = AccessSpec {
            service_accounts: vec![irsa, sa("apps", "role-only", false)],
            pod_identities: vec![sa("apps", "worker", true)],
            ..Default::default()
        };
        let w = desired(&spec(access), |s| format!("arn:aws:iam::111122223333:role/x-{}", s.name));
        assert_eq!(w.len(), 2, "the role-only entry makes no service account");
        assert_eq!(
            w[0].object["metadata"],
            json!({
                "name": "web", "namespace": "apps",
                "labels": {"eksodus.io/environment": "demo", "team": "shop"},
                "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/x-web", "example.com/owner": "shop"},
            })
        );
        assert_eq!(
            w[1].object["metadata"],
            json!({"name": "worker", "namespace": "apps", "labels": {"eksodus.io/environment": "demo"}})
        );
        assert_eq!(namespaces(&w), vec!["apps".to_string()]);
    }

    #[test]
    fn only_eksodus_accounts_of_this_environment_are_changed_or_deleted() {
        let access = AccessSpec {
            service_accounts: vec![sa("apps", "web", true), sa("apps", "users", true), sa("apps", "other-env", true)],
            ..Default::default()
        };
        let w = desired(&spec(access), |_| "arn:aws:iam::111122223333:role/r".into());
        let found = [
            existing("apps", "web", Some("demo")),
            existing("apps", "users", None),
            existing("apps", "other-env", Some("prod")),
            existing("apps", "gone", Some("demo")),
        ];
        let a = sort("demo", &w, &found);
        let applied: Vec<&str> = a.apply.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(applied, ["web"]);
        assert_eq!(a.not_ours, ["apps/users", "apps/other-env"]);
        assert_eq!(a.delete, [("apps".to_string(), "gone".to_string())]);
    }

    #[test]
    fn nothing_to_do_without_entries_that_make_accounts() {
        let access = AccessSpec { service_accounts: vec![sa("apps", "web", false)], ..Default::default() };
        let w = desired(&spec(access), |_| unreachable!("no IRSA annotation without a service account"));
        assert!(w.is_empty());
        assert_eq!(sort("demo", &w, &[]), Actions::default());
        // a labelled leftover is still deleted once the spec stops asking for it
        let a = sort("demo", &w, &[existing("apps", "web", Some("demo"))]);
        assert_eq!(a.delete.len(), 1);
    }
}
