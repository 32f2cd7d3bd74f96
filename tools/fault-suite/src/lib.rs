//! lb's fault suite: what a bad day does to a load balancer, done on
//! purpose and measured.
//!
//! Backends that never answer, stall, reset, close at once or read
//! slowly; clients that send nothing, never finish a TLS handshake, give
//! up, reset or trickle; bursts, thousands of idle connections, too few
//! descriptors, SIGTERM with transfers in flight, reloads and upgrades
//! under load (which step 08 cannot do: "n/a"), and partial failures:
//! every backend gone for a second, a stream broken mid-way, a flapping
//! backend, slow readers, clients leaving the queue, a backend that is
//! `lb` itself, `max_connections` held. Each [`Case`]
//! states what must happen, does it to a real balancer process, and
//! measures what that process did through `/proc`: descriptors and
//! memory before and after, what each client saw, how long until
//! everything was freed.
//!
//! - `backend`, `client`: the suite's own backends and clients, well
//!   behaved and faulty, speaking a protocol of one-line requests;
//! - `subject`: the balancer under test, `lb` or step 08, as a process;
//! - `measure`: `/proc`: descriptors, memory, CPU, listen overflows (the
//!   readings of one process are `lab_tools::sys`'s);
//! - `cases`: the cases, at two sizes: small for `cargo test` (lb's tests
//!   in `balancer/tests/faults.rs` run every one), full for
//!   `scripts/faults.sh`, which runs the `faults` binary;
//! - `report`: figures and checks, printed the same way for both.

pub mod backend;
pub mod cases;
pub mod certs;
pub mod client;
pub mod conn;
pub mod measure;
mod pattern;
pub mod report;
pub mod subject;

pub use cases::{Case, Ctx, Size};
