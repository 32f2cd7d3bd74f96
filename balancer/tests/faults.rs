//! `lb` against its fault suite (the `fault-suite` crate), every case at
//! its small size: backends and clients that fail, load, too few
//! descriptors, SIGTERM mid-transfer. Each case runs this package's real
//! `lb` binary as a process of its own, so that `/proc` measures it
//! alone, and fails if any of its checks does. `scripts/faults.sh` runs
//! the same cases at full size, beside step 08.

use fault_suite::{Case, Ctx, cases};
use lab_common::testing::deadline;

async fn holds(case: Case) {
    let ctx = Ctx::small_lb(env!("CARGO_BIN_EXE_lb")).expect("a context");
    let report = deadline(case.name(), cases::run(case, &ctx)).await;
    println!("== {}: {}\n{report}", case.name(), case.about());
    let failures = report.failures();
    assert!(
        failures.is_empty(),
        "{}: {}\n{report}",
        case.name(),
        failures.join("; ")
    );
}

macro_rules! cases {
    ($($(#[$attr:meta])* $test:ident => $case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$attr])*
            async fn $test() {
                holds(Case::$case).await;
            }
        )*

        #[test]
        fn every_case_of_the_suite_has_a_test_here() {
            let tested = [$(Case::$case),*];
            for case in Case::ALL {
                assert!(tested.contains(&case), "{} is not tested", case.name());
            }
        }
    };
}

cases! {
    a_backend_that_never_answers_is_given_up_on => NeverAnswers,
    a_backend_that_stalls_is_timed_out => AnswersThenStalls,
    a_backend_reset_reaches_the_client_as_a_reset => ResetsMidStream,
    a_backend_that_closes_at_once_fails_its_clients_at_once => ClosesAtOnce,
    a_slow_reader_is_followed_without_buffering => ReadsSlowly,
    a_tls_end_without_close_notify_is_passed_on => ClosesWithoutNotify,
    silent_clients_are_closed_at_the_idle_timeout => SilentClients,
    half_tls_handshakes_are_closed_at_the_handshake_timeout => HalfTlsHandshake,
    a_client_that_gives_up_is_freed_at_once => GivesUpMidRequest,
    a_client_reset_reaches_the_backend_as_a_reset => ResetsMidUpload,
    slowloris_is_kept_while_it_trickles_then_closed => Slowloris,
    clients_past_max_connections_wait_and_are_served => ConnectionLimit,
    a_full_backend_queues_then_resets => BackendQueue,
    idle_tls_connections_leave_no_memory_behind => IdleTlsMemory,
    a_burst_of_connects_is_accepted_in_time => Burst,
    short_of_descriptors_lb_accepts_only_what_it_serves => OutOfDescriptors,
    sigterm_lets_transfers_finish => Drain,
    sigterm_cuts_what_outlasts_the_drain => DrainCut,
    reloads_under_load_lose_no_connection => Reloads,
    upgrades_under_load_lose_no_connection => Upgrades,
    a_blip_of_every_backend_costs_little_more_than_the_blip => Blip,
    a_broken_stream_reaches_the_client_as_a_reset => BrokenStream,
    a_flapping_backend_is_held_down_and_fails_no_client => Flapping,
    slow_readers_stay_within_the_memory_bound => SlowReaders,
    clients_that_leave_the_queue_give_up_their_places => QueueLeavers,
    a_backend_that_is_lb_itself_is_never_dialled => Loop,
    max_connections_reached_and_left_is_logged_once_each => Saturation,
}
