//! Why each client went where it went: one record per connection, kept
//! in a ring of the last [`KEPT`], read through the admin listener
//! (`GET /api/decisions`, and the page's last few).
//!
//! A record holds the algorithm's order of candidates at the client's
//! first pick, every backend tried that failed it and why, the one that
//! served it, how long it waited in line, and how the connection ended.
//! It is written when the connection ends (its end code is part of it),
//! and only once an admin listener serves ([`Decisions::enable`]):
//! without one nobody can read the ring, and a client costs no more than
//! before.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::codes::EndCode;
use crate::select::Algorithm;

/// How many records the ring keeps.
pub const KEPT: usize = 1000;

/// One client's way through `lb`.
#[derive(Clone, Debug)]
pub struct Decision {
    pub at: SystemTime,
    pub client: SocketAddr,
    pub algorithm: Algorithm,
    /// The algorithm's order of usable backends at the first pick.
    pub order: Vec<String>,
    /// Each backend tried that failed, with why, in order.
    pub tried: Vec<(String, String)>,
    /// The backend that served it.
    pub backend: Option<String>,
    /// Time spent in line for a full backend.
    pub waited: Duration,
    pub code: EndCode,
    /// The end in words, as the log line says it.
    pub end: String,
    pub up: u64,
    pub down: u64,
    pub lasted: Duration,
}

impl Decision {
    /// As `GET /api/decisions` shows it.
    pub fn to_json(&self) -> Value {
        json!({
            "at": unix_seconds(self.at),
            "client": self.client.to_string(),
            "algorithm": self.algorithm.name(),
            "order": self.order,
            "tried": self.tried.iter().map(|(backend, error)| json!({
                "backend": backend,
                "error": error,
            })).collect::<Vec<_>>(),
            "backend": self.backend,
            "waited_ms": self.waited.as_millis() as u64,
            "code": self.code.as_str(),
            "end": self.end,
            "up": self.up,
            "down": self.down,
            "ms": self.lasted.as_millis() as u64,
        })
    }
}

/// The ring of the last [`KEPT`] decisions.
#[derive(Debug, Default)]
pub struct Decisions {
    ring: Mutex<VecDeque<Decision>>,
    enabled: AtomicBool,
}

impl Decisions {
    /// Starts keeping records: an admin listener is there to read them.
    pub fn enable(&self) {
        self.enabled.store(true, Ordering::Relaxed);
    }

    /// Whether records are kept.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub fn record(&self, decision: Decision) {
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        if ring.len() == KEPT {
            ring.pop_front();
        }
        ring.push_back(decision);
    }

    /// Up to `limit` records that `wanted` keeps, newest first.
    pub fn recent(
        &self,
        wanted: impl Fn(&Decision) -> bool,
        limit: usize,
    ) -> Vec<Decision> {
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        ring.iter()
            .rev()
            .filter(|decision| wanted(decision))
            .take(limit)
            .cloned()
            .collect()
    }
}

/// A wall-clock time as seconds since the Unix epoch, to the millisecond.
pub fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |since| (since.as_secs_f64() * 1000.0).round() / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(port: u16) -> Decision {
        Decision {
            at: SystemTime::now(),
            client: SocketAddr::from(([127, 0, 0, 1], port)),
            algorithm: Algorithm::RoundRobin,
            order: vec!["a".into()],
            tried: Vec::new(),
            backend: Some("a".into()),
            waited: Duration::ZERO,
            code: EndCode::Finished,
            end: "finished".into(),
            up: 1,
            down: 2,
            lasted: Duration::from_millis(3),
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_and_reads_them_newest_first() {
        let decisions = Decisions::default();
        for port in 0..(KEPT as u16 + 10) {
            decisions.record(decision(port));
        }
        let all = decisions.recent(|_| true, usize::MAX);
        assert_eq!(all.len(), KEPT);
        assert_eq!(all[0].client.port(), KEPT as u16 + 9);
        assert_eq!(all[KEPT - 1].client.port(), 10);
        let odd = decisions.recent(|d| d.client.port() % 2 == 1, 2);
        let ports: Vec<u16> = odd.iter().map(|d| d.client.port()).collect();
        assert_eq!(ports, [KEPT as u16 + 9, KEPT as u16 + 7]);
    }
}
