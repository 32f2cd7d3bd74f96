//! A connection of the suite's own, client or backend side, plain or TLS,
//! with the TCP socket underneath in reach (to reset it, or to close it
//! without TLS's `close_notify`), and how a reader saw its stream end.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsStream;

/// A connection, plain or TLS (client or server side).
#[derive(Debug)]
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Conn {
    /// The TCP connection underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(tcp) => tcp,
            Conn::Tls(tls) => tls.get_ref().0,
        }
    }

    /// Closes with a TCP reset instead of a FIN: a zero linger makes the
    /// close abort the connection.
    pub fn reset(self) {
        let _ = self.tcp().set_zero_linger();
    }
}

/// How a stream ended, as its reader saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum End {
    /// A clean end: a FIN, or over TLS a `close_notify` then a FIN.
    Clean,
    /// A TCP reset.
    Reset,
    /// Over TLS, a FIN without `close_notify`: the stream may have been
    /// cut short (rustls reports it as `UnexpectedEof`).
    NoCloseNotify,
    /// Another error.
    Error(io::ErrorKind),
    /// Still open when the reader stopped waiting.
    StillOpen,
}

impl End {
    /// The end a read error stands for.
    pub fn of_error(err: &io::Error) -> End {
        match err.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted => End::Reset,
            io::ErrorKind::UnexpectedEof => End::NoCloseNotify,
            kind => End::Error(kind),
        }
    }

    /// A few words for a report.
    pub fn describe(self) -> String {
        match self {
            End::Clean => "a clean end".to_owned(),
            End::Reset => "a reset".to_owned(),
            End::NoCloseNotify => "an end without close_notify".to_owned(),
            End::Error(kind) => format!("an error ({kind})"),
            End::StillOpen => "still open".to_owned(),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Conn::Tls(tls) => Pin::new(tls).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Conn::Tls(tls) => Pin::new(tls).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Conn::Tls(tls) => Pin::new(tls).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Conn::Tls(tls) => Pin::new(tls).poll_shutdown(cx),
        }
    }
}
