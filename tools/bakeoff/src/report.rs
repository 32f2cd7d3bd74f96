//! What the bake-off shows: the table printed in the terminal, and the
//! folder it writes: `report.md`, its SVG charts, and every run's
//! records as CSV, for whoever wants to draw them another way.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::chart::{self, Panel};
use crate::keys::KeyMoves;
use crate::plan::Size;
use crate::scenario::{ODD_ONE, Run, Scenario};
use crate::stats::{self, Series, Summary};
use crate::{Algorithm, Error};

/// Everything one bake-off measured.
#[derive(Clone, Debug)]
pub struct Bakeoff {
    pub seed: u64,
    pub size: Size,
    /// `quick` or `full`, as the report says it.
    pub mode: &'static str,
    /// The `lb` binary that was run.
    pub lb: PathBuf,
    /// Every run, scenario by scenario, in `Algorithm::ALL`'s order.
    pub runs: Vec<Run>,
    pub keys: Vec<KeyMoves>,
}

impl Bakeoff {
    fn runs_of(&self, scenario: Scenario) -> impl Iterator<Item = &Run> {
        self.runs.iter().filter(move |run| run.scenario == scenario)
    }

    fn scenarios(&self) -> Vec<Scenario> {
        Scenario::ALL
            .into_iter()
            .filter(|&scenario| self.runs_of(scenario).next().is_some())
            .collect()
    }

    /// The most backends a run of `scenario` had: the table's columns.
    fn backends(&self, scenario: Scenario) -> usize {
        self.runs_of(scenario)
            .map(|run| run.names.len())
            .max()
            .unwrap_or_default()
    }

    fn summary(
        &self,
        scenario: Scenario,
        algorithm: Algorithm,
    ) -> Option<Summary> {
        self.runs_of(scenario)
            .find(|run| run.algorithm == algorithm)
            .map(|run| stats::summarize(&run.records, run.names.len()))
    }
}

/// `1.31`, milliseconds with two decimals, or `-`.
fn ms(latency: Option<Duration>) -> String {
    latency.map_or("-".to_owned(), |latency| {
        format!("{:.2}", latency.as_secs_f64() * 1000.0)
    })
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// The table printed at the end of a run.
pub fn table(bakeoff: &Bakeoff) -> String {
    let mut out = String::new();
    for scenario in bakeoff.scenarios() {
        let _ = writeln!(out, "{}: {}", scenario.name(), scenario.about());
        let _ = writeln!(
            out,
            "  {} clients, {:.1} s per algorithm, seed {}",
            bakeoff.size.lanes,
            bakeoff.size.run.as_secs_f64(),
            bakeoff.seed
        );
        let _ = write!(
            out,
            "{:<21} {:>8} {:>6}",
            "algorithm", "requests", "errors"
        );
        for backend in 1..=bakeoff.backends(scenario) {
            let _ = write!(out, " {:>6}", format!("b{backend}"));
        }
        let _ =
            writeln!(out, " {:>7} {:>7} {:>7}", "p50 ms", "p90 ms", "p99 ms");
        for run in bakeoff.runs_of(scenario) {
            let summary = stats::summarize(&run.records, run.names.len());
            let _ = write!(
                out,
                "{:<21} {:>8} {:>6}",
                run.algorithm.name(),
                summary.requests,
                summary.errors
            );
            for share in &summary.shares {
                let _ = write!(out, " {:>6}", percent(*share));
            }
            let _ = writeln!(
                out,
                " {:>7} {:>7} {:>7}",
                ms(summary.p50),
                ms(summary.p90),
                ms(summary.p99)
            );
        }
        out.push('\n');
    }
    if let Some(first) = bakeoff.keys.first() {
        let _ = writeln!(
            out,
            "keys moved, of {} client addresses (the fewest possible: 20% \
             either way)",
            first.added.measured.max(first.removed.measured)
        );
        let _ = writeln!(out, "{:<28} {:>8} {:>10}", "", "4 → 5", "5 → 4");
        for moves in &bakeoff.keys {
            let how = if moves.through_lb {
                "lb"
            } else {
                "computed here"
            };
            let _ = writeln!(
                out,
                "{:<28} {:>8} {:>10}",
                format!("{} ({how})", moves.name),
                percent(moves.added.fraction()),
                percent(moves.removed.fraction())
            );
        }
    }
    out
}

/// The charts of `bakeoff`: file name and SVG text.
pub fn charts(bakeoff: &Bakeoff) -> Result<Vec<(String, String)>, Error> {
    let mut charts = Vec::new();
    for scenario in bakeoff.scenarios() {
        let name = scenario.name();
        let panels = |shares: fn(
            &[crate::clients::Record],
            &[String],
            Duration,
            usize,
        ) -> Vec<Series>| {
            bakeoff
                .runs_of(scenario)
                .map(|run| Panel {
                    title: run.algorithm.name().to_owned(),
                    series: shares(
                        &run.records,
                        &run.names,
                        run.duration,
                        bakeoff.size.buckets,
                    ),
                    seconds: run.duration.as_secs_f64(),
                    marker: run
                        .change
                        .map(|(at, what)| (at.as_secs_f64(), what.to_owned())),
                })
                .collect::<Vec<_>>()
        };
        charts.push((
            format!("{name}-requests.svg"),
            chart::shares_svg(
                &format!(
                    "{name}: each backend's share of the requests started"
                ),
                "share of requests",
                &panels(stats::request_shares),
            )?,
        ));
        charts.push((
            format!("{name}-connections.svg"),
            chart::shares_svg(
                &format!(
                    "{name}: each backend's share of the open connections"
                ),
                "share of connections",
                &panels(stats::connection_shares),
            )?,
        ));
        let curves: Vec<Series> = bakeoff
            .runs_of(scenario)
            .map(|run| Series {
                name: run.algorithm.name().to_owned(),
                points: stats::latency_curve(&run.records, 200),
            })
            .collect();
        charts.push((
            format!("{name}-latency.svg"),
            chart::latency_svg(
                &format!("{name}: client latency of the answered requests"),
                &curves,
            )?,
        ));
    }
    Ok(charts)
}

/// Every run's records of `scenario` as CSV: one line per request.
pub fn records_csv(bakeoff: &Bakeoff, scenario: Scenario) -> String {
    let mut csv =
        String::from("algorithm,lane,client,start_us,end_us,backend,error\n");
    for run in bakeoff.runs_of(scenario) {
        for record in &run.records {
            let (backend, error) = match &record.outcome {
                Ok(backend) => (format!("b{}", backend + 1), String::new()),
                Err(err) => {
                    (String::new(), format!("\"{}\"", err.replace('"', "\"\"")))
                }
            };
            let _ = writeln!(
                csv,
                "{},{},{},{},{},{backend},{error}",
                run.algorithm,
                record.lane,
                record.from,
                record.start.as_micros(),
                record.end.as_micros()
            );
        }
    }
    csv
}

/// The Markdown report; its images are the files [`charts`] names.
pub fn markdown(bakeoff: &Bakeoff) -> String {
    let mut md = String::from("# The algorithm bake-off\n\n");
    let _ = writeln!(
        md,
        "Made by `scripts/bakeoff.sh{}` with `{}`: {} clients at once, one \
         request per connection (`GET / HTTP/1.0`), {:.1} s per algorithm \
         and scenario, workload seed {} (the same clients, addresses and \
         pauses for every algorithm; `lb` gets the same seed for `random` \
         and `power-of-two`). Latencies are of the answered requests, as \
         the clients measured them; each run's records are in \
         `records-SCENARIO.csv`.\n",
        if bakeoff.mode == "quick" {
            " --quick"
        } else {
            ""
        },
        bakeoff.lb.display(),
        bakeoff.size.lanes,
        bakeoff.size.run.as_secs_f64(),
        bakeoff.seed
    );
    for scenario in bakeoff.scenarios() {
        scenario_section(&mut md, bakeoff, scenario);
    }
    keys_section(&mut md, bakeoff);
    md
}

fn scenario_section(md: &mut String, bakeoff: &Bakeoff, scenario: Scenario) {
    let name = scenario.name();
    let _ = writeln!(md, "## Scenario \"{name}\"\n\n{}\n", scenario.about());
    let backends = bakeoff.backends(scenario);
    let columns: Vec<String> = (1..=backends)
        .map(|backend| format!("b{backend}"))
        .collect();
    let _ = writeln!(
        md,
        "| algorithm | requests | errors | {} | p50 ms | p90 ms | p99 ms |\n\
         |---|--:|--:|{}--:|--:|--:|",
        columns.join(" | "),
        "--:|".repeat(backends)
    );
    for run in bakeoff.runs_of(scenario) {
        let summary = stats::summarize(&run.records, run.names.len());
        let shares: Vec<String> =
            summary.shares.iter().map(|&s| percent(s)).collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            run.algorithm,
            summary.requests,
            summary.errors,
            shares.join(" | "),
            ms(summary.p50),
            ms(summary.p90),
            ms(summary.p99)
        );
    }
    md.push('\n');
    match scenario {
        Scenario::Slow(_) => slow_reading(md, bakeoff, scenario),
        Scenario::Added => md.push_str(
            "b4's shares start at the reload: the clients' requests go on \
             through it, and from then on every algorithm counts b4 among \
             the backends. Maglev moves to b4 only the clients whose table \
             slots b4 takes, about a quarter of them.\n\n",
        ),
        Scenario::Failure => md.push_str(
            "The errors are the requests b3 closed unanswered before two of \
             lb's checks in a row had failed and taken it out (a connection \
             that is accepted, then closed, is not one lb can retry: the \
             request has gone). An algorithm that sends more to b3 in that \
             moment loses more.\n\n",
        ),
    }
    let _ = writeln!(
        md,
        "![{name}: shares of requests](./{name}-requests.svg)\n\n\
         ![{name}: shares of open connections](./{name}-connections.svg)\n\n\
         ![{name}: latency](./{name}-latency.svg)\n"
    );
}

/// What the slow scenario must show, said with its own numbers.
fn slow_reading(md: &mut String, bakeoff: &Bakeoff, scenario: Scenario) {
    let get = |algorithm| bakeoff.summary(scenario, algorithm);
    let (Some(rr), Some(lc), Some(p2c)) = (
        get(Algorithm::RoundRobin),
        get(Algorithm::LeastConnections),
        get(Algorithm::PowerOfTwo),
    ) else {
        return;
    };
    let slow = |summary: &Summary| summary.shares[ODD_ONE];
    let holds = slow(&lc) < slow(&rr)
        && slow(&p2c) < slow(&rr)
        && lc.p90 < rr.p90
        && p2c.p90 < rr.p90;
    let _ = writeln!(
        md,
        "The slow backend, b3, had {} of the requests under round robin, {} \
         under least connections and {} under power of two; the clients' p90 \
         was {} ms, {} ms and {} ms. Least connections and power of two give \
         the slow backend a smaller share and the clients a lower p90 than \
         round robin: **{}**.\n",
        percent(slow(&rr)),
        percent(slow(&lc)),
        percent(slow(&p2c)),
        ms(rr.p90),
        ms(lc.p90),
        ms(p2c.p90),
        if holds {
            "holds"
        } else {
            "does not hold in this run"
        }
    );
}

fn keys_section(md: &mut String, bakeoff: &Bakeoff) {
    let Some(first) = bakeoff.keys.first() else {
        return;
    };
    let _ = writeln!(
        md,
        "## Keys that move\n\n{} clients, each from its own loopback \
         address (127.1.x.y: all of 127.0.0.0/8 is loopback on Linux), one \
         request each, through `lb` restarted with four backends, five, and \
         five without the third. The modulo hash (`hash(address) mod N`) is \
         computed by the bake-off itself, not measured. Round robin and \
         random ignore the client: whatever they \"move\" is what no \
         affinity at all looks like. The fewest keys that must move is \
         1/5 either way: those of the backend added or removed.\n",
        first.added.measured.max(first.removed.measured)
    );
    md.push_str(
        "| way of choosing | 4 → 5 (one added) | 5 → 4 (one removed) |\n\
         |---|--:|--:|\n",
    );
    for moves in &bakeoff.keys {
        let how = if moves.through_lb {
            "through lb"
        } else {
            "computed"
        };
        let _ = writeln!(
            md,
            "| {} ({how}) | {} | {} |",
            moves.name,
            percent(moves.added.fraction()),
            percent(moves.removed.fraction())
        );
    }
    md.push('\n');
    let find = |name: &str| bakeoff.keys.iter().find(|m| m.name == name);
    if let (Some(maglev), Some(modulo)) = (find("maglev"), find("modulo hash"))
    {
        let removed = maglev.removed.fraction();
        let _ = writeln!(
            md,
            "Removing one of five backends moved {} of the keys under maglev \
             (at most 1/5 + 2% = 22%: **{}**) and {} under the modulo hash \
             (about 4/5).\n",
            percent(removed),
            if removed <= 0.22 {
                "holds"
            } else {
                "does not hold"
            },
            percent(modulo.removed.fraction())
        );
    }
}

/// Writes the report, its charts and the records into `dir` (made if
/// need be), and returns the report's path.
pub fn write(bakeoff: &Bakeoff, dir: &Path) -> Result<PathBuf, Error> {
    std::fs::create_dir_all(dir)
        .map_err(|err| format!("making {}: {err}", dir.display()))?;
    let save = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .map_err(|err| format!("writing {}: {err}", path.display()))
    };
    for (name, svg) in charts(bakeoff)? {
        save(&name, &svg)?;
    }
    for scenario in bakeoff.scenarios() {
        let name = format!("records-{}.csv", scenario.name());
        save(&name, &records_csv(bakeoff, scenario))?;
    }
    save("report.md", &markdown(bakeoff))?;
    Ok(dir.join("report.md"))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::clients::Record;
    use crate::keys::KeyMoves;
    use crate::stats::Moved;

    /// A run in which backend `i` answers `counts[i]` requests, each
    /// taking `latencies_ms[i]`.
    fn run(
        scenario: Scenario,
        algorithm: Algorithm,
        counts: &[usize],
        latencies_ms: &[u64],
    ) -> Run {
        let mut records = Vec::new();
        for (backend, (&count, &ms)) in
            counts.iter().zip(latencies_ms).enumerate()
        {
            for i in 0..count as u64 {
                records.push(Record {
                    lane: 0,
                    from: Ipv4Addr::LOCALHOST,
                    start: Duration::from_millis(i),
                    end: Duration::from_millis(i + ms),
                    outcome: Ok(backend),
                });
            }
        }
        Run {
            scenario,
            algorithm,
            names: scenario.backend_names(),
            duration: Duration::from_secs(1),
            change: scenario.change(Duration::from_secs(1)),
            records,
        }
    }

    fn moves(name: &str, added: usize, removed: usize) -> KeyMoves {
        KeyMoves {
            name: name.to_owned(),
            through_lb: name != "modulo hash",
            added: Moved {
                moved: added,
                measured: 100,
            },
            removed: Moved {
                moved: removed,
                measured: 100,
            },
        }
    }

    fn bakeoff() -> Bakeoff {
        let slow = [1, 1, 20];
        Bakeoff {
            seed: 1,
            size: Size::SMALL,
            mode: "quick",
            lb: PathBuf::from("target/release/lb"),
            runs: vec![
                run(
                    Scenario::SLOW,
                    Algorithm::RoundRobin,
                    &[10, 10, 10],
                    &slow,
                ),
                run(
                    Scenario::SLOW,
                    Algorithm::LeastConnections,
                    &[19, 19, 2],
                    &slow,
                ),
                run(Scenario::SLOW, Algorithm::PowerOfTwo, &[18, 18, 3], &slow),
                run(Scenario::Added, Algorithm::Maglev, &[5, 5, 5, 5], &[1; 4]),
            ],
            keys: vec![moves("maglev", 20, 21), moves("modulo hash", 80, 79)],
        }
    }

    #[test]
    fn the_table_has_a_column_per_backend_and_a_row_per_run() {
        let table = table(&bakeoff());
        let header = |cells: &str| {
            table.lines().any(|line| {
                line.split_whitespace().collect::<Vec<_>>().join(" ") == cells
            })
        };
        assert!(
            header("algorithm requests errors b1 b2 b3 p50 ms p90 ms p99 ms"),
            "{table}"
        );
        assert!(
            header(
                "algorithm requests errors b1 b2 b3 b4 p50 ms p90 ms p99 ms"
            ),
            "{table}"
        );
        assert!(table.contains("least-connections"), "{table}");
        assert!(
            table.contains("maglev (lb)                     20.0%      21.0%"),
            "{table}"
        );
    }

    #[test]
    fn the_report_says_whether_the_claims_hold_and_shows_every_chart() {
        let report = markdown(&bakeoff());
        assert!(
            report
                .contains("the clients' p90 was 20.00 ms, 1.00 ms and 1.00 ms"),
            "{report}"
        );
        assert!(report.contains("round robin: **holds**"), "{report}");
        assert!(report.contains("(at most 1/5 + 2% = 22%: **holds**)"));
        assert!(report.contains("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n"));
        for chart in charts(&bakeoff()).unwrap().iter().map(|(name, _)| name) {
            assert!(report.contains(&format!("(./{chart})")), "{chart}");
        }
    }

    #[test]
    fn records_are_csv_with_quoted_errors() {
        let mut bakeoff = bakeoff();
        bakeoff.runs[0].records[0].outcome = Err("said \"no\"".to_owned());
        let csv = records_csv(&bakeoff, Scenario::SLOW);
        let mut lines = csv.lines();
        assert_eq!(
            lines.next(),
            Some("algorithm,lane,client,start_us,end_us,backend,error")
        );
        assert_eq!(
            lines.next(),
            Some("round-robin,0,127.0.0.1,0,1000,,\"said \"\"no\"\"\"")
        );
        assert_eq!(lines.next(), Some("round-robin,0,127.0.0.1,1000,2000,b1,"));
    }
}
