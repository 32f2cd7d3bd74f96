//! What one run of the benchmark does: the command line, the plan each
//! mode makes of it (rounds, durations, contenders, workloads), the
//! contenders and backend sets, and the ports they use.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

const ABOUT: &str = "Measures the lab's balancers beside HAProxy and nginx \
on this machine, in one run, and writes the tables to BENCHMARKS.md.";

const AFTER_HELP: &str = "\
Modes:
  (none), --full  full run (about 50 min): writes BENCHMARKS.md and
                  bench-ratios.svg
  --quick         one short round of everything (about 8 min), for
                  development: writes target/bench/quick.md and
                  target/bench/ratios.svg
  --smoke         self-test in ~15 s, needing only curl: direct vs
                  04-round-robin (debug build), the dummy servers as
                  backends, curl as the load; writes target/bench/smoke.md

Contenders, each on its own 127.0.0.1 port: \"direct\" (the client talks to
a backend itself: the limit), 04-round-robin, 08-final, 09-http-proxy (HTTP
workloads only: it is a layer-7 proxy), lb (round robin, like every peer, splice on as by default,
TCP health checks; checks off for iperf3, whose server takes one client at
a time), HAProxy (mode tcp, balance roundrobin) and nginx (stream, round
robin). Further configurations, on the nginx backends and for bulk only:
lb-lc (lb with least connections), lb-nosplice (lb with [limits]
splice_pipes = 0: its buffered relay alone), haproxy-splice (option splice-auto, maxconn 4000) and nginx-reuseport
(listen ... reuseport, proxy_buffer_size 64k). Each table names the best
configuration of each peer and gives lb ÷ best peer.

TLS workloads (tls-new: a new handshake per request, tls-keepalive): lb,
HAProxy and nginx stream terminate TLS with one ECDSA P-256 certificate
made for the run, no session resumption; the backends are the nginx set,
and \"direct\" is that nginx terminating TLS itself. The scale workload:
new connections through lb with 3 and with 1,000 backends (health checks
off), for every algorithm, the two runs back to back.
The reloads workload (lb and HAProxy, not in --smoke) counts the
connections refused, reset or cut while each is reloaded between two
configurations under load: lb by SIGHUP, HAProxy by a new process with
-sf and by its seamless reload (-x, expose-fd listeners); and while lb is
upgraded (lb --upgrade). Every figure is the median of the rounds; every contender's run sits
between two direct runs and its ratio is to their mean, so that the
machine's drift hits all alike. Before each contender's run the machine is
sampled (/proc/stat) and, while something else keeps it busy, waited for;
after it, the machine's busy time less the benchmark's own processes' says
how much other work ran meanwhile, and a run during which that exceeded a
tenth of a core is made again (twice at most; --keep-disturbed: never).

Comparing two builds or configurations of one balancer (--baseline): each
round runs every contender once, so a contender's CPU per request can be
divided by its baseline's in the same round, minutes apart at most; the
report gives the median of those per-round ratios and their range, which
the machine's drift moves far less than two medians taken apart. E.g.

  scripts/bench.sh --workloads keepalive,close --contenders none \
    --also 'old=/tmp/old/lb --listen {listen} --backends {backends}' \
    --also 'new=target/release/lb --listen {listen} --backends {backends}' \
    --also 'new-admin=target/release/lb --listen {listen} --backends {backends} --admin {admin}' \
    --baseline new:old,new-admin:new --runs 7

A contender whose command holds {admin} is given a free port for it, and
while each of its load runs lasts, GET /metrics and GET /api/stats are
sent to that address once a second each (what a scraper and an open
status page cost it); the log counts the answers with status 200.

Every process it starts is stopped on exit, failure or Ctrl-C, by PID.";

/// The command line (`scripts/bench.sh --help` prints this).
#[derive(Parser, Debug)]
#[command(
    name = "scripts/bench.sh",
    bin_name = "scripts/bench.sh",
    about = ABOUT,
    after_help = AFTER_HELP
)]
pub struct Options {
    /// Full run (the default): writes BENCHMARKS.md.
    #[arg(long, conflicts_with_all = ["quick", "smoke"])]
    pub full: bool,
    /// One short round of everything, for development.
    #[arg(long, conflicts_with = "smoke")]
    pub quick: bool,
    /// A self-test of this program in seconds, needing only curl.
    #[arg(long)]
    pub smoke: bool,
    /// Where the report goes.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Rounds per workload (full: 5; 3 with the dummy servers behind,
    /// unless this is given).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: Option<u32>,
    /// Seconds per load run (full: 5).
    #[arg(long, value_name = "S", value_parser = clap::value_parser!(u64).range(1..))]
    pub duration: Option<u64>,
    /// wrk's connections.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub connections: usize,
    /// Idle connections held for the memory table (full: 5000).
    #[arg(long, value_name = "N")]
    pub idle: Option<usize>,
    /// A subset of: 04,08,09,lb,lb-lc,lb-nosplice,haproxy,haproxy-splice,
    /// nginx,nginx-reuseport; "none" for the --also contenders alone.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub contenders: Option<Vec<String>>,
    /// A subset of: memory,keepalive,close,bulk,reloads,tls-new,
    /// tls-keepalive,scale.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub workloads: Option<Vec<String>>,
    /// Ports used: P+1 .. P+599 on 127.0.0.1.
    #[arg(long, value_name = "P", default_value_t = 20000)]
    pub port_base: u16,
    /// One more layer-4 contender (up to 4): CMD is run with {listen} and
    /// {backends} replaced, e.g. --also 'mine=target/release/mine --listen
    /// {listen} --backends {backends}'; {admin}, if there, by a free
    /// 127.0.0.1 port, whose /metrics and /api/stats are then fetched
    /// once a second each during the contender's runs.
    #[arg(long, value_name = "LABEL=CMD")]
    pub also: Vec<String>,
    /// CPU per request of a contender divided by its baseline's in the
    /// same round: a contender (label or key) to divide every other by,
    /// or pairs CONTENDER:BASELINE, e.g. new:old,new-admin:new.
    #[arg(long, value_name = "KEY|A:B,...", value_delimiter = ',')]
    pub baseline: Vec<String>,
    /// Keep a contender's run during which other work kept over a tenth
    /// of a core busy (by default it is made again, twice at most).
    #[arg(long)]
    pub keep_disturbed: bool,
    /// Do not apt-get install missing tools.
    #[arg(long)]
    pub no_install: bool,
    /// Keep the temporary folder (configs, logs).
    #[arg(long)]
    pub keep: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Full,
    Quick,
    Smoke,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Quick => "quick",
            Mode::Smoke => "smoke",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Workload {
    Memory,
    KeepAlive,
    Close,
    Bulk,
    /// Connections lost while a balancer is reloaded (and `lb`
    /// upgraded) under load: `lb` and HAProxy only, not in a smoke run.
    Reloads,
    /// A TLS handshake per request (`Connection: close` over https).
    TlsNew,
    /// Small requests over kept-alive TLS connections.
    TlsKeepAlive,
    /// New connections through `lb` with 3 and with 1,000 backends, for
    /// every algorithm.
    Scale,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Memory => "memory",
            Workload::KeepAlive => "keepalive",
            Workload::Close => "close",
            Workload::Bulk => "bulk",
            Workload::Reloads => "reloads",
            Workload::TlsNew => "tls-new",
            Workload::TlsKeepAlive => "tls-keepalive",
            Workload::Scale => "scale",
        }
    }
}

impl Workload {
    /// Every workload, in the order of the report.
    const ALL: [Workload; 8] = [
        Workload::Memory,
        Workload::KeepAlive,
        Workload::Close,
        Workload::Bulk,
        Workload::Reloads,
        Workload::TlsNew,
        Workload::TlsKeepAlive,
        Workload::Scale,
    ];

    /// The workloads with TLS at the balancer's front.
    pub fn tls(self) -> bool {
        matches!(self, Workload::TlsNew | Workload::TlsKeepAlive)
    }
}

/// Cargo's target folder for the workspace at `root`: `CARGO_TARGET_DIR`
/// (relative to `root` if relative, as cargo reads it), else `target/`.
pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| root.join(dir))
        .unwrap_or_else(|| root.join("target"))
}

/// A set of backends, and the port block it uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Set {
    /// One nginx answering a fixed body on three ports.
    Nginx,
    /// The lab's dummy servers.
    Dummy,
    /// One iperf3 server behind every slot.
    Iperf,
    /// The nginx backends, with TLS at the contenders' front; direct is
    /// the backend nginx terminating TLS itself.
    Tls,
    /// One nginx port behind every backend entry of `lb` (3 or 1,000).
    Scale,
}

impl Set {
    pub fn number(self) -> u16 {
        match self {
            Set::Nginx => 1,
            Set::Dummy => 2,
            Set::Iperf => 3,
            Set::Tls => 4,
            Set::Scale => 5,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Set::Nginx => "nginx",
            Set::Dummy => "dummy",
            Set::Iperf => "iperf",
            Set::Tls => "tls",
            Set::Scale => "scale",
        }
    }
}

/// How a contender is started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Launch {
    /// A step's binary: `--listen` and `--backends`.
    Step(PathBuf),
    /// `lb --config FILE`.
    Lb(PathBuf),
    /// `lb --config FILE` with `backends` entries (all one address, no
    /// health checks) and `algorithm`: the scale workload.
    LbScale {
        binary: PathBuf,
        algorithm: &'static str,
        backends: usize,
    },
    Haproxy,
    Nginx,
    /// `--also`: a shell command with {listen} and {backends}.
    Extra(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contender {
    /// As `--contenders` names it: 04, lb, haproxy; x1.. for `--also`.
    pub key: String,
    /// As the report names it: 04-round-robin, HAProxy.
    pub label: String,
    /// Its port in each set's block.
    pub slot: u16,
    pub launch: Launch,
}

impl Contender {
    /// A layer-7 proxy takes part in HTTP workloads only.
    pub fn layer7(&self) -> bool {
        self.key == "09"
    }

    /// A second configuration of a contender (`lb-lc`, `haproxy-splice`):
    /// run on the nginx backends and for bulk only, to keep the full run
    /// short.
    pub fn variant(&self) -> bool {
        VARIANTS.contains(&self.key.as_str())
    }

    /// The program whose configurations compete as one peer of `lb`:
    /// "HAProxy" or "nginx"; `None` for the lab's own.
    pub fn peer(&self) -> Option<&'static str> {
        match self.key.as_str() {
            "haproxy" | "haproxy-splice" => Some("HAProxy"),
            "nginx" | "nginx-reuseport" => Some("nginx"),
            _ => None,
        }
    }

    pub fn takes_part(&self, workload: Workload, set: Set) -> bool {
        match workload {
            Workload::Bulk => !self.layer7(),
            Workload::KeepAlive | Workload::Close => {
                !self.variant() || set == Set::Nginx
            }
            Workload::Memory => !self.variant(),
            Workload::TlsNew | Workload::TlsKeepAlive => {
                matches!(self.key.as_str(), "lb" | "haproxy" | "nginx")
            }
            Workload::Reloads | Workload::Scale => false,
        }
    }

    /// An `--also` command that asks for an admin listener (`{admin}`),
    /// which is then scraped during its runs.
    pub fn has_admin(&self) -> bool {
        matches!(&self.launch, Launch::Extra(command) if command.contains("{admin}"))
    }
}

/// The contenders `--contenders` may name, in the report's order, and
/// their slots (`--also` takes 7 to 10).
pub const KNOWN: [(&str, u16); 10] = [
    ("04", 1),
    ("08", 2),
    ("09", 3),
    ("lb", 6),
    ("lb-lc", 11),
    ("lb-nosplice", 12),
    ("haproxy", 4),
    ("haproxy-splice", 13),
    ("nginx", 5),
    ("nginx-reuseport", 14),
];

/// The second configurations of `lb` and its peers.
pub const VARIANTS: [&str; 4] =
    ["lb-lc", "lb-nosplice", "haproxy-splice", "nginx-reuseport"];

/// Slots in each set's block of ports (the scale workload's twelve `lb`
/// instances use 1 to 12 of its own set).
pub const SLOTS: u16 = 19;

/// What a mode runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub mode: Mode,
    pub runs: u32,
    /// Rounds with the dummy servers behind (none in quick and smoke).
    pub dummy_runs: u32,
    /// Rounds of the scale workload: twelve runs each (none in smoke).
    pub scale_runs: u32,
    pub duration: u64,
    pub memory_runs: u32,
    pub idle: usize,
    /// Sampling of /proc/stat before a run, and how long to wait at most
    /// for a busy machine: per run, and in all.
    pub quiet_sample: Duration,
    pub quiet_wait: u64,
    pub quiet_budget: u64,
    pub contenders: Vec<String>,
    pub workloads: Vec<Workload>,
    pub out: PathBuf,
    /// `--baseline`: (contender, baseline) pairs, by label or key; a
    /// contender of `None` stands for every other contender.
    pub baselines: Vec<(Option<String>, String)>,
    /// Make a contender's run again if other work started during it.
    pub repeat_disturbed: bool,
}

impl Plan {
    pub fn new(options: &Options, root: &Path) -> Result<Plan, String> {
        let target = target_dir(root);
        let mode = if options.smoke {
            Mode::Smoke
        } else if options.quick {
            Mode::Quick
        } else {
            Mode::Full
        };
        let all: Vec<String> =
            KNOWN.iter().map(|(key, _)| key.to_string()).collect();
        let (runs, duration, memory_runs, idle, sample, wait, budget, out) =
            match mode {
                Mode::Full => {
                    (5, 5, 3, 5000, 1.0, 120, 600, root.join("BENCHMARKS.md"))
                }
                Mode::Quick => {
                    (1, 2, 1, 1000, 0.5, 10, 30, target.join("bench/quick.md"))
                }
                Mode::Smoke => {
                    (2, 1, 1, 100, 0.2, 0, 0, target.join("bench/smoke.md"))
                }
            };
        let runs = options.runs.unwrap_or(runs);
        let contenders = match (&options.contenders, mode) {
            // Only --also's contenders.
            (Some(list), _) if list == &["none"] => Vec::new(),
            (Some(list), _) => list.clone(),
            (None, Mode::Smoke) => vec!["04".into()],
            (None, _) => all.clone(),
        };
        for name in &contenders {
            if !all.contains(name) {
                return Err(format!(
                    "--contenders: unknown \"{name}\" ({})",
                    all.join(", ")
                ));
            }
        }
        let workloads = match &options.workloads {
            None => Workload::ALL.to_vec(),
            Some(list) => list
                .iter()
                .map(|name| {
                    Workload::ALL
                        .into_iter()
                        .find(|w| w.name() == name)
                        .ok_or_else(|| {
                            let known = Workload::ALL.map(Workload::name);
                            format!(
                                "--workloads: unknown \"{name}\" ({})",
                                known.join(", ")
                            )
                        })
                })
                .collect::<Result<_, _>>()?,
        };
        let base = u32::from(options.port_base);
        if !(1024..=32768 - 600).contains(&base) {
            return Err(
                "--port-base must leave P..P+599 between 1024 and 32767".into(),
            );
        }
        if options.also.len() > 4 {
            return Err("at most 4 --also contenders".into());
        }
        Ok(Plan {
            mode,
            runs,
            // Three rounds with the dummy servers unless --runs asks for
            // more: they are the second set of backends, not the first.
            dummy_runs: match (mode, options.runs) {
                (Mode::Full, Some(asked)) => asked,
                (Mode::Full, None) => runs.min(3),
                _ => 0,
            },
            scale_runs: match (mode, options.runs) {
                (Mode::Smoke, _) => 0,
                (_, Some(asked)) => asked,
                (Mode::Full, None) => 3,
                (Mode::Quick, None) => 1,
            },
            duration: options.duration.unwrap_or(duration),
            memory_runs,
            idle: options.idle.unwrap_or(idle),
            quiet_sample: Duration::from_secs_f64(sample),
            quiet_wait: wait,
            quiet_budget: budget,
            contenders,
            workloads,
            out: options.out.clone().unwrap_or(out),
            baselines: parse_baselines(&options.baseline)?,
            repeat_disturbed: mode != Mode::Smoke && !options.keep_disturbed,
        })
    }

    pub fn wants(&self, workload: Workload) -> bool {
        self.workloads.contains(&workload)
    }
}

/// `--baseline`'s items: `KEY` (every other contender against it) or
/// `CONTENDER:BASELINE`.
pub fn parse_baselines(
    items: &[String],
) -> Result<Vec<(Option<String>, String)>, String> {
    items
        .iter()
        .map(|item| match item.split_once(':') {
            Some((a, b)) if !a.is_empty() && !b.is_empty() && a != b => {
                Ok((Some(a.to_owned()), b.to_owned()))
            }
            None if !item.is_empty() => Ok((None, item.clone())),
            _ => Err(format!(
                "--baseline: \"{item}\" is neither a contender nor \
                 CONTENDER:BASELINE"
            )),
        })
        .collect()
}

/// The ports of one run: set `s` uses base+100*s+slot for its contenders;
/// backends sit at base+1..3 (nginx), base+4 (the nginx backend's TLS
/// port), base+11..13 (dummy), base+21 (iperf3).
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub base: u16,
}

impl Ports {
    pub fn backends(self, set: Set) -> Vec<u16> {
        match set {
            Set::Nginx => (1..=3).map(|i| self.base + i).collect(),
            Set::Dummy => (11..=13).map(|i| self.base + i).collect(),
            // iperf3's control and data connections must reach the same
            // server: every slot points at the one iperf3 server.
            Set::Iperf => vec![self.base + 21; 3],
            Set::Tls => self.backends(Set::Nginx),
            // The scale workload's backend entries all name one port.
            Set::Scale => vec![self.base + 1],
        }
    }

    /// The backend nginx's TLS port: direct's for the TLS workloads.
    pub fn backend_tls(self) -> u16 {
        self.base + 4
    }

    pub fn direct(self, set: Set) -> u16 {
        match set {
            Set::Tls => self.backend_tls(),
            _ => self.backends(set)[0],
        }
    }

    pub fn contender(self, contender: &Contender, set: Set) -> u16 {
        self.base + 100 * set.number() + contender.slot
    }

    /// The admin listener of a contender whose command asks for one
    /// (`{admin}`): 20 above its slot.
    pub fn admin(self, contender: &Contender, set: Set) -> u16 {
        self.contender(contender, set) + 20
    }

    /// Every port a run may use, for a check that they are free before
    /// it starts: each set's backends, each set's contender slots and
    /// their admin ports.
    pub fn all(self) -> Vec<u16> {
        let sets = [Set::Nginx, Set::Dummy, Set::Iperf, Set::Tls, Set::Scale];
        let mut ports: Vec<u16> =
            sets.iter().flat_map(|&set| self.backends(set)).collect();
        ports.push(self.backend_tls());
        for set in sets {
            for slot in 1..=SLOTS {
                let port = self.base + 100 * set.number() + slot;
                ports.extend([port, port + 20]);
            }
        }
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    pub fn backend_addresses(self, set: Set) -> Vec<String> {
        self.backends(set)
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(args: &[&str]) -> Options {
        Options::try_parse_from(
            std::iter::once("bench").chain(args.iter().copied()),
        )
        .expect("valid options")
    }

    #[test]
    fn each_mode_has_its_plan() {
        let root = Path::new("/lab");
        let full = Plan::new(&options(&[]), root).unwrap();
        assert_eq!((full.mode, full.runs, full.dummy_runs), (Mode::Full, 5, 3));
        let asked = Plan::new(&options(&["--runs", "9"]), root).unwrap();
        assert_eq!((asked.runs, asked.dummy_runs), (9, 9));
        assert_eq!(full.out, root.join("BENCHMARKS.md"));
        assert_eq!(
            full.contenders,
            [
                "04",
                "08",
                "09",
                "lb",
                "lb-lc",
                "lb-nosplice",
                "haproxy",
                "haproxy-splice",
                "nginx",
                "nginx-reuseport"
            ]
        );
        let smoke = Plan::new(&options(&["--smoke"]), root).unwrap();
        assert_eq!(
            (smoke.runs, smoke.idle, smoke.contenders.len()),
            (2, 100, 1)
        );
        let quick =
            Plan::new(&options(&["--quick", "--runs", "2"]), root).unwrap();
        assert_eq!((quick.runs, quick.dummy_runs, quick.duration), (2, 0, 2));
    }

    #[test]
    fn unknown_names_and_bad_ports_are_clear_errors() {
        let root = Path::new("/lab");
        let err = Plan::new(&options(&["--contenders", "04,envoy"]), root);
        assert_eq!(
            err.unwrap_err(),
            "--contenders: unknown \"envoy\" (04, 08, 09, lb, lb-lc, \
             lb-nosplice, haproxy, haproxy-splice, nginx, nginx-reuseport)"
        );
        let err = Plan::new(&options(&["--workloads", "bulk,soak"]), root);
        assert_eq!(
            err.unwrap_err(),
            "--workloads: unknown \"soak\" (memory, keepalive, close, bulk, \
             reloads, tls-new, tls-keepalive, scale)"
        );
        let err = Plan::new(&options(&["--port-base", "40000"]), root);
        assert!(err.unwrap_err().starts_with("--port-base must leave"));
        assert!(
            Options::try_parse_from(["bench", "--smoke", "--quick"]).is_err()
        );
        assert!(Options::try_parse_from(["bench", "--runs", "0"]).is_err());
        let err = Plan::new(&options(&["--baseline", "a:a"]), root);
        assert!(err.unwrap_err().starts_with("--baseline: \"a:a\""));
        assert!(Plan::new(&options(&["--baseline", "x:"]), root).is_err());
    }

    #[test]
    fn baselines_are_one_key_or_pairs() {
        let root = Path::new("/lab");
        let plan = Plan::new(
            &options(&[
                "--baseline",
                "new:old,admin:new",
                "--contenders",
                "none",
            ]),
            root,
        )
        .unwrap();
        assert_eq!(
            plan.baselines,
            [
                (Some("new".into()), "old".into()),
                (Some("admin".into()), "new".into())
            ]
        );
        assert!(plan.contenders.is_empty());
        let plan =
            Plan::new(&options(&["--baseline", "lb-before"]), root).unwrap();
        assert_eq!(plan.baselines, [(None, "lb-before".into())]);
    }

    #[test]
    fn ports_per_set_and_slot() {
        let ports = Ports { base: 20000 };
        let lb = Contender {
            key: "lb".into(),
            label: "lb".into(),
            slot: 6,
            launch: Launch::Haproxy,
        };
        assert_eq!(ports.contender(&lb, Set::Nginx), 20106);
        assert_eq!(ports.contender(&lb, Set::Iperf), 20306);
        assert_eq!(ports.backends(Set::Dummy), [20011, 20012, 20013]);
        assert_eq!(
            ports.backend_addresses(Set::Iperf),
            vec!["127.0.0.1:20021"; 3]
        );
        assert_eq!(ports.admin(&lb, Set::Dummy), 20226);
        assert_eq!(ports.direct(Set::Tls), 20004);
        assert_eq!(ports.backends(Set::Scale), [20001]);
        // Eight backend ports (iperf3's slots share one, and the nginx
        // backend has a TLS port), 19 slots a set in five sets and an
        // admin port for each.
        let all = ports.all();
        assert_eq!(all.len(), 8 + 5 * 19 * 2);
        assert!(all.contains(&20106) && all.contains(&20519));
        assert!(all.contains(&20539) && !all.contains(&20540));
    }
}
