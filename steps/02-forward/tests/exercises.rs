//! The exercise of step 02's chapter. `cargo test` leaves it out
//! (ignored); `scripts/exercise.sh 02-proxy-header` runs it, and it fails
//! until the exercise is done.

use dummy_servers::testing::RunningBackend;
use lab_common::HostPort;
use lab_common::testing::{RunningStep, deadline};
use step_02_forward::run;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The backend expects a PROXY v1 header at the start of the connection
/// and shows the client it names in its answer; the step must send that
/// header, naming the real client, before the client's own bytes.
#[tokio::test]
#[ignore = "exercise 02-proxy-header: scripts/exercise.sh 02-proxy-header"]
async fn the_backend_learns_who_the_client_is() {
    let backend = RunningBackend::start_proxied(None).await;
    let to = HostPort::from(backend.addr);
    let step = RunningStep::start(move |listener, shutdown| {
        run(listener, to, shutdown)
    })
    .await;
    let answer = deadline("a request through the step", async {
        let mut client = TcpStream::connect(step.addr).await.unwrap();
        let me = client.local_addr().unwrap();
        let request = format!(
            "GET / HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
            step.addr
        );
        client.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let _ = client.read_to_end(&mut answer).await;
        (me, String::from_utf8_lossy(&answer).into_owned())
    })
    .await;
    let (me, answer) = answer;
    assert!(
        !answer.is_empty(),
        "the backend hung up without an answer: it expects a PROXY header \
         first, and the step sent it the client's bytes only"
    );
    let told = format!("PROXY v1: client {me}, to {}", step.addr);
    assert!(
        answer.contains(&told),
        "the backend's answer does not name the client and the address it \
         dialled (\"PROXY v1: client <client>, to <balancer>\"):\n{answer}"
    );
}
