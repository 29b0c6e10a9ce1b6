//! Writing an installer stick (plan layout `installer-fat32`), in the
//! order every esxstick write keeps:
//!
//! 1. Invalidate: zero sector 0 and the GPT areas at both ends; fsync.
//! 2. Format partition 1 FAT32 with fatfs (its metadata held in memory
//!    and written once), the BPB's hidden sectors set to the partition's
//!    start, and copy every planned file — streamed from its extent on
//!    the ISO, through bounded buffers — while a second core checks each
//!    module's gzip stream; fsync. A damaged module stops here.
//! 3. With `--syslinux`, install SYSLINUX into the partition.
//! 4. The MBR (mbrman) with SYSLINUX's boot code; fsync.
//!
//! Then, unless skipped, the stick is read back and verified.

use std::cell::Cell;
use std::io::{self, Seek, SeekFrom, Write};

use fscommon::StreamSlice;

use crate::digest::{Digests, FileDigest, FileHasher};
use crate::error::{Error, InstallerProblem, Result};
use crate::esxi::installer::InstallerIso;
use crate::esxi::modules::Checker;
use crate::image::source::SECTOR;
use crate::ioctl;
use crate::ondisk::cache::MetaCache;
use crate::ondisk::shortnames;
use crate::plan::installer::{self as layout, FileFrom, InstallerPlan, StickFile};
use crate::progress::{Observer, Phase, PhaseTime, Timer};
use crate::stick::burn::{self, Outcome};
use crate::stick::device::{Target, TargetKind};
use crate::stick::installer_verify;
use crate::stick::syslinux::{self, Syslinux};
use crate::stick::write::{self, Counted, Disk, Tee, WriteReport, WriteStep};

/// Offset of the BPB's hidden-sectors field.
const HIDDEN_AT: usize = 0x1c;
/// Sector of a FAT32 volume's backup boot sector (fatfs's choice).
const BACKUP_BOOT_SECTOR: usize = 6;

/// How an installer stick is written.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The SYSLINUX to install for BIOS boot; `None`: a UEFI-only stick.
    pub syslinux: Option<Syslinux>,
    /// Whether the stick is read back and verified.
    pub verify: bool,
}

/// Writes `plan` (made from `iso`) onto `target`, then, unless
/// `options.verify` is off, verifies the stick against the ISO. The
/// modules' gzip streams are checked as they are copied; a damaged one
/// stops the write before the table. Observer events and interruptions
/// are as for [`crate::stick::burn::burn`].
pub fn burn(
    iso: &InstallerIso,
    plan: &InstallerPlan,
    target: &mut Target,
    observer: &dyn Observer,
    options: &Options,
) -> Result<Outcome> {
    let report =
        write(iso, plan, target, observer, options).map_err(|e| target.after_interruption(e))?;
    let how = (options.verify, plan.data_bytes);
    burn::then_verify(report, target, observer, how, |stick, known| {
        installer_verify::against(stick, iso, plan, known)
    })
}

/// Writes `plan` onto `target` (steps 1–4 of the module), hashing every
/// file as it is copied when `options.verify`.
pub fn write(
    iso: &InstallerIso,
    plan: &InstallerPlan,
    target: &mut Target,
    observer: &dyn Observer,
    options: &Options,
) -> Result<WriteReport> {
    let boot_code = syslinux::mbr_code()?;
    target.prepare(plan.target_sectors * SECTOR)?;
    let written = Cell::new(0);
    let disk = Disk::new(target, &written, observer);
    let fail = |step| write::failure(&disk, step);
    let phase = Timer::start(observer, Phase::Prepare, 0);
    write::invalidate(&disk, target.bytes())
        .map_err(|e| fail(WriteStep::Invalidate)(disk.err(e)))?;
    let mut phases = vec![phase.finish()];
    let checker = Checker::start(1);
    let phase = Timer::start(observer, Phase::Modules, plan.data_bytes);
    let copy = Copy {
        iso,
        plan,
        disk: &disk,
        checker: &checker,
        done: &|n| phase.inc(n),
        hash: options.verify,
    };
    let digests = copy.volume().map_err(fail(WriteStep::InstallerFiles))?;
    disk.sync()
        .map_err(|e| fail(WriteStep::Sync)(disk.err(e)))?;
    phases.push(phase.finish());
    let modules_checked = checker.finish().map_err(|e| {
        fail(WriteStep::ModuleCheck)(match e {
            Error::DamagedModule { name, problem, .. } => {
                Error::Installer(InstallerProblem::DamagedModule { name, problem })
            }
            e => e,
        })
    })?;
    if let Some(s) = &options.syslinux {
        s.install(target.path(), plan.extent().0 * SECTOR)
            .map_err(fail(WriteStep::Syslinux))?;
    }
    phases.push(tables(plan, &disk, &boot_code, target.kind()).map_err(fail(WriteStep::Table))?);
    let _ = observer;
    Ok(WriteReport {
        schema: write::SCHEMA,
        target: target.path().display().to_string(),
        layout: plan.layout.to_string(),
        plan_write_bytes: plan.write_bytes,
        bytes_written: written.get(),
        phases,
        digests,
        stream: None,
        modules_checked: Some(modules_checked),
    })
}

/// Step 4: the MBR, with SYSLINUX's boot code; the kernel is asked to
/// re-read it.
fn tables(
    plan: &InstallerPlan,
    disk: &Disk,
    boot_code: &[u8],
    kind: TargetKind,
) -> Result<PhaseTime> {
    let sectors = plan
        .table(boot_code)
        .sectors(plan.target_sectors)
        .map_err(|e| disk.err(e))?;
    let bytes = sectors.iter().map(|(_, b)| b.len() as u64).sum();
    let phase = Timer::start(disk.observer(), Phase::Tables, bytes);
    write::write_tables(sectors, disk, &|n| phase.inc(n)).map_err(|e| disk.err(e))?;
    if kind == TargetKind::BlockDevice {
        // The stick is complete either way; a busy kernel re-reads later.
        let _ = ioctl::reread_partitions(disk.file());
    }
    Ok(phase.finish())
}

/// The copy of step 2.
struct Copy<'a> {
    iso: &'a InstallerIso,
    plan: &'a InstallerPlan,
    disk: &'a Disk<'a>,
    checker: &'a Checker,
    done: &'a dyn Fn(u64),
    hash: bool,
}

/// The FAT32 volume's metadata region cached in memory for fatfs.
type VolumeIo<'d> = MetaCache<StreamSlice<write::DiskView<'d>>>;

impl Copy<'_> {
    /// Formats the volume, copies every file, and writes the metadata
    /// back: the hashes of every file copied (when hashing).
    fn volume(&self) -> Result<Digests> {
        let disk = self.disk;
        let (start, sectors) = self.plan.extent();
        let fat = &self.plan.fat;
        let view = StreamSlice::new(disk.view(), start * SECTOR, (start + sectors) * SECTOR)
            .map_err(|e| disk.err(e))?;
        let meta = (fat.reserved_sectors + 2 * fat.sectors_per_fat) * SECTOR;
        let mut cache = MetaCache::new(view, meta, false).map_err(|e| disk.err(e))?;
        format(&mut cache, self.plan).map_err(|e| disk.err(e))?;
        let fs =
            fatfs::FileSystem::new(&mut cache, fatfs::FsOptions::new()).map_err(|e| disk.err(e))?;
        self.check_formatted(&fs)?;
        let root = fs.root_dir();
        for dir in &self.plan.dirs {
            root.create_dir(dir).map_err(|e| disk.err(e))?;
        }
        let mut digests = Digests::default();
        for file in &self.plan.files {
            if let Some(digest) = self.file(&root, file)? {
                digests.insert(file.path.clone(), digest);
            }
        }
        drop(root);
        fs.unmount().map_err(|e| disk.err(e))?;
        shortnames::strip_long_names(&mut cache).map_err(|e| disk.err(e))?;
        cache.write_back().map_err(|e| disk.err(e))?;
        Ok(digests)
    }

    /// The volume fatfs formatted has the planned clusters.
    fn check_formatted(&self, fs: &fatfs::FileSystem<&mut VolumeIo<'_>>) -> Result<()> {
        let stats = fs.stats().map_err(|e| self.disk.err(e))?;
        let fat = &self.plan.fat;
        let got = (
            u64::from(stats.cluster_size()),
            u64::from(stats.total_clusters()),
        );
        if fs.fat_type() != fatfs::FatType::Fat32 || got != (fat.cluster_bytes, fat.clusters) {
            return Err(Error::Installer(InstallerProblem::BadConfig {
                file: "the FAT32 volume".into(),
                reason: format!(
                    "formatted with {} clusters of {} bytes, planned {} of {}",
                    got.1, got.0, fat.clusters, fat.cluster_bytes
                ),
            }));
        }
        Ok(())
    }

    /// Copies one planned file; its hashes when hashing.
    fn file(
        &self,
        root: &fatfs::Dir<'_, &mut VolumeIo<'_>>,
        file: &StickFile,
    ) -> Result<Option<FileDigest>> {
        let disk = self.disk;
        let mut out = root.create_file(&file.path).map_err(|e| disk.err(e))?;
        out.truncate().map_err(|e| disk.err(e))?;
        let is_module = self
            .iso
            .inventory
            .modules
            .iter()
            .any(|m| m.path.as_deref() == Some(file.path.as_str()));
        let checker =
            (is_module && matches!(file.from, FileFrom::Iso { .. })).then_some(self.checker);
        let mut tee = Tee {
            inner: Counted {
                inner: &mut out,
                done: self.done,
                disk,
                since_kick: 0,
            },
            hash: self.hash.then(FileHasher::default),
            checker,
        };
        if let Some(c) = checker {
            c.begin(&file.path);
        }
        match &file.from {
            FileFrom::Iso { start } => {
                let on_iso = crate::image::isofs::IsoFile {
                    path: file.path.clone(),
                    start: *start,
                    bytes: file.bytes,
                };
                crate::esxi::installer::copy_file(&self.iso.source, &on_iso, &mut tee).map_err(
                    |e| match e {
                        Error::Write { source, .. } => disk.err(source),
                        other => other,
                    },
                )?;
            }
            FileFrom::Made { text, .. } => {
                tee.write_all(text.as_bytes()).map_err(|e| disk.err(e))?
            }
        }
        if let Some(c) = checker {
            c.end();
        }
        let hash = tee.hash.take().map(FileHasher::finish);
        out.flush().map_err(|e| disk.err(e))?;
        Ok(hash)
    }
}

/// Formats the FAT32 volume as planned (fatfs) and sets the hidden
/// sectors of its boot sector and backup boot sector to the partition's
/// start: SYSLINUX's boot sector finds its files by them.
fn format<T: io::Read + Write + Seek>(volume: &mut T, plan: &InstallerPlan) -> io::Result<()> {
    let (start, sectors) = plan.extent();
    let fat = &plan.fat;
    let options = fatfs::FormatVolumeOptions::new()
        .fat_type(fatfs::FatType::Fat32)
        .bytes_per_cluster(fat.cluster_bytes as u32)
        .total_sectors(u32::try_from(sectors).map_err(io::Error::other)?)
        .volume_id(fat.volume_id)
        .volume_label(layout::label())
        .heads(255)
        .sectors_per_track(63);
    volume.seek(SeekFrom::Start(0))?;
    fatfs::format_volume(&mut *volume, options)?;
    let hidden = u32::try_from(start)
        .map_err(io::Error::other)?
        .to_le_bytes();
    for sector in [0, BACKUP_BOOT_SECTOR] {
        volume.seek(SeekFrom::Start(
            (sector * SECTOR as usize + HIDDEN_AT) as u64,
        ))?;
        volume.write_all(&hidden)?;
    }
    volume.seek(SeekFrom::Start(0))?;
    Ok(())
}
