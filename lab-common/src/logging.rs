//! Logging set-up: `tracing` to stderr, filtered by `RUST_LOG`.

use tracing_subscriber::EnvFilter;

/// Logs go to stderr so that stdout carries only what a step prints on
/// purpose (the "listening on" line, step 01's raw bytes). Without
/// `RUST_LOG`, info and above are shown.
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // A second init (two runners in one test binary) is harmless.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
