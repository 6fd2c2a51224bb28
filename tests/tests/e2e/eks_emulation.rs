//! The EKS operations moto lacks, as the testkit proxy answers them through the real SDK: addons and their
//! versions, version upgrades one minor at a time, and resources held in CREATING/UPDATING for N describes.

use aws_sdk_eks::types::{NodegroupScalingConfig, VpcConfigRequest};
use aws_sdk_eks::Client;
use eksodus_core::aws::AwsTarget;
use eksodus_testkit::{FaultConfig, LocalAws};

async fn eks(faults: FaultConfig) -> (LocalAws, Client) {
    let aws = LocalAws::start(faults).await.unwrap();
    let conf = AwsTarget::local("us-east-1", &aws.endpoint()).load().await;
    (aws, Client::new(&conf))
}

async fn create_cluster(c: &Client, version: &str) {
    c.create_cluster()
        .name("emu")
        .version(version)
        .role_arn("arn:aws:iam::111122223333:role/cluster")
        .resources_vpc_config(VpcConfigRequest::builder().subnet_ids("subnet-1").subnet_ids("subnet-2").build())
        .send()
        .await
        .unwrap();
}

fn code<E: aws_sdk_eks::error::ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn states_settle_after_n_describes_and_addons_follow_the_cluster_version() {
    let (_aws, c) = eks(FaultConfig { eks_pending_describes: 2, ..Default::default() }).await;
    create_cluster(&c, "1.31").await;
    let status = |c: Client| async move {
        c.describe_cluster().name("emu").send().await.unwrap().cluster().unwrap().status().unwrap().as_str().to_string()
    };
    assert_eq!(status(c.clone()).await, "CREATING");
    assert_eq!(status(c.clone()).await, "CREATING");
    assert_eq!(status(c.clone()).await, "ACTIVE");

    let v = c.describe_addon_versions().kubernetes_version("1.31").addon_name("coredns").send().await.unwrap();
    let versions = v.addons()[0].addon_versions();
    let default = versions.iter().find(|v| v.compatibilities().iter().any(|c| c.default_version())).unwrap();
    assert_eq!(default.addon_version(), Some("v1.11.4-eksbuild.2"));

    let created = c.create_addon().cluster_name("emu").addon_name("coredns").send().await.unwrap();
    assert_eq!(
        created.addon().unwrap().addon_version(),
        Some("v1.11.4-eksbuild.2"),
        "no version: EKS's default for 1.31"
    );
    let st = |c: Client| async move {
        c.describe_addon()
            .cluster_name("emu")
            .addon_name("coredns")
            .send()
            .await
            .unwrap()
            .addon()
            .unwrap()
            .status()
            .unwrap()
            .as_str()
            .to_string()
    };
    assert_eq!(st(c.clone()).await, "CREATING");
    assert_eq!(st(c.clone()).await, "CREATING");
    assert_eq!(st(c.clone()).await, "ACTIVE");
    let e = c.create_addon().cluster_name("emu").addon_name("coredns").send().await.unwrap_err();
    assert_eq!(code(&e), "ResourceInUseException");
    let e = c
        .create_addon()
        .cluster_name("emu")
        .addon_name("kube-proxy")
        .addon_version("v1.33.0-eksbuild.1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidParameterException", "a kube-proxy for another minor is refused");
    assert_eq!(c.list_addons().cluster_name("emu").send().await.unwrap().addons(), ["coredns"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_go_one_minor_at_a_time_and_nodegroups_follow() {
    let (_aws, c) = eks(FaultConfig { eks_pending_describes: 1, ..Default::default() }).await;
    create_cluster(&c, "1.31").await;
    c.create_nodegroup()
        .cluster_name("emu")
        .nodegroup_name("ng")
        .version("1.31")
        .node_role("arn:aws:iam::111122223333:role/node")
        .subnets("subnet-1")
        .scaling_config(NodegroupScalingConfig::builder().min_size(1).max_size(2).desired_size(1).build())
        .send()
        .await
        .unwrap();
    let e = c.update_cluster_version().name("emu").version("1.33").send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidParameterException", "skipping a minor is refused");
    let u = c.update_cluster_version().name("emu").version("1.32").send().await.unwrap();
    let id = u.update().unwrap().id().unwrap().to_string();
    let ust = |c: Client, id: String| async move {
        c.describe_update()
            .name("emu")
            .update_id(id)
            .send()
            .await
            .unwrap()
            .update()
            .unwrap()
            .status()
            .unwrap()
            .as_str()
            .to_string()
    };
    assert_eq!(ust(c.clone(), id.clone()).await, "InProgress");
    assert_eq!(ust(c.clone(), id.clone()).await, "Successful");
    let cl = c.describe_cluster().name("emu").send().await.unwrap();
    assert_eq!(cl.cluster().unwrap().version(), Some("1.32"));
    assert!(c.list_updates().name("emu").send().await.unwrap().update_ids().contains(&id));

    let e =
        c.update_nodegroup_version().cluster_name("emu").nodegroup_name("ng").version("1.33").send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidParameterException", "a nodegroup newer than its cluster is refused");
    c.update_nodegroup_version().cluster_name("emu").nodegroup_name("ng").version("1.32").send().await.unwrap();
    let ng = c.describe_nodegroup().cluster_name("emu").nodegroup_name("ng").send().await.unwrap();
    assert_eq!(ng.nodegroup().unwrap().version(), Some("1.32"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_resource_reports_health_issues() {
    let (_aws, c) = eks(FaultConfig { eks_fail: vec!["vpc-cni".into()], ..Default::default() }).await;
    create_cluster(&c, "1.33").await;
    c.create_addon().cluster_name("emu").addon_name("vpc-cni").send().await.unwrap();
    let a = c.describe_addon().cluster_name("emu").addon_name("vpc-cni").send().await.unwrap();
    let a = a.addon().unwrap();
    assert_eq!(a.status().unwrap().as_str(), "DEGRADED");
    assert!(!a.health().unwrap().issues().is_empty());
    c.delete_addon().cluster_name("emu").addon_name("vpc-cni").send().await.unwrap();
    let e = c.describe_addon().cluster_name("emu").addon_name("vpc-cni").send().await.unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_provider_configs_are_one_per_cluster_and_settle_like_other_resources() {
    use aws_sdk_eks::types::{IdentityProviderConfig, OidcIdentityProviderConfigRequest};
    let (_aws, c) = eks(FaultConfig { eks_pending_describes: 1, ..Default::default() }).await;
    create_cluster(&c, "1.33").await;
    let oidc = |name: &str| {
        OidcIdentityProviderConfigRequest::builder()
            .identity_provider_config_name(name)
            .issuer_url("https://sso.example.com")
            .client_id("kubernetes")
            .username_claim("email")
            .build()
            .unwrap()
    };
    let id = |name: &str| IdentityProviderConfig::builder().r#type("oidc").name(name).build().unwrap();
    let describe = |name: &'static str| {
        let c = c.clone();
        async move {
            c.describe_identity_provider_config().cluster_name("emu").identity_provider_config(id(name)).send().await
        }
    };
    let status =
        |r: &aws_sdk_eks::operation::describe_identity_provider_config::DescribeIdentityProviderConfigOutput| {
            r.identity_provider_config().unwrap().oidc().unwrap().status().unwrap().as_str().to_string()
        };
    let err = describe("corp").await.unwrap_err();
    assert_eq!(code(err.as_service_error().unwrap()), "ResourceNotFoundException");
    let r = c.associate_identity_provider_config().cluster_name("emu").oidc(oidc("corp")).send().await.unwrap();
    assert_eq!(r.update().unwrap().status().unwrap().as_str(), "InProgress");
    assert_eq!(status(&describe("corp").await.unwrap()), "CREATING");
    let active = describe("corp").await.unwrap();
    assert_eq!(status(&active), "ACTIVE");
    let cfg = active.identity_provider_config().unwrap().oidc().unwrap();
    assert_eq!((cfg.client_id(), cfg.username_claim()), (Some("kubernetes"), Some("email")));
    assert!(cfg.identity_provider_config_arn().unwrap().contains(":identityproviderconfig/emu/oidc/corp/"));
    // EKS takes one OIDC provider per cluster
    let second =
        c.associate_identity_provider_config().cluster_name("emu").oidc(oidc("other")).send().await.unwrap_err();
    assert_eq!(code(second.as_service_error().unwrap()), "InvalidRequestException");
    let listed = c.list_identity_provider_configs().cluster_name("emu").send().await.unwrap();
    assert_eq!(listed.identity_provider_configs().iter().map(|c| c.name()).collect::<Vec<_>>(), ["corp"]);
    c.disassociate_identity_provider_config()
        .cluster_name("emu")
        .identity_provider_config(id("corp"))
        .send()
        .await
        .unwrap();
    assert_eq!(status(&describe("corp").await.unwrap()), "DELETING");
    let gone = describe("corp").await.unwrap_err();
    assert_eq!(code(gone.as_service_error().unwrap()), "ResourceNotFoundException");
}
