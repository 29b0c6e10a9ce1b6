//! `update`: a stick updated in place the way ESXi upgrades itself. The
//! stick's inactive bank (by safeboot's rules) is rebuilt with the new
//! image — a source's active bank, or the stick's own — carrying the
//! host's state.tgz over, and its boot.cfg gets an `updated=` one above
//! the highest on the stick and `bootstate=0`, so the loader boots it
//! next; the active bank is not touched and stays the fallback. The
//! partition table, the boot partition and each bank's VMware FAT UUID
//! stay as they are.
//!
//! The order makes a crash at any moment harmless — the bank the loader
//! chooses is always complete, the old one or the new one:
//!
//! 1. the inactive bank's boot.cfg, if it has one, is rewritten in place
//!    (same length, no FAT change) to say `bootstate=3` — ineligible —
//!    and synced;
//! 2. the bank is formatted anew (its UUID, label and volume ID kept):
//!    it now has no boot.cfg, so the loader does not count it; synced;
//! 3. every file but boot.cfg is copied in, each gzip module checked
//!    (CRC-32 and length) on a second core as it goes; synced; a damaged
//!    module stops the update here, the bank without a boot.cfg;
//! 4. boot.cfg is written last (its directory entry lands with the
//!    metadata, after its data) and synced: from here the loader boots
//!    the new bank.

use std::cell::Cell;
use std::io::{Seek, SeekFrom, Write};

use serde::Serialize;

use crate::digest::Digests;
use crate::error::{Error, Result, UpdateProblem};
use crate::esxi::bootcfg;
use crate::esxi::config::state::STATE_TGZ;
use crate::esxi::config::{self, bank_file, Given, Replacement, Upgrade, MAX_FILE_BYTES};
use crate::esxi::inventory::Inventory;
use crate::esxi::modules::Checker;
use crate::image::source::{Source, SECTOR};
use crate::image::stream::StreamReport;
use crate::ondisk::bpb::BootSector;
use crate::ondisk::table::{Partition, Scheme};
use crate::ondisk::vmfat::FatUuid;
use crate::plan::layout::Geometry;
use crate::plan::{self, BankPlan, InPlace, Payload};
use crate::progress::{Observer, Phase, PhaseTime, Timer};
use crate::stick::device::Target;
use crate::stick::verify::{self, VerifyReport};
use crate::stick::write::{with_bank, Disk, Fill, Session};

/// Version of the JSON report `update --json` prints.
pub const SCHEMA: &str = "esxstick.update/1";
/// The file whose arrival makes a bank bootable, written last.
const BOOT_CFG: &str = "boot.cfg";
/// What the inactive bank's boot.cfg says while the bank is rebuilt.
const INELIGIBLE: &[u8] = b"bootstate=3\nupdated=0\n";

/// What an update will do: plain data, shown before it is carried out.
#[derive(Debug, Clone, Serialize)]
pub struct UpdatePlan {
    /// The stick.
    pub stick: String,
    /// Where the new bank's files come from: the source's path, or the
    /// stick itself.
    pub source: String,
    /// The bank the loader boots now: not written, the fallback after.
    pub active: u32,
    /// Its build.
    pub active_build: Option<String>,
    /// The bank rebuilt, as planned.
    pub bank: BankPlan,
    /// Where it lies on the stick.
    pub partition: Partition,
    /// The new bank's build.
    pub build: Option<String>,
    /// The new bank's `updated=`: one above the highest on the stick.
    pub updated: u64,
    /// Sectors of metadata of the bank's present file system, when it
    /// has a boot.cfg to make ineligible first; `null` when it has none.
    pub ineligible_first: Option<u64>,
}

/// Plans the update of `stick` (whose inventory `stick_inv` chose its
/// active bank by safeboot's rules) from `source`'s active bank, or the
/// stick's own when `source` is `None`, with what the user `given`. The
/// new bank carries the stick's state.tgz unless one is given. Refused
/// (nothing written) when the stick has no alternate bank, the alternate
/// bank cannot hold the new files and their headroom, or the source is
/// of the other partitioning.
pub fn plan(
    stick: &Source,
    stick_inv: &Inventory,
    source: Option<(&Source, &Inventory)>,
    given: &Given,
) -> Result<UpdatePlan> {
    let refuse = |problem| Error::Update {
        path: stick.path().to_path_buf(),
        problem,
    };
    let active = stick_inv.active_bank.partition;
    let inactive = if active == 5 { 6 } else { 5 };
    let part = stick_inv
        .partition(inactive)
        .ok_or_else(|| refuse(UpdateProblem::NoAlternateBank { active }))?;
    let (src, inv) = source.unwrap_or((stick, stick_inv));
    if inv.source.scheme != stick_inv.source.scheme {
        return Err(refuse(UpdateProblem::OtherScheme {
            stick: family(stick_inv.source.scheme),
            image: family(inv.source.scheme),
        }));
    }
    let updated = stick_inv
        .banks
        .iter()
        .filter_map(|b| b.boot_cfg.as_ref()?.updated)
        .max()
        .unwrap_or(0)
        + 1;
    let state = bank_file(stick, stick_inv, STATE_TGZ, MAX_FILE_BYTES)?
        .map(|bytes| Replacement::stick_state(active, bytes));
    let upgrade = Upgrade { state, updated };
    let files = config::replacements(src, inv, given, Some(upgrade))?;
    let payload = Payload::from_inventory(inv)?.with_replacements(files);
    let at = in_place(stick_inv, &part.partition)?;
    let needs = payload.files.iter().map(|f| f.bytes).sum::<u64>() + payload.config_headroom();
    let bank = plan::rebuilt(&payload, &at).ok_or_else(|| {
        refuse(UpdateProblem::BankTooSmall {
            bank: inactive,
            has: part.bytes,
            needs,
        })
    })?;
    let had_boot_cfg = stick_inv
        .bank(inactive)
        .is_some_and(|b| b.boot_cfg.is_some());
    let build = |i: &Inventory| i.boot_cfg().and_then(|c| c.build.clone());
    Ok(UpdatePlan {
        stick: stick.path().display().to_string(),
        source: match source {
            Some((s, _)) => s.path().display().to_string(),
            None => format!("the stick's own bank {active}"),
        },
        active,
        active_build: build(stick_inv),
        bank,
        partition: part.partition.clone(),
        build: build(inv),
        updated,
        ineligible_first: had_boot_cfg
            .then(|| meta_sectors(stick, &part.partition))
            .flatten(),
    })
}

/// "3.5/4.x (MBR)" or "5+ (GPT)".
fn family(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Mbr => "3.5/4.x (MBR)",
        Scheme::Gpt => "5+ (GPT)",
    }
}

/// Sectors from a FAT volume's boot sector to its first data sector.
fn meta_sectors(stick: &Source, part: &Partition) -> Option<u64> {
    let sector = stick.read_sector(part.start, "a bank's boot sector").ok()?;
    BootSector::parse(&sector)
        .ok()
        .map(|bs| bs.first_data_sector())
}

/// What the stick's bank `part` keeps when rebuilt: its UUID (a fresh one
/// if it has none, or the active bank's), label and volume ID (the active
/// bank's, renumbered, if its file system is unreadable), and the
/// stick's geometry.
fn in_place(stick_inv: &Inventory, part: &Partition) -> Result<InPlace> {
    let active = stick_inv.active_bank.partition;
    let uuid_of = |n: u32| stick_inv.bank(n).and_then(|b| b.uuid);
    let uuid = match uuid_of(part.number).filter(|u| Some(*u) != uuid_of(active)) {
        Some(uuid) => uuid,
        None => fresh_uuid(uuid_of(active))?,
    };
    let fs_of = |n: u32| stick_inv.partition(n).and_then(|p| p.fs.clone());
    let id = |fs: &crate::ondisk::fat::FsInfo| u32::from_str_radix(&fs.volume_id, 16).unwrap_or(0);
    let (label, volume_id) = match (fs_of(part.number), fs_of(active)) {
        (Some(own), _) => (own.label.clone(), id(&own)),
        (None, Some(other)) => {
            let stem = other.label.trim_end_matches(|c: char| c.is_ascii_digit());
            let label = format!("{stem}{}", part.number.saturating_sub(4));
            let volume_id = id(&other).wrapping_add(part.number).wrapping_sub(active);
            (label, volume_id)
        }
        (None, None) => (format!("Hypervisor{}", part.number.saturating_sub(4)), 0),
    };
    let bs = &stick_inv.boot.boot_sector;
    Ok(InPlace {
        entry: part.number,
        start: part.start,
        sectors: part.sectors,
        geometry: Geometry {
            heads: bs.heads,
            sectors_per_track: bs.sectors_per_track,
        },
        label,
        volume_id,
        uuid,
    })
}

/// A fresh UUID other than `taken`.
fn fresh_uuid(taken: Option<FatUuid>) -> Result<FatUuid> {
    loop {
        let uuid = FatUuid::fresh().map_err(|e| Error::Random {
            reason: e.to_string(),
        })?;
        if Some(uuid) != taken {
            return Ok(uuid);
        }
    }
}

/// The step of an update that failed, as [`Error::UpdateFailed`] names
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateStep {
    /// Making the bank's old boot.cfg ineligible.
    Invalidate(u32),
    /// Formatting the bank.
    Format(u32),
    /// Copying the files but boot.cfg.
    Files(u32),
    /// Checking the modules copied (their gzip streams).
    ModuleCheck(u32),
    /// Checking the rest of a compressed source (its MD5).
    SourceCheck,
    /// Writing boot.cfg, which makes the bank boot.
    Commit(u32),
}

impl std::fmt::Display for UpdateStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpdateStep::Invalidate(n) => write!(f, "making bank {n}'s boot.cfg ineligible"),
            UpdateStep::Format(n) => write!(f, "formatting bank {n}"),
            UpdateStep::Files(n) => write!(f, "copying files into bank {n}"),
            UpdateStep::ModuleCheck(n) => {
                write!(f, "the check of the modules copied into bank {n}")
            }
            UpdateStep::SourceCheck => f.write_str("the check of the source image"),
            UpdateStep::Commit(n) => write!(f, "writing bank {n}'s boot.cfg"),
        }
    }
}

/// What `update` did.
#[derive(Debug, Clone, Serialize)]
pub struct UpdateReport {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// The plan carried out.
    pub plan: UpdatePlan,
    /// Bytes passed to write calls on the stick.
    pub bytes_written: u64,
    /// Time per phase.
    pub phases: Vec<PhaseTime>,
    /// For a compressed source: how much of it was read, and its MD5.
    pub stream: Option<StreamReport>,
    /// The modules whose gzip streams were checked (CRC-32 and length)
    /// before boot.cfg made the bank bootable.
    pub modules_checked: Vec<String>,
}

/// What an update did, and how the stick verified after it.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The update.
    pub update: UpdateReport,
    /// The stick's self-check, and the new bank against its source.
    pub verify: VerifyReport,
}

/// Carries out `plan` on `target` (the stick), the new bank's files read
/// from the active bank of `source` (`inv`), in the crash-safe order this
/// module describes; then reads the stick back past the page cache and
/// verifies it (see [`verify::updated`]).
pub fn update(
    source: &Source,
    inv: &Inventory,
    plan: &UpdatePlan,
    target: &mut Target,
    observer: &dyn Observer,
) -> Result<Outcome> {
    target.prepare(target.bytes())?;
    let written = Cell::new(0);
    let disk = Disk::new(target, &written, observer);
    let n = plan.bank.entry;
    let fail = |step| {
        let path = target.path().to_path_buf();
        move |cause| Error::UpdateFailed {
            path,
            step,
            active: plan.active,
            cause: Box::new(cause),
        }
    };
    let extent = (plan.partition.start, plan.partition.sectors);
    let metadata = plan.bank.fat.first_data_sector() * SECTOR;
    let phase = Timer::start(observer, Phase::Prepare, metadata);
    if let Some(meta_sectors) = plan.ineligible_first {
        make_ineligible(&disk, extent, meta_sectors).map_err(fail(UpdateStep::Invalidate(n)))?;
    }
    with_bank(&disk, extent, Session::Format(&plan.bank), |_| Ok(()))
        .and_then(|()| disk.sync().map_err(|e| disk.err(e)))
        .map_err(fail(UpdateStep::Format(n)))?;
    phase.inc(metadata);
    let mut phases = vec![phase.finish()];
    let is_boot_cfg = |name: &str| name.eq_ignore_ascii_case(BOOT_CFG);
    let copy = Copy {
        source,
        inv,
        plan,
        disk: &disk,
        observer,
    };
    let mut digests = Digests::default();
    let checker = Checker::start(inv.active_bank.partition);
    let not_boot_cfg = |f: &str| !is_boot_cfg(f);
    let files = copy.files(Phase::Modules, &not_boot_cfg, &mut digests, Some(&checker));
    phases.push(files.map_err(fail(UpdateStep::Files(n)))?);
    let modules_checked = checker.finish().map_err(fail(UpdateStep::ModuleCheck(n)))?;
    // A stream's MD5 covers the whole image: the new bank is committed
    // only once the rest of it has been hashed.
    let check = Timer::start(observer, Phase::SourceCheck, 0);
    let stream = source.finish().map_err(fail(UpdateStep::SourceCheck))?;
    phases.push(check.finish());
    let commit = copy.files(Phase::Commit, &is_boot_cfg, &mut digests, None);
    phases.push(commit.map_err(fail(UpdateStep::Commit(n)))?);
    let timer = Timer::start(observer, Phase::Verify, plan.bank.used_bytes);
    let stick = Source::open_uncached(target.path())?;
    let verify = verify::updated(&stick, source, inv, &plan.bank, &plan.partition, &digests)?;
    timer.inc(plan.bank.used_bytes);
    phases.push(timer.finish());
    Ok(Outcome {
        update: UpdateReport {
            schema: SCHEMA,
            plan: plan.clone(),
            bytes_written: written.get(),
            phases,
            stream,
            modules_checked,
        },
        verify,
    })
}

/// Steps 3 and 4: files copied into the bank, synced.
struct Copy<'a> {
    source: &'a Source,
    inv: &'a Inventory,
    plan: &'a UpdatePlan,
    disk: &'a Disk<'a>,
    observer: &'a dyn Observer,
}

impl Copy<'_> {
    /// Copies the planned files `which` selects into the formatted bank
    /// (their hashes into `digests`, the modules among them handed to
    /// `checker`), writes the metadata back and syncs; reported as
    /// `phase`.
    fn files(
        &self,
        phase: Phase,
        which: &dyn Fn(&str) -> bool,
        digests: &mut Digests,
        checker: Option<&Checker>,
    ) -> Result<PhaseTime> {
        let bank = &self.plan.bank;
        let bytes = bank
            .files
            .iter()
            .filter(|f| which(&f.name))
            .map(|f| f.bytes)
            .sum();
        let timer = Timer::start(self.observer, phase, bytes);
        let fill = Fill {
            source: self.source,
            inv: self.inv,
            bank,
            disk: self.disk,
            done: &|b| timer.inc(b),
            checker,
            modules: &self.inv.modules,
        };
        let session = Session::Load {
            meta_sectors: bank.fat.first_data_sector(),
            commit: true,
        };
        let extent = (self.plan.partition.start, self.plan.partition.sectors);
        with_bank(self.disk, extent, session, |root| {
            fill.fill(root, Some(digests), which)
        })?;
        self.disk.sync().map_err(|e| self.disk.err(e))?;
        Ok(timer.finish())
    }
}

/// Step 1: the bank's boot.cfg rewritten in place, at its length, to say
/// `bootstate=3` (blank lines after): only its data changes, its tail
/// first and then its first sector, and no metadata is written. Synced.
fn make_ineligible(disk: &Disk, extent: (u64, u64), meta_sectors: u64) -> Result<()> {
    let session = Session::Load {
        meta_sectors,
        commit: false,
    };
    with_bank(disk, extent, session, |root| {
        let io = |e| disk.err(e);
        let mut file = root.open_file(BOOT_CFG).map_err(io)?;
        // Planned only for a boot.cfg the inventory read, so at most
        // bootcfg::MAX_BYTES.
        let len = file.seek(SeekFrom::End(0)).map_err(io)?;
        let mut text = INELIGIBLE.to_vec();
        text.resize(len.min(bootcfg::MAX_BYTES) as usize, b'\n');
        let head = text.len().min(SECTOR as usize);
        let (first, rest) = text.split_at(head);
        if !rest.is_empty() {
            file.seek(SeekFrom::Start(head as u64)).map_err(io)?;
            file.write_all(rest).map_err(io)?;
        }
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(first).map_err(io)?;
        file.flush().map_err(io)
    })?;
    disk.sync().map_err(|e| disk.err(e))
}
