//! Installer ISOs: the ESXi dd image found on the medium without
//! mounting it. ESXi 4.1 media carry `imagedd.bz2` and `imagedd.md5` at
//! the root; ESXi 4.0 media carry the `.dd.bz2` inside a tar archive
//! (`image.tgz`); ESXi 5 and later installers carry no dd image at all.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crate::error::{Error, IsoProblem, Result};
use crate::image::compress::{self, Compression};
use crate::image::stream::Counting;

/// ISO 9660 logical block size.
const BLOCK: u64 = 2048;
/// Where the first volume descriptor's "CD001" lies.
const MAGIC_AT: u64 = 16 * BLOCK + 1;
/// Root directory entries looked at, at most.
const MAX_ENTRIES: usize = 4096;
/// Largest .md5 file read.
const MAX_MD5_FILE: u64 = 4096;

/// Whether `file` holds an ISO 9660 file system.
pub fn is_iso(file: &File) -> bool {
    let mut magic = [0; 5];
    std::os::unix::fs::FileExt::read_exact_at(file, &mut magic, MAGIC_AT).is_ok()
        && &magic == b"CD001"
}

/// The dd image found on an ISO: its bytes as a stream, and where it lies.
pub struct Found {
    /// The image's bytes, as stored (compressed or not).
    pub reader: Box<dyn BufRead + Send>,
    /// How the image itself is compressed, if at all.
    pub compression: Option<Compression>,
    /// Where it lies, e.g. `imagedd.bz2 on the ISO`.
    pub container: String,
    /// Bytes read through `consumed` to read the whole image.
    pub compressed_bytes: u64,
    /// The MD5 the medium gives for the decompressed image (hex), and
    /// the file that gives it.
    pub md5: Option<(String, String)>,
}

/// A root directory entry: lower-case name, extent, whether a directory.
struct Entry {
    name: String,
    start: u64,
    bytes: u64,
    dir: bool,
}

/// Finds the dd image on the ISO in `file`; `consumed` counts the bytes
/// read from the medium to stream it.
pub fn find_image(file: &File, consumed: Arc<AtomicU64>) -> Result<Found> {
    let iso = iso9660::ISO9660::new(file.try_clone().map_err(unreadable)?).map_err(unreadable)?;
    let Some(iso9660::DirectoryEntry::Directory(root)) = iso.open("/").map_err(unreadable)? else {
        return Err(iso_error(IsoProblem::NoRoot));
    };
    let mut entries = Vec::new();
    for entry in root.contents().take(MAX_ENTRIES) {
        let entry = entry.map_err(unreadable)?;
        let header = entry.header();
        entries.push(Entry {
            name: entry.identifier().to_ascii_lowercase(),
            start: u64::from(header.extent_loc) * BLOCK,
            bytes: u64::from(header.extent_length),
            dir: matches!(entry, iso9660::DirectoryEntry::Directory(_)),
        });
    }
    let files = || entries.iter().filter(|e| !e.dir);
    if let Some(image) = files().find(|e| is_image_name(&e.name)) {
        let md5_names = [
            format!("{}.md5", stem(&image.name)),
            format!("{}.md5", image.name),
        ];
        let md5 = match files().find(|e| md5_names.contains(&e.name)) {
            Some(f) => Some((read_md5(file, f)?, f.name.clone())),
            None => None,
        };
        let mut reader: Box<dyn BufRead + Send> = Box::new(BufReader::new(Counting::new(
            extent(file, image)?,
            consumed,
        )));
        let compression = compress::sniff(&mut reader).map_err(unreadable)?;
        return Ok(Found {
            reader,
            compression,
            container: format!("{} on the ISO", image.name),
            compressed_bytes: image.bytes,
            md5,
        });
    }
    for archive in files().filter(|e| is_archive_name(&e.name)) {
        let reader = BufReader::new(Counting::new(extent(file, archive)?, Arc::clone(&consumed)));
        if let Some(found) = find_in_tar(reader, archive)? {
            return Ok(found);
        }
    }
    Err(iso_error(IsoProblem::NoImage {
        has_archives: entries.iter().any(|e| is_archive_name(&e.name)),
    }))
}

/// An [`Error::Iso`].
fn iso_error(problem: IsoProblem) -> Error {
    Error::Iso { problem }
}

/// The ISO 9660 file system cannot be read.
fn unreadable(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    iso_error(IsoProblem::Unreadable {
        source: Box::new(e),
    })
}

/// Looks through a tar archive (gzip-compressed or not) for a dd image
/// member; the returned reader starts at the member's first byte.
fn find_in_tar<R: BufRead + Send + 'static>(
    mut reader: R,
    archive: &Entry,
) -> Result<Option<Found>> {
    let bad = |source| {
        iso_error(IsoProblem::Archive {
            archive: archive.name.clone(),
            source,
        })
    };
    let outer = compress::sniff(&mut reader).map_err(bad)?;
    let plain: Box<dyn Read + Send> = match outer {
        Some(c) => c.decoder(reader).map_err(bad)?,
        None => Box::new(reader),
    };
    let mut tar = tar::Archive::new(plain);
    let mut member = None;
    for entry in tar.entries().map_err(bad)? {
        let entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        let name = path
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if entry.header().entry_type().is_file() && is_image_name(&name) {
            member = Some((path, entry.size()));
            break;
        }
    }
    let Some((path, bytes)) = member else {
        return Ok(None);
    };
    // The archive has read the member's header and nothing of its data.
    let mut reader: Box<dyn BufRead + Send> =
        Box::new(BufReader::new(tar.into_inner().take(bytes)));
    let compression = compress::sniff(&mut reader).map_err(bad)?;
    Ok(Some(Found {
        reader,
        compression: compression.or(outer),
        container: format!("{path} in {} on the ISO", archive.name),
        compressed_bytes: archive.bytes,
        md5: None,
    }))
}

/// A reader over one file's extent on the ISO.
fn extent(file: &File, entry: &Entry) -> Result<io::Take<File>> {
    let bad = |source| file_error(entry, source);
    let mut f = file.try_clone().map_err(bad)?;
    f.seek(SeekFrom::Start(entry.start)).map_err(bad)?;
    Ok(f.take(entry.bytes))
}

/// The MD5 (32 hex digits) that an `.md5` file gives first.
fn read_md5(file: &File, entry: &Entry) -> Result<String> {
    let mut text = String::new();
    extent(file, entry)?
        .take(MAX_MD5_FILE)
        .read_to_string(&mut text)
        .map_err(|source| file_error(entry, source))?;
    text.split_whitespace()
        .next()
        .filter(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| {
            iso_error(IsoProblem::NoMd5 {
                file: entry.name.clone(),
            })
        })
}

/// A file on the ISO cannot be read.
fn file_error(entry: &Entry, source: io::Error) -> Error {
    iso_error(IsoProblem::File {
        file: entry.name.clone(),
        source,
    })
}

/// Whether a file name is one of a dd image: `imagedd`, `imagedd.bz2`,
/// `*.dd`, `*.dd.bz2` (or another compression suffix).
pub(crate) fn is_image_name(name: &str) -> bool {
    let stem = stem(name);
    !name.ends_with(".md5") && (stem == "imagedd" || stem.ends_with(".dd"))
}

/// A name without its compression suffix.
fn stem(name: &str) -> &str {
    [".bz2", ".gz", ".xz", ".zst"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name)
}

/// Whether a file name is one of a tar archive that may hold the image.
fn is_archive_name(name: &str) -> bool {
    [".tgz", ".tar.gz", ".tar"]
        .iter()
        .any(|s| name.ends_with(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names() {
        for name in [
            "imagedd.bz2",
            "imagedd",
            "vmware-vmvisor-big-164009-x86_64.dd.bz2",
            "x.dd",
        ] {
            assert!(is_image_name(name), "{name}");
        }
        for name in ["imagedd.md5", "image.tgz", "isolinux.cfg", "dd", "add.bz2"] {
            assert!(!is_image_name(name), "{name}");
        }
    }
}
