//! What the suite measures, read from `/proc`: a process's open
//! descriptors, its resident memory and CPU time (read by `lab-tools`'
//! [`sys`], which the benchmark uses too), and the kernel's count of
//! listen-queue overflows.
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

use lab_tools::sys;
use tokio::time::Instant;

/// The kernel's count of connections dropped because a listen queue was
/// full (`TcpExt: ListenOverflows` in `/proc/net/netstat`), for the
/// whole network namespace.
pub fn listen_overflows() -> io::Result<u64> {
    let netstat = fs::read_to_string("/proc/net/netstat")?;
    netstat_value(&netstat, "TcpExt", "ListenOverflows").ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "no TcpExt ListenOverflows in /proc",
        )
    })
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

/// The highest value of a measure of a process (its descriptors, its
/// memory), sampled every `every` on a thread of its own (so that a busy
/// runtime cannot make it miss a peak) until stopped.
pub struct Peak {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Peak {
    /// The most descriptors `pid` holds at once.
    pub fn descriptors(pid: u32, every: Duration) -> Peak {
        Peak::start(pid, every, |pid| {
            sys::process_fd_count(pid).map(|n| n as u64)
        })
    }

    /// The most memory `pid` holds at once, in KiB.
    pub fn rss(pid: u32, every: Duration) -> Peak {
        Peak::start(pid, every, sys::process_rss_kib)
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
                // At least one sample, even if stopped before this
                // thread first ran: a peak of 0 would pass any bound.
                loop {
                    if let Ok(value) = measure(pid) {
                        peak.fetch_max(value, Ordering::Relaxed);
                    }
                    if stop.load(Ordering::Relaxed) {
                        break;
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

    /// Stops sampling; returns the highest value seen.
    pub fn stop(mut self) -> u64 {
        self.halt();
        self.peak.load(Ordering::Relaxed)
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
            ticks: sys::process_stat(pid)?.cpu_ticks,
            since: Instant::now(),
        })
    }

    /// The share of one core used since [`CpuWatch::start`], in percent.
    pub fn percent(&self) -> io::Result<f64> {
        let now = sys::process_stat(self.pid)?.cpu_ticks;
        let used = now.saturating_sub(self.ticks);
        let seconds = used as f64 / sys::clock_ticks_per_second() as f64;
        Ok(100.0 * seconds / self.since.elapsed().as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let every = Duration::from_millis(1);
        let (fds, rss) = (Peak::descriptors(pid, every), Peak::rss(pid, every));
        // Long enough for both threads to have sampled.
        std::thread::sleep(Duration::from_millis(50));
        assert!(fds.stop() >= 3);
        assert!(rss.stop() > 0);
        let cpu = CpuWatch::start(pid).expect("readable");
        cpu.percent().expect("readable");
        listen_overflows().expect("readable");
    }
}
