//! `cargo run --bin 04-round-robin`: the lesson is in `lib.rs`.

use std::process::ExitCode;

use clap::Parser;
use lab_common::HostPort;
use lab_common::addr::{DEFAULT_BACKENDS, DEFAULT_LISTEN};

/// Step 04: a TCP load balancer that hands connections to backends in turn.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: HostPort,

    /// Backends, comma-separated, used in turn.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_BACKENDS)]
    backends: Vec<HostPort>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    lab_common::logging::init();
    lab_common::cli::serve(&args.listen, |listener, shutdown| {
        step_04_round_robin::run(listener, args.backends, shutdown)
    })
    .await
}
