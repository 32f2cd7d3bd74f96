//! The tutorial's map: a table of contents that links every chapter and
//! gives its time, and in every chapter a map line at the top and a recap
//! at the bottom. The rules are in the crate documentation.
//!
//! Every `## ` heading of the tutorial is a chapter, with no exception:
//! "Before you start", each step, "Comparing the steps", "How fast is
//! it?" and each `lb — ...` chapter are all read as a course, so each
//! needs its place on the map. The table of contents itself has no `## `
//! heading, so it is not a chapter.

use std::collections::HashMap;
use std::ops::Range;

use crate::markdown::{BlockKind, Doc};
use crate::workspace::Member;
use crate::{Problem, list};

/// What every chapter's last paragraph starts with.
pub const RECAP_LEAD: &str = "**You can now**";

/// The most lines a recap may take, and the most characters.
const RECAP_LINES: usize = 3;
const RECAP_CHARS: usize = 240;

/// Between the four parts of a map line.
const SEPARATOR: &str = " · ";

/// The rule for a chapter's time: prose read at 200 words a minute,
/// quoted code (`rust`, `toml`, `diff`) at 20 lines a minute, and a minute for
/// each command the reader runs (a `$ ` line of a `console` block, a
/// command line of an `sh` block), its output read with it. Stated
/// times are rounded to 5 minutes; one may differ from the rule by 5
/// minutes or a fifth, whichever is more, before the check fails.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Estimate {
    pub words: usize,
    pub code_lines: usize,
    pub commands: usize,
}

impl Estimate {
    pub const WORDS_PER_MINUTE: f64 = 200.0;
    pub const CODE_LINES_PER_MINUTE: f64 = 20.0;

    /// Counts the lines `range` (indexes from 0 in `markdown.lines()`).
    pub fn of(markdown: &str, doc: &Doc, range: Range<usize>) -> Estimate {
        let lines: Vec<&str> = markdown.lines().collect();
        let mut estimate = Estimate::default();
        // What each line is: `None` for prose, the info of its fence for
        // a line inside one, "fence" for the fence lines themselves.
        let mut info: HashMap<usize, &str> = HashMap::new();
        for fence in &doc.fences {
            info.insert(fence.line - 1, "fence");
            if fence.closed {
                info.insert(fence.body.end, "fence");
            }
            for at in fence.body.clone() {
                info.insert(at, fence.info.as_str());
            }
        }
        let mut continued = false;
        for at in range {
            let Some(line) = lines.get(at) else { break };
            let trimmed = line.trim();
            let kind = info.get(&at).copied();
            let language = kind.unwrap_or("").split_whitespace().next();
            match (kind, language.unwrap_or("")) {
                (None, _) => {
                    estimate.words += words(trimmed);
                    continued = false;
                }
                (Some(_), "rust" | "toml" | "diff") if !trimmed.is_empty() => {
                    estimate.code_lines += 1;
                }
                (Some(_), "console") if trimmed.starts_with("$ ") => {
                    estimate.commands += 1;
                }
                (Some(_), "sh" | "bash" | "shell") => {
                    let command = !trimmed.is_empty()
                        && !trimmed.starts_with('#')
                        && !continued;
                    estimate.commands += usize::from(command);
                    continued = trimmed.ends_with('\\');
                }
                _ => {}
            }
        }
        estimate
    }

    pub fn minutes(&self) -> f64 {
        self.words as f64 / Self::WORDS_PER_MINUTE
            + self.code_lines as f64 / Self::CODE_LINES_PER_MINUTE
            + self.commands as f64
    }

    /// Whether `stated` minutes is close enough to the rule's.
    pub fn allows(&self, stated: u32) -> bool {
        let minutes = self.minutes();
        let slack = (minutes / 5.0).max(5.0);
        stated.is_multiple_of(5) && (f64::from(stated) - minutes).abs() <= slack
    }

    /// The rule's time, rounded to 5 minutes (at least 5).
    pub fn rounded(&self) -> u32 {
        let fives = (self.minutes() / 5.0).round().max(1.0);
        fives as u32 * 5
    }
}

/// The words of a line of prose, HTML comments left out.
fn words(line: &str) -> usize {
    let mut rest = line;
    let mut count = 0;
    while let Some(start) = rest.find("<!--") {
        count += rest[..start].split_whitespace().count();
        rest = rest[start..]
            .find("-->")
            .map_or("", |end| &rest[start + end + 3..]);
    }
    count + rest.split_whitespace().count()
}

/// The anchor GitHub gives a heading: lowercase, every character but
/// letters, digits, `-`, `_` and spaces removed, then each space a `-`.
/// `lb — A balancer to keep` is `lb--a-balancer-to-keep`.
pub fn slug(heading: &str) -> String {
    heading
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .flat_map(char::to_lowercase)
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every heading's anchor, in order; a repeated one gets `-1`, `-2`...
/// as on GitHub.
pub fn anchors(doc: &Doc) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut anchors = Vec::new();
    for heading in &doc.headings {
        let slug = slug(&heading.text);
        let count = seen.entry(slug.clone()).or_default();
        anchors.push(match *count {
            0 => slug,
            n => format!("{slug}-{n}"),
        });
        *count += 1;
    }
    anchors
}

/// `35` in `about 35 min`.
fn about_minutes(text: &str) -> Option<u32> {
    let rest = &text[text.find("about ")? + "about ".len()..];
    let digits = rest.find(|c: char| !c.is_ascii_digit())?;
    let after = &rest[digits..];
    (digits > 0 && after.starts_with(" min"))
        .then(|| rest[..digits].parse().ok())?
}

/// Whether `text` gives the time `wanted` (`about 9 h`) whole: not as
/// the start of a longer one (`about 9 h 20 min`).
fn gives_time(text: &str, wanted: &str) -> bool {
    text.match_indices(wanted).any(|(at, _)| {
        let rest = text[at + wanted.len()..].trim_start();
        !rest.starts_with(|c: char| c.is_ascii_digit())
    })
}

/// `about 9 h 25 min`, or `about 40 min`.
pub fn total_text(minutes: u32) -> String {
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("about {m} min"),
        (h, 0) => format!("about {h} h"),
        (h, m) => format!("about {h} h {m} min"),
    }
}

/// The anchors of the `[text](#anchor)` links in `text`.
fn link_anchors(text: &str) -> Vec<&str> {
    let mut anchors = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("](#") {
        rest = &rest[start + 3..];
        let end = rest.find(')').unwrap_or(rest.len());
        anchors.push(&rest[..end]);
        rest = &rest[end..];
    }
    anchors
}

/// `text` with `[words](#x)` written `words`, and without `*` and `` ` ``.
fn plain(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("](") {
        out.push_str(&rest[..start]);
        rest = &rest[start + 2..];
        rest = rest.find(')').map_or("", |end| &rest[end + 1..]);
    }
    out.push_str(rest);
    out.chars()
        .filter(|c| !matches!(c, '[' | '*' | '`'))
        .collect()
}

/// The text of each `` `code` `` span in `text`.
fn code_spans(text: &str) -> Vec<&str> {
    let pieces = text.split('`').enumerate();
    pieces
        .filter(|(at, _)| at % 2 == 1)
        .map(|(_, span)| span)
        .collect()
}

/// Splits the "new:" list on commas outside `` `code` ``.
fn new_items(text: &str) -> Vec<String> {
    let (mut items, mut item, mut code) = (Vec::new(), String::new(), false);
    for c in text.chars() {
        match c {
            '`' => {
                code = !code;
                item.push(c);
            }
            ',' if !code => items.push(std::mem::take(&mut item)),
            _ => item.push(c),
        }
    }
    items.push(item);
    let items = items.into_iter().map(|i| i.trim().to_owned());
    items.filter(|i| !i.is_empty()).collect()
}

/// A chapter as the check sees it.
struct Chapter<'a> {
    title: &'a str,
    line: usize,
    anchor: String,
    /// Its blocks, the heading first.
    blocks: Range<usize>,
    /// Its lines, indexes from 0, the heading first.
    lines: Range<usize>,
}

/// Checks the map of `markdown` (the file `file`): the table of contents,
/// each chapter's map line and recap, and every `#` link. `steps`: the
/// workspace's steps, in order, whose `parent` the map lines must name.
pub fn check(file: &str, markdown: &str, steps: &[&Member]) -> Vec<Problem> {
    let doc = Doc::parse(markdown);
    let mut problems = Vec::new();
    let mut report = |line: usize, message: String| {
        problems.push(Problem::new(file, line, message));
    };
    let anchors = anchors(&doc);
    let chapter_anchor = |line: usize| {
        let at = doc.headings.iter().position(|h| h.line == line);
        at.map(|at| anchors[at].clone()).unwrap_or_default()
    };
    let starts: Vec<usize> = doc
        .blocks
        .iter()
        .enumerate()
        .filter(|(_, b)| b.kind == BlockKind::Heading(2))
        .map(|(at, _)| at)
        .collect();
    let line_count = markdown.lines().count();
    let chapters: Vec<Chapter<'_>> = starts
        .iter()
        .enumerate()
        .map(|(index, &start)| {
            let end =
                starts.get(index + 1).copied().unwrap_or(doc.blocks.len());
            let line = doc.blocks[start].line;
            let last = doc.blocks.get(end).map_or(line_count, |b| b.line - 1);
            let heading = doc.headings.iter().find(|h| h.line == line);
            Chapter {
                title: heading.map_or("", |h| h.text.as_str()),
                line,
                anchor: chapter_anchor(line),
                blocks: start..end,
                lines: line - 1..last,
            }
        })
        .collect();

    // Links to headings.
    for link in &doc.links {
        if let Some(anchor) = link.text.strip_prefix('#')
            && !anchors.iter().any(|a| a == anchor)
        {
            report(
                link.line,
                format!(
                    "the link to `#{anchor}` names no heading; a chapter's \
                     anchor is its title in lowercase, punctuation \
                     removed, spaces as `-` (`{}`)",
                    chapters.first().map_or("", |c| c.anchor.as_str())
                ),
            );
        }
    }

    // Each chapter's map line and recap.
    let last_step = steps.last().map_or("", |step| step.number());
    let lb_chapters: Vec<&str> = chapters
        .iter()
        .map(|c| c.title)
        .filter(|t| t.starts_with("lb — "))
        .collect();
    let mut stated: Vec<Option<u32>> = Vec::new();
    for (index, chapter) in chapters.iter().enumerate() {
        let name = format!("chapter «{}»", chapter.title);
        let estimate = Estimate::of(markdown, &doc, chapter.lines.clone());
        let first = doc.blocks.get(chapter.blocks.start + 1);
        let map_line = first.filter(|b| b.kind == BlockKind::Paragraph);
        let line = first.map_or(chapter.line, |b| b.line);
        let form = "one line in italics, `*POSITION · builds on CHAPTER · \
                    new: `name`, idea · about N min*`";
        let Some(map_line) = map_line else {
            report(
                line,
                format!(
                    "{name} opens without its map line: its first \
                     paragraph must be {form} (the rule gives about {} min)",
                    estimate.rounded()
                ),
            );
            stated.push(None);
            continue;
        };
        let source = map_line.source.as_str();
        let inner = source
            .strip_prefix('*')
            .and_then(|s| s.strip_suffix('*'))
            .filter(|s| !s.starts_with('*') && !s.contains('\n'));
        let parts: Vec<&str> =
            inner.map_or(Vec::new(), |s| s.split(SEPARATOR).collect());
        let [position, builds_on, new, time] = parts[..] else {
            report(
                line,
                format!(
                    "{name}: its first paragraph is not a map line: \
                     write {form}, the four parts joined by ` · ` (the \
                     rule gives about {} min)",
                    estimate.rounded()
                ),
            );
            stated.push(None);
            continue;
        };
        let mut wrong = Vec::new();
        // Where the chapter is.
        let step = crate::titles::step_number(chapter.title);
        if let Some(number) = step {
            let wanted = format!("Step {number} of {last_step}");
            if position != wanted {
                wrong.push(format!("its position is `{wanted}`"));
            }
        } else if let Some(at) =
            lb_chapters.iter().position(|t| *t == chapter.title)
        {
            let wanted =
                format!("lb, chapter {} of {}", at + 1, lb_chapters.len());
            if position != wanted {
                wrong.push(format!("its position is `{wanted}`"));
            }
        } else if position.trim().is_empty() {
            wrong.push("it must say where the chapter is".to_owned());
        }
        // What it builds on.
        match builds_on.strip_prefix("builds on ") {
            None => wrong.push("its second part starts `builds on `".into()),
            Some(what) => {
                let member =
                    step.and_then(|n| steps.iter().find(|s| s.number() == n));
                let parent = member
                    .and_then(|m| m.parent.as_ref())
                    .and_then(|p| steps.iter().find(|s| &s.package == p));
                let said = plain(what);
                if let Some(parent) = parent {
                    let number = parent.number();
                    let chapter_of_parent = chapters.iter().find(|c| {
                        crate::titles::step_number(c.title) == Some(number)
                    });
                    let linked = link_anchors(what);
                    if let Some(wanted) = chapter_of_parent
                        && !linked.is_empty()
                        && !linked.contains(&wanted.anchor.as_str())
                    {
                        wrong.push(format!(
                            "its link goes to step {number}'s chapter, `#{}`",
                            wanted.anchor
                        ));
                    }
                    let names = said.strip_prefix(number).is_some_and(|rest| {
                        !rest.starts_with(|c: char| c.is_ascii_digit())
                    });
                    if !names {
                        wrong.push(format!(
                            "it builds on {number}, as {} records \
                             ([package.metadata.lab] parent), not `{said}`",
                            member.map_or(String::new(), |m| m.manifest_path())
                        ));
                    }
                }
                for anchor in link_anchors(what) {
                    let earlier =
                        chapters[..index].iter().any(|c| c.anchor == anchor);
                    if !earlier {
                        wrong.push(format!(
                            "it builds on `#{anchor}`, which is not an earlier chapter"
                        ));
                    }
                }
            }
        }
        // What it introduces.
        match new.strip_prefix("new: ").map(new_items) {
            Some(items) if (2..=4).contains(&items.len()) => {
                // A name in `code` must be one the chapter uses.
                let lines = markdown.lines().enumerate();
                let body: Vec<&str> = lines
                    .filter(|(at, _)| {
                        chapter.lines.contains(at) && at + 1 != map_line.line
                    })
                    .map(|(_, text)| text)
                    .collect();
                let body = body.join("\n");
                for name in items.iter().flat_map(|item| code_spans(item)) {
                    if !body.contains(name) {
                        wrong.push(format!(
                            "it names `{name}` as new, which the chapter \
                             does not use"
                        ));
                    }
                }
            }
            Some(items) => wrong.push(format!(
                "it names two to four new things, not {} ({})",
                items.len(),
                list(items.iter().map(String::as_str))
            )),
            None => wrong.push("its third part starts `new: `".into()),
        }
        // Its time.
        let minutes =
            about_minutes(time).filter(|_| time.starts_with("about "));
        match minutes {
            Some(minutes) if estimate.allows(minutes) => {}
            _ => wrong.push(format!(
                "its time is `about {} min`, by the rule ({} words, {} lines \
                 of code, {} commands: {:.0} min), not `{time}`",
                estimate.rounded(),
                estimate.words,
                estimate.code_lines,
                estimate.commands,
                estimate.minutes()
            )),
        }
        stated.push(minutes);
        if !wrong.is_empty() {
            report(
                line,
                format!("{name}'s map line is wrong: {}", wrong.join("; ")),
            );
        }

        // The recap.
        let last = doc.blocks[chapter.blocks.clone()].last();
        let last = last.filter(|_| chapter.blocks.len() > 2);
        let recap = last.filter(|b| {
            b.kind == BlockKind::Paragraph && b.source.starts_with(RECAP_LEAD)
        });
        match recap {
            None => report(
                last.map_or(chapter.line, |b| b.line),
                format!(
                    "{name} does not end with its recap: a last paragraph \
                     that starts `{RECAP_LEAD}` and says, in at most \
                     {RECAP_LINES} lines, what the learner can now do"
                ),
            ),
            Some(recap)
                if recap.source.lines().count() > RECAP_LINES
                    || recap.source.chars().count() > RECAP_CHARS =>
            {
                report(
                    recap.line,
                    format!(
                        "{name}'s recap is longer than {RECAP_LINES} lines \
                         ({RECAP_CHARS} characters); keep to what the \
                         learner can now do"
                    ),
                );
            }
            Some(_) => {}
        }
    }

    // The table of contents: the list of `#` links before the first
    // chapter.
    let first_chapter = starts.first().copied().unwrap_or(doc.blocks.len());
    let intro = &doc.blocks[..first_chapter];
    let toc = intro
        .iter()
        .position(|b| b.kind == BlockKind::List && b.source.contains("](#"));
    let Some(toc) = toc else {
        report(
            chapters.first().map_or(0, |c| c.line),
            "no table of contents before the first chapter: a list with \
             one item per chapter, `- [Title](#anchor) · about N min`"
                .to_owned(),
        );
        return problems;
    };
    let block = &intro[toc];
    let items: Vec<(usize, &str)> = block
        .source
        .lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with("- "))
        .map(|(at, l)| (block.line + at, l))
        .collect();
    for (at, chapter) in chapters.iter().enumerate() {
        let name = format!("chapter «{}»", chapter.title);
        let wanted = format!("[{}](#{})", chapter.title, chapter.anchor);
        let Some(&(line, item)) = items.get(at) else {
            report(
                block.line,
                format!(
                    "the table of contents does not list {name}: add `- {wanted} · about N min`"
                ),
            );
            continue;
        };
        if !item.starts_with(&format!("- {wanted}")) {
            report(
                line,
                format!(
                    "the table of contents lists `{item}` where {name} \
                     belongs: `- {wanted} · about N min`, every chapter in order"
                ),
            );
            continue;
        }
        let minutes = about_minutes(item);
        if minutes.is_none() || minutes != stated[at] && stated[at].is_some() {
            let said = stated[at].map_or("N".to_owned(), |m| m.to_string());
            report(
                line,
                format!(
                    "the table of contents gives {name} no time or another \
                     than its map line: end the item with `about {said} min`"
                ),
            );
        }
    }
    for &(line, item) in items.iter().skip(chapters.len()) {
        report(
            line,
            format!(
                "the table of contents lists `{item}`, which is no chapter"
            ),
        );
    }
    // A map line that could not be read has been reported already.
    if stated.iter().any(Option::is_none) {
        return problems;
    }
    let total: u32 = stated.iter().flatten().sum();
    let wanted = total_text(total);
    let after = intro.get(toc + 1);
    let says_total = after.is_some_and(|b| {
        b.kind == BlockKind::Paragraph && {
            gives_time(&plain(&b.source), &wanted)
        }
    });
    if !says_total {
        report(
            after.map_or(block.line, |b| b.line),
            format!(
                "the paragraph after the table of contents must give the \
                 total, the sum of the chapters' times: `{wanted}`"
            ),
        );
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_githubs() {
        assert_eq!(slug("lb — A balancer to keep"), "lb--a-balancer-to-keep");
        assert_eq!(
            slug("Step 08 — Final: per-server TLS"),
            "step-08--final-per-server-tls"
        );
        assert_eq!(slug("How fast is it?"), "how-fast-is-it");
        assert_eq!(
            slug("lb — Timeouts, limits and draining"),
            "lb--timeouts-limits-and-draining"
        );
        let doc = Doc::parse("## Run it\n### Run it\n## Run it\n");
        assert_eq!(anchors(&doc), ["run-it", "run-it-1", "run-it-2"]);
    }

    #[test]
    fn the_estimate_counts_words_code_and_commands() {
        let text = "## A\n\nfour words of prose <!-- walk: x y z -->\n\n\
                    ```rust\nfn a() {}\n\nfn b() {}\n```\n\
                    ```console\n$ one\nout\n$ two\n```\n\
                    ```sh\n# not this\nthree \\\n  still three\nfour\n```\n\
                    ```text\nan output\n```\n";
        let doc = Doc::parse(text);
        let lines = text.lines().count();
        let estimate = Estimate::of(text, &doc, 0..lines);
        let counted = (estimate.words, estimate.code_lines, estimate.commands);
        assert_eq!(counted, (6, 2, 4));
        assert!((estimate.minutes() - (6.0 / 200.0 + 0.1 + 4.0)).abs() < 1e-9);
        assert_eq!(estimate.rounded(), 5);
        assert!(
            estimate.allows(5) && estimate.allows(0) && !estimate.allows(4)
        );
        assert!(!estimate.allows(15));
        let long = Estimate {
            words: 6000,
            ..Estimate::default()
        };
        assert!(long.allows(35) && !long.allows(40) && !long.allows(20));
    }

    #[test]
    fn a_total_is_read_whole() {
        assert!(gives_time("In all, about 9 h.", "about 9 h"));
        assert!(gives_time("In all, about 9 h 20 min.", "about 9 h 20 min"));
        assert!(!gives_time("In all, about 9 h 20 min.", "about 9 h"));
    }

    #[test]
    fn totals_read_as_hours_and_minutes() {
        assert_eq!(total_text(45), "about 45 min");
        assert_eq!(total_text(120), "about 2 h");
        assert_eq!(total_text(565), "about 9 h 25 min");
        assert_eq!(about_minutes("· about 35 min*"), Some(35));
        assert_eq!(about_minutes("about 35 minutes"), Some(35));
        assert_eq!(about_minutes("about half an hour"), None);
    }

    fn member(folder: &str, parent: Option<&str>) -> Member {
        Member {
            dir: format!("steps/{folder}"),
            package: format!("step-{folder}"),
            parent: parent.map(str::to_owned),
            ..Member::default()
        }
    }

    /// A tutorial with two steps (02 builds on 01) and one lb chapter.
    fn check(text: &str) -> Vec<Problem> {
        let (one, two) =
            (member("01-a", None), member("02-b", Some("step-01-a")));
        super::check("t.md", text, &[&one, &two])
    }

    const GOOD: &str = "\
# Course

Intro.

- [Step 01 — A](#step-01--a) · about 5 min
- [Step 02 — B](#step-02--b) · about 5 min
- [lb — Keep](#lb--keep) · about 5 min

In all, about 15 min.

## Step 01 — A

*Step 01 of 02 · builds on some Rust · new: `accept`, tasks · about 5 min*

Text on `accept`.

**You can now** accept a client.

## Step 02 — B

*Step 02 of 02 · builds on [01](#step-01--a) · new: `copy`, `dial` · about 5 min*

### Run it

```sh
cargo run
```

**You can now** copy a client through `dial`,
see [Run it](#run-it).

## lb — Keep

*lb, chapter 1 of 1 · builds on [Step 02](#step-02--b) · new: `lb`, a config · about 5 min*

**You can now** keep `lb`.
";

    fn lines(problems: &[Problem]) -> Vec<usize> {
        problems.iter().map(|p| p.line).collect()
    }

    #[test]
    fn a_complete_map_passes() {
        assert_eq!(check(GOOD), []);
    }

    #[test]
    fn a_chapter_without_its_map_line_fails_there() {
        let text = GOOD.replace(
            "*Step 01 of 02 · builds on some Rust · new: `accept`, tasks · about 5 min*\n\n",
            "",
        );
        let problems = check(&text);
        assert_eq!(lines(&problems), [13], "{problems:?}");
        let message = &problems[0].message;
        assert!(message.contains(
            "chapter «Step 01 — A»: its first paragraph is not a map line"
        ));
        // A chapter that opens with a heading or a code block has none.
        let text = GOOD.replace(
            "*Step 02 of 02 · builds on [01](#step-01--a) · new: `copy`, `dial` · about 5 min*\n\n",
            "",
        );
        let problems = check(&text);
        assert_eq!(lines(&problems), [21], "{problems:?}");
        let message = &problems[0].message;
        assert!(
            message
                .contains("chapter «Step 02 — B» opens without its map line")
        );
        // A map line that is two lines, or not in italics, is no map line.
        for wrong in [
            "*Step 01 of 02 · builds on some Rust ·\nnew: `a`, b · about 5 min*",
            "Step 01 of 02 · builds on some Rust · new: `a`, b · about 5 min",
            "*Step 01 of 02 · builds on some Rust · about 5 min*",
        ] {
            let text = GOOD.replace(
                "*Step 01 of 02 · builds on some Rust · new: `accept`, tasks · about 5 min*",
                wrong,
            );
            let problems = check(&text);
            assert_eq!(lines(&problems), [13], "{wrong}: {problems:?}");
            assert!(
                problems[0].message.contains("is not a map line"),
                "{wrong}"
            );
        }
    }

    #[test]
    fn each_wrong_part_of_a_map_line_is_named() {
        let cases = [
            (
                "Step 02 of 02 ·",
                "Step 2 of 02 ·",
                "its position is `Step 02 of 02`",
            ),
            (
                "builds on [01](#step-01--a)",
                "builds on 03",
                "it builds on 01",
            ),
            (
                "builds on [01](#step-01--a)",
                "builds on [01](#lb--keep)",
                "its link goes to step 01's chapter, `#step-01--a`",
            ),
            ("`copy`, `dial`", "`copy`", "two to four new things, not 1"),
            ("`copy`, `dial`", "`copy`, `nope`", "`nope` as new, which"),
            (
                "· about 5 min*\n\n###",
                "· about 30 min*\n\n###",
                "`about 5 min`, by the rule",
            ),
            (
                "builds on [Step 02](#step-02--b)",
                "builds on [lb](#lb--keep)",
                "not an earlier chapter",
            ),
            ("lb, chapter 1 of 1", "lb, part 1", "`lb, chapter 1 of 1`"),
        ];
        for (good, bad, said) in cases {
            assert!(GOOD.contains(good), "{good}");
            let problems = check(&GOOD.replacen(good, bad, 1));
            let found: Vec<&str> =
                problems.iter().map(|p| p.message.as_str()).collect();
            assert!(found.iter().any(|m| m.contains(said)), "{bad}: {found:?}");
            assert!(
                found.iter().any(|m| m.contains("map line is wrong")),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_chapter_without_its_recap_fails_at_its_last_block() {
        let text = GOOD.replace("**You can now** accept a client.\n\n", "");
        let problems = check(&text);
        assert_eq!(lines(&problems), [15], "{problems:?}");
        assert!(
            problems[0]
                .message
                .contains("chapter «Step 01 — A» does not end with its recap")
        );
        // A code block last is no recap either.
        let text = GOOD.replace(
            "**You can now** keep `lb`.\n",
            "**You can now** keep `lb`.\n\n```sh\nlb\n```\n",
        );
        let problems = check(&text);
        assert!(
            problems
                .iter()
                .any(|p| p.message.contains("«lb — Keep» does not end"))
        );
        let long = GOOD
            .replace("keep `lb`.", "keep it,\nrun it,\nstop it,\nand more.");
        let problems = check(&long);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].message.contains("recap is longer than 3 lines"));
    }

    #[test]
    fn the_table_of_contents_lists_every_chapter_in_order_with_its_time() {
        let missing =
            GOOD.replace("- [lb — Keep](#lb--keep) · about 5 min\n", "");
        let problems = check(&missing);
        assert!(
            problems[0]
                .message
                .contains("does not list chapter «lb — Keep»"),
            "{problems:?}"
        );
        let swapped = GOOD
            .replace("- [Step 01 — A](#step-01--a) · about 5 min\n", "")
            .replace("[lb — Keep](#lb--keep) · about 5 min\n", "[lb — Keep](#lb--keep) · about 5 min\n- [Step 01 — A](#step-01--a) · about 5 min\n");
        let problems = check(&swapped);
        assert_eq!(lines(&problems), [5, 6, 7], "{problems:?}");
        assert!(
            problems[0]
                .message
                .contains("where chapter «Step 01 — A» belongs")
        );
        let untimed =
            GOOD.replace("(#step-02--b) · about 5 min", "(#step-02--b)");
        let problems = check(&untimed);
        assert_eq!(lines(&problems), [6], "{problems:?}");
        assert!(
            problems[0]
                .message
                .contains("end the item with `about 5 min`")
        );
        let wrong_total = GOOD.replace("about 15 min.", "about 20 min.");
        let problems = check(&wrong_total);
        assert_eq!(lines(&problems), [9], "{problems:?}");
        assert!(problems[0].message.contains("`about 15 min`"));
        let lines_of = GOOD.lines().filter(|l| !l.starts_with("- ["));
        let none: String = lines_of.map(|l| format!("{l}\n")).collect();
        let problems = check(&none);
        assert!(
            problems
                .iter()
                .any(|p| p.message.contains("no table of contents"))
        );
    }

    #[test]
    fn a_link_to_a_missing_heading_fails() {
        let text = GOOD.replace("[Run it](#run-it)", "[Run it](#run)");
        let problems = check(&text);
        assert_eq!(lines(&problems), [30], "{problems:?}");
        assert!(problems[0].message.contains("`#run` names no heading"));
    }
}
