//! Comparing what a command printed with the block the text shows: line
//! by line and exactly, except for a `...` line, which stands for any
//! lines, and for the parts a `varies` directive names.
//!
//! Both sides are compared with trailing white space removed (an editor
//! may strip it from the Markdown, and a reader cannot see it) and with
//! blank lines at the end dropped.

use regex::Regex;
use similar::TextDiff;

/// A line that is exactly this stands for any number of lines, none
/// included. Readers know it as "some lines left out".
pub const ANY_LINES: &str = "...";

/// The patterns `varies` can name, and what each matches.
pub const BUILT_IN: &[(&str, &str, &str)] = &[
    (
        "time",
        r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z",
        "a log timestamp: 2026-11-21T09:10:36.544155Z",
    ),
    (
        "port",
        r"\b127\.0\.0\.1:\d{5}\b",
        "a client's address with the port the system chose: \
         127.0.0.1:52174 (five digits; the lab's own ports have four)",
    ),
    (
        "pid",
        r"\bpid \d+\b",
        "a process id as scripts print it: pid 11713",
    ),
    (
        "date",
        r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT",
        "an HTTP date: Sat, 21 Nov 2026 09:12:22 GMT",
    ),
    (
        "duration",
        r"\b\d+(\.\d+)? ?(ns|µs|us|ms|s|min)\b",
        "a duration: 6.5 s, 120ms, 3 µs",
    ),
    ("number", r"\b\d+(\.\d+)?\b", "any number: 1594, 0.96"),
];

/// One part of the output that may differ from run to run. It is
/// replaced by `«NAME»` on both sides before they are compared.
#[derive(Clone, Debug)]
pub struct Pattern {
    pub name: String,
    regex: Regex,
}

impl Pattern {
    /// The patterns of a `varies` directive: built-in names and
    /// `/REGEX/`s, separated by spaces. A regex may hold spaces, but not
    /// a slash followed by a space (that ends it).
    pub fn parse_list(text: &str) -> Result<Vec<Pattern>, String> {
        let mut patterns = Vec::new();
        let mut rest = text.trim_start();
        while !rest.is_empty() {
            let (word, after) = if let Some(body) = rest.strip_prefix('/') {
                let end = closing_slash(body).ok_or_else(|| {
                    format!("`{rest}`: a /REGEX/ needs its closing slash")
                })?;
                let regex = Regex::new(&body[..end])
                    .map_err(|err| format!("/{}/: {err}", &body[..end]))?;
                patterns.push(Pattern {
                    name: format!("/{}/", &body[..end]),
                    regex,
                });
                ("", &body[end + 1..])
            } else {
                rest.split_at(
                    rest.find(char::is_whitespace).unwrap_or(rest.len()),
                )
            };
            if !word.is_empty() {
                patterns.push(Pattern::built_in(word)?);
            }
            rest = after.trim_start();
        }
        if patterns.is_empty() {
            return Err("`varies` needs a pattern name or a /REGEX/".into());
        }
        Ok(patterns)
    }

    fn built_in(name: &str) -> Result<Pattern, String> {
        let Some((_, regex, _)) = BUILT_IN.iter().find(|(n, ..)| *n == name)
        else {
            let names: Vec<&str> = BUILT_IN.iter().map(|(n, ..)| *n).collect();
            return Err(format!(
                "unknown pattern `{name}` (built in: {}; or write /REGEX/)",
                names.join(", ")
            ));
        };
        Ok(Pattern {
            name: name.to_owned(),
            regex: Regex::new(regex).expect("the built-in patterns compile"),
        })
    }
}

/// Where the regex that starts `body` ends: the first `/` followed by
/// white space or by the end of the text.
fn closing_slash(body: &str) -> Option<usize> {
    body.match_indices('/').map(|(at, _)| at).find(|&at| {
        body[at + 1..]
            .chars()
            .next()
            .is_none_or(char::is_whitespace)
    })
}

/// `line` with every match of every pattern, in order, replaced by
/// `«NAME»`.
pub fn normalise(line: &str, patterns: &[Pattern]) -> String {
    let mut line = line.trim_end().to_owned();
    for pattern in patterns {
        let mark = format!("«{}»", pattern.name);
        line = pattern
            .regex
            .replace_all(&line, regex::NoExpand(&mark))
            .into_owned();
    }
    line
}

/// The lines as they are compared: normalised, blank lines at the end
/// dropped.
pub fn prepare(lines: &[String], patterns: &[Pattern]) -> Vec<String> {
    let mut out: Vec<String> =
        lines.iter().map(|line| normalise(line, patterns)).collect();
    while out.last().is_some_and(String::is_empty) {
        out.pop();
    }
    out
}

/// Whether `actual` is what `expected` shows, both already prepared. A
/// `...` line in `expected` matches any run of lines, empty included.
pub fn matches(expected: &[String], actual: &[String]) -> bool {
    // can[i][j]: expected[i..] matches actual[j..]. Filled from the end.
    let (rows, cols) = (expected.len(), actual.len());
    let mut can = vec![vec![false; cols + 1]; rows + 1];
    can[rows][cols] = true;
    for i in (0..rows).rev() {
        for j in (0..=cols).rev() {
            can[i][j] = if expected[i] == ANY_LINES {
                // Take no line, or take one and stay on the `...`.
                can[i + 1][j] || (j < cols && can[i][j + 1])
            } else {
                j < cols && expected[i] == actual[j] && can[i + 1][j + 1]
            };
        }
    }
    can[0][0]
}

/// A unified diff from `expected` to `actual`, indented by `indent`.
pub fn diff(expected: &[String], actual: &[String], indent: &str) -> String {
    let expected = join(expected);
    let actual = join(actual);
    let diff = TextDiff::from_lines(&expected, &actual);
    let text = diff
        .unified_diff()
        .context_radius(3)
        .header("the text shows", "the command printed")
        .to_string();
    text.lines()
        .map(|line| format!("{indent}{line}\n"))
        .collect()
}

fn join(lines: &[String]) -> String {
    lines.iter().map(|line| format!("{line}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    fn check(expected: &str, actual: &str, varies: &str) -> bool {
        let patterns = if varies.is_empty() {
            Vec::new()
        } else {
            Pattern::parse_list(varies).unwrap()
        };
        matches(
            &prepare(&lines(expected), &patterns),
            &prepare(&lines(actual), &patterns),
        )
    }

    #[test]
    fn exact_lines_match_and_one_changed_character_does_not() {
        assert!(check("a\nb", "a\nb", ""));
        assert!(!check("a\nb", "a\nc", ""));
        assert!(!check("a\nb", "a", ""));
        assert!(!check("a", "a\nb", ""));
    }

    #[test]
    fn trailing_spaces_and_blank_lines_at_the_end_do_not_count() {
        assert!(check("a  \nb", "a\nb\n\n", ""));
        assert!(!check("a\n\nb", "a\nb", ""));
    }

    #[test]
    fn three_dots_stand_for_any_lines_including_none() {
        assert!(check("a\n...\nd", "a\nb\nc\nd", ""));
        assert!(check("a\n...\nd", "a\nd", ""));
        assert!(check("...\nd", "x\ny\nd", ""));
        assert!(check("a\n...", "a", ""));
        assert!(!check("a\n...\nd", "a\nb\nc", ""));
        assert!(check("...", "", ""));
        assert!(check("...\nb\n...", "a\nb\nc", ""));
    }

    #[test]
    fn varying_parts_are_compared_by_pattern() {
        let log = "2026-11-21T09:10:36.544155Z  INFO client 127.0.0.1:52174";
        let now = "2027-01-02T03:04:05.000001Z  INFO client 127.0.0.1:40001";
        assert!(!check(log, now, ""));
        assert!(!check(log, now, "time"));
        assert!(check(log, now, "time port"));
        // The lab's own ports (four digits) still have to be right.
        assert!(!check("to 127.0.0.1:4444", "to 127.0.0.1:4445", "port"));
        assert!(check("(pid 11)", "(pid 2345)", "pid"));
    }

    #[test]
    fn a_regex_can_name_alternatives() {
        let varies = r"/curl: \((52|56)\) .*/";
        let reset = "curl: (56) Recv failure: Connection reset by peer";
        let empty = "curl: (52) Empty reply from server";
        assert!(check(reset, empty, varies));
        assert!(!check(reset, "curl: (7) Failed to connect", varies));
    }

    #[test]
    fn pattern_lists_parse_names_and_regexes_with_spaces() {
        let list = Pattern::parse_list("time /a b/ port").unwrap();
        let names: Vec<&str> = list.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["time", "/a b/", "port"]);
        assert!(Pattern::parse_list("/a/b/").unwrap()[0].name == "/a/b/");
        let err = Pattern::parse_list("times").unwrap_err();
        assert!(err.contains("unknown pattern `times`"), "{err}");
        assert!(Pattern::parse_list("/open").is_err());
        assert!(Pattern::parse_list("/(/").is_err());
        assert!(Pattern::parse_list("  ").is_err());
    }

    #[test]
    fn a_diff_shows_both_sides() {
        let text = diff(&lines("a\nb"), &lines("a\nc"), "  ");
        assert!(text.contains("  -b\n"), "{text}");
        assert!(text.contains("  +c\n"), "{text}");
    }
}
