//! `cargo run --bin 08-final`: the lesson is in `lib.rs`.

use std::process::ExitCode;

use clap::Parser;
use lab_common::HostPort;
use lab_common::addr::DEFAULT_LISTEN;
use lab_common::cli::fail;
use lab_common::tls::{CertFlags, TrustFlags};
use step_08_final::{BackendTrust, Server};

/// The article's mix: one plain backend and two over TLS.
const DEFAULT_SERVERS: &str =
    "127.0.0.1:4444,tls://127.0.0.1:4445,tls://127.0.0.1:4446";

/// Step 08: a TCP load balancer whose backends are each plain or TLS,
/// used in turn, with TLS at the front if asked.
#[derive(Parser, Debug)]
#[command(
    version,
    about,
    after_help = "Examples:\n  \
        08-final --backends 127.0.0.1:4444,tls://localhost:4445\n  \
        08-final --tls-front --backends tls://127.0.0.1:4445"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: HostPort,

    /// Backends, comma-separated, used in turn: HOST:PORT (or
    /// tcp://HOST:PORT) for plain TCP, tls://HOST:PORT for TLS, whose
    /// certificate must name HOST.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = DEFAULT_SERVERS,
        value_name = "SERVERS"
    )]
    backends: Vec<Server>,

    /// Terminate TLS at the front: clients must speak TLS (with --cert
    /// and --key).
    #[arg(long)]
    tls_front: bool,

    #[command(flatten)]
    cert: CertFlags,

    #[command(flatten)]
    trust: TrustFlags,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    lab_common::logging::init();
    // Load only what this run uses: a plain front needs no certificate,
    // and a list without tls:// backends needs no CA.
    let front_tls = if args.tls_front {
        match args.cert.server_config() {
            Ok(config) => Some(config),
            Err(err) => return fail(err),
        }
    } else {
        None
    };
    let backend_trust = if args.trust.insecure {
        Some(BackendTrust::Insecure)
    } else if args.backends.iter().any(|server| server.tls) {
        match args.trust.client_config() {
            Ok(config) => Some(BackendTrust::Verify(config)),
            Err(err) => return fail(err),
        }
    } else {
        None
    };
    lab_common::cli::serve(&args.listen, |listener, shutdown| {
        step_08_final::run(
            listener,
            args.backends,
            front_tls,
            backend_trust,
            shutdown,
        )
    })
    .await
}
