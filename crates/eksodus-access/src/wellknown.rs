//! The permission sets of well-known controllers and add-ons (eksctl's `wellKnownPolicies` and
//! `withAddonPolicies`) as AWS managed policies and inline policy documents. Pure.
//!
//! The inline statements are data: `data/well-known-statements.json`, copied from eksctl's
//! `pkg/cfn/builder/statement.go` (Apache-2.0, the commit named in the file), so a role eksodus makes for
//! external-dns grants what eksctl's would. Which statements and managed policies make up each set follows
//! eksctl's `createWellKnownPolicies` (service accounts) and `createRole` (node roles).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use eksodus_core::spec::{EnvironmentSpec, FieldError, WellKnownPolicy};
use serde_json::Value;

use crate::policy::{managed, PolicyDocument, Statement, VERSION};

const DATA: &str = include_str!("../data/well-known-statements.json");

fn statements() -> &'static BTreeMap<String, Vec<Value>> {
    static S: OnceLock<BTreeMap<String, Vec<Value>>> = OnceLock::new();
    S.get_or_init(|| {
        let v: Value = serde_json::from_str(DATA).expect("the committed data file is JSON");
        serde_json::from_value(v["statements"].clone()).expect("statements are lists of objects")
    })
}

/// What one set stands for: managed policy names (under `arn:<partition>:iam::aws:policy/`) and inline
/// policies (name to eksctl's statement groups).
struct Parts {
    managed: &'static [&'static str],
    inline: &'static [(&'static str, &'static [&'static str])],
}

fn parts(w: WellKnownPolicy) -> Parts {
    use WellKnownPolicy::*;
    let (managed, inline): (&[&str], &[(&str, &[&str])]) = match w {
        ImageBuilder => (&["AmazonEC2ContainerRegistryPowerUser"], &[]),
        AutoScaler => (&[], &[("eksodus-autoscaler", &["autoScalerStatements"])]),
        AwsLoadBalancerController => {
            (&[], &[("eksodus-aws-load-balancer-controller", &["loadBalancerControllerStatements"])])
        }
        ExternalDns => (&[], &[("eksodus-external-dns", &["changeSetStatements", "externalDNSHostedZonesStatements"])]),
        CertManager => (
            &[],
            &[(
                "eksodus-cert-manager",
                &["changeSetStatements", "certManagerHostedZonesStatements", "certManagerGetChangeStatements"],
            )],
        ),
        EbsCsiController => (&["service-role/AmazonEBSCSIDriverPolicy"], &[]),
        EfsCsiController => (&[], &[("eksodus-efs-csi-controller", &["efsCSIControllerStatements"])]),
        Efs => (&[], &[("eksodus-efs", &["efsStatements", "efsEc2Statements"])]),
        Fsx => (&[], &[("eksodus-fsx", &["fsxStatements", "serviceLinkRoleStatements"])]),
        AppMesh => (&[], &[("eksodus-app-mesh", &["appMeshStatements"])]),
        AppMeshPreview => (&[], &[("eksodus-app-mesh-preview", &["appMeshStatements"])]),
        XRay => (&[], &[("eksodus-xray", &["xRayStatements"])]),
        CloudWatch => (&["CloudWatchAgentServerPolicy"], &[]),
    };
    Parts { managed, inline }
}

/// The policies a list of sets stands for in `partition`: managed policy ARNs (sorted, no duplicates) and
/// inline documents by policy name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resolved {
    /// AWS managed policy ARNs.
    pub managed: Vec<String>,
    /// Inline policies: name to document.
    pub inline: BTreeMap<String, PolicyDocument>,
}

/// Resolves `sets` for a role in `partition` (`aws`, `aws-cn`, `aws-us-gov`).
pub fn resolve(partition: &str, sets: &[WellKnownPolicy]) -> Resolved {
    let mut out = Resolved::default();
    for &w in sets {
        let p = parts(w);
        out.managed.extend(p.managed.iter().map(|m| managed(partition, m)));
        for (name, groups) in p.inline {
            let mut statement = Vec::new();
            for g in *groups {
                for st in statements().get(*g).into_iter().flatten() {
                    statement.push(instantiate(st, partition, w));
                }
            }
            out.inline.insert((*name).to_string(), PolicyDocument { version: VERSION.into(), statement });
        }
    }
    out.managed.sort();
    out.managed.dedup();
    out
}

/// IAM's limit on the inline policies of one role, all together, white space not counted.
pub const INLINE_LIMIT: usize = 10_240;

/// Every role whose well-known sets would exceed IAM's inline policy limit, named by the spec field that asks
/// for them (IAM would refuse the role half-way through an apply).
pub fn validate(spec: &EnvironmentSpec) -> Vec<FieldError> {
    validate_within(spec, INLINE_LIMIT)
}

fn validate_within(spec: &EnvironmentSpec, limit: usize) -> Vec<FieldError> {
    let partition = crate::policy::partition(&spec.region);
    let mut sets: Vec<(String, Vec<WellKnownPolicy>)> = Vec::new();
    let mut out = Vec::new();
    // a role's own document: readable as IAM's, and counted with the sets on the same role
    let mut own_size: BTreeMap<String, usize> = BTreeMap::new();
    let mut check = |at: String, sets_at: String, doc: &serde_json::Value| match serde_json::from_value::<
        crate::policy::PolicyDocument,
    >(doc.clone())
    {
        Err(e) => out.push(FieldError::new(at, format!("not an IAM policy document: {e}"))),
        Ok(d) if d.version != crate::policy::VERSION => out.push(FieldError::new(
            at,
            format!("Version `{}`: IAM's policy language is {}", d.version, crate::policy::VERSION),
        )),
        Ok(d) if d.statement.is_empty() => out.push(FieldError::new(at, "has no Statement")),
        Ok(d) => {
            own_size.insert(sets_at, serde_json::to_string(&d).expect("serializable").len());
        }
    };
    if let Some(a) = &spec.access {
        for (field, list) in
            [("access.service_accounts", &a.service_accounts), ("access.pod_identities", &a.pod_identities)]
        {
            for (i, sa) in list.iter().enumerate() {
                let Some(doc) = &sa.policy_document else { continue };
                check(format!("{field}[{i}].policy_document"), format!("{field}[{i}].well_known"), doc);
            }
        }
    }
    for (i, ad) in spec.cluster.iter().flat_map(|c| c.addons.iter().enumerate()) {
        let Some(doc) = &ad.policy_document else { continue };
        check(format!("cluster.addons[{i}].policy_document"), format!("cluster.addons[{i}].well_known"), doc);
    }
    // one role has one document of its own: an addon's and its service account's cannot both be it
    for (i, ad) in spec.cluster.iter().flat_map(|c| c.addons.iter().enumerate()) {
        let Some(sa_of) = ad.policy_document.as_ref().and_then(|_| eksodus_core::spec::addon_service_account(&ad.name))
        else {
            continue;
        };
        let also = spec
            .access
            .iter()
            .flat_map(|a| &a.service_accounts)
            .any(|sa| (sa.namespace.as_str(), sa.name.as_str()) == sa_of && sa.policy_document.is_some());
        if also {
            out.push(FieldError::new(
                format!("cluster.addons[{i}].policy_document"),
                format!(
                    "access.service_accounts gives {}/{} a policy_document too; the role holds one: merge them into either",
                    sa_of.0, sa_of.1
                ),
            ));
        }
    }
    if let Some(a) = &spec.access {
        for (field, list) in
            [("access.service_accounts", &a.service_accounts), ("access.pod_identities", &a.pod_identities)]
        {
            for (i, sa) in list.iter().enumerate() {
                let mut w = sa.well_known.clone();
                // an addon's sets land on the same role
                for ad in spec.cluster.iter().flat_map(|c| &c.addons) {
                    if eksodus_core::spec::addon_service_account(&ad.name) == Some((&sa.namespace, &sa.name)) {
                        w.extend(ad.well_known.iter().copied());
                    }
                }
                sets.push((format!("{field}[{i}].well_known"), w));
            }
        }
    }
    for (i, a) in spec.cluster.iter().flat_map(|c| c.addons.iter().enumerate()) {
        sets.push((format!("cluster.addons[{i}].well_known"), a.well_known.clone()));
    }
    for (i, n) in spec.cluster.iter().flat_map(|c| c.nodegroups.iter().enumerate()) {
        sets.push((format!("cluster.nodegroups[{i}].iam.well_known"), n.iam.well_known.clone()));
    }
    for (field, mut w) in sets {
        w.sort();
        w.dedup();
        let size: usize = resolve(partition, &w)
            .inline
            .values()
            .map(|d| serde_json::to_string(d).expect("serializable").len())
            .sum::<usize>()
            + own_size.get(&field).copied().unwrap_or(0);
        if size > limit {
            out.push(FieldError::new(
                field,
                format!(
                    "these sets (with the role's own policy_document) need {size} characters of inline policy on one role, over IAM's {limit}: split them across service accounts (IRSA) or nodegroups"
                ),
            ));
        }
    }
    out
}

/// One statement of the data with its placeholders filled in.
fn instantiate(st: &Value, partition: &str, w: WellKnownPolicy) -> Statement {
    let append = if w == WellKnownPolicy::AppMeshPreview { "appmesh-preview:*" } else { "appmesh:*" };
    let text = st.to_string().replace("${Partition}", partition).replace("${AppendAction}", append);
    serde_json::from_str(&text).expect("the committed statements are IAM statements")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_set_resolves_to_something_and_every_statement_group_is_used() {
        let mut used = std::collections::BTreeSet::new();
        for &w in WellKnownPolicy::ALL {
            let r = resolve("aws", &[w]);
            assert!(!r.managed.is_empty() || !r.inline.is_empty(), "{w:?}");
            for doc in r.inline.values() {
                assert!(!doc.statement.is_empty(), "{w:?}");
                // no placeholder survives, and the canonical form is what IAM would compare
                let text = serde_json::to_string(doc).unwrap();
                assert!(!text.contains("${"), "{text}");
                assert_eq!(PolicyDocument::canonical_from_iam(&text), Some(doc.canonical()));
            }
            for (_, groups) in parts(w).inline {
                used.extend(groups.iter().copied());
            }
        }
        let all: std::collections::BTreeSet<&str> = statements().keys().map(String::as_str).collect();
        assert_eq!(used, all, "a statement group in the data that no set uses");
    }

    #[test]
    fn external_dns_matches_eksctl_and_follows_the_partition() {
        let r = resolve("aws-cn", &[WellKnownPolicy::ExternalDns]);
        assert!(r.managed.is_empty());
        let doc = serde_json::to_value(&r.inline["eksodus-external-dns"]).unwrap();
        assert_eq!(doc["Statement"][0]["Resource"], "arn:aws-cn:route53:::hostedzone/*");
        assert_eq!(doc["Statement"][0]["Action"], serde_json::json!(["route53:ChangeResourceRecordSets"]));
        assert_eq!(
            doc["Statement"][1]["Action"],
            serde_json::json!([
                "route53:ListHostedZones",
                "route53:ListResourceRecordSets",
                "route53:ListTagsForResource"
            ])
        );
    }

    #[test]
    fn managed_sets_and_app_mesh_variants() {
        let r = resolve("aws", &[WellKnownPolicy::EbsCsiController, WellKnownPolicy::ImageBuilder]);
        assert_eq!(
            r.managed,
            vec![
                "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPowerUser".to_string(),
                "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy".to_string(),
            ]
        );
        let r = resolve("aws", &[WellKnownPolicy::AppMesh, WellKnownPolicy::AppMeshPreview]);
        let mesh = serde_json::to_string(&r.inline["eksodus-app-mesh"]).unwrap();
        let preview = serde_json::to_string(&r.inline["eksodus-app-mesh-preview"]).unwrap();
        assert!(mesh.contains("\"appmesh:*\"") && !mesh.contains("appmesh-preview"));
        assert!(preview.contains("\"appmesh-preview:*\""));
    }

    #[test]
    fn a_role_over_the_inline_limit_is_refused_by_its_field() {
        let yaml = |sets: &str| {
            format!(
                "name: a\nregion: eu-west-1\nnetwork: {{cidr: 10.0.0.0/16, azs: 2}}\ncluster:\n  version: '1.31'\n  nodegroups:\n    - {{name: ng, instance_types: [m5.large], iam: {{well_known: [{sets}]}}}}\n"
            )
        };
        let small: EnvironmentSpec = serde_saphyr::from_str(&yaml("external-dns, cert-manager")).unwrap();
        assert!(validate_within(&small, 1_000).is_empty());
        // every set eksctl knows fits on one role today...
        let all = WellKnownPolicy::ALL.iter().map(|w| w.name()).collect::<Vec<_>>().join(", ");
        let all: EnvironmentSpec = serde_saphyr::from_str(&yaml(&all)).unwrap();
        assert!(validate(&all).is_empty());
        // ...and a role over the limit is named by the field that asks for it
        let e = validate_within(&all, 5_000);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].path, "cluster.nodegroups[0].iam.well_known");
        assert!(e[0].message.contains("over IAM's 5000"), "{}", e[0].message);
    }

    #[test]
    fn an_addons_own_document_is_checked_and_is_the_only_one_on_its_role() {
        let doc =
            r#"{Version: "2012-10-17", Statement: [{Effect: Allow, Action: ["kms:CreateGrant"], Resource: "*"}]}"#;
        let yaml = |addon_doc: &str, sa_doc: &str| {
            format!(
                "name: a\nregion: eu-west-1\nnetwork: {{cidr: 10.0.0.0/16, azs: 2}}\naccess:\n  service_accounts:\n    - {{namespace: kube-system, name: ebs-csi-controller-sa, policies: [arn:aws:iam::aws:policy/ReadOnlyAccess]{sa_doc}}}\ncluster:\n  version: '1.31'\n  addons:\n    - {{name: aws-ebs-csi-driver, policy_document: {addon_doc}}}\n"
            )
        };
        let one: EnvironmentSpec = serde_saphyr::from_str(&yaml(doc, "")).unwrap();
        assert!(validate(&one).is_empty(), "{:?}", validate(&one));
        let two: EnvironmentSpec = serde_saphyr::from_str(&yaml(doc, &format!(", policy_document: {doc}"))).unwrap();
        let e = validate(&two);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].path, "cluster.addons[0].policy_document");
        assert!(e[0].message.contains("kube-system/ebs-csi-controller-sa"), "{}", e[0].message);
        let bad: EnvironmentSpec =
            serde_saphyr::from_str(&yaml(r#"{Version: "2008-10-17", Statement: []}"#, "")).unwrap();
        let e = validate(&bad);
        assert_eq!(e.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(), ["cluster.addons[0].policy_document"]);
    }

    #[test]
    fn a_roles_own_document_is_read_as_iams_and_counted_with_its_sets() {
        let yaml = |doc: &str| {
            format!(
                "name: a\nregion: eu-west-1\nnetwork: {{cidr: 10.0.0.0/16, azs: 2}}\naccess:\n  service_accounts:\n    - {{namespace: kube-system, name: ops, well_known: [external-dns], policy_document: {doc}}}\n"
            )
        };
        let ok = r#"{Version: "2012-10-17", Statement: [{Effect: Allow, Action: ["autoscaling:DescribeTags"], Resource: "*"}]}"#;
        let ok: EnvironmentSpec = serde_saphyr::from_str(&yaml(ok)).unwrap();
        assert!(validate(&ok).is_empty(), "{:?}", validate(&ok));
        // its size counts with the role's sets: a limit the sets alone meet is not enough for both
        let sets: usize = resolve("aws", &[WellKnownPolicy::ExternalDns])
            .inline
            .values()
            .map(|d| serde_json::to_string(d).unwrap().len())
            .sum();
        let over = validate_within(&ok, sets);
        assert_eq!(over.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(), ["access.service_accounts[0].well_known"]);
        assert!(validate_within(&ok, sets + 200).is_empty());
        for (doc, says) in [
            (r#"{Version: "2008-10-17", Statement: [{Effect: Allow, Action: "s3:*", Resource: "*"}]}"#, "Version"),
            (r#"{Version: "2012-10-17", Statement: []}"#, "no Statement"),
            (r#"{Version: "2012-10-17", Statement: [{Effect: Maybe, Action: "s3:*"}]}"#, "not an IAM policy document"),
        ] {
            let s: EnvironmentSpec = serde_saphyr::from_str(&yaml(doc)).unwrap();
            let e = validate(&s);
            assert_eq!(e.len(), 1, "{doc}: {e:?}");
            assert_eq!(e[0].path, "access.service_accounts[0].policy_document");
            assert!(e[0].message.contains(says), "{doc}: {}", e[0].message);
        }
    }

    #[test]
    fn the_load_balancer_controller_document_fits_iams_inline_limit() {
        // IAM allows 10,240 characters of inline policy per role (white space not counted)
        let r = resolve("aws", WellKnownPolicy::ALL);
        let total: usize = r.inline.values().map(|d| serde_json::to_string(d).unwrap().len()).sum();
        let lb = serde_json::to_string(&r.inline["eksodus-aws-load-balancer-controller"]).unwrap().len();
        assert!(lb < 10_240, "{lb}");
        assert!(total > lb);
    }
}
