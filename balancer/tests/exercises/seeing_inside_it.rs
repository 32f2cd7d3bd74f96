//! The exercise of the chapter "lb — seeing inside it".

use std::sync::Arc;

use balancer::Balancer;
use balancer::config::Config;
use balancer::metrics;

/// `/api/stats` gives the listener's `max_connections`; `/metrics` should
/// too, so that a dashboard can show how close `lb` is to it.
#[tokio::test]
#[ignore = "exercise lb-max-connections-metric: scripts/exercise.sh lb-max-connections-metric"]
async fn metrics_give_the_connection_limit() {
    let mut config = Config::default();
    config.limits.max_connections = 100;
    let balancer =
        Arc::new(Balancer::new(config).expect("the config is usable"));
    let text = metrics::render(&metrics::registry(balancer));
    let line = text
        .lines()
        .find(|line| line.starts_with("lb_listener_max_connections "));
    assert!(
        line.is_some(),
        "/metrics has no lb_listener_max_connections gauge: a dashboard \
         cannot divide lb_listener_connections_active by the limit to \
         show how close lb is to it"
    );
    assert_eq!(
        line,
        Some("lb_listener_max_connections 100"),
        "lb_listener_max_connections should be the limit, 100 here"
    );
}
