//! `cargo run --bin 02-forward`: the lesson is in `lib.rs`.

use std::process::ExitCode;

use clap::Parser;
use lab_common::HostPort;
use lab_common::addr::{DEFAULT_BACKEND, DEFAULT_LISTEN};

/// Step 02: forward every TCP connection to one backend.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: HostPort,

    /// The one backend every client is forwarded to.
    #[arg(long, visible_alias = "backends", default_value = DEFAULT_BACKEND)]
    backend: HostPort,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    lab_common::logging::init();
    lab_common::cli::serve(&args.listen, |listener, shutdown| {
        step_02_forward::run(listener, args.backend, shutdown)
    })
    .await
}
