//! Whether a bank's modules are intact: every gzip module (the kernel and
//! the modules boot.cfg names) must be a complete gzip stream whose every
//! member has the right CRC-32 and length. gzip and zstd images keep their
//! own checksum at the end of the stream, which esxstick never reads, and
//! a raw image has none: this check is what stands between a damaged
//! module and a stick that cannot boot.
//!
//! [`check`] checks the modules of an image in place (`inspect`, the
//! self-check of `verify`); [`Checker`] checks them on a second core while
//! `write` copies them, from the very bytes copied.

use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use flate2::write::MultiGzDecoder;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::esxi::inventory::Inventory;
use crate::ondisk::fat::Volume;

/// Chunks (of up to 1 MiB, as files are copied) queued for the checking
/// thread before the copy waits for it: bounds the memory in flight.
const QUEUE: usize = 8;

/// What the check found in one module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleCheck {
    /// Whether the module is intact (or not gzip at all).
    pub ok: bool,
    /// Whether it is a gzip stream (it starts with 1F 8B).
    pub gzip: bool,
    /// What was found: "gzip stream complete, CRC-32 and length correct",
    /// "read in full (not gzip)", or the damage.
    pub detail: String,
}

impl ModuleCheck {
    /// The verdict of a check that has been given the whole module.
    fn of(check: GzipCheck) -> ModuleCheck {
        let gzip = check.is_gzip();
        let (ok, detail) = match check.finish() {
            Ok(detail) => (true, detail),
            Err(detail) => (false, detail),
        };
        ModuleCheck { ok, gzip, detail }
    }

    /// A module that could not be read to its end.
    fn unreadable(detail: String) -> ModuleCheck {
        ModuleCheck {
            ok: false,
            gzip: false,
            detail,
        }
    }
}

/// Checks every module of the active bank that is present (not
/// boot.cfg), recording the verdict in [`crate::esxi::inventory::Module`]'s
/// `check`; [`Inventory::check_complete`] then fails on a damaged one.
pub fn check(source: &crate::image::source::Source, inv: &mut Inventory) -> Result<()> {
    let part = inv.active_partition()?.partition.clone();
    let volume = Volume::open(source, &part)?;
    for m in inv
        .modules
        .iter_mut()
        .filter(|m| m.is_module() && m.present)
    {
        let Some(entry) = volume.find(&m.name)? else {
            m.check = Some(ModuleCheck::unreadable("missing".into()));
            continue;
        };
        let mut check = GzipCheck::new();
        m.check = Some(match volume.copy_file(&entry, &mut check) {
            Ok(_) => ModuleCheck::of(check),
            Err(e) => ModuleCheck::unreadable(e.to_string()),
        });
    }
    Ok(())
}

/// A writer that checks the gzip stream written into it: every member's
/// CRC-32 and length, and that the stream is complete. Data that does not
/// start with the gzip magic (1F 8B) is accepted as not gzip.
pub struct GzipCheck {
    head: Vec<u8>,
    decoder: MultiGzDecoder<io::Sink>,
    damage: Option<String>,
}

impl GzipCheck {
    /// A check with nothing written yet.
    pub fn new() -> GzipCheck {
        GzipCheck {
            head: Vec::new(),
            decoder: MultiGzDecoder::new(io::sink()),
            damage: None,
        }
    }

    /// Whether what was written so far starts as a gzip stream does.
    pub fn is_gzip(&self) -> bool {
        self.head.get(..2) == Some(&[0x1f, 0x8b][..])
    }

    /// The verdict, once everything is written: what was found, or the
    /// damage.
    pub fn finish(mut self) -> std::result::Result<String, String> {
        if !self.is_gzip() {
            return Ok("read in full (not gzip)".into());
        }
        if let Some(damage) = self.damage {
            return Err(format!("damaged gzip stream: {damage}"));
        }
        self.decoder
            .try_finish()
            .map(|()| "gzip stream complete, CRC-32 and length correct".to_string())
            .map_err(|e| format!("damaged gzip stream: {e}"))
    }
}

impl Default for GzipCheck {
    fn default() -> GzipCheck {
        GzipCheck::new()
    }
}

impl Write for GzipCheck {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.head.len() < 2 {
            self.head.extend(buf.iter().take(2 - self.head.len()));
        }
        if self.damage.is_none() {
            if let Err(e) = self.decoder.write_all(buf) {
                self.damage = Some(e.to_string());
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What the copying thread sends the checking thread.
enum Piece {
    /// A module starts: its name.
    Start(String),
    /// The module's next bytes.
    Data(Vec<u8>),
    /// The module is complete.
    End,
}

/// Checks modules on a second core while they are copied: the copy hands
/// each module's bytes over ([`Checker::begin`], [`Checker::data`],
/// [`Checker::end`]), and [`Checker::finish`] gives the first damage found. Memory in flight is bounded: the copy
/// waits when the checking thread falls `QUEUE` chunks behind.
pub struct Checker {
    /// Bank partition number of the modules, for the error.
    partition: u32,
    tx: SyncSender<Piece>,
    worker: JoinHandle<Vec<(String, ModuleCheck)>>,
}

impl Checker {
    /// Starts the checking thread for modules of source bank `partition`.
    pub fn start(partition: u32) -> Checker {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        Checker {
            partition,
            tx,
            worker: std::thread::spawn(move || check_all(&rx)),
        }
    }

    /// Module `name` starts: the bytes passed to [`Checker::data`] until
    /// [`Checker::end`] are its contents.
    pub fn begin(&self, name: &str) {
        // A send fails only when the thread has gone; `finish` says so.
        let _ = self.tx.send(Piece::Start(name.to_string()));
    }

    /// The module's next bytes (copied: the checking thread owns them).
    pub fn data(&self, bytes: &[u8]) {
        if !bytes.is_empty() {
            let _ = self.tx.send(Piece::Data(bytes.to_vec()));
        }
    }

    /// The module is complete: the checking thread judges it.
    pub fn end(&self) {
        let _ = self.tx.send(Piece::End);
    }

    /// Waits for the checking thread and returns what it found: the
    /// names of the modules checked, or the first damaged module as
    /// [`Error::DamagedModule`].
    pub fn finish(self) -> Result<Vec<String>> {
        let Checker {
            partition,
            tx,
            worker,
        } = self;
        drop(tx);
        let checked = worker.join().map_err(|_| Error::DamagedModule {
            partition,
            name: String::new(),
            problem: "the module check stopped unexpectedly".into(),
        })?;
        if let Some((name, check)) = checked.iter().find(|(_, c)| !c.ok) {
            return Err(Error::DamagedModule {
                partition,
                name: name.clone(),
                problem: check.detail.clone(),
            });
        }
        Ok(checked.into_iter().map(|(name, _)| name).collect())
    }
}

/// The checking thread: one [`GzipCheck`] per module, in the order sent.
fn check_all(rx: &Receiver<Piece>) -> Vec<(String, ModuleCheck)> {
    let mut done = Vec::new();
    let mut current: Option<(String, GzipCheck)> = None;
    for piece in rx {
        match piece {
            Piece::Start(name) => current = Some((name, GzipCheck::new())),
            Piece::Data(bytes) => {
                if let Some((_, check)) = &mut current {
                    let _ = check.write_all(&bytes);
                }
            }
            Piece::End => {
                if let Some((name, check)) = current.take() {
                    done.push((name, ModuleCheck::of(check)));
                }
            }
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn the_checker_names_the_first_damaged_module_and_passes_the_rest() {
        let good = gzip(&[7u8; 100_000]);
        let mut bad = gzip(&(0..200_000u32).map(|i| i as u8).collect::<Vec<_>>());
        let at = bad.len() - 6; // inside the trailer's CRC-32
        bad[at] ^= 0x40;
        let checker = Checker::start(5);
        for (name, bytes) in [
            ("good.gz", &good),
            ("bad.gz", &bad),
            ("plain", &good[2..].to_vec()),
        ] {
            checker.begin(name);
            for piece in bytes.chunks(4096) {
                checker.data(piece);
            }
            checker.end();
        }
        match checker.finish() {
            Err(Error::DamagedModule {
                partition: 5,
                name,
                problem,
            }) => {
                assert_eq!(name, "bad.gz");
                assert!(problem.contains("damaged gzip stream"), "{problem}");
            }
            other => panic!("expected the damaged module, got {other:?}"),
        }

        let checker = Checker::start(5);
        // A module begun but never ended is not judged.
        checker.begin("cut.gz");
        checker.data(&bad[..1000]);
        checker.begin("good.gz");
        checker.data(&good);
        checker.end();
        assert_eq!(checker.finish().unwrap(), ["good.gz"]);
    }
}
