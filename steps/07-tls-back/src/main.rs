//! `cargo run --bin 07-tls-back`: the lesson is in `lib.rs`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use lab_common::HostPort;
use lab_common::addr::{DEFAULT_BACKENDS, DEFAULT_LISTEN};
use lab_common::tls;
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

    /// Certificate chain (PEM) the balancer presents to clients.
    #[arg(long, default_value_os_t = tls::default_cert_path())]
    cert: PathBuf,

    /// Private key (PEM) of that certificate.
    #[arg(long, default_value_os_t = tls::default_key_path())]
    key: PathBuf,

    /// CA certificate(s) (PEM) that must have signed the backends'
    /// certificates.
    #[arg(long, default_value_os_t = tls::default_ca_path())]
    ca: PathBuf,

    /// Do not verify the backends' certificates at all. For experiments
    /// only: anyone on the way to a backend could pose as it.
    #[arg(long, conflicts_with = "ca")]
    insecure: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    lab_common::logging::init();
    // Certificates first: without them there is nothing to listen for.
    let tls = match tls::server_config(&args.cert, &args.key) {
        Ok(tls) => tls,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let backend_trust = if args.insecure {
        BackendTrust::Insecure
    } else {
        match tls::client_config(&args.ca) {
            Ok(config) => BackendTrust::Verify(config),
            Err(err) => {
                eprintln!("error: {err}");
                return ExitCode::FAILURE;
            }
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
