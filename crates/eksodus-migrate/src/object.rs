//! Kubernetes objects as JSON values, and the reference that names one.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Names one object: group, kind, namespace (empty for cluster-scoped) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjRef {
    /// API group (empty for core).
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace; empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjRef {
    /// A reference.
    pub fn new(group: &str, kind: &str, namespace: &str, name: &str) -> Self {
        ObjRef { group: group.into(), kind: kind.into(), namespace: namespace.into(), name: name.into() }
    }

    /// `group/kind`, or `kind` for core.
    pub fn group_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}/{}", self.group, self.kind)
        }
    }
}

impl fmt::Display for ObjRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.group_kind(), self.name)
        } else {
            write!(f, "{} {}/{}", self.group_kind(), self.namespace, self.name)
        }
    }
}

/// JSON pointers (RFC 6901) like `Value::pointer`, without its allocation per token (it unescapes every
/// token with two `String::replace`s): they run many times per object on every object of an export.
pub trait Ptr {
    /// The value at `pointer`.
    fn at(&self, pointer: &str) -> Option<&Value>;
    /// The value at `pointer`, mutably.
    fn at_mut(&mut self, pointer: &str) -> Option<&mut Value>;
}

fn token(t: &str) -> std::borrow::Cow<'_, str> {
    if t.contains('~') {
        t.replace("~1", "/").replace("~0", "~").into()
    } else {
        t.into()
    }
}

/// An array index as RFC 6901 spells it: digits, no leading zero.
fn index(t: &str) -> Option<usize> {
    if t.starts_with('+') || (t.starts_with('0') && t.len() != 1) {
        return None;
    }
    t.parse().ok()
}

impl Ptr for Value {
    fn at(&self, pointer: &str) -> Option<&Value> {
        if pointer.is_empty() {
            return Some(self);
        }
        let mut cur = self;
        for t in pointer.strip_prefix('/')?.split('/') {
            cur = match cur {
                Value::Object(m) => m.get(token(t).as_ref())?,
                Value::Array(a) => a.get(index(t)?)?,
                _ => return None,
            };
        }
        Some(cur)
    }

    fn at_mut(&mut self, pointer: &str) -> Option<&mut Value> {
        if pointer.is_empty() {
            return Some(self);
        }
        let mut cur = self;
        for t in pointer.strip_prefix('/')?.split('/') {
            cur = match cur {
                Value::Object(m) => m.get_mut(token(t).as_ref())?,
                Value::Array(a) => a.get_mut(index(t)?)?,
                _ => return None,
            };
        }
        Some(cur)
    }
}

/// The group of an `apiVersion` (`apps/v1` → `apps`, `v1` → ``).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

/// One object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Obj(pub Value);

impl Obj {
    /// `apiVersion`.
    pub fn api_version(&self) -> &str {
        self.0.get("apiVersion").and_then(Value::as_str).unwrap_or_default()
    }
    /// `kind`.
    pub fn kind(&self) -> &str {
        self.0.get("kind").and_then(Value::as_str).unwrap_or_default()
    }
    /// API group.
    pub fn group(&self) -> &str {
        group_of(self.api_version())
    }
    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.0.at("/metadata/name").and_then(Value::as_str).unwrap_or_default()
    }
    /// `metadata.namespace` (empty when absent).
    pub fn namespace(&self) -> &str {
        self.0.at("/metadata/namespace").and_then(Value::as_str).unwrap_or_default()
    }
    /// Its reference.
    pub fn obj_ref(&self) -> ObjRef {
        ObjRef::new(self.group(), self.kind(), self.namespace(), self.name())
    }
    /// `metadata.labels`.
    pub fn labels(&self) -> std::collections::BTreeMap<String, String> {
        self.0
            .at("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
            .unwrap_or_default()
    }
    /// `metadata.ownerReferences`.
    pub fn owner_refs(&self) -> Vec<Value> {
        self.0.at("/metadata/ownerReferences").and_then(Value::as_array).cloned().unwrap_or_default()
    }
    /// The value at a JSON pointer.
    pub fn get(&self, pointer: &str) -> Option<&Value> {
        self.0.at(pointer)
    }
}

/// Whether a string is a label selector this crate understands (`k=v`, `k!=v`, `k`, `!k`, comma-separated),
/// and whether `labels` match it.
pub fn selector_matches(selector: &str, labels: &std::collections::BTreeMap<String, String>) -> Result<bool, String> {
    for term in selector.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let ok = if let Some((k, v)) = term.split_once("!=") {
            labels.get(k.trim()).map(String::as_str) != Some(v.trim())
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            labels.get(k.trim()).map(String::as_str) == Some(v.trim())
        } else if let Some(k) = term.strip_prefix('!') {
            !labels.contains_key(k.trim())
        } else if term.contains(' ') || term.contains('(') {
            return Err(format!("`{term}`: set-based selectors are not supported; use k=v, k!=v, k or !k"));
        } else {
            labels.contains_key(term)
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refs_and_selectors() {
        let o = Obj(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web", "tier": "front"}}}),
        );
        assert_eq!(o.obj_ref().to_string(), "apps/Deployment shop/web");
        let l = o.labels();
        assert!(selector_matches("app=web,tier", &l).unwrap());
        assert!(!selector_matches("app=web,tier!=front", &l).unwrap());
        assert!(selector_matches("!missing", &l).unwrap());
        assert!(selector_matches("app in (web)", &l).is_err());
        assert_eq!(
            Obj(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}})).obj_ref().to_string(),
            "Namespace a"
        );
    }

    #[test]
    fn pointers_resolve_like_serde_json() {
        let mut v = json!({"metadata": {"annotations": {"eks.amazonaws.com/role-arn": "r", "a~b": 1}},
            "spec": {"ports": [{"port": 80}, {"port": 443}]}, "": {"x": 2}});
        for p in [
            "",
            "/metadata",
            "/metadata/annotations/eks.amazonaws.com~1role-arn",
            "/metadata/annotations/a~0b",
            "/spec/ports/1/port",
            "/spec/ports/2",
            "/spec/ports/x",
            "/spec/ports/01",
            "/spec/ports/+1",
            "/spec/ports/0",
            "//x",
            "no-slash",
            "/metadata/name",
        ] {
            assert_eq!(v.at(p), v.pointer(p), "{p}");
            let want = v.clone().pointer_mut(p).cloned();
            assert_eq!(v.at_mut(p).cloned(), want, "{p}");
        }
    }
}
