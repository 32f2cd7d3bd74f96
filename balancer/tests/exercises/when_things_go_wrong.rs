//! The exercise of the chapter "lb — when things go wrong".

use std::sync::Arc;

use balancer::Balancer;
use balancer::config::Config;
use balancer::status;

/// When `buffer_budget` is lent out, relays go on with small buffers and
/// bulk transfers lose most of their speed, without a word. `/api/stats`
/// should say how much of the budget is left.
#[tokio::test]
#[ignore = "exercise lb-budget-left: scripts/exercise.sh lb-budget-left"]
async fn stats_say_how_much_buffer_budget_is_left() {
    let mut config = Config::default();
    config.limits.buffer_budget = 1 << 20;
    let balancer =
        Arc::new(Balancer::new(config).expect("the config is usable"));
    let stats = status::stats(&balancer);
    let left = &stats["listener"]["buffer_budget_left"];
    assert!(
        !left.is_null(),
        "/api/stats has no listener.buffer_budget_left: nobody can see \
         that the relays' big buffers are all lent out, and that new \
         transfers relay in 512-byte steps"
    );
    assert_eq!(
        left.as_u64(),
        Some(1 << 20),
        "with nothing relayed, all of a 1 MiB budget is left"
    );
}
