//! The dummy backends over TLS, as a client sees them: certificates made
//! for the test, real HTTPS clients, raw TCP for the misbehaving ones.

use dummy_servers::testing::RunningBackend;
use lab_common::testing::http::{echo_with, raw_exchange};
use lab_common::testing::{
    RunningBinary, TestCerts, check_missing_certificates, deadline, run_to_end,
};

const BINARY: &str = env!("CARGO_BIN_EXE_dummy-servers");

#[tokio::test]
async fn a_tls_backend_answers_clients_that_trust_its_ca() {
    let certs = TestCerts::new();
    let backend = RunningBackend::start_tls(certs.server_config()).await;
    let url = format!("https://127.0.0.1:{}/", backend.addr.port());
    let echo = echo_with(&certs.https_client(), &url).await;
    assert_eq!(echo["backend"], backend.name());
    assert_eq!(echo["tls"], true);
}

#[tokio::test]
async fn a_plain_backend_says_it_is_not_tls() {
    let backend = RunningBackend::start().await;
    let url = format!("http://{}/", backend.addr);
    let echo =
        echo_with(&lab_common::testing::http::fresh_client(), &url).await;
    assert_eq!(echo["tls"], false);
}

#[tokio::test]
async fn a_client_that_trusts_another_ca_is_refused() {
    let certs = TestCerts::new();
    let other = TestCerts::new();
    let backend = RunningBackend::start_tls(certs.server_config()).await;
    let url = format!("https://127.0.0.1:{}/", backend.addr.port());
    let result =
        deadline("request", other.https_client().get(&url).send()).await;
    let err = result.expect_err("the certificate is not trusted");
    assert!(format!("{err:?}").contains("UnknownIssuer"), "{err:?}");
}

#[tokio::test]
async fn plain_bytes_fail_the_handshake_and_the_next_client_is_served() {
    let certs = TestCerts::new();
    let backend = RunningBackend::start_tls(certs.server_config()).await;
    let answer =
        raw_exchange(backend.addr, b"GET / HTTP/1.1\r\n\r\n", false).await;
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
    // A client that connects and says nothing holds no one else up: its
    // handshake waits in its own task.
    let _silent = tokio::net::TcpStream::connect(backend.addr).await.unwrap();
    let url = format!("https://127.0.0.1:{}/", backend.addr.port());
    let echo = echo_with(&certs.https_client(), &url).await;
    assert_eq!(echo["backend"], backend.name());
}

#[tokio::test]
async fn the_binary_serves_tls_with_the_given_certificate() {
    let certs = TestCerts::new();
    let mut args = vec!["--ports".to_owned(), "0".into(), "--tls".into()];
    args.extend(certs.server_flags());
    let mut backend = RunningBinary::start(BINARY, &args).await;
    backend.wait_for_stdout(", TLS)").await;
    let url = format!("https://localhost:{}/", backend.addr.port());
    let echo = echo_with(&certs.https_client(), &url).await;
    assert_eq!(echo["tls"], true);
}

#[tokio::test]
async fn tls_ports_must_be_among_the_ports() {
    let (code, _, stderr) =
        run_to_end(BINARY, &["--ports", "4444", "--tls-ports", "4445"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("4445 is not one of --ports"), "{stderr}");
}

#[tokio::test]
async fn missing_certificates_name_the_script_that_makes_them() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("server.crt");
    let path = missing.to_str().unwrap();
    let args = ["--ports", "0", "--tls", "--cert", path, "--key", path];
    check_missing_certificates(BINARY, &args, &missing).await;
}
