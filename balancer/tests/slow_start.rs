//! Slow start end to end (issue 15, criterion 7): with `[health]
//! slow_start = "8s"` and HTTP checks every 50 ms, a backend taken down
//! (fault `unhealthy`) and brought back gets, in the first tenth of its
//! slow start, at most 20% of the share it gets once the ramp is over:
//! under weighted round robin (clients one after the other, each closed
//! before the next) and under least connections (clients kept open
//! through the burst, so that the loads it compares are not all zero).
//!
//! Three backends of weight 1: the recovered one's final share is a
//! third; at 10% of its weight it should get 1 client in 21. Its
//! `max_connections` ramps too: a tenth of it at first, and a client
//! waiting for room gets the room the ramp makes. The ramp itself (10%
//! to 100%, linear) is pinned in `live.rs`'s unit tests.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use balancer::config::CheckKind;
use balancer::select::Algorithm;
use common::{ControlledLb, HeldClient, named_config};
use dummy_servers::Fault;
use dummy_servers::testing::RunningBackend;

/// Long enough that its first tenth holds some 50 clients or more even
/// on a busy machine: at a share of 1 in 21, one client more or less
/// must not decide the outcome.
const SLOW_START: Duration = Duration::from_secs(8);

/// The backends' ids; b is the one taken down and brought back.
const IDS: [&str; 3] = ["a", "b", "c"];

/// Who answered a burst of clients: each connects, asks once and is
/// closed at once, or (`hold`) kept open until the burst ends. The
/// burst ends after `most` clients, or with the first answer after
/// `until` (that one not counted: it may have been chosen later).
async fn burst(
    lb: &ControlledLb,
    hold: bool,
    most: usize,
    until: Option<SystemTime>,
) -> Vec<String> {
    let mut answered = Vec::with_capacity(most);
    let mut held = Vec::new();
    while answered.len() < most {
        let (client, echo) = HeldClient::connect(lb.addr).await;
        if until.is_some_and(|until| SystemTime::now() > until) {
            break;
        }
        answered.push(echo.backend);
        if hold {
            held.push(client);
        }
    }
    answered
}

/// Waits until no client connection is open to any backend, so that
/// least connections starts the next burst from empty backends.
async fn wait_until_idle(lb: &ControlledLb) {
    for id in IDS {
        lb.wait_for(id, "the burst's connections to end", |backend| {
            backend.is_some_and(|b| b["active"] == 0)
        })
        .await;
    }
}

fn share(answered: &[String], name: &str) -> f64 {
    let count = answered.iter().filter(|n| *n == name).count();
    count as f64 / answered.len() as f64
}

/// Takes `recovering` (b) down and brings it back, then sends a burst
/// that ends with the first tenth of its slow start: who answered, and
/// how long after b came up the burst began.
async fn first_tenth_burst(
    lb: &ControlledLb,
    recovering: &RunningBackend,
    hold: bool,
) -> (Vec<String>, Duration) {
    wait_until_idle(lb).await;
    recovering.set_fault(Fault::Unhealthy);
    lb.wait_for_state("b", "down").await;
    recovering.set_fault(Fault::None);
    let b = lb
        .wait_for("b", "b to come back", |b| {
            b.is_some_and(|b| b["state"] != "down")
        })
        .await
        .expect("listed");
    assert_eq!(b["state"], "slow_start", "{b}");
    // When it came back up, by `lb`'s own clock (`since`, to the ms).
    let since = b["since"].as_f64().expect("since is a number");
    let up_at = UNIX_EPOCH + Duration::from_secs_f64(since);
    let began = SystemTime::now().duration_since(up_at).unwrap_or_default();
    let first_tenth = up_at + SLOW_START / 10;
    (burst(lb, hold, 200, Some(first_tenth)).await, began)
}

/// Takes backend b of three down and back, and compares its share of a
/// burst in the first tenth of its slow start with its share after.
async fn check_slow_start(algorithm: Algorithm, hold: bool) {
    let backends = RunningBackend::start_many(3).await;
    let addrs = [backends[0].addr, backends[1].addr, backends[2].addr];
    let recovering = &backends[1];
    let mut config = named_config(&addrs, &IDS);
    config.algorithm = algorithm;
    config.health.kind = CheckKind::Http;
    config.health.interval = Duration::from_millis(50);
    config.health.rise = 1;
    config.health.fall = 1;
    // One slow check on a busy machine must not take a backend down.
    config.health.timeout = Duration::from_secs(2);
    config.health.slow_start = SLOW_START;
    let lb = ControlledLb::start(config).await;
    // A machine too busy to fit 30 clients in the first tenth makes the
    // count too small to judge: then b is taken down and back again, at
    // most three times.
    let mut early = Vec::new();
    for attempt in 1..=3 {
        let (clients, began) = first_tenth_burst(&lb, recovering, hold).await;
        early = clients;
        if early.len() >= 30 {
            break;
        }
        println!(
            "attempt {attempt}: only {} clients in the first tenth (the \
             burst began {began:?} after b came up)",
            early.len()
        );
    }
    assert!(early.len() >= 30, "only {} clients in time", early.len());

    lb.wait_for_state("b", "up").await;
    wait_until_idle(&lb).await;
    let late = burst(&lb, hold, 30, None).await;
    let name = recovering.name();
    let (early_share, late_share) = (share(&early, &name), share(&late, &name));
    let ratio = early_share / late_share;
    println!(
        "{algorithm}: in the first tenth of its slow start b answered \
         {:.1}% of {} clients; after it {:.1}% of {}: {:.0}% of its final \
         share",
        early_share * 100.0,
        early.len(),
        late_share * 100.0,
        late.len(),
        ratio * 100.0
    );
    assert!(late_share > 0.3, "b's final share is a third: {late:?}");
    assert!(ratio <= 0.2, "too much too soon: {early:?}");
    lb.stop().await;
}

#[tokio::test]
async fn weighted_round_robin_gives_a_recovered_backend_its_share_slowly() {
    check_slow_start(Algorithm::WeightedRoundRobin, false).await;
}

#[tokio::test]
async fn least_connections_gives_a_recovered_backend_its_share_slowly() {
    check_slow_start(Algorithm::LeastConnections, true).await;
}

#[tokio::test]
async fn the_limit_ramps_too_and_a_waiting_client_gets_the_room_it_makes() {
    let backend = RunningBackend::start().await;
    let mut config = named_config(&[backend.addr], &["b"]);
    // A tenth of 5 is 1 place until 20% of the ramp (1.6 s), then 2.
    config.backends[0].max_connections = Some(5);
    config.health.kind = CheckKind::Http;
    config.health.interval = Duration::from_millis(50);
    config.health.rise = 1;
    config.health.fall = 1;
    config.health.slow_start = SLOW_START;
    // Longer than the ramp: a client that waits it out is reset.
    config.limits.queue_timeout = Duration::from_secs(20);
    let lb = ControlledLb::start(config).await;
    backend.set_fault(Fault::Unhealthy);
    lb.wait_for_state("b", "down").await;
    backend.set_fault(Fault::None);
    lb.wait_for("b", "b to come back", |b| {
        b.is_some_and(|b| b["state"] == "slow_start")
    })
    .await;
    let recovered = std::time::Instant::now();
    let (holding, echo) = HeldClient::connect(lb.addr).await;
    assert_eq!(echo.backend, backend.name());
    // One place at first: the second client waits.
    let mut waiting = HeldClient::connect_only(lb.addr).await;
    waiting.send().await;
    let b = lb
        .wait_for("b", "a client in line", |b| {
            b.is_some_and(|b| b["queued"] == 1)
        })
        .await
        .expect("listed");
    assert_eq!(b["active"], 1, "{b}");
    assert_eq!(b["state"], "slow_start", "{b}");
    // The ramp makes room: the waiting client takes it.
    let echo = waiting.answer().await;
    let served = recovered.elapsed();
    println!("the second client was served {served:?} into the slow start");
    assert_eq!(echo.backend, backend.name());
    assert!(
        served < SLOW_START,
        "served only after the ramp: {served:?}"
    );
    drop((holding, waiting));
    lb.stop().await;
}
