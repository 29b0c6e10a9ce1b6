//! bzip2 decoded on every core. bzip2 compresses its input in blocks (up
//! to 900 kB each) that are coded independently, each starting with a
//! 48-bit magic at any bit position. The compressed bits are scanned for
//! those magics (and for the end-of-stream magic); each block is wrapped
//! as a one-block stream of its own and decoded by the bzip2 crate on a
//! worker thread; the outputs are handed on in order, as one stream.
//!
//! The magic can, rarely (about once in 2^48 bit positions), occur inside
//! compressed data. A block split there fails to decode (its CRC-32 cannot
//! match); it is then decoded again joined with the pieces that follow,
//! so a false magic never turns a sound stream into an error. The
//! stream-level CRC is not checked: it only combines the block CRCs, which
//! the decoder checks one by one.
//!
//! Memory stays bounded: a few blocks are in flight, runs of zeros in a
//! block's output are kept as counts, and a block whose other output
//! passes `HELD` bytes is handed over half-decoded, the rest streamed.
//!
//! An image's empty space compresses to identical blocks (the same bits,
//! at different bit offsets): a small block seen to decode to zeros only
//! is remembered, and its repeats — also those dispatched while it was
//! still being decoded — are not decoded again: the same bits decode to
//! the same bytes, CRC and all.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{self, BufRead, Read};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use crate::image::stream::fill;

/// A block's 48-bit magic (the BCD digits of pi).
const BLOCK_MAGIC: u64 = 0x3141_5926_5359;
/// The end-of-stream magic (the BCD digits of sqrt(pi)).
const END_MAGIC: u64 = 0x1772_4538_5090;
const MASK48: u64 = (1 << 48) - 1;
/// Compressed bytes read from the input per step.
const READ_STEP: usize = 1 << 20;
/// Most compressed bytes one block may take (a 900 kB block of random
/// data compresses to a little over 900 kB): past it, the input is no
/// bzip2 stream.
const MAX_BLOCK: usize = 4 << 20;
/// Bytes kept after an end-of-stream magic while looking for the next
/// block (the gap holds a CRC and the next stream's header).
const MAX_GAP: usize = 64 << 10;
/// Bytes of a block's output (zeros not counted) held in memory before
/// the rest is left to the reader to decode.
const HELD: usize = 4 << 20;
/// Bytes of output decoded at a time.
const PIECE: usize = 256 << 10;
/// Pieces that follow a failed block tried joined with it.
const MERGE_MAX: u64 = 3;
/// Largest one-block stream remembered as decoding to zeros only (a
/// block of 45 MB of zeros compresses to a few dozen bytes).
const ZERO_BLOCK_BYTES: usize = 1024;
/// Most such blocks remembered.
const ZERO_BLOCKS: usize = 64;

/// A block's compressed bits, cut out of the input at its magic.
#[derive(Debug, Clone)]
struct Segment {
    /// The bits, from the block's magic up to the next block's magic (or
    /// the end of the input), byte-aligned.
    bits: Vec<u8>,
    /// Bits of the block itself: up to the next magic of either kind.
    body: u64,
    /// Bits in `bits` (the body, then any gap before the next block).
    total: u64,
    /// Whether a magic ended the block (else the input ended inside it).
    ended: bool,
}

/// A source of block segments, in input order.
trait Segments: Send {
    /// The next block, or `None` at the end of the input.
    fn next_segment(&mut self) -> io::Result<Option<Segment>>;
}

/// The kinds of magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Magic {
    Block,
    End,
}

/// Byte pairs that follow a magic's first byte, for every bit shift of
/// either magic: a 64-kbit set that rules out nearly every position with
/// one look-up.
fn prefilter() -> Vec<u64> {
    let mut set = vec![0u64; 1024];
    for magic in [BLOCK_MAGIC, END_MAGIC] {
        for shift in 0..8 {
            let pair = ((magic >> (24 + shift)) & 0xffff) as usize;
            if let Some(word) = set.get_mut(pair / 64) {
                *word |= 1 << (pair % 64);
            }
        }
    }
    set
}

/// The first magic at or after byte `from` of `buf` that lies wholly in
/// it (8 bytes from its start byte): its bit position and kind.
fn find(buf: &[u8], from: usize, filter: &[u64]) -> Option<(u64, Magic)> {
    let tail = buf.get(from..)?;
    for (i, window) in tail.windows(8).enumerate() {
        let w = u64::from_be_bytes(window.try_into().ok()?);
        let pair = ((w >> 40) & 0xffff) as usize;
        if filter
            .get(pair / 64)
            .is_none_or(|word| word & (1 << (pair % 64)) == 0)
        {
            continue;
        }
        for shift in 0..8u64 {
            let kind = match (w >> (16 - shift)) & MASK48 {
                BLOCK_MAGIC => Magic::Block,
                END_MAGIC => Magic::End,
                _ => continue,
            };
            return Some((((from + i) as u64) * 8 + shift, kind));
        }
    }
    None
}

/// `n` bits of `buf` from bit `start`, byte-aligned (the last byte padded
/// with what follows, or zeros).
fn extract(buf: &[u8], start: u64, n: u64) -> Vec<u8> {
    let first = (start / 8) as usize;
    let shift = (start % 8) as u32;
    let len = n.div_ceil(8) as usize;
    // One byte more than needed (zeros past the end), so that every
    // output byte has the byte after it.
    let end = buf.len().min(first.saturating_add(len + 1));
    let mut src = buf.get(first..end).unwrap_or_default().to_vec();
    src.resize(len + 1, 0);
    if shift == 0 {
        src.truncate(len);
        return src;
    }
    src.windows(2)
        .map(|w| match w {
            [a, b] => (a << shift) | (b >> (8 - shift)),
            _ => 0,
        })
        .collect()
}

/// Block segments cut from a compressed input as it is read.
struct Scanner<R> {
    input: R,
    filter: Vec<u64>,
    /// Compressed bytes read and not yet cut off.
    buf: Vec<u8>,
    /// Bytes of `buf` before this were searched for magics.
    searched: usize,
    /// The block being collected: its start bit in `buf`, and where its
    /// body ended (an end-of-stream magic), once found.
    open: Option<(u64, Option<u64>)>,
    /// Bytes searched since the last block was found.
    idle: usize,
    eof: bool,
}

impl<R: BufRead + Send> Scanner<R> {
    fn new(input: R) -> Scanner<R> {
        Scanner {
            input,
            filter: prefilter(),
            buf: Vec::new(),
            searched: 0,
            open: None,
            idle: 0,
            eof: false,
        }
    }

    /// Cuts bits `start..end` of `buf` as a segment whose body ends at
    /// `body_end`, and forgets the whole bytes before `end`; returns the
    /// segment and the bits forgotten.
    fn cut(&mut self, start: u64, body_end: u64, end: u64, ended: bool) -> (Segment, u64) {
        let segment = Segment {
            bits: extract(&self.buf, start, end - start),
            body: body_end - start,
            total: end - start,
            ended,
        };
        let drop = ((end / 8) as usize).min(self.searched);
        self.buf.drain(..drop);
        self.searched -= drop;
        self.open = None;
        (segment, drop as u64 * 8)
    }

    /// Reads more input, first forgetting what no segment can need.
    fn refill(&mut self) -> io::Result<()> {
        let keep_from = match self.open {
            Some((start, _)) => (start / 8) as usize,
            None => self.searched,
        }
        .min(self.searched);
        self.buf.drain(..keep_from);
        self.searched -= keep_from;
        if let Some((start, end)) = &mut self.open {
            let by = keep_from as u64 * 8;
            *start -= by;
            *end = end.map(|e| e - by);
        }
        let chunk = self.input.fill_buf()?;
        let take = chunk.len().min(READ_STEP);
        self.buf
            .extend_from_slice(chunk.get(..take).unwrap_or_default());
        self.input.consume(take);
        self.eof = take == 0;
        let block_open = self.open.is_some_and(|(_, end)| end.is_none());
        if (block_open && self.buf.len() > MAX_BLOCK) || self.idle > MAX_BLOCK {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("no bzip2 block boundary within {MAX_BLOCK} bytes: not a bzip2 stream"),
            ));
        }
        Ok(())
    }
}

impl<R: BufRead + Send> Segments for Scanner<R> {
    fn next_segment(&mut self) -> io::Result<Option<Segment>> {
        loop {
            let from = self.searched;
            while let Some((bit, kind)) = find(&self.buf, self.searched, &self.filter) {
                self.searched = ((bit + 48) / 8) as usize;
                match (kind, self.open) {
                    (Magic::Block, Some((start, body_end))) => {
                        let (segment, dropped) =
                            self.cut(start, body_end.unwrap_or(bit), bit, true);
                        self.open = Some((bit - dropped, None));
                        self.idle = 0;
                        return Ok(Some(segment));
                    }
                    (Magic::Block, None) => {
                        self.open = Some((bit, None));
                        self.idle = 0;
                    }
                    (Magic::End, Some((start, None))) => self.open = Some((start, Some(bit))),
                    (Magic::End, _) => {}
                }
            }
            let len = self.buf.len() as u64 * 8;
            if self.open.is_none() {
                self.idle += self.buf.len().saturating_sub(7).saturating_sub(from);
            }
            match self.open {
                Some((start, Some(body_end)))
                    if self.eof || len - body_end > MAX_GAP as u64 * 8 =>
                {
                    // The end-of-stream magic counts once its CRC is there.
                    let whole = len >= body_end + 80;
                    return Ok(Some(self.cut(start, body_end, body_end, whole).0));
                }
                Some((start, None)) if self.eof => {
                    return Ok(Some(self.cut(start, len, len, false).0));
                }
                _ if self.eof => return Ok(None),
                _ => {
                    self.searched = self.searched.max(self.buf.len().saturating_sub(7));
                    self.refill()?;
                }
            }
        }
    }
}

/// Bits appended one after another into bytes.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    /// Bits used in the last byte (0: it is full, or there is none).
    used: u32,
}

impl BitWriter {
    /// Appends the first `n` bits of `src`.
    fn push(&mut self, src: &[u8], n: u64) {
        let whole = (n / 8) as usize;
        let head = src.get(..whole).unwrap_or_default();
        if self.used == 0 {
            self.bytes.extend_from_slice(head);
        } else {
            for &b in head {
                self.push_byte(b, 8);
            }
        }
        if let Some(&last) = src.get(whole).filter(|_| !n.is_multiple_of(8)) {
            self.push_byte(last, (n % 8) as u32);
        }
    }

    /// Appends the top `n` (1..=8) bits of `b`.
    fn push_byte(&mut self, b: u8, n: u32) {
        let b = b & (0xffu16 << (8 - n)) as u8;
        if self.used == 0 {
            self.bytes.push(b);
        } else if let Some(last) = self.bytes.last_mut() {
            *last |= b >> self.used;
            if self.used + n > 8 {
                self.bytes.push(b << (8 - self.used));
            }
        }
        self.used = (self.used + n) % 8;
    }

    /// Appends the low `n` bits of `v`, most significant first.
    fn push_bits(&mut self, v: u64, n: u32) {
        let bytes = (v << (64 - n)).to_be_bytes();
        self.push(&bytes, u64::from(n));
    }
}

/// `bits` (`n` of them, starting with a block's magic and CRC) as a
/// stream of its own: a level-9 header (the largest blocks), the bits,
/// and an end-of-stream marker whose CRC is the first block's.
fn wrap(bits: &[u8], n: u64) -> Vec<u8> {
    let crc = extract(bits, 48, 32)
        .iter()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    let mut w = BitWriter::default();
    w.push(b"BZh9", 32);
    w.push(bits, n);
    w.push_bits(END_MAGIC, 48);
    w.push_bits(crc, 32);
    w.bytes
}

/// A block's output, as handed on.
enum Piece {
    Data(Vec<u8>),
    Zeros(usize),
}

/// What decoding a block gave.
enum Decoded {
    /// All of its output.
    Done(VecDeque<Piece>),
    /// The first part of it, and the decoder that yields the rest.
    Partial(VecDeque<Piece>, Box<dyn Read + Send>),
    /// It does not decode.
    Failed(io::Error),
}

/// Decodes a one-block stream (see [`wrap`]), holding at most [`HELD`]
/// bytes of output other than zeros.
fn decode(stream: Vec<u8>) -> Decoded {
    let mut decoder: Box<dyn Read + Send> =
        Box::new(bzip2::bufread::BzDecoder::new(io::Cursor::new(stream)));
    let mut pieces = VecDeque::new();
    let mut held = 0;
    let mut chunk = vec![0; PIECE];
    loop {
        let n = match fill(&mut *decoder, &mut chunk) {
            Ok(0) => return Decoded::Done(pieces),
            Ok(n) => n,
            Err(e) => return Decoded::Failed(e),
        };
        let data = chunk.get(..n).unwrap_or_default();
        if data.iter().all(|&b| b == 0) {
            match pieces.back_mut() {
                Some(Piece::Zeros(z)) => *z += n,
                _ => pieces.push_back(Piece::Zeros(n)),
            }
        } else {
            held += n;
            // The chunk itself becomes the piece: no copy.
            chunk.truncate(n);
            pieces.push_back(Piece::Data(std::mem::replace(&mut chunk, vec![0; PIECE])));
        }
        if held > HELD {
            return Decoded::Partial(pieces, decoder);
        }
    }
}

/// The output being handed on: pieces, then a decoder's rest.
#[derive(Default)]
struct Current {
    pieces: VecDeque<Piece>,
    /// Bytes of the front piece already handed on.
    offset: usize,
    rest: Option<Box<dyn Read + Send>>,
    /// An error to give once the output is exhausted (a stream that
    /// ends inside a block).
    then: Option<io::Error>,
}

impl Current {
    /// Hands on up to `out.len()` bytes; 0 when exhausted.
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while let Some(piece) = self.pieces.front() {
            let left = match piece {
                Piece::Data(d) => d.len(),
                Piece::Zeros(z) => *z,
            } - self.offset;
            let n = left.min(out.len());
            let dst = out.get_mut(..n).unwrap_or_default();
            match piece {
                Piece::Data(d) => {
                    dst.copy_from_slice(d.get(self.offset..self.offset + n).unwrap_or_default())
                }
                Piece::Zeros(_) => dst.fill(0),
            }
            self.offset += n;
            if n == left {
                self.pieces.pop_front();
                self.offset = 0;
            }
            if n > 0 || out.is_empty() {
                return Ok(n);
            }
        }
        if let Some(rest) = &mut self.rest {
            match rest.read(out)? {
                0 => self.rest = None,
                n => return Ok(n),
            }
        }
        match self.then.take() {
            Some(e) => Err(e),
            None => Ok(0),
        }
    }
}

/// A bzip2 stream decoded on every core; see the module docs.
pub struct ParallelBz2 {
    segments: Box<dyn Segments>,
    jobs: Option<Sender<(u64, Vec<u8>)>>,
    results: Receiver<(u64, Decoded)>,
    /// Blocks dispatched, not yet handed on: kept for a retry.
    kept: BTreeMap<u64, Segment>,
    /// Results that came before their turn.
    pending: BTreeMap<u64, Decoded>,
    /// Index of the next block to dispatch, and of the next to hand on.
    next: u64,
    turn: u64,
    /// Blocks in flight at most.
    ahead: u64,
    /// Small blocks in flight, as their one-block streams.
    small: BTreeMap<u64, Vec<u8>>,
    /// Small one-block streams known to decode to that many zeros.
    zeros: HashMap<Vec<u8>, usize>,
    /// Small blocks not dispatched because an identical one was in
    /// flight: decoded as it was, at their turn.
    twins: BTreeMap<u64, Vec<u8>>,
    input_done: bool,
    current: Current,
}

impl ParallelBz2 {
    /// A decoder of the bzip2 stream `input`, with a worker thread per
    /// core.
    pub fn new<R: BufRead + Send + 'static>(input: R) -> ParallelBz2 {
        ParallelBz2::over(Box::new(Scanner::new(input)))
    }

    fn over(segments: Box<dyn Segments>) -> ParallelBz2 {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let (jobs, queue) = mpsc::channel::<(u64, Vec<u8>)>();
        let (done, results) = mpsc::channel();
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..workers {
            let (queue, done) = (Arc::clone(&queue), done.clone());
            std::thread::spawn(move || loop {
                let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                let Ok((index, stream)) = job else { return };
                if done.send((index, decode(stream))).is_err() {
                    return;
                }
            });
        }
        ParallelBz2 {
            segments,
            jobs: Some(jobs),
            results,
            kept: BTreeMap::new(),
            pending: BTreeMap::new(),
            next: 0,
            turn: 0,
            ahead: workers as u64 + 1,
            small: BTreeMap::new(),
            zeros: HashMap::new(),
            twins: BTreeMap::new(),
            input_done: false,
            current: Current::default(),
        }
    }

    /// Dispatches blocks until enough are in flight or the input ends.
    fn dispatch(&mut self) -> io::Result<()> {
        while !self.input_done && self.next - self.turn < self.ahead {
            let Some(segment) = self.segments.next_segment()? else {
                self.input_done = true;
                break;
            };
            let stream = wrap(&segment.bits, segment.body);
            let small = stream.len() <= ZERO_BLOCK_BYTES;
            if let Some(&n) = self.zeros.get(&stream) {
                let zeros = VecDeque::from([Piece::Zeros(n)]);
                self.pending.insert(self.next, Decoded::Done(zeros));
            } else if small && self.small.values().any(|s| *s == stream) {
                self.twins.insert(self.next, stream);
            } else if let Some(jobs) = &self.jobs {
                if small {
                    self.small.insert(self.next, stream.clone());
                }
                jobs.send((self.next, stream))
                    .map_err(|_| io::Error::other("the bzip2 decoding threads stopped"))?;
            }
            self.kept.insert(self.next, segment);
            self.next += 1;
        }
        Ok(())
    }

    /// The result for block `index`, waiting for it.
    fn result(&mut self, index: u64) -> io::Result<Decoded> {
        loop {
            if let Some(decoded) = self.pending.remove(&index) {
                return Ok(decoded);
            }
            let (i, decoded) = self
                .results
                .recv()
                .map_err(|_| io::Error::other("the bzip2 decoding threads stopped"))?;
            if i >= self.turn {
                self.pending.insert(i, decoded);
            }
        }
    }

    /// Blocks `first..=last` joined as one stream, when all are known
    /// and each ends where the next begins.
    fn joined(&self, first: u64, last: u64) -> Option<(Vec<u8>, bool)> {
        let mut w = BitWriter::default();
        let mut ended = false;
        for i in first..=last {
            let s = self.kept.get(&i)?;
            let n = if i == last { s.body } else { s.total };
            w.push(&s.bits, n);
            ended = s.ended;
        }
        let bits = w.bytes.len() as u64 * 8;
        Some((wrap(&w.bytes, bits - (8 - u64::from(w.used)) % 8), ended))
    }

    /// Takes the next block's output as current, retrying a failed block
    /// joined with those that follow (a false magic split it).
    fn advance(&mut self) -> io::Result<()> {
        let index = self.turn;
        // Its twin, earlier, has been handed on: its output is known.
        if let Some(stream) = self.twins.remove(&index) {
            let decoded = match self.zeros.get(&stream) {
                Some(&n) => Decoded::Done(VecDeque::from([Piece::Zeros(n)])),
                None => decode(stream),
            };
            self.pending.insert(index, decoded);
        }
        let ended = self.kept.get(&index).is_some_and(|s| s.ended);
        let (decoded, through, ended) = match self.result(index)? {
            Decoded::Failed(e) => self.retry(index, e)?,
            decoded => (decoded, index, ended),
        };
        if let (Decoded::Done(pieces), Some(stream)) = (&decoded, self.small.get(&index)) {
            let zeros = pieces.iter().try_fold(0, |sum, p| match p {
                Piece::Zeros(n) => Some(sum + n),
                Piece::Data(_) => None,
            });
            if let Some(n) = zeros.filter(|_| self.zeros.len() < ZERO_BLOCKS && through == index) {
                self.zeros.insert(stream.clone(), n);
            }
        }
        for i in index..=through {
            self.kept.remove(&i);
            self.pending.remove(&i);
            self.small.remove(&i);
            self.twins.remove(&i);
        }
        self.turn = through + 1;
        let truncated = || {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the bzip2 stream ends inside a block",
            )
        };
        self.current = match decoded {
            Decoded::Done(pieces) => Current {
                pieces,
                ..Current::default()
            },
            Decoded::Partial(pieces, rest) => Current {
                pieces,
                rest: Some(rest),
                ..Current::default()
            },
            Decoded::Failed(e) => return Err(e),
        };
        if !ended {
            self.current.then = Some(truncated());
        }
        Ok(())
    }

    /// Decodes block `index` joined with up to [`MERGE_MAX`] followers;
    /// the first that decodes, with the last block it took, or `error`.
    fn retry(&mut self, index: u64, error: io::Error) -> io::Result<(Decoded, u64, bool)> {
        for extra in 1..=MERGE_MAX {
            self.dispatch()?;
            let Some((stream, ended)) = self.joined(index, index + extra) else {
                break;
            };
            match decode(stream) {
                Decoded::Failed(_) => continue,
                decoded => return Ok((decoded, index + extra, ended)),
            }
        }
        let ended = self.kept.get(&index).is_some_and(|s| s.ended);
        Err(if ended {
            error
        } else {
            io::Error::new(io::ErrorKind::UnexpectedEof, error.to_string())
        })
    }
}

impl Read for ParallelBz2 {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.current.read(out)?;
            if n > 0 || out.is_empty() {
                return Ok(n);
            }
            self.dispatch()?;
            if self.turn == self.next {
                return Ok(0);
            }
            self.advance()?;
        }
    }
}

impl Drop for ParallelBz2 {
    fn drop(&mut self) {
        // The workers end once the queue is closed and empty.
        self.jobs = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// `data` compressed by the bzip2 crate at `level` (100 kB blocks
    /// per level).
    fn bzip2(data: &[u8], level: u32) -> Vec<u8> {
        let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::new(level));
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    /// Random bytes, runs of zeros and of one byte: many blocks of every
    /// kind at level 1.
    fn image() -> Vec<u8> {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut data = Vec::new();
        for round in 0..6u8 {
            data.extend((0..150_000).map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            }));
            data.extend(std::iter::repeat_n(0, 3_000_000));
            data.extend(std::iter::repeat_n(round + 1, 700_000));
        }
        data
    }

    fn read_all(mut r: impl Read) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn multi_block_and_concatenated_streams_decode_as_one() {
        let data = image();
        let one = bzip2(&data, 1);
        let back = read_all(ParallelBz2::new(io::Cursor::new(one))).unwrap();
        assert!(back == data, "one stream");
        // pbzip2's shape: streams end to end.
        let (a, b) = data.split_at(1_234_567);
        let mut two = bzip2(a, 1);
        two.extend(bzip2(b, 9));
        let back = read_all(ParallelBz2::new(io::Cursor::new(two))).unwrap();
        assert!(back == data, "two streams");
        let empty = bzip2(b"", 9);
        assert!(read_all(ParallelBz2::new(io::Cursor::new(empty)))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn truncated_and_damaged_streams_fail() {
        let data = image();
        let full = bzip2(&data, 1);
        let kind = |bytes: &[u8]| {
            read_all(ParallelBz2::new(io::Cursor::new(bytes.to_vec())))
                .err()
                .map(|e| e.kind())
        };
        for cut in [full.len() / 2, full.len() - 3, full.len() - 12] {
            assert_eq!(
                kind(&full[..cut]),
                Some(io::ErrorKind::UnexpectedEof),
                "cut at {cut}"
            );
        }
        let mut bad = full.clone();
        let at = bad.len() / 3;
        bad[at] ^= 0x10;
        assert!(kind(&bad).is_some(), "a flipped bit");
        let garbage: Vec<u8> = b"BZh9"
            .iter()
            .copied()
            .chain(std::iter::repeat_n(7, 5 << 20))
            .collect();
        assert_eq!(kind(&garbage), Some(io::ErrorKind::InvalidData));
    }

    #[test]
    fn repeated_zero_blocks_are_decoded_once_and_still_right() {
        let mut data = vec![0u8; 60 << 20];
        data.extend([1, 2, 3]);
        data.extend(std::iter::repeat_n(0, 60 << 20));
        let mut decoder = ParallelBz2::new(io::Cursor::new(bzip2(&data, 1)));
        let mut back = Vec::new();
        decoder.read_to_end(&mut back).unwrap();
        assert!(back == data);
        // Some 24 blocks of zeros, of two kinds: full ones, and the
        // shorter one before the stream's end.
        assert_eq!(
            decoder.zeros.len(),
            2,
            "each kind of all-zero block remembered once"
        );
    }

    /// Splits every block at an arbitrary bit, as a false magic found
    /// inside compressed data would.
    struct FalseMagics(Scanner<io::Cursor<Vec<u8>>>, VecDeque<Segment>);

    impl Segments for FalseMagics {
        fn next_segment(&mut self) -> io::Result<Option<Segment>> {
            if let Some(s) = self.1.pop_front() {
                return Ok(Some(s));
            }
            let Some(s) = self.0.next_segment()? else {
                return Ok(None);
            };
            let at = (s.body / 3) & !7;
            let head = Segment {
                bits: s.bits[..(at / 8) as usize].to_vec(),
                body: at,
                total: at,
                ended: true,
            };
            self.1.push_back(Segment {
                bits: s.bits[(at / 8) as usize..].to_vec(),
                body: s.body - at,
                total: s.total - at,
                ended: s.ended,
            });
            Ok(Some(head))
        }
    }

    #[test]
    fn a_block_split_by_a_false_magic_still_decodes() {
        let data = image();
        let scanner = Scanner::new(io::Cursor::new(bzip2(&data, 1)));
        let split = FalseMagics(scanner, VecDeque::new());
        let back = read_all(ParallelBz2::over(Box::new(split))).unwrap();
        assert!(back == data);
    }

    #[test]
    fn bits_are_written_and_read_back_at_any_alignment() {
        let src = [0b1011_0011u8, 0b0101_1110, 0b1111_0000];
        let mut w = BitWriter::default();
        w.push_bits(0b101, 3);
        w.push(&src, 20);
        assert_eq!(
            extract(&w.bytes, 3, 20),
            [0b1011_0011, 0b0101_1110, 0b1111_0000]
        );
        let magic = BLOCK_MAGIC.to_be_bytes();
        let mut shifted = BitWriter::default();
        shifted.push_bits(0b11111, 5);
        shifted.push(&magic[2..], 48);
        shifted.push_bits(0, 16);
        assert_eq!(
            find(&shifted.bytes, 0, &prefilter()),
            Some((5, Magic::Block))
        );
    }
}
