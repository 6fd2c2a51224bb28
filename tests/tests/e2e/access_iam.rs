//! IAM roles, the OIDC provider and IRSA roles: apply, empty re-plan, change, destroy, on the emulator.

use eksodus_access::iam::{Iam, ACTIONS};
use eksodus_core::aws::AwsTarget;
use eksodus_core::aws::Calls;
use eksodus_core::engine::{ApplyOptions, Engine};
use eksodus_core::events::EventSink;
use eksodus_e2e::spec;
use eksodus_testkit::{FaultConfig, LocalAws};

const ISSUER: &str = "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
const SPEC: &str = "
name: iam-e2e
region: us-east-1
tags: {team: platform}
network: {cidr: 10.0.0.0/16, azs: 2}
access:
  iam: {path: /platform/, cni_irsa: true}
  service_accounts:
    - namespace: kube-system
      name: ebs-csi-controller-sa
      policies: [arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy]
      well_known: [external-dns]
";

async fn setup(faults: FaultConfig) -> (LocalAws, Iam) {
    setup_for(SPEC, faults).await
}

async fn setup_for(text: &str, faults: FaultConfig) -> (LocalAws, Iam) {
    let aws = LocalAws::start(faults).await.unwrap();
    let conf = AwsTarget::local("us-east-1", &aws.endpoint()).load().await;
    let iam = Iam::new(aws_sdk_iam::Client::new(&conf), &spec(text))
        .with_retry(ApplyOptions::fast())
        .with_calls(Calls::new("iam", &conf));
    (aws, iam)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_oidc_apply_replan_destroy() {
    let (aws, iam) = setup(FaultConfig::default()).await;
    let mut s = spec(SPEC);
    let acct = aws.account_id.clone();
    let plan = iam.plan(&s, Some(ISSUER), &acct).await.unwrap();
    let ids: Vec<&str> = plan.changes().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "role/cluster",
            "role/node",
            "oidc",
            "role/irsa/kube-system/ebs-csi-controller-sa",
            "role/irsa/kube-system/aws-node"
        ]
    );
    let engine = Engine::new(ApplyOptions::fast());
    engine.apply(&plan, &iam, &EventSink::discard()).await.unwrap().into_result().unwrap();
    let again = iam.plan(&s, Some(ISSUER), &acct).await.unwrap();
    assert!(again.is_empty(), "{:#?}", again.changes().collect::<Vec<_>>());

    // the node role lacks the CNI policy (aws-node has its own role); the IRSA trust is scoped to its account
    let node = iam.discover(&s).await.unwrap().into_iter().find(|o| o.key == "role/node").unwrap();
    assert!(!node.props["policies"].to_string().contains("AmazonEKS_CNI_Policy"));
    assert_eq!(node.props["path"], "/platform/iam-e2e/");

    // a policy change is an in-place update
    s.access.as_mut().unwrap().service_accounts[0]
        .policies
        .push("arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess".into());
    let p = iam.plan(&s, Some(ISSUER), &acct).await.unwrap();
    assert_eq!(
        p.changes().map(|c| (c.id.as_str(), c.action)).collect::<Vec<_>>(),
        [("role/irsa/kube-system/ebs-csi-controller-sa", eksodus_core::plan::Action::Update)]
    );
    engine.apply(&p, &iam, &EventSink::discard()).await.unwrap().into_result().unwrap();
    assert!(iam.plan(&s, Some(ISSUER), &acct).await.unwrap().is_empty());

    // every call made is in the declared action list
    for op in aws.proxy.stats().by_operation().keys() {
        assert!(ACTIONS.contains(&op.as_str()), "{op} is called but missing from iam::ACTIONS");
    }

    let d = iam.destroy_plan(&s).await.unwrap();
    assert_eq!(d.summary().delete, 5);
    engine.apply(&d, &iam, &EventSink::discard()).await.unwrap().into_result().unwrap();
    assert!(iam.discover(&s).await.unwrap().is_empty());
    let ec2_free = aws.proxy.stats().by_operation().keys().all(|k| k.starts_with("iam:"));
    assert!(ec2_free);
}

/// A permissions boundary (eksctl's serviceRolePermissionsBoundary and its kin) is on every role eksodus
/// makes, as IAM reports it; another one, or none, is put or taken off in place, and each state re-plans as
/// empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permissions_boundary_bounds_every_role_and_changes_in_place() {
    let (aws, iam) = setup(FaultConfig::default()).await;
    let conf = AwsTarget::local("us-east-1", &aws.endpoint()).load().await;
    let client = aws_sdk_iam::Client::new(&conf);
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    let mut boundaries = Vec::new();
    for name in ["platform-boundary", "platform-boundary-v2"] {
        let p = client.create_policy().policy_name(name).policy_document(doc).send().await.unwrap();
        boundaries.push(p.policy().unwrap().arn().unwrap().to_string());
    }
    let acct = aws.account_id.clone();
    let engine = Engine::new(ApplyOptions::fast());
    let roles_bounded_by = |want: Option<String>| {
        let client = client.clone();
        async move {
            let roles = client.list_roles().path_prefix("/platform/iam-e2e/").send().await.unwrap();
            assert_eq!(roles.roles().len(), 4, "{:?}", roles.roles());
            for r in roles.roles() {
                let got = client.get_role().role_name(r.role_name()).send().await.unwrap();
                let b = got.role().unwrap().permissions_boundary().and_then(|b| b.permissions_boundary_arn());
                assert_eq!(b, want.as_deref(), "{}", r.role_name());
            }
        }
    };
    let mut s = spec(SPEC);
    for want in [Some(boundaries[0].clone()), Some(boundaries[1].clone()), None] {
        s.access.as_mut().unwrap().iam.permissions_boundary = want.clone();
        assert_eq!(s.validate(), vec![]);
        let p = iam.plan(&s, Some(ISSUER), &acct).await.unwrap();
        engine.apply(&p, &iam, &EventSink::discard()).await.unwrap().into_result().unwrap();
        roles_bounded_by(want.clone()).await;
        let again = iam.plan(&s, Some(ISSUER), &acct).await.unwrap();
        assert!(again.is_empty(), "{want:?}: {:#?}", again.changes().collect::<Vec<_>>());
    }
    for op in aws.proxy.stats().by_operation().keys().filter(|op| op.starts_with("iam:")) {
        let ours = !matches!(op.as_str(), "iam:CreatePolicy" | "iam:ListRoles");
        assert!(!ours || ACTIONS.contains(&op.as_str()), "{op} is called but missing from iam::ACTIONS");
    }
    let d = iam.destroy_plan(&s).await.unwrap();
    engine.apply(&d, &iam, &EventSink::discard()).await.unwrap().into_result().unwrap();
    assert!(iam.discover(&s).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converges_after_a_crash_at_every_write_and_under_throttling() {
    let s = spec(SPEC);
    let mut k = 1;
    loop {
        let (aws, iam) = setup(FaultConfig { crash_after_mutations: Some(k), ..Default::default() }).await;
        let acct = aws.account_id.clone();
        let engine = Engine::new(ApplyOptions::fast());
        let crashed =
            engine.apply(&iam.plan(&s, Some(ISSUER), &acct).await.unwrap(), &iam, &EventSink::discard()).await.unwrap();
        aws.proxy.heal();
        let plan = iam.plan(&s, Some(ISSUER), &acct).await.unwrap();
        engine
            .apply(&plan, &iam, &EventSink::discard())
            .await
            .unwrap()
            .into_result()
            .unwrap_or_else(|e| panic!("k={k}: {e}"));
        assert!(iam.plan(&s, Some(ISSUER), &acct).await.unwrap().is_empty(), "k={k}");
        assert_eq!(iam.discover(&s).await.unwrap().len(), 5, "k={k}");
        if crashed.is_success() {
            break;
        }
        k += 1;
    }
    assert!(k > 10, "only {k} writes");
    let mut faults = 0;
    for seed in [5, 6, 7] {
        let (aws, iam) =
            setup(FaultConfig { seed, throttle_rate: 0.2, server_error_rate: 0.05, ..Default::default() }).await;
        let engine = Engine::new(ApplyOptions::fast());
        let plan = iam.plan(&s, Some(ISSUER), &aws.account_id).await.unwrap();
        engine.apply(&plan, &iam, &EventSink::discard()).await.unwrap().into_result().unwrap();
        assert!(iam.plan(&s, Some(ISSUER), &aws.account_id).await.unwrap().is_empty(), "seed {seed}");
        faults += aws.proxy.stats().faults();
    }
    assert!(faults > 6, "only {faults} faults injected over three runs");
}

/// Well-known sets become managed policies and inline documents on the role; IAM holds exactly eksctl's
/// statements, a change of sets is one in-place update, and a role's inline policies go with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn well_known_sets_are_inline_policies_kept_in_step() {
    let text = "
name: wk-e2e
region: us-east-1
network: {cidr: 10.0.0.0/16, azs: 2}
access:
  service_accounts:
    - {namespace: kube-system, name: aws-load-balancer-controller, well_known: [aws-load-balancer-controller]}
cluster:
  version: '1.31'
  nodegroups:
    - {name: dns, instance_types: [m5.large], iam: {well_known: [cert-manager, external-dns, image-builder]}}
";
    let (aws, iam) = setup_for(text, FaultConfig::default()).await;
    let mut s = spec(text);
    let acct = aws.account_id.clone();
    let engine = Engine::new(ApplyOptions::fast());
    let plan = iam.plan(&s, Some(ISSUER), &acct).await.unwrap();
    engine.apply(&plan, &iam, &EventSink::discard()).await.unwrap().into_result().unwrap();
    assert!(iam.plan(&s, Some(ISSUER), &acct).await.unwrap().is_empty());

    // what IAM holds, read back with IAM's own calls
    let client = aws_sdk_iam::Client::new(&AwsTarget::local("us-east-1", &aws.endpoint()).load().await);
    let node = eksodus_access::iam::role_name("wk-e2e", "node-dns");
    let mut names = client.list_role_policies().role_name(&node).send().await.unwrap().policy_names().to_vec();
    names.sort();
    assert_eq!(names, ["eksodus-cert-manager", "eksodus-external-dns"]);
    let doc = client.get_role_policy().role_name(&node).policy_name("eksodus-external-dns").send().await.unwrap();
    let want = eksodus_access::wellknown::resolve("aws", &[eksodus_core::spec::WellKnownPolicy::ExternalDns]);
    assert_eq!(
        eksodus_access::policy::PolicyDocument::canonical_from_iam(doc.policy_document()),
        Some(want.inline["eksodus-external-dns"].canonical())
    );
    let attached = client.list_attached_role_policies().role_name(&node).send().await.unwrap();
    assert!(attached
        .attached_policies()
        .iter()
        .any(|p| p.policy_arn() == Some("arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPowerUser")));
    let lbc = eksodus_access::iam::role_name("wk-e2e", "kube-system-aws-load-balancer-controller");
    let names = client.list_role_policies().role_name(&lbc).send().await.unwrap().policy_names().to_vec();
    assert_eq!(names, ["eksodus-aws-load-balancer-controller"]);

    // one set off, another on: one update of that role, then an empty plan
    s.cluster.as_mut().unwrap().nodegroups[0].iam.well_known =
        vec![eksodus_core::spec::WellKnownPolicy::CertManager, eksodus_core::spec::WellKnownPolicy::AutoScaler];
    let p = iam.plan(&s, Some(ISSUER), &acct).await.unwrap();
    assert_eq!(
        p.changes().map(|c| (c.id.as_str(), c.action)).collect::<Vec<_>>(),
        [("role/node/dns", eksodus_core::plan::Action::Update)]
    );
    engine.apply(&p, &iam, &EventSink::discard()).await.unwrap().into_result().unwrap();
    assert!(iam.plan(&s, Some(ISSUER), &acct).await.unwrap().is_empty());
    let mut names = client.list_role_policies().role_name(&node).send().await.unwrap().policy_names().to_vec();
    names.sort();
    assert_eq!(names, ["eksodus-autoscaler", "eksodus-cert-manager"]);

    // someone edits an inline document behind eksodus's back: the plan puts it back
    client
        .put_role_policy()
        .role_name(&node)
        .policy_name("eksodus-autoscaler")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    let p = iam.plan(&s, Some(ISSUER), &acct).await.unwrap();
    assert_eq!(p.changes().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["role/node/dns"]);
    engine.apply(&p, &iam, &EventSink::discard()).await.unwrap().into_result().unwrap();
    assert!(iam.plan(&s, Some(ISSUER), &acct).await.unwrap().is_empty());

    // the service account's own document (eksctl's attachPolicy) beside its set: put, changed, taken off
    let own = |actions: &[&str]| serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]});
    let held = |client: aws_sdk_iam::Client, role: String| async move {
        let mut names = client.list_role_policies().role_name(&role).send().await.unwrap().policy_names().to_vec();
        names.sort();
        let doc = match names.iter().any(|n| n == "eksodus-own") {
            true => {
                let d = client.get_role_policy().role_name(&role).policy_name("eksodus-own").send().await.unwrap();
                eksodus_access::policy::PolicyDocument::canonical_from_iam(d.policy_document())
            }
            false => None,
        };
        (names, doc)
    };
    for doc in [
        Some(own(&["autoscaling:DescribeTags"])),
        Some(own(&["autoscaling:DescribeTags", "ec2:DescribeLaunchTemplateVersions"])),
        None,
    ] {
        s.access.as_mut().unwrap().service_accounts[0].policy_document = doc.clone();
        assert_eq!(eksodus_access::wellknown::validate(&s), vec![]);
        let p = iam.plan(&s, Some(ISSUER), &acct).await.unwrap();
        assert_eq!(
            p.changes().map(|c| (c.id.as_str(), c.action)).collect::<Vec<_>>(),
            [("role/irsa/kube-system/aws-load-balancer-controller", eksodus_core::plan::Action::Update)]
        );
        engine.apply(&p, &iam, &EventSink::discard()).await.unwrap().into_result().unwrap();
        assert!(iam.plan(&s, Some(ISSUER), &acct).await.unwrap().is_empty());
        let (names, got) = held(client.clone(), lbc.clone()).await;
        let want: Option<serde_json::Value> =
            doc.map(|d| serde_json::from_value::<eksodus_access::policy::PolicyDocument>(d).unwrap().canonical());
        assert_eq!(got, want);
        assert_eq!(names.len(), 1 + usize::from(want.is_some()), "{names:?}");
    }

    for op in aws.proxy.stats().by_operation().keys() {
        assert!(ACTIONS.contains(&op.as_str()), "{op} is called but missing from iam::ACTIONS");
    }
    let d = iam.destroy_plan(&s).await.unwrap();
    engine.apply(&d, &iam, &EventSink::discard()).await.unwrap().into_result().unwrap();
    assert!(iam.discover(&s).await.unwrap().is_empty());
    assert!(client.get_role().role_name(&node).send().await.is_err());
}

/// A failed AWS call keeps what support asks for: the service's error code and request ID, as fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_errors_carry_their_code_and_request_id() {
    let aws = LocalAws::start(FaultConfig::default()).await.unwrap();
    let conf = AwsTarget::local("us-east-1", &aws.endpoint()).load().await;
    let err = aws_sdk_iam::Client::new(&conf).get_role().role_name("no-such-role").send().await.unwrap_err();
    let e = eksodus_core::aws::step_error("GetRole no-such-role", err);
    assert_eq!(e.code.as_deref(), Some("NoSuchEntity"));
    assert_eq!(e.class, eksodus_core::engine::ErrorClass::Permanent);
    let id = e.request_id.clone().expect("a request ID");
    assert!(!id.is_empty() && e.to_string().contains(&id), "{e}");
}
