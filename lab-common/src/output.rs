//! A child process's output, as text that grows and can be watched: how
//! the tests and the fault suite wait for a line a program prints.

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::watch;

/// Copies `pipe` (a child's stdout or stderr), line by line, into a
/// growing string that waiters can watch. Reading on keeps the child from
/// blocking on a full pipe.
pub fn watch_lines<R: AsyncRead + Unpin + Send + 'static>(
    pipe: R,
) -> watch::Receiver<String> {
    let (tx, rx) = watch::channel(String::new());
    tokio::spawn(async move {
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tx.send_modify(|all| {
                all.push_str(&line);
                all.push('\n');
            });
        }
    });
    rx
}
