//! The new bootbanks: bank 5 gets the source bank's files, label and
//! volume ID; an alternate bank 6, when the layout has one, is empty but
//! for a boot.cfg that marks it invalid, so safeboot never picks it.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::ondisk::bpb::BootSector;
use crate::plan::fat16::best_fat16;
use crate::plan::geometry::align_up;
use crate::plan::layout::Layout;
use crate::plan::placement::Placement;
use crate::plan::{Payload, PayloadFile, Shortfall, FIRST_BANK};

/// The boot.cfg of an alternate bank: bootstate=3, invalid, never booted.
const ALTERNATE_BOOT_CFG: &str = "kernel=\nkernelopt=\nmodules=\nbuild=\nupdated=0\nbootstate=3\n";

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

/// The banks of a placement, bank 5 filled with the payload; refused
/// when one cannot be formatted FAT16.
pub(super) fn banks(
    payload: &Payload,
    layout: &Layout,
    placed: &Placement,
) -> Result<Vec<BankPlan>> {
    let headroom = payload.headroom(layout);
    placed
        .banks
        .iter()
        .enumerate()
        .map(|(i, &extent)| bank(payload, layout, i, extent, headroom))
        .collect()
}

/// Bank `i` (0 for bank 5) at `start`, `sectors` long.
fn bank(
    payload: &Payload,
    layout: &Layout,
    i: usize,
    (start, sectors): (u64, u64),
    headroom: u64,
) -> Result<BankPlan> {
    let entry = FIRST_BANK + i as u32;
    let filled = i == 0;
    let fill = filled.then_some((payload, headroom));
    let fat: BootSector = best_fat16(sectors, layout, start, fill)
        .ok_or(Error::DoesNotFit(Shortfall::Bank { entry, sectors }))?;
    let cluster_bytes = fat.cluster_bytes();
    let generated = (!filled).then(|| ALTERNATE_BOOT_CFG.to_string());
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
