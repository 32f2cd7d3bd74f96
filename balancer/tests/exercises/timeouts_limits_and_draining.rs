//! The exercise of the chapter "lb — timeouts limits and draining".

use std::time::Duration;

use balancer::config::Config;

/// `half_closed` is there to free a connection sooner than `idle` would,
/// once one side has finished: a config where it is the longer of the
/// two deserves a word, as a `health.timeout` longer than the interval
/// does.
#[test]
#[ignore = "exercise lb-half-closed: scripts/exercise.sh lb-half-closed"]
fn a_half_closed_longer_than_idle_is_warned_about() {
    let mut config = Config::default();
    config.timeouts.idle = Duration::from_secs(10);
    config.timeouts.half_closed = Duration::from_secs(30);
    let warnings = config.warnings();
    assert!(
        warnings
            .iter()
            .any(|warning| warning.contains("half_closed")),
        "no warning for a half_closed of 30s with an idle of 10s: a \
         connection where one side has finished may then stay silent \
         longer than an open one; Config::warnings should say so"
    );
    config.timeouts.half_closed = Duration::from_secs(10);
    assert!(
        !config.warnings().iter().any(|w| w.contains("half_closed")),
        "a warning for a half_closed as long as idle: only a longer one \
         deserves it"
    );
}
