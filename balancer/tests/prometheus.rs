//! A real Prometheus scrapes `lb` (issue 16, criterion 2).
//!
//! Debian's `prometheus`, started here with a scrape config for the admin
//! listener of the real `lb` binary, must see the target up and, through
//! PromQL over its HTTP API, exactly the connections, bytes and connect
//! failures per backend that this test caused. `promtool check metrics`
//! must pass on the exposition, apart from the one thing it misreads in
//! OpenMetrics (see [`promtool_finds_nothing_but_its_openmetrics_misreading`]).
//!
//! What the test causes is known before it looks: round robin over
//! `[dead, a, b]`, where `dead` is a port that refuses connects, with
//! active checks off and passive marking that never takes `dead` out.
//! Every third client meets `dead` first, fails there and goes on to the
//! next in turn, `a`; so `a` serves two clients in three, `b` one, and
//! `dead` is handed one client in three, refuses each and serves none.
//! A backend's connections count the clients handed to it, the refused
//! ones included (as the tutorial says of `total`): `dead`'s equal its
//! failed connects. The bytes are counted on the client side: each
//! client writes one request and reads its answer to the end.
//!
//! Ignored in a plain `cargo test`, which needs nothing but Rust:
//! `scripts/test-prometheus.sh` installs Debian's `prometheus` (which
//! also holds `promtool`) and runs these.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dummy_servers::Echo;
use dummy_servers::testing::RunningBackend;
use lab_common::testing::http::raw_exchange;
use lab_common::testing::{RunningBinary, deadline};
use reqwest::Url;
use rustix::process::Signal;
use serde_json::Value;
use tempfile::TempDir;

const LB: &str = env!("CARGO_BIN_EXE_lb");

/// Where Debian's `prometheus` package puts its two programs.
const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";

/// Client connections the test makes: a multiple of three, so that each
/// backend's share of the round-robin turns is whole.
const CLIENTS: u64 = 9;

/// What every client sends. `connection: close`: the backend closes after
/// its answer, so the client reads it to the end of the stream and the
/// bytes it counts are all the bytes there were.
const REQUEST: &[u8] =
    b"GET /?format=json HTTP/1.1\r\nhost: lb\r\nconnection: close\r\n\r\n";

/// How long Prometheus may take to show what the test caused: its first
/// samples come some 5 s after it starts, at one scrape a second.
const PATIENCE: Duration = Duration::from_secs(60);

/// How often the test asks Prometheus again while waiting.
const POLL: Duration = Duration::from_millis(250);

/// The per-backend counters the test checks: what each counts, and the
/// PromQL selector of its series (one per backend).
const COUNTERS: [(&str, &str); 4] = [
    (CONNECTIONS, "lb_backend_connections_total"),
    (BYTES_UP, "lb_backend_bytes_total{direction=\"up\"}"),
    (BYTES_DOWN, "lb_backend_bytes_total{direction=\"down\"}"),
    (FAILURES, "lb_backend_connect_failures_total"),
];
const CONNECTIONS: &str = "client connections";
const BYTES_UP: &str = "bytes client to backend";
const BYTES_DOWN: &str = "bytes backend to client";
const FAILURES: &str = "failed connects";

/// Two backends that answer, an address that refuses, and the real `lb`
/// in front of them with its admin listener.
struct Setup {
    lb: RunningBinary,
    admin: SocketAddr,
    a: RunningBackend,
    b: RunningBackend,
    _dir: TempDir,
}

impl Setup {
    async fn start() -> Setup {
        let a = RunningBackend::start().await;
        let b = RunningBackend::start().await;
        let dead = refusing_address();
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("lb.toml");
        // Active checks off: one would find `dead` refusing and take it
        // out of the turns. `failures` so high that passive marking
        // (failed client connects in a row) never takes it out either:
        // every one of its turns is a client handed to it and refused.
        let mut config = String::from(
            "listen = \"127.0.0.1:0\"\n\
             algorithm = \"round-robin\"\n\
             retries = \"all\"\n\n\
             [health]\nkind = \"off\"\nfailures = 1000000\n\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n",
        );
        for (id, addr) in [("dead", dead), ("a", a.addr), ("b", b.addr)] {
            write!(
                config,
                "\n[[backends]]\nid = \"{id}\"\naddress = \"{addr}\"\n"
            )
            .expect("writing to a String does not fail");
        }
        std::fs::write(&path, config).expect("the config is written");
        let mut lb = RunningBinary::start(
            LB,
            &["--config", &path.display().to_string()],
        )
        .await;
        let admin = lb.wait_for_address("admin on ").await;
        Setup {
            lb,
            admin,
            a,
            b,
            _dir: dir,
        }
    }

    /// Sends [`CLIENTS`] clients through `lb`, one after the other, and
    /// returns what each counter must say for each backend.
    async fn cause_traffic(&self) -> Expected {
        let mut expected = Expected::zero();
        for client in 0..CLIENTS {
            let answer = raw_exchange(self.lb.addr, REQUEST, false).await;
            let served = self.who_served(&answer);
            let wanted = if client % 3 == 2 { "b" } else { "a" };
            assert_eq!(
                served, wanted,
                "client {client}: round robin over [dead, a, b] sends the \
                 clients that meet dead on to a"
            );
            expected.add(served, CONNECTIONS, 1);
            let sent = REQUEST.len() as u64;
            expected.add(served, BYTES_UP, sent);
            let received = answer.len() as u64;
            expected.add(served, BYTES_DOWN, received);
            if client % 3 == 0 {
                // Its turn came first: it was handed the client, and
                // its connect was refused.
                expected.add("dead", CONNECTIONS, 1);
                expected.add("dead", FAILURES, 1);
            }
        }
        expected
    }

    /// The id of the backend whose echo `answer` is.
    fn who_served(&self, answer: &[u8]) -> &'static str {
        let text = String::from_utf8_lossy(answer);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let echo: Echo = serde_json::from_str(body)
            .unwrap_or_else(|err| panic!("not an echo ({err}): {body}"));
        match echo.addr {
            addr if addr == self.a.addr.to_string() => "a",
            addr if addr == self.b.addr.to_string() => "b",
            addr => panic!("answered by {addr}, which is not a backend"),
        }
    }

    async fn stop(mut self) {
        self.lb.signal(Signal::TERM);
        assert!(self.lb.wait().await.success(), "lb exits cleanly");
    }
}

/// An address that refuses connects: a port bound, then closed.
fn refusing_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("binding 127.0.0.1:0 always works");
    listener.local_addr().expect("bound")
}

/// What each counter must say, by counter and then by backend id.
#[derive(Clone, Debug, PartialEq)]
struct Expected(BTreeMap<&'static str, BTreeMap<String, f64>>);

impl Expected {
    /// Every counter at 0 for every backend: a backend the test sent
    /// nothing to must show a 0, not be missing.
    fn zero() -> Expected {
        let backends = ["dead", "a", "b"];
        let counters = COUNTERS.map(|(what, _)| {
            let zeros = backends.map(|id| (id.to_owned(), 0.0));
            (what, BTreeMap::from(zeros))
        });
        Expected(BTreeMap::from(counters))
    }

    fn add(&mut self, backend: &str, counter: &str, by: u64) {
        let value = self
            .0
            .get_mut(counter)
            .and_then(|values| values.get_mut(backend))
            .unwrap_or_else(|| panic!("no {counter} for {backend}"));
        *value += by as f64;
    }
}

/// Debian's `prometheus`, on 127.0.0.1 and a free port, its config and
/// data in a temp dir. Killed by its PID when dropped.
struct Prometheus {
    addr: SocketAddr,
    child: Child,
    dir: TempDir,
    api: reqwest::Client,
}

impl Prometheus {
    /// Starts it scraping `target`'s `/metrics` every second, and waits
    /// until it says it is ready.
    async fn start(target: SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().expect("a temp dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: lb\n    \
                 metrics_path: /metrics\n    static_configs:\n      \
                 - targets: [\"{target}\"]\n"
            ),
        )
        .expect("the scrape config is written");
        let api = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("a plain client builds");
        // Prometheus cannot be handed a listener: it binds the port it is
        // told. A port the OS just gave out and took back is free unless
        // another process takes it in between; then Prometheus stops at
        // once, and a few more tries are enough.
        let mut last_log = String::new();
        for _ in 0..5 {
            let addr = free_port();
            let mut child = spawn_prometheus(dir.path(), &config, addr);
            let ready = wait_until_ready(&api, addr, &mut child).await;
            let log = read_log(dir.path());
            match ready {
                Ok(()) => {
                    return Prometheus {
                        addr,
                        child,
                        dir,
                        api,
                    };
                }
                Err(status) if log.contains("address already in use") => {
                    eprintln!("Prometheus lost {addr} ({status}); again");
                    last_log = log;
                }
                Err(status) => {
                    panic!("Prometheus did not start ({status}):\n{log}")
                }
            }
        }
        panic!("Prometheus found no free port in 5 tries:\n{last_log}")
    }

    /// Runs the instant query `promql`; its result's samples.
    async fn query(&self, promql: &str) -> Vec<Value> {
        let url = Url::parse_with_params(
            &format!("http://{}/api/v1/query", self.addr),
            [("query", promql)],
        )
        .expect("a valid URL");
        let answer: Value = deadline("a Prometheus query", async {
            let response = self.api.get(url).send().await;
            let response = response.expect("Prometheus answers");
            response.json().await.expect("Prometheus answers JSON")
        })
        .await;
        assert_eq!(answer["status"], "success", "{promql}: {answer}");
        answer["data"]["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{promql}: no result list: {answer}"))
            .clone()
    }

    /// `up{job="lb"}`, if Prometheus has scraped the target yet.
    async fn up(&self) -> Option<f64> {
        let samples = self.query("up{job=\"lb\"}").await;
        samples.first().map(sample_value)
    }

    /// Each of [`COUNTERS`] by backend, as Prometheus has it now.
    async fn counters(&self) -> Expected {
        let mut seen = BTreeMap::new();
        for (what, promql) in COUNTERS {
            let samples = self.query(promql).await;
            let by_backend = samples
                .iter()
                .map(|sample| {
                    let backend = sample["metric"]["backend"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{promql}: {sample}"));
                    (backend.to_owned(), sample_value(sample))
                })
                .collect();
            seen.insert(what, by_backend);
        }
        Expected(seen)
    }

    fn log(&self) -> String {
        read_log(self.dir.path())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // Its data is a throwaway: no need to let it write a clean end.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("binding 127.0.0.1:0 always works");
    listener.local_addr().expect("bound")
}

fn spawn_prometheus(dir: &Path, config: &Path, addr: SocketAddr) -> Child {
    let log = std::fs::File::create(dir.join("prometheus.log"))
        .expect("the log file is created");
    let data = dir.join(format!("data-{}", addr.port()));
    Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address={addr}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("the log file is shared"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|err| {
            panic!(
                "cannot start {PROMETHEUS}: {err} \
                 (scripts/test-prometheus.sh installs it)"
            )
        })
}

/// Asks `/-/ready` until Prometheus says it is ready (`Ok`), or it has
/// exited (`Err` with its exit status). Polled: Prometheus tells nobody
/// when it is ready but the log and this endpoint.
async fn wait_until_ready(
    api: &reqwest::Client,
    addr: SocketAddr,
    child: &mut Child,
) -> Result<(), String> {
    let url = format!("http://{addr}/-/ready");
    let started = Instant::now();
    while started.elapsed() < PATIENCE {
        if let Some(status) = child.try_wait().expect("it can be waited for") {
            return Err(status.to_string());
        }
        if let Ok(response) = api.get(&url).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(format!("not ready within {PATIENCE:?}"))
}

fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
}

/// The value of one sample of an instant vector: `[time, "value"]`.
fn sample_value(sample: &Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| panic!("no value in {sample}"))
}

#[tokio::test]
#[ignore = "needs Debian's prometheus: \
            scripts/test-prometheus.sh installs it and runs this"]
async fn prometheus_sees_exactly_the_traffic_the_test_caused() {
    let setup = Setup::start().await;
    // Started first: it takes seconds to be ready and to scrape, which
    // the clients need not wait for.
    let prometheus = Prometheus::start(setup.admin).await;
    let expected = setup.cause_traffic().await;

    // Polled until Prometheus shows it: its scrapes come on its own
    // schedule, and `lb` adds a connection's bytes as the connection
    // ends, which may be just after its client read the last byte.
    let started = Instant::now();
    let mut last = (None, Expected(BTreeMap::new()));
    while started.elapsed() < PATIENCE {
        last = (prometheus.up().await, prometheus.counters().await);
        if last.0 == Some(1.0) && last.1 == expected {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let (up, seen) = last;
    assert_eq!(
        up,
        Some(1.0),
        "up{{job=\"lb\"}} after {PATIENCE:?}; Prometheus' log:\n{}",
        prometheus.log()
    );
    for (what, promql) in COUNTERS {
        let note = if what == CONNECTIONS {
            "; a backend's connections include those it refused"
        } else {
            ""
        };
        assert_eq!(
            seen.0.get(what),
            expected.0.get(what),
            "{what} by backend ({promql}), as Prometheus had it after \
             {PATIENCE:?} (left) and as the test caused them (right){note}"
        );
    }
    println!(
        "Prometheus showed it all {:.1} s after the last client",
        started.elapsed().as_secs_f64()
    );
    drop(prometheus);
    setup.stop().await;
}

/// The one complaint `promtool check metrics` (2.42) makes about a
/// correct OpenMetrics exposition. It lints by the rules of the older
/// Prometheus text format, in which a counter's family is named with its
/// `_total`; OpenMetrics names the family without it (`# HELP
/// lb_backend_connections ...`, then samples
/// `lb_backend_connections_total`), so promtool finds the samples of a
/// family it has no help text for, and says
/// `lb_backend_connections_total no help text` (on stderr, exit code 3).
/// The help is there, under the name OpenMetrics gives it; a real
/// Prometheus reads it so, as the other test shows.
const MISREAD: &str = " no help text";

#[tokio::test]
#[ignore = "needs Debian's prometheus: \
            scripts/test-prometheus.sh installs it and runs this"]
async fn promtool_finds_nothing_but_its_openmetrics_misreading() {
    let setup = Setup::start().await;
    // Some traffic, so that every per-backend family has its series.
    setup.cause_traffic().await;
    let url = format!("http://{}/metrics", setup.admin);
    let exposition = deadline("GET /metrics", async {
        let response = reqwest::get(&url).await.expect("lb answers");
        assert!(response.status().is_success(), "{}", response.status());
        response.text().await.expect("a body")
    })
    .await;

    let mut promtool = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| {
            panic!(
                "cannot start {PROMTOOL}: {err} \
                 (scripts/test-prometheus.sh installs it)"
            )
        });
    // It reads all of its input before it writes a word, so writing it
    // all first cannot fill a pipe both ways.
    promtool
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(exposition.as_bytes())
        .expect("promtool reads the exposition");
    let output = promtool.wait_with_output().expect("promtool runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("promtool check metrics: {}\n{said}", output.status);
    if output.status.success() {
        setup.stop().await;
        return;
    }

    // Each complaint must be the misreading: a counter's sample name,
    // `_total` and all, whose family (the name without `_total`) is a
    // counter with help text in the exposition.
    let mut misread = Vec::new();
    for line in said.lines().filter(|line| !line.trim().is_empty()) {
        let family = line
            .strip_suffix(MISREAD)
            .and_then(|name| name.strip_suffix("_total"))
            .unwrap_or_else(|| {
                panic!(
                    "promtool complains of more than its misreading: \
                     {line}\n{said}"
                )
            });
        let typed = format!("# TYPE {family} counter\n");
        let helped = format!("# HELP {family} ");
        assert!(
            exposition.contains(&typed) && exposition.contains(&helped),
            "{line}: {family} is not a counter with help text:\n{exposition}"
        );
        misread.push(family.to_owned());
    }
    // Only the lint failed: 3 is promtool's exit code for problems
    // found; one it could not parse would be 1.
    assert_eq!(output.status.code(), Some(3), "{said}");
    assert!(!misread.is_empty(), "a failure with nothing said: {said}");
    setup.stop().await;
}
