//! A realistic workload for the recovery story (the demo and its tests): two teams' namespaces, Deployments
//! behind LoadBalancer Services and an Ingress, ConfigMaps, Secrets (encrypted at rest with aescbc), a CRD with
//! custom resources, RBAC, and the cluster's `kube-system/aws-auth` with an admin role, a developers' role and
//! the old node role.
//!
//! Also two stand-ins for what a test API server lacks: the controllers that report Deployments rolled out and
//! the cloud controller that gives LoadBalancer Services an address.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Discovery, Scope};
use serde_json::{json, Value};

/// The source's encryption at rest: Secrets with aescbc (a fixed key, for tests and the demo only).
pub const ENCRYPTION: &str = "apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets]
  providers:
  - aescbc:
      keys:
      - name: key1
        secret: c2VjcmV0LWtleS1vZi0zMi1ieXRlcy1mb3ItdGVzdHM=
  - identity: {}
";

/// The old cluster's `mapRoles`: an admin role, a developers' role, and its node role.
pub const MAP_ROLES: &str = "- rolearn: arn:aws:iam::123456789012:role/platform-admin
  username: platform-admin
  groups: [system:masters]
- rolearn: arn:aws:iam::123456789012:role/developers
  username: dev:{{SessionName}}
  groups: [developers]
- rolearn: arn:aws:iam::123456789012:role/old-nodes
  username: system:node:{{EC2PrivateDNSName}}
  groups: [system:bootstrappers, system:nodes]
";

/// The old load balancers' addresses, as the old cluster's Services reported them.
pub fn old_address(namespace: &str, name: &str) -> String {
    format!("{name}-{namespace}-0123456789.us-east-1.elb.amazonaws.com")
}

fn deployment(ns: &str, name: &str, image: &str, replicas: u32, port: u32) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": image, "ports": [{"containerPort": port}],
                    "envFrom": [{"configMapRef": {"name": format!("{name}-config")}}]}]}}}})
}

fn lb_service(ns: &str, name: &str, port: u32) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 443, "targetPort": port}]}})
}

/// The workload's objects in creation order (the CRD before its resources, namespaces before their objects).
pub fn objects() -> Vec<Value> {
    let mut v = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "storefront", "labels": {"team": "web"}}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "payments", "labels": {"team": "payments"}}}),
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "featureflags.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "featureflags", "singular": "featureflag", "kind": "FeatureFlag", "shortNames": ["ff"]},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object",
                        "properties": {"enabled": {"type": "boolean"}, "rollout": {"type": "integer", "minimum": 0, "maximum": 100}}}}}}}]}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "aws-auth", "namespace": "kube-system"}, "data": {"mapRoles": MAP_ROLES}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "developers-view"},
            "rules": [{"apiGroups": ["", "apps", "example.com"], "resources": ["pods", "deployments", "featureflags"], "verbs": ["get", "list", "watch"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "developers-view"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "developers-view"},
            "subjects": [{"kind": "Group", "name": "developers", "apiGroup": "rbac.authorization.k8s.io"}]}),
    ];
    for (ns, name, image, replicas, port) in [
        ("storefront", "web", "nginx:1.27", 3, 8080),
        ("storefront", "catalog", "example/catalog:2.4.1", 2, 9000),
        ("payments", "checkout", "example/checkout:7.0.3", 2, 8443),
    ] {
        v.push(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": ns}}));
        v.push(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("{name}-config"), "namespace": ns},
            "data": {"LOG_LEVEL": "info", "UPSTREAM": format!("{name}.{ns}.svc.cluster.local")}}));
        v.push(deployment(ns, name, image, replicas, port));
    }
    v.push(lb_service("storefront", "web", 8080));
    v.push(lb_service("payments", "checkout", 8443));
    v.push(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "catalog", "namespace": "storefront"},
        "spec": {"selector": {"app": "catalog"}, "ports": [{"port": 80, "targetPort": 9000}]}}));
    v.push(json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "storefront", "namespace": "storefront"},
        "spec": {"ingressClassName": "alb", "rules": [{"host": "shop.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 443}}}},
            {"path": "/catalog", "pathType": "Prefix", "backend": {"service": {"name": "catalog", "port": {"number": 80}}}}]}}]}}));
    v.push(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "payments-api", "namespace": "payments"}, "type": "Opaque",
        "stringData": {"API_KEY": "sk_live_demo_only", "WEBHOOK_SECRET": "whsec_demo_only"}}));
    v.push(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls", "namespace": "storefront"}, "type": "Opaque",
        "stringData": {"note": "a certificate would be here"}}));
    v.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "flags-editor", "namespace": "storefront"},
        "rules": [{"apiGroups": ["example.com"], "resources": ["featureflags"], "verbs": ["get", "list", "update"]}]}));
    v.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "web-flags", "namespace": "storefront"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "flags-editor"},
        "subjects": [{"kind": "ServiceAccount", "name": "web", "namespace": "storefront"}]}));
    for (name, enabled, rollout) in [("new-checkout", true, 25), ("dark-mode", false, 0)] {
        v.push(json!({"apiVersion": "example.com/v1", "kind": "FeatureFlag", "metadata": {"name": name, "namespace": "storefront"},
            "spec": {"enabled": enabled, "rollout": rollout}}));
    }
    v
}

/// Objects of [`objects`] the new cluster is expected to hold after a recovery (`group/Kind namespace/name`
/// as the migration names them): all but aws-auth, which becomes access instead.
pub fn expected_after_recovery() -> Vec<String> {
    objects()
        .iter()
        .filter(|o| o["metadata"]["namespace"] != "kube-system")
        .map(|o| {
            let api = o["apiVersion"].as_str().unwrap_or_default();
            let group = api.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
            let kind = o["kind"].as_str().unwrap_or_default();
            let gk = if group.is_empty() { kind.to_string() } else { format!("{group}/{kind}") };
            match o["metadata"]["namespace"].as_str() {
                Some(ns) => format!("{gk} {ns}/{}", o["metadata"]["name"].as_str().unwrap_or_default()),
                None => format!("{gk} {}", o["metadata"]["name"].as_str().unwrap_or_default()),
            }
        })
        .collect()
}

fn api_for(c: &kube::Client, d: &Discovery, o: &Value) -> Result<Api<DynamicObject>, kube::Error> {
    let api = o["apiVersion"].as_str().unwrap_or_default();
    let (g, v) = api.rsplit_once('/').unwrap_or(("", api));
    let (ar, caps) =
        d.resolve_gvk(&GroupVersionKind::gvk(g, v, o["kind"].as_str().unwrap_or_default())).ok_or_else(|| {
            kube::Error::Discovery(kube::error::DiscoveryError::MissingResource(format!("{api} {}", o["kind"])))
        })?;
    Ok(match (caps.scope, o["metadata"]["namespace"].as_str()) {
        (Scope::Namespaced, Some(ns)) => Api::namespaced_with(c.clone(), ns, &ar),
        _ => Api::all_with(c.clone(), &ar),
    })
}

/// Creates the workload in `c` (discovery refreshed after the CRD, so its kind can follow) and gives the
/// LoadBalancer Services the old cluster's addresses.
pub async fn populate(c: &kube::Client) -> Result<(), kube::Error> {
    let mut d = Discovery::new(c.clone()).run().await?;
    for o in objects() {
        let obj: DynamicObject = serde_json::from_value(o.clone()).map_err(kube::Error::SerdeError)?;
        api_for(c, &d, &o)?.create(&PostParams::default(), &obj).await?;
        if o["kind"] == "CustomResourceDefinition" {
            for _ in 0..100 {
                d = Discovery::new(c.clone()).run().await?;
                if d.groups().any(|g| g.name() == "example.com") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    set_load_balancers(c, old_address).await
}

/// Gives every LoadBalancer Service without an address one from `address` (the cloud controller's job).
async fn set_load_balancers(c: &kube::Client, address: impl Fn(&str, &str) -> String) -> Result<(), kube::Error> {
    let svcs: Api<k8s_openapi::api::core::v1::Service> = Api::all(c.clone());
    for s in svcs.list(&Default::default()).await? {
        let is_lb = s.spec.as_ref().and_then(|x| x.type_.as_deref()) == Some("LoadBalancer");
        let has = s
            .status
            .as_ref()
            .and_then(|x| x.load_balancer.as_ref())
            .and_then(|l| l.ingress.as_ref())
            .is_some_and(|i| !i.is_empty());
        if !is_lb || has {
            continue;
        }
        let (ns, name) =
            (s.metadata.namespace.clone().unwrap_or_default(), s.metadata.name.clone().unwrap_or_default());
        let api: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(c.clone(), &ns);
        let patch = json!({"status": {"loadBalancer": {"ingress": [{"hostname": address(&ns, &name)}]}}});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    }
    Ok(())
}

/// Marks every Deployment rolled out (what the controller manager and the kubelets would report).
async fn roll_out(c: &kube::Client) -> Result<(), kube::Error> {
    let deps: Api<k8s_openapi::api::apps::v1::Deployment> = Api::all(c.clone());
    for d in deps.list(&Default::default()).await? {
        let generation = d.metadata.generation.unwrap_or(1);
        let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        if d.status.as_ref().and_then(|s| s.observed_generation) == Some(generation)
            && d.status.as_ref().and_then(|s| s.available_replicas) == Some(replicas)
        {
            continue;
        }
        let api: Api<k8s_openapi::api::apps::v1::Deployment> =
            Api::namespaced(c.clone(), d.metadata.namespace.as_deref().unwrap_or_default());
        let patch = json!({"status": {"observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas,
            "readyReplicas": replicas, "availableReplicas": replicas}});
        api.patch_status(
            d.metadata.name.as_deref().unwrap_or_default(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    }
    Ok(())
}

/// Stands in for the new cluster's controllers until dropped: every half second, Deployments are reported
/// rolled out and LoadBalancer Services get a new address (`<name>-<namespace>.new-lb.example.com`).
pub struct Controllers(tokio::task::JoinHandle<()>);

impl Controllers {
    /// Starts them on `c`.
    pub fn start(c: kube::Client) -> Controllers {
        Controllers(tokio::spawn(async move {
            loop {
                let _ = roll_out(&c).await;
                let _ = set_load_balancers(&c, |ns, name| format!("{name}-{ns}.new-lb.example.com")).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }))
    }
}

impl Drop for Controllers {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `etcdctl snapshot save` of `kube`'s etcd into `dir/etcd.db`.
pub fn snapshot(kube: &crate::realkube::RealKube, dir: &Path) -> Result<PathBuf, String> {
    let file = dir.join("etcd.db");
    let out = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &kube.etcd_endpoint(), "snapshot", "save"])
        .arg(&file)
        .output()
        .map_err(|e| format!("etcdctl (Debian's etcd-client): {e}"))?;
    if !out.status.success() {
        return Err(format!("etcdctl snapshot save: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(file)
}

/// A source cluster as the recovery story has it: a real API server (with aescbc encryption at rest) holding
/// the workload, and its etcd snapshot in `dir`. The server is stopped before returning: the cluster is lost.
pub async fn lost_cluster_snapshot(dir: &Path) -> Result<PathBuf, String> {
    let kube = crate::realkube::RealKube::start(crate::realkube::Options {
        encryption_config: Some(ENCRYPTION.into()),
        ..Default::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    let c = kube.client().await.map_err(|e| e.to_string())?;
    populate(&c).await.map_err(|e| format!("populating the source: {e}"))?;
    snapshot(&kube, dir)
}

/// The ENIConfig CRD, as the VPC CNI add-on installs it on EKS.
pub const ENICONFIG_CRD: &str = r#"{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "eniconfigs.crd.k8s.amazonaws.com"},
  "spec": {"group": "crd.k8s.amazonaws.com", "scope": "Cluster", "names": {"plural": "eniconfigs", "singular": "eniconfig", "kind": "ENIConfig", "listKind": "ENIConfigList"},
    "versions": [{"name": "v1alpha1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}"#;

/// The Kubernetes side of an emulated EKS cluster (whose own endpoint leads nowhere): a real API server of its
/// own when the machine has one, else the fake; either serves ENIConfigs as the VPC CNI add-on would.
pub struct NewCluster {
    /// The fake (always started: tests set its `/metrics`).
    pub fake: crate::kubeapi::FakeKube,
    /// The real server, when there is one.
    pub real: Option<crate::realkube::RealKube>,
    /// A client of whichever stands in.
    pub client: kube::Client,
}

impl NewCluster {
    /// Starts it; `real: false` keeps to the fake.
    pub async fn start(real: bool) -> Result<NewCluster, String> {
        let fake = crate::kubeapi::FakeKube::start().await.map_err(|e| e.to_string())?;
        fake.register("crd.k8s.amazonaws.com", "v1alpha1", "eniconfigs", "ENIConfig", false);
        if !(real && crate::realkube::RealKube::available()) {
            let client = kube::Client::try_from(kube::Config::new(fake.url().parse().map_err(|e| format!("{e}"))?))
                .map_err(|e| e.to_string())?;
            return Ok(NewCluster { fake, real: None, client });
        }
        let k = crate::realkube::RealKube::start(Default::default()).await.map_err(|e| e.to_string())?;
        let client = k.client().await.map_err(|e| e.to_string())?;
        let crd: DynamicObject = serde_json::from_str(ENICONFIG_CRD).map_err(|e| e.to_string())?;
        let ar = kube::core::ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        );
        Api::<DynamicObject>::all_with(client.clone(), &ar)
            .create(&PostParams::default(), &crd)
            .await
            .map_err(|e| format!("creating the ENIConfig CRD: {e}"))?;
        for _ in 0..100 {
            let d = Discovery::new(client.clone()).run().await.map_err(|e| e.to_string())?;
            if d.groups().any(|g| g.name() == "crd.k8s.amazonaws.com") {
                return Ok(NewCluster { fake, real: Some(k), client });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err("the ENIConfig CRD was never served".into())
    }

    /// What stands in, for messages.
    pub fn describe(&self) -> String {
        match &self.real {
            Some(k) => format!("a real API server ({})", k.url()),
            None => format!("the fake API server ({})", self.fake.url()),
        }
    }
}
