//! Code quoted in the tutorial against the anchored regions of the
//! sources. The rules are in the crate documentation.

use std::collections::{BTreeMap, BTreeSet};

use crate::markdown::{Doc, Fence};
use crate::{BLESS_HINT, Problem, list};

/// An anchored region of a source file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    /// The line (from 1) of its `// ANCHOR:` marker.
    pub line: usize,
    /// The lines strictly between the markers, other markers left out.
    pub lines: Vec<String>,
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
    let mut report = |line, message: String| {
        problems.push(Problem::new(file, line, message));
    };
    for (index, text) in source.lines().enumerate() {
        let line = index + 1;
        let marker = |prefix| text.trim().strip_prefix(prefix).map(str::trim);
        if let Some(name) = marker("// ANCHOR_END:") {
            match open.remove(name) {
                Some(region) => drop(closed.insert(name.to_owned(), region)),
                None => report(
                    line,
                    format!(
                        "`// ANCHOR_END: {name}` has no `// ANCHOR: {name}` \
                         above it; add the start marker or remove this one"
                    ),
                ),
            }
        } else if let Some(name) = marker("// ANCHOR:") {
            if name.is_empty() {
                report(
                    line,
                    "`// ANCHOR:` needs a name after the colon".into(),
                );
            } else if let Some(earlier) = open.get(name).or(closed.get(name)) {
                report(
                    line,
                    format!(
                        "anchor `{name}` is already used at line {}; give this \
                         region another name",
                        earlier.line
                    ),
                );
            } else {
                let region = Region {
                    line,
                    lines: Vec::new(),
                };
                open.insert(name.to_owned(), region);
            }
        } else {
            for region in open.values_mut() {
                region.lines.push(text.to_owned());
            }
        }
    }
    for (name, region) in open {
        report(
            region.line,
            format!(
                "`// ANCHOR: {name}` has no `// ANCHOR_END: {name}`; add it \
                 where the region ends"
            ),
        );
    }
    (closed, problems)
}

/// Removes the leading whitespace that every non-blank line shares.
/// Whitespace-only lines lose as much of it as they have.
pub fn dedent(lines: &[String]) -> Vec<String> {
    let common = lines
        .iter()
        .filter(|line| !line.trim().is_empty())
        .map(|line| &line[..line.len() - line.trim_start().len()])
        .reduce(|a, b| {
            let same = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y);
            &a[..same.count()]
        })
        .unwrap_or("");
    let strip = |line: &String| match line.strip_prefix(common) {
        Some(rest) => rest.to_owned(),
        None if line.trim().is_empty() => String::new(),
        None => line.clone(),
    };
    lines.iter().map(strip).collect()
}

/// A marker in the tutorial, the block that follows it, and what the
/// block must read (`None` if the region cannot be found).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    /// The line of the marker.
    pub line: usize,
    /// `path:anchor`, as the marker gives it.
    pub name: String,
    /// The fenced `rust` block after the marker, if there is one.
    pub block: Option<Fence>,
    /// The region's lines, without the indentation they all share.
    pub expected: Option<Vec<String>>,
}

/// Reads a source file by its path relative to the workspace root.
pub type Sources<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// The snippet markers of `tutorial` (HTML comments, so not those shown
/// inside code blocks), resolved, and what is wrong with them.
pub fn quotes(
    file: &str,
    tutorial: &str,
    sources: &Sources<'_>,
) -> (Vec<Quote>, Vec<Problem>) {
    let lines: Vec<&str> = tutorial.lines().collect();
    let doc = Doc::parse(tutorial);
    let mut found = Vec::new();
    let mut problems = Vec::new();
    // Files whose anchors were already checked.
    let mut read = BTreeSet::new();
    for html in &doc.html {
        let Some(spec) = html.text.trim().strip_prefix("<!-- snippet:") else {
            continue;
        };
        let line = html.line;
        let mut report = |message: String| {
            problems.push(Problem::new(file, line, message));
        };
        let spec = spec.strip_suffix("-->").map(str::trim);
        let Some((path, anchor)) = spec
            .and_then(|spec| spec.rsplit_once(':'))
            .filter(|(path, anchor)| !path.is_empty() && !anchor.is_empty())
        else {
            report(
                "write a snippet marker as `<!-- snippet: \
                 path/from/the/root.rs:anchor -->` on one line"
                    .into(),
            );
            continue;
        };
        let block = block_after(&doc, &lines, line, "rust");
        let source = if path.starts_with('/')
            || path.split('/').any(|p| p == "..")
        {
            report(format!(
                "snippet path `{path}` must be relative to the workspace \
                 root and stay inside it"
            ));
            None
        } else if let Some(source) = sources(path) {
            Some(source)
        } else {
            report(format!(
                "snippet names `{path}`, which does not exist; fix the path \
                 (relative to the workspace root) or remove the quote"
            ));
            None
        };
        let expected = source.and_then(|source| {
            let (regions, anchor_problems) = anchors(path, &source);
            if read.insert(path.to_owned()) {
                problems.extend(anchor_problems);
            }
            if !regions.contains_key(anchor) {
                let names = list(regions.keys().map(String::as_str));
                let message = format!(
                    "`{path}` has no complete region `// ANCHOR: {anchor}` \
                     ... `// ANCHOR_END: {anchor}` (its regions: {names}); \
                     fix the marker or ask for the anchor in the source"
                );
                problems.push(Problem::new(file, line, message));
            }
            Some(dedent(&regions.get(anchor)?.lines))
        });
        let name = format!("{path}:{anchor}");
        let block = block.cloned();
        found.push(Quote {
            line,
            name,
            block,
            expected,
        });
    }
    (found, problems)
}

/// Compares every quoted block of `tutorial` with its source region.
pub fn check(
    file: &str,
    tutorial: &str,
    sources: &Sources<'_>,
) -> Vec<Problem> {
    let lines: Vec<&str> = tutorial.lines().collect();
    let (quotes, mut problems) = quotes(file, tutorial, sources);
    let mut report = |line, message: String| {
        problems.push(Problem::new(file, line, message));
    };
    for Quote {
        line,
        name,
        block,
        expected,
    } in quotes
    {
        let Some(block) = block else {
            report(
                line,
                format!(
                    "snippet `{name}` is not followed by a ```rust block; \
                     {BLESS_HINT}"
                ),
            );
            continue;
        };
        if !block.closed {
            let message = format!("the block quoting `{name}` is never closed");
            report(block.line, message);
            continue;
        }
        // A region that cannot be found is reported already.
        let Some(expected) = expected else { continue };
        let quoted = &lines[block.body];
        let Some((at, was, wanted)) = first_difference(quoted, &expected)
        else {
            continue;
        };
        report(
            block.line + 1 + at,
            format!(
                "the block quoting `{name}` differs from the source (block \
                 line {}: {was}; source: {wanted}); {BLESS_HINT}",
                at + 1,
            ),
        );
    }
    problems
}

/// The fenced block in `language` that a marker on line `line` (from 1)
/// announces: the next line that is not blank must open it.
pub fn block_after<'a>(
    doc: &'a Doc,
    lines: &[&str],
    line: usize,
    language: &str,
) -> Option<&'a Fence> {
    // Lines count from 1, indexes from 0: index `line` is the next line.
    let next = (line..lines.len()).find(|&at| !lines[at].trim().is_empty())?;
    doc.fences.iter().find(|fence| {
        fence.line == next + 1
            && fence.info.split([' ', ',']).next() == Some(language)
    })
}

/// Where a quoted block first differs from what it should say: the line
/// (from 0), and each side's line, in backquotes, or `(end of block)`.
pub fn first_difference(
    quoted: &[&str],
    expected: &[String],
) -> Option<(usize, String, String)> {
    let differs = |at: &usize| {
        quoted.get(*at).copied() != expected.get(*at).map(String::as_str)
    };
    let at = (0..quoted.len().max(expected.len())).find(differs)?;
    let show = |line: Option<&str>| {
        line.map_or("(end of block)".into(), |line| format!("`{line}`"))
    };
    Some((
        at,
        show(quoted.get(at).copied()),
        show(expected.get(at).map(String::as_str)),
    ))
}

/// `tutorial` with every quoted block rewritten from its source region;
/// a marker without a block gets one. Fails, changing nothing, if a
/// marker names a missing file or region, or a block is never closed.
pub fn bless(
    tutorial: &str,
    sources: &Sources<'_>,
) -> Result<String, Vec<Problem>> {
    let (quotes, mut problems) = quotes("tutorial.md", tutorial, sources);
    for block in quotes.iter().filter_map(|quote| quote.block.as_ref()) {
        if !block.closed {
            problems.push(Problem::new(
                "tutorial.md",
                block.line,
                "this block is never closed; close it before blessing",
            ));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut lines: Vec<String> = tutorial.lines().map(str::to_owned).collect();
    // From the bottom up, so earlier line indexes stay valid.
    for quote in quotes.into_iter().rev() {
        let body = quote.expected.unwrap_or_default();
        if let Some(block) = quote.block {
            lines.splice(block.body, body);
        } else {
            let block = ["```rust".to_owned()].into_iter().chain(body);
            let at = quote.line;
            lines.splice(at..at, block.chain(["```".to_owned()]));
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
    fn a_drifted_or_shorter_or_flattened_quote_fails() {
        let text = tutorial("fn pick() -> u8 {\n    5\n}\n");
        let problems = check("t.md", &text, &sources);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].line, 7, "the line that drifted");
        assert!(problems[0].message.contains("`    5`; source: `    4`"));
        assert!(problems[0].message.contains("LAB_BLESS=1"));
        for body in ["fn pick() -> u8 {\n", "fn pick() -> u8 {\n4\n}\n"] {
            assert_eq!(check("t.md", &tutorial(body), &sources).len(), 1);
        }
    }

    #[test]
    fn a_quote_from_any_workspace_file_works() {
        let lib = src(&[
            "impl Pool {",
            "    // ANCHOR: pick",
            "    fn pick(&self) {}",
            "    // ANCHOR_END: pick",
            "}",
        ]);
        let read =
            |path: &str| (path == "balancer/src/a/mod.rs").then(|| lib.clone());
        let text = "<!-- snippet: balancer/src/a/mod.rs:pick -->\n\
                    ```rust\nfn pick(&self) {}\n```\n";
        assert_eq!(check("t.md", text, &read), []);
        let indented = text.replace("\nfn", "\n    fn");
        assert_eq!(check("t.md", &indented, &read).len(), 1);
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
    fn an_unclosed_or_stray_or_reused_anchor_fails() {
        let lib = src(&[
            "// ANCHOR_END: a",
            "// ANCHOR: b",
            "// ANCHOR_END: b",
            "// ANCHOR: b",
            "// ANCHOR_END: b",
            "// ANCHOR: pick",
        ]);
        let (regions, problems) = anchors("lib.rs", &lib);
        assert_eq!(regions.keys().collect::<Vec<_>>(), ["b"]);
        let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [1, 4, 5, 6], "{problems:?}");
        assert!(problems[3].message.contains("no `// ANCHOR_END: pick`"));
        // A quote of the unclosed region: that, and no such region.
        let read = |_: &str| Some(lib.to_owned());
        let text = "<!-- snippet: lib.rs:pick -->\n```rust\n```\n";
        assert_eq!(check("t.md", text, &read).len(), 5);
    }

    #[test]
    fn an_unclosed_block_fails_and_bless_leaves_it() {
        let text = "<!-- snippet: steps/04-x/src/lib.rs:pick -->\n```rust\n";
        let problems = check("t.md", text, &sources);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].message.contains("never closed"));
        assert!(bless(text, &sources).is_err());
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
