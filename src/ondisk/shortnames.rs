//! Short names only, in a FAT32 volume esxstick has just written.
//!
//! fatfs 0.3 (the current release) writes a VFAT long-name entry before
//! every short entry — even for `.` and `..` of a new directory, which
//! fsck.fat then rejects ("Expected a valid '.' entry in this slot") and
//! which it cannot be told not to do. An installer stick needs none:
//! the ISO's names are upper-case 8.3 names, and mboot's own FAT reader
//! matches short names only. This pass removes every long-name entry
//! (attribute 0x0F) from every directory of the volume, packing the short
//! entries to the front of the directory's clusters — `.` and `..` first,
//! as written — and zeroing the rest. Cluster chains are not changed.
//!
//! It is for volumes esxstick formatted in this run: chains are followed
//! with a bound and a loop check, but the volume is not otherwise
//! distrusted.

use std::collections::HashSet;
use std::io::{self, Read, Seek, SeekFrom, Write};

use crate::image::source::SECTOR;
use crate::ondisk::bpb::{BootSector, FatType, Field};
use crate::ondisk::le;

/// Bytes of a directory entry.
const ENTRY: usize = 32;
/// Attribute of a long-name entry.
const LONG_NAME: u8 = 0x0f;
/// Attribute bit of a directory.
const DIRECTORY: u8 = 0x10;
/// First byte of a deleted entry.
const DELETED: u8 = 0xe5;
/// FAT32 entries at or above this end a chain.
const END_OF_CHAIN: u32 = 0x0fff_fff8;

/// Where things are in the volume, from its boot sector.
struct Layout {
    cluster_bytes: u64,
    fat_at: u64,
    data_at: u64,
    clusters: u32,
    root: u32,
}

/// Removes every long-name entry from every directory of the FAT32
/// volume `vol` (whose first byte is the boot sector).
pub fn strip_long_names<T: Read + Write + Seek>(vol: &mut T) -> io::Result<()> {
    let layout = read_layout(vol)?;
    let mut todo = vec![layout.root];
    let mut seen = HashSet::new();
    while let Some(first) = todo.pop() {
        if !seen.insert(first) {
            continue;
        }
        let chain = chain(vol, &layout, first)?;
        let mut dir = vec![0u8; chain.len() * layout.cluster_bytes as usize];
        for (c, buf) in chain
            .iter()
            .zip(dir.chunks_mut(layout.cluster_bytes as usize))
        {
            vol.seek(SeekFrom::Start(cluster_at(&layout, *c)))?;
            vol.read_exact(buf)?;
        }
        let mut kept: Vec<[u8; ENTRY]> = pack(&dir);
        todo.extend(subdirs(&kept));
        for e in &mut kept {
            dotdot_to_root(e, layout.root);
        }
        let mut packed = kept.concat();
        packed.resize(dir.len(), 0);
        for (c, buf) in chain
            .iter()
            .zip(packed.chunks(layout.cluster_bytes as usize))
        {
            vol.seek(SeekFrom::Start(cluster_at(&layout, *c)))?;
            vol.write_all(buf)?;
        }
    }
    vol.flush()
}

/// The volume's layout, from its boot sector (parsed as every FAT boot
/// sector is, by [`BootSector::parse`]).
fn read_layout<T: Read + Seek>(vol: &mut T) -> io::Result<Layout> {
    let mut sector = [0u8; SECTOR as usize];
    vol.seek(SeekFrom::Start(0))?;
    vol.read_exact(&mut sector)?;
    let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    let bs = BootSector::parse(&sector).map_err(invalid)?;
    if bs.fat_type() != FatType::Fat32 {
        return Err(invalid("not a FAT32 volume".into()));
    }
    Ok(Layout {
        cluster_bytes: bs.cluster_bytes(),
        fat_at: u64::from(bs.reserved_sectors) * SECTOR,
        data_at: bs.first_data_sector() * SECTOR,
        clusters: bs.clusters(),
        root: Field::RootCluster.read(&sector),
    })
}

/// Byte offset of cluster `c`.
fn cluster_at(layout: &Layout, c: u32) -> u64 {
    layout.data_at + u64::from(c.saturating_sub(2)) * layout.cluster_bytes
}

/// The clusters of the chain starting at `first`, in order.
fn chain<T: Read + Seek>(vol: &mut T, layout: &Layout, first: u32) -> io::Result<Vec<u32>> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let mut out = Vec::new();
    let mut c = first;
    while c < END_OF_CHAIN {
        if c < 2 || c >= layout.clusters + 2 {
            return Err(bad("a directory's chain leaves the volume"));
        }
        if out.len() > layout.clusters as usize {
            return Err(bad("a directory's chain loops"));
        }
        out.push(c);
        let mut entry = [0u8; 4];
        vol.seek(SeekFrom::Start(layout.fat_at + u64::from(c) * 4))?;
        vol.read_exact(&mut entry)?;
        c = u32::from_le_bytes(entry) & 0x0fff_ffff;
    }
    Ok(out)
}

/// The directory's short entries, in order, up to its end marker.
fn pack(dir: &[u8]) -> Vec<[u8; ENTRY]> {
    dir.chunks_exact(ENTRY)
        .take_while(|e| e.first() != Some(&0))
        .filter(|e| e.first() != Some(&DELETED) && e.get(11) != Some(&LONG_NAME))
        .filter_map(|e| e.try_into().ok())
        .collect()
}

/// A `..` entry that names the root directory by its cluster (as fatfs
/// writes it) made to name it by 0, as FAT32 requires.
fn dotdot_to_root(e: &mut [u8; ENTRY], root: u32) {
    if e.starts_with(b"..         ") && first_cluster(e) == root {
        for at in [20, 21, 26, 27] {
            e[at] = 0;
        }
    }
}

/// The first cluster an entry names.
fn first_cluster(e: &[u8]) -> u32 {
    u32::from(le::u16_at(e, 20)) << 16 | u32::from(le::u16_at(e, 26))
}

/// The first clusters of the subdirectories among `entries` (not `.`
/// or `..`).
fn subdirs(entries: &[[u8; ENTRY]]) -> Vec<u32> {
    entries
        .iter()
        .filter(|e| e[11] & DIRECTORY != 0 && e[0] != b'.')
        .map(|e| first_cluster(e))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_go_short_entries_stay_in_order() {
        let mut dir = Vec::new();
        let entry = |name: &[u8; 11], attr: u8| {
            let mut e = [0u8; 32];
            e[..11].copy_from_slice(name);
            e[11] = attr;
            e
        };
        dir.extend(entry(b"A\0\0\0\0\0\0\0\0\0\0", LONG_NAME));
        dir.extend(entry(b".          ", DIRECTORY));
        dir.extend(entry(b"B\0\0\0\0\0\0\0\0\0\0", LONG_NAME));
        dir.extend(entry(b"BOOT    CFG", 0x20));
        dir.extend([0u8; 64]);
        let kept = pack(&dir);
        assert_eq!(kept.len(), 2);
        assert_eq!(&kept[0][..11], b".          ");
        assert_eq!(&kept[1][..11], b"BOOT    CFG");
    }
}
