//! xz decoded on every core. An xz stream is a series of blocks; `xz -T`
//! (the default since xz 5.4) and `--block-size` write each block's sizes
//! into its header, and liblzma's multi-threaded decoder then decodes
//! such blocks side by side. A stream of one block (plain `xz` before
//! 5.4, `-T1`) is decoded on one core, as before.
//!
//! liblzma's multi-threaded decoder reads one stream; the streams of a
//! concatenated file (`cat a.xz b.xz`), with the stream padding the
//! format allows between them (zero bytes, a multiple of four), are read
//! here one after another, as `xz -dc` reads them.

use std::io::{self, BufRead, Read};

use liblzma::bufread::XzDecoder;
use liblzma::stream::{MtStreamBuilder, Stream};

/// Memory liblzma may take for decoding blocks side by side; a stream
/// whose blocks need more (big blocks: `xz -T0 -9` makes 192 MiB ones)
/// is decoded with fewer threads, down to one, so that a write stays
/// within its 64 MiB.
const THREAD_MEMORY: u64 = 24 << 20;

/// The concatenated xz streams of an input, each decoded by liblzma's
/// multi-threaded decoder; see the module docs.
pub struct ParallelXz<R> {
    /// The current stream's decoder; `None` once the input has ended.
    decoder: Option<XzDecoder<R>>,
}

impl<R: BufRead> ParallelXz<R> {
    /// A decoder of the xz streams of `input`.
    pub fn new(input: R) -> io::Result<ParallelXz<R>> {
        Ok(ParallelXz {
            decoder: Some(XzDecoder::new_stream(input, stream()?)),
        })
    }
}

/// A multi-threaded stream decoder, with a thread per core (at most 4,
/// as for bzip2).
fn stream() -> io::Result<Stream> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    MtStreamBuilder::new()
        .threads(u32::try_from(threads).unwrap_or(1))
        .memlimit_threading(THREAD_MEMORY)
        .memlimit_stop(u64::MAX)
        .decoder()
        .map_err(io::Error::other)
}

/// Skips the stream padding after a stream; whether another stream
/// follows (else the input has ended).
fn skip_padding<R: BufRead>(input: &mut R) -> io::Result<bool> {
    let mut zeros = 0usize;
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let n = buf.iter().take_while(|&&b| b == 0).count();
        let more = n < buf.len();
        input.consume(n);
        zeros += n;
        if more {
            break;
        }
    }
    let another = !input.fill_buf()?.is_empty();
    if !zeros.is_multiple_of(4) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{zeros} bytes of xz stream padding, not a multiple of 4"),
        ));
    }
    Ok(another)
}

impl<R: BufRead> Read for ParallelXz<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(decoder) = &mut self.decoder else {
                return Ok(0);
            };
            // 0 only at a stream's end (an input ending early is an error).
            let n = decoder.read(out)?;
            if n > 0 || out.is_empty() {
                return Ok(n);
            }
            if let Some(mut input) = self.decoder.take().map(XzDecoder::into_inner) {
                if skip_padding(&mut input)? {
                    self.decoder = Some(XzDecoder::new_stream(input, stream()?));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn padding(bytes: &[u8]) -> io::Result<(bool, Vec<u8>)> {
        let mut input = io::Cursor::new(bytes.to_vec());
        let another = skip_padding(&mut input)?;
        let mut rest = Vec::new();
        input.read_to_end(&mut rest)?;
        Ok((another, rest))
    }

    #[test]
    fn stream_padding_is_skipped_in_fours() {
        assert_eq!(padding(b"").unwrap(), (false, vec![]));
        assert_eq!(padding(&[0; 8]).unwrap(), (false, vec![]));
        assert_eq!(padding(b"\xfd7zXZ").unwrap(), (true, b"\xfd7zXZ".to_vec()));
        assert_eq!(
            padding(b"\0\0\0\0\xfd7zXZ").unwrap(),
            (true, b"\xfd7zXZ".to_vec())
        );
        for bad in [&b"\0\0\0\xfd7zXZ"[..], &[0; 5][..]] {
            let err = padding(bad).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{bad:?}");
        }
    }
}
