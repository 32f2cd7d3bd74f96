//! Step 02 as a client sees it: real backends, the step on 127.0.0.1:0,
//! real HTTP and raw TCP clients.

use dummy_servers::testing::RunningBackend;
use lab_common::HostPort;
use lab_common::testing::http::{
    check_big_request, check_download, check_upload, closed_without_answer,
    fresh_client, who_answers,
};
use lab_common::testing::{
    RunningBinary, RunningStep, check_half_close, half_close_backend,
    run_to_end,
};
use step_02_forward::run;

const BINARY: &str = env!("CARGO_BIN_EXE_02-forward");
const MIB: u64 = 1024 * 1024;

async fn step_in_front_of(backend: std::net::SocketAddr) -> RunningStep {
    let backend = HostPort::from(backend);
    RunningStep::start(move |listener, shutdown| {
        run(listener, backend, shutdown)
    })
    .await
}

#[tokio::test]
async fn every_client_reaches_the_one_backend() {
    let backend = RunningBackend::start().await;
    let step = step_in_front_of(backend.addr).await;
    for _ in 0..3 {
        assert_eq!(who_answers(step.addr).await, backend.name());
    }
}

#[tokio::test]
async fn sixty_four_mib_each_way_arrive_intact() {
    let backend = RunningBackend::start().await;
    let step = step_in_front_of(backend.addr).await;
    let base = format!("http://{}", step.addr);
    check_upload(&fresh_client(), &base, 64 * MIB).await;
    check_download(&fresh_client(), &base, 64 * MIB).await;
}

#[tokio::test]
async fn a_request_over_1_kib_is_not_truncated() {
    let backend = RunningBackend::start().await;
    let step = step_in_front_of(backend.addr).await;
    check_big_request(step.addr, 8 * 1024).await;
}

#[tokio::test]
async fn half_close_passes_through() {
    let (backend, _task) = half_close_backend().await;
    let step = step_in_front_of(backend).await;
    check_half_close(step.addr, 256 * 1024).await;
}

#[tokio::test]
async fn a_dead_backend_fails_one_client_then_recovers() {
    let backend = RunningBackend::start().await;
    let name = backend.name();
    let step = step_in_front_of(backend.addr).await;
    let addr = backend.stop().await;

    assert!(closed_without_answer(step.addr).await);
    assert!(!step.is_finished(), "the balancer stopped with its backend");

    let _backend = RunningBackend::restart(addr).await;
    assert_eq!(who_answers(step.addr).await, name);
}

#[tokio::test]
async fn the_binary_forwards_and_logs_a_dead_backend() {
    let backend = RunningBackend::start().await;
    let name = backend.name();
    let backend_arg = backend.addr.to_string();
    let mut step = RunningBinary::start(
        BINARY,
        &["--listen", "127.0.0.1:0", "--backend", &backend_arg],
    )
    .await;
    assert_eq!(who_answers(step.addr).await, name);
    step.wait_for_stderr(&format!("-> backend {backend_arg}"))
        .await;

    let addr = backend.stop().await;
    assert!(closed_without_answer(step.addr).await);
    step.wait_for_stderr(&format!("-> backend {backend_arg}: dial: "))
        .await;
    assert!(step.is_running());

    let _backend = RunningBackend::restart(addr).await;
    assert_eq!(who_answers(step.addr).await, name);
}

#[tokio::test]
async fn a_bad_flag_value_is_a_clear_error() {
    let (code, _, stderr) = run_to_end(BINARY, &["--backend", "4444"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is not HOST:PORT"), "{stderr}");
}

#[tokio::test]
async fn a_list_where_one_backend_belongs_says_so() {
    let list = "127.0.0.1:4444,127.0.0.1:4445";
    let (code, _, stderr) = run_to_end(BINARY, &["--backends", list]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is a list: give one HOST:PORT"), "{stderr}");
}
