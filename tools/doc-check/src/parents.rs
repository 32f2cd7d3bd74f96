//! Each step's recorded parent (`[package.metadata.lab] parent`, the one
//! source for "what a step changes") against the "Changed since step NN:"
//! line of its `//!` header. The rules are in the crate documentation.

use crate::workspace::Member;
use crate::{Problem, list};

const SINCE: &str = "Changed since step ";

/// Checks `steps` (in order, each with the text of its `src/lib.rs`): the
/// first has no parent, every other one names an earlier step, and its
/// header says "Changed since step NN:" with that step's number.
pub fn check(steps: &[(&Member, String)]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (index, (step, lib_rs)) in steps.iter().enumerate() {
        let (manifest, lib) = (step.manifest_path(), step.lib_rs_path());
        let mut report = |file: &str, line, message: String| {
            problems.push(Problem::new(file, line, message));
        };
        // The header's "Changed since step ..." line: its number, its text.
        let header = lib_rs.lines().take_while(|line| line.starts_with("//!"));
        let said = header.enumerate().find_map(|(at, line)| {
            let text = line.trim_start_matches("//!").trim();
            text.starts_with(SINCE).then_some((at + 1, text))
        });
        let Some(parent) = &step.parent else {
            if index > 0 {
                let wanted = "`parent = \"step-NN-slug\"`";
                report(
                    &manifest,
                    0,
                    format!(
                        "record the step this one changes: \
                         `[package.metadata.lab]` with {wanted}"
                    ),
                );
            } else if let Some((line, _)) = said {
                let message = "the first step changes no other: remove this";
                report(&lib, line, message.into());
            }
            continue;
        };
        let earlier = steps[..index].iter().map(|(step, _)| *step);
        let Some(parent) = earlier.clone().find(|s| &s.package == parent)
        else {
            let names = list(earlier.map(|step| step.package.as_str()));
            report(
                &manifest,
                0,
                format!(
                    "parent `{parent}` is not the package of an earlier step \
                     (those are: {names}); fix [package.metadata.lab] parent"
                ),
            );
            continue;
        };
        let wanted = format!("{SINCE}{}:", parent.number());
        // The number may be followed by a word of explanation, in
        // parentheses, before the colon.
        let names_parent = |said: &str| {
            said.strip_prefix(SINCE)
                .and_then(|rest| rest.strip_prefix(parent.number()))
                .is_some_and(|rest| {
                    rest.starts_with(':') || rest.starts_with(" (")
                })
        };
        match said {
            Some((_, said)) if names_parent(said) => {}
            Some((line, said)) => report(
                &lib,
                line,
                format!(
                    "says `{said}`, but the step's recorded parent is {} \
                     ({manifest}, [package.metadata.lab]); write \
                     `//! {wanted}` or change the parent",
                    parent.package
                ),
            ),
            None => report(
                &lib,
                0,
                format!(
                    "the `//!` header does not say what changed: add `//! \
                     {wanted}` and the list (its parent is {})",
                    parent.package
                ),
            ),
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(folder: &str, parent: Option<&str>) -> Member {
        Member {
            dir: format!("steps/{folder}"),
            package: format!("step-{folder}"),
            parent: parent.map(str::to_owned),
            ..Member::default()
        }
    }

    fn header(since: &str) -> String {
        format!(
            "//! Step NN — T\n//!\n//! Changed since step {since}\n//! - x\n"
        )
    }

    #[test]
    fn parents_that_match_the_headers_pass() {
        let a = step("01-a", None);
        let b = step("02-b", Some("step-01-a"));
        let c = step("03-c", Some("step-01-a"));
        let steps = [
            (&a, "//! Step 01\n".into()),
            (&b, header("01:")),
            (&c, header("01 (not 02: a word on why):")),
        ];
        assert_eq!(check(&steps), []);
    }

    #[test]
    fn a_header_naming_another_step_fails_at_its_line() {
        let a = step("01-a", None);
        let b = step("02-b", Some("step-01-a"));
        let c = step("03-c", Some("step-01-a"));
        let steps = [
            (&a, String::new()),
            (&b, header("012:")),
            (&c, header("02 (a word):")),
        ];
        let mut problems = check(&steps);
        assert_eq!(problems.len(), 2, "{problems:?}");
        problems.remove(0);
        assert_eq!(
            (problems[0].file.as_str(), problems[0].line),
            ("steps/03-c/src/lib.rs", 3)
        );
        assert!(problems[0].message.contains("recorded parent is step-01-a"));
        assert!(problems[0].message.contains("`//! Changed since step 01:`"));
    }

    #[test]
    fn a_missing_or_unknown_parent_or_line_fails() {
        let a = step("01-a", Some("step-02-b"));
        let b = step("02-b", None);
        let c = step("03-c", Some("step-01-a"));
        let steps = [
            (&a, header("01:")),
            (&b, header("01:")),
            (&c, String::new()),
        ];
        let found: Vec<(String, usize)> = check(&steps)
            .into_iter()
            .map(|p| (p.file, p.line))
            .collect();
        let expected = [
            // A parent that is not an earlier step.
            ("steps/01-a/Cargo.toml", 0),
            // No parent recorded.
            ("steps/02-b/Cargo.toml", 0),
            // No "Changed since" line.
            ("steps/03-c/src/lib.rs", 0),
        ];
        assert_eq!(found, expected.map(|(f, l)| (f.to_owned(), l)));
        let alone = [(&b, header("01:"))];
        assert_eq!(check(&alone)[0].line, 3, "the first step changes none");
    }
}
