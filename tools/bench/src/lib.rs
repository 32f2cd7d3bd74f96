//! The lab's tooling, in Rust where the work is logic rather than starting
//! processes: the list of steps (from `cargo metadata`), and the benchmark
//! that `scripts/bench.sh` runs (processes, loads, statistics, report).

pub mod bench;
pub mod procs;
pub mod steps;
pub mod sys;
