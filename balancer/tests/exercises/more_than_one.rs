//! The exercise of the chapter "lb — more than one".

use balancer::backend::Address;
use balancer::config::{BackendConfig, Config};
use balancer::discovery::{Entry, Listing, join};

const PREFIX: &str = "/lb/backends/";

fn entry(name: &str, json: &str) -> Entry {
    Entry {
        key: format!("{PREFIX}{name}"),
        value: json.as_bytes().to_vec(),
    }
}

/// Two entries for one server under two ids would give it two shares of
/// the clients (and two sets of slots in Maglev's table). Like an id
/// taken twice, an address listed twice is refused: the first one, in
/// the file then the store's order, stays, so every `lb` reading the
/// store keeps the same one.
#[test]
#[ignore = "exercise lb-one-address: scripts/exercise.sh lb-one-address"]
fn an_address_listed_twice_is_refused() {
    let address: Address = "127.0.0.1:4444".parse().expect("an address");
    let mut config = Config {
        backends: vec![BackendConfig::at(address)],
        ..Config::default()
    };
    let listing = Listing {
        entries: vec![
            entry("b", r#"{"address": "127.0.0.1:4445"}"#),
            entry("again", r#"{"address": "127.0.0.1:4444", "id": "x"}"#),
            entry("b-too", r#"{"address": "127.0.0.1:4445", "id": "y"}"#),
        ],
    };
    let refused = join(&mut config, &listing, PREFIX);
    let ids: Vec<&str> =
        config.backends.iter().map(|b| b.id.as_str()).collect();
    assert!(
        ids == ["127.0.0.1:4444", "b"],
        "backends {ids:?} after the join: one server joined under two \
         ids; join should refuse an entry whose address a backend before \
         it already has"
    );
    assert_eq!(refused.len(), 2, "each refused entry is said: {refused:?}");
    assert!(
        refused[0].starts_with("key /lb/backends/again refused: ")
            && refused[0].contains("127.0.0.1:4444"),
        "the refusal names the key and the address: {}",
        refused[0]
    );
}
