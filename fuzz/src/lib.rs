//! Helpers shared by the fuzz targets: turning fuzz bytes into a disk
//! image on a real file, since `esxstick::image::source::Source` reads files.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use esxstick::image::source::Source;

/// Bytes in a sector.
pub const SECTOR: u64 = 512;

/// One scratch image per process (and per target), rewritten for every
/// input: truncated to nothing, then filled with the given chunks and
/// extended (sparsely) to its size.
pub struct Scratch {
    path: PathBuf,
    file: File,
}

impl Scratch {
    /// The scratch file for target `name` in this process, under
    /// `std::env::temp_dir()` (set TMPDIR=/dev/shm for speed).
    pub fn new(name: &str) -> Scratch {
        let path =
            std::env::temp_dir().join(format!("esxstick-fuzz-{name}-{}.img", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .expect("create the scratch image");
        Scratch { path, file }
    }

    /// The scratch file's path.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Rewrites the scratch file to hold exactly `data`.
    pub fn fill(&self, data: &[u8]) {
        self.file.set_len(0).expect("truncate the scratch file");
        self.file
            .write_all_at(data, 0)
            .expect("write the scratch file");
    }

    /// Rewrites the image: `len` bytes, zero except for `chunks`
    /// (byte offset, bytes), and opens it as a source.
    pub fn image(&self, len: u64, chunks: &[(u64, &[u8])]) -> Source {
        self.file.set_len(0).expect("truncate the scratch image");
        for (at, bytes) in chunks {
            self.file
                .write_all_at(bytes, *at)
                .expect("write the scratch image");
        }
        self.file.set_len(len).expect("size the scratch image");
        Source::open(&self.path).expect("open the scratch image")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A 16-byte MBR/EBR partition entry.
pub fn mbr_entry(sys: u8, start: u32, sectors: u32) -> [u8; 16] {
    let mut e = [0u8; 16];
    e[4] = sys;
    e[8..12].copy_from_slice(&start.to_le_bytes());
    e[12..16].copy_from_slice(&sectors.to_le_bytes());
    e
}

/// An MBR (or EBR) sector with `entries` in slots `(index 0..4, entry)`
/// and the 55 AA signature.
pub fn mbr(entries: &[(usize, [u8; 16])]) -> [u8; 512] {
    let mut s = [0u8; 512];
    for (i, e) in entries {
        s[446 + 16 * i..462 + 16 * i].copy_from_slice(e);
    }
    s[510] = 0x55;
    s[511] = 0xaa;
    s
}

/// Sectors needed to hold `len` bytes (at least one).
pub fn sectors(len: usize) -> u64 {
    (len as u64).div_ceil(SECTOR).max(1)
}
