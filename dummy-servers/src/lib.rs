//! The lab's backends: small axum servers that say who they are, count
//! their calls and echo what they received.
//!
//! Every answer starts with one line naming the backend, its address and
//! the number of this call, then the request line and the headers exactly
//! as they arrived, so a learner can see what a balancer changed on the
//! way (nothing, at layer 4; `x-forwarded-for` and friends, at layer 7):
//!
//! ```text
//! backend-4444 at 127.0.0.1:4444, call #3
//! GET / HTTP/1.1
//! host: localhost:3000
//! user-agent: curl/8.14.1
//! accept: */*
//! ```
//!
//! Ask for JSON (`?format=json` or `Accept: application/json`) to get the
//! same facts as an [`Echo`] object. Other routes, for tests and
//! experiments:
//!
//! | route | answer |
//! |---|---|
//! | `GET /health` | `ok` (not counted as a call); `503` in fault mode `unhealthy` |
//! | `GET /bytes/{n}` | `n` deterministic bytes ([`lab_common::pattern`]), streamed |
//! | `POST /echo` | the request body, streamed back as it arrives |
//! | `GET /delay/{ms}` | the usual echo, after `ms` milliseconds |
//! | `POST /fault/{mode}` | sets the fault mode: `none`, `unhealthy`, `stall`, `slow/{ms}`, `close` ([`Fault`]) |
//! | `GET /fault` | the fault mode, e.g. `none` |
//! | anything else | the echo above |
//!
//! A backend in a fault mode other than `none` misbehaves on purpose, so
//! a balancer's health checks and failover can be watched at work: see
//! [`Fault`]. The `/fault` routes are answered whatever the mode.
//!
//! A backend serves plain HTTP ([`serve`]) or HTTPS ([`serve_tls`], with
//! the lab certificate); a TLS backend says so in its first line:
//! `backend-4445 at 127.0.0.1:4445 over TLS, call #1`. A backend may
//! expect a PROXY header (v1 or v2) at the start of every connection,
//! before TLS too ([`serve_proxied`]), as a server behind HAProxy's
//! `send-proxy` or `lb`'s `send_proxy` does; its answers then show the
//! client the header named, in a line after the first:
//! `PROXY v2: client 127.0.0.2:41234, to 127.0.0.1:3000`
//! (`curl --haproxy-protocol` sends a v1 header). A client that
//! sends its request and then shuts down its write side (half-close)
//! still gets its answer.
//!
//! With the `testing` feature, the `testing` module starts backends inside
//! a test.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::stream;
use lab_common::pattern;
use lab_common::proxy_protocol::{self, ReceivedHeader};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

mod fault;
mod serve;
#[cfg(feature = "testing")]
pub mod testing;

pub use fault::Fault;
pub use serve::{
    OpeningListener, ProxiedPeer, serve, serve_proxied, serve_tls,
};

/// The largest body `/bytes/{n}` will stream: 16 GiB is plenty for any
/// experiment and keeps a typo from streaming forever.
pub const MAX_BYTES: u64 = 16 << 30;

/// The longest `/delay/{ms}` and fault mode `slow/{ms}` will wait: ten
/// minutes.
pub const MAX_DELAY_MS: u64 = 600_000;

/// One backend's identity, call counter and fault mode, shared by its
/// handlers.
#[derive(Debug)]
pub struct Backend {
    name: String,
    addr: SocketAddr,
    tls: bool,
    calls: AtomicU64,
    /// A watch channel rather than a plain lock: stalled requests wait
    /// for the mode to change.
    fault: watch::Sender<Fault>,
}

impl Backend {
    /// A backend named after its port, `backend-4444`, as the article's
    /// servers are told apart by port.
    pub fn new(addr: SocketAddr) -> Arc<Backend> {
        Backend::serving(addr, false)
    }

    /// The same, for a backend that serves over TLS.
    pub fn new_tls(addr: SocketAddr) -> Arc<Backend> {
        Backend::serving(addr, true)
    }

    fn serving(addr: SocketAddr, tls: bool) -> Arc<Backend> {
        Arc::new(Backend {
            name: format!("backend-{}", addr.port()),
            addr,
            tls,
            calls: AtomicU64::new(0),
            fault: watch::Sender::new(Fault::None),
        })
    }

    /// `backend-4444`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current fault mode.
    pub fn fault(&self) -> Fault {
        *self.fault.borrow()
    }

    /// Sets the fault mode, logs the change, and returns the old mode.
    pub fn set_fault(&self, fault: Fault) -> Fault {
        let was = self.fault.send_replace(fault);
        tracing::info!(
            backend = %self.name, %fault, %was, "fault mode set"
        );
        was
    }

    fn watch_fault(&self) -> watch::Receiver<Fault> {
        self.fault.subscribe()
    }

    fn count_call(&self) -> u64 {
        self.calls.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// What a backend saw, as returned in JSON.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Echo {
    /// `backend-4444`.
    pub backend: String,
    /// The address the backend listens on.
    pub addr: String,
    /// Whether the request came over TLS.
    #[serde(default)]
    pub tls: bool,
    /// This request's number at this backend, from 1.
    pub call: u64,
    pub method: String,
    /// Path and query, as received.
    pub uri: String,
    /// `HTTP/1.1`.
    pub version: String,
    /// Headers in the order received, repeated names kept.
    pub headers: Vec<(String, String)>,
    /// On a port that expects a PROXY header: the client's address it
    /// named, `None` for one without addresses (v2 `LOCAL`, v1
    /// `UNKNOWN`) and on other ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_client: Option<String>,
    /// On such a port, what its header said in a few words:
    /// `v2: client 127.0.0.2:41234, to 127.0.0.1:3000`, or `v2 LOCAL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
}

impl Echo {
    /// The first value of header `name` (lower case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The answer as a person reads it in a terminal.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{} at {}{}, call #{}\n{} {} {}\n",
            self.backend,
            self.addr,
            if self.tls { " over TLS" } else { "" },
            self.call,
            self.method,
            self.uri,
            self.version
        );
        if let Some(proxy) = &self.proxy {
            text.insert_str(
                text.find('\n').expect("the first line ends in \\n") + 1,
                &format!("PROXY {proxy}\n"),
            );
        }
        for (name, value) in &self.headers {
            text.push_str(&format!("{name}: {value}\n"));
        }
        text
    }
}

/// The routes of one backend, served plain or over TLS.
fn router(backend: Arc<Backend>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/bytes/{n}", get(bytes))
        .route("/echo", post(echo_body))
        .route("/delay/{ms}", get(delayed_echo))
        .route("/fault", get(fault::show))
        .route("/fault/{*mode}", post(fault::set))
        .fallback(echo)
        .with_state(backend)
}

async fn health() -> &'static str {
    "ok\n"
}

async fn echo(
    State(backend): State<Arc<Backend>>,
    request: Request,
) -> Response {
    let call = backend.count_call();
    let proxy_header = request.extensions().get::<ReceivedHeader>().copied();
    let wants_json = request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|pair| pair == "format=json"))
        || request
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/json"));
    let seen = Echo {
        backend: backend.name.clone(),
        addr: backend.addr.to_string(),
        tls: backend.tls,
        call,
        method: request.method().to_string(),
        uri: request.uri().to_string(),
        version: format!("{:?}", request.version()),
        headers: header_pairs(request.headers()),
        proxy_client: proxy_header
            .and_then(|header| header.addresses)
            .map(|told| told.source.to_string()),
        proxy: proxy_header.map(describe_proxy_header),
    };
    if wants_json {
        axum::Json(seen).into_response()
    } else {
        seen.to_text().into_response()
    }
}

async fn delayed_echo(
    State(backend): State<Arc<Backend>>,
    Path(ms): Path<u64>,
    request: Request,
) -> Response {
    if ms > MAX_DELAY_MS {
        let msg = format!("delay at most {MAX_DELAY_MS} ms\n");
        return (StatusCode::BAD_REQUEST, msg).into_response();
    }
    tokio::time::sleep(Duration::from_millis(ms)).await;
    echo(State(backend), request).await
}

/// Streams `n` pattern bytes in 64 KiB chunks: the whole body is never in
/// memory, so `/bytes/1000000000` costs no more than `/bytes/10`.
async fn bytes(
    State(backend): State<Arc<Backend>>,
    Path(n): Path<u64>,
) -> Response {
    if n > MAX_BYTES {
        let msg = format!("at most {MAX_BYTES} bytes\n");
        return (StatusCode::BAD_REQUEST, msg).into_response();
    }
    backend.count_call();
    const CHUNK: u64 = 64 * 1024;
    let chunks = stream::unfold(0u64, move |offset| async move {
        if offset >= n {
            return None;
        }
        let len = CHUNK.min(n - offset);
        let chunk = Bytes::from(pattern::bytes(offset, len as usize));
        Some((Ok::<_, std::io::Error>(chunk), offset + len))
    });
    let mut response = Body::from_stream(chunks).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}

/// Streams the request body straight back, chunk by chunk.
async fn echo_body(
    State(backend): State<Arc<Backend>>,
    request: Request,
) -> Response {
    backend.count_call();
    let length = request.headers().get(header::CONTENT_LENGTH).cloned();
    let mut response =
        Body::from_stream(request.into_body().into_data_stream())
            .into_response();
    if let Some(length) = length {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, length);
    }
    response
}

/// `v2: client 127.0.0.2:41234, to 127.0.0.1:3000`; `v2 LOCAL` or `v1
/// UNKNOWN` for a header without addresses.
fn describe_proxy_header(header: ReceivedHeader) -> String {
    let version = header.version;
    match (header.addresses, version) {
        (Some(told), _) => format!(
            "{version}: client {}, to {}",
            told.source, told.destination
        ),
        (None, proxy_protocol::Version::V1) => format!("{version} UNKNOWN"),
        (None, proxy_protocol::Version::V2) => format!("{version} LOCAL"),
    }
}

fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), value)
        })
        .collect()
}
