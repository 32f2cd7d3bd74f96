//! Step 07 as a client sees it: CAs made for the test, real TLS backends
//! (some with certificates the balancer must refuse), the step on
//! 127.0.0.1:0, HTTPS clients that trust only the test CA.

use std::net::SocketAddr;
use std::path::PathBuf;

use dummy_servers::testing::{RunningBackend, addrs, backend_list};
use lab_common::testing::http::{
    check_download, check_upload, echo_with, https_url, who_answers_with,
};
use lab_common::testing::{
    RunningBinary, RunningStep, TestCerts, check_missing_certificates,
    deadline, host_ports, run_to_end,
};
use step_07_tls_back::{BackendTrust, run};

const BINARY: &str = env!("CARGO_BIN_EXE_07-tls-back");
const MIB: u64 = 1024 * 1024;

/// The certificates of one test: the lab-like set the balancer and the
/// good backends use, one signed by another CA, and one signed by a CA
/// the balancer trusts but made for another name.
struct Certs {
    lab: TestCerts,
    other_ca: TestCerts,
    other_name: TestCerts,
    /// The lab CA and other_name's CA in one file: trusting both leaves
    /// other_name's backend with nothing wrong but its name.
    ca_bundle: PathBuf,
}

impl Certs {
    fn new() -> Certs {
        let lab = TestCerts::new();
        let other_ca = TestCerts::new();
        let other_name = TestCerts::for_names(&["other.test"]);
        let ca_bundle = lab.dir().join("bundle.crt");
        let bundle = [lab.ca_path(), other_name.ca_path()]
            .map(|path| std::fs::read_to_string(path).unwrap())
            .concat();
        std::fs::write(&ca_bundle, bundle).unwrap();
        Certs {
            lab,
            other_ca,
            other_name,
            ca_bundle,
        }
    }

    fn verify(&self) -> BackendTrust {
        let config = lab_common::tls::client_config(&self.ca_bundle).unwrap();
        BackendTrust::Verify(config)
    }
}

async fn tls_backends(certs: &TestCerts, count: usize) -> Vec<RunningBackend> {
    let mut backends = Vec::new();
    for _ in 0..count {
        backends.push(RunningBackend::start_tls(certs.server_config()).await);
    }
    backends
}

async fn step_in_front_of(
    backends: &[SocketAddr],
    certs: &Certs,
    backend_trust: BackendTrust,
) -> RunningStep {
    let backends = host_ports(backends);
    let tls = certs.lab.server_config();
    RunningStep::start(move |listener, shutdown| {
        run(listener, backends, tls, backend_trust, shutdown)
    })
    .await
}

/// GET through the balancer; Err when the connection closed on us.
async fn try_get(
    client: &reqwest::Client,
    url: &str,
) -> Result<reqwest::Response, reqwest::Error> {
    deadline("request", client.get(url).send()).await
}

#[tokio::test]
async fn verified_tls_backends_answer_in_turn() {
    let certs = Certs::new();
    let backends = tls_backends(&certs.lab, 3).await;
    let step =
        step_in_front_of(&addrs(&backends), &certs, certs.verify()).await;
    let client = certs.lab.https_client();
    let mut answered = Vec::new();
    for _ in 0..6 {
        let echo = echo_with(&client, &https_url(step.addr)).await;
        assert_eq!(echo["tls"], true, "the backend was reached over TLS");
        answered.push(echo["backend"].as_str().unwrap().to_owned());
    }
    let names: Vec<String> =
        backends.iter().map(RunningBackend::name).collect();
    let expected: Vec<String> = names.iter().chain(&names).cloned().collect();
    assert_eq!(answered, expected);
}

/// A good backend and one serving `bad`'s certificate, in turn: the good
/// one answers, the bad one's client is closed without an answer, and the
/// good one answers the next client.
async fn check_refused(certs: &Certs, bad: &TestCerts) {
    let good = RunningBackend::start_tls(certs.lab.server_config()).await;
    let refused = RunningBackend::start_tls(bad.server_config()).await;
    let step =
        step_in_front_of(&[good.addr, refused.addr], certs, certs.verify())
            .await;
    let client = certs.lab.https_client();
    let url = https_url(step.addr);
    assert_eq!(who_answers_with(&client, &url).await, good.name());
    let closed = try_get(&client, &url).await;
    assert!(closed.is_err(), "{closed:?}");
    assert_eq!(who_answers_with(&client, &url).await, good.name());
}

#[tokio::test]
async fn a_backend_signed_by_another_ca_is_refused() {
    let certs = Certs::new();
    check_refused(&certs, &certs.other_ca).await;
}

#[tokio::test]
async fn a_backend_whose_certificate_names_another_host_is_refused() {
    let certs = Certs::new();
    check_refused(&certs, &certs.other_name).await;
}

#[tokio::test]
async fn insecure_uses_the_backends_it_would_refuse() {
    let certs = Certs::new();
    let foreign =
        RunningBackend::start_tls(certs.other_ca.server_config()).await;
    let misnamed =
        RunningBackend::start_tls(certs.other_name.server_config()).await;
    let step = step_in_front_of(
        &[foreign.addr, misnamed.addr],
        &certs,
        BackendTrust::Insecure,
    )
    .await;
    let client = certs.lab.https_client();
    let url = https_url(step.addr);
    assert_eq!(who_answers_with(&client, &url).await, foreign.name());
    assert_eq!(who_answers_with(&client, &url).await, misnamed.name());
}

#[tokio::test]
async fn a_plain_backend_is_refused_and_the_next_client_is_served() {
    let certs = Certs::new();
    let plain = RunningBackend::start().await;
    let good = RunningBackend::start_tls(certs.lab.server_config()).await;
    let step =
        step_in_front_of(&[plain.addr, good.addr], &certs, certs.verify())
            .await;
    let client = certs.lab.https_client();
    let url = https_url(step.addr);
    let refused = try_get(&client, &url).await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(who_answers_with(&client, &url).await, good.name());
}

#[tokio::test]
async fn sixteen_mib_each_way_arrive_intact() {
    let certs = Certs::new();
    let backends = tls_backends(&certs.lab, 2).await;
    let step =
        step_in_front_of(&addrs(&backends), &certs, certs.verify()).await;
    let base = format!("https://127.0.0.1:{}", step.addr.port());
    check_upload(&certs.lab.https_client(), &base, 16 * MIB).await;
    check_download(&certs.lab.https_client(), &base, 16 * MIB).await;
}

/// `--listen 127.0.0.1:0 --backends A,B --cert .. --key ..` plus `extra`.
fn binary_args(
    certs: &Certs,
    backends: &[SocketAddr],
    extra: &[String],
) -> Vec<String> {
    let list = backend_list(backends.iter());
    let mut args = vec![
        "--listen".to_owned(),
        "127.0.0.1:0".into(),
        "--backends".into(),
        list,
    ];
    args.extend(certs.lab.server_flags());
    args.extend_from_slice(extra);
    args
}

#[tokio::test]
async fn the_binary_verifies_and_says_which_backend_it_refused_and_why() {
    let certs = Certs::new();
    let good = RunningBackend::start_tls(certs.lab.server_config()).await;
    let foreign =
        RunningBackend::start_tls(certs.other_ca.server_config()).await;
    let misnamed =
        RunningBackend::start_tls(certs.other_name.server_config()).await;
    let ca = ["--ca".to_owned(), certs.ca_bundle.display().to_string()];
    let args = binary_args(
        &certs,
        &[good.addr, foreign.addr, misnamed.addr, good.addr],
        &ca,
    );
    let mut step = RunningBinary::start(BINARY, &args).await;
    let client = certs.lab.https_client();
    let url = https_url(step.addr);

    assert_eq!(who_answers_with(&client, &url).await, good.name());
    step.wait_for_stderr(&format!(
        "-> backend {} (certificate: checked): ",
        good.addr
    ))
    .await;
    assert!(try_get(&client, &url).await.is_err());
    step.wait_for_stderr(&format!(
        "-> backend {} (certificate: checked): backend TLS handshake: invalid \
         peer certificate: UnknownIssuer",
        foreign.addr
    ))
    .await;
    assert!(try_get(&client, &url).await.is_err());
    let log = step
        .wait_for_stderr(&format!(
            "-> backend {} (certificate: checked): backend TLS handshake: invalid \
             peer certificate: certificate not valid for name \"127.0.0.1\"",
            misnamed.addr
        ))
        .await;
    assert!(log.contains("other.test"), "{log}");
    assert_eq!(who_answers_with(&client, &url).await, good.name());
    assert!(step.is_running());
}

#[tokio::test]
async fn the_binary_with_insecure_warns_at_start_and_on_every_connection() {
    let certs = Certs::new();
    let foreign =
        RunningBackend::start_tls(certs.other_ca.server_config()).await;
    let args = binary_args(&certs, &[foreign.addr], &["--insecure".into()]);
    let mut step = RunningBinary::start(BINARY, &args).await;
    step.wait_for_stderr("--insecure: backend certificates are NOT CHECKED")
        .await;
    let client = certs.lab.https_client();
    let url = https_url(step.addr);
    assert_eq!(who_answers_with(&client, &url).await, foreign.name());
    step.wait_for_stderr(&format!(
        "-> backend {} (certificate: NOT CHECKED, --insecure)",
        foreign.addr
    ))
    .await;
}

#[tokio::test]
async fn a_missing_certificate_file_is_named_and_it_exits() {
    let certs = Certs::new();
    let missing = certs.lab.dir().join("missing-ca.crt");
    let ca = ["--ca".to_owned(), missing.display().to_string()];
    let backend: SocketAddr = "127.0.0.1:4444".parse().unwrap();
    let args = binary_args(&certs, &[backend], &ca);
    check_missing_certificates(BINARY, &args, &missing).await;
}

#[tokio::test]
async fn a_bad_flag_value_is_a_clear_error() {
    let (code, _, stderr) =
        run_to_end(BINARY, &["--backends", "127.0.0.1:4444,nope"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("`nope` is not HOST:PORT"), "{stderr}");
}
