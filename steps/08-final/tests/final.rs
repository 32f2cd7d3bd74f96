//! Step 08 as a client sees it: plain and TLS backends in one rotation,
//! with TLS at the front on and off, certificates made for the test.

use std::net::SocketAddr;

use dummy_servers::testing::{RunningBackend, backend_list};
use lab_common::testing::http::{
    check_download, check_upload, echo_with, fresh_client, raw_exchange,
    who_answers_with,
};
use lab_common::testing::{
    RunningBinary, RunningStep, TestCerts, check_missing_certificates,
    run_to_end,
};
use step_08_final::{BackendTrust, Server, run};

const BINARY: &str = env!("CARGO_BIN_EXE_08-final");
const MIB: u64 = 1024 * 1024;

/// A backend and how the balancer should reach it.
struct Backend {
    running: RunningBackend,
    tls: bool,
}

impl Backend {
    async fn plain() -> Backend {
        let running = RunningBackend::start().await;
        Backend {
            running,
            tls: false,
        }
    }

    async fn tls(certs: &TestCerts) -> Backend {
        let running = RunningBackend::start_tls(certs.server_config()).await;
        Backend { running, tls: true }
    }

    /// `127.0.0.1:PORT` or `tls://127.0.0.1:PORT`.
    fn server(&self) -> String {
        let scheme = if self.tls { "tls://" } else { "" };
        format!("{scheme}{}", self.running.addr)
    }
}

/// Plain, TLS, plain, TLS: every kind of neighbour in the rotation.
async fn mixed_backends(certs: &TestCerts) -> Vec<Backend> {
    vec![
        Backend::plain().await,
        Backend::tls(certs).await,
        Backend::plain().await,
        Backend::tls(certs).await,
    ]
}

async fn step_in_front_of(
    backends: &[Backend],
    certs: &TestCerts,
    tls_front: bool,
) -> RunningStep {
    let servers: Vec<Server> = backends
        .iter()
        .map(|backend| backend.server().parse().unwrap())
        .collect();
    let front_tls = tls_front.then(|| certs.server_config());
    let backend_trust = BackendTrust::Verify(certs.client_config());
    RunningStep::start(move |listener, shutdown| {
        run(listener, servers, front_tls, Some(backend_trust), shutdown)
    })
    .await
}

/// The client and base URL for a step at `addr`, TLS at the front or not.
fn client_and_base(
    addr: SocketAddr,
    certs: &TestCerts,
    tls_front: bool,
) -> (reqwest::Client, String) {
    if tls_front {
        let base = format!("https://127.0.0.1:{}", addr.port());
        (certs.https_client(), base)
    } else {
        (fresh_client(), format!("http://{addr}"))
    }
}

/// Two rounds through the rotation: each backend answers in turn, and
/// over TLS exactly when it is a `tls://` server.
async fn check_mixed_rotation(tls_front: bool) {
    let certs = TestCerts::new();
    let backends = mixed_backends(&certs).await;
    let step = step_in_front_of(&backends, &certs, tls_front).await;
    let (client, base) = client_and_base(step.addr, &certs, tls_front);
    for round in 0..2 {
        for backend in &backends {
            let echo = echo_with(&client, &format!("{base}/")).await;
            assert_eq!(echo["backend"], backend.running.name(), "{round}");
            assert_eq!(echo["tls"], backend.tls, "{round}");
        }
    }
}

#[tokio::test]
async fn plain_and_tls_backends_answer_in_turn_behind_a_tls_front() {
    check_mixed_rotation(true).await;
}

#[tokio::test]
async fn plain_and_tls_backends_answer_in_turn_behind_a_plain_front() {
    check_mixed_rotation(false).await;
}

#[tokio::test]
async fn sixteen_mib_each_way_arrive_intact_through_both_kinds() {
    let certs = TestCerts::new();
    let backends = vec![Backend::tls(&certs).await, Backend::plain().await];
    let step = step_in_front_of(&backends, &certs, true).await;
    let (client, base) = client_and_base(step.addr, &certs, true);
    // Up to the TLS backend, then the plain one; down the same way.
    check_upload(&client, &base, 16 * MIB).await;
    check_upload(&client, &base, 16 * MIB).await;
    check_download(&client, &base, 16 * MIB).await;
    check_download(&client, &base, 16 * MIB).await;
}

#[tokio::test]
async fn a_tls_backend_from_another_ca_is_refused_and_insecure_uses_it() {
    let certs = TestCerts::new();
    let other_ca = TestCerts::new();
    let backends = vec![Backend::tls(&other_ca).await];
    let step = step_in_front_of(&backends, &certs, false).await;
    let url = format!("http://{}/", step.addr);
    let refused = lab_common::testing::deadline(
        "request",
        fresh_client().get(&url).send(),
    )
    .await;
    assert!(refused.is_err(), "{refused:?}");

    let servers = vec![backends[0].server().parse().unwrap()];
    let insecure = RunningStep::start(move |listener, shutdown| {
        run(
            listener,
            servers,
            None,
            Some(BackendTrust::Insecure),
            shutdown,
        )
    })
    .await;
    let url = format!("http://{}/", insecure.addr);
    let answered = who_answers_with(&fresh_client(), &url).await;
    assert_eq!(answered, backends[0].running.name());
}

#[tokio::test]
async fn plain_http_at_a_tls_front_fails_and_the_next_client_is_served() {
    let certs = TestCerts::new();
    let backends = mixed_backends(&certs).await;
    let step = step_in_front_of(&backends, &certs, true).await;
    let request = b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n";
    let answer = raw_exchange(step.addr, request, false).await;
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
    let (client, base) = client_and_base(step.addr, &certs, true);
    let answered = who_answers_with(&client, &format!("{base}/")).await;
    assert_eq!(answered, backends[1].running.name());
}

#[tokio::test]
async fn tls_backends_without_a_way_to_check_them_are_refused_at_start() {
    let listener = lab_common::testing::listener().await;
    let servers = vec!["tls://127.0.0.1:4445".parse().unwrap()];
    let result = run(listener, servers, None, None, std::future::pending())
        .await
        .unwrap_err();
    assert!(result.to_string().contains("--ca"), "{result}");
}

fn binary_args(backends: &[Backend], extra: &[String]) -> Vec<String> {
    let list = backend_list(backends.iter().map(Backend::server));
    let mut args = vec![
        "--listen".to_owned(),
        "127.0.0.1:0".into(),
        "--backends".into(),
        list,
    ];
    args.extend_from_slice(extra);
    args
}

#[tokio::test]
async fn the_binary_balances_a_mix_behind_a_tls_front() {
    let certs = TestCerts::new();
    let backends = mixed_backends(&certs).await;
    let mut extra = vec!["--tls-front".to_owned()];
    extra.extend(certs.all_flags());
    let mut step =
        RunningBinary::start(BINARY, &binary_args(&backends, &extra)).await;
    let (client, base) = client_and_base(step.addr, &certs, true);
    for backend in &backends {
        let answered = who_answers_with(&client, &format!("{base}/")).await;
        assert_eq!(answered, backend.running.name());
    }
    step.wait_for_stderr(&format!("-> backend {}: ", backends[0].running.addr))
        .await;
    step.wait_for_stderr(&format!(
        "-> backend tls://{} (certificate: checked): ",
        backends[1].running.addr
    ))
    .await;
}

#[tokio::test]
async fn the_binary_needs_no_certificates_for_plain_on_both_sides() {
    let backends = vec![Backend::plain().await, Backend::plain().await];
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("nothing-here.crt").display().to_string();
    let extra = [
        "--cert".to_owned(),
        nowhere.clone(),
        "--key".into(),
        nowhere.clone(),
        "--ca".into(),
        nowhere,
    ];
    let step =
        RunningBinary::start(BINARY, &binary_args(&backends, &extra)).await;
    let url = format!("http://{}/", step.addr);
    for backend in &backends {
        let answered = who_answers_with(&fresh_client(), &url).await;
        assert_eq!(answered, backend.running.name());
    }
}

#[tokio::test]
async fn a_missing_certificate_file_is_named_and_it_exits() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("nothing-here.crt");
    let path = nowhere.to_str().unwrap();
    let certless = [
        // TLS at the front, no certificate.
        vec!["--tls-front", "--backends", "127.0.0.1:4444"],
        // A TLS backend, no CA.
        vec!["--backends", "tls://127.0.0.1:4445"],
    ];
    for mut args in certless {
        args.extend(["--cert", path, "--key", path, "--ca", path]);
        args.extend(["--listen", "127.0.0.1:0"]);
        check_missing_certificates(BINARY, &args, &nowhere).await;
    }
}

#[tokio::test]
async fn a_server_with_an_unknown_scheme_is_a_clear_error() {
    let (code, _, stderr) =
        run_to_end(BINARY, &["--backends", "https://127.0.0.1:4445"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("unknown scheme `https://`"), "{stderr}");
}
