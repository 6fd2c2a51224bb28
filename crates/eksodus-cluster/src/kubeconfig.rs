//! Kubeconfig entries for an EKS cluster, in the layout `aws eks update-kubeconfig` writes (cluster, context
//! and user all named by the cluster ARN), with an `exec` user that asks a command for a fresh token.

use serde_json::{json, Value};

/// What the kubeconfig needs to know about a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterAccess {
    /// Cluster ARN (the name of the cluster, context and user entries).
    pub arn: String,
    /// Cluster name.
    pub name: String,
    /// Region.
    pub region: String,
    /// API server endpoint.
    pub endpoint: String,
    /// Base64 CA bundle, as DescribeCluster returns it.
    pub certificate_authority_data: String,
}

/// How kubectl gets a token: a command and its arguments that print an `ExecCredential`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecCommand {
    /// The command.
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Environment variables to set (such as `AWS_PROFILE`).
    pub env: Vec<(String, String)>,
}

impl ExecCommand {
    /// The AWS CLI's `eks get-token`, for users who prefer it.
    pub fn aws_cli(c: &ClusterAccess) -> Self {
        ExecCommand {
            command: "aws".into(),
            args: ["--region", &c.region, "eks", "get-token", "--cluster-name", &c.name, "--output", "json"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            env: vec![],
        }
    }
}

/// A whole kubeconfig document holding the cluster as its current context.
pub fn document(c: &ClusterAccess, exec: &ExecCommand) -> Value {
    let env: Vec<Value> = exec.env.iter().map(|(k, v)| json!({"name": k, "value": v})).collect();
    let mut exec_v = json!({"apiVersion": "client.authentication.k8s.io/v1beta1", "command": exec.command, "args": exec.args, "interactiveMode": "Never"});
    if !env.is_empty() {
        exec_v["env"] = json!(env);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": c.arn, "cluster": {"server": c.endpoint, "certificate-authority-data": c.certificate_authority_data}}],
        "contexts": [{"name": c.arn, "context": {"cluster": c.arn, "user": c.arn}}],
        "current-context": c.arn,
        "preferences": {},
        "users": [{"name": c.arn, "user": {"exec": exec_v}}],
    })
}

/// Merges the cluster's entries into an existing kubeconfig (replacing entries of the same name, keeping the
/// rest) and makes it the current context, as `update-kubeconfig` does.
pub fn merge(existing: &mut Value, c: &ClusterAccess, exec: &ExecCommand) {
    let ours = document(c, exec);
    if !existing.is_object() {
        *existing = json!({"apiVersion": "v1", "kind": "Config", "preferences": {}});
    }
    for list in ["clusters", "contexts", "users"] {
        let entry = ours[list][0].clone();
        let items = existing[list].as_array().cloned().unwrap_or_default();
        let mut items: Vec<Value> = items.into_iter().filter(|i| i["name"] != entry["name"]).collect();
        items.push(entry);
        existing[list] = json!(items);
    }
    existing["current-context"] = json!(c.arn);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> ClusterAccess {
        ClusterAccess {
            arn: "arn:aws:eks:eu-west-1:111122223333:cluster/prod".into(),
            name: "prod".into(),
            region: "eu-west-1".into(),
            endpoint: "https://ABC.gr7.eu-west-1.eks.amazonaws.com".into(),
            certificate_authority_data: "LS0tLS1CRUdJTg==".into(),
        }
    }

    #[test]
    fn document_has_the_update_kubeconfig_layout() {
        let d = document(&access(), &ExecCommand::aws_cli(&access()));
        assert_eq!(d["current-context"], "arn:aws:eks:eu-west-1:111122223333:cluster/prod");
        assert_eq!(d["clusters"][0]["cluster"]["certificate-authority-data"], "LS0tLS1CRUdJTg==");
        assert_eq!(
            d["users"][0]["user"]["exec"]["args"],
            json!(["--region", "eu-west-1", "eks", "get-token", "--cluster-name", "prod", "--output", "json"])
        );
    }

    #[test]
    fn merge_replaces_ours_and_keeps_the_rest() {
        let mut kc = json!({"apiVersion": "v1", "kind": "Config", "clusters": [{"name": "other", "cluster": {}}, {"name": "arn:aws:eks:eu-west-1:111122223333:cluster/prod", "cluster": {"server": "old"}}], "contexts": [], "users": [], "current-context": "other"});
        merge(&mut kc, &access(), &ExecCommand::aws_cli(&access()));
        let clusters = kc["clusters"].as_array().unwrap();
        assert_eq!(clusters.len(), 2);
        assert_eq!(clusters[1]["cluster"]["server"], "https://ABC.gr7.eu-west-1.eks.amazonaws.com");
        assert_eq!(kc["current-context"], "arn:aws:eks:eu-west-1:111122223333:cluster/prod");
    }
}
