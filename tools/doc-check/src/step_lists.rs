//! Tables in the docs that list the steps (README's table of steps, the
//! tutorial's map) against the steps that exist, so that the workspace is
//! the one source and a list cannot drift. The rules are in the crate
//! documentation.

use crate::Problem;
use crate::markdown::Doc;
use crate::workspace::Member;

/// Checks every table of `doc` whose first column is headed `step`.
pub fn check(file: &str, doc: &Doc, steps: &[&Member]) -> Vec<Problem> {
    let mut problems = Vec::new();
    let all: Vec<&str> = steps.iter().map(|step| step.folder()).collect();
    let all = all.join(", ");
    'tables: for table in &doc.tables {
        let Some((header, rows)) = table.split_first() else {
            continue;
        };
        if header.cells.first().map(String::as_str) != Some("step") {
            continue;
        }
        let column = |name| header.cells.iter().position(|cell| cell == name);
        let (package_column, run_column) =
            (column("package"), column("run it"));
        let mut problem = |line, message| {
            problems.push(Problem::new(file, line, message));
        };
        for (at, row) in rows.iter().enumerate() {
            let named = row.cells.first().map_or("", String::as_str);
            let Some(step) = steps.get(at) else {
                problem(
                    row.line,
                    format!(
                        "the table of steps lists `{named}` after the last \
                         step; remove the row (the steps: {all})"
                    ),
                );
                continue 'tables;
            };
            if named != step.number() && named != step.folder() {
                problem(
                    row.line,
                    format!(
                        "the table of steps lists `{named}` where step {} \
                         comes; list every step, in order (the steps: {all})",
                        step.folder()
                    ),
                );
                continue 'tables;
            }
            let cell = |column: Option<usize>| row.cells.get(column?);
            if let Some(package) = cell(package_column)
                && *package != step.package
            {
                problem(
                    row.line,
                    format!(
                        "step {}'s package is `{}`, not `{package}`",
                        step.number(),
                        step.package
                    ),
                );
            }
            let runs: Vec<String> = step
                .bins
                .iter()
                .map(|bin| format!("cargo run --bin {bin}"))
                .collect();
            if let Some(run) = cell(run_column)
                && !runs.contains(run)
            {
                problem(
                    row.line,
                    format!(
                        "step {} runs with `{}`, not `{run}`",
                        step.number(),
                        runs.join("` or `")
                    ),
                );
            }
        }
        if let Some(step) = steps.get(rows.len()) {
            problem(
                rows.last().unwrap_or(header).line,
                format!(
                    "the table of steps ends before step {}; add a row for \
                     each missing step (the steps: {all})",
                    step.folder()
                ),
            );
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(folder: &str) -> Member {
        Member {
            dir: format!("steps/{folder}"),
            package: format!("step-{folder}"),
            bins: vec![folder.to_owned()],
            ..Member::default()
        }
    }

    fn check(text: &str) -> Vec<Problem> {
        let steps = [step("01-ping"), step("02-forward")];
        let steps: Vec<&Member> = steps.iter().collect();
        let doc = Doc::parse(text);
        super::check("README.md", &doc, &steps)
    }

    const HEAD: &str =
        "| step | package | run it | what |\n|---|---|---|---|\n";

    #[test]
    fn a_complete_table_in_order_passes() {
        let text = format!(
            "{HEAD}| 01 | `step-01-ping` | `cargo run --bin 01-ping` | a |\n\
             | 02 | `step-02-forward` | `cargo run --bin 02-forward` | b |\n\
             \n| step | what |\n|---|---|\n| 01-ping | a |\n\
             | 02-forward | b |\n\n\
             | step 08 | x |\n|---|---|\n| 1 | 2 |\n"
        );
        assert_eq!(check(&text), []);
    }

    #[test]
    fn a_missing_or_extra_or_misplaced_step_fails() {
        let one = "| step | what |\n|---|---|\n| 01 | a |\n";
        let problems = check(one);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].line, 3);
        assert!(problems[0].message.contains("ends before step 02-forward"));

        let three = format!("{one}| 02 | b |\n| 03 | c |\n");
        let problems = check(&three);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].message.contains("`03` after the last step"));

        let swapped = "| step | what |\n|---|---|\n| 02 | b |\n| 01 | a |\n";
        let problems = check(swapped);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].message.contains("`02` where step 01-ping"));
    }

    #[test]
    fn a_wrong_package_or_command_fails() {
        let text = format!(
            "{HEAD}| 01 | `step-01-pong` | `cargo run --bin 01-ping` | a |\n\
             | 02 | `step-02-forward` | `cargo run -p 02-forward` | b |\n"
        );
        let problems = check(&text);
        let found: Vec<_> = problems.iter().map(|p| p.line).collect();
        assert_eq!(found, [3, 4], "{problems:?}");
        assert!(problems[0].message.contains("is `step-01-ping`"));
        assert!(problems[1].message.contains("`cargo run --bin 02-forward`"));
    }
}
