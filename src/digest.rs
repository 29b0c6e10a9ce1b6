//! The SHA-256 sums esxstick reports: of files extracted, of files
//! copied onto a stick, and of files read back from one.

use std::io::{self, Write};

use sha2::{Digest, Sha256};

/// A writer that passes everything on to `inner`, hashing (SHA-256) and
/// counting the bytes `inner` takes. Over [`io::sink`], it only hashes.
#[derive(Debug)]
pub struct Sha256Writer<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Sha256Writer<W> {
    /// A writer into `inner` that has hashed nothing yet.
    pub fn new(inner: W) -> Sha256Writer<W> {
        Sha256Writer {
            inner,
            hash: Sha256::new(),
            bytes: 0,
        }
    }

    /// The bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The writer underneath, and the SHA-256 of everything it took, as
    /// lower-case hex.
    pub fn finish(self) -> (W, String) {
        (self.inner, format!("{:x}", self.hash.finalize()))
    }
}

impl<W: Write> Write for Sha256Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let taken = buf
            .get(..n)
            .ok_or_else(|| io::Error::other("a writer took more bytes than it was given"))?;
        self.hash.update(taken);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The SHA-256 of `bytes`, as lower-case hex.
pub fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_and_counts_what_the_inner_writer_takes() {
        let mut w = Sha256Writer::new(Vec::new());
        w.write_all(b"abc").unwrap();
        assert_eq!(w.bytes(), 3);
        let (inner, hash) = w.finish();
        assert_eq!(inner, b"abc");
        assert_eq!(
            hash,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(sha256(b"abc"), hash);
    }
}
