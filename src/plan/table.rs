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

impl PlannedPartition {
    /// This entry as the table serialiser takes it, its EBR's CHS
    /// address in the geometry `heads` × `sectors_per_track`.
    pub fn table_entry(&self, heads: u16, sectors_per_track: u16) -> TableEntry {
        TableEntry {
            partition: self.partition(),
            chs_start: self.chs_start,
            chs_end: self.chs_end,
            ebr: self.ebr.map(|lba| Ebr {
                lba,
                chs: chs(lba, heads, sectors_per_track),
            }),
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
            .map(|p| p.table_entry(self.heads, self.sectors_per_track))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ondisk::table::{Scheme, GPT_BASIC_DATA};
    use crate::plan::layout::Layout;
    use crate::plan::tests::esxi4;

    /// The vcritical-64mb layout on the hand-made stick's 127,488 sectors
    /// gives the table of the published procedure (esxi.md §3), with the
    /// CHS addresses fdisk wrote for 3 heads × 42 sectors.
    #[test]
    fn the_hand_made_sticks_table() {
        let layout = Layout::load("vcritical-64mb").unwrap();
        let plan = crate::plan::plan(&esxi4(&[30_000_000]), &layout, 127_488).unwrap();
        let table = plan.table(&[0xfa; 600]);
        assert_eq!(table.scheme, Scheme::Mbr);
        assert_eq!(table.disk_sectors, 127_488);
        assert_eq!(table.boot_code.len(), 600);
        assert_eq!(table.disk_signature, 0x4a3f_12c0);
        let got: Vec<_> = table
            .entries
            .iter()
            .map(|e| {
                let p = &e.partition;
                (p.number, p.kind.code(), p.start, p.sectors, p.active)
            })
            .collect();
        let want = [
            (1, "0x05".to_string(), 3150, 124_236, false),
            (4, "0x04".to_string(), 42, 3108, true),
            (5, "0x06".to_string(), 3192, 124_194, false),
        ];
        assert_eq!(got, want);
        let chs: Vec<_> = table
            .entries
            .iter()
            .map(|e| (e.chs_start, e.chs_end))
            .collect();
        let want_chs = [
            ([25, 0, 1], [1010, 2, 42]),
            ([0, 1, 1], [24, 2, 42]),
            ([25, 1, 1], [1010, 2, 42]),
        ];
        assert_eq!(chs, want_chs);
        let ebrs: Vec<_> = table.entries.iter().map(|e| e.ebr).collect();
        let ebr = Ebr {
            lba: 3150,
            chs: [25, 0, 1],
        };
        assert_eq!(ebrs, [None, None, Some(ebr)]);
        assert_eq!(plan.entry(5).unwrap().start, 3192);
        assert_eq!(
            plan.entry(6).unwrap_err().to_string(),
            "layout: the plan has a bank 6 but no partition 6"
        );
    }

    #[test]
    fn planned_types_become_table_types() {
        let layout = Layout::load("vcritical-64mb").unwrap();
        let plan = crate::plan::plan(&esxi4(&[1 << 20]), &layout, 127_488).unwrap();
        let mut p = plan.entry(5).unwrap().clone();
        assert_eq!(p.partition().kind, PartitionType::Mbr(0x06));
        p.kind = GPT_BASIC_DATA.to_string();
        assert_eq!(
            p.partition().kind,
            PartitionType::Gpt(GPT_BASIC_DATA.to_string())
        );
        p.kind = "0xzz".to_string();
        assert_eq!(p.partition().kind, PartitionType::Gpt("0xzz".to_string()));
    }
}
