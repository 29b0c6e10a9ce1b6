//! The partition planner: from what the image holds and a layout, the
//! exact table, volumes and copies for a target of a given size. A plan is
//! plain data; `plan` prints it and `write` carries it out.
//!
//! - [`payload`](Payload): what the planner needs of the source;
//! - `placement`: where the partitions go, and whether they fit;
//! - `fat16`: the FAT16 volume sizes and cluster sizes of the banks;
//! - `build`, `bank`, `boot`: the complete plan for a placement — the
//!   table entries, each bank's volume, the boot partition's copy;
//! - `table`: the plan as the on-disk table [`write`](crate::stick::write)
//!   serialises;
//! - `geometry`: CHS addresses and alignment arithmetic;
//! - [`layout`]: the layout families, as data;
//! - [`choose`]: the plan chosen without being told: the smallest target,
//!   and the plan an existing stick was written with.

mod bank;
mod boot;
mod build;
pub mod choose;
mod fat16;
pub mod geometry;
pub mod installer;
pub mod layout;
mod payload;
mod placement;
mod table;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::image::source::SECTOR;
use crate::ondisk::table::Scheme;
use crate::size;
use layout::{Layout, LayoutProblem, TargetScheme};

pub use bank::{rebuilt, BankPlan, InPlace, UuidOrigin};
pub use boot::{BootCopy, BpbPatch};
pub use fat16::max_fat16_sectors;
pub use geometry::chs;
pub use payload::{Payload, PayloadFile};

/// Version of the JSON document that `plan --json` prints.
pub const SCHEMA: &str = "esxstick.plan/1";
/// Sectors a GPT needs at each end of the disk (header + 128 entries).
const GPT_RESERVED: u64 = 33;
/// Largest target considered (2 TiB, the MBR limit).
const MAX_TARGET_SECTORS: u64 = 1 << 32;
/// Entry number of the first bootbank; the alternate bank follows it.
const FIRST_BANK: u32 = 5;

/// A complete plan for one target.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// The layout's name.
    pub layout: String,
    /// MBR or GPT on the target.
    pub scheme: Scheme,
    /// Target size in sectors.
    pub target_sectors: u64,
    /// Geometry written to CHS fields and BPBs.
    pub heads: u16,
    /// Sectors per track of that geometry.
    pub sectors_per_track: u16,
    /// Partitions in table-entry order (not disk order).
    pub partitions: Vec<PlannedPartition>,
    /// How the boot partition is copied.
    pub boot: BootCopy,
    /// The new FAT16 bootbanks.
    pub banks: Vec<BankPlan>,
    /// Sectors after the last partition that stay unpartitioned.
    pub unpartitioned_sectors: u64,
    /// Bytes `write` writes: tables, stale-table wipes, boot extent, FAT
    /// metadata and file data (never the free space).
    pub write_bytes: u64,
    /// Things the user should know about this plan.
    pub notes: Vec<String>,
}

/// One table entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedPartition {
    /// Entry number.
    pub entry: u32,
    /// `boot`, `extended`, `bootbank` or `altbootbank`.
    pub role: &'static str,
    /// `0x04`-style MBR type, or a GPT type GUID.
    #[serde(rename = "type")]
    pub kind: String,
    /// First sector.
    pub start: u64,
    /// Last sector.
    pub end: u64,
    /// Length in sectors.
    pub sectors: u64,
    /// Boot flag (MBR) / legacy BIOS bootable (GPT).
    pub active: bool,
    /// CHS of the first sector (cylinder, head, sector); MBR only.
    pub chs_start: [u32; 3],
    /// CHS of the last sector.
    pub chs_end: [u32; 3],
    /// Sector of the EBR describing a logical partition.
    pub ebr: Option<u64>,
}

/// Why a plan does not fit its target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Shortfall {
    /// The target is too small: how much it needs.
    #[error(
        "needs {} bytes, target has {} (short by {}); the smallest common size that fits is {}",
        size::group(*.needs),
        size::group(*.has),
        size::human(.needs.saturating_sub(*.has)),
        size::common_size_for(*.needs)
    )]
    Target {
        /// Bytes the layout needs.
        needs: u64,
        /// Bytes the target has.
        has: u64,
    },
    /// No target up to 2 TiB holds the layout with this image.
    #[error("layout {layout} cannot hold this image on any target")]
    AnyTarget {
        /// The layout's name.
        layout: String,
    },
    /// The bank's files are more than any FAT16 volume holds.
    #[error("the bank's {} of files does not fit any FAT16 volume", size::human(*.bytes))]
    Files {
        /// The files' total size.
        bytes: u64,
    },
    /// A bank's extent cannot be formatted FAT16.
    #[error("bank {entry} of {sectors} sectors cannot hold a FAT16 volume")]
    Bank {
        /// The bank's entry number.
        entry: u32,
        /// Its length.
        sectors: u64,
    },
}

/// Plans `layout` for `payload` on a target of `target_sectors` sectors.
pub fn plan(payload: &Payload, layout: &Layout, target_sectors: u64) -> Result<Plan> {
    check_scheme(payload, layout)?;
    let min_bank = fat16::min_bank_sectors(payload, layout)?;
    match placement::attempt(payload, layout, target_sectors, min_bank) {
        Some((placed, trimmed)) => build::build(payload, layout, target_sectors, placed, trimmed),
        None => Err(Error::DoesNotFit(Shortfall::Target {
            needs: min_target_sectors(payload, layout)? * SECTOR,
            has: target_sectors * SECTOR,
        })),
    }
}

/// The smallest target, in sectors, on which `layout` fits `payload`.
pub fn min_target_sectors(payload: &Payload, layout: &Layout) -> Result<u64> {
    check_scheme(payload, layout)?;
    let min_bank = fat16::min_bank_sectors(payload, layout)?;
    let fits = |t| placement::attempt(payload, layout, t, min_bank).is_some();
    let mut hi: u64 = 1 << 16;
    while !fits(hi) {
        if hi >= MAX_TARGET_SECTORS {
            return Err(Error::DoesNotFit(Shortfall::AnyTarget {
                layout: layout.name.clone(),
            }));
        }
        hi *= 2;
    }
    // 0 never fits, hi always does.
    Ok(geometry::smallest_fitting(0, hi, fits))
}

/// An MBR layout for an MBR image, a GPT layout for a GPT image.
fn check_scheme(payload: &Payload, layout: &Layout) -> Result<()> {
    let name = || layout.name.clone();
    match (payload.scheme, layout.scheme) {
        (Scheme::Mbr, TargetScheme::Mbr) | (Scheme::Gpt, TargetScheme::Gpt) => Ok(()),
        (Scheme::Gpt, TargetScheme::Mbr) => {
            Err(Error::Layout(LayoutProblem::NeedsMbrImage { name: name() }))
        }
        (Scheme::Mbr, TargetScheme::Gpt) => {
            Err(Error::Layout(LayoutProblem::NeedsGptImage { name: name() }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ondisk::bpb::BootSector;
    use crate::ondisk::vmfat::FatUuid;

    /// An ESXi 4 payload as the inventory gives it: boot partition 4 at
    /// 32, 8,160 sectors, files used up to 1,000 sectors; `files` bytes of
    /// modules plus state.tgz and boot.cfg.
    pub(super) fn esxi4(files: &[u64]) -> Payload {
        let boot_sector = BootSector::fat16_format(8160, 1, 1, 64, 32, 32).unwrap();
        let mut named: Vec<PayloadFile> = files
            .iter()
            .enumerate()
            .map(|(i, &bytes)| PayloadFile {
                name: format!("mod{i}.gz"),
                bytes,
                replaced: None,
            })
            .collect();
        named.push(PayloadFile {
            name: "state.tgz".into(),
            bytes: 20_000,
            replaced: None,
        });
        named.push(PayloadFile {
            name: "boot.cfg".into(),
            bytes: 160,
            replaced: None,
        });
        Payload {
            scheme: Scheme::Mbr,
            boot_start: 32,
            boot_sectors: 8160,
            boot_used_sectors: 1000,
            boot_sector,
            bank: 5,
            bank_sectors: 511_968,
            label: "Hypervisor1".into(),
            volume_id: 0x4a3f_12c0,
            files: named,
            bank_uuid: Some(FatUuid([0x70; 16])),
            other_uuid: None,
        }
    }

    #[test]
    fn refusals_read_as_before() {
        let short = Error::DoesNotFit(Shortfall::Target {
            needs: 70_000_000,
            has: 65_273_856,
        });
        assert_eq!(
            short.to_string(),
            "does not fit: needs 70,000,000 bytes, target has 65,273,856 (short by 4.5 MiB); \
             the smallest common size that fits is 128 MB"
        );
        let files = Error::DoesNotFit(Shortfall::Files { bytes: 3 << 30 });
        assert_eq!(
            files.to_string(),
            "does not fit: the bank's 3.0 GiB of files does not fit any FAT16 volume"
        );
        let mut gpt = esxi4(&[1 << 20]);
        gpt.scheme = Scheme::Gpt;
        let layout = Layout::load("vcritical-64mb").unwrap();
        assert_eq!(
            plan(&gpt, &layout, 127_488).unwrap_err().to_string(),
            "layout: layout vcritical-64mb is for ESXi 3.5/4.x (MBR) images; this ESXi 5+ GPT \
             image needs gpt-minimal"
        );
    }

    #[test]
    fn a_target_too_small_is_refused_with_the_size_that_fits() {
        let payload = esxi4(&[40_000_000, 30_000_000]);
        let layout = Layout::load("vcritical-64mb").unwrap();
        let needs = min_target_sectors(&payload, &layout).unwrap();
        assert!(needs > 127_488, "70 MB of modules on 64 MB?");
        assert!(plan(&payload, &layout, needs).is_ok());
        match plan(&payload, &layout, 127_488) {
            Err(Error::DoesNotFit(Shortfall::Target { needs: n, has })) => {
                assert_eq!((n, has), (needs * SECTOR, 127_488 * SECTOR));
            }
            other => panic!("{other:?}"),
        }
    }
}
