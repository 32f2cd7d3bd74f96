//! The write-up: BENCHMARKS.md (or quick.md, smoke.md) from the figures
//! of one run. It prints only what was measured: the contenders that ran,
//! a × HAProxy column only when HAProxy ran, and a CPU column only when
//! the runs were long enough for the clock tick to measure it. Under each
//! comparison it names every peer's best configuration and `lb` ÷ the best
//! peer, which [`Report::chart_bars`] also hands to the chart.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use super::plan::{Contender, Launch, Mode, Set, Workload};
use super::reloads::{ReloadRun, Shape};
use super::scrape;
use super::stats::{self, MemoryRun, Paired, Run};
use super::{Quiet, Table};

/// Everything the report is written from.
pub struct Report {
    pub mode: Mode,
    pub command_line: String,
    pub started_at: time::OffsetDateTime,
    pub elapsed: Duration,
    pub cores: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub quiet: Quiet,
    pub busy_limit: f64,
    pub versions: String,
    pub release_profile: String,
    pub connections: usize,
    pub duration: u64,
    pub idle: usize,
    pub memory_runs: u32,
    /// The contenders that ran, in the report's order.
    pub contenders: Vec<Contender>,
    pub tables: BTreeMap<(Workload, Set), Table>,
    pub memory: Vec<(String, MemoryRun)>,
    /// The reloads workload's runs, and its load.
    pub reloads: Vec<ReloadRun>,
    pub reload_shape: Option<Shape>,
    /// `--baseline`: (contender, baseline) pairs of contender keys.
    pub baselines: Vec<(String, String)>,
    /// The admin pages fetched during each scraped contender's runs, by
    /// contender key.
    pub scrapes: BTreeMap<String, scrape::Counts>,
    /// The files written for the programs, by name.
    pub configs: BTreeMap<String, String>,
    /// The work folder's path, shown as $TMP in the configurations.
    pub work: String,
    /// Contenders that would not start, by key: why.
    pub skipped: BTreeMap<String, String>,
    /// The chart of lb ÷ best peer, as the report links it.
    pub chart: Option<String>,
}

/// `lb` against the best configuration of its peers in one table.
#[derive(Clone, Debug, PartialEq)]
pub struct BestPeer {
    /// Per peer ("HAProxy", "nginx"): its best configuration's key and
    /// CPU per unit (lowest; by rate where no CPU figure exists).
    pub per_peer: Vec<(&'static str, String, Option<f64>)>,
    /// The best of them all, its key.
    pub best: String,
    /// lb's CPU per unit ÷ the best's, and its rate ÷ the best's, each
    /// paired round by round.
    pub cpu: Option<Paired>,
    pub rate: Option<Paired>,
}

/// `"—"` for no figure, else the figure.
fn cell(value: Option<f64>, format: impl Fn(f64) -> String) -> String {
    value.map_or_else(|| "—".to_owned(), format)
}

/// 71911.4 → "71,911".
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    if value < -0.5 {
        out.insert(0, '-');
    }
    out
}

fn median_of(count: u32, what: &str) -> String {
    if count == 1 {
        format!("One {what}")
    } else {
        format!("Median of {count} {what}s")
    }
}

/// Above this rate, a "new connection per request" run cannot have made
/// a TLS handshake per request here: handshakes run at a few thousand a
/// second on this machine's 2 cores, kept-alive requests at tens of
/// thousands.
pub const HANDSHAKE_RATE_LIMIT: f64 = 15_000.0;

/// A line saying whether the TLS handshake table's rates tell a new
/// connection per request, as they must.
fn handshake_check(table: &Table) -> String {
    let fastest = table
        .samples
        .values()
        .flatten()
        .map(|sample| sample.run.rate)
        .fold(0.0, f64::max);
    if fastest <= 0.0 {
        String::new()
    } else if fastest <= HANDSHAKE_RATE_LIMIT {
        format!(
            "\nEvery run under {} req/s (the fastest: {}): a new connection, \
             and a full handshake, per request.\n",
            thousands(HANDSHAKE_RATE_LIMIT),
            thousands(fastest)
        )
    } else {
        format!(
            "\n**Check this table**: a run reached {} req/s, above the {} a \
             handshake per request allows here; connections were kept \
             alive.\n",
            thousands(fastest),
            thousands(HANDSHAKE_RATE_LIMIT)
        )
    }
}

/// A workload's CPU scale (per CPU-second), its unit, and its rate's.
fn per_unit(workload: Workload) -> (f64, &'static str, &'static str) {
    match workload {
        Workload::Bulk => (1e3, "ms/GB", "Gbit/s"),
        _ => (1e6, "µs/req", "req/s"),
    }
}

fn set_name(set: Set) -> &'static str {
    match set {
        Set::Nginx => "nginx answering a fixed body",
        Set::Dummy => "the lab's dummy servers (axum)",
        Set::Iperf => "one iperf3 server behind every slot",
        Set::Tls => {
            "nginx answering a fixed body (plain HTTP behind the TLS front)"
        }
        Set::Scale => {
            "nginx answering a fixed body, one port behind every entry"
        }
    }
}

impl Report {
    fn has_haproxy(&self) -> bool {
        self.contenders.iter().any(|c| c.key == "haproxy")
    }

    fn label(&self, key: &str) -> String {
        if key == "direct" {
            return "direct".into();
        }
        self.contenders
            .iter()
            .find(|c| c.key == key)
            .map_or_else(|| key.to_owned(), |c| c.label.clone())
    }

    /// The rows of a table: direct first, then the contenders that ran
    /// this workload, in the report's order.
    fn rows(&self, table: &Table) -> Vec<String> {
        let mut keys = vec!["direct".to_owned()];
        keys.extend(
            self.contenders
                .iter()
                .filter(|c| table.samples.contains_key(&c.key))
                .map(|c| c.key.clone()),
        );
        keys
    }

    fn runs(table: &Table, key: &str) -> Vec<Run> {
        table
            .samples
            .get(key)
            .map(|samples| samples.iter().map(|s| s.run).collect())
            .unwrap_or_default()
    }

    fn ratios(table: &Table, key: &str) -> Vec<(u32, f64)> {
        table
            .samples
            .get(key)
            .map(|samples| {
                samples
                    .iter()
                    .filter_map(|s| s.ratio.map(|r| (s.round, r)))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn median_by(
        table: &Table,
        key: &str,
        field: impl Fn(&Run) -> f64,
    ) -> Option<f64> {
        stats::median(
            &Report::runs(table, key)
                .iter()
                .map(field)
                .collect::<Vec<_>>(),
        )
    }

    /// "0.53 (0.49–0.63)": the median ratio to direct and its range.
    fn ratio_cell(table: &Table, key: &str) -> String {
        if key == "direct" {
            return "1.00".into();
        }
        let ratios: Vec<f64> =
            Report::ratios(table, key).iter().map(|r| r.1).collect();
        let mut text = cell(stats::median(&ratios), |r| format!("{r:.2}"));
        if let Some((low, high)) = stats::spread(&ratios) {
            write!(text, " ({low:.2}–{high:.2})").expect("a String");
        }
        text
    }

    /// A contender's × direct over HAProxy's, round by round; direct's is
    /// 1 over HAProxy's.
    fn haproxy_cell(table: &Table, key: &str) -> String {
        let reference = Report::ratios(table, "haproxy");
        let mine: Vec<(u32, f64)> = if key == "direct" {
            reference.iter().map(|&(round, _)| (round, 1.0)).collect()
        } else {
            Report::ratios(table, key)
        };
        cell(stats::ratio_to_reference(&mine, &reference), |r| {
            format!("{r:.2}")
        })
    }

    fn cpu(&self, table: &Table, key: &str, scale: f64) -> Option<f64> {
        stats::median_cpu(&Report::runs(table, key), scale)
    }

    /// The best configuration of each peer in `table` (lowest CPU per
    /// unit, `scale` as in [`stats::cpu_per_unit`]; highest rate where no
    /// CPU figure exists), the best of all, and `lb` ÷ that one.
    pub fn best_peer(&self, table: &Table, scale: f64) -> Option<BestPeer> {
        if !table.samples.contains_key("lb") {
            return None;
        }
        let mut per_peer: Vec<(&'static str, String, Option<f64>)> = Vec::new();
        for peer in ["HAProxy", "nginx"] {
            let configs: Vec<&Contender> = self
                .contenders
                .iter()
                .filter(|c| c.peer() == Some(peer))
                .filter(|c| table.samples.contains_key(&c.key))
                .collect();
            let by_cpu = configs
                .iter()
                .filter_map(|c| Some((c, self.cpu(table, &c.key, scale)?)))
                .min_by(|a, b| a.1.total_cmp(&b.1));
            let chosen = match by_cpu {
                Some((c, cpu)) => Some((c.key.clone(), Some(cpu))),
                None => configs
                    .iter()
                    .filter_map(|c| {
                        Some((c, Report::median_by(table, &c.key, |r| r.rate)?))
                    })
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(c, _)| (c.key.clone(), None)),
            };
            if let Some((key, cpu)) = chosen {
                per_peer.push((peer, key, cpu));
            }
        }
        let best = if per_peer.iter().all(|p| p.2.is_some()) {
            per_peer.iter().min_by(|a, b| {
                a.2.unwrap_or(0.0).total_cmp(&b.2.unwrap_or(0.0))
            })
        } else {
            per_peer.iter().max_by(|a, b| {
                let rate = |key: &str| {
                    Report::median_by(table, key, |r| r.rate).unwrap_or(0.0)
                };
                rate(&a.1).total_cmp(&rate(&b.1))
            })
        }?
        .1
        .clone();
        let lb = Report::rounds(table, "lb");
        let theirs = Report::rounds(table, &best);
        Some(BestPeer {
            cpu: Paired::cpu(&lb, &theirs, scale),
            rate: Paired::rate(&lb, &theirs),
            per_peer,
            best,
        })
    }

    /// The lines under a table: each peer's best configuration, and lb ÷
    /// the best peer.
    fn best_peer_text(&self, table: &Table, workload: Workload) -> String {
        let (scale, unit, rate_unit) = per_unit(workload);
        let Some(best) = self.best_peer(table, scale) else {
            return String::new();
        };
        let peers: Vec<String> = best
            .per_peer
            .iter()
            .map(|(peer, key, cpu)| {
                let figure = cell(*cpu, |v| format!("{v:.1} {unit}"));
                format!("{peer}: {} ({figure})", self.label(key))
            })
            .collect();
        let paired = |p: &Option<Paired>| {
            cell(p.as_ref().map(|p| p.median), |r| format!("**{r:.2}**"))
                + &p.as_ref()
                    .filter(|p| p.per_round.len() > 1)
                    .map_or(String::new(), |p| {
                        format!(" ({:.2}–{:.2})", p.low, p.high)
                    })
        };
        format!(
            "\nBest configuration of each peer, by CPU {unit}: {}. \
             lb ÷ best peer ({}), round by round: CPU {unit} {}, {rate_unit} {}.\n",
            peers.join("; "),
            self.label(&best.best),
            paired(&best.cpu),
            paired(&best.rate),
        )
    }

    /// The chart's bars: per compared workload, lb's CPU ÷ the best
    /// peer's (the median of the per-round ratios).
    pub fn chart_bars(&self) -> Vec<(String, f64)> {
        let mut bars = Vec::new();
        for ((workload, set), table) in &self.tables {
            let name = match (workload, set) {
                (Workload::KeepAlive, Set::Nginx) => "kept-alive",
                (Workload::Close, Set::Nginx) => "new connection",
                (Workload::KeepAlive, Set::Dummy) => "kept-alive (dummy)",
                (Workload::Close, Set::Dummy) => "new conn. (dummy)",
                (Workload::Bulk, _) => "bulk",
                (Workload::TlsNew, _) => "TLS handshake",
                (Workload::TlsKeepAlive, _) => "TLS kept-alive",
                _ => continue,
            };
            let (scale, _, _) = per_unit(*workload);
            if let Some(ratio) = self
                .best_peer(table, scale)
                .and_then(|best| best.cpu)
                .map(|cpu| cpu.median)
            {
                bars.push((name.to_owned(), ratio));
            }
        }
        bars
    }

    fn http_table(&self, table: &Table) -> String {
        let rows = self.rows(table);
        let haproxy = self.has_haproxy();
        let with_cpu =
            rows.iter().any(|key| self.cpu(table, key, 1e6).is_some());
        let mut head = vec!["contender", "req/s", "× direct (range)"];
        let mut align = vec!["---", "--:", "--:"];
        if haproxy {
            head.push("× HAProxy");
            align.push("--:");
        }
        head.extend(["p50 ms", "p99 ms"]);
        align.extend(["--:", "--:"]);
        if with_cpu {
            head.push("CPU µs/req");
            align.push("--:");
        }
        // wrk's own CPU: on 2 cores it is often what limits the rate.
        let with_load = rows.iter().any(|key| {
            Report::runs(table, key).iter().any(|r| r.load_cpu_ns > 0)
        }) && self.duration > 0;
        if with_load {
            head.push("wrk cores");
            align.push("--:");
        }
        let mut out =
            format!("| {} |\n|{}|\n", head.join(" | "), align.join("|"));
        for key in rows {
            let errors: u64 =
                Report::runs(table, &key).iter().map(|r| r.errors).sum();
            let mut name = self.label(&key);
            if errors > 0 {
                write!(name, " ({errors} errors)").expect("a String");
            }
            let mut cells = vec![
                name,
                cell(Report::median_by(table, &key, |r| r.rate), thousands),
                Report::ratio_cell(table, &key),
            ];
            if haproxy {
                cells.push(Report::haproxy_cell(table, &key));
            }
            let ms = |v: f64| format!("{:.2}", v / 1000.0);
            cells.push(cell(Report::median_by(table, &key, |r| r.p50_us), ms));
            cells.push(cell(Report::median_by(table, &key, |r| r.p99_us), ms));
            if with_cpu {
                let cpu = self.cpu(table, &key, 1e6);
                cells.push(if key == "direct" {
                    cell(cpu, |v| format!("({v:.1} backend)"))
                } else {
                    cell(cpu, |v| format!("{v:.1}"))
                });
            }
            if with_load {
                let seconds = self.duration as f64;
                cells.push(cell(
                    Report::median_by(table, &key, |r| {
                        r.load_cpu_ns as f64 / 1e9 / seconds
                    }),
                    |v| format!("{v:.2}"),
                ));
            }
            writeln!(out, "| {} |", cells.join(" | ")).expect("a String");
        }
        out
    }

    fn bulk_table(&self, table: &Table) -> String {
        let rows = self.rows(table);
        let haproxy = self.has_haproxy();
        let with_cpu =
            rows.iter().any(|key| self.cpu(table, key, 1e3).is_some());
        let mut head = vec!["contender", "Gbit/s", "× direct (range)"];
        let mut align = vec!["---", "--:", "--:"];
        if haproxy {
            head.push("× HAProxy");
            align.push("--:");
        }
        if with_cpu {
            head.push("CPU ms/GB");
            align.push("--:");
        }
        let mut out =
            format!("| {} |\n|{}|\n", head.join(" | "), align.join("|"));
        for key in rows {
            let mut cells = vec![
                self.label(&key),
                cell(Report::median_by(table, &key, |r| r.rate), |v| {
                    format!("{v:.1}")
                }),
                Report::ratio_cell(table, &key),
            ];
            if haproxy {
                cells.push(Report::haproxy_cell(table, &key));
            }
            if with_cpu {
                cells.push(cell(self.cpu(table, &key, 1e3), |v| {
                    format!("{v:.0}")
                }));
            }
            writeln!(out, "| {} |", cells.join(" | ")).expect("a String");
        }
        out
    }

    fn memory_runs_of(&self, key: &str) -> Vec<MemoryRun> {
        self.memory
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, run)| *run)
            .collect()
    }

    fn bytes_per_connection(&self, key: &str) -> Option<f64> {
        let runs = self.memory_runs_of(key);
        stats::median(
            &runs
                .iter()
                .map(MemoryRun::bytes_per_connection)
                .collect::<Vec<_>>(),
        )
    }

    fn memory_table(&self) -> String {
        let haproxy = self.has_haproxy();
        let mut head = vec![
            "contender".to_owned(),
            "RSS idle, MiB".into(),
            format!("RSS with {} connections, MiB", self.idle),
            "bytes per connection".into(),
        ];
        if haproxy {
            head.push("× HAProxy".into());
        }
        head.push("fds per connection".into());
        let align = vec!["--:"; head.len() - 1].join("|");
        let mut out = format!("| {} |\n|---|{align}|\n", head.join(" | "));
        let reference: Vec<(u32, f64)> = self
            .memory_runs_of("haproxy")
            .iter()
            .map(|run| (run.round, run.bytes_per_connection()))
            .collect();
        for contender in &self.contenders {
            let runs = self.memory_runs_of(&contender.key);
            if runs.is_empty() {
                continue;
            }
            let median = |f: &dyn Fn(&MemoryRun) -> f64| {
                stats::median(&runs.iter().map(f).collect::<Vec<_>>())
            };
            let mib = |v: f64| format!("{:.1}", v / 1024.0);
            let mut name = contender.label.clone();
            if contender.layer7() {
                name.push_str(
                    " (layer 7: an idle client holds no backend connection)",
                );
            }
            let mut cells = vec![
                name,
                cell(median(&|r| r.rss_before_kib as f64), mib),
                cell(median(&|r| r.rss_after_kib as f64), mib),
                cell(self.bytes_per_connection(&contender.key), thousands),
            ];
            if haproxy {
                let mine: Vec<(u32, f64)> = runs
                    .iter()
                    .map(|run| (run.round, run.bytes_per_connection()))
                    .collect();
                cells.push(cell(
                    stats::ratio_to_reference(&mine, &reference),
                    |r| format!("{r:.2}"),
                ));
            }
            cells.push(cell(median(&|r| r.fds_per_connection()), |v| {
                format!("{v:.1}")
            }));
            writeln!(out, "| {} |", cells.join(" | ")).expect("a String");
        }
        out
    }

    /// (round, run) of every run of `key` in `table`.
    fn rounds(table: &Table, key: &str) -> Vec<(u32, Run)> {
        table
            .samples
            .get(key)
            .map(|samples| samples.iter().map(|s| (s.round, s.run)).collect())
            .unwrap_or_default()
    }

    /// `--baseline`: each pair's CPU per request (per GB for bulk) as a
    /// ratio taken round by round.
    fn baseline_section(&self) -> Option<String> {
        if self.baselines.is_empty() {
            return None;
        }
        let mut rows = String::new();
        for (contender, baseline) in &self.baselines {
            for ((workload, set), table) in &self.tables {
                let (what, scale) = match workload {
                    Workload::KeepAlive => ("kept-alive", 1e6),
                    Workload::Close => ("new connection", 1e6),
                    Workload::Bulk => ("bulk (per GB)", 1e3),
                    Workload::TlsNew => ("TLS handshake", 1e6),
                    Workload::TlsKeepAlive => ("TLS kept-alive", 1e6),
                    Workload::Memory | Workload::Reloads | Workload::Scale => {
                        continue;
                    }
                };
                let mine = Report::rounds(table, contender);
                let theirs = Report::rounds(table, baseline);
                if mine.is_empty() || theirs.is_empty() {
                    continue;
                }
                let pair = format!(
                    "{} ÷ {}",
                    self.label(contender),
                    self.label(baseline)
                );
                let Some(cpu) = Paired::cpu(&mine, &theirs, scale) else {
                    writeln!(
                        rows,
                        "| {pair} | {what} ({} backends) | — | — | — | — | — |",
                        set.name()
                    )
                    .expect("a String");
                    continue;
                };
                let rate = Paired::rate(&mine, &theirs);
                let each: Vec<String> = cpu
                    .per_round
                    .iter()
                    .map(|(_, r)| format!("{r:.3}"))
                    .collect();
                writeln!(
                    rows,
                    "| {pair} | {what} ({} backends) | **{:.3}** | {:.3}–{:.3} \
                     | {} of {} | {} | {} |",
                    set.name(),
                    cpu.median,
                    cpu.low,
                    cpu.high,
                    cpu.rounds_within(0.05),
                    cpu.per_round.len(),
                    cell(rate.map(|r| r.median), |r| format!("{r:.3}")),
                    each.join(" ")
                )
                .expect("a String");
            }
        }
        Some(format!(
            "\n## CPU per request ÷ baseline, per round\n\n\
             Every round runs each contender once, one after another (the \
             order turns\nfrom round to round), so a contender's CPU per \
             request can be divided by\nits baseline's from the same round, \
             a minute apart at most: the machine's\ndrift between rounds \
             falls out of the ratio. The median of those per-round\n\
             ratios, the lowest and highest, how many rounds lie within 5% \
             of 1, the\nrequest rate's ratio taken the same way, and each \
             round's CPU ratio in\nround order.\n\n\
             | contender ÷ baseline | workload | CPU/req ÷ (median) | range \
             | rounds within 5% | req/s ÷ | per round |\n\
             |---|---|--:|--:|--:|--:|---|\n{rows}"
        ))
    }

    /// `lb` against step 08, whose relay it carries: what its health
    /// checks and least-connections bookkeeping cost.
    fn lb_section(&self) -> Option<String> {
        let has = |key: &str| self.contenders.iter().any(|c| c.key == key);
        if !(has("lb") && has("08")) {
            return None;
        }
        let mut rows = Vec::new();
        for ((workload, set), table) in &self.tables {
            let (what, scale) = match workload {
                Workload::KeepAlive => ("CPU µs per request, kept-alive", 1e6),
                Workload::Close => ("CPU µs per request, new connection", 1e6),
                Workload::Bulk => ("CPU ms per GB, bulk", 1e3),
                Workload::Memory
                | Workload::Reloads
                | Workload::TlsNew
                | Workload::TlsKeepAlive
                | Workload::Scale => continue,
            };
            let bound = if *workload == Workload::Bulk {
                ""
            } else {
                "≤ 1.05"
            };
            let eight = self.cpu(table, "08", scale);
            let lb = self.cpu(table, "lb", scale);
            let digits = |v: f64| {
                if scale > 1e5 {
                    format!("{v:.1}")
                } else {
                    format!("{v:.0}")
                }
            };
            if eight.is_none() && lb.is_none() {
                continue;
            }
            let checks = if *set == Set::Iperf {
                ", lb's checks off"
            } else {
                ""
            };
            rows.push([
                format!("{what} ({} backends{checks})", set.name()),
                cell(eight, digits),
                cell(lb, digits),
                cell(eight.zip(lb).map(|(e, l)| l / e), |r| format!("{r:.2}")),
                bound.to_owned(),
            ]);
        }
        let eight = self.bytes_per_connection("08");
        let lb = self.bytes_per_connection("lb");
        if eight.is_some() || lb.is_some() {
            rows.push([
                "bytes per idle connection".into(),
                cell(eight, thousands),
                cell(lb, thousands),
                cell(eight.zip(lb).map(|(e, l)| l / e), |r| format!("{r:.2}")),
                "lb ≤ 3,500".into(),
            ]);
        }
        if rows.is_empty() {
            return None;
        }
        let mut out = String::from(
            "\n## lb beside 08-final\n\n`lb` relays what step 08 relays, with \
             its own relay (a small buffer while\na connection waits, a big \
             one while bytes stream) where 08 uses\n`copy_bidirectional`, and \
             adds health checks and its algorithm's\nbookkeeping \
             (round robin here). Its bar: \
             CPU per request at most 1.05 × 08-final's, and at\nmost 3,500 \
             bytes per idle connection. \"—\": not measured (a run too \
             short\nfor the clock tick, or a workload not run).\n\n\
             | figure | 08-final | lb | lb ÷ 08-final | bar |\n|---|--:|--:|--:|--:|\n",
        );
        for row in rows {
            writeln!(out, "| {} |", row.join(" | ")).expect("a String");
        }
        Some(out)
    }

    fn section(&self, workload: Workload, set: Set) -> Option<String> {
        let table = self.tables.get(&(workload, set))?;
        let rounds = median_of(table.rounds, "round");
        let (heading, body) = match workload {
            Workload::KeepAlive => (
                "Small HTTP requests over kept-alive connections".to_owned(),
                self.http_table(table),
            ),
            Workload::Close => (
                "A new TCP connection per request (`Connection: close`)"
                    .to_owned(),
                self.http_table(table),
            ),
            Workload::Bulk => (
                if self.mode == Mode::Smoke {
                    "Bulk transfer: curl reading 20 MB of /bytes/N".to_owned()
                } else {
                    "Bulk transfer: iperf3, one stream, client to server"
                        .to_owned()
                },
                self.bulk_table(table),
            ),
            Workload::TlsNew => (
                "TLS: a new handshake per request (`Connection: close`)"
                    .to_owned(),
                self.http_table(table) + &handshake_check(table),
            ),
            Workload::TlsKeepAlive => (
                "TLS: small requests over kept-alive TLS connections"
                    .to_owned(),
                self.http_table(table),
            ),
            Workload::Memory | Workload::Reloads | Workload::Scale => {
                return None;
            }
        };
        let only = match workload {
            Workload::Bulk => " Layer-4 balancers only.",
            Workload::TlsNew | Workload::TlsKeepAlive => {
                " The balancer terminates TLS (one ECDSA P-256 certificate \
                 for all, no session cache, no tickets); direct: the backend \
                 nginx terminating TLS itself; wrk cores: wrk's own CPU \
                 time over the run's length."
            }
            _ => "",
        };
        Some(format!(
            "\n## {heading}\n\nBackends: {}.{only} {rounds}.\n\n{body}{}",
            set_name(set),
            self.best_peer_text(table, workload)
        ))
    }

    /// The scale workload: per algorithm, lb's CPU per new connection
    /// with 1,000 backends ÷ with 3, paired round by round.
    fn scale_section(&self) -> Option<String> {
        let table = self.tables.get(&(Workload::Scale, Set::Scale))?;
        let mut out = format!(
            "\n## Scale: lb with 3 and with 1,000 backends\n\n\
             A new TCP connection per request (`Connection: close`) through \
             `lb` with 3 backend entries and with 1,000 (`s1` to `s1000`), \
             every one at the same nginx port, health checks off. In each \
             round the two runs of an algorithm come back to back, between \
             two direct runs; the ratio is taken round by round. Target: \
             1,000 ÷ 3 ≤ 1.2. {}.\n\n\
             | algorithm | req/s, 3 | req/s, 1,000 | CPU µs/conn, 3 | \
             CPU µs/conn, 1,000 | CPU 1,000 ÷ 3 (range) | target |\n\
             |---|--:|--:|--:|--:|--:|---|\n",
            median_of(table.rounds, "round")
        );
        for algorithm in super::SCALE_ALGORITHMS {
            let [few, many] = super::SCALE_SIZES
                .map(|size| super::scale_key(algorithm, size));
            if !table.samples.contains_key(&few) {
                continue;
            }
            let rate = |key: &str| {
                cell(Report::median_by(table, key, |r| r.rate), thousands)
            };
            let cpu = |key: &str| {
                cell(self.cpu(table, key, 1e6), |v| format!("{v:.1}"))
            };
            let paired = Paired::cpu(
                &Report::rounds(table, &many),
                &Report::rounds(table, &few),
                1e6,
            );
            let (ratio, verdict) = match &paired {
                Some(p) => {
                    let mut text = format!("**{:.2}**", p.median);
                    if p.per_round.len() > 1 {
                        write!(text, " ({:.2}–{:.2})", p.low, p.high)
                            .expect("a String");
                    }
                    let met =
                        if p.median <= 1.2 { "met" } else { "**missed**" };
                    (text, met)
                }
                None => ("—".to_owned(), "—"),
            };
            writeln!(
                out,
                "| {algorithm} | {} | {} | {} | {} | {ratio} | ≤ 1.2: {verdict} |",
                rate(&few),
                rate(&many),
                cpu(&few),
                cpu(&many),
            )
            .expect("a String");
        }
        Some(out)
    }

    /// All workloads' lb ÷ best peer in one table, and the chart.
    fn best_peer_section(&self) -> Option<String> {
        let mut rows = String::new();
        for ((workload, set), table) in &self.tables {
            let what = match workload {
                Workload::KeepAlive => "kept-alive",
                Workload::Close => "new connection",
                Workload::Bulk => "bulk",
                Workload::TlsNew => "TLS, new handshake per request",
                Workload::TlsKeepAlive => "TLS, kept-alive",
                _ => continue,
            };
            let (scale, unit, rate_unit) = per_unit(*workload);
            let Some(best) = self.best_peer(table, scale) else {
                continue;
            };
            let median = |p: &Option<Paired>| {
                cell(p.as_ref().map(|p| p.median), |r| format!("{r:.2}"))
            };
            writeln!(
                rows,
                "| {what} ({} backends) | {} | {} {unit} | {} {unit} | **{}** | {} ({rate_unit}) |",
                set.name(),
                self.label(&best.best),
                cell(self.cpu(table, "lb", scale), |v| format!("{v:.1}")),
                cell(self.cpu(table, &best.best, scale), |v| format!("{v:.1}")),
                median(&best.cpu),
                median(&best.rate),
            )
            .expect("a String");
        }
        if rows.is_empty() {
            return None;
        }
        let chart = self.chart.as_ref().map_or(String::new(), |link| {
            format!("\n![lb's CPU ÷ the best peer's, per workload]({link})\n")
        });
        Some(format!(
            "\n## lb ÷ the best peer\n\nPer workload, the best configuration \
             among HAProxy's and nginx's (lowest CPU per request, or per GB), \
             and lb's CPU and rate divided by that one's, round by round \
             (the median). Every balancer here balances round robin. Target: \
             CPU ≤ 0.9.\n\n\
             | workload | best peer | lb CPU | best peer CPU | lb ÷ best, CPU | \
             lb ÷ best, rate |\n|---|---|--:|--:|--:|--:|\n{rows}{chart}"
        ))
    }

    fn conditions(&self) -> String {
        let q = &self.quiet;
        let limit = format!("{:.0}%", self.busy_limit * 100.0);
        let mut text = if q.busy_runs == 0 {
            let mut text = format!(
                "quiet: all {} runs started with the machine under {limit} busy",
                q.quiet_runs
            );
            if q.waits > 0 {
                write!(
                    text,
                    ", {} of them after waiting ({} s in all) for other work to finish",
                    q.waits, q.waited_seconds
                )
                .expect("a String");
            }
            text
        } else {
            format!(
                "NOT quiet: {} of {} runs started while other work kept the \
                 machine over {limit} busy (up to {:.0}%)",
                q.busy_runs,
                q.busy_runs + q.quiet_runs,
                q.max_busy * 100.0
            )
        };
        if q.repeated > 0 || q.disturbed_kept > 0 {
            write!(
                text,
                "; {} contender runs made again because other work started \
                 during them",
                q.repeated
            )
            .expect("a String");
            if q.disturbed_kept > 0 {
                write!(
                    text,
                    ", {} kept after {} tries although it did",
                    q.disturbed_kept,
                    super::OTHER_RETRIES + 1
                )
                .expect("a String");
            }
        }
        if q.max_other > 0.0 {
            write!(
                text,
                "; other work during the runs kept: at most {:.2} cores",
                q.max_other
            )
            .expect("a String");
        }
        if !q.builds_seen.is_empty() {
            let seen: Vec<&str> =
                q.builds_seen.iter().map(String::as_str).collect();
            write!(
                text,
                "; builds seen running during the run: {}",
                seen.join(" ")
            )
            .expect("a String");
        }
        text
    }

    fn contenders_section(&self) -> String {
        let mut out = String::from("\n## Contenders\n\n");
        let steps: Vec<String> = self
            .contenders
            .iter()
            .filter(|c| matches!(c.key.as_str(), "04" | "08"))
            .map(|c| format!("**{}**", c.label))
            .collect();
        if !steps.is_empty() {
            let (them, steps_word) = if steps.len() == 1 {
                ("its", "step")
            } else {
                ("their", "steps")
            };
            writeln!(
                out,
                "- {}: the lab's layer-4 {steps_word}, with {them}\n  defaults \
                 (tokio's multi-thread runtime, one worker per core: {}).",
                steps.join(", "),
                self.cores
            )
            .expect("a String");
        }
        for contender in &self.contenders {
            let line = match contender.key.as_str() {
                "09" => format!(
                    "- **{}**: the lab's layer-7 proxy (hyper): HTTP workloads only.",
                    contender.label
                ),
                "lb" => "- **lb**: the lab's balancer to keep (`balancer/`), \
                         `algorithm =\n  \"round-robin\"` (as every peer here), \
                         TCP health checks every second. For the iperf3\n  bulk run \
                         its checks are off (`kind = \"off\"`): iperf3's server takes \
                         one\n  client at a time, and a check's connection would take \
                         its place. With TLS: `[tls] cert`, `key`."
                    .to_owned(),
                "lb-lc" => "- **lb least-connections**: lb with `algorithm = \
                            \"least-connections\"`\n  (nginx backends and bulk only)."
                    .to_owned(),
                "lb-nosplice" => "- **lb no splice**: lb with `[limits] splice_pipes = 0` \
                                  (no kernel pipes for\n  splice(2): the buffered relay \
                                  alone); nginx backends and bulk only."
                    .to_owned(),
                "haproxy-splice" => format!(
                    "- **HAProxy splice-auto**: as HAProxy, with `option splice-auto` \
                     and\n  `maxconn {}` (more does not fit the open-file limit with \
                     pipes); nginx\n  backends and bulk only.",
                    super::configs::HAPROXY_SPLICE_MAXCONN
                ),
                "nginx-reuseport" => "- **nginx stream reuseport**: as nginx stream, with \
                                      `listen ... reuseport`\n  (a listening socket per \
                                      worker) and `proxy_buffer_size 64k`; nginx\n  \
                                      backends and bulk only."
                    .to_owned(),
                "haproxy" => format!(
                    "- **HAProxy**: `mode tcp`, `balance roundrobin`, `nbthread {}`, no\n  \
                     logging, default buffers (16 KiB), no `option splice-auto`. With\n  \
                     TLS: `bind ... ssl crt PEM no-tls-tickets`, `tune.ssl.cachesize 0`.",
                    self.cores
                ),
                "nginx" => format!(
                    "- **nginx stream**: `stream {{ upstream ... }}` (round robin by default),\n  \
                     `worker_processes {}`, no logging, default buffers (16 KiB),\n  \
                     `tcp_nodelay on` (the default). With TLS: `listen ... ssl`,\n  \
                     `ssl_session_cache off`, `ssl_session_tickets off`.",
                    self.cores
                ),
                key if key.starts_with('x') => match &contender.launch {
                    Launch::Extra(command) => {
                        let mut line =
                            format!("- **{}**: `{command}`", contender.label);
                        if contender.has_admin() {
                            line.push_str(
                                "; during each of its load runs, \
                                 `/metrics` and\n  `/api/stats` were fetched \
                                 from its admin listener once a second each",
                            );
                            if let Some(counts) = self.scrapes.get(key) {
                                write!(
                                    line,
                                    " ({})",
                                    scrape::describe(counts)
                                )
                                .expect("a String");
                            }
                        }
                        line
                    }
                    _ => continue,
                },
                _ => continue,
            };
            writeln!(out, "{line}").expect("a String");
        }
        for (key, why) in &self.skipped {
            writeln!(
                out,
                "- **{}**: did not start, so not measured: {why}",
                self.label(key)
            )
            .expect("a String");
        }
        if self.mode == Mode::Smoke {
            out.push_str(
                "- backends: the lab's dummy servers (debug build) on three ports.\n",
            );
        } else {
            writeln!(
                out,
                "- backends: one nginx (`worker_processes {}`, no access log) answering\n  \
                 a 54-byte body on three ports; the lab's dummy servers as a second set;\n  \
                 one iperf3 server, every balancer slot pointed at it, for bulk.",
                self.cores
            )
            .expect("a String");
        }
        out
    }

    /// The reloads workload: connections lost while each balancer was
    /// reloaded (or upgraded) under load.
    fn reloads_section(&self) -> Option<String> {
        let shape = self.reload_shape?;
        if self.reloads.is_empty() {
            return None;
        }
        let mut out = format!(
            "\n## Reloads under load\n\nThe load: {load}. Backends: {set}. \
             Each balancer is changed {reloads} times ({upgrades} for \
             upgrades) between two configurations that differ in weights, \
             in the algorithm (round robin, or weighted round robin, then \
             least connections) and in one backend added and one removed; \
             the next change comes once {settle} new connections have been \
             served since the last was seen done (HAProxy: the new process \
             holds a listening socket and the old one none; `lb`: its \
             `reloaded:` line, or the new process's `listening on`), and \
             for an upgrade once {fresh} transfers have started on the new \
             process, which are still in flight when it is replaced. A \
             connection failed if it was refused, reset, or cut short or \
             not byte for byte. Measured here, one run each.\n\n\
             | balancer | how | done | in | new connections | transfers | \
             refused | reset | cut | failed |\n\
             |---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n",
            load = shape.describe(),
            set = set_name(Set::Dummy),
            reloads = shape.reloads,
            upgrades = shape.upgrades,
            settle = shape.settle,
            fresh = (shape.transfers / 10).max(1),
        );
        for run in &self.reloads {
            let both = |f: fn(&super::reloads::Tally) -> u64| {
                f(&run.connects) + f(&run.transfers)
            };
            writeln!(
                out,
                "| {} | {} | {} of {} | {:.1} s | {} | {} | {} | {} | {} | \
                 **{}** |",
                run.label,
                run.how,
                run.done,
                run.asked,
                run.seconds,
                thousands(run.connects.ok as f64),
                thousands(run.transfers.ok as f64),
                both(|t| t.refused),
                both(|t| t.reset),
                both(|t| t.cut),
                run.failed()
            )
            .expect("a String");
        }
        let notes: Vec<String> = self
            .reloads
            .iter()
            .filter(|run| !run.note.is_empty())
            .map(|run| format!("- {}, {}: {}", run.label, run.how, run.note))
            .collect();
        if !notes.is_empty() {
            out.push('\n');
            out.push_str(&notes.join("\n"));
            out.push('\n');
        }
        Some(out)
    }

    /// The report, as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let t = self.started_at;
        let elapsed = self.elapsed.as_secs();
        let load = if self.mode == Mode::Smoke {
            "curl: 100 requests over one kept-alive connection, 30 with a new \
             connection each"
                .to_owned()
        } else {
            format!(
                "wrk -t1 -c{}, {} s per run",
                self.connections, self.duration
            )
        };
        let binaries = if self.mode == Mode::Smoke {
            "`cargo build` (debug: a smoke test of the script, not a benchmark)"
                .to_owned()
        } else {
            format!("`cargo build --release` ({})", self.release_profile)
        };
        let busy_pct = format!("{:.0}%", self.busy_limit * 100.0);
        write!(
            out,
            "# Benchmarks

Written by `scripts/bench.sh` ({mode} run). Run it on your machine for
your own figures; between machines, or moments, compare the ratios.

- date: {year}-{month:02}-{day:02} {hour:02}:{minute:02} UTC; the run took {min} min {sec} s
- command: `{command}`
- machine: {cores} cores, {model}, Linux {kernel}
- conditions: {conditions}
- versions: {versions}
- lab binaries: {binaries}, run with `RUST_LOG=warn`
- load: {load}

## How to read the tables

- **direct**: the client talks to a backend itself, with no balancer in
  between: the most any balancer could get.
- **× direct**: a contender's figure divided by the mean of the direct runs
  just before and just after it (the machine's speed drifts, so only
  neighbouring runs are compared); the median over the rounds, and in
  brackets the lowest and highest round.
{haproxy}- **CPU**: time the balancer's processes spent on a CPU during the run,
  per request (per GB for bulk): the steadiest figure of efficiency. For
  direct, the backend's own time. It is read from the scheduler
  (`/proc/PID/task/*/schedstat`, in nanoseconds), not from the user and
  system times, which move in clock ticks of 10 ms; a figure is shown
  only where every run behind it used at least {min_ms} ms of CPU (\"—\"
  otherwise, and no CPU column where no figure is).
- **Quiet**: before each run the machine is sampled and, while other work
  keeps it over {busy_pct} busy, waited for; after a contender's run, the
  machine's busy time less the benchmark's own (wrk, the backend, the
  contender, this program) says how much other work ran meanwhile, and a
  run during which that averaged over {other} of a core is made again
  ({retries} times at most; never with `--keep-disturbed`): competing
  work moves CPU per request by 10% and more, either way.
",
            mode = self.mode.name(),
            year = t.year(),
            month = u8::from(t.month()),
            day = t.day(),
            hour = t.hour(),
            minute = t.minute(),
            min = elapsed / 60,
            sec = elapsed % 60,
            command = self.command_line,
            cores = self.cores,
            model = self.cpu_model,
            kernel = self.kernel,
            conditions = self.conditions(),
            versions = self.versions,
            min_ms = stats::MIN_CPU_NS / 1_000_000,
            busy_pct = busy_pct,
            other = super::OTHER_LIMIT,
            retries = super::OTHER_RETRIES,
            haproxy = if self.has_haproxy() {
                "- **× HAProxy**: a contender's × direct divided by HAProxy's \
                 in the same\n  round; the median over the rounds.\n"
            } else {
                ""
            },
        )
        .expect("a String");
        out.push_str(&self.contenders_section());
        for set in [Set::Nginx, Set::Dummy] {
            for workload in [Workload::KeepAlive, Workload::Close] {
                out.extend(self.section(workload, set));
            }
        }
        out.extend(self.section(Workload::Bulk, Set::Iperf));
        out.extend(self.section(Workload::Bulk, Set::Dummy));
        out.extend(self.section(Workload::TlsNew, Set::Tls));
        out.extend(self.section(Workload::TlsKeepAlive, Set::Tls));
        out.extend(self.best_peer_section());
        out.extend(self.scale_section());
        if !self.memory.is_empty() {
            let n = self.idle;
            write!(
                out,
                "
## Memory: {n} idle client connections, each relayed to a backend

Resident set size (VmRSS, summed over the balancer's processes) of a
freshly started balancer, before and after opening {n} connections
that send nothing. {runs}. RSS counts only
the pages a process has touched: a buffer allocated but never written
costs less here than it will once memory is reused.

{table}",
                runs = median_of(self.memory_runs, "run"),
                table = self.memory_table(),
            )
            .expect("a String");
        }
        out.extend(self.reloads_section());
        out.extend(self.baseline_section());
        out.extend(self.lb_section());
        if self.mode != Mode::Smoke {
            let shown: Vec<(&String, &String)> = [
                "haproxy-nginx.cfg",
                "haproxy-splice-nginx.cfg",
                "haproxy-tls.cfg",
                "nginx-stream-nginx.conf",
                "nginx-reuseport-nginx.conf",
                "nginx-stream-tls.conf",
                "lb-nginx.toml",
                "lb-lc-nginx.toml",
                "lb-nosplice-nginx.toml",
                "lb-tls.toml",
                "backend-nginx.conf",
            ]
            .iter()
            .filter_map(|name| self.configs.get_key_value(*name))
            .collect();
            if !shown.is_empty() {
                out.push_str(
                    "\n## Configurations\n\nAs written by the script (the other \
                     backend sets differ only in ports,\nand in `lb`'s health \
                     checks for iperf3).\n",
                );
                for (name, text) in shown {
                    write!(
                        out,
                        "\n<details><summary>{name}</summary>\n\n```\n{}```\n\n</details>\n",
                        text.replace(&self.work, "$TMP")
                    )
                    .expect("a String");
                }
            }
        }
        out
    }

    /// The tables' cells that should have a figure and have none: every
    /// contender that ran, in every workload that ran.
    pub fn missing(&self) -> Vec<String> {
        let mut missing = Vec::new();
        for ((workload, set), table) in &self.tables {
            for key in self.rows(table) {
                if Report::runs(table, &key).is_empty() {
                    missing.push(format!(
                        "{}/{}/{}",
                        workload.name(),
                        set.name(),
                        self.label(&key)
                    ));
                }
            }
            for contender in &self.contenders {
                if contender.takes_part(*workload, *set)
                    && !self.skipped.contains_key(&contender.key)
                    && !table.samples.contains_key(&contender.key)
                {
                    missing.push(format!(
                        "{}/{}/{}",
                        workload.name(),
                        set.name(),
                        contender.label
                    ));
                }
            }
        }
        missing
    }
}

#[cfg(test)]
mod tests {
    use super::super::stats::Sample;
    use super::*;

    fn contender(key: &str, label: &str) -> Contender {
        Contender {
            key: key.into(),
            label: label.into(),
            slot: 1,
            launch: Launch::Haproxy,
        }
    }

    /// A run at `rate` that used `ticks` hundredths of a second of CPU.
    fn http_run(rate: f64, ticks: u64) -> Run {
        Run {
            rate,
            p50_us: 400.0,
            p99_us: 1000.0,
            work: rate * 5.0,
            errors: 0,
            cpu_ns: ticks * 10_000_000,
            load_cpu_ns: 0,
        }
    }

    /// A table where each contender's run sits between two direct runs.
    fn table(runs: &[(&str, f64, u64)], direct_ticks: u64) -> Table {
        let mut table = Table {
            rounds: 1,
            ..Table::default()
        };
        let direct = http_run(100_000.0, direct_ticks);
        table.samples.insert(
            "direct".into(),
            vec![
                Sample {
                    round: 1,
                    run: direct,
                    ratio: None
                };
                runs.len() + 1
            ],
        );
        for &(key, rate, ticks) in runs {
            table.samples.insert(
                key.into(),
                vec![Sample {
                    round: 1,
                    run: http_run(rate, ticks),
                    ratio: Some(rate / 100_000.0),
                }],
            );
        }
        table
    }

    fn report(mode: Mode, contenders: Vec<Contender>, table: Table) -> Report {
        Report {
            mode,
            command_line: "scripts/bench.sh --smoke".into(),
            started_at: time::OffsetDateTime::UNIX_EPOCH,
            elapsed: Duration::from_secs(75),
            cores: 2,
            cpu_model: "a CPU".into(),
            kernel: "6.1".into(),
            quiet: Quiet::default(),
            busy_limit: 0.15,
            versions: "rustc 1.95.0".into(),
            release_profile: "debug = \"line-tables-only\"".into(),
            connections: 32,
            duration: 1,
            idle: 100,
            memory_runs: 1,
            contenders,
            tables: BTreeMap::from([(
                (Workload::KeepAlive, Set::Dummy),
                table,
            )]),
            memory: Vec::new(),
            reloads: Vec::new(),
            reload_shape: None,
            baselines: Vec::new(),
            scrapes: BTreeMap::new(),
            configs: BTreeMap::new(),
            work: "/tmp/w".into(),
            skipped: BTreeMap::new(),
            chart: None,
        }
    }

    #[test]
    fn the_reloads_table_sums_each_kind_of_failure() {
        use super::super::reloads::Tally;
        let mut report = report(
            Mode::Quick,
            vec![contender("haproxy", "HAProxy")],
            Table::default(),
        );
        assert!(!report.markdown().contains("## Reloads under load"));
        report.reload_shape = Some(Shape::of(Mode::Quick));
        report.reloads = vec![ReloadRun {
            label: "HAProxy".into(),
            how: "reload: new process, `-sf OLDPID`".into(),
            asked: 10,
            done: 10,
            seconds: 4.12,
            connects: Tally {
                ok: 8741,
                refused: 1,
                reset: 2,
                cut: 0,
            },
            transfers: Tally {
                ok: 50,
                refused: 0,
                reset: 3,
                cut: 1,
            },
            note: String::new(),
        }];
        let text = report.markdown();
        assert!(text.contains("changed 10 times (3 for upgrades)"), "{text}");
        assert!(text.contains(
            "| HAProxy | reload: new process, `-sf OLDPID` | 10 of 10 | \
             4.1 s | 8,741 | 50 | 1 | 5 | 1 | **7** |\n"
        ));
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(71_911.4), "71,911");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }

    /// A smoke run: too few ticks for a CPU figure, and no HAProxy.
    #[test]
    fn a_short_run_has_no_cpu_column_and_only_its_contenders() {
        let report = report(
            Mode::Smoke,
            vec![contender("04", "04-round-robin")],
            table(&[("04", 50_000.0, 3)], 2),
        );
        let text = report.markdown();
        assert!(
            text.contains(
                "| contender | req/s | × direct (range) | p50 ms | p99 ms |\n\
             |---|--:|--:|--:|--:|\n\
             | direct | 100,000 | 1.00 | 0.40 | 1.00 |\n\
             | 04-round-robin | 50,000 | 0.50 | 0.40 | 1.00 |\n"
            ),
            "{text}"
        );
        assert!(!text.contains("08-final"), "{text}");
        assert!(!text.contains("09-http-proxy"), "{text}");
        assert!(!text.contains("HAProxy**"), "{text}");
        assert!(text.contains(
            "- **04-round-robin**: the lab's layer-4 step, with its"
        ));
        assert!(text.contains("the run took 1 min 15 s"));
        assert!(report.missing().is_empty());
    }

    #[test]
    fn long_runs_show_cpu_and_the_ratio_to_haproxy() {
        let report = report(
            Mode::Quick,
            vec![contender("08", "08-final"), contender("haproxy", "HAProxy")],
            // 1.2 s of CPU for 250,000 requests: 4.8 µs each.
            table(&[("08", 50_000.0, 120), ("haproxy", 40_000.0, 150)], 60),
        );
        let text = report.markdown();
        assert!(text.contains(
            "| direct | 100,000 | 1.00 | 2.50 | 0.40 | 1.00 | (1.2 backend) |\n\
             | 08-final | 50,000 | 0.50 | 1.25 | 0.40 | 1.00 | 4.8 |\n\
             | HAProxy | 40,000 | 0.40 | 1.00 | 0.40 | 1.00 | 7.5 |\n"
        ), "{text}");
    }

    #[test]
    fn lb_is_set_beside_08_with_its_bars() {
        let mut report = report(
            Mode::Quick,
            vec![contender("08", "08-final"), contender("lb", "lb")],
            table(&[("08", 50_000.0, 120), ("lb", 50_000.0, 126)], 60),
        );
        let memory = |rss_after_kib| MemoryRun {
            round: 1,
            rss_before_kib: 4_000,
            rss_after_kib,
            fds_before: 10,
            fds_after: 210,
            connections: 100,
        };
        report.memory =
            vec![("08".into(), memory(4_300)), ("lb".into(), memory(4_330))];
        let text = report.markdown();
        assert!(text.contains(
            "| CPU µs per request, kept-alive (dummy backends) | 4.8 | 5.0 | 1.05 | ≤ 1.05 |\n\
             | bytes per idle connection | 3,072 | 3,379 | 1.10 | lb ≤ 3,500 |\n"
        ), "{text}");
    }

    #[test]
    fn a_baseline_pair_is_divided_round_by_round() {
        let mut table =
            table(&[("x1", 50_000.0, 100), ("x2", 50_000.0, 100)], 60);
        table.rounds = 2;
        // Round 2: the machine runs slower, both contenders alike.
        for (key, ticks) in [("x1", 200), ("x2", 210)] {
            table.samples.get_mut(key).unwrap().push(Sample {
                round: 2,
                run: http_run(25_000.0, ticks),
                ratio: Some(0.25),
            });
        }
        let mut admin = contender("x2", "new-admin");
        admin.launch = Launch::Extra("lb --admin {admin}".into());
        let mut report =
            report(Mode::Quick, vec![contender("x1", "new"), admin], table);
        report.baselines = vec![("x2".into(), "x1".into())];
        report.scrapes.insert(
            "x2".into(),
            [
                scrape::Count {
                    sent: 4,
                    ok: 4,
                    ..Default::default()
                },
                scrape::Count {
                    sent: 4,
                    other: 4,
                    ..Default::default()
                },
            ],
        );
        let text = report.markdown();
        assert!(
            text.contains(
                "| new-admin ÷ new | kept-alive (dummy backends) | **1.025** | \
             1.000–1.050 | 2 of 2 | 1.000 | 1.000 1.050 |\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "(/metrics 4 of 4 answered 200, /api/stats 0 of 4 answered 200 \
             (4 another status))"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_contender_without_figures_is_reported_missing() {
        let mut report = report(
            Mode::Smoke,
            vec![contender("04", "04-round-robin"), contender("lb", "lb")],
            table(&[("04", 50_000.0, 3)], 2),
        );
        assert_eq!(report.missing(), ["keepalive/dummy/lb"]);
        report.contenders.pop();
        assert!(report.missing().is_empty());
    }
}
