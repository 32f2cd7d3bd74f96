//! `faults`: runs lb's fault suite against real `lb` and step 08
//! processes, and prints what each did. `scripts/faults.sh` builds
//! everything in release mode and runs this in a network namespace of
//! its own.
//!
//! ```text
//! scripts/faults.sh                      every case, lb and step 08
//! scripts/faults.sh never-answers burst  two of them
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use fault_suite::certs::Certs;
use fault_suite::report::{count, wrap};
use fault_suite::subject::{Kind, Subject};
use fault_suite::{Case, Ctx, Size, cases};
use lab_common::cli::fail;

/// lb's fault suite: backends that stall, reset or close, clients that
/// stall, give up or reset, bursts, thousands of idle connections, too
/// few descriptors, SIGTERM mid-transfer, partial failures (every
/// backend gone for a second, a flapping backend, a loop). Each case says
/// what must happen, does it to a real `lb` process (and to step 08, to
/// compare), and measures it through /proc.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Cases to run (all if none); --list names them.
    #[arg(value_name = "CASE")]
    cases: Vec<String>,

    /// List the cases and what each checks, then exit.
    #[arg(long)]
    list: bool,

    /// The `lb` binary [default: lb next to this program].
    #[arg(long, value_name = "PATH")]
    lb: Option<PathBuf>,

    /// The step 08 binary to compare with [default: 08-final next to
    /// this program].
    #[arg(long, value_name = "PATH")]
    step08: Option<PathBuf>,

    /// Run lb alone, without step 08 beside it.
    #[arg(long, conflicts_with = "step08")]
    no_step08: bool,

    /// The small sizes of `cargo test` instead of the full ones.
    #[arg(long)]
    small: bool,

    /// This run has its network namespace to itself (`unshare -n`), so
    /// the kernel's ListenOverflows counts only its own: check it.
    #[arg(long)]
    private_network: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if args.list {
        for case in Case::ALL {
            println!("{:<22} {}", case.name(), case.about());
        }
        return ExitCode::SUCCESS;
    }
    let chosen = match choose(&args.cases) {
        Ok(chosen) => chosen,
        Err(err) => return fail(err),
    };
    let lb = match binary(args.lb.as_deref(), "lb") {
        Ok(lb) => lb,
        Err(err) => return fail(err),
    };
    let step08 = if args.no_step08 {
        None
    } else {
        match binary(args.step08.as_deref(), "08-final") {
            Ok(path) => Some(path),
            Err(err) => return fail(err),
        }
    };
    let size = if args.small { Size::Small } else { Size::Full };
    let mut subjects = vec![Subject {
        kind: Kind::Lb,
        program: lb,
    }];
    if let Some(program) = step08 {
        subjects.push(Subject {
            kind: Kind::Step08,
            program,
        });
    }
    let against: Vec<String> =
        subjects.iter().map(|s| shown(&s.program)).collect();
    println!(
        "lb's fault suite, {} size: {}, against {}",
        if args.small { "small" } else { "full" },
        count(chosen.len(), "case"),
        against.join(" and ")
    );
    let started = Instant::now();
    let mut failed = Vec::new();
    for case in &chosen {
        let case_started = Instant::now();
        println!("\n== {}", case.name());
        print!("{}", wrap(case.about(), "   ", "   "));
        let mut case_failed = false;
        for subject in &subjects {
            let certs = match Certs::new() {
                Ok(certs) => certs,
                Err(err) => return fail(format!("certificates: {err}")),
            };
            let ctx = Ctx {
                subject: subject.clone(),
                size,
                certs,
                private_network: args.private_network,
            };
            let report = cases::run(*case, &ctx).await;
            print!("{report}");
            case_failed |= !report.failures().is_empty();
        }
        if case_failed {
            failed.push(case.name());
        }
        println!("   ({:.1} s)", case_started.elapsed().as_secs_f64());
    }
    println!(
        "\nfaults: {}, {} passed, {} failed{}; {:.0} s",
        count(chosen.len(), "case"),
        chosen.len() - failed.len(),
        failed.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(" ({})", failed.join(", "))
        },
        started.elapsed().as_secs_f64()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A path as a reader would type it: relative to the current folder
/// when it is inside it.
fn shown(path: &Path) -> String {
    let inside = std::env::current_dir()
        .ok()
        .and_then(|here| path.strip_prefix(here).ok().map(Path::to_path_buf));
    inside
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

/// The cases named, in the suite's order; all of them if none is.
fn choose(names: &[String]) -> Result<Vec<Case>, String> {
    for name in names {
        if Case::from_name(name).is_none() {
            return Err(format!(
                "no case named `{name}` (faults --list names them)"
            ));
        }
    }
    Ok(Case::ALL
        .into_iter()
        .filter(|case| {
            names.is_empty() || names.iter().any(|n| n == case.name())
        })
        .collect())
}

/// The binary `given`, or `name` beside this program; an error that says
/// how to make it if it is not there.
fn binary(given: Option<&Path>, name: &str) -> Result<PathBuf, String> {
    let path = match given {
        Some(path) => path.to_path_buf(),
        None => std::env::current_exe()
            .map_err(|err| format!("cannot find this program: {err}"))?
            .with_file_name(name),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} does not exist: build it (cargo build --release --bin {name}), \
             or name it with --{}",
            path.display(),
            if name == "lb" { "lb" } else { "step08" }
        ))
    }
}
