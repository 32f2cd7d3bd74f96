//! The walker run as a reader runs it: the real binary on small Markdown
//! files whose commands are plain shell (no ports), checking what it
//! reports and its exit code; and the repository's own Markdown files
//! read with `--check`, so a malformed directive fails `cargo test`.

use std::path::Path;
use std::process::{Command, Output};

/// A "server" for the tests: says it listens, answers Ctrl-C with a last
/// line, and otherwise prints each line written to `feed`.
const SERVER: &str = "bash server.sh";
const SERVER_SH: &str = r#"
trap 'echo "stopping"; exit 0' INT
echo "listening on nothing"
for i in $(seq 600); do
  if [ -s feed ]; then cat feed; : > feed; fi
  sleep 0.05
done
"#;

fn walk(markdown: &str, args: &[&str]) -> (Output, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("server.sh"), SERVER_SH).unwrap();
    let file = dir.path().join("doc.md");
    std::fs::write(&file, markdown).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_lab-walk"))
        .arg(&file)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output, stdout)
}

fn doc(body: &str) -> String {
    body.replace("SERVER", SERVER)
}

#[test]
fn a_text_that_tells_the_truth_passes() {
    let markdown = doc(r#"
# Intro

<!-- walk: finally echo done > finally.txt -->

```console
$ echo hello
hello
$ printf 'a\nb\nc\nd\n'
a
...
d
```

Not checked: <!-- walk: skip an example, not output -->
```text
never compared
```

## Server

<!-- walk: background - srv -->
```sh
echo setting up
SERVER
```

```console
$ echo 'served 2026-11-21T09:10:36.544155Z' > feed
```

<!-- walk: output srv -->
<!-- walk: varies time -->
```text
listening on nothing
served 2027-01-01T00:00:00.1Z
```

Press Ctrl-C. <!-- walk: stop srv -->

<!-- walk: output srv -->
```text
stopping
```

```sh
ls server.sh
```

<!-- walk: output -->
```text
server.sh
```
"#);
    let (output, stdout) = walk(&markdown, &[]);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("commands run: 6, passed 6, failed 0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("output blocks: 3, passed 3, failed 0"),
        "{stdout}"
    );
    assert!(stdout.contains("skipped: 1"), "{stdout}");
    assert!(stdout.contains("(an example, not output)"), "{stdout}");
    assert!(
        stdout.contains("$ echo done > finally.txt   ok"),
        "{stdout}"
    );
    assert!(stdout.contains("all passed"), "{stdout}");
}

#[test]
fn a_wrong_output_fails_with_a_diff_and_the_walk_goes_on() {
    let markdown = "\
```console
$ echo hello
goodbye
$ echo second
second
```
";
    let (output, stdout) = walk(markdown, &[]);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("-goodbye"), "{stdout}");
    assert!(stdout.contains("+hello"), "{stdout}");
    assert!(
        stdout.contains("commands run: 2, passed 1, failed 1"),
        "{stdout}"
    );
    assert!(stdout.contains("doc.md:2  $ echo hello"), "{stdout}");
}

#[test]
fn a_failing_sh_command_fails_and_shows_what_it_printed() {
    let (output, stdout) = walk("```sh\necho oops; false\n```\n", &[]);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("exited with exit status: 1"), "{stdout}");
    assert!(stdout.contains("| oops"), "{stdout}");
}

#[test]
fn a_console_command_shown_silent_must_also_succeed() {
    let markdown = "```console\n$ true\n$ false\n$ echo x; false\nx\n```\n";
    let (output, stdout) = walk(markdown, &[]);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("$ false: exited with exit status: 1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("commands run: 3, passed 2, failed 1"),
        "{stdout}"
    );
}

#[test]
fn an_unmarked_output_block_fails_and_the_summary_names_its_chapter() {
    let markdown = "# Part\n\n## Chapter\n\n```text\nsome output\n```\n";
    let (output, stdout) = walk(markdown, &[]);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("an output block with no walk directive"),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAILED: 1\n  in «Chapter»:\n    doc.md:6  an output"),
        "{stdout}"
    );
}

#[test]
fn starting_a_terminal_that_still_runs_fails_and_everything_is_stopped() {
    let markdown = doc("\
<!-- walk: background srv -->
```sh
SERVER
```

<!-- walk: background srv -->
```sh
SERVER
```
");
    let (output, stdout) = walk(&markdown, &[]);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("terminal srv still runs the command of line 3"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "terminal srv was still running at the end: stopped with Ctrl-C"
        ),
        "{stdout}"
    );
}

#[test]
fn output_that_never_comes_fails_after_the_limit() {
    let markdown = doc("\
<!-- walk: background srv -->
```sh
SERVER
```

<!-- walk: output srv -->
```text
listening on nothing
a line nobody prints
```
");
    let (output, stdout) = walk(&markdown, &["--output-timeout", "1"]);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("-a line nobody prints"), "{stdout}");
}

#[test]
fn a_command_that_never_ends_is_stopped_at_the_limit() {
    let (output, stdout) =
        walk("```sh\nsleep 60\n```\n", &["--command-timeout", "1"]);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("still running after 1 s"), "{stdout}");
}

#[test]
fn only_and_from_walk_part_of_the_file() {
    let markdown = "\
# A
```sh
echo a
```
## B
```sh
echo b
```
### B.1
```sh
echo b1
```
## C
```sh
echo c
```
";
    let (_, only) = walk(markdown, &["--only", "B"]);
    assert!(only.contains("commands run: 2,"), "{only}");
    assert!(
        only.contains("echo b1") && !only.contains("echo c"),
        "{only}"
    );
    let (_, from) = walk(markdown, &["--from", "b.1"]);
    assert!(from.contains("commands run: 2,"), "{from}");
    let (output, _) = walk(markdown, &["--only", "nothing"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn a_heading_that_starts_with_the_words_wins_over_one_that_holds_them() {
    let markdown = "\
# Step 08 — Final
```sh
echo final
```
# What step 08 changed
```sh
echo changed
```
# Step 0
";
    let (_, only) = walk(markdown, &["--only", "step 08"]);
    assert!(
        only.contains("echo final") && !only.contains("echo changed"),
        "{only}"
    );
    let (output, _) = walk(markdown, &["--only", "0"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn a_malformed_directive_stops_the_walk_before_it_starts() {
    let (output, _) =
        walk("<!-- walk: backgroud x -->\n```sh\ntrue\n```\n", &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("doc.md:1: unknown walk directive `backgroud`"),
        "{stderr}"
    );
}

#[test]
fn the_repository_markdown_files_have_well_formed_directives() {
    // This crate is tools/walker: the workspace root is two folders up.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap();
    for file in ["tutorial.md", "README.md"] {
        let output = Command::new(env!("CARGO_BIN_EXE_lab-walk"))
            .arg(root.join(file))
            .arg("--check")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{file}:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
