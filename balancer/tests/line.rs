//! The line of clients waiting for a full backend (issue 15, criterion
//! 6), over real sockets with `lb` in-process and its admin API:
//!
//! - 20 clients that arrive one after the other at a full backend
//!   (`max_connections = 1`, its place held) are served in the order
//!   they came, one per freed place: each release serves exactly one
//!   more (the next in line), each place wakes exactly one waiter
//!   (counted), and `GET /api/backends` shows
//!   `queued` counting them all the while;
//! - a backend that comes back up (its checks pass again) is filled from
//!   the line at once, while the full one still holds its place; so is
//!   the line of a backend whose `max_connections` a reload raises, and
//!   the line when a reload adds a backend.

mod common;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use balancer::config::CheckKind;
use common::{ControlledLb, HeldClient, named_config};
use dummy_servers::Fault;
use dummy_servers::testing::RunningBackend;

/// Whether `client` has been sent nothing yet (it is still waiting).
fn nothing_came(client: &HeldClient) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        client.stream().try_read(&mut byte),
        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock
    )
}

/// Connects `count` clients to `lb` one at a time, each sending its
/// request at once, and waits until backend `id` shows each in `queued`
/// before the next comes: their order in line is their order here.
async fn join_the_line(
    lb: &ControlledLb,
    id: &str,
    count: usize,
) -> VecDeque<HeldClient> {
    let mut line = VecDeque::with_capacity(count);
    for k in 1..=count {
        let mut client = HeldClient::connect_only(lb.addr).await;
        client.send().await;
        line.push_back(client);
        let what = format!("{k} clients in line");
        lb.wait_for(id, &what, |backend| {
            backend.is_some_and(|b| b["queued"] == k)
        })
        .await;
    }
    line
}

#[tokio::test]
async fn waiting_clients_are_served_in_their_order_one_per_freed_place() {
    const WAITING: usize = 20;
    let backend = RunningBackend::start().await;
    let mut config = named_config(&[backend.addr], &["a"]);
    config.backends[0].max_connections = Some(1);
    config.limits.queue_timeout = Duration::from_secs(50);
    let lb = ControlledLb::start(config).await;
    let (mut holding, first) = HeldClient::connect(lb.addr).await;
    assert_eq!(first.call, 1);
    let mut line = join_the_line(&lb, "a", WAITING).await;

    let queue = lb.balancer.queue().clone();
    let mut wakeups = Vec::with_capacity(WAITING);
    for k in 1..=WAITING {
        let woken = queue.woken();
        // One place freed...
        drop(holding);
        let mut next = line.pop_front().expect("a client in line");
        // ...serves the first in line: the backend's call k + 1.
        let echo = next.answer().await;
        assert_eq!(echo.call, k as u64 + 1, "client {k} came {k}th");
        let what = format!("{} left in line", WAITING - k);
        let a = lb
            .wait_for("a", &what, |a| {
                a.is_some_and(|a| a["queued"] == WAITING - k)
            })
            .await
            .expect("listed");
        assert_eq!(a["active"], 1, "{a}");
        // And it alone: the others have had nothing.
        for (behind, client) in line.iter().enumerate() {
            assert!(nothing_came(client), "after release {k}: {behind}");
        }
        wakeups.push(queue.woken() - woken);
        holding = next;
    }
    println!("wake-ups per freed place: {wakeups:?}");
    // Not the whole line: the one served. (It wakes the next only if it
    // left room behind it, which one freed place never does.)
    assert!(wakeups.iter().all(|&n| n == 1), "{wakeups:?}");
    drop(holding);
    lb.stop().await;
}

#[tokio::test]
async fn a_backend_that_comes_back_up_is_filled_from_the_line_at_once() {
    const WAITING: usize = 5;
    let full = RunningBackend::start().await;
    let sick = RunningBackend::start().await;
    let mut config = named_config(&[full.addr, sick.addr], &["a", "b"]);
    config.backends[0].max_connections = Some(1);
    config.backends[1].max_connections = Some(WAITING as u32);
    config.limits.queue_timeout = Duration::from_secs(50);
    config.health.kind = CheckKind::Http;
    config.health.rise = 1;
    config.health.fall = 1;
    let lb = ControlledLb::start(config).await;
    sick.set_fault(Fault::Unhealthy);
    lb.wait_for_state("b", "down").await;
    let (holding, first) = HeldClient::connect(lb.addr).await;
    assert_eq!(first.backend, full.name());
    let line = join_the_line(&lb, "a", WAITING).await;

    let recovered = Instant::now();
    sick.set_fault(Fault::None);
    for (k, mut client) in line.into_iter().enumerate() {
        let echo = client.answer().await;
        assert_eq!(echo.backend, sick.name(), "client {k}");
    }
    let filled = recovered.elapsed();
    // a never freed its place: b's return alone served the line.
    let a = lb.backend("a").await.expect("listed");
    assert_eq!(a["active"], 1, "{a}");
    assert_eq!(a["queued"], 0, "{a}");
    println!(
        "{WAITING} waiting clients served by the recovered backend \
         {filled:?} after its fault was lifted (checks every 100 ms)"
    );
    drop(holding);
    lb.stop().await;
}

#[tokio::test]
async fn a_reload_that_adds_room_serves_the_line_at_once() {
    const WAITING: usize = 3;
    let backend = RunningBackend::start().await;
    let mut config = named_config(&[backend.addr], &["a"]);
    config.backends[0].max_connections = Some(1);
    // Long beside a wake-up, short beside the test's deadline: a client
    // that waits it out gets a reset, which fails the test.
    config.limits.queue_timeout = Duration::from_secs(10);
    let lb = ControlledLb::start(config.clone()).await;
    let (holding, first) = HeldClient::connect(lb.addr).await;
    assert_eq!(first.call, 1);
    let mut line = join_the_line(&lb, "a", WAITING).await;

    // Room for all of them, by a reload; the first client keeps its
    // place.
    config.backends[0].max_connections = Some(1 + WAITING as u32);
    lb.write_config(config);
    let (status, changed) = lb.reload().await;
    assert_eq!(status, reqwest::StatusCode::OK, "{changed}");
    // Kept open (borrowed, not consumed) until `active` is read below.
    for (k, client) in line.iter_mut().enumerate() {
        let echo = client.answer().await;
        assert_eq!(echo.call, k as u64 + 2, "client {k}");
    }
    let a = lb.backend("a").await.expect("listed");
    assert_eq!(a["active"], 1 + WAITING, "{a}");
    assert_eq!(a["queued"], 0, "{a}");
    drop(line);
    drop(holding);
    lb.stop().await;
}

#[tokio::test]
async fn a_reload_that_adds_a_backend_serves_the_line_at_once() {
    const WAITING: usize = 3;
    let full = RunningBackend::start().await;
    let added = RunningBackend::start().await;
    let mut config = named_config(&[full.addr], &["a"]);
    config.backends[0].max_connections = Some(1);
    // As above: waiting it out means a reset, which fails the test.
    config.limits.queue_timeout = Duration::from_secs(10);
    let lb = ControlledLb::start(config.clone()).await;
    let (holding, _) = HeldClient::connect(lb.addr).await;
    let line = join_the_line(&lb, "a", WAITING).await;

    let mut next = named_config(&[full.addr, added.addr], &["a", "b"]);
    next.backends[0].max_connections = Some(1);
    next.limits = config.limits;
    lb.write_config(next);
    let (status, changed) = lb.reload().await;
    assert_eq!(status, reqwest::StatusCode::OK, "{changed}");
    for (k, mut client) in line.into_iter().enumerate() {
        let echo = client.answer().await;
        assert_eq!(echo.backend, added.name(), "client {k}");
    }
    drop(holding);
    lb.stop().await;
}
