//! Health: whether each backend may take new clients.
//!
//! - `state`: the up/down state machine of one backend (rise/fall for
//!   active checks, failures/cooldown for passive marking). Pure: it is
//!   told what happened and when, and says whether the state changed.
//! - `checker`: the active checks, one task per backend, TCP connect or
//!   HTTP `GET`, spread over the interval.
//!
//! Passive marking happens in `proxy`, which reports each failed or
//! successful dial to the backend's state (`connection_failed`,
//! `connection_succeeded`). Whoever makes a [`Change`] logs it with
//! [`Change::log`], so every change of state is one line that reads the
//! same, wherever it was noticed.

mod checker;
mod state;

pub use checker::Checkers;
pub use state::{Change, ChangeKind, HealthRules, HealthState, Status};
