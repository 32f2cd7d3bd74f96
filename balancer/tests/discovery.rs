//! Backends listed in etcd (`[discovery]`, the feature `etcd`): two real
//! `lb` processes and one real etcd, all started here on 127.0.0.1 and
//! free ports, the way several balancers share one list in production.
//! scripts/test-etcd.sh installs etcd (Debian's etcd-server) and runs
//! this file: `cargo test -p balancer --features etcd --test discovery`.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::HeldClient;
use dummy_servers::testing::RunningBackend;
use etcd_client::{Client, PutOptions};
use lab_common::testing::{RunningBinary, deadline};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpSocket;
use tokio::process::{Child, Command};

const PREFIX: &str = "/lb-test/backends/";

/// How soon a change in etcd must reach every `lb` (the issue's bound;
/// it takes a few milliseconds here).
const PROPAGATION: Duration = Duration::from_secs(1);

/// A real etcd on two free ports, with its data in a temporary folder,
/// which can be stopped and started again on the same ports and data.
struct Store {
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

impl Store {
    async fn start() -> Store {
        let mut store = Store {
            dir: tempfile::tempdir().expect("a temporary folder"),
            client_port: free_port(),
            peer_port: free_port(),
            child: None,
        };
        store.run().await;
        store
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// Starts etcd and waits for its "ready to serve client requests".
    async fn run(&mut self) {
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut child = Command::new("etcd")
            .arg("--name=test")
            .arg(format!("--data-dir={}", self.dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={}", self.url()))
            .arg(format!("--advertise-client-urls={}", self.url()))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=test={peer}"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("etcd starts (Debian's etcd-server; scripts/test-etcd.sh installs it)");
        let mut lines =
            BufReader::new(child.stderr.take().expect("piped")).lines();
        deadline("etcd to be ready", async {
            while let Some(line) = lines.next_line().await.expect("etcd's log")
            {
                if line.contains("ready to serve client requests") {
                    return;
                }
            }
            panic!("etcd ended before it was ready");
        })
        .await;
        // The rest of its log, read so that the pipe never fills.
        tokio::spawn(async move {
            while let Ok(Some(_)) = lines.next_line().await {}
        });
        self.child = Some(child);
    }

    async fn stop(&mut self) {
        let mut child = self.child.take().expect("etcd is running");
        child.start_kill().expect("etcd can be killed");
        deadline("etcd to exit", child.wait())
            .await
            .expect("waited");
    }

    async fn client(&self) -> Client {
        deadline("a connection to etcd", Client::connect([self.url()], None))
            .await
            .expect("etcd answers")
    }
}

/// A port free now, for etcd, which takes its ports on the command line.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// An `lb` process with an admin listener, its config in `dir`.
struct Lb {
    process: RunningBinary,
    admin: SocketAddr,
}

impl Lb {
    async fn start(
        dir: &std::path::Path,
        name: &str,
        store: &Store,
        file_backends: &str,
    ) -> Lb {
        let path = dir.join(format!("{name}.toml"));
        let text = format!(
            "listen = \"127.0.0.1:0\"\n\
             algorithm = \"maglev\"\n\
             [timeouts]\nconnect = \"500ms\"\ndrain = \"5s\"\n\
             [health]\ninterval = \"100ms\"\ntimeout = \"500ms\"\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n\
             [discovery]\nkind = \"etcd\"\nendpoints = [\"{}\"]\nprefix = \"{PREFIX}\"\n\
             {file_backends}",
            store.url()
        );
        std::fs::write(&path, text).expect("the config is written");
        let mut process = RunningBinary::start(
            env!("CARGO_BIN_EXE_lb"),
            &["--config", path.to_str().expect("a UTF-8 path")],
        )
        .await;
        let admin = process.wait_for_address("admin on ").await;
        Lb { process, admin }
    }

    fn addr(&self) -> SocketAddr {
        self.process.addr
    }

    async fn backends(&self) -> Vec<Value> {
        let url = format!("http://{}/api/backends", self.admin);
        let answer = reqwest::get(url).await.expect("the admin API answers");
        answer.json().await.expect("a JSON list")
    }

    /// Polls `GET /api/backends` (the API cannot push a change) until
    /// the pool holds exactly `ids`, all up; bounded by a count and the
    /// deadline.
    async fn wait_for_pool(&self, ids: &[&str]) -> Vec<Value> {
        let mut wanted: Vec<&str> = ids.to_vec();
        wanted.sort();
        deadline("the pool to hold the backends wanted", async {
            for _ in 0..20_000 {
                let list = self.backends().await;
                let mut listed: Vec<&str> =
                    list.iter().filter_map(|b| b["id"].as_str()).collect();
                listed.sort();
                if listed == wanted && list.iter().all(|b| b["state"] == "up") {
                    return list;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            panic!("never held {wanted:?}: {:?}", self.backends().await)
        })
        .await
    }

    /// How many times the log says `needle` (after waiting for one).
    async fn said(&mut self, needle: &str) -> usize {
        self.process
            .wait_for_stderr(needle)
            .await
            .matches(needle)
            .count()
    }
}

/// The `n`th client address from 127.0.0.2 on.
fn client_ip(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 2)) + n))
}

/// Connects from `from` and asks once: the backend that answered.
async fn ask_from(
    lb: SocketAddr,
    from: IpAddr,
) -> Result<(HeldClient, String), String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::new(from, 0))
        .map_err(|e| e.to_string())?;
    let stream = socket.connect(lb).await.map_err(|e| e.to_string())?;
    let mut client = HeldClient::new(stream);
    let echo = client.ask().await;
    Ok((client, echo.backend))
}

/// The backend each of `count` client addresses reaches through `lb`.
async fn map_clients(lb: SocketAddr, count: u32) -> Vec<String> {
    let mut answers = Vec::with_capacity(count as usize);
    for chunk in (0..count).collect::<Vec<_>>().chunks(50) {
        let mut asks = tokio::task::JoinSet::new();
        for &n in chunk {
            asks.spawn(async move { (n, ask_from(lb, client_ip(n)).await) });
        }
        let mut got: Vec<(u32, String)> = asks
            .join_all()
            .await
            .into_iter()
            .map(|(n, answer)| (n, answer.expect("a client is served").1))
            .collect();
        got.sort();
        answers.extend(got.into_iter().map(|(_, backend)| backend));
    }
    answers
}

async fn put(client: &mut Client, name: &str, value: &str) {
    client
        .put(format!("{PREFIX}{name}"), value, None)
        .await
        .expect("etcd takes the key");
}

fn at(backend: &RunningBackend) -> String {
    format!("{{\"address\": \"{}\"}}", backend.addr)
}

/// Criteria 1 and 4: two `lb`s following one etcd make the same choice
/// for 1,000 clients, see an added and a removed backend within a
/// second, let a removed backend's connection finish, and refuse a bad
/// value and a second key with a taken id alike.
#[tokio::test]
async fn two_lbs_share_one_list() {
    let store = Store::start().await;
    let backends = RunningBackend::start_many(4).await;
    let mut etcd = store.client().await;
    for (name, backend) in ["a", "b", "c"].iter().zip(&backends) {
        put(&mut etcd, name, &at(backend)).await;
    }
    // A value that is no backend, and a second key with the id `a`.
    put(
        &mut etcd,
        "bad",
        r#"{"address": "127.0.0.1:4444", "weight": 0}"#,
    )
    .await;
    put(
        &mut etcd,
        "zz",
        &format!("{{\"address\": \"{}\", \"id\": \"a\"}}", backends[3].addr),
    )
    .await;
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut one = Lb::start(dir.path(), "one", &store, "").await;
    let mut two = Lb::start(dir.path(), "two", &store, "").await;
    for lb in [&mut one, &mut two] {
        let list = lb.wait_for_pool(&["a", "b", "c"]).await;
        let a = list.iter().find(|b| b["id"] == "a").expect("a is listed");
        assert_eq!(
            a["address"],
            backends[0].addr.to_string(),
            "the first key wins"
        );
        assert_eq!(
            lb.said(
                "key /lb-test/backends/bad refused: weight: must be at least 1"
            )
            .await,
            1
        );
        assert_eq!(
            lb.said("key /lb-test/backends/zz refused: its id `a` is taken by key /lb-test/backends/a").await,
            1
        );
    }
    let before = map_clients(one.addr(), 1000).await;
    assert_eq!(
        before,
        map_clients(two.addr(), 1000).await,
        "one choice per client"
    );
    let used: std::collections::HashSet<&String> = before.iter().collect();
    assert_eq!(used.len(), 3, "1,000 clients reach every backend");

    // A client of `b` holds its connection while `b` is removed.
    let b_client = before
        .iter()
        .position(|name| *name == backends[1].name())
        .expect("b has clients");
    let (mut held, name) = ask_from(one.addr(), client_ip(b_client as u32))
        .await
        .expect("served");
    assert_eq!(name, backends[1].name());

    let added = Instant::now();
    put(&mut etcd, "d", &at(&backends[3])).await;
    for lb in [&mut one, &mut two] {
        lb.said("reloaded: backend d added").await;
        assert!(
            added.elapsed() < PROPAGATION,
            "the add took {:?}",
            added.elapsed()
        );
    }
    eprintln!("an added key reached both lbs in {:?}", added.elapsed());
    let removed = Instant::now();
    etcd.delete(format!("{PREFIX}b"), None)
        .await
        .expect("deleted");
    for lb in [&mut one, &mut two] {
        lb.said("reloaded: backend b removed").await;
        assert!(
            removed.elapsed() < PROPAGATION,
            "the removal took {:?}",
            removed.elapsed()
        );
    }
    eprintln!("a deleted key reached both lbs in {:?}", removed.elapsed());
    // The removed backend's open connection still works.
    assert_eq!(held.ask().await.backend, backends[1].name());
    drop(held);

    one.wait_for_pool(&["a", "c", "d"]).await;
    two.wait_for_pool(&["a", "c", "d"]).await;
    // Quiet for longer than etcd bears keep-alive pings sent too often
    // (three strikes at 5 s: it closed such a watch after 8 s): the
    // watch must stay open, without a word of a loss.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let after = map_clients(one.addr(), 1000).await;
    assert_eq!(
        after,
        map_clients(two.addr(), 1000).await,
        "one choice per client again"
    );
    assert!(!after.contains(&backends[1].name()));
    for lb in [&mut one, &mut two] {
        let log = lb
            .process
            .wait_for_stderr("reloaded: backend b removed")
            .await;
        assert!(
            !log.contains("cannot reach it"),
            "a quiet watch was lost:\n{log}"
        );
    }
    // Maglev moves few clients: those of `b`, and a share for `d`.
    let moved = before
        .iter()
        .zip(&after)
        .filter(|(x, y)| x != y && **x != backends[1].name())
        .count();
    assert!(moved < 400, "{moved} of 1,000 clients of a and c moved");
    eprintln!("of 1,000 clients, {moved} not of the removed backend moved");
}

/// Criteria 2 and 3: etcd stopped for 10 s under traffic loses no
/// client, each `lb` says so once and once again when it is back; a
/// change right after reaches both; an `lb` started while etcd is down
/// serves the file's backends, then etcd's; a backend registered with a
/// lease leaves both pools when the lease runs out.
#[tokio::test]
async fn etcd_away_and_back() {
    let mut store = Store::start().await;
    let backends = RunningBackend::start_many(4).await;
    let mut etcd = store.client().await;
    put(&mut etcd, "a", &at(&backends[0])).await;
    put(&mut etcd, "b", &at(&backends[1])).await;
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut one = Lb::start(dir.path(), "one", &store, "").await;
    let mut two = Lb::start(dir.path(), "two", &store, "").await;
    one.wait_for_pool(&["a", "b"]).await;
    two.wait_for_pool(&["a", "b"]).await;

    // Clients keep coming through both, from 200 addresses in turn.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let traffic = {
        let addrs = [one.addr(), two.addr()];
        tokio::spawn(async move {
            let (mut served, mut failed) = (0u32, Vec::new());
            for n in 0..1_000_000u32 {
                if *stopped.borrow() {
                    break;
                }
                match ask_from(addrs[n as usize % 2], client_ip(n % 200)).await
                {
                    Ok(_) => served += 1,
                    Err(err) => failed.push(err),
                }
            }
            (served, failed)
        })
    };
    store.stop().await;
    let lost = "cannot reach it";
    assert_eq!(one.said(lost).await, 1);
    assert_eq!(two.said(lost).await, 1);
    // A third lb, started while etcd is away, serves its file's backend.
    let file = format!(
        "[[backends]]\nid = \"file\"\naddress = \"{}\"\n",
        backends[2].addr
    );
    let mut three = Lb::start(dir.path(), "three", &store, &file).await;
    three.wait_for_pool(&["file"]).await;
    let (_, name) = ask_from(three.addr(), client_ip(0)).await.expect("served");
    assert_eq!(name, backends[2].name());
    // The outage is the scenario: ten seconds of clients without etcd.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(one.said(lost).await, 1, "the loss is said once");

    store.run().await;
    let back = "reachable again";
    for lb in [&mut one, &mut two, &mut three] {
        assert_eq!(lb.said(back).await, 1);
    }
    three.wait_for_pool(&["file", "a", "b"]).await;
    let changed = Instant::now();
    let mut etcd = store.client().await;
    put(&mut etcd, "c", &at(&backends[2])).await;
    for lb in [&mut one, &mut two] {
        lb.said("reloaded: backend c added").await;
        assert!(
            changed.elapsed() < PROPAGATION,
            "the change took {:?}",
            changed.elapsed()
        );
    }
    eprintln!(
        "a key put once etcd was back reached both in {:?}",
        changed.elapsed()
    );
    stop.send_replace(true);
    let (served, failed) =
        deadline("the clients to end", traffic).await.expect("ran");
    assert!(
        failed.is_empty(),
        "{} of {} clients failed: {:?}",
        failed.len(),
        served as usize + failed.len(),
        &failed[..failed.len().min(3)]
    );
    assert!(served > 100, "only {served} clients were served");
    eprintln!("{served} clients served while etcd was away and back, 0 failed");

    // A backend that registers with a 2 s lease and never renews it.
    let lease = etcd.lease_grant(2, None).await.expect("a lease").id();
    let granted = Instant::now();
    etcd.put(
        format!("{PREFIX}leased"),
        at(&backends[3]),
        Some(PutOptions::new().with_lease(lease)),
    )
    .await
    .expect("etcd takes the key");
    for lb in [&mut one, &mut two] {
        lb.said("reloaded: backend leased added").await;
    }
    for lb in [&mut one, &mut two] {
        lb.said("reloaded: backend leased removed").await;
        // Gone within 3 s of the lease's expiry, 2 s after it was granted.
        assert!(
            granted.elapsed() < Duration::from_secs(5),
            "left after {:?}",
            granted.elapsed()
        );
    }
    eprintln!(
        "the leased key left both pools {:?} after its 2 s lease was granted",
        granted.elapsed()
    );
    one.wait_for_pool(&["a", "b", "c"]).await;
}
