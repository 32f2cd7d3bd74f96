//! The PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2):
//! the header a layer-4 proxy writes before any byte of its client, so
//! that the server behind it learns the client's address and the address
//! the client connected to.
//!
//! This module owns the bytes on the wire, for `lb` (which writes headers
//! to backends with `send_proxy` and reads them from the front with
//! `accept_proxy`) and for the dummy servers (which read them): building
//! a header ([`proxy_header`], [`local_header`]) and reading one from a
//! TCP stream ([`read_header`]). The `ppp` crate builds and parses; the
//! tests below pin its output byte for byte against the specification.
//!
//! A version 1 header is one line of text:
//!
//! ```text
//! PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n
//! ```
//!
//! A version 2 header is binary: a 12-byte signature, a version and
//! command byte, a family and protocol byte, a 2-byte length, then the
//! addresses.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use ppp::v2::{Builder, Command, Protocol};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The 12 bytes every version 2 header starts with.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The longest version 1 header, `\r\n` included (the specification's
/// worst case: `TCP6` with two full IPv6 addresses and 5-digit ports).
pub const V1_MAX_LENGTH: usize = 107;

/// The longest rest of a version 2 header this reader takes: the
/// largest addresses (two Unix paths, 216 bytes) and room for TLVs
/// (a TLS or cloud provider's extensions are a few hundred bytes).
pub const V2_MAX_LENGTH: usize = 1024;

/// The shortest version 1 header, `PROXY UNKNOWN\r\n`, is 15 bytes and
/// a version 2 header at least 16: 12 bytes can be read before knowing
/// which it is without ever reading a client byte.
const FIRST_READ: usize = 12;

/// Which version of the protocol a header is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// Text: one human-readable line.
    V1,
    /// Binary: cheaper to parse, and has a `LOCAL` command.
    V2,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
        })
    }
}

impl FromStr for Version {
    type Err = String;

    fn from_str(text: &str) -> Result<Version, String> {
        match text {
            "v1" => Ok(Version::V1),
            "v2" => Ok(Version::V2),
            other => Err(format!("`{other}` is not v1 or v2")),
        }
    }
}

/// The two addresses a header carries: the client's (`source`) and the
/// one the client connected to (`destination`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addresses {
    pub source: SocketAddr,
    pub destination: SocketAddr,
}

/// A header read from a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceivedHeader {
    pub version: Version,
    /// `None` for a v2 `LOCAL` header, a v1 `UNKNOWN` one, or a family
    /// other than TCP over IPv4/IPv6: the specification says to use the
    /// connection's own addresses then.
    pub addresses: Option<Addresses>,
}

/// The header for a connection from `source` to `destination`, relayed
/// by a proxy: `PROXY TCP4 ...\r\n` or v2's `PROXY` command.
///
/// Both addresses of a header are of one family; if one is IPv4 and the
/// other IPv6, the IPv4 one is written in its IPv6-mapped form
/// (`::ffff:192.0.2.1`) rather than losing both to `UNKNOWN`.
pub fn proxy_header(
    version: Version,
    source: SocketAddr,
    destination: SocketAddr,
) -> Vec<u8> {
    let pair = same_family(source, destination);
    match version {
        Version::V1 => ppp::v1::Addresses::from(pair).to_string().into_bytes(),
        Version::V2 => Builder::with_addresses(
            ppp::v2::Version::Two | Command::Proxy,
            Protocol::Stream,
            pair,
        )
        .build()
        .expect("two IP addresses are far below v2's 64 KiB limit"),
    }
}

/// The header for a connection the proxy makes on its own behalf (a
/// health check): v2's `LOCAL` command, whose addresses the server must
/// ignore, or v1's `PROXY UNKNOWN\r\n`, the nearest v1 has. A server that
/// requires the header refuses a connection without one, so a check that
/// sent none would fail against a healthy server.
pub fn local_header(version: Version) -> Vec<u8> {
    match version {
        Version::V1 => ppp::v1::Addresses::Unknown.to_string().into_bytes(),
        Version::V2 => Builder::with_addresses(
            ppp::v2::Version::Two | Command::Local,
            Protocol::Unspecified,
            ppp::v2::Addresses::Unspecified,
        )
        .build()
        .expect("an empty address block is far below v2's 64 KiB limit"),
    }
}

fn same_family(
    source: SocketAddr,
    destination: SocketAddr,
) -> (SocketAddr, SocketAddr) {
    let as_v6 = |addr: SocketAddr| match addr {
        SocketAddr::V4(v4) => {
            SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port())
        }
        v6 => v6,
    };
    if source.is_ipv4() == destination.is_ipv4() {
        (source, destination)
    } else {
        (as_v6(source), as_v6(destination))
    }
}

/// Why a stream did not start with a usable header.
#[derive(Debug)]
pub struct HeaderError {
    message: String,
    timed_out: bool,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HeaderError {}

impl HeaderError {
    fn new(message: impl Into<String>) -> HeaderError {
        HeaderError {
            message: message.into(),
            timed_out: false,
        }
    }

    /// Whether no whole header came within the time allowed (rather than
    /// a wrong one, or a peer that left).
    pub fn timed_out(&self) -> bool {
        self.timed_out
    }

    fn reading(err: io::Error) -> HeaderError {
        if err.kind() == io::ErrorKind::UnexpectedEof {
            HeaderError::new("the peer closed before a whole PROXY header")
        } else {
            HeaderError::new(format!("reading the PROXY header: {err}"))
        }
    }
}

/// Reads a PROXY header (v1 or v2, whichever comes) from the start of
/// `stream`, within `timeout`, and consumes exactly its bytes: the next
/// read returns the peer's first byte after it, so the stream can go on
/// to a TLS handshake or HTTP as if the header had never been there.
pub async fn read_header(
    stream: &mut TcpStream,
    timeout: Duration,
) -> Result<ReceivedHeader, HeaderError> {
    match tokio::time::timeout(timeout, read_header_bytes(stream)).await {
        Ok(result) => result,
        Err(_) => Err(HeaderError {
            message: format!("no PROXY header within {timeout:?}"),
            timed_out: true,
        }),
    }
}

// ANCHOR: read_header
async fn read_header_bytes(
    stream: &mut TcpStream,
) -> Result<ReceivedHeader, HeaderError> {
    let mut header = vec![0u8; FIRST_READ];
    stream
        .read_exact(&mut header)
        .await
        .map_err(HeaderError::reading)?;
    if header == V2_SIGNATURE {
        read_v2_rest(stream, header).await
    } else if header.starts_with(b"PROXY ") {
        read_v1_rest(stream, header).await
    } else {
        Err(HeaderError::new(format!(
            "not a PROXY header: the stream starts with {:?}",
            String::from_utf8_lossy(&header)
        )))
    }
}
// ANCHOR_END: read_header

/// After the signature: version and command, family and protocol, the
/// length of what follows, then that many bytes.
async fn read_v2_rest(
    stream: &mut TcpStream,
    mut header: Vec<u8>,
) -> Result<ReceivedHeader, HeaderError> {
    let mut fixed = [0u8; 4];
    stream
        .read_exact(&mut fixed)
        .await
        .map_err(HeaderError::reading)?;
    header.extend_from_slice(&fixed);
    let length = usize::from(u16::from_be_bytes([fixed[2], fixed[3]]));
    // Up to 64 KiB by the field's size, allocated on the word of 16
    // bytes: bounded to what a real header carries, so that many
    // connections trickling headers cannot make `lb` hold 64 KiB each.
    if length > V2_MAX_LENGTH {
        return Err(HeaderError::new(format!(
            "a PROXY v2 header of {length} bytes after its fixed part: \
             more than the {V2_MAX_LENGTH} this reader takes"
        )));
    }
    let start = header.len();
    header.resize(start + length, 0);
    stream
        .read_exact(&mut header[start..])
        .await
        .map_err(HeaderError::reading)?;
    let parsed =
        ppp::v2::Header::try_from(header.as_slice()).map_err(|err| {
            HeaderError::new(format!("invalid PROXY v2 header: {err}"))
        })?;
    let addresses = match (parsed.command, parsed.addresses) {
        (Command::Local, _) => None,
        (Command::Proxy, ppp::v2::Addresses::IPv4(ip)) => Some(Addresses {
            source: (ip.source_address, ip.source_port).into(),
            destination: (ip.destination_address, ip.destination_port).into(),
        }),
        (Command::Proxy, ppp::v2::Addresses::IPv6(ip)) => Some(Addresses {
            source: (ip.source_address, ip.source_port).into(),
            destination: (ip.destination_address, ip.destination_port).into(),
        }),
        // UNSPEC or a Unix socket: nothing a TCP server can use.
        (Command::Proxy, _) => None,
    };
    Ok(ReceivedHeader {
        version: Version::V2,
        addresses,
    })
}

/// After `PROXY `: the bytes up to and including the first `\n`, at most
/// [`V1_MAX_LENGTH`] in all. The end is found by peeking, so that no
/// byte after it is taken from the stream; bytes peeked without the end
/// among them are all the header's, and are read before peeking again.
async fn read_v1_rest(
    stream: &mut TcpStream,
    mut header: Vec<u8>,
) -> Result<ReceivedHeader, HeaderError> {
    let mut window = [0u8; V1_MAX_LENGTH];
    loop {
        let room = V1_MAX_LENGTH - header.len();
        if room == 0 {
            return Err(HeaderError::new(format!(
                "invalid PROXY v1 header: no \\r\\n within \
                 {V1_MAX_LENGTH} bytes"
            )));
        }
        let peeked = stream
            .peek(&mut window[..room])
            .await
            .map_err(HeaderError::reading)?;
        if peeked == 0 {
            return Err(HeaderError::reading(
                io::ErrorKind::UnexpectedEof.into(),
            ));
        }
        let take = match window[..peeked].iter().position(|&b| b == b'\n') {
            Some(newline) => newline + 1,
            None => peeked,
        };
        let start = header.len();
        header.resize(start + take, 0);
        stream
            .read_exact(&mut header[start..])
            .await
            .map_err(HeaderError::reading)?;
        if header.ends_with(b"\n") {
            break;
        }
    }
    let parsed =
        ppp::v1::Header::try_from(header.as_slice()).map_err(|err| {
            HeaderError::new(format!(
                "invalid PROXY v1 header {:?}: {err}",
                String::from_utf8_lossy(&header)
            ))
        })?;
    let addresses = match parsed.addresses {
        ppp::v1::Addresses::Tcp4(ip) => Some(Addresses {
            source: (ip.source_address, ip.source_port).into(),
            destination: (ip.destination_address, ip.destination_port).into(),
        }),
        ppp::v1::Addresses::Tcp6(ip) => Some(Addresses {
            source: (ip.source_address, ip.source_port).into(),
            destination: (ip.destination_address, ip.destination_port).into(),
        }),
        ppp::v1::Addresses::Unknown => None,
    };
    Ok(ReceivedHeader {
        version: Version::V1,
        addresses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("a valid test address")
    }

    /// The v2 signature, written out from the specification's section
    /// 2.2: `\x0D \x0A \x0D \x0A \x00 \x0D \x0A \x51 \x55 \x49 \x54 \x0A`.
    const SIGNATURE: [u8; 12] = [
        0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
    ];

    fn v2(rest: &[u8]) -> Vec<u8> {
        let mut bytes = SIGNATURE.to_vec();
        bytes.extend_from_slice(rest);
        bytes
    }

    #[test]
    fn the_signature_constant_is_the_specifications() {
        assert_eq!(V2_SIGNATURE, SIGNATURE);
    }

    #[test]
    fn v1_tcp4_is_one_line() {
        let header = proxy_header(
            Version::V1,
            addr("192.0.2.1:56324"),
            addr("198.51.100.7:443"),
        );
        assert_eq!(
            header,
            b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n".to_vec()
        );
    }

    #[test]
    fn v1_tcp6_writes_the_short_ipv6_form() {
        let header = proxy_header(
            Version::V1,
            addr("[2001:db8::1]:56324"),
            addr("[2001:db8::2]:443"),
        );
        assert_eq!(
            header,
            b"PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n".to_vec()
        );
    }

    #[test]
    fn v1_local_is_unknown() {
        assert_eq!(local_header(Version::V1), b"PROXY UNKNOWN\r\n".to_vec());
    }

    #[test]
    fn v2_proxy_over_ipv4() {
        let header = proxy_header(
            Version::V2,
            addr("192.0.2.1:56324"),
            addr("198.51.100.7:443"),
        );
        let expected = v2(&[
            0x21, // version 2, command PROXY
            0x11, // AF_INET, STREAM
            0x00, 0x0C, // 12 bytes of addresses
            192, 0, 2, 1, // source
            198, 51, 100, 7, // destination
            0xDC, 0x04, // 56324
            0x01, 0xBB, // 443
        ]);
        assert_eq!(header, expected);
    }

    #[test]
    fn v2_proxy_over_ipv6() {
        let header = proxy_header(
            Version::V2,
            addr("[2001:db8::1]:56324"),
            addr("[2001:db8::2]:443"),
        );
        let mut rest = vec![
            0x21, // version 2, command PROXY
            0x21, // AF_INET6, STREAM
            0x00, 0x24, // 36 bytes of addresses
        ];
        rest.extend_from_slice(&[0x20, 0x01, 0x0D, 0xB8]);
        rest.extend_from_slice(&[0; 11]);
        rest.push(0x01);
        rest.extend_from_slice(&[0x20, 0x01, 0x0D, 0xB8]);
        rest.extend_from_slice(&[0; 11]);
        rest.push(0x02);
        rest.extend_from_slice(&[0xDC, 0x04, 0x01, 0xBB]);
        assert_eq!(header, v2(&rest));
    }

    #[test]
    fn v2_local_has_no_addresses() {
        // Version 2 with command LOCAL, AF_UNSPEC and UNSPEC, length 0.
        assert_eq!(local_header(Version::V2), v2(&[0x20, 0x00, 0x00, 0x00]));
    }

    #[test]
    fn mixed_families_are_written_as_ipv6() {
        let header = proxy_header(
            Version::V1,
            addr("192.0.2.1:56324"),
            addr("[2001:db8::2]:443"),
        );
        assert_eq!(
            header,
            b"PROXY TCP6 ::ffff:192.0.2.1 2001:db8::2 56324 443\r\n".to_vec()
        );
    }

    #[test]
    fn versions_read_as_config_writes_them() {
        assert_eq!("v1".parse(), Ok(Version::V1));
        assert_eq!("v2".parse(), Ok(Version::V2));
        assert!("V2".parse::<Version>().is_err());
        assert_eq!(Version::V2.to_string(), "v2");
    }

    /// A connected pair over loopback: what `client` writes, `server`
    /// reads.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    const WITHIN: Duration = Duration::from_secs(5);

    /// Writes `bytes` then `after` in one write, reads a header, and
    /// returns it with what the stream gives next.
    async fn read_then_rest(
        bytes: &[u8],
    ) -> (Result<ReceivedHeader, HeaderError>, Vec<u8>) {
        let (mut client, mut server) = pair().await;
        let mut sent = bytes.to_vec();
        sent.extend_from_slice(b"GET / HTTP/1.1\r\n");
        client.write_all(&sent).await.unwrap();
        client.shutdown().await.unwrap();
        let header = read_header(&mut server, WITHIN).await;
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).await.unwrap();
        (header, rest)
    }

    #[tokio::test]
    async fn every_header_built_reads_back_leaving_the_client_bytes() {
        let source = addr("127.0.0.2:40000");
        let destination = addr("127.0.0.1:3000");
        let six = (addr("[2001:db8::1]:1"), addr("[2001:db8::2]:2"));
        let cases = [
            (
                proxy_header(Version::V1, source, destination),
                Version::V1,
                true,
            ),
            (
                proxy_header(Version::V2, source, destination),
                Version::V2,
                true,
            ),
            (proxy_header(Version::V1, six.0, six.1), Version::V1, true),
            (proxy_header(Version::V2, six.0, six.1), Version::V2, true),
            (local_header(Version::V1), Version::V1, false),
            (local_header(Version::V2), Version::V2, false),
        ];
        for (bytes, version, has_addresses) in cases {
            let (header, rest) = read_then_rest(&bytes).await;
            let header = header.expect("a header it built reads back");
            assert_eq!(header.version, version);
            assert_eq!(header.addresses.is_some(), has_addresses);
            assert_eq!(rest, b"GET / HTTP/1.1\r\n");
        }
        let (header, _) =
            read_then_rest(&proxy_header(Version::V2, source, destination))
                .await;
        assert_eq!(
            header.unwrap().addresses,
            Some(Addresses {
                source,
                destination
            })
        );
    }

    #[tokio::test]
    async fn a_v1_header_in_pieces_is_read_whole() {
        let (mut client, mut server) = pair().await;
        let reading = tokio::spawn(async move {
            let header = read_header(&mut server, WITHIN).await;
            let mut rest = Vec::new();
            server.read_to_end(&mut rest).await.unwrap();
            (header, rest)
        });
        for piece in [
            &b"PROXY TCP4 10.0.0.1 "[..],
            b"10.0.0.2 1",
            b"2 34\r",
            b"\nhi",
        ] {
            client.write_all(piece).await.unwrap();
            client.flush().await.unwrap();
        }
        client.shutdown().await.unwrap();
        let (header, rest) = reading.await.unwrap();
        let addresses = header.unwrap().addresses.unwrap();
        assert_eq!(addresses.source, addr("10.0.0.1:12"));
        assert_eq!(addresses.destination, addr("10.0.0.2:34"));
        assert_eq!(rest, b"hi");
    }

    #[tokio::test]
    async fn other_bytes_are_refused_saying_what_came() {
        let (header, _) = read_then_rest(b"").await;
        let err = header.unwrap_err().to_string();
        assert!(err.starts_with("not a PROXY header"), "{err}");
        assert!(err.contains("GET / HTTP/1"), "{err}");
    }

    #[tokio::test]
    async fn a_bad_v1_header_is_refused() {
        let (header, _) = read_then_rest(b"PROXY TCP4 nonsense here\r\n").await;
        let err = header.unwrap_err().to_string();
        assert!(err.starts_with("invalid PROXY v1 header"), "{err}");

        let long = format!("PROXY TCP4 {}", "1".repeat(200));
        let (header, _) = read_then_rest(long.as_bytes()).await;
        let err = header.unwrap_err().to_string();
        assert!(err.contains("no \\r\\n within 107 bytes"), "{err}");
    }

    #[tokio::test]
    async fn a_v2_length_past_the_bound_is_refused_before_it_is_read() {
        let mut header = V2_SIGNATURE.to_vec();
        // PROXY over TCP/IPv4, and a length of 65,535.
        header.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        let (header, _) = read_then_rest(&header).await;
        let err = header.unwrap_err().to_string();
        assert!(err.contains("65535 bytes after its fixed part"), "{err}");
    }

    #[tokio::test]
    async fn a_short_stream_is_refused() {
        let (mut client, mut server) = pair().await;
        client.write_all(b"PROXY TCP4").await.unwrap();
        client.shutdown().await.unwrap();
        let err = read_header(&mut server, WITHIN).await.unwrap_err();
        assert!(err.to_string().contains("closed before"), "{err}");
    }

    #[tokio::test]
    async fn a_silent_peer_times_out() {
        let (_client, mut server) = pair().await;
        let err = read_header(&mut server, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(
            err.to_string().starts_with("no PROXY header within"),
            "{err}"
        );
        assert!(err.timed_out());
    }
}
