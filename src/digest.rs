//! The hashes esxstick computes: the SHA-256 sums it reports (of files
//! extracted, of files copied onto a stick), and the BLAKE3 sums a stick's
//! files are compared by when it is read back. Both are cryptographic, so
//! equal BLAKE3 sums mean equal bytes; BLAKE3 hashes 56 MB in 8 ms where
//! SHA-256 takes 28 (one core, measured here), and a verification hashes
//! every byte of every stick.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::Serialize;
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

/// The BLAKE3 of `bytes`, as lower-case hex.
pub fn blake3(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// The BLAKE3 of everything `copy` writes into the writer it is given,
/// as lower-case hex; `copy`'s error if it fails.
pub fn blake3_of<E>(copy: impl FnOnce(&mut dyn Write) -> Result<(), E>) -> Result<String, E> {
    let mut hasher = blake3::Hasher::new();
    copy(&mut hasher)?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// Both hashes of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    /// SHA-256, lower-case hex: what reports show.
    pub sha256: String,
    /// BLAKE3, lower-case hex: what a read-back is compared with.
    pub blake3: String,
}

impl FileDigest {
    /// Both hashes of `bytes`.
    pub fn of(bytes: &[u8]) -> FileDigest {
        FileDigest {
            sha256: sha256(bytes),
            blake3: blake3(bytes),
        }
    }
}

/// Hashes the bytes it is given with both hashes at once.
#[derive(Debug, Default)]
pub struct FileHasher {
    sha256: Sha256,
    blake3: blake3::Hasher,
}

impl FileHasher {
    /// Adds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha256.update(bytes);
        self.blake3.update(bytes);
    }

    /// Both hashes of everything added.
    pub fn finish(self) -> FileDigest {
        FileDigest {
            sha256: format!("{:x}", self.sha256.finalize()),
            blake3: self.blake3.finalize().to_hex().to_string(),
        }
    }
}

impl Write for FileHasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The hashes of the files copied onto a stick, by path. Only the SHA-256
/// sums are serialised (as `sha256`, a map of path to hex).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Digests {
    /// SHA-256 of every file.
    pub sha256: BTreeMap<String, String>,
    /// BLAKE3 of every file.
    #[serde(skip)]
    pub blake3: BTreeMap<String, String>,
}

impl Digests {
    /// Records the hashes of the file at `path`.
    pub fn insert(&mut self, path: String, digest: FileDigest) {
        self.sha256.insert(path.clone(), digest.sha256);
        self.blake3.insert(path, digest.blake3);
    }

    /// The hashes of the file at `path`, when both are known.
    pub fn get(&self, path: &str) -> Option<FileDigest> {
        Some(FileDigest {
            sha256: self.sha256.get(path)?.clone(),
            blake3: self.blake3.get(path)?.clone(),
        })
    }
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

    #[test]
    fn both_hashes_match_their_published_test_vectors() {
        let mut hasher = FileHasher::default();
        hasher.write_all(b"a").unwrap();
        hasher.update(b"bc");
        let digest = hasher.finish();
        assert_eq!(digest, FileDigest::of(b"abc"));
        assert_eq!(
            digest.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // The BLAKE3 reference implementation's test vector for "abc".
        assert_eq!(
            digest.blake3,
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
        let mut digests = Digests::default();
        digests.insert("vmk.gz".into(), digest.clone());
        assert_eq!(digests.get("vmk.gz"), Some(digest));
        assert_eq!(
            serde_json::to_string(&digests).unwrap(),
            r#"{"sha256":{"vmk.gz":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}}"#
        );
    }
}
