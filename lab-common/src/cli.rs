//! The part of every `main.rs` that no step teaches: bind the listen
//! address, say where we listen, run until Ctrl-C, turn errors into a
//! message and an exit code.

use std::fmt::Display;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use tokio::net::TcpListener;

use crate::{Error, HostPort};

/// Binds `listen`, prints `listening on ADDR` (the bound address, so
/// `127.0.0.1:0` shows the port the OS chose), then runs `serve` with a
/// shutdown signal that fires on Ctrl-C.
///
/// A bind failure or an error returned by `serve` is printed as one line
/// and gives exit code 1; bad flags never get here (clap exits with 2).
pub async fn serve<F, Fut>(listen: &HostPort, serve: F) -> ExitCode
where
    F: FnOnce(TcpListener, Shutdown) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    let listener = match TcpListener::bind(listen.to_string()).await {
        Ok(listener) => listener,
        Err(err) => return fail(format!("cannot listen on {listen}: {err}")),
    };
    let local = match listener.local_addr() {
        Ok(addr) => addr,
        Err(err) => {
            return fail(format!("cannot read the bound address: {err}"));
        }
    };
    announce(&local.to_string());
    match serve(listener, Box::pin(ctrl_c())).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(err),
    }
}

/// For a `main` whose set-up failed (a certificate it cannot load): the
/// error as one line, and exit code 1, as `serve` does for its own.
pub fn fail(err: impl Display) -> ExitCode {
    eprintln!("error: {err}");
    ExitCode::FAILURE
}

/// Prints the line tests and scripts wait for, and flushes it at once:
/// stdout is block-buffered when it is a pipe.
pub fn announce(addr: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on {addr}");
    let _ = out.flush();
}

/// The address in the first `listening on ADDR` line of `output` (what
/// [`announce`] printed, perhaps followed by words about it): how tests
/// and tools learn the port a program bound.
///
/// A JSON line (`lb` with `log_format = "json"`) counts by its `message`.
pub fn listening_addr(output: &str) -> Option<SocketAddr> {
    output
        .lines()
        .find_map(|line| {
            if line.starts_with('{') {
                let value: serde_json::Value =
                    serde_json::from_str(line).ok()?;
                let message = value.get("message")?.as_str()?;
                return message
                    .strip_prefix("listening on ")
                    .map(str::to_owned);
            }
            line.strip_prefix("listening on ").map(str::to_owned)
        })
        .and_then(|rest| rest.split_whitespace().next().map(str::to_owned))
        .and_then(|addr| addr.parse().ok())
}

/// A future that completes when the server should stop accepting.
pub type Shutdown = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        // No signal handler could be installed: run until killed.
        std::future::pending::<()>().await;
    }
    tracing::info!("Ctrl-C: no longer accepting connections");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_line_gives_the_address() {
        let output = "building\nlistening on 127.0.0.1:3000 (TLS)\n";
        let addr = listening_addr(output);
        assert_eq!(addr, Some(SocketAddr::from(([127, 0, 0, 1], 3000))));
        assert_eq!(listening_addr("listening on nowhere\n"), None);
        assert_eq!(listening_addr("starting\n"), None);
        let json = "{\"timestamp\":\"t\",\"level\":\"INFO\",\
                    \"message\":\"listening on 127.0.0.1:3001\"}\n";
        let addr = listening_addr(json);
        assert_eq!(addr, Some(SocketAddr::from(([127, 0, 0, 1], 3001))));
    }
}
