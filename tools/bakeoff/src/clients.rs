//! The clients: one HTTP/1.0 request per connection over raw TCP, each
//! from the loopback address its step names, and a record of each.
//!
//! One request per connection because `lb` chooses a backend per
//! connection: a kept-alive connection would stay on its first choice.
//! Raw TCP because the client must bind its own source address (that is
//! the key maglev hashes) and nothing here needs more than a status line
//! and the first line of the body.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::plan::Workload;

/// What every client sends. `Connection: close` is HTTP/1.0's default:
/// the backend answers and closes, and the client reads to the end.
const REQUEST: &[u8] = b"GET / HTTP/1.0\r\nHost: bakeoff\r\n\r\n";

/// More than any echo of the request above; a longer answer is cut here.
const MAX_ANSWER: u64 = 64 * 1024;

/// How long one request may take before it counts as failed.
pub const REQUEST_LIMIT: Duration = Duration::from_secs(5);

/// One request, as the client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The client (lane) that sent it.
    pub lane: usize,
    pub from: Ipv4Addr,
    /// From the start of the run.
    pub start: Duration,
    pub end: Duration,
    /// The backend that answered, by its place in the run's list, or why
    /// there was no answer.
    pub outcome: Result<usize, String>,
}

impl Record {
    pub fn latency(&self) -> Duration {
        self.end.saturating_sub(self.start)
    }
}

/// Sends one request to `lb` from `from` and returns the port of the
/// backend that answered, or why none did, within [`REQUEST_LIMIT`].
pub async fn request(lb: SocketAddr, from: Ipv4Addr) -> Result<u16, String> {
    match tokio::time::timeout(REQUEST_LIMIT, exchange(lb, from)).await {
        Ok(answer) => answer,
        Err(_) => Err(format!("no answer within {REQUEST_LIMIT:?}")),
    }
}

async fn exchange(lb: SocketAddr, from: Ipv4Addr) -> Result<u16, String> {
    let socket =
        TcpSocket::new_v4().map_err(|err| format!("a socket: {err}"))?;
    socket
        .bind(SocketAddr::from((from, 0)))
        .map_err(|err| format!("binding {from}: {err}"))?;
    let mut stream = socket
        .connect(lb)
        .await
        .map_err(|err| format!("connecting: {err}"))?;
    stream
        .write_all(REQUEST)
        .await
        .map_err(|err| format!("sending: {err}"))?;
    let mut answer = Vec::new();
    (&mut stream)
        .take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .await
        .map_err(|err| format!("reading: {err}"))?;
    answering_port(&answer)
}

/// The port of the backend named in a dummy server's answer, whose body
/// starts `backend-4444 at 127.0.0.1:4444, call #3`.
pub fn answering_port(answer: &[u8]) -> Result<u16, String> {
    if answer.is_empty() {
        return Err("closed without an answer".to_owned());
    }
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Err("an answer cut short".to_owned());
    };
    let status = head.lines().next().unwrap_or_default();
    if status.split(' ').nth(1) != Some("200") {
        return Err(format!("answered {status:?}"));
    }
    let first = body.lines().next().unwrap_or_default();
    first
        .strip_prefix("backend-")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|port| port.parse().ok())
        .ok_or_else(|| format!("no backend named in {first:?}"))
}

/// Runs `workload` against `lb` from `origin` for its duration: each
/// client starts requests one after the other, pausing as its lane says,
/// until the time is up. `done` counts finished requests, for progress.
/// `backends` maps an answering port to its place in the run's list.
pub async fn run(
    lb: SocketAddr,
    workload: &Workload,
    backends: &[SocketAddr],
    origin: Instant,
    done: Arc<AtomicUsize>,
) -> Vec<Record> {
    let ports: Arc<Vec<u16>> =
        Arc::new(backends.iter().map(|addr| addr.port()).collect());
    let mut lanes = JoinSet::new();
    for lane in 0..workload.lanes {
        let steps = workload.lane(lane);
        let duration = workload.duration;
        let ports = ports.clone();
        let done = done.clone();
        lanes.spawn(async move {
            let mut records = Vec::new();
            // Bounded by time: the lane stops starting requests once the
            // run's duration is over, and each request by REQUEST_LIMIT.
            for step in steps {
                tokio::time::sleep(step.pause).await;
                let start = origin.elapsed();
                if start >= duration {
                    break;
                }
                let answer = request(lb, step.from).await;
                let end = origin.elapsed();
                let outcome = answer.and_then(|port| {
                    ports.iter().position(|&p| p == port).ok_or_else(|| {
                        format!("answered by an unknown backend :{port}")
                    })
                });
                records.push(Record {
                    lane,
                    from: step.from,
                    start,
                    end,
                    outcome,
                });
                done.fetch_add(1, Ordering::Relaxed);
            }
            records
        });
    }
    let mut records = Vec::new();
    while let Some(lane) = lanes.join_next().await {
        // A lane cannot panic short of a bug; its records are then lost
        // and the run goes on with the others'.
        if let Ok(lane) = lane {
            records.extend(lane);
        }
    }
    records.sort_by_key(|record| (record.start, record.lane));
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_is_read_from_the_first_line_of_the_body() {
        let answer = b"HTTP/1.0 200 OK\r\ncontent-length: 9\r\n\r\n\
            backend-4445 at 127.0.0.1:4445, call #3\nGET / HTTP/1.0\n";
        assert_eq!(answering_port(answer), Ok(4445));
    }

    #[test]
    fn no_answer_or_a_bad_one_is_an_error_that_says_so() {
        assert_eq!(
            answering_port(b""),
            Err("closed without an answer".to_owned())
        );
        assert_eq!(
            answering_port(b"HTTP/1.0 200 OK\r\n"),
            Err("an answer cut short".to_owned())
        );
        assert_eq!(
            answering_port(b"HTTP/1.0 502 Bad Gateway\r\n\r\n"),
            Err("answered \"HTTP/1.0 502 Bad Gateway\"".to_owned())
        );
        assert!(answering_port(b"HTTP/1.0 200 OK\r\n\r\nhello\n").is_err());
    }
}
