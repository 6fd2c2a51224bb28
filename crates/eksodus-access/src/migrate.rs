//! Moving from aws-auth to EKS access entries, as a plan: which entries would be created, which mappings have
//! no equivalent and why, and the authentication-mode steps (only ever CONFIG_MAP → API_AND_CONFIG_MAP → API).
//! Pure.

use std::collections::BTreeSet;

use serde::Serialize;

use eksodus_core::spec::{AccessEntrySpec, AuthenticationMode, PolicyAssociationSpec};

use crate::awsauth::{AwsAuth, Kind, Mapping, MASTERS};
use crate::guard::EntrySummary;

/// A mapping that becomes no entry, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unmapped {
    /// What it was (`mapRoles` entry or `mapAccounts` account).
    pub what: String,
    /// Why it has no access-entry equivalent, or why it is skipped.
    pub reason: String,
}

/// The migration plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MigrationPlan {
    /// Mode changes to make first (empty when the cluster already reads entries).
    pub mode_steps: Vec<AuthenticationMode>,
    /// Entries to create.
    pub entries: Vec<AccessEntrySpec>,
    /// What has no equivalent (or exists already).
    pub unmapped: Vec<Unmapped>,
    /// Advice for the last step.
    pub next: String,
}

const NODE_GROUPS: &[&str] = &["system:bootstrappers", "system:nodes"];
const RESERVED_USER_PREFIXES: &[&str] = &["system:", "eks:", "aws:", "amazon:", "iam:"];

fn entry_for(m: &Mapping) -> Result<AccessEntrySpec, String> {
    let has = |g: &str| m.groups.iter().any(|x| x == g);
    let user = m.username.clone().unwrap_or_default();
    let principal_arn =
        if m.kind == Kind::Role { crate::awsauth::normalize_arn(Kind::Role, &m.arn) } else { m.arn.clone() };
    let node_like = NODE_GROUPS.iter().all(|g| has(g));
    if node_like && m.kind == Kind::Role {
        let typ = if has("system:node-proxier") && user.contains("{{SessionName}}") {
            "FARGATE_LINUX"
        } else if has("eks:kube-proxy-windows") {
            "EC2_WINDOWS"
        } else {
            "EC2_LINUX"
        };
        return Ok(AccessEntrySpec {
            principal_arn,
            entry_type: typ.into(),
            kubernetes_groups: vec![],
            username: None,
            policies: vec![],
        });
    }
    if let Some(g) = m.groups.iter().find(|g| g.starts_with("system:") && *g != MASTERS) {
        return Err(format!("group {g} cannot be granted through an access entry (EKS refuses system: groups); bind RBAC to another group"));
    }
    let mut policies = vec![];
    if has(MASTERS) {
        policies.push(PolicyAssociationSpec { policy: "AmazonEKSClusterAdminPolicy".into(), namespaces: vec![] });
    }
    let groups: Vec<String> = m.groups.iter().filter(|g| *g != MASTERS).cloned().collect();
    let username =
        if user.is_empty() || RESERVED_USER_PREFIXES.iter().any(|p| user.starts_with(p)) { None } else { Some(user) };
    Ok(AccessEntrySpec { principal_arn, entry_type: "STANDARD".into(), kubernetes_groups: groups, username, policies })
}

/// Plans the move of `aws_auth` to access entries on a cluster in `mode` that already has `existing` entries.
pub fn plan(aws_auth: &AwsAuth, mode: AuthenticationMode, existing: &[EntrySummary]) -> MigrationPlan {
    let have: BTreeSet<String> =
        existing.iter().map(|e| crate::awsauth::normalize_arn(Kind::Role, &e.principal_arn)).collect();
    let mut entries = Vec::new();
    let mut unmapped = Vec::new();
    for m in &aws_auth.mappings {
        let section = if m.kind == Kind::Role { "mapRoles" } else { "mapUsers" };
        let what = format!("{section} {}", m.arn);
        match entry_for(m) {
            Ok(e) if have.contains(&crate::awsauth::normalize_arn(Kind::Role, &e.principal_arn)) => {
                unmapped.push(Unmapped { what, reason: "an access entry for this principal exists already".into() })
            }
            Ok(e) => entries.push(e),
            Err(reason) => unmapped.push(Unmapped { what, reason }),
        }
    }
    for a in &aws_auth.accounts {
        unmapped.push(Unmapped {
            what: format!("mapAccounts {a}"),
            reason:
                "access entries are per principal; create one for each role or user of that account that needs access"
                    .into(),
        });
    }
    let mode_steps = match mode {
        AuthenticationMode::ConfigMap => vec![AuthenticationMode::ApiAndConfigMap],
        _ => vec![],
    };
    let next = match mode {
        AuthenticationMode::Api => "the cluster reads only access entries already".into(),
        _ => {
            "after checking that everyone can still get in, move to API (one way: EKS never goes back to the ConfigMap)"
                .into()
        }
    };
    MigrationPlan { mode_steps, entries, unmapped, next }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn mappings_become_entries_or_say_why_not() {
        let roles = "- rolearn: arn:aws:iam::111122223333:role/path/nodes\n  username: system:node:{{EC2PrivateDNSName}}\n  groups: [system:bootstrappers, system:nodes]\n\
- rolearn: arn:aws:iam::111122223333:role/admins\n  username: admin:{{SessionName}}\n  groups: [system:masters, ops]\n\
- rolearn: arn:aws:iam::111122223333:role/fargate\n  username: system:node:{{SessionName}}\n  groups: [system:bootstrappers, system:nodes, system:node-proxier]\n\
- rolearn: arn:aws:iam::111122223333:role/odd\n  username: odd\n  groups: [system:monitoring]\n\
- rolearn: arn:aws:iam::111122223333:role/existing\n  username: x\n  groups: [dev]\n";
        let data: BTreeMap<String, String> = [
            ("mapRoles".to_string(), roles.to_string()),
            ("mapAccounts".to_string(), "- \"444455556666\"\n".to_string()),
        ]
        .into();
        let a = AwsAuth::parse(&data).unwrap();
        let existing = [EntrySummary {
            principal_arn: "arn:aws:iam::111122223333:role/existing".into(),
            entry_type: "STANDARD".into(),
            groups: vec![],
            cluster_admin: false,
        }];
        let p = plan(&a, AuthenticationMode::ConfigMap, &existing);
        assert_eq!(p.mode_steps, [AuthenticationMode::ApiAndConfigMap]);
        let by: BTreeMap<&str, &AccessEntrySpec> = p.entries.iter().map(|e| (e.principal_arn.as_str(), e)).collect();
        assert_eq!(
            by["arn:aws:iam::111122223333:role/nodes"].entry_type, "EC2_LINUX",
            "path removed, type from groups"
        );
        assert_eq!(by["arn:aws:iam::111122223333:role/fargate"].entry_type, "FARGATE_LINUX");
        let admin = by["arn:aws:iam::111122223333:role/admins"];
        assert_eq!(admin.policies[0].policy, "AmazonEKSClusterAdminPolicy");
        assert_eq!(admin.kubernetes_groups, ["ops"]);
        assert_eq!(admin.username.as_deref(), Some("admin:{{SessionName}}"));
        let reasons: Vec<String> = p.unmapped.iter().map(|u| format!("{}: {}", u.what, u.reason)).collect();
        assert!(reasons.iter().any(|r| r.contains("role/odd") && r.contains("system:monitoring")), "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("role/existing") && r.contains("exists")), "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("444455556666")), "{reasons:?}");
        assert!(plan(&a, AuthenticationMode::Api, &existing).mode_steps.is_empty());
    }
}
