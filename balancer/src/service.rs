//! `lb` as a systemd service (`balancer/lb.service`): what it tells the
//! service manager, the listening sockets the manager may hand it, and
//! the upgrade started from inside the service on SIGUSR2.
//!
//! - Notifications (`Type=notify`): `READY=1` once `lb` accepts,
//!   `RELOADING=1` then `READY=1` around each reload, `STOPPING=1` when
//!   the drain after SIGTERM starts, and, from a process that took over
//!   through `--upgrade`, `MAINPID=` its own pid: the service's main
//!   process is the new one from then on. They go to the datagram socket
//!   named by `NOTIFY_SOCKET`; without it (`lb` started by hand) they do
//!   nothing.
//! - Socket activation (`lb.socket`): when systemd passes listening
//!   sockets (`LISTEN_FDS`, `LISTEN_PID`), the first is the main
//!   listener, and the second, if `[admin] listen` is set, the admin
//!   listener; `lb` binds neither address then.
//! - SIGUSR2: the running `lb` starts its own executable again with the
//!   same arguments and `--upgrade`, as nginx does, so that the new
//!   process is in the service's cgroup and can become its main process.
//!
//! ```text
//! systemd-socket-activate -l 127.0.0.1:3000 target/release/lb
//! kill -USR2 $(pidof lb)     # with an [upgrade] socket in the config
//! ```

use std::ffi::OsString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};

use sd_notify::NotifyState;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

/// Tells the service manager `states`, if there is one. A manager that
/// cannot be told is said in the log and changes nothing else: `lb`
/// serves either way.
fn notify(states: &[NotifyState<'_>]) {
    if let Err(err) = sd_notify::notify(states) {
        warn!("cannot tell systemd (NOTIFY_SOCKET): {err}");
    }
}

/// Where this process is in the service's life, so that it tells systemd
/// only what is true of the service: a reload (by etcd, the file's
/// watch, SIGHUP) may run before `lb` listens, in a new process that has
/// not taken over yet, or in an old one draining after an upgrade, and
/// none of these may say `READY=1` or `RELOADING=1` for the service.
static PHASE: AtomicU8 = AtomicU8::new(STARTING);
/// Not serving yet: nothing to tell.
const STARTING: u8 = 0;
/// The service's main process, accepting clients.
const SERVING: u8 = 1;
/// Draining after SIGTERM, or after handing the listeners over.
const LEAVING: u8 = 2;

/// `READY=1`: `lb` accepts clients.
pub fn ready() {
    PHASE.store(SERVING, Ordering::SeqCst);
    notify(&[NotifyState::Ready]);
}

/// `RELOADING=1`, if this process is serving: a reload has started;
/// [`reloaded`] ends it, whatever its outcome. With `MONOTONIC_USEC=` the
/// time it started, which systemd 253 and later want with it
/// (`Type=notify-reload` fails the reload without); older ones ignore it.
pub fn reloading() {
    if PHASE.load(Ordering::SeqCst) != SERVING {
        return;
    }
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now]),
        Err(_) => notify(&[NotifyState::Reloading]),
    }
}

/// `READY=1` at a reload's end, if this process is serving.
pub fn reloaded() {
    if PHASE.load(Ordering::SeqCst) == SERVING {
        notify(&[NotifyState::Ready]);
    }
}

/// `STOPPING=1`: the drain has started; `lb` exits when it ends.
pub fn stopping() {
    PHASE.store(LEAVING, Ordering::SeqCst);
    notify(&[NotifyState::Stopping]);
}

/// This process has handed its listeners to a new one, which is the
/// service's main process now: nothing more to tell.
pub fn handed_over() {
    PHASE.store(LEAVING, Ordering::SeqCst);
}

/// `MAINPID=` this process and `READY=1`, in one message: a process that
/// took the listeners over is the service's main process now. systemd
/// takes it from a process other than the main one only with
/// `NotifyAccess=all`.
pub fn took_over() {
    PHASE.store(SERVING, Ordering::SeqCst);
    notify(&[NotifyState::MainPid(std::process::id()), NotifyState::Ready]);
}

/// A process that said [`took_over`] and then failed before the old one
/// let go: the old one, still serving, is the main process again, so
/// that systemd does not take this exit for the service's end.
pub fn give_back() {
    PHASE.store(LEAVING, Ordering::SeqCst);
    notify(&[NotifyState::MainPid(std::os::unix::process::parent_id())]);
}

/// The listening sockets systemd passed (socket activation).
#[derive(Debug)]
pub struct Activated {
    pub main: TcpListener,
    /// The second socket, taken only when `[admin] listen` is set.
    pub admin: Option<TcpListener>,
}

/// The sockets systemd passed to this process, if any: `LISTEN_FDS`
/// counts them, from descriptor 3, and `LISTEN_PID` must be this
/// process (the variables are removed once read, so that a process `lb`
/// starts does not take them for its own). With `admin` set the second
/// socket is the admin listener's; without it a second socket is left
/// unused, and said so. A socket that is not a listening TCP socket is
/// refused.
pub fn activated(admin: bool) -> Result<Option<Activated>, String> {
    // listenfd holds the one `unsafe` step (a descriptor number made a
    // socket) that the workspace forbids. It removes the variables with
    // `std::env::remove_var`, which is sound only while no other thread
    // reads the environment: called first thing in `start`, before any
    // task is spawned (the store's, the health checks'), so tokio's
    // threads are idle.
    let mut passed = listenfd::ListenFd::from_env();
    let count = passed.len();
    if count == 0 {
        return Ok(None);
    }
    let take = |passed: &mut listenfd::ListenFd, index: usize| {
        let listener = passed
            .take_tcp_listener(index)
            .map_err(|err| {
                format!(
                    "socket activation: socket {} of {count} (descriptor \
                     {}): {err}; lb takes TCP sockets only",
                    index + 1,
                    index + 3
                )
            })?
            .ok_or("socket activation: a socket taken twice")?;
        listener
            .set_nonblocking(true)
            .map_err(|err| format!("socket activation: {err}"))?;
        Ok::<_, String>(listener)
    };
    let main = take(&mut passed, 0)?;
    let admin = if admin && count > 1 {
        Some(take(&mut passed, 1)?)
    } else {
        None
    };
    let used = 1 + usize::from(admin.is_some());
    // The others are closed, not kept: an unused listening socket would
    // hold its port, and pass on to an upgrade's new process.
    for index in used..count {
        drop(passed.take_tcp_listener(index));
    }
    if count > used {
        warn!(
            "socket activation: {count} sockets passed, {used} used (the \
             first is the listener, the second the admin listener when \
             [admin] listen is set)"
        );
    }
    Ok(Some(Activated { main, admin }))
}

/// On each SIGUSR2 when the config has an `[upgrade] socket`: starts
/// this executable again with the same arguments and `--upgrade`, which
/// takes the listeners over; its output goes where this one's goes. One
/// at a time: a SIGUSR2 while the last one started still runs (it
/// failed, and is about to exit, or it took over, and this process is
/// draining) is logged and ignored. Without an upgrade socket SIGUSR2
/// is only logged. Installed before `lb` says it listens.
pub fn upgrade_on_sigusr2(
    upgrade_socket: Option<PathBuf>,
) -> Result<(), String> {
    let mut usr2 = signal(SignalKind::user_defined2())
        .map_err(|err| format!("cannot handle SIGUSR2: {err}"))?;
    // The pid of the new process last started while it runs; 0: none.
    let running = Arc::new(AtomicU32::new(0));
    tokio::spawn(async move {
        while usr2.recv().await.is_some() {
            let Some(socket) = &upgrade_socket else {
                warn!(
                    "SIGUSR2: no upgrade without an [upgrade] socket in the \
                     config; nothing done"
                );
                continue;
            };
            let pid = running.load(Ordering::SeqCst);
            if pid != 0 {
                warn!(
                    "SIGUSR2: the new process started before (pid {pid}) \
                     still runs; nothing done"
                );
                continue;
            }
            let mut child = match start_upgrade(socket) {
                Ok(child) => child,
                Err(err) => {
                    warn!("SIGUSR2: {err}; still serving");
                    continue;
                }
            };
            let pid = child.id().unwrap_or_default();
            running.store(pid, Ordering::SeqCst);
            let running = running.clone();
            tokio::spawn(async move {
                // Ends here only if it exits while this process runs: it
                // failed (its own log says why), or it took over and
                // stopped before this one finished draining.
                match child.wait().await {
                    Ok(status) if !status.success() => warn!(
                        "upgrade: the new process (pid {pid}) exited: \
                         {status}"
                    ),
                    Ok(_) => {}
                    Err(err) => warn!(
                        "upgrade: cannot wait for the new process (pid \
                         {pid}): {err}"
                    ),
                }
                running.store(0, Ordering::SeqCst);
            });
        }
    });
    Ok(())
}

/// Starts the new process: the executable this one was started as (its
/// `argv[0]` when that is a path, so that a binary replaced there is
/// the one that runs; else the running one), the same arguments, and
/// `--upgrade`.
fn start_upgrade(socket: &Path) -> Result<tokio::process::Child, String> {
    let mut args = std::env::args_os();
    let argv0 = args.next().map(PathBuf::from);
    let program = match argv0 {
        Some(path) if path.components().count() > 1 => path,
        _ => std::env::current_exe()
            .map_err(|err| format!("cannot find my executable: {err}"))?,
    };
    let mut args: Vec<OsString> =
        args.filter(|arg| arg != "--upgrade").collect();
    args.push("--upgrade".into());
    let child = tokio::process::Command::new(&program)
        .args(&args)
        // Passed to this process, not to the next: it takes the sockets
        // from this one over the upgrade socket.
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDNAMES")
        .spawn()
        .map_err(|err| format!("cannot start {}: {err}", program.display()))?;
    info!(
        "SIGUSR2: started {} --upgrade (pid {}) to take over through {}",
        program.display(),
        child.id().unwrap_or_default(),
        socket.display()
    );
    Ok(child)
}
