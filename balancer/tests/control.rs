//! Runtime control through the admin API (issue 15, criterion 5), over
//! real sockets:
//!
//! - drain: a backend with 50 open connections keeps serving them, gets
//!   no new client, shows `draining`, then 0 active; it is still
//!   checked;
//! - disable: `disabled`, and its checks stop (counted at its door);
//!   enable: checked and given clients again;
//! - a weight change shows in the very next clients' sequence under
//!   weighted round robin (weights 5, 1, 1: `a a b a c a a`);
//! - 400 for a weight of 0 or not a number, 409 under round robin, 404
//!   for an unknown id, and an id holding `/` works percent-encoded;
//! - all of that survives a reload, through `POST /api/reload` in-process
//!   and through SIGHUP to the real binary;
//! - the token: a non-loopback admin listener without `token_file` is
//!   refused; with a token, a request without it gets 401;
//! - a state change from a foreign `Origin`, or to a wrong `Host`, is
//!   refused (403) and changes nothing.

mod common;

use std::net::SocketAddr;
use std::path::Path;

use balancer::config::{CheckKind, Config};
use balancer::select::Algorithm;
use common::{ControlledLb, CountedBackend, HeldClient, named_config};
use dummy_servers::testing::RunningBackend;
use lab_common::testing::http::who_answers;
use lab_common::testing::{RunningBinary, deadline, run_to_end};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HOST, ORIGIN};
use rustix::process::Signal;
use serde_json::Value;

const LB: &str = env!("CARGO_BIN_EXE_lb");

/// Who answers each of `count` new clients, one after the other.
async fn sequence(lb: SocketAddr, count: usize) -> Vec<String> {
    let mut names = Vec::with_capacity(count);
    for _ in 0..count {
        names.push(who_answers(lb).await);
    }
    names
}

/// The names of `backends` in the order `pattern` gives, by index.
fn names_of(backends: &[&RunningBackend], pattern: &[usize]) -> Vec<String> {
    pattern
        .iter()
        .map(|&index| backends[index].name())
        .collect()
}

#[tokio::test]
async fn a_drained_backend_finishes_its_connections_and_gets_no_new_client() {
    let drained = RunningBackend::start().await;
    let other = RunningBackend::start().await;
    let lb = ControlledLb::start(named_config(
        &[drained.addr, other.addr],
        &["a", "b"],
    ))
    .await;
    // Round robin: 100 clients, 50 on each, kept open.
    let mut on_drained = Vec::new();
    let mut on_other = Vec::new();
    for _ in 0..100 {
        let (client, echo) = HeldClient::connect(lb.addr).await;
        if echo.backend == drained.name() {
            on_drained.push(client);
        } else {
            on_other.push(client);
        }
    }
    assert_eq!(on_drained.len(), 50);

    assert_eq!(lb.act("a", "drain").await, StatusCode::OK);
    let a = lb.backend("a").await.expect("listed");
    assert_eq!(a["state"], "draining", "{a}");
    assert_eq!(a["active"], 50, "{a}");
    for (client, answered) in sequence(lb.addr, 10).await.iter().enumerate() {
        assert_eq!(*answered, other.name(), "client {client}");
    }
    // Its open connections go on, and end when their clients are done.
    for client in &mut on_drained {
        assert_eq!(client.ask().await.backend, drained.name());
    }
    drop(on_drained);
    let a = lb
        .wait_for("a", "a's connections to end", |a| {
            a.is_some_and(|a| a["active"] == 0)
        })
        .await
        .expect("listed");
    assert_eq!(a["state"], "draining", "{a}");
    drop(on_other);
    lb.stop().await;
}

#[tokio::test]
async fn a_drained_backend_is_still_checked() {
    let drained = CountedBackend::start().await;
    let other = CountedBackend::start().await;
    let lb = ControlledLb::start(named_config(
        &[drained.addr, other.addr],
        &["a", "b"],
    ))
    .await;
    assert_eq!(lb.act("a", "drain").await, StatusCode::OK);
    // Checked every 100 ms all the same, and given no client.
    drained.wait_for_accepts(drained.accepts() + 3).await;
    for (client, answered) in sequence(lb.addr, 4).await.iter().enumerate() {
        assert_eq!(*answered, other.name(), "client {client}");
    }
    assert_eq!(lb.backend("a").await.expect("listed")["state"], "draining");
    lb.stop().await;
}

#[tokio::test]
async fn a_disabled_backend_is_not_checked_and_enable_brings_it_back() {
    let disabled = CountedBackend::start().await;
    let other = CountedBackend::start().await;
    let lb = ControlledLb::start(named_config(
        &[disabled.addr, other.addr],
        &["a", "b"],
    ))
    .await;
    // Both checked at least once (every 100 ms) before it starts.
    disabled.wait_for_accepts(1).await;
    other.wait_for_accepts(1).await;

    assert_eq!(lb.act("a", "disable").await, StatusCode::OK);
    let (checks_a, checks_b) = (disabled.accepts(), other.accepts());
    assert_eq!(lb.backend("a").await.expect("listed")["state"], "disabled");
    // While b is checked 4 times more, a is not: a check already on its
    // way when it was disabled may still arrive.
    other.wait_for_accepts(checks_b + 4).await;
    let late = disabled.accepts() - checks_a;
    assert!(late <= 1, "{late} checks of a disabled backend");
    for (client, answered) in sequence(lb.addr, 6).await.iter().enumerate() {
        assert_eq!(*answered, other.name(), "client {client}");
    }

    assert_eq!(lb.act("a", "enable").await, StatusCode::OK);
    lb.wait_for_state("a", "up").await;
    // Checked again, and given its turns again.
    disabled.wait_for_accepts(disabled.accepts() + 2).await;
    let answered = sequence(lb.addr, 4).await;
    let to_a = answered.iter().filter(|name| **name == disabled.name());
    assert_eq!(to_a.count(), 2, "{answered:?}");
    lb.stop().await;
}

#[tokio::test]
async fn a_weight_change_shows_in_the_next_clients_sequence() {
    let backends = RunningBackend::start_many(3).await;
    let [a, b, c] = [&backends[0], &backends[1], &backends[2]];
    let mut config = named_config(&[a.addr, b.addr, c.addr], &["a", "b", "c"]);
    config.algorithm = Algorithm::WeightedRoundRobin;
    let lb = ControlledLb::start(config).await;
    assert_eq!(sequence(lb.addr, 3).await, names_of(&[a, b, c], &[0, 1, 2]));
    // Two clients into a round, so that the change comes mid-sequence.
    assert_eq!(sequence(lb.addr, 2).await, names_of(&[a, b, c], &[0, 1]));

    assert_eq!(lb.put_weight("a", "5").await, StatusCode::OK);
    let shown = lb.backend("a").await.expect("listed");
    assert_eq!(shown["weight"], 5, "{shown}");
    // Smooth weighted round robin over 5, 1, 1, from its start.
    let round = [0, 0, 1, 0, 2, 0, 0];
    let twice: Vec<usize> = round.iter().chain(&round).copied().collect();
    assert_eq!(sequence(lb.addr, 14).await, names_of(&[a, b, c], &twice));
    lb.stop().await;
}

#[tokio::test]
async fn weights_and_ids_are_checked() {
    let backends = RunningBackend::start_many(2).await;
    let addrs = [backends[0].addr, backends[1].addr];
    let mut config = named_config(&addrs, &["pool/a", "b"]);
    config.algorithm = Algorithm::WeightedRoundRobin;
    let lb = ControlledLb::start(config.clone()).await;
    let a = "pool%2Fa";
    for refused in ["0", "two", "", "-1", "1.5"] {
        let status = lb.put_weight(a, refused).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "weight `{refused}`");
    }
    assert_eq!(lb.backend("pool/a").await.expect("listed")["weight"], 1);
    assert_eq!(lb.put_weight(a, "3").await, StatusCode::OK);
    assert_eq!(lb.backend("pool/a").await.expect("listed")["weight"], 3);
    assert_eq!(lb.put_weight("nobody", "3").await, StatusCode::NOT_FOUND);
    for action in ["drain", "disable", "enable"] {
        let status = lb.act("nobody", action).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{action}");
    }
    assert_eq!(lb.act(a, "drain").await, StatusCode::OK);
    let shown = lb.backend("pool/a").await.expect("listed");
    assert_eq!(shown["state"], "draining", "{shown}");

    // Round robin has no weights to change.
    config.algorithm = Algorithm::RoundRobin;
    lb.write_config(config);
    let (status, changed) = lb.reload().await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(lb.put_weight("b", "2").await, StatusCode::CONFLICT);
    lb.stop().await;
}

#[tokio::test]
async fn the_operators_say_survives_a_reload() {
    let drained = RunningBackend::start().await;
    let disabled = CountedBackend::start().await;
    let weighted = RunningBackend::start().await;
    let plain = CountedBackend::start().await;
    let addrs = [drained.addr, disabled.addr, weighted.addr, plain.addr];
    let mut config = named_config(&addrs, &["a", "b", "c", "d"]);
    config.algorithm = Algorithm::WeightedRoundRobin;
    let lb = ControlledLb::start(config.clone()).await;
    assert_eq!(lb.act("a", "drain").await, StatusCode::OK);
    assert_eq!(lb.act("b", "disable").await, StatusCode::OK);
    assert_eq!(lb.put_weight("c", "3").await, StatusCode::OK);

    config.timeouts.idle = std::time::Duration::from_secs(60);
    lb.write_config(config);
    let (status, changed) = lb.reload().await;
    let (checks_b, checks_d) = (disabled.accepts(), plain.accepts());
    assert_eq!(status, StatusCode::OK, "{changed}");
    for said in [
        "timeouts.idle 5m → 1m",
        "backend a stays draining (set through the admin API)",
        "backend b stays disabled (set through the admin API)",
        "backend c keeps weight 3 (set through the admin API)",
    ] {
        let list = changed["changed"].as_array().expect("a list");
        assert!(list.iter().any(|s| s == said), "`{said}`: {changed}");
    }
    let list = lb.backends().await;
    let shown = |id: &str, key: &str| {
        let backend = list.iter().find(|b| b["id"] == id).expect("listed");
        backend[key].clone()
    };
    assert_eq!(shown("a", "state"), "draining");
    assert_eq!(shown("b", "state"), "disabled");
    assert_eq!(shown("c", "weight"), 3);
    // The disabled backend is still not checked after the reload.
    plain.wait_for_accepts(checks_d + 4).await;
    let late = disabled.accepts() - checks_b;
    assert!(late <= 1, "{late} checks of a disabled backend");
    // Only c (weight 3) and d (1) take clients, in smooth order.
    let (c, d) = (weighted.name(), plain.name());
    let want = [&c, &c, &d, &c, &c, &c, &d, &c].map(|name| name.clone());
    assert_eq!(sequence(lb.addr, 8).await, want);
    lb.stop().await;
}

/// A config file for the real binary: `lb` and its admin API on ports
/// the OS picks, weighted round robin over `backends` named `ids`, and
/// `extra` TOML at the top level.
fn config_file(
    dir: &Path,
    backends: &[SocketAddr],
    ids: &[&str],
    extra: &str,
) -> std::path::PathBuf {
    let mut text = format!(
        "listen = \"127.0.0.1:0\"\nalgorithm = \"weighted-round-robin\"\n\
         {extra}\n[admin]\nlisten = \"127.0.0.1:0\"\n\n\
         [health]\ninterval = \"100ms\"\n"
    );
    for (addr, id) in backends.iter().zip(ids) {
        text.push_str(&format!(
            "\n[[backends]]\naddress = \"{addr}\"\nid = \"{id}\"\n"
        ));
    }
    let path = dir.join("lb.toml");
    std::fs::write(&path, text).expect("the config is written");
    path
}

#[tokio::test]
async fn the_operators_say_survives_a_sighup() {
    let backends = RunningBackend::start_many(3).await;
    let addrs = [backends[0].addr, backends[1].addr, backends[2].addr];
    let ids = ["a", "b", "c"];
    let dir = tempfile::tempdir().unwrap();
    let path = config_file(dir.path(), &addrs, &ids, "");
    let mut lb =
        RunningBinary::start(LB, &["--config", &path.display().to_string()])
            .await;
    let admin = lb.wait_for_address("admin on ").await;
    let api = reqwest::Client::new();
    let url = |path: &str| format!("http://{admin}{path}");
    let drain = api.post(url("/api/backends/a/drain")).send();
    let drain = deadline("drain", drain).await.expect("answered");
    assert_eq!(drain.status(), StatusCode::OK);
    let weight = api.put(url("/api/backends/b/weight")).body("3").send();
    let weight = deadline("weight", weight).await.expect("answered");
    assert_eq!(weight.status(), StatusCode::OK);

    // The file changes (retries), the backends stay; SIGHUP.
    config_file(dir.path(), &addrs, &ids, "retries = 1");
    lb.signal(Signal::HUP);
    let log = lb.wait_for_stderr("reloaded: ").await;
    let line = log
        .lines()
        .find(|line| line.contains("reloaded: "))
        .expect("a reload line");
    assert!(line.contains("backend a stays draining"), "{line}");
    assert!(line.contains("backend b keeps weight 3"), "{line}");
    assert!(line.contains("(SIGHUP)"), "{line}");
    let list = api.get(url("/api/backends")).send();
    let list: Vec<Value> = deadline("backends", async {
        list.await.expect("answered").json().await.expect("JSON")
    })
    .await;
    let shown = |id: &str, key: &str| {
        let backend = list.iter().find(|b| b["id"] == id).expect("listed");
        backend[key].clone()
    };
    assert_eq!(shown("a", "state"), "draining");
    assert_eq!(shown("b", "weight"), 3);
    // b (3) and c (1) in smooth order; a none.
    let (b, c) = (backends[1].name(), backends[2].name());
    let want = [&b, &b, &c, &b].map(|name| name.clone());
    assert_eq!(sequence(lb.addr, 4).await, want);
    lb.signal(Signal::TERM);
    assert!(lb.wait().await.success());
}

#[tokio::test]
async fn a_non_loopback_admin_listener_needs_a_token_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lb.toml");
    std::fs::write(
        &path,
        "[admin]\nlisten = \"0.0.0.0:9000\"\n\n\
         [[backends]]\naddress = \"127.0.0.1:4444\"\n",
    )
    .unwrap();
    let path = path.display().to_string();
    let (code, stdout, stderr) =
        run_to_end(LB, &["--check-config", &path]).await;
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stderr.contains("not a loopback address"), "{stderr}");
    assert!(stderr.contains("token_file"), "{stderr}");
    // The same through the flag, and it never listens.
    let flags = ["--listen", "127.0.0.1:0", "--admin", "0.0.0.0:0"];
    let (code, stdout, stderr) = run_to_end(LB, &flags).await;
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stderr.contains("not a loopback address"), "{stderr}");
    assert!(!stdout.contains("listening on"), "{stdout}");
    // The same rule for a config built in code.
    let mut config = Config::default();
    config.admin.listen = Some("0.0.0.0:9000".parse().unwrap());
    let refused = balancer::Balancer::new(config).err().expect("refused");
    assert!(refused.to_string().contains("not a loopback"), "{refused}");
}

#[tokio::test]
async fn with_a_token_every_request_must_carry_it() {
    let backend = RunningBackend::start().await;
    let mut config = named_config(&[backend.addr], &["a"]);
    config.health.kind = CheckKind::Off;
    let lb = ControlledLb::start_with_token(config, Some("s3cret")).await;
    let bare = reqwest::Client::new();
    let backends = lb.url("/api/backends");
    let drain = lb.url("/api/backends/a/drain");
    let asks = [
        ("GET, no token", bare.get(&backends)),
        ("GET, wrong token", bare.get(&backends).bearer_auth("s3cre")),
        (
            "GET, not a bearer",
            bare.get(&backends).header(AUTHORIZATION, "s3cret"),
        ),
        ("POST, no token", bare.post(&drain)),
        ("reload, no token", bare.post(lb.url("/api/reload"))),
    ];
    for (what, request) in asks {
        let status = deadline(what, request.send()).await.unwrap().status();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
    }
    let a = lb.backend("a").await.expect("listed with the token");
    assert_eq!(a["state"], "up", "a refused drain changed nothing: {a}");
    let status = deadline("GET with the token", async {
        let request = bare.get(&backends).bearer_auth("s3cret");
        request.send().await.unwrap().status()
    })
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(lb.act("a", "drain").await, StatusCode::OK);
    lb.stop().await;
}

#[tokio::test]
async fn a_state_change_from_another_site_is_refused() {
    let backend = RunningBackend::start().await;
    let mut config = named_config(&[backend.addr], &["a"]);
    config.algorithm = Algorithm::WeightedRoundRobin;
    config.health.kind = CheckKind::Off;
    let lb = ControlledLb::start(config).await;
    let api = reqwest::Client::new();
    let evil_host = format!("evil.example:{}", lb.admin.port());
    let refused = [
        (
            "drain from a foreign Origin",
            api.post(lb.url("/api/backends/a/drain"))
                .header(ORIGIN, "http://evil.example"),
        ),
        (
            "disable to a foreign Host",
            api.post(lb.url("/api/backends/a/disable"))
                .header(HOST, &evil_host),
        ),
        (
            "weight from a foreign Origin",
            api.put(lb.url("/api/backends/a/weight"))
                .header(ORIGIN, "http://evil.example")
                .body("2"),
        ),
        (
            "reload from a foreign Origin",
            api.post(lb.url("/api/reload"))
                .header(ORIGIN, "http://evil.example"),
        ),
        (
            "drain from this port on another host",
            api.post(lb.url("/api/backends/a/drain")).header(
                ORIGIN,
                format!("http://evil.example:{}", lb.admin.port()),
            ),
        ),
    ];
    for (what, request) in refused {
        let status = deadline(what, request.send()).await.unwrap().status();
        assert_eq!(status, StatusCode::FORBIDDEN, "{what}");
    }
    let a = lb.backend("a").await.expect("listed");
    assert_eq!(a["state"], "up", "{a}");
    assert_eq!(a["weight"], 1, "{a}");
    // From the listener's own page, it is done.
    let own = format!("http://{}", lb.admin);
    let request = api
        .post(lb.url("/api/backends/a/drain"))
        .header(ORIGIN, own);
    let status = deadline("own drain", request.send())
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);
    lb.stop().await;
}

#[tokio::test]
async fn off_loopback_the_token_is_required_and_enough() {
    let backend = RunningBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("admin.token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let path = dir.path().join("lb.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\n\n[admin]\nlisten = \"0.0.0.0:0\"\n\
             token_file = \"{}\"\n\n[[backends]]\naddress = \"{}\"\n\
             id = \"a\"\n",
            token.display(),
            backend.addr
        ),
    )
    .unwrap();
    let mut lb =
        RunningBinary::start(LB, &["--config", &path.display().to_string()])
            .await;
    let admin = lb.wait_for_address("admin on ").await;
    // Listening on every address; asked on loopback only.
    let port = admin.port();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let api = reqwest::Client::new();
    let status = |request: reqwest::RequestBuilder| async {
        deadline("an admin request", request.send())
            .await
            .expect("answered")
            .status()
    };
    let backends = url("/api/backends");
    let drain = url("/api/backends/a/drain");
    assert_eq!(status(api.get(&backends)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(api.post(&drain)).await, StatusCode::UNAUTHORIZED);
    let with_token = api.get(&backends).bearer_auth("s3cret");
    assert_eq!(status(with_token).await, StatusCode::OK);
    // An operator with the token drains a backend. (Fails today: the
    // admin API accepts only `Host: 0.0.0.0:PORT` when it listens on
    // 0.0.0.0, so no real request can change state off loopback.)
    let drained = deadline("drain with the token", async {
        let answer = api.post(&drain).bearer_auth("s3cret").send().await;
        let answer = answer.expect("answered");
        (answer.status(), answer.text().await.expect("a body"))
    })
    .await;
    assert_eq!(drained.0, StatusCode::OK, "{}", drained.1);
    lb.signal(Signal::TERM);
    assert!(lb.wait().await.success());
}
