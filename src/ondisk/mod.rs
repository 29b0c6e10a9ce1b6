//! The on-disk structures esxstick reads and writes, one per file, each
//! parsed and serialised side by side: the partition [`table`] (MBR + EBR
//! chain, GPT), the FAT boot sector ([`bpb`]), FAT volumes through fatfs
//! ([`fat`]) and esxstick's own FAT consistency check ([`fsck`]).
//!
//! Nothing here knows about ESXi or plans; it only knows bytes.

pub mod bpb;
pub mod fat;
pub mod fsck;
pub mod table;
pub mod vmfat;
