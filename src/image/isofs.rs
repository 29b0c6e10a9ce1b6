//! The whole file tree of an ISO 9660 medium, listed without mounting it:
//! every file's path (the primary volume descriptor's upper-case 8.3
//! names, as ESXi's installer media carry them) and its extent.
//!
//! Listing goes through the iso9660 crate (already used for the ESXi 4
//! media in [`crate::image::iso`]): it walks directories and gives each
//! entry's extent, which is all a copy needs — the bytes are then read
//! straight from the extent, streaming. The crate does not bound what it
//! is given, so the walk here does: at most [`MAX_ENTRIES`] entries,
//! [`MAX_DEPTH`] levels, every directory extent listed once (a
//! directory pointing back at an ancestor is refused, not followed), and
//! every extent inside the medium.

use std::collections::HashSet;
use std::fs::File;

use serde::Serialize;

use crate::error::{Error, IsoProblem, Result};

/// ISO 9660 logical block size.
pub const BLOCK: u64 = 2048;
/// Entries listed, at most (ESXi 8 installers carry about 200 files).
pub const MAX_ENTRIES: usize = 20_000;
/// Directory levels below the root, at most (ISO 9660 allows 8).
pub const MAX_DEPTH: usize = 8;

/// One file on the medium.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IsoFile {
    /// Its path below the root, `/`-separated, as on the medium
    /// (`EFI/BOOT/BOOTX64.EFI`), without the `;1` version.
    pub path: String,
    /// Byte offset of its extent on the medium.
    pub start: u64,
    /// Its size in bytes.
    pub bytes: u64,
}

/// The files and directories of an ISO 9660 medium.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IsoTree {
    /// Every file, in the order the directories list them (parents
    /// before children).
    pub files: Vec<IsoFile>,
    /// Every directory below the root, parents first.
    pub dirs: Vec<String>,
}

impl IsoTree {
    /// Lists the tree of the ISO 9660 medium in `file` of `len` bytes.
    pub fn read(file: &File, len: u64) -> Result<IsoTree> {
        let iso =
            iso9660::ISO9660::new(file.try_clone().map_err(unreadable)?).map_err(unreadable)?;
        let Some(iso9660::DirectoryEntry::Directory(root)) = iso.open("/").map_err(unreadable)?
        else {
            return Err(Error::Iso {
                problem: IsoProblem::NoRoot,
            });
        };
        let mut walk = Walk {
            tree: IsoTree::default(),
            seen: HashSet::new(),
            entries: 0,
            len,
        };
        let at = root_extent(&iso)?;
        walk.dir(&root, at, "", 0)?;
        Ok(walk.tree)
    }

    /// The file at `path`, matched without regard to case.
    pub fn file(&self, path: &str) -> Option<&IsoFile> {
        self.files
            .iter()
            .find(|f| f.path.eq_ignore_ascii_case(path))
    }

    /// Bytes of all files.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

/// A walk of the directory tree, bounded as the module says.
struct Walk {
    tree: IsoTree,
    /// Directory extents listed so far.
    seen: HashSet<u32>,
    entries: usize,
    /// The medium's size: every extent must lie inside it.
    len: u64,
}

impl Walk {
    /// Lists directory `dir`, whose extent starts at block `at`, at
    /// `prefix` (`""` for the root, else `A/B/`), `depth` levels down.
    fn dir(
        &mut self,
        dir: &iso9660::ISODirectory<File>,
        at: u32,
        prefix: &str,
        depth: usize,
    ) -> Result<()> {
        if !self.seen.insert(at) {
            return Err(malformed(format!("directory {prefix} is listed twice")));
        }
        for entry in dir.contents() {
            let entry = entry.map_err(unreadable)?;
            let name = entry.identifier();
            if name == "." || name == ".." {
                continue;
            }
            self.entries += 1;
            if self.entries > MAX_ENTRIES {
                return Err(malformed(format!("more than {MAX_ENTRIES} entries")));
            }
            check_name(name)?;
            let (at, length) = (entry.header().extent_loc, entry.header().extent_length);
            let start = u64::from(at) * BLOCK;
            let bytes = u64::from(length);
            let path = format!("{prefix}{name}");
            if start.saturating_add(bytes) > self.len {
                return Err(malformed(format!("{path} lies past the end of the medium")));
            }
            match entry {
                iso9660::DirectoryEntry::Directory(sub) => {
                    if depth >= MAX_DEPTH {
                        return Err(malformed(format!("{path}: more than {MAX_DEPTH} levels")));
                    }
                    self.tree.dirs.push(path.clone());
                    self.dir(&sub, at, &format!("{path}/"), depth + 1)?;
                }
                iso9660::DirectoryEntry::File(_) => {
                    self.tree.files.push(IsoFile { path, start, bytes })
                }
            }
        }
        Ok(())
    }
}

/// The block where the root directory's extent starts.
fn root_extent(iso: &iso9660::ISO9660<File>) -> Result<u32> {
    match iso.open("/").map_err(unreadable)? {
        Some(entry) => Ok(entry.header().extent_loc),
        None => Err(Error::Iso {
            problem: IsoProblem::NoRoot,
        }),
    }
}

/// Refuses a name that could not be a file name on a stick (or a host):
/// empty, with a path separator, or with control characters.
fn check_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.contains(['/', '\\'])
        || name.chars().any(char::is_control)
        || name == "."
        || name == "..";
    if bad {
        return Err(malformed(format!("unsafe file name {name:?}")));
    }
    Ok(())
}

/// The ISO 9660 file system cannot be read.
fn unreadable(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Iso {
        problem: IsoProblem::Unreadable {
            source: Box::new(e),
        },
    }
}

/// The file system is malformed in a way the walk refuses.
fn malformed(what: String) -> Error {
    unreadable(std::io::Error::new(std::io::ErrorKind::InvalidData, what))
}
