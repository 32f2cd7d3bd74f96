//! `lab-bench`: the benchmark `scripts/bench.sh` runs (see
//! `lab_tools::bench`). Errors end it with one line and exit status 1.

use std::process::ExitCode;

fn main() -> ExitCode {
    match lab_tools::bench::run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) if lab_tools::procs::interrupted() => {
            // Ctrl-C stopped a load too: the signal handler is cleaning
            // up and exits with 130; say nothing of the failure it caused.
            lab_tools::procs::wait_for_signal_exit();
            ExitCode::from(130)
        }
        Err(err) => {
            eprintln!("bench.sh: error: {err}");
            ExitCode::FAILURE
        }
    }
}
