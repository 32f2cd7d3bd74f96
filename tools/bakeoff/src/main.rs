//! `bakeoff`: runs the algorithm bake-off against an `lb` binary and
//! writes its report. `scripts/bakeoff.sh` builds `lb` and this, then
//! runs it:
//!
//! ```text
//! bakeoff --lb target/release/lb --quick --out target/bakeoff
//! ```
//!
//! Progress goes to stderr, the table to stdout. Ctrl-C or SIGTERM stops
//! the run and every `lb` it started.

use std::path::PathBuf;
use std::process::ExitCode;

use bakeoff::plan::Size;
use bakeoff::progress::Progress;
use bakeoff::{Error, report};
use clap::Parser;

/// lb's six algorithms against the same seeded workload: backends of
/// unequal speed, one that fails, and client keys that move when a
/// backend comes or goes.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// The lb binary to run (a release build: target/release/lb).
    #[arg(long, value_name = "PATH")]
    lb: PathBuf,

    /// Short runs: under a minute in all.
    #[arg(long)]
    quick: bool,

    /// Where report.md, the SVG charts and the records go.
    #[arg(long, value_name = "DIR", default_value = "target/bakeoff")]
    out: PathBuf,

    /// Seeds the workload, and lb's random algorithms.
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let progress = Progress::to_stderr();
    let outcome = tokio::select! {
        outcome = run(&args, progress) => outcome,
        signal = stop_signal() => Err(signal),
    };
    // Returning drops the run: an lb still running is killed
    // (kill_on_drop), the backends in this process stop with it.
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            progress.finish();
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args, progress: Progress) -> Result<(), Error> {
    if !args.lb.is_file() {
        return Err(format!(
            "no lb binary at {} (cargo build --release --bin lb)",
            args.lb.display()
        )
        .into());
    }
    let (size, mode) = if args.quick {
        (Size::QUICK, "quick")
    } else {
        (Size::FULL, "full")
    };
    let bakeoff =
        bakeoff::bake(&args.lb, size, mode, args.seed, progress).await?;
    print!("{}", report::table(&bakeoff));
    let path = report::write(&bakeoff, &args.out)?;
    println!("report: {}", path.display());
    Ok(())
}

/// Ctrl-C or SIGTERM, as an error that says which.
async fn stop_signal() -> Error {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => "interrupted (Ctrl-C)".into(),
            _ = term.recv() => "stopped (SIGTERM)".into(),
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            "interrupted (Ctrl-C)".into()
        }
    }
}
