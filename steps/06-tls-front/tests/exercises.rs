//! The exercise of step 06's chapter. `cargo test` leaves it out
//! (ignored); `scripts/exercise.sh 06-handshake-timeout` runs it, and it
//! fails until the exercise is done.

mod common;

use std::time::Duration;

use common::step_in_front_of;
use dummy_servers::testing::{RunningBackend, addrs};
use lab_common::testing::{TestCerts, deadline};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

/// The exercise asks for 5 seconds; the test gives the step this long to
/// let the silent client go.
const PATIENCE: Duration = Duration::from_secs(8);

/// A client that connects and never starts its handshake is let go after
/// a few seconds; a client that finished its handshake before that, and
/// sends its request only after, is still served: the limit is on the
/// handshake alone.
#[tokio::test]
#[ignore = "exercise 06-handshake-timeout: scripts/exercise.sh 06-handshake-timeout"]
async fn a_client_silent_in_its_handshake_is_let_go() {
    let certs = TestCerts::new();
    let backends = RunningBackend::start_many(2).await;
    let step = step_in_front_of(&addrs(&backends), &certs).await;

    // A patient client: its handshake is done, its request comes later.
    let connector = TlsConnector::from(certs.client_config());
    let tcp = TcpStream::connect(step.addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut patient = deadline("handshake", connector.connect(name, tcp))
        .await
        .unwrap();

    // A silent client: it connects and says nothing.
    let mut silent = TcpStream::connect(step.addr).await.unwrap();
    let mut byte = [0u8; 1];
    let waited = tokio::time::timeout(PATIENCE, silent.read(&mut byte)).await;
    assert!(
        waited.is_ok(),
        "a client that never began its TLS handshake was still connected \
         after 8 seconds: proxy waits for the handshake for ever"
    );
    assert!(
        !matches!(waited, Ok(Ok(1))),
        "the silent client was sent a byte instead of being let go"
    );

    // By now the patient client has been connected for 5 seconds or more.
    let request =
        b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n";
    let mut answer = Vec::new();
    let exchange = async {
        patient.write_all(request).await?;
        patient.read_to_end(&mut answer).await
    };
    let _ = deadline("patient client's request", exchange).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "a client that had finished its handshake got no answer after the \
         time limit passed: the limit must cover the \
         handshake alone, not the whole connection"
    );
}
