//! No forward references: a quoted block of Rust must not use an item of
//! the workspace that the tutorial only quotes in a later chapter. The
//! rule is in the crate documentation; this says how it reads Rust. It
//! reads tokens, not a syntax tree: quotes are fragments (a method out of
//! its `impl`, the new side of a diff), and a few plain rules, below, were
//! enough to make every finding on the tutorial a real one.
//!
//! **What is shown.** The quotes are read in the order of the text, each
//! in the chapter (the `## ` heading) above its marker: a `snippet`'s
//! whole block, and of a `diff`'s block the lines of the new region (`+`
//! and ` `), since its `-` lines are old code, shown before.
//!
//! **Definitions.** A quote *defines* the names that follow `fn`,
//! `struct`, `enum`, `trait`, `type`, `const`, `static`, `union` and
//! `macro_rules!` in it, and records for each whether it is a method
//! (`self` first) and of which type's `impl` (or trait) it is an item.
//! The items of an `impl Trait for Type` define nothing: `fn default` in
//! `impl Default` names `Default`'s item, which the reader knows from
//! std. A name is *introduced* in the chapter of the first quote that
//! defines it. Items are known by name, within a family of files: the
//! steps are one family, since each step is copied from the one before
//! (each has its own `run` and `proxy`, and once step 01 has shown a
//! `run`, a later one is no new idea); any other crate is its own, so
//! `lb`'s `Config` is not step 09's; and `lab-common`'s names are every
//! family's. A name no quote defines is not the tutorial's to explain in
//! a quote (tokio's `OwnedSemaphorePermit`, an `lb` function never
//! quoted), so it is not checked.
//!
//! **Uses.** A quote *uses* a name where its code names an item rather
//! than a value, and the form of the use says which definitions it may
//! mean:
//!
//! - `name(`, `name!(`, `name::<`: a function, macro or tuple struct of
//!   no `impl` (a call of `run()` is not a use of some type's `run`);
//! - `module::name`: one of no `impl`, in a file of that module
//!   (`client::connect` is not `lb`'s `connect::connect`);
//! - `Type::name`: an item of `Type`'s `impl` (`String::new` is not
//!   `Checkers::new`), of any `impl` for `Self::name`;
//! - `x.name(`: a method. Method calls are counted because they are how
//!   most of `lb`'s state is reached: `usable` calling
//!   `self.cooling_down(now)` is exactly what a reader meets before its
//!   explanation. But on anything other than `self`, a name that std,
//!   tokio or axum also give a method ([`COMMON_METHODS`]: `take`,
//!   `count`, `join`, `run`...) is left out: `reader.take(n)` is
//!   `AsyncReadExt`'s, not the workspace's buffer's `take`;
//! - a capitalised name (a type, a trait, a constant): any definition.
//!
//! A lowercase name with none of these (`deadline`, `self.pool`) is a
//! variable, a field or a module, and is left out. Comments, strings and
//! lifetimes are not code and are skipped, and a name that the quote
//! defines itself is never a forward reference.
//!
//! What the check still cannot tell apart, or a use the text keeps on
//! purpose, goes in the exceptions file ([`EXCEPTIONS`]) with a reason;
//! an exception that no longer matches a finding fails too, so the list
//! cannot outlive what it excuses.

use std::collections::BTreeSet;

use crate::Problem;
use crate::markdown::Doc;

/// The exceptions, relative to the workspace root.
pub const EXCEPTIONS: &str = "tools/doc-check/forward-references.toml";

/// A name that a quote uses before the chapter that introduces it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The line of the quote's marker.
    pub line: usize,
    /// `path:anchor`, as the marker gives it.
    pub quote: String,
    /// The chapter the quote is in.
    pub chapter: String,
    pub item: String,
    /// The chapter that introduces the item, and the line of its quote.
    pub later: String,
    pub later_line: usize,
}

/// A forward reference the tutorial keeps on purpose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exception {
    /// The line of its `item` key in the exceptions file (0 if unknown).
    pub line: usize,
    pub item: String,
    /// The chapter of the quote that uses it early.
    pub chapter: String,
    pub reason: String,
}

const KEYWORDS: &[&str] = &[
    "as",
    "async",
    "await",
    "break",
    "const",
    "continue",
    "crate",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "fn",
    "for",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "pub",
    "ref",
    "return",
    "self",
    "Self",
    "static",
    "struct",
    "super",
    "trait",
    "true",
    "type",
    "union",
    "unsafe",
    "use",
    "where",
    "while",
    "macro_rules",
];

/// Method names that the standard library, tokio or axum also use: a
/// call `x.take()` on anything but `self` is far more often `Option`'s
/// or `AsyncReadExt`'s than the workspace's own `take`.
pub const COMMON_METHODS: &[&str] = &[
    "accept", "as_ref", "as_str", "bind", "build", "call", "clone", "close",
    "connect", "contains", "count", "flush", "fmt", "from", "get", "insert",
    "into", "is_empty", "iter", "join", "len", "load", "lock", "map", "next",
    "parse", "poll", "push", "read", "ready", "recv", "remove", "reset", "run",
    "send", "set", "shutdown", "start", "store", "swap", "take", "update",
    "wait", "write",
];

/// What comes before a definition's name.
const DEFINERS: &[&str] = &[
    "fn", "struct", "enum", "trait", "type", "const", "static", "union",
];

/// A name in code, with what is around it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Token {
    text: String,
    /// The code between the previous name and this one, trimmed.
    before: String,
    /// The previous name, if the code between is only white space.
    after_word: Option<String>,
    /// The next three characters of code that are not white space.
    next: String,
    /// The previous name.
    prev: Option<String>,
    /// How many `{` it is inside.
    depth: usize,
    /// Whether a `{` comes between it and the next name.
    opens: bool,
}

/// The names in `code` (Rust), comments, strings, character literals and
/// lifetimes left out.
fn tokens(code: &str) -> Vec<Token> {
    let chars: Vec<char> = code.chars().collect();
    let mut found: Vec<Token> = Vec::new();
    // Code between two names, comments and literals taken out.
    let mut between = String::new();
    let mut depth = 0;
    let mut at = 0;
    let peek = |from: usize| -> String {
        let rest = chars[from..].iter().filter(|c| !c.is_whitespace());
        rest.take(3).collect()
    };
    while at < chars.len() {
        let c = chars[at];
        let next = chars.get(at + 1).copied().unwrap_or('\0');
        if c == '/' && next == '/' {
            while at < chars.len() && chars[at] != '\n' {
                at += 1;
            }
            between.push(' ');
        } else if c == '/' && next == '*' {
            // Block comments nest.
            let mut nested = 0;
            while at < chars.len() {
                if chars[at] == '/' && chars.get(at + 1) == Some(&'*') {
                    nested += 1;
                    at += 2;
                } else if chars[at] == '*' && chars.get(at + 1) == Some(&'/') {
                    nested -= 1;
                    at += 2;
                    if nested == 0 {
                        break;
                    }
                } else {
                    at += 1;
                }
            }
            between.push(' ');
        } else if c == '"'
            || ((c == 'r' || c == 'b')
                && (next == '"' || next == '#')
                && !chars
                    .get(at.wrapping_sub(1))
                    .is_some_and(|p| p.is_alphanumeric() || *p == '_'))
        {
            // A string: `"..."`, `r"..."`, `r#"..."#`, `b"..."`, `br"..."`.
            let mut raw = false;
            while chars[at] != '"' && chars[at] != '#' {
                raw |= chars[at] == 'r';
                at += 1;
                if at >= chars.len() {
                    break;
                }
            }
            let mut hashes = 0;
            while chars.get(at) == Some(&'#') {
                hashes += 1;
                at += 1;
            }
            if hashes > 0 {
                raw = true;
            }
            if chars.get(at) != Some(&'"') {
                // `r#name`, a raw identifier: read on as code.
                continue;
            }
            at += 1;
            while at < chars.len() {
                if !raw && chars[at] == '\\' {
                    at += 2;
                    continue;
                }
                if chars[at] == '"'
                    && (0..hashes).all(|h| chars.get(at + 1 + h) == Some(&'#'))
                {
                    at += 1 + hashes;
                    break;
                }
                at += 1;
            }
            between.push_str(" \"\" ");
        } else if c == '\'' {
            // A character literal (`'x'`, `'\n'`) or a lifetime (`'a`).
            if next == '\\' {
                at += 2;
                while at < chars.len() && chars[at] != '\'' {
                    at += 1;
                }
                at += 1;
            } else if chars.get(at + 2) == Some(&'\'') {
                at += 3;
            } else {
                at += 1;
                while at < chars.len()
                    && (chars[at].is_alphanumeric() || chars[at] == '_')
                {
                    at += 1;
                }
            }
            between.push(' ');
        } else if c.is_alphabetic() || c == '_' {
            let start = at;
            while at < chars.len()
                && (chars[at].is_alphanumeric() || chars[at] == '_')
            {
                at += 1;
            }
            let text: String = chars[start..at].iter().collect();
            let next = peek(at);
            let before = between.trim().to_owned();
            let prev = found.last().map(|last| last.text.clone());
            let after_word = prev.clone().filter(|_| before.is_empty());
            if let Some(last) = found.last_mut() {
                last.opens = before.contains('{');
            }
            found.push(Token {
                text,
                before,
                after_word,
                next,
                prev,
                depth,
                opens: false,
            });
            between.clear();
        } else if c.is_ascii_digit() {
            while at < chars.len()
                && (chars[at].is_alphanumeric() || chars[at] == '_')
            {
                at += 1;
            }
            between.push('0');
        } else {
            match c {
                '{' => depth += 1,
                '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
            between.push(c);
            at += 1;
        }
    }
    if let Some(last) = found.last_mut() {
        last.opens = between.contains('{');
    }
    found
}

/// A name a quote defines.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Def {
    name: String,
    /// A `fn` whose first parameter is `self`.
    method: bool,
    /// The type of the `impl` block (or the trait) it is an item of.
    owner: Option<String>,
}

/// How a quote names an item.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Use {
    /// `x.name(`: only a method can be meant.
    Method,
    /// `name(`, `name!(`, `name::<`: a function, a macro or a tuple
    /// struct of no `impl` block.
    Call,
    /// `module::name`, a lowercase module first: only a definition of no
    /// `impl` block, in a file of that module, can be meant.
    In(String),
    /// `Type::name`: only an item of `Type`'s `impl` blocks (of any, for
    /// `Self::name`).
    Of(String),
    /// A capitalised name (a type, a trait, a constant), or a longer
    /// path: any definition.
    Any,
}

/// An `impl` or `trait` block being read.
struct Block {
    /// The depth of its items.
    depth: usize,
    /// The index of the token before its `{`.
    open: usize,
    owner: Option<String>,
    /// `impl Trait for Type`: its items implement a trait's names, they
    /// define none.
    trait_impl: bool,
}

/// The block that the `impl` or `trait` at `at` opens.
fn block(tokens: &[Token], at: usize) -> Block {
    let token = &tokens[at];
    let end = tokens[at + 1..]
        .iter()
        .position(|t| t.depth != token.depth || t.opens)
        .map_or(tokens.len() - 1, |end| at + 1 + end);
    let head = &tokens[at + 1..=end.max(at)];
    let trait_impl =
        token.text == "impl" && head.iter().any(|t| t.text == "for");
    let mut angle = 0i32;
    let mut after_for = !trait_impl;
    let mut owner = None;
    for t in head {
        let before = t.before.replace("->", "");
        angle += before.matches('<').count() as i32;
        angle -= before.matches('>').count() as i32;
        if t.text == "for" {
            after_for = true;
        } else if after_for
            && angle == 0
            && owner.is_none()
            && t.text.starts_with(char::is_uppercase)
        {
            owner = Some(t.text.clone());
        }
    }
    if token.text != "impl" {
        // `trait Name`: the name itself.
        owner = Some(token.text.clone());
    }
    Block {
        depth: token.depth + 1,
        open: end,
        owner,
        trait_impl,
    }
}

/// The names `code` defines, and those it uses as items (with how).
fn read(code: &str) -> (Vec<Def>, Vec<(String, Use)>) {
    let tokens = tokens(code);
    let mut defines: Vec<Def> = macros(code)
        .into_iter()
        .map(|name| Def {
            name,
            method: false,
            owner: None,
        })
        .collect();
    let mut uses = Vec::new();
    let mut blocks: Vec<Block> = Vec::new();
    for (at, token) in tokens.iter().enumerate() {
        let name = token.text.as_str();
        blocks.retain(|b| at <= b.open || token.depth >= b.depth);
        if name == "impl" {
            blocks.push(block(&tokens, at));
            continue;
        }
        if KEYWORDS.contains(&name) || name == "_" {
            continue;
        }
        if let Some(definer) = token.after_word.as_deref()
            && DEFINERS.contains(&definer)
        {
            let within = blocks.last().filter(|b| b.depth == token.depth);
            if !within.is_some_and(|b| b.trait_impl) {
                // The first parameter: the first name after a `(`.
                let mut params = tokens[at + 1..]
                    .iter()
                    .skip_while(|t| !t.before.contains('('))
                    .map(|t| t.text.as_str())
                    .filter(|t| *t != "mut");
                let method = definer == "fn" && params.next() == Some("self");
                defines.push(Def {
                    name: name.to_owned(),
                    method,
                    owner: within.and_then(|b| b.owner.clone()),
                });
            }
            if definer == "trait" {
                blocks.push(block(&tokens, at));
            }
            continue;
        }
        let next = token.next.as_str();
        let called = next.starts_with('(')
            || ["!(", "![", "!{", "::<"]
                .iter()
                .any(|s| next.starts_with(s));
        let path = token.before.ends_with("::") && !next.starts_with("::");
        let capital = |text: &str| text.starts_with(char::is_uppercase);
        let how = if path {
            match token.prev.as_deref() {
                // `Type::<T>::name`: an item of a generic type, which
                // the tokens do not name; a workspace type is not
                // written so in the quotes.
                _ if token.before.ends_with(">::") => continue,
                Some(_) if token.before != "::" => Use::Any,
                Some(ty) if capital(ty) => Use::Of(ty.to_owned()),
                Some(module) if !KEYWORDS.contains(&module) => {
                    Use::In(module.to_owned())
                }
                _ => Use::Any,
            }
        } else if called && token.before.ends_with('.') {
            let on_self =
                token.before == "." && token.prev.as_deref() == Some("self");
            if !on_self && COMMON_METHODS.contains(&name) {
                continue;
            }
            Use::Method
        } else if called {
            Use::Call
        } else if capital(name) {
            Use::Any
        } else {
            continue;
        };
        uses.push((name.to_owned(), how));
    }
    (defines, uses)
}

/// The names defined by `macro_rules!` in `code`.
fn macros(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("macro_rules!") {
        rest = &rest[at + "macro_rules!".len()..];
        let name: String = rest
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.insert(name);
        }
    }
    found
}

/// A quote, read.
struct Read {
    line: usize,
    name: String,
    /// Index of its chapter in `doc.chapters` (`None`: before the first).
    chapter: Option<usize>,
    /// The module its file is (`connect` for `balancer/src/connect.rs`,
    /// `select` for `.../select/mod.rs`); `None` for a crate root, which
    /// any path may name.
    module: Option<String>,
    /// Whose names it may use: see [`family_of`].
    family: String,
    defines: Vec<Def>,
    uses: Vec<(String, Use)>,
}

/// The crates whose items any other may use.
const SHARED: &str = "lab-common";

/// The family of the file `path`: `steps` for every step, since each is
/// copied from the one before and a name keeps its meaning along them;
/// otherwise its first folder (`balancer`, `lab-common`), or its first
/// two under `tools/`.
fn family_of(path: &str) -> String {
    let folders: Vec<&str> = path.split('/').collect();
    match folders[..] {
        ["tools", tool, _, ..] => format!("tools/{tool}"),
        [first, _, ..] => first.to_owned(),
        _ => String::new(),
    }
}

/// The module of the file `path`: see [`Read::module`].
fn module_of(path: &str) -> Option<String> {
    let mut parts = path.rsplit('/');
    let file = parts.next()?;
    let stem = file.strip_suffix(".rs").unwrap_or(file);
    match stem {
        "lib" | "main" => None,
        "mod" => parts.next().map(str::to_owned),
        stem => Some(stem.to_owned()),
    }
}

/// Whether `how` may name the definition `def` made in `quote`.
fn may_name(how: &Use, def: &Def, quote: &Read) -> bool {
    let free = def.owner.is_none();
    match how {
        Use::Method => def.method,
        Use::Call => free,
        Use::In(module) => {
            free && quote.module.as_ref().is_none_or(|m| m == module)
        }
        Use::Of(ty) if ty == "Self" => !free,
        Use::Of(ty) => def.owner.as_ref() == Some(ty),
        Use::Any => true,
    }
}

/// The quoted code of the tutorial, in the order of the text: for each
/// marker, its line, the region it names (`path:anchor`) and the code of
/// its block. A `<!-- snippet: ... -->` shows its whole block; a `<!--
/// diff: OLD NEW -->` (see the diff rule) shows the new region's lines,
/// those its `diff` block marks `+` or ` `, the `-` lines being the old
/// code, already shown.
fn shown(doc: &Doc, lines: &[&str]) -> Vec<(usize, String, String)> {
    let mut found = Vec::new();
    for html in &doc.html {
        let text = html.text.trim();
        let (spec, language) =
            if let Some(spec) = text.strip_prefix("<!-- snippet:") {
                (spec, "rust")
            } else if let Some(spec) = text.strip_prefix("<!-- diff:") {
                (spec, "diff")
            } else {
                continue;
            };
        let spec = spec.trim().trim_end_matches("-->");
        let words: Vec<&str> = spec.split_whitespace().collect();
        let name = match language {
            "rust" => words.first(),
            _ => words.get(1),
        };
        let Some(name) = name else { continue };
        // The next line that is not blank must open the block.
        let next = (html.line..lines.len())
            .find(|&at| !lines[at].trim().is_empty())
            .map(|at| at + 1);
        let Some(block) = doc.fences.iter().find(|fence| {
            Some(fence.line) == next
                && fence.info.split([' ', ',']).next() == Some(language)
        }) else {
            continue;
        };
        let body = block.body.clone().filter_map(|at| lines.get(at));
        let code: Vec<&str> = match language {
            "rust" => body.copied().collect(),
            _ => body
                .filter_map(|line| {
                    line.strip_prefix('+')
                        .or_else(|| line.strip_prefix(' '))
                        .or_else(|| line.is_empty().then_some(""))
                })
                .collect(),
        };
        found.push((html.line, (*name).to_owned(), code.join("\n")));
    }
    found
}

/// The forward references in `tutorial`, in the order of the text.
pub fn find(tutorial: &str) -> Vec<Finding> {
    let doc = Doc::parse(tutorial);
    let lines: Vec<&str> = tutorial.lines().collect();
    // The snippet and diff rules report what is wrong with the markers;
    // here only the blocks count, as the reader sees them.
    let chapter_of =
        |line: usize| doc.chapters.iter().rposition(|c| c.line < line);
    let title = |chapter: Option<usize>| match chapter {
        Some(at) => doc.chapters[at].text.clone(),
        None => "the introduction".to_owned(),
    };
    let mut read_quotes = Vec::new();
    for (line, name, code) in shown(&doc, &lines) {
        let (defines, mut uses) = read(&code);
        uses.retain(|(name, _)| defines.iter().all(|def| &def.name != name));
        let path = name.rsplit_once(':').map_or("", |(path, _)| path);
        read_quotes.push(Read {
            line,
            module: module_of(path),
            family: family_of(path),
            name,
            chapter: chapter_of(line),
            defines,
            uses,
        });
    }
    let mut findings = Vec::new();
    for quote in &read_quotes {
        let mut reported = BTreeSet::new();
        for (name, how) in &quote.uses {
            // The first quote that defines what this use may name.
            let first = read_quotes.iter().find(|other| {
                let related =
                    other.family == quote.family || other.family == SHARED;
                related
                    && other.defines.iter().any(|def| {
                        &def.name == name && may_name(how, def, other)
                    })
            });
            let Some(first) = first else { continue };
            if first.chapter > quote.chapter && reported.insert(name) {
                findings.push(Finding {
                    line: quote.line,
                    quote: quote.name.clone(),
                    chapter: title(quote.chapter),
                    item: name.clone(),
                    later: title(first.chapter),
                    later_line: first.line,
                });
            }
        }
    }
    findings
}

/// Reads the exceptions file: `[[exception]]` tables with `item`,
/// `chapter` and `reason`, each a non-empty string.
pub fn exceptions(
    file: &str,
    text: &str,
) -> Result<Vec<Exception>, Vec<Problem>> {
    let table: toml::Table = text.parse().map_err(|err| {
        vec![Problem::new(file, 0, format!("not valid TOML: {err}"))]
    })?;
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for key in table.keys().filter(|k| *k != "exception") {
        problems.push(Problem::new(
            file,
            0,
            format!("unknown key `{key}`; write `[[exception]]` tables"),
        ));
    }
    let entries = match table.get("exception") {
        None => &Vec::new(),
        Some(toml::Value::Array(entries)) => entries,
        Some(_) => {
            problems.push(Problem::new(
                file,
                0,
                "`exception` must be an array of tables: `[[exception]]`",
            ));
            return Err(problems);
        }
    };
    // The line of each `item = ...`, in order, to point at an entry.
    let item_lines: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("item"))
        .map(|(at, _)| at + 1)
        .collect();
    for (index, entry) in entries.iter().enumerate() {
        let line = item_lines.get(index).copied().unwrap_or(0);
        let field = |key: &str| {
            entry
                .get(key)
                .and_then(toml::Value::as_str)
                .map(str::trim)
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
        };
        let unknown: Vec<&String> = entry
            .as_table()
            .map(|t| {
                let known = ["item", "chapter", "reason"];
                t.keys().filter(|k| !known.contains(&k.as_str())).collect()
            })
            .unwrap_or_default();
        match (field("item"), field("chapter"), field("reason")) {
            (Some(item), Some(chapter), Some(reason)) if unknown.is_empty() => {
                found.push(Exception {
                    line,
                    item,
                    chapter,
                    reason,
                });
            }
            _ => problems.push(Problem::new(
                file,
                line,
                format!(
                    "exception {} needs `item`, `chapter` and `reason` (each \
                     a non-empty string) and nothing else",
                    index + 1
                ),
            )),
        }
    }
    if problems.is_empty() {
        Ok(found)
    } else {
        Err(problems)
    }
}

/// Checks `tutorial` (the file `file`) for forward references, with the
/// `exceptions` read from `exceptions_file`: a finding that no exception
/// covers is a problem, and so is an exception that covers no finding.
pub fn check(
    file: &str,
    tutorial: &str,
    exceptions_file: &str,
    exceptions: &[Exception],
) -> Vec<Problem> {
    let findings = find(tutorial);
    let mut problems = Vec::new();
    let covers =
        |e: &Exception, f: &Finding| e.item == f.item && e.chapter == f.chapter;
    for f in &findings {
        if exceptions.iter().any(|e| covers(e, f)) {
            continue;
        }
        problems.push(Problem::new(
            file,
            f.line,
            format!(
                "the quote `{}` in «{}» uses `{}`, which the tutorial \
                 introduces only later, in «{}» (line {}); explain it \
                 before, quote a simpler form here, or list it in {} with \
                 a reason",
                f.quote, f.chapter, f.item, f.later, f.later_line, EXCEPTIONS
            ),
        ));
    }
    for e in exceptions {
        if !findings.iter().any(|f| covers(e, f)) {
            problems.push(Problem::new(
                exceptions_file,
                e.line,
                format!(
                    "the exception for `{}` in «{}» no longer applies (no \
                     quote there uses it before it is introduced); remove it",
                    e.item, e.chapter
                ),
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_and_uses_are_told_apart() {
        let code = "/// Calls `later()` in a comment.\n\
                    pub async fn serve(pool: Pool) -> Result<(), E> {\n\
                    let deadline = pool.deadline; // later()\n\
                    let s = \"later() in a string\";\n\
                    let c = 'x'; let r: &'a str = r#\"later()\"#;\n\
                    select::pick(&pool);\n\
                    self.cooling_down(now);\n\
                    tokio::select! { x = f::<u8>() => {} }\n\
                    Empty::<Bytes>::new(); Vec::<u8>::with_capacity(1);\n\
                    run.map(tracing::field::display); x.stop(); self.take();\n\
                    }\n\
                    struct Pool; const MAX: usize = 1; const fn g() {}\n\
                    impl Pool { fn usable(&mut self) {} fn new() {} }\n\
                    impl Default for Pool { fn default() -> Pool {} }\n";
        let (defines, uses) = read(code);
        let defines: Vec<_> = defines
            .iter()
            .map(|def| (def.name.as_str(), def.method))
            .collect();
        assert_eq!(
            defines,
            [
                ("serve", false),
                ("Pool", false),
                ("MAX", false),
                ("g", false),
                ("usable", true),
                ("new", false),
            ],
            "`default` implements a trait's name"
        );
        let uses: Vec<_> = uses
            .iter()
            .map(|(name, how)| (name.as_str(), how))
            .collect();
        let into = |module: &str| Use::In(module.to_owned());
        assert_eq!(
            uses,
            [
                ("Pool", &Use::Any),
                ("Result", &Use::Any),
                ("E", &Use::Any),
                ("pick", &into("select")),
                ("cooling_down", &Use::Method),
                ("select", &into("tokio")),
                ("f", &Use::Call),
                ("Empty", &Use::Call),
                ("Bytes", &Use::Any),
                ("Vec", &Use::Call),
                ("display", &into("field")),
                ("stop", &Use::Method),
                ("take", &Use::Method),
                ("Pool", &Use::Any),
                ("Default", &Use::Any),
                ("Pool", &Use::Any),
                ("Pool", &Use::Any),
            ]
        );
        let each = macros("macro_rules! each { () => {} }");
        assert_eq!(each, ["each".to_owned()].into());
    }

    fn tutorial() -> String {
        "# T\n\n## One\n\n<!-- snippet: a.rs:serve -->\n```rust\n\
         fn serve() { let pool = 1; run(); usable(); }\n```\n\n\
         ## Two\n\n<!-- snippet: a.rs:run -->\n```rust\nfn run() {}\n```\n\n\
         ## Three\n\n<!-- snippet: b.rs:usable -->\n```rust\n\
         fn usable() { cooling_down() }\nfn pool() {}\n```\n\n\
         <!-- snippet: c.rs:cooling -->\n```rust\nfn cooling_down() {}\n\
         fn run() {}\n```\n"
            .to_owned()
    }

    #[test]
    fn a_use_before_its_chapter_is_found_once_per_name() {
        let found = find(&tutorial());
        let seen: Vec<_> = found
            .iter()
            .map(|f| (f.line, f.item.as_str(), f.later.as_str()))
            .collect();
        // `pool` is a variable there, `cooling_down` comes in the same
        // chapter, and the second `run` is not its introduction.
        assert_eq!(seen, [(5, "run", "Two"), (5, "usable", "Three")]);
        assert_eq!(found[0].chapter, "One");
        assert_eq!(found[0].later_line, 12);
    }

    #[test]
    fn steps_share_their_names_and_lb_has_its_own() {
        let text = "## One\n\n<!-- snippet: steps/01-a/src/lib.rs:a -->\n\
                    ```rust\nfn a(c: Config) { helper() }\n```\n\n\
                    <!-- snippet: balancer/src/b.rs:b -->\n```rust\n\
                    fn b(c: Config) { helper() }\n```\n\n## Two\n\n\
                    <!-- snippet: steps/09-b/src/lib.rs:c -->\n```rust\n\
                    struct Config;\n```\n\n\
                    <!-- snippet: lab-common/src/x.rs:h -->\n```rust\n\
                    fn helper() {}\n```\n";
        let found: Vec<_> =
            find(text).into_iter().map(|f| (f.line, f.item)).collect();
        // Step 09's `Config` is a later step's, not `lb`'s; lab-common's
        // `helper` is everyone's.
        let expected = [(3, "Config"), (3, "helper"), (8, "helper")];
        assert_eq!(found, expected.map(|(l, i)| (l, i.to_owned())));
    }

    #[test]
    fn a_diff_shows_the_lines_of_its_new_region() {
        let text = "## One\n\n<!-- snippet: a.rs:one -->\n```rust\n\
                    fn one() {}\n```\n\n## Two\n\n\
                    <!-- diff: a.rs:one b.rs:two context=1 -->\n```diff\n\
                    @@\n-fn one() { gone() }\n+fn two() { later() }\n\
                    \x20fn kept() { one() }\n```\n\n## Three\n\n\
                    <!-- snippet: c.rs:x -->\n```rust\n\
                    fn later() {}\nfn gone() {}\nfn two() {}\n```\n";
        let found = find(text);
        let seen: Vec<_> = found
            .iter()
            .map(|f| (f.line, f.quote.as_str(), f.item.as_str()))
            .collect();
        // `-` lines are old code; `two` is defined in the diff itself.
        assert_eq!(seen, [(10, "b.rs:two", "later")]);
    }

    #[test]
    fn exceptions_cover_findings_and_stale_ones_fail() {
        let file = "x.toml";
        let text = "[[exception]]\nitem = \"run\"\nchapter = \"One\"\n\
                    reason = \"a sketch\"\n\n[[exception]]\n\
                    item = \"gone\"\nchapter = \"One\"\nreason = \"old\"\n";
        let exceptions = exceptions(file, text).unwrap();
        assert_eq!(exceptions[1].line, 7);
        let problems = check("t.md", &tutorial(), file, &exceptions);
        let seen: Vec<_> =
            problems.iter().map(|p| (p.file.as_str(), p.line)).collect();
        assert_eq!(seen, [("t.md", 5), (file, 7)], "{problems:?}");
        assert!(problems[0].message.contains("`usable`, which"));
        assert!(problems[0].message.contains("«Three» (line 19)"));
        assert!(problems[1].message.contains("no longer applies"));
    }

    #[test]
    fn an_exception_without_a_reason_or_with_stray_keys_fails() {
        let bad = "[[exception]]\nitem = \"run\"\nchapter = \"One\"\n\
                   reason = \" \"\n";
        assert_eq!(exceptions("x.toml", bad).unwrap_err()[0].line, 2);
        let stray = "[[exception]]\nitem = \"a\"\nchapter = \"b\"\n\
                     reason = \"c\"\nwhy = \"d\"\n";
        assert!(exceptions("x.toml", stray).is_err());
        assert!(exceptions("x.toml", "[rules]\n").is_err());
        assert_eq!(exceptions("x.toml", ""), Ok(Vec::new()));
    }
}
