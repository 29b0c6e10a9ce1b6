//! The FAT boot sector (BIOS parameter block), read by hand: fatfs hides
//! these fields, and esxstick needs them to find the used extent of the
//! boot partition and, later, to patch the BPB when the partition moves.

use serde::Serialize;

use crate::error::{Error, FatProblem, Result};
use crate::image::source::{Source, SECTOR};

/// The largest FAT esxstick scans for the used extent (a FAT16 FAT is at
/// most 128 KiB; a boot partition's FAT32 FAT would be far below this).
const MAX_FAT_BYTES: u64 = 16 << 20;

/// FAT variant, decided by the cluster count alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FatType {
    /// Fewer than 4,085 clusters.
    #[serde(rename = "FAT12")]
    Fat12,
    /// 4,085 to 65,524 clusters.
    #[serde(rename = "FAT16")]
    Fat16,
    /// 65,525 clusters or more.
    #[serde(rename = "FAT32")]
    Fat32,
}

impl std::fmt::Display for FatType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FatType::Fat12 => "FAT12",
            FatType::Fat16 => "FAT16",
            FatType::Fat32 => "FAT32",
        })
    }
}

impl FatType {
    /// The FAT entry value that marks a bad cluster.
    pub fn bad_cluster(self) -> u32 {
        match self {
            FatType::Fat12 => 0xff7,
            FatType::Fat16 => 0xfff7,
            FatType::Fat32 => 0x0fff_fff7,
        }
    }

    /// The FAT type that a volume with `clusters` data clusters has.
    pub fn from_clusters(clusters: u32) -> FatType {
        match clusters {
            0..4085 => FatType::Fat12,
            4085..65525 => FatType::Fat16,
            _ => FatType::Fat32,
        }
    }
}

/// The fields of a FAT boot sector that esxstick uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootSector {
    /// Bytes per sector (offset 0x0B).
    pub bytes_per_sector: u16,
    /// Sectors per cluster (0x0D).
    pub sectors_per_cluster: u8,
    /// Reserved sectors before the first FAT (0x0E).
    pub reserved_sectors: u16,
    /// Number of FATs (0x10).
    pub fats: u8,
    /// Root directory entries, FAT12/16 (0x11).
    pub root_entries: u16,
    /// Total sectors (0x13, or 0x20 when that is 0).
    pub total_sectors: u32,
    /// Sectors per FAT (0x16, or 0x24 on FAT32).
    pub sectors_per_fat: u32,
    /// Sectors per track (0x18).
    pub sectors_per_track: u16,
    /// Heads (0x1A).
    pub heads: u16,
    /// Hidden sectors: LBA of the partition as the volume believes (0x1C).
    pub hidden_sectors: u32,
}

/// Root directory entries of a freshly formatted FAT12/16 volume.
pub const ROOT_ENTRIES: u16 = 512;

impl BootSector {
    /// The boot sector that `fatfs::format_volume` writes for a volume of
    /// `total_sectors` with `sectors_per_cluster` (two FATs, 512 root
    /// entries), when that volume is FAT16; `None` when fatfs would make it
    /// FAT12 or FAT32. Mirrors fatfs 0.3's geometry formula, so a plan can
    /// state exactly what `write` will produce (and `write` checks it).
    pub fn fat16_format(
        total_sectors: u32,
        sectors_per_cluster: u8,
        heads: u16,
        sectors_per_track: u16,
        hidden_sectors: u32,
    ) -> Option<BootSector> {
        // fatfs tries FAT32 first: a volume that makes a valid FAT32 is FAT32.
        if fatfs_clusters(total_sectors, sectors_per_cluster, 8, 0, 32)
            .is_some_and(|(c, _)| c >= 65_525)
        {
            return None;
        }
        let root_sectors = (u32::from(ROOT_ENTRIES) * 32).div_ceil(SECTOR as u32);
        let (clusters, sectors_per_fat) =
            fatfs_clusters(total_sectors, sectors_per_cluster, 1, root_sectors, 16)?;
        if FatType::from_clusters(clusters) != FatType::Fat16 {
            return None;
        }
        Some(BootSector {
            bytes_per_sector: SECTOR as u16,
            sectors_per_cluster,
            reserved_sectors: 1,
            fats: 2,
            root_entries: ROOT_ENTRIES,
            total_sectors,
            sectors_per_fat,
            sectors_per_track,
            heads,
            hidden_sectors,
        })
    }

    /// Parses and sanity-checks a boot sector.
    pub fn parse(sector: &[u8; 512]) -> Result<BootSector, String> {
        if sector[510..512] != [0x55, 0xaa] {
            return Err("no boot sector signature (55 AA)".to_string());
        }
        let u16_at = |o: usize| u16::from_le_bytes([sector[o], sector[o + 1]]);
        let u32_at =
            |o: usize| u32::from_le_bytes([sector[o], sector[o + 1], sector[o + 2], sector[o + 3]]);
        let total16 = u16_at(0x13);
        let fat16_size = u16_at(0x16);
        let bs = BootSector {
            bytes_per_sector: u16_at(0x0b),
            sectors_per_cluster: sector[0x0d],
            reserved_sectors: u16_at(0x0e),
            fats: sector[0x10],
            root_entries: u16_at(0x11),
            total_sectors: if total16 != 0 {
                u32::from(total16)
            } else {
                u32_at(0x20)
            },
            sectors_per_fat: if fat16_size != 0 {
                u32::from(fat16_size)
            } else {
                u32_at(0x24)
            },
            sectors_per_track: u16_at(0x18),
            heads: u16_at(0x1a),
            hidden_sectors: u32_at(0x1c),
        };
        if u64::from(bs.bytes_per_sector) != SECTOR {
            return Err(format!(
                "{} bytes per sector (esxstick handles 512)",
                bs.bytes_per_sector
            ));
        }
        if !bs.sectors_per_cluster.is_power_of_two() {
            return Err(format!(
                "{} sectors per cluster is not a power of two",
                bs.sectors_per_cluster
            ));
        }
        if bs.reserved_sectors == 0 {
            return Err("no reserved sectors (the boot sector must be one)".to_string());
        }
        if bs.fats == 0 {
            return Err("it declares no FAT".to_string());
        }
        if bs.sectors_per_fat == 0 {
            return Err("its FAT has zero sectors".to_string());
        }
        if bs.first_data_sector() >= u64::from(bs.total_sectors) {
            return Err(format!(
                "its metadata ({} sectors) does not fit its size ({} sectors)",
                bs.first_data_sector(),
                bs.total_sectors
            ));
        }
        let entries = u64::from(bs.clusters()) + 2;
        let needed = match bs.fat_type() {
            FatType::Fat12 => (entries * 3).div_ceil(2),
            FatType::Fat16 => entries * 2,
            FatType::Fat32 => entries * 4,
        };
        if u64::from(bs.sectors_per_fat) * SECTOR < needed {
            return Err(format!(
                "its FAT ({} sectors) is too small for its {} clusters",
                bs.sectors_per_fat,
                bs.clusters()
            ));
        }
        Ok(bs)
    }

    /// Sectors taken by the FAT12/16 root directory.
    fn root_dir_sectors(&self) -> u64 {
        (u64::from(self.root_entries) * 32).div_ceil(SECTOR)
    }

    /// The first sector of the data area (cluster 2), relative to the volume.
    pub fn first_data_sector(&self) -> u64 {
        u64::from(self.reserved_sectors)
            + u64::from(self.fats) * u64::from(self.sectors_per_fat)
            + self.root_dir_sectors()
    }

    /// Number of data clusters, which decides the FAT type.
    pub fn clusters(&self) -> u32 {
        let data = u64::from(self.total_sectors).saturating_sub(self.first_data_sector());
        (data / u64::from(self.sectors_per_cluster)) as u32
    }

    /// FAT12, FAT16 or FAT32, by cluster count.
    pub fn fat_type(&self) -> FatType {
        FatType::from_clusters(self.clusters())
    }

    /// Bytes per cluster.
    pub fn cluster_bytes(&self) -> u64 {
        u64::from(self.sectors_per_cluster) * SECTOR
    }

    /// The byte range of FAT number `n` (0-based) within the volume.
    pub fn fat_range(&self, n: u8) -> std::ops::Range<usize> {
        let len = self.sectors_per_fat as usize * SECTOR as usize;
        let start = self.reserved_sectors as usize * SECTOR as usize + n as usize * len;
        start..start + len
    }

    /// Marks clusters `first..=last` bad in every FAT of `volume`, the
    /// in-memory start of a FAT12/16 volume holding all its FATs. Returns
    /// false (changing nothing) if the FATs are not all inside `volume` or
    /// the volume is FAT32.
    pub fn mark_bad(&self, volume: &mut [u8], first: u32, last: u32) -> bool {
        let fat_type = self.fat_type();
        if fat_type == FatType::Fat32 || self.fat_range(self.fats - 1).end > volume.len() {
            return false;
        }
        for n in 0..self.fats {
            let range = self.fat_range(n);
            let fat = &mut volume[range];
            for cluster in first..=last {
                let c = cluster as usize;
                match fat_type {
                    FatType::Fat16 => {
                        if let Some(entry) = fat.get_mut(2 * c..2 * c + 2) {
                            entry.copy_from_slice(&0xfff7u16.to_le_bytes());
                        }
                    }
                    _ => {
                        let o = c + c / 2;
                        if let Some([lo, hi]) = fat.get_mut(o..o + 2) {
                            if c.is_multiple_of(2) {
                                *lo = 0xf7;
                                *hi = (*hi & 0xf0) | 0x0f;
                            } else {
                                *lo = (*lo & 0x0f) | 0x70;
                                *hi = 0xff;
                            }
                        }
                    }
                }
            }
        }
        true
    }

    /// The sectors from the volume start to the end of the last cluster in
    /// use: everything past this is free space.
    pub fn used_sectors(&self, source: &Source, volume_lba: u64, partition: u32) -> Result<u64> {
        let fat_type = self.fat_type();
        let entries = u64::from(self.clusters()) + 2;
        let fat_bytes = match fat_type {
            FatType::Fat12 => (entries * 3).div_ceil(2),
            FatType::Fat16 => entries * 2,
            FatType::Fat32 => entries * 4,
        }
        .min(u64::from(self.sectors_per_fat) * SECTOR);
        if fat_bytes > MAX_FAT_BYTES {
            return Err(Error::Fat {
                partition,
                problem: FatProblem::FatTooLarge { bytes: fat_bytes },
            });
        }
        let mut fat = vec![0; fat_bytes as usize];
        let offset = (volume_lba + u64::from(self.reserved_sectors)) * SECTOR;
        source.read_at(offset, &mut fat, "the FAT of the boot partition")?;
        // Free (0) and bad clusters hold no data.
        let bad = fat_type.bad_cluster();
        let in_use = |n: usize| {
            let e = fat_entry(&fat, fat_type, n as u32);
            e != 0 && e != bad
        };
        // Never scan past the FAT actually read (a BPB may claim more
        // clusters than its FAT describes).
        let described = match fat_type {
            FatType::Fat12 => fat.len() * 2 / 3,
            FatType::Fat16 => fat.len() / 2,
            FatType::Fat32 => fat.len() / 4,
        };
        let last_used = (2..(entries as usize).min(described))
            .rev()
            .find(|&n| in_use(n));
        Ok(match last_used {
            Some(n) => {
                self.first_data_sector() + (n as u64 - 1) * u64::from(self.sectors_per_cluster)
            }
            None => self.first_data_sector(),
        })
    }
}

/// Entry `n` of a FAT of the given type (0 past the end of `fat`).
pub fn fat_entry(fat: &[u8], fat_type: FatType, n: u32) -> u32 {
    let n = n as usize;
    let at = |o: usize| u32::from(fat.get(o).copied().unwrap_or(0));
    match fat_type {
        FatType::Fat12 => {
            let v = at(n + n / 2) | (at(n + n / 2 + 1) << 8);
            if n.is_multiple_of(2) {
                v & 0xfff
            } else {
                v >> 4
            }
        }
        FatType::Fat16 => at(2 * n) | (at(2 * n + 1) << 8),
        FatType::Fat32 => {
            (at(4 * n) | at(4 * n + 1) << 8 | at(4 * n + 2) << 16 | at(4 * n + 3) << 24)
                & 0x0fff_ffff
        }
    }
}

/// Clusters and sectors per FAT that fatfs 0.3 computes for a volume with
/// two FATs (its `determine_sectors_per_fat` and `try_fs_geometry`).
fn fatfs_clusters(
    total_sectors: u32,
    sectors_per_cluster: u8,
    reserved: u32,
    root_sectors: u32,
    bits_per_entry: u64,
) -> Option<(u32, u32)> {
    let spc = u64::from(sectors_per_cluster);
    if spc == 0 || u64::from(total_sectors) <= u64::from(reserved + root_sectors) + 8 {
        return None;
    }
    let t0 = u64::from(total_sectors) - u64::from(reserved + root_sectors);
    let t1 = t0 + 2 * spc;
    let t2 = spc * SECTOR * 8 / bits_per_entry + 2;
    let sectors_per_fat = t1.div_ceil(t2);
    let data = t0.checked_sub(2 * sectors_per_fat)?;
    Some(((data / spc) as u32, sectors_per_fat as u32))
}
