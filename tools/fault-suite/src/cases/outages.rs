//! Partial failures, the messier kind of outage: every backend gone for a
//! second, a stream broken in the middle instead of ended, a backend
//! that flaps, and a backend that is `lb` itself.
//!
//! Each runs under a steady load of new connections where it matters,
//! and measures what the clients saw, attempt by attempt.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{
    Ctx, Ran, backend_error, clients, metric, ms, scrape, secs,
    serving_backend, start,
};
use crate::backend::{Behaviour, FaultBackend};
use crate::client::{self, Front};
use crate::conn::End;
use crate::measure::Peak;
use crate::report::{self, Report, show};
use crate::subject::{BackendAt, Health, Kind, Setup};

/// One new connection of a steady load: when it started, and whether it
/// was answered.
#[derive(Clone, Copy, Debug)]
struct Attempt {
    at: Instant,
    /// When it ended.
    done: Instant,
    ok: bool,
    /// How it ended, if it failed: for a report that says why.
    end: Option<End>,
    /// The client's port, to find its line in the balancer's log.
    port: Option<u16>,
}

/// A steady load of new connections: each of its clients connects,
/// sends `PING`, waits for `PONG` and closes, one connection every
/// [`Steady::PACE`] at most, until stopped.
struct Steady {
    stop: watch::Sender<bool>,
    tasks: JoinSet<Vec<Attempt>>,
    served: watch::Receiver<u64>,
}

impl Steady {
    /// Between two connections of one client, at the least: a failed
    /// connection returns at once, and without a pace a client would
    /// spin.
    const PACE: Duration = Duration::from_millis(25);
    /// How long an attempt waits for its answer.
    const PATIENCE: Duration = Duration::from_secs(2);
    /// No client of the load runs longer than this, whatever happens.
    const LIMIT: Duration = Duration::from_secs(300);

    fn start(addr: SocketAddr, count: usize) -> Steady {
        let (stop, stopped) = watch::channel(false);
        let (served_tx, served) = watch::channel(0u64);
        let mut tasks = JoinSet::new();
        for _ in 0..count {
            let stopped = stopped.clone();
            let served_tx = served_tx.clone();
            tasks.spawn(async move {
                let began = Instant::now();
                let mut ticks = tokio::time::interval(Steady::PACE);
                ticks.set_missed_tick_behavior(
                    tokio::time::MissedTickBehavior::Delay,
                );
                let mut attempts = Vec::new();
                while !*stopped.borrow() && began.elapsed() < Steady::LIMIT {
                    ticks.tick().await;
                    let at = Instant::now();
                    let (end, port) =
                        match client::connect(addr, &Front::Plain).await {
                            Ok(mut connected) => {
                                let port = connected
                                    .conn
                                    .tcp()
                                    .local_addr()
                                    .ok()
                                    .map(|a| a.port());
                                let answer = client::ping(
                                    &mut connected.conn,
                                    Steady::PATIENCE,
                                )
                                .await;
                                (answer.err(), port)
                            }
                            Err(err) => (Some(End::of_error(&err)), None),
                        };
                    let ok = end.is_none();
                    if ok {
                        served_tx.send_modify(|n| *n += 1);
                    }
                    let done = Instant::now();
                    attempts.push(Attempt {
                        at,
                        done,
                        ok,
                        end,
                        port,
                    });
                }
                attempts
            });
        }
        Steady {
            stop,
            tasks,
            served,
        }
    }

    /// Waits (up to `limit`) until `more` connections more than now have
    /// been served; whether they were.
    async fn served_more(&mut self, more: u64, limit: Duration) -> bool {
        let want = *self.served.borrow() + more;
        let waited = self.served.wait_for(|&n| n >= want);
        matches!(tokio::time::timeout(limit, waited).await, Ok(Ok(_)))
    }

    /// Stops the load; every attempt, in the order they started.
    async fn finish(mut self) -> Result<Vec<Attempt>, String> {
        self.stop.send_replace(true);
        let mut all = Vec::new();
        while let Some(joined) = self.tasks.join_next().await {
            all.extend(joined.map_err(|err| format!("a client: {err}"))?);
        }
        all.sort_by_key(|a| a.at);
        Ok(all)
    }
}

/// Failed attempts among `attempts`, and how many there were.
fn failed(attempts: &[Attempt]) -> (usize, usize) {
    (attempts.iter().filter(|a| !a.ok).count(), attempts.len())
}

/// "3 of 120 failed (2.5%)".
fn share_failed(attempts: &[Attempt]) -> String {
    let (failed, all) = failed(attempts);
    let percent = if all == 0 {
        0.0
    } else {
        100.0 * failed as f64 / all as f64
    };
    format!("{failed} of {all} failed ({percent:.1}%)")
}

// ANCHOR: blip
/// Every backend unreachable for a second, then back: clients are
/// served again within one check interval plus `rise` checks.
pub(super) async fn blip(ctx: &Ctx, report: &mut Report) -> Ran {
    let interval = ms(500);
    let rise = 2;
    let outage = secs(1);
    let count = ctx.size.pick(4, 8);
    let mut backends = Vec::new();
    for _ in 0..3 {
        backends.push(serving_backend(false, ctx).await?);
    }
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let setup = Setup {
        health: Some(Health {
            rise: Some(rise),
            ..Health::every(interval)
        }),
        ..Setup::over(&addrs, false)
    };
    let lb = start(ctx, &setup, report).await?;
    let mut load = Steady::start(lb.addr, count);
    // Two intervals of checks under load first: every backend has passed
    // a check (until one has, a single failure takes it down).
    let warm = Instant::now();
    load.served_more(20, secs(10)).await;
    tokio::time::sleep((interval * 2).saturating_sub(warm.elapsed())).await;
    let down = Instant::now();
    for backend in &backends {
        if !backend.refuse().await {
            return Err("a backend would not stop listening".into());
        }
    }
    // The outage itself: its length is the fault.
    tokio::time::sleep(outage).await;
    for backend in &backends {
        if !backend.answer().await {
            return Err("a backend would not listen again".into());
        }
    }
    let back = Instant::now();
    let bound = interval * (1 + rise);
    // Watched for the bound and as long again, so that a recovery just
    // past it is seen as one.
    tokio::time::sleep(bound * 2 + ctx.size.pick(secs(1), secs(3))).await;
    let attempts = load.finish().await?;
    // An attempt still under way as the blip began is the blip's.
    let before: Vec<Attempt> =
        attempts.iter().copied().filter(|a| a.done < down).collect();
    let during: Vec<Attempt> = attempts
        .iter()
        .copied()
        .filter(|a| a.done >= down && a.at < back)
        .collect();
    let after: Vec<Attempt> =
        attempts.iter().copied().filter(|a| a.at >= back).collect();
    // Served again from the first attempt after which none failed.
    let last_failure = after.iter().rev().find(|a| !a.ok).map(|a| a.at);
    let recovered = match last_failure {
        None => Some(Duration::ZERO),
        Some(at) => after
            .iter()
            .find(|a| a.at > at)
            .map(|a| a.at.duration_since(back)),
    };
    report.figure(format!(
        "{count} clients, a new connection each every {} at most; 3 \
         backends refused connects for {} (all of them took {} to stop \
         and start again)",
        show(Steady::PACE),
        show(outage),
        show(back - down)
    ));
    report.figure(format!(
        "before the blip {}; during it {}; after it {}",
        share_failed(&before),
        share_failed(&during),
        share_failed(&after)
    ));
    report.figure(match recovered {
        Some(took) => format!(
            "served again {} after the last backend was back",
            show(took)
        ),
        None => "never served again while watched".to_owned(),
    });
    report.check(
        failed(&before).0 == 0 && !before.is_empty(),
        "every client was served before the blip",
    );
    report.check(
        recovered.is_some_and(|took| took <= bound),
        format!(
            "every client served again within one check interval plus \
             rise = {rise} checks ({}) of the backends answering",
            show(bound)
        ),
    );
    Ok(())
}
// ANCHOR_END: blip

/// A plain client's connection to `addr` whose send buffer is small, so
/// that an upload it cannot finish fills little memory.
async fn connect_small_send(addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.set_send_buffer_size(64 * 1024)?;
    let tcp = socket.connect(addr).await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// The upload sent to a backend that stops reading: more than the
/// backend's window takes, so that the rest waits in `lb`'s send buffer,
/// unacknowledged; less than the buffers on the way hold, so that the
/// client's writes all return long before the unacknowledged timeout.
const UPLOAD: u64 = 512 * 1024;

/// Uploads [`UPLOAD`] bytes to a backend that stops reading, then only
/// reads: how the connection ended, as the reads saw it, within `limit`.
///
/// The client stops writing before it reads: after a reset, the first
/// call on the socket reports it and the next reads see an end of
/// stream, so a write still going on could take the reset and leave the
/// read a clean end.
async fn upload_into_the_void(
    addr: SocketAddr,
    limit: Duration,
) -> io::Result<End> {
    let mut tcp = connect_small_send(addr).await?;
    let uploading = async {
        tcp.write_all(format!("PUT {UPLOAD}\n").as_bytes()).await?;
        crate::backend::write_pattern(&mut tcp, 0, UPLOAD).await
    };
    // All written, or as much as the buffers on the way took, unless the
    // connection failed first.
    if let Ok(Err(err)) = tokio::time::timeout(ms(500), uploading).await {
        return Ok(End::of_error(&err));
    }
    let (end, _) = client::wait_for_end(&mut tcp, limit).await;
    Ok(end)
}

// ANCHOR: broken_stream
/// A stream that breaks mid-way (a corrupt TLS record from a tls://
/// backend, data left unacknowledged to a plain one) reaches each plain
/// client as a reset, never a clean end.
pub(super) async fn broken_stream(ctx: &Ctx, report: &mut Report) -> Ran {
    let count = ctx.size.pick(10, 20);
    let after = 64 * 1024;
    let total = 1 << 20;
    let mut setups = Vec::new();

    let acceptor = Some(ctx.certs.acceptor.clone());
    let corrupt =
        FaultBackend::start(Behaviour::CorruptRecord { after }, acceptor)
            .await
            .map_err(backend_error)?;
    let lb = start(ctx, &Setup::over(&[corrupt.addr], true), report).await?;
    setups.push(report.setup.clone());
    let addr = lb.addr;
    let downloads = clients(count, |_| {
        client::connect_and_get(addr, &Front::Plain, total, secs(5), None)
    })
    .await?;
    let downloads: Vec<_> = downloads.into_iter().flatten().collect();
    let resets = downloads
        .iter()
        .filter(|d| d.end == End::Reset && d.intact && d.bytes < total)
        .count();
    report.figure(format!(
        "a tls:// backend sent {} KiB of {} MiB, then a corrupt record: \
         the {count} plain clients saw {}",
        after >> 10,
        total >> 20,
        report::ends(downloads.iter().map(|d| d.end))
    ));
    report.check(
        resets == count,
        format!(
            "a corrupt record: {resets} of {count} clients saw a reset, \
             none a clean end"
        ),
    );
    drop(lb);

    let unacknowledged = ctx.size.pick(secs(1), secs(2));
    let stops = FaultBackend::start(Behaviour::StopsReading { after }, None)
        .await
        .map_err(backend_error)?;
    let setup = Setup {
        unacknowledged: Some(unacknowledged),
        ..Setup::over(&[stops.addr], false)
    };
    let lb = start(ctx, &setup, report).await?;
    setups.push(report.setup.clone());
    let (addr, limit) = (lb.addr, unacknowledged + secs(5));
    let started = Instant::now();
    let uploads = clients(count, |_| upload_into_the_void(addr, limit)).await?;
    let took = started.elapsed();
    let ends: Vec<End> = uploads
        .iter()
        .map(|u| u.as_ref().map_or_else(End::of_error, |end| *end))
        .collect();
    let resets = ends.iter().filter(|&&e| e == End::Reset).count();
    report.figure(format!(
        "a plain backend stopped reading after {} KiB of an upload: the \
         {count} clients saw {} (all ended within {})",
        after >> 10,
        report::ends(ends.iter().copied()),
        show(took)
    ));
    report.check(
        resets == count,
        format!(
            "data left unacknowledged: {resets} of {count} clients saw a \
             reset, none a clean end"
        ),
    );
    report.setup = setups.join("; then ");
    Ok(())
}
// ANCHOR_END: broken_stream

/// When a log line was written: its timestamp (`2026-12-06T11:05:34.775891Z
/// ...`) as seconds since midnight, UTC.
fn log_time(line: &str) -> Option<f64> {
    let clock = line.get(11..26)?;
    let mut parts = clock.split(':');
    let hours: f64 = parts.next()?.parse().ok()?;
    let minutes: f64 = parts.next()?.parse().ok()?;
    let seconds: f64 = parts.next()?.parse().ok()?;
    Some(hours * 3600.0 + minutes * 60.0 + seconds)
}

/// Now, as seconds since midnight, UTC: what [`log_time`] compares with.
fn clock_now() -> f64 {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    since.as_secs_f64() % 86_400.0
}

/// Whether `lb`'s `log` says that `backend` reset the connection of the
/// client from port `port` before a byte came back (end code `SD`).
fn reset_unanswered(log: &str, port: u16, backend: &str) -> bool {
    let whose = format!("client 127.0.0.1:{port} -> backend {backend}:");
    log.lines().any(|line| {
        line.contains(&whose)
            && line.contains("(down: 0)")
            && line.contains("(code: SD)")
    })
}

/// `lb`'s lines about `backend`'s health since byte `from` of its log:
/// its changes of state (`health:` lines).
fn state_changes(log: &str, from: usize, backend: &str) -> Vec<String> {
    log.get(from..)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains(backend) && line.contains("health:"))
        .map(str::to_owned)
        .collect()
}

// ANCHOR: flapping
/// A backend that flaps every 300 ms beside steady ones: no client
/// fails, its state changes grow rarer, and its log lines are few.
pub(super) async fn flapping(ctx: &Ctx, report: &mut Report) -> Ran {
    let flap = ms(300);
    let flapping_for = ctx.size.pick(secs(6), secs(10));
    let count = ctx.size.pick(4, 8);
    let most_lines = 50;
    let steady_one = serving_backend(false, ctx).await?;
    let steady_two = serving_backend(false, ctx).await?;
    let flapper = serving_backend(false, ctx).await?;
    let setup = Setup {
        health: Some(Health {
            rise: Some(2),
            fall: Some(2),
            // Held down 0.5, 1, 2, 4 s at the small size, so that the
            // hold-down's growth shows within its shorter run; lb's
            // default (1 s) at full size.
            hold_down: ctx.size.pick(Some(ms(500)), None),
            ..Health::every(ms(100))
        }),
        ..Setup::over(&[steady_one.addr, flapper.addr, steady_two.addr], false)
    };
    let lb = start(ctx, &setup, report).await?;
    let mut load = Steady::start(lb.addr, count);
    load.served_more(20, secs(10)).await;
    let from = lb.log_len();
    let began = clock_now();
    // The flapping: its rhythm is the fault.
    let mut ticks = tokio::time::interval(flap);
    let flips = (flapping_for.as_millis() / flap.as_millis()) as usize;
    for flip in 0..flips {
        ticks.tick().await;
        let done = if flip % 2 == 0 {
            flapper.refuse().await
        } else {
            flapper.answer().await
        };
        if !done {
            return Err("the flapping backend would not flip".into());
        }
    }
    ticks.tick().await;
    let ended = clock_now();
    flapper.answer().await;
    let attempts = load.finish().await?;
    let log = lb.log();
    let name = flapper.addr.to_string();
    // Every line that names it, but for the record each served
    // connection gets as it closes (one a client, flapping or not).
    let about_it: Vec<&str> = log
        .get(from..)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains(&name) && !line.contains(": closed ("))
        .collect();
    let changes = state_changes(&log, from, &name);
    // The changes in each third of the flapping.
    let third = (ended - began) / 3.0;
    let mut thirds = [0usize; 3];
    for line in &changes {
        if let Some(at) = log_time(line) {
            let since = (at - began).rem_euclid(86_400.0);
            if let Some(slot) = thirds.get_mut((since / third) as usize) {
                *slot += 1;
            }
        }
    }
    let mut per_second = vec![0usize; (ended - began).ceil() as usize];
    for line in &changes {
        if let Some(at) = log_time(line) {
            let since = (at - began).rem_euclid(86_400.0);
            if let Some(slot) = per_second.get_mut(since as usize) {
                *slot += 1;
            }
        }
    }
    report.figure(format!(
        "a backend refusing and answering in turn every {} for {}, beside \
         two steady ones, under {count} clients making new connections: \
         {}",
        show(flap),
        show(flapping_for),
        share_failed(&attempts)
    ));
    // A connect that is in the flapping backend's listen queue when it
    // stops listening is reset by its kernel after the balancer saw it
    // succeed and sent the client's request on: what any backend that
    // goes away does, which no balancer can undo. The balancer's log
    // tells those apart: the flapping backend reset it before a byte
    // came back.
    let queued_when_closed = |attempt: &Attempt| {
        attempt
            .port
            .is_some_and(|port| reset_unanswered(&log, port, &name))
    };
    let failures: Vec<&Attempt> = attempts.iter().filter(|a| !a.ok).collect();
    let unavoidable = failures.iter().filter(|a| queued_when_closed(a)).count();
    if !failures.is_empty() {
        // Why, as the clients saw it and as the balancer's log says.
        let ends = failures.iter().filter_map(|a| a.end);
        let lines: Vec<&str> = failures
            .iter()
            .filter_map(|a| a.port)
            .filter_map(|port| {
                let whose = format!("client 127.0.0.1:{port} ");
                log.lines().find(|line| line.contains(&whose))
            })
            .take(5)
            .collect();
        report.figure(format!(
            "the failed clients saw {}; {unavoidable} of them were in the \
             flapping backend's listen queue when it stopped listening \
             (reset before a byte came back); their lines: {lines:?}",
            report::ends(ends)
        ));
    }
    report.figure(format!(
        "its state changes each second: {per_second:?}; in each third of \
         the flapping: {thirds:?}"
    ));
    report.figure(format!(
        "{} log lines about it (not counting each served connection's \
         record), {} of them changes of state",
        about_it.len(),
        changes.len()
    ));
    report.check(
        failures.len() == unavoidable && !attempts.is_empty(),
        "no client failed (but for a connect in the flapping backend's \
         listen queue as it stopped listening)",
    );
    report.check(
        thirds[2] < thirds[0],
        "its state changed less often in the last third than in the first",
    );
    report.check(
        about_it.len() <= most_lines,
        format!("at most {most_lines} log lines about it"),
    );
    Ok(())
}
// ANCHOR_END: flapping

/// A port that was free a moment ago, on 127.0.0.1: for a balancer
/// whose backend must name its port before it starts.
fn free_port() -> Result<u16, String> {
    let probe = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|err| format!("no free port: {err}"))?;
    probe
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|err| format!("no free port: {err}"))
}

/// A way of giving `lb` a backend that is itself without the config
/// check seeing it.
#[derive(Clone, Copy, Debug)]
enum Loop {
    /// lb listens on 127.0.0.1:P; the backend is localhost:P.
    ByName,
    /// lb listens on 0.0.0.0:P; the backend is 127.0.0.1:P.
    Wildcard,
}

impl Loop {
    /// The setup: lb's listen address, and the looping backend.
    fn setup(self, port: u16) -> (String, BackendAt) {
        let at = SocketAddr::from(([127, 0, 0, 1], port));
        match self {
            Loop::ByName => (
                at.to_string(),
                BackendAt {
                    host: Some("localhost"),
                    ..BackendAt::new(at, false)
                },
            ),
            Loop::Wildcard => {
                (format!("0.0.0.0:{port}"), BackendAt::new(at, false))
            }
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Loop::ByName => "listening on 127.0.0.1:P, its backend localhost:P",
            Loop::Wildcard => "listening on 0.0.0.0:P, its backend 127.0.0.1:P",
        }
    }
}

/// The algorithms a looping backend is tried under.
const ALGORITHMS: [&str; 6] = [
    "round-robin",
    "weighted-round-robin",
    "random",
    "least-connections",
    "power-of-two",
    "maglev",
];

/// The balancer's setup for a loop case: checks every 250 ms, an admin
/// listener, and `max_connections` = 64, which bounds what a balancer
/// that dials itself can take (64 connections, not 8,192).
fn loop_setup(listen: String, backends: Vec<BackendAt>, kind: Kind) -> Setup {
    Setup {
        listen: Some(listen),
        backends,
        health: Some(Health::every(ms(250))),
        admin: true,
        max_connections: Some(64),
        // Step 08 has no max_connections: its open files bound it.
        open_files: (kind == Kind::Step08).then_some(256),
        ..Setup::default()
    }
}

/// Where a client reaches a balancer that says it listens on `addr`:
/// 127.0.0.1 for a wildcard.
fn loopback(addr: SocketAddr) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], addr.port()))
}

/// `lb` alone with a backend that is itself, as `way` hides it.
async fn loop_alone(ctx: &Ctx, report: &mut Report, way: Loop) -> Ran {
    let kind = ctx.subject.kind;
    // Step 08 holds each client until it gives up: two show it.
    let clients_count = match kind {
        Kind::Lb => ctx.size.pick(10, 50),
        Kind::Step08 => 2,
    };
    let port = free_port()?;
    let (listen, backend) = way.setup(port);
    let setup = loop_setup(listen, vec![backend], kind);
    report.setup = setup.describe(kind);
    let mut lb = ctx.subject.start(&setup, &ctx.certs).await?;
    // Idle: what it holds the moment it listens, before any client.
    let idle = lb.descriptors()?;
    let peak = Peak::descriptors(lb.pid, ms(1));
    let admin = match kind {
        Kind::Lb => lb.admin_addr(secs(10)).await,
        Kind::Step08 => None,
    };
    let logged = lb.wait_for_log("loop", secs(3)).await;
    let addr = loopback(lb.addr);
    let mut waits = Vec::new();
    let mut answered = 0;
    let mut still_open = 0;
    for _ in 0..clients_count {
        let started = Instant::now();
        let Ok(mut connected) = client::connect(addr, &Front::Plain).await
        else {
            waits.push(started.elapsed());
            continue;
        };
        match client::ping(&mut connected.conn, secs(2)).await {
            Ok(()) => answered += 1,
            Err(End::StillOpen) => still_open += 1,
            Err(_) => {}
        }
        waits.push(started.elapsed());
    }
    let peak = (peak.stop() as usize).max(lb.descriptors()?);
    let accepted = match admin {
        Some(admin) => {
            let text = scrape(admin, "/metrics").await?;
            metric(&text, "lb_listener_connections_accepted_total")
        }
        None => None,
    };
    let slowest = waits.iter().max().copied().unwrap_or_default();
    report.figure(format!(
        "{}: {clients_count} clients one after another: {answered} \
         answered, {still_open} still waiting after 2 s; from connect to \
         the end: {}",
        way.describe(),
        report::spread(&mut waits)
    ));
    report.figure(format!(
        "descriptors {idle} as it started listening, {peak} at the peak; \
         connections accepted: {}",
        accepted.map_or("not known (no admin listener)".into(), |n| {
            format!("{n}")
        })
    ));
    let what = match way {
        Loop::ByName => "by name",
        Loop::Wildcard => "by a wildcard listen",
    };
    report.check(logged, format!("{what}: the loop is logged"));
    report.check(
        answered == 0 && still_open == 0 && slowest < secs(1),
        format!("{what}: each client was refused at once (within 1 s)"),
    );
    if kind == Kind::Lb {
        report.check(
            accepted == Some(clients_count as f64),
            format!(
                "{what}: lb accepted only the {clients_count} clients: no \
                 connection to itself, from a check or a client"
            ),
        );
    }
    report.check(
        peak <= idle + 5,
        format!("{what}: descriptors within 5 of idle ({idle}) throughout"),
    );
    Ok(())
}

// ANCHOR: loop
/// A backend that is `lb` itself, by a path the config check cannot see:
/// never dialled, logged, and its clients served elsewhere.
pub(super) async fn loop_case(ctx: &Ctx, report: &mut Report) -> Ran {
    let kind = ctx.subject.kind;
    // A wildcard listener is reachable from every interface: only in a
    // network namespace of the suite's own (scripts/faults.sh), never on
    // the machine's own network (cargo test), where the lab listens on
    // 127.0.0.1 alone.
    let ways: &[Loop] = match kind {
        Kind::Lb if ctx.private_network => &[Loop::ByName, Loop::Wildcard],
        Kind::Lb => &[Loop::ByName],
        // Once is enough to see what step 08 does.
        Kind::Step08 => &[Loop::ByName],
    };
    for &way in ways {
        loop_alone(ctx, report, way).await?;
    }
    // The setup without its port, which differs from run to run.
    let alone_setup = match kind {
        Kind::Lb if ctx.private_network => {
            "its own listener as its backend, by name and by a \
                     wildcard listen (in the suite's own network \
                     namespace), tcp checks every 250 ms, \
                     max_connections 64"
        }
        Kind::Lb => {
            "its own listener as its backend, by name (a wildcard \
                     listen only in a network namespace of its own), tcp \
                     checks every 250 ms, max_connections 64"
        }
        Kind::Step08 => {
            "its own listener as its backend, by name, ulimit \
                         -n 256"
        }
    };
    let count = ctx.size.pick(10, 50);
    let real = serving_backend(false, ctx).await?;
    let algorithms: &[&str] = match kind {
        Kind::Lb => &ALGORITHMS,
        Kind::Step08 => &["round-robin"],
    };
    let mut failures = Vec::new();
    for &algorithm in algorithms {
        let port = free_port()?;
        let (listen, looping) = Loop::ByName.setup(port);
        // Under every algorithm that weighs, the loop is the first pick
        // of 99 clients in 100: under Maglev, most likely the pick for
        // 127.0.0.1's key, which a looped connection would carry again.
        let looping = BackendAt {
            weight: (algorithm != "round-robin").then_some(99),
            ..looping
        };
        let backends = vec![looping, BackendAt::new(real.addr, false)];
        let setup = Setup {
            algorithm: (kind == Kind::Lb).then_some(algorithm),
            ..loop_setup(listen, backends, kind)
        };
        let lb = ctx.subject.start(&setup, &ctx.certs).await?;
        let addr = loopback(lb.addr);
        let n = 4 * 1024;
        let downloads = clients(count, |_| {
            client::connect_and_get(addr, &Front::Plain, n, secs(5), None)
        })
        .await?;
        let whole = downloads
            .iter()
            .filter(|d| d.as_ref().is_ok_and(|d| d.complete(n)))
            .count();
        let weighed = if algorithm == "round-robin" {
            ""
        } else {
            " (the loop weighs 99, the real one 1)"
        };
        report.figure(format!(
            "beside a real backend, {algorithm}{weighed}: {whole} of \
             {count} clients served whole"
        ));
        if whole < count {
            failures.push(algorithm);
        }
    }
    report.check(
        failures.is_empty(),
        format!(
            "beside a real backend, no client failed under {}",
            if kind == Kind::Lb {
                "any algorithm"
            } else {
                "step 08's round robin"
            }
        ),
    );
    report.setup = format!("{alone_setup}; then beside a real backend");
    Ok(())
}
// ANCHOR_END: loop

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_line_gives_its_time_of_day() {
        let line = "2026-12-06T11:05:34.750000Z  WARN backend x: health: DOWN";
        let at = log_time(line).expect("a time");
        assert!((at - (11.0 * 3600.0 + 5.0 * 60.0 + 34.75)).abs() < 1e-6);
        assert_eq!(log_time("short"), None);
    }

    #[test]
    fn a_reset_before_the_answer_is_found_by_the_client_port() {
        let log = "T INFO client 127.0.0.1:5000 -> backend 127.0.0.1:9: \
                   closed (up: 5) (down: 0) (ms: 1) (end: backend error) \
                   (code: SD)\n\
                   T INFO client 127.0.0.1:5001 -> backend 127.0.0.1:9: \
                   closed (up: 5) (down: 5) (ms: 1) (end: finished) \
                   (code: --)\n";
        assert!(reset_unanswered(log, 5000, "127.0.0.1:9"));
        assert!(!reset_unanswered(log, 5001, "127.0.0.1:9"));
        assert!(!reset_unanswered(log, 5000, "127.0.0.1:8"));
    }

    #[test]
    fn only_health_lines_about_the_backend_are_changes() {
        let log = "a\nT WARN backend 1:1: health: DOWN x\n\
                   T INFO backend 1:2: health: UP\nT INFO 1:1 served\n";
        assert_eq!(state_changes(log, 2, "1:1").len(), 1);
    }
}
