//! `wipe`: give a stick back for everyday use, as sticks are sold — one
//! primary FAT32 partition (type 0x0C) from 1 MiB to the end of the
//! device — in an order that never leaves a table pointing at a half-made
//! volume:
//!
//! 1. the old table is made invalid (sector 0 and the GPT areas at both
//!    ends zeroed) and synced;
//! 2. the volume is formatted by fatfs at 1 MiB, its BPB's hidden sectors
//!    set to the partition's start (fatfs writes 0), and synced;
//! 3. the MBR (serialised by mbrman) is written last and synced; the
//!    kernel is asked to re-read the table.
//!
//! A partition with fewer than 65,525 clusters cannot be FAT32: fatfs
//! then formats FAT16 (type 0x0E), or FAT12 (type 0x01) below 4,085
//! clusters, and the report says so. An image file is wiped at its size.
//! Every write goes through the same counted, fault-injectable path as
//! `write`'s.

use std::cell::Cell;
use std::io::{self, Read, Seek, SeekFrom, Write};

use fscommon::StreamSlice;
use serde::Serialize;

use crate::error::{Error, Refusal, Result, StickState};
use crate::image::source::SECTOR;
use crate::ioctl;
use crate::ondisk::bpb::{BootSector, FatType, Field};
use crate::ondisk::table::{Partition, PartitionType, Scheme, TableEntry, TableSpec};
use crate::plan::geometry;
use crate::progress::{Observer, Phase, PhaseTime, Timer};
use crate::stick::device::{Target, TargetKind};
use crate::stick::write::{invalidate, is_interruption, write_tables, Disk};

/// Version of the JSON report `wipe --json` prints.
pub const SCHEMA: &str = "esxstick.wipe/1";
/// The partition's first sector: 1 MiB, where partitioning tools align.
pub const START: u64 = 2048;
/// The smallest target: the MiB before the partition and a MiB of volume.
pub const MIN_BYTES: u64 = 2 << 20;
/// The volume label when none is given.
pub const DEFAULT_LABEL: &str = "USB";
/// The most sectors an MBR entry can describe.
const MBR_MAX_SECTORS: u64 = u32::MAX as u64;
/// Geometry for the CHS fields (what partitioning tools use for LBA
/// disks).
const HEADS: u16 = 255;
/// Sectors per track of that geometry.
const SECTORS_PER_TRACK: u16 = 63;
/// Characters a FAT volume label may not hold (besides control
/// characters and lower case, which is made upper case).
const LABEL_FORBIDDEN: &str = "\"*+,./:;<=>?[\\]|";

/// What `wipe` did.
#[derive(Debug, Clone, Serialize)]
pub struct WipeReport {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// The target's path.
    pub target: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// The one partition written (entry 1).
    pub partition: Partition,
    /// The FAT type fatfs formatted: FAT32 unless the stick is too small.
    pub fat_type: FatType,
    /// The volume label.
    pub label: String,
    /// The volume ID (8 hex digits, random).
    pub volume_id: String,
    /// Bytes per cluster.
    pub cluster_bytes: u64,
    /// Bytes passed to write calls on the target.
    pub bytes_written: u64,
    /// Time per phase.
    pub phases: Vec<PhaseTime>,
    /// What the user should know (a FAT type other than FAT32, a capped
    /// partition).
    pub notes: Vec<String>,
}

/// The step of a wipe that failed, as [`Error::WipeFailed`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WipeStep {
    /// Zeroing the old partition table.
    Invalidate,
    /// Formatting the FAT volume.
    Format,
    /// Writing the partition table.
    Table,
}

impl std::fmt::Display for WipeStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WipeStep::Invalidate => "invalidating the old partition table",
            WipeStep::Format => "formatting the FAT volume",
            WipeStep::Table => "the partition table",
        })
    }
}

/// The 11 bytes of a FAT volume label for `text`: at most 11 ASCII
/// characters, lower case made upper case (as mlabel does), none of
/// `"*+,./:;<=>?[\]|` or control characters; padded with spaces.
pub fn volume_label(text: &str) -> Result<[u8; 11]> {
    let bad = |reason: &'static str| Error::Label {
        label: text.to_string(),
        reason,
    };
    if text.trim().is_empty() {
        return Err(bad("a label needs at least one character"));
    }
    if text.len() > 11 {
        return Err(bad("a FAT label holds at most 11 characters"));
    }
    let mut label = [b' '; 11];
    for (slot, c) in label.iter_mut().zip(text.chars()) {
        if !c.is_ascii() || c.is_ascii_control() || LABEL_FORBIDDEN.contains(c) {
            return Err(bad(
                "a FAT label takes letters, digits, spaces and !#$%&'()-@^_`{}~",
            ));
        }
        *slot = c.to_ascii_uppercase() as u8;
    }
    Ok(label)
}

/// Wipes `target` (opened with [`Target::open_existing`] and confirmed):
/// one primary partition from [`START`] to the end of the device (at most
/// 2 TiB, what an MBR holds), formatted FAT32 with `label`, the table
/// written last. A target smaller than [`MIN_BYTES`] is refused before
/// anything is written.
pub fn wipe(target: &mut Target, label: &[u8; 11], observer: &dyn Observer) -> Result<WipeReport> {
    let bytes = target.bytes();
    if bytes < MIN_BYTES {
        return Err(Error::Target {
            path: target.path().to_path_buf(),
            refusal: Refusal::TooSmall {
                has: bytes,
                needs: MIN_BYTES,
            },
        });
    }
    let volume_id = random_u32()?;
    let disk_signature = random_u32()?;
    target.prepare(0)?;
    let target: &Target = target;
    let written = Cell::new(0);
    let disk = Disk::new(target, &written, observer);
    let fail = |step| failure(target, &written, step);
    let mut notes = Vec::new();
    let sectors = (bytes / SECTOR).min(MBR_MAX_SECTORS);
    if sectors < bytes / SECTOR {
        notes.push("an MBR partition holds at most 2 TiB: the rest is left unused".into());
    }
    let phase = Timer::start(observer, Phase::Prepare, 0);
    invalidate(&disk, bytes).map_err(fail(WipeStep::Invalidate))?;
    let mut phases = vec![phase.finish()];
    let phase = Timer::start(observer, Phase::Format, 0);
    let volume = format(&disk, sectors, label, volume_id).map_err(fail(WipeStep::Format))?;
    phases.push(phase.finish());
    let (partition, note) = partition(&volume, sectors);
    notes.extend(note);
    let phase = Timer::start(observer, Phase::Tables, SECTOR);
    let table = table(&partition, sectors, disk_signature);
    table
        .sectors(bytes / SECTOR)
        .and_then(|s| write_tables(s, &disk, &|n| phase.inc(n)))
        .map_err(fail(WipeStep::Table))?;
    phases.push(phase.finish());
    if target.kind() == TargetKind::BlockDevice {
        // The table is written either way; a busy kernel re-reads later.
        let _ = ioctl::reread_partitions(target.file());
    }
    Ok(WipeReport {
        schema: SCHEMA,
        target: target.path().display().to_string(),
        bytes,
        partition,
        fat_type: volume.fat_type(),
        label: String::from_utf8_lossy(label).trim_end().to_string(),
        volume_id: format!("{volume_id:08X}"),
        cluster_bytes: volume.cluster_bytes(),
        bytes_written: written.get(),
        phases,
        notes,
    })
}

/// The error for an I/O failure, or a stop asked for, at `step` of
/// wiping `target`, saying whether anything was `written` before it.
fn failure<'a>(
    target: &'a Target,
    written: &'a Cell<u64>,
    step: WipeStep,
) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| {
        let path = target.path().to_path_buf();
        let state = match written.get() {
            0 => StickState::Untouched,
            _ => StickState::NoTable,
        };
        if is_interruption(&source) {
            return Error::WipeInterrupted { path, step, state };
        }
        Error::WipeFailed {
            cause: Box::new(Error::Write {
                path: path.clone(),
                source,
            }),
            path,
            step,
            state,
        }
    }
}

/// Partition 1 of a stick of `sectors` holding `volume`: type 0x0C for
/// FAT32, else 0x0E (FAT16) or 0x01 (FAT12), with a note saying why.
fn partition(volume: &BootSector, sectors: u64) -> (Partition, Option<String>) {
    let fat_type = volume.fat_type();
    let code = match fat_type {
        FatType::Fat32 => 0x0c,
        FatType::Fat16 => 0x0e,
        FatType::Fat12 => 0x01,
    };
    let note = (fat_type != FatType::Fat32).then(|| {
        format!(
            "{} clusters are too few for FAT32 (65,525 at least): formatted {fat_type}, \
             partition type 0x{code:02x}",
            crate::size::group(u64::from(volume.clusters()))
        )
    });
    let partition = Partition {
        number: 1,
        kind: PartitionType::Mbr(code),
        start: START,
        sectors: sectors.saturating_sub(START),
        active: false,
    };
    (partition, note)
}

/// Formats the volume from [`START`] to sector `end` with fatfs (FAT32
/// when it can be), sets its hidden sectors (and its FAT32 backup boot
/// sector's) to [`START`], records its free clusters, and syncs: the
/// boot sector written.
fn format(disk: &Disk, end: u64, label: &[u8; 11], volume_id: u32) -> io::Result<BootSector> {
    let mut volume = StreamSlice::new(disk.view(), START * SECTOR, end * SECTOR)?;
    let options = fatfs::FormatVolumeOptions::new()
        .fat_type(fatfs::FatType::Fat32)
        .volume_label(*label)
        .volume_id(volume_id);
    fatfs::format_volume(&mut volume, options)?;
    let boot = set_hidden_sectors(&mut volume, 0)?;
    let parsed = BootSector::parse(&boot).map_err(io::Error::other)?;
    if parsed.fat_type() == FatType::Fat32 {
        let backup = Field::BackupBootSector.read(&boot);
        set_hidden_sectors(&mut volume, u64::from(backup))?;
    }
    // fatfs leaves FAT32's count of free clusters unknown, which fsck.fat
    // reports: counted once, it is written at unmount.
    volume.seek(SeekFrom::Start(0))?;
    let fs = fatfs::FileSystem::new(&mut volume, fatfs::FsOptions::new())?;
    fs.stats()?;
    fs.unmount()?;
    volume.flush()?;
    disk.sync()?;
    Ok(parsed)
}

/// Sets the hidden sectors of the boot sector at `sector` of `volume` to
/// [`START`]: the boot sector as written.
fn set_hidden_sectors<V: Read + Write + Seek>(
    volume: &mut V,
    sector: u64,
) -> io::Result<[u8; SECTOR as usize]> {
    let mut boot = [0; SECTOR as usize];
    volume.seek(SeekFrom::Start(sector * SECTOR))?;
    volume.read_exact(&mut boot)?;
    Field::HiddenSectors.write(&mut boot, START as u32);
    volume.seek(SeekFrom::Start(sector * SECTOR))?;
    volume.write_all(&boot)?;
    Ok(boot)
}

/// The MBR of a wiped stick of `sectors`: `partition` alone, no boot code.
fn table(partition: &Partition, sectors: u64, disk_signature: u32) -> TableSpec {
    let chs = |lba| geometry::chs(lba, HEADS, SECTORS_PER_TRACK);
    TableSpec {
        scheme: Scheme::Mbr,
        disk_sectors: sectors,
        entries: vec![TableEntry {
            partition: partition.clone(),
            chs_start: chs(partition.start),
            chs_end: chs(partition.end()),
            ebr: None,
        }],
        boot_code: Vec::new(),
        disk_signature,
    }
}

/// Four random bytes (a volume ID, a disk signature).
fn random_u32() -> Result<u32> {
    let mut bytes = [0; 4];
    getrandom::fill(&mut bytes).map_err(|e| Error::Random {
        reason: e.to_string(),
    })?;
    Ok(u32::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_upper_case_padded_and_checked() {
        assert_eq!(&volume_label("usb").unwrap(), b"USB        ");
        assert_eq!(&volume_label("My Stick 01").unwrap(), b"MY STICK 01");
        for bad in ["", "   ", "twelve chars", "a.b", "ä", "tab\there"] {
            assert!(volume_label(bad).is_err(), "{bad:?} accepted");
        }
    }
}
