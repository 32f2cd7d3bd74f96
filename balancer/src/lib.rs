//! `lb`: the lab's load balancer to keep.
//!
//! The first half of the lab rebuilt a balancer one idea per step; this
//! crate is where those ideas live together, one module per concern:
//!
//! - `config`: the TOML file and the flags, checked, as a [`Config`];
//! - `backend`: a backend and its live counters;
//! - `select`: the algorithms, pure, one file each;
//! - `health`: the up/down state of each backend, active checks and
//!   passive marks;
//! - `connect`: reaching a backend, TCP then TLS, within timeouts;
//! - `proxy`: one client, from choosing its backend to its last byte;
//! - `relay`: copying bytes both ways, with the idle and half-closed
//!   timeouts;
//! - this file: the accept loop, the connection limit and the drain.

pub mod backend;
pub mod config;
pub mod connect;
pub mod health;
pub mod select;

pub use config::Config;
