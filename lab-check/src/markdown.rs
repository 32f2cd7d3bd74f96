//! Just enough Markdown: fenced code blocks and inline code spans, with
//! their line numbers. Not a full CommonMark parser: a fence opens with
//! three or more backticks or tildes (indentation ignored) and closes with
//! a line of at least as many of the same character; an inline span opens
//! with a run of backticks and closes with a run of the same length on the
//! same line.

/// A fenced code block. Line indexes count from 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    /// The line of the opening fence.
    pub open: usize,
    /// The line of the closing fence, if the block is closed.
    pub close: Option<usize>,
    /// What follows the opening fence: `rust`, `text`, `sh`...
    pub info: String,
}

impl Fence {
    /// The indexes of the lines inside the block.
    pub fn body(&self, line_count: usize) -> std::ops::Range<usize> {
        self.open + 1..self.close.unwrap_or(line_count)
    }

    /// Whether line `index` is a fence line or inside the block.
    pub fn covers(&self, index: usize) -> bool {
        index >= self.open && self.close.is_none_or(|close| index <= close)
    }
}

/// The opening of a fence: its character, its length and its info string.
fn fence_opening(line: &str) -> Option<(char, usize, &str)> {
    let trimmed = line.trim_start();
    let mark = trimmed.chars().next()?;
    if mark != '`' && mark != '~' {
        return None;
    }
    let len = trimmed.chars().take_while(|&c| c == mark).count();
    if len < 3 {
        return None;
    }
    let info = trimmed[len..].trim();
    // A backtick fence's info string may not contain backticks.
    if mark == '`' && info.contains('`') {
        return None;
    }
    Some((mark, len, info))
}

fn closes(line: &str, mark: char, len: usize) -> bool {
    let trimmed = line.trim();
    trimmed.chars().count() >= len && trimmed.chars().all(|c| c == mark)
}

/// Every fenced block of `lines`, in order.
pub fn fences(lines: &[&str]) -> Vec<Fence> {
    let mut found = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let Some((mark, len, info)) = fence_opening(lines[index]) else {
            index += 1;
            continue;
        };
        let close =
            (index + 1..lines.len()).find(|&at| closes(lines[at], mark, len));
        found.push(Fence {
            open: index,
            close,
            info: info.to_owned(),
        });
        index = close.map_or(lines.len(), |close| close + 1);
    }
    found
}

/// Whether line `index` belongs to one of `fences`.
pub fn in_fence(fences: &[Fence], index: usize) -> bool {
    fences.iter().any(|fence| fence.covers(index))
}

/// A piece of code and the line (from 1) it sits on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Code<'a> {
    pub line: usize,
    pub text: &'a str,
}

/// Every line of every fenced block, and every inline code span outside
/// them, in order. A span may run over a line break inside a paragraph,
/// as in Markdown; it is reported on the line where it starts.
pub fn code(markdown: &str) -> Vec<Code<'_>> {
    // Each line with its byte offset in `markdown`, line ending excluded.
    let mut lines = Vec::new();
    let mut offset = 0;
    for raw in markdown.split_inclusive('\n') {
        let line = raw.strip_suffix('\n').unwrap_or(raw);
        let line = line.strip_suffix('\r').unwrap_or(line);
        lines.push((offset, line));
        offset += raw.len();
    }
    let texts: Vec<&str> = lines.iter().map(|&(_, line)| line).collect();
    let blocks = fences(&texts);
    let mut pieces = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let (start, line) = lines[index];
        if let Some(fence) = blocks.iter().find(|fence| fence.covers(index)) {
            if index != fence.open && Some(index) != fence.close {
                pieces.push(Code {
                    line: index + 1,
                    text: line,
                });
            }
            index += 1;
            continue;
        }
        if line.trim().is_empty() {
            index += 1;
            continue;
        }
        // A paragraph: the lines up to a blank line or a fence.
        let first = index;
        while index < lines.len()
            && !lines[index].1.trim().is_empty()
            && !in_fence(&blocks, index)
        {
            index += 1;
        }
        let (last_start, last) = lines[index - 1];
        let paragraph = &markdown[start..last_start + last.len()];
        for span in inline_spans(paragraph) {
            let at = span.as_ptr() as usize - paragraph.as_ptr() as usize;
            let line_of_span = lines[first..index]
                .iter()
                .rposition(|&(line_start, _)| line_start - start <= at)
                .map_or(first, |found| first + found);
            pieces.push(Code {
                line: line_of_span + 1,
                text: span,
            });
        }
    }
    pieces
}

/// The inline code spans of one line: `` `cargo test` `` gives
/// `cargo test`.
pub fn inline_spans(line: &str) -> Vec<&str> {
    let bytes = line.as_bytes();
    let run_at = |at: usize| bytes[at..].iter().take_while(|&&b| b == b'`');
    let mut spans = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] != b'`' {
            at += 1;
            continue;
        }
        let open_len = run_at(at).count();
        let start = at + open_len;
        // Look for a closing run of exactly the same length.
        let mut probe = start;
        let mut end = None;
        while probe < bytes.len() {
            if bytes[probe] == b'`' {
                let len = run_at(probe).count();
                if len == open_len {
                    end = Some(probe);
                    break;
                }
                probe += len;
            } else {
                probe += 1;
            }
        }
        match end {
            Some(end) => {
                let inner = &line[start..end];
                let inner = match inner.strip_prefix(' ') {
                    Some(rest) if rest.ends_with(' ') && !rest.is_empty() => {
                        &rest[..rest.len() - 1]
                    }
                    _ => inner,
                };
                spans.push(inner);
                at = end + open_len;
            }
            // An unmatched run is literal backticks.
            None => at = start,
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_fences_and_their_info() {
        let lines = ["a", "```rust", "fn x() {}", "```", "~~~~", "```", "~~~~"];
        let found = fences(&lines);
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].open, found[0].close), (1, Some(3)));
        assert_eq!(found[0].info, "rust");
        // A backtick line does not close a tilde fence.
        assert_eq!((found[1].open, found[1].close), (4, Some(6)));
        assert!(in_fence(&found, 5) && !in_fence(&found, 0));
    }

    #[test]
    fn an_unclosed_fence_runs_to_the_end() {
        let lines = ["```sh", "cargo test"];
        assert_eq!(fences(&lines)[0].close, None);
        assert_eq!(fences(&lines)[0].body(lines.len()), 1..2);
    }

    #[test]
    fn finds_inline_spans() {
        assert_eq!(inline_spans("run `a b` then `c`"), ["a b", "c"]);
        assert_eq!(inline_spans("``x ` y`` and `z"), ["x ` y"]);
        assert_eq!(inline_spans("`` `quoted` ``"), ["`quoted`"]);
        assert!(inline_spans("no code").is_empty());
    }

    #[test]
    fn a_span_may_cross_a_line_break() {
        let text = "one\nrun `cargo run --bin\n04-x` now\n\n`a`\n";
        let pieces = code(text);
        let found: Vec<(usize, &str)> =
            pieces.iter().map(|c| (c.line, c.text)).collect();
        assert_eq!(found, [(2, "cargo run --bin\n04-x"), (5, "a")]);
    }

    #[test]
    fn code_pieces_carry_their_line() {
        let text = "see `cargo test`\n```sh\ncargo run\n```\n`x`\n";
        let pieces = code(text);
        let found: Vec<(usize, &str)> =
            pieces.iter().map(|c| (c.line, c.text)).collect();
        assert_eq!(found, [(1, "cargo test"), (3, "cargo run"), (5, "x")]);
    }
}
