//! Addresses: the article's defaults and a `host:port` type for flags.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// Where the L4 steps listen, as in the article: `localhost:3000`, but only
/// on the loopback interface.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";

/// Where the layer-7 proxy (step 09) listens, as in the second article:
/// `:8080`, but only on the loopback interface.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8080";

/// The three dummy backends, as in the article (4444-4446).
pub const DEFAULT_BACKENDS: &str =
    "127.0.0.1:4444,127.0.0.1:4445,127.0.0.1:4446";

/// The first backend alone: the default of the single-backend steps.
pub const DEFAULT_BACKEND: &str = "127.0.0.1:4444";

/// A `host:port` pair as typed on the command line: `127.0.0.1:4444`,
/// `localhost:4445` or `[::1]:4446`.
///
/// The host is kept as written (not resolved to an IP) because the TLS
/// steps verify a backend's certificate against the name they dialled.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    host: String,
    port: u16,
}

impl HostPort {
    /// The host as written, without brackets for IPv6.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

/// A socket address is a host (its IP) and a port.
impl From<SocketAddr> for HostPort {
    fn from(addr: SocketAddr) -> Self {
        HostPort {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for HostPort {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.contains(',') {
            return Err(format!("`{text}` is a list: give one HOST:PORT here"));
        }
        // Without these two checks, `http://h:1` and `h:1 h:2` would be
        // read as IPv6 hosts (they hold a `:` before the port) and get
        // advice about brackets.
        if text.contains(char::is_whitespace) {
            return Err(format!(
                "`{text}` contains a space: write HOST:PORT, and separate \
                 a list with commas"
            ));
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return Err(format!(
                "`{text}`: no `{scheme}://` here, write HOST:PORT \
                 (e.g. 127.0.0.1:4444)"
            ));
        }
        let (host, port) = text.rsplit_once(':').ok_or_else(|| {
            format!("`{text}` is not HOST:PORT (e.g. 127.0.0.1:4444)")
        })?;
        let host = match host.strip_prefix('[') {
            Some(inner) => inner.strip_suffix(']').ok_or_else(|| {
                format!("`{text}`: an IPv6 host needs both brackets")
            })?,
            None if host.contains(':') => {
                return Err(format!(
                    "`{text}`: write an IPv6 address in brackets, \
                     e.g. [::1]:4444"
                ));
            }
            None => host,
        };
        if host.is_empty() {
            return Err(format!("`{text}` has no host before the port"));
        }
        let port = port.parse::<u16>().map_err(|_| {
            format!("`{text}`: `{port}` is not a port number (0-65535)")
        })?;
        Ok(HostPort {
            host: host.to_owned(),
            port,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_ipv4_and_bracketed_ipv6() {
        let a: HostPort = "localhost:4444".parse().unwrap();
        assert_eq!((a.host(), a.port()), ("localhost", 4444));
        let b: HostPort = "[::1]:3000".parse().unwrap();
        assert_eq!((b.host(), b.port()), ("::1", 3000));
        assert_eq!(b.to_string(), "[::1]:3000");
        let from_socket = HostPort::from(SocketAddr::from(([127, 0, 0, 1], 9)));
        assert_eq!(from_socket.to_string(), "127.0.0.1:9");
        assert_eq!(
            "127.0.0.1:0".parse::<HostPort>().unwrap().to_string(),
            "127.0.0.1:0"
        );
    }

    #[test]
    fn refuses_what_is_not_host_port() {
        for bad in [
            "4444",
            "localhost",
            ":80",
            "host:99999",
            "::1:80",
            "h:x",
            "a:1,b:2",
        ] {
            assert!(bad.parse::<HostPort>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn a_scheme_or_a_space_is_named_in_the_error() {
        let err = "http://127.0.0.1:4444".parse::<HostPort>().unwrap_err();
        assert!(err.contains("no `http://` here"), "{err}");
        let err = "127.0.0.1:4444 127.0.0.1:4445"
            .parse::<HostPort>()
            .unwrap_err();
        assert!(err.contains("contains a space"), "{err}");
        assert!(!err.contains("IPv6"), "{err}");
    }

    #[test]
    fn parses_the_default_backend_list() {
        let ports: Vec<u16> = DEFAULT_BACKENDS
            .split(',')
            .map(|text| text.parse::<HostPort>().unwrap().port())
            .collect();
        assert_eq!(ports, [4444, 4445, 4446]);
    }
}
