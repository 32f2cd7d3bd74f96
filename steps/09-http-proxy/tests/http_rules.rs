//! The rules of HTTP that a proxy in the middle must keep: one valid
//! `Host` (or the absolute form's authority), an answer to a half-closed
//! request, a bounded request head, no tunnels for `CONNECT`, one answer
//! to `Expect: 100-continue`, `Forwarded` appended to, and the limits on
//! how long a backend, a client and an idle pooled connection may take.
//! Each is checked over a real socket: raw bytes where a client library
//! would not send what a careless or hostile client sends, real backends
//! behind the proxy.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dummy_servers::testing::RunningBackend;
use dummy_servers::{Echo, MAX_DELAY_MS};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use lab_common::testing::http::{
    fresh_client, post_echo_then_half_close, raw_exchange,
};
use lab_common::testing::{RunningBinary, deadline, listener, run_to_end};
use lab_common::{duration, pattern};
use step_09_http_proxy::{Config, MAX_HEAD_BYTES};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Barrier, watch};
use tokio::task::{JoinHandle, JoinSet};

mod common;
use common::{proxy, proxy_with};

const BINARY: &str = env!("CARGO_BIN_EXE_09-http-proxy");
const MIB: usize = 1024 * 1024;

/// How long a test waits for something that should come at once (or
/// after a timeout of a few hundred milliseconds) before it calls the
/// proxy silent. Far below the deadline, so a failure says what is
/// missing instead of "no result within 60s".
const PATIENCE: Duration = Duration::from_secs(5);

/// One response as it came off the socket.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// The status line and the headers, as text.
    head: String,
    body: Vec<u8>,
}

impl Answer {
    /// The first value of header `name` (lower case).
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    /// What the backend saw, from its JSON echo.
    fn echo(&self) -> Echo {
        assert_eq!(self.status, 200, "{}", self.text());
        serde_json::from_slice(&self.body).expect("the echo is JSON")
    }

    fn text(&self) -> String {
        format!("{}{}", self.head, String::from_utf8_lossy(&self.body))
    }
}

/// A client that writes raw bytes and reads answers one at a time.
struct RawClient {
    stream: TcpStream,
    /// Bytes read but not yet part of an answer.
    unread: Vec<u8>,
}

impl RawClient {
    async fn connect(addr: SocketAddr) -> RawClient {
        RawClient {
            stream: TcpStream::connect(addr).await.expect("connect"),
            unread: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .await
            .expect("the request is written");
    }

    /// Reads more bytes; false when the proxy has closed (or reset).
    async fn read_more(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(read) => {
                self.unread.extend_from_slice(&chunk[..read]);
                true
            }
        }
    }

    /// The next answer (a 100 Continue counts as one), or None if the
    /// connection closes first or nothing comes within [`PATIENCE`].
    /// Every answer the proxy sends here carries a Content-Length.
    async fn answer(&mut self) -> Option<Answer> {
        let read = async {
            let head_end = loop {
                if let Some(at) = find(&self.unread, b"\r\n\r\n") {
                    break at + 4;
                }
                if !self.read_more().await {
                    return None;
                }
            };
            let head =
                String::from_utf8_lossy(&self.unread[..head_end]).into_owned();
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|code| code.parse().ok())
                .expect("a status line");
            let mut answer = Answer {
                status,
                head,
                body: Vec::new(),
            };
            let length: usize = answer
                .header("content-length")
                .map_or(0, |len| len.parse().expect("a length"));
            while self.unread.len() < head_end + length {
                if !self.read_more().await {
                    return None;
                }
            }
            answer.body = self.unread[head_end..head_end + length].to_vec();
            self.unread.drain(..head_end + length);
            Some(answer)
        };
        tokio::time::timeout(PATIENCE, read).await.ok().flatten()
    }

    /// Whether the proxy closes the connection, with no byte more, within
    /// [`PATIENCE`].
    async fn closes_silently(&mut self) -> bool {
        let closed = tokio::time::timeout(PATIENCE, self.read_more()).await;
        matches!(closed, Ok(false)) && self.unread.is_empty()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Sends `request` on a new connection; its first answer.
async fn exchange(addr: SocketAddr, request: &str) -> Option<Answer> {
    let mut client = RawClient::connect(addr).await;
    client.send(request.as_bytes()).await;
    client.answer().await
}

/// The call number the backend gives the next request it sees: 1 if no
/// request reached it before.
async fn next_call(proxy: SocketAddr) -> u64 {
    let request = format!(
        "GET /?format=json HTTP/1.1\r\nhost: {proxy}\r\n\
         connection: close\r\n\r\n"
    );
    let answer = exchange(proxy, &request).await.expect("an answer");
    answer.echo().call
}

// 1. Host (RFC 9112 §3.2) and the absolute form (§3.2.2).

#[tokio::test]
async fn a_missing_doubled_or_malformed_host_gets_a_400() {
    deadline("test", async {
        let backend = RunningBackend::start().await;
        let proxy = proxy(&[backend.addr]).await;
        let refused = [
            ("two Host headers", "host: a.example\r\nhost: b.example\r\n"),
            ("a space", "host: a b\r\n"),
            ("user info", "host: user@a.example\r\n"),
            ("a slash", "host: a.example/x\r\n"),
            ("an empty Host", "host: \r\n"),
            ("a port that is not one", "host: a.example:http\r\n"),
            ("no Host in HTTP/1.1", ""),
        ];
        for (what, host_lines) in refused {
            let request = format!(
                "GET /?format=json HTTP/1.1\r\n{host_lines}\
                 connection: close\r\n\r\n"
            );
            let answer = exchange(proxy.addr, &request).await;
            let answer = answer.unwrap_or_else(|| panic!("{what}: no answer"));
            assert_eq!(answer.status, 400, "{what}: {}", answer.text());
        }
        // None of them reached the backend.
        assert_eq!(next_call(proxy.addr).await, 1);

        // HTTP/1.0 came before Host, and is still served without one.
        let old = "GET /?format=json HTTP/1.0\r\n\r\n";
        let answer = exchange(proxy.addr, old).await.expect("an answer");
        assert_eq!(answer.echo().call, 2);
    })
    .await
}

#[tokio::test]
async fn an_absolute_form_target_names_the_host_the_backend_sees() {
    deadline("test", async {
        let backend = RunningBackend::start().await;
        let proxy = proxy(&[backend.addr]).await;
        let request = "GET http://a.example/p?format=json HTTP/1.1\r\n\
                       host: b.example\r\nconnection: close\r\n\r\n";
        let echo = exchange(proxy.addr, request).await.expect("answer").echo();
        assert_eq!(echo.uri, "/p?format=json");
        assert_eq!(echo.header("host"), Some("a.example"));
        assert_eq!(echo.header("x-forwarded-host"), Some("a.example"));
    })
    .await
}

// 2. Half-close: a request that arrived whole gets its answer.

#[tokio::test]
async fn a_half_closed_request_is_answered_100_times_out_of_100() {
    deadline("test", async {
        let backend = RunningBackend::start().await;
        let proxy = proxy(&[backend.addr]).await;
        let request = format!("GET / HTTP/1.1\r\nhost: {}\r\n\r\n", proxy.addr);
        let mut answered = 0;
        for _ in 0..100 {
            let answer =
                raw_exchange(proxy.addr, request.as_bytes(), true).await;
            if answer.starts_with(b"HTTP/1.1 200 OK\r\n") {
                answered += 1;
            }
        }
        assert_eq!(answered, 100, "half-closed requests answered");
    })
    .await
}

#[tokio::test]
async fn sixty_four_mib_echoed_through_a_half_close_come_back_whole() {
    let len = 64 * MIB;
    let backend = RunningBackend::start().await;
    let proxy = proxy(&[backend.addr]).await;
    let (head, body) = post_echo_then_half_close(proxy.addr, len).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body.len(), len, "bytes echoed");
    let at = pattern::first_mismatch(0, &body);
    assert_eq!(at, None, "the echo differs from what was sent");
}

// 3. The size of a request head.

#[tokio::test]
async fn a_head_past_16_kib_gets_a_431_even_before_it_ends() {
    deadline("test", async {
        let backend = RunningBackend::start().await;
        let proxy = proxy(&[backend.addr]).await;
        let head_of = |total: usize| {
            let start = format!(
                "GET /?format=json HTTP/1.1\r\nhost: {}\r\n\
                 connection: close\r\nx-filler: ",
                proxy.addr
            );
            let filler = "x".repeat(total - start.len() - 4);
            format!("{start}{filler}\r\n\r\n")
        };
        let within = exchange(proxy.addr, &head_of(MAX_HEAD_BYTES - 1)).await;
        assert_eq!(within.expect("an answer").status, 200);

        let past = exchange(proxy.addr, &head_of(MAX_HEAD_BYTES + 1024)).await;
        assert_eq!(past.expect("an answer").status, 431);

        // A head that never ends is cut at the limit, not held until the
        // header timeout: memory per slow client stays at 16 KiB.
        let unfinished = head_of(MAX_HEAD_BYTES * 6);
        let unfinished = unfinished.trim_end();
        let mut client = RawClient::connect(proxy.addr).await;
        client.send(unfinished.as_bytes()).await;
        let answer = client.answer().await;
        assert_eq!(answer.expect("an answer before the head ends").status, 431);
    })
    .await
}

// 4. CONNECT.

#[tokio::test]
async fn connect_gets_a_405_that_says_what_is_allowed() {
    deadline("test", async {
        let backend = RunningBackend::start().await;
        let proxy = proxy(&[backend.addr]).await;
        let mut client = RawClient::connect(proxy.addr).await;
        let connect = "CONNECT a.example:443 HTTP/1.1\r\n\
                       host: a.example:443\r\n\r\n";
        client.send(connect.as_bytes()).await;
        let answer = client.answer().await.expect("an answer to CONNECT");
        assert_eq!(answer.status, 405, "{}", answer.text());
        let allow = answer.header("allow").expect("an Allow header");
        assert!(allow.contains("GET"), "{allow}");
        assert!(!allow.contains("CONNECT"), "{allow}");
        // Bytes meant for a tunnel may follow: the proxy closes instead
        // of reading them as a request.
        assert_eq!(answer.header("connection"), Some("close"));
        assert!(client.closes_silently().await);
        assert_eq!(next_call(proxy.addr).await, 1, "CONNECT reached it");
    })
    .await
}

// 5. Expect: 100-continue.

#[tokio::test]
async fn expect_100_continue_is_answered_once_and_not_passed_on() {
    deadline("test", async {
        let backend = RunningBackend::start().await;
        let proxy = proxy(&[backend.addr]).await;
        let mut client = RawClient::connect(proxy.addr).await;
        let head = format!(
            "POST /?format=json HTTP/1.1\r\nhost: {}\r\ncontent-length: 5\r\n\
             expect: 100-continue\r\nconnection: close\r\n\r\n",
            proxy.addr
        );
        client.send(head.as_bytes()).await;
        let go_on = client.answer().await.expect("a 100 Continue");
        assert_eq!(go_on.status, 100, "{}", go_on.text());
        client.send(b"hello").await;
        let answer = client.answer().await.expect("the answer");
        let echo = answer.echo();
        assert_eq!(echo.header("expect"), None, "the backend was asked too");
        assert!(client.closes_silently().await, "a second answer came");
    })
    .await
}

// 6. Forwarded and X-Real-IP.

#[tokio::test]
async fn forwarded_gets_this_hop_appended_and_x_real_ip_is_dropped() {
    deadline("test", async {
        let backend = RunningBackend::start().await;
        let proxy = proxy(&[backend.addr]).await;
        let request = format!(
            "GET /?format=json HTTP/1.1\r\nhost: {}\r\n\
             forwarded: for=203.0.113.7;proto=https\r\n\
             forwarded: for=198.51.100.1\r\n\
             x-real-ip: 203.0.113.7\r\nconnection: close\r\n\r\n",
            proxy.addr
        );
        let answer = exchange(proxy.addr, &request).await.expect("answer");
        let echo = answer.echo();
        let forwarded = format!(
            "for=203.0.113.7;proto=https, for=198.51.100.1, \
             for=127.0.0.1;host=\"{}\";proto=http",
            proxy.addr
        );
        assert_eq!(echo.header("forwarded"), Some(forwarded.as_str()));
        assert_eq!(echo.header("x-real-ip"), None);
    })
    .await
}

// 7. Timeouts: a backend's answer (504) and a client's request head (408).

#[tokio::test]
async fn a_backend_that_does_not_answer_in_time_gets_a_504() {
    deadline("test", async {
        let backend = RunningBackend::start().await;
        let timeout = Duration::from_millis(300);
        let proxy = proxy_with(&[backend.addr], |config| {
            config.response_timeout = timeout;
        })
        .await;
        let request = format!(
            "GET /delay/{MAX_DELAY_MS} HTTP/1.1\r\nhost: {}\r\n\r\n",
            proxy.addr
        );
        let mut client = RawClient::connect(proxy.addr).await;
        let start = Instant::now();
        client.send(request.as_bytes()).await;
        let answer = client.answer().await.expect("an answer");
        let waited = start.elapsed();
        assert_eq!(answer.status, 504, "{}", answer.text());
        assert!(waited >= timeout, "answered after {waited:?}");
        let text = answer.text();
        assert!(text.contains(&backend.addr.to_string()), "{text}");
        // A request without a body: the connection goes on.
        assert_eq!(next_call(proxy.addr).await, 1);
    })
    .await
}

/// A backend that reads a request's whole body before it answers, as one
/// that parses a form or a JSON document does: `got N bytes`, or, for
/// `/never`, no answer at all once the body is in.
async fn whole_body_backend() -> (SocketAddr, JoinHandle<()>) {
    let listener = listener().await;
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service_fn(|request: Request<Incoming>| async move {
                if request.uri().path() == "/stall" {
                    // Reads the head, never the body.
                    std::future::pending::<()>().await;
                }
                let never = request.uri().path() == "/never";
                let body = request.into_body().collect().await?.to_bytes();
                if never {
                    std::future::pending::<()>().await;
                }
                let text = format!("got {} bytes\n", body.len());
                Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(
                    text,
                ))))
            });
            tokio::spawn(
                http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    (addr, task)
}

/// POSTs a 10-byte body to `path` through `proxy` the slow way: 5 bytes,
/// a pause, then the other 5. The answer, and how long after the last
/// byte it came.
async fn slow_upload(
    proxy: SocketAddr,
    path: &str,
    pause: Duration,
) -> (Answer, Duration) {
    let mut client = RawClient::connect(proxy).await;
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {proxy}\r\ncontent-length: 10\r\n\r\n"
    );
    client.send(head.as_bytes()).await;
    client.send(b"hello").await;
    tokio::time::sleep(pause).await;
    // Not `send`: a proxy that has already answered (a 504, wrongly) may
    // have closed, and its answer is what the test should show.
    let _ = client.stream.write_all(b"world").await;
    let sent = Instant::now();
    let answer = client.answer().await.expect("an answer");
    (answer, sent.elapsed())
}

#[tokio::test]
async fn a_slow_upload_does_not_count_against_the_backend() {
    deadline("test", async {
        let (backend, _task) = whole_body_backend().await;
        let timeout = Duration::from_millis(300);
        let proxy = proxy_with(&[backend], |config| {
            config.response_timeout = timeout;
        })
        .await;
        // The client pauses for longer than the backend may take, and the
        // backend cannot answer before the body is in: not its fault.
        let (answer, _) = slow_upload(proxy.addr, "/", timeout * 2).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.body, b"got 10 bytes\n");

        // Once the whole body has gone on, the backend's time runs.
        let (answer, after) =
            slow_upload(proxy.addr, "/never", timeout * 2).await;
        assert_eq!(answer.status, 504, "{}", answer.text());
        assert!(after >= timeout, "a 504 {after:?} after the body");

        // A backend that stops reading the body halfway: its time runs
        // while the proxy waits on it, and it gets a 504 too.
        let (mut from_proxy, mut to_proxy) =
            TcpStream::connect(proxy.addr).await.unwrap().into_split();
        let head = format!(
            "POST /stall HTTP/1.1\r\nhost: {}\r\ncontent-length: {}\r\n\r\n",
            proxy.addr,
            64 << 20
        );
        to_proxy.write_all(head.as_bytes()).await.unwrap();
        // Far more than the sockets between here and the backend hold;
        // once the 504 is in, writing may fail, which is fine.
        let uploading = tokio::spawn(async move {
            let chunk = vec![b'x'; 1 << 20];
            for _ in 0..64 {
                if to_proxy.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        });
        let mut answer = vec![0; 12];
        from_proxy.read_exact(&mut answer).await.unwrap();
        assert_eq!(answer, b"HTTP/1.1 504");
        uploading.abort();
    })
    .await
}

#[tokio::test]
async fn a_late_request_head_gets_a_408_and_an_idle_connection_just_closes() {
    deadline("test", async {
        let backend = RunningBackend::start().await;
        let proxy = proxy_with(&[backend.addr], |config| {
            config.header_timeout = Duration::from_millis(300);
        })
        .await;

        // A head that started and stalled.
        let mut late = RawClient::connect(proxy.addr).await;
        late.send(b"GET / HTTP/1.1\r\nhost: a.example\r\n").await;
        let answer = late.answer().await.expect("a 408 before closing");
        assert_eq!(answer.status, 408, "{}", answer.text());
        assert!(late.closes_silently().await);

        // A kept-alive connection with no new request: closed, no 408.
        let mut idle = RawClient::connect(proxy.addr).await;
        let request = format!("GET / HTTP/1.1\r\nhost: {}\r\n\r\n", proxy.addr);
        idle.send(request.as_bytes()).await;
        assert_eq!(idle.answer().await.expect("an answer").status, 200);
        assert!(idle.closes_silently().await, "{:?}", idle.unread);
    })
    .await
}

#[tokio::test]
async fn the_limits_are_flags_with_stated_defaults() {
    let (code, help, stderr) = run_to_end(BINARY, &["--help"]).await;
    assert_eq!(code, 0, "{stderr}");
    // What --help says after `[default: ` in the lines of `flag`.
    let stated_default = |flag: &str| {
        let (_, after_flag) = help
            .split_once(flag)
            .unwrap_or_else(|| panic!("{flag} is not in --help:\n{help}"));
        let next_flag = after_flag.find("--").unwrap_or(after_flag.len());
        let (_, default) = after_flag[..next_flag]
            .split_once("[default: ")
            .unwrap_or_else(|| panic!("{flag} states no default:\n{help}"));
        default.split(']').next().unwrap_or_default().to_owned()
    };
    let defaults = Config::new(Vec::new());
    for (flag, default) in [
        ("--response-timeout", defaults.response_timeout),
        ("--header-timeout", defaults.header_timeout),
        ("--pool-idle-timeout", defaults.pool_idle_timeout),
    ] {
        // Compared as durations: `60s` and `1m` say the same.
        let stated = stated_default(flag);
        assert_eq!(
            duration::parse(&stated),
            Ok(default),
            "{flag} states {stated}, not {}",
            duration::show(default)
        );
    }
    let stated = stated_default("--pool-max-idle");
    assert_eq!(stated, defaults.pool_max_idle_per_backend.to_string());

    // The real binary at a few hundred milliseconds.
    deadline("test", async {
        let backend = RunningBackend::start().await;
        let mut proxy = RunningBinary::start(
            BINARY,
            &[
                "--listen",
                "127.0.0.1:0",
                "--backends",
                &backend.addr.to_string(),
                "--response-timeout",
                "300ms",
            ],
        )
        .await;
        let request = format!(
            "GET /delay/{MAX_DELAY_MS} HTTP/1.1\r\nhost: {}\r\n\r\n",
            proxy.addr
        );
        let answer = exchange(proxy.addr, &request).await.expect("answer");
        assert_eq!(answer.status, 504, "{}", answer.text());
        let logged = format!(
            "backend too slow (method: GET) (path: /delay/{MAX_DELAY_MS})"
        );
        proxy.wait_for_stderr(&logged).await;
    })
    .await;

    let (code, _, stderr) =
        run_to_end(BINARY, &["--response-timeout", "soon"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("`soon`"), "{stderr}");
}

// 8. The pool of idle backend connections.

/// A backend that counts its open connections, and holds every answer
/// until `together` requests are waiting: the proxy then has to open
/// `together` connections to it at once.
async fn counting_backend(
    together: usize,
) -> (SocketAddr, watch::Receiver<usize>, JoinHandle<()>) {
    let listener = listener().await;
    let addr = listener.local_addr().unwrap();
    let (open, watch_open) = watch::channel(0usize);
    let open = Arc::new(open);
    let barrier = Arc::new(Barrier::new(together));
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            open.send_modify(|count| *count += 1);
            let (open, barrier) = (Arc::clone(&open), Arc::clone(&barrier));
            tokio::spawn(async move {
                let service = service_fn(move |_request| {
                    let barrier = Arc::clone(&barrier);
                    async move {
                        barrier.wait().await;
                        let body = Full::new(Bytes::from_static(b"ok\n"));
                        Ok::<_, Infallible>(Response::new(body))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                open.send_modify(|count| *count -= 1);
            });
        }
    });
    (addr, watch_open, task)
}

/// Sends `count` requests through `proxy` at once, each on its own
/// client connection, and checks they are all answered.
async fn requests_at_once(proxy: SocketAddr, count: usize) {
    let mut requests = JoinSet::new();
    for _ in 0..count {
        let client = fresh_client();
        let url = format!("http://{proxy}/");
        requests.spawn(async move { client.get(url).send().await });
    }
    while let Some(done) = requests.join_next().await {
        let response = done.unwrap().expect("an answer");
        assert_eq!(response.status(), 200);
    }
}

/// Waits (at most [`PATIENCE`]) until `open` satisfies `wanted`.
async fn open_becomes(
    open: &mut watch::Receiver<usize>,
    wanted: impl FnMut(&usize) -> bool,
) -> Result<(), usize> {
    let waited = tokio::time::timeout(PATIENCE, open.wait_for(wanted))
        .await
        .is_ok_and(|found| found.is_ok());
    if waited { Ok(()) } else { Err(*open.borrow()) }
}

#[tokio::test]
async fn the_pool_keeps_no_more_idle_connections_than_its_bound() {
    deadline("test", async {
        let (backend, mut open, _task) = counting_backend(50).await;
        let proxy = proxy_with(&[backend], |config| {
            config.pool_max_idle_per_backend = 8;
        })
        .await;
        requests_at_once(proxy.addr, 50).await;
        // All 50 were open at once; once answered, 8 stay for later.
        let settled = open_becomes(&mut open, |&count| count == 8).await;
        assert_eq!(settled, Ok(()), "backend connections still open");
    })
    .await
}

#[tokio::test]
async fn an_idle_pooled_connection_closes_after_the_idle_timeout() {
    deadline("test", async {
        let (backend, mut open, _task) = counting_backend(5).await;
        let timeout = Duration::from_millis(300);
        let proxy = proxy_with(&[backend], |config| {
            config.pool_idle_timeout = timeout;
        })
        .await;
        requests_at_once(proxy.addr, 5).await;
        let start = Instant::now();
        let closed = open_becomes(&mut open, |&count| count == 0).await;
        assert_eq!(closed, Ok(()), "backend connections still open");
        // Not before: a proxy that kept no connection open (no pool)
        // would have closed them all as their answers ended.
        let idle = start.elapsed();
        assert!(idle >= timeout * 2 / 3, "closed {idle:?} after the answers");
    })
    .await
}
