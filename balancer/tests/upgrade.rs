//! `lb --upgrade` hands over what `lb` knows of its backends, not only
//! its sockets (issue 15, criterion 4): a backend drained through the
//! admin API, and one the checks saw DOWN, are so in the new process,
//! which serves the same admin address; and the old process exits 0.
//! (The fault suite's `upgrades` case runs 20 in a row under load.)

use std::time::Duration;

use dummy_servers::testing::RunningBackend;
use lab_common::testing::{RunningBinary, deadline};
use rustix::process::Signal;
use serde_json::Value;

const LB: &str = env!("CARGO_BIN_EXE_lb");

/// `GET /api/backends` on `admin`, as a list of (id, state).
async fn states(admin: &str) -> Vec<(String, String)> {
    let list: Vec<Value> = reqwest::get(format!("http://{admin}/api/backends"))
        .await
        .expect("the admin API answers")
        .json()
        .await
        .expect("JSON");
    list.iter()
        .map(|backend| {
            (
                backend["id"].as_str().unwrap_or("").to_owned(),
                backend["state"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// Waits (bounded) until `admin` shows `id` in `state`: the checks that
/// take a backend DOWN run on their own clock, so there is no event to
/// wait on but the API's answer.
async fn wait_for_state(admin: &str, id: &str, state: &str) {
    let wanted = (id.to_owned(), state.to_owned());
    deadline(&format!("{id} to be {state}"), async {
        while !states(admin).await.contains(&wanted) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn an_upgrade_keeps_a_drained_and_a_down_backend_so() {
    let up = RunningBackend::start().await;
    let gone = RunningBackend::start().await;
    let gone_addr = gone.stop().await;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("upgrade.sock");
    let config = dir.path().join("lb.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\n\
             [health]\ninterval = \"100ms\"\ntimeout = \"100ms\"\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n\
             [upgrade]\nsocket = \"{}\"\n\
             [[backends]]\nid = \"up\"\naddress = \"{}\"\n\
             [[backends]]\nid = \"gone\"\naddress = \"{gone_addr}\"\n",
            socket.display(),
            up.addr
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let mut old = RunningBinary::start(LB, &["--config", &config]).await;
    let stdout = old.wait_for_stdout("admin on ").await;
    let admin = stdout
        .lines()
        .find_map(|line| line.strip_prefix("admin on "))
        .expect("an admin line")
        .trim()
        .to_owned();
    wait_for_state(&admin, "gone", "down").await;
    let drained = reqwest::Client::new()
        .post(format!("http://{admin}/api/backends/up/drain"))
        .send()
        .await
        .unwrap();
    assert!(drained.status().is_success(), "{drained:?}");

    let mut new =
        RunningBinary::start(LB, &["--config", &config, "--upgrade"]).await;
    assert_eq!(new.addr, old.addr, "the same listener, handed over");
    let status = old.wait().await;
    assert!(status.success(), "the old process exits 0: {status}");
    // The admin address is the new process's now.
    let after = states(&admin).await;
    assert!(
        after.contains(&("up".into(), "draining".into())),
        "{after:?}"
    );
    assert!(after.contains(&("gone".into(), "down".into())), "{after:?}");
    new.signal(Signal::TERM);
    assert!(new.wait().await.success());
}
