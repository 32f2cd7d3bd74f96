//! lab-walk: follows a Markdown file as a reader would, running its
//! commands in order and comparing what they print with what the text
//! shows. `scripts/walk-tutorial.sh` runs it on `README.md` and
//! `tutorial.md` in private namespaces, from a fresh clone's state, and
//! `scripts/check.sh` runs that.
//!
//! ```text
//! lab-walk tutorial.md                     the whole file
//! lab-walk tutorial.md --only "Step 04"    one chapter
//! lab-walk tutorial.md --from "Step 06"    from a chapter to the end
//! lab-walk tutorial.md --check             read the directives, run nothing
//! ```
//!
//! # What the walker reads by itself
//!
//! - A `console` block: each line starting with `$ ` is a command; the
//!   lines after it, up to the next `$ `, are what it prints (stdout and
//!   stderr together, as a terminal shows them). A command followed
//!   directly by another prints nothing, and must then exit with status
//!   0 (a silent failure is no quiet success); otherwise any exit status
//!   will do: the output says whether it went right.
//! - An `sh` (or `bash`, `shell`) block: one command per line, `#` lines
//!   and blank lines left out, no prompt. Their output is not shown, so it
//!   is not compared, but each must exit with status 0.
//! - A line ending in `\` goes on on the next line, in both.
//! - A `text` block (or one without a language) is output: it needs a
//!   directive saying whose (see below), or the walk fails there, so that
//!   no output in the text goes unchecked. It holds no `$ ` commands:
//!   commands shown with their output are a `console` block, everywhere.
//! - Blocks in other languages (`rust`, `toml`, ...) are not the walker's.
//!
//! Commands run with `bash -c`, one after the other, in the folder of the
//! Markdown file: each is a fresh shell, as if typed at a new prompt (no
//! `cd` or variable carries over). See [`terminal`] for the environment.
//!
//! # Directives
//!
//! HTML comments, which GitHub does not show, tell the walker what a
//! reader infers from the prose. One directive per comment; the ones
//! marked "block" describe the next code block.
//!
//! - `<!-- walk: background NAME -->` (block): the command runs in a
//!   terminal of its own, named NAME, until the text stops it. The walker
//!   waits until it prints a line containing `listening on` (every lab
//!   server does) before it goes on. For a block of several commands, give
//!   one word per command, `-` for those run in the foreground:
//!   `<!-- walk: background - step -->`. Starting a terminal that still
//!   runs a command fails: the text has to stop it first.
//! - `<!-- walk: stop NAME -->`: Ctrl-C in terminal NAME (SIGINT to its
//!   process group); it must exit within 10 s. Put it where the text
//!   says to press Ctrl-C.
//! - `<!-- walk: output NAME -->` (block, on a `text` block): what
//!   terminal NAME printed since its last output block, or since it
//!   started. Its lines may take a moment to come: the walker waits (up to
//!   10 s) for them to match. `<!-- walk: output -->` without a name: what
//!   the last foreground command printed, for a command shown in an `sh`
//!   block and its output in a `text` block after some prose.
//! - `<!-- walk: varies PATTERN... -->` (block, on a `console` or
//!   `text` block): parts of the output that differ from run to run. Each
//!   PATTERN is a built-in name or a `/REGEX/` (Rust `regex` syntax; it
//!   may hold spaces, not a `/` followed by a space). Before comparing,
//!   every match in both the text and the output is replaced by `«NAME»`
//!   (patterns in the order given). Built in (see [`expect::BUILT_IN`]):
//!   `time` (log timestamps), `port` (`127.0.0.1:` and a five-digit port:
//!   the ports the system picks for clients, never the lab's own), `pid`
//!   (`pid 11713`), `date` (HTTP dates), `duration` (`6.5 s`, `120ms`),
//!   `number` (any number). A race between two messages is a regex with
//!   both: `/curl: \((52|56)\) .*/`.
//! - `<!-- walk: skip REASON -->` (block): the commands (or the output
//!   block) are not run; the summary lists each with REASON. For what
//!   this machine cannot do in a walk, say a 25-minute benchmark.
//! - `<!-- walk: finally COMMAND -->`: run at the end of every walk,
//!   whatever part was walked and however it went: for what the commands
//!   leave behind (`scripts/spawn-backends.sh stop`).
//!
//! # Comparing
//!
//! Line by line and exactly, after the `varies` patterns, with trailing
//! white space and blank lines at the end left out. A line that is only
//! `...` stands for any number of lines, none included: readers know it
//! as "lines left out", and a block may show the lines that matter and
//! `...` for the rest. A failure prints a diff of the two, with the
//! varying parts as `«NAME»`.
//!
//! # Walking part of a file
//!
//! `--only HEADING` walks the section under one heading (up to the next
//! heading of its level or higher), `--from HEADING` from there to the
//! end. HEADING is the heading's text, or the start of it, or a part of
//! it, case aside; each of these is tried in turn, and must name one
//! heading. A chapter that establishes its own state (starts the backends it
//! needs with `scripts/spawn-backends.sh restart`, say) passes alone; one
//! that leans on an earlier chapter shows it here.
//!
//! # Bounds
//!
//! Every wait has a limit (`--help` lists them), every command runs in its
//! own process group, and whatever is still running at the end, or when
//! the walker is interrupted, is stopped with Ctrl-C and then killed.

pub mod document;
pub mod expect;
pub mod terminal;
pub mod walk;
