//! What the benchmark reads from Linux's `/proc`: how busy the machine is,
//! the CPU time, memory and open files of a process and its children, and
//! which ports something listens on. Each reading is a small parser over
//! the file's text (unit-tested) and a function that reads the file. The
//! fault suite (`fault-suite`) measures its balancer through the
//! single-process readings ([`process_stat`], [`process_rss_kib`],
//! [`process_fd_count`]), which say why when they fail.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::time::Duration;

/// Share of all cores busy between two readings of `/proc/stat`'s first
/// line ("cpu  user nice system idle iowait irq softirq steal ..."), 0 to 1.
pub fn busy_between(before: &str, after: &str) -> f64 {
    let numbers = |line: &str| -> Vec<u64> {
        line.split_whitespace()
            .skip(1)
            .take(8)
            .map(|n| n.parse().unwrap_or(0))
            .collect()
    };
    let (a, b) = (numbers(before), numbers(after));
    let delta = |i: usize| {
        b.get(i)
            .copied()
            .unwrap_or(0)
            .saturating_sub(a.get(i).copied().unwrap_or(0))
    };
    let total: u64 = (0..a.len().min(b.len())).map(delta).sum();
    // idle and iowait
    let idle = delta(3) + delta(4);
    if total == 0 {
        0.0
    } else {
        (total - idle.min(total)) as f64 / total as f64
    }
}

fn proc_stat_line() -> String {
    fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|text| text.lines().next().map(str::to_owned))
        .unwrap_or_default()
}

/// Share of all cores busy over `sample`.
pub fn machine_busy(sample: Duration) -> f64 {
    let before = proc_stat_line();
    std::thread::sleep(sample);
    busy_between(&before, &proc_stat_line())
}

/// Clock ticks spent busy (all but idle and iowait) in `/proc/stat`'s
/// first line, summed over the cores. The guest columns are left out:
/// `user` and `nice` already hold them.
pub fn parse_busy_ticks(line: &str) -> u64 {
    line.split_whitespace()
        .skip(1)
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, n)| n.parse::<u64>().unwrap_or(0))
        .sum()
}

/// User and system time of a process and of its children that have
/// ended and been waited for (`utime stime cutime cstime`), in ticks.
pub fn parse_own_and_reaped_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    (11..=14).map(|i| fields.get(i)?.parse::<u64>().ok()).sum()
}

/// The work of other people during a load run: the machine's busy time
/// less what the benchmark's own processes used (this program, its
/// children that ended meanwhile, such as wrk, and the processes it
/// watches: the contender and the backends). A build starting in the
/// middle of a run shows here, where the check before the run missed it.
pub struct OtherWork {
    started: std::time::Instant,
    busy_ticks: u64,
    own_ticks: u64,
    pids: Vec<u32>,
    pids_ns: u64,
}

fn own_ticks() -> u64 {
    fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| parse_own_and_reaped_ticks(&stat))
        .unwrap_or(0)
}

impl OtherWork {
    /// Starts counting; `pids` (and their children) are the
    /// benchmark's own.
    pub fn start(pids: &[u32]) -> OtherWork {
        OtherWork {
            busy_ticks: parse_busy_ticks(&proc_stat_line()),
            own_ticks: own_ticks(),
            pids_ns: pids.iter().map(|&pid| cpu_ns(pid)).sum(),
            pids: pids.to_vec(),
            started: std::time::Instant::now(),
        }
    }

    /// Cores kept busy by other work since the start, on average (0 to
    /// the number of cores; a little below 0 is the clock ticks'
    /// rounding).
    pub fn cores(&self) -> f64 {
        let seconds = self.started.elapsed().as_secs_f64();
        let tick = 1.0 / clock_ticks_per_second() as f64;
        let busy = parse_busy_ticks(&proc_stat_line())
            .saturating_sub(self.busy_ticks) as f64
            * tick;
        let own = own_ticks().saturating_sub(self.own_ticks) as f64 * tick;
        let watched = self
            .pids
            .iter()
            .map(|&pid| cpu_ns(pid))
            .sum::<u64>()
            .saturating_sub(self.pids_ns) as f64
            / 1e9;
        if seconds <= 0.0 {
            return 0.0;
        }
        (busy - own - watched) / seconds
    }
}

/// The fields of `/proc/PID/stat` the benchmark needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub ppid: u32,
    /// User and system time, in clock ticks.
    pub cpu_ticks: u64,
}

/// Parses `/proc/PID/stat`. The command name is in brackets and may hold
/// spaces and brackets itself, so fields are counted after the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) ... utime(11) stime(12).
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        cpu_ticks: fields.get(11)?.parse::<u64>().ok()?
            + fields.get(12)?.parse::<u64>().ok()?,
    })
}

/// `/proc/PID/stat` of `pid` alone, or why it could not be read.
pub fn process_stat(pid: u32) -> io::Result<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&text)
        .ok_or_else(|| invalid(format!("/proc/{pid}/stat is cut short")))
}

pub fn stat(pid: u32) -> Option<ProcStat> {
    process_stat(pid).ok()
}

/// A `/proc` file that was read but did not hold what it should.
fn invalid(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

/// True while `pid` runs (a zombie, finished but not yet reaped, does not).
pub fn running(pid: u32) -> bool {
    stat(pid).is_some_and(|stat| stat.state != 'Z')
}

/// `pid` and its direct children (nginx's workers, say).
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut tree = vec![pid];
    let Ok(entries) = fs::read_dir("/proc") else {
        return tree;
    };
    for entry in entries.flatten() {
        let Some(child) =
            entry.file_name().to_str().and_then(|n| n.parse().ok())
        else {
            continue;
        };
        if stat(child).is_some_and(|stat| stat.ppid == pid) {
            tree.push(child);
        }
    }
    tree
}

/// User and system time of `pid` and its children, in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    process_tree(pid)
        .into_iter()
        .filter_map(stat)
        .map(|stat| stat.cpu_ticks)
        .sum()
}

/// Time `pid` and its children have spent on a CPU, in nanoseconds: the
/// first field of `/proc/PID/task/TID/schedstat`, summed over their
/// threads. The scheduler counts it to the nanosecond, where the user
/// and system times of `/proc/PID/stat` move in whole clock ticks (10 ms
/// at 100 per second), which is 2% of a half-second run. (A thread that
/// has ended is no longer counted: the balancers measured keep theirs.)
pub fn cpu_ns(pid: u32) -> u64 {
    process_tree(pid).into_iter().map(process_cpu_ns).sum()
}

fn process_cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| {
            let schedstat = fs::read_to_string(task.path().join("schedstat"));
            parse_schedstat_ns(&schedstat.ok()?)
        })
        .sum()
}

/// The time on a CPU in a `schedstat` line: `RUN_NS WAIT_NS SLICES`.
pub fn parse_schedstat_ns(schedstat: &str) -> Option<u64> {
    schedstat.split_whitespace().next()?.parse().ok()
}

/// `VmRSS` from `/proc/PID/status`, in KiB.
pub fn parse_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resident memory of `pid` alone, in KiB (`VmRSS`), or why it could not
/// be read.
pub fn process_rss_kib(pid: u32) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_rss_kib(&status)
        .ok_or_else(|| invalid(format!("no VmRSS in /proc/{pid}/status")))
}

/// Resident memory of `pid` and its children, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    process_tree(pid)
        .into_iter()
        .filter_map(|pid| process_rss_kib(pid).ok())
        .sum()
}

/// Open file descriptors of `pid` alone (the entries of `/proc/PID/fd`),
/// or why they could not be counted.
pub fn process_fd_count(pid: u32) -> io::Result<usize> {
    Ok(fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// Open file descriptors of `pid` and its children.
pub fn fd_count(pid: u32) -> usize {
    process_tree(pid)
        .into_iter()
        .filter_map(|pid| process_fd_count(pid).ok())
        .sum()
}

/// The local ports in state LISTEN (0A) in a `/proc/net/tcp` or `tcp6`
/// table ("sl local_address rem_address st ...", addresses as HEX:PORT).
pub fn parse_listening(table: &str) -> HashSet<u16> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(3) != Some(&"0A") {
                return None;
            }
            let port = fields.get(1)?.rsplit(':').next()?;
            u16::from_str_radix(port, 16).ok()
        })
        .collect()
}

/// True if something listens on `port` (any address).
pub fn is_listening(port: u16) -> bool {
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
        fs::read_to_string(table)
            .is_ok_and(|text| parse_listening(&text).contains(&port))
    })
}

/// Compilers and build tools running now (their names), to say in the
/// report that a build shared the machine.
pub fn builds_running() -> Vec<String> {
    const BUILDS: [&str; 7] = [
        "cargo",
        "rustc",
        "cc",
        "cc1",
        "ld",
        "ld.lld",
        "clippy-driver",
    ];
    let mut seen: Vec<String> = fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| fs::read_to_string(entry.path().join("comm")).ok())
        .map(|comm| comm.trim().to_owned())
        .filter(|comm| BUILDS.contains(&comm.as_str()))
        .collect();
    seen.sort();
    seen.dedup();
    seen
}

/// The operating system's clock tick: CPU times in `/proc` count these.
pub fn clock_ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second()
}

/// Raises this process's open-file limit to the hard limit (what its
/// children inherit) and returns it.
pub fn raise_open_files() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.maximum != limit.current {
        limit.current = limit.maximum;
        // Keeping the lower limit is fine: the caller checks the result.
        let _ = setrlimit(Resource::Nofile, limit);
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// The processor's name from `/proc/cpuinfo`.
pub fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, name)| name.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown processor".into())
}

pub fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|text| text.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedstat_gives_the_time_on_a_cpu_in_nanoseconds() {
        assert_eq!(
            parse_schedstat_ns("1234567890 55 77\n"),
            Some(1_234_567_890)
        );
        assert_eq!(parse_schedstat_ns(""), None);
        // This process has run: its count is above zero.
        assert!(cpu_ns(std::process::id()) > 0);
        // And this thread's grows as it works. (The process's sum may
        // not: the other tests' threads end meanwhile, and take their
        // time with them.)
        let mine = || {
            let line = fs::read_to_string("/proc/thread-self/schedstat");
            parse_schedstat_ns(&line.expect("schedstat is readable"))
                .expect("schedstat parses")
        };
        let before = mine();
        let spin: u64 = (0..2_000_000u64).fold(0, |a, b| a ^ b.wrapping_mul(7));
        assert!(spin != 1);
        assert!(mine() > before);
    }

    #[test]
    fn busy_ticks_and_own_ticks() {
        // user nice system idle iowait irq softirq steal guest guest_nice
        let line = "cpu  100 5 50 700 20 1 30 2 9 9";
        assert_eq!(parse_busy_ticks(line), 100 + 5 + 50 + 1 + 30 + 2);
        let stat =
            "42 (wrk (x)) S 1 42 42 0 -1 4194304 10 0 0 0 7 5 300 200 20";
        assert_eq!(parse_own_and_reaped_ticks(stat), Some(512));
        assert_eq!(parse_own_and_reaped_ticks("42 (x) S 1 2"), None);
        // This process alone, idle for a moment: little other work is
        // possible to tell from none, but the figure is a finite number.
        let other = OtherWork::start(&[std::process::id()]);
        std::thread::sleep(Duration::from_millis(50));
        assert!(other.cores().is_finite());
    }

    #[test]
    fn busy_counts_everything_but_idle_and_iowait() {
        let before = "cpu  100 0 100 700 100 0 0 0 0 0";
        // +150 user, +50 system, +150 idle, +50 iowait: 200 of 400 busy.
        let after = "cpu  250 0 150 850 150 0 0 0 0 0";
        assert_eq!(busy_between(before, after), 0.5);
        assert_eq!(busy_between(before, before), 0.0);
    }

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let text = "4242 (nginx: worker (x) ) S 4241 4241 4241 0 -1 4194624 \
                    900 0 0 0 37 12 0 0 20 0 1 0 1234 0 0";
        assert_eq!(
            parse_stat(text),
            Some(ProcStat {
                state: 'S',
                ppid: 4241,
                cpu_ticks: 49
            })
        );
        assert_eq!(parse_stat("12 (cut short) S 1"), None);
        // A `)` inside the name does not end it: the last one does.
        let text = "42 (a b) c) S 1 42 42 0 -1 4194304 10 0 0 0 7 5 0 0";
        assert_eq!(parse_stat(text).map(|stat| stat.cpu_ticks), Some(12));
    }

    #[test]
    fn rss_is_read_from_the_vmrss_line() {
        let status = "Name:\tlb\nVmPeak:\t  9000 kB\nVmRSS:\t    3528 kB\n";
        assert_eq!(parse_rss_kib(status), Some(3528));
        assert_eq!(parse_rss_kib("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn only_listening_sockets_count() {
        let table = "  sl  local_address rem_address   st tx_queue ...\n\
            0: 0100007F:4E21 00000000:0000 0A 00000000:00000000\n\
            1: 0100007F:1F90 0100007F:D431 01 00000000:00000000\n";
        assert_eq!(parse_listening(table), HashSet::from([20001]));
    }

    #[test]
    fn this_process_is_seen_running_and_using_cpu() {
        let me = std::process::id();
        assert!(running(me));
        assert!(rss_kib(me) > 0);
        assert!(fd_count(me) >= 3);
        assert!(process_rss_kib(me).expect("readable") > 0);
        assert!(process_fd_count(me).expect("readable") >= 3);
        process_stat(me).expect("readable");
        assert!(process_stat(u32::MAX).is_err());
        assert!(clock_ticks_per_second() > 0);
        // This process's own ticks: `cpu_ticks` also counts its children,
        // and the other tests of this binary start and end some, so that
        // sum can go down between two readings.
        let own = || stat(me).expect("this process has a stat").cpu_ticks;
        let before = own();
        let started = std::time::Instant::now();
        let mut x = 0u64;
        // Burn CPU until a tick shows, for 5 s at most.
        while own() == before && started.elapsed().as_secs() < 5 {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        assert!(own() > before);
    }
}
