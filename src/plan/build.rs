//! From a placement that fits to the complete [`Plan`]: the table entries,
//! the banks, the boot partition's copy, the notes, and the bytes `write`
//! will write.

use crate::error::Result;
use crate::image::source::SECTOR;
use crate::ondisk::table::{
    PartitionType, Scheme, GPT_BASIC_DATA, GPT_EFI_SYSTEM, MBR_EXTENDED, MBR_FAT16, MBR_FAT16_SMALL,
};
use crate::plan::bank::{banks, BankPlan};
use crate::plan::boot::{boot_copy, BootCopy};
use crate::plan::geometry::{align_up, chs};
use crate::plan::layout::{Alternate, Geometry, Layout, TargetScheme};
use crate::plan::placement::Placement;
use crate::plan::{Payload, Plan, PlannedPartition, FIRST_BANK, GPT_RESERVED, SCHEMA};

/// The plan for a placement that fits (`trimmed`: with the boot partition
/// cut to its used extent).
pub(super) fn build(
    payload: &Payload,
    layout: &Layout,
    target: u64,
    placed: Placement,
    trimmed: bool,
) -> Result<Plan> {
    let g = layout.geometry;
    let partitions = partitions(layout, &placed);
    let banks = banks(payload, layout, &placed)?;
    let mut notes = Vec::new();
    let boot = boot_copy(payload, layout, &placed, trimmed, &mut notes);
    let end = partitions.iter().map(|p| p.end + 1).max().unwrap_or(0);
    let tail = match layout.scheme {
        TargetScheme::Mbr => 0,
        TargetScheme::Gpt => GPT_RESERVED,
    };
    let unpartitioned_sectors = target.saturating_sub(end + tail);
    if layout.banks.alternate == Alternate::EmptyIfRoom && banks.len() == 1 {
        notes.push("no room for an alternate bank 6 on this target; bank 5 only".into());
    }
    let write_bytes = write_bytes(layout.scheme, &boot, &banks, &partitions);
    Ok(Plan {
        schema: SCHEMA,
        layout: layout.name.clone(),
        scheme: match layout.scheme {
            TargetScheme::Mbr => Scheme::Mbr,
            TargetScheme::Gpt => Scheme::Gpt,
        },
        target_sectors: target,
        heads: g.heads,
        sectors_per_track: g.sectors_per_track,
        partitions,
        boot,
        banks,
        unpartitioned_sectors,
        write_bytes,
        notes,
    })
}

/// The table entries of a placement, in entry order: the boot partition,
/// on MBR the extended partition, and the banks (on MBR each with its EBR
/// one gap before it).
fn partitions(layout: &Layout, placed: &Placement) -> Vec<PlannedPartition> {
    let g = layout.geometry;
    let mbr = layout.scheme == TargetScheme::Mbr;
    let (boot_type, bank_type) = if mbr {
        (
            PartitionType::Mbr(MBR_FAT16_SMALL).code(),
            PartitionType::Mbr(MBR_FAT16).code(),
        )
    } else {
        (GPT_EFI_SYSTEM.to_string(), GPT_BASIC_DATA.to_string())
    };
    let boot = (placed.boot_start, placed.boot_sectors);
    let mut partitions = vec![PlannedPartition {
        active: true,
        ..planned(g, layout.boot.entry, "boot", boot_type, boot)
    }];
    if mbr {
        let last = placed
            .banks
            .last()
            .map_or(placed.ext_start, |&(s, n)| s + n);
        let extended = (placed.ext_start, last - placed.ext_start);
        let kind = PartitionType::Mbr(MBR_EXTENDED).code();
        partitions.push(planned(g, 1, "extended", kind, extended));
    }
    let gap = layout.ebr_gap();
    for (i, &(start, sectors)) in placed.banks.iter().enumerate() {
        let role = if i == 0 { "bootbank" } else { "altbootbank" };
        let entry = FIRST_BANK + i as u32;
        partitions.push(PlannedPartition {
            ebr: mbr.then_some(start - gap),
            ..planned(g, entry, role, bank_type.clone(), (start, sectors))
        });
    }
    partitions.sort_by_key(|p| p.entry);
    partitions
}

/// An inactive table entry without an EBR.
fn planned(
    g: Geometry,
    entry: u32,
    role: &'static str,
    kind: String,
    (start, sectors): (u64, u64),
) -> PlannedPartition {
    let end = (start + sectors).saturating_sub(1);
    PlannedPartition {
        entry,
        role,
        kind,
        start,
        end,
        sectors,
        active: false,
        chs_start: chs(start, g.heads, g.sectors_per_track),
        chs_end: chs(end, g.heads, g.sectors_per_track),
        ebr: None,
    }
}

/// Bytes `write` writes: tables, stale-table wipes, the boot extent, FAT
/// metadata and file data (never the free space).
fn write_bytes(
    scheme: TargetScheme,
    boot: &BootCopy,
    banks: &[BankPlan],
    partitions: &[PlannedPartition],
) -> u64 {
    // MBR: sector 0 and the EBRs; GPT: the protective MBR and a header
    // with its entries at each end.
    let tables = SECTOR
        * match scheme {
            TargetScheme::Mbr => 1 + partitions.iter().filter(|p| p.ebr.is_some()).count() as u64,
            TargetScheme::Gpt => 1 + 2 * GPT_RESERVED,
        };
    let wipes = 2 * GPT_RESERVED * SECTOR;
    let boot_bytes = boot.copy_sectors * SECTOR;
    let bank_bytes: u64 = banks
        .iter()
        .map(|b| {
            let meta = b.fat.first_data_sector() * SECTOR;
            let data: u64 = b.files.iter().map(|f| align_up(f.bytes, SECTOR)).sum();
            let generated = b
                .generated_boot_cfg
                .as_ref()
                .map_or(0, |t| align_up(t.len() as u64, SECTOR));
            meta + data + generated
        })
        .sum();
    tables + wipes + boot_bytes + bank_bytes
}
