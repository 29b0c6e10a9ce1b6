//! The FAT boot sector (BIOS parameter block), read by hand: fatfs hides
//! these fields, and esxstick needs them to find the used extent of the
//! boot partition and to patch the BPB when the partition moves. Every
//! field's place is named once, in [`Field`], for parsing and patching
//! alike.

use serde::Serialize;

use crate::error::{Error, FatProblem, Result};
use crate::image::source::{Source, SECTOR};
use crate::ondisk::{le, signed};

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

    /// Bytes that `entries` FAT entries of this type take: 1.5 bytes an
    /// entry on FAT12 (rounded up), 2 on FAT16, 4 on FAT32.
    pub fn fat_bytes(self, entries: u64) -> u64 {
        match self {
            FatType::Fat12 => (entries * 3).div_ceil(2),
            FatType::Fat16 => entries * 2,
            FatType::Fat32 => entries * 4,
        }
    }

    /// Whole FAT entries of this type that `bytes` of FAT hold.
    pub fn entries_in(self, bytes: u64) -> u64 {
        match self {
            FatType::Fat12 => bytes * 2 / 3,
            FatType::Fat16 => bytes / 2,
            FatType::Fat32 => bytes / 4,
        }
    }
}

/// A field of the BIOS parameter block: where it lies in the boot sector
/// and how wide it is. Parsing and patching both go through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Bytes per sector.
    BytesPerSector,
    /// Sectors per cluster.
    SectorsPerCluster,
    /// Reserved sectors before the first FAT.
    ReservedSectors,
    /// Number of FATs.
    Fats,
    /// Root directory entries (FAT12/16).
    RootEntries,
    /// Total sectors, when below 65,536 (else 0).
    TotalSectors16,
    /// Sectors per FAT (FAT12/16; 0 on FAT32).
    SectorsPerFat16,
    /// Sectors per track of the CHS geometry.
    SectorsPerTrack,
    /// Heads of the CHS geometry.
    Heads,
    /// Hidden sectors: the LBA of the volume as it believes.
    HiddenSectors,
    /// Total sectors, when [`Field::TotalSectors16`] is 0.
    TotalSectors32,
    /// Sectors per FAT on FAT32.
    SectorsPerFat32,
    /// The first cluster of the root directory on FAT32 (usually 2).
    RootCluster,
    /// The sector of the backup boot sector on FAT32 (usually 6).
    BackupBootSector,
}

impl Field {
    /// Byte offset of the field in the boot sector.
    pub const fn offset(self) -> usize {
        match self {
            Field::BytesPerSector => 0x0b,
            Field::SectorsPerCluster => 0x0d,
            Field::ReservedSectors => 0x0e,
            Field::Fats => 0x10,
            Field::RootEntries => 0x11,
            Field::TotalSectors16 => 0x13,
            Field::SectorsPerFat16 => 0x16,
            Field::SectorsPerTrack => 0x18,
            Field::Heads => 0x1a,
            Field::HiddenSectors => 0x1c,
            Field::TotalSectors32 => 0x20,
            Field::SectorsPerFat32 => 0x24,
            Field::RootCluster => 0x2c,
            Field::BackupBootSector => 0x32,
        }
    }

    /// Width of the field in bytes.
    pub const fn width(self) -> usize {
        match self {
            Field::SectorsPerCluster | Field::Fats => 1,
            Field::HiddenSectors
            | Field::TotalSectors32
            | Field::SectorsPerFat32
            | Field::RootCluster => 4,
            _ => 2,
        }
    }

    /// The field's name, as [`BootSector`] and plans call it.
    pub const fn name(self) -> &'static str {
        match self {
            Field::BytesPerSector => "bytes_per_sector",
            Field::SectorsPerCluster => "sectors_per_cluster",
            Field::ReservedSectors => "reserved_sectors",
            Field::Fats => "fats",
            Field::RootEntries => "root_entries",
            Field::TotalSectors16 => "total_sectors_16",
            Field::SectorsPerFat16 => "sectors_per_fat_16",
            Field::SectorsPerTrack => "sectors_per_track",
            Field::Heads => "heads",
            Field::HiddenSectors => "hidden_sectors",
            Field::TotalSectors32 => "total_sectors_32",
            Field::SectorsPerFat32 => "sectors_per_fat_32",
            Field::RootCluster => "root_cluster",
            Field::BackupBootSector => "backup_boot_sector",
        }
    }

    /// The field's value in `sector` (0 where the sector is too short).
    pub fn read(self, sector: &[u8]) -> u32 {
        le::uint_at(sector, self.offset(), self.width())
    }

    /// Sets the field in `sector` to the low bytes of `value`; false,
    /// changing nothing, when the sector is too short to hold it.
    pub fn write(self, sector: &mut [u8], value: u32) -> bool {
        le::put(sector, self.offset(), self.width(), value)
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

/// Media descriptor byte (extended FAT12/16 boot sector offsets follow).
const MEDIA: usize = 0x15;
/// BIOS drive number.
const DRIVE: usize = 0x24;
/// Extended boot signature (0x29: the next three fields are valid).
const EXT_SIGNATURE: usize = 0x26;
/// Volume serial number.
const VOLUME_ID: usize = 0x27;
/// Volume label, 11 bytes.
const LABEL: usize = 0x2b;
/// File system type string, 8 bytes.
const FS_TYPE: usize = 0x36;
/// FAT32's extended boot signature and volume label: its extended BPB
/// follows the FAT32 fields, 0x1C bytes later than FAT12/16's.
const FAT32_EXT_SIGNATURE: usize = 0x42;
const FAT32_LABEL: usize = 0x47;
/// Boot code, after the extended BPB.
const BOOT_CODE: usize = 0x3e;

/// Root directory entries of a freshly formatted FAT12/16 volume.
pub const ROOT_ENTRIES: u16 = 512;

impl BootSector {
    /// The boot sector of a FAT16 volume of `total_sectors` with
    /// `sectors_per_cluster` and `reserved` sectors before the FATs (two
    /// FATs, 512 root entries), sized by fatfs 0.3's geometry formula:
    /// with `reserved` = 1 it is what `fatfs::format_volume` writes, and
    /// VMware's banks take 2 (the boot sector and the UUID sector). `None`
    /// when the volume would not be FAT16 (fatfs would make it FAT12 or
    /// FAT32). A plan states exactly what `write` will produce with it.
    pub fn fat16_format(
        total_sectors: u32,
        sectors_per_cluster: u8,
        reserved: u16,
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
        let (clusters, sectors_per_fat) = fatfs_clusters(
            total_sectors,
            sectors_per_cluster,
            u32::from(reserved),
            root_sectors,
            16,
        )?;
        if FatType::from_clusters(clusters) != FatType::Fat16 {
            return None;
        }
        Some(BootSector {
            bytes_per_sector: SECTOR as u16,
            sectors_per_cluster,
            reserved_sectors: reserved,
            fats: 2,
            root_entries: ROOT_ENTRIES,
            total_sectors,
            sectors_per_fat,
            sectors_per_track,
            heads,
            hidden_sectors,
        })
    }

    /// The boot sector that formats a new FAT16 volume with these fields,
    /// `label` and `volume_id`: a jump over the BPB, the BPB (media 0xF8,
    /// a fixed disk), the extended BPB (drive 0x80, signature 0x29, the
    /// volume ID and label, "FAT16   "), boot code that hands back to the
    /// BIOS (a bank is never booted itself), and the 55 AA signature.
    /// [`BootSector::parse`] reads these fields back.
    pub fn to_sector(&self, label: &[u8; 11], volume_id: u32) -> [u8; 512] {
        let mut s = [0u8; 512];
        s[..3].copy_from_slice(&[0xeb, 0x3c, 0x90]);
        s[3..11].copy_from_slice(b"MSWIN4.1");
        let total16 = u16::try_from(self.total_sectors).unwrap_or(0);
        let fields = [
            (Field::BytesPerSector, u32::from(self.bytes_per_sector)),
            (
                Field::SectorsPerCluster,
                u32::from(self.sectors_per_cluster),
            ),
            (Field::ReservedSectors, u32::from(self.reserved_sectors)),
            (Field::Fats, u32::from(self.fats)),
            (Field::RootEntries, u32::from(self.root_entries)),
            (Field::TotalSectors16, u32::from(total16)),
            (Field::SectorsPerFat16, self.sectors_per_fat),
            (Field::SectorsPerTrack, u32::from(self.sectors_per_track)),
            (Field::Heads, u32::from(self.heads)),
            (Field::HiddenSectors, self.hidden_sectors),
            (
                Field::TotalSectors32,
                if total16 == 0 { self.total_sectors } else { 0 },
            ),
        ];
        for (field, value) in fields {
            field.write(&mut s, value);
        }
        s[MEDIA] = 0xf8;
        s[DRIVE] = 0x80;
        s[EXT_SIGNATURE] = 0x29;
        le::put(&mut s, VOLUME_ID, 4, volume_id);
        s[LABEL..LABEL + 11].copy_from_slice(label);
        s[FS_TYPE..FS_TYPE + 8].copy_from_slice(b"FAT16   ");
        // int 18h (no bootable volume here: try the next device), then halt.
        s[BOOT_CODE..BOOT_CODE + 4].copy_from_slice(&[0xcd, 0x18, 0xeb, 0xfe]);
        s[510..].copy_from_slice(&[0x55, 0xaa]);
        s
    }

    /// Parses and sanity-checks a boot sector.
    pub fn parse(sector: &[u8; 512]) -> Result<BootSector, String> {
        if !signed(sector) {
            return Err("no boot sector signature (55 AA)".to_string());
        }
        // Each field is as wide as its type: the casts keep all its bits.
        let field = |f: Field| f.read(sector);
        let either = |small: Field, large: Field| match field(small) {
            0 => field(large),
            v => v,
        };
        let bs = BootSector {
            bytes_per_sector: field(Field::BytesPerSector) as u16,
            sectors_per_cluster: field(Field::SectorsPerCluster) as u8,
            reserved_sectors: field(Field::ReservedSectors) as u16,
            fats: field(Field::Fats) as u8,
            root_entries: field(Field::RootEntries) as u16,
            total_sectors: either(Field::TotalSectors16, Field::TotalSectors32),
            sectors_per_fat: either(Field::SectorsPerFat16, Field::SectorsPerFat32),
            sectors_per_track: field(Field::SectorsPerTrack) as u16,
            heads: field(Field::Heads) as u16,
            hidden_sectors: field(Field::HiddenSectors),
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
        if u64::from(bs.sectors_per_fat) * SECTOR < bs.fat_bytes_needed() {
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

    /// The fields in which `self` differs from `planned`, each as
    /// `name: found, planned value`, joined by "; " (empty when equal).
    pub fn differences(&self, planned: &BootSector) -> String {
        let (Ok(serde_json::Value::Object(got)), Ok(serde_json::Value::Object(want))) =
            (serde_json::to_value(self), serde_json::to_value(planned))
        else {
            return String::new();
        };
        got.iter()
            .filter_map(|(name, value)| {
                let planned = want.get(name)?;
                (value != planned).then(|| format!("{name}: {value}, planned {planned}"))
            })
            .collect::<Vec<_>>()
            .join("; ")
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

    /// The volume label in `sector` (the boot sector this was parsed
    /// from), trailing blanks removed: where its FAT type keeps it, when
    /// the extended boot signature (0x29) says it is there.
    pub fn label(&self, sector: &[u8; 512]) -> Option<String> {
        let (signature, label) = match self.fat_type() {
            FatType::Fat32 => (FAT32_EXT_SIGNATURE, FAT32_LABEL),
            FatType::Fat12 | FatType::Fat16 => (EXT_SIGNATURE, LABEL),
        };
        let bytes = sector.get(label..label + 11)?;
        (sector.get(signature) == Some(&0x29))
            .then(|| String::from_utf8_lossy(bytes).trim_end().to_string())
    }

    /// Bytes of FAT that describe every data cluster (and the two
    /// reserved entries before them); a FAT may be declared larger.
    pub fn fat_bytes_needed(&self) -> u64 {
        self.fat_type().fat_bytes(u64::from(self.clusters()) + 2)
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
        let fats_end = self.fats.checked_sub(1).map(|n| self.fat_range(n).end);
        if fat_type == FatType::Fat32 || fats_end.is_none_or(|end| end > volume.len()) {
            return false;
        }
        for n in 0..self.fats {
            let Some(fat) = volume.get_mut(self.fat_range(n)) else {
                return false;
            };
            for cluster in first..=last {
                let c = cluster as usize;
                match fat_type {
                    FatType::Fat16 => {
                        le::put(fat, 2 * c, 2, fat_type.bad_cluster());
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
        let fat_bytes = self
            .fat_bytes_needed()
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
        let described = fat_type.entries_in(fat.len() as u64);
        let last_used = (2..entries.min(described) as usize)
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
    match fat_type {
        FatType::Fat12 => {
            let v = u32::from(le::u16_at(fat, n + n / 2));
            if n.is_multiple_of(2) {
                v & 0xfff
            } else {
                v >> 4
            }
        }
        FatType::Fat16 => u32::from(le::u16_at(fat, 2 * n)),
        FatType::Fat32 => le::u32_at(fat, 4 * n) & 0x0fff_ffff,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ondisk::testing::{fatfs_formats, signed_sector};

    /// The first 62 bytes of `mkfs.fat -F 16 -g 3/42 -h 3192 -s 4 -r 512
    /// -R 2 -n HYPERVISOR1 -i 1234ABCD` on 124,194 sectors (the hand-made
    /// stick's bank 5), as `xxd -p` prints them; minfo reads it as: 4
    /// sectors a cluster, 4 reserved sectors (mkfs.fat rounds up), 2 FATs
    /// of 124 sectors, 512 root entries, 3 heads, 42 sectors a track,
    /// 3,192 hidden sectors, "big size" 124,194 sectors.
    const MKFS_FAT16: &str = "eb3c906d6b66732e66617400020404000200020000f87c00\
        2a000300780c000022e50100800029cdab34124859504552\
        5649534f52314641543136202020";

    /// The same from `mkfs.fat -F 12 -s 1 -r 224 -R 1 -h 32` on 1,440 KiB:
    /// minfo reads "small size" 2,880 sectors, 9 sectors a FAT, 224 root
    /// entries, 2 heads, 18 sectors a track, 32 hidden sectors.
    const MKFS_FAT12: &str = "eb3c906d6b66732e666174000201010002e000400bf00900\
        120002002000000000000000000029cd2cac074e4f204e41\
        4d45202020204641543132202020";

    /// The boot sector whose first bytes `hex` gives, signed 55 AA.
    fn sector(hex: &str) -> [u8; 512] {
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        signed_sector(&[(0, &bytes)])
    }

    #[test]
    fn the_label_is_read_where_mkfs_fat_put_it() {
        for (hex, label) in [(MKFS_FAT16, "HYPERVISOR1"), (MKFS_FAT12, "NO NAME")] {
            let raw = sector(hex);
            let bs = BootSector::parse(&raw).unwrap();
            assert_eq!(bs.label(&raw).as_deref(), Some(label));
            let mut unsigned = raw;
            unsigned[EXT_SIGNATURE] = 0;
            assert_eq!(bs.label(&unsigned), None, "no extended boot signature");
        }
    }

    #[test]
    fn parses_what_mkfs_fat_wrote_as_minfo_reads_it() {
        let bs = BootSector::parse(&sector(MKFS_FAT16)).unwrap();
        let want = BootSector {
            bytes_per_sector: 512,
            sectors_per_cluster: 4,
            reserved_sectors: 4,
            fats: 2,
            root_entries: 512,
            total_sectors: 124_194,
            sectors_per_fat: 124,
            sectors_per_track: 42,
            heads: 3,
            hidden_sectors: 3192,
        };
        assert_eq!(bs, want);
        // 4 + 2 × 124 + 32 root sectors; (124,194 − 284) / 4 clusters.
        assert_eq!(bs.first_data_sector(), 284);
        assert_eq!(bs.clusters(), 30_977);
        assert_eq!(bs.fat_type(), FatType::Fat16);
        assert_eq!(bs.cluster_bytes(), 2048);
        assert_eq!(bs.fat_range(1), 4 * 512 + 124 * 512..4 * 512 + 248 * 512);

        let floppy = BootSector::parse(&sector(MKFS_FAT12)).unwrap();
        assert_eq!(
            (
                floppy.total_sectors,
                floppy.sectors_per_fat,
                floppy.root_entries
            ),
            (2880, 9, 224)
        );
        assert_eq!((floppy.heads, floppy.sectors_per_track), (2, 18));
        assert_eq!(floppy.hidden_sectors, 32);
        // 1 + 2 × 9 + 14 root sectors.
        assert_eq!(floppy.first_data_sector(), 33);
        assert_eq!(floppy.clusters(), 2847);
        assert_eq!(floppy.fat_type(), FatType::Fat12);
    }

    #[test]
    fn fields_lie_where_the_fat_specification_puts_them() {
        let spec = [
            (Field::BytesPerSector, 0x0b, 2),
            (Field::SectorsPerCluster, 0x0d, 1),
            (Field::ReservedSectors, 0x0e, 2),
            (Field::Fats, 0x10, 1),
            (Field::RootEntries, 0x11, 2),
            (Field::TotalSectors16, 0x13, 2),
            (Field::SectorsPerFat16, 0x16, 2),
            (Field::SectorsPerTrack, 0x18, 2),
            (Field::Heads, 0x1a, 2),
            (Field::HiddenSectors, 0x1c, 4),
            (Field::TotalSectors32, 0x20, 4),
            (Field::SectorsPerFat32, 0x24, 4),
            (Field::RootCluster, 0x2c, 4),
            (Field::BackupBootSector, 0x32, 2),
        ];
        for (field, offset, width) in spec {
            assert_eq!(
                (field.offset(), field.width()),
                (offset, width),
                "{field:?}"
            );
        }
        let mut s = sector(MKFS_FAT16);
        assert_eq!(Field::HiddenSectors.read(&s), 3192);
        assert!(Field::HiddenSectors.write(&mut s, 42));
        assert_eq!(s[0x1c..0x20], [42, 0, 0, 0]);
        assert!(Field::Heads.write(&mut s, 0x1_0040)); // only the low 2 bytes
        assert_eq!(s[0x1a..0x1c], [0x40, 0]);
        assert_eq!(s[0x1c], 42);
        assert!(!Field::SectorsPerFat32.write(&mut [0; 0x26], 1));
    }

    #[test]
    fn refuses_boot_sectors_that_cannot_be_read() {
        let refuse = |edit: &dyn Fn(&mut [u8; 512]), why: &str| {
            let mut s = sector(MKFS_FAT16);
            edit(&mut s);
            assert_eq!(BootSector::parse(&s).unwrap_err(), why);
        };
        refuse(&|s| s[511] = 0, "no boot sector signature (55 AA)");
        refuse(
            &|s| s[0x0b..0x0d].copy_from_slice(&[0, 4]),
            "1024 bytes per sector (esxstick handles 512)",
        );
        refuse(
            &|s| s[0x0d] = 3,
            "3 sectors per cluster is not a power of two",
        );
        refuse(
            &|s| s[0x0e] = 0,
            "no reserved sectors (the boot sector must be one)",
        );
        refuse(&|s| s[0x10] = 0, "it declares no FAT");
        // 121-sector FATs leave (124,194 − 278) / 4 = 30,979 clusters,
        // whose 30,981 entries take 61,962 bytes: more than 121 × 512.
        refuse(
            &|s| s[0x16] = 121,
            "its FAT (121 sectors) is too small for its 30979 clusters",
        );
        refuse(
            &|s| s[0x20..0x24].copy_from_slice(&200u32.to_le_bytes()),
            "its metadata (284 sectors) does not fit its size (200 sectors)",
        );
    }

    #[test]
    fn fat_size_follows_the_entry_widths() {
        // FAT12: 1.5 bytes an entry, rounded up; FAT16: 2; FAT32: 4.
        assert_eq!(FatType::Fat12.fat_bytes(4087), 6131);
        assert_eq!(FatType::Fat12.fat_bytes(2), 3);
        assert_eq!(FatType::Fat16.fat_bytes(30_979), 61_958);
        assert_eq!(FatType::Fat32.fat_bytes(65_527), 262_108);
        assert_eq!(FatType::Fat12.entries_in(4608), 3072);
        assert_eq!(FatType::Fat16.entries_in(63_487), 31_743);
        assert_eq!(FatType::Fat32.entries_in(7), 1);
        let bs = BootSector::parse(&sector(MKFS_FAT16)).unwrap();
        assert_eq!(bs.fat_bytes_needed(), 61_958);
        assert_eq!(FatType::from_clusters(4084), FatType::Fat12);
        assert_eq!(FatType::from_clusters(4085), FatType::Fat16);
        assert_eq!(FatType::from_clusters(65_524), FatType::Fat16);
        assert_eq!(FatType::from_clusters(65_525), FatType::Fat32);
    }

    #[test]
    fn bad_clusters_are_marked_as_the_specification_encodes_them() {
        let floppy = BootSector::parse(&sector(MKFS_FAT12)).unwrap();
        let mut volume = vec![0u8; floppy.fat_range(1).end];
        assert!(floppy.mark_bad(&mut volume, 2, 3));
        // FAT12 entries 2 and 3 share bytes 3–5: FF7 and FF7 → F7 7F FF.
        for fat in [floppy.fat_range(0), floppy.fat_range(1)] {
            assert_eq!(volume[fat.start + 3..fat.start + 6], [0xf7, 0x7f, 0xff]);
            assert_eq!(fat_entry(&volume[fat.clone()], FatType::Fat12, 3), 0xff7);
        }
        let bank = BootSector::parse(&sector(MKFS_FAT16)).unwrap();
        let mut volume = vec![0u8; bank.fat_range(1).end];
        assert!(bank.mark_bad(&mut volume, 3, 3));
        let fat = bank.fat_range(1);
        assert_eq!(volume[fat.start + 4..fat.start + 8], [0, 0, 0xf7, 0xff]);
        // FATs not wholly in the buffer: nothing changes.
        let mut short = vec![0u8; bank.fat_range(1).end - 1];
        assert!(!bank.mark_bad(&mut short, 3, 3));
        assert!(short.iter().all(|&b| b == 0));
    }

    #[test]
    fn fat16_format_states_what_fatfs_formats() {
        let cases = [
            (8160, 1, "FAT16"),       // ESXi's boot partition
            (124_194, 4, "FAT16"),    // the hand-made stick's bank 5
            (511_968, 8, "FAT16"),    // ESXi 4's bank
            (3_000_000, 64, "FAT16"), // large clusters
            (4000, 1, "FAT12"),
            (124_194, 1, "FAT32"),    // fatfs tries FAT32 first
            (4_200_000, 64, "FAT32"), // past FAT16's 65,524 clusters
        ];
        for (total, spc, fat) in cases {
            let (label, reserved, fat_sectors) = fatfs_formats(total, spc, ROOT_ENTRIES).unwrap();
            assert_eq!(label, fat, "fatfs on {total}/{spc}");
            let ours = BootSector::fat16_format(total, spc, 1, 3, 42, 7);
            assert_eq!(ours.is_some(), fat == "FAT16", "{total}/{spc}");
            if let Some(bs) = ours {
                assert_eq!(bs.reserved_sectors, reserved, "{total}/{spc}");
                assert_eq!(bs.sectors_per_fat, u32::from(fat_sectors), "{total}/{spc}");
                assert_eq!((bs.fats, bs.root_entries), (2, 512));
                assert_eq!(
                    (bs.heads, bs.sectors_per_track, bs.hidden_sectors),
                    (3, 42, 7)
                );
                assert_eq!(bs.total_sectors, total);
                assert_eq!(bs.fat_type(), FatType::Fat16);
            }
        }
        assert!(BootSector::fat16_format(8160, 1, 1, 64, 32, 32).is_some());
        assert!(BootSector::fat16_format(4000, 1, 1, 64, 32, 32).is_none());
    }
}
