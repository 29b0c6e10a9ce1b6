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
    // mbrman decodes a byte at a time: buffered, a sector costs one read.
    let mut reader = io::BufReader::with_capacity(SECTOR as usize, source.reader());
    let mbr = mbrman::MBR::read_from(&mut reader, SECTOR as u32).map_err(|e| match e {
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
            // A link of extended type to relative sector 0 leads back to
            // the first EBR: a loop (sfdisk calls it one), not the end.
            if PartitionType::Mbr(next.sys).is_extended() {
                return problem(TableProblem::EbrLoop {
                    lba,
                    target: ext.start,
                });
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ondisk::table::{self, Ebr};
    use crate::ondisk::testing::{disk, signed_sector};

    /// A partition entry laid out by hand: status, CHS (left 0), type,
    /// LBA and length, little-endian at bytes 8 and 12.
    fn raw(status: u8, sys: u8, start: u32, sectors: u32) -> [u8; 16] {
        let mut e = [0; 16];
        e[0] = status;
        e[4] = sys;
        e[8..12].copy_from_slice(&start.to_le_bytes());
        e[12..16].copy_from_slice(&sectors.to_le_bytes());
        e
    }

    /// Slot `i` (0–3) of a table sector.
    fn slot(i: usize) -> usize {
        446 + 16 * i
    }

    /// ESXi 4's disk (esxi.md §1) to bank 6: entry 4 the boot partition at
    /// 32, entry 1 the extended partition from 8,192, EBRs at 8,192 and
    /// 520,192 each 32 sectors before its bank. `second` is the second
    /// EBR, to damage.
    fn esxi4(second: [u8; 512]) -> (tempfile::NamedTempFile, Source) {
        let mbr = signed_sector(&[
            (slot(0), &raw(0, 0x05, 8192, 1_835_008)),
            (slot(3), &raw(0x80, 0x04, 32, 8160)),
        ]);
        let first = signed_sector(&[
            (slot(0), &raw(0, 0x06, 32, 511_968)),
            (slot(1), &raw(0, 0x05, 512_000, 512_000)),
        ]);
        let (a, b) = (8192 * SECTOR, 520_192 * SECTOR);
        disk(1_843_200, &[(0, &mbr), (a, &first), (b, &second)])
    }

    fn last_ebr() -> [u8; 512] {
        signed_sector(&[(slot(0), &raw(0, 0x06, 32, 511_968))])
    }

    fn refusal(source: &Source) -> String {
        table::read(source).unwrap_err().to_string()
    }

    #[test]
    fn reads_an_entry_field_by_field() {
        let sector = signed_sector(&[(slot(2), &raw(0x80, 0xfc, 1_032_224, 225_248))]);
        let want = RawEntry {
            active: true,
            sys: 0xfc,
            start: 1_032_224,
            sectors: 225_248,
        };
        assert_eq!(entry(&sector, 2), want);
        assert_eq!(entry(&sector, 0).sys, 0);
        assert_eq!(boot_code(&[7; 500]), [7; 440]);
        assert_eq!(boot_code(&[7; 2])[..3], [7, 7, 0]);
    }

    #[test]
    fn follows_the_ebr_chain_and_keeps_entry_numbers() {
        let (_file, source) = esxi4(last_ebr());
        let t = table::read(&source).unwrap();
        assert_eq!(t.scheme, Scheme::Mbr);
        assert_eq!(t.disk_sectors, 1_843_200);
        let got: Vec<_> = t
            .partitions
            .iter()
            .map(|p| (p.number, p.kind.code(), p.start, p.sectors, p.active))
            .collect();
        let want = [
            (1, "0x05".to_string(), 8192, 1_835_008, false),
            (4, "0x04".to_string(), 32, 8160, true),
            (5, "0x06".to_string(), 8224, 511_968, false),
            (6, "0x06".to_string(), 520_224, 511_968, false),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn refuses_damaged_chains_naming_the_sector() {
        // A link back to itself, and one of type 05 to relative sector 0:
        // back to the first EBR.
        for (link, target) in [(512_000, 520_192), (0, 8192)] {
            let looping = signed_sector(&[
                (slot(0), &raw(0, 0x06, 32, 511_968)),
                (slot(1), &raw(0, 0x05, link, 512_000)),
            ]);
            assert_eq!(
                refusal(&esxi4(looping).1),
                format!(
                    "bad partition table: the EBR chain loops: the EBR at sector 520192 links \
                     back to sector {target}"
                )
            );
        }
        let mut unsigned = last_ebr();
        unsigned[511] = 0;
        assert_eq!(
            refusal(&esxi4(unsigned).1),
            "bad partition table: the EBR at sector 520192 has no signature (55 AA)"
        );
        let on_itself = signed_sector(&[(slot(0), &raw(0, 0x06, 0, 10))]);
        assert_eq!(
            refusal(&esxi4(on_itself).1),
            "bad partition table: the logical partition described at sector 520192 starts on \
             its own EBR"
        );
        let past_end = signed_sector(&[
            (slot(0), &raw(0, 0x06, 32, 511_968)),
            (slot(1), &raw(0, 0x05, 2_000_000, 10)),
        ]);
        assert_eq!(
            refusal(&esxi4(past_end).1),
            "bad partition table: the EBR chain links to sector 2008192, past the end of the \
             disk (1843200 sectors); is the image truncated?"
        );
        let mbr = signed_sector(&[(slot(3), &raw(0x80, 0x04, 0, 8160))]);
        assert_eq!(
            refusal(&disk(9000, &[(0, &mbr)]).1),
            "bad partition table: MBR entry 4 starts at sector 0, on top of the MBR itself"
        );
    }

    /// The hand-made 64 MB stick's table (esxi.md §3), as a plan gives it.
    fn hand_made() -> TableSpec {
        let entry = |number, sys, start, sectors, chs_start, chs_end, ebr| TableEntry {
            partition: Partition {
                number,
                kind: PartitionType::Mbr(sys),
                start,
                sectors,
                active: number == 4,
            },
            chs_start,
            chs_end,
            ebr,
        };
        let ebr = Ebr {
            lba: 3150,
            chs: [25, 0, 1],
        };
        TableSpec {
            scheme: Scheme::Mbr,
            disk_sectors: 127_488,
            entries: vec![
                entry(1, 0x05, 3150, 124_236, [25, 0, 1], [1010, 2, 42], None),
                entry(4, 0x04, 42, 3108, [0, 1, 1], [24, 2, 42], None),
                entry(5, 0x06, 3192, 124_194, [25, 1, 1], [1010, 2, 42], Some(ebr)),
            ],
            boot_code: vec![0xfa; 440],
            disk_signature: 0x4a3f_12c0,
        }
    }

    #[test]
    fn serialises_the_hand_made_table_byte_for_byte() {
        let chunks = hand_made().sectors(127_488).unwrap();
        // The EBR first, sector 0 last (it makes the table valid).
        let at: Vec<u64> = chunks.iter().map(|(at, _)| *at).collect();
        assert_eq!(at, [3150 * SECTOR, 0]);
        let (ebr, mbr) = (&chunks[0].1, &chunks[1].1);
        assert_eq!(mbr.len(), 512);
        assert_eq!(mbr[..440], [0xfa; 440]);
        assert_eq!(mbr[440..444], [0xc0, 0x12, 0x3f, 0x4a]);
        // Status, CHS start (head, sector | cylinder bits 8–9 << 6,
        // cylinder low byte), type, CHS end, LBA, sectors.
        #[rustfmt::skip]
        let entry1 = [
            0x00, 0x00, 0x01, 0x19, 0x05, 0x02, 0xea, 0xf2,
            0x4e, 0x0c, 0x00, 0x00, 0x4c, 0xe5, 0x01, 0x00,
        ];
        #[rustfmt::skip]
        let entry4 = [
            0x80, 0x01, 0x01, 0x00, 0x04, 0x02, 0x2a, 0x18,
            0x2a, 0x00, 0x00, 0x00, 0x24, 0x0c, 0x00, 0x00,
        ];
        assert_eq!(mbr[slot(0)..slot(1)], entry1);
        assert_eq!(mbr[slot(1)..slot(3)], [0; 32]);
        assert_eq!(mbr[slot(3)..slot(4)], entry4);
        assert_eq!(mbr[510..], [0x55, 0xaa]);
        // The EBR: bank 5 at 42 sectors past it, and no further link.
        #[rustfmt::skip]
        let logical = [
            0x00, 0x01, 0x01, 0x19, 0x06, 0x02, 0xea, 0xf2,
            0x2a, 0x00, 0x00, 0x00, 0x22, 0xe5, 0x01, 0x00,
        ];
        assert_eq!(ebr.len(), 512);
        assert_eq!(ebr[slot(0)..slot(1)], logical);
        assert_eq!(ebr[slot(1)..510], [0; 48]);
        assert_eq!(ebr[510..], [0x55, 0xaa]);
    }

    #[test]
    fn serialised_tables_read_back_as_written() {
        let spec = hand_made();
        let chunks = spec.sectors(127_488).unwrap();
        let parts: Vec<(u64, &[u8])> = chunks.iter().map(|(at, b)| (*at, &b[..])).collect();
        let (_file, source) = disk(127_488, &parts);
        let t = table::read(&source).unwrap();
        let want: Vec<Partition> = spec.entries.iter().map(|e| e.partition.clone()).collect();
        assert_eq!(t.partitions, want);
        assert_eq!(t.boot_code, [0xfa; 440]);
    }
}
