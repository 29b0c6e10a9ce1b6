//! The on-disk structures esxstick reads and writes, one per file, each
//! parsed and serialised side by side: the partition [`table`] with its
//! two schemes, [`mbr`] (MBR + EBR chain) and [`gpt`]; the FAT boot sector
//! ([`bpb`]); FAT volumes through fatfs ([`fat`]) and esxstick's own FAT
//! consistency check ([`fsck`]); VMware's FAT UUID sector ([`vmfat`]) and
//! a new bank laid out as VMware formats one ([`format`](mod@format)). [`le`] reads
//! and writes the little-endian fields they are made of, [`recorder`] is
//! the in-memory disk a table is serialised onto, and [`cache`] holds a
//! FAT volume's metadata region in memory for fatfs.
//!
//! Nothing here knows about plans or the pipeline; it only knows bytes.

pub mod bpb;
pub mod cache;
pub mod fat;
pub mod format;
pub mod fsck;
pub mod gpt;
pub mod le;
pub mod mbr;
pub mod recorder;
pub mod shortnames;
pub mod table;
pub mod vmfat;

/// Where the two signature bytes of an MBR, an EBR or a FAT boot sector
/// lie in their sector.
const SIGNATURE_AT: usize = 510;

/// Whether `sector` ends in the 55 AA signature that MBRs, EBRs and FAT
/// boot sectors share.
pub fn signed(sector: &[u8]) -> bool {
    sector.get(SIGNATURE_AT..SIGNATURE_AT + 2) == Some(&[0x55, 0xaa][..])
}

/// Disk images for the unit tests of the structures here.
#[cfg(test)]
pub(crate) mod testing {
    use std::os::unix::fs::FileExt;

    use crate::image::source::{Source, SECTOR};

    /// A sparse image of `sectors`, zero but for `chunks` (byte offset,
    /// bytes), opened as a source; the file lives as long as the first
    /// value.
    pub fn disk(sectors: u64, chunks: &[(u64, &[u8])]) -> (tempfile::NamedTempFile, Source) {
        let file = tempfile::NamedTempFile::new().unwrap();
        for (at, bytes) in chunks {
            file.as_file().write_all_at(bytes, *at).unwrap();
        }
        file.as_file().set_len(sectors * SECTOR).unwrap();
        let source = Source::open(file.path()).unwrap();
        (file, source)
    }

    /// A sector ending in the 55 AA signature, with each (offset, bytes)
    /// of `parts` in place.
    pub fn signed_sector(parts: &[(usize, &[u8])]) -> [u8; 512] {
        let mut sector = [0; 512];
        for (at, bytes) in parts {
            sector[*at..*at + bytes.len()].copy_from_slice(bytes);
        }
        sector[510] = 0x55;
        sector[511] = 0xaa;
        sector
    }

    /// What fatfs 0.3 formats for `total` sectors and `spc` sectors a
    /// cluster (two FATs, `root_entries`), read from its boot sector by
    /// the specification's offsets: the FAT type label, reserved sectors,
    /// sectors per FAT (FAT12/16); `None` when fatfs formats nothing. An
    /// oracle for the geometry esxstick predicts.
    pub fn fatfs_formats(total: u32, spc: u8, root_entries: u16) -> Option<(String, u16, u16)> {
        let mut file = tempfile::tempfile().unwrap();
        file.set_len(u64::from(total) * SECTOR).unwrap();
        let options = fatfs::FormatVolumeOptions::new()
            .bytes_per_cluster(u32::from(spc) * 512)
            .total_sectors(total)
            .max_root_dir_entries(root_entries)
            .fats(2);
        fatfs::format_volume(&mut file, options).ok()?;
        let mut s = [0u8; 512];
        file.read_exact_at(&mut s, 0).unwrap();
        let (reserved, fat16_size) = (
            u16::from_le_bytes([s[0x0e], s[0x0f]]),
            u16::from_le_bytes([s[0x16], s[0x17]]),
        );
        // The type label follows the FAT32 extension when there is one.
        let at = if fat16_size == 0 { 0x52 } else { 0x36 };
        let label = String::from_utf8_lossy(&s[at..at + 8]).trim().to_string();
        Some((label, reserved, fat16_size))
    }
}
