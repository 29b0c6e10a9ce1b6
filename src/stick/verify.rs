//! `verify`: read a stick back and prove it — against its source and plan,
//! or, with no source at hand, by checking it is self-consistent and every
//! module is intact.
//!
//! Every check becomes an item of the report; a damaged stick is a failed
//! report (exit 1), never an error. Errors are for a source that cannot
//! be read (exit 2).

use std::ops::ControlFlow;

use serde::Serialize;

use crate::digest::{self, Digests, FileDigest, FileHasher};
use crate::error::{Error, Result};
use crate::esxi::inventory::{self, Inventory};
use crate::esxi::modules;
use crate::image::source::{Source, CHUNK, SECTOR};
use crate::ondisk::bpb::BootSector;
use crate::ondisk::fat::{FileEntry, Volume};
use crate::ondisk::fsck;
use crate::ondisk::table::{self, NotADisk, Partition, Scheme};
use crate::ondisk::vmfat::{self, FatUuid};
use crate::plan::choose;
use crate::plan::{BankPlan, Payload, PayloadFile, Plan, UuidOrigin};

/// Version of the JSON report `verify --json` prints.
pub const SCHEMA: &str = "esxstick.verify/1";

/// One thing checked.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked: "partition table", "boot partition",
    /// "bank 5: sys.vgz", …
    pub item: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found (where it differs, on failure).
    pub detail: String,
}

/// The outcome of a verification.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// `against-source` or `self-check`.
    pub mode: &'static str,
    /// The layout the stick was compared with (against a source).
    pub layout: Option<String>,
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// Whether every check passed.
    pub ok: bool,
}

impl VerifyReport {
    /// An empty report of `mode`, for `layout`.
    pub(crate) fn new(mode: &'static str, layout: Option<String>) -> VerifyReport {
        VerifyReport {
            schema: SCHEMA,
            mode,
            layout,
            checks: Vec::new(),
            ok: true,
        }
    }

    /// Adds one check.
    pub(crate) fn add(&mut self, item: impl Into<String>, ok: bool, detail: impl Into<String>) {
        self.ok &= ok;
        self.checks.push(Check {
            item: item.into(),
            ok,
            detail: detail.into(),
        });
    }

    /// The failed checks, as "item: detail".
    pub fn failures(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.item, c.detail))
            .collect()
    }
}

/// Verifies `stick` against `source` (whose inventory is `inv` and
/// payload `payload`) with the plan it was written with: `layout` and
/// `size` when given, else recognised from the stick's table (see
/// [`choose::plan_of_stick`]). A stick without a partition table fails
/// the table check, saying what leaves a stick so.
pub fn against_stick(
    stick: &Source,
    source: &Source,
    inv: &Inventory,
    payload: &Payload,
    layout: Option<&str>,
    size: Option<u64>,
) -> Result<VerifyReport> {
    if let Err(e @ Error::NotADiskImage(_)) = table::read(stick) {
        let mut report = VerifyReport::new("against-source", None);
        report.add("partition table", false, no_table(&e));
        return Ok(report);
    }
    let plan = choose::plan_of_stick(stick, payload, layout, size)?;
    against(stick, source, inv, &plan, &Digests::default())
}

/// What a stick without a valid partition table is told: the reason, and
/// that an interrupted or failed write leaves a stick so.
fn no_table(e: &Error) -> String {
    match e {
        Error::NotADiskImage(NotADisk::NoSignature) => format!(
            "{e}: an interrupted or failed write leaves a stick like this; run esxstick write again"
        ),
        _ => e.to_string(),
    }
}

/// Verifies `stick` against the source it was written from: the table as
/// planned, the boot partition's bytes (after the planned patch), each
/// bank's boot sector, label and ID, every file equal to the source's
/// (by BLAKE3, see [`crate::digest`]; the report shows the SHA-256), and
/// FAT consistency. `known` holds source-file hashes already computed (by
/// `write`, from the very bytes it copied); other files are hashed from
/// the source.
pub fn against(
    stick: &Source,
    source: &Source,
    inv: &Inventory,
    plan: &Plan,
    known: &Digests,
) -> Result<VerifyReport> {
    let mut report = VerifyReport::new("against-source", Some(plan.layout.clone()));
    check_table(stick, inv, plan, &mut report);
    check_boot(stick, source, inv, plan, &mut report)?;
    let from = inv
        .partition(inv.active_bank.partition)
        .map(|p| p.partition.clone());
    let source_volume = match &from {
        Some(p) => Some(Volume::open(source, p)?),
        None => None,
    };
    for bank in &plan.banks {
        check_bank(
            stick,
            source_volume.as_ref(),
            plan,
            bank,
            known,
            &mut report,
        )?;
    }
    Ok(report)
}

fn check_table(stick: &Source, inv: &Inventory, plan: &Plan, report: &mut VerifyReport) {
    let table = match table::read(stick) {
        Ok(t) => t,
        Err(e) => return report.add("partition table", false, e.to_string()),
    };
    let mut diffs = Vec::new();
    for p in &plan.partitions {
        let want = p.partition();
        match table.get(p.entry) {
            Some(got) if *got == want => {}
            Some(got) => diffs.push(format!(
                "entry {} is {} {}+{}{}, planned {} {}+{}{}",
                p.entry,
                got.kind.code(),
                got.start,
                got.sectors,
                if got.active { " active" } else { "" },
                want.kind.code(),
                want.start,
                want.sectors,
                if want.active { " active" } else { "" }
            )),
            None => diffs.push(format!("entry {} is missing", p.entry)),
        }
    }
    for got in &table.partitions {
        if !plan.partitions.iter().any(|p| p.entry == got.number) {
            diffs.push(format!("entry {} is not in the plan", got.number));
        }
    }
    if table.boot_code != inv.boot_code {
        diffs.push("the MBR boot code differs from the source's".into());
    }
    if table.scheme == Scheme::Gpt {
        diffs.extend(gpt_problems(stick, table.disk_sectors));
    }
    let detail = if diffs.is_empty() {
        format!(
            "{} entries as planned, source boot code{}",
            plan.partitions.len(),
            match table.scheme {
                Scheme::Gpt => ", protective MBR, backup GPT equal to the primary",
                Scheme::Mbr => "",
            }
        )
    } else {
        diffs.join("; ")
    };
    report.add("partition table", diffs.is_empty(), detail);
}

/// What the table reader lets pass on a GPT stick (it needs only one
/// valid header and reads one entry array): a protective MBR that does
/// not cover the disk, a damaged or misplaced backup header, a backup
/// entry array that is damaged or differs from the primary's. Call after
/// [`table::read`] accepted the stick (it bounds the entry arrays).
fn gpt_problems(stick: &Source, disk_sectors: u64) -> Vec<String> {
    let lb = gpt::disk::LogicalBlockSize::Lb512;
    let mut problems = Vec::new();
    match gpt::mbr::ProtectiveMBR::from_disk(&mut stick.reader(), lb) {
        Ok(mbr) => {
            let covered = u32::try_from(disk_sectors.saturating_sub(1)).unwrap_or(u32::MAX);
            let protective = mbr
                .partition(0)
                .is_some_and(|p| p.os_type == 0xee && p.lb_start == 1 && p.lb_size == covered);
            let others_empty = (1..4).all(|i| mbr.partition(i).is_some_and(|p| p.os_type == 0));
            if !(protective && others_empty) {
                problems.push(format!(
                    "the protective MBR does not cover sectors 1..{} with one 0xEE entry",
                    disk_sectors.saturating_sub(1)
                ));
            }
        }
        Err(e) => problems.push(format!("protective MBR: {e}")),
    }
    let disk = match gpt::GptConfig::new()
        .logical_block_size(lb)
        .only_valid_headers(true)
        .open_from_device(stick.reader())
    {
        Ok(disk) => disk,
        Err(e) => {
            problems.push(format!(
                "the primary (sector 1) or backup (sector {}) GPT header is invalid: {e}",
                disk_sectors.saturating_sub(1)
            ));
            return problems;
        }
    };
    let (Ok(primary), Ok(backup)) = (disk.primary_header(), disk.backup_header()) else {
        problems.push("a GPT header is missing".into());
        return problems;
    };
    if primary.backup_lba != backup.current_lba || backup.backup_lba != primary.current_lba {
        problems.push(format!(
            "the GPT headers do not point at each other (primary at {} names {}, backup at {} names {})",
            primary.current_lba, primary.backup_lba, backup.current_lba, backup.backup_lba
        ));
    }
    match gpt::partition::file_read_partitions(&mut stick.reader(), backup, lb) {
        Ok(entries) if &entries == disk.partitions() => {}
        Ok(_) => problems.push("the backup GPT entries differ from the primary's".into()),
        Err(e) => problems.push(format!("backup GPT entries: {e}")),
    }
    problems
}

fn check_boot(
    stick: &Source,
    source: &Source,
    inv: &Inventory,
    plan: &Plan,
    report: &mut VerifyReport,
) -> Result<()> {
    let b = &plan.boot;
    let bs = &inv.boot.boot_sector;
    let (from, to) = (b.source_start * SECTOR, b.target_start * SECTOR);
    let mut got = vec![0; CHUNK];
    let total = b.copy_sectors * SECTOR;
    let compared = source.for_each_chunk(from, total, "the boot partition", |at, want| {
        if at == 0 {
            b.patch(want, bs);
        }
        let got = got.get_mut(..want.len()).unwrap_or_default();
        if let Err(e) = stick.read_at(to + at, got, "the stick's boot partition") {
            return Ok(ControlFlow::Break(e.to_string()));
        }
        Ok(
            match want.iter().zip(got.iter()).position(|(w, g)| w != g) {
                Some(i) => {
                    let at = at + i as u64;
                    ControlFlow::Break(format!(
                        "differs from the source at byte {at} (sector {} of the partition)",
                        at / SECTOR
                    ))
                }
                None => ControlFlow::Continue(()),
            },
        )
    })?;
    if let ControlFlow::Break(difference) = compared {
        report.add("boot partition", false, difference);
        return Ok(());
    }
    report.add(
        "boot partition",
        true,
        format!(
            "{} sectors equal to the source (BPB patched as planned)",
            b.copy_sectors
        ),
    );
    fsck_item(
        stick,
        b.target_start,
        b.partition_sectors,
        "boot partition FAT",
        report,
    )
}

fn check_bank(
    stick: &Source,
    source_volume: Option<&Volume>,
    plan: &Plan,
    bank: &BankPlan,
    known: &Digests,
    report: &mut VerifyReport,
) -> Result<()> {
    let Some(planned) = plan.partitions.iter().find(|p| p.entry == bank.entry) else {
        report.add(
            format!("bank {}", bank.entry),
            false,
            "not in the plan's table",
        );
        return Ok(());
    };
    check_bank_at(
        stick,
        source_volume,
        &planned.partition(),
        bank,
        known,
        report,
    )
}

/// Checks the bank `bank` planned, found on the stick at `part`: boot
/// sector, UUID, FAT, label, every planned file equal to what was copied
/// (`known`, the replacement, or the source's file) and no file more.
fn check_bank_at(
    stick: &Source,
    source_volume: Option<&Volume>,
    part: &Partition,
    bank: &BankPlan,
    known: &Digests,
    report: &mut VerifyReport,
) -> Result<()> {
    let name = format!("bank {}", bank.entry);
    let part = part.clone();
    check_bank_boot_sector(stick, part.start, bank, &name, report);
    check_bank_uuid(stick, part.start, bank, &name, report);
    fsck_item(
        stick,
        part.start,
        part.sectors,
        &format!("{name} FAT"),
        report,
    )?;
    let volume = match Volume::open(stick, &part) {
        Ok(v) => v,
        Err(e) => {
            report.add(&name, false, e.to_string());
            return Ok(());
        }
    };
    check_label(&volume, bank, &name, report);
    let on_stick = match volume.files() {
        Ok(files) => files,
        Err(e) => {
            report.add(format!("{name} files"), false, e.to_string());
            return Ok(());
        }
    };
    let bank_files = BankFiles {
        name: &name,
        volume: &volume,
        on_stick: &on_stick,
    };
    if let Some(text) = &bank.generated_boot_cfg {
        bank_files.check_generated_boot_cfg(text, report);
    }
    for f in &bank.files {
        let want = || match &f.replaced {
            Some(r) => Ok(Some(FileDigest::of(&r.bytes))),
            None => source_digest(f, known, source_volume),
        };
        bank_files.check_file(f, want, report)?;
    }
    bank_files.check_no_others(bank, report);
    Ok(())
}

/// Checks that the bank's boot sector, at `start`, is the planned one.
fn check_bank_boot_sector(
    stick: &Source,
    start: u64,
    bank: &BankPlan,
    name: &str,
    report: &mut VerifyReport,
) {
    let item = format!("{name} boot sector");
    let bpb = stick
        .read_sector(start, "the bank's boot sector")
        .ok()
        .and_then(|s| BootSector::parse(&s).ok());
    match bpb {
        Some(bs) if bs == bank.fat => report.add(item, true, "as planned"),
        Some(bs) => report.add(item, false, bs.differences(&bank.fat)),
        None => report.add(item, false, "not a FAT boot sector"),
    }
}

/// Checks the bank's VMware FAT UUID sector: the planned UUID where it
/// comes from the source; where it was fresh (and a later plan cannot
/// know it), a USB-style UUID that is not the planned source's.
fn check_bank_uuid(
    stick: &Source,
    start: u64,
    bank: &BankPlan,
    name: &str,
    report: &mut VerifyReport,
) {
    let item = format!("{name} UUID");
    let found = stick
        .read_sector(start + vmfat::SECTOR_INDEX, "the bank's UUID sector")
        .ok()
        .and_then(|s| FatUuid::parse(&s));
    let fresh = bank.uuid_from == UuidOrigin::Fresh;
    match found {
        None => report.add(
            item,
            false,
            "no VMware FAT UUID sector: ESXi's boot loader would not find the bank",
        ),
        Some(uuid) if uuid == bank.uuid => {
            report.add(item, true, format!("{uuid} ({})", bank.uuid_from))
        }
        Some(uuid) if fresh && uuid.0[0] >> 4 == 0xe => {
            report.add(item, true, format!("{uuid} (fresh when written)"))
        }
        Some(uuid) => report.add(
            item,
            false,
            format!("{uuid}, planned {} ({})", bank.uuid, bank.uuid_from),
        ),
    }
}

/// Checks the bank's volume label and ID.
fn check_label(volume: &Volume, bank: &BankPlan, name: &str, report: &mut VerifyReport) {
    let item = format!("{name} label");
    match volume.info() {
        Ok(info) if info.label == bank.label && info.volume_id == bank.volume_id => {
            report.add(item, true, format!("{} {}", info.label, info.volume_id))
        }
        Ok(info) => {
            let mut diffs = Vec::new();
            if info.label != bank.label {
                diffs.push(format!("label {:?}, planned {:?}", info.label, bank.label));
            }
            if info.volume_id != bank.volume_id {
                diffs.push(format!(
                    "volume ID {}, planned {}",
                    info.volume_id, bank.volume_id
                ));
            }
            report.add(item, false, diffs.join("; "))
        }
        Err(e) => report.add(item, false, e.to_string()),
    }
}

/// A bank's volume on the stick and the files found in it.
struct BankFiles<'a, 'v> {
    /// "bank N", as the report's items begin.
    name: &'a str,
    volume: &'a Volume<'v>,
    on_stick: &'a [FileEntry],
}

impl BankFiles<'_, '_> {
    /// The file named `name` on the stick, ignoring case as FAT does.
    fn find(&self, name: &str) -> Option<&FileEntry> {
        self.on_stick
            .iter()
            .find(|f| f.path.eq_ignore_ascii_case(name))
    }

    /// Checks that the bank's boot.cfg is the generated `text`.
    fn check_generated_boot_cfg(&self, text: &str, report: &mut VerifyReport) {
        let item = format!("{}: boot.cfg", self.name);
        match self.find("boot.cfg") {
            Some(f) => match self.volume.read_small(f, crate::esxi::bootcfg::MAX_BYTES) {
                Ok(bytes) if bytes == text.as_bytes() => report.add(item, true, "as generated"),
                Ok(_) => report.add(item, false, "differs from the generated boot.cfg"),
                Err(e) => report.add(item, false, e.to_string()),
            },
            None => report.add(item, false, "missing"),
        }
    }

    /// Checks that the planned file `f` is on the stick as it is in the
    /// source, whose hashes `want` gives (`None`: not found there) once
    /// the stick's copy is hashed: equal BLAKE3 sums, reported with the
    /// source's SHA-256.
    fn check_file(
        &self,
        f: &PayloadFile,
        want: impl FnOnce() -> Result<Option<FileDigest>>,
        report: &mut VerifyReport,
    ) -> Result<()> {
        let item = format!("{}: {}", self.name, f.name);
        let Some(got) = self.find(&f.name) else {
            report.add(item, false, "missing on the stick");
            return Ok(());
        };
        let stick_hash = match hash_file(self.volume, got) {
            Ok(h) => h,
            Err(e) => {
                report.add(item, false, e.to_string());
                return Ok(());
            }
        };
        match want()? {
            Some(want) if want.blake3 == stick_hash => {
                report.add(item, true, format!("sha256 {}", want.sha256))
            }
            Some(want) => report.add(
                item,
                false,
                format!(
                    "differs from the source: BLAKE3 {stick_hash} on the stick, {} in the source",
                    want.blake3
                ),
            ),
            None => report.add(item, false, "not found in the source bank"),
        }
        Ok(())
    }

    /// Fails every file on the stick that the plan does not put there.
    fn check_no_others(&self, bank: &BankPlan, report: &mut VerifyReport) {
        let planned = |path: &str| {
            bank.files.iter().any(|f| f.name.eq_ignore_ascii_case(path))
                || (bank.generated_boot_cfg.is_some() && path.eq_ignore_ascii_case("boot.cfg"))
        };
        for extra in self.on_stick.iter().filter(|s| !planned(&s.path)) {
            report.add(
                format!("{}: {}", self.name, extra.path),
                false,
                "on the stick but not in the plan",
            );
        }
    }
}

/// The hashes of the planned file `f` in the source: as `write`
/// computed them (`known`), or read from the source's bank (`None` when
/// there is none).
fn source_digest(
    f: &PayloadFile,
    known: &Digests,
    source_volume: Option<&Volume>,
) -> Result<Option<FileDigest>> {
    let entry = || FileEntry {
        path: f.name.clone(),
        bytes: f.bytes,
    };
    Ok(match (known.get(&f.name), source_volume) {
        (Some(digest), _) => Some(digest),
        (None, Some(v)) => {
            let mut hasher = FileHasher::default();
            v.copy_file(&entry(), &mut hasher)?;
            Some(hasher.finish())
        }
        (None, None) => None,
    })
}

/// The BLAKE3 of `entry`, read from `volume`.
fn hash_file(volume: &Volume, entry: &FileEntry) -> Result<String> {
    digest::blake3_of(|into| volume.copy_file(entry, into).map(drop))
}

fn fsck_item(
    stick: &Source,
    start: u64,
    sectors: u64,
    item: &str,
    report: &mut VerifyReport,
) -> Result<()> {
    match fsck::check(stick, start, sectors) {
        Ok(problems) if problems.is_empty() => report.add(item, true, "consistent"),
        Ok(problems) => report.add(item, false, problems.join("; ")),
        Err(e) => report.add(item, false, e.to_string()),
    }
    Ok(())
}

/// Verifies a stick after `update` rebuilt its bank `bank` at `part`
/// from the active bank of `source` (`inv`): the stick's self-check
/// ([`self_check`]), that ESXi's boot loader now chooses the new bank,
/// and the new bank as planned — boot sector, the UUID it kept, label,
/// FAT, every file as copied (`known`) and no file more.
pub fn updated(
    stick: &Source,
    source: &Source,
    inv: &Inventory,
    bank: &BankPlan,
    part: &Partition,
    known: &Digests,
) -> Result<VerifyReport> {
    let mut report = self_check(stick)?;
    report.mode = "update";
    let chosen = inventory::read(stick, None).map(|i| i.active_bank.partition);
    match chosen {
        Ok(n) if n == bank.entry => report.add(
            "updated bank",
            true,
            format!("bank {n}, as ESXi's boot loader chooses it now"),
        ),
        Ok(n) => report.add(
            "updated bank",
            false,
            format!(
                "ESXi's boot loader would choose bank {n}, not the new bank {}",
                bank.entry
            ),
        ),
        Err(e) => report.add("updated bank", false, e.to_string()),
    }
    let source_volume = Volume::open(source, &inv.active_partition()?.partition)?;
    check_bank_at(stick, Some(&source_volume), part, bank, known, &mut report)?;
    Ok(report)
}

/// Checks a stick on its own: a sane table (on GPT also the protective
/// MBR and the backup header and entries), a boot partition with a boot
/// signature and ldlinux.sys, consistent FATs, a boot.cfg whose every
/// module exists, and every gzip module complete with a correct CRC-32
/// and length.
pub fn self_check(stick: &Source) -> Result<VerifyReport> {
    let mut report = VerifyReport::new("self-check", None);
    let mut inv = match inventory::read(stick, None) {
        Ok(inv) => inv,
        Err(e) => {
            report.add("stick", false, no_table(&e));
            return Ok(report);
        }
    };
    let table = format!("{} entries, in bounds, no overlaps", inv.partitions.len());
    match inv.source.scheme {
        Scheme::Mbr => report.add("partition table", true, table),
        Scheme::Gpt => {
            let problems = gpt_problems(stick, inv.source.disk_sectors);
            let detail = if problems.is_empty() {
                format!("{table}, protective MBR, backup GPT equal to the primary")
            } else {
                problems.join("; ")
            };
            report.add("partition table", problems.is_empty(), detail);
        }
    }
    report.add(
        "boot partition",
        true,
        "FAT boot sector with signature 55 AA",
    );
    if let Some(boot) = inv.partition(inv.boot.partition) {
        check_syslinux(stick, &boot.partition, &mut report)?;
    }
    check_uuids(&inv, &mut report);
    for bank in inv.banks.iter().filter(|b| b.boot_cfg.is_some()) {
        if let Some(p) = inv.partition(bank.partition) {
            let item = format!("bank {} FAT", bank.partition);
            fsck_item(
                stick,
                p.partition.start,
                p.partition.sectors,
                &item,
                &mut report,
            )?;
        }
    }
    let active = inv.active_bank.partition;
    match inv.check_complete() {
        Ok(()) => report.add(
            format!("bank {active}: boot.cfg"),
            true,
            format!("names {} files, all present", inv.modules.len() - 1),
        ),
        Err(e) => report.add(format!("bank {active}: boot.cfg"), false, e.to_string()),
    }
    check_modules(stick, &mut inv, &mut report);
    Ok(report)
}

/// Checks what ESXi's loader needs to find the stick's banks: every bank
/// has the VMware FAT UUID sector, no two share a UUID, and the active
/// bank is one the loader may boot.
fn check_uuids(inv: &Inventory, report: &mut VerifyReport) {
    for bank in &inv.banks {
        let item = format!("bank {} UUID", bank.partition);
        let twin = inv
            .banks
            .iter()
            .find(|b| b.partition != bank.partition && b.uuid.is_some() && b.uuid == bank.uuid);
        match (bank.uuid, twin) {
            (None, _) => report.add(
                item,
                false,
                "no VMware FAT UUID sector: ESXi's boot loader would not count it as a bank",
            ),
            (Some(uuid), Some(twin)) => report.add(
                item,
                false,
                format!("{uuid}, the same as bank {}'s", twin.partition),
            ),
            (Some(uuid), None) => report.add(item, true, uuid.to_string()),
        }
    }
    let active = inv.active_bank.partition;
    let rule = inv.bank(active).and_then(|b| b.excluded.as_ref());
    match rule {
        None if inv.warnings.is_empty() => report.add(
            "active bank",
            true,
            format!("bank {active}, as ESXi's boot loader chooses"),
        ),
        None => report.add(
            "active bank",
            false,
            format!("bank {active}, but ESXi's boot loader finds no bank"),
        ),
        Some(rule) => report.add(
            "active bank",
            false,
            format!("bank {active} is not bootable: {rule}"),
        ),
    }
}

/// Checks that the boot partition holds ldlinux.sys and a consistent FAT.
fn check_syslinux(stick: &Source, boot: &Partition, report: &mut VerifyReport) -> Result<()> {
    let ldlinux = Volume::open(stick, boot).and_then(|v| v.find("ldlinux.sys"));
    match ldlinux {
        Ok(Some(_)) => report.add("boot partition: ldlinux.sys", true, "present"),
        Ok(None) => report.add(
            "boot partition: ldlinux.sys",
            false,
            "missing: SYSLINUX cannot boot",
        ),
        Err(e) => report.add("boot partition: ldlinux.sys", false, e.to_string()),
    }
    fsck_item(
        stick,
        boot.start,
        boot.sectors,
        "boot partition FAT",
        report,
    )
}

/// Checks every module of the active bank that is there: a gzip module
/// must be complete, with a correct CRC-32 and length.
fn check_modules(stick: &Source, inv: &mut Inventory, report: &mut VerifyReport) {
    let active = inv.active_bank.partition;
    if let Err(e) = modules::check(stick, inv) {
        return report.add(format!("bank {active}"), false, e.to_string());
    }
    for m in inv.modules.iter().filter(|m| m.is_module() && m.present) {
        if let Some(check) = &m.check {
            report.add(
                format!("bank {active}: {}", m.name),
                check.ok,
                &check.detail,
            );
        }
    }
}
