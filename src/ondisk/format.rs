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
    let mut meta =
        vec![0; usize::try_from(bs.first_data_sector() * SECTOR).map_err(io::Error::other)?];
    let sector = SECTOR as usize;
    meta[..sector].copy_from_slice(&bs.to_sector(&label, volume_id));
    meta[sector..2 * sector].copy_from_slice(&uuid.to_sector());
    for n in 0..bs.fats {
        let fat = bs.fat_range(n);
        // Entry 0: the media byte (0xF8, a fixed disk) padded with ones;
        // entry 1: end of chain, clean shutdown.
        meta[fat.start..fat.start + 4].copy_from_slice(&[0xf8, 0xff, 0xff, 0xff]);
    }
    let root = bs.fat_range(bs.fats.saturating_sub(1)).end;
    let entry = &mut meta[root..root + DIR_ENTRY];
    entry[..11].copy_from_slice(&label);
    entry[11] = ATTR_VOLUME_ID;
    volume.seek(SeekFrom::Start(0))?;
    volume.write_all(&meta)
}
