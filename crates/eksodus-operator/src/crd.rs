//! The custom resources: their Rust types are the source of the CRDs (`#[derive(CustomResource, JsonSchema)]`),
//! and the pure functions that read them (the effective environment spec, with every field error named by its
//! path under `spec.environment`).

use std::collections::BTreeMap;

use eksodus::core::spec::{EnvironmentSpec, FieldError};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The API group of eksodus's resources.
pub const GROUP: &str = "eksodus.io";

/// What the operator does when it finds the environment differs from its spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum Mode {
    /// Plan and apply until the environment matches its spec (the default).
    #[default]
    Apply,
    /// Plan only: report the difference as the `Drifted` condition and change nothing.
    Observe,
}

/// What deleting the resource does to what it made in AWS (as ACK's and Crossplane's deletion policies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Run `down`: every resource the environment owns is removed, and the resource stays until they are gone.
    #[default]
    Delete,
    /// Leave AWS as it is and let the resource go.
    Orphan,
}

/// Where the AWS credentials of one environment come from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    /// A Secret in the resource's namespace with `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and optionally
    /// `AWS_SESSION_TOKEN`. Without it the operator's own identity is used (IRSA or EKS Pod Identity of its
    /// service account, or the standard chain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
}

/// An environment (VPC, IAM, EKS cluster, nodegroups, addons, access) kept converged to its spec.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "eksodus.io",
    version = "v1alpha1",
    kind = "Environment",
    namespaced,
    status = "EnvironmentStatus",
    shortname = "eksenv",
    category = "eksodus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".spec.mode"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentResourceSpec {
    /// The environment, as in an eksodus spec file (`name` defaults to the resource's name). Validated by the
    /// operator, which names every problem in `status.fieldErrors`.
    #[schemars(schema_with = "preserve_object")]
    pub environment: Value,
    /// `Apply` (default) or `Observe`.
    #[serde(default)]
    pub mode: Mode,
    /// While true, nothing is planned or applied (deletion still runs its policy).
    #[serde(default)]
    pub paused: bool,
    /// Seconds between drift checks (re-plans) of a converged environment; default 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_interval_seconds: Option<u64>,
    /// `Delete` (default) or `Orphan`.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// AWS credentials for this environment.
    #[serde(default)]
    pub credentials: Credentials,
}

fn preserve_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

/// One condition, as Kubernetes API conventions define them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `Progressing`, `Drifted` or `Degraded`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase word for why.
    pub reason: String,
    /// Words for people.
    pub message: String,
    /// When `status` last changed (RFC 3339).
    pub last_transition_time: String,
    /// The generation of the spec this condition was set for.
    pub observed_generation: i64,
}

/// Counts of the last plan, by action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanSummary {
    /// Resources to create.
    pub create: u32,
    /// Resources to change in place.
    pub update: u32,
    /// Resources to replace.
    pub replace: u32,
    /// Resources to delete.
    pub delete: u32,
    /// Resources that wait for a later round.
    pub deferred: u32,
}

/// What the last reconcile did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastReconcile {
    /// When it ended (RFC 3339).
    pub time: String,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// AWS API calls it made (attempts included).
    pub aws_calls: u64,
    /// Those calls by operation (`ec2:DescribeVpcs` -> count).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aws_calls_by_operation: BTreeMap<String, u64>,
}

/// A spec problem, by field path (`spec.environment.network.cidr`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SpecError {
    /// The field.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// What the operator observed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentStatus {
    /// The generation of the spec last reconciled.
    #[serde(default)]
    pub observed_generation: i64,
    /// `Ready`, `Progressing`, `Drifted`, `Degraded`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The last plan's counts (all zero when converged).
    #[serde(default)]
    pub last_plan: PlanSummary,
    /// The steps of the last non-empty plan, as `+ vpc (vpc)` lines (at most 50).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plan_steps: Vec<String>,
    /// The EKS cluster's API endpoint, once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_endpoint: Option<String>,
    /// The AWS account the environment is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Spec problems (the environment is `Degraded` and no AWS call is made while there are any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub field_errors: Vec<SpecError>,
    /// What `down` could not remove or did not check (deletion waits while owned resources remain).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leftovers: Vec<String>,
    /// The last reconcile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reconcile: Option<LastReconcile>,
}

impl Environment {
    /// The environment spec this resource asks for: `spec.environment` with `name` defaulting to the resource's
    /// name, parsed and validated offline (structure, network layout, CNI capacity). Every problem is named by
    /// its path from the resource's root.
    pub fn environment_spec(&self) -> Result<EnvironmentSpec, Vec<SpecError>> {
        environment_spec(&self.spec.environment, self.metadata.name.as_deref().unwrap_or_default())
    }
}

/// The spec in `environment` (named `default_name` unless it names itself), or every problem with its path.
pub fn environment_spec(environment: &Value, default_name: &str) -> Result<EnvironmentSpec, Vec<SpecError>> {
    const ROOT: &str = "spec.environment";
    let at = |path: &str| if path.is_empty() { ROOT.to_string() } else { format!("{ROOT}.{path}") };
    let Some(obj) = environment.as_object() else {
        return Err(vec![SpecError { field: ROOT.into(), message: "must be an object (an eksodus spec)".into() }]);
    };
    let mut obj = obj.clone();
    obj.entry("name").or_insert_with(|| Value::String(default_name.to_string()));
    let text = serde_json::to_string(&Value::Object(obj)).unwrap_or_default();
    match eksodus::spec::parse(&text, "") {
        Ok(f) => {
            let problems = eksodus::spec::problems(&f.spec);
            if problems.is_empty() {
                Ok(f.spec)
            } else {
                Err(problems
                    .iter()
                    .map(|p: &FieldError| SpecError { field: at(&p.path), message: p.message.clone() })
                    .collect())
            }
        }
        Err(eksodus::Error::Spec(eksodus::core::Error::Parse { path, message })) => {
            Err(vec![SpecError { field: at(path.trim_start_matches(": ")), message }])
        }
        Err(eksodus::Error::Unsupported { fields, .. }) => {
            Err(fields.into_iter().map(|u| SpecError { field: at(&u.path), message: u.reason }).collect())
        }
        Err(e) => Err(vec![SpecError { field: ROOT.into(), message: e.to_string() }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;
    use serde_json::json;

    #[test]
    fn the_crd_is_structural_and_keeps_the_environment_whole() {
        let crd = serde_json::to_value(Environment::crd()).unwrap();
        assert_eq!(crd["metadata"]["name"], "environments.eksodus.io");
        let v = &crd["spec"]["versions"][0];
        assert_eq!(v["name"], "v1alpha1");
        assert!(v["subresources"]["status"].is_object());
        let props = &v["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
        assert_eq!(props["environment"]["x-kubernetes-preserve-unknown-fields"], true);
        assert_eq!(props["mode"]["enum"], json!(["Apply", "Observe"]));
        assert_eq!(crd["spec"]["names"]["shortNames"], json!(["eksenv"]));
    }

    #[test]
    fn the_name_defaults_to_the_resources() {
        let s =
            environment_spec(&json!({"region": "us-east-1", "network": {"cidr": "10.0.0.0/16", "azs": 2}}), "team-a")
                .unwrap();
        assert_eq!(s.name, "team-a");
        let s = environment_spec(
            &json!({"name": "shop", "region": "us-east-1", "network": {"cidr": "10.0.0.0/16", "azs": 2}}),
            "team-a",
        )
        .unwrap();
        assert_eq!(s.name, "shop");
    }

    #[test]
    fn every_problem_is_named_from_the_resources_root() {
        let errs = environment_spec(
            &json!({"name": "Bad_Name", "region": "nowhere", "network": {"cidr": "10.0.0.0/16", "azs": 2}}),
            "x",
        )
        .unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"spec.environment.name"), "{errs:?}");
        assert!(fields.contains(&"spec.environment.region"), "{errs:?}");
        let errs =
            environment_spec(&json!({"region": "us-east-1", "network": {"cidr": "ten", "azs": 2}}), "x").unwrap_err();
        assert_eq!(errs.len(), 1);
        assert!(errs[0].field.starts_with("spec.environment.network"), "{errs:?}");
        let errs = environment_spec(&json!("name: x"), "x").unwrap_err();
        assert_eq!(errs[0].field, "spec.environment");
    }
}
