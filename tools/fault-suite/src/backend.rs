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
    /// Over TLS: sends the first `after` bytes of a `GET`, then a record
    /// that does not decrypt (a corrupt record, as a faulty network or a
    /// broken TLS stack sends), then holds the connection open.
    CorruptRecord { after: u64 },
    /// Reads the first `after` bytes of a `PUT` body, then stops reading
    /// (and holds the connection open): its receive window closes, and
    /// the sender's data waits unacknowledged.
    StopsReading { after: u64 },
}

/// A TLS 1.3 application-data record of 32 bytes that no key decrypts.
const CORRUPT_RECORD: [u8; 37] = {
    let mut record = [0x5a; 37];
    (record[0], record[1], record[2], record[3], record[4]) =
        (0x17, 0x03, 0x03, 0x00, 0x20);
    record
};

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
    /// The size of every `GET`, in the order they came.
    asked: Mutex<Vec<u64>>,
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

    /// The size of every `GET` so far, in the order they came: with one
    /// connection at a time, the order the backend served its clients.
    pub fn asked(&self) -> Vec<u64> {
        self.asked.lock().unwrap_or_else(|p| p.into_inner()).clone()
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
    /// Whether it should listen: [`FaultBackend::refuse`] and
    /// [`FaultBackend::answer`] set it.
    listen: watch::Sender<bool>,
    /// Whether it listens now, as its accept task last said.
    listening: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl FaultBackend {
    /// Starts a backend with `behaviour` on `127.0.0.1:0`, speaking TLS
    /// with `tls` if given.
    pub async fn start(
        behaviour: Behaviour,
        tls: Option<TlsAcceptor>,
    ) -> io::Result<FaultBackend> {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)), behaviour)?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(Stats::default());
        let (release, released) = watch::channel(false);
        let (listen, told) = watch::channel(true);
        let (said, listening) = watch::channel(true);
        let accepting = Accepting {
            addr,
            behaviour,
            tls,
            stats: stats.clone(),
            released,
            told,
            said,
        };
        let backend = FaultBackend {
            addr,
            stats: stats.clone(),
            release,
            listen,
            listening,
            task: tokio::spawn(accepting.run(listener)),
        };
        Ok(backend)
    }

    /// Stops listening: new connects are refused (the kernel answers a
    /// SYN to a closed port with a reset), while open connections go on.
    /// Whether it stopped within a second.
    pub async fn refuse(&self) -> bool {
        self.listen_or_not(false).await
    }

    /// Listens again, on the same port; whether it does within a second.
    pub async fn answer(&self) -> bool {
        self.listen_or_not(true).await
    }

    async fn listen_or_not(&self, on: bool) -> bool {
        self.listen.send_replace(on);
        let mut listening = self.listening.clone();
        let limit = Duration::from_secs(1);
        let done = listening.wait_for(|&now| now == on);
        matches!(tokio::time::timeout(limit, done).await, Ok(Ok(_)))
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

/// A listening socket for a backend with `behaviour` on `addr`.
/// `SO_REUSEADDR` lets a backend that stopped listening bind its port
/// again while connections it accepted there are still open (they
/// inherit the option, which the kernel requires of them too).
fn bind(addr: SocketAddr, behaviour: Behaviour) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    if let Behaviour::ReadsSlowly { .. } | Behaviour::StopsReading { .. } =
        behaviour
    {
        // A slow reader's buffer is full, as a busy server's is. At
        // its loopback default (up to 32 MiB) it would swallow a
        // whole test upload at once, and the balancer would never
        // have to hold back.
        socket.set_recv_buffer_size(SLOW_READER_BUFFER)?;
    }
    socket.bind(addr)?;
    socket.listen(1024)
}

/// What a backend's accept task holds.
struct Accepting {
    addr: SocketAddr,
    behaviour: Behaviour,
    tls: Option<TlsAcceptor>,
    stats: Arc<Stats>,
    released: watch::Receiver<bool>,
    /// Whether to listen, as the case says.
    told: watch::Receiver<bool>,
    /// Whether it listens, for the case to wait on.
    said: watch::Sender<bool>,
}

impl Accepting {
    async fn run(mut self, listener: TcpListener) {
        let mut connections = JoinSet::new();
        let mut listener = Some(listener);
        loop {
            while connections.try_join_next().is_some() {}
            let Some(listening) = &listener else {
                // Refusing until told to listen again; the connections
                // already open go on meanwhile (they are tasks of their
                // own).
                if self.told.wait_for(|&on| on).await.is_err() {
                    return;
                }
                listener = self.bind_again().await;
                self.said.send_replace(listener.is_some());
                continue;
            };
            let accepted = tokio::select! {
                accepted = listening.accept() => accepted,
                told = self.told.changed() => {
                    if told.is_err() {
                        return;
                    }
                    if !*self.told.borrow_and_update() {
                        // Closing the listener would reset the connects
                        // in its queue, which their clients saw succeed:
                        // those are served first (a zero timeout polls
                        // an accept once). Then it refuses the next.
                        while let Ok(Ok((tcp, _))) =
                            tokio::time::timeout(Duration::ZERO, listening.accept())
                                .await
                        {
                            connections.spawn(self.connection(tcp));
                        }
                        listener = None;
                        self.said.send_replace(false);
                    }
                    continue;
                }
            };
            let Ok((tcp, _)) = accepted else {
                // Out of descriptors, most likely: let some close first.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            connections.spawn(self.connection(tcp));
        }
    }

    /// Binds the backend's port again: up to a second of tries, 10 ms
    /// apart, in case the old socket is not yet gone.
    async fn bind_again(&self) -> Option<TcpListener> {
        for _ in 0..100 {
            if let Ok(listener) = bind(self.addr, self.behaviour) {
                return Some(listener);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    /// One accepted connection, served as the behaviour says.
    fn connection(
        &self,
        tcp: TcpStream,
    ) -> impl Future<Output = ()> + Send + 'static {
        let behaviour = self.behaviour;
        let stats = self.stats.clone();
        let open = stats.opened();
        let tls = self.tls.clone();
        let released = self.released.clone();
        async move {
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
        }
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
            Request::Get(n) => {
                stats
                    .asked
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(n);
                return send(conn, n, behaviour, released).await;
            }
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
        | Behaviour::ClosesWithoutNotify { after }
        | Behaviour::CorruptRecord { after } => after.min(n),
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
        // The corrupt record goes under TLS, straight onto the TCP
        // connection; then nothing more, and no close: what the other
        // end sees is the record's error, not an end.
        Behaviour::CorruptRecord { .. } => {
            if let Conn::Tls(tls) = &mut conn {
                let _ = tls.get_mut().0.write_all(&CORRUPT_RECORD).await;
            }
            match hold(conn).await {}
        }
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
        if let Behaviour::StopsReading { after } = behaviour
            && upload.bytes >= after
        {
            // Stops reading, and keeps the connection (the caller's)
            // open until the backend stops.
            std::future::pending::<()>().await;
        }
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

    async fn ping(tcp: &mut TcpStream) {
        tcp.write_all(b"PING\n").await.expect("ping");
        let mut pong = [0u8; 5];
        tcp.read_exact(&mut pong).await.expect("pong");
        assert_eq!(&pong, b"PONG\n");
    }

    #[tokio::test]
    async fn a_backend_refuses_then_answers_keeping_its_connections() {
        let backend = FaultBackend::start(Behaviour::Serve, None)
            .await
            .expect("a backend");
        let mut open = TcpStream::connect(backend.addr).await.expect("open");
        // Answered: accepted, not just queued (closing the listener
        // resets a queued one).
        ping(&mut open).await;
        assert!(backend.refuse().await);
        let refused = TcpStream::connect(backend.addr).await;
        assert_eq!(
            refused.expect_err("refused").kind(),
            io::ErrorKind::ConnectionRefused
        );
        // The connection accepted before goes on.
        ping(&mut open).await;
        assert!(backend.answer().await);
        let mut again = TcpStream::connect(backend.addr)
            .await
            .expect("answers again");
        ping(&mut again).await;
        assert_eq!(backend.stats().accepted(), 2);
    }

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
