//! The small config files in `balancer/examples/`, which the tutorial's
//! part 2 runs: each one passes `lb --check-config`, and every one the
//! tutorial names exists.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use lab_common::testing::run_to_end;

const LB: &str = env!("CARGO_BIN_EXE_lb");

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.toml` file in `balancer/examples/`, by file name.
fn example_files() -> BTreeSet<String> {
    let dir = crate_dir().join("examples");
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", dir.display()));
    entries
        .map(|entry| entry.expect("a readable directory entry").file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".toml"))
        .collect()
}

/// The example files `tutorial.md` names (`balancer/examples/NAME.toml`).
fn examples_in_tutorial() -> BTreeSet<String> {
    let tutorial = crate_dir().join("../tutorial.md");
    let text = std::fs::read_to_string(&tutorial).unwrap_or_else(|err| {
        panic!("cannot read {}: {err}", tutorial.display())
    });
    const PREFIX: &str = "balancer/examples/";
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices(PREFIX) {
        let rest = &text[at + PREFIX.len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
            .collect();
        // A full stop after the name ends the sentence, not the name;
        // `balancer/examples/` alone names the folder.
        let name = name.trim_end_matches('.');
        if name.ends_with(".toml") {
            names.insert(name.to_owned());
        }
    }
    names
}

#[tokio::test]
async fn every_example_passes_check_config() {
    let files = example_files();
    // The tutorial runs at least these; an empty folder must not pass.
    for wanted in ["http-checks.toml", "limits.toml", "timeouts.toml"] {
        assert!(files.contains(wanted), "no {wanted} in {files:?}");
    }
    for name in &files {
        let path: PathBuf = crate_dir().join("examples").join(name);
        let path = path.display().to_string();
        let (code, stdout, stderr) =
            run_to_end(LB, &["--check-config", &path]).await;
        assert_eq!(code, 0, "{name}: {stderr}");
        assert!(
            stdout.starts_with(&format!("{path}: ok: ")),
            "{name}: {stdout}"
        );
    }
}

#[tokio::test]
async fn every_example_the_tutorial_names_exists() {
    let named = examples_in_tutorial();
    assert!(!named.is_empty(), "the tutorial names no example file");
    let files = example_files();
    let missing: Vec<&String> = named.difference(&files).collect();
    assert!(missing.is_empty(), "tutorial.md names missing {missing:?}");
}
