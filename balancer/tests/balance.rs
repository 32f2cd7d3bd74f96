//! `lb` end to end: real dummy backends, `lb` in-process on a free port,
//! real HTTP clients.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use balancer::select::Algorithm;
use common::{RunningLb, config_for};
use dummy_servers::Fault;
use dummy_servers::testing::{RunningBackend, addrs};
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

/// How many of `requests` clients, `workers` at a time, each backend
/// answered.
async fn spread(
    addr: SocketAddr,
    workers: usize,
    requests: usize,
) -> Vec<String> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        tasks.spawn(async move {
            let mut names = Vec::new();
            for _ in 0..requests / workers {
                names.push(who_answers(addr).await);
            }
            names
        });
    }
    let mut names = Vec::new();
    while let Some(done) = tasks.join_next().await {
        names.extend(done.expect("a worker did not panic"));
    }
    names
}

#[tokio::test]
async fn least_connections_sends_fewer_clients_to_a_slow_backend() {
    let backends = RunningBackend::start_many(3).await;
    let slow = &backends[1];
    slow.set_fault(Fault::Slow(Duration::from_millis(300)));
    let mut shares = Vec::new();
    for algorithm in [Algorithm::RoundRobin, Algorithm::LeastConnections] {
        let mut config = config_for(&addrs(&backends));
        config.algorithm = algorithm;
        let lb = RunningLb::start(config).await;
        let names = spread(lb.addr, 3, 60).await;
        let to_slow = names.iter().filter(|&n| *n == slow.name()).count();
        shares.push(to_slow);
        lb.stop().await;
    }
    // Round robin gives the slow backend its third whatever happens;
    // least connections sees its connections pile up and looks elsewhere.
    assert_eq!(shares[0], 20, "round robin: every third client");
    assert!(shares[1] < 10, "least connections sent {} of 60", shares[1]);
}

#[tokio::test]
async fn weighted_round_robin_interleaves_by_weight() {
    let backends = RunningBackend::start_many(3).await;
    let mut config = config_for(&addrs(&backends));
    config.algorithm = Algorithm::WeightedRoundRobin;
    config.backends[0].weight = 5;
    let lb = RunningLb::start(config).await;
    let mut letters = String::new();
    for _ in 0..14 {
        let name = who_answers(lb.addr).await;
        let index = backends.iter().position(|b| b.name() == name).unwrap();
        letters.push(['a', 'b', 'c'][index]);
    }
    assert_eq!(letters, "aabacaaaabacaa");
    lb.stop().await;
}

#[tokio::test]
async fn maglev_sends_a_client_to_the_same_backend_from_every_instance() {
    let backends = RunningBackend::start_many(3).await;
    let mut config = config_for(&addrs(&backends));
    config.algorithm = Algorithm::Maglev;
    // Two instances with one backend list, as two `lb` hosts would run.
    let first = RunningLb::start(config.clone()).await;
    let second = RunningLb::start(config).await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..10 {
        seen.insert(who_answers(first.addr).await);
        seen.insert(who_answers(second.addr).await);
    }
    assert_eq!(
        seen.len(),
        1,
        "one client (127.0.0.1), one backend: {seen:?}"
    );
    first.stop().await;
    second.stop().await;
}
