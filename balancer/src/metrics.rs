//! `GET /metrics`: `lb`'s counters in the OpenMetrics text format, for
//! Prometheus.
//!
//! Nothing here counts: a [`Collector`] reads the counters `stats.rs`
//! keeps (and the rows `status.rs` builds) at each scrape, so a metric
//! cannot drift from the page or the JSON, and a backend that leaves
//! the config leaves the metrics with its last connection.
//!
//! The names follow Prometheus' rules (promtool's lint): base units in
//! the name (`_seconds`, `_bytes`), `_total` on counters only, help on
//! every family. prometheus-client adds `_total` and the unit itself.
//! Per-backend families carry a `backend` label (the id); the end codes
//! a `code` label, every code present from the start so that a rate
//! over one is defined before it first happens.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::Balancer;
use crate::codes::EndCode;
use crate::live::State;
use crate::status::{self, Row};

/// The registry of `lb`'s metrics: one collector over `balancer`.
pub fn registry(balancer: Arc<Balancer>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Metrics { balancer }));
    registry
}

/// Renders every metric as OpenMetrics text.
pub fn render(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)
        .expect("writing to a String does not fail");
    text
}

struct Metrics {
    balancer: Arc<Balancer>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Metrics")
    }
}

/// The states a backend's `lb_backend_state` has a series for.
const STATES: [State; 7] = [
    State::Up,
    State::Down,
    State::CoolingDown,
    State::SlowStart(0),
    State::Draining,
    State::Disabled,
    State::Retiring,
];

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// One family without labels.
fn single(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric: &impl EncodeMetric,
) -> fmt::Result {
    let family =
        encoder.encode_descriptor(name, help, unit, metric.metric_type())?;
    metric.encode(family)
}

/// One family with a series per backend.
fn per_backend<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    rows: &[Row],
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric_type: MetricType,
    value: impl Fn(&Row) -> M,
) -> fmt::Result {
    let mut family =
        encoder.encode_descriptor(name, help, unit, metric_type)?;
    for row in rows {
        let labels = [("backend", row.id.as_str())];
        value(row).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Why a client was turned away, and the end codes that count as each
/// (`lb_listener_connections_refused_total{reason}`).
const REFUSED: [(&str, &[EndCode]); 3] = [
    ("no_backend", &[EndCode::NoBackend]),
    (
        "unreachable",
        &[EndCode::ConnectFailed, EndCode::ConnectTimeout],
    ),
    ("queue_timeout", &[EndCode::QueueTimeout]),
];

impl Collector for Metrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let balancer = &self.balancer;
        let stats = &balancer.stats;
        let e = &mut encoder;
        single(
            e,
            "lb_listener_connections_accepted",
            "Client connections accepted.",
            None,
            &ConstCounter::new(load(&stats.accepted)),
        )?;
        single(
            e,
            "lb_listener_connections_active",
            "Client connections open now.",
            None,
            &ConstGauge::new(load(&stats.open) as i64),
        )?;
        single(
            e,
            "lb_listener_connections_queued",
            "Clients waiting in line for a full backend now.",
            None,
            &ConstGauge::new(balancer.queue().waiting() as i64),
        )?;
        let mut refused = e.encode_descriptor(
            "lb_listener_connections_refused",
            "Clients turned away: no backend up, none reachable, or every \
             backend full for the whole queue timeout.",
            None,
            MetricType::Counter,
        )?;
        for (reason, codes) in REFUSED {
            let count: u64 = codes.iter().map(|&c| stats.ended_with(c)).sum();
            let labels = [("reason", reason)];
            ConstCounter::new(count).encode(refused.encode_family(&labels)?)?;
        }
        single(
            e,
            "lb_listener_max_connections_reached",
            "Times max_connections was reached (accepting paused; new \
             clients wait in the kernel's listen queue).",
            None,
            &ConstCounter::new(load(&stats.limit_reached)),
        )?;
        single(
            e,
            "lb_listener_handshakes_in_progress",
            "Client TLS handshakes in progress.",
            None,
            &ConstGauge::new(load(&stats.handshakes) as i64),
        )?;
        let pipes = balancer.buffers.pipes();
        single(
            e,
            "lb_relay_splice_pipes_in_use",
            "Splice pipes lent to streaming directions now (each holds \
             two descriptors).",
            None,
            &ConstGauge::new(pipes.lent() as i64),
        )?;
        single(
            e,
            "lb_relay_splice_leases",
            "Times a streaming direction took a splice pipe.",
            None,
            &ConstCounter::new(pipes.leases()),
        )?;
        let mut ended = e.encode_descriptor(
            "lb_connections_ended",
            "Client connections ended, by end code (lb --help lists them).",
            None,
            MetricType::Counter,
        )?;
        for (code, count) in stats.ended_counts() {
            let labels = [("code", code.as_str())];
            ConstCounter::new(count).encode(ended.encode_family(&labels)?)?;
        }
        single(
            e,
            "lb_connection_duration",
            "How long client connections lasted, accept to close.",
            Some(&Unit::Seconds),
            &stats.duration_seconds,
        )?;
        let mut reloads = e.encode_descriptor(
            "lb_config_reloads",
            "Reloads of the config, applied or refused.",
            None,
            MetricType::Counter,
        )?;
        for (result, counter) in [
            ("applied", &stats.reloads_applied),
            ("refused", &stats.reloads_refused),
        ] {
            let labels = [("result", result)];
            ConstCounter::new(load(counter))
                .encode(reloads.encode_family(&labels)?)?;
        }
        let loaded = stats
            .config_loaded()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        single(
            e,
            "lb_config_last_reload_success_timestamp",
            "When the config in force was read (at start, or by the last \
             reload that applied), in seconds since the Unix epoch.",
            Some(&Unit::Seconds),
            &ConstGauge::new(loaded.as_secs_f64()),
        )?;

        let rows = status::rows(balancer);
        per_backend(
            e,
            &rows,
            "lb_backend_up",
            "1 if the backend takes new clients now (up, or in its slow \
             start), else 0.",
            None,
            MetricType::Gauge,
            |row| {
                let up = matches!(row.state, State::Up | State::SlowStart(_));
                ConstGauge::new(i64::from(up))
            },
        )?;
        let mut state = e.encode_descriptor(
            "lb_backend_state",
            "1 for the backend's state now, 0 for the others.",
            None,
            MetricType::Gauge,
        )?;
        for row in &rows {
            for candidate in STATES {
                let labels =
                    [("backend", row.id.as_str()), ("state", candidate.name())];
                let now = i64::from(row.state.name() == candidate.name());
                ConstGauge::new(now).encode(state.encode_family(&labels)?)?;
            }
        }
        per_backend(
            e,
            &rows,
            "lb_backend_weight",
            "The backend's effective weight (lowered during a slow start).",
            None,
            MetricType::Gauge,
            |row| ConstGauge::new(i64::from(row.effective_weight)),
        )?;
        per_backend(
            e,
            &rows,
            "lb_backend_connections_active",
            "Client connections open to the backend now.",
            None,
            MetricType::Gauge,
            |row| ConstGauge::new(i64::from(row.active)),
        )?;
        per_backend(
            e,
            &rows,
            "lb_backend_connections",
            "Client connections handed to the backend, a connect it \
             refused included.",
            None,
            MetricType::Counter,
            |row| ConstCounter::new(row.total),
        )?;
        let mut bytes = e.encode_descriptor(
            "lb_backend",
            "Bytes relayed through the backend's connections, counted as \
             each ends: direction up is client to backend, down backend \
             to client.",
            Some(&Unit::Bytes),
            MetricType::Counter,
        )?;
        for row in &rows {
            let stats = &row.live.stats;
            for (direction, counter) in
                [("up", &stats.bytes_up), ("down", &stats.bytes_down)]
            {
                let labels =
                    [("backend", row.id.as_str()), ("direction", direction)];
                ConstCounter::new(load(counter))
                    .encode(bytes.encode_family(&labels)?)?;
            }
        }
        per_backend(
            e,
            &rows,
            "lb_backend_connect_failures",
            "Connects to the backend that failed (refused, timed out, TLS).",
            None,
            MetricType::Counter,
            |row| ConstCounter::new(load(&row.live.stats.connect_failures)),
        )?;
        per_backend(
            e,
            &rows,
            "lb_backend_connect_duration",
            "How long successful connects to the backend took.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
            |row| row.live.stats.connect_seconds.clone(),
        )?;
        let mut checks = e.encode_descriptor(
            "lb_health_checks",
            "Active health checks of the backend, passed or failed.",
            None,
            MetricType::Counter,
        )?;
        for row in &rows {
            let stats = &row.live.stats;
            for (result, counter) in [
                ("passed", &stats.checks_passed),
                ("failed", &stats.checks_failed),
            ] {
                let labels = [("backend", row.id.as_str()), ("result", result)];
                ConstCounter::new(load(counter))
                    .encode(checks.encode_family(&labels)?)?;
            }
        }
        per_backend(
            e,
            &rows,
            "lb_health_check_duration",
            "How long the backend's active checks took.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
            |row| row.live.stats.check_seconds.clone(),
        )?;
        Ok(())
    }
}
