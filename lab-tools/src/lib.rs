//! The lab's tooling, in Rust where the work is logic rather than starting
//! processes: the list of steps (from `cargo metadata`).

pub mod steps;
