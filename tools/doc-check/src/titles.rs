//! Each step's title (the first line of its `lib.rs`) against its chapter
//! heading in the tutorial. The rules are in the crate documentation.

use crate::Problem;
use crate::markdown::Doc;
use crate::workspace::Member;

/// Reads the title from the first line of a step's `lib.rs`, which must
/// be `//! Step NN — Title` with the folder's number.
pub fn step_title(step: &Member, lib_rs: &str) -> Result<String, Problem> {
    let first = lib_rs.lines().next().unwrap_or("");
    let prefix = format!("Step {} — ", step.number());
    match first.strip_prefix("//! ").map(str::trim_end) {
        Some(title)
            if title.len() > prefix.len() && title.starts_with(&prefix) =>
        {
            Ok(title.to_owned())
        }
        _ => Err(Problem::new(
            step.lib_rs_path(),
            1,
            format!(
                "the first line must be the step's title, \
                 `//! {prefix}Title` (with an em dash), not `{first}`"
            ),
        )),
    }
}

/// The number a chapter's heading gives, if it names a step: `04` in
/// `Step 04 — Round robin`.
pub(crate) fn step_number(heading: &str) -> Option<&str> {
    let rest = heading.strip_prefix("Step ")?;
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// Checks that the `## Step ...` chapters of `tutorial` are exactly the
/// titles of `steps` (each with its step), in order.
pub fn check(
    file: &str,
    tutorial: &Doc,
    steps: &[(&Member, String)],
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let chapters = tutorial.chapters.iter();
    let mut next = 0;
    for chapter in chapters.filter(|c| step_number(&c.text).is_some()) {
        let (line, text) = (chapter.line, &chapter.text);
        let number = step_number(text).unwrap_or_default();
        let same_number =
            steps.iter().position(|(step, _)| step.number() == number);
        let message = match (steps.get(next), same_number) {
            (Some((_, title)), _) if title == text => {
                next += 1;
                continue;
            }
            (_, None) => format!(
                "chapter `## {text}` names a step that does not exist (no \
                 steps/{number}-*); fix the number or remove the chapter"
            ),
            (_, Some(at)) if at == next => {
                next += 1;
                let (step, title) = &steps[at];
                format!(
                    "chapter `## {text}` differs from the title of \
                     {}/src/lib.rs, `{title}`; make them the same",
                    step.dir
                )
            }
            (expected, Some(_)) => format!(
                "chapter {number} comes here, where {}; one chapter per \
                 step, in step order",
                expected.map_or(
                    "no other step comes".to_owned(),
                    |(step, _)| {
                        format!("the chapter of step {} belongs", step.number())
                    }
                )
            ),
        };
        problems.push(Problem::new(file, line, message));
    }
    for (step, title) in steps.iter().skip(next) {
        problems.push(Problem::new(
            file,
            0,
            format!(
                "no chapter `## {title}` for {} after the chapters above; \
                 add one, with the exact title of its lib.rs",
                step.dir
            ),
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(folder: &str) -> Member {
        let dir = format!("steps/{folder}");
        Member {
            dir,
            ..Member::default()
        }
    }

    fn check(text: &str) -> Vec<Problem> {
        let (ping, round_robin) = (step("01-ping"), step("04-round-robin"));
        let steps = [
            (&ping, "Step 01 — Ping".to_owned()),
            (&round_robin, "Step 04 — Round robin".to_owned()),
        ];
        super::check("t.md", &Doc::parse(text), &steps)
    }

    #[test]
    fn reads_a_title_with_the_folder_number() {
        let lib = "//! Step 04 — Round robin\n//!\n";
        let title = step_title(&step("04-round-robin"), lib);
        assert_eq!(title.unwrap(), "Step 04 — Round robin");
        for wrong in [
            "//! Step 05 — Ping",
            "//! Step 01 - Ping",
            "//! Step 01 — ",
            "// Step 01 — Ping",
            "",
        ] {
            let problem = step_title(&step("01-ping"), wrong).unwrap_err();
            assert_eq!(problem.line, 1, "{wrong}");
            assert!(problem.message.contains("`//! Step 01 — Title`"));
        }
    }

    #[test]
    fn matching_chapters_pass_and_code_blocks_do_not_count() {
        let text = "# T\n## Step 01 — Ping\ntext\n## Step 04 — Round robin\n\
                    ## Comparing the steps\n```md\n## Step 09 — Nope\n```\n";
        assert_eq!(check(text), []);
    }

    #[test]
    fn a_mismatched_title_fails() {
        let problems = check("## Step 01 — Ping\n## Step 04 — Round Robin\n");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].line, 2);
        assert!(problems[0].message.contains("`Step 04 — Round robin`"));
    }

    #[test]
    fn a_chapter_for_a_missing_step_fails() {
        let problems = check(
            "## Step 01 — Ping\n## Step 04 — Round robin\n## Step 07 — TLS\n",
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].message.contains("no steps/07-*"));
    }

    #[test]
    fn duplicates_disorder_and_gaps_fail() {
        let twice = "## Step 01 — Ping\n## Step 04 — Round robin\n\
                     ## Step 01 — Ping\n";
        let problems = check(twice);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].message.contains("where no other step comes"));
        let swapped = "## Step 04 — Round robin\n## Step 01 — Ping\n";
        let problems = check(swapped);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].message.contains("step 01 belongs"));
        assert!(problems[1].message.contains("no chapter `## Step 04"));
    }
}
