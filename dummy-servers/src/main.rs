//! Three dummy backends on 127.0.0.1:4444, 4445 and 4446, as in the
//! article:
//!
//! ```text
//! cargo run -p dummy-servers
//! curl localhost:4444
//! ```

use std::net::IpAddr;
use std::process::ExitCode;

use clap::Parser;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// Runs the lab's dummy backends until Ctrl-C.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to bind every backend on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,

    /// Ports, one backend each (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "4444,4445,4446")]
    ports: Vec<u16>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    lab_common::logging::init();

    let mut backends = JoinSet::new();
    for port in args.ports {
        let listener = match TcpListener::bind((args.bind, port)).await {
            Ok(listener) => listener,
            Err(err) => {
                eprintln!(
                    "error: cannot listen on {}:{port}: {err}",
                    args.bind
                );
                return ExitCode::FAILURE;
            }
        };
        let addr = listener.local_addr().expect("bound listener has an addr");
        lab_common::cli::announce(&format!("{addr} (backend-{})", addr.port()));
        backends.spawn(dummy_servers::serve(listener));
    }

    tokio::select! {
        _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
        Some(done) = backends.join_next() => {
            eprintln!("error: a backend stopped: {done:?}");
            ExitCode::FAILURE
        }
    }
}
