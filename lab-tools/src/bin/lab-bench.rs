//! `lab-bench`: the benchmark `scripts/bench.sh` runs (see
//! `lab_tools::bench`). Errors end it with one line and exit status 1.

use std::process::ExitCode;

fn main() -> ExitCode {
    match lab_tools::bench::run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench.sh: error: {err}");
            ExitCode::FAILURE
        }
    }
}
