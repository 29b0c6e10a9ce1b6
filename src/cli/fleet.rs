//! `write SOURCE TARGET TARGET…`: several sticks at once. The library
//! plans once and writes them in parallel ([`esxstick::stick::fleet`]);
//! this asks once, draws a bar per target and prints a summary.

use std::path::{Path, PathBuf};

use esxstick::error::Refusal;
use esxstick::esxi::{self, installer::InstallerIso};
use esxstick::image::source::SECTOR;
use esxstick::progress::Observer;
use esxstick::stick::burn::Outcome;
use esxstick::stick::device::{self, Target};
use esxstick::stick::fleet::{self, Checks};
use esxstick::stick::verify::VerifyReport;
use esxstick::stick::write::WriteReport;
use esxstick::Error;
use serde::Serialize;

use super::progress::TargetBar;
use super::render::{self, emit, to_json, JsonError};
use super::{
    confirm, hint, installer, interrupt, named_layout, read_and_plan, verdict, warn_swapped,
    ImageArgs, WriteOptions,
};

/// One target's line of the summary: its outcome, or why it failed.
pub struct Row {
    /// The target as given.
    pub path: PathBuf,
    /// What became of it.
    pub result: Result<Outcome, Error>,
}

impl Row {
    /// Why the target failed, as one line (the error and what to do),
    /// or `None` when it verified (or was written with --no-verify).
    pub fn failure(&self) -> Option<(&'static str, String)> {
        let e = match &self.result {
            Ok(outcome) => match outcome.verify.clone().map(verdict) {
                Some(Err(e)) => e,
                _ => return None,
            },
            Err(e) => return Some((e.kind(), format!("{e}{}", hint(e)))),
        };
        Some((e.kind(), e.to_string()))
    }
}

/// One target's part of `write --json` with several targets.
#[derive(Serialize)]
struct TargetReport<'a> {
    /// The target as given.
    target: String,
    /// Whether it was written and verified.
    ok: bool,
    /// The write report; null when it was refused or its write failed.
    write: Option<&'a WriteReport>,
    /// The verification; null when skipped, or nothing was written.
    verify: Option<&'a VerifyReport>,
    /// Why it failed; null when ok.
    error: Option<JsonError<'a>>,
}

/// Writes the plan for `source` onto every one of `paths` (see the
/// module's introduction).
pub fn write_many(
    source: &Path,
    paths: &[PathBuf],
    layout: Option<&str>,
    size: Option<String>,
    image: &ImageArgs,
    options: &WriteOptions,
) -> Result<(), Error> {
    let named = named_layout(layout)?;
    let mut rows = Vec::new();
    let (bytes, candidates) = sizes(paths, size.as_deref(), &mut rows)?;
    interrupt::install();
    let iso = esxi::installer::open(source)?;
    installer::check_flags(
        iso.is_some(),
        layout,
        &options.made,
        options.syslinux.is_some(),
    )?;
    if let Some(iso) = iso {
        let done = write_installers(&iso, &candidates, bytes, options, &mut rows)?;
        return finish(rows, done, paths, options.output.json);
    }
    let bars = options.output.bars();
    let first = candidates.first().map_or(Path::new(""), PathBuf::as_path);
    let (source, inv, plan) = read_and_plan(source, first, named, bytes, image, options, &bars)?;
    interrupt::defer();
    let opened = fleet::open_all(&candidates, &plan, &source, options.allow_fixed);
    let text = render::fit(&render::plan(&plan, bytes));
    let targets = ready(opened, options, &mut rows, &text)?;
    let labels: Vec<TargetBar> = targets.iter().map(|t| bars.target(&label(t))).collect();
    let jobs = targets
        .into_iter()
        .zip(&labels)
        .map(|(t, bar)| (t, bar as &dyn Observer))
        .collect();
    let checks = Checks {
        verify: options.verify,
        check_modules: options.check_modules,
    };
    let done = fleet::burn_all(&source, &inv, &plan, jobs, &*bars, checks);
    bars.clear();
    let done = done.into_iter().map(|t| Row {
        path: t.path,
        result: t.result,
    });
    finish(rows, done.collect(), paths, options.output.json)
}

/// An installer ISO onto several targets: planned and checked once, then
/// one thread per target writes and verifies its stick (each reads the
/// ISO's files itself; the page cache serves all but the first).
fn write_installers(
    iso: &InstallerIso,
    candidates: &[PathBuf],
    bytes: u64,
    options: &WriteOptions,
    rows: &mut Vec<Row>,
) -> Result<Vec<Row>, Error> {
    let (plan, how) = installer::prepare(iso, bytes, options)?;
    interrupt::defer();
    let sizes = (plan.target_sectors * SECTOR, plan.write_bytes);
    let opened = candidates
        .iter()
        .map(|path| {
            let target =
                Target::open_sized(path, sizes.0, sizes.1, &iso.source, options.allow_fixed);
            (path.clone(), target)
        })
        .collect();
    let text = render::fit(&render::installer_plan(&plan, bytes));
    let targets = ready(opened, options, rows, &text)?;
    installer::note_uefi_only(&how);
    let bars = options.output.bars();
    let labels: Vec<TargetBar> = targets.iter().map(|t| bars.target(&label(t))).collect();
    let done = std::thread::scope(|scope| {
        let threads: Vec<_> = targets
            .into_iter()
            .zip(&labels)
            .map(|(mut target, bar)| {
                let (plan, how) = (&plan, &how);
                scope.spawn(move || Row {
                    path: target.path().to_path_buf(),
                    result: esxstick::stick::installer::burn(iso, plan, &mut target, bar, how),
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    bars.clear();
    Ok(done)
}

/// The targets opened that pass their checks, after the plan's `text`
/// (unless --json), the refusals so far, a warning for each that may be
/// the source, and one confirmation for those that need it.
fn ready(
    opened: Vec<(PathBuf, Result<Target, Error>)>,
    options: &WriteOptions,
    rows: &mut Vec<Row>,
    text: &str,
) -> Result<Vec<Target>, Error> {
    let targets = checked(opened, options.yes, rows);
    if !options.output.json {
        emit(text);
        for row in rows.iter() {
            if let Some((_, line)) = row.failure() {
                eprintln!("esxstick: {line}");
            }
        }
    }
    targets.iter().for_each(|t| warn_swapped(t, options.yes));
    let asked: Vec<&Target> = targets
        .iter()
        .filter(|t| t.needs_confirmation() && !options.yes)
        .collect();
    if !asked.is_empty() {
        interrupt::at_once_during(|| confirm::confirm_all(&asked))?;
    }
    Ok(targets)
}

/// The summary of every target, in the order given.
fn finish(mut rows: Vec<Row>, done: Vec<Row>, paths: &[PathBuf], json: bool) -> Result<(), Error> {
    rows.extend(done);
    rows.sort_by_key(|r| paths.iter().position(|p| *p == r.path));
    report(rows, json)
}

/// The size planned for — `--size`, else the smallest of the targets —
/// and the targets left to check; a target missing without `--size` is
/// refused into `rows`.
fn sizes(
    paths: &[PathBuf],
    size: Option<&str>,
    rows: &mut Vec<Row>,
) -> Result<(u64, Vec<PathBuf>), Error> {
    let mut candidates = Vec::new();
    let mut smallest: Option<u64> = None;
    for path in paths {
        if size.is_none() && !path.exists() {
            rows.push(refused(path, Refusal::Missing));
            continue;
        }
        if size.is_none() {
            match device::size(path) {
                Ok(n) => smallest = Some(smallest.map_or(n, |s| s.min(n))),
                Err(e) => {
                    rows.push(Row {
                        path: path.clone(),
                        result: Err(e),
                    });
                    continue;
                }
            }
        }
        candidates.push(path.clone());
    }
    let bytes = match (size, smallest) {
        (Some(size), _) => esxstick::size::parse_target(size).map_err(Error::BadSize)?,
        (None, Some(n)) => n,
        (None, None) => return Err(nothing_left(rows)),
    };
    Ok((bytes, candidates))
}

/// A row for `path` refused for `refusal`.
fn refused(path: &Path, refusal: Refusal) -> Row {
    Row {
        path: path.to_path_buf(),
        result: Err(Error::Target {
            path: path.to_path_buf(),
            refusal,
        }),
    }
}

/// The error when every target was refused: the first refusal.
fn nothing_left(rows: &mut Vec<Row>) -> Error {
    match rows.drain(..).next().map(|r| r.result) {
        Some(Err(e)) => e,
        _ => Error::Targets {
            failed: 0,
            targets: 0,
            verification_only: false,
        },
    }
}

/// The targets that passed their checks (those needing a confirmation
/// only where one can be given: `yes`, or a terminal); the others'
/// refusals go into `rows`.
fn checked(
    opened: Vec<(PathBuf, Result<Target, Error>)>,
    yes: bool,
    rows: &mut Vec<Row>,
) -> Vec<Target> {
    let mut targets = Vec::new();
    for (path, result) in opened {
        let result = result.and_then(|t| match t.needs_confirmation() && !yes {
            true => confirm::can_ask(&t).map(|()| t),
            false => Ok(t),
        });
        match result {
            Ok(t) => targets.push(t),
            Err(e) => rows.push(Row {
                path,
                result: Err(e),
            }),
        }
    }
    targets
}

/// A target's name on its bar: its file name.
fn label(target: &Target) -> String {
    let path = target.path();
    path.file_name()
        .unwrap_or(path.as_os_str())
        .to_string_lossy()
        .into_owned()
}

/// Prints the summary (or, with `json`, the list of per-target reports)
/// and gives the exit: 0 when all verified, 2 when any target was
/// refused or could not be written, else 1 (a verification failed).
fn report(mut rows: Vec<Row>, json: bool) -> Result<(), Error> {
    let failures: Vec<_> = rows.iter().map(Row::failure).collect();
    if json {
        let list: Vec<TargetReport> = rows
            .iter()
            .zip(&failures)
            .map(|(row, failure)| TargetReport {
                target: row.path.display().to_string(),
                ok: failure.is_none(),
                write: row.result.as_ref().ok().map(|o| &o.write),
                verify: row.result.as_ref().ok().and_then(|o| o.verify.as_ref()),
                error: failure
                    .as_ref()
                    .map(|(kind, message)| JsonError { kind, message }),
            })
            .collect();
        emit(&to_json(&list));
    } else {
        emit(&render::fit(&render::targets(&rows)));
    }
    // A signal stopped the writes: the exit says which (130, 143).
    let stopped = rows
        .iter()
        .position(|r| matches!(r.result, Err(Error::Interrupted { .. })));
    if let Some(Err(e)) = stopped.map(|i| rows.swap_remove(i).result) {
        return Err(e);
    }
    let failed = failures.iter().flatten().count();
    if failed == 0 {
        return Ok(());
    }
    Err(Error::Targets {
        failed,
        targets: rows.len(),
        verification_only: failures
            .iter()
            .flatten()
            .all(|(kind, _)| *kind == "verify-failed"),
    })
}
