//! Stopping: SIGTERM with transfers in flight, a drain that lets them
//! finish, a drain that runs out and cuts them, and a second signal.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustix::process::Signal;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{
    Ctx, Ran, backend_error, collect, ms, none_failed, secs, spawn_clients,
    start,
};
use crate::backend::{Behaviour, FaultBackend};
use crate::client::{self, Download, Front};
use crate::measure;
use crate::report::{self, Report, mib, show};
use crate::subject::{Kind, Running, Setup};

/// The last bytes of each transfer the backend holds back until
/// released: the transfers are surely in flight when the signal comes.
const TAIL: u64 = 64 * 1024;

/// Transfers under way through the balancer, each held at its last
/// [`TAIL`] bytes.
struct InFlight {
    backend: FaultBackend,
    lb: Running,
    transfers: JoinSet<io::Result<Download>>,
    size: u64,
}

async fn start_in_flight(
    ctx: &Ctx,
    report: &mut Report,
    count: usize,
    size: u64,
    drain: Duration,
) -> Result<InFlight, String> {
    let behaviour = Behaviour::HoldsBackTail { tail: TAIL };
    let backend = FaultBackend::start(behaviour, None)
        .await
        .map_err(backend_error)?;
    let setup = Setup {
        drain: Some(drain),
        ..Setup::over(&[backend.addr], false)
    };
    let lb = start(ctx, &setup, report).await?;
    let progress = Arc::new(AtomicU64::new(0));
    let addr = lb.addr;
    let transfers = spawn_clients(count, |_| {
        let progress = progress.clone();
        async move {
            let (front, limit) = (Front::Plain, secs(120));
            client::connect_and_get(addr, &front, size, limit, Some(&progress))
                .await
        }
    });
    let held = count as u64 * (size - TAIL);
    let arrived = measure::poll_until(secs(60), ms(10), || {
        progress.load(Ordering::Relaxed) >= held
    })
    .await;
    if arrived.is_none() {
        return Err(format!(
            "the transfers did not reach their held-back tails: {} of {} \
             bytes",
            progress.load(Ordering::Relaxed),
            held
        ));
    }
    report.figure(format!(
        "{} of {} in flight, each held {} KiB short of its end",
        report::count(count, "transfer"),
        mib(size >> 10),
        TAIL >> 10
    ));
    Ok(InFlight {
        backend,
        lb,
        transfers,
        size,
    })
}

/// Connects again and again (every 5 ms, for up to 2 s) until refused:
/// how long after `since` the refusal came.
async fn refused_after(lb: &Running, since: Instant) -> Option<Duration> {
    let limit = secs(2);
    while since.elapsed() < limit {
        match TcpStream::connect(lb.addr).await {
            Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
                return Some(since.elapsed());
            }
            _ => tokio::time::sleep(ms(5)).await,
        }
    }
    None
}

/// What each transfer got, once all have ended.
async fn downloads(
    transfers: JoinSet<io::Result<Download>>,
) -> Result<Vec<Download>, String> {
    none_failed(collect(transfers).await?)
}

fn describe_exit(status: Option<ExitStatus>) -> String {
    match status {
        None => "still running".to_owned(),
        Some(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            _ => "an unknown end".to_owned(),
        },
    }
}

// ANCHOR: drain
/// SIGTERM with 100 transfers of 8 MiB in flight: new
/// connects are refused at once, all 100 complete byte for byte once
/// released, lb exits 0 and its log counts them.
pub(super) async fn drain(ctx: &Ctx, report: &mut Report) -> Ran {
    let count = ctx.size.pick(20, 100);
    let size = ctx.size.pick(1, 8) << 20;
    let drain = secs(30);
    let mut run = start_in_flight(ctx, report, count, size, drain).await?;
    let signalled = Instant::now();
    run.lb.signal(Signal::TERM)?;
    let refused = refused_after(&run.lb, signalled).await;
    run.backend.release();
    let done = downloads(run.transfers).await?;
    let exit = run.lb.wait_exit(drain + secs(10)).await;
    let exited = signalled.elapsed();
    let complete = done.iter().filter(|d| d.complete(run.size)).count();
    report.figure(format!(
        "SIGTERM; new connects refused after {}; tails released; {complete} \
         of {count} complete and intact ({}); {} {} after the signal",
        refused.map_or_else(|| "never (2 s)".to_owned(), show),
        report::ends(done.iter().map(|d| d.end)),
        describe_exit(exit),
        show(exited)
    ));
    report.check(
        refused.is_some_and(|took| took < ms(500)),
        "new connects refused (ECONNREFUSED) within half a second",
    );
    report.check(
        complete == count,
        format!("all {count} transfers complete, byte for byte"),
    );
    report.check(exit.and_then(|s| s.code()) == Some(0), "exit status 0");
    if ctx.subject.kind == Kind::Lb {
        // The probes that connected before the listener closed are
        // connections too, and finish with the rest.
        let counted = drained(&run.lb.log());
        report.check(
            counted
                .is_some_and(|(finished, cut)| finished >= count && cut == 0),
            format!(
                "the log counts them: {}",
                counted.map_or("no \"shut down\" line".to_owned(), |(f, c)| {
                    format!("{f} finished, {c} cut")
                })
            ),
        );
    }
    Ok(())
}

/// The counts of `lb`'s last log line, "shut down: N connection(s)
/// finished, M cut".
fn drained(log: &str) -> Option<(usize, usize)> {
    let line = log.lines().rev().find(|l| l.contains("shut down: "))?;
    let rest = &line[line.find("shut down: ")? + "shut down: ".len()..];
    let mut words = rest.split_whitespace();
    let finished = words.next()?.parse().ok()?;
    let cut = words.nth(2)?.parse().ok()?;
    Some((finished, cut))
}
// ANCHOR_END: drain

/// With a drain shorter than the hold, the
/// transfers are cut when it runs out, the log counts them, and lb exits
/// 0. Then a second SIGTERM during a drain ends lb at once with 143.
pub(super) async fn drain_cut(ctx: &Ctx, report: &mut Report) -> Ran {
    let count = ctx.size.pick(10, 100);
    let size = ctx.size.pick(1, 8) << 20;
    let drain = ctx.size.pick(secs(1), secs(2));
    let mut run = start_in_flight(ctx, report, count, size, drain).await?;
    let signalled = Instant::now();
    run.lb.signal(Signal::TERM)?;
    let exit = run.lb.wait_exit(drain + secs(10)).await;
    let exited = signalled.elapsed();
    let done = downloads(run.transfers).await?;
    run.backend.release();
    let mut cut_at: Vec<_> = done.iter().map(|d| d.ended - signalled).collect();
    let short = done.iter().filter(|d| d.bytes < run.size).count();
    report.figure(format!(
        "SIGTERM, tails held: {} {} after the signal; {short} of {count} \
         transfers cut short, seeing {}, {} after the signal",
        describe_exit(exit),
        show(exited),
        report::ends(done.iter().map(|d| d.end)),
        report::spread(&mut cut_at)
    ));
    report.check(
        exit.and_then(|s| s.code()) == Some(0)
            && super::on_time(exited, drain, secs(1)),
        format!(
            "exit status 0 when the drain time ({}) ran out",
            show(drain)
        ),
    );
    report.check(
        short == count
            && cut_at.iter().all(|&at| super::on_time(at, drain, secs(1))),
        "every transfer was cut when the drain time ran out, not before",
    );
    if ctx.subject.kind == Kind::Lb {
        let counted = drained(&run.lb.log());
        report.check(
            counted == Some((0, count)),
            format!(
                "the log counts them: {}",
                counted.map_or("no \"shut down\" line".to_owned(), |(f, c)| {
                    format!("{f} finished, {c} cut")
                })
            ),
        );
    }
    second_signal(ctx, report, size).await
}

/// A second SIGTERM during a drain ends the process at once, with 128 +
/// 15.
async fn second_signal(ctx: &Ctx, report: &mut Report, size: u64) -> Ran {
    let setup_line = report.setup.clone();
    let mut run = start_in_flight(ctx, report, 1, size, secs(60)).await?;
    report.setup = setup_line;
    run.lb.signal(Signal::TERM)?;
    // Step 08 has no drain: the first signal ends it.
    let draining = ctx.subject.kind == Kind::Lb
        && run.lb.wait_for_log("draining", secs(5)).await;
    let signalled = Instant::now();
    if draining {
        run.lb.signal(Signal::TERM)?;
    }
    let exit = run.lb.wait_exit(secs(5)).await;
    let exited = signalled.elapsed();
    report.figure(format!(
        "a second SIGTERM while draining: {} {} after it",
        describe_exit(exit),
        show(exited)
    ));
    report.check(
        exit.and_then(|s| s.code()) == Some(143) && exited < secs(1),
        "a second SIGTERM ends it at once, with status 143",
    );
    run.backend.release();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drain_counts_are_read_from_the_last_shut_down_line() {
        let log = "INFO shut down: 1 connection finished, 2 cut\n\
                   INFO shut down: 20 connections finished, 3 cut\n";
        assert_eq!(drained(log), Some((20, 3)));
        assert_eq!(drained("INFO listening"), None);
    }
}
