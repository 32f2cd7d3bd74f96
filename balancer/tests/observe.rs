//! Seeing inside `lb` through its admin listener (issue 16): why a
//! client went where it went (`/api/decisions`), where an address would
//! go (`/api/explain`), the shape of `/api/stats`, and `/metrics` under
//! a crowd of scrapers while clients are served.

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use balancer::config::CheckKind;
use balancer::select::Algorithm;
use common::{ControlledLb, named_config};
use dummy_servers::testing::RunningBackend;
use lab_common::testing::deadline;
use lab_common::testing::http::{who_answers, who_answers_with};
use serde_json::Value;

/// An address where nothing listens: connects to it are refused.
async fn refusing_addr() -> SocketAddr {
    let listener = lab_common::testing::listener().await;
    listener.local_addr().expect("bound")
}

async fn get(lb: &ControlledLb, path: &str) -> Value {
    let request = reqwest::Client::new().get(lb.url(path));
    let (status, body) = lb.send(request).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

#[tokio::test]
async fn a_decision_shows_the_refused_candidate_and_who_served() {
    let backend = RunningBackend::start().await;
    let dead = refusing_addr().await;
    // Health checks off: the dead backend stays a candidate, so round
    // robin's first client tries it first and is moved on.
    let mut config = named_config(&[dead, backend.addr], &["dead", "alive"]);
    config.health.kind = CheckKind::Off;
    let lb = ControlledLb::start(config).await;

    let client = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 7)))
        .pool_max_idle_per_host(0)
        .build()
        .expect("a client builds");
    let url = format!("http://{}/", lb.addr);
    for _ in 0..2 {
        let answered = who_answers_with(&client, &url).await;
        assert_eq!(answered, backend.name());
    }

    // Recorded as each connection ends, which the client does not wait
    // for: poll, bounded.
    let decisions = deadline("two decisions for 127.0.0.7", async {
        loop {
            let found = get(&lb, "/api/decisions?client=127.0.0.7").await;
            if found.as_array().is_some_and(|list| list.len() == 2) {
                break found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let refused: Vec<&Value> = decisions
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| !d["tried"].as_array().unwrap().is_empty())
        .collect();
    assert_eq!(
        refused.len(),
        1,
        "one client of two met `dead`: {decisions}"
    );
    let decision = refused[0];
    assert_eq!(decision["tried"][0]["backend"], "dead", "{decision}");
    let error = decision["tried"][0]["error"].as_str().unwrap();
    assert!(error.contains("refused"), "{error}");
    assert_eq!(decision["backend"], "alive");
    assert_eq!(decision["code"], "--");
    assert_eq!(decision["algorithm"], "round-robin");
    assert_eq!(decision["order"], serde_json::json!(["dead", "alive"]));
    // Both were candidates at the first pick, with their state.
    let considered = decision["considered"].as_array().unwrap();
    for (seen, id) in considered.iter().zip(["dead", "alive"]) {
        assert_eq!(seen["backend"], id, "{decision}");
        assert_eq!(seen["skipped"], Value::Null, "{decision}");
        assert_eq!(seen["state"], "up", "{decision}");
    }
    assert!(decision["timings"]["connect_ms"].is_number(), "{decision}");
    assert!(decision["timings"]["relay_ms"].is_number(), "{decision}");
    assert_eq!(decision["timings"]["handshake_ms"], Value::Null);
    assert_eq!(decision["key"], Value::Null, "round robin reads no key");
    assert!(decision["down"].as_u64().unwrap() > 0, "{decision}");

    // One client, by address and port; another address has none.
    let client = decision["client"].as_str().unwrap();
    let one = get(&lb, &format!("/api/decisions?client={client}")).await;
    assert_eq!(one.as_array().unwrap().len(), 1, "{one}");
    let none = get(&lb, "/api/decisions?client=127.0.0.8").await;
    assert_eq!(none, serde_json::json!([]));
    // By backend: both were served by `alive`, none by `dead`.
    let alive = get(&lb, "/api/decisions?backend=alive").await;
    assert_eq!(alive.as_array().unwrap().len(), 2, "{alive}");
    let dead = get(&lb, "/api/decisions?backend=dead").await;
    assert_eq!(dead, serde_json::json!([]));
    // A limit above what the ring keeps is capped, not refused.
    let all = get(&lb, "/api/decisions?limit=999999").await;
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");

    // The same connects, counted per backend.
    let stats = get(&lb, "/api/stats").await;
    let row = |id: &str| {
        stats["backends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(row("dead")["failures"], 1);
    assert_eq!(row("alive")["failures"], 0);
    assert_eq!(row("alive")["total"], 2);
    lb.stop().await;
}

#[tokio::test]
async fn explain_names_the_backend_each_address_then_gets_under_maglev() {
    let backends = RunningBackend::start_many(3).await;
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let names: Vec<String> = backends.iter().map(|b| b.name()).collect();
    let ids: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut config = named_config(&addrs, &ids);
    config.algorithm = Algorithm::Maglev;
    let lb = ControlledLb::start(config).await;
    let url = format!("http://{}/", lb.addr);
    let mut chosen = BTreeSet::new();
    for n in 2..102u8 {
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, n));
        let explained = get(&lb, &format!("/api/explain?client={ip}")).await;
        let expected = explained["backend"].as_str().unwrap_or_else(|| {
            panic!("maglev names a backend for {ip}: {explained}")
        });
        let order = explained["order"].as_array().unwrap();
        assert_eq!(order.len(), 3, "{explained}");
        let client = reqwest::Client::builder()
            .local_address(ip)
            .pool_max_idle_per_host(0)
            .build()
            .expect("a client builds");
        let answered = who_answers_with(&client, &url).await;
        assert_eq!(answered, expected, "client {ip}: {explained}");
        chosen.insert(answered);
    }
    // A hundred addresses reach every backend, so the test could have
    // caught a wrong one.
    assert_eq!(chosen.len(), 3, "{chosen:?}");
    lb.stop().await;
}

#[tokio::test]
async fn explain_names_the_next_clients_backend_without_taking_its_turn() {
    let backends = RunningBackend::start_many(3).await;
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let names: Vec<String> = backends.iter().map(|b| b.name()).collect();
    let ids: Vec<&str> = names.iter().map(String::as_str).collect();
    for algorithm in [
        Algorithm::RoundRobin,
        Algorithm::WeightedRoundRobin,
        Algorithm::Random,
        Algorithm::PowerOfTwo,
    ] {
        let mut config = named_config(&addrs, &ids);
        config.algorithm = algorithm;
        let lb = ControlledLb::start(config).await;
        for client in 0..6 {
            // Asked twice: the same answer, so the first took no turn.
            let first = get(&lb, "/api/explain?client=127.0.0.2").await;
            let again = get(&lb, "/api/explain?client=127.0.0.2").await;
            assert_eq!(first["order"], again["order"], "{algorithm}");
            let note = first["note"].as_str().unwrap();
            assert!(note.contains("turn"), "{algorithm}: {note}");
            let expected = first["backend"].as_str().unwrap().to_owned();
            let answered = who_answers(lb.addr).await;
            assert_eq!(answered, expected, "{algorithm}, client {client}");
        }
        lb.stop().await;
    }
}

/// The keys of `/api/stats`, which the page and scripts read: kept
/// stable, so a change here is a change to announce.
#[tokio::test]
async fn the_shape_of_api_stats_is_pinned() {
    let backend = RunningBackend::start().await;
    let lb = ControlledLb::start(named_config(&[backend.addr], &["a"])).await;
    who_answers(lb.addr).await;
    let stats = deadline("a decision recorded", async {
        loop {
            let stats = get(&lb, "/api/stats").await;
            if stats["decisions"].as_array().is_some_and(|d| !d.is_empty()) {
                break stats;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let keys = |value: &Value| -> Vec<String> {
        let mut keys: Vec<String> =
            value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(
        keys(&stats),
        ["backends", "decisions", "ended", "lb", "listener"]
    );
    assert_eq!(
        keys(&stats["lb"]),
        ["algorithm", "listen", "now", "started", "version"]
    );
    assert_eq!(
        keys(&stats["listener"]),
        [
            "accepted",
            "at_limit",
            "handshakes",
            "limit_reached",
            "max_connections",
            "open",
            "queued"
        ]
    );
    assert_eq!(
        keys(&stats["backends"][0]),
        [
            "active",
            "address",
            "bytes_down",
            "bytes_up",
            "check",
            "effective_weight",
            "failures",
            "id",
            "max_connections",
            "queued",
            "since",
            "slow_start_percent",
            "state",
            "total",
            "weight",
            "why"
        ]
    );
    assert_eq!(
        keys(&stats["decisions"][0]),
        [
            "algorithm",
            "at",
            "backend",
            "client",
            "code",
            "considered",
            "down",
            "end",
            "key",
            "ms",
            "order",
            "timings",
            "tried",
            "up"
        ]
    );
    assert_eq!(
        keys(&stats["decisions"][0]["timings"]),
        ["connect_ms", "handshake_ms", "queue_ms", "relay_ms"]
    );
    assert_eq!(
        keys(&stats["decisions"][0]["considered"][0]),
        ["active", "backend", "skipped", "state", "weight"]
    );
    assert_eq!(stats["ended"]["--"], 1, "{}", stats["ended"]);
    lb.stop().await;
}

#[tokio::test]
async fn bad_requests_get_the_rule() {
    let backend = RunningBackend::start().await;
    let lb = ControlledLb::start(named_config(&[backend.addr], &["a"])).await;
    let cases = [
        (reqwest::Method::GET, "/nowhere", 404, "no such path"),
        (reqwest::Method::POST, "/api/stats", 405, "not a method"),
        (reqwest::Method::DELETE, "/metrics", 405, "not a method"),
        (reqwest::Method::GET, "/api/explain", 400, "an IP address"),
        (
            reqwest::Method::GET,
            "/api/explain?client=x",
            400,
            "an IP address",
        ),
        (
            reqwest::Method::GET,
            "/api/decisions?limit=x",
            400,
            "whole number",
        ),
        (reqwest::Method::GET, "/api/decisions?who=1", 400, "unknown"),
        (
            reqwest::Method::GET,
            "/api/decisions?client=1.2",
            400,
            "IP:PORT",
        ),
    ];
    for (method, path, status, words) in cases {
        let request =
            reqwest::Client::new().request(method.clone(), lb.url(path));
        let (got, body) = lb.send(request).await;
        assert_eq!(got, status, "{method} {path}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(words), "{method} {path}: {error}");
    }
    lb.stop().await;
}

/// Descriptors this process holds now.
fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd is readable")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_scrapes_at_once_are_all_answered_while_clients_are_served()
{
    let backend = RunningBackend::start().await;
    let lb = ControlledLb::start(named_config(&[backend.addr], &["a"])).await;
    who_answers(lb.addr).await;
    let before = open_descriptors();
    let metrics = lb.url("/metrics");
    let scrapes: Vec<_> = (0..1000)
        .map(|_| {
            let url = metrics.clone();
            tokio::spawn(async move {
                // A connection each, as a crowd of scrapers would have.
                let mut stream =
                    tokio::net::TcpStream::connect(url_addr(&url)).await?;
                let request = format!(
                    "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: \
                     close\r\n\r\n",
                    url_addr(&url)
                );
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                stream.write_all(request.as_bytes()).await?;
                let mut answer = Vec::new();
                stream.read_to_end(&mut answer).await?;
                Ok::<_, std::io::Error>(answer)
            })
        })
        .collect();
    // Clients of the relay are served meanwhile.
    for _ in 0..20 {
        assert_eq!(who_answers(lb.addr).await, backend.name());
    }
    let (mut ok, mut busy) = (0, 0);
    for scrape in scrapes {
        let answer = deadline("a scrape", scrape)
            .await
            .expect("the task ends")
            .expect("the scrape is answered, not dropped");
        let text = String::from_utf8_lossy(&answer);
        if text.starts_with("HTTP/1.1 200") {
            assert!(text.contains("lb_listener_connections_accepted_total"));
            assert!(text.trim_end().ends_with("# EOF"), "a whole exposition");
            ok += 1;
        } else if text.starts_with("HTTP/1.1 503") {
            busy += 1;
        } else {
            panic!("neither 200 nor 503: {text}");
        }
    }
    assert_eq!(ok + busy, 1000);
    assert!(ok > 0, "some were rendered");
    // Every connection the scrapes opened is closed again, on both sides
    // (the test and the admin listener share this process): bounded poll.
    deadline("the scrapes' descriptors closed", async {
        while open_descriptors() > before + 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    println!("1000 scrapes: {ok} answered 200, {busy} told 503");
    lb.stop().await;
}

fn url_addr(url: &str) -> String {
    url.trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_skipped_backend_says_why_in_explain() {
    let backends = RunningBackend::start_many(3).await;
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let mut config = named_config(&addrs, &["a", "b", "c"]);
    config.algorithm = Algorithm::Maglev;
    let lb = ControlledLb::start(config).await;
    assert_eq!(lb.act("b", "drain").await, 200);
    let explained = get(&lb, "/api/explain?client=127.0.0.9").await;
    let considered = explained["considered"].as_array().unwrap();
    let skipped: Vec<(&str, &str)> = considered
        .iter()
        .filter_map(|c| Some((c["backend"].as_str()?, c["skipped"].as_str()?)))
        .collect();
    assert_eq!(skipped, [("b", "draining")], "{explained}");
    assert_eq!(explained["order"].as_array().unwrap().len(), 2);
    assert!(explained["key"].as_str().is_some_and(|k| k.len() == 16));
    lb.stop().await;
}

/// `RUST_LOG=balancer=debug` shows each connection's decision, and
/// `log_format = "json"` makes every line `lb` writes a flat JSON object,
/// stdout's `listening on` included.
#[tokio::test]
async fn debug_logs_carry_the_decision_and_json_logs_are_json_lines() {
    let backend = RunningBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lb.toml");
    let text = format!(
        "listen = \"127.0.0.1:0\"\nlog_format = \"json\"\n\
         [[backends]]\naddress = \"{}\"\nid = \"only\"\n",
        backend.addr
    );
    std::fs::write(&path, text).unwrap();
    let mut lb = lab_common::testing::RunningBinary::start_with_env(
        env!("CARGO_BIN_EXE_lb"),
        &["--config", &path.display().to_string()],
        &[("RUST_LOG", "balancer=debug,lb=info")],
    )
    .await;
    assert_eq!(who_answers(lb.addr).await, backend.name());
    let log = lb.wait_for_stderr("\"message\":\"decision\"").await;
    let stdout = lb.wait_for_stdout("listening on").await;
    for line in stdout.lines().chain(log.lines()) {
        let object: Value = serde_json::from_str(line)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {line}"));
        let fields = object.as_object().unwrap();
        assert!(fields.contains_key("timestamp"), "{line}");
        assert!(fields.contains_key("message"), "{line}");
        assert!(
            fields.values().all(|value| !value.is_object()),
            "flat: {line}"
        );
    }
    let decision_line = log
        .lines()
        .find(|line| line.contains("\"message\":\"decision\""))
        .unwrap();
    let line: Value = serde_json::from_str(decision_line).unwrap();
    let decision: Value =
        serde_json::from_str(line["decision"].as_str().unwrap()).unwrap();
    assert_eq!(decision["backend"], "only", "{decision}");
    assert_eq!(decision["code"], "--", "{decision}");
    let closed = log
        .lines()
        .find(|line| line.contains("\"message\":\"closed\""))
        .expect("the connection's last line");
    let closed: Value = serde_json::from_str(closed).unwrap();
    assert_eq!(closed["code"], "--");
    assert_eq!(closed["backend"], "only");
}
