//! A program outside the eksodus workspace that embeds the facade on Kubernetes 1.36: it reads the objects of an
//! etcd snapshot with eksodus and turns the Deployments into k8s-openapi 1.36 types.
//! Usage: `eksodus-embedder-k8s-1-36 SNAPSHOT`; exits non-zero when nothing was read.
#![allow(clippy::print_stdout)]

use k8s_openapi::api::apps::v1::Deployment;

/// The typed API an embedder would use on its own cluster: compiled against 1.36's types.
#[allow(dead_code)]
fn deployments(client: kube::Client) -> kube::Api<Deployment> {
    kube::Api::all(client)
}

#[allow(unused_assignments)] // `version` is assigned again on 1.36 only
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: eksodus-embedder-k8s-1-36 SNAPSHOT")?;
    let (read, snapshot) = eksodus::migrate::source::read_etcd(path.as_ref(), None, None)?;
    let mut typed = 0;
    for obj in read.objects.iter().filter(|o| o.api_version() == "apps/v1" && o.kind() == "Deployment") {
        let d: Deployment = serde_json::from_value(obj.0.clone())?;
        let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        println!("{}/{}: {replicas} replica(s)", obj.namespace(), obj.name());
        typed += 1;
    }
    let mut version = "a version other than 1.36";
    k8s_openapi::k8s_if_1_36! { version = "1.36"; }
    println!(
        "k8s-openapi for Kubernetes {version}: {} object(s) read from {}, {} unreadable, {typed} Deployment(s) typed",
        read.objects.len(),
        snapshot.path.display(),
        read.errors.len(),
    );
    if typed == 0 {
        return Err("no Deployment read from the snapshot".into());
    }
    Ok(())
}
