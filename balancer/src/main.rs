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

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use balancer::backend::Address;
use balancer::codes::EndCode;
use balancer::config::{BackendConfig, Config, FrontTls, LogFormat};
use balancer::discovery::Discovered;
use balancer::reload::Reloader;
use balancer::select::Algorithm;
use balancer::{Balancer, admin, service, upgrade};
use clap::Parser;
use lab_common::HostPort;
use lab_common::cli::{announce, fail};
use lab_common::logging::Format;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// lb: a TCP load balancer with health checks, failover, a choice of
/// algorithms, timeouts, limits and graceful drain.
#[derive(Parser, Debug, Clone)]
#[command(name = "lb", version, about, after_help = after_help())]
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

    /// Serve the admin API (reload, backends' state, drain) on this
    /// address [default: none; the config's [admin] listen].
    #[arg(long, value_name = "HOST:PORT")]
    admin: Option<HostPort>,

    /// Take over from the lb running with this config: its listening
    /// sockets (no connection lost) and its backends' state, through the
    /// config's [upgrade] socket; the old one then drains and exits.
    #[arg(long)]
    upgrade: bool,
}

/// What `--help` says after the flags: what else `lb` answers to.
const AFTER_HELP: &str = "\
Signals:
  SIGTERM, SIGINT  stop accepting, let open connections finish for up to
                   `drain` (lb.toml's [timeouts]), then exit 0; a second
                   one stops at once
  SIGHUP           read the config again and apply it (a bad one is
                   refused and logged; the running config stays)
  SIGUSR2          upgrade: start this executable again with the same
                   arguments and --upgrade; the new process takes the
                   listeners over ([upgrade] socket) and this one drains

Environment:
  RUST_LOG         what to log, as tracing's EnvFilter reads it
                   (default: info; RUST_LOG=debug for more)
  LAB_LOG_FORMAT   json: one flat JSON object per line (stdout's too);
                   text: sentences. Wins over the config's log_format
  NO_COLOR         no colours in the log
  NOTIFY_SOCKET    set by systemd (Type=notify): lb says READY=1,
                   RELOADING=1, STOPPING=1 and, after an upgrade, MAINPID=
  LISTEN_FDS       set by systemd's socket activation: lb takes the
                   listener (and the admin listener) passed, binds none";

/// [`AFTER_HELP`], then the table of end codes.
fn after_help() -> String {
    format!(
        "{AFTER_HELP}\n\nEnd codes: who ended a connection, and when (the \
         `code` of its last\nlog line, of its decision, and of \
         lb_connections_ended_total):\n{}",
        EndCode::table().trim_end()
    )
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if args.check_config.is_some() {
        return check_config(&args).await;
    }
    // The config says how to log, so it is read before logging starts;
    // a config that cannot be read is said in the format the
    // environment asks for.
    let config = configure(&args);
    let json = match lab_common::logging::format_from_env() {
        Some(format) => format != Format::Readable,
        None => config
            .as_ref()
            .is_ok_and(|config| config.log_format == LogFormat::Json),
    };
    lab_common::logging::init_as(if json {
        Format::FlatJson
    } else {
        Format::Readable
    });
    let out = Out { json };
    let started = match config {
        Ok(config) => start(args, config, out).await,
        Err(err) => Err(err),
    };
    match started {
        Ok(code) => code,
        Err(err) if json => {
            tracing::error!("{err}");
            ExitCode::FAILURE
        }
        Err(err) => fail(err),
    }
}

/// What `lb` prints on stdout (the lines tests and scripts wait for):
/// plain, or as flat JSON lines like the log's.
#[derive(Clone, Copy)]
struct Out {
    json: bool,
}

impl Out {
    /// `listening on ADDR`.
    fn listening(self, addr: &str) {
        if self.json {
            self.line(&format!("listening on {addr}"), addr);
        } else {
            announce(addr);
        }
    }

    /// `admin on ADDR`.
    fn admin(self, addr: &str) {
        if self.json {
            self.line(&format!("admin on {addr}"), addr);
        } else {
            println!("admin on {addr}");
        }
    }

    fn line(self, message: &str, addr: &str) {
        let line = lab_common::logging::json_line(
            tracing::Level::INFO,
            message,
            &[("address", addr)],
        );
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// Everything after the flags: configure, build, take the listeners
/// (bound, or handed over by a running `lb`), serve until told to stop.
async fn start(
    args: Args,
    config: Config,
    out: Out,
) -> Result<ExitCode, String> {
    for warning in warnings(&config).await {
        warn!("{warning}");
    }
    balancer::raise_open_file_limit();
    // Sockets passed by systemd, taken before any task starts (see
    // `service::activated`); an upgrade takes its sockets from the old
    // process instead.
    let activated = if args.upgrade {
        None
    } else {
        service::activated(config.admin.listen.is_some())?
    };
    // A store's backends join the file's before the pool is built, and
    // again at every reload; a change in the store is a reload.
    let discovered = Discovered::start(&config).await?.map(Arc::new);
    let config = match &discovered {
        Some(discovered) => discovered.apply(config),
        None => config,
    };
    let summary = format!(
        "balancing over {} with {}; health checks: {}",
        balancer::count(config.backends.len(), "backend"),
        config.algorithm,
        config.health.kind
    );
    // The certificates are read now, before "listening on": a bad one
    // stops `lb` before anyone is told it is up.
    let lb =
        Arc::new(Balancer::new(config.clone()).map_err(|e| e.to_string())?);
    let args = Arc::new(args);
    let source_args = args.clone();
    let source_store = discovered.clone();
    let reloader = Reloader::new(
        lb.clone(),
        Arc::new(move || {
            let config = configure(&source_args)?;
            Ok(match &source_store {
                Some(store) => store.apply(config),
                None => config,
            })
        }),
    );
    if let Some(discovered) = &discovered {
        discovered.follow(reloader.clone());
    }
    // Before "listening on": a signal sent as soon as `lb` says it is up
    // must find the handlers in place.
    let signals = Signals::install(reloader.clone())
        .map_err(|err| format!("cannot handle signals: {err}"))?;
    service::upgrade_on_sigusr2(config.upgrade.socket.clone())?;
    if config.watch {
        let Some(path) = &args.config else {
            return Err("watch = true needs a file (--config FILE)".to_owned());
        };
        reloader.watch(path)?;
    }
    let upgraded_from_another = args.upgrade;
    let (listener, admin_listener, taken) = if args.upgrade {
        let Some(socket) = config.upgrade.socket.clone() else {
            return Err("--upgrade needs `socket` in the config's \
                        [upgrade] table: where the running lb listens"
                .to_owned());
        };
        let taken =
            tokio::task::spawn_blocking(move || upgrade::take_over(&socket))
                .await
                .map_err(|err| err.to_string())??;
        lb.restore(&taken.backends).map_err(|e| e.to_string())?;
        info!(
            "upgrade: took over {} and the state of {} from the running lb",
            if taken.admin.is_some() {
                "the listener and the admin listener"
            } else {
                "the listener"
            },
            balancer::count(taken.backends.len(), "backend")
        );
        let listener = tokio::net::TcpListener::from_std(
            taken.main.try_clone().map_err(|e| e.to_string())?,
        )
        .map_err(|err| format!("the passed listener: {err}"))?;
        let admin = match &taken.admin {
            Some(admin) => Some(
                tokio::net::TcpListener::from_std(
                    admin.try_clone().map_err(|e| e.to_string())?,
                )
                .map_err(|err| format!("the passed admin listener: {err}"))?,
            ),
            None => None,
        };
        (listener, admin, Some(taken))
    } else {
        let (listener, admin) = listeners(&config, activated).await?;
        (listener, admin, None)
    };
    let addr = listener
        .local_addr()
        .map_err(|err| format!("cannot read the bound address: {err}"))?;
    // The upgrade's offer: the same sockets, for a later new process.
    // Only with an [upgrade] socket: a copy held open would keep the
    // socket listening after SIGTERM, when connects must be refused.
    let upgrades = config.upgrade.socket.is_some();
    let mut sockets = Vec::new();
    if upgrades {
        sockets.push(("main".to_owned(), dup(&listener)?));
    }
    let admin_stop = CancellationToken::new();
    if let Some(admin_listener) = admin_listener {
        if upgrades {
            sockets.push(("admin".to_owned(), dup(&admin_listener)?));
        }
        let token = match &config.admin.token_file {
            Some(path) => Some(admin::read_token(path)?),
            None => None,
        };
        let admin_addr = admin_listener
            .local_addr()
            .map_err(|err| format!("cannot read the admin address: {err}"))?;
        let admin = admin::Admin {
            balancer: lb.clone(),
            reloader: reloader.clone(),
            token,
        };
        tokio::spawn(admin::serve(admin_listener, admin, admin_stop.clone()));
        out.admin(&admin_addr.to_string());
    }
    let (upgraded, upgraded_rx) = tokio::sync::oneshot::channel();
    let stopping = CancellationToken::new();
    let serving = tokio::spawn(balancer::serve(
        listener,
        lb.clone(),
        stop_on(signals, upgraded_rx, admin_stop.clone(), stopping.clone()),
    ));
    if let Some(taken) = taken {
        // Under systemd this process is the service's main one from now
        // on; said before the old one may exit, which would otherwise
        // look to systemd like the service's end.
        service::took_over();
        // Accepting now (the task above): the old process may let go.
        let let_go = tokio::task::spawn_blocking(move || taken.ready())
            .await
            .map_err(|err| err.to_string())
            .and_then(|ready| ready);
        if let Err(err) = let_go {
            service::give_back();
            return Err(err);
        }
    }
    if let Some(path) = config.upgrade.socket.clone() {
        // Bound before "listening on": an upgrade started as soon as `lb`
        // says it is up finds the socket there.
        let upgrades = upgrade::bind(&path).inspect_err(|_| {
            if upgraded_from_another {
                service::give_back();
            }
        })?;
        let snapshot_of = lb.clone();
        let offer = upgrade::Offer {
            sockets,
            snapshot: Box::new(move || snapshot_of.snapshot()),
        };
        tokio::spawn(async move {
            tokio::select! {
                served = upgrade::serve_upgrades(
                    upgrades, &path, offer, upgraded,
                ) => {
                    if let Err(err) = served {
                        warn!("{err}");
                    }
                }
                // Stopping: the offer's copies of the sockets close with
                // this future, and the path goes.
                () = stopping.cancelled() => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        });
    }
    out.listening(&addr.to_string());
    if !upgraded_from_another {
        service::ready();
    }
    info!("{summary}");
    match serving.await {
        Ok(Ok(_)) => Ok(ExitCode::SUCCESS),
        Ok(Err(err)) => Err(err.to_string()),
        Err(err) => Err(err.to_string()),
    }
}

/// The admin listener's queue: a few operators, not a crowd.
const ADMIN_BACKLOG: u32 = 64;

/// The listener and the admin listener (if `[admin] listen` is set):
/// passed by systemd under socket activation, else bound.
async fn listeners(
    config: &Config,
    activated: Option<service::Activated>,
) -> Result<(TcpListener, Option<TcpListener>), String> {
    let (listener, admin) = match activated {
        Some(activated) => {
            let listener = TcpListener::from_std(activated.main)
                .map_err(|err| format!("the socket systemd passed: {err}"))?;
            let at = listener.local_addr().map_err(|e| e.to_string())?;
            info!(
                "socket activation: listening on {at}, the socket systemd \
                 passed (LISTEN_FDS), instead of binding {}",
                config.listen
            );
            let admin = match activated.admin {
                Some(admin) => {
                    let admin =
                        TcpListener::from_std(admin).map_err(|err| {
                            format!("the admin socket systemd passed: {err}")
                        })?;
                    let at = admin.local_addr().map_err(|e| e.to_string())?;
                    info!(
                        "socket activation: admin on {at}, the second \
                         socket systemd passed"
                    );
                    Some(admin)
                }
                None => None,
            };
            (listener, admin)
        }
        None => {
            let listen = &config.listen;
            let listener = balancer::bind(listen, config.limits.backlog)
                .await
                .map_err(|err| format!("cannot listen on {listen}: {err}"))?;
            (listener, None)
        }
    };
    let admin = match (admin, &config.admin.listen) {
        (Some(admin), _) => Some(admin),
        (None, Some(at)) => {
            Some(balancer::bind(at, ADMIN_BACKLOG).await.map_err(|err| {
                format!("cannot listen on {at} (admin): {err}")
            })?)
        }
        (None, None) => None,
    };
    Ok((listener, admin))
}

/// Another descriptor for the same listening socket, to hand over.
fn dup(listener: &tokio::net::TcpListener) -> Result<OwnedFd, String> {
    listener
        .as_fd()
        .try_clone_to_owned()
        .map_err(|err| format!("cannot copy the listener: {err}"))
}

/// Completes at the first SIGTERM or SIGINT, or when a new process has
/// taken the listeners over; then stops the admin listener too (the new
/// process serves it), and says it is `stopping`.
async fn stop_on(
    signals: Signals,
    upgraded: tokio::sync::oneshot::Receiver<()>,
    admin_stop: CancellationToken,
    stopping: CancellationToken,
) {
    tokio::select! {
        () = signals.first() => service::stopping(),
        // Not STOPPING=1: the service goes on, in the new process.
        Ok(()) = upgraded => {
            service::handed_over();
            admin_stop.cancel();
        }
    }
    stopping.cancel();
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
    if let Some(admin) = &args.admin {
        config.admin.listen = Some(admin.clone());
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
    let mut backends = balancer::count(config.backends.len(), "backend");
    if let Some(discovery) = &config.discovery {
        backends.push_str(&format!(
            " and those under {} in etcd",
            discovery.prefix
        ));
    }
    let summary = format!(
        "{}: ok: listen {}, {backends}, {}, health checks {}",
        path.display(),
        config.listen,
        config.algorithm,
        config.health.kind
    );
    let warnings = warnings(&config).await;
    // The admin token is read at start too: a missing or empty file must
    // fail here, not when `lb` is restarted with it.
    if let Some(token) = &config.admin.token_file
        && let Err(err) = admin::read_token(token)
    {
        return fail(format!("{}: {err}", path.display()));
    }
    // The store is not asked (it may be down while its list is fine),
    // but what reaching it needs is read: its files, and the feature.
    if let Some(discovery) = &config.discovery
        && let Err(err) = balancer::discovery::source(discovery)
    {
        return fail(format!("{}: {err}", path.display()));
    }
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
/// SIGHUP, which would kill the process by default, reloads the config.
struct Signals {
    first: tokio::sync::oneshot::Receiver<()>,
}

impl Signals {
    fn install(reloader: Arc<Reloader>) -> std::io::Result<Signals> {
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
                        // Logged by the reload, whatever its outcome.
                        let _ = reloader.reload("SIGHUP").await;
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
