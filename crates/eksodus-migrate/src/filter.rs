//! What is migrated: the user's filters, and the objects left out by default, each with its reason.

use serde::{Deserialize, Serialize};

use crate::object::{selector_matches, Obj};

/// Namespaces that belong to the cluster, not to its workloads.
pub const SYSTEM_NAMESPACES: &[&str] = &["kube-system", "kube-public", "kube-node-lease"];

/// The user's filters. Empty include lists mean "everything".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Filters {
    /// Only these namespaces (cluster-scoped objects are still considered).
    pub include_namespaces: Vec<String>,
    /// Never these namespaces.
    pub exclude_namespaces: Vec<String>,
    /// Only these resources, as `group/Kind` or `Kind` for core (`apps/Deployment`, `ConfigMap`).
    pub include_resources: Vec<String>,
    /// Never these resources.
    pub exclude_resources: Vec<String>,
    /// A label selector (`k=v`, `k!=v`, `k`, `!k`, comma-separated).
    pub selector: Option<String>,
    /// Also migrate the system namespaces and their objects.
    pub include_system_namespaces: bool,
}

impl Filters {
    /// Checks the filters themselves; names the field at fault.
    pub fn validate(&self) -> Result<(), crate::Error> {
        if let Some(s) = &self.selector {
            selector_matches(s, &Default::default())
                .map_err(|m| crate::Error::Rules { field: "filters.selector".into(), message: m })?;
        }
        Ok(())
    }
}

/// Why an object is left out, or `None` when it is migrated.
pub fn exclusion(o: &Obj, f: &Filters) -> Option<String> {
    if let Some(why) = default_exclusion(o, f.include_system_namespaces) {
        return Some(why.to_string());
    }
    let ns = if o.kind() == "Namespace" && o.group().is_empty() { o.name() } else { o.namespace() };
    let gk = o.obj_ref().group_kind();
    if !ns.is_empty() {
        if !f.include_namespaces.is_empty() && !f.include_namespaces.iter().any(|n| n == ns) {
            return Some(format!("namespace {ns} is not in the included namespaces"));
        }
        if f.exclude_namespaces.iter().any(|n| n == ns) {
            return Some(format!("namespace {ns} is excluded"));
        }
    }
    let same = |r: &String| r.eq_ignore_ascii_case(&gk) || r.eq_ignore_ascii_case(o.kind()) && o.group().is_empty();
    if !f.include_resources.is_empty() && !f.include_resources.iter().any(same) {
        return Some(format!("{gk} is not in the included resources"));
    }
    if f.exclude_resources.iter().any(same) {
        return Some(format!("{gk} is excluded"));
    }
    if let Some(s) = &f.selector {
        if o.kind() != "Namespace" && !selector_matches(s, &o.labels()).unwrap_or(false) {
            return Some(format!("labels do not match `{s}`"));
        }
    }
    None
}

/// `metadata.annotations[key]`.
fn annotation<'a>(o: &'a Obj, key: &str) -> Option<&'a str> {
    o.get("/metadata/annotations").and_then(|a| a.get(key)).and_then(|v| v.as_str())
}

/// `metadata.labels[key]`.
fn label<'a>(o: &'a Obj, key: &str) -> Option<&'a str> {
    o.get("/metadata/labels").and_then(|a| a.get(key)).and_then(|v| v.as_str())
}

/// The objects never migrated unless asked for, and why: what the cluster itself makes or owns. The list is
/// checked against every object an empty Kubernetes 1.36 API server holds (`testdata/empty-apiserver-1.36.jsonl`,
/// and an end-to-end test on a real server): a target makes all of them itself.
pub fn default_exclusion(o: &Obj, include_system: bool) -> Option<&'static str> {
    let (g, k, ns, name) = (o.group(), o.kind(), o.namespace(), o.name());
    let system = |n: &str| SYSTEM_NAMESPACES.contains(&n);
    Some(match (g, k) {
        ("", "Service") if ns == "default" && name == "kubernetes" => {
            "the API server's own Service, which every cluster makes"
        }
        // the API server reconciles its bootstrap RBAC at every start unless a user turned that off on an object
        // (autoupdate "false"): then it is the user's, and migrated
        ("rbac.authorization.k8s.io", "ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding")
            if label(o, "kubernetes.io/bootstrapping") == Some("rbac-defaults")
                && annotation(o, "rbac.authorization.kubernetes.io/autoupdate") != Some("false") =>
        {
            "bootstrap RBAC the API server keeps up to date (kubernetes.io/bootstrapping=rbac-defaults)"
        }
        ("rbac.authorization.k8s.io", "ClusterRole" | "ClusterRoleBinding") if name.starts_with("eks:") => {
            "made by EKS in every cluster"
        }
        ("flowcontrol.apiserver.k8s.io", "FlowSchema" | "PriorityLevelConfiguration")
            if annotation(o, "apf.kubernetes.io/autoupdate-spec") != Some("false")
                && (annotation(o, "apf.kubernetes.io/autoupdate-spec").is_some()
                    || matches!(name, "exempt" | "catch-all")) =>
        {
            "API priority and fairness configuration the API server maintains (apf.kubernetes.io/autoupdate-spec)"
        }
        ("scheduling.k8s.io", "PriorityClass") if name.starts_with("system-") => {
            "a built-in priority class (system- names are reserved)"
        }
        ("networking.k8s.io", "IPAddress") => "ClusterIP allocator state: the target allocates its own addresses",
        ("networking.k8s.io", "ServiceCIDR") if name == "kubernetes" => {
            "the cluster's default Service CIDR, made from its API server's flags"
        }
        ("certificates.k8s.io", "CertificateSigningRequest") => {
            "certificate requests belong to the nodes and users of the cluster that signed them"
        }
        ("resource.k8s.io", "ResourceSlice") => "published by the drivers on the cluster's nodes",
        ("internal.apiserver.k8s.io", "StorageVersion") => "the API servers' own storage bookkeeping",
        ("coordination.k8s.io", "LeaseCandidate") => "leases are held by running controllers",
        ("", "Namespace") if !include_system && (system(name) || name == "default") => "a namespace every cluster has",
        _ if !include_system && system(ns) => "in a system namespace",
        ("", "Node") => "nodes belong to the cluster, not to its workloads",
        ("", "Event") | ("events.k8s.io", "Event") => "events are a record, not state",
        ("coordination.k8s.io", "Lease") => "leases are held by running controllers",
        ("", "Endpoints") => "the endpoints controller makes endpoints from Services",
        ("discovery.k8s.io", "EndpointSlice") => "the endpoint-slice controller makes them from Services",
        ("", "Pod") | ("apps", "ReplicaSet") | ("batch", "Job") | ("apps", "ControllerRevision")
            if o.owner_refs().iter().any(|r| r.get("controller").and_then(|c| c.as_bool()) == Some(true)) =>
        {
            "owned by a controller, which makes it again"
        }
        ("", "ServiceAccount") if name == "default" => "every namespace gets a default ServiceAccount",
        ("", "ConfigMap") if name == "kube-root-ca.crt" => "every namespace gets the cluster's CA",
        ("", "Secret")
            if o.get("/type").and_then(|t| t.as_str()) == Some("kubernetes.io/service-account-token")
                && o.get("/metadata/annotations/kubernetes.io~1service-account.name").is_some() =>
        {
            "service-account tokens are minted by the target cluster"
        }
        ("storage.k8s.io", "CSINode") => "CSI nodes belong to the cluster's nodes",
        ("storage.k8s.io", "VolumeAttachment") => "volume attachments belong to the cluster's nodes",
        ("apiregistration.k8s.io", "APIService")
            if o.get("/metadata/labels/kube-aggregator.kubernetes.io~1automanaged").is_some() =>
        {
            "automatically registered by the API server"
        }
        ("", "ComponentStatus") | ("", "Binding") => "not an object of the workload",
        ("authentication.k8s.io", _) | ("authorization.k8s.io", _) => "a request, not stored state",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn o(v: serde_json::Value) -> Obj {
        Obj(v)
    }

    #[test]
    fn defaults_exclude_what_the_cluster_makes() {
        let cases = [
            (json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}}), true),
            (json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}), false),
            (
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "kube-system"}}),
                true,
            ),
            (
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt", "namespace": "shop"}}),
                true,
            ),
            (
                json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": "shop"}}),
                true,
            ),
            (
                json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "api", "namespace": "shop"}}),
                false,
            ),
            (
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "shop", "ownerReferences": [{"kind": "ReplicaSet", "name": "r", "controller": true}]}}),
                true,
            ),
            (json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "shop"}}), false),
            (
                json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token", "metadata": {"name": "t", "namespace": "shop", "annotations": {"kubernetes.io/service-account.name": "api"}}}),
                true,
            ),
            (
                json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": "t", "namespace": "shop"}}),
                false,
            ),
            (
                json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l", "namespace": "shop"}}),
                true,
            ),
            (
                json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "e", "namespace": "shop"}}),
                true,
            ),
            (
                json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": "v1.apps", "labels": {"kube-aggregator.kubernetes.io/automanaged": "onstart"}}}),
                true,
            ),
            (json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSINode", "metadata": {"name": "n"}}), true),
        ];
        for (v, excluded) in cases {
            let obj = o(v);
            assert_eq!(default_exclusion(&obj, false).is_some(), excluded, "{}", obj.obj_ref());
        }
    }

    /// Everything an empty API server holds is something a target makes itself.
    #[test]
    fn nothing_of_an_empty_api_server_is_migrated() {
        let text = include_str!("../testdata/empty-apiserver-1.36.jsonl");
        let mut n = 0;
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let obj = o(serde_json::from_str(line).unwrap());
            assert!(default_exclusion(&obj, false).is_some(), "{} would be migrated", obj.obj_ref());
            n += 1;
        }
        assert!(n > 190, "{n} objects");
        // a bootstrap role a user took over (autoupdate off) is the user's
        let taken = o(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "edit", "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}, "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "false"}}}),
        );
        assert_eq!(default_exclusion(&taken, false), None);
        let mine = o(
            json!({"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema", "metadata": {"name": "batch-jobs"}}),
        );
        assert_eq!(default_exclusion(&mine, false), None);
        let pc =
            o(json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "high"}}));
        assert_eq!(default_exclusion(&pc, false), None);
    }

    #[test]
    fn user_filters() {
        let f = Filters {
            include_namespaces: vec!["shop".into()],
            exclude_resources: vec!["Secret".into()],
            selector: Some("app=web".into()),
            ..Default::default()
        };
        let cm = |ns: &str, app: &str| {
            o(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": ns, "labels": {"app": app}}}),
            )
        };
        assert_eq!(exclusion(&cm("shop", "web"), &f), None);
        assert!(exclusion(&cm("blog", "web"), &f).unwrap().contains("not in the included"));
        assert!(exclusion(&cm("shop", "db"), &f).unwrap().contains("labels"));
        let s = o(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "shop", "labels": {"app": "web"}}}),
        );
        assert!(exclusion(&s, &f).unwrap().contains("excluded"));
        let ns = o(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
        assert_eq!(exclusion(&ns, &f), None, "a namespace is not filtered by labels");
        assert!(Filters { selector: Some("a in (b)".into()), ..Default::default() }.validate().is_err());
    }
}
