//! Step 01 — Ping
//!
//! A load balancer is first of all a server: it listens on a TCP port and
//! accepts connections. This step does only that. For every connection it
//! reads what the client sent, prints those raw bytes (HTTP/1.1 is plain
//! text over TCP: you will see `GET / HTTP/1.1`, the headers and the
//! `\r\n` that end each line), and answers with the smallest valid HTTP
//! response, so that `curl` has something to print.
//!
//! Run it, then poke it from a second terminal:
//!
//! ```text
//! cargo run --bin 01-ping
//! curl localhost:3000
//! ```
//!
//! Ctrl-C stops it at once, as it stops every step: connections still
//! open are cut, not finished.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use lab_common::Error;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tracing::{Instrument, info, info_span, warn};

/// The answer every client gets. `Content-Length` tells the client where
/// the body ends; `Connection: close` tells it we hang up afterwards.
pub const PONG: &[u8] = b"HTTP/1.1 200 OK\r\n\
Content-Type: text/plain\r\n\
Content-Length: 5\r\n\
Connection: close\r\n\
\r\n\
pong\n";

/// We stop reading a request's head after this many bytes: a client that
/// never sends the blank line must not make us buffer forever.
pub const MAX_HEAD: usize = 16 * 1024;

// ANCHOR: run
/// Accepts connections on `listener` until `shutdown` completes. Each
/// connection is served in its own task, so one slow client never holds
/// up the next.
pub async fn run(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    tokio::pin!(shutdown);
    loop {
        // `select!` waits for whichever comes first: a new client, or the
        // signal to stop.
        let (client, client_addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Running out of file descriptors, for example. The
                    // error belongs to one connection, not to the server:
                    // log it, breathe, and go on accepting.
                    warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            // Ctrl-C: `run` returns, and so does `main`, which ends every
            // task still running: connections still open are cut, not
            // finished. (Letting them finish first is `lb`'s lesson.)
            () = &mut shutdown => return Ok(()),
        };
        // Everything the task logs happens in this span, which names the
        // client once for every line: `client 127.0.0.1:47930: ...`.
        let span = info_span!("connection", client = %client_addr);
        let task = async move {
            if let Err(err) = answer_ping(client, client_addr).await {
                warn!(error = %err);
            }
        };
        tokio::spawn(task.instrument(span));
    }
}
// ANCHOR_END: run

// ANCHOR: answer_ping
/// Reads the request head (every line up to the blank one), prints it
/// byte for byte, and sends [`PONG`].
async fn answer_ping(
    client: TcpStream,
    client_addr: SocketAddr,
) -> Result<(), Error> {
    // Reading and writing are separate halves of one TCP connection.
    let (reader, mut writer) = client.into_split();
    // `take` caps how much we read in all, so a client that never sends a
    // line end cannot make us buffer without limit.
    let mut reader = BufReader::new(reader).take(MAX_HEAD as u64);
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let read = reader.read_until(b'\n', &mut head).await?;
        let line = &head[before..];
        if read == 0 && head.len() >= MAX_HEAD {
            return Err(format!("sent more than {MAX_HEAD} bytes").into());
        }
        // End of stream, or the empty line that ends an HTTP head.
        if read == 0 || line == b"\r\n" || line == b"\n" {
            break;
        }
    }
    println!("{}", show_raw(client_addr, &head));
    writer.write_all(PONG).await?;
    writer.shutdown().await?;
    info!("answered pong");
    Ok(())
}
// ANCHOR_END: answer_ping

/// Formats what a client sent so that invisible bytes show: `\r` and `\n`
/// appear as such, one received line per printed line.
pub fn show_raw(client_addr: SocketAddr, bytes: &[u8]) -> String {
    let mut shown = format!("{client_addr} sent {} bytes:", bytes.len());
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        shown.push_str("\n  ");
        shown.push_str(&line.escape_ascii().to_string());
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_bytes_show_their_line_ends() {
        let addr: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let shown = show_raw(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(
            shown,
            "127.0.0.1:5000 sent 27 bytes:\n  GET / HTTP/1.1\\r\\n\n  \
             Host: x\\r\\n\n  \\r\\n"
        );
    }

    #[test]
    fn pong_is_a_complete_http_response() {
        let text = std::str::from_utf8(PONG).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK"));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }
}
