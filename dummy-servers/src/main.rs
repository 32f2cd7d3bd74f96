//! Three dummy backends on 127.0.0.1:4444, 4445 and 4446, as in the
//! article, plain or over TLS:
//!
//! ```text
//! cargo run -p dummy-servers
//! curl localhost:4444
//!
//! scripts/gen-certs.sh
//! cargo run -p dummy-servers -- --tls-ports 4445,4446
//! curl --cacert certs/ca.crt https://localhost:4445
//! ```
//!
//! A port may expect a PROXY header (v1 or v2) before anything else, as
//! a server behind `lb`'s `send_proxy` does, and show the client it names:
//!
//! ```text
//! cargo run -p dummy-servers -- --proxy-ports 4444
//! curl --haproxy-protocol localhost:4444
//! ```
//!
//! Each backend takes a fault mode at run time (see the library's docs):
//! `curl -X POST localhost:4445/fault/stall`, then `.../fault/none`.
//! Ctrl-C stops them all, closing the connections still open.

use std::net::IpAddr;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use lab_common::cli::fail;
use lab_common::tls::CertFlags;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What `--help` says after the flags: the routes and the fault modes.
const ROUTES: &str = "\
Routes of every backend:
  GET /health          ok (503 in fault mode unhealthy)
  GET /bytes/N         N deterministic bytes
  POST /echo           the request body, streamed back
  GET /delay/MS        the echo, after MS milliseconds
  POST /fault/MODE     set the fault mode (answered whatever the mode)
  GET /fault           the fault mode
  anything else        who answered, the call count, the request seen

Fault modes (one per backend, at run time; none at start):
  none         normal
  unhealthy    /health answers 503, the rest as usual
  stall        requests are read and never answered (/health too)
  slow/MS      every answer waits MS milliseconds first
  close        the connection is closed without an answer

  curl -X POST localhost:4445/fault/stall
  scripts/spawn-backends.sh fault 4445 stall     (the same, TLS or not)";

/// Runs the lab's dummy backends until Ctrl-C.
#[derive(Parser, Debug)]
#[command(version, about, after_help = ROUTES)]
struct Args {
    /// Address to bind every backend on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,

    /// Ports, one backend each (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "4444,4445,4446")]
    ports: Vec<u16>,

    /// Serve every backend over TLS.
    #[arg(long, conflicts_with = "tls_ports")]
    tls: bool,

    /// Serve these of the --ports over TLS, the others plain
    /// (comma-separated), e.g. `--tls-ports 4445,4446`.
    #[arg(long, value_delimiter = ',', value_name = "PORTS")]
    tls_ports: Vec<u16>,

    /// These of the --ports expect a PROXY header (v1 or v2) at the start
    /// of every connection, before TLS on a TLS port, and show the client
    /// it names in their answers; a connection without one is closed
    /// (comma-separated), e.g. `--proxy-ports 4444`. Try it with
    /// `curl --haproxy-protocol localhost:4444`.
    #[arg(long, value_delimiter = ',', value_name = "PORTS")]
    proxy_ports: Vec<u16>,

    #[command(flatten)]
    cert: CertFlags,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    for (flag, ports) in [
        ("--tls-ports", &args.tls_ports),
        ("--proxy-ports", &args.proxy_ports),
    ] {
        if let Some(port) = ports.iter().find(|p| !args.ports.contains(p)) {
            Args::command()
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!("{flag}: {port} is not one of --ports"),
                )
                .exit();
        }
    }
    lab_common::logging::init();

    let serves_tls = |port: u16| args.tls || args.tls_ports.contains(&port);
    // Load the certificate only if a backend needs it, so plain backends
    // run before scripts/gen-certs.sh ever has.
    let tls_config = if args.ports.iter().any(|&port| serves_tls(port)) {
        match args.cert.server_config() {
            Ok(config) => Some(config),
            Err(err) => return fail(err),
        }
    } else {
        None
    };

    // Ctrl-C cancels this token; every backend's shutdown waits on it.
    let stop = CancellationToken::new();
    let mut backends = JoinSet::new();
    for &port in &args.ports {
        let listener = match TcpListener::bind((args.bind, port)).await {
            Ok(listener) => listener,
            Err(err) => {
                let bind = args.bind;
                return fail(format!("cannot listen on {bind}:{port}: {err}"));
            }
        };
        let addr = listener.local_addr().expect("bound listener has an addr");
        let tls = tls_config.clone().filter(|_| serves_tls(port));
        if args.proxy_ports.contains(&port) {
            let over = if tls.is_some() { ", TLS" } else { "" };
            lab_common::cli::announce(&format!(
                "{addr} (backend-{}{over}, expects a PROXY header)",
                addr.port()
            ));
            backends.spawn(dummy_servers::serve_proxied(
                listener,
                tls,
                stop.clone().cancelled_owned(),
            ));
            continue;
        }
        match tls {
            Some(config) => {
                lab_common::cli::announce(&format!(
                    "{addr} (backend-{}, TLS)",
                    addr.port()
                ));
                backends.spawn(dummy_servers::serve_tls(
                    listener,
                    config,
                    stop.clone().cancelled_owned(),
                ));
            }
            None => {
                lab_common::cli::announce(&format!(
                    "{addr} (backend-{})",
                    addr.port()
                ));
                backends.spawn(dummy_servers::serve(
                    listener,
                    stop.clone().cancelled_owned(),
                ));
            }
        }
    }

    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        Some(done) = backends.join_next() => {
            return fail(format!("a backend stopped: {done:?}"));
        }
    }
    // Each backend returns as soon as it sees the token, closing its
    // open connections: Ctrl-C cuts what is in flight.
    stop.cancel();
    while backends.join_next().await.is_some() {}
    ExitCode::SUCCESS
}
