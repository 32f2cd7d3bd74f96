//! Discovery: backends listed somewhere other than the config file, and
//! followed as that list changes.
//!
//! A [`Discovery`] is a source of backend lists: it sends every new list
//! it learns of, as raw entries (a key and its value), on a channel. The
//! file's `[[backends]]` are the other source: every reload reads them.
//! [`Discovered::apply`] joins the two into one config, so that a change
//! in a store is a reload that did not come from the file: it goes
//! through the same checks, the same swap of the pool, and the same log
//! line. The pool never learns where a backend came from.
//!
//! etcd (`etcd.rs`, the cargo feature `etcd`) is the one source built
//! in; DNS SRV or Consul would be another module with the same trait.

#[cfg(feature = "etcd")]
mod etcd;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::warn;

use crate::config::{
    Config, DiscoveryConfig, DiscoveryKind, backend_from_json,
};
use crate::reload::Reloader;

// ANCHOR: discovery
/// A source of backend lists.
pub trait Discovery: Send + 'static {
    /// What to call it in the log: `etcd (http://127.0.0.1:2379)`.
    fn describe(&self) -> String;

    /// Runs until the process ends, sending each list it learns on
    /// `lists`, and keeping the last one sent while the source cannot be
    /// reached: a source that goes away leaves `lb` with what it knew.
    /// If its first attempt fails, it marks `lists` changed with no list
    /// (`send_modify`), so that `lb` starts at once with the file's.
    fn run(
        self: Box<Self>,
        lists: watch::Sender<Option<Arc<Listing>>>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}
// ANCHOR_END: discovery

/// One list as a source holds it: its entries in the source's order,
/// which decides which of two entries with one id wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    pub entries: Vec<Entry>,
}

/// One backend as the source wrote it: a key, and a JSON object with the
/// keys of a `[[backends]]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Vec<u8>,
}

/// The source a `[discovery]` table names.
pub fn source(config: &DiscoveryConfig) -> Result<Box<dyn Discovery>, String> {
    match config.kind {
        #[cfg(feature = "etcd")]
        DiscoveryKind::Etcd => Ok(Box::new(etcd::Etcd::new(config)?)),
        #[cfg(not(feature = "etcd"))]
        DiscoveryKind::Etcd => Err("[discovery] kind = \"etcd\", but this \
             lb was built without etcd: build it with `--features etcd` \
             (which needs protoc, Debian's protobuf-compiler)"
            .to_owned()),
    }
}

/// How long `lb` waits at start for the source's first list before it
/// serves with the file's backends alone.
pub const FIRST_LIST: Duration = Duration::from_secs(2);

/// A running source: the last list it sent, joined to each config read.
pub struct Discovered {
    name: String,
    prefix: String,
    lists: watch::Receiver<Option<Arc<Listing>>>,
}

impl Discovered {
    /// Starts the source the config names, if any, and waits up to
    /// [`FIRST_LIST`] for its first outcome: a list, or a failure to
    /// reach it (which it logs itself), after which `lb` starts with the
    /// file's backends.
    pub async fn start(config: &Config) -> Result<Option<Discovered>, String> {
        let Some(discovery) = &config.discovery else {
            return Ok(None);
        };
        let source = source(discovery)?;
        let name = source.describe();
        let (tell, mut lists) = watch::channel(None);
        tokio::spawn(source.run(tell));
        let _ = tokio::time::timeout(FIRST_LIST, lists.changed()).await;
        Ok(Some(Discovered {
            name,
            prefix: discovery.prefix.clone(),
            lists,
        }))
    }

    /// `config` with the source's backends after the file's, and a
    /// warning logged for each entry refused.
    pub fn apply(&self, mut config: Config) -> Config {
        let listing = self.lists.borrow().clone();
        if let Some(listing) = listing {
            for refused in join(&mut config, &listing, &self.prefix) {
                warn!("{}: {refused}", self.name);
            }
        }
        config
    }

    /// Reloads whenever the source sends a new list.
    pub fn follow(&self, reloader: Arc<Reloader>) {
        // Not marked unchanged: a list sent between `apply` at start and
        // now would be lost until the next change. At worst, one reload
        // finds nothing changed.
        let mut lists = self.lists.clone();
        let trigger = format!("a change in {}", self.name);
        tokio::spawn(async move {
            while lists.changed().await.is_ok() {
                let _ = reloader.reload(&trigger).await;
            }
        });
    }
}

// ANCHOR: join
/// Adds the entries of `listing` to `config`'s backends, in the source's
/// order, and says why each one left out was refused: a value that is no
/// backend, an id already taken (the file's backends and the entries
/// before win, so every `lb` reading the same store makes the same
/// choice), or a backend that breaks a rule between keys (a `tls://`
/// address with no `ca`).
pub fn join(
    config: &mut Config,
    listing: &Listing,
    prefix: &str,
) -> Vec<String> {
    let mut taken: HashMap<String, String> = config
        .backends
        .iter()
        .map(|backend| (backend.id.clone(), "the file's [[backends]]".into()))
        .collect();
    let mut refused = Vec::new();
    for entry in &listing.entries {
        let name = entry.key.strip_prefix(prefix).unwrap_or(&entry.key);
        let backend = match backend_from_json(name, &entry.value) {
            Ok(backend) => backend,
            Err(err) => {
                refused.push(format!("key {} refused: {err}", entry.key));
                continue;
            }
        };
        if let Some(first) = taken.get(&backend.id) {
            refused.push(format!(
                "key {} refused: its id `{}` is taken by {first}",
                entry.key, backend.id
            ));
            continue;
        }
        config.backends.push(backend);
        if let Err(err) = config.check("") {
            config.backends.pop();
            refused.push(format!("key {} refused: {}", entry.key, err.message));
            continue;
        }
        let id = config.backends.last().map(|b| b.id.clone());
        taken.insert(id.unwrap_or_default(), format!("key {}", entry.key));
    }
    refused
}
// ANCHOR_END: join

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BackendConfig, DEFAULT_PREFIX};

    fn listing(entries: &[(&str, &str)]) -> Listing {
        Listing {
            entries: entries
                .iter()
                .map(|(key, value)| Entry {
                    key: format!("{DEFAULT_PREFIX}{key}"),
                    value: value.as_bytes().to_vec(),
                })
                .collect(),
        }
    }

    fn ids(config: &Config) -> Vec<&str> {
        config.backends.iter().map(|b| b.id.as_str()).collect()
    }

    fn with_store() -> Config {
        let text = "[discovery]\nkind = \"etcd\"\n\
                    endpoints = [\"http://127.0.0.1:2379\"]\n";
        Config::parse(std::path::Path::new("lb.toml"), text).unwrap()
    }

    #[test]
    fn a_file_with_a_store_needs_no_backends() {
        let config = with_store();
        assert!(config.backends.is_empty());
        assert_eq!(config.discovery.unwrap().prefix, DEFAULT_PREFIX);
    }

    #[test]
    fn entries_join_the_file_s_backends_in_the_store_s_order() {
        let mut config = with_store();
        config
            .backends
            .push(BackendConfig::at("127.0.0.1:4444".parse().unwrap()));
        let refused = join(
            &mut config,
            &listing(&[
                ("b", r#"{"address": "127.0.0.1:4446"}"#),
                ("a", r#"{"address": "127.0.0.1:4445", "id": "alpha"}"#),
            ]),
            DEFAULT_PREFIX,
        );
        assert!(refused.is_empty(), "{refused:?}");
        // The id is the key's name after the prefix unless the value
        // gives one.
        assert_eq!(ids(&config), ["127.0.0.1:4444", "b", "alpha"]);
    }

    #[test]
    fn a_bad_value_is_refused_with_its_key_and_the_rest_applies() {
        let mut config = with_store();
        let refused = join(
            &mut config,
            &listing(&[
                ("a", r#"{"address": "127.0.0.1:4444"}"#),
                ("b", r#"{"address": "127.0.0.1:4445", "weight": 0}"#),
                ("c", "not json"),
                ("d", r#"{"address": "127.0.0.1:4446", "wieght": 2}"#),
                ("e", r#"{"address": "tls://127.0.0.1:4447"}"#),
                ("f", r#"{"address": "127.0.0.1:4448"}"#),
            ]),
            DEFAULT_PREFIX,
        );
        assert_eq!(ids(&config), ["a", "f"]);
        assert_eq!(refused.len(), 4, "{refused:#?}");
        assert!(
            refused[0].starts_with(
                "key /lb/backends/b refused: weight: must be at least 1"
            ),
            "{}",
            refused[0]
        );
        assert!(
            refused[1].contains("/lb/backends/c refused: not a JSON object")
        );
        assert!(
            refused[2]
                .contains("/lb/backends/d refused: unknown field `wieght`")
        );
        assert!(refused[3].contains(
            "/lb/backends/e refused: `tls://127.0.0.1:4447` is a TLS backend"
        ));
    }

    #[test]
    fn of_two_keys_with_one_id_the_first_wins_and_both_are_named() {
        let mut config = with_store();
        let refused = join(
            &mut config,
            &listing(&[
                ("one", r#"{"address": "127.0.0.1:4444", "id": "web"}"#),
                ("two", r#"{"address": "127.0.0.1:4445", "id": "web"}"#),
            ]),
            DEFAULT_PREFIX,
        );
        assert_eq!(ids(&config), ["web"]);
        assert_eq!(config.backends[0].address.to_string(), "127.0.0.1:4444");
        assert_eq!(
            refused,
            [
                "key /lb/backends/two refused: its id `web` is taken by key \
              /lb/backends/one"
            ]
        );
    }

    #[test]
    fn the_file_s_backend_wins_over_an_entry_with_its_id() {
        let mut config = with_store();
        config
            .backends
            .push(BackendConfig::at("127.0.0.1:4444".parse().unwrap()));
        let refused = join(
            &mut config,
            &listing(&[(
                "x",
                r#"{"address": "127.0.0.1:4445", "id": "127.0.0.1:4444"}"#,
            )]),
            DEFAULT_PREFIX,
        );
        assert_eq!(config.backends.len(), 1);
        assert!(refused[0].ends_with("is taken by the file's [[backends]]"));
    }
}
