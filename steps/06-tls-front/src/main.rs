//! `cargo run --bin 06-tls-front`: the lesson is in `lib.rs`.

use std::process::ExitCode;

use clap::Parser;
use lab_common::HostPort;
use lab_common::addr::{DEFAULT_BACKENDS, DEFAULT_LISTEN};
use lab_common::cli::fail;
use lab_common::tls::CertFlags;

/// Step 06: a TCP load balancer that terminates TLS and hands the plain
/// connections to backends in turn.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on (clients speak TLS to it).
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: HostPort,

    /// Backends, comma-separated, used in turn (plain TCP).
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_BACKENDS)]
    backends: Vec<HostPort>,

    #[command(flatten)]
    cert: CertFlags,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    lab_common::logging::init();
    // Certificates first: without them there is nothing to listen for.
    let tls = match args.cert.server_config() {
        Ok(tls) => tls,
        Err(err) => return fail(err),
    };
    lab_common::cli::serve(&args.listen, |listener, shutdown| {
        step_06_tls_front::run(listener, args.backends, tls, shutdown)
    })
    .await
}
