//! `cargo run --bin 09-http-proxy`: the lesson is in `lib.rs`.

use std::process::ExitCode;

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
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_BACKENDS)]
    backends: Vec<HostPort>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    lab_common::logging::init();
    lab_common::cli::serve(&args.listen, |listener, shutdown| {
        let config = step_09_http_proxy::Config::new(args.backends);
        step_09_http_proxy::run(listener, config, shutdown)
    })
    .await
}
