//! Step 01 as a client sees it: a raw TCP client and curl-like requests.

use lab_common::testing::http::raw_exchange;
use lab_common::testing::{RunningBinary, RunningStep, run_to_end};
use step_01_ping::{PONG, run};

const BINARY: &str = env!("CARGO_BIN_EXE_01-ping");

#[tokio::test]
async fn answers_pong_to_an_http_request() {
    let step = RunningStep::start(run).await;
    let answer = raw_exchange(
        step.addr,
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        false,
    )
    .await;
    assert_eq!(answer, PONG);
}

#[tokio::test]
async fn answers_a_client_that_closes_its_side_without_a_blank_line() {
    let step = RunningStep::start(run).await;
    let answer = raw_exchange(step.addr, b"ping\n", true).await;
    assert_eq!(answer, PONG);
}

#[tokio::test]
async fn the_binary_prints_the_raw_request() {
    let mut step =
        RunningBinary::start(BINARY, &["--listen", "127.0.0.1:0"]).await;
    let request = b"GET /hello HTTP/1.1\r\nHost: lab\r\nX-Lab: 1\r\n\r\n";
    let answer = raw_exchange(step.addr, request, false).await;
    assert_eq!(answer, PONG);
    let printed = step.wait_for_stdout("X-Lab: 1\\r\\n").await;
    assert!(printed.contains("sent 44 bytes:"), "{printed}");
    assert!(
        printed.contains("  GET /hello HTTP/1.1\\r\\n\n"),
        "{printed}"
    );
}

#[tokio::test]
async fn a_port_in_use_is_a_clear_error() {
    let step = RunningStep::start(run).await;
    let taken = step.addr.to_string();
    let (code, _, stderr) = run_to_end(BINARY, &["--listen", &taken]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {taken}")),
        "{stderr}"
    );
}
