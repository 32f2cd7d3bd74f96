//! The cases: one fault each, what must happen, and the measurements that
//! show whether it did.
//!
//! A case starts its own backends and its own balancer process, does its
//! harm, and writes a [`Report`]. Every case runs at two sizes: `Small`
//! in `cargo test` (seconds, short timeouts) and `Full` in
//! `scripts/faults.sh` (the numbers). The same code runs against
//! step 08, whose findings are shown beside `lb`'s and fail nothing.

mod backends;
mod clients;
mod drain;
mod limits;
mod load;
mod outages;
mod reloads;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::backend::{Behaviour, FaultBackend};
use crate::certs::Certs;
use crate::measure;
use crate::report::{Report, show};
use crate::subject::{Kind, Running, Setup, Subject};

/// How big a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// For `cargo test`: a few seconds a case.
    Small,
    /// For `scripts/faults.sh`: the numbers the issue asks for.
    Full,
}

impl Size {
    pub fn pick<T>(self, small: T, full: T) -> T {
        match self {
            Size::Small => small,
            Size::Full => full,
        }
    }
}

/// What every case is given.
pub struct Ctx {
    pub subject: Subject,
    pub size: Size,
    pub certs: Certs,
    /// Whether this run has the network namespace to itself: only then
    /// does the kernel's ListenOverflows count this run's overflows
    /// alone, and only then is it checked.
    pub private_network: bool,
}

impl Ctx {
    /// The context a test of the `lb` at `program` runs a case in: the
    /// small size, new certificates, and a network namespace shared
    /// with the other tests.
    pub fn small_lb(
        program: impl Into<std::path::PathBuf>,
    ) -> Result<Ctx, String> {
        Ok(Ctx {
            subject: Subject {
                kind: Kind::Lb,
                program: program.into(),
            },
            size: Size::Small,
            certs: Certs::new()
                .map_err(|err| format!("certificates: {err}"))?,
            private_network: false,
        })
    }
}

// ANCHOR: cases
/// Every case of the suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    // Backends that fail.
    NeverAnswers,
    AnswersThenStalls,
    ResetsMidStream,
    ClosesAtOnce,
    ReadsSlowly,
    ClosesWithoutNotify,
    // Clients that fail.
    SilentClients,
    HalfTlsHandshake,
    GivesUpMidRequest,
    ResetsMidUpload,
    Slowloris,
    // Load.
    ConnectionLimit,
    BackendQueue,
    IdleTlsMemory,
    Burst,
    OutOfDescriptors,
    // Stopping.
    Drain,
    DrainCut,
    // Changing it while it runs.
    Reloads,
    Upgrades,
    // Partial failures.
    Blip,
    BrokenStream,
    Flapping,
    SlowReaders,
    QueueLeavers,
    Loop,
    Saturation,
}
// ANCHOR_END: cases

impl Case {
    pub const ALL: [Case; 27] = [
        Case::NeverAnswers,
        Case::AnswersThenStalls,
        Case::ResetsMidStream,
        Case::ClosesAtOnce,
        Case::ReadsSlowly,
        Case::ClosesWithoutNotify,
        Case::SilentClients,
        Case::HalfTlsHandshake,
        Case::GivesUpMidRequest,
        Case::ResetsMidUpload,
        Case::Slowloris,
        Case::ConnectionLimit,
        Case::BackendQueue,
        Case::IdleTlsMemory,
        Case::Burst,
        Case::OutOfDescriptors,
        Case::Drain,
        Case::DrainCut,
        Case::Reloads,
        Case::Upgrades,
        Case::Blip,
        Case::BrokenStream,
        Case::Flapping,
        Case::SlowReaders,
        Case::QueueLeavers,
        Case::Loop,
        Case::Saturation,
    ];

    /// The name `faults NAME` and `scripts/faults.sh NAME` take.
    pub fn name(self) -> &'static str {
        match self {
            Case::NeverAnswers => "never-answers",
            Case::AnswersThenStalls => "answers-then-stalls",
            Case::ResetsMidStream => "resets-mid-stream",
            Case::ClosesAtOnce => "closes-at-once",
            Case::ReadsSlowly => "reads-slowly",
            Case::ClosesWithoutNotify => "closes-without-notify",
            Case::SilentClients => "silent-clients",
            Case::HalfTlsHandshake => "half-tls-handshake",
            Case::GivesUpMidRequest => "gives-up-mid-request",
            Case::ResetsMidUpload => "resets-mid-upload",
            Case::Slowloris => "slowloris",
            Case::ConnectionLimit => "connection-limit",
            Case::BackendQueue => "backend-queue",
            Case::IdleTlsMemory => "idle-tls-memory",
            Case::Burst => "burst",
            Case::OutOfDescriptors => "out-of-descriptors",
            Case::Drain => "drain",
            Case::DrainCut => "drain-cut",
            Case::Reloads => "reloads",
            Case::Upgrades => "upgrades",
            Case::Blip => "blip",
            Case::BrokenStream => "broken-stream",
            Case::Flapping => "flapping",
            Case::SlowReaders => "slow-readers",
            Case::QueueLeavers => "queue-leavers",
            Case::Loop => "loop",
            Case::Saturation => "saturation",
        }
    }

    /// The fault, and what must happen, in a sentence or two.
    pub fn about(self) -> &'static str {
        match self {
            Case::NeverAnswers => {
                "a backend accepts and never answers; 100 clients give up. \
                 The half-closed timeout must free their connections."
            }
            Case::AnswersThenStalls => {
                "a backend sends the start of an answer, then nothing. The \
                 idle timeout must close both sides."
            }
            Case::ResetsMidStream => {
                "a backend resets its connection mid-answer. The client \
                 must get a reset too, not a clean end."
            }
            Case::ClosesAtOnce => {
                "a backend closes every connection as soon as it accepts \
                 it. Clients must be closed at once, not left waiting."
            }
            Case::ReadsSlowly => {
                "a backend reads an upload slowly. lb must read from the \
                 client only as fast as the backend takes, so its memory \
                 stays flat, and the upload must arrive intact."
            }
            Case::ClosesWithoutNotify => {
                "a tls:// backend closes without close_notify. lb's TLS \
                 client must not get one either."
            }
            Case::SilentClients => {
                "100 clients connect and send nothing. The idle timeout \
                 must close them; a normal client is served meanwhile."
            }
            Case::HalfTlsHandshake => {
                "100 clients start a TLS handshake and never finish it, \
                 and 100 send nothing to a TLS front. The handshake \
                 timeout must close them; a normal client is served \
                 meanwhile."
            }
            Case::GivesUpMidRequest => {
                "clients send half a request and close. The end must \
                 reach the backend at once, and every connection be \
                 freed without waiting for a timeout."
            }
            Case::ResetsMidUpload => {
                "clients reset their connection mid-upload. The backend \
                 must see a reset, not a clean end of a short upload."
            }
            Case::Slowloris => {
                "clients send one byte every half idle timeout, then \
                 stop. At layer 4 they look like honest slow clients: lb \
                 must keep them while bytes move, at a small cost each, \
                 and close them once silent; an upload sent a piece every \
                 quarter idle timeout, lasting three and a half idle \
                 timeouts, must complete."
            }
            Case::ConnectionLimit => {
                "1,500 clients against max_connections = 1,000. None may \
                 be accepted and then dropped: the extra 500 wait in the \
                 kernel's queue and are served as others leave, and lb \
                 holds at most 2 x 1,000 + 10 descriptors."
            }
            Case::BackendQueue => {
                "a backend at its max_connections. Clients wait for room \
                 up to queue_timeout: those that get it are served, the \
                 others get a reset, not silence."
            }
            Case::IdleTlsMemory => {
                "5,000 idle clients, TLS at both ends, twice. Memory after \
                 the second round must end within 10% of the first: no \
                 growth."
            }
            Case::Burst => {
                "2,000 connects at once to a TLS front with tls:// \
                 backends. Every TCP connect must take under a second, \
                 and the kernel must not count a listen-queue overflow."
            }
            Case::OutOfDescriptors => {
                "lb under ulimit -n 256 and 400 clients. It must accept \
                 only what it can serve: every client served, none closed \
                 without a word, no busy loop."
            }
            Case::Drain => {
                "SIGTERM with 100 transfers of 8 MiB in flight. New \
                 connects are refused at once, all 100 complete byte for \
                 byte, lb exits 0 and counts them in its log."
            }
            Case::DrainCut => {
                "SIGTERM with transfers that outlast the drain time. They \
                 are cut when it runs out, the log counts them, lb exits \
                 0; a second SIGTERM ends lb at once with 143."
            }
            Case::Reloads => {
                "100 reloads, SIGHUP and POST /api/reload in turn, between \
                 two files that differ in weights, algorithm and backends, \
                 under new connections and 100 long transfers; the 50th \
                 is a broken file. None may be refused, reset or cut; \
                 each good file applies, the broken one is refused with \
                 its line and key and changes nothing."
            }
            Case::Upgrades => {
                "20 upgrades in a row (lb --upgrade against the running \
                 one) under the same load. None may be refused, reset or \
                 cut; each new process listens on the same address and \
                 each old one drains and exits 0."
            }
            Case::Blip => {
                "every backend refuses connects for 1 s under a steady \
                 load of new connections, then answers again; checks \
                 every 500 ms, rise = 2. Clients must be served again \
                 within one check interval plus rise checks (1.5 s) of \
                 the last backend answering; the share that failed \
                 during the blip is shown."
            }
            Case::BrokenStream => {
                "a tls:// backend sends part of an answer, then a corrupt \
                 record; a plain backend stops reading an upload, so that \
                 lb's data to it waits unacknowledged behind a zero \
                 window (on loopback the closest stand-in for a peer that \
                 stops acknowledging), with [timeouts] unacknowledged \
                 (TCP_USER_TIMEOUT) short. Each plain client must see a \
                 reset, never a clean end: 20 of 20 each."
            }
            Case::Flapping => {
                "a backend refuses and answers connects in turn every \
                 300 ms for 10 s, beside two steady ones, checks every \
                 100 ms, under a steady load of new connections. No \
                 client may fail, its state must change less often in \
                 the last third than in the first (the hold-down grows), \
                 and lb may write at most 50 log lines about it."
            }
            Case::SlowReaders => {
                "max_connections - 1 clients each download a large body \
                 at 1 KiB/s. lb's memory must stay within the bound of \
                 its relay buffers (lb.toml: max_connections x 2 x 512 B \
                 + buffer_budget), measured as its memory with as many \
                 idle connections (which holds the small buffers) plus \
                 buffer_budget and 1 MiB for the allocator; one more \
                 client must be served meanwhile."
            }
            Case::QueueLeavers => {
                "200 clients queue, in turn, for a backend at its \
                 max_connections (queue_timeout long); 100 of them, every \
                 other one, close after sending their request. Their \
                 places must be given up at once, and the 100 left served \
                 in arrival order, none of the leavers reaching the \
                 backend (its accept order shows it)."
            }
            Case::Loop => {
                "lb's backend is lb itself, by a path the config check \
                 cannot see (a host name, a wildcard listen). Alone: the \
                 loop is logged, each client is refused at once, lb \
                 accepts no connection from itself and its descriptors \
                 stay within 5 of idle. Beside a real backend, under \
                 every algorithm: no client fails. (max_connections = 64 \
                 bounds a balancer that does dial itself.)"
            }
            Case::Saturation => {
                "max_connections reached and held for 5 s, with a \
                 quarter as many clients again waiting in the listen \
                 queue, then left. lb must log exactly one line when it \
                 is reached and one when it clears (once the waiting \
                 clients are in), with the counts."
            }
        }
    }

    pub fn from_name(name: &str) -> Option<Case> {
        Case::ALL.into_iter().find(|case| case.name() == name)
    }
}

/// Runs `case` against `ctx.subject`.
pub async fn run(case: Case, ctx: &Ctx) -> Report {
    // A case holds two sockets per client here (the client's and its
    // backend's), more than the usual soft limit of 1,024 allows.
    lab_tools::sys::raise_open_files();
    let mut report = Report::new(ctx.subject.kind);
    if let Some(why) = not_for(case, ctx.subject.kind) {
        report.not_applicable(why);
        return report;
    }
    let r = &mut report;
    let ran = match case {
        Case::NeverAnswers => backends::never_answers(ctx, r).await,
        Case::AnswersThenStalls => backends::answers_then_stalls(ctx, r).await,
        Case::ResetsMidStream => backends::resets_mid_stream(ctx, r).await,
        Case::ClosesAtOnce => backends::closes_at_once(ctx, r).await,
        Case::ReadsSlowly => backends::reads_slowly(ctx, r).await,
        Case::ClosesWithoutNotify => {
            backends::closes_without_notify(ctx, r).await
        }
        Case::SilentClients => clients::silent(ctx, r).await,
        Case::HalfTlsHandshake => clients::half_tls_handshake(ctx, r).await,
        Case::GivesUpMidRequest => clients::gives_up_mid_request(ctx, r).await,
        Case::ResetsMidUpload => clients::resets_mid_upload(ctx, r).await,
        Case::Slowloris => clients::slowloris(ctx, r).await,
        Case::ConnectionLimit => load::connection_limit(ctx, r).await,
        Case::BackendQueue => load::backend_queue(ctx, r).await,
        Case::IdleTlsMemory => load::idle_tls_memory(ctx, r).await,
        Case::Burst => load::burst(ctx, r).await,
        Case::OutOfDescriptors => load::out_of_descriptors(ctx, r).await,
        Case::Drain => drain::drain(ctx, r).await,
        Case::DrainCut => drain::drain_cut(ctx, r).await,
        Case::Reloads => reloads::reloads(ctx, r).await,
        Case::Upgrades => reloads::upgrades(ctx, r).await,
        Case::Blip => outages::blip(ctx, r).await,
        Case::BrokenStream => outages::broken_stream(ctx, r).await,
        Case::Flapping => outages::flapping(ctx, r).await,
        Case::SlowReaders => limits::slow_readers(ctx, r).await,
        Case::QueueLeavers => limits::queue_leavers(ctx, r).await,
        Case::Loop => outages::loop_case(ctx, r).await,
        Case::Saturation => limits::saturation(ctx, r).await,
    };
    if let Err(why) = ran {
        report.broken(why);
    }
    report
}

/// Why `case` does not apply to `subject`, if it does not: step 08
/// reads its flags once and cannot reload or hand over its listener, and
/// has no health checks, queue or limits.
fn not_for(case: Case, subject: Kind) -> Option<&'static str> {
    if subject != Kind::Step08 {
        return None;
    }
    match case {
        Case::Reloads => Some("step 08 has no reload"),
        Case::Upgrades => Some("step 08 has no upgrade"),
        Case::Flapping => {
            Some("step 08 has no health checks: a backend has no state")
        }
        Case::SlowReaders => {
            Some("step 08 has no max_connections or buffer budget")
        }
        Case::QueueLeavers => Some("step 08 has no queue"),
        Case::Saturation => Some("step 08 has no max_connections"),
        _ => None,
    }
}

/// A case's way out when it cannot go on: why, in a line.
type Ran = Result<(), String>;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Why a case could not go on without a backend.
fn backend_error(err: io::Error) -> String {
    format!("cannot start a backend: {err}")
}

/// A backend that answers every request, over TLS if `tls`.
async fn serving_backend(tls: bool, ctx: &Ctx) -> Result<FaultBackend, String> {
    let acceptor = tls.then(|| ctx.certs.acceptor.clone());
    FaultBackend::start(Behaviour::Serve, acceptor)
        .await
        .map_err(backend_error)
}

/// Starts the balancer for `setup` and says in the report how it runs.
async fn start(
    ctx: &Ctx,
    setup: &Setup,
    report: &mut Report,
) -> Result<Running, String> {
    report.setup = setup.describe(ctx.subject.kind);
    let running = ctx.subject.start(setup, &ctx.certs).await?;
    // `lb` says it listens before it has read its certificates: let such
    // start-up descriptors close before a case counts "before".
    let mut last = running.descriptors()?;
    let mut same = 0;
    measure::poll_until(secs(2), ms(10), || {
        let now = running.descriptors().unwrap_or(0);
        same = if now == last { same + 1 } else { 0 };
        last = now;
        same >= 5
    })
    .await;
    Ok(running)
}

/// Runs `count` clients at once, `client(i)` each, and collects what each
/// returned (in the order they finished).
async fn clients<T, F, Fut>(count: usize, client: F) -> Result<Vec<T>, String>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    collect(spawn_clients(count, client)).await
}

/// Starts `count` clients at once, `client(i)` each, for a case that acts
/// while they run; [`collect`] waits for them. Dropping the set ends
/// them.
fn spawn_clients<T, F, Fut>(count: usize, client: F) -> JoinSet<T>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut tasks = JoinSet::new();
    for i in 0..count {
        tasks.spawn(client(i));
    }
    tasks
}

/// Waits for every client of `tasks`: what each returned, in the order
/// they finished.
async fn collect<T: 'static>(mut tasks: JoinSet<T>) -> Result<Vec<T>, String> {
    let mut results = Vec::with_capacity(tasks.len());
    while let Some(joined) = tasks.join_next().await {
        results.push(joined.map_err(|err| format!("a client failed: {err}"))?);
    }
    Ok(results)
}

/// What clients returned, if none failed; the first failure if one did.
fn none_failed<T>(results: Vec<io::Result<T>>) -> Result<Vec<T>, String> {
    results
        .into_iter()
        .collect::<io::Result<_>>()
        .map_err(|err| format!("a client: {err}"))
}

/// `GET path` from `lb`'s admin listener at `addr` (HTTP/1.0, so the
/// body comes whole, not chunked): the body of a 200, within 5 s.
async fn scrape(addr: SocketAddr, path: &str) -> Result<String, String> {
    let exchange = async {
        let mut tcp = TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        tcp.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        (&mut tcp).take(4 << 20).read_to_end(&mut answer).await?;
        Ok::<_, io::Error>(String::from_utf8_lossy(&answer).into_owned())
    };
    let answer = tokio::time::timeout(secs(5), exchange)
        .await
        .map_err(|_| format!("GET {path}: no answer in 5 s"))?
        .map_err(|err| format!("GET {path}: {err}"))?;
    match answer.split_once("\r\n\r\n") {
        Some((head, body)) if head.split_whitespace().nth(1) == Some("200") => {
            Ok(body.to_owned())
        }
        _ => Err(format!("GET {path}: {answer:?}")),
    }
}

/// The value of the series `series` (its name and labels, as written)
/// in a `/metrics` text.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// Polls `running`'s descriptors every 20 ms until they are back to
/// `baseline`: how long it took, or `None` after `limit`.
async fn descriptors_back(
    running: &Running,
    baseline: usize,
    limit: Duration,
) -> Option<Duration> {
    measure::poll_until(limit, ms(20), || {
        running.descriptors().is_ok_and(|now| now <= baseline)
    })
    .await
}

/// Polls `running`'s descriptors every 10 ms until they reach `count`
/// (the case's connections are all open); whether they did within
/// `limit`.
async fn descriptors_reach(
    running: &Running,
    count: usize,
    limit: Duration,
) -> bool {
    measure::poll_until(limit, ms(10), || {
        running.descriptors().is_ok_and(|now| now >= count)
    })
    .await
    .is_some()
}

/// Checks that the balancer's descriptors come back to `before` within
/// `limit` of now, and reports the three figures.
async fn check_freed(
    running: &Running,
    report: &mut Report,
    before: usize,
    peak: usize,
    limit: Duration,
    after_what: &str,
) -> Result<Option<Duration>, String> {
    let back = descriptors_back(running, before, limit).await;
    let now = running.descriptors()?;
    let end = match back {
        Some(took) => format!("{now} again {} after {after_what}", show(took)),
        None => format!("still {now} {} after {after_what}", show(limit)),
    };
    report.figure(format!(
        "descriptors: {before} before, {peak} at the peak, {end}"
    ));
    report.check(
        back.is_some(),
        format!(
            "descriptors back to {before} within {} after {after_what}",
            show(limit)
        ),
    );
    Ok(back)
}

/// Whether `took` lies between 90% of `timeout` and `timeout` plus
/// `slack`: a timeout that fired on time, not early and not much late.
fn on_time(took: Duration, timeout: Duration, slack: Duration) -> bool {
    took >= timeout.mul_f64(0.9) && took <= timeout + slack
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_has_a_distinct_name_that_finds_it() {
        for case in Case::ALL {
            assert_eq!(Case::from_name(case.name()), Some(case));
            assert!(!case.about().is_empty());
        }
        let mut names: Vec<&str> = Case::ALL.iter().map(|c| c.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Case::ALL.len());
    }

    #[test]
    fn a_series_is_found_by_its_name_and_labels() {
        let text = "# TYPE lb_x counter\nlb_x_total 7\n\
                    lb_y{backend=\"a\"} 1\nlb_y{backend=\"b\"} 2.5\n";
        assert_eq!(metric(text, "lb_x_total"), Some(7.0));
        assert_eq!(metric(text, "lb_y{backend=\"b\"}"), Some(2.5));
        assert_eq!(metric(text, "lb_x"), None);
    }
}
