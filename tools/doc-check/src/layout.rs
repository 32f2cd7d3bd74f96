//! The shape of the workspace: where steps live and how they are named.
//! The rules are in the crate documentation.

use std::collections::BTreeMap;

use crate::Problem;
use crate::workspace::Member;

/// Whether `name` reads `NN-slug`: two digits, then lowercase words of
/// letters and digits joined by single hyphens.
pub fn is_step_name(name: &str) -> bool {
    let Some((number, slug)) = name.split_once('-') else {
        return false;
    };
    number.len() == 2
        && number.bytes().all(|b| b.is_ascii_digit())
        && !slug.is_empty()
        && slug.split('-').all(|word| {
            !word.is_empty()
                && word
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// Checks every member: steps are named and declared as the lab expects,
/// and everyone opts in to the workspace lints.
pub fn check(members: &[Member]) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut numbers: BTreeMap<&str, &str> = BTreeMap::new();
    for member in members {
        let manifest = member.manifest_path();
        if !member.workspace_lints {
            problems.push(Problem::new(
                &manifest,
                0,
                "add `[lints]` with `workspace = true`: without it the \
                 workspace lints do not apply to this member",
            ));
        }
        let Some(name) = member.dir.strip_prefix("steps/") else {
            continue;
        };
        if name.contains('/') || !is_step_name(name) {
            problems.push(Problem::new(
                &manifest,
                0,
                format!(
                    "a step lives in steps/NN-slug (two digits, lowercase \
                     words joined by `-`), not `{}`; rename the folder",
                    member.dir
                ),
            ));
            continue;
        }
        let package = format!("step-{name}");
        if member.package != package {
            problems.push(Problem::new(
                &manifest,
                0,
                format!(
                    "the package of {} must be named `{package}`, not `{}`",
                    member.dir, member.package
                ),
            ));
        }
        if !member.bins.iter().any(|bin| bin == name) {
            problems.push(Problem::new(
                &manifest,
                0,
                format!(
                    "declare the step's binary: `[[bin]]` with \
                     `name = \"{name}\"` and `path = \"src/main.rs\"`"
                ),
            ));
        }
        let number = &name[..2];
        if let Some(other) = numbers.insert(number, &member.dir) {
            problems.push(Problem::new(
                &manifest,
                0,
                format!(
                    "step number {number} is also used by {other}; give each \
                     step its own number"
                ),
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(dir: &str, package: &str, bins: &[&str], lints: bool) -> Member {
        Member {
            dir: dir.into(),
            package: package.into(),
            bins: bins.iter().map(|b| b.to_string()).collect(),
            parent: None,
            workspace_lints: lints,
        }
    }

    #[test]
    fn step_names() {
        for good in ["01-ping", "04-round-robin", "06-tls-front", "10-v2"] {
            assert!(is_step_name(good), "{good}");
        }
        for bad in ["1-ping", "001-ping", "04_round", "04-", "04-Round", "a-b"]
        {
            assert!(!is_step_name(bad), "{bad}");
        }
        assert!(!is_step_name("04-round--robin"));
    }

    #[test]
    fn a_well_formed_workspace_passes() {
        let members = [
            member("lab-common", "lab-common", &[], true),
            // A crate outside steps/ (`lb`'s) keeps its own layout.
            member("balancer", "balancer", &["lb"], true),
            member("steps/01-ping", "step-01-ping", &["01-ping"], true),
        ];
        assert_eq!(check(&members), []);
    }

    #[test]
    fn each_broken_rule_is_reported() {
        let members = [
            member("steps/01-ping", "ping", &["01-ping"], true),
            member("steps/02-fwd", "step-02-fwd", &["fwd"], true),
            member("steps/Three", "step-Three", &["Three"], true),
            member("steps/01-pong", "step-01-pong", &["01-pong"], false),
        ];
        let problems = check(&members);
        let files: Vec<&str> =
            problems.iter().map(|p| p.file.as_str()).collect();
        assert_eq!(
            files,
            [
                "steps/01-ping/Cargo.toml",
                "steps/02-fwd/Cargo.toml",
                "steps/Three/Cargo.toml",
                "steps/01-pong/Cargo.toml",
                "steps/01-pong/Cargo.toml",
            ],
            "{problems:#?}"
        );
        assert!(problems[0].message.contains("`step-01-ping`"));
        assert!(problems[1].message.contains("name = \"02-fwd\""));
        assert!(problems[3].message.contains("workspace = true"));
        assert!(problems[4].message.contains("also used by steps/01-ping"));
    }
}
