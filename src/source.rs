//! Where the ESXi image is read from: random access over a raw image file
//! or a block device, never written to.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};

use fscommon::{BufStream, StreamSlice};
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
        let mut file = File::open(path).map_err(open_err)?;
        let file_type = file.metadata().map_err(open_err)?.file_type();
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

    /// A buffered, read-only view of `sectors` sectors from `start`, for
    /// libraries that want a whole device (fatfs, gpt).
    pub fn slice(&self, start: u64, sectors: u64) -> io::Result<Slice<'_>> {
        let begin = start.saturating_mul(SECTOR);
        let end = begin.saturating_add(sectors.saturating_mul(SECTOR));
        if end > self.len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "range extends past the end of the source",
            ));
        }
        Ok(BufStream::new(StreamSlice::new(
            ReadOnly(&self.file),
            begin,
            end,
        )?))
    }

    /// An unbuffered, read-only reader over the whole source.
    pub fn reader(&self) -> ReadOnly<&File> {
        ReadOnly(&self.file)
    }
}

/// A buffered, read-only window on a [`Source`].
pub type Slice<'a> = BufStream<StreamSlice<ReadOnly<&'a File>>>;

/// Adapts a reader for libraries that demand `Write` (fatfs, gpt) while
/// only reading: every write fails, so a source is never modified.
#[derive(Debug)]
pub struct ReadOnly<T>(T);

impl<T: Read> Read for ReadOnly<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<T: Seek> Seek for ReadOnly<T> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.0.seek(pos)
    }
}

impl<T> Write for ReadOnly<T> {
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "esxstick never writes to its source",
        ))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
