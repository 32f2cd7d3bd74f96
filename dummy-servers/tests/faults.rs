//! Fault modes as a client sees them: set with `POST /fault/MODE` over
//! HTTP, then real requests over real sockets. A request that must get no
//! answer is proven so by a client that gives up after a few hundred
//! milliseconds, never by sleeping.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use dummy_servers::Fault;
use dummy_servers::testing::RunningBackend;
use lab_common::pattern;
use lab_common::testing::http::{fresh_client, raw_exchange};
use lab_common::testing::{TestCerts, deadline};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;

const BINARY: &str = env!("CARGO_BIN_EXE_dummy-servers");

/// How long a client waits before it calls a request stalled.
const PATIENCE: Duration = Duration::from_millis(300);

/// `POST /fault/MODE`: the status and the text of the answer.
async fn set_fault(addr: SocketAddr, mode: &str) -> (u16, String) {
    send(fresh_client().post(format!("http://{addr}/fault/{mode}"))).await
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    send(fresh_client().get(format!("http://{addr}{path}"))).await
}

async fn send(request: reqwest::RequestBuilder) -> (u16, String) {
    deadline("request", async {
        let response = request.send().await.expect("an answer comes");
        let status = response.status().as_u16();
        (status, response.text().await.expect("the answer is text"))
    })
    .await
}

/// Whether a GET of `path` gets no answer within [`PATIENCE`].
async fn gets_no_answer_in_time(addr: SocketAddr, path: &str) -> bool {
    let client = reqwest::Client::builder()
        .timeout(PATIENCE)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    match client.get(format!("http://{addr}{path}")).send().await {
        Ok(response) => panic!("GET {path} answered: {response:?}"),
        Err(err) => err.is_timeout(),
    }
}

/// Sends `request` on a new connection and reads to the end: the answer,
/// or the error the read ended with (a reset is not a clean close).
async fn exchange(
    addr: SocketAddr,
    request: &[u8],
) -> std::io::Result<Vec<u8>> {
    deadline("exchange", async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(request).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok(answer)
    })
    .await
}

#[tokio::test]
async fn a_backend_starts_with_no_fault() {
    let backend = RunningBackend::start().await;
    assert_eq!(get(backend.addr, "/fault").await, (200, "none\n".into()));
}

#[tokio::test]
async fn unhealthy_fails_the_health_check_and_nothing_else() {
    let backend = RunningBackend::start().await;
    let name = backend.name();
    let said = format!("{name}: fault unhealthy (was none)\n");
    assert_eq!(set_fault(backend.addr, "unhealthy").await, (200, said));
    assert_eq!(get(backend.addr, "/fault").await.1, "unhealthy\n");
    assert_eq!(
        get(backend.addr, "/health").await,
        (503, "unhealthy\n".into())
    );
    let (status, echo) = get(backend.addr, "/").await;
    assert_eq!(status, 200);
    assert!(echo.starts_with(&format!("{name} at ")), "{echo}");

    let said = format!("{name}: fault none (was unhealthy)\n");
    assert_eq!(set_fault(backend.addr, "none").await, (200, said));
    assert_eq!(get(backend.addr, "/health").await, (200, "ok\n".into()));
}

#[tokio::test]
async fn stall_reads_every_request_and_never_answers() {
    let backend = RunningBackend::start().await;
    set_fault(backend.addr, "stall").await;
    assert!(gets_no_answer_in_time(backend.addr, "/").await);
    assert!(gets_no_answer_in_time(backend.addr, "/health").await);
    // The fault routes still answer.
    assert_eq!(get(backend.addr, "/fault").await, (200, "stall\n".into()));

    // A 32 MiB upload goes through (more than the sockets' buffers hold,
    // so the backend read it) and no answer comes.
    const LEN: usize = 32 << 20;
    let mut stalled = TcpStream::connect(backend.addr).await.unwrap();
    let head = format!(
        "POST /echo HTTP/1.1\r\nhost: {}\r\ncontent-length: {LEN}\r\n\r\n",
        backend.addr
    );
    deadline("upload to a stalled backend", async {
        stalled.write_all(head.as_bytes()).await.unwrap();
        stalled.write_all(&pattern::bytes(0, LEN)).await.unwrap();
    })
    .await;
    let mut byte = [0; 1];
    let waited = tokio::time::timeout(PATIENCE, stalled.read(&mut byte)).await;
    assert!(waited.is_err(), "an answer came: {waited:?}");

    // Leaving the mode closes the stalled connections, still unanswered,
    // and the requests that follow are served (none of the stalled ones
    // was counted).
    set_fault(backend.addr, "none").await;
    let mut rest = Vec::new();
    let end = deadline("stalled connection to close", async {
        stalled.read_to_end(&mut rest).await
    })
    .await;
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    assert!(end.is_ok(), "{end:?}");
    let (status, echo) = get(backend.addr, "/").await;
    assert_eq!(status, 200);
    assert!(echo.contains(", call #1\n"), "{echo}");
}

#[tokio::test]
async fn slow_delays_every_answer_but_the_fault_routes() {
    let backend = RunningBackend::start().await;
    set_fault(backend.addr, "slow/300").await;
    for path in ["/", "/health"] {
        let started = Instant::now();
        let (status, _) = get(backend.addr, path).await;
        assert_eq!(status, 200, "{path}");
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(300), "{path} took {took:?}");
    }
    // A minute's delay does not touch the fault routes: a client that
    // waits a few seconds gets them.
    set_fault(backend.addr, "slow/60000").await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let url = format!("http://{}/fault", backend.addr);
    let answer = client.get(&url).send().await.expect("/fault answers");
    assert_eq!(answer.text().await.unwrap(), "slow/60000\n");
    let (status, said) = set_fault(backend.addr, "none").await;
    assert_eq!(status, 200);
    assert!(said.ends_with("fault none (was slow/60000)\n"), "{said}");
}

#[tokio::test]
async fn close_closes_the_connection_without_a_byte() {
    let backend = RunningBackend::start().await;
    set_fault(backend.addr, "close").await;
    for path in ["/", "/health"] {
        // (With `connection: close`, an answer would end in a close too:
        // a backend that answers fails this test at once.)
        let request = format!(
            "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        );
        // A clean close (FIN), as curl's "Empty reply from server" shows,
        // not a reset.
        let answer = exchange(backend.addr, request.as_bytes()).await;
        assert_eq!(answer.expect("a clean close"), b"", "{path}");
    }
    assert_eq!(get(backend.addr, "/fault").await, (200, "close\n".into()));
    set_fault(backend.addr, "none").await;
    assert_eq!(get(backend.addr, "/health").await, (200, "ok\n".into()));
}

#[tokio::test]
async fn a_bad_mode_is_refused_and_changes_nothing() {
    let backend = RunningBackend::start().await;
    set_fault(backend.addr, "unhealthy").await;
    let (status, said) = set_fault(backend.addr, "stalled").await;
    assert_eq!(status, 400);
    assert_eq!(
        said,
        "unknown fault mode \"stalled\": one of none, unhealthy, stall, \
         slow/MS, close\n"
    );
    let (status, said) = set_fault(backend.addr, "slow/later").await;
    assert_eq!(status, 400);
    assert!(said.starts_with("slow/MS wants a number"), "{said}");
    assert_eq!(get(backend.addr, "/fault").await.1, "unhealthy\n");
    // Setting takes a POST.
    assert_eq!(get(backend.addr, "/fault/stall").await.0, 405);
    assert_eq!(get(backend.addr, "/fault").await.1, "unhealthy\n");
}

#[tokio::test]
async fn each_backend_has_its_own_mode() {
    let backends = RunningBackend::start_many(2).await;
    backends[0].set_fault(Fault::Close);
    let request = b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    assert!(
        raw_exchange(backends[0].addr, request, false)
            .await
            .is_empty()
    );
    let (status, echo) = get(backends[1].addr, "/").await;
    assert_eq!(status, 200);
    assert!(echo.starts_with(&backends[1].name()), "{echo}");
}

#[tokio::test]
async fn fault_modes_work_over_tls() {
    let certs = TestCerts::new();
    let backend = RunningBackend::start_tls(certs.server_config()).await;
    let client = certs.https_client();
    let base = format!("https://127.0.0.1:{}", backend.addr.port());
    let said = send(client.post(format!("{base}/fault/close"))).await;
    let expected = format!("{}: fault close (was none)\n", backend.name());
    assert_eq!(said, (200, expected));
    let closed = deadline("request", client.get(&base).send()).await;
    assert!(closed.is_err(), "{closed:?}");
    let shown = send(client.get(format!("{base}/fault"))).await;
    assert_eq!(shown, (200, "close\n".into()));
}

/// The real binary: modes per backend port, and Ctrl-C stops it with
/// exit status 0, closing what was open (a stalled request gets its
/// connection closed, no answer).
#[tokio::test]
async fn the_binary_takes_modes_per_port_and_stops_on_ctrl_c() {
    let mut child = Command::new(BINARY)
        .args(["--ports", "0,0"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let addrs = deadline("two listening lines", async {
        let mut lines = BufReader::new(stdout).lines();
        let mut addrs = Vec::new();
        while addrs.len() < 2 {
            let line = lines.next_line().await.unwrap().expect("a line");
            // `listening on 127.0.0.1:PORT (backend-PORT)`
            let addr = line.split_whitespace().nth(2).expect("an address");
            addrs.push(addr.parse::<SocketAddr>().expect("an address"));
        }
        addrs
    })
    .await;
    let (stalled, served) = (addrs[0], addrs[1]);
    let said = set_fault(stalled, "stall").await;
    let port = stalled.port();
    assert_eq!(said.1, format!("backend-{port}: fault stall (was none)\n"));
    assert!(gets_no_answer_in_time(stalled, "/").await);
    assert_eq!(get(served, "/health").await, (200, "ok\n".into()));

    let mut open = TcpStream::connect(stalled).await.unwrap();
    open.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let pid = child.id().expect("it runs").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let status = deadline("exit after Ctrl-C", child.wait()).await.unwrap();
    assert_eq!(status.code(), Some(0));
    let mut rest = Vec::new();
    let _ = deadline("closed", open.read_to_end(&mut rest)).await;
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
}
