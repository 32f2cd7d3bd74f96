//! Step 04 as a client sees it: real backends, the step on 127.0.0.1:0,
//! real HTTP and raw TCP clients.

mod common;

use common::step_in_front_of;
use dummy_servers::testing::{RunningBackend, addrs, backend_list};
use lab_common::testing::http::{
    check_big_request, check_download, check_upload, closed_without_answer,
    fresh_client, keep_alive_client, who_answers, who_answers_with,
};
use lab_common::testing::{
    RunningBinary, check_half_close, half_close_backend, run_to_end,
};

const BINARY: &str = env!("CARGO_BIN_EXE_04-round-robin");
const MIB: u64 = 1024 * 1024;

#[tokio::test]
async fn connections_go_to_the_backends_in_turn() {
    let backends = RunningBackend::start_many(3).await;
    let step = step_in_front_of(&addrs(&backends)).await;
    let mut answered = Vec::new();
    for _ in 0..6 {
        answered.push(who_answers(step.addr).await);
    }
    let names: Vec<String> =
        backends.iter().map(RunningBackend::name).collect();
    let expected: Vec<String> = names.iter().chain(&names).cloned().collect();
    assert_eq!(answered, expected);
}

#[tokio::test]
async fn one_kept_alive_connection_stays_on_one_backend() {
    let backends = RunningBackend::start_many(3).await;
    let step = step_in_front_of(&addrs(&backends)).await;
    let client = keep_alive_client();
    let url = format!("http://{}/", step.addr);
    let mut answered = Vec::new();
    for _ in 0..3 {
        answered.push(who_answers_with(&client, &url).await);
    }
    assert_eq!(answered, vec![backends[0].name(); 3]);
}

#[tokio::test]
async fn sixty_four_mib_each_way_arrive_intact() {
    let backends = RunningBackend::start_many(3).await;
    let step = step_in_front_of(&addrs(&backends)).await;
    let base = format!("http://{}", step.addr);
    check_upload(&fresh_client(), &base, 64 * MIB).await;
    check_download(&fresh_client(), &base, 64 * MIB).await;
}

#[tokio::test]
async fn a_request_over_1_kib_is_not_truncated() {
    let backends = RunningBackend::start_many(3).await;
    let step = step_in_front_of(&addrs(&backends)).await;
    check_big_request(step.addr, 8 * 1024).await;
}

#[tokio::test]
async fn half_close_passes_through() {
    let (backend, _task) = half_close_backend().await;
    let step = step_in_front_of(&[backend, backend]).await;
    check_half_close(step.addr, 256 * 1024).await;
    check_half_close(step.addr, 10).await;
}

#[tokio::test]
async fn a_dead_backend_fails_its_turn_and_the_next_client_is_served() {
    let mut backends = RunningBackend::start_many(3).await;
    let dead = backends.remove(1);
    let step =
        step_in_front_of(&[backends[0].addr, dead.addr, backends[1].addr])
            .await;
    dead.stop().await;

    assert_eq!(who_answers(step.addr).await, backends[0].name());
    assert!(closed_without_answer(step.addr).await);
    assert_eq!(who_answers(step.addr).await, backends[1].name());
    assert_eq!(who_answers(step.addr).await, backends[0].name());
    assert!(!step.is_finished());
}

#[tokio::test]
async fn the_binary_rotates_through_its_backends() {
    let backends = RunningBackend::start_many(3).await;
    let list = backend_list(addrs(&backends).iter());
    let mut step = RunningBinary::start(
        BINARY,
        &["--listen", "127.0.0.1:0", "--backends", &list],
    )
    .await;
    for round in 0..2 {
        for backend in &backends {
            assert_eq!(who_answers(step.addr).await, backend.name(), "{round}");
        }
    }
    step.wait_for_stderr(&format!("-> backend {}", backends[2].addr))
        .await;
}

#[tokio::test]
async fn a_bad_flag_value_is_a_clear_error() {
    let (code, _, stderr) =
        run_to_end(BINARY, &["--backends", "127.0.0.1:4444,nope"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("`nope` is not HOST:PORT"), "{stderr}");
}
