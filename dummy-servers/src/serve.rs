//! Serving a backend: the accept loop, HTTP/1 on each connection (with
//! half-closed clients answered), a PROXY header and TLS when asked, and
//! stopping on a shutdown signal.
//!
//! axum's own `axum::serve` cannot be told to answer a client that
//! half-closes, so the loop here hands each connection to hyper's HTTP/1
//! server itself, and runs the backend's routes behind its fault mode.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{Service, service_fn};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use lab_common::proxy_protocol::{self, ReceivedHeader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_util::either::Either;

use crate::fault::{self, NoAnswer};
use crate::{Backend, router};

/// Serves one backend on an already-bound listener until `shutdown`
/// completes (Ctrl-C, in the binary); then it stops accepting, closes the
/// connections still open and returns.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let backend = Backend::new(listener.local_addr()?);
    serve_backend(listener, backend, shutdown).await;
    Ok(())
}

/// The same over TLS with `tls` (the lab certificate, say).
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let backend = Backend::new_tls(listener.local_addr()?);
    let listener = OpeningListener::new(listener, Some(tls), false);
    serve_backend(listener, backend, shutdown).await;
    Ok(())
}

/// [`serve`] or [`serve_tls`] (with `tls`) for a port that expects a
/// PROXY header (v1 or v2) before anything else, TLS included, as a
/// server behind HAProxy's `send-proxy` or `lb`'s `send_proxy` does. A
/// connection without one is closed; the echo shows the client's address
/// the header gave.
pub async fn serve_proxied(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let addr = listener.local_addr()?;
    let backend = match tls {
        Some(_) => Backend::new_tls(addr),
        None => Backend::new(addr),
    };
    let listener = OpeningListener::new(listener, tls, true);
    serve_backend(listener, backend, shutdown).await;
    Ok(())
}

/// What an accept loop knows of a connection's peer besides its address.
pub(crate) trait Peer: std::fmt::Debug {
    /// The PROXY header the connection started with, if its port
    /// expects one.
    fn proxy_header(&self) -> Option<ReceivedHeader>;
}

impl Peer for SocketAddr {
    fn proxy_header(&self) -> Option<ReceivedHeader> {
        None
    }
}

/// A connection's peer, and the PROXY header it sent first.
#[derive(Clone, Copy, Debug)]
pub struct ProxiedPeer {
    pub addr: SocketAddr,
    pub header: Option<ReceivedHeader>,
}

impl Peer for ProxiedPeer {
    fn proxy_header(&self) -> Option<ReceivedHeader> {
        self.header
    }
}

/// How long a client may take to send its PROXY header.
const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The accept loop of [`serve`] and [`serve_tls`], for a backend made
/// by the caller (tests keep a handle on it to set its fault mode).
pub(crate) async fn serve_backend<L: Listener>(
    mut listener: L,
    backend: Arc<Backend>,
    shutdown: impl Future<Output = ()>,
) where
    L::Addr: Peer,
{
    let routes = TowerToHyperService::new(router(backend.clone()));
    let mut http = http1::Builder::new();
    // A client may send its whole request and then shut down its write
    // side ("half-close": I have nothing more to say, I am listening).
    // hyper takes that end-of-stream for a client that left, and drops
    // the connection even while the answer is on its way, unless told
    // to wait.
    http.half_close(true);
    // As axum::serve: no timer, so no limit on how long a head may take.
    http.header_read_timeout(None);

    // The connections live in this set: returning drops it, which closes
    // every one still open.
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            (io, peer) = listener.accept() => {
                let backend = backend.clone();
                let routes = routes.clone();
                // Every request on this connection carries what its
                // PROXY header said, for the echo to show.
                let told = peer.proxy_header();
                let service = service_fn(move |mut request: Request<Incoming>| {
                    if let Some(header) = told {
                        request.extensions_mut().insert(header);
                    }
                    answer(backend.clone(), routes.clone(), request)
                });
                let connection =
                    http.serve_connection(TokioIo::new(io), service);
                connections.spawn(async move {
                    if let Err(err) = connection.await {
                        tracing::debug!(?peer, "connection ended: {err}");
                    }
                });
            }
            // Forget the connections that are over, so the set stays the
            // size of those open.
            Some(_) = connections.join_next() => {}
        }
    }
}

/// One request: the fault mode first, then the routes.
async fn answer(
    backend: Arc<Backend>,
    routes: TowerToHyperService<Router>,
    request: Request<Incoming>,
) -> Result<Response, NoAnswer> {
    let mut request = request.map(Body::new);
    if let Some(response) = fault::apply(&backend, &mut request).await? {
        return Ok(response);
    }
    let Ok(response) = routes.call(request).await;
    Ok(response)
}

/// A TCP listener that hands out connections once their opening is
/// done: a PROXY header read, if the port expects one, then a TLS
/// handshake, if it serves TLS.
///
/// Each opening runs in its own task, so one slow or silent client
/// does not hold up the others; a failed one is logged and dropped.
/// Dropping the listener closes the port and ends the openings in
/// flight.
pub struct OpeningListener {
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
    expect_proxy: bool,
    openings: JoinSet<Result<Opened, String>>,
}

type Opened = (Either<TcpStream, TlsStream<TcpStream>>, ProxiedPeer);

impl OpeningListener {
    pub fn new(
        tcp: TcpListener,
        tls: Option<Arc<ServerConfig>>,
        expect_proxy: bool,
    ) -> OpeningListener {
        OpeningListener {
            tcp,
            tls: tls.map(TlsAcceptor::from),
            expect_proxy,
            openings: JoinSet::new(),
        }
    }
}

/// A connection's opening: its PROXY header, then its TLS handshake;
/// `Err` with the line to log.
async fn open(
    mut stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    expect_proxy: bool,
) -> Result<Opened, String> {
    let header = if expect_proxy {
        let header =
            proxy_protocol::read_header(&mut stream, PROXY_HEADER_TIMEOUT)
                .await
                .map_err(|err| {
                    format!("PROXY header from client {peer}: {err}")
                })?;
        Some(header)
    } else {
        None
    };
    let proxied = ProxiedPeer { addr: peer, header };
    match tls {
        Some(acceptor) => match acceptor.accept(stream).await {
            Ok(stream) => Ok((Either::Right(stream), proxied)),
            Err(err) => Err(format!("TLS handshake with client {peer}: {err}")),
        },
        None => Ok((Either::Left(stream), proxied)),
    }
}

impl Listener for OpeningListener {
    type Io = Either<TcpStream, TlsStream<TcpStream>>;
    type Addr = ProxiedPeer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            // Both branches are cancel-safe: the accept loop drops this
            // future when another of its branches is ready, and nothing
            // accepted is lost.
            tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let opening =
                            open(stream, peer, self.tls.clone(), self.expect_proxy);
                        self.openings.spawn(opening);
                    }
                    Err(err) => {
                        tracing::warn!("accept failed: {err}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(done) = self.openings.join_next() => match done {
                    Ok(Ok(opened)) => return opened,
                    Ok(Err(failed)) => tracing::info!("{failed}"),
                    Err(err) => tracing::warn!("opening task: {err}"),
                },
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(ProxiedPeer {
            addr: self.tcp.local_addr()?,
            header: None,
        })
    }
}
