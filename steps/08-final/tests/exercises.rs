//! The exercise of step 08's chapter. `cargo test` leaves it out
//! (ignored); `scripts/exercise.sh 08-weights` runs it, and it fails
//! until the exercise is done.

use dummy_servers::testing::RunningBackend;
use lab_common::testing::http::{fresh_client, who_answers_with};
use lab_common::testing::{RunningStep, TestCerts};
use step_08_final::{BackendTrust, Server, run};

/// A `tls://` backend written with a weight of 2 and a plain one with
/// none (a weight of 1): in every 3 clients, the first serves 2 and the
/// second 1. The weight is written back in the log's form of a server.
#[tokio::test]
#[ignore = "exercise 08-weights: scripts/exercise.sh 08-weights"]
async fn a_server_of_weight_two_takes_two_turns() {
    let certs = TestCerts::new();
    let heavy = RunningBackend::start_tls(certs.server_config()).await;
    let light = RunningBackend::start().await;

    let written = format!("tls://{}*2", heavy.addr);
    let Ok(heavy_server) = written.parse::<Server>() else {
        panic!(
            "a server written tls://HOST:PORT*2 (a weight of 2) was refused: \
             teach Server's from_str to read a weight after the port"
        );
    };
    assert_eq!(
        heavy_server.to_string(),
        written,
        "a server of weight 2 should be written back as it was given, \
         tls://HOST:PORT*2: see Server's Display"
    );
    let light_server: Server = light.addr.to_string().parse().unwrap();
    assert_eq!(
        light_server.to_string(),
        light.addr.to_string(),
        "a server of weight 1 should be written back without a weight"
    );

    let servers = vec![heavy_server, light_server];
    let trust = BackendTrust::Verify(certs.client_config());
    let step = RunningStep::start(move |listener, shutdown| {
        run(listener, servers, None, Some(trust), shutdown)
    })
    .await;
    let url = format!("http://{}/", step.addr);
    let (mut by_heavy, mut by_light) = (0, 0);
    for _ in 0..6 {
        let answered = who_answers_with(&fresh_client(), &url).await;
        if answered == heavy.name() {
            by_heavy += 1;
        } else if answered == light.name() {
            by_light += 1;
        }
    }
    assert_eq!(
        (by_heavy, by_light),
        (4, 2),
        "of 6 clients, the server of weight 2 served {by_heavy} and the \
         other {by_light}: it should take 2 turns in every 3"
    );
}
