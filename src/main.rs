//! The esxstick command line: parses arguments, calls the library, prints.
#![deny(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::io::IsTerminal;

use clap::{ArgGroup, Parser, Subcommand};
use esxstick::error::{exit, Refusal};
use esxstick::esxi::extract;
use esxstick::esxi::inventory::{self, Inventory};
use esxstick::image::source::{Source, SourceKind, SECTOR};
use esxstick::ondisk::table::Scheme;
use esxstick::plan::layout::{self, Layout};
use esxstick::plan::{self, Payload, Plan};
use esxstick::progress::Progress;
use esxstick::size::{group, human};
use esxstick::stick::device;
use esxstick::stick::device::Target;
use esxstick::stick::verify::{self, VerifyReport};
use esxstick::stick::write::{self, WriteReport};
use esxstick::Error;
use serde::Serialize;

/// Turn a VMware ESXi 3.5/4.x/5+ disk image into a minimal, bootable,
/// verified USB stick.
///
/// Typical use: `esxstick inspect IMAGE`, then `esxstick plan IMAGE
/// --size 64M` to see what a stick would hold.
///
/// Exit codes: 0 success; 1 verification failed; 2 bad input, bad usage,
/// or the operation could not be carried out (one line on stderr says why).
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How the image is read, shared by every command that reads one.
#[derive(clap::Args)]
struct ImageArgs {
    /// Use this bootbank (5 or 6) instead of the active one (the bootable
    /// bank with the highest updated= in its boot.cfg).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(5..=6))]
    bank: Option<u32>,
    /// Skip the check of an installer ISO's imagedd.md5 (which reads the
    /// whole compressed image, on a second core while a stick is written).
    #[arg(long)]
    no_md5: bool,
}

impl ImageArgs {
    /// Opens the image and reads its inventory; a stream (compressed
    /// image, ISO) then decompresses ahead, on another thread, as far as
    /// the boot partition and the chosen bank reach — and no further.
    fn read(&self, path: &Path, progress: &Progress) -> Result<(Source, Inventory), Error> {
        let source = Source::open_with(path, !self.no_md5)?;
        if self.no_md5 && source.kind() == SourceKind::InstallerIso {
            eprintln!("esxstick: --no-md5: the image's MD5 is not checked");
        }
        source.show_progress(progress.stream());
        let inv = inventory::read(&source, self.bank)?;
        source.prefetch(inv.needed_bytes());
        Ok((source, inv))
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

#[derive(Subcommand)]
enum Command {
    /// Show what an ESXi image holds: partitions, bootbanks, the active
    /// bank and why, its modules, and the smallest stick that fits.
    ///
    /// Reads the image in place (nothing is mounted or written). Exits 2
    /// when the image is unusable, including when boot.cfg names a module
    /// the bank lacks (the report is still printed).
    Inspect {
        /// ESXi disk image (VMware-VMvisor-big-*.dd), compressed or not
        /// (gzip, bzip2, xz, zstd), an installer ISO that carries one, or a
        /// block device (an existing stick).
        source: PathBuf,
        /// Print the inventory as JSON (schema "esxstick.inventory/1",
        /// documented in README.md).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        image: ImageArgs,
    },
    /// Copy the boot partition (boot.img) and the active bootbank's files
    /// into DIR, with a SHA256SUMS that `sha256sum -c` accepts.
    ///
    /// DIR is created if needed. Output appears only when complete; on an
    /// error nothing that looks complete is left behind.
    Extract {
        /// ESXi disk image (compressed or not), installer ISO, or block
        /// device; see `esxstick inspect --help`.
        source: PathBuf,
        /// Output directory; must be empty unless --force.
        dir: PathBuf,
        #[command(flatten)]
        image: ImageArgs,
        /// Write into DIR even if it holds files (same names are replaced).
        #[arg(long)]
        force: bool,
    },
    /// Compute the stick layout for a target size and print it: a dry
    /// run that touches nothing.
    ///
    /// Prints the partition table, a to-scale disk map, the FAT parameters
    /// of each volume, what is copied where, free space and headroom, and
    /// the bytes `write` would write. When the image does not fit, exits 2
    /// with how many bytes it needs.
    #[command(group(ArgGroup::new("size-of").required(true).args(["target", "size"])))]
    Plan {
        /// ESXi disk image (compressed or not), installer ISO, or block
        /// device; see `esxstick inspect --help`.
        source: PathBuf,
        /// A block device or image file whose size is the target size.
        target: Option<PathBuf>,
        /// Target size: bytes, or with a unit — K/M/G (powers of 1024) or
        /// KB/MB/GB (powers of 1000): 65273856, 64M, 64MB.
        #[arg(long, value_name = "SIZE")]
        size: Option<String>,
        /// A built-in layout name (see `esxstick layouts`) or a layout file.
        #[arg(long, value_name = "NAME|FILE", default_value = layout::DEFAULT)]
        layout: String,
        #[command(flatten)]
        image: ImageArgs,
        /// Print the plan as JSON (schema "esxstick.plan/1", see README.md).
        #[arg(long)]
        json: bool,
    },
    /// Write a bootable stick: the plan that `plan` prints, carried out on
    /// a block device or image file, then verified.
    ///
    /// TARGET is a whole disk (/dev/sdX, /dev/loopN) or an image file
    /// (created, or extended, as a sparse file; give --size for a new
    /// one). Before anything is written the target is checked: never a
    /// partition, a mounted disk, the source itself, or a fixed disk
    /// without --force; its vendor, model, size and serial are shown and
    /// must be confirmed on a terminal unless --yes (without a terminal,
    /// --yes is required). The old partition table is invalidated first
    /// and the new one written last, so an interrupted write leaves a
    /// stick without a valid table, never a half-valid one.
    Write {
        /// ESXi disk image (compressed or not), installer ISO, or block
        /// device; see `esxstick inspect --help`.
        source: PathBuf,
        /// The stick: a whole block device or an image file.
        target: PathBuf,
        /// A built-in layout name (see `esxstick layouts`) or a layout file.
        #[arg(long, value_name = "NAME|FILE", default_value = layout::DEFAULT)]
        layout: String,
        /// Plan for this size instead of the target's (required for a new
        /// image file): 64M, 64MB, 65273856.
        #[arg(long, value_name = "SIZE")]
        size: Option<String>,
        #[command(flatten)]
        image: ImageArgs,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Allow a non-removable disk.
        #[arg(long)]
        force: bool,
        /// Skip reading the stick back to verify it.
        #[arg(long)]
        no_verify: bool,
        /// No progress bars.
        #[arg(long, short)]
        quiet: bool,
        /// Print only a final JSON report (schemas "esxstick.write/1" and
        /// "esxstick.verify/1").
        #[arg(long)]
        json: bool,
    },
    /// Read a stick back and prove it: against its source (--against), or
    /// on its own.
    ///
    /// With --against: the partition table as planned, the boot partition
    /// byte-equal to the source's (after the planned BPB patch), every
    /// bank file SHA-256-equal to the source's, FATs consistent. The layout
    /// is recognised from the stick's table unless --layout is given.
    /// Without: a sane table, a boot sector and ldlinux.sys, consistent
    /// FATs, every module boot.cfg names present, and every gzip module
    /// complete with a correct CRC-32 and length. Reads bypass the page
    /// cache. Exit 0 all good, 1 verification failed, 2 unusable input.
    Verify {
        /// The stick: a block device or image file.
        target: PathBuf,
        /// The ESXi image the stick was written from.
        #[arg(long, value_name = "SOURCE")]
        against: Option<PathBuf>,
        /// The layout the stick was written with (default: recognised).
        #[arg(long, value_name = "NAME|FILE", requires = "against")]
        layout: Option<String>,
        #[command(flatten)]
        image: ImageArgs,
        /// Print the report as JSON (schema "esxstick.verify/1").
        #[arg(long)]
        json: bool,
    },
    /// List the built-in layouts with a line on each.
    Layouts {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Appends one formatted line to a String (formatting into a String
/// cannot fail).
macro_rules! line {
    ($out:expr) => {
        $out.push('\n')
    };
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}

/// Writes text to stdout; a reader that went away (`| head`) is not an
/// error worth reporting.
fn emit(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

/// Whether stderr is a terminal (where progress bars may be drawn).
fn tty() -> bool {
    std::io::stderr().is_terminal()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = run(cli.command);
    esxstick::stick::fault::report();
    match result {
        Ok(()) => ExitCode::from(exit::OK as u8),
        Err(e) => {
            eprintln!("esxstick: {e}");
            ExitCode::from(e.exit_code() as u8)
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

#[derive(Serialize)]
struct SmallestTarget {
    layout: String,
    bytes: u64,
}

fn run(command: Command) -> Result<(), Error> {
    match command {
        Command::Inspect {
            source,
            json,
            image,
        } => {
            let (source, inv) = image.read(&source, &Progress::new(!json && tty()))?;
            let smallest = smallest_target(&inv);
            if json {
                let report = InspectReport {
                    inventory: &inv,
                    smallest_target: smallest,
                };
                emit(&to_json(&report));
            } else {
                emit(&render_inventory(&inv, smallest.as_ref()));
            }
            finish(&source)?;
            inv.check_complete()
        }
        Command::Extract {
            source,
            dir,
            image,
            force,
        } => {
            let (source, inv) = image.read(&source, &Progress::new(tty()))?;
            let report = extract::extract(&source, &inv, &dir, force)?;
            finish(&source)?;
            let mut out = String::new();
            for f in &report.files {
                line!(out, "{:>14}  {}", group(f.bytes), f.path);
            }
            line!(
                out,
                "extracted {} files from bank {} into {} (checksums in {})",
                report.files.len(),
                report.bank,
                report.dir.display(),
                extract::SUMS
            );
            emit(&out);
            Ok(())
        }
        Command::Plan {
            source,
            target,
            size,
            layout,
            image,
            json,
        } => {
            let layout = Layout::load(&layout)?;
            let bytes = match (size, target) {
                (Some(size), _) => esxstick::size::parse(&size).map_err(Error::BadSize)?,
                (None, Some(target)) => device::size(&target)?,
                (None, None) => unreachable!("clap requires --size or TARGET"),
            };
            let (source, inv) = image.read(&source, &Progress::new(!json && tty()))?;
            let payload = Payload::from_inventory(&inv)?;
            let plan = plan::plan(&payload, &layout, bytes / SECTOR)?;
            finish(&source)?;
            if json {
                emit(&to_json(&plan));
            } else {
                emit(&render_plan(&plan, bytes));
            }
            Ok(())
        }
        Command::Write {
            source,
            target,
            layout,
            size,
            image,
            yes,
            force,
            no_verify,
            quiet,
            json,
        } => {
            let layout = Layout::load(&layout)?;
            let bytes = match size {
                Some(size) => esxstick::size::parse(&size).map_err(Error::BadSize)?,
                None if target.exists() => device::size(&target)?,
                None => {
                    return Err(Error::Target {
                        path: target,
                        refusal: Refusal::Missing,
                    })
                }
            };
            let progress = Progress::new(!quiet && !json && tty());
            let (source, inv) = image.read(&source, &progress)?;
            let payload = Payload::from_inventory(&inv)?;
            let plan = plan::plan(&payload, &layout, bytes / SECTOR)?;
            if !json {
                emit(&render_plan(&plan, bytes));
            }
            let mut target = Target::open(&target, plan.target_sectors * SECTOR, &source, force)?;
            if target.needs_confirmation() && !yes {
                confirm(&target)?;
            }
            let mut report =
                write::write(&source, &inv, &plan, &mut target, &progress, !no_verify)?;
            if let (Some(stream), false) = (&report.stream, json) {
                eprintln!("esxstick: {}", stream.summary());
            }
            let verified = if no_verify {
                None
            } else {
                let phase = progress.phase("verify", plan.write_bytes);
                let stick = Source::open_uncached(target.path())?;
                let result = verify::against(&stick, &source, &inv, &plan, &report.sha256)?;
                phase.inc(plan.write_bytes);
                report.phases.push(phase.finish());
                Some(result)
            };
            if json {
                emit(&to_json(&WriteOutput {
                    write: &report,
                    verify: verified.as_ref(),
                }));
            } else {
                emit(&render_write(&report, verified.as_ref()));
            }
            verified.map_or(Ok(()), verdict)
        }
        Command::Verify {
            target,
            against,
            layout,
            image,
            json,
        } => {
            let stick = Source::open_uncached(&target)?;
            let report = match against {
                None => verify::self_check(&stick)?,
                Some(against) => {
                    let (source, inv) = image.read(&against, &Progress::new(!json && tty()))?;
                    let payload = Payload::from_inventory(&inv)?;
                    let plan = plan_of_stick(&stick, &payload, layout.as_deref())?;
                    let report =
                        verify::against(&stick, &source, &inv, &plan, &Default::default())?;
                    finish(&source)?;
                    report
                }
            };
            if json {
                emit(&to_json(&report));
            } else {
                emit(&render_verify(&report));
            }
            verdict(report)
        }
        Command::Layouts { json } => {
            let list = layout::builtin();
            if json {
                emit(&to_json(&list));
            } else {
                let mut out = String::new();
                for l in list {
                    let default = if l.name == layout::DEFAULT {
                        " (default)"
                    } else {
                        ""
                    };
                    line!(out, "{:<16} {}{default}", l.name, l.description);
                }
                emit(&out);
            }
            Ok(())
        }
    }
}

/// `write --json`: what was written and how it verified.
#[derive(Serialize)]
struct WriteOutput<'a> {
    write: &'a WriteReport,
    verify: Option<&'a VerifyReport>,
}

/// Asks on the terminal before overwriting `target`; without a terminal
/// there is no one to ask, so the answer is no.
fn confirm(target: &Target) -> Result<(), Error> {
    let refuse = |refusal| Error::Target {
        path: target.path().to_path_buf(),
        refusal,
    };
    if !std::io::stdin().is_terminal() {
        return Err(refuse(Refusal::NoTerminal));
    }
    eprint!(
        "esxstick will ERASE {}\nType yes to continue: ",
        target.description()
    );
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|_| refuse(Refusal::ConfirmationUnreadable))?;
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(refuse(Refusal::NotConfirmed))
    }
}

/// The plan the stick was written with: the named layout, or the built-in
/// layout whose table matches the stick's (the default if none does, so
/// the report shows the differences).
fn plan_of_stick(stick: &Source, payload: &Payload, layout: Option<&str>) -> Result<Plan, Error> {
    let sectors = stick.len() / SECTOR;
    if let Some(name) = layout {
        return plan::plan(payload, &Layout::load(name)?, sectors);
    }
    let table = esxstick::ondisk::table::read(stick).ok();
    let mut fallback = None;
    for summary in layout::builtin() {
        let Ok(plan) = Layout::load(&summary.name).and_then(|l| plan::plan(payload, &l, sectors))
        else {
            continue;
        };
        let matches = table.as_ref().is_some_and(|t| {
            t.partitions.len() == plan.partitions.len()
                && plan
                    .partitions
                    .iter()
                    .all(|p| t.get(p.entry) == Some(&write::as_partition(p)))
        });
        if matches {
            return Ok(plan);
        }
        if fallback.is_none() {
            fallback = Some(plan);
        }
    }
    match fallback {
        Some(plan) => Ok(plan),
        None => plan::plan(payload, &Layout::load(layout::DEFAULT)?, sectors),
    }
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

fn render_verify(report: &VerifyReport) -> String {
    let mut out = String::new();
    for c in &report.checks {
        line!(
            out,
            "{} {}: {}",
            if c.ok { "ok  " } else { "FAIL" },
            c.item,
            c.detail
        );
    }
    let failed = report.checks.iter().filter(|c| !c.ok).count();
    line!(
        out,
        "{} ({}{}): {} checks, {} failed",
        if report.ok {
            "verified"
        } else {
            "NOT verified"
        },
        report.mode,
        report
            .layout
            .as_deref()
            .map(|l| format!(", layout {l}"))
            .unwrap_or_default(),
        report.checks.len(),
        failed
    );
    out
}

fn render_write(report: &WriteReport, verified: Option<&VerifyReport>) -> String {
    let mut out = String::new();
    let seconds: f64 = report.phases.iter().map(|p| p.seconds).sum();
    line!(
        out,
        "\nwrote {} bytes ({}) to {} in {seconds:.1} s",
        group(report.bytes_written),
        human(report.bytes_written),
        report.target
    );
    match verified {
        Some(v) => out.push_str(&render_verify(v)),
        None => line!(
            out,
            "not verified (--no-verify); run esxstick verify to check it"
        ),
    }
    out
}

fn smallest_target(inv: &Inventory) -> Option<SmallestTarget> {
    let layout_name = match inv.source.scheme {
        Scheme::Mbr => layout::DEFAULT,
        Scheme::Gpt => "gpt-minimal",
    };
    let layout = Layout::load(layout_name).ok()?;
    let payload = Payload::from_inventory(inv).ok()?;
    let sectors = plan::min_target_sectors(&payload, &layout).ok()?;
    Some(SmallestTarget {
        layout: layout.name,
        bytes: sectors * SECTOR,
    })
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Serializing plain structs of strings and numbers cannot fail.
    serde_json::to_string_pretty(value).unwrap_or_default() + "\n"
}

fn render_inventory(inv: &Inventory, smallest: Option<&SmallestTarget>) -> String {
    let mut out = String::new();
    let s = &inv.source;
    line!(
        out,
        "{}: {} ({} bytes), {} partition table, {} sectors",
        s.path,
        human(s.bytes),
        group(s.bytes),
        scheme_name(s.scheme),
        group(s.disk_sectors)
    );
    if let Some(o) = &s.origin {
        let from = if o.container.is_empty() {
            String::new()
        } else {
            format!(" ({})", o.container)
        };
        line!(
            out,
            "Read from a {} stream{from}, only as far as needed: partitions after 6 are not listed",
            o.codec()
        );
    }
    line!(out, "\nPartitions (by entry number; not disk order):");
    line!(
        out,
        "  {:>2}  {:<11} {:<20} {:>9} {:>9} {:>9} {:>10} {:>3}  {:<5} {:<11} {:<8} {:>10}",
        "#",
        "role",
        "type",
        "start",
        "end",
        "sectors",
        "size",
        "act",
        "fs",
        "label",
        "vol id",
        "used"
    );
    for p in &inv.partitions {
        let t = &p.partition;
        let kind = format!("{} {}", short_code(&t.kind.code()), p.type_name);
        let (fs, label, id, used) = match &p.fs {
            Some(f) => (
                f.fat_type.to_string(),
                f.label.clone(),
                f.volume_id.clone(),
                human(f.used_bytes),
            ),
            None if p.fs_error.is_some() => {
                ("bad".into(), String::new(), String::new(), String::new())
            }
            None => Default::default(),
        };
        line!(
            out,
            "  {:>2}  {:<11} {:<20} {:>9} {:>9} {:>9} {:>10} {:>3}  {:<5} {:<11} {:<8} {:>10}",
            t.number,
            p.role.name(),
            kind,
            t.start,
            t.end(),
            t.sectors,
            human(p.bytes),
            if t.active { "*" } else { "" },
            fs,
            label,
            id,
            used
        );
        if let Some(e) = &p.fs_error {
            line!(out, "      ! {e}");
        }
    }
    let b = &inv.boot;
    line!(
        out,
        "\nBoot partition {}: {} sectors, files end at sector {} ({} in use); BPB hidden sectors {}",
        b.partition,
        b.sectors,
        b.used_sectors,
        human(b.used_sectors * SECTOR),
        b.boot_sector.hidden_sectors
    );
    line!(out, "\nBootbanks:");
    for bank in &inv.banks {
        let build = bank
            .boot_cfg
            .as_ref()
            .map(|c| {
                format!(
                    "build {}, updated={}",
                    c.build.as_deref().unwrap_or("?"),
                    c.updated.map_or("?".to_string(), |u| u.to_string())
                )
            })
            .unwrap_or_default();
        line!(out, "  {}  {:<45} {}", bank.partition, bank.status, build);
    }
    line!(
        out,
        "Active bank: {} — {}",
        inv.active_bank.partition,
        inv.active_bank.reason
    );
    if let Some(cfg) = inv.boot_cfg() {
        line!(
            out,
            "boot.cfg: kernel={} kernelopt={:?} modules={}",
            cfg.kernel,
            cfg.kernelopt,
            cfg.modules.len()
        );
    }
    line!(out, "\nFiles of bank {}:", inv.active_bank.partition);
    for m in &inv.modules {
        line!(
            out,
            "  {:<7} {:<16} {:>14}  {}",
            m.role,
            m.name,
            m.bytes.map(group).unwrap_or_default(),
            if m.present { "present" } else { "MISSING" }
        );
    }
    let present = inv.modules.iter().filter(|m| m.present).count();
    line!(
        out,
        "Payload: {} bytes ({}) in {} files",
        group(inv.payload_bytes),
        human(inv.payload_bytes),
        present
    );
    if let Some(t) = smallest {
        line!(
            out,
            "Smallest target ({} layout): {} bytes ({}, a {} stick)",
            t.layout,
            group(t.bytes),
            human(t.bytes),
            esxstick::size::common_size_for(t.bytes)
        );
    }
    out
}

fn scheme_name(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Mbr => "MBR",
        Scheme::Gpt => "GPT",
    }
}

fn render_plan(plan: &Plan, bytes: u64) -> String {
    let mut out = String::new();
    line!(
        out,
        "Plan: layout {} ({}) on a target of {} bytes ({}, {} sectors), geometry {} heads x {} sectors/track",
        plan.layout,
        scheme_name(plan.scheme),
        group(bytes),
        human(bytes),
        group(plan.target_sectors),
        plan.heads,
        plan.sectors_per_track
    );
    line!(
        out,
        "\n  {:>5}  {:<11} {:<9} {:>9} {:>9} {:>9} {:>10} {:>3}  {:<13} {:<13} {}",
        "entry",
        "role",
        "type",
        "start",
        "end",
        "sectors",
        "size",
        "act",
        "CHS start",
        "CHS end",
        "EBR"
    );
    for p in &plan.partitions {
        let chs = |c: [u32; 3]| format!("{}/{}/{}", c[0], c[1], c[2]);
        line!(
            out,
            "  {:>5}  {:<11} {:<9} {:>9} {:>9} {:>9} {:>10} {:>3}  {:<13} {:<13} {}",
            p.entry,
            p.role,
            short_code(&p.kind),
            p.start,
            p.end,
            p.sectors,
            human(p.sectors * SECTOR),
            if p.active { "*" } else { "" },
            chs(p.chs_start),
            chs(p.chs_end),
            p.ebr.map(|e| e.to_string()).unwrap_or_default()
        );
    }
    line!(out, "\n  disk map: |{}|", disk_map(plan, 64));
    line!(
        out,
        "            B boot, 5/6 bootbanks, e EBR/extended gap, . unpartitioned"
    );

    let b = &plan.boot;
    line!(
        out,
        "\nBoot partition {}: copy {} sectors ({}, up to its last used cluster) from source sector {} to sector {}; partition {} sectors{}",
        plan.partitions.iter().find(|p| p.role == "boot").map_or(0, |p| p.entry),
        b.copy_sectors,
        human(b.copy_sectors * SECTOR),
        b.source_start,
        b.target_start,
        b.partition_sectors,
        if b.trimmed { " (trimmed to its used extent)" } else { "" }
    );
    for patch in &b.bpb_patches {
        line!(
            out,
            "  BPB patch: {} (offset 0x{:02x}) {} -> {}",
            patch.field,
            patch.offset,
            patch.old,
            patch.new
        );
    }
    if let Some([first, last]) = b.bad_clusters {
        line!(
            out,
            "  FAT: clusters {first}–{last} lie past the partition end and are marked bad"
        );
    }
    for bank in &plan.banks {
        let f = &bank.fat;
        line!(
        out,
            "\nBank {}: new FAT16 \"{}\" volume ID {}: {} clusters of {}, {} sectors per FAT x {}, {} root entries",
            bank.entry,
            bank.label,
            bank.volume_id,
            group(u64::from(bank.clusters)),
            human(bank.cluster_bytes),
            f.sectors_per_fat,
            f.fats,
            f.root_entries
        );
        if bank.files.is_empty() {
            line!(
                out,
                "  empty alternate bank; boot.cfg with bootstate=3 (not bootable)"
            );
        } else {
            let total: u64 = bank.files.iter().map(|f| f.bytes).sum();
            line!(
                out,
                "  copies {} files, {} bytes ({}) from the source bank",
                bank.files.len(),
                group(total),
                human(total)
            );
        }
        line!(
            out,
            "  free after copying: {} (headroom needed: {})",
            human(bank.free_bytes),
            human(bank.headroom_bytes)
        );
    }
    line!(
        out,
        "\nUnpartitioned at the end: {} sectors ({})",
        group(plan.unpartitioned_sectors),
        human(plan.unpartitioned_sectors * SECTOR)
    );
    line!(
        out,
        "write would write {} bytes ({}), never the free space",
        group(plan.write_bytes),
        human(plan.write_bytes)
    );
    for note in &plan.notes {
        line!(out, "note: {note}");
    }
    out
}

/// A one-line picture of the target, `width` cells to scale.
fn disk_map(plan: &Plan, width: u64) -> String {
    (0..width)
        .map(|i| {
            let lba = (2 * i + 1) * plan.target_sectors / (2 * width);
            let hit = plan
                .partitions
                .iter()
                .filter(|p| p.start <= lba && lba <= p.end);
            let mut c = '.';
            for p in hit {
                c = match p.role {
                    "boot" => 'B',
                    "extended" if c == '.' => 'e',
                    "bootbank" => '5',
                    "altbootbank" => '6',
                    _ => c,
                };
            }
            c
        })
        .collect()
}

/// `0x04` for MBR types; GPT GUIDs shortened to their first group.
fn short_code(code: &str) -> String {
    code.split('-').next().unwrap_or(code).to_string()
}
