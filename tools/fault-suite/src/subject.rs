//! The balancer under test, run as a process of its own so that `/proc`
//! can measure it alone: `lb` (with a config file written for the case)
//! or step 08 (with the flags that come closest), on `127.0.0.1:0`.

use std::fmt;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use lab_common::output::watch_lines;
use lab_tools::sys;
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::certs::Certs;

/// Which balancer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Lb,
    Step08,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Lb => "lb",
            Kind::Step08 => "08-final",
        })
    }
}

/// A balancer binary to test.
#[derive(Clone, Debug)]
pub struct Subject {
    pub kind: Kind,
    pub program: PathBuf,
}

/// A backend as the balancer is told of it.
#[derive(Clone, Copy, Debug)]
pub struct BackendAt {
    pub addr: SocketAddr,
    pub tls: bool,
    /// `lb`'s per-backend `max_connections`.
    pub max_connections: Option<u32>,
    /// A host name to give the balancer instead of the address's IP (the
    /// port stays): a path to the address that only resolving shows.
    pub host: Option<&'static str>,
    /// `lb`'s `weight` for it (every algorithm but round robin's).
    pub weight: Option<u32>,
}

impl BackendAt {
    pub fn new(addr: SocketAddr, tls: bool) -> BackendAt {
        BackendAt {
            addr,
            tls,
            max_connections: None,
            host: None,
            weight: None,
        }
    }

    /// As the balancer is told of it: `tls://` for TLS, then the host
    /// (or the IP) and the port.
    fn address(&self) -> String {
        let scheme = if self.tls { "tls://" } else { "" };
        match self.host {
            Some(host) => format!("{scheme}{host}:{}", self.addr.port()),
            None => format!("{scheme}{}", self.addr),
        }
    }
}

/// `lb`'s active health checks, for the cases about them: TCP checks
/// every `interval` (each allowed as long, or a second if less), and
/// `lb`'s defaults for what is `None`.
#[derive(Clone, Copy, Debug)]
pub struct Health {
    pub interval: Duration,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
    /// How long a flapping backend is first held down.
    pub hold_down: Option<Duration>,
}

impl Health {
    pub fn every(interval: Duration) -> Health {
        Health {
            interval,
            rise: None,
            fall: None,
            hold_down: None,
        }
    }

    /// One check's whole time: no longer than the interval, so that no
    /// check is skipped for the one before it.
    fn timeout(&self) -> Duration {
        self.interval.min(Duration::from_secs(1))
    }
}

/// What a case runs the balancer with. `None`: `lb`'s default. Step 08
/// has no timeouts or limits, and ignores them.
#[derive(Clone, Debug, Default)]
pub struct Setup {
    pub front_tls: bool,
    pub backends: Vec<BackendAt>,
    pub connect: Option<Duration>,
    pub tls_handshake: Option<Duration>,
    pub idle: Option<Duration>,
    pub half_closed: Option<Duration>,
    pub drain: Option<Duration>,
    pub max_connections: Option<u32>,
    pub backlog: Option<u32>,
    pub queue_timeout: Option<Duration>,
    pub max_handshakes: Option<u32>,
    /// `[timeouts] unacknowledged`: `TCP_USER_TIMEOUT` on the
    /// connections to backends.
    pub unacknowledged: Option<Duration>,
    /// `[limits] buffer_budget`, in bytes.
    pub buffer_budget: Option<u64>,
    /// Active health checks; `None`: `kind = "off"`, as most cases want.
    pub health: Option<Health>,
    /// An admin listener on `127.0.0.1:0`.
    pub admin: bool,
    /// Where the balancer listens instead of `127.0.0.1:0`.
    pub listen: Option<String>,
    /// `lb`'s algorithm; `None`: its default, round robin.
    pub algorithm: Option<&'static str>,
    /// Runs the balancer under `ulimit -n` this many.
    pub open_files: Option<u32>,
}

/// The sections of `lb`'s config that [`Setup::lb_keys`] fills, in the
/// order the config file gives them.
const LB_SECTIONS: [&str; 2] = ["timeouts", "limits"];

/// The value of a key of `lb`'s config.
#[derive(Clone, Copy, Debug)]
enum Value {
    Duration(Duration),
    Count(u32),
    Bytes(u64),
}

impl Value {
    /// As a report shows it: "1.00 s", "1000".
    fn shown(self) -> String {
        match self {
            Value::Duration(value) => crate::report::show(value),
            Value::Count(value) => value.to_string(),
            Value::Bytes(value) => crate::report::mib(value >> 10),
        }
    }

    /// As `lb`'s config file says it: "\"1000ms\"", "1000".
    fn toml(self) -> String {
        match self {
            Value::Duration(value) => format!("\"{}ms\"", value.as_millis()),
            Value::Count(value) => value.to_string(),
            Value::Bytes(value) if value % (1 << 20) == 0 => {
                format!("\"{}MiB\"", value >> 20)
            }
            Value::Bytes(value) => format!("\"{}KiB\"", value.div_ceil(1024)),
        }
    }
}

impl Setup {
    /// Backends `addrs`, all plain or all TLS.
    pub fn over(addrs: &[SocketAddr], tls: bool) -> Setup {
        Setup {
            backends: addrs.iter().map(|&a| BackendAt::new(a, tls)).collect(),
            ..Setup::default()
        }
    }

    /// What the balancer runs with, in a few words for a report.
    pub fn describe(&self, kind: Kind) -> String {
        let mut parts = Vec::new();
        if self.front_tls {
            parts.push("TLS front".to_owned());
        }
        if self.backends.iter().any(|b| b.tls) {
            parts.push("tls:// backends".to_owned());
        }
        if let Some(files) = self.open_files {
            parts.push(format!("ulimit -n {files}"));
        }
        if kind == Kind::Step08 {
            parts.push("no timeouts or limits".to_owned());
            return parts.join(", ");
        }
        if let Some(listen) = &self.listen {
            parts.push(format!("listen {listen}"));
        }
        if let Some(algorithm) = self.algorithm {
            parts.push(algorithm.to_owned());
        }
        if let Some(health) = self.health {
            let mut checks = format!(
                "tcp checks every {}",
                crate::report::show(health.interval)
            );
            if let Some(rise) = health.rise {
                let _ = write!(checks, ", rise {rise}");
            }
            if let Some(fall) = health.fall {
                let _ = write!(checks, ", fall {fall}");
            }
            if let Some(hold_down) = health.hold_down {
                let hold_down = crate::report::show(hold_down);
                let _ = write!(checks, ", hold_down {hold_down}");
            }
            parts.push(checks);
        }
        for (_, key, value) in self.lb_keys() {
            parts.push(format!("{key} {}", value.shown()));
        }
        for backend in &self.backends {
            if let Some(max) = backend.max_connections {
                parts.push(format!("backend max_connections {max}"));
            }
        }
        parts.join(", ")
    }

    /// `lb`'s config file for this setup. Health checks are off unless
    /// the setup turns them on: most cases' faulty backends would be
    /// taken out by them, and such a case tests what `lb` does when a
    /// fault reaches a client.
    pub fn lb_toml(&self, certs: &Certs) -> String {
        let listen = self.listen.as_deref().unwrap_or("127.0.0.1:0");
        let mut toml = format!("listen = \"{listen}\"\n");
        if let Some(algorithm) = self.algorithm {
            line(&mut toml, "algorithm", &format!("\"{algorithm}\""));
        }
        toml.push_str("\n[tls]\n");
        if self.front_tls {
            line(&mut toml, "cert", &quoted_path(&certs.cert_path()));
            line(&mut toml, "key", &quoted_path(&certs.key_path()));
        }
        if self.backends.iter().any(|b| b.tls) {
            line(&mut toml, "ca", &quoted_path(&certs.ca_path()));
        }
        for section in LB_SECTIONS {
            let _ = write!(toml, "\n[{section}]\n");
            for (_, key, value) in
                self.lb_keys().filter(|(under, ..)| *under == section)
            {
                line(&mut toml, key, &value.toml());
            }
        }
        match self.health {
            None => toml.push_str("\n[health]\nkind = \"off\"\n"),
            Some(health) => {
                toml.push_str("\n[health]\nkind = \"tcp\"\n");
                let interval = Value::Duration(health.interval).toml();
                line(&mut toml, "interval", &interval);
                let timeout = Value::Duration(health.timeout()).toml();
                line(&mut toml, "timeout", &timeout);
                for (key, value) in
                    [("rise", health.rise), ("fall", health.fall)]
                {
                    if let Some(value) = value {
                        line(&mut toml, key, &value.to_string());
                    }
                }
                if let Some(hold_down) = health.hold_down {
                    let hold_down = Value::Duration(hold_down).toml();
                    line(&mut toml, "hold_down", &hold_down);
                }
            }
        }
        if self.admin {
            toml.push_str("\n[admin]\nlisten = \"127.0.0.1:0\"\n");
        }
        for backend in &self.backends {
            toml.push_str("\n[[backends]]\n");
            line(&mut toml, "address", &format!("\"{}\"", backend.address()));
            if let Some(max) = backend.max_connections {
                line(&mut toml, "max_connections", &max.to_string());
            }
            if let Some(weight) = backend.weight {
                line(&mut toml, "weight", &weight.to_string());
            }
        }
        toml
    }

    /// The timeouts and limits of `lb`'s config this setup sets: the
    /// section of the file each goes in, its key and its value, in the
    /// order [`Setup::describe`] shows them.
    fn lb_keys(
        &self,
    ) -> impl Iterator<Item = (&'static str, &'static str, Value)> {
        let time = |value: Option<Duration>| value.map(Value::Duration);
        let count = |value: Option<u32>| value.map(Value::Count);
        [
            ("timeouts", "connect", time(self.connect)),
            ("timeouts", "tls_handshake", time(self.tls_handshake)),
            ("timeouts", "idle", time(self.idle)),
            ("timeouts", "half_closed", time(self.half_closed)),
            ("timeouts", "drain", time(self.drain)),
            ("timeouts", "unacknowledged", time(self.unacknowledged)),
            ("limits", "queue_timeout", time(self.queue_timeout)),
            ("limits", "max_connections", count(self.max_connections)),
            ("limits", "backlog", count(self.backlog)),
            ("limits", "max_handshakes", count(self.max_handshakes)),
            (
                "limits",
                "buffer_budget",
                self.buffer_budget.map(Value::Bytes),
            ),
        ]
        .into_iter()
        .filter_map(|(section, key, value)| Some((section, key, value?)))
    }

    /// Step 08's flags for this setup.
    pub fn step08_args(&self, certs: &Certs) -> Vec<String> {
        let servers: Vec<String> =
            self.backends.iter().map(BackendAt::address).collect();
        let listen = self.listen.as_deref().unwrap_or("127.0.0.1:0");
        let mut args = vec![
            "--listen".to_owned(),
            listen.to_owned(),
            "--backends".to_owned(),
            servers.join(","),
        ];
        let path = |p: PathBuf| p.display().to_string();
        if self.front_tls {
            args.push("--tls-front".to_owned());
            args.extend(["--cert".to_owned(), path(certs.cert_path())]);
            args.extend(["--key".to_owned(), path(certs.key_path())]);
        }
        if self.backends.iter().any(|b| b.tls) {
            args.extend(["--ca".to_owned(), path(certs.ca_path())]);
        }
        args
    }
}

fn line(toml: &mut String, key: &str, value: &str) {
    let _ = writeln!(toml, "{key} = {value}");
}

/// A path as a TOML literal string (no escapes inside single quotes).
fn quoted_path(path: &Path) -> String {
    format!("'{}'", path.display())
}

/// How the balancer is started, through bash: first every descriptor
/// past stderr that this process would hand down is closed (cargo's
/// jobserver pipes, say), so that the balancer starts as a service
/// manager starts a service, with stdin, stdout and stderr only, and
/// every descriptor counted is its own; then `ulimit -n` ($1, if not
/// `-`), soft and hard, so that the balancer cannot raise it; then the
/// balancer, in bash's place (same pid).
const LAUNCH: &str = r#"for fd in $(ls "/proc/$$/fd"); do
  if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
done
if [ "$1" != - ]; then ulimit -n "$1" || exit 1; fi
shift
exec "$@""#;

/// The balancer, running.
pub struct Running {
    pub kind: Kind,
    /// Where it listens.
    pub addr: SocketAddr,
    pub pid: u32,
    child: Child,
    stdout: watch::Receiver<String>,
    log: watch::Receiver<String>,
    /// Holds the config file, when [`Subject::start`] wrote it.
    _dir: Option<tempfile::TempDir>,
}

impl Subject {
    /// Starts the balancer with `setup` and waits (up to 30 s) for its
    /// `listening on` line.
    pub async fn start(
        &self,
        setup: &Setup,
        certs: &Certs,
    ) -> Result<Running, String> {
        let dir = tempfile::tempdir()
            .map_err(|err| format!("a temporary folder: {err}"))?;
        let args = match self.kind {
            Kind::Lb => {
                let config = dir.path().join("lb.toml");
                std::fs::write(&config, setup.lb_toml(certs))
                    .map_err(|err| format!("writing {config:?}: {err}"))?;
                vec!["--config".to_owned(), config.display().to_string()]
            }
            Kind::Step08 => setup.step08_args(certs),
        };
        self.spawn(&args, setup.open_files, Some(dir)).await
    }

    /// Starts `lb` with the config file `config`, which the caller
    /// writes and keeps (a reload reads it again), and `more` flags
    /// after it (`--upgrade`); waits (up to 30 s) for its `listening on`
    /// line.
    pub async fn start_lb(
        &self,
        config: &Path,
        more: &[&str],
    ) -> Result<Running, String> {
        let mut args =
            vec!["--config".to_owned(), config.display().to_string()];
        args.extend(more.iter().map(|arg| (*arg).to_owned()));
        self.spawn(&args, None, None).await
    }

    async fn spawn(
        &self,
        args: &[String],
        open_files: Option<u32>,
        dir: Option<tempfile::TempDir>,
    ) -> Result<Running, String> {
        let mut command = Command::new("bash");
        let files = open_files.map_or("-".to_owned(), |n| n.to_string());
        command
            .args(["-c", LAUNCH, "launch", &files])
            .arg(&self.program);
        command
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|err| {
            format!("cannot start {}: {err}", self.program.display())
        })?;
        let pid = child.id().ok_or("the process ended at once")?;
        let stdout = watch_lines(child.stdout.take().expect("stdout is piped"));
        let log = watch_lines(child.stderr.take().expect("stderr is piped"));
        let addr = listening_addr(stdout.clone(), &log).await?;
        Ok(Running {
            kind: self.kind,
            addr,
            pid,
            child,
            stdout,
            log,
            _dir: dir,
        })
    }
}

async fn listening_addr(
    mut stdout: watch::Receiver<String>,
    log: &watch::Receiver<String>,
) -> Result<SocketAddr, String> {
    let waited = tokio::time::timeout(
        Duration::from_secs(30),
        stdout.wait_for(|text| text.contains("listening on ")),
    )
    .await;
    let Ok(Ok(text)) = waited else {
        let log = log.borrow();
        return Err(format!("no `listening on` line; its log:\n{}", *log));
    };
    lab_common::cli::listening_addr(&text)
        .ok_or_else(|| format!("no address in {:?}", *text))
}

/// The address of an `admin on ADDR` line in `output`.
fn admin_addr(output: &str) -> Option<SocketAddr> {
    output
        .lines()
        .find_map(|line| Some(line.split_once("admin on ")?.1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
}

impl Running {
    /// Its open descriptors now.
    pub fn descriptors(&self) -> Result<usize, String> {
        sys::process_fd_count(self.pid)
            .map_err(|err| format!("descriptors of {}: {err}", self.kind))
    }

    /// Its resident memory now, in KiB.
    pub fn rss_kib(&self) -> Result<u64, String> {
        sys::process_rss_kib(self.pid)
            .map_err(|err| format!("memory of {}: {err}", self.kind))
    }

    /// Sends it `signal`.
    pub fn signal(
        &self,
        signal: rustix::process::Signal,
    ) -> Result<(), String> {
        let pid =
            rustix::process::Pid::from_raw(self.pid as i32).ok_or("no pid")?;
        rustix::process::kill_process(pid, signal)
            .map_err(|err| format!("cannot signal {}: {err}", self.kind))
    }

    /// Waits up to `limit` for it to exit, then (up to a second) for the
    /// rest of its log: its last lines may still be in the pipe.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .ok()?
            .ok()?;
        // The log is complete once its copier has read the pipe to its
        // end and dropped the sender.
        let whole_log = self.log.wait_for(|_| false);
        let _ = tokio::time::timeout(Duration::from_secs(1), whole_log).await;
        Some(status)
    }

    /// What it printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.borrow().clone()
    }

    /// The address of `lb`'s admin listener, from its `admin on ADDR`
    /// line, waiting up to `limit` for it.
    pub async fn admin_addr(&mut self, limit: Duration) -> Option<SocketAddr> {
        let has_line = |text: &String| admin_addr(text).is_some();
        let waited =
            tokio::time::timeout(limit, self.stdout.wait_for(has_line)).await;
        match waited {
            Ok(Ok(text)) => admin_addr(&text),
            _ => None,
        }
    }

    /// The length of its log so far, in bytes: where what it writes next
    /// will start.
    pub fn log_len(&self) -> usize {
        self.log.borrow().len()
    }

    /// Its log (stderr) so far.
    pub fn log(&self) -> String {
        self.log.borrow().clone()
    }

    /// Waits up to `limit` for its log to satisfy `done`; whether it did.
    pub async fn wait_log_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&str) -> bool,
    ) -> bool {
        let waited =
            tokio::time::timeout(limit, self.log.wait_for(|text| done(text)))
                .await;
        matches!(waited, Ok(Ok(_)))
    }

    /// Waits up to `limit` for its log to contain `needle`.
    pub async fn wait_for_log(
        &mut self,
        needle: &str,
        limit: Duration,
    ) -> bool {
        let waited = tokio::time::timeout(
            limit,
            self.log.wait_for(|text| text.contains(needle)),
        )
        .await;
        matches!(waited, Ok(Ok(_)))
    }
}

impl Drop for Running {
    /// With `FAULTS_LOG` set, prints the balancer's log as it stops: what
    /// it said about each connection of the case.
    fn drop(&mut self) {
        if std::env::var_os("FAULTS_LOG").is_some() {
            eprintln!("--- {} log ---\n{}", self.kind, *self.log.borrow());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_lb_config_names_only_what_the_setup_sets() {
        let certs = Certs::new().expect("certificates");
        let backend: SocketAddr = "127.0.0.1:4000".parse().expect("addr");
        let mut setup = Setup::over(&[backend], true);
        setup.idle = Some(Duration::from_millis(1500));
        setup.max_connections = Some(10);
        setup.backends[0].max_connections = Some(2);
        let toml = setup.lb_toml(&certs);
        assert!(toml.contains("idle = \"1500ms\"\n"), "{toml}");
        assert!(toml.contains("max_connections = 10\n"), "{toml}");
        assert!(toml.contains("address = \"tls://127.0.0.1:4000\"\n"));
        assert!(toml.contains("max_connections = 2\n"), "{toml}");
        assert!(toml.contains("ca = '"), "{toml}");
        assert!(!toml.contains("cert = "), "{toml}");
        assert!(!toml.contains("drain"), "{toml}");
    }

    #[test]
    fn a_case_about_health_turns_the_checks_on() {
        let certs = Certs::new().expect("certificates");
        let backend: SocketAddr = "127.0.0.1:4000".parse().expect("addr");
        let off = Setup::over(&[backend], false).lb_toml(&certs);
        assert!(off.contains("[health]\nkind = \"off\"\n"), "{off}");
        assert!(!off.contains("[admin]"), "{off}");
        let setup = Setup {
            health: Some(Health {
                rise: Some(2),
                ..Health::every(Duration::from_millis(500))
            }),
            listen: Some("0.0.0.0:4001".to_owned()),
            algorithm: Some("maglev"),
            admin: true,
            unacknowledged: Some(Duration::from_secs(1)),
            buffer_budget: Some(4 << 20),
            backends: vec![BackendAt {
                host: Some("localhost"),
                ..BackendAt::new(backend, false)
            }],
            ..Setup::default()
        };
        let toml = setup.lb_toml(&certs);
        for want in [
            "listen = \"0.0.0.0:4001\"\nalgorithm = \"maglev\"\n",
            "[health]\nkind = \"tcp\"\ninterval = \"500ms\"\n\
             timeout = \"500ms\"\nrise = 2\n",
            "[admin]\nlisten = \"127.0.0.1:0\"\n",
            "unacknowledged = \"1000ms\"\n",
            "buffer_budget = \"4MiB\"\n",
            "address = \"localhost:4000\"\n",
        ] {
            assert!(toml.contains(want), "{want:?} not in\n{toml}");
        }
        assert!(!toml.contains("fall"), "{toml}");
        assert_eq!(
            setup.step08_args(&certs)[..4],
            ["--listen", "0.0.0.0:4001", "--backends", "localhost:4000"]
        );
    }

    #[test]
    fn the_admin_address_is_read_from_its_line() {
        let out = "listening on 127.0.0.1:4000\nadmin on 127.0.0.1:4001\n";
        assert_eq!(admin_addr(out), Some(([127, 0, 0, 1], 4001).into()));
        assert_eq!(admin_addr("listening on 127.0.0.1:4000\n"), None);
    }

    #[test]
    fn each_key_goes_in_its_section_and_the_report_names_it() {
        let certs = Certs::new().expect("certificates");
        let backend: SocketAddr = "127.0.0.1:4000".parse().expect("addr");
        let setup = Setup {
            idle: Some(Duration::from_millis(1500)),
            queue_timeout: Some(Duration::from_millis(500)),
            max_connections: Some(10),
            ..Setup::over(&[backend], false)
        };
        let toml = setup.lb_toml(&certs);
        let timeouts = "\n[timeouts]\nidle = \"1500ms\"\n\n[limits]\n";
        assert!(toml.contains(timeouts), "{toml}");
        let limits =
            "[limits]\nqueue_timeout = \"500ms\"\nmax_connections = 10\n";
        assert!(toml.contains(limits), "{toml}");
        assert_eq!(
            setup.describe(Kind::Lb),
            "idle 1.50 s, queue_timeout 500 ms, max_connections 10"
        );
        assert_eq!(setup.describe(Kind::Step08), "no timeouts or limits");
    }
}
