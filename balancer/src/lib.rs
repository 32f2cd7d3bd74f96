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

pub mod admin;
pub mod backend;
pub mod codes;
pub mod config;
pub mod connect;
pub mod decisions;
pub mod discovery;
pub mod health;
pub mod live;
pub mod metrics;
pub mod pool;
pub mod proxy;
pub mod queue;
pub mod relay;
pub mod reload;
pub mod select;
pub mod service;
pub mod stats;
pub mod status;
pub mod stream;
pub mod upgrade;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use lab_common::{Error, HostPort};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::server::NoServerSessionStorage;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, warn};

pub use config::Config;

use decisions::Decisions;
use health::Checkers;
use live::Live;
use pool::Pool;
use queue::Queue;
use stats::ListenerStats;

// ANCHOR: balancer
/// What every connection shares: the current pool (backends, algorithm,
/// rules), the live records of the backends by id, the front's TLS, the
/// limits, and the line of clients waiting for room.
pub struct Balancer {
    /// Swapped whole at a reload; a client loads it once (`pool.rs`).
    pool: ArcSwap<Pool>,
    lives: Arc<Mutex<Lives>>,
    front_tls: ArcSwapOption<TlsAcceptor>,
    /// What the front's certificate files held when last read.
    front_digest: Mutex<Option<u64>>,
    /// Client TLS handshakes in progress (`max_handshakes`).
    handshakes: Resizable,
    /// A place per open client connection (`max_connections`), taken
    /// before accepting.
    permits: Resizable,
    queue: Arc<Queue>,
    checkers: Mutex<Checkers>,
    /// Cancelled when the drain after SIGTERM has run out: ends every
    /// connection still open (each backend's token is a child of it).
    cut: CancellationToken,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    started: Instant,
    no_backend_log: RateLimit,
    /// The listener's counters (`stats.rs`).
    pub stats: ListenerStats,
    /// Why each client went where it went; kept once an admin listener
    /// serves (`decisions.rs`).
    pub decisions: Decisions,
    /// The address the listener is bound to (`listen` may say port 0).
    bound: std::sync::OnceLock<SocketAddr>,
    /// What the relays' big buffers and splice pipes draw on
    /// (`limits.buffer_budget`, `limits.splice_pipes`).
    pub buffers: Arc<relay::Budget>,
    /// While at `max_connections`: since when, and the clients accepted
    /// by then.
    limit_episode: Mutex<Option<(Instant, u64)>>,
}
// ANCHOR_END: balancer

/// The backends' live records: those of the current pool by id, and the
/// retiring ones until their last connection ends.
#[derive(Default)]
struct Lives {
    current: HashMap<String, Arc<Live>>,
    retiring: Vec<Arc<Live>>,
}

/// A semaphore whose number of places a reload can change.
struct Resizable {
    places: Arc<Semaphore>,
    size: AtomicUsize,
}

impl Resizable {
    fn new(size: usize) -> Resizable {
        Resizable {
            places: Arc::new(Semaphore::new(size)),
            size: AtomicUsize::new(size),
        }
    }

    /// Grows at once; shrinks as places come back (a place in use is
    /// never taken from its connection).
    fn resize(&self, size: usize) {
        let before = self.size.swap(size, Ordering::AcqRel);
        if size > before {
            self.places.add_permits(size - before);
        } else if size < before {
            let places = self.places.clone();
            let fewer = (before - size) as u32;
            tokio::spawn(async move {
                if let Ok(taken) = places.acquire_many_owned(fewer).await {
                    taken.forget();
                }
            });
        }
    }
}

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
    /// [`Config::check`]); it is checked again here, so that a config
    /// built in code obeys the rules the file does.
    pub fn new(config: Config) -> Result<Balancer, Error> {
        config.validate("the config")?;
        if config.tls.insecure {
            warn!(
                "insecure = true: the certificates of tls:// backends are \
                 NOT VERIFIED; anyone on the way to a backend can pose as it"
            );
        }
        let front_tls = front_tls(&config)?;
        let queue = Queue::new();
        let cut = CancellationToken::new();
        let mut lives = Lives::default();
        let config = Arc::new(config);
        let pool =
            Pool::build(config.clone(), &mut lives.current, &queue, &cut)?;
        Ok(Balancer {
            handshakes: Resizable::new(config.limits.max_handshakes as usize),
            permits: Resizable::new(connection_limit(&config)),
            pool: ArcSwap::from_pointee(pool),
            lives: Arc::new(Mutex::new(lives)),
            front_tls: ArcSwapOption::from(front_tls.map(Arc::new)),
            front_digest: Mutex::new(front_digest(&config)),
            queue,
            checkers: Mutex::new(Checkers::new()),
            cut,
            reloading: tokio::sync::Mutex::new(()),
            started: Instant::now(),
            no_backend_log: RateLimit::default(),
            stats: ListenerStats::new(),
            decisions: Decisions::new(config.admin.decisions),
            bound: std::sync::OnceLock::new(),
            buffers: relay::Budget::with_pipes(
                config.limits.buffer_budget,
                splice_pipe_limit(&config),
            ),
            limit_episode: Mutex::new(None),
        })
    }

    /// The current pool. A client keeps what this returns to its end.
    pub fn pool(&self) -> Arc<Pool> {
        self.pool.load_full()
    }

    /// The address clients connect to: where the listener is bound once
    /// it serves, else what the config says.
    pub fn listen_addr(&self) -> String {
        match self.bound.get() {
            Some(addr) => addr.to_string(),
            None => self.pool().config.listen.to_string(),
        }
    }

    /// The address the listener is bound to, once it serves: what no
    /// backend may resolve to (a loop).
    pub fn own_addr(&self) -> Option<SocketAddr> {
        self.bound.get().copied()
    }

    // ANCHOR: limit_episode
    /// `max_connections` is reached: says so, once per episode, however
    /// many clients it holds back.
    fn limit_reached(&self) {
        let mut episode = lock(&self.limit_episode);
        if episode.is_some() {
            return;
        }
        let stats = &self.stats;
        *episode =
            Some((Instant::now(), stats.accepted.load(Ordering::Relaxed)));
        stats.at_limit.store(true, Ordering::Relaxed);
        stats.limit_reached.fetch_add(1, Ordering::Relaxed);
        // Every place is taken (some by clients whose tasks have not
        // started yet, so `stats.open` may still lag).
        let open = self.max_connections();
        warn!(
            open,
            "max_connections ({open}) reached: not accepting; new clients \
             wait in the listen queue"
        );
    }

    /// A place is free and no client waits in the listen queue: an
    /// episode at `max_connections`, if one was on, is over. Said once,
    /// with how long it lasted and how many it accepted meanwhile. (While
    /// clients wait in the queue, each freed place is taken at once: the
    /// same episode goes on.)
    fn limit_left(&self) {
        let stats = &self.stats;
        if !stats.at_limit.load(Ordering::Relaxed) {
            return;
        }
        let Some((since, accepted)) = lock(&self.limit_episode).take() else {
            return;
        };
        stats.at_limit.store(false, Ordering::Relaxed);
        let meanwhile = stats.accepted.load(Ordering::Relaxed) - accepted;
        info!(
            open = stats.open.load(Ordering::Relaxed),
            accepted_meanwhile = meanwhile,
            "below max_connections again after {:.1} s: accepting",
            since.elapsed().as_secs_f64()
        );
    }
    // ANCHOR_END: limit_episode

    /// The most client connections open at once, as now set.
    pub fn max_connections(&self) -> usize {
        self.permits.size.load(Ordering::Relaxed)
    }

    /// The line of clients waiting for room.
    pub fn queue(&self) -> &Arc<Queue> {
        &self.queue
    }

    /// Every backend's live record: the current pool's, then the
    /// retiring ones.
    pub fn lives(&self) -> Vec<Arc<Live>> {
        let pool = self.pool();
        let lives = lock(&self.lives);
        pool.backends
            .iter()
            .map(|backend| backend.live.clone())
            .chain(lives.retiring.iter().cloned())
            .collect()
    }

    /// Builds a pool from `config` with the backends' records, swaps it
    /// in, retires the backends it no longer has, and sets the checkers
    /// and limits to follow it.
    pub(crate) fn swap_in(&self, config: Arc<Config>) -> Result<(), Error> {
        let old = self.pool();
        let mut lives = lock(&self.lives);
        let mut current = lives.current.clone();
        // A retiring backend back in the config keeps its record, and so
        // its open connections: it stays.
        for backend in &config.backends {
            if !current.contains_key(&backend.id)
                && let Some(live) =
                    lives.retiring.iter().find(|live| live.id == backend.id)
            {
                current.insert(backend.id.clone(), live.clone());
            }
        }
        let pool =
            Pool::build(config.clone(), &mut current, &self.queue, &self.cut)?;
        for backend in &pool.backends {
            if backend.live.is_retiring() {
                backend.live.stay();
                info!(backend = %backend.id, "back in the config: stays");
            }
        }
        lives.retiring.retain(|live| {
            !pool.backends.iter().any(|b| Arc::ptr_eq(&b.live, live))
        });
        // Records of backends the new pool does not have: retiring.
        let mut kept = HashMap::new();
        for backend in &pool.backends {
            kept.insert(backend.id.clone(), backend.live.clone());
        }
        for backend in &old.backends {
            if !kept.contains_key(&backend.id) && backend.live.retire() {
                lives.retiring.push(backend.live.clone());
                self.retire(backend.live.clone(), config.timeouts.drain);
            }
        }
        lives.current = kept;
        drop(lives);
        self.pool.store(Arc::new(pool));
        self.permits.resize(connection_limit(&config));
        self.handshakes
            .resize(config.limits.max_handshakes as usize);
        self.sync_checkers();
        // A reload may bring room (a backend, a higher limit).
        self.queue.wake_all();
        Ok(())
    }

    /// A removed backend's end: its connections get `drain` to finish,
    /// then are cut; its record goes with the last of them.
    fn retire(&self, live: Arc<Live>, drain: Duration) {
        let lives = self.lives.clone();
        let retirement = live.retirement();
        tokio::spawn(async move {
            let open = live.active();
            if open > 0 {
                info!(
                    backend = %live.id,
                    "retiring: no new clients; {} open, {} to finish",
                    count(open as usize, "connection"),
                    config::show_duration(drain)
                );
            }
            let finished = tokio::time::timeout(drain, live.idle()).await;
            if live.retirement() != retirement {
                // Back in the config meanwhile (and perhaps gone again:
                // that retirement has its own drain).
                return;
            }
            if finished.is_err() {
                let left = live.active();
                warn!(
                    backend = %live.id,
                    "retired: {} still open after {}; cut",
                    count(left as usize, "connection"),
                    config::show_duration(drain)
                );
                live.cut().cancel();
                live.idle().await;
            }
            lock(&lives)
                .retiring
                .retain(|retiring| !Arc::ptr_eq(retiring, &live));
        });
    }

    /// Starts and stops the checkers to follow the current pool and the
    /// operator's say (a disabled backend is not checked).
    pub fn sync_checkers(&self) {
        let pool = self.pool();
        lock(&self.checkers).follow(&pool, &self.queue, self.own_addr());
    }

    /// Rebuilds the pool from its own config: the algorithm starts again
    /// with the weights as they are now (one set through the API).
    pub fn rebuild(&self) -> Result<(), Error> {
        self.swap_in(self.pool().config.clone())
    }

    /// Presents `acceptor` to the next clients' handshakes (a connection
    /// already set up keeps its session); whether its files were new.
    fn set_front_tls(
        &self,
        acceptor: Option<TlsAcceptor>,
        digest: Option<u64>,
    ) -> bool {
        self.front_tls.store(acceptor.map(Arc::new));
        let before = std::mem::replace(&mut *lock(&self.front_digest), digest);
        before.is_some() && digest.is_some() && before != digest
    }

    /// What a new process is handed at an upgrade, by backend id.
    pub fn snapshot(&self) -> Vec<live::Snapshot> {
        self.pool()
            .backends
            .iter()
            .map(|backend| backend.live.snapshot())
            .collect()
    }

    /// Takes over what an old process knew of the backends this one has
    /// too; then the algorithm is built again with the weights it set.
    pub fn restore(&self, snapshots: &[live::Snapshot]) -> Result<(), Error> {
        let pool = self.pool();
        for snapshot in snapshots {
            if let Some(backend) = pool.backend(&snapshot.id) {
                backend.live.restore(snapshot);
            }
        }
        self.rebuild()
    }
}

/// A digest of the front's certificate and key files, to tell a reload
/// that read new ones from one that read the same again.
fn front_digest(config: &Config) -> Option<u64> {
    let front = config.tls.front.as_ref()?;
    let mut bytes = std::fs::read(&front.cert).ok()?;
    bytes.extend(std::fs::read(&front.key).ok()?);
    Some(xxhash_rust::xxh3::xxh3_64(&bytes))
}

/// The acceptor for the front's TLS, if `[tls]` names a certificate: read
/// again at every reload, so a rotated certificate is what the next
/// handshake presents. With `resumption = false`, no session is kept
/// and no ticket sent: every handshake is a full one.
fn front_tls(config: &Config) -> Result<Option<TlsAcceptor>, Error> {
    let Some(front) = &config.tls.front else {
        return Ok(None);
    };
    let mut server = lab_common::tls::server_config(&front.cert, &front.key)?;
    if !config.tls.resumption {
        let server = Arc::make_mut(&mut server);
        server.session_storage = Arc::new(NoServerSessionStorage {});
        server.send_tls13_tickets = 0;
    }
    Ok(Some(TlsAcceptor::from(server)))
}

/// Locks `mutex` even if a thread panicked while holding it: every update
/// behind these locks leaves the state consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
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

/// Turns Nagle's delay off for every client: set on the listener, the
/// option is copied to each connection the kernel accepts from then on,
/// one system call instead of one per client. (A connection queued before
/// `lb` started under systemd keeps Nagle on; it still gets every byte,
/// a little later.)
fn no_delay_for_clients(listener: &TcpListener) {
    if let Err(err) = rustix::net::sockopt::set_tcp_nodelay(listener, true) {
        warn!("TCP_NODELAY on the listener: {err}");
    }
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

/// Runs the balancer `config` describes on `listener` until `shutdown`
/// completes, then drains: the listener closes at once (new connects are
/// refused), open connections get up to `timeouts.drain` to finish, and
/// the rest are cut.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<Drained, Error> {
    serve(listener, Arc::new(Balancer::new(config)?), shutdown).await
}

/// [`run`] for a balancer already built: `main` builds it (loading the
/// certificates) before it binds and says it listens, so that a bad
/// certificate stops `lb` before anyone is told it is up, and keeps it
/// to reload it and to serve the admin API.
pub async fn serve(
    listener: TcpListener,
    balancer: Arc<Balancer>,
    shutdown: impl Future<Output = ()>,
) -> Result<Drained, Error> {
    if let Ok(addr) = listener.local_addr() {
        let _ = balancer.bound.set(addr);
    }
    no_delay_for_clients(&listener);
    balancer.sync_checkers();
    // ANCHOR: serve
    // A permit per open client connection, taken *before* accepting: at
    // the limit `lb` stops calling accept, and new clients wait in the
    // kernel's listen queue instead of being accepted and dropped.
    let permits = balancer.permits.places.clone();
    let connections = TaskTracker::new();
    let mut accept_trouble = AcceptTrouble::default();
    tokio::pin!(shutdown);
    loop {
        if permits.available_permits() == 0 {
            balancer.limit_reached();
        }
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => {
                permit.expect("the semaphore is never closed")
            }
            () = &mut shutdown => break,
        };
        let (client, client_addr) = tokio::select! {
            accepted = next_client(&balancer, &listener, &mut accept_trouble) => {
                accepted
            }
            () = &mut shutdown => break,
        };
        balancer.stats.accepted.fetch_add(1, Ordering::Relaxed);
        let shutdown = Shutdown {
            cut: balancer.cut.clone(),
        };
        // A span per connection, for a subscriber at debug level (it
        // carries the client, and gets the backend and the end code; its
        // `decision` event has the rest); disabled, and nearly free, at
        // the default level.
        let span = tracing::debug_span!(
            "connection",
            client = %client_addr,
            backend = tracing::field::Empty,
            code = tracing::field::Empty,
        );
        connections.spawn(
            proxy::serve_client(
                balancer.clone(),
                client,
                client_addr,
                shutdown,
                permit,
            )
            .instrument(span),
        );
    }
    // ANCHOR_END: serve
    drop(listener);
    lock(&balancer.checkers).stop();
    let drain = balancer.pool().config.timeouts.drain;
    let drained = drain_connections(&connections, &balancer.cut, drain).await;
    let checkers = lock(&balancer.checkers).tracker();
    checkers.wait().await;
    Ok(drained)
}

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
// ANCHOR_END: drain

/// `1 connection`, `3 connections`: a count and what it counts, in the
/// log's words.
pub fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// `max_connections`, lowered if the open-file limit cannot hold that
/// many: each client takes two descriptors (its own and its backend's),
/// and a few are kept for the listener, the health checks and the logs.
/// Without this, `lb` would accept clients it then cannot connect.
pub(crate) fn connection_limit(config: &Config) -> usize {
    let wanted = config.limits.max_connections as usize;
    let files = open_file_limit();
    let fits = files.saturating_sub(reserved_descriptors(config)) / 2;
    if wanted > fits {
        warn!(
            "max_connections {wanted} lowered to {fits}: the open-file limit \
             is {files}, and each client needs two"
        );
        return fits.max(1);
    }
    wanted
}

/// `splice_pipes`, lowered to what the open-file limit holds once every
/// client has its two descriptors: each pipe takes two as well, and the
/// clients come first, since without a pipe a stream is only relayed
/// buffered, while without a descriptor a client is not served.
pub(crate) fn splice_pipe_limit(config: &Config) -> usize {
    let wanted = config.limits.splice_pipes as usize;
    let files = open_file_limit();
    let reserved = reserved_descriptors(config);
    // As `connection_limit` fits them (without saying so a second time).
    let max_connections = config.limits.max_connections as usize;
    let clients = 2 * max_connections.min(files.saturating_sub(reserved) / 2);
    let left = files.saturating_sub(reserved + clients);
    let fits = left / 2;
    if wanted > fits {
        warn!(
            "splice_pipes {wanted} lowered to {fits}: the open-file limit is \
             {files}, and the clients need {clients}"
        );
        return fits;
    }
    wanted
}

/// This process's open-file limit (no limit: `usize::MAX`).
fn open_file_limit() -> usize {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .map_or(usize::MAX, |n| n as usize)
}

/// Descriptors kept for the listener, the health checks and the logs.
fn reserved_descriptors(config: &Config) -> usize {
    32 + 2 * config.backends.len()
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

/// The next client, once a place is free for it. If none is waiting
/// (an accept would wait), an episode at `max_connections` is over
/// ([`Balancer::limit_left`]).
async fn next_client(
    balancer: &Balancer,
    listener: &TcpListener,
    trouble: &mut AcceptTrouble,
) -> (TcpStream, SocketAddr) {
    let waiting = tokio::select! {
        biased;
        accepted = accept(listener, trouble) => Some(accepted),
        () = std::future::ready(()) => None,
    };
    match waiting {
        Some(accepted) => accepted,
        None => {
            balancer.limit_left();
            accept(listener, trouble).await
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BackendConfig;
    use crate::select::Algorithm;

    /// A client accepted after the listener was set up has Nagle's delay
    /// off, though nothing was set on its own socket.
    #[tokio::test]
    async fn clients_inherit_no_delay_from_the_listener() {
        let listen = HostPort::from(SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = bind(&listen, 16).await.expect("bind");
        no_delay_for_clients(&listener);
        let addr = listener.local_addr().expect("bound");
        let (_near, accepted) = tokio::join!(
            tokio::net::TcpStream::connect(addr),
            listener.accept()
        );
        let (far, _) = accepted.expect("accepted");
        assert!(far.nodelay().expect("TCP_NODELAY readable"));
    }

    /// Pipes give way first: whatever the caps ask, the clients' two
    /// descriptors each and the pipes' two each fit the open-file limit,
    /// and the clients get all they can before any pipe.
    #[test]
    fn splice_pipes_give_way_to_clients_at_the_open_file_limit() {
        let mut config = Config {
            backends: vec![BackendConfig::at(
                "127.0.0.1:4444".parse().expect("a test address"),
            )],
            ..Config::default()
        };
        let files = open_file_limit();
        let reserved = reserved_descriptors(&config);
        config.limits.max_connections = u32::MAX;
        config.limits.splice_pipes = crate::config::MAX_SPLICE_PIPES;
        let clients = connection_limit(&config);
        assert_eq!(clients, (files - reserved) / 2, "clients fill the limit");
        assert!(splice_pipe_limit(&config) <= 1, "no room left for pipes");
        config.limits.max_connections = 10;
        let pipes = splice_pipe_limit(&config);
        assert!(reserved + 2 * 10 + 2 * pipes <= files, "everything fits");
        let wanted = crate::config::MAX_SPLICE_PIPES as usize;
        assert_eq!(pipes, wanted.min((files - reserved - 20) / 2));
    }

    /// A config built in code obeys the rules the file's parse enforces:
    /// what would panic later (power-of-two dividing by a weight of 0, a
    /// `tls://` backend with nothing to check it by) is refused here.
    #[test]
    fn a_config_built_in_code_is_checked_as_a_file_is() {
        let backend = |address: &str| {
            BackendConfig::at(address.parse().expect("a test address"))
        };
        let mut zero_weight = Config {
            algorithm: Algorithm::PowerOfTwo,
            backends: vec![backend("127.0.0.1:1")],
            ..Config::default()
        };
        zero_weight.backends[0].weight = 0;
        let tls_without_ca = Config {
            backends: vec![backend("tls://127.0.0.1:1")],
            ..Config::default()
        };
        let cases = [
            (
                zero_weight,
                "the config: backends[1].weight: must be at least 1",
            ),
            (
                tls_without_ca,
                "the config: backends: `tls://127.0.0.1:1` is a TLS",
            ),
        ];
        for (config, want) in cases {
            let err = Balancer::new(config).err().expect("refused").to_string();
            assert!(err.starts_with(want), "{err}");
        }
    }
}
