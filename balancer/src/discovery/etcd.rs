//! etcd as a source of backends: every key under `[discovery] prefix` is
//! one backend, its value a JSON object with the keys of a `[[backends]]`
//! entry.
//!
//! The prefix is read once, then followed with a watch that starts at
//! the revision just after the read, so no change made in between is
//! missed. If etcd has compacted its history past that revision, the
//! prefix is read again. When etcd cannot be reached (at start, or
//! later), the last list sent stays in force: `lb` says so once, tries
//! again every [`RETRY`] at most, and says once when it is back.
//!
//! A backend registers itself with a lease (`etcdctl lease grant`, `put
//! --lease`, `lease keep-alive`): when it stops renewing, etcd deletes
//! its key, and the watch tells every `lb`.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Certificate, Client, ConnectOptions, EventType, GetOptions, Identity,
    TlsOptions, WatchOptions,
};
use tokio::sync::watch;
use tracing::{info, warn};

use super::{Discovery, Entry, Listing};
use crate::config::DiscoveryConfig;

/// The longest pause between two attempts to reach etcd.
const RETRY: Duration = Duration::from_millis(500);

/// The first pause; doubled at each failure up to [`RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(50);

/// How long one request (connect, read) may take before etcd counts as
/// unreachable. A watch waits as long as it must: etcd's keep-alive
/// pings tell a dead connection from a quiet one.
const REQUEST: Duration = Duration::from_secs(1);

/// How often an idle connection to etcd is pinged: above the 5 s etcd
/// allows by default (`--grpc-keepalive-min-time`), as Go's gRPC client
/// (which enforces 10 s) would.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

pub struct Etcd {
    endpoints: Vec<String>,
    prefix: String,
    options: ConnectOptions,
}

impl Etcd {
    /// Reads what the config names (certificates, the password) now, so
    /// that a missing file stops `lb` at start rather than at each try.
    pub fn new(config: &DiscoveryConfig) -> Result<Etcd, String> {
        let read = |path: &std::path::Path, what: &str| {
            std::fs::read(path).map_err(|err| {
                format!("[discovery] {what} {}: {err}", path.display())
            })
        };
        // Keep-alive pings tell a dead connection from a quiet watch. Not
        // more often than every 5 s: etcd counts quicker pings as abuse
        // and closes the connection after three (`too_many_pings`), which
        // here cut an idle watch every 8 s. A watch on a member cut off
        // from its cluster's majority would go silent, not fail: require
        // a leader, so that it fails and `lb` says so.
        let mut options = ConnectOptions::new()
            .with_connect_timeout(REQUEST)
            .with_keep_alive(KEEP_ALIVE, Duration::from_secs(5))
            .with_keep_alive_while_idle(true)
            .with_require_leader(true);
        if config.ca.is_some() || config.client.is_some() {
            let mut tls = TlsOptions::new();
            if let Some(ca) = &config.ca {
                tls =
                    tls.ca_certificate(Certificate::from_pem(read(ca, "ca")?));
            }
            if let Some(client) = &config.client {
                tls = tls.identity(Identity::from_pem(
                    read(&client.cert, "cert")?,
                    read(&client.key, "key")?,
                ));
            }
            options = options.with_tls(tls);
        }
        if let Some((user, password_file)) = &config.user {
            let password = read(password_file, "password_file")?;
            let password = String::from_utf8(password)
                .map_err(|_| "[discovery] password_file is not UTF-8")?;
            // The first line, as lb.toml says (and `admin.token_file`).
            let password = password.lines().next().unwrap_or_default();
            if password.is_empty() {
                return Err(format!(
                    "[discovery] password_file {}: its first line is empty",
                    password_file.display()
                ));
            }
            options = options.with_user(user, password);
        }
        Ok(Etcd {
            endpoints: config.endpoints.clone(),
            prefix: config.prefix.clone(),
            options,
        })
    }

    /// One connection's life: read the prefix, send the list, then follow
    /// the watch until it fails (`Err`: etcd unreachable) or etcd has
    /// compacted past it (`Ok`: read again). `reached` is set once the
    /// read succeeded.
    async fn follow(
        &self,
        lists: &watch::Sender<Option<Arc<Listing>>>,
        reached: &mut (dyn FnMut(usize) + Send),
    ) -> Result<(), String> {
        let mut client = within(Client::connect(
            self.endpoints.clone(),
            Some(self.options.clone()),
        ))
        .await?;
        let read =
            within(client.get(
                self.prefix.as_str(),
                Some(GetOptions::new().with_prefix()),
            ))
            .await?;
        let mut revision = read.header().map_or(0, |header| header.revision());
        let mut keys: BTreeMap<Vec<u8>, Vec<u8>> = read
            .kvs()
            .iter()
            .map(|kv| (kv.key().to_vec(), kv.value().to_vec()))
            .collect();
        let mut stream = within(
            client.watch(
                self.prefix.as_str(),
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(revision + 1),
                ),
            ),
        )
        .await?;
        // Said before it is sent: the list's reload logs after it.
        reached(keys.len());
        send(lists, &keys);
        loop {
            let message = stream
                .message()
                .await
                .map_err(|err| reason(&err))?
                .ok_or("the watch ended")?;
            if message.canceled() {
                if message.compact_revision() > 0 {
                    info!(
                        "etcd has compacted past revision {revision}: \
                         reading {} again",
                        self.prefix
                    );
                    return Ok(());
                }
                return Err(format!(
                    "the watch was cancelled: {}",
                    message.cancel_reason()
                ));
            }
            if message.events().is_empty() {
                continue;
            }
            for event in message.events() {
                let Some(kv) = event.kv() else { continue };
                match event.event_type() {
                    EventType::Put => {
                        keys.insert(kv.key().to_vec(), kv.value().to_vec());
                    }
                    EventType::Delete => {
                        keys.remove(kv.key());
                    }
                }
                revision = revision.max(kv.mod_revision());
            }
            send(lists, &keys);
        }
    }
}

impl Discovery for Etcd {
    fn describe(&self) -> String {
        format!("etcd ({})", self.endpoints.join(", "))
    }

    fn run(
        self: Box<Self>,
        lists: watch::Sender<Option<Arc<Listing>>>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            let name = self.describe();
            // None until the first outcome: the first failure is said
            // once, and so is every loss and every return after it.
            let mut reachable: Option<bool> = None;
            let mut pause = FIRST_RETRY;
            loop {
                let mut reached = |count: usize| {
                    let keys = crate::count(count, "key");
                    match reachable {
                        Some(false) => info!(
                            "{name}: reachable again; {keys} under {}",
                            self.prefix
                        ),
                        _ => info!("{name}: {keys} under {}", self.prefix),
                    }
                    reachable = Some(true);
                };
                let outcome = self.follow(&lists, &mut reached).await;
                if let Err(err) = outcome {
                    if reachable.is_none() {
                        // `lb` waits at start for the first outcome: a
                        // list, or this, which wakes it with none.
                        lists.send_modify(|_| {});
                    }
                    if reachable != Some(false) {
                        let list = match lists.borrow().as_deref() {
                            Some(list) => format!(
                                "the last list it sent ({})",
                                crate::count(list.entries.len(), "key")
                            ),
                            None => "the file's backends".to_owned(),
                        };
                        warn!(
                            "{name}: cannot reach it ({err}); keeping {list} \
                             and trying again"
                        );
                        reachable = Some(false);
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RETRY);
                } else {
                    pause = FIRST_RETRY;
                }
            }
        })
    }
}

/// Sends the keys as a list, in etcd's order (its keys' bytes), unless
/// it is the list sent last.
fn send(
    lists: &watch::Sender<Option<Arc<Listing>>>,
    keys: &BTreeMap<Vec<u8>, Vec<u8>>,
) {
    let listing = Listing {
        entries: keys
            .iter()
            .map(|(key, value)| Entry {
                key: String::from_utf8_lossy(key).into_owned(),
                value: value.clone(),
            })
            .collect(),
    };
    lists.send_if_modified(|last| {
        if last.as_deref() == Some(&listing) {
            return false;
        }
        *last = Some(Arc::new(listing));
        true
    });
}

/// A request to etcd, bounded by [`REQUEST`].
async fn within<T>(
    request: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(REQUEST, request).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(reason(&err)),
        Err(_) => Err(format!(
            "no answer within {}",
            crate::config::show_duration(REQUEST)
        )),
    }
}

/// Why a request failed, in a line: gRPC's message, or the transport's
/// chain of causes (`connection refused`), without the debug dump that
/// `Display` gives some of them.
fn reason(err: &etcd_client::Error) -> String {
    use std::error::Error as _;
    let (mut reason, mut cause) = match err {
        etcd_client::Error::GRpcStatus(status) => {
            (status.message().to_owned(), status.source())
        }
        _ => (err.to_string(), err.source()),
    };
    while let Some(inner) = cause {
        let said = inner.to_string();
        // Layers often repeat the message of the one below.
        if !reason.contains(&said) {
            reason = format!("{reason}: {said}");
        }
        cause = inner.source();
    }
    reason
}
