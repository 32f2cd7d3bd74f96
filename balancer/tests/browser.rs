//! lb's status page (issue 16) in a real browser: headless Chromium,
//! driven over WebDriver by chromedriver, against the real `lb` binary
//! with an admin listener and a token, and three real backends.
//!
//! - the page, opened as `http://ADMIN/#token=TOKEN`, lists the three
//!   backends `up`;
//! - one backend stops: once lb's API says it is down, the page shows it
//!   `down`, with a reason, within two of its refreshes, and was not
//!   reloaded to do it;
//! - `lb` is killed: a banner says contact with lb is lost; `lb` starts
//!   again on the same admin address and the banner goes.
//!
//! Along the way it saves what the page looks like, with one backend
//! down and traffic behind it, to `target/admin/status-page.png`
//! (docs/admin/status-page.png is a copy of one).
//!
//! Ignored by default, since it needs Debian's `chromium` and
//! `chromium-driver`:
//!
//!   scripts/test-browser.sh    installs both, then runs this
//!   cargo test -p balancer --features external-tests --test browser -- --ignored

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dummy_servers::testing::RunningBackend;
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use lab_common::testing::http::who_answers;
use lab_common::testing::{DEADLINE, RunningBinary, deadline};
use rustix::process::{Pid, Signal, kill_process_group};
use serde_json::{Value, json};

const LB: &str = env!("CARGO_BIN_EXE_lb");
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const TOKEN: &str = "see-inside-it";
/// The backends' ids, in the config's order.
const IDS: [&str; 3] = ["alpha", "bravo", "charlie"];
/// How often the test reads the page while it waits for a change. The
/// page itself asks lb once a second.
const POLL: Duration = Duration::from_millis(100);

/// chromedriver on a port it picked itself (`--port=0`), in a process
/// group of its own that the Chromium it starts joins. Dropped, also
/// when the test panics, it kills that group by its id (chromedriver's
/// pid), so no browser outlives the test (Chromium's crash handlers
/// live in groups of their own, and exit when the browser is gone).
/// Chromium's profile and its temporary files (`TMPDIR`) are in `dir`,
/// removed after the kill: a killed browser leaves its lock files.
struct Chromedriver {
    url: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl Chromedriver {
    fn start() -> Chromedriver {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let mut child = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .env("TMPDIR", dir.path())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot start {CHROMEDRIVER}: {err} \
                     (scripts/test-browser.sh installs it)"
                )
            });
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut driver = Chromedriver {
            url: String::new(),
            child,
            dir,
        };
        // Its output is read to the end, so that it never blocks on a
        // full pipe; the lines go to the test while it wants them.
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = send.send(line);
            }
        });
        let until = Instant::now() + DEADLINE;
        let port = loop {
            let left = until.saturating_duration_since(Instant::now());
            let line = lines.recv_timeout(left).unwrap_or_else(|err| {
                panic!("chromedriver said no port ({err})")
            });
            // "ChromeDriver was started successfully on port 35381."
            if let Some((_, port)) = line.split_once("successfully on port ") {
                break port.trim_end_matches('.').trim().to_owned();
            }
        };
        driver.url = format!("http://127.0.0.1:{port}");
        driver
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let group = Pid::from_child(&self.child);
        let _ = kill_process_group(group, Signal::KILL);
        let _ = self.child.wait();
    }
}

/// A headless Chromium session showing a page of 1200x800.
async fn open_browser(driver: &Chromedriver) -> Client {
    let profile = driver.dir.path().join("profile");
    let args = [
        // Root in a container: no sandbox, and no GPU to find.
        "--headless=new".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--hide-scrollbars".to_owned(),
        "--window-size=1200,800".to_owned(),
        format!("--user-data-dir={}", profile.display()),
    ];
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({ "binary": CHROMIUM, "args": args }),
    );
    // Plain HTTP to chromedriver on loopback: no TLS needed.
    let mut builder = ClientBuilder::new(HttpConnector::new());
    builder.capabilities(capabilities);
    let browser = deadline("a Chromium session", builder.connect(&driver.url))
        .await
        .expect("chromedriver starts a Chromium session");
    // --window-size counts the window, not the page in it: grow the
    // 1200x800 window by what its frame takes, so that the page itself
    // is 1200x800, the screenshot's size.
    let inner = browser.execute("return [innerWidth, innerHeight];", vec![]);
    let inner = deadline("the page's size", inner).await.expect("a size");
    let (width, height) = (
        inner[0].as_u64().expect("a width") as u32,
        inner[1].as_u64().expect("a height") as u32,
    );
    let frame = (1200 - width.min(1200), 800 - height.min(800));
    let resize = browser.set_window_size(1200 + frame.0, 800 + frame.1);
    deadline("a resize", resize)
        .await
        .expect("the window resizes");
    browser
}

/// Saves what the browser shows as `target/admin/NAME`.
async fn save_screenshot(browser: &Client, name: &str) {
    let png = deadline("a screenshot", browser.screenshot())
        .await
        .expect("Chromium takes a screenshot");
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target folder holds tmp")
        .join("admin");
    std::fs::create_dir_all(&target).expect("target/admin is made");
    std::fs::write(target.join(name), png).expect("the screenshot is saved");
}

/// What the page shows now, read from its DOM through the hooks
/// status.html documents.
async fn shown(browser: &Client) -> Value {
    let script = r#"
        const lost = document.getElementById("lost");
        const rows = [...document.querySelectorAll("tr[data-backend]")];
        return {
            loadedOnce: window.loadedOnce === true,
            refreshes: Number(document.body.dataset.refreshes || 0),
            backends: rows.map((row) => ({
                id: row.dataset.backend,
                state: row.dataset.state,
                why: row.querySelector('[data-field="why"]').textContent,
            })),
            accepted: Number(document.querySelector(
                '#listener [data-field="accepted"]').textContent
                .replace(/,/g, "")) || 0,
            decisions:
                document.querySelectorAll("tr[data-decision]").length,
            lost: !lost.hidden,
            lostText: lost.textContent,
        };
    "#;
    let read = browser.execute(script, vec![]);
    deadline("the page's DOM", read)
        .await
        .expect("the page runs the script")
}

/// Reads the page every [`POLL`] until it shows what `wanted` wants;
/// what it showed then. Bounded: by the deadline, and by a count.
async fn wait_for_page(
    browser: &Client,
    what: &str,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    let rounds = DEADLINE.as_millis() / POLL.as_millis();
    let mut page = Value::Null;
    for _ in 0..rounds {
        page = shown(browser).await;
        if wanted(&page) {
            return page;
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("{what}: not shown; the page showed {page:#}")
}

/// `(id, state)` of each backend row, in order.
fn states(page: &Value) -> Vec<(String, String)> {
    let rows = page["backends"].as_array().cloned().unwrap_or_default();
    rows.iter()
        .map(|row| {
            let text = |key: &str| row[key].as_str().unwrap_or("").to_owned();
            (text("id"), text("state"))
        })
        .collect()
}

/// The row of backend `id` on the page.
fn row<'a>(page: &'a Value, id: &str) -> Option<&'a Value> {
    page["backends"]
        .as_array()?
        .iter()
        .find(|row| row["id"] == id)
}

fn all_up(page: &Value) -> bool {
    let want: Vec<_> = IDS
        .iter()
        .map(|id| ((*id).to_owned(), "up".to_owned()))
        .collect();
    states(page) == want
}

/// A config file for the real binary in `dir`: lb on a port the OS
/// picks, the admin listener on `admin` with a token, checks every
/// 200 ms, and `backends` named [`IDS`].
fn config_file(dir: &Path, backends: &[SocketAddr], admin: &str) -> PathBuf {
    std::fs::write(dir.join("admin.token"), format!("{TOKEN}\n"))
        .expect("the token is written");
    let mut text = format!(
        "listen = \"127.0.0.1:0\"\n\
         [admin]\nlisten = \"{admin}\"\ntoken_file = \"admin.token\"\n\n\
         [health]\ninterval = \"200ms\"\ntimeout = \"500ms\"\n"
    );
    for (addr, id) in backends.iter().zip(IDS) {
        text.push_str(&format!(
            "\n[[backends]]\naddress = \"{addr}\"\nid = \"{id}\"\n"
        ));
    }
    let path = dir.join("lb.toml");
    std::fs::write(&path, text).expect("the config is written");
    path
}

/// Starts `lb` with the config at `path`; it and its admin address.
async fn start_lb(path: &Path) -> (RunningBinary, SocketAddr) {
    let mut lb =
        RunningBinary::start(LB, &["--config", &path.display().to_string()])
            .await;
    let admin = lb.wait_for_address("admin on ").await;
    (lb, admin)
}

/// The state of backend `id` as lb's own API says it now.
async fn api_state(admin: SocketAddr, id: &str) -> String {
    let request = reqwest::Client::new()
        .get(format!("http://{admin}/api/stats"))
        .bearer_auth(TOKEN)
        .send();
    let stats: Value = deadline("GET /api/stats", async {
        let response = request.await.expect("lb answers");
        assert!(response.status().is_success(), "{}", response.status());
        response.json().await.expect("JSON")
    })
    .await;
    let backends = stats["backends"].as_array().expect("a list of backends");
    let backend = backends.iter().find(|b| b["id"] == id).expect("listed");
    backend["state"].as_str().expect("a state").to_owned()
}

/// `count` clients through lb, one after the other, so that the page
/// has connections, bytes and decisions to show.
async fn traffic(lb: SocketAddr, count: usize) {
    for _ in 0..count {
        who_answers(lb).await;
    }
}

#[tokio::test]
#[ignore = "needs Debian's chromium and chromium-driver: \
            scripts/test-browser.sh installs them and runs it"]
async fn the_status_page_follows_a_backend_down_and_lb_gone() {
    let mut backends = RunningBackend::start_many(3).await;
    let addrs: Vec<_> = backends.iter().map(|backend| backend.addr).collect();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = config_file(dir.path(), &addrs, "127.0.0.1:0");
    let (mut lb, admin) = start_lb(&path).await;
    traffic(lb.addr, 9).await;

    let driver = Chromedriver::start();
    let browser = open_browser(&driver).await;
    let page = format!("http://{admin}/#token={TOKEN}");
    deadline("the status page", browser.goto(&page))
        .await
        .expect("the page loads");
    wait_for_page(&browser, "three backends up", all_up).await;
    // A mark on this load of the page: a reload would wipe it.
    let mark = browser.execute("window.loadedOnce = true;", vec![]);
    deadline("a mark", mark)
        .await
        .expect("the page runs scripts");

    // bravo stops. From the moment lb's API calls it down, the page has
    // two refreshes to show it (the one in flight may be older).
    backends.remove(1).stop().await;
    // A few clients before lb has noticed: bravo's turn fails over, which
    // the decisions show (not asserted: the checks may be quicker).
    traffic(lb.addr, 3).await;
    let waited = async {
        for _ in 0..DEADLINE.as_millis() / POLL.as_millis() {
            if api_state(admin, "bravo").await == "down" {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("lb never called bravo down");
    };
    deadline("lb to call bravo down", waited).await;
    let before = shown(&browser).await["refreshes"].as_u64().unwrap_or(0);
    let down = wait_for_page(&browser, "bravo down, with a reason", |page| {
        row(page, "bravo").is_some_and(|row| {
            row["state"] == "down"
                && row["why"]
                    .as_str()
                    .is_some_and(|why| !why.trim().is_empty())
        })
    })
    .await;
    let after = down["refreshes"].as_u64().unwrap_or(0);
    assert!(
        after <= before + 2,
        "bravo showed down {} refreshes after lb said so: {down:#}",
        after - before
    );
    assert_eq!(down["loadedOnce"], true, "the page was reloaded: {down:#}");
    let others: Vec<_> = states(&down)
        .into_iter()
        .filter(|(id, _)| id != "bravo")
        .collect();
    assert_eq!(
        others,
        [("alpha", "up"), ("charlie", "up")]
            .map(|(id, state)| (id.to_owned(), state.to_owned())),
        "{down:#}"
    );

    // What an operator would see: one backend down, traffic behind it.
    traffic(lb.addr, 2).await;
    wait_for_page(&browser, "all the clients counted", |page| {
        page["accepted"].as_u64().unwrap_or(0) >= 9 + 3 + 2
            && page["decisions"].as_u64().unwrap_or(0) >= 10
            && row(page, "bravo").is_some_and(|row| row["state"] == "down")
    })
    .await;
    save_screenshot(&browser, "status-page.png").await;

    // lb is killed: the page says contact is lost, and keeps trying.
    lb.signal(Signal::KILL);
    lb.wait().await;
    let lost = wait_for_page(&browser, "the lost-contact banner", |page| {
        page["lost"] == true
            && page["lostText"]
                .as_str()
                .is_some_and(|text| text.contains("Contact with lb lost"))
    })
    .await;
    assert_eq!(lost["loadedOnce"], true, "the page was reloaded: {lost:#}");
    save_screenshot(&browser, "status-page-lost.png").await;

    // lb again, on the same admin address: the banner goes by itself.
    let path = config_file(dir.path(), &addrs, &admin.to_string());
    let (mut lb, again) = start_lb(&path).await;
    assert_eq!(again, admin);
    let back = wait_for_page(&browser, "the banner gone", |page| {
        page["lost"] == false && row(page, "alpha").is_some()
    })
    .await;
    assert_eq!(back["loadedOnce"], true, "the page was reloaded: {back:#}");

    deadline("closing the session", browser.close())
        .await
        .expect("the session ends");
    lb.signal(Signal::TERM);
    assert!(lb.wait().await.success());
}
