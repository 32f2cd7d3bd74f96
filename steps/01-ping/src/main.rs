//! `cargo run --bin 01-ping`: the lesson is in `lib.rs`.

use std::process::ExitCode;

use clap::Parser;
use lab_common::HostPort;
use lab_common::addr::DEFAULT_LISTEN;

/// Step 01: listen on a TCP port, print what clients send, answer "pong".
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: HostPort,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    lab_common::logging::init();
    lab_common::cli::serve(&args.listen, step_01_ping::run).await
}
