//! Write, then verify: the whole of `esxstick write` as one library call,
//! so that a front end only chooses and shows, never orchestrates phases.

use serde::Serialize;

use crate::digest::Digests;
use crate::error::{Error, Result, StickState};
use crate::esxi::inventory::Inventory;
use crate::image::source::Source;
use crate::plan::Plan;
use crate::progress::{Observer, Phase, Timer};
use crate::stick::device::Target;
use crate::stick::verify::{self, VerifyReport};
use crate::stick::write::{self, WriteReport, WriteStep};

/// What a write did and, unless skipped, how the stick verified.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The write.
    pub write: WriteReport,
    /// The verification against the source; `None` when skipped.
    pub verify: Option<VerifyReport>,
}

/// Writes `plan` (made from `inv` of `source`) onto `target`, checking
/// every module's gzip stream before the table unless `check_modules` is
/// off, then, when `verify` is set, reads the stick back past the page
/// cache and proves it against the source, reusing the file hashes taken
/// while copying. The verification's time is added to the write report's
/// phases. When the observer asks to stop, the write stops between two
/// writes (an image file created for it is deleted) or before the
/// verification.
pub fn burn(
    source: &Source,
    inv: &Inventory,
    plan: &Plan,
    target: &mut Target,
    observer: &dyn Observer,
    verify: bool,
    check_modules: bool,
) -> Result<Outcome> {
    let report = write::write(source, inv, plan, target, observer, verify, check_modules)
        .map_err(|e| target.after_interruption(e))?;
    verify_written(source, inv, (plan, verify), target, observer, report)
}

/// The verification that follows a write of `report` onto `target`,
/// unless `verify` is off: the stick read back past the page cache and
/// proven by `prove` (given the hashes taken while copying), counted as
/// `bytes` of the verify phase, whose time is added to the report. A
/// stop asked for before it is an interruption of a written stick.
pub(super) fn then_verify(
    mut report: WriteReport,
    target: &Target,
    observer: &dyn Observer,
    (verify, bytes): (bool, u64),
    prove: impl FnOnce(&Source, &Digests) -> Result<VerifyReport>,
) -> Result<Outcome> {
    if !verify {
        return Ok(Outcome {
            write: report,
            verify: None,
        });
    }
    if observer.cancelled() {
        return Err(Error::Interrupted {
            path: target.path().to_path_buf(),
            phase: WriteStep::Verify,
            state: StickState::Unverified,
        });
    }
    let phase = Timer::start(observer, Phase::Verify, bytes);
    let stick = Source::open_uncached(target.path())?;
    let result = prove(&stick, &report.digests)?;
    phase.inc(bytes);
    report.phases.push(phase.finish());
    Ok(Outcome {
        write: report,
        verify: Some(result),
    })
}

/// When `verify`, reads `target`, just written with `plan` as `report`
/// says, back past the page cache and proves it against `source`
/// (reusing the report's file hashes), adding the verification's time to
/// the report's phases — unless the observer asks to stop first.
pub(super) fn verify_written(
    source: &Source,
    inv: &Inventory,
    (plan, verify): (&Plan, bool),
    target: &Target,
    observer: &dyn Observer,
    report: WriteReport,
) -> Result<Outcome> {
    then_verify(
        report,
        target,
        observer,
        (verify, plan.write_bytes),
        |stick, known| verify::against(stick, source, inv, plan, known),
    )
}
