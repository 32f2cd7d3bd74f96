//! `lab-steps`: the lab's steps for the scripts, one line each, read from
//! the workspace's `cargo metadata` (see `lab_tools::steps`).
//!
//! ```text
//! lab-steps             every step
//! lab-steps 04 09       the steps named (number, folder or package)
//! ```
//!
//! Each line holds eight tab-separated fields: folder, parent folder (`-`
//! for none), binary, layer, front (`http` or `https`), backends (`plain`
//! or `tls` each, comma-separated; `-` for none), what it teaches, and its
//! flags (space-separated, with `{listen}`-style placeholders). An unknown
//! name is an error on stderr and exit status 2.

use std::process::ExitCode;

use lab_tools::steps::{self, Step};

fn line(step: &Step) -> String {
    let demo = &step.demo;
    let backends = if demo.backends.is_empty() {
        "-".to_owned()
    } else {
        demo.backends.join(",")
    };
    [
        step.folder.as_str(),
        step.parent.as_deref().unwrap_or("-"),
        &step.bin,
        &demo.layer.to_string(),
        &demo.front,
        &backends,
        &demo.teaches,
        &demo.args.join(" "),
    ]
    .join("\t")
}

fn main() -> ExitCode {
    let names: Vec<String> = std::env::args().skip(1).collect();
    let all = match steps::load(&steps::workspace_root()) {
        Ok(all) => all,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    if names.is_empty() {
        for step in &all {
            println!("{}", line(step));
        }
        return ExitCode::SUCCESS;
    }
    for name in &names {
        match steps::find(&all, name) {
            Ok(step) => println!("{}", line(step)),
            Err(err) => {
                eprintln!("error: {err}");
                return ExitCode::from(2);
            }
        }
    }
    ExitCode::SUCCESS
}
