//! The end code of a connection: two letters saying who ended it and in
//! which phase, after HAProxy's termination state (`CD`: the client
//! aborted during the data). Every way a connection through `lb` can end
//! has exactly one code; the log line's `code`, the decision record and
//! `lb_connections_ended_total{code}` all use it.
//!
//! The first letter is who or what ended it:
//! `-` nobody (it finished), `C` the client, `S` the backend (the
//! server), `c` / `s` a timeout waiting on the client / the backend, `t`
//! a timeout where both sides were silent (one idle timer covers both
//! directions, so `lb` cannot tell whose turn it was and does not guess),
//! `N` no backend could take it, `R` a resource ran out (every backend
//! full for the whole queue timeout), `K` killed by `lb` (the end of the
//! drain, or of a removed backend's drain).
//!
//! The second is the phase: `H` the client's opening (its PROXY header
//! under `accept_proxy`, then its TLS handshake), `Q` waiting
//! in line for a full backend, `C` choosing and connecting to a backend,
//! `D` relaying data, `L` the last data (one side had finished), `-` it
//! finished.

use std::fmt;

/// The phase a connection is in; the second letter of its code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    Handshake,
    Queue,
    Connect,
    Data,
}

// ANCHOR: codes
/// How a connection ended. See the module's docs for the letters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndCode {
    /// `--`: both sides finished, every byte passed on.
    Finished,
    /// `CH`: the client's TLS handshake failed, or it left during it; or,
    /// under `accept_proxy`, its PROXY header was missing or invalid.
    ClientHandshake,
    /// `cH`: the client's TLS handshake (or PROXY header) ran out of
    /// time.
    ClientHandshakeTimeout,
    /// `NC`: no backend was up to try.
    NoBackend,
    /// `SC`: every backend tried refused or failed the connect (or the
    /// TLS handshake with it); the last failure was not a timeout.
    ConnectFailed,
    /// `sC`: every backend tried failed, the last by a connect timeout.
    ConnectTimeout,
    /// `RQ`: every backend full for the whole queue timeout (the client
    /// gets a reset).
    QueueTimeout,
    /// `CQ`: the client left (closed or reset) while it waited in line.
    ClientLeftQueue,
    /// `CD`: the client reset its connection, or failed, during data.
    ClientAborted,
    /// `SD`: the backend reset its connection, or failed, during data.
    BackendAborted,
    /// `tD`: no byte either way for the idle timeout.
    Idle,
    /// `cL`: the backend had finished; the client stayed silent for the
    /// half-closed timeout.
    ClientHalfClosed,
    /// `sL`: the client had finished; the backend stayed silent for the
    /// half-closed timeout.
    BackendHalfClosed,
    /// `KH`, `KQ`, `KC`, `KD`: cut by `lb` at the end of a drain, in
    /// that phase.
    Killed(Phase),
}
// ANCHOR_END: codes

impl EndCode {
    /// Every code, in the order of the table in the docs.
    pub const ALL: [EndCode; 17] = [
        EndCode::Finished,
        EndCode::ClientHandshake,
        EndCode::ClientHandshakeTimeout,
        EndCode::NoBackend,
        EndCode::ConnectFailed,
        EndCode::ConnectTimeout,
        EndCode::QueueTimeout,
        EndCode::ClientLeftQueue,
        EndCode::ClientAborted,
        EndCode::BackendAborted,
        EndCode::Idle,
        EndCode::ClientHalfClosed,
        EndCode::BackendHalfClosed,
        EndCode::Killed(Phase::Handshake),
        EndCode::Killed(Phase::Queue),
        EndCode::Killed(Phase::Connect),
        EndCode::Killed(Phase::Data),
    ];

    /// Its two letters.
    pub fn as_str(self) -> &'static str {
        match self {
            EndCode::Finished => "--",
            EndCode::ClientHandshake => "CH",
            EndCode::ClientHandshakeTimeout => "cH",
            EndCode::NoBackend => "NC",
            EndCode::ConnectFailed => "SC",
            EndCode::ConnectTimeout => "sC",
            EndCode::QueueTimeout => "RQ",
            EndCode::ClientLeftQueue => "CQ",
            EndCode::ClientAborted => "CD",
            EndCode::BackendAborted => "SD",
            EndCode::Idle => "tD",
            EndCode::ClientHalfClosed => "cL",
            EndCode::BackendHalfClosed => "sL",
            EndCode::Killed(Phase::Handshake) => "KH",
            EndCode::Killed(Phase::Queue) => "KQ",
            EndCode::Killed(Phase::Connect) => "KC",
            EndCode::Killed(Phase::Data) => "KD",
        }
    }

    /// What it means, in a few words (the table in `lb --help`).
    pub fn meaning(self) -> &'static str {
        match self {
            EndCode::Finished => {
                "finished: both sides ended, every byte passed"
            }
            EndCode::ClientHandshake => {
                "the client's TLS handshake or PROXY header failed, or it \
                 left during it"
            }
            EndCode::ClientHandshakeTimeout => {
                "the client's TLS handshake or PROXY header ran out of time"
            }
            EndCode::NoBackend => "no backend was up to try",
            EndCode::ConnectFailed => {
                "every backend tried refused or failed the connect"
            }
            EndCode::ConnectTimeout => {
                "every backend tried failed, the last by a connect timeout"
            }
            EndCode::QueueTimeout => {
                "every backend full for the whole queue timeout (reset)"
            }
            EndCode::ClientLeftQueue => {
                "the client left while it waited in line (its place is freed)"
            }
            EndCode::ClientAborted => "the client reset or failed during data",
            EndCode::BackendAborted => {
                "the backend reset or failed during data"
            }
            EndCode::Idle => {
                "idle timeout: no byte either way (either side may be the \
                 silent one)"
            }
            EndCode::ClientHalfClosed => {
                "half-closed timeout: the backend had finished, the client \
                 stayed silent"
            }
            EndCode::BackendHalfClosed => {
                "half-closed timeout: the client had finished, the backend \
                 stayed silent"
            }
            EndCode::Killed(Phase::Handshake) => {
                "cut by the end of the drain during the client's handshake"
            }
            EndCode::Killed(Phase::Queue) => {
                "cut by the end of the drain while waiting in line"
            }
            EndCode::Killed(Phase::Connect) => {
                "cut by the end of the drain while connecting"
            }
            EndCode::Killed(Phase::Data) => {
                "cut by the end of the drain (lb's, or a removed backend's) \
                 during data"
            }
        }
    }

    /// Its place in [`EndCode::ALL`], for an array of counters.
    pub fn index(self) -> usize {
        EndCode::ALL
            .iter()
            .position(|&code| code == self)
            .expect("every code is in ALL")
    }

    /// The table of codes, one per line, as `lb --help` prints it.
    pub fn table() -> String {
        EndCode::ALL
            .iter()
            .map(|code| format!("  {}  {}\n", code.as_str(), code.meaning()))
            .collect()
    }
}

impl fmt::Display for EndCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_two_letters_of_its_own() {
        let mut seen = std::collections::HashSet::new();
        for (i, code) in EndCode::ALL.iter().enumerate() {
            assert_eq!(code.as_str().len(), 2, "{code:?}");
            assert!(seen.insert(code.as_str()), "{code} twice");
            assert_eq!(code.index(), i);
        }
    }
}
