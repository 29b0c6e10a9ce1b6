//! The command line: [`args`] says what may be typed, [`run`] calls the
//! library for each command, [`render`] prints what it returns, and
//! [`progress`] draws the library's progress events. Nothing here decides
//! anything the library could: it parses, asks, and prints.

mod args;
mod confirm;
mod progress;
mod render;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use esxstick::error::{exit, Refusal};
use esxstick::esxi::{self, extract, inventory::Inventory};
use esxstick::image::source::{Source, SECTOR};
use esxstick::plan::choose::{self, SmallestTarget};
use esxstick::plan::layout::{self, Layout};
use esxstick::plan::{self, Payload};
use esxstick::size::group;
use esxstick::stick::burn;
use esxstick::stick::device::{self, Target};
use esxstick::stick::verify::{self, VerifyReport};
use esxstick::Error;
use serde::Serialize;

use args::{Cli, Command, ImageArgs};
use progress::Bars;
use render::{emit, to_json};

/// Parses the command line, runs the command, and turns its outcome into
/// the documented exit code, printing a failure as one line on stderr.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = run(cli.command);
    esxstick::stick::fault::report();
    match result {
        Ok(()) => ExitCode::from(exit::OK as u8),
        Err(e) => {
            eprintln!("esxstick: {e}{}", hint(&e));
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// What the user can do about an error, in the command line's words
/// (the library's message names only the reason).
fn hint(e: &Error) -> &'static str {
    match e {
        Error::Target { refusal, .. } => match refusal {
            Refusal::NotRemovable => "; if it really is the stick, pass --force",
            Refusal::NoTerminal => "; pass --yes",
            Refusal::Missing => "; pass --size to create an image file of that size",
            _ => "",
        },
        Error::OutputNotEmpty { .. } => " or pass --force to write into it",
        _ => "",
    }
}

/// Whether stderr is a terminal (where progress bars may be drawn).
fn tty() -> bool {
    std::io::stderr().is_terminal()
}

impl ImageArgs {
    /// Opens the image and reads its inventory, drawing progress on
    /// `bars`.
    fn read(&self, path: &Path, bars: &Arc<Bars>) -> Result<(Source, Inventory), Error> {
        esxi::open(path, self.bank, !self.no_md5, bars.clone())
    }
}

/// Ends reading a stream (checking the MD5 an ISO gives) and says on
/// stderr how much of it was read.
fn finish(source: &Source) -> Result<(), Error> {
    if let Some(report) = source.finish()? {
        eprintln!("esxstick: {}", report.summary());
    }
    Ok(())
}

fn run(command: Command) -> Result<(), Error> {
    match command {
        Command::Inspect {
            source,
            json,
            no_module_check,
            image,
        } => inspect(&source, json, !no_module_check, &image),
        Command::Extract {
            source,
            dir,
            image,
            force,
        } => extract(&source, &dir, &image, force),
        Command::Plan {
            source,
            target,
            size,
            layout,
            new_uuids,
            image,
            json,
        } => plan(&source, target, size, &layout, &image, json, new_uuids),
        Command::Write {
            source,
            target,
            layout,
            new_uuids,
            size,
            image,
            yes,
            force,
            no_verify,
            no_module_check,
            quiet,
            json,
        } => {
            let options = WriteOptions {
                yes,
                force,
                new_uuids,
                verify: !no_verify,
                check_modules: !no_module_check,
                bars: !quiet && !json && tty(),
                json,
            };
            write(&source, &target, &layout, size, &image, &options)
        }
        Command::Verify {
            target,
            against,
            layout,
            new_uuids,
            image,
            json,
        } => {
            let plan = StickPlan {
                layout: layout.as_deref(),
                new_uuids,
            };
            verify(&target, against.as_deref(), plan, &image, json)
        }
        Command::Layouts { json } => {
            layouts(json);
            Ok(())
        }
    }
}

/// `inspect --json`: the inventory plus the smallest target that fits.
#[derive(Serialize)]
struct InspectReport<'a> {
    #[serde(flatten)]
    inventory: &'a Inventory,
    /// Smallest target for the default layout; null when the image is
    /// incomplete or cannot fit any target.
    smallest_target: Option<SmallestTarget>,
}

fn inspect(source: &Path, json: bool, check_modules: bool, image: &ImageArgs) -> Result<(), Error> {
    let (source, mut inv) = image.read(source, &Arc::new(Bars::new(!json && tty())))?;
    let smallest = choose::smallest_target(&inv);
    if check_modules {
        esxi::modules::check(&source, &mut inv)?;
    }
    if json {
        let report = InspectReport {
            inventory: &inv,
            smallest_target: smallest,
        };
        emit(&to_json(&report));
    } else {
        emit(&render::inventory(&inv, smallest.as_ref()));
    }
    finish(&source)?;
    inv.check_complete()
}

fn extract(source: &Path, dir: &Path, image: &ImageArgs, force: bool) -> Result<(), Error> {
    let (source, inv) = image.read(source, &Arc::new(Bars::new(tty())))?;
    let report = extract::extract(&source, &inv, dir, force)?;
    finish(&source)?;
    let mut out = String::new();
    for f in &report.files {
        out.push_str(&format!("{:>14}  {}\n", group(f.bytes), f.path));
    }
    out.push_str(&format!(
        "extracted {} files from bank {} into {} (checksums in {})\n",
        report.files.len(),
        report.bank,
        report.dir.display(),
        extract::SUMS
    ));
    emit(&out);
    Ok(())
}

/// The target size: `--size` when given, else the size of TARGET (clap
/// requires one of the two).
fn target_bytes(size: Option<String>, target: &Path) -> Result<u64, Error> {
    match size {
        Some(size) => esxstick::size::parse(&size).map_err(Error::BadSize),
        None => device::size(target),
    }
}

fn plan(
    source: &Path,
    target: Option<PathBuf>,
    size: Option<String>,
    layout: &str,
    image: &ImageArgs,
    json: bool,
    new_uuids: bool,
) -> Result<(), Error> {
    let layout = Layout::load(layout)?;
    let bytes = target_bytes(size, target.as_deref().unwrap_or(Path::new("")))?;
    let (source, inv) = image.read(source, &Arc::new(Bars::new(!json && tty())))?;
    let plan = plan::plan(&payload(&inv, new_uuids)?, &layout, bytes / SECTOR)?;
    finish(&source)?;
    if json {
        emit(&to_json(&plan));
    } else {
        emit(&render::plan(&plan, bytes));
    }
    Ok(())
}

/// How `write` behaves, from its flags.
struct WriteOptions {
    yes: bool,
    force: bool,
    new_uuids: bool,
    verify: bool,
    check_modules: bool,
    bars: bool,
    json: bool,
}

fn write(
    source: &Path,
    target: &Path,
    layout: &str,
    size: Option<String>,
    image: &ImageArgs,
    options: &WriteOptions,
) -> Result<(), Error> {
    let layout = Layout::load(layout)?;
    if size.is_none() && !target.exists() {
        return Err(Error::Target {
            path: target.to_path_buf(),
            refusal: Refusal::Missing,
        });
    }
    let bytes = target_bytes(size, target)?;
    let bars = Arc::new(Bars::new(options.bars));
    let (source, inv) = image.read(source, &bars)?;
    let payload = payload(&inv, options.new_uuids)?;
    let plan = plan::plan(&payload, &layout, bytes / SECTOR)?;
    if !options.json {
        emit(&render::plan(&plan, bytes));
    }
    let mut target = Target::open(target, plan.target_sectors * SECTOR, &source, options.force)?;
    if target.needs_confirmation() && !options.yes {
        confirm::confirm(&target)?;
    }
    let outcome = burn::burn(
        &source,
        &inv,
        &plan,
        &mut target,
        &*bars,
        options.verify,
        options.check_modules,
    )?;
    if options.json {
        emit(&to_json(&outcome));
    } else {
        if let Some(stream) = &outcome.write.stream {
            eprintln!("esxstick: {}", stream.summary());
        }
        emit(&render::write(&outcome.write, outcome.verify.as_ref()));
    }
    outcome.verify.map_or(Ok(()), verdict)
}

/// What `verify --against` knows of how the stick was written.
struct StickPlan<'a> {
    /// The layout, when named.
    layout: Option<&'a str>,
    /// Whether it was written with --new-uuids.
    new_uuids: bool,
}

/// What the planner needs of the source, with the source's bank UUIDs
/// dropped for `--new-uuids`.
fn payload(inv: &Inventory, new_uuids: bool) -> Result<Payload, Error> {
    let payload = Payload::from_inventory(inv)?;
    Ok(if new_uuids {
        payload.with_new_uuids()
    } else {
        payload
    })
}

fn verify(
    target: &Path,
    against: Option<&Path>,
    written: StickPlan,
    image: &ImageArgs,
    json: bool,
) -> Result<(), Error> {
    let stick = Source::open_uncached(target)?;
    let report = match against {
        None => verify::self_check(&stick)?,
        Some(against) => {
            let (source, inv) = image.read(against, &Arc::new(Bars::new(!json && tty())))?;
            let payload = payload(&inv, written.new_uuids)?;
            let plan = choose::plan_of_stick(&stick, &payload, written.layout)?;
            let report = verify::against(&stick, &source, &inv, &plan, &Default::default())?;
            finish(&source)?;
            report
        }
    };
    if json {
        emit(&to_json(&report));
    } else {
        emit(&render::verify(&report));
    }
    verdict(report)
}

fn layouts(json: bool) {
    let list = layout::builtin();
    if json {
        emit(&to_json(&list));
        return;
    }
    let mut out = String::new();
    for l in list {
        let default = if l.name == layout::DEFAULT {
            " (default)"
        } else {
            ""
        };
        out.push_str(&format!("{:<16} {}{default}\n", l.name, l.description));
    }
    emit(&out);
}

/// Exit status of a verification: failure names the failed items.
fn verdict(report: VerifyReport) -> Result<(), Error> {
    let failures = report.failures();
    if failures.is_empty() {
        return Ok(());
    }
    Err(Error::VerifyFailed {
        failed: failures.len(),
        checks: report.checks.len(),
        first: failures.first().cloned().unwrap_or_default(),
    })
}
