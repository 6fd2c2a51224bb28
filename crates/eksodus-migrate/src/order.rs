//! Apply order: a dependency graph, not a static list. Objects fall into categories applied one after another
//! (CRDs, namespaces, storage and priority classes, RBAC, service accounts, config maps and secrets, PVCs,
//! workloads, services, ingresses, admission webhooks last); inside a category, edges found in the objects
//! (a RoleBinding's roleRef, a custom resource's CRD, ...) make sub-waves. Edges from pod specs, roleRefs and
//! webhook client configs are collected for every object; an edge to something not in the run is not an edge.
//! Cycles are reported and their members share the last sub-wave of their category.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use serde_json::Value;

use crate::object::Ptr;
use crate::object::{Obj, ObjRef};
use crate::transform::pod_specs;

/// The category rank of an object: lower ranks are applied first.
pub fn rank(o: &Obj) -> u32 {
    rank_of(o.group(), o.kind())
}

/// Category rank of a group and kind.
pub fn rank_of(group: &str, kind: &str) -> u32 {
    match (group, kind) {
        ("apiextensions.k8s.io", "CustomResourceDefinition") => 0,
        ("", "Namespace") => 1,
        ("storage.k8s.io", "StorageClass")
        | ("scheduling.k8s.io", "PriorityClass")
        | ("networking.k8s.io", "IngressClass") => 2,
        ("rbac.authorization.k8s.io", _) => 3,
        ("", "ServiceAccount") => 4,
        ("", "ConfigMap") | ("", "Secret") => 5,
        ("", "PersistentVolume") | ("", "PersistentVolumeClaim") => 6,
        ("", "Service") => 8,
        ("networking.k8s.io", "Ingress") | ("extensions", "Ingress") => 9,
        ("admissionregistration.k8s.io", _) => 10,
        // workloads, and everything else (custom resources, policies, ...) with them
        _ => 7,
    }
}

/// A hard dependency: `from` cannot work before `to` exists.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Edge {
    /// The dependent.
    pub from: ObjRef,
    /// What it needs.
    pub to: ObjRef,
    /// Why (`serviceAccountName`, `roleRef`, ...).
    pub why: String,
}

/// References an object makes to others (whether or not they are in the run).
pub fn references(o: &Obj) -> Vec<(ObjRef, String)> {
    let ns = o.namespace().to_string();
    let mut out = Vec::new();
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(String::from);
    if !ns.is_empty() {
        out.push((ObjRef::new("", "Namespace", "", &ns), "namespace".into()));
    }
    for spec in pod_specs(o) {
        if let Some(sa) = s(spec.get("serviceAccountName")).or_else(|| s(spec.get("serviceAccount"))) {
            out.push((ObjRef::new("", "ServiceAccount", &ns, &sa), "serviceAccountName".into()));
        }
        if let Some(pc) = s(spec.get("priorityClassName")) {
            out.push((ObjRef::new("scheduling.k8s.io", "PriorityClass", "", &pc), "priorityClassName".into()));
        }
        for p in spec.get("imagePullSecrets").and_then(Value::as_array).into_iter().flatten() {
            if let Some(n) = s(p.get("name")) {
                out.push((ObjRef::new("", "Secret", &ns, &n), "imagePullSecrets".into()));
            }
        }
        for v in spec.get("volumes").and_then(Value::as_array).into_iter().flatten() {
            if let Some(n) = s(v.at("/configMap/name")) {
                out.push((ObjRef::new("", "ConfigMap", &ns, &n), "volume".into()));
            }
            if let Some(n) = s(v.at("/secret/secretName")) {
                out.push((ObjRef::new("", "Secret", &ns, &n), "volume".into()));
            }
            if let Some(n) = s(v.at("/persistentVolumeClaim/claimName")) {
                out.push((ObjRef::new("", "PersistentVolumeClaim", &ns, &n), "volume".into()));
            }
            for src in v.at("/projected/sources").and_then(Value::as_array).into_iter().flatten() {
                if let Some(n) = s(src.at("/configMap/name")) {
                    out.push((ObjRef::new("", "ConfigMap", &ns, &n), "projected volume".into()));
                }
                if let Some(n) = s(src.at("/secret/name")) {
                    out.push((ObjRef::new("", "Secret", &ns, &n), "projected volume".into()));
                }
            }
        }
        for list in ["containers", "initContainers"] {
            for c in spec.get(list).and_then(Value::as_array).into_iter().flatten() {
                for e in c.get("envFrom").and_then(Value::as_array).into_iter().flatten() {
                    if let Some(n) = s(e.at("/configMapRef/name")) {
                        out.push((ObjRef::new("", "ConfigMap", &ns, &n), "envFrom".into()));
                    }
                    if let Some(n) = s(e.at("/secretRef/name")) {
                        out.push((ObjRef::new("", "Secret", &ns, &n), "envFrom".into()));
                    }
                }
                for e in c.get("env").and_then(Value::as_array).into_iter().flatten() {
                    if let Some(n) = s(e.at("/valueFrom/configMapKeyRef/name")) {
                        out.push((ObjRef::new("", "ConfigMap", &ns, &n), "env".into()));
                    }
                    if let Some(n) = s(e.at("/valueFrom/secretKeyRef/name")) {
                        out.push((ObjRef::new("", "Secret", &ns, &n), "env".into()));
                    }
                }
            }
        }
    }
    match (o.group(), o.kind()) {
        ("rbac.authorization.k8s.io", "RoleBinding") | ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            if let (Some(k), Some(n)) = (s(o.get("/roleRef/kind")), s(o.get("/roleRef/name"))) {
                let rns = if k == "ClusterRole" { String::new() } else { ns.clone() };
                out.push((ObjRef::new("rbac.authorization.k8s.io", &k, &rns, &n), "roleRef".into()));
            }
        }
        ("", "PersistentVolumeClaim") => {
            if let Some(sc) = s(o.get("/spec/storageClassName")) {
                out.push((ObjRef::new("storage.k8s.io", "StorageClass", "", &sc), "storageClassName".into()));
            }
        }
        ("apps", "StatefulSet") => {
            for t in o.get("/spec/volumeClaimTemplates").and_then(Value::as_array).into_iter().flatten() {
                if let Some(sc) = s(t.at("/spec/storageClassName")) {
                    out.push((ObjRef::new("storage.k8s.io", "StorageClass", "", &sc), "volumeClaimTemplates".into()));
                }
            }
        }
        ("networking.k8s.io", "Ingress") => {
            if let Some(c) = s(o.get("/spec/ingressClassName")) {
                out.push((ObjRef::new("networking.k8s.io", "IngressClass", "", &c), "ingressClassName".into()));
            }
        }
        ("admissionregistration.k8s.io", _) => {
            for w in o.get("/webhooks").and_then(Value::as_array).into_iter().flatten() {
                if let (Some(sns), Some(n)) =
                    (s(w.at("/clientConfig/service/namespace")), s(w.at("/clientConfig/service/name")))
                {
                    out.push((ObjRef::new("", "Service", &sns, &n), "webhook clientConfig".into()));
                }
            }
        }
        _ => {}
    }
    out
}

/// What ordering needs of one object: its reference, the references it makes, and for a CRD the group and
/// kind it serves. Small enough to keep for every object of a large export while the objects themselves are
/// already written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The object.
    pub obj: ObjRef,
    /// References it makes ([`references`]), whether or not the targets are in the run, except the one to
    /// its namespace: that follows from `obj` and is not stored (most objects make no other reference).
    pub refs: Vec<(ObjRef, String)>,
    /// For a CustomResourceDefinition: the `(group, kind)` it serves.
    pub serves: Option<(String, String)>,
}

impl Node {
    /// The node of an object.
    pub fn of(o: &Obj) -> Node {
        let serves = (o.group() == "apiextensions.k8s.io" && o.kind() == "CustomResourceDefinition")
            .then(|| {
                let g = o.get("/spec/group")?.as_str()?.to_string();
                let k = o.get("/spec/names/kind")?.as_str()?.to_string();
                Some((g, k))
            })
            .flatten();
        let mut refs = references(o);
        refs.retain(|(r, why)| !(why == "namespace" && r.kind == "Namespace" && r.group.is_empty()));
        refs.shrink_to_fit();
        Node { obj: o.obj_ref(), refs, serves }
    }
}

/// The apply order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Order {
    /// Wave of each object (0 first; dense).
    pub waves: BTreeMap<ObjRef, u32>,
    /// Hard edges between objects of the run.
    pub edges: Vec<Edge>,
    /// Cycles found (their members), each reported once.
    pub cycles: Vec<Vec<ObjRef>>,
    /// Edges that point to a later category (ignored for ordering; reported).
    pub backward: Vec<Edge>,
}

impl Order {
    /// Objects grouped by wave, in wave order.
    pub fn by_wave(&self) -> Vec<Vec<ObjRef>> {
        let n = self.waves.values().copied().max().map_or(0, |m| m as usize + 1);
        let mut out = vec![Vec::new(); n];
        for (r, w) in &self.waves {
            out[*w as usize].push(r.clone());
        }
        out
    }
}

/// Orders objects. Pure; deterministic.
pub fn order(objs: &[Obj]) -> Order {
    order_nodes(&objs.iter().map(Node::of).collect::<Vec<_>>())
}

/// Orders objects by their [`Node`]s. Pure; deterministic.
pub fn order_nodes(nodes: &[Node]) -> Order {
    let nodes: Vec<&Node> = nodes.iter().collect();
    let g = Graph::new(&nodes);
    let edge = |&(f, t, why): &(usize, usize, &str)| Edge {
        from: g.node(f).obj.clone(),
        to: g.node(t).obj.clone(),
        why: why.to_string(),
    };
    Order {
        waves: (0..g.first.len()).map(|c| (g.node(c).obj.clone(), g.wave[c])).collect(),
        edges: g.edges.iter().map(edge).collect(),
        cycles: g.cycles.clone(),
        backward: g.backward.iter().map(edge).collect(),
    }
}

/// What an export needs of the order: for each input node (aligned with them) its wave and its position in
/// reference order (sorting by the pair gives the apply order), and what the report shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Positions {
    /// `(wave, position in reference order)` of each input node.
    pub of: Vec<(u32, usize)>,
    /// Cycles found (their members).
    pub cycles: Vec<Vec<ObjRef>>,
    /// Edges that point to a later category.
    pub backward: Vec<Edge>,
}

/// [`order_nodes`] without the full [`Order`]: cheaper for tens of thousands of objects. The nodes are
/// borrowed, so a caller keeping them inside larger records need not copy them out.
pub fn order_indexed(nodes: &[&Node]) -> Positions {
    let g = Graph::new(nodes);
    let of = nodes
        .iter()
        .map(|n| {
            let c = g.id[&n.obj];
            (g.wave[c], c)
        })
        .collect();
    let backward = g
        .backward
        .iter()
        .map(|&(f, t, why)| Edge { from: g.node(f).obj.clone(), to: g.node(t).obj.clone(), why: why.to_string() })
        .collect();
    Positions { of, cycles: g.cycles, backward }
}

/// The dependency graph over integer IDs assigned in reference order, so the result does not depend on the
/// input's order and a large run is not dominated by comparing references.
struct Graph<'a> {
    nodes: &'a [&'a Node],
    /// Canonical ID of each reference.
    id: HashMap<&'a ObjRef, usize>,
    /// Input index of each canonical ID.
    first: Vec<usize>,
    /// Wave of each canonical ID.
    wave: Vec<u32>,
    edges: Vec<(usize, usize, &'a str)>,
    backward: Vec<(usize, usize, &'a str)>,
    cycles: Vec<Vec<ObjRef>>,
}

impl<'a> Graph<'a> {
    fn node(&self, c: usize) -> &'a Node {
        self.nodes[self.first[c]]
    }

    fn new(nodes: &'a [&'a Node]) -> Graph<'a> {
        let mut sorted: Vec<usize> = (0..nodes.len()).collect();
        sorted.sort_by(|&a, &b| nodes[a].obj.cmp(&nodes[b].obj));
        // canonical IDs in reference order; a reference given twice is one object
        let mut id: HashMap<&ObjRef, usize> = HashMap::with_capacity(nodes.len());
        let mut first: Vec<usize> = Vec::with_capacity(nodes.len());
        for &i in &sorted {
            if let std::collections::hash_map::Entry::Vacant(v) = id.entry(&nodes[i].obj) {
                v.insert(first.len());
                first.push(i);
            }
        }
        let node = |c: usize| &nodes[first[c]];
        let m = first.len();
        let rank: Vec<u32> = (0..m).map(|c| rank_of(&node(c).obj.group, &node(c).obj.kind)).collect();
        // the CRD that serves a custom resource: `plural.group` is its name, but the plural is not in the object,
        // so the edge is made by matching the CRD's `spec.group` and `spec.names.kind`
        let mut crds: HashMap<(&str, &str), usize> = HashMap::new();
        for c in 0..m {
            if let Some((g, k)) = &node(c).serves {
                crds.entry((g.as_str(), k.as_str())).or_insert(c);
            }
        }
        let namespaces: HashMap<&str, usize> = (0..m)
            .filter(|&c| node(c).obj.group.is_empty() && node(c).obj.kind == "Namespace")
            .map(|c| (node(c).obj.name.as_str(), c))
            .collect();
        let mut edges: Vec<(usize, usize, &str)> = Vec::new();
        let mut backward: Vec<(usize, usize, &str)> = Vec::new();
        for c in 0..m {
            let n = node(c);
            let crd = crds.get(&(n.obj.group.as_str(), n.obj.kind.as_str())).map(|&t| (t, "custom resource of"));
            let ns = namespaces.get(n.obj.namespace.as_str()).map(|&t| (t, "namespace"));
            let refs = n.refs.iter().filter_map(|(to, why)| Some((*id.get(to)?, why.as_str())));
            for (t, why) in ns.into_iter().chain(refs).chain(crd) {
                if t == c {
                    continue;
                }
                if rank[t] > rank[c] {
                    backward.push((c, t, why));
                } else {
                    edges.push((c, t, why));
                }
            }
        }
        // IDs are in reference order, so this is the order of the references
        edges.sort_unstable();
        edges.dedup();
        backward.sort_unstable();
        backward.dedup();
        // sub-waves inside each category: longest path over intra-category edges; cycles found by Kahn's algorithm
        let mut deps: Vec<Vec<usize>> = vec![Vec::new(); m];
        let mut rdeps: Vec<Vec<usize>> = vec![Vec::new(); m];
        for &(f, t, _) in edges.iter().filter(|(f, t, _)| rank[*f] == rank[*t]) {
            deps[f].push(t);
            rdeps[t].push(f);
        }
        let mut by_rank: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (c, r) in rank.iter().enumerate() {
            by_rank.entry(*r).or_default().push(c);
        }
        let mut wave = vec![0u32; m];
        let mut indeg: Vec<usize> = deps.iter().map(Vec::len).collect();
        let mut level: Vec<Option<u32>> = vec![None; m];
        let mut cycles = Vec::new();
        let mut base = 0u32;
        for members in by_rank.values() {
            let mut ready: Vec<usize> = members.iter().copied().filter(|&c| indeg[c] == 0).collect();
            while let Some(c) = ready.pop() {
                let l = deps[c].iter().filter_map(|&d| level[d]).map(|l| l + 1).max().unwrap_or(0);
                level[c] = Some(l);
                for &r in &rdeps[c] {
                    indeg[r] -= 1;
                    if indeg[r] == 0 {
                        ready.push(r);
                    }
                }
            }
            let stuck: Vec<usize> = members.iter().copied().filter(|&c| level[c].is_none()).collect();
            let top = members.iter().filter_map(|&c| level[c]).max().map_or(0, |l| l + 1);
            if !stuck.is_empty() {
                cycles.push(stuck.iter().map(|&c| node(c).obj.clone()).collect());
            }
            for &c in members {
                wave[c] = base + level[c].unwrap_or(top);
            }
            let used = if stuck.is_empty() { top } else { top + 1 };
            base += used.max(1);
        }
        // dense numbering
        let used: BTreeSet<u32> = wave.iter().copied().collect();
        let dense: HashMap<u32, u32> = used.iter().enumerate().map(|(i, w)| (*w, i as u32)).collect();
        for w in &mut wave {
            *w = dense[w];
        }
        Graph { nodes, id, first, wave, edges, backward, cycles }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn obj(group: &str, kind: &str, ns: &str, name: &str) -> Obj {
        let api = if group.is_empty() { "v1".to_string() } else { format!("{group}/v1") };
        let mut v = json!({"apiVersion": api, "kind": kind, "metadata": {"name": name}});
        if !ns.is_empty() {
            v["metadata"]["namespace"] = json!(ns);
        }
        Obj(v)
    }

    #[test]
    fn a_typical_application_orders_as_documented() {
        let mut dep = obj("apps", "Deployment", "shop", "web");
        dep.0["spec"] = json!({"template": {"spec": {"serviceAccountName": "api", "containers": [{"name": "c", "image": "i", "envFrom": [{"configMapRef": {"name": "cfg"}}], "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "p"}}}]}], "volumes": [{"persistentVolumeClaim": {"claimName": "data"}}]}}});
        let mut rb = obj("rbac.authorization.k8s.io", "RoleBinding", "shop", "rb");
        rb.0["roleRef"] = json!({"kind": "Role", "name": "reader"});
        let mut hook = obj("admissionregistration.k8s.io", "ValidatingWebhookConfiguration", "", "check");
        hook.0["webhooks"] = json!([{"clientConfig": {"service": {"namespace": "shop", "name": "webhook"}}}]);
        let mut crd = obj("apiextensions.k8s.io", "CustomResourceDefinition", "", "widgets.example.com");
        crd.0["spec"] = json!({"group": "example.com", "names": {"kind": "Widget"}});
        let objs = vec![
            hook,
            obj("networking.k8s.io", "Ingress", "shop", "web"),
            obj("", "Service", "shop", "webhook"),
            dep,
            obj("example.com", "Widget", "shop", "w"),
            obj("", "PersistentVolumeClaim", "shop", "data"),
            obj("", "Secret", "shop", "db"),
            obj("", "ConfigMap", "shop", "cfg"),
            obj("", "ServiceAccount", "shop", "api"),
            rb,
            obj("rbac.authorization.k8s.io", "Role", "shop", "reader"),
            obj("storage.k8s.io", "StorageClass", "", "gp3"),
            obj("", "Namespace", "", "shop"),
            crd,
        ];
        let o = order(&objs);
        let w = |g: &str, k: &str, ns: &str, n: &str| o.waves[&ObjRef::new(g, k, ns, n)];
        let seq = [
            w("apiextensions.k8s.io", "CustomResourceDefinition", "", "widgets.example.com"),
            w("", "Namespace", "", "shop"),
            w("storage.k8s.io", "StorageClass", "", "gp3"),
            w("rbac.authorization.k8s.io", "Role", "shop", "reader"),
            w("rbac.authorization.k8s.io", "RoleBinding", "shop", "rb"),
            w("", "ServiceAccount", "shop", "api"),
            w("", "ConfigMap", "shop", "cfg"),
            w("", "PersistentVolumeClaim", "shop", "data"),
            w("apps", "Deployment", "shop", "web"),
            w("", "Service", "shop", "webhook"),
            w("networking.k8s.io", "Ingress", "shop", "web"),
            w("admissionregistration.k8s.io", "ValidatingWebhookConfiguration", "", "check"),
        ];
        assert!(seq.windows(2).all(|p| p[0] < p[1]), "{seq:?}");
        assert_eq!(w("", "Secret", "shop", "db"), w("", "ConfigMap", "shop", "cfg"));
        assert_eq!(w("example.com", "Widget", "shop", "w"), w("apps", "Deployment", "shop", "web"));
        assert!(o.edges.iter().any(|e| e.why == "roleRef"));
        assert!(o.edges.iter().any(|e| e.why == "custom resource of"));
        assert!(o.cycles.is_empty());
        assert_eq!(o.by_wave().len() as u32, o.waves.values().max().unwrap() + 1);
    }

    #[test]
    fn cycles_are_reported() {
        // two ClusterRoleBindings cannot reference each other, but custom kinds in one category can be made to
        let mut a = obj("rbac.authorization.k8s.io", "RoleBinding", "x", "a");
        a.0["roleRef"] = json!({"kind": "Role", "name": "b"});
        let mut b = obj("rbac.authorization.k8s.io", "Role", "x", "b");
        // a Role does not reference anything; make a cycle through two RoleBindings named as Roles
        b.0["kind"] = json!("RoleBinding");
        b.0["roleRef"] = json!({"kind": "RoleBinding", "name": "a"});
        a.0["roleRef"] = json!({"kind": "RoleBinding", "name": "b"});
        let o = order(&[a, b]);
        assert_eq!(o.cycles.len(), 1);
        assert_eq!(o.cycles[0].len(), 2);
    }

    const KINDS: &[(&str, &str, bool)] = &[
        ("", "Namespace", false),
        ("", "ConfigMap", true),
        ("", "Secret", true),
        ("", "ServiceAccount", true),
        ("", "PersistentVolumeClaim", true),
        ("", "Service", true),
        ("apps", "Deployment", true),
        ("rbac.authorization.k8s.io", "Role", true),
        ("rbac.authorization.k8s.io", "RoleBinding", true),
        ("storage.k8s.io", "StorageClass", false),
        ("networking.k8s.io", "Ingress", true),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration", false),
    ];

    fn arb_objs() -> impl Strategy<Value = Vec<Obj>> {
        prop::collection::vec((0..KINDS.len(), 0u8..3, 0u8..4, prop::collection::vec((0u8..3, 0u8..4, 0u8..4), 0..4)), 1..40)
            .prop_map(|specs| {
                let mut out: Vec<Obj> = Vec::new();
                for (k, ns, name, refs) in specs {
                    let (g, kind, namespaced) = KINDS[k];
                    let nsn = if namespaced { format!("ns{ns}") } else { String::new() };
                    let mut o = obj(g, kind, &nsn, &format!("o{name}"));
                    if kind == "Deployment" {
                        let mut env = vec![];
                        for (t, _, n) in &refs {
                            match t {
                                0 => env.push(json!({"configMapRef": {"name": format!("o{n}")}})),
                                1 => env.push(json!({"secretRef": {"name": format!("o{n}")}})),
                                _ => {}
                            }
                        }
                        o.0["spec"] = json!({"template": {"spec": {"serviceAccountName": format!("o{name}"), "containers": [{"name": "c", "image": "i", "envFrom": env}]}}});
                    }
                    if kind == "RoleBinding" {
                        o.0["roleRef"] = json!({"kind": "Role", "name": format!("o{}", refs.first().map_or(0, |r| r.2))});
                    }
                    if kind == "ValidatingWebhookConfiguration" {
                        o.0["webhooks"] = json!([{"clientConfig": {"service": {"namespace": format!("ns{ns}"), "name": format!("o{name}")}}}]);
                    }
                    if !out.iter().any(|x| x.obj_ref() == o.obj_ref()) {
                        out.push(o);
                    }
                }
                out
            })
    }

    proptest! {
        /// Every hard edge goes to an earlier wave; categories never interleave; waves are dense; the order does
        /// not depend on the input order.
        #[test]
        fn ordering_invariants(objs in arb_objs(), seed in any::<u64>()) {
            let o = order(&objs);
            prop_assert_eq!(o.waves.len(), objs.len());
            let in_cycle: BTreeSet<&ObjRef> = o.cycles.iter().flatten().collect();
            for e in &o.edges {
                if !in_cycle.contains(&e.from) {
                    prop_assert!(o.waves[&e.from] > o.waves[&e.to], "{:?}", e);
                }
            }
            for (a, wa) in &o.waves {
                for (b, wb) in &o.waves {
                    if rank_of(&a.group, &a.kind) < rank_of(&b.group, &b.kind) {
                        prop_assert!(wa < wb, "{} before {}", a, b);
                    }
                }
            }
            let used: BTreeSet<u32> = o.waves.values().copied().collect();
            prop_assert_eq!(used.len() as u32, used.iter().max().unwrap() + 1);
            let mut shuffled = objs.clone();
            let n = shuffled.len();
            for i in 0..n { shuffled.swap(i, (seed as usize).wrapping_add(i * 7) % n); }
            prop_assert_eq!(order(&shuffled), o);
        }
    }
}
