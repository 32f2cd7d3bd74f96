//! What a step changed, quoted as a diff and checked like any quote.
//!
//! A marker line in `tutorial.md`
//!
//! ```text
//! <!-- diff: steps/03-dial-helper/src/lib.rs:run steps/04-round-robin/src/lib.rs:run -->
//! ```
//!
//! is followed (blank lines allowed in between) by a fenced block whose
//! info string starts with `diff`. The block must equal [`render`] of the
//! two anchored regions, each read as a snippet quotes it (between `//
//! ANCHOR: name` and `// ANCHOR_END: name`, inner markers left out, the
//! indentation all its lines share removed): the old region first. An
//! optional last word `context=N` sets how many unchanged lines surround
//! each change (3 by default, as `diff -u`).
//!
//! The block is a unified diff without its file headers and line numbers:
//! each hunk opens with a bare `@@` line, then one line per source line,
//! `-` for a line of the old region only, `+` for one of the new region
//! only, a space for a line of both. The marker names the files, and line
//! numbers would go stale with every line added above a region. Trailing
//! whitespace is ignored when comparing, so that a blank context line may
//! be written empty.

use similar::{ChangeTag, TextDiff};

use crate::markdown::Doc;
use crate::snippets::{Sources, anchors, block_after, dedent};
use crate::{Problem, list};

/// Unchanged lines around each change when the marker does not say.
pub const DEFAULT_CONTEXT: usize = 3;

/// The lines of the diff block from `old` to `new`, `context` unchanged
/// lines around each change.
pub fn render(old: &[String], new: &[String], context: usize) -> Vec<String> {
    let old: Vec<&str> = old.iter().map(String::as_str).collect();
    let new: Vec<&str> = new.iter().map(String::as_str).collect();
    let diff = TextDiff::from_slices(&old, &new);
    let mut lines = Vec::new();
    for hunk in diff.grouped_ops(context) {
        lines.push("@@".to_owned());
        for op in &hunk {
            for change in diff.iter_changes(op) {
                let sign = match change.tag() {
                    ChangeTag::Delete => '-',
                    ChangeTag::Insert => '+',
                    ChangeTag::Equal => ' ',
                };
                let line = format!("{sign}{}", change.value());
                lines.push(line.trim_end().to_owned());
            }
        }
    }
    lines
}

/// A region named `path:anchor`, dedented, or what is wrong.
fn region(name: &str, sources: &Sources<'_>) -> Result<Vec<String>, String> {
    let Some((path, anchor)) = name
        .rsplit_once(':')
        .filter(|(path, anchor)| !path.is_empty() && !anchor.is_empty())
    else {
        return Err(format!("`{name}` is not `path:anchor`"));
    };
    if path.starts_with('/') || path.split('/').any(|p| p == "..") {
        return Err(format!(
            "`{path}` must be relative to the workspace root and stay inside it"
        ));
    }
    let source = sources(path).ok_or_else(|| {
        format!(
            "`{path}` does not exist; fix the path (from the workspace root)"
        )
    })?;
    let (regions, _) = anchors(path, &source);
    match regions.get(anchor) {
        Some(region) => Ok(dedent(&region.lines)),
        None => Err(format!(
            "`{path}` has no complete region `// ANCHOR: {anchor}` ... \
             `// ANCHOR_END: {anchor}` (its regions: {})",
            list(regions.keys().map(String::as_str))
        )),
    }
}

/// Checks every diff marker of `tutorial` and the block after it.
pub fn check(
    file: &str,
    tutorial: &str,
    sources: &Sources<'_>,
) -> Vec<Problem> {
    let lines: Vec<&str> = tutorial.lines().collect();
    let doc = Doc::parse(tutorial);
    let mut problems = Vec::new();
    for html in &doc.html {
        let Some(spec) = html.text.trim().strip_prefix("<!-- diff:") else {
            continue;
        };
        let line = html.line;
        let mut report = |line, message: String| {
            problems.push(Problem::new(file, line, message));
        };
        let words: Vec<&str> = spec
            .strip_suffix("-->")
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let (names, context) = match words.as_slice() {
            [old, new] => ([*old, *new], Some(DEFAULT_CONTEXT)),
            [old, new, last] => {
                let context =
                    last.strip_prefix("context=").and_then(|n| n.parse().ok());
                ([*old, *new], context)
            }
            _ => ([""; 2], None),
        };
        let Some(context) = context else {
            report(
                line,
                "write a diff marker as `<!-- diff: old.rs:anchor \
                 new.rs:anchor -->` on one line, optionally with \
                 `context=N` last"
                    .into(),
            );
            continue;
        };
        let block = block_after(&doc, &lines, line, "diff");
        let Some(block) = block else {
            report(
                line,
                "a diff marker must be followed by a ```diff block".into(),
            );
            continue;
        };
        if !block.closed {
            report(block.line, "this ```diff block is never closed".into());
            continue;
        }
        let regions: Vec<_> =
            names.iter().map(|n| region(n, sources)).collect();
        let (old, new) = match (&regions[0], &regions[1]) {
            (Ok(old), Ok(new)) => (old, new),
            _ => {
                for err in regions.iter().filter_map(|r| r.as_ref().err()) {
                    report(line, format!("diff marker: {err}"));
                }
                continue;
            }
        };
        let expected = render(old, new, context);
        let quoted: Vec<&str> = lines[block.body.clone()]
            .iter()
            .map(|l| l.trim_end())
            .collect();
        let Some((at, was, wanted)) =
            crate::snippets::first_difference(&quoted, &expected)
        else {
            continue;
        };
        let [old_name, new_name] = names;
        report(
            block.line + 1 + at,
            format!(
                "the diff from `{old_name}` to `{new_name}` differs from the \
                 sources (block line {}: {was}; expected: {wanted}); write \
                 the block as `diff -U{context}` of the two regions would, \
                 each hunk opening with a bare `@@`",
                at + 1,
            ),
        );
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Anchor markers are built from pieces, never written at the start
    /// of a line, so the workspace-wide anchor check does not see them.
    fn file(name: &str, body: &[&str]) -> String {
        let mut text = format!("x\n// {}: {name}\n", "ANCHOR");
        for line in body {
            text.push_str(&format!("    {line}\n"));
        }
        text.push_str(&format!("// {}: {name}\n", "ANCHOR_END"));
        text
    }

    fn sources(path: &str) -> Option<String> {
        match path {
            "a.rs" => Some(file("f", &["one", "two", "three", "four", "five"])),
            "b.rs" => Some(file("f", &["one", "two", "3", "four", "five"])),
            _ => None,
        }
    }

    fn owned(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|l| (*l).to_owned()).collect()
    }

    #[test]
    fn render_writes_hunks_with_bare_headers() {
        let old = owned(&["a", "b", "", "c", "d", "e", "f", "g"]);
        let new = owned(&["a", "B", "", "c", "d", "e", "f", "G"]);
        assert_eq!(
            render(&old, &new, 1),
            ["@@", " a", "-b", "+B", "", "@@", " f", "-g", "+G"]
        );
        // With more context the two hunks become one.
        assert_eq!(
            render(&old, &new, 3).iter().filter(|l| *l == "@@").count(),
            1
        );
        assert!(render(&old, &old, 3).is_empty());
    }

    #[test]
    fn a_faithful_diff_passes_and_a_stale_one_fails() {
        let text = "<!-- diff: a.rs:f b.rs:f context=1 -->\n\n\
                    ```diff\n@@\n two\n-three\n+3\n four\n```\n";
        assert_eq!(check("t.md", text, &sources), []);
        let stale = text.replace("+3", "+III");
        let problems = check("t.md", &stale, &sources);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].line, 7);
        assert!(problems[0].message.contains("expected: `+3`"));
        // The default context is 3 lines.
        let default = text.replace(" context=1", "");
        assert_eq!(check("t.md", &default, &sources).len(), 1);
    }

    #[test]
    fn a_bad_marker_or_a_missing_block_or_region_fails() {
        for text in [
            "<!-- diff: a.rs:f -->\n```diff\n```\n",
            "<!-- diff: a.rs:f b.rs:f context=x -->\n```diff\n```\n",
            "<!-- diff: a.rs:f b.rs:f -->\n```rust\n```\n",
            "<!-- diff: a.rs:f b.rs:nope -->\n```diff\n```\n",
            "<!-- diff: a.rs:f c.rs:f -->\n```diff\n```\n",
            "<!-- diff: a.rs:f b.rs:f -->\n```diff\n",
        ] {
            assert_eq!(check("t.md", text, &sources).len(), 1, "{text}");
        }
    }
}
