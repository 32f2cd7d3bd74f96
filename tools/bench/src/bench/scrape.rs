//! What watching a balancer costs it: while a contender with an admin
//! listener (`--also '... --admin {admin}'`) carries a load, a thread
//! fetches its `/metrics` (a Prometheus scraper) and `/api/stats` (what
//! the status page polls) once a second each, so that the CPU measured
//! includes serving them. Each fetch is a plain HTTP/1.1 GET on a new
//! connection; any answer counts, and those with status 200 are counted
//! apart (a listener without the page answers 404, which fails nothing).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The paths fetched each period, in order.
pub const PATHS: [&str; 2] = ["/metrics", "/api/stats"];

/// How often each path is fetched.
pub const PERIOD: Duration = Duration::from_secs(1);

/// The answers to one path's fetches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Count {
    pub sent: u64,
    /// Answered with status 200.
    pub ok: u64,
    /// Answered with another status (404 before the page exists).
    pub other: u64,
    /// No answer: refused, reset, timed out, or not HTTP.
    pub failed: u64,
}

impl Count {
    fn add(&mut self, answer: Option<u16>) {
        self.sent += 1;
        match answer {
            Some(200) => self.ok += 1,
            Some(_) => self.other += 1,
            None => self.failed += 1,
        }
    }

    pub fn plus(self, other: Count) -> Count {
        Count {
            sent: self.sent + other.sent,
            ok: self.ok + other.ok,
            other: self.other + other.other,
            failed: self.failed + other.failed,
        }
    }
}

/// The counts of each of [`PATHS`], in the same order.
pub type Counts = [Count; 2];

/// "/metrics 5 of 5 answered 200, /api/stats 0 of 5 (5 other status)".
pub fn describe(counts: &Counts) -> String {
    PATHS
        .iter()
        .zip(counts)
        .map(|(path, count)| {
            let mut text =
                format!("{path} {} of {} answered 200", count.ok, count.sent);
            let mut notes = Vec::new();
            if count.other > 0 {
                notes.push(format!("{} another status", count.other));
            }
            if count.failed > 0 {
                notes.push(format!("{} no answer", count.failed));
            }
            if !notes.is_empty() {
                text.push_str(&format!(" ({})", notes.join(", ")));
            }
            text
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The status code of an HTTP/1.x answer's first line.
pub fn parse_status(answer: &[u8]) -> Option<u16> {
    let line = answer.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_whitespace();
    if !words.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let code = words.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

/// One GET of `path` on `address`, read to its end: its status, or
/// `None` if no answer came within `timeout`.
pub fn get(address: SocketAddr, path: &str, timeout: Duration) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&address, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAccept: */*\r\n\
         User-Agent: lab-bench\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = Vec::new();
    // The whole answer is read, as a scraper would: serving the body is
    // part of the cost. An answer cut short still has its status line.
    let _ = stream.read_to_end(&mut answer);
    parse_status(&answer)
}

/// A thread fetching [`PATHS`] every [`PERIOD`] until stopped.
pub struct Scraper {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Counts>,
}

impl Scraper {
    /// Starts fetching at once (and then every period) from `address`.
    pub fn start(address: SocketAddr) -> Scraper {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut counts = Counts::default();
            let mut next = Instant::now();
            while !stopped.load(Ordering::Relaxed) {
                for (path, count) in PATHS.iter().zip(counts.iter_mut()) {
                    count.add(get(address, path, Duration::from_secs(2)));
                }
                next += PERIOD;
                // Sleep in short steps, so that a stop is prompt.
                while !stopped.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    if now >= next {
                        break;
                    }
                    std::thread::sleep(
                        (next - now).min(Duration::from_millis(50)),
                    );
                }
            }
            counts
        });
        Scraper { stop, thread }
    }

    /// Stops the fetches and returns their counts.
    pub fn stop(self) -> Counts {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn the_status_is_read_from_the_first_line() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n\r\n# HELP"), Some(200));
        assert_eq!(parse_status(b"HTTP/1.0 404 Not Found\r\n"), Some(404));
        assert_eq!(parse_status(b"HTTP/1.1 200"), Some(200));
        assert_eq!(parse_status(b""), None);
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_status(b"HTTP/1.1 20 OK\r\n"), None);
    }

    #[test]
    fn counts_are_described_per_path() {
        let counts = [
            Count {
                sent: 5,
                ok: 5,
                ..Count::default()
            },
            Count {
                sent: 5,
                ok: 0,
                other: 4,
                failed: 1,
            },
        ];
        assert_eq!(
            describe(&counts),
            "/metrics 5 of 5 answered 200, /api/stats 0 of 5 answered 200 \
             (4 another status, 1 no answer)"
        );
        assert_eq!(counts[0].plus(counts[1]).sent, 10);
    }

    /// A server on a free port answering `/metrics` 200 and anything
    /// else 404, for `n` requests.
    fn server(n: usize) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let address = listener.local_addr().expect("bound");
        std::thread::spawn(move || {
            for stream in listener.incoming().take(n) {
                let mut stream = stream.expect("accepted");
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n")
                    && stream.read(&mut byte).unwrap_or(0) == 1
                {
                    head.push(byte[0]);
                }
                let answer = if head.starts_with(b"GET /metrics ") {
                    "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nx 1"
                } else {
                    "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
                };
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        address
    }

    #[test]
    fn a_scraper_fetches_both_paths_at_once_and_counts_the_answers() {
        let address = server(2);
        let scraper = Scraper::start(address);
        std::thread::sleep(Duration::from_millis(300));
        let counts = scraper.stop();
        let sent: Vec<(u64, u64, u64)> =
            counts.iter().map(|c| (c.sent, c.ok, c.other)).collect();
        assert_eq!(sent, [(1, 1, 0), (1, 0, 1)]);
        // Nothing listening: counted as no answer, not an error.
        let closed = {
            let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
            listener.local_addr().expect("bound")
        };
        assert_eq!(get(closed, "/metrics", Duration::from_secs(1)), None);
    }
}
