//! The exercises: every chapter of the course asks the learner to write
//! code, and each exercise is whole: a section in the chapter that prints
//! the command to check an answer, a worked solution under `solutions/`
//! that names that chapter, and an ignored test in the package the
//! solution names. `scripts/exercise.sh` runs them; this module only
//! checks that the pieces find each other, so that an exercise cannot
//! lose its test or its solution, and a chapter cannot lose its exercise.
//!
//! Which chapters need one is read from the headings: every `## `
//! chapter but those in [`WITHOUT_EXERCISE`], each listed with why.

use std::collections::BTreeMap;

use crate::Problem;

/// The heading of a chapter's exercise section starts with this.
pub const SECTION: &str = "### Exercise: ";

/// What a learner types to check an answer: this, then the exercise's id.
pub const COMMAND: &str = "$ scripts/exercise.sh ";

/// The chapters that need no exercise (a heading's start), and why.
pub const WITHOUT_EXERCISE: &[(&str, &str)] = &[
    (
        "Before you start",
        "it sets the lab up; there is no code of the lab to change yet",
    ),
    (
        "What you built",
        "the ending: it looks back and ahead, it teaches nothing new",
    ),
    (
        "Appendix",
        "optional reading beside step 09, whose exercise is in its chapter",
    ),
];

/// One worked solution, `solutions/ID.patch`, as its preamble says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Solution {
    pub id: String,
    pub chapter: String,
    pub package: String,
    pub test: String,
    /// The files it changes.
    pub files: Vec<String>,
}

impl Solution {
    /// Reads the preamble (`Key: value` lines before the first `diff
    /// --git`) and the files of `solutions/{id}.patch`.
    pub fn parse(id: &str, patch: &str) -> Solution {
        let mut solution = Solution {
            id: id.to_owned(),
            ..Solution::default()
        };
        let mut in_diff = false;
        for line in patch.lines() {
            if let Some(paths) = line.strip_prefix("diff --git ") {
                in_diff = true;
                if let Some(file) = paths.split(' ').nth(1) {
                    let file = file.strip_prefix("b/").unwrap_or(file);
                    solution.files.push(file.to_owned());
                }
                continue;
            }
            if in_diff {
                continue;
            }
            let Some((key, value)) = line.split_once(": ") else {
                continue;
            };
            let value = value.trim().to_owned();
            match key {
                "Chapter" => solution.chapter = value,
                "Package" => solution.package = value,
                "Test" => solution.test = value,
                _ => {}
            }
        }
        solution
    }
}

/// Where a test of an exercise lives: `(package, ignore line, function)`
/// found in a package's `tests/exercises` target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExerciseTest {
    pub package: String,
    /// The id after `exercise ` in its `#[ignore = "..."]`.
    pub id: String,
    pub function: String,
}

/// The ignored exercise tests in `source` (a file of `package`'s
/// `exercises` test target): each `#[ignore = "exercise ID: ..."]` and the
/// `fn` that follows it.
pub fn tests_in(package: &str, source: &str) -> Vec<ExerciseTest> {
    let mut found = Vec::new();
    let mut pending: Option<String> = None;
    for line in source.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("#[ignore = \"exercise ") {
            pending = rest.split(':').next().map(str::to_owned);
        } else if let Some(id) = &pending
            && let Some(name) = fn_name(line)
        {
            found.push(ExerciseTest {
                package: package.to_owned(),
                id: id.clone(),
                function: name.to_owned(),
            });
            pending = None;
        }
    }
    found
}

/// The name of the function a line declares, if it declares one.
fn fn_name(line: &str) -> Option<&str> {
    let at = line.find("fn ")?;
    let rest = &line[at + 3..];
    let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
    Some(&rest[..end])
}

/// Checks `tutorial` (lines from 1) against the solutions and the tests.
pub fn check(
    tutorial: &str,
    solutions: &[Solution],
    tests: &[ExerciseTest],
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let lines: Vec<&str> = tutorial.lines().collect();
    let mut named: BTreeMap<String, (String, usize)> = BTreeMap::new();
    let chapters = chapters(&lines);
    for (title, range) in &chapters {
        let heading_line = range.start + 1;
        let exempt = WITHOUT_EXERCISE
            .iter()
            .any(|(start, _)| title.starts_with(start));
        let mut sections = 0;
        let mut commands = Vec::new();
        let mut in_section = false;
        for at in range.clone() {
            let line = lines[at];
            if line.starts_with("### ") {
                in_section = line.starts_with(SECTION);
                sections += usize::from(in_section);
            } else if in_section && let Some(id) = line.strip_prefix(COMMAND) {
                commands.push((id.trim().to_owned(), at + 1));
            }
        }
        if sections == 0 && !exempt {
            problems.push(Problem::new(
                "tutorial.md",
                heading_line,
                format!(
                    "chapter «{title}» has no exercise: add a `{SECTION}...` \
                     section before its recap, with `{}ID` in a console \
                     block (or list it in exercises::WITHOUT_EXERCISE, \
                     with why)",
                    COMMAND.trim_start_matches("$ ")
                ),
            ));
        }
        if sections > 0 && commands.is_empty() {
            problems.push(Problem::new(
                "tutorial.md",
                heading_line,
                format!(
                    "chapter «{title}»'s exercise prints no command to check \
                     an answer (`{COMMAND}ID` in a console block)"
                ),
            ));
        }
        for (id, line) in commands {
            match solutions.iter().find(|s| s.id == id) {
                None => problems.push(Problem::new(
                    "tutorial.md",
                    line,
                    format!("exercise {id} has no solutions/{id}.patch"),
                )),
                Some(solution) if solution.chapter != *title => {
                    problems.push(Problem::new(
                        "tutorial.md",
                        line,
                        format!(
                            "exercise {id} is in «{title}», but its solution \
                             says `Chapter: {}`",
                            solution.chapter
                        ),
                    ))
                }
                Some(_) => {}
            }
            if let Some((other, first)) = named.get(&id) {
                problems.push(Problem::new(
                    "tutorial.md",
                    line,
                    format!(
                        "exercise {id} is checked in «{other}» already \
                         (line {first}): one chapter per exercise"
                    ),
                ));
            } else {
                named.insert(id.clone(), (title.clone(), line));
            }
        }
    }
    for solution in solutions {
        let file = format!("solutions/{}.patch", solution.id);
        if !named.contains_key(&solution.id) {
            problems.push(Problem::new(
                &file,
                0,
                "no chapter of tutorial.md checks this exercise",
            ));
        }
        if solution.package.is_empty() || solution.test.is_empty() {
            problems.push(Problem::new(
                &file,
                0,
                "its preamble needs `Package:` and `Test:` lines",
            ));
            continue;
        }
        if solution.files.is_empty() {
            problems.push(Problem::new(&file, 0, "it changes no file"));
        }
        let function = solution.test.rsplit("::").next().unwrap_or_default();
        let found = tests.iter().any(|test| {
            test.package == solution.package
                && test.id == solution.id
                && test.function == function
        });
        if !found {
            problems.push(Problem::new(
                &file,
                0,
                format!(
                    "no test `{}` in package {}'s `exercises` target marked \
                     #[ignore = \"exercise {}: ...\"]",
                    solution.test, solution.package, solution.id
                ),
            ));
        }
    }
    problems
}

/// Every `## ` chapter: its title and its lines (indexes from 0, the
/// heading first), fences skipped.
fn chapters(lines: &[&str]) -> Vec<(String, std::ops::Range<usize>)> {
    let mut starts = Vec::new();
    let mut fenced = false;
    for (at, line) in lines.iter().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && let Some(title) = line.strip_prefix("## ") {
            starts.push((title.trim().to_owned(), at));
        }
    }
    let mut chapters = Vec::new();
    for (i, (title, start)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(lines.len(), |(_, next)| *next);
        chapters.push((title.clone(), *start..end));
    }
    chapters
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATCH: &str = "Exercise: dial the next one\n\
        Chapter: Step 04 — Round robin\n\
        Package: step-04-round-robin\n\
        Test: a_stopped_backend_fails_no_client\n\
        \n\
        Why: because.\n\
        \n\
        diff --git a/steps/04/src/lib.rs b/steps/04/src/lib.rs\n\
        --- a/steps/04/src/lib.rs\n\
        +++ b/steps/04/src/lib.rs\n\
        @@ -1 +1 @@\n\
        -Chapter: not a field\n\
        +x\n";

    const TEST: &str = "#[tokio::test]\n\
        #[ignore = \"exercise 04-next: scripts/exercise.sh 04-next\"]\n\
        async fn a_stopped_backend_fails_no_client() {}\n";

    fn tutorial(exercise: &str) -> String {
        format!(
            "# T\n\n## Before you start\n\nx\n\n## Step 04 — Round robin\n\n\
             text\n\n{exercise}\n**You can now** go.\n"
        )
    }

    fn section(id: &str) -> String {
        format!(
            "### Exercise: dial the next one\n\n```console\n\
             $ scripts/exercise.sh {id}\nexercise {id}: not done yet\n```\n"
        )
    }

    fn fixtures() -> (Vec<Solution>, Vec<ExerciseTest>) {
        let solution = Solution::parse("04-next", PATCH);
        let tests = tests_in("step-04-round-robin", TEST);
        (vec![solution], tests)
    }

    #[test]
    fn reads_a_solution_preamble_and_its_files() {
        let solution = Solution::parse("04-next", PATCH);
        assert_eq!(solution.chapter, "Step 04 — Round robin");
        assert_eq!(solution.package, "step-04-round-robin");
        assert_eq!(solution.test, "a_stopped_backend_fails_no_client");
        assert_eq!(solution.files, ["steps/04/src/lib.rs"]);
    }

    #[test]
    fn finds_the_ignored_tests_and_their_ids() {
        let (_, tests) = fixtures();
        assert_eq!(
            tests,
            [ExerciseTest {
                package: "step-04-round-robin".into(),
                id: "04-next".into(),
                function: "a_stopped_backend_fails_no_client".into(),
            }]
        );
    }

    #[test]
    fn a_whole_exercise_passes() {
        let (solutions, tests) = fixtures();
        let text = tutorial(&section("04-next"));
        assert_eq!(check(&text, &solutions, &tests), []);
    }

    #[test]
    fn a_chapter_without_exercise_fails_unless_exempt() {
        let (_, tests) = fixtures();
        let problems = check(&tutorial(""), &[], &tests);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].line, 7);
        assert!(problems[0].message.contains("«Step 04 — Round robin»"));
    }

    #[test]
    fn a_command_without_solution_and_a_solution_without_chapter_fail() {
        let (solutions, tests) = fixtures();
        let problems =
            check(&tutorial(&section("04-other")), &solutions, &tests);
        let messages: Vec<&str> =
            problems.iter().map(|p| p.message.as_str()).collect();
        assert!(messages[0].contains("no solutions/04-other.patch"));
        assert!(messages[1].contains("no chapter"));
    }

    #[test]
    fn a_solution_whose_test_is_missing_fails() {
        let (solutions, _) = fixtures();
        let problems = check(&tutorial(&section("04-next")), &solutions, &[]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].message.contains("no test"));
    }

    #[test]
    fn a_solution_naming_another_chapter_fails() {
        let (mut solutions, tests) = fixtures();
        solutions[0].chapter = "Step 05 — Random robin".into();
        let problems =
            check(&tutorial(&section("04-next")), &solutions, &tests);
        assert!(problems[0].message.contains("Chapter: Step 05"));
    }
}
