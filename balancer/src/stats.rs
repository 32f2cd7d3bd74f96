//! What `lb` counts while it runs, for the admin listener's page, its
//! JSON and its metrics: per backend (kept in the backend's live record,
//! so the counts survive a reload) and for the listener.
//!
//! Counting is a few relaxed atomic additions per connection, at its
//! end, plus one histogram observation: nothing on the relay's path.
//! Readers (a scrape, the page) read the atomics as they are; the
//! figures of one answer are not one consistent instant, which no
//! reader of a counter needs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use tokio::time::Instant;

use crate::codes::EndCode;

/// One backend's counters.
#[derive(Debug)]
pub struct BackendStats {
    /// Bytes from clients to it, counted as each connection ends.
    pub bytes_up: AtomicU64,
    /// Bytes from it to clients.
    pub bytes_down: AtomicU64,
    /// Connects to it that failed (refused, timed out, its TLS).
    pub connect_failures: AtomicU64,
    pub checks_passed: AtomicU64,
    pub checks_failed: AtomicU64,
    last_check: Mutex<Option<Check>>,
    /// How long a successful connect (and TLS handshake) took.
    pub connect_seconds: Histogram,
    /// How long each active check took, passed or failed.
    pub check_seconds: Histogram,
}

/// The last active check's result.
#[derive(Clone, Debug)]
pub struct Check {
    /// Why it failed; `None` if it passed.
    pub failure: Option<String>,
    pub at: Instant,
    pub took: Duration,
}

impl BackendStats {
    pub fn new() -> BackendStats {
        BackendStats {
            bytes_up: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            checks_passed: AtomicU64::new(0),
            checks_failed: AtomicU64::new(0),
            last_check: Mutex::new(None),
            // 100 µs to about 6.5 s, by fours.
            connect_seconds: Histogram::new(exponential_buckets(1e-4, 4.0, 9)),
            check_seconds: Histogram::new(exponential_buckets(1e-4, 4.0, 9)),
        }
    }

    /// Notes a check's result.
    pub fn checked(&self, failure: Option<String>, took: Duration) {
        let counter = match failure {
            None => &self.checks_passed,
            Some(_) => &self.checks_failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.check_seconds.observe(took.as_secs_f64());
        *self
            .last_check
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Check {
            failure,
            at: Instant::now(),
            took,
        });
    }

    pub fn last_check(&self) -> Option<Check> {
        self.last_check
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Notes the bytes of a connection that ended.
    pub fn relayed(&self, up: u64, down: u64) {
        self.bytes_up.fetch_add(up, Ordering::Relaxed);
        self.bytes_down.fetch_add(down, Ordering::Relaxed);
    }
}

impl Default for BackendStats {
    fn default() -> BackendStats {
        BackendStats::new()
    }
}

/// The listener's counters.
#[derive(Debug)]
pub struct ListenerStats {
    pub accepted: AtomicU64,
    /// Client connections open now.
    pub open: AtomicU64,
    /// Whether `lb` has stopped accepting at `max_connections`.
    pub at_limit: AtomicBool,
    /// Times `max_connections` was reached.
    pub limit_reached: AtomicU64,
    /// Client TLS handshakes in progress.
    pub handshakes: AtomicU64,
    /// Connections ended, by end code (indexed as [`EndCode::ALL`]).
    ended: [AtomicU64; EndCode::ALL.len()],
    /// How long connections lasted, from accept to close.
    pub duration_seconds: Histogram,
    pub reloads_applied: AtomicU64,
    pub reloads_refused: AtomicU64,
    /// When the config in force was read: at start, then at each reload
    /// that applied.
    config_loaded: Mutex<SystemTime>,
}

impl ListenerStats {
    pub fn new() -> ListenerStats {
        ListenerStats {
            accepted: AtomicU64::new(0),
            open: AtomicU64::new(0),
            at_limit: AtomicBool::new(false),
            limit_reached: AtomicU64::new(0),
            handshakes: AtomicU64::new(0),
            ended: std::array::from_fn(|_| AtomicU64::new(0)),
            // 1 ms to about 17 minutes, by fours.
            duration_seconds: Histogram::new(exponential_buckets(
                1e-3, 4.0, 11,
            )),
            reloads_applied: AtomicU64::new(0),
            reloads_refused: AtomicU64::new(0),
            config_loaded: Mutex::new(SystemTime::now()),
        }
    }

    /// Notes a connection that ended with `code` after `lasted`.
    pub fn ended(&self, code: EndCode, lasted: Duration) {
        self.ended[code.index()].fetch_add(1, Ordering::Relaxed);
        self.duration_seconds.observe(lasted.as_secs_f64());
    }

    /// Notes a reload: applied, or refused.
    pub fn reloaded(&self, applied: bool) {
        if applied {
            self.reloads_applied.fetch_add(1, Ordering::Relaxed);
            *self
                .config_loaded
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = SystemTime::now();
        } else {
            self.reloads_refused.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// When the config in force was read.
    pub fn config_loaded(&self) -> SystemTime {
        *self
            .config_loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Connections that ended with `code`.
    pub fn ended_with(&self, code: EndCode) -> u64 {
        self.ended[code.index()].load(Ordering::Relaxed)
    }

    /// Connections ended with each code, in [`EndCode::ALL`]'s order.
    pub fn ended_counts(&self) -> impl Iterator<Item = (EndCode, u64)> + '_ {
        EndCode::ALL
            .iter()
            .zip(&self.ended)
            .map(|(&code, count)| (code, count.load(Ordering::Relaxed)))
    }
}

impl Default for ListenerStats {
    fn default() -> ListenerStats {
        ListenerStats::new()
    }
}

/// Adds one to a gauge for as long as it lives.
pub struct Gauge<'a>(&'a AtomicU64);

impl<'a> Gauge<'a> {
    pub fn up(gauge: &'a AtomicU64) -> Gauge<'a> {
        gauge.fetch_add(1, Ordering::Relaxed);
        Gauge(gauge)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
