//! Progress bars on stderr, one per phase, drawn only when asked (a TTY
//! and no --quiet); every phase is timed either way.

use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

/// How long a phase took.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseTime {
    /// Phase name.
    pub name: String,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// The set of bars for one run.
pub struct Progress {
    multi: MultiProgress,
}

impl Progress {
    /// Bars drawn on stderr when `visible`, hidden otherwise.
    pub fn new(visible: bool) -> Progress {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Progress {
            multi: MultiProgress::with_draw_target(target),
        }
    }

    /// Starts a phase of `total` bytes.
    pub fn phase(&self, name: &str, total: u64) -> Phase {
        let bar = self.bar(name, total);
        Phase {
            bar,
            name: name.to_string(),
            started: Instant::now(),
        }
    }
}

impl Progress {
    /// A bar for decompressing a stream, in compressed bytes consumed
    /// (the stream sets its total and position).
    pub fn stream(&self) -> ProgressBar {
        self.bar("decompress", 0)
    }

    fn bar(&self, name: &str, total: u64) -> ProgressBar {
        let bar = self.multi.add(ProgressBar::new(total));
        let style = ProgressStyle::with_template(
            "{prefix:>15} [{bar:32}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} ETA {eta}",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(name.to_string());
        bar
    }
}

/// One running phase.
pub struct Phase {
    bar: ProgressBar,
    name: String,
    started: Instant,
}

impl Phase {
    /// Counts `n` more bytes done.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    /// Ends the phase and reports its time.
    pub fn finish(self) -> PhaseTime {
        self.bar.finish();
        PhaseTime {
            name: self.name,
            seconds: self.started.elapsed().as_secs_f64(),
        }
    }
}
