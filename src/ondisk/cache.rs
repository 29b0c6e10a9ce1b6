//! A write-back cache of a FAT volume's metadata region (boot sector,
//! FATs, root directory), for fatfs. fatfs reads and writes FAT entries a
//! few bytes at a time, each after a seek: tens of thousands of system
//! calls per bank. Held in memory, they cost none; the region is written
//! back in one piece by an explicit [`MetaCache::write_back`], whose errors
//! are returned. (fatfs flushes its device after every file it closes, but
//! never when it unmounts: `flush` alone is not the moment to write back.)
//!
//! Past the region, file data is read ahead: fatfs reads a file a cluster
//! at a time, each after a seek — 24,000 reads of 2 KiB for a 56 MB bank.
//! The clusters of a file written by esxstick follow one another, so one
//! read of [`READ_AHEAD`] bytes serves a hundred of them.

use std::io::{self, Read, Seek, SeekFrom, Write};

/// Largest metadata region cached: a FAT16 volume's is under 300 KiB; a
/// FAT32 installer stick's two FATs take 8 MiB per million clusters (16
/// MiB for an 8 GB stick with 4 KiB clusters). Past this, the rest of the
/// region passes through, slower but bounded in memory.
const MAX_CACHED: u64 = 32 << 20;
/// Bytes read at once past the metadata region.
const READ_AHEAD: usize = 256 << 10;

/// The first `meta.len()` bytes of `inner` held in memory; past them,
/// writes pass straight through and reads are read ahead.
pub struct MetaCache<T> {
    inner: T,
    meta: Vec<u8>,
    pos: u64,
    dirty: bool,
    /// Bytes of `inner` read ahead, starting at `ahead_at`.
    ahead: Vec<u8>,
    ahead_at: u64,
}

impl<T: Read + Write + Seek> MetaCache<T> {
    /// Caches the first `len` bytes of `inner` (at most 32 MiB), reading
    /// them now when `load`; a volume about to be formatted need not be.
    pub fn new(mut inner: T, len: u64, load: bool) -> io::Result<MetaCache<T>> {
        let mut meta = vec![0; len.min(MAX_CACHED) as usize];
        if load {
            inner.seek(SeekFrom::Start(0))?;
            inner.read_exact(&mut meta)?;
        }
        Ok(MetaCache {
            inner,
            meta,
            pos: 0,
            dirty: !load,
            ahead: Vec::new(),
            ahead_at: 0,
        })
    }

    /// Writes the cached region to `inner` if it changed, then flushes it.
    pub fn write_back(&mut self) -> io::Result<()> {
        if self.dirty {
            self.inner.seek(SeekFrom::Start(0))?;
            self.inner.write_all(&self.meta)?;
            self.dirty = false;
        }
        self.inner.flush()
    }

    fn cached(&self) -> Option<usize> {
        usize::try_from(self.pos)
            .ok()
            .filter(|&p| p < self.meta.len())
    }

    /// Reads at `pos`, past the metadata region, from the bytes read
    /// ahead, reading the next [`READ_AHEAD`] bytes first when they do
    /// not hold `pos`. A read as large as that passes straight through.
    fn read_ahead(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.len() >= READ_AHEAD {
            self.inner.seek(SeekFrom::Start(self.pos))?;
            return self.inner.read(buf);
        }
        let held = |c: &Self| {
            c.pos
                .checked_sub(c.ahead_at)
                .and_then(|o| usize::try_from(o).ok())
                .filter(|&o| o < c.ahead.len())
        };
        let offset = match held(self) {
            Some(offset) => offset,
            None => {
                self.fill_ahead()?;
                0
            }
        };
        let from = self.ahead.get(offset..).unwrap_or_default();
        let n = buf.len().min(from.len());
        buf[..n].copy_from_slice(&from[..n]);
        Ok(n)
    }

    /// Reads up to [`READ_AHEAD`] bytes of `inner` at `pos` (fewer at its
    /// end).
    fn fill_ahead(&mut self) -> io::Result<()> {
        self.ahead.resize(READ_AHEAD, 0);
        self.ahead_at = self.pos;
        self.inner.seek(SeekFrom::Start(self.pos))?;
        let mut filled = 0;
        while filled < READ_AHEAD {
            match self.inner.read(&mut self.ahead[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.ahead.clear();
                    return Err(e);
                }
            }
        }
        self.ahead.truncate(filled);
        Ok(())
    }
}

impl<T: Read + Write + Seek> Read for MetaCache<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.cached() {
            Some(p) => {
                let n = buf.len().min(self.meta.len() - p);
                buf[..n].copy_from_slice(&self.meta[p..p + n]);
                n
            }
            None => self.read_ahead(buf)?,
        };
        self.pos += n as u64;
        Ok(n)
    }
}

impl<T: Read + Write + Seek> Write for MetaCache<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match self.cached() {
            Some(p) => {
                let n = buf.len().min(self.meta.len() - p);
                self.meta[p..p + n].copy_from_slice(&buf[..n]);
                self.dirty = true;
                n
            }
            None => {
                self.ahead.clear();
                self.inner.seek(SeekFrom::Start(self.pos))?;
                self.inner.write(buf)?
            }
        };
        self.pos += n as u64;
        Ok(n)
    }

    /// Flushes `inner` only; see [`MetaCache::write_back`].
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<T: Read + Write + Seek> Seek for MetaCache<T> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.pos = match pos {
            SeekFrom::Start(n) => n,
            SeekFrom::Current(d) => self.pos.checked_add_signed(d).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "seek before the start")
            })?,
            SeekFrom::End(d) => {
                let end = self.inner.seek(SeekFrom::End(0))?;
                end.checked_add_signed(d).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "seek before the start")
                })?
            }
        };
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn reads_and_writes_across_the_boundary_land_where_they_belong() {
        let backing: Vec<u8> = (0..64u8).collect();
        let mut cache = MetaCache::new(Cursor::new(backing.clone()), 16, true).unwrap();
        let mut buf = [0u8; 8];
        cache.seek(SeekFrom::Start(12)).unwrap();
        cache.read_exact(&mut buf).unwrap();
        assert_eq!(buf, [12, 13, 14, 15, 16, 17, 18, 19]);
        cache.seek(SeekFrom::Start(14)).unwrap();
        cache.write_all(&[0xaa; 4]).unwrap();
        // Past the cache it is written through at once; inside, only on
        // write_back (not on flush, which fatfs calls after every file).
        assert_eq!(cache.inner.get_ref()[14..18], [14, 15, 0xaa, 0xaa]);
        cache.flush().unwrap();
        assert_eq!(cache.inner.get_ref()[14..18], [14, 15, 0xaa, 0xaa]);
        cache.write_back().unwrap();
        assert_eq!(cache.inner.get_ref()[14..18], [0xaa; 4]);
        assert_eq!(cache.seek(SeekFrom::End(-4)).unwrap(), 60);
    }

    #[test]
    fn reads_past_the_region_come_from_one_read_ahead_and_see_later_writes() {
        let backing: Vec<u8> = (0..=255u8).cycle().take(READ_AHEAD * 2 + 100).collect();
        let mut cache = MetaCache::new(Cursor::new(backing.clone()), 16, true).unwrap();
        let mut buf = [0u8; 2048];
        cache.seek(SeekFrom::Start(4096)).unwrap();
        cache.read_exact(&mut buf).unwrap();
        assert_eq!(buf[..], backing[4096..4096 + 2048]);
        assert_eq!(cache.ahead_at, 4096);
        // Served from the window: the backing changing under it shows
        // that no second read was made.
        cache.inner.get_mut()[8192] = 0xee;
        cache.seek(SeekFrom::Start(8192)).unwrap();
        cache.read_exact(&mut buf[..1]).unwrap();
        assert_eq!(buf[0], backing[8192]);
        // A write through the cache drops the window.
        cache.seek(SeekFrom::Start(8192)).unwrap();
        cache.write_all(&[0x55]).unwrap();
        cache.seek(SeekFrom::Start(8192)).unwrap();
        cache.read_exact(&mut buf[..1]).unwrap();
        assert_eq!(buf[0], 0x55);
        // The window ends with the backing.
        let end = backing.len() as u64;
        cache.seek(SeekFrom::Start(end - 10)).unwrap();
        assert_eq!(cache.read(&mut buf).unwrap(), 10);
        assert_eq!(cache.read(&mut buf).unwrap(), 0);
    }
}
