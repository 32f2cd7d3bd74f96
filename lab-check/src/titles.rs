//! Each step's title (the first line of its `lib.rs`) against its chapter
//! heading in the tutorial. The rules are in the crate documentation.

use crate::Problem;
use crate::markdown;

/// A step and the title its `lib.rs` opens with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepTitle {
    /// `steps/04-round-robin`.
    pub dir: String,
    /// `Step 04 — Round robin`.
    pub title: String,
}

impl StepTitle {
    /// `04`, from the folder name.
    pub fn number(&self) -> &str {
        let name = self.dir.rsplit('/').next().unwrap_or(&self.dir);
        name.split('-').next().unwrap_or(name)
    }
}

/// Reads the title from the first line of a step's `lib.rs`, which must
/// be `//! Step NN — Title` with the folder's number.
pub fn step_title(dir: &str, lib_rs: &str) -> Result<StepTitle, Problem> {
    let file = format!("{dir}/src/lib.rs");
    let first = lib_rs.lines().next().unwrap_or("");
    let step = StepTitle {
        dir: dir.to_owned(),
        title: String::new(),
    };
    let prefix = format!("Step {} — ", step.number());
    let title = first.strip_prefix("//! ").map(str::trim_end);
    match title {
        Some(title)
            if title.starts_with(&prefix) && title.len() > prefix.len() =>
        {
            Ok(StepTitle {
                title: title.to_owned(),
                ..step
            })
        }
        _ => Err(Problem::new(
            file,
            1,
            format!(
                "the first line must be the step's title, \
                 `//! {prefix}Title` (with an em dash), not `{first}`"
            ),
        )),
    }
}

/// The text of a level-2 heading that names a step: `Step 04 — ...`.
fn step_heading(line: &str) -> Option<&str> {
    let text = line.strip_prefix("## ")?.trim();
    let rest = text.strip_prefix("Step ")?;
    rest.starts_with(|c: char| c.is_ascii_digit())
        .then_some(text)
}

/// The number a heading's text gives: `04` in `Step 04 — Round robin`.
fn heading_number(text: &str) -> &str {
    let rest = text.strip_prefix("Step ").unwrap_or(text);
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    &rest[..end]
}

/// Checks that `tutorial` has one `## {title}` per step, in step order,
/// and no other `## Step ...` heading.
pub fn check(file: &str, tutorial: &str, steps: &[StepTitle]) -> Vec<Problem> {
    let lines: Vec<&str> = tutorial.lines().collect();
    let fences = markdown::fences(&lines);
    let mut problems = Vec::new();
    let mut seen: Vec<Option<usize>> = vec![None; steps.len()];
    let mut last: Option<(usize, &str)> = None;
    for (index, line) in lines.iter().enumerate() {
        let number = index + 1;
        let Some(text) = step_heading(line) else {
            continue;
        };
        if markdown::in_fence(&fences, index) {
            continue;
        }
        let step_number = heading_number(text);
        let matching = steps.iter().position(|step| step.title == text);
        let same_number =
            steps.iter().find(|step| step.number() == step_number);
        match (matching, same_number) {
            (Some(at), _) => {
                if let Some(earlier) = seen[at] {
                    problems.push(Problem::new(
                        file,
                        number,
                        format!(
                            "a second chapter `## {text}` (the first is at \
                             line {earlier}); merge them"
                        ),
                    ));
                } else {
                    seen[at] = Some(number);
                }
                if let Some((before_line, before)) = last
                    && before > step_number
                {
                    problems.push(Problem::new(
                        file,
                        number,
                        format!(
                            "chapter {step_number} comes after chapter \
                             {before} (line {before_line}); keep the steps \
                             in order"
                        ),
                    ));
                }
                last = Some((number, steps[at].number()));
            }
            (None, Some(step)) => problems.push(Problem::new(
                file,
                number,
                format!(
                    "heading `## {text}` differs from the title of {}/src/\
                     lib.rs: `{}`; make them the same",
                    step.dir, step.title
                ),
            )),
            (None, None) => problems.push(Problem::new(
                file,
                number,
                format!(
                    "heading `## {text}` names a step that does not exist \
                     (no steps/{step_number}-*); fix the number or remove \
                     the chapter"
                ),
            )),
        }
    }
    for (step, seen) in steps.iter().zip(seen) {
        if seen.is_none() {
            problems.push(Problem::new(
                file,
                0,
                format!(
                    "no chapter heading `## {}` for {}; add one, with the \
                     exact title of its lib.rs",
                    step.title, step.dir
                ),
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps() -> Vec<StepTitle> {
        [
            ("steps/01-ping", "//! Step 01 — Ping\n//!\n"),
            ("steps/04-round-robin", "//! Step 04 — Round robin\n"),
        ]
        .iter()
        .map(|(dir, lib)| step_title(dir, lib).unwrap())
        .collect()
    }

    #[test]
    fn reads_a_title_with_the_folder_number() {
        assert_eq!(steps()[1].title, "Step 04 — Round robin");
        assert_eq!(steps()[1].number(), "04");
        for wrong in [
            "//! Step 05 — Ping",
            "//! Step 01 - Ping",
            "//! Step 01 — ",
            "// Step 01 — Ping",
            "",
        ] {
            let problem = step_title("steps/01-ping", wrong).unwrap_err();
            assert_eq!(problem.line, 1, "{wrong}");
            assert!(problem.message.contains("`//! Step 01 — Title`"));
        }
    }

    #[test]
    fn matching_chapters_pass() {
        let text = "# T\n## Step 01 — Ping\ntext\n## Step 04 — Round robin\n\
                    ## Comparing the steps\n";
        assert_eq!(check("t.md", text, &steps()), []);
    }

    #[test]
    fn a_mismatched_title_fails() {
        let text = "## Step 01 — Ping\n## Step 04 — Round Robin\n";
        let problems = check("t.md", text, &steps());
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(problems[0].line, 2);
        assert!(problems[0].message.contains("`Step 04 — Round robin`"));
        // And step 04 has no chapter at all.
        assert_eq!(problems[1].line, 0);
    }

    #[test]
    fn a_chapter_for_a_missing_step_fails() {
        let text = "## Step 01 — Ping\n## Step 04 — Round robin\n\
                    ## Step 07 — TLS\n";
        let problems = check("t.md", text, &steps());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].message.contains("no steps/07-*"));
    }

    #[test]
    fn duplicates_and_disorder_fail() {
        let twice = "## Step 01 — Ping\n## Step 04 — Round robin\n\
                     ## Step 01 — Ping\n";
        let problems = check("t.md", twice, &steps());
        assert!(problems[0].message.contains("second chapter"));
        let swapped = "## Step 04 — Round robin\n## Step 01 — Ping\n";
        let problems = check("t.md", swapped, &steps());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].message.contains("in order"));
    }

    #[test]
    fn headings_inside_code_blocks_do_not_count() {
        let text = "## Step 01 — Ping\n## Step 04 — Round robin\n\
                    ```md\n## Step 09 — Nope\n```\n";
        assert_eq!(check("t.md", text, &steps()), []);
    }
}
