//! `extract`: copy the boot partition and the active bootbank's files out
//! of an image, with a `sha256sum -c` compatible SHA256SUMS.
//!
//! Files are written into a staging directory inside the target and moved
//! into place only when all of them are complete, SHA256SUMS last; on any
//! error the staging directory is removed, so a failed run never leaves
//! output that looks complete.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::esxi::inventory::Inventory;
use crate::image::source::{Source, SECTOR};
use crate::ondisk::fat::Volume;

/// Name of the raw boot partition image in the output.
pub const BOOT_IMG: &str = "boot.img";
/// Name of the checksum list in the output.
pub const SUMS: &str = "SHA256SUMS";
/// Staging directory inside the output directory.
const STAGING: &str = ".esxstick-partial";

/// One file written by `extract`.
#[derive(Debug, Clone, Serialize)]
pub struct ExtractedFile {
    /// Path relative to the output directory.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 as lower-case hex.
    pub sha256: String,
}

/// What `extract` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExtractReport {
    /// The output directory.
    pub dir: PathBuf,
    /// The bank the files came from.
    pub bank: u32,
    /// Every file written, in SHA256SUMS order (SHA256SUMS itself excluded).
    pub files: Vec<ExtractedFile>,
}

/// Extracts the boot partition and the active bank of `inv` into `dir`.
/// A non-empty `dir` is refused unless `force`.
pub fn extract(source: &Source, inv: &Inventory, dir: &Path, force: bool) -> Result<ExtractReport> {
    inv.check_complete()?;
    let created = !dir.exists();
    if created {
        fs::create_dir_all(dir).map_err(write_err(dir))?;
    } else {
        let mut entries = fs::read_dir(dir).map_err(write_err(dir))?;
        if !force && entries.next().is_some() {
            return Err(Error::OutputNotEmpty {
                dir: dir.to_path_buf(),
            });
        }
    }
    let staging = dir.join(STAGING);
    let result = stage(source, inv, &staging).and_then(|files| {
        publish(&staging, dir, &files)?;
        Ok(files)
    });
    // Best-effort clean-up: the error that matters is the one returned.
    let _ = fs::remove_dir_all(&staging);
    match result {
        Ok(files) => Ok(ExtractReport {
            dir: dir.to_path_buf(),
            bank: inv.active_bank.partition,
            files,
        }),
        Err(e) => {
            if created {
                let _ = fs::remove_dir_all(dir);
            }
            Err(e)
        }
    }
}

/// Writes every output file into `staging`, SHA256SUMS included.
fn stage(source: &Source, inv: &Inventory, staging: &Path) -> Result<Vec<ExtractedFile>> {
    if staging.exists() {
        fs::remove_dir_all(staging).map_err(write_err(staging))?;
    }
    fs::create_dir(staging).map_err(write_err(staging))?;

    let mut files = Vec::new();
    let boot_path = staging.join(BOOT_IMG);
    let mut out = HashingFile::create(&boot_path)?;
    copy_sectors(source, inv.boot.start, inv.boot.sectors, &mut out)?;
    files.push(out.finish(BOOT_IMG)?);

    let bank = inv
        .partition(inv.active_bank.partition)
        .map(|p| p.partition.clone())
        .ok_or_else(|| Error::NoBootbank("the active bank has no partition".to_string()))?;
    let volume = Volume::open(source, &bank)?;
    for file in volume.files()? {
        let rel = safe_relative_path(&file.path, bank.number)?;
        let path = staging.join(&rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(write_err(parent))?;
        }
        let mut out = HashingFile::create(&path)?;
        volume.copy_file(&file, &mut out)?;
        files.push(out.finish(&file.path)?);
    }

    let sums: String = files
        .iter()
        .map(|f| format!("{}  {}\n", f.sha256, f.path))
        .collect();
    let sums_path = staging.join(SUMS);
    fs::write(&sums_path, sums).map_err(write_err(&sums_path))?;
    Ok(files)
}

/// Moves the staged files into `dir`, SHA256SUMS last (and any old one
/// removed first), so the sums never describe files that are not there.
fn publish(staging: &Path, dir: &Path, files: &[ExtractedFile]) -> Result<()> {
    let old_sums = dir.join(SUMS);
    if old_sums.exists() {
        fs::remove_file(&old_sums).map_err(write_err(&old_sums))?;
    }
    let mut tops: Vec<&str> = files
        .iter()
        .map(|f| f.path.split('/').next().unwrap_or(&f.path))
        .collect();
    tops.dedup();
    tops.push(SUMS);
    for top in tops {
        let (from, to) = (staging.join(top), dir.join(top));
        if to.is_dir() && !from.is_dir() {
            return Err(Error::Write {
                path: to,
                source: io::Error::new(io::ErrorKind::AlreadyExists, "a directory is in the way"),
            });
        }
        fs::rename(&from, &to).map_err(write_err(&to))?;
    }
    Ok(())
}

/// The host path for a file name from the image: plain components only,
/// and none of the names `extract` writes itself.
fn safe_relative_path(path: &str, bank: u32) -> Result<PathBuf> {
    let unsafe_name = |why: &str| Error::Fat {
        partition: bank,
        message: format!("the bank holds a file named {path:?}, which {why}"),
    };
    let mut rel = PathBuf::new();
    for part in path.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.contains(['\\', '\0']) {
            return Err(unsafe_name("is not a safe file name"));
        }
        rel.push(part);
    }
    if [BOOT_IMG, SUMS, STAGING]
        .iter()
        .any(|n| path.eq_ignore_ascii_case(n))
    {
        return Err(unsafe_name("extract writes itself"));
    }
    Ok(rel)
}

/// Maps an I/O error on `path` to [`Error::Write`].
fn write_err(path: &Path) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Write { path, source }
}

/// Copies `sectors` sectors from `start` of the source into `out`.
fn copy_sectors(source: &Source, start: u64, sectors: u64, out: &mut HashingFile) -> Result<()> {
    let mut buf = vec![0; 1 << 20];
    let (mut offset, end) = (start * SECTOR, (start + sectors) * SECTOR);
    while offset < end {
        let n = buf.len().min((end - offset) as usize);
        let chunk = &mut buf[..n];
        source.read_at(offset, chunk, "the boot partition")?;
        out.write_all(chunk).map_err(write_err(&out.path))?;
        offset += n as u64;
    }
    Ok(())
}

/// A file being written, hashed on the way.
struct HashingFile {
    path: PathBuf,
    file: File,
    hash: Sha256,
    bytes: u64,
}

impl HashingFile {
    fn create(path: &Path) -> Result<HashingFile> {
        let file = File::create(path).map_err(write_err(path))?;
        Ok(HashingFile {
            path: path.to_path_buf(),
            file,
            hash: Sha256::new(),
            bytes: 0,
        })
    }

    /// Flushes to disk and names the result `name` in the report.
    fn finish(self, name: &str) -> Result<ExtractedFile> {
        self.file.sync_all().map_err(write_err(&self.path))?;
        Ok(ExtractedFile {
            path: name.to_string(),
            bytes: self.bytes,
            sha256: format!("{:x}", self.hash.finalize()),
        })
    }
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}
