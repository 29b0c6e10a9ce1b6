//! A read-only consistency check of a FAT12/16 volume, by hand: fatfs
//! reads volumes but does not check them, and keeps cluster numbers
//! private. Checks that the FAT copies agree, every chain stays in range,
//! ends properly and never loops, no cluster belongs to two files, every
//! file's chain length matches its size, and no cluster is lost.

use crate::error::Result;
use crate::image::source::{Source, SECTOR};
use crate::ondisk::bpb::{fat_entry, BootSector, FatType};
use crate::ondisk::le;

/// Deepest directory nesting followed.
const MAX_DEPTH: usize = 8;
/// Largest directory read (65,536 entries).
const MAX_DIR_BYTES: u64 = 2 << 20;
/// Most problems listed before the check stops reporting.
const MAX_PROBLEMS: usize = 20;
/// Bytes in a directory entry.
const DIR_ENTRY_BYTES: usize = 32;
/// Directory entry offset of the attribute byte.
const DIR_ATTR_AT: usize = 11;
/// Directory entry offset of the first cluster (low 16 bits).
const DIR_CLUSTER_AT: usize = 26;
/// Directory entry offset of the file size.
const DIR_SIZE_AT: usize = 28;

/// Something wrong with a FAT volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What, naming the file or cluster at fault.
    pub text: String,
    /// Whether reading the volume with fatfs would be unsafe (a chain out
    /// of range, looping, longer or shorter than its file): such a volume
    /// is refused. Cosmetic problems (FAT copies differing, lost clusters)
    /// are only reported.
    pub unsafe_to_read: bool,
}

/// What a scan of a FAT volume found.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// Every problem (at most a screenful).
    pub problems: Vec<Problem>,
    /// Clusters marked free.
    pub free_clusters: u32,
    /// Clusters marked bad.
    pub bad_clusters: u32,
    /// Sectors from the volume's start to the end of the last cluster
    /// that a file or directory owns (the first data sector when none
    /// does): everything a copy of the files reads lies before it.
    pub data_end_sectors: u64,
}

impl Scan {
    /// The first problem that makes the volume unsafe to read, if any.
    pub fn unsafe_problem(&self) -> Option<&Problem> {
        self.problems.iter().find(|p| p.unsafe_to_read)
    }
}

/// Scans the FAT12/16 volume at `start` of `source`, `sectors` long:
/// reads each FAT once, walks every directory and chain. Errors only when
/// the volume cannot be read at all.
pub fn scan(source: &Source, start: u64, sectors: u64) -> Result<Scan> {
    let mut out = Scan::default();
    let boot = source.read_sector(start, "a FAT boot sector")?;
    let fatal = |text: String| Problem {
        text,
        unsafe_to_read: true,
    };
    let bs = match BootSector::parse(&boot) {
        Ok(bs) => bs,
        Err(why) => {
            out.problems.push(fatal(format!("boot sector: {why}")));
            return Ok(out);
        }
    };
    if bs.fat_type() == FatType::Fat32 && u64::from(bs.total_sectors) > sectors {
        out.problems.push(fatal(format!(
            "its boot sector claims {} sectors, more than its partition's {sectors}",
            bs.total_sectors
        )));
        return Ok(out);
    }
    if bs.fat_type() == FatType::Fat32 {
        out.problems.push(fatal(
            "FAT32 (ESXi's boot partition and bootbanks are FAT16)".into(),
        ));
        return Ok(out);
    }
    if bs.first_data_sector() >= sectors {
        out.problems.push(fatal(format!(
            "its metadata ({} sectors) does not fit the partition ({sectors} sectors)",
            bs.first_data_sector()
        )));
        return Ok(out);
    }
    // Only the entries that describe clusters are read (a FAT may be
    // declared larger), and at most two copies are compared.
    let needed = bs.fat_bytes_needed();
    let mut fats = Vec::new();
    for n in 0..bs.fats.min(2) {
        let range = bs.fat_range(n);
        let len = (range.len() as u64).min(needed) as usize;
        let mut fat = vec![0; len];
        source.read_at(start * SECTOR + range.start as u64, &mut fat, "a FAT")?;
        fats.push(fat);
    }
    let mut checker = Checker {
        source,
        start,
        sectors,
        bs: &bs,
        fat: fats.first().cloned().unwrap_or_default(),
        owner: vec![false; bs.clusters() as usize + 2],
        problems: Vec::new(),
    };
    if fats.windows(2).any(|w| w[0] != w[1]) {
        checker.problem(false, "the FAT copies differ".into());
    }
    let root_start =
        start + u64::from(bs.reserved_sectors) + u64::from(bs.fats) * u64::from(bs.sectors_per_fat);
    let mut root = vec![0; usize::from(bs.root_entries) * DIR_ENTRY_BYTES];
    source.read_at(root_start * SECTOR, &mut root, "the root directory")?;
    checker.directory(&root, "", 0)?;
    checker.lost_clusters();
    let last_owned = checker.owner.iter().rposition(|&owned| owned);
    out.data_end_sectors = bs.first_data_sector()
        + last_owned.map_or(0, |c| (c as u64 - 1) * u64::from(bs.sectors_per_cluster));
    let bad = bs.fat_type().bad_cluster();
    for c in 2..=bs.clusters() + 1 {
        match checker.entry(c) {
            0 => out.free_clusters += 1,
            e if e == bad => out.bad_clusters += 1,
            _ => {}
        }
    }
    out.problems = checker.problems;
    Ok(out)
}

/// The problems of the volume at `start`, as text; empty means
/// consistent.
pub fn check(source: &Source, start: u64, sectors: u64) -> Result<Vec<String>> {
    Ok(scan(source, start, sectors)?
        .problems
        .into_iter()
        .map(|p| p.text)
        .collect())
}

struct Checker<'a> {
    source: &'a Source,
    start: u64,
    sectors: u64,
    bs: &'a BootSector,
    fat: Vec<u8>,
    owner: Vec<bool>,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn problem(&mut self, unsafe_to_read: bool, text: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Problem {
                text,
                unsafe_to_read,
            });
        }
    }

    fn entry(&self, cluster: u32) -> u32 {
        fat_entry(&self.fat, self.bs.fat_type(), cluster)
    }

    fn end_of_chain(&self) -> u32 {
        self.bs.fat_type().bad_cluster() + 1
    }

    /// Follows and claims the chain from `first`; the clusters in order.
    fn chain(&mut self, first: u32, path: &str) -> Vec<u32> {
        let (max, eoc) = (self.bs.clusters() + 1, self.end_of_chain());
        let mut chain = Vec::new();
        let mut cluster = first;
        loop {
            if !(2..=max).contains(&cluster) {
                self.problem(true, format!("/{path}: cluster {cluster} is out of range"));
                break;
            }
            if self.owner[cluster as usize] {
                let what = if chain.contains(&cluster) {
                    "loops at"
                } else {
                    "is cross-linked at"
                };
                self.problem(
                    true,
                    format!("/{path}: its cluster chain {what} cluster {cluster}"),
                );
                break;
            }
            self.owner[cluster as usize] = true;
            chain.push(cluster);
            let end = self.bs.first_data_sector()
                + u64::from(cluster - 1) * u64::from(self.bs.sectors_per_cluster);
            if end > self.sectors {
                self.problem(
                    true,
                    format!("/{path}: cluster {cluster} lies past the end of the partition"),
                );
                break;
            }
            let next = self.entry(cluster);
            if next >= eoc {
                break;
            }
            if next == 0 || next == eoc - 1 {
                let kind = if next == 0 { "a free" } else { "a bad" };
                self.problem(
                    true,
                    format!("/{path}: its chain runs into {kind} cluster after {cluster}"),
                );
                break;
            }
            cluster = next;
        }
        chain
    }

    fn directory(&mut self, data: &[u8], prefix: &str, depth: usize) -> Result<()> {
        let cluster_bytes = self.bs.cluster_bytes();
        for raw in data.chunks_exact(DIR_ENTRY_BYTES) {
            let (first_byte, attr) = (raw[0], raw[DIR_ATTR_AT]);
            if first_byte == 0 {
                break;
            }
            if first_byte == 0xe5 || attr == 0x0f || attr & 0x08 != 0 {
                continue; // deleted, long-name part, volume label
            }
            let name = short_name(raw);
            if name == "." || name == ".." {
                continue;
            }
            let path = format!("{prefix}{name}");
            let first = u32::from(le::u16_at(raw, DIR_CLUSTER_AT));
            let size = u64::from(le::u32_at(raw, DIR_SIZE_AT));
            let is_dir = attr & 0x10 != 0;
            if first == 0 {
                if size != 0 || is_dir {
                    self.problem(true, format!("/{path}: has {size} bytes but no clusters"));
                }
                continue;
            }
            let chain = self.chain(first, &path);
            if is_dir {
                if depth >= MAX_DEPTH || chain.len() as u64 * cluster_bytes > MAX_DIR_BYTES {
                    self.problem(true, format!("/{path}: directory too deep or too large"));
                    continue;
                }
                let mut contents = vec![0; chain.len() * cluster_bytes as usize];
                for (i, &c) in chain.iter().enumerate() {
                    let sector = self.start
                        + self.bs.first_data_sector()
                        + u64::from(c - 2) * u64::from(self.bs.sectors_per_cluster);
                    let slot =
                        &mut contents[i * cluster_bytes as usize..(i + 1) * cluster_bytes as usize];
                    self.source.read_at(sector * SECTOR, slot, "a directory")?;
                }
                self.directory(&contents, &format!("{path}/"), depth + 1)?;
            } else if chain.len() as u64 != size.div_ceil(cluster_bytes) {
                self.problem(
                    true,
                    format!(
                        "/{path}: {size} bytes need {} clusters but its chain has {}",
                        size.div_ceil(cluster_bytes),
                        chain.len()
                    ),
                );
            }
        }
        Ok(())
    }

    /// Clusters in use in the FAT that no file or directory owns.
    fn lost_clusters(&mut self) {
        let bad = self.end_of_chain() - 1;
        let lost = (2..=self.bs.clusters() + 1)
            .filter(|&c| {
                let e = self.entry(c);
                e != 0 && e != bad && !self.owner[c as usize]
            })
            .count();
        if lost > 0 {
            self.problem(
                false,
                format!("{lost} clusters are in use but belong to no file"),
            );
        }
    }
}

/// "VMKBOOT GZ " → "VMKBOOT.GZ".
fn short_name(raw: &[u8]) -> String {
    let base = String::from_utf8_lossy(&raw[..8]).trim_end().to_string();
    let ext = String::from_utf8_lossy(&raw[8..11]).trim_end().to_string();
    if ext.is_empty() {
        base
    } else {
        format!("{base}.{ext}")
    }
}
