//! The real `lb` binary: its flags, its config file, its signals.

use std::path::Path;

use dummy_servers::testing::{RunningBackend, addrs, backend_list};
use lab_common::testing::http::who_answers;
use lab_common::testing::{RunningBinary, run_to_end};
use rustix::process::Signal;

const LB: &str = env!("CARGO_BIN_EXE_lb");

fn example_config() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("lb.toml")
        .display()
        .to_string()
}

#[tokio::test]
async fn the_example_config_passes_check_config() {
    let example = example_config();
    let (code, stdout, stderr) =
        run_to_end(LB, &["--check-config", &example]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(": ok: listen 127.0.0.1:3000, 3 backends"));
}

#[tokio::test]
async fn a_bad_config_names_file_line_and_key_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[backends]]\naddress = \"127.0.0.1:1\"\n\n[health]\nrise = 0\n",
    )
    .unwrap();
    let path = path.display().to_string();
    for flag in ["--check-config", "--config"] {
        let (code, stdout, stderr) = run_to_end(LB, &[flag, &path]).await;
        assert_eq!(code, 1, "{flag}: {stderr}");
        let want = format!("error: {path}:5: health.rise: must be at least 1");
        assert!(stderr.starts_with(&want), "{flag}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!stdout.contains("listening on"), "{stdout}");
    }
}

#[tokio::test]
async fn bad_flags_are_refused_with_a_message() {
    let cases: [&[&str]; 4] = [
        &["--algorithm", "fastest"],
        &["--backends", "https://127.0.0.1:1"],
        &["--backends", "tls://127.0.0.1:1"],
        &["--config", "/nonexistent/lb.toml"],
    ];
    for args in cases {
        let (code, _, stderr) = run_to_end(LB, args).await;
        assert_ne!(code, 0, "{args:?}");
        assert!(stderr.contains("error"), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    let (_, _, stderr) =
        run_to_end(LB, &["--backends", "tls://127.0.0.1:1"]).await;
    assert!(stderr.contains("--ca"), "{stderr}");
}

#[tokio::test]
async fn the_binary_balances_and_exits_0_on_sigterm() {
    let backends = RunningBackend::start_many(2).await;
    let list = backend_list(addrs(&backends));
    let mut lb = RunningBinary::start(
        LB,
        &["--listen", "127.0.0.1:0", "--backends", &list],
    )
    .await;
    let first = who_answers(lb.addr).await;
    let second = who_answers(lb.addr).await;
    assert_ne!(first, second, "round robin over two backends");
    lb.wait_for_stderr(": closed (up: ").await;
    lb.signal(Signal::TERM);
    lb.wait_for_stderr("shut down: ").await;
    assert_eq!(lb.wait().await.code(), Some(0));
}

#[tokio::test]
async fn sighup_is_ignored_with_a_log_line() {
    let backends = RunningBackend::start_many(1).await;
    let list = backend_list(addrs(&backends));
    let mut lb = RunningBinary::start(
        LB,
        &["--listen", "127.0.0.1:0", "--backends", &list],
    )
    .await;
    lb.signal(Signal::HUP);
    lb.wait_for_stderr("SIGHUP").await;
    assert!(lb.is_running());
    who_answers(lb.addr).await;
}

#[tokio::test]
async fn a_missing_certificate_stops_lb_before_it_says_it_listens() {
    let (code, stdout, stderr) = run_to_end(
        LB,
        &[
            "--listen",
            "127.0.0.1:0",
            "--cert",
            "/nonexistent/server.crt",
            "--key",
            "/nonexistent/server.key",
        ],
    )
    .await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("/nonexistent/server.crt"), "{stderr}");
    assert!(!stdout.contains("listening on"), "{stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn a_backlog_the_kernel_cuts_is_said_at_start() {
    let Ok(cap) = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
    else {
        return; // not Linux: nothing tells lb the cap either
    };
    let cap: u32 = cap.trim().parse().unwrap();
    let backends = RunningBackend::start_many(1).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lb.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\n[limits]\nbacklog = {}\n\n\
             [[backends]]\naddress = \"{}\"\n",
            cap + 1,
            backends[0].addr
        ),
    )
    .unwrap();
    let path = path.display().to_string();
    let mut lb = RunningBinary::start(LB, &["--config", &path]).await;
    let want = format!("backlog {} is cut to {cap} by the kernel", cap + 1);
    lb.wait_for_stderr(&want).await;
    who_answers(lb.addr).await;
}

/// `--check-config` checks what `--config` with the same flags would run:
/// a flag that breaks the file's rules is refused by both.
#[tokio::test]
async fn check_config_checks_the_flags_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weighted.toml");
    std::fs::write(
        &path,
        "algorithm = \"weighted-round-robin\"\n\
         [[backends]]\naddress = \"127.0.0.1:1\"\nweight = 2\n",
    )
    .unwrap();
    let path = path.display().to_string();
    let (code, stdout, stderr) =
        run_to_end(LB, &["--check-config", &path, "--algorithm", "maglev"])
            .await;
    assert_eq!(code, 0, "{stderr}");
    let want = format!("{path}: ok: listen 127.0.0.1:3000, 1 backend, maglev");
    assert!(stdout.starts_with(&want), "{stdout}");
    for flag in ["--check-config", "--config"] {
        let (code, stdout, stderr) =
            run_to_end(LB, &[flag, &path, "--algorithm", "round-robin"]).await;
        assert_eq!(code, 1, "{flag}: {stdout}");
        assert!(stderr.contains("round-robin ignores weights"), "{stderr}");
    }
}

/// A path that is not a config file is refused without reading it all:
/// `/dev/zero` never ends.
#[tokio::test]
async fn an_endless_file_is_refused_not_read() {
    let (code, _, stderr) =
        run_to_end(LB, &["--check-config", "/dev/zero"]).await;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        stderr.trim(),
        "error: /dev/zero: longer than 1024 KiB; is it a configuration file?"
    );
}

#[tokio::test]
async fn version_and_help_name_lb_its_signals_and_its_environment() {
    let (code, stdout, _) = run_to_end(LB, &["-V"]).await;
    assert_eq!(code, 0);
    assert_eq!(stdout, format!("lb {}\n", env!("CARGO_PKG_VERSION")));
    let (code, stdout, _) = run_to_end(LB, &["--help"]).await;
    assert_eq!(code, 0);
    for needle in ["SIGTERM", "SIGHUP", "RUST_LOG", "LAB_LOG_FORMAT"] {
        assert!(stdout.contains(needle), "{needle}: {stdout}");
    }
}

/// A `RUST_LOG` that does not parse is said, not ignored in silence.
#[tokio::test]
async fn a_bad_rust_log_is_said() {
    let output = lab_common::testing::deadline(
        "lb to exit",
        tokio::process::Command::new(LB)
            // Refused after the log is set up, so lb exits at once.
            .args(["--backends", "tls://127.0.0.1:1"])
            .env("RUST_LOG", "lb=loudest")
            .env("NO_COLOR", "1")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("RUST_LOG=\"lb=loudest\" is not a filter"),
        "{stderr}"
    );
    assert!(stderr.contains("logging at info"), "{stderr}");
}

/// A host name that does not resolve is a warning, not an error: it may
/// resolve by the time a client comes.
#[tokio::test]
async fn a_backend_name_that_does_not_resolve_is_a_warning() {
    let (code, stdout, stderr) = run_to_end(
        LB,
        &[
            "--check-config",
            &example_config(),
            "--backends",
            "no-such-host.invalid:80",
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(": ok: "), "{stdout}");
    assert!(
        stderr.starts_with(
            "warning: backends: `no-such-host.invalid:80` does not resolve now"
        ),
        "{stderr}"
    );
}

/// `watch = true`: a change of the file is a reload, as SIGHUP is.
#[tokio::test]
async fn a_watched_file_reloads_when_it_changes() {
    let backends = RunningBackend::start_many(1).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lb.toml");
    let file = |algorithm: &str| {
        format!(
            "listen = \"127.0.0.1:0\"\nwatch = true\n\
             algorithm = \"{algorithm}\"\n\
             [[backends]]\naddress = \"{}\"\n",
            backends[0].addr
        )
    };
    std::fs::write(&path, file("round-robin")).unwrap();
    let path_text = path.display().to_string();
    let mut lb = RunningBinary::start(LB, &["--config", &path_text]).await;
    std::fs::write(&path, file("least-connections")).unwrap();
    lb.wait_for_stderr(&format!(
        "reloaded: algorithm round-robin → least-connections \
         (a change of {path_text})"
    ))
    .await;
    lb.signal(Signal::TERM);
    assert!(lb.wait().await.success());
}

/// An upgrade that cannot happen says why and changes nothing: no
/// [upgrade] socket in the config, or no lb at the socket.
#[tokio::test]
async fn a_refused_upgrade_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.toml");
    std::fs::write(&plain, "[[backends]]\naddress = \"127.0.0.1:1\"\n")
        .unwrap();
    let (code, _, stderr) = run_to_end(
        LB,
        &["--config", &plain.display().to_string(), "--upgrade"],
    )
    .await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("--upgrade needs `socket`"), "{stderr}");
    let socket = dir.path().join("nobody.sock");
    let lonely = dir.path().join("lonely.toml");
    std::fs::write(
        &lonely,
        format!(
            "[upgrade]\nsocket = \"{}\"\n[[backends]]\naddress = \"127.0.0.1:1\"\n",
            socket.display()
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = run_to_end(
        LB,
        &["--config", &lonely.display().to_string(), "--upgrade"],
    )
    .await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("upgrade: cannot reach the running lb at"),
        "{stderr}"
    );
    assert!(!stdout.contains("listening on"), "{stdout}");
}

/// `--check-config` reads the admin token as a start would: a missing
/// file fails the check, not the next restart.
#[tokio::test]
async fn check_config_reads_the_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.toml");
    std::fs::write(
        &path,
        "[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"no-such.token\"\n\
         [[backends]]\naddress = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let path = path.display().to_string();
    let (code, _, stderr) = run_to_end(LB, &["--check-config", &path]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("cannot read the admin token")
            && stderr.contains("no-such.token"),
        "{stderr}"
    );
}

/// `[discovery]` in an `lb` built without the feature `etcd` (as `cargo
/// test` builds it) stops `lb` with what to do, at start and in
/// `--check-config`; built with it, a missing password file does.
#[tokio::test]
async fn a_store_lb_cannot_reach_is_said_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:0\"\n[discovery]\nkind = \"etcd\"\n\
         endpoints = [\"http://127.0.0.1:1\"]\nuser = \"lb\"\n\
         password_file = \"no-such.password\"\n",
    )
    .unwrap();
    let path = path.display().to_string();
    for flag in ["--check-config", "--config"] {
        let (code, stdout, stderr) = run_to_end(LB, &[flag, &path]).await;
        assert_eq!(code, 1, "{flag}: {stderr}");
        assert!(!stdout.contains("listening on"), "{stdout}");
        let expected = if cfg!(feature = "etcd") {
            "no-such.password"
        } else {
            "this lb was built without etcd: build it with `--features etcd`"
        };
        assert!(stderr.contains(expected), "{flag}: {stderr}");
    }
}
