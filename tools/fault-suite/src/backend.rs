//! Backends that behave, and backends that fail in the ways real ones do:
//! never answer, answer then stall, reset mid-stream, close at once, read
//! slowly, end TLS without `close_notify`.
//!
//! They speak a protocol of one-line requests, so that a client can tell
//! exactly what it got:
//!
//! - `PING` → `PONG`; the connection stays open for more;
//! - `GET N` → N bytes of the lab pattern, then a clean end (a FIN, and
//!   over TLS a `close_notify` first);
//! - `PUT N` then N bytes of the pattern → `got N` once all have come
//!   (`bad N` if they were not the pattern). What the backend saw of each
//!   upload, a clean end or a reset, is kept in its [`Stats`].
//!
//! A backend runs in the suite's process on `127.0.0.1:0`; dropping it
//! closes its listener and every connection it holds.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt,
    BufReader,
};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::{TlsAcceptor, TlsStream};

use crate::conn::{Conn, End};
use crate::pattern;

/// How a backend treats its connections.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// Answers every request.
    Serve,
    /// Answers, but holds back the last `tail` bytes of every `GET` until
    /// [`FaultBackend::release`]: its transfers are surely in flight.
    HoldsBackTail { tail: u64 },
    /// Accepts and then neither reads nor writes a byte, nor closes: a
    /// stuck process. Its connections stay open until the backend stops.
    NeverAnswers,
    /// Sends the first `first` bytes of a `GET`, then neither reads nor
    /// writes again.
    AnswersThenStalls { first: u64 },
    /// Sends the first `after` bytes of a `GET`, then resets the
    /// connection (a crash, or a process killed mid-answer).
    ResetsMidStream { after: u64 },
    /// Closes every connection as soon as it is accepted, reading
    /// nothing.
    ClosesAtOnce,
    /// Answers, but reads `PUT` bodies `chunk` bytes at a time, one
    /// chunk every `every`.
    ReadsSlowly { chunk: usize, every: Duration },
    /// Over TLS: sends the first `after` bytes of a `GET`, then closes
    /// its TCP connection without `close_notify`.
    ClosesWithoutNotify { after: u64 },
}

/// The receive buffer of a [`Behaviour::ReadsSlowly`] backend's
/// connections (the kernel doubles it).
pub const SLOW_READER_BUFFER: u32 = 64 * 1024;

/// What a backend saw of one upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Upload {
    /// Bytes of the body received.
    pub bytes: u64,
    /// How the body ended: `Clean` if all came or the client closed
    /// early, `Reset` if the connection was reset.
    pub end: End,
    /// Whether what came was the pattern.
    pub intact: bool,
}

/// What a backend has seen so far.
#[derive(Debug, Default)]
pub struct Stats {
    accepted: AtomicUsize,
    open: AtomicUsize,
    most_open: AtomicUsize,
    received: AtomicU64,
    uploads: Mutex<Vec<Upload>>,
}

impl Stats {
    /// Connections accepted since the start.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// The most connections that were open at once.
    pub fn most_open(&self) -> usize {
        self.most_open.load(Ordering::Relaxed)
    }

    /// Bytes of upload bodies received, all uploads together.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Every upload that has ended, in the order they ended.
    pub fn uploads(&self) -> Vec<Upload> {
        self.lock_uploads().clone()
    }

    fn lock_uploads(&self) -> std::sync::MutexGuard<'_, Vec<Upload>> {
        // A panic elsewhere cannot leave a Vec half-pushed.
        self.uploads.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn opened(self: &Arc<Self>) -> OpenGuard {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        let now = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        self.most_open.fetch_max(now, Ordering::Relaxed);
        OpenGuard(self.clone())
    }
}

/// One open connection, counted in [`Stats::open`] until dropped.
struct OpenGuard(Arc<Stats>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A backend running in this process.
pub struct FaultBackend {
    pub addr: SocketAddr,
    stats: Arc<Stats>,
    release: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl FaultBackend {
    /// Starts a backend with `behaviour` on `127.0.0.1:0`, speaking TLS
    /// with `tls` if given.
    pub async fn start(
        behaviour: Behaviour,
        tls: Option<TlsAcceptor>,
    ) -> io::Result<FaultBackend> {
        let socket = TcpSocket::new_v4()?;
        if let Behaviour::ReadsSlowly { .. } = behaviour {
            // A slow reader's buffer is full, as a busy server's is. At
            // its loopback default (up to 32 MiB) it would swallow a
            // whole test upload at once, and the balancer would never
            // have to hold back.
            socket.set_recv_buffer_size(SLOW_READER_BUFFER)?;
        }
        socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let listener = socket.listen(1024)?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(Stats::default());
        let (release, released) = watch::channel(false);
        let backend = FaultBackend {
            addr,
            stats: stats.clone(),
            release,
            task: tokio::spawn(accept_loop(
                listener, behaviour, tls, stats, released,
            )),
        };
        Ok(backend)
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Lets every held-back tail go ([`Behaviour::HoldsBackTail`]), now
    /// and from now on.
    pub fn release(&self) {
        self.release.send_replace(true);
    }
}

impl Drop for FaultBackend {
    fn drop(&mut self) {
        // The connections' tasks live in the accept task's JoinSet:
        // aborting it drops them all, and with them their sockets.
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    behaviour: Behaviour,
    tls: Option<TlsAcceptor>,
    stats: Arc<Stats>,
    released: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok((tcp, _)) = listener.accept().await else {
            // Out of descriptors, most likely: let some close first.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let open = stats.opened();
        let tls = tls.clone();
        let stats = stats.clone();
        let released = released.clone();
        connections.spawn(async move {
            let _ = tcp.set_nodelay(true);
            let Some(conn) = handshake(tcp, tls).await else {
                return;
            };
            let done = serve(conn, behaviour, &stats, released).await;
            // No longer counted as open, then closed: whoever sees the
            // close (the balancer, and through it the next client) sees
            // the count already down.
            drop(open);
            drop(done);
        });
    }
}

/// The TLS handshake, if the backend speaks TLS; `None` if it fails or
/// takes over 10 s.
async fn handshake(tcp: TcpStream, tls: Option<TlsAcceptor>) -> Option<Conn> {
    let Some(acceptor) = tls else {
        return Some(Conn::Plain(tcp));
    };
    let limit = Duration::from_secs(10);
    match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Some(Conn::Tls(Box::new(TlsStream::Server(tls)))),
        _ => None,
    }
}

/// A request line.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    Ping,
    Get(u64),
    Put(u64),
}

fn parse(line: &str) -> Option<Request> {
    let mut words = line.split_whitespace();
    let request = match (words.next()?, words.next()) {
        ("PING", None) => Request::Ping,
        ("GET", Some(n)) => Request::Get(n.parse().ok()?),
        ("PUT", Some(n)) => Request::Put(n.parse().ok()?),
        _ => return None,
    };
    words.next().is_none().then_some(request)
}

/// Serves one connection as `behaviour` says; returns it, done with,
/// for the caller to close.
async fn serve(
    conn: Conn,
    behaviour: Behaviour,
    stats: &Stats,
    released: watch::Receiver<bool>,
) -> Conn {
    match behaviour {
        Behaviour::NeverAnswers => match hold(conn).await {},
        Behaviour::ClosesAtOnce => return conn,
        _ => {}
    }
    let mut conn = BufReader::new(conn);
    loop {
        let mut line = Vec::new();
        // A request line is short; a longer one is refused by closing.
        let read = (&mut conn).take(64).read_until(b'\n', &mut line).await;
        if !matches!(read, Ok(n) if n > 0 && line.ends_with(b"\n")) {
            return conn.into_inner();
        }
        let Some(request) = parse(&String::from_utf8_lossy(&line)) else {
            return conn.into_inner();
        };
        let answered = match request {
            Request::Ping => conn.write_all(b"PONG\n").await.is_ok(),
            Request::Get(n) => return send(conn, n, behaviour, released).await,
            Request::Put(n) => receive(&mut conn, n, behaviour, stats).await,
        };
        if !answered || conn.flush().await.is_err() {
            return conn.into_inner();
        }
    }
}

/// Answers a `GET n` as `behaviour` says; returns the connection, to
/// be closed.
async fn send(
    conn: BufReader<Conn>,
    n: u64,
    behaviour: Behaviour,
    mut released: watch::Receiver<bool>,
) -> Conn {
    let mut conn = conn.into_inner();
    let first = match behaviour {
        Behaviour::HoldsBackTail { tail } => n.saturating_sub(tail),
        Behaviour::AnswersThenStalls { first } => first.min(n),
        Behaviour::ResetsMidStream { after }
        | Behaviour::ClosesWithoutNotify { after } => after.min(n),
        _ => n,
    };
    if write_pattern(&mut conn, 0, first).await.is_err() {
        return conn;
    }
    match behaviour {
        // Waits for the release, then sends the tail; gives up if either
        // fails.
        Behaviour::HoldsBackTail { .. }
            if released.wait_for(|&go| go).await.is_err()
                || write_pattern(&mut conn, first, n - first)
                    .await
                    .is_err() =>
        {
            return conn;
        }
        Behaviour::AnswersThenStalls { .. } => match hold(conn).await {},
        // Closed with a reset. Unsent bytes still in the socket's buffer
        // are lost with it, as they are when a process dies.
        Behaviour::ResetsMidStream { .. } => {
            let _ = conn.tcp().set_zero_linger();
            return conn;
        }
        // Closed without `shutdown`: a FIN, and no close_notify.
        Behaviour::ClosesWithoutNotify { .. } => return conn,
        _ => {}
    }
    if conn.shutdown().await.is_ok() {
        // Wait for the client's end before closing: closing with bytes
        // unread would reset the connection.
        let mut sink = [0u8; 1024];
        while matches!(conn.read(&mut sink).await, Ok(n) if n > 0) {}
    }
    conn
}

/// Keeps `conn` open and untouched, neither read nor written, until the
/// backend stops (which aborts this task).
async fn hold(conn: Conn) -> Infallible {
    let _conn = conn;
    std::future::pending().await
}

/// Writes `len` bytes of the pattern, starting at `offset`, and flushes.
pub async fn write_pattern<W: AsyncWrite + Unpin>(
    out: &mut W,
    offset: u64,
    len: u64,
) -> io::Result<()> {
    let mut at = offset;
    let end = offset + len;
    while at < end {
        let piece = pattern::chunk(at, (end - at).min(64 * 1024) as usize);
        out.write_all(piece).await?;
        at += piece.len() as u64;
    }
    out.flush().await
}

/// Reads the body of a `PUT n`, records what came, and answers; whether
/// the connection can go on.
async fn receive<R: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut R,
    n: u64,
    behaviour: Behaviour,
    stats: &Stats,
) -> bool {
    let (chunk, every) = match behaviour {
        Behaviour::ReadsSlowly { chunk, every } => (chunk, Some(every)),
        _ => (64 * 1024, None),
    };
    let mut buffer = vec![0u8; chunk];
    let mut upload = Upload {
        bytes: 0,
        end: End::Clean,
        intact: true,
    };
    while upload.bytes < n {
        let room = buffer.len().min((n - upload.bytes) as usize);
        match conn.read(&mut buffer[..room]).await {
            Ok(0) => break,
            Ok(read) => {
                let got = &buffer[..read];
                upload.intact &= pattern::matches(upload.bytes, got);
                upload.bytes += read as u64;
                stats.received.fetch_add(read as u64, Ordering::Relaxed);
            }
            Err(err) => {
                upload.end = End::of_error(&err);
                break;
            }
        }
        if let Some(every) = every {
            tokio::time::sleep(every).await;
        }
    }
    stats.lock_uploads().push(upload);
    if upload.bytes < n || upload.end != End::Clean {
        return false;
    }
    let word = if upload.intact { "got" } else { "bad" };
    let answer = format!("{word} {n}\n");
    conn.write_all(answer.as_bytes()).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_nothing_else_does() {
        assert_eq!(parse("PING\n"), Some(Request::Ping));
        assert_eq!(parse("GET 12\n"), Some(Request::Get(12)));
        assert_eq!(parse("PUT 5\n"), Some(Request::Put(5)));
        for bad in ["", "PING x\n", "GET\n", "GET -1\n", "GE", "PUT 1 2\n"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
