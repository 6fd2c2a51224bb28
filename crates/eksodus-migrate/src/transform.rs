//! Transforms: what changes between the source's object and the one applied to the target. Each rule is named;
//! the report lists, per object, the rules that changed it.
//!
//! Always: server-populated fields go (uid, resourceVersion, generation, creationTimestamp, deletionTimestamp,
//! managedFields, selfLink, status, the last-applied annotation, controller-uid labels and selectors), finalizers
//! (unless a rule keeps them), a Namespace's `spec.finalizers` (the target's API server sets its own), Service
//! cluster IPs (unless headless) and node ports (unless pinned), PVC binding annotations and volume names. From
//! the [`Rules`]: storage classes, ingress classes, load-balancer annotations, image registries, IRSA role ARNs
//! and namespace renames.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::object::Ptr;
use crate::object::{Obj, ObjRef};

/// The user's mappings, from a rules file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rules {
    /// Storage class renames (PVCs, StatefulSet volume claim templates).
    pub storage_classes: BTreeMap<String, String>,
    /// Ingress class renames (`spec.ingressClassName` and the legacy annotation).
    pub ingress_classes: BTreeMap<String, String>,
    /// Annotations set on every Service of type LoadBalancer (value `null`... is not allowed; use `remove_service_annotations`).
    pub load_balancer_annotations: BTreeMap<String, String>,
    /// Annotation keys removed from Services (another cloud's load-balancer settings).
    pub remove_service_annotations: Vec<String>,
    /// Image registry prefixes: `old/prefix` → `new/prefix` (longest match wins).
    pub image_registries: BTreeMap<String, String>,
    /// `namespace/serviceaccount` → IAM role ARN, written as `eks.amazonaws.com/role-arn`.
    pub irsa: BTreeMap<String, String>,
    /// Namespace renames (also in RoleBinding and ClusterRoleBinding subjects).
    pub namespaces: BTreeMap<String, String>,
    /// Keep Services' node ports instead of letting the target pick.
    pub keep_node_ports: bool,
    /// Finalizers carried over (every other one is dropped: a finalizer belongs to a controller of the source,
    /// and one nobody on the target removes blocks every delete there).
    pub keep_finalizers: Vec<String>,
}

impl Rules {
    /// Reads a rules file (YAML); errors name the field.
    pub fn from_yaml(text: &str) -> Result<Rules, crate::Error> {
        // Enums are maps keyed by the variant (`set: {...}`), serde-saphyr's native form for externally tagged enums.
        serde_saphyr::from_str(text).map_err(|e: serde_saphyr::Error| crate::Error::Rules {
            field: e.location().map(|l| format!("line {}", l.line())).unwrap_or_else(|| "rules".into()),
            message: e.to_string(),
        })
    }
}

/// The annotation `kubectl apply` leaves.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The IRSA annotation on ServiceAccounts.
pub const IRSA_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

const CONTROLLER_UID_LABELS: &[&str] = &["controller-uid", "batch.kubernetes.io/controller-uid"];
const PVC_BINDING_ANNOTATIONS: &[&str] = &[
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/selected-node",
];

fn remove(v: &mut Value, pointer_parent: &str, key: &str) -> bool {
    match v.at_mut(pointer_parent).and_then(Value::as_object_mut) {
        Some(m) => m.remove(key).is_some(),
        None => false,
    }
}

fn pod_spec_paths(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pod" => &["/spec"],
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" | "ReplicationController" => {
            &["/spec/template/spec"]
        }
        "CronJob" => &["/spec/jobTemplate/spec/template/spec"],
        _ => &[],
    }
}

/// The pod specs inside an object (none for kinds without one).
pub fn pod_specs(o: &Obj) -> Vec<&Value> {
    pod_spec_paths(o.kind()).iter().filter_map(|p| o.get(p)).collect()
}

fn rewrite_image(image: &str, maps: &BTreeMap<String, String>) -> Option<String> {
    let (from, to) = maps.iter().filter(|(f, _)| image.starts_with(f.as_str())).max_by_key(|(f, _)| f.len())?;
    Some(format!("{to}{}", &image[from.len()..]))
}

/// Applies every rule to one object; returns the rules that changed it. `migrated_owners` are the objects the
/// run migrates (an owner reference to anything else would dangle in the target, so it goes).
pub fn apply(o: &mut Obj, rules: &Rules, migrated: &BTreeSet<ObjRef>) -> Vec<&'static str> {
    let mut applied = Vec::new();
    let (group, kind) = (o.group().to_string(), o.kind().to_string());
    let v = &mut o.0;
    let mut hit = |name: &'static str, changed: bool| {
        if changed && !applied.contains(&name) {
            applied.push(name);
        }
    };
    // server-populated fields
    let mut stripped = false;
    for k in [
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
    ] {
        stripped |= remove(v, "/metadata", k);
    }
    stripped |= v.as_object_mut().is_some_and(|m| m.remove("status").is_some());
    hit("strip-server-fields", stripped);
    hit("strip-last-applied", remove(v, "/metadata/annotations", LAST_APPLIED));
    let mut uid = false;
    for l in CONTROLLER_UID_LABELS {
        uid |= remove(v, "/metadata/labels", l);
        uid |= remove(v, "/spec/selector/matchLabels", l);
        uid |= remove(v, "/spec/template/metadata/labels", l);
    }
    hit("strip-controller-uid", uid);
    let mut fin = false;
    if let Some(list) = v.at_mut("/metadata/finalizers").and_then(Value::as_array_mut) {
        let before = list.len();
        list.retain(|f| f.as_str().is_some_and(|f| rules.keep_finalizers.iter().any(|k| k == f)));
        fin = list.len() != before;
        if list.is_empty() {
            remove(v, "/metadata", "finalizers");
        }
    }
    if group.is_empty() && kind == "Namespace" {
        // the API server sets this label to the namespace's name on every write
        stripped |= remove(v, "/metadata/labels", "kubernetes.io/metadata.name");
        fin |= remove(v, "/spec", "finalizers");
        if v.at("/spec").and_then(Value::as_object).is_some_and(Map::is_empty) {
            remove(v, "", "spec");
        }
    }
    hit("strip-finalizers", fin);
    hit("strip-server-fields", stripped);
    // owner references: only those to migrated owners would make sense, and their UIDs change anyway
    if let Some(refs) = v.at("/metadata/ownerReferences").and_then(Value::as_array).cloned() {
        let dangling = refs.iter().any(|r| {
            let (g, k) = (
                crate::object::group_of(r.get("apiVersion").and_then(Value::as_str).unwrap_or_default()),
                r.get("kind").and_then(Value::as_str).unwrap_or_default(),
            );
            let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
            let ns = o_ns(v);
            !migrated.contains(&ObjRef::new(g, k, &ns, name)) && !migrated.contains(&ObjRef::new(g, k, "", name))
        });
        remove(v, "/metadata", "ownerReferences");
        hit(if dangling { "drop-dangling-owner-references" } else { "drop-owner-references" }, true);
    }

    match (group.as_str(), kind.as_str()) {
        ("", "Service") => {
            let headless = v.at("/spec/clusterIP").and_then(Value::as_str) == Some("None");
            if !headless {
                let a = remove(v, "/spec", "clusterIP");
                let b = remove(v, "/spec", "clusterIPs");
                hit("strip-cluster-ip", a || b);
            }
            if !rules.keep_node_ports {
                let mut np = false;
                if let Some(ports) = v.at_mut("/spec/ports").and_then(Value::as_array_mut) {
                    for p in ports {
                        np |= p.as_object_mut().is_some_and(|m| m.remove("nodePort").is_some());
                    }
                }
                hit("strip-node-ports", np);
            }
            hit("strip-health-check-node-port", remove(v, "/spec", "healthCheckNodePort"));
            let lb = v.at("/spec/type").and_then(Value::as_str) == Some("LoadBalancer");
            let mut ann = false;
            for k in &rules.remove_service_annotations {
                ann |= remove(v, "/metadata/annotations", k);
            }
            if lb && !rules.load_balancer_annotations.is_empty() {
                let a = annotations_mut(v);
                for (k, val) in &rules.load_balancer_annotations {
                    if a.get(k) != Some(&json!(val)) {
                        a[k] = json!(val);
                        ann = true;
                    }
                }
            }
            hit("load-balancer-annotations", ann);
        }
        ("", "PersistentVolumeClaim") => {
            let mut b = false;
            for a in PVC_BINDING_ANNOTATIONS {
                b |= remove(v, "/metadata/annotations", a);
            }
            b |= remove(v, "/spec", "volumeName");
            hit("strip-pvc-binding", b);
            hit("storage-class", map_str(v, "/spec/storageClassName", &rules.storage_classes));
        }
        ("apps", "StatefulSet") => {
            let mut sc = false;
            if let Some(ts) = v.at_mut("/spec/volumeClaimTemplates").and_then(Value::as_array_mut) {
                for t in ts {
                    sc |= map_str(t, "/spec/storageClassName", &rules.storage_classes);
                    if let Some(m) = t.as_object_mut() {
                        sc |= m.remove("status").is_some();
                    }
                }
            }
            hit("storage-class", sc);
        }
        ("networking.k8s.io", "Ingress") | ("extensions", "Ingress") => {
            let a = map_str(v, "/spec/ingressClassName", &rules.ingress_classes);
            let b = map_str(v, "/metadata/annotations/kubernetes.io~1ingress.class", &rules.ingress_classes);
            hit("ingress-class", a || b);
        }
        ("", "ServiceAccount") => {
            let key = format!("{}/{}", o_ns(v), v.at("/metadata/name").and_then(Value::as_str).unwrap_or_default());
            if let Some(arn) = rules.irsa.get(&key) {
                let a = annotations_mut(v);
                if a.get(IRSA_ANNOTATION) != Some(&json!(arn)) {
                    a[IRSA_ANNOTATION] = json!(arn);
                    hit("irsa-role", true);
                }
            }
        }
        ("rbac.authorization.k8s.io", "RoleBinding") | ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            let mut r = false;
            if let Some(subjects) = v.at_mut("/subjects").and_then(Value::as_array_mut) {
                for s in subjects {
                    r |= map_str(s, "/namespace", &rules.namespaces);
                }
            }
            hit("namespace-rename", r);
        }
        _ => {}
    }
    // images in every pod spec
    let mut img = false;
    for p in pod_spec_paths(&kind) {
        if let Some(spec) = v.at_mut(p) {
            for list in ["containers", "initContainers", "ephemeralContainers"] {
                if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
                    for c in cs {
                        if let Some(new) = c
                            .get("image")
                            .and_then(Value::as_str)
                            .and_then(|i| rewrite_image(i, &rules.image_registries))
                        {
                            c["image"] = json!(new);
                            img = true;
                        }
                    }
                }
            }
        }
    }
    hit("image-registry", img);
    // namespace renames (the object itself; a Namespace's own name)
    let mut ns = map_str(v, "/metadata/namespace", &rules.namespaces);
    if group.is_empty() && kind == "Namespace" {
        ns |= map_str(v, "/metadata/name", &rules.namespaces);
    }
    hit("namespace-rename", ns);
    for empty in ["/metadata/annotations", "/metadata/labels"] {
        if v.at(empty).and_then(Value::as_object).is_some_and(Map::is_empty) {
            let key = empty.rsplit('/').next().unwrap_or_default().to_string();
            remove(v, "/metadata", &key);
        }
    }
    applied
}

/// `metadata.annotations`, made when missing (an object without `metadata` gets one: it is an embedder's
/// object, and a transform never panics on it).
fn annotations_mut(v: &mut Value) -> &mut Value {
    if !v.get("metadata").is_some_and(Value::is_object) {
        v["metadata"] = json!({});
    }
    let meta = v["metadata"].as_object_mut().expect("made an object above");
    let a = meta.entry("annotations").or_insert_with(|| json!({}));
    if !a.is_object() {
        *a = json!({});
    }
    a
}

fn o_ns(v: &Value) -> String {
    v.at("/metadata/namespace").and_then(Value::as_str).unwrap_or_default().to_string()
}

fn map_str(v: &mut Value, pointer: &str, map: &BTreeMap<String, String>) -> bool {
    let Some(cur) = v.at(pointer).and_then(Value::as_str) else { return false };
    let Some(new) = map.get(cur) else { return false };
    let new = new.clone();
    if let Some(slot) = v.at_mut(pointer) {
        *slot = json!(new);
    }
    true
}

/// Whether an object is owned by a controller the run migrates (then it is skipped: the controller makes it
/// again in the target).
pub fn owned_by_migrated_controller(o: &Obj, migrated: &BTreeSet<ObjRef>) -> Option<ObjRef> {
    o.owner_refs().iter().find_map(|r| {
        if r.get("controller").and_then(Value::as_bool) != Some(true) {
            return None;
        }
        let g = crate::object::group_of(r.get("apiVersion").and_then(Value::as_str).unwrap_or_default());
        let k = r.get("kind").and_then(Value::as_str).unwrap_or_default();
        let n = r.get("name").and_then(Value::as_str).unwrap_or_default();
        [ObjRef::new(g, k, o.namespace(), n), ObjRef::new(g, k, "", n)].into_iter().find(|c| migrated.contains(c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(v: Value, rules: &Rules) -> (Value, Vec<&'static str>) {
        let mut o = Obj(v);
        let applied = apply(&mut o, rules, &BTreeSet::new());
        (o.0, applied)
    }

    /// Data-driven: each case is (rule names expected, input, expected output).
    #[test]
    fn every_rule_does_what_it_says() {
        let rules = Rules::from_yaml(
            "storage_classes: {gp2: gp3}\ningress_classes: {nginx: alb}\nload_balancer_annotations: {service.beta.kubernetes.io/aws-load-balancer-type: external}\nremove_service_annotations: [cloud.google.com/neg]\nimage_registries: {docker.io/library/: 111122223333.dkr.ecr.us-east-1.amazonaws.com/hub/, gcr.io/acme/: 111122223333.dkr.ecr.us-east-1.amazonaws.com/acme/}\nirsa: {shop/api: 'arn:aws:iam::111122223333:role/api'}\nnamespaces: {legacy: shop}\nkeep_finalizers: [example.com/keep]\n",
        )
        .unwrap();
        let cases: Vec<(Vec<&str>, Value, Value)> = vec![
            (
                vec!["strip-server-fields", "strip-last-applied"],
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "a", "uid": "u", "resourceVersion": "9", "creationTimestamp": "t", "managedFields": [], "annotations": {LAST_APPLIED: "{}"}}, "data": {"k": "v"}}),
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "a"}, "data": {"k": "v"}}),
            ),
            (
                vec![
                    "strip-server-fields",
                    "strip-cluster-ip",
                    "strip-node-ports",
                    "strip-health-check-node-port",
                    "load-balancer-annotations",
                ],
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "a", "annotations": {"cloud.google.com/neg": "x"}}, "spec": {"type": "LoadBalancer", "clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"], "healthCheckNodePort": 3, "ports": [{"port": 80, "nodePort": 30080}]}, "status": {"loadBalancer": {}}}),
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "a", "annotations": {"service.beta.kubernetes.io/aws-load-balancer-type": "external"}}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}),
            ),
            (
                vec![],
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "h", "namespace": "a"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}),
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "h", "namespace": "a"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}),
            ),
            (
                vec!["strip-pvc-binding", "storage-class"],
                json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "p", "namespace": "a", "annotations": {"pv.kubernetes.io/bind-completed": "yes"}}, "spec": {"storageClassName": "gp2", "volumeName": "pv-1"}}),
                json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "p", "namespace": "a"}, "spec": {"storageClassName": "gp3"}}),
            ),
            (
                vec!["storage-class", "image-registry"],
                json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "a"}, "spec": {"template": {"spec": {"containers": [{"name": "pg", "image": "docker.io/library/postgres:16"}]}}, "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"storageClassName": "gp2"}, "status": {"phase": "Pending"}}]}}),
                json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "a"}, "spec": {"template": {"spec": {"containers": [{"name": "pg", "image": "111122223333.dkr.ecr.us-east-1.amazonaws.com/hub/postgres:16"}]}}, "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"storageClassName": "gp3"}}]}}),
            ),
            (
                vec!["strip-controller-uid", "image-registry"],
                json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "j", "namespace": "a", "labels": {"controller-uid": "x"}}, "spec": {"jobTemplate": {"spec": {"template": {"spec": {"initContainers": [{"name": "i", "image": "gcr.io/acme/tool:1"}], "containers": [{"name": "c", "image": "busybox"}]}}}}}}),
                json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "j", "namespace": "a"}, "spec": {"jobTemplate": {"spec": {"template": {"spec": {"initContainers": [{"name": "i", "image": "111122223333.dkr.ecr.us-east-1.amazonaws.com/acme/tool:1"}], "containers": [{"name": "c", "image": "busybox"}]}}}}}}),
            ),
            (
                vec!["ingress-class"],
                json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i", "namespace": "a", "annotations": {"kubernetes.io/ingress.class": "nginx"}}, "spec": {"ingressClassName": "nginx"}}),
                json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i", "namespace": "a", "annotations": {"kubernetes.io/ingress.class": "alb"}}, "spec": {"ingressClassName": "alb"}}),
            ),
            (
                vec!["irsa-role"],
                json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "api", "namespace": "shop"}}),
                json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "api", "namespace": "shop", "annotations": {IRSA_ANNOTATION: "arn:aws:iam::111122223333:role/api"}}}),
            ),
            (
                vec!["namespace-rename"],
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "rb", "namespace": "legacy"}, "roleRef": {"kind": "Role", "name": "r"}, "subjects": [{"kind": "ServiceAccount", "name": "api", "namespace": "legacy"}]}),
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "rb", "namespace": "shop"}, "roleRef": {"kind": "Role", "name": "r"}, "subjects": [{"kind": "ServiceAccount", "name": "api", "namespace": "shop"}]}),
            ),
            (
                vec!["namespace-rename"],
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "legacy"}}),
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
            ),
            (
                vec!["strip-finalizers", "strip-pvc-binding"],
                json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "p", "namespace": "a", "finalizers": ["kubernetes.io/pvc-protection", "example.com/keep"]}, "spec": {"volumeName": "pv-1"}}),
                json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "p", "namespace": "a", "finalizers": ["example.com/keep"]}, "spec": {}}),
            ),
            (
                vec!["strip-finalizers", "strip-server-fields"],
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"kubernetes.io/metadata.name": "shop"}}, "spec": {"finalizers": ["kubernetes"]}}),
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
            ),
            (
                vec!["drop-dangling-owner-references"],
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "a", "ownerReferences": [{"apiVersion": "example.com/v1", "kind": "Thing", "name": "t", "uid": "u"}]}}),
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "a"}}),
            ),
        ];
        for (i, (want_rules, input, want)) in cases.into_iter().enumerate() {
            let (got, applied) = run(input, &rules);
            assert_eq!(got, want, "case {i}");
            let mut a = applied.clone();
            a.sort_unstable();
            let mut w = want_rules.clone();
            w.sort_unstable();
            assert_eq!(a, w, "case {i} rules");
        }
    }

    #[test]
    fn transforms_are_idempotent_and_rules_files_name_bad_fields() {
        let rules = Rules { namespaces: [("a".to_string(), "b".to_string())].into(), ..Default::default() };
        let (once, _) = run(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "a", "uid": "x"}, "spec": {"clusterIP": "1.2.3.4", "ports": [{"port": 1, "nodePort": 30000}]}}),
            &rules,
        );
        let (twice, applied) = run(once.clone(), &Rules::default());
        assert_eq!(once, twice);
        assert!(applied.is_empty());
        let e = Rules::from_yaml("storage_class: {a: b}\n").unwrap_err().to_string();
        assert!(e.contains("storage_class"), "{e}");
    }

    #[test]
    fn objects_without_metadata_do_not_panic() {
        let rules =
            Rules::from_yaml("irsa: {/x: 'arn:aws:iam::1:role/r'}\nload_balancer_annotations: {a: b}\n").unwrap();
        for v in [
            json!({"apiVersion": "v1", "kind": "ServiceAccount"}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": "oops", "spec": {"type": "LoadBalancer"}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}, "spec": {"finalizers": "x"}}),
            json!("not an object"),
        ] {
            let _ = run(v, &rules);
        }
    }

    #[test]
    fn controller_owned_objects_are_found() {
        let migrated: BTreeSet<ObjRef> = [ObjRef::new("apps", "Deployment", "a", "web")].into();
        let rs = Obj(
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-1", "namespace": "a", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "controller": true}]}}),
        );
        assert_eq!(owned_by_migrated_controller(&rs, &migrated), Some(ObjRef::new("apps", "Deployment", "a", "web")));
        let other = Obj(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "a", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}]}}),
        );
        assert_eq!(owned_by_migrated_controller(&other, &migrated), None, "not a controller reference");
    }
}
