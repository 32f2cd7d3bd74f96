//! Why each client went where it went: one record per connection, kept
//! in a ring of the last [`KEPT`] (or `[admin] decisions`), read through the admin listener
//! (`GET /api/decisions`, and the page's last few).
//!
//! A record holds every backend as the client's first pick saw it (its
//! state, open connections and weight, and why it was skipped if it was),
//! the hash key where the algorithm reads one, the algorithm's order of
//! candidates, every backend tried that failed it and why, the one that
//! served it, how long each phase took (the client's TLS handshake, the
//! wait in line, the connect, the relay), the bytes, and how the
//! connection ended.
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
use crate::pool::Considered;
use crate::select::Algorithm;

/// How many records the ring keeps unless `[admin] decisions` says.
pub const KEPT: usize = 1000;

/// One client's way through `lb`.
#[derive(Clone, Debug)]
pub struct Decision {
    pub at: SystemTime,
    pub client: SocketAddr,
    pub algorithm: Algorithm,
    /// The client's hash key, for an algorithm that reads it (Maglev).
    pub key: Option<u64>,
    /// Every backend as the first pick saw it.
    pub considered: Vec<Considered>,
    /// The algorithm's order of candidates at the first pick: positions
    /// in `considered`.
    pub order: Vec<usize>,
    /// Each backend tried that failed, with why, in order.
    pub tried: Vec<(String, String)>,
    /// The backend that served it.
    pub backend: Option<String>,
    pub timings: Timings,
    pub code: EndCode,
    /// The end in words, as the log line says it.
    pub end: String,
    pub up: u64,
    pub down: u64,
    pub lasted: Duration,
}

/// How long each phase of a connection took; `None` for a phase it did
/// not reach (or, for the handshake, a plain front).
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    pub handshake: Option<Duration>,
    /// In line for a full backend, in all.
    pub queue: Duration,
    /// The connect (and TLS handshake) that reached its backend.
    pub connect: Option<Duration>,
    pub relay: Option<Duration>,
}

/// Milliseconds, to the hundredth.
fn ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e5).round() / 100.0
}

impl Timings {
    fn to_json(self) -> Value {
        json!({
            "handshake_ms": self.handshake.map(ms),
            "queue_ms": ms(self.queue),
            "connect_ms": self.connect.map(ms),
            "relay_ms": self.relay.map(ms),
        })
    }
}

/// A client's hash key as text: 16 hex digits.
pub fn show_key(key: u64) -> String {
    format!("{key:016x}")
}

impl Decision {
    /// As `GET /api/decisions` shows it.
    pub fn to_json(&self) -> Value {
        let id =
            |&position: &usize| self.considered[position].backend.id.clone();
        json!({
            "at": unix_seconds(self.at),
            "client": self.client.to_string(),
            "algorithm": self.algorithm.name(),
            "key": self.key.map(show_key),
            "considered": self.considered.iter().map(Considered::to_json)
                .collect::<Vec<_>>(),
            "order": self.order.iter().map(id).collect::<Vec<_>>(),
            "tried": self.tried.iter().map(|(backend, error)| json!({
                "backend": backend,
                "error": error,
            })).collect::<Vec<_>>(),
            "backend": self.backend,
            "timings": self.timings.to_json(),
            "code": self.code.as_str(),
            "end": self.end,
            "up": self.up,
            "down": self.down,
            "ms": self.lasted.as_millis() as u64,
        })
    }
}

/// The ring of the last [`KEPT`] decisions.
#[derive(Debug)]
pub struct Decisions {
    ring: Mutex<VecDeque<Decision>>,
    /// How many it keeps (`[admin] decisions`).
    kept: usize,
    enabled: AtomicBool,
}

impl Decisions {
    /// A ring of `kept` records, not yet enabled.
    pub fn new(kept: usize) -> Decisions {
        Decisions {
            ring: Mutex::new(VecDeque::new()),
            kept,
            enabled: AtomicBool::new(false),
        }
    }

    /// How many it keeps.
    pub fn kept(&self) -> usize {
        self.kept
    }

    /// Starts keeping records: an admin listener is there to read them.
    pub fn enable(&self) {
        self.enabled.store(true, Ordering::Relaxed);
    }

    /// Whether records are kept.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub fn record(&self, decision: Decision) {
        if self.kept == 0 {
            return;
        }
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        if ring.len() == self.kept {
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
            key: None,
            considered: Vec::new(),
            order: Vec::new(),
            tried: Vec::new(),
            backend: Some("a".into()),
            timings: Timings::default(),
            code: EndCode::Finished,
            end: "finished".into(),
            up: 1,
            down: 2,
            lasted: Duration::from_millis(3),
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_and_reads_them_newest_first() {
        let decisions = Decisions::new(KEPT);
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
