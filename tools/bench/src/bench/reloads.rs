//! The "reloads under load" workload: how many client connections a
//! balancer loses while its configuration is changed under it, and, for
//! `lb`, while its binary is upgraded.
//!
//! The load is the lab's dummy servers behind the balancer and, on
//! threads of this program, clients that each make one new connection
//! after another (one small `GET /bytes/N` each) and long transfers kept
//! in flight (a large `/bytes/N` read at a steady pace), every byte
//! checked against the lab's pattern. Meanwhile the balancer is reloaded
//! again and again between two configurations that differ in weights, in
//! the algorithm, and in one backend added and one removed:
//!
//! - `lb`: the file rewritten, then SIGHUP; done once its log says
//!   `reloaded:`;
//! - HAProxy with `-sf`: a new `haproxy -f FILE -sf OLDPID` binds its own
//!   socket (SO_REUSEPORT) and tells the old one to stop listening and
//!   finish its connections;
//! - HAProxy's seamless reload: the same with `-x SOCKET`, the old
//!   process's stats socket with `expose-fd listeners`, so that the new
//!   one takes over the listening socket instead of binding another;
//! - `lb --upgrade`: a new `lb` takes over the listener through
//!   `[upgrade] socket`; the old one drains and must exit 0.
//!
//! A HAProxy reload is done once the new process holds a listening
//! socket on the port and the old one holds none (`ss`, then `/proc`).
//! Every connection that was refused, reset, or cut short counts as
//! failed.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::plan::{Contender, Launch, Mode, Set};
use super::{Bench, log};

/// What one kind of client saw, counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Every byte, the pattern's, then a clean end.
    pub ok: u64,
    /// `connect()` refused.
    pub refused: u64,
    /// A reset, at connect, while sending or while reading.
    pub reset: u64,
    /// Any other end: short, not the pattern, not 200, a timeout.
    pub cut: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.ok += other.ok;
        self.refused += other.refused;
        self.reset += other.reset;
        self.cut += other.cut;
    }

    pub fn failed(&self) -> u64 {
        self.refused + self.reset + self.cut
    }
}

/// How one connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    Refused,
    Reset,
    Cut,
}

impl Tally {
    fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Refused => self.refused += 1,
            Outcome::Reset => self.reset += 1,
            Outcome::Cut => self.cut += 1,
        }
    }
}

/// The outcome an I/O error stands for.
fn outcome_of(err: &io::Error) -> Outcome {
    match err.kind() {
        io::ErrorKind::ConnectionRefused => Outcome::Refused,
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => Outcome::Reset,
        _ => Outcome::Cut,
    }
}

/// The shape of the load and of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Reloads (and upgrades) made.
    pub reloads: usize,
    pub upgrades: usize,
    /// Clients making one new connection after another.
    pub connectors: usize,
    /// Bytes each of their requests asks for.
    pub request: u64,
    /// Long transfers in flight, each `transfer` bytes read at `rate`
    /// bytes a second.
    pub transfers: usize,
    pub transfer: u64,
    pub rate: u64,
    /// New connections served after each reload before the next.
    pub settle: u64,
}

impl Shape {
    pub fn of(mode: Mode) -> Shape {
        let full = mode == Mode::Full;
        let pick = |quick: usize, full_size: usize| {
            if full { full_size } else { quick }
        };
        Shape {
            reloads: pick(10, 100),
            upgrades: pick(3, 20),
            connectors: pick(4, 16),
            request: 4 * 1024,
            transfers: pick(10, 100),
            transfer: (pick(1, 4) as u64) << 20,
            rate: 1 << 20,
            settle: pick(10, 25) as u64,
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{} clients each making one new connection after another (one \
             GET of {} KiB each) and {} transfers in flight (a GET of {} \
             MiB each, read at {} MiB/s), every byte checked",
            self.connectors,
            self.request >> 10,
            self.transfers,
            self.transfer >> 20,
            self.rate >> 20
        )
    }
}

/// What one contender's run under reloads came to.
#[derive(Clone, Debug)]
pub struct ReloadRun {
    /// The contender's label and how it was changed.
    pub label: String,
    pub how: String,
    /// Reloads (or upgrades) asked for, and those seen to be done.
    pub asked: usize,
    pub done: usize,
    /// How long the changes took, all together.
    pub seconds: f64,
    pub connects: Tally,
    pub transfers: Tally,
    /// Anything else to say: old processes that did not exit 0, a
    /// reload not seen to be done.
    pub note: String,
}

impl ReloadRun {
    pub fn failed(&self) -> u64 {
        self.connects.failed() + self.transfers.failed()
    }
}

// ANCHOR: pattern
/// The lab's pattern (`lab_common::pattern::byte_at`): the byte at
/// `offset` of every `/bytes/N` body is `offset % 251`. One block of it,
/// compared slice by slice.
const PERIOD: usize = 251;

fn block() -> &'static [u8] {
    static BLOCK: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BLOCK
        .get_or_init(|| (0..PERIOD * 262).map(|i| (i % PERIOD) as u8).collect())
}

/// Whether `bytes`, found at `offset` of a body, are the pattern's.
fn matches(offset: u64, bytes: &[u8]) -> bool {
    let block = block();
    let mut at = (offset % PERIOD as u64) as usize;
    let mut rest = bytes;
    while !rest.is_empty() {
        let len = rest.len().min(block.len() - at);
        if rest[..len] != block[at..at + len] {
            return false;
        }
        rest = &rest[len..];
        at = (at + len) % PERIOD;
    }
    true
}
// ANCHOR_END: pattern

/// The transfers' counts: connected so far, and connected now.
#[derive(Default)]
struct Counts {
    started: AtomicU64,
    in_flight: AtomicUsize,
}

/// Counts one transfer started, and in flight while it lives.
struct InFlight<'a>(Option<&'a Counts>);

impl<'a> InFlight<'a> {
    fn new(counts: Option<&'a Counts>) -> InFlight<'a> {
        if let Some(counts) = counts {
            counts.started.fetch_add(1, Ordering::Relaxed);
            counts.in_flight.fetch_add(1, Ordering::Relaxed);
        }
        InFlight(counts)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(counts) = self.0 {
            counts.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// One `GET /bytes/n` over a new connection to `addr`, read at `rate`
/// bytes a second if given, within `limit`; counted in `counts` once
/// connected.
fn fetch(
    addr: SocketAddr,
    n: u64,
    rate: Option<u64>,
    limit: Duration,
    counts: Option<&Counts>,
) -> Outcome {
    let mut tcp = match TcpStream::connect_timeout(&addr, limit) {
        Ok(tcp) => tcp,
        Err(err) => return outcome_of(&err),
    };
    let _counted = InFlight::new(counts);
    let request = format!(
        "GET /bytes/{n} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    let started = Instant::now();
    if let Err(err) = tcp
        .set_read_timeout(Some(Duration::from_secs(10)))
        .and_then(|()| tcp.write_all(request.as_bytes()))
    {
        return outcome_of(&err);
    }
    let mut buffer = vec![0u8; 64 * 1024];
    let mut head = Vec::new();
    let mut body = 0u64;
    let mut length = None;
    loop {
        if started.elapsed() > limit {
            return Outcome::Cut;
        }
        let read = match tcp.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) => return outcome_of(&err),
        };
        let mut got = &buffer[..read];
        if length.is_none() {
            head.extend_from_slice(got);
            let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n")
            else {
                if head.len() > 16 * 1024 {
                    return Outcome::Cut;
                }
                continue;
            };
            let Some(n) = content_length(&head[..end]) else {
                return Outcome::Cut;
            };
            length = Some(n);
            let rest = head.split_off(end + 4);
            if !matches(0, &rest) {
                return Outcome::Cut;
            }
            body = rest.len() as u64;
            got = &[];
        }
        if !matches(body, got) {
            return Outcome::Cut;
        }
        body += got.len() as u64;
        if let Some(rate) = rate.filter(|&r| r > 0) {
            // Not before these bytes are due at `rate`: a slow reader.
            let due = Duration::from_secs_f64(body as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait.min(limit));
            }
        }
    }
    if length == Some(n) && body == n {
        Outcome::Ok
    } else {
        Outcome::Cut
    }
}

/// The body's length, from a 200 answer's head; `None` for another
/// status or no length.
fn content_length(head: &[u8]) -> Option<u64> {
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines();
    let status = lines.next()?;
    if status.split_whitespace().nth(1) != Some("200") {
        return None;
    }
    lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if name.trim().eq_ignore_ascii_case("content-length") {
            value.trim().parse().ok()
        } else {
            None
        }
    })
}

/// No load thread runs longer than this, whatever happens.
const LOAD_LIMIT: Duration = Duration::from_secs(900);

/// The steady load, running on threads of its own.
struct Load {
    stop: Arc<AtomicBool>,
    connects: Vec<JoinHandle<Tally>>,
    transfers: Vec<JoinHandle<Tally>>,
    served: Arc<AtomicU64>,
    counts: Arc<Counts>,
}

impl Load {
    fn start(port: u16, shape: Shape) -> Load {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let counts = Arc::new(Counts::default());
        let connects = (0..shape.connectors)
            .map(|_| {
                let (stop, served) = (stop.clone(), served.clone());
                std::thread::spawn(move || {
                    let started = Instant::now();
                    let mut tally = Tally::default();
                    while !stop.load(Ordering::Relaxed)
                        && started.elapsed() < LOAD_LIMIT
                    {
                        let limit = Duration::from_secs(10);
                        let outcome =
                            fetch(addr, shape.request, None, limit, None);
                        if outcome == Outcome::Ok {
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                        tally.count(outcome);
                    }
                    tally
                })
            })
            .collect();
        let transfers = (0..shape.transfers)
            .map(|i| {
                let (stop, counts) = (stop.clone(), counts.clone());
                // The transfers start spread over one transfer's time, so
                // that from then on some start (and end) at every moment.
                let paced = shape.transfer / shape.rate.max(1);
                let offset = Duration::from_secs(paced)
                    .mul_f64(i as f64 / shape.transfers as f64);
                std::thread::spawn(move || {
                    let started = Instant::now();
                    std::thread::sleep(offset);
                    let mut tally = Tally::default();
                    let limit = Duration::from_secs(4 * paced + 10);
                    while !stop.load(Ordering::Relaxed)
                        && started.elapsed() < LOAD_LIMIT
                    {
                        let (n, rate) = (shape.transfer, Some(shape.rate));
                        let outcome =
                            fetch(addr, n, rate, limit, Some(&counts));
                        tally.count(outcome);
                    }
                    tally
                })
            })
            .collect();
        Load {
            stop,
            connects,
            transfers,
            served,
            counts,
        }
    }

    /// Waits (30 s at most) until `more` new connections have been served
    /// since the call; whether they were.
    fn served_more(&self, more: u64) -> bool {
        let target = self.served.load(Ordering::Relaxed) + more;
        poll(Duration::from_secs(30), || {
            self.served.load(Ordering::Relaxed) >= target
        })
    }

    /// Waits (30 s at most) until `more` transfers have started since the
    /// call; whether they did.
    fn started_more(&self, more: u64) -> bool {
        let target = self.counts.started.load(Ordering::Relaxed) + more;
        poll(Duration::from_secs(30), || {
            self.counts.started.load(Ordering::Relaxed) >= target
        })
    }

    fn in_flight(&self) -> usize {
        self.counts.in_flight.load(Ordering::Relaxed)
    }

    /// Stops the clients once each has finished what it is doing, and
    /// counts what they saw: new connections, then transfers.
    fn finish(self) -> (Tally, Tally) {
        self.stop.store(true, Ordering::Relaxed);
        let total = |handles: Vec<JoinHandle<Tally>>| {
            let mut sum = Tally::default();
            for handle in handles {
                // A thread that panicked lost its count: one cut.
                sum.add(handle.join().unwrap_or(Tally {
                    cut: 1,
                    ..Tally::default()
                }));
            }
            sum
        };
        let connects = total(self.connects);
        (connects, total(self.transfers))
    }
}

/// Calls `done` every 5 ms until it says yes (true) or `limit` passes
/// (false).
fn poll(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The inodes of the sockets listening on `port`, from `ss` (iproute2),
/// which asks the kernel for listeners alone: `/proc/net/tcp` lists
/// every connection, and after a few hundred thousand of them in
/// TIME_WAIT it takes longer to read than a reload takes.
fn listening_inodes(port: u16) -> HashSet<u64> {
    let filter = format!("sport = :{port}");
    Command::new("ss")
        .args(["-Hltne", &filter])
        .output()
        .map(|out| parse_inodes(&String::from_utf8_lossy(&out.stdout)))
        .unwrap_or_default()
}

/// The `ino:N` of each line of `ss -e`.
fn parse_inodes(table: &str) -> HashSet<u64> {
    table
        .split_whitespace()
        .filter_map(|word| word.strip_prefix("ino:")?.parse().ok())
        .collect()
}

/// Whether `pid` holds one of the sockets `inodes`.
fn holds_socket(pid: u32, inodes: &HashSet<u64>) -> bool {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        fs::read_link(fd.path()).is_ok_and(|target| {
            let target = target.to_string_lossy();
            target
                .strip_prefix("socket:[")
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|inode| inode.parse().ok())
                .is_some_and(|inode| inodes.contains(&inode))
        })
    })
}

/// What a file holds from byte `from` on, and where it ends.
fn read_from(path: &Path, from: u64) -> (String, u64) {
    let Ok(mut file) = fs::File::open(path) else {
        return (String::new(), from);
    };
    let mut text = Vec::new();
    if file.seek(SeekFrom::Start(from)).is_err()
        || file.read_to_end(&mut text).is_err()
    {
        return (String::new(), from);
    }
    let end = from + text.len() as u64;
    (String::from_utf8_lossy(&text).into_owned(), end)
}

/// The two configurations reloads alternate between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// Weighted round robin over backends 1 (weight 1) and 2 (weight 3).
    A,
    /// Least connections over backends 2 (weight 2) and 3 (weight 1).
    B,
}

impl Version {
    fn other(self) -> Version {
        match self {
            Version::A => Version::B,
            Version::B => Version::A,
        }
    }

    /// The backends (index into the three, weight) it lists.
    pub fn backends(self) -> [(usize, u32); 2] {
        match self {
            Version::A => [(0, 1), (1, 3)],
            Version::B => [(1, 2), (2, 1)],
        }
    }
}

/// How a contender is changed under load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum How {
    LbSignal,
    HaproxySf,
    HaproxySeamless,
    LbUpgrade,
}

impl How {
    fn describe(self) -> &'static str {
        match self {
            How::LbSignal => "reload: file rewritten, SIGHUP",
            How::HaproxySf => "reload: new process, `-sf OLDPID`",
            How::HaproxySeamless => {
                "seamless reload: `-x` stats socket (`expose-fd listeners`) \
                 + `-sf OLDPID`"
            }
            How::LbUpgrade => "upgrade: `lb --upgrade`, a new process",
        }
    }
}

impl Bench {
    /// The reloads workload for every contender that can take part (lb
    /// and HAProxy), on the dummy servers, which it starts and stops.
    pub(super) fn run_reloads(
        &mut self,
        dummy_servers: &Path,
    ) -> Result<(), String> {
        let shape = Shape::of(self.plan.mode);
        let hows: Vec<(Contender, How)> = self
            .contenders
            .iter()
            .flat_map(|c| {
                // The first configuration of each only.
                let hows: &[How] = match (&c.launch, c.variant()) {
                    (Launch::Lb(_), false) => &[How::LbSignal, How::LbUpgrade],
                    (Launch::Haproxy, false) => {
                        &[How::HaproxySf, How::HaproxySeamless]
                    }
                    _ => &[],
                };
                hows.iter().map(|&how| (c.clone(), how)).collect::<Vec<_>>()
            })
            .collect();
        if hows.is_empty() {
            return Ok(());
        }
        log(&format!(
            "reloads under load: {} reloads, {} upgrades; {}",
            shape.reloads,
            shape.upgrades,
            shape.describe()
        ));
        self.start_backends(Set::Dummy, dummy_servers)?;
        for (contender, how) in hows {
            self.wait_quiet();
            let run = self.reload_run(&contender, how, shape);
            self.procs
                .stop_matching(&format!("reloads-{}-", how_key(how)));
            let run = run?;
            log(&format!(
                "  {} ({}): {} of {} done; new connections {:?}; transfers \
                 {:?}{}",
                run.label,
                run.how,
                run.done,
                run.asked,
                run.connects,
                run.transfers,
                if run.note.is_empty() {
                    String::new()
                } else {
                    format!("; {}", run.note)
                }
            ));
            self.reloads.push(run);
        }
        self.reload_shape = Some(shape);
        self.procs.stop("backend-dummy");
        Ok(())
    }

    /// One contender, changed `shape.reloads` (or `upgrades`) times
    /// under the load.
    fn reload_run(
        &mut self,
        contender: &Contender,
        how: How,
        shape: Shape,
    ) -> Result<ReloadRun, String> {
        let port = self.ports.contender(contender, Set::Dummy);
        let backends = self.ports.backend_addresses(Set::Dummy);
        let key = how_key(how);
        let socket = self.work.join(format!("{key}.sock"));
        let _ = fs::remove_file(&socket);
        let file_name = match how {
            How::LbSignal | How::LbUpgrade => format!("{key}.toml"),
            _ => format!("{key}.cfg"),
        };
        let text = |version| match how {
            How::LbSignal => {
                super::configs::lb_reload(port, &backends, version, None)
            }
            How::LbUpgrade => super::configs::lb_reload(
                port,
                &backends,
                version,
                Some(&socket),
            ),
            How::HaproxySf => super::configs::haproxy_reload(
                &self.machine(),
                port,
                &backends,
                version,
                None,
            ),
            How::HaproxySeamless => super::configs::haproxy_reload(
                &self.machine(),
                port,
                &backends,
                version,
                Some(&socket),
            ),
        };
        let first = text(Version::A);
        let others = text(Version::B);
        let file = self.write_config(&file_name, first.clone())?;
        let asked = match how {
            How::LbUpgrade => shape.upgrades,
            _ => shape.reloads,
        };
        let mut names = vec![format!("reloads-{key}-0")];
        let mut command =
            self.reload_command(contender, how, &file, &socket, None);
        self.procs.start(&names[0], &mut command)?;
        self.procs.wait_port(&names[0], port)?;
        let load = Load::start(port, shape);
        let going = poll(Duration::from_secs(30), || {
            load.in_flight() >= shape.transfers
        }) && load.served_more(shape.settle);
        if !going {
            let _ = load.finish();
            return Err(format!(
                "{} ({key}): the load did not get going in 30 s",
                contender.label
            ));
        }
        let mut version = Version::A;
        let mut done = 0;
        let mut notes = Vec::new();
        let mut log_offset = 0;
        let mut exits = BTreeMap::new();
        let started = Instant::now();
        for i in 1..=asked {
            version = version.other();
            let text = if version == Version::A {
                &first
            } else {
                &others
            };
            write_whole(&file, text)?;
            let current = names.last().expect("one at least").clone();
            let applied = match how {
                How::LbSignal => self.reload_lb(&current, &mut log_offset),
                How::HaproxySf | How::HaproxySeamless | How::LbUpgrade => {
                    let name = format!("reloads-{key}-{i}");
                    let old = self.procs.pid(&current);
                    let mut command = self
                        .reload_command(contender, how, &file, &socket, old);
                    self.procs.start(&name, &mut command)?;
                    names.push(name.clone());
                    self.took_over(how, &name, old, port)
                }
            };
            match applied {
                Ok(()) => done += 1,
                Err(why) => {
                    // The rest would fail alike, each after its wait.
                    notes.push(format!("{} {i}: {why}", noun(how)));
                    break;
                }
            }
            // Old processes that have finished, reaped as we go.
            for name in &names[..names.len() - 1] {
                if let Some(code) = self.procs.reap(name) {
                    exits.insert(name.clone(), code);
                }
            }
            // For an upgrade, transfers that start now reach the new
            // process and are still in flight when the next upgrade makes
            // it the old one.
            let fresh = (shape.transfers as u64 / 10).max(1);
            if !load.served_more(shape.settle)
                || (how == How::LbUpgrade && !load.started_more(fresh))
            {
                notes.push(format!("the load stalled after {} {i}", noun(how)));
                break;
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let (connects, transfers) = load.finish();
        // Every old process must finish its connections and exit (0).
        let limit = Duration::from_secs(60);
        let deadline = Instant::now() + limit;
        let olds = &names[..names.len() - 1];
        let mut still = 0;
        for name in olds {
            if exits.contains_key(name) {
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.procs.wait_exit(name, left) {
                Some(code) => {
                    exits.insert(name.clone(), code);
                }
                None => still += 1,
            }
        }
        if still > 0 {
            notes.push(format!(
                "{still} old processes still running 60 s after the load \
                 stopped"
            ));
        }
        let exited_0 = exits.values().filter(|code| **code == Some(0)).count();
        if how == How::LbUpgrade || exited_0 < exits.len() {
            notes.push(format!(
                "{exited_0} of {} old processes exited 0",
                olds.len()
            ));
        }
        Ok(ReloadRun {
            label: contender.label.clone(),
            how: how.describe().to_owned(),
            asked,
            done,
            seconds,
            connects,
            transfers,
            note: notes.join("; "),
        })
    }

    /// The command that starts the contender for `how` with `file`; with
    /// `old`, the one that replaces that process (HAProxy's seamless
    /// reload takes the listener from `socket`).
    fn reload_command(
        &self,
        contender: &Contender,
        how: How,
        file: &Path,
        socket: &Path,
        old: Option<u32>,
    ) -> Command {
        match (&contender.launch, how) {
            (Launch::Lb(binary), _) => {
                let mut command = Command::new(binary);
                // Info: the `reloaded:` line is what says a reload is
                // done.
                command.env("RUST_LOG", "info").arg("--config").arg(file);
                if old.is_some() {
                    command.arg("--upgrade");
                }
                command
            }
            _ => {
                let mut command = Command::new("haproxy");
                command.arg("-db").arg("-f").arg(file);
                if let Some(old) = old {
                    if how == How::HaproxySeamless {
                        command.arg("-x").arg(socket);
                    }
                    command.arg("-sf").arg(old.to_string());
                }
                command
            }
        }
    }

    /// SIGHUP to `lb` (process `name`), then its log's `reloaded:` line
    /// (10 s at most); the log is read from `offset` on.
    fn reload_lb(
        &mut self,
        name: &str,
        offset: &mut u64,
    ) -> Result<(), String> {
        let pid = self.procs.pid(name).ok_or("lb is not running")?;
        let target = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .ok_or("no pid")?;
        rustix::process::kill_process(target, rustix::process::Signal::HUP)
            .map_err(|err| format!("SIGHUP: {err}"))?;
        let path = self.procs.log_path(name);
        let mut outcome = None;
        poll(Duration::from_secs(10), || {
            let (text, end) = read_from(&path, *offset);
            // Only whole lines: the rest is read again next time.
            let whole = text.rfind('\n').map_or(0, |at| at + 1);
            for line in text[..whole].lines() {
                if line.contains("reload refused:") {
                    outcome = Some(Err(line.to_owned()));
                } else if line.contains("reloaded:") {
                    outcome = Some(Ok(()));
                }
            }
            *offset = end - (text.len() - whole) as u64;
            outcome.is_some()
        });
        outcome.unwrap_or_else(|| {
            Err("no `reloaded:` line in its log within 10 s".into())
        })
    }

    /// Waits (15 s at most) until process `new` has taken over: for
    /// `lb --upgrade`, its `listening on` line; for HAProxy, it holds a
    /// socket listening on `port` and `old` holds none.
    fn took_over(
        &mut self,
        how: How,
        new: &str,
        old: Option<u32>,
        port: u16,
    ) -> Result<(), String> {
        let limit = Duration::from_secs(15);
        if how == How::LbUpgrade {
            let out = self.procs.out_path(new);
            return self.procs.wait_for(new, "listening on", limit, |_| {
                fs::read_to_string(&out)
                    .is_ok_and(|text| text.contains("listening on "))
            });
        }
        let new_pid = self.procs.pid(new).ok_or("not started")?;
        self.procs
            .wait_for(new, "holding the listener", limit, |_| {
                let inodes = listening_inodes(port);
                holds_socket(new_pid, &inodes)
                    && old.is_none_or(|old| !holds_socket(old, &inodes))
            })
    }
}

/// A short key for `how`: process and file names.
fn how_key(how: How) -> &'static str {
    match how {
        How::LbSignal => "lb-sighup",
        How::HaproxySf => "haproxy-sf",
        How::HaproxySeamless => "haproxy-x",
        How::LbUpgrade => "lb-upgrade",
    }
}

fn noun(how: How) -> &'static str {
    if how == How::LbUpgrade {
        "upgrade"
    } else {
        "reload"
    }
}

/// Writes `text` to `path` whole: a reload never reads half a file.
fn write_whole(path: &Path, text: &str) -> Result<(), String> {
    let next = path.with_extension("next");
    fs::write(&next, text)
        .and_then(|()| fs::rename(&next, path))
        .map_err(|err| format!("{}: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_is_checked_across_block_edges() {
        let body: Vec<u8> = (0..300_000u64).map(|i| (i % 251) as u8).collect();
        assert!(matches(0, &body));
        assert!(matches(1000, &body[1000..]));
        assert!(!matches(1, &body));
        let mut bad = body.clone();
        bad[70_000] ^= 1;
        assert!(!matches(0, &bad));
    }

    #[test]
    fn only_a_200_with_a_length_is_read() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 42\r\nx: y";
        assert_eq!(content_length(ok), Some(42));
        let bad = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2";
        assert_eq!(content_length(bad), None);
        assert_eq!(content_length(b"HTTP/1.1 200 OK\r\n"), None);
    }

    #[test]
    fn listening_sockets_are_found_by_inode() {
        let table = "LISTEN 0 4096 127.0.0.1:23204 0.0.0.0:* ino:4238442 \
                     sk:1001 cgroup:/ <->\nLISTEN 0 4096 127.0.0.1:23204 \
                     0.0.0.0:* ino:17 sk:1 cgroup:/ <->\n";
        assert_eq!(parse_inodes(table), HashSet::from([4_238_442, 17]));
        assert!(parse_inodes("").is_empty());
    }

    #[test]
    fn a_reset_is_a_reset_and_a_refusal_a_refusal() {
        let kind = |k| outcome_of(&io::Error::from(k));
        assert_eq!(kind(io::ErrorKind::ConnectionRefused), Outcome::Refused);
        assert_eq!(kind(io::ErrorKind::ConnectionReset), Outcome::Reset);
        assert_eq!(kind(io::ErrorKind::BrokenPipe), Outcome::Reset);
        assert_eq!(kind(io::ErrorKind::TimedOut), Outcome::Cut);
    }
}
