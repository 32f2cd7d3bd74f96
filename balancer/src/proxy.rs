//! One client, from its PROXY header (under `accept_proxy`) and its TLS
//! handshake (if the front speaks TLS) to its last byte: choose the
//! backends to try, reach the first that answers, relay, and log one line
//! saying how it ended.
//!
//! Failover happens here, and only before the relay starts. At layer 4 a
//! client can be moved to another backend only while none of its bytes
//! have gone to the first one: `lb` reads nothing from the client until a
//! backend is reached, so a refused or timed-out connect, or a failed TLS
//! handshake with the backend, simply moves on to the next candidate.
//! Once the relay has started, a backend that fails takes the client's
//! connection with it: the bytes already sent cannot be taken back.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::BytesMut;
use lab_common::proxy_protocol;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::rustls::server::Acceptor;
use tracing::{debug, info, warn};

use crate::backend::{ActiveGuard, Backend};
use crate::codes::{EndCode, Phase};
use crate::connect::{self, ConnectError};
use crate::decisions::{Decision, Timings};
use crate::pool::Considered;
use crate::pool::Pool;
use crate::queue::Ticket;
use crate::relay;
use crate::select::{self, Algorithm, Candidate};
use crate::stats::Gauge;
use crate::stream::Stream;
use crate::{Balancer, Shutdown};

// ANCHOR: serve_client
/// Serves one accepted client. `_permit` is its place under
/// `max_connections`, given back when this returns.
pub async fn serve_client(
    balancer: Arc<Balancer>,
    client: TcpStream,
    client_addr: SocketAddr,
    shutdown: Shutdown,
    _permit: OwnedSemaphorePermit,
) {
    let started = Instant::now();
    let _open = Gauge::up(&balancer.stats.open);
    // The pool as it is now, for this client's whole life (but for a
    // client that waits in line before any backend is chosen, which
    // takes the newest pool when its turn comes): a reload meanwhile
    // changes nothing under it.
    let mut connection = Connection {
        pool: balancer.pool(),
        balancer: balancer.clone(),
        client_addr,
        front_addr: None,
        via: None,
        phase: Phase::Handshake,
        last_failure: EndCode::ConnectFailed,
        early: BytesMut::new(),
        trace: (balancer.decisions.enabled()
            || tracing::enabled!(tracing::Level::DEBUG))
        .then(Trace::default),
    };
    // The handshake and the connect are boxed: their futures are big (a
    // TLS session being set up) and short-lived, and a task is as big as
    // its biggest state for its whole life. Boxed, an idle connection's
    // task holds only what the relay needs. Until the relay starts, the
    // end of the drain simply drops the client.
    let setup = Box::pin(async {
        let mut client = client;
        connection.read_proxy_header(&mut client).await?;
        let shaking = Instant::now();
        let client = match connection.front_handshake(client).await {
            Ok(client) => {
                if let (Stream::Tls(_), Some(trace)) =
                    (&client, &mut connection.trace)
                {
                    trace.timings.handshake = Some(shaking.elapsed());
                }
                client
            }
            Err(err) => {
                let code = if err.kind() == io::ErrorKind::TimedOut {
                    EndCode::ClientHandshakeTimeout
                } else {
                    EndCode::ClientHandshake
                };
                info!(
                    client = %connection.client_addr,
                    phase = "client TLS handshake",
                    error = %err,
                    code = %code,
                    "failed"
                );
                return Err(code);
            }
        };
        // An `Err`: told why in the log already; the client is closed (or
        // reset, after a queue timeout) as `client` drops.
        let mut client = client;
        let (backend, guard) =
            connection.choose_and_connect(&mut client).await?;
        Ok((client, backend, guard))
    });
    // The cut is looked at first: a client in line whose turn comes at
    // the very moment the drain runs out (the cut freed a place) must
    // not start a connect then.
    let reached = tokio::select! {
        biased;
        () = shutdown.cut.cancelled() => None,
        reached = setup => Some(reached),
    };
    let (client, backend, guard) = match reached {
        Some(Ok(reached)) => reached,
        Some(Err(code)) => {
            connection.ended(code, None, started);
            return;
        }
        None => {
            let code = EndCode::Killed(connection.phase);
            info!(
                client = %connection.client_addr,
                code = %code,
                "cut at the end of the drain before reaching a backend"
            );
            connection.ended(code, None, started);
            return;
        }
    };
    let chosen = guard.backend();
    // How a TLS backend's certificate was checked, for its log line.
    let certificate = match &backend {
        Stream::Tls(_) => connection.pool.backend_tls.as_ref(),
        Stream::Plain(_) => None,
    }
    .map(|tls| tls.checked);
    let timeouts = connection.relay_timeouts();
    // The backend's own token: cut at the end of `lb`'s drain, or of the
    // backend's when a reload removed it.
    let cut = chosen.live.cut().clone();
    let relaying = Instant::now();
    let budget = &connection.balancer.buffers;
    let early = std::mem::take(&mut connection.early);
    let outcome =
        relay::relay(client, backend, timeouts, budget, early, &cut).await;
    if let Some(trace) = &mut connection.trace {
        trace.timings.relay = Some(relaying.elapsed());
    }
    let code = outcome.end.code();
    info!(
        client = %connection.client_addr,
        via = connection.via.map(tracing::field::display),
        backend = %chosen.id,
        up = outcome.up,
        down = outcome.down,
        ms = started.elapsed().as_millis() as u64,
        end = %outcome.end,
        code = %code,
        certificate,
        "closed"
    );
    chosen.live.stats.relayed(outcome.up, outcome.down);
    connection.ended(code, Some((chosen, &outcome)), started);
}
// ANCHOR_END: serve_client

/// What a decision record gathers on a client's way (`decisions.rs`):
/// only while an admin listener serves, or debug logging shows it.
#[derive(Default)]
struct Trace {
    /// The first pick: every backend as it saw them, and the algorithm's
    /// order (positions among them).
    first: Option<(Vec<Considered>, Vec<usize>)>,
    tried: Vec<(String, String)>,
    timings: Timings,
}

/// One client's way through `lb`, from its handshake to its backend: the
/// balancer, the pool it loaded when it arrived, and who it is.
pub struct Connection {
    balancer: Arc<Balancer>,
    pool: Arc<Pool>,
    /// The client: the socket's peer, or the source its PROXY header
    /// named under `accept_proxy`. Hashed, logged, recorded and passed
    /// on as the client's.
    client_addr: SocketAddr,
    /// The address the client connected to, when a PROXY header named
    /// it; otherwise asked of the socket only for a backend's PROXY
    /// header (a system call most clients never need).
    front_addr: Option<SocketAddr>,
    /// The socket's peer when a PROXY header named another client: the
    /// balancer in front.
    via: Option<SocketAddr>,
    /// Where it is: the second letter of its end code if the drain cuts
    /// it before the relay.
    phase: Phase,
    /// The end code the last failed connect gives.
    last_failure: EndCode,
    /// What the client sent while it waited in line: its backend gets it
    /// first.
    early: BytesMut,
    trace: Option<Trace>,
}

impl Connection {
    /// Counts a connection that ended with `code` and, with the admin
    /// listener on, records the decision.
    fn ended(
        &mut self,
        code: EndCode,
        served: Option<(&Arc<Backend>, &relay::Outcome)>,
        started: Instant,
    ) {
        let lasted = started.elapsed();
        self.balancer.stats.ended(code, lasted);
        let span = tracing::Span::current();
        span.record("code", code.as_str());
        if let Some((backend, _)) = served {
            span.record("backend", backend.id.as_str());
        }
        let Some(trace) = self.trace.take() else {
            return;
        };
        let algorithm = self.pool.config.algorithm;
        let (considered, order) = trace.first.unwrap_or_default();
        let decision = Decision {
            at: std::time::SystemTime::now(),
            client: self.client_addr,
            algorithm,
            key: (algorithm == Algorithm::Maglev)
                .then(|| select::client_key(self.client_addr.ip())),
            considered,
            order,
            tried: trace.tried,
            backend: served.map(|(backend, _)| backend.id.clone()),
            timings: trace.timings,
            code,
            end: match served {
                Some((_, outcome)) => outcome.end.to_string(),
                None => code.meaning().to_owned(),
            },
            up: served.map_or(0, |(_, outcome)| outcome.up),
            down: served.map_or(0, |(_, outcome)| outcome.down),
            lasted,
        };
        debug!(decision = %decision.to_json(), "decision");
        if self.balancer.decisions.enabled() {
            self.balancer.decisions.record(decision);
        }
    }

    // ANCHOR: choose_and_connect
    /// Walks the backends in the algorithm's order for this client until
    /// one is reached. A
    /// backend that fails is not tried again for this client, and when
    /// every backend left is full, the client waits in line for room as
    /// if all had been full from the start: up to `queue_timeout` in all.
    /// `Err` with the end code, after logging why, if none could be.
    async fn choose_and_connect(
        &mut self,
        client: &mut Stream,
    ) -> Result<(Stream, ActiveGuard), EndCode> {
        self.phase = Phase::Connect;
        let key = select::client_key(self.client_addr.ip());
        let deadline = Instant::now() + self.pool.config.limits.queue_timeout;
        let mut failed = vec![false; self.pool.backends.len()];
        let mut tries_left = self.pool.tries();
        // Its place in line, once it has had to wait.
        let mut ticket = None;
        while tries_left > 0 {
            let (mut order, mut whole) = self
                .wait_for_candidates(
                    key,
                    client,
                    deadline,
                    &mut failed,
                    &mut ticket,
                )
                .await?;
            if let Some(trace) = &mut self.trace
                && trace.first.is_none()
            {
                let considered = self.pool.considered(&failed);
                trace.first = Some((considered, order.clone()));
            }
            // The pool it chose in (a wait may have brought a newer one).
            let pool = self.pool.clone();
            // Only the first choice, until it fails or is full: then the
            // rest of the order, once.
            let mut position = 0;
            while tries_left > 0 {
                let Some(&index) = order.get(position) else {
                    if whole {
                        break;
                    }
                    whole = true;
                    let first = order[0];
                    pool.order(key, &failed, &mut Vec::new(), &mut order);
                    order.retain(|&index| index != first);
                    position = 0;
                    continue;
                };
                position += 1;
                let backend = &pool.backends[index];
                // Counted from now, so least-connections sees it while
                // the connect is in flight; `None` if it filled up
                // meanwhile (another client took the last place).
                let Some(guard) = self.track(backend) else {
                    continue;
                };
                // A place is taken: its turn in line, if it waited, is
                // used; and if more room came than it took (two places
                // freed at once, a reload), the next in line may have it.
                if let Some(ticket) = ticket.take() {
                    ticket.served();
                    if pool.pick(key, &failed, &mut Vec::new()).is_some() {
                        self.balancer.queue().place_freed();
                    }
                }
                // ANCHOR: try_backend
                tries_left -= 1;
                let tls = pool.backend_tls.as_ref();
                let header = backend.send_proxy.map(|version| {
                    proxy_protocol::proxy_header(
                        version,
                        self.client_addr,
                        self.front_addr(client),
                    )
                });
                let connecting = Instant::now();
                match connect::connect(
                    &backend.address,
                    tls,
                    self.connect_timeouts(),
                    header.as_deref(),
                )
                .await
                {
                    Ok(stream) => {
                        let took = connecting.elapsed();
                        backend
                            .live
                            .stats
                            .connect_seconds
                            .observe(took.as_secs_f64());
                        if let Some(trace) = &mut self.trace {
                            trace.timings.connect = Some(took);
                        }
                        self.connection_succeeded(backend);
                        return Ok((stream, guard));
                    }
                    Err(err) => {
                        failed[index] = true;
                        let others = failed.iter().filter(|&&f| !f).count();
                        let then = if tries_left > 0 && others > 0 {
                            "; trying the next backend"
                        } else {
                            ""
                        };
                        warn!(
                            client = %self.client_addr,
                            backend = %backend.id,
                            phase = err.phase,
                            error = %err.error,
                            "failed{then}"
                        );
                        self.connection_failed(backend, &err);
                    }
                }
                // ANCHOR_END: try_backend
            }
        }
        Err(self.unreachable(&failed))
    }
    // ANCHOR_END: choose_and_connect

    /// Counts a connection to `backend`, within its `max_connections` as
    /// a slow start may lower it.
    fn track(&self, backend: &Arc<Backend>) -> Option<ActiveGuard> {
        let slow_start = self.pool.slow_start();
        let ramp = backend.live.ramp(Instant::now(), slow_start);
        backend.try_track(backend.max_at(ramp))
    }

    // ANCHOR: wait_for_candidates
    /// The candidates for a client in the algorithm's order, leaving out
    /// those that already `failed` it, and whether that is the whole
    /// order: until a backend fails the client, only the first is
    /// chosen (unless a decision record shows the whole). When every backend left that is
    /// up is full, or clients are already waiting, it waits in line
    /// (`queue.rs`) until `deadline`, with `ticket` as its place in line.
    /// `Err` with the end code, after logging why, when there is nothing
    /// to wait for (every backend down or failed) or the wait ran out.
    async fn wait_for_candidates(
        &mut self,
        key: u64,
        client: &mut Stream,
        deadline: Instant,
        failed: &mut Vec<bool>,
        ticket: &mut Option<Ticket>,
    ) -> Result<(Vec<usize>, bool), EndCode> {
        let queue = self.balancer.queue().clone();
        // Grown only if used: a probe that hits needs neither.
        let (mut order, mut candidates) = (Vec::new(), Vec::<Candidate>::new());
        loop {
            if ticket.is_some() {
                // Back from waiting: a reload meanwhile may have brought
                // room (a backend, a higher limit) that only the newest
                // pool has. No backend is chosen yet, so it may move to
                // it; the backends that failed it stay failed, by id.
                self.take_newest_pool(failed);
            }
            let pool = self.pool.clone();
            // A newcomer that finds others waiting does not look for room:
            // a place free at this instant is being handed to the first
            // in line. One whose turn came looks.
            if ticket.is_some() || queue.waiting() == 0 {
                // Until a backend fails it, a client needs only the
                // first in the algorithm's order (a decision record
                // shows the whole).
                let whole = self.trace.is_some() || failed.contains(&true);
                if whole {
                    pool.order(key, failed, &mut candidates, &mut order);
                } else {
                    order.clear();
                    order.extend(pool.pick(key, failed, &mut candidates));
                }
                if !order.is_empty() {
                    return Ok((order, whole));
                }
            }
            if !pool.any_up_but_full(failed) {
                if pool
                    .backends
                    .iter()
                    .zip(failed.iter())
                    .any(|(backend, &f)| !f && backend.usable(Instant::now()))
                {
                    // Room, but others were in line first: wait behind them.
                } else if failed.contains(&true) {
                    return Err(self.unreachable(failed));
                } else {
                    self.log_no_backend();
                    return Err(EndCode::NoBackend);
                }
            }
            let waiting = match ticket.as_mut() {
                Some(ticket) => {
                    ticket.wait_again();
                    ticket
                }
                None => ticket.insert(queue.join()),
            };
            // Looked once more now that it is in line: a place freed
            // between the look above and joining is not missed.
            if pool.pick(key, failed, &mut candidates).is_some() {
                queue.place_freed();
            }
            // A limit that a slow start raises grows with no event to
            // wake the line: while one does, look again every tick.
            let now = Instant::now();
            let look_again = if pool.limits_ramping(now) {
                (now + RAMP_TICK).min(deadline)
            } else {
                deadline
            };
            self.phase = Phase::Queue;
            let waited_from = Instant::now();
            let turn = tokio::select! {
                turn = tokio::time::timeout_at(look_again, waiting.turn()) => {
                    turn
                }
                () = client_left(client, &mut self.early) => {
                    info!(
                        client = %self.client_addr,
                        phase = "queue",
                        code = %EndCode::ClientLeftQueue,
                        "left while waiting in line; its place is given up"
                    );
                    return Err(EndCode::ClientLeftQueue);
                }
            };
            self.phase = Phase::Connect;
            if let Some(trace) = &mut self.trace {
                trace.timings.queue += waited_from.elapsed();
            }
            if turn.is_err() && look_again >= deadline {
                warn!(
                    client = %self.client_addr,
                    phase = "queue",
                    waited = %crate::config::show_duration(
                        pool.config.limits.queue_timeout
                    ),
                    code = %EndCode::QueueTimeout,
                    "every backend full for the whole queue timeout; \
                     client reset"
                );
                // A reset, not a clean close: the client must not take
                // the silence for an answer.
                let _ = client.tcp().set_zero_linger();
                return Err(EndCode::QueueTimeout);
            }
        }
    }
    // ANCHOR_END: wait_for_candidates

    /// Moves this client, which has not chosen a backend yet, to the
    /// current pool if a reload swapped one in; `failed` follows, by id.
    fn take_newest_pool(&mut self, failed: &mut Vec<bool>) {
        let newest = self.balancer.pool();
        if Arc::ptr_eq(&newest, &self.pool) {
            return;
        }
        let failed_ids: Vec<&str> = self
            .pool
            .backends
            .iter()
            .zip(failed.iter())
            .filter(|&(_, &failed)| failed)
            .map(|(backend, _)| backend.id.as_str())
            .collect();
        *failed = newest
            .backends
            .iter()
            .map(|backend| failed_ids.contains(&backend.id.as_str()))
            .collect();
        self.pool = newest;
    }

    /// Reports a reached backend to its health state (passive marking),
    /// and logs the change of state it makes, if any.
    fn connection_succeeded(&self, backend: &Backend) {
        let now = Instant::now();
        if let Some(change) = backend
            .live
            .update_health(|state| state.connection_succeeded(now))
        {
            change.log(&backend.id);
        }
    }

    /// Reports a failed connection to its health state and its counters,
    /// and logs the change of state it makes, if any.
    fn connection_failed(&mut self, backend: &Backend, err: &ConnectError) {
        let why = &err.to_string();
        backend
            .live
            .stats
            .connect_failures
            .fetch_add(1, Ordering::Relaxed);
        self.last_failure = if err.error.kind() == io::ErrorKind::TimedOut {
            EndCode::ConnectTimeout
        } else {
            EndCode::ConnectFailed
        };
        if let Some(trace) = &mut self.trace {
            trace.tried.push((backend.id.clone(), why.clone()));
        }
        let now = Instant::now();
        let rules = &self.pool.rules_now(now);
        if let Some(change) = backend
            .live
            .update_health(|state| state.connection_failed(rules, now, why))
        {
            change.log(&backend.id);
        }
    }

    /// Where the client connected: the destination its PROXY header named,
    /// or the socket's own address (a connected socket always knows it).
    fn front_addr(&mut self, client: &Stream) -> SocketAddr {
        *self.front_addr.get_or_insert_with(|| {
            client
                .tcp()
                .local_addr()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
        })
    }

    /// Under `accept_proxy`: reads the PROXY header the balancer in front
    /// wrote before anything else (before the TLS handshake too), and
    /// takes the client and the front address from it. A header without
    /// addresses (v2 `LOCAL`, v1 `UNKNOWN`) leaves the socket's own.
    /// `Err` with the end code, after logging why, when there is no valid
    /// header in time: the client is then closed.
    async fn read_proxy_header(
        &mut self,
        client: &mut TcpStream,
    ) -> Result<(), EndCode> {
        if !self.pool.config.accept_proxy {
            return Ok(());
        }
        let limit = self.pool.config.timeouts.proxy_header;
        match proxy_protocol::read_header(client, limit).await {
            Ok(header) => {
                if let Some(told) = header.addresses {
                    self.via = Some(self.client_addr);
                    self.client_addr = told.source;
                    self.front_addr = Some(told.destination);
                }
                debug!(
                    client = %self.client_addr,
                    via = self.via.map(tracing::field::display),
                    version = %header.version,
                    "PROXY header read"
                );
                Ok(())
            }
            Err(err) => {
                let code = if err.timed_out() {
                    EndCode::ClientHandshakeTimeout
                } else {
                    EndCode::ClientHandshake
                };
                info!(
                    client = %self.client_addr,
                    phase = "PROXY header",
                    error = %err,
                    code = %code,
                    "refused: accept_proxy is on and the connection does \
                     not start with a valid PROXY header"
                );
                Err(code)
            }
        }
    }

    /// The client's TLS handshake, if the front speaks TLS: bounded in
    /// time, and in number (`max_handshakes` at once).
    async fn front_handshake(&self, client: TcpStream) -> io::Result<Stream> {
        let Some(acceptor) = self.balancer.front_tls.load_full() else {
            return Ok(Stream::Plain(client));
        };
        let limit = self.pool.config.timeouts.tls_handshake;
        let handshakes = self.balancer.handshakes.places.clone();
        let handshake = async {
            // Waiting for the client's first message costs no CPU, so it
            // takes no place under `max_handshakes`: a crowd of clients
            // that connect and never speak cannot keep the next one from
            // its handshake. The places bound the work that follows.
            let hello = LazyConfigAcceptor::new(Acceptor::default(), client);
            let start = hello.await?;
            let _turn = handshakes
                .acquire()
                .await
                .expect("the handshake semaphore is never closed");
            let _counted = Gauge::up(&self.balancer.stats.handshakes);
            start.into_stream(acceptor.config().clone()).await
        };
        match tokio::time::timeout(limit, handshake).await {
            Ok(Ok(stream)) => Ok(Stream::Tls(Box::new(stream.into()))),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(connect::timed_out(limit)),
        }
    }

    fn relay_timeouts(&self) -> relay::RelayTimeouts {
        let timeouts = &self.pool.config.timeouts;
        relay::RelayTimeouts {
            idle: timeouts.idle,
            half_closed: timeouts.half_closed,
        }
    }

    fn connect_timeouts(&self) -> connect::ConnectTimeouts {
        let timeouts = &self.pool.config.timeouts;
        connect::ConnectTimeouts {
            connect: timeouts.connect,
            tls_handshake: timeouts.tls_handshake,
            unacknowledged: Some(timeouts.unacknowledged)
                .filter(|limit| !limit.is_zero()),
            own: self.balancer.own_addr(),
        }
    }
}

// ANCHOR: client_left
/// Completes when `client`, waiting in line, ends its stream or resets
/// it. What it sends meanwhile (its request) is read into `early`, which
/// its backend gets first: reading is the only way to see an end of
/// stream behind the bytes. Past [`EARLY_MAX`] bytes it stops reading
/// (the kernel then holds the rest) and so stops watching.
///
/// A client that half-closes (ends its sending side, still waiting for
/// an answer) looks the same as one that left, and is taken as gone, as
/// HAProxy's `option abortonclose` does: few clients do that while they
/// wait, and a line held by clients long gone serves nobody.
async fn client_left(client: &mut Stream, early: &mut BytesMut) {
    use tokio::io::AsyncReadExt;
    while early.len() < EARLY_MAX {
        early.reserve(4096);
        match client.read_buf(early).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
    std::future::pending().await
}
// ANCHOR_END: client_left

/// The most a client waiting in line may send before its turn.
const EARLY_MAX: usize = 64 * 1024;

/// How often a client in line looks for room while a slow start raises a
/// backend's limit.
const RAMP_TICK: std::time::Duration = std::time::Duration::from_millis(100);

impl Connection {
    /// Logs that every backend tried for this client failed; the end
    /// code the last failure gives.
    fn unreachable(&self, failed: &[bool]) -> EndCode {
        let code = self.last_failure;
        warn!(
            client = %self.client_addr,
            phase = "connect",
            tried = failed.iter().filter(|&&f| f).count(),
            code = %code,
            "no backend could be reached; client closed"
        );
        code
    }

    /// Logs that no backend is up, at most once a second however many
    /// clients arrive, with the count of those it did not log: a storm of
    /// clients must not become a storm of log lines.
    fn log_no_backend(&self) {
        let client_addr = self.client_addr;
        let second = self.balancer.started.elapsed().as_secs();
        let log = &self.balancer.no_backend_log;
        if log.last_second.swap(second, Ordering::Relaxed) == second {
            log.unlogged.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let others = log.unlogged.swap(0, Ordering::Relaxed);
        warn!(
            client = %client_addr,
            phase = "choose",
            unlogged = others,
            code = %EndCode::NoBackend,
            "no backend is up; client closed (at most one such line a \
             second: `unlogged` counts the others)"
        );
    }
}
