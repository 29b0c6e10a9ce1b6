//! The library's progress events drawn as indicatif bars on stderr, one
//! per phase (or, writing several targets, one per target), and its
//! messages printed as `esxstick: …` lines (not with --quiet).

use std::collections::BTreeMap;
use std::sync::Mutex;

use esxstick::progress::{Observer, Phase};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Bars for one run; hidden (messages only) when not drawn.
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<BTreeMap<Phase, ProgressBar>>,
    /// --quiet: messages are not printed either.
    quiet: bool,
}

/// The bar template: a prefix, then the bar takes what the terminal
/// leaves of its width.
const TEMPLATE: &str =
    "{prefix:>14} [{wide_bar}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>11} {eta:>3}";

/// A target's bar: its name, then the phase under way.
const TARGET_TEMPLATE: &str =
    "{prefix:>14} {msg:<14} [{wide_bar}] {bytes:>10}/{total_bytes:<10} {eta:>3}";

/// A bar of `total` bytes drawn with `template`, labelled `prefix`.
fn styled(template: &str, total: u64, prefix: &str) -> ProgressBar {
    let style = ProgressStyle::with_template(template)
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    let bar = ProgressBar::new(total).with_style(style);
    bar.set_prefix(prefix.to_string());
    bar
}

/// Prints a library message, unless `quiet`, without tearing `multi`'s
/// bars (a warning is `quiet` = false).
fn note(multi: &MultiProgress, quiet: bool, text: &str) {
    if !quiet {
        multi.suspend(|| eprintln!("esxstick: {text}"));
    }
}

impl Bars {
    /// Bars drawn on stderr when `visible`, hidden otherwise; messages
    /// printed unless `quiet`.
    pub fn new(visible: bool, quiet: bool) -> Bars {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Bars {
            multi: MultiProgress::with_draw_target(target),
            bars: Mutex::new(BTreeMap::new()),
            quiet,
        }
    }

    /// One bar for a target written alongside others, labelled `label`
    /// (its file name, cut to fit), among these bars.
    pub fn target(&self, label: &str) -> TargetBar {
        let start = label.char_indices().rev().nth(13).map_or(0, |(i, _)| i);
        let tail = label.get(start..).unwrap_or(label);
        TargetBar {
            bar: self.multi.add(styled(TARGET_TEMPLATE, 0, tail)),
            multi: self.multi.clone(),
            quiet: self.quiet,
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
        let bar = self.multi.add(styled(TEMPLATE, total, phase.name()));
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
        note(&self.multi, self.quiet, text);
    }

    fn warning(&self, text: &str) {
        note(&self.multi, false, text);
    }

    fn cancelled(&self) -> bool {
        crate::cli::interrupt::received().is_some()
    }
}

/// One target's bar when several are written at once: it shows the
/// phase under way, from 0 to that phase's bytes.
pub struct TargetBar {
    bar: ProgressBar,
    multi: MultiProgress,
    quiet: bool,
}

impl Observer for TargetBar {
    fn started(&self, phase: Phase, total: u64) {
        if total > 0 {
            self.bar.set_length(total);
            self.bar.set_position(0);
            self.bar.set_message(phase.name());
        }
    }

    fn advanced(&self, _: Phase, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn finished(&self, phase: Phase) {
        if phase == Phase::Verify {
            self.bar.finish();
        }
    }

    fn message(&self, text: &str) {
        note(&self.multi, self.quiet, text);
    }

    fn warning(&self, text: &str) {
        note(&self.multi, false, text);
    }

    fn cancelled(&self) -> bool {
        crate::cli::interrupt::received().is_some()
    }
}
