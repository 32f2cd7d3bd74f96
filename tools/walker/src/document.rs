//! Reading a Markdown file into what the walker does, in order: headings,
//! commands with the output the text shows for them, output blocks of
//! other terminals, stops, and what is skipped and why. The rules are in
//! the crate's documentation; this module applies them and reports every
//! directive it cannot place, with its line.

use pulldown_cmark::{CodeBlockKind, Event, Parser, Tag, TagEnd};

use crate::expect::Pattern;

/// A Markdown file, read.
#[derive(Debug)]
pub struct Document {
    pub items: Vec<Item>,
    /// `finally` commands: run at the end of every walk, whatever part
    /// of the file was walked and however it went.
    pub finally: Vec<Command>,
}

/// One thing to do, at line `line` of the file (1-based).
#[derive(Debug)]
pub struct Item {
    pub line: usize,
    pub what: What,
}

#[derive(Debug)]
pub enum What {
    Heading {
        level: usize,
        title: String,
    },
    /// Run a command and wait for it to finish.
    Run(Command),
    /// Start a command that runs until stopped, as terminal `name`.
    Start {
        name: String,
        command: Command,
    },
    /// Ctrl-C in terminal `name`.
    Stop {
        name: String,
    },
    /// What terminal `terminal` printed since its last output block (or
    /// since it started); `None`: what the last command run printed.
    Output {
        terminal: Option<String>,
        expected: Expected,
    },
    /// A command or an output block the text asks the walker to leave.
    Skip {
        what: String,
        reason: String,
    },
    /// An output block the walker cannot check: one that says nothing
    /// about whose output it is, or that shows `$ ` commands (those
    /// belong in a console block). A failure when walked, so that no
    /// output goes unchecked; a failure of its section only, so that the
    /// rest of the file can still be walked.
    Unchecked(String),
}

/// A shell command as the text shows it.
#[derive(Debug, Clone)]
pub struct Command {
    pub line: usize,
    pub text: String,
    /// What it must print (`console` blocks); `None` for `sh` blocks,
    /// which show no output: the command must then exit with status 0.
    pub expected: Option<Expected>,
}

/// Output as the text shows it.
#[derive(Debug, Clone)]
pub struct Expected {
    /// Where the output starts in the file.
    pub line: usize,
    pub lines: Vec<String>,
    pub varies: Vec<Pattern>,
}

/// A directive the walker cannot follow, or a block it cannot read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub message: String,
}

/// Directives waiting for the code block they describe.
#[derive(Default)]
struct Pending {
    line: usize,
    background: Option<Vec<String>>,
    output: Option<Option<String>>,
    varies: Option<Vec<Pattern>>,
    skip: Option<String>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.background.is_none()
            && self.output.is_none()
            && self.varies.is_none()
            && self.skip.is_none()
    }
}

/// How a code block's language says to read it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    /// `console`: `$ ` commands, each followed by its output.
    Console,
    /// `sh`, `bash`, `shell`: commands whose output is not shown.
    Commands,
    /// `text` or no language: output.
    Output,
    /// Anything else (`rust`, `toml`, `diff`...): not the walker's.
    Code,
}

impl BlockKind {
    fn of(info: &str) -> BlockKind {
        match info.split_whitespace().next().unwrap_or("") {
            "console" => BlockKind::Console,
            "sh" | "bash" | "shell" => BlockKind::Commands,
            "" | "text" | "txt" | "output" => BlockKind::Output,
            _ => BlockKind::Code,
        }
    }
}

/// Reads `text`. Every problem is reported, not only the first.
pub fn parse(text: &str) -> Result<Document, Vec<Problem>> {
    let mut reader = Reader {
        line_starts: std::iter::once(0)
            .chain(text.match_indices('\n').map(|(at, _)| at + 1))
            .collect(),
        items: Vec::new(),
        finally: Vec::new(),
        problems: Vec::new(),
        pending: Pending::default(),
    };
    let mut heading: Option<(usize, usize, String)> = None;
    let mut block: Option<(usize, BlockKind, String)> = None;
    let mut html: Option<(usize, String)> = None;
    for (event, range) in Parser::new(text).into_offset_iter() {
        let line = reader.line_of(range.start);
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                reader.unplaced("a heading");
                heading = Some((line, level as usize, String::new()));
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some((line, level, title)) = heading.take() {
                    let title = title.trim().to_owned();
                    reader.push(line, What::Heading { level, title });
                }
            }
            Event::Start(Tag::CodeBlock(kind)) => {
                let (kind, first) = match kind {
                    CodeBlockKind::Fenced(info) => {
                        (BlockKind::of(&info), line + 1)
                    }
                    CodeBlockKind::Indented => (BlockKind::Output, line),
                };
                block = Some((first, kind, String::new()));
            }
            Event::End(TagEnd::CodeBlock) => {
                if let Some((first, kind, code)) = block.take() {
                    reader.block(first, kind, &code);
                }
            }
            Event::Start(Tag::HtmlBlock) => html = Some((line, String::new())),
            Event::End(TagEnd::HtmlBlock) => {
                if let Some((line, code)) = html.take() {
                    reader.comments(line, &code);
                }
            }
            Event::Html(code) => match html.as_mut() {
                Some((_, buffer)) => buffer.push_str(&code),
                None => reader.comments(line, &code),
            },
            Event::InlineHtml(code) => reader.comments(line, &code),
            Event::Text(code) | Event::Code(code) => {
                if let Some((_, _, buffer)) = block.as_mut() {
                    buffer.push_str(&code);
                } else if let Some((_, _, title)) = heading.as_mut() {
                    title.push_str(&code);
                }
            }
            _ => {}
        }
    }
    reader.unplaced("the end of the file");
    if reader.problems.is_empty() {
        Ok(Document {
            items: reader.items,
            finally: reader.finally,
        })
    } else {
        Err(reader.problems)
    }
}

struct Reader {
    line_starts: Vec<usize>,
    items: Vec<Item>,
    finally: Vec<Command>,
    problems: Vec<Problem>,
    pending: Pending,
}

impl Reader {
    fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= offset)
    }

    fn push(&mut self, line: usize, what: What) {
        self.items.push(Item { line, what });
    }

    fn problem(&mut self, line: usize, message: impl Into<String>) {
        self.problems.push(Problem {
            line,
            message: message.into(),
        });
    }

    /// Directives still waiting when `what` comes instead of a block.
    fn unplaced(&mut self, what: &str) {
        if !self.pending.is_empty() {
            let line = self.pending.line;
            self.problem(
                line,
                format!(
                    "walk directive followed by {what}, not by a code block"
                ),
            );
            self.pending = Pending::default();
        }
    }

    /// Every `<!-- walk: ... -->` in a piece of HTML starting at `line`.
    fn comments(&mut self, line: usize, html: &str) {
        let mut rest = html;
        let mut at_line = line;
        while let Some(start) = rest.find("<!--") {
            at_line += rest[..start].matches('\n').count();
            let body = &rest[start + 4..];
            let Some(end) = body.find("-->") else {
                break;
            };
            let comment = body[..end].trim();
            if let Some(directive) = comment.strip_prefix("walk:") {
                self.directive(at_line, directive.trim());
            }
            at_line += body[..end].matches('\n').count();
            rest = &body[end + 3..];
        }
    }

    fn directive(&mut self, line: usize, text: &str) {
        let (verb, args) = text
            .split_once(char::is_whitespace)
            .map_or((text, ""), |(verb, args)| (verb, args.trim()));
        if self.pending.is_empty() {
            self.pending.line = line;
        }
        let twice = |seen: bool| {
            seen.then(|| format!("`{verb}` twice before one block"))
        };
        let result: Result<(), String> = match verb {
            "background" => names(args).and_then(|list| {
                if let Some(err) = twice(self.pending.background.is_some()) {
                    return Err(err);
                }
                self.pending.background = Some(list);
                Ok(())
            }),
            "output" => {
                let name = match args {
                    "" => Ok(None),
                    name => one_name(name).map(Some),
                };
                name.and_then(|name| {
                    if let Some(err) = twice(self.pending.output.is_some()) {
                        return Err(err);
                    }
                    self.pending.output = Some(name);
                    Ok(())
                })
            }
            "varies" => Pattern::parse_list(args).and_then(|list| {
                if let Some(err) = twice(self.pending.varies.is_some()) {
                    return Err(err);
                }
                self.pending.varies = Some(list);
                Ok(())
            }),
            "skip" if args.is_empty() => {
                Err("`skip` needs a reason, for the walk's summary".into())
            }
            "skip" => {
                self.pending.skip = Some(args.to_owned());
                Ok(())
            }
            "stop" => one_name(args).map(|name| {
                self.push(line, What::Stop { name });
            }),
            "finally" if args.is_empty() => {
                Err("`finally` needs a command".into())
            }
            "finally" => {
                self.finally.push(Command {
                    line,
                    text: args.to_owned(),
                    expected: None,
                });
                Ok(())
            }
            _ => Err(format!(
                "unknown walk directive `{verb}` (known: background, stop, \
                 output, varies, skip, finally)"
            )),
        };
        if let Err(message) = result {
            self.problem(line, message);
        }
    }

    /// A code block whose content starts at line `first`.
    fn block(&mut self, first: usize, kind: BlockKind, code: &str) {
        let pending = std::mem::take(&mut self.pending);
        let directive_line = pending.line;
        if let Some(reason) = pending.skip {
            let what: Vec<String> = match kind {
                BlockKind::Console | BlockKind::Commands => self
                    .commands(first, kind, code)
                    .into_iter()
                    .map(|command| command.text)
                    .collect(),
                BlockKind::Output => vec!["an output block".to_owned()],
                BlockKind::Code => vec!["a code block".to_owned()],
            };
            for what in what {
                let reason = reason.clone();
                self.push(first, What::Skip { what, reason });
            }
            return;
        }
        let misplaced = |directive: &str, kind: &str| {
            format!("`{directive}` cannot describe {kind}")
        };
        match kind {
            BlockKind::Code => {
                if !pending.is_empty() {
                    self.problem(
                        directive_line,
                        "walk directives describe sh, console and text \
                         blocks only (or `skip` any block)",
                    );
                }
            }
            BlockKind::Output => {
                if pending.background.is_some() {
                    let message = misplaced("background", "an output block");
                    self.problem(directive_line, message);
                }
                let lines: Vec<String> =
                    code.lines().map(str::to_owned).collect();
                if lines.iter().any(|line| line.starts_with("$ ")) {
                    let why = "a text block with `$ ` commands: commands \
                               shown with their output are a console block";
                    return self.push(first, What::Unchecked(why.into()));
                }
                let expected = Expected {
                    line: first,
                    lines,
                    varies: pending.varies.unwrap_or_default(),
                };
                match pending.output {
                    Some(terminal) => {
                        self.push(first, What::Output { terminal, expected })
                    }
                    None => {
                        let why = "an output block with no walk directive \
                                   (`output NAME`, `output`, or `skip \
                                   REASON`)";
                        self.push(first, What::Unchecked(why.into()));
                    }
                }
            }
            BlockKind::Console | BlockKind::Commands => {
                if pending.output.is_some() {
                    let message = misplaced("output", "a block of commands");
                    self.problem(directive_line, message);
                }
                if kind == BlockKind::Commands && pending.varies.is_some() {
                    self.problem(
                        directive_line,
                        "`varies` on an sh block, which shows no output: \
                         use a console block to show output",
                    );
                }
                let mut commands = self.commands(first, kind, code);
                if let Some(patterns) = &pending.varies {
                    for command in &mut commands {
                        if let Some(expected) = &mut command.expected {
                            expected.varies = patterns.clone();
                        }
                    }
                }
                let names = pending
                    .background
                    .unwrap_or_else(|| vec!["-".to_owned(); commands.len()]);
                if names.len() != commands.len() {
                    self.problem(
                        directive_line,
                        format!(
                            "`background` names {} terminal(s) for a block \
                             of {} command(s): give one word per command, \
                             `-` for one that runs in the foreground",
                            names.len(),
                            commands.len()
                        ),
                    );
                    return;
                }
                for (command, name) in commands.into_iter().zip(names) {
                    let line = command.line;
                    if name == "-" {
                        self.push(line, What::Run(command));
                        continue;
                    }
                    if command
                        .expected
                        .as_ref()
                        .is_some_and(|e| !e.lines.is_empty())
                    {
                        self.problem(
                            line,
                            "a background command's output goes in an \
                             `output NAME` block of its own",
                        );
                    }
                    self.push(line, What::Start { name, command });
                }
            }
        }
    }

    /// The commands of a console or sh block.
    fn commands(
        &mut self,
        first: usize,
        kind: BlockKind,
        code: &str,
    ) -> Vec<Command> {
        let mut commands: Vec<Command> = Vec::new();
        let mut lines = code.lines().enumerate().peekable();
        while let Some((index, line)) = lines.next() {
            let at = first + index;
            let text = if kind == BlockKind::Console {
                match line.strip_prefix("$ ") {
                    Some(text) => text,
                    None => {
                        match commands
                            .last_mut()
                            .and_then(|c| c.expected.as_mut())
                        {
                            Some(expected) => {
                                expected.lines.push(line.to_owned())
                            }
                            None => self.problem(
                                at,
                                "a console block starts with a `$ ` command",
                            ),
                        }
                        continue;
                    }
                }
            } else {
                let trimmed = line.trim();
                if trimmed.is_empty() || trimmed.starts_with('#') {
                    continue;
                }
                if trimmed.starts_with("$ ") {
                    self.problem(
                        at,
                        "`$ ` prompt in an sh block: sh blocks hold bare \
                         commands; commands shown with output are console \
                         blocks",
                    );
                }
                line
            };
            // A line that ends with a backslash goes on on the next one.
            let mut text = text.to_owned();
            while text.ends_with('\\') {
                let Some((_, next)) = lines.next() else {
                    break;
                };
                text.push('\n');
                text.push_str(next.strip_prefix("> ").unwrap_or(next));
            }
            let expected = (kind == BlockKind::Console).then(|| Expected {
                line: at + 1,
                lines: Vec::new(),
                varies: Vec::new(),
            });
            commands.push(Command {
                line: at,
                text,
                expected,
            });
        }
        commands
    }
}

/// A terminal's name: letters, digits, `-`, `_` and `.`.
fn one_name(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok && text != "-" {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "`{text}` is not a terminal name (letters, digits, - _ .)"
        ))
    }
}

/// `background`'s list: a name per command, `-` for the foreground.
fn names(text: &str) -> Result<Vec<String>, String> {
    let list: Vec<String> = text
        .split_whitespace()
        .map(|word| match word {
            "-" => Ok("-".to_owned()),
            word => one_name(word),
        })
        .collect::<Result<_, _>>()?;
    if list.iter().all(|name| name == "-") {
        return Err("`background` needs a terminal name".into());
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(text: &str) -> Vec<Item> {
        parse(text)
            .unwrap_or_else(|problems| panic!("{problems:?}"))
            .items
    }

    fn problems(text: &str) -> Vec<String> {
        match parse(text) {
            Ok(_) => Vec::new(),
            Err(problems) => problems
                .into_iter()
                .map(|p| format!("{}: {}", p.line, p.message))
                .collect(),
        }
    }

    #[test]
    fn console_blocks_give_commands_with_their_output() {
        let doc = "# T\n\n```console\n$ echo a\na\n$ true\n$ echo b\nb\n```\n";
        let items = items(doc);
        assert!(
            matches!(&items[0].what, What::Heading { level: 1, title } if title == "T")
        );
        let runs: Vec<(usize, &str, Vec<String>)> = items[1..]
            .iter()
            .map(|item| match &item.what {
                What::Run(c) => {
                    (c.line, c.text.as_str(), c.expected.clone().unwrap().lines)
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            runs,
            [
                (4, "echo a", vec!["a".to_owned()]),
                (6, "true", vec![]),
                (7, "echo b", vec!["b".to_owned()]),
            ]
        );
    }

    #[test]
    fn sh_blocks_skip_comments_and_join_continued_lines() {
        let doc = "```sh\n# hello\necho a \\\n  b   # note\n\nls\n```\n";
        let texts: Vec<String> = items(doc)
            .into_iter()
            .map(|item| match item.what {
                What::Run(c) => {
                    assert!(c.expected.is_none());
                    c.text
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(texts, ["echo a \\\n  b   # note", "ls"]);
    }

    #[test]
    fn directives_describe_the_next_block() {
        let doc = "\
<!-- walk: background - step -->
```sh
make
run-it
```

Some text. <!-- walk: stop step -->

<!-- walk: output step -->
<!-- walk: varies time -->
```text
2026-11-21T09:10:36.5Z hi
```
";
        let items = items(doc);
        assert!(matches!(&items[0].what, What::Run(c) if c.text == "make"));
        assert!(
            matches!(&items[1].what, What::Start { name, command } if name == "step" && command.text == "run-it")
        );
        assert!(
            matches!(&items[2].what, What::Stop { name } if name == "step")
        );
        let What::Output { terminal, expected } = &items[3].what else {
            panic!("{:?}", items[3]);
        };
        assert_eq!(terminal.as_deref(), Some("step"));
        assert_eq!(expected.line, 12);
        assert_eq!(expected.varies[0].name, "time");
    }

    #[test]
    fn skip_lists_each_command_with_the_reason() {
        let doc = "<!-- walk: skip too slow -->\n```sh\na\nb\n```\n";
        let skipped: Vec<(String, String)> = items(doc)
            .into_iter()
            .map(|item| match item.what {
                What::Skip { what, reason } => (what, reason),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            skipped,
            [
                ("a".into(), "too slow".into()),
                ("b".into(), "too slow".into())
            ]
        );
    }

    #[test]
    fn a_text_block_unmarked_or_with_prompts_is_unchecked() {
        let unmarked =
            items("```text\nsomething\n```\n\n```rust\nfn x() {}\n```\n");
        assert_eq!(unmarked.len(), 1);
        let What::Unchecked(why) = &unmarked[0].what else {
            panic!("{unmarked:?}");
        };
        assert!(why.contains("no walk directive"), "{why}");
        let prompts =
            items("<!-- walk: output -->\n```text\n$ ls\nfile\n```\n");
        let What::Unchecked(why) = &prompts[0].what else {
            panic!("{prompts:?}");
        };
        assert!(why.contains("console block"), "{why}");
    }

    #[test]
    fn finally_commands_are_kept_apart() {
        let doc = parse("<!-- walk: finally scripts/x.sh stop -->\n").unwrap();
        assert!(doc.items.is_empty());
        assert_eq!(doc.finally[0].text, "scripts/x.sh stop");
    }

    #[test]
    fn indented_blocks_in_lists_are_read() {
        let doc = "- one:\n\n  ```console\n  $ echo a\n  a\n  ```\n";
        let items = items(doc);
        let What::Run(command) = &items[0].what else {
            panic!("{items:?}");
        };
        assert_eq!(command.line, 4);
        assert_eq!(command.expected.as_ref().unwrap().lines, ["a"]);
    }

    #[test]
    fn every_misplaced_or_malformed_directive_is_reported_with_its_line() {
        let doc = "\
<!-- walk: bogus -->
```sh
a
```
<!-- walk: background x y -->
```sh
a
```
<!-- walk: output -->
## Heading
<!-- walk: varies nothing -->
```text
b
```
<!-- walk: skip -->
```text
c
```
<!-- walk: output x -->
```sh
a
```
```sh
$ a
```
";
        let found = problems(doc);
        let expect = [
            "1: unknown walk directive `bogus`",
            "5: `background` names 2 terminal(s) for a block of 1",
            "9: walk directive followed by a heading",
            "11: unknown pattern `nothing`",
            "15: `skip` needs a reason",
            "19: `output` cannot describe a block of commands",
            "24: `$ ` prompt in an sh block",
        ];
        assert_eq!(found.len(), expect.len(), "{found:#?}");
        for (found, expect) in found.iter().zip(expect) {
            assert!(found.starts_with(expect), "{found} / {expect}");
        }
    }
}
