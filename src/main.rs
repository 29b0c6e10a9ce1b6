//! The esxstick command line: parses arguments, calls the library, prints.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use esxstick::error::exit;
use esxstick::inventory::{self, Inventory};
use esxstick::source::Source;
use esxstick::{extract, Error};

/// Turn a VMware ESXi 3.5/4.x/5+ disk image into a minimal, bootable,
/// verified USB stick.
///
/// Exit codes: 0 success; 1 verification failed; 2 bad input, bad usage,
/// or the operation could not be carried out.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what an ESXi image holds: partitions, bootbanks, the active
    /// bank and why, and its modules.
    ///
    /// Reads the image in place (nothing is mounted or written). Exits 2
    /// when the image is unusable, including when boot.cfg names a module
    /// the bank lacks (the report is still printed).
    Inspect {
        /// ESXi disk image (VMware-VMvisor-big-*.dd) or block device.
        source: PathBuf,
        /// Print the inventory as JSON (schema "esxstick.inventory/1",
        /// documented in README.md).
        #[arg(long)]
        json: bool,
        /// Use this bootbank (5 or 6) instead of the active one.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(5..=6))]
        bank: Option<u32>,
    },
    /// Copy the boot partition (boot.img) and the active bootbank's files
    /// into DIR, with a SHA256SUMS that `sha256sum -c` accepts.
    ///
    /// DIR is created if needed. Output appears only when complete; on an
    /// error nothing that looks complete is left behind.
    Extract {
        /// ESXi disk image or block device.
        source: PathBuf,
        /// Output directory; must be empty unless --force.
        dir: PathBuf,
        /// Use this bootbank (5 or 6) instead of the active one.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(5..=6))]
        bank: Option<u32>,
        /// Write into DIR even if it holds files (same names are replaced).
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::from(exit::OK as u8),
        Err(e) => {
            eprintln!("esxstick: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

fn run(command: Command) -> Result<(), Error> {
    match command {
        Command::Inspect { source, json, bank } => {
            let source = Source::open(&source)?;
            let inv = inventory::read(&source, bank)?;
            if json {
                println!("{}", to_json(&inv));
            } else {
                print_inventory(&inv);
            }
            inv.check_complete()
        }
        Command::Extract {
            source,
            dir,
            bank,
            force,
        } => {
            let source = Source::open(&source)?;
            let inv = inventory::read(&source, bank)?;
            let report = extract::extract(&source, &inv, &dir, force)?;
            for f in &report.files {
                println!("{:>14}  {}", group(f.bytes), f.path);
            }
            println!(
                "extracted {} files from bank {} into {} (checksums in {})",
                report.files.len(),
                report.bank,
                report.dir.display(),
                extract::SUMS
            );
            Ok(())
        }
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Serializing plain structs of strings and numbers cannot fail.
    serde_json::to_string_pretty(value).unwrap_or_default()
}

fn print_inventory(inv: &Inventory) {
    let s = &inv.source;
    println!(
        "{}: {} ({} bytes), {} partition table, {} sectors",
        s.path,
        human(s.bytes),
        group(s.bytes),
        match s.scheme {
            esxstick::table::Scheme::Mbr => "MBR",
            esxstick::table::Scheme::Gpt => "GPT",
        },
        group(s.disk_sectors)
    );
    println!("\nPartitions (by entry number; not disk order):");
    println!(
        "  {:>2}  {:<11} {:<20} {:>9} {:>9} {:>9} {:>10} {:>3}  {:<5} {:<11} {:<8} {:>10}",
        "#",
        "role",
        "type",
        "start",
        "end",
        "sectors",
        "size",
        "act",
        "fs",
        "label",
        "vol id",
        "used"
    );
    for p in &inv.partitions {
        let t = &p.partition;
        let kind = format!("{} {}", short_code(&t.kind.code()), p.type_name);
        let (fs, label, id, used) = match &p.fs {
            Some(f) => (
                format!("{:?}", f.fat_type).to_uppercase(),
                f.label.clone(),
                f.volume_id.clone(),
                human(f.used_bytes),
            ),
            None if p.fs_error.is_some() => {
                ("bad".into(), String::new(), String::new(), String::new())
            }
            None => Default::default(),
        };
        println!(
            "  {:>2}  {:<11} {:<20} {:>9} {:>9} {:>9} {:>10} {:>3}  {:<5} {:<11} {:<8} {:>10}",
            t.number,
            p.role.name(),
            kind,
            t.start,
            t.end(),
            t.sectors,
            human(p.bytes),
            if t.active { "*" } else { "" },
            fs,
            label,
            id,
            used
        );
        if let Some(e) = &p.fs_error {
            println!("      ! {e}");
        }
    }
    let b = &inv.boot;
    println!(
        "\nBoot partition {}: {} sectors, files end at sector {} ({} in use); BPB hidden sectors {}",
        b.partition,
        b.sectors,
        b.used_sectors,
        human(b.used_sectors * 512),
        b.boot_sector.hidden_sectors
    );
    println!("\nBootbanks:");
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
        println!("  {}  {:<45} {}", bank.partition, bank.status, build);
    }
    println!(
        "Active bank: {} — {}",
        inv.active_bank.partition, inv.active_bank.reason
    );
    if let Some(cfg) = inv.boot_cfg() {
        println!(
            "boot.cfg: kernel={} kernelopt={:?} modules={}",
            cfg.kernel,
            cfg.kernelopt,
            cfg.modules.len()
        );
    }
    println!("\nFiles of bank {}:", inv.active_bank.partition);
    for m in &inv.modules {
        println!(
            "  {:<7} {:<16} {:>14}  {}",
            m.role,
            m.name,
            m.bytes.map(group).unwrap_or_default(),
            if m.present { "present" } else { "MISSING" }
        );
    }
    let present = inv.modules.iter().filter(|m| m.present).count();
    println!(
        "Payload: {} bytes ({}) in {} files",
        group(inv.payload_bytes),
        human(inv.payload_bytes),
        present
    );
}

/// `0x04` for MBR types; GPT GUIDs shortened to their first group.
fn short_code(code: &str) -> String {
    code.split('-').next().unwrap_or(code).to_string()
}

/// 55323877 → "55,323,877".
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// 4194304 → "4.0 MiB".
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
