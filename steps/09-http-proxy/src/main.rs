//! `cargo run --bin 09-http-proxy`: the lesson is in `lib.rs`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use lab_common::HostPort;
use lab_common::addr::{DEFAULT_BACKENDS, DEFAULT_HTTP_LISTEN};

/// Step 09: an HTTP reverse proxy that hands each request to the next
/// backend in turn and tells it who the client was (X-Forwarded-For).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = DEFAULT_HTTP_LISTEN)]
    listen: HostPort,

    /// Backends, comma-separated, used in turn per request. Give one
    /// (e.g. 127.0.0.1:4444) for a single-host reverse proxy.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_BACKENDS,
          value_parser = backend)]
    backends: Vec<HostPort>,

    /// How long a backend may take to start answering (status line and
    /// headers), not counting time spent waiting for the client's body,
    /// before the client gets 504 Gateway Timeout.
    #[arg(long, value_name = "DURATION", default_value = "60s",
          value_parser = duration)]
    response_timeout: Duration,

    /// How long a client may take to send a request's head. One that has
    /// begun gets 408 Request Timeout; an idle kept-alive connection is
    /// closed.
    #[arg(long, value_name = "DURATION", default_value = "30s",
          value_parser = duration)]
    header_timeout: Duration,

    /// Idle connections kept open to each backend for later requests.
    #[arg(long, value_name = "COUNT", default_value_t = 32)]
    pool_max_idle: usize,

    /// How long an idle connection to a backend is kept.
    #[arg(long, value_name = "DURATION", default_value = "60s",
          value_parser = duration)]
    pool_idle_timeout: Duration,
}

/// A backend that requests can name: `HostPort` takes `a/b:80`, a URI
/// does not (`run` checks again, for callers other than this one).
fn backend(text: &str) -> Result<HostPort, String> {
    let backend = text.parse()?;
    step_09_http_proxy::backend_authority(&backend)?;
    Ok(backend)
}

/// A duration above zero, written `300ms`, `60s` or `5m`.
fn duration(text: &str) -> Result<Duration, String> {
    lab_common::duration::parse_nonzero(text)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    lab_common::logging::init();
    lab_common::cli::serve(&args.listen, |listener, shutdown| {
        let config = step_09_http_proxy::Config {
            response_timeout: args.response_timeout,
            header_timeout: args.header_timeout,
            pool_max_idle_per_backend: args.pool_max_idle,
            pool_idle_timeout: args.pool_idle_timeout,
            ..step_09_http_proxy::Config::new(args.backends)
        };
        step_09_http_proxy::run(listener, config, shutdown)
    })
    .await
}
