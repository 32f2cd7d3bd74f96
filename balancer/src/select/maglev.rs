//! Maglev: consistent hashing of the client's IP address through a lookup
//! table (Eisenbud et al., "Maglev: A Fast and Reliable Software Network
//! Load Balancer", NSDI 2016, section 3.4).
//!
//! The client's key picks a slot of the table, and the slot names its
//! backend. Three properties follow from how the table is filled:
//!
//! - *Same client, same backend*, in every `lb` process that has the same
//!   backend list: the table depends only on the backends' ids and
//!   weights, through a fixed hash (XXH3, see below), never on the order
//!   in which processes started or on a random seed.
//! - *Even load*: each backend owns slots in proportion to its weight,
//!   within one slot.
//! - *Little disruption*: when a backend leaves the list, its slots are
//!   shared among the others, and most other slots keep their backend,
//!   so most clients stay where they were.
//!
//! A backend that is down keeps its slots; its clients walk the table
//! from their slot in steps of their own (a second hash of the key), and
//! go to the first usable backend they meet (see `order`): not to the
//! slot next door, which would favour some backends. The others' clients
//! do not move at all.

use std::fmt;

use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::{Candidate, Member, Select};

// ANCHOR: maglev_size
/// The table's size for `backends` backends: the smallest prime at least
/// 65,537 and at least 100 slots per backend.
///
/// - Prime, so that every backend's skip (below, between 1 and size - 1)
///   is coprime with the size and its walk reaches every slot.
/// - 100 slots per backend: the paper's rule, which keeps each backend's
///   share of the table, and so of the clients, within about 1% of its
///   due. Here each backend holds its due number of slots to within one
///   slot, so a backend due 100 or more is within 1%; with weights, one
///   whose weight is under 1/655 of the total is due fewer than 100 of
///   65,537 slots, and is less exact.
/// - At least 65,537 (the paper's own table size) rather than exactly
///   100 × backends, so that the size does not change when a backend is
///   added or removed: a table of another size sends almost every key to
///   another slot, and consistent hashing would be lost at the very
///   moment it matters. Up to 655 backends, the size is always 65,537;
///   the table then takes 256 KiB.
pub fn table_size(backends: usize) -> usize {
    let wanted = backends.saturating_mul(SLOTS_PER_BACKEND).max(MIN_SIZE);
    (wanted..)
        .find(|&size| is_prime(size))
        .expect("primes never run out")
}

const MIN_SIZE: usize = 65_537;
const SLOTS_PER_BACKEND: usize = 100;
// ANCHOR_END: maglev_size

/// Seeds of the two hashes of a backend's id (see [`Preference`]). Any
/// two distinct numbers do; changing one changes every table.
const OFFSET_SEED: u64 = 1;
const SKIP_SEED: u64 = 2;

/// Trial division: the sizes are small and this runs once per build.
fn is_prime(number: usize) -> bool {
    number >= 2
        && (2..)
            .take_while(|divisor| divisor * divisor <= number)
            .all(|divisor| !number.is_multiple_of(divisor))
}

/// Where a backend would like its slots, in its order of preference:
/// `offset`, `offset + skip`, `offset + 2 × skip`, ... modulo the size.
/// Each backend's walk is its own pseudo-random order of all the slots.
///
/// Both numbers are XXH3 hashes of the backend's id with two seeds.
/// XXH3 is specified to the bit and its output is frozen, so a table is
/// the same in two processes, two builds, and two versions of the crate;
/// it is also fast and well mixed. Rust's `HashMap` hasher is seeded at
/// random per process. FNV-1a, the usual hand-written choice, is fixed
/// too, but it ends with a single multiplication, so ids that differ
/// only in their last character (`...:4444`, `...:4445`) get hashes a
/// small multiple of its prime apart, and related offsets and skips.
struct Preference {
    /// The slot it tries next.
    slot: usize,
    skip: usize,
}

impl Preference {
    fn new(id: &str, size: usize) -> Preference {
        let hash = |seed| xxh3_64_with_seed(id.as_bytes(), seed);
        Preference {
            slot: (hash(OFFSET_SEED) % size as u64) as usize,
            skip: (hash(SKIP_SEED) % (size as u64 - 1)) as usize + 1,
        }
    }

    /// The next slot in this backend's order, and moves past it.
    fn take(&mut self, size: usize) -> usize {
        let slot = self.slot;
        self.slot = (self.slot + self.skip) % size;
        slot
    }
}

/// How many of `size` slots each weight is due: `size × weight / total`,
/// rounded down, and the slots left over go one each to the largest
/// remainders (ties to the first listed). Every count is then within one
/// slot of the exact share.
fn slot_counts(weights: &[u64], size: usize) -> Vec<usize> {
    let size = size as u128;
    let total: u128 = weights.iter().map(|&weight| u128::from(weight)).sum();
    let mut counts: Vec<usize> = weights
        .iter()
        .map(|&weight| (size * u128::from(weight) / total) as usize)
        .collect();
    let given: usize = counts.iter().sum();
    let mut by_remainder: Vec<usize> = (0..weights.len()).collect();
    by_remainder.sort_by_key(|&index| {
        let remainder = size * u128::from(weights[index]) % total;
        (std::cmp::Reverse(remainder), index)
    });
    for &index in by_remainder.iter().take(size as usize - given) {
        counts[index] += 1;
    }
    counts
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Fills a table of `size` slots (a prime) for `members`.
///
/// As in the paper, the backends take turns; on its turn a backend takes
/// the first slot along its own order of preference that no one has yet.
/// Weights change how many turns a backend gets: in each round, its
/// weight divided by the weights' greatest common divisor (so that
/// weights 2, 2, 2 make the same table as 1, 1, 1), until it holds its
/// due count of slots.
fn fill(members: &[Member], size: usize) -> Vec<u32> {
    // A weight of 0 is refused by the config; here it counts as 1 rather
    // than divide by zero.
    let weights: Vec<u64> = members
        .iter()
        .map(|member| u64::from(member.weight.max(1)))
        .collect();
    let divisor = weights.iter().copied().fold(0, gcd);
    let due = slot_counts(&weights, size);
    let mut preferences: Vec<Preference> = members
        .iter()
        .map(|member| Preference::new(&member.id, size))
        .collect();

    // ANCHOR: maglev_table
    const EMPTY: u32 = u32::MAX;
    let mut table = vec![EMPTY; size];
    let mut held = vec![0; members.len()];
    let mut filled = 0;
    while filled < size {
        for backend in 0..members.len() {
            let turns = weights[backend] / divisor;
            for _ in 0..turns {
                if held[backend] == due[backend] {
                    break;
                }
                // The walk ends: the size is prime, so the walk visits
                // every slot, and one is still empty.
                let mut slot = preferences[backend].take(size);
                while table[slot] != EMPTY {
                    slot = preferences[backend].take(size);
                }
                table[slot] = backend as u32;
                held[backend] += 1;
                filled += 1;
            }
        }
    }
    table
    // ANCHOR_END: maglev_table
}

/// Consistent hashing over Maglev's lookup table.
pub struct Maglev {
    /// Slot → index of its backend.
    table: Vec<u32>,
    /// How many slots each backend holds: a backend with none (its
    /// weight's share is under one slot) is never met in the table.
    slots: Vec<usize>,
}

impl Maglev {
    pub fn new(members: &[Member]) -> Maglev {
        Maglev::with_size(members, table_size(members.len()))
    }

    /// With a table of `size` slots, which must be a prime: the tests'
    /// small tables.
    fn with_size(members: &[Member], size: usize) -> Maglev {
        assert!(is_prime(size), "a Maglev table's size must be prime");
        // Filled in the order of the ids, not of the list: the backends
        // take turns, and ties go to the first, so two `lb`s given the
        // same backends in another order (two files, or a list from a
        // store) would otherwise build different tables. The slots then
        // name each backend by its place in `members`, as `order` reads.
        let mut by_id: Vec<usize> = (0..members.len()).collect();
        by_id.sort_by(|&a, &b| members[a].id.cmp(&members[b].id));
        let sorted: Vec<Member> =
            by_id.iter().map(|&index| members[index].clone()).collect();
        let table = if members.is_empty() {
            Vec::new()
        } else {
            fill(&sorted, size)
                .into_iter()
                .map(|sorted_index| by_id[sorted_index as usize] as u32)
                .collect()
        };
        let mut slots = vec![0; members.len()];
        for &backend in &table {
            slots[backend as usize] += 1;
        }
        Maglev { table, slots }
    }

    /// The client's slot: its key modulo the size. The key is already a
    /// hash (see `client_key`), so every slot is as likely as any other.
    fn slot(&self, key: u64) -> usize {
        (key % self.table.len() as u64) as usize
    }

    /// The backend whose slot `key` falls in: the client's backend when
    /// that one is usable.
    #[cfg(test)]
    fn owner(&self, key: u64) -> usize {
        self.table[self.slot(key)] as usize
    }
}

impl fmt::Debug for Maglev {
    /// The slot counts, not the 65,537 slots.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Maglev")
            .field("size", &self.table.len())
            .field("slots", &self.slots)
            .finish()
    }
}

impl Maglev {
    /// The backends of the slots a client's key visits: its own slot,
    /// then on in steps of a second hash of the key, one lap at most.
    /// The table must not be empty.
    fn walk(&self, key: u64) -> impl Iterator<Item = usize> + '_ {
        let size = self.table.len() as u64;
        let step =
            xxh3_64_with_seed(&key.to_le_bytes(), SKIP_SEED) % (size - 1) + 1;
        let mut slot = self.slot(key) as u64;
        (0..size).map(move |_| {
            let backend = self.table[slot as usize] as usize;
            slot = (slot + step) % size;
            backend
        })
    }
}

impl Select for Maglev {
    fn reads_loads(&self) -> bool {
        false
    }

    /// The owner of the client's own slot (when usable, `pick`'s
    /// answer whatever the others' state).
    fn probe(&self, _count: usize, key: u64) -> Option<usize> {
        if self.table.is_empty() {
            return None;
        }
        Some(self.table[self.slot(key)] as usize)
    }

    fn pick(&self, backends: &[Candidate], key: u64) -> Option<usize> {
        let usable =
            |index: usize| backends.get(index).is_some_and(|b| b.usable);
        // The client's own slot, or the first usable backend its walk
        // meets: a few slots while most backends are usable. Should the
        // first 64 miss, the whole order finds it (or that there is
        // none) at the cost of a pass over the backends.
        if !self.table.is_empty()
            && let Some(backend) = self.walk(key).take(64).find(|&b| usable(b))
        {
            return Some(backend);
        }
        let mut order = Vec::new();
        self.order(backends, key, &mut order);
        order.first().copied()
    }

    fn order(&self, backends: &[Candidate], key: u64, order: &mut Vec<usize>) {
        order.clear();
        let usable =
            |index: usize| backends.get(index).is_some_and(|b| b.usable);
        // The usable backends the walk below can meet.
        let in_table = (0..self.slots.len())
            .filter(|&index| usable(index) && self.slots[index] > 0)
            .count();
        if in_table > 0 {
            // ANCHOR: maglev_lookup
            // The key names a slot, whose backend is the client's. From
            // there the key walks the table in steps of its own `skip`,
            // as each backend walked it when the table was filled, and
            // each usable backend it meets is listed the first time. When
            // the client's backend is down, this sends its clients to the
            // others in proportion to their slots, and the same way in
            // every `lb` (the walk depends on the key and the table
            // alone). Steps of one slot would not: a slot's neighbour is
            // more often some backends' than others' (the fill walks in
            // fixed steps), and the others took 13% to 32% each of a
            // down backend's clients instead of 25%.
            //
            // The size is prime, so the walk could visit every slot; it
            // meets all N backends after about N × ln N steps, stops
            // there, and at worst after one lap.
            let mut listed = vec![false; backends.len()];
            for backend in self.walk(key) {
                if usable(backend) && !listed[backend] {
                    listed[backend] = true;
                    order.push(backend);
                    if order.len() == in_table {
                        break;
                    }
                }
            }
            // ANCHOR_END: maglev_lookup
        }
        // Usable backends with no slot at all come last, in list order.
        for index in 0..backends.len() {
            if usable(index) && self.slots.get(index).is_none_or(|&n| n == 0) {
                order.push(index);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::select::testing::up;

    fn members(weights: &[u32]) -> Vec<Member> {
        weights
            .iter()
            .enumerate()
            .map(|(index, &weight)| Member {
                id: format!("127.0.0.1:{}", 4444 + index),
                weight,
            })
            .collect()
    }

    fn first(maglev: &Maglev, backends: &[Candidate], key: u64) -> usize {
        let mut order = Vec::new();
        maglev.order(backends, key, &mut order);
        order[0]
    }

    #[test]
    fn the_table_size_is_a_prime_that_stays_put() {
        assert_eq!(table_size(1), 65_537);
        assert_eq!(table_size(3), 65_537);
        assert_eq!(table_size(5), 65_537);
        assert_eq!(table_size(655), 65_537);
        // 656 backends need 65,600 slots: the next prime after that.
        assert_eq!(table_size(656), 65_609);
        assert!(is_prime(65_609) && !(65_600..65_609).any(is_prime));
    }

    // ANCHOR: golden_tables
    /// Pins small tables, the offsets and skips behind them, the start of
    /// a full-size table and the client key, so that a change of hash,
    /// of seeds or of the filling order cannot go unnoticed: it would
    /// move clients between two versions of `lb`.
    #[test]
    fn golden_tables() {
        let three = members(&[1, 1, 1]);
        let preferences: Vec<(usize, usize)> = three
            .iter()
            .map(|member| {
                let preference = Preference::new(&member.id, 13);
                (preference.slot, preference.skip)
            })
            .collect();
        assert_eq!(preferences, [(1, 3), (0, 5), (3, 6)]);
        // By hand: backend 0 prefers slots 1, 4, 7, 10, 0, ...; 1 prefers
        // 0, 5, 10, 2, ...; 2 prefers 3, 9, 2, 8, .... Round 1 gives them
        // 1, 0, 3; round 2: 4, 5, 9; round 3: 7, 10, 2; round 4: 6 (10,
        // 0, 3 taken), 12 (2, 7 taken), 8; round 5: 11 to backend 0, due
        // 5 of the 13 slots (the largest remainder, first listed on a
        // tie), the others being full with 4.
        let maglev = Maglev::with_size(&three, 13);
        assert_eq!(maglev.table, [1, 0, 2, 2, 0, 1, 0, 0, 2, 2, 1, 0, 1]);
        // Weights 3, 1, 1 over 17 slots: due 10.2, 3.4, 3.4, so 10, 3, 3
        // and the one left over to backend 1 (remainders tie).
        let weighted = Maglev::with_size(&members(&[3, 1, 1]), 17);
        assert_eq!(
            weighted.table,
            [0, 1, 2, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 2, 0, 2]
        );
        assert_eq!(weighted.slots, [10, 4, 3]);
        // The start of the full-size table for the three dummy backends.
        let full = Maglev::new(&three);
        assert_eq!(
            full.table[..16],
            [2, 1, 1, 0, 1, 2, 2, 1, 0, 0, 1, 2, 0, 1, 0, 2]
        );
        assert_eq!(full.slots, [21_846, 21_846, 21_845]);
        assert_eq!(
            super::super::client_key("192.0.2.7".parse().unwrap()),
            0x54e8_211e_31db_05c1
        );
    }
    // ANCHOR_END: golden_tables

    #[test]
    fn same_key_same_backend_in_every_instance() {
        let list = members(&[1, 2, 1, 1, 3]);
        let one = Maglev::new(&list);
        let other = Maglev::new(&list);
        let backends = up(list.len());
        let mut keys = SmallRng::seed_from_u64(5);
        let (mut order_one, mut order_other) = (Vec::new(), Vec::new());
        for _ in 0..10_000 {
            let key = keys.next_u64();
            one.order(&backends, key, &mut order_one);
            other.order(&backends, key, &mut order_other);
            assert_eq!(order_one, order_other, "key {key}");
            // Asked again, the same instance answers the same.
            one.order(&backends, key, &mut order_other);
            assert_eq!(order_one, order_other, "key {key}");
            let mut sorted = order_one.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, [0, 1, 2, 3, 4]);
        }
    }

    /// The table depends on the set of ids, not on their order: two
    /// `lb`s given one list in two orders send each client to the same
    /// backend (by id).
    #[test]
    fn the_order_of_the_list_does_not_change_the_table() {
        let list = members(&[1, 2, 1, 1, 3]);
        let mut reversed = list.clone();
        reversed.reverse();
        let (one, other) = (Maglev::new(&list), Maglev::new(&reversed));
        let backends = up(list.len());
        let mut keys = SmallRng::seed_from_u64(6);
        for _ in 0..10_000 {
            let key = keys.next_u64();
            let a = &list[first(&one, &backends, key)].id;
            let b = &reversed[first(&other, &backends, key)].id;
            assert_eq!(a, b, "key {key}");
        }
    }

    #[test]
    fn slot_counts_are_within_one_percent_of_the_weighted_share() {
        for weights in [&[1, 1, 1][..], &[1; 5], &[5, 1, 1], &[1, 2, 3, 4, 5]] {
            let maglev = Maglev::new(&members(weights));
            let size = maglev.table.len() as f64;
            let total: u32 = weights.iter().sum();
            for (index, &weight) in weights.iter().enumerate() {
                let share = size * f64::from(weight) / f64::from(total);
                let deviation = (maglev.slots[index] as f64 - share) / share;
                println!(
                    "weights {weights:?}: backend {index} holds {} slots \
                     of {size}, due {share:.2} ({:+.4}%)",
                    maglev.slots[index],
                    deviation * 100.0
                );
                assert!(deviation.abs() < 0.01, "{maglev:?}");
            }
        }
    }

    #[test]
    fn a_million_keys_spread_within_two_percent() {
        for count in [3, 5] {
            let maglev = Maglev::new(&members(&vec![1; count]));
            let backends = up(count);
            let mut keys = SmallRng::seed_from_u64(42);
            let mut clients = vec![0u32; count];
            for round in 0..1_000_000 {
                let key = keys.next_u64();
                let owner = maglev.owner(key);
                // The table is read directly (a debug build walks a
                // million orders slowly); a sample checks that `order`
                // puts the same backend first.
                if round % 100 == 0 {
                    assert_eq!(first(&maglev, &backends, key), owner);
                }
                clients[owner] += 1;
            }
            let most = *clients.iter().max().unwrap();
            let least = *clients.iter().min().unwrap();
            let ratio = f64::from(most) / f64::from(least);
            println!("{count} backends: {clients:?}, max/min {ratio:.4}");
            assert!(ratio <= 1.02, "{clients:?}: max/min {ratio}");
        }
    }

    /// For each backend of five, the share of the keys on the four others
    /// that move to another backend when it leaves the list: for Maglev,
    /// and for a modulo hash (key % N) for comparison.
    fn moved_when_removing_one_of_five() -> Vec<(f64, f64)> {
        let all = members(&[1; 5]);
        let before = Maglev::new(&all);
        let mut keys = SmallRng::seed_from_u64(9);
        let keys: Vec<u64> = (0..200_000).map(|_| keys.next_u64()).collect();
        (0..5)
            .map(|removed| {
                let mut rest = all.clone();
                rest.remove(removed);
                let after = Maglev::new(&rest);
                // Index in `rest` → index in `all`.
                let original =
                    |index: usize| index + usize::from(index >= removed);
                let (mut others, mut moved) = (0, 0);
                let (mut modulo_others, mut modulo_moved) = (0, 0);
                for &key in &keys {
                    let was = before.owner(key);
                    if was != removed {
                        others += 1;
                        let now = original(after.owner(key));
                        moved += usize::from(now != was);
                    }
                    let modulo_was = (key % 5) as usize;
                    if modulo_was != removed {
                        modulo_others += 1;
                        let modulo_now = original((key % 4) as usize);
                        modulo_moved += usize::from(modulo_now != modulo_was);
                    }
                }
                (
                    moved as f64 / others as f64,
                    modulo_moved as f64 / modulo_others as f64,
                )
            })
            .collect()
    }

    #[test]
    fn removing_one_of_five_moves_few_of_the_other_keys() {
        for (removed, (maglev, modulo)) in
            moved_when_removing_one_of_five().into_iter().enumerate()
        {
            println!(
                "removed backend {removed}: {:.2}% of the others' keys \
                 moved (modulo hash: {:.1}%)",
                maglev * 100.0,
                modulo * 100.0
            );
            assert!(maglev <= 0.05, "{:.2}% moved", maglev * 100.0);
        }
    }

    #[test]
    fn a_backend_that_is_down_loses_only_its_own_keys_spread_evenly() {
        let maglev = Maglev::new(&members(&[1; 5]));
        let all_up = up(5);
        let mut two_down = up(5);
        two_down[2].usable = false;
        let mut keys = SmallRng::seed_from_u64(3);
        let mut went_to = [0u32; 5];
        for _ in 0..40_000 {
            let key = keys.next_u64();
            let was = first(&maglev, &all_up, key);
            let now = first(&maglev, &two_down, key);
            if was == 2 {
                went_to[now] += 1;
            } else {
                assert_eq!(
                    now, was,
                    "key {key} moved though its backend is up"
                );
            }
        }
        // Backend 2's clients are shared by the four others (about a
        // quarter each), not handed to one neighbour.
        let moved: u32 = went_to.iter().sum();
        for (index, &count) in went_to.iter().enumerate() {
            if index != 2 {
                let share = f64::from(count) / f64::from(moved);
                assert!((share - 0.25).abs() < 0.03, "{went_to:?}");
            }
        }
    }
}
