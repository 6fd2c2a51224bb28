//! Desired vs discovered, and the typed [`Plan`] that the diff produces.
//!
//! A reconciler describes what the spec wants as [`Desired`] resources and what exists as [`Observed`] ones,
//! both keyed by a logical key (the `eksodus.io/resource` tag). [`diff`] is a pure function from the two to a
//! plan: one [`Step`] per resource with an [`Action`], the field [`Change`]s and human reasons. A converged
//! environment diffs to a plan with no changes ([`Plan::is_empty`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Error;

/// Property name holding a resource's tags; compared as "desired tags are a subset of the observed ones",
/// so tags someone else added are never removed.
pub const TAGS: &str = "tags";

/// What the spec wants to exist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    /// Logical key, unique within a component, such as `subnet/public/us-east-1a`.
    pub key: String,
    /// Resource kind, such as `vpc`.
    pub kind: String,
    /// Properties to compare with what exists (a JSON object).
    pub props: Map<String, Value>,
    /// Property names whose change forces a replacement (delete, then create).
    pub immutable: Vec<String>,
    /// Keys of resources this one needs first (created before, deleted after).
    pub depends_on: Vec<String>,
    /// Sequential API calls of a create, an update and a delete, for the critical-path bound.
    pub cost: Cost,
}

/// Sequential API calls an operation makes (waiter polls excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Cost {
    /// Calls of a create.
    pub create: u32,
    /// Calls of an update.
    pub update: u32,
    /// Calls of a delete.
    pub delete: u32,
}

impl Cost {
    /// A cost of `create`, `update` and `delete` calls.
    pub const fn new(create: u32, update: u32, delete: u32) -> Self {
        Cost { create, update, delete }
    }
}

/// What discovery found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    /// Logical key read back from the resource's tags.
    pub key: String,
    /// Resource kind.
    pub kind: String,
    /// The cloud's ID for it (`vpc-0abc...`).
    pub physical_id: String,
    /// Current properties, in the same shape as [`Desired::props`].
    pub props: Map<String, Value>,
    /// Keys of the resources it sits on (its VPC, subnet, ...), for ordering deletes.
    pub depends_on: Vec<String>,
    /// Sequential API calls to delete it.
    pub delete_cost: u32,
}

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Nothing to do.
    NoOp,
    /// Create a missing resource.
    Create,
    /// Change a resource in place.
    Update,
    /// Delete and create again (an immutable property changed).
    Replace,
    /// Delete a resource the spec no longer has.
    Delete,
}

impl Action {
    /// The one-character marker terraform users know.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::NoOp => " ",
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::NoOp => "no-op",
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Delete => "delete",
        })
    }
}

/// One property that differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Property name.
    pub field: String,
    /// Current value (absent on create).
    pub from: Option<Value>,
    /// Wanted value (absent on delete).
    pub to: Option<Value>,
    /// Whether this change alone forces a replacement.
    pub forces_replacement: bool,
}

/// One resource's part of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Unique step ID: the key, or `key@physical-id` for a duplicate found in discovery.
    pub id: String,
    /// Logical key.
    pub key: String,
    /// Resource kind.
    pub kind: String,
    /// What to do.
    pub action: Action,
    /// Why, in words.
    pub reasons: Vec<String>,
    /// Property changes (empty for no-op and delete).
    pub changes: Vec<Change>,
    /// The existing resource, if any.
    pub physical_id: Option<String>,
    /// Wanted properties (absent for delete).
    pub desired: Option<Map<String, Value>>,
    /// Current properties (absent for create).
    pub observed: Option<Map<String, Value>>,
    /// Keys this step's resource needs (desired dependencies, or observed ones for a delete).
    pub depends_on: Vec<String>,
    /// Keys the existing resource sits on now (empty for a create): what must not be deleted before this
    /// step has changed or removed it.
    pub observed_depends_on: Vec<String>,
    /// Sequential API calls of this step.
    pub calls: u32,
    /// For a replace: calls of the delete half (the create half is `calls`).
    pub delete_calls: u32,
}

/// The typed result of a diff: every resource, what to do with it, and why.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Plan {
    /// Steps in a stable order (desired order first, then deletes).
    pub steps: Vec<Step>,
}

/// Counts of steps by action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Summary {
    /// Resources to create.
    pub create: usize,
    /// Resources to update in place.
    pub update: usize,
    /// Resources to replace.
    pub replace: usize,
    /// Resources to delete.
    pub delete: usize,
    /// Resources already as wanted.
    pub unchanged: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} to create, {} to update, {} to replace, {} to delete, {} unchanged",
            self.create, self.update, self.replace, self.delete, self.unchanged
        )
    }
}

impl Plan {
    /// Whether applying the plan would change nothing.
    pub fn is_empty(&self) -> bool {
        self.steps.iter().all(|s| s.action == Action::NoOp)
    }

    /// The steps that change something.
    pub fn changes(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| s.action != Action::NoOp)
    }

    /// Counts by action.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for st in &self.steps {
            match st.action {
                Action::NoOp => s.unchanged += 1,
                Action::Create => s.create += 1,
                Action::Update => s.update += 1,
                Action::Replace => s.replace += 1,
                Action::Delete => s.delete += 1,
            }
        }
        s
    }

    /// Appends another component's plan.
    pub fn extend(&mut self, other: Plan) {
        self.steps.extend(other.steps);
    }

    /// The largest number of API calls on any dependency chain of the plan: with a fixed latency per call
    /// and unbounded concurrency, no apply can be faster than this many round trips.
    pub fn critical_path_calls(&self) -> Result<u32, Error> {
        let g = crate::engine::OpGraph::build(self)?;
        Ok(g.critical_path())
    }

    /// The plan that removes everything in `observed` (used by destroy).
    pub fn destroy(observed: &[Observed]) -> Plan {
        diff(&[], observed)
    }
}

/// A JSON object as properties (anything else: none), for planners that build them with `json!`.
pub fn props(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Diffs desired against observed resources. Pure; the order of the result is deterministic.
///
/// - a desired key with no observed resource is created;
/// - an observed key with no desired resource is deleted;
/// - a second observed resource with the same key (a duplicate) is deleted;
/// - differing properties update in place, or replace when an immutable one differs;
/// - a replacement propagates to everything depending on the replaced resource, which is replaced too.
pub fn diff(desired: &[Desired], observed: &[Observed]) -> Plan {
    let mut by_key: BTreeMap<&str, Vec<&Observed>> = BTreeMap::new();
    for o in observed {
        by_key.entry(o.key.as_str()).or_default().push(o);
    }
    let desired_keys: BTreeSet<&str> = desired.iter().map(|d| d.key.as_str()).collect();
    let mut steps = Vec::new();
    let mut extra = Vec::new();

    for d in desired {
        let found = by_key.get(d.key.as_str());
        // Prefer, among duplicates, the one whose properties match best; delete the rest.
        let (chosen, dups): (Option<&Observed>, Vec<&Observed>) = match found {
            None => (None, vec![]),
            Some(list) => {
                let mut list = list.clone();
                list.sort_by_key(|o| (o.kind != d.kind, diff_props(d, &o.props).len(), o.physical_id.clone()));
                let first = list.remove(0);
                (Some(first), list)
            }
        };
        for dup in dups {
            extra
                .push(delete_step(dup, format!("duplicate of {} (same key `{}`)", chosen.unwrap().physical_id, d.key)));
        }
        let step = match chosen {
            None => Step {
                id: d.key.clone(),
                key: d.key.clone(),
                kind: d.kind.clone(),
                action: Action::Create,
                reasons: vec!["not found".into()],
                changes: d
                    .props
                    .iter()
                    .map(|(k, v)| Change {
                        field: k.clone(),
                        from: None,
                        to: Some(v.clone()),
                        forces_replacement: false,
                    })
                    .collect(),
                physical_id: None,
                desired: Some(d.props.clone()),
                observed: None,
                depends_on: d.depends_on.clone(),
                observed_depends_on: vec![],
                calls: d.cost.create,
                delete_calls: 0,
            },
            Some(o) if o.kind != d.kind => Step {
                id: d.key.clone(),
                key: d.key.clone(),
                kind: d.kind.clone(),
                action: Action::Replace,
                reasons: vec![format!("exists as a {} instead of a {}", o.kind, d.kind)],
                changes: vec![],
                physical_id: Some(o.physical_id.clone()),
                desired: Some(d.props.clone()),
                observed: Some(o.props.clone()),
                depends_on: d.depends_on.clone(),
                observed_depends_on: o.depends_on.clone(),
                calls: d.cost.create,
                delete_calls: o.delete_cost,
            },
            Some(o) => {
                let changes = diff_props(d, &o.props);
                let replace = changes.iter().any(|c| c.forces_replacement);
                let (action, calls, reasons) = if changes.is_empty() {
                    (Action::NoOp, 0, vec![])
                } else if replace {
                    let why = changes
                        .iter()
                        .filter(|c| c.forces_replacement)
                        .map(|c| format!("{} changes ({})", c.field, show_change(c)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    (Action::Replace, d.cost.create, vec![format!("{why}, which forces replacement")])
                } else {
                    let fields = changes.iter().map(|c| c.field.as_str()).collect::<Vec<_>>().join(", ");
                    (Action::Update, d.cost.update, vec![format!("{fields} differ")])
                };
                Step {
                    id: d.key.clone(),
                    key: d.key.clone(),
                    kind: d.kind.clone(),
                    action,
                    reasons,
                    changes,
                    physical_id: Some(o.physical_id.clone()),
                    desired: Some(d.props.clone()),
                    observed: Some(o.props.clone()),
                    depends_on: d.depends_on.clone(),
                    observed_depends_on: o.depends_on.clone(),
                    calls,
                    delete_calls: if replace { o.delete_cost } else { 0 },
                }
            }
        };
        steps.push(step);
    }

    // Propagate replacements to dependents until nothing changes (the dependency graph is small and acyclic).
    let dependents = {
        let mut m: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, s) in steps.iter().enumerate() {
            for d in &s.depends_on {
                m.entry(d.clone()).or_default().push(i);
            }
        }
        m
    };
    let mut queue: Vec<usize> = (0..steps.len()).filter(|&i| steps[i].action == Action::Replace).collect();
    while let Some(i) = queue.pop() {
        let key = steps[i].key.clone();
        for &j in dependents.get(&key).into_iter().flatten() {
            let s = &mut steps[j];
            if matches!(s.action, Action::NoOp | Action::Update) {
                s.action = Action::Replace;
                s.calls = desired.iter().find(|d| d.key == s.key).map_or(0, |d| d.cost.create);
                s.delete_calls = observed
                    .iter()
                    .find(|o| Some(&o.physical_id) == s.physical_id.as_ref())
                    .map_or(0, |o| o.delete_cost);
                s.reasons.push(format!("replaced because `{key}` it depends on is replaced"));
                queue.push(j);
            }
        }
    }

    for (key, list) in &by_key {
        if desired_keys.contains(key) {
            continue;
        }
        for (n, o) in list.iter().enumerate() {
            let mut st = delete_step(o, "no longer in the spec".into());
            if n > 0 {
                st.id = format!("{}@{}", o.key, o.physical_id);
            }
            extra.push(st);
        }
    }
    steps.extend(extra);
    Plan { steps }
}

fn delete_step(o: &Observed, reason: String) -> Step {
    Step {
        id: format!("{}@{}", o.key, o.physical_id),
        key: o.key.clone(),
        kind: o.kind.clone(),
        action: Action::Delete,
        reasons: vec![reason],
        changes: vec![],
        physical_id: Some(o.physical_id.clone()),
        desired: None,
        observed: Some(o.props.clone()),
        depends_on: o.depends_on.clone(),
        observed_depends_on: o.depends_on.clone(),
        calls: o.delete_cost,
        delete_calls: 0,
    }
}

fn diff_props(d: &Desired, observed: &Map<String, Value>) -> Vec<Change> {
    let mut out = Vec::new();
    for (k, want) in &d.props {
        let have = observed.get(k);
        let same = if k == TAGS {
            match (want, have) {
                (Value::Object(w), Some(Value::Object(h))) => w.iter().all(|(tk, tv)| h.get(tk) == Some(tv)),
                (Value::Object(w), None) => w.is_empty(),
                _ => Some(want) == have,
            }
        } else {
            Some(want) == have || (want.is_null() && have.is_none())
        };
        if !same {
            out.push(Change {
                field: k.clone(),
                from: have.cloned(),
                to: Some(want.clone()),
                forces_replacement: d.immutable.iter().any(|i| i == k),
            });
        }
    }
    out
}

fn show_change(c: &Change) -> String {
    let f = |v: &Option<Value>| v.as_ref().map_or("(none)".to_string(), |v| v.to_string());
    format!("{} -> {}", f(&c.from), f(&c.to))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(key: &str, props: Value, deps: &[&str]) -> Desired {
        Desired {
            key: key.into(),
            kind: key.split('/').next().unwrap().into(),
            props: props.as_object().unwrap().clone(),
            immutable: vec!["cidr".into()],
            depends_on: deps.iter().map(|s| s.to_string()).collect(),
            cost: Cost::new(2, 1, 1),
        }
    }
    fn o(key: &str, id: &str, props: Value, deps: &[&str]) -> Observed {
        Observed {
            key: key.into(),
            kind: key.split('/').next().unwrap().into(),
            physical_id: id.into(),
            props: props.as_object().unwrap().clone(),
            depends_on: deps.iter().map(|s| s.to_string()).collect(),
            delete_cost: 1,
        }
    }

    #[test]
    fn converged_is_empty() {
        let want = [d("vpc", json!({"cidr": "10.0.0.0/16", "tags": {"a": "b"}}), &[])];
        let have = [o("vpc", "vpc-1", json!({"cidr": "10.0.0.0/16", "tags": {"a": "b", "someone": "else"}}), &[])];
        let p = diff(&want, &have);
        assert!(p.is_empty(), "{p:#?}");
        assert_eq!(p.summary().unchanged, 1);
    }

    #[test]
    fn create_update_replace_delete_and_duplicates() {
        let want = [
            d("vpc", json!({"cidr": "10.0.0.0/16", "dns": true}), &[]),
            d("subnet/a", json!({"cidr": "10.0.0.0/24"}), &["vpc"]),
            d("subnet/b", json!({"cidr": "10.0.1.0/24"}), &["vpc"]),
        ];
        let have = [
            o("vpc", "vpc-1", json!({"cidr": "10.0.0.0/16", "dns": false}), &[]),
            o("subnet/a", "subnet-1", json!({"cidr": "10.0.9.0/24"}), &["vpc"]),
            o("subnet/a", "subnet-2", json!({"cidr": "10.0.0.0/24"}), &["vpc"]),
            o("subnet/z", "subnet-3", json!({"cidr": "10.0.3.0/24"}), &["vpc"]),
        ];
        let p = diff(&want, &have);
        let by_id: HashMap<_, _> = p.steps.iter().map(|s| (s.id.as_str(), s)).collect();
        assert_eq!(by_id["vpc"].action, Action::Update);
        assert_eq!(by_id["subnet/a"].action, Action::NoOp, "the matching duplicate is kept");
        assert_eq!(by_id["subnet/a"].physical_id.as_deref(), Some("subnet-2"));
        assert_eq!(by_id["subnet/a@subnet-1"].action, Action::Delete);
        assert!(by_id["subnet/a@subnet-1"].reasons[0].contains("duplicate"));
        assert_eq!(by_id["subnet/b"].action, Action::Create);
        assert_eq!(by_id["subnet/z@subnet-3"].action, Action::Delete);
        assert_eq!(p.summary(), Summary { create: 1, update: 1, replace: 0, delete: 2, unchanged: 1 });
    }

    #[test]
    fn replacement_propagates_to_dependents() {
        let want =
            [d("vpc", json!({"cidr": "10.1.0.0/16"}), &[]), d("subnet/a", json!({"cidr": "10.0.0.0/24"}), &["vpc"])];
        let have = [
            o("vpc", "vpc-1", json!({"cidr": "10.0.0.0/16"}), &[]),
            o("subnet/a", "subnet-1", json!({"cidr": "10.0.0.0/24"}), &["vpc"]),
        ];
        let p = diff(&want, &have);
        assert!(p.steps.iter().all(|s| s.action == Action::Replace), "{p:#?}");
        assert!(p.steps[1].reasons.iter().any(|r| r.contains("`vpc`")));
        assert!(p.steps[0].reasons[0].contains("forces replacement"));
    }
}
