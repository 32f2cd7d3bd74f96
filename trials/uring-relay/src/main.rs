//! A trial for issue 19: does io_uring relay a kept-alive request with
//! less CPU than epoll? One program, two runtimes, the same relay: accept,
//! dial the next backend in turn, then copy each direction through a
//! 16 KiB buffer until its end, passing the end on. Nothing else of `lb`
//! (no health, no limits, no timeouts, no log), so that what is measured
//! is the runtime and the kernel. Both run on one thread, and the two
//! modules are written line for line alike on purpose: only the runtime
//! differs.
//!
//!   uring-relay uring|epoll LISTEN BACKEND[,BACKEND...]
//!
//! `scripts/bench.sh --also 'uring=trials/uring-relay/target/release/uring-relay
//! uring {listen} {backends}'` measures it beside the other contenders.

use std::net::SocketAddr;
use std::process::ExitCode;

const BUFFER: usize = 16 * 1024;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match args.as_slice() {
        [runtime, listen, backends] => listen
            .parse::<SocketAddr>()
            .map_err(|err| format!("{listen}: {err}"))
            .and_then(|listen| {
                let backends = backends
                    .split(',')
                    .map(|one| {
                        one.parse().map_err(|err| format!("{one}: {err}"))
                    })
                    .collect::<Result<Vec<SocketAddr>, String>>()?;
                Ok((runtime.as_str(), listen, backends))
            }),
        _ => {
            Err("usage: uring-relay uring|epoll LISTEN BACKEND[,BACKEND...]"
                .into())
        }
    };
    let result = match parsed {
        Ok(("uring", listen, backends)) => uring::run(listen, backends),
        Ok(("epoll", listen, backends)) => epoll::run(listen, backends),
        Ok((other, ..)) => Err(format!("{other}: neither uring nor epoll")),
        Err(err) => Err(err),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// io_uring: every read and write is submitted to the ring and completes
/// with its bytes; the buffer is lent to the kernel meanwhile.
mod uring {
    use std::net::{Shutdown, SocketAddr};
    use std::rc::Rc;

    use tokio_uring::buf::BoundedBuf;
    use tokio_uring::net::{TcpListener, TcpStream};

    pub fn run(
        listen: SocketAddr,
        backends: Vec<SocketAddr>,
    ) -> Result<(), String> {
        tokio_uring::start(async move {
            let listener = TcpListener::bind(listen)
                .map_err(|err| format!("{listen}: {err}"))?;
            for turn in 0.. {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let backend = backends[turn % backends.len()];
                tokio_uring::spawn(serve(client, backend));
            }
            Ok(())
        })
    }

    async fn serve(client: TcpStream, backend: SocketAddr) {
        let Ok(backend) = TcpStream::connect(backend).await else {
            return;
        };
        let _ = client.set_nodelay(true);
        let _ = backend.set_nodelay(true);
        let (client, backend) = (Rc::new(client), Rc::new(backend));
        let up = tokio_uring::spawn(copy(client.clone(), backend.clone()));
        copy(backend, client).await;
        let _ = up.await;
    }

    async fn copy(from: Rc<TcpStream>, to: Rc<TcpStream>) {
        let mut buffer = vec![0; super::BUFFER];
        loop {
            let (read, lent) = from.read(buffer).await;
            buffer = lent;
            let n = match read {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let (written, lent) = to.write_all(buffer.slice(..n)).await;
            buffer = lent.into_inner();
            if written.is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    }
}

/// epoll: tokio's current-thread runtime, waiting for readiness and then
/// reading and writing, as `lb` does.
mod epoll {
    use std::net::SocketAddr;

    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    pub fn run(
        listen: SocketAddr,
        backends: Vec<SocketAddr>,
    ) -> Result<(), String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|err| err.to_string())?;
        runtime.block_on(async move {
            let listener = TcpListener::bind(listen)
                .await
                .map_err(|err| format!("{listen}: {err}"))?;
            for turn in 0.. {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let backend = backends[turn % backends.len()];
                tokio::spawn(serve(client, backend));
            }
            Ok(())
        })
    }

    async fn serve(client: TcpStream, backend: SocketAddr) {
        let Ok(backend) = TcpStream::connect(backend).await else {
            return;
        };
        let _ = client.set_nodelay(true);
        let _ = backend.set_nodelay(true);
        let (client_read, client_write) = client.into_split();
        let (backend_read, backend_write) = backend.into_split();
        tokio::join!(
            copy(client_read, backend_write),
            copy(backend_read, client_write)
        );
    }

    async fn copy(
        mut from: impl AsyncRead + Unpin,
        mut to: impl AsyncWrite + Unpin,
    ) {
        let mut buffer = vec![0; super::BUFFER];
        while let Ok(n @ 1..) = from.read(&mut buffer).await {
            if to.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    }
}
