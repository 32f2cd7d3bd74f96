//! Step 06 — TLS at the front
//!
//! Changed since step 04:
//! - clients speak TLS to the balancer, which presents the lab's
//!   certificate (`certs/server.crt`), decrypts, and relays the plain
//!   bytes to the backends over TCP as before: it *terminates* TLS;
//! - the handshake is the first thing each connection's task does, so a
//!   slow client or one that does not speak TLS holds up no one else, and
//!   its failure is logged as a handshake error;
//! - when the backend cannot be reached, the client gets a TLS goodbye
//!   (close_notify) instead of a bare close.
//!
//! Round robin is step 04's, unchanged. The backends never see TLS and
//! need no certificate; only the balancer holds a key.
//!
//! ```text
//! scripts/gen-certs.sh
//! scripts/spawn-backends.sh restart
//! cargo run --bin 06-tls-front
//! curl --cacert certs/ca.crt https://localhost:3000
//! ```

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use lab_common::{Error, HostPort};
use tokio::io::{AsyncWriteExt, copy_bidirectional};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
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
/// Accepts clients until `shutdown` completes and proxies each one, once
/// its TLS handshake succeeds, to the next backend in turn.
pub async fn run(
    listener: TcpListener,
    backends: Vec<HostPort>,
    tls: Arc<ServerConfig>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let mut round_robin = RoundRobin::new(backends)?;
    // The acceptor holds the certificate and key. Cloning it only clones
    // an `Arc`, so every connection's task gets its own cheaply.
    let acceptor = TlsAcceptor::from(tls);
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
        // A client whose handshake then fails has used up its turn.
        let backend = round_robin.pick_backend().clone();
        let acceptor = acceptor.clone();
        let span = info_span!(
            "connection",
            client = %client_addr,
            backend = %backend
        );
        let task = async move { proxy(client, &acceptor, &backend).await };
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

// ANCHOR: proxy
/// Completes the TLS handshake with `client`, then relays the decrypted
/// bytes through a fresh connection to `backend` until both directions
/// have finished, and logs how it went.
async fn proxy(client: TcpStream, acceptor: &TlsAcceptor, backend: &HostPort) {
    // Before the handshake, whose small messages should not wait either.
    let _ = client.set_nodelay(true);
    // The handshake happens here, in the connection's own task: a client
    // that is slow to finish it, or never does, holds up no one else. (A
    // production balancer would also give up on it after a few seconds.)
    let mut client = match acceptor.accept(client).await {
        Ok(client) => client,
        Err(err) => {
            warn!(phase = "client TLS handshake", error = %err);
            return;
        }
    };
    let mut server = match dial(backend).await {
        Ok(server) => server,
        Err(err) => {
            warn!(phase = "dial", error = %err);
            // End the TLS session properly (close_notify), so the client
            // sees the connection closed rather than cut.
            let _ = client.shutdown().await;
            return;
        }
    };

    // Both directions at once, each passing on the other's end of stream
    // (half-close), as in step 02. `client` decrypts what it reads and
    // encrypts what it writes; the relay sees only plain bytes.
    match copy_bidirectional(&mut client, &mut server).await {
        Ok((up, down)) => info!("{up} bytes up, {down} bytes down"),
        // TLS ends with a close_notify message, so that a cut connection
        // cannot pass for a complete one. Many HTTP clients just close
        // the socket after the last response instead: normal, so the
        // connection's line is no warning, though it has no byte counts.
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => {
            info!("the client closed without TLS close_notify")
        }
        Err(err) => warn!(phase = "relay", error = %err),
    }
}
// ANCHOR_END: proxy

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
