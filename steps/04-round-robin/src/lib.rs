//! Step 04 — Round robin
//!
//! Changed since step 03:
//! - there are several backends, and each new client connection goes to
//!   the next one in turn: 4444, 4445, 4446, 4444, ...;
//! - the choice is a small type, `RoundRobin`, that knows nothing about
//!   sockets, so it is tested on its own.
//!
//! The choice is made per *connection*: every request a client sends on
//! one kept-alive connection goes to the same backend. Balancing each
//! request needs a proxy that understands HTTP (step 09).
//!
//! ```text
//! scripts/spawn-backends.sh restart
//! cargo run --bin 04-round-robin
//! curl localhost:3000
//! ```

use std::future::Future;
use std::io;
use std::time::Duration;

use lab_common::{Error, HostPort};
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tracing::{Instrument, info, info_span, warn};

// ANCHOR: round_robin
/// Hands out backends in a fixed rotation.
///
/// The article counts the calls of every server and picks the least
/// called one; with every call counted the same, that is a rotation, and
/// an index that wraps around does it without a map.
#[derive(Debug)]
pub struct RoundRobin {
    backends: Vec<HostPort>,
    next: usize,
}

impl RoundRobin {
    /// Fails on an empty list: with nothing to rotate through, every
    /// client would fail.
    pub fn new(backends: Vec<HostPort>) -> Result<RoundRobin, Error> {
        if backends.is_empty() {
            return Err("round robin needs at least one backend".into());
        }
        Ok(RoundRobin { backends, next: 0 })
    }

    /// The backend for the next connection.
    pub fn pick_backend(&mut self) -> &HostPort {
        let backend = &self.backends[self.next];
        self.next = (self.next + 1) % self.backends.len();
        backend
    }
}
// ANCHOR_END: round_robin

// ANCHOR: run
/// Accepts clients until `shutdown` completes and proxies each one to the
/// next backend in turn.
pub async fn run(
    listener: TcpListener,
    backends: Vec<HostPort>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let mut round_robin = RoundRobin::new(backends)?;
    tokio::pin!(shutdown);
    loop {
        let (client, client_addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        // Only this loop picks, one connection at a time, so the rotation
        // needs no lock: the order of picks is the order of accepts.
        let backend = round_robin.pick_backend().clone();
        let span = info_span!(
            "connection",
            client = %client_addr,
            backend = %backend
        );
        let task = async move { proxy(client, &backend).await };
        tokio::spawn(task.instrument(span));
    }
}
// ANCHOR_END: run

/// Opens a TCP connection to `backend`, ready to relay through.
async fn dial(backend: &HostPort) -> io::Result<TcpStream> {
    let server = TcpStream::connect(backend.to_string()).await?;
    // Small request/response messages should leave at once, not wait for
    // Nagle's algorithm to batch them with bytes that may never come.
    server.set_nodelay(true)?;
    Ok(server)
}

/// Relays `client` through a fresh connection to `backend` until both
/// directions have finished, and logs how it went.
async fn proxy(mut client: TcpStream, backend: &HostPort) {
    let mut server = match dial(backend).await {
        Ok(server) => server,
        Err(err) => {
            warn!(phase = "dial", error = %err);
            return;
        }
    };
    let _ = client.set_nodelay(true);

    // Both directions at once, each passing on the other's end of stream
    // (half-close), as in step 02.
    match copy_bidirectional(&mut client, &mut server).await {
        Ok((up, down)) => info!("{up} bytes up, {down} bytes down"),
        Err(err) => warn!(phase = "relay", error = %err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends(ports: &[u16]) -> Vec<HostPort> {
        ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}").parse().unwrap())
            .collect()
    }

    #[test]
    fn picks_backends_in_turn_and_wraps_around() {
        let mut round_robin =
            RoundRobin::new(backends(&[4444, 4445, 4446])).unwrap();
        let ports: Vec<u16> =
            (0..7).map(|_| round_robin.pick_backend().port()).collect();
        assert_eq!(ports, [4444, 4445, 4446, 4444, 4445, 4446, 4444]);
    }

    #[test]
    fn refuses_an_empty_list() {
        assert!(RoundRobin::new(Vec::new()).is_err());
    }
}
