//! Sizing FAT16 banks: the largest volume FAT16 allows, the smallest that
//! holds the payload, and the cluster size that leaves a bank the most
//! free space. Every figure is what `write` will format, through
//! [`BootSector::fat16_format`] with [`BANK_RESERVED_SECTORS`].

use crate::error::{Error, Result};
use crate::image::source::SECTOR;
use crate::ondisk::bpb::{BootSector, ROOT_ENTRIES};
use crate::plan::layout::{Geometry, Layout, LayoutProblem};
use crate::plan::{Payload, Shortfall};

/// Reserved sectors of a new bank: the boot sector and VMware's FAT UUID
/// sector, which ESXi's boot loader looks for in the bank's second sector.
pub const BANK_RESERVED_SECTORS: u16 = 2;
/// Cluster sizes tried for a new bank, in sectors (512 B to 32 KiB).
const CLUSTER_SECTORS: [u8; 7] = [1, 2, 4, 8, 16, 32, 64];
/// A FAT16 root directory holds this many entries; each file may take
/// up to three (long name + short name).
const ENTRIES_PER_FILE: u64 = 3;

/// The largest volume, in sectors, that can be FAT16 (65,524 clusters of
/// 32 KiB, about 2 GiB); banks are never made larger.
pub fn max_fat16_sectors() -> u64 {
    let spc = *CLUSTER_SECTORS.last().unwrap_or(&64);
    let is_fat16 =
        |n: u64| BootSector::fat16_format(n as u32, spc, BANK_RESERVED_SECTORS, 1, 1, 0).is_some();
    let (mut lo, mut hi) = (1u64 << 20, 1u64 << 23); // FAT16 at lo, not at hi
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if is_fat16(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// The smallest FAT16 volume that holds the payload plus headroom.
pub(super) fn min_bank_sectors(payload: &Payload, layout: &Layout) -> Result<u64> {
    let too_many = payload.files.len() as u64 * ENTRIES_PER_FILE > u64::from(ROOT_ENTRIES);
    if too_many {
        return Err(Error::Layout(LayoutProblem::TooManyFiles {
            files: payload.files.len(),
        }));
    }
    let headroom = payload.headroom(layout);
    CLUSTER_SECTORS
        .iter()
        .filter_map(|&spc| {
            let need = payload
                .clusters_needed(u64::from(spc) * SECTOR, headroom)
                .max(4085);
            // Metadata estimate, then grow until fatfs's geometry agrees.
            let fat = (need + 2).div_ceil(256);
            let mut total = u64::from(BANK_RESERVED_SECTORS) + 32 + 2 * fat + need * u64::from(spc);
            for _ in 0..1024 {
                let sectors = u32::try_from(total).ok()?;
                match BootSector::fat16_format(sectors, spc, BANK_RESERVED_SECTORS, 1, 1, 0) {
                    Some(bs) if u64::from(bs.clusters()) >= need => return Some(total),
                    Some(_) => total += u64::from(spc),
                    None => return None,
                }
            }
            None
        })
        .min()
        .ok_or_else(|| {
            Error::DoesNotFit(Shortfall::Files {
                bytes: payload.files.iter().map(|f| f.bytes).sum(),
            })
        })
}

/// The cluster size leaving the most free space for `sectors` (with
/// geometry `g`), as a formatted boot sector; `None` if no FAT16 volume
/// of that size works.
pub(super) fn best_fat16(
    sectors: u64,
    g: Geometry,
    hidden: u64,
    payload: Option<(&Payload, u64)>,
) -> Option<BootSector> {
    let total = u32::try_from(sectors).ok()?;
    CLUSTER_SECTORS
        .iter()
        .filter_map(|&spc| {
            let bs = BootSector::fat16_format(
                total,
                spc,
                BANK_RESERVED_SECTORS,
                g.heads,
                g.sectors_per_track,
                hidden as u32,
            )?;
            let used = payload.map_or(0, |(p, headroom)| {
                p.clusters_needed(bs.cluster_bytes(), headroom)
            });
            let free = u64::from(bs.clusters()).checked_sub(used)? * bs.cluster_bytes();
            Some((free, bs))
        })
        .max_by_key(|(free, bs)| (*free, std::cmp::Reverse(bs.sectors_per_cluster)))
        .map(|(_, bs)| bs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ondisk::testing::fatfs_formats;
    use crate::plan::tests::esxi4;

    #[test]
    fn the_largest_fat16_bank_is_where_fatfs_stops_formatting_fat16() {
        let max = max_fat16_sectors();
        let spc = 64;
        // fatfs reserves one sector, a bank two (the UUID sector): a bank
        // of n sectors has the data area of a fatfs volume of n - 1.
        let extra = u64::from(BANK_RESERVED_SECTORS) - 1;
        let at = |n: u64| fatfs_formats((n - extra) as u32, spc, ROOT_ENTRIES).map(|f| f.0);
        assert_eq!(at(max).as_deref(), Some("FAT16"));
        // One sector more: 65,525 clusters, too many for FAT16, too few
        // for FAT32.
        assert_eq!(at(max + 1), None);
        // About 2 GiB: 65,524 clusters of 32 KiB and the metadata.
        assert!((65_524 * 64..65_525 * 64 + 600).contains(&max), "{max}");
    }

    #[test]
    fn the_smallest_bank_holds_the_payload_and_its_headroom() {
        let layout = Layout::load("esxi-native").unwrap();
        let payload = esxi4(&[50_000_000]);
        let min = min_bank_sectors(&payload, &layout).unwrap();
        let headroom = payload.headroom(&layout);
        let fits = |n: u64| best_fat16(n, layout.geometry, 0, Some((&payload, headroom))).is_some();
        assert!(fits(min));
        assert!(!fits(min - 1), "{min} is not the smallest");
        let bs = best_fat16(min, layout.geometry, 8224, Some((&payload, headroom))).unwrap();
        let data: u64 = payload.files.iter().map(|f| f.bytes).sum();
        assert!(u64::from(bs.clusters()) * bs.cluster_bytes() >= data + headroom);
        assert_eq!(bs.hidden_sectors, 8224);
    }

    #[test]
    fn a_bank_cannot_list_more_files_than_its_root_directory() {
        let layout = Layout::load("esxi-native").unwrap();
        let payload = esxi4(&[1; 169]); // 171 files × 3 entries > 512
        assert_eq!(
            min_bank_sectors(&payload, &layout).unwrap_err().to_string(),
            "layout: the bank holds 171 files, more than a FAT16 root directory takes"
        );
        assert!(min_bank_sectors(&esxi4(&[1; 168]), &layout).is_ok());
    }
}
