//! What a case found: figures, and checks that passed or failed. A
//! failed check fails the case for `lb`; for step 08 it is what step 08
//! did, shown beside `lb` and failing nothing.

use std::fmt;
use std::time::Duration;

use crate::conn::End;
use crate::subject::Kind;

#[derive(Debug)]
enum Line {
    Figure(String),
    Check {
        ok: bool,
        what: String,
    },
    /// The case could not run as meant (a process would not start).
    Broken(String),
    /// The case does not apply to this subject (step 08 cannot reload):
    /// why, and no failure.
    NotApplicable(String),
}

/// The findings of one case against one balancer.
#[derive(Debug)]
pub struct Report {
    pub subject: Kind,
    /// What the balancer was run with, in a few words.
    pub setup: String,
    lines: Vec<Line>,
}

impl Report {
    pub fn new(subject: Kind) -> Report {
        Report {
            subject,
            setup: String::new(),
            lines: Vec::new(),
        }
    }

    /// A measured figure.
    pub fn figure(&mut self, text: impl Into<String>) {
        self.lines.push(Line::Figure(text.into()));
    }

    /// A requirement and whether it held; returns `ok`.
    pub fn check(&mut self, ok: bool, what: impl Into<String>) -> bool {
        self.lines.push(Line::Check {
            ok,
            what: what.into(),
        });
        ok
    }

    /// The case could not run as meant: a failure whatever the subject.
    pub fn broken(&mut self, why: impl Into<String>) {
        self.lines.push(Line::Broken(why.into()));
    }

    /// The case does not apply to this subject: why, in a few words.
    pub fn not_applicable(&mut self, why: impl Into<String>) {
        self.lines.push(Line::NotApplicable(why.into()));
    }

    /// What fails the case: for `lb`, every failed check; for anyone, a
    /// case that could not run.
    pub fn failures(&self) -> Vec<String> {
        self.lines
            .iter()
            .filter_map(|line| match line {
                Line::Check { ok: false, what } if self.subject == Kind::Lb => {
                    Some(what.clone())
                }
                Line::Broken(why) => Some(format!("could not run: {why}")),
                _ => None,
            })
            .collect()
    }
}

/// The width [`wrap`] wraps at.
const WIDTH: usize = 76;

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let title = if self.setup.is_empty() {
            format!("{}:", self.subject)
        } else {
            format!("{} ({}):", self.subject, self.setup)
        };
        writeln!(f, "{title}")?;
        for line in &self.lines {
            let (mark, text) = match line {
                Line::Figure(text) => ("", text.as_str()),
                Line::Check { ok: true, what } => ("ok", what.as_str()),
                // Step 08 is not held to lb's promises: a "no" there is
                // a finding, not a failure.
                Line::Check { ok: false, what } if self.subject == Kind::Lb => {
                    ("FAIL", what.as_str())
                }
                Line::Check { ok: false, what } => ("no", what.as_str()),
                Line::Broken(why) => ("FAIL", why.as_str()),
                Line::NotApplicable(why) => ("n/a", why.as_str()),
            };
            let text = match line {
                Line::Broken(_) => format!("could not run: {text}"),
                _ => text.to_owned(),
            };
            // Not wrapped: where a line of figures breaks would move with
            // the width of its numbers from run to run.
            writeln!(f, "  {mark:<4} {text}")?;
        }
        Ok(())
    }
}

/// `text` in lines of at most [`WIDTH`] characters (a longer word keeps
/// a line of its own), the first starting with `first`, the others with
/// `rest`; each line ends with a newline.
pub fn wrap(text: &str, first: &str, rest: &str) -> String {
    let mut out = String::new();
    let mut line = first.to_owned();
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && line.chars().count() + 1 + word.chars().count() > WIDTH {
            out.push_str(line.trim_end());
            out.push('\n');
            line = rest.to_owned();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
    out
}

/// "1 case", "18 cases".
pub fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// A duration for a report: "350 ms", "1.02 s".
pub fn show(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{} ms", duration.as_millis())
    } else {
        format!("{:.2} s", duration.as_secs_f64())
    }
}

/// KiB as MiB for a report: "5.1 MiB".
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// How a set of streams ended, most common first: "98 a reset, 2 a clean
/// end".
pub fn ends(ends: impl IntoIterator<Item = End>) -> String {
    let mut counts: Vec<(End, usize)> = Vec::new();
    for end in ends {
        match counts.iter_mut().find(|(e, _)| *e == end) {
            Some((_, n)) => *n += 1,
            None => counts.push((end, 1)),
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let parts: Vec<String> = counts
        .iter()
        .map(|(end, n)| format!("{n} {}", end.describe()))
        .collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

/// The median, the 99th percentile and the largest of `durations`.
pub fn spread(durations: &mut [Duration]) -> String {
    if durations.is_empty() {
        return "none".to_owned();
    }
    durations.sort();
    let at = |q: f64| {
        let i = ((durations.len() - 1) as f64 * q).round() as usize;
        durations[i]
    };
    format!(
        "median {}, p99 {}, max {}",
        show(at(0.5)),
        show(at(0.99)),
        show(at(1.0))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_wrapped_under_their_first_words() {
        let text = "word ".repeat(30);
        let wrapped = wrap(&text, "  ok   ", "       ");
        let lines: Vec<&str> = wrapped.lines().collect();
        assert!(lines.len() > 1, "{wrapped}");
        assert!(lines[0].starts_with("  ok   word"));
        assert!(lines[1].starts_with("       word"));
        assert!(lines.iter().all(|l| l.len() <= WIDTH), "{wrapped}");
        assert_eq!(wrap("short", "", "  "), "short\n");
    }

    #[test]
    fn ends_are_counted_most_common_first() {
        let seen = [End::Clean, End::Reset, End::Reset];
        assert_eq!(ends(seen), "2 a reset, 1 a clean end");
        assert_eq!(ends([]), "none");
    }

    #[test]
    fn a_failed_check_fails_lb_only() {
        let mut lb = Report::new(Kind::Lb);
        lb.check(false, "freed");
        assert_eq!(lb.failures(), ["freed"]);
        let mut step = Report::new(Kind::Step08);
        step.check(false, "freed");
        assert!(step.failures().is_empty());
        step.not_applicable("step 08 cannot reload");
        assert!(step.failures().is_empty());
        assert!(step.to_string().contains("  n/a  step 08 cannot reload\n"));
        step.broken("no binary");
        assert_eq!(step.failures().len(), 1);
    }
}
