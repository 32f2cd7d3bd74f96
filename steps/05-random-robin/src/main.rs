//! `cargo run --bin 05-random-robin`: the lesson is in `lib.rs`.

use std::process::ExitCode;

use clap::Parser;
use lab_common::HostPort;
use lab_common::addr::{DEFAULT_BACKENDS, DEFAULT_LISTEN};

/// Step 05: a TCP load balancer that picks a backend at random per connection.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: HostPort,

    /// Backends, comma-separated, picked from at random.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_BACKENDS)]
    backends: Vec<HostPort>,

    /// Seed for the random choice: the same seed, the same sequence of
    /// backends. Without it, every run differs.
    #[arg(long)]
    seed: Option<u64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    lab_common::logging::init();
    lab_common::cli::serve(&args.listen, |listener, shutdown| {
        step_05_random_robin::run(listener, args.backends, args.seed, shutdown)
    })
    .await
}
