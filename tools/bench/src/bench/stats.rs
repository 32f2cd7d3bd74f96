//! The benchmark's arithmetic, kept apart from the processes so that it
//! can be tested: what one run measured, medians and spreads over rounds,
//! ratios to the direct runs on either side, CPU per unit of work (and
//! when the clock tick is too coarse to tell), memory per connection.

/// What one load run measured.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Run {
    /// Requests per second, or Gbit/s for bulk.
    pub rate: f64,
    /// Latency percentiles in µs (HTTP loads only).
    pub p50_us: f64,
    pub p99_us: f64,
    /// The work done: requests, or gigabytes for bulk.
    pub work: f64,
    pub errors: u64,
    /// CPU time of the measured process tree during the run, in
    /// nanoseconds (`schedstat`): the contender's, or the backend's for a
    /// direct run.
    pub cpu_ns: u64,
    /// CPU time of the load generator (wrk) during the run, in
    /// nanoseconds; 0 where not measured.
    pub load_cpu_ns: u64,
}

/// One run in the table: a contender's, with its ratio to the direct runs
/// just before and after it, or a direct run (no ratio).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub round: u32,
    pub run: Run,
    pub ratio: Option<f64>,
}

/// A CPU figure needs this much CPU time in every run behind it (50 ms):
/// a run that barely ran (a contender that failed at once) says nothing
/// of its cost. Below that, no figure is printed.
pub const MIN_CPU_NS: u64 = 50_000_000;

/// The middle value (the mean of the two middle ones for an even count);
/// `None` for no values.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// The lowest and highest value, if there are two values or more.
pub fn spread(values: &[f64]) -> Option<(f64, f64)> {
    if values.len() < 2 {
        return None;
    }
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((low, high))
}

/// A contender's figure against the mean of the direct runs just before
/// and just after it: the machine's speed drifts, neighbours drift alike.
pub fn ratio_to_neighbours(value: f64, before: f64, after: f64) -> f64 {
    value * 2.0 / (before + after)
}

/// CPU per unit of work: `scale` per CPU-second (1e6 for µs per
/// request, 1e3 for ms per GB). `None` if the run used less than
/// [`MIN_CPU_NS`] or did no work.
pub fn cpu_per_unit(run: &Run, scale: f64) -> Option<f64> {
    if run.cpu_ns < MIN_CPU_NS || run.work <= 0.0 {
        return None;
    }
    Some(run.cpu_ns as f64 * scale / 1e9 / run.work)
}

/// The median CPU per unit over `runs`, or `None` if any run is too short
/// to measure (a median of some rounds would hide that).
pub fn median_cpu(runs: &[Run], scale: f64) -> Option<f64> {
    let figures: Option<Vec<f64>> =
        runs.iter().map(|run| cpu_per_unit(run, scale)).collect();
    median(&figures?)
}

/// For each round, a contender's ratio divided by HAProxy's ratio in the
/// same round; the median of those. Both lists are (round, ratio).
pub fn ratio_to_reference(
    contender: &[(u32, f64)],
    reference: &[(u32, f64)],
) -> Option<f64> {
    let per_round: Vec<f64> = per_round_ratios(contender, reference)
        .into_iter()
        .map(|(_, ratio)| ratio)
        .collect();
    median(&per_round)
}

/// Round by round, `contender`'s value divided by `reference`'s in the
/// same round, in the contender's order; a round either lacks is left
/// out. Both lists are (round, value).
pub fn per_round_ratios(
    contender: &[(u32, f64)],
    reference: &[(u32, f64)],
) -> Vec<(u32, f64)> {
    contender
        .iter()
        .filter_map(|&(round, value)| {
            let (_, theirs) = reference.iter().find(|(r, _)| *r == round)?;
            Some((round, value / theirs))
        })
        .collect()
}

/// A contender against its baseline, round by round: the per-round
/// ratios (in round order), their median, lowest and highest.
#[derive(Clone, Debug, PartialEq)]
pub struct Paired {
    pub per_round: Vec<(u32, f64)>,
    pub median: f64,
    pub low: f64,
    pub high: f64,
}

impl Paired {
    /// CPU per unit of work (`scale` as in [`cpu_per_unit`]) of
    /// `contender`'s runs over `baseline`'s in the same round. A round
    /// where either run is too short to measure is left out; `None` if
    /// no round is left.
    pub fn cpu(
        contender: &[(u32, Run)],
        baseline: &[(u32, Run)],
        scale: f64,
    ) -> Option<Paired> {
        let figures = |runs: &[(u32, Run)]| -> Vec<(u32, f64)> {
            runs.iter()
                .filter_map(|(round, run)| {
                    Some((*round, cpu_per_unit(run, scale)?))
                })
                .collect()
        };
        Paired::of(per_round_ratios(&figures(contender), &figures(baseline)))
    }

    /// The same, for the request rate (or Gbit/s) reached.
    pub fn rate(
        contender: &[(u32, Run)],
        baseline: &[(u32, Run)],
    ) -> Option<Paired> {
        let rates = |runs: &[(u32, Run)]| -> Vec<(u32, f64)> {
            runs.iter()
                .filter(|(_, run)| run.rate > 0.0)
                .map(|(round, run)| (*round, run.rate))
                .collect()
        };
        Paired::of(per_round_ratios(&rates(contender), &rates(baseline)))
    }

    fn of(mut per_round: Vec<(u32, f64)>) -> Option<Paired> {
        per_round.sort_by_key(|(round, _)| *round);
        let values: Vec<f64> = per_round.iter().map(|(_, v)| *v).collect();
        let median = median(&values)?;
        let (low, high) = spread(&values).unwrap_or((median, median));
        Some(Paired {
            per_round,
            median,
            low,
            high,
        })
    }

    /// How many rounds' ratios lie within `bound` of 1 (0.05: 5%).
    pub fn rounds_within(&self, bound: f64) -> usize {
        self.per_round
            .iter()
            .filter(|(_, ratio)| (ratio - 1.0).abs() <= bound + 1e-12)
            .count()
    }
}

/// What one memory run measured: a fresh balancer before and after
/// `connections` idle clients connected through it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MemoryRun {
    pub round: u32,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub fds_before: usize,
    pub fds_after: usize,
    pub connections: usize,
}

impl MemoryRun {
    /// Resident memory each connection added, in bytes.
    pub fn bytes_per_connection(&self) -> f64 {
        (self.rss_after_kib as f64 - self.rss_before_kib as f64) * 1024.0
            / self.connections as f64
    }

    pub fn fds_per_connection(&self) -> f64 {
        (self.fds_after as f64 - self.fds_before as f64)
            / self.connections as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn spread_needs_two_values() {
        assert_eq!(spread(&[1.0]), None);
        assert_eq!(spread(&[0.6, 0.49, 0.53]), Some((0.49, 0.6)));
    }

    #[test]
    fn ratio_is_to_the_mean_of_both_neighbours() {
        // 60,000 req/s between direct runs of 100,000 and 140,000.
        assert_eq!(ratio_to_neighbours(60_000.0, 100_000.0, 140_000.0), 0.5);
    }

    #[test]
    fn cpu_per_request_in_microseconds() {
        // 1.2 s of CPU for 100,000 requests: 12 µs each.
        let run = Run {
            work: 100_000.0,
            cpu_ns: 1_200_000_000,
            ..Run::default()
        };
        let us = cpu_per_unit(&run, 1e6).unwrap();
        assert!((us - 12.0).abs() < 1e-9, "{us}");
        // Bulk: 1 s for 4 GB: 250 ms per GB.
        let bulk = Run {
            work: 4.0,
            cpu_ns: 1_000_000_000,
            ..Run::default()
        };
        assert_eq!(cpu_per_unit(&bulk, 1e3), Some(250.0));
    }

    #[test]
    fn cpu_below_the_threshold_is_no_figure() {
        // The smoke test's case: 100 requests in 30 ms of CPU.
        let short = Run {
            work: 100.0,
            cpu_ns: 30_000_000,
            ..Run::default()
        };
        assert_eq!(cpu_per_unit(&short, 1e6), None);
        let long = Run {
            work: 100_000.0,
            cpu_ns: MIN_CPU_NS,
            ..Run::default()
        };
        assert_eq!(median_cpu(&[long, long], 1e6), Some(0.5));
        // One short round is enough to withhold the figure.
        assert_eq!(median_cpu(&[long, short, long], 1e6), None);
        assert_eq!(median_cpu(&[], 1e6), None);
    }

    #[test]
    fn ratio_to_haproxy_is_taken_round_by_round() {
        let mine = [(1, 0.5), (2, 0.6), (3, 0.4)];
        let haproxy = [(1, 0.5), (2, 0.5), (3, 0.5)];
        // 1.0, 1.2, 0.8: median 1.0.
        assert_eq!(ratio_to_reference(&mine, &haproxy), Some(1.0));
        // A round HAProxy lacks is left out.
        assert_eq!(ratio_to_reference(&[(4, 0.9)], &haproxy), None);
    }

    /// (round, run) with `cpu_ms` of CPU for `requests` at `rate`.
    fn timed(round: u32, cpu_ms: u64, requests: f64, rate: f64) -> (u32, Run) {
        let run = Run {
            rate,
            work: requests,
            cpu_ns: cpu_ms * 1_000_000,
            ..Run::default()
        };
        (round, run)
    }

    #[test]
    fn cpu_against_a_baseline_is_divided_round_by_round() {
        // The baseline: 10 µs per request in each round, at two speeds
        // of the machine (the second round runs everything slower).
        let old = [
            timed(1, 1_000, 100_000.0, 20_000.0),
            timed(2, 2_000, 100_000.0, 10_000.0),
            timed(3, 1_000, 100_000.0, 20_000.0),
        ];
        // 10.5, 21 and 9.5 µs: 1.05, 1.05, 0.95 of the same round's.
        let new = [
            timed(3, 950, 100_000.0, 19_000.0),
            timed(1, 1_050, 100_000.0, 21_000.0),
            timed(2, 2_100, 100_000.0, 10_000.0),
        ];
        let paired = Paired::cpu(&new, &old, 1e6).unwrap();
        let ratios: Vec<(u32, String)> = paired
            .per_round
            .iter()
            .map(|(round, r)| (*round, format!("{r:.3}")))
            .collect();
        assert_eq!(
            ratios,
            [
                (1, "1.050".into()),
                (2, "1.050".into()),
                (3, "0.950".into())
            ]
        );
        assert!((paired.median - 1.05).abs() < 1e-9);
        assert!((paired.low - 0.95).abs() < 1e-9);
        assert!((paired.high - 1.05).abs() < 1e-9);
        assert_eq!(paired.rounds_within(0.05), 3);
        assert_eq!(paired.rounds_within(0.04), 0);
        // Two medians taken apart would be 21 / 10 = 2.1 here if the
        // slow round fell differently: the pairing is what keeps 1.05.
        let rate = Paired::rate(&new, &old).unwrap();
        assert!((rate.median - 1.0).abs() < 1e-9, "{rate:?}");
        assert!((rate.low - 0.95).abs() < 1e-9);
    }

    #[test]
    fn a_round_too_short_or_missing_is_left_out_of_the_pairing() {
        let old = [
            timed(1, 1_000, 100_000.0, 20_000.0),
            timed(2, 10, 1_000.0, 200.0),
        ];
        let new = [
            timed(1, 1_100, 100_000.0, 20_000.0),
            timed(2, 1_000, 100_000.0, 20_000.0),
            timed(3, 1_000, 100_000.0, 20_000.0),
        ];
        let paired = Paired::cpu(&new, &old, 1e6).unwrap();
        assert_eq!(paired.per_round.len(), 1);
        assert!((paired.median - 1.1).abs() < 1e-9);
        assert_eq!((paired.low, paired.high), (paired.median, paired.median));
        assert_eq!(Paired::cpu(&new, &[], 1e6), None);
    }

    #[test]
    fn bytes_and_descriptors_per_idle_connection() {
        let run = MemoryRun {
            round: 1,
            rss_before_kib: 4_000,
            rss_after_kib: 19_000,
            fds_before: 10,
            fds_after: 10_010,
            connections: 5_000,
        };
        assert_eq!(run.bytes_per_connection(), 3_072.0);
        assert_eq!(run.fds_per_connection(), 2.0);
    }
}
