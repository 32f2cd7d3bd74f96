//! The backends of one run, served in this process by `dummy-servers`'
//! library on ports the system picks, and their fault modes set as a
//! learner would set them: `POST /fault/MODE` on the backend's own port.

use std::net::SocketAddr;
use std::time::Duration;

use dummy_servers::Fault;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::Error;

/// Backends running in this process, stopped by [`Backends::stop`] or,
/// on an error path, when dropped.
pub struct Backends {
    pub addrs: Vec<SocketAddr>,
    stops: Vec<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Backends {
    /// Starts `count` backends on `127.0.0.1:0`.
    pub async fn start(count: usize) -> Result<Backends, Error> {
        let mut backends = Backends {
            addrs: Vec::new(),
            stops: Vec::new(),
            tasks: Vec::new(),
        };
        for _ in 0..count {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|err| format!("a backend on 127.0.0.1:0: {err}"))?;
            backends.addrs.push(listener.local_addr()?);
            let (stop, stopped) = oneshot::channel::<()>();
            backends.stops.push(stop);
            backends.tasks.push(tokio::spawn(async move {
                let shutdown = async {
                    let _ = stopped.await;
                };
                if let Err(err) = dummy_servers::serve(listener, shutdown).await
                {
                    eprintln!("error: a backend stopped: {err}");
                }
            }));
        }
        Ok(backends)
    }

    /// Puts backend `index` in fault mode `fault`, through its own
    /// `/fault` route, and checks that it said yes.
    pub async fn set_fault(
        &self,
        index: usize,
        fault: Fault,
    ) -> Result<(), Error> {
        let addr = self.addrs[index];
        let asked = async {
            let mut stream = TcpStream::connect(addr).await?;
            let request = format!(
                "POST /fault/{fault} HTTP/1.0\r\nContent-Length: 0\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).await?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await?;
            Ok::<_, std::io::Error>(answer)
        };
        let answer = tokio::time::timeout(Duration::from_secs(5), asked)
            .await
            .map_err(|_| format!("backend {addr}: no answer to /fault"))?
            .map_err(|err| format!("backend {addr}: setting {fault}: {err}"))?;
        let status = answer.lines().next().unwrap_or_default();
        if status.split(' ').nth(1) != Some("200") {
            return Err(
                format!("backend {addr}: /fault/{fault}: {status}").into()
            );
        }
        Ok(())
    }

    /// Stops every backend and waits (a few seconds at most) until each
    /// has closed its port.
    pub async fn stop(mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        for task in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for Backends {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
