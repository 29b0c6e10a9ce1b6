//! The partition table: MBR with its extended/EBR chain (via mbrman) or GPT
//! (via gpt), checked against the size of the source.
//!
//! Entry numbers are kept as the table has them: ESXi's entries are not in
//! disk order (entry 4 lies first) and its boot code finds the bootbanks by
//! number.

use std::collections::HashSet;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::image::source::{Source, SECTOR};

/// Most logical partitions followed in an EBR chain before giving up.
const MAX_LOGICAL: usize = 128;
/// Logical partitions read from a stream: 5 and 6, the bootbanks.
const STREAM_LOGICAL: usize = 2;
/// Disk size assumed while the size of a stream is unknown.
const UNKNOWN_SECTORS: u64 = crate::image::source::UNKNOWN_LEN / SECTOR;
/// Most GPT entries accepted (the usual table has 128).
const MAX_GPT_ENTRIES: u32 = 1024;
/// Size of a GPT partition entry that esxstick (and the gpt crate) reads.
const GPT_ENTRY_SIZE: u32 = 128;

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

impl PartitionType {
    /// Whether this is an MBR extended-partition container (the same set
    /// of types mbrman follows).
    pub fn is_extended(&self) -> bool {
        matches!(self, PartitionType::Mbr(0x05 | 0x0f | 0x85 | 0xc5 | 0xd5))
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
            PartitionType::Mbr(0x04) => "FAT16 <32M",
            PartitionType::Mbr(0x05 | 0x0f | 0x85 | 0xc5 | 0xd5) => "extended",
            PartitionType::Mbr(0x06) => "FAT16",
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
        return Err(Error::NotADiskImage(format!(
            "{} bytes is too small to hold a partition table",
            source.len()
        )));
    }
    let mbr = source.read_sector(0, "the MBR")?;
    if mbr[510..512] != [0x55, 0xaa] {
        return Err(Error::NotADiskImage(
            "sector 0 has no MBR signature (55 AA)".to_string(),
        ));
    }
    if (mbr[0] == 0xeb || mbr[0] == 0xe9) && crate::ondisk::bpb::BootSector::parse(&mbr).is_ok() {
        return Err(Error::NotADiskImage(
            "sector 0 holds a FAT file system, not a partition table (an unpartitioned \
             \"superfloppy\"); esxstick needs a partitioned ESXi disk"
                .to_string(),
        ));
    }
    let protective = (0..4).any(|i| mbr[446 + 16 * i + 4] == 0xee);
    let streamed = source.known_len().is_none();
    let mut table = match (protective, streamed) {
        // The backup GPT lies at the very end: its check would need the
        // whole stream.
        (true, true) => {
            return Err(Error::Table(
                "a GPT image (ESXi 5 and later) inside a compressed stream: esxstick reads \
                 GPT images uncompressed only; decompress it first"
                    .to_string(),
            ))
        }
        (true, false) => read_gpt(source, disk_sectors)?,
        (false, false) => read_mbr(source, disk_sectors)?,
        (false, true) => read_mbr_head(source, &mbr)?,
    };
    table.boot_code = mbr[..440].to_vec();
    table.partitions.sort_by_key(|p| p.number);
    check_bounds(&table)?;
    Ok(table)
}

fn read_mbr(source: &Source, disk_sectors: u64) -> Result<PartitionTable> {
    walk_ebr_chain(source, disk_sectors, MAX_LOGICAL)?;
    let mbr = mbrman::MBR::read_from(&mut source.reader(), SECTOR as u32).map_err(|e| match e {
        mbrman::Error::Io(e) => read_err("the partition table", 0, e),
        other => Error::Table(format!("MBR: {other}")),
    })?;
    let partitions = mbr
        .iter()
        .filter(|(_, p)| p.is_used())
        .map(|(i, p)| Partition {
            number: i as u32,
            kind: PartitionType::Mbr(p.sys),
            start: u64::from(p.starting_lba),
            sectors: u64::from(p.sectors),
            active: p.is_active(),
        })
        .collect();
    Ok(PartitionTable {
        scheme: Scheme::Mbr,
        disk_sectors,
        partitions,
        boot_code: Vec::new(),
    })
}

/// The head of an MBR table in a stream: the primary entries and the
/// logical partitions up to 6, the alternate bootbank. mbrman would walk
/// the whole EBR chain, whose last links lie hundreds of MiB further
/// (partition 8's EBR at 643 MB on ESXi images): in a stream, that means
/// decompressing all of it. The disk is taken to end where its last
/// partition found does.
fn read_mbr_head(source: &Source, mbr: &[u8; 512]) -> Result<PartitionTable> {
    let logical = walk_ebr_chain(source, UNKNOWN_SECTORS, STREAM_LOGICAL)?;
    let primary = (0..4).filter_map(|i| {
        let e = entry(mbr, i);
        (e.sys != 0).then(|| e.partition(i as u32 + 1, 0))
    });
    let partitions: Vec<Partition> = primary.chain(logical).collect();
    Ok(PartitionTable {
        scheme: Scheme::Mbr,
        disk_sectors: partitions.iter().map(|p| p.end() + 1).max().unwrap_or(1),
        partitions,
        boot_code: Vec::new(),
    })
}

/// Follows the EBR chain (before mbrman does, so that loops, links past
/// the end and overflowing sector numbers are reported precisely and
/// never reach mbrman's arithmetic), for at most `max` logical
/// partitions; returns those.
fn walk_ebr_chain(source: &Source, disk_sectors: u64, max: usize) -> Result<Vec<Partition>> {
    let mbr = source.read_sector(0, "the MBR")?;
    if let Some(i) = (0..4).find(|&i| entry(&mbr, i).sys != 0 && entry(&mbr, i).start == 0) {
        return Err(Error::Table(format!(
            "MBR entry {} starts at sector 0, on top of the MBR itself",
            i + 1
        )));
    }
    // mbrman follows the first extended entry in table order; so do we.
    let Some(ext) = (0..4)
        .map(|i| entry(&mbr, i))
        .find(|e| PartitionType::Mbr(e.sys).is_extended())
    else {
        return Ok(Vec::new());
    };
    let mut seen = HashSet::new();
    let mut rel: u64 = 0;
    let mut logical_found = Vec::new();
    for count in 0.. {
        let lba = ext.start + rel;
        if lba >= disk_sectors || lba > u64::from(u32::MAX) {
            return Err(Error::Table(format!(
                "the EBR chain links to sector {lba}, past the end of the disk ({disk_sectors} sectors); is the image truncated?"
            )));
        }
        let ebr = source.read_sector(lba, "an EBR")?;
        if ebr[510..512] != [0x55, 0xaa] {
            if rel == 0 {
                return Ok(logical_found); // an empty extended partition needs no EBR
            }
            return Err(Error::Table(format!(
                "the EBR at sector {lba} has no signature (55 AA)"
            )));
        }
        let logical = entry(&ebr, 0);
        if logical.sys != 0 && logical.start == 0 {
            return Err(Error::Table(format!(
                "the logical partition described at sector {lba} starts on its own EBR"
            )));
        }
        if lba + logical.start > u64::from(u32::MAX) {
            return Err(Error::Table(format!(
                "the logical partition described at sector {lba} starts beyond 2 TiB"
            )));
        }
        if logical.sys != 0 {
            logical_found.push(logical.partition(5 + count as u32, lba));
        }
        let next = entry(&ebr, 1);
        if next.start == 0 {
            return Ok(logical_found);
        }
        if !seen.insert(rel) || next.start <= rel {
            return Err(Error::Table(format!(
                "the EBR chain loops: the EBR at sector {lba} links back to sector {}",
                ext.start + next.start
            )));
        }
        if count + 1 >= MAX_LOGICAL {
            return Err(Error::Table(format!(
                "the EBR chain holds more than {MAX_LOGICAL} logical partitions"
            )));
        }
        if logical_found.len() >= max {
            return Ok(logical_found);
        }
        rel = next.start;
    }
    Ok(logical_found)
}

/// A 16-byte MBR/EBR partition entry, as the chain walk reads it.
struct RawEntry {
    active: bool,
    sys: u8,
    start: u64,
    sectors: u64,
}

impl RawEntry {
    /// The partition this entry describes, numbered `number`; `base` is
    /// the sector its start counts from (an EBR's own sector, or 0).
    fn partition(&self, number: u32, base: u64) -> Partition {
        Partition {
            number,
            kind: PartitionType::Mbr(self.sys),
            start: base + self.start,
            sectors: self.sectors,
            active: self.active,
        }
    }
}

fn entry(sector: &[u8; 512], i: usize) -> RawEntry {
    let off = 446 + 16 * i;
    let le =
        |o: usize| u32::from_le_bytes([sector[o], sector[o + 1], sector[o + 2], sector[o + 3]]);
    RawEntry {
        active: sector[off] & 0x80 != 0,
        sys: sector[off + 4],
        start: u64::from(le(off + 8)),
        sectors: u64::from(le(off + 12)),
    }
}

fn read_gpt(source: &Source, disk_sectors: u64) -> Result<PartitionTable> {
    // The gpt crate trusts the entry size and count of a header whose CRC
    // it has yet to check; refuse absurd values before it sees them.
    for lba in [1, disk_sectors - 1] {
        let header = source.read_sector(lba, "a GPT header")?;
        if &header[..8] != b"EFI PART" {
            continue;
        }
        let le =
            |o: usize| u32::from_le_bytes([header[o], header[o + 1], header[o + 2], header[o + 3]]);
        let (count, size) = (le(80), le(84));
        if size != GPT_ENTRY_SIZE || count > MAX_GPT_ENTRIES {
            return Err(Error::Table(format!(
                "the GPT header at sector {lba} declares {count} entries of {size} bytes \
                 (esxstick reads up to {MAX_GPT_ENTRIES} entries of {GPT_ENTRY_SIZE} bytes)"
            )));
        }
    }
    let disk = gpt::GptConfig::new()
        .writable(false)
        .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
        .open_from_device(source.reader())
        .map_err(|e| Error::Table(gpt_message(&e)))?;
    let partitions = disk
        .partitions()
        .iter()
        .map(|(number, p)| {
            let sectors = p
                .last_lba
                .checked_sub(p.first_lba)
                .and_then(|n| n.checked_add(1))
                .ok_or_else(|| {
                    Error::Table(format!(
                        "GPT partition {number} ends (sector {}) before it starts (sector {})",
                        p.last_lba, p.first_lba
                    ))
                })?;
            Ok(Partition {
                number: *number,
                kind: PartitionType::Gpt(p.part_type_guid.guid.to_string().to_uppercase()),
                start: p.first_lba,
                sectors,
                active: p.flags & (1 << 2) != 0,
            })
        })
        .collect::<Result<_>>()?;
    Ok(PartitionTable {
        scheme: Scheme::Gpt,
        disk_sectors,
        partitions,
        boot_code: Vec::new(),
    })
}

/// Every partition non-empty, inside the disk, logical ones inside their
/// extended partition, and no two data partitions overlapping.
fn check_bounds(table: &PartitionTable) -> Result<()> {
    for p in &table.partitions {
        if p.sectors == 0 {
            return Err(Error::Table(format!(
                "partition {} has zero length",
                p.number
            )));
        }
        if p.start
            .checked_add(p.sectors)
            .is_none_or(|end| end > table.disk_sectors)
        {
            return Err(Error::Table(format!(
                "partition {} (sectors {}..{}) extends past the end of the image \
                 ({} sectors); is the image truncated?",
                p.number,
                p.start,
                p.end(),
                table.disk_sectors
            )));
        }
    }
    if let Some(ext) = table.partitions.iter().find(|p| p.kind.is_extended()) {
        for p in table.partitions.iter().filter(|p| p.number > 4) {
            if p.start < ext.start || p.end() > ext.end() {
                return Err(Error::Table(format!(
                    "logical partition {} lies outside the extended partition {}",
                    p.number, ext.number
                )));
            }
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
                return Err(Error::Table(format!(
                    "partitions {} and {} overlap",
                    a.number, b.number
                )));
            }
        }
    }
    Ok(())
}

/// The gpt crate's error, worded for users ("GPT IO Error: …" reads as
/// a disk failure when it is a damaged table).
fn gpt_message(e: &gpt::GptError) -> String {
    let text = e.to_string().replace("IO Error: ", "");
    if text.starts_with("GPT") {
        text
    } else {
        format!("GPT: {text}")
    }
}

fn read_err(what: &str, offset: u64, source: std::io::Error) -> Error {
    Error::Read {
        what: what.to_string(),
        offset,
        source,
    }
}
