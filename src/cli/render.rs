//! What the commands print: plain text for people (tables sized for an
//! 80-column terminal where they can be) and JSON for programs.

use esxstick::esxi::inventory::Inventory;
use esxstick::image::source::SECTOR;
use esxstick::ondisk::table::Scheme;
use esxstick::plan::choose::SmallestTarget;
use esxstick::plan::Plan;
use esxstick::size::{self, group, human};
use esxstick::stick::verify::VerifyReport;
use esxstick::stick::write::WriteReport;
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

/// Pretty JSON with a closing newline.
pub fn to_json<T: Serialize>(value: &T) -> String {
    // Serializing plain structs of strings and numbers cannot fail.
    serde_json::to_string_pretty(value).unwrap_or_default() + "\n"
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
            "#", "role", "type", "start", "end", "sectors", "size", "act", "fs", "label", "vol id",
            "used",
        ],
    );
    for p in &inv.partitions {
        let t = &p.partition;
        let kind = format!("{} {}", short_code(&t.kind.code()), p.type_name);
        let (fs, label, id, used) = match &p.fs {
            Some(f) => (
                f.fat_type.to_string(),
                f.label.clone(),
                f.volume_id.clone(),
                human(f.used_bytes),
            ),
            None if p.fs_error.is_some() => {
                ("bad".into(), String::new(), String::new(), String::new())
            }
            None => Default::default(),
        };
        partition_row(
            out,
            [
                &t.number.to_string(),
                p.role.name(),
                &kind,
                &t.start.to_string(),
                &t.end().to_string(),
                &t.sectors.to_string(),
                &human(p.bytes),
                if t.active { "*" } else { "" },
                &fs,
                &label,
                &id,
                &used,
            ],
        );
        if let Some(e) = &p.fs_error {
            line!(out, "      ! {e}");
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
const PARTITION_COLS: [Col; 12] = [
    Col(2, 2, true),
    Col(2, 11, false),
    Col(1, 20, false),
    Col(1, 9, true),
    Col(1, 9, true),
    Col(1, 9, true),
    Col(1, 10, true),
    Col(1, 3, true),
    Col(2, 5, false),
    Col(1, 11, false),
    Col(1, 8, false),
    Col(1, 10, true),
];

/// The columns of `plan`'s partition table.
const PLAN_COLS: [Col; 11] = [
    Col(2, 5, true),
    Col(2, 11, false),
    Col(1, 9, false),
    Col(1, 9, true),
    Col(1, 9, true),
    Col(1, 9, true),
    Col(1, 10, true),
    Col(1, 3, true),
    Col(2, 13, false),
    Col(1, 13, false),
    Col(1, 0, false),
];

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
    out.push('\n');
}

/// One line of `inspect`'s partition table (header or partition).
fn partition_row(out: &mut String, cells: [&str; 12]) {
    row(out, &PARTITION_COLS, &cells);
}

/// One line of `plan`'s partition table (header or entry).
fn plan_row(out: &mut String, cells: [&str; 11]) {
    row(out, &PLAN_COLS, &cells);
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
            "entry",
            "role",
            "type",
            "start",
            "end",
            "sectors",
            "size",
            "act",
            "CHS start",
            "CHS end",
            "EBR",
        ],
    );
    for p in &plan.partitions {
        let chs = |c: [u32; 3]| format!("{}/{}/{}", c[0], c[1], c[2]);
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
                &chs(p.chs_start),
                &chs(p.chs_end),
                &p.ebr.map(|e| e.to_string()).unwrap_or_default(),
            ],
        );
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
        let f = &bank.fat;
        line!(
        out,
            "\nBank {}: new FAT16 \"{}\" volume ID {}: {} clusters of {}, {} sectors per FAT x {}, {} root entries",
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
        line!(
            out,
            "  free after copying: {} (headroom needed: {})",
            human(bank.free_bytes),
            human(bank.headroom_bytes)
        );
    }
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
