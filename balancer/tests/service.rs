//! `lb` as a systemd service (issue 17, "Run it as a service"): what it
//! tells systemd through `NOTIFY_SOCKET` (here a Unix datagram socket the
//! test binds, as systemd does), the upgrade started by SIGUSR2, whose
//! new process reports itself with `MAINPID=` while clients go on being
//! served, and, with the feature `external-tests`
//! (scripts/test-service.sh), `lb` under Debian's
//! `systemd-socket-activate`, serving through the socket it was passed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use dummy_servers::testing::RunningBackend;
use lab_common::testing::http::who_answers;
use lab_common::testing::{RunningBinary, deadline};
use rustix::process::{Pid, Signal};
use tokio::net::UnixDatagram;

const LB: &str = env!("CARGO_BIN_EXE_lb");

/// The name a dummy backend answers with.
fn name(backend: &RunningBackend) -> String {
    format!("backend-{}", backend.addr.port())
}

/// The service manager's end of `NOTIFY_SOCKET`.
struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
}

impl NotifySocket {
    fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("binding the socket");
        NotifySocket { socket, path }
    }

    fn env(&self) -> (&'static str, &str) {
        ("NOTIFY_SOCKET", self.path.to_str().expect("a UTF-8 path"))
    }

    /// The next message `lb` sends.
    async fn next(&self, waiting_for: &str) -> String {
        let mut buffer = vec![0; 4096];
        let len = deadline(waiting_for, self.socket.recv(&mut buffer))
            .await
            .expect("a datagram");
        String::from_utf8(buffer[..len].to_vec()).expect("UTF-8")
    }

    /// The upgrade's `MAINPID=N` and `READY=1`: the new process.
    async fn new_main_process(&self) -> Adopted {
        let message = self.next("MAINPID= from the new process").await;
        let pid: i32 = message
            .strip_prefix("MAINPID=")
            .and_then(|rest| rest.strip_suffix("\nREADY=1\n"))
            .and_then(|pid| pid.parse().ok())
            .unwrap_or_else(|| {
                panic!("MAINPID=N and READY=1, not {message:?}")
            });
        Adopted(Pid::from_raw(pid).expect("a pid is not 0"))
    }

    /// Whether a message is waiting now.
    fn nothing_waiting(&self) -> Result<(), String> {
        let mut buffer = vec![0; 4096];
        match self.socket.try_recv(&mut buffer) {
            Ok(len) => Err(String::from_utf8_lossy(&buffer[..len]).into()),
            Err(_) => Ok(()),
        }
    }
}

/// A config file in `dir` for `backend`, on a port the OS picks, with
/// `more` appended.
fn write_config(dir: &Path, backend: SocketAddr, more: &str) -> String {
    let path = dir.join("lb.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\n\
             [timeouts]\ndrain = \"5s\"\n\
             {more}\n\
             [[backends]]\naddress = \"{backend}\"\n"
        ),
    )
    .expect("writing the config");
    path.display().to_string()
}

/// `RELOADING=1` and `MONOTONIC_USEC=` the time now, in microseconds
/// (systemd 253 wants both).
fn assert_reloading(message: &str) {
    let usec = message
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .and_then(|rest| rest.strip_suffix('\n'))
        .and_then(|usec| usec.parse::<u64>().ok());
    assert!(
        usec.is_some_and(|usec| usec > 0),
        "RELOADING=1 and MONOTONIC_USEC=N, not {message:?}"
    );
}

#[tokio::test]
async fn lb_tells_systemd_it_is_ready_reloading_and_stopping() {
    let backend = RunningBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let notify = NotifySocket::bind(dir.path());
    let config = write_config(dir.path(), backend.addr, "");
    let mut lb = RunningBinary::start_with_env(
        LB,
        &["--config", &config],
        &[notify.env()],
    )
    .await;
    assert_eq!(notify.next("READY=1 at start").await, "READY=1\n");
    assert_eq!(who_answers(lb.addr).await, name(&backend));

    lb.signal(Signal::HUP);
    assert_reloading(&notify.next("RELOADING=1").await);
    assert_eq!(notify.next("READY=1 after the reload").await, "READY=1\n");
    lb.wait_for_stderr("reloaded").await;

    // A reload that is refused ends with READY=1 too.
    std::fs::write(&config, "listen = 7\n").unwrap();
    lb.signal(Signal::HUP);
    assert_reloading(&notify.next("RELOADING=1, refused").await);
    assert_eq!(notify.next("READY=1, refused").await, "READY=1\n");
    lb.wait_for_stderr("reload refused").await;
    assert_eq!(who_answers(lb.addr).await, name(&backend));

    lb.signal(Signal::TERM);
    assert_eq!(notify.next("STOPPING=1").await, "STOPPING=1\n");
    assert!(lb.wait().await.success());
}

/// A process the test did not start (the upgrade's new one, started by
/// `lb`): killed if the test ends before it does.
struct Adopted(Pid);

impl Adopted {
    /// Whether the process has exited. It is no child of the test's, so
    /// it cannot be waited for: once its parent has exited, init reaps
    /// it, and until then it is a zombie (`Z` in /proc/PID/stat).
    fn gone(&self) -> bool {
        match std::fs::read_to_string(format!("/proc/{}/stat", self.0)) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z')),
        }
    }
}

impl Adopted {
    /// SIGTERM, then `STOPPING=1` and the process's end.
    async fn stop(&self, notify: &NotifySocket) {
        rustix::process::kill_process(self.0, Signal::TERM).unwrap();
        assert_eq!(
            notify.next("STOPPING=1 from the new process").await,
            "STOPPING=1\n"
        );
        // Polled: the test cannot wait for a process it did not start.
        deadline("the new process to exit", async {
            for _ in 0..10_000 {
                if self.gone() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("the new process still runs");
        })
        .await;
    }
}

impl Drop for Adopted {
    fn drop(&mut self) {
        if !self.gone() {
            let _ = rustix::process::kill_process(self.0, Signal::KILL);
        }
    }
}

#[tokio::test]
async fn sigusr2_upgrades_and_the_new_process_says_mainpid() {
    let backend = RunningBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let notify = NotifySocket::bind(dir.path());
    let socket = dir.path().join("upgrade.sock");
    let config = write_config(
        dir.path(),
        backend.addr,
        &format!("[upgrade]\nsocket = \"{}\"\n", socket.display()),
    );
    let mut old = RunningBinary::start_with_env(
        LB,
        &["--config", &config],
        &[notify.env()],
    )
    .await;
    let old_pid = old.id().expect("running");
    assert_eq!(notify.next("READY=1 at start").await, "READY=1\n");
    let addr = old.addr;

    // Clients, one connection each, all through the upgrade.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let expected = name(&backend);
    let clients = tokio::spawn({
        let (stop, served) = (stop.clone(), served.clone());
        async move {
            for _ in 0..100_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                assert_eq!(who_answers(addr).await, expected);
                served.fetch_add(1, Ordering::SeqCst);
            }
        }
    });

    old.signal(Signal::USR2);
    let new = notify.new_main_process().await;
    assert_ne!(new.0.as_raw_pid() as u32, old_pid, "a new process");
    let log = old.wait_for_stderr("upgrade: took over").await;
    assert!(old.wait().await.success(), "the old process exits 0");
    // The old one drained because it was upgraded, not stopped.
    if let Err(message) = notify.nothing_waiting() {
        panic!("the old process said {message:?} after the upgrade");
    }
    let before = served.load(Ordering::SeqCst);
    // A few clients that only the new process can have served.
    deadline("clients served by the new process", async {
        while served.load(Ordering::SeqCst) < before + 20 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    deadline("the clients", clients)
        .await
        .expect("no client failed");
    eprintln!(
        "{} clients served across the SIGUSR2 upgrade, 0 failed",
        served.load(Ordering::SeqCst)
    );
    assert!(log.contains("SIGUSR2: started"), "{log}");

    new.stop(&notify).await;
}

/// `lb` under Debian's `systemd-socket-activate`, which binds the ports,
/// waits for the first client, and then starts `lb` (the same process:
/// it execs) with the sockets from descriptor 3 on and `LISTEN_FDS`.
#[cfg(feature = "external-tests")]
mod activated {
    use std::net::SocketAddr;
    use std::process::Stdio;

    use lab_common::output::watch_lines;
    use lab_common::testing::deadline;
    use rustix::process::{Pid, Signal};
    use tokio::process::Child;
    use tokio::sync::watch;

    use super::{LB, NotifySocket};

    pub struct Activated {
        /// The addresses systemd-socket-activate listens on, in order.
        pub addrs: Vec<SocketAddr>,
        child: Child,
        pub stdout: watch::Receiver<String>,
        stderr: watch::Receiver<String>,
    }

    impl Activated {
        /// `systemd-socket-activate -l ADDR...` (`sockets` of them) with
        /// `lb --config CONFIG`, once it listens.
        pub async fn start(
            sockets: usize,
            config: &str,
            notify: &NotifySocket,
        ) -> Activated {
            // It takes no port 0: ports that were free a moment ago,
            // tried again if someone took one meanwhile.
            for _ in 0..10 {
                let mut addrs = Vec::new();
                let mut held = Vec::new();
                for _ in 0..sockets {
                    let listener = lab_common::testing::listener().await;
                    addrs.push(listener.local_addr().expect("bound"));
                    held.push(listener);
                }
                drop(held);
                let mut command =
                    tokio::process::Command::new("systemd-socket-activate");
                for addr in &addrs {
                    command.arg("-l").arg(addr.to_string());
                }
                let mut child = command
                    // It passes on only what -E names of its environment.
                    .args(["-E", "NO_COLOR=1", "-E", "RUST_LOG=info"])
                    .arg("-E")
                    .arg(format!("NOTIFY_SOCKET={}", notify.env().1))
                    .args([LB, "--config", config])
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()
                    .expect("systemd-socket-activate runs (Debian's systemd)");
                let stdout = watch_lines(child.stdout.take().unwrap());
                let stderr = watch_lines(child.stderr.take().unwrap());
                let mut activated = Activated {
                    addrs,
                    child,
                    stdout,
                    stderr,
                };
                let last =
                    format!("Listening on {} ", activated.addrs[sockets - 1]);
                if activated.wait_for_stderr(&last).await.is_some() {
                    return activated;
                }
                let _ = activated.child.wait().await;
            }
            panic!("systemd-socket-activate found no free port in 10 tries");
        }

        /// Waits until stderr (its log, then lb's) contains `needle`;
        /// `None` if it ended first.
        pub async fn wait_for_stderr(
            &mut self,
            needle: &str,
        ) -> Option<String> {
            let stderr = &mut self.stderr;
            deadline(&format!("`{needle}` on stderr"), async {
                loop {
                    let seen = stderr.borrow_and_update().clone();
                    if seen.contains(needle) {
                        return Some(seen);
                    }
                    stderr.changed().await.ok()?;
                }
            })
            .await
        }

        pub fn signal(&self, signal: Signal) {
            let pid = self.child.id().expect("running") as i32;
            rustix::process::kill_process(
                Pid::from_raw(pid).expect("a pid is not 0"),
                signal,
            )
            .unwrap();
        }

        pub async fn wait(&mut self) -> std::process::ExitStatus {
            deadline("lb to exit", self.child.wait()).await.unwrap()
        }
    }
}

/// Under `systemd-socket-activate`, the first client starts `lb` and is
/// served through the socket it was passed; `lb` bound nothing itself.
/// Then an upgrade (SIGUSR2) hands that socket on to a new process like
/// a socket `lb` bound.
#[cfg(feature = "external-tests")]
#[tokio::test]
async fn lb_serves_through_the_socket_systemd_passes() {
    let backend = RunningBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let notify = NotifySocket::bind(dir.path());
    let socket = dir.path().join("upgrade.sock");
    let config = write_config(
        dir.path(),
        backend.addr,
        &format!("[upgrade]\nsocket = \"{}\"\n", socket.display()),
    );
    let mut lb = activated::Activated::start(1, &config, &notify).await;
    let addr = lb.addrs[0];

    // The first client starts lb, and waits in the socket's queue.
    assert_eq!(who_answers(addr).await, name(&backend));
    assert_eq!(who_answers(addr).await, name(&backend));
    let said = lb.wait_for_stderr("socket activation").await;
    let listening = format!("socket activation: listening on {addr}");
    assert!(said.is_some_and(|said| said.contains(&listening)));
    let stdout = lb.stdout.borrow().clone();
    assert!(stdout.contains(&format!("listening on {addr}")), "{stdout}");
    assert_eq!(notify.next("READY=1 at start").await, "READY=1\n");

    lb.signal(Signal::USR2);
    let new = notify.new_main_process().await;
    let status = lb.wait().await;
    assert!(status.success(), "the old process exits 0: {status}");
    assert_eq!(who_answers(addr).await, name(&backend));
    new.stop(&notify).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "nothing listens once the new process has stopped"
    );
}

/// With `[admin] listen` set, the second socket passed is the admin
/// listener; the address in the file is not bound.
#[cfg(feature = "external-tests")]
#[tokio::test]
async fn the_second_socket_passed_is_the_admin_listener() {
    let backend = RunningBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let notify = NotifySocket::bind(dir.path());
    // A port the test holds: lb must not bind it.
    let held = lab_common::testing::listener().await;
    let held_addr = held.local_addr().unwrap();
    let config = write_config(
        dir.path(),
        backend.addr,
        &format!("[admin]\nlisten = \"{held_addr}\"\n"),
    );
    let mut lb = activated::Activated::start(2, &config, &notify).await;
    let (addr, admin) = (lb.addrs[0], lb.addrs[1]);
    assert_eq!(who_answers(addr).await, name(&backend));
    let log = lb.wait_for_stderr("socket activation: admin on").await;
    assert!(log.is_some_and(|log| log.contains(&format!("admin on {admin}"))));
    let backends = reqwest::get(format!("http://{admin}/api/backends"))
        .await
        .expect("the admin API answers on the second socket");
    assert!(backends.status().is_success(), "{backends:?}");
    assert_eq!(notify.next("READY=1 at start").await, "READY=1\n");
    lb.signal(Signal::TERM);
    assert_eq!(notify.next("STOPPING=1").await, "STOPPING=1\n");
    assert!(lb.wait().await.success());
    drop(held);
}
