//! `cargo run --bin 07-tls-back`: the lesson is in `lib.rs`.

use std::process::ExitCode;

use clap::Parser;
use lab_common::HostPort;
use lab_common::addr::{DEFAULT_BACKENDS, DEFAULT_LISTEN};
use lab_common::cli::fail;
use lab_common::tls::{CertFlags, TrustFlags};
use step_07_tls_back::BackendTrust;

/// Step 07: a TCP load balancer with TLS on both sides: it terminates the
/// clients' TLS and dials each backend over TLS, verifying its certificate
/// against the lab CA and the name dialled.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on (clients speak TLS to it).
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: HostPort,

    /// Backends, comma-separated, used in turn (over TLS). Each one's
    /// certificate must name the host as written here.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_BACKENDS)]
    backends: Vec<HostPort>,

    #[command(flatten)]
    cert: CertFlags,

    #[command(flatten)]
    trust: TrustFlags,
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
    let backend_trust = if args.trust.insecure {
        BackendTrust::Insecure
    } else {
        match args.trust.client_config() {
            Ok(config) => BackendTrust::Verify(config),
            Err(err) => return fail(err),
        }
    };
    lab_common::cli::serve(&args.listen, |listener, shutdown| {
        step_07_tls_back::run(
            listener,
            args.backends,
            tls,
            backend_trust,
            shutdown,
        )
    })
    .await
}
