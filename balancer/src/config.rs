//! The configuration: a TOML file (`balancer/lb.toml` shows every key with
//! its default) turned into a validated [`Config`], or into an error that
//! names the file, the line and the key.
//!
//! Pure: reading the file is the caller's business, and so is loading the
//! certificates it names. Parsing happens in two passes. serde reads the
//! text into `Raw*` structs (unknown keys and wrong types are refused
//! there, with toml's position), the values wrapped in [`Spanned`], which
//! keeps each one's place in the text. Then `Config::from_raw` checks
//! each value on its own (a weight of 0, an unknown algorithm) and places
//! an error at the value's span.
//!
//! Some rules hold between keys: at least one backend, no two backends
//! with one id, no weight under round-robin, a `tls://` backend needs `ca`
//! or `insecure`. They live in one function, `rules_between_keys`, which
//! names the value to blame (a `Culprit`) rather than a line. `from_raw`
//! runs it once every value is read, and finds the line in the spans of
//! the raw backends it kept. `main` runs it again, through
//! [`Config::check`], after the flags override the file; a value from a
//! flag has no line, so that error names the setting instead.

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lab_common::HostPort;
use lab_common::proxy_protocol;
use serde::Deserialize;
use toml::Spanned;

use crate::backend::Address;
use crate::select::Algorithm;

// ANCHOR: config
/// Everything `lb` runs by. [`Config::default`] is what `lb` does with no
/// file and no flags, and what `balancer/lb.toml` spells out.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Where clients connect.
    pub listen: HostPort,
    /// Every client connection starts with a PROXY header (v1 or v2)
    /// from the layer-4 balancer in front of `lb`, which gives the
    /// client's address; a connection without one is closed.
    pub accept_proxy: bool,
    pub algorithm: Algorithm,
    /// How many other backends a client may be sent to when its first
    /// cannot be reached (`None`: all of them).
    pub retries: Option<u32>,
    /// Seeds the random algorithms (`random`, `power-of-two`), so that a
    /// run can be repeated pick for pick (`None`: seeded by the system).
    pub seed: Option<u64>,
    /// Reload when the config file changes (as on SIGHUP).
    pub watch: bool,
    /// How log lines are written (`LAB_LOG_FORMAT`, when set, wins).
    pub log_format: LogFormat,
    pub tls: TlsConfig,
    pub timeouts: Timeouts,
    pub limits: Limits,
    pub health: HealthConfig,
    pub admin: AdminConfig,
    pub upgrade: UpgradeConfig,
    /// More backends, from a store (`None`: the file's only).
    pub discovery: Option<DiscoveryConfig>,
    pub backends: Vec<BackendConfig>,
}

/// `log_format`: sentences for a person, or a JSON object per line for a
/// program.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LogFormat {
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// `[admin]`: the listener for the status page and the control API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminConfig {
    /// Where it listens; `None`: no admin listener.
    pub listen: Option<HostPort>,
    /// A file holding the token every request must carry as
    /// `Authorization: Bearer TOKEN`. Required off loopback.
    pub token_file: Option<PathBuf>,
    /// How many connections' decisions it keeps (`/api/decisions`).
    pub decisions: usize,
}

impl Default for AdminConfig {
    fn default() -> AdminConfig {
        AdminConfig {
            listen: None,
            token_file: None,
            decisions: crate::decisions::KEPT,
        }
    }
}

/// The most decisions `[admin] decisions` may keep: a record is a few
/// hundred bytes, so this bounds the ring near 100 MB.
pub const MAX_DECISIONS: u32 = 100_000;

/// `[upgrade]`: where a new `lb` asks the running one for its listener.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpgradeConfig {
    /// A Unix socket path; `None`: no upgrades.
    pub socket: Option<PathBuf>,
}

/// `[discovery]`: a store that lists more backends, beside the file's
/// `[[backends]]`, and tells `lb` when the list changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveryConfig {
    pub kind: DiscoveryKind,
    /// The store's addresses: `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// Every key under it is one backend.
    pub prefix: String,
    /// The CA the store's certificate must chain to (`https://` only).
    pub ca: Option<PathBuf>,
    /// A client certificate and key, for a store that asks for one.
    pub client: Option<FrontTls>,
    /// A user name, and the file holding its password.
    pub user: Option<(String, PathBuf)>,
}

/// `[discovery] kind`: which store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscoveryKind {
    /// etcd's v3 API (lb built with the `etcd` feature).
    Etcd,
}

/// The prefix `[discovery]` reads when the file names none.
pub const DEFAULT_PREFIX: &str = "/lb/backends/";

/// `[tls]`: the certificate `lb` presents to clients, and how it checks
/// its `tls://` backends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// Certificate chain and key for the front: clients must speak TLS.
    /// `None`: plain TCP at the front.
    pub front: Option<FrontTls>,
    /// CA certificates the `tls://` backends' certificates must chain to.
    pub ca: Option<PathBuf>,
    /// Accept any backend certificate (encrypted, but not verified).
    pub insecure: bool,
    /// Let a client resume a TLS session at the front: the next
    /// connection skips the key exchange and the signature.
    pub resumption: bool,
}

impl Default for TlsConfig {
    fn default() -> TlsConfig {
        TlsConfig {
            front: None,
            ca: None,
            insecure: false,
            resumption: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrontTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[timeouts]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Reaching a backend over TCP; past it, the next candidate.
    pub connect: Duration,
    /// A TLS handshake, with a client at the front or with a backend.
    pub tls_handshake: Duration,
    /// Reading a client's PROXY header, under `accept_proxy`.
    pub proxy_header: Duration,
    /// No byte either way for this long closes both sides.
    pub idle: Duration,
    /// One side has finished; the other may stay silent this long.
    pub half_closed: Duration,
    /// After SIGTERM or Ctrl-C, how long open connections may finish.
    pub drain: Duration,
    /// How long data sent to a backend may go unacknowledged before the
    /// connection is dropped (`TCP_USER_TIMEOUT`); zero: the kernel's.
    pub unacknowledged: Duration,
}

/// `[limits]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Client connections open at once; past it, `lb` stops accepting.
    pub max_connections: u32,
    /// The listen queue the kernel keeps while `lb` is not accepting.
    pub backlog: u32,
    /// How long a client waits for a backend when all are full.
    pub queue_timeout: Duration,
    /// TLS handshakes with clients in progress at once.
    pub max_handshakes: u32,
    /// Bytes of big relay buffers out at once, over every connection.
    pub buffer_budget: usize,
    /// Kernel pipes that streaming directions between plain TCP sockets
    /// splice through, lent at once at most (Linux; 0: never splice).
    pub splice_pipes: u32,
}

/// The most pipes `[limits] splice_pipes` may allow: each holds two
/// descriptors, taken from what clients could have.
pub const MAX_SPLICE_PIPES: u32 = 16_384;

/// Reads a size: a whole number of bytes, or one with a unit (`KiB`,
/// `MiB`, `GiB`), such as `"256MiB"`.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit_bytes: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "`{other}`: write a size such as \"256MiB\" (units B, KiB, \
                 MiB, GiB)"
            ));
        }
    };
    number
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(unit_bytes))
        .ok_or_else(|| format!("`{text}`: write a size such as \"256MiB\""))
}

/// `[health]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthConfig {
    pub kind: CheckKind,
    /// What an HTTP check asks for.
    pub path: String,
    pub interval: Duration,
    /// One check's whole time: connect, TLS and the answer.
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    /// Failed client connections in a row that take a backend out...
    pub failures: u32,
    /// ...for this long.
    pub cooldown: Duration,
    /// How long a backend that comes back up takes to reach its whole
    /// weight and limit (zero: at once).
    pub slow_start: Duration,
    /// The largest share of the backends (percent) the passive marks may
    /// hold out at once; one backend always may be.
    pub max_ejection_percent: u32,
    /// Below this share (percent) of backends able to take a client,
    /// balance over every backend the checks have not seen DOWN.
    pub panic_threshold: u32,
    /// How long a flapping backend is held DOWN at its first flap,
    /// doubled at each next one (zero: never held).
    pub hold_down: Duration,
    /// UP this long, a backend that goes DOWN is not flapping.
    pub stable: Duration,
}

/// How the active checks test a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckKind {
    /// No active checks (passive marking still applies).
    Off,
    /// A TCP connection (and TLS, for `tls://`) is accepted.
    Tcp,
    /// `GET path` answers 2xx.
    Http,
}

/// One `[[backends]]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendConfig {
    /// A stable name; defaults to the address as written.
    pub id: String,
    pub address: Address,
    pub weight: u32,
    /// At most this many client connections (`None`: no limit).
    pub max_connections: Option<u32>,
    /// Write a PROXY header of this version to the backend before any
    /// client byte, so that it learns the client's address.
    pub send_proxy: Option<proxy_protocol::Version>,
}
// ANCHOR_END: config

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: parse_default(lab_common::addr::DEFAULT_LISTEN),
            accept_proxy: false,
            algorithm: Algorithm::RoundRobin,
            retries: None,
            seed: None,
            watch: false,
            log_format: LogFormat::Text,
            tls: TlsConfig::default(),
            timeouts: Timeouts {
                connect: Duration::from_secs(3),
                tls_handshake: Duration::from_secs(5),
                proxy_header: Duration::from_secs(5),
                idle: Duration::from_secs(300),
                half_closed: Duration::from_secs(30),
                unacknowledged: Duration::from_secs(60),
                drain: Duration::from_secs(30),
            },
            limits: Limits {
                max_connections: 8192,
                backlog: 4096,
                queue_timeout: Duration::from_secs(5),
                max_handshakes: 256,
                buffer_budget: 256 << 20,
                splice_pipes: 256,
            },
            health: HealthConfig {
                kind: CheckKind::Tcp,
                path: "/health".to_owned(),
                interval: Duration::from_secs(2),
                timeout: Duration::from_secs(1),
                rise: 2,
                fall: 3,
                failures: 3,
                cooldown: Duration::from_secs(10),
                slow_start: Duration::ZERO,
                max_ejection_percent: 50,
                panic_threshold: 50,
                hold_down: Duration::from_secs(1),
                stable: Duration::from_secs(30),
            },
            admin: AdminConfig::default(),
            upgrade: UpgradeConfig::default(),
            discovery: None,
            backends: lab_common::addr::DEFAULT_BACKENDS
                .split(',')
                .map(|address| BackendConfig::at(parse_default(address)))
                .collect(),
        }
    }
}

fn parse_default<T: std::str::FromStr>(text: &str) -> T
where
    T::Err: fmt::Debug,
{
    text.parse().expect("the built-in defaults parse")
}

impl BackendConfig {
    /// A backend at `address` with every other setting at its default.
    pub fn at(address: Address) -> BackendConfig {
        BackendConfig {
            id: address.to_string(),
            address,
            weight: 1,
            max_connections: None,
            send_proxy: None,
        }
    }
}

impl CheckKind {
    fn name(self) -> &'static str {
        match self {
            CheckKind::Off => "off",
            CheckKind::Tcp => "tcp",
            CheckKind::Http => "http",
        }
    }
}

impl fmt::Display for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// ANCHOR: config_error
/// A configuration that cannot be used, and where it went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the values came from: the file (`lb.toml`), or, once the
    /// flags are applied, `lb.toml with the command line's flags`.
    pub source: String,
    /// 1-based line in the file, when the value has one (a flag has not).
    pub line: Option<usize>,
    /// The key, as a path: `health.rise`, `backends[2].weight`.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    /// `lb.toml:14: backends[2].weight: must be at least 1, found 0`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {}", shorten_quotes(key))?;
        }
        write!(f, ": {}", shorten_quotes(&self.message))
    }
}

/// `text` with every quoted run (between backticks or double quotes) of
/// more than 60 characters cut to its first 40 and its length: an error
/// that echoes a 10 MB value whole helps nobody read it.
fn shorten_quotes(text: &str) -> String {
    const LONGEST: usize = 60;
    const KEPT: usize = 40;
    let mut out = String::with_capacity(text.len().min(1024));
    let mut rest = text;
    while let Some(open) = rest.find(['`', '"']) {
        let quote = rest[open..].chars().next().unwrap_or('`');
        out.push_str(&rest[..=open]);
        rest = &rest[open + 1..];
        let Some(close) = rest.find(quote) else {
            break;
        };
        let quoted = &rest[..close];
        if quoted.chars().count() > LONGEST {
            out.extend(quoted.chars().take(KEPT));
            out.push_str(&format!("… ({} bytes in all)", quoted.len()));
        } else {
            out.push_str(quoted);
        }
        out.push(quote);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

impl std::error::Error for ConfigError {}
// ANCHOR_END: config_error

impl Config {
    /// Parses and checks `text`, the contents of the file `path`. Relative
    /// paths in it (certificates) are taken from the file's folder.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let file = Source {
            name: path.display().to_string(),
            text,
        };
        let raw = file.read_raw()?;
        let folder = path.parent().unwrap_or(Path::new(""));
        Config::from_raw(raw, &file, folder)
    }

    fn from_raw(
        raw: RawConfig,
        file: &Source<'_>,
        folder: &Path,
    ) -> Result<Config, ConfigError> {
        let defaults = Config::default();
        let mut config = Config {
            backends: Vec::new(),
            ..defaults.clone()
        };
        if let Some(listen) = raw.listen {
            config.listen = file.parse_with(&listen, "listen", |text| {
                text.parse::<HostPort>()
            })?;
        }
        if let Some(accept_proxy) = raw.accept_proxy {
            config.accept_proxy = accept_proxy;
        }
        if let Some(algorithm) = &raw.algorithm {
            config.algorithm =
                file.parse_with(algorithm, "algorithm", |text| {
                    text.parse::<Algorithm>()
                })?;
        }
        if let Some(retries) = &raw.retries {
            config.retries =
                file.check(retries, "retries", |value| match value {
                    RawRetries::Count(n) => Ok(Some(whole(*n, 0)?)),
                    RawRetries::Word(word) if word == "all" => Ok(None),
                    RawRetries::Word(word) => Err(format!(
                        "`{word}`: write a number of backends, or \"all\""
                    )),
                })?;
        }
        if let Some(seed) = &raw.seed {
            config.seed = Some(file.check(seed, "seed", |&seed| {
                u64::try_from(seed)
                    .map_err(|_| format!("must be at least 0, found {seed}"))
            })?);
        }
        if let Some(watch) = raw.watch {
            config.watch = watch;
        }
        if let Some(format) = &raw.log_format {
            config.log_format =
                file.check(format, "log_format", |word| match word.as_str() {
                    "text" => Ok(LogFormat::Text),
                    "json" => Ok(LogFormat::Json),
                    other => {
                        Err(format!("`{other}`: write \"text\" or \"json\""))
                    }
                })?;
        }
        if let Some(admin) = &raw.admin {
            if let Some(listen) = &admin.listen {
                config.admin.listen =
                    Some(file.parse_with(listen, "admin.listen", |text| {
                        text.parse::<HostPort>()
                    })?);
            }
            if let Some(token) = &admin.token_file {
                config.admin.token_file =
                    Some(file_path(file, folder, token, "admin.token_file")?);
            }
            if let Some(kept) = &admin.decisions {
                config.admin.decisions =
                    file.check(kept, "admin.decisions", |&n| {
                        let n = whole(n, 0)?;
                        if n > MAX_DECISIONS {
                            return Err(format!(
                                "must be at most {MAX_DECISIONS}, found {n}"
                            ));
                        }
                        Ok(n as usize)
                    })?;
            }
            if let (Some(listen), None) =
                (&config.admin.listen, &config.admin.token_file)
                && !is_loopback(listen)
            {
                let span = admin.listen.as_ref().map(Spanned::span);
                return Err(file.error_at(
                    span,
                    "admin.listen",
                    format!(
                        "`{listen}` is not a loopback address: anyone who \
                         reaches it could drain your backends; set \
                         `token_file` too, or listen on 127.0.0.1"
                    ),
                ));
            }
        }
        if let Some(upgrade) = &raw.upgrade
            && let Some(socket) = &upgrade.socket
        {
            config.upgrade.socket =
                Some(file_path(file, folder, socket, "upgrade.socket")?);
        }
        if let Some(tls) = raw.tls {
            config.tls = tls.check(file, folder)?;
        }
        if let Some(discovery) = &raw.discovery {
            config.discovery = Some(discovery.get_ref().check(
                discovery.span(),
                file,
                folder,
            )?);
        }
        if let Some(timeouts) = raw.timeouts {
            timeouts.apply(file, &mut config.timeouts)?;
        }
        if let Some(limits) = raw.limits {
            limits.apply(file, &mut config.limits)?;
        }
        if let Some(health) = raw.health {
            health.apply(file, &mut config.health)?;
        }
        // The raw backends are kept, spans and all: a rule between keys
        // broken below is placed at the value that broke it.
        let raw_backends: &[RawBackend] = match &raw.backends {
            Some(list) => list.get_ref(),
            None => &[],
        };
        for (i, backend) in raw_backends.iter().enumerate() {
            config.backends.push(backend.check(file, i)?);
        }
        config.rules_between_keys().map_err(|broken| {
            let (span, key) = match broken.culprit {
                Culprit::Backends => {
                    // No line if the file has no `backends` at all.
                    let span = raw.backends.as_ref().map(Spanned::span);
                    (span, "backends".to_owned())
                }
                Culprit::Backend(i, key) => {
                    let (name, span) = raw_backends[i].place_of(key);
                    (Some(span), backend_key(i, name))
                }
            };
            file.error_at(span, &key, broken.message)
        })?;
        Ok(config)
    }
}

// ---- Rules between keys ----

/// A rule between keys that a config breaks: the value to blame, and why.
struct Broken {
    culprit: Culprit,
    message: String,
}

/// The value a broken rule is blamed on. The file turns it into a line
/// and a key (`backends[2].weight`); the flags have no lines, and name
/// the setting (`backends`).
enum Culprit {
    /// The list of backends, which is empty.
    Backends,
    /// One key of the backend at this index (from 0).
    Backend(usize, BackendKey),
}

#[derive(Clone, Copy)]
enum BackendKey {
    Address,
    Id,
    Weight,
}

impl Config {
    /// The rules no single value can break alone, checked once every value
    /// is known: when the file has been read, and again after the flags.
    /// The first rule broken, in the order of the backends, is reported.
    fn rules_between_keys(&self) -> Result<(), Broken> {
        // With a store, the list may start empty and fill from it.
        if self.backends.is_empty() && self.discovery.is_none() {
            return Err(Broken {
                culprit: Culprit::Backends,
                message: "no [[backends]]: list one at least (or name a \
                          store in [discovery])"
                    .to_owned(),
            });
        }
        let mut ids = HashSet::new();
        for (i, backend) in self.backends.iter().enumerate() {
            let broken = |key, message| {
                Err(Broken {
                    culprit: Culprit::Backend(i, key),
                    message,
                })
            };
            // An id defaults to the address: a backend listed twice has
            // the same id twice.
            if !ids.insert(backend.id.as_str()) {
                return broken(
                    BackendKey::Id,
                    format!(
                        "two backends have the id `{}` (an id is the \
                         address unless set)",
                        backend.id
                    ),
                );
            }
            let at = &backend.address.host_port;
            if at.port() == 0 {
                return broken(
                    BackendKey::Address,
                    format!(
                        "`{}`: port 0 is no port a backend listens on",
                        backend.address
                    ),
                );
            }
            // The literal case only: a name that resolves to `lb`, or a
            // wildcard `listen`, is for the running `lb` to see.
            if at.port() == self.listen.port()
                && at.host().eq_ignore_ascii_case(self.listen.host())
            {
                return broken(
                    BackendKey::Address,
                    format!(
                        "`{}` is lb's own listen address: every client \
                         sent there would come back to lb, which would \
                         connect to itself until it ran out of connections",
                        backend.address
                    ),
                );
            }
            if backend.weight != 1 && !self.algorithm.uses_weights() {
                return broken(
                    BackendKey::Weight,
                    format!(
                        "backend `{}` has weight {}, but round-robin ignores \
                         weights; use weighted-round-robin, or remove the \
                         weight",
                        backend.id, backend.weight
                    ),
                );
            }
            if backend.address.tls
                && self.tls.ca.is_none()
                && !self.tls.insecure
            {
                return broken(
                    BackendKey::Address,
                    format!(
                        "`{}` is a TLS backend, but nothing says how to check \
                         its certificate: set `ca` in [tls] (or --ca), or \
                         `insecure = true`",
                        backend.address
                    ),
                );
            }
        }
        Ok(())
    }

    /// What may be meant but deserves a word: settings that work, but
    /// not as a reader of the file may think.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if let Some(discovery) = &self.discovery
            && !discovery.prefix.ends_with('/')
        {
            warnings.push(format!(
                "discovery.prefix `{0}` does not end with `/`: it also \
                 reads keys such as `{0}-old/x`",
                discovery.prefix
            ));
        }
        let health = &self.health;
        if health.kind != CheckKind::Off && health.timeout > health.interval {
            warnings.push(format!(
                "health.timeout ({}) is longer than health.interval ({}): a \
                 check still waiting when the next is due makes that one \
                 skipped, so a backend is checked less often than the \
                 interval says",
                show_duration(health.timeout),
                show_duration(health.interval)
            ));
        }
        warnings
    }

    /// Every rule a config must obey, the one check for the file (after
    /// its parse), the flags, a reload and a config built in code:
    /// [`Config::check`] (the rules between keys) and
    /// [`Config::check_values`]. `Balancer::new` and a reload run it, so
    /// nothing runs a config that the file's parse would have refused.
    pub fn validate(&self, source: &str) -> Result<(), ConfigError> {
        self.check(source)?;
        self.check_values(source)
    }

    /// The rules on single values that the file's parse enforces, for a
    /// config built in code (a test's, a reload's): a weight of 0 would
    /// make power-of-two divide by zero, a zero interval spin. With
    /// [`Config::check`], this is the whole check, so `Balancer::new`
    /// runs only configs that obey every rule the file does.
    pub fn check_values(&self, source: &str) -> Result<(), ConfigError> {
        let error = |key: String, message: String| ConfigError {
            source: source.to_owned(),
            line: None,
            key: Some(key),
            message,
        };
        let at_least_1 = [
            ("limits.max_connections", self.limits.max_connections),
            ("limits.backlog", self.limits.backlog),
            ("limits.max_handshakes", self.limits.max_handshakes),
            ("health.rise", self.health.rise),
            ("health.fall", self.health.fall),
            ("health.failures", self.health.failures),
        ];
        for (key, value) in at_least_1 {
            if value == 0 {
                return Err(error(
                    key.to_owned(),
                    "must be at least 1, found 0".to_owned(),
                ));
            }
        }
        let longer_than_zero = [
            ("timeouts.connect", self.timeouts.connect),
            ("timeouts.tls_handshake", self.timeouts.tls_handshake),
            ("timeouts.proxy_header", self.timeouts.proxy_header),
            ("timeouts.idle", self.timeouts.idle),
            ("timeouts.half_closed", self.timeouts.half_closed),
            ("limits.queue_timeout", self.limits.queue_timeout),
            ("health.interval", self.health.interval),
            ("health.timeout", self.health.timeout),
            ("health.cooldown", self.health.cooldown),
        ];
        for (key, value) in longer_than_zero {
            if value.is_zero() {
                return Err(error(
                    key.to_owned(),
                    "must be longer than zero".to_owned(),
                ));
            }
        }
        check_request_target(&self.health.path)
            .map_err(|message| error("health.path".to_owned(), message))?;
        check_splice_pipes(self.limits.splice_pipes).map_err(|message| {
            error("limits.splice_pipes".to_owned(), message)
        })?;
        for (i, backend) in self.backends.iter().enumerate() {
            if backend.weight == 0 {
                return Err(error(
                    backend_key(i, "weight"),
                    "must be at least 1, found 0".to_owned(),
                ));
            }
            if backend.max_connections == Some(0) {
                return Err(error(
                    backend_key(i, "max_connections"),
                    "must be at least 1, found 0".to_owned(),
                ));
            }
        }
        if let Some(listen) = &self.admin.listen
            && self.admin.token_file.is_none()
            && !is_loopback(listen)
        {
            return Err(error(
                "admin.listen".to_owned(),
                format!(
                    "`{listen}` is not a loopback address: anyone who \
                     reaches it could drain your backends; set \
                     `token_file` too, or listen on 127.0.0.1"
                ),
            ));
        }
        Ok(())
    }

    /// Checks a config that the command line changed (`--backends`, say)
    /// against the rules between keys, which the flags may now break.
    /// `source` names where the values came from (`lb.toml with the
    /// command line's flags`): a value from a flag has no line, so the
    /// error names the setting instead of a key in the file.
    pub fn check(&self, source: &str) -> Result<(), ConfigError> {
        self.rules_between_keys().map_err(|broken| {
            // No flag sets a weight: a weight refused now was accepted by
            // the file's algorithm, and `--algorithm` changed it. Every
            // other rule is about the list `--backends` may have replaced.
            let key = match broken.culprit {
                Culprit::Backend(_, BackendKey::Weight) => "algorithm",
                _ => "backends",
            };
            ConfigError {
                source: source.to_owned(),
                line: None,
                key: Some(key.to_owned()),
                message: broken.message,
            }
        })
    }
}

pub use lab_common::duration::{
    parse as parse_duration, show as show_duration,
};

/// Whether `path` can be the target of the health check's `GET`: the
/// same parse the checker's request goes through, so a path that passes
/// here cannot fail every check later.
fn check_request_target(path: &str) -> Result<(), String> {
    let wrong =
        || format!("`{path}`: a path starts with `/` and has no spaces");
    if !path.starts_with('/') {
        return Err(wrong());
    }
    match path.parse::<hyper::Uri>() {
        Ok(uri) if uri.scheme().is_none() && uri.authority().is_none() => {
            Ok(())
        }
        Ok(_) => Err(wrong()),
        Err(err) => Err(format!(
            "`{path}` is not a path an HTTP request can carry ({err}); \
             percent-encode characters such as `<`, `>`, `\"` and spaces"
        )),
    }
}

/// A path from the file, relative to the file's folder.
fn file_path(
    file: &Source<'_>,
    folder: &Path,
    value: &Spanned<String>,
    key: &str,
) -> Result<PathBuf, ConfigError> {
    file.check(value, key, |text| {
        if text.trim().is_empty() {
            return Err("an empty path".to_owned());
        }
        Ok(folder.join(text))
    })
}

/// Whether `at` is only reachable from this machine: a loopback IP
/// address, or `localhost`.
pub fn is_loopback(at: &HostPort) -> bool {
    match at.host().parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => at.host().eq_ignore_ascii_case("localhost"),
    }
}

/// `n` as a u32 of at least `min`, or why not.
/// `limits.splice_pipes` within [`MAX_SPLICE_PIPES`].
fn check_splice_pipes(n: u32) -> Result<(), String> {
    if n > MAX_SPLICE_PIPES {
        return Err(format!("must be at most {MAX_SPLICE_PIPES}, found {n}"));
    }
    Ok(())
}

fn whole(n: i64, min: u32) -> Result<u32, String> {
    match u32::try_from(n) {
        Ok(n) if n >= min => Ok(n),
        _ if n < i64::from(min) => {
            Err(format!("must be at least {min}, found {n}"))
        }
        _ => Err(format!("must be at most {}, found {n}", u32::MAX)),
    }
}

// ---- The file as serde reads it ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<Spanned<String>>,
    accept_proxy: Option<bool>,
    algorithm: Option<Spanned<String>>,
    retries: Option<Spanned<RawRetries>>,
    seed: Option<Spanned<i64>>,
    watch: Option<bool>,
    log_format: Option<Spanned<String>>,
    tls: Option<RawTls>,
    timeouts: Option<RawTimeouts>,
    limits: Option<RawLimits>,
    health: Option<RawHealth>,
    admin: Option<RawAdmin>,
    upgrade: Option<RawUpgrade>,
    discovery: Option<Spanned<RawDiscovery>>,
    backends: Option<Spanned<Vec<RawBackend>>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawRetries {
    Count(i64),
    Word(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    ca: Option<Spanned<String>>,
    insecure: Option<bool>,
    resumption: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    connect: Option<Spanned<String>>,
    tls_handshake: Option<Spanned<String>>,
    proxy_header: Option<Spanned<String>>,
    idle: Option<Spanned<String>>,
    half_closed: Option<Spanned<String>>,
    drain: Option<Spanned<String>>,
    unacknowledged: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_connections: Option<Spanned<i64>>,
    backlog: Option<Spanned<i64>>,
    queue_timeout: Option<Spanned<String>>,
    max_handshakes: Option<Spanned<i64>>,
    buffer_budget: Option<Spanned<String>>,
    splice_pipes: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    kind: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    interval: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    rise: Option<Spanned<i64>>,
    fall: Option<Spanned<i64>>,
    failures: Option<Spanned<i64>>,
    cooldown: Option<Spanned<String>>,
    slow_start: Option<Spanned<String>>,
    max_ejection_percent: Option<Spanned<i64>>,
    panic_threshold: Option<Spanned<i64>>,
    hold_down: Option<Spanned<String>>,
    stable: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
    decisions: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpgrade {
    socket: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDiscovery {
    kind: Option<Spanned<String>>,
    endpoints: Option<Spanned<Vec<String>>>,
    prefix: Option<Spanned<String>>,
    ca: Option<Spanned<String>>,
    cert: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    user: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackend {
    address: Spanned<String>,
    id: Option<Spanned<String>>,
    weight: Option<Spanned<i64>>,
    max_connections: Option<Spanned<i64>>,
    send_proxy: Option<Spanned<String>>,
}

impl RawTls {
    fn check(
        self,
        file: &Source<'_>,
        folder: &Path,
    ) -> Result<TlsConfig, ConfigError> {
        let path = |value: &Spanned<String>, key: &str| {
            file.check(value, key, |text| {
                if text.trim().is_empty() {
                    return Err("an empty path".to_owned());
                }
                Ok(folder.join(text))
            })
        };
        let front = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Some(FrontTls {
                cert: path(cert, "tls.cert")?,
                key: path(key, "tls.key")?,
            }),
            (None, None) => None,
            (Some(cert), None) => {
                return Err(file.error(
                    cert.span(),
                    "tls.key",
                    "`cert` is set but `key` is not: the front needs both",
                ));
            }
            (None, Some(key)) => {
                return Err(file.error(
                    key.span(),
                    "tls.cert",
                    "`key` is set but `cert` is not: the front needs both",
                ));
            }
        };
        let ca = self.ca.as_ref().map(|ca| path(ca, "tls.ca")).transpose()?;
        let insecure = self.insecure.unwrap_or(false);
        if let (Some(ca_value), true) = (&self.ca, insecure) {
            return Err(file.error(
                ca_value.span(),
                "tls.insecure",
                "`ca` and `insecure = true` contradict each other: keep one",
            ));
        }
        Ok(TlsConfig {
            front,
            ca,
            insecure,
            resumption: self.resumption.unwrap_or(true),
        })
    }
}

impl RawTimeouts {
    fn apply(
        self,
        file: &Source<'_>,
        timeouts: &mut Timeouts,
    ) -> Result<(), ConfigError> {
        let fields = [
            (
                self.connect,
                "timeouts.connect",
                &mut timeouts.connect,
                false,
            ),
            (
                self.tls_handshake,
                "timeouts.tls_handshake",
                &mut timeouts.tls_handshake,
                false,
            ),
            (
                self.proxy_header,
                "timeouts.proxy_header",
                &mut timeouts.proxy_header,
                false,
            ),
            (self.idle, "timeouts.idle", &mut timeouts.idle, false),
            (
                self.half_closed,
                "timeouts.half_closed",
                &mut timeouts.half_closed,
                false,
            ),
            (self.drain, "timeouts.drain", &mut timeouts.drain, true),
            (
                self.unacknowledged,
                "timeouts.unacknowledged",
                &mut timeouts.unacknowledged,
                true,
            ),
        ];
        for (value, key, slot, zero_ok) in fields {
            if let Some(value) = value {
                *slot = file.duration(&value, key, zero_ok)?;
            }
        }
        Ok(())
    }
}

impl RawLimits {
    fn apply(
        self,
        file: &Source<'_>,
        limits: &mut Limits,
    ) -> Result<(), ConfigError> {
        if let Some(value) = self.max_connections {
            limits.max_connections =
                file.count(&value, "limits.max_connections", 1)?;
        }
        if let Some(value) = self.backlog {
            limits.backlog = file.count(&value, "limits.backlog", 1)?;
        }
        if let Some(value) = self.queue_timeout {
            limits.queue_timeout =
                file.duration(&value, "limits.queue_timeout", true)?;
        }
        if let Some(value) = self.max_handshakes {
            limits.max_handshakes =
                file.count(&value, "limits.max_handshakes", 1)?;
        }
        if let Some(value) = self.buffer_budget {
            limits.buffer_budget =
                file.check(&value, "limits.buffer_budget", |text| {
                    parse_size(text)
                })?;
        }
        if let Some(value) = self.splice_pipes {
            limits.splice_pipes =
                file.check(&value, "limits.splice_pipes", |&n| {
                    let n = whole(n, 0)?;
                    check_splice_pipes(n).map(|()| n)
                })?;
        }
        Ok(())
    }
}

impl RawHealth {
    fn apply(
        self,
        file: &Source<'_>,
        health: &mut HealthConfig,
    ) -> Result<(), ConfigError> {
        if let Some(kind) = &self.kind {
            health.kind =
                file.check(kind, "health.kind", |text| match text.as_str() {
                    "off" => Ok(CheckKind::Off),
                    "tcp" => Ok(CheckKind::Tcp),
                    "http" => Ok(CheckKind::Http),
                    other => Err(format!(
                        "unknown kind `{other}`; choose \"tcp\", \"http\" or \
                     \"off\""
                    )),
                })?;
        }
        if let Some(path) = &self.path {
            health.path = file.check(path, "health.path", |text| {
                check_request_target(text).map(|()| text.clone())
            })?;
        }
        if let Some(value) = self.interval {
            health.interval =
                file.duration(&value, "health.interval", false)?;
        }
        if let Some(value) = self.timeout {
            health.timeout = file.duration(&value, "health.timeout", false)?;
        }
        if let Some(value) = self.rise {
            health.rise = file.count(&value, "health.rise", 1)?;
        }
        if let Some(value) = self.fall {
            health.fall = file.count(&value, "health.fall", 1)?;
        }
        if let Some(value) = self.failures {
            health.failures = file.count(&value, "health.failures", 1)?;
        }
        if let Some(value) = self.slow_start {
            health.slow_start =
                file.duration(&value, "health.slow_start", true)?;
        }
        if let Some(value) = self.cooldown {
            health.cooldown =
                file.duration(&value, "health.cooldown", false)?;
        }
        let percents = [
            (
                self.max_ejection_percent,
                "health.max_ejection_percent",
                &mut health.max_ejection_percent,
            ),
            (
                self.panic_threshold,
                "health.panic_threshold",
                &mut health.panic_threshold,
            ),
        ];
        for (value, key, slot) in percents {
            if let Some(value) = value {
                *slot = file.check(&value, key, |&n| match n {
                    0..=100 => Ok(n as u32),
                    _ => Err(format!("a percentage, 0 to 100; found {n}")),
                })?;
            }
        }
        if let Some(value) = self.hold_down {
            health.hold_down =
                file.duration(&value, "health.hold_down", true)?;
        }
        if let Some(value) = self.stable {
            health.stable = file.duration(&value, "health.stable", false)?;
        }
        Ok(())
    }
}

impl RawDiscovery {
    /// `[discovery]`, written at `span` (blamed for a missing key).
    fn check(
        &self,
        span: Range<usize>,
        file: &Source<'_>,
        folder: &Path,
    ) -> Result<DiscoveryConfig, ConfigError> {
        let raw = self;
        let Some(kind) = &raw.kind else {
            return Err(file.error(
                span.clone(),
                "discovery.kind",
                "[discovery] needs `kind`: the store to read (\"etcd\")",
            ));
        };
        let kind =
            file.check(kind, "discovery.kind", |word| match word.as_str() {
                "etcd" => Ok(DiscoveryKind::Etcd),
                other => Err(format!("`{other}`: the one kind is \"etcd\"")),
            })?;
        let Some(endpoints) = &raw.endpoints else {
            return Err(file.error(
                span.clone(),
                "discovery.endpoints",
                "[discovery] needs `endpoints`, such as \
                 [\"http://127.0.0.1:2379\"]",
            ));
        };
        let endpoints =
            file.check(endpoints, "discovery.endpoints", |list| {
                if list.is_empty() {
                    return Err("an empty list: name one endpoint at least, \
                            such as \"http://127.0.0.1:2379\""
                        .to_owned());
                }
                for endpoint in list {
                    let rest = endpoint
                        .strip_prefix("http://")
                        .or_else(|| endpoint.strip_prefix("https://"));
                    if rest.is_none_or(|rest| rest.parse::<HostPort>().is_err())
                    {
                        return Err(format!(
                            "`{endpoint}`: write http://HOST:PORT or \
                         https://HOST:PORT"
                        ));
                    }
                }
                Ok(list.clone())
            })?;
        let prefix = match &raw.prefix {
            Some(prefix) => file.check(prefix, "discovery.prefix", |text| {
                if text.is_empty() {
                    Err("an empty prefix would read the whole store".into())
                } else {
                    Ok(text.clone())
                }
            })?,
            None => DEFAULT_PREFIX.to_owned(),
        };
        let path = |value: &Spanned<String>, key: &str| {
            file_path(file, folder, value, key)
        };
        let ca = raw
            .ca
            .as_ref()
            .map(|ca| path(ca, "discovery.ca"))
            .transpose()?;
        let client = match (&raw.cert, &raw.key) {
            (Some(cert), Some(key)) => Some(FrontTls {
                cert: path(cert, "discovery.cert")?,
                key: path(key, "discovery.key")?,
            }),
            (None, None) => None,
            (Some(cert), None) => {
                return Err(file.error(
                    cert.span(),
                    "discovery.key",
                    "`cert` is set but `key` is not: a client certificate \
                     needs both",
                ));
            }
            (None, Some(key)) => {
                return Err(file.error(
                    key.span(),
                    "discovery.cert",
                    "`key` is set but `cert` is not: a client certificate \
                     needs both",
                ));
            }
        };
        // TLS settings over plain http:// would be ignored: refuse them.
        let tls_value = raw.ca.as_ref().or(raw.cert.as_ref());
        if let Some(value) = tls_value
            && endpoints.iter().any(|e| e.starts_with("http://"))
        {
            return Err(file.error(
                value.span(),
                "discovery.endpoints",
                "`ca`, `cert` and `key` are for https:// endpoints, and an \
                 endpoint is http://",
            ));
        }
        // Without a CA, rustls here trusts no one (no system roots are
        // built in): every handshake would fail, logged as etcd out of
        // reach. Said now instead.
        if ca.is_none()
            && let Some(https) =
                endpoints.iter().find(|e| e.starts_with("https://"))
        {
            let span =
                raw.endpoints.as_ref().map_or(span.clone(), |e| e.span());
            return Err(file.error(
                span,
                "discovery.ca",
                format!(
                    "`{https}` is https://, and nothing says which CA its \
                     certificate chains to: set `ca`"
                ),
            ));
        }
        let user = match (&raw.user, &raw.password_file) {
            (Some(user), Some(password)) => Some((
                file.check(user, "discovery.user", |name| {
                    if name.trim().is_empty() {
                        Err("an empty user name".to_owned())
                    } else {
                        Ok(name.clone())
                    }
                })?,
                path(password, "discovery.password_file")?,
            )),
            (None, None) => None,
            (Some(user), None) => {
                return Err(file.error(
                    user.span(),
                    "discovery.password_file",
                    "`user` is set but `password_file` is not",
                ));
            }
            (None, Some(password)) => {
                return Err(file.error(
                    password.span(),
                    "discovery.user",
                    "`password_file` is set but `user` is not",
                ));
            }
        };
        Ok(DiscoveryConfig {
            kind,
            endpoints,
            prefix,
            ca,
            client,
            user,
        })
    }
}

// ANCHOR: backend_from_json
/// One backend from a store: `text` a JSON object with the keys of a
/// `[[backends]]` entry (`{"address": "127.0.0.1:4444", "weight": 2}`),
/// `name` what its id is when the object has none (the key's name after
/// the prefix). The object goes through the same checks as the file's
/// entries: it is turned into TOML and read as one.
pub fn backend_from_json(
    name: &str,
    text: &[u8],
) -> Result<BackendConfig, String> {
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(text).map_err(|err| {
            format!("not a JSON object such as {{\"address\": \"HOST:PORT\"}} ({err})")
        })?;
    // JSON's null has no TOML form: an absent key says the same.
    let table: toml::Table = object
        .into_iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(key, value)| {
            toml::Value::try_from(value)
                .map(|value| (key.clone(), value))
                .map_err(|err| format!("`{key}`: {err}"))
        })
        .collect::<Result<_, _>>()?;
    let toml_text = toml::to_string(&table).map_err(|err| err.to_string())?;
    let raw: RawBackend = toml::from_str(&toml_text).map_err(|err| {
        // toml's message, without its excerpt of the generated text.
        err.message().to_owned()
    })?;
    let source = Source {
        name: name.to_owned(),
        text: &toml_text,
    };
    let mut backend = raw.check_keys(&source, |key| key.to_owned()).map_err(
        |err| match err.key {
            Some(key) => format!("{key}: {}", err.message),
            None => err.message,
        },
    )?;
    if raw.id.is_none() {
        backend.id = name.to_owned();
    }
    Ok(backend)
}
// ANCHOR_END: backend_from_json

impl RawBackend {
    /// The `index`th backend (from 0), checked key by key. It borrows the
    /// raw backend, whose spans the rules between keys still need.
    fn check(
        &self,
        file: &Source<'_>,
        index: usize,
    ) -> Result<BackendConfig, ConfigError> {
        self.check_keys(file, |name| backend_key(index, name))
    }

    /// Each key on its own, named in errors by `key`.
    fn check_keys(
        &self,
        file: &Source<'_>,
        key: impl Fn(&str) -> String,
    ) -> Result<BackendConfig, ConfigError> {
        let address =
            file.parse_with(&self.address, &key("address"), |text| {
                text.parse::<Address>()
            })?;
        let mut backend = BackendConfig::at(address);
        if let Some(id) = &self.id {
            backend.id = file.check(id, &key("id"), |text| {
                if text.trim().is_empty() {
                    Err("an empty id; leave it out to use the address".into())
                } else {
                    Ok(text.clone())
                }
            })?;
        }
        if let Some(weight) = &self.weight {
            backend.weight = file.count(weight, &key("weight"), 1)?;
        }
        if let Some(max) = &self.max_connections {
            // 0 means no limit, as HAProxy's `maxconn 0` does.
            let max = file.count(max, &key("max_connections"), 0)?;
            backend.max_connections = (max > 0).then_some(max);
        }
        if let Some(version) = &self.send_proxy {
            backend.send_proxy =
                Some(file.parse_with(version, &key("send_proxy"), |text| {
                    text.parse::<proxy_protocol::Version>()
                        .map_err(|err| format!("{err}: write \"v1\" or \"v2\""))
                })?);
        }
        Ok(backend)
    }

    /// Where `key` was written, and the name to report it under. A key
    /// left out took its value from the address (an id) or is at its
    /// default, so the address is blamed.
    fn place_of(&self, key: BackendKey) -> (&'static str, Range<usize>) {
        let written = match key {
            BackendKey::Address => None,
            BackendKey::Id => self.id.as_ref().map(|id| ("id", id.span())),
            BackendKey::Weight => {
                self.weight.as_ref().map(|weight| ("weight", weight.span()))
            }
        };
        written.unwrap_or(("address", self.address.span()))
    }
}

/// `backends[2].weight`, for the backend at `index` (from 0): the file
/// counts its `[[backends]]` from 1.
fn backend_key(index: usize, name: &str) -> String {
    format!("backends[{}].{name}", index + 1)
}

// ---- Positions in the file ----

/// The file being read: its name for messages, and its text to turn byte
/// offsets into line numbers.
struct Source<'a> {
    name: String,
    text: &'a str,
}

impl Source<'_> {
    fn line_of(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        self.text[..offset].matches('\n').count() + 1
    }

    /// An error about the value written at `span`.
    fn error(
        &self,
        span: Range<usize>,
        key: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        self.error_at(Some(span), key, message)
    }

    /// An error at `span`, or with no line for a key the file leaves out.
    fn error_at(
        &self,
        span: Option<Range<usize>>,
        key: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            source: self.name.clone(),
            line: span.map(|span| self.line_of(span.start)),
            key: Some(key.to_owned()),
            message: message.into(),
        }
    }

    /// Runs `check` on a value, and places its error at the value.
    fn check<T, U>(
        &self,
        value: &Spanned<T>,
        key: &str,
        check: impl FnOnce(&T) -> Result<U, String>,
    ) -> Result<U, ConfigError> {
        check(value.get_ref()).map_err(|msg| self.error(value.span(), key, msg))
    }

    fn parse_with<U>(
        &self,
        value: &Spanned<String>,
        key: &str,
        parse: impl FnOnce(&str) -> Result<U, String>,
    ) -> Result<U, ConfigError> {
        self.check(value, key, |text| parse(text))
    }

    fn duration(
        &self,
        value: &Spanned<String>,
        key: &str,
        zero_ok: bool,
    ) -> Result<Duration, ConfigError> {
        if zero_ok {
            self.check(value, key, |text| parse_duration(text))
        } else {
            self.check(value, key, |text| {
                lab_common::duration::parse_nonzero(text)
            })
        }
    }

    fn count(
        &self,
        value: &Spanned<i64>,
        key: &str,
        min: u32,
    ) -> Result<u32, ConfigError> {
        self.check(value, key, |n| whole(*n, min))
    }

    /// toml's own error (a syntax error, an unknown key, a wrong type) as
    /// one line with the file, the line and the key.
    /// The text as serde reads it. A refusal names the key serde was
    /// reading, as serde itself tracked it (`serde_path_to_error`), and
    /// the line of toml's span: an unknown table is named as itself, not
    /// as the table above it.
    fn read_raw(&self) -> Result<RawConfig, ConfigError> {
        let syntax = |err: toml::de::Error| self.toml_error(&err, None);
        let deserializer =
            toml::Deserializer::parse(self.text).map_err(syntax)?;
        serde_path_to_error::deserialize(deserializer).map_err(|err| {
            let key = key_of(err.path());
            self.toml_error(err.inner(), key)
        })
    }

    fn toml_error(
        &self,
        err: &toml::de::Error,
        key: Option<String>,
    ) -> ConfigError {
        ConfigError {
            source: self.name.clone(),
            line: err.span().map(|span| self.line_of(span.start)),
            key,
            message: plain_words(err.message().trim()),
        }
    }
}

/// The key a serde error is about, in the config's own form:
/// `backends[2].weight`, counted from 1 as a reader counts the
/// `[[backends]]` tables. toml's [`Spanned`] shows up in the path as a
/// private field name, which is left out. `None` where serde had not
/// entered any key (a file that is not a table at all).
fn key_of(path: &serde_path_to_error::Path) -> Option<String> {
    use serde_path_to_error::Segment;
    let mut key = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => {
                key.push_str(&format!("[{}]", index + 1));
            }
            Segment::Map { key: name } | Segment::Enum { variant: name }
                if !name.starts_with("$__serde_spanned") =>
            {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(name);
            }
            _ => {}
        }
    }
    (!key.is_empty()).then_some(key)
}

/// serde's message with the names of `lb`'s own types put in the words a
/// user writes: `expected i64` or `expected struct RawBackend` says
/// nothing to someone writing a file.
fn plain_words(message: &str) -> String {
    if message.contains("untagged enum RawRetries") {
        return "expected a number of backends, or \"all\"".to_owned();
    }
    let mut plain = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(|c: char| c.is_ascii_alphabetic()) {
        plain.push_str(&rest[..at]);
        rest = &rest[at..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let (word, after) = rest.split_at(end);
        match word {
            "i64" | "u64" | "u32" => plain.push_str("a whole number"),
            "struct" if after.starts_with(" RawBackend") => {
                plain.push_str("a [[backends]] table");
                rest = &after[" RawBackend".len()..];
                continue;
            }
            "struct" if after.starts_with(" Raw") => {
                plain.push_str("a table");
                let name_end = after[1..]
                    .find(|c: char| !c.is_ascii_alphanumeric())
                    .map_or(after.len(), |i| i + 1);
                rest = &after[name_end..];
                continue;
            }
            _ => plain.push_str(word),
        }
        rest = after;
    }
    plain.push_str(rest);
    plain
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_with_or_without_a_unit() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1 GiB"), Ok(1 << 30));
        assert!(parse_size("12MB").unwrap_err().contains("units B, KiB"));
        assert!(parse_size("lots").is_err());
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("lb.toml"), text)
    }

    fn error(text: &str) -> String {
        parse(text).expect_err("the config is refused").to_string()
    }

    const ONE_BACKEND: &str = "[[backends]]\naddress = \"127.0.0.1:4444\"\n";

    #[test]
    fn the_keys_of_issues_16_and_21_refuse_bad_values_by_line_and_key() {
        let cases = [
            ("log_format = \"yaml\"", "lb.toml:1: log_format: `yaml`"),
            (
                "[health]\nmax_ejection_percent = 101",
                "lb.toml:2: health.max_ejection_percent: a percentage",
            ),
            (
                "[health]\npanic_threshold = -1",
                "lb.toml:2: health.panic_threshold: a percentage",
            ),
            (
                "[health]\nhold_down = \"soon\"",
                "lb.toml:2: health.hold_down:",
            ),
            ("[health]\nstable = \"0s\"", "lb.toml:2: health.stable:"),
            (
                "[timeouts]\nunacknowledged = \"-1s\"",
                "lb.toml:2: timeouts.unacknowledged:",
            ),
            (
                "[limits]\nbuffer_budget = \"12MB\"",
                "lb.toml:2: limits.buffer_budget: `MB`",
            ),
            (
                "[limits]\nsplice_pipes = -1",
                "lb.toml:2: limits.splice_pipes: must be at least 0",
            ),
            (
                "[limits]\n\nsplice_pipes = 20000",
                "lb.toml:3: limits.splice_pipes: must be at most 16384",
            ),
            (
                "[limits]\nsplice_pipes = \"on\"",
                "lb.toml:2: limits.splice_pipes:",
            ),
            (
                "[admin]\ndecisions = 200000",
                "lb.toml:2: admin.decisions: must be at most 100000",
            ),
        ];
        for (text, expected) in cases {
            let err = error(&format!("{text}\n{ONE_BACKEND}"));
            assert!(err.starts_with(expected), "{text}: {err}");
        }
    }

    #[test]
    fn the_discovery_keys_refuse_bad_values_by_line_and_key() {
        let store = "[discovery]\nkind = \"etcd\"\n";
        let endpoints = "endpoints = [\"http://127.0.0.1:2379\"]\n";
        let cases = [
            (
                "[discovery]\nkind = \"consul\"\n".to_owned(),
                "lb.toml:2: discovery.kind: `consul`",
            ),
            (
                "[discovery]\nendpoints = []\n".to_owned(),
                "lb.toml:1: discovery.kind: [discovery] needs `kind`",
            ),
            (
                store.to_owned(),
                "lb.toml:1: discovery.endpoints: [discovery] needs",
            ),
            (
                format!("{store}endpoints = [\"127.0.0.1:2379\"]\n"),
                "lb.toml:3: discovery.endpoints: `127.0.0.1:2379`: write \
                 http://",
            ),
            (
                format!("{store}{endpoints}prefix = \"\"\n"),
                "lb.toml:4: discovery.prefix: an empty prefix",
            ),
            (
                format!("{store}{endpoints}ca = \"ca.pem\"\n"),
                "lb.toml:4: discovery.endpoints: `ca`, `cert` and `key` are \
                 for https://",
            ),
            (
                format!("{store}endpoints = [\"https://127.0.0.1:2379\"]\n"),
                "lb.toml:3: discovery.ca: `https://127.0.0.1:2379` is https://",
            ),
            (
                format!("{store}{endpoints}cert = \"c.pem\"\n"),
                "lb.toml:4: discovery.key: `cert` is set but `key` is not",
            ),
            (
                format!("{store}{endpoints}user = \"lb\"\n"),
                "lb.toml:4: discovery.password_file: `user` is set",
            ),
            (
                format!("{store}{endpoints}password_file = \"\"\n"),
                "lb.toml:4: discovery.user: `password_file` is set",
            ),
            (
                format!("{store}{endpoints}colour = 1\n"),
                "lb.toml:4: discovery.colour: ",
            ),
        ];
        for (text, expected) in cases {
            let err = error(&text);
            assert!(err.starts_with(expected), "{text}: {err}");
        }
        // Without [discovery], a file with no backends is refused still.
        assert!(error("listen = \"127.0.0.1:3000\"\n").contains(
            "no [[backends]]: list one at least (or name a store in \
             [discovery])"
        ));
    }

    #[test]
    fn a_backend_from_json_is_checked_as_the_file_s_are() {
        let backend =
            backend_from_json("web-1", br#"{"address": "127.0.0.1:4444"}"#)
                .unwrap();
        assert_eq!(backend.id, "web-1");
        assert_eq!(backend.weight, 1);
        let backend = backend_from_json(
            "web-1",
            br#"{"address": "127.0.0.1:4444", "id": "a", "weight": 3,
                "max_connections": null}"#,
        )
        .unwrap();
        assert_eq!((backend.id.as_str(), backend.weight), ("a", 3));
        // A key added to [[backends]] is a key of the JSON object too.
        let backend = backend_from_json(
            "p",
            br#"{"address": "127.0.0.1:4444", "send_proxy": "v2"}"#,
        )
        .unwrap();
        assert_eq!(backend.send_proxy, Some(proxy_protocol::Version::V2));
        let refused = [
            (&br#"{"weight": 2}"#[..], "missing field `address`"),
            (br#"{"address": "nowhere"}"#, "address: "),
            (
                br#"{"address": "127.0.0.1:1", "weight": 1.5}"#,
                "invalid type",
            ),
            (
                br#"{"address": "127.0.0.1:1", "id": " "}"#,
                "id: an empty id",
            ),
            (br#"["127.0.0.1:1"]"#, "not a JSON object"),
        ];
        for (json, expected) in refused {
            let err = backend_from_json("x", json).unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn the_proxy_protocol_keys_refuse_bad_values_by_line_and_key() {
        let cases = [
            ("accept_proxy = \"yes\"\n", "lb.toml:1: accept_proxy:"),
            (
                "[timeouts]\nproxy_header = \"0s\"\n",
                "lb.toml:2: timeouts.proxy_header:",
            ),
            (
                "[[backends]]\naddress = \"127.0.0.1:1\"\n\
                 send_proxy = \"v3\"\n",
                "lb.toml:3: backends[1].send_proxy: `v3` is not v1 or v2: \
                 write \"v1\" or \"v2\"",
            ),
        ];
        for (text, expected) in cases {
            let err = error(&format!("{text}{ONE_BACKEND}"));
            assert!(err.starts_with(expected), "{text}: {err}");
        }
        let config = parse(
            "accept_proxy = true\n[timeouts]\nproxy_header = \"2s\"\n\
             [[backends]]\naddress = \"127.0.0.1:1\"\nsend_proxy = \"v2\"\n",
        )
        .unwrap();
        assert!(config.accept_proxy);
        assert_eq!(config.timeouts.proxy_header, Duration::from_secs(2));
        assert_eq!(
            config.backends[0].send_proxy,
            Some(proxy_protocol::Version::V2)
        );
    }

    #[test]
    fn a_file_with_only_backends_takes_every_other_default() {
        let config = parse(ONE_BACKEND).unwrap();
        let defaults = Config::default();
        assert_eq!(config.listen, defaults.listen);
        assert_eq!(config.timeouts, defaults.timeouts);
        assert_eq!(config.health, defaults.health);
        assert_eq!(config.backends.len(), 1);
        assert_eq!(config.backends[0].id, "127.0.0.1:4444");
    }

    #[test]
    fn an_unknown_key_names_its_line_and_key() {
        let text = format!("{ONE_BACKEND}\n[health]\nrise = 2\ncolour = 1\n");
        let err = error(&text);
        assert!(err.starts_with("lb.toml:6: health.colour: "), "{err}");
        assert!(err.contains("unknown field `colour`"), "{err}");
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_line_and_key() {
        let text = format!("{ONE_BACKEND}weight = \"two\"\n");
        let err = error(&text);
        assert!(err.starts_with("lb.toml:3: backends[1].weight: "), "{err}");
    }

    #[test]
    fn rules_checked_after_parsing_name_the_line_and_key_too() {
        let cases = [
            (
                "[[backends]]\naddress = \"127.0.0.1:1\"\nweight = 0\n",
                "lb.toml:3: backends[1].weight: must be at least 1, found 0",
            ),
            (
                "[health]\ninterval = \"0s\"\n",
                "lb.toml:2: health.interval: `0s`: must be longer than zero",
            ),
            (
                "[health]\nrise = 0\n",
                "lb.toml:2: health.rise: must be at least 1",
            ),
            (
                "[health]\ninterval = \"-2s\"\n",
                "lb.toml:2: health.interval: `-2s` is not a duration",
            ),
            (
                "algorithm = \"fastest\"\n",
                "lb.toml:1: algorithm: unknown algorithm `fastest`",
            ),
        ];
        for (text, want) in cases {
            let text = if text.contains("[[backends]]") {
                text.to_owned()
            } else {
                format!("{text}{ONE_BACKEND}")
            };
            let err = error(&text);
            assert!(err.starts_with(want), "{err}\nwanted: {want}");
        }
    }

    #[test]
    fn relations_between_keys_are_checked() {
        let weight = "[[backends]]\naddress = \"127.0.0.1:1\"\n\
                      [[backends]]\naddress = \"127.0.0.1:2\"\nweight = 3\n";
        let err = error(weight);
        assert!(err.starts_with("lb.toml:5: backends[2].weight: "), "{err}");
        assert!(err.contains("round-robin ignores weights"), "{err}");
        let weighted =
            format!("algorithm = \"weighted-round-robin\"\n{weight}");
        assert_eq!(parse(&weighted).unwrap().backends[1].weight, 3);

        let tls = "[[backends]]\naddress = \"tls://127.0.0.1:1\"\n";
        let err = error(tls);
        assert!(err.starts_with("lb.toml:2: backends[1].address: "), "{err}");
        assert!(err.contains("set `ca`"), "{err}");
        let insecure = format!("[tls]\ninsecure = true\n{tls}");
        assert!(parse(&insecure).unwrap().tls.insecure);

        let twice = "[[backends]]\naddress = \"127.0.0.1:1\"\nid = \"a\"\n\
                     [[backends]]\naddress = \"127.0.0.1:2\"\nid = \"a\"\n";
        let err = error(twice);
        assert!(err.contains("backends[2].id: two backends have the id `a`"));

        let err = error("listen = \"127.0.0.1:3000\"\n");
        assert!(
            err.starts_with("lb.toml: backends: no [[backends]]"),
            "{err}"
        );
    }

    #[test]
    fn a_rule_between_keys_names_the_line_however_the_key_is_written() {
        // Inline tables and quoted keys: the spans serde kept know them.
        let inline = "backends = [\n  { address = \"127.0.0.1:1\" },\n  \
                      { address = \"127.0.0.1:2\", \"weight\" = 3 },\n]\n";
        let err = error(inline);
        assert!(err.starts_with("lb.toml:3: backends[2].weight: "), "{err}");

        // An id left out is the address, so the address is blamed.
        let twice = "[[backends]]\naddress = \"127.0.0.1:1\"\n\
                     [[backends]]\naddress = \"127.0.0.1:1\"\n";
        let err = error(twice);
        assert!(
            err.starts_with("lb.toml:4: backends[2].address: two"),
            "{err}"
        );

        let err = error("backends = []\n");
        assert!(
            err.starts_with("lb.toml:1: backends: no [[backends]]"),
            "{err}"
        );
    }

    #[test]
    fn the_flags_are_checked_by_the_same_rules_without_a_line() {
        let mut config = Config::default();
        config.backends[1] =
            BackendConfig::at(parse_default("tls://127.0.0.1:4445"));
        let err = config.check("the defaults with the command line's flags");
        assert_eq!(
            err.unwrap_err().to_string(),
            "the defaults with the command line's flags: backends: \
             `tls://127.0.0.1:4445` is a TLS backend, but nothing says how to \
             check its certificate: set `ca` in [tls] (or --ca), or \
             `insecure = true`"
        );
        config.tls.insecure = true;
        assert_eq!(config.check("flags"), Ok(()));

        let mut config = parse(&format!(
            "algorithm = \"weighted-round-robin\"\n{ONE_BACKEND}weight = 2\n"
        ))
        .unwrap();
        config.algorithm = Algorithm::RoundRobin;
        let err = config.check("lb.toml with the command line's flags");
        let err = err.unwrap_err().to_string();
        assert!(
            err.starts_with(
                "lb.toml with the command line's flags: algorithm: "
            ),
            "{err}"
        );
    }

    #[test]
    fn a_relative_certificate_path_is_taken_from_the_file_s_folder() {
        let text =
            format!("[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n{ONE_BACKEND}");
        let config = Config::parse(Path::new("conf/lb.toml"), &text).unwrap();
        let front = config.tls.front.unwrap();
        assert_eq!(front.cert, Path::new("conf/c.pem"));
        assert_eq!(front.key, Path::new("conf/k.pem"));
    }

    #[test]
    fn retries_is_a_count_or_all() {
        let with = |value: &str| format!("retries = {value}\n{ONE_BACKEND}");
        assert_eq!(parse(&with("1")).unwrap().retries, Some(1));
        assert_eq!(parse(&with("\"all\"")).unwrap().retries, None);
        assert!(error(&with("-1")).starts_with("lb.toml:1: retries: "));
        assert!(error(&with("\"some\"")).contains("\"all\""));
    }

    /// The key is serde's own path, so an unknown or misspelt table is
    /// named as itself, not blamed on the table above it.
    #[test]
    fn a_misspelt_table_is_named_as_itself() {
        let cases = [
            (
                format!("{ONE_BACKEND}[timeouts]\n[healt]\nrise = 2\n"),
                "lb.toml:4: healt: unknown field `healt`",
            ),
            (
                format!("{ONE_BACKEND}[health]\n[[backend]]\nid = \"a\"\n"),
                "lb.toml:4: backend: unknown field `backend`",
            ),
            (
                format!(
                    "{ONE_BACKEND}[[backends]]\naddress = \"b:1\"\nfoo = 1\n"
                ),
                "lb.toml:5: backends[2].foo: unknown field `foo`",
            ),
        ];
        for (text, want) in cases {
            let err = error(&text);
            assert!(err.starts_with(want), "{err}");
        }
    }

    /// A line that is not TOML has no key to name: the line alone, not
    /// the table above it.
    #[test]
    fn a_syntax_error_names_its_line_and_no_other_table() {
        let text = format!("[timeouts]\n{ONE_BACKEND}[health\nrise = 2\n");
        assert_eq!(error(&text), "lb.toml:4: unclosed table, expected `]`");
    }

    /// serde's names for `lb`'s own types never reach the user.
    #[test]
    fn a_wrong_type_says_what_to_write() {
        let cases = [
            (
                format!("{ONE_BACKEND}weight = \"2\"\n"),
                "lb.toml:3: backends[1].weight: invalid type: string \"2\", \
                 expected a whole number",
            ),
            (
                "backends = [\"127.0.0.1:4444\"]\n".to_owned(),
                "lb.toml:1: backends[1]: invalid type: string \
                 \"127.0.0.1:4444\", expected a [[backends]] table",
            ),
            (
                format!("retries = 1.5\n{ONE_BACKEND}"),
                "lb.toml:1: retries: expected a number of backends, or \"all\"",
            ),
            (
                format!("tls = 3\n{ONE_BACKEND}"),
                "lb.toml:1: tls: invalid type: integer `3`, expected a table",
            ),
            (
                format!("[tls]\nresumption = \"no\"\n{ONE_BACKEND}"),
                "lb.toml:2: tls.resumption: invalid type: string \"no\", \
                 expected a boolean",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(error(&text), want);
        }
    }

    #[test]
    fn values_that_cannot_work_are_refused() {
        let cases = [
            (
                "[[backends]]\naddress = \"127.0.0.1:0\"\n",
                "lb.toml:2: backends[1].address: `127.0.0.1:0`: port 0 is \
                 no port a backend listens on",
            ),
            (
                "listen = \"127.0.0.1:3000\"\n[[backends]]\n\
                 address = \"127.0.0.1:3000\"\n",
                "lb.toml:3: backends[1].address: `127.0.0.1:3000` is lb's \
                 own listen address: every client sent there would come \
                 back to lb, which would connect to itself until it ran out \
                 of connections",
            ),
            (
                "[health]\npath = \"/x<y>\"\n[[backends]]\n\
                 address = \"127.0.0.1:1\"\n",
                "lb.toml:2: health.path: `/x<y>` is not a path an HTTP \
                 request can carry (invalid uri character); percent-encode \
                 characters such as `<`, `>`, `\"` and spaces",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(error(text), want);
        }
        // Port 0 stays allowed where `lb` listens: tests bind it.
        let text = format!("listen = \"127.0.0.1:0\"\n{ONE_BACKEND}");
        assert!(parse(&text).is_ok());
        assert!(parse("[health]\npath = \"/health?full=1\"\n[[backends]]\naddress = \"a:1\"\n").is_ok());
    }

    #[test]
    fn a_long_value_is_not_echoed_whole() {
        let long = "x".repeat(10_000_000);
        let err = error(&format!("listen = \"{long}\"\n{ONE_BACKEND}"));
        assert!(err.len() < 300, "{} bytes", err.len());
        assert!(err.starts_with("lb.toml:1: listen: "), "{err}");
        assert!(err.contains("… (10000000 bytes in all)"), "{err}");
    }

    #[test]
    fn a_health_timeout_longer_than_its_interval_is_a_warning() {
        let text = format!(
            "[health]\ninterval = \"1s\"\ntimeout = \"2s\"\n{ONE_BACKEND}"
        );
        let warnings = parse(&text).unwrap().warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with(
                "health.timeout (2s) is longer than health.interval (1s)"
            ),
            "{warnings:?}"
        );
        assert!(Config::default().warnings().is_empty());
    }

    #[test]
    fn seed_is_a_number_of_at_least_0() {
        let with = |value: &str| format!("seed = {value}\n{ONE_BACKEND}");
        assert_eq!(parse(&with("7")).unwrap().seed, Some(7));
        assert_eq!(parse(ONE_BACKEND).unwrap().seed, None);
        assert_eq!(
            error(&with("-1")),
            "lb.toml:1: seed: must be at least 0, found -1"
        );
    }

    /// `balancer/lb.toml`, the commented example.
    const EXAMPLE: &str = include_str!("../lb.toml");

    #[test]
    fn the_example_file_is_the_defaults() {
        let config = parse(EXAMPLE).expect("lb.toml parses");
        assert_eq!(config, Config::default());
    }

    /// The field names serde would accept for a struct, asked of its
    /// `Deserialize` by a deserializer that only listens.
    fn field_names<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
        #[derive(Debug)]
        struct Fields(&'static [&'static str]);
        impl fmt::Display for Fields {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }
        impl std::error::Error for Fields {}
        impl serde::de::Error for Fields {
            fn custom<M: fmt::Display>(_: M) -> Fields {
                Fields(&[])
            }
        }
        struct Listen;
        impl<'de> serde::Deserializer<'de> for Listen {
            type Error = Fields;
            fn deserialize_any<V: serde::de::Visitor<'de>>(
                self,
                _: V,
            ) -> Result<V::Value, Fields> {
                Err(Fields(&[]))
            }
            fn deserialize_struct<V: serde::de::Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Fields> {
                Err(Fields(fields))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char
                str string bytes byte_buf option unit unit_struct
                newtype_struct seq tuple tuple_struct map enum identifier
                ignored_any
            }
        }
        match T::deserialize(Listen) {
            Err(Fields(fields)) => fields,
            Ok(_) => unreachable!("Listen never produces a value"),
        }
    }

    #[test]
    fn the_example_file_shows_every_key() {
        let tables = [
            ("", field_names::<RawConfig>()),
            ("[tls]", field_names::<RawTls>()),
            ("[timeouts]", field_names::<RawTimeouts>()),
            ("[limits]", field_names::<RawLimits>()),
            ("[health]", field_names::<RawHealth>()),
            ("[admin]", field_names::<RawAdmin>()),
            ("[upgrade]", field_names::<RawUpgrade>()),
            ("[discovery]", field_names::<RawDiscovery>()),
            ("[[backends]]", field_names::<RawBackend>()),
        ];
        // The keys written (or commented out, `# key = ...`) under each
        // table header.
        let mut written: Vec<(String, String)> = Vec::new();
        let mut table = String::new();
        for line in EXAMPLE.lines() {
            // A table that is off by default is shown commented out,
            // `# [discovery]`, its keys too.
            let line = line.trim();
            let line = line.strip_prefix("# ").unwrap_or(line);
            if line.starts_with('[') {
                table = line.to_owned();
                continue;
            }
            if let Some((key, _)) = line.split_once(" = ") {
                written.push((table.clone(), key.to_owned()));
            }
        }
        for (table, fields) in tables {
            for field in fields {
                let is_table = tables.iter().any(|(t, _)| t.contains(&**field));
                let shown =
                    written.iter().any(|(t, k)| t == table && k == field);
                assert!(
                    shown || (table.is_empty() && is_table),
                    "balancer/lb.toml does not show `{field}` in {table:?}"
                );
            }
        }
    }

    #[test]
    fn a_syntax_error_names_its_line() {
        let err = error("[[backends]\naddress = 1\n");
        assert!(err.starts_with("lb.toml:1"), "{err}");
    }
}
