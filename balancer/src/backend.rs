//! A backend of a pool: what the config says of it (id, address, TLS,
//! weight, limit), and a handle on what `lb` learns of it while running
//! (`live.rs`). Open connections are counted by guards whose `Drop` gives
//! the count back, so no path through `proxy` can leak one.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::config::BackendConfig;
use crate::live::Live;
use crate::queue::Queue;
use lab_common::HostPort;

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

/// One backend of one pool: what the config says of it, and its live
/// record ([`Live`]), which outlives the pool when the backend stays
/// across a reload.
#[derive(Debug)]
pub struct Backend {
    /// A stable name: the config's `id`, or the address as written.
    /// Logs name backends by it, Maglev hashes it, and a reload matches
    /// the old pool's backends to the new by it.
    pub id: String,
    pub address: Address,
    /// Its share of clients, for the algorithms that read weights: the
    /// config's, or one set through the admin API.
    pub weight: u32,
    /// At most this many client connections at once (`None`: no limit).
    pub max_connections: Option<u32>,
    /// The PROXY header it is sent before anything else, if any.
    pub send_proxy: Option<lab_common::proxy_protocol::Version>,
    pub live: Arc<Live>,
    /// Woken when a connection ends: a client waiting for room may go.
    queue: Arc<Queue>,
}

impl Backend {
    /// A backend as `config` describes it, with its live record.
    pub fn new(
        config: &BackendConfig,
        live: Arc<Live>,
        queue: Arc<Queue>,
    ) -> Backend {
        Backend {
            id: config.id.clone(),
            address: config.address.clone(),
            weight: live.control().weight.unwrap_or(config.weight),
            max_connections: config.max_connections,
            send_proxy: config.send_proxy,
            live,
            queue,
        }
    }

    /// Client connections open to this backend now.
    pub fn active(&self) -> u32 {
        self.live.active()
    }

    /// Whether a new client may be sent here at `now`: healthy, taking
    /// clients (not drained, disabled or retiring) and not full.
    pub fn usable(&self, now: tokio::time::Instant) -> bool {
        let full = self.max_connections.is_some_and(|max| self.active() >= max);
        !full && self.live.accepting() && self.live.healthy(now)
    }

    /// Its `max_connections` at `now`: during a slow start, the same share
    /// of it as of its weight (at least 1).
    pub fn max_at(&self, ramp: Option<f64>) -> Option<u32> {
        let max = self.max_connections?;
        Some(match ramp {
            Some(share) => ((f64::from(max) * share).ceil() as u32).max(1),
            None => max,
        })
    }

    // ANCHOR: try_track
    /// Counts one more connection to this backend until the guard is
    /// dropped; `None` if that would pass its `max_connections` (`max`,
    /// which a slow start lowers for a while). The check and the count
    /// are one atomic step, so two clients cannot both take the last
    /// place.
    pub fn try_track(
        self: &Arc<Self>,
        max: Option<u32>,
    ) -> Option<ActiveGuard> {
        if !self.live.try_add(max.unwrap_or(u32::MAX)) {
            return None;
        }
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
        backend.live.remove();
        // A place is free: the first client in line, if any, may take it.
        backend.queue.place_freed();
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
