//! The on-disk structures esxstick reads and writes, one per file, each
//! parsed and serialised side by side: the partition [`table`] with its
//! two schemes, [`mbr`] (MBR + EBR chain) and [`gpt`]; the FAT boot sector
//! ([`bpb`]); FAT volumes through fatfs ([`fat`]) and esxstick's own FAT
//! consistency check ([`fsck`]). [`le`] reads and writes the
//! little-endian fields they are made of, and [`recorder`] is the
//! in-memory disk a table is serialised onto.
//!
//! Nothing here knows about ESXi or plans; it only knows bytes.

pub mod bpb;
pub mod fat;
pub mod fsck;
pub mod gpt;
pub mod le;
pub mod mbr;
pub mod recorder;
pub mod table;

/// Where the two signature bytes of an MBR, an EBR or a FAT boot sector
/// lie in their sector.
const SIGNATURE_AT: usize = 510;

/// Whether `sector` ends in the 55 AA signature that MBRs, EBRs and FAT
/// boot sectors share.
pub fn signed(sector: &[u8]) -> bool {
    sector.get(SIGNATURE_AT..SIGNATURE_AT + 2) == Some(&[0x55, 0xaa][..])
}
