//! The exercise of the chapter "lb — timeouts limits and draining".

use std::time::Duration;

use balancer::backend::Address;
use balancer::config::{BackendConfig, CheckKind, Config};
use lab_common::testing::{RunningStep, listener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `idle` says that no byte either way for that long closes a
/// connection; `half_closed` shortens the silence allowed once one side
/// has finished. Set longer than `idle`, it must not lengthen it: a
/// client that finished its side, before a backend that never answers,
/// is let go after `idle` all the same.
#[tokio::test]
#[ignore = "exercise lb-half-closed: scripts/exercise.sh lb-half-closed"]
async fn a_half_closed_connection_is_let_go_after_idle() {
    // A backend that accepts and never answers, nor closes.
    let backend = listener().await;
    let address: Address = backend
        .local_addr()
        .expect("bound")
        .to_string()
        .parse()
        .expect("a socket address parses");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = backend.accept().await {
            held.push(stream);
        }
    });
    let mut config = Config {
        backends: vec![BackendConfig::at(address)],
        ..Config::default()
    };
    config.health.kind = CheckKind::Off;
    config.timeouts.idle = Duration::from_millis(200);
    config.timeouts.half_closed = Duration::from_secs(30);
    let lb = RunningStep::start(move |listener, shutdown| {
        balancer::run(listener, config, shutdown)
    })
    .await;

    let mut client = TcpStream::connect(lb.addr).await.expect("lb accepts");
    client.write_all(b"GET 100\n").await.expect("sent");
    client
        .shutdown()
        .await
        .expect("the client finishes its side");
    let mut byte = [0u8; 1];
    let ended =
        tokio::time::timeout(Duration::from_secs(5), client.read(&mut byte))
            .await;
    assert!(
        matches!(ended, Ok(Ok(0) | Err(_))),
        "5 s after the client finished its side, with idle = 200ms and no \
         byte since, lb still holds the connection: once one side has \
         finished, the relay waits for half_closed (30s) alone, though no \
         byte either way for idle should end a connection in any state"
    );
}
