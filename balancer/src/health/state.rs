//! The up/down state machine of one backend. (Stub: to be written.)

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

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
}

/// What the active checks say.
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

/// A change of state, for one log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub backend: String,
    pub from: String,
    pub to: String,
    pub why: String,
}

/// One backend's health.
#[derive(Debug)]
pub struct HealthState {}

impl HealthState {
    pub fn new() -> HealthState {
        HealthState {}
    }

    /// A client's connection failed (stub).
    pub fn connection_failed(
        &mut self,
        rules: &HealthRules,
        now: Instant,
        why: &str,
    ) -> Option<Change> {
        let _ = (rules, now, why);
        None
    }

    /// A client's connection succeeded (stub).
    pub fn connection_succeeded(&mut self) {}

    /// Whether new clients may be sent to the backend at `now`.
    pub fn usable(&self, now: Instant) -> bool {
        let _ = now;
        true
    }
}

impl Default for HealthState {
    fn default() -> Self {
        HealthState::new()
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "backend {} {}: {}", self.backend, self.to, self.why)
    }
}
