//! A one-line progress bar on standard error, shown only on a terminal (never on a pipe or
//! with `--json`).

use std::io::{IsTerminal, Write};

use tsim_protocol::Event;

/// A progress bar, or nothing when standard error is not a terminal.
#[derive(Debug)]
pub struct Bar {
    label: String,
    active: bool,
    drawn: bool,
}

impl Bar {
    /// A bar labelled `label`, shown if `wanted` and standard error is a terminal.
    pub fn new(label: &str, wanted: bool) -> Self {
        Self {
            label: label.to_owned(),
            active: wanted && std::io::stderr().is_terminal(),
            drawn: false,
        }
    }

    /// Whether the bar shows anything (so progress events are worth asking for).
    pub fn active(&self) -> bool {
        self.active
    }

    /// Draws an event.
    pub fn update(&mut self, event: &Event) {
        if !self.active || event.total == 0 {
            return;
        }
        const WIDTH: usize = 30;
        let filled = (event.done as usize * WIDTH / event.total as usize).min(WIDTH);
        let line = format!(
            "\r{} [{}{}] {}/{} {:<16}",
            self.label,
            "#".repeat(filled),
            "-".repeat(WIDTH - filled),
            event.done,
            event.total,
            event.stage
        );
        let mut err = std::io::stderr();
        let _ = err.write_all(line.as_bytes());
        let _ = err.flush();
        self.drawn = true;
    }

    /// Clears the line.
    pub fn finish(&mut self) {
        if self.drawn {
            let mut err = std::io::stderr();
            let _ = write!(err, "\r{:80}\r", "");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}
