//! The health of one backend: a small state machine, pure. It is told
//! what happened (a check passed or failed, a client's connection failed
//! or succeeded) and when, and answers with the change of state, if any,
//! for the caller to log. It opens no socket and reads no clock, so its
//! tests drive it with `tokio::time::pause` and `advance`.
//!
//! Two verdicts live side by side, and a backend takes new clients only
//! when both allow it:
//!
//! - the active checks' [`Status`], `Up` or `Down`, moved by `rise`
//!   passed checks in a row or `fall` failed ones (HAProxy's rule);
//! - the passive mark: `failures` failed client connections in a row take
//!   the backend *out* for `cooldown`, whatever the checks say (nginx's
//!   `max_fails` / `fail_timeout`). Clients notice a dead backend long
//!   before a check every two seconds can, and this stops them from
//!   paying a failed dial each while the checks catch up. A check that
//!   passes after the failures ends the cooldown at once: a short failure
//!   of everything (a blip) must not keep clients away for a whole
//!   cooldown once the backends answer again. (How many backends the
//!   passive marks may hold out at once is the pool's to say:
//!   [`HealthRules::may_eject`].)
//!
//! A backend that flaps (DOWN again less than `stable` after coming UP)
//! is held DOWN after its checks pass again: `hold_down`, doubled at each
//! flap in a row, as Envoy's ejection time grows with each ejection. Its
//! state changes, and its log lines, grow rarer instead of following
//! every flap.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{HealthConfig, show_duration};
use crate::count;

/// The thresholds of `[health]` in the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthRules {
    /// Passed checks in a row that bring a down backend up.
    pub rise: u32,
    /// Failed checks in a row that take an up backend down.
    pub fall: u32,
    /// Failed client connections in a row that take a backend out for
    /// `cooldown` (passive marking).
    pub failures: u32,
    pub cooldown: Duration,
    /// Whether the passive marks may take this backend out now: the
    /// pool says no when `max_ejection_percent` of its backends already
    /// are (`Pool::rules_now`).
    pub may_eject: bool,
    /// How long a flapping backend is held DOWN at its first flap
    /// (doubled at each next one); zero: never held.
    pub hold_down: Duration,
    /// UP this long, a backend that goes DOWN is not flapping.
    pub stable: Duration,
}

/// The longest a flapping backend is held DOWN.
const MAX_HOLD: Duration = Duration::from_secs(300);

impl From<&HealthConfig> for HealthRules {
    fn from(config: &HealthConfig) -> HealthRules {
        HealthRules {
            rise: config.rise,
            fall: config.fall,
            failures: config.failures,
            cooldown: config.cooldown,
            may_eject: true,
            hold_down: config.hold_down,
            stable: config.stable,
        }
    }
}

/// What the active checks say of a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Up,
    Down,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Up => "UP",
            Status::Down => "DOWN",
        })
    }
}

/// Which of the two verdicts changed, and which way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// The checks took it down (was up).
    Down,
    /// The checks brought it up (was down).
    Up,
    /// Failed client connections took it out for its cooldown (was in).
    Out,
    /// Its cooldown is over (was out).
    Back,
}

impl ChangeKind {
    /// The word that starts the log line, and the `change` field.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Down => "DOWN",
            ChangeKind::Up => "UP",
            ChangeKind::Out => "out",
            ChangeKind::Back => "back",
        }
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change of a backend's state: one log line. Displayed without the
/// backend, which the state does not know: `DOWN after 3 failed checks:
/// connect: Connection refused (os error 111)`; [`Change::log`] writes the
/// whole line.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use = "a change of state is to be logged"]
pub struct Change {
    pub kind: ChangeKind,
    /// The rest of the line: how many checks or connections, and why.
    pub why: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.why)
    }
}

// ANCHOR: log_change
impl Change {
    /// Logs this change of `backend`'s state: one line, at warn when the
    /// backend stops taking clients and at info when it may take them
    /// again, with fields a log collector can filter on. Both the checker
    /// and `proxy` (passive marks) log through here, so every change reads
    /// the same wherever it was noticed.
    ///
    /// It reads `backend 127.0.0.1:4445: health: DOWN after 3 failed
    /// checks: connect: Connection refused (os error 111) (change: DOWN)`.
    pub fn log(&self, backend: &str) {
        let change = self.kind.as_str();
        match self.kind {
            ChangeKind::Down | ChangeKind::Out => {
                tracing::warn!(backend, phase = "health", change, "{self}")
            }
            ChangeKind::Up | ChangeKind::Back => {
                tracing::info!(backend, phase = "health", change, "{self}")
            }
        }
    }
}
// ANCHOR_END: log_change

// ANCHOR: health_state
/// One backend's health.
#[derive(Debug)]
pub struct HealthState {
    /// The active checks' verdict.
    status: Status,
    /// Whether any check has passed yet. Until one has, a single failure
    /// is enough to take the backend down: a backend that is dead when
    /// `lb` starts should not get clients for `fall` intervals first.
    ever_passed: bool,
    /// Checks in a row that went against `status`: passed ones while
    /// down, failed ones while up. One counter is enough, because it
    /// restarts whenever a check agrees with the status.
    streak: u32,
    /// Client connections that failed in a row (passive marking).
    failed_connections: u32,
    /// While out: when the cooldown ends. It stays set after that moment
    /// until someone reports the end (see [`HealthState::cooldown_over`]);
    /// [`HealthState::usable`] compares it with the time, so clients come
    /// back on time even before the report.
    out_until: Option<Instant>,
    /// While out: when it was taken out. A check that began after it and
    /// passes ends the cooldown.
    out_since: Option<Instant>,
    /// When the checks last brought it UP (`None` before they ever did):
    /// going DOWN again sooner than `stable` after it is a flap.
    up_since: Option<Instant>,
    /// Flaps in a row.
    flaps: u32,
    /// A flapping backend stays DOWN until then, whatever its checks say.
    held_until: Option<Instant>,
}
// ANCHOR_END: health_state

impl HealthState {
    /// A backend `lb` has just learnt of: up (it takes clients at once,
    /// as step 08 did) and never checked.
    pub fn new() -> HealthState {
        HealthState {
            status: Status::Up,
            ever_passed: false,
            streak: 0,
            failed_connections: 0,
            out_until: None,
            out_since: None,
            up_since: None,
            flaps: 0,
            held_until: None,
        }
    }

    /// Down without a check of its own: what a new process takes over
    /// from the old at an upgrade. It needs `rise` passed checks to come
    /// up, as any backend the checks saw down.
    pub fn force_down(&mut self) {
        self.status = Status::Down;
        self.ever_passed = true;
        self.streak = 0;
    }

    /// The active checks' verdict.
    pub fn status(&self) -> Status {
        self.status
    }

    /// While failed connections keep it out: when that ends.
    pub fn out_until(&self) -> Option<Instant> {
        self.out_until
    }

    /// Whether failed connections keep the backend out at `now`.
    pub fn cooling_down(&self, now: Instant) -> bool {
        self.out_until.is_some_and(|until| now < until)
    }

    // ANCHOR: usable
    /// Whether new clients may be sent to the backend at `now`: up by the
    /// active checks and not cooling down.
    pub fn usable(&self, now: Instant) -> bool {
        self.status == Status::Up && !self.cooling_down(now)
    }
    // ANCHOR_END: usable

    // ANCHOR: checks
    /// An active check that began `at` passed.
    pub fn check_passed(
        &mut self,
        rules: &HealthRules,
        at: Instant,
    ) -> Option<Change> {
        self.ever_passed = true;
        match self.status {
            Status::Up => {
                self.streak = 0;
                // Out by failed connections, yet a check that began after
                // them passes: the backend answers again (a blip is over),
                // so clients may come back now, not at the cooldown's end.
                let since = self.out_since?;
                if since > at || !self.cooling_down(at) {
                    return None;
                }
                self.out_until = None;
                self.out_since = None;
                self.failed_connections = 0;
                Some(Change {
                    kind: ChangeKind::Back,
                    why: "after a check passed, which ends its cooldown"
                        .to_owned(),
                })
            }
            Status::Down => {
                self.streak += 1;
                if self.streak < rules.rise {
                    return None;
                }
                if self.held_until.is_some_and(|until| at < until) {
                    // Flapping: held DOWN a while longer. The streak
                    // stays complete, so the first check after the hold
                    // brings it UP.
                    self.streak = rules.rise;
                    return None;
                }
                self.status = Status::Up;
                self.streak = 0;
                self.up_since = Some(at);
                self.held_until = None;
                let mut why = format!(
                    "after {}",
                    count(rules.rise as usize, "passed check")
                );
                // The checks saw it down, then saw it recover: that ends a
                // cooldown too, and restarts the count of failures. (A
                // backend the checks never saw down stays out for its
                // whole cooldown, whatever they say: clients failed to
                // reach it although it answered the checks.) The checker
                // reports a cooldown's end just before each verdict, so
                // a cooldown still recorded is still running.
                self.failed_connections = 0;
                self.out_since = None;
                if self.out_until.take().is_some() {
                    why.push_str(", which ends its cooldown");
                }
                Some(Change {
                    kind: ChangeKind::Up,
                    why,
                })
            }
        }
    }

    // ANCHOR: check_failed
    /// An active check that began `at` failed, for the reason `why`.
    pub fn check_failed(
        &mut self,
        rules: &HealthRules,
        at: Instant,
        why: &str,
    ) -> Option<Change> {
        match self.status {
            Status::Down => {
                self.streak = 0;
                None
            }
            Status::Up if !self.ever_passed => {
                self.status = Status::Down;
                self.streak = 0;
                Some(Change {
                    kind: ChangeKind::Down,
                    why: format!("after its first check failed: {why}"),
                })
            }
            Status::Up => {
                self.streak += 1;
                if self.streak < rules.fall {
                    return None;
                }
                self.status = Status::Down;
                self.streak = 0;
                let held = self.flapped(rules, at);
                Some(Change {
                    kind: ChangeKind::Down,
                    why: format!(
                        "after {}: {why}{held}",
                        count(rules.fall as usize, "failed check")
                    ),
                })
            }
        }
    }
    // ANCHOR_END: check_failed

    // ANCHOR: flapped
    /// Gone DOWN at `at`: if it came UP less than `stable` before, that
    /// is one more flap in a row, and it is held DOWN for `hold_down`
    /// doubled for each flap before this one. The words to add to the
    /// log line, if held.
    fn flapped(&mut self, rules: &HealthRules, at: Instant) -> String {
        let up_for = self
            .up_since
            .map(|since| at.saturating_duration_since(since));
        self.up_since = None;
        if up_for.is_none_or(|up_for| up_for >= rules.stable) {
            self.flaps = 0;
            return String::new();
        }
        self.flaps += 1;
        if rules.hold_down.is_zero() {
            return String::new();
        }
        let doublings = (self.flaps - 1).min(16);
        let hold = rules.hold_down.saturating_mul(1 << doublings).min(MAX_HOLD);
        self.held_until = Some(at + hold);
        format!(
            "; flapping ({} in a row, each UP for less than {}): held \
             DOWN for at least {}",
            count(self.flaps as usize, "flap"),
            show_duration(rules.stable),
            show_duration(hold)
        )
    }
    // ANCHOR_END: flapped
    // ANCHOR_END: checks

    // ANCHOR: passive
    // ANCHOR: connection_failed
    /// A client's connection to the backend failed at `now` (a refused
    /// or timed-out dial, a failed TLS handshake) for the reason `why`.
    pub fn connection_failed(
        &mut self,
        rules: &HealthRules,
        now: Instant,
        why: &str,
    ) -> Option<Change> {
        if self.cooling_down(now) {
            // A dial that began before the backend was taken out: what it
            // says is already known, and counting it would shorten the
            // next round.
            return None;
        }
        let back = self.cooldown_over(now);
        self.failed_connections += 1;
        if self.failed_connections < rules.failures {
            return back;
        }
        if !rules.may_eject {
            // Enough of the pool is out already: this one stays in. Its
            // count stays full, so the next failure tries again.
            self.failed_connections = rules.failures;
            return back;
        }
        // The count starts again from zero when the cooldown ends, so
        // after it the backend gets `failures` chances again, as at first.
        self.failed_connections = 0;
        self.out_until = Some(now + rules.cooldown);
        self.out_since = Some(now);
        // With `failures = 1` the first failure after an unreported
        // cooldown ends it and starts the next: one line says both.
        let again = if back.is_some() { "again " } else { "" };
        Some(Change {
            kind: ChangeKind::Out,
            why: format!(
                "{again}for {} after {}: {why}",
                show_duration(rules.cooldown),
                count(rules.failures as usize, "failed connection")
            ),
        })
    }
    // ANCHOR_END: connection_failed

    /// A client's connection to the backend succeeded at `now`: the
    /// failures so far were not "in a row". It does not cut a cooldown
    /// short (a dial that began before the backend was taken out can
    /// still succeed), but reports one that is over.
    pub fn connection_succeeded(&mut self, now: Instant) -> Option<Change> {
        self.failed_connections = 0;
        self.cooldown_over(now)
    }

    /// If the cooldown has ended by `now` and nobody has said so yet,
    /// says so, once.
    ///
    /// The end of a cooldown is no event of its own: `usable` lets
    /// clients back at the exact moment, and the line in the log comes
    /// from whichever is first to look afterwards: the next active check
    /// (the checker calls this with each check's verdict) or the next
    /// client connection, failed or not.
    pub fn cooldown_over(&mut self, now: Instant) -> Option<Change> {
        let until = self.out_until?;
        if now < until {
            return None;
        }
        self.out_until = None;
        self.out_since = None;
        let why = match self.status {
            Status::Up => "after its cooldown".to_owned(),
            Status::Down => {
                "after its cooldown, but DOWN by its checks".to_owned()
            }
        };
        Some(Change {
            kind: ChangeKind::Back,
            why,
        })
    }
    // ANCHOR_END: passive
}

impl Default for HealthState {
    fn default() -> Self {
        HealthState::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: HealthRules = HealthRules {
        rise: 2,
        fall: 3,
        failures: 3,
        cooldown: Duration::from_secs(10),
        may_eject: true,
        hold_down: Duration::from_secs(1),
        stable: Duration::from_secs(30),
    };

    const REFUSED: &str = "connect: connection refused";

    /// A backend that has passed its first check, as most have.
    fn checked() -> HealthState {
        let mut state = HealthState::new();
        assert_eq!(state.check_passed(&RULES, Instant::now()), None);
        state
    }

    /// Takes an up backend down with `fall` failed checks.
    fn down() -> HealthState {
        let mut state = checked();
        for _ in 1..RULES.fall {
            assert_eq!(
                state.check_failed(&RULES, Instant::now(), REFUSED),
                None
            );
        }
        assert!(
            state
                .check_failed(&RULES, Instant::now(), REFUSED)
                .is_some()
        );
        state
    }

    /// Fails `failures` client connections at `now`; returns the change
    /// the last one made.
    fn fail_connections(state: &mut HealthState, now: Instant) -> Change {
        for _ in 1..RULES.failures {
            assert_eq!(state.connection_failed(&RULES, now, REFUSED), None);
        }
        state
            .connection_failed(&RULES, now, REFUSED)
            .expect("the last failure takes it out")
    }

    #[test]
    fn a_new_backend_is_up_before_any_check() {
        let state = HealthState::new();
        assert_eq!(state.status(), Status::Up);
        assert!(state.usable(Instant::now()));
    }

    #[test]
    fn a_backend_dead_at_start_is_down_after_one_failed_check() {
        let mut state = HealthState::new();
        let change = state.check_failed(&RULES, Instant::now(), REFUSED);
        assert_eq!(
            change.map(|change| change.to_string()),
            Some(format!("DOWN after its first check failed: {REFUSED}"))
        );
        assert_eq!(state.status(), Status::Down);
        assert!(!state.usable(Instant::now()));
    }

    #[test]
    fn once_a_check_passed_it_takes_fall_failures_in_a_row() {
        let mut state = checked();
        for _ in 1..RULES.fall {
            assert_eq!(
                state.check_failed(&RULES, Instant::now(), REFUSED),
                None
            );
            assert_eq!(state.status(), Status::Up);
        }
        let change = state.check_failed(&RULES, Instant::now(), REFUSED);
        assert_eq!(
            change.map(|change| change.to_string()),
            Some(format!("DOWN after 3 failed checks: {REFUSED}"))
        );
        assert_eq!(state.status(), Status::Down);
    }

    #[test]
    fn a_passed_check_restarts_the_count_of_failures() {
        let mut state = checked();
        for _ in 0..5 {
            for _ in 1..RULES.fall {
                assert_eq!(
                    state.check_failed(&RULES, Instant::now(), REFUSED),
                    None
                );
            }
            assert_eq!(state.check_passed(&RULES, Instant::now()), None);
        }
        assert_eq!(state.status(), Status::Up);
    }

    #[test]
    fn a_down_backend_comes_up_after_rise_passes_in_a_row() {
        let mut state = down();
        for _ in 1..RULES.rise {
            assert_eq!(state.check_passed(&RULES, Instant::now()), None);
            assert_eq!(state.status(), Status::Down);
        }
        let change = state.check_passed(&RULES, Instant::now());
        assert_eq!(
            change.map(|change| change.to_string()),
            Some("UP after 2 passed checks".to_owned())
        );
        assert!(state.usable(Instant::now()));
    }

    #[test]
    fn a_failed_check_restarts_the_count_of_passes() {
        let mut state = down();
        for _ in 0..5 {
            for _ in 1..RULES.rise {
                assert_eq!(state.check_passed(&RULES, Instant::now()), None);
            }
            assert_eq!(
                state.check_failed(&RULES, Instant::now(), REFUSED),
                None
            );
        }
        assert_eq!(state.status(), Status::Down);
    }

    #[test]
    fn a_dead_at_start_backend_needs_rise_passes_to_come_up() {
        let mut state = HealthState::new();
        assert!(
            state
                .check_failed(&RULES, Instant::now(), REFUSED)
                .is_some()
        );
        assert_eq!(state.check_passed(&RULES, Instant::now()), None);
        assert_eq!(state.status(), Status::Down);
        assert!(state.check_passed(&RULES, Instant::now()).is_some());
        assert_eq!(state.status(), Status::Up);
    }

    #[test]
    fn back_up_it_takes_fall_failures_again_not_one() {
        let mut state = down();
        for _ in 0..RULES.rise {
            let _ = state.check_passed(&RULES, Instant::now());
        }
        assert_eq!(state.status(), Status::Up);
        assert_eq!(state.check_failed(&RULES, Instant::now(), REFUSED), None);
        assert_eq!(state.status(), Status::Up);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_connections_in_a_row_take_it_out_for_the_cooldown() {
        let mut state = checked();
        let start = Instant::now();
        for _ in 1..RULES.failures {
            assert_eq!(state.connection_failed(&RULES, start, REFUSED), None);
            assert!(state.usable(start));
        }
        let change = state.connection_failed(&RULES, start, REFUSED);
        assert_eq!(
            change.map(|change| change.to_string()),
            Some(format!("out for 10s after 3 failed connections: {REFUSED}"))
        );
        assert!(!state.usable(start));

        // With no check that passes (checks off, say), it stays out for
        // the whole cooldown.
        tokio::time::advance(RULES.cooldown - Duration::from_millis(1)).await;
        assert!(!state.usable(Instant::now()));
        assert_eq!(state.cooldown_over(Instant::now()), None);

        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(state.usable(Instant::now()), "the cooldown is over");
    }

    #[tokio::test(start_paused = true)]
    async fn a_successful_connection_restarts_the_count_of_failures() {
        let mut state = checked();
        for _ in 0..5 {
            let now = Instant::now();
            for _ in 1..RULES.failures {
                assert_eq!(state.connection_failed(&RULES, now, REFUSED), None);
            }
            assert_eq!(state.connection_succeeded(now), None);
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        assert!(state.usable(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn the_end_of_a_cooldown_is_reported_once() {
        let mut state = checked();
        let _ = fail_connections(&mut state, Instant::now());
        tokio::time::advance(RULES.cooldown).await;
        let now = Instant::now();
        assert_eq!(
            state.cooldown_over(now).map(|change| change.to_string()),
            Some("back after its cooldown".to_owned())
        );
        assert_eq!(state.cooldown_over(now), None);
        assert_eq!(state.connection_succeeded(now), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_next_connection_reports_the_end_of_a_cooldown() {
        // With checks off nothing else looks: the first client after the
        // cooldown tells, whether it got through or not.
        let mut state = checked();
        let _ = fail_connections(&mut state, Instant::now());
        tokio::time::advance(RULES.cooldown).await;
        let change = state.connection_succeeded(Instant::now());
        assert_eq!(change.map(|change| change.kind), Some(ChangeKind::Back));

        let mut state = checked();
        let _ = fail_connections(&mut state, Instant::now());
        tokio::time::advance(RULES.cooldown).await;
        let change = state.connection_failed(&RULES, Instant::now(), REFUSED);
        assert_eq!(change.map(|change| change.kind), Some(ChangeKind::Back));
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_cooldown_it_takes_failures_in_a_row_again() {
        let mut state = checked();
        let _ = fail_connections(&mut state, Instant::now());
        // Dials that began before it went out fail during the cooldown;
        // they do not count towards the next round.
        for _ in 0..RULES.failures {
            let now = Instant::now();
            assert_eq!(state.connection_failed(&RULES, now, REFUSED), None);
        }
        tokio::time::advance(RULES.cooldown).await;
        let now = Instant::now();
        let _ = state.cooldown_over(now);
        for _ in 1..RULES.failures {
            assert_eq!(state.connection_failed(&RULES, now, REFUSED), None);
            assert!(state.usable(now));
        }
        let change = state.connection_failed(&RULES, now, REFUSED);
        assert_eq!(change.map(|change| change.kind), Some(ChangeKind::Out));
        assert!(!state.usable(now));
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_during_the_cooldown_does_not_end_it() {
        let mut state = checked();
        let _ = fail_connections(&mut state, Instant::now());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(state.connection_succeeded(Instant::now()), None);
        assert!(!state.usable(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn out_and_down_each_keep_it_from_clients() {
        // Out, then down by the checks: the cooldown ends, the backend
        // stays unusable, and the line says why.
        let mut state = checked();
        let _ = fail_connections(&mut state, Instant::now());
        for _ in 0..RULES.fall {
            let _ = state.check_failed(&RULES, Instant::now(), REFUSED);
        }
        tokio::time::advance(RULES.cooldown).await;
        let now = Instant::now();
        assert!(!state.cooling_down(now));
        assert!(!state.usable(now), "down by its checks");
        assert_eq!(
            state.cooldown_over(now).map(|change| change.to_string()),
            Some("back after its cooldown, but DOWN by its checks".to_owned())
        );

        // Seen down, then up by the checks while still out: the
        // recovery ends the cooldown.
        let mut state = checked();
        let start = Instant::now();
        let _ = fail_connections(&mut state, start);
        for _ in 0..RULES.fall {
            let _ = state.check_failed(&RULES, Instant::now(), REFUSED);
        }
        let _ = state.check_passed(&RULES, Instant::now());
        let change = state.check_passed(&RULES, Instant::now());
        assert_eq!(
            change.map(|change| change.to_string()),
            Some(
                "UP after 2 passed checks, which ends its cooldown".to_owned()
            )
        );
        assert_eq!(state.status(), Status::Up);
        assert!(state.usable(start));

        // Out while the checks pass all along: a check that began
        // before the failures says nothing of them; the next one that
        // passes ends the cooldown.
        let mut state = checked();
        let before = Instant::now();
        tokio::time::advance(Duration::from_millis(10)).await;
        let out_at = Instant::now();
        let _ = fail_connections(&mut state, out_at);
        assert_eq!(state.check_passed(&RULES, before), None);
        assert!(!state.usable(out_at));
        tokio::time::advance(Duration::from_millis(500)).await;
        let change = state.check_passed(&RULES, Instant::now());
        assert_eq!(
            change.map(|change| change.to_string()),
            Some("back after a check passed, which ends its cooldown".into())
        );
        assert!(state.usable(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn the_pool_may_say_no_to_one_more_passive_mark() {
        let crowded = HealthRules {
            may_eject: false,
            ..RULES
        };
        let mut state = checked();
        let now = Instant::now();
        for _ in 0..RULES.failures * 2 {
            assert_eq!(state.connection_failed(&crowded, now, REFUSED), None);
        }
        assert!(state.usable(now), "stays in while the pool has no room");
        // Room again: the very next failure takes it out.
        let out = state.connection_failed(&RULES, now, REFUSED);
        assert_eq!(out.map(|change| change.kind), Some(ChangeKind::Out));
    }

    /// Takes `state` (UP) DOWN with `fall` failed checks at `at`.
    fn fail_checks(state: &mut HealthState, at: Instant) -> Option<Change> {
        (0..RULES.fall)
            .map(|_| state.check_failed(&RULES, at, REFUSED))
            .last()
            .flatten()
    }

    /// Brings `state` (DOWN) UP with `rise` passed checks at `at`, if it
    /// may come up then.
    fn pass_checks(state: &mut HealthState, at: Instant) -> Option<Change> {
        (0..RULES.rise)
            .map(|_| state.check_passed(&RULES, at))
            .last()
            .flatten()
    }

    #[tokio::test(start_paused = true)]
    async fn a_flapping_backend_is_held_down_longer_at_each_flap() {
        let mut state = checked();
        let step = Duration::from_millis(300);
        // A first fall after a long time up: no flap, no hold.
        let down = fail_checks(&mut state, Instant::now()).unwrap();
        assert!(!down.why.contains("flapping"), "{down}");
        tokio::time::advance(step).await;
        assert!(pass_checks(&mut state, Instant::now()).is_some(), "up");
        // Each next fall within `stable` of coming up holds it longer:
        // 1 s, 2 s, 4 s (hold_down 1 s, doubled).
        for hold in [1, 2, 4] {
            tokio::time::advance(step).await;
            let down = fail_checks(&mut state, Instant::now()).unwrap();
            let held = format!("held DOWN for at least {hold}s");
            assert!(down.why.contains(&held), "{down}");
            let went_down = Instant::now();
            tokio::time::advance(step).await;
            assert_eq!(pass_checks(&mut state, Instant::now()), None);
            assert_eq!(state.status(), Status::Down, "held");
            tokio::time::advance(Duration::from_secs(hold)).await;
            let up = state.check_passed(&RULES, Instant::now());
            assert!(up.is_some(), "the first check after the hold");
            assert!(went_down.elapsed() >= Duration::from_secs(hold));
        }
        // UP for `stable`: the next fall is no flap again.
        tokio::time::advance(RULES.stable).await;
        let down = fail_checks(&mut state, Instant::now()).unwrap();
        assert!(!down.why.contains("flapping"), "{down}");
    }

    #[tokio::test(start_paused = true)]
    async fn counts_of_one_are_singular() {
        let rules = HealthRules {
            rise: 1,
            fall: 1,
            failures: 1,
            cooldown: Duration::from_millis(500),
            may_eject: true,
            hold_down: Duration::from_secs(1),
            stable: Duration::from_secs(30),
        };
        let mut state = checked();
        let down = state.check_failed(&rules, Instant::now(), "timed out");
        assert_eq!(
            down.map(|change| change.to_string()),
            Some("DOWN after 1 failed check: timed out".to_owned())
        );
        let up = state.check_passed(&rules, Instant::now());
        assert_eq!(
            up.map(|change| change.to_string()),
            Some("UP after 1 passed check".to_owned())
        );
        let out = state.connection_failed(&rules, Instant::now(), "refused");
        assert_eq!(
            out.map(|change| change.to_string()),
            Some("out for 500ms after 1 failed connection: refused".to_owned())
        );
        tokio::time::advance(rules.cooldown).await;
        let out = state.connection_failed(&rules, Instant::now(), "refused");
        assert_eq!(
            out.map(|change| change.to_string()),
            Some(
                "out again for 500ms after 1 failed connection: refused"
                    .to_owned()
            )
        );
    }
}
