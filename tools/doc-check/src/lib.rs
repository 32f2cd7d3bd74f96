//! Checks that keep the lab's docs honest: `tutorial.md` and `README.md`
//! must say what the code does, and the steps must keep their layout.
//!
//! The checks are plain functions over text and over the workspace as
//! `cargo metadata` reports it ([`workspace`]); Markdown is read by
//! `pulldown-cmark` ([`markdown`]). Each is unit tested on small inputs;
//! `tests/docs.rs` runs them on the real files, so `cargo test --workspace`
//! fails as soon as the docs drift. Every problem names a file, a line and
//! what to do about it.
//!
//! # The rules
//!
//! **Quoted code** ([`snippets`]). In `tutorial.md`, a marker line
//!
//! ```text
//! <!-- snippet: steps/04-round-robin/src/lib.rs:round_robin -->
//! ```
//!
//! is followed (blank lines allowed in between) by a fenced block whose
//! info string starts with `rust`. The block's lines must equal the lines
//! strictly between `// ANCHOR: round_robin` and `// ANCHOR_END:
//! round_robin` in that file (any file, path relative to the workspace
//! root: `balancer/src/select/mod.rs` too), with one transformation: the
//! indentation common to every non-blank line of the region is removed,
//! so a method quoted out of its `impl` starts at column 0. Anchor lines
//! nested inside a region are left out of it, as mdBook does. A marker
//! that names a missing file or anchor fails, and so does, in any `.rs`
//! file of a member, an `ANCHOR` without its `ANCHOR_END`, an `ANCHOR_END`
//! without its `ANCHOR`, or one name used twice in a file.
//!
//! `LAB_BLESS=1 cargo test -p lab-check` rewrites every quoted block from
//! its source (and inserts the block when a marker has none yet), then
//! checks as usual.
//!
//! **Quoted diffs** ([`diffs`]). What a step changes may be quoted as a
//! diff: a marker `<!-- diff: OLD.rs:anchor NEW.rs:anchor -->` (then
//! optionally `context=N`) followed by a ```` ```diff ```` block, which
//! must equal the unified diff of the two anchored regions, each hunk
//! opening with a bare `@@`. Blessing does not write these blocks; the
//! failure shows the first line that differs and what it should be.
//!
//! **Repetition** ([`repetition`]). Of the Rust lines that the chapters
//! of steps 02 to 08 show (a diff shows its `+` lines), at most a tenth
//! may repeat a line shown earlier, from step 01 on; punctuation-only
//! lines are not counted.
//!
//! **Named commands** ([`commands`]). In `README.md` and `tutorial.md`,
//! inside code blocks and `inline code`, every `scripts/PATH.sh` must be a
//! file under `scripts/`, and in every `cargo` command (before a bare
//! `--`, which starts the program's own arguments) `--bin NAME` must be a
//! binary and `-p NAME` / `--package NAME` a package of the workspace, as
//! `cargo metadata` names them. A code span that starts with the flag
//! itself (`--bin 04-round-robin`) is read the same way.
//!
//! **Chapter titles** ([`titles`]). The first line of
//! `steps/NN-slug/src/lib.rs` is `//! Step NN — Title` (an em dash), and
//! `tutorial.md` has exactly one heading `## Step NN — Title` with the
//! same text, in step order. A `## Step ...` heading for a step that does
//! not exist, or with another title, fails.
//!
//! **Parents** ([`parents`]). A step's `Cargo.toml` records the step it
//! changes, `[package.metadata.lab] parent = "step-04-round-robin"`, the
//! one source that tools and docs read. The first step has none; every
//! other step names an earlier one, and its `//!` header says `Changed
//! since step 04:` with that step's number.
//!
//! **Lists of steps** ([`step_lists`]). A table in `README.md` or
//! `tutorial.md` whose first column is headed `step` lists every step, in
//! order, one row each, its first cell the step's number (`04`) or folder
//! (`04-round-robin`). A `package` column holds the step's package, a `run
//! it` column `cargo run --bin NAME` with the step's binary.
//!
//! **The map** ([`map`]). Every `## ` heading of `tutorial.md` is a
//! chapter. Its first paragraph is its map line, one line in italics, four
//! parts joined by ` · `:
//!
//! ```text
//! *Step 07 of 09 · builds on [06](#step-06--tls-at-the-front) · new: `TlsConnector`, `ServerName` · about 20 min*
//! ```
//!
//! where a step's position is `Step NN of MM` (MM the last step) and it
//! builds on the parent its `Cargo.toml` records, an `lb — ...` chapter's
//! is `lb, chapter K of N`, a link in "builds on" goes to an earlier
//! chapter, "new:" names two to four things, and the time is the rule's
//! ([`map::Estimate`]: prose at 200 words a minute, quoted code at 20
//! lines a minute, a minute a command) give or take a fifth or 5
//! minutes, in fives. Its last paragraph is its recap: `**You can now**`
//! and what the learner can now do, in at most three lines. Before the
//! first chapter, a table of contents lists every chapter in order, `-
//! [Title](#anchor) · about N min` with its map line's time, and the
//! paragraph after it gives the total. Every `[...](#anchor)` in the file
//! names a heading, by GitHub's anchors ([`map::slug`]).
//!
//! **Exercises** ([`exercises`]). Every chapter but those
//! [`exercises::WITHOUT_EXERCISE`] lists (each with why) has a section
//! `### Exercise: ...` that prints `$ scripts/exercise.sh ID` in a console
//! block; `solutions/ID.patch` exists and its `Chapter:` is that chapter;
//! its `Package:` has, in its `exercises` test target, the `Test:` it
//! names, marked `#[ignore = "exercise ID: ..."]`; and every solution is
//! checked by exactly one chapter. That each test fails without its
//! solution and passes with it is for `scripts/exercise.sh` to show (the
//! walker runs the first, `scripts/check.sh` the second).
//!
//! **No forward references** ([`order`]). A quoted block (a snippet, or
//! the new side of a diff) must not use an item of the workspace that the
//! tutorial introduces only in a later chapter: an item is introduced in
//! the chapter of the first quote that defines it (`fn`, `struct`,
//! `enum`, `trait`, `type`, `const`, `static`, `macro_rules!`, an inherent
//! `impl`'s methods), and items are known by name (the steps sharing
//! theirs, each other crate keeping its own). Items no quote defines are
//! not checked. A use the text keeps on purpose is listed in
//! `tools/doc-check/forward-references.toml`, an `[[exception]]` with
//! `item`, `chapter` (the chapter of the quote that uses it) and
//! `reason`; an exception that no longer matches a use fails too.
//!
//! **Layout** ([`layout`]). Every workspace member under `steps/` lives in
//! `steps/NN-slug` (two digits, then lowercase words joined by `-`), its
//! package is `step-NN-slug`, it has a binary named `NN-slug`, and no two
//! steps share a number. Members elsewhere (`balancer/`, whose binary is
//! `lb`) are not steps. Every member's manifest says `[lints] workspace =
//! true`, without which the workspace lints do nothing.

use std::fmt;
use std::path::PathBuf;

pub mod commands;
pub mod diffs;
pub mod exercises;
pub mod layout;
pub mod map;
pub mod markdown;
pub mod order;
pub mod parents;
pub mod repetition;
pub mod snippets;
pub mod step_lists;
pub mod titles;
pub mod workspace;

/// What to tell someone whose tutorial quotes stale code.
pub const BLESS_HINT: &str =
    "run LAB_BLESS=1 cargo test -p lab-check to refresh the quoted blocks";

/// One thing wrong, where it is, and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Relative to the workspace root: `tutorial.md`.
    pub file: String,
    /// From 1; 0 when the problem is about the file as a whole.
    pub line: usize,
    pub message: String,
}

impl Problem {
    pub fn new(
        file: impl Into<String>,
        line: usize,
        message: impl Into<String>,
    ) -> Problem {
        Problem {
            file: file.into(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        }
    }
}

/// `a, b, c`, or `none`.
pub fn list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.into_iter().collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// Panics with every problem, one per line, if there are any.
pub fn assert_none(what: &str, problems: &[Problem]) {
    if problems.is_empty() {
        return;
    }
    let list: Vec<String> = problems
        .iter()
        .map(|problem| format!("  {problem}"))
        .collect();
    panic!(
        "{what}: {} problem(s)\n{}\n",
        problems.len(),
        list.join("\n")
    );
}

/// The workspace root: two folders above this crate's manifest
/// (`tools/doc-check`).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .nth(2)
        .expect("lab-check lives in tools/doc-check, two folders below the workspace root")
        .to_path_buf()
}
