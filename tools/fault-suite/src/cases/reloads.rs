//! Changing `lb` while it runs: reloads (SIGHUP and `POST /api/reload`,
//! one of them a broken file) and upgrades (`lb --upgrade`, a new process
//! taking over the listener), each under a steady load of new connections
//! and of long transfers, none of which may be refused, reset or cut.
//!
//! Step 08 reads its flags once and has neither: both cases are "n/a"
//! for it.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use rustix::process::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Ctx, Ran, Size, collect, ms, secs, serving_backend};
use crate::backend::FaultBackend;
use crate::client::{self, Download, Front};
use crate::conn::End;
use crate::measure;
use crate::report::{self, Report, show};
use crate::subject::Running;

/// What one kind of client saw, counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    /// Served whole: every byte, the pattern's, then a clean end.
    ok: usize,
    /// `connect()` refused: nothing listened, or the queue was closed.
    refused: usize,
    /// A reset, at connect or mid-answer.
    reset: usize,
    /// Any other end: short, not the pattern, an error, a timeout.
    cut: usize,
}

impl Tally {
    fn count(&mut self, result: io::Result<Download>, n: u64) {
        let slot = match result {
            Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
                &mut self.refused
            }
            Err(err) if End::of_error(&err) == End::Reset => &mut self.reset,
            Err(_) => &mut self.cut,
            Ok(download) if download.complete(n) => &mut self.ok,
            Ok(download) if download.end == End::Reset => &mut self.reset,
            Ok(_) => &mut self.cut,
        };
        *slot += 1;
    }

    fn add(&mut self, other: Tally) {
        self.ok += other.ok;
        self.refused += other.refused;
        self.reset += other.reset;
        self.cut += other.cut;
    }

    fn failed(&self) -> usize {
        self.refused + self.reset + self.cut
    }

    fn describe(&self) -> String {
        format!(
            "{} whole, {} refused, {} reset, {} cut or short",
            self.ok, self.refused, self.reset, self.cut
        )
    }
}

/// The shape of the steady load.
#[derive(Clone, Copy, Debug)]
struct Shape {
    /// Clients that each make one new connection after another, one
    /// request each.
    connectors: usize,
    /// The bytes each of them asks for.
    request: u64,
    /// Long transfers kept in flight: each client downloads `transfer`
    /// bytes at `rate` bytes a second, then starts again.
    transfers: usize,
    transfer: u64,
    rate: u64,
    /// New connections served before a case starts changing `lb`, and
    /// between two upgrades.
    settle: u64,
}

impl Shape {
    fn of(size: Size) -> Shape {
        Shape {
            connectors: size.pick(4, 16),
            request: 4 * 1024,
            transfers: size.pick(10, 100),
            transfer: size.pick(1, 4) << 20,
            rate: 1 << 20,
            settle: size.pick(10, 25),
        }
    }

    /// How long one transfer takes at its pace.
    fn paced(&self) -> Duration {
        Duration::from_secs_f64(self.transfer as f64 / self.rate as f64)
    }

    fn describe(&self) -> String {
        format!(
            "{} making new connections (one request of {} KiB each), {} of \
             {} MiB in flight at {} MiB/s each",
            report::count(self.connectors, "client"),
            self.request >> 10,
            report::count(self.transfers, "transfer"),
            self.transfer >> 20,
            self.rate >> 20
        )
    }
}

/// No load client runs longer than this, whatever happens.
const LOAD_LIMIT: Duration = Duration::from_secs(600);

/// The steady load, running.
struct Load {
    stop: watch::Sender<bool>,
    connects: JoinSet<Tally>,
    transfers: JoinSet<Tally>,
    /// New connections served whole so far.
    served: Arc<AtomicU64>,
    /// Transfers connected and not yet ended.
    in_flight: Arc<AtomicUsize>,
    /// Transfers connected so far.
    started: Arc<AtomicU64>,
}

impl Load {
    fn start(addr: SocketAddr, shape: Shape) -> Load {
        let (stop, stopped) = watch::channel(false);
        let served = Arc::new(AtomicU64::new(0));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let mut connects = JoinSet::new();
        for _ in 0..shape.connectors {
            let stopped = stopped.clone();
            let served = served.clone();
            connects.spawn(async move {
                let started = Instant::now();
                let mut tally = Tally::default();
                while !*stopped.borrow() && started.elapsed() < LOAD_LIMIT {
                    let (n, limit) = (shape.request, secs(10));
                    let got = client::connect_and_get(
                        addr,
                        &Front::Plain,
                        n,
                        limit,
                        None,
                    )
                    .await;
                    let whole = matches!(&got, Ok(d) if d.complete(n));
                    tally.count(got, n);
                    if whole {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tally
            });
        }
        let started = Arc::new(AtomicU64::new(0));
        let mut transfers = JoinSet::new();
        for i in 0..shape.transfers {
            let stopped = stopped.clone();
            let counts = (in_flight.clone(), started.clone());
            // The transfers start spread over one transfer's time, so
            // that from then on some start (and end) at every moment.
            let offset =
                shape.paced().mul_f64(i as f64 / shape.transfers as f64);
            transfers.spawn(async move {
                let began = Instant::now();
                tokio::time::sleep(offset).await;
                let mut tally = Tally::default();
                while !*stopped.borrow() && began.elapsed() < LOAD_LIMIT {
                    let got = transfer(addr, shape, &counts.0, &counts.1).await;
                    tally.count(got, shape.transfer);
                }
                tally
            });
        }
        Load {
            stop,
            connects,
            transfers,
            served,
            in_flight,
            started,
        }
    }

    /// Waits (up to 30 s) until `more` new connections have been served
    /// since the call; whether they were.
    async fn served_more(&self, more: u64) -> bool {
        let target = self.served.load(Ordering::Relaxed) + more;
        measure::poll_until(secs(30), ms(2), || {
            self.served.load(Ordering::Relaxed) >= target
        })
        .await
        .is_some()
    }

    /// Waits (up to 30 s) until `more` transfers have started since the
    /// call; whether they did.
    async fn started_more(&self, more: u64) -> bool {
        let target = self.started.load(Ordering::Relaxed) + more;
        measure::poll_until(secs(30), ms(2), || {
            self.started.load(Ordering::Relaxed) >= target
        })
        .await
        .is_some()
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Stops the clients once each has finished what it is doing, and
    /// counts what they saw: new connections, then transfers.
    async fn finish(self) -> Result<(Tally, Tally), String> {
        self.stop.send_replace(true);
        let mut connects = Tally::default();
        for tally in collect(self.connects).await? {
            connects.add(tally);
        }
        let mut transfers = Tally::default();
        for tally in collect(self.transfers).await? {
            transfers.add(tally);
        }
        Ok((connects, transfers))
    }
}

/// One long transfer, counted in `started` once connected and in
/// `in_flight` while it is.
async fn transfer(
    addr: SocketAddr,
    shape: Shape,
    in_flight: &AtomicUsize,
    started: &AtomicU64,
) -> io::Result<Download> {
    let mut connected = client::connect(addr, &Front::Plain).await?;
    in_flight.fetch_add(1, Ordering::Relaxed);
    started.fetch_add(1, Ordering::Relaxed);
    // Four times the paced time: a stall is a cut, not a hang.
    let limit = shape.paced() * 4 + secs(10);
    let (n, rate) = (shape.transfer, Some(shape.rate));
    let got =
        client::get_paced(&mut connected.conn, n, rate, limit, None).await;
    in_flight.fetch_sub(1, Ordering::Relaxed);
    Ok(got)
}

/// The two configurations a reload alternates between, and the broken
/// one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    /// Weighted round robin over backends 1 (weight 1) and 2 (weight 3).
    A,
    /// Least connections over backends 2 (weight 2) and 3 (weight 1):
    /// 1 removed, 3 added.
    B,
    /// A with `rise = 0`, which the check must refuse.
    Broken,
}

impl Version {
    fn other(self) -> Version {
        match self {
            Version::A => Version::B,
            _ => Version::A,
        }
    }

    /// The backend (by index) this version leaves out, which no new
    /// client may reach while it applies.
    fn left_out(self) -> usize {
        match self {
            Version::B => 0,
            _ => 2,
        }
    }
}

/// The line of `rise` in every file [`lb_file`] writes.
const RISE_LINE: usize = 8;

/// `lb`'s file for `version` over `backends` (three), with an admin
/// listener if `admin`, an upgrade socket if `socket`.
fn lb_file(
    version: Version,
    backends: &[SocketAddr],
    admin: bool,
    socket: Option<&Path>,
) -> String {
    let algorithm = match version {
        Version::B => "least-connections",
        _ => "weighted-round-robin",
    };
    let rise = if version == Version::Broken { 0 } else { 2 };
    let mut text = format!(
        "# Written by the fault suite's reload cases.\n\
         listen = \"127.0.0.1:0\"\n\
         algorithm = \"{algorithm}\"\n\
         \n\
         [health]\n\
         # Off: the load alone decides which backend a client reached.\n\
         kind = \"off\"\n\
         rise = {rise}\n\
         \n\
         [timeouts]\n\
         drain = \"30s\"\n"
    );
    if admin {
        text.push_str("\n[admin]\nlisten = \"127.0.0.1:0\"\n");
    }
    if let Some(socket) = socket {
        text.push_str(&format!(
            "\n[upgrade]\nsocket = '{}'\n",
            socket.display()
        ));
    }
    let listed: &[(usize, u32)] = match version {
        Version::B => &[(1, 2), (2, 1)],
        _ => &[(0, 1), (1, 3)],
    };
    for &(i, weight) in listed {
        text.push_str(&format!(
            "\n[[backends]]\nid = \"b{}\"\naddress = \"{}\"\nweight = {weight}\n",
            i + 1,
            backends[i]
        ));
    }
    text
}

/// Writes `text` to `path` whole: a reload never reads half a file.
fn write_whole(path: &Path, text: &str) -> Result<(), String> {
    let next = path.with_extension("toml.next");
    std::fs::write(&next, text)
        .and_then(|()| std::fs::rename(&next, path))
        .map_err(|err| format!("writing {}: {err}", path.display()))
}

/// Three backends that serve every request.
async fn three_backends(ctx: &Ctx) -> Result<Vec<FaultBackend>, String> {
    let mut backends = Vec::new();
    for _ in 0..3 {
        backends.push(serving_backend(false, ctx).await?);
    }
    Ok(backends)
}

/// What a reload came to.
#[derive(Debug)]
enum Answer {
    /// Applied; the log line or the answer's body.
    Applied(String),
    /// Refused; the error.
    Refused(String),
}

/// The lines of `log` from byte `from` on that start a reload's outcome.
fn reload_outcome(log: &str, from: usize) -> Option<Answer> {
    let new = log.get(from..)?;
    new.lines().find_map(|line| {
        if let Some(at) = line.find("reload refused:") {
            Some(Answer::Refused(line[at..].to_owned()))
        } else {
            line.find("reloaded:")
                .map(|at| Answer::Applied(line[at..].to_owned()))
        }
    })
}

/// SIGHUP, and `lb`'s log line that says what came of it (10 s at most).
async fn reload_by_signal(lb: &mut Running) -> Result<Answer, String> {
    let from = lb.log_len();
    lb.signal(Signal::HUP)?;
    let said =
        lb.wait_log_until(secs(10), |log| reload_outcome(log, from).is_some());
    if !said.await {
        return Err("no `reloaded:` or `reload refused:` line in 10 s".into());
    }
    reload_outcome(&lb.log(), from).ok_or_else(|| "no outcome".into())
}

/// `POST /api/reload` on `admin`, with `Host` set to it and no
/// `Origin`: 200 is applied, 400 refused (10 s at most).
async fn reload_by_api(admin: SocketAddr) -> Result<Answer, String> {
    let (status, body) = post(admin, "/api/reload").await?;
    match status {
        200 => Ok(Answer::Applied(body)),
        400 => Ok(Answer::Refused(body)),
        other => Err(format!("POST /api/reload answered {other}: {body}")),
    }
}

/// An HTTP/1.1 POST with an empty body: the status and the body.
async fn post(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let exchange = async {
        let mut tcp = TcpStream::connect(addr).await?;
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        );
        tcp.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        (&mut tcp).take(1 << 20).read_to_end(&mut answer).await?;
        Ok::<_, io::Error>(String::from_utf8_lossy(&answer).into_owned())
    };
    let answer = tokio::time::timeout(secs(10), exchange)
        .await
        .map_err(|_| format!("POST {path}: no answer in 10 s"))?
        .map_err(|err| format!("POST {path}: {err}"))?;
    parse_answer(&answer).ok_or_else(|| format!("POST {path}: {answer:?}"))
}

/// The status and body of an HTTP/1.1 answer.
fn parse_answer(answer: &str) -> Option<(u16, String)> {
    let (head, body) = answer.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// Whether a refusal names the broken file's line and key.
fn names_the_fault(error: &str) -> bool {
    error.contains(&format!("lb.toml:{RISE_LINE}: health.rise"))
}

/// New connections the test opens itself after each reload has
/// answered, one after another: enough that the configuration left
/// behind would send some of them to the backend it keeps (a quarter of
/// them, in version A).
const PROBES: u64 = 8;

/// Whether the backend `out` got none of `PROBES` clients opened after
/// the reload number `tag` answered. The load's clients cannot tell:
/// one `lb` accepted just before the change may reach its backend
/// after any number of later ones. A probe opened after the answer is
/// accepted after the pool was swapped, so it can only see the new one.
/// Each probe asks for a size no other client asks (`request + tag`),
/// so the backend's record says where it went. Probes not served whole
/// are counted in `tally`.
async fn probes_avoid(
    addr: SocketAddr,
    backends: &[FaultBackend],
    out: usize,
    shape: Shape,
    tag: u64,
    tally: &mut Tally,
) -> bool {
    let n = shape.request + tag;
    for _ in 0..PROBES {
        let got =
            client::connect_and_get(addr, &Front::Plain, n, secs(10), None)
                .await;
        tally.count(got, n);
    }
    !backends[out].stats().asked().contains(&n)
}

/// What the load saw, as the report's figure and checks.
fn report_load(
    report: &mut Report,
    connects: Tally,
    transfers: Tally,
    during: &str,
) {
    report.figure(format!(
        "new connections: {}; transfers: {}",
        connects.describe(),
        transfers.describe()
    ));
    report.check(
        connects.failed() == 0 && connects.ok > 0,
        format!("0 new connections refused, reset or cut {during}"),
    );
    report.check(
        transfers.failed() == 0 && transfers.ok > 0,
        format!("0 transfers reset, cut or short (byte for byte) {during}"),
    );
}

// ANCHOR: reloads
/// 100 reloads (10 small), SIGHUP and `POST /api/reload` in turn, between
/// two files that differ in weights, algorithm and backends; the 50th a
/// broken file. Under the steady load: 0 refused, 0 reset, 0 cut; each
/// good file applies, the broken one is refused with its line and key
/// and changes nothing.
pub(super) async fn reloads(ctx: &Ctx, report: &mut Report) -> Ran {
    let count = ctx.size.pick(10, 100);
    let shape = Shape::of(ctx.size);
    let backends = three_backends(ctx).await?;
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let dir = tempfile::tempdir().map_err(|err| format!("a folder: {err}"))?;
    let config = dir.path().join("lb.toml");
    write_whole(&config, &lb_file(Version::A, &addrs, true, None))?;
    report.setup = "weighted round robin over b1, b2 / least connections \
                    over b2, b3; admin on 127.0.0.1:0"
        .to_owned();
    let mut lb = ctx.subject.start_lb(&config, &[]).await?;
    let admin = lb
        .admin_addr(secs(10))
        .await
        .ok_or("no `admin on ADDR` line on lb's stdout")?;
    let load = Load::start(lb.addr, shape);
    let all_in_flight = measure::poll_until(secs(30), ms(5), || {
        load.in_flight() >= shape.transfers
    });
    if all_in_flight.await.is_none() || !load.served_more(shape.settle).await {
        return Err("the load did not get going in 30 s".into());
    }
    report.figure(format!("load: {}", shape.describe()));

    let started = Instant::now();
    let broken_at = count / 2;
    let (mut active, mut applied, mut wrong, mut strays) =
        (Version::A, 0, 0, 0);
    let mut first_wrong = None;
    let mut probes = Tally::default();
    let mut broken_refused = None;
    let mut first_said = Vec::new();
    let mut fewest_in_flight = usize::MAX;
    for i in 1..=count {
        let version = if i == broken_at {
            Version::Broken
        } else {
            active.other()
        };
        write_whole(&config, &lb_file(version, &addrs, true, None))?;
        fewest_in_flight = fewest_in_flight.min(load.in_flight());
        let by_signal = i % 2 == 1;
        let how = if by_signal {
            "SIGHUP"
        } else {
            "POST /api/reload"
        };
        let answer = if by_signal {
            reload_by_signal(&mut lb).await
        } else {
            reload_by_api(admin).await
        };
        match (version, answer) {
            (Version::Broken, Ok(Answer::Refused(error))) => {
                broken_refused = Some((how, error));
            }
            (Version::A | Version::B, Ok(Answer::Applied(said))) => {
                active = version;
                applied += 1;
                if !first_said.iter().any(|(h, _)| *h == how) {
                    first_said.push((how, said.trim().to_owned()));
                }
            }
            (_, outcome) => {
                wrong += 1;
                let gave_no_answer = outcome.is_err();
                first_wrong.get_or_insert(format!(
                    "reload {i} ({how}, {version:?}): {outcome:?}"
                ));
                // No answer at all: the rest would wait 10 s each alike.
                if gave_no_answer {
                    break;
                }
            }
        }
        let out = active.left_out();
        let tag = i as u64;
        if !probes_avoid(lb.addr, &backends, out, shape, tag, &mut probes).await
        {
            strays += 1;
        }
    }
    let took = started.elapsed();
    let (mut connects, transfers) = load.finish().await?;
    connects.add(probes);
    report.figure(format!(
        "{count} reloads in {} (SIGHUP and POST /api/reload in turn; \
         number {broken_at} a broken file), at least {} transfers in \
         flight at each",
        show(took),
        if fewest_in_flight == usize::MAX {
            0
        } else {
            fewest_in_flight
        }
    ));
    for (how, said) in &first_said {
        report.figure(format!("first applied by {how}: {said}"));
    }
    // The probes are new connections too: counted with the load's.
    report_load(report, connects, transfers, "during the reloads");
    report.check(
        applied == count - 1 && wrong == 0,
        format!(
            "each of the {} good files applied ({applied} did){}",
            count - 1,
            first_wrong.map_or(String::new(), |w| format!("; {w}"))
        ),
    );
    let refusal = broken_refused
        .as_ref()
        .map_or("not refused".to_owned(), |(how, e)| format!("{how}: {e}"));
    // The API's refusal is JSON: {"error": "FILE:LINE: key: ..."}.
    report.check(
        broken_refused.as_ref().is_some_and(|(how, error)| {
            names_the_fault(error)
                && (*how == "SIGHUP" || error.contains("\"error\""))
        }),
        format!(
            "the broken file refused, naming lb.toml:{RISE_LINE}: \
             health.rise ({})",
            refusal.trim()
        ),
    );
    report.check(
        strays == 0,
        format!(
            "after each reload, none of {PROBES} clients opened once it \
             answered reached the backend the file in force leaves out, \
             so nothing changed at the broken one ({strays} of {count} \
             times one did)"
        ),
    );
    Ok(())
}
// ANCHOR_END: reloads

// ANCHOR: upgrades
/// 20 upgrades in a row (3 small): `lb --config FILE --upgrade` against
/// the running one, under the steady load: the new process says it
/// listens on the same address, the old one drains and exits 0; 0
/// refused, 0 reset, 0 cut.
pub(super) async fn upgrades(ctx: &Ctx, report: &mut Report) -> Ran {
    let count = ctx.size.pick(3, 20);
    let shape = Shape::of(ctx.size);
    let backends = three_backends(ctx).await?;
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let dir = tempfile::tempdir().map_err(|err| format!("a folder: {err}"))?;
    let config = dir.path().join("lb.toml");
    let socket = dir.path().join("upgrade.sock");
    write_whole(&config, &lb_file(Version::A, &addrs, false, Some(&socket)))?;
    report.setup =
        "weighted round robin over b1, b2; [upgrade] socket".to_owned();
    let mut lb = ctx.subject.start_lb(&config, &[]).await?;
    let addr = lb.addr;
    let load = Load::start(addr, shape);
    let all_in_flight = measure::poll_until(secs(30), ms(5), || {
        load.in_flight() >= shape.transfers
    });
    if all_in_flight.await.is_none() || !load.served_more(shape.settle).await {
        return Err("the load did not get going in 30 s".into());
    }
    report.figure(format!("load: {}", shape.describe()));

    let started = Instant::now();
    let mut old_ones = JoinSet::new();
    let mut upgraded = 0;
    let mut failure = None;
    let mut fewest_in_flight = usize::MAX;
    for i in 1..=count {
        fewest_in_flight = fewest_in_flight.min(load.in_flight());
        let new = match ctx.subject.start_lb(&config, &["--upgrade"]).await {
            Ok(new) if new.addr == addr => new,
            Ok(new) => {
                failure = Some(format!(
                    "upgrade {i}: the new process listens on {}, not {addr}",
                    new.addr
                ));
                break;
            }
            Err(err) => {
                failure = Some(format!("upgrade {i}: {err}"));
                break;
            }
        };
        upgraded += 1;
        let mut old = std::mem::replace(&mut lb, new);
        old_ones.spawn(async move {
            let exit = old.wait_exit(secs(40)).await;
            (i, exit.and_then(|status| status.code()))
        });
        // Transfers that start now reach the new process and are still
        // in flight when the next upgrade makes it the old one.
        let fresh = (shape.transfers as u64 / 10).max(1);
        if !load.served_more(shape.settle).await
            || !load.started_more(fresh).await
        {
            failure = Some(format!("upgrade {i}: the load stalled after it"));
            break;
        }
    }
    let took = started.elapsed();
    let (connects, transfers) = load.finish().await?;
    let exits = collect(old_ones).await?;
    let exited_0 = exits.iter().filter(|(_, code)| *code == Some(0)).count();
    let not_0: Vec<String> = exits
        .iter()
        .filter(|(_, code)| *code != Some(0))
        .map(|(i, code)| {
            let how = code.map_or("no exit in 40 s".to_owned(), |c| {
                format!("status {c}")
            });
            format!("old process of upgrade {i}: {how}")
        })
        .collect();
    report.figure(format!(
        "{upgraded} of {count} upgrades in {}, at least {} transfers in \
         flight at each, {} of them started on the process it replaced; \
         {exited_0} old processes exited 0",
        show(took),
        if fewest_in_flight == usize::MAX {
            0
        } else {
            fewest_in_flight
        },
        (shape.transfers / 10).max(1)
    ));
    report_load(report, connects, transfers, "during the upgrades");
    report.check(
        upgraded == count,
        format!(
            "all {count} upgrades took over the listener at {addr}{}",
            failure.map_or(String::new(), |f| format!(" ({f})"))
        ),
    );
    report.check(
        upgraded > 0 && exited_0 == upgraded,
        format!(
            "each old process drained and exited 0{}",
            if not_0.is_empty() {
                String::new()
            } else {
                format!(" ({})", not_0.join("; "))
            }
        ),
    );
    Ok(())
}
// ANCHOR_END: upgrades

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> Vec<SocketAddr> {
        (1..=3)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], 4000 + i)))
            .collect()
    }

    #[test]
    fn the_two_files_differ_in_algorithm_weights_and_backends() {
        let a = lb_file(Version::A, &addrs(), true, None);
        let b = lb_file(Version::B, &addrs(), true, None);
        assert!(a.contains("weighted-round-robin") && b.contains("least-conn"));
        assert!(a.contains("127.0.0.1:4001") && !a.contains("127.0.0.1:4003"));
        assert!(!b.contains("127.0.0.1:4001") && b.contains("127.0.0.1:4003"));
        assert!(
            a.contains("id = \"b2\"\naddress = \"127.0.0.1:4002\"\nweight = 3")
        );
        assert!(
            b.contains("id = \"b2\"\naddress = \"127.0.0.1:4002\"\nweight = 2")
        );
        assert_eq!(Version::A.left_out(), 2);
        assert_eq!(Version::B.left_out(), 0);
    }

    #[test]
    fn the_broken_file_has_rise_0_on_its_known_line() {
        let socket = Path::new("/tmp/x/upgrade.sock");
        let broken = lb_file(Version::Broken, &addrs(), true, Some(socket));
        let line = broken.lines().nth(RISE_LINE - 1).expect("that line");
        assert_eq!(line, "rise = 0");
        let good = lb_file(Version::A, &addrs(), false, None);
        assert_eq!(good.lines().nth(RISE_LINE - 1), Some("rise = 2"));
        assert!(broken.contains("[upgrade]\nsocket = '/tmp/x/upgrade.sock'"));
        let error = "/tmp/a/lb.toml:8: health.rise: must be at least 1";
        assert!(names_the_fault(error));
        assert!(!names_the_fault("/tmp/a/lb.toml:9: timeouts: x"));
    }

    #[test]
    fn a_reload_outcome_is_read_from_the_new_part_of_the_log() {
        let log = "INFO reloaded: weights\nWARN reload refused: x:8: y\n";
        let first = log.find("WARN").expect("second line");
        assert!(matches!(reload_outcome(log, 0), Some(Answer::Applied(_))));
        let refused = reload_outcome(log, first);
        assert!(
            matches!(refused, Some(Answer::Refused(ref e)) if e.ends_with("x:8: y"))
        );
        assert!(reload_outcome(log, log.len()).is_none());
    }

    #[test]
    fn an_answer_splits_into_status_and_body() {
        let answer = "HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n\
                      {\"error\":1}";
        assert_eq!(
            parse_answer(answer),
            Some((400, "{\"error\":1}".to_owned()))
        );
        assert_eq!(parse_answer("garbage"), None);
    }

    #[test]
    fn a_tally_sorts_each_ending() {
        let mut tally = Tally::default();
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        tally.count(Err(refused), 1);
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        tally.count(Err(reset), 1);
        assert_eq!(
            tally,
            Tally {
                ok: 0,
                refused: 1,
                reset: 1,
                cut: 0
            }
        );
        assert_eq!(tally.failed(), 2);
    }
}
