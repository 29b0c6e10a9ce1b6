//! The partition table, whichever its scheme: what [`read`] finds on a
//! source (checked against the size of the source), and what a
//! [`TableSpec`] serialises for a target. The schemes' own structures are
//! in [`mbr`] (MBR with its extended/EBR chain, via mbrman) and [`gpt`]
//! (via the gpt crate).
//!
//! Entry numbers are kept as the table has them: ESXi's entries are not in
//! disk order (entry 4 lies first) and its boot code finds the bootbanks by
//! number.

use std::io;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::image::source::{Source, SECTOR};
use crate::ondisk::recorder::Recorder;
use crate::ondisk::{gpt, mbr, signed};

/// Bytes from the start of the disk that make a partition table valid:
/// sector 0 (the MBR, or GPT's protective MBR) and sector 1 (the primary
/// GPT header). A writer puts them on the disk last, once everything
/// else is synced.
pub const COMMIT_BYTES: u64 = 2 * SECTOR;

/// The partitioning scheme of a disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Master boot record, with logical partitions in an EBR chain.
    Mbr,
    /// GUID partition table.
    Gpt,
}

/// The type of a partition as the table records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum PartitionType {
    /// An MBR system ID byte such as 0x04 or 0x06.
    Mbr(u8),
    /// A GPT partition type GUID, upper case.
    Gpt(String),
}

/// GPT type GUID of an EFI system partition (ESXi 5+ boot partition).
pub const GPT_EFI_SYSTEM: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
/// GPT type GUID of a basic data partition (ESXi 5+ bootbanks, store).
pub const GPT_BASIC_DATA: &str = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7";
/// GPT type GUID of a VMware diagnostic (vmkcore) partition.
pub const GPT_VMKCORE: &str = "9D275380-40AD-11DB-BF97-000C2911D1B8";
/// MBR type of a FAT16 partition under 32 MiB, the type ESXi gives its
/// boot partition (entry 4).
pub const MBR_FAT16_SMALL: u8 = 0x04;
/// MBR type of an extended partition, the container of the EBR chain.
pub const MBR_EXTENDED: u8 = 0x05;
/// MBR type of a FAT16 partition (ESXi's bootbanks).
pub const MBR_FAT16: u8 = 0x06;
/// MBR type of a GPT's protective entry.
pub const MBR_PROTECTIVE: u8 = 0xee;

impl PartitionType {
    /// Whether this is an MBR extended-partition container (the same set
    /// of types mbrman follows).
    pub fn is_extended(&self) -> bool {
        matches!(
            self,
            PartitionType::Mbr(MBR_EXTENDED | 0x0f | 0x85 | 0xc5 | 0xd5)
        )
    }

    /// Whether the type promises a FAT file system.
    pub fn is_fat(&self) -> bool {
        match self {
            PartitionType::Mbr(t) => matches!(t, 0x01 | 0x04 | 0x06 | 0x0b | 0x0c | 0x0e),
            PartitionType::Gpt(g) => g == GPT_EFI_SYSTEM || g == GPT_BASIC_DATA,
        }
    }

    /// A short human name for the type.
    pub fn name(&self) -> &'static str {
        match self {
            PartitionType::Mbr(0x01) => "FAT12",
            PartitionType::Mbr(MBR_FAT16_SMALL) => "FAT16 <32M",
            PartitionType::Mbr(MBR_EXTENDED | 0x0f | 0x85 | 0xc5 | 0xd5) => "extended",
            PartitionType::Mbr(MBR_FAT16) => "FAT16",
            PartitionType::Mbr(0x0b | 0x0c) => "FAT32",
            PartitionType::Mbr(0x0e) => "FAT16 LBA",
            PartitionType::Mbr(0xfb) => "VMFS",
            PartitionType::Mbr(0xfc) => "vmkcore",
            PartitionType::Mbr(_) => "other",
            PartitionType::Gpt(g) if g == GPT_EFI_SYSTEM => "EFI system",
            PartitionType::Gpt(g) if g == GPT_BASIC_DATA => "basic data",
            PartitionType::Gpt(g) if g == GPT_VMKCORE => "vmkDiagnostic",
            PartitionType::Gpt(_) => "other",
        }
    }

    /// The type as text: `0x04` for MBR, the GUID for GPT.
    pub fn code(&self) -> String {
        match self {
            PartitionType::Mbr(t) => format!("0x{t:02x}"),
            PartitionType::Gpt(g) => g.clone(),
        }
    }
}

/// One partition, with the number its table gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    /// Entry number: 1–4 primary, 5+ logical (MBR); the GPT entry index.
    pub number: u32,
    /// The partition type.
    #[serde(rename = "type", serialize_with = "serialize_code")]
    pub kind: PartitionType,
    /// First sector (LBA).
    pub start: u64,
    /// Length in sectors.
    pub sectors: u64,
    /// MBR boot flag (0x80), or the GPT legacy-BIOS-bootable attribute.
    pub active: bool,
}

fn serialize_code<S: serde::Serializer>(t: &PartitionType, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.code())
}

impl Partition {
    /// The last sector of the partition.
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.sectors.saturating_sub(1))
    }

    /// Size in bytes.
    pub fn bytes(&self) -> u64 {
        self.sectors * SECTOR
    }
}

/// A disk's partition table.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionTable {
    /// MBR or GPT.
    pub scheme: Scheme,
    /// Size of the disk in sectors.
    pub disk_sectors: u64,
    /// Partitions in entry-number order (not disk order).
    pub partitions: Vec<Partition>,
    /// The 440 bytes of boot code at the start of sector 0.
    #[serde(skip)]
    pub boot_code: Vec<u8>,
}

impl PartitionTable {
    /// The partition with entry number `number`.
    pub fn get(&self, number: u32) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.number == number)
    }
}

/// Reads and checks the partition table of `source`.
pub fn read(source: &Source) -> Result<PartitionTable> {
    let disk_sectors = source.len() / SECTOR;
    if disk_sectors < 2 {
        return Err(Error::NotADiskImage(NotADisk::TooSmall {
            bytes: source.len(),
        }));
    }
    let sector0 = source.read_sector(0, "the MBR")?;
    if !signed(&sector0) {
        return Err(Error::NotADiskImage(NotADisk::NoSignature));
    }
    let jumps = matches!(sector0.first(), Some(0xeb | 0xe9));
    if jumps && crate::ondisk::bpb::BootSector::parse(&sector0).is_ok() {
        return Err(Error::NotADiskImage(NotADisk::Superfloppy));
    }
    let protective = (0..4).any(|i| mbr::entry(&sector0, i).sys == MBR_PROTECTIVE);
    let streamed = source.known_len().is_none();
    let mut table = match (protective, streamed) {
        // The backup GPT lies at the very end: its check would need the
        // whole stream.
        (true, true) => return Err(Error::Table(TableProblem::GptInStream)),
        (true, false) => gpt::read(source, disk_sectors)?,
        (false, false) => mbr::read(source, disk_sectors)?,
        (false, true) => mbr::read_head(source, &sector0)?,
    };
    table.boot_code = mbr::boot_code(&sector0).to_vec();
    table.partitions.sort_by_key(|p| p.number);
    check_bounds(&table)?;
    Ok(table)
}

/// Every partition non-empty, inside the disk, logical ones inside their
/// extended partition, and no two data partitions overlapping.
fn check_bounds(table: &PartitionTable) -> Result<()> {
    let problem = |p| Err(Error::Table(p));
    for p in &table.partitions {
        if p.sectors == 0 {
            return problem(TableProblem::Empty {
                partition: p.number,
            });
        }
        if p.start
            .checked_add(p.sectors)
            .is_none_or(|end| end > table.disk_sectors)
        {
            return problem(TableProblem::PastEnd {
                partition: p.number,
                start: p.start,
                end: p.end(),
                disk_sectors: table.disk_sectors,
            });
        }
    }
    if let Some(ext) = table.partitions.iter().find(|p| p.kind.is_extended()) {
        let outside = table
            .partitions
            .iter()
            .filter(|p| p.number > 4)
            .find(|p| p.start < ext.start || p.end() > ext.end());
        if let Some(p) = outside {
            return problem(TableProblem::OutsideExtended {
                partition: p.number,
                extended: ext.number,
            });
        }
    }
    let mut data: Vec<&Partition> = table
        .partitions
        .iter()
        .filter(|p| !p.kind.is_extended())
        .collect();
    data.sort_by_key(|p| p.start);
    for pair in data.windows(2) {
        if let [a, b] = pair {
            if b.start <= a.end() {
                return problem(TableProblem::Overlap {
                    first: a.number,
                    second: b.number,
                });
            }
        }
    }
    Ok(())
}

/// Why a source is not a partitioned disk image at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotADisk {
    /// Less than the two sectors a table needs.
    #[error("{bytes} bytes is too small to hold a partition table")]
    TooSmall {
        /// The source's size in bytes.
        bytes: u64,
    },
    /// Sector 0 lacks the 55 AA signature.
    #[error("sector 0 has no MBR signature (55 AA)")]
    NoSignature,
    /// Sector 0 is a FAT boot sector: a volume without a table.
    #[error(
        "sector 0 holds a FAT file system, not a partition table (an unpartitioned \
         \"superfloppy\"); esxstick needs a partitioned ESXi disk"
    )]
    Superfloppy,
}

/// What is wrong with a partition table that esxstick reads. Sectors are
/// absolute (LBA) unless a field says otherwise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableProblem {
    /// A GPT inside a compressed stream, whose backup table lies at the
    /// very end.
    #[error(
        "a GPT image (ESXi 5 and later) inside a compressed stream: esxstick reads \
         GPT images uncompressed only; decompress it first"
    )]
    GptInStream,
    /// mbrman refused the MBR.
    #[error("MBR: {reason}")]
    Mbr {
        /// mbrman's message.
        reason: String,
    },
    /// A primary entry starts at sector 0.
    #[error("MBR entry {entry} starts at sector 0, on top of the MBR itself")]
    OnTheMbr {
        /// The entry's number (1–4).
        entry: u32,
    },
    /// An EBR link leads past the end of the disk (or of MBR addressing).
    #[error(
        "the EBR chain links to sector {lba}, past the end of the disk ({disk_sectors} sectors); \
         is the image truncated?"
    )]
    EbrPastEnd {
        /// Where the link leads.
        lba: u64,
        /// The disk's size.
        disk_sectors: u64,
    },
    /// A linked EBR lacks the 55 AA signature.
    #[error("the EBR at sector {lba} has no signature (55 AA)")]
    EbrUnsigned {
        /// The EBR's sector.
        lba: u64,
    },
    /// A logical partition starts on the EBR describing it.
    #[error("the logical partition described at sector {lba} starts on its own EBR")]
    OnItsEbr {
        /// The EBR's sector.
        lba: u64,
    },
    /// A logical partition starts beyond what MBR entries address.
    #[error("the logical partition described at sector {lba} starts beyond 2 TiB")]
    Beyond2TiB {
        /// The EBR's sector.
        lba: u64,
    },
    /// An EBR links back to one already followed.
    #[error("the EBR chain loops: the EBR at sector {lba} links back to sector {target}")]
    EbrLoop {
        /// The EBR holding the link.
        lba: u64,
        /// Where the link leads.
        target: u64,
    },
    /// More logical partitions than esxstick follows
    /// ([`mbr::MAX_LOGICAL`]).
    #[error(
        "the EBR chain holds more than {} logical partitions",
        mbr::MAX_LOGICAL
    )]
    TooManyLogical,
    /// A GPT header declares an entry array esxstick does not read (more
    /// than [`gpt::MAX_ENTRIES`], or not of [`gpt::ENTRY_SIZE`] bytes).
    #[error(
        "the GPT header at sector {lba} declares {count} entries of {size} bytes \
         (esxstick reads up to {} entries of {} bytes)",
        gpt::MAX_ENTRIES,
        gpt::ENTRY_SIZE
    )]
    GptEntries {
        /// The header's sector.
        lba: u64,
        /// Entries it declares.
        count: u32,
        /// Entry size it declares, in bytes.
        size: u32,
    },
    /// The gpt crate refused the GPT.
    #[error("{}", gpt_wording(.reason))]
    Gpt {
        /// The gpt crate's message, without its "IO Error: " (it reads as
        /// a disk failure when it is a damaged table).
        reason: String,
    },
    /// A GPT entry's last sector lies before its first.
    #[error("GPT partition {partition} ends (sector {last}) before it starts (sector {first})")]
    Backwards {
        /// The entry's number.
        partition: u32,
        /// Its first sector.
        first: u64,
        /// Its last sector.
        last: u64,
    },
    /// A partition of no sectors.
    #[error("partition {partition} has zero length")]
    Empty {
        /// The partition's number.
        partition: u32,
    },
    /// A partition reaching past the end of the image.
    #[error(
        "partition {partition} (sectors {start}..{end}) extends past the end of the image \
         ({disk_sectors} sectors); is the image truncated?"
    )]
    PastEnd {
        /// The partition's number.
        partition: u32,
        /// Its first sector.
        start: u64,
        /// Its last sector.
        end: u64,
        /// The image's size.
        disk_sectors: u64,
    },
    /// A logical partition outside its extended partition.
    #[error("logical partition {partition} lies outside the extended partition {extended}")]
    OutsideExtended {
        /// The logical partition's number.
        partition: u32,
        /// The extended partition's number.
        extended: u32,
    },
    /// Two data partitions sharing sectors.
    #[error("partitions {first} and {second} overlap")]
    Overlap {
        /// The one starting first.
        first: u32,
        /// The other.
        second: u32,
    },
}

/// The gpt crate's message as users read it: prefixed "GPT: " unless it
/// names the GPT already.
fn gpt_wording(reason: &str) -> String {
    if reason.starts_with("GPT") {
        reason.to_string()
    } else {
        format!("GPT: {reason}")
    }
}

/// A CHS address as MBR entries store it: cylinder, head, sector
/// (sectors count from 1).
pub type Chs = [u32; 3];

/// A partition table to write: plain data, serialised by [`mbr`] or
/// [`gpt`] with [`TableSpec::sectors`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// MBR or GPT.
    pub scheme: Scheme,
    /// The disk size the table is made for, in sectors (an MBR records it;
    /// a GPT goes at the end of whatever disk it is serialised for).
    pub disk_sectors: u64,
    /// The entries, each with the number it keeps.
    pub entries: Vec<TableEntry>,
    /// Boot code for sector 0; its first 440 bytes are used (zero-filled
    /// when shorter).
    pub boot_code: Vec<u8>,
    /// The MBR's disk signature (unused by GPT).
    pub disk_signature: u32,
}

/// One entry of a [`TableSpec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEntry {
    /// Number, type, extent and boot flag. Numbers 1–4 are MBR primary
    /// entries, 5 and up logical ones (each with its EBR).
    pub partition: Partition,
    /// CHS of the first sector (MBR only).
    pub chs_start: Chs,
    /// CHS of the last sector (MBR only).
    pub chs_end: Chs,
    /// The EBR describing a logical partition (MBR only). Without one, a
    /// logical partition's EBR is taken to be its own first sector.
    pub ebr: Option<Ebr>,
}

/// Where an EBR lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ebr {
    /// Its sector.
    pub lba: u64,
    /// That sector's CHS address.
    pub chs: Chs,
}

impl TableSpec {
    /// The table's bytes on a disk of `disk_sectors` (which may be larger
    /// than [`TableSpec::disk_sectors`]: a GPT's backup belongs in the
    /// disk's last sectors), as (byte offset, bytes) in the order to write
    /// them: as the serialiser wrote them, but the sectors below
    /// [`COMMIT_BYTES`] last. MBR (by mbrman): the EBRs, then the MBR.
    /// GPT (by gpt): the backup entries and header, the primary entries,
    /// then the primary header and the protective MBR.
    pub fn sectors(&self, disk_sectors: u64) -> io::Result<Vec<(u64, Vec<u8>)>> {
        let mut disk = Recorder::new(disk_sectors * SECTOR);
        match self.scheme {
            Scheme::Mbr => mbr::record(self, &mut disk)?,
            Scheme::Gpt => gpt::record(self, &mut disk)?,
        }
        let (commit, mut rest): (Vec<_>, Vec<_>) = disk
            .into_chunks()
            .into_iter()
            .partition(|(at, _)| *at < COMMIT_BYTES);
        rest.extend(commit);
        Ok(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ondisk::testing::{disk, signed_sector};

    /// An MBR with entries (slot, type, start, sectors), built by hand.
    fn mbr(entries: &[(usize, u8, u32, u32)]) -> [u8; 512] {
        let mut s = signed_sector(&[]);
        for &(slot, sys, start, sectors) in entries {
            let at = 446 + 16 * slot;
            s[at + 4] = sys;
            s[at + 8..at + 12].copy_from_slice(&start.to_le_bytes());
            s[at + 12..at + 16].copy_from_slice(&sectors.to_le_bytes());
        }
        s
    }

    fn refusal(sectors: u64, sector0: &[u8]) -> String {
        let (_file, source) = disk(sectors, &[(0, sector0)]);
        read(&source).unwrap_err().to_string()
    }

    #[test]
    fn refuses_what_is_not_a_partitioned_disk() {
        assert_eq!(
            refusal(1, &[]),
            "not a disk image: 512 bytes is too small to hold a partition table"
        );
        assert_eq!(
            refusal(100, &[1; 512]),
            "not a disk image: sector 0 has no MBR signature (55 AA)"
        );
        // A FAT volume that fatfs formats on the whole disk.
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().set_len(8160 * SECTOR).unwrap();
        let options = fatfs::FormatVolumeOptions::new();
        fatfs::format_volume(file.as_file_mut(), options).unwrap();
        let source = Source::open(file.path()).unwrap();
        let err = read(&source).unwrap_err().to_string();
        assert!(err.starts_with("not a disk image: sector 0 holds a FAT file system"));
        assert!(err.contains("\"superfloppy\""), "{err}");
    }

    #[test]
    fn refuses_partitions_out_of_bounds_naming_them() {
        assert_eq!(
            refusal(4000, &mbr(&[(3, 0x04, 32, 8160)])),
            "bad partition table: partition 4 (sectors 32..8191) extends past the end of the \
             image (4000 sectors); is the image truncated?"
        );
        assert_eq!(
            refusal(9000, &mbr(&[(3, 0x04, 32, 8160), (2, 0x06, 100, 50)])),
            "bad partition table: partitions 4 and 3 overlap"
        );
        assert_eq!(
            refusal(9000, &mbr(&[(3, 0x04, 32, 8160), (0, 0x06, 8192, 0)])),
            "bad partition table: partition 1 has zero length"
        );
        // A logical partition (5) reaching past its extended partition.
        let ebr = signed_sector(&[(446 + 4, &[0x06]), (446 + 8, &[32]), (446 + 12, &[200])]);
        let (_f, source) = disk(
            9000,
            &[(0, &mbr(&[(0, 0x05, 8192, 100)])), (8192 * 512, &ebr)],
        );
        assert_eq!(
            read(&source).unwrap_err().to_string(),
            "bad partition table: logical partition 5 lies outside the extended partition 1"
        );
    }

    #[test]
    fn partition_types_name_what_esxi_uses() {
        assert!(PartitionType::Mbr(MBR_EXTENDED).is_extended());
        assert!(PartitionType::Mbr(0x0f).is_extended());
        assert!(!PartitionType::Mbr(MBR_FAT16).is_extended());
        assert!(PartitionType::Mbr(MBR_FAT16_SMALL).is_fat());
        assert!(!PartitionType::Mbr(0xfc).is_fat());
        assert!(PartitionType::Gpt(GPT_BASIC_DATA.into()).is_fat());
        assert!(!PartitionType::Gpt(GPT_VMKCORE.into()).is_fat());
        assert_eq!(PartitionType::Mbr(0x04).code(), "0x04");
        assert_eq!(PartitionType::Mbr(0xfc).name(), "vmkcore");
        assert_eq!(
            PartitionType::Gpt(GPT_EFI_SYSTEM.into()).name(),
            "EFI system"
        );
        let p = Partition {
            number: 5,
            kind: PartitionType::Mbr(MBR_FAT16),
            start: 8224,
            sectors: 511_968,
            active: false,
        };
        assert_eq!((p.end(), p.bytes()), (520_191, 262_127_616));
    }
}
