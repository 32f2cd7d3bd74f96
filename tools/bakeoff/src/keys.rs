//! Key movement: how many of N clients, each a distinct source address,
//! change backend when a fifth backend is added to four, and when one of
//! five is removed. Measured through the real `lb`, restarted with each
//! backend list (a maglev table depends only on the list), for maglev,
//! round robin and random; and computed here, without `lb`, for a modulo
//! hash (`hash(address) mod N`), the naive way to pin a client.
//!
//! Round robin and random do not look at the client at all: a client's
//! backend is whichever turn or draw its connection met, so they show
//! what "no affinity" moves, not a hash's failure.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::task::JoinSet;

use crate::backends::Backends;
use crate::clients;
use crate::lb::{Health, Lb, Setup};
use crate::plan::{FIRST_KEY, client_ip, mix};
use crate::progress::Progress;
use crate::stats::{Moved, moved};
use crate::{Algorithm, Error};

/// The algorithms measured through `lb`.
pub const THROUGH_LB: [Algorithm; 3] =
    [Algorithm::Maglev, Algorithm::RoundRobin, Algorithm::Random];

/// Which of the five backends is removed: the third, so that both
/// neighbours' positions shift under a modulo hash.
pub const REMOVED: usize = 2;

/// What moved under one way of choosing.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyMoves {
    /// `maglev`, or `modulo hash`.
    pub name: String,
    /// Measured through `lb` (or computed here).
    pub through_lb: bool,
    /// Four backends, then five.
    pub added: Moved,
    /// Five backends, then four: the third removed.
    pub removed: Moved,
}

/// The three lists of the five backends `all`: four, five, and five
/// without [`REMOVED`].
pub fn lists<T: Copy>(all: &[T; 5]) -> [Vec<T>; 3] {
    let fewer = all
        .iter()
        .enumerate()
        .filter(|&(index, _)| index != REMOVED)
        .map(|(_, &item)| item)
        .collect();
    [all[..4].to_vec(), all.to_vec(), fewer]
}

/// Where the modulo hash sends key `index` among `list`: the key's
/// address, hashed (SplitMix64's finaliser), modulo the list's length.
pub fn modulo_pick<T: Copy>(index: u32, list: &[T]) -> T {
    let address = u32::from(client_ip(FIRST_KEY, index));
    list[(mix(u64::from(address)) % list.len() as u64) as usize]
}

/// The modulo hash's moves over `keys` keys, computed.
pub fn modulo_moves(keys: u32) -> KeyMoves {
    let [four, five, fewer] = lists(&[0usize, 1, 2, 3, 4]);
    let picks = |list: &[usize]| -> Vec<Option<usize>> {
        (0..keys).map(|key| Some(modulo_pick(key, list))).collect()
    };
    let (four, five, fewer) = (picks(&four), picks(&five), picks(&fewer));
    KeyMoves {
        name: "modulo hash".to_owned(),
        through_lb: false,
        added: moved(&four, &five),
        removed: moved(&five, &fewer),
    }
}

/// Measures [`THROUGH_LB`] with `keys` keys, `lanes` at a time, then
/// adds the modulo hash.
pub async fn measure(
    program: &Path,
    keys: u32,
    lanes: usize,
    seed: u64,
    progress: Progress,
) -> Result<Vec<KeyMoves>, Error> {
    let backends = Backends::start(5).await?;
    let all: [SocketAddr; 5] =
        backends.addrs[..].try_into().map_err(|_| "five backends")?;
    let [four, five, fewer] = lists(&all);
    let mut results = Vec::new();
    for (number, algorithm) in THROUGH_LB.into_iter().enumerate() {
        let mut picks = Vec::new();
        for (name, list) in [("4", &four), ("5", &five), ("5 - 1", &fewer)] {
            let step = format!(
                "keys {}/{}: {algorithm}, {name} backends",
                number + 1,
                THROUGH_LB.len()
            );
            let setup = Setup {
                algorithm,
                seed,
                backends: list.clone(),
                health: Health::Off,
            };
            let assigned =
                assign(program, &setup, keys, lanes, progress, &step)
                    .await
                    .map_err(|err| format!("{step}: {err}"))?;
            picks.push(assigned);
        }
        results.push(KeyMoves {
            name: algorithm.name().to_owned(),
            through_lb: true,
            added: moved(&picks[0], &picks[1]),
            removed: moved(&picks[1], &picks[2]),
        });
    }
    backends.stop().await;
    results.push(modulo_moves(keys));
    Ok(results)
}

/// Sends one request from each of `keys` key addresses through a fresh
/// `lb` with `setup`, and returns the answering backend's port for each
/// (`None`: no answer).
async fn assign(
    program: &Path,
    setup: &Setup,
    keys: u32,
    lanes: usize,
    progress: Progress,
    step: &str,
) -> Result<Vec<Option<u16>>, Error> {
    progress.step(step);
    let lb = Lb::start(program, setup).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let mut clients = JoinSet::new();
    for _ in 0..lanes.max(1) {
        let next = next.clone();
        let lb = lb.addr;
        clients.spawn(async move {
            let mut answers = Vec::new();
            // Bounded: each turn takes a key, and there are `keys`.
            loop {
                let key = next.fetch_add(1, Ordering::Relaxed);
                if key >= keys as usize {
                    break answers;
                }
                let from = client_ip(FIRST_KEY, key as u32);
                answers.push((key, clients::request(lb, from).await.ok()));
            }
        });
    }
    let mut picks = vec![None; keys as usize];
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            lane = clients.join_next() => match lane {
                Some(Ok(answers)) => {
                    for (key, port) in answers {
                        picks[key] = port;
                    }
                }
                Some(Err(err)) => return Err(format!("a client: {err}").into()),
                None => break,
            },
            _ = ticks.tick() => {
                let sent = next.load(Ordering::Relaxed).min(keys as usize);
                progress.tick(&format!("{step}: {sent} of {keys} keys"));
            }
        }
    }
    lb.stop().await?;
    Ok(picks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lists_are_four_five_and_five_without_the_third() {
        let [four, five, fewer] = lists(&['a', 'b', 'c', 'd', 'e']);
        assert_eq!(four, ['a', 'b', 'c', 'd']);
        assert_eq!(five, ['a', 'b', 'c', 'd', 'e']);
        assert_eq!(fewer, ['a', 'b', 'd', 'e']);
    }

    #[test]
    fn a_modulo_hash_moves_about_four_fifths_either_way() {
        let moves = modulo_moves(10_000);
        assert_eq!(moves.added.measured, 10_000);
        for fraction in [moves.added.fraction(), moves.removed.fraction()] {
            assert!((0.77..0.83).contains(&fraction), "{moves:?}");
        }
    }

    #[test]
    fn the_modulo_hash_spreads_keys_evenly() {
        let mut counts = [0u32; 5];
        for key in 0..10_000 {
            counts[modulo_pick(key, &[0usize, 1, 2, 3, 4])] += 1;
        }
        assert!(
            counts.iter().all(|&n| (1850..2150).contains(&n)),
            "{counts:?}"
        );
    }
}
