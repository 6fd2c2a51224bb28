//! The Kubernetes side of the lifecycle (feature `aws`): a client for an EKS cluster from its endpoint, CA
//! and a native token; the ENIConfig objects of custom networking; the cleanup before a delete (Services of
//! type LoadBalancer and Ingresses, whose controllers own AWS load balancers and security groups in the VPC);
//! the service accounts of the spec's IRSA and Pod Identity roles; and the deprecated-API metric the upgrade
//! preflight reads.

use std::time::{Duration, Instant};

use eksodus_access::serviceaccounts as sa;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::Client;
use serde::Serialize;
use serde_json::Value;

use eksodus_core::kube::call as kcall;

use crate::eks::ClusterInfo;
use crate::token::{self, Credentials, UnixTime};
use crate::upgrade::{self, DeprecatedApi};
use crate::Error;

/// Field manager of eksodus's server-side applies.
pub use eksodus_core::FIELD_MANAGER;

fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Kube { what, source }
}

/// A client for an EKS cluster: its endpoint and CA from `DescribeCluster`, and a native EKS token presigned
/// with `creds` (valid 15 minutes; make a new client for work that may outlast it).
pub fn client_for(info: &ClusterInfo, region: &str, creds: &Credentials) -> Result<Client, Error> {
    let conf = cluster_config(info)?;
    // a bearer token per request, signed again before it expires: clients live through long waits
    let fresh = std::sync::Arc::new(token::Fresh::new(&info.name, region, creds.clone()));
    let auth = tower::util::MapRequestLayer::new(move |mut req: http::Request<kube::client::Body>| {
        if let Ok(v) = http::HeaderValue::from_str(&format!("Bearer {}", fresh.at(UnixTime::now()))) {
            req.headers_mut().insert(http::header::AUTHORIZATION, v);
        }
        req
    });
    let builder = kube::client::ClientBuilder::try_from(conf).map_err(kube_err("building the client"))?;
    Ok(builder.with_layer(&auth).build())
}

/// The current token of a client whose credentials come from a provider, renewed in the background.
#[derive(Debug, Default)]
struct TokenCell(std::sync::RwLock<String>);

/// Mints a token with credentials fetched from `provider` now (so a provider's refreshed credentials are used).
async fn mint(
    provider: &aws_credential_types::provider::SharedCredentialsProvider,
    cluster: &str,
    region: &str,
) -> Result<String, Error> {
    use aws_credential_types::provider::ProvideCredentials;
    let c = provider.provide_credentials().await.map_err(|e| Error::Credentials(e.to_string()))?;
    let creds = Credentials {
        access_key_id: c.access_key_id().to_string(),
        secret_access_key: c.secret_access_key().to_string(),
        session_token: c.session_token().map(String::from),
    };
    Ok(token::token(cluster, region, &creds, UnixTime::now()))
}

/// A client for an EKS cluster whose tokens are signed with credentials from `provider`, asked again for every
/// new token: temporary credentials (SSO, an assumed role, an instance role) that the provider refreshes keep
/// working under a client that lives for hours. A background task renews the token before its 15 minutes end
/// and stops when the client is gone.
pub async fn client_with_provider(
    info: &ClusterInfo,
    region: &str,
    provider: aws_credential_types::provider::SharedCredentialsProvider,
) -> Result<Client, Error> {
    let cell = std::sync::Arc::new(TokenCell(std::sync::RwLock::new(mint(&provider, &info.name, region).await?)));
    let weak = std::sync::Arc::downgrade(&cell);
    let (cluster, region_owned) = (info.name.clone(), region.to_string());
    tokio::spawn(async move {
        let renew = Duration::from_secs(token::REFRESH_AFTER_SECONDS - 60);
        loop {
            tokio::time::sleep(renew).await;
            let Some(cell) = weak.upgrade() else { return };
            // a failed renewal keeps the current token (still valid for a minute) and tries again soon
            match mint(&provider, &cluster, &region_owned).await {
                Ok(t) => *cell.0.write().unwrap_or_else(|p| p.into_inner()) = t,
                Err(_) => {
                    drop(cell);
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
            }
        }
    });
    let auth = tower::util::MapRequestLayer::new(move |mut req: http::Request<kube::client::Body>| {
        let t = cell.0.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let Ok(v) = http::HeaderValue::from_str(&format!("Bearer {t}")) {
            req.headers_mut().insert(http::header::AUTHORIZATION, v);
        }
        req
    });
    let conf = cluster_config(info)?;
    let builder = kube::client::ClientBuilder::try_from(conf).map_err(kube_err("building the client"))?;
    Ok(builder.with_layer(&auth).build())
}

/// The endpoint and CA of a cluster as a kube-rs configuration (no credentials).
fn cluster_config(info: &ClusterInfo) -> Result<kube::Config, Error> {
    use base64::Engine as _;
    let endpoint = info.endpoint.clone().ok_or_else(|| Error::NotReady {
        what: format!("cluster {}", info.name),
        message: "it has no endpoint yet".into(),
    })?;
    let url = endpoint.parse().map_err(|e| Error::Invalid {
        what: format!("cluster {}'s endpoint", info.name),
        message: format!("`{endpoint}` is not a URL: {e}"),
    })?;
    let mut conf = kube::Config::new(url);
    if let Some(ca) = &info.certificate_authority {
        let pem = base64::engine::general_purpose::STANDARD.decode(ca).map_err(|e| Error::Invalid {
            what: format!("cluster {}'s certificate authority", info.name),
            message: format!("not base64: {e}"),
        })?;
        let ders: Vec<Vec<u8>> = pem_to_der(&pem);
        if ders.is_empty() {
            return Err(Error::Invalid {
                what: format!("cluster {}'s certificate authority", info.name),
                message: "no PEM certificate in it".into(),
            });
        }
        conf.root_cert = Some(ders);
    }
    Ok(conf)
}

fn pem_to_der(pem: &[u8]) -> Vec<Vec<u8>> {
    use base64::Engine as _;
    let text = String::from_utf8_lossy(pem);
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("-----BEGIN CERTIFICATE-----") {
            inside = true;
            cur.clear();
        } else if line.starts_with("-----END CERTIFICATE-----") {
            inside = false;
            if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(cur.trim()) {
                out.push(der);
            }
        } else if inside {
            cur.push_str(line.trim());
        }
    }
    out
}

/// Server-side applies the ENIConfig objects (cluster-scoped, `crd.k8s.amazonaws.com/v1alpha1`). Returns
/// their names.
pub async fn apply_eni_configs(client: &Client, objects: &[Value]) -> Result<Vec<String>, Error> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("crd.k8s.amazonaws.com", "v1alpha1", "ENIConfig"),
        "eniconfigs",
    );
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let mut names = Vec::new();
    for o in objects {
        let name = o["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        let patch = Patch::Apply(o);
        kcall(|| api.patch(&name, &pp, &patch)).await.map_err(kube_err(format!("apply ENIConfig {name}")))?;
        names.push(name);
    }
    Ok(names)
}

/// The VPC CNI's ConfigMap (`kube-system`), which EKS's VPC resource controller reads for Windows nodes.
pub const VPC_CNI_CONFIGMAP: &str = "amazon-vpc-cni";
/// Its key that turns on IP address management for Windows nodes.
pub const WINDOWS_IPAM_KEY: &str = "enable-windows-ipam";

/// Turns on the VPC CNI's IP address management for Windows nodes (`enable-windows-ipam: "true"` in
/// `kube-system/amazon-vpc-cni`): without it EKS's VPC resource controller gives Windows pods no address.
/// Read-merge-write: the ConfigMap is made when missing, and otherwise only that key is written, every other
/// one kept, with the resourceVersion read as the write's precondition (a conflict reads again, after a short
/// pause). Returns whether anything was written. Never turned off again: a Windows nodegroup may still be
/// draining.
pub async fn enable_windows_ipam(client: &Client) -> Result<bool, Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    let what = format!("kube-system/{VPC_CNI_CONFIGMAP}");
    for attempt in 1.. {
        let got = kcall(|| api.get_opt(VPC_CNI_CONFIGMAP)).await.map_err(kube_err(format!("read {what}")))?;
        let written = match got {
            None => {
                let cm = ConfigMap {
                    metadata: kube::api::ObjectMeta {
                        name: Some(VPC_CNI_CONFIGMAP.into()),
                        namespace: Some("kube-system".into()),
                        ..Default::default()
                    },
                    data: Some([(WINDOWS_IPAM_KEY.to_string(), "true".to_string())].into()),
                    ..Default::default()
                };
                let post = PostParams::default();
                kcall(|| api.create(&post, &cm)).await.map(|_| ())
            }
            Some(cm) => {
                if cm.data.as_ref().and_then(|d| d.get(WINDOWS_IPAM_KEY)).map(String::as_str) == Some("true") {
                    return Ok(false);
                }
                // a merge patch that names the resourceVersion fails with 409 if anyone wrote in between
                let patch = serde_json::json!({
                    "metadata": {"resourceVersion": cm.metadata.resource_version},
                    "data": {WINDOWS_IPAM_KEY: "true"},
                });
                let pp = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
                let patch = Patch::Merge(&patch);
                kcall(|| api.patch(VPC_CNI_CONFIGMAP, &pp, &patch)).await.map(|_| ())
            }
        };
        match written {
            Ok(()) => return Ok(true),
            // changed, or made (by the VPC CNI addon, or by an attempt whose answer was lost), since it was read
            Err(kube::Error::Api(e)) if e.code == 409 && attempt < MAX_CONFLICTS => {
                tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt.min(20)))).await;
            }
            Err(e) => return Err(kube_err(format!("write {what} (attempt {attempt})"))(e)),
        }
    }
    unreachable!("the loop returns by its last attempt")
}

/// Read-merge-write rounds of the VPC CNI's ConfigMap before a conflict is the answer (as for aws-auth).
const MAX_CONFLICTS: u32 = 50;

/// Server-side applies namespaced RBAC objects (`Role`, `RoleBinding` of `rbac.authorization.k8s.io/v1`), each
/// in the namespace its metadata names; a namespace that does not exist is an error naming it. Returns
/// `namespace/Kind/name` of each.
pub async fn apply_rbac(client: &Client, objects: &[Value]) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for o in objects {
        let kind = o["kind"].as_str().unwrap_or_default();
        let plural = match kind {
            "Role" => "roles",
            "RoleBinding" => "rolebindings",
            other => return Err(Error::Spec { field: "access".into(), message: format!("no RBAC kind {other}") }),
        };
        let ar =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("rbac.authorization.k8s.io", "v1", kind), plural);
        let ns = o["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
        let name = o["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        let patch = Patch::Apply(o);
        match kcall(|| api.patch(&name, &pp, &patch)).await {
            Ok(_) => out.push(format!("{ns}/{kind}/{name}")),
            Err(kube::Error::Api(e)) if e.code == 404 => {
                return Err(Error::Spec {
                    field: "access.service_access".into(),
                    message: format!("namespace {ns} does not exist in the cluster: create it, then run up again"),
                })
            }
            Err(e) => return Err(kube_err(format!("apply {kind} {ns}/{name}"))(e)),
        }
    }
    Ok(out)
}

/// Makes the spec's Kubernetes service accounts ([`eksodus_access::serviceaccounts`]): the namespaces they need
/// when missing (never deleted), then each one that is missing or eksodus's server-side applied, each one that
/// exists without eksodus's label left alone, and eksodus's that the spec no longer lists deleted.
pub async fn apply_service_accounts(
    client: &Client,
    env: &str,
    wanted: &[sa::Wanted],
) -> Result<Vec<sa::Change>, Error> {
    let all: Api<ServiceAccount> = Api::all(client.clone());
    let lp = ListParams::default().labels(&format!("{}={env}", eksodus_core::spec::OWNER_LABEL));
    let ours = kcall(|| all.list(&lp)).await.map_err(kube_err("list eksodus's service accounts"))?;
    let mut versions = std::collections::BTreeMap::new();
    let mut existing = Vec::new();
    let mut seen = |o: &ServiceAccount, existing: &mut Vec<sa::Existing>| {
        let (ns, name) =
            (o.metadata.namespace.clone().unwrap_or_default(), o.metadata.name.clone().unwrap_or_default());
        versions.insert((ns.clone(), name.clone()), o.metadata.resource_version.clone());
        existing.push(sa::Existing { namespace: ns, name, labels: o.metadata.labels.clone().unwrap_or_default() });
    };
    for o in &ours.items {
        seen(o, &mut existing);
    }
    // a wanted one that is not eksodus's may still exist: the user's
    for w in wanted {
        if existing.iter().any(|e| e.namespace == w.namespace && e.name == w.name) {
            continue;
        }
        let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &w.namespace);
        let got = kcall(|| api.get_opt(&w.name))
            .await
            .map_err(kube_err(format!("read service account {}/{}", w.namespace, w.name)))?;
        if let Some(o) = got {
            seen(&o, &mut existing);
        }
    }
    let actions = sa::sort(env, wanted, &existing);
    let mut out: Vec<sa::Change> =
        actions.not_ours.iter().map(|s| sa::Change::NotOurs { service_account: s.clone() }).collect();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in sa::namespaces(&actions.apply) {
        if kcall(|| namespaces.get_opt(&ns)).await.map_err(kube_err(format!("read namespace {ns}")))?.is_some() {
            continue;
        }
        let obj: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": ns}}))
            .map_err(|e| Error::Spec { field: "access".into(), message: format!("namespace {ns}: {e}") })?;
        let post = PostParams::default();
        match kcall(|| namespaces.create(&post, &obj)).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {} // made meanwhile, or by an attempt whose answer was lost
            Err(e) => return Err(kube_err(format!("create namespace {ns}"))(e)),
        }
    }
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    for w in &actions.apply {
        let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &w.namespace);
        let patch = Patch::Apply(&w.object);
        let after = kcall(|| api.patch(&w.name, &pp, &patch))
            .await
            .map_err(kube_err(format!("apply service account {}/{}", w.namespace, w.name)))?;
        let service_account = format!("{}/{}", w.namespace, w.name);
        match versions.get(&(w.namespace.clone(), w.name.clone())) {
            None => out.push(sa::Change::Created { service_account }),
            // an apply that changes nothing keeps the resourceVersion
            Some(before) if *before != after.metadata.resource_version => {
                out.push(sa::Change::Updated { service_account })
            }
            Some(_) => {}
        }
    }
    for (ns, name) in &actions.delete {
        let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
        let dp = DeleteParams::default();
        match kcall(|| api.delete(name, &dp)).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(kube_err(format!("delete service account {ns}/{name}"))(e)),
        }
        out.push(sa::Change::Deleted { service_account: format!("{ns}/{name}") });
    }
    Ok(out)
}

/// Whether the cluster's API server answers (`/version`), trying for at most `patience`: a server that does not
/// resolve or connect is not waited for the whole retry budget of a call.
pub async fn reachable(client: &Client, patience: Duration) -> Result<(), Error> {
    let policy = eksodus_core::retry::Policy { budget: patience, ..eksodus_core::kube::policy() };
    eksodus_core::kube::call_with(&policy, || client.apiserver_version())
        .await
        .map(|_| ())
        .map_err(|f| Error::Kube { what: format!("reaching the API server{}", f.tried()), source: f.error })
}

/// What the pre-delete cleanup removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Cleanup {
    /// `namespace/name` of the deleted LoadBalancer Services.
    pub services: Vec<String>,
    /// `namespace/name` of the deleted Ingresses.
    pub ingresses: Vec<String>,
    /// What was still there when the wait ended.
    pub remaining: Vec<String>,
}

fn lb_services(list: Vec<Service>) -> Vec<(String, String)> {
    list.into_iter()
        .filter(|s| s.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer"))
        .map(|s| (s.metadata.namespace.unwrap_or_default(), s.metadata.name.unwrap_or_default()))
        .collect()
}

/// Deletes every Service of type LoadBalancer and every Ingress, then waits (up to `timeout`) until they are
/// gone: their controllers delete the AWS load balancers and security groups first (finalizers), which would
/// otherwise keep the VPC from being deleted.
pub async fn delete_load_balancers(client: &Client, timeout: Duration) -> Result<Cleanup, Error> {
    let services: Api<Service> = Api::all(client.clone());
    let ingresses: Api<Ingress> = Api::all(client.clone());
    let mut out = Cleanup::default();
    let (all, background) = (ListParams::default(), DeleteParams::background());
    let svcs = lb_services(kcall(|| services.list(&all)).await.map_err(kube_err("list Services"))?.items);
    for (ns, name) in &svcs {
        let api = Api::<Service>::namespaced(client.clone(), ns);
        match kcall(|| api.delete(name, &background)).await {
            Ok(_) => out.services.push(format!("{ns}/{name}")),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(Error::Kube { what: format!("delete Service {ns}/{name}"), source: e }),
        }
    }
    let ings = kcall(|| ingresses.list(&all)).await.map_err(kube_err("list Ingresses"))?.items;
    for i in ings {
        let (ns, name) = (i.metadata.namespace.unwrap_or_default(), i.metadata.name.unwrap_or_default());
        let api = Api::<Ingress>::namespaced(client.clone(), &ns);
        match kcall(|| api.delete(&name, &background)).await {
            Ok(_) => out.ingresses.push(format!("{ns}/{name}")),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(Error::Kube { what: format!("delete Ingress {ns}/{name}"), source: e }),
        }
    }
    let start = Instant::now();
    let mut interval = Duration::from_millis(100);
    loop {
        let left_svcs = lb_services(kcall(|| services.list(&all)).await.map_err(kube_err("list Services"))?.items);
        let left_ings = kcall(|| ingresses.list(&all)).await.map_err(kube_err("list Ingresses"))?.items;
        let mut left: Vec<String> = left_svcs.iter().map(|(n, s)| format!("Service {n}/{s}")).collect();
        left.extend(left_ings.iter().map(|i| {
            format!(
                "Ingress {}/{}",
                i.metadata.namespace.clone().unwrap_or_default(),
                i.metadata.name.clone().unwrap_or_default()
            )
        }));
        if left.is_empty() || start.elapsed() >= timeout {
            out.remaining = left;
            return Ok(out);
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(Duration::from_secs(10));
    }
}

/// The deprecated APIs clients still request, from the API server's `/metrics`; `None` when they cannot be
/// read (no permission, or a server that does not serve metrics).
pub async fn deprecated_apis(client: &Client) -> Option<Vec<DeprecatedApi>> {
    let text = kcall(|| async {
        let req = http::Request::get("/metrics").body(Vec::new()).map_err(kube::Error::HttpError)?;
        client.request_text(req).await
    })
    .await
    .ok()?;
    Some(upgrade::parse_deprecated_metric(&text))
}

#[cfg(test)]
mod client_tests {
    use super::*;
    use std::io::{Read as _, Write as _};

    /// The client signs every request with an EKS token (a loopback listener stands in for the API server and
    /// records what arrives).
    #[tokio::test]
    async fn every_request_carries_an_eks_token() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for _ in 0..2 {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = vec![0u8; 16384];
                let n = s.read(&mut buf).unwrap();
                seen.push(String::from_utf8_lossy(&buf[..n]).to_string());
                let body = r#"{"major":"1","minor":"33","gitVersion":"v1.33.0","gitCommit":"x","gitTreeState":"clean","buildDate":"2025-01-01T00:00:00Z","goVersion":"go1.24","compiler":"gc","platform":"linux/amd64"}"#;
                write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .unwrap();
            }
            seen
        });
        let info = ClusterInfo { name: "demo".into(), endpoint: Some(format!("http://{addr}")), ..Default::default() };
        let creds =
            Credentials { access_key_id: "AKID".into(), secret_access_key: "secret".into(), session_token: None };
        let client = client_for(&info, "us-east-1", &creds).unwrap();
        for _ in 0..2 {
            assert_eq!(client.apiserver_version().await.unwrap().minor, "33");
        }
        for req in server.join().unwrap() {
            let auth = req
                .lines()
                .find_map(|l| l.strip_prefix("authorization: ").or_else(|| l.strip_prefix("Authorization: ")))
                .unwrap_or_else(|| panic!("no Authorization header in {req}"));
            let tok = auth.strip_prefix("Bearer ").unwrap();
            assert!(tok.starts_with(token::PREFIX), "{tok}");
            use base64::Engine as _;
            let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&tok[token::PREFIX.len()..]).unwrap();
            let url = String::from_utf8(url).unwrap();
            assert!(url.contains("Action=GetCallerIdentity") && url.contains("x-k8s-aws-id"), "{url}");
        }
    }
}
