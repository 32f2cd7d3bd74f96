//! `lb`: the command line. Reads the config file (or takes the defaults),
//! applies the flags over it, binds, prints `listening on ADDR`, and runs
//! until SIGTERM or Ctrl-C, then drains.
//!
//! ```text
//! scripts/spawn-backends.sh
//! cargo run --release --bin lb
//! curl localhost:3000
//!
//! cargo run --release --bin lb -- --config balancer/lb.toml
//! cargo run --release --bin lb -- --check-config balancer/lb.toml
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use balancer::Balancer;
use balancer::backend::Address;
use balancer::config::{BackendConfig, Config, FrontTls};
use balancer::select::Algorithm;
use clap::Parser;
use lab_common::HostPort;
use lab_common::cli::{announce, fail};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

/// lb: a TCP load balancer with health checks, failover, a choice of
/// algorithms, timeouts, limits and graceful drain.
#[derive(Parser, Debug)]
#[command(name = "lb", version, about, after_help = AFTER_HELP)]
struct Args {
    /// Read the configuration from this TOML file (see balancer/lb.toml);
    /// the flags below override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Check what `lb --config FILE` with the same other flags would run
    /// (the file, the flags over it, the certificates named), print the
    /// result, and exit: 0 if it is usable, 1 if not.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    check_config: Option<PathBuf>,

    /// Address to listen on [default: 127.0.0.1:3000].
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<HostPort>,

    /// Backends, comma-separated: HOST:PORT for plain TCP, tls://HOST:PORT
    /// for TLS [default: 127.0.0.1:4444,127.0.0.1:4445,127.0.0.1:4446].
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    backends: Vec<Address>,

    /// round-robin, weighted-round-robin, random, least-connections,
    /// power-of-two or maglev [default: round-robin].
    #[arg(long, value_name = "NAME")]
    algorithm: Option<Algorithm>,

    /// Seed the random algorithms (random, power-of-two) with N: the same
    /// seed, backends and clients give the same picks [default: a new
    /// sequence each run].
    #[arg(long, value_name = "N")]
    seed: Option<u64>,

    /// Certificate chain (PEM) to present to clients: the front speaks
    /// TLS. Needs --key.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,

    /// Private key (PEM) of --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,

    /// CA certificate(s) (PEM) that tls:// backends must be signed by.
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    ca: Option<PathBuf>,

    /// Do not verify the certificates of tls:// backends at all.
    #[arg(long)]
    insecure: bool,
}

/// What `--help` says after the flags: what else `lb` answers to.
const AFTER_HELP: &str = "\
Signals:
  SIGTERM, SIGINT  stop accepting, let open connections finish for up to
                   `drain` (lb.toml's [timeouts]), then exit 0; a second
                   one stops at once
  SIGHUP           logged and ignored: lb cannot reload yet

Environment:
  RUST_LOG         what to log, as tracing's EnvFilter reads it
                   (default: info; RUST_LOG=debug for more)
  LAB_LOG_FORMAT   json: one JSON object per log line
  NO_COLOR         no colours in the log";

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if args.check_config.is_some() {
        return check_config(&args).await;
    }
    lab_common::logging::init();
    let config = match configure(&args) {
        Ok(config) => config,
        Err(err) => return fail(err),
    };
    for warning in warnings(&config).await {
        warn!("{warning}");
    }
    // Before "listening on": a signal sent as soon as `lb` says it is up
    // must find the handlers in place.
    let signals = match Signals::install() {
        Ok(signals) => signals,
        Err(err) => return fail(format!("cannot handle signals: {err}")),
    };
    balancer::raise_open_file_limit();
    // The certificates are read now, before "listening on": a bad one
    // stops `lb` before anyone is told it is up.
    let listen = config.listen.clone();
    let backlog = config.limits.backlog;
    let summary = format!(
        "balancing over {} with {}; health checks: {}",
        balancer::count(config.backends.len(), "backend"),
        config.algorithm,
        config.health.kind
    );
    let lb = match Balancer::new(config) {
        Ok(lb) => lb,
        Err(err) => return fail(err),
    };
    let listener = match balancer::bind(&listen, backlog).await {
        Ok(listener) => listener,
        Err(err) => {
            return fail(format!("cannot listen on {listen}: {err}"));
        }
    };
    match listener.local_addr() {
        Ok(addr) => announce(&addr.to_string()),
        Err(err) => {
            return fail(format!("cannot read the bound address: {err}"));
        }
    }
    info!("{summary}");
    match balancer::serve(listener, lb, signals.first()).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => fail(err),
    }
}

/// The file (`--config` or `--check-config`; or the defaults) with the
/// flags applied over it, checked.
fn configure(args: &Args) -> Result<Config, String> {
    let file = args.config.as_ref().or(args.check_config.as_ref());
    let (mut config, source) = match file {
        Some(path) => (load(path)?, path.display().to_string()),
        None => (Config::default(), "the defaults".to_owned()),
    };
    if let Some(listen) = &args.listen {
        config.listen = listen.clone();
    }
    if !args.backends.is_empty() {
        config.backends = args
            .backends
            .iter()
            .cloned()
            .map(BackendConfig::at)
            .collect();
    }
    if let Some(algorithm) = args.algorithm {
        config.algorithm = algorithm;
    }
    if args.seed.is_some() {
        config.seed = args.seed;
    }
    if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
        config.tls.front = Some(FrontTls {
            cert: cert.clone(),
            key: key.clone(),
        });
    }
    if let Some(ca) = &args.ca {
        config.tls.ca = Some(ca.clone());
        config.tls.insecure = false;
    }
    if args.insecure {
        config.tls.insecure = true;
        config.tls.ca = None;
    }
    // The rules between keys again, which the file obeyed but the flags
    // may break (`--backends tls://...` with no `--ca`). Where no flag
    // was given they hold as before.
    let source = format!("{source} with the command line's flags");
    config.check(&source).map_err(|err| err.to_string())?;
    Ok(config)
}

/// The largest configuration file `lb` reads. A real one is a few KiB;
/// the bound keeps a wrong path (`/dev/zero`, a log file) from filling
/// memory before the parser can refuse it.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

fn load(path: &Path) -> Result<Config, String> {
    let cannot =
        |err: std::io::Error| format!("cannot read {}: {err}", path.display());
    let file = std::fs::File::open(path).map_err(cannot)?;
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(cannot)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(format!(
            "{}: longer than {} KiB; is it a configuration file?",
            path.display(),
            MAX_CONFIG_BYTES / 1024
        ));
    }
    Config::parse(path, &text).map_err(|err| err.to_string())
}

/// What a careful user may mean but should hear about: the config's own
/// warnings, and backend names that do not resolve now (`lb` resolves
/// again at each connection, so a name that comes later still works).
async fn warnings(config: &Config) -> Vec<String> {
    let mut warnings = config.warnings();
    for backend in &config.backends {
        let at = &backend.address.host_port;
        if at.host().parse::<std::net::IpAddr>().is_ok() {
            continue;
        }
        if let Err(err) = tokio::net::lookup_host((at.host(), at.port())).await
        {
            warnings.push(format!(
                "backends: `{}` does not resolve now ({err}); lb tries \
                 again at each connection",
                backend.address
            ));
        }
    }
    warnings
}

/// `--check-config`: what `--config` with the same flags would run, then
/// what it names (certificates), as `nginx -t` and `haproxy -c` do.
async fn check_config(args: &Args) -> ExitCode {
    let path = args.check_config.as_deref().unwrap_or(Path::new(""));
    let config = match configure(args) {
        Ok(config) => config,
        Err(err) => return fail(err),
    };
    let summary = format!(
        "{}: ok: listen {}, {}, {}, health checks {}",
        path.display(),
        config.listen,
        balancer::count(config.backends.len(), "backend"),
        config.algorithm,
        config.health.kind
    );
    let warnings = warnings(&config).await;
    if let Err(err) = Balancer::new(config) {
        return fail(format!("{}: {err}", path.display()));
    }
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    println!("{summary}");
    ExitCode::SUCCESS
}

// ANCHOR: signals
/// SIGTERM and SIGINT (Ctrl-C) start the drain; a second one ends at once
/// with status 128 + its number, as a shell reports a killed process.
/// SIGHUP, which would kill the process by default, is logged and ignored
/// until `lb` can reload its configuration.
struct Signals {
    first: tokio::sync::oneshot::Receiver<()>,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let (tell, first) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut tell = Some(tell);
            loop {
                let (name, number) = tokio::select! {
                    _ = term.recv() => ("SIGTERM", 15),
                    _ = int.recv() => ("SIGINT", 2),
                    _ = hup.recv() => {
                        info!("SIGHUP: reloading is not supported yet; ignored");
                        continue;
                    }
                };
                match tell.take() {
                    Some(tell) => {
                        info!("{name}: draining (send it again to stop now)");
                        let _ = tell.send(());
                    }
                    None => {
                        info!("{name} again: stopping now");
                        std::process::exit(128 + number);
                    }
                }
            }
        });
        Ok(Signals { first })
    }
    // ANCHOR_END: signals

    async fn first(self) {
        // A dropped sender (the task is gone) also means stop.
        let _ = self.first.await;
    }
}
