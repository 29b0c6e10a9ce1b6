//! The MBR and its chain of EBRs: read (the chain walked by hand, then the
//! table by mbrman) and serialised (by mbrman).
//!
//! Sector 0 holds 440 bytes of boot code, then four 16-byte entries from
//! byte 446; an extended entry leads to a chain of EBRs, each describing
//! one logical partition (numbered 5 and up) in its first entry and
//! linking to the next EBR, relative to the extended partition's start,
//! in its second.

use std::collections::HashSet;
use std::io;

use crate::error::{Error, Result};
use crate::image::source::{Source, SECTOR};
use crate::ondisk::recorder::Recorder;
use crate::ondisk::table::{
    Chs, Partition, PartitionTable, PartitionType, Scheme, TableEntry, TableProblem, TableSpec,
};
use crate::ondisk::{le, signed};

/// Most logical partitions followed in an EBR chain before giving up.
pub const MAX_LOGICAL: usize = 128;
/// Logical partitions read from a stream: 5 and 6, the bootbanks.
const STREAM_LOGICAL: usize = 2;
/// Disk size assumed while the size of a stream is unknown.
const UNKNOWN_SECTORS: u64 = crate::image::source::UNKNOWN_LEN / SECTOR;
/// Bytes of boot code at the start of sector 0.
pub const BOOT_CODE_BYTES: usize = 440;
/// Offset of the first of the four partition entries.
const ENTRIES_AT: usize = 446;
/// Bytes in one partition entry.
const ENTRY_BYTES: usize = 16;
/// The boot flag of an active entry (bit 7 of its first byte).
const ACTIVE: u8 = 0x80;

/// A 16-byte MBR/EBR partition entry, as the chain walk reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawEntry {
    /// Boot flag set.
    pub active: bool,
    /// System ID (partition type); 0 for an unused entry.
    pub sys: u8,
    /// First sector, relative to the sector the entry counts from.
    pub start: u64,
    /// Length in sectors.
    pub sectors: u64,
}

impl RawEntry {
    /// The partition this entry describes, numbered `number`; `base` is
    /// the sector its start counts from (an EBR's own sector, or 0).
    fn partition(&self, number: u32, base: u64) -> Partition {
        Partition {
            number,
            kind: PartitionType::Mbr(self.sys),
            start: base + self.start,
            sectors: self.sectors,
            active: self.active,
        }
    }
}

/// Entry `i` (0–3) of an MBR or EBR sector.
pub fn entry(sector: &[u8; 512], i: usize) -> RawEntry {
    let off = ENTRIES_AT + ENTRY_BYTES * i;
    RawEntry {
        active: le::uint_at(sector, off, 1) as u8 & ACTIVE != 0,
        sys: le::uint_at(sector, off + 4, 1) as u8,
        start: u64::from(le::u32_at(sector, off + 8)),
        sectors: u64::from(le::u32_at(sector, off + 12)),
    }
}

/// The first 440 bytes of `bytes` (zero-filled when shorter): boot code as
/// sector 0 holds it.
pub fn boot_code(bytes: &[u8]) -> [u8; BOOT_CODE_BYTES] {
    let mut code = [0; BOOT_CODE_BYTES];
    for (dst, src) in code.iter_mut().zip(bytes) {
        *dst = *src;
    }
    code
}

/// Reads the MBR table of `source`, a disk of `disk_sectors`: the EBR
/// chain checked by hand first, then the whole table by mbrman.
pub fn read(source: &Source, disk_sectors: u64) -> Result<PartitionTable> {
    walk_ebr_chain(source, disk_sectors, MAX_LOGICAL)?;
    let mbr = mbrman::MBR::read_from(&mut source.reader(), SECTOR as u32).map_err(|e| match e {
        mbrman::Error::Io(source) => Error::Read {
            what: "the partition table".to_string(),
            offset: 0,
            source,
        },
        other => Error::Table(TableProblem::Mbr {
            reason: other.to_string(),
        }),
    })?;
    let partitions = mbr
        .iter()
        .filter(|(_, p)| p.is_used())
        .map(|(i, p)| Partition {
            number: i as u32,
            kind: PartitionType::Mbr(p.sys),
            start: u64::from(p.starting_lba),
            sectors: u64::from(p.sectors),
            active: p.is_active(),
        })
        .collect();
    Ok(PartitionTable {
        scheme: Scheme::Mbr,
        disk_sectors,
        partitions,
        boot_code: Vec::new(),
    })
}

/// The head of an MBR table in a stream, whose sector 0 is `mbr`: the
/// primary entries and the logical partitions up to 6, the alternate
/// bootbank. mbrman would walk the whole EBR chain, whose last links lie
/// hundreds of MiB further (partition 8's EBR at 643 MB on ESXi images):
/// in a stream, that means decompressing all of it. The disk is taken to
/// end where its last partition found does.
pub fn read_head(source: &Source, mbr: &[u8; 512]) -> Result<PartitionTable> {
    let logical = walk_ebr_chain(source, UNKNOWN_SECTORS, STREAM_LOGICAL)?;
    let primary = (0..4).filter_map(|i| {
        let e = entry(mbr, i);
        (e.sys != 0).then(|| e.partition(i as u32 + 1, 0))
    });
    let partitions: Vec<Partition> = primary.chain(logical).collect();
    Ok(PartitionTable {
        scheme: Scheme::Mbr,
        disk_sectors: partitions.iter().map(|p| p.end() + 1).max().unwrap_or(1),
        partitions,
        boot_code: Vec::new(),
    })
}

/// Follows the EBR chain (before mbrman does, so that loops, links past
/// the end and overflowing sector numbers are reported precisely and
/// never reach mbrman's arithmetic), for at most `max` logical
/// partitions; returns those.
fn walk_ebr_chain(source: &Source, disk_sectors: u64, max: usize) -> Result<Vec<Partition>> {
    let problem = |p| Err(Error::Table(p));
    let mbr = source.read_sector(0, "the MBR")?;
    if let Some(i) = (0..4).find(|&i| entry(&mbr, i).sys != 0 && entry(&mbr, i).start == 0) {
        return problem(TableProblem::OnTheMbr {
            entry: i as u32 + 1,
        });
    }
    // mbrman follows the first extended entry in table order; so do we.
    let Some(ext) = (0..4)
        .map(|i| entry(&mbr, i))
        .find(|e| PartitionType::Mbr(e.sys).is_extended())
    else {
        return Ok(Vec::new());
    };
    let mut seen = HashSet::new();
    let mut rel: u64 = 0;
    let mut logical_found = Vec::new();
    for count in 0.. {
        let lba = ext.start + rel;
        if lba >= disk_sectors || lba > u64::from(u32::MAX) {
            return problem(TableProblem::EbrPastEnd { lba, disk_sectors });
        }
        let ebr = source.read_sector(lba, "an EBR")?;
        if !signed(&ebr) {
            if rel == 0 {
                return Ok(logical_found); // an empty extended partition needs no EBR
            }
            return problem(TableProblem::EbrUnsigned { lba });
        }
        let logical = entry(&ebr, 0);
        if logical.sys != 0 && logical.start == 0 {
            return problem(TableProblem::OnItsEbr { lba });
        }
        if lba + logical.start > u64::from(u32::MAX) {
            return problem(TableProblem::Beyond2TiB { lba });
        }
        if logical.sys != 0 {
            logical_found.push(logical.partition(5 + count as u32, lba));
        }
        let next = entry(&ebr, 1);
        if next.start == 0 {
            return Ok(logical_found);
        }
        if !seen.insert(rel) || next.start <= rel {
            let target = ext.start + next.start;
            return problem(TableProblem::EbrLoop { lba, target });
        }
        if count + 1 >= MAX_LOGICAL {
            return problem(TableProblem::TooManyLogical);
        }
        if logical_found.len() >= max {
            return Ok(logical_found);
        }
        rel = next.start;
    }
    Ok(logical_found)
}

/// Records `table` as an MBR on `disk`, serialised by mbrman: sector 0
/// with the table's boot code and disk signature, and every EBR.
pub fn record(table: &TableSpec, disk: &mut Recorder) -> io::Result<()> {
    mbrman_table(table).write_into(disk).map_err(|e| match e {
        mbrman::Error::Io(e) => e,
        other => io::Error::other(other.to_string()),
    })
}

/// The mbrman table for `table`: entries 1–4 primary, the others logical
/// with their EBRs.
fn mbrman_table(table: &TableSpec) -> mbrman::MBR {
    let mut header = mbrman::MBRHeader::new(table.disk_signature.to_le_bytes());
    header.bootstrap_code = boot_code(&table.boot_code);
    let mut logical = Vec::new();
    for e in &table.entries {
        let p = &e.partition;
        match p.number {
            1 => header.partition_1 = mbrman_entry(e),
            2 => header.partition_2 = mbrman_entry(e),
            3 => header.partition_3 = mbrman_entry(e),
            4 => header.partition_4 = mbrman_entry(e),
            _ => {
                let (ebr, ebr_chs) = e.ebr.map_or((p.start, e.chs_start), |r| (r.lba, r.chs));
                let end = p.start + p.sectors;
                logical.push(mbrman::LogicalPartition {
                    partition: mbrman_entry(e),
                    absolute_ebr_lba: ebr as u32,
                    ebr_sectors: Some(end.saturating_sub(ebr) as u32),
                    ebr_first_chs: mbrman_chs(ebr_chs),
                    ebr_last_chs: Some(mbrman_chs(e.chs_end)),
                    bootstrap_code: [0; 446],
                });
            }
        }
    }
    mbrman::MBR {
        sector_size: SECTOR as u32,
        header,
        logical_partitions: logical,
        align: 1,
        // Zero geometry: mbrman keeps the CHS values given.
        cylinders: 0,
        heads: 0,
        sectors: 0,
        disk_size: table.disk_sectors as u32,
    }
}

/// One entry as mbrman stores it; a GPT type on an MBR becomes type 0.
fn mbrman_entry(e: &TableEntry) -> mbrman::MBRPartitionEntry {
    let p = &e.partition;
    mbrman::MBRPartitionEntry {
        boot: if p.active {
            mbrman::BOOT_ACTIVE
        } else {
            mbrman::BOOT_INACTIVE
        },
        first_chs: mbrman_chs(e.chs_start),
        sys: match p.kind {
            PartitionType::Mbr(t) => t,
            PartitionType::Gpt(_) => 0,
        },
        last_chs: mbrman_chs(e.chs_end),
        starting_lba: p.start as u32,
        sectors: p.sectors as u32,
    }
}

fn mbrman_chs([cylinder, head, sector]: Chs) -> mbrman::CHS {
    mbrman::CHS::new(cylinder as u16, head as u8, sector as u8)
}
