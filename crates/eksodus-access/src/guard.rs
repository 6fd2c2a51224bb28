//! The lockout guard: refuses changes that would leave nobody able to administer the cluster, or cut off nodes
//! that still use a role. Pure: it compares two snapshots of who can get in.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::awsauth::{normalize_arn, Kind, Mapping, MASTERS};

pub use eksodus_core::spec::AuthenticationMode as AuthMode;

/// The EKS access policy that makes a principal cluster admin.
pub const CLUSTER_ADMIN_POLICY: &str = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy";

/// What the guard needs to know of one access entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntrySummary {
    /// IAM principal.
    pub principal_arn: String,
    /// `STANDARD`, `EC2_LINUX`, `EC2_WINDOWS`, `FARGATE_LINUX`.
    pub entry_type: String,
    /// Kubernetes groups.
    pub groups: Vec<String>,
    /// Whether the cluster-admin access policy is associated at cluster scope.
    pub cluster_admin: bool,
}

/// Who can get in, at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Authentication mode.
    pub mode: AuthMode,
    /// aws-auth mappings.
    pub mappings: Vec<Mapping>,
    /// Access entries.
    pub entries: Vec<EntrySummary>,
}

impl Snapshot {
    /// The principals that are cluster admins (normalized ARNs).
    pub fn admins(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        if self.mode.reads_config_map() {
            for m in self.mappings.iter().filter(|m| m.is_admin()) {
                out.insert(normalize_arn(m.kind, &m.arn));
            }
        }
        if self.mode.reads_access_entries() {
            for e in &self.entries {
                if e.cluster_admin || e.groups.iter().any(|g| g == MASTERS) {
                    out.insert(normalize_arn(Kind::Role, &e.principal_arn));
                }
            }
        }
        out
    }

    /// Whether nodes using `role` can join.
    pub fn admits_nodes(&self, role: &str) -> bool {
        let key = normalize_arn(Kind::Role, role);
        let by_map = self.mode.reads_config_map()
            && self.mappings.iter().any(|m| {
                m.kind == Kind::Role
                    && normalize_arn(Kind::Role, &m.arn) == key
                    && m.groups.iter().any(|g| g == "system:nodes")
            });
        let by_entry = self.mode.reads_access_entries()
            && self.entries.iter().any(|e| {
                normalize_arn(Kind::Role, &e.principal_arn) == key
                    && (e.entry_type == "EC2_LINUX" || e.entry_type == "EC2_WINDOWS")
            });
        by_map || by_entry
    }
}

/// Why the guard refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Lockout {
    /// After the change nobody is in `system:masters` or has the cluster-admin access policy.
    NoAdminLeft {
        /// The admins before.
        before: Vec<String>,
    },
    /// Nodes of these nodegroup roles could no longer join.
    NodeRoleCutOff {
        /// The roles.
        roles: Vec<String>,
    },
}

impl fmt::Display for Lockout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lockout::NoAdminLeft { before } => write!(
                f,
                "refusing a change that leaves nobody with cluster-admin access (now: {}); pass the force option if that is really wanted",
                before.join(", ")
            ),
            Lockout::NodeRoleCutOff { roles } => write!(
                f,
                "refusing a change that removes the node mapping of {} while a nodegroup still uses it; pass the force option if that is really wanted",
                roles.join(", ")
            ),
        }
    }
}

impl std::error::Error for Lockout {}

/// Checks a change. `nodegroup_roles` are the node roles nodegroups use now. With `force` nothing is refused.
pub fn check(before: &Snapshot, after: &Snapshot, nodegroup_roles: &[String], force: bool) -> Result<(), Lockout> {
    if force {
        return Ok(());
    }
    let had = before.admins();
    if !had.is_empty() && after.admins().is_empty() {
        return Err(Lockout::NoAdminLeft { before: had.into_iter().collect() });
    }
    let cut: Vec<String> =
        nodegroup_roles.iter().filter(|r| before.admits_nodes(r) && !after.admits_nodes(r)).cloned().collect();
    if !cut.is_empty() {
        return Err(Lockout::NodeRoleCutOff { roles: cut });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: &str = "arn:aws:iam::111122223333:role/node";
    const ADMIN: &str = "arn:aws:iam::111122223333:role/admin";

    fn snap(mode: AuthMode, maps: Vec<Mapping>, entries: Vec<EntrySummary>) -> Snapshot {
        Snapshot { mode, mappings: maps, entries }
    }
    fn node_map() -> Mapping {
        Mapping::role(NODE, "system:node:{{EC2PrivateDNSName}}", &["system:bootstrappers", "system:nodes"])
    }
    fn admin_map() -> Mapping {
        Mapping::role(ADMIN, "admin", &[MASTERS])
    }

    #[test]
    fn refuses_removing_the_last_admin() {
        let before = snap(AuthMode::ConfigMap, vec![admin_map(), node_map()], vec![]);
        let after = snap(AuthMode::ConfigMap, vec![node_map()], vec![]);
        assert!(matches!(check(&before, &after, &[], false), Err(Lockout::NoAdminLeft { .. })));
        assert!(check(&before, &after, &[], true).is_ok(), "force overrides");
        // an access entry with the admin policy keeps someone in, but only in a mode that reads entries
        let entry = EntrySummary {
            principal_arn: ADMIN.into(),
            entry_type: "STANDARD".into(),
            groups: vec![],
            cluster_admin: true,
        };
        let after_api = snap(AuthMode::ApiAndConfigMap, vec![node_map()], vec![entry.clone()]);
        assert!(check(&before, &after_api, &[], false).is_ok());
        let after_cm = snap(AuthMode::ConfigMap, vec![node_map()], vec![entry]);
        assert!(check(&before, &after_cm, &[], false).is_err());
    }

    #[test]
    fn switching_to_api_mode_without_entries_locks_out() {
        let before = snap(AuthMode::ApiAndConfigMap, vec![admin_map(), node_map()], vec![]);
        let after = snap(AuthMode::Api, vec![admin_map(), node_map()], vec![]);
        assert!(matches!(check(&before, &after, &[], false), Err(Lockout::NoAdminLeft { .. })));
    }

    #[test]
    fn refuses_cutting_off_a_node_role_in_use() {
        let before = snap(AuthMode::ConfigMap, vec![admin_map(), node_map()], vec![]);
        let after = snap(AuthMode::ConfigMap, vec![admin_map()], vec![]);
        let in_use = vec![format!("arn:aws:iam::111122223333:role/path/node")];
        assert!(matches!(check(&before, &after, &in_use, false), Err(Lockout::NodeRoleCutOff { .. })));
        assert!(check(&before, &after, &[], false).is_ok(), "no nodegroup uses it: fine");
        // replaced by an EC2_LINUX access entry: fine
        let entry = EntrySummary {
            principal_arn: NODE.into(),
            entry_type: "EC2_LINUX".into(),
            groups: vec![],
            cluster_admin: false,
        };
        let after = snap(AuthMode::ApiAndConfigMap, vec![admin_map()], vec![entry]);
        assert!(check(&before, &after, &in_use, false).is_ok());
    }
}
