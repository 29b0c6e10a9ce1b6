//! A new FAT16 volume laid out by hand, as VMware formats its bootbanks:
//! the boot sector, the VMware FAT UUID sector right after it (so the
//! FATs start at the reserved-sector count, ≥ 2), empty FATs, and a root
//! directory holding only the volume label. fatfs cannot format this way
//! (it reserves one sector for FAT16); once laid out, fatfs opens the
//! volume and writes the files.

use std::io::{self, Seek, SeekFrom, Write};

use crate::image::source::SECTOR;
use crate::ondisk::bpb::BootSector;
use crate::ondisk::vmfat::{self, FatUuid};

/// Size of a directory entry.
const DIR_ENTRY: usize = 32;
/// Directory entry attribute of the volume label.
const ATTR_VOLUME_ID: u8 = 0x08;

/// The label as the 11 space-padded bytes FAT stores.
fn label_bytes(label: &str) -> [u8; 11] {
    let mut bytes = [b' '; 11];
    for (dst, src) in bytes.iter_mut().zip(label.bytes()) {
        *dst = src;
    }
    bytes
}

/// The root directory entry that names the volume.
fn label_entry(label: &[u8; 11]) -> [u8; DIR_ENTRY] {
    let mut entry = [0; DIR_ENTRY];
    entry[..11].copy_from_slice(label);
    entry[11] = ATTR_VOLUME_ID;
    entry
}

/// Writes the metadata of a new, empty FAT16 volume described by `bs`
/// (whose reserved sectors must leave room for the UUID sector) at the
/// start of `volume`: boot sector, UUID sector, zeroed reserved sectors,
/// every FAT with its two reserved entries, and the root directory with
/// the label entry. Everything up to the first data sector is written.
pub fn fat16<W: Write + Seek>(
    volume: &mut W,
    bs: &BootSector,
    label: &str,
    volume_id: u32,
    uuid: FatUuid,
) -> io::Result<()> {
    if u64::from(bs.reserved_sectors) <= vmfat::SECTOR_INDEX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a VMware bank needs at least 2 reserved sectors",
        ));
    }
    let label = label_bytes(label);
    let len = usize::try_from(bs.first_data_sector() * SECTOR).map_err(io::Error::other)?;
    let mut meta = vec![0; len];
    let root = bs.fat_range(bs.fats.saturating_sub(1)).end;
    let mut pieces = vec![
        (0, bs.to_sector(&label, volume_id).to_vec()),
        (SECTOR as usize, uuid.to_sector().to_vec()),
        (root, label_entry(&label).to_vec()),
    ];
    // Each FAT's entry 0 is the media byte (0xF8, a fixed disk) padded
    // with ones; entry 1, end of chain with the clean-shutdown bit.
    for n in 0..bs.fats {
        pieces.push((bs.fat_range(n).start, vec![0xf8, 0xff, 0xff, 0xff]));
    }
    for (at, bytes) in pieces {
        meta.get_mut(at..at + bytes.len())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the volume's metadata does not fit its geometry",
                )
            })?
            .copy_from_slice(&bytes);
    }
    volume.seek(SeekFrom::Start(0))?;
    volume.write_all(&meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::process::Command;

    /// A bank as the planner makes one: 20,000 sectors, 2 reserved.
    fn bank() -> BootSector {
        BootSector::fat16_format(20_000, 1, 2, 64, 32, 8224).unwrap()
    }

    #[test]
    fn fatfs_and_fsck_fat_accept_the_volume_and_its_uuid_sector_stays() {
        let bs = bank();
        let uuid = FatUuid([0xe1; 16]);
        let named = tempfile::NamedTempFile::new().unwrap();
        let mut file = named.reopen().unwrap();
        file.set_len(20_000 * SECTOR).unwrap();
        fat16(&mut file, &bs, "Hypervisor1", 0x4a3f_12c0, uuid).unwrap();
        file.seek(SeekFrom::Start(0)).unwrap();
        {
            let fs = fatfs::FileSystem::new(&mut file, fatfs::FsOptions::new()).unwrap();
            assert_eq!(fs.volume_label(), "Hypervisor1");
            assert_eq!(fs.volume_id(), 0x4a3f_12c0);
            assert_eq!(fs.stats().unwrap().free_clusters(), bs.clusters());
            let mut f = fs.root_dir().create_file("boot.cfg").unwrap();
            f.write_all(b"bootstate=0\n").unwrap();
        }
        let mut sector = [0; 512];
        file.seek(SeekFrom::Start(SECTOR)).unwrap();
        file.read_exact(&mut sector).unwrap();
        assert_eq!(&sector[..16], b"VMWARE FAT16    ");
        assert_eq!(FatUuid::parse(&sector), Some(uuid));
        let fsck = Command::new("fsck.fat")
            .arg("-n")
            .arg(named.path())
            .output()
            .expect("fsck.fat (dosfstools) is needed: run scripts/install-deps");
        assert!(
            fsck.status.success(),
            "{}",
            String::from_utf8_lossy(&fsck.stdout)
        );
    }

    #[test]
    fn one_reserved_sector_leaves_no_room_for_the_uuid() {
        let bs = BootSector::fat16_format(20_000, 1, 1, 64, 32, 0).unwrap();
        let mut out = io::Cursor::new(Vec::new());
        assert!(fat16(&mut out, &bs, "X", 0, FatUuid([0xe0; 16])).is_err());
        assert!(out.into_inner().is_empty());
    }
}
