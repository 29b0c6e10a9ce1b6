//! An image that can only be read from the front (a compressed stream,
//! possibly inside an ISO or a tar archive), made randomly readable.
//!
//! Bytes are decompressed on demand, only as far as the furthest byte
//! asked for, and kept in a spool: an anonymous temporary file (it has
//! no name, so it vanishes on every exit, Ctrl-C and SIGKILL included),
//! written sparsely so that the image's zero-filled free space costs
//! nothing. Once the caller knows which part of the image it needs
//! ([`Stream::prefetch`]), a worker thread decompresses ahead up to
//! there on the second core — and, when the image's MD5 is to be
//! checked, hashes the rest without keeping it.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use md5::{Digest, Md5};
use serde::Serialize;

use crate::image::compress::Compression;
use crate::progress::{Observer, Phase};
use crate::size;

/// Bytes decompressed per step (and per hold of the lock).
const CHUNK: usize = 1 << 20;
/// Granularity of the spool's sparseness.
const BLOCK: usize = 4096;
/// Furthest a stream is read (ESXi's banks lie in its first GiB): a
/// crafted stream (a tiny file of compressed zeros) cannot keep esxstick
/// decompressing for hours.
pub const MAX_READ: u64 = 4 << 30;

/// Where a stream comes from and how it is read.
#[derive(Debug, Clone, Serialize)]
pub struct Origin {
    /// The compression of the image itself (`None`: a plain image
    /// inside a compressed archive, or stored as is).
    pub compression: Option<Compression>,
    /// Where the compressed image lies, e.g. `imagedd.bz2 on the ISO`;
    /// empty for a compressed file given directly.
    pub container: String,
    /// Bytes of compressed data the image is read from.
    pub compressed_bytes: u64,
    /// MD5 (hex) the whole decompressed image must have, and the file
    /// that says so; `None` when there is none or the check is skipped.
    pub expected_md5: Option<(String, String)>,
}

/// How much of a stream was read, and what the MD5 check found.
#[derive(Debug, Clone, Serialize)]
pub struct StreamReport {
    /// Where the stream came from.
    pub origin: Origin,
    /// Compressed bytes consumed.
    pub compressed_read: u64,
    /// Bytes of the image decompressed.
    pub image_read: u64,
    /// Whether the stream was read to its end.
    pub complete: bool,
    /// The image's MD5 (hex) when it was checked (it matched).
    pub md5: Option<String>,
}

impl Origin {
    /// The compression's name, or "uncompressed".
    pub fn codec(&self) -> &'static str {
        self.compression.map_or("uncompressed", Compression::name)
    }
}

impl StreamReport {
    /// One line for humans: how much was read, and the MD5 verdict.
    pub fn summary(&self) -> String {
        let o = &self.origin;
        let from = if o.container.is_empty() {
            format!("{} stream", o.codec())
        } else {
            format!("{} stream ({})", o.codec(), o.container)
        };
        let pct = (self.compressed_read * 100)
            .checked_div(o.compressed_bytes)
            .unwrap_or(100);
        let read = format!(
            "read {} of the {from}, {} of {} compressed ({pct}%)",
            size::human(self.image_read),
            size::human(self.compressed_read),
            size::human(o.compressed_bytes),
        );
        let ending = if self.complete {
            "to its end"
        } else {
            "then stopped: the rest is not needed"
        };
        match (&self.md5, &o.expected_md5) {
            (Some(md5), Some((_, file))) => format!("{read}, {ending}; MD5 {md5} matches {file}"),
            _ => format!("{read}, {ending}"),
        }
    }
}

/// A compressed image made randomly readable; see the module docs.
pub struct Stream {
    origin: Origin,
    spool: File,
    state: Mutex<State>,
    /// Bytes of the image decompressed so far.
    done: AtomicU64,
    /// Whether the stream has been read to its end.
    ended: AtomicBool,
    /// The spool keeps the image up to here; later bytes are only hashed.
    keep: AtomicU64,
    /// Compressed bytes consumed, counted by the input reader.
    consumed: Arc<AtomicU64>,
    stop: AtomicBool,
    worker: Mutex<Option<JoinHandle<()>>>,
    /// Who hears decompression progress, and how many compressed bytes
    /// it has been told of.
    watcher: Mutex<Option<(Arc<dyn Observer>, u64)>>,
}

struct State {
    decoder: Box<dyn Read + Send>,
    buf: Vec<u8>,
    md5: Md5,
    /// The MD5 of the whole image, once the stream has ended.
    digest: Option<String>,
    /// The first error, repeated to every later reader.
    failed: Option<(io::ErrorKind, String)>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("origin", &self.origin)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Stream {
    /// A stream over `decoder`, the decompressed image; `consumed` is
    /// advanced by the reader of the compressed bytes.
    pub fn new(
        origin: Origin,
        decoder: Box<dyn Read + Send>,
        consumed: Arc<AtomicU64>,
    ) -> io::Result<Stream> {
        Ok(Stream {
            origin,
            spool: tempfile::tempfile()?,
            state: Mutex::new(State {
                decoder,
                buf: vec![0; CHUNK],
                md5: Md5::new(),
                digest: None,
                failed: None,
            }),
            done: AtomicU64::new(0),
            ended: AtomicBool::new(false),
            keep: AtomicU64::new(u64::MAX),
            consumed,
            stop: AtomicBool::new(false),
            worker: Mutex::new(None),
            watcher: Mutex::new(None),
        })
    }

    /// Where the stream comes from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The spool holding the image read so far.
    pub fn spool(&self) -> &File {
        &self.spool
    }

    /// The image's size, once the stream has been read to its end.
    /// (Lock-free: sources ask for their length on every read view.)
    pub fn known_len(&self) -> Option<u64> {
        self.ended
            .load(Ordering::Acquire)
            .then(|| self.done.load(Ordering::Acquire))
    }

    /// Reports decompression progress ([`Phase::Decompress`], in
    /// compressed bytes) to `observer` from now on.
    pub fn observe(&self, observer: Arc<dyn Observer>) {
        observer.started(Phase::Decompress, self.origin.compressed_bytes);
        *self.watcher.lock().unwrap_or_else(|e| e.into_inner()) = Some((observer, 0));
        self.report_progress();
    }

    /// Tells the observer, if any, how far the compressed input has got.
    fn report_progress(&self) {
        if let Some((observer, told)) = &mut *self.watcher.lock().unwrap_or_else(|e| e.into_inner())
        {
            let consumed = self.consumed.load(Ordering::Relaxed);
            observer.advanced(Phase::Decompress, consumed.saturating_sub(*told));
            *told = consumed.max(*told);
        }
    }

    /// Makes sure the image's bytes before `end` are in the spool.
    pub fn ensure(&self, end: u64) -> io::Result<()> {
        if end <= self.done.load(Ordering::Acquire) {
            return Ok(());
        }
        if end > MAX_READ {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "byte {end} of the image lies past the first {} that esxstick reads \
                     from a stream (ESXi keeps its banks in the first GiB); decompress \
                     the image first",
                    size::human(MAX_READ)
                ),
            ));
        }
        if end > self.keep.load(Ordering::Acquire) {
            return Err(io::Error::other(format!(
                "byte {end} of the image lies past the part esxstick kept ({} bytes)",
                self.keep.load(Ordering::Acquire)
            )));
        }
        let mut state = self.lock();
        while self.done.load(Ordering::Acquire) < end {
            if !self.advance(&mut state)? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the {} stream ends after {} of image: the file is truncated, \
                         or holds less than a whole disk image",
                        self.origin.codec(),
                        size::human(self.done.load(Ordering::Acquire))
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Declares that only the image's first `keep` bytes will be read,
    /// and starts decompressing ahead up to there on a worker thread;
    /// with an MD5 to check, the worker goes on to the end of the stream,
    /// hashing without keeping. Calling it again only lowers `keep`.
    pub fn prefetch(self: &Arc<Self>, keep: u64) {
        self.keep.fetch_min(keep, Ordering::AcqRel);
        let mut worker = self.worker.lock().unwrap_or_else(|e| e.into_inner());
        if worker.is_some() {
            return;
        }
        let stream = Arc::clone(self);
        *worker = Some(std::thread::spawn(move || stream.run_ahead()));
    }

    fn run_ahead(&self) {
        let hash_all = self.origin.expected_md5.is_some();
        while !self.stop.load(Ordering::Acquire) {
            let mut state = self.lock();
            let wanted = self.done.load(Ordering::Acquire) < self.keep.load(Ordering::Acquire)
                || (hash_all && state.digest.is_none());
            // Errors stay in the state for whoever reads next.
            if !wanted || !matches!(self.advance(&mut state), Ok(true)) {
                return;
            }
        }
    }

    /// Ends the stream: with an MD5 to check, reads (and hashes) it to
    /// its end and compares; otherwise stops the worker where it is.
    pub fn finish(&self) -> io::Result<StreamReport> {
        let md5 = match &self.origin.expected_md5 {
            None => {
                self.stop();
                None
            }
            Some((expected, file)) => {
                let done = self.done.load(Ordering::Acquire);
                self.keep.fetch_min(done, Ordering::AcqRel);
                let mut state = self.lock();
                while self.advance(&mut state)? {}
                let actual = state.digest.clone().unwrap_or_default();
                if !actual.eq_ignore_ascii_case(expected) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "the image's MD5 is {actual}, but {file} says {expected}: \
                             the download or the medium is damaged (--no-md5 skips this check)"
                        ),
                    ));
                }
                Some(actual)
            }
        };
        if let Some(worker) = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = worker.join();
        }
        if let Some((observer, _)) = self
            .watcher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            observer.finished(Phase::Decompress);
        }
        let state = self.lock();
        if let Some(e) = state.failure() {
            return Err(e);
        }
        Ok(StreamReport {
            origin: self.origin.clone(),
            compressed_read: self.consumed.load(Ordering::Acquire),
            image_read: self.done.load(Ordering::Acquire),
            complete: state.digest.is_some(),
            md5,
        })
    }

    /// Asks the worker to stop at its next step.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decompresses one more chunk: hashed, and spooled up to `keep`.
    /// `Ok(false)` once the stream has ended.
    fn advance(&self, state: &mut State) -> io::Result<bool> {
        if let Some(e) = state.failure() {
            return Err(e);
        }
        if state.digest.is_some() {
            return Ok(false);
        }
        if self.done.load(Ordering::Acquire) >= MAX_READ {
            return Err(state.fail(
                io::ErrorKind::InvalidData,
                format!(
                    "the {} stream holds more than {}: too big for an ESXi image",
                    self.origin.codec(),
                    size::human(MAX_READ)
                ),
            ));
        }
        let State {
            decoder, buf, md5, ..
        } = state;
        let n = match fill(decoder, buf) {
            Ok(n) => n,
            Err(e) => {
                let (codec, consumed) = (
                    self.origin.codec(),
                    size::human(self.consumed.load(Ordering::Acquire)),
                );
                let message = if e.kind() == io::ErrorKind::UnexpectedEof {
                    format!(
                        "the {codec} stream ends early, after {} of image ({consumed} \
                         compressed): the file is truncated",
                        size::human(self.done.load(Ordering::Acquire))
                    )
                } else {
                    format!(
                        "the {codec} stream is damaged, {consumed} into its compressed data: {e}"
                    )
                };
                return Err(state.fail(io::ErrorKind::InvalidData, message));
            }
        };
        let data = buf.get(..n).unwrap_or_default();
        // Hashed only when there is an MD5 to compare with.
        if self.origin.expected_md5.is_some() {
            md5.update(data);
        }
        let at = self.done.load(Ordering::Acquire);
        let keep = self.keep.load(Ordering::Acquire);
        if at < keep {
            let kept = usize::try_from(keep - at).map_or(n, |k| k.min(n));
            let kept = data.get(..kept).unwrap_or_default();
            let spooled = write_sparse(&self.spool, kept, at)
                .and_then(|()| self.spool.set_len(at + kept.len() as u64));
            if let Err(e) = spooled {
                let message = format!(
                    "cannot keep the decompressed image in a temporary file in {}: {e} \
                     (set TMPDIR to a file system with room)",
                    std::env::temp_dir().display()
                );
                return Err(state.fail(e.kind(), message));
            }
        }
        self.done.store(at + n as u64, Ordering::Release);
        self.report_progress();
        if n == 0 {
            state.digest = Some(format!("{:x}", state.md5.finalize_reset()));
            self.ended.store(true, Ordering::Release);
            return Ok(false);
        }
        Ok(true)
    }
}

impl State {
    /// Records the first error: every later reader gets it too.
    fn fail(&mut self, kind: io::ErrorKind, message: String) -> io::Error {
        self.failed = Some((kind, message.clone()));
        io::Error::new(kind, message)
    }

    /// The recorded error, if any, once more.
    fn failure(&self) -> Option<io::Error> {
        let (kind, message) = self.failed.as_ref()?;
        Some(io::Error::new(*kind, message.clone()))
    }
}

/// Reads until `buf` is full or the stream ends; the bytes read.
pub(crate) fn fill(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Writes `data` at `offset`, skipping blocks of zeros (the file stays
/// sparse there, and reads back as zeros).
fn write_sparse(file: &File, data: &[u8], offset: u64) -> io::Result<()> {
    let mut run: Option<usize> = None;
    for (i, block) in data.chunks(BLOCK).enumerate() {
        let zero = block.iter().fold(0u8, |acc, &b| acc | b) == 0;
        match (zero, run) {
            (false, None) => run = Some(i * BLOCK),
            (true, Some(start)) => {
                file.write_all_at(&data[start..i * BLOCK], offset + start as u64)?;
                run = None;
            }
            _ => {}
        }
    }
    if let Some(start) = run {
        file.write_all_at(&data[start..], offset + start as u64)?;
    }
    Ok(())
}

/// A reader that counts the bytes it hands out (compressed bytes
/// consumed, for progress and the report).
pub struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R> Counting<R> {
    /// Wraps `inner`; the count is shared through `count`.
    pub fn new(inner: R, count: Arc<AtomicU64>) -> Counting<R> {
        Counting { inner, count }
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_writes_read_back_whole() {
        let file = tempfile::tempfile().unwrap();
        let mut data = vec![0u8; 5 * BLOCK + 100];
        data[BLOCK + 7] = 1;
        data[4 * BLOCK..].fill(9);
        write_sparse(&file, &data, 512).unwrap();
        file.set_len(512 + data.len() as u64).unwrap();
        let mut back = vec![0xee; data.len()];
        file.read_exact_at(&mut back, 512).unwrap();
        assert_eq!(back, data);
    }
}
