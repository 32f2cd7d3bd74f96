//! What `lb` learns about a backend while it runs, kept by the backend's
//! id across reloads: open connections and totals, health and when it
//! last changed, the operator's say (drain, disable, a weight), and
//! whether a reload removed it.
//!
//! A pool (`pool.rs`) is rebuilt whole on every reload; a backend that
//! stays in the new pool is handed the same [`Live`], so a backend that
//! was DOWN stays DOWN and one with 50 open connections still counts
//! them. A backend that leaves is *retiring*: no new client, its checker
//! stops, its connections get the `drain` timeout and are then cut
//! ([`Live::cut`]), and its record is dropped with its last connection
//! (sozu's Closing → Closed).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::health::{Change, ChangeKind, HealthState};
use crate::stats::BackendStats;

/// What the operator said of a backend through the admin API. Survives a
/// reload while the backend stays in the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Admin {
    /// Takes clients when healthy: the normal state.
    Enabled,
    /// No new clients; open connections finish; checks go on.
    Draining,
    /// Maintenance: no new clients, and no checks either.
    Disabled,
}

impl Admin {
    pub fn as_str(self) -> &'static str {
        match self {
            Admin::Enabled => "enabled",
            Admin::Draining => "draining",
            Admin::Disabled => "disabled",
        }
    }
}

/// A backend's state, the one list the API, the page and the metrics use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Up,
    Down,
    CoolingDown,
    /// Up again after being down, taking a growing share: the percentage.
    SlowStart(u8),
    Draining,
    Disabled,
    Retiring,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Down => "down",
            State::CoolingDown => "cooling_down",
            State::SlowStart(_) => "slow_start",
            State::Draining => "draining",
            State::Disabled => "disabled",
            State::Retiring => "retiring",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::SlowStart(percent) => write!(f, "slow_start {percent}%"),
            other => f.write_str(other.name()),
        }
    }
}

/// The operator's say over one backend.
#[derive(Clone, Debug)]
pub struct Control {
    pub admin: Admin,
    /// A weight set through the API, over the config's.
    pub weight: Option<u32>,
}

/// When a verdict last changed and why: what `GET /api/backends` shows.
#[derive(Clone, Debug)]
pub struct Since {
    pub at: Instant,
    pub why: String,
}

/// What a pick reads of a backend, without a lock and side by side (a
/// new client reads it for every backend, and with 1,000 backends each
/// cache line it spans is 1,000 more to fetch): its open connections,
/// whether it takes clients, and the health state's verdict, copied out
/// of the health lock after every change (a lock per backend would cost
/// about 20 ns each). The verdict's two fields are read apart, so a pick
/// may see a change half made: one pick's worth of staleness, which the
/// lock did not prevent either (the state may change right after it is
/// read). Aligned to a cache line, so that it is exactly one.
#[derive(Debug)]
#[repr(align(64))]
struct PickState {
    /// Client connections open to it now; see `backend::ActiveGuard`.
    active: AtomicU32,
    /// Enabled and not retiring (the two locks it sums up).
    accepting: AtomicBool,
    /// What `out_until` counts from.
    epoch: Instant,
    /// The active checks say UP.
    up: AtomicBool,
    /// While failed connections keep it out: when that ends, in
    /// nanoseconds after `epoch`, plus one; 0 when it is not kept out.
    out_until: AtomicU64,
}

impl PickState {
    fn new(health: &HealthState) -> PickState {
        let state = PickState {
            active: AtomicU32::new(0),
            accepting: AtomicBool::new(true),
            epoch: Instant::now(),
            up: AtomicBool::new(false),
            out_until: AtomicU64::new(0),
        };
        state.publish(health);
        state
    }

    /// Copies the health state's verdict.
    fn publish(&self, health: &HealthState) {
        let out_until = health.out_until().map_or(0, |until| {
            let after = until.saturating_duration_since(self.epoch);
            u64::try_from(after.as_nanos()).unwrap_or(u64::MAX - 1) + 1
        });
        let up = health.status() == crate::health::Status::Up;
        let before = (
            self.out_until.swap(out_until, Ordering::AcqRel),
            self.up.swap(up, Ordering::AcqRel),
        );
        if before != (out_until, up) {
            changed();
        }
    }

    /// Whether the checks say UP, and whether failed connections keep
    /// it out at `now`.
    fn read(&self, now: Instant) -> (bool, bool) {
        let up = self.up.load(Ordering::Acquire);
        let out_until = self.out_until.load(Ordering::Acquire);
        // The clock is read only for a backend that was taken out.
        let cooling = out_until != 0
            && u128::from(out_until - 1)
                > now.saturating_duration_since(self.epoch).as_nanos();
        (up, cooling)
    }
}

/// How many times, since `lb` started, a backend's health verdict or its
/// say on taking clients changed: what can take a backend out of the
/// candidates with no client's doing. A pool that looked at every
/// backend and found each usable at its configured weight notes the
/// count it read first; while the count stays the same, a new client
/// may skip the look at each backend (`Pool::pick`). One count for the
/// whole process: a change anywhere only costs the next client one full
/// look, and a backend coming back (a cool-down that ends) needs no
/// count, since the pools that miss it are already looking.
static CHANGES: AtomicU64 = AtomicU64::new(0);

/// The count of [`CHANGES`] now.
pub fn changes() -> u64 {
    CHANGES.load(Ordering::Acquire)
}

/// Counts one change, after the change itself is stored.
fn changed() {
    CHANGES.fetch_add(1, Ordering::Release);
}

/// One backend's live record. See the module's docs.
#[derive(Debug)]
pub struct Live {
    pub id: String,
    /// Client connections it has been given since `lb` started.
    total: AtomicU64,
    health: Mutex<HealthState>,
    /// Open connections, taking clients, health: what a pick reads.
    pick: PickState,
    /// When the active checks last brought it up after it was down: the
    /// start of its slow start. `None` at first: a backend `lb` starts
    /// with takes its whole share at once, as HAProxy does.
    recovered_at: Mutex<Option<Instant>>,
    control: Mutex<Control>,
    since: Mutex<Since>,
    retiring: Mutex<Option<Instant>>,
    /// Cancelled to end this backend's connections: when it retires and
    /// its drain runs out, or (being a child of `lb`'s own) at the end of
    /// `lb`'s drain.
    cut: CancellationToken,
    /// Woken when its last connection ends.
    idle: Notify,
    /// Bytes, failures, checks: what the admin listener shows.
    pub stats: BackendStats,
}

impl Live {
    /// A backend `lb` has just learnt of. `cut` is `lb`'s own token, of
    /// which this backend's is a child.
    pub fn new(id: &str, cut: &CancellationToken) -> Live {
        Live {
            id: id.to_owned(),
            total: AtomicU64::new(0),
            health: Mutex::new(HealthState::new()),
            pick: PickState::new(&HealthState::new()),
            recovered_at: Mutex::new(None),
            control: Mutex::new(Control {
                admin: Admin::Enabled,
                weight: None,
            }),
            since: Mutex::new(Since {
                at: Instant::now(),
                why: "new".to_owned(),
            }),
            retiring: Mutex::new(None),
            cut: cut.child_token(),
            idle: Notify::new(),
            stats: BackendStats::new(),
        }
    }

    /// Client connections open to this backend now.
    pub fn active(&self) -> u32 {
        self.pick.active.load(Ordering::Acquire)
    }

    /// Client connections it has been given in all.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Counts one more connection if that keeps it within `max`; the
    /// check and the count are one atomic step, so two clients cannot
    /// both take the last place.
    pub(crate) fn try_add(&self, max: u32) -> bool {
        let added = self
            .pick
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |active| {
                (active < max).then_some(active + 1)
            })
            .is_ok();
        if added {
            self.total.fetch_add(1, Ordering::Relaxed);
        }
        added
    }

    /// One connection fewer.
    pub(crate) fn remove(&self) {
        if self.pick.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Waits until no connection is open to this backend.
    pub async fn idle(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.active() == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Runs `update` on the health state and returns the change it made,
    /// if any, noting when it happened (and, for a backend that comes
    /// back up, that its slow start begins now).
    pub fn update_health(
        &self,
        update: impl FnOnce(&mut HealthState) -> Option<Change>,
    ) -> Option<Change> {
        let mut health = lock(&self.health);
        let change = update(&mut health);
        self.pick.publish(&health);
        drop(health);
        let change = change?;
        let now = Instant::now();
        if change.kind == ChangeKind::Up {
            *lock(&self.recovered_at) = Some(now);
        }
        *lock(&self.since) = Since {
            at: now,
            why: change.to_string(),
        };
        Some(change)
    }

    /// Whether the health verdicts let it take a client at `now`.
    pub fn healthy(&self, now: Instant) -> bool {
        let (up, cooling) = self.verdicts(now);
        up && !cooling
    }

    /// The two verdicts at `now`, read at once: whether the checks say
    /// UP, and whether failed connections hold it out.
    pub fn verdicts(&self, now: Instant) -> (bool, bool) {
        self.pick.read(now)
    }

    /// Whether the operator lets it take new clients, and it is not
    /// retiring.
    pub fn accepting(&self) -> bool {
        self.pick.accepting.load(Ordering::Acquire)
    }

    /// How far along its slow start it is at `now`: a share of its
    /// weight from 0.1 to 1, or `None` once done (or never started).
    #[inline]
    pub fn ramp(&self, now: Instant, slow_start: Duration) -> Option<f64> {
        if slow_start.is_zero() {
            return None;
        }
        ramp(*lock(&self.recovered_at), now, slow_start)
    }

    /// Its state, as the API names it.
    pub fn state(&self, now: Instant, slow_start: Duration) -> State {
        if self.is_retiring() {
            return State::Retiring;
        }
        match lock(&self.control).admin {
            Admin::Disabled => return State::Disabled,
            Admin::Draining => return State::Draining,
            Admin::Enabled => {}
        }
        let health = lock(&self.health);
        if health.status() == crate::health::Status::Down {
            State::Down
        } else if health.cooling_down(now) {
            State::CoolingDown
        } else {
            drop(health);
            match self.ramp(now, slow_start) {
                Some(share) => SlowStart((share * 100.0) as u8),
                None => State::Up,
            }
        }
    }

    pub fn since(&self) -> Since {
        lock(&self.since).clone()
    }

    pub fn control(&self) -> Control {
        lock(&self.control).clone()
    }

    /// Sets the operator's state; the previous one.
    pub fn set_admin(&self, admin: Admin) -> Admin {
        let before = std::mem::replace(&mut lock(&self.control).admin, admin);
        self.update_accepting();
        if before != admin {
            *lock(&self.since) = Since {
                at: Instant::now(),
                why: format!("{} through the admin API", admin.as_str()),
            };
        }
        before
    }

    pub fn set_weight(&self, weight: Option<u32>) {
        lock(&self.control).weight = weight;
    }

    /// Marks it retiring (a reload removed it); `false` if it already was.
    pub fn retire(&self) -> bool {
        let mut retiring = lock(&self.retiring);
        if retiring.is_some() {
            return false;
        }
        *retiring = Some(Instant::now());
        drop(retiring);
        self.update_accepting();
        *lock(&self.since) = Since {
            at: Instant::now(),
            why: "removed from the config".to_owned(),
        };
        true
    }

    /// Sets `accepting` from the operator's say and the retirement.
    /// Under the `control` lock, which every caller takes in turn, so
    /// that a drain and a reload at one moment cannot store each other's
    /// stale view.
    fn update_accepting(&self) {
        let control = lock(&self.control);
        let accepting = control.admin == Admin::Enabled && !self.is_retiring();
        if self.pick.accepting.swap(accepting, Ordering::AcqRel) != accepting {
            changed();
        }
    }

    pub fn is_retiring(&self) -> bool {
        lock(&self.retiring).is_some()
    }

    /// Back in the config before its retirement ended (removed by one
    /// reload, added again by the next): it keeps its connections and
    /// takes clients again. The retirement in progress sees it and cuts
    /// nothing.
    pub fn stay(&self) {
        *lock(&self.retiring) = None;
        self.update_accepting();
        *lock(&self.since) = Since {
            at: Instant::now(),
            why: "back in the config".to_owned(),
        };
    }

    /// Which retirement this is: each `retire` starts a new one, so that
    /// the end of an old one (its drain time, after the backend came back
    /// and left again) cannot cut the connections of the next.
    pub fn retirement(&self) -> Option<Instant> {
        *lock(&self.retiring)
    }

    /// The token its connections' relays watch.
    pub fn cut(&self) -> &CancellationToken {
        &self.cut
    }

    /// What a new process is handed at an upgrade.
    pub fn snapshot(&self) -> Snapshot {
        let down = lock(&self.health).status() == crate::health::Status::Down;
        let control = self.control();
        Snapshot {
            id: self.id.clone(),
            down,
            admin: control.admin,
            weight: control.weight,
            why: self.since().why,
        }
    }

    /// Takes over what an old process knew of this backend.
    pub fn restore(&self, snapshot: &Snapshot) {
        if snapshot.down {
            let mut health = lock(&self.health);
            health.force_down();
            self.pick.publish(&health);
        }
        if snapshot.down || snapshot.admin != Admin::Enabled {
            *lock(&self.since) = Since {
                at: Instant::now(),
                why: format!("{} (before the upgrade)", snapshot.why),
            };
        }
        let mut control = lock(&self.control);
        control.admin = snapshot.admin;
        control.weight = snapshot.weight;
        drop(control);
        self.update_accepting();
    }
}

use State::SlowStart;

/// What one backend's record says at an upgrade, by id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub id: String,
    pub down: bool,
    pub admin: Admin,
    pub weight: Option<u32>,
    /// Why it is in its state (`GET /api/backends`' `why`).
    #[serde(default)]
    pub why: String,
}

// ANCHOR: ramp
/// The share of its weight a backend that came back up at `recovered_at`
/// takes at `now` during a slow start of `slow_start`: from 10% (Envoy's
/// floor: a backend at 0% would get no client and so never prove itself)
/// rising linearly to 100%, then `None` (no ramp).
pub fn ramp(
    recovered_at: Option<Instant>,
    now: Instant,
    slow_start: Duration,
) -> Option<f64> {
    let since = now.saturating_duration_since(recovered_at?);
    if slow_start.is_zero() || since >= slow_start {
        return None;
    }
    let share = since.as_secs_f64() / slow_start.as_secs_f64();
    Some(share.max(MIN_SHARE))
}

const MIN_SHARE: f64 = 0.1;
// ANCHOR_END: ramp

/// Locks `mutex` even if a thread panicked while holding it: every
/// update here is a few assignments that leave the state consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_slow_start_ramp_rises_from_a_tenth_to_the_whole() {
        let slow = Duration::from_secs(30);
        let start = Instant::now();
        assert_eq!(ramp(None, start, slow), None, "never down: no ramp");
        assert_eq!(ramp(Some(start), start, slow), Some(0.1));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(ramp(Some(start), Instant::now(), slow), Some(0.1));
        tokio::time::advance(Duration::from_secs(5)).await;
        let at_6s = ramp(Some(start), Instant::now(), slow).unwrap();
        assert!((at_6s - 0.2).abs() < 1e-9, "{at_6s}");
        tokio::time::advance(Duration::from_secs(9)).await;
        let at_15s = ramp(Some(start), Instant::now(), slow).unwrap();
        assert!((at_15s - 0.5).abs() < 1e-9, "{at_15s}");
        tokio::time::advance(Duration::from_secs(15)).await;
        assert_eq!(ramp(Some(start), Instant::now(), slow), None);
        assert_eq!(ramp(Some(start), Instant::now(), Duration::ZERO), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_backend_that_comes_back_up_starts_its_ramp_then() {
        let live = Live::new("a", &CancellationToken::new());
        let slow = Duration::from_secs(10);
        let rules = crate::health::HealthRules {
            rise: 1,
            fall: 1,
            failures: 3,
            cooldown: Duration::from_secs(10),
            may_eject: true,
            hold_down: Duration::from_secs(1),
            stable: Duration::from_secs(30),
        };
        assert_eq!(live.state(Instant::now(), slow), State::Up);
        let _ = live.update_health(|h| {
            h.check_failed(&rules, Instant::now(), "refused")
        });
        assert_eq!(live.state(Instant::now(), slow), State::Down);
        tokio::time::advance(Duration::from_secs(1)).await;
        let _ = live.update_health(|h| h.check_passed(&rules, Instant::now()));
        assert_eq!(live.state(Instant::now(), slow), State::SlowStart(10));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(live.state(Instant::now(), slow), State::SlowStart(50));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(live.state(Instant::now(), slow), State::Up);
    }

    #[test]
    fn the_operator_and_a_reload_come_before_health_in_the_state() {
        let live = Live::new("a", &CancellationToken::new());
        let now = Instant::now();
        live.set_admin(Admin::Draining);
        assert_eq!(live.state(now, Duration::ZERO), State::Draining);
        assert!(!live.accepting());
        live.set_admin(Admin::Disabled);
        assert_eq!(live.state(now, Duration::ZERO), State::Disabled);
        assert!(live.retire());
        assert!(!live.retire(), "once");
        assert_eq!(live.state(now, Duration::ZERO), State::Retiring);
    }
}
