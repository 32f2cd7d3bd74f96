//! `lab-walk FILE`: the command line of the walker; the conventions are
//! in `lib.rs`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use clap::Parser;
use lab_walk::document;
use lab_walk::terminal::Shell;
use lab_walk::walk::{Limits, Part, Walk, select};

/// Runs the commands of a Markdown file in order, as a reader would, and
/// compares what they print with what the text shows.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The Markdown file; commands run in its folder.
    file: PathBuf,

    /// Walk only the section under this heading (or a unique part of it).
    #[arg(long, value_name = "HEADING", conflicts_with = "from")]
    only: Option<String>,

    /// Walk from this heading (or a unique part of it) to the end.
    #[arg(long, value_name = "HEADING")]
    from: Option<String>,

    /// Read the file and its directives, run nothing.
    #[arg(long)]
    check: bool,

    /// Stop at the first failure.
    #[arg(long)]
    fail_fast: bool,

    /// Longest a foreground command may run, in seconds (a first build
    /// included).
    #[arg(long, default_value_t = 600, value_name = "S")]
    command_timeout: u64,

    /// Longest a background command may take to say "listening on", in
    /// seconds (a first build included).
    #[arg(long, default_value_t = 600, value_name = "S")]
    ready_timeout: u64,

    /// Longest to wait for a terminal's output to match, in seconds.
    #[arg(long, default_value_t = 10, value_name = "S")]
    output_timeout: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let name = args.file.display().to_string();
    let text = match std::fs::read_to_string(&args.file) {
        Ok(text) => text,
        Err(err) => return usage(format!("cannot read {name}: {err}")),
    };
    let doc = match document::parse(&text) {
        Ok(doc) => doc,
        Err(problems) => {
            for problem in problems {
                eprintln!("{name}:{}: {}", problem.line, problem.message);
            }
            return usage(format!("{name}: walk directives to fix first"));
        }
    };
    let part = match (&args.only, &args.from) {
        (Some(title), _) => Part::Only(title.clone()),
        (None, Some(title)) => Part::From(title.clone()),
        (None, None) => Part::All,
    };
    let range = match select(&doc, &part) {
        Ok(range) => range,
        Err(err) => return usage(format!("{name}: {err}")),
    };
    if args.check {
        println!(
            "{name}: {} items, {} to walk; directives read",
            doc.items.len(),
            range.len()
        );
        return ExitCode::SUCCESS;
    }

    let dir = match args.file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    let shell = match Shell::new(&dir) {
        Ok(shell) => shell,
        Err(err) => return usage(format!("cannot set up the shell: {err}")),
    };
    // A Ctrl-C or SIGTERM for the walker ends the current wait; the walker
    // then stops what it started and reports.
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(err) =
            signal_hook::flag::register(signal, Arc::clone(&interrupted))
        {
            return usage(format!("cannot handle signal {signal}: {err}"));
        }
    }
    let limits = Limits {
        command: Duration::from_secs(args.command_timeout),
        ready: Duration::from_secs(args.ready_timeout),
        output: Duration::from_secs(args.output_timeout),
        ..Limits::default()
    };
    let start = Instant::now();
    let file_name = args
        .file
        .file_name()
        .map_or(name.clone(), |n| n.to_string_lossy().into_owned());
    let mut walk = Walk::new(
        &file_name,
        &shell,
        limits,
        &interrupted,
        args.fail_fast,
        std::io::stdout(),
    );
    walk.run(&doc.items[range], &doc.finally);
    let part = match part {
        Part::All => "all of it".to_owned(),
        Part::From(title) => format!("from «{title}»"),
        Part::Only(title) => format!("only «{title}»"),
    };
    walk.report(&part, start.elapsed());
    if walk.summary.interrupted {
        ExitCode::from(130)
    } else if walk.summary.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// A problem with the command line or the file: exit code 2.
fn usage(message: String) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}
