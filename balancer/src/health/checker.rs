//! The active checks: one task per backend that tries it every
//! `interval` and tells its [`HealthState`](super::HealthState) how it
//! went.
//!
//! A check reaches the backend the way a client's connection does,
//! through [`connect::connect`]: TCP, then TLS for a `tls://` backend,
//! with SNI and the same certificate verification. A backend whose
//! certificate clients would refuse fails its checks too. With `kind =
//! "tcp"` that is the whole check; with `kind = "http"` it then sends
//! `GET path` and wants a 2xx status back. A `send_proxy` backend gets a
//! PROXY header first, one that names no client (see `Checker::check`).
//! One `timeout` covers all of it,
//! so a backend that accepts and then says nothing fails like one that
//! refuses.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::Request;
use hyper::header::{CONNECTION, HOST, USER_AGENT};
use hyper_util::rt::TokioIo;
use lab_common::logging::error_chain;
use lab_common::proxy_protocol;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use std::collections::HashMap;

use super::{ChangeKind, HealthRules};
use crate::backend::Backend;
use crate::config::{CheckKind, HealthConfig, show_duration};
use crate::connect::{self, BackendTls, ConnectTimeouts};
use crate::live::Admin;
use crate::pool::Pool;
use crate::queue::Queue;
use crate::stream::Stream;

/// What every check task needs to know, shared by all of them.
#[derive(Debug)]
struct Checker {
    /// Woken when a backend comes back: the clients waiting for room.
    queue: Arc<Queue>,
    kind: CheckKind,
    /// What an HTTP check asks for.
    path: String,
    interval: Duration,
    timeout: Duration,
    rules: HealthRules,
    /// How `tls://` backends are verified: as for clients' traffic.
    tls: Option<BackendTls>,
    /// `lb`'s own listener, which a check never dials (a loop).
    own: Option<SocketAddr>,
}

/// The running checkers, one per backend, following the pool: a reload
/// or the operator starts and stops them one backend at a time.
#[derive(Debug)]
pub struct Checkers {
    tracker: TaskTracker,
    /// Parent of every checker's own token: `lb`'s shutdown stops all.
    stop: CancellationToken,
    running: HashMap<String, Running>,
}

/// One backend's checker: its token, and what it checks with. A backend
/// whose address, `[health]`, backend TLS or `send_proxy` changes gets a
/// new checker; one whose settings stay keeps its checker, and its health
/// (kept in its live record) whatever happens.
#[derive(Debug)]
struct Running {
    stop: CancellationToken,
    settings: Settings,
}

#[derive(Debug, PartialEq)]
struct Settings {
    address: String,
    health: HealthConfig,
    ca: Option<std::path::PathBuf>,
    insecure: bool,
    send_proxy: Option<proxy_protocol::Version>,
}

impl Checkers {
    pub fn new() -> Checkers {
        Checkers {
            tracker: TaskTracker::new(),
            stop: CancellationToken::new(),
            running: HashMap::new(),
        }
    }

    // ANCHOR: follow
    /// Starts a checker for each backend of `pool` that wants one (not
    /// disabled, checks not off) and has none with the same settings,
    /// and stops the others. With `kind = "off"` none runs, and only
    /// passive marks (failed client connections) take backends out.
    ///
    /// A new checker checks its backend at once, so one that is dead when
    /// `lb` starts is out after its first check. After that, backend `i`
    /// of the `n` started together is checked at `i × interval / n` into
    /// each interval: a hundred backends are not all dialled in the same
    /// millisecond, and no backend's verdict is older than one interval.
    pub fn follow(
        &mut self,
        pool: &Pool,
        queue: &Arc<Queue>,
        own: Option<SocketAddr>,
    ) {
        if self.stop.is_cancelled() {
            return;
        }
        let config = &pool.config;
        let mut wanted = HashMap::new();
        for backend in &pool.backends {
            let disabled = backend.live.control().admin == Admin::Disabled;
            if config.health.kind == CheckKind::Off || disabled {
                continue;
            }
            let settings = Settings {
                address: backend.address.to_string(),
                health: config.health.clone(),
                ca: config.tls.ca.clone(),
                insecure: config.tls.insecure,
                send_proxy: backend.send_proxy,
            };
            wanted.insert(backend.id.clone(), (backend.clone(), settings));
        }
        self.running.retain(|id, running| {
            let keep = wanted
                .get(id)
                .is_some_and(|(_, settings)| *settings == running.settings);
            if !keep {
                running.stop.cancel();
            }
            keep
        });
        let checker = Arc::new(Checker::new(
            &config.health,
            pool.backend_tls.clone(),
            queue,
            own,
        ));
        let start = Instant::now();
        let count = wanted.len();
        for (i, (id, (backend, settings))) in wanted.into_iter().enumerate() {
            if self.running.contains_key(&id) {
                continue;
            }
            let stop = self.stop.child_token();
            let first_tick =
                first_tick(start, i, count, config.health.interval);
            self.tracker.spawn(check_loop(
                backend,
                checker.clone(),
                first_tick,
                stop.clone(),
            ));
            self.running.insert(id, Running { stop, settings });
        }
    }
    // ANCHOR_END: follow

    /// Stops every checker (`lb` is shutting down).
    pub fn stop(&mut self) {
        self.stop.cancel();
        self.running.clear();
    }

    /// What to wait on for the checkers to end, after [`Checkers::stop`].
    pub fn tracker(&self) -> TaskTracker {
        self.tracker.close();
        self.tracker.clone()
    }
}

impl Default for Checkers {
    fn default() -> Checkers {
        Checkers::new()
    }
}

impl Checker {
    fn new(
        config: &HealthConfig,
        tls: Option<BackendTls>,
        queue: &Arc<Queue>,
        own: Option<SocketAddr>,
    ) -> Checker {
        Checker {
            own,
            queue: queue.clone(),
            kind: config.kind,
            path: config.path.clone(),
            interval: config.interval,
            timeout: config.timeout,
            rules: HealthRules::from(config),
            tls,
        }
    }
}

/// When backend `i` of `n` has its first check after the one at `start`:
/// `i × interval / n` after `start`, or a whole interval for backend 0,
/// whose slot is the start itself.
fn first_tick(
    start: Instant,
    i: usize,
    n: usize,
    interval: Duration,
) -> Instant {
    // In nanoseconds, so that the product cannot overflow a Duration.
    let offset = interval.as_nanos() * i as u128 / n.max(1) as u128;
    let offset = Duration::from_nanos(
        u64::try_from(offset).expect("an offset is shorter than the interval"),
    );
    if offset.is_zero() {
        start + interval
    } else {
        start + offset
    }
}

// ANCHOR: check_loop
// ANCHOR: check_task
/// Checks one backend now, then at `first_tick` and every interval after
/// it, until `shutdown`.
async fn check_loop(
    backend: Arc<Backend>,
    checker: Arc<Checker>,
    first_tick: Instant,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval_at(first_tick, checker.interval);
    // A check that ran long (a timeout longer than the interval) skips
    // the ticks it missed rather than firing them in a burst, and keeps
    // the backend in its own slot of the interval.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        // Shutdown does not wait for a check in progress: it can take a
        // whole `timeout`, and its verdict no longer matters.
        let checking = Instant::now();
        let outcome = tokio::select! {
            () = shutdown.cancelled() => return,
            outcome = checker.check(&backend) => outcome,
        };
        backend
            .live
            .stats
            .checked(outcome.clone().err(), checking.elapsed());
        record(&backend, &checker.rules, checking, outcome, &checker.queue);
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
    }
}
// ANCHOR_END: check_task

/// Gives one check's outcome to the backend's state and logs what
/// changed.
fn record(
    backend: &Backend,
    rules: &HealthRules,
    started: Instant,
    outcome: Result<(), String>,
    queue: &Queue,
) {
    let id = &backend.id;
    match &outcome {
        Ok(()) => {
            tracing::debug!(backend = %id, phase = "health", "check passed");
        }
        Err(why) => tracing::debug!(
            backend = %id,
            phase = "health",
            "check failed: {why}"
        ),
    }
    // The end of a cooldown has no event of its own; each check looks
    // (see `HealthState::cooldown_over`).
    let live = &backend.live;
    let back = live.update_health(|state| state.cooldown_over(Instant::now()));
    let change = live.update_health(|state| match &outcome {
        Ok(()) => state.check_passed(rules, started),
        Err(why) => state.check_failed(rules, started, why),
    });
    for change in back.into_iter().chain(change) {
        change.log(id);
        // Back in: clients waiting for room may find it here.
        if matches!(change.kind, ChangeKind::Up | ChangeKind::Back) {
            queue.wake_all();
        }
    }
}
// ANCHOR_END: check_loop

impl Checker {
    /// One check of `backend`: `Ok` if it passed, or why it failed.
    async fn check(&self, backend: &Backend) -> Result<(), String> {
        // Where the check was when the timeout struck, for the message.
        let mut phase = if backend.address.tls {
            "connect + TLS handshake"
        } else {
            "connect"
        };
        let attempt = async {
            // One `timeout` bounds the whole check, below; the phases get
            // no timers of their own, so that one clock alone says when
            // the check ran out, and `phase` where it was.
            let timeouts = ConnectTimeouts {
                connect: Duration::MAX,
                tls_handshake: Duration::MAX,
                unacknowledged: None,
                own: self.own,
            };
            // A backend that expects a PROXY header refuses a check that
            // sends none, so a check sends one that says "this is the
            // proxy itself": v2's LOCAL command, which the specification
            // gives for connections a proxy makes on its own (health
            // checks are its example), and whose addresses the server
            // ignores. v1 has no LOCAL; its nearest is `PROXY UNKNOWN`,
            // which the server must also accept, with the connection's
            // own addresses. No client stands behind a check, so no
            // address is claimed.
            let header = backend.send_proxy.map(proxy_protocol::local_header);
            let stream = connect::connect(
                &backend.address,
                self.tls.as_ref(),
                timeouts,
                header.as_deref(),
            )
            .await
            .map_err(|err| err.to_string())?;
            match self.kind {
                CheckKind::Http => {
                    phase = "HTTP answer";
                    let host = backend.address.host_port.to_string();
                    http_check(stream, &host, &self.path).await
                }
                CheckKind::Tcp | CheckKind::Off => Ok(()),
            }
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!(
                "{phase}: timed out after {}",
                show_duration(self.timeout)
            )),
        }
    }
}

// ANCHOR: http_check
/// Sends `GET path` to `host` over `stream` and wants a 2xx status.
///
/// hyper reads the answer: a status line it cannot parse (a server that
/// is not speaking HTTP, or says garbage) fails the check as surely as a
/// 503 does, and an `HTTP/1.1 200` hidden in the body cannot pass it.
async fn http_check(
    stream: Stream,
    host: &str,
    path: &str,
) -> Result<(), String> {
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            // hyper's own message is often only "connection error".
            .map_err(|err| format!("HTTP: {}", error_chain(&err)))?;
    let request = Request::get(path)
        // HTTP/1.1 requires it, and a backend serving several sites
        // answers by it.
        .header(HOST, host)
        .header(USER_AGENT, "lb-health-check")
        // One request per check; the backend need not keep it open.
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|err| format!("HTTP: {path}: {err}"))?;
    // ANCHOR_END: http_check
    // The connection does the reading and writing: it must be polled
    // while we wait for the answer. It may finish first: after the answer
    // to a `Connection: close` request it is done, and the answer is
    // waiting; or it closed before one came, and the answer is an error.
    let answer = sender.send_request(request);
    tokio::pin!(answer);
    let answer = tokio::select! {
        answer = &mut answer => answer,
        ended = connection => match ended {
            Ok(()) => answer.await,
            Err(err) => Err(err),
        },
    };
    let response =
        answer.map_err(|err| format!("HTTP: {}", error_chain(&err)))?;
    // The status line is the verdict; the body is not read, and goes
    // with the connection when it is dropped here.
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("HTTP GET {path} answered {status}"))
    }
}

#[cfg(test)]
mod tests {
    //! Over real sockets on 127.0.0.1, with intervals of 50 ms. Time is
    //! not paused here: paused time jumps ahead whenever the runtime waits
    //! on a socket, and would fire timeouts that never ran out. The tests
    //! wait on the log instead, through the capturing subscriber below,
    //! each wait bounded.

    use std::collections::BTreeMap;
    use std::fmt;
    use std::net::SocketAddr;

    use dummy_servers::testing::RunningBackend;
    use lab_common::testing::{TestCerts, deadline};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::watch;

    use super::*;
    use crate::config::BackendConfig;
    use crate::live::Live;

    const INTERVAL: Duration = Duration::from_millis(50);

    fn config(kind: CheckKind) -> HealthConfig {
        HealthConfig {
            kind,
            path: "/health".to_owned(),
            interval: INTERVAL,
            timeout: Duration::from_millis(500),
            rise: 2,
            fall: 3,
            failures: 3,
            cooldown: Duration::from_secs(10),
            slow_start: Duration::ZERO,
            ..crate::config::Config::default().health
        }
    }

    fn backend(address: &str) -> Arc<Backend> {
        let address = address.parse().expect("a test address parses");
        new_backend(&BackendConfig::at(address))
    }

    fn new_backend(config: &BackendConfig) -> Arc<Backend> {
        let live = Live::new(&config.id, &CancellationToken::new());
        Arc::new(Backend::new(config, Arc::new(live), Queue::new()))
    }

    /// Checks run on the test's own runtime (one thread, so the
    /// capturing subscriber set for this thread sees them), stopped when
    /// this is dropped.
    struct Running {
        shutdown: CancellationToken,
        tracker: TaskTracker,
    }

    impl Running {
        fn spawn(
            backends: &[Arc<Backend>],
            config: &HealthConfig,
            tls: Option<BackendTls>,
        ) -> Running {
            let running = Running {
                shutdown: CancellationToken::new(),
                tracker: TaskTracker::new(),
            };
            // As `Checkers::follow` starts them, without a pool.
            if config.kind != CheckKind::Off {
                let checker =
                    Arc::new(Checker::new(config, tls, &Queue::new(), None));
                let start = Instant::now();
                for (i, backend) in backends.iter().enumerate() {
                    let first =
                        first_tick(start, i, backends.len(), config.interval);
                    running.tracker.spawn(check_loop(
                        backend.clone(),
                        checker.clone(),
                        first,
                        running.shutdown.clone(),
                    ));
                }
            }
            running.tracker.close();
            running
        }
    }

    impl Drop for Running {
        fn drop(&mut self) {
            self.shutdown.cancel();
        }
    }

    // ANCHOR: capture
    /// One event as the log would show it: its fields, `message` among
    /// them.
    #[derive(Clone, Debug)]
    struct Logged {
        level: tracing::Level,
        fields: BTreeMap<&'static str, String>,
    }

    impl Logged {
        fn field(&self, name: &str) -> Option<&str> {
            self.fields.get(name).map(String::as_str)
        }

        fn message(&self) -> &str {
            self.field("message").unwrap_or_default()
        }

        fn is_check(&self, passed: bool) -> bool {
            let message = self.message();
            if passed {
                message == "check passed"
            } else {
                message.starts_with("check failed: ")
            }
        }
    }

    impl tracing::field::Visit for Logged {
        fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
            self.fields.insert(field.name(), value.to_owned());
        }

        fn record_debug(
            &mut self,
            field: &tracing::field::Field,
            value: &dyn fmt::Debug,
        ) {
            self.fields.insert(field.name(), format!("{value:?}"));
        }
    }

    /// A subscriber that keeps every event, and lets a test wait for the
    /// one it expects. tracing-subscriber's `fmt` writes text; this keeps
    /// the fields, which is what the tests look at.
    struct Capture {
        events: watch::Sender<Vec<Logged>>,
    }

    impl tracing::Subscriber for Capture {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }

        fn new_span(
            &self,
            _: &tracing::span::Attributes<'_>,
        ) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }

        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {
        }

        fn record_follows_from(
            &self,
            _: &tracing::span::Id,
            _: &tracing::span::Id,
        ) {
        }

        fn event(&self, event: &tracing::Event<'_>) {
            let mut logged = Logged {
                level: *event.metadata().level(),
                fields: BTreeMap::new(),
            };
            event.record(&mut logged);
            self.events.send_modify(|events| events.push(logged));
        }

        fn enter(&self, _: &tracing::span::Id) {}

        fn exit(&self, _: &tracing::span::Id) {}
    }

    /// The log of this test's thread (where a `#[tokio::test]` runtime
    /// runs every task), until the guard is dropped.
    struct Log {
        events: watch::Receiver<Vec<Logged>>,
        _guard: tracing::subscriber::DefaultGuard,
    }

    impl Log {
        fn capture() -> Log {
            let (events, receiver) = watch::channel(Vec::new());
            Log {
                events: receiver,
                _guard: tracing::subscriber::set_default(Capture { events }),
            }
        }

        /// What has been logged of `backend` so far.
        fn of(&self, backend: &Backend) -> Vec<Logged> {
            of(&self.events.borrow(), backend)
        }

        /// Waits until `backend` has `count` events that `wanted`
        /// accepts, and returns its events so far.
        async fn wait_for(
            &mut self,
            backend: &Backend,
            count: usize,
            wanted: impl Fn(&Logged) -> bool,
        ) -> Vec<Logged> {
            let what = format!("{count} such events of {}", backend.id);
            let seen = deadline(
                &what,
                self.events.wait_for(|events| {
                    let events = of(events, backend);
                    events.iter().filter(|event| wanted(event)).count() >= count
                }),
            )
            .await
            .expect("the subscriber lives as long as the log");
            of(&seen, backend)
        }

        /// Waits for the first `change` ("DOWN", "UP"...) of `backend`
        /// and returns its events up to that one.
        async fn wait_for_change(
            &mut self,
            backend: &Backend,
            change: &str,
        ) -> Vec<Logged> {
            let mut events = self
                .wait_for(backend, 1, |event| {
                    event.field("change") == Some(change)
                })
                .await;
            let at = events
                .iter()
                .position(|event| event.field("change") == Some(change))
                .expect("waited for it");
            events.truncate(at + 1);
            events
        }
    }

    fn of(events: &[Logged], backend: &Backend) -> Vec<Logged> {
        events
            .iter()
            .filter(|event| event.field("backend") == Some(&backend.id))
            .cloned()
            .collect()
    }
    // ANCHOR_END: capture

    /// How many checks with the given outcome come in a row just before
    /// the last event of `events` (a change of state).
    fn run_before_last(events: &[Logged], passed: bool) -> usize {
        let (_, before) = events.split_last().expect("a change was logged");
        before
            .iter()
            .rev()
            .filter(|event| event.is_check(true) || event.is_check(false))
            .take_while(|event| event.is_check(passed))
            .count()
    }

    fn changes(events: &[Logged]) -> Vec<String> {
        events
            .iter()
            .filter(|event| event.field("change").is_some())
            .map(|event| event.message().to_owned())
            .collect()
    }

    /// An address where nothing listens: connections to it are refused.
    async fn closed_port() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("bound")
    }

    // ANCHOR: fall_rise_test
    #[tokio::test]
    async fn a_backend_that_goes_away_is_down_after_fall_checks_and_back_after_rise()
     {
        let mut log = Log::capture();
        let server = RunningBackend::start().await;
        let other = RunningBackend::start().await;
        let backends = [
            backend(&server.addr.to_string()),
            backend(&other.addr.to_string()),
        ];
        let config = config(CheckKind::Tcp);
        let _checks = Running::spawn(&backends, &config, None);
        let watched = &backends[0];

        log.wait_for(watched, 2, |event| event.is_check(true)).await;
        assert!(watched.usable(Instant::now()));
        let addr = server.stop().await;

        let events = log.wait_for_change(watched, "DOWN").await;
        assert_eq!(run_before_last(&events, false), config.fall as usize);
        let down = events.last().expect("the change");
        assert_eq!(down.level, tracing::Level::WARN);
        assert_eq!(down.field("phase"), Some("health"));
        assert!(
            down.message()
                .starts_with("DOWN after 3 failed checks: connect: "),
            "{}",
            down.message()
        );
        assert_eq!(changes(&events).len(), 1, "{:?}", changes(&events));
        assert!(!watched.usable(Instant::now()));

        let _server = RunningBackend::restart(addr).await;
        let events = log.wait_for_change(watched, "UP").await;
        assert_eq!(run_before_last(&events, true), config.rise as usize);
        let up = events.last().expect("the change");
        assert_eq!(up.level, tracing::Level::INFO);
        assert_eq!(up.message(), "UP after 2 passed checks");
        assert!(watched.usable(Instant::now()));

        // The other backend never went anywhere.
        assert_eq!(changes(&log.of(&backends[1])), Vec::<String>::new());
        assert!(backends[1].usable(Instant::now()));
    }
    // ANCHOR_END: fall_rise_test

    #[tokio::test]
    async fn a_backend_dead_at_start_is_down_after_its_first_check() {
        let mut log = Log::capture();
        let dead = backend(&closed_port().await.to_string());
        let _checks = Running::spawn(
            std::slice::from_ref(&dead),
            &config(CheckKind::Tcp),
            None,
        );

        let events = log.wait_for_change(&dead, "DOWN").await;
        assert_eq!(events.len(), 2, "one failed check, then DOWN: {events:?}");
        assert!(events[0].is_check(false));
        assert!(
            events[1]
                .message()
                .starts_with("DOWN after its first check failed: connect: "),
            "{}",
            events[1].message()
        );
        assert!(!dead.usable(Instant::now()));
    }

    #[tokio::test]
    async fn http_checks_pass_on_the_dummy_backends_health() {
        let mut log = Log::capture();
        let server = RunningBackend::start().await;
        let healthy = backend(&server.addr.to_string());
        let _checks = Running::spawn(
            std::slice::from_ref(&healthy),
            &config(CheckKind::Http),
            None,
        );

        let events = log
            .wait_for(&healthy, 3, |event| event.is_check(true))
            .await;
        assert!(
            events.iter().all(|event| event.is_check(true)),
            "{events:?}"
        );
        assert!(healthy.usable(Instant::now()));
    }

    /// A server that reads one request head at a time and answers each
    /// with `answer` (`None`: never answers, and keeps the connection
    /// open). Returns its address and the request heads it read.
    async fn raw_server(
        answer: Option<&'static str>,
    ) -> (SocketAddr, watch::Receiver<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("bound");
        let (seen, heads) = watch::channel(Vec::new());
        tokio::spawn(async move {
            let mut stalled = Vec::new();
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut head = Vec::new();
                let mut buf = [0; 1024];
                while !head.ends_with(b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                seen.send_modify(|heads| heads.push(head));
                match answer {
                    Some(answer) => {
                        let _ = socket.write_all(answer.as_bytes()).await;
                    }
                    None => stalled.push(socket),
                }
            }
        });
        (addr, heads)
    }

    #[tokio::test]
    async fn an_http_check_sends_get_path_with_host_and_passes_on_2xx() {
        let mut log = Log::capture();
        let (addr, heads) =
            raw_server(Some("HTTP/1.1 204 No Content\r\n\r\n")).await;
        let server = backend(&addr.to_string());
        let _checks = Running::spawn(
            std::slice::from_ref(&server),
            &config(CheckKind::Http),
            None,
        );

        let events =
            log.wait_for(&server, 2, |event| event.is_check(true)).await;
        assert!(
            events.iter().all(|event| event.is_check(true)),
            "{events:?}"
        );
        let head = heads.borrow()[0].to_ascii_lowercase();
        assert!(head.starts_with("get /health http/1.1\r\n"), "{head}");
        assert!(head.contains(&format!("\r\nhost: {addr}\r\n")), "{head}");
    }

    /// The log line of the first change of a backend whose server
    /// answers an HTTP check with `answer`.
    async fn first_change_for_answer(answer: &'static str) -> String {
        let mut log = Log::capture();
        let (addr, _) = raw_server(Some(answer)).await;
        let server = backend(&addr.to_string());
        let _checks = Running::spawn(
            std::slice::from_ref(&server),
            &config(CheckKind::Http),
            None,
        );
        let events = log.wait_for_change(&server, "DOWN").await;
        events.last().expect("the change").message().to_owned()
    }

    #[tokio::test]
    async fn an_http_check_fails_on_a_503() {
        let down = first_change_for_answer(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n",
        )
        .await;
        assert_eq!(
            down,
            "DOWN after its first check failed: \
             HTTP GET /health answered 503 Service Unavailable"
        );
    }

    #[tokio::test]
    async fn an_http_check_fails_on_an_answer_that_is_not_http() {
        // A TCP check would pass: the server accepts, and answers.
        let down = first_change_for_answer("ok 200\r\n\r\n").await;
        assert!(down.contains("first check failed: HTTP: "), "{down}");
    }

    #[tokio::test]
    async fn an_http_check_of_a_server_that_never_answers_fails_at_timeout() {
        let mut log = Log::capture();
        let (addr, heads) = raw_server(None).await;
        let server = backend(&addr.to_string());
        let config = HealthConfig {
            timeout: Duration::from_millis(300),
            ..config(CheckKind::Http)
        };
        let started = Instant::now();
        let _checks =
            Running::spawn(std::slice::from_ref(&server), &config, None);

        let events = log.wait_for_change(&server, "DOWN").await;
        let waited = started.elapsed();
        assert_eq!(
            events.last().expect("the change").message(),
            format!(
                "DOWN after its first check failed: \
                 HTTP answer: timed out after 300ms"
            )
        );
        assert!(waited >= config.timeout, "gave up after {waited:?}");
        let head = heads.borrow()[0].clone();
        assert!(head.starts_with("GET /health "), "the request was read");
    }

    // ANCHOR: tls_check_test
    #[tokio::test]
    async fn a_tls_backend_passes_with_its_ca_and_fails_with_another() {
        let mut log = Log::capture();
        let certs = TestCerts::new();
        let server = RunningBackend::start_tls(certs.server_config()).await;
        let address = format!("tls://{}", server.addr);

        for kind in [CheckKind::Tcp, CheckKind::Http] {
            let right = backend(&address);
            let tls = BackendTls::verify(certs.client_config());
            let _checks = Running::spawn(
                std::slice::from_ref(&right),
                &config(kind),
                Some(tls),
            );
            let events =
                log.wait_for(&right, 2, |event| event.is_check(true)).await;
            assert!(
                events.iter().all(|event| event.is_check(true)),
                "{kind}: {events:?}"
            );
        }

        let other_ca = TestCerts::new();
        for kind in [CheckKind::Tcp, CheckKind::Http] {
            let wrong = BackendConfig {
                id: format!("{kind} with another CA"),
                ..BackendConfig::at(address.parse().expect("parses"))
            };
            let wrong = new_backend(&wrong);
            let tls = BackendTls::verify(other_ca.client_config());
            let _checks = Running::spawn(
                std::slice::from_ref(&wrong),
                &config(kind),
                Some(tls),
            );
            let events = log.wait_for_change(&wrong, "DOWN").await;
            let down = events.last().expect("the change").message();
            assert!(
                down.contains("first check failed: TLS handshake: "),
                "{kind}: {down}"
            );
        }
    }
    // ANCHOR_END: tls_check_test

    #[tokio::test]
    async fn the_next_check_reports_the_end_of_a_cooldown() {
        let mut log = Log::capture();
        let server = RunningBackend::start().await;
        let flaky = backend(&server.addr.to_string());
        let config = HealthConfig {
            cooldown: Duration::from_millis(200),
            ..config(CheckKind::Tcp)
        };
        let rules = HealthRules::from(&config);
        let _checks =
            Running::spawn(std::slice::from_ref(&flaky), &config, None);
        log.wait_for(&flaky, 1, |event| event.is_check(true)).await;

        // Clients failed to reach it (as `proxy` reports them), though
        // its checks pass: out until the next check passes.
        let went_out = Instant::now();
        for _ in 0..rules.failures {
            let change = flaky.live.update_health(|state| {
                state.connection_failed(&rules, went_out, "connect: refused")
            });
            if let Some(change) = change {
                change.log(&flaky.id);
            }
        }
        assert!(!flaky.usable(went_out));

        let events = log.wait_for_change(&flaky, "back").await;
        assert_eq!(
            changes(&events),
            [
                "out for 200ms after 3 failed connections: connect: refused",
                "back after a check passed, which ends its cooldown",
            ]
        );
        // Reported by the check just before the line.
        assert!(events[events.len() - 2].is_check(true));
        assert!(flaky.usable(Instant::now()));
    }

    #[tokio::test]
    async fn no_checks_when_they_are_off() {
        let server = RunningBackend::start().await;
        let backends = [backend(&server.addr.to_string())];
        let checks = Running::spawn(&backends, &config(CheckKind::Off), None);
        assert!(checks.tracker.is_empty());
    }

    #[tokio::test]
    async fn shutdown_stops_the_checks_without_waiting_for_one_in_progress() {
        let mut log = Log::capture();
        let (addr, mut heads) = raw_server(None).await;
        let live = RunningBackend::start().await;
        let backends =
            [backend(&addr.to_string()), backend(&live.addr.to_string())];
        // A check of the stalled server waits a minute for its answer.
        let config = HealthConfig {
            timeout: Duration::from_secs(60),
            ..config(CheckKind::Http)
        };
        let checks = Running::spawn(&backends, &config, None);
        log.wait_for(&backends[1], 2, |event| event.is_check(true))
            .await;
        deadline(
            "the stalled check's request",
            heads.wait_for(|heads| !heads.is_empty()),
        )
        .await
        .expect("the server runs");

        checks.shutdown.cancel();
        let stopped =
            tokio::time::timeout(Duration::from_secs(5), checks.tracker.wait())
                .await;
        assert!(stopped.is_ok(), "the check tasks did not stop");
        assert!(log.of(&backends[0]).is_empty(), "no verdict after shutdown");
    }

    #[test]
    fn backends_are_spread_over_the_interval() {
        let start = Instant::now();
        let interval = Duration::from_millis(900);
        let ticks: Vec<Duration> = (0..3)
            .map(|i| first_tick(start, i, 3, interval) - start)
            .collect();
        assert_eq!(
            ticks,
            [900, 300, 600].map(Duration::from_millis).to_vec(),
            "backend 0's slot is the start itself, checked at once"
        );
        assert_eq!(first_tick(start, 0, 1, interval) - start, interval);
    }
}
