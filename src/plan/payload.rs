//! What the planner needs of the source image: the boot partition and the
//! active bank's files, with the space the bank must keep free.

use serde::Serialize;

use crate::error::{Error, FatProblem, Result};
use crate::esxi::config::Replacement;
use crate::esxi::inventory::Inventory;
use crate::ondisk::bpb::BootSector;
use crate::ondisk::table::Scheme;
use crate::ondisk::vmfat::FatUuid;
use crate::plan::layout::Layout;

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
    /// The active bank's VMware FAT UUID, which the stick's bank 5 keeps;
    /// `None` gives bank 5 a fresh one.
    pub bank_uuid: Option<FatUuid>,
    /// The UUID of the source's other bank, which an alternate bank 6
    /// keeps; `None` gives it a fresh one.
    pub other_uuid: Option<FatUuid>,
}

/// A file to copy into the new bank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PayloadFile {
    /// Path in the bank, `/`-separated, without a leading `/`.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// The content, when it does not come from the source bank: a file
    /// the user gave (`--state`, `--oem`), a stick's own state.tgz, or an
    /// edited boot.cfg.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced: Option<Replacement>,
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
        let active = bank.partition.number;
        let uuid = |other: bool| {
            inv.banks
                .iter()
                .find(|b| (b.partition == active) != other)
                .and_then(|b| b.uuid)
        };
        Ok(Payload {
            bank_uuid: uuid(false),
            other_uuid: uuid(true),
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
                    replaced: None,
                })
                .collect(),
        })
    }

    /// The payload with each `(name, replacement)` replacing the bank file
    /// of that name (matched as FAT does, ignoring case), or added after
    /// the bank's files: its size counts in the bank's space and, for
    /// state.tgz, in the headroom.
    pub fn with_replacements(mut self, replacements: Vec<(String, Replacement)>) -> Payload {
        for (name, replacement) in replacements {
            let bytes = replacement.bytes.len() as u64;
            match self
                .files
                .iter_mut()
                .find(|f| f.name.eq_ignore_ascii_case(&name))
            {
                Some(file) => {
                    file.bytes = bytes;
                    file.replaced = Some(replacement);
                }
                None => self.files.push(PayloadFile {
                    name,
                    bytes,
                    replaced: Some(replacement),
                }),
            }
        }
        self
    }

    /// Forgets the source's UUIDs, so that every bank of the stick gets a
    /// fresh one (`write --new-uuids`).
    pub fn with_new_uuids(mut self) -> Payload {
        self.bank_uuid = None;
        self.other_uuid = None;
        self
    }

    /// Free space the bank must keep so ESXi can save its configuration:
    /// it writes `local.tgz.$$` and `state.tgz.$$` before renaming them
    /// over state.tgz, so three times state.tgz's size plus 1 MiB, or the
    /// layout's minimum if larger.
    pub fn headroom(&self, layout: &Layout) -> u64 {
        self.config_headroom().max(layout.banks.min_headroom)
    }

    /// Three times state.tgz's size plus 1 MiB (see [`Payload::headroom`]).
    pub fn config_headroom(&self) -> u64 {
        let state = self
            .files
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case("state.tgz"))
            .map_or(0, |f| f.bytes);
        3 * state + (1 << 20)
    }

    /// Clusters of `cluster_bytes` the files plus headroom occupy.
    pub(super) fn clusters_needed(&self, cluster_bytes: u64, headroom: u64) -> u64 {
        self.files
            .iter()
            .map(|f| f.bytes.div_ceil(cluster_bytes))
            .sum::<u64>()
            + headroom.div_ceil(cluster_bytes)
    }
}

#[cfg(test)]
mod tests {
    use crate::plan::layout::Layout;
    use crate::plan::tests::esxi4;

    #[test]
    fn headroom_is_three_state_tgz_and_a_mib_or_the_layouts() {
        let mut layout = Layout::load("esxi-native").unwrap();
        layout.banks.min_headroom = 0;
        let mut payload = esxi4(&[]);
        assert_eq!(payload.headroom(&layout), 3 * 20_000 + (1 << 20));
        payload.files.retain(|f| f.name != "state.tgz");
        assert_eq!(payload.headroom(&layout), 1 << 20);
        layout.banks.min_headroom = 8 << 20;
        assert_eq!(payload.headroom(&layout), 8 << 20);
    }

    #[test]
    fn files_take_whole_clusters() {
        let mut payload = esxi4(&[]);
        payload.files = ["a", "b", "c"]
            .iter()
            .zip([1, 4096, 4097])
            .map(|(name, bytes)| crate::plan::PayloadFile {
                name: name.to_string(),
                bytes,
                replaced: None,
            })
            .collect();
        assert_eq!(payload.clusters_needed(4096, 0), 4);
        assert_eq!(payload.clusters_needed(4096, 1), 5);
        assert_eq!(payload.clusters_needed(512, 4096), 1 + 8 + 9 + 8);
    }
}
