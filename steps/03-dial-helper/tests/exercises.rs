//! The exercise of step 03's chapter. `cargo test` leaves it out
//! (ignored); `scripts/exercise.sh 03-dial-timeout` runs it, and it fails
//! until the exercise is done.

use std::time::Duration;

use lab_common::HostPort;
use lab_common::testing::RunningStep;
use step_03_dial_helper::run;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// How long the client waits for the step to give up on the backend.
const PATIENCE: Duration = Duration::from_secs(10);

/// A backend that never answers a dial: its listener's queue of
/// connections not yet accepted holds one, and one is already in it, so
/// the kernel drops every further SYN and the dialler's connect waits
/// for an answer that never comes (some two minutes of retries, on
/// Linux). Keep both values alive for as long as the backend is needed.
async fn backend_that_never_answers() -> (tokio::net::TcpListener, TcpStream) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let filler = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    (listener, filler)
}

/// The step must give up dialling such a backend within a few seconds
/// and close the client's connection, not leave it waiting.
#[tokio::test]
#[ignore = "exercise 03-dial-timeout: scripts/exercise.sh 03-dial-timeout"]
async fn a_backend_that_never_answers_does_not_hold_the_client() {
    let (backend, _filler) = backend_that_never_answers().await;
    let to = HostPort::from(backend.local_addr().unwrap());
    let step = RunningStep::start(move |listener, shutdown| {
        run(listener, to, shutdown)
    })
    .await;
    let mut client = TcpStream::connect(step.addr).await.unwrap();
    let request = format!("GET / HTTP/1.1\r\nhost: {}\r\n\r\n", step.addr);
    client.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(PATIENCE, async {
        // A reset counts as closed too.
        let _ = client.read_to_end(&mut answer).await;
    })
    .await;
    assert!(
        closed.is_ok(),
        "the client was still waiting after {PATIENCE:?}: dial waits as \
         long as the kernel retries its SYN, with no timeout of its own"
    );
}
