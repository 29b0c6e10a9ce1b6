//! Where the ESXi image is read from, never written to: a raw image file
//! or a block device (random access), or a compressed image — given
//! directly or found on an installer ISO — read as a [`Stream`].

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::ops::ControlFlow;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use fscommon::StreamSlice;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::image::compress::Compression;
use crate::image::iso;
use crate::image::stream::{Counting, Origin, Stream, StreamReport};
use crate::progress::Observer;

/// Size of a logical sector; all LBAs in esxstick count these.
pub const SECTOR: u64 = 512;

/// Size of the buffer that bulk reads and copies go through
/// ([`chunked`]).
pub const CHUNK: usize = 1 << 20;

/// The size a stream is taken to have until it has been read to its end:
/// 2 TiB, the most an MBR can address. Reads past the real end fail with
/// a message that says the stream ended.
pub const UNKNOWN_LEN: u64 = (1 << 32) * SECTOR;

/// What kind of thing a [`Source`] reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// A regular file holding a raw disk image (`.dd`, `.img`).
    RawImage,
    /// A block device such as an existing stick.
    BlockDevice,
    /// A compressed image file (gzip, bzip2, xz, zstd).
    Compressed,
    /// An ESXi installer ISO that carries the image.
    InstallerIso,
}

/// A read-only, random-access disk image.
#[derive(Debug)]
pub struct Source {
    path: PathBuf,
    /// The image itself, or a stream's spool.
    file: File,
    len: u64,
    kind: SourceKind,
    stream: Option<Arc<Stream>>,
}

impl Source {
    /// Opens a raw image, a block device, a compressed image or an
    /// installer ISO for reading, checking the MD5 an ISO gives for its
    /// image (see [`Source::open_with`]).
    pub fn open(path: &Path) -> Result<Source> {
        Source::open_with(path, true)
    }

    /// [`Source::open`], with the MD5 check of an ISO's image made
    /// (`check_md5`) or skipped. The check runs when the stream is
    /// finished ([`Source::finish`]), on the whole image.
    pub fn open_with(path: &Path, check_md5: bool) -> Result<Source> {
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
        let mut head = [0; 8];
        let head_len = file.read_at(&mut head, 0).map_err(open_err)?;
        let consumed = Arc::new(AtomicU64::new(0));
        let stream = if let Some(compression) = Compression::detect(&head[..head_len]) {
            file.seek(SeekFrom::Start(0)).map_err(open_err)?;
            let input = BufReader::new(Counting::new(file, Arc::clone(&consumed)));
            let origin = Origin {
                compression: Some(compression),
                container: String::new(),
                compressed_bytes: len,
                expected_md5: None,
            };
            Stream::new(
                origin,
                compression.decoder(input).map_err(open_err)?,
                consumed,
            )
        } else if iso::is_iso(&file) {
            let found = iso::find_image(&file, Arc::clone(&consumed))?;
            let decoder: Box<dyn Read + Send> = match found.compression {
                Some(c) => c.decoder(found.reader).map_err(open_err)?,
                None => Box::new(found.reader),
            };
            let origin = Origin {
                compression: found.compression,
                container: found.container,
                compressed_bytes: found.compressed_bytes,
                expected_md5: found.md5.filter(|_| check_md5),
            };
            Stream::new(origin, decoder, consumed)
        } else {
            return Ok(Source {
                path: path.to_path_buf(),
                file,
                len,
                kind,
                stream: None,
            });
        }
        .map_err(open_err)?;
        let kind = if stream.origin().container.is_empty() {
            SourceKind::Compressed
        } else {
            SourceKind::InstallerIso
        };
        Ok(Source {
            path: path.to_path_buf(),
            file: stream.spool().try_clone().map_err(open_err)?,
            len: UNKNOWN_LEN,
            kind,
            stream: Some(Arc::new(stream)),
        })
    }

    /// Opens the ISO 9660 medium at `path` as the plain file (or device)
    /// it is, for reading an ESXi 5+ installer's files from their extents
    /// ([`crate::esxi::installer`]): no image is looked for on it.
    pub fn open_iso(path: &Path) -> Result<Source> {
        let open_err = |source| Error::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(open_err)?;
        let len = file.seek(SeekFrom::End(0)).map_err(open_err)?;
        Ok(Source {
            path: path.to_path_buf(),
            file,
            len,
            kind: SourceKind::InstallerIso,
            stream: None,
        })
    }

    /// The file (or device) read, for positional reads of a plain source.
    pub fn file(&self) -> &File {
        &self.file
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

    /// Size of the source in bytes; for a stream not yet read to its
    /// end, [`UNKNOWN_LEN`].
    pub fn len(&self) -> u64 {
        self.known_len().unwrap_or(self.len)
    }

    /// Size of the source in bytes, when known: always for files and
    /// devices, for a stream once it has been read to its end.
    pub fn known_len(&self) -> Option<u64> {
        match &self.stream {
            None => Some(self.len),
            Some(stream) => stream.known_len(),
        }
    }

    /// The stream the image is read from, for a compressed image or an
    /// installer ISO.
    pub fn origin(&self) -> Option<&Origin> {
        self.stream.as_deref().map(Stream::origin)
    }

    /// Reports decompression progress to `observer` (a no-op for raw
    /// sources, which need no decompressing).
    pub fn observe(&self, observer: Arc<dyn Observer>) {
        if let Some(stream) = &self.stream {
            stream.observe(observer);
        }
    }

    /// Declares that nothing past the image's first `bytes` will be read:
    /// a stream decompresses ahead up to there on another thread and then
    /// stops (or only hashes on, when an MD5 is to be checked).
    pub fn prefetch(&self, bytes: u64) {
        if let Some(stream) = &self.stream {
            stream.prefetch(bytes);
        }
    }

    /// Ends reading: for a stream, checks the image's MD5 when the medium
    /// gives one (reading the stream to its end) and reports how much of
    /// it was read; `None` for raw sources.
    pub fn finish(&self) -> Result<Option<StreamReport>> {
        let Some(stream) = &self.stream else {
            return Ok(None);
        };
        stream
            .finish()
            .map(Some)
            .map_err(|source| Error::Stream { source })
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
        self.ensure(offset.saturating_add(buf.len() as u64))
            .and_then(|()| self.file.read_exact_at(buf, offset))
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

    /// Reads the `len` bytes at `offset` in chunks of up to [`CHUNK`]
    /// bytes and hands each to `each`, with its offset from `offset`,
    /// until `each` breaks; `what` names the data for the error message.
    pub fn for_each_chunk<B>(
        &self,
        offset: u64,
        len: u64,
        what: &str,
        each: impl FnMut(u64, &mut [u8]) -> Result<ControlFlow<B>>,
    ) -> Result<ControlFlow<B>> {
        let fill = |at: u64, buf: &mut [u8]| {
            let n = buf
                .len()
                .min(usize::try_from(len.saturating_sub(at)).unwrap_or(usize::MAX));
            let chunk = buf.get_mut(..n).unwrap_or_default();
            self.read_at(offset + at, chunk, what)?;
            Ok(n)
        };
        Ok(match chunked(fill, each)? {
            ControlFlow::Break(b) => ControlFlow::Break(b),
            ControlFlow::Continue(_) => ControlFlow::Continue(()),
        })
    }

    /// A read-only view of `sectors` sectors from `start`, for libraries
    /// that want a whole device (fatfs).
    pub fn slice(&self, start: u64, sectors: u64) -> io::Result<Slice<'_>> {
        let begin = start.saturating_mul(SECTOR);
        let end = begin.saturating_add(sectors.saturating_mul(SECTOR));
        if end > self.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "range extends past the end of the source",
            ));
        }
        StreamSlice::new(self.reader(), begin, end)
    }

    /// An unbuffered, read-only reader over the whole source.
    pub fn reader(&self) -> FileView<'_> {
        FileView {
            stream: self.stream.as_deref(),
            ..FileView::read_only(&self.file, self.len())
        }
    }

    /// Makes sure a stream holds the bytes before `end`.
    fn ensure(&self, end: u64) -> io::Result<()> {
        match &self.stream {
            Some(stream) => stream.ensure(end),
            None => Ok(()),
        }
    }
}

/// The one loop that moves data in bulk: `fill(at, buf)` puts the bytes
/// that follow the first `at` into a [`CHUNK`]-byte buffer and says how
/// many (0 at the end); `each(at, bytes)` takes them, or breaks. Returns
/// what `each` broke with, or how many bytes it took in all.
pub fn chunked<B, E>(
    mut fill: impl FnMut(u64, &mut [u8]) -> Result<usize, E>,
    mut each: impl FnMut(u64, &mut [u8]) -> Result<ControlFlow<B>, E>,
) -> Result<ControlFlow<B, u64>, E> {
    let mut buf = vec![0; CHUNK];
    let mut at = 0;
    loop {
        let n = fill(at, &mut buf)?;
        let Some(bytes) = buf.get_mut(..n).filter(|b| !b.is_empty()) else {
            return Ok(ControlFlow::Continue(at));
        };
        if let ControlFlow::Break(b) = each(at, bytes)? {
            return Ok(ControlFlow::Break(b));
        }
        at += n as u64;
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        if let Some(stream) = &self.stream {
            stream.stop();
        }
    }
}

/// A read-only window on a [`Source`].
pub type Slice<'a> = StreamSlice<FileView<'a>>;

/// A read-only view of a file with its own cursor: reads are positional
/// (pread), so views never disturb each other and seeking costs no
/// system call. Every write fails, so a source is never modified;
/// libraries that demand `Write` (fatfs, gpt) get one all the same.
#[derive(Debug, Clone)]
pub struct FileView<'a> {
    file: &'a File,
    /// A stream to decompress from before reading `file`, its spool.
    stream: Option<&'a Stream>,
    pos: u64,
    len: u64,
}

impl<'a> FileView<'a> {
    /// A view of the first `len` bytes of `file`, at its start.
    pub fn read_only(file: &'a File, len: u64) -> FileView<'a> {
        FileView {
            file,
            stream: None,
            pos: 0,
            len,
        }
    }
}

impl Read for FileView<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if let Some(stream) = self.stream {
            stream.ensure(self.pos + want as u64)?;
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl io::Write for FileView<'_> {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "esxstick never writes to its source",
        ))
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
