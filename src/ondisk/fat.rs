//! FAT volumes read in place with fatfs, through a read-only slice of the
//! source: no mounting, no external tools.

use std::convert::Infallible;
use std::io::{self, Read, Write};
use std::ops::ControlFlow;

use serde::Serialize;

use crate::error::{Error, FatProblem, Result};
use crate::image::source::{chunked, Slice, Source, SECTOR};
use crate::ondisk::bpb::{BootSector, FatType};
use crate::ondisk::cache::MetaCache;
use crate::ondisk::fsck;
use crate::ondisk::table::Partition;

/// Most directory entries walked in one volume; a directory whose cluster
/// chain loops would otherwise be walked for ever.
const MAX_ENTRIES: usize = 65_536;
/// Deepest directory nesting walked.
const MAX_DEPTH: usize = 8;

/// Facts about a FAT volume, as reported by `inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FsInfo {
    /// FAT12, FAT16 or FAT32 (by cluster count).
    pub fat_type: FatType,
    /// Volume label from the boot sector, trailing blanks removed.
    pub label: String,
    /// Volume ID (serial number) as 8 hex digits.
    pub volume_id: String,
    /// Bytes per cluster.
    pub cluster_bytes: u32,
    /// Data clusters in the volume.
    pub clusters: u32,
    /// Bytes in clusters that are allocated.
    pub used_bytes: u64,
    /// Bytes in free clusters.
    pub free_bytes: u64,
    /// Sectors from the volume's start to the end of the last cluster a
    /// file or directory owns: a copy of every file reads nothing past it.
    pub data_end_sectors: u64,
}

/// A file found in a FAT volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileEntry {
    /// Path inside the volume, `/`-separated, without a leading `/`.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// An open FAT volume inside a partition of the source.
pub struct Volume<'a> {
    fs: fatfs::FileSystem<MetaCache<Slice<'a>>>,
    partition: u32,
    boot_sector: BootSector,
    scan: fsck::Scan,
}

impl<'a> Volume<'a> {
    /// Opens the FAT file system in `partition` of `source`.
    pub fn open(source: &'a Source, partition: &Partition) -> Result<Volume<'a>> {
        let number = partition.number;
        let bad = |problem| Error::Fat {
            partition: number,
            problem,
        };
        // fatfs trusts cluster numbers and directory chains: a chain out of
        // range makes it panic, a looping directory makes it spin, a size
        // larger than its chain makes it read for ever. So every volume is
        // scanned by hand first, and one with such damage is refused. (A
        // BPB larger than its partition is accepted: a boot partition
        // trimmed as on the hand-made 64 MB stick keeps its size, since
        // shrinking it would change the FAT type; the slice below ends with
        // the partition, and the scan refuses any cluster in use past it.)
        let boot = source.read_sector(partition.start, "a FAT boot sector")?;
        let boot_sector =
            BootSector::parse(&boot).map_err(|reason| bad(FatProblem::NotFat { reason }))?;
        let scan = fsck::scan(source, partition.start, partition.sectors)?;
        if let Some(problem) = scan.unsafe_problem() {
            return Err(bad(FatProblem::Damaged {
                problem: problem.text.clone(),
            }));
        }
        let meta = boot_sector.first_data_sector() * SECTOR;
        let slice = source
            .slice(partition.start, partition.sectors)
            .and_then(|slice| MetaCache::new(slice, meta, true))
            .map_err(|source| bad(FatProblem::Unreadable { source }))?;
        let fs = fatfs::FileSystem::new(slice, fatfs::FsOptions::new())
            .map_err(|source| bad(FatProblem::Unusable { source }))?;
        Ok(Volume {
            fs,
            partition: number,
            boot_sector,
            scan,
        })
    }

    fn err(&self, problem: FatProblem) -> Error {
        Error::Fat {
            partition: self.partition,
            problem,
        }
    }

    /// Label, volume ID, cluster size and usage (bad clusters count as
    /// neither used nor free).
    pub fn info(&self) -> Result<FsInfo> {
        let bs = &self.boot_sector;
        let (clusters, cluster) = (bs.clusters(), bs.cluster_bytes());
        let free = u64::from(self.scan.free_clusters);
        let used = u64::from(clusters) - free - u64::from(self.scan.bad_clusters);
        Ok(FsInfo {
            fat_type: bs.fat_type(),
            label: self.fs.volume_label().trim_end().to_string(),
            volume_id: format!("{:08X}", self.fs.volume_id()),
            cluster_bytes: cluster as u32,
            clusters,
            used_bytes: used * cluster,
            free_bytes: free * cluster,
            data_end_sectors: self.scan.data_end_sectors,
        })
    }

    /// Every file in the volume, depth first, directories before their
    /// contents, in directory order.
    pub fn files(&self) -> Result<Vec<FileEntry>> {
        let mut out = Vec::new();
        let mut seen = 0;
        self.walk(&self.fs.root_dir(), "", 0, &mut seen, &mut out)?;
        Ok(out)
    }

    fn walk(
        &self,
        dir: &fatfs::Dir<'_, MetaCache<Slice<'a>>>,
        prefix: &str,
        depth: usize,
        seen: &mut usize,
        out: &mut Vec<FileEntry>,
    ) -> Result<()> {
        for entry in dir.iter() {
            let entry = entry.map_err(|source| {
                self.err(FatProblem::Directory {
                    dir: prefix.to_string(),
                    source,
                })
            })?;
            *seen += 1;
            if *seen > MAX_ENTRIES {
                return Err(self.err(FatProblem::TooManyEntries { limit: MAX_ENTRIES }));
            }
            let name = entry.file_name();
            if name == "." || name == ".." {
                continue;
            }
            let path = format!("{prefix}{name}");
            if entry.is_dir() {
                if depth >= MAX_DEPTH {
                    return Err(self.err(FatProblem::TooDeep {
                        limit: MAX_DEPTH,
                        path,
                    }));
                }
                self.walk(&entry.to_dir(), &format!("{path}/"), depth + 1, seen, out)?;
            } else if !entry
                .attributes()
                .contains(fatfs::FileAttributes::VOLUME_ID)
            {
                out.push(FileEntry {
                    path,
                    bytes: entry.len(),
                });
            }
        }
        Ok(())
    }

    /// Finds a file in the root directory by name, ignoring case as FAT does.
    pub fn find(&self, name: &str) -> Result<Option<FileEntry>> {
        for entry in self.fs.root_dir().iter().take(MAX_ENTRIES) {
            let entry = entry.map_err(|source| self.err(FatProblem::RootDirectory { source }))?;
            if entry.is_file() && entry.file_name().eq_ignore_ascii_case(name) {
                return Ok(Some(FileEntry {
                    path: entry.file_name(),
                    bytes: entry.len(),
                }));
            }
        }
        Ok(None)
    }

    /// Copies the file at `path` (as returned by [`Volume::files`] or
    /// [`Volume::find`]) into `out`, returning the bytes copied. Fails if
    /// the file ends before its directory entry says it should.
    pub fn copy_file(&self, file: &FileEntry, out: &mut dyn Write) -> Result<u64> {
        let mut reader = self.fs.root_dir().open_file(&file.path).map_err(|source| {
            self.err(FatProblem::Open {
                path: file.path.clone(),
                source,
            })
        })?;
        let copied = copy(&mut reader, out).map_err(|e| match e {
            CopyError::Read(source) => self.err(FatProblem::ReadFile {
                path: file.path.clone(),
                source,
            }),
            CopyError::Write(e) => Error::Write {
                path: file.path.clone().into(),
                source: e,
            },
        })?;
        if copied != file.bytes {
            return Err(self.err(FatProblem::SizeMismatch {
                path: file.path.clone(),
                expected: file.bytes,
                found: copied,
            }));
        }
        Ok(copied)
    }

    /// Reads a small file into memory, refusing anything over `limit` bytes.
    pub fn read_small(&self, file: &FileEntry, limit: u64) -> Result<Vec<u8>> {
        if file.bytes > limit {
            return Err(self.err(FatProblem::TooLarge {
                path: file.path.clone(),
                bytes: file.bytes,
                limit,
            }));
        }
        let mut buf = Vec::with_capacity(file.bytes as usize);
        self.copy_file(file, &mut buf)?;
        Ok(buf)
    }
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// `io::copy` with a large buffer that tells read errors from write
/// errors. The buffer is filled before each write (fatfs reads at most a
/// cluster at a time), so the writer sees few, large writes.
fn copy(reader: &mut dyn Read, out: &mut dyn Write) -> Result<u64, CopyError> {
    let fill = |_, buf: &mut [u8]| {
        let mut filled = 0;
        while let Some(rest) = buf.get_mut(filled..).filter(|r| !r.is_empty()) {
            match reader.read(rest) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(CopyError::Read(e)),
            }
        }
        Ok(filled)
    };
    let write = |_, bytes: &mut [u8]| {
        out.write_all(bytes).map_err(CopyError::Write)?;
        Ok(ControlFlow::<Infallible>::Continue(()))
    };
    let ControlFlow::Continue(total) = chunked(fill, write)?;
    Ok(total)
}
