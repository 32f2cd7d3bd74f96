//! What the suite measures, read from `/proc`: a process's open
//! descriptors, its resident memory and CPU time, and the kernel's count
//! of listen-queue overflows.
//!
//! Everything here reads a file and returns; nothing waits except
//! [`poll_until`], which is bounded, and [`Peak`], which samples on its
//! own thread until stopped.

use std::fs;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::time::Instant;

/// Open descriptors of process `pid`: the entries of `/proc/PID/fd`.
pub fn descriptors(pid: u32) -> io::Result<usize> {
    Ok(fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// Resident memory of process `pid` in KiB (`VmRSS` of
/// `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status_field(&status, "VmRSS:").ok_or_else(|| no_field("VmRSS"))
}

/// CPU time process `pid` has used, user and system, in clock ticks
/// ([`TICKS_PER_SECOND`]).
pub fn cpu_ticks(pid: u32) -> io::Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    stat_cpu_ticks(&stat).ok_or_else(|| no_field("utime/stime"))
}

/// The unit of [`cpu_ticks`]: Linux reports CPU times in `/proc` in
/// 1/100 s on every architecture (`USER_HZ`).
pub const TICKS_PER_SECOND: u64 = 100;

/// The kernel's count of connections dropped because a listen queue was
/// full (`TcpExt: ListenOverflows` in `/proc/net/netstat`), for the
/// whole network namespace.
pub fn listen_overflows() -> io::Result<u64> {
    let netstat = fs::read_to_string("/proc/net/netstat")?;
    netstat_value(&netstat, "TcpExt", "ListenOverflows")
        .ok_or_else(|| no_field("TcpExt ListenOverflows"))
}

fn no_field(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("no {name} in /proc"))
}

/// The number after `name` in a `/proc/PID/status` text.
fn status_field(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

/// utime + stime from a `/proc/PID/stat` line. The command name, in
/// parentheses, may hold spaces, so fields are counted from its closing
/// parenthesis: state is the first field after it, utime the 12th.
fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// A counter of `/proc/net/netstat`, which holds pairs of lines: one of
/// names, one of values, each starting with the section (`TcpExt:`).
fn netstat_value(netstat: &str, section: &str, name: &str) -> Option<u64> {
    let prefix = format!("{section}:");
    let mut lines = netstat.lines().filter(|line| line.starts_with(&prefix));
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let position = names.split_whitespace().position(|n| n == name);
        if let Some(position) = position {
            return values.split_whitespace().nth(position)?.parse().ok();
        }
    }
    None
}

/// Calls `done` every `every` until it returns true (then: how long that
/// took) or `limit` has passed (then: `None`).
pub async fn poll_until(
    limit: Duration,
    every: Duration,
    mut done: impl FnMut() -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if done() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= limit {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// The highest value of a measure of a process ([`descriptors`],
/// [`rss_kib`]), sampled every `every` on a thread of its own (so that a
/// busy runtime cannot make it miss a peak) until stopped.
pub struct Peak {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Peak {
    /// The most descriptors `pid` holds at once.
    pub fn descriptors(pid: u32, every: Duration) -> Peak {
        Peak::start(pid, every, |pid| descriptors(pid).map(|n| n as u64))
    }

    /// The most memory `pid` holds at once, in KiB.
    pub fn rss(pid: u32, every: Duration) -> Peak {
        Peak::start(pid, every, rss_kib)
    }

    fn start(
        pid: u32,
        every: Duration,
        measure: fn(u32) -> io::Result<u64>,
    ) -> Peak {
        let peak = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (peak, stop) = (peak.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(value) = measure(pid) {
                        peak.fetch_max(value, Ordering::Relaxed);
                    }
                    std::thread::sleep(every);
                }
            })
        };
        Peak {
            peak,
            stop,
            thread: Some(thread),
        }
    }

    /// The highest value so far.
    pub fn get(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// Stops sampling; returns the highest value seen.
    pub fn stop(mut self) -> u64 {
        self.halt();
        self.get()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Peak {
    fn drop(&mut self) {
        self.halt();
    }
}

/// A process's CPU use over a stretch of time, as a share of one core.
pub struct CpuWatch {
    pid: u32,
    ticks: u64,
    since: Instant,
}

impl CpuWatch {
    pub fn start(pid: u32) -> io::Result<CpuWatch> {
        Ok(CpuWatch {
            pid,
            ticks: cpu_ticks(pid)?,
            since: Instant::now(),
        })
    }

    /// The share of one core used since [`CpuWatch::start`], in percent.
    pub fn percent(&self) -> io::Result<f64> {
        let used = cpu_ticks(self.pid)?.saturating_sub(self.ticks);
        let seconds = used as f64 / TICKS_PER_SECOND as f64;
        Ok(100.0 * seconds / self.since.elapsed().as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_by_name() {
        let status = "Name:\tlb\nVmPeak:\t  99 kB\nVmRSS:\t    5120 kB\n";
        assert_eq!(status_field(status, "VmRSS:"), Some(5120));
        assert_eq!(status_field(status, "VmSwap:"), None);
    }

    #[test]
    fn cpu_ticks_are_counted_after_a_name_with_spaces() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt
        // cminflt majflt cmajflt utime stime ...
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194304 10 0 0 0 7 5 0 0";
        assert_eq!(stat_cpu_ticks(stat), Some(12));
    }

    #[test]
    fn netstat_counters_are_found_in_their_section() {
        let netstat = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\n\
                       TcpExt: 0 627 630\n\
                       IpExt: InNoRoutes ListenOverflows\n\
                       IpExt: 1 2\n";
        assert_eq!(
            netstat_value(netstat, "TcpExt", "ListenOverflows"),
            Some(627)
        );
        assert_eq!(netstat_value(netstat, "IpExt", "ListenOverflows"), Some(2));
        assert_eq!(netstat_value(netstat, "TcpExt", "Nothing"), None);
    }

    #[test]
    fn this_process_can_be_measured() {
        let pid = std::process::id();
        assert!(descriptors(pid).expect("readable") >= 3);
        assert!(rss_kib(pid).expect("readable") > 0);
        cpu_ticks(pid).expect("readable");
        listen_overflows().expect("readable");
    }
}
