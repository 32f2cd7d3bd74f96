//! `lb` end to end: real dummy backends, `lb` in-process on a free port,
//! real HTTP clients.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{RunningLb, config_for};
use dummy_servers::{RunningBackend, addrs};
use lab_common::testing::deadline;
use lab_common::testing::http::{fresh_client, who_answers};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

#[tokio::test]
async fn round_robin_sends_clients_to_each_backend_in_turn() {
    let backends = RunningBackend::start_many(3).await;
    let lb = RunningLb::start(config_for(&addrs(&backends))).await;
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(who_answers(lb.addr).await);
    }
    let names: Vec<String> = backends.iter().map(|b| b.name()).collect();
    let want: Vec<&String> = names.iter().chain(names.iter()).collect();
    assert_eq!(seen.iter().collect::<Vec<_>>(), want);
    lb.stop().await;
}

#[tokio::test]
async fn a_stopped_backend_fails_no_client() {
    let mut backends = RunningBackend::start_many(3).await;
    let all = addrs(&backends);
    let lb = RunningLb::start(config_for(&all)).await;
    let client = fresh_client();
    let url = format!("http://{}/", lb.addr);
    let stopped = backends.remove(1).stop().await;
    let mut failed = 0;
    let mut answered_by_stopped = 0;
    for _ in 0..300 {
        match deadline("request", client.get(&url).send()).await {
            Ok(response) if response.status().is_success() => {
                let text = response.text().await.unwrap_or_default();
                if text.contains(&format!("{}", stopped.port())) {
                    answered_by_stopped += 1;
                }
            }
            _ => failed += 1,
        }
    }
    assert_eq!((failed, answered_by_stopped), (0, 0));
    lb.stop().await;
}

#[tokio::test]
async fn with_every_backend_down_a_client_is_closed_at_once() {
    let backends = RunningBackend::start_many(2).await;
    let all = addrs(&backends);
    for backend in backends {
        backend.stop().await;
    }
    let lb = RunningLb::start(config_for(&all)).await;
    for _ in 0..3 {
        let mut client = TcpStream::connect(lb.addr).await.unwrap();
        let mut byte = [0u8; 1];
        // Closed, not left waiting: the read ends well within the
        // timeout (the connects are refused at once on loopback).
        let read = tokio::time::timeout(
            Duration::from_secs(5),
            client.read(&mut byte),
        )
        .await
        .expect("the client is closed, not left waiting");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    lb.stop().await;
}

/// `lb` at `addr` answers, through whichever backend.
async fn answers(addr: SocketAddr) -> bool {
    fresh_client()
        .get(format!("http://{addr}/"))
        .send()
        .await
        .is_ok_and(|response| response.status().is_success())
}

#[tokio::test]
async fn shutting_down_with_nothing_open_is_immediate_and_refuses_new_clients()
{
    let backends = RunningBackend::start_many(1).await;
    let mut config = config_for(&addrs(&backends));
    // Were `lb` to wait out the drain time, `stop` would hit the test's
    // deadline long before this.
    config.timeouts.drain = Duration::from_secs(3600);
    let lb = RunningLb::start(config).await;
    assert!(answers(lb.addr).await);
    let addr = lb.addr;
    let drained = lb.stop().await;
    // The client above may still be closing (finished: 1), never cut.
    assert_eq!(drained.cut, 0);
    let refused = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
}
