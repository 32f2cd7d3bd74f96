//! Certificate rotation (issue 15, criterion 8): `lb` with a TLS front
//! and a client connected to it; a new certificate and key are written
//! over the old files and `lb` is reloaded (`POST /api/reload`
//! in-process, SIGHUP to the real binary). The next client's handshake
//! presents the new certificate (read from the rustls session), a client
//! that trusts only the old CA is refused, and the connection opened
//! before goes on: it sends and receives after the reload. A new
//! certificate whose key does not match is refused, and the old one is
//! still presented.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use balancer::config::FrontTls;
use common::{ControlledLb, HeldClient, named_config};
use dummy_servers::testing::RunningBackend;
use lab_common::certs::{CertSet, LAB_NAMES};
use lab_common::testing::{RunningBinary, tls_connect};
use lab_common::tls::{CA_CERT_FILE, SERVER_CERT_FILE, SERVER_KEY_FILE};
use reqwest::StatusCode;
use rustix::process::Signal;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::CertificateDer;

const LB: &str = env!("CARGO_BIN_EXE_lb");

/// A client's TLS connection to `lb`.
type TlsClient = HeldClient<TlsStream<TcpStream>>;

/// Makes a new CA and server certificate, writes the certificate and key
/// over `dir`'s `server.crt` and `server.key`, and keeps the CA as
/// `ca-NAME.crt`; returns the CA's path and the new certificate.
fn write_certs(dir: &Path, name: &str) -> (PathBuf, CertificateDer<'static>) {
    let names: Vec<String> = LAB_NAMES.iter().map(|&n| n.into()).collect();
    CertSet::generate(&names)
        .and_then(|set| set.write_to(dir))
        .expect("certificates are made and written");
    let ca = dir.join(format!("ca-{name}.crt"));
    std::fs::rename(dir.join(CA_CERT_FILE), &ca).expect("the CA is kept");
    let cert = lab_common::tls::load_certs(&dir.join(SERVER_CERT_FILE))
        .expect("the new certificate reads back")
        .remove(0);
    (ca, cert)
}

/// Opens a TLS connection to `lb` at `addr` trusting only the CA at
/// `ca`: the connection, or why the handshake failed.
async fn connect_tls(
    addr: SocketAddr,
    ca: &Path,
) -> std::io::Result<TlsClient> {
    let config = lab_common::tls::client_config(ca).expect("the CA loads");
    tls_connect(addr, config).await.map(HeldClient::new)
}

/// The certificate `lb` presented to `client`.
fn presented(client: &TlsClient) -> CertificateDer<'static> {
    let (_, session) = client.stream().get_ref();
    session.peer_certificates().expect("a server certificate")[0]
        .clone()
        .into_owned()
}

/// What both tests check around a rotation: `rotate` writes the new
/// files and has `lb` at `addr` reload them.
struct Rotation {
    dir: tempfile::TempDir,
    old_ca: PathBuf,
    old_cert: CertificateDer<'static>,
}

impl Rotation {
    fn new() -> Rotation {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let (old_ca, old_cert) = write_certs(dir.path(), "old");
        Rotation {
            dir,
            old_ca,
            old_cert,
        }
    }

    fn front(&self) -> FrontTls {
        FrontTls {
            cert: self.dir.path().join(SERVER_CERT_FILE),
            key: self.dir.path().join(SERVER_KEY_FILE),
        }
    }

    /// A client connected before the rotation, which has asked once.
    async fn client_before(
        &self,
        addr: SocketAddr,
        backend: &str,
    ) -> TlsClient {
        let mut before = connect_tls(addr, &self.old_ca)
            .await
            .expect("the old certificate is trusted");
        assert_eq!(presented(&before), self.old_cert);
        assert_eq!(before.ask().await.backend, backend);
        before
    }

    /// Writes the new certificate and key over the old files.
    fn write_new(&self) -> (PathBuf, CertificateDer<'static>) {
        write_certs(self.dir.path(), "new")
    }

    /// After the reload: the new certificate for new clients, the old
    /// connection still served.
    async fn check_after(
        &self,
        addr: SocketAddr,
        backend: &str,
        mut before: TlsClient,
        new_ca: &Path,
        new_cert: &CertificateDer<'static>,
    ) {
        let mut after = connect_tls(addr, new_ca)
            .await
            .expect("the new certificate is presented");
        assert_eq!(presented(&after), *new_cert);
        assert_ne!(presented(&after), self.old_cert);
        assert_eq!(after.ask().await.backend, backend);
        let refused = connect_tls(addr, &self.old_ca).await;
        assert!(refused.is_err(), "the old CA still passes");
        // The connection opened before keeps its session, and goes on.
        assert_eq!(presented(&before), self.old_cert);
        for _ in 0..3 {
            assert_eq!(before.ask().await.backend, backend);
        }
    }
}

#[tokio::test]
async fn a_reload_presents_the_new_certificate_and_keeps_old_connections() {
    let backend = RunningBackend::start().await;
    let rotation = Rotation::new();
    let mut config = named_config(&[backend.addr], &["a"]);
    config.tls.front = Some(rotation.front());
    let lb = ControlledLb::start(config).await;
    let before = rotation.client_before(lb.addr, &backend.name()).await;

    let (new_ca, new_cert) = rotation.write_new();
    let (status, changed) = lb.reload().await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    let list = changed["changed"].as_array().expect("a list");
    assert!(
        list.iter().any(|said| said == "front certificate: new"),
        "{changed}"
    );
    rotation
        .check_after(lb.addr, &backend.name(), before, &new_ca, &new_cert)
        .await;
    lb.stop().await;
}

#[tokio::test]
async fn sighup_presents_the_new_certificate_and_keeps_old_connections() {
    let backend = RunningBackend::start().await;
    let rotation = Rotation::new();
    let front = rotation.front();
    let path = rotation.dir.path().join("lb.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\n\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n\
             \n[[backends]]\naddress = \"{}\"\n",
            front.cert.display(),
            front.key.display(),
            backend.addr
        ),
    )
    .expect("the config is written");
    let mut lb =
        RunningBinary::start(LB, &["--config", &path.display().to_string()])
            .await;
    let before = rotation.client_before(lb.addr, &backend.name()).await;

    let (new_ca, new_cert) = rotation.write_new();
    lb.signal(Signal::HUP);
    let log = lb.wait_for_stderr("reloaded: ").await;
    assert!(log.contains("front certificate: new (SIGHUP)"), "{log}");
    rotation
        .check_after(lb.addr, &backend.name(), before, &new_ca, &new_cert)
        .await;
    lb.signal(Signal::TERM);
    assert!(lb.wait().await.success());
}

#[tokio::test]
async fn a_half_written_rotation_is_refused_and_the_old_certificate_stays() {
    let backend = RunningBackend::start().await;
    let rotation = Rotation::new();
    let mut config = named_config(&[backend.addr], &["a"]);
    config.tls.front = Some(rotation.front());
    let lb = ControlledLb::start(config).await;
    let mut before = rotation.client_before(lb.addr, &backend.name()).await;

    // A new certificate, with the old key still in place: they do not
    // match.
    let key = std::fs::read(rotation.front().key).expect("the old key");
    rotation.write_new();
    std::fs::write(rotation.front().key, key).expect("the old key back");
    let (status, refused) = lb.reload().await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let error = refused["error"].as_str().expect("an error message");
    assert!(error.contains(SERVER_CERT_FILE), "{error}");
    // New clients still get the old certificate; old ones go on.
    let mut after = connect_tls(lb.addr, &rotation.old_ca)
        .await
        .expect("the old certificate is still presented");
    assert_eq!(presented(&after), rotation.old_cert);
    assert_eq!(after.ask().await.backend, backend.name());
    assert_eq!(before.ask().await.backend, backend.name());
    drop((before, after));
    lb.stop().await;
}
