//! What the records say: each backend's share of requests and of open
//! connections over time, latency percentiles and their distribution,
//! and how many keys moved. Pure functions over records, tested without
//! sockets.

use std::time::Duration;

use crate::clients::Record;

/// One algorithm's run in numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub requests: usize,
    pub errors: usize,
    /// Each backend's share of all requests (errors included in the
    /// whole), in the run's backend order.
    pub shares: Vec<f64>,
    /// Latency of the answered requests, by nearest rank. `None` when
    /// nothing was answered.
    pub p50: Option<Duration>,
    pub p90: Option<Duration>,
    pub p99: Option<Duration>,
}

/// Sums up `records` of a run over `backends` backends.
pub fn summarize(records: &[Record], backends: usize) -> Summary {
    let mut counts = vec![0usize; backends];
    let mut latencies = Vec::with_capacity(records.len());
    for record in records {
        if let Ok(backend) = record.outcome {
            if let Some(count) = counts.get_mut(backend) {
                *count += 1;
            }
            latencies.push(record.latency());
        }
    }
    latencies.sort_unstable();
    let whole = records.len().max(1) as f64;
    Summary {
        requests: records.len(),
        errors: records.iter().filter(|r| r.outcome.is_err()).count(),
        shares: counts.iter().map(|&n| n as f64 / whole).collect(),
        p50: percentile(&latencies, 0.50),
        p90: percentile(&latencies, 0.90),
        p99: percentile(&latencies, 0.99),
    }
}

/// The nearest-rank percentile `q` (0 < q ≤ 1) of `sorted`: the
/// smallest value that at least `q` of them do not exceed.
pub fn percentile(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// A named line of (x, y) points, for a chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// What a share chart's series stand for: each backend, then the
/// requests no backend answered (only if there were any).
fn series_names(names: &[String], records: &[Record]) -> Vec<String> {
    let mut all = names.to_vec();
    let backends = names.len();
    if records
        .iter()
        .any(|record| series_of(record, backends) == backends)
    {
        all.push("no answer".to_owned());
    }
    all
}

/// Which series a record counts in: its backend's, or (past the
/// `backends` backends' series) "no answer".
fn series_of(record: &Record, backends: usize) -> usize {
    match record.outcome {
        Ok(backend) if backend < backends => backend,
        _ => backends,
    }
}

/// Each backend's share of the requests started in each of `buckets`
/// equal slices of `duration`, at the slice's middle, in seconds. A
/// slice in which no request started has no point.
pub fn request_shares(
    records: &[Record],
    names: &[String],
    duration: Duration,
    buckets: usize,
) -> Vec<Series> {
    let backends = names.len();
    let names = series_names(names, records);
    let width = duration.as_secs_f64() / buckets.max(1) as f64;
    let mut counts = vec![vec![0f64; names.len()]; buckets];
    for record in records {
        let bucket = (record.start.as_secs_f64() / width) as usize;
        if let Some(row) = counts.get_mut(bucket) {
            row[series_of(record, backends)] += 1.0;
        }
    }
    shares_per_bucket(names, &counts, width)
}

/// Each backend's share of the connections open during each slice,
/// weighted by how long each was open in it: the mean number open to
/// each backend over the slice, divided by the mean open in all.
pub fn connection_shares(
    records: &[Record],
    names: &[String],
    duration: Duration,
    buckets: usize,
) -> Vec<Series> {
    let backends = names.len();
    let names = series_names(names, records);
    let width = duration.as_secs_f64() / buckets.max(1) as f64;
    let mut open = vec![vec![0f64; names.len()]; buckets];
    for record in records {
        let series = series_of(record, backends);
        let (start, end) =
            (record.start.as_secs_f64(), record.end.as_secs_f64());
        let first = (start / width) as usize;
        let last = ((end / width) as usize).min(buckets.saturating_sub(1));
        for (bucket, row) in
            open.iter_mut().enumerate().take(last + 1).skip(first)
        {
            let (from, to) =
                (bucket as f64 * width, (bucket + 1) as f64 * width);
            let overlap = end.min(to) - start.max(from);
            if overlap > 0.0 {
                row[series] += overlap;
            }
        }
    }
    shares_per_bucket(names, &open, width)
}

fn shares_per_bucket(
    names: Vec<String>,
    rows: &[Vec<f64>],
    width: f64,
) -> Vec<Series> {
    let mut series: Vec<Series> = names
        .into_iter()
        .map(|name| Series {
            name,
            points: Vec::new(),
        })
        .collect();
    for (bucket, row) in rows.iter().enumerate() {
        let whole: f64 = row.iter().sum();
        if whole <= 0.0 {
            continue;
        }
        let middle = (bucket as f64 + 0.5) * width;
        for (line, &value) in series.iter_mut().zip(row) {
            line.points.push((middle, value / whole));
        }
    }
    series
}

/// The latency distribution of the answered requests, as the points of
/// its cumulative curve: (latency in ms, share answered within it), at
/// most `points` of them, evenly spaced in rank.
pub fn latency_curve(records: &[Record], points: usize) -> Vec<(f64, f64)> {
    let mut latencies: Vec<f64> = records
        .iter()
        .filter(|record| record.outcome.is_ok())
        .map(|record| record.latency().as_secs_f64() * 1000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let count = latencies.len();
    if count == 0 {
        return Vec::new();
    }
    let step = count.div_ceil(points.max(1)).max(1);
    let mut curve: Vec<(f64, f64)> = (step - 1..count)
        .step_by(step)
        .map(|i| (latencies[i], (i + 1) as f64 / count as f64))
        .collect();
    if curve.last().map(|&(_, share)| share) != Some(1.0) {
        curve.push((latencies[count - 1], 1.0));
    }
    curve
}

/// How many keys changed backend between two lists' runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Moved {
    pub moved: usize,
    /// Keys answered in both runs: the others are not counted.
    pub measured: usize,
}

impl Moved {
    pub fn fraction(&self) -> f64 {
        self.moved as f64 / self.measured.max(1) as f64
    }
}

/// Compares where each key went before and after (`None`: no answer).
pub fn moved<T: PartialEq>(before: &[Option<T>], after: &[Option<T>]) -> Moved {
    let mut count = Moved {
        moved: 0,
        measured: 0,
    };
    for (before, after) in before.iter().zip(after) {
        if let (Some(before), Some(after)) = (before, after) {
            count.measured += 1;
            if before != after {
                count.moved += 1;
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn record(
        start_ms: u64,
        end_ms: u64,
        outcome: Result<usize, &str>,
    ) -> Record {
        Record {
            lane: 0,
            from: Ipv4Addr::LOCALHOST,
            start: Duration::from_millis(start_ms),
            end: Duration::from_millis(end_ms),
            outcome: outcome.map_err(str::to_owned),
        }
    }

    fn names(count: usize) -> Vec<String> {
        (1..=count).map(|n| format!("b{n}")).collect()
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<Duration> =
            (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 0.5), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&sorted, 0.9), Some(Duration::from_millis(90)));
        assert_eq!(percentile(&sorted, 0.99), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&sorted, 1.0), Some(Duration::from_millis(100)));
        let one = [Duration::from_millis(7)];
        assert_eq!(percentile(&one, 0.99), Some(one[0]));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn a_summary_counts_shares_errors_and_answered_latency() {
        let records = [
            record(0, 1, Ok(0)),
            record(0, 2, Ok(0)),
            record(0, 20, Ok(2)),
            record(0, 1000, Err("no answer")),
        ];
        let summary = summarize(&records, 3);
        assert_eq!(summary.requests, 4);
        assert_eq!(summary.errors, 1);
        assert_eq!(summary.shares, vec![0.5, 0.0, 0.25]);
        // The failed request's second is not a latency.
        assert_eq!(summary.p99, Some(Duration::from_millis(20)));
        assert_eq!(summary.p50, Some(Duration::from_millis(2)));
    }

    #[test]
    fn request_shares_are_per_slice_and_sum_to_one() {
        // First half: all b1. Second half: b2 and failures, 3 to 1.
        let mut records =
            vec![record(100, 101, Ok(0)), record(200, 201, Ok(0))];
        records.extend((0..3).map(|i| record(600 + i, 601 + i, Ok(1))));
        records.push(record(700, 701, Err("closed")));
        let series =
            request_shares(&records, &names(2), Duration::from_secs(1), 2);
        let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["b1", "b2", "no answer"]);
        assert_eq!(series[0].points, [(0.25, 1.0), (0.75, 0.0)]);
        assert_eq!(series[1].points, [(0.25, 0.0), (0.75, 0.75)]);
        assert_eq!(series[2].points, [(0.25, 0.0), (0.75, 0.25)]);
    }

    #[test]
    fn an_empty_slice_has_no_point_and_no_errors_no_error_line() {
        let records = [record(100, 101, Ok(1))];
        let series =
            request_shares(&records, &names(2), Duration::from_secs(1), 4);
        assert_eq!(series.len(), 2);
        assert_eq!(series[1].points, [(0.125, 1.0)]);
    }

    #[test]
    fn connection_shares_weigh_how_long_each_was_open() {
        // Over [0, 1 s): b1 open 0.1 s, b2 open 0.3 s (across the edge
        // of the second slice, which it has alone).
        let records = [
            record(0, 100, Ok(0)),
            record(200, 500, Ok(1)),
            record(500, 800, Ok(1)),
        ];
        let series =
            connection_shares(&records, &names(2), Duration::from_secs(1), 2);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(series[0].points[0].1, 0.25), "{series:?}");
        assert!(close(series[1].points[0].1, 0.75), "{series:?}");
        assert!(close(series[1].points[1].1, 1.0), "{series:?}");
    }

    #[test]
    fn the_latency_curve_rises_to_one() {
        let records: Vec<Record> =
            (1..=10).map(|ms| record(0, ms, Ok(0))).collect();
        let curve = latency_curve(&records, 5);
        assert_eq!(curve.first(), Some(&(2.0, 0.2)));
        assert_eq!(curve.last(), Some(&(10.0, 1.0)));
        assert!(
            curve
                .windows(2)
                .all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1)
        );
        assert!(latency_curve(&[record(0, 5, Err("x"))], 5).is_empty());
    }

    #[test]
    fn keys_without_an_answer_in_either_run_are_not_counted() {
        let before = [Some(1), Some(2), Some(3), None];
        let after = [Some(1), Some(3), None, Some(1)];
        let count = moved(&before, &after);
        assert_eq!(
            count,
            Moved {
                moved: 1,
                measured: 2
            }
        );
        assert_eq!(count.fraction(), 0.5);
    }
}
