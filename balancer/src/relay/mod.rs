//! Copying bytes both ways between a client and its backend, until both
//! directions have finished, a timeout ends it, or the drain cuts it.
//!
//! Steps 02 to 08 relay with tokio's `copy_bidirectional`, which holds two
//! 8 KiB buffers for the whole life of a connection. Here each direction
//! waits with a small buffer and borrows a big one only while bytes come
//! faster than the small one holds (`buffer`). Around the copying sit the rules a
//! balancer facing strangers needs:
//!
//! - *idle*: no byte either way for `idle` closes both sides. The timer is
//!   re-armed by traffic, so a long transfer that never pauses that long
//!   is never cut;
//! - *half-closed*: once one side has finished (a client that gave up and
//!   closed, say), the other gets `half_closed` to say anything more;
//!   this frees the connections of clients that gave up on a silent
//!   backend;
//! - *aborts stay aborts*: a reset from one side becomes a reset to the
//!   other, and a TLS peer that ends without `close_notify` is not given
//!   one on the other side, so a cut transfer never looks complete.
//!
//! Every way a relay ends, and what each side then sees on the wire (a
//! FIN is a clean end of stream; an RST makes the peer's next read fail
//! with "connection reset"):
//!
//! | ending ([`End`]) | code | the client sees | the backend sees |
//! |---|---|---|---|
//! | finished: both sides ended | `--` | FIN, after every byte | FIN, after every byte |
//! | client reset | `CD` | (it sent the RST) | RST |
//! | backend reset | `SD` | RST | (it sent the RST) |
//! | client error (not a reset) | `CD` | (its socket failed) | RST |
//! | backend error: a corrupt TLS record, `ETIMEDOUT` (`unacknowledged`), a write error | `SD` | RST | (its socket failed) |
//! | idle: no byte either way for `idle` | `tD` | RST | RST |
//! | half-closed: one side finished, the other silent for `half_closed` | `cL` / `sL` | RST | RST |
//!
//! (A FIN already passed on stays: in the half-closed row, the silent
//! side has had the other's end of stream, and the reset then fails its
//! late answer.)
//! | cut: the drain ran out | `KD` | RST | RST |
//!
//! A TLS side also gets no `close_notify` where the table says RST. A
//! plain client reading an answer to its end of stream (HTTP/1.0, say)
//! so never takes half an answer for the whole one.
//!
//! The copying is written as one `poll` function over both directions
//! (as `tokio::io::copy_bidirectional` is) rather than two tasks: one
//! task per connection, no locks, and the two directions can share the
//! timer.
//!
//! On Linux, a direction between two plain TCP sockets that streams
//! borrows a kernel pipe instead of a big buffer, and splices its bytes
//! through it (`splice`, `[limits] splice_pipes`); every rule above holds
//! the same.

mod buffer;
mod splice;

use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use bytes::BytesMut;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::codes::{EndCode, Phase};
use crate::stream::Stream;
pub use buffer::Budget;
use buffer::Buffer;
pub use splice::Pipes;
#[cfg(target_os = "linux")]
use splice::{Lease, Spliced};

/// The two timeouts of a relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayTimeouts {
    pub idle: Duration,
    pub half_closed: Duration,
}

// ANCHOR: end
/// Why a relay ended: the last word of every connection's log line.
#[derive(Debug)]
pub enum End {
    /// Both sides finished, each passing its end on to the other.
    Finished,
    /// No byte either way for the idle timeout.
    Idle,
    /// One side had finished; the other stayed silent too long:
    /// `client_silent` if the backend was the one that had finished.
    HalfClosed { client_silent: bool },
    /// The drain time after SIGTERM ran out.
    Cut,
    /// The client reset its connection (passed on as a reset).
    ClientReset,
    /// The backend reset its connection (passed on as a reset).
    BackendReset,
    /// Another error reading from or writing to the client.
    ClientError(io::Error),
    /// Another error reading from or writing to the backend.
    BackendError(io::Error),
}
// ANCHOR_END: end

/// A few words for the log.
impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::Finished => f.write_str("finished"),
            End::Idle => f.write_str("idle timeout"),
            End::HalfClosed { .. } => f.write_str("half-closed timeout"),
            End::Cut => f.write_str("cut at the end of the drain"),
            End::ClientReset => f.write_str("client reset"),
            End::BackendReset => f.write_str("backend reset"),
            End::ClientError(err) => write!(f, "client error: {err}"),
            End::BackendError(err) => write!(f, "backend error: {err}"),
        }
    }
}

impl End {
    /// Its end code (`codes.rs`).
    pub fn code(&self) -> EndCode {
        match self {
            End::Finished => EndCode::Finished,
            End::Idle => EndCode::Idle,
            End::HalfClosed {
                client_silent: true,
            } => EndCode::ClientHalfClosed,
            End::HalfClosed {
                client_silent: false,
            } => EndCode::BackendHalfClosed,
            End::Cut => EndCode::Killed(Phase::Data),
            End::ClientReset | End::ClientError(_) => EndCode::ClientAborted,
            End::BackendReset | End::BackendError(_) => EndCode::BackendAborted,
        }
    }
}

/// How a relay went.
#[derive(Debug)]
pub struct Outcome {
    /// Bytes from the client to the backend.
    pub up: u64,
    /// Bytes from the backend to the client.
    pub down: u64,
    pub end: End,
}

// ANCHOR: relay
/// Relays between `client` and `backend` until both directions are done,
/// a timeout runs out, or `cut` is cancelled.
pub async fn relay(
    mut client: Stream,
    mut backend: Stream,
    timeouts: RelayTimeouts,
    budget: &Arc<Budget>,
    early: BytesMut,
    cut: &CancellationToken,
) -> Outcome {
    let mut up = Direction::new(budget.clone());
    // What the client sent while it waited in line goes out first.
    up.buffer.start_with(early);
    let mut down = Direction::new(budget.clone());
    // One timer for both directions, re-armed lazily: traffic only notes
    // the time, and when the timer fires it checks whether the
    // connection really was silent that long.
    let mut last_moved = Instant::now();
    let timer = tokio::time::sleep(timeouts.idle);
    let cancelled = cut.cancelled();
    tokio::pin!(timer, cancelled);
    let end = poll_fn(|cx| {
        if cancelled.as_mut().poll(cx).is_ready() {
            return Poll::Ready(End::Cut);
        }
        let half_closed_before = up.is_done() || down.is_done();
        if let Poll::Ready(end) =
            poll_both(cx, &mut client, &mut backend, &mut up, &mut down)
        {
            return Poll::Ready(end);
        }
        if up.take_moved() | down.take_moved() {
            last_moved = Instant::now();
        }
        let half_closed = up.is_done() || down.is_done();
        let limit = if half_closed {
            timeouts.half_closed
        } else {
            timeouts.idle
        };
        if half_closed && !half_closed_before {
            // The silence allowed just became shorter: from now on.
            last_moved = Instant::now();
            timer.as_mut().reset(last_moved + limit);
        }
        while timer.as_mut().poll(cx).is_ready() {
            let deadline = last_moved + limit;
            if Instant::now() >= deadline {
                let end = if half_closed {
                    // The direction still open is the one whose source
                    // has not ended: that side is the silent one.
                    End::HalfClosed {
                        client_silent: !up.is_done(),
                    }
                } else {
                    End::Idle
                };
                return Poll::Ready(end);
            }
            timer.as_mut().reset(deadline);
        }
        Poll::Pending
    })
    .await;
    // ANCHOR_END: relay
    // An abort stays an abort. With a zero linger, closing a socket sends
    // RST instead of FIN, so its peer sees the connection cut, not ended.
    // A reset from one side is passed on to the other; and when `lb`
    // itself gives up (a timeout, the end of the drain), it cannot know
    // whether a message was half sent, so both sides get a reset rather
    // than an end of stream a client could take for a complete answer.
    // (Errors here only mean the socket is gone already.)
    // A side that failed otherwise (a corrupt TLS record, a timeout in
    // the kernel) is a broken stream, not an end: the other side gets a
    // reset as for a reset.
    let (reset_client, reset_backend) = match end {
        End::ClientReset | End::ClientError(_) => (false, true),
        End::BackendReset | End::BackendError(_) => (true, false),
        End::Idle | End::HalfClosed { .. } | End::Cut => (true, true),
        End::Finished => (false, false),
    };
    if reset_client {
        let _ = client.tcp().set_zero_linger();
    }
    if reset_backend {
        let _ = backend.tcp().set_zero_linger();
    }
    Outcome {
        up: up.bytes,
        down: down.bytes,
        end,
    }
}

/// Polls both directions; ready when the relay is over.
fn poll_both(
    cx: &mut Context<'_>,
    client: &mut Stream,
    backend: &mut Stream,
    up: &mut Direction,
    down: &mut Direction,
) -> Poll<End> {
    let up_poll = up.poll(cx, client, backend, down.is_done());
    let down_poll = down.poll(cx, backend, client, up.is_done());
    // An error on either side ends the relay, whatever the other does.
    if let Poll::Ready(Err(failure)) = up_poll {
        return Poll::Ready(failure.end(true));
    }
    if let Poll::Ready(Err(failure)) = down_poll {
        return Poll::Ready(failure.end(false));
    }
    if up.is_done() && down.is_done() {
        return Poll::Ready(End::Finished);
    }
    Poll::Pending
}

/// Which side an I/O error came from, relative to a direction.
#[derive(Debug)]
enum Failure {
    /// Reading from the direction's source failed.
    Read(io::Error),
    /// Writing to the direction's destination failed.
    Write(io::Error),
}

impl Failure {
    /// The relay's end, for a failure in the client-to-backend direction
    /// (`from_client`) or the other.
    fn end(self, from_client: bool) -> End {
        let (err, client_side) = match self {
            Failure::Read(err) => (err, from_client),
            Failure::Write(err) => (err, !from_client),
        };
        let reset = matches!(
            err.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
        );
        match (client_side, reset) {
            (true, true) => End::ClientReset,
            (false, true) => End::BackendReset,
            (true, false) => End::ClientError(err),
            (false, false) => End::BackendError(err),
        }
    }
}

/// One direction of a relay: reads from a source, writes to a
/// destination, and when the source ends, ends the destination the same
/// way (a clean end as a clean end, a TLS end without `close_notify` as a
/// bare FIN).
struct Direction {
    buffer: Buffer,
    /// Bytes of the buffer already written.
    written: usize,
    /// Written since the last flush.
    unflushed: bool,
    /// Bytes moved (read or written) since the timer last asked.
    moved: bool,
    state: State,
    bytes: u64,
    /// The pipe the direction splices through while it streams between
    /// two plain TCP sockets; none while it waits.
    #[cfg(target_os = "linux")]
    spliced: Option<Lease>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Copying,
    /// The source ended cleanly: flush, then shut the destination down.
    Closing,
    /// The source, a TLS peer, ended without `close_notify`: end the
    /// destination with a bare TCP FIN.
    ClosingBare,
    Done,
}

impl Direction {
    fn new(budget: Arc<Budget>) -> Direction {
        Direction {
            buffer: Buffer::new(budget),
            written: 0,
            unflushed: false,
            moved: false,
            state: State::Copying,
            bytes: 0,
            #[cfg(target_os = "linux")]
            spliced: None,
        }
    }

    fn is_done(&self) -> bool {
        self.state == State::Done
    }

    fn take_moved(&mut self) -> bool {
        std::mem::take(&mut self.moved)
    }

    // ANCHOR: direction
    /// Moves bytes from `from` to `to` until it would wait, or is done.
    /// `last`: the other direction is done, so the relay ends with this
    /// one.
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut Stream,
        to: &mut Stream,
        last: bool,
    ) -> Poll<Result<(), Failure>> {
        loop {
            match self.state {
                State::Done => return Poll::Ready(Ok(())),
                // The last end of a relay is followed at once by closing
                // both sockets, and closing sends the FIN a shutdown would:
                // one system call less per connection. (A TLS destination
                // ending cleanly still gets its `close_notify` below.)
                State::ClosingBare if last => self.state = State::Done,
                State::Closing if last && matches!(to, Stream::Plain(_)) => {
                    self.state = State::Done;
                }
                State::Closing => {
                    ready!(Pin::new(&mut *to).poll_flush(cx))
                        .map_err(Failure::Write)?;
                    ready!(Pin::new(&mut *to).poll_shutdown(cx))
                        .map_err(Failure::Write)?;
                    self.state = State::Done;
                }
                State::ClosingBare => {
                    ready!(Pin::new(&mut *to).poll_flush(cx))
                        .map_err(Failure::Write)?;
                    ready!(Pin::new(&mut *to).poll_shutdown_tcp(cx))
                        .map_err(Failure::Write)?;
                    self.state = State::Done;
                }
                #[cfg(target_os = "linux")]
                State::Copying if self.spliced.is_some() => {
                    let lease = self.spliced.as_mut().expect("just checked");
                    let (source, destination) = both_plain(from, to)
                        .expect("a pipe is taken only between plain sockets");
                    let spliced = ready!(lease.poll_relay(
                        cx,
                        source,
                        destination,
                        &mut self.bytes,
                        &mut self.moved,
                    ))?;
                    // Back to the pool, empty: the direction waits with
                    // its small buffer again, or its source has ended.
                    self.spliced = None;
                    if spliced == Spliced::Ended {
                        self.state = State::Closing;
                    }
                }
                State::Copying if self.written < self.buffer.filled().len() => {
                    let pending = &self.buffer.filled()[self.written..];
                    let n = ready!(Pin::new(&mut *to).poll_write(cx, pending))
                        .map_err(Failure::Write)?;
                    if n == 0 {
                        let err = io::ErrorKind::WriteZero.into();
                        return Poll::Ready(Err(Failure::Write(err)));
                    }
                    self.written += n;
                    self.bytes += n as u64;
                    self.unflushed = true;
                    self.moved = true;
                    if self.written == self.buffer.filled().len() {
                        self.written = 0;
                        if self.start_splicing(from, to) {
                            // Every byte read is out, so bytes stay in
                            // order: the pipe carries the rest.
                            self.buffer.emptied_for_pipe();
                        } else {
                            // All out: empty the buffer for the next read.
                            self.buffer.drained();
                        }
                    }
                }
                State::Copying => {
                    let read = self.poll_read(cx, from);
                    match read {
                        Poll::Pending => {
                            // Nothing more for now: push out what a TLS
                            // stream may hold back before we wait.
                            if self.unflushed {
                                ready!(Pin::new(&mut *to).poll_flush(cx))
                                    .map_err(Failure::Write)?;
                                self.unflushed = false;
                            }
                            return Poll::Pending;
                        }
                        Poll::Ready(Ok(0)) => self.state = State::Closing,
                        Poll::Ready(Ok(_)) => self.moved = true,
                        Poll::Ready(Err(err))
                            if err.kind() == io::ErrorKind::UnexpectedEof =>
                        {
                            // A TLS peer closed its TCP connection without
                            // `close_notify`: the stream may be cut short,
                            // so the other side must not get one either.
                            self.state = State::ClosingBare;
                        }
                        Poll::Ready(Err(err)) => {
                            return Poll::Ready(Err(Failure::Read(err)));
                        }
                    }
                }
            }
        }
    }
    // ANCHOR_END: direction

    /// Reads into the buffer. A plain socket is waited on first with no
    /// buffer at all, so that a connection between two exchanges holds
    /// none; a TLS stream needs one to be polled.
    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut Stream,
    ) -> Poll<io::Result<usize>> {
        if let Stream::Plain(tcp) = from
            && self.buffer.is_none()
        {
            ready!(tcp.poll_read_ready(cx))?;
        }
        tokio_util::io::poll_read_buf(
            Pin::new(&mut *from),
            cx,
            self.buffer.for_reading(),
        )
    }

    /// Takes a splice pipe if the direction streams (its last read came
    /// full) between two plain TCP sockets and one is free.
    fn start_splicing(&mut self, from: &Stream, to: &Stream) -> bool {
        #[cfg(target_os = "linux")]
        if self.buffer.came_full() && both_plain(from, to).is_some() {
            self.spliced = self.buffer.budget().pipes().take();
            return self.spliced.is_some();
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (from, to);
        false
    }
}

/// The two TCP sockets, if neither side speaks TLS: splice moves raw
/// bytes, and TLS records must go through rustls in userspace.
#[cfg(target_os = "linux")]
fn both_plain<'a>(
    from: &'a Stream,
    to: &'a Stream,
) -> Option<(&'a tokio::net::TcpStream, &'a tokio::net::TcpStream)> {
    match (from, to) {
        (Stream::Plain(from), Stream::Plain(to)) => Some((from, to)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// Two ends of one loopback TCP connection.
    async fn connected() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let near = TcpStream::connect(listener.local_addr().unwrap());
        let (near, far) = tokio::join!(near, listener.accept());
        (near.unwrap(), far.unwrap().0)
    }

    /// A TLS client connected to `lb`'s side of its TLS session, the
    /// handshake done.
    async fn tls_client() -> (
        tokio_rustls::client::TlsStream<TcpStream>,
        tokio_rustls::server::TlsStream<TcpStream>,
    ) {
        use tokio_rustls::rustls::pki_types::ServerName;
        use tokio_rustls::{TlsAcceptor, TlsConnector};

        let certs = lab_common::testing::TestCerts::new();
        let (client_tcp, lb_client_tcp) = connected().await;
        let acceptor = TlsAcceptor::from(certs.server_config());
        let connector = TlsConnector::from(certs.client_config());
        let name = ServerName::try_from("localhost").unwrap();
        let (client, lb_client_side) = tokio::join!(
            connector.connect(name, client_tcp),
            acceptor.accept(lb_client_tcp)
        );
        (client.unwrap(), lb_client_side.unwrap())
    }

    /// A client, a backend, and a relay between them running in a task:
    /// what the client writes comes out at `backend`, and back.
    async fn relayed(
        timeouts: RelayTimeouts,
    ) -> (TcpStream, TcpStream, tokio::task::JoinHandle<Outcome>) {
        let (client, lb_client_side) = connected().await;
        let (lb_backend_side, backend) = connected().await;
        let task = tokio::spawn(async move {
            relay(
                Stream::Plain(lb_client_side),
                Stream::Plain(lb_backend_side),
                timeouts,
                &Budget::new(1 << 20),
                BytesMut::new(),
                &CancellationToken::new(),
            )
            .await
        });
        (client, backend, task)
    }

    /// Like [`relayed`], with `budget` (and its pipes).
    async fn relayed_through(
        budget: Arc<Budget>,
    ) -> (TcpStream, TcpStream, tokio::task::JoinHandle<Outcome>) {
        let (client, lb_client_side) = connected().await;
        let (lb_backend_side, backend) = connected().await;
        let task = tokio::spawn(async move {
            relay(
                Stream::Plain(lb_client_side),
                Stream::Plain(lb_backend_side),
                LONG,
                &budget,
                BytesMut::new(),
                &CancellationToken::new(),
            )
            .await
        });
        (client, backend, task)
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_spliced_stream_arrives_whole_and_its_pipes_go_back() {
        let budget = Budget::with_pipes(1 << 20, 2);
        let (client, backend, task) = relayed_through(budget.clone()).await;
        let data = pattern(8 << 20);
        // Each side sends everything, then ends, while reading the other.
        let exchange = |mut side: TcpStream, data: Vec<u8>| async move {
            let (mut reading, mut writing) = side.split();
            let write = async {
                writing.write_all(&data).await.unwrap();
                writing.shutdown().await.unwrap();
            };
            let mut got = Vec::new();
            let read = reading.read_to_end(&mut got);
            let ((), read) = tokio::join!(write, read);
            read.unwrap();
            got
        };
        let (at_backend, at_client) =
            tokio::time::timeout(Duration::from_secs(30), async {
                tokio::join!(
                    exchange(client, data.clone()),
                    exchange(backend, data.clone())
                )
            })
            .await
            .expect("both ends come");
        assert!(at_backend == data, "up came out different");
        assert!(at_client == data, "down came out different");
        let outcome = task.await.unwrap();
        assert!(matches!(outcome.end, End::Finished), "{outcome:?}");
        assert_eq!((outcome.up, outcome.down), (8 << 20, 8 << 20));
        let pipes = budget.pipes();
        assert!(pipes.leases() > 0, "the stream was spliced");
        assert_eq!(pipes.lent(), 0, "every pipe is back");
    }

    const LONG: RelayTimeouts = RelayTimeouts {
        idle: Duration::from_secs(60),
        half_closed: Duration::from_secs(60),
    };

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[tokio::test]
    async fn every_size_around_the_buffers_arrives_whole_and_the_end_follows() {
        every_size_arrives_whole(Budget::new(1 << 20)).await;
    }

    /// The same through splice pipes, where a full small read hands the
    /// rest of the stream to a pipe.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn every_size_arrives_whole_spliced_and_the_end_follows() {
        let budget = Budget::with_pipes(1 << 20, 2);
        every_size_arrives_whole(budget.clone()).await;
        assert!(budget.pipes().leases() > 0, "spliced");
        assert_eq!(budget.pipes().lent(), 0, "every pipe is back");
    }

    async fn every_size_arrives_whole(budget: Arc<Budget>) {
        use buffer::{BIG, SMALL};
        let sizes =
            [0, 1, SMALL - 1, SMALL, SMALL + 1, BIG - 1, BIG, BIG + SMALL];
        for size in sizes {
            let (mut client, mut backend, task) =
                relayed_through(budget.clone()).await;
            let data = pattern(size);
            let sent = data.clone();
            let writer = tokio::spawn(async move {
                client.write_all(&sent).await.unwrap();
                client.shutdown().await.unwrap();
                client
            });
            let mut got = Vec::new();
            let read = tokio::time::timeout(
                Duration::from_secs(20),
                backend.read_to_end(&mut got),
            )
            .await;
            assert!(read.is_ok(), "{size} bytes: the end never came");
            assert!(got == data, "{size} bytes came out different");
            // The backend answers and ends: the client sees all of it.
            backend.write_all(&data).await.unwrap();
            backend.shutdown().await.unwrap();
            let mut client = writer.await.unwrap();
            let mut back = Vec::new();
            client.read_to_end(&mut back).await.unwrap();
            assert!(back == data, "{size} bytes came back different");
            let outcome = task.await.unwrap();
            assert!(matches!(outcome.end, End::Finished), "{outcome:?}");
            assert_eq!((outcome.up, outcome.down), (size as u64, size as u64));
        }
    }

    #[tokio::test]
    async fn a_full_small_buffer_is_passed_on_without_waiting_for_more() {
        let (mut client, mut backend, _task) = relayed(LONG).await;
        // Exactly one small buffer's worth, then silence: the bytes must
        // arrive although the relay then waits with its big buffer.
        let data = pattern(buffer::SMALL);
        client.write_all(&data).await.unwrap();
        let mut got = vec![0u8; data.len()];
        tokio::time::timeout(
            Duration::from_secs(10),
            backend.read_exact(&mut got),
        )
        .await
        .expect("the bytes arrive without more input")
        .unwrap();
        assert_eq!(got, data);
    }

    #[tokio::test]
    async fn a_timeout_of_lb_s_own_resets_both_sides() {
        let short = RelayTimeouts {
            idle: Duration::from_millis(200),
            half_closed: Duration::from_millis(200),
        };
        let (mut client, mut backend, task) = relayed(short).await;
        // A backend that starts an answer and stalls: when `lb` gives up,
        // the client must not see an end of stream after half an answer.
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut request = [0u8; 18];
        backend.read_exact(&mut request).await.unwrap();
        backend
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-len")
            .await
            .unwrap();
        let outcome = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the idle timeout ends the relay")
            .unwrap();
        assert!(matches!(outcome.end, End::Idle), "{outcome:?}");
        for (side, name) in [(&mut client, "client"), (&mut backend, "backend")]
        {
            let mut rest = Vec::new();
            let read = side.read_to_end(&mut rest).await;
            let kind = read.map_err(|err| err.kind());
            assert_eq!(
                kind,
                Err(io::ErrorKind::ConnectionReset),
                "the {name} saw {} bytes and then a clean end",
                rest.len()
            );
        }
    }

    /// What one side saw at the end: its bytes, and whether its stream
    /// ended cleanly or was reset.
    async fn seen(
        side: &mut TcpStream,
    ) -> (Vec<u8>, Result<(), io::ErrorKind>) {
        let mut bytes = Vec::new();
        let end = tokio::time::timeout(
            Duration::from_secs(10),
            side.read_to_end(&mut bytes),
        )
        .await
        .expect("the side's stream ends");
        (bytes, end.map(|_| ()).map_err(|err| err.kind()))
    }

    const RESET: Result<(), io::ErrorKind> =
        Err(io::ErrorKind::ConnectionReset);

    // A test per row of the table in the module's docs; a backend error
    // (a corrupt TLS record, `unacknowledged`) is the fault suite's
    // `broken-stream` case, through the real `lb`, and the idle row is
    // `a_timeout_of_lb_s_own_resets_both_sides` above.

    /// Whichever side ends first: the second end is passed on by closing
    /// (no shutdown), which must still be a clean end, not a reset.
    #[tokio::test]
    async fn finished_both_sides_get_every_byte_then_a_clean_end() {
        for client_first in [true, false] {
            let (mut client, mut backend, task) = relayed(LONG).await;
            let (first, second) = if client_first {
                (&mut client, &mut backend)
            } else {
                (&mut backend, &mut client)
            };
            first.write_all(b"ping").await.unwrap();
            first.shutdown().await.unwrap();
            let (asked, end) = seen(second).await;
            assert_eq!((asked.as_slice(), end), (&b"ping"[..], Ok(())));
            second.write_all(b"pong").await.unwrap();
            second.shutdown().await.unwrap();
            let (answer, end) = seen(first).await;
            assert_eq!((answer.as_slice(), end), (&b"pong"[..], Ok(())));
            let outcome = task.await.unwrap();
            assert!(matches!(outcome.end, End::Finished), "{outcome:?}");
            assert_eq!(outcome.end.code(), EndCode::Finished);
        }
    }

    #[tokio::test]
    async fn a_reset_from_either_side_reaches_the_other_as_a_reset() {
        for client_resets in [true, false] {
            let (mut client, mut backend, task) = relayed(LONG).await;
            client.write_all(b"ping").await.unwrap();
            let mut ping = [0u8; 4];
            backend.read_exact(&mut ping).await.unwrap();
            let (resetting, mut other) = if client_resets {
                (client, backend)
            } else {
                (backend, client)
            };
            resetting.set_zero_linger().unwrap();
            drop(resetting);
            assert_eq!(seen(&mut other).await.1, RESET, "{client_resets}");
            let outcome = task.await.unwrap();
            let code = if client_resets {
                EndCode::ClientAborted
            } else {
                EndCode::BackendAborted
            };
            assert_eq!(outcome.end.code(), code, "{outcome:?}");
        }
    }

    #[tokio::test]
    async fn a_half_closed_timeout_resets_both_sides_and_names_the_silent_one()
    {
        let short = RelayTimeouts {
            idle: Duration::from_secs(60),
            half_closed: Duration::from_millis(200),
        };
        // The client finished its request; the backend never answers.
        let (mut client, mut backend, task) = relayed(short).await;
        client.write_all(b"ping").await.unwrap();
        client.shutdown().await.unwrap();
        let mut ping = [0u8; 4];
        backend.read_exact(&mut ping).await.unwrap();
        assert_eq!(seen(&mut client).await.1, RESET);
        let outcome = task.await.unwrap();
        assert_eq!(outcome.end.code(), EndCode::BackendHalfClosed);
        // The backend had the client's whole request and its clean end;
        // the reset after it ends the backend's sending side too: an
        // answer that comes too late fails instead of being taken.
        let (asked, end) = seen(&mut backend).await;
        assert_eq!((asked.len(), end), (0, Ok(())), "the request's end");
        let late = backend.write_all(b"late answer").await;
        let kind = late.map_err(|err| err.kind());
        assert!(
            matches!(
                kind,
                Err(io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe)
            ),
            "{kind:?}"
        );
    }

    #[tokio::test]
    async fn the_end_of_the_drain_resets_both_sides() {
        let (mut client, lb_client_side) = connected().await;
        let (lb_backend_side, mut backend) = connected().await;
        let cut = CancellationToken::new();
        let relaying = {
            let cut = cut.clone();
            tokio::spawn(async move {
                relay(
                    Stream::Plain(lb_client_side),
                    Stream::Plain(lb_backend_side),
                    LONG,
                    &Budget::new(1 << 20),
                    BytesMut::new(),
                    &cut,
                )
                .await
            })
        };
        cut.cancel();
        let outcome = relaying.await.unwrap();
        assert_eq!(outcome.end.code(), EndCode::Killed(Phase::Data));
        assert_eq!(seen(&mut client).await.1, RESET, "client");
        assert_eq!(seen(&mut backend).await.1, RESET, "backend");
    }

    /// TLS records must pass through rustls: a TLS side never splices,
    /// however much streams.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_tls_side_relays_buffered_with_pipes_free() {
        let (mut client, lb_client_side) = tls_client().await;
        let (lb_backend_side, mut backend) = connected().await;
        let budget = Budget::with_pipes(1 << 20, 2);
        let task = tokio::spawn({
            let budget = budget.clone();
            async move {
                relay(
                    Stream::Tls(Box::new(lb_client_side.into())),
                    Stream::Plain(lb_backend_side),
                    LONG,
                    &budget,
                    BytesMut::new(),
                    &CancellationToken::new(),
                )
                .await
            }
        });
        let data = pattern(4 << 20);
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            client.write_all(&sent).await.unwrap();
            client.shutdown().await.unwrap();
            client
        });
        let mut got = Vec::new();
        backend.read_to_end(&mut got).await.unwrap();
        assert!(got == data, "the bytes came out different");
        backend.write_all(&data).await.unwrap();
        backend.shutdown().await.unwrap();
        let mut client = writer.await.unwrap();
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.unwrap();
        assert!(back == data, "the bytes came back different");
        let outcome = task.await.unwrap();
        assert!(matches!(outcome.end, End::Finished), "{outcome:?}");
        assert_eq!(budget.pipes().leases(), 0, "no pipe for a TLS side");
    }

    #[tokio::test]
    async fn a_client_that_breaks_its_tls_stream_gets_its_backend_reset() {
        let (mut client, lb_client_side) = tls_client().await;
        let (lb_backend_side, mut backend) = connected().await;
        let task = tokio::spawn(async move {
            relay(
                Stream::Tls(Box::new(lb_client_side.into())),
                Stream::Plain(lb_backend_side),
                LONG,
                &Budget::new(1 << 20),
                BytesMut::new(),
                &CancellationToken::new(),
            )
            .await
        });
        client.write_all(b"ping").await.unwrap();
        client.flush().await.unwrap();
        let mut ping = [0u8; 4];
        backend.read_exact(&mut ping).await.unwrap();
        // A record no key decrypts, straight on the TCP connection under
        // the TLS session: `lb` fails to read the client (not a reset).
        let (tcp, _) = client.get_mut();
        let corrupt = [0x17, 0x03, 0x03, 0x00, 0x20];
        tcp.write_all(&corrupt).await.unwrap();
        tcp.write_all(&[0xAB; 0x20]).await.unwrap();
        let outcome = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the broken record ends the relay")
            .unwrap();
        assert!(matches!(outcome.end, End::ClientError(_)), "{outcome:?}");
        assert_eq!(outcome.end.code(), EndCode::ClientAborted);
        assert_eq!(seen(&mut backend).await.1, RESET, "the backend is reset");
    }
}
