//! The exercise of step 01's chapter. `cargo test` leaves it out
//! (ignored); `scripts/exercise.sh 01-head-too-large` runs it, and it
//! fails until the exercise is done.

use lab_common::testing::RunningStep;
use lab_common::testing::http::raw_exchange;
use step_01_ping::{MAX_HEAD, run};

/// A client sends a head of exactly `MAX_HEAD` bytes that never ends in
/// a blank line: the step must tell it why it gives up, with a `431`
/// answer, instead of hanging up without a word.
#[tokio::test]
#[ignore = "exercise 01-head-too-large: scripts/exercise.sh 01-head-too-large"]
async fn a_head_too_large_gets_431() {
    let step = RunningStep::start(run).await;
    let mut request = b"GET / HTTP/1.1\r\nX-Filler: ".to_vec();
    request.resize(MAX_HEAD, b'x');
    let answer = raw_exchange(step.addr, &request, false).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        !answer.is_empty(),
        "a head over MAX_HEAD got no answer at all: the step hung up \
         without telling the client why"
    );
    let (head, _body) = answer.split_once("\r\n\r\n").unwrap_or_else(|| {
        panic!("the answer has no blank line ending its head: {answer:?}")
    });
    assert!(
        head.starts_with("HTTP/1.1 431 "),
        "the answer to a head over MAX_HEAD starts {:?}, not \
         \"HTTP/1.1 431 Request Header Fields Too Large\"",
        head.lines().next().unwrap_or_default()
    );
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "the 431 answer does not say \"Connection: close\", yet the step \
         hangs up after it"
    );
}
