//! Reaching a backend: a TCP connection within the connect timeout, then
//! TLS if the backend is `tls://`, within the handshake timeout. Client
//! traffic (`proxy`) and the active health checks (`health`) both come
//! through here, so a check verifies a backend exactly as a client's
//! connection would.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use lab_common::HostPort;
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

/// How long each phase of reaching a backend may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectTimeouts {
    pub connect: Duration,
    pub tls_handshake: Duration,
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

/// Connects to `address` within `timeouts`, speaking TLS if it is a
/// `tls://` backend (`tls` must then be given: the config refuses
/// `tls://` backends without a CA or `insecure`).
pub async fn connect(
    address: &Address,
    tls: Option<&BackendTls>,
    timeouts: ConnectTimeouts,
) -> Result<Stream, ConnectError> {
    let tcp =
        dial(&address.host_port, timeouts.connect)
            .await
            .map_err(|error| ConnectError {
                phase: "connect",
                error,
            })?;
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

/// A TCP connection to `host_port` within `timeout`, with Nagle's
/// algorithm off: small requests and answers should leave at once.
async fn dial(
    host_port: &HostPort,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let connecting = TcpStream::connect((host_port.host(), host_port.port()));
    let tcp = tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| timed_out(timeout))??;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

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
