//! A plan as the on-disk table: its entries as [`Partition`]s (what
//! `verify` compares a stick's table with) and as a [`TableSpec`] (what
//! `write` serialises), with the source's boot code.

use std::io;

use crate::error::{Error, Result};
use crate::ondisk::table::{Ebr, Partition, PartitionType, TableEntry, TableSpec};
use crate::plan::geometry::chs;
use crate::plan::layout::LayoutProblem;
use crate::plan::{Plan, PlannedPartition};

impl PlannedPartition {
    /// This entry as the table module describes partitions: `0x..` types
    /// are MBR types, anything else a GPT type GUID.
    pub fn partition(&self) -> Partition {
        let kind = match u8::from_str_radix(self.kind.trim_start_matches("0x"), 16) {
            Ok(t) if self.kind.starts_with("0x") => PartitionType::Mbr(t),
            _ => PartitionType::Gpt(self.kind.clone()),
        };
        Partition {
            number: self.entry,
            kind,
            start: self.start,
            sectors: self.sectors,
            active: self.active,
        }
    }
}

impl Plan {
    /// The table entry numbered `number`.
    pub fn entry(&self, number: u32) -> Result<&PlannedPartition> {
        self.partitions
            .iter()
            .find(|p| p.entry == number)
            .ok_or(Error::Layout(LayoutProblem::NoEntry { entry: number }))
    }

    /// The plan's partition table, with `boot_code` (the source's) in
    /// sector 0 and bank 5's volume ID as the MBR's disk signature.
    pub fn table(&self, boot_code: &[u8]) -> TableSpec {
        let disk_signature = self
            .banks
            .first()
            .and_then(|b| u32::from_str_radix(&b.volume_id, 16).ok())
            .unwrap_or(0);
        let entries = self
            .partitions
            .iter()
            .map(|p| TableEntry {
                partition: p.partition(),
                chs_start: p.chs_start,
                chs_end: p.chs_end,
                ebr: p.ebr.map(|lba| Ebr {
                    lba,
                    chs: chs(lba, self.heads, self.sectors_per_track),
                }),
            })
            .collect();
        TableSpec {
            scheme: self.scheme,
            disk_sectors: self.target_sectors,
            entries,
            boot_code: boot_code.to_vec(),
            disk_signature,
        }
    }

    /// The bytes of the plan's partition table on a disk of the planned
    /// size, as (byte offset, bytes) in the order `write` writes them (see
    /// [`TableSpec::sectors`]).
    pub fn table_sectors(&self, boot_code: &[u8]) -> io::Result<Vec<(u64, Vec<u8>)>> {
        self.table(boot_code).sectors(self.target_sectors)
    }
}
