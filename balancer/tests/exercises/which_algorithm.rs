//! The exercise of the chapter "lb — which algorithm?".

use std::net::{IpAddr, Ipv4Addr};

use balancer::select::{self, Algorithm, Candidate, Member};

fn candidates(active: [u32; 3]) -> [Candidate; 3] {
    active.map(|active| Candidate {
        weight: 1,
        active,
        usable: true,
    })
}

/// Maglev with bounded loads (HAProxy's `hash-balance-factor`): a
/// client whose backend holds more than twice the average of the open
/// connections goes to the next backend of its own walk; every other
/// client stays where it was.
#[test]
#[ignore = "exercise lb-bounded-maglev: scripts/exercise.sh lb-bounded-maglev"]
fn maglev_moves_the_clients_of_a_busy_backend_only() {
    let members: Vec<Member> = ["b1", "b2", "b3"]
        .map(|id| Member {
            id: id.to_owned(),
            weight: 1,
        })
        .into();
    let maglev = select::build(Algorithm::Maglev, &members, None);
    let (mut idle, mut now) = (Vec::new(), Vec::new());
    let mut moved = 0;
    for last in 0..=255 {
        let client = IpAddr::V4(Ipv4Addr::new(127, 2, 0, last));
        let key = select::client_key(client);
        maglev.order(&candidates([0, 0, 0]), key, &mut idle);
        maglev.order(&candidates([5, 5, 5]), key, &mut now);
        assert_eq!(
            now, idle,
            "client {client}: its order changed although the three backends \
             hold 5 connections each: only a busy backend moves clients"
        );
        maglev.order(&candidates([2, 2, 30]), key, &mut now);
        let name = |index: usize| &members[index].id;
        // What lb itself asks for a new client.
        let picked = maglev
            .probe(3, key)
            .or_else(|| maglev.pick(&candidates([2, 2, 30]), key));
        assert_eq!(
            picked,
            Some(now[0]),
            "client {client}: `order` puts {} first but lb would send it \
             to {}, from Maglev's `probe` or `pick`, which a new client \
             asks (balancer/src/select/maglev.rs): they must agree with \
             `order`",
            name(now[0]),
            picked.map_or("none", |index| name(index).as_str())
        );
        if idle[0] == 2 {
            moved += 1;
            assert!(
                now[0] != 2,
                "client {client} still goes to b3, which holds 30 \
                 connections against 2 for b1 and b2: Maglev does not look \
                 at the load (balancer/src/select/maglev.rs, `order`)"
            );
            assert_eq!(
                now[0],
                idle[1],
                "client {client} left b3, for {} rather than {}, the next \
                 backend of its own walk (which every lb would choose \
                 alike): put the busy backend at the end of the order",
                name(now[0]),
                name(idle[1])
            );
            assert_eq!(
                now.len(),
                3,
                "b3 stays in the order, last, for failover"
            );
        } else {
            assert_eq!(
                now[0],
                idle[0],
                "client {client} moved from {} to {}, but its backend is not \
                 the busy one: only b3's clients should move",
                name(idle[0]),
                name(now[0])
            );
        }
    }
    assert!(moved > 0, "no client of the 256 went to b3");
}
