//! Backends started inside a test (feature `testing`): each on a port the
//! OS picks, stopped by its shutdown signal or when dropped.
//!
//! ```toml
//! [dev-dependencies]
//! dummy-servers = { workspace = true, features = ["testing"] }
//! ```

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use lab_common::cli::Shutdown;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, ServerConfig};

use crate::serve::{OpeningListener, serve_backend};
use crate::{Backend, Fault};

/// A backend running in this process on `127.0.0.1:0`, for tests.
pub struct RunningBackend {
    pub addr: SocketAddr,
    backend: Arc<Backend>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl RunningBackend {
    /// Starts a backend on a port the OS picks.
    pub async fn start() -> RunningBackend {
        RunningBackend::on(fresh_listener().await)
    }

    /// Starts a backend that serves over TLS with `tls`, on a port the OS
    /// picks.
    pub async fn start_tls(tls: Arc<ServerConfig>) -> RunningBackend {
        let listener = fresh_listener().await;
        let addr = listener.local_addr().expect("bound listener has an addr");
        let backend = Backend::new_tls(addr);
        let listener = OpeningListener::new(listener, Some(tls), false);
        RunningBackend::spawn(addr, backend, |backend, shutdown| {
            serve_backend(listener, backend, shutdown)
        })
    }

    /// Starts a backend that expects a PROXY header (v1 or v2) at the
    /// start of every connection, before TLS if `tls` is given, on a
    /// port the OS picks.
    pub async fn start_proxied(
        tls: Option<Arc<ServerConfig>>,
    ) -> RunningBackend {
        let listener = fresh_listener().await;
        let addr = listener.local_addr().expect("bound listener has an addr");
        let backend = match tls {
            Some(_) => Backend::new_tls(addr),
            None => Backend::new(addr),
        };
        let listener = OpeningListener::new(listener, tls, true);
        RunningBackend::spawn(addr, backend, |backend, shutdown| {
            serve_backend(listener, backend, shutdown)
        })
    }

    /// Starts `count` backends, each on its own fresh port.
    pub async fn start_many(count: usize) -> Vec<RunningBackend> {
        let mut backends = Vec::with_capacity(count);
        for _ in 0..count {
            backends.push(RunningBackend::start().await);
        }
        backends
    }

    /// Starts a backend on a listener the caller bound.
    pub fn on(listener: TcpListener) -> RunningBackend {
        let addr = listener.local_addr().expect("bound listener has an addr");
        RunningBackend::spawn(addr, Backend::new(addr), |backend, shutdown| {
            serve_backend(listener, backend, shutdown)
        })
    }

    fn spawn<F, Fut>(
        addr: SocketAddr,
        backend: Arc<Backend>,
        serve: F,
    ) -> RunningBackend
    where
        F: FnOnce(Arc<Backend>, Shutdown) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown: Shutdown = Box::pin(async move {
            let _ = stopped.await;
        });
        let task = tokio::spawn(serve(backend.clone(), shutdown));
        RunningBackend {
            addr,
            backend,
            stop: Some(stop),
            task,
        }
    }

    /// `backend-PORT`, the name in this backend's answers.
    pub fn name(&self) -> String {
        self.backend.name().to_owned()
    }

    /// Sets the backend's fault mode (as `POST /fault/MODE` does) and
    /// returns the old one.
    pub fn set_fault(&self, fault: Fault) -> Fault {
        self.backend.set_fault(fault)
    }

    /// Stops the backend through its shutdown signal: when this returns
    /// the port is closed, so the next connection to it is refused, and
    /// so is every connection that was open.
    pub async fn stop(mut self) -> SocketAddr {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // It returns as soon as it sees the signal; ten seconds is a hang.
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("the backend stops within 10 s of its signal")
            .expect("the backend's task did not panic");
        self.addr
    }

    /// Starts a fresh backend (calls from 0, fault mode none) on an
    /// address a stopped one used. Linux lets a listener rebind at once
    /// (SO_REUSEADDR).
    pub async fn restart(addr: SocketAddr) -> RunningBackend {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|err| panic!("rebinding {addr}: {err}"));
        RunningBackend::on(listener)
    }
}

impl Drop for RunningBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn fresh_listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding 127.0.0.1:0 always works")
}

/// The addresses of `backends`, in order.
pub fn addrs(backends: &[RunningBackend]) -> Vec<SocketAddr> {
    backends.iter().map(|backend| backend.addr).collect()
}

/// Addresses as `--backends` takes them: `127.0.0.1:1,127.0.0.1:2`.
pub fn backend_list<T: ToString>(addrs: impl IntoIterator<Item = T>) -> String {
    addrs
        .into_iter()
        .map(|addr| addr.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// A connection's opening as a test writes it: from which local address,
/// what comes first (a PROXY header, say), and whether TLS follows.
#[derive(Clone, Default)]
pub struct Opening {
    /// The local address to connect from (`127.0.0.2`, a client other
    /// than 127.0.0.1); `None`: the system's choice.
    pub from: Option<IpAddr>,
    /// Bytes written before anything else.
    pub first: Vec<u8>,
    /// Speak TLS after `first`, trusting this (the server is `localhost`).
    pub tls: Option<Arc<ClientConfig>>,
}

/// `GET path` on a new connection to `addr` opened as `opening` says, with
/// `Connection: close`; the whole answer as text (head and body), or the
/// error that ended it (a connection closed before any answer is an
/// empty `Ok`). Within 10 s.
pub async fn get_after(
    addr: SocketAddr,
    opening: &Opening,
    path: &str,
) -> io::Result<String> {
    let exchange = async {
        let socket = TcpSocket::new_v4()?;
        if let Some(from) = opening.from {
            socket.bind(SocketAddr::new(from, 0))?;
        }
        let mut tcp = socket.connect(addr).await?;
        tcp.write_all(&opening.first).await?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n"
        );
        let mut answer = Vec::new();
        match &opening.tls {
            Some(config) => {
                let name = ServerName::try_from("localhost")
                    .expect("localhost is a DNS name");
                let connector = TlsConnector::from(config.clone());
                let mut tls = connector.connect(name, tcp).await?;
                tls.write_all(request.as_bytes()).await?;
                read_answer(&mut tls, &mut answer).await?;
            }
            None => {
                tcp.write_all(request.as_bytes()).await?;
                read_answer(&mut tcp, &mut answer).await?;
            }
        }
        Ok(String::from_utf8_lossy(&answer).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| io::Error::other("no answer within 10 s"))?
}

/// Reads to the end; a TLS peer that closes without `close_notify` after
/// its answer is an end too.
async fn read_answer<S: AsyncRead + Unpin>(
    stream: &mut S,
    answer: &mut Vec<u8>,
) -> io::Result<()> {
    match stream.read_to_end(answer).await {
        Err(err)
            if err.kind() == io::ErrorKind::UnexpectedEof
                && !answer.is_empty() =>
        {
            Ok(())
        }
        other => other.map(|_| ()),
    }
}
