//! A client that sends its whole request and then shuts down its write
//! side (a half-close) gets its whole answer, over raw sockets.

use dummy_servers::testing::RunningBackend;
use lab_common::pattern;
use lab_common::testing::http::{post_echo_then_half_close, raw_exchange};
use lab_common::testing::{TestCerts, deadline};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_closed_request_is_answered_100_times_of_100() {
    let backend = RunningBackend::start().await;
    let request = format!("GET / HTTP/1.1\r\nhost: {}\r\n\r\n", backend.addr);
    let mut answered = 0;
    for _ in 0..100 {
        let answer = raw_exchange(backend.addr, request.as_bytes(), true).await;
        let text = String::from_utf8_lossy(&answer);
        if text.starts_with("HTTP/1.1 200 OK") && text.contains(", call #") {
            answered += 1;
        }
    }
    assert_eq!(answered, 100, "half-closed requests answered, of 100");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_echo_after_a_half_close_comes_back_byte_exact() {
    const LEN: usize = 64 << 20;
    let backend = RunningBackend::start().await;
    let (head, body) = post_echo_then_half_close(backend.addr, LEN).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains(&format!("content-length: {LEN}\r\n")),
        "{head}"
    );
    assert_eq!(body.len(), LEN, "echoed length");
    if let Some(at) = pattern::first_mismatch(0, &body) {
        panic!("the echo differs from what was sent at byte {at}");
    }
}

/// The same without a race: the client half-closes only once the answer
/// has begun, so its end-of-stream surely reaches a server that is busy
/// answering (when it comes with the request, whether the server notices
/// it depends on timing).
#[tokio::test]
async fn a_half_close_during_a_download_does_not_cut_it() {
    const LEN: usize = 16 << 20;
    let backend = RunningBackend::start().await;
    let body = deadline("download", async {
        let mut stream = TcpStream::connect(backend.addr).await.unwrap();
        let request = format!(
            "GET /bytes/{LEN} HTTP/1.1\r\nhost: {}\r\n\r\n",
            backend.addr
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::with_capacity(LEN + 1024);
        let head_end = loop {
            let mut buf = [0; 4096];
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before the head: {answer:?}");
            answer.extend_from_slice(&buf[..n]);
            if let Some(at) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
        };
        stream.shutdown().await.unwrap();
        let _ = stream.read_to_end(&mut answer).await;
        answer.split_off(head_end)
    })
    .await;
    assert_eq!(body.len(), LEN, "downloaded length");
    if let Some(at) = pattern::first_mismatch(0, &body) {
        panic!("the download differs from the pattern at byte {at}");
    }
}

#[tokio::test]
async fn a_half_closed_request_over_tls_is_answered() {
    let certs = TestCerts::new();
    let backend = RunningBackend::start_tls(certs.server_config()).await;
    let connector = tokio_rustls::TlsConnector::from(certs.client_config());
    let name =
        tokio_rustls::rustls::pki_types::ServerName::try_from("localhost")
            .unwrap();
    let answer = deadline("TLS exchange", async {
        let tcp = TcpStream::connect(backend.addr).await.unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        tls.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
            .await
            .unwrap();
        // close_notify, then the TCP write side: the TLS half-close.
        tls.shutdown().await.unwrap();
        let mut answer = Vec::new();
        let _ = tls.read_to_end(&mut answer).await;
        answer
    })
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.contains("over TLS, call #1"), "{text}");
}
