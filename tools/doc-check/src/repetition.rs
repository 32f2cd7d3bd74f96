//! How much of the Rust that steps 02 to 08 of the tutorial show had been
//! shown before (issue 20: at most a tenth). A step should show what it
//! changes, not its parent's code again.
//!
//! The measure reads the chapters `## Step 01 ...` to `## Step 08 ...` in
//! order. A *shown line* is a line of a fenced `rust` block, or of a
//! `diff` block ([`crate::diffs`]): its `+` lines, and its unchanged
//! (context) lines when a hunk has more than 3 of them that are not
//! trivial (below); a diff's context
//! is repetition by design, a little of it to find one's place, but a
//! whole function as context is not. A shown line of steps 02 to 08 is
//! *repeated* if, trimmed, it equals a line shown earlier, in any block
//! of step 01 on (every line of a diff block counts as seen, its `-` and
//! context lines too). The figure is repeated lines over shown lines.
//!
//! Lines that teach nothing by themselves are left out of both counts:
//! blank lines, lines with no letter or digit (`}`, `};`, `})`, `{`,
//! `),`), and a few that close a function or a branch the same way
//! everywhere ([`TRIVIAL`]: `Ok(())`, `} else {`, `return;`). The point
//! is to measure repeated lessons, and a closing brace is none.

use std::fmt;
use std::ops::RangeInclusive;

use crate::markdown::Doc;
use crate::{Problem, list};

/// Lines with letters that are still punctuation, as far as a lesson goes.
pub const TRIVIAL: &[&str] = &["Ok(())", "} else {", "return;"];

/// The most of the shown lines that may be repeated, in percent.
pub const LIMIT_PERCENT: f64 = 10.0;

/// Whether `line` is left out of the measure.
pub fn trivial(line: &str) -> bool {
    let line = line.trim();
    !line.chars().any(char::is_alphanumeric) || TRIVIAL.contains(&line)
}

/// One chapter's count.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Count {
    /// Its heading, without `## `.
    pub chapter: String,
    /// Non-trivial shown lines.
    pub shown: usize,
    /// The repeated ones: the tutorial's line (from 1) and the text.
    pub repeated: Vec<(usize, String)>,
}

/// Repeated over shown lines, summed over chapters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Figure {
    pub repeated: usize,
    pub shown: usize,
}

impl Figure {
    pub fn of(counts: &[Count]) -> Figure {
        Figure {
            repeated: counts.iter().map(|c| c.repeated.len()).sum(),
            shown: counts.iter().map(|c| c.shown).sum(),
        }
    }

    pub fn percent(&self) -> f64 {
        if self.shown == 0 {
            0.0
        } else {
            100.0 * self.repeated as f64 / self.shown as f64
        }
    }
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (repeated, shown) = (self.repeated, self.shown);
        write!(f, "{repeated}/{shown} lines ({:.1}%)", self.percent())
    }
}

/// The step number of a chapter titled `Step NN — ...`.
fn step_of(title: &str) -> Option<u32> {
    let rest = title.strip_prefix("Step ")?;
    let digits: String =
        rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The lines of a diff block that count as shown, and all its lines, as
/// (index in the file, text without the sign).
fn diff_lines(body: &[(usize, &str)]) -> (Vec<(usize, String)>, Vec<String>) {
    let (mut shown, mut seen) = (Vec::new(), Vec::new());
    // The hunks: runs of lines between `@@` headers.
    let mut hunks: Vec<Vec<(usize, &str)>> = vec![Vec::new()];
    for &(at, line) in body {
        if line.starts_with("@@") {
            hunks.push(Vec::new());
        } else if !line.starts_with("+++") && !line.starts_with("---") {
            hunks
                .last_mut()
                .expect("one hunk at least")
                .push((at, line));
        }
    }
    for hunk in hunks {
        let context = hunk
            .iter()
            .filter(|(_, line)| !line.starts_with(['+', '-']) && !trivial(line))
            .count();
        for (at, line) in hunk {
            let mut chars = line.chars();
            let sign = chars.next();
            let text = chars.as_str().to_owned();
            let counts = match sign {
                Some('+') => true,
                Some('-') => false,
                _ => context > 3,
            };
            if counts {
                shown.push((at, text.clone()));
            }
            seen.push(text);
        }
    }
    (shown, seen)
}

/// Counts, for each chapter of a step in `steps`, in order, its shown
/// lines and those shown before in an earlier block of those chapters.
pub fn count(tutorial: &str, steps: RangeInclusive<u32>) -> Vec<Count> {
    let doc = Doc::parse(tutorial);
    let lines: Vec<&str> = tutorial.lines().collect();
    let mut seen = std::collections::HashSet::new();
    let mut counts = Vec::new();
    for (at, chapter) in doc.chapters.iter().enumerate() {
        if !step_of(&chapter.text).is_some_and(|n| steps.contains(&n)) {
            continue;
        }
        let end = doc.chapters.get(at + 1).map_or(usize::MAX, |c| c.line);
        let mut count = Count {
            chapter: chapter.text.clone(),
            ..Count::default()
        };
        let fences = doc
            .fences
            .iter()
            .filter(|fence| chapter.line < fence.line && fence.line < end);
        for fence in fences {
            let body: Vec<(usize, &str)> =
                fence.body.clone().map(|i| (i + 1, lines[i])).collect();
            let (shown, all) = match fence.info.split([' ', ',']).next() {
                Some("rust") => {
                    let shown: Vec<(usize, String)> = body
                        .iter()
                        .map(|(at, line)| (*at, (*line).to_owned()))
                        .collect();
                    let all = shown.iter().map(|(_, l)| l.clone()).collect();
                    (shown, all)
                }
                Some("diff") => diff_lines(&body),
                _ => continue,
            };
            for (at, line) in shown {
                if trivial(&line) {
                    continue;
                }
                count.shown += 1;
                if seen.contains(line.trim()) {
                    count.repeated.push((at, line.trim().to_owned()));
                }
                // A line repeated within one block counts too.
                seen.insert(line.trim().to_owned());
            }
            seen.extend(all.iter().map(|line| line.trim().to_owned()));
        }
        counts.push(count);
    }
    counts
}

/// The figure for steps 02 to 08 (step 01 counted as seen), each
/// chapter's, and a problem if it is over [`LIMIT_PERCENT`].
pub fn check(file: &str, tutorial: &str) -> (Figure, Vec<Count>, Vec<Problem>) {
    let counts: Vec<Count> = count(tutorial, 1..=8)
        .into_iter()
        .filter(|c| step_of(&c.chapter) != Some(1))
        .collect();
    let figure = Figure::of(&counts);
    let mut problems = Vec::new();
    if counts.is_empty() {
        problems.push(Problem::new(
            file,
            0,
            "no chapters `## Step 02` to `## Step 08`",
        ));
    } else if figure.percent() > LIMIT_PERCENT {
        let worst: Vec<String> = counts
            .iter()
            .map(|c| {
                let figure = Figure::of(std::slice::from_ref(c));
                format!("{}: {figure}", c.chapter)
            })
            .collect();
        let worst: Vec<&str> = worst.iter().map(String::as_str).collect();
        problems.push(Problem::new(
            file,
            0,
            format!(
                "steps 02 to 08 show {figure} of Rust shown before, over \
                 the {LIMIT_PERCENT}% allowed; quote only what a step \
                 changes (a smaller anchor, or a diff). By chapter: {}",
                list(worst)
            ),
        ));
    }
    (figure, counts, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punctuation_and_closers_are_trivial() {
        for line in ["}", "    };", "})", "{", "),", "", "Ok(())", "} else {"] {
            assert!(trivial(line), "{line:?}");
        }
        for line in ["loop {", "x += 1;", "Ok(server)"] {
            assert!(!trivial(line), "{line:?}");
        }
    }

    #[test]
    fn repeats_are_counted_from_step_01_in_steps_02_on() {
        let text = "## Step 01 — A\n\n```rust\nfn a() {\n    one();\n}\n```\n\n\
                    ## Step 02 — B\n\n```rust\nfn a() {\n    two();\n}\n```\n\n\
                    ```text\nfn a() {\n```\n\n\
                    ## Step 03 — C\n\n```rust\n  two();\nthree();\nthree();\n```\n\n\
                    ## Step 10 — D\n\n```rust\nfn a() {\n```\n";
        let counts = count(text, 1..=8);
        let titles: Vec<&str> =
            counts.iter().map(|c| c.chapter.as_str()).collect();
        assert_eq!(titles, ["Step 01 — A", "Step 02 — B", "Step 03 — C"]);
        assert_eq!(counts[1].shown, 2);
        assert_eq!(counts[1].repeated, [(12, "fn a() {".to_owned())]);
        assert_eq!(counts[2].shown, 3);
        let repeated: Vec<&str> =
            counts[2].repeated.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(repeated, ["two();", "three();"]);
        let (figure, _, problems) = check("t.md", text);
        assert_eq!(
            figure,
            Figure {
                repeated: 3,
                shown: 5
            }
        );
        assert_eq!(figure.to_string(), "3/5 lines (60.0%)");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].message.contains("Step 03 — C: 2/3 lines"));
    }

    #[test]
    fn a_diff_shows_its_additions_and_long_context_only() {
        let text = "## Step 01 — A\n\n```rust\nfn a() {\n    one();\n}\n```\n\n\
                    ## Step 02 — B\n\n```diff\n@@\n fn a() {\n-    one();\n\
                    +    two();\n }\n@@\n c1();\n c2();\n c3();\n c4();\n+one();\n```\n";
        let counts = count(text, 1..=8);
        // First hunk: `+ two()` only. Second: four context lines, all
        // counted, and `one();`, seen in step 01.
        assert_eq!(counts[1].shown, 6);
        let repeated: Vec<&str> =
            counts[1].repeated.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(repeated, ["one();"]);
        let (figure, _, problems) = check("t.md", text);
        assert_eq!(figure.to_string(), "1/6 lines (16.7%)");
        assert_eq!(problems.len(), 1);
    }
}
