//! `lb`: the lab's load balancer to keep.
//!
//! The first half of the lab rebuilt a balancer one idea per step; this
//! crate is where those ideas live together, one module per concern:
//!
//! - `config`: the TOML file and the flags, checked, as a [`Config`];
//! - `backend`: a backend and its live counters;
//! - `select`: the algorithms, pure, one file each;
//! - `health`: the up/down state of each backend, active checks and
//!   passive marks;
//! - `connect`: reaching a backend, TCP then TLS, within timeouts;
//! - `stream`: a connection at either end, plain or TLS;
//! - `proxy`: one client, from choosing its backend to its last byte;
//! - `relay`: copying bytes both ways, with the idle and half-closed
//!   timeouts;
//! - this file: the [`Balancer`] they share, and [`run`]: the accept
//!   loop, the connection limit and the drain.
//!
//! Everything a test needs to run `lb` in-process is public: bind a
//! listener on port 0 ([`bind`]), build a [`Config`], call [`run`].

pub mod backend;
pub mod config;
pub mod connect;
pub mod health;
pub mod proxy;
pub mod relay;
pub mod select;
pub mod stream;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use lab_common::{Error, HostPort};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use config::Config;

use backend::Backend;
use connect::BackendTls;
use select::{Member, Select};

// ANCHOR: balancer
/// What every connection shares: the backends and their live state, the
/// algorithm, the TLS configurations and the limits.
pub struct Balancer {
    config: Config,
    backends: Vec<Arc<Backend>>,
    selector: Box<dyn Select>,
    front_tls: Option<TlsAcceptor>,
    backend_tls: Option<BackendTls>,
    /// Client TLS handshakes in progress (`max_handshakes`).
    handshakes: Semaphore,
    /// Woken when a connection to a backend with a limit ends.
    freed: Arc<Notify>,
    started: Instant,
    no_backend_log: RateLimit,
}
// ANCHOR_END: balancer

/// The state of a log line written at most once a second.
struct RateLimit {
    /// The second (since start) of the last line written; none yet at
    /// first, so that the very first line is written.
    last_second: AtomicU64,
    unlogged: AtomicU64,
}

impl Default for RateLimit {
    fn default() -> RateLimit {
        RateLimit {
            last_second: AtomicU64::new(u64::MAX),
            unlogged: AtomicU64::new(0),
        }
    }
}

impl Balancer {
    /// Builds the balancer `config` describes, loading the certificates
    /// it names. `config` must have been checked ([`Config::parse`] or
    /// [`Config::check`]).
    pub fn new(config: Config) -> Result<Balancer, Error> {
        let front_tls = match &config.tls.front {
            Some(front) => Some(TlsAcceptor::from(
                lab_common::tls::server_config(&front.cert, &front.key)?,
            )),
            None => None,
        };
        let backend_tls = if config.tls.insecure {
            warn!(
                "insecure = true: the certificates of tls:// backends are \
                 NOT VERIFIED; anyone on the way to a backend can pose as it"
            );
            Some(BackendTls::insecure())
        } else {
            match &config.tls.ca {
                Some(ca) => Some(BackendTls::verify(
                    lab_common::tls::client_config(ca)?,
                )),
                None => None,
            }
        };
        let freed = Arc::new(Notify::new());
        let backends = config
            .backends
            .iter()
            .map(|backend| Arc::new(Backend::new(backend, freed.clone())))
            .collect();
        let members: Vec<Member> = config
            .backends
            .iter()
            .map(|backend| Member {
                id: backend.id.clone(),
                weight: backend.weight,
            })
            .collect();
        Ok(Balancer {
            selector: select::build(config.algorithm, &members, config.seed),
            handshakes: Semaphore::new(config.limits.max_handshakes as usize),
            backends,
            front_tls,
            backend_tls,
            freed,
            started: Instant::now(),
            no_backend_log: RateLimit::default(),
            config,
        })
    }
}

/// What a connection's task is given to end early: `cut` is cancelled
/// when the drain time after SIGTERM has run out.
#[derive(Clone, Debug)]
pub struct Shutdown {
    pub cut: CancellationToken,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drained {
    /// Connections open when the shutdown began that finished in time.
    pub finished: usize,
    /// Connections still open when the drain time ran out, then closed.
    pub cut: usize,
}

/// Binds `listen` with a listen queue of `backlog` connections: the
/// kernel holds that many completed connections while `lb` is not
/// accepting (at `max_connections`, or during a burst). tokio's
/// `TcpListener::bind` always asks for 1,024.
pub async fn bind(listen: &HostPort, backlog: u32) -> io::Result<TcpListener> {
    let mut addrs =
        tokio::net::lookup_host((listen.host(), listen.port())).await?;
    let addr = addrs.next().ok_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, format!("{listen}: no address"))
    })?;
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // Restarting `lb` must not wait for the old connections' TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(backlog)?;
    if let Some(cap) = kernel_backlog_cap()
        && cap < backlog
    {
        warn!(
            "backlog {backlog} is cut to {cap} by the kernel \
             (net.core.somaxconn)"
        );
    }
    Ok(listener)
}

/// The longest listen queue the kernel grants, which it applies without
/// a word: `None` where it cannot be read (not Linux, say).
fn kernel_backlog_cap() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()?
        .trim()
        .parse()
        .ok()
}

// ANCHOR: run
/// Runs the balancer `config` describes on `listener` until `shutdown`
/// completes, then drains: the listener closes at once (new connects are
/// refused), open connections get up to `timeouts.drain` to finish, and
/// the rest are cut.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<Drained, Error> {
    serve(listener, Balancer::new(config)?, shutdown).await
}

/// [`run`] for a balancer already built: `main` builds it (loading the
/// certificates) before it binds and says it listens, so that a bad
/// certificate stops `lb` before anyone is told it is up.
pub async fn serve(
    listener: TcpListener,
    balancer: Balancer,
    shutdown: impl Future<Output = ()>,
) -> Result<Drained, Error> {
    let max_connections = connection_limit(&balancer.config);
    let drain = balancer.config.timeouts.drain;
    let balancer = Arc::new(balancer);
    let checks = TaskTracker::new();
    let stop_checks = CancellationToken::new();
    health::spawn(
        &balancer.backends,
        &balancer.config.health,
        balancer.backend_tls.clone(),
        stop_checks.clone(),
        &checks,
    );

    // A permit per open client connection, taken *before* accepting: at
    // the limit `lb` stops calling accept, and new clients wait in the
    // kernel's listen queue instead of being accepted and dropped.
    let permits = Arc::new(Semaphore::new(max_connections));
    let connections = TaskTracker::new();
    let cut = CancellationToken::new();
    let mut accept_trouble = AcceptTrouble::default();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => {
                permit.expect("the semaphore is never closed")
            }
            () = &mut shutdown => break,
        };
        let (client, client_addr) = tokio::select! {
            accepted = accept(&listener, &mut accept_trouble) => accepted,
            () = &mut shutdown => break,
        };
        let balancer = balancer.clone();
        let shutdown = Shutdown { cut: cut.clone() };
        connections.spawn(proxy::serve_client(
            balancer,
            client,
            client_addr,
            shutdown,
            permit,
        ));
    }
    drop(listener);
    stop_checks.cancel();
    let drained = drain_connections(&connections, &cut, drain).await;
    checks.close();
    checks.wait().await;
    Ok(drained)
}
// ANCHOR_END: run

// ANCHOR: drain
/// Waits up to `drain` for the open connections to finish, then cuts the
/// rest and waits for them to close.
async fn drain_connections(
    connections: &TaskTracker,
    cut: &CancellationToken,
    drain: Duration,
) -> Drained {
    connections.close();
    let open = connections.len();
    if open > 0 {
        info!(
            "shutting down: no longer accepting; {} open, {} to finish",
            count(open, "connection"),
            config::show_duration(drain)
        );
    }
    let in_time = tokio::time::timeout(drain, connections.wait()).await;
    let left = if in_time.is_ok() {
        0
    } else {
        connections.len()
    };
    if left > 0 {
        cut.cancel();
        connections.wait().await;
    }
    let drained = Drained {
        finished: open - left,
        cut: left,
    };
    info!(
        "shut down: {} finished, {} cut",
        count(drained.finished, "connection"),
        drained.cut
    );
    drained
}

/// `1 connection`, `3 connections`: a count and what it counts, in the
/// log's words.
pub fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}
// ANCHOR_END: drain

/// `max_connections`, lowered if the open-file limit cannot hold that
/// many: each client takes two descriptors (its own and its backend's),
/// and a few are kept for the listener, the health checks and the logs.
/// Without this, `lb` would accept clients it then cannot connect.
fn connection_limit(config: &Config) -> usize {
    let wanted = config.limits.max_connections as usize;
    let files = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .map_or(usize::MAX, |n| n as usize);
    let reserved = 32 + 2 * config.backends.len();
    let fits = files.saturating_sub(reserved) / 2;
    if wanted > fits {
        warn!(
            "max_connections {wanted} lowered to {fits}: the open-file limit \
             is {files}, and each client needs two"
        );
        return fits.max(1);
    }
    wanted
}

/// Raises this process's open-file limit to its hard limit, as HAProxy
/// and nginx do: the soft limit (often 1,024) is a default for programs
/// that never need many, and a balancer needs two per client.
pub fn raise_open_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if let Err(err) = setrlimit(Resource::Nofile, limit) {
            warn!("cannot raise the open-file limit: {err}");
        }
    }
}

/// Failed accepts in a row, so that a burst of them is logged once.
#[derive(Default)]
struct AcceptTrouble {
    failures: u32,
}

/// The next client. An accept that fails (out of descriptors, most
/// likely) is retried after a pause that doubles up to a second; the
/// first failure of a burst is logged, and how many there were when the
/// burst ends.
async fn accept(
    listener: &TcpListener,
    trouble: &mut AcceptTrouble,
) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(pair) => {
                if trouble.failures > 0 {
                    info!(
                        "accepting again after {} failed accepts",
                        trouble.failures
                    );
                    trouble.failures = 0;
                }
                return pair;
            }
            Err(err) => {
                if trouble.failures == 0 {
                    warn!("accept failed: {err}; backing off");
                }
                trouble.failures += 1;
                let pause = 10u64 << trouble.failures.min(7);
                tokio::time::sleep(Duration::from_millis(pause.min(1000)))
                    .await;
            }
        }
    }
}
