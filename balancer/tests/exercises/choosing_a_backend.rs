//! The exercise of the chapter "lb — choosing a backend".

use std::path::Path;

use balancer::Config;
use balancer::select::{self, Algorithm, Candidate, Member};

/// HAProxy's `balance first`: the first usable backend in the list takes
/// every client until it is full (its `max_connections`), then the
/// next. It keeps the other backends idle, which can then be stopped
/// when the load is low.
#[test]
#[ignore = "exercise lb-first: scripts/exercise.sh lb-first"]
fn first_sends_every_client_to_the_first_usable_backend() {
    let Ok(algorithm) = "first".parse::<Algorithm>() else {
        panic!(
            "`first` is not one of lb's algorithms yet: add it to \
             `Algorithm` in balancer/src/select/mod.rs, and write its type \
             in balancer/src/select/first.rs"
        );
    };
    assert_eq!(algorithm.name(), "first", "its name in the config file");
    assert!(
        Algorithm::ALL.contains(&algorithm),
        "Algorithm::ALL lists every algorithm, `first` too"
    );
    let members: Vec<Member> = ["a", "b", "c", "d"]
        .map(|id| Member {
            id: id.to_owned(),
            weight: 1,
        })
        .into();
    let first = select::build(algorithm, &members, None);
    let backends = |loads: [(u32, bool); 4]| {
        loads.map(|(active, usable)| Candidate {
            weight: 1,
            active,
            usable,
        })
    };
    let mut order = Vec::new();
    for _ in 0..3 {
        first.order(
            &backends([(7, true), (0, true), (9, true), (1, true)]),
            0,
            &mut order,
        );
        assert_eq!(
            order,
            [0, 1, 2, 3],
            "with every backend usable, `first` lists them all in the \
             config's order, whatever their load, for every client"
        );
    }
    first.order(
        &backends([(3, false), (0, true), (9, true), (1, false)]),
        0,
        &mut order,
    );
    assert_eq!(
        order,
        [1, 2],
        "the unusable backends (down, out or full) are left out of the order"
    );
    let text =
        "algorithm = \"first\"\n[[backends]]\naddress = \"127.0.0.1:4444\"\n";
    let config = Config::parse(Path::new("lb.toml"), text);
    assert!(
        config.is_ok_and(|config| config.algorithm == algorithm),
        "a config file with algorithm = \"first\" should be accepted"
    );
}
