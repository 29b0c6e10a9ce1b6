//! The stick an ESXi 5+ installer ISO becomes (layout `installer-fat32`,
//! VMware's USB recipe): an MBR with one primary FAT32 partition 1 (type
//! 0x0C, active) from 1 MiB to the end of the target, holding every file
//! of the ISO under its own 8.3 name, `SYSLINUX.CFG` made from
//! ISOLINUX.CFG, and `EFI/BOOT/BOOT.CFG` (a copy of `/BOOT.CFG` when the
//! ISO lacks it); both BOOT.CFGs with the `--kernelopt` options added.
//!
//! FAT32 needs at least 65,525 clusters: with 512-byte clusters that is
//! about 33 MiB of partition, whatever the files. The cluster size is the
//! largest (up to 32 KiB) that gives a valid FAT32 volume holding the
//! files — 2 KiB on 256 MiB, 32 KiB from about 2 GiB; the smallest
//! target is the smallest over all cluster sizes. The volume is laid out exactly as
//! fatfs formats it ([`Fat32`]: 8 reserved sectors, two FATs).

use serde::Serialize;

use crate::digest::sha256;
use crate::error::{Error, InstallerProblem, Result};
use crate::esxi::installer::{self, Installer};
use crate::image::source::SECTOR;
use crate::ondisk::table::{PartitionType, Scheme, TableSpec};
use crate::plan::geometry::{chs, smallest_fitting};
use crate::plan::{PlannedPartition, Shortfall};

/// Version of the JSON document `plan --json` prints for an installer.
pub const SCHEMA: &str = "esxstick.installer-plan/1";
/// The layout's name.
pub const LAYOUT: &str = "installer-fat32";
/// First sector of the partition: 1 MiB, a flash erase-block boundary.
pub const START: u64 = 2048;
/// MBR type of the partition: FAT32 with LBA addressing.
pub const PARTITION_TYPE: u8 = 0x0c;
/// Reserved sectors fatfs gives a FAT32 volume (boot sector, FSInfo,
/// backup boot sector at 6).
pub const RESERVED_SECTORS: u64 = 8;
/// Fewest clusters a FAT32 volume may have (fewer is FAT16).
pub const MIN_CLUSTERS: u64 = 65_525;
/// Most clusters fatfs formats as FAT32.
const MAX_CLUSTERS: u64 = 0x0fff_fff4;
/// Cluster sizes tried, in sectors (512 B to 32 KiB).
const CLUSTER_SECTORS: [u64; 7] = [1, 2, 4, 8, 16, 32, 64];
/// Largest partition an MBR entry describes.
const MAX_SECTORS: u64 = u32::MAX as u64;
/// CHS geometry written to the table: the usual 255 × 63 of USB disks.
const HEADS: u16 = 255;
/// Sectors per track of that geometry.
const SECTORS_PER_TRACK: u16 = 63;
/// The volume label.
const LABEL: &str = "ESXI";
/// Sectors zeroed at each end of the target before writing (the old
/// table, a GPT's header and entries).
const WIPE_SECTORS: u64 = 67;

/// A complete plan for one target.
#[derive(Debug, Clone, Serialize)]
pub struct InstallerPlan {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// [`LAYOUT`].
    pub layout: &'static str,
    /// The ISO's `build=`.
    pub build: Option<String>,
    /// Target size in sectors.
    pub target_sectors: u64,
    /// The one partition.
    pub partitions: Vec<PlannedPartition>,
    /// The FAT32 volume.
    pub fat: Fat32,
    /// Directories made, parents first.
    pub dirs: Vec<String>,
    /// Every file on the stick.
    pub files: Vec<StickFile>,
    /// Boot options added to both BOOT.CFGs (`--kernelopt`).
    pub kernelopt: Option<String>,
    /// Bytes of file data.
    pub data_bytes: u64,
    /// The smallest target this ISO fits, in bytes.
    pub min_target_bytes: u64,
    /// Bytes `write` writes: wipes, table, FAT metadata and file data.
    pub write_bytes: u64,
}

/// The FAT32 volume, as fatfs formats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Fat32 {
    /// Bytes per cluster.
    pub cluster_bytes: u64,
    /// Reserved sectors ([`RESERVED_SECTORS`]).
    pub reserved_sectors: u64,
    /// Sectors of each of the two FATs.
    pub sectors_per_fat: u64,
    /// Data clusters.
    pub clusters: u64,
    /// Clusters the files and directories take.
    pub clusters_used: u64,
    /// The BPB's hidden sectors: the partition's first sector.
    pub hidden_sectors: u64,
    /// Volume ID.
    pub volume_id: u32,
}

/// One file of the stick.
#[derive(Debug, Clone, Serialize)]
pub struct StickFile {
    /// Its path, `/`-separated, as on the ISO.
    pub path: String,
    /// Its size.
    pub bytes: u64,
    /// Where its bytes come from.
    pub from: FileFrom,
}

/// Where a stick file's bytes come from.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FileFrom {
    /// The file of the same path on the ISO, from this byte offset.
    Iso {
        /// Byte offset of its extent.
        start: u64,
    },
    /// Made by esxstick.
    Made {
        /// What it was made from.
        why: String,
        /// Its text.
        text: String,
        /// Its SHA-256.
        sha256: String,
    },
}

/// Plans the stick for `inv` on a target of `target_sectors`, with
/// `kernelopt` added to both BOOT.CFGs when given.
pub fn plan(
    inv: &Installer,
    kernelopt: Option<&str>,
    target_sectors: u64,
) -> Result<InstallerPlan> {
    if let Some(k) = kernelopt {
        installer::check_kernelopt(k)?;
    }
    let files = stick_files(inv, kernelopt);
    let dirs = stick_dirs(inv);
    let paths = files.iter().map(|f| f.path.as_str());
    if let Some(path) = paths
        .chain(dirs.iter().map(String::as_str))
        .find(|p| !is_short_path(p))
    {
        return Err(Error::Installer(InstallerProblem::NotShortName {
            path: path.to_string(),
        }));
    }
    let min_target = (START + min_partition(&files, &dirs)?) * SECTOR;
    let partition_sectors = target_sectors.saturating_sub(START).min(MAX_SECTORS);
    let fat =
        volume(partition_sectors, &files, &dirs).ok_or(Error::DoesNotFit(Shortfall::Target {
            needs: min_target,
            has: target_sectors * SECTOR,
        }))?;
    let data_bytes: u64 = files.iter().map(|f| f.bytes).sum();
    let metadata = (RESERVED_SECTORS + 2 * fat.sectors_per_fat) * SECTOR;
    let dir_bytes = dir_clusters(&files, &dirs, fat.cluster_bytes) * fat.cluster_bytes;
    Ok(InstallerPlan {
        schema: SCHEMA,
        layout: LAYOUT,
        build: inv.build.clone(),
        target_sectors,
        partitions: vec![partition(partition_sectors)],
        fat,
        dirs,
        files,
        kernelopt: kernelopt.map(str::to_string),
        data_bytes,
        min_target_bytes: min_target,
        write_bytes: 2 * WIPE_SECTORS * SECTOR + metadata + dir_bytes + data_bytes,
    })
}

impl InstallerPlan {
    /// The partition's first sector and length.
    pub fn extent(&self) -> (u64, u64) {
        self.partitions
            .first()
            .map_or((START, 0), |p| (p.start, p.sectors))
    }

    /// The table to write, with `boot_code` (SYSLINUX's mbr.bin) in
    /// sector 0 and the volume ID as the disk signature.
    pub fn table(&self, boot_code: &[u8]) -> TableSpec {
        TableSpec {
            scheme: Scheme::Mbr,
            disk_sectors: self.target_sectors,
            entries: self
                .partitions
                .iter()
                .map(|p| p.table_entry(HEADS, SECTORS_PER_TRACK))
                .collect(),
            boot_code: boot_code.to_vec(),
            disk_signature: self.fat.volume_id,
        }
    }
}

/// The one table entry: partition 1, FAT32 LBA, active, from [`START`].
fn partition(sectors: u64) -> PlannedPartition {
    let end = START + sectors.max(1) - 1;
    let c = |lba| chs(lba, HEADS, SECTORS_PER_TRACK);
    PlannedPartition {
        entry: 1,
        role: "installer",
        kind: format!("0x{PARTITION_TYPE:02x}"),
        start: START,
        end,
        sectors,
        active: true,
        chs_start: c(START),
        chs_end: c(end),
        ebr: None,
    }
}

/// The stick's files: the ISO's, with BOOT.CFG edited for `kernelopt`,
/// SYSLINUX.CFG made from ISOLINUX.CFG, and EFI/BOOT/BOOT.CFG made when
/// the ISO lacks it or for `kernelopt`.
fn stick_files(inv: &Installer, kernelopt: Option<&str>) -> Vec<StickFile> {
    let edit = |text: &str| match kernelopt {
        Some(k) => installer::with_kernelopt(text, k),
        None => text.to_string(),
    };
    let mut made: Vec<(String, String, String)> = vec![(
        installer::SYSLINUX_CFG.into(),
        "ISOLINUX.CFG with -p 1 on its APPEND -c lines".into(),
        installer::syslinux_cfg(&inv.isolinux_cfg),
    )];
    if kernelopt.is_some() {
        made.push((
            installer::BOOT_CFG.into(),
            "BOOT.CFG with --kernelopt".into(),
            edit(&inv.boot_cfg),
        ));
    }
    match &inv.efi_boot_cfg_text {
        Some(text) if kernelopt.is_some() => made.push((
            installer::EFI_BOOT_CFG.into(),
            "EFI/BOOT/BOOT.CFG with --kernelopt".into(),
            edit(text),
        )),
        Some(_) => {}
        None => made.push((
            installer::EFI_BOOT_CFG.into(),
            "a copy of /BOOT.CFG (the ISO has none here)".into(),
            edit(&inv.boot_cfg),
        )),
    }
    let mut files: Vec<StickFile> = inv
        .tree
        .files
        .iter()
        .filter(|f| !made.iter().any(|(p, ..)| p.eq_ignore_ascii_case(&f.path)))
        .map(|f| StickFile {
            path: f.path.clone(),
            bytes: f.bytes,
            from: FileFrom::Iso { start: f.start },
        })
        .collect();
    files.extend(made.into_iter().map(|(path, why, text)| StickFile {
        path,
        bytes: text.len() as u64,
        from: FileFrom::Made {
            why,
            sha256: sha256(text.as_bytes()),
            text,
        },
    }));
    files
}

/// The stick's directories: the ISO's, and EFI/BOOT for its BOOT.CFG.
fn stick_dirs(inv: &Installer) -> Vec<String> {
    let mut dirs = inv.tree.dirs.clone();
    for d in ["EFI", "EFI/BOOT"] {
        if !dirs.iter().any(|x| x.eq_ignore_ascii_case(d)) {
            dirs.push(d.to_string());
        }
    }
    dirs
}

/// The FAT32 volume for a partition of `sectors`: the largest cluster
/// size (up to 32 KiB) that makes it a valid FAT32 volume holding the
/// files. Larger clusters mean a smaller FAT and fewer, larger reads and
/// writes; the space they waste is under one cluster per file (a few
/// hundred files).
fn volume(sectors: u64, files: &[StickFile], dirs: &[String]) -> Option<Fat32> {
    CLUSTER_SECTORS.iter().rev().find_map(|&spc| {
        let fat = geometry(sectors, spc)?;
        let used = clusters_needed(files, dirs, fat.cluster_bytes);
        (used <= fat.clusters).then_some(Fat32 {
            clusters_used: used,
            ..fat
        })
    })
}

/// fatfs's FAT32 layout of `sectors` with clusters of `spc` sectors
/// (fatfs's formula, `determine_sectors_per_fat`), when it is a valid
/// FAT32 volume.
pub fn geometry(sectors: u64, spc: u64) -> Option<Fat32> {
    let t0 = sectors.checked_sub(RESERVED_SECTORS)?;
    let per_fat = (t0 + 2 * spc).div_ceil(spc * SECTOR * 8 / 32 + 2);
    let clusters = t0.checked_sub(2 * per_fat)? / spc;
    (MIN_CLUSTERS..=MAX_CLUSTERS)
        .contains(&clusters)
        .then_some(Fat32 {
            cluster_bytes: spc * SECTOR,
            reserved_sectors: RESERVED_SECTORS,
            sectors_per_fat: per_fat,
            clusters,
            clusters_used: 0,
            hidden_sectors: START,
            volume_id: 0x4553_5849, // "ESXI"
        })
}

/// Whether every component of `path` is an upper-case 8.3 name: a base
/// of 1 to 8 and an optional extension of 1 to 3 characters that FAT
/// allows in short names. fatfs gives such a name a short entry that is
/// the name itself.
fn is_short_path(path: &str) -> bool {
    let allowed =
        |c: char| c.is_ascii_uppercase() || c.is_ascii_digit() || "_!#$%&'()-@^`{}~".contains(c);
    path.split('/').all(|name| {
        let (base, ext) = name.split_once('.').unwrap_or((name, ""));
        (1..=8).contains(&base.len())
            && ext.len() <= 3
            && !(name.ends_with('.'))
            && base.chars().chain(ext.chars()).all(allowed)
    })
}

/// The volume label.
pub fn label() -> [u8; 11] {
    let mut l = [b' '; 11];
    for (d, s) in l.iter_mut().zip(LABEL.bytes()) {
        *d = s;
    }
    l
}

/// Clusters the files and directories take with clusters of `cluster`
/// bytes (the root directory's first cluster included).
fn clusters_needed(files: &[StickFile], dirs: &[String], cluster: u64) -> u64 {
    let data: u64 = files.iter().map(|f| f.bytes.div_ceil(cluster)).sum();
    data + dir_clusters(files, dirs, cluster)
}

/// Clusters of the root and every directory: each entry takes its short
/// entry and the long-name entries fatfs writes beside it (one per 13
/// characters); a subdirectory also holds `.` and `..`.
fn dir_clusters(files: &[StickFile], dirs: &[String], cluster: u64) -> u64 {
    let parent = |p: &str| p.rsplit_once('/').map_or("", |(d, _)| d).to_string();
    let entries = |p: &str| 1 + p.rsplit('/').next().unwrap_or(p).len().div_ceil(13) as u64;
    let mut per_dir: std::collections::BTreeMap<String, u64> =
        std::iter::once((String::new(), 0)).collect();
    for d in dirs {
        per_dir.insert(d.clone(), 2);
    }
    for p in files
        .iter()
        .map(|f| f.path.as_str())
        .chain(dirs.iter().map(String::as_str))
    {
        *per_dir.entry(parent(p)).or_default() += entries(p);
    }
    per_dir
        .values()
        .map(|n| (n * 32).div_ceil(cluster).max(1))
        .sum()
}

/// The smallest partition (in sectors) any cluster size makes hold the
/// files as a valid FAT32 volume.
fn min_partition(files: &[StickFile], dirs: &[String]) -> Result<u64> {
    CLUSTER_SECTORS
        .iter()
        .filter_map(|&spc| {
            let need = clusters_needed(files, dirs, spc * SECTOR).max(MIN_CLUSTERS);
            let fits = |s: u64| geometry(s, spc).is_some_and(|g| g.clusters >= need);
            // Clusters grow with the size (a FAT sector more costs at most
            // two clusters): search, then step to the first that fits.
            // Past MAX_CLUSTERS a size is no FAT32 volume of this cluster.
            let hi = MAX_SECTORS.min(MAX_CLUSTERS * spc);
            if !fits(hi) {
                return None;
            }
            let hi = smallest_fitting(RESERVED_SECTORS, hi, fits);
            (hi.saturating_sub(4 * spc)..=hi).find(|&s| fits(s))
        })
        .min()
        .ok_or(Error::DoesNotFit(Shortfall::AnyTarget {
            layout: LAYOUT.into(),
        }))
}

/// The partition type of the installer partition.
pub fn partition_type() -> PartitionType {
    PartitionType::Mbr(PARTITION_TYPE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names() {
        for ok in [
            "BOOT.CFG",
            "EFI/BOOT/BOOTX64.EFI",
            "B.B00",
            "UC_INTEL.B00",
            "README",
        ] {
            assert!(is_short_path(ok), "{ok}");
        }
        for bad in [
            "boot.cfg",
            "VMWARE-ESXI.CFG",
            "TOOLONGNAME.X",
            "A.TOOL",
            "A.B.C",
            "X.",
            "",
        ] {
            assert!(!is_short_path(bad), "{bad}");
        }
    }

    #[test]
    fn fat32_needs_65525_clusters() {
        // 33 MiB with 512-byte clusters is just FAT32; 32 MiB is not.
        assert!(geometry(33 * 2048, 1).is_some());
        assert!(geometry(32 * 2048, 1).is_none());
        let g = geometry(1 << 21, 8).unwrap(); // 1 GiB, 4 KiB clusters
        assert_eq!(g.cluster_bytes, 4096);
        assert!(g.clusters * 4 <= g.sectors_per_fat * 512);
    }

    #[test]
    fn the_smallest_partition_is_tight() {
        let files = vec![StickFile {
            path: "S.V00".into(),
            bytes: 300 << 20,
            from: FileFrom::Iso { start: 0 },
        }];
        let min = min_partition(&files, &[]).unwrap();
        assert!(volume(min, &files, &[]).is_some());
        assert!(volume(min - 1, &files, &[]).is_none());
    }
}
