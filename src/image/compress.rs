//! Compressed images: the format told by its magic bytes (never by the
//! file name), and a streaming decoder for it.

use std::io::{self, BufRead, Read};

use serde::Serialize;

use crate::image::bz2par::ParallelBz2;
use crate::image::xzpar::ParallelXz;

/// A compression format esxstick can read an image from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    /// gzip (`.gz`), possibly several members.
    Gzip,
    /// bzip2 (`.bz2`), as VMware shipped its dd images.
    Bzip2,
    /// xz (`.xz`).
    Xz,
    /// Zstandard (`.zst`).
    Zstd,
}

impl Compression {
    /// The format whose magic bytes `head` starts with, if any.
    pub fn detect(head: &[u8]) -> Option<Compression> {
        match head {
            [0x1f, 0x8b, ..] => Some(Compression::Gzip),
            [b'B', b'Z', b'h', b'1'..=b'9', ..] => Some(Compression::Bzip2),
            [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Some(Compression::Xz),
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The format's usual name.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Bzip2 => "bzip2",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        }
    }

    /// A reader of the decompressed bytes of `input`. Concatenated
    /// streams (pigz, pbzip2, `cat a.xz b.xz`, zstd -T) are read as one.
    /// bzip2 is decoded on every core ([`ParallelBz2`]), and so is xz
    /// when its stream has several blocks ([`ParallelXz`]).
    pub fn decoder<R: BufRead + Send + 'static>(
        self,
        input: R,
    ) -> io::Result<Box<dyn Read + Send>> {
        Ok(match self {
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
            Compression::Bzip2 => Box::new(ParallelBz2::new(input)),
            Compression::Xz => Box::new(ParallelXz::new(input)?),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(input)?),
        })
    }
}

/// Peeks at the first bytes of a buffered stream (as many as its buffer
/// holds after one fill) and returns the compression format they show.
pub fn sniff<R: BufRead>(input: &mut R) -> io::Result<Option<Compression>> {
    Ok(Compression::detect(input.fill_buf()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes_not_names_decide() {
        assert_eq!(
            Compression::detect(b"\x1f\x8b\x08\0"),
            Some(Compression::Gzip)
        );
        assert_eq!(Compression::detect(b"BZh91AY&SY"), Some(Compression::Bzip2));
        assert_eq!(Compression::detect(b"BZh0"), None);
        assert_eq!(
            Compression::detect(b"\xfd7zXZ\0\0\x04"),
            Some(Compression::Xz)
        );
        assert_eq!(
            Compression::detect(b"\x28\xb5\x2f\xfd\x04"),
            Some(Compression::Zstd)
        );
        // An MBR's boot code is no compressed stream.
        assert_eq!(Compression::detect(b"\x33\xc0\xfa\x8e"), None);
        assert_eq!(Compression::detect(b""), None);
    }
}
