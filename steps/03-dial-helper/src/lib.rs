//! Step 03 — Dial helper
//!
//! Changed since step 02:
//! - the work for one client is split in two named helpers: `dial` opens
//!   a connection to a backend, `proxy` relays a client through it;
//! - the accept loop now only decides *where* a client goes and hands it
//!   to `proxy`, so the next steps change that decision and nothing else.
//!
//! What a client sees is exactly step 02's behaviour.
//!
//! ```text
//! scripts/spawn-backends.sh restart
//! cargo run --bin 03-dial-helper
//! curl localhost:3000
//! ```

use std::future::Future;
use std::io;
use std::time::Duration;

use lab_common::{Error, HostPort};
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tracing::{Instrument, info, info_span, warn};

// ANCHOR: run
/// Accepts clients until `shutdown` completes and proxies each one to
/// `backend` in its own task.
pub async fn run(
    listener: TcpListener,
    backend: HostPort,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
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
        let backend = backend.clone();
        let span = info_span!(
            "connection",
            client = %client_addr,
            backend = %backend
        );
        let task = async move { proxy(client, &backend).await };
        tokio::spawn(task.instrument(span));
    }
}
// ANCHOR_END: run

// ANCHOR: dial
/// Opens a TCP connection to `backend`, ready to relay through.
async fn dial(backend: &HostPort) -> io::Result<TcpStream> {
    let server = TcpStream::connect(backend.to_string()).await?;
    // Small request/response messages should leave at once, not wait for
    // Nagle's algorithm to batch them with bytes that may never come.
    server.set_nodelay(true)?;
    Ok(server)
}
// ANCHOR_END: dial

// ANCHOR: proxy
/// Relays `client` through a fresh connection to `backend` until both
/// directions have finished, and logs how it went.
async fn proxy(mut client: TcpStream, backend: &HostPort) {
    let mut server = match dial(backend).await {
        Ok(server) => server,
        Err(err) => {
            warn!(phase = "dial", error = %err);
            return;
        }
    };
    let _ = client.set_nodelay(true);

    // Both directions at once, each passing on the other's end of stream
    // (half-close), as in step 02.
    match copy_bidirectional(&mut client, &mut server).await {
        Ok((up, down)) => info!("{up} bytes up, {down} bytes down"),
        Err(err) => warn!(phase = "relay", error = %err),
    }
}
// ANCHOR_END: proxy
