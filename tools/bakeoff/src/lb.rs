//! `lb`, the program under test: a config file written for the run, the
//! process started on `127.0.0.1:0`, its `listening on` line awaited,
//! the file rewritten and SIGHUP sent for a reload, and the process
//! stopped by its pid with SIGTERM (it drains, then exits), or killed if
//! it does not. A run that fails half-way drops its
//! [`Lb`], and the child is killed then too (`kill_on_drop`).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use lab_common::output::watch_lines;
use rustix::process::{Pid, Signal, kill_process};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::{Algorithm, Error};

/// How long `lb` may take to say where it listens, and to exit once
/// told to.
const START_LIMIT: Duration = Duration::from_secs(30);
const STOP_LIMIT: Duration = Duration::from_secs(5);
/// How long a reload may take to be logged, done or refused.
const RELOAD_LIMIT: Duration = Duration::from_secs(5);

/// What `lb` logs: warnings, and its reloads' outcomes, which
/// [`Lb::reload`] waits for.
const LOG_FILTER: &str = "warn,balancer::reload=info";

/// The start of the lines `lb` logs when a reload is done or refused.
const RELOADED: &str = "reloaded: ";
const REFUSED: &str = "reload refused: ";

/// `lb`'s active health checks for a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// None: the backends are never taken out.
    Off,
    /// `GET /health` every `interval`; two failures in a row take a
    /// backend out, two passes bring it back.
    Http { interval: Duration },
}

/// What `lb` runs with.
#[derive(Clone, Debug)]
pub struct Setup {
    pub algorithm: Algorithm,
    /// Seeds `random` and `power-of-two` (lb's `seed` key).
    pub seed: u64,
    pub backends: Vec<SocketAddr>,
    pub health: Health,
}

impl Setup {
    /// `lb`'s config file for this setup (see balancer/lb.toml for every
    /// key). A short drain: the clients have finished when it stops.
    pub fn toml(&self) -> String {
        let mut toml = format!(
            "listen = \"127.0.0.1:0\"\nalgorithm = \"{}\"\nseed = {}\n",
            self.algorithm, self.seed
        );
        toml.push_str("\n[timeouts]\ndrain = \"1s\"\n\n[health]\n");
        match self.health {
            Health::Off => toml.push_str("kind = \"off\"\n"),
            Health::Http { interval } => {
                let interval = interval.as_millis();
                let _ = write!(
                    toml,
                    "kind = \"http\"\npath = \"/health\"\n\
                     interval = \"{interval}ms\"\n\
                     timeout = \"{}ms\"\nrise = 2\nfall = 2\n",
                    (interval / 2).max(1)
                );
            }
        }
        for backend in &self.backends {
            let _ = write!(toml, "\n[[backends]]\naddress = \"{backend}\"\n");
        }
        toml
    }
}

/// `lb`, running.
pub struct Lb {
    /// Where clients connect.
    pub addr: SocketAddr,
    pub pid: u32,
    child: Child,
    log: watch::Receiver<String>,
    /// The config file, rewritten by a reload.
    config: PathBuf,
    /// Holds the config file while `lb` runs.
    _dir: tempfile::TempDir,
}

impl Lb {
    /// Starts `program` with `setup` and waits for its `listening on`
    /// line.
    pub async fn start(program: &Path, setup: &Setup) -> Result<Lb, Error> {
        let dir = tempfile::tempdir()
            .map_err(|err| format!("a temporary folder: {err}"))?;
        let config = dir.path().join("lb.toml");
        std::fs::write(&config, setup.toml())
            .map_err(|err| format!("writing {}: {err}", config.display()))?;
        let mut child = Command::new(program)
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", LOG_FILTER)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| {
                format!("cannot start {}: {err}", program.display())
            })?;
        let pid = child.id().ok_or("lb ended as soon as it started")?;
        let stdout = watch_lines(child.stdout.take().ok_or("no stdout")?);
        let log = watch_lines(child.stderr.take().ok_or("no stderr")?);
        let addr = listening(stdout, &log, program).await?;
        Ok(Lb {
            addr,
            pid,
            child,
            log,
            config,
            _dir: dir,
        })
    }

    /// Rewrites the config file for `setup` and sends SIGHUP, as an
    /// operator reloads `lb`; returns once `lb` has logged the reload
    /// done, or an error if it refused it or said nothing.
    pub async fn reload(&mut self, setup: &Setup) -> Result<(), Error> {
        let outcomes = |log: &str| {
            log.matches(RELOADED).count() + log.matches(REFUSED).count()
        };
        let before = outcomes(&self.log.borrow());
        std::fs::write(&self.config, setup.toml()).map_err(|err| {
            format!("writing {}: {err}", self.config.display())
        })?;
        let pid = Pid::from_raw(self.pid as i32).ok_or("lb has no pid")?;
        kill_process(pid, Signal::HUP)
            .map_err(|err| format!("SIGHUP to lb (pid {pid}): {err}"))?;
        let logged = self.log.wait_for(|log| outcomes(log) > before);
        let log = match tokio::time::timeout(RELOAD_LIMIT, logged).await {
            Ok(Ok(log)) => log.clone(),
            Ok(Err(_)) => return Err("lb exited on SIGHUP".into()),
            Err(_) => {
                return Err(format!(
                    "lb logged no reload within {RELOAD_LIMIT:?} of SIGHUP"
                )
                .into());
            }
        };
        // This reload's outcome is the last one logged.
        let last = log
            .lines()
            .rev()
            .find(|line| line.contains(RELOADED) || line.contains(REFUSED));
        match last {
            Some(line) if line.contains(REFUSED) => {
                Err(format!("lb refused the reload: {line}").into())
            }
            _ => Ok(()),
        }
    }

    /// Sends SIGTERM and waits for `lb` to exit; kills it if it has not
    /// within a few seconds. An exit other than 0 is an error that
    /// quotes its log.
    pub async fn stop(mut self) -> Result<(), Error> {
        let pid = Pid::from_raw(self.pid as i32).ok_or("lb has no pid")?;
        kill_process(pid, Signal::TERM)
            .map_err(|err| format!("SIGTERM to lb (pid {pid}): {err}"))?;
        match tokio::time::timeout(STOP_LIMIT, self.child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(format!(
                "lb (pid {pid}) exited with {status}; its log:\n{}",
                *self.log.borrow()
            )
            .into()),
            Ok(Err(err)) => Err(format!("waiting for lb: {err}").into()),
            Err(_) => {
                let _ = self.child.kill().await;
                Err(format!(
                    "lb (pid {pid}) was still running {STOP_LIMIT:?} after \
                     SIGTERM, and was killed"
                )
                .into())
            }
        }
    }
}

async fn listening(
    mut stdout: watch::Receiver<String>,
    log: &watch::Receiver<String>,
    program: &Path,
) -> Result<SocketAddr, Error> {
    let seen = tokio::time::timeout(
        START_LIMIT,
        stdout.wait_for(|text| text.contains("listening on ")),
    )
    .await;
    let text = match seen {
        Ok(Ok(text)) => text.clone(),
        // The sender is gone: lb exited before it listened.
        Ok(Err(_)) | Err(_) => {
            // Its log may still be on its way through the pipe.
            let mut log = log.clone();
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                log.wait_for(|_| false),
            )
            .await;
            let log = log.borrow();
            let log = match log.trim_end() {
                "" => "it logged nothing".to_owned(),
                text => format!("its log:\n{text}"),
            };
            return Err(format!(
                "{} did not say where it listens; {log}",
                program.display()
            )
            .into());
        }
    };
    lab_common::cli::listening_addr(&text)
        .ok_or_else(|| format!("no address in lb's {text:?}").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_names_every_backend_and_the_checks() {
        let setup = Setup {
            algorithm: Algorithm::PowerOfTwo,
            seed: 7,
            backends: vec![
                "127.0.0.1:4001".parse().unwrap(),
                "127.0.0.1:4002".parse().unwrap(),
            ],
            health: Health::Http {
                interval: Duration::from_millis(200),
            },
        };
        let toml = setup.toml();
        assert!(toml.starts_with(
            "listen = \"127.0.0.1:0\"\nalgorithm = \"power-of-two\"\n\
             seed = 7\n"
        ));
        assert!(toml.contains(
            "kind = \"http\"\npath = \"/health\"\ninterval = \"200ms\"\n\
             timeout = \"100ms\"\n"
        ));
        assert_eq!(toml.matches("[[backends]]").count(), 2);
        assert!(toml.ends_with("address = \"127.0.0.1:4002\"\n"));
    }
}
