//! What the admin listener shows, read from the running balancer: one
//! row per backend (`GET /api/backends`, `/api/stats`, the page, the
//! metrics all read the same rows), the listener's figures, and what
//! the algorithm would do for a given client (`/api/explain`).
//!
//! `GET /api/stats` is the page's one source. Its keys are kept stable
//! (a test pins them): a script may read them.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::Balancer;
use crate::decisions::{show_key, unix_seconds};
use crate::live::{Live, State};
use crate::pool::Considered;
use crate::select::{self, Algorithm};
use crate::stats::Check;

/// The status page, embedded: one file of HTML, CSS and script, no
/// external asset.
pub const PAGE: &str = include_str!("../assets/status.html");

/// How many decisions `/api/stats` carries for the page.
const DECISIONS_ON_PAGE: usize = 20;

/// One backend as the admin listener shows it.
pub struct Row {
    pub id: String,
    /// `None` for a retiring backend, no longer in the config.
    pub address: Option<String>,
    pub state: State,
    pub why: String,
    pub since: Instant,
    pub weight: u32,
    pub effective_weight: u32,
    pub active: u32,
    pub total: u64,
    pub queued: usize,
    pub max_connections: Option<u32>,
    pub live: Arc<Live>,
}

/// Every backend of the current pool, then the retiring ones.
pub fn rows(balancer: &Balancer) -> Vec<Row> {
    let pool = balancer.pool();
    let slow_start = pool.slow_start();
    let now = Instant::now();
    let waiting = balancer.queue().waiting();
    let mut rows = Vec::with_capacity(pool.backends.len());
    for backend in &pool.backends {
        let live = &backend.live;
        let ramp = live.ramp(now, slow_start);
        let effective = match ramp {
            Some(share) => (f64::from(backend.weight) * share).round() as u32,
            None => backend.weight,
        };
        let full = backend
            .max_at(ramp)
            .is_some_and(|max| backend.active() >= max);
        let since = live.since();
        rows.push(Row {
            id: backend.id.clone(),
            address: Some(backend.address.to_string()),
            state: live.state(now, slow_start),
            why: since.why,
            since: since.at,
            weight: backend.weight,
            effective_weight: effective.max(1),
            active: live.active(),
            total: live.total(),
            queued: if full { waiting } else { 0 },
            max_connections: backend.max_connections,
            live: live.clone(),
        });
    }
    for live in balancer.lives().into_iter().filter(|l| l.is_retiring()) {
        let since = live.since();
        rows.push(Row {
            id: live.id.clone(),
            address: None,
            state: State::Retiring,
            why: since.why,
            since: since.at,
            weight: 0,
            effective_weight: 0,
            active: live.active(),
            total: live.total(),
            queued: 0,
            max_connections: None,
            live,
        });
    }
    rows
}

impl Row {
    /// As `GET /api/backends` shows it.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "address": self.address,
            "state": self.state.name(),
            "why": self.why,
            "since": wall_clock(self.since),
            "weight": self.weight,
            "effective_weight": self.effective_weight,
            "active": self.active,
            "queued": self.queued,
            "max_connections": self.max_connections,
        })
    }

    /// As `GET /api/stats` shows it: the above, and the counters.
    pub fn to_stats_json(&self) -> Value {
        let stats = &self.live.stats;
        let mut row = self.to_json();
        let extra = json!({
            "slow_start_percent": match self.state {
                State::SlowStart(percent) => Some(percent),
                _ => None,
            },
            "total": self.total,
            "bytes_up": stats.bytes_up.load(Ordering::Relaxed),
            "bytes_down": stats.bytes_down.load(Ordering::Relaxed),
            "failures": stats.connect_failures.load(Ordering::Relaxed),
            "check": stats.last_check().map(|check| check_json(&check)),
        });
        if let (Value::Object(row), Value::Object(extra)) = (&mut row, extra) {
            row.extend(extra);
        }
        row
    }
}

fn check_json(check: &Check) -> Value {
    json!({
        "result": if check.failure.is_none() { "passed" } else { "failed" },
        "detail": check.failure,
        "at": wall_clock(check.at),
        "ms": (check.took.as_secs_f64() * 1e5).round() / 100.0,
    })
}

// ANCHOR: stats
/// `GET /api/stats`: everything the page shows, in one answer.
pub fn stats(balancer: &Balancer) -> Value {
    let pool = balancer.pool();
    let config = &pool.config;
    let listener = &balancer.stats;
    let ended: serde_json::Map<String, Value> = listener
        .ended_counts()
        .filter(|&(_, count)| count > 0)
        .map(|(code, count)| (code.as_str().to_owned(), count.into()))
        .collect();
    let decisions: Vec<Value> = balancer
        .decisions
        .recent(|_| true, DECISIONS_ON_PAGE)
        .iter()
        .map(|decision| decision.to_json())
        .collect();
    json!({
        "lb": {
            "version": env!("CARGO_PKG_VERSION"),
            "listen": balancer.listen_addr(),
            "algorithm": config.algorithm.name(),
            "started": wall_clock(balancer.started),
            "now": unix_seconds(SystemTime::now()),
        },
        "listener": {
            "open": listener.open.load(Ordering::Relaxed),
            "accepted": listener.accepted.load(Ordering::Relaxed),
            "max_connections": balancer.max_connections(),
            "at_limit": listener.at_limit.load(Ordering::Relaxed),
            "limit_reached": listener.limit_reached.load(Ordering::Relaxed),
            "queued": balancer.queue().waiting(),
            "handshakes": listener.handshakes.load(Ordering::Relaxed),
        },
        "backends": rows(balancer).iter().map(Row::to_stats_json)
            .collect::<Vec<_>>(),
        "decisions": decisions,
        "ended": ended,
    })
}
// ANCHOR_END: stats

// ANCHOR: explain
/// `GET /api/explain?client=IP`: which backend a new client from `ip`
/// would get now, and why, in the shape of a decision record: every
/// backend as the algorithm sees it, and its order. Nothing is connected
/// and no turn is taken: a stateful algorithm (a turn, a generator,
/// current weights) is asked on a copy of its state (`Select::copy`).
pub fn explain(balancer: &Balancer, ip: IpAddr) -> Value {
    let pool = balancer.pool();
    let algorithm = pool.config.algorithm;
    let key = select::client_key(ip);
    let failed = vec![false; pool.backends.len()];
    let (mut candidates, mut order) = (Vec::new(), Vec::new());
    pool.peek(key, &failed, &mut candidates, &mut order);
    let considered = pool.considered(&failed);
    let ids: Vec<&str> = order
        .iter()
        .map(|&i| pool.backends[i].id.as_str())
        .collect();
    // ANCHOR_END: explain
    let note = match algorithm {
        Algorithm::Maglev => {
            "the address's key picks a slot of the table, which names the \
             first backend; backends that cannot take a client now are \
             skipped"
        }
        Algorithm::RoundRobin | Algorithm::WeightedRoundRobin => {
            "the next client gets this whatever its address: it depends on \
             the turn, and each client takes one"
        }
        Algorithm::LeastConnections => {
            "the least loaded now ((open + 1) / weight); ties take turns, \
             so it depends on the turn too"
        }
        Algorithm::Random | Algorithm::PowerOfTwo => {
            "the generator's next draw, whatever the address: it depends \
             on the turn, and another client may take that draw first"
        }
    };
    json!({
        "client": ip.to_string(),
        "algorithm": algorithm.name(),
        "key": (algorithm == Algorithm::Maglev).then(|| show_key(key)),
        "considered": considered.iter().map(Considered::to_json)
            .collect::<Vec<_>>(),
        "order": ids,
        "backend": ids.first(),
        "note": note,
    })
}

/// An instant as seconds since the Unix epoch, for a JSON reader.
pub fn wall_clock(at: Instant) -> f64 {
    let ago = Instant::now().saturating_duration_since(at);
    unix_seconds(SystemTime::now() - ago)
}
