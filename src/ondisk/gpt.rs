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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ondisk::table::{self, TableEntry, COMMIT_BYTES, GPT_BASIC_DATA, GPT_EFI_SYSTEM};
    use crate::ondisk::testing::{disk, signed_sector};

    const DISK: u64 = 200_000;

    /// ESXi 5's numbering on a small disk: 1 the EFI system partition
    /// (legacy-bootable), 5 and 6 the bootbanks.
    fn esxi5() -> TableSpec {
        let entry = |number, guid: &str, start, sectors| TableEntry {
            partition: Partition {
                number,
                kind: PartitionType::Gpt(guid.to_string()),
                start,
                sectors,
                active: number == 1,
            },
            chs_start: [0, 0, 0],
            chs_end: [0, 0, 0],
            ebr: None,
        };
        TableSpec {
            scheme: Scheme::Gpt,
            disk_sectors: DISK,
            entries: vec![
                entry(1, GPT_EFI_SYSTEM, 64, 8128),
                entry(5, GPT_BASIC_DATA, 8224, 60_000),
                entry(6, GPT_BASIC_DATA, 70_000, 60_000),
            ],
            boot_code: vec![0xfa; 440],
            disk_signature: 0,
        }
    }

    fn written(spec: &TableSpec) -> (tempfile::NamedTempFile, Source) {
        let chunks = spec.sectors(DISK).unwrap();
        let parts: Vec<(u64, &[u8])> = chunks.iter().map(|(at, b)| (*at, &b[..])).collect();
        disk(DISK, &parts)
    }

    #[test]
    fn serialised_gpt_reads_back_with_its_numbers_and_the_commit_last() {
        let spec = esxi5();
        let chunks = spec.sectors(DISK).unwrap();
        let first_commit = chunks.iter().position(|(at, _)| *at < COMMIT_BYTES);
        assert_eq!(first_commit, Some(chunks.len() - 2), "header and MBR last");
        // The backup header in the disk's last sector, after its entries.
        let last = (DISK - 1) * SECTOR;
        let backup = chunks
            .iter()
            .find_map(|(at, b)| b.get(last.checked_sub(*at)? as usize..));
        assert!(backup.is_some_and(|h| h.starts_with(SIGNATURE)));
        let (_file, source) = written(&spec);
        let t = table::read(&source).unwrap();
        assert_eq!(t.scheme, Scheme::Gpt);
        let want: Vec<Partition> = spec.entries.iter().map(|e| e.partition.clone()).collect();
        assert_eq!(t.partitions, want);
        assert_eq!(t.boot_code, [0xfa; 440]);
        // The protective MBR: one entry of type EE from sector 1.
        let mbr = source.read_sector(0, "the MBR").unwrap();
        assert_eq!(mbr[446 + 4], 0xee);
        assert_eq!(le::u32_at(&mbr, 446 + 8), 1);
        assert_eq!(le::u32_at(&mbr, 446 + 12), (DISK - 1) as u32);
    }

    #[test]
    fn refuses_entry_arrays_it_does_not_read() {
        let protective = signed_sector(&[(446 + 4, &[0xee])]);
        let header = |count: u32, size: u32| {
            let mut h = [0u8; 512];
            h[..8].copy_from_slice(SIGNATURE);
            h[80..84].copy_from_slice(&count.to_le_bytes());
            h[84..88].copy_from_slice(&size.to_le_bytes());
            h
        };
        let (_f, source) = disk(DISK, &[(0, &protective), (512, &header(2000, 128))]);
        let err = table::read(&source).unwrap_err().to_string();
        assert_eq!(
            err,
            "bad partition table: the GPT header at sector 1 declares 2000 entries of 128 bytes \
             (esxstick reads up to 1024 entries of 128 bytes)"
        );
        let backup = (DISK - 1) * SECTOR;
        let (_f, source) = disk(DISK, &[(0, &protective), (backup, &header(128, 256))]);
        let err = table::read(&source).unwrap_err().to_string();
        assert!(
            err.contains("at sector 199999 declares 128 entries of 256 bytes"),
            "{err}"
        );
        // No header at all: the gpt crate's refusal, worded for users.
        let (_f, source) = disk(DISK, &[(0, &protective)]);
        let err = table::read(&source).unwrap_err().to_string();
        assert!(err.starts_with("bad partition table: GPT"), "{err}");
        assert!(err.contains("Invalid GPT Signature"), "{err}");
        assert!(!err.contains("IO Error"), "{err}");
    }

    #[test]
    fn refuses_to_serialise_an_entry_without_sectors() {
        let mut spec = esxi5();
        spec.entries[1].partition.sectors = 0;
        let err = spec.sectors(DISK).unwrap_err();
        assert_eq!(err.to_string(), "GPT entry 5: no number or no sectors");
    }
}
