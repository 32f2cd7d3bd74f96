//! Reloading: on SIGHUP, on `POST /api/reload`, or when the config file
//! changes (`watch = true`), `lb` reads and checks the whole new
//! configuration and swaps its pool (`pool.rs`).
//!
//! A config that fails the check is refused with the same `FILE:LINE:
//! key: what is wrong` as at start, and the running pool stays. What a
//! new pool cannot carry is refused too: `listen` and `backlog` (the
//! socket is bound once; an upgrade hands it on), `[admin]` and
//! `[upgrade]`. Everything else applies to the clients that come after
//! the swap; a connection in flight keeps the pool it started with. Each
//! reload is one log line that says what changed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lab_common::proxy_protocol;
use tracing::{info, warn};

use crate::Balancer;
use crate::config::{BackendConfig, Config, show_duration};

/// Where a reload reads the configuration: the file with the command
/// line's flags over it, as at start.
pub type Source = Arc<dyn Fn() -> Result<Config, String> + Send + Sync>;

/// Reloads one balancer from its source.
pub struct Reloader {
    balancer: Arc<Balancer>,
    source: Source,
}

impl Reloader {
    pub fn new(balancer: Arc<Balancer>, source: Source) -> Arc<Reloader> {
        Arc::new(Reloader { balancer, source })
    }

    /// Reads the configuration again and swaps it in; `trigger` says
    /// what asked (`SIGHUP`, `the admin API`, `a change of FILE`) for the
    /// log line. `Ok` lists what changed; `Err` is why it was refused.
    pub async fn reload(&self, trigger: &str) -> Result<Vec<String>, String> {
        let _one_at_a_time = self.balancer.reloading.lock().await;
        // systemd shows the service `reloading` until READY=1.
        crate::service::reloading();
        let outcome = (self.source)().and_then(|config| {
            apply(&self.balancer, config).map_err(|err| err.to_string())
        });
        crate::service::reloaded();
        self.balancer.stats.reloaded(outcome.is_ok());
        match &outcome {
            Ok(changed) if changed.is_empty() => {
                info!("reloaded: nothing changed ({trigger})")
            }
            Ok(changed) => {
                info!("reloaded: {} ({trigger})", changed.join("; "))
            }
            Err(err) => {
                warn!("reload refused: {err}; nothing changed ({trigger})")
            }
        }
        outcome
    }

    /// With `watch = true`: reloads when `path` changes, once per burst
    /// of changes (an editor writes a file in several steps). The watch
    /// is on the file's folder, so a file replaced by a rename (as most
    /// editors and `mv` do) is still seen.
    pub fn watch(self: &Arc<Reloader>, path: &Path) -> Result<(), String> {
        use notify::{RecursiveMode, Watcher};
        let file = std::path::absolute(path)
            .map_err(|err| format!("cannot watch {}: {err}", path.display()))?;
        let folder = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let (tell, mut changes) = tokio::sync::mpsc::unbounded_channel();
        let watched = file.clone();
        let mut watcher = notify::recommended_watcher(
            move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event
                    && is_written(&event.kind)
                    && event.paths.contains(&watched)
                {
                    let _ = tell.send(());
                }
            },
        )
        .map_err(|err| format!("cannot watch {}: {err}", path.display()))?;
        watcher
            .watch(&folder, RecursiveMode::NonRecursive)
            .map_err(|err| format!("cannot watch {}: {err}", path.display()))?;
        let reloader = self.clone();
        let trigger = format!("a change of {}", path.display());
        tokio::spawn(async move {
            // The watcher lives as long as this task.
            let _watcher = watcher;
            while changes.recv().await.is_some() {
                // Debounce: wait until the file has been quiet a while.
                while let Ok(Some(())) =
                    tokio::time::timeout(DEBOUNCE, changes.recv()).await
                {
                }
                let _ = reloader.reload(&trigger).await;
            }
        });
        Ok(())
    }
}

/// Whether a file event is a change of its contents: a write, a
/// creation, a rename or a removal. Not a read: each reload reads the
/// file, and would start the next one, for ever; nor a `touch`'s new
/// times.
fn is_written(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    use notify::event::ModifyKind;
    matches!(
        kind,
        EventKind::Create(_)
            | EventKind::Modify(
                ModifyKind::Data(_) | ModifyKind::Name(_) | ModifyKind::Any
            )
            | EventKind::Remove(_)
    )
}

/// How long the file must be left alone before a watch reloads it.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// Checks `config` against the running balancer, swaps it in, and says
/// what changed.
fn apply(
    balancer: &Balancer,
    config: Config,
) -> Result<Vec<String>, lab_common::Error> {
    let old = balancer.pool().config.clone();
    fixed_keys(&old, &config)?;
    config.validate("the new config")?;
    let mut changed = changes(&old, &config);
    // Read again whatever the config says: a certificate renewed in place
    // has the same path and new contents.
    let front = crate::front_tls(&config)?;
    let digest = crate::front_digest(&config);
    let config = Arc::new(config);
    // The operator's say over a backend that stays is kept: say so.
    let pool = balancer.pool();
    for backend in &config.backends {
        if let Some(running) = pool.backend(&backend.id) {
            let control = running.live.control();
            if control.admin != crate::live::Admin::Enabled {
                changed.push(format!(
                    "backend {} stays {} (set through the admin API)",
                    backend.id,
                    control.admin.as_str()
                ));
            }
            if let Some(weight) = control.weight {
                changed.push(format!(
                    "backend {} keeps weight {weight} (set through the \
                     admin API)",
                    backend.id
                ));
            }
        }
    }
    balancer.swap_in(config)?;
    if balancer.set_front_tls(front, digest) {
        changed.push("front certificate: new".to_owned());
    }
    Ok(changed)
}

/// Refuses a change to what a reload cannot change.
fn fixed_keys(old: &Config, new: &Config) -> Result<(), String> {
    let fixed = [
        ("listen", old.listen != new.listen),
        ("backlog", old.limits.backlog != new.limits.backlog),
        ("log_format", old.log_format != new.log_format),
        (
            "limits.buffer_budget",
            old.limits.buffer_budget != new.limits.buffer_budget,
        ),
        (
            "limits.splice_pipes",
            old.limits.splice_pipes != new.limits.splice_pipes,
        ),
        ("[admin]", old.admin != new.admin),
        ("[upgrade]", old.upgrade != new.upgrade),
        ("[discovery]", old.discovery != new.discovery),
    ];
    for (key, differs) in fixed {
        if differs {
            return Err(format!(
                "{key} changed: restart (or upgrade) to change {key}"
            ));
        }
    }
    Ok(())
}

// ANCHOR: changes
/// What differs between two configs, one phrase each:
/// `algorithm round-robin → least-connections`, `backend b added`,
/// `backend a: weight 1 → 2`.
pub fn changes(old: &Config, new: &Config) -> Vec<String> {
    let mut changed = Vec::new();
    let mut differs = |key: &str, before: String, after: String| {
        if before != after {
            changed.push(format!("{key} {before} → {after}"));
        }
    };
    differs(
        "algorithm",
        old.algorithm.to_string(),
        new.algorithm.to_string(),
    );
    differs(
        "retries",
        format!("{:?}", old.retries),
        format!("{:?}", new.retries),
    );
    differs("seed", format!("{:?}", old.seed), format!("{:?}", new.seed));
    differs("watch", old.watch.to_string(), new.watch.to_string());
    differs(
        "accept_proxy",
        old.accept_proxy.to_string(),
        new.accept_proxy.to_string(),
    );
    let (a, b) = (&old.timeouts, &new.timeouts);
    for (key, before, after) in [
        ("timeouts.connect", a.connect, b.connect),
        ("timeouts.tls_handshake", a.tls_handshake, b.tls_handshake),
        ("timeouts.proxy_header", a.proxy_header, b.proxy_header),
        ("timeouts.idle", a.idle, b.idle),
        ("timeouts.half_closed", a.half_closed, b.half_closed),
        ("timeouts.drain", a.drain, b.drain),
        (
            "timeouts.unacknowledged",
            a.unacknowledged,
            b.unacknowledged,
        ),
        (
            "limits.queue_timeout",
            old.limits.queue_timeout,
            new.limits.queue_timeout,
        ),
        ("health.interval", old.health.interval, new.health.interval),
        ("health.timeout", old.health.timeout, new.health.timeout),
        ("health.cooldown", old.health.cooldown, new.health.cooldown),
        (
            "health.hold_down",
            old.health.hold_down,
            new.health.hold_down,
        ),
        ("health.stable", old.health.stable, new.health.stable),
        (
            "health.slow_start",
            old.health.slow_start,
            new.health.slow_start,
        ),
    ] {
        differs(key, show_duration(before), show_duration(after));
    }
    let (a, b) = (&old.limits, &new.limits);
    for (key, before, after) in [
        (
            "limits.max_connections",
            a.max_connections,
            b.max_connections,
        ),
        ("limits.max_handshakes", a.max_handshakes, b.max_handshakes),
        ("health.rise", old.health.rise, new.health.rise),
        ("health.fall", old.health.fall, new.health.fall),
        ("health.failures", old.health.failures, new.health.failures),
        (
            "health.max_ejection_percent",
            old.health.max_ejection_percent,
            new.health.max_ejection_percent,
        ),
        (
            "health.panic_threshold",
            old.health.panic_threshold,
            new.health.panic_threshold,
        ),
    ] {
        differs(key, before.to_string(), after.to_string());
    }
    differs(
        "health.kind",
        old.health.kind.to_string(),
        new.health.kind.to_string(),
    );
    differs(
        "health.path",
        old.health.path.clone(),
        new.health.path.clone(),
    );
    let path = |path: &Option<PathBuf>| match path {
        Some(path) => path.display().to_string(),
        None => "none".to_owned(),
    };
    let front = |config: &Config| match &config.tls.front {
        Some(front) => path(&Some(front.cert.clone())),
        None => "none".to_owned(),
    };
    differs("tls.cert", front(old), front(new));
    differs("tls.ca", path(&old.tls.ca), path(&new.tls.ca));
    differs(
        "tls.insecure",
        old.tls.insecure.to_string(),
        new.tls.insecure.to_string(),
    );
    differs(
        "tls.resumption",
        old.tls.resumption.to_string(),
        new.tls.resumption.to_string(),
    );
    changed.extend(backend_changes(&old.backends, &new.backends));
    changed
}

fn backend_changes(
    old: &[BackendConfig],
    new: &[BackendConfig],
) -> Vec<String> {
    let mut changed = Vec::new();
    for backend in new {
        let Some(before) = old.iter().find(|b| b.id == backend.id) else {
            changed.push(format!("backend {} added", backend.id));
            continue;
        };
        let mut what = Vec::new();
        if before.address != backend.address {
            what.push(format!(
                "address {} → {}",
                before.address, backend.address
            ));
        }
        if before.weight != backend.weight {
            what.push(format!("weight {} → {}", before.weight, backend.weight));
        }
        if before.max_connections != backend.max_connections {
            let show = |max: Option<u32>| {
                max.map_or("none".to_owned(), |max| max.to_string())
            };
            what.push(format!(
                "max_connections {} → {}",
                show(before.max_connections),
                show(backend.max_connections)
            ));
        }
        if before.send_proxy != backend.send_proxy {
            let show = |version: Option<proxy_protocol::Version>| {
                version.map_or("none".to_owned(), |v| v.to_string())
            };
            what.push(format!(
                "send_proxy {} → {}",
                show(before.send_proxy),
                show(backend.send_proxy)
            ));
        }
        if !what.is_empty() {
            changed.push(format!(
                "backend {}: {}",
                backend.id,
                what.join(", ")
            ));
        }
    }
    for backend in old {
        if !new.iter().any(|b| b.id == backend.id) {
            changed.push(format!("backend {} removed", backend.id));
        }
    }
    changed
}
// ANCHOR_END: changes

#[cfg(test)]
mod tests {
    use super::*;
    use crate::select::Algorithm;

    fn backends(list: &[(&str, u32)]) -> Vec<BackendConfig> {
        list.iter()
            .map(|&(id, weight)| BackendConfig {
                id: id.to_owned(),
                weight,
                ..BackendConfig::at("127.0.0.1:1".parse().unwrap())
            })
            .collect()
    }

    #[test]
    fn changes_name_each_difference() {
        let old = Config {
            algorithm: Algorithm::WeightedRoundRobin,
            backends: backends(&[("a", 1), ("b", 1)]),
            ..Config::default()
        };
        let mut new = Config {
            algorithm: Algorithm::LeastConnections,
            backends: backends(&[("a", 2), ("c", 1)]),
            ..Config::default()
        };
        new.timeouts.idle = Duration::from_secs(60);
        new.accept_proxy = true;
        new.tls.resumption = false;
        new.backends[0].send_proxy = Some(proxy_protocol::Version::V2);
        assert_eq!(
            changes(&old, &new),
            [
                "algorithm weighted-round-robin → least-connections",
                "accept_proxy false → true",
                "timeouts.idle 5m → 1m",
                "tls.resumption true → false",
                "backend a: weight 1 → 2, send_proxy none → v2",
                "backend c added",
                "backend b removed",
            ]
        );
        assert!(changes(&old, &old).is_empty());
    }

    /// A reload reads the file: a read must not start the next reload.
    #[test]
    fn only_a_change_of_the_file_is_a_reason_to_reload() {
        use notify::EventKind;
        use notify::event::{
            AccessKind, AccessMode, CreateKind, DataChange, MetadataKind,
            ModifyKind, RenameMode,
        };
        let reloads = [
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Create(CreateKind::File),
        ];
        for kind in reloads {
            assert!(is_written(&kind), "{kind:?}");
        }
        let ignored = [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
        ];
        for kind in ignored {
            assert!(!is_written(&kind), "{kind:?}");
        }
    }

    #[test]
    fn listen_and_the_other_fixed_keys_are_refused() {
        let old = Config::default();
        let new = Config {
            listen: "127.0.0.1:3001".parse().unwrap(),
            ..Config::default()
        };
        assert_eq!(
            fixed_keys(&old, &new).unwrap_err(),
            "listen changed: restart (or upgrade) to change listen"
        );
        let mut new = Config::default();
        new.limits.backlog = 16;
        assert!(fixed_keys(&old, &new).unwrap_err().starts_with("backlog"));
        assert!(fixed_keys(&old, &Config::default()).is_ok());
    }
}
