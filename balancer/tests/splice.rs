//! `lb`'s splice relay (`[limits] splice_pipes`), through the real
//! binary: bytes arrive whole and in order both ways at once, a
//! half-close still lets the other way finish, a reset stays a reset,
//! pipes go back when streams pause (no idle connection holds one), and
//! with the switch off no pipe is ever made.
//!
//! The relay splices only on Linux; elsewhere there is nothing to test.
#![cfg(target_os = "linux")]

use std::net::SocketAddr;
use std::time::Duration;

use lab_common::testing::{RunningBinary, deadline, listener};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const LB: &str = env!("CARGO_BIN_EXE_lb");

/// Each way's bulk, sent by both sides at once.
const BULK: u64 = 64 << 20;
/// What the backend sends after it has seen the client's end.
const AFTER_END: u64 = 1 << 20;

// ---------------------------------------------------------------------
// Patterns: each direction's bytes are a function of their position, so
// a lost, doubled or swapped chunk shows where it happened.

/// The length of a pattern's period: a prime, so that no chunk size the
/// kernel or `lb` uses (powers of two) can slip by a whole period.
const PERIOD: usize = 65_521;

/// One period of the pattern for `seed` (two directions, two seeds).
fn period(seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..PERIOD)
        .map(|_| {
            // xorshift64: cheap and far from any period of its own here.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 56) as u8
        })
        .collect()
}

/// The first `len` bytes of `seed`'s pattern.
fn pattern_start(seed: u64, len: u64) -> Vec<u8> {
    period(seed)
        .into_iter()
        .cycle()
        .take(len as usize)
        .collect()
}

const UP: u64 = 0x5eed_0001;
const DOWN: u64 = 0x5eed_0002;

/// Writes `len` bytes of `seed`'s pattern, from position `from`.
async fn send_pattern(
    to: &mut (impl AsyncWrite + Unpin),
    seed: u64,
    from: u64,
    len: u64,
) {
    let period = period(seed);
    let (mut at, end) = (from, from + len);
    while at < end {
        let offset = (at % PERIOD as u64) as usize;
        let take = ((PERIOD - offset) as u64).min(end - at) as usize;
        to.write_all(&period[offset..offset + take])
            .await
            .unwrap_or_else(|err| panic!("writing at {at}: {err}"));
        at += take as u64;
    }
}

/// Reads until the end of stream, checking every byte against `seed`'s
/// pattern from position `start`; the position reached, and how the
/// stream ended (cleanly, or the error).
async fn read_pattern(
    from: &mut (impl AsyncRead + Unpin),
    seed: u64,
    start: u64,
) -> (u64, std::io::Result<()>) {
    let period = period(seed);
    let mut chunk = vec![0u8; 256 * 1024];
    let mut at = start;
    loop {
        let n = match from.read(&mut chunk).await {
            Ok(0) => return (at, Ok(())),
            Ok(n) => n,
            Err(err) => return (at, Err(err)),
        };
        let mut done = 0;
        while done < n {
            let offset = (at % PERIOD as u64) as usize;
            let take = (PERIOD - offset).min(n - done);
            assert!(
                chunk[done..done + take] == period[offset..offset + take],
                "the bytes at {at}..{} differ from what was sent",
                at + take as u64
            );
            done += take;
            at += take as u64;
        }
    }
}

// ---------------------------------------------------------------------
// `lb`, the binary, and what it shows from outside.

struct Lb {
    process: RunningBinary,
    admin: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Lb {
    /// `lb` in front of `backend`, with `splice_pipes` pipes at most,
    /// no health checks (they would open descriptors of their own).
    async fn start(backend: SocketAddr, splice_pipes: u32) -> Lb {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("lb.toml");
        let text = format!(
            "listen = \"127.0.0.1:0\"\n\n[limits]\nsplice_pipes = \
             {splice_pipes}\n\n[health]\nkind = \"off\"\n\n[admin]\n\
             listen = \"127.0.0.1:0\"\n\n[[backends]]\naddress = \
             \"{backend}\"\nid = \"only\"\n"
        );
        std::fs::write(&path, text).expect("the config is written");
        let mut process = RunningBinary::start(
            LB,
            &["--config", &path.display().to_string()],
        )
        .await;
        let admin = process.wait_for_address("admin on ").await;
        Lb {
            process,
            admin,
            _dir: dir,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.process.addr
    }

    /// One value from `/metrics`, over a connection closed after it.
    async fn metric(&self, name: &str) -> u64 {
        let mut stream = TcpStream::connect(self.admin).await.unwrap();
        let request = format!(
            "GET /metrics HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
            self.admin
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        deadline("the metrics", stream.read_to_string(&mut answer))
            .await
            .unwrap();
        answer
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(' ')?;
                (key == name).then(|| value.parse().ok()).flatten()
            })
            .unwrap_or_else(|| panic!("no {name} in {answer}"))
    }

    /// Waits until no pipe is lent: streams that paused or ended gave
    /// theirs back (a direction returns its pipe at its next read, a
    /// moment after its last bytes reached the peer).
    async fn pipes_back(&self) {
        let mut lent = 0;
        for _ in 0..200 {
            lent = self.metric("lb_relay_splice_pipes_in_use").await;
            if lent == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{lent} splice pipes still lent after 10 s");
    }

    /// `lb`'s open descriptors: all, and those that are pipes.
    fn descriptors(&self) -> (usize, usize) {
        let pid = self.process.id().expect("lb runs");
        let entries = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("lb's descriptors can be listed");
        let (mut all, mut pipes) = (0, 0);
        for entry in entries {
            let entry = entry.expect("an entry");
            // A descriptor closed while listing: not counted.
            if let Ok(target) = std::fs::read_link(entry.path()) {
                all += 1;
                if target.to_string_lossy().starts_with("pipe:") {
                    pipes += 1;
                }
            }
        }
        (all, pipes)
    }

    /// The `closed` line of the only connection (`(up: N)`, `(down:
    /// N)`, `(code: C)`).
    async fn closed_line(&mut self) -> String {
        let log = self.process.wait_for_stderr(" closed").await;
        log.lines()
            .find(|line| line.contains(" closed"))
            .expect("the line is there")
            .to_owned()
    }
}

// ---------------------------------------------------------------------
// The byte-exact transfer, with splice on and off.

/// 64 MiB each way at once through `lb`; the client then ends its side,
/// and the backend, having seen that end, sends 1 MiB more and ends.
/// Both sides check every byte and see a clean end.
async fn both_ways_then_half_close(lb: &mut Lb, backend: TcpListener) {
    let serving = tokio::spawn(async move {
        let (stream, _) = backend.accept().await.expect("lb connects");
        let (mut reading, mut writing) = stream.into_split();
        let sending = tokio::spawn(async move {
            send_pattern(&mut writing, DOWN, 0, BULK).await;
            writing
        });
        let (got, end) = read_pattern(&mut reading, UP, 0).await;
        end.expect("the client's end arrives as a clean end");
        assert_eq!(got, BULK, "the backend got every byte, then the end");
        let mut writing = sending.await.expect("the backend sent it all");
        // Sent after the client's end: the way back stays open.
        send_pattern(&mut writing, DOWN, BULK, AFTER_END).await;
        writing.shutdown().await.expect("the backend ends");
    });
    let client = TcpStream::connect(lb.addr()).await.expect("lb accepts");
    let (mut reading, mut writing) = client.into_split();
    let sending = async {
        send_pattern(&mut writing, UP, 0, BULK).await;
        writing.shutdown().await.expect("the client ends its side");
    };
    let receiving = read_pattern(&mut reading, DOWN, 0);
    let ((), (got, end)) =
        deadline("the transfer", async { tokio::join!(sending, receiving) })
            .await;
    end.expect("the backend's end arrives as a clean end");
    assert_eq!(got, BULK + AFTER_END, "the client got every byte");
    deadline("the backend", serving)
        .await
        .expect("the backend saw it all");
    let line = lb.closed_line().await;
    let counted = [
        format!("(up: {BULK})"),
        format!("(down: {})", BULK + AFTER_END),
        "(code: --)".to_owned(),
    ];
    for field in counted {
        assert!(line.contains(&field), "`{field}` in {line}");
    }
}

#[tokio::test]
async fn sixty_four_mib_each_way_spliced_arrive_whole_and_the_half_close_holds()
{
    let backend = listener().await;
    let mut lb = Lb::start(backend.local_addr().unwrap(), 4).await;
    both_ways_then_half_close(&mut lb, backend).await;
    assert!(
        lb.metric("lb_relay_splice_leases_total").await > 0,
        "the streams went through pipes"
    );
    lb.pipes_back().await;
}

#[tokio::test]
async fn with_splice_off_the_same_transfer_is_buffered_and_no_pipe_is_made() {
    let backend = listener().await;
    let mut lb = Lb::start(backend.local_addr().unwrap(), 0).await;
    let (_, pipes_before) = lb.descriptors();
    both_ways_then_half_close(&mut lb, backend).await;
    assert_eq!(lb.metric("lb_relay_splice_leases_total").await, 0);
    assert_eq!(lb.metric("lb_relay_splice_pipes_in_use").await, 0);
    assert_eq!(lb.descriptors().1, pipes_before, "no pipe was opened");
}

// ---------------------------------------------------------------------
// Resets, as `end_codes.rs` checks them for the buffered relay, here in
// the middle of a spliced stream.

/// Enough bytes through for the direction to be splicing.
const BEFORE_RESET: u64 = 1 << 20;

#[tokio::test]
async fn a_backend_reset_mid_stream_reaches_the_client_as_a_reset() {
    let backend = listener().await;
    let mut lb = Lb::start(backend.local_addr().unwrap(), 4).await;
    let (reset_now, reset_when) = oneshot::channel::<()>();
    let serving = tokio::spawn(async move {
        let (mut stream, _) = backend.accept().await.expect("lb connects");
        // A zero linger makes the close a reset. (Not split: a dropped
        // write half would send a FIN first.)
        stream.set_zero_linger().unwrap();
        let streaming = tokio::spawn(async move {
            send_pattern(&mut stream, DOWN, 0, 1 << 30).await;
        });
        let _ = reset_when.await;
        // The stream is dropped with the task: the reset.
        streaming.abort();
        let _ = streaming.await;
    });
    let mut client = TcpStream::connect(lb.addr()).await.expect("lb accepts");
    let mut first = vec![0u8; BEFORE_RESET as usize];
    deadline("the first bytes", client.read_exact(&mut first))
        .await
        .unwrap();
    assert!(
        first == pattern_start(DOWN, BEFORE_RESET),
        "the first bytes"
    );
    assert!(
        lb.metric("lb_relay_splice_leases_total").await > 0,
        "spliced"
    );
    reset_now.send(()).unwrap();
    serving.await.unwrap();
    let (_, end) =
        deadline("the end", read_pattern(&mut client, DOWN, BEFORE_RESET))
            .await;
    let kind = end.map_err(|err| err.kind());
    assert_eq!(kind, Err(std::io::ErrorKind::ConnectionReset), "a reset");
    let line = lb.closed_line().await;
    assert!(line.contains("(code: SD)"), "{line}");
    // A pipe left holding bytes is closed, not kept: none is lent.
    lb.pipes_back().await;
}

#[tokio::test]
async fn a_client_reset_mid_stream_reaches_the_backend_as_a_reset() {
    let backend = listener().await;
    let mut lb = Lb::start(backend.local_addr().unwrap(), 4).await;
    let mut client = TcpStream::connect(lb.addr()).await.expect("lb accepts");
    // A zero linger makes the close a reset.
    client.set_zero_linger().unwrap();
    let streaming = tokio::spawn(async move {
        send_pattern(&mut client, UP, 0, 1 << 30).await;
    });
    let (mut stream, _) = backend.accept().await.expect("lb connects");
    let mut first = vec![0u8; BEFORE_RESET as usize];
    deadline("the first bytes", stream.read_exact(&mut first))
        .await
        .unwrap();
    assert!(first == pattern_start(UP, BEFORE_RESET), "the first bytes");
    assert!(
        lb.metric("lb_relay_splice_leases_total").await > 0,
        "spliced"
    );
    // The client is dropped with the task: the reset.
    streaming.abort();
    let _ = streaming.await;
    let (_, end) =
        deadline("the end", read_pattern(&mut stream, UP, BEFORE_RESET)).await;
    let kind = end.map_err(|err| err.kind());
    assert_eq!(kind, Err(std::io::ErrorKind::ConnectionReset), "a reset");
    let line = lb.closed_line().await;
    assert!(line.contains("(code: CD)"), "{line}");
    lb.pipes_back().await;
}

// ---------------------------------------------------------------------
// Pipes go back: idle connections hold none.

/// Connections that each stream, then stay open, idle.
const IDLE: usize = 50;

#[tokio::test]
async fn connections_idle_after_streaming_hold_no_pipe() {
    let backend = listener().await;
    let backend_addr = backend.local_addr().unwrap();
    // An echo backend: each connection sends back what it gets, and is
    // held open until the client ends it.
    tokio::spawn(async move {
        while let Ok((stream, _)) = backend.accept().await {
            tokio::spawn(async move {
                let (mut reading, mut writing) = stream.into_split();
                let _ = tokio::io::copy(&mut reading, &mut writing).await;
                let _ = writing.shutdown().await;
            });
        }
    });
    let lb = Lb::start(backend_addr, 8).await;
    let (all_before, pipes_before) = lb.descriptors();
    let mut held = Vec::new();
    for _ in 0..IDLE {
        let client = TcpStream::connect(lb.addr()).await.expect("lb accepts");
        let (mut reading, mut writing) = client.into_split();
        let sending = send_pattern(&mut writing, UP, 0, BEFORE_RESET);
        let mut echoed = vec![0u8; BEFORE_RESET as usize];
        let receiving = reading.read_exact(&mut echoed);
        let ((), read) =
            deadline("the echo", async { tokio::join!(sending, receiving) })
                .await;
        read.unwrap();
        assert!(echoed == pattern_start(UP, BEFORE_RESET), "the echo");
        held.push((reading, writing));
    }
    assert!(
        lb.metric("lb_relay_splice_leases_total").await > 0,
        "spliced"
    );
    lb.pipes_back().await;
    // Two sockets per connection and no pipe: a pipe held by an idle
    // connection, or kept by lb, would add two more. (The metrics'
    // connection is closed by `lb` a moment after its answer: waited
    // for, bounded.)
    let wanted = (all_before + 2 * IDLE, pipes_before);
    let mut seen = lb.descriptors();
    for _ in 0..100 {
        if seen == wanted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        seen = lb.descriptors();
    }
    assert_eq!(seen, wanted, "(all, pipes) descriptors of lb");
    drop(held);
}
