//! Splicing: a streaming direction between two plain TCP sockets relayed
//! through a kernel pipe, on Linux, so that its bytes never come up into
//! `lb`'s memory; and the pool of pipes the directions borrow.
//!
//! splice(2) moves bytes between a descriptor and a pipe inside the
//! kernel: from the source socket into the pipe, then from the pipe to
//! the destination socket. The buffered relay copies every byte into a
//! userspace buffer and out of it again.
//!
//! A pipe costs two descriptors, and descriptors are what a balancer
//! runs out of first: a relay holding a pipe per direction needs six per
//! connection instead of two. So pipes are lent as the big buffers are
//! (`buffer.rs`): a direction waits with its small buffer, takes a pipe
//! when a read fills that buffer (the stream is flowing), and gives it
//! back as soon as the source has nothing more for now. A pipe given back
//! is closed, not kept: an idle connection holds no pipe, and neither
//! does an idle `lb`, whose descriptors are then two per client and its
//! listeners, whatever streamed before. Making one costs two system calls
//! (pipe2, and fcntl for its size) per burst, against the hundreds of
//! splices a burst takes. At most `[limits] splice_pipes` pipes are lent
//! at once; a direction that finds none free relays buffered, as it
//! would without them.
//!
//! One rule removes the ambiguity of `EAGAIN`, which a non-blocking
//! splice returns both when the source socket is empty and when the pipe
//! is full: bytes go into the pipe only while it is empty, and come out
//! until it is empty again (as Go's `io.Copy` does). An `EAGAIN` on the
//! way in then always means the socket is empty: the pause at which the
//! pipe goes back.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The pipes of a balancer: made for a streaming direction, closed when
/// it gives its pipe back, at most `cap` at once.
#[derive(Debug)]
pub struct Pipes {
    /// Pipes that may be lent at once (`limits.splice_pipes`; 0: off).
    cap: usize,
    /// Lent now (a gauge on `/metrics`).
    lent: AtomicUsize,
    /// Lent so far, ever (a counter on `/metrics`).
    leases: AtomicU64,
}

/// One kernel pipe: its two ends, and how many bytes it holds.
#[derive(Debug)]
struct Pipe {
    /// The end bytes are spliced out of.
    out: OwnedFd,
    /// The end bytes are spliced into.
    into: OwnedFd,
    /// Its capacity in bytes.
    room: usize,
}

impl Pipes {
    pub fn new(cap: usize) -> Pipes {
        Pipes {
            cap,
            lent: AtomicUsize::new(0),
            leases: AtomicU64::new(0),
        }
    }

    /// Pipes lent to directions now.
    pub fn lent(&self) -> usize {
        self.lent.load(Ordering::Relaxed)
    }

    /// Pipes lent since the start.
    pub fn leases(&self) -> u64 {
        self.leases.load(Ordering::Relaxed)
    }
}

#[cfg(target_os = "linux")]
pub use linux::{Lease, Spliced};

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::task::{Context, Poll, ready};

    use rustix::pipe::{PipeFlags, SpliceFlags};
    use tokio::io::Interest;
    use tokio::net::TcpStream;
    use tracing::debug;

    use super::{Pipe, Pipes};
    use crate::relay::Failure;

    /// The size asked of each pipe. Linux's default is 64 KiB (16
    /// pages); a bigger pipe moves more per system call. If the kernel
    /// refuses (an unprivileged user past `fs.pipe-user-pages-soft`),
    /// the pipe keeps the size it has.
    const PIPE_SIZE: usize = 256 * 1024;

    /// `NONBLOCK`: the pipe's side must not block either (the socket's
    /// is non-blocking already). `MOVE`: move pages rather than copy
    /// them where the kernel can.
    const FLAGS: SpliceFlags = SpliceFlags::NONBLOCK.union(SpliceFlags::MOVE);

    impl Pipe {
        fn open() -> io::Result<Pipe> {
            // Close-on-exec: a new `lb` started by an upgrade must not
            // inherit them.
            let flags = PipeFlags::CLOEXEC | PipeFlags::NONBLOCK;
            let (out, into) = rustix::pipe::pipe_with(flags)?;
            let room = match rustix::pipe::fcntl_setpipe_size(&into, PIPE_SIZE)
            {
                Ok(room) => room,
                Err(_) => rustix::pipe::fcntl_getpipe_size(&into)?,
            };
            Ok(Pipe { out, into, room })
        }
    }

    impl Pipes {
        /// A pipe for a direction that starts streaming, if the cap
        /// allows one more.
        pub fn take(self: &Arc<Pipes>) -> Option<Lease> {
            // Counted before the pipe is made, so that two directions
            // cannot both pass the cap.
            let under_cap = self.lent.fetch_update(
                Ordering::AcqRel,
                Ordering::Acquire,
                |lent| (lent < self.cap).then_some(lent + 1),
            );
            if under_cap.is_err() {
                return None;
            }
            match Pipe::open() {
                Ok(pipe) => {
                    self.leases.fetch_add(1, Ordering::Relaxed);
                    Some(Lease {
                        pipe,
                        pipes: self.clone(),
                        held: 0,
                    })
                }
                Err(err) => {
                    // Out of descriptors, most likely: relay buffered,
                    // and try again at the next burst.
                    debug!("no splice pipe: {err}");
                    self.lent.fetch_sub(1, Ordering::Release);
                    None
                }
            }
        }
    }

    /// A pipe lent to one direction, closed when dropped (bytes still
    /// in it, if its destination failed or the relay was cut, go with
    /// it).
    #[derive(Debug)]
    pub struct Lease {
        pipe: Pipe,
        pipes: Arc<Pipes>,
        /// Bytes spliced in and not yet out.
        held: usize,
    }

    /// Where a spliced direction stopped.
    #[derive(Debug, PartialEq, Eq)]
    pub enum Spliced {
        /// The source has nothing more for now, and the pipe is empty:
        /// time to give it back.
        Paused,
        /// The source ended, and every byte before its end is out.
        Ended,
    }

    impl Lease {
        /// Moves bytes from `from` through the pipe to `to` until the
        /// source pauses or ends, adding what it writes to `bytes` and
        /// setting `moved` when anything moves.
        pub(in crate::relay) fn poll_relay(
            &mut self,
            cx: &mut Context<'_>,
            from: &TcpStream,
            to: &TcpStream,
            bytes: &mut u64,
            moved: &mut bool,
        ) -> Poll<Result<Spliced, Failure>> {
            loop {
                if self.held > 0 {
                    // Out until the pipe is empty. tokio's readiness says
                    // when to try; `try_io` forgets it on `EAGAIN`, so
                    // the next poll waits for the socket to have room.
                    ready!(to.poll_write_ready(cx)).map_err(Failure::Write)?;
                    let pipe = &self.pipe;
                    let out = to.try_io(Interest::WRITABLE, || {
                        rustix::pipe::splice(
                            &pipe.out, None, to, None, self.held, FLAGS,
                        )
                        .map_err(io::Error::from)
                    });
                    match out {
                        Ok(0) => {
                            let err = io::ErrorKind::WriteZero.into();
                            return Poll::Ready(Err(Failure::Write(err)));
                        }
                        Ok(n) => {
                            self.held -= n;
                            *bytes += n as u64;
                            *moved = true;
                        }
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                        }
                        Err(err) => {
                            return Poll::Ready(Err(Failure::Write(err)));
                        }
                    }
                } else {
                    // In only while the pipe is empty: `EAGAIN` can then
                    // only mean that the socket is.
                    ready!(from.poll_read_ready(cx)).map_err(Failure::Read)?;
                    let pipe = &self.pipe;
                    let into = from.try_io(Interest::READABLE, || {
                        rustix::pipe::splice(
                            from, None, &pipe.into, None, pipe.room, FLAGS,
                        )
                        .map_err(io::Error::from)
                    });
                    match into {
                        Ok(0) => return Poll::Ready(Ok(Spliced::Ended)),
                        Ok(n) => {
                            self.held = n;
                            *moved = true;
                        }
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                            return Poll::Ready(Ok(Spliced::Paused));
                        }
                        Err(err) => {
                            return Poll::Ready(Err(Failure::Read(err)));
                        }
                    }
                }
            }
        }
    }

    impl Drop for Lease {
        fn drop(&mut self) {
            self.pipes.lent.fetch_sub(1, Ordering::Release);
        }
    }

    #[cfg(test)]
    mod tests {

        use super::*;

        #[test]
        fn no_more_pipes_than_the_cap_and_one_given_back_is_closed() {
            let pipes = Arc::new(Pipes::new(2));
            let one = pipes.take().expect("under the cap");
            let two = pipes.take().expect("at the cap");
            assert!(pipes.take().is_none(), "past the cap");
            assert_eq!(pipes.lent(), 2);
            let end = one.pipe.out.try_clone().expect("a second descriptor");
            drop(one);
            // The write end is closed with the lease: reading the pipe
            // through the descriptor kept here finds its end.
            let mut buffer = [0u8; 8];
            assert_eq!(rustix::io::read(&end, &mut buffer), Ok(0), "closed");
            assert_eq!(pipes.lent(), 1);
            let again = pipes.take().expect("the closed pipe's place");
            drop((two, again));
            assert_eq!((pipes.lent(), pipes.leases()), (0, 3));
        }

        #[test]
        fn a_new_pipe_is_empty_though_the_last_held_bytes() {
            let pipes = Arc::new(Pipes::new(1));
            let mut lease = pipes.take().expect("under the cap");
            // As if the destination failed with bytes still in the pipe.
            let stale = b"stale";
            let n = rustix::io::write(&lease.pipe.into, stale).unwrap();
            lease.held = n;
            drop(lease);
            let fresh = pipes.take().expect("the closed pipe's place");
            let mut buffer = [0u8; 8];
            let read = rustix::io::read(&fresh.pipe.out, &mut buffer);
            assert_eq!(read, Err(rustix::io::Errno::AGAIN), "empty");
        }
    }
}
