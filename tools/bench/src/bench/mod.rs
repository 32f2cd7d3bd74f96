//! The benchmark behind `scripts/bench.sh`: the lab's balancers beside
//! HAProxy and nginx on this machine, in one run, written up as Markdown.
//!
//! One run: build the lab's binaries, install the other programs if they
//! are missing, start backends, then for each workload start every
//! contender on its own port and measure it, round after round, each
//! contender's run between two direct runs (client straight to a backend)
//! so that its figure can be taken as a ratio to its neighbours. The
//! run's shape is in [`plan`], the arithmetic in [`stats`], the files the
//! programs read in [`configs`], the loads in [`load`], the write-up in
//! [`report`].

pub mod chart;
pub mod configs;
pub mod load;
pub mod plan;
pub mod reloads;
pub mod report;
pub mod scrape;
pub mod stats;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Parser;

use crate::procs::{self, Procs};
use crate::steps;
use crate::sys;
use load::{Http, Loader};
use plan::{
    Contender, KNOWN, Launch, Mode, Options, Plan, Ports, Set, Workload,
};
use stats::{MemoryRun, Run, Sample};

/// Above this share of all cores busy (other people's work: this
/// program's own processes sit idle between runs), the machine is busy.
const BUSY_LIMIT: f64 = 0.15;

/// Other work during a contender's run above this many cores, on
/// average, and the run is made again, at most [`OTHER_RETRIES`] times.
pub const OTHER_LIMIT: f64 = 0.10;
pub const OTHER_RETRIES: u32 = 2;

/// The figures of one workload with one backend set.
#[derive(Clone, Debug, Default)]
pub struct Table {
    pub rounds: u32,
    /// Every run by contender key ("direct" for the direct runs).
    pub samples: BTreeMap<String, Vec<Sample>>,
}

impl Table {
    /// Records `run` of `key` in `round`, with its ratio to the direct
    /// runs beside it (`None` for a direct run).
    fn record(&mut self, key: &str, round: u32, run: Run, ratio: Option<f64>) {
        self.samples
            .entry(key.to_owned())
            .or_default()
            .push(Sample { round, run, ratio });
    }
}

/// How quiet the machine was.
#[derive(Clone, Debug, Default)]
pub struct Quiet {
    pub quiet_runs: u32,
    pub busy_runs: u32,
    pub max_busy: f64,
    pub waits: u32,
    pub waited_seconds: u64,
    pub builds_seen: BTreeSet<String>,
    /// Contender runs made again because other work started during them,
    /// runs kept although it did (the retries spent), and the most other
    /// work seen during a run kept, in cores.
    pub repeated: u32,
    pub disturbed_kept: u32,
    pub max_other: f64,
}

/// A run in progress.
struct Bench {
    plan: Plan,
    ports: Ports,
    work: PathBuf,
    procs: Procs,
    contenders: Vec<Contender>,
    cores: usize,
    nofile: u64,
    budget_left: i64,
    quiet: Quiet,
    tables: BTreeMap<(Workload, Set), Table>,
    memory: Vec<(String, MemoryRun)>,
    /// The files written for the programs, by name, for the report.
    configs: BTreeMap<String, String>,
    /// The reloads workload: each contender's run, and the load's shape.
    reloads: Vec<reloads::ReloadRun>,
    reload_shape: Option<reloads::Shape>,
    /// The fetches of admin pages during each scraped contender's runs,
    /// by contender key, summed over its runs.
    scrapes: BTreeMap<String, scrape::Counts>,
    /// The TLS workloads' certificate files (none in a smoke run).
    certs: Option<configs::CertFiles>,
    /// Contenders that would not start, by key: why (the last line they
    /// printed). The run goes on without them.
    skipped: BTreeMap<String, String>,
}

/// The scale workload's algorithms, as lb's `algorithm` key names them.
pub const SCALE_ALGORITHMS: [&str; 6] = [
    "round-robin",
    "weighted-round-robin",
    "random",
    "least-connections",
    "power-of-two",
    "maglev",
];

/// The scale workload's two sizes of `lb`'s backend list.
pub const SCALE_SIZES: [usize; 2] = [3, 1000];

/// The scale workload's contender key for `algorithm` with `size`
/// backends, e.g. `maglev-1000` (also a process and file name).
pub fn scale_key(algorithm: &str, size: usize) -> String {
    format!("{algorithm}-{size}")
}

/// The run's certificate: one ECDSA P-256 key (rcgen's default) for
/// `127.0.0.1` and `localhost`, written into `work`.
fn write_certs(work: &Path) -> Result<configs::CertFiles, String> {
    let names = ["127.0.0.1".to_owned(), "localhost".to_owned()];
    let set = lab_common::certs::CertSet::generate(&names)
        .map_err(|err| format!("making the TLS certificate: {err}"))?;
    let files = configs::CertFiles {
        cert: work.join("bench-cert.pem"),
        key: work.join("bench-key.pem"),
        combined: work.join("bench-haproxy.pem"),
    };
    let combined = format!("{}{}", set.server_cert_pem, set.server_key_pem);
    for (path, text) in [
        (&files.cert, &set.server_cert_pem),
        (&files.key, &set.server_key_pem),
        (&files.combined, &combined),
    ] {
        std::fs::write(path, text)
            .map_err(|err| format!("{}: {err}", path.display()))?;
    }
    Ok(files)
}

/// The last line a program printed that says something, cut to a
/// readable length: why it would not start.
fn last_words(error: &str) -> String {
    let line = error
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("no output");
    line.chars().take(200).collect()
}

fn clock() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{:02}:{:02}:{:02}", now.hour(), now.minute(), now.second())
}

fn log(message: &str) {
    eprintln!("{} {message}", clock());
}

/// True if `program` is on the PATH.
fn installed(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join(program).is_file())
    })
}

const STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

/// Debian's packages for the programs that are missing.
fn missing_packages() -> Vec<&'static str> {
    let mut missing = Vec::new();
    for (program, package) in [
        ("haproxy", "haproxy"),
        ("nginx", "nginx"),
        ("wrk", "wrk"),
        ("iperf3", "iperf3"),
    ] {
        if !installed(program) {
            missing.push(package);
        }
        if program == "nginx" && !Path::new(STREAM_MODULE).is_file() {
            missing.push("libnginx-mod-stream");
        }
    }
    missing
}

fn install_tools(allowed: bool) -> Result<(), String> {
    let packages = missing_packages();
    if packages.is_empty() {
        return Ok(());
    }
    let list = packages.join(" ");
    if !allowed {
        return Err(format!("missing: {list} (run without --no-install)"));
    }
    if !rustix::process::geteuid().is_root() || !installed("apt-get") {
        return Err(format!(
            "missing: {list} (apt-get install -y {list}, as root)"
        ));
    }
    log(&format!("installing {list}"));
    let apt = |args: &[&str]| -> Result<(), String> {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(std::process::Stdio::null())
            .status()
            .map_err(|err| format!("apt-get: {err}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("apt-get {} failed ({status})", args.join(" ")))
        }
    };
    apt(&["update", "-qq"])?;
    let mut install = vec!["install", "-y", "-qq"];
    install.extend(&packages);
    apt(&install)
}

/// `cargo`, as cargo itself passes it to `cargo run`.
fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Builds `bins`; those that do not build (a step being written) are
/// left out with a message. Returns the paths of those built.
fn build(
    root: &Path,
    bins: &[String],
    release: bool,
) -> BTreeMap<String, PathBuf> {
    let profile = if release { "release" } else { "debug" };
    let target = plan::target_dir(root);
    log(&format!("building ({profile}): {}", bins.join(" ")));
    let cargo_build = |bins: &[String]| {
        let mut command = cargo();
        command.current_dir(root).args(["build", "--quiet"]);
        if release {
            command.arg("--release");
        }
        for bin in bins {
            command.arg(format!("--bin={bin}"));
        }
        command.status().is_ok_and(|status| status.success())
    };
    let built: Vec<String> = if cargo_build(bins) {
        bins.to_vec()
    } else {
        log("the build failed; building the binaries one by one");
        bins.iter()
            .filter(|bin| {
                let ok = cargo_build(std::slice::from_ref(bin));
                if !ok {
                    log(&format!("skipping {bin}: it does not build"));
                }
                ok
            })
            .cloned()
            .collect()
    };
    built
        .into_iter()
        .map(|bin| {
            let path = target.join(profile).join(&bin);
            (bin, path)
        })
        .collect()
}

/// The first line a program prints about its version (stdout or stderr).
fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .and_then(|out| {
            let text = String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr);
            text.lines().next().map(str::to_owned)
        })
        .unwrap_or_else(|| format!("{program} ?"))
}

fn words(line: &str, n: usize) -> String {
    line.split_whitespace()
        .take(n)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Bench {
    fn taking_part(&self, workload: Workload, set: Set) -> Vec<Contender> {
        self.contenders
            .iter()
            .filter(|c| c.takes_part(workload, set))
            .filter(|c| !self.skipped.contains_key(&c.key))
            .cloned()
            .collect()
    }

    /// Starts each of `contenders`; one that will not start (an extra
    /// command that fails, say) is logged, left
    /// out of the rest of the run, and named in the report. Returns
    /// those that started.
    fn start_or_skip(
        &mut self,
        contenders: Vec<Contender>,
        set: Set,
    ) -> Vec<Contender> {
        let mut started = Vec::new();
        for contender in contenders {
            match self.start_contender(&contender, set) {
                Ok(()) => started.push(contender),
                Err(err) => {
                    self.procs.stop(&Bench::instance(&contender, set));
                    let why = last_words(&err);
                    log(&format!(
                        "skipping {}: it did not start ({why})",
                        contender.label
                    ));
                    self.skipped.insert(contender.key.clone(), why);
                }
            }
        }
        started
    }

    fn machine(&self) -> configs::Machine<'_> {
        configs::Machine {
            cores: self.cores,
            nofile: self.nofile,
            work: &self.work,
        }
    }

    fn write_config(
        &mut self,
        name: &str,
        text: String,
    ) -> Result<PathBuf, String> {
        let path = self.work.join(name);
        std::fs::write(&path, &text)
            .map_err(|err| format!("{}: {err}", path.display()))?;
        self.configs.insert(name.to_owned(), text);
        Ok(path)
    }

    fn start_backends(
        &mut self,
        set: Set,
        dummy_servers: &Path,
    ) -> Result<(), String> {
        let ports = self.ports.backends(set);
        let name = format!("backend-{}", set.name());
        match set {
            Set::Nginx => {
                let tls = self
                    .certs
                    .as_ref()
                    .map(|certs| (self.ports.backend_tls(), certs));
                let text = configs::backend_nginx(&self.machine(), &ports, tls);
                let conf = self.write_config("backend-nginx.conf", text)?;
                let temp = self.work.join("nginx-temp");
                std::fs::create_dir_all(&temp)
                    .map_err(|err| err.to_string())?;
                let mut nginx = Command::new("nginx");
                nginx
                    .arg("-e")
                    .arg(self.work.join("backend-nginx.error.log"))
                    .arg("-p")
                    .arg(&self.work)
                    .arg("-c")
                    .arg(conf);
                self.procs.start(&name, &mut nginx)?;
            }
            Set::Dummy => {
                let list: Vec<String> =
                    ports.iter().map(u16::to_string).collect();
                let mut dummy = Command::new(dummy_servers);
                // No log line per request, like the other backends.
                dummy
                    .env("RUST_LOG", "warn")
                    .arg("--ports")
                    .arg(list.join(","));
                self.procs.start(&name, &mut dummy)?;
            }
            Set::Iperf => {
                let mut iperf = Command::new("iperf3");
                iperf
                    .args(["--server", "--bind", "127.0.0.1", "--port"])
                    .arg(ports[0].to_string());
                self.procs.start(&name, &mut iperf)?;
            }
            Set::Tls | Set::Scale => {
                unreachable!("the {} set uses the nginx backend", set.name())
            }
        }
        for port in BTreeSet::from_iter(ports) {
            self.procs.wait_port(&name, port)?;
        }
        Ok(())
    }

    fn instance(contender: &Contender, set: Set) -> String {
        format!("{}-{}", contender.key, set.name())
    }

    fn start_contender(
        &mut self,
        contender: &Contender,
        set: Set,
    ) -> Result<(), String> {
        let name = Bench::instance(contender, set);
        let port = self.ports.contender(contender, set);
        let backends = self.ports.backend_addresses(set);
        let listen = format!("127.0.0.1:{port}");
        let tls = if set == Set::Tls {
            Some(self.certs.clone().ok_or("no certificate for TLS")?)
        } else {
            None
        };
        let mut command = match &contender.launch {
            Launch::Step(binary) => {
                let mut command = Command::new(binary);
                // The lab's binaries log a line per connection at info
                // level; the other contenders log nothing, so neither do
                // these.
                command.env("RUST_LOG", "warn").args([
                    "--listen",
                    &listen,
                    "--backends",
                    &backends.join(","),
                ]);
                command
            }
            Launch::Lb(binary) => {
                let setup = configs::LbSetup {
                    algorithm: if contender.key == "lb-lc" {
                        "least-connections"
                    } else {
                        "round-robin"
                    },
                    checks: set != Set::Iperf,
                    splice_pipes: (contender.key == "lb-nosplice").then_some(0),
                    tls: tls.as_ref(),
                };
                let text = configs::lb(port, &backends, setup);
                let file = self.write_config(
                    &format!("{}-{}.toml", contender.key, set.name()),
                    text,
                )?;
                let mut command = Command::new(binary);
                command.env("RUST_LOG", "warn").arg("--config").arg(file);
                command
            }
            Launch::LbScale {
                binary,
                algorithm,
                backends: count,
            } => {
                let text =
                    configs::lb_scale(port, &backends[0], algorithm, *count);
                let file = self.write_config(
                    &format!("lb-scale-{algorithm}-{count}.toml"),
                    text,
                )?;
                let mut command = Command::new(binary);
                command.env("RUST_LOG", "warn").arg("--config").arg(file);
                command
            }
            Launch::Haproxy => {
                let text = configs::haproxy(
                    &self.machine(),
                    port,
                    &backends,
                    contender.key == "haproxy-splice",
                    tls.as_ref(),
                );
                let file = self.write_config(
                    &format!("{}-{}.cfg", contender.key, set.name()),
                    text,
                )?;
                let mut command = Command::new("haproxy");
                command.arg("-db").arg("-f").arg(file);
                command
            }
            Launch::Nginx => {
                let conf_name = if contender.key == "nginx" {
                    format!("nginx-stream-{}", set.name())
                } else {
                    format!("{}-{}", contender.key, set.name())
                };
                let tuning = configs::StreamTuning {
                    reuseport: contender.key == "nginx-reuseport",
                    tls: tls.as_ref(),
                };
                let text = configs::nginx_stream(
                    &self.machine(),
                    &conf_name,
                    port,
                    &backends,
                    tuning,
                );
                let file =
                    self.write_config(&format!("{conf_name}.conf"), text)?;
                let mut command = Command::new("nginx");
                command
                    .arg("-e")
                    .arg(self.work.join(format!("{conf_name}.error.log")))
                    .arg("-p")
                    .arg(&self.work)
                    .arg("-c")
                    .arg(file);
                command
            }
            Launch::Extra(template) => {
                let admin =
                    format!("127.0.0.1:{}", self.ports.admin(contender, set));
                let line = template
                    .replace("{listen}", &listen)
                    .replace("{backends}", &backends.join(","))
                    .replace("{admin}", &admin);
                let mut command = Command::new("bash");
                command
                    .env("RUST_LOG", "warn")
                    .arg("-c")
                    .arg(format!("exec {line}"));
                command
            }
        };
        self.procs.start(&name, &mut command)?;
        self.procs.wait_port(&name, port)?;
        if contender.has_admin() {
            self.procs
                .wait_port(&name, self.ports.admin(contender, set))?;
        }
        Ok(())
    }

    /// Waits, at most `quiet_wait` seconds (and `quiet_budget` in all),
    /// until the machine is quiet; counts the runs that started busy.
    fn wait_quiet(&mut self) {
        self.quiet.builds_seen.extend(sys::builds_running());
        let mut waited = 0;
        loop {
            let busy = sys::machine_busy(self.plan.quiet_sample);
            if busy <= BUSY_LIMIT {
                self.quiet.quiet_runs += 1;
                if waited > 0 {
                    self.quiet.waits += 1;
                }
                self.quiet.waited_seconds += waited;
                return;
            }
            if waited >= self.plan.quiet_wait || self.budget_left <= 0 {
                self.quiet.busy_runs += 1;
                self.quiet.waited_seconds += waited;
                self.quiet.max_busy = self.quiet.max_busy.max(busy);
                log(&format!(
                    "machine busy ({busy:.3} of all cores); going on after {waited} s"
                ));
                return;
            }
            if waited == 0 {
                log(&format!("machine busy ({busy:.3} of all cores); waiting"));
            }
            std::thread::sleep(Duration::from_secs(2));
            waited += 2;
            self.budget_left -= 2;
        }
    }

    fn measure(
        &mut self,
        workload: Workload,
        port: u16,
        cpu_pid: Option<u32>,
        connections: usize,
    ) -> Result<Run, String> {
        let loader = Loader {
            smoke: self.plan.mode == Mode::Smoke,
            duration: self.plan.duration,
            connections,
            work: self.work.clone(),
        };
        let (kind, tls) = match workload {
            Workload::KeepAlive => (Http::KeepAlive, false),
            Workload::TlsKeepAlive => (Http::KeepAlive, true),
            Workload::Close | Workload::Scale => (Http::Close, false),
            Workload::TlsNew => (Http::Close, true),
            Workload::Bulk => {
                return loader.bulk(&mut self.procs, port, cpu_pid);
            }
            Workload::Memory | Workload::Reloads => {
                unreachable!("{} has no load run", workload.name())
            }
        };
        loader.http(&mut self.procs, kind, tls, port, cpu_pid)
    }

    /// The scale workload: new connections through `lb` with 3 and with
    /// 1,000 backends, for every algorithm. Each round runs, per
    /// algorithm, the 3 and the 1,000 runs back to back between two
    /// direct runs, so that their ratio sees the same machine.
    fn run_scale(
        &mut self,
        lb: &Path,
        connections: usize,
    ) -> Result<(), String> {
        let set = Set::Scale;
        let rounds = self.plan.scale_runs;
        log(&format!(
            "scale: lb with {} backends, every algorithm ({rounds} rounds of {} s runs)",
            SCALE_SIZES.map(|n| n.to_string()).join(" and "),
            self.plan.duration
        ));
        let mut pairs: Vec<[Contender; 2]> = Vec::new();
        let mut slot = 0;
        for algorithm in SCALE_ALGORITHMS {
            let pair = SCALE_SIZES.map(|size| {
                slot += 1;
                Contender {
                    key: scale_key(algorithm, size),
                    label: format!("lb {algorithm}, {size} backends"),
                    slot,
                    launch: Launch::LbScale {
                        binary: lb.to_path_buf(),
                        algorithm,
                        backends: size,
                    },
                }
            });
            for contender in &pair {
                self.start_contender(contender, set)?;
            }
            pairs.push(pair);
        }
        let direct_port = self.ports.direct(set);
        let backend_pid = self.procs.pid("backend-nginx");
        let mut table = Table {
            rounds,
            ..Table::default()
        };
        let workload = Workload::Scale;
        for round in 1..=rounds {
            self.wait_quiet();
            let mut before =
                self.measure(workload, direct_port, backend_pid, connections)?;
            table.record("direct", round, before, None);
            for pair in rotated(&pairs, round) {
                let mut runs = Vec::new();
                for contender in &pair {
                    let (run, other) = self.contender_run(
                        workload,
                        set,
                        contender,
                        connections,
                    )?;
                    log(&format!(
                        "  scale round {round}: {} {:.0} req/s, CPU {}, other work {other:.2} cores",
                        contender.label,
                        run.rate,
                        cpu_text(workload, &run),
                    ));
                    runs.push((contender.key.clone(), run));
                }
                let after = self.measure(
                    workload,
                    direct_port,
                    backend_pid,
                    connections,
                )?;
                for (key, run) in runs {
                    let ratio = stats::ratio_to_neighbours(
                        run.rate,
                        before.rate,
                        after.rate,
                    );
                    table.record(&key, round, run, Some(ratio));
                }
                table.record("direct", round, after, None);
                before = after;
            }
        }
        for pair in &pairs {
            for contender in pair {
                self.procs.stop(&Bench::instance(contender, set));
            }
        }
        self.tables.insert((workload, set), table);
        Ok(())
    }

    fn run_workload(
        &mut self,
        workload: Workload,
        set: Set,
        rounds: u32,
        connections: usize,
    ) -> Result<(), String> {
        if rounds == 0 {
            return Ok(());
        }
        log(&format!(
            "{}, backends: {} ({rounds} rounds of {} s runs)",
            workload.name(),
            set.name(),
            self.plan.duration
        ));
        let taking_part = self.taking_part(workload, set);
        let taking_part = self.start_or_skip(taking_part, set);
        let direct_port = self.ports.direct(set);
        let backend = backend_name(set);
        // A direct HTTP run measures the backend's CPU (bulk: none).
        let backend_pid = match workload {
            Workload::Bulk => None,
            _ => self.procs.pid(&backend),
        };
        let mut table = Table {
            rounds,
            ..Table::default()
        };
        for round in 1..=rounds {
            let order = rotated(&taking_part, round);
            self.wait_quiet();
            let mut before =
                self.measure(workload, direct_port, backend_pid, connections)?;
            table.record("direct", round, before, None);
            for contender in &order {
                let (run, other) =
                    self.contender_run(workload, set, contender, connections)?;
                let after = self.measure(
                    workload,
                    direct_port,
                    backend_pid,
                    connections,
                )?;
                let ratio = stats::ratio_to_neighbours(
                    run.rate,
                    before.rate,
                    after.rate,
                );
                log(&format!(
                    "  {}/{} round {round}: {} {:.3} = {ratio:.3} x direct, \
                     CPU {}, other work {other:.2} cores",
                    workload.name(),
                    set.name(),
                    contender.label,
                    run.rate,
                    cpu_text(workload, &run),
                ));
                table.record(&contender.key, round, run, Some(ratio));
                table.record("direct", round, after, None);
                before = after;
            }
        }
        for contender in &taking_part {
            self.procs.stop(&Bench::instance(contender, set));
        }
        self.tables.insert((workload, set), table);
        Ok(())
    }

    /// One load run of `contender`, after waiting for a quiet machine,
    /// with its admin listener scraped if it has one. A run during which
    /// other work kept more than [`OTHER_LIMIT`] of a core busy is made
    /// again (twice at most): the check before a run cannot see a build
    /// that starts in the middle of it, and competing work moves CPU per
    /// request by 10% and more. Returns the run kept and the other
    /// work's cores.
    fn contender_run(
        &mut self,
        workload: Workload,
        set: Set,
        contender: &Contender,
        connections: usize,
    ) -> Result<(Run, f64), String> {
        let instance = Bench::instance(contender, set);
        let pid = self.procs.pid(&instance);
        let port = self.ports.contender(contender, set);
        let backend = self.procs.pid(&backend_name(set));
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.wait_quiet();
            // An admin listener is watched while the load runs.
            let scraper = contender.has_admin().then(|| {
                let admin = self.ports.admin(contender, set);
                scrape::Scraper::start(([127, 0, 0, 1], admin).into())
            });
            let watched: Vec<u32> = pid.into_iter().chain(backend).collect();
            let other = sys::OtherWork::start(&watched);
            let run = self.measure(workload, port, pid, connections);
            let other = other.cores();
            if let Some(scraper) = scraper {
                let counts = scraper.stop();
                log(&format!(
                    "  {} scraped: {}",
                    contender.label,
                    scrape::describe(&counts)
                ));
                let total =
                    self.scrapes.entry(contender.key.clone()).or_default();
                for (sum, count) in total.iter_mut().zip(counts) {
                    *sum = sum.plus(count);
                }
            }
            let run = run?;
            if other <= OTHER_LIMIT
                || attempt > OTHER_RETRIES
                || !self.plan.repeat_disturbed
            {
                if other > OTHER_LIMIT {
                    self.quiet.disturbed_kept += 1;
                }
                self.quiet.max_other = self.quiet.max_other.max(other);
                return Ok((run, other));
            }
            self.quiet.repeated += 1;
            log(&format!(
                "  {}: other work kept {other:.2} cores busy during the run \
                 (CPU {}): once more",
                contender.label,
                cpu_text(workload, &run)
            ));
        }
    }

    /// Memory: a fresh balancer, `idle` client connections through it
    /// that send nothing, its RSS before and after.
    fn run_memory(&mut self, set: Set) -> Result<(), String> {
        let n = self.plan.idle;
        log(&format!(
            "memory: {n} idle connections through each balancer, backends: {}",
            set.name()
        ));
        let taking_part = self.taking_part(Workload::Memory, set);
        for round in 1..=self.plan.memory_runs {
            let order = rotated(&taking_part, round);
            for contender in &order {
                self.start_contender(contender, set)?;
                let name = Bench::instance(contender, set);
                let pid = self.procs.pid(&name).expect("just started");
                let port = self.ports.contender(contender, set);
                std::thread::sleep(Duration::from_millis(500));
                let rss_before = sys::rss_kib(pid);
                let fds_before = sys::fd_count(pid);
                let idle = open_idle(port, n)?;
                // Wait until the balancer has accepted them all (and
                // dialled its backends): its descriptor count stops
                // growing.
                let mut previous = usize::MAX;
                let mut fds = fds_before;
                for _ in 0..120 {
                    std::thread::sleep(Duration::from_millis(500));
                    fds = sys::fd_count(pid);
                    if fds >= fds_before + n && fds == previous {
                        break;
                    }
                    previous = fds;
                }
                std::thread::sleep(Duration::from_millis(500));
                let run = MemoryRun {
                    round,
                    rss_before_kib: rss_before,
                    rss_after_kib: sys::rss_kib(pid),
                    fds_before,
                    fds_after: fds,
                    connections: n,
                };
                log(&format!(
                    "  {}: RSS {} -> {} MiB, {:.0} B per connection",
                    contender.label,
                    run.rss_before_kib / 1024,
                    run.rss_after_kib / 1024,
                    run.bytes_per_connection()
                ));
                self.memory.push((contender.key.clone(), run));
                drop(idle);
                self.procs.stop(&name);
            }
        }
        Ok(())
    }
}

/// The process name of the backends behind `set`: the TLS and scale
/// workloads use the nginx backend.
fn backend_name(set: Set) -> String {
    let set = match set {
        Set::Tls | Set::Scale => Set::Nginx,
        other => other,
    };
    format!("backend-{}", set.name())
}

/// A run's CPU per request (per GB for bulk), for the log.
fn cpu_text(workload: Workload, run: &Run) -> String {
    let figure = match workload {
        Workload::Bulk => {
            stats::cpu_per_unit(run, 1e3).map(|ms| format!("{ms:.0} ms/GB"))
        }
        _ => stats::cpu_per_unit(run, 1e6).map(|us| format!("{us:.2} µs/req")),
    };
    figure.unwrap_or_else(|| "—".into())
}

/// Opens `n` connections to `port` and returns them, idle.
fn open_idle(port: u16, n: usize) -> Result<Vec<TcpStream>, String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        if Instant::now() > deadline {
            return Err(format!("opening {n} connections took over 2 min"));
        }
        let stream =
            TcpStream::connect_timeout(&address, Duration::from_secs(10))
                .map_err(|err| {
                    format!("opened only {i} of {n} idle connections: {err}")
                })?;
        held.push(stream);
        // A pause every 100: a listener with a short accept queue (128 is
        // the usual default) would otherwise overflow, and each dropped
        // SYN costs the client a one-second retry.
        if (i + 1) % 100 == 0 {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(held)
}

/// `scripts/bench.sh` as typed, for the report.
fn command_line(args: &[String]) -> String {
    let mut line = String::from("scripts/bench.sh");
    for arg in args {
        let plain = arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ",._-/=:".contains(c));
        if plain {
            line.push(' ');
            line.push_str(arg);
        } else {
            line.push_str(&format!(" '{}'", arg.replace('\'', r"'\''")));
        }
    }
    line
}

/// The contenders the plan names whose programs are there (a step that
/// did not build is left out with a message), then `--also`'s.
fn choose_contenders(
    plan: &Plan,
    options: &Options,
    binaries: &BTreeMap<String, PathBuf>,
    step_bin: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Contender>, String> {
    let mut contenders = Vec::new();
    for (key, slot) in KNOWN {
        if !plan.contenders.iter().any(|wanted| wanted == key) {
            continue;
        }
        let (label, launch) = match key {
            "haproxy" => ("HAProxy".to_owned(), Launch::Haproxy),
            "haproxy-splice" => {
                ("HAProxy splice-auto".to_owned(), Launch::Haproxy)
            }
            "nginx" => ("nginx stream".to_owned(), Launch::Nginx),
            "nginx-reuseport" => {
                ("nginx stream reuseport".to_owned(), Launch::Nginx)
            }
            "lb" | "lb-lc" | "lb-nosplice" => match binaries.get("lb") {
                Some(path) => {
                    let label = match key {
                        "lb-lc" => "lb least-connections",
                        "lb-nosplice" => "lb no splice",
                        _ => "lb",
                    };
                    (label.to_owned(), Launch::Lb(path.clone()))
                }
                None => {
                    log(&format!("no lb: {key} skipped"));
                    continue;
                }
            },
            _ => match step_bin(key)
                .and_then(|bin| binaries.get(&bin).map(|p| (bin, p)))
            {
                Some((bin, path)) => (bin, Launch::Step(path.clone())),
                None => {
                    log(&format!("no step {key} built: skipped"));
                    continue;
                }
            },
        };
        contenders.push(Contender {
            key: key.to_owned(),
            label,
            slot,
            launch,
        });
    }
    for (i, also) in options.also.iter().enumerate() {
        let (label, command) =
            also.split_once('=').ok_or("--also wants LABEL=COMMAND")?;
        contenders.push(Contender {
            key: format!("x{}", i + 1),
            label: label.to_owned(),
            slot: 7 + i as u16,
            launch: Launch::Extra(command.to_owned()),
        });
    }
    if contenders.is_empty() {
        return Err("no contender chosen (--contenders, --also)".into());
    }
    for (i, contender) in contenders.iter().enumerate() {
        if contenders[..i].iter().any(|c| {
            c.label == contender.label
                || c.key == contender.label
                || c.label == contender.key
        }) {
            return Err(format!(
                "two contenders are called \"{}\": give --also another label",
                contender.label
            ));
        }
    }
    Ok(contenders)
}

/// `--baseline`'s pairs as contender keys: (contender, baseline). Names
/// are labels or keys; a lone baseline pairs every other contender with
/// it.
fn baseline_pairs(
    wanted: &[(Option<String>, String)],
    contenders: &[Contender],
) -> Result<Vec<(String, String)>, String> {
    let find = |name: &str| {
        contenders
            .iter()
            .find(|c| c.label == name)
            .or_else(|| contenders.iter().find(|c| c.key == name))
            .map(|c| c.key.clone())
            .ok_or_else(|| {
                let names: Vec<&str> =
                    contenders.iter().map(|c| c.label.as_str()).collect();
                format!(
                    "--baseline: no contender \"{name}\" ({})",
                    names.join(", ")
                )
            })
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (contender, baseline) in wanted {
        let baseline = find(baseline)?;
        let mine = match contender {
            Some(name) => vec![find(name)?],
            None => contenders
                .iter()
                .map(|c| c.key.clone())
                .filter(|key| *key != baseline)
                .collect(),
        };
        for key in mine {
            if key != baseline
                && !pairs.contains(&(key.clone(), baseline.clone()))
            {
                pairs.push((key, baseline.clone()));
            }
        }
    }
    Ok(pairs)
}

/// `list` started at a different place in each `round` (from 1), so that
/// no one always runs first after a pause or last in a warm machine.
fn rotated<T: Clone>(list: &[T], round: u32) -> Vec<T> {
    let mut order = list.to_vec();
    let shift = (round as usize - 1) % order.len().max(1);
    order.rotate_left(shift);
    order
}

/// Every port the run could use, checked before anything starts.
fn check_ports_free(ports: Ports) -> Result<(), String> {
    let busy: Vec<String> = ports
        .all()
        .into_iter()
        .filter(|port| sys::is_listening(*port))
        .map(|port| port.to_string())
        .collect();
    if busy.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "ports already in use: {} (choose another block with --port-base)",
            busy.join(" ")
        ))
    }
}

/// The whole run. `args` are the command line after the program's name.
pub fn run(args: Vec<String>) -> Result<(), String> {
    let started = Instant::now();
    let started_at = time::OffsetDateTime::now_utc();
    let options = match Options::try_parse_from(
        std::iter::once("scripts/bench.sh".to_owned())
            .chain(args.iter().cloned()),
    ) {
        Ok(options) => options,
        Err(err) => {
            // --help is no error; a bad option exits 2, as clap does.
            let _ = err.print();
            std::process::exit(if err.use_stderr() { 2 } else { 0 });
        }
    };
    let root = steps::workspace_root();
    let plan = Plan::new(&options, &root)?;
    let ports = Ports {
        base: options.port_base,
    };
    let smoke = plan.mode == Mode::Smoke;

    let nofile = sys::raise_open_files();
    let needed = 2 * plan.idle as u64 + 200;
    if nofile < needed {
        return Err(format!(
            "{} idle connections need {needed} open files; the limit is {nofile}",
            plan.idle
        ));
    }

    // Contenders, by the names of the steps' binaries as Cargo knows them.
    let lab_steps = steps::load(&root)?;
    let step_bin = |number: &str| {
        steps::find(&lab_steps, number)
            .map(|step| step.bin.clone())
            .ok()
    };
    let mut wanted_bins = vec!["dummy-servers".to_owned()];
    for key in &plan.contenders {
        match key.as_str() {
            "lb" | "lb-lc" | "lb-nosplice" => {
                if !wanted_bins.iter().any(|bin| bin == "lb") {
                    wanted_bins.push("lb".into());
                }
            }
            // Debian's, not built here.
            "haproxy" | "haproxy-splice" | "nginx" | "nginx-reuseport" => {}
            step => match step_bin(step) {
                Some(bin) => wanted_bins.push(bin),
                None => log(&format!("no step {step} in steps/: skipped")),
            },
        }
    }

    check_ports_free(ports)?;

    if smoke {
        if !installed("curl") {
            return Err("the smoke test needs curl".into());
        }
    } else {
        install_tools(!options.no_install)?;
    }
    let binaries = build(&root, &wanted_bins, !smoke);
    let dummy_servers = binaries
        .get("dummy-servers")
        .ok_or("dummy-servers did not build")?
        .clone();

    let contenders = choose_contenders(&plan, &options, &binaries, &step_bin)?;
    let baselines = baseline_pairs(&plan.baselines, &contenders)?;

    let work_dir = tempfile::Builder::new()
        .prefix("lb-bench.")
        .tempdir()
        .map_err(|err| format!("a temporary folder: {err}"))?;
    let work = work_dir.path().to_path_buf();
    procs::stop_on_signals("bench.sh", work.clone(), options.keep);
    std::fs::write(work.join("report.lua"), configs::WRK_REPORT)
        .map_err(|err| err.to_string())?;
    if let Some(parent) = plan.out.parent() {
        std::fs::create_dir_all(parent).map_err(|err| err.to_string())?;
    }

    let mut bench = Bench {
        budget_left: plan.quiet_budget as i64,
        plan,
        ports,
        procs: Procs::new(&work),
        work: work.clone(),
        contenders,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        nofile,
        quiet: Quiet::default(),
        tables: BTreeMap::new(),
        memory: Vec::new(),
        configs: BTreeMap::new(),
        reloads: Vec::new(),
        reload_shape: None,
        scrapes: BTreeMap::new(),
        certs: None,
        skipped: BTreeMap::new(),
    };
    if !smoke {
        bench.certs = Some(write_certs(&work)?);
    }
    let lb_binary = binaries.get("lb").cloned();
    let result = measure_everything(
        &mut bench,
        &dummy_servers,
        lb_binary.as_deref(),
        options.connections,
    );
    bench.procs.stop_all();
    if options.keep {
        let kept = work_dir.keep();
        log(&format!("kept {}", kept.display()));
    }
    result?;

    let report = report::Report {
        mode: bench.plan.mode,
        command_line: command_line(&args),
        started_at,
        elapsed: started.elapsed(),
        cores: bench.cores,
        cpu_model: sys::cpu_model(),
        kernel: sys::kernel_release(),
        quiet: bench.quiet.clone(),
        busy_limit: BUSY_LIMIT,
        versions: versions(smoke),
        release_profile: release_profile(&root),
        connections: options.connections,
        duration: bench.plan.duration,
        idle: bench.plan.idle,
        memory_runs: bench.plan.memory_runs,
        contenders: bench.contenders.clone(),
        tables: bench.tables.clone(),
        memory: bench.memory.clone(),
        reloads: bench.reloads.clone(),
        reload_shape: bench.reload_shape,
        baselines,
        scrapes: bench.scrapes.clone(),
        configs: bench.configs.clone(),
        work: work.display().to_string(),
        skipped: bench.skipped.clone(),
        chart: None,
    };
    let out = &bench.plan.out;
    // The chart sits beside the report: bench-ratios.svg for a full run
    // (committed with BENCHMARKS.md), ratios.svg for a quick one.
    let mut report = report;
    let bars = report.chart_bars();
    if bench.plan.mode != Mode::Smoke && !bars.is_empty() {
        let name = if bench.plan.mode == Mode::Full {
            "bench-ratios.svg"
        } else {
            "ratios.svg"
        };
        let title = format!(
            "lb's CPU per request (per GB) ÷ the best peer's ({} run)",
            bench.plan.mode.name()
        );
        let svg = chart::ratios_svg(&title, &bars)?;
        let path = out.with_file_name(name);
        std::fs::write(&path, svg)
            .map_err(|err| format!("{}: {err}", path.display()))?;
        log(&format!("drew {}", path.display()));
        report.chart = Some(name.to_owned());
    }
    let mut text = report.markdown();
    // The trials written by hand at the end of the file outlive the run.
    if let Ok(old) = std::fs::read_to_string(out)
        && let Some(trials) = hand_written_trials(&old)
    {
        text.push('\n');
        text.push_str(trials);
    }
    let partial = out.with_extension("md.tmp");
    std::fs::write(&partial, &text)
        .and_then(|()| std::fs::rename(&partial, out))
        .map_err(|err| format!("{}: {err}", out.display()))?;
    print!("{text}");
    log(&format!(
        "wrote {} in {} s",
        out.strip_prefix(&root).unwrap_or(out).display(),
        started.elapsed().as_secs()
    ));
    let missing = report.missing();
    if !missing.is_empty() {
        return Err(format!("no figure for: {}", missing.join(" ")));
    }
    Ok(())
}

fn measure_everything(
    bench: &mut Bench,
    dummy_servers: &Path,
    lb: Option<&Path>,
    connections: usize,
) -> Result<(), String> {
    let plan = bench.plan.clone();
    let http = [Workload::KeepAlive, Workload::Close];
    if plan.mode == Mode::Smoke {
        bench.start_backends(Set::Dummy, dummy_servers)?;
        if plan.wants(Workload::Memory) {
            bench.run_memory(Set::Dummy)?;
        }
        for workload in [Workload::KeepAlive, Workload::Close, Workload::Bulk] {
            if plan.wants(workload) {
                bench.run_workload(
                    workload,
                    Set::Dummy,
                    plan.runs,
                    connections,
                )?;
            }
        }
        return Ok(());
    }
    bench.start_backends(Set::Nginx, dummy_servers)?;
    if plan.wants(Workload::Memory) {
        bench.run_memory(Set::Nginx)?;
    }
    for workload in http {
        if plan.wants(workload) {
            bench.run_workload(workload, Set::Nginx, plan.runs, connections)?;
        }
    }
    for workload in [Workload::TlsNew, Workload::TlsKeepAlive] {
        if plan.wants(workload) {
            bench.run_workload(workload, Set::Tls, plan.runs, connections)?;
        }
    }
    if plan.wants(Workload::Scale) {
        match lb {
            Some(lb) if plan.contenders.iter().any(|c| c == "lb") => {
                bench.run_scale(lb, connections)?;
            }
            _ => log("scale: no lb among the contenders: skipped"),
        }
    }
    if plan.dummy_runs > 0 && http.iter().any(|w| plan.wants(*w)) {
        bench.start_backends(Set::Dummy, dummy_servers)?;
        for workload in http {
            if plan.wants(workload) {
                bench.run_workload(
                    workload,
                    Set::Dummy,
                    plan.dummy_runs,
                    connections,
                )?;
            }
        }
        bench.procs.stop("backend-dummy");
    }
    if plan.wants(Workload::Reloads) {
        bench.run_reloads(dummy_servers)?;
    }
    if plan.wants(Workload::Bulk) {
        bench.start_backends(Set::Iperf, dummy_servers)?;
        bench.run_workload(
            Workload::Bulk,
            Set::Iperf,
            plan.runs,
            connections,
        )?;
        bench.procs.stop("backend-iperf");
    }
    Ok(())
}

fn versions(smoke: bool) -> String {
    let mut list = vec![first_line("rustc", &["-V"])];
    if smoke {
        list.push(words(&first_line("curl", &["-V"]), 2));
    } else {
        list.push(words(&first_line("haproxy", &["-v"]), 3));
        list.push(
            first_line("nginx", &["-v"])
                .trim_start_matches("nginx version: ")
                .to_owned(),
        );
        list.push(words(&first_line("wrk", &["-v"]), 2));
        list.push(words(&first_line("iperf3", &["-v"]), 2));
    }
    list.join(", ")
}

/// `[profile.release]` of the workspace's Cargo.toml, on one line.
fn release_profile(root: &Path) -> String {
    let text =
        std::fs::read_to_string(root.join("Cargo.toml")).unwrap_or_default();
    let Ok(manifest) = text.parse::<toml::Table>() else {
        return String::new();
    };
    manifest
        .get("profile")
        .and_then(|p| p.get("release"))
        .and_then(|r| r.as_table())
        .map(|table| {
            table
                .iter()
                .map(|(key, value)| format!("{key} = {value}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// The heading of the part of BENCHMARKS.md written by hand: the trials
/// that decided `lb`'s design, which a run keeps as they are.
const TRIALS: &str = "# Trials";

/// The hand-written trials at the end of a report, from their heading on.
fn hand_written_trials(report: &str) -> Option<&str> {
    let at = report.find(&format!("\n{TRIALS}"))?;
    Some(&report[at + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_keeps_the_hand_written_trials() {
        let old = "# Benchmarks\n\n| a |\n\n# Trials: kept\n\n## One\n";
        assert_eq!(
            hand_written_trials(old),
            Some("# Trials: kept\n\n## One\n")
        );
        assert_eq!(hand_written_trials("# Benchmarks\n\n| a |\n"), None);
    }

    #[test]
    fn the_command_line_is_quoted_as_a_shell_would_need() {
        let args = [
            "--quick",
            "--also",
            "mine=target/release/mine --listen {listen}",
        ]
        .map(String::from);
        assert_eq!(
            command_line(&args),
            "scripts/bench.sh --quick --also 'mine=target/release/mine --listen {listen}'"
        );
    }

    fn also(key: &str, label: &str) -> Contender {
        Contender {
            key: key.into(),
            label: label.into(),
            slot: 7,
            launch: Launch::Extra(format!("{label} --listen {{listen}}")),
        }
    }

    #[test]
    fn baselines_name_labels_or_keys_and_a_lone_one_takes_all_others() {
        let contenders = [
            also("x1", "old"),
            also("x2", "new"),
            also("x3", "new-admin"),
        ];
        let pairs = |list: &[&str]| {
            let items: Vec<String> =
                list.iter().map(|s| s.to_string()).collect();
            baseline_pairs(&plan::parse_baselines(&items).unwrap(), &contenders)
        };
        assert_eq!(
            pairs(&["old"]).unwrap(),
            [("x2".into(), "x1".into()), ("x3".into(), "x1".into())]
        );
        assert_eq!(
            pairs(&["new:old", "x3:new", "new:x1"]).unwrap(),
            [("x2".into(), "x1".into()), ("x3".into(), "x2".into())]
        );
        assert_eq!(
            pairs(&["lb:old"]).unwrap_err(),
            "--baseline: no contender \"lb\" (old, new, new-admin)"
        );
    }

    #[test]
    fn only_an_also_command_with_admin_is_scraped() {
        let mut admin = also("x1", "a");
        assert!(!admin.has_admin());
        admin.launch = Launch::Extra("lb --admin {admin}".into());
        assert!(admin.has_admin());
    }
}
