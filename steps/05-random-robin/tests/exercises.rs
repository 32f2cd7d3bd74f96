//! The exercise of step 05's chapter. `cargo test` leaves it out
//! (ignored); `scripts/exercise.sh 05-shuffled-rounds` runs it, and it
//! fails until the exercise is done.

use std::collections::HashSet;

use lab_common::HostPort;
use step_05_random_robin::RandomPick;

const PORTS: [u16; 3] = [4444, 4445, 4446];

fn backends() -> Vec<HostPort> {
    PORTS
        .iter()
        .map(|port| format!("127.0.0.1:{port}").parse().unwrap())
        .collect()
}

/// Each round of three picks names every backend once, as round robin
/// does, but in an order drawn at random for each round: exactly even
/// over every round, and still random.
#[test]
#[ignore = "exercise 05-shuffled-rounds: scripts/exercise.sh 05-shuffled-rounds"]
fn every_round_names_each_backend_once_in_a_random_order() {
    let mut orders = HashSet::new();
    for seed in 0..20 {
        let mut random_pick = RandomPick::new(backends(), Some(seed)).unwrap();
        for _round in 0..10 {
            let round: Vec<u16> =
                (0..3).map(|_| random_pick.pick_backend().port()).collect();
            let mut sorted = round.clone();
            sorted.sort();
            assert!(
                sorted == PORTS,
                "a round of three picks named a backend twice: RandomPick \
                 draws every pick on its own instead of dealing each round \
                 in a shuffled order"
            );
            orders.insert(round);
        }
    }
    assert!(
        orders.len() > 1,
        "every round dealt the backends in the same order: that is round \
         robin again; shuffle each round with the generator"
    );
}
