//! The per-backend queue: a client that finds every backend with room
//! failing, and the others full, waits for room up to `queue_timeout`
//! instead of being closed.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use balancer::config::{BackendConfig, CheckKind};
use common::{RunningLb, config_for};
use dummy_servers::testing::RunningBackend;
use lab_common::testing::{TestCerts, deadline};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A `tls://` backend that fails every client: it accepts the TCP
/// connection and closes it at once, so the TLS handshake fails (a
/// connect-phase failure, as a refused connect is). Counts the tries.
async fn failing_tls_backend() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tried = Arc::new(AtomicUsize::new(0));
    let counted = tried.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(tcp);
        }
    });
    (addr, tried)
}

/// Sends a request on a new connection and reads the start of the
/// answer: `HTTP/1.1 200` if a backend answered, or what came instead.
async fn ask(tcp: &mut TcpStream) -> String {
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: lb\r\n\r\n")
        .await
        .unwrap();
    let mut start = [0u8; 12];
    match tcp.read_exact(&mut start).await {
        Ok(_) => String::from_utf8_lossy(&start).into_owned(),
        Err(err) => format!("no answer: {err}"),
    }
}

#[tokio::test]
async fn a_client_waits_for_a_full_backend_when_the_one_with_room_fails() {
    let certs = TestCerts::new();
    let full = RunningBackend::start().await;
    let (failing, tried) = failing_tls_backend().await;
    let mut config = config_for(&[full.addr]);
    config.backends[0].max_connections = Some(1);
    let address = format!("tls://{failing}").parse().unwrap();
    config.backends.push(BackendConfig::at(address));
    config.tls.ca = Some(certs.ca_path());
    // Active checks would take the failing backend out before any
    // client tries it; this is about what a client does when it fails.
    config.health.kind = CheckKind::Off;
    config.limits.queue_timeout = Duration::from_secs(30);
    let lb = RunningLb::start(config).await;

    // The first client takes the full backend's one place (perhaps after
    // trying the failing one) and keeps its connection open.
    let mut first = TcpStream::connect(lb.addr).await.unwrap();
    assert_eq!(
        deadline("first answer", ask(&mut first)).await,
        "HTTP/1.1 200"
    );
    let tried_before = tried.load(Ordering::SeqCst);

    // The second can only try the failing backend, the other being
    // full: once it has, it must wait for room, not be closed.
    let mut second = TcpStream::connect(lb.addr).await.unwrap();
    let answer = tokio::spawn(async move { ask(&mut second).await });
    deadline("the failing backend to be tried", async {
        while tried.load(Ordering::SeqCst) == tried_before {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    drop(first);
    let answer = deadline("second answer", answer).await.unwrap();
    assert_eq!(answer, "HTTP/1.1 200");
    lb.stop().await;
}
