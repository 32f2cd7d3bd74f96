//! Health checks and failover seen from outside: the real `lb` binary,
//! real backends that stop and start again, a client that never notices.

use dummy_servers::Fault;
use dummy_servers::testing::RunningBackend;
use lab_common::testing::http::fresh_client;
use lab_common::testing::{RunningBinary, deadline};

const LB: &str = env!("CARGO_BIN_EXE_lb");

/// A config file for `backends`, with checks every 100 ms.
fn config_file(dir: &std::path::Path, backends: &[&RunningBackend]) -> String {
    let mut text = String::from(
        "listen = \"127.0.0.1:0\"\n\
         [health]\nkind = \"tcp\"\ninterval = \"100ms\"\ntimeout = \"500ms\"\n\
         rise = 2\nfall = 3\n",
    );
    for backend in backends {
        text.push_str(&format!(
            "[[backends]]\naddress = \"{}\"\n",
            backend.addr
        ));
    }
    let path = dir.join("lb.toml");
    std::fs::write(&path, text).expect("the temporary folder is writable");
    path.display().to_string()
}

/// Which backend answered `GET /` through `lb`, or `None` if the request
/// failed.
async fn ask(client: &reqwest::Client, url: &str) -> Option<String> {
    let response = deadline("request", client.get(url).send()).await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let text = response.text().await.ok()?;
    text.split_whitespace().next().map(str::to_owned)
}

#[tokio::test]
async fn a_backend_stopped_and_started_again_fails_none_of_3000_clients() {
    let dir = tempfile::tempdir().unwrap();
    let mut backends = RunningBackend::start_many(3).await;
    let config = config_file(dir.path(), &backends.iter().collect::<Vec<_>>());
    let mut lb = RunningBinary::start(LB, &["--config", &config]).await;
    let client = fresh_client();
    let url = format!("http://{}/", lb.addr);
    let victim = backends[1].name();

    let mut failed = 0;
    let mut stopped = None;
    let mut victim_answers_after_restart = 0;
    for i in 0..3000 {
        if i == 1000 {
            stopped = Some(backends.remove(1).stop().await);
        }
        if i == 2000 {
            let addr = stopped.expect("stopped at 1000");
            backends.insert(1, RunningBackend::restart(addr).await);
        }
        match ask(&client, &url).await {
            Some(name) if i >= 2000 && name == victim => {
                victim_answers_after_restart += 1;
            }
            Some(_) => {}
            None => failed += 1,
        }
    }
    assert_eq!(failed, 0, "clients failed");

    let victim_addr = backends[1].addr;
    let log = lb
        .wait_for_stderr(&format!(
            "backend {victim_addr}: health: DOWN after 3 failed checks"
        ))
        .await;
    assert_eq!(log.matches(" DOWN after ").count(), 1, "{log}");
    lb.wait_for_stderr(&format!(
        "backend {victim_addr}: health: UP after 2 passed checks"
    ))
    .await;
    // Up again, it takes clients again (on a slow machine the 1,000
    // requests above may all have come before its second passed check).
    for _ in 0..30 {
        if victim_answers_after_restart > 0 {
            break;
        }
        if ask(&client, &url).await.as_deref() == Some(victim.as_str()) {
            victim_answers_after_restart += 1;
        }
    }
    assert!(victim_answers_after_restart > 0, "{victim} never came back");
}

#[tokio::test]
async fn a_stalled_backend_gets_no_new_client_once_http_checks_mark_it_down() {
    let dir = tempfile::tempdir().unwrap();
    let backends = RunningBackend::start_many(3).await;
    let config = config_file(dir.path(), &backends.iter().collect::<Vec<_>>());
    let text = std::fs::read_to_string(&config).unwrap();
    // HTTP checks: a stalled backend still accepts connections, so only
    // a check that waits for an answer can tell.
    let text = text.replace("kind = \"tcp\"", "kind = \"http\"");
    let text = text.replace("timeout = \"500ms\"", "timeout = \"300ms\"");
    std::fs::write(&config, text).unwrap();
    let mut lb = RunningBinary::start(LB, &["--config", &config]).await;
    let stalled = &backends[2];
    stalled.set_fault(Fault::Stall);
    lb.wait_for_stderr(&format!(
        "backend {}: health: DOWN after ",
        stalled.addr
    ))
    .await;
    // Every client from now on is answered, and never by the stalled
    // backend (whose clients would wait forever: the timeout would say).
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .unwrap();
    let url = format!("http://{}/", lb.addr);
    for _ in 0..60 {
        let name = ask(&client, &url).await.expect("answered");
        assert_ne!(name, stalled.name());
    }
}
