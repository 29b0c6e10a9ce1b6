//! The command line: [`args`] says what may be typed, [`run`] calls the
//! library for each command, [`render`] prints what it returns, and
//! [`progress`] draws the library's progress events. Nothing here decides
//! anything the library could: it parses, asks, and prints.

mod args;
mod confirm;
mod fleet;
mod installer;
mod interrupt;
mod manual;
mod progress;
mod render;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use esxstick::error::{exit, Refusal};
use esxstick::esxi::config::{self, backup, Given};
use esxstick::esxi::{self, extract, inventory::Inventory};
use esxstick::image::source::{Source, SECTOR};
use esxstick::plan::choose::{self, SmallestTarget};
use esxstick::plan::layout::{self, Layout};
use esxstick::plan::{self, Payload};
use esxstick::size::group;
use esxstick::stick::burn;
use esxstick::stick::contents::Contents;
use esxstick::stick::device::{self, Target};
use esxstick::stick::devices::{self, DeviceList, FitCheck, Probe};
use esxstick::stick::installer_verify;
use esxstick::stick::update;
use esxstick::stick::verify::{self, VerifyReport};
use esxstick::stick::wipe;
use esxstick::Error;
use serde::Serialize;

use args::{
    BackupArgs, Cli, Command, ConfigArgs, DevicesArgs, ImageArgs, Output, UpdateArgs, VerifyArgs,
    WipeArgs,
};
use fleet::write_many;
use progress::Bars;
use render::{emit, to_json};

/// Parses the command line, runs the command, and turns its outcome into
/// the documented exit code, printing a failure as one line on stderr
/// (and, with `--json`, as a JSON error on stdout).
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => usage_error(e),
    };
    let json = cli.command.json();
    let result = run(cli.command);
    esxstick::stick::fault::report();
    match result {
        Ok(()) => ExitCode::from(exit::OK as u8),
        Err(e) => {
            let message = format!("{e}{}", hint(&e));
            // A report printed already holds or implies the failure.
            if json && !render::json_printed() {
                emit(&render::json_error(e.kind(), &message));
            }
            eprintln!("esxstick: {message}");
            match (&e, interrupt::received()) {
                (Error::Interrupted { .. } | Error::WipeInterrupted { .. }, Some(signal)) => {
                    ExitCode::from(interrupt::exit_status(signal))
                }
                _ => ExitCode::from(e.exit_code() as u8),
            }
        }
    }
}

/// A command line clap cannot parse: its message (and, with `--json`, a
/// JSON error of kind "usage" on stdout), then clap's exit.
fn usage_error(e: clap::Error) -> ! {
    let json = std::env::args_os().any(|a| a == "--json");
    if json && e.use_stderr() {
        // clap's message up to its usage lines, on one line.
        let text = e.render().to_string();
        let message = text
            .lines()
            .take_while(|l| !l.is_empty())
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ");
        let message = message.strip_prefix("error: ").unwrap_or(&message);
        emit(&render::json_error("usage", message));
    }
    e.exit()
}

/// What the user can do about an error, in the command line's words
/// (the library's message names only the reason).
fn hint(e: &Error) -> &'static str {
    match e {
        Error::Target { refusal, .. } => match refusal {
            Refusal::NotRemovable => "; if it really is the stick, pass --allow-fixed",
            Refusal::NoTerminal { .. } => "; pass --yes",
            Refusal::Missing => "; pass --size to create an image file of that size",
            _ => "",
        },
        Error::OutputNotEmpty { .. } => " or pass --overwrite to write into it",
        Error::BuildMismatch { .. } => "; pass --allow-build-mismatch to use it anyway",
        _ => "",
    }
}

/// Whether stderr is a terminal (where progress bars may be drawn).
fn tty() -> bool {
    std::io::stderr().is_terminal()
}

impl ConfigArgs {
    /// How the bank is made: with `new_uuids` (--new-uuids), and the
    /// files given, as the library takes them.
    fn made(&self, new_uuids: bool) -> Made {
        Made {
            new_uuids,
            kernelopt: None,
            given: Given {
                state: self.state.clone(),
                oem: self.oem.clone(),
                allow_build_mismatch: self.allow_build_mismatch,
            },
        }
    }
}

impl Output {
    /// Progress bars and notes on stderr, as these flags allow (bars
    /// only on a terminal).
    fn bars(&self) -> Arc<Bars> {
        Arc::new(Bars::new(!self.quiet && !self.json && tty(), self.quiet))
    }
}

impl ImageArgs {
    /// Opens the image and reads its inventory, drawing progress on
    /// `bars`.
    fn read(&self, path: &Path, bars: &Arc<Bars>) -> Result<(Source, Inventory), Error> {
        esxi::open(path, self.bank, !self.no_md5, bars.clone())
    }
}

/// Ends reading a stream (checking the MD5 an ISO gives) and says on
/// stderr how much of it was read, unless `quiet`.
fn finish(source: &Source, quiet: bool) -> Result<(), Error> {
    if let Some(report) = source.finish()? {
        if !quiet {
            eprintln!("esxstick: {}", report.summary());
        }
    }
    Ok(())
}

fn run(command: Command) -> Result<(), Error> {
    match command {
        Command::Inspect {
            source,
            output,
            no_module_check,
            image,
        } => inspect(&source, &output, !no_module_check, &image),
        Command::Extract {
            source,
            dir,
            image,
            overwrite,
            output,
        } => extract(&source, &dir, &image, overwrite, &output),
        Command::Plan {
            source,
            target,
            size,
            layout,
            new_uuids,
            config,
            image,
            kernelopt,
            output,
        } => plan(
            &source,
            target,
            size,
            layout.as_deref(),
            &image,
            &output,
            &config.made(new_uuids).with_kernelopt(&kernelopt),
        ),
        Command::Write {
            source,
            targets,
            layout,
            new_uuids,
            size,
            config,
            image,
            installer,
            consent,
            no_verify,
            no_module_check,
            output,
        } => {
            let options = WriteOptions {
                yes: consent.yes,
                allow_fixed: consent.allow_fixed,
                made: config.made(new_uuids).with_kernelopt(&installer.kernelopt),
                syslinux: installer.syslinux,
                verify: !no_verify,
                check_modules: !no_module_check,
                output,
            };
            match targets.as_slice() {
                [target] => write(&source, target, layout.as_deref(), size, &image, &options),
                _ => write_many(&source, &targets, layout.as_deref(), size, &image, &options),
            }
        }
        Command::Verify(args) => run_verify(args),
        Command::Backup(args) => backup(&args),
        Command::Update(args) => update(&args),
        Command::Layouts { output } => {
            layouts(output.json);
            Ok(())
        }
        Command::Devices(args) => list_devices(&args),
        Command::Wipe(args) => wipe(&args),
        Command::Completions { shell } => print(&manual::completions(shell)),
        Command::Man => print(&manual::man()),
    }
}

/// Prints `text` as it is (a script, a manual page).
fn print(text: &str) -> Result<(), Error> {
    emit(text);
    Ok(())
}

/// `verify`, from its arguments.
fn run_verify(args: VerifyArgs) -> Result<(), Error> {
    let plan = StickPlan {
        layout: args.layout.as_deref(),
        size: args.size,
        made: args
            .config
            .made(args.new_uuids)
            .with_kernelopt(&args.kernelopt),
    };
    verify(
        &args.target,
        args.against.as_deref(),
        plan,
        &args.image,
        &args.output,
    )
}

/// `inspect --json`: the inventory plus the smallest target that fits.
#[derive(Serialize)]
struct InspectReport<'a> {
    #[serde(flatten)]
    inventory: &'a Inventory,
    /// Smallest target for the default layout; null when the image is
    /// incomplete or cannot fit any target.
    smallest_target: Option<SmallestTarget>,
    /// Why the image cannot be used (the command exits 2), as `--json`
    /// prints failures; null when it can.
    error: Option<render::JsonError<'a>>,
}

fn inspect(
    path: &Path,
    output: &Output,
    check_modules: bool,
    image: &ImageArgs,
) -> Result<(), Error> {
    let json = output.json;
    if let Some(iso) = esxi::installer::open(path)? {
        return installer::inspect(iso, json, check_modules);
    }
    let bars = output.bars();
    let (source, mut inv, refusal) = match image.read(path, &bars) {
        Ok((source, inv)) => (source, inv, None),
        // The bank asked for cannot be used: the report of the image
        // (with its own active bank) says why, then the refusal.
        Err(e @ Error::NoBootbank { .. }) if image.bank.is_some() => {
            let whole = ImageArgs {
                bank: None,
                no_md5: image.no_md5,
            };
            match whole.read(path, &bars) {
                Ok((source, inv)) => (source, inv, Some(e)),
                Err(_) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    let smallest = choose::smallest_target(&inv);
    if check_modules {
        esxi::modules::check(&source, &mut inv)?;
    }
    let outcome = match refusal {
        Some(e) => Err(e),
        None => inv.check_complete(),
    };
    if json {
        let message = outcome.as_ref().err().map(|e| (e.kind(), e.to_string()));
        let report = InspectReport {
            inventory: &inv,
            smallest_target: smallest,
            error: message
                .as_ref()
                .map(|(kind, message)| render::JsonError { kind, message }),
        };
        emit(&to_json(&report));
    } else {
        emit(&render::fit(&render::inventory(&inv, smallest.as_ref())));
    }
    finish(&source, output.quiet)?;
    outcome
}

fn extract(
    source: &Path,
    dir: &Path,
    image: &ImageArgs,
    overwrite: bool,
    output: &Output,
) -> Result<(), Error> {
    if let Some(iso) = esxi::installer::open(source)? {
        return installer::extract(&iso, dir, overwrite, output.json);
    }
    let (source, inv) = image.read(source, &output.bars())?;
    let report = extract::extract(&source, &inv, dir, overwrite)?;
    finish(&source, output.quiet)?;
    if output.json {
        emit(&to_json(&report));
        return Ok(());
    }
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
    emit(&render::fit(&out));
    Ok(())
}

/// The target size: `--size` when given, else the size of TARGET (clap
/// requires one of the two).
fn target_bytes(size: Option<&str>, target: &Path) -> Result<u64, Error> {
    match size {
        Some(size) => esxstick::size::parse_target(size).map_err(Error::BadSize),
        None => device::size(target),
    }
}

/// The layout named with `--layout` (loaded before the source is read,
/// so that a bad file is reported at once).
fn named_layout(name: Option<&str>) -> Result<Option<Layout>, Error> {
    name.map(Layout::load).transpose()
}

/// The layout named, or the default for the source's scheme
/// (`esxi-native` for MBR images, `gpt-minimal` for GPT ones).
fn layout_for(named: Option<Layout>, inv: &Inventory) -> Result<Layout, Error> {
    match named {
        Some(layout) => Ok(layout),
        None => Layout::load(choose::default_layout(inv.source.scheme)),
    }
}

fn plan(
    source: &Path,
    target: Option<PathBuf>,
    size: Option<String>,
    layout: Option<&str>,
    image: &ImageArgs,
    output: &Output,
    made: &Made,
) -> Result<(), Error> {
    let named = named_layout(layout)?;
    let target = target.unwrap_or_default();
    let bytes = target_bytes(size.as_deref(), &target)?;
    let iso = esxi::installer::open(source)?;
    installer::check_flags(iso.is_some(), layout, made, false)?;
    if let Some(iso) = iso {
        return installer::plan(&iso, bytes, made.kernelopt.as_deref(), output.json);
    }
    let (source, inv) = image.read(source, &output.bars())?;
    let layout = layout_for(named, &inv)?;
    let plan = plan::plan(&payload(&source, &inv, made)?, &layout, bytes / SECTOR)?;
    finish(&source, output.quiet)?;
    if output.json {
        emit(&to_json(&plan));
    } else {
        emit(&render::fit(&render::plan(&plan, bytes)));
    }
    Ok(())
}

/// How `write` (and `update`) behave, from their flags.
struct WriteOptions {
    yes: bool,
    allow_fixed: bool,
    made: Made,
    /// --syslinux (installer ISOs).
    syslinux: Option<PathBuf>,
    verify: bool,
    check_modules: bool,
    output: Output,
}

/// How a stick's bank is made besides from the source: the flags that
/// change its plan.
struct Made {
    /// --new-uuids.
    new_uuids: bool,
    /// --state, --oem, --allow-build-mismatch.
    given: Given,
    /// --kernelopt (installer ISOs).
    kernelopt: Option<String>,
}

impl Made {
    /// These flags with `--kernelopt`.
    fn with_kernelopt(self, kernelopt: &args::KernelOptArgs) -> Made {
        Made {
            kernelopt: kernelopt.kernelopt.clone(),
            ..self
        }
    }
}

fn write(
    source: &Path,
    target: &Path,
    layout: Option<&str>,
    size: Option<String>,
    image: &ImageArgs,
    options: &WriteOptions,
) -> Result<(), Error> {
    let named = named_layout(layout)?;
    if size.is_none() && !target.exists() {
        return Err(Error::Target {
            path: target.to_path_buf(),
            refusal: Refusal::Missing,
        });
    }
    let bytes = target_bytes(size.as_deref(), target)?;
    interrupt::install();
    let iso = esxi::installer::open(source)?;
    let syslinux = options.syslinux.is_some();
    installer::check_flags(iso.is_some(), layout, &options.made, syslinux)?;
    if let Some(iso) = iso {
        return installer::write(&iso, target, bytes, options);
    }
    let bars = options.output.bars();
    let (source, inv, plan) = read_and_plan(source, target, named, bytes, image, options, &bars)?;
    let text = render::fit(&render::plan(&plan, bytes));
    let sizes = (plan.target_sectors * SECTOR, plan.write_bytes);
    let mut target = open_target(target, sizes, &source, options, &text)?;
    let outcome = burn::burn(
        &source,
        &inv,
        &plan,
        &mut target,
        &*bars,
        options.verify,
        options.check_modules,
    )
    .inspect_err(|_| bars.clear())?;
    report_write(outcome, options)
}

/// Prints what a write did (JSON with --json) and turns its verification
/// into the exit status.
fn report_write(outcome: burn::Outcome, options: &WriteOptions) -> Result<(), Error> {
    if options.output.json {
        emit(&to_json(&outcome));
    } else {
        if let Some(stream) = outcome
            .write
            .stream
            .as_ref()
            .filter(|_| !options.output.quiet)
        {
            eprintln!("esxstick: {}", stream.summary());
        }
        emit(&render::fit(&render::write(
            &outcome.write,
            outcome.verify.as_ref(),
        )));
    }
    outcome.verify.map_or(Ok(()), verdict)
}

/// Reads the image at `source` (progress on `bars`) and plans a stick of
/// `bytes` for it with the layout `named` (or the default) and the
/// options' flags; a source that is not a disk image, while `target`
/// holds one, is named as maybe swapped with it.
fn read_and_plan(
    source: &Path,
    target: &Path,
    named: Option<Layout>,
    bytes: u64,
    image: &ImageArgs,
    options: &WriteOptions,
    bars: &Arc<Bars>,
) -> Result<(Source, Inventory, plan::Plan), Error> {
    let (source, inv) = image
        .read(source, bars)
        .map_err(|e| maybe_swapped(e, target))?;
    let layout = layout_for(named, &inv)?;
    let payload = payload(&source, &inv, &options.made)?;
    let plan = plan::plan(&payload, &layout, bytes / SECTOR)?;
    Ok((source, inv, plan))
}

/// Opens TARGET for a plan of `plan_bytes` that writes `write_bytes`
/// (from then on a signal stops the write between two writes), prints
/// the plan's `text` unless --json, warns when SOURCE and TARGET may be
/// swapped, and asks for confirmation where needed.
fn open_target(
    path: &Path,
    (plan_bytes, write_bytes): (u64, u64),
    source: &Source,
    options: &WriteOptions,
    text: &str,
) -> Result<Target, Error> {
    interrupt::defer();
    let target = Target::open_sized(path, plan_bytes, write_bytes, source, options.allow_fixed)?;
    let ask = target.needs_confirmation() && !options.yes;
    if ask {
        confirm::can_ask(&target)?;
    }
    if !options.output.json {
        emit(text);
    }
    warn_swapped(&target, options.yes);
    if ask {
        interrupt::at_once_during(|| confirm::confirm(&target))?;
    }
    Ok(target)
}

/// With `yes` (no question asked), a warning when `target` looks like an
/// image to read: SOURCE and TARGET may be swapped.
fn warn_swapped(target: &Target, yes: bool) {
    if target.holds().looks_like_source() && yes {
        eprintln!(
            "esxstick: warning: {} holds {}: SOURCE and TARGET may be swapped",
            target.path().display(),
            target.holds()
        );
    }
}

/// A source that is not a disk image, while the target holds an ESXi
/// image or stick: the arguments may be the wrong way round.
fn maybe_swapped(e: Error, target: &Path) -> Error {
    if !matches!(e, Error::NotADiskImage(_)) || !target.exists() {
        return e;
    }
    let holds = Contents::of(target);
    if holds.is_esxi() {
        Error::MaybeSwapped {
            cause: Box::new(e),
            target: target.to_path_buf(),
            holds,
        }
    } else {
        e
    }
}

/// What `verify --against` knows of how the stick was written.
struct StickPlan<'a> {
    /// The layout, when named.
    layout: Option<&'a str>,
    /// The target size, when given.
    size: Option<String>,
    /// The flags it was written with.
    made: Made,
}

/// What the planner needs of the source, with the source's bank UUIDs
/// dropped for `--new-uuids` and the files given replacing the bank's.
fn payload(source: &Source, inv: &Inventory, made: &Made) -> Result<Payload, Error> {
    let payload = Payload::from_inventory(inv)?;
    let payload = if made.new_uuids {
        payload.with_new_uuids()
    } else {
        payload
    };
    let replacements = config::replacements(source, inv, &made.given, None)?;
    Ok(payload.with_replacements(replacements))
}

fn verify(
    target: &Path,
    against: Option<&Path>,
    written: StickPlan,
    image: &ImageArgs,
    output: &Output,
) -> Result<(), Error> {
    let json = output.json;
    device::check_whole_disk(target)?;
    let size = written
        .size
        .as_deref()
        .map(esxstick::size::parse_target)
        .transpose()
        .map_err(Error::BadSize)?;
    let stick = Source::open_uncached(target)?;
    let report = match against {
        None if installer_verify::is_installer_stick(&stick) => {
            installer_verify::self_check(&stick)?
        }
        None => verify::self_check(&stick)?,
        Some(against) if let Some(iso) = esxi::installer::open(against)? => {
            installer::verify_against(&stick, &iso, size, written.made.kernelopt.as_deref())?
        }
        Some(against) => {
            let (source, inv) = image.read(against, &output.bars())?;
            let payload = payload(&source, &inv, &written.made)?;
            let report =
                verify::against_stick(&stick, &source, &inv, &payload, written.layout, size)?;
            finish(&source, output.quiet)?;
            report
        }
    };
    if json {
        emit(&to_json(&report));
    } else {
        emit(&render::fit(&render::verify(&report)));
    }
    verdict(report)
}

fn backup(args: &BackupArgs) -> Result<(), Error> {
    let json = args.output.json;
    let (source, inv) = args.image.read(&args.source, &args.output.bars())?;
    let keep = args.keep.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let report = backup::backup(&source, &inv, &args.dir, keep)?;
    finish(&source, args.output.quiet)?;
    if json {
        emit(&to_json(&report));
    } else {
        emit(&render::backup(&report));
    }
    Ok(())
}

fn update(args: &UpdateArgs) -> Result<(), Error> {
    let json = args.output.json;
    let bars = args.output.bars();
    let stick = Source::open_uncached(&args.stick)?;
    let stick_inv = esxi::inventory::read(&stick, None)?;
    let opened = match &args.source {
        Some(path) => Some(args.image.read(path, &bars)?),
        None => None,
    };
    let from = opened.as_ref().map(|(s, i)| (s, i));
    let given = args.config.made(false).given;
    let plan = update::plan(&stick, &stick_inv, from, &given)?;
    if !json {
        emit(&render::update_plan(&plan));
    }
    let source = opened.as_ref().map(|(source, _)| source);
    let mut target = Target::open_in_place(&args.stick, &stick, source, args.consent.allow_fixed)?;
    if target.needs_confirmation() && !args.consent.yes {
        confirm::confirm(&target)?;
    }
    let (source, inv) = from.unwrap_or((&stick, &stick_inv));
    let outcome = update::update(source, inv, &plan, &mut target, &*bars)?;
    if json {
        emit(&to_json(&outcome));
    } else {
        if let Some(stream) = outcome
            .update
            .stream
            .as_ref()
            .filter(|_| !args.output.quiet)
        {
            eprintln!("esxstick: {}", stream.summary());
        }
        emit(&render::update(&outcome.update, &outcome.verify));
    }
    verdict(outcome.verify)
}

/// Where `devices` looks: the running system's /sys,
/// /proc/self/mountinfo and /dev, unless the test seams ESXSTICK_SYSFS,
/// ESXSTICK_MOUNTINFO and ESXSTICK_DEV name a tree of the test's own.
fn probe() -> Probe {
    let mut probe = Probe::default();
    let var = |name| std::env::var_os(name).map(PathBuf::from);
    if let Some(path) = var("ESXSTICK_SYSFS") {
        probe.sysfs = path;
    }
    if let Some(path) = var("ESXSTICK_MOUNTINFO") {
        probe.mountinfo = path;
    }
    if let Some(path) = var("ESXSTICK_DEV") {
        probe.dev = path;
    }
    probe
}

/// `devices`: the disks, with `--for`, whether SOURCE's default plan
/// fits each.
fn list_devices(args: &DevicesArgs) -> Result<(), Error> {
    let check = match &args.for_source {
        Some(path) => {
            let bars = args.output.bars();
            let (_, inv) = esxi::open(path, None, true, bars)?;
            Some((path, FitCheck::new(&inv)?))
        }
        None => None,
    };
    let mut list = devices::list(&probe(), args.all);
    if let Some((_, check)) = &check {
        for device in &mut list {
            device.fits = Some(check.check(device.bytes));
        }
    }
    if args.output.json {
        emit(&to_json(&DeviceList {
            schema: devices::SCHEMA,
            all: args.all,
            devices: list,
        }));
    } else {
        let source = check.as_ref().map(|(path, _)| path.as_path());
        emit(&render::fit(&render::devices(&list, args.all, source)));
    }
    Ok(())
}

/// `wipe`: the target checked and confirmed as `write`'s, then given
/// back as one FAT32 partition.
fn wipe(args: &WipeArgs) -> Result<(), Error> {
    let label = wipe::volume_label(&args.label)?;
    // As for write: once the target is open a signal stops the wipe
    // between two writes, but while the user is asked it ends esxstick.
    interrupt::install();
    interrupt::defer();
    let mut target = Target::open_existing(&args.target, args.consent.allow_fixed)?;
    if target.needs_confirmation() && !args.consent.yes {
        interrupt::at_once_during(|| confirm::confirm(&target))?;
    }
    let bars = args.output.bars();
    let report = wipe::wipe(&mut target, &label, &*bars).inspect_err(|_| bars.clear())?;
    if args.output.json {
        emit(&to_json(&report));
    } else {
        emit(&render::fit(&render::wipe(&report)));
    }
    Ok(())
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
        out.push_str(&format!("{}{default}\n    {}\n", l.name, l.description));
    }
    emit(&render::fit(&out));
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
