//! Step 09 as a client sees it: real backends, the step on 127.0.0.1:0,
//! real HTTP clients. Some tests put step 04 in the same place, to show
//! what a layer-4 balancer does not do.

use std::net::SocketAddr;

use bytes::Bytes;
use dummy_servers::Echo;
use dummy_servers::testing::{RunningBackend, addrs, backend_list};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{SendRequest, handshake};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use lab_common::testing::http::{
    check_download, check_upload, echo_with, fresh_client, raw_exchange,
};
use lab_common::testing::{
    RunningBinary, RunningStep, deadline, host_ports, listener, run_to_end,
};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

mod common;
use common::proxy;

const BINARY: &str = env!("CARGO_BIN_EXE_09-http-proxy");
const MIB: u64 = 1024 * 1024;

/// Step 04, the layer-4 round robin, in the same place: for contrast.
async fn step_04_in_front_of(backends: &[SocketAddr]) -> RunningStep {
    let backends = host_ports(backends);
    RunningStep::start(move |listener, shutdown| {
        step_04_round_robin::run(listener, backends, shutdown)
    })
    .await
}

/// An HTTP/1.1 client over exactly one TCP connection: every request it
/// sends shares that connection, by construction (a pooled client might
/// open a second one behind our back).
struct OneConnection {
    addr: SocketAddr,
    sender: SendRequest<Empty<Bytes>>,
    connection: JoinHandle<hyper::Result<()>>,
}

impl OneConnection {
    async fn open(addr: SocketAddr) -> OneConnection {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (sender, connection) =
            handshake(TokioIo::new(stream)).await.expect("handshake");
        OneConnection {
            addr,
            sender,
            connection: tokio::spawn(connection),
        }
    }

    /// A GET of `path` with `host` set and the extra `headers`.
    fn get(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Request<Empty<Bytes>> {
        let mut request = Request::get(path)
            .header("host", self.addr.to_string())
            .header("accept", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(Empty::new()).unwrap()
    }

    /// Sends `request` on this connection; the status and the whole body.
    async fn send(
        &mut self,
        request: Request<Empty<Bytes>>,
    ) -> (StatusCode, Bytes) {
        self.sender
            .ready()
            .await
            .expect("the connection is still open");
        let response = self
            .sender
            .send_request(request)
            .await
            .expect("an answer on this connection");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("the whole body")
            .to_bytes();
        (status, body)
    }

    /// GET `/` on this connection; what the backend that answered saw.
    async fn echo(&mut self) -> Echo {
        let request = self.get("/", &[]);
        let (status, body) = self.send(request).await;
        assert_eq!(status, StatusCode::OK, "{body:?}");
        serde_json::from_slice(&body).expect("the echo is JSON")
    }

    /// Whether the connection is still open (its task has not ended).
    fn is_open(&self) -> bool {
        !self.connection.is_finished() && !self.sender.is_closed()
    }
}

#[tokio::test]
async fn the_backend_learns_the_client_and_what_it_asked_for() {
    deadline("test", async {
        let backends = RunningBackend::start_many(3).await;
        let proxy = proxy(&addrs(&backends)).await;
        let url = format!("http://{}/", proxy.addr);
        let echo = echo_with(&fresh_client(), &url).await;
        let header = |name: &str| {
            echo["headers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|pair| pair[0] == name)
                .map(|pair| pair[1].as_str().unwrap().to_owned())
        };
        let host = proxy.addr.to_string();
        assert_eq!(header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
        assert_eq!(header("x-forwarded-host"), Some(host.clone()));
        assert_eq!(header("x-forwarded-proto").as_deref(), Some("http"));
        // The Host the client sent reaches the backend unchanged.
        assert_eq!(header("host"), Some(host));
    })
    .await
}

#[tokio::test]
async fn a_layer_4_balancer_adds_no_forwarded_headers() {
    deadline("test", async {
        let backends = RunningBackend::start_many(3).await;
        let step_04 = step_04_in_front_of(&addrs(&backends)).await;
        let url = format!("http://{}/", step_04.addr);
        let echo = echo_with(&fresh_client(), &url).await;
        let names: Vec<&str> = echo["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pair| pair[0].as_str().unwrap())
            .collect();
        assert!(
            !names.iter().any(|name| name.starts_with("x-forwarded-")),
            "step 04 changed the request: {names:?}"
        );
    })
    .await
}

#[tokio::test]
async fn requests_on_one_connection_rotate_here_but_not_at_step_04() {
    deadline("test", async {
        let backends = RunningBackend::start_many(3).await;
        let names: Vec<String> =
            backends.iter().map(RunningBackend::name).collect();

        let proxy = proxy(&addrs(&backends)).await;
        let mut connection = OneConnection::open(proxy.addr).await;
        let mut answered = Vec::new();
        for _ in 0..6 {
            answered.push(connection.echo().await.backend);
        }
        let in_turn: Vec<String> =
            names.iter().chain(&names).cloned().collect();
        assert_eq!(answered, in_turn, "step 09, one connection");
        assert!(connection.is_open());

        let step_04 = step_04_in_front_of(&addrs(&backends)).await;
        let mut connection = OneConnection::open(step_04.addr).await;
        let mut answered = Vec::new();
        for _ in 0..3 {
            answered.push(connection.echo().await.backend);
        }
        assert_eq!(answered, vec![names[0].clone(); 3], "step 04");
    })
    .await
}

#[tokio::test]
async fn hop_by_hop_headers_stop_at_the_proxy_and_the_rest_goes_on() {
    deadline("test", async {
        let backend = RunningBackend::start().await;
        let proxy = proxy(&[backend.addr]).await;
        let mut connection = OneConnection::open(proxy.addr).await;
        let mut request = connection.get(
            "/some/path?x=1&y=two",
            &[
                ("connection", "keep-alive, x-secret"),
                ("x-secret", "only for the proxy"),
                ("keep-alive", "timeout=5"),
                ("proxy-connection", "keep-alive"),
                ("te", "trailers"),
                ("trailer", "x-checksum"),
                ("proxy-authorization", "Basic cHJveHk6c2VjcmV0"),
                ("x-ordinary", "passed on"),
                ("x-forwarded-for", "203.0.113.7"),
            ],
        );
        *request.method_mut() = hyper::Method::PATCH;
        let (status, body) = connection.send(request).await;
        assert_eq!(status, StatusCode::OK);
        let echo: Echo = serde_json::from_slice(&body).unwrap();

        assert_eq!(echo.method, "PATCH");
        assert_eq!(echo.uri, "/some/path?x=1&y=two");
        for dropped in [
            "connection",
            "x-secret",
            "keep-alive",
            "proxy-connection",
            "te",
            "trailer",
            "proxy-authorization",
        ] {
            assert_eq!(echo.header(dropped), None, "{dropped} reached it");
        }
        assert_eq!(echo.header("x-ordinary"), Some("passed on"));
        assert_eq!(
            echo.header("x-forwarded-for"),
            Some("203.0.113.7, 127.0.0.1")
        );
    })
    .await
}

#[tokio::test]
async fn sixty_four_mib_each_way_arrive_intact() {
    deadline("test", async {
        let backends = RunningBackend::start_many(3).await;
        let proxy = proxy(&addrs(&backends)).await;
        let base = format!("http://{}", proxy.addr);
        check_upload(&fresh_client(), &base, 64 * MIB).await;
        check_download(&fresh_client(), &base, 64 * MIB).await;
    })
    .await
}

#[tokio::test]
async fn a_dead_backend_gets_a_502_and_the_connection_goes_on() {
    deadline("test", async {
        let mut backends = RunningBackend::start_many(3).await;
        let dead = backends.remove(1);
        let proxy =
            proxy(&[backends[0].addr, dead.addr, backends[1].addr]).await;
        let dead_addr = dead.stop().await;

        let mut connection = OneConnection::open(proxy.addr).await;
        assert_eq!(connection.echo().await.backend, backends[0].name());

        let request = connection.get("/", &[]);
        let (status, body) = connection.send(request).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(body.contains(&dead_addr.to_string()), "body: {body}");

        // The same connection: the 502 did not close it.
        assert!(connection.is_open());
        assert_eq!(connection.echo().await.backend, backends[1].name());
        assert_eq!(connection.echo().await.backend, backends[0].name());
        assert!(!proxy.is_finished());
    })
    .await
}

#[tokio::test]
async fn a_body_sent_to_a_dead_backend_gets_a_502_that_closes() {
    deadline("test", async {
        let dead = RunningBackend::start().await;
        let live = RunningBackend::start().await;
        let proxy = proxy(&[dead.addr, live.addr]).await;
        let dead_addr = dead.stop().await;

        // The whole request in one write; `raw_exchange` then reads until
        // the proxy closes the connection.
        let request = format!(
            "POST /echo HTTP/1.1\r\nhost: {}\r\ncontent-length: 11\r\n\r\n\
             hello proxy",
            proxy.addr
        );
        let answer = raw_exchange(proxy.addr, request.as_bytes(), false).await;
        let answer = String::from_utf8(answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 502 "), "{answer}");
        assert!(answer.contains("connection: close\r\n"), "{answer}");
        assert!(answer.contains(&dead_addr.to_string()), "{answer}");

        let url = format!("http://{}/", proxy.addr);
        let echo = echo_with(&fresh_client(), &url).await;
        assert_eq!(echo["backend"], live.name());
    })
    .await
}

#[tokio::test]
async fn a_backend_that_hangs_up_mid_request_gets_a_502() {
    deadline("test", async {
        // Reads the start of a request, then closes without answering.
        let hang_up = listener().await;
        let hang_up_addr = hang_up.local_addr().unwrap();
        let _hang_up_task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = hang_up.accept().await {
                let mut start = [0u8; 16];
                let _ = stream.read(&mut start).await;
            }
        });
        let backend = RunningBackend::start().await;
        let proxy = proxy(&[hang_up_addr, backend.addr]).await;

        let mut connection = OneConnection::open(proxy.addr).await;
        let request = connection.get("/", &[]);
        let (status, body) = connection.send(request).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(body.contains(&hang_up_addr.to_string()), "body: {body}");
        assert_eq!(connection.echo().await.backend, backend.name());
    })
    .await
}

/// The largest resident set the process has had so far, in bytes
/// (`VmHWM`, its high-water mark, from /proc).
fn peak_resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("/proc/PID/status is readable on Linux");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
        .expect("VmHWM is in the status file");
    kib * 1024
}

#[tokio::test]
async fn the_binary_balances_per_request_and_logs_each_one() {
    deadline("test", async {
        let backends = RunningBackend::start_many(3).await;
        let list = backend_list(addrs(&backends).iter());
        let mut proxy = RunningBinary::start(
            BINARY,
            &["--listen", "127.0.0.1:0", "--backends", &list],
        )
        .await;
        let mut connection = OneConnection::open(proxy.addr).await;
        for backend in &backends {
            let echo = connection.echo().await;
            assert_eq!(echo.backend, backend.name());
            assert_eq!(echo.header("x-forwarded-for"), Some("127.0.0.1"));
        }
        let log = proxy
            .wait_for_stderr(&format!(
                " -> backend {}: forwarded (method: GET) (path: /) \
                 (status: 200)",
                backends[2].addr
            ))
            .await;
        // Every line names its client through the connection's span.
        let forwarded = log
            .lines()
            .filter(|line| line.contains("client 127.0.0.1:"))
            .filter(|line| line.contains(": forwarded (method: GET)"));
        assert_eq!(forwarded.count(), 3, "{log}");
        assert!(proxy.is_running());
    })
    .await
}

#[tokio::test]
async fn the_binary_streams_64_mib_each_way_in_little_memory() {
    deadline("test", async {
        let backend = RunningBackend::start().await;
        let proxy = RunningBinary::start(
            BINARY,
            &[
                "--listen",
                "127.0.0.1:0",
                "--backends",
                &backend.addr.to_string(),
            ],
        )
        .await;
        let pid = proxy.id().expect("the proxy is running");
        let at_start = peak_resident_bytes(pid);

        let base = format!("http://{}", proxy.addr);
        check_upload(&fresh_client(), &base, 64 * MIB).await;
        check_download(&fresh_client(), &base, 64 * MIB).await;

        // Held in memory, one 64 MiB body would push the peak past 64
        // MiB; streamed, the proxy holds a few buffers per connection.
        let peak = peak_resident_bytes(pid);
        eprintln!(
            "proxy peak RSS: {:.1} MiB at start, {:.1} MiB after 64 MiB \
             up and 64 MiB down",
            at_start as f64 / MIB as f64,
            peak as f64 / MIB as f64
        );
        assert!(peak < 32 * MIB, "peak RSS {peak} bytes");
    })
    .await
}

#[tokio::test]
async fn the_defaults_are_the_article_port_and_three_backends() {
    let (code, help, stderr) = run_to_end(BINARY, &["--help"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(help.contains("127.0.0.1:8080"), "{help}");
    assert!(
        help.contains("127.0.0.1:4444,127.0.0.1:4445,127.0.0.1:4446"),
        "{help}"
    );
}

#[tokio::test]
async fn a_bad_flag_value_is_a_clear_error() {
    let (code, _, stderr) =
        run_to_end(BINARY, &["--backends", "127.0.0.1:4444,nope"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("`nope` is not HOST:PORT"), "{stderr}");

    // A host no URI can hold is refused at start, not with a 502 for
    // every request sent to it.
    let (code, stdout, stderr) =
        run_to_end(BINARY, &["--backends", "a/b:80"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("`a/b` is not a host name"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stdout.contains("listening on"), "{stdout}");
}
