//! Where the ESXi image is read from: random access over a raw image file
//! or a block device, never written to.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};

use fscommon::StreamSlice;
use serde::Serialize;

use crate::error::{Error, Result};

/// Size of a logical sector; all LBAs in esxstick count these.
pub const SECTOR: u64 = 512;

/// What kind of thing a [`Source`] reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// A regular file holding a raw disk image (`.dd`, `.img`).
    RawImage,
    /// A block device such as an existing stick.
    BlockDevice,
}

/// A read-only, random-access disk image.
#[derive(Debug)]
pub struct Source {
    path: PathBuf,
    file: File,
    len: u64,
    kind: SourceKind,
}

impl Source {
    /// Opens a raw image file or a block device for reading.
    pub fn open(path: &Path) -> Result<Source> {
        let open_err = |source| Error::Open {
            path: path.to_path_buf(),
            source,
        };
        // The type is checked before opening: opening a FIFO would wait
        // for a writer for ever.
        let file_type = std::fs::metadata(path).map_err(open_err)?.file_type();
        let kind = if file_type.is_block_device() {
            SourceKind::BlockDevice
        } else if file_type.is_file() {
            SourceKind::RawImage
        } else {
            return Err(open_err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file or block device",
            )));
        };
        let mut file = File::open(path).map_err(open_err)?;
        // lseek(SEEK_END) gives the size of block devices as well as files.
        let len = file.seek(SeekFrom::End(0)).map_err(open_err)?;
        Ok(Source {
            path: path.to_path_buf(),
            file,
            len,
            kind,
        })
    }

    /// Opens a stick for reading back what was written, bypassing caches
    /// so that a lying cache cannot pass a bad stick: a block device's
    /// buffers are flushed (BLKFLSBUF) and cached pages dropped
    /// (posix_fadvise DONTNEED) before any read.
    pub fn open_uncached(path: &Path) -> Result<Source> {
        let source = Source::open(path)?;
        if source.kind == SourceKind::BlockDevice {
            crate::ioctl::flush_buffers(&source.file).map_err(|e| Error::Open {
                path: path.to_path_buf(),
                source: e,
            })?;
        }
        // Pages still dirty are written first, then dropped: reads that
        // follow come from the medium.
        let _ = source.file.sync_all();
        nix::fcntl::posix_fadvise(
            &source.file,
            0,
            0,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        )
        .map_err(|e| Error::Open {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        Ok(source)
    }

    /// The path the source was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size of the source in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the source holds no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the source is an image file or a block device.
    pub fn kind(&self) -> SourceKind {
        self.kind
    }

    /// Reads exactly `buf.len()` bytes at `offset`; `what` names the data
    /// for the error message (a short read past the end is an error).
    pub fn read_at(&self, offset: u64, buf: &mut [u8], what: &str) -> Result<()> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|source| Error::Read {
                what: what.to_string(),
                offset,
                source,
            })
    }

    /// Reads one 512-byte sector.
    pub fn read_sector(&self, lba: u64, what: &str) -> Result<[u8; SECTOR as usize]> {
        let mut buf = [0; SECTOR as usize];
        let offset = lba.checked_mul(SECTOR).ok_or_else(|| Error::Read {
            what: what.to_string(),
            offset: u64::MAX,
            source: io::ErrorKind::InvalidInput.into(),
        })?;
        self.read_at(offset, &mut buf, what)?;
        Ok(buf)
    }

    /// A read-only view of `sectors` sectors from `start`, for libraries
    /// that want a whole device (fatfs).
    pub fn slice(&self, start: u64, sectors: u64) -> io::Result<Slice<'_>> {
        let begin = start.saturating_mul(SECTOR);
        let end = begin.saturating_add(sectors.saturating_mul(SECTOR));
        if end > self.len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "range extends past the end of the source",
            ));
        }
        StreamSlice::new(self.reader(), begin, end)
    }

    /// An unbuffered, read-only reader over the whole source.
    pub fn reader(&self) -> FileView<'_> {
        FileView::read_only(&self.file, self.len)
    }
}

/// A read-only window on a [`Source`].
pub type Slice<'a> = StreamSlice<FileView<'a>>;

/// A view of a file with its own cursor: reads and writes are positional
/// (pread/pwrite), so views never disturb each other and seeking costs no
/// system call. Read-only — every write fails, so a source is never
/// modified — unless made with [`FileView::writable`], which counts the
/// bytes it writes. Libraries that demand `Write` (fatfs, gpt) get one.
#[derive(Debug, Clone)]
pub struct FileView<'a> {
    file: &'a File,
    pos: u64,
    len: u64,
    written: Option<&'a Cell<u64>>,
}

impl<'a> FileView<'a> {
    /// A view that refuses every write.
    pub fn read_only(file: &'a File, len: u64) -> FileView<'a> {
        FileView {
            file,
            pos: 0,
            len,
            written: None,
        }
    }

    /// A view that writes, adding the bytes it writes to `written`.
    pub fn writable(file: &'a File, len: u64, written: &'a Cell<u64>) -> FileView<'a> {
        FileView {
            file,
            pos: 0,
            len,
            written: Some(written),
        }
    }
}

impl Read for FileView<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for FileView<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(written) = self.written else {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "esxstick never writes to its source",
            ));
        };
        let len = crate::fault::write(buf.len())?;
        let n = self.file.write_at(&buf[..len], self.pos)?;
        written.set(written.get() + n as u64);
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for FileView<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let new = match pos {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
        };
        self.pos = new
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}
