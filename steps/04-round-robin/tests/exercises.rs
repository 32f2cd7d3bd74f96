//! The exercise of step 04's chapter. `cargo test` leaves it out
//! (ignored); `scripts/exercise.sh 04-next-backend` runs it, and it fails
//! until the exercise is done.

mod common;

use common::step_in_front_of;
use dummy_servers::testing::RunningBackend;
use lab_common::testing::http::fresh_client;

/// One backend of three is stopped: every client must still be served,
/// by the next backend in the rotation when its turn's dial fails.
#[tokio::test]
#[ignore = "exercise 04-next-backend: scripts/exercise.sh 04-next-backend"]
async fn a_stopped_backend_fails_no_client() {
    let mut backends = RunningBackend::start_many(3).await;
    let stopped = backends.remove(1);
    let step =
        step_in_front_of(&[backends[0].addr, stopped.addr, backends[1].addr])
            .await;
    stopped.stop().await;
    let url = format!("http://{}/", step.addr);
    for client in 1..=6 {
        let answer = fresh_client().get(&url).send().await;
        assert!(
            answer.is_ok(),
            "client {client} of 6 got no answer: its turn fell on the \
             stopped backend, and the step gave up instead of dialling \
             the next one"
        );
    }
}
