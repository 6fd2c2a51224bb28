//! The IAM policy eksodus itself needs: built from the action lists each reconciler declares
//! (`eksodus_net::ec2::ACTIONS`, `eksodus_access::iam::ACTIONS`, ...), which tests keep complete by comparing
//! them with the calls the emulator saw.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// A least-privilege identity policy allowing exactly `actions`, one statement per service.
pub fn policy_document<'a>(actions: impl IntoIterator<Item = &'a str>) -> Value {
    let mut by_service: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for a in actions {
        let service = a.split(':').next().unwrap_or(a);
        let v = by_service.entry(service).or_default();
        if !v.contains(&a) {
            v.push(a);
        }
    }
    let statements: Vec<Value> = by_service
        .into_iter()
        .map(|(service, mut actions)| {
            actions.sort_unstable();
            json!({"Sid": format!("Eksodus{}", service.to_ascii_uppercase()), "Effect": "Allow", "Action": actions, "Resource": "*"})
        })
        .collect();
    json!({"Version": "2012-10-17", "Statement": statements})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_by_service_sorted_and_deduplicated() {
        let p = policy_document(["iam:GetRole", "ec2:DescribeVpcs", "ec2:CreateVpc", "ec2:CreateVpc"]);
        assert_eq!(p["Statement"][0]["Action"], json!(["ec2:CreateVpc", "ec2:DescribeVpcs"]));
        assert_eq!(p["Statement"][1]["Sid"], "EksodusIAM");
    }
}
