//! `lb` with TLS: at the front, to `tls://` backends, and both, with
//! certificates made for the test; the front's cipher suite and session
//! resumption, as a rustls client sees them.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use balancer::backend::Address;
use balancer::config::{BackendConfig, Config, FrontTls};
use common::{RunningLb, config_for};
use dummy_servers::testing::RunningBackend;
use lab_common::testing::http::{
    check_download, check_upload, https_url, who_answers_with,
};
use lab_common::testing::{TestCerts, deadline, tls_connect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::{CipherSuite, ClientConfig, HandshakeKind};

/// A config whose backends are `tls://` at `addrs`, verified against the
/// CA of `certs`.
fn tls_backends(addrs: &[SocketAddr], certs: &TestCerts) -> Config {
    let mut config = config_for(&[]);
    config.backends = addrs
        .iter()
        .map(|addr| {
            let address: Address = format!("tls://{addr}").parse().unwrap();
            BackendConfig::at(address)
        })
        .collect();
    config.tls.ca = Some(certs.ca_path());
    config
}

fn with_tls_front(mut config: Config, certs: &TestCerts) -> Config {
    config.tls.front = Some(FrontTls {
        cert: certs.cert_path(),
        key: certs.key_path(),
    });
    config
}

#[tokio::test]
async fn tls_at_both_ends_carries_16_mib_each_way_byte_exact() {
    let certs = TestCerts::new();
    let backend = RunningBackend::start_tls(certs.server_config()).await;
    let config = with_tls_front(tls_backends(&[backend.addr], &certs), &certs);
    let lb = RunningLb::start(config).await;
    let client = certs.https_client();
    let base = https_url(lb.addr);
    let base = base.trim_end_matches('/');
    let seen = who_answers_with(&client, &format!("{base}/")).await;
    assert_eq!(seen, backend.name());
    check_download(&client, base, 16 << 20).await;
    check_upload(&client, base, 16 << 20).await;
    lb.stop().await;
}

#[tokio::test]
async fn a_backend_whose_certificate_fails_the_check_is_skipped() {
    let certs = TestCerts::new();
    let stranger = TestCerts::new();
    // The first backend's certificate comes from a CA `lb` does not
    // trust: its handshake fails, and the client moves on to the next.
    let impostor = RunningBackend::start_tls(stranger.server_config()).await;
    let genuine = RunningBackend::start_tls(certs.server_config()).await;
    let config = tls_backends(&[impostor.addr, genuine.addr], &certs);
    let lb = RunningLb::start(config).await;
    let client = lab_common::testing::http::fresh_client();
    for _ in 0..4 {
        let seen =
            who_answers_with(&client, &format!("http://{}/", lb.addr)).await;
        assert_eq!(seen, genuine.name());
    }
    lb.stop().await;
}

#[tokio::test]
async fn clients_that_never_start_their_handshake_take_no_handshake_place() {
    let certs = TestCerts::new();
    let backend = RunningBackend::start().await;
    let mut config = with_tls_front(config_for(&[backend.addr]), &certs);
    config.limits.max_handshakes = 1;
    config.timeouts.tls_handshake = std::time::Duration::from_secs(60);
    let lb = RunningLb::start(config).await;
    // Five clients connect and say nothing, for longer than this test.
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(tokio::net::TcpStream::connect(lb.addr).await.unwrap());
    }
    // The one place is free for a client that does speak: its handshake
    // is not queued behind the silent ones (which would take a minute).
    let client =
        lab_common::testing::http::https_client_builder(&certs.ca_path())
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap();
    let seen = who_answers_with(&client, &https_url(lb.addr)).await;
    assert_eq!(seen, backend.name());
    drop(silent);
    lb.stop().await;
}

/// One client's TLS session with `lb` at `addr`: its cipher suite and
/// whether it resumed an earlier one. The client asks for a page and
/// reads the answer to its end, so that the tickets a TLS 1.3 server
/// sends after the handshake have arrived before the next connection.
async fn session(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
) -> (CipherSuite, HandshakeKind) {
    let mut tls = tls_connect(addr, config.clone()).await.unwrap();
    let mut answer = Vec::new();
    deadline("an answer over TLS", async {
        tls.write_all(
            b"GET / HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n",
        )
        .await?;
        tls.read_to_end(&mut answer).await
    })
    .await
    .unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    let (_, connection) = tls.get_ref();
    (
        connection.negotiated_cipher_suite().unwrap().suite(),
        connection.handshake_kind().unwrap(),
    )
}

#[tokio::test]
async fn a_client_resumes_its_session_and_gets_aes_128_though_it_asks_aes_256_first()
 {
    let certs = TestCerts::new();
    let backend = RunningBackend::start().await;
    let lb =
        RunningLb::start(with_tls_front(config_for(&[backend.addr]), &certs))
            .await;
    // rustls' client asks as OpenSSL's does: AES-256 first.
    let client = certs.client_config();
    assert_eq!(
        client.crypto_provider().cipher_suites[0].suite(),
        CipherSuite::TLS13_AES_256_GCM_SHA384
    );
    let first = session(lb.addr, &client).await;
    assert_eq!(
        first,
        (CipherSuite::TLS13_AES_128_GCM_SHA256, HandshakeKind::Full)
    );
    let again = session(lb.addr, &client).await;
    assert_eq!(again.1, HandshakeKind::Resumed);
    lb.stop().await;
}

#[tokio::test]
async fn with_resumption_off_every_handshake_is_a_full_one() {
    let certs = TestCerts::new();
    let backend = RunningBackend::start().await;
    let mut config = with_tls_front(config_for(&[backend.addr]), &certs);
    config.tls.resumption = false;
    let lb = RunningLb::start(config).await;
    let client = certs.client_config();
    for _ in 0..3 {
        let (_, kind) = session(lb.addr, &client).await;
        assert_eq!(kind, HandshakeKind::Full);
    }
    lb.stop().await;
}
