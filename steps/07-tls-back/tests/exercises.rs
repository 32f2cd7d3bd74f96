//! The exercise of step 07's chapter. `cargo test` leaves it out
//! (ignored); `scripts/exercise.sh 07-backend-name` runs it, and it fails
//! until the exercise is done.

use dummy_servers::testing::{RunningBackend, backend_list};
use lab_common::testing::http::https_url;
use lab_common::testing::{RunningBinary, TestCerts, deadline, run_to_end};

const BINARY: &str = env!("CARGO_BIN_EXE_07-tls-back");

/// The balancer's flags: its own certificate, `backends`, the CA that
/// signed theirs, and `--backend-name name`.
fn flags(
    front: &TestCerts,
    backends: &[RunningBackend],
    back: &TestCerts,
    name: &str,
) -> Vec<String> {
    let mut args = vec![
        "--listen".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--backends".to_owned(),
        backend_list(backends.iter().map(|backend| backend.addr)),
        "--ca".to_owned(),
        back.ca_path().display().to_string(),
        "--backend-name".to_owned(),
        name.to_owned(),
    ];
    args.extend(front.server_flags());
    args
}

/// Backends dialled by address whose certificates name a service,
/// `backends.test`, and not the address: with `--backend-name
/// backends.test` the balancer checks their certificates against that
/// name, and they answer; with another name they are still refused.
#[tokio::test]
#[ignore = "exercise 07-backend-name: scripts/exercise.sh 07-backend-name"]
async fn backends_are_checked_against_the_name_given() {
    let (code, help, _) = run_to_end(BINARY, &["--help"]).await;
    assert_eq!(code, 0, "07-tls-back --help failed");
    assert!(
        help.contains("--backend-name"),
        "07-tls-back has no --backend-name flag yet: add it to Args in \
         main.rs, and check the backends' certificates against that name"
    );

    let front = TestCerts::new();
    let back = TestCerts::for_names(&["backends.test"]);
    let mut backends = Vec::new();
    for _ in 0..2 {
        backends.push(RunningBackend::start_tls(back.server_config()).await);
    }

    let args = flags(&front, &backends, &back, "backends.test");
    let step = RunningBinary::start(BINARY, &args).await;
    let client = front.https_client();
    let url = https_url(step.addr);
    // Two requests: each backend's turn.
    for _ in &backends {
        let answered = deadline("request", client.get(&url).send()).await;
        assert!(
            answered.is_ok_and(|answer| answer.status().is_success()),
            "with --backend-name backends.test, a backend whose certificate \
             names backends.test was refused: check its certificate against \
             that name, not against the address dialled"
        );
    }

    let args = flags(&front, &backends, &back, "other.test");
    let step = RunningBinary::start(BINARY, &args).await;
    let refused = deadline("request", client.get(https_url(step.addr)).send())
        .await
        .is_err();
    assert!(
        refused,
        "with --backend-name other.test, a backend whose certificate names \
         backends.test was let through: the certificate must still be \
         checked, against the name given"
    );
}
