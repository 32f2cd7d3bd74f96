//! The exercise of the chapter "lb — a balancer to keep".

use std::path::Path;

use balancer::Config;

/// A backend whose own `max_connections` is above `lb`'s whole
/// `limits.max_connections` can never be full: `lb` stops accepting
/// first. The setting works, but not as its reader thinks, which is what
/// `Config::warnings` is for.
#[test]
#[ignore = "exercise lb-limit-warning: scripts/exercise.sh lb-limit-warning"]
fn a_backend_limit_above_lbs_own_is_warned_of() {
    let text = r#"
[limits]
max_connections = 100

[[backends]]
address = "127.0.0.1:4444"
max_connections = 500

[[backends]]
address = "127.0.0.1:4445"
max_connections = 50

[[backends]]
address = "127.0.0.1:4446"
"#;
    let config = Config::parse(Path::new("lb.toml"), text)
        .expect("the exercise's config is valid, and must stay so");
    let warnings = config.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("127.0.0.1:4444")
                && w.contains("max_connections")),
        "backend 127.0.0.1:4444 may hold 500 connections, but lb holds at \
         most 100 in all (limits.max_connections), and Config::warnings \
         says nothing of it: add a warning that names the backend and \
         max_connections"
    );
    for quiet in ["127.0.0.1:4445", "127.0.0.1:4446"] {
        assert!(
            !warnings.iter().any(|w| w.contains(quiet)),
            "backend {quiet} has a limit lb can reach (or none), yet a \
             warning names it: {warnings:?}"
        );
    }
    assert!(
        Config::default().warnings().is_empty(),
        "the default config must still have no warning"
    );
}
