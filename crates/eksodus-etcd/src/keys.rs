//! etcd keys back to Kubernetes resources. The API server stores an object at
//! `/registry/<resource prefix>/<namespace>/<name>` (or without the namespace for cluster-scoped ones); most
//! prefixes are the plural resource name, some are historical (`services/specs`, `minions`, `controllers`,
//! `ingress`), several groups share a key space (`events` for core and events.k8s.io, `ingress` for
//! networking.k8s.io and extensions), and custom resources and aggregated APIs live under
//! `/registry/<group>/<plural>/...`.

use serde::Serialize;

/// The resource a key holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Resource {
    /// API group (empty for core) of the stored version.
    pub group: String,
    /// Plural resource name.
    pub resource: String,
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// Built-in key prefixes: (prefix under `/registry/`, group, resource, namespaced), from the storage
/// configuration of kube-apiserver (`pkg/registry/*/storage`).
pub const PREFIXES: &[(&str, &str, &str, bool)] = &[
    ("services/specs", "", "services", true),
    ("services/endpoints", "", "endpoints", true),
    ("minions", "", "nodes", false),
    ("controllers", "", "replicationcontrollers", true),
    ("ingress", "networking.k8s.io", "ingresses", true),
    ("namespaces", "", "namespaces", false),
    ("configmaps", "", "configmaps", true),
    ("secrets", "", "secrets", true),
    ("pods", "", "pods", true),
    ("podtemplates", "", "podtemplates", true),
    ("serviceaccounts", "", "serviceaccounts", true),
    ("persistentvolumes", "", "persistentvolumes", false),
    ("persistentvolumeclaims", "", "persistentvolumeclaims", true),
    ("events", "", "events", true),
    ("limitranges", "", "limitranges", true),
    ("resourcequotas", "", "resourcequotas", true),
    ("deployments", "apps", "deployments", true),
    ("replicasets", "apps", "replicasets", true),
    ("daemonsets", "apps", "daemonsets", true),
    ("statefulsets", "apps", "statefulsets", true),
    ("controllerrevisions", "apps", "controllerrevisions", true),
    ("jobs", "batch", "jobs", true),
    ("cronjobs", "batch", "cronjobs", true),
    ("horizontalpodautoscalers", "autoscaling", "horizontalpodautoscalers", true),
    ("poddisruptionbudgets", "policy", "poddisruptionbudgets", true),
    ("podsecuritypolicy", "policy", "podsecuritypolicies", false),
    ("networkpolicies", "networking.k8s.io", "networkpolicies", true),
    ("ingressclasses", "networking.k8s.io", "ingressclasses", false),
    ("ipaddresses", "networking.k8s.io", "ipaddresses", false),
    ("servicecidrs", "networking.k8s.io", "servicecidrs", false),
    ("roles", "rbac.authorization.k8s.io", "roles", true),
    ("rolebindings", "rbac.authorization.k8s.io", "rolebindings", true),
    ("clusterroles", "rbac.authorization.k8s.io", "clusterroles", false),
    ("clusterrolebindings", "rbac.authorization.k8s.io", "clusterrolebindings", false),
    ("storageclasses", "storage.k8s.io", "storageclasses", false),
    ("volumeattachments", "storage.k8s.io", "volumeattachments", false),
    ("csinodes", "storage.k8s.io", "csinodes", false),
    ("csidrivers", "storage.k8s.io", "csidrivers", false),
    ("csistoragecapacities", "storage.k8s.io", "csistoragecapacities", true),
    ("volumeattributesclasses", "storage.k8s.io", "volumeattributesclasses", false),
    ("priorityclasses", "scheduling.k8s.io", "priorityclasses", false),
    ("leases", "coordination.k8s.io", "leases", true),
    ("endpointslices", "discovery.k8s.io", "endpointslices", true),
    ("flowschemas", "flowcontrol.apiserver.k8s.io", "flowschemas", false),
    ("prioritylevelconfigurations", "flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations", false),
    ("mutatingwebhookconfigurations", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", false),
    ("validatingwebhookconfigurations", "admissionregistration.k8s.io", "validatingwebhookconfigurations", false),
    ("validatingadmissionpolicies", "admissionregistration.k8s.io", "validatingadmissionpolicies", false),
    ("validatingadmissionpolicybindings", "admissionregistration.k8s.io", "validatingadmissionpolicybindings", false),
    ("mutatingadmissionpolicies", "admissionregistration.k8s.io", "mutatingadmissionpolicies", false),
    ("mutatingadmissionpolicybindings", "admissionregistration.k8s.io", "mutatingadmissionpolicybindings", false),
    ("certificatesigningrequests", "certificates.k8s.io", "certificatesigningrequests", false),
    ("clustertrustbundles", "certificates.k8s.io", "clustertrustbundles", false),
    ("runtimeclasses", "node.k8s.io", "runtimeclasses", false),
    ("resourceclaims", "resource.k8s.io", "resourceclaims", true),
    ("resourceclaimtemplates", "resource.k8s.io", "resourceclaimtemplates", true),
    ("deviceclasses", "resource.k8s.io", "deviceclasses", false),
    ("resourceslices", "resource.k8s.io", "resourceslices", false),
    ("apiextensions.k8s.io/customresourcedefinitions", "apiextensions.k8s.io", "customresourcedefinitions", false),
    ("apiregistration.k8s.io/apiservices", "apiregistration.k8s.io", "apiservices", false),
];

/// Keys the API server keeps for itself (allocators, leases of API servers): not objects.
pub const INTERNAL: &[&str] = &["ranges/serviceips", "ranges/servicenodeports", "masterleases"];

/// The resource a key holds, or why it is not an object key.
pub fn resource(key: &str, prefix: &str) -> Result<Resource, String> {
    let rest =
        key.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')).ok_or_else(|| format!("not under {prefix}"))?;
    if INTERNAL.iter().any(|i| rest.starts_with(i)) {
        return Err("an internal key of the API server".into());
    }
    // the longest matching built-in prefix wins (`services/specs` over a hypothetical `services`)
    if let Some((p, g, r, namespaced)) = PREFIXES
        .iter()
        .filter(|(p, ..)| rest.starts_with(p) && rest[p.len()..].starts_with('/'))
        .max_by_key(|(p, ..)| p.len())
    {
        let parts: Vec<&str> = rest[p.len() + 1..].split('/').collect();
        return match (namespaced, parts.as_slice()) {
            (true, [ns, name]) => Ok(Resource {
                group: g.to_string(),
                resource: r.to_string(),
                namespace: ns.to_string(),
                name: name.to_string(),
            }),
            (false, [name]) => Ok(Resource {
                group: g.to_string(),
                resource: r.to_string(),
                namespace: String::new(),
                name: name.to_string(),
            }),
            _ => Err(format!("{} key with {} segment(s) after the prefix", r, parts.len())),
        };
    }
    // custom resources and aggregated groups: /registry/<group>/<plural>/[<namespace>/]<name>
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [g, r, ns, name] if g.contains('.') => Ok(Resource {
            group: g.to_string(),
            resource: r.to_string(),
            namespace: ns.to_string(),
            name: name.to_string(),
        }),
        [g, r, name] if g.contains('.') => Ok(Resource {
            group: g.to_string(),
            resource: r.to_string(),
            namespace: String::new(),
            name: name.to_string(),
        }),
        _ => Err("an unknown key layout".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(key: &str) -> (String, String, String, String) {
        let x = resource(key, "/registry").unwrap();
        (x.group, x.resource, x.namespace, x.name)
    }

    #[test]
    fn keys_map_back_to_resources() {
        let s = |a: &str, b: &str, c: &str, d: &str| (a.to_string(), b.to_string(), c.to_string(), d.to_string());
        assert_eq!(r("/registry/configmaps/shop/web"), s("", "configmaps", "shop", "web"));
        assert_eq!(r("/registry/services/specs/shop/web"), s("", "services", "shop", "web"));
        assert_eq!(r("/registry/services/endpoints/shop/web"), s("", "endpoints", "shop", "web"));
        assert_eq!(r("/registry/minions/ip-10-0-0-1"), s("", "nodes", "", "ip-10-0-0-1"));
        assert_eq!(r("/registry/controllers/shop/rc"), s("", "replicationcontrollers", "shop", "rc"));
        assert_eq!(r("/registry/ingress/shop/web"), s("networking.k8s.io", "ingresses", "shop", "web"));
        assert_eq!(r("/registry/namespaces/shop"), s("", "namespaces", "", "shop"));
        assert_eq!(r("/registry/deployments/shop/web"), s("apps", "deployments", "shop", "web"));
        assert_eq!(
            r("/registry/apiextensions.k8s.io/customresourcedefinitions/widgets.example.com"),
            s("apiextensions.k8s.io", "customresourcedefinitions", "", "widgets.example.com")
        );
        assert_eq!(
            r("/registry/apiregistration.k8s.io/apiservices/v1.apps"),
            s("apiregistration.k8s.io", "apiservices", "", "v1.apps")
        );
        assert_eq!(r("/registry/example.com/widgets/shop/w"), s("example.com", "widgets", "shop", "w"));
        assert_eq!(r("/registry/example.com/clusterwidgets/w"), s("example.com", "clusterwidgets", "", "w"));
        assert!(resource("/registry/ranges/serviceips", "/registry").unwrap_err().contains("internal"));
        assert!(resource("/other/configmaps/a/b", "/registry").is_err());
        assert!(resource("/registry/configmaps/onlyone", "/registry").is_err());
    }
}
