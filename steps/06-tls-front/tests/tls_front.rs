//! Step 06 as a client sees it: a CA and certificate made for the test,
//! real plain backends, the step on 127.0.0.1:0, HTTPS clients that trust
//! only the test CA, and raw TCP for clients that do not speak TLS.

mod common;

use common::step_in_front_of;
use dummy_servers::testing::{RunningBackend, addrs, backend_list};
use lab_common::testing::http::{
    check_download, check_upload, https_client_builder, https_url,
    raw_exchange, who_answers_with,
};
use lab_common::testing::{
    RunningBinary, TestCerts, check_missing_certificates, deadline, run_to_end,
};

const BINARY: &str = env!("CARGO_BIN_EXE_06-tls-front");
const MIB: u64 = 1024 * 1024;

#[tokio::test]
async fn https_connections_go_to_the_backends_in_turn() {
    let certs = TestCerts::new();
    let backends = RunningBackend::start_many(3).await;
    let step = step_in_front_of(&addrs(&backends), &certs).await;
    let client = certs.https_client();
    let mut answered = Vec::new();
    for _ in 0..6 {
        answered.push(who_answers_with(&client, &https_url(step.addr)).await);
    }
    let names: Vec<String> =
        backends.iter().map(RunningBackend::name).collect();
    let expected: Vec<String> = names.iter().chain(&names).cloned().collect();
    assert_eq!(answered, expected);
}

#[tokio::test]
async fn a_client_that_trusts_another_ca_refuses_the_balancer() {
    let certs = TestCerts::new();
    let backends = RunningBackend::start_many(3).await;
    let step = step_in_front_of(&addrs(&backends), &certs).await;
    let other_ca = TestCerts::new();
    let result = deadline(
        "request",
        other_ca.https_client().get(https_url(step.addr)).send(),
    )
    .await;
    let err = result.expect_err("the balancer's CA is not trusted");
    assert!(format!("{err:?}").contains("UnknownIssuer"), "{err:?}");
    // The balancer goes on serving clients that trust its CA.
    let answered =
        who_answers_with(&certs.https_client(), &https_url(step.addr)).await;
    assert_eq!(answered, backends[1].name());
}

#[tokio::test]
async fn a_name_the_certificate_lacks_is_refused_by_the_client() {
    let certs = TestCerts::new();
    let backends = RunningBackend::start_many(3).await;
    let step = step_in_front_of(&addrs(&backends), &certs).await;
    // other.test resolves to the balancer, but the certificate does not
    // name it.
    let client = https_client_builder(&certs.ca_path())
        .resolve("other.test", step.addr)
        .build()
        .unwrap();
    let url = format!("https://other.test:{}/", step.addr.port());
    let result = deadline("request", client.get(&url).send()).await;
    let err = result.expect_err("the name does not match");
    assert!(format!("{err:?}").contains("NotValidForName"), "{err:?}");
}

#[tokio::test]
async fn plain_http_and_garbage_fail_and_the_next_tls_client_is_served() {
    let certs = TestCerts::new();
    let backends = RunningBackend::start_many(3).await;
    let step = step_in_front_of(&addrs(&backends), &certs).await;

    let request = b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n";
    let answer = raw_exchange(step.addr, request, false).await;
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
    let garbage = [0xff, 0x00, 0x13, 0x37, b'\r', b'\n'];
    let answer = raw_exchange(step.addr, &garbage, true).await;
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");

    // Each failed client used up its turn: the third backend answers.
    let answered =
        who_answers_with(&certs.https_client(), &https_url(step.addr)).await;
    assert_eq!(answered, backends[2].name());
    assert!(!step.is_finished());
}

#[tokio::test]
async fn a_silent_client_does_not_hold_up_the_next_one() {
    let certs = TestCerts::new();
    let backends = RunningBackend::start_many(3).await;
    let step = step_in_front_of(&addrs(&backends), &certs).await;
    // Connects and never starts the handshake.
    let _silent = tokio::net::TcpStream::connect(step.addr).await.unwrap();
    let answered =
        who_answers_with(&certs.https_client(), &https_url(step.addr)).await;
    assert_eq!(answered, backends[1].name());
}

#[tokio::test]
async fn sixteen_mib_each_way_arrive_intact() {
    let certs = TestCerts::new();
    let backends = RunningBackend::start_many(3).await;
    let step = step_in_front_of(&addrs(&backends), &certs).await;
    let base = format!("https://127.0.0.1:{}", step.addr.port());
    check_upload(&certs.https_client(), &base, 16 * MIB).await;
    check_download(&certs.https_client(), &base, 16 * MIB).await;
}

#[tokio::test]
async fn a_dead_backend_fails_its_turn_and_the_next_client_is_served() {
    let certs = TestCerts::new();
    let mut backends = RunningBackend::start_many(3).await;
    let dead = backends.remove(1);
    let step = step_in_front_of(
        &[backends[0].addr, dead.addr, backends[1].addr],
        &certs,
    )
    .await;
    dead.stop().await;

    let client = certs.https_client();
    let url = https_url(step.addr);
    assert_eq!(who_answers_with(&client, &url).await, backends[0].name());
    let result = deadline("request", client.get(&url).send()).await;
    assert!(result.is_err(), "{result:?}");
    assert_eq!(who_answers_with(&client, &url).await, backends[1].name());
}

#[tokio::test]
async fn the_binary_serves_https_and_logs_failed_handshakes() {
    let certs = TestCerts::new();
    let backends = RunningBackend::start_many(3).await;
    let list = backend_list(addrs(&backends).iter());
    let mut args = vec!["--listen", "127.0.0.1:0", "--backends", &list];
    let flags = certs.server_flags();
    args.extend(flags.iter().map(String::as_str));
    let mut step = RunningBinary::start(BINARY, &args).await;

    let client = certs.https_client();
    let url = https_url(step.addr);
    assert_eq!(who_answers_with(&client, &url).await, backends[0].name());
    step.wait_for_stderr(&format!("-> backend {}", backends[0].addr))
        .await;

    let request = b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n";
    raw_exchange(step.addr, request, false).await;
    step.wait_for_stderr(": client TLS handshake: ").await;

    assert_eq!(who_answers_with(&client, &url).await, backends[2].name());
    assert!(step.is_running());
}

#[tokio::test]
async fn a_missing_certificate_file_is_named_and_it_exits() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("server.crt");
    let key = dir.path().join("server.key");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];
    check_missing_certificates(BINARY, &args, &cert).await;
}

#[tokio::test]
async fn a_bad_flag_value_is_a_clear_error() {
    let (code, _, stderr) =
        run_to_end(BINARY, &["--backends", "127.0.0.1:4444,nope"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("`nope` is not HOST:PORT"), "{stderr}");
}
