//! The library's progress events drawn as indicatif bars on stderr, one
//! per phase, and its messages printed as `esxstick: …` lines.

use std::collections::BTreeMap;
use std::sync::Mutex;

use esxstick::progress::{Observer, Phase};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Bars for one run; hidden (messages only) when not drawn.
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<BTreeMap<Phase, ProgressBar>>,
}

impl Bars {
    /// Bars drawn on stderr when `visible`, hidden otherwise.
    pub fn new(visible: bool) -> Bars {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Bars {
            multi: MultiProgress::with_draw_target(target),
            bars: Mutex::new(BTreeMap::new()),
        }
    }

    /// Takes the bars off the terminal (before a line saying why the work
    /// stopped).
    pub fn clear(&self) {
        let _ = self.multi.clear();
    }

    fn bar(&self, phase: Phase) -> Option<ProgressBar> {
        self.bars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&phase)
            .cloned()
    }
}

impl Observer for Bars {
    fn started(&self, phase: Phase, total: u64) {
        // A phase of unknown length (0) gets no bar: "0 B/0 B" says nothing.
        if total == 0 {
            return;
        }
        let bar = self.multi.add(ProgressBar::new(total));
        // The bar takes what the terminal leaves of its width.
        let style = ProgressStyle::with_template(
            "{prefix:>14} [{wide_bar}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>11} {eta:>3}",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(phase.name());
        self.bars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(phase, bar);
    }

    fn advanced(&self, phase: Phase, bytes: u64) {
        if let Some(bar) = self.bar(phase) {
            bar.inc(bytes);
        }
    }

    fn finished(&self, phase: Phase) {
        if let Some(bar) = self.bar(phase) {
            // Decompression runs on behind the other phases: its bar goes.
            match phase {
                Phase::Decompress => bar.finish_and_clear(),
                _ => bar.finish(),
            }
        }
    }

    fn message(&self, text: &str) {
        self.multi.suspend(|| eprintln!("esxstick: {text}"));
    }

    fn cancelled(&self) -> bool {
        crate::cli::interrupt::received().is_some()
    }
}
