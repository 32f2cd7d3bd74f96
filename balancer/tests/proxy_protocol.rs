//! The PROXY protocol through `lb`, over real sockets: `send_proxy` tells
//! a backend the client's real address (plain and `tls://`, v1 and v2),
//! health checks pass against a backend that requires the header, and
//! `accept_proxy` takes the client's address from an incoming header
//! (v1 and v2), refuses a connection without one, and falls back to the
//! socket's own address for a `LOCAL` header.
//!
//! The clients connect from 127.0.0.2 and on (the whole of 127/8 is
//! loopback on Linux), so the address a backend is told is not simply
//! 127.0.0.1 by chance.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use balancer::config::CheckKind;
use common::{ControlledLb, config_for, named_config};
use dummy_servers::testing::{Opening, RunningBackend, get_after};
use lab_common::proxy_protocol::{Version, local_header, proxy_header};
use lab_common::testing::{RunningBinary, TestCerts, deadline};
use serde_json::Value;

const LB: &str = env!("CARGO_BIN_EXE_lb");

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

fn from(last: u8) -> Opening {
    Opening {
        from: Some(loopback(last)),
        ..Opening::default()
    }
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("a valid test address")
}

/// The `PROXY` line a backend's echo starts with after its first line,
/// up to the client's port (which the test does not know).
fn told(version: Version, ip: IpAddr) -> String {
    format!("PROXY {version}: client {ip}:")
}

async fn get_json(lb: &ControlledLb, path: &str) -> Value {
    let (status, body) =
        lb.send(reqwest::Client::new().get(lb.url(path))).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// The decisions recorded for `client`, once there are `count` of them
/// (recorded as each connection ends, which the client does not wait
/// for: polled, bounded).
async fn decisions_for(
    lb: &ControlledLb,
    client: &str,
    count: usize,
) -> Vec<Value> {
    let path = format!("/api/decisions?client={client}");
    deadline("the decisions", async {
        for _ in 0..2_000 {
            let found = get_json(lb, &path).await;
            if let Some(list) = found.as_array()
                && list.len() >= count
            {
                return list.clone();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("never {count} decisions for {client}")
    })
    .await
}

#[tokio::test]
async fn a_plain_backend_is_told_the_client_in_v1_and_v2() {
    for (version, client) in [(Version::V1, 2), (Version::V2, 3)] {
        let backend = RunningBackend::start_proxied(None).await;
        let mut config = config_for(&[backend.addr]);
        config.backends[0].send_proxy = Some(version);
        let lb = ControlledLb::start(config).await;

        let answer = get_after(lb.addr, &from(client), "/").await.unwrap();
        assert!(
            answer.contains(&told(version, loopback(client))),
            "{answer}"
        );
        // The destination is the address the client connected to.
        assert!(answer.contains(&format!(", to {}\n", lb.addr)), "{answer}");
        assert!(answer.contains("call #1"), "{answer}");
        lb.stop().await;
    }
}

#[tokio::test]
async fn a_tls_backend_gets_the_header_before_the_handshake() {
    let certs = TestCerts::new();
    for (version, client) in [(Version::V1, 4), (Version::V2, 5)] {
        let backend =
            RunningBackend::start_proxied(Some(certs.server_config())).await;
        let mut config = config_for(&[backend.addr]);
        config.backends[0].address =
            format!("tls://{}", backend.addr).parse().unwrap();
        config.backends[0].send_proxy = Some(version);
        config.tls.ca = Some(certs.ca_path());
        config.health.kind = CheckKind::Off;
        let lb = ControlledLb::start(config).await;

        let answer = get_after(lb.addr, &from(client), "/").await.unwrap();
        assert!(answer.contains(" over TLS, call #1\n"), "{answer}");
        assert!(
            answer.contains(&told(version, loopback(client))),
            "{answer}"
        );
        lb.stop().await;
    }
}

#[tokio::test]
async fn health_checks_pass_with_the_header_and_fail_without() {
    let certs = TestCerts::new();
    for tls in [false, true] {
        // The same kind of backend twice: both require a PROXY header;
        // lb sends it to `with` only.
        let config_tls = tls.then(|| certs.server_config());
        let with = RunningBackend::start_proxied(config_tls.clone()).await;
        let without = RunningBackend::start_proxied(config_tls).await;
        let mut config =
            named_config(&[with.addr, without.addr], &["with", "without"]);
        if tls {
            for backend in &mut config.backends {
                backend.address =
                    format!("tls://{}", backend.address).parse().unwrap();
            }
            config.tls.ca = Some(certs.ca_path());
        }
        config.health.kind = CheckKind::Http;
        config.backends[0].send_proxy = Some(Version::V2);
        let lb = ControlledLb::start(config).await;
        lb.wait_for_state("without", "down").await;
        let shown = lb.backend("with").await.expect("listed");
        assert_eq!(shown["state"], "up", "{shown}");

        // v1's checks send `PROXY UNKNOWN`, which passes too.
        let mut config = lb.config();
        config.backends[1].send_proxy = Some(Version::V1);
        lb.write_config(config);
        let (status, body) = lb.reload().await;
        assert_eq!(status, 200, "{body}");
        lb.wait_for_state("without", "up").await;
        lb.stop().await;
    }
}

/// `lb` behind another layer-4 balancer: `accept_proxy` on, and a
/// backend that is itself told the client with v2.
async fn lb_behind_a_balancer() -> (ControlledLb, RunningBackend) {
    let backend = RunningBackend::start_proxied(None).await;
    let mut config = named_config(&[backend.addr], &["told"]);
    config.accept_proxy = true;
    config.algorithm = balancer::select::Algorithm::Maglev;
    config.backends[0].send_proxy = Some(Version::V2);
    (ControlledLb::start(config).await, backend)
}

#[tokio::test]
async fn accept_proxy_takes_the_client_from_a_v1_or_v2_header() {
    let (lb, _backend) = lb_behind_a_balancer().await;
    let cases = [
        (Version::V1, "203.0.113.7:40001", "198.51.100.1:443"),
        (Version::V2, "203.0.113.8:40002", "198.51.100.2:443"),
    ];
    for (version, source, destination) in cases {
        let opening = Opening {
            first: proxy_header(version, addr(source), addr(destination)),
            ..from(6)
        };
        let answer = get_after(lb.addr, &opening, "/").await.unwrap();
        // Passed on as the header said: the client, and the address it
        // connected to in front of lb.
        let line = format!("PROXY v2: client {source}, to {destination}\n");
        assert!(answer.contains(&line), "{answer}");

        // The decision trace has the told client, and its hash key.
        let ip = addr(source).ip().to_string();
        let decisions = decisions_for(&lb, &ip, 1).await;
        assert_eq!(decisions[0]["client"], source, "{decisions:?}");
        assert_eq!(decisions[0]["backend"], "told", "{decisions:?}");
        assert!(decisions[0]["key"].is_string(), "{decisions:?}");
    }
    // Nothing was recorded under the socket's own address.
    let own = get_json(&lb, "/api/decisions?client=127.0.0.6").await;
    assert_eq!(own.as_array().map(Vec::len), Some(0), "{own}");
    lb.stop().await;
}

#[tokio::test]
async fn a_local_header_leaves_the_connection_s_own_address() {
    let (lb, _backend) = lb_behind_a_balancer().await;
    for version in [Version::V1, Version::V2] {
        let opening = Opening {
            first: local_header(version),
            ..from(7)
        };
        let answer = get_after(lb.addr, &opening, "/").await.unwrap();
        assert!(answer.contains(&told(Version::V2, loopback(7))), "{answer}");
    }
    decisions_for(&lb, "127.0.0.7", 2).await;
    lb.stop().await;
}

#[tokio::test]
async fn accept_proxy_closes_a_connection_without_a_header() {
    let (lb, backend) = lb_behind_a_balancer().await;
    // An HTTP request where the header belongs.
    let answer = get_after(lb.addr, &from(8), "/").await;
    if let Ok(answer) = answer {
        assert_eq!(answer, "", "closed without an answer");
    }
    let decisions = decisions_for(&lb, "127.0.0.8", 1).await;
    assert_eq!(decisions[0]["code"], "CH", "{decisions:?}");
    assert!(decisions[0]["backend"].is_null(), "{decisions:?}");
    drop(backend);
    lb.stop().await;
}

#[tokio::test]
async fn a_silent_client_times_out_as_ch() {
    let backend = RunningBackend::start_proxied(None).await;
    let mut config = config_for(&[backend.addr]);
    config.accept_proxy = true;
    config.timeouts.proxy_header = Duration::from_millis(100);
    let lb = ControlledLb::start(config).await;
    let silent = tokio::net::TcpSocket::new_v4().unwrap();
    silent.bind(SocketAddr::new(loopback(9), 0)).unwrap();
    let mut silent = silent.connect(lb.addr).await.unwrap();
    // lb closes it once the header's time is up.
    let mut buf = [0u8; 1];
    let read = deadline("lb closes the silent client", async {
        use tokio::io::AsyncReadExt;
        silent.read(&mut buf).await
    })
    .await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let decisions = decisions_for(&lb, "127.0.0.9", 1).await;
    assert_eq!(decisions[0]["code"], "cH", "{decisions:?}");
    lb.stop().await;
}

/// The log line an operator sees for a refused connection, from the real
/// binary with a config file.
#[tokio::test]
async fn the_binary_logs_a_connection_refused_for_its_header() {
    let backend = RunningBackend::start_proxied(None).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lb.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\naccept_proxy = true\n\n\
             [[backends]]\naddress = \"{}\"\nsend_proxy = \"v1\"\n",
            backend.addr
        ),
    )
    .unwrap();
    let path = path.display().to_string();
    let mut lb = RunningBinary::start(LB, &["--config", &path]).await;

    let _ = get_after(lb.addr, &from(10), "/").await;
    let log = lb
        .wait_for_stderr("not start with a valid PROXY header")
        .await;
    let line = log
        .lines()
        .find(|line| line.contains("valid PROXY header"))
        .expect("the line waited for");
    assert!(line.contains("client 127.0.0.10:"), "{line}");
    assert!(line.contains("(code: CH)"), "{line}");
    assert!(line.contains("not a PROXY header"), "{line}");

    // And one with a header is served, its client passed on in v1.
    let opening = Opening {
        first: proxy_header(
            Version::V1,
            addr("192.0.2.44:5555"),
            addr("192.0.2.1:80"),
        ),
        ..from(10)
    };
    let answer = get_after(lb.addr, &opening, "/").await.unwrap();
    let told_line = "PROXY v1: client 192.0.2.44:5555, to 192.0.2.1:80\n";
    assert!(answer.contains(told_line), "{answer}");
    // Its log line names the told client, and the balancer in front.
    let log = lb
        .wait_for_stderr("client 192.0.2.44:5555 -> backend")
        .await;
    let line = log
        .lines()
        .find(|line| line.contains("client 192.0.2.44:5555 -> backend"))
        .expect("the line waited for");
    assert!(line.contains("(via: 127.0.0.10:"), "{line}");
}
