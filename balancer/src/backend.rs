//! A backend: what the config says of it (id, address, TLS, weight,
//! limit) and what `lb` learns of it while running (open connections,
//! health). The live counters are kept by guards whose `Drop` gives the
//! count back, so no path through `proxy` can leak one.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use lab_common::HostPort;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::BackendConfig;
use crate::health::{Change, HealthState};

// ANCHOR: address
/// Where a backend is and whether `lb` speaks TLS to it, written as in
/// step 08: `127.0.0.1:4444` (or `tcp://127.0.0.1:4444`) for plain TCP,
/// `tls://127.0.0.1:4445` for TLS.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Address {
    pub host_port: HostPort,
    pub tls: bool,
}

impl FromStr for Address {
    type Err = String;

    fn from_str(text: &str) -> Result<Address, String> {
        let text = text.trim();
        let (tls, rest) = if let Some(rest) = text.strip_prefix("tls://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("tcp://") {
            (false, rest)
        } else if let Some((scheme, _)) = text.split_once("://") {
            return Err(format!(
                "`{text}`: unknown scheme `{scheme}://`; write HOST:PORT \
                 for plain TCP or tls://HOST:PORT for TLS"
            ));
        } else {
            (false, text)
        };
        let host_port: HostPort = rest.parse()?;
        if tls {
            // Checked now, so that a name no certificate can carry is a
            // config error, not a backend that fails every connection.
            crate::connect::server_name(host_port.host())
                .map_err(|err| format!("`{text}`: {err}"))?;
        }
        Ok(Address { host_port, tls })
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.tls {
            write!(f, "tls://{}", self.host_port)
        } else {
            write!(f, "{}", self.host_port)
        }
    }
}
// ANCHOR_END: address

/// One backend of the running balancer.
#[derive(Debug)]
pub struct Backend {
    /// A stable name: the config's `id`, or the address as written.
    /// Logs name backends by it, and Maglev hashes it.
    pub id: String,
    pub address: Address,
    /// Its share of clients, for the algorithms that read weights.
    pub weight: u32,
    /// At most this many client connections at once (`None`: no limit).
    pub max_connections: Option<u32>,
    /// Client connections open to it now; see [`ActiveGuard`].
    active: AtomicU32,
    health: Mutex<HealthState>,
    /// Woken when a connection to a backend with a limit ends: clients
    /// queued because every backend was full may find room.
    freed: Arc<Notify>,
}

impl Backend {
    /// A backend as `config` describes it; `freed` is shared by all the
    /// backends of one balancer.
    pub fn new(config: &BackendConfig, freed: Arc<Notify>) -> Backend {
        Backend {
            id: config.id.clone(),
            address: config.address.clone(),
            weight: config.weight,
            max_connections: config.max_connections,
            active: AtomicU32::new(0),
            health: Mutex::new(HealthState::new()),
            freed,
        }
    }

    /// Client connections open to this backend now.
    pub fn active(&self) -> u32 {
        self.active.load(Ordering::Acquire)
    }

    /// Whether a new client may be sent here now: healthy, not cooling
    /// down, not full.
    pub fn usable(&self, now: Instant) -> bool {
        !self.is_full() && self.health().usable(now)
    }

    /// At its `max_connections`.
    pub fn is_full(&self) -> bool {
        self.max_connections.is_some_and(|max| self.active() >= max)
    }

    /// Healthy, but at its `max_connections`: a client may wait for it.
    pub fn up_but_full(&self, now: Instant) -> bool {
        self.is_full() && self.health().usable(now)
    }

    /// Runs `update` on this backend's health state and returns the change
    /// of state it made, if any, for the caller to log.
    pub fn update_health(
        &self,
        update: impl FnOnce(&mut HealthState) -> Option<Change>,
    ) -> Option<Change> {
        update(&mut self.health())
    }

    fn health(&self) -> std::sync::MutexGuard<'_, HealthState> {
        // A panic while the lock was held left a state that is still
        // consistent (every update is a few assignments), so carry on.
        self.health
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    // ANCHOR: try_track
    /// Counts one more connection to this backend until the guard is
    /// dropped; `None` if that would pass its `max_connections`. The check
    /// and the count are one atomic step, so two clients cannot both take
    /// the last place.
    pub fn try_track(self: &Arc<Self>) -> Option<ActiveGuard> {
        let max = self.max_connections.unwrap_or(u32::MAX);
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |active| {
                (active < max).then_some(active + 1)
            })
            .ok()?;
        Some(ActiveGuard {
            backend: self.clone(),
        })
    }
    // ANCHOR_END: try_track
}

// ANCHOR: active_guard
/// One open client connection to a backend. Created when `proxy` picks
/// the backend, dropped when the connection ends, however it ends: the
/// count cannot leak.
#[derive(Debug)]
pub struct ActiveGuard {
    backend: Arc<Backend>,
}

impl ActiveGuard {
    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        let backend = &self.backend;
        backend.active.fetch_sub(1, Ordering::AcqRel);
        if backend.max_connections.is_some() {
            backend.freed.notify_waiters();
        }
    }
}
// ANCHOR_END: active_guard

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_plain_unless_it_says_tls() {
        let plain: Address = "127.0.0.1:4444".parse().unwrap();
        let tcp: Address = "tcp://127.0.0.1:4444".parse().unwrap();
        let tls: Address = "tls://localhost:4445".parse().unwrap();
        assert_eq!(plain, tcp);
        assert!(!plain.tls);
        assert!(tls.tls);
        assert_eq!(tls.to_string(), "tls://localhost:4445");
    }

    #[test]
    fn a_bad_address_says_what_is_wrong() {
        let scheme = "http://127.0.0.1:1".parse::<Address>().unwrap_err();
        assert!(scheme.contains("unknown scheme `http://`"), "{scheme}");
        let name = "tls://a..b:1".parse::<Address>().unwrap_err();
        assert!(
            name.contains("neither an IP address nor a DNS name"),
            "{name}"
        );
    }
}
