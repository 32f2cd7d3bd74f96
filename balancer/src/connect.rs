//! Reaching a backend: a TCP connection within the connect timeout, a
//! PROXY header if the backend has `send_proxy`, then TLS if the backend
//! is `tls://`, within the handshake timeout. Client
//! traffic (`proxy`) and the active health checks (`health`) both come
//! through here, so a check verifies a backend exactly as a client's
//! connection would.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use lab_common::HostPort;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;

use crate::backend::Address;
use crate::stream::Stream;

/// How `lb` checks the certificates of its `tls://` backends.
#[derive(Clone)]
pub struct BackendTls {
    connector: TlsConnector,
    /// "checked", or "NOT CHECKED" under `insecure`: said in the log line
    /// of every connection to a `tls://` backend.
    pub checked: &'static str,
}

impl BackendTls {
    /// Accept a certificate only if a CA in `config` signed it and it
    /// names the host dialled.
    pub fn verify(config: Arc<ClientConfig>) -> BackendTls {
        BackendTls {
            connector: TlsConnector::from(config),
            checked: "checked",
        }
    }

    /// Accept any certificate: encrypted, but to whoever answers.
    pub fn insecure() -> BackendTls {
        BackendTls {
            connector: TlsConnector::from(
                lab_common::tls::insecure_client_config(),
            ),
            checked: "NOT CHECKED",
        }
    }
}

impl fmt::Debug for BackendTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendTls")
            .field("checked", &self.checked)
            .finish()
    }
}

/// How long each phase of reaching a backend may take, and what the
/// connection is set up with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectTimeouts {
    pub connect: Duration,
    pub tls_handshake: Duration,
    /// How long data sent to the backend may go unacknowledged (or wait
    /// behind a zero window) before the kernel drops the connection
    /// (`TCP_USER_TIMEOUT`); `None`: the kernel's default, which
    /// retransmits for about 15 minutes.
    pub unacknowledged: Option<Duration>,
    /// `lb`'s own listening address: a backend that resolves to it is a
    /// loop, never dialled.
    pub own: Option<SocketAddr>,
}

/// Which phase of reaching a backend failed, and how: what the log line
/// and the passive health marks say.
#[derive(Debug)]
pub struct ConnectError {
    pub phase: &'static str,
    pub error: io::Error,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.phase, self.error)
    }
}

impl std::error::Error for ConnectError {}

// ANCHOR: connect
/// Connects to `address` within `timeouts`, writes `proxy_header` (a
/// PROXY protocol header, for a `send_proxy` backend) and then speaks TLS
/// if it is a `tls://` backend (`tls` must then be given: the config
/// refuses `tls://` backends without a CA or `insecure`).
pub async fn connect(
    address: &Address,
    tls: Option<&BackendTls>,
    timeouts: ConnectTimeouts,
    proxy_header: Option<&[u8]>,
) -> Result<Stream, ConnectError> {
    let mut tcp =
        dial(&address.host_port, timeouts).await.map_err(|error| {
            ConnectError {
                phase: "connect",
                error,
            }
        })?;
    if let Some(header) = proxy_header {
        // One write, before anything else: the header is the first thing
        // the backend reads, in the first segment (at most 107 bytes, far
        // below any send buffer, so the kernel takes it whole), and below
        // TLS, since it is addressed to the backend's TCP layer. Bounded
        // by the connect timeout: a fresh connection's send buffer is
        // empty, so only a broken one can make it wait.
        let writing = tcp.write_all(header);
        let written = tokio::time::timeout(timeouts.connect, writing)
            .await
            .unwrap_or_else(|_| Err(timed_out(timeouts.connect)));
        written.map_err(|error| ConnectError {
            phase: "PROXY header",
            error,
        })?;
    }
    // ANCHOR_END: connect
    if !address.tls {
        return Ok(Stream::Plain(tcp));
    }
    let tls = tls.expect("the config refuses tls:// backends without a CA");
    let handshake = async {
        let name = server_name(address.host_port.host())?;
        tls.connector.connect(name, tcp).await
    };
    match tokio::time::timeout(timeouts.tls_handshake, handshake).await {
        Ok(Ok(stream)) => Ok(Stream::Tls(Box::new(stream.into()))),
        Ok(Err(error)) => Err(ConnectError {
            phase: "TLS handshake",
            error,
        }),
        Err(_) => Err(ConnectError {
            phase: "TLS handshake",
            error: timed_out(timeouts.tls_handshake),
        }),
    }
}

// ANCHOR: dial
/// A TCP connection to `host_port` within the connect timeout, with
/// Nagle's algorithm off (small requests and answers should leave at
/// once) and `TCP_USER_TIMEOUT` set. An address that is `lb`'s own
/// listener is refused before any packet leaves: a loop would have `lb`
/// connect to itself, which connects to itself again, until every
/// descriptor is gone.
async fn dial(
    host_port: &HostPort,
    timeouts: ConnectTimeouts,
) -> io::Result<TcpStream> {
    let connecting = async {
        let addrs: Vec<SocketAddr> =
            tokio::net::lookup_host((host_port.host(), host_port.port()))
                .await?
                .collect();
        if let Some(own) = timeouts.own
            && let Some(looped) = addrs.iter().find(|&&to| is_own(to, own))
        {
            return Err(io::Error::other(format!(
                "loop: {host_port} is {looped}, lb's own listener \
                 ({own}); not dialled"
            )));
        }
        TcpStream::connect(addrs.as_slice()).await
    };
    let limit = timeouts.connect;
    let tcp = tokio::time::timeout(limit, connecting)
        .await
        .map_err(|_| timed_out(limit))??;
    tcp.set_nodelay(true)?;
    if let Some(unacknowledged) = timeouts.unacknowledged {
        let ms = u32::try_from(unacknowledged.as_millis()).unwrap_or(u32::MAX);
        rustix::net::sockopt::set_tcp_user_timeout(&tcp, ms)?;
    }
    Ok(tcp)
}

/// Whether connecting to `to` reaches the listener bound at `own`: the
/// same port, and `own`'s address, or, for a wildcard `own`, any
/// address of this machine (one a socket can be bound to).
fn is_own(to: SocketAddr, own: SocketAddr) -> bool {
    if to.port() != own.port() {
        return false;
    }
    let ip = to.ip().to_canonical();
    // Connecting to 0.0.0.0 (or ::) reaches this machine.
    if ip.is_unspecified() || ip == own.ip().to_canonical() {
        return true;
    }
    own.ip().is_unspecified()
        && (ip.is_loopback() || std::net::UdpSocket::bind((ip, 0)).is_ok())
}
// ANCHOR_END: dial

/// The name the backend's certificate must carry: the host exactly as
/// written in its address, an IP address checked as an IP address.
pub fn server_name(host: &str) -> io::Result<ServerName<'static>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ServerName::from(ip));
    }
    ServerName::try_from(host.to_owned()).map_err(|_| {
        let msg = format!("`{host}` is neither an IP address nor a DNS name");
        io::Error::new(io::ErrorKind::InvalidInput, msg)
    })
}

/// The error of a phase that ran out of time, saying how long it had.
pub fn timed_out(limit: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("timed out after {}", crate::config::show_duration(limit)),
    )
}
