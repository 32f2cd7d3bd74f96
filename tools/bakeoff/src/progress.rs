//! The progress line on stderr while the bake-off runs: rewritten in
//! place on a terminal, one line per step otherwise (a log, a CI job),
//! nothing at all in tests.

use std::io::{IsTerminal, Write};

/// Where progress goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// One line, rewritten in place.
    Terminal,
    /// A line per step, never per tick.
    Lines,
    Quiet,
}

impl Progress {
    /// [`Progress::Terminal`] if stderr is one, else [`Progress::Lines`].
    pub fn to_stderr() -> Progress {
        if std::io::stderr().is_terminal() {
            Progress::Terminal
        } else {
            Progress::Lines
        }
    }

    /// A new step begins.
    pub fn step(self, line: &str) {
        match self {
            Progress::Terminal => self.tick(line),
            Progress::Lines => eprintln!("{line}"),
            Progress::Quiet => {}
        }
    }

    /// The step goes on: only a terminal shows it.
    pub fn tick(self, line: &str) {
        if self == Progress::Terminal {
            let mut err = std::io::stderr().lock();
            // \r back to the start of the line, ESC[K clears the rest.
            let _ = write!(err, "\r{line}\x1b[K");
            let _ = err.flush();
        }
    }

    /// Clears the line, before the results are printed.
    pub fn finish(self) {
        if self == Progress::Terminal {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
        }
    }
}
