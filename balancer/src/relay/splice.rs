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
//! back as soon as the source has nothing more for now. An idle
//! connection holds no pipe. At most `[limits] splice_pipes` pipes exist;
//! a direction that finds none free relays buffered, as it would without
//! them.
//!
//! One rule removes the ambiguity of `EAGAIN`, which a non-blocking
//! splice returns both when the source socket is empty and when the pipe
//! is full: bytes go into the pipe only while it is empty, and come out
//! until it is empty again (as Go's `io.Copy` does). An `EAGAIN` on the
//! way in then always means the socket is empty: the pause at which the
//! pipe goes back.

use std::os::fd::OwnedFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The pipes of a balancer: made on demand up to a cap, lent to
/// streaming directions, kept for the next one when given back.
#[derive(Debug)]
pub struct Pipes {
    /// Pipes that may exist at once (`limits.splice_pipes`; 0: off).
    cap: usize,
    pool: Mutex<Pool>,
    /// Lent now (a gauge on `/metrics`).
    lent: AtomicUsize,
    /// Lent so far, ever (a counter on `/metrics`).
    leases: AtomicU64,
}

#[derive(Debug, Default)]
struct Pool {
    /// Empty pipes waiting for a direction.
    idle: Vec<Pipe>,
    /// Pipes open now, lent or idle: never more than the cap.
    made: usize,
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
            pool: Mutex::new(Pool::default()),
            lent: AtomicUsize::new(0),
            leases: AtomicU64::new(0),
        }
    }

    /// Pipes lent to directions now.
    pub fn lent(&self) -> usize {
        self.lent.load(Ordering::Relaxed)
    }

    /// Empty pipes kept for the next direction that streams.
    pub fn pooled(&self) -> usize {
        self.pool.lock().expect("not poisoned").idle.len()
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
        /// allows one: an idle one, or a new one.
        pub fn take(self: &Arc<Pipes>) -> Option<Lease> {
            if self.cap == 0 {
                return None;
            }
            let pipe = {
                let mut pool = self.pool.lock().expect("not poisoned");
                match pool.idle.pop() {
                    Some(pipe) => Some(pipe),
                    None if pool.made < self.cap => {
                        // Counted before it is made, so that two
                        // directions cannot both pass the cap.
                        pool.made += 1;
                        None
                    }
                    None => return None,
                }
            };
            let pipe = match pipe {
                Some(pipe) => pipe,
                None => match Pipe::open() {
                    Ok(pipe) => pipe,
                    Err(err) => {
                        // Out of descriptors, most likely: relay
                        // buffered, and try again at the next burst.
                        debug!("no splice pipe: {err}");
                        self.pool.lock().expect("not poisoned").made -= 1;
                        return None;
                    }
                },
            };
            self.lent.fetch_add(1, Ordering::Relaxed);
            self.leases.fetch_add(1, Ordering::Relaxed);
            Some(Lease {
                pipe: Some(pipe),
                pipes: self.clone(),
                held: 0,
            })
        }
    }

    /// A pipe lent to one direction. Dropped, it goes back to the pool
    /// if empty; a pipe still holding bytes (its destination failed, or
    /// the relay was cut) is closed instead, so that no stale bytes
    /// reach the next connection.
    #[derive(Debug)]
    pub struct Lease {
        /// Always there until the lease is dropped.
        pipe: Option<Pipe>,
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
        fn pipe(&self) -> &Pipe {
            self.pipe
                .as_ref()
                .expect("a lease holds its pipe until dropped")
        }

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
                    let pipe = self.pipe();
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
                    let pipe = self.pipe();
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
            let pipe = self.pipe.take().expect("dropped once");
            self.pipes.lent.fetch_sub(1, Ordering::Relaxed);
            let mut pool = self.pipes.pool.lock().expect("not poisoned");
            if self.held == 0 {
                pool.idle.push(pipe);
            } else {
                pool.made -= 1;
                drop(pool);
                drop(pipe);
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use std::os::fd::AsRawFd;

        use super::*;

        #[test]
        fn no_more_pipes_than_the_cap_and_an_empty_one_is_kept() {
            let pipes = Arc::new(Pipes::new(2));
            let one = pipes.take().expect("under the cap");
            let two = pipes.take().expect("at the cap");
            assert!(pipes.take().is_none(), "past the cap");
            assert_eq!(pipes.lent(), 2);
            let first = one.pipe().out.as_raw_fd();
            drop(one);
            assert_eq!((pipes.lent(), pipes.pooled()), (1, 1));
            let again = pipes.take().expect("the pooled one");
            assert_eq!(again.pipe().out.as_raw_fd(), first, "the same pipe");
            drop((two, again));
            assert_eq!(
                (pipes.lent(), pipes.pooled(), pipes.leases()),
                (0, 2, 3)
            );
        }

        #[test]
        fn a_pipe_left_holding_bytes_is_closed_not_kept() {
            let pipes = Arc::new(Pipes::new(1));
            let mut lease = pipes.take().expect("under the cap");
            // As if the destination failed with bytes still in the pipe.
            let stale = b"stale";
            let n = rustix::io::write(&lease.pipe().into, stale).unwrap();
            lease.held = n;
            drop(lease);
            assert_eq!((pipes.lent(), pipes.pooled()), (0, 0), "not kept");
            // Its place under the cap is free: a new, empty pipe.
            let fresh = pipes.take().expect("the closed pipe's place");
            let mut buffer = [0u8; 8];
            let read = rustix::io::read(&fresh.pipe().out, &mut buffer);
            assert_eq!(read, Err(rustix::io::Errno::AGAIN), "empty");
        }
    }
}
