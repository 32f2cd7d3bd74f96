//! One client, from its TLS handshake (if the front speaks TLS) to its
//! last byte: choose the backends to try, reach the first that answers,
//! relay, and log one line saying how it ended.
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

use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::rustls::server::Acceptor;
use tracing::{info, warn};

use crate::backend::{ActiveGuard, Backend};
use crate::connect;
use crate::health::HealthRules;
use crate::relay;
use crate::select::{self, Candidate};
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
    let _ = client.set_nodelay(true);
    // The handshake and the connect are boxed: their futures are big (a
    // TLS session being set up) and short-lived, and a task is as big as
    // its biggest state for its whole life. Boxed, an idle connection's
    // task holds only what the relay needs. Until the relay starts, the
    // end of the drain simply drops the client.
    let setup = Box::pin(async {
        let client = match balancer.front_handshake(client).await {
            Ok(client) => client,
            Err(err) => {
                info!(
                    client = %client_addr,
                    phase = "client TLS handshake",
                    error = %err,
                    "failed"
                );
                return None;
            }
        };
        // `None`: told why in the log already; the client is closed (or
        // reset, after a queue timeout) as `client` drops.
        let (backend, guard) =
            choose_and_connect(&balancer, &client, client_addr).await?;
        Some((client, backend, guard))
    });
    let Some(Some((client, backend, guard))) =
        shutdown.cut.run_until_cancelled(setup).await
    else {
        return;
    };
    let id = &guard.backend().id;
    // How a TLS backend's certificate was checked, for its log line.
    let certificate = match &backend {
        Stream::Tls(_) => balancer.backend_tls.as_ref(),
        Stream::Plain(_) => None,
    }
    .map(|tls| tls.checked);
    let timeouts = balancer.relay_timeouts();
    let outcome = relay::relay(client, backend, timeouts, &shutdown.cut).await;
    info!(
        client = %client_addr,
        backend = %id,
        up = outcome.up,
        down = outcome.down,
        ms = started.elapsed().as_millis() as u64,
        end = %outcome.end,
        certificate,
        "closed"
    );
}
// ANCHOR_END: serve_client

// ANCHOR: choose_and_connect
/// Walks the backends in the algorithm's order for this client until one
/// is reached; `None` (after logging why) if none could be. A backend
/// that fails is not tried again for this client, and when every backend
/// left is full, the client waits for room as if all had been full from
/// the start: up to `queue_timeout` in all.
async fn choose_and_connect(
    balancer: &Balancer,
    client: &Stream,
    client_addr: SocketAddr,
) -> Option<(Stream, ActiveGuard)> {
    let key = select::client_key(client_addr.ip());
    let deadline = Instant::now() + balancer.config.limits.queue_timeout;
    let mut failed = vec![false; balancer.backends.len()];
    let mut tries_left = balancer.tries();
    while tries_left > 0 {
        let order = balancer
            .wait_for_candidates(key, client, client_addr, deadline, &failed)
            .await?;
        for &index in &order {
            if tries_left == 0 {
                break;
            }
            let backend = &balancer.backends[index];
            // Counted from now, so least-connections sees it while the
            // connect is in flight; `None` if it filled up meanwhile
            // (another client took the last place): wait again.
            let Some(guard) = backend.try_track() else {
                continue;
            };
            tries_left -= 1;
            let tls = balancer.backend_tls.as_ref();
            match connect::connect(
                &backend.address,
                tls,
                balancer.connect_timeouts(),
            )
            .await
            {
                Ok(stream) => {
                    balancer.connection_succeeded(backend);
                    return Some((stream, guard));
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
                        client = %client_addr,
                        backend = %backend.id,
                        phase = err.phase,
                        error = %err.error,
                        "failed{then}"
                    );
                    balancer.connection_failed(backend, &err.to_string());
                }
            }
        }
    }
    log_unreachable(client_addr, &failed);
    None
}
// ANCHOR_END: choose_and_connect

/// Logs that every backend tried for a client failed.
fn log_unreachable(client_addr: SocketAddr, failed: &[bool]) {
    warn!(
        client = %client_addr,
        phase = "connect",
        tried = failed.iter().filter(|&&f| f).count(),
        "no backend could be reached; client closed"
    );
}

impl Balancer {
    /// The candidates for a client in the algorithm's order, leaving out
    /// those that already `failed` it. When every backend left that is up
    /// is full, waits (until `deadline`) for one to make room. `None`,
    /// after logging why, when there is nothing to wait for (every
    /// backend down or failed) or the wait ran out.
    async fn wait_for_candidates(
        &self,
        key: u64,
        client: &Stream,
        client_addr: SocketAddr,
        deadline: Instant,
        failed: &[bool],
    ) -> Option<Vec<usize>> {
        let mut order = Vec::with_capacity(self.backends.len());
        let mut candidates = Vec::with_capacity(self.backends.len());
        loop {
            self.order(key, failed, &mut candidates, &mut order);
            if !order.is_empty() {
                return Some(order);
            }
            // None has room now. Ask to be woken when a backend frees a
            // place, then look once more: a place freed between the look
            // above and this request is not missed. (Only now: a client
            // that finds room at once never touches the queue.)
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            self.order(key, failed, &mut candidates, &mut order);
            if !order.is_empty() {
                return Some(order);
            }
            let now = Instant::now();
            let full_but_up =
                self.backends.iter().zip(failed).any(|(backend, &failed)| {
                    !failed && backend.up_but_full(now)
                });
            if !full_but_up {
                if failed.contains(&true) {
                    log_unreachable(client_addr, failed);
                } else {
                    self.log_no_backend(client_addr);
                }
                return None;
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                warn!(
                    client = %client_addr,
                    phase = "queue",
                    waited = %crate::config::show_duration(
                        self.config.limits.queue_timeout
                    ),
                    "every backend full for the whole queue timeout; \
                     client reset"
                );
                // A reset, not a clean close: the client must not take
                // the silence for an answer.
                let _ = client.tcp().set_zero_linger();
                return None;
            }
        }
    }

    /// Fills `order` with the backends to try for the client `key`, in the
    /// algorithm's order, leaving out those that `failed` it.
    fn order(
        &self,
        key: u64,
        failed: &[bool],
        candidates: &mut Vec<Candidate>,
        order: &mut Vec<usize>,
    ) {
        let now = Instant::now();
        candidates.clear();
        candidates.extend(self.backends.iter().zip(failed).map(
            |(backend, &failed)| Candidate {
                weight: backend.weight,
                active: backend.active(),
                usable: !failed && backend.usable(now),
            },
        ));
        self.selector.order(candidates, key, order);
    }

    /// Logs that no backend is up, at most once a second however many
    /// clients arrive, with the count of those it did not log: a storm of
    /// clients must not become a storm of log lines.
    fn log_no_backend(&self, client_addr: SocketAddr) {
        let second = self.started.elapsed().as_secs();
        let log = &self.no_backend_log;
        if log.last_second.swap(second, Ordering::Relaxed) == second {
            log.unlogged.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let others = log.unlogged.swap(0, Ordering::Relaxed);
        warn!(
            client = %client_addr,
            phase = "choose",
            unlogged = others,
            "no backend is up; client closed (at most one such line a \
             second: `unlogged` counts the others)"
        );
    }

    /// Reports a reached backend to its health state (passive marking),
    /// and logs the change of state it makes, if any.
    fn connection_succeeded(&self, backend: &Backend) {
        let now = Instant::now();
        if let Some(change) =
            backend.update_health(|state| state.connection_succeeded(now))
        {
            change.log(&backend.id);
        }
    }

    /// Reports a failed connection to its health state, and logs the
    /// change of state it makes, if any.
    fn connection_failed(&self, backend: &Backend, why: &str) {
        let rules = HealthRules::from(&self.config.health);
        let now = Instant::now();
        if let Some(change) = backend
            .update_health(|state| state.connection_failed(&rules, now, why))
        {
            change.log(&backend.id);
        }
    }

    fn tries(&self) -> usize {
        match self.config.retries {
            Some(retries) => retries as usize + 1,
            None => usize::MAX,
        }
    }

    /// The client's TLS handshake, if the front speaks TLS: bounded in
    /// time, and in number (`max_handshakes` at once).
    async fn front_handshake(&self, client: TcpStream) -> io::Result<Stream> {
        let Some(acceptor) = &self.front_tls else {
            return Ok(Stream::Plain(client));
        };
        let limit = self.config.timeouts.tls_handshake;
        let handshake = async {
            // Waiting for the client's first message costs no CPU, so it
            // takes no place under `max_handshakes`: a crowd of clients
            // that connect and never speak cannot keep the next one from
            // its handshake. The places bound the work that follows.
            let hello = LazyConfigAcceptor::new(Acceptor::default(), client);
            let start = hello.await?;
            let _turn = self
                .handshakes
                .acquire()
                .await
                .expect("the handshake semaphore is never closed");
            start.into_stream(acceptor.config().clone()).await
        };
        match tokio::time::timeout(limit, handshake).await {
            Ok(Ok(stream)) => Ok(Stream::Tls(Box::new(stream.into()))),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(connect::timed_out(limit)),
        }
    }

    fn relay_timeouts(&self) -> relay::RelayTimeouts {
        relay::RelayTimeouts {
            idle: self.config.timeouts.idle,
            half_closed: self.config.timeouts.half_closed,
        }
    }

    pub(crate) fn connect_timeouts(&self) -> connect::ConnectTimeouts {
        connect::ConnectTimeouts {
            connect: self.config.timeouts.connect,
            tls_handshake: self.config.timeouts.tls_handshake,
        }
    }
}
