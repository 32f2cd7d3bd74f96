//! Plumbing shared by every step of the lab.
//!
//! Nothing here is a lesson: the accept loop, the relay, the backend choice
//! and the TLS wiring stay in each step's `lib.rs`, copied forward so that a
//! `diff -u` between neighbouring steps shows only what a step teaches. What
//! lives here is what no step teaches: default addresses, the address type,
//! the CLI runner that binds and waits for Ctrl-C, logging set-up, the TLS
//! flags and reading PEM files into rustls configurations, making the lab's
//! certificates, reading and writing durations (`500ms`, `2s`), watching a
//! child's output, the PROXY protocol's headers (for `lb` and the dummy
//! servers), and (with the `testing` feature) helpers for the
//! integration tests.

pub mod addr;
pub mod certs;
pub mod cli;
pub mod duration;
pub mod logging;
pub mod output;
pub mod pattern;
pub mod proxy_protocol;
pub mod tls;

#[cfg(feature = "testing")]
pub mod testing;

pub use addr::HostPort;

/// The error type of the lab: nothing needs to branch on error kinds yet.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
