//! The `kube-system/aws-auth` ConfigMap as data: lossless parsing, validation, typed edits and diff. Pure.
//!
//! The ConfigMap's `data` holds YAML documents as strings: `mapRoles` and `mapUsers` (sequences of mappings)
//! and `mapAccounts` (a sequence of account IDs). [`AwsAuth::parse`] reads them and [`AwsAuth::render`] writes
//! them back; a section that no edit touched is written back as the exact string it was read from, and keys
//! eksodus does not know (in the data or inside an entry) are kept. Role ARNs are compared the way the
//! authenticator matches them: without an IAM path (`role/team/admin` maps as `role/admin`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A YAML mapping as read from aws-auth (keys are strings; order kept).
type YamlMap = serde_json::Map<String, Value>;

/// `data` key of the role mappings.
pub const MAP_ROLES: &str = "mapRoles";
/// `data` key of the user mappings.
pub const MAP_USERS: &str = "mapUsers";
/// `data` key of the accounts whose every identity maps to itself.
pub const MAP_ACCOUNTS: &str = "mapAccounts";
/// The group that is cluster-admin in every Kubernetes cluster.
pub const MASTERS: &str = "system:masters";
/// Username templates the authenticator expands.
pub const TEMPLATES: &[&str] =
    &["{{EC2PrivateDNSName}}", "{{AccountID}}", "{{SessionName}}", "{{SessionNameRaw}}", "{{AccessKeyID}}"];

/// Whether a mapping is for an IAM role or an IAM user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `mapRoles` entry (`rolearn`).
    Role,
    /// `mapUsers` entry (`userarn`).
    User,
}

impl Kind {
    fn section(self) -> &'static str {
        match self {
            Kind::Role => MAP_ROLES,
            Kind::User => MAP_USERS,
        }
    }
    fn arn_key(self) -> &'static str {
        match self {
            Kind::Role => "rolearn",
            Kind::User => "userarn",
        }
    }
}

/// One `mapRoles` or `mapUsers` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mapping {
    /// Role or user.
    pub kind: Kind,
    /// The ARN as written.
    pub arn: String,
    /// Kubernetes username (may hold templates); absent means the authenticator's default.
    pub username: Option<String>,
    /// Kubernetes groups.
    pub groups: Vec<String>,
    /// Keys of the entry eksodus does not interpret, kept as they were.
    #[serde(skip)]
    pub extra: Extra,
}

/// Keys of an entry eksodus does not interpret, in their original order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Extra(pub YamlMap);

impl Mapping {
    /// A role mapping.
    pub fn role(arn: &str, username: &str, groups: &[&str]) -> Self {
        Mapping {
            kind: Kind::Role,
            arn: arn.into(),
            username: Some(username.into()),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            extra: Default::default(),
        }
    }

    /// A user mapping.
    pub fn user(arn: &str, username: &str, groups: &[&str]) -> Self {
        Mapping {
            kind: Kind::User,
            arn: arn.into(),
            username: Some(username.into()),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            extra: Default::default(),
        }
    }

    /// The key the authenticator matches on: kind and normalized ARN.
    pub fn key(&self) -> (Kind, String) {
        (self.kind, normalize_arn(self.kind, &self.arn))
    }

    /// Whether the mapping puts its identity in `system:masters`.
    pub fn is_admin(&self) -> bool {
        self.groups.iter().any(|g| g == MASTERS)
    }

    fn to_yaml(&self) -> Value {
        let mut m = YamlMap::new();
        m.insert(self.kind.arn_key().into(), self.arn.clone().into());
        if let Some(u) = &self.username {
            m.insert("username".into(), u.clone().into());
        }
        m.insert("groups".into(), Value::Array(self.groups.iter().map(|g| Value::String(g.clone())).collect()));
        for (k, v) in &self.extra.0 {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }
}

/// An ARN as the authenticator matches it: a role's IAM path removed (`role/a/b/Name` → `role/Name`).
pub fn normalize_arn(kind: Kind, arn: &str) -> String {
    if kind != Kind::Role {
        return arn.to_string();
    }
    match arn.split_once(":role/") {
        Some((head, rest)) => format!("{head}:role/{}", rest.rsplit('/').next().unwrap_or(rest)),
        None => arn.to_string(),
    }
}

/// One problem in an aws-auth ConfigMap: where (`mapRoles[2].rolearn`) and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Path of the entry and field.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in one ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} problem(s) in aws-auth", self.0.len())?;
        for p in &self.0 {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// The parsed ConfigMap data, with what is needed to write it back losslessly.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AwsAuth {
    /// Role and user mappings, roles first, each in file order.
    pub mappings: Vec<Mapping>,
    /// `mapAccounts`.
    pub accounts: Vec<String>,
    original: BTreeMap<String, String>,
    touched: BTreeSet<&'static str>,
}

/// One edit of the mappings.
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    /// Add the mapping, or replace the one with the same key (its unknown keys are kept).
    Upsert(Mapping),
    /// Remove the mapping with this key, if present.
    Remove(Kind, String),
    /// Add an account to `mapAccounts` (every identity of it maps to its own ARN), if absent.
    AddAccount(String),
    /// Remove an account from `mapAccounts`, if present.
    RemoveAccount(String),
}

/// What an edit changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// A mapping was added.
    Added {
        /// The mapping.
        mapping: Mapping,
    },
    /// A mapping's username or groups changed.
    Updated {
        /// Before.
        from: Mapping,
        /// After.
        to: Mapping,
    },
    /// A mapping was removed.
    Removed {
        /// The mapping.
        mapping: Mapping,
    },
    /// An account was added to `mapAccounts`.
    AccountAdded {
        /// The account ID.
        account: String,
    },
    /// An account was removed from `mapAccounts`.
    AccountRemoved {
        /// The account ID.
        account: String,
    },
}

fn get_ci<'a>(m: &'a YamlMap, key: &str) -> Option<(&'a String, &'a Value)> {
    m.iter().find(|(k, _)| k.eq_ignore_ascii_case(key))
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn check_arn(kind: Kind, arn: &str) -> Result<(), String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let want = kind.arn_key().trim_end_matches("arn");
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && matches!(parts[1], "aws" | "aws-cn" | "aws-us-gov" | "aws-iso" | "aws-iso-b")
        && parts[2] == "iam"
        && parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].chars().all(|c| c.is_ascii_digit())
        && parts[5].strip_prefix(&format!("{want}/")).is_some_and(|n| !n.is_empty() && !n.ends_with('/'));
    if ok {
        return Ok(());
    }
    if arn.contains(":assumed-role/") {
        return Err(format!(
            "`{arn}` is an STS session ARN; map the IAM role (arn:aws:iam::ACCOUNT:role/NAME) instead"
        ));
    }
    Err(format!("`{arn}` is not an IAM {want} ARN (arn:aws:iam::ACCOUNT:{want}/NAME)"))
}

fn check_username(kind: Kind, u: &str) -> Result<(), String> {
    if u.is_empty() {
        return Err("is empty".into());
    }
    let mut rest = u;
    while let Some(start) = rest.find("{{") {
        let Some(end) = rest[start..].find("}}") else { return Err(format!("`{u}` has an unclosed `{{{{`")) };
        let t = &rest[start..start + end + 2];
        if !TEMPLATES.contains(&t) {
            return Err(format!("`{t}` is not a template the authenticator knows ({})", TEMPLATES.join(", ")));
        }
        if kind == Kind::User && t != "{{AccountID}}" && t != "{{AccessKeyID}}" {
            return Err(format!("`{t}` only applies to roles"));
        }
        rest = &rest[start + end + 2..];
    }
    Ok(())
}

impl AwsAuth {
    /// Parses the ConfigMap's `data`. Every problem is reported, each naming its entry and field.
    pub fn parse(data: &BTreeMap<String, String>) -> Result<AwsAuth, Problems> {
        let mut problems = Vec::new();
        let mut out = AwsAuth { original: data.clone(), ..Default::default() };
        for kind in [Kind::Role, Kind::User] {
            let section = kind.section();
            let Some(text) = data.get(section) else { continue };
            let doc: Value = match serde_saphyr::from_str(text) {
                Ok(v) => v,
                Err(e) => {
                    problems.push(Problem { path: section.into(), message: format!("is not valid YAML: {e}") });
                    continue;
                }
            };
            let items = match doc {
                Value::Null => continue,
                Value::Array(s) => s,
                other => {
                    problems.push(Problem {
                        path: section.into(),
                        message: format!("must be a list, got {}", describe(&other)),
                    });
                    continue;
                }
            };
            let mut seen: BTreeMap<String, usize> = BTreeMap::new();
            for (i, item) in items.into_iter().enumerate() {
                let at = |f: &str| if f.is_empty() { format!("{section}[{i}]") } else { format!("{section}[{i}].{f}") };
                let Value::Object(m) = item else {
                    problems
                        .push(Problem { path: at(""), message: format!("must be a mapping, got {}", describe(&item)) });
                    continue;
                };
                let arn = match get_ci(&m, kind.arn_key()) {
                    None => {
                        problems.push(Problem { path: at(kind.arn_key()), message: "is missing".into() });
                        None
                    }
                    Some((_, Value::String(s))) => match check_arn(kind, s) {
                        Ok(()) => Some(s.clone()),
                        Err(e) => {
                            problems.push(Problem { path: at(kind.arn_key()), message: e });
                            None
                        }
                    },
                    Some((_, v)) => {
                        problems.push(Problem {
                            path: at(kind.arn_key()),
                            message: format!("must be a string, got {}", describe(v)),
                        });
                        None
                    }
                };
                let username = match get_ci(&m, "username") {
                    None => None,
                    Some((_, Value::String(s))) => {
                        if let Err(e) = check_username(kind, s) {
                            problems.push(Problem { path: at("username"), message: e });
                        }
                        Some(s.clone())
                    }
                    Some((_, v)) => {
                        problems.push(Problem {
                            path: at("username"),
                            message: format!("must be a string, got {}", describe(v)),
                        });
                        None
                    }
                };
                let mut groups = Vec::new();
                match get_ci(&m, "groups") {
                    None | Some((_, Value::Null)) => {}
                    Some((_, Value::Array(gs))) => {
                        for (j, g) in gs.iter().enumerate() {
                            match g {
                                Value::String(s) if !s.is_empty() => groups.push(s.clone()),
                                other => problems.push(Problem {
                                    path: format!("{section}[{i}].groups[{j}]"),
                                    message: format!("must be a non-empty string, got {}", describe(other)),
                                }),
                            }
                        }
                    }
                    Some((_, v)) => problems
                        .push(Problem { path: at("groups"), message: format!("must be a list, got {}", describe(v)) }),
                }
                let extra: YamlMap = m
                    .iter()
                    .filter(|(k, _)| {
                        !(k.eq_ignore_ascii_case(kind.arn_key())
                            || k.eq_ignore_ascii_case("username")
                            || k.eq_ignore_ascii_case("groups"))
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let Some(arn) = arn else { continue };
                let key = normalize_arn(kind, &arn);
                if let Some(first) = seen.insert(key.clone(), i) {
                    problems.push(Problem {
                        path: at(kind.arn_key()),
                        message: format!("`{arn}` is mapped again (first at {section}[{first}]); the authenticator would use only one"),
                    });
                    continue;
                }
                out.mappings.push(Mapping { kind, arn, username, groups, extra: Extra(extra) });
            }
        }
        if let Some(text) = data.get(MAP_ACCOUNTS) {
            match serde_saphyr::from_str::<Value>(text) {
                Ok(Value::Null) => {}
                Ok(Value::Array(s)) => {
                    for (i, a) in s.iter().enumerate() {
                        let id = match a {
                            Value::String(s) => Some(s.clone()),
                            Value::Number(n) => Some(format!("{n:0>12}")),
                            _ => None,
                        };
                        match id {
                            Some(id) if id.len() == 12 && id.chars().all(|c| c.is_ascii_digit()) => {
                                out.accounts.push(id)
                            }
                            _ => problems.push(Problem {
                                path: format!("{MAP_ACCOUNTS}[{i}]"),
                                message: format!(
                                    "must be a 12-digit AWS account ID, got {}",
                                    serde_saphyr::to_string(a).unwrap_or_default().trim()
                                ),
                            }),
                        }
                    }
                }
                Ok(other) => problems.push(Problem {
                    path: MAP_ACCOUNTS.into(),
                    message: format!("must be a list, got {}", describe(&other)),
                }),
                Err(e) => {
                    problems.push(Problem { path: MAP_ACCOUNTS.into(), message: format!("is not valid YAML: {e}") })
                }
            }
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(Problems(problems))
        }
    }

    /// The mapping with this key.
    pub fn get(&self, kind: Kind, arn: &str) -> Option<&Mapping> {
        let key = normalize_arn(kind, arn);
        self.mappings.iter().find(|m| m.kind == kind && normalize_arn(kind, &m.arn) == key)
    }

    /// Applies edits in order, returning what changed (nothing for an upsert of an equal mapping).
    pub fn apply(&mut self, edits: &[Edit]) -> Vec<Change> {
        let mut changes = Vec::new();
        for e in edits {
            match e {
                Edit::Upsert(m) => {
                    let key = m.key();
                    match self.mappings.iter_mut().find(|x| x.key() == key) {
                        Some(x) => {
                            if x.username != m.username || x.groups != m.groups {
                                let from = x.clone();
                                x.username = m.username.clone();
                                x.groups = m.groups.clone();
                                for (k, v) in &m.extra.0 {
                                    x.extra.0.insert(k.clone(), v.clone());
                                }
                                changes.push(Change::Updated { from, to: x.clone() });
                                self.touched.insert(m.kind.section());
                            }
                        }
                        None => {
                            self.mappings.push(m.clone());
                            changes.push(Change::Added { mapping: m.clone() });
                            self.touched.insert(m.kind.section());
                        }
                    }
                }
                Edit::Remove(kind, arn) => {
                    let key = (*kind, normalize_arn(*kind, arn));
                    if let Some(pos) = self.mappings.iter().position(|x| x.key() == key) {
                        let m = self.mappings.remove(pos);
                        changes.push(Change::Removed { mapping: m });
                        self.touched.insert(kind.section());
                    }
                }
                Edit::AddAccount(a) => {
                    if !self.accounts.contains(a) {
                        self.accounts.push(a.clone());
                        changes.push(Change::AccountAdded { account: a.clone() });
                        self.touched.insert(MAP_ACCOUNTS);
                    }
                }
                Edit::RemoveAccount(a) => {
                    if let Some(pos) = self.accounts.iter().position(|x| x == a) {
                        self.accounts.remove(pos);
                        changes.push(Change::AccountRemoved { account: a.clone() });
                        self.touched.insert(MAP_ACCOUNTS);
                    }
                }
            }
        }
        changes
    }

    /// The ConfigMap `data` to write: untouched sections and unknown keys exactly as read, edited sections
    /// rendered anew.
    pub fn render(&self) -> BTreeMap<String, String> {
        let mut out = self.original.clone();
        for kind in [Kind::Role, Kind::User] {
            let section = kind.section();
            if !self.touched.contains(section) {
                continue;
            }
            let items: Vec<Value> = self.mappings.iter().filter(|m| m.kind == kind).map(Mapping::to_yaml).collect();
            if items.is_empty() && !self.original.contains_key(section) {
                continue;
            }
            out.insert(section.to_string(), serde_saphyr::to_string(&Value::Array(items)).expect("YAML values render"));
        }
        if self.touched.contains(MAP_ACCOUNTS)
            && (!self.accounts.is_empty() || self.original.contains_key(MAP_ACCOUNTS))
        {
            // quoted, so an ID with leading zeros stays a string for the authenticator
            let text: String = self.accounts.iter().map(|a| format!("- \"{a}\"\n")).collect();
            out.insert(MAP_ACCOUNTS.to_string(), if text.is_empty() { "[]\n".into() } else { text });
        }
        out
    }

    /// The edits that make `mapAccounts` hold every account of `desired`, removing the ones in
    /// `previously_managed` that `desired` no longer has. Accounts others added are untouched.
    pub fn account_edits_towards(&self, desired: &[String], previously_managed: &BTreeSet<String>) -> Vec<Edit> {
        let mut edits: Vec<Edit> =
            desired.iter().filter(|a| !self.accounts.contains(a)).cloned().map(Edit::AddAccount).collect();
        for a in previously_managed {
            if !desired.contains(a) && self.accounts.contains(a) {
                edits.push(Edit::RemoveAccount(a.clone()));
            }
        }
        edits
    }

    /// The edits that take `self` to having every mapping of `desired` (compared by key), removing the
    /// mappings in `previously_managed` that `desired` no longer has. Mappings others added are untouched.
    pub fn edits_towards(&self, desired: &[Mapping], previously_managed: &BTreeSet<(Kind, String)>) -> Vec<Edit> {
        let want: BTreeSet<(Kind, String)> = desired.iter().map(Mapping::key).collect();
        let mut edits: Vec<Edit> = desired
            .iter()
            .filter(|m| match self.mappings.iter().find(|x| x.key() == m.key()) {
                Some(x) => x.username != m.username || x.groups != m.groups,
                None => true,
            })
            .cloned()
            .map(Edit::Upsert)
            .collect();
        for (kind, arn) in previously_managed {
            if !want.contains(&(*kind, arn.clone())) && self.get(*kind, arn).is_some() {
                edits.push(Edit::Remove(*kind, arn.clone()));
            }
        }
        edits
    }
}

/// The `data` of an aws-auth ConfigMap manifest (or of a bare map of `mapRoles`/`mapUsers`/`mapAccounts`),
/// as text from a file; the error names what is wrong.
pub fn data_from_manifest(text: &str) -> Result<BTreeMap<String, String>, String> {
    let doc: Value = serde_saphyr::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    let data = match doc.get("data") {
        Some(d) => d.clone(),
        None if [MAP_ROLES, MAP_USERS, MAP_ACCOUNTS].iter().any(|k| doc.get(*k).is_some()) => doc.clone(),
        None => return Err("no `data` with mapRoles, mapUsers or mapAccounts".into()),
    };
    let Value::Object(m) = data else { return Err("data: must be a mapping of strings".into()) };
    let mut out = BTreeMap::new();
    for (k, v) in m {
        match v {
            Value::String(s) => {
                out.insert(k, s);
            }
            other => return Err(format!("data.{k}: must be a string holding YAML, got {}", describe(&other))),
        }
    }
    Ok(out)
}

/// The accounts of `access.accounts` (aws-auth `mapAccounts`).
pub fn desired_accounts(spec: &eksodus_core::spec::EnvironmentSpec) -> Vec<String> {
    spec.access.iter().flat_map(|a| a.accounts.iter().cloned()).collect()
}

/// The aws-auth mappings of `access.service_access` in `account`: each service's service-linked role as its
/// Kubernetes user (`arn:<partition>:iam::<account>:role/AWSServiceRoleForAmazonEMRContainers` as
/// `emr-containers`), the mapping eksctl and the EMR on EKS guide write. No groups: the RBAC of
/// [`service_rbac`] decides what it may do.
pub fn service_mappings(spec: &eksodus_core::spec::EnvironmentSpec, account: &str) -> Vec<Mapping> {
    let partition = crate::policy::partition(&spec.region);
    let mut out: Vec<Mapping> = Vec::new();
    for sa in spec.access.iter().flat_map(|a| a.service_access.iter()) {
        let Some((_, role, user)) = eksodus_core::spec::SERVICE_ACCESS.iter().find(|(n, _, _)| *n == sa.service) else {
            continue; // refused by validation
        };
        let m = Mapping::role(&format!("arn:{partition}:iam::{account}:role/{role}"), user, &[]);
        if !out.iter().any(|x| x.key() == m.key()) {
            out.push(m);
        }
    }
    out
}

const EMR_RBAC: &str = include_str!("../data/emr-containers-rbac.yaml");

/// The RBAC objects (`Role` and `RoleBinding`, as JSON) of `access.service_access`, each in its namespace.
pub fn service_rbac(spec: &eksodus_core::spec::EnvironmentSpec) -> Vec<Value> {
    let mut out = Vec::new();
    for sa in spec.access.iter().flat_map(|a| a.service_access.iter()) {
        if sa.service != "emr-containers" {
            continue;
        }
        for doc in EMR_RBAC.split("\n---\n") {
            let mut v: Value = serde_saphyr::from_str(doc).expect("the committed RBAC is YAML");
            v["metadata"]["namespace"] = Value::String(sa.namespace.clone());
            out.push(v);
        }
    }
    out
}

/// The mappings a spec's `access.mappings` asks for.
pub fn desired_mappings(spec: &eksodus_core::spec::EnvironmentSpec) -> Vec<Mapping> {
    spec.access
        .iter()
        .flat_map(|a| a.mappings.iter())
        .filter_map(|m| {
            let groups: Vec<&str> = m.groups.iter().map(String::as_str).collect();
            match (&m.rolearn, &m.userarn) {
                (Some(r), _) => Some(Mapping::role(r, &m.username, &groups)),
                (None, Some(u)) => Some(Mapping::user(u, &m.username, &groups)),
                (None, None) => None, // refused by validation
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn data(roles: &str, users: &str) -> BTreeMap<String, String> {
        let mut d = BTreeMap::new();
        if !roles.is_empty() {
            d.insert(MAP_ROLES.to_string(), roles.to_string());
        }
        if !users.is_empty() {
            d.insert(MAP_USERS.to_string(), users.to_string());
        }
        d
    }

    const ROLES: &str = "# nodes\n- rolearn: arn:aws:iam::111122223333:role/eks/node-role\n  username: system:node:{{EC2PrivateDNSName}}\n  groups:\n    - system:bootstrappers\n    - system:nodes\n- roleARN: arn:aws:iam::111122223333:role/admins\n  username: admin:{{SessionName}}\n  groups: [system:masters]\n  comment: kept\n";

    #[test]
    fn accounts_are_added_and_removed_only_when_eksodus_added_them() {
        let mut d = data("- rolearn: arn:aws:iam::111122223333:role/admin\n  username: admin\n", "");
        d.insert(MAP_ACCOUNTS.into(), "- \"444455556666\"\n".into());
        let mut a = AwsAuth::parse(&d).unwrap();
        // someone else's account stays; ours is added; a previously managed one no longer wanted goes
        let managed: BTreeSet<String> = ["777788889999".to_string()].into();
        let edits = a.account_edits_towards(&["000011112222".into()], &managed);
        assert_eq!(edits, [Edit::AddAccount("000011112222".into())]);
        let changes = a.apply(&edits);
        assert_eq!(changes, [Change::AccountAdded { account: "000011112222".into() }]);
        let out = a.render();
        assert_eq!(out[MAP_ACCOUNTS], "- \"444455556666\"\n- \"000011112222\"\n");
        assert_eq!(out[MAP_ROLES], d[MAP_ROLES], "an untouched section is written back as read");
        let again = AwsAuth::parse(&out).unwrap();
        assert_eq!(again.accounts, ["444455556666", "000011112222"]);
        let managed: BTreeSet<String> = ["000011112222".to_string()].into();
        let edits = again.account_edits_towards(&[], &managed);
        assert_eq!(edits, [Edit::RemoveAccount("000011112222".into())]);
        let mut gone = again.clone();
        gone.apply(&edits);
        assert_eq!(gone.render()[MAP_ACCOUNTS], "- \"444455556666\"\n");
        assert!(again.account_edits_towards(&["000011112222".into()], &managed).is_empty());
    }

    #[test]
    fn service_access_maps_the_service_linked_role_and_brings_its_rbac() {
        let spec: eksodus_core::spec::EnvironmentSpec = serde_saphyr::from_str(
            "name: a\nregion: cn-north-1\nnetwork: {cidr: 10.0.0.0/16, azs: 2}\naccess:\n  service_access: [{service: emr-containers, namespace: spark}]\n",
        )
        .unwrap();
        let m = service_mappings(&spec, "123456789012");
        assert_eq!(
            m,
            [Mapping::role(
                "arn:aws-cn:iam::123456789012:role/AWSServiceRoleForAmazonEMRContainers",
                "emr-containers",
                &[]
            )]
        );
        let rbac = service_rbac(&spec);
        assert_eq!(rbac.iter().map(|o| o["kind"].as_str().unwrap()).collect::<Vec<_>>(), ["Role", "RoleBinding"]);
        assert!(rbac
            .iter()
            .all(|o| o["metadata"]["namespace"] == "spark" && o["metadata"]["name"] == "emr-containers"));
        assert_eq!(rbac[1]["subjects"][0]["name"], "emr-containers");
    }

    #[test]
    fn untouched_renders_byte_identical_and_unknown_keys_survive() {
        let mut d =
            data(ROLES, "- userarn: arn:aws:iam::111122223333:user/ops/alice\n  username: alice\n  groups: [ops]\n");
        d.insert("mapAccounts".into(), "- \"111122223333\"\n".into());
        d.insert("somethingElse".into(), "opaque: [1, 2]\n".into());
        let a = AwsAuth::parse(&d).unwrap();
        assert_eq!(a.render(), d);
        assert_eq!(a.mappings.len(), 3);
        assert_eq!(a.accounts, ["111122223333"]);
        // editing users leaves roles (with their comment and odd key case) byte-identical
        let mut b = a.clone();
        b.apply(&[Edit::Upsert(Mapping::user("arn:aws:iam::111122223333:user/bob", "bob", &["dev"]))]);
        let r = b.render();
        assert_eq!(r[MAP_ROLES], ROLES);
        assert_eq!(r["somethingElse"], d["somethingElse"]);
        let again = AwsAuth::parse(&r).unwrap();
        assert_eq!(again.mappings.len(), 4);
        // editing roles keeps an entry's unknown keys
        let mut c = a.clone();
        c.apply(&[Edit::Upsert(Mapping::role(
            "arn:aws:iam::111122223333:role/admins",
            "admin:{{SessionName}}",
            &["system:masters", "extra"],
        ))]);
        let again = AwsAuth::parse(&c.render()).unwrap();
        let admin = again.get(Kind::Role, "arn:aws:iam::111122223333:role/admins").unwrap();
        assert_eq!(admin.extra.0.get("comment").and_then(Value::as_str), Some("kept"));
        assert_eq!(admin.groups, ["system:masters", "extra"]);
    }

    #[test]
    fn manifest_data_names_what_is_wrong() {
        assert!(data_from_manifest("data: {mapRoles: [1]}").unwrap_err().contains("data.mapRoles"));
        assert!(data_from_manifest("kind: ConfigMap").unwrap_err().contains("no `data`"));
        assert!(data_from_manifest("[").unwrap_err().contains("not valid YAML"));
        assert_eq!(data_from_manifest("mapRoles: \"- rolearn: x\"").unwrap().len(), 1);
    }

    #[test]
    fn role_paths_are_normalized_for_matching() {
        let a = AwsAuth::parse(&data(ROLES, "")).unwrap();
        assert!(a.get(Kind::Role, "arn:aws:iam::111122223333:role/node-role").is_some());
        assert_eq!(normalize_arn(Kind::Role, "arn:aws:iam::1:role/a/b/c"), "arn:aws:iam::1:role/c");
        assert_eq!(normalize_arn(Kind::User, "arn:aws:iam::1:user/a/b"), "arn:aws:iam::1:user/a/b");
    }

    /// Data-driven: each malformed input and the path and words its error must name.
    #[test]
    fn malformed_input_names_entry_and_field() {
        let cases: &[(&str, &str, &str, &str)] = &[
            ("- rolearn: [\n", "", "mapRoles", "not valid YAML"),
            ("rolearn: x\n", "", "mapRoles", "must be a list"),
            ("- username: x\n  groups: []\n", "", "mapRoles[0].rolearn", "is missing"),
            ("- rolearn: 42\n", "", "mapRoles[0].rolearn", "must be a string"),
            ("- rolearn: arn:aws:iam::1:role/x\n", "", "mapRoles[0].rolearn", "not an IAM role ARN"),
            ("- rolearn: arn:aws:sts::111122223333:assumed-role/x/s\n", "", "mapRoles[0].rolearn", "STS session"),
            (
                "- rolearn: arn:aws:iam::111122223333:role/x\n  groups: sys\n",
                "",
                "mapRoles[0].groups",
                "must be a list",
            ),
            (
                "- rolearn: arn:aws:iam::111122223333:role/x\n  groups: [1]\n",
                "",
                "mapRoles[0].groups[0]",
                "non-empty string",
            ),
            (
                "- rolearn: arn:aws:iam::111122223333:role/x\n  username: '{{Nope}}'\n",
                "",
                "mapRoles[0].username",
                "not a template",
            ),
            (
                "- rolearn: arn:aws:iam::111122223333:role/a/x\n- rolearn: arn:aws:iam::111122223333:role/x\n",
                "",
                "mapRoles[1].rolearn",
                "mapped again",
            ),
            (
                "",
                "- userarn: arn:aws:iam::111122223333:user/u\n  username: '{{EC2PrivateDNSName}}'\n",
                "mapUsers[0].username",
                "only applies to roles",
            ),
            ("", "- 7\n", "mapUsers[0]", "must be a mapping"),
        ];
        for (roles, users, path, words) in cases {
            let e = AwsAuth::parse(&data(roles, users)).unwrap_err();
            assert!(e.0.iter().any(|p| p.path == *path && p.message.contains(words)), "{roles}{users}: got {e}");
        }
        let mut d = data("", "");
        d.insert(MAP_ACCOUNTS.into(), "- 12\n".into());
        assert_eq!(AwsAuth::parse(&d).unwrap_err().0[0].path, "mapAccounts[0]");
    }

    #[test]
    fn edits_towards_touch_only_managed_entries() {
        let a = AwsAuth::parse(&data(ROLES, "")).unwrap();
        let desired = [Mapping::role("arn:aws:iam::111122223333:role/ci", "ci", &["deployers"])];
        let managed: BTreeSet<_> = [(Kind::Role, "arn:aws:iam::111122223333:role/gone".to_string())].into();
        let edits = a.edits_towards(&desired, &managed);
        assert_eq!(edits.len(), 1, "the removed managed entry is absent anyway; nodes and admins are not ours");
        let managed: BTreeSet<_> = [desired[0].key()].into();
        let mut b = a.clone();
        b.apply(&edits);
        assert_eq!(
            b.edits_towards(&[], &managed),
            vec![Edit::Remove(Kind::Role, "arn:aws:iam::111122223333:role/ci".into())]
        );
        assert!(b.edits_towards(&desired, &managed).is_empty());
    }
}

#[cfg(test)]
mod concurrency {
    //! Concurrent read-merge-write editors against a compare-and-swap store (the resourceVersion
    //! precondition), with interleavings chosen by proptest.
    use super::*;
    use proptest::prelude::*;

    fn arn(i: u8) -> String {
        format!("arn:aws:iam::111122223333:role/r{i}")
    }

    #[derive(Debug, Clone)]
    struct Editor {
        edits: Vec<Edit>,
    }

    fn editor() -> impl Strategy<Value = Editor> {
        proptest::collection::vec((any::<bool>(), 0u8..24, proptest::collection::vec(0u8..4, 0..3)), 1..5).prop_map(
            |ops| Editor {
                edits: ops
                    .into_iter()
                    .map(|(add, i, groups)| {
                        if add {
                            let groups: Vec<String> = groups.iter().map(|g| format!("g{g}")).collect();
                            let gs: Vec<&str> = groups.iter().map(String::as_str).collect();
                            Edit::Upsert(Mapping::role(&arn(i), &format!("u{i}"), &gs))
                        } else {
                            Edit::Remove(Kind::Role, arn(i))
                        }
                    })
                    .collect(),
            },
        )
    }

    /// YAML-ish text built from the pieces aws-auth documents are made of, so the parser's deeper paths are
    /// reached, not only the YAML error path.
    fn yamlish() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("- ".to_string()),
            Just("rolearn: ".to_string()),
            Just("userarn: ".to_string()),
            Just("username: ".to_string()),
            Just("groups: ".to_string()),
            Just("\n".to_string()),
            Just("  ".to_string()),
            Just("[".to_string()),
            Just("]".to_string()),
            Just("{{SessionName}}".to_string()),
            Just("arn:aws:iam::111122223333:role/x".to_string()),
            Just("system:masters".to_string()),
            Just("\"".to_string()),
            Just(": ".to_string()),
            Just("7".to_string()),
            "[a-z:/{}]{0,6}",
        ];
        proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
    }

    proptest! {
        /// The parser never panics, and what it accepts renders back byte-identical and re-parses equal.
        #[test]
        fn parser_never_panics_and_round_trips(roles in yamlish(), users in yamlish(), accounts in yamlish(), raw in ".{0,80}") {
            for d in [
                [(MAP_ROLES, &roles), (MAP_USERS, &users), (MAP_ACCOUNTS, &accounts)].into_iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<BTreeMap<_, _>>(),
                [(MAP_ROLES.to_string(), raw.clone())].into(),
            ] {
                if let Ok(a) = AwsAuth::parse(&d) {
                    prop_assert_eq!(&a.render(), &d);
                    let mut b = a.clone();
                    b.apply(&[Edit::Upsert(Mapping::role("arn:aws:iam::111122223333:role/p", "p", &["g"]))]);
                    let again = AwsAuth::parse(&b.render()).expect("rendered output parses");
                    prop_assert_eq!(again.mappings.len(), b.mappings.len());
                }
            }
        }

        #[test]
        fn concurrent_editors_lose_nothing(
            initial in proptest::collection::btree_set(0u8..24, 0..8),
            editors in proptest::collection::vec(editor(), 1..6),
            schedule in proptest::collection::vec(0usize..6, 1..200),
        ) {
            // the store: (resourceVersion, data)
            let roles: Vec<Value> = initial.iter().map(|i| Mapping::role(&arn(*i), "x", &["g"]).to_yaml()).collect();
            let mut store = (0u64, {
                let mut d = BTreeMap::new();
                d.insert(MAP_ROLES.to_string(), serde_saphyr::to_string(&Value::Array(roles)).unwrap());
                d
            });
            // each editor: None = has not read; Some(v, data) = read at v and merged, about to write
            let mut pending: Vec<Option<(u64, BTreeMap<String, String>)>> = vec![None; editors.len()];
            let mut done = vec![false; editors.len()];
            let mut conflicts = 0;
            let mut steps = schedule.into_iter().cycle();
            while done.iter().any(|d| !d) {
                let mut e = steps.next().unwrap() % editors.len();
                while done[e] { e = (e + 1) % editors.len(); }
                match pending[e].take() {
                    None => {
                        let mut a = AwsAuth::parse(&store.1).unwrap();
                        a.apply(&editors[e].edits);
                        pending[e] = Some((store.0, a.render()));
                    }
                    Some((v, data)) if v == store.0 => { store = (v + 1, data); done[e] = true; }
                    Some(_) => { conflicts += 1; } // 409: read and merge again next time
                }
                prop_assert!(conflicts < 10_000);
            }
            let last = AwsAuth::parse(&store.1).unwrap();
            let removed: BTreeSet<String> = editors.iter().flat_map(|ed| ed.edits.iter()).filter_map(|e| match e { Edit::Remove(_, a) => Some(a.clone()), _ => None }).collect();
            for ed in &editors {
                for e in &ed.edits {
                    if let Edit::Upsert(m) = e {
                        if !removed.contains(&m.arn) {
                            prop_assert!(last.get(Kind::Role, &m.arn).is_some(), "{} was added and never removed, but is gone", m.arn);
                        }
                    }
                }
            }
            for i in &initial {
                if !removed.contains(&arn(*i)) {
                    prop_assert!(last.get(Kind::Role, &arn(*i)).is_some(), "pre-existing {} was lost", arn(*i));
                }
            }
        }
    }
}
