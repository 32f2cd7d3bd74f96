//! The pool: everything a reload can change, built whole from a checked
//! config and swapped in at once.
//!
//! A [`Pool`] holds the backends (each with its live record), the
//! algorithm with its state (Maglev's table is built here, never per
//! client), the health rules, the timeouts and limits that apply to new
//! connections, and how `tls://` backends are verified. It never changes
//! after it is built. `Balancer` keeps the current one behind `arc-swap`;
//! a new client loads it once and keeps that `Arc` for its whole life, so
//! a reload never changes the ground under a connection in flight, and a
//! position in `backends` means the same backend for as long as the
//! client looks at it. Anything that must outlive a pool is keyed by the
//! backend's id instead (`live.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use lab_common::Error;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backend::Backend;
use crate::config::Config;
use crate::connect::BackendTls;
use crate::health::HealthRules;
use crate::live::{self, Live, State};
use crate::queue::Queue;
use crate::select::{self, Candidate, Member, Select};

/// One generation of `lb`'s backends and rules. See the module's docs.
#[derive(Debug)]
pub struct Pool {
    /// What it was built from.
    pub config: Arc<Config>,
    pub backends: Vec<Arc<Backend>>,
    /// Each backend's live record, in the order of `backends`: one
    /// pointer away instead of two, for the quick path of `pick` that
    /// reads every backend's open connections.
    lives: Vec<Arc<Live>>,
    selector: Box<dyn Select>,
    pub rules: HealthRules,
    /// How `tls://` backends are verified; `None` if there are none.
    pub backend_tls: Option<BackendTls>,
    /// Whether it balances in panic now (`panic_threshold`), so that
    /// entering and leaving it are logged once each.
    panicking: AtomicBool,
    /// Each backend as the algorithm sees it when every one is usable at
    /// its configured weight, its load left at 0: what a client chooses
    /// from while nothing changed since a look found them so (`pick`).
    all_usable: Vec<Candidate>,
    /// [`live::changes`] as read before the last look at every backend
    /// that found each usable at its configured weight, plus one; 0 if
    /// none has. Never set when a backend has a `max_connections`:
    /// whether it is full changes with every client, not by a change.
    usable_since: AtomicU64,
}

/// What decided whether a backend is a candidate, read once per pick.
#[derive(Clone, Copy)]
struct Seen {
    full: bool,
    accepting: bool,
    healthy: bool,
    /// In a slow start: its weight is not the configured one.
    ramping: bool,
}

/// One backend as a client's choice saw it.
#[derive(Clone, Debug)]
pub struct Considered {
    pub backend: Arc<Backend>,
    pub state: State,
    pub active: u32,
    /// The weight the algorithm used (scaled by ten while any backend may
    /// be in a slow start).
    pub weight: u32,
    /// Why it was not a candidate; `None` if it was.
    pub skipped: Option<&'static str>,
}

impl Considered {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "backend": self.backend.id,
            "state": self.state.name(),
            "active": self.active,
            "weight": self.weight,
            "skipped": self.skipped,
        })
    }
}

/// Weights are multiplied by this while any backend may be in a slow
/// start, so that a tenth of a weight of 1 is still a whole number.
const RAMP_SCALE: u32 = 10;

impl Pool {
    /// Builds the pool `config` describes. A backend whose id is in
    /// `lives` keeps that record; a new one gets a new record, added to
    /// `lives`. `cut` is `lb`'s own end-of-drain token, parent of every
    /// backend's.
    pub fn build(
        config: Arc<Config>,
        lives: &mut HashMap<String, Arc<Live>>,
        queue: &Arc<Queue>,
        cut: &CancellationToken,
    ) -> Result<Pool, Error> {
        let backend_tls = backend_tls(&config)?;
        let backends: Vec<Arc<Backend>> = config
            .backends
            .iter()
            .map(|backend| {
                let live = lives
                    .entry(backend.id.clone())
                    .or_insert_with(|| Arc::new(Live::new(&backend.id, cut)))
                    .clone();
                Arc::new(Backend::new(backend, live, queue.clone()))
            })
            .collect();
        let members: Vec<Member> = backends
            .iter()
            .map(|backend| Member {
                id: backend.id.clone(),
                weight: backend.weight,
            })
            .collect();
        let scale = weight_scale(slow_start(&config));
        let all_usable = backends
            .iter()
            .map(|backend| Candidate {
                weight: backend.weight.saturating_mul(scale),
                active: 0,
                usable: true,
            })
            .collect();
        Ok(Pool {
            lives: backends.iter().map(|b| b.live.clone()).collect(),
            selector: select::build(config.algorithm, &members, config.seed),
            rules: HealthRules::from(&config.health),
            backends,
            backend_tls,
            config,
            panicking: AtomicBool::new(false),
            all_usable,
            usable_since: AtomicU64::new(0),
        })
    }

    // ANCHOR: order_fn
    /// Fills `order` with the backends to try for the client `key`, in the
    /// algorithm's order, leaving out those that `failed` it and those
    /// that may not take a client now (down, cooling down, full, drained,
    /// disabled, retiring).
    pub fn order(
        &self,
        key: u64,
        failed: &[bool],
        candidates: &mut Vec<Candidate>,
        order: &mut Vec<usize>,
    ) {
        self.candidates(failed, candidates);
        self.selector.order(candidates, key, order);
    }
    // ANCHOR_END: order_fn

    // ANCHOR: pick_fn
    /// The backend `order` would list first, without ordering the rest
    /// (see [`Select::pick`]): all a new client needs until a backend
    /// fails it.
    pub fn pick(
        &self,
        key: u64,
        failed: &[bool],
        candidates: &mut Vec<Candidate>,
    ) -> Option<usize> {
        // One look at the backend the algorithm would pick if all were
        // usable. Outside a panic only: whether one begins takes a look
        // at every backend, and only the full look below logs its end.
        if !self.panicking.load(Ordering::Relaxed)
            && let Some(index) = self.selector.probe(self.backends.len(), key)
            && let Some(backend) = self.backends.get(index)
            && !failed.get(index).copied().unwrap_or(true)
        {
            let now = Instant::now();
            let (candidate, _) =
                self.candidate(backend, false, now, self.slow_start());
            if candidate.usable {
                return Some(index);
            }
        }
        // Nothing changed since every backend was usable: no look at
        // each, but at most a read of each one's open connections, for
        // the algorithms that weigh them.
        if let Some(all_usable) = self.all_usable(failed) {
            if !self.selector.reads_loads() {
                return self.selector.pick(all_usable, key);
            }
            candidates.clear();
            candidates.extend(all_usable.iter().zip(&self.lives).map(
                |(candidate, live)| Candidate {
                    active: live.active(),
                    ..*candidate
                },
            ));
            return self.selector.pick(candidates, key);
        }
        self.candidates(failed, candidates);
        self.selector.pick(candidates, key)
    }

    /// Every backend as a candidate, if none failed this client and none
    /// changed since a look found every one usable at its configured
    /// weight.
    fn all_usable(&self, failed: &[bool]) -> Option<&[Candidate]> {
        let since = self.usable_since.load(Ordering::Relaxed);
        (since != 0 && since - 1 == live::changes() && !failed.contains(&true))
            .then_some(self.all_usable.as_slice())
    }
    // ANCHOR_END: pick_fn

    /// Each backend as an algorithm sees it now: its weight (lowered in a
    /// slow start), its open connections, and whether it may take this
    /// client. In a panic (too few backends healthy, see
    /// [`Pool::panic`]) every backend its checks have not seen DOWN may.
    fn candidates(&self, failed: &[bool], candidates: &mut Vec<Candidate>) {
        // Read before the backends: a change made during the look makes
        // the count it leaves stale, never a stale look current.
        let changes = live::changes();
        let now = Instant::now();
        let slow_start = self.slow_start();
        candidates.clear();
        candidates.reserve(self.backends.len());
        let (mut accepting, mut healthy) = (0, 0);
        let mut all_usable = true;
        for (backend, &failed) in self.backends.iter().zip(failed) {
            let (candidate, seen) =
                self.candidate(backend, failed, now, slow_start);
            if seen.accepting {
                accepting += 1;
                healthy += usize::from(seen.healthy);
            }
            all_usable &= seen.accepting
                && seen.healthy
                && !seen.ramping
                && backend.max_connections.is_none();
            candidates.push(candidate);
        }
        if all_usable {
            self.usable_since.store(changes + 1, Ordering::Relaxed);
        }
        if !self.panic(healthy, accepting) {
            return;
        }
        for ((candidate, backend), &failed) in
            candidates.iter_mut().zip(&self.backends).zip(failed)
        {
            let (up, _cooling) = backend.live.verdicts(now);
            let full = backend
                .max_at(backend.live.ramp(now, slow_start))
                .is_some_and(|max| backend.active() >= max);
            candidate.usable =
                !failed && !full && up && backend.live.accepting();
        }
    }

    // ANCHOR: panic
    /// Whether to balance in panic: fewer than `panic_threshold` percent
    /// of the `accepting` backends (those the operator and the config
    /// let take clients) are `healthy`. Then the passive marks are set
    /// aside and every backend the active checks have not seen DOWN
    /// takes clients, as Envoy does below its panic threshold and nginx
    /// when every peer has failed: when most of the pool looks broken,
    /// the marks are more likely wrong (a blip that hit them all) than
    /// the backends, and a few refusing backends must not become an
    /// outage. Entering and leaving it are logged once each.
    fn panic(&self, healthy: usize, accepting: usize) -> bool {
        let threshold = self.config.health.panic_threshold as usize;
        let panic = accepting > 0 && healthy * 100 < accepting * threshold;
        if self.panicking.swap(panic, Ordering::Relaxed) != panic {
            if panic {
                tracing::warn!(
                    phase = "health",
                    "panic: {healthy} of {accepting} backends can take \
                     clients, under panic_threshold ({threshold}%): \
                     balancing over every backend its checks have not \
                     seen DOWN"
                );
            } else {
                tracing::info!(
                    phase = "health",
                    "panic over: {healthy} of {accepting} backends can \
                     take clients"
                );
            }
        }
        panic
    }
    // ANCHOR_END: panic

    /// The health rules for a client's failed connection at `now`: the
    /// passive marks may take its backend out only while fewer than
    /// `max_ejection_percent` of the backends are (at least one always
    /// may be), as Envoy's `max_ejection_percent` bounds its outlier
    /// detection.
    pub fn rules_now(&self, now: Instant) -> HealthRules {
        let percent = self.config.health.max_ejection_percent as usize;
        let most = (self.backends.len() * percent / 100).max(1);
        let out = self
            .backends
            .iter()
            .filter(|backend| backend.live.verdicts(now).1)
            .count();
        HealthRules {
            may_eject: out < most,
            ..self.rules
        }
    }

    /// One backend as an algorithm sees it at `now`, and what made it
    /// usable or not.
    fn candidate(
        &self,
        backend: &Backend,
        failed: bool,
        now: Instant,
        slow_start: Duration,
    ) -> (Candidate, Seen) {
        let scale = weight_scale(slow_start);
        let live = &backend.live;
        let ramp = live.ramp(now, slow_start);
        let weight = match ramp {
            Some(share) => {
                let scaled =
                    f64::from(backend.weight.saturating_mul(scale)) * share;
                (scaled as u32).max(1)
            }
            None => backend.weight.saturating_mul(scale),
        };
        let full = backend
            .max_at(ramp)
            .is_some_and(|max| backend.active() >= max);
        let seen = Seen {
            full,
            accepting: live.accepting(),
            healthy: live.healthy(now),
            ramping: ramp.is_some(),
        };
        let candidate = Candidate {
            weight,
            active: backend.active(),
            usable: !failed && !full && seen.accepting && seen.healthy,
        };
        (candidate, seen)
    }

    /// What `order` would give the next client from `key`, without
    /// taking its turn: on a copy of the algorithm's state, if it has
    /// one (`/api/explain`).
    pub fn peek(
        &self,
        key: u64,
        failed: &[bool],
        candidates: &mut Vec<Candidate>,
        order: &mut Vec<usize>,
    ) {
        self.candidates(failed, candidates);
        match self.selector.copy() {
            Some(copy) => copy.order(candidates, key, order),
            None => self.selector.order(candidates, key, order),
        }
    }

    /// Every backend as a client that `failed` on some sees it now, and
    /// why those that are not candidates are not: what a decision record
    /// and `/api/explain` show.
    pub fn considered(&self, failed: &[bool]) -> Vec<Considered> {
        let now = Instant::now();
        let slow_start = self.slow_start();
        self.backends
            .iter()
            .zip(failed)
            .map(|(backend, &failed)| {
                let (candidate, Seen { full, .. }) =
                    self.candidate(backend, failed, now, slow_start);
                let state = backend.live.state(now, slow_start);
                let skipped = if candidate.usable {
                    None
                } else if failed {
                    Some("already failed this client")
                } else if !matches!(state, State::Up | State::SlowStart(_)) {
                    Some(state.name())
                } else if full {
                    Some("full")
                } else {
                    // Healthy by its state, yet not usable: its passive
                    // marks say to wait.
                    Some("cooling_down")
                };
                Considered {
                    backend: backend.clone(),
                    state,
                    active: candidate.active,
                    weight: candidate.weight,
                    skipped,
                }
            })
            .collect()
    }

    /// Whether a client that found no room may wait: some backend it has
    /// not failed would take it but for its `max_connections`.
    pub fn any_up_but_full(&self, failed: &[bool]) -> bool {
        let now = Instant::now();
        let slow_start = self.slow_start();
        self.backends.iter().zip(failed).any(|(backend, &failed)| {
            let live = &backend.live;
            !failed
                && live.accepting()
                && live.healthy(now)
                && backend
                    .max_at(live.ramp(now, slow_start))
                    .is_some_and(|max| backend.active() >= max)
        })
    }

    /// How long a backend back up takes to reach its whole share: zero
    /// (at once) under Maglev, whose table is built once for the pool
    /// and cannot give a backend part of its slots.
    pub fn slow_start(&self) -> Duration {
        slow_start(&self.config)
    }

    /// Whether a backend's `max_connections` is rising with its slow
    /// start at `now`: room that comes with no event.
    pub fn limits_ramping(&self, now: Instant) -> bool {
        let slow_start = self.slow_start();
        !slow_start.is_zero()
            && self.backends.iter().any(|backend| {
                backend.max_connections.is_some()
                    && backend.live.ramp(now, slow_start).is_some()
            })
    }

    /// The backend with this id, if this pool has it.
    pub fn backend(&self, id: &str) -> Option<&Arc<Backend>> {
        self.backends.iter().find(|backend| backend.id == id)
    }

    /// How many tries a client gets: its backend and `retries` more.
    pub fn tries(&self) -> usize {
        match self.config.retries {
            Some(retries) => retries as usize + 1,
            None => usize::MAX,
        }
    }
}

/// The slow start `config` gives: none with Maglev, whose clients stay
/// on their backend whatever its weight.
fn slow_start(config: &Config) -> Duration {
    if config.algorithm == crate::select::Algorithm::Maglev {
        return Duration::ZERO;
    }
    config.health.slow_start
}

/// What weights are multiplied by with `slow_start`: [`RAMP_SCALE`] if
/// there is one.
fn weight_scale(slow_start: Duration) -> u32 {
    if slow_start.is_zero() { 1 } else { RAMP_SCALE }
}

/// How `tls://` backends are checked, from `[tls]`: loaded again with
/// every pool, so a new CA file is read at a reload.
fn backend_tls(config: &Config) -> Result<Option<BackendTls>, Error> {
    if config.tls.insecure {
        return Ok(Some(BackendTls::insecure()));
    }
    match &config.tls.ca {
        Some(ca) => Ok(Some(BackendTls::verify(
            lab_common::tls::client_config(ca)?,
        ))),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Address;
    use crate::config::BackendConfig;
    use crate::select::Algorithm;

    fn config(ids: &[&str], algorithm: Algorithm) -> Arc<Config> {
        let backends = ids
            .iter()
            .enumerate()
            .map(|(index, id)| {
                let address: Address =
                    format!("127.0.0.1:{}", 5000 + index).parse().unwrap();
                BackendConfig {
                    id: (*id).to_owned(),
                    ..BackendConfig::at(address)
                }
            })
            .collect();
        Arc::new(Config {
            algorithm,
            backends,
            ..Config::default()
        })
    }

    #[test]
    fn a_backend_that_stays_keeps_its_record_and_a_new_one_gets_one() {
        let (queue, cut) = (Queue::new(), CancellationToken::new());
        let mut lives = HashMap::new();
        let one = Pool::build(
            config(&["a", "b"], Algorithm::RoundRobin),
            &mut lives,
            &queue,
            &cut,
        )
        .unwrap();
        let guard = one.backends[1].try_track(None).unwrap();
        let two = Pool::build(
            config(&["c", "b"], Algorithm::LeastConnections),
            &mut lives,
            &queue,
            &cut,
        )
        .unwrap();
        assert!(Arc::ptr_eq(&one.backends[1].live, &two.backends[1].live));
        assert_eq!(two.backends[1].active(), 1, "b still counts its client");
        assert_eq!(two.backends[0].active(), 0);
        // Least connections sees b's open connection in the new pool.
        let (mut candidates, mut order) = (Vec::new(), Vec::new());
        two.order(0, &[false, false], &mut candidates, &mut order);
        assert_eq!(order, [0, 1]);
        drop(guard);
        assert_eq!(one.backends[1].active(), 0);
    }

    /// A pool of three backends weighted 1, 2 and 3, seeded.
    fn weighted(algorithm: Algorithm) -> Pool {
        let mut config =
            Arc::unwrap_or_clone(config(&["a", "b", "c"], algorithm));
        for (backend, weight) in config.backends.iter_mut().zip(1..) {
            backend.weight = weight;
        }
        config.seed = Some(7);
        let (queue, cut) = (Queue::new(), CancellationToken::new());
        Pool::build(Arc::new(config), &mut HashMap::new(), &queue, &cut)
            .unwrap()
    }

    /// Looks at every backend until the next client would take the quick
    /// path of `pick` (the look found each usable, and nothing changed
    /// since): other tests in this process may count changes of their
    /// own in between.
    fn quick_path_open(pool: &Pool) {
        let none = [false; 3];
        for _ in 0..100 {
            pool.candidates(&none, &mut Vec::new());
            if pool.all_usable(&none).is_some() {
                return;
            }
        }
        panic!("100 looks and none found every backend usable");
    }

    #[test]
    fn the_quick_path_picks_what_a_look_at_every_backend_would() {
        for algorithm in Algorithm::ALL {
            let pool = weighted(algorithm);
            // Open connections, for the algorithms that weigh loads.
            let _guards = [0, 0, 2]
                .map(|index| pool.backends[index].try_track(None).unwrap());
            let alone = select::build(
                algorithm,
                &pool
                    .backends
                    .iter()
                    .map(|b| Member {
                        id: b.id.clone(),
                        weight: b.weight,
                    })
                    .collect::<Vec<_>>(),
                Some(7),
            );
            let candidates: Vec<Candidate> = pool
                .backends
                .iter()
                .map(|b| Candidate {
                    weight: b.weight,
                    active: b.active(),
                    usable: true,
                })
                .collect();
            quick_path_open(&pool);
            let mut picked = Vec::new();
            let mut alone_picked = Vec::new();
            for key in 0..40 {
                picked.push(pool.pick(key, &[false; 3], &mut Vec::new()));
                alone_picked.push(alone.pick(&candidates, key));
            }
            assert_eq!(picked, alone_picked, "{algorithm}");
        }
    }

    #[test]
    fn a_backend_taken_out_is_not_the_next_clients_pick() {
        let rules = HealthRules {
            failures: 1,
            ..HealthRules::from(&Config::default().health)
        };
        // How to take backend b out, by name.
        type TakeOut = (&'static str, fn(&Live, &HealthRules));
        let take_out: [TakeOut; 4] = [
            ("down", |live, _| {
                live.update_health(|health| {
                    health.force_down();
                    None
                });
            }),
            ("cooling down", |live, rules| {
                live.update_health(|health| {
                    health.connection_failed(rules, Instant::now(), "test")
                });
            }),
            ("disabled", |live, _| {
                live.set_admin(crate::live::Admin::Disabled);
            }),
            ("retiring", |live, _| {
                live.retire();
            }),
        ];
        for algorithm in Algorithm::ALL {
            for (how, take_out) in take_out {
                let pool = weighted(algorithm);
                quick_path_open(&pool);
                take_out(&pool.backends[1].live, &rules);
                for key in 0..30 {
                    let picked = pool.pick(key, &[false; 3], &mut Vec::new());
                    assert_ne!(picked, Some(1), "{algorithm}: b {how}");
                }
            }
        }
    }
}
