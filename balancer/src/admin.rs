//! The admin listener (`[admin] listen`): a running `lb` seen from
//! outside and changed at run time, JSON in and out.
//!
//! Seeing inside it (what is shown is built in `status.rs`,
//! `decisions.rs` and `metrics.rs`):
//! - `GET /`: the status page, which reads `/api/stats` every second;
//! - `GET /api/stats`: the listener, every backend with its counters,
//!   the last decisions and the end codes seen;
//! - `GET /api/decisions?client=IP[:PORT]&backend=ID&limit=N`: why
//!   recent clients went where they went, newest first;
//! - `GET /api/explain?client=IP`: where a new client from IP would go
//!   now, and why;
//! - `GET /metrics`: OpenMetrics text for Prometheus.
//!
//! Changing it:
//! - `POST /api/reload`: read and check the config again, and swap it in
//!   (200 `{"changed": [...]}`, or 400 `{"error": "FILE:LINE: key: ..."}`).
//! - `GET /api/backends`: every backend with its state (`up`, `down`,
//!   `cooling_down`, `slow_start`, `draining`, `disabled`, `retiring`).
//! - `POST /api/backends/{id}/drain`, `/disable`, `/enable`, and
//!   `PUT /api/backends/{id}/weight` with a bare number as the body.
//!
//! An unknown path is a 404, a known one with another method a 405, a
//! bad parameter a 400 that states the rule, all as `{"error": ...}`.
//!
//! Off loopback it needs a token (`token_file`): every request but the
//! page itself (which holds no data) carries `Authorization: Bearer
//! TOKEN`, or gets a 401; the page takes the token from its address's
//! fragment (`/#token=TOKEN`, which a browser never sends) and sends
//! it as that header. Requests that change
//! state must name the admin address itself in `Host` and, if they carry
//! an `Origin`, come from it: a page on another site cannot drain a
//! backend through a user's browser (CSRF), nor through a name that it
//! points at 127.0.0.1 (DNS rebinding).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::Balancer;
use crate::live::Admin as AdminState;
use crate::reload::Reloader;
use crate::select::Algorithm;
use crate::{metrics, status};

/// What the admin handlers share.
pub struct Admin {
    pub balancer: Arc<Balancer>,
    pub reloader: Arc<Reloader>,
    /// The token every request must carry, if `token_file` is set.
    pub token: Option<String>,
}

/// What a handler sees: the admin state and the `Host` values that name
/// this listener.
struct Shared {
    admin: Admin,
    hosts: Vec<String>,
    registry: Registry,
    /// Scrapes rendered at once: a crowd of scrapers waits here (or is
    /// told 503) instead of each rendering every backend at once.
    renders: Semaphore,
}

/// Renders of `/metrics` at once.
const RENDERS: usize = 4;

/// How long a scrape waits for a render before it is told 503.
const RENDER_WAIT: Duration = Duration::from_secs(2);

/// Reads the token from `token_file`: its first line, which must not be
/// empty.
pub fn read_token(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        format!("cannot read the admin token {}: {err}", path.display())
    })?;
    let token = text.lines().next().unwrap_or("").trim().to_owned();
    if token.is_empty() {
        return Err(format!("{}: the admin token is empty", path.display()));
    }
    Ok(token)
}

/// Serves the admin API on `listener` until `stop` is cancelled.
pub async fn serve(
    listener: TcpListener,
    admin: Admin,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    admin.balancer.decisions.enable();
    let shared = Arc::new(Shared {
        registry: metrics::registry(admin.balancer.clone()),
        admin,
        hosts: hosts_of(addr),
        renders: Semaphore::new(RENDERS),
    });
    axum::serve(listener, router(shared))
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/stats", get(stats))
        .route("/api/decisions", get(decisions))
        .route("/api/explain", get(explain))
        .route("/metrics", get(scrape))
        .route("/api/reload", post(reload))
        .route("/api/backends", get(backends))
        .route("/api/backends/{id}/drain", post(drain))
        .route("/api/backends/{id}/disable", post(disable))
        .route("/api/backends/{id}/enable", post(enable))
        .route("/api/backends/{id}/weight", put(weight))
        .fallback(not_found)
        .method_not_allowed_fallback(wrong_method)
        .layer(middleware::from_fn_with_state(shared.clone(), guard))
        .with_state(shared)
}

/// The `Host` values a request to `addr` may carry: the address, and
/// `localhost` with its port on loopback. On a wildcard address (0.0.0.0,
/// `::`), which a token guards, any name with its port: the machine's
/// names are many and not for `lb` to list.
fn hosts_of(addr: SocketAddr) -> Vec<String> {
    if addr.ip().is_unspecified() {
        return vec![format!("*:{}", addr.port())];
    }
    let mut hosts = vec![addr.to_string()];
    if addr.ip().is_loopback() {
        hosts.push(format!("localhost:{}", addr.port()));
    }
    hosts
}

/// Whether `host` (a `Host` header) is one of `hosts`.
fn host_allowed(host: &str, hosts: &[String]) -> bool {
    hosts.iter().any(|allowed| match allowed.strip_prefix('*') {
        Some(port) => host.ends_with(port) && host.len() > port.len(),
        None => allowed.eq_ignore_ascii_case(host),
    })
}

// ANCHOR: guard
/// The token on every request; `Host` and `Origin` on those that change
/// state.
async fn guard(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let the_page =
        request.method() == Method::GET && request.uri().path() == "/";
    if let Some(token) = &shared.admin.token
        && !the_page
    {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        if !given.is_some_and(|given| same_secret(given, token)) {
            return error(
                StatusCode::UNAUTHORIZED,
                "this admin listener needs `Authorization: Bearer TOKEN`",
            );
        }
    }
    if request.method() != Method::GET
        && let Err(why) = same_site(headers, &shared.hosts)
    {
        return error(StatusCode::FORBIDDEN, &why);
    }
    next.run(request).await
}
// ANCHOR_END: guard

/// Whether a request that changes state names this listener in `Host`
/// and, if it says where it comes from, comes from it.
fn same_site(headers: &HeaderMap, hosts: &[String]) -> Result<(), String> {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    if !host_allowed(host, hosts) {
        return Err(format!(
            "Host `{host}` is not this admin listener ({})",
            hosts.join(" or ")
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        // Same origin: the page that sent it was served by this host.
        let origin = origin.to_str().unwrap_or("");
        let from_here = ["http://", "https://"].iter().any(|scheme| {
            origin.eq_ignore_ascii_case(&format!("{scheme}{host}"))
        });
        if !from_here {
            return Err(format!(
                "Origin `{origin}` is another site: state changes come \
                 from this listener's own page or from no page at all"
            ));
        }
    }
    Ok(())
}

/// Compares two secrets in a time that does not depend on where they
/// first differ.
fn same_secret(given: &str, token: &str) -> bool {
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0, |differ, (a, b)| differ | (a ^ b))
            == 0
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

async fn reload(State(shared): State<Arc<Shared>>) -> Response {
    match shared.admin.reloader.reload("the admin API").await {
        Ok(changed) => {
            axum::Json(json!({ "changed": changed })).into_response()
        }
        Err(err) => error(StatusCode::BAD_REQUEST, &err),
    }
}

/// Every backend of the current pool, then the retiring ones.
async fn backends(State(shared): State<Arc<Shared>>) -> axum::Json<Value> {
    let rows = status::rows(&shared.admin.balancer);
    axum::Json(rows.iter().map(status::Row::to_json).collect())
}

async fn page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        status::PAGE,
    )
        .into_response()
}

async fn stats(State(shared): State<Arc<Shared>>) -> axum::Json<Value> {
    axum::Json(status::stats(&shared.admin.balancer))
}

// ANCHOR: scrape
/// `GET /metrics`, rendered by at most [`RENDERS`] requests at once.
async fn scrape(State(shared): State<Arc<Shared>>) -> Response {
    let turn =
        tokio::time::timeout(RENDER_WAIT, shared.renders.acquire()).await;
    let Ok(Ok(_turn)) = turn else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many scrapes at once; try again",
        );
    };
    let text = metrics::render(&shared.registry);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
// ANCHOR_END: scrape

/// The query of a request, with only the parameters in `allowed`; the
/// rule, as a 400, if it has another.
fn params(
    query: HashMap<String, String>,
    path: &str,
    allowed: &[&str],
) -> Result<HashMap<String, String>, String> {
    match query.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(unknown) => Err(format!(
            "unknown parameter `{unknown}`: {path} takes {}",
            allowed.join(" and ")
        )),
        None => Ok(query),
    }
}

/// `GET /api/decisions?client=IP[:PORT]&backend=ID&limit=N`: newest
/// first, 100 unless `limit` says (capped at what the ring keeps).
async fn decisions(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let allowed = ["client", "backend", "limit"];
    let query = match params(query, "/api/decisions", &allowed) {
        Ok(query) => query,
        Err(rule) => return error(StatusCode::BAD_REQUEST, &rule),
    };
    let log = &shared.admin.balancer.decisions;
    let limit = match query.get("limit").map(|n| n.parse::<usize>()) {
        None => DEFAULT_DECISIONS,
        Some(Ok(n)) => n.min(log.kept()),
        Some(Err(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "limit: a whole number (more than {} is capped there)",
                    log.kept()
                ),
            );
        }
    };
    // A client is an address, or an address and port.
    let client = query.get("client").map(|text| {
        text.parse::<SocketAddr>()
            .map(|addr| (addr.ip(), Some(addr.port())))
            .or_else(|_| text.parse::<IpAddr>().map(|ip| (ip, None)))
    });
    let client = match client {
        None => None,
        Some(Ok(wanted)) => Some(wanted),
        Some(Err(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "client: an IP address, or IP:PORT (such as 127.0.0.1 or \
                 127.0.0.1:50312)",
            );
        }
    };
    let backend = query.get("backend");
    let found = log.recent(
        |decision| {
            let client_matches = client.is_none_or(|(ip, port)| {
                decision.client.ip() == ip
                    && port.is_none_or(|port| decision.client.port() == port)
            });
            let backend_matches =
                backend.is_none_or(|id| decision.backend.as_ref() == Some(id));
            client_matches && backend_matches
        },
        limit,
    );
    axum::Json(found.iter().map(|d| d.to_json()).collect::<Value>())
        .into_response()
}

/// How many decisions `/api/decisions` gives without a `limit`.
const DEFAULT_DECISIONS: usize = 100;

/// `GET /api/explain?client=IP`.
async fn explain(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let query = match params(query, "/api/explain", &["client"]) {
        Ok(query) => query,
        Err(rule) => return error(StatusCode::BAD_REQUEST, &rule),
    };
    match query.get("client").map(|text| text.parse::<IpAddr>()) {
        Some(Ok(ip)) => axum::Json(status::explain(&shared.admin.balancer, ip))
            .into_response(),
        _ => error(
            StatusCode::BAD_REQUEST,
            "client: an IP address is required (such as ?client=127.0.0.2)",
        ),
    }
}

async fn not_found(request: Request) -> Response {
    error(
        StatusCode::NOT_FOUND,
        &format!("no such path: {}", request.uri().path()),
    )
}

async fn wrong_method(request: Request) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!(
            "{} is not a method {} answers",
            request.method(),
            request.uri().path()
        ),
    )
}

async fn drain(shared: State<Arc<Shared>>, id: Path<String>) -> Response {
    set_admin(&shared, &id, AdminState::Draining)
}

async fn disable(shared: State<Arc<Shared>>, id: Path<String>) -> Response {
    set_admin(&shared, &id, AdminState::Disabled)
}

async fn enable(shared: State<Arc<Shared>>, id: Path<String>) -> Response {
    set_admin(&shared, &id, AdminState::Enabled)
}

// ANCHOR: set_admin
/// Drain, disable or enable the backend `id`: its checker follows (a
/// disabled backend is not checked), and a backend enabled again may have
/// room for the clients in line.
fn set_admin(shared: &Shared, id: &str, admin: AdminState) -> Response {
    let balancer = &shared.admin.balancer;
    let pool = balancer.pool();
    let Some(backend) = pool.backend(id) else {
        return error(StatusCode::NOT_FOUND, &format!("no backend `{id}`"));
    };
    let before = backend.live.set_admin(admin);
    if before != admin {
        tracing::info!(
            backend = %id,
            "{} through the admin API (was {})",
            admin.as_str(),
            before.as_str()
        );
    }
    balancer.sync_checkers();
    if admin == AdminState::Enabled {
        balancer.queue().wake_all();
    }
    axum::Json(json!({ "id": id, "admin": admin.as_str() })).into_response()
}
// ANCHOR_END: set_admin

/// `PUT /api/backends/{id}/weight`: the body is the new weight. The
/// algorithm is built again, so weighted round robin's next clients
/// follow the new sequence from its start.
async fn weight(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: String,
) -> Response {
    let balancer = &shared.admin.balancer;
    let pool = balancer.pool();
    let Some(backend) = pool.backend(&id) else {
        return error(StatusCode::NOT_FOUND, &format!("no backend `{id}`"));
    };
    if pool.config.algorithm == Algorithm::RoundRobin {
        return error(
            StatusCode::CONFLICT,
            "round-robin has no weights; use weighted-round-robin",
        );
    }
    let weight = match body.trim().parse::<u32>() {
        Ok(weight) if weight > 0 => weight,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "`{}`: a weight is a whole number of at least 1",
                    body.trim()
                ),
            );
        }
    };
    let before = backend.weight;
    backend.live.set_weight(Some(weight));
    if let Err(err) = balancer.rebuild() {
        return error(StatusCode::INTERNAL_SERVER_ERROR, &err.to_string());
    }
    tracing::info!(
        backend = %id,
        "weight {before} → {weight} through the admin API"
    );
    axum::Json(json!({ "id": id, "weight": weight })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_change_must_name_this_listener_and_come_from_it() {
        let hosts = hosts_of("127.0.0.1:9000".parse().unwrap());
        let headers = |pairs: &[(header::HeaderName, &str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(name.clone(), value.parse().unwrap());
            }
            map
        };
        let ok = [
            headers(&[(header::HOST, "127.0.0.1:9000")]),
            headers(&[(header::HOST, "localhost:9000")]),
            headers(&[
                (header::HOST, "127.0.0.1:9000"),
                (header::ORIGIN, "http://127.0.0.1:9000"),
            ]),
        ];
        for headers in ok {
            assert_eq!(same_site(&headers, &hosts), Ok(()), "{headers:?}");
        }
        let refused = [
            headers(&[(header::HOST, "evil.example:9000")]),
            headers(&[]),
            headers(&[
                (header::HOST, "127.0.0.1:9000"),
                (header::ORIGIN, "http://evil.example"),
            ]),
        ];
        for headers in refused {
            assert!(same_site(&headers, &hosts).is_err(), "{headers:?}");
        }
        // On a wildcard address, any name with its port.
        let anywhere = hosts_of("0.0.0.0:9000".parse().unwrap());
        let named = headers(&[(header::HOST, "lb.example:9000")]);
        assert_eq!(same_site(&named, &anywhere), Ok(()));
        let other_port = headers(&[(header::HOST, "lb.example:9001")]);
        assert!(same_site(&other_port, &anywhere).is_err());
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abd", "abc"));
        assert!(!same_secret("ab", "abc"));
    }
}
