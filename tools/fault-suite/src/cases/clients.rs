//! Clients that fail: connect and send nothing, start a TLS handshake and
//! never finish it, give up mid-request, reset mid-upload, trickle bytes
//! (slowloris).

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{
    Ctx, Ran, check_freed, clients, collect, descriptors_reach, ms,
    none_failed, on_time, secs, serving_backend, spawn_clients, start,
};
use crate::client::{self, Front};
use crate::conn::{Conn, End};
use crate::measure::{self, Peak};
use crate::report::{self, Report, mib, show};
use crate::subject::{Running, Setup};

/// A normal client's request while the faulty ones are held: served, and
/// how fast.
async fn normal_client(lb: &Running, front: &Front, report: &mut Report) {
    let started = Instant::now();
    let served = client::connect_and_get(lb.addr, front, 1000, secs(5), None)
        .await
        .is_ok_and(|got| got.complete(1000));
    let took = started.elapsed();
    report.check(
        served && took < secs(1),
        format!(
            "a normal client was served meanwhile, in under a second \
             ({})",
            show(took)
        ),
    );
}

/// Held clients: how each one's connection ended, and after how long.
type Held = JoinSet<io::Result<(End, Duration)>>;

/// Clients that connect and send nothing, then wait for the balancer to
/// close them: how their connections ended, and after how long.
fn hold_silent(lb: &Running, count: usize, patience: Duration) -> Held {
    let addr = lb.addr;
    spawn_clients(count, |_| async move {
        let mut tcp = TcpStream::connect(addr).await?;
        Ok(client::wait_for_end(&mut tcp, patience).await)
    })
}

/// How each of the `held` clients ended, once all have.
async fn ends_of(held: Held) -> Result<Vec<(End, Duration)>, String> {
    none_failed(collect(held).await?)
}

/// Reports how held clients ended and checks they were closed by
/// `timeout`, on time.
fn check_closed(
    report: &mut Report,
    who: &str,
    ends: &[(End, Duration)],
    timeout: Duration,
    name: &str,
) {
    let mut waits: Vec<_> = ends
        .iter()
        .filter(|(end, _)| *end != End::StillOpen)
        .map(|(_, took)| *took)
        .collect();
    let closed = if waits.is_empty() {
        "none closed".to_owned()
    } else {
        format!("closed after {}", report::spread(&mut waits))
    };
    report.figure(format!(
        "{} {who}: {}; {closed}",
        ends.len(),
        report::ends(ends.iter().map(|(end, _)| *end)),
    ));
    let all = waits.len() == ends.len()
        && waits.iter().all(|&took| on_time(took, timeout, secs(1)));
    report.check(
        all,
        format!(
            "all {} {who} closed by the {name} timeout ({}), give or take \
             a second",
            ends.len(),
            show(timeout)
        ),
    );
}

/// Clients that connect and send nothing to a plain front: the idle
/// timeout closes them.
pub(super) async fn silent(ctx: &Ctx, report: &mut Report) -> Ran {
    let count = 100;
    let idle = ctx.size.pick(secs(1), secs(2));
    let patience = idle + ctx.size.pick(secs(2), secs(3));
    let backend = serving_backend(false, ctx).await?;
    let setup = Setup {
        idle: Some(idle),
        ..Setup::over(&[backend.addr], false)
    };
    let lb = start(ctx, &setup, report).await?;
    let before = lb.descriptors()?;
    let peak = Peak::descriptors(lb.pid, ms(5));
    let held = hold_silent(&lb, count, patience);
    // Each silent client costs the balancer its socket and the
    // backend's, which it connects to at once.
    descriptors_reach(&lb, before + 2 * count, secs(5)).await;
    normal_client(&lb, &Front::Plain, report).await;
    let ends = ends_of(held).await?;
    check_closed(report, "silent clients", &ends, idle, "idle");
    let peak = peak.stop() as usize;
    check_freed(&lb, report, before, peak, secs(2), "the clients' ends")
        .await?;
    Ok(())
}

/// 100 half-finished TLS handshakes and 100 silent clients
/// are closed within the handshake timeout, and a normal client is
/// served meanwhile.
pub(super) async fn half_tls_handshake(ctx: &Ctx, report: &mut Report) -> Ran {
    let count = 100;
    let handshake = ctx.size.pick(secs(1), secs(2));
    let patience = handshake + ctx.size.pick(secs(2), secs(3));
    let backend = serving_backend(false, ctx).await?;
    let setup = Setup {
        front_tls: true,
        tls_handshake: Some(handshake),
        ..Setup::over(&[backend.addr], false)
    };
    let lb = start(ctx, &setup, report).await?;
    let before = lb.descriptors()?;
    let peak = Peak::descriptors(lb.pid, ms(5));
    let addr = lb.addr;
    let half = spawn_clients(count, |_| {
        let tls = ctx.certs.client.clone();
        async move {
            let mut tcp = client::half_tls_handshake(addr, tls).await?;
            Ok(client::wait_for_end(&mut tcp, patience).await)
        }
    });
    let silent = hold_silent(&lb, count, patience);
    descriptors_reach(&lb, before + 2 * count, secs(5)).await;
    normal_client(&lb, &Front::Tls(ctx.certs.connector()), report).await;
    let half = ends_of(half).await?;
    let silent = ends_of(silent).await?;
    let who = "half-finished handshakes";
    check_closed(report, who, &half, handshake, "handshake");
    check_closed(report, "silent clients", &silent, handshake, "handshake");
    let peak = peak.stop() as usize;
    check_freed(&lb, report, before, peak, secs(2), "the clients' ends")
        .await?;
    Ok(())
}

/// Clients that send half a request and close: the end is passed on at
/// once, and nothing waits for a timer (`half_closed` stays at its 30 s
/// default).
pub(super) async fn gives_up_mid_request(
    ctx: &Ctx,
    report: &mut Report,
) -> Ran {
    let count = ctx.size.pick(50, 100);
    let backend = serving_backend(false, ctx).await?;
    let lb = start(ctx, &Setup::over(&[backend.addr], false), report).await?;
    let before = lb.descriptors()?;
    let peak = Peak::descriptors(lb.pid, ms(5));
    let addr = lb.addr;
    let sent = clients(count, |_| client::give_up_mid_request(addr)).await?;
    let failed = sent.iter().filter(|s| s.is_err()).count();
    report.figure(format!(
        "{count} clients sent \"GE\" and closed ({failed} could not)"
    ));
    let peak = peak.stop() as usize;
    check_freed(&lb, report, before, peak, secs(1), "the clients closed")
        .await?;
    let stats = backend.stats();
    let ended = measure::poll_until(secs(2), ms(10), || stats.open() == 0)
        .await
        .is_some();
    report.check(
        ended && stats.accepted() == count,
        format!(
            "every request reached the backend and ended there ({} of {} \
             connections, {} still open)",
            stats.accepted(),
            count,
            stats.open()
        ),
    );
    Ok(())
}

/// A client that resets mid-upload reaches the backend as
/// a reset.
pub(super) async fn resets_mid_upload(ctx: &Ctx, report: &mut Report) -> Ran {
    let count = ctx.size.pick(5, 20);
    let total = ctx.size.pick(4, 64) << 20;
    let sent = ctx.size.pick(256, 1024) << 10;
    let backend = serving_backend(false, ctx).await?;
    let lb = start(ctx, &Setup::over(&[backend.addr], false), report).await?;
    let before = lb.descriptors()?;
    let stats = backend.stats();
    // One at a time, each reset once the backend is reading its upload:
    // a reset before the backend has even read the request would show
    // nothing.
    for i in 0..count {
        let received = stats.received();
        let mut conn = Conn::Plain(
            TcpStream::connect(lb.addr)
                .await
                .map_err(|err| format!("cannot connect: {err}"))?,
        );
        let header = format!("PUT {total}\n");
        tokio::io::AsyncWriteExt::write_all(&mut conn, header.as_bytes())
            .await
            .map_err(|err| format!("cannot send: {err}"))?;
        let _ = crate::backend::write_pattern(&mut conn, 0, sent).await;
        measure::poll_until(secs(5), ms(2), || stats.received() > received)
            .await;
        conn.reset();
        measure::poll_until(secs(5), ms(5), || stats.uploads().len() > i).await;
    }
    let uploads = stats.uploads();
    let most = uploads.iter().map(|u| u.bytes).max().unwrap_or(0);
    report.figure(format!(
        "{count} clients announced {}, sent {} and reset; the backend got \
         at most {}, then saw {}",
        mib(total >> 10),
        mib(sent >> 10),
        mib(most >> 10),
        report::ends(uploads.iter().map(|u| u.end))
    ));
    report.check(
        uploads.len() == count && uploads.iter().all(|u| u.end == End::Reset),
        "the backend saw a reset for every upload, not a clean end",
    );
    check_freed(&lb, report, before, before, secs(2), "the resets").await?;
    Ok(())
}

// ANCHOR: slowloris
/// Slowloris: clients that trickle a byte every half idle timeout are
/// kept while they trickle, cost little each, and are closed once they
/// stop. And an honest client that sends a piece every quarter idle
/// timeout, whose upload lasts three and a half idle timeouts, is served.
pub(super) async fn slowloris(ctx: &Ctx, report: &mut Report) -> Ran {
    let count = ctx.size.pick(50, 500);
    let idle = ctx.size.pick(secs(1), secs(2));
    let every = idle / 2;
    let trickle = idle * 3;
    let silent = idle + ctx.size.pick(secs(2), secs(3));
    let backend = serving_backend(false, ctx).await?;
    let setup = Setup {
        idle: Some(idle),
        ..Setup::over(&[backend.addr], false)
    };
    let lb = start(ctx, &setup, report).await?;
    let before = lb.descriptors()?;
    let rss_before = lb.rss_kib()?;
    // The honest one: 64 KiB every quarter idle timeout, 15 times (the
    // first at once): three and a half idle timeouts.
    let (piece, pace, pieces) = (64 * 1024, idle / 4, 15);
    let upload = piece * pieces;
    let addr = lb.addr;
    let honest = tokio::spawn(async move {
        let started = Instant::now();
        let mut conn = Conn::Plain(TcpStream::connect(addr).await?);
        let limit = pace * pieces as u32 + secs(10);
        let answer =
            client::put_paced(&mut conn, upload, piece, pace, limit).await;
        Ok::<_, io::Error>((answer?, started.elapsed()))
    });
    let held = spawn_clients(count, |_| async move {
        let conn = Conn::Plain(TcpStream::connect(addr).await?);
        Ok(client::slowloris(conn, every, trickle, silent).await)
    });
    descriptors_reach(&lb, before + 2 * count, secs(10)).await;
    let held_fds = lb.descriptors()?;
    let rss_held = lb.rss_kib()?;
    let each = rss_held.saturating_sub(rss_before) as f64 / count as f64;
    report.figure(format!(
        "{count} slowloris clients held: descriptors {before} → {held_fds}, \
         memory {} → {} ({each:.1} KiB each)",
        mib(rss_before),
        mib(rss_held),
    ));
    normal_client(&lb, &Front::Plain, report).await;
    let ends = ends_of(held).await?;
    let mut closed_at: Vec<_> = ends
        .iter()
        .filter(|(end, _)| *end != End::StillOpen)
        .map(|(_, at)| *at)
        .collect();
    let closed = if closed_at.is_empty() {
        "none closed".to_owned()
    } else {
        let spread = report::spread(&mut closed_at);
        format!("closed {spread} after they started")
    };
    report.figure(format!(
        "they trickled for {}, then went silent; {}; {closed}",
        show(trickle),
        report::ends(ends.iter().map(|(end, _)| *end)),
    ));
    report.check(
        ends.iter().all(|(_, at)| *at >= trickle),
        "none was closed while it trickled",
    );
    report.check(
        closed_at.len() == count
            && closed_at.iter().all(|&at| at <= trickle + idle + secs(1)),
        format!(
            "all closed by the idle timeout ({}) once silent, give or take \
             a second",
            show(idle)
        ),
    );
    let honest = honest.await.map_err(|err| format!("a client: {err}"))?;
    report.figure(format!(
        "the honest client, {} KiB every {}: {}",
        piece >> 10,
        show(pace),
        match &honest {
            Ok((answer, took)) => format!("{answer:?} after {}", show(*took)),
            Err(err) => err.to_string(),
        }
    ));
    report.check(
        honest.is_ok_and(|(answer, took)| {
            answer == format!("got {upload}") && took >= idle * 3
        }),
        format!(
            "its upload, lasting over three idle timeouts ({}) but never \
             silent for one, completed intact",
            show(idle * 3)
        ),
    );
    check_freed(&lb, report, before, held_fds, secs(2), "the clients' ends")
        .await?;
    Ok(())
}
// ANCHOR_END: slowloris
