//! The exercise of step 09's chapter. `cargo test` leaves it out
//! (ignored); `scripts/exercise.sh 09-request-id` runs it, and it fails
//! until the exercise is done.

use dummy_servers::Echo;
use dummy_servers::testing::RunningBackend;
use lab_common::testing::http::{fresh_client, keep_alive_client};
use lab_common::testing::{RunningStep, deadline, host_ports};
use step_09_http_proxy::{Config, run};

/// GET `url` with `client` and the headers `extra`: what the backend saw.
async fn echo(
    client: &reqwest::Client,
    url: &str,
    extra: &[(&str, &str)],
) -> Echo {
    let mut request = client.get(url).header("accept", "application/json");
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    deadline("request", async {
        request
            .send()
            .await
            .expect("the proxy answers")
            .json::<Echo>()
            .await
            .expect("the backend's echo")
    })
    .await
}

/// Every request the backends get carries an `X-Request-Id` of its own,
/// set by the proxy: two requests on one connection get two, a request
/// on another connection a third, and an id the client sent is replaced.
#[tokio::test]
#[ignore = "exercise 09-request-id: scripts/exercise.sh 09-request-id"]
async fn every_request_gets_an_id_of_its_own() {
    let backends = RunningBackend::start_many(2).await;
    let addrs: Vec<_> = backends.iter().map(|backend| backend.addr).collect();
    let config = Config::new(host_ports(&addrs));
    let step = RunningStep::start(move |listener, shutdown| {
        run(listener, config, shutdown)
    })
    .await;
    let url = format!("http://{}/", step.addr);

    let kept_alive = keep_alive_client();
    let echoes = [
        echo(&kept_alive, &url, &[]).await,
        echo(&kept_alive, &url, &[]).await,
        echo(
            &fresh_client(),
            &url,
            &[("x-request-id", "from-the-client")],
        )
        .await,
    ];
    let mut ids = Vec::new();
    for echo in &echoes {
        let id = echo.header("x-request-id");
        assert!(
            id.is_some_and(|id| !id.is_empty()),
            "a request reached the backend with no x-request-id header: \
             give every request one in forward"
        );
        ids.extend(id);
    }
    assert_ne!(
        ids[2], "from-the-client",
        "the client's own x-request-id reached the backend: the proxy is \
         the edge, so it sets the id and replaces what a client sent"
    );
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        3,
        "two requests reached the backends with the same x-request-id: \
         each request needs an id of its own, whatever its connection"
    );
}
