//! Progress, as the library reports it: every long-running step of the
//! pipeline is a [`Phase`] that an [`Observer`] hears start, advance and
//! finish. The library owns no UI; the command line draws bars from these
//! events, a test can record them, and the default observer ignores them.

use std::time::Instant;

use serde::Serialize;

/// A step of the pipeline whose progress is reported, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Decompressing a compressed source, in compressed bytes consumed.
    Decompress,
    /// Invalidating the target's old partition table.
    Prepare,
    /// Copying the boot partition.
    BootPartition,
    /// Formatting the banks and copying their files.
    Modules,
    /// Checking the rest of a compressed source (its MD5).
    SourceCheck,
    /// Formatting a FAT volume (`wipe`).
    Format,
    /// Writing the partition table.
    Tables,
    /// Writing the boot.cfg that makes an updated bank the one that boots.
    Commit,
    /// Reading the stick back and proving it.
    Verify,
}

impl Phase {
    /// The phase's name, as shown to users and in JSON reports.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Decompress => "decompress",
            Phase::Prepare => "prepare",
            Phase::BootPartition => "boot partition",
            Phase::Modules => "modules",
            Phase::SourceCheck => "source check",
            Phase::Format => "format",
            Phase::Tables => "tables",
            Phase::Commit => "commit",
            Phase::Verify => "verify",
        }
    }
}

/// Hears the pipeline's progress. Calls may come from a worker thread
/// (decompression runs ahead on one), hence `Send + Sync`.
pub trait Observer: Send + Sync {
    /// `phase` starts, with `total` bytes to do (0 when unknown).
    fn started(&self, phase: Phase, total: u64);
    /// `phase` has done `bytes` more.
    fn advanced(&self, phase: Phase, bytes: u64);
    /// `phase` is over.
    fn finished(&self, phase: Phase);
    /// Something the user should know, one line (a front end may leave
    /// it out when asked to be quiet).
    fn message(&self, text: &str);
    /// Something the user must know even when asked to be quiet, one
    /// line: a check skipped on request. By default, a message.
    fn warning(&self, text: &str) {
        self.message(text);
    }
    /// Whether the front end asks the work to stop (the user pressed
    /// Ctrl-C): a write checks before each write call and stops between
    /// two, saying in what state it leaves the stick.
    fn cancelled(&self) -> bool {
        false
    }
}

/// The observer that ignores everything: for library users that want no
/// progress, and for tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Observer for Silent {
    fn started(&self, _: Phase, _: u64) {}
    fn advanced(&self, _: Phase, _: u64) {}
    fn finished(&self, _: Phase) {}
    fn message(&self, _: &str) {}
}

/// How long a phase took.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseTime {
    /// Phase name.
    pub name: String,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// One running phase: reports to an observer and times itself.
pub struct Timer<'a> {
    observer: &'a dyn Observer,
    phase: Phase,
    started: Instant,
}

impl<'a> Timer<'a> {
    /// Starts `phase` of `total` bytes on `observer`.
    pub fn start(observer: &'a dyn Observer, phase: Phase, total: u64) -> Timer<'a> {
        observer.started(phase, total);
        Timer {
            observer,
            phase,
            started: Instant::now(),
        }
    }

    /// Counts `bytes` more done.
    pub fn inc(&self, bytes: u64) {
        self.observer.advanced(self.phase, bytes);
    }

    /// Ends the phase and says how long it took.
    pub fn finish(self) -> PhaseTime {
        self.observer.finished(self.phase);
        PhaseTime {
            name: self.phase.name().to_string(),
            seconds: self.started.elapsed().as_secs_f64(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records every event as text.
    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);

    impl Observer for Log {
        fn started(&self, p: Phase, total: u64) {
            self.push(format!("start {} {total}", p.name()));
        }
        fn advanced(&self, p: Phase, n: u64) {
            self.push(format!("+{n} {}", p.name()));
        }
        fn finished(&self, p: Phase) {
            self.push(format!("end {}", p.name()));
        }
        fn message(&self, text: &str) {
            self.push(text.to_string());
        }
    }

    impl Log {
        fn push(&self, s: String) {
            self.0.lock().unwrap().push(s);
        }
    }

    #[test]
    fn a_timer_reports_start_progress_and_end_in_order() {
        let log = Log::default();
        let t = Timer::start(&log, Phase::Modules, 10);
        t.inc(4);
        t.inc(6);
        let time = t.finish();
        assert_eq!(time.name, "modules");
        assert_eq!(
            *log.0.lock().unwrap(),
            [
                "start modules 10",
                "+4 modules",
                "+6 modules",
                "end modules"
            ]
        );
    }
}
