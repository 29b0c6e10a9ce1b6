//! The commands on an ESXi 5+ installer ISO (`inspect`, `extract`,
//! `plan`, `write`, `verify --against`): each recognises the ISO first
//! ([`installer::open`]) and, when it is one, calls the library's
//! installer functions here instead of the disk-image ones.

use std::path::Path;

use esxstick::error::InstallerProblem;
use esxstick::esxi::installer::{self, Installer, InstallerIso};
use esxstick::image::source::{Source, SECTOR};
use esxstick::ondisk::table;
use esxstick::plan::installer::{self as layout, InstallerPlan};
use esxstick::size::group;
use esxstick::stick::installer::{self as stick, Options};
use esxstick::stick::installer_verify;
use esxstick::stick::syslinux::Syslinux;
use esxstick::stick::verify::VerifyReport;
use esxstick::Error;
use serde::Serialize;

use super::render::{self, emit, to_json};
use super::{open_target, report_write, Made, WriteOptions};

/// The line `write` prints before writing a stick without `--syslinux`.
/// (79 columns with esxstick's prefix.)
pub const UEFI_ONLY: &str = "note: UEFI-only stick: BIOS needs SYSLINUX 3.86-4.07, --syslinux PATH";

/// `inspect --json` of an installer ISO.
#[derive(Serialize)]
struct InspectReport<'a> {
    #[serde(flatten)]
    installer: &'a Installer,
    /// The smallest target the stick fits, in bytes.
    smallest_target_bytes: Option<u64>,
    /// Why the ISO cannot be made into a stick (the command exits 2).
    error: Option<render::JsonError<'a>>,
}

/// `inspect` of an installer ISO: its inventory, modules checked unless
/// `check_modules` is off; exit 2 after the report when a module is
/// missing or damaged.
pub fn inspect(mut iso: InstallerIso, json: bool, check_modules: bool) -> Result<(), Error> {
    if check_modules {
        iso.inventory.check_modules(&iso.source)?;
    }
    let outcome = iso.inventory.check_complete();
    let smallest = layout::plan(&iso.inventory, None, 1 << 32)
        .ok()
        .map(|p| p.min_target_bytes);
    if json {
        let message = outcome.as_ref().err().map(|e| (e.kind(), e.to_string()));
        let report = InspectReport {
            installer: &iso.inventory,
            smallest_target_bytes: smallest,
            error: message
                .as_ref()
                .map(|(kind, message)| render::JsonError { kind, message }),
        };
        emit(&to_json(&report));
    } else {
        emit(&render::fit(&render::installer(&iso.inventory, smallest)));
    }
    outcome
}

/// `extract` of an installer ISO: its whole tree into `dir`.
pub fn extract(iso: &InstallerIso, dir: &Path, overwrite: bool, json: bool) -> Result<(), Error> {
    let files = installer::extract(iso, dir, overwrite)?;
    if json {
        // extract's report without a bank: an ISO has none.
        emit(&to_json(&serde_json::json!({
            "schema": esxstick::esxi::extract::SCHEMA,
            "dir": dir,
            "files": files,
        })));
        return Ok(());
    }
    let mut out = String::new();
    for f in &files {
        out.push_str(&format!("{:>14}  {}\n", group(f.bytes), f.path));
    }
    out.push_str(&format!(
        "extracted {} files of the installer ISO into {} (checksums in {})\n",
        files.len(),
        dir.display(),
        esxstick::esxi::extract::SUMS
    ));
    emit(&render::fit(&out));
    Ok(())
}

/// `plan` of an installer ISO for a target of `bytes`.
pub fn plan(
    iso: &InstallerIso,
    bytes: u64,
    kernelopt: Option<&str>,
    json: bool,
) -> Result<(), Error> {
    let plan = layout::plan(&iso.inventory, kernelopt, bytes / SECTOR)?;
    if json {
        emit(&to_json(&plan));
    } else {
        emit(&render::fit(&render::installer_plan(&plan, bytes)));
    }
    Ok(())
}

/// What writing an installer ISO needs before any target is opened: the
/// `--syslinux` given checked, SYSLINUX's mbr.bin found, every module on
/// the ISO, and the plan for `bytes`.
pub fn prepare(
    iso: &InstallerIso,
    bytes: u64,
    options: &WriteOptions,
) -> Result<(InstallerPlan, Options), Error> {
    let syslinux = options
        .syslinux
        .as_deref()
        .map(Syslinux::check)
        .transpose()?;
    esxstick::stick::syslinux::mbr_code()?;
    iso.inventory.check_complete()?;
    let kernelopt = options.made.kernelopt.as_deref();
    let plan = layout::plan(&iso.inventory, kernelopt, bytes / SECTOR)?;
    let how = Options {
        syslinux,
        verify: options.verify,
    };
    Ok((plan, how))
}

/// Says, before writing, that a stick without `--syslinux` boots UEFI
/// only.
pub fn note_uefi_only(how: &Options) {
    if how.syslinux.is_none() {
        eprintln!("esxstick: {UEFI_ONLY}");
    }
}

/// `write` of an installer ISO onto `target` planned for `bytes`: the
/// `--syslinux` given is checked before anything else, every module must
/// be on the ISO, and without `--syslinux` one line says the stick boots
/// UEFI only.
pub fn write(
    iso: &InstallerIso,
    target: &Path,
    bytes: u64,
    options: &WriteOptions,
) -> Result<(), Error> {
    let (plan, how) = prepare(iso, bytes, options)?;
    let text = render::fit(&render::installer_plan(&plan, bytes));
    let sizes = (plan.target_sectors * SECTOR, plan.write_bytes);
    let mut target = open_target(target, sizes, &iso.source, options, &text)?;
    note_uefi_only(&how);
    let bars = options.output.bars();
    let outcome =
        stick::burn(iso, &plan, &mut target, &*bars, &how).inspect_err(|_| bars.clear())?;
    report_write(outcome, options)
}

/// `verify STICK --against ISO`: the plan re-made for the stick's size
/// (`size`, else where its partition ends) with the same `kernelopt`.
pub fn verify_against(
    stick: &Source,
    iso: &InstallerIso,
    size: Option<u64>,
    kernelopt: Option<&str>,
) -> Result<VerifyReport, Error> {
    let sectors = match size {
        Some(bytes) => bytes / SECTOR,
        None => table::read(stick)
            .ok()
            .and_then(|t| t.get(1).map(|p| p.start + p.sectors))
            .unwrap_or(stick.len() / SECTOR),
    };
    let plan: InstallerPlan = layout::plan(&iso.inventory, kernelopt, sectors)?;
    installer_verify::against(stick, iso, &plan, &Default::default())
}

/// Refuses the flags that do not apply to SOURCE: those of disk images
/// (`--layout`, `--state`, `--oem`, `--new-uuids`) for an installer ISO
/// (`installer`), and `--syslinux`, `--kernelopt` for anything else.
pub fn check_flags(
    installer: bool,
    layout: Option<&str>,
    made: &Made,
    syslinux: bool,
) -> Result<(), Error> {
    let given = if installer {
        [
            ("--layout", layout.is_some()),
            ("--state", made.given.state.is_some()),
            ("--oem", made.given.oem.is_some()),
            ("--new-uuids", made.new_uuids),
        ]
    } else {
        [
            ("--syslinux", syslinux),
            ("--kernelopt", made.kernelopt.is_some()),
            ("", false),
            ("", false),
        ]
    };
    match given.iter().find(|(_, set)| *set) {
        Some((flag, _)) => Err(Error::Installer(InstallerProblem::Flag { flag, installer })),
        None => Ok(()),
    }
}
