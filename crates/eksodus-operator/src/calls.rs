//! AWS calls counted by operation: a wrapper around the SDK's HTTP client, so every attempt of every call the
//! environment's reconcilers make is seen (the SDK clients are built inside the environment; an HTTP client in
//! the `SdkConfig` is the one seam they all share).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use eksodus::core::operations;

/// Calls by `service:Operation`, shared by clones.
#[derive(Debug, Clone, Default)]
pub struct CallCounter(Arc<Mutex<BTreeMap<String, u64>>>);

impl CallCounter {
    /// Records one call.
    pub fn record(&self, operation: String) {
        *self.0.lock().expect("call counter").entry(operation).or_default() += 1;
    }

    /// Calls so far, by operation.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().expect("call counter").clone()
    }

    /// All calls so far.
    pub fn total(&self) -> u64 {
        self.0.lock().expect("call counter").values().sum()
    }

    /// `inner` with every request counted here and in `also` (the process-wide counter of the metrics).
    pub fn wrap(&self, inner: SharedHttpClient, also: Option<CallCounter>) -> SharedHttpClient {
        SharedHttpClient::new(Counting { inner, counters: std::iter::once(self.clone()).chain(also).collect() })
    }
}

/// The `service:Operation` of a signed request; REST routes no API model names become `service:other`, so
/// metrics keep a bounded set of labels.
pub fn operation(request: &HttpRequest) -> String {
    let auth = request.headers().get("authorization").unwrap_or_default();
    let service = operations::service_of(auth).unwrap_or("unknown");
    let path = request.uri().split('?').next().unwrap_or_default();
    let path =
        path.split_once("://").map(|(_, rest)| rest.find('/').map(|i| &rest[i..]).unwrap_or("/")).unwrap_or(path);
    let op = operations::operation_of(
        service,
        request.method(),
        path,
        request.headers().get("x-amz-target"),
        request.body().bytes().unwrap_or_default(),
    );
    if op.contains(' ') {
        format!("{service}:other")
    } else {
        format!("{service}:{op}")
    }
}

#[derive(Debug)]
struct Counting {
    inner: SharedHttpClient,
    counters: Vec<CallCounter>,
}

impl HttpClient for Counting {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(CountingConnector {
            inner: self.inner.http_connector(settings, components),
            counters: self.counters.clone(),
        })
    }
}

#[derive(Debug)]
struct CountingConnector {
    inner: SharedHttpConnector,
    counters: Vec<CallCounter>,
}

impl HttpConnector for CountingConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let op = operation(&request);
        for c in &self.counters {
            c.record(op.clone());
        }
        self.inner.call(request)
    }
}
