//! Clients: the well-behaved kind, which speak the backends' protocol
//! ([`crate::backend`]) through the balancer and check every byte, and
//! the faulty kind: one that connects and sends nothing, one that starts
//! a TLS handshake and never finishes it, one that gives up mid-request,
//! one that resets mid-upload, and a slowloris.

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, ClientConnection};
use tokio_rustls::{TlsConnector, TlsStream};

use crate::backend::write_pattern;
use crate::conn::{Conn, End};
use crate::pattern;

/// How a client reaches the balancer: plain TCP, or TLS verified against
/// the suite's CA.
#[derive(Clone)]
pub enum Front {
    Plain,
    Tls(TlsConnector),
}

/// A connection to the balancer, and how long its two phases took.
pub struct Connected {
    pub conn: Conn,
    /// The TCP `connect()`: SYN to SYN-ACK. Over a second means a SYN
    /// was dropped (a full listen queue) and sent again.
    pub connect: Duration,
    /// The TLS handshake, timed apart (zero for a plain front).
    pub handshake: Duration,
}

/// Connects to `addr`, then makes a TLS handshake for `localhost` if the
/// front speaks TLS.
pub async fn connect(addr: SocketAddr, front: &Front) -> io::Result<Connected> {
    let start = Instant::now();
    let tcp = TcpStream::connect(addr).await?;
    let connect = start.elapsed();
    tcp.set_nodelay(true)?;
    let Front::Tls(connector) = front else {
        return Ok(Connected {
            conn: Conn::Plain(tcp),
            connect,
            handshake: Duration::ZERO,
        });
    };
    let start = Instant::now();
    let name = ServerName::try_from("localhost").expect("a valid DNS name");
    let tls = connector.connect(name, tcp).await?;
    Ok(Connected {
        conn: Conn::Tls(Box::new(TlsStream::Client(tls))),
        connect,
        handshake: start.elapsed(),
    })
}

/// `PING`, and waits up to `limit` for `PONG`. `Err` says how the
/// connection ended instead (`StillOpen` if nothing came in time).
pub async fn ping(conn: &mut Conn, limit: Duration) -> Result<(), End> {
    let exchange = async {
        conn.write_all(b"PING\n").await?;
        conn.flush().await?;
        let mut answer = [0u8; 5];
        conn.read_exact(&mut answer).await?;
        if &answer != b"PONG\n" {
            return Err(io::Error::new(ErrorKind::InvalidData, "not PONG"));
        }
        Ok(())
    };
    match tokio::time::timeout(limit, exchange).await {
        Ok(Ok(())) => Ok(()),
        // A plain FIN before the answer reads as UnexpectedEof from
        // read_exact: over plain TCP, that is a clean end.
        Ok(Err(err))
            if err.kind() == ErrorKind::UnexpectedEof
                && matches!(conn, Conn::Plain(_)) =>
        {
            Err(End::Clean)
        }
        Ok(Err(err)) => Err(End::of_error(&err)),
        Err(_) => Err(End::StillOpen),
    }
}

/// What a client got for a `GET`.
#[derive(Clone, Copy, Debug)]
pub struct Download {
    /// Bytes received.
    pub bytes: u64,
    /// Whether every byte received was the pattern's.
    pub intact: bool,
    pub end: End,
    /// When the last byte came (or the request went, if none came).
    pub last_byte: Instant,
    /// When the stream ended (or the client stopped waiting).
    pub ended: Instant,
}

impl Download {
    /// All `n` bytes, the pattern, then a clean end.
    pub fn complete(&self, n: u64) -> bool {
        self.bytes == n && self.intact && self.end == End::Clean
    }
}

/// Sends `GET n` and reads until the stream ends or `limit` has passed
/// since the request, adding each read to `progress` if given.
pub async fn get(
    conn: &mut Conn,
    n: u64,
    limit: Duration,
    progress: Option<&AtomicU64>,
) -> Download {
    get_paced(conn, n, None, limit, progress).await
}

/// [`get`], reading no faster than `rate` bytes a second if given: a
/// slow reader, whose transfer stays in flight for `n / rate` seconds
/// (the backend and the balancer wait on full buffers meanwhile).
pub async fn get_paced(
    conn: &mut Conn,
    n: u64,
    rate: Option<u64>,
    limit: Duration,
    progress: Option<&AtomicU64>,
) -> Download {
    let sent = Instant::now();
    let mut download = Download {
        bytes: 0,
        intact: true,
        end: End::StillOpen,
        last_byte: sent,
        ended: sent,
    };
    let request = format!("GET {n}\n");
    if let Err(err) = conn.write_all(request.as_bytes()).await {
        download.end = End::of_error(&err);
        download.ended = Instant::now();
        return download;
    }
    let _ = conn.flush().await;
    let mut buffer = vec![0u8; 64 * 1024];
    let deadline = sent + limit;
    loop {
        match tokio::time::timeout_at(deadline, conn.read(&mut buffer)).await {
            Err(_) => break,
            Ok(Ok(0)) => {
                download.end = End::Clean;
                break;
            }
            Ok(Ok(read)) => {
                let got = &buffer[..read];
                download.intact &= pattern::matches(download.bytes, got);
                download.bytes += read as u64;
                download.last_byte = Instant::now();
                if let Some(progress) = progress {
                    progress.fetch_add(read as u64, Ordering::Relaxed);
                }
                if let Some(rate) = rate.filter(|&r| r > 0) {
                    // Not before the time these bytes are due at `rate`.
                    let due = Duration::from_secs_f64(
                        download.bytes as f64 / rate as f64,
                    );
                    tokio::time::sleep_until((sent + due).min(deadline)).await;
                }
            }
            Ok(Err(err)) => {
                download.end = End::of_error(&err);
                break;
            }
        }
    }
    download.ended = Instant::now();
    download
}

/// Connects to `addr` through `front` ([`connect`]), then sends `GET n`
/// and reads the answer as [`get`] does. `Err` only if it could not
/// connect.
pub async fn connect_and_get(
    addr: SocketAddr,
    front: &Front,
    n: u64,
    limit: Duration,
    progress: Option<&AtomicU64>,
) -> io::Result<Download> {
    let mut connected = connect(addr, front).await?;
    Ok(get(&mut connected.conn, n, limit, progress).await)
}

/// Sends `PUT n` and the n bytes, and reads the answer (`got n`), all
/// within `limit`.
pub async fn put(
    conn: &mut Conn,
    n: u64,
    limit: Duration,
) -> io::Result<String> {
    let exchange = async {
        conn.write_all(format!("PUT {n}\n").as_bytes()).await?;
        write_pattern(conn, 0, n).await?;
        read_answer(conn).await
    };
    tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| io::Error::new(ErrorKind::TimedOut, "no answer"))?
}

/// Sends `PUT n` and the n bytes in `piece`-sized parts, one every
/// `every` (a slow but steady client), then reads the answer; all within
/// `limit`.
pub async fn put_paced(
    conn: &mut Conn,
    n: u64,
    piece: u64,
    every: Duration,
    limit: Duration,
) -> io::Result<String> {
    let exchange = async {
        conn.write_all(format!("PUT {n}\n").as_bytes()).await?;
        let mut ticks = tokio::time::interval(every);
        let mut sent = 0;
        while sent < n {
            ticks.tick().await;
            let len = piece.min(n - sent);
            write_pattern(conn, sent, len).await?;
            sent += len;
        }
        read_answer(conn).await
    };
    tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| io::Error::new(ErrorKind::TimedOut, "no answer"))?
}

/// The backend's one-line answer to a `PUT`, without its newline.
async fn read_answer(conn: &mut Conn) -> io::Result<String> {
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\n") && answer.len() < 64 {
        if conn.read(&mut byte).await? == 0 {
            break;
        }
        answer.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&answer).trim().to_owned())
}

/// Reads and throws away whatever comes until the stream ends or `limit`
/// passes: how it ended, and after how long.
pub async fn wait_for_end<R: AsyncReadExt + Unpin>(
    conn: &mut R,
    limit: Duration,
) -> (End, Duration) {
    let start = Instant::now();
    let mut sink = [0u8; 4096];
    let reading = async {
        loop {
            match conn.read(&mut sink).await {
                Ok(0) => return End::Clean,
                Ok(_) => {}
                Err(err) => return End::of_error(&err),
            }
        }
    };
    let end = tokio::time::timeout(limit, reading)
        .await
        .unwrap_or(End::StillOpen);
    (end, start.elapsed())
}

/// A half-finished TLS handshake: connects and sends a real ClientHello,
/// then never answers the server's reply.
pub async fn half_tls_handshake(
    addr: SocketAddr,
    tls: Arc<ClientConfig>,
) -> io::Result<TcpStream> {
    let name = ServerName::try_from("localhost").expect("a valid DNS name");
    let mut session = ClientConnection::new(tls, name)
        .map_err(|err| io::Error::new(ErrorKind::InvalidInput, err))?;
    let mut hello = Vec::new();
    session.write_tls(&mut hello)?;
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(&hello).await?;
    Ok(tcp)
}

/// A client that gives up mid-request: sends the start of a request line
/// and closes.
pub async fn give_up_mid_request(addr: SocketAddr) -> io::Result<()> {
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(b"GE").await?;
    Ok(())
}

/// A slowloris: keeps a connection open by sending one byte of a request
/// line that never ends every `every`, for `trickle`; then stays silent.
/// Returns how the connection ended and when (from the start), or
/// `StillOpen` if it outlived `trickle + silent`.
pub async fn slowloris(
    conn: Conn,
    every: Duration,
    trickle: Duration,
    silent: Duration,
) -> (End, Duration) {
    let start = Instant::now();
    let (mut read_half, mut write_half) = tokio::io::split(conn);
    let trickling = async {
        let mut ticks = tokio::time::interval(every);
        ticks.tick().await;
        while start.elapsed() + every <= trickle {
            ticks.tick().await;
            if write_half.write_all(b"G").await.is_err() {
                break;
            }
        }
        std::future::pending::<()>().await;
    };
    let limit = trickle + silent;
    tokio::select! {
        () = trickling => unreachable!("trickling never returns"),
        (end, _) = wait_for_end(&mut read_half, limit) => {
            (end, start.elapsed())
        }
    }
}
