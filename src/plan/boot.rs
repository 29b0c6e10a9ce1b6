//! The boot partition's copy: how much of the source partition goes onto
//! the stick, which BPB fields change because it moved (or the geometry
//! differs), and which clusters are marked bad when it is trimmed.

use serde::Serialize;

use crate::ondisk::bpb::{BootSector, FatType, Field};
use crate::plan::layout::Layout;
use crate::plan::placement::Placement;
use crate::plan::Payload;

/// How the boot partition gets onto the stick.
#[derive(Debug, Clone, Serialize)]
pub struct BootCopy {
    /// Source first sector.
    pub source_start: u64,
    /// Sectors copied from the source: up to the last used cluster.
    pub copy_sectors: u64,
    /// Target first sector.
    pub target_start: u64,
    /// Target partition length.
    pub partition_sectors: u64,
    /// Whether the partition is smaller than the source's.
    pub trimmed: bool,
    /// Boot sector fields to patch after copying.
    pub bpb_patches: Vec<BpbPatch>,
    /// Clusters that lie past the end of a trimmed partition: marked bad
    /// in the FATs so nothing is ever written there (first, last).
    pub bad_clusters: Option<[u32; 2]>,
}

impl BootCopy {
    /// Turns the source's boot-partition extent into what the stick holds:
    /// BPB fields patched, clusters past a trimmed end marked bad.
    pub fn patch(&self, extent: &mut [u8], boot_sector: &BootSector) {
        for patch in &self.bpb_patches {
            patch.apply(extent);
        }
        if let Some([first, last]) = self.bad_clusters {
            boot_sector.mark_bad(extent, first, last);
        }
    }
}

/// A field of the boot partition's boot sector to rewrite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BpbPatch {
    /// Field name.
    pub field: &'static str,
    /// Byte offset in the boot sector.
    pub offset: usize,
    /// Field width in bytes.
    pub width: usize,
    /// Value in the source.
    pub old: u32,
    /// Value on the stick.
    pub new: u32,
}

impl BpbPatch {
    /// The patch of `field` from `old` to `new`.
    pub fn new(field: Field, old: u32, new: u32) -> BpbPatch {
        BpbPatch {
            field: field.name(),
            offset: field.offset(),
            width: field.width(),
            old,
            new,
        }
    }

    /// Writes the new value into a boot sector.
    pub fn apply(&self, sector: &mut [u8]) {
        crate::ondisk::le::put(sector, self.offset, self.width, self.new);
    }
}

/// The boot partition's copy for a placement: its BPB patched to where it
/// lies and to the layout's geometry, and, when the partition is smaller
/// than its BPB says, the clusters past its end marked bad (with a note
/// saying why).
pub(super) fn boot_copy(
    payload: &Payload,
    layout: &Layout,
    placed: &Placement,
    trimmed: bool,
    notes: &mut Vec<String>,
) -> BootCopy {
    let bs = &payload.boot_sector;
    let g = layout.geometry;
    let changes = [
        (
            Field::HiddenSectors,
            bs.hidden_sectors,
            placed.boot_start as u32,
        ),
        (
            Field::SectorsPerTrack,
            u32::from(bs.sectors_per_track),
            u32::from(g.sectors_per_track),
        ),
        (Field::Heads, u32::from(bs.heads), u32::from(g.heads)),
    ];
    let bpb_patches = changes
        .into_iter()
        .filter(|(_, old, new)| old != new)
        .map(|(field, old, new)| BpbPatch::new(field, old, new))
        .collect();
    let partition_sectors = placed.boot_sectors;
    let mut bad_clusters = None;
    if u64::from(bs.total_sectors) > partition_sectors {
        let inside = partition_sectors.saturating_sub(bs.first_data_sector())
            / u64::from(bs.sectors_per_cluster);
        let first = 2 + inside as u32;
        let last = bs.clusters() + 1;
        if first <= last {
            bad_clusters = Some([first, last]);
        }
        let shrunk = FatType::from_clusters(inside as u32);
        notes.push(format!(
            "boot partition trimmed to {partition_sectors} sectors (its files end at sector {}); \
             its BPB keeps {} total sectors because {} would make the {} volume {shrunk}, \
             and clusters {first}–{last} past the partition end are marked bad so nothing is written there",
            payload.boot_used_sectors, bs.total_sectors, partition_sectors, bs.fat_type()
        ));
    }
    BootCopy {
        source_start: payload.boot_start,
        copy_sectors: payload.boot_used_sectors.min(partition_sectors),
        target_start: placed.boot_start,
        partition_sectors,
        trimmed,
        bpb_patches,
        bad_clusters,
    }
}

#[cfg(test)]
mod tests {
    use crate::plan::layout::Layout;
    use crate::plan::tests::esxi4;

    /// The boot partition moves from 32 to 42 and is cut to 3,108 of its
    /// 8,160 sectors: its BPB says where it is and the 3×42 geometry, and
    /// the clusters past sector 3,108 are marked bad. ESXi's 8,160-sector
    /// volume (fatfs: 1 reserved sector, two 32-sector FATs, 32 root
    /// sectors) has its data from sector 97: 8,063 clusters, 2–8,064, of
    /// which the first 3,011 lie inside.
    #[test]
    fn the_hand_made_sticks_boot_partition() {
        let layout = Layout::load("vcritical-64mb").unwrap();
        let plan = crate::plan::plan(&esxi4(&[1 << 20]), &layout, 127_488).unwrap();
        let b = &plan.boot;
        assert_eq!((b.source_start, b.target_start), (32, 42));
        assert_eq!(
            (b.partition_sectors, b.copy_sectors, b.trimmed),
            (3108, 1000, true)
        );
        let patches: Vec<_> = b
            .bpb_patches
            .iter()
            .map(|p| (p.field, p.offset, p.width, p.old, p.new))
            .collect();
        let want = [
            ("hidden_sectors", 0x1c, 4, 32, 42),
            ("sectors_per_track", 0x18, 2, 32, 42),
            ("heads", 0x1a, 2, 64, 3),
        ];
        assert_eq!(patches, want);
        assert_eq!(b.bad_clusters, Some([3013, 8064]));
        assert!(plan.notes.iter().any(|n| n.contains("clusters 3013–8064")));

        let mut sector = [0u8; 512];
        b.patch(&mut sector, &esxi4(&[]).boot_sector);
        assert_eq!(sector[0x18..0x20], [42, 0, 3, 0, 42, 0, 0, 0]);
    }
}
