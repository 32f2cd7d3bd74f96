//! Issue 16, criterion 4: every end code in `lb --help`'s table is caused
//! on purpose, over real sockets, and read back twice: from the
//! connection's last log line and from `lb_connections_ended_total`.
//!
//! Each test starts the real `lb` binary with its own config file, in
//! which the one timeout that should end the connection is short
//! ([`SHORT`]) and every other is long ([`LONG`]): time passes through
//! `lb`'s own timers, and a test waits on what `lb` says (a log line, a
//! counter, `/api/stats`), never on a sleep of its own.
//!
//! The log is read as JSON (`LAB_LOG_FORMAT=json`), not as sentences:
//! each line parses into fields, so a test picks out *its* connection's
//! line by the exact `client` address and compares the `code` field
//! whole. A substring search of the readable format could match another
//! connection's line or a code inside an error message, and would break
//! when a sentence is reworded.
//!
//! The `K` codes are given at the end of a drain, after which `lb`
//! exits: no `/metrics` can be asked of the binary once they are counted
//! (the connections are cut, counted, and the process returns at once).
//! So those tests run the same scene twice: against the binary, reading
//! the log line; and against `lb` wired in this process as `main` wires
//! it (`balancer::serve` with its shutdown, `admin::serve` beside it),
//! whose admin listener the test stops only after the drain, reading the
//! counter over `GET /metrics`. `KD` has a third way that needs neither:
//! a reload that removes a backend drains and cuts its connections while
//! `lb` runs on, so the binary's log and its `/metrics` both show it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use balancer::codes::EndCode;
use balancer::config::Config;
use balancer::reload::Reloader;
use balancer::{Balancer, Drained, admin};
use lab_common::testing::{RunningStep, TestCerts};
use rustix::process::{Pid, Signal};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

const LB: &str = env!("CARGO_BIN_EXE_lb");

/// The timeout a test means to run out: long enough that a busy machine
/// sets the scene first (the scenes need no time of their own), short
/// enough that all the scenes stay within seconds.
const SHORT: &str = "300ms";

/// Every other timeout: it must never fire during a test.
const LONG: &str = "60s";

/// How long any one wait here may take: shorter than lab-common's 60 s
/// deadline, so that a line or a count that never comes fails soon.
const WAIT: Duration = Duration::from_secs(20);

/// Runs `future`, or panics saying `what` did not happen in [`WAIT`].
async fn within<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {WAIT:?}"))
}

/// Each code, and the test here that causes it. A code added to the
/// table fails [`every_code_has_its_test`] until it has one.
const CAUSED_BY: [(&str, &str); 17] = [
    ("--", "finished"),
    ("CH", "client_handshake_failed"),
    ("cH", "client_handshake_timed_out"),
    ("NC", "no_backend_up"),
    ("SC", "connect_refused"),
    ("sC", "connect_timed_out"),
    ("RQ", "queue_timed_out"),
    ("CQ", "client_left_the_line"),
    ("CD", "client_reset_during_data"),
    ("SD", "backend_reset_during_data"),
    ("tD", "idle"),
    ("cL", "client_silent_after_the_backend_finished"),
    ("sL", "backend_silent_after_the_client_finished"),
    ("KH", "killed_in_the_client_handshake"),
    ("KQ", "killed_in_line"),
    ("KC", "killed_while_connecting"),
    ("KD", "killed_during_data"),
];

#[test]
fn every_code_has_its_test() {
    let table: Vec<&str> =
        EndCode::ALL.iter().map(|code| code.as_str()).collect();
    let here: Vec<&str> = CAUSED_BY.iter().map(|(code, _)| *code).collect();
    assert_eq!(here, table, "the table and this file's tests differ");
}

// ---------------------------------------------------------------------
// The config

/// The `[timeouts]` and `[limits]` durations a test can shorten.
const TIMERS: [(&str, &str); 6] = [
    ("timeouts", "connect"),
    ("timeouts", "tls_handshake"),
    ("timeouts", "idle"),
    ("timeouts", "half_closed"),
    ("timeouts", "drain"),
    ("limits", "queue_timeout"),
];

/// What one test's `lb` runs with.
#[derive(Clone)]
struct Setup {
    /// The keys of [`TIMERS`] set to [`SHORT`]; the rest are [`LONG`].
    short: Vec<&'static str>,
    /// `[health] kind`: "off" unless a test needs a backend marked down
    /// (a check would otherwise connect to the test's backends and be
    /// counted among their connections).
    health: &'static str,
    /// The front's certificate and key: a TLS front.
    tls: Option<(PathBuf, PathBuf)>,
    /// id, address, max_connections (0: no limit).
    backends: Vec<(&'static str, SocketAddr, u32)>,
}

impl Setup {
    fn new(short: &[&'static str], backend: SocketAddr) -> Setup {
        for key in short {
            assert!(TIMERS.iter().any(|(_, k)| k == key), "no timer {key}");
        }
        Setup {
            short: short.to_vec(),
            health: "off",
            tls: None,
            backends: vec![("a", backend, 0)],
        }
    }

    fn tls(mut self, certs: &TestCerts) -> Setup {
        self.tls = Some((certs.cert_path(), certs.key_path()));
        self
    }

    fn max_connections(mut self, max: u32) -> Setup {
        self.backends[0].2 = max;
        self
    }

    fn toml(&self) -> String {
        let mut text = String::from("listen = \"127.0.0.1:0\"\n");
        for table in ["timeouts", "limits"] {
            text.push_str(&format!("\n[{table}]\n"));
            for (_, key) in TIMERS.iter().filter(|(t, _)| *t == table) {
                let value = if self.short.contains(key) {
                    SHORT
                } else {
                    LONG
                };
                text.push_str(&format!("{key} = \"{value}\"\n"));
            }
        }
        // A refused backend's first check takes it down at once; the
        // interval only matters to the test that waits for that.
        text.push_str(&format!(
            "\n[health]\nkind = \"{}\"\ninterval = \"100ms\"\n\
             timeout = \"1s\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n",
            self.health
        ));
        if let Some((cert, key)) = &self.tls {
            text.push_str(&format!(
                "\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
                cert.display(),
                key.display()
            ));
        }
        for (id, addr, max) in &self.backends {
            text.push_str(&format!(
                "\n[[backends]]\naddress = \"{addr}\"\nid = \"{id}\"\n\
                 max_connections = {max}\n"
            ));
        }
        text
    }
}

// ---------------------------------------------------------------------
// `lb`, the binary

/// The real `lb`, started with a [`Setup`] in a config file of its own.
/// Dropping it kills the process by its PID (the `Child`'s own), so a
/// failed test leaves nothing running.
struct Lb {
    addr: SocketAddr,
    admin: SocketAddr,
    child: Child,
    stderr: watch::Receiver<String>,
    config: PathBuf,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Lb {
    async fn start(setup: &Setup) -> Lb {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let config = dir.path().join("lb.toml");
        std::fs::write(&config, setup.toml()).expect("the config is written");
        let mut child = Command::new(LB)
            .arg("--config")
            .arg(&config)
            // Set here, not inherited: the test reads info lines as JSON
            // whatever the environment running it says.
            .env("LAB_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("lb starts");
        let mut stdout = lab_common::output::watch_lines(
            child.stdout.take().expect("piped"),
        );
        let stderr = lab_common::output::watch_lines(
            child.stderr.take().expect("piped"),
        );
        // `admin on` comes first, `listening on` last: both are there
        // once the second is.
        let said = tokio::time::timeout(
            WAIT,
            stdout.wait_for(|text| text.contains("listening on ")),
        )
        .await;
        let text = match said {
            Ok(Ok(text)) => text.clone(),
            _ => panic!(
                "lb never said `listening on`; its log:\n{}",
                stderr.borrow().as_str()
            ),
        };
        let address = |prefix: &str| -> SocketAddr {
            let line = json_lines(&text)
                .into_iter()
                .find(|line| {
                    line["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with(prefix))
                })
                .unwrap_or_else(|| panic!("no `{prefix}` line in {text}"));
            line["address"]
                .as_str()
                .expect("an address")
                .parse()
                .expect("parses")
        };
        Lb {
            addr: address("listening on "),
            admin: address("admin on "),
            child,
            stderr,
            config,
            _dir: dir,
            http: reqwest::Client::new(),
        }
    }

    /// The connection from `client`'s last log line, once a line about
    /// it carries a `code`: its ending is said once, in its last line.
    async fn last_line_of(&mut self, client: SocketAddr) -> Value {
        let client = client.to_string();
        let of_client =
            |line: &Value| line["client"].as_str() == Some(client.as_str());
        let found = tokio::time::timeout(
            WAIT,
            self.stderr.wait_for(|text| {
                json_lines(text)
                    .iter()
                    .any(|line| of_client(line) && line.get("code").is_some())
            }),
        )
        .await
        .is_ok_and(|seen| seen.is_ok());
        let text = self.stderr.borrow().clone();
        if !found {
            panic!("no line with a code for client {client}; the log:\n{text}");
        }
        let last = json_lines(&text).into_iter().rfind(of_client);
        let last = last.expect("just seen");
        assert!(
            last.get("code").is_some(),
            "a line for {client} after its code: {last}; the log:\n{text}"
        );
        last
    }

    /// Asserts that the connection from `client` ended with `code` in
    /// the log.
    async fn assert_logged(&mut self, client: SocketAddr, code: &str) {
        let line = self.last_line_of(client).await;
        if line["code"] != code {
            panic!(
                "{client} ended with {}, not {code}; the log:\n{}",
                line["code"],
                self.stderr.borrow().as_str()
            );
        }
    }

    /// `GET /api/stats`.
    async fn stats(&self) -> Value {
        admin_stats(&self.http, self.admin).await
    }

    fn signal(&self, signal: Signal) {
        let pid = self
            .child
            .id()
            .and_then(|id| Pid::from_raw(id as i32))
            .expect("lb has not been waited for");
        rustix::process::kill_process(pid, signal).expect("lb is signalled");
    }

    /// Sends SIGTERM and waits for a clean exit.
    async fn terminate(&mut self) {
        self.signal(Signal::TERM);
        let status = within("lb to exit", self.child.wait())
            .await
            .expect("lb can be waited for");
        assert!(status.success(), "lb exited with {status}");
    }
}

impl Drop for Lb {
    fn drop(&mut self) {
        // SIGKILL to the child's own PID; refused once it has been
        // reaped (so no other process that took the PID is hit), and
        // then there is nothing left to stop.
        let _ = self.child.start_kill();
    }
}

/// The JSON lines of a log (a line that does not parse is skipped: a
/// panic's message, say, which the failing assertion then shows whole).
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

// ---------------------------------------------------------------------
// The admin listener, shared by both ways of running `lb`

async fn get(http: &reqwest::Client, admin: SocketAddr, path: &str) -> String {
    within(path, async {
        let answer = http
            .get(format!("http://{admin}{path}"))
            .send()
            .await
            .unwrap_or_else(|err| panic!("GET {path}: {err}"));
        assert!(
            answer.status().is_success(),
            "GET {path}: {}",
            answer.status()
        );
        answer.text().await.expect("a body")
    })
    .await
}

async fn admin_stats(http: &reqwest::Client, admin: SocketAddr) -> Value {
    let body = get(http, admin, "/api/stats").await;
    serde_json::from_str(&body).expect("the stats are JSON")
}

/// `lb_connections_ended_total` by code, from `GET /metrics`: the codes
/// that have a count above zero. Every code must have its series.
async fn ended_counts(
    http: &reqwest::Client,
    admin: SocketAddr,
) -> BTreeMap<String, u64> {
    let text = get(http, admin, "/metrics").await;
    let mut all = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) =
            line.strip_prefix("lb_connections_ended_total{code=\"")
        else {
            continue;
        };
        let (code, value) = rest
            .split_once("\"} ")
            .unwrap_or_else(|| panic!("`{line}`"));
        let value: u64 =
            value.trim().parse().unwrap_or_else(|_| panic!("`{line}`"));
        all.insert(code.to_owned(), value);
    }
    for code in EndCode::ALL {
        assert!(
            all.contains_key(code.as_str()),
            "no series for {code}:\n{text}"
        );
    }
    all.retain(|_, count| *count > 0);
    all
}

/// Waits until `lb_connections_ended_total` counts exactly `want` (the
/// codes above zero). Polled: the counter is bumped just after the log
/// line is written, and nothing tells a scraper when; bounded by
/// [`WAIT`] and by a count.
async fn assert_counted(
    http: &reqwest::Client,
    admin: SocketAddr,
    want: &[(&str, u64)],
) {
    let want: BTreeMap<String, u64> =
        want.iter().map(|&(code, n)| (code.to_owned(), n)).collect();
    let mut seen = BTreeMap::new();
    for _ in 0..1000 {
        seen = ended_counts(http, admin).await;
        if seen == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("lb_connections_ended_total: want {want:?}, last seen {seen:?}");
}

/// Asks `/api/stats` until `wanted` holds; the stats that satisfied it.
/// Polled as [`assert_counted`] is.
async fn wait_for_stats(
    http: &reqwest::Client,
    admin: SocketAddr,
    what: &str,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    let mut stats = Value::Null;
    for _ in 0..1000 {
        stats = admin_stats(http, admin).await;
        if wanted(&stats) {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: never seen; the stats: {stats}");
}

// ---------------------------------------------------------------------
// Backends and clients

/// What a [`RawBackend`] does with each connection.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Acts {
    /// Reads to the end, answers `got N bytes`, closes: a whole exchange.
    Answers,
    /// Reads whatever comes and never writes, nor closes, even after
    /// the client's end: a stuck process.
    Silent,
    /// Sends its end (FIN) at once, then is silent as [`Acts::Silent`].
    EndsAtOnce,
    /// Resets the connection as soon as the first bytes arrive.
    ResetsOnData,
}

/// What a [`RawBackend`] has seen.
#[derive(Clone, Copy, Default, Debug)]
struct Seen {
    accepted: usize,
    bytes: usize,
}

/// A plain TCP backend on 127.0.0.1:0 that behaves as told. Its tasks,
/// and the connections they hold, end when it is dropped.
struct RawBackend {
    addr: SocketAddr,
    seen: watch::Receiver<Seen>,
    task: JoinHandle<()>,
}

impl RawBackend {
    async fn start(acts: Acts) -> RawBackend {
        let listener = lab_common::testing::listener().await;
        let addr = listener.local_addr().expect("bound");
        let (tell, seen) = watch::channel(Seen::default());
        let task = tokio::spawn(async move {
            // Owned by this task: aborting it drops every connection.
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                tell.send_modify(|seen| seen.accepted += 1);
                connections.spawn(serve(stream, acts, tell.clone()));
            }
        });
        RawBackend { addr, seen, task }
    }

    /// Waits until `wanted` holds of what it has seen.
    async fn wait_for(&self, what: &str, wanted: impl Fn(&Seen) -> bool) {
        let mut seen = self.seen.clone();
        within(what, seen.wait_for(|seen| wanted(seen)))
            .await
            .expect("the backend runs");
    }
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: TcpStream, acts: Acts, tell: watch::Sender<Seen>) {
    let mut buffer = [0u8; 4096];
    match acts {
        Acts::Answers => {
            let mut got = Vec::new();
            if stream.read_to_end(&mut got).await.is_err() {
                return;
            }
            tell.send_modify(|seen| seen.bytes += got.len());
            let answer = format!("got {} bytes", got.len());
            let _ = stream.write_all(answer.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
        Acts::ResetsOnData => {
            if let Ok(n @ 1..) = stream.read(&mut buffer).await {
                tell.send_modify(|seen| seen.bytes += n);
            }
            // A zero linger makes the close a reset.
            let _ = stream.set_zero_linger();
        }
        Acts::Silent | Acts::EndsAtOnce => {
            if acts == Acts::EndsAtOnce {
                let _ = stream.shutdown().await;
            }
            while let Ok(n @ 1..) = stream.read(&mut buffer).await {
                tell.send_modify(|seen| seen.bytes += n);
            }
            // The client's end (or an error) changes nothing: the
            // connection stays open until the backend is dropped.
            std::future::pending::<()>().await;
        }
    }
}

/// An address where nothing listens: connects to it are refused.
async fn refused_addr() -> SocketAddr {
    let listener = lab_common::testing::listener().await;
    listener.local_addr().expect("bound")
    // Dropped here: the port is closed.
}

/// A backend whose connects time out: a listener whose accept queue is
/// full and which never accepts. Linux drops a SYN to a full queue, so a
/// connect to it waits until its own timeout.
struct Unanswering {
    addr: SocketAddr,
    _listener: tokio::net::TcpListener,
    _queued: Vec<TcpStream>,
}

impl Unanswering {
    async fn start() -> Unanswering {
        let socket = TcpSocket::new_v4().expect("a socket");
        socket.bind("127.0.0.1:0".parse().unwrap()).expect("bound");
        // A queue of one (Linux lets `backlog + 1` wait).
        let listener = socket.listen(0).expect("listening");
        let addr = listener.local_addr().expect("bound");
        let mut queued = Vec::new();
        // Fill the queue until a connect no longer completes; that one
        // is the proof that the trick works on this kernel. A loopback
        // connect completes in the kernel at once: the half second is
        // for a busy machine's scheduler, and an empty queue is never
        // taken for a full one.
        for _ in 0..16 {
            let probe = TcpStream::connect(addr);
            match tokio::time::timeout(Duration::from_millis(500), probe).await
            {
                Ok(Ok(stream)) => queued.push(stream),
                Ok(Err(err)) => panic!("connect to the full queue: {err}"),
                Err(_) if queued.is_empty() => {
                    panic!("the first connect, to an empty queue, timed out")
                }
                Err(_) => {
                    return Unanswering {
                        addr,
                        _listener: listener,
                        _queued: queued,
                    };
                }
            }
        }
        panic!("16 connects completed: the accept queue never filled");
    }
}

/// A plain TCP client of `lb`, and its address as `lb` logs it.
async fn client(lb: SocketAddr) -> (TcpStream, SocketAddr) {
    let stream = within("connect to lb", TcpStream::connect(lb))
        .await
        .expect("lb accepts");
    let addr = stream.local_addr().expect("bound");
    (stream, addr)
}

/// Reads until `lb` closes or resets the connection; what came before.
async fn read_to_close(
    stream: &mut TcpStream,
) -> (Vec<u8>, std::io::Result<usize>) {
    let mut got = Vec::new();
    let read = within("lb to close", stream.read_to_end(&mut got)).await;
    (got, read)
}

/// Waits for `lb` to close or reset the connection, and asserts that
/// it passed on not a byte: none of these scenes' backends says one.
async fn closed_without_a_byte(stream: &mut TcpStream) {
    let (got, _) = read_to_close(stream).await;
    assert!(got.is_empty(), "{} bytes came", got.len());
}

/// Asserts of the running `lb` that the connection from `client` ended
/// with `code` in its last log line, and that `lb_connections_ended_total`
/// counts exactly `counted` (so nothing else ended, or ended twice).
async fn check_binary(
    mut lb: Lb,
    client: SocketAddr,
    code: &str,
    counted: &[(&str, u64)],
) -> Lb {
    lb.assert_logged(client, code).await;
    assert_counted(&lb.http, lb.admin, counted).await;
    lb
}

// ---------------------------------------------------------------------
// The codes an ending gives while `lb` runs on

#[tokio::test]
async fn finished() {
    let backend = RawBackend::start(Acts::Answers).await;
    let lb = Lb::start(&Setup::new(&[], backend.addr)).await;
    let (mut stream, addr) = client(lb.addr).await;
    stream.write_all(b"hello").await.unwrap();
    stream.shutdown().await.unwrap();
    let (got, read) = read_to_close(&mut stream).await;
    assert!(read.is_ok(), "{read:?}");
    assert_eq!(got, b"got 5 bytes");
    check_binary(lb, addr, "--", &[("--", 1)]).await;
}

#[tokio::test]
async fn client_handshake_failed() {
    let certs = TestCerts::new();
    let nowhere = refused_addr().await;
    let lb = Lb::start(&Setup::new(&[], nowhere).tls(&certs)).await;
    let (mut stream, addr) = client(lb.addr).await;
    // Plain HTTP where a ClientHello belongs.
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: lb\r\n\r\n")
        .await
        .unwrap();
    // lb may answer with a TLS alert before it closes.
    let _ = read_to_close(&mut stream).await;
    check_binary(lb, addr, "CH", &[("CH", 1)]).await;
}

#[tokio::test]
async fn client_handshake_timed_out() {
    let certs = TestCerts::new();
    let nowhere = refused_addr().await;
    let setup = Setup::new(&["tls_handshake"], nowhere).tls(&certs);
    let lb = Lb::start(&setup).await;
    // Connected, and silent: no ClientHello ever comes.
    let (_stream, addr) = client(lb.addr).await;
    check_binary(lb, addr, "cH", &[("cH", 1)]).await;
}

#[tokio::test]
async fn no_backend_up() {
    let nowhere = refused_addr().await;
    let mut setup = Setup::new(&[], nowhere);
    setup.health = "tcp";
    let lb = Lb::start(&setup).await;
    // Its first check is refused, which takes it down at once.
    wait_for_stats(&lb.http, lb.admin, "the backend to be down", |stats| {
        stats["backends"][0]["state"] == "down"
    })
    .await;
    let (mut stream, addr) = client(lb.addr).await;
    closed_without_a_byte(&mut stream).await;
    check_binary(lb, addr, "NC", &[("NC", 1)]).await;
}

#[tokio::test]
async fn connect_refused() {
    let nowhere = refused_addr().await;
    // No checks: the backend stays up, and the client's connect is the
    // one refused.
    let lb = Lb::start(&Setup::new(&[], nowhere)).await;
    let (mut stream, addr) = client(lb.addr).await;
    closed_without_a_byte(&mut stream).await;
    check_binary(lb, addr, "SC", &[("SC", 1)]).await;
}

#[tokio::test]
async fn connect_timed_out() {
    let backend = Unanswering::start().await;
    let lb = Lb::start(&Setup::new(&["connect"], backend.addr)).await;
    let (mut stream, addr) = client(lb.addr).await;
    closed_without_a_byte(&mut stream).await;
    check_binary(lb, addr, "sC", &[("sC", 1)]).await;
}

#[tokio::test]
async fn queue_timed_out() {
    let backend = RawBackend::start(Acts::Silent).await;
    let setup = Setup::new(&["queue_timeout"], backend.addr).max_connections(1);
    let lb = Lb::start(&setup).await;
    // The first client takes the backend's only place, and keeps it.
    let (_first, _) = client(lb.addr).await;
    backend
        .wait_for("the first client", |seen| seen.accepted == 1)
        .await;
    let (mut second, addr) = client(lb.addr).await;
    let (got, read) = read_to_close(&mut second).await;
    assert!(got.is_empty(), "{got:?}");
    let kind = read.map_err(|err| err.kind());
    assert_eq!(kind, Err(std::io::ErrorKind::ConnectionReset), "a reset");
    check_binary(lb, addr, "RQ", &[("RQ", 1)]).await;
}

/// A client that leaves while it waits in line gives its place up at
/// once, with `CQ`.
#[tokio::test]
async fn client_left_the_line() {
    let backend = RawBackend::start(Acts::Silent).await;
    let lb = Lb::start(&Setup::new(&[], backend.addr).max_connections(1)).await;
    let (_first, _) = client(lb.addr).await;
    backend
        .wait_for("the first client", |seen| seen.accepted == 1)
        .await;
    let (second, addr) = client(lb.addr).await;
    wait_for_stats(&lb.http, lb.admin, "a client in line", |stats| {
        stats["listener"]["queued"] == 1
    })
    .await;
    // It leaves having sent nothing: its end of stream is what lb sees.
    drop(second);
    let lb = check_binary(lb, addr, "CQ", &[("CQ", 1)]).await;
    let stats = lb.stats().await;
    assert_eq!(
        stats["listener"]["queued"], 0,
        "its place given up: {stats}"
    );
}

#[tokio::test]
async fn client_reset_during_data() {
    let backend = RawBackend::start(Acts::Silent).await;
    let lb = Lb::start(&Setup::new(&[], backend.addr)).await;
    let (mut stream, addr) = client(lb.addr).await;
    stream.write_all(b"hello").await.unwrap();
    // Through to the backend: the relay runs.
    backend
        .wait_for("the client's bytes", |seen| seen.bytes == 5)
        .await;
    stream.set_zero_linger().unwrap();
    drop(stream);
    check_binary(lb, addr, "CD", &[("CD", 1)]).await;
}

#[tokio::test]
async fn backend_reset_during_data() {
    let backend = RawBackend::start(Acts::ResetsOnData).await;
    let lb = Lb::start(&Setup::new(&[], backend.addr)).await;
    let (mut stream, addr) = client(lb.addr).await;
    stream.write_all(b"hello").await.unwrap();
    let (_, read) = read_to_close(&mut stream).await;
    // Passed on as a reset.
    let kind = read.map_err(|err| err.kind());
    assert_eq!(kind, Err(std::io::ErrorKind::ConnectionReset));
    check_binary(lb, addr, "SD", &[("SD", 1)]).await;
}

#[tokio::test]
async fn idle() {
    let backend = RawBackend::start(Acts::Silent).await;
    let lb = Lb::start(&Setup::new(&["idle"], backend.addr)).await;
    let (mut stream, addr) = client(lb.addr).await;
    stream.write_all(b"hello").await.unwrap();
    // Then neither side says a thing.
    closed_without_a_byte(&mut stream).await;
    check_binary(lb, addr, "tD", &[("tD", 1)]).await;
}

#[tokio::test]
async fn client_silent_after_the_backend_finished() {
    let backend = RawBackend::start(Acts::EndsAtOnce).await;
    let lb = Lb::start(&Setup::new(&["half_closed"], backend.addr)).await;
    let (mut stream, addr) = client(lb.addr).await;
    // The backend's end arrives; the client says nothing more.
    let mut byte = [0u8; 1];
    let read = within("the backend's end", stream.read(&mut byte)).await;
    assert_eq!(read.unwrap(), 0, "the end, passed on");
    check_binary(lb, addr, "cL", &[("cL", 1)]).await;
}

#[tokio::test]
async fn backend_silent_after_the_client_finished() {
    let backend = RawBackend::start(Acts::Silent).await;
    let lb = Lb::start(&Setup::new(&["half_closed"], backend.addr)).await;
    let (mut stream, addr) = client(lb.addr).await;
    stream.write_all(b"hello").await.unwrap();
    stream.shutdown().await.unwrap();
    closed_without_a_byte(&mut stream).await;
    check_binary(lb, addr, "sL", &[("sL", 1)]).await;
}

// ---------------------------------------------------------------------
// The codes of a drain's end: K, and the phase

/// A removed backend's drain ends in `KD` while `lb` runs on: the log
/// and the counter of the binary itself.
#[tokio::test]
async fn killed_at_the_end_of_a_removed_backends_drain() {
    let backend = RawBackend::start(Acts::Silent).await;
    let setup = Setup::new(&["drain"], backend.addr);
    let mut lb = Lb::start(&setup).await;
    let (mut stream, addr) = client(lb.addr).await;
    stream.write_all(b"hello").await.unwrap();
    backend
        .wait_for("the client's bytes", |seen| seen.bytes == 5)
        .await;
    // The backend leaves the config; another takes its place.
    let mut reloaded = setup.clone();
    reloaded.backends = vec![("b", refused_addr().await, 0)];
    std::fs::write(&lb.config, reloaded.toml()).expect("rewritten");
    lb.signal(Signal::HUP);
    lb.assert_logged(addr, "KD").await;
    assert_counted(&lb.http, lb.admin, &[("KD", 1)]).await;
    // Still running, and serving.
    let stats = lb.stats().await;
    assert_eq!(stats["backends"][0]["id"], "b", "{stats}");
}

/// `lb` wired in this process as `main` wires it: `balancer::serve` on a
/// listener of its own, the admin API beside it. Unlike the binary's,
/// its admin listener outlives the drain: the test stops it.
struct InProcessLb {
    addr: SocketAddr,
    admin: SocketAddr,
    /// `None` once drained.
    running: Option<RunningStep<Drained>>,
    admin_stop: CancellationToken,
    http: reqwest::Client,
}

impl InProcessLb {
    async fn start(setup: &Setup) -> InProcessLb {
        let config = Config::parse(Path::new("end_codes.toml"), &setup.toml())
            .expect("the config parses");
        let file = config.clone();
        let balancer =
            Arc::new(Balancer::new(config).expect("a usable config"));
        let reloader =
            Reloader::new(balancer.clone(), Arc::new(move || Ok(file.clone())));
        let admin_listener = lab_common::testing::listener().await;
        let admin = admin_listener.local_addr().expect("bound");
        let admin_stop = CancellationToken::new();
        tokio::spawn(admin::serve(
            admin_listener,
            admin::Admin {
                balancer: balancer.clone(),
                reloader,
                token: None,
            },
            admin_stop.clone(),
        ));
        let running = RunningStep::start(move |listener, shutdown| {
            balancer::serve(listener, balancer, shutdown)
        })
        .await;
        InProcessLb {
            addr: running.addr,
            admin,
            running: Some(running),
            admin_stop,
            http: reqwest::Client::new(),
        }
    }

    /// Shuts down as SIGTERM does and waits for the drain to end; the
    /// admin listener stays up.
    async fn drain(&mut self) -> Drained {
        let running = self.running.take().expect("not drained yet");
        within("the drain", running.stop()).await.expect("lb ran")
    }
}

impl Drop for InProcessLb {
    fn drop(&mut self) {
        self.admin_stop.cancel();
    }
}

/// Where a `K` scene's client is when the drain runs out.
#[derive(Clone, Copy, Debug)]
enum Phase {
    Handshake,
    Queue,
    Connect,
    Data,
}

/// A `K` code's scene: its config, and the certificates and backend it
/// keeps alive until the drain ends.
struct Scene {
    _certs: Option<TestCerts>,
    silent: Option<RawBackend>,
    _unanswering: Option<Unanswering>,
    setup: Setup,
}

impl Scene {
    async fn new(phase: Phase) -> Scene {
        let mut scene = Scene {
            _certs: None,
            silent: None,
            _unanswering: None,
            setup: Setup::new(&["drain"], refused_addr().await),
        };
        match phase {
            Phase::Handshake => {
                let certs = TestCerts::new();
                scene.setup = scene.setup.tls(&certs);
                scene._certs = Some(certs);
            }
            Phase::Queue | Phase::Data => {
                let backend = RawBackend::start(Acts::Silent).await;
                scene.setup.backends[0].1 = backend.addr;
                if let Phase::Queue = phase {
                    scene.setup.backends[0].2 = 1;
                }
                scene.silent = Some(backend);
            }
            Phase::Connect => {
                let backend = Unanswering::start().await;
                scene.setup.backends[0].1 = backend.addr;
                scene._unanswering = Some(backend);
            }
        }
        scene
    }

    /// Puts a client in the phase, through `lb` at `addr`: the clients
    /// (to keep open), and the address of the one in the phase.
    async fn enter(
        &self,
        phase: Phase,
        addr: SocketAddr,
        http: &reqwest::Client,
        admin: SocketAddr,
    ) -> (Vec<TcpStream>, SocketAddr) {
        let (mut stream, client_addr) = client(addr).await;
        let mut open = Vec::new();
        let stats = |what, wanted: fn(&Value) -> bool| {
            wait_for_stats(http, admin, what, wanted)
        };
        match phase {
            Phase::Handshake => {
                // Accepted, and no ClientHello comes.
                stats("the client to be open", |s| s["listener"]["open"] == 1)
                    .await;
            }
            Phase::Data => {
                stream.write_all(b"hello").await.unwrap();
                let backend = self.silent.as_ref().expect("a silent backend");
                backend.wait_for("the bytes", |seen| seen.bytes == 5).await;
            }
            Phase::Connect => {
                // Counted on the backend from the start of its connect.
                stats("the connect to start", |s| {
                    s["backends"][0]["active"] == 1
                })
                .await;
            }
            Phase::Queue => {
                // This one takes the only place; the next waits in line.
                let backend = self.silent.as_ref().expect("a silent backend");
                backend
                    .wait_for("the first", |seen| seen.accepted == 1)
                    .await;
                open.push(stream);
                let (second, second_addr) = client(addr).await;
                stats("a client in line", |s| s["listener"]["queued"] == 1)
                    .await;
                open.push(second);
                return (open, second_addr);
            }
        }
        open.push(stream);
        (open, client_addr)
    }
}

/// What else the drain's end cuts in a phase's scene: the client in
/// line waits behind one in data.
fn counted_with(code: &'static str, phase: Phase) -> Vec<(&'static str, u64)> {
    match phase {
        Phase::Queue => vec![("KD", 1), (code, 1)],
        _ => vec![(code, 1)],
    }
}

/// Cuts a connection in `phase` at the end of `lb`'s drain, and reads
/// `code` back: from the binary's log (its counter dies with it), then
/// from the counter of the same scene in process.
async fn killed_in(phase: Phase, code: &'static str) {
    let scene = Scene::new(phase).await;
    let mut lb = Lb::start(&scene.setup).await;
    let (open, client_addr) =
        scene.enter(phase, lb.addr, &lb.http, lb.admin).await;
    lb.terminate().await;
    lb.assert_logged(client_addr, code).await;
    drop(open);
    drop(lb);

    let scene = Scene::new(phase).await;
    let mut lb = InProcessLb::start(&scene.setup).await;
    let (open, _) = scene.enter(phase, lb.addr, &lb.http, lb.admin).await;
    let drained = lb.drain().await;
    let counted = counted_with(code, phase);
    assert_eq!(drained.cut, counted.len(), "{phase:?}: cut");
    assert_counted(&lb.http, lb.admin, &counted).await;
    drop(open);
}

#[tokio::test]
async fn killed_in_the_client_handshake() {
    killed_in(Phase::Handshake, "KH").await;
}

// A client in line when the drain runs out: the end of the drain cuts
// the client holding the backend's place too, and the place it frees
// wakes the one in line. `serve_client` looks at the cut before the
// setup, so that client is cut where it was (`KQ`), not as it starts a
// connect (`KC`, which this test once found).
#[tokio::test]
async fn killed_in_line() {
    killed_in(Phase::Queue, "KQ").await;
}

#[tokio::test]
async fn killed_while_connecting() {
    killed_in(Phase::Connect, "KC").await;
}

#[tokio::test]
async fn killed_during_data() {
    killed_in(Phase::Data, "KD").await;
}
