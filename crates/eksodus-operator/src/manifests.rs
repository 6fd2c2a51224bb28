//! The install manifests, generated from the same types the operator runs: the CRD (from [`crate::crd`]),
//! least-privilege RBAC, and a Deployment of two replicas electing a leader.

use kube::CustomResourceExt;
use serde_json::{json, Value};

use crate::crd::Environment;
use crate::migration::Migration;

/// What to install.
#[derive(Debug, Clone)]
pub struct Install {
    /// The operator's namespace.
    pub namespace: String,
    /// Its container image (built from this workspace's `eksodus-operator` binary).
    pub image: String,
    /// Replicas (one leads, the others stand by).
    pub replicas: u32,
    /// An IAM role for the operator's service account (IRSA), for environments without a credentials Secret.
    pub role_arn: Option<String>,
    /// Namespaces whose Secrets the operator may read for environments' credentials (each gets a RoleBinding;
    /// nothing grants Secrets cluster-wide).
    pub credential_namespaces: Vec<String>,
}

impl Default for Install {
    fn default() -> Self {
        Install {
            namespace: "eksodus-system".into(),
            image: format!("eksodus-operator:{}", env!("CARGO_PKG_VERSION")),
            replicas: 2,
            role_arn: None,
            credential_namespaces: Vec::new(),
        }
    }
}

/// The name of the operator's objects (service account, roles, Deployment, Lease).
pub const NAME: &str = "eksodus-operator";

/// Every object to apply, in order (namespace and CRD first).
pub fn objects(i: &Install) -> Vec<Value> {
    let ns = &i.namespace;
    let labels = json!({"app.kubernetes.io/name": NAME, "app.kubernetes.io/version": env!("CARGO_PKG_VERSION")});
    let mut sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": NAME, "namespace": ns, "labels": labels}});
    if let Some(arn) = &i.role_arn {
        sa["metadata"]["annotations"] = json!({"eks.amazonaws.com/role-arn": arn});
    }
    let mut out = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}}),
        serde_json::to_value(Environment::crd()).expect("CRD serializes"),
        serde_json::to_value(Migration::crd()).expect("CRD serializes"),
        sa,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": NAME, "labels": labels},
        "rules": [
            {"apiGroups": ["eksodus.io"], "resources": ["environments"], "verbs": ["get", "list", "watch", "patch"]},
            {"apiGroups": ["eksodus.io"], "resources": ["environments/status"], "verbs": ["get", "patch"]},
            {"apiGroups": ["eksodus.io"], "resources": ["environments/finalizers"], "verbs": ["update"]},
            {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]}
        ]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": NAME, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": ns}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": format!("{NAME}-leader-election"), "namespace": ns, "labels": labels},
            "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": format!("{NAME}-leader-election"), "namespace": ns, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": format!("{NAME}-leader-election")},
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": ns}]}),
    ];
    if !i.credential_namespaces.is_empty() {
        out.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": format!("{NAME}-credentials"), "labels": labels},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}));
        for team in &i.credential_namespaces {
            out.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": format!("{NAME}-credentials"), "namespace": team, "labels": labels},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": format!("{NAME}-credentials")},
                "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": ns}]}));
        }
    }
    let pod_labels = json!({"app.kubernetes.io/name": NAME});
    out.push(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": NAME, "namespace": ns, "labels": labels},
        "spec": {
            "replicas": i.replicas,
            "selector": {"matchLabels": pod_labels},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "serviceAccountName": NAME,
                    "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "operator",
                        "image": i.image,
                        "args": ["--lease-namespace", "$(POD_NAMESPACE)", "--identity", "$(POD_NAME)", "--metrics-addr", "0.0.0.0:8080", "--work-dir", "/var/lib/eksodus"],
                        "volumeMounts": [{"name": "work", "mountPath": "/var/lib/eksodus"}],
                        "env": [
                            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
                        ],
                        "ports": [{"name": "metrics", "containerPort": 8080}],
                        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "metrics"}, "periodSeconds": 10},
                        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "metrics"}, "periodSeconds": 5},
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
                        "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}}
                    }],
                    // migrations' exported bundles and apply journals (a journal lost with the pod costs only
                    // re-sending unchanged objects, which server-side apply makes no-ops)
                    "volumes": [{"name": "work", "emptyDir": {}}]
                }
            }
        }}));
    out.push(
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": NAME, "namespace": ns, "labels": labels},
        "spec": {"selector": pod_labels, "ports": [{"name": "metrics", "port": 8080, "targetPort": "metrics"}]}}),
    );
    out
}

/// The objects as one multi-document YAML stream.
pub fn yaml(i: &Install) -> String {
    objects(i)
        .iter()
        .map(|o| serde_saphyr::to_string(o).expect("manifests serialize"))
        .collect::<Vec<_>>()
        .join("---\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rbac_grants_what_the_controller_does_and_no_more() {
        let objs = objects(&Install::default());
        let kinds: Vec<&str> = objs.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "Namespace",
                "CustomResourceDefinition",
                "CustomResourceDefinition",
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Role",
                "RoleBinding",
                "Deployment",
                "Service"
            ]
        );
        let text = serde_json::to_string(&objs).unwrap();
        assert!(!text.contains("\"*\""), "no wildcard grants");
        assert!(!text.contains("\"secrets\""), "no Secrets unless namespaces are named");
        let with = objects(&Install { credential_namespaces: vec!["team-a".into()], ..Default::default() });
        let binding =
            with.iter().find(|o| o["kind"] == "RoleBinding" && o["metadata"]["namespace"] == "team-a").unwrap();
        assert_eq!(binding["roleRef"]["name"], "eksodus-operator-credentials");
        let deploy = objs.iter().find(|o| o["kind"] == "Deployment").unwrap();
        assert_eq!(deploy["spec"]["replicas"], 2);
    }

    #[test]
    fn the_yaml_stream_reads_back_as_the_objects() {
        let i = Install { role_arn: Some("arn:aws:iam::111122223333:role/eksodus".into()), ..Default::default() };
        let text = yaml(&i);
        let docs: Vec<Value> = text.split("---\n").map(|d| serde_saphyr::from_str(d).unwrap()).collect();
        assert_eq!(docs, objects(&i));
        assert_eq!(
            docs[3]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
            "arn:aws:iam::111122223333:role/eksodus"
        );
    }
}
