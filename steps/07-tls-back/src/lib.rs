//! Step 07 — TLS to the backends
//!
//! Changed since step 06:
//! - the balancer speaks TLS to the backends too: after dialling one, it
//!   starts a TLS session as a client and checks the backend's
//!   certificate against the lab CA (`certs/ca.crt`, `--ca`) *and*
//!   against the name it dialled, so `127.0.0.1:4445` must present a
//!   certificate for 127.0.0.1;
//! - a backend that fails the check is refused: the log says which
//!   backend and why, and that client's connection is closed;
//! - `--insecure` skips the check. It is loud about it: a warning at start
//!   and "NOT CHECKED" in every log line of every connection.
//!
//! TLS at the front and round robin are step 06's, unchanged. The bytes
//! are now decrypted and encrypted again inside the balancer: it sees
//! them in the clear, as a balancer that reads HTTP must (step 09 reads
//! it, over plain TCP).
//!
//! ```text
//! scripts/gen-certs.sh
//! scripts/spawn-backends.sh restart --tls
//! cargo run --bin 07-tls-back
//! curl --cacert certs/ca.crt https://localhost:3000
//! ```

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use lab_common::{Error, HostPort};
use tokio::io::{AsyncWriteExt, copy_bidirectional};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};
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

// ANCHOR: backend_trust
/// How the balancer checks the certificates of its backends.
pub enum BackendTrust {
    /// Accept a certificate only if a CA in this configuration signed it
    /// and it names the host dialled: what `--ca` (the lab CA) gives.
    Verify(Arc<ClientConfig>),
    /// `--insecure`: accept any certificate. The traffic is still
    /// encrypted, but to whoever answers, which may not be the backend.
    Insecure,
}

impl BackendTrust {
    /// The client side's counterpart of the acceptor, holding what we
    /// trust, and how it checks backends, in words for the log (the
    /// `certificate` field of every connection's span). An insecure
    /// connector is announced here, once.
    fn connector(self) -> (TlsConnector, &'static str) {
        match self {
            BackendTrust::Verify(config) => {
                (TlsConnector::from(config), "checked")
            }
            BackendTrust::Insecure => {
                warn!(
                    "--insecure: backend certificates are NOT CHECKED; \
                     anyone on the way to a backend can pose as it"
                );
                let config = lab_common::tls::insecure_client_config();
                (TlsConnector::from(config), "NOT CHECKED, --insecure")
            }
        }
    }
}
// ANCHOR_END: backend_trust

// ANCHOR: run
/// Accepts clients until `shutdown` completes and proxies each one, once
/// its TLS handshake succeeds, to the next backend in turn, over TLS
/// checked as `backend_trust` says.
pub async fn run(
    listener: TcpListener,
    backends: Vec<HostPort>,
    tls: Arc<ServerConfig>,
    backend_trust: BackendTrust,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let mut round_robin = RoundRobin::new(backends)?;
    // The acceptor holds the certificate and key. Cloning it only clones
    // an `Arc`, so every connection's task gets its own cheaply.
    let acceptor = TlsAcceptor::from(tls);
    // Every connection's log lines say how its backend was checked.
    let (connector, checked) = backend_trust.connector();
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
        let connector = connector.clone();
        let span = info_span!(
            "connection",
            client = %client_addr,
            backend = %backend,
            certificate = checked
        );
        let task = async move {
            proxy(client, &acceptor, &connector, &backend).await;
        };
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

// ANCHOR: backend_handshake
/// Starts TLS as a client over `server`, a fresh connection to `backend`.
/// The connector checks that a CA we trust signed the certificate, and
/// that the certificate names the host we dialled.
async fn backend_handshake(
    connector: &TlsConnector,
    server: TcpStream,
    backend: &HostPort,
) -> io::Result<TlsStream<TcpStream>> {
    connector
        .connect(server_name(backend.host())?, server)
        .await
}

/// The name the backend's certificate must carry: the host exactly as
/// written in `--backends`. An IP address is checked against the
/// certificate's IP addresses, anything else against its DNS names: the
/// lab certificate matches `127.0.0.1:4445` and `localhost:4445`, but not
/// `127.0.0.2:4445`.
fn server_name(host: &str) -> io::Result<ServerName<'static>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ServerName::from(ip));
    }
    ServerName::try_from(host.to_owned()).map_err(|_| {
        let msg = format!("`{host}` is neither an IP address nor a DNS name");
        io::Error::new(io::ErrorKind::InvalidInput, msg)
    })
}
// ANCHOR_END: backend_handshake

// ANCHOR: proxy
/// Completes the TLS handshake with `client`, dials `backend` and starts
/// TLS with it, then relays between the two until both directions have
/// finished, and logs how it went.
async fn proxy(
    client: TcpStream,
    acceptor: &TlsAcceptor,
    connector: &TlsConnector,
    backend: &HostPort,
) {
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
    let server = match dial(backend).await {
        Ok(server) => server,
        Err(err) => {
            warn!(phase = "dial", error = %err);
            // End the TLS session properly (close_notify), so the client
            // sees the connection closed rather than cut.
            let _ = client.shutdown().await;
            return;
        }
    };
    // A backend whose certificate fails the check never sees a byte of
    // the client's: the client is told goodbye instead.
    let mut server = match backend_handshake(connector, server, backend).await {
        Ok(server) => server,
        Err(err) => {
            warn!(phase = "backend TLS handshake", error = %err);
            let _ = client.shutdown().await;
            return;
        }
    };

    // Both directions at once, each passing on the other's end of stream
    // (half-close), as in step 02. Both streams decrypt what they read
    // and encrypt what they write; the relay sees only plain bytes.
    match copy_bidirectional(&mut client, &mut server).await {
        Ok((up, down)) => info!("{up} bytes up, {down} bytes down"),
        // TLS ends with a close_notify message, so that a cut connection
        // cannot pass for a complete one. Many HTTP clients just close
        // the socket after the last response instead: normal, so the
        // connection's line is no warning, though it has no byte counts.
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => {
            info!("a peer closed without TLS close_notify")
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

    #[test]
    fn an_ip_address_is_checked_as_an_ip_and_a_name_as_a_name() {
        let ip = server_name("127.0.0.1").unwrap();
        assert!(matches!(ip, ServerName::IpAddress(_)), "{ip:?}");
        let ip6 = server_name("::1").unwrap();
        assert!(matches!(ip6, ServerName::IpAddress(_)), "{ip6:?}");
        let name = server_name("localhost").unwrap();
        assert!(matches!(name, ServerName::DnsName(_)), "{name:?}");
        assert!(server_name("not a name").is_err());
    }
}
