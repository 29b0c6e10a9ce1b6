//! `extract`: copy the boot partition and the active bootbank's files out
//! of an image, with a `sha256sum -c` compatible SHA256SUMS.
//!
//! Files are written into a staging directory inside the target and moved
//! into place only when all of them are complete, SHA256SUMS last; on any
//! error the staging directory is removed, so a failed run never leaves
//! output that looks complete.

use std::convert::Infallible;
use std::fs::{self, File};
use std::io::{self, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::digest::Sha256Writer;
use crate::error::{Error, FatProblem, Result};
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

/// Version of the JSON report `extract --json` prints.
pub const SCHEMA: &str = "esxstick.extract/1";

/// What `extract` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExtractReport {
    /// [`SCHEMA`].
    pub schema: &'static str,
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
    let files = into_dir(dir, force, |staging| stage(source, inv, staging))?;
    Ok(ExtractReport {
        schema: SCHEMA,
        dir: dir.to_path_buf(),
        bank: inv.active_bank.partition,
        files,
    })
}

/// Fills `dir` through `stage`, which writes the files into a staging
/// directory and lists them; they are moved into place, SHA256SUMS
/// (written here) last. A non-empty `dir` is refused unless `force`; on
/// failure nothing is left behind.
pub(crate) fn into_dir(
    dir: &Path,
    force: bool,
    stage: impl FnOnce(&Path) -> Result<Vec<ExtractedFile>>,
) -> Result<Vec<ExtractedFile>> {
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
    let result = fresh_dir(&staging)
        .and_then(|()| stage(&staging))
        .and_then(|files| {
            write_sums(&staging, &files)?;
            publish(&staging, dir, &files)?;
            Ok(files)
        });
    // Best-effort clean-up: the error that matters is the one returned.
    let _ = fs::remove_dir_all(&staging);
    if result.is_err() && created {
        let _ = fs::remove_dir_all(dir);
    }
    result
}

/// An empty directory at `path`, whatever was there.
fn fresh_dir(path: &Path) -> Result<()> {
    if path.exists() {
        fs::remove_dir_all(path).map_err(write_err(path))?;
    }
    fs::create_dir(path).map_err(write_err(path))
}

/// Writes SHA256SUMS for `files` into `staging`.
fn write_sums(staging: &Path, files: &[ExtractedFile]) -> Result<()> {
    let sums: String = files
        .iter()
        .map(|f| format!("{}  {}\n", f.sha256, f.path))
        .collect();
    let sums_path = staging.join(SUMS);
    fs::write(&sums_path, sums).map_err(write_err(&sums_path))
}

/// Writes every output file but SHA256SUMS into `staging`.
fn stage(source: &Source, inv: &Inventory, staging: &Path) -> Result<Vec<ExtractedFile>> {
    let mut files = Vec::new();
    let boot_path = staging.join(BOOT_IMG);
    let mut out = create(&boot_path)?;
    copy_sectors(
        source,
        inv.boot.start,
        inv.boot.sectors,
        &mut out,
        &boot_path,
    )?;
    files.push(finish(out, &boot_path, BOOT_IMG)?);

    let bank = &inv.active_partition()?.partition;
    let volume = Volume::open(source, bank)?;
    for file in volume.files()? {
        let rel = safe_relative_path(&file.path, bank.number)?;
        let path = staging.join(&rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(write_err(parent))?;
        }
        let mut out = create(&path)?;
        volume.copy_file(&file, &mut out)?;
        files.push(finish(out, &path, &file.path)?);
    }
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
    tops.sort_unstable();
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
    let refuse = |problem| Error::Fat {
        partition: bank,
        problem,
    };
    let name = || path.to_string();
    let mut rel = PathBuf::new();
    for part in path.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.contains(['\\', '\0']) {
            return Err(refuse(FatProblem::UnsafeName { name: name() }));
        }
        rel.push(part);
    }
    if [BOOT_IMG, SUMS, STAGING]
        .iter()
        .any(|n| path.eq_ignore_ascii_case(n))
    {
        return Err(refuse(FatProblem::ReservedName { name: name() }));
    }
    Ok(rel)
}

/// Maps an I/O error on `path` to [`Error::Write`].
pub(crate) fn write_err(path: &Path) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Write { path, source }
}

/// Copies `sectors` sectors from `start` of the source into `out`, the
/// file at `path`.
fn copy_sectors(
    source: &Source,
    start: u64,
    sectors: u64,
    out: &mut impl Write,
    path: &Path,
) -> Result<()> {
    let ControlFlow::Continue(()) = source.for_each_chunk(
        start * SECTOR,
        sectors * SECTOR,
        "the boot partition",
        |_, chunk| {
            out.write_all(chunk).map_err(write_err(path))?;
            Ok(ControlFlow::<Infallible>::Continue(()))
        },
    )?;
    Ok(())
}

/// Creates the output file at `path`, to be hashed as it is written.
pub(crate) fn create(path: &Path) -> Result<Sha256Writer<File>> {
    let file = File::create(path).map_err(write_err(path))?;
    Ok(Sha256Writer::new(file))
}

/// Flushes the file at `path` to disk and names it `name` in the report.
pub(crate) fn finish(out: Sha256Writer<File>, path: &Path, name: &str) -> Result<ExtractedFile> {
    let bytes = out.bytes();
    let (file, sha256) = out.finish();
    file.sync_all().map_err(write_err(path))?;
    Ok(ExtractedFile {
        path: name.to_string(),
        bytes,
        sha256,
    })
}
