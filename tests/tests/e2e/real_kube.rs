//! The testkit's real API server: it starts, answers as Kubernetes v1.36, and a recreate gives an empty
//! cluster at the same URL.

use eksodus_testkit::realkube::{Options, RealKube};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_answers_and_recreates_empty_at_the_same_url() {
    if !RealKube::available() {
        println!("skipped: {} is not set, no real API server on this machine", eksodus_testkit::realkube::BINARY_VAR);
        return;
    }
    let mut k = RealKube::start(Options::default()).await.expect("real API server");
    println!("real API server ready in {:.1}s", k.startup_time().as_secs_f64());
    let c = k.client().await.unwrap();
    let v = c.apiserver_version().await.unwrap();
    assert_eq!((v.major.as_str(), v.minor.as_str()), ("1", "36"), "{v:?}");
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": "before-recreate"}})).unwrap();
    Api::<Namespace>::all(c.clone()).create(&Default::default(), &ns).await.unwrap();
    let url = k.url();
    k.recreate().await.unwrap();
    assert_eq!(k.url(), url);
    let c = k.client().await.unwrap();
    assert!(
        Api::<Namespace>::all(c).get_opt("before-recreate").await.unwrap().is_none(),
        "a recreated cluster is empty"
    );
}
