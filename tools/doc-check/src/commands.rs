//! Commands named in the README and the tutorial against what exists:
//! binaries, packages and scripts. The rules are in the crate
//! documentation.

use std::collections::BTreeSet;

use crate::markdown::Doc;
use crate::{Problem, list};

/// What a piece of documentation can name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Named {
    /// `--bin NAME`.
    Bin(String),
    /// `-p NAME` or `--package NAME`.
    Package(String),
    /// `scripts/NAME.sh`, as `NAME.sh`.
    Script(String),
}

/// What exists in the workspace.
#[derive(Clone, Debug, Default)]
pub struct Known {
    pub bins: BTreeSet<String>,
    pub packages: BTreeSet<String>,
    /// Files under `scripts/`, relative to it: `demo.sh`, `lib/lab.sh`.
    pub scripts: BTreeSet<String>,
}

/// Everything one line of code names.
pub fn named_in(code: &str) -> Vec<Named> {
    let mut found = scripts_in(code);
    found.extend(cargo_names_in(code));
    found
}

/// Every `scripts/PATH.sh` in `code`.
fn scripts_in(code: &str) -> Vec<Named> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || "_.-/".contains(c);
    code.match_indices("scripts/")
        .filter_map(|(at, prefix)| {
            let rest = &code[at + prefix.len()..];
            let end = rest.find(|c: char| !is_name(c)).unwrap_or(rest.len());
            let name = rest[..end].trim_end_matches('.');
            let is_script = name.ends_with(".sh") && name.len() > 3;
            is_script.then(|| Named::Script(name.to_owned()))
        })
        .collect()
}

/// The `--bin` and `-p` arguments of the cargo commands in `code`.
fn cargo_names_in(code: &str) -> Vec<Named> {
    let mut found = Vec::new();
    let words: Vec<&str> = code.split_whitespace().collect();
    for command in words.split(|word| ["&&", "||", ";", "|"].contains(word)) {
        let Some(args) = cargo_args(command) else {
            continue;
        };
        let mut args = args.iter();
        while let Some(&arg) = args.next() {
            // `--` hands the rest to the program; `#` starts a comment.
            if arg == "--" || arg.starts_with('#') {
                break;
            }
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) => (flag, Some(value)),
                None => (arg, None),
            };
            let make: fn(String) -> Named = match flag {
                "--bin" => Named::Bin,
                "-p" | "--package" => Named::Package,
                _ => continue,
            };
            // `cargo run --bin` alone lists the binaries: nothing to check.
            let Some(value) = inline.or_else(|| args.next().copied()) else {
                continue;
            };
            let name = value.trim_matches(|c: char| "`'\",.;:()".contains(c));
            if !name.is_empty() {
                found.push(make(name.to_owned()));
            }
        }
    }
    found
}

/// The words after `cargo` if `command` runs cargo (after a prompt,
/// comment leaders and `VAR=value` settings), or all of them if the
/// command is only flags (`--bin 04-round-robin` quoted in a sentence).
fn cargo_args<'a>(command: &'a [&'a str]) -> Option<&'a [&'a str]> {
    let is_setting = |word: &str| {
        word.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    };
    let skip = ["$", ">", "//", "///", "//!", "env"];
    let start = command
        .iter()
        .position(|word| !skip.contains(word) && !is_setting(word))?;
    let first = command[start];
    if first == "cargo" || first.ends_with("/cargo") {
        Some(&command[start + 1..])
    } else if first.starts_with('-') {
        Some(&command[start..])
    } else {
        None
    }
}

/// Every name in the code of `doc` that does not exist.
pub fn check(file: &str, doc: &Doc, known: &Known) -> Vec<Problem> {
    let mut problems = Vec::new();
    for code in &doc.code {
        for named in named_in(&code.text) {
            let (shown, name, what, there) = match &named {
                Named::Bin(name) => ("--bin ", name, "binary", &known.bins),
                Named::Package(name) => {
                    ("-p ", name, "package", &known.packages)
                }
                Named::Script(name) => {
                    ("scripts/", name, "script", &known.scripts)
                }
            };
            if there.contains(name) {
                continue;
            }
            let where_ = if what == "script" {
                "scripts/"
            } else {
                "the workspace"
            };
            let message = format!(
                "`{shown}{name}`: no such {what} in {where_} (there are: {}); \
                 fix the name or add the {what}",
                list(there.iter().map(String::as_str))
            );
            problems.push(Problem::new(file, code.line, message));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bin(name: &str) -> Named {
        Named::Bin(name.into())
    }

    fn package(name: &str) -> Named {
        Named::Package(name.into())
    }

    fn script(name: &str) -> Named {
        Named::Script(name.into())
    }

    fn known() -> Known {
        let set =
            |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
        Known {
            bins: set(&["04-round-robin", "dummy-servers", "lb"]),
            packages: set(&["step-04-round-robin", "dummy-servers"]),
            scripts: set(&["spawn-backends.sh", "lib/lab.sh"]),
        }
    }

    #[test]
    fn reads_the_names_in_cargo_commands() {
        assert_eq!(
            named_in("cargo run --bin 04-round-robin"),
            [bin("04-round-robin")]
        );
        assert_eq!(
            named_in("RUST_LOG=debug cargo run -p dummy-servers -- -p 9"),
            [package("dummy-servers")]
        );
        assert_eq!(
            named_in("$ cargo test --package=a --bin=b # --bin c"),
            [package("a"), bin("b")]
        );
        assert_eq!(named_in("--bin 05-random-robin"), [bin("05-random-robin")]);
        assert_eq!(
            named_in("cargo build && cargo run --bin x | tee log"),
            [bin("x")]
        );
    }

    #[test]
    fn other_programs_flags_are_not_cargo_names() {
        assert!(named_in("nc -p 5000 localhost 3000").is_empty());
        assert!(named_in("cargo run --bin").is_empty());
        assert!(named_in("cargo test --workspace").is_empty());
    }

    #[test]
    fn reads_script_names_anywhere() {
        assert_eq!(
            named_in("scripts/spawn-backends.sh stop && ./scripts/demo.sh"),
            [script("spawn-backends.sh"), script("demo.sh")]
        );
        assert_eq!(named_in("source scripts/lib/x.sh"), [script("lib/x.sh")]);
        assert!(named_in("ls scripts/").is_empty());
    }

    #[test]
    fn an_unknown_binary_package_or_script_fails_with_its_line() {
        // The second span crosses a line break.
        let text = "Run `cargo run --bin 04-round-robin` or `cargo run\n\
                    --bin lb`.\n\n```sh\nscripts/spawn-backends.sh\n\
                    cargo run --bin 04-round-rob\ncargo run -p dummy-server\n\
                    scripts/demo.sh\n```\n";
        let problems = check("README.md", &Doc::parse(text), &known());
        let found: Vec<(usize, bool)> = problems
            .iter()
            .map(|p| (p.line, p.message.contains("in the workspace")))
            .collect();
        assert_eq!(found, [(6, true), (7, true), (8, false)], "{problems:?}");
        assert!(
            problems[0]
                .message
                .contains("04-round-robin, dummy-servers, lb")
        );
        assert!(problems[2].message.contains("`scripts/demo.sh`: no such"));
    }

    #[test]
    fn names_outside_code_are_prose() {
        let text = "The binary 04-round-rob is run with --bin 04-round-rob.\n";
        assert_eq!(check("README.md", &Doc::parse(text), &known()), []);
    }
}
