//! Processes the tooling starts: each under a name, its stdout and stderr
//! in files of a work folder, stopped by PID (TERM, then KILL after 5 s)
//! when done, when the tool fails or panics ([`Procs`]'s `Drop`) and on
//! Ctrl-C or SIGTERM ([`stop_on_signals`]). Nothing outlives the tool.

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use crate::sys;

/// The PIDs started and not yet stopped, for the signal handler's thread.
static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Set once a signal came: the handler's thread is stopping everything
/// and will end the process with 128 + the signal.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// True once Ctrl-C or SIGTERM came. A failure seen after that (a load
/// whose process the terminal's Ctrl-C also stopped) is no failure of its
/// own: the caller should leave the exit to the signal handler, with
/// [`wait_for_signal_exit`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Waits (30 s at most) while the signal handler cleans up and exits.
pub fn wait_for_signal_exit() {
    std::thread::sleep(Duration::from_secs(30));
}

fn running_pids() -> std::sync::MutexGuard<'static, Vec<u32>> {
    // A thread that panicked holding the lock left a valid list.
    RUNNING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sends TERM to `pid`, waits up to 5 s for it to end, then KILL.
fn terminate(pid: u32) {
    let Some(target) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return;
    };
    if kill_process(target, Signal::TERM).is_err() {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while sys::running(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if sys::running(pid) {
        let _ = kill_process(target, Signal::KILL);
    }
}

/// On SIGINT, SIGTERM or SIGHUP: stop every process started, remove
/// `work` (unless `keep`), say so on stderr and exit with 128 + the
/// signal's number. A second signal during that clean-up is ignored: it
/// is bounded (5 s a process) and must not be cut short.
pub fn stop_on_signals(tool: &'static str, work: PathBuf, keep: bool) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
            .expect("signal handlers can be installed");
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            INTERRUPTED.store(true, Ordering::SeqCst);
            eprintln!("{tool}: interrupted");
            let pids = running_pids().clone();
            for pid in pids {
                terminate(pid);
            }
            if keep {
                eprintln!("{tool}: kept {}", work.display());
            } else {
                let _ = fs::remove_dir_all(&work);
            }
            std::process::exit(128 + signal);
        }
    });
}

/// The processes one run started, by name.
pub struct Procs {
    dir: PathBuf,
    children: HashMap<String, Child>,
}

impl Procs {
    /// Processes whose output goes to files in `dir`.
    pub fn new(dir: &Path) -> Procs {
        Procs {
            dir: dir.to_path_buf(),
            children: HashMap::new(),
        }
    }

    pub fn out_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.out"))
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    /// Starts `command` as process `name`: stdin closed, stdout to
    /// `NAME.out`, stderr to `NAME.log`.
    pub fn start(
        &mut self,
        name: &str,
        command: &mut Command,
    ) -> Result<u32, String> {
        let create = |path: PathBuf| {
            File::create(&path)
                .map_err(|err| format!("{}: {err}", path.display()))
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(create(self.out_path(name))?)
            .stderr(create(self.log_path(name))?)
            .spawn()
            .map_err(|err| {
                format!("cannot start {:?}: {err}", command.get_program())
            })?;
        let pid = child.id();
        running_pids().push(pid);
        self.children.insert(name.to_owned(), child);
        Ok(pid)
    }

    pub fn pid(&self, name: &str) -> Option<u32> {
        self.children.get(name).map(Child::id)
    }

    /// True while process `name` runs.
    pub fn alive(&mut self, name: &str) -> bool {
        self.children
            .get_mut(name)
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// What process `name` wrote on stdout and stderr so far.
    pub fn output(&self, name: &str) -> String {
        let read = |path: PathBuf| fs::read_to_string(path).unwrap_or_default();
        read(self.out_path(name)) + &read(self.log_path(name))
    }

    /// Waits, at most `limit`, until `ready` says yes; fails if process
    /// `name` exits first (its output in the error) or time runs out.
    pub fn wait_for(
        &mut self,
        name: &str,
        what: &str,
        limit: Duration,
        mut ready: impl FnMut(&Procs) -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            // Alive first: a process that died on "address in use" must
            // not pass for ready because something else holds the port.
            if !self.alive(name) {
                return Err(format!(
                    "{name} exited before {what}; its output:\n{}",
                    self.output(name)
                ));
            }
            if ready(self) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{name}: not {what} after {} s",
                    limit.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until something listens on `port` (see [`Procs::wait_for`]).
    pub fn wait_port(&mut self, name: &str, port: u16) -> Result<(), String> {
        self.wait_for(
            name,
            &format!("listening on {port}"),
            Duration::from_secs(15),
            |_| sys::is_listening(port),
        )
    }

    /// Runs `command` as process `name` to its end, for at most `limit`
    /// (then it is stopped), and returns what it printed on stdout; its
    /// stderr is in `NAME.log`.
    pub fn run(
        &mut self,
        name: &str,
        command: &mut Command,
        limit: Duration,
    ) -> Result<String, String> {
        self.run_with_cpu(name, command, limit)
            .map(|(output, _)| output)
    }

    /// [`Procs::run`], and the CPU time (ns) the process was last seen to
    /// have used, read every 20 ms while it runs: it misses at most its
    /// last 20 ms, which for a load generator is its summary.
    pub fn run_with_cpu(
        &mut self,
        name: &str,
        command: &mut Command,
        limit: Duration,
    ) -> Result<(String, u64), String> {
        self.start(name, command)?;
        let pid = self.pid(name);
        let mut cpu_ns = 0;
        let deadline = Instant::now() + limit;
        while self.alive(name) {
            if let Some(pid) = pid {
                cpu_ns = cpu_ns.max(sys::cpu_ns(pid));
            }
            if Instant::now() >= deadline {
                self.stop(name);
                return Err(format!(
                    "{name} still running after {} s: stopped",
                    limit.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop(name);
        let output =
            fs::read_to_string(self.out_path(name)).unwrap_or_default();
        Ok((output, cpu_ns))
    }

    /// If process `name` has exited: forgets it and returns its exit
    /// code (`None` if a signal ended it); else `None`, and it stays.
    pub fn reap(&mut self, name: &str) -> Option<Option<i32>> {
        let child = self.children.get_mut(name)?;
        let status = child.try_wait().ok()??;
        let pid = child.id();
        self.children.remove(name);
        running_pids().retain(|&p| p != pid);
        Some(status.code())
    }

    /// Waits, at most `limit`, for process `name` to exit by itself, and
    /// reaps it: its exit code as [`Procs::reap`] gives it, or `None` if
    /// it still runs (it is left running).
    pub fn wait_exit(
        &mut self,
        name: &str,
        limit: Duration,
    ) -> Option<Option<i32>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(code) = self.reap(name) {
                return Some(code);
            }
            if !self.children.contains_key(name) || Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops every process whose name starts with `prefix`.
    pub fn stop_matching(&mut self, prefix: &str) {
        let names: Vec<String> = self
            .children
            .keys()
            .filter(|name| name.starts_with(prefix))
            .cloned()
            .collect();
        for name in names {
            self.stop(&name);
        }
    }

    /// Stops process `name` (TERM, then KILL after 5 s) and reaps it.
    pub fn stop(&mut self, name: &str) {
        if let Some(mut child) = self.children.remove(name) {
            let pid = child.id();
            terminate(pid);
            let _ = child.kill();
            let _ = child.wait();
            running_pids().retain(|&p| p != pid);
        }
    }

    pub fn stop_all(&mut self) {
        let names: Vec<String> = self.children.keys().cloned().collect();
        for name in names {
            self.stop(&name);
        }
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        self.stop_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_started_waited_for_and_stopped() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let mut procs = Procs::new(dir.path());
        let pid = procs
            .start(
                "talker",
                Command::new("sh")
                    .arg("-c")
                    .arg("echo 'listening on 127.0.0.1:9'; exec sleep 60"),
            )
            .expect("sh starts");
        let out = procs.out_path("talker");
        procs
            .wait_for("talker", "its line", Duration::from_secs(30), |_| {
                fs::read_to_string(&out)
                    .is_ok_and(|text| text == "listening on 127.0.0.1:9\n")
            })
            .expect("it says so");
        assert!(sys::running(pid));
        procs.stop("talker");
        assert!(!sys::running(pid));
        assert!(!running_pids().contains(&pid));
    }

    #[test]
    fn a_process_that_exits_is_an_error_with_its_output() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let mut procs = Procs::new(dir.path());
        procs
            .start(
                "quitter",
                Command::new("sh")
                    .arg("-c")
                    .arg("echo 'address in use' >&2"),
            )
            .expect("sh starts");
        let err = procs.wait_port("quitter", 1).unwrap_err();
        assert!(err.starts_with("quitter exited before listening on 1"));
        assert!(err.contains("address in use"), "{err}");
    }

    #[test]
    fn an_exit_is_reaped_with_its_code() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let mut procs = Procs::new(dir.path());
        procs
            .start("three", Command::new("sh").arg("-c").arg("exit 3"))
            .expect("sh starts");
        let code = procs.wait_exit("three", Duration::from_secs(30));
        assert_eq!(code, Some(Some(3)));
        assert_eq!(procs.pid("three"), None);
        procs
            .start("sleeper", Command::new("sleep").arg("60"))
            .expect("sleep starts");
        assert_eq!(procs.wait_exit("sleeper", Duration::ZERO), None);
        procs.stop_matching("sl");
        assert_eq!(procs.pid("sleeper"), None);
    }

    #[test]
    fn dropping_procs_stops_what_they_started() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let pid = {
            let mut procs = Procs::new(dir.path());
            procs
                .start("sleeper", Command::new("sleep").arg("60"))
                .expect("sleep starts")
        };
        assert!(!sys::running(pid));
    }
}
