//! Upgrading without a restart: the running `lb` hands its listening
//! sockets, and what it knows of its backends, to a new process (a new
//! binary, typically) over a Unix socket (`[upgrade] socket`).
//!
//! The listening socket itself is passed (`SCM_RIGHTS`), never closed and
//! never bound a second time: the kernel's accept queue stays open the
//! whole time, so no client's connect is refused or reset in between.
//! The new process starts accepting first, and only then tells the old
//! one, which stops accepting, drains its connections under its `drain`
//! timeout and exits 0. Until then the old one serves as before, so an
//! upgrade that fails (a bad config, a new process that dies) changes
//! nothing.
//!
//! The conversation, one line each way but for the sockets:
//!
//! ```text
//! new → old   upgrade
//! old → new   one byte, with the listening sockets attached (main first,
//!             then admin if any); then one line of JSON: the sockets'
//!             names and the backends' state by id
//! new → old   ready          (the new one accepts on the sockets now)
//! old → new   bye            (the old one no longer holds the upgrade
//!                             socket: the new one binds it in turn)
//! ```

use std::io::{BufRead, BufReader, IoSlice, IoSliceMut, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use serde::{Deserialize, Serialize};
use tokio::net::UnixListener;
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::live::Snapshot;

/// What the old process says besides the sockets.
#[derive(Debug, Serialize, Deserialize)]
struct Handover {
    /// What each socket passed is, in order: `main`, `admin`.
    listeners: Vec<String>,
    backends: Vec<Snapshot>,
}

/// What a new process takes over.
#[derive(Debug)]
pub struct TakenOver {
    pub main: std::net::TcpListener,
    pub admin: Option<std::net::TcpListener>,
    pub backends: Vec<Snapshot>,
    /// The conversation, to say `ready` once accepting.
    stream: UnixStream,
}

/// How long the old process waits for each answer of the new one.
const HANDOVER_TIMEOUT: std::time::Duration =
    std::time::Duration::from_secs(30);

/// At most this many sockets are passed.
const MAX_SOCKETS: usize = 4;

// ANCHOR: take_over
/// The new process's side: asks the `lb` at `socket` for its listening
/// sockets and its backends' state.
pub fn take_over(socket: &Path) -> Result<TakenOver, String> {
    let failed =
        |what: &str, err: std::io::Error| format!("upgrade: {what}: {err}");
    let mut stream = UnixStream::connect(socket).map_err(|err| {
        format!(
            "upgrade: cannot reach the running lb at {}: {err} (is it \
             running, with this [upgrade] socket?)",
            socket.display()
        )
    })?;
    stream
        .write_all(b"upgrade\n")
        .map_err(|err| failed("asking", err))?;
    let fds = receive_fds(&stream).map_err(|err| failed("receiving", err))?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(|err| failed("reading the handover", err))?;
    let handover: Handover = serde_json::from_str(&line)
        .map_err(|err| format!("upgrade: a handover I cannot read: {err}"))?;
    if handover.listeners.len() != fds.len() {
        return Err(format!(
            "upgrade: {} sockets named but {} passed",
            handover.listeners.len(),
            fds.len()
        ));
    }
    let (mut main, mut admin) = (None, None);
    for (name, fd) in handover.listeners.iter().zip(fds) {
        let listener = std::net::TcpListener::from(fd);
        listener
            .set_nonblocking(true)
            .map_err(|err| failed("the passed socket", err))?;
        match name.as_str() {
            "main" => main = Some(listener),
            "admin" => admin = Some(listener),
            other => {
                return Err(format!("upgrade: an unknown socket `{other}`"));
            }
        }
    }
    let main = main.ok_or("upgrade: no main listener was passed")?;
    Ok(TakenOver {
        main,
        admin,
        backends: handover.backends,
        stream,
    })
}

impl TakenOver {
    /// Tells the old process that this one accepts now, and waits until
    /// it has let go of the upgrade socket.
    pub fn ready(mut self) -> Result<(), String> {
        self.stream
            .write_all(b"ready\n")
            .map_err(|err| format!("upgrade: saying ready: {err}"))?;
        let mut line = String::new();
        BufReader::new(&self.stream)
            .read_line(&mut line)
            .map_err(|err| format!("upgrade: waiting for bye: {err}"))?;
        if line.trim() != "bye" {
            return Err(format!(
                "upgrade: expected bye, got `{}`",
                line.trim()
            ));
        }
        Ok(())
    }
}
// ANCHOR_END: take_over

fn receive_fds(stream: &UnixStream) -> std::io::Result<Vec<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut space =
        [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let received = rustix::net::recvmsg(
        stream,
        &mut [IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    if received.bytes != 1 {
        return Err(std::io::Error::other("the old process hung up"));
    }
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(passed) = message {
            fds.extend(passed);
        }
    }
    Ok(fds)
}

/// The running process's side: the sockets it can hand over, and what
/// it says of its backends when asked.
pub struct Offer {
    /// Copies of the listening sockets (the same sockets, not new ones):
    /// main first, then admin.
    pub sockets: Vec<(String, OwnedFd)>,
    pub snapshot: Box<dyn Fn() -> Vec<Snapshot> + Send + Sync>,
}

// ANCHOR: serve_upgrades
/// Listens on `listener` (bound at `path` by [`bind`]) for a new
/// process. When one has taken the sockets over and accepts on them,
/// returns: the caller then stops accepting and drains. A new process
/// that fails halfway is logged, and the next one may try.
pub async fn serve_upgrades(
    listener: UnixListener,
    path: &Path,
    offer: Offer,
    done: oneshot::Sender<()>,
) -> Result<(), String> {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                warn!("upgrade socket: accept failed: {err}");
                continue;
            }
        };
        let stream = stream
            .into_std()
            .and_then(|stream| {
                stream.set_nonblocking(false)?;
                Ok(stream)
            })
            .map_err(|err| format!("upgrade socket: {err}"))?;
        let sockets: Vec<(String, OwnedFd)> = offer
            .sockets
            .iter()
            .map(|(name, fd)| Ok((name.clone(), fd.try_clone()?)))
            .collect::<std::io::Result<_>>()
            .map_err(|err| format!("upgrade socket: {err}"))?;
        let backends = (offer.snapshot)();
        let handed = tokio::task::spawn_blocking(move || {
            hand_over(stream, sockets, backends)
        })
        .await
        .map_err(|err| format!("upgrade: {err}"))?;
        match handed {
            Ok(stream) => {
                info!("upgrade: a new process accepts now; draining");
                // Let go of the path before saying bye: the new process
                // binds it next.
                drop(listener);
                let _ = std::fs::remove_file(path);
                let _ = tokio::task::spawn_blocking(move || {
                    let mut stream = stream;
                    stream.write_all(b"bye\n")
                })
                .await;
                let _ = done.send(());
                return Ok(());
            }
            Err(err) => {
                warn!("upgrade abandoned: {err}; still serving");
            }
        }
    }
}
// ANCHOR_END: serve_upgrades

/// Binds the upgrade socket at `path`. A file left there by a process
/// that is gone is removed first; one that a live `lb` answers on is not.
pub fn bind(path: &Path) -> Result<UnixListener, String> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(format!(
                "upgrade socket {}: another lb is listening on it",
                path.display()
            ));
        }
        let _ = std::fs::remove_file(path);
    }
    UnixListener::bind(path).map_err(|err| {
        format!(
            "cannot listen on the upgrade socket {}: {err}",
            path.display()
        )
    })
}

/// One handover, blocking: the sockets and the state, then the new
/// process's `ready`. Returns the stream to say `bye` on.
fn hand_over(
    mut stream: UnixStream,
    sockets: Vec<(String, OwnedFd)>,
    backends: Vec<Snapshot>,
) -> Result<UnixStream, String> {
    // A new process that never answers must not hold this one's upgrade
    // socket forever.
    stream
        .set_read_timeout(Some(HANDOVER_TIMEOUT))
        .map_err(|err| err.to_string())?;
    let mut line = String::new();
    let mut reader =
        BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    reader.read_line(&mut line).map_err(|err| err.to_string())?;
    if line.trim() != "upgrade" {
        return Err(format!("expected `upgrade`, got `{}`", line.trim()));
    }
    let fds: Vec<_> = sockets.iter().map(|(_, fd)| fd.as_fd()).collect();
    let mut space =
        [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err("too many sockets to pass".to_owned());
    }
    rustix::net::sendmsg(
        &stream,
        &[IoSlice::new(b"F")],
        &mut control,
        SendFlags::empty(),
    )
    .map_err(|err| format!("passing the sockets: {err}"))?;
    let handover = Handover {
        listeners: sockets.iter().map(|(name, _)| name.clone()).collect(),
        backends,
    };
    let mut json =
        serde_json::to_string(&handover).map_err(|e| e.to_string())?;
    json.push('\n');
    stream
        .write_all(json.as_bytes())
        .map_err(|err| format!("sending the state: {err}"))?;
    line.clear();
    reader
        .read_line(&mut line)
        .map_err(|err| format!("waiting for ready: {err}"))?;
    if line.trim() != "ready" {
        return Err(if line.is_empty() {
            "the new process hung up before it was ready".to_owned()
        } else {
            format!("expected `ready`, got `{}`", line.trim())
        });
    }
    Ok(stream)
}
