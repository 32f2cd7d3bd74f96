//! Serving a backend: the accept loop, HTTP/1 on each connection (with
//! half-closed clients answered), TLS when asked, and stopping on a
//! shutdown signal.
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
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;

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
    serve_backend(TlsListener::new(listener, tls), backend, shutdown).await;
    Ok(())
}

/// The accept loop of [`serve`] and [`serve_tls`], for a backend made
/// by the caller (tests keep a handle on it to set its fault mode).
pub(crate) async fn serve_backend<L: Listener>(
    mut listener: L,
    backend: Arc<Backend>,
    shutdown: impl Future<Output = ()>,
) where
    L::Addr: std::fmt::Debug,
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
                let service = service_fn(move |request| {
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

/// A TCP listener that hands out only connections whose TLS handshake
/// succeeded.
///
/// Each handshake runs in its own task, so one slow or silent client
/// does not hold up the others; a failed one is logged and dropped.
/// Dropping the listener closes the port and ends the handshakes in
/// flight.
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<(io::Result<TlsStream<TcpStream>>, SocketAddr)>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, tls: Arc<ServerConfig>) -> TlsListener {
        TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(tls),
            handshakes: JoinSet::new(),
        }
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            // Both branches are cancel-safe: the accept loop drops this
            // future when another of its branches is ready, and nothing
            // accepted is lost.
            tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let acceptor = self.acceptor.clone();
                        self.handshakes.spawn(async move {
                            (acceptor.accept(stream).await, peer)
                        });
                    }
                    Err(err) => {
                        tracing::warn!("accept failed: {err}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(done) = self.handshakes.join_next() => match done {
                    Ok((Ok(stream), peer)) => return (stream, peer),
                    Ok((Err(err), peer)) => tracing::info!(
                        "TLS handshake with client {peer}: {err}"
                    ),
                    Err(err) => tracing::warn!("TLS handshake task: {err}"),
                },
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
