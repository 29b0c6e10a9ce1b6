//! `write`: carry out a plan on a target, in an order that never leaves a
//! stick that looks valid but is not.
//!
//! 1. Invalidate: zero sector 0 (the MBR and its signature) and the GPT
//!    areas at both ends; fsync.
//! 2. Copy the boot partition's used extent, BPB patched as planned.
//! 3. Format each bank with fatfs (label, volume ID) and stream the files.
//! 4. fsync.
//! 5. Write the rest of the table — the EBRs (MBR), or the backup GPT and
//!    the primary entries (GPT) — and fsync; only then the primary GPT
//!    header and sector 0 (the MBR, or the protective MBR) with the
//!    source's boot code; fsync; ask the kernel to re-read the table.
//!
//! Only what the stick needs is written — never the free space.

use std::cell::Cell;
use std::convert::Infallible;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::Path;

use fscommon::StreamSlice;
use serde::Serialize;

use crate::digest::{Digests, FileHasher};
use crate::error::{Error, FatProblem, Result, StickState};
use crate::esxi::inventory::{Inventory, Module};
use crate::esxi::modules::Checker;
use crate::image::source::{FileView, Source, SECTOR};
use crate::image::stream::StreamReport;
use crate::ioctl;
use crate::ondisk::bpb::BootSector;
use crate::ondisk::cache::MetaCache;
use crate::ondisk::fat::{FileEntry, Volume};
use crate::ondisk::format;
use crate::ondisk::table::COMMIT_BYTES;
use crate::plan::{BankPlan, PayloadFile, Plan};
use crate::progress::{Observer, Phase, PhaseTime, Timer};
use crate::stick::device::{Target, TargetKind};
use crate::stick::fault;

/// Version of the JSON report `write --json` prints.
pub const SCHEMA: &str = "esxstick.write/1";
/// What a write says when the modules' check is skipped.
pub(super) const NO_MODULE_CHECK: &str =
    "--no-module-check: the modules' gzip streams are not checked";
/// Sectors cleared at each end of the disk: a GPT header and its entries.
const GPT_AREA: u64 = 33;

/// What `write` did.
#[derive(Debug, Clone, Serialize)]
pub struct WriteReport {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// The target's path.
    pub target: String,
    /// The layout written.
    pub layout: String,
    /// Bytes the plan said would be written.
    pub plan_write_bytes: u64,
    /// Bytes actually passed to write calls on the target.
    pub bytes_written: u64,
    /// Time per phase.
    pub phases: Vec<PhaseTime>,
    /// SHA-256 of every file copied into bank 5, as read from the source
    /// (computed when a verification follows; empty with --no-verify),
    /// serialised as `sha256`; the BLAKE3 sums the read-back is compared
    /// with ride along unserialised.
    #[serde(flatten)]
    pub digests: Digests,
    /// For a compressed source: how much of it was read, and its MD5.
    pub stream: Option<StreamReport>,
    /// The modules whose gzip streams were checked (CRC-32 and length)
    /// before the table was written; `null` with --no-module-check.
    pub modules_checked: Option<Vec<String>>,
}

/// Writes `plan` (made from `inv` of `source`) onto `target`. With
/// `hash`, the hashes of every file are computed from the bytes copied
/// (for the verification that follows) and reported. With
/// `check_modules`, every module's gzip stream is checked from the bytes
/// copied, on a second core, and a damaged one stops the write before the
/// table is written ([`Error::DamagedModule`]).
pub fn write(
    source: &Source,
    inv: &Inventory,
    plan: &Plan,
    target: &mut Target,
    observer: &dyn Observer,
    hash: bool,
    check_modules: bool,
) -> Result<WriteReport> {
    let gate = Gate::Own { check_modules };
    write_gated(source, inv, plan, target, observer, hash, &gate)
}

/// What is proven of the source before any table is written: its modules'
/// gzip streams and, for a compressed source, its MD5.
#[derive(Debug, Clone, Default)]
pub struct Proven {
    /// The modules checked; `None` when the check was skipped.
    pub modules_checked: Option<Vec<String>>,
    /// For a compressed source: how much was read, and its MD5.
    pub stream: Option<StreamReport>,
}

/// Who proves the source before the table is written.
pub(super) enum Gate<'a> {
    /// This write, from the bytes it copies (modules when
    /// `check_modules`), and then the stream.
    Own {
        /// Whether the modules are checked.
        check_modules: bool,
    },
    /// Someone else (one check for several targets): waits for its
    /// verdict.
    Shared(&'a (dyn Fn() -> Result<Proven> + Sync)),
}

/// [`write`], with the checks before the table made by `gate`.
pub(super) fn write_gated(
    source: &Source,
    inv: &Inventory,
    plan: &Plan,
    target: &mut Target,
    observer: &dyn Observer,
    hash: bool,
    gate: &Gate,
) -> Result<WriteReport> {
    if matches!(
        gate,
        Gate::Own {
            check_modules: false
        }
    ) {
        observer.warning(NO_MODULE_CHECK);
    }
    target.prepare(plan.target_sectors * SECTOR)?;
    let written = Cell::new(0);
    let disk = Disk::new(target, &written, observer);
    let job = Job {
        source,
        inv,
        plan,
        disk: &disk,
        observer,
    };
    let mut phases = vec![job.prepare()?, job.boot()?];
    let checker = matches!(
        gate,
        Gate::Own {
            check_modules: true
        }
    )
    .then(|| Checker::start(inv.active_bank.partition));
    let (time, digests) = job.banks(hash, checker.as_ref())?;
    phases.push(time);
    let proven = match gate {
        Gate::Own { .. } => Proven {
            modules_checked: checker
                .map(|c| c.finish().map_err(job.fail(WriteStep::ModuleCheck)))
                .transpose()?,
            stream: job.check_source(&mut phases)?,
        },
        Gate::Shared(wait) => wait().map_err(job.fail(WriteStep::SourceCheck))?,
    };
    phases.push(job.tables(target.kind())?);
    Ok(WriteReport {
        schema: SCHEMA,
        target: target.path().display().to_string(),
        layout: plan.layout.clone(),
        plan_write_bytes: plan.write_bytes,
        bytes_written: written.get(),
        phases,
        digests,
        stream: proven.stream,
        modules_checked: proven.modules_checked,
    })
}

/// Reads every file `plan` copies from `source` (of inventory `inv`) as
/// a write would, into nothing: each file's hashes added to `digests`
/// when given, each module's bytes handed to `checker` when given. One
/// pass proves the source for several targets written at once.
pub(super) fn read_through(
    source: &Source,
    inv: &Inventory,
    plan: &Plan,
    checker: Option<&Checker>,
    mut digests: Option<&mut Digests>,
) -> Result<()> {
    let mut volume = None;
    for f in plan.banks.iter().flat_map(|b| &b.files) {
        let checker = checker.filter(|_| is_module(&inv.modules, &f.name));
        let mut tee = Tee {
            inner: io::sink(),
            hash: digests.is_some().then(FileHasher::default),
            checker,
        };
        if let Some(checker) = checker {
            checker.begin(&f.name);
        }
        match &f.replaced {
            Some(r) => tee.write_all(&r.bytes).map_err(|e| Error::Write {
                path: f.name.clone().into(),
                source: e,
            })?,
            None => {
                let v = match volume {
                    Some(ref v) => v,
                    None => {
                        volume.insert(Volume::open(source, &inv.active_partition()?.partition)?)
                    }
                };
                let entry = FileEntry {
                    path: f.name.clone(),
                    bytes: f.bytes,
                };
                v.copy_file(&entry, &mut tee)?;
            }
        }
        if let Some(checker) = checker {
            checker.end();
        }
        if let (Some(map), Some(hash)) = (digests.as_deref_mut(), tee.hash) {
            map.insert(f.name.clone(), hash.finish());
        }
    }
    Ok(())
}

/// Whether `name` is one of the bank's kernel and `modules` (whose gzip
/// streams are checked).
fn is_module(modules: &[Module], name: &str) -> bool {
    modules
        .iter()
        .any(|m| m.is_module() && m.name.eq_ignore_ascii_case(name))
}

/// The step of a write that failed, as [`Error::WriteFailed`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStep {
    /// Zeroing the old partition table.
    Invalidate,
    /// Formatting the installer stick's FAT32 volume and copying the
    /// ISO's files.
    InstallerFiles,
    /// Installing SYSLINUX (`--syslinux`).
    Syslinux,
    /// Copying the boot partition.
    BootPartition,
    /// Formatting and filling a bank.
    Bank(u32),
    /// Syncing the data before the table.
    Sync,
    /// Checking the modules copied (their gzip streams).
    ModuleCheck,
    /// Checking the rest of a compressed source (its MD5).
    SourceCheck,
    /// Writing the partition table.
    Table,
    /// Reading the stick back to verify it.
    Verify,
}

impl std::fmt::Display for WriteStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteStep::Invalidate => f.write_str("invalidating the old partition table"),
            WriteStep::InstallerFiles => f.write_str("the FAT32 volume"),
            WriteStep::Syslinux => f.write_str("installing SYSLINUX"),
            WriteStep::BootPartition => f.write_str("the boot partition"),
            WriteStep::Bank(n) => write!(f, "bank {n}"),
            WriteStep::Sync => f.write_str("syncing the data"),
            WriteStep::ModuleCheck => f.write_str("the check of the modules"),
            WriteStep::SourceCheck => f.write_str("the check of the source image"),
            WriteStep::Table => f.write_str("the partition table"),
            WriteStep::Verify => f.write_str("the verification"),
        }
    }
}

/// One write in progress: what is written where, and who hears of it.
struct Job<'a> {
    source: &'a Source,
    inv: &'a Inventory,
    plan: &'a Plan,
    disk: &'a Disk<'a>,
    observer: &'a dyn Observer,
}

impl Job<'_> {
    /// The error for a failure at `step`: an interruption, or a
    /// failure, saying whether anything was written.
    fn fail(&self, step: WriteStep) -> impl FnOnce(Error) -> Error {
        failure(self.disk, step)
    }

    /// The error for an I/O failure at `step`.
    fn io_fail(&self, step: WriteStep) -> impl FnOnce(io::Error) -> Error {
        let (fail, path) = (self.fail(step), self.disk.path.to_path_buf());
        move |source| fail(Error::Write { path, source })
    }

    /// Step 1: the old table made invalid.
    fn prepare(&self) -> Result<PhaseTime> {
        let phase = Timer::start(self.observer, Phase::Prepare, 3 * GPT_AREA * SECTOR);
        invalidate(self.disk, self.disk.len).map_err(self.io_fail(WriteStep::Invalidate))?;
        phase.inc(3 * GPT_AREA * SECTOR);
        Ok(phase.finish())
    }

    /// Step 2: the boot partition's used extent, BPB patched.
    fn boot(&self) -> Result<PhaseTime> {
        let total = self.plan.boot.copy_sectors * SECTOR;
        let phase = Timer::start(self.observer, Phase::BootPartition, total);
        copy_boot(self.source, self.inv, self.plan, self.disk, &|n| {
            phase.inc(n)
        })
        .map_err(self.fail(WriteStep::BootPartition))?;
        Ok(phase.finish())
    }

    /// Steps 3 and 4: every bank formatted and filled, then synced; with
    /// `hash`, the hashes of every file copied; with `checker`, every
    /// module's bytes handed to it as they are copied.
    fn banks(&self, hash: bool, checker: Option<&Checker>) -> Result<(PhaseTime, Digests)> {
        let banks = &self.plan.banks;
        let files: u64 = banks.iter().flat_map(|b| &b.files).map(|f| f.bytes).sum();
        let phase = Timer::start(self.observer, Phase::Modules, files);
        let mut digests = Digests::default();
        for bank in banks {
            let fill = Fill {
                source: self.source,
                inv: self.inv,
                bank,
                disk: self.disk,
                done: &|n| phase.inc(n),
                checker,
                modules: &self.inv.modules,
            };
            write_bank(self.plan, &fill, hash.then_some(&mut digests))
                .map_err(self.fail(WriteStep::Bank(bank.entry)))?;
        }
        self.disk.sync().map_err(self.io_fail(WriteStep::Sync))?;
        Ok((phase.finish(), digests))
    }

    /// A stream's MD5 covers the whole image: the table is written only
    /// once the rest of it has been hashed (on another core meanwhile).
    fn check_source(&self, phases: &mut Vec<PhaseTime>) -> Result<Option<StreamReport>> {
        if self.source.origin().is_none() {
            return Ok(None);
        }
        let phase = Timer::start(self.observer, Phase::SourceCheck, 0);
        let stream = self
            .source
            .finish()
            .map_err(self.fail(WriteStep::SourceCheck))?;
        phases.push(phase.finish());
        Ok(stream)
    }

    /// Step 5: the partition table, its commit sectors last; the kernel is
    /// asked to re-read it.
    fn tables(&self, kind: TargetKind) -> Result<PhaseTime> {
        let sectors = self
            .plan
            .table(&self.inv.boot_code)
            .sectors(self.disk.len / SECTOR)
            .map_err(self.io_fail(WriteStep::Table))?;
        let bytes = sectors.iter().map(|(_, b)| b.len() as u64).sum();
        let phase = Timer::start(self.observer, Phase::Tables, bytes);
        write_tables(sectors, self.disk, &|n| phase.inc(n))
            .map_err(self.io_fail(WriteStep::Table))?;
        if kind == TargetKind::BlockDevice {
            // The stick is complete either way; a busy kernel re-reads later.
            let _ = ioctl::reread_partitions(self.disk.file);
        }
        Ok(phase.finish())
    }
}

/// The error for a failure at `step` of a write to `disk`: an
/// interruption, or a failure, saying whether anything was written.
pub(super) fn failure(disk: &Disk, step: WriteStep) -> impl FnOnce(Error) -> Error {
    let path = disk.path.to_path_buf();
    let written = disk.written.get();
    move |cause| {
        let state = match written {
            0 => StickState::Untouched,
            _ => StickState::NoTable,
        };
        match cause {
            Error::Write { source, .. } if is_interruption(&source) => Error::Interrupted {
                path,
                phase: step,
                state,
            },
            cause => Error::WriteFailed {
                path,
                phase: step,
                cause: Box::new(cause),
                state,
            },
        }
    }
}

/// Zeroes sector 0 and the GPT areas at both ends, then syncs: from here
/// on the stick has no valid partition table until step 5.
pub(super) fn invalidate(disk: &Disk, bytes: u64) -> io::Result<()> {
    let head = (GPT_AREA + 1) * SECTOR;
    let zeros = vec![0; head as usize];
    disk.write_at(&zeros, 0)?;
    let tail_start = bytes.saturating_sub(GPT_AREA * SECTOR).max(head);
    let tail_len = bytes.saturating_sub(tail_start) as usize;
    disk.write_at(&zeros[..tail_len], tail_start)?;
    disk.sync()
}

/// Copies the boot partition's used extent with its BPB patched: the
/// metadata head is patched in memory, the rest streamed.
fn copy_boot(
    source: &Source,
    inv: &Inventory,
    plan: &Plan,
    disk: &Disk,
    done: &dyn Fn(u64),
) -> Result<()> {
    let b = &plan.boot;
    let bs = &inv.boot.boot_sector;
    let total = b.copy_sectors * SECTOR;
    let head_len = (bs.first_data_sector() * SECTOR).min(total);
    let (from, to) = (b.source_start * SECTOR, b.target_start * SECTOR);
    let mut head = vec![0; head_len as usize];
    source.read_at(from, &mut head, "the boot partition")?;
    b.patch(&mut head, bs);
    disk.write_at(&head, to).map_err(|e| disk.err(e))?;
    done(head_len);
    let (from, to) = (from + head_len, to + head_len);
    let ControlFlow::Continue(()) =
        source.for_each_chunk(from, total - head_len, "the boot partition", |at, chunk| {
            disk.write_at(chunk, to + at).map_err(|e| disk.err(e))?;
            done(chunk.len() as u64);
            Ok(ControlFlow::<Infallible>::Continue(()))
        })?;
    Ok(())
}

/// Formats one bank and copies its files (or writes the generated
/// boot.cfg of an alternate bank).
fn write_bank(plan: &Plan, fill: &Fill, digests: Option<&mut Digests>) -> Result<()> {
    let part = plan.entry(fill.bank.entry)?;
    with_bank(
        fill.disk,
        (part.start, part.sectors),
        Session::Format(fill.bank),
        |root| fill.fill(root, digests, &|_| true),
    )
}

/// The metadata region of a bank's volume cached in memory for fatfs,
/// the rest passed through to the target.
pub(super) type BankIo<'d> = MetaCache<StreamSlice<DiskView<'d>>>;

/// How [`with_bank`] opens a bank's volume.
pub(super) enum Session<'b> {
    /// Formatted as planned first; its metadata written back at the end.
    Format(&'b BankPlan),
    /// As it is, with `meta_sectors` of metadata (boot sector to the
    /// first data sector); written back at the end when `commit`, else
    /// only file data reaches the target.
    Load {
        /// Sectors from the boot sector to the first data sector.
        meta_sectors: u64,
        /// Whether the metadata is written back.
        commit: bool,
    },
}

/// Runs `f` on the root directory of the bank at `(start, sectors)` of
/// `disk`, opened with fatfs as `session` says. fatfs reads and writes
/// FAT entries a few bytes at a time: they go to a cache of the metadata
/// region, written back in one piece once the volume is unmounted.
pub(super) fn with_bank<'d, R>(
    disk: &Disk<'d>,
    (start, sectors): (u64, u64),
    session: Session<'_>,
    f: impl FnOnce(&fatfs::Dir<'_, &mut BankIo<'d>>) -> Result<R>,
) -> Result<R> {
    let end = (start + sectors) * SECTOR;
    let view = StreamSlice::new(disk.view(), start * SECTOR, end).map_err(|e| disk.err(e))?;
    let (meta, format, commit) = match &session {
        Session::Format(bank) => (bank.fat.first_data_sector(), Some(*bank), true),
        Session::Load {
            meta_sectors,
            commit,
        } => (*meta_sectors, None, *commit),
    };
    let mut cache =
        MetaCache::new(view, meta * SECTOR, format.is_none()).map_err(|e| disk.err(e))?;
    if let Some(bank) = format {
        format_bank(&mut cache, bank, disk)?;
    }
    // FileSystem::new reads the boot sector where the device stands.
    cache.seek(SeekFrom::Start(0)).map_err(|e| disk.err(e))?;
    let fs =
        fatfs::FileSystem::new(&mut cache, fatfs::FsOptions::new()).map_err(|e| disk.err(e))?;
    let result = f(&fs.root_dir())?;
    if !commit {
        return Ok(result);
    }
    fs.unmount().map_err(|e| disk.err(e))?;
    cache.write_back().map_err(|e| disk.err(e))?;
    Ok(result)
}

/// Formats the bank's volume as planned — boot sector, VMware FAT UUID
/// sector, empty FATs, a root directory with the label (fatfs cannot
/// reserve the UUID sector) — and checks that the boot sector reads back
/// as the planned one.
fn format_bank<T: Read + Write + Seek>(volume: &mut T, bank: &BankPlan, disk: &Disk) -> Result<()> {
    let volume_id = u32::from_str_radix(&bank.volume_id, 16).unwrap_or(0);
    format::fat16(volume, &bank.fat, &bank.label, volume_id, bank.uuid).map_err(|e| disk.err(e))?;
    let mut boot = [0u8; SECTOR as usize];
    volume
        .seek(SeekFrom::Start(0))
        .and_then(|_| volume.read_exact(&mut boot))
        .map_err(|e| disk.err(e))?;
    match BootSector::parse(&boot) {
        Ok(bs) if bs == bank.fat => Ok(()),
        formatted => Err(Error::Fat {
            partition: bank.entry,
            problem: FatProblem::NotAsPlanned {
                formatted: Box::new(formatted),
                planned: Box::new(bank.fat.clone()),
            },
        }),
    }
}

/// What fills a bank: its plan, where its files come from, and who
/// hears of the bytes copied.
pub(super) struct Fill<'a> {
    /// The source whose active bank the files come from.
    pub source: &'a Source,
    /// Its inventory.
    pub inv: &'a Inventory,
    /// The bank planned.
    pub bank: &'a BankPlan,
    /// The target.
    pub disk: &'a Disk<'a>,
    /// Told of every byte of file data copied.
    pub done: &'a dyn Fn(u64),
    /// The module check running on the second core, if any.
    pub checker: Option<&'a Checker>,
    /// The source bank's kernel and modules: the files it checks.
    pub modules: &'a [Module],
}

impl Fill<'_> {
    /// Writes the bank's files that `which` selects (by name) below
    /// `root`: the generated boot.cfg, if the plan has one, then every
    /// planned file — a replaced one from its content, the others from
    /// the source's active bank — adding each one's hashes to `digests`
    /// when given.
    pub(super) fn fill<T: fatfs::ReadWriteSeek>(
        &self,
        root: &fatfs::Dir<'_, T>,
        mut digests: Option<&mut Digests>,
        which: &dyn Fn(&str) -> bool,
    ) -> Result<()> {
        let disk = self.disk;
        if let Some(text) = self
            .bank
            .generated_boot_cfg
            .as_ref()
            .filter(|_| which("boot.cfg"))
        {
            let mut file = root.create_file("boot.cfg").map_err(|e| disk.err(e))?;
            file.write_all(text.as_bytes()).map_err(|e| disk.err(e))?;
        }
        // The source's bank is opened once, when a file comes from it.
        let mut volume = None;
        for f in self.bank.files.iter().filter(|f| which(&f.name)) {
            let from = match &f.replaced {
                Some(r) => Content::Bytes(&r.bytes),
                None => match volume {
                    Some(ref v) => Content::Bank(v),
                    None => Content::Bank(volume.insert(Volume::open(
                        self.source,
                        &self.inv.active_partition()?.partition,
                    )?)),
                },
            };
            copy_file(root, from, f, self, digests.as_deref_mut())?;
        }
        Ok(())
    }
}

/// Where a file's bytes come from.
enum Content<'a, 'v> {
    /// The source's bank.
    Bank(&'a Volume<'v>),
    /// Held in memory (a replaced file).
    Bytes(&'a [u8]),
}

/// Copies the planned file `f` from `from` to the same path below
/// `root`: its hashes added to `digests` when given, its bytes handed to
/// the fill's module check when it is a module.
fn copy_file<T: fatfs::ReadWriteSeek>(
    root: &fatfs::Dir<'_, T>,
    from: Content,
    f: &PayloadFile,
    fill: &Fill,
    digests: Option<&mut Digests>,
) -> Result<()> {
    let disk = fill.disk;
    let (dir, name) = match f.name.rsplit_once('/') {
        Some((dir, name)) => (Some(dir), name),
        None => (None, f.name.as_str()),
    };
    let parent = match dir {
        Some(dir) => create_dirs(root, dir).map_err(|e| disk.err(e))?,
        None => root.clone(),
    };
    let mut out = parent.create_file(name).map_err(|e| disk.err(e))?;
    out.truncate().map_err(|e| disk.err(e))?;
    let checker = fill.checker.filter(|_| is_module(fill.modules, &f.name));
    let mut tee = Tee {
        inner: Counted {
            inner: &mut out,
            done: fill.done,
            disk,
            since_kick: 0,
        },
        hash: digests.is_some().then(FileHasher::default),
        checker,
    };
    if let Some(checker) = checker {
        checker.begin(&f.name);
    }
    let entry = FileEntry {
        path: f.name.clone(),
        bytes: f.bytes,
    };
    let copy = |into: &mut dyn Write| match from {
        Content::Bank(volume) => volume
            .copy_file(&entry, into)
            .map(drop)
            .map_err(|e| match e {
                Error::Write { source, .. } => disk.err(source),
                other => other,
            }),
        Content::Bytes(bytes) => into.write_all(bytes).map_err(|e| disk.err(e)),
    };
    copy(&mut tee)?;
    if let Some(checker) = checker {
        checker.end();
    }
    if let (Some(map), Some(hash)) = (digests, tee.hash) {
        map.insert(f.name.clone(), hash.finish());
    }
    out.flush().map_err(|e| disk.err(e))
}

/// On the way to `inner`: the bytes it takes are also hashed and handed
/// to the module check, when wanted.
pub(super) struct Tee<'a, W: Write> {
    /// Where the bytes go.
    pub inner: W,
    /// Their hashes, when wanted.
    pub hash: Option<FileHasher>,
    /// The module check they are handed to, when wanted.
    pub checker: Option<&'a Checker>,
}

impl<W: Write> Write for Tee<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let taken = buf
            .get(..n)
            .ok_or_else(|| io::Error::other("a writer took more bytes than it was given"))?;
        if let Some(hash) = &mut self.hash {
            hash.update(taken);
        }
        if let Some(checker) = self.checker {
            checker.data(taken);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Opens (creating as needed) the directory `path` below `root`.
fn create_dirs<'a, T: fatfs::ReadWriteSeek>(
    root: &fatfs::Dir<'a, T>,
    path: &str,
) -> io::Result<fatfs::Dir<'a, T>> {
    let mut dir = root.clone();
    for part in path.split('/') {
        dir = dir.create_dir(part)?;
    }
    Ok(dir)
}

/// Writes the table's `sectors` (as (byte offset, bytes)): first the
/// others (EBRs; the backup GPT and the primary GPT entries), syncs, then
/// sectors 0 and 1 — what makes the stick's table valid — and syncs
/// again. `done` hears of every byte written.
pub(super) fn write_tables(
    sectors: Vec<(u64, Vec<u8>)>,
    disk: &Disk,
    done: &dyn Fn(u64),
) -> io::Result<()> {
    let (commit, rest): (Vec<_>, Vec<_>) =
        sectors.into_iter().partition(|(at, _)| *at < COMMIT_BYTES);
    for (at, bytes) in &rest {
        disk.write_at(bytes, *at)?;
        done(bytes.len() as u64);
    }
    disk.sync()?;
    for (at, bytes) in &commit {
        disk.write_at(bytes, *at)?;
        done(bytes.len() as u64);
    }
    disk.sync()
}

/// The target: positional writes counted, and views for fatfs (`write`,
/// `update` and `wipe` all write through it); a write
/// asked to stop ([`Observer::cancelled`]) fails with [`Interruption`].
#[derive(Clone, Copy)]
pub(super) struct Disk<'a> {
    file: &'a File,
    path: &'a Path,
    len: u64,
    written: &'a Cell<u64>,
    observer: &'a dyn Observer,
}

/// The I/O error of a write refused because the front end asked to stop.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
struct Interruption;

/// Whether `e` is an [`Interruption`].
pub(super) fn is_interruption(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Interruption>())
}

impl<'a> Disk<'a> {
    /// The opened `target`, its writes counted in `written`; `observer`
    /// may ask to stop before any write.
    pub(super) fn new(
        target: &'a Target,
        written: &'a Cell<u64>,
        observer: &'a dyn Observer,
    ) -> Disk<'a> {
        Disk {
            file: target.file(),
            path: target.path(),
            len: target.bytes(),
            written,
            observer,
        }
    }

    /// The observer told of this write.
    pub(super) fn observer(&self) -> &'a dyn Observer {
        self.observer
    }

    /// The target's open file.
    pub(super) fn file(&self) -> &'a File {
        self.file
    }

    /// A view of the whole target for fatfs, which reads and writes.
    pub(super) fn view(&self) -> DiskView<'a> {
        DiskView {
            disk: *self,
            view: FileView::read_only(self.file, self.len),
            pending: Vec::new(),
            pending_at: 0,
            failed: None,
        }
    }

    /// Writes all of `buf` at `offset`.
    pub(super) fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut done = 0;
        while let Some(rest) = buf.get(done..).filter(|rest| !rest.is_empty()) {
            let n = self.write_once(rest, offset + done as u64)?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            done += n;
        }
        Ok(())
    }

    /// One write of `buf` (or of what the fault-injection seam leaves of
    /// it) at `offset`, counted: how many bytes were written.
    fn write_once(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        if self.observer.cancelled() {
            return Err(io::Error::other(Interruption));
        }
        let bytes = fault::write(self.path, buf)?;
        let n = self.file.write_at(&bytes, offset)?;
        self.written.set(self.written.get() + n as u64);
        Ok(n)
    }

    /// fsync, through the fault-injection seam.
    pub(super) fn sync(&self) -> io::Result<()> {
        fault::sync(self.path)?;
        self.file.sync_all()
    }

    /// An [`Error::Write`] on the target.
    pub(super) fn err(&self, source: io::Error) -> Error {
        Error::Write {
            path: self.path.to_path_buf(),
            source,
        }
    }

    /// Starts writing dirty pages to the medium without waiting; the
    /// fsync that follows then has little left to do. Only a hint:
    /// failure changes nothing.
    fn start_writeback(&self) {
        let _ = ioctl::start_writeback(self.file);
    }
}

/// A view of the target with its own cursor, for fatfs: it reads as a
/// source's [`FileView`] does and writes through [`Disk::write_at`].
/// fatfs writes a file a cluster at a time; writes that continue one
/// another are gathered into one of up to [`GATHER`] bytes, and go out
/// when a write lands elsewhere, before any read, and on `flush` (which
/// fatfs calls after every file, and the metadata cache at its end).
pub(super) struct DiskView<'a> {
    disk: Disk<'a>,
    view: FileView<'a>,
    /// Bytes written but not yet passed on, and where they go.
    pending: Vec<u8>,
    pending_at: u64,
    /// The error of a write that failed: every later call fails.
    failed: Option<io::Error>,
}

/// The error `e` once more: an interruption stays one; another keeps its
/// kind and message.
fn again(e: &io::Error) -> io::Error {
    if is_interruption(e) {
        io::Error::other(Interruption)
    } else {
        match e.raw_os_error() {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(e.kind(), e.to_string()),
        }
    }
}

/// Most bytes gathered into one write.
const GATHER: usize = 2 << 20;

impl DiskView<'_> {
    /// Passes the gathered bytes on, in one write. Once a write has
    /// failed, every later call fails the same way: fatfs drops its
    /// streams (flushing them) inside its own calls and ignores the
    /// errors of those flushes, so a failure must not be forgotten.
    fn write_pending(&mut self) -> io::Result<()> {
        if let Some(e) = &self.failed {
            return Err(again(e));
        }
        if !self.pending.is_empty() {
            if let Err(e) = self.disk.write_at(&self.pending, self.pending_at) {
                let err = again(&e);
                self.failed = Some(e);
                return Err(err);
            }
            self.pending.clear();
        }
        Ok(())
    }
}

impl Read for DiskView<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.write_pending()?;
        self.view.read(buf)
    }
}

impl Write for DiskView<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let at = self.view.stream_position()?;
        let follows = at == self.pending_at + self.pending.len() as u64;
        if !follows || self.pending.len() + buf.len() > GATHER {
            self.write_pending()?;
            self.pending_at = at;
        }
        self.pending.extend_from_slice(buf);
        self.view.seek(SeekFrom::Start(at + buf.len() as u64))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_pending()
    }
}

impl Seek for DiskView<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.view.seek(pos)
    }
}

/// Bytes of file data after which writeback to the medium is started, so
/// that flushing overlaps copying instead of following it.
const KICK_BYTES: u64 = 1 << 20;

/// On the way to `inner`: counts bytes into a progress callback, and
/// every [`KICK_BYTES`] starts writeback of the target.
pub(super) struct Counted<'a, 'd, W: Write> {
    /// Where the bytes go.
    pub inner: &'a mut W,
    /// Told of every byte.
    pub done: &'a dyn Fn(u64),
    /// The target, whose writeback is started.
    pub disk: &'a Disk<'d>,
    /// Bytes since writeback was last started.
    pub since_kick: u64,
}

impl<W: Write> Write for Counted<'_, '_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        (self.done)(n as u64);
        self.since_kick += n as u64;
        if self.since_kick >= KICK_BYTES {
            self.since_kick = 0;
            self.disk.start_writeback();
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
