//! Code quoted in the tutorial against the anchored regions of the
//! sources. The rules are in the crate documentation.

use std::collections::{BTreeMap, BTreeSet};

use crate::markdown::{self, Fence};
use crate::{BLESS_HINT, Problem};

/// An anchored region of a source file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    /// The line (from 1) of its `// ANCHOR:` marker.
    pub line: usize,
    /// The lines strictly between the markers, other markers left out.
    pub lines: Vec<String>,
}

impl Region {
    /// What a quote of this region must read: its lines, without the
    /// indentation they all share.
    pub fn quoted(&self) -> Vec<String> {
        dedent(&self.lines)
    }
}

enum Marker<'a> {
    Start(&'a str),
    End(&'a str),
}

fn anchor_marker(line: &str) -> Option<Marker<'_>> {
    let trimmed = line.trim();
    if let Some(name) = trimmed.strip_prefix("// ANCHOR_END:") {
        Some(Marker::End(name.trim()))
    } else {
        let name = trimmed.strip_prefix("// ANCHOR:")?;
        Some(Marker::Start(name.trim()))
    }
}

/// The anchored regions of `source`, by name, and what is wrong with its
/// markers. `file` only labels the problems.
pub fn anchors(
    file: &str,
    source: &str,
) -> (BTreeMap<String, Region>, Vec<Problem>) {
    let mut open: BTreeMap<String, Region> = BTreeMap::new();
    let mut closed = BTreeMap::new();
    let mut problems = Vec::new();
    for (index, line) in source.lines().enumerate() {
        let number = index + 1;
        match anchor_marker(line) {
            Some(Marker::Start(name)) => {
                if name.is_empty() {
                    problems.push(Problem::new(
                        file,
                        number,
                        "`// ANCHOR:` needs a name after the colon",
                    ));
                } else if let Some(earlier) =
                    open.get(name).or_else(|| closed.get(name))
                {
                    problems.push(Problem::new(
                        file,
                        number,
                        format!(
                            "anchor `{name}` is already used at line {}; \
                             give this region another name",
                            earlier.line
                        ),
                    ));
                } else {
                    let region = Region {
                        line: number,
                        lines: Vec::new(),
                    };
                    open.insert(name.to_owned(), region);
                }
            }
            Some(Marker::End(name)) => match open.remove(name) {
                Some(region) => {
                    closed.insert(name.to_owned(), region);
                }
                None => problems.push(Problem::new(
                    file,
                    number,
                    format!(
                        "`// ANCHOR_END: {name}` has no `// ANCHOR: {name}` \
                         above it; add the start marker or remove this one"
                    ),
                )),
            },
            None => {
                for region in open.values_mut() {
                    region.lines.push(line.to_owned());
                }
            }
        }
    }
    for (name, region) in open {
        problems.push(Problem::new(
            file,
            region.line,
            format!(
                "`// ANCHOR: {name}` has no `// ANCHOR_END: {name}`; \
                 add it where the region ends"
            ),
        ));
    }
    (closed, problems)
}

/// Removes the leading whitespace that every non-blank line shares.
/// Whitespace-only lines lose as much of it as they have.
pub fn dedent(lines: &[String]) -> Vec<String> {
    let indent_of = |line: &str| line.len() - line.trim_start().len();
    let common = lines
        .iter()
        .filter(|line| !line.trim().is_empty())
        .map(|line| &line[..indent_of(line)])
        .reduce(|a, b| {
            let same =
                a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
            &a[..same]
        })
        .unwrap_or("");
    lines
        .iter()
        .map(|line| match line.strip_prefix(common) {
            Some(rest) => rest.to_owned(),
            None if line.trim().is_empty() => String::new(),
            None => line.clone(),
        })
        .collect()
}

/// A marker in the tutorial and the block that follows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    /// Index (from 0) of the marker line.
    pub marker: usize,
    pub path: String,
    pub anchor: String,
    /// The fenced `rust` block after the marker, if there is one.
    pub block: Option<Fence>,
}

const MARKER_OPEN: &str = "<!-- snippet:";

/// The snippet markers of `tutorial` (outside code blocks) and what is
/// wrong with their syntax.
pub fn quotes(file: &str, tutorial: &str) -> (Vec<Quote>, Vec<Problem>) {
    let lines: Vec<&str> = tutorial.lines().collect();
    let fences = markdown::fences(&lines);
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let trimmed = line.trim();
        if !trimmed.starts_with(MARKER_OPEN)
            || markdown::in_fence(&fences, index)
        {
            continue;
        }
        let spec = trimmed[MARKER_OPEN.len()..]
            .strip_suffix("-->")
            .map(str::trim)
            .and_then(|spec| spec.rsplit_once(':'))
            .filter(|(path, anchor)| !path.is_empty() && !anchor.is_empty());
        let Some((path, anchor)) = spec else {
            problems.push(Problem::new(
                file,
                index + 1,
                "write a snippet marker as `<!-- snippet: \
                 steps/NN-slug/src/lib.rs:anchor -->` on one line",
            ));
            continue;
        };
        let next =
            (index + 1..lines.len()).find(|&at| !lines[at].trim().is_empty());
        let block = next.and_then(|next| {
            fences.iter().find(|fence| {
                fence.open == next
                    && fence.info.split([' ', ',']).next() == Some("rust")
            })
        });
        found.push(Quote {
            marker: index,
            path: path.to_owned(),
            anchor: anchor.to_owned(),
            block: block.cloned(),
        });
    }
    (found, problems)
}

/// Reads a source file by its path relative to the workspace root.
pub type Sources<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// Finds the region a quote names, or says why it cannot.
fn resolve(
    file: &str,
    quote: &Quote,
    sources: &Sources<'_>,
    reported: &mut BTreeSet<String>,
    problems: &mut Vec<Problem>,
) -> Option<Region> {
    let line = quote.marker + 1;
    let path = &quote.path;
    let anchor = &quote.anchor;
    if path.starts_with('/') || path.split('/').any(|part| part == "..") {
        problems.push(Problem::new(
            file,
            line,
            format!(
                "snippet path `{path}` must be relative to the workspace \
                 root and stay inside it"
            ),
        ));
        return None;
    }
    let Some(source) = sources(path) else {
        problems.push(Problem::new(
            file,
            line,
            format!(
                "snippet names `{path}`, which does not exist; fix the path \
                 (relative to the workspace root) or remove the quote"
            ),
        ));
        return None;
    };
    let (regions, anchor_problems) = anchors(path, &source);
    if reported.insert(path.clone()) {
        problems.extend(anchor_problems);
    }
    let region = regions.get(anchor).cloned();
    if region.is_none() {
        let known: Vec<&str> = regions.keys().map(String::as_str).collect();
        problems.push(Problem::new(
            file,
            line,
            format!(
                "`{path}` has no complete region `// ANCHOR: {anchor}` ... \
                 `// ANCHOR_END: {anchor}` (its regions: {}); fix the \
                 marker or ask for the anchor in the source",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        ));
    }
    region
}

/// Compares every quoted block of `tutorial` with its source region.
pub fn check(
    file: &str,
    tutorial: &str,
    sources: &Sources<'_>,
) -> Vec<Problem> {
    let lines: Vec<&str> = tutorial.lines().collect();
    let (quotes, mut problems) = quotes(file, tutorial);
    let mut reported = BTreeSet::new();
    for quote in &quotes {
        let region =
            resolve(file, quote, sources, &mut reported, &mut problems);
        let name = format!("{}:{}", quote.path, quote.anchor);
        let Some(block) = &quote.block else {
            problems.push(Problem::new(
                file,
                quote.marker + 1,
                format!(
                    "snippet `{name}` is not followed by a ```rust block; \
                     {BLESS_HINT}"
                ),
            ));
            continue;
        };
        if block.close.is_none() {
            problems.push(Problem::new(
                file,
                block.open + 1,
                format!("the block quoting `{name}` is never closed"),
            ));
            continue;
        }
        let Some(region) = region else { continue };
        let quoted: Vec<&str> = lines[block.body(lines.len())].to_vec();
        let expected = region.quoted();
        if let Some(difference) = first_difference(&quoted, &expected) {
            let (at, said, should) = difference;
            problems.push(Problem::new(
                file,
                block.open + 2 + at,
                format!(
                    "the block quoting `{name}` differs from the source \
                     (block line {}: {said}; source: {should}); {BLESS_HINT}",
                    at + 1
                ),
            ));
        }
    }
    problems
}

/// Where two lists of lines first differ, and how each side reads there.
fn first_difference(
    quoted: &[&str],
    expected: &[String],
) -> Option<(usize, String, String)> {
    let show = |line: Option<&str>| match line {
        Some(line) => format!("`{line}`"),
        None => "(end of block)".to_owned(),
    };
    let len = quoted.len().max(expected.len());
    (0..len).find_map(|at| {
        let a = quoted.get(at).copied();
        let b = expected.get(at).map(String::as_str);
        (a != b).then(|| (at, show(a), show(b)))
    })
}

/// `tutorial` with every quoted block rewritten from its source region;
/// a marker without a block gets one. Fails, changing nothing, if a
/// marker names a missing file or region.
pub fn bless(
    tutorial: &str,
    sources: &Sources<'_>,
) -> Result<String, Vec<Problem>> {
    const FILE: &str = "tutorial";
    let (quotes, mut problems) = quotes(FILE, tutorial);
    let mut reported = BTreeSet::new();
    let mut edits = Vec::new();
    for quote in &quotes {
        let region =
            resolve(FILE, quote, sources, &mut reported, &mut problems);
        if let Some(block) = &quote.block
            && block.close.is_none()
        {
            problems.push(Problem::new(
                FILE,
                block.open + 1,
                "this block is never closed; close it before blessing",
            ));
            continue;
        }
        if let Some(region) = region {
            edits.push((quote.clone(), region.quoted()));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut lines: Vec<String> = tutorial.lines().map(str::to_owned).collect();
    // From the bottom up, so earlier line indexes stay valid.
    for (quote, body) in edits.into_iter().rev() {
        match quote.block {
            Some(Fence {
                open,
                close: Some(close),
                ..
            }) => {
                lines.splice(open + 1..close, body);
            }
            _ => {
                let mut block = vec!["```rust".to_owned()];
                block.extend(body);
                block.push("```".to_owned());
                let at = quote.marker + 1;
                lines.splice(at..at, block);
            }
        }
    }
    let mut text = lines.join("\n");
    if tutorial.ends_with('\n') || tutorial.is_empty() {
        text.push('\n');
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Source text from lines. (Tests write anchor markers as string
    /// items, never at the start of a line, so that the workspace-wide
    /// anchor check does not read them as real markers.)
    fn src(lines: &[&str]) -> String {
        lines.iter().map(|line| format!("{line}\n")).collect()
    }

    fn lib() -> String {
        src(&[
            "use x;",
            "// ANCHOR: pick",
            "fn pick() -> u8 {",
            "    4",
            "}",
            "// ANCHOR_END: pick",
        ])
    }

    fn sources(path: &str) -> Option<String> {
        (path == "steps/04-x/src/lib.rs").then(lib)
    }

    fn tutorial(body: &str) -> String {
        format!(
            "# T\n\n<!-- snippet: steps/04-x/src/lib.rs:pick -->\n\n\
             ```rust\n{body}```\n\nmore\n"
        )
    }

    #[test]
    fn a_faithful_quote_passes() {
        let text = tutorial("fn pick() -> u8 {\n    4\n}\n");
        assert_eq!(check("t.md", &text, &sources), []);
    }

    #[test]
    fn a_drifted_quote_fails_at_the_line_that_drifted() {
        let text = tutorial("fn pick() -> u8 {\n    5\n}\n");
        let problems = check("t.md", &text, &sources);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].line, 7);
        assert!(problems[0].message.contains("`    5`"));
        assert!(problems[0].message.contains("LAB_BLESS=1"));
    }

    #[test]
    fn a_shorter_quote_fails_and_indentation_counts() {
        let short = tutorial("fn pick() -> u8 {\n");
        assert_eq!(check("t.md", &short, &sources).len(), 1);
        let flat = tutorial("fn pick() -> u8 {\n4\n}\n");
        assert_eq!(check("t.md", &flat, &sources).len(), 1);
    }

    #[test]
    fn a_missing_file_or_anchor_fails() {
        let text = "<!-- snippet: steps/09-y/src/lib.rs:pick -->\n\
                    ```rust\n```\n\
                    <!-- snippet: steps/04-x/src/lib.rs:nope -->\n\
                    ```rust\n```\n";
        let problems = check("t.md", text, &sources);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].message.contains("does not exist"));
        assert_eq!(problems[1].line, 4);
        assert!(problems[1].message.contains("(its regions: pick)"));
    }

    #[test]
    fn a_marker_without_a_block_or_with_bad_syntax_fails() {
        let text = "<!-- snippet: steps/04-x/src/lib.rs:pick -->\ntext\n\
                    <!-- snippet: no-anchor-here -->\n";
        let problems = check("t.md", text, &sources);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().any(|p| p.message.contains("```rust")));
    }

    #[test]
    fn an_unclosed_anchor_fails() {
        let lib = src(&["// ANCHOR: pick", "fn pick() {}"]);
        let (regions, problems) = anchors("lib.rs", &lib);
        assert!(regions.is_empty());
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, 1);
        assert!(problems[0].message.contains("no `// ANCHOR_END: pick`"));
        let read = |_: &str| Some(lib.to_owned());
        let text = "<!-- snippet: lib.rs:pick -->\n```rust\n```\n";
        assert_eq!(check("t.md", text, &read).len(), 2);
    }

    #[test]
    fn a_stray_end_or_a_reused_name_fails() {
        let lib = src(&[
            "// ANCHOR_END: a",
            "// ANCHOR: b",
            "// ANCHOR_END: b",
            "// ANCHOR: b",
            "// ANCHOR_END: b",
        ]);
        let (_, problems) = anchors("lib.rs", &lib);
        let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [1, 4, 5]);
    }

    #[test]
    fn nested_regions_leave_out_inner_markers() {
        let lib = src(&[
            "// ANCHOR: outer",
            "a",
            "// ANCHOR: inner",
            "b",
            "// ANCHOR_END: inner",
            "c",
            "// ANCHOR_END: outer",
        ]);
        let (regions, problems) = anchors("lib.rs", &lib);
        assert!(problems.is_empty());
        assert_eq!(regions["outer"].lines, ["a", "b", "c"]);
        assert_eq!(regions["inner"].lines, ["b"]);
    }

    #[test]
    fn a_uniformly_indented_region_is_quoted_dedented() {
        let lines: Vec<String> = ["    fn a() {", "", "        b", "    }"]
            .map(String::from)
            .to_vec();
        assert_eq!(dedent(&lines), ["fn a() {", "", "    b", "}"]);
    }

    #[test]
    fn bless_rewrites_stale_blocks_and_fills_empty_markers() {
        let stale = tutorial("old\n");
        let blessed = bless(&stale, &sources).unwrap();
        assert_eq!(blessed, tutorial("fn pick() -> u8 {\n    4\n}\n"));
        assert_eq!(check("t.md", &blessed, &sources), []);

        let bare = "a\n<!-- snippet: steps/04-x/src/lib.rs:pick -->\n\nb\n";
        let blessed = bless(bare, &sources).unwrap();
        assert_eq!(
            blessed,
            "a\n<!-- snippet: steps/04-x/src/lib.rs:pick -->\n```rust\n\
             fn pick() -> u8 {\n    4\n}\n```\n\nb\n"
        );
        assert_eq!(check("t.md", &blessed, &sources), []);
    }

    #[test]
    fn bless_refuses_a_marker_it_cannot_resolve() {
        let text = "<!-- snippet: steps/04-x/src/lib.rs:gone -->\n";
        assert!(bless(text, &sources).is_err());
    }

    #[test]
    fn markers_inside_code_blocks_are_examples_not_quotes() {
        let text = "```text\n<!-- snippet: nowhere.rs:x -->\n```\n";
        assert_eq!(check("t.md", text, &sources), []);
    }
}
