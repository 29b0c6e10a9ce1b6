//! An in-memory disk that records what mbrman or gpt writes onto it, so
//! that a table's sectors can be written to the real disk in an order of
//! esxstick's choosing (the sectors that make the table valid last).

use std::io::{self, Read, Seek, SeekFrom, Write};

/// A disk of `len` bytes, all zero but for what was written: reads return
/// what was recorded, zeros elsewhere (the table areas of the real disk
/// are zeroed before the table goes there).
#[derive(Debug)]
pub struct Recorder {
    len: u64,
    pos: u64,
    chunks: Vec<(u64, Vec<u8>)>,
}

impl Recorder {
    /// An empty disk of `len` bytes.
    pub fn new(len: u64) -> Recorder {
        Recorder {
            len,
            pos: 0,
            chunks: Vec::new(),
        }
    }

    /// The disk's size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the disk has no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// What was written, as (byte offset, bytes) in the order it was
    /// written; consecutive writes are joined into one chunk.
    pub fn into_chunks(self) -> Vec<(u64, Vec<u8>)> {
        self.chunks
    }
}

impl Write for Recorder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.chunks.last_mut() {
            Some((at, bytes)) if *at + bytes.len() as u64 == self.pos => {
                bytes.extend_from_slice(buf)
            }
            _ => self.chunks.push((self.pos, buf.to_vec())),
        }
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for Recorder {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let (from, to) = (self.pos, self.pos + n as u64);
        let out = buf.get_mut(..n).unwrap_or_default();
        out.fill(0);
        // Later chunks overwrite earlier ones, as on the disk.
        for (at, bytes) in &self.chunks {
            let (start, end) = (from.max(*at), to.min(*at + bytes.len() as u64));
            if start < end {
                let src = bytes.get((start - at) as usize..(end - at) as usize);
                let dst = out.get_mut((start - from) as usize..(end - from) as usize);
                if let (Some(src), Some(dst)) = (src, dst) {
                    dst.copy_from_slice(src);
                }
            }
        }
        self.pos = to;
        Ok(n)
    }
}

impl Seek for Recorder {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let (base, delta) = match pos {
            SeekFrom::Start(n) => (n, 0),
            SeekFrom::End(d) => (self.len, d),
            SeekFrom::Current(d) => (self.pos, d),
        };
        self.pos = base
            .checked_add_signed(delta)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek outside the disk"))?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_writes_in_order_and_reads_them_back_over_zeros() {
        let mut disk = Recorder::new(16);
        disk.seek(SeekFrom::Start(8)).unwrap();
        disk.write_all(&[1, 2]).unwrap();
        disk.write_all(&[3]).unwrap(); // joins the chunk before it
        disk.seek(SeekFrom::Start(2)).unwrap();
        disk.write_all(&[9, 9]).unwrap();
        disk.seek(SeekFrom::Start(9)).unwrap();
        disk.write_all(&[7]).unwrap(); // overwrites the 2
        let mut all = Vec::new();
        disk.seek(SeekFrom::Start(0)).unwrap();
        disk.read_to_end(&mut all).unwrap();
        assert_eq!(all, [0, 0, 9, 9, 0, 0, 0, 0, 1, 7, 3, 0, 0, 0, 0, 0]);
        assert_eq!(disk.seek(SeekFrom::End(-1)).unwrap(), 15);
        assert!(disk.seek(SeekFrom::Current(-20)).is_err());
        assert_eq!(
            disk.into_chunks(),
            [(8, vec![1, 2, 3]), (2, vec![9, 9]), (9, vec![7])]
        );
    }
}
