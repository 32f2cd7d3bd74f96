//! `lb`'s limits under partial failure: slow readers against the
//! memory bound, clients that leave the queue, and `max_connections`
//! reached and held. Step 08 has none of these limits: "n/a".

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{
    Ctx, Ran, collect, descriptors_back, metric, ms, scrape, secs,
    serving_backend, spawn_clients, start,
};
use crate::client::{self, Front};
use crate::conn::{Conn, End};
use crate::measure::{self, Peak};
use crate::report::{Report, mib, show};
use crate::subject::{BackendAt, Setup};

/// The relay's small buffer, per direction: `SMALL` in
/// `balancer/src/relay/buffer.rs`, what every connection holds at least.
const RELAY_SMALL: u64 = 512;

/// A slow reader's receive buffer: small, so that the transfer waits in
/// `lb` rather than in this process's socket.
const SLOW_READER_BUFFER: u32 = 4 * 1024;

/// A connection whose receive buffer is [`SLOW_READER_BUFFER`].
async fn connect_small_receive(addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(SLOW_READER_BUFFER)?;
    let tcp = socket.connect(addr).await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// A client that asks for `n` bytes and reads them at 1 KiB a second
/// until `stop`: whether it read any, and then whether its stream was
/// still intact and open when stopped.
async fn slow_reader(
    addr: SocketAddr,
    n: u64,
    first: Arc<AtomicUsize>,
    mut stop: watch::Receiver<bool>,
) -> io::Result<bool> {
    let mut tcp = connect_small_receive(addr).await?;
    tcp.write_all(format!("GET {n}\n").as_bytes()).await?;
    let mut ticks = tokio::time::interval(secs(1));
    let mut piece = [0u8; 1024];
    let mut first_read = true;
    let began = Instant::now();
    // Bounded: a reader stops when told, or after five minutes.
    while began.elapsed() < secs(300) {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.wait_for(|&s| s) => return Ok(true),
        }
        if tcp.read(&mut piece).await? == 0 {
            return Ok(false);
        }
        if first_read {
            first.fetch_add(1, Ordering::Relaxed);
            first_read = false;
        }
    }
    Ok(false)
}

// ANCHOR: slow_readers
/// `max_connections` - 1 slow readers: lb's memory stays within its
/// relay buffers' bound, and one more client is served meanwhile.
pub(super) async fn slow_readers(ctx: &Ctx, report: &mut Report) -> Ran {
    let max = ctx.size.pick(100, 1000);
    let budget: u64 = ctx.size.pick(4, 16) << 20;
    let hold = ctx.size.pick(secs(3), secs(10));
    let body = 64 << 20;
    let backend = serving_backend(false, ctx).await?;
    let setup = Setup {
        max_connections: Some(max as u32),
        buffer_budget: Some(budget),
        ..Setup::over(&[backend.addr], false)
    };
    let lb = start(ctx, &setup, report).await?;
    let addr = lb.addr;
    let readers = max - 1;
    let before = lb.descriptors()?;
    let rss_start = lb.rss_kib()?;

    // What `readers` connections cost with nothing moving: their tasks,
    // sockets and small buffers. The slow readers may add only the big
    // buffers, within the budget.
    let idle = spawn_clients(readers, |_| async move {
        let mut connected = client::connect(addr, &Front::Plain).await.ok()?;
        client::ping(&mut connected.conn, secs(30)).await.ok()?;
        Some(connected.conn)
    });
    let idle = collect(idle).await?;
    let opened = idle.iter().flatten().count();
    let rss_idle = lb.rss_kib()?;
    drop(idle);
    descriptors_back(&lb, before, secs(10)).await;
    if opened < readers {
        return Err(format!("only {opened} of {readers} idle clients served"));
    }

    let peak = Peak::rss(lb.pid, ms(10));
    let first = Arc::new(AtomicUsize::new(0));
    let (stop, stopped) = watch::channel(false);
    let reading = spawn_clients(readers, |_| {
        slow_reader(addr, body, first.clone(), stopped.clone())
    });
    let all_reading = measure::poll_until(secs(30), ms(20), || {
        first.load(Ordering::Relaxed) >= readers
    })
    .await;
    // Held while they read: the stretch of time the bound must hold
    // over.
    let held = Instant::now();
    let one_more = async {
        let mut connected = client::connect(addr, &Front::Plain).await.ok()?;
        let started = Instant::now();
        client::ping(&mut connected.conn, secs(5)).await.ok()?;
        Some(started.elapsed())
    }
    .await;
    tokio::time::sleep(hold.saturating_sub(held.elapsed())).await;
    let rss_peak = peak.stop();
    stop.send_replace(true);
    let readers_ended = collect(reading).await?;
    let intact = readers_ended
        .iter()
        .filter(|r| matches!(r, Ok(true)))
        .count();
    let formula = max as u64 * 2 * RELAY_SMALL + budget;
    // The allocator's own share on top: each big buffer is a mapping of
    // its own with a page of bookkeeping (about 3% of the budget), and
    // RSS moves by a few pages with timers and page tables.
    let slack = (budget / 16).max(1 << 20);
    let bound = rss_idle + ((budget + slack) >> 10);
    report.figure(format!(
        "{readers} clients each reading a {} MiB answer at 1 KiB/s for {} \
         ({} read their first KiB{}); {intact} still open when stopped",
        body >> 20,
        show(hold),
        first.load(Ordering::Relaxed),
        match all_reading {
            Some(took) => format!(", all within {}", show(took)),
            None => ", NOT all within 30 s".to_owned(),
        }
    ));
    report.figure(format!(
        "memory: {} at the start, {} with {readers} idle connections, {} \
         at the peak with the slow readers; bound {} (idle connections + \
         buffer_budget {} + {} for the allocator); relay buffers by \
         lb.toml's formula: {max} x 2 x {RELAY_SMALL} B + {} = {}",
        mib(rss_start),
        mib(rss_idle),
        mib(rss_peak),
        mib(bound),
        mib(budget >> 10),
        mib(slack >> 10),
        mib(budget >> 10),
        mib(formula >> 10)
    ));
    report.figure(match one_more {
        Some(took) => format!("one more client answered in {}", show(took)),
        None => "one more client NOT answered within 5 s".to_owned(),
    });
    report.check(
        all_reading.is_some() && intact == readers,
        format!("all {readers} slow readers were served while held"),
    );
    report.check(
        rss_peak <= bound,
        "memory stayed within its bound: the big buffers within \
         buffer_budget",
    );
    report.check(one_more.is_some(), "one more client was served meanwhile");
    Ok(())
}
// ANCHOR_END: slow_readers

/// Waits (up to 2 s, polling every 5 ms) until `lb`'s admin listener at
/// `admin` says `want` clients wait in its queue; how long it took.
async fn queued_reach(admin: SocketAddr, want: usize) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < secs(2) {
        let text = scrape(admin, "/metrics").await.ok()?;
        if metric(&text, "lb_listener_connections_queued") == Some(want as f64)
        {
            return Some(started.elapsed());
        }
        tokio::time::sleep(ms(5)).await;
    }
    None
}

/// Reads a `GET`'s answer to its end, within `limit`: the bytes, and how
/// it ended.
async fn read_answer(mut conn: Conn, limit: Duration) -> (u64, End) {
    let mut bytes = 0;
    let mut buffer = [0u8; 4096];
    let reading = async {
        loop {
            match conn.read(&mut buffer).await {
                Ok(0) => return End::Clean,
                Ok(n) => bytes += n as u64,
                Err(err) => return End::of_error(&err),
            }
        }
    };
    let end = tokio::time::timeout(limit, reading)
        .await
        .unwrap_or(End::StillOpen);
    (bytes, end)
}

// ANCHOR: queue_leavers
/// Clients queued for a full backend, half of whom leave: their places
/// are given up at once, and the others are served in arrival order.
pub(super) async fn queue_leavers(ctx: &Ctx, report: &mut Report) -> Ran {
    let count = ctx.size.pick(40, 200);
    let backend = serving_backend(false, ctx).await?;
    let setup = Setup {
        queue_timeout: Some(secs(60)),
        admin: true,
        backends: vec![BackendAt {
            max_connections: Some(1),
            ..BackendAt::new(backend.addr, false)
        }],
        ..Setup::default()
    };
    let mut lb = start(ctx, &setup, report).await?;
    let admin = lb
        .admin_addr(secs(10))
        .await
        .ok_or("no `admin on ADDR` line on lb's stdout")?;
    let connect = |addr| async move {
        client::connect(addr, &Front::Plain)
            .await
            .map(|c| c.conn)
            .map_err(|err| format!("cannot connect: {err}"))
    };
    // The one place at the backend, taken.
    let mut holder = connect(lb.addr).await?;
    client::ping(&mut holder, secs(5))
        .await
        .map_err(|end| format!("the first client: {}", end.describe()))?;
    // Client i asks for i + 1 bytes, so that the backend's record of
    // what it was asked names who it served, in order. Each is in the
    // queue before the next connects: the arrival order is known.
    let mut waiting = Vec::new();
    for i in 0..count {
        let mut conn = connect(lb.addr).await?;
        conn.write_all(format!("GET {}\n", i + 1).as_bytes())
            .await
            .map_err(|err| format!("a request: {err}"))?;
        if queued_reach(admin, i + 1).await.is_none() {
            return Err(format!("client {i} did not show in lb's queue"));
        }
        waiting.push(Some(conn));
    }
    let descriptors_full = lb.descriptors()?;
    // Every other one gives up, with its request sent: a FIN.
    let mut left = 0;
    for slot in waiting.iter_mut().skip(1).step_by(2) {
        drop(slot.take());
        left += 1;
    }
    let stay = count - left;
    let gone = queued_reach(admin, stay).await;
    let descriptors_after = lb.descriptors()?;
    let released = Instant::now();
    drop(holder);
    let limit = secs(10);
    let mut reading = tokio::task::JoinSet::new();
    for (i, conn) in waiting.into_iter().enumerate() {
        if let Some(conn) = conn {
            reading.spawn(async move { (i, read_answer(conn, limit).await) });
        }
    }
    let served = collect(reading).await?;
    let took = released.elapsed();
    let whole = served
        .iter()
        .filter(|(i, (bytes, end))| {
            *bytes == *i as u64 + 1 && *end == End::Clean
        })
        .count();
    let asked = backend.stats().asked();
    let expected: Vec<u64> =
        (0..count).step_by(2).map(|i| i as u64 + 1).collect();
    let leavers_served = asked.iter().filter(|&&n| n % 2 == 0).count();
    let accepted = backend.stats().accepted();
    report.figure(format!(
        "{count} clients queued one after another for a backend with \
         max_connections 1; {left} left, each with its request sent; lb's \
         queue down to {stay} {}; its descriptors {descriptors_full} → \
         {descriptors_after}",
        match gone {
            Some(took) => format!("{} after", show(took)),
            None => "NOT within 2 s of".to_owned(),
        }
    ));
    report.figure(format!(
        "the first client left: {whole} of {stay} served whole in {}; the \
         backend accepted {accepted} connections (1 + {stay} expected) and \
         was asked by {leavers_served} who had left",
        show(took)
    ));
    report.check(
        gone.is_some_and(|took| took < secs(1)),
        "the leavers' places were given up at once (within 1 s)",
    );
    report.check(whole == stay, "every client that stayed was served");
    report.check(
        asked == expected,
        "those who stayed were served in the order they arrived",
    );
    report.check(
        accepted == 1 + stay && leavers_served == 0,
        "no place was held for a leaver: the backend saw none of them",
    );
    Ok(())
}
// ANCHOR_END: queue_leavers

/// The `open` field of a line of `lb`'s text log: `(open: 20)`.
fn open_count(line: &str) -> Option<usize> {
    let rest = line.split_once("(open: ")?.1;
    rest.split(')').next()?.trim().parse().ok()
}

// ANCHOR: saturation
/// `max_connections` reached, held, then left: one log line each way.
pub(super) async fn saturation(ctx: &Ctx, report: &mut Report) -> Ran {
    let max = ctx.size.pick(20, 100);
    // A quarter more wait in the listen queue: as the holders leave,
    // the places they free are taken at once, and lb is full again until
    // the queue is empty. One episode, however the places come free.
    let extra = max / 4;
    let hold = ctx.size.pick(ms(1500), secs(5));
    let backend = serving_backend(false, ctx).await?;
    let setup = Setup {
        max_connections: Some(max as u32),
        ..Setup::over(&[backend.addr], false)
    };
    let mut lb = start(ctx, &setup, report).await?;
    let before = lb.descriptors()?;
    let from = lb.log_len();
    let addr = lb.addr;
    let holding = spawn_clients(max, |_| async move {
        let mut connected = client::connect(addr, &Front::Plain).await.ok()?;
        client::ping(&mut connected.conn, secs(10)).await.ok()?;
        Some(connected.conn)
    });
    let holding = collect(holding).await?;
    let held = holding.iter().flatten().count();
    // Clients past the limit, waiting in the listen queue meanwhile.
    let mut beyond = Vec::new();
    for _ in 0..extra {
        let mut conn = client::connect(addr, &Front::Plain)
            .await
            .map_err(|err| format!("cannot connect: {err}"))?
            .conn;
        conn.write_all(b"PING\n")
            .await
            .map_err(|err| format!("a request: {err}"))?;
        beyond.push(conn);
    }
    let reached = format!("max_connections ({max}) reached");
    let said = lb.wait_for_log(&reached, secs(2)).await;
    // Held: the stretch of time lb must stay quiet over.
    tokio::time::sleep(hold).await;
    let during = lb
        .log()
        .get(from..)
        .unwrap_or_default()
        .matches(&reached)
        .count();
    drop(holding);
    let mut answered = 0;
    for conn in &mut beyond {
        let mut answer = [0u8; 5];
        let read = tokio::time::timeout(secs(5), conn.read_exact(&mut answer));
        if matches!(read.await, Ok(Ok(_))) && &answer == b"PONG\n" {
            answered += 1;
        }
    }
    drop(beyond);
    let cleared = "below max_connections again";
    lb.wait_for_log(cleared, secs(2)).await;
    // Every client gone from lb: a second "reached" would have come
    // before.
    descriptors_back(&lb, before, secs(2)).await;
    let log = lb.log();
    let ours = log.get(from..).unwrap_or_default();
    let reached_lines: Vec<&str> =
        ours.lines().filter(|l| l.contains(&reached)).collect();
    let cleared_lines: Vec<&str> =
        ours.lines().filter(|l| l.contains(cleared)).collect();
    let text = |lines: &[&str]| match lines {
        [line] => line.get(28..).unwrap_or(line).trim().to_owned(),
        _ => format!("{} lines", lines.len()),
    };
    report.figure(format!(
        "{held} of {max} clients held for {}, {extra} more waiting in the \
         listen queue ({answered} answered once the others left)",
        show(hold)
    ));
    report.figure(format!(
        "reached: {} ({during} while held)",
        text(&reached_lines)
    ));
    report.figure(format!("cleared: {}", text(&cleared_lines)));
    report.check(
        said && during == 1 && reached_lines.len() == 1,
        "one log line when max_connections was reached, none more while \
         held",
    );
    report.check(cleared_lines.len() == 1, "one log line when it cleared");
    // The counts, as lb's text log writes its fields: `(open: 20)`. At
    // the limit every place is taken: the line must say so.
    let counts = reached_lines
        .first()
        .is_some_and(|l| open_count(l) == Some(max))
        && cleared_lines
            .first()
            .is_some_and(|l| open_count(l).is_some() && l.contains(" after "));
    report.check(
        counts,
        format!(
            "the lines carry the counts: {max} open when reached, the \
             clients open and how long it lasted when cleared"
        ),
    );
    report.check(
        held == max && answered == extra,
        "every client was served, those past the limit once there was room",
    );
    Ok(())
}
// ANCHOR_END: saturation

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_count_is_read_from_its_field() {
        let line = "2026-12-06T11:25:01Z WARN max_connections (20) reached: \
                    not accepting (open: 20)";
        assert_eq!(open_count(line), Some(20));
        assert_eq!(open_count("below again (open: x)"), None);
        assert_eq!(open_count("no field"), None);
    }
}
