//! Fault modes: a backend that fails on purpose, so that a learner can
//! watch a balancer react.
//!
//! Each backend has one mode at a time, set at run time on its own port:
//!
//! ```text
//! curl -X POST localhost:4445/fault/stall    # now stall
//! curl localhost:4445/fault                  # prints "stall"
//! curl -X POST localhost:4445/fault/none     # normal again
//! ```
//!
//! The `/fault` routes are always answered, whatever the mode; every other
//! request goes through [`apply`] first.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use crate::{Backend, MAX_DELAY_MS};

/// How a backend misbehaves. Set with `POST /fault/MODE`, read with
/// `GET /fault`; the text form (`none`, `slow/300`) is the `MODE`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fault {
    /// Normal: every request is answered as usual.
    #[default]
    None,
    /// `/health` answers `503 Service Unavailable`; everything else as
    /// usual. What an HTTP health check should notice.
    Unhealthy,
    /// Every request is read and never answered (`/health` too): the
    /// client waits until it gives up. A stalled connection is closed,
    /// still without an answer, when the backend leaves this mode.
    Stall,
    /// Every answer waits this long first (`slow/MS`, in milliseconds).
    Slow(Duration),
    /// Every request gets its connection closed, without a byte of answer.
    Close,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::None => f.write_str("none"),
            Fault::Unhealthy => f.write_str("unhealthy"),
            Fault::Stall => f.write_str("stall"),
            Fault::Slow(delay) => write!(f, "slow/{}", delay.as_millis()),
            Fault::Close => f.write_str("close"),
        }
    }
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(mode: &str) -> Result<Fault, String> {
        match mode {
            "none" => Ok(Fault::None),
            "unhealthy" => Ok(Fault::Unhealthy),
            "stall" => Ok(Fault::Stall),
            "close" => Ok(Fault::Close),
            _ => match mode.strip_prefix("slow/") {
                Some(ms) => parse_delay(ms).map(Fault::Slow),
                None => Err(format!(
                    "unknown fault mode \"{mode}\": one of none, unhealthy, \
                     stall, slow/MS, close"
                )),
            },
        }
    }
}

fn parse_delay(ms: &str) -> Result<Duration, String> {
    match ms.parse::<u64>() {
        Ok(ms) if ms <= MAX_DELAY_MS => Ok(Duration::from_millis(ms)),
        Ok(_) => Err(format!("slow/MS: at most {MAX_DELAY_MS} ms")),
        Err(_) => Err(format!(
            "slow/MS wants a number of milliseconds, e.g. slow/500, \
             not slow/{ms}"
        )),
    }
}

/// Whether `path` is one of the routes that set or show the mode, which
/// no mode may touch: a stalled backend must still be told to recover.
pub(crate) fn is_fault_route(path: &str) -> bool {
    path == "/fault" || path.starts_with("/fault/")
}

/// `GET /fault`: the current mode, e.g. `slow/300`.
pub(crate) async fn show(State(backend): State<Arc<Backend>>) -> String {
    format!("{}\n", backend.fault())
}

/// `POST /fault/MODE`: sets the mode and says what it was.
pub(crate) async fn set(
    State(backend): State<Arc<Backend>>,
    Path(mode): Path<String>,
) -> Response {
    match mode.parse::<Fault>() {
        Ok(fault) => {
            let was = backend.set_fault(fault);
            format!("{}: fault {fault} (was {was})\n", backend.name())
                .into_response()
        }
        Err(err) => {
            (StatusCode::BAD_REQUEST, format!("{err}\n")).into_response()
        }
    }
}

/// Why a request got no answer: hyper closes the connection when the
/// service returns an error, without writing a response.
#[derive(Debug)]
pub(crate) struct NoAnswer(Fault);

impl fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "closed without an answer (fault mode {})", self.0)
    }
}

impl std::error::Error for NoAnswer {}

/// What the backend's mode does to `request` before the routes see it:
/// `Ok(None)` to pass it on (a slow mode has waited first), `Ok(Some)`
/// for an answer made here, `Err` to close the connection unanswered.
pub(crate) async fn apply(
    backend: &Backend,
    request: &mut Request<Body>,
) -> Result<Option<Response>, NoAnswer> {
    if is_fault_route(request.uri().path()) {
        return Ok(None);
    }
    match backend.fault() {
        Fault::None => Ok(None),
        Fault::Unhealthy if request.uri().path() == "/health" => {
            let answer = (StatusCode::SERVICE_UNAVAILABLE, "unhealthy\n");
            Ok(Some(answer.into_response()))
        }
        Fault::Unhealthy => Ok(None),
        Fault::Slow(delay) => {
            tokio::time::sleep(delay).await;
            Ok(None)
        }
        Fault::Close => Err(NoAnswer(Fault::Close)),
        Fault::Stall => {
            // Read the whole request, so the client is not held up
            // sending it: it waits for an answer, as a client of a hung
            // server does.
            let body = std::mem::replace(request.body_mut(), Body::empty());
            let mut body = body.into_data_stream();
            while let Some(Ok(_)) = body.next().await {}
            // Hold the connection until the mode changes (or the backend
            // stops), so that stalled connections do not pile up forever
            // once the learner has moved on.
            let mut mode = backend.watch_fault();
            let _ = mode.wait_for(|fault| *fault != Fault::Stall).await;
            Err(NoAnswer(Fault::Stall))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_reads_back_as_it_is_written() {
        for mode in
            ["none", "unhealthy", "stall", "slow/0", "slow/250", "close"]
        {
            let fault: Fault = mode.parse().unwrap();
            assert_eq!(fault.to_string(), mode);
        }
        assert_eq!(
            "slow/250".parse::<Fault>(),
            Ok(Fault::Slow(Duration::from_millis(250)))
        );
    }

    #[test]
    fn a_bad_mode_says_what_would_do() {
        let err = "stalled".parse::<Fault>().unwrap_err();
        assert_eq!(
            err,
            "unknown fault mode \"stalled\": one of none, unhealthy, stall, \
             slow/MS, close"
        );
        let err = "slow/soon".parse::<Fault>().unwrap_err();
        assert!(err.contains("e.g. slow/500, not slow/soon"), "{err}");
        let err = "slow/600001".parse::<Fault>().unwrap_err();
        assert_eq!(err, "slow/MS: at most 600000 ms");
        assert!("slow/".parse::<Fault>().is_err());
        assert!("slow".parse::<Fault>().is_err());
        assert!("".parse::<Fault>().is_err());
    }

    #[test]
    fn only_the_fault_routes_escape_the_mode() {
        assert!(is_fault_route("/fault"));
        assert!(is_fault_route("/fault/stall"));
        assert!(!is_fault_route("/faults"));
        assert!(!is_fault_route("/health"));
        assert!(!is_fault_route("/"));
    }
}
