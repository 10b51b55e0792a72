//! Progress of long commands (`spawn --wait`, `delete`) on stderr. On a terminal, finished
//! steps stay as lines and the current wait is one line redrawn in place; elsewhere (logs,
//! CI) each step is one plain line and nothing is redrawn. stdout is never touched.

use std::io::{IsTerminal, Write};
use std::time::Instant;

pub struct Painter {
    tty: bool,
    started: Instant,
    /// A redrawn line is on screen and must be cleared before the next line.
    live: bool,
}

impl Painter {
    pub fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            started: Instant::now(),
            live: false,
        }
    }

    fn elapsed(&self) -> String {
        format!("{:.1}s", self.started.elapsed().as_secs_f64())
    }

    fn clear(&mut self, err: &mut impl Write) {
        if self.live {
            let _ = write!(err, "\r\x1b[2K");
            self.live = false;
        }
    }

    /// A step that happened: `stage` is one word (requested, booting, registered, ...).
    pub fn step(&mut self, stage: &str, detail: &str) {
        let elapsed = self.elapsed();
        let mut err = std::io::stderr().lock();
        self.clear(&mut err);
        let _ = writeln!(err, "{stage:<10} {detail} ({elapsed})");
    }

    /// Something worth knowing that is not a step (a zone without capacity, ...).
    pub fn note(&mut self, detail: &str) {
        let mut err = std::io::stderr().lock();
        self.clear(&mut err);
        let _ = writeln!(err, "           {detail}");
    }

    /// What is being waited for now; redrawn in place on a terminal, silent elsewhere.
    pub fn waiting(&mut self, detail: &str) {
        if !self.tty {
            return;
        }
        let elapsed = self.elapsed();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K…          {detail} ({elapsed})");
        let _ = err.flush();
        self.live = true;
    }

    /// Clears a redrawn line, if any.
    pub fn finish(&mut self) {
        let mut err = std::io::stderr().lock();
        self.clear(&mut err);
        let _ = err.flush();
    }
}

impl Drop for Painter {
    fn drop(&mut self) {
        self.finish();
    }
}
