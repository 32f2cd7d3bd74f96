//! Backends that fail: never answer, answer then stall, reset mid-stream,
//! close at once, read slowly, end TLS without `close_notify`.

use std::io;

use tokio::time::Instant;

use super::{
    Ctx, Ran, backend_error, check_freed, clients, ms, on_time, secs, start,
};
use crate::backend::{Behaviour, FaultBackend};
use crate::client::{self, Front};
use crate::conn::End;
use crate::measure::Peak;
use crate::report::{self, Report, mib, show};
use crate::subject::Setup;

// ANCHOR: never_answers
/// 100 clients give up on a backend that never answers;
/// with `half_closed` = 1 s, lb's descriptors are back to their count
/// before the clients within 5 s.
pub(super) async fn never_answers(ctx: &Ctx, report: &mut Report) -> Ran {
    let count = 100;
    let give_up = ctx.size.pick(ms(300), ms(1000));
    let backend = FaultBackend::start(Behaviour::NeverAnswers, None)
        .await
        .map_err(backend_error)?;
    let setup = Setup {
        half_closed: Some(secs(1)),
        ..Setup::over(&[backend.addr], false)
    };
    let lb = start(ctx, &setup, report).await?;
    let before = lb.descriptors()?;
    let peak = Peak::descriptors(lb.pid, ms(5));
    let addr = lb.addr;
    let downloads = clients(count, |_| async move {
        let mut connected = client::connect(addr, &Front::Plain).await?;
        // Asks, waits `give_up` for an answer, then closes: gives up.
        let got = client::get(&mut connected.conn, 100, give_up, None).await;
        Ok::<_, io::Error>(got)
    })
    .await?;
    let answered = downloads
        .iter()
        .filter(|d| d.as_ref().is_ok_and(|d| d.bytes > 0))
        .count();
    report.figure(format!(
        "{count} clients asked, waited {} and gave up; {answered} got an \
         answer",
        show(give_up)
    ));
    let peak = peak.stop() as usize;
    report.check(
        peak >= before + count,
        format!(
            "the clients' connections were open at the balancer (peak \
                 {peak}, {before} before)"
        ),
    );
    check_freed(&lb, report, before, peak, secs(5), "the clients gave up")
        .await?;
    Ok(())
}
// ANCHOR_END: never_answers

/// A backend sends 64 KiB of a 1 MiB answer, then stalls: the idle
/// timeout must end the client's wait.
pub(super) async fn answers_then_stalls(ctx: &Ctx, report: &mut Report) -> Ran {
    let count = ctx.size.pick(20, 100);
    let first = 64 * 1024;
    let idle = ctx.size.pick(secs(1), secs(2));
    let patience = idle + ctx.size.pick(secs(2), secs(3));
    let backend =
        FaultBackend::start(Behaviour::AnswersThenStalls { first }, None)
            .await
            .map_err(backend_error)?;
    let setup = Setup {
        idle: Some(idle),
        ..Setup::over(&[backend.addr], false)
    };
    let lb = start(ctx, &setup, report).await?;
    let before = lb.descriptors()?;
    let peak = Peak::descriptors(lb.pid, ms(5));
    let addr = lb.addr;
    let downloads = clients(count, |_| {
        let asked = 1024 * 1024;
        client::connect_and_get(addr, &Front::Plain, asked, patience, None)
    })
    .await?;
    let downloads: Vec<_> = downloads.into_iter().flatten().collect();
    let all_first = downloads.iter().all(|d| d.bytes == first && d.intact);
    report.check(
        downloads.len() == count && all_first,
        format!("all {count} clients got the first 64 KiB, intact"),
    );
    let mut stalls: Vec<_> = downloads
        .iter()
        .filter(|d| d.end != End::StillOpen)
        .map(|d| d.ended - d.last_byte)
        .collect();
    report.figure(format!(
        "ends: {}; from the last byte to the end: {}",
        report::ends(downloads.iter().map(|d| d.end)),
        report::spread(&mut stalls)
    ));
    let closed = stalls.len() == count
        && stalls.iter().all(|&s| on_time(s, idle, secs(1)));
    report.check(
        closed,
        format!(
            "every client closed {} (idle) after the last byte, give or \
             take a second",
            show(idle)
        ),
    );
    let peak = peak.stop() as usize;
    check_freed(&lb, report, before, peak, secs(2), "the clients' ends")
        .await?;
    Ok(())
}

/// A backend that resets mid-stream reaches a plain client
/// as a reset.
pub(super) async fn resets_mid_stream(ctx: &Ctx, report: &mut Report) -> Ran {
    let count = ctx.size.pick(5, 20);
    let total = ctx.size.pick(4, 64) << 20;
    let after = ctx.size.pick(256, 1024) << 10;
    let backend =
        FaultBackend::start(Behaviour::ResetsMidStream { after }, None)
            .await
            .map_err(backend_error)?;
    let lb = start(ctx, &Setup::over(&[backend.addr], false), report).await?;
    let before = lb.descriptors()?;
    let addr = lb.addr;
    let downloads = clients(count, |_| {
        client::connect_and_get(addr, &Front::Plain, total, secs(10), None)
    })
    .await?;
    let downloads: Vec<_> = downloads.into_iter().flatten().collect();
    let most = downloads.iter().map(|d| d.bytes).max().unwrap_or(0);
    report.figure(format!(
        "{count} clients asked for {}; the backend reset after sending {}; \
         the clients got at most {}, and saw {}",
        mib(total >> 10),
        mib(after >> 10),
        mib(most >> 10),
        report::ends(downloads.iter().map(|d| d.end)),
    ));
    let all_reset = downloads.len() == count
        && downloads
            .iter()
            .all(|d| d.end == End::Reset && d.intact && d.bytes < total);
    report.check(all_reset, "every client saw a reset, not a clean end");
    check_freed(&lb, report, before, before, secs(2), "the resets").await?;
    Ok(())
}

/// A backend closes every connection at once: clients are told at once.
pub(super) async fn closes_at_once(ctx: &Ctx, report: &mut Report) -> Ran {
    let count = ctx.size.pick(20, 100);
    let backend = FaultBackend::start(Behaviour::ClosesAtOnce, None)
        .await
        .map_err(backend_error)?;
    let lb = start(ctx, &Setup::over(&[backend.addr], false), report).await?;
    let before = lb.descriptors()?;
    let addr = lb.addr;
    let downloads = clients(count, |_| async move {
        let start = Instant::now();
        let got =
            client::connect_and_get(addr, &Front::Plain, 100, secs(5), None)
                .await?;
        Ok::<_, io::Error>((got, got.ended - start))
    })
    .await?;
    let downloads: Vec<_> = downloads.into_iter().flatten().collect();
    let mut waits: Vec<_> = downloads.iter().map(|(_, took)| *took).collect();
    report.figure(format!(
        "{count} clients; they saw {}; from connect to the end: {}",
        report::ends(downloads.iter().map(|(d, _)| d.end)),
        report::spread(&mut waits)
    ));
    let told = downloads.len() == count
        && downloads.iter().all(|(d, took)| {
            d.end != End::StillOpen && d.bytes == 0 && *took < secs(1)
        });
    report.check(told, "every client's connection ended within a second");
    check_freed(&lb, report, before, before, secs(2), "the clients' ends")
        .await?;
    Ok(())
}

/// A backend that reads an upload slowly: the balancer must hold back
/// (read from the client only as fast as the backend takes), so its
/// memory stays flat, and the upload arrives intact.
pub(super) async fn reads_slowly(ctx: &Ctx, report: &mut Report) -> Ran {
    let size = ctx.size.pick(4, 16) << 20;
    let (chunk, every) = (128 * 1024, ms(50));
    let backend =
        FaultBackend::start(Behaviour::ReadsSlowly { chunk, every }, None)
            .await
            .map_err(backend_error)?;
    let lb = start(ctx, &Setup::over(&[backend.addr], false), report).await?;
    let rss_before = lb.rss_kib()?;
    let rss_peak = Peak::rss(lb.pid, ms(10));
    let started = Instant::now();
    let mut connected = client::connect(lb.addr, &Front::Plain)
        .await
        .map_err(|err| format!("cannot connect: {err}"))?;
    let chunks = size / chunk as u64;
    let limit = every * chunks as u32 * 4 + secs(10);
    let answer = client::put(&mut connected.conn, size, limit).await;
    let took = started.elapsed();
    let rss_peak = rss_peak.stop();
    report.figure(format!(
        "uploaded {} to a backend reading {} KiB every {}: answer {:?} \
         after {}",
        mib(size >> 10),
        chunk >> 10,
        show(every),
        answer
            .as_ref()
            .map_or_else(|e| e.to_string(), |a| a.clone()),
        show(took)
    ));
    report.figure(format!(
        "memory: {} before, {} at the peak",
        mib(rss_before),
        mib(rss_peak)
    ));
    report.check(
        answer.is_ok_and(|a| a == format!("got {size}")),
        "the upload completed, every byte intact",
    );
    report.check(
        rss_peak.saturating_sub(rss_before) < 4 * 1024,
        "memory at the peak within 4 MiB of before: the balancer held \
         back instead of buffering the upload",
    );
    Ok(())
}

/// A tls:// backend that closes without `close_notify`
/// leaves lb's TLS client without one; one that closes properly gives
/// the client a clean end.
pub(super) async fn closes_without_notify(
    ctx: &Ctx,
    report: &mut Report,
) -> Ran {
    let after = 64 * 1024;
    let front = Front::Tls(ctx.certs.connector());
    let mut setup_line = String::new();
    for (behaviour, want, what) in [
        (
            Behaviour::ClosesWithoutNotify { after },
            End::NoCloseNotify,
            "a backend that closed without close_notify: the client saw \
             the same",
        ),
        (
            Behaviour::Serve,
            End::Clean,
            "a backend that closed with close_notify: the client got one",
        ),
    ] {
        let acceptor = Some(ctx.certs.acceptor.clone());
        let backend = FaultBackend::start(behaviour, acceptor)
            .await
            .map_err(backend_error)?;
        let setup = Setup {
            front_tls: true,
            ..Setup::over(&[backend.addr], true)
        };
        let lb = start(ctx, &setup, report).await?;
        setup_line = report.setup.clone();
        let got =
            client::connect_and_get(lb.addr, &front, after, secs(5), None)
                .await
                .map_err(|err| format!("cannot connect: {err}"))?;
        report.figure(format!(
            "{}: got {} KiB ({}), then {}",
            match behaviour {
                Behaviour::Serve => "closes properly",
                _ => "closes without close_notify",
            },
            got.bytes >> 10,
            if got.intact { "intact" } else { "damaged" },
            got.end.describe()
        ));
        report.check(got.bytes == after && got.end == want, what);
    }
    report.setup = setup_line;
    Ok(())
}
