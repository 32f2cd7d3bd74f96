//! What the checks read from a Markdown file, parsed by `pulldown-cmark`
//! (CommonMark, with tables), each piece with the line (from 1) it is on.

use std::ops::Range;

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};

/// A line of text, or a piece of one, and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub line: usize,
    pub text: String,
}

impl Line {
    pub fn new(line: usize, text: impl Into<String>) -> Line {
        let text = text.into();
        Line { line, text }
    }
}

/// A fenced code block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    /// The line of the opening fence.
    pub line: usize,
    /// Indexes (from 0) in `markdown.lines()` of the lines inside; up to
    /// the end of the file if the block is never closed.
    pub body: Range<usize>,
    pub closed: bool,
    /// What follows the opening fence: `rust`, `text`, `sh`...
    pub info: String,
}

/// A row of a table; a cell's text is without markup (`` `x` `` is `x`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Row {
    pub line: usize,
    pub cells: Vec<String>,
}

/// A Markdown file, as the checks see it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Doc {
    /// Every line of every code block and every inline code span (whose
    /// line breaks CommonMark reads as spaces), in order.
    pub code: Vec<Line>,
    pub fences: Vec<Fence>,
    /// Every line of every HTML block (`<!-- comments -->`).
    pub html: Vec<Line>,
    /// The level-2 headings (`## ...`), their text without markup.
    pub chapters: Vec<Line>,
    /// Every table: its rows, the header first.
    pub tables: Vec<Vec<Row>>,
    /// Every heading of any level, its text without markup.
    pub headings: Vec<Heading>,
    /// The destination of every link (`#step-01--ping`, `https://...`).
    pub links: Vec<Line>,
    /// The blocks that are not inside another block (a list's items are
    /// in its block), in order.
    pub blocks: Vec<Block>,
}

/// A heading: `level` 2 for `## ...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heading {
    pub level: usize,
    pub line: usize,
    pub text: String,
}

/// What a top-level block is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// With its level.
    Heading(usize),
    Paragraph,
    List,
    /// A code block, an HTML block, a table, a quote, a rule...
    Other,
}

/// A top-level block: its kind, its first line and its Markdown source,
/// as written (without the line break that ends it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub kind: BlockKind,
    pub line: usize,
    pub source: String,
}

impl Doc {
    pub fn parse(markdown: &str) -> Doc {
        let starts: Vec<usize> = std::iter::once(0)
            .chain(markdown.match_indices('\n').map(|(at, _)| at + 1))
            .collect();
        let line_of = |offset: usize| starts.partition_point(|&s| s <= offset);
        let mut doc = Doc::default();
        // The fenced block being read: its info, and where its content
        // ends so far (a closed block runs past it: the closing fence).
        let mut fence: Option<(String, usize)> = None;
        let mut in_code_block = false;
        // The text of the heading or table cell being read.
        let mut text: Option<String> = None;
        let mut row = Row::default();
        // How many blocks (and inline spans) the event is inside.
        let mut depth = 0usize;
        let events = Parser::new_ext(markdown, Options::ENABLE_TABLES);
        for (event, range) in events.into_offset_iter() {
            let line = line_of(range.start);
            match &event {
                Event::Start(tag) => {
                    if depth == 0 {
                        let kind = match tag {
                            Tag::Heading { level, .. } => {
                                BlockKind::Heading(*level as usize)
                            }
                            Tag::Paragraph => BlockKind::Paragraph,
                            Tag::List(_) => BlockKind::List,
                            _ => BlockKind::Other,
                        };
                        let source = markdown[range.clone()].trim_end();
                        let source = source.to_owned();
                        doc.blocks.push(Block { kind, line, source });
                    }
                    depth += 1;
                }
                Event::End(_) => depth = depth.saturating_sub(1),
                Event::Rule if depth == 0 => doc.blocks.push(Block {
                    kind: BlockKind::Other,
                    line,
                    source: markdown[range.clone()].trim_end().to_owned(),
                }),
                _ => {}
            }
            let lines_of = |text: &str| -> Vec<Line> {
                let lines = text.lines().enumerate();
                lines.map(|(at, text)| Line::new(line + at, text)).collect()
            };
            match event {
                Event::Start(Tag::CodeBlock(kind)) => {
                    in_code_block = true;
                    if let CodeBlockKind::Fenced(info) = kind {
                        let body_start = starts.get(line).unwrap_or(&range.end);
                        fence = Some((info.to_string(), *body_start));
                    }
                }
                Event::Text(content) if in_code_block => {
                    doc.code.extend(lines_of(&content));
                    if let Some((_, content_end)) = &mut fence {
                        *content_end = range.end;
                    }
                }
                Event::End(TagEnd::CodeBlock) => {
                    in_code_block = false;
                    let Some((info, content_end)) = fence.take() else {
                        continue;
                    };
                    let closed = range.end > content_end;
                    let end = match closed {
                        true => line_of(range.end - 1) - 1,
                        false => markdown.lines().count(),
                    };
                    let body = line..end;
                    doc.fences.push(Fence {
                        line,
                        body,
                        closed,
                        info,
                    });
                }
                Event::Code(code) => {
                    text.iter_mut().for_each(|text| text.push_str(&code));
                    doc.code.push(Line::new(line, code.into_string()));
                }
                Event::Text(content) => {
                    text.iter_mut().for_each(|text| text.push_str(&content));
                }
                Event::Html(html) => doc.html.extend(lines_of(&html)),
                Event::Start(Tag::Heading { .. } | Tag::TableCell) => {
                    text = Some(String::new());
                }
                Event::End(TagEnd::Heading(level)) => {
                    let text = text.take().unwrap_or_default();
                    if level as usize == 2 {
                        doc.chapters.push(Line::new(line, text.trim()));
                    }
                    doc.headings.push(Heading {
                        level: level as usize,
                        line,
                        text: text.trim().to_owned(),
                    });
                }
                Event::Start(Tag::Link { dest_url, .. }) => {
                    doc.links.push(Line::new(line, dest_url.into_string()));
                }
                Event::Start(Tag::Table(_)) => doc.tables.push(Vec::new()),
                Event::Start(Tag::TableHead | Tag::TableRow) => {
                    row = Row {
                        line,
                        ..Row::default()
                    };
                }
                Event::End(TagEnd::TableCell) => {
                    let cell = text.take().unwrap_or_default();
                    row.cells.push(cell.trim().to_owned());
                }
                Event::End(TagEnd::TableHead | TagEnd::TableRow) => {
                    let table = doc.tables.last_mut();
                    table
                        .expect("rows are in a table")
                        .push(std::mem::take(&mut row));
                }
                _ => {}
            }
        }
        doc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(markdown: &str) -> Vec<(usize, String)> {
        let doc = Doc::parse(markdown);
        doc.code.into_iter().map(|c| (c.line, c.text)).collect()
    }

    #[test]
    fn code_pieces_carry_their_line() {
        let text = "see `cargo test`\n```sh\ncargo run\n\n```\n`x`\n\n    \
                    indented\n\n- item\n\n  ```sh\n  cargo b\n  ```\n";
        let expected = [
            (1, "cargo test"),
            (3, "cargo run"),
            (4, ""),
            (6, "x"),
            (8, "indented"),
            // Without the list item's indentation.
            (13, "cargo b"),
        ];
        assert_eq!(code(text), expected.map(|(l, t)| (l, t.to_owned())));
        // A span may cross a line break: it reads as a space.
        let crossing = "one\nrun `cargo run --bin\n04-x` now\n";
        assert_eq!(code(crossing), [(2, "cargo run --bin 04-x".to_owned())]);
    }

    #[test]
    fn fences_know_their_body_and_whether_they_close() {
        let fences = |markdown: &str| -> Vec<_> {
            let doc = Doc::parse(markdown);
            let fences = doc.fences.into_iter();
            fences.map(|f| (f.line, f.body, f.closed, f.info)).collect()
        };
        // A backtick line does not close a tilde fence.
        let two = "a\n```rust\nfn x() {}\n```\n~~~~\n```\n~~~~\n";
        let rust = (2, 2..3, true, "rust".to_owned());
        assert_eq!(fences(two), [rust, (5, 5..6, true, String::new())]);
        let open = "```sh\ncargo test\n\nmore\n";
        assert_eq!(fences(open), [(1, 1..4, false, "sh".to_owned())]);
        assert!(!fences("```rust\n")[0].2, "never closed");
        assert_eq!(fences("```rust\n```\n")[0], (1, 1..1, true, "rust".into()));
    }

    #[test]
    fn chapters_tables_and_comments() {
        let doc = Doc::parse(
            "# T\n<!-- snippet: a.rs:x -->\n## Step `01` — Ping\n\n\
             | step | run it |\n|---|---|\n| 01 | `cargo run` |\n",
        );
        assert_eq!(doc.chapters, [Line::new(3, "Step 01 — Ping")]);
        assert_eq!(doc.html, [Line::new(2, "<!-- snippet: a.rs:x -->")]);
        let [header, row] = &doc.tables[0][..] else {
            panic!("two rows: {:?}", doc.tables)
        };
        assert_eq!((header.line, row.line), (5, 7));
        assert_eq!(header.cells, ["step", "run it"]);
        assert_eq!(row.cells, ["01", "cargo run"]);
    }

    #[test]
    fn top_level_blocks_headings_and_links() {
        let doc = Doc::parse(
            "# T\n\n*one · [two](#t)*\n\n- [a](#a)\n- b\n\n  more\n\n\
             ```sh\nx\n```\n<!-- c -->\n## T\n---\nlast,\nline <!-- d -->\n",
        );
        let blocks: Vec<_> = doc
            .blocks
            .iter()
            .map(|b| (b.kind, b.line, b.source.as_str()))
            .collect();
        assert_eq!(
            blocks,
            [
                (BlockKind::Heading(1), 1, "# T"),
                (BlockKind::Paragraph, 3, "*one · [two](#t)*"),
                (BlockKind::List, 5, "- [a](#a)\n- b\n\n  more"),
                (BlockKind::Other, 10, "```sh\nx\n```"),
                (BlockKind::Other, 13, "<!-- c -->"),
                (BlockKind::Heading(2), 14, "## T"),
                (BlockKind::Other, 15, "---"),
                (BlockKind::Paragraph, 16, "last,\nline <!-- d -->"),
            ]
        );
        let headings: Vec<_> = doc
            .headings
            .iter()
            .map(|h| (h.level, h.line, h.text.as_str()))
            .collect();
        assert_eq!(headings, [(1, 1, "T"), (2, 14, "T")]);
        assert_eq!(doc.links, [Line::new(3, "#t"), Line::new(5, "#a")]);
    }
}
