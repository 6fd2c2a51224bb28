//! EKS access entries and the authentication mode on the emulator (the testkit proxy implements the EKS
//! access-entry API moto lacks): apply, empty re-plan, change, delete; the mode never goes back.

use eksodus_access::entries::AccessEntries;
use eksodus_core::aws::AwsTarget;
use eksodus_core::aws::Calls;
use eksodus_core::engine::{ApplyOptions, Engine};
use eksodus_core::events::EventSink;
use eksodus_core::plan::Action;
use eksodus_e2e::spec;
use eksodus_testkit::{FaultConfig, LocalAws};

const SPEC: &str = "
name: entries
region: us-east-1
network: {cidr: 10.0.0.0/16, azs: 2}
access:
  authentication_mode: API_AND_CONFIG_MAP
  entries:
    - principal_arn: arn:aws:iam::111122223333:role/admins
      policies: [{policy: AmazonEKSClusterAdminPolicy}]
    - principal_arn: arn:aws:iam::111122223333:role/developers
      kubernetes_groups: [dev]
      policies: [{policy: AmazonEKSViewPolicy, namespaces: [team-a]}]
    - principal_arn: arn:aws:iam::111122223333:role/nodes
      type: EC2_LINUX
";

async fn cluster(aws: &LocalAws) -> aws_sdk_eks::Client {
    let conf = AwsTarget::local("us-east-1", &aws.endpoint()).load().await;
    let eks = aws_sdk_eks::Client::new(&conf);
    eks.create_cluster()
        .name("entries")
        .role_arn("arn:aws:iam::111122223333:role/cluster")
        .resources_vpc_config(
            aws_sdk_eks::types::VpcConfigRequest::builder().subnet_ids("subnet-1").subnet_ids("subnet-2").build(),
        )
        .send()
        .await
        .unwrap();
    eks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_and_mode_apply_replan_change_delete() {
    let aws = LocalAws::start(FaultConfig::default()).await.unwrap();
    let eks = cluster(&aws).await;
    let mut s = spec(SPEC);
    let ae = AccessEntries::new(eks.clone(), &s)
        .with_retry(ApplyOptions::fast())
        .with_calls(Calls::keyed("eks", &aws.endpoint()));
    let engine = Engine::new(ApplyOptions::fast());

    let plan = ae.plan(&s).await.unwrap();
    let got: Vec<(&str, Action)> = plan.changes().map(|c| (c.id.as_str(), c.action)).collect();
    assert_eq!(got[0], ("auth-mode", Action::Update), "{got:?}");
    assert_eq!(plan.summary().create, 3);
    engine.apply(&plan, &ae, &EventSink::discard()).await.unwrap().into_result().unwrap();
    let again = ae.plan(&s).await.unwrap();
    assert!(again.is_empty(), "{:#?}", again.changes().collect::<Vec<_>>());

    let mut found = ae.discover().await.unwrap();
    // the policies of entries we do not own are read only when the guard needs them
    assert_eq!(found.unresolved.len(), 1, "{:?}", found.unresolved);
    ae.resolve_admins(&mut found).await.unwrap();
    assert!(found.unresolved.is_empty());
    assert!(found.all.iter().any(|e| e.principal_arn.ends_with("role/admins") && e.cluster_admin));
    assert!(
        found.all.iter().any(|e| e.principal_arn.ends_with("user/moto") && e.cluster_admin),
        "the creator's bootstrap entry"
    );
    let dev = aws_sdk_eks::Client::list_associated_access_policies(&eks)
        .cluster_name("entries")
        .principal_arn("arn:aws:iam::111122223333:role/developers")
        .send()
        .await
        .unwrap();
    assert_eq!(dev.associated_access_policies()[0].access_scope().unwrap().namespaces(), ["team-a"]);

    // widen a scope and add a group: one in-place update
    let a = s.access.as_mut().unwrap();
    a.entries[1].policies[0].namespaces.push("team-b".into());
    a.entries[1].kubernetes_groups.push("viewers".into());
    let p = ae.plan(&s).await.unwrap();
    assert_eq!(
        p.changes().map(|c| (c.id.as_str(), c.action)).collect::<Vec<_>>(),
        [("entry/arn:aws:iam::111122223333:role/developers", Action::Update)]
    );
    engine.apply(&p, &ae, &EventSink::discard()).await.unwrap().into_result().unwrap();
    assert!(ae.plan(&s).await.unwrap().is_empty());

    // the mode never goes back
    let mut back = s.clone();
    back.access.as_mut().unwrap().authentication_mode = Some(eksodus_core::spec::AuthenticationMode::ConfigMap);
    match ae.plan(&back).await.unwrap_err() {
        eksodus_access::Error::Invalid { field, message } => {
            assert_eq!(field, "access.authentication_mode");
            assert!(message.contains("never moves back"), "{message}");
        }
        other => panic!("expected Invalid naming the field, got {other:?}"),
    }

    // moving to API with the only non-creator admin entry gone would still leave the creator: allowed; but
    // deleting the creator is not ours, so build a case where ours is the last admin
    let mut lone = s.clone();
    lone.access.as_mut().unwrap().authentication_mode = Some(eksodus_core::spec::AuthenticationMode::Api);
    lone.access.as_mut().unwrap().entries.retain(|e| !e.principal_arn.ends_with("role/admins"));
    eks.delete_access_entry()
        .cluster_name("entries")
        .principal_arn(format!("arn:aws:iam::{}:user/moto", aws.account_id))
        .send()
        .await
        .unwrap();
    let err = ae.plan(&lone).await.unwrap_err();
    assert!(
        matches!(err, eksodus_access::Error::Lockout(eksodus_access::guard::Lockout::NoAdminLeft { .. })),
        "a typed lockout refusal, got {err:?}"
    );
    assert!(err.to_string().contains("nobody with cluster-admin"), "{err}");
    assert!(ae.clone().force(true).plan(&lone).await.is_ok(), "force overrides the guard");

    // delete removes our three entries and not the creator's
    // destroying our entries would leave no admin, and the guard cannot see aws-auth: with the mappings
    // given (an admin in aws-auth, mode API_AND_CONFIG_MAP) it allows it
    let admin = eksodus_access::awsauth::Mapping::role(
        "arn:aws:iam::111122223333:role/break-glass",
        "admin",
        &["system:masters"],
    );
    let d = ae.clone().with_aws_auth(vec![admin]).destroy_plan().await.unwrap();
    assert_eq!(d.summary().delete, 3);
    engine.apply(&d, &ae, &EventSink::discard()).await.unwrap().into_result().unwrap();
    let left = ae.discover().await.unwrap();
    assert_eq!(left.all.len(), 0, "the creator's entry was removed by hand above");
    assert!(left.observed.iter().all(|o| o.kind != "access-entry"));

    for op in aws.proxy.stats().by_operation().keys() {
        assert!(
            eksodus_access::entries::ACTIONS.contains(&op.as_str()) || op == "eks:CreateCluster",
            "{op} missing from entries::ACTIONS"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converges_after_a_crash_at_every_write() {
    let s = spec(SPEC);
    let mut k = 1;
    loop {
        let aws = LocalAws::start(FaultConfig::default()).await.unwrap();
        let eks = cluster(&aws).await;
        aws.proxy.set_config(FaultConfig { crash_after_mutations: Some(k), ..aws.proxy.config() });
        let ae = AccessEntries::new(eks, &s)
            .with_retry(ApplyOptions::fast())
            .with_calls(Calls::keyed("eks", &aws.endpoint()));
        let engine = Engine::new(ApplyOptions::fast());
        let crashed = match ae.plan(&s).await {
            Ok(p) => engine.apply(&p, &ae, &EventSink::discard()).await.unwrap().is_success(),
            Err(_) => false,
        };
        aws.proxy.heal();
        let plan = ae.plan(&s).await.unwrap();
        engine
            .apply(&plan, &ae, &EventSink::discard())
            .await
            .unwrap()
            .into_result()
            .unwrap_or_else(|e| panic!("k={k}: {e}"));
        assert!(ae.plan(&s).await.unwrap().is_empty(), "k={k}");
        if crashed {
            break;
        }
        k += 1;
    }
    assert!(k > 5, "only {k} writes");
}

/// aws-auth (in a Kubernetes API) → access entries (on the emulator): the plan names every mapping's fate,
/// applying it moves the mode forward and creates the entries, and a second run has nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_auth_migrates_to_access_entries() {
    use eksodus_access::awsauth::{Edit, Mapping};
    use eksodus_access::cluster::{AwsAuthApi, EditOptions};
    let k = eksodus_e2e::Cluster::start("migrate").await;
    let api = AwsAuthApi::in_namespace(k.client.clone(), &k.namespace);
    api.apply_edits(
        &[
            Edit::Upsert(Mapping::role(
                "arn:aws:iam::111122223333:role/eks/nodes",
                "system:node:{{EC2PrivateDNSName}}",
                &["system:bootstrappers", "system:nodes"],
            )),
            Edit::Upsert(Mapping::role(
                "arn:aws:iam::111122223333:role/admins",
                "admin:{{SessionName}}",
                &["system:masters"],
            )),
            Edit::Upsert(Mapping::user("arn:aws:iam::111122223333:user/ci", "ci", &["deployers"])),
            Edit::Upsert(Mapping::role("arn:aws:iam::111122223333:role/odd", "odd", &["system:monitoring"])),
        ],
        &EditOptions::default(),
    )
    .await
    .unwrap();
    let aws_auth = api.read().await.unwrap();

    let aws = LocalAws::start(FaultConfig::default()).await.unwrap();
    let eks = cluster(&aws).await;
    let s = spec("name: entries\nregion: us-east-1\nnetwork: {cidr: 10.0.0.0/16, azs: 2}\n");
    let ae = AccessEntries::new(eks.clone(), &s)
        .for_migration()
        .with_retry(ApplyOptions::fast())
        .with_calls(Calls::keyed("eks", &aws.endpoint()));
    let (mp, plan) = ae.plan_migration(&aws_auth).await.unwrap();
    assert_eq!(mp.mode_steps, [eksodus_core::spec::AuthenticationMode::ApiAndConfigMap]);
    assert_eq!(mp.entries.len(), 3);
    assert_eq!(mp.unmapped.len(), 1);
    assert!(mp.unmapped[0].reason.contains("system:monitoring"));
    assert_eq!(plan.summary().create + plan.summary().update, 4, "mode step and three entries");
    Engine::new(ApplyOptions::fast()).apply(&plan, &ae, &EventSink::discard()).await.unwrap().into_result().unwrap();

    let found = ae.discover().await.unwrap();
    let types: Vec<(&str, &str)> =
        found.all.iter().map(|e| (e.principal_arn.rsplit('/').next().unwrap(), e.entry_type.as_str())).collect();
    assert!(types.contains(&("nodes", "EC2_LINUX")), "{types:?}");
    assert!(found.all.iter().any(|e| e.principal_arn.ends_with("role/admins") && e.cluster_admin));
    let (again, plan) = ae.plan_migration(&aws_auth).await.unwrap();
    assert!(plan.is_empty(), "{:#?}", plan.changes().collect::<Vec<_>>());
    assert!(again.entries.is_empty() && again.mode_steps.is_empty());
    // the spec's own entry reconciler does not own (and so never deletes) migrated entries
    assert_eq!(AccessEntries::new(eks, &s).destroy_plan().await.unwrap().summary().delete, 0);
    k.cleanup().await;
}

/// EKS Pod Identity: the role (IAM reconciler) and its association (entries reconciler) apply, re-plan as
/// empty, and are removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_identity_roles_and_associations() {
    let aws = LocalAws::start(FaultConfig::default()).await.unwrap();
    let eks = cluster(&aws).await;
    let s = spec(
        "name: entries\nregion: us-east-1\nnetwork: {cidr: 10.0.0.0/16, azs: 2}\naccess:\n  pod_identities:\n    - {namespace: shop, name: checkout, policies: [arn:aws:iam::aws:policy/AmazonDynamoDBReadOnlyAccess]}\n",
    );
    let conf = AwsTarget::local("us-east-1", &aws.endpoint()).load().await;
    let iam = eksodus_access::iam::Iam::new(aws_sdk_iam::Client::new(&conf), &s)
        .with_retry(ApplyOptions::fast())
        .with_calls(Calls::new("iam", &conf));
    let ae = AccessEntries::new(eks, &s)
        .with_account(&aws.account_id)
        .with_retry(ApplyOptions::fast())
        .with_calls(Calls::keyed("eks", &aws.endpoint()));
    let engine = Engine::new(ApplyOptions::fast());
    let ip = iam.plan(&s, None, &aws.account_id).await.unwrap();
    assert!(ip.changes().any(|c| c.id == "role/pod/shop/checkout"));
    engine.apply(&ip, &iam, &EventSink::discard()).await.unwrap().into_result().unwrap();
    let ep = ae.plan(&s).await.unwrap();
    assert_eq!(ep.changes().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["pod-identity/shop/checkout"]);
    engine.apply(&ep, &ae, &EventSink::discard()).await.unwrap().into_result().unwrap();
    assert!(ae.plan(&s).await.unwrap().is_empty());
    assert!(iam.plan(&s, None, &aws.account_id).await.unwrap().is_empty());
    let role = iam.discover(&s).await.unwrap().into_iter().find(|o| o.key == "role/pod/shop/checkout").unwrap();
    assert!(role.props["trust"].to_string().contains("pods.eks.amazonaws.com"));
    let assoc =
        ae.discover().await.unwrap().observed.into_iter().find(|o| o.key == "pod-identity/shop/checkout").unwrap();
    assert_eq!(
        assoc.props["role_arn"],
        format!("arn:aws:iam::{}:role/eksodus/entries/entries-pod-shop-checkout", aws.account_id)
    );

    engine.apply(&ae.destroy_plan().await.unwrap(), &ae, &EventSink::discard()).await.unwrap().into_result().unwrap();
    engine
        .apply(&iam.destroy_plan(&s).await.unwrap(), &iam, &EventSink::discard())
        .await
        .unwrap()
        .into_result()
        .unwrap();
    assert!(ae.discover().await.unwrap().observed.iter().all(|o| o.kind != "pod-identity-association"));
    assert!(iam.discover(&s).await.unwrap().is_empty());
}
