//! What the commands print: plain text for people (tables sized for an
//! 80-column terminal where they can be) and JSON for programs.

use esxstick::esxi::config::backup::BackupReport;
use esxstick::esxi::installer::Installer;
use esxstick::esxi::inventory::Inventory;
use esxstick::image::source::SECTOR;
use esxstick::ondisk::table::Scheme;
use esxstick::plan::choose::SmallestTarget;
use esxstick::plan::installer::{FileFrom, InstallerPlan};
use esxstick::plan::{BankPlan, Plan, PlannedPartition};
use esxstick::size::{self, group, human};
use esxstick::stick::devices::{Device, Fit};
use esxstick::stick::update::{UpdatePlan, UpdateReport};
use esxstick::stick::verify::VerifyReport;
use esxstick::stick::wipe::WipeReport;
use esxstick::stick::write::WriteReport;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

/// Appends one formatted line to a String (formatting into a String
/// cannot fail).
macro_rules! line {
    ($out:expr) => {
        $out.push('\n')
    };
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}

/// Whether a JSON document has been printed on stdout (a failure after
/// it is then in the document, or implied by it, not a second one).
static JSON_PRINTED: AtomicBool = AtomicBool::new(false);

/// Pretty JSON with a closing newline.
pub fn to_json<T: Serialize>(value: &T) -> String {
    JSON_PRINTED.store(true, Ordering::Relaxed);
    // Serializing plain structs of strings and numbers cannot fail.
    serde_json::to_string_pretty(value).unwrap_or_default() + "\n"
}

/// Whether [`to_json`] has made a document for stdout.
pub fn json_printed() -> bool {
    JSON_PRINTED.load(Ordering::Relaxed)
}

/// Columns available for text: the terminal's width when stdout is one,
/// else $COLUMNS, else 80.
fn width() -> usize {
    terminal_size::terminal_size_of(std::io::stdout())
        .map(|(w, _)| usize::from(w.0))
        .or_else(|| std::env::var("COLUMNS").ok()?.parse().ok())
        .unwrap_or(80)
        .max(40)
}

/// Text for people, each line that is wider than the terminal wrapped at
/// spaces, its continuation indented under the line's own indent.
pub fn fit(text: &str) -> String {
    let width = width();
    let mut out = String::new();
    for line in text.lines() {
        let line = line.trim_end();
        if line.chars().count() <= width {
            line!(out, "{line}");
            continue;
        }
        let indent = " ".repeat(line.len() - line.trim_start().len() + 4);
        let options = textwrap::Options::new(width)
            .subsequent_indent(&indent)
            .word_splitter(textwrap::WordSplitter::NoHyphenation);
        for part in textwrap::wrap(line, options) {
            line!(out, "{part}");
        }
    }
    out
}

/// A failure as JSON: `{"kind": …, "message": …}`.
#[derive(Serialize)]
pub struct JsonError<'a> {
    /// [`Error::kind`](esxstick::Error::kind), or "usage".
    pub kind: &'a str,
    /// The line printed on stderr, without "esxstick: ".
    pub message: &'a str,
}

/// A failure as a JSON document: `{"error": {"kind": …, "message": …}}`.
pub fn json_error(kind: &str, message: &str) -> String {
    to_json(&serde_json::json!({ "error": JsonError { kind, message } }))
}

/// Writes text to stdout; a reader that went away (`| head`) is not an
/// error worth reporting.
pub fn emit(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

/// `verify`'s report: a line per check, then the verdict.
pub fn verify(report: &VerifyReport) -> String {
    let mut out = String::new();
    for c in &report.checks {
        line!(
            out,
            "{} {}: {}",
            if c.ok { "ok  " } else { "FAIL" },
            c.item,
            c.detail
        );
    }
    let failed = report.checks.iter().filter(|c| !c.ok).count();
    line!(
        out,
        "{} ({}{}): {} checks, {} failed",
        if report.ok {
            "verified"
        } else {
            "NOT verified"
        },
        report.mode,
        report
            .layout
            .as_deref()
            .map(|l| format!(", layout {l}"))
            .unwrap_or_default(),
        report.checks.len(),
        failed
    );
    out
}

/// `write`'s closing lines: what was written, then how it verified.
pub fn write(report: &WriteReport, verified: Option<&VerifyReport>) -> String {
    let mut out = String::new();
    let seconds: f64 = report.phases.iter().map(|p| p.seconds).sum();
    line!(
        out,
        "\nwrote {} bytes ({}) to {} in {seconds:.1} s",
        group(report.bytes_written),
        human(report.bytes_written),
        report.target
    );
    match &report.modules_checked {
        Some(names) => line!(
            out,
            "{} modules intact (gzip CRC-32 and length), checked before the table",
            names.len()
        ),
        None => line!(out, "modules not checked (--no-module-check)"),
    }
    match verified {
        Some(v) => out.push_str(&verify(v)),
        None => line!(
            out,
            "not verified (--no-verify); run esxstick verify to check it"
        ),
    }
    out
}

/// `inspect`'s report: the source, its partitions, boot partition,
/// banks, the active bank's files and the smallest stick that fits.
pub fn inventory(inv: &Inventory, smallest: Option<&SmallestTarget>) -> String {
    let mut out = String::new();
    source_line(&mut out, inv);
    partitions(&mut out, inv);
    banks(&mut out, inv);
    files(&mut out, inv, smallest);
    out
}

fn source_line(out: &mut String, inv: &Inventory) {
    let s = &inv.source;
    line!(
        out,
        "{}: {} ({} bytes), {} partition table, {} sectors",
        s.path,
        human(s.bytes),
        group(s.bytes),
        scheme_name(s.scheme),
        group(s.disk_sectors)
    );
    if let Some(o) = &s.origin {
        let from = if o.container.is_empty() {
            String::new()
        } else {
            format!(" ({})", o.container)
        };
        line!(
            out,
            "Read from a {} stream{from}, only as far as needed: partitions after 6 are not listed",
            o.codec()
        );
    }
}

fn partitions(out: &mut String, inv: &Inventory) {
    line!(out, "\nPartitions (by entry number; not disk order):");
    partition_row(
        out,
        [
            "#", "role", "type", "start", "end", "sectors", "size", "act",
        ],
    );
    for p in &inv.partitions {
        let t = &p.partition;
        partition_row(
            out,
            [
                &t.number.to_string(),
                p.role.name(),
                &short_code(&t.kind.code()),
                &t.start.to_string(),
                &t.end().to_string(),
                &t.sectors.to_string(),
                &human(p.bytes),
                if t.active { "*" } else { "" },
            ],
        );
    }
    line!(out, "\nFile systems:");
    fs_row(out, ["#", "type", "fs", "label", "vol id", "used", "free"]);
    for p in &inv.partitions {
        let number = p.partition.number.to_string();
        match (&p.fs, &p.fs_error) {
            (Some(f), _) => fs_row(
                out,
                [
                    &number,
                    p.type_name,
                    &f.fat_type.to_string(),
                    &f.label,
                    &f.volume_id,
                    &human(f.used_bytes),
                    &human(f.free_bytes),
                ],
            ),
            (None, Some(e)) => {
                fs_row(out, [&number, p.type_name, "bad", "", "", "", ""]);
                line!(out, "      ! {e}");
            }
            (None, None) => {}
        }
    }
}

fn banks(out: &mut String, inv: &Inventory) {
    let b = &inv.boot;
    line!(
        out,
        "\nBoot partition {}: {} sectors, files end at sector {} ({} in use); BPB hidden sectors {}",
        b.partition,
        b.sectors,
        b.used_sectors,
        human(b.used_sectors * SECTOR),
        b.boot_sector.hidden_sectors
    );
    line!(out, "\nBootbanks:");
    for bank in &inv.banks {
        let build = bank
            .boot_cfg
            .as_ref()
            .map(|c| {
                format!(
                    "build {}, updated={}",
                    c.build.as_deref().unwrap_or("?"),
                    c.updated.map_or("?".to_string(), |u| u.to_string())
                )
            })
            .unwrap_or_default();
        line!(out, "  {}  {:<45} {}", bank.partition, bank.status, build);
        let uuid = bank
            .uuid
            .map_or("none (no VMware FAT UUID sector)".to_string(), |u| {
                u.to_string()
            });
        line!(out, "     UUID {uuid}");
    }
    line!(
        out,
        "Active bank: {} — {}",
        inv.active_bank.partition,
        inv.active_bank.reason
    );
    for warning in &inv.warnings {
        line!(out, "warning: {warning}");
    }
    if let Some(cfg) = inv.boot_cfg() {
        line!(
            out,
            "boot.cfg: kernel={} kernelopt={:?} modules={}",
            cfg.kernel,
            cfg.kernelopt,
            cfg.modules.len()
        );
    }
}

fn files(out: &mut String, inv: &Inventory, smallest: Option<&SmallestTarget>) {
    line!(out, "\nFiles of bank {}:", inv.active_bank.partition);
    for m in &inv.modules {
        let state = match (&m.check, m.present) {
            (_, false) => "MISSING".to_string(),
            (None, true) => "present".to_string(),
            (Some(c), true) if c.ok && c.gzip => "present, gzip intact".to_string(),
            (Some(c), true) if c.ok => "present, not gzip".to_string(),
            (Some(_), true) => "DAMAGED".to_string(),
        };
        line!(
            out,
            "  {:<7} {:<16} {:>14}  {state}",
            m.role,
            m.name,
            m.bytes.map(group).unwrap_or_default(),
        );
    }
    let present = inv.modules.iter().filter(|m| m.present).count();
    line!(
        out,
        "Payload: {} bytes ({}) in {} files",
        group(inv.payload_bytes),
        human(inv.payload_bytes),
        present
    );
    if let Some(t) = smallest {
        line!(
            out,
            "Smallest target ({} layout): {} bytes ({}, a {} stick)",
            t.layout,
            group(t.bytes),
            human(t.bytes),
            size::common_size_for(t.bytes)
        );
    }
}

/// A table column: spaces before it, its width, and whether its text is
/// aligned right.
#[derive(Clone, Copy)]
struct Col(usize, usize, bool);

/// The columns of `inspect`'s partition table.
const PARTITION_COLS: [Col; 8] = [
    Col(2, 2, true),
    Col(2, 11, false),
    Col(1, 8, false),
    Col(1, 10, true),
    Col(1, 10, true),
    Col(1, 10, true),
    Col(1, 10, true),
    Col(1, 3, true),
];

/// The columns of `inspect`'s file system table.
const FS_COLS: [Col; 7] = [
    Col(2, 2, true),
    Col(2, 13, false),
    Col(1, 5, false),
    Col(1, 11, false),
    Col(1, 8, false),
    Col(1, 10, true),
    Col(1, 10, true),
];

/// The columns of `plan`'s partition table.
const PLAN_COLS: [Col; 9] = [
    Col(2, 2, true),
    Col(2, 11, false),
    Col(1, 8, false),
    Col(1, 9, true),
    Col(1, 9, true),
    Col(1, 9, true),
    Col(1, 9, true),
    Col(1, 3, true),
    Col(1, 9, true),
];

/// The columns of `plan`'s CHS table.
const CHS_COLS: [Col; 3] = [Col(2, 2, true), Col(2, 13, false), Col(1, 13, false)];

/// One line of a table: each cell padded to its column.
fn row(out: &mut String, cols: &[Col], cells: &[&str]) {
    use std::fmt::Write as _;
    for (&Col(gap, width, right), cell) in cols.iter().zip(cells) {
        out.push_str(&" ".repeat(gap));
        let _ = if right {
            write!(out, "{cell:>width$}")
        } else {
            write!(out, "{cell:<width$}")
        };
    }
    let end = out.trim_end_matches(' ').len();
    out.truncate(end);
    out.push('\n');
}

/// One line of `inspect`'s partition table (header or partition).
fn partition_row(out: &mut String, cells: [&str; 8]) {
    row(out, &PARTITION_COLS, &cells);
}

/// One line of `inspect`'s file system table (header or volume).
fn fs_row(out: &mut String, cells: [&str; 7]) {
    row(out, &FS_COLS, &cells);
}

/// One line of `plan`'s partition table (header or entry).
fn plan_row(out: &mut String, cells: [&str; 9]) {
    row(out, &PLAN_COLS, &cells);
}

/// The line of `plan`'s partition table for entry `p`.
fn planned_row(out: &mut String, p: &PlannedPartition) {
    plan_row(
        out,
        [
            &p.entry.to_string(),
            p.role,
            &short_code(&p.kind),
            &p.start.to_string(),
            &p.end.to_string(),
            &p.sectors.to_string(),
            &human(p.sectors * SECTOR),
            if p.active { "*" } else { "" },
            &p.ebr.map(|e| e.to_string()).unwrap_or_default(),
        ],
    );
}

fn scheme_name(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Mbr => "MBR",
        Scheme::Gpt => "GPT",
    }
}

/// `plan`'s report for a target of `bytes`: the table, a disk map, the
/// boot partition's copy, each bank, and what `write` would write.
pub fn plan(plan: &Plan, bytes: u64) -> String {
    let mut out = String::new();
    plan_table(&mut out, plan, bytes);
    plan_boot(&mut out, plan);
    plan_banks(&mut out, plan);
    plan_totals(&mut out, plan);
    out
}

fn plan_table(out: &mut String, plan: &Plan, bytes: u64) {
    line!(
        out,
        "Plan: layout {} ({}) on a target of {} bytes ({}, {} sectors), geometry {} heads x {} sectors/track",
        plan.layout,
        scheme_name(plan.scheme),
        group(bytes),
        human(bytes),
        group(plan.target_sectors),
        plan.heads,
        plan.sectors_per_track
    );
    out.push('\n');
    plan_row(
        out,
        [
            "#", "role", "type", "start", "end", "sectors", "size", "act", "EBR",
        ],
    );
    for p in &plan.partitions {
        planned_row(out, p);
    }
    if plan.scheme == Scheme::Mbr {
        out.push('\n');
        let chs = |c: [u32; 3]| format!("{}/{}/{}", c[0], c[1], c[2]);
        row(out, &CHS_COLS, &["#", "CHS start", "CHS end"]);
        for p in &plan.partitions {
            let cells = [&p.entry.to_string(), &chs(p.chs_start), &chs(p.chs_end)];
            row(out, &CHS_COLS, &cells.map(String::as_str));
        }
    }
    line!(out, "\n  disk map: |{}|", disk_map(plan, 64));
    line!(
        out,
        "            B boot, 5/6 bootbanks, e EBR/extended gap, . unpartitioned"
    );
}

fn plan_boot(out: &mut String, plan: &Plan) {
    let b = &plan.boot;
    line!(
        out,
        "\nBoot partition {}: copy {} sectors ({}, up to its last used cluster) from source sector {} to sector {}; partition {} sectors{}",
        plan.partitions.iter().find(|p| p.role == "boot").map_or(0, |p| p.entry),
        b.copy_sectors,
        human(b.copy_sectors * SECTOR),
        b.source_start,
        b.target_start,
        b.partition_sectors,
        if b.trimmed { " (trimmed to its used extent)" } else { "" }
    );
    for patch in &b.bpb_patches {
        line!(
            out,
            "  BPB patch: {} (offset 0x{:02x}) {} -> {}",
            patch.field,
            patch.offset,
            patch.old,
            patch.new
        );
    }
    if let Some([first, last]) = b.bad_clusters {
        line!(
            out,
            "  FAT: clusters {first}–{last} lie past the partition end and are marked bad"
        );
    }
}

fn plan_banks(out: &mut String, plan: &Plan) {
    for bank in &plan.banks {
        plan_bank(out, bank, "new");
    }
}

/// One bank of a plan (`how`: "new", "rebuilt"): its volume, UUID, what
/// it gets, free space and headroom.
fn plan_bank(out: &mut String, bank: &BankPlan, how: &str) {
    let f = &bank.fat;
    line!(
        out,
        "\nBank {}: {how} FAT16 \"{}\" volume ID {}: {} clusters of {}, {} sectors per FAT x {}, {} root entries",
        bank.entry,
        bank.label,
        bank.volume_id,
        group(u64::from(bank.clusters)),
        human(bank.cluster_bytes),
        f.sectors_per_fat,
        f.fats,
        f.root_entries
    );
    line!(
        out,
        "  VMware FAT UUID {} ({}), {} reserved sectors",
        bank.uuid,
        bank.uuid_from,
        f.reserved_sectors
    );
    if bank.files.is_empty() {
        line!(
            out,
            "  empty alternate bank; boot.cfg with bootstate=3 (not bootable)"
        );
    } else {
        let total: u64 = bank.files.iter().map(|f| f.bytes).sum();
        line!(
            out,
            "  copies {} files, {} bytes ({}) from the source bank",
            bank.files.len(),
            group(total),
            human(total)
        );
    }
    for file in &bank.files {
        if let Some(r) = &file.replaced {
            line!(
                out,
                "  {} ({} bytes) from {}",
                file.name,
                group(file.bytes),
                r.from
            );
        }
    }
    line!(
        out,
        "  free after copying: {} (headroom needed: {})",
        human(bank.free_bytes),
        human(bank.headroom_bytes)
    );
}

fn plan_totals(out: &mut String, plan: &Plan) {
    line!(
        out,
        "\nUnpartitioned at the end: {} sectors ({})",
        group(plan.unpartitioned_sectors),
        human(plan.unpartitioned_sectors * SECTOR)
    );
    line!(
        out,
        "write would write {} bytes ({}), never the free space",
        group(plan.write_bytes),
        human(plan.write_bytes)
    );
    for note in &plan.notes {
        line!(out, "note: {note}");
    }
}

/// A one-line picture of the target, `width` cells to scale.
fn disk_map(plan: &Plan, width: u64) -> String {
    (0..width)
        .map(|i| {
            let lba = (2 * i + 1) * plan.target_sectors / (2 * width);
            let hit = plan
                .partitions
                .iter()
                .filter(|p| p.start <= lba && lba <= p.end);
            let mut c = '.';
            for p in hit {
                c = match p.role {
                    "boot" => 'B',
                    "extended" if c == '.' => 'e',
                    "bootbank" => '5',
                    "altbootbank" => '6',
                    _ => c,
                };
            }
            c
        })
        .collect()
}

/// `0x04` for MBR types; GPT GUIDs shortened to their first group.
fn short_code(code: &str) -> String {
    code.split('-').next().unwrap_or(code).to_string()
}

/// `backup`'s report: the host, the bundle written (or the one that
/// already held this configuration), and what `--keep` did.
pub fn backup(report: &BackupReport) -> String {
    let mut out = String::new();
    let h = &report.host;
    line!(
        out,
        "bank {} of {}: host {}, system UUID {}, {}",
        report.bank,
        report.source,
        h.host.as_deref().unwrap_or("(no name in esx.conf)"),
        h.system_uuid.as_deref().unwrap_or("(none in esx.conf)"),
        report
            .release_level
            .as_deref()
            .unwrap_or("no release level")
    );
    if report.written {
        line!(
            out,
            "wrote {} ({} bytes)",
            report.bundle.display(),
            group(report.bytes)
        );
    } else {
        line!(
            out,
            "unchanged: {}, the newest backup of {}, holds this state.tgz; nothing written",
            report.bundle.display(),
            report.name
        );
    }
    line!(out, "state.tgz sha256 {}", report.state_sha256);
    line!(out, "{} backups of {} kept", report.kept.len(), report.name);
    for deleted in &report.deleted {
        line!(out, "deleted {deleted}");
    }
    out
}

/// `update`'s plan: which bank is rebuilt from what, and the bank.
pub fn update_plan(plan: &UpdatePlan) -> String {
    let mut out = String::new();
    let build = |b: &Option<String>| b.clone().unwrap_or_else(|| "unknown build".into());
    line!(
        out,
        "Update of {}: bank {} is rebuilt from {} (build {}, updated={}); bank {} (build {}) is not touched and stays the fallback",
        plan.stick,
        plan.bank.entry,
        plan.source,
        build(&plan.build),
        plan.updated,
        plan.active,
        build(&plan.active_build)
    );
    plan_bank(&mut out, &plan.bank, "rebuilt");
    out
}

/// `update`'s closing lines: what was written, then how it verified.
pub fn update(report: &UpdateReport, verified: &VerifyReport) -> String {
    let mut out = String::new();
    let seconds: f64 = report.phases.iter().map(|p| p.seconds).sum();
    let plan = &report.plan;
    line!(
        out,
        "\nwrote {} bytes ({}) to bank {} of {} in {seconds:.1} s; ESXi boots it next (updated={}), bank {} is the fallback",
        group(report.bytes_written),
        human(report.bytes_written),
        plan.bank.entry,
        plan.stick,
        plan.updated,
        plan.active
    );
    line!(
        out,
        "{} modules intact (gzip CRC-32 and length), checked before boot.cfg",
        report.modules_checked.len()
    );
    out.push_str(&verify(verified));
    out
}

/// `devices`: a line per disk (wrapped by [`fit`]) — path, size,
/// transport, what it is, its state, what it holds, and with `--for`
/// whether `source` fits.
pub fn devices(list: &[Device], all: bool, source: Option<&std::path::Path>) -> String {
    let mut out = String::new();
    if list.is_empty() {
        let what = if all { "disks" } else { "removable disks" };
        line!(out, "no {what} found");
    }
    for d in list {
        let mut parts = vec![identity(d)];
        if d.read_only {
            parts.push("read-only".into());
        }
        if !d.mounted.is_empty() {
            let mounts: Vec<String> = d
                .mounted
                .iter()
                .map(|m| format!("{} on {}", m.device, m.at))
                .collect();
            parts.push(format!("mounted: {}", mounts.join(", ")));
        }
        parts.push(format!("holds {}", d.holds_text));
        if let (Some(fit), Some(source)) = (&d.fits, source) {
            parts.push(fits(fit, source));
        }
        line!(
            out,
            "{}  {}  {}  {}",
            d.path.display(),
            human(d.bytes),
            d.transport.name(),
            parts.join("; ")
        );
    }
    if !all {
        line!(
            out,
            "(fixed disks and loop devices: esxstick devices --all)"
        );
    }
    out
}

/// Vendor, model and serial of a device, or a loop device's file.
fn identity(d: &Device) -> String {
    let mut words: Vec<String> = [&d.vendor, &d.model]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    if let Some(serial) = &d.serial {
        words.push(format!("serial {serial}"));
    }
    if let Some(file) = &d.backing_file {
        words.push(format!("over {file}"));
    }
    if words.is_empty() {
        words.push("unknown model".into());
    }
    words.join(" ")
}

/// Whether `source`'s default plan fits, and what it needs.
fn fits(fit: &Fit, source: &std::path::Path) -> String {
    let needs = fit
        .needs_bytes
        .map(|b| format!(", needs {}", human(b)))
        .unwrap_or_default();
    let verdict = if fit.fits { "fits" } else { "does not fit" };
    format!("{} {verdict} ({}{needs})", source.display(), fit.layout)
}

/// `wipe`'s report: the partition and volume made, and any note.
pub fn wipe(report: &WipeReport) -> String {
    let mut out = String::new();
    let p = &report.partition;
    line!(
        out,
        "wiped {}: partition 1, type {}, sectors {}..{} ({}), {} labelled {:?}, \
         volume ID {}, clusters of {} bytes",
        report.target,
        p.kind.code(),
        group(p.start),
        group(p.end()),
        human(p.bytes()),
        report.fat_type,
        report.label,
        report.volume_id,
        group(report.cluster_bytes)
    );
    for note in &report.notes {
        line!(out, "note: {note}");
    }
    out
}

/// `inspect` of an ESXi 5+ installer ISO: what it is, how it boots, its
/// modules, and the smallest stick it fits.
pub fn installer(inv: &Installer, smallest: Option<u64>) -> String {
    let mut out = String::new();
    line!(out, "source: {} (ESXi installer ISO)", inv.path);
    line!(
        out,
        "ESXi {} build {}{}",
        inv.version.as_deref().unwrap_or("?"),
        inv.build.as_deref().unwrap_or("(no build=)"),
        inv.title
            .as_deref()
            .map(|t| format!(", \"{t}\""))
            .unwrap_or_default()
    );
    let boots = match (inv.uefi, inv.bios) {
        (true, true) => "UEFI (EFI/BOOT/BOOTX64.EFI) and BIOS (ISOLINUX.CFG, MBOOT.C32)",
        (true, false) => "UEFI only (EFI/BOOT/BOOTX64.EFI)",
        (false, true) => "BIOS only (ISOLINUX.CFG, MBOOT.C32)",
        (false, false) => "neither UEFI nor BIOS",
    };
    line!(out, "boots: {boots}");
    line!(
        out,
        "EFI/BOOT/BOOT.CFG: {}",
        if inv.efi_boot_cfg {
            "on the ISO"
        } else {
            "missing (the stick gets a copy of /BOOT.CFG)"
        }
    );
    line!(out, "kernel: {}", inv.kernel);
    line!(out, "boot options (kernelopt): {}", inv.kernelopt);
    line!(out, "{} files, {} bytes", inv.files, group(inv.bytes));
    line!(out);
    line!(out, "{:<14} {:>14}  state", "module", "bytes");
    for m in &inv.modules {
        let bytes = m.bytes.map(group).unwrap_or_else(|| "-".into());
        line!(out, "{:<14} {:>14}  {}", m.name, bytes, m.state);
    }
    if let Some(bytes) = smallest {
        line!(out);
        line!(
            out,
            "smallest stick (layout installer-fat32): {} bytes ({})",
            group(bytes),
            human(bytes)
        );
    }
    out
}

/// The summary of `write` with several targets: a line per target, ok
/// (bytes written, checks passed) or FAIL with the reason, then a count.
pub fn targets(rows: &[super::fleet::Row]) -> String {
    let mut out = String::from("\n");
    let mut ok = 0;
    for row in rows {
        let path = row.path.display();
        match (row.failure(), &row.result) {
            (None, Ok(outcome)) => {
                ok += 1;
                let wrote = human(outcome.write.bytes_written);
                match &outcome.verify {
                    Some(v) => line!(
                        out,
                        "ok    {path}: wrote {wrote}, verified ({} checks)",
                        v.checks.len()
                    ),
                    None => line!(
                        out,
                        "ok    {path}: wrote {wrote}, not verified (--no-verify)"
                    ),
                }
            }
            (Some((_, why)), _) => line!(out, "FAIL  {path}: {why}"),
            (None, Err(_)) => line!(out, "FAIL  {path}"),
        }
    }
    line!(out, "{ok} of {} targets written and verified", rows.len());
    out
}

/// `plan` of an installer ISO's stick.
pub fn installer_plan(plan: &InstallerPlan, bytes: u64) -> String {
    let mut out = String::new();
    line!(
        out,
        "target: {} bytes ({}), layout {}, MBR",
        group(bytes),
        human(bytes),
        plan.layout
    );
    line!(out);
    plan_row(
        &mut out,
        [
            "#", "role", "type", "start", "end", "sectors", "size", "act", "",
        ],
    );
    for p in &plan.partitions {
        planned_row(&mut out, p);
    }
    let fat = &plan.fat;
    line!(out);
    line!(
        out,
        "FAT32: {} clusters of {} bytes ({} used), 2 FATs of {} sectors, {} reserved, hidden sectors {}",
        group(fat.clusters),
        fat.cluster_bytes,
        group(fat.clusters_used),
        fat.sectors_per_fat,
        fat.reserved_sectors,
        fat.hidden_sectors
    );
    line!(out, "MBR boot code: SYSLINUX mbr.bin");
    line!(out);
    line!(out, "{:>14}  file", "bytes");
    for f in &plan.files {
        let how = match &f.from {
            FileFrom::Iso { .. } => String::new(),
            FileFrom::Made { why, .. } => format!("  (made: {why})"),
        };
        line!(out, "{:>14}  {}{how}", group(f.bytes), f.path);
    }
    line!(out);
    line!(
        out,
        "{} files, {} bytes; write writes {} bytes; smallest target {} bytes",
        plan.files.len(),
        group(plan.data_bytes),
        group(plan.write_bytes),
        group(plan.min_target_bytes)
    );
    out
}
