//! Walking a document: doing its items in order, with the terminals the
//! text opens, and keeping the score. Prints as it goes, and a summary at
//! the end: what ran, what failed (with a diff), what was skipped and why.

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::Range;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::document::{Command, Document, Expected, Item, What};
use crate::expect::{self, Pattern};
use crate::terminal::{Gave, Running, Shell};

/// How long each kind of wait may take.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A command run in the foreground (a first build included).
    pub command: Duration,
    /// A background command, until it says `listening on` (a first
    /// build included).
    pub ready: Duration,
    /// A terminal's output, until it matches the text.
    pub output: Duration,
    /// A terminal after Ctrl-C, until it has exited.
    pub stop: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            command: Duration::from_secs(600),
            ready: Duration::from_secs(600),
            output: Duration::from_secs(10),
            stop: Duration::from_secs(10),
        }
    }
}

/// What a background command prints once it is ready for clients: every
/// server of the lab says so on stdout.
pub const READY: &str = "listening on";

/// Which part of the document to walk.
#[derive(Debug, Clone)]
pub enum Part {
    All,
    /// From this heading to the end.
    From(String),
    /// This heading's section: up to the next heading of its level or
    /// higher.
    Only(String),
}

/// The items of `part`, as a range of `doc.items`.
pub fn select(doc: &Document, part: &Part) -> Result<Range<usize>, String> {
    let (wanted, only) = match part {
        Part::All => return Ok(0..doc.items.len()),
        Part::From(title) => (title, false),
        Part::Only(title) => (title, true),
    };
    let headings: Vec<(usize, usize, &str)> = doc
        .items
        .iter()
        .enumerate()
        .filter_map(|(index, item)| match &item.what {
            What::Heading { level, title } => {
                Some((index, *level, title.as_str()))
            }
            _ => None,
        })
        .collect();
    // The heading itself, else the one heading that starts with the
    // words given, else the one that holds them (case aside).
    let lower = wanted.to_lowercase();
    let exact: Vec<_> = headings.iter().filter(|h| h.2 == wanted).collect();
    let starts: Vec<_> = headings
        .iter()
        .filter(|h| h.2.to_lowercase().starts_with(&lower))
        .collect();
    let close: Vec<_> = headings
        .iter()
        .filter(|h| h.2.to_lowercase().contains(&lower))
        .collect();
    let found = match (exact.as_slice(), starts.as_slice(), close.as_slice()) {
        ([one], ..) | ([], [one], _) | ([], [], [one]) => **one,
        ([], [], []) => {
            return Err(format!("no heading contains `{wanted}`"));
        }
        (_, [], many) | (_, many, _) => {
            let list: Vec<String> = many
                .iter()
                .map(|h| format!("  line {}: {}", doc.items[h.0].line, h.2))
                .collect();
            return Err(format!(
                "`{wanted}` names {} headings; say which:\n{}",
                many.len(),
                list.join("\n")
            ));
        }
    };
    let (start, level, _) = found;
    let end = if only {
        headings
            .iter()
            .find(|h| h.0 > start && h.1 <= level)
            .map_or(doc.items.len(), |h| h.0)
    } else {
        doc.items.len()
    };
    Ok(start..end)
}

/// A terminal the text opened with `background NAME`.
struct Terminal {
    running: Running,
    /// Where the text started it.
    line: usize,
    /// Lines already compared by an output block.
    checked: usize,
}

/// One thing that went wrong, for the summary.
struct Failure {
    /// The chapter (`##` heading) it happened in.
    chapter: String,
    line: usize,
    what: String,
}

/// The score.
#[derive(Default)]
pub struct Summary {
    pub commands: usize,
    pub commands_failed: usize,
    pub outputs: usize,
    pub outputs_failed: usize,
    pub stops: usize,
    pub skipped: Vec<(usize, String, String)>,
    failures: Vec<Failure>,
    pub interrupted: bool,
}

impl Summary {
    pub fn failed(&self) -> bool {
        !self.failures.is_empty()
    }
}

/// Walks `doc` (read from `file`, whose name appears in the report) and
/// prints to `out` as it goes.
pub struct Walk<'a, W: Write> {
    file: &'a str,
    shell: &'a Shell,
    limits: Limits,
    interrupted: &'a AtomicBool,
    fail_fast: bool,
    out: W,
    terminals: BTreeMap<String, Terminal>,
    /// What the last foreground command printed, for `output` blocks
    /// without a name.
    last_output: Option<(usize, Vec<String>)>,
    /// The `##` heading walked last (or `#`), for the summary.
    chapter: String,
    pub summary: Summary,
}

impl<'a, W: Write> Walk<'a, W> {
    pub fn new(
        file: &'a str,
        shell: &'a Shell,
        limits: Limits,
        interrupted: &'a AtomicBool,
        fail_fast: bool,
        out: W,
    ) -> Walk<'a, W> {
        Walk {
            file,
            shell,
            limits,
            interrupted,
            fail_fast,
            out,
            terminals: BTreeMap::new(),
            last_output: None,
            chapter: String::new(),
            summary: Summary::default(),
        }
    }

    /// Does `items`, then stops what is still running and runs the
    /// `finally` commands.
    pub fn run(&mut self, items: &[Item], finally: &[Command]) {
        for item in items {
            if self.summary.interrupted
                || (self.fail_fast && self.summary.failed())
            {
                break;
            }
            self.item(item);
        }
        self.stop_all();
        for command in finally {
            self.say(&format!(
                "  {}:{}  finally: {}",
                self.file, command.line, command.text
            ));
            self.run_command(command, true);
        }
    }

    fn item(&mut self, item: &Item) {
        match &item.what {
            What::Heading { level, title } => {
                if *level <= 2 {
                    self.chapter = title.clone();
                }
                self.say(&format!("{} {title}", "#".repeat(*level)));
            }
            What::Run(command) => {
                self.summary.commands += 1;
                self.run_command(command, false);
            }
            What::Start { name, command } => {
                self.summary.commands += 1;
                self.start(name, command);
            }
            What::Stop { name } => {
                self.summary.stops += 1;
                self.stop(item.line, name);
            }
            What::Output { terminal, expected } => {
                self.summary.outputs += 1;
                match terminal {
                    Some(name) => {
                        self.check_terminal(item.line, name, expected)
                    }
                    None => self.check_last(item.line, expected),
                }
            }
            What::Skip { what, reason } => {
                self.say(&format!(
                    "  {}:{}  skipped: {}  ({reason})",
                    self.file,
                    item.line,
                    first_line(what)
                ));
                self.summary.skipped.push((
                    item.line,
                    what.clone(),
                    reason.clone(),
                ));
            }
            What::Unchecked(why) => {
                self.summary.outputs += 1;
                self.fail_output(item.line, why);
            }
        }
    }

    fn run_command(&mut self, command: &Command, finally: bool) {
        let shown = format!("$ {}", first_line(&command.text));
        let mut running = match self.shell.spawn(&command.text) {
            Ok(running) => running,
            Err(err) => {
                let what = format!("{shown}: cannot start bash: {err}");
                return self.fail_command(command.line, &what, "");
            }
        };
        let limit = if finally {
            Duration::from_secs(60)
        } else {
            self.limits.command
        };
        let status = match running.wait(limit, self.interrupted) {
            Ok(status) => status,
            Err(gave) => {
                running.kill();
                let output = running.lines_from(0);
                let why = match gave {
                    Gave::Interrupted => {
                        self.summary.interrupted = true;
                        "interrupted".to_owned()
                    }
                    Gave::Up => format!(
                        "still running after {} s (a command that runs until \
                         Ctrl-C needs `<!-- walk: background NAME -->`)",
                        limit.as_secs()
                    ),
                };
                let what = format!("{shown}: {why}");
                return self.fail_command(command.line, &what, &show(&output));
            }
        };
        let printed = running.lines_from(0);
        self.last_output = Some((command.line, printed.clone()));
        match &command.expected {
            Some(expected) => {
                let (wanted, got) = prepare(expected, &printed);
                if !expect::matches(&wanted, &got) {
                    let diff = expect::diff(&wanted, &got, "      ");
                    self.fail_command(command.line, &shown, &diff);
                } else if wanted.is_empty() && !status.success() {
                    // Shown printing nothing, and it printed nothing: but
                    // a silent failure (`curl -s` to a closed port) must
                    // not pass for a quiet success.
                    let what = format!("{shown}: exited with {status}");
                    self.fail_command(command.line, &what, "");
                } else {
                    self.pass(command.line, &shown);
                }
            }
            None if status.success() => self.pass(command.line, &shown),
            None => {
                let what = format!("{shown}: exited with {status}");
                self.fail_command(command.line, &what, &show(&printed));
            }
        }
    }

    fn start(&mut self, name: &str, command: &Command) {
        let shown =
            format!("$ {}   [terminal {name}]", first_line(&command.text));
        if let Some(old) = self.terminals.get_mut(name)
            && old.running.exited().is_none()
        {
            let what = format!(
                "{shown}: terminal {name} still runs the command of line {}: \
                 the text must stop it (Ctrl-C) first",
                old.line
            );
            old.running.stop(self.limits.stop);
            self.fail_command(command.line, &what, "");
        }
        let mut running = match self.shell.spawn(&command.text) {
            Ok(running) => running,
            Err(err) => {
                let what = format!("{shown}: cannot start bash: {err}");
                return self.fail_command(command.line, &what, "");
            }
        };
        let ready =
            running.wait_for(0, self.limits.ready, self.interrupted, |lines| {
                lines.iter().any(|line| line.contains(READY))
            });
        let why = match ready {
            Ok(true) => None,
            Ok(false) => Some(format!(
                "exited before saying `{READY}` ({})",
                running
                    .exited()
                    .map_or("status unknown".to_owned(), |s| s.to_string())
            )),
            Err(Gave::Up) => Some(format!(
                "did not say `{READY}` within {} s",
                self.limits.ready.as_secs()
            )),
            Err(Gave::Interrupted) => {
                self.summary.interrupted = true;
                Some("interrupted".to_owned())
            }
        };
        self.terminals.insert(
            name.to_owned(),
            Terminal {
                running,
                line: command.line,
                checked: 0,
            },
        );
        match why {
            None => self.pass(command.line, &shown),
            Some(why) => {
                let printed = self.terminals[name].running.lines_from(0);
                let what = format!("{shown}: {why}");
                self.fail_command(command.line, &what, &show(&printed));
            }
        }
    }

    fn stop(&mut self, line: usize, name: &str) {
        let shown = format!("Ctrl-C in terminal {name}");
        let Some(terminal) = self.terminals.get_mut(name) else {
            let what = format!("{shown}: no terminal of that name was started");
            return self.fail(line, &what, "");
        };
        if let Some(status) = terminal.running.exited() {
            let printed = terminal.running.lines_from(0);
            let what = format!(
                "{shown}: its command (line {}) had already exited ({status})",
                terminal.line
            );
            return self.fail(line, &what, &show(&printed));
        }
        if terminal.running.stop(self.limits.stop) {
            self.pass(line, &shown);
        } else {
            let what = format!(
                "{shown}: still running {} s after Ctrl-C; killed",
                self.limits.stop.as_secs()
            );
            self.fail(line, &what, "");
        }
    }

    fn check_terminal(&mut self, line: usize, name: &str, expected: &Expected) {
        let shown = format!("output of terminal {name}");
        let Some(terminal) = self.terminals.get_mut(name) else {
            let what = format!("{shown}: no terminal of that name was started");
            return self.fail_output(line, &what);
        };
        let wanted = expect::prepare(&expected.lines, &expected.varies);
        let from = terminal.checked;
        let mut seen = 0;
        let found = terminal.running.wait_for(
            from,
            self.limits.output,
            self.interrupted,
            |lines| {
                seen = lines.len();
                expect::matches(
                    &wanted,
                    &expect::prepare(lines, &expected.varies),
                )
            },
        );
        let printed = terminal.running.lines_from(from);
        match found {
            Ok(true) => {
                terminal.checked = from + seen;
                self.pass(line, &shown);
            }
            Err(Gave::Interrupted) => self.summary.interrupted = true,
            Ok(false) | Err(Gave::Up) => {
                terminal.checked = from + printed.len();
                let got = expect::prepare(&printed, &expected.varies);
                let diff = expect::diff(&wanted, &got, "      ");
                self.fail_output_with(line, &shown, &diff);
            }
        }
    }

    fn check_last(&mut self, line: usize, expected: &Expected) {
        let shown = "output of the command before".to_owned();
        let Some((_, printed)) = &self.last_output else {
            return self.fail_output(line, &format!("{shown}: no command ran"));
        };
        let (wanted, got) = prepare(expected, printed);
        if expect::matches(&wanted, &got) {
            self.pass(line, &shown);
        } else {
            let diff = expect::diff(&wanted, &got, "      ");
            self.fail_output_with(line, &shown, &diff);
        }
    }

    /// Ctrl-C to every terminal still running, in the order they started.
    fn stop_all(&mut self) {
        let mut running: Vec<(usize, String)> = self
            .terminals
            .iter_mut()
            .filter_map(|(name, t)| {
                t.running.exited().is_none().then(|| (t.line, name.clone()))
            })
            .collect();
        running.sort();
        for (line, name) in running {
            let terminal = self.terminals.get_mut(&name).expect("listed above");
            let how = if terminal.running.stop(self.limits.stop) {
                "stopped with Ctrl-C"
            } else {
                "killed: still running after Ctrl-C"
            };
            self.say(&format!(
                "  {}:{line}  terminal {name} was still running at the end: {how}",
                self.file
            ));
        }
        self.terminals.clear();
    }

    fn pass(&mut self, line: usize, shown: &str) {
        self.say(&format!("  {}:{line}  {shown}   ok", self.file));
    }

    fn fail_command(&mut self, line: usize, what: &str, detail: &str) {
        self.summary.commands_failed += 1;
        self.fail(line, what, detail);
    }

    fn fail_output(&mut self, line: usize, what: &str) {
        self.fail_output_with(line, what, "");
    }

    fn fail_output_with(&mut self, line: usize, what: &str, detail: &str) {
        self.summary.outputs_failed += 1;
        self.fail(line, what, detail);
    }

    fn fail(&mut self, line: usize, what: &str, detail: &str) {
        self.say(&format!("  {}:{line}  {what}   FAILED", self.file));
        if !detail.is_empty() {
            self.say(detail.trim_end_matches('\n'));
        }
        self.summary.failures.push(Failure {
            chapter: self.chapter.clone(),
            line,
            what: what.to_owned(),
        });
    }

    fn say(&mut self, text: &str) {
        let _ = writeln!(self.out, "{text}");
        let _ = self.out.flush();
    }

    /// The closing report.
    pub fn report(&mut self, part: &str, took: Duration) {
        let s = &self.summary;
        let mut text = format!(
            "\nwalked {} ({part}) in {:.1} s{}\n",
            self.file,
            took.as_secs_f64(),
            if s.interrupted { ", INTERRUPTED" } else { "" }
        );
        text += &format!(
            "  commands run: {}, passed {}, failed {}\n",
            s.commands,
            s.commands - s.commands_failed,
            s.commands_failed
        );
        text += &format!(
            "  output blocks: {}, passed {}, failed {}\n",
            s.outputs,
            s.outputs - s.outputs_failed,
            s.outputs_failed
        );
        text += &format!("  Ctrl-C: {}\n", s.stops);
        text += &format!("  skipped: {}\n", s.skipped.len());
        for (line, what, reason) in &s.skipped {
            text += &format!(
                "    {}:{line}  {}  ({reason})\n",
                self.file,
                first_line(what)
            );
        }
        if s.failures.is_empty() {
            text += "all passed\n";
        } else {
            text += &format!("FAILED: {}\n", s.failures.len());
            let mut chapter = None;
            for failure in &s.failures {
                if chapter != Some(&failure.chapter) {
                    chapter = Some(&failure.chapter);
                    text += &format!("  in «{}»:\n", failure.chapter);
                }
                text += &format!(
                    "    {}:{}  {}\n",
                    self.file, failure.line, failure.what
                );
            }
        }
        self.say(text.trim_end());
    }
}

fn prepare(
    expected: &Expected,
    printed: &[String],
) -> (Vec<String>, Vec<String>) {
    let patterns: &[Pattern] = &expected.varies;
    (
        expect::prepare(&expected.lines, patterns),
        expect::prepare(printed, patterns),
    )
}

/// A command's first line, with `…` if it goes on.
fn first_line(text: &str) -> String {
    match text.split_once('\n') {
        Some((first, _)) => format!("{first} …"),
        None => text.to_owned(),
    }
}

/// Output, indented, for a failure's detail (the last 40 lines).
fn show(lines: &[String]) -> String {
    if lines.is_empty() {
        return "      (it printed nothing)\n".to_owned();
    }
    let skip = lines.len().saturating_sub(40);
    let mut text = String::new();
    if skip > 0 {
        text += &format!("      ({skip} lines before these)\n");
    }
    for line in &lines[skip..] {
        text += &format!("      | {line}\n");
    }
    text
}
