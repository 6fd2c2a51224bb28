//! A fault-injecting proxy in front of a Kubernetes API server (the fake or a real one), over plain HTTP on
//! loopback. Requests go upstream through a kube-rs client of the upstream, so TLS and the bearer token are the
//! upstream client's business and the proxy works the same in front of either server.
//!
//! Faults, as a busy or failing API server produces them:
//! - 429 `TooManyRequests` with `Retry-After` and `retryAfterSeconds` (API priority and fairness);
//! - 5xx, before the server saw the request or after it acted on it;
//! - a dropped connection before the request got through, or after the server acted (a lost response);
//! - watch streams cut after a while.
//!
//! Draws are deterministic: they depend on the seed, the method, the path and query, the body, and how many
//! times that exact request was seen, so a retried request gets a fresh draw and a seed replays the same faults.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::Error;

/// What to inject; rates are probabilities per request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KubeFaults {
    /// Seed of the draws.
    pub seed: u64,
    /// 429 with `Retry-After: 1`.
    pub throttle_rate: f64,
    /// 5xx (half before the server saw the request, half after it acted).
    pub server_error_rate: f64,
    /// Connection dropped before the request got through.
    pub drop_rate: f64,
    /// Connection dropped after the server acted (the answer is lost).
    pub lost_response_rate: f64,
    /// Watch streams are cut after this long.
    pub cut_watches_after: Option<Duration>,
}

/// Counts of what the proxy saw and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeProxyStats {
    /// Requests received.
    pub requests: u64,
    /// Faults injected.
    pub faults: u64,
    /// Watch streams cut.
    pub cut_watches: u64,
}

struct State {
    upstream: kube::Client,
    faults: Mutex<KubeFaults>,
    seen: Mutex<HashMap<u64, u64>>,
    requests: AtomicU64,
    faults_done: AtomicU64,
    cut: AtomicU64,
}

/// A running proxy; stops when dropped.
pub struct KubeProxy {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for KubeProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeProxy").field("addr", &self.addr).finish()
    }
}

type Body = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed_unsync()
}

/// The Status the API server sends when API priority and fairness rejects a request.
fn too_many() -> Response<Body> {
    let body = serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "Too many requests, please try again later.", "reason": "TooManyRequests",
        "details": {"retryAfterSeconds": 1}, "code": 429});
    Response::builder()
        .status(StatusCode::TOO_MANY_REQUESTS)
        .header("content-type", "application/json")
        .header("retry-after", "1")
        .body(full(body.to_string()))
        .expect("response")
}

fn server_error() -> Response<Body> {
    let body = serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "the server is currently unable to handle the request", "reason": "ServiceUnavailable", "code": 503});
    Response::builder()
        .status(StatusCode::SERVICE_UNAVAILABLE)
        .header("content-type", "application/json")
        .body(full(body.to_string()))
        .expect("response")
}

/// The connection is dropped: the service returns an error and hyper closes it without an answer.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the fault proxy")
    }
}

impl std::error::Error for Dropped {}

fn fnv(bytes: &[u8], mut h: u64) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

enum Planned {
    None,
    Throttle,
    ErrorBefore,
    ErrorAfter,
    DropBefore,
    LoseAfter,
}

impl KubeProxy {
    /// Starts a proxy on 127.0.0.1 in front of the server `upstream` talks to.
    pub async fn start(upstream: kube::Client, faults: KubeFaults) -> Result<KubeProxy, Error> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| Error::Io { what: "binding the Kubernetes fault proxy".into(), source: e })?;
        let addr = listener.local_addr().map_err(|e| Error::Io { what: "proxy address".into(), source: e })?;
        let state = Arc::new(State {
            upstream,
            faults: Mutex::new(faults),
            seen: Mutex::default(),
            requests: AtomicU64::new(0),
            faults_done: AtomicU64::new(0),
            cut: AtomicU64::new(0),
        });
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let st = st.clone();
                        async move { st.handle(req).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(KubeProxy { addr, state, task })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube client that goes through the proxy.
    pub fn client(&self) -> Result<kube::Client, Error> {
        let url = self.url().parse().map_err(|e| Error::Install(format!("proxy URL: {e}")))?;
        kube::Client::try_from(kube::Config::new(url)).map_err(|e| Error::Install(format!("kube client: {e}")))
    }

    /// Changes the faults from now on.
    pub fn set_faults(&self, f: KubeFaults) {
        *self.state.faults.lock().expect("faults") = f;
    }

    /// What the proxy saw and did.
    pub fn stats(&self) -> KubeProxyStats {
        KubeProxyStats {
            requests: self.state.requests.load(Ordering::SeqCst),
            faults: self.state.faults_done.load(Ordering::SeqCst),
            cut_watches: self.state.cut.load(Ordering::SeqCst),
        }
    }
}

impl Drop for KubeProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl State {
    async fn handle(&self, req: Request<Incoming>) -> Result<Response<Body>, Dropped> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let (parts, body) = req.into_parts();
        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let f = self.faults.lock().expect("faults").clone();
        let path_q = parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
        let watch = path_q.contains("watch=true") || path_q.contains("watch=1");
        let planned = {
            let mut h = fnv(&f.seed.to_le_bytes(), 0xcbf2_9ce4_8422_2325);
            h = fnv(parts.method.as_str().as_bytes(), h);
            h = fnv(path_q.as_bytes(), h);
            h = fnv(&body, h);
            let n = {
                let mut seen = self.seen.lock().expect("seen");
                let n = seen.entry(h).or_insert(0);
                *n += 1;
                *n
            };
            let mut rng = ChaCha8Rng::seed_from_u64(fnv(&n.to_le_bytes(), h));
            let (draw, before): (f64, bool) = (rng.gen(), rng.gen_bool(0.5));
            let t = f.throttle_rate;
            let s = t + f.server_error_rate;
            let d = s + f.drop_rate;
            let l = d + f.lost_response_rate;
            if draw < t {
                Planned::Throttle
            } else if draw < s {
                if before {
                    Planned::ErrorBefore
                } else {
                    Planned::ErrorAfter
                }
            } else if draw < d {
                Planned::DropBefore
            } else if draw < l {
                Planned::LoseAfter
            } else {
                Planned::None
            }
        };
        if !matches!(planned, Planned::None) {
            self.faults_done.fetch_add(1, Ordering::SeqCst);
        }
        match planned {
            Planned::Throttle => return Ok(too_many()),
            Planned::ErrorBefore => return Ok(server_error()),
            Planned::DropBefore => return Err(Dropped),
            _ => {}
        }
        let mut up = http::Request::builder().method(parts.method.clone()).uri(parts.uri.clone());
        for (k, v) in &parts.headers {
            if k != http::header::HOST && k != http::header::AUTHORIZATION {
                up = up.header(k, v);
            }
        }
        let up = up.body(kube::client::Body::from(body.to_vec())).map_err(|_| Dropped)?;
        let resp = self.upstream.send(up).await.map_err(|_| Dropped)?;
        match planned {
            Planned::ErrorAfter => return Ok(server_error()),
            Planned::LoseAfter => return Err(Dropped),
            _ => {}
        }
        let (rparts, rbody) = resp.into_parts();
        let body: Body = if let (true, Some(after)) = (watch, f.cut_watches_after) {
            // a watch stream that breaks off after a while, as load balancers and restarts do to them
            let cut = &self.cut;
            cut.fetch_add(1, Ordering::SeqCst);
            let stream = futures::stream::unfold(
                (rbody, tokio::time::Instant::now() + after),
                |(mut b, deadline)| async move {
                    tokio::select! {
                        frame = b.frame() => match frame {
                            Some(Ok(fr)) => Some((fr.into_data().map(Frame::data).map_err(|_| "non-data frame".into()), (b, deadline))),
                            Some(Err(e)) => Some((Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>), (b, deadline))),
                            None => None,
                        },
                        _ = tokio::time::sleep_until(deadline) => {
                            Some((Err("watch stream cut by the fault proxy".into()), (b, deadline)))
                        }
                    }
                },
            );
            BodyExt::boxed_unsync(StreamBody::new(stream))
        } else {
            let bytes = rbody.collect_bytes().await.map_err(|_| Dropped)?;
            full(bytes)
        };
        let mut out = Response::builder().status(rparts.status);
        for (k, v) in &rparts.headers {
            if k != http::header::CONTENT_LENGTH && k != http::header::TRANSFER_ENCODING {
                out = out.header(k, v);
            }
        }
        out.body(body).map_err(|_| Dropped)
    }
}
