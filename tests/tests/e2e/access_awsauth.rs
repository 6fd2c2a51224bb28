//! aws-auth read-merge-write against a Kubernetes API server (the fake one, or a real cluster when
//! `EKSODUS_TEST_KUBECONFIG` names one; each test works in its own namespace).

use std::collections::BTreeMap;

use eksodus_access::awsauth::{Edit, Kind, Mapping, MAP_ROLES, MAP_USERS, MASTERS};
use eksodus_access::cluster::{AwsAuthApi, EditOptions, NAME};
use eksodus_access::Error;
use eksodus_e2e::Cluster;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;

const ACCOUNT: &str = "111122223333";

fn role(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

async fn put_configmap(c: &Cluster, data: BTreeMap<String, String>) {
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({"metadata": {"name": NAME}, "data": data})).unwrap();
    Api::<ConfigMap>::namespaced(c.client.clone(), &c.namespace).create(&Default::default(), &cm).await.unwrap();
}

async fn stored(c: &Cluster) -> ConfigMap {
    Api::<ConfigMap>::namespaced(c.client.clone(), &c.namespace).get(NAME).await.unwrap()
}

#[tokio::test]
async fn creates_when_absent_and_a_reapply_changes_nothing() {
    let c = Cluster::start("create").await;
    let api = AwsAuthApi::in_namespace(c.client.clone(), &c.namespace);
    let desired = [
        Mapping::role(&role("nodes"), "system:node:{{EC2PrivateDNSName}}", &["system:bootstrappers", "system:nodes"]),
        Mapping::role(&role("admins"), "admin:{{SessionName}}", &[MASTERS]),
    ];
    let out = api.apply_desired(&desired, &EditOptions::default()).await.unwrap();
    assert!(out.created && out.written);
    assert_eq!(out.changes.len(), 2);
    let again = api.apply_desired(&desired, &EditOptions::default()).await.unwrap();
    assert!(!again.written && again.changes.is_empty());
    // dropping one from the spec removes it, because eksodus added it
    let out = api.apply_desired(&desired[..1], &EditOptions { force: true, ..Default::default() }).await.unwrap();
    assert_eq!(out.changes.len(), 1);
    assert!(api.read().await.unwrap().get(Kind::Role, &role("admins")).is_none());
    c.cleanup().await;
}

#[tokio::test]
async fn fifty_concurrent_editors_lose_nothing() {
    let c = Cluster::start("fifty").await;
    let users = "# added by hand\n- userarn: arn:aws:iam::111122223333:user/alice\n  username: alice\n  groups: [system:masters]\n";
    put_configmap(&c, [(MAP_USERS.to_string(), users.to_string())].into()).await;
    let api = AwsAuthApi::in_namespace(c.client.clone(), &c.namespace);
    let tasks = (0..50).map(|i| {
        let api = api.clone();
        tokio::spawn(async move {
            let m = Mapping::role(&role(&format!("team-{i}")), &format!("team-{i}"), &[&format!("team-{i}")]);
            api.apply_edits(&[Edit::Upsert(m)], &EditOptions::default()).await.unwrap()
        })
    });
    let outcomes = futures::future::join_all(tasks).await;
    let rounds: u32 = outcomes.iter().map(|o| o.as_ref().unwrap().attempts).sum();
    let now = api.read().await.unwrap();
    for i in 0..50 {
        assert!(now.get(Kind::Role, &role(&format!("team-{i}"))).is_some(), "team-{i} was lost");
    }
    assert!(now.get(Kind::User, "arn:aws:iam::111122223333:user/alice").is_some(), "the hand-made entry was lost");
    assert_eq!(stored(&c).await.data.unwrap()[MAP_USERS], users, "an untouched section must stay byte-identical");
    assert!(rounds > 50, "50 concurrent writers met no conflict at all ({rounds} rounds): the test did not test");
    c.cleanup().await;
}

#[tokio::test]
async fn the_guard_refuses_a_lockout_and_writes_nothing() {
    let c = Cluster::start("guard").await;
    let api = AwsAuthApi::in_namespace(c.client.clone(), &c.namespace);
    let node =
        Mapping::role(&role("nodes"), "system:node:{{EC2PrivateDNSName}}", &["system:bootstrappers", "system:nodes"]);
    let admin = Mapping::role(&role("admins"), "admin", &[MASTERS]);
    api.apply_edits(&[Edit::Upsert(node.clone()), Edit::Upsert(admin.clone())], &EditOptions::default()).await.unwrap();
    let rv = stored(&c).await.metadata.resource_version;

    let err =
        api.apply_edits(&[Edit::Remove(Kind::Role, admin.arn.clone())], &EditOptions::default()).await.unwrap_err();
    assert!(matches!(err, Error::Lockout(_)), "{err}");
    let opts = EditOptions { nodegroup_roles: vec![node.arn.clone()], ..Default::default() };
    let err = api.apply_edits(&[Edit::Remove(Kind::Role, node.arn.clone())], &opts).await.unwrap_err();
    assert!(err.to_string().contains("nodegroup still uses"), "{err}");
    assert_eq!(stored(&c).await.metadata.resource_version, rv, "a refused change wrote something");

    let forced = EditOptions { force: true, ..opts };
    api.apply_edits(&[Edit::Remove(Kind::Role, node.arn.clone())], &forced).await.unwrap();
    assert!(api.read().await.unwrap().get(Kind::Role, &node.arn).is_none());
    c.cleanup().await;
}

#[tokio::test]
async fn a_malformed_configmap_is_reported_and_left_alone() {
    let c = Cluster::start("malformed").await;
    put_configmap(
        &c,
        [(MAP_ROLES.to_string(), "- rolearn: arn:aws:iam::111122223333:role/x\n  groups: 7\n".to_string())].into(),
    )
    .await;
    let api = AwsAuthApi::in_namespace(c.client.clone(), &c.namespace);
    let before = stored(&c).await;
    let err = api
        .apply_edits(&[Edit::Upsert(Mapping::role(&role("y"), "y", &["g"]))], &EditOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("mapRoles[0].groups"), "{err}");
    assert_eq!(stored(&c).await, before);
    c.cleanup().await;
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let c = Cluster::start("dryrun").await;
    let api = AwsAuthApi::in_namespace(c.client.clone(), &c.namespace);
    let out = api
        .apply_edits(
            &[Edit::Upsert(Mapping::role(&role("y"), "y", &["g"]))],
            &EditOptions { dry_run: true, ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(out.changes.len(), 1);
    assert!(!out.written);
    assert!(Api::<ConfigMap>::namespaced(c.client.clone(), &c.namespace).get_opt(NAME).await.unwrap().is_none());
    c.cleanup().await;
}
