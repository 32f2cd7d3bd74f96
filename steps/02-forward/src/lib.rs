//! Step 02 — Forward
//!
//! Changed since step 01:
//! - instead of answering itself, the balancer dials one backend for each
//!   client and relays bytes both ways until both sides are done;
//! - a backend that cannot be reached fails that one client, is logged,
//!   and the balancer goes on serving.
//!
//! This is a layer-4 proxy: it never parses HTTP, it moves bytes. Start
//! the backends, the step, and a client, one terminal each:
//!
//! ```text
//! scripts/spawn-backends.sh restart
//! cargo run --bin 02-forward
//! curl localhost:3000
//! ```

use std::future::Future;
use std::time::Duration;

use lab_common::{Error, HostPort};
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tracing::{Instrument, info, info_span, warn};

// ANCHOR: run
/// Accepts clients until `shutdown` completes and forwards each one to
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
        // The backend is dialled inside the task, not here: a slow or dead
        // backend must never stall the loop that accepts other clients.
        let backend = backend.clone();
        // Everything the task logs happens in this span, which names both
        // ends of the connection once for every line.
        let span = info_span!(
            "connection",
            client = %client_addr,
            backend = %backend
        );
        let task = async move { forward(client, &backend).await };
        tokio::spawn(task.instrument(span));
    }
}
// ANCHOR_END: run

// ANCHOR: forward
/// Connects `client` to `backend` and copies bytes both ways until both
/// directions have finished. Errors are logged here, with the phase
/// (the span names both addresses), because nobody else could do
/// anything with them.
async fn forward(mut client: TcpStream, backend: &HostPort) {
    let mut server = match TcpStream::connect(backend.to_string()).await {
        Ok(server) => server,
        Err(err) => {
            // Dropping `client` closes its connection, and nothing else is
            // affected. curl reports "Empty reply from server", or, when
            // its request was still unread, "Connection reset by peer".
            warn!(phase = "dial", error = %err);
            return;
        }
    };
    // Small request/response messages should leave at once, not wait for
    // Nagle's algorithm to batch them with bytes that may never come.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);

    // Two copies run at once, client->backend and backend->client. When
    // one side stops sending (EOF), its copy shuts down the write half of
    // the other socket and the opposite copy goes on: this is TCP
    // half-close, which a client that sends a request then closes its
    // write side relies on.
    match copy_bidirectional(&mut client, &mut server).await {
        Ok((up, down)) => info!("{up} bytes up, {down} bytes down"),
        Err(err) => warn!(phase = "relay", error = %err),
    }
}
// ANCHOR_END: forward
