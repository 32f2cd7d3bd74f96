//! Step 08 — Final: per-server TLS
//!
//! Changed since step 07:
//! - each backend is a `Server`: an address and whether it speaks TLS,
//!   written `127.0.0.1:4444` (plain TCP) or `tls://127.0.0.1:4445` in
//!   `--backends`; plain and TLS backends share one rotation;
//! - TLS at the front is optional (`--tls-front`): the same code relays
//!   a plain or a TLS client, to a plain or a TLS backend, because it only
//!   asks of each side that it can read and write bytes;
//! - certificates are loaded only for what is used: a plain front needs
//!   no `--cert`, a list without `tls://` needs no `--ca`;
//! - the relay is our own `pipe`, one per direction: an idle connection
//!   holds two 512-byte buffers instead of `copy_bidirectional`'s two
//!   8 KiB ones, and a bulk transfer borrows 128 KiB while it streams
//!   (`scripts/bench.sh` measures both).
//!
//! This is the article's final program: a list of servers, each with its
//! own TLS flag, balanced round robin.
//!
//! ```text
//! scripts/gen-certs.sh
//! scripts/spawn-backends.sh restart --tls-ports 4445,4446
//! cargo run --bin 08-final -- --tls-front
//! curl --cacert certs/ca.crt https://localhost:3000
//! ```

use std::fmt;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use lab_common::{Error, HostPort};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tracing::{Instrument, info, info_span, warn};

// ANCHOR: server
/// One backend: where it is, and whether the balancer must speak TLS to
/// it. The article's final `Server` struct, with the same two fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    pub addr: HostPort,
    pub tls: bool,
}

impl FromStr for Server {
    type Err = String;

    /// `HOST:PORT` or `tcp://HOST:PORT` for plain TCP, `tls://HOST:PORT`
    /// for TLS. Any other scheme is refused rather than guessed at.
    fn from_str(text: &str) -> Result<Server, String> {
        let text = text.trim();
        let (tls, addr) = if let Some(addr) = text.strip_prefix("tls://") {
            (true, addr)
        } else if let Some(addr) = text.strip_prefix("tcp://") {
            (false, addr)
        } else if let Some((scheme, _)) = text.split_once("://") {
            return Err(format!(
                "`{text}`: unknown scheme `{scheme}://`; write HOST:PORT \
                 for plain TCP or tls://HOST:PORT for TLS"
            ));
        } else {
            (false, text)
        };
        Ok(Server {
            addr: addr.parse()?,
            tls,
        })
    }
}

impl fmt::Display for Server {
    /// The way it is written on the command line, `tls://` and all.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.tls {
            write!(f, "tls://{}", self.addr)
        } else {
            write!(f, "{}", self.addr)
        }
    }
}
// ANCHOR_END: server

// ANCHOR: round_robin
/// Hands out backends in a fixed rotation.
///
/// The article counts the calls of every server and picks the least
/// called one; with every call counted the same, that is a rotation, and
/// an index that wraps around does it without a map.
#[derive(Debug)]
pub struct RoundRobin {
    backends: Vec<Server>,
    next: usize,
}

impl RoundRobin {
    /// Fails on an empty list: with nothing to rotate through, every
    /// client would fail.
    pub fn new(backends: Vec<Server>) -> Result<RoundRobin, Error> {
        if backends.is_empty() {
            return Err("round robin needs at least one backend".into());
        }
        Ok(RoundRobin { backends, next: 0 })
    }

    /// The backend for the next connection.
    pub fn pick_backend(&mut self) -> &Server {
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

/// What the balancer needs to speak TLS to a backend: the connector, and
/// how it checks certificates, in words for the log (the `certificate`
/// field of the connection's span).
#[derive(Clone)]
struct BackendTls {
    connector: TlsConnector,
    checked: &'static str,
}

impl BackendTrust {
    /// The client side's counterpart of the acceptor, holding what we
    /// trust. An insecure connector is announced here, once.
    fn connector(self) -> BackendTls {
        match self {
            BackendTrust::Verify(config) => BackendTls {
                connector: TlsConnector::from(config),
                checked: "checked",
            },
            BackendTrust::Insecure => {
                warn!(
                    "--insecure: backend certificates are NOT CHECKED; \
                     anyone on the way to a backend can pose as it"
                );
                let config = lab_common::tls::insecure_client_config();
                BackendTls {
                    connector: TlsConnector::from(config),
                    checked: "NOT CHECKED, --insecure",
                }
            }
        }
    }
}
// ANCHOR_END: backend_trust

// ANCHOR: run
/// Accepts clients until `shutdown` completes and proxies each one to the
/// next backend in turn. With `front_tls`, clients must speak TLS first;
/// `backend_trust` says how to check the `tls://` backends, and may be
/// `None` only if there are none.
pub async fn run(
    listener: TcpListener,
    backends: Vec<Server>,
    front_tls: Option<Arc<ServerConfig>>,
    backend_trust: Option<BackendTrust>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    if backend_trust.is_none() && backends.iter().any(|server| server.tls) {
        return Err("tls:// backends need a CA to check them against \
                    (--ca) or --insecure"
            .into());
    }
    let mut round_robin = RoundRobin::new(backends)?;
    // The acceptor holds the certificate and key. Cloning it only clones
    // an `Arc`, so every connection's task gets its own cheaply.
    let acceptor = front_tls.map(TlsAcceptor::from);
    // Only tls:// backends need a connector. The log lines of a
    // connection to one say how its certificate was checked.
    let backend_tls = backend_trust.map(BackendTrust::connector);
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
        let backend_tls = backend_tls.clone();
        let checked = backend_tls.as_ref().map(|tls| tls.checked);
        let span = info_span!(
            "connection",
            client = %client_addr,
            backend = %backend,
            certificate = checked.filter(|_| backend.tls)
        );
        // Before the handshake, whose small messages should not wait
        // either.
        let _ = client.set_nodelay(true);
        // Two kinds of task, one per kind of front: a task's memory is
        // the largest state its future can be in, so a plain connection
        // should not carry room for a TLS session it will never have.
        let Some(acceptor) = acceptor.clone() else {
            let task = async move {
                proxy(client, &backend, backend_tls.as_ref()).await;
            };
            tokio::spawn(task.instrument(span));
            continue;
        };
        let task = async move {
            let backend_tls = backend_tls.as_ref();
            // The handshake happens here, in the connection's own task: a
            // client that is slow to finish it, or never does, holds up no
            // one else. (A production balancer would also give up on it
            // after a few seconds.)
            match acceptor.accept(client).await {
                Ok(client) => proxy(client, &backend, backend_tls).await,
                Err(err) => {
                    warn!(phase = "client TLS handshake", error = %err)
                }
            }
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
/// Dials `backend`, starts TLS with it if it is a `tls://` server, then
/// relays between it and `client`, plain or TLS, until both directions
/// have finished, and logs how it went.
///
/// `client` is any stream of bytes: a `TcpStream`, or a TLS stream over
/// one. The compiler makes one copy of this function for each.
async fn proxy<C>(
    mut client: C,
    backend: &Server,
    backend_tls: Option<&BackendTls>,
) where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let server = match dial(&backend.addr).await {
        Ok(server) => server,
        Err(err) => {
            warn!(phase = "dial", error = %err);
            // End the session properly (close_notify over TLS), so the
            // client sees the connection closed rather than cut.
            let _ = client.shutdown().await;
            return;
        }
    };
    if !backend.tls {
        relay(client, server).await;
        return;
    }
    let backend_tls =
        backend_tls.expect("run refuses tls:// backends without a CA");
    // Boxed: the TLS session lives on the heap only for connections that
    // have one, instead of making every connection's task that much
    // bigger.
    Box::pin(proxy_tls_backend(client, server, backend, backend_tls)).await;
}

/// The rest of `proxy` for a `tls://` backend: the handshake, then the
/// relay.
async fn proxy_tls_backend<C>(
    mut client: C,
    server: TcpStream,
    backend: &Server,
    backend_tls: &BackendTls,
) where
    C: AsyncRead + AsyncWrite + Unpin,
{
    // A backend whose certificate fails the check never sees a byte of
    // the client's: the client is told goodbye instead.
    let connector = &backend_tls.connector;
    let server = match backend_handshake(connector, server, &backend.addr).await
    {
        Ok(server) => server,
        Err(err) => {
            warn!(phase = "backend TLS handshake", error = %err);
            let _ = client.shutdown().await;
            return;
        }
    };
    relay(client, server).await;
}

/// Copies both ways between `client` and `server`, whatever each is,
/// until both directions have finished, and logs how it went.
async fn relay<C, S>(client: C, server: S)
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Both directions at once, each passing on the other's end of stream
    // (half-close), as in step 02. TLS streams decrypt what they read and
    // encrypt what they write; the relay sees only plain bytes.
    let (mut client_in, mut client_out) = tokio::io::split(client);
    let (mut server_in, mut server_out) = tokio::io::split(server);
    let both = tokio::try_join!(
        pipe(&mut client_in, &mut server_out),
        pipe(&mut server_in, &mut client_out),
    );
    match both {
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

// ANCHOR: pipe
/// What a connection holds while it waits for bytes: enough for most
/// requests and small answers, little enough that thousands of idle
/// connections cost little.
const SMALL_BUFFER: usize = 512;

/// What it takes while bytes come faster than that: a bulk transfer then
/// needs fewer, larger reads and writes (128 KiB moved about twice the
/// Gbit/s of 64 KiB per CPU second in `scripts/bench.sh`).
const BIG_BUFFER: usize = 128 * 1024;

/// Copies `from` into `to` until `from` ends, then shuts `to` down
/// (half-close), and says how many bytes passed.
///
/// `tokio::io::copy_bidirectional` gives every connection two 8 KiB
/// buffers for its whole life, idle or not. This waits with a small one,
/// and takes a big one only while reads fill the small one, giving it back
/// as soon as a read comes back short: memory goes to the connections
/// that are moving bytes. (A stream that falls silent just after a full
/// read keeps its big buffer until its next read.)
async fn pipe<R, W>(from: &mut R, to: &mut W) -> io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut copied = 0;
    let mut small = [0u8; SMALL_BUFFER];
    loop {
        let n = from.read(&mut small).await?;
        if n == 0 {
            to.shutdown().await?;
            return Ok(copied);
        }
        to.write_all(&small[..n]).await?;
        // A TLS stream may hold written bytes back; on to the peer with
        // them before waiting for more. (On a TcpStream this costs
        // nothing.)
        to.flush().await?;
        copied += n as u64;
        if n < SMALL_BUFFER {
            continue;
        }
        // The small buffer came back full: more is waiting.
        let mut big = Vec::with_capacity(BIG_BUFFER);
        loop {
            big.clear();
            let n = from.read_buf(&mut big).await?;
            if n == 0 {
                to.shutdown().await?;
                return Ok(copied);
            }
            to.write_all(&big).await?;
            to.flush().await?;
            copied += n as u64;
            if n < BIG_BUFFER {
                break;
            }
        }
    }
}
// ANCHOR_END: pipe

#[cfg(test)]
mod tests {
    use super::*;

    fn backends(ports: &[u16]) -> Vec<Server> {
        ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}").parse().unwrap())
            .collect()
    }

    #[test]
    fn picks_backends_in_turn_and_wraps_around() {
        let mut round_robin =
            RoundRobin::new(backends(&[4444, 4445, 4446])).unwrap();
        let ports: Vec<u16> = (0..7)
            .map(|_| round_robin.pick_backend().addr.port())
            .collect();
        assert_eq!(ports, [4444, 4445, 4446, 4444, 4445, 4446, 4444]);
    }

    #[test]
    fn refuses_an_empty_list() {
        assert!(RoundRobin::new(Vec::new()).is_err());
    }

    #[test]
    fn a_server_is_plain_unless_written_with_tls() {
        let plain: Server = "127.0.0.1:4444".parse().unwrap();
        assert!(!plain.tls);
        assert_eq!(plain.addr.port(), 4444);
        let explicit: Server = "tcp://localhost:4444".parse().unwrap();
        assert_eq!((explicit.tls, explicit.addr.host()), (false, "localhost"));
        let tls: Server = "tls://[::1]:4445".parse().unwrap();
        assert_eq!((tls.tls, tls.addr.host()), (true, "::1"));
        assert_eq!(tls.to_string(), "tls://[::1]:4445");
        assert_eq!(plain.to_string(), "127.0.0.1:4444");
    }

    #[test]
    fn a_server_with_another_scheme_or_no_port_is_refused() {
        let err = "https://localhost:4445".parse::<Server>().unwrap_err();
        assert!(err.contains("unknown scheme `https://`"), "{err}");
        assert!("tls://localhost".parse::<Server>().is_err());
        assert!("tls://".parse::<Server>().is_err());
    }

    /// Sends `data` through `pipe` and returns what came out the other
    /// end, which must have been shut down (or this never returns).
    async fn through_pipe(data: &[u8]) -> Vec<u8> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut source, mut from) = tokio::io::duplex(8 * 1024);
        let (mut to, mut sink) = tokio::io::duplex(8 * 1024);
        let feed = async move {
            source.write_all(data).await.unwrap();
            // Dropping the writer is the end of stream.
        };
        let copy = pipe(&mut from, &mut to);
        let mut out = Vec::new();
        let (_, copied, read) =
            tokio::join!(feed, copy, sink.read_to_end(&mut out));
        assert_eq!(copied.unwrap(), data.len() as u64);
        assert_eq!(read.unwrap(), data.len());
        out
    }

    #[tokio::test]
    async fn pipe_copies_every_size_around_its_buffers_and_passes_the_end_on() {
        let sizes = [
            0,
            1,
            SMALL_BUFFER - 1,
            SMALL_BUFFER,
            SMALL_BUFFER + 1,
            BIG_BUFFER - 1,
            BIG_BUFFER,
            BIG_BUFFER + SMALL_BUFFER,
            5 * BIG_BUFFER + 7,
        ];
        for size in sizes {
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let out = tokio::time::timeout(
                Duration::from_secs(10),
                through_pipe(&data),
            )
            .await
            .expect("pipe finishes");
            assert!(out == data, "{size} bytes came out different");
        }
    }

    #[tokio::test]
    async fn pipe_passes_on_a_full_small_buffer_before_waiting_for_more() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut source, mut from) = tokio::io::duplex(8 * 1024);
        let (mut to, mut sink) = tokio::io::duplex(8 * 1024);
        let copy = tokio::spawn(async move { pipe(&mut from, &mut to).await });
        // Exactly one small buffer's worth, then silence: the bytes must
        // arrive although the pipe now waits with its big buffer.
        source.write_all(&[7u8; SMALL_BUFFER]).await.unwrap();
        let mut out = vec![0u8; SMALL_BUFFER];
        tokio::time::timeout(
            Duration::from_secs(10),
            sink.read_exact(&mut out),
        )
        .await
        .expect("the bytes arrive without more input")
        .unwrap();
        assert_eq!(out, [7u8; SMALL_BUFFER]);
        drop(source);
        let copied = copy.await.unwrap().unwrap();
        assert_eq!(copied, SMALL_BUFFER as u64);
    }

    #[tokio::test]
    async fn pipe_flushes_a_writer_that_holds_bytes_back() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
        let (mut source, mut from) = tokio::io::duplex(8 * 1024);
        let (to, mut sink) = tokio::io::duplex(8 * 1024);
        // Like a TLS stream, a BufWriter sends nothing until flushed.
        let mut to = BufWriter::new(to);
        let copy = tokio::spawn(async move { pipe(&mut from, &mut to).await });
        source.write_all(b"hello").await.unwrap();
        let mut out = [0u8; 5];
        tokio::time::timeout(
            Duration::from_secs(10),
            sink.read_exact(&mut out),
        )
        .await
        .expect("the bytes are flushed without more input")
        .unwrap();
        assert_eq!(&out, b"hello");
        drop(source);
        assert_eq!(copy.await.unwrap().unwrap(), 5);
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
