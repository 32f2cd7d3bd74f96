//! Helpers for the steps' integration tests (feature `testing`).
//!
//! Everything binds `127.0.0.1:0`, waits on events rather than sleeping,
//! and puts a deadline on what could hang.

use std::ffi::OsStr;
use std::fmt::Debug;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_rustls::rustls::{ClientConfig, ServerConfig};

use crate::certs::{CertSet, LAB_NAMES};
use crate::cli::Shutdown;
use crate::output::watch_lines;
use crate::tls;
use crate::{Error, HostPort};

/// How long any single test step may take before we call it hung.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Runs `fut`, panicking with `what` if it takes longer than [`DEADLINE`].
pub async fn deadline<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(DEADLINE, fut).await {
        Ok(output) => output,
        Err(_) => panic!("{what}: no result within {DEADLINE:?}"),
    }
}

/// A TLS connection to the server at `addr`, its handshake done, as a
/// client with `config` makes it; the server's certificate must name
/// 127.0.0.1 (the test certificates do). The sessions `config` keeps
/// outlive the connection: the same `config` again may resume one.
pub async fn tls_connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let name =
        tokio_rustls::rustls::pki_types::ServerName::try_from("127.0.0.1")
            .expect("an IP address");
    deadline("a TLS handshake", async {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
    })
    .await
}

/// Binds a fresh loopback listener on a port the OS picks.
pub async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding 127.0.0.1:0 always works")
}

/// A step's `run` future (or `lb`'s, which returns what it drained:
/// `T`), started in-process on `127.0.0.1:0`. Dropping it aborts the
/// task.
pub struct RunningStep<T = ()> {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<T, Error>>,
}

impl<T: Send + 'static> RunningStep<T> {
    /// Starts `run(listener, shutdown)` on a fresh port.
    pub async fn start<F, Fut>(run: F) -> RunningStep<T>
    where
        F: FnOnce(TcpListener, Shutdown) -> Fut,
        Fut: Future<Output = Result<T, Error>> + Send + 'static,
    {
        let listener = listener().await;
        let addr = listener.local_addr().expect("bound listener has an addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown: Shutdown = Box::pin(async move {
            let _ = stopped.await;
        });
        let task = tokio::spawn(run(listener, shutdown));
        RunningStep {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// Fires the shutdown signal (as SIGTERM does) without waiting.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Fires the shutdown signal and waits for `run` to return.
    pub async fn stop(mut self) -> Result<T, Error> {
        self.begin_shutdown();
        let task = &mut self.task;
        deadline("step to stop", task)
            .await
            .expect("the step's task did not panic")
    }

    /// Whether `run` has returned (it should not while serving).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl<T> Drop for RunningStep<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A CA and a server certificate it signed, made for one test in a
/// temporary folder (never the learner's `certs/`), deleted on drop.
pub struct TestCerts {
    dir: tempfile::TempDir,
}

impl TestCerts {
    /// A set for the lab's names: `localhost`, `127.0.0.1`, `::1`.
    pub fn new() -> TestCerts {
        TestCerts::for_names(&LAB_NAMES)
    }

    /// A set whose server certificate is valid for `names` only, e.g.
    /// `["other.test"]` for a name mismatch.
    pub fn for_names(names: &[&str]) -> TestCerts {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let names: Vec<String> = names.iter().map(|&n| n.into()).collect();
        CertSet::generate(&names)
            .and_then(|set| set.write_to(dir.path()))
            .expect("test certificates are made and written");
        TestCerts { dir }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir().join(tls::CA_CERT_FILE)
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir().join(tls::SERVER_CERT_FILE)
    }

    pub fn key_path(&self) -> PathBuf {
        self.dir().join(tls::SERVER_KEY_FILE)
    }

    /// Presents this set's server certificate.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        tls::server_config(&self.cert_path(), &self.key_path())
            .expect("the test certificate loads")
    }

    /// Trusts this set's CA only.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        tls::client_config(&self.ca_path()).expect("the test CA loads")
    }

    /// An HTTPS client that trusts this set's CA only and opens a new
    /// connection for every request.
    pub fn https_client(&self) -> reqwest::Client {
        http::https_client(&self.ca_path())
    }

    /// `--cert PATH --key PATH`: what a real binary serves TLS with.
    pub fn server_flags(&self) -> Vec<String> {
        let (cert, key) = (self.cert_path(), self.key_path());
        vec![
            "--cert".into(),
            cert.display().to_string(),
            "--key".into(),
            key.display().to_string(),
        ]
    }

    /// The same plus `--ca PATH`, for a binary that also verifies
    /// backends.
    pub fn all_flags(&self) -> Vec<String> {
        let mut flags = self.server_flags();
        flags.push("--ca".into());
        flags.push(self.ca_path().display().to_string());
        flags
    }
}

impl Default for TestCerts {
    fn default() -> Self {
        TestCerts::new()
    }
}

/// A real binary of the workspace, started as a child process with piped
/// output. Killed when dropped.
pub struct RunningBinary {
    /// The address from its `listening on ADDR` line.
    pub addr: SocketAddr,
    child: Child,
    stdout: watch::Receiver<String>,
    stderr: watch::Receiver<String>,
}

impl RunningBinary {
    /// Starts `program args...` and waits for its `listening on` line.
    /// The arguments may be `&str`s or `String`s.
    pub async fn start(
        program: &str,
        args: &[impl AsRef<OsStr>],
    ) -> RunningBinary {
        RunningBinary::start_with_env(program, args, &[]).await
    }

    /// [`RunningBinary::start`] with `env` set over the defaults
    /// (`RUST_LOG=info`, `NO_COLOR=1`).
    pub async fn start_with_env(
        program: &str,
        args: &[impl AsRef<OsStr>],
        env: &[(&str, &str)],
    ) -> RunningBinary {
        let mut child = Command::new(program)
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {program}: {err}"));
        let stdout = watch_lines(child.stdout.take().expect("stdout is piped"));
        let stderr = watch_lines(child.stderr.take().expect("stderr is piped"));
        let mut running = RunningBinary {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            child,
            stdout,
            stderr,
        };
        let output = running.wait_for_stdout("listening on ").await;
        running.addr = crate::cli::listening_addr(&output)
            .unwrap_or_else(|| panic!("no address in `{output}`"));
        running
    }

    /// Waits until stdout contains `needle`; returns all stdout so far.
    pub async fn wait_for_stdout(&mut self, needle: &str) -> String {
        wait_for(&mut self.stdout, needle, "stdout", &self.stderr).await
    }

    /// Waits for the stdout line `PREFIX ADDR` (`lb`'s `admin on ADDR`,
    /// say) and returns the address.
    pub async fn wait_for_address(&mut self, prefix: &str) -> SocketAddr {
        let stdout = self.wait_for_stdout(prefix).await;
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| {
                panic!("no address after `{prefix}` in {stdout}")
            })
    }

    /// Waits until stderr (the log) contains `needle`; returns it all.
    pub async fn wait_for_stderr(&mut self, needle: &str) -> String {
        let other = self.stdout.clone();
        wait_for(&mut self.stderr, needle, "stderr", &other).await
    }

    /// The process id, for tests that look at the process from outside
    /// (its memory in `/proc`, say); [`RunningBinary::signal`] signals it.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `signal` (`Signal::TERM`, say) to the process.
    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = self
            .child
            .id()
            .and_then(|id| rustix::process::Pid::from_raw(id as i32))
            .expect("the process has not been waited for");
        rustix::process::kill_process(pid, signal)
            .unwrap_or_else(|err| panic!("cannot signal {pid:?}: {err}"));
    }

    /// Waits (bounded by [`DEADLINE`]) for the process to exit.
    pub async fn wait(&mut self) -> std::process::ExitStatus {
        deadline("the process to exit", self.child.wait())
            .await
            .expect("the process can be waited for")
    }
}

/// Addresses as a step's `run` takes its backends.
pub fn host_ports(addrs: &[SocketAddr]) -> Vec<HostPort> {
    addrs.iter().map(|&addr| HostPort::from(addr)).collect()
}

/// Runs a binary to completion (for bad-flag tests): exit code and the
/// text of stdout and stderr.
pub async fn run_to_end(
    program: &str,
    args: &[impl AsRef<OsStr>],
) -> (i32, String, String) {
    let output = deadline(
        "binary to exit",
        Command::new(program)
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|err| panic!("cannot run {program}: {err}"));
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs `program args...`, which points at the missing file `missing`
/// (a path given on the command line), and checks that it stops as a
/// learner who mistyped a path should see: exit code 1, a message naming
/// the file and saying it does not exist, no advice to run
/// `scripts/gen-certs.sh` (which makes the lab's files, not that one), no
/// panic, and never a "listening on" line.
pub async fn check_missing_certificates(
    program: &str,
    args: &[impl AsRef<OsStr> + Debug],
    missing: &Path,
) {
    let (code, stdout, stderr) = run_to_end(program, args).await;
    let missing = missing.display().to_string();
    assert_eq!(code, 1, "{args:?}: {stderr}");
    let named = format!("{missing}: no such file");
    assert!(stderr.contains(&named), "{named} not said: {stderr}");
    assert!(!stderr.contains("scripts/gen-certs.sh"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stdout.contains("listening on"), "{stdout}");
}

async fn wait_for(
    stream: &mut watch::Receiver<String>,
    needle: &str,
    name: &str,
    other: &watch::Receiver<String>,
) -> String {
    let found = tokio::time::timeout(DEADLINE, async {
        let text = stream.wait_for(|text| text.contains(needle)).await;
        text.map(|text| text.clone())
    })
    .await;
    if let Ok(Ok(text)) = found {
        return text;
    }
    panic!(
        "`{needle}` never appeared on {name}.\n{name} so far:\n{}\n\
         the other stream:\n{}",
        stream.borrow().as_str(),
        other.borrow().as_str()
    )
}

/// Checks over HTTP that every step's tests share: what a client of the
/// balancer at `addr` sees.
pub mod http {
    use std::net::SocketAddr;

    use futures_util::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::deadline;
    use crate::pattern;

    /// A client that opens a new connection for every request, so that an
    /// L4 balancer makes a fresh choice each time.
    pub fn fresh_client() -> reqwest::Client {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("a plain client builds")
    }

    /// `https://127.0.0.1:PORT/` for the balancer at `addr`: the test
    /// certificate names that IP address.
    pub fn https_url(addr: SocketAddr) -> String {
        format!("https://127.0.0.1:{}/", addr.port())
    }

    /// An HTTPS client that trusts only the CA in `ca` (not the system's
    /// roots) and opens a new connection for every request.
    pub fn https_client(ca: &std::path::Path) -> reqwest::Client {
        https_client_builder(ca)
            .build()
            .expect("an HTTPS client builds")
    }

    /// The builder of [`https_client`], for tests that add to it (e.g.
    /// `resolve` a name the certificate lacks to the balancer).
    pub fn https_client_builder(
        ca: &std::path::Path,
    ) -> reqwest::ClientBuilder {
        let pem = std::fs::read(ca)
            .unwrap_or_else(|err| panic!("reading {}: {err}", ca.display()));
        let ca_cert = reqwest::Certificate::from_pem(&pem)
            .expect("the test CA is a PEM certificate");
        reqwest::Client::builder()
            .tls_certs_only([ca_cert])
            .pool_max_idle_per_host(0)
    }

    /// A client that keeps one connection alive across requests.
    pub fn keep_alive_client() -> reqwest::Client {
        reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .expect("a plain client builds")
    }

    /// GET `/?format=json` through `addr` on a new connection; the name of
    /// the backend that answered.
    pub async fn who_answers(addr: SocketAddr) -> String {
        who_answers_with(&fresh_client(), &format!("http://{addr}/")).await
    }

    /// GET `url` (an echo route) with `client`; the answering backend.
    pub async fn who_answers_with(
        client: &reqwest::Client,
        url: &str,
    ) -> String {
        let echo = echo_with(client, url).await;
        echo["backend"]
            .as_str()
            .expect("the echo names its backend")
            .to_owned()
    }

    /// GET `url` asking for JSON; the backend's echo.
    pub async fn echo_with(
        client: &reqwest::Client,
        url: &str,
    ) -> serde_json::Value {
        deadline("echo request", async {
            client
                .get(url)
                .header("accept", "application/json")
                .send()
                .await
                .unwrap_or_else(|err| panic!("GET {url}: {err:?}"))
                .error_for_status()
                .expect("the echo answers 200")
                .json::<serde_json::Value>()
                .await
                .expect("the echo is JSON")
        })
        .await
    }

    /// Pulls `/bytes/{len}` through `base` (`http://addr`) and checks every
    /// byte against the pattern as it streams in.
    pub async fn check_download(
        client: &reqwest::Client,
        base: &str,
        len: u64,
    ) {
        let url = format!("{base}/bytes/{len}");
        deadline("download", async {
            let response = client
                .get(&url)
                .send()
                .await
                .unwrap_or_else(|err| panic!("GET {url}: {err:?}"));
            assert_eq!(response.status(), 200, "GET {url}");
            let mut body = response.bytes_stream();
            let mut offset = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.expect("the body streams to the end");
                if let Some(at) = pattern::first_mismatch(offset, &chunk) {
                    panic!("download differs from the pattern at byte {at}");
                }
                offset += chunk.len() as u64;
            }
            assert_eq!(offset, len, "download length");
        })
        .await
    }

    /// POSTs `len` pattern bytes to `/echo` through `base`, streamed in
    /// 64 KiB chunks, and checks the echoed body byte for byte.
    pub async fn check_upload(client: &reqwest::Client, base: &str, len: u64) {
        const CHUNK: u64 = 64 * 1024;
        let chunks = futures_util::stream::iter((0..len.div_ceil(CHUNK)).map(
            move |i| {
                let offset = i * CHUNK;
                let size = CHUNK.min(len - offset) as usize;
                Ok::<_, std::io::Error>(bytes::Bytes::from(pattern::bytes(
                    offset, size,
                )))
            },
        ));
        let url = format!("{base}/echo");
        deadline("upload", async {
            let response = client
                .post(&url)
                .header("content-length", len)
                .body(reqwest::Body::wrap_stream(chunks))
                .send()
                .await
                .unwrap_or_else(|err| panic!("POST {url}: {err:?}"));
            assert_eq!(response.status(), 200, "POST {url}");
            let mut body = response.bytes_stream();
            let mut offset = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.expect("the echo streams to the end");
                if let Some(at) = pattern::first_mismatch(offset, &chunk) {
                    panic!("echo differs from what was sent at byte {at}");
                }
                offset += chunk.len() as u64;
            }
            assert_eq!(offset, len, "echoed length");
        })
        .await
    }

    /// Sends a request whose headers alone are `header_len` bytes (the
    /// first article read 1024 bytes once, and cut such requests off) and
    /// checks that the backend saw the whole header.
    pub async fn check_big_request(addr: SocketAddr, header_len: usize) {
        let filler: String = std::iter::repeat_n('x', header_len).collect();
        let request = format!(
            "GET /?format=json HTTP/1.1\r\nhost: {addr}\r\n\
             x-filler: {filler}\r\nconnection: close\r\n\r\n"
        );
        let answer = raw_exchange(addr, request.as_bytes(), false).await;
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 200"), "answer: {text:.200}");
        assert!(
            text.contains(&filler),
            "the backend did not see the whole {header_len}-byte header"
        );
    }

    /// Writes `request` on a new connection to `addr`, half-closes the
    /// write side if asked, and reads until the other side closes.
    pub async fn raw_exchange(
        addr: SocketAddr,
        request: &[u8],
        half_close: bool,
    ) -> Vec<u8> {
        deadline("raw exchange", async {
            let mut stream = TcpStream::connect(addr)
                .await
                .unwrap_or_else(|err| panic!("connect {addr}: {err}"));
            stream.write_all(request).await.expect("request is written");
            if half_close {
                stream.shutdown().await.expect("write side closes");
            }
            let mut answer = Vec::new();
            // A reset after the answer still leaves what was read.
            let _ = stream.read_to_end(&mut answer).await;
            answer
        })
        .await
    }

    /// POSTs `len` pattern bytes to `/echo` at `addr` on a new connection
    /// and half-closes, reading the answer all the while: the echo streams
    /// back as the body arrives, so writing everything first would fill
    /// both directions and hang. Returns the answer's head (status line
    /// and headers, as text) and its body, read until the other side
    /// closed.
    pub async fn post_echo_then_half_close(
        addr: SocketAddr,
        len: usize,
    ) -> (String, Vec<u8>) {
        deadline("echo after a half-close", async {
            let stream = TcpStream::connect(addr)
                .await
                .unwrap_or_else(|err| panic!("connect {addr}: {err}"));
            let (mut from_server, mut to_server) = stream.into_split();
            let writer = tokio::spawn(async move {
                let head = format!(
                    "POST /echo HTTP/1.1\r\nhost: {addr}\r\n\
                     content-length: {len}\r\n\r\n"
                );
                to_server.write_all(head.as_bytes()).await?;
                const CHUNK: usize = 64 * 1024;
                for offset in (0..len).step_by(CHUNK) {
                    let size = CHUNK.min(len - offset);
                    let chunk = pattern::bytes(offset as u64, size);
                    to_server.write_all(&chunk).await?;
                }
                // The request is whole: nothing more will be sent.
                to_server.shutdown().await
            });
            let mut answer = Vec::with_capacity(len + 1024);
            // A reset after the answer still leaves what was read.
            let _ = from_server.read_to_end(&mut answer).await;
            writer
                .await
                .expect("the writer did not panic")
                .expect("the whole request was sent");
            let end = answer
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .unwrap_or_else(|| {
                    panic!("no answer head in {} bytes", answer.len())
                });
            let head = String::from_utf8_lossy(&answer[..end + 4]).into_owned();
            (head, answer.split_off(end + 4))
        })
        .await
    }

    /// Connects to `addr` and reports whether the connection was closed
    /// without a single byte of answer (what a client of a balancer whose
    /// backend is down sees).
    pub async fn closed_without_answer(addr: SocketAddr) -> bool {
        let request = format!("GET / HTTP/1.1\r\nhost: {addr}\r\n\r\n");
        raw_exchange(addr, request.as_bytes(), false)
            .await
            .is_empty()
    }
}

/// A raw TCP backend that proves half-close works end to end: it reads
/// until the client's end-of-stream arrives (which only happens if every
/// hop passed the half-close on), then answers `got N bytes` followed by
/// the bytes themselves, and closes.
pub async fn half_close_backend() -> (SocketAddr, JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = listener().await;
    let addr = listener.local_addr().expect("bound listener has an addr");
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut received = Vec::new();
                if stream.read_to_end(&mut received).await.is_err() {
                    return;
                }
                let header = format!("got {} bytes\n", received.len());
                let _ = stream.write_all(header.as_bytes()).await;
                let _ = stream.write_all(&received).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (addr, task)
}

/// Sends `len` pattern bytes to a [`half_close_backend`] through `addr`,
/// half-closes, and checks the whole answer comes back.
pub async fn check_half_close(addr: SocketAddr, len: usize) {
    let sent = crate::pattern::bytes(0, len);
    let answer = http::raw_exchange(addr, &sent, true).await;
    let header = format!("got {len} bytes\n");
    assert!(
        answer.starts_with(header.as_bytes()),
        "answer starts {:?}",
        String::from_utf8_lossy(&answer[..answer.len().min(40)])
    );
    assert!(answer[header.len()..] == sent[..], "echoed bytes differ");
}
