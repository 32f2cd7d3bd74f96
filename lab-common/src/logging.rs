//! Logging set-up: `tracing` to stderr, filtered by `RUST_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Logs go to stderr so that stdout carries only what a step prints on
/// purpose (the "listening on" line, step 01's raw bytes). Without
/// `RUST_LOG`, info and above are shown. Colours only on a terminal (and
/// not with `NO_COLOR` set), so log files stay plain text.
pub fn init() {
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none();
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // A second init (two runners in one test binary) is harmless.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(colour)
        .try_init();
}
