//! Running a command the way a reader's terminal does: `bash -c` in the
//! folder of the Markdown file, stdout and stderr on one stream in the
//! order they were written, its own process group so that "Ctrl-C" can
//! reach it alone, and every wait bounded.
//!
//! A terminal differs from a pipe in what some programs print. The walker
//! evens that out instead of faking a terminal: `curl` shows a progress
//! meter when its output is not a terminal, so it runs with a `.curlrc`
//! that says `no-progress-meter`; cargo's status lines (`Compiling`,
//! `Finished`, `Running`), which the texts leave out, are turned off with
//! `CARGO_TERM_QUIET`; `RUST_LOG` is removed so that every program logs
//! at its default level, as on a fresh shell.

use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};

/// How often a wait looks again. Waits poll a process or a buffer of
/// output; none of them is a delay in its own right.
const POLL: Duration = Duration::from_millis(20);

/// Where and how commands run.
pub struct Shell {
    dir: PathBuf,
    /// Holds the `.curlrc`; removed when the shell is dropped.
    curl_home: tempfile::TempDir,
}

impl Shell {
    /// Commands will run in `dir`.
    pub fn new(dir: &Path) -> io::Result<Shell> {
        let curl_home =
            tempfile::Builder::new().prefix("lab-walk-").tempdir()?;
        std::fs::write(
            curl_home.path().join(".curlrc"),
            "no-progress-meter\n",
        )?;
        Ok(Shell {
            dir: dir.to_owned(),
            curl_home,
        })
    }

    /// Starts `command` and collects what it prints.
    pub fn spawn(&self, command: &str) -> io::Result<Running> {
        let (reader, writer) = io::pipe()?;
        let mut bash = Command::new("bash");
        bash.arg("-c")
            .arg(command)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(writer.try_clone()?)
            .stderr(writer)
            .env_remove("RUST_LOG")
            .env("CARGO_TERM_QUIET", "true")
            .env("CARGO_TERM_COLOR", "never")
            .env("CURL_HOME", self.curl_home.path());
        // Its own process group: the walker's Ctrl-C goes to it alone,
        // and a Ctrl-C typed at the walker does not reach it (the walker
        // stops it itself, in order).
        std::os::unix::process::CommandExt::process_group(&mut bash, 0);
        let child = bash.spawn()?;
        // `bash` holds the write ends until dropped: without this, the
        // reader would never see the end of the stream.
        drop(bash);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let ended = Arc::new(AtomicBool::new(false));
        let (lines_in, ended_in) = (Arc::clone(&lines), Arc::clone(&ended));
        thread::spawn(move || {
            let mut reader = BufReader::new(reader);
            let mut line = Vec::new();
            // Ends at end of stream, which comes once every process that
            // holds the pipe (the command, anything it left running with
            // its output) has closed it, or on a read error.
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\n', '\r']).to_owned();
                lines_in.lock().expect("no reader panics").push(text);
                line.clear();
            }
            ended_in.store(true, Ordering::SeqCst);
        });
        Ok(Running {
            child,
            lines,
            ended,
            status: None,
        })
    }
}

/// A command started by [`Shell::spawn`].
pub struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    ended: Arc<AtomicBool>,
    status: Option<ExitStatus>,
}

/// Why a wait ended before what it waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gave {
    /// The deadline passed.
    Up,
    /// The walker was interrupted (Ctrl-C or SIGTERM).
    Interrupted,
}

impl Running {
    /// Everything printed so far, from line `from` on.
    pub fn lines_from(&self, from: usize) -> Vec<String> {
        let lines = self.lines.lock().expect("no reader panics");
        lines.get(from..).unwrap_or_default().to_vec()
    }

    /// How many lines it printed so far.
    pub fn line_count(&self) -> usize {
        self.lines.lock().expect("no reader panics").len()
    }

    /// Its exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Whether its output stream has ended: it and everything it started
    /// with that output have exited.
    pub fn output_ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }

    /// Waits for it to exit, then (a little) for the rest of its output.
    pub fn wait(
        &mut self,
        timeout: Duration,
        interrupted: &AtomicBool,
    ) -> Result<ExitStatus, Gave> {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.exited() {
                break status;
            }
            check(deadline, interrupted)?;
            thread::sleep(POLL);
        };
        // A process it left running may hold the stream open: take what
        // came, and do not wait for it.
        let rest = Instant::now() + Duration::from_secs(2);
        while !self.output_ended() && Instant::now() < rest {
            thread::sleep(POLL);
        }
        Ok(status)
    }

    /// Waits until `done(lines printed since line from)` holds, or it has
    /// exited and its output ended, or the deadline passes.
    pub fn wait_for(
        &mut self,
        from: usize,
        timeout: Duration,
        interrupted: &AtomicBool,
        mut done: impl FnMut(&[String]) -> bool,
    ) -> Result<bool, Gave> {
        let deadline = Instant::now() + timeout;
        loop {
            // Looked at before the lines: output that ended before this
            // look is all in the lines read next.
            let over = self.exited().is_some() && self.output_ended();
            if done(&self.lines_from(from)) {
                return Ok(true);
            }
            if over {
                return Ok(false);
            }
            check(deadline, interrupted)?;
            thread::sleep(POLL);
        }
    }

    /// What a terminal's Ctrl-C does: SIGINT to the process group.
    pub fn interrupt(&mut self) {
        self.signal(Signal::INT);
    }

    /// SIGKILL to its process group, and waits for it (bounded).
    pub fn kill(&mut self) {
        self.signal(Signal::KILL);
        let never = AtomicBool::new(false);
        let _ = self.wait(Duration::from_secs(5), &never);
    }

    /// Ctrl-C, then SIGKILL if it is still there after `grace`.
    /// Whether it stopped on Ctrl-C.
    pub fn stop(&mut self, grace: Duration) -> bool {
        if self.exited().is_some() {
            return true;
        }
        self.interrupt();
        let never = AtomicBool::new(false);
        if self.wait(grace, &never).is_ok() {
            return true;
        }
        self.kill();
        false
    }

    fn signal(&mut self, signal: Signal) {
        if self.exited().is_some() {
            return;
        }
        // The group is the child's pid (process_group(0)). It may have
        // exited just now: then there is nothing to signal.
        let _ = kill_process_group(Pid::from_child(&self.child), signal);
    }
}

impl Drop for Running {
    /// Nothing the walker started outlives it.
    fn drop(&mut self) {
        if self.exited().is_none() {
            self.kill();
        }
    }
}

fn check(deadline: Instant, interrupted: &AtomicBool) -> Result<(), Gave> {
    if interrupted.load(Ordering::SeqCst) {
        Err(Gave::Interrupted)
    } else if Instant::now() >= deadline {
        Err(Gave::Up)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell() -> (tempfile::TempDir, Shell) {
        let dir = tempfile::tempdir().unwrap();
        let shell = Shell::new(dir.path()).unwrap();
        (dir, shell)
    }

    const LONG: Duration = Duration::from_secs(20);

    #[test]
    fn stdout_and_stderr_arrive_in_order_and_the_status_is_kept() {
        let (_dir, shell) = shell();
        let never = AtomicBool::new(false);
        let mut run = shell
            .spawn("echo one; echo two >&2; echo three; pwd; exit 3")
            .unwrap();
        let status = run.wait(LONG, &never).unwrap();
        assert_eq!(status.code(), Some(3));
        let lines = run.lines_from(0);
        assert_eq!(lines[..3], ["one", "two", "three"]);
        assert!(
            lines[3].starts_with(&std::env::temp_dir().display().to_string())
        );
    }

    #[test]
    fn the_environment_is_a_fresh_shells() {
        let (_dir, shell) = shell();
        let never = AtomicBool::new(false);
        let mut run = shell
            .spawn("echo ${RUST_LOG:-unset} $CARGO_TERM_QUIET; cat $CURL_HOME/.curlrc")
            .unwrap();
        run.wait(LONG, &never).unwrap();
        assert_eq!(run.lines_from(0), ["unset true", "no-progress-meter"]);
    }

    #[test]
    fn ctrl_c_reaches_the_command_and_it_can_answer() {
        let (_dir, shell) = shell();
        let never = AtomicBool::new(false);
        // `sleep & wait`, not a bare `sleep`: bash runs a trap only once a
        // foreground child ends, and may drop a SIGINT that arrives as a
        // child exits on its own (it failed here once under load), while
        // the `wait` builtin returns at once for a trapped signal.
        let mut run = shell
            .spawn(
                "trap 'echo got Ctrl-C; exit 0' INT; echo ready; \
                 while :; do sleep 0.05 & wait $!; done",
            )
            .unwrap();
        let ready = run
            .wait_for(0, LONG, &never, |lines| {
                lines.iter().any(|l| l == "ready")
            })
            .unwrap();
        assert!(ready);
        assert!(run.stop(LONG));
        assert_eq!(run.lines_from(0), ["ready", "got Ctrl-C"]);
    }

    #[test]
    fn a_command_that_ignores_ctrl_c_is_killed_after_the_grace() {
        let (_dir, shell) = shell();
        let never = AtomicBool::new(false);
        let mut run = shell
            .spawn("trap '' INT; echo ready; while :; do sleep 0.05; done")
            .unwrap();
        run.wait_for(0, LONG, &never, |lines| !lines.is_empty())
            .unwrap();
        assert!(!run.stop(Duration::from_millis(300)));
        assert!(run.exited().is_some());
    }

    #[test]
    fn a_wait_gives_up_at_its_deadline_or_when_interrupted() {
        let (_dir, shell) = shell();
        let mut run = shell.spawn("sleep 30").unwrap();
        let never = AtomicBool::new(false);
        let short = Duration::from_millis(100);
        assert_eq!(run.wait(short, &never), Err(Gave::Up));
        let now = AtomicBool::new(true);
        assert_eq!(run.wait(LONG, &now), Err(Gave::Interrupted));
        let found = run.wait_for(0, short, &never, |lines| !lines.is_empty());
        assert_eq!(found, Err(Gave::Up));
        drop(run); // killed, not left behind
    }

    #[test]
    fn waiting_for_output_stops_when_the_command_has_ended() {
        let (_dir, shell) = shell();
        let never = AtomicBool::new(false);
        let mut run = shell.spawn("echo only").unwrap();
        let found = run.wait_for(0, LONG, &never, |lines| lines.len() > 1);
        assert_eq!(found, Ok(false));
    }
}
