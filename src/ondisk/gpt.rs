//! The GUID partition table: read and serialised by the gpt crate, with
//! the header fields it trusts checked by hand first.
//!
//! A GPT is a protective MBR in sector 0, a header in sector 1 pointing to
//! an array of entries, and a backup of both at the end of the disk.

use std::io::{self, Seek, SeekFrom, Write};

use crate::error::{Error, Result};
use crate::image::source::{Source, SECTOR};
use crate::ondisk::le;
use crate::ondisk::mbr::boot_code;
use crate::ondisk::recorder::Recorder;
use crate::ondisk::table::{
    Partition, PartitionTable, PartitionType, Scheme, TableProblem, TableSpec,
};

/// Most GPT entries accepted (the usual table has 128).
pub const MAX_ENTRIES: u32 = 1024;
/// Size of a GPT partition entry that esxstick (and the gpt crate) reads.
pub const ENTRY_SIZE: u32 = 128;
/// A header's first eight bytes.
const SIGNATURE: &[u8] = b"EFI PART";
/// Header offset of the number of entries.
const ENTRY_COUNT_AT: usize = 80;
/// Header offset of the size of one entry.
const ENTRY_SIZE_AT: usize = 84;
/// The legacy-BIOS-bootable attribute bit of an entry.
const LEGACY_BOOTABLE: u64 = 1 << 2;

/// Reads the GPT of `source`, a disk of `disk_sectors` (at least 2).
pub fn read(source: &Source, disk_sectors: u64) -> Result<PartitionTable> {
    // The gpt crate trusts the entry size and count of a header whose CRC
    // it has yet to check; refuse absurd values before it sees them.
    for lba in [1, disk_sectors - 1] {
        let header = source.read_sector(lba, "a GPT header")?;
        if !header.starts_with(SIGNATURE) {
            continue;
        }
        let count = le::u32_at(&header, ENTRY_COUNT_AT);
        let size = le::u32_at(&header, ENTRY_SIZE_AT);
        if size != ENTRY_SIZE || count > MAX_ENTRIES {
            return Err(Error::Table(TableProblem::GptEntries { lba, count, size }));
        }
    }
    let disk = gpt::GptConfig::new()
        .writable(false)
        .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
        .open_from_device(source.reader())
        .map_err(|e| {
            Error::Table(TableProblem::Gpt {
                reason: e.to_string().replace("IO Error: ", ""),
            })
        })?;
    let partitions = disk
        .partitions()
        .iter()
        .map(|(&number, p)| {
            let (first, last) = (p.first_lba, p.last_lba);
            let sectors = last
                .checked_sub(first)
                .and_then(|n| n.checked_add(1))
                .ok_or(Error::Table(TableProblem::Backwards {
                    partition: number,
                    first,
                    last,
                }))?;
            Ok(Partition {
                number,
                kind: PartitionType::Gpt(p.part_type_guid.guid.to_string().to_uppercase()),
                start: first,
                sectors,
                active: p.flags & LEGACY_BOOTABLE != 0,
            })
        })
        .collect::<Result<_>>()?;
    Ok(PartitionTable {
        scheme: Scheme::Gpt,
        disk_sectors,
        partitions,
        boot_code: Vec::new(),
    })
}

/// Records `table` as a GPT on `disk`, serialised by the gpt crate, in the
/// order it must reach the disk: the backup entries and header, the
/// primary entries, the primary header, the protective MBR with the
/// table's boot code. Entry N goes into slot N of the array, so partition
/// numbers 1, 5, 6 stay as given (`GptDisk::write` would pack them into
/// slots 1, 2, 3 and renumber the bootbanks).
pub fn record(table: &TableSpec, disk: &mut Recorder) -> io::Result<()> {
    let lb = gpt::disk::LogicalBlockSize::Lb512;
    let mut new = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(lb)
        .create_from_device(&mut *disk, None)
        .map_err(gpt_error)?;
    for e in &table.entries {
        let p = &e.partition;
        let bad = |why: String| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("GPT entry {}: {why}", p.number),
            )
        };
        if p.number == 0 || p.sectors == 0 {
            return Err(bad("no number or no sectors".into()));
        }
        let kind = p
            .kind
            .code()
            .parse::<gpt::partition_types::Type>()
            .map_err(bad)?;
        let flags = if p.active {
            gpt::partition::PartitionAttributes::BOOTABLE.bits()
        } else {
            0
        };
        new.add_partition_at("", p.number, p.start, p.sectors, kind, flags)
            .map_err(|e| bad(e.to_string()))?;
    }
    let mut primary = new.primary_header().map_err(gpt_error)?.clone();
    let mut backup = new.backup_header().map_err(gpt_error)?.clone();
    let slots = u64::from(primary.num_parts) * u64::from(primary.part_size);
    let mut entries = io::Cursor::new(vec![0; usize::try_from(slots).map_err(io::Error::other)?]);
    for (number, p) in new.partitions() {
        let slot = u64::from(number.saturating_sub(1));
        p.write_to_device(&mut entries, slot, 0, lb, primary.part_size)?;
    }
    drop(new);
    let entries = entries.into_inner();
    disk.seek(SeekFrom::Start(backup.part_start * SECTOR))?;
    disk.write_all(&entries)?;
    backup.write_backup(disk, lb).map_err(gpt_error)?;
    disk.seek(SeekFrom::Start(primary.part_start * SECTOR))?;
    disk.write_all(&entries)?;
    primary.write_primary(disk, lb).map_err(gpt_error)?;
    let disk_sectors = disk.len() / SECTOR;
    let covered = u32::try_from(disk_sectors.saturating_sub(1)).unwrap_or(u32::MAX);
    let mut mbr = gpt::mbr::ProtectiveMBR::with_lb_size(covered);
    mbr.set_bootcode(boot_code(&table.boot_code));
    disk.seek(SeekFrom::Start(0))?;
    disk.write_all(&mbr.to_bytes())
}

/// The gpt crate's error as an I/O error: the table is recorded in
/// memory, so anything but an I/O error means the table does not fit.
fn gpt_error(e: impl Into<gpt::GptError>) -> io::Error {
    match e.into() {
        gpt::GptError::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidInput, other.to_string()),
    }
}
