//! Step 09 — From connections to requests
//!
//! Changed since step 04 (steps 05-08 are not in it: this step builds on
//! the round robin, and leaves their random choice and TLS out to keep
//! the HTTP ideas in view):
//! - the balancer speaks HTTP instead of copying bytes: hyper parses each
//!   request a client sends and writes a new one to the backend, so the
//!   proxy can read and change the method, the path and the headers;
//! - the choice is made per *request*, not per connection: three requests
//!   on one kept-alive client connection go to 4444, 4445, 4446 in turn,
//!   and the round robin's counter is an atomic, shared by every task;
//! - it listens on 127.0.0.1:8080, the second article's port;
//! - the backend learns who the client was: the proxy appends the client
//!   to `X-Forwarded-For` and `Forwarded`, sets `X-Forwarded-Host`,
//!   `X-Forwarded-Proto` and `Via`, and drops the headers that concern
//!   one hop only and a client's `X-Real-IP`;
//! - connections to the backends are no longer one per client: a pool
//!   keeps up to 32 per backend open for 60 s, and any client's request
//!   may reuse any of them;
//! - the proxy answers for itself: a `502 Bad Gateway` naming a backend
//!   that is down, a 504 for one that takes over 60 s of its own to
//!   answer (waiting for a client's body is not the backend's time), and,
//!   for requests it does not pass on, 400
//!   (no single valid `Host`), 405 (`CONNECT`), 431 (a head over 16 KiB)
//!   and 408 (a head too slow: hyper closes such a connection without a
//!   word, so the proxy writes this one on the socket itself);
//! - it keeps HTTP's rules for a proxy: the absolute form's authority
//!   wins over `Host`, `Expect: 100-continue` is answered once, and a
//!   client that half-closes after its request still gets the answer;
//! - the log has fields (`method`, `path`, `backend`, `status`, `phase`)
//!   in a span per client connection, `conn{client=...}`.
//!
//! This is the second article's reverse proxy (Go's
//! `httputil.NewSingleHostReverseProxy` on :8080) grown a list of
//! backends. With zero arguments it balances over 4444-4446; give
//! `--backends 127.0.0.1:4444` for the article's single-host proxy.
//! Ctrl-C stops it at once, cutting the connections still open: draining
//! them first is `lb`'s job (tutorial, "lb — Timeouts, limits and
//! draining").
//!
//! ```text
//! scripts/spawn-backends.sh restart
//! cargo run --bin 09-http-proxy
//! curl -s localhost:8080/
//! curl -s localhost:8080/ localhost:8080/ localhost:8080/
//! ```

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::{Future, poll_fn};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{
    ALLOW, CONNECTION, CONTENT_TYPE, EXPECT, FORWARDED, HOST, HeaderMap,
    HeaderName, HeaderValue, VIA,
};
use hyper::http::uri::{Authority, PathAndQuery, Scheme};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use lab_common::{Error, HostPort};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{Instrument, info, info_span, warn};

/// Hands out backends in a fixed rotation, one per request.
///
/// Step 04's `RoundRobin` was owned by the accept loop, which picked once
/// per connection. Here every connection's task picks, for every request,
/// at the same time as the others: the turn counter is an atomic integer
/// that any task may advance without a lock. A backend is held as the
/// `Authority` that the requests sent to it name (`127.0.0.1:4444`),
/// checked once at start by [`backend_authority`].
#[derive(Debug)]
pub struct RoundRobin {
    backends: Vec<Authority>,
    next: AtomicUsize,
}

impl RoundRobin {
    /// Fails on an empty list: with nothing to rotate through, every
    /// request would fail.
    pub fn new(backends: Vec<Authority>) -> Result<RoundRobin, Error> {
        if backends.is_empty() {
            return Err("round robin needs at least one backend".into());
        }
        Ok(RoundRobin {
            backends,
            next: AtomicUsize::new(0),
        })
    }

    // ANCHOR: pick_backend
    /// The backend for the next request.
    pub fn pick_backend(&self) -> &Authority {
        // `fetch_add` hands each caller a different turn even when two
        // tasks ask at once. `Relaxed` is enough: the counter guards no
        // other memory. After 2^64 requests it wraps, and the rotation
        // skips a beat once.
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        &self.backends[turn % self.backends.len()]
    }
    // ANCHOR_END: pick_backend
}

// ANCHOR: hop_by_hop
/// Headers that describe one connection, not the message, and so must not
/// be passed on to the next hop (RFC 9110 §7.6.1). `Proxy-Connection` and
/// `Keep-Alive` are old but still sent by some clients. The framing
/// header `Transfer-Encoding` is one too: hyper frames each hop's body
/// itself, chunked when the length is not known in advance.
///
/// Dropping `Upgrade` means a WebSocket handshake never reaches a backend;
/// a production proxy hands an upgraded connection over to a byte relay
/// like step 02's.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];
// ANCHOR_END: hop_by_hop

/// Removes the hop-by-hop headers: the fixed list above, and every header
/// that `Connection` names (`Connection: close, x-session` makes
/// `X-Session` private to this hop).
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // Read the names in `Connection` before removing it.
    let named_in_connection: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    for name in named_in_connection {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName =
    HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName =
    HeaderName::from_static("x-forwarded-proto");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

// ANCHOR: forwarded_headers
/// Tells the backend what only the proxy knows: who the client is, and
/// which host and scheme it asked for.
///
/// `X-Forwarded-For` is a list that every proxy on the way appends to, so
/// values already there (sent by the client or an earlier proxy) are kept
/// and the client's address goes last: the last entry is the one this
/// proxy vouches for, the earlier ones are hearsay. `Forwarded` (RFC
/// 7239) is the standard form of the same list, one element per proxy
/// with the client, host and scheme that proxy saw; it is appended to the
/// same way. `X-Forwarded-Host` and `X-Forwarded-Proto` are replaced, not
/// appended: this proxy is the edge, so what a client claims there is not
/// passed on. `X-Real-IP` (one address, set by nginx-style proxies) is
/// not something this proxy sets, so a client's is dropped: a backend
/// that trusts it would trust whatever the client wrote.
///
/// `Via` names this proxy and the HTTP version it received, as RFC 9110
/// §7.6.3 asks of a gateway; it also lets a loop of proxies be spotted.
pub fn add_forwarded_headers(
    headers: &mut HeaderMap,
    client_ip: IpAddr,
    received: Version,
) {
    append_to_list(headers, X_FORWARDED_FOR, &client_ip.to_string());
    let element = forwarded_element(client_ip, headers.get(HOST));
    append_to_list(headers, FORWARDED, &element);

    match headers.get(HOST).cloned() {
        Some(host) => headers.insert(X_FORWARDED_HOST, host),
        None => headers.remove(X_FORWARDED_HOST),
    };
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    headers.remove(X_REAL_IP);

    let via = match received {
        Version::HTTP_10 => "1.0 lb-lab",
        _ => "1.1 lb-lab",
    };
    headers.append(VIA, HeaderValue::from_static(via));
}
// ANCHOR_END: forwarded_headers

/// Puts `ours` at the end of the comma-separated list `name`, joining the
/// values already there (maybe on several lines) into one.
fn append_to_list(headers: &mut HeaderMap, name: HeaderName, ours: &str) {
    let mut list = Vec::new();
    for earlier in headers.get_all(&name) {
        list.extend_from_slice(earlier.as_bytes());
        list.extend_from_slice(b", ");
    }
    list.extend_from_slice(ours.as_bytes());
    let list = HeaderValue::from_bytes(&list)
        .expect("valid header values joined by commas stay valid");
    headers.insert(name, list);
}

/// This hop's element of `Forwarded`: `for=127.0.0.1;host="a:8080";
/// proto=http`. RFC 7239 §6 writes an IPv6 client in brackets and quotes
/// (`for="[::1]"`); the host is quoted for its `:`. A host that passed
/// [`target_host`] holds no quote or backslash to escape.
fn forwarded_element(client_ip: IpAddr, host: Option<&HeaderValue>) -> String {
    let mut element = match client_ip {
        IpAddr::V4(ip) => format!("for={ip}"),
        IpAddr::V6(ip) => format!("for=\"[{ip}]\""),
    };
    if let Some(host) = host.and_then(|host| host.to_str().ok()) {
        element.push_str(&format!(";host=\"{host}\""));
    }
    element.push_str(";proto=http");
    element
}

// ANCHOR: target_host
/// The host a request is for, which the backend will see in `Host`, or
/// the reason to refuse it with a 400.
///
/// RFC 9112 §3.2: an HTTP/1.1 request must carry exactly one `Host`, and
/// it must read as `host[:port]`. A server that guessed instead (took the
/// first of two, say) could disagree with the next server on the way
/// about which site was asked for, and a cache or a filter keyed on the
/// host could be fooled. HTTP/1.0 came before `Host`, so it may lack one;
/// the pooled client then names the backend.
///
/// §3.2.2: when the target is in absolute form (`GET http://a.example/p`,
/// which clients send to a forward proxy), its authority is the host,
/// whatever `Host` says.
pub fn target_host<B>(
    request: &Request<B>,
) -> Result<Option<HeaderValue>, &'static str> {
    let mut hosts = request.headers().get_all(HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => return Err("more than one Host header"),
        (Some(host), None) if is_host_header(host.as_bytes()) => Some(host),
        (Some(_), None) => return Err("the Host header is not HOST[:PORT]"),
        (None, _) if request.version() < Version::HTTP_11 => None,
        (None, _) => return Err("an HTTP/1.1 request needs a Host header"),
    };
    // hyper has parsed the target's authority already: check it as it is.
    match request.uri().authority() {
        Some(target) if is_host_port(target) => {
            let target = HeaderValue::from_str(target.as_str())
                .expect("an authority is a valid header value");
            Ok(Some(target))
        }
        Some(_) => Err("the target's authority is not HOST[:PORT]"),
        None => Ok(host.cloned()),
    }
}
// ANCHOR_END: target_host

/// Whether a `Host` header's text is `host[:port]`: it must read as a
/// URI's authority (no space, slash or other character one cannot hold),
/// and pass [`is_host_port`].
fn is_host_header(text: &[u8]) -> bool {
    Authority::try_from(text).is_ok_and(|host| is_host_port(&host))
}

/// Whether `authority` is `host[:port]`: no `user@` (RFC 9110 §4.2.4
/// forbids user info in an http URI), and a port, if any, that is a
/// number (`Authority` reports `a.example:http` as having no port at
/// all).
fn is_host_port(authority: &Authority) -> bool {
    if authority.as_str().contains('@') {
        return false;
    }
    let after_host = &authority.as_str()[authority.host().len()..];
    match after_host.strip_prefix(':') {
        Some(port) => port.is_empty() || port.parse::<u16>().is_ok(),
        None => after_host.is_empty(),
    }
}

// ANCHOR: backend_request
/// Turns the request a client sent into the one the backend gets: same
/// method, path, query and body; the hop-by-hop headers dropped; the
/// forwarded headers added.
///
/// `host` is what [`target_host`] found: usually the `Host` the client
/// sent, kept as Go's single-host proxy does (nginx, by default, sends
/// the backend's own name instead). The backend then builds links and
/// redirects with the name the client knows, and can serve several sites
/// by name behind one proxy; `X-Forwarded-Host` repeats it for backends
/// that read only that.
pub fn backend_request<B>(
    request: Request<B>,
    backend: &Authority,
    host: Option<HeaderValue>,
    client_ip: IpAddr,
) -> Request<B> {
    let (mut parts, body) = request.into_parts();
    if let Some(host) = host {
        parts.headers.insert(HOST, host);
    }
    // A client normally sends only the path (`GET /a?b HTTP/1.1`). The
    // pooled client wants an absolute URI, `http://backend/a?b`: it dials
    // and pools by that scheme and authority, and sends only the path.
    let path_and_query = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    parts.uri = Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(backend.clone())
        .path_and_query(path_and_query)
        .build()
        .expect("a scheme, an authority and a path make a URI");
    // Each hop has its own HTTP version: an HTTP/1.0 client still gets a
    // kept-alive HTTP/1.1 connection to the backend.
    let received = parts.version;
    parts.version = Version::HTTP_11;
    remove_hop_by_hop(&mut parts.headers);
    // `Expect: 100-continue` asks "may I send the body?". hyper has
    // answered it already, with `100 Continue` as soon as the body is
    // read, so the backend must not be asked again.
    parts.headers.remove(EXPECT);
    add_forwarded_headers(&mut parts.headers, client_ip, received);
    Request::from_parts(parts, body)
}
// ANCHOR_END: backend_request

/// A response body of either kind the proxy sends: the backend's,
/// streamed through as it arrives, or a short one of its own (a 400,
/// 405, 502 or 504).
/// Boxing erases the difference, so one handler can return both.
type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// What every connection's task shares.
struct Proxy {
    round_robin: RoundRobin,
    /// hyper-util's pooled client: it keeps connections to the backends
    /// open after a response and hands them to the next request for the
    /// same backend, from any client. The request body it sends is the
    /// client's, passed through without being collected, in an [`Upload`]
    /// that says when it has all gone.
    backend_pool: Client<HttpConnector, Upload>,
    /// See [`Config`].
    header_timeout: Duration,
    response_timeout: Duration,
}

/// What `run` needs besides the listener and the shutdown signal.
#[derive(Clone, Debug)]
pub struct Config {
    /// Used in turn, one per request.
    pub backends: Vec<HostPort>,
    /// How long a client may take to send a request's head. A head begun
    /// and not finished in time gets a 408; a kept-alive connection on
    /// which no new request has begun is closed without a word.
    pub header_timeout: Duration,
    /// How long a backend may take to start its answer (the status line
    /// and headers) before the client gets a 504. The clock runs from the
    /// request's start, dialling included, and stops while the proxy
    /// waits for the client's body: that time is the client's, not the
    /// backend's. The response's body then streams for as long as it
    /// takes.
    pub response_timeout: Duration,
    /// How many idle connections the pool keeps per backend: after a
    /// burst, the connections beyond these close as their answers end.
    pub pool_max_idle_per_backend: usize,
    /// How long a pooled connection may sit unused before it is closed.
    pub pool_idle_timeout: Duration,
}

impl Config {
    /// `backends` with the binary's default limits: 30 s for a request
    /// head (hyper's default), 60 s for a backend to start answering (as
    /// nginx's `proxy_read_timeout`); 32 idle connections per backend
    /// (the lab's benchmark keeps 32 requests in flight, and never has to
    /// reconnect), each for 60 s (nginx's upstream `keepalive_timeout`).
    pub fn new(backends: Vec<HostPort>) -> Config {
        Config {
            backends,
            header_timeout: Duration::from_secs(30),
            response_timeout: Duration::from_secs(60),
            pool_max_idle_per_backend: 32,
            pool_idle_timeout: Duration::from_secs(60),
        }
    }
}

// ANCHOR: run
/// Accepts clients until `shutdown` completes, and serves each one's
/// requests by forwarding every request to the next backend in turn.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    // Each backend is checked once, here, not at every request.
    let backends: Vec<Authority> = config
        .backends
        .iter()
        .map(backend_authority)
        .collect::<Result<_, _>>()?;
    let round_robin = RoundRobin::new(backends)?;
    let mut connector = HttpConnector::new();
    // As in step 04's dial: small messages leave at once.
    connector.set_nodelay(true);
    let backend_pool = Client::builder(TokioExecutor::new())
        // Without a bound, a burst of clients leaves as many idle
        // connections to each backend, and each holds a socket at both
        // ends until it times out.
        .pool_max_idle_per_host(config.pool_max_idle_per_backend)
        // Close pooled connections nobody used for a while; the timer is
        // what lets the pool notice time passing.
        .pool_idle_timeout(config.pool_idle_timeout)
        .pool_timer(TokioTimer::new())
        .build(connector);
    let proxy = Arc::new(Proxy {
        round_robin,
        backend_pool,
        header_timeout: config.header_timeout,
        response_timeout: config.response_timeout,
    });
    // ANCHOR_END: run

    tokio::pin!(shutdown);
    loop {
        let (client, client_addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            // Ctrl-C: `run` returns, then `main`, and the runtime drops
            // every connection's task, cutting the requests in flight.
            // `lb` drains them first («lb — Timeouts, limits and
            // draining»); a lesson step just stops.
            () = &mut shutdown => return Ok(()),
        };
        // No pick here: the connection is not tied to a backend any more.
        // What is logged while serving it names this client: the span's
        // `client` field goes with every line (`client A: ...`).
        let span = info_span!("conn", client = %client_addr);
        let serving = serve_client(Arc::clone(&proxy), client, client_addr);
        tokio::spawn(serving.instrument(span));
    }
}

/// `backend` as the URIs sent to it name it. A `HostPort` takes any text
/// as its host, and a URI's authority does not (`a/b:80` is a path, and
/// `u@h:80` carries a user), so a backend is checked once, at start,
/// rather than failing every request sent to it.
pub fn backend_authority(backend: &HostPort) -> Result<Authority, String> {
    match Authority::try_from(backend.to_string()) {
        Ok(authority) if is_host_port(&authority) => Ok(authority),
        _ => Err(format!(
            "backend `{backend}`: `{}` is not a host name or address",
            backend.host()
        )),
    }
}

/// The largest request head (request line and headers) the proxy reads:
/// 16 KiB, HAProxy's default for a whole head. Past it the client gets
/// `431 Request Header Fields Too Large` and the connection closes, as
/// soon as the 16 KiB are in, without waiting for the end of the head.
///
/// hyper's own cap is about 400 KB, and a thousand slow clients, each
/// holding an unfinished head that size, hold 400 MB of the proxy's
/// memory. nginx allows more (lines of up to 8 KB, 32 KB in all), but
/// hyper counts the whole head, as HAProxy does, so one number says it.
/// Real heads are rarely above a few KB; the big ones carry cookies,
/// which browsers cap at 4 KB each.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

// ANCHOR: serve_client
/// Reads requests from one client connection, one after the other, and
/// answers each with what `forward` returns, until the client closes.
async fn serve_client(
    proxy: Arc<Proxy>,
    client: TcpStream,
    client_addr: SocketAddr,
) {
    let _ = client.set_nodelay(true);
    let header_timeout = proxy.header_timeout;
    // hyper is runtime-agnostic: `TokioIo` adapts tokio's socket to
    // hyper's I/O traits. `service_fn` turns an async function of a
    // request into the service hyper calls once per request.
    let service = service_fn(move |request| {
        let proxy = Arc::clone(&proxy);
        // Boxed, because polling a connection "without shutdown" (below)
        // wants a future that does not mind being moved (`Unpin`).
        Box::pin(async move {
            // Never an `Err`, which would make hyper close the connection:
            // a failed backend is answered with a 502 instead.
            let client_ip = client_addr.ip();
            Ok::<_, Infallible>(forward(&proxy, request, client_ip).await)
        })
    });
    let mut connection = http1::Builder::new()
        // A client may send its request and then close its sending side
        // (a half-close: "that is all I have to say"). The request is
        // whole and deserves its answer, but hyper, by default, drops
        // the connection as soon as it reads that end.
        .half_close(true)
        .max_header_size(MAX_HEAD_BYTES)
        // The timer lets hyper limit the wait for a request's head, so a
        // client that connects and says nothing is let go.
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(client), service);
    // Polled "without shutdown": when hyper gives up on a late head, the
    // socket is still ours to answer on (see `answer_late_head`).
    let served = poll_fn(|cx| connection.poll_without_shutdown(cx)).await;
    // ANCHOR_END: serve_client
    let parts = connection.into_parts();
    let mut client = parts.io.into_inner();
    match served {
        Ok(()) => {}
        Err(err) if err.is_timeout() => {
            answer_late_head(&mut client, &parts.read_buf).await;
        }
        Err(err) => {
            let error = &err as &(dyn StdError + 'static);
            warn!(error, "client connection failed");
        }
    }
    // What hyper does when it is done with a connection: say so (FIN).
    let _ = client.shutdown().await;
}

// ANCHOR: answer_late_head
/// hyper gives up on a request head that does not arrive in time by
/// closing the connection without a word. If part of a head had come, a
/// client is waiting for an answer: it gets `408 Request Timeout` (RFC
/// 9110 §15.5.9). A kept-alive connection on which no new request had
/// begun is closed quietly: a 408 there would answer a request never
/// sent, and a client sending one just then would take it as the answer.
async fn answer_late_head(client: &mut TcpStream, unread: &[u8]) {
    if unread.is_empty() {
        return;
    }
    info!(status = 408, "request head too slow");
    let text = "408 Request Timeout: the request's head came too slowly\n";
    let answer = format!(
        "HTTP/1.1 408 Request Timeout\r\nconnection: close\r\n\
         content-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\n\r\n{text}",
        text.len()
    );
    let _ = client.write_all(answer.as_bytes()).await;
}
// ANCHOR_END: answer_late_head

// ANCHOR: forward
/// Sends one client request to the next backend and returns its
/// response: or a 502 if the backend cannot be reached or fails before
/// answering, a 504 if it does not start answering in time, and the
/// proxy's own 400 or 405 for a request it does not pass on.
async fn forward(
    proxy: &Proxy,
    request: Request<Incoming>,
    client_ip: IpAddr,
) -> Response<ProxyBody> {
    let method = request.method().clone();
    // The path alone is logged: a query string may carry secrets.
    let path = request.uri().path().to_owned();
    // Whether the client is sending a body: if the proxy answers without
    // reading it, the connection must close.
    let sends_body = !request.body().is_end_stream();
    if method == Method::CONNECT {
        // Its target is `host:port`, with no path: log it whole.
        info!(%method, target = %request.uri(), status = 405, "refused");
        return refuse_connect();
    }
    let host = match target_host(&request) {
        Ok(host) => host,
        Err(reason) => {
            info!(%method, %path, status = 400, reason, "refused");
            return own_answer(StatusCode::BAD_REQUEST, reason, sends_body);
        }
    };
    let backend = proxy.round_robin.pick_backend();
    let (request, client_turn) = Upload::of(request);
    let outgoing = backend_request(request, backend, host, client_ip);
    // ANCHOR_END: forward
    let waiting = proxy.backend_pool.request(outgoing);
    let limit = proxy.response_timeout;
    match answer_within(limit, client_turn, waiting).await {
        Some(Ok(response)) => {
            let status = response.status().as_u16();
            info!(%method, %path, %backend, status, "forwarded");
            // The body is not read here: hyper pulls it from the
            // backend only as fast as the client takes it, so a large
            // body streams through a small buffer. If the backend
            // fails in the middle of it, the status line has already
            // gone: hyper can only cut the client's connection.
            let (mut parts, body) = response.into_parts();
            remove_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, body.boxed())
        }
        // Refused, reset, or closed before a status line came back.
        // The request is not retried on another backend: it may have
        // been half-processed. A production proxy retries what is
        // safe to repeat (a GET that never reached the backend).
        Some(Err(err)) => {
            // hyper's errors say what failed ("client error (Connect)")
            // and keep why in their `source()` ("Connection refused"):
            // given as an error, the field shows the whole chain.
            let phase = if err.is_connect() {
                "connect"
            } else {
                "response"
            };
            let error = &err as &(dyn StdError + 'static);
            warn!(
                %method, %path, %backend, %phase, error,
                "backend failed"
            );
            bad_gateway(backend, sends_body)
        }
        // Dropping the request closes its backend connection: a late
        // answer cannot reach the next request sent on it.
        None => {
            let (phase, waited) = ("response", proxy.response_timeout);
            warn!(
                %method, %path, %backend, %phase, ?waited,
                "backend too slow"
            );
            let reason = format!("backend {backend} did not answer in time");
            own_answer(StatusCode::GATEWAY_TIMEOUT, &reason, sends_body)
        }
    }
}

/// A client's request body on its way to the backend, which says whether
/// the proxy is waiting for the client's next bytes.
///
/// The response timeout is the backend's time. A backend that reads the
/// whole body before it answers (a form, a JSON document) cannot start
/// until the client has sent it, so a client that uploads slowly must
/// not get a 504 that blames the backend; but a backend that stops
/// reading a body halfway must still get one. So the clock stops while
/// the body waits for the client, and runs otherwise (see
/// [`answer_within`]).
struct Upload {
    body: Incoming,
    /// `true` while the body's next bytes are awaited from the client.
    waiting_for_client: watch::Sender<bool>,
}

impl Upload {
    /// `request` with its body wrapped, and what says when the proxy is
    /// waiting for the client.
    fn of(
        request: Request<Incoming>,
    ) -> (Request<Upload>, watch::Receiver<bool>) {
        let (waiting_for_client, client_turn) = watch::channel(false);
        let (parts, body) = request.into_parts();
        let upload = Upload {
            body,
            waiting_for_client,
        };
        (Request::from_parts(parts, upload), client_turn)
    }
}

// ANCHOR: upload
impl Body for Upload {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = Pin::new(&mut self.body).poll_frame(cx);
        // Only a change is sent, so a steady upload wakes no one.
        let waiting = frame.is_pending();
        self.waiting_for_client
            .send_if_modified(|was| std::mem::replace(was, waiting) != waiting);
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Waits for the backend's `answer`, giving it `limit` of its own time:
/// the clock stops while the proxy waits for the client's body
/// (`client_turn`) and runs the rest of the time, dialling included.
/// `None` if the backend's time ran out.
async fn answer_within<F: Future>(
    limit: Duration,
    mut client_turn: watch::Receiver<bool>,
    answer: F,
) -> Option<F::Output> {
    tokio::pin!(answer);
    let mut left = limit;
    loop {
        let clock_stopped = *client_turn.borrow_and_update();
        let started = Instant::now();
        tokio::select! {
            answered = &mut answer => return Some(answered),
            () = tokio::time::sleep(left), if !clock_stopped => return None,
            changed = client_turn.changed() => {
                if !clock_stopped {
                    left = left.saturating_sub(started.elapsed());
                }
                if changed.is_err() {
                    // hyper has dropped the body: nothing more comes
                    // from the client, and the rest is the backend's.
                    return tokio::time::timeout(left, answer).await.ok();
                }
            }
        }
    }
}
// ANCHOR_END: upload

// ANCHOR: own_answer
/// An answer the proxy writes itself: the status and one line of text
/// saying why. For a failed backend it is a 502 naming the backend; the
/// error itself goes to the log only (a public proxy would keep even the
/// backend's address to its log).
///
/// The client's connection stays open for its next request, unless the
/// request carried a body the proxy did not read. The rest of it may
/// still be on the way: hyper keeps the connection only if all of it has
/// already arrived, and otherwise closes it without a word. We cannot
/// tell which, so we close it ourselves and say so with `Connection:
/// close`: the client then does not send its next request down a
/// connection that is about to go.
fn own_answer(
    status: StatusCode,
    reason: &str,
    close_connection: bool,
) -> Response<ProxyBody> {
    let text = format!("{status}: {reason}\n");
    // `Full` is a body that is one chunk, already in memory. It cannot
    // fail (`Infallible`); `map_err` gives it the proxied body's error
    // type so both box to the same `ProxyBody`.
    let body = Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if close_connection {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
// ANCHOR_END: own_answer

/// The answer to `CONNECT host:port`, which asks for a tunnel to any
/// address: a forward proxy's job. A reverse proxy opens none, or anyone
/// could reach whatever sits behind it. RFC 9110 §15.5.6: a 405 lists in
/// `Allow` the methods that are accepted, here every other one. The
/// connection closes: a client may send the tunnel's first bytes right
/// after its CONNECT, and they are not a request.
fn refuse_connect() -> Response<ProxyBody> {
    let status = StatusCode::METHOD_NOT_ALLOWED;
    let mut response = own_answer(status, "this proxy opens no tunnels", true);
    let allowed = "GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH";
    let allowed = HeaderValue::from_static(allowed);
    response.headers_mut().insert(ALLOW, allowed);
    response
}

/// The 502 for a backend that failed before answering.
fn bad_gateway(
    backend: &Authority,
    close_connection: bool,
) -> Response<ProxyBody> {
    let reason = format!("backend {backend} failed");
    own_answer(StatusCode::BAD_GATEWAY, &reason, close_connection)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends(ports: &[u16]) -> Vec<Authority> {
        ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}").parse().unwrap())
            .collect()
    }

    fn port_of(backend: &Authority) -> u16 {
        backend.port_u16().expect("a backend has a port")
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::try_from(*name).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    fn values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
        headers
            .get_all(name)
            .iter()
            .map(|value| value.to_str().unwrap())
            .collect()
    }

    const LOCALHOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn picks_backends_in_turn_and_wraps_around() {
        let round_robin =
            RoundRobin::new(backends(&[4444, 4445, 4446])).unwrap();
        let ports: Vec<u16> = (0..7)
            .map(|_| port_of(round_robin.pick_backend()))
            .collect();
        assert_eq!(ports, [4444, 4445, 4446, 4444, 4445, 4446, 4444]);
    }

    #[test]
    fn threads_picking_at_once_share_the_turns_evenly() {
        let round_robin =
            RoundRobin::new(backends(&[4444, 4445, 4446])).unwrap();
        let mut counts = [0usize; 3];
        std::thread::scope(|scope| {
            let pickers: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        (0..300)
                            .map(|_| port_of(round_robin.pick_backend()))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for picker in pickers {
                for port in picker.join().unwrap() {
                    counts[usize::from(port - 4444)] += 1;
                }
            }
        });
        assert_eq!(counts, [400, 400, 400]);
    }

    #[test]
    fn refuses_an_empty_list() {
        assert!(RoundRobin::new(Vec::new()).is_err());
    }

    #[test]
    fn drops_the_fixed_hop_by_hop_headers() {
        let mut headers = headers(&[
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic c2VjcmV0"),
            ("proxy-authenticate", "Basic"),
            ("accept", "*/*"),
            ("authorization", "Bearer kept"),
        ]);
        remove_hop_by_hop(&mut headers);
        // A `HeaderMap` does not keep the order of its names.
        let mut left: Vec<&str> =
            headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "authorization"]);
    }

    #[test]
    fn drops_the_headers_that_connection_names() {
        let mut headers = headers(&[
            ("connection", "close, X-Secret"),
            ("connection", " x-other ,"),
            ("x-secret", "1"),
            ("x-other", "2"),
            ("x-kept", "3"),
        ]);
        remove_hop_by_hop(&mut headers);
        let left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["x-kept"]);
    }

    #[test]
    fn appends_the_client_to_x_forwarded_for() {
        let mut alone = headers(&[("host", "localhost:8080")]);
        add_forwarded_headers(&mut alone, LOCALHOST, Version::HTTP_11);
        assert_eq!(values(&alone, "x-forwarded-for"), ["127.0.0.1"]);

        let mut behind = headers(&[
            ("x-forwarded-for", "203.0.113.7, 198.51.100.1"),
            ("x-forwarded-for", "192.0.2.9"),
        ]);
        let ipv6 = "::1".parse().unwrap();
        add_forwarded_headers(&mut behind, ipv6, Version::HTTP_11);
        assert_eq!(
            values(&behind, "x-forwarded-for"),
            ["203.0.113.7, 198.51.100.1, 192.0.2.9, ::1"]
        );
    }

    #[test]
    fn appends_this_hop_to_forwarded_and_quotes_an_ipv6_client() {
        let mut alone = headers(&[("host", "localhost:8080")]);
        add_forwarded_headers(&mut alone, LOCALHOST, Version::HTTP_11);
        assert_eq!(
            values(&alone, "forwarded"),
            ["for=127.0.0.1;host=\"localhost:8080\";proto=http"]
        );

        let mut behind = headers(&[
            ("host", "[::1]:8080"),
            ("forwarded", "for=192.0.2.9;proto=https"),
            ("x-real-ip", "192.0.2.9"),
        ]);
        let ipv6 = "::1".parse().unwrap();
        add_forwarded_headers(&mut behind, ipv6, Version::HTTP_11);
        assert_eq!(
            values(&behind, "forwarded"),
            ["for=192.0.2.9;proto=https, \
              for=\"[::1]\";host=\"[::1]:8080\";proto=http"]
        );
        assert!(behind.get("x-real-ip").is_none());

        let mut no_host = HeaderMap::new();
        add_forwarded_headers(&mut no_host, LOCALHOST, Version::HTTP_10);
        assert_eq!(values(&no_host, "forwarded"), ["for=127.0.0.1;proto=http"]);
    }

    #[test]
    fn sets_forwarded_host_proto_and_via_over_what_the_client_claimed() {
        let mut headers = headers(&[
            ("host", "shop.example:8080"),
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-proto", "https"),
            ("via", "1.1 edge"),
        ]);
        add_forwarded_headers(&mut headers, LOCALHOST, Version::HTTP_10);
        assert_eq!(values(&headers, "x-forwarded-host"), ["shop.example:8080"]);
        assert_eq!(values(&headers, "x-forwarded-proto"), ["http"]);
        assert_eq!(values(&headers, "via"), ["1.1 edge", "1.0 lb-lab"]);
        assert_eq!(values(&headers, "host"), ["shop.example:8080"]);

        let mut no_host = self::headers(&[("x-forwarded-host", "x")]);
        add_forwarded_headers(&mut no_host, LOCALHOST, Version::HTTP_11);
        assert!(no_host.get("x-forwarded-host").is_none());
    }

    #[test]
    fn the_backend_request_keeps_method_path_query_host_and_body() {
        let request = Request::builder()
            .method("PUT")
            .uri("/items/7?color=red&size=2")
            .version(Version::HTTP_10)
            .header("host", "localhost:8080")
            .header("connection", "keep-alive, x-hop")
            .header("x-hop", "1")
            .header("x-end-to-end", "2")
            .header("expect", "100-continue")
            .body("the body")
            .unwrap();
        let backend = "127.0.0.1:4445".parse().unwrap();
        let host = target_host(&request).unwrap();
        let outgoing = backend_request(request, &backend, host, LOCALHOST);
        assert_eq!(outgoing.method(), "PUT");
        assert_eq!(
            outgoing.uri().to_string(),
            "http://127.0.0.1:4445/items/7?color=red&size=2"
        );
        assert_eq!(outgoing.version(), Version::HTTP_11);
        let headers = outgoing.headers();
        assert_eq!(values(headers, "host"), ["localhost:8080"]);
        assert_eq!(values(headers, "x-end-to-end"), ["2"]);
        assert!(headers.get("x-hop").is_none());
        assert!(headers.get("connection").is_none());
        assert!(headers.get("expect").is_none());
        assert_eq!(values(headers, "x-forwarded-for"), ["127.0.0.1"]);
        assert_eq!(*outgoing.body(), "the body");
    }

    #[test]
    fn an_absolute_request_uri_is_sent_to_the_backend_as_a_path() {
        let request = Request::builder()
            .uri("http://elsewhere.example/a?b=c")
            .header("host", "other.example")
            .body(())
            .unwrap();
        let backend = "[::1]:4444".parse().unwrap();
        let host = target_host(&request).unwrap();
        let outgoing = backend_request(request, &backend, host, LOCALHOST);
        assert_eq!(outgoing.uri().to_string(), "http://[::1]:4444/a?b=c");
        assert_eq!(values(outgoing.headers(), "host"), ["elsewhere.example"]);
    }

    fn host_of(
        version: Version,
        uri: &str,
        hosts: &[&str],
    ) -> Result<Option<String>, &'static str> {
        let mut request = Request::builder().version(version).uri(uri);
        for host in hosts {
            request = request.header("host", *host);
        }
        let host = target_host(&request.body(()).unwrap())?;
        Ok(host.map(|host| host.to_str().unwrap().to_owned()))
    }

    #[test]
    fn the_host_is_one_authority_and_the_absolute_form_wins() {
        let v11 = Version::HTTP_11;
        let host = |hosts: &[&str]| host_of(v11, "/", hosts);
        assert_eq!(host(&["a.example"]), Ok(Some("a.example".into())));
        assert_eq!(host(&["[::1]:8080"]), Ok(Some("[::1]:8080".into())));
        assert_eq!(host(&["a.example:"]), Ok(Some("a.example:".into())));
        for bad in ["", "a b", "u@a.example", "a/b", "a.example:99999"] {
            assert!(host(&[bad]).is_err(), "{bad:?} was accepted");
        }
        assert!(host(&["a.example", "a.example"]).is_err());
        assert!(host(&[]).is_err());
        assert_eq!(host_of(Version::HTTP_10, "/", &[]), Ok(None));

        let absolute = host_of(v11, "http://a.example:81/p", &["b.example"]);
        assert_eq!(absolute, Ok(Some("a.example:81".into())));
        assert!(host_of(v11, "http://u@a.example/", &["a.example"]).is_err());
    }

    #[test]
    fn a_backend_is_an_authority_a_uri_can_hold() {
        let authority = |text: &str| {
            let backend: HostPort = text.parse().unwrap();
            backend_authority(&backend).map(|found| found.to_string())
        };
        assert_eq!(authority("localhost:4444"), Ok("localhost:4444".into()));
        assert_eq!(authority("[::1]:4444"), Ok("[::1]:4444".into()));
        for bad in ["a/b:80", "u@h:80", "a?b:80", "a%:80"] {
            let refused = authority(bad).expect_err(bad);
            assert!(refused.contains(bad), "{refused}");
        }
    }

    #[test]
    fn a_bad_gateway_names_the_backend() {
        let backend = "127.0.0.1:4446".parse().unwrap();
        let response = bad_gateway(&backend, false);
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        assert!(response.headers().get(CONNECTION).is_none());
        let body = text_of(response.into_body());
        assert_eq!(body, "502 Bad Gateway: backend 127.0.0.1:4446 failed\n");

        let after_a_body = bad_gateway(&backend, true);
        assert_eq!(after_a_body.headers()[CONNECTION], "close");
    }

    /// Collects a body that is already complete (no I/O is pending).
    fn text_of(body: ProxyBody) -> String {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bytes = runtime.block_on(body.collect()).unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }
}
