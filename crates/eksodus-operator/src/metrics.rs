//! Prometheus metrics (text exposition format 0.0.4) and the health endpoints, served on one port:
//! `/metrics`, `/healthz` (the process runs), `/readyz` (it has reached the API server).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};

use crate::calls::CallCounter;

/// Upper bounds (seconds) of the reconcile duration histogram.
const BUCKETS: [f64; 10] = [0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0];

/// The operator's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    reconciles: Mutex<BTreeMap<(String, String), u64>>,
    durations: Mutex<Histogram>,
    /// AWS calls of every environment, by `service:Operation`.
    pub aws_calls: CallCounter,
    leader: AtomicBool,
    ready: AtomicBool,
    environments: AtomicU64,
}

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Metrics {
    /// Records one reconcile of `kind` that ended with `outcome` (`converged`, `applied`, `drifted`, `invalid`,
    /// `error`, `deleted`, ...) after `took`.
    pub fn reconciled(&self, kind: &str, outcome: &str, took: Duration) {
        *self.reconciles.lock().expect("metrics").entry((kind.to_string(), outcome.to_string())).or_default() += 1;
        let s = took.as_secs_f64();
        let mut h = self.durations.lock().expect("metrics");
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += s;
        h.count += 1;
    }

    /// Whether this replica holds the lease (or runs without election).
    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Relaxed);
    }

    /// Whether this replica reached the API server.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The number of environments the last list saw.
    pub fn set_environments(&self, n: u64) {
        self.environments.store(n, Ordering::Relaxed);
    }

    /// Reconciles so far by (kind, outcome).
    pub fn reconciles(&self) -> BTreeMap<(String, String), u64> {
        self.reconciles.lock().expect("metrics").clone()
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP eksodus_reconciles_total Reconciles by resource kind and outcome.");
        let _ = writeln!(out, "# TYPE eksodus_reconciles_total counter");
        for ((kind, outcome), n) in self.reconciles() {
            let _ = writeln!(out, "eksodus_reconciles_total{{kind=\"{kind}\",outcome=\"{outcome}\"}} {n}");
        }
        let errors: u64 = self.reconciles().iter().filter(|((_, o), _)| o == "error").map(|(_, n)| n).sum();
        let _ = writeln!(out, "# HELP eksodus_reconcile_errors_total Reconciles that failed and were requeued.");
        let _ = writeln!(out, "# TYPE eksodus_reconcile_errors_total counter");
        let _ = writeln!(out, "eksodus_reconcile_errors_total {errors}");
        let h = self.durations.lock().expect("metrics");
        let _ = writeln!(out, "# HELP eksodus_reconcile_duration_seconds Time per reconcile.");
        let _ = writeln!(out, "# TYPE eksodus_reconcile_duration_seconds histogram");
        for (b, n) in BUCKETS.iter().zip(h.counts) {
            let _ = writeln!(out, "eksodus_reconcile_duration_seconds_bucket{{le=\"{b}\"}} {n}");
        }
        let _ = writeln!(out, "eksodus_reconcile_duration_seconds_bucket{{le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(out, "eksodus_reconcile_duration_seconds_sum {}", h.sum);
        let _ = writeln!(out, "eksodus_reconcile_duration_seconds_count {}", h.count);
        drop(h);
        let _ = writeln!(out, "# HELP eksodus_aws_calls_total AWS API calls (attempts) by service and operation.");
        let _ = writeln!(out, "# TYPE eksodus_aws_calls_total counter");
        for (op, n) in self.aws_calls.snapshot() {
            let (service, operation) = op.split_once(':').unwrap_or(("unknown", &op));
            let _ = writeln!(out, "eksodus_aws_calls_total{{service=\"{service}\",operation=\"{operation}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP eksodus_leader Whether this replica holds the leader lease.");
        let _ = writeln!(out, "# TYPE eksodus_leader gauge");
        let _ = writeln!(out, "eksodus_leader {}", u8::from(self.leader.load(Ordering::Relaxed)));
        let _ = writeln!(out, "# HELP eksodus_environments Environment resources watched.");
        let _ = writeln!(out, "# TYPE eksodus_environments gauge");
        let _ = writeln!(out, "eksodus_environments {}", self.environments.load(Ordering::Relaxed));
        out
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `addr` until the returned task is aborted; the bound address
/// (for port 0) is returned.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let metrics = metrics.clone();
                    async move { Ok::<_, std::convert::Infallible>(answer(req.uri().path(), &metrics)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok((bound, task))
}

fn answer(path: &str, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, body) = match path {
        "/metrics" => (200, metrics.render()),
        "/healthz" | "/livez" => (200, "ok\n".to_string()),
        "/readyz" if metrics.is_ready() => (200, "ok\n".to_string()),
        "/readyz" => (503, "the API server has not been reached\n".to_string()),
        _ => (404, "not found\n".to_string()),
    };
    let content_type = if path == "/metrics" { "text/plain; version=0.0.4" } else { "text/plain" };
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("static response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_every_family_and_cumulative_buckets() {
        let m = Metrics::default();
        m.reconciled("Environment", "converged", Duration::from_millis(300));
        m.reconciled("Environment", "error", Duration::from_secs(20));
        m.aws_calls.record("ec2:DescribeVpcs".into());
        m.aws_calls.record("ec2:DescribeVpcs".into());
        m.set_leader(true);
        let text = m.render();
        for line in [
            "eksodus_reconciles_total{kind=\"Environment\",outcome=\"converged\"} 1",
            "eksodus_reconcile_errors_total 1",
            "eksodus_reconcile_duration_seconds_bucket{le=\"0.1\"} 0",
            "eksodus_reconcile_duration_seconds_bucket{le=\"0.5\"} 1",
            "eksodus_reconcile_duration_seconds_bucket{le=\"30\"} 2",
            "eksodus_reconcile_duration_seconds_bucket{le=\"+Inf\"} 2",
            "eksodus_reconcile_duration_seconds_count 2",
            "eksodus_aws_calls_total{service=\"ec2\",operation=\"DescribeVpcs\"} 2",
            "eksodus_leader 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert_eq!(answer("/readyz", &m).status(), 503);
        m.set_ready(true);
        assert_eq!(answer("/readyz", &m).status(), 200);
        assert_eq!(answer("/nothing", &m).status(), 404);
    }
}
