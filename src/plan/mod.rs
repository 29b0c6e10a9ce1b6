//! The partition planner: from what the image holds and a layout, the
//! exact table, volumes and copies for a target of a given size. A plan is
//! plain data; `plan` prints it and `write` carries it out.

pub mod choose;
pub mod layout;

use serde::Serialize;

use crate::error::{Error, FatProblem, Result};
use crate::esxi::inventory::Inventory;
use crate::image::source::SECTOR;
use crate::ondisk::bpb::{BootSector, FatType};
use crate::ondisk::table::{Scheme, GPT_BASIC_DATA, GPT_EFI_SYSTEM};
use crate::size;
use layout::{Alternate, BankSize, BootSize, Layout, TargetScheme};

/// Version of the JSON document that `plan --json` prints.
pub const SCHEMA: &str = "esxstick.plan/1";
/// Sectors a GPT needs at each end of the disk (header + 128 entries).
const GPT_RESERVED: u64 = 33;
/// Largest target considered (2 TiB, the MBR limit).
const MAX_TARGET_SECTORS: u64 = 1 << 32;
/// Sectors an MBR entry can address.
const MBR_MAX_SECTORS: u64 = u32::MAX as u64;
/// Cluster sizes tried for a new bank, in sectors (512 B to 32 KiB).
const CLUSTER_SECTORS: [u8; 7] = [1, 2, 4, 8, 16, 32, 64];
/// A FAT16 root directory holds this many entries; each file may take
/// up to three (long name + short name).
const ENTRIES_PER_FILE: u64 = 3;
/// MBR byte for a FAT16 (<32 MiB) partition, the type ESXi gives entry 4.
const MBR_FAT16_SMALL: u8 = 0x04;
/// MBR byte for a FAT16 partition (the bootbanks).
const MBR_FAT16: u8 = 0x06;
/// MBR byte for an extended partition.
const MBR_EXTENDED: u8 = 0x05;

/// What the planner needs to know of the source: the boot partition and
/// the active bank's files. Built from an [`Inventory`], or by hand.
#[derive(Debug, Clone, Serialize)]
pub struct Payload {
    /// The source's partitioning scheme.
    pub scheme: Scheme,
    /// The source boot partition's first sector.
    pub boot_start: u64,
    /// The source boot partition's length in sectors.
    pub boot_sectors: u64,
    /// Sectors of the boot partition up to its last used cluster.
    pub boot_used_sectors: u64,
    /// The source boot partition's boot sector.
    pub boot_sector: BootSector,
    /// The active bank's partition number.
    pub bank: u32,
    /// The active bank's length in sectors.
    pub bank_sectors: u64,
    /// The active bank's volume label.
    pub label: String,
    /// The active bank's volume ID.
    pub volume_id: u32,
    /// Every file of the bank (boot.cfg, the modules and anything else),
    /// with sizes.
    pub files: Vec<PayloadFile>,
}

/// A file to copy into the new bank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PayloadFile {
    /// Path in the bank, `/`-separated, without a leading `/`.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
}

impl Payload {
    /// Takes what the planner needs from an inventory whose active bank is
    /// complete (every module present).
    pub fn from_inventory(inv: &Inventory) -> Result<Payload> {
        inv.check_complete()?;
        let bank = inv.active_partition()?;
        let fs = bank.fs.as_ref().ok_or_else(|| Error::Fat {
            partition: bank.partition.number,
            problem: FatProblem::NoFileSystem,
        })?;
        Ok(Payload {
            scheme: inv.source.scheme,
            boot_start: inv.boot.start,
            boot_sectors: inv.boot.sectors,
            boot_used_sectors: inv.boot.used_sectors,
            boot_sector: inv.boot.boot_sector.clone(),
            bank: bank.partition.number,
            bank_sectors: bank.partition.sectors,
            label: fs.label.clone(),
            volume_id: u32::from_str_radix(&fs.volume_id, 16).unwrap_or(0),
            files: inv
                .files
                .iter()
                .map(|f| PayloadFile {
                    name: f.path.clone(),
                    bytes: f.bytes,
                })
                .collect(),
        })
    }

    /// Free space the bank must keep so ESXi can rewrite state.tgz: twice
    /// its size plus 1 MiB, or the layout's minimum if larger.
    pub fn headroom(&self, layout: &Layout) -> u64 {
        let state = self
            .files
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case("state.tgz"))
            .map_or(0, |f| f.bytes);
        (2 * state + (1 << 20)).max(layout.banks.min_headroom)
    }

    /// Clusters of `cluster_bytes` the files plus headroom occupy.
    fn clusters_needed(&self, cluster_bytes: u64, headroom: u64) -> u64 {
        self.files
            .iter()
            .map(|f| f.bytes.div_ceil(cluster_bytes))
            .sum::<u64>()
            + headroom.div_ceil(cluster_bytes)
    }
}

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
    /// Writes the new value into a boot sector.
    pub fn apply(&self, sector: &mut [u8]) {
        let bytes = self.new.to_le_bytes();
        if let (Some(field), Some(value)) = (
            sector.get_mut(self.offset..self.offset + self.width),
            bytes.get(..self.width),
        ) {
            field.copy_from_slice(value);
        }
    }
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

/// A new bootbank.
#[derive(Debug, Clone, Serialize)]
pub struct BankPlan {
    /// Table entry (5 or 6).
    pub entry: u32,
    /// Volume label (copied from the source bank).
    pub label: String,
    /// Volume ID as 8 hex digits (copied from the source bank for bank 5).
    pub volume_id: String,
    /// The FAT16 boot sector `write` formats the bank with.
    pub fat: BootSector,
    /// Data clusters.
    pub clusters: u32,
    /// Bytes per cluster.
    pub cluster_bytes: u64,
    /// Files copied from the source bank (empty for an alternate bank).
    pub files: Vec<PayloadFile>,
    /// For an alternate bank: the boot.cfg written into it.
    pub generated_boot_cfg: Option<String>,
    /// Bytes the files occupy in whole clusters.
    pub used_bytes: u64,
    /// Free bytes after the files.
    pub free_bytes: u64,
    /// Free bytes the bank must keep (state.tgz rewrites).
    pub headroom_bytes: u64,
}

/// The refusal when a target is too small: how much it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortfall {
    /// Bytes the layout needs.
    pub needs: u64,
    /// Bytes the target has.
    pub has: u64,
}

impl std::fmt::Display for Shortfall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "needs {} bytes, target has {} (short by {}); the smallest common size that fits is {}",
            size::group(self.needs),
            size::group(self.has),
            size::human(self.needs.saturating_sub(self.has)),
            size::common_size_for(self.needs)
        )
    }
}

/// The planner's positions for one attempt.
struct Placement {
    boot_start: u64,
    boot_sectors: u64,
    ext_start: u64,
    banks: Vec<(u64, u64)>,
}

/// Plans `layout` for `payload` on a target of `target_sectors` sectors.
pub fn plan(payload: &Payload, layout: &Layout, target_sectors: u64) -> Result<Plan> {
    check_scheme(payload, layout)?;
    let min_bank = min_bank_sectors(payload, layout)?;
    match attempt(payload, layout, target_sectors, min_bank) {
        Some((placed, trimmed)) => build(payload, layout, target_sectors, placed, trimmed),
        None => Err(Error::DoesNotFit(
            Shortfall {
                needs: min_target_sectors(payload, layout)? * SECTOR,
                has: target_sectors * SECTOR,
            }
            .to_string(),
        )),
    }
}

/// The smallest target, in sectors, on which `layout` fits `payload`.
pub fn min_target_sectors(payload: &Payload, layout: &Layout) -> Result<u64> {
    check_scheme(payload, layout)?;
    let min_bank = min_bank_sectors(payload, layout)?;
    let fits = |t| attempt(payload, layout, t, min_bank).is_some();
    let mut hi: u64 = 1 << 16;
    while !fits(hi) {
        if hi >= MAX_TARGET_SECTORS {
            return Err(Error::DoesNotFit(format!(
                "layout {} cannot hold this image on any target",
                layout.name
            )));
        }
        hi *= 2;
    }
    let mut lo = 0; // lo never fits, hi always does
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}

/// The first placement that fits, trying the full boot partition before
/// a trimmed one and an alternate bank before none, as the layout allows;
/// with whether the boot partition was trimmed.
fn attempt(
    payload: &Payload,
    layout: &Layout,
    target: u64,
    min_bank: u64,
) -> Option<(Placement, bool)> {
    let boot_modes: &[bool] = match layout.boot.size {
        BootSize::Full => &[false],
        BootSize::Used => &[true],
        BootSize::Auto => &[false, true],
    };
    let bank_counts: &[usize] = match layout.banks.alternate {
        Alternate::None => &[1],
        Alternate::Empty => &[2],
        Alternate::EmptyIfRoom => &[2, 1],
    };
    for &trim in boot_modes {
        for &count in bank_counts {
            let placed = place(payload, layout, target, trim, count, min_bank);
            // min_bank is where the payload first fits; a bank a sector or
            // two larger can hold one cluster fewer (its FATs grow by a
            // sector), so each bank is checked as it will be formatted.
            let formats = |(i, &(start, n)): (usize, &(u64, u64))| {
                let fill = (i == 0).then(|| (payload, payload.headroom(layout)));
                n >= min_bank && best_fat16(n, layout, start, fill).is_some()
            };
            if placed.banks.iter().enumerate().all(formats) {
                return Some((placed, trim));
            }
        }
    }
    None
}

fn check_scheme(payload: &Payload, layout: &Layout) -> Result<()> {
    match (payload.scheme, layout.scheme) {
        (Scheme::Mbr, TargetScheme::Mbr) | (Scheme::Gpt, TargetScheme::Gpt) => Ok(()),
        (Scheme::Gpt, TargetScheme::Mbr) => Err(Error::Layout(format!(
            "layout {} is for ESXi 3.5/4.x (MBR) images; this ESXi 5+ GPT image needs gpt-minimal",
            layout.name
        ))),
        (Scheme::Mbr, TargetScheme::Gpt) => Err(Error::Layout(format!(
            "layout {} is for ESXi 5+ GPT images; this is an ESXi 3.5/4.x MBR image",
            layout.name
        ))),
    }
}

fn align_up(v: u64, unit: u64) -> u64 {
    v.div_ceil(unit.max(1)) * unit.max(1)
}

fn align_down(v: u64, unit: u64) -> u64 {
    v / unit.max(1) * unit.max(1)
}

/// Where everything goes for one choice of boot trimming and bank count.
/// Banks share what is left equally, each capped by the layout's rule
/// (but never below `min_bank`, what the payload needs).
fn place(
    payload: &Payload,
    layout: &Layout,
    target: u64,
    trim: bool,
    count: usize,
    min_bank: u64,
) -> Placement {
    let (first_free, tail) = match layout.scheme {
        TargetScheme::Mbr => (1, 0),
        TargetScheme::Gpt => (2 + GPT_RESERVED - 1, GPT_RESERVED),
    };
    let (su, eu, gap) = (layout.start_unit(), layout.end_unit(), layout.ebr_gap());
    // An MBR addresses 2^32 sectors (2 TiB); on a larger target the rest
    // stays unpartitioned.
    let addressable = match layout.scheme {
        TargetScheme::Mbr => target.min(MBR_MAX_SECTORS),
        TargetScheme::Gpt => target,
    };
    let limit = align_down(addressable.saturating_sub(tail), eu);
    let boot_start = layout
        .boot
        .start
        .unwrap_or_else(|| align_up(first_free, su));
    let keep = if trim {
        payload
            .boot_used_sectors
            .max(layout.boot.min_sectors)
            .min(payload.boot_sectors)
    } else {
        payload.boot_sectors
    };
    let boot_end = align_up(boot_start + keep, eu);
    let ext_start = match layout.scheme {
        TargetScheme::Mbr => align_up(boot_end, su),
        // GPT has no extended partition; the gap after p1 is kept.
        TargetScheme::Gpt => boot_end,
    };
    let cap = match layout.banks.size {
        BankSize::Source => payload.bank_sectors.max(min_bank),
        BankSize::Rest => u64::MAX,
    };
    let n = count.max(1) as u64;
    let share = limit.saturating_sub(ext_start + n * gap + (n - 1) * su) / n;
    let max_fat16 = max_fat16_sectors();
    let mut banks = Vec::new();
    let mut slot = ext_start;
    for i in 0..count {
        let start = if layout.scheme == TargetScheme::Gpt {
            align_up(slot + gap, su)
        } else {
            slot + gap
        };
        let want = if i + 1 == count && layout.banks.size == BankSize::Rest {
            u64::MAX
        } else {
            cap.min(share)
        };
        // Round the wanted end up to the grid, but stay inside the disk and
        // within what FAT16 can address.
        let wanted_end = align_up(start.saturating_add(want).min(limit), eu);
        let fat16_end = align_down(start + max_fat16, eu);
        let end = wanted_end.min(fat16_end).min(limit).max(start);
        banks.push((start, end - start));
        slot = align_up(end, su);
    }
    Placement {
        boot_start,
        boot_sectors: boot_end - boot_start,
        ext_start,
        banks,
    }
}

/// The largest volume, in sectors, that can be FAT16 (65,524 clusters of
/// 32 KiB, about 2 GiB); banks are never made larger.
pub fn max_fat16_sectors() -> u64 {
    let spc = *CLUSTER_SECTORS.last().unwrap_or(&64);
    let is_fat16 = |n: u64| BootSector::fat16_format(n as u32, spc, 1, 1, 0).is_some();
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
fn min_bank_sectors(payload: &Payload, layout: &Layout) -> Result<u64> {
    let too_many =
        payload.files.len() as u64 * ENTRIES_PER_FILE > u64::from(crate::ondisk::bpb::ROOT_ENTRIES);
    if too_many {
        return Err(Error::Layout(format!(
            "the bank holds {} files, more than a FAT16 root directory takes",
            payload.files.len()
        )));
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
            let mut total = 1 + 32 + 2 * fat + need * u64::from(spc);
            for _ in 0..1024 {
                let sectors = u32::try_from(total).ok()?;
                match BootSector::fat16_format(sectors, spc, 1, 1, 0) {
                    Some(bs) if u64::from(bs.clusters()) >= need => return Some(total),
                    Some(_) => total += u64::from(spc),
                    None => return None,
                }
            }
            None
        })
        .min()
        .ok_or_else(|| {
            Error::DoesNotFit(format!(
                "the bank's {} of files does not fit any FAT16 volume",
                size::human(payload.files.iter().map(|f| f.bytes).sum())
            ))
        })
}

/// The cluster size leaving the most free space for `sectors`, as a
/// formatted boot sector; `None` if no FAT16 volume of that size works.
fn best_fat16(
    sectors: u64,
    layout: &Layout,
    hidden: u64,
    payload: Option<(&Payload, u64)>,
) -> Option<BootSector> {
    let total = u32::try_from(sectors).ok()?;
    let g = layout.geometry;
    CLUSTER_SECTORS
        .iter()
        .filter_map(|&spc| {
            let bs =
                BootSector::fat16_format(total, spc, g.heads, g.sectors_per_track, hidden as u32)?;
            let used = payload.map_or(0, |(p, headroom)| {
                p.clusters_needed(bs.cluster_bytes(), headroom)
            });
            let free = u64::from(bs.clusters()).checked_sub(used)? * bs.cluster_bytes();
            Some((free, bs))
        })
        .max_by_key(|(free, bs)| (*free, std::cmp::Reverse(bs.sectors_per_cluster)))
        .map(|(_, bs)| bs)
}

fn build(
    payload: &Payload,
    layout: &Layout,
    target: u64,
    placed: Placement,
    trimmed: bool,
) -> Result<Plan> {
    let g = layout.geometry;
    let mut notes = Vec::new();
    let mut partitions = Vec::new();
    let chs = |lba: u64| chs(lba, g.heads, g.sectors_per_track);
    let entry =
        |entry, role, kind: String, start: u64, sectors: u64, active, ebr| PlannedPartition {
            entry,
            role,
            kind,
            start,
            end: start + sectors - 1,
            sectors,
            active,
            chs_start: chs(start),
            chs_end: chs(start + sectors - 1),
            ebr,
        };
    let (boot_type, bank_type) = match layout.scheme {
        TargetScheme::Mbr => (
            format!("0x{MBR_FAT16_SMALL:02x}"),
            format!("0x{MBR_FAT16:02x}"),
        ),
        TargetScheme::Gpt => (GPT_EFI_SYSTEM.to_string(), GPT_BASIC_DATA.to_string()),
    };
    partitions.push(entry(
        layout.boot.entry,
        "boot",
        boot_type,
        placed.boot_start,
        placed.boot_sectors,
        true,
        None,
    ));
    let gap = layout.ebr_gap();
    if layout.scheme == TargetScheme::Mbr {
        let last = placed
            .banks
            .last()
            .map_or(placed.ext_start, |&(s, n)| s + n);
        partitions.push(entry(
            1,
            "extended",
            format!("0x{MBR_EXTENDED:02x}"),
            placed.ext_start,
            last - placed.ext_start,
            false,
            None,
        ));
    }
    let headroom = payload.headroom(layout);
    let mut banks = Vec::new();
    for (i, &(start, sectors)) in placed.banks.iter().enumerate() {
        let number = 5 + i as u32;
        let ebr = (layout.scheme == TargetScheme::Mbr).then_some(start - gap);
        let role = if i == 0 { "bootbank" } else { "altbootbank" };
        partitions.push(entry(
            number,
            role,
            bank_type.clone(),
            start,
            sectors,
            false,
            ebr,
        ));
        let files = if i == 0 {
            payload.files.clone()
        } else {
            Vec::new()
        };
        let fill = (i == 0).then_some((payload, headroom));
        let fat = best_fat16(sectors, layout, start, fill).ok_or_else(|| {
            Error::DoesNotFit(format!(
                "bank {number} of {sectors} sectors cannot hold a FAT16 volume"
            ))
        })?;
        let generated = (i > 0)
            .then(|| "kernel=\nkernelopt=\nmodules=\nbuild=\nupdated=0\nbootstate=3\n".to_string());
        let used = match &generated {
            Some(text) => align_up(text.len() as u64, fat.cluster_bytes()),
            None => payload.clusters_needed(fat.cluster_bytes(), 0) * fat.cluster_bytes(),
        };
        let capacity = u64::from(fat.clusters()) * fat.cluster_bytes();
        banks.push(BankPlan {
            entry: number,
            label: if i == 0 {
                payload.label.clone()
            } else {
                alternate_label(&payload.label)
            },
            volume_id: format!("{:08X}", payload.volume_id.wrapping_add(i as u32)),
            clusters: fat.clusters(),
            cluster_bytes: fat.cluster_bytes(),
            fat,
            files,
            generated_boot_cfg: generated,
            used_bytes: used,
            free_bytes: capacity.saturating_sub(used),
            headroom_bytes: if i == 0 { headroom } else { 0 },
        });
    }
    partitions.sort_by_key(|p| p.entry);

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

/// "Hypervisor1" → "Hypervisor2": the alternate bank's label.
fn alternate_label(label: &str) -> String {
    match label.strip_suffix('1') {
        Some(stem) => format!("{stem}2"),
        None => label.chars().take(10).chain(['2']).collect(),
    }
}

fn boot_copy(
    payload: &Payload,
    layout: &Layout,
    placed: &Placement,
    trimmed: bool,
    notes: &mut Vec<String>,
) -> BootCopy {
    let bs = &payload.boot_sector;
    let g = layout.geometry;
    let mut bpb_patches = Vec::new();
    let mut patch = |field, offset, width, old: u32, new: u32| {
        if old != new {
            bpb_patches.push(BpbPatch {
                field,
                offset,
                width,
                old,
                new,
            });
        }
    };
    patch(
        "hidden_sectors",
        0x1c,
        4,
        bs.hidden_sectors,
        placed.boot_start as u32,
    );
    patch(
        "sectors_per_track",
        0x18,
        2,
        u32::from(bs.sectors_per_track),
        u32::from(g.sectors_per_track),
    );
    patch("heads", 0x1a, 2, u32::from(bs.heads), u32::from(g.heads));
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

/// CHS address of `lba` for the geometry, capped at cylinder 1023 as
/// partition tables do for sectors CHS cannot reach.
pub fn chs(lba: u64, heads: u16, sectors_per_track: u16) -> [u32; 3] {
    let (h, s) = (u64::from(heads), u64::from(sectors_per_track));
    let cylinder = lba / (h * s);
    if cylinder > 1023 {
        return [1023, u32::from(heads) - 1, u32::from(sectors_per_track)];
    }
    [
        cylinder as u32,
        ((lba / s) % h) as u32,
        (lba % s + 1) as u32,
    ]
}
