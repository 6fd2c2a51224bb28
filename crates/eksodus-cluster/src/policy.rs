//! The IAM policy a principal needs to run eksodus on one environment: every action any reconciler sends
//! (network, IAM, KMS, EKS, access entries, the load-balancer sweep, STS), with `iam:PassRole` limited to the
//! environment's own roles and only to EKS and EC2, and KMS actions only when the spec asks for them.
//!
//! Built from each module's `ACTIONS` list, which a test holds to the calls the emulator's proxy saw during
//! `up`, `upgrade` and `down` (`tests/tests/e2e/policy.rs`).

use std::collections::BTreeSet;

use eksodus_core::spec::EnvironmentSpec;
use serde_json::{json, Value};

/// Every action eksodus may send for `spec`, sorted, without duplicates (`service:Operation`).
pub fn actions(spec: &EnvironmentSpec) -> BTreeSet<&'static str> {
    let mut all: BTreeSet<&'static str> = BTreeSet::new();
    all.extend(eksodus_net::ec2::ACTIONS);
    all.extend(eksodus_access::iam::ACTIONS);
    all.extend(eksodus_access::entries::ACTIONS);
    all.extend(crate::eks::ACTIONS);
    all.extend(crate::sweep::Sweeper::ACTIONS);
    all.extend(crate::environment::ACTIONS);
    // every plan looks for the key an earlier spec may have had eksodus make; changing keys only when it makes one
    all.extend(crate::kms::READ_ACTIONS);
    if creates_key(spec) {
        all.extend(crate::kms::ACTIONS);
    }
    // down looks for (and deletes) the log group an earlier spec may have had eksodus make; the rest only
    // when this spec sets the logs' retention
    all.extend(crate::logs::READ_ACTIONS);
    all.insert("logs:DeleteLogGroup");
    if crate::logs::wanted(spec).is_some() {
        all.extend(crate::logs::ACTIONS);
    }
    // PassRole gets a statement of its own, scoped below
    all.remove("iam:PassRole");
    all
}

/// Whether `up` creates the cluster's secrets key (the spec asks for encryption and names no key).
fn creates_key(spec: &EnvironmentSpec) -> bool {
    spec.cluster.as_ref().and_then(|c| c.encryption.as_ref()).is_some_and(|e| e.key_arn.is_none())
}

/// The policy document (IAM JSON) for `spec`: unscoped statements per service for actions that do not
/// support resource-level permissions on create, `iam:PassRole` only for roles named after the environment and
/// only to EKS and EC2, the EKS service-linked roles, and a user's own KMS key by ARN.
pub fn document(spec: &EnvironmentSpec) -> Value {
    let actions = actions(spec);
    let mut statements = Vec::new();
    let mut by_service: std::collections::BTreeMap<&str, Vec<&str>> = std::collections::BTreeMap::new();
    for a in &actions {
        let service = a.split(':').next().unwrap_or_default();
        by_service.entry(service).or_default().push(a);
    }
    for (service, list) in &by_service {
        let sid: String = format!("Eksodus{}", service_sid(service));
        statements.push(json!({"Sid": sid, "Effect": "Allow", "Action": list, "Resource": "*"}));
    }
    // a Fargate profile hands its pod execution role to the Fargate pods' principal, and EKS makes the
    // Fargate service-linked role with the first profile
    let fargate = spec.cluster.iter().flat_map(|c| &c.fargate_profiles);
    let has_fargate = fargate.clone().next().is_some();
    let mut passed_to = vec!["eks.amazonaws.com", "ec2.amazonaws.com"];
    let mut linked = vec!["eks.amazonaws.com", "eks-nodegroup.amazonaws.com"];
    if has_fargate {
        passed_to.push("eks-fargate-pods.amazonaws.com");
        linked.push("eks-fargate.amazonaws.com");
    }
    // a capability hands its role to the EKS capabilities service
    let capabilities = spec.cluster.iter().flat_map(|c| &c.capabilities);
    if capabilities.clone().next().is_some() {
        passed_to.push(eksodus_access::policy::CAPABILITY_SERVICE);
    }
    // the roles the environment makes are named `<env>-<purpose>` (or its hashed form, same prefix)
    statements.push(json!({
        "Sid": "EksodusPassOwnRoles",
        "Effect": "Allow",
        "Action": "iam:PassRole",
        "Resource": format!("arn:aws:iam::*:role/{}-*", spec.name),
        "Condition": {"StringEquals": {"iam:PassedToService": passed_to}}
    }));
    // nodegroups, Fargate profiles and capabilities on roles of the user's own: EKS must be handed them too
    let mut own: Vec<&String> =
        spec.cluster.iter().flat_map(|c| &c.nodegroups).filter_map(|n| n.iam.role_arn.as_ref()).collect();
    own.extend(fargate.filter_map(|p| p.pod_execution_role_arn.as_ref()));
    own.extend(capabilities.filter_map(|c| c.role_arn.as_ref()));
    own.sort();
    own.dedup();
    if !own.is_empty() {
        statements.push(json!({
            "Sid": "EksodusPassNodegroupRoles",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": own,
            "Condition": {"StringEquals": {"iam:PassedToService": passed_to}}
        }));
    }
    statements.push(json!({
        "Sid": "EksodusServiceLinkedRoles",
        "Effect": "Allow",
        "Action": "iam:CreateServiceLinkedRole",
        "Resource": "*",
        "Condition": {"StringEquals": {"iam:AWSServiceName": linked}}
    }));
    if let Some(arn) = spec.cluster.as_ref().and_then(|c| c.encryption.as_ref()).and_then(|e| e.key_arn.as_ref()) {
        // EKS checks that the caller may use the key it is given for envelope encryption
        statements.push(json!({
            "Sid": "EksodusUseSecretsKey",
            "Effect": "Allow",
            "Action": ["kms:DescribeKey", "kms:CreateGrant"],
            "Resource": arn,
        }));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

fn service_sid(service: &str) -> String {
    match service {
        "ec2" => "Network".into(),
        "iam" => "Iam".into(),
        "eks" => "Eks".into(),
        "kms" => "Kms".into(),
        "logs" => "Logs".into(),
        "sts" => "Sts".into(),
        "elasticloadbalancing" => "LoadBalancerSweep".into(),
        other => other.chars().filter(|c| c.is_ascii_alphanumeric()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> EnvironmentSpec {
        serde_saphyr::from_str(yaml).expect("spec")
    }

    const BASE: &str = "name: team-a\nregion: us-east-1\nnetwork:\n  cidr: 10.0.0.0/16\n  azs: 3\n";

    #[test]
    fn every_module_is_in_the_policy_and_pass_role_is_scoped() {
        let s = spec(&format!(
            "{BASE}cluster:\n  version: \"1.33\"\n  nodegroups:\n  - name: ng\n    instance_types: [m5.large]\n"
        ));
        let a = actions(&s);
        for needed in [
            "ec2:CreateVpc",
            "iam:CreateRole",
            "eks:CreateCluster",
            "eks:CreateNodegroup",
            "eks:UpdateClusterVersion",
            "eks:CreateAddon",
            "eks:CreateAccessEntry",
            "elasticloadbalancing:DeleteLoadBalancer",
            "sts:GetCallerIdentity",
        ] {
            assert!(a.contains(needed), "{needed} missing");
        }
        assert!(
            !a.iter().any(|x| x.starts_with("kms:") && !crate::kms::READ_ACTIONS.contains(x)),
            "no key asked for, no KMS writes"
        );
        let doc = document(&s);
        let text = doc.to_string();
        assert!(text.contains("arn:aws:iam::*:role/team-a-*"));
        let pass: Vec<&Value> =
            doc["Statement"].as_array().unwrap().iter().filter(|st| st["Action"] == "iam:PassRole").collect();
        assert_eq!(pass.len(), 1);
        let mut own = s.clone();
        own.cluster.as_mut().unwrap().nodegroups[0].iam.role_arn =
            Some("arn:aws:iam::111122223333:role/gpu-nodes".into());
        assert!(document(&own).to_string().contains("role/gpu-nodes"), "a user's node role can be passed");
        assert!(pass[0]["Condition"]["StringEquals"]["iam:PassedToService"].is_array());
        // no statement grants PassRole on everything
        for st in doc["Statement"].as_array().unwrap() {
            if st["Resource"] == "*" {
                assert!(!st["Action"].to_string().contains("iam:PassRole"), "{st}");
            }
        }
    }

    #[test]
    fn fargate_profiles_may_hand_their_roles_to_the_fargate_pods() {
        let s = spec(&format!(
            "{BASE}cluster:\n  version: \"1.33\"\n  fargate_profiles:\n  - name: fp\n    selectors: [{{namespace: default}}]\n  - name: theirs\n    selectors: [{{namespace: batch}}]\n    pod_execution_role_arn: arn:aws:iam::111122223333:role/batch-pods\n"
        ));
        let a = actions(&s);
        for needed in ["eks:CreateFargateProfile", "eks:DeleteFargateProfile", "eks:DescribeFargateProfile"] {
            assert!(a.contains(needed), "{needed} missing");
        }
        let doc = document(&s);
        let pass: Vec<&Value> =
            doc["Statement"].as_array().unwrap().iter().filter(|st| st["Action"] == "iam:PassRole").collect();
        assert_eq!(pass.len(), 2, "eksodus's roles and the user's pod execution role");
        for st in &pass {
            let to = st["Condition"]["StringEquals"]["iam:PassedToService"].to_string();
            assert!(to.contains("eks-fargate-pods.amazonaws.com"), "{to}");
        }
        assert_eq!(pass[1]["Resource"], json!(["arn:aws:iam::111122223333:role/batch-pods"]));
        assert!(doc.to_string().contains("eks-fargate.amazonaws.com"), "the Fargate service-linked role");
        // without profiles, nothing is handed to Fargate
        let plain = spec(&format!("{BASE}cluster:\n  version: \"1.33\"\n"));
        assert!(!document(&plain).to_string().contains("fargate"));
    }

    #[test]
    fn capabilities_may_hand_their_roles_to_the_capabilities_service() {
        let s = spec(&format!(
            "{BASE}cluster:\n  version: \"1.33\"\n  capabilities:\n  - {{name: ack, type: ACK}}\n  - name: kro\n    type: KRO\n    role_arn: arn:aws:iam::111122223333:role/kro\n"
        ));
        let a = actions(&s);
        for needed in
            ["eks:CreateCapability", "eks:UpdateCapability", "eks:DeleteCapability", "eks:AssociateAccessPolicy"]
        {
            assert!(a.contains(needed), "{needed} missing");
        }
        let doc = document(&s);
        let pass: Vec<&Value> =
            doc["Statement"].as_array().unwrap().iter().filter(|st| st["Action"] == "iam:PassRole").collect();
        assert_eq!(pass.len(), 2, "eksodus's roles and the user's capability role");
        for st in &pass {
            let to = st["Condition"]["StringEquals"]["iam:PassedToService"].to_string();
            assert!(to.contains("capabilities.eks.amazonaws.com"), "{to}");
        }
        assert_eq!(pass[1]["Resource"], json!(["arn:aws:iam::111122223333:role/kro"]));
        let plain = spec(&format!("{BASE}cluster:\n  version: \"1.33\"\n"));
        assert!(!document(&plain).to_string().contains("capabilities.eks"));
    }

    #[test]
    fn kms_follows_the_spec() {
        let created = spec(&format!("{BASE}cluster:\n  version: \"1.33\"\n  encryption: {{}}\n"));
        assert!(actions(&created).contains("kms:CreateKey"));
        let given = spec(&format!(
            "{BASE}cluster:\n  version: \"1.33\"\n  encryption:\n    key_arn: arn:aws:kms:us-east-1:111122223333:key/abc\n"
        ));
        assert!(!actions(&given).contains("kms:CreateKey"));
        let doc = document(&given).to_string();
        assert!(doc.contains("kms:CreateGrant") && doc.contains("key/abc"), "{doc}");
    }
}
