//! What `lb`'s tests share: starting `lb` in-process on a free port, and
//! configs that point it at backends started by the test.

#![allow(dead_code)] // Each test file uses its own part of this.

use std::net::SocketAddr;
use std::time::Duration;

use balancer::Drained;
use balancer::backend::Address;
use balancer::config::{BackendConfig, Config};
use lab_common::testing::RunningStep;

/// `lb` running in this process on 127.0.0.1 and a port the OS chose.
pub struct RunningLb {
    pub addr: SocketAddr,
    running: RunningStep<Drained>,
}

impl RunningLb {
    /// Starts `lb` with `config` (whose `listen` is ignored).
    pub async fn start(config: Config) -> RunningLb {
        let running = RunningStep::start(|listener, shutdown| {
            balancer::run(listener, config, shutdown)
        })
        .await;
        RunningLb {
            addr: running.addr,
            running,
        }
    }

    /// Shuts down and waits for the drain to end.
    pub async fn stop(self) -> Drained {
        self.running.stop().await.expect("lb ran without error")
    }
}

/// A config for backends at `addrs` (plain TCP), with short health-check
/// and timeout settings fit for tests.
pub fn config_for(addrs: &[SocketAddr]) -> Config {
    let backends = addrs
        .iter()
        .map(|addr| {
            let address: Address =
                addr.to_string().parse().expect("a socket address parses");
            BackendConfig::at(address)
        })
        .collect();
    let mut config = Config {
        backends,
        ..Config::default()
    };
    config.health.interval = Duration::from_millis(100);
    config.health.timeout = Duration::from_millis(500);
    config.timeouts.connect = Duration::from_millis(500);
    config.timeouts.drain = Duration::from_secs(5);
    config
}

/// A config whose backends at `addrs` are named `ids` (in order), so
/// that the admin API and the assertions can speak of `a`, `b`, `c`.
pub fn named_config(addrs: &[SocketAddr], ids: &[&str]) -> Config {
    assert_eq!(addrs.len(), ids.len(), "one id per backend");
    let mut config = config_for(addrs);
    for (backend, id) in config.backends.iter_mut().zip(ids) {
        backend.id = (*id).to_owned();
    }
    config
}

// Each test file uses its own part of these too.
#[allow(unused_imports)]
pub use control::ControlledLb;
#[allow(unused_imports)]
pub use counted::CountedBackend;
#[allow(unused_imports)]
pub use held::HeldClient;

/// `lb` in-process wired as `main` wires it: the balancer serving its
/// listener, a [`Reloader`](balancer::reload::Reloader) and the admin API
/// on their own port, both on 127.0.0.1:0.
mod control {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use balancer::config::Config;
    use balancer::reload::Reloader;
    use balancer::{Balancer, Drained, admin};
    use lab_common::testing::{RunningStep, deadline};
    use reqwest::StatusCode;
    use serde_json::Value;
    use tokio_util::sync::CancellationToken;

    /// `lb` and its admin API. What the next reload reads is
    /// [`ControlledLb::write_config`]'s: the test's stand-in for the file.
    pub struct ControlledLb {
        /// Where clients connect.
        pub addr: SocketAddr,
        /// Where the admin API listens.
        pub admin: SocketAddr,
        pub balancer: Arc<Balancer>,
        pub reloader: Arc<Reloader>,
        file: Arc<Mutex<Config>>,
        running: RunningStep<Drained>,
        admin_stop: CancellationToken,
        api: reqwest::Client,
        token: Option<String>,
    }

    impl ControlledLb {
        /// Starts `lb` with `config` (its `listen` is not used) and an
        /// admin API without a token.
        pub async fn start(config: Config) -> ControlledLb {
            ControlledLb::start_with_token(config, None).await
        }

        /// The same, with an admin API that wants `token` on every
        /// request (as `token_file` makes it).
        pub async fn start_with_token(
            config: Config,
            token: Option<&str>,
        ) -> ControlledLb {
            let admin_listener = lab_common::testing::listener().await;
            ControlledLb::start_on(config, token, admin_listener).await
        }

        /// The same, with the admin API on a listener the test bound.
        pub async fn start_on(
            config: Config,
            token: Option<&str>,
            admin_listener: tokio::net::TcpListener,
        ) -> ControlledLb {
            let file = Arc::new(Mutex::new(config.clone()));
            let balancer =
                Arc::new(Balancer::new(config).expect("the config is usable"));
            let read = file.clone();
            let reloader = Reloader::new(
                balancer.clone(),
                Arc::new(move || {
                    Ok(read.lock().expect("not poisoned").clone())
                }),
            );
            let admin = admin_listener.local_addr().expect("bound");
            let admin_stop = CancellationToken::new();
            tokio::spawn(admin::serve(
                admin_listener,
                admin::Admin {
                    balancer: balancer.clone(),
                    reloader: reloader.clone(),
                    token: token.map(str::to_owned),
                },
                admin_stop.clone(),
            ));
            let serving = balancer.clone();
            let running = RunningStep::start(move |listener, shutdown| {
                balancer::serve(listener, serving, shutdown)
            })
            .await;
            ControlledLb {
                addr: running.addr,
                admin,
                balancer,
                reloader,
                file,
                running,
                admin_stop,
                api: reqwest::Client::new(),
                token: token.map(str::to_owned),
            }
        }

        /// What the next reload reads, as if the file were rewritten.
        pub fn write_config(&self, config: Config) {
            *self.file.lock().expect("not poisoned") = config;
        }

        /// What the file says now.
        pub fn config(&self) -> Config {
            self.file.lock().expect("not poisoned").clone()
        }

        pub fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.admin)
        }

        /// `request` with the token, if this API wants one.
        fn authorized(
            &self,
            request: reqwest::RequestBuilder,
        ) -> reqwest::RequestBuilder {
            match &self.token {
                Some(token) => request.bearer_auth(token),
                None => request,
            }
        }

        /// Sends `request` (with the token), returns the status and the
        /// JSON body (`null` if none).
        pub async fn send(
            &self,
            request: reqwest::RequestBuilder,
        ) -> (StatusCode, Value) {
            let request = self.authorized(request);
            deadline("an admin API request", async {
                let response = request.send().await.expect("the API answers");
                let status = response.status();
                let body = response.text().await.expect("a body");
                (status, serde_json::from_str(&body).unwrap_or(Value::Null))
            })
            .await
        }

        /// `POST /api/reload`.
        pub async fn reload(&self) -> (StatusCode, Value) {
            self.send(self.api.post(self.url("/api/reload"))).await
        }

        /// `POST /api/backends/{id}/{action}` (`id` already encoded).
        pub async fn act(&self, id: &str, action: &str) -> StatusCode {
            let url = self.url(&format!("/api/backends/{id}/{action}"));
            self.send(self.api.post(url)).await.0
        }

        /// `PUT /api/backends/{id}/weight` with `body`.
        pub async fn put_weight(&self, id: &str, body: &str) -> StatusCode {
            let url = self.url(&format!("/api/backends/{id}/weight"));
            let request = self.api.put(url).body(body.to_owned());
            self.send(request).await.0
        }

        /// `GET /api/backends`.
        pub async fn backends(&self) -> Vec<Value> {
            let (status, list) =
                self.send(self.api.get(self.url("/api/backends"))).await;
            assert_eq!(status, StatusCode::OK, "GET /api/backends: {list}");
            list.as_array().expect("a list of backends").clone()
        }

        /// The backend `id` as `GET /api/backends` shows it, if listed.
        pub async fn backend(&self, id: &str) -> Option<Value> {
            backend_named(&self.backends().await, id).cloned()
        }

        /// Asks `GET /api/backends` until the backend `id` satisfies
        /// `wanted` (`None`: not listed), and returns what it showed.
        /// Polled: the API has no way to push a change, and the changes
        /// waited for here (a check's verdict, a connection's end, a
        /// drain running out) happen inside `lb`'s own tasks. Bounded by
        /// the deadline and by a count.
        pub async fn wait_for(
            &self,
            id: &str,
            what: &str,
            wanted: impl Fn(Option<&Value>) -> bool,
        ) -> Option<Value> {
            let waited = async {
                for _ in 0..20_000 {
                    let list = self.backends().await;
                    let backend = backend_named(&list, id);
                    if wanted(backend) {
                        return backend.cloned();
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let list = self.backends().await;
                panic!("{what}: never seen; the backends: {list:?}")
            };
            deadline(what, waited).await
        }

        /// Waits until backend `id` shows `state`; what it showed.
        pub async fn wait_for_state(&self, id: &str, state: &str) -> Value {
            let what = format!("backend {id} to be {state}");
            self.wait_for(id, &what, |backend| {
                backend.is_some_and(|b| b["state"] == state)
            })
            .await
            .expect("listed")
        }

        /// Stops the admin API, then `lb` (with its drain).
        pub async fn stop(self) -> Drained {
            self.admin_stop.cancel();
            self.running.stop().await.expect("lb ran without error")
        }
    }

    /// The entry of backend `id` in a `GET /api/backends` list.
    pub fn backend_named<'a>(list: &'a [Value], id: &str) -> Option<&'a Value> {
        list.iter().find(|backend| backend["id"] == id)
    }
}

/// A dummy backend behind a door that counts the connections it
/// accepts: clients' and health checks' alike.
mod counted {
    use std::net::SocketAddr;

    use dummy_servers::Fault;
    use dummy_servers::testing::RunningBackend;
    use lab_common::testing::deadline;
    use tokio::net::TcpStream;
    use tokio::sync::watch;
    use tokio::task::JoinHandle;

    /// See the module's docs. `addr` is the door's.
    pub struct CountedBackend {
        pub addr: SocketAddr,
        pub backend: RunningBackend,
        accepts: watch::Receiver<usize>,
        door: JoinHandle<()>,
    }

    impl CountedBackend {
        pub async fn start() -> CountedBackend {
            let backend = RunningBackend::start().await;
            let target = backend.addr;
            let listener = lab_common::testing::listener().await;
            let addr = listener.local_addr().expect("bound");
            let (count, accepts) = watch::channel(0usize);
            let door = tokio::spawn(async move {
                while let Ok((mut outside, _)) = listener.accept().await {
                    count.send_modify(|n| *n += 1);
                    tokio::spawn(async move {
                        let Ok(mut inside) = TcpStream::connect(target).await
                        else {
                            return;
                        };
                        let _ = tokio::io::copy_bidirectional(
                            &mut outside,
                            &mut inside,
                        )
                        .await;
                    });
                }
            });
            CountedBackend {
                addr,
                backend,
                accepts,
                door,
            }
        }

        /// `backend-PORT`: the name its answers carry.
        pub fn name(&self) -> String {
            self.backend.name()
        }

        pub fn set_fault(&self, fault: Fault) -> Fault {
            self.backend.set_fault(fault)
        }

        /// Connections accepted so far.
        pub fn accepts(&self) -> usize {
            *self.accepts.borrow()
        }

        /// Waits until at least `count` connections have been accepted.
        pub async fn wait_for_accepts(&self, count: usize) {
            let mut accepts = self.accepts.clone();
            deadline(
                "connections to arrive",
                accepts.wait_for(|n| *n >= count),
            )
            .await
            .expect("the door is open");
        }
    }

    impl Drop for CountedBackend {
        fn drop(&mut self) {
            self.door.abort();
        }
    }
}

/// A client that keeps its connection to `lb` open and asks a backend
/// through it, one HTTP/1.1 request at a time.
mod held {
    use std::net::SocketAddr;

    use dummy_servers::Echo;
    use lab_common::testing::deadline;
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// See the module's docs.
    pub struct HeldClient<S = TcpStream> {
        stream: S,
    }

    impl HeldClient<TcpStream> {
        /// Connects to `lb` at `addr` and asks once: the client, kept
        /// open, and who answered.
        pub async fn connect(addr: SocketAddr) -> (HeldClient, Echo) {
            let stream = deadline("connect to lb", TcpStream::connect(addr))
                .await
                .expect("lb accepts");
            let mut client = HeldClient::new(stream);
            let echo = client.ask().await;
            (client, echo)
        }

        /// Connects without asking (for clients that will wait in line).
        pub async fn connect_only(addr: SocketAddr) -> HeldClient {
            let stream = deadline("connect to lb", TcpStream::connect(addr))
                .await
                .expect("lb accepts");
            HeldClient::new(stream)
        }
    }

    impl<S: AsyncRead + AsyncWrite + Unpin> HeldClient<S> {
        pub fn new(stream: S) -> HeldClient<S> {
            HeldClient { stream }
        }

        pub fn stream(&self) -> &S {
            &self.stream
        }

        /// One `GET /?format=json` on this connection, and the echo.
        pub async fn ask(&mut self) -> Echo {
            self.send().await;
            self.answer().await
        }

        /// Writes the request without waiting for the answer.
        pub async fn send(&mut self) {
            let request = b"GET /?format=json HTTP/1.1\r\nhost: lb\r\n\r\n";
            deadline("send a request", self.stream.write_all(request))
                .await
                .expect("the request is written");
        }

        /// Reads one answer (head, then `content-length` bytes of body).
        pub async fn answer(&mut self) -> Echo {
            let body = deadline("an answer", read_answer(&mut self.stream))
                .await
                .unwrap_or_else(|err| panic!("no answer: {err}"));
            serde_json::from_slice(&body).expect("the echo is JSON")
        }

        /// Waits until the other side closes (end of stream, or a reset);
        /// whatever came before that is an error.
        pub async fn closed(&mut self) {
            let mut byte = [0u8; 1];
            let read =
                deadline("lb to close", self.stream.read(&mut byte)).await;
            assert!(
                matches!(read, Ok(0) | Err(_)),
                "bytes where a close was expected"
            );
        }
    }

    async fn read_answer<S: AsyncRead + Unpin>(
        stream: &mut S,
    ) -> std::io::Result<Vec<u8>> {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        // A head is a few hundred bytes: read it a byte at a time, so
        // that nothing of the body is taken with it.
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() > 16 * 1024 {
                return Err(std::io::Error::other("an endless head"));
            }
            if stream.read(&mut byte).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_lowercase();
        let length = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|value| value.trim().parse::<usize>().ok())
            .ok_or_else(|| {
                std::io::Error::other(format!("no length: {head}"))
            })?;
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await?;
        Ok(body)
    }
}
