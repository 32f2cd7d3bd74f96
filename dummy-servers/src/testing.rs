//! Backends started inside a test (feature `testing`), each on a port
//! the OS picks.
//!
//! ```toml
//! [dev-dependencies]
//! dummy-servers = { workspace = true, features = ["testing"] }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_rustls::rustls::ServerConfig;

use crate::{serve, serve_tls};

/// A backend running in this process on `127.0.0.1:0`, for tests.
pub struct RunningBackend {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningBackend {
    /// Starts a backend on a port the OS picks.
    pub async fn start() -> RunningBackend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0 always works");
        Self::on(listener)
    }

    /// Starts a backend that serves over TLS with `tls`, on a port the OS
    /// picks.
    pub async fn start_tls(tls: Arc<ServerConfig>) -> RunningBackend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0 always works");
        let addr = listener.local_addr().expect("bound listener has an addr");
        RunningBackend {
            addr,
            task: tokio::spawn(serve_tls(listener, tls)),
        }
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
        RunningBackend {
            addr,
            task: tokio::spawn(serve(listener)),
        }
    }

    /// `backend-PORT`, the name in this backend's answers.
    pub fn name(&self) -> String {
        format!("backend-{}", self.addr.port())
    }

    /// Stops accepting: the port is closed when this returns, so the next
    /// connection to it is refused.
    pub async fn stop(mut self) -> SocketAddr {
        self.task.abort();
        let _ = (&mut self.task).await;
        self.addr
    }

    /// Starts a fresh backend (calls from 0) on an address a stopped one
    /// used. Linux lets a listener rebind at once (SO_REUSEADDR).
    pub async fn restart(addr: SocketAddr) -> RunningBackend {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|err| panic!("rebinding {addr}: {err}"));
        Self::on(listener)
    }
}

impl Drop for RunningBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
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
