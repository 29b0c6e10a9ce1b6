//! The new bootbanks: bank 5 gets the source bank's files, label, volume
//! ID and VMware FAT UUID; an alternate bank 6, when the layout has one,
//! gets the UUID of the source's other bank and is empty but for a
//! boot.cfg that marks it invalid, so safeboot never picks it. A bank
//! whose source has no UUID gets a fresh one; no two banks share one.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::esxi::bootcfg::BootCfg;
use crate::ondisk::bpb::BootSector;
use crate::ondisk::vmfat::FatUuid;
use crate::plan::fat16::best_fat16;
use crate::plan::geometry::align_up;
use crate::plan::layout::{Geometry, Layout};
use crate::plan::placement::Placement;
use crate::plan::{Payload, PayloadFile, Shortfall, FIRST_BANK};

/// A new bootbank.
#[derive(Debug, Clone, Serialize)]
pub struct BankPlan {
    /// Table entry (5 or 6).
    pub entry: u32,
    /// Volume label (copied from the source bank).
    pub label: String,
    /// Volume ID as 8 hex digits (copied from the source bank for bank 5).
    pub volume_id: String,
    /// The VMware FAT UUID written into the bank's second sector.
    pub uuid: FatUuid,
    /// Where the UUID comes from.
    pub uuid_from: UuidOrigin,
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

/// Where a bank's UUID comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UuidOrigin {
    /// Kept from this bank of the source.
    SourceBank(u32),
    /// Made new for this stick (random, USB style: 0xe…).
    Fresh,
    /// Kept from the bank of the stick that is rebuilt in place.
    Kept,
}

impl std::fmt::Display for UuidOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UuidOrigin::SourceBank(n) => write!(f, "source bank {n}"),
            UuidOrigin::Fresh => f.write_str("fresh"),
            UuidOrigin::Kept => f.write_str("kept"),
        }
    }
}

/// The banks of a placement, bank 5 filled with the payload; refused
/// when one cannot be formatted FAT16.
pub(super) fn banks(
    payload: &Payload,
    layout: &Layout,
    placed: &Placement,
) -> Result<Vec<BankPlan>> {
    let headroom = payload.headroom(layout);
    let uuids = uuids(payload, placed.banks.len())?;
    placed
        .banks
        .iter()
        .zip(uuids)
        .enumerate()
        .map(|(i, (&extent, uuid))| bank(payload, layout, i, extent, headroom, uuid))
        .collect()
}

/// Each bank's UUID: bank 5 keeps the source's active bank's UUID, bank 6 the source's
/// other bank's; where the source has none, or it would repeat a UUID
/// already taken, the bank gets a fresh one.
/// Returns, for each of `count` banks, its UUID and where it comes from.
fn uuids(payload: &Payload, count: usize) -> Result<Vec<(FatUuid, UuidOrigin)>> {
    let mut chosen: Vec<(FatUuid, UuidOrigin)> = Vec::new();
    for i in 0..count {
        let (kept, from) = match i {
            0 => (payload.bank_uuid, payload.bank),
            _ => (payload.other_uuid, other_bank(payload.bank)),
        };
        let taken: Vec<FatUuid> = chosen.iter().map(|(u, _)| *u).collect();
        chosen.push(match kept.filter(|u| !taken.contains(u)) {
            Some(uuid) => (uuid, UuidOrigin::SourceBank(from)),
            None => (fresh(&taken)?, UuidOrigin::Fresh),
        });
    }
    Ok(chosen)
}

/// The source's other bank: 6 for 5, 5 for 6.
fn other_bank(bank: u32) -> u32 {
    if bank == FIRST_BANK {
        FIRST_BANK + 1
    } else {
        FIRST_BANK
    }
}

/// A fresh UUID that no bank of the stick has yet.
fn fresh(taken: &[FatUuid]) -> Result<FatUuid> {
    loop {
        let uuid = FatUuid::fresh().map_err(|e| Error::Random {
            reason: e.to_string(),
        })?;
        if !taken.contains(&uuid) {
            return Ok(uuid);
        }
    }
}

/// Bank `i` (0 for bank 5) at `start`, `sectors` long.
fn bank(
    payload: &Payload,
    layout: &Layout,
    i: usize,
    (start, sectors): (u64, u64),
    headroom: u64,
    (uuid, uuid_from): (FatUuid, UuidOrigin),
) -> Result<BankPlan> {
    let entry = FIRST_BANK + i as u32;
    let filled = i == 0;
    let fill = filled.then_some((payload, headroom));
    let fat: BootSector = best_fat16(sectors, layout.geometry, start, fill)
        .ok_or(Error::DoesNotFit(Shortfall::Bank { entry, sectors }))?;
    let cluster_bytes = fat.cluster_bytes();
    let generated = (!filled).then(BootCfg::empty_bank);
    let used = match &generated {
        Some(text) => align_up(text.len() as u64, cluster_bytes),
        None => payload.clusters_needed(cluster_bytes, 0) * cluster_bytes,
    };
    let capacity = u64::from(fat.clusters()) * cluster_bytes;
    Ok(BankPlan {
        entry,
        label: if filled {
            payload.label.clone()
        } else {
            alternate_label(&payload.label)
        },
        volume_id: format!("{:08X}", payload.volume_id.wrapping_add(i as u32)),
        uuid,
        uuid_from,
        clusters: fat.clusters(),
        cluster_bytes,
        fat,
        files: if filled {
            payload.files.clone()
        } else {
            Vec::new()
        },
        generated_boot_cfg: generated,
        used_bytes: used,
        free_bytes: capacity.saturating_sub(used),
        headroom_bytes: if filled { headroom } else { 0 },
    })
}

/// A bank of an existing stick to rebuild in place (`update`): where it
/// lies, and what of it is kept.
#[derive(Debug, Clone)]
pub struct InPlace {
    /// Its table entry (5 or 6).
    pub entry: u32,
    /// Its first sector.
    pub start: u64,
    /// Its length in sectors.
    pub sectors: u64,
    /// The stick's geometry, for the boot sector.
    pub geometry: Geometry,
    /// The volume label it keeps.
    pub label: String,
    /// The volume ID it keeps.
    pub volume_id: u32,
    /// The VMware FAT UUID it keeps.
    pub uuid: FatUuid,
}

/// The bank `at` rebuilt in place with `payload`'s files, keeping its
/// label, volume ID and VMware FAT UUID, formatted with the cluster size
/// that leaves it the most free space; `None` when the files and the
/// headroom ESXi needs (three times state.tgz plus 1 MiB) do not fit.
pub fn rebuilt(payload: &Payload, at: &InPlace) -> Option<BankPlan> {
    let headroom = payload.config_headroom();
    let fat = best_fat16(at.sectors, at.geometry, at.start, Some((payload, headroom)))?;
    let cluster_bytes = fat.cluster_bytes();
    let used = payload.clusters_needed(cluster_bytes, 0) * cluster_bytes;
    let capacity = u64::from(fat.clusters()) * cluster_bytes;
    Some(BankPlan {
        entry: at.entry,
        label: at.label.clone(),
        volume_id: format!("{:08X}", at.volume_id),
        uuid: at.uuid,
        uuid_from: UuidOrigin::Kept,
        clusters: fat.clusters(),
        cluster_bytes,
        fat,
        files: payload.files.clone(),
        generated_boot_cfg: None,
        used_bytes: used,
        free_bytes: capacity.saturating_sub(used),
        headroom_bytes: headroom,
    })
}

/// "Hypervisor1" → "Hypervisor2": the alternate bank's label.
fn alternate_label(label: &str) -> String {
    match label.strip_suffix('1') {
        Some(stem) => format!("{stem}2"),
        None => label.chars().take(10).chain(['2']).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternate_label_follows_vmwares_numbering() {
        assert_eq!(alternate_label("Hypervisor1"), "Hypervisor2");
        assert_eq!(alternate_label("BANK1"), "BANK2");
        // No trailing 1: a 2 is appended, within FAT's 11 characters.
        assert_eq!(alternate_label("BOOTBANK"), "BOOTBANK2");
        assert_eq!(alternate_label("ABCDEFGHIJK"), "ABCDEFGHIJ2");
        assert_eq!(alternate_label(""), "2");
    }
}
