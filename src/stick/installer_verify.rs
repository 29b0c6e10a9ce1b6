//! Verifying an installer stick (layout `installer-fat32`), read back
//! past the page cache like every stick:
//!
//! * against its ISO: the table as planned (one active FAT32 partition 1
//!   from 1 MiB, SYSLINUX's MBR boot code), the FAT32 boot sector (hidden
//!   sectors, cluster size and count as planned), both FAT copies equal,
//!   every file equal to the ISO's (or to the file esxstick made; by
//!   BLAKE3, see [`crate::digest`]), and no file more (but SYSLINUX's own `LDLINUX.SYS`);
//! * on its own: the table, the FAT copies, SYSLINUX.CFG's `-p 1`, both
//!   BOOT.CFGs parsing and naming files that exist, and every gzip
//!   module intact.
//!
//! The hand-written FAT check ([`crate::ondisk::fsck`]) reads FAT12/16
//! only; a FAT32 stick is read through fatfs, its directories walked to
//! at most [`MAX_ENTRIES`] entries so that a looping chain cannot hold
//! the walk.

use std::io::{self, Read};

use crate::digest::{self, Digests};
use crate::error::Result;
use crate::esxi::bootcfg::BootCfg;
use crate::esxi::installer::{self, InstallerIso};
use crate::esxi::modules::GzipCheck;
use crate::image::source::{Slice, Source, SECTOR};
use crate::ondisk::cache::MetaCache;
use crate::ondisk::le;
use crate::ondisk::table::{self, Partition};
use crate::plan::installer::{self as layout, FileFrom, InstallerPlan};
use crate::stick::syslinux;
use crate::stick::verify::VerifyReport;

/// Entries walked on a stick, at most.
const MAX_ENTRIES: usize = 20_000;
/// Files SYSLINUX adds to the partition when installed.
const SYSLINUX_FILES: [&str; 2] = ["LDLINUX.SYS", "LDLINUX.C32"];
/// The largest BOOT.CFG read from a stick.
const MAX_CFG: u64 = 64 * 1024;

/// The stick's FAT32 volume, read through fatfs.
type Fs<'a> = fatfs::FileSystem<MetaCache<Slice<'a>>>;

/// Whether `stick` looks like an installer stick: partition 1 is FAT32
/// (0x0C) and its volume holds BOOT.CFG and EFI/BOOT.
pub fn is_installer_stick(stick: &Source) -> bool {
    let Ok(t) = table::read(stick) else {
        return false;
    };
    let Some(p) = t.get(1).filter(|p| p.kind == layout::partition_type()) else {
        return false;
    };
    open_fs(stick, p).is_ok_and(|fs| {
        let root = fs.root_dir();
        root.open_file(installer::BOOT_CFG).is_ok() && root.open_dir("EFI/BOOT").is_ok()
    })
}

/// Verifies `stick` against `iso` and the `plan` it was written with;
/// `known` holds the hashes of files taken while they were copied. Each
/// file on the stick is compared with the ISO's by BLAKE3
/// ([`crate::digest`]).
pub fn against(
    stick: &Source,
    iso: &InstallerIso,
    plan: &InstallerPlan,
    known: &Digests,
) -> Result<VerifyReport> {
    let mut report = VerifyReport::new("against-source", Some(layout::LAYOUT.into()));
    let Some(part) = check_table(stick, Some(plan), &mut report) else {
        return Ok(report);
    };
    check_boot_sector(stick, &part, plan, &mut report)?;
    check_fats(stick, &part, &mut report)?;
    let Some(fs) = opened(stick, &part, &mut report) else {
        return Ok(report);
    };
    let on_stick = walk(&fs.root_dir(), "")?;
    for f in &plan.files {
        let expected = match (&f.from, known.blake3.get(&f.path)) {
            (_, Some(hash)) => hash.clone(),
            (FileFrom::Made { text, .. }, None) => digest::blake3(text.as_bytes()),
            (FileFrom::Iso { start }, None) => {
                let on_iso = crate::image::isofs::IsoFile {
                    path: f.path.clone(),
                    start: *start,
                    bytes: f.bytes,
                };
                digest::blake3_of(|into| installer::copy_file(&iso.source, &on_iso, into))?
            }
        };
        let (ok, detail) = match hash_file(&fs, &f.path) {
            Ok((bytes, got)) if got == expected => (true, format!("{bytes} bytes, equal")),
            Ok((bytes, got)) => (
                false,
                format!("{bytes} bytes, BLAKE3 {got}, expected {expected}"),
            ),
            Err(e) => (false, format!("cannot be read: {e}")),
        };
        report.add(format!("file {}", f.path), ok, detail);
    }
    let extra: Vec<&String> = on_stick
        .iter()
        .filter(|p| !plan.files.iter().any(|f| f.path.eq_ignore_ascii_case(p)))
        .filter(|p| !SYSLINUX_FILES.iter().any(|s| s.eq_ignore_ascii_case(p)))
        .collect();
    let detail = match extra.is_empty() {
        true => format!("{} files, as planned", plan.files.len()),
        false => format!("files not on the ISO: {extra:?}"),
    };
    report.add("no file more", extra.is_empty(), detail);
    Ok(report)
}

/// Checks `stick` as an installer stick on its own.
pub fn self_check(stick: &Source) -> Result<VerifyReport> {
    let mut report = VerifyReport::new("self-check", Some(layout::LAYOUT.into()));
    let Some(part) = check_table(stick, None, &mut report) else {
        return Ok(report);
    };
    check_fats(stick, &part, &mut report)?;
    let Some(fs) = opened(stick, &part, &mut report) else {
        return Ok(report);
    };
    check_syslinux_cfg(&fs, &mut report);
    let mut modules = Vec::new();
    for cfg in [installer::BOOT_CFG, installer::EFI_BOOT_CFG] {
        check_boot_cfg(&fs, cfg, &mut modules, &mut report);
    }
    modules.sort();
    modules.dedup();
    for name in modules {
        let mut check = GzipCheck::new();
        let read = read_file(&fs, &name, &mut check, u64::MAX);
        let (ok, detail) = match (read, check.finish()) {
            (Err(e), _) => (false, format!("cannot be read: {e}")),
            (Ok(_), Ok(found)) => (true, found),
            (Ok(_), Err(damage)) => (false, damage),
        };
        report.add(format!("module {name}"), ok, detail);
    }
    Ok(report)
}

/// Checks the table: with a `plan`, exactly its entry and SYSLINUX's
/// MBR code; without, one active FAT32 partition 1. The partition, when
/// the table is usable.
fn check_table(
    stick: &Source,
    plan: Option<&InstallerPlan>,
    report: &mut VerifyReport,
) -> Option<Partition> {
    let t = match table::read(stick) {
        Ok(t) => t,
        Err(e) => {
            report.add("partition table", false, e.to_string());
            return None;
        }
    };
    let part = t.get(1).cloned();
    let planned = plan
        .and_then(|p| p.partitions.first())
        .map(|p| p.partition());
    let problem = match (&part, planned) {
        (None, _) => Some("no partition 1".to_string()),
        (Some(p), Some(planned)) if *p != planned || t.partitions.len() != 1 => Some(format!(
            "{} entries, partition 1 {p:?}; planned only {planned:?}",
            t.partitions.len()
        )),
        (Some(p), None) if p.kind != layout::partition_type() || !p.active => Some(format!(
            "partition 1 is {p:?}, not an active FAT32 (0x0c) one"
        )),
        _ => None,
    };
    report.add(
        "partition table",
        problem.is_none(),
        problem
            .clone()
            .unwrap_or_else(|| "one active FAT32 partition 1 (0x0c)".into()),
    );
    if plan.is_some() {
        let code = syslinux::mbr_code().unwrap_or_default();
        let same = !code.is_empty() && t.boot_code.get(..code.len()) == Some(&code[..]);
        report.add(
            "MBR boot code",
            same,
            if same {
                "SYSLINUX's mbr.bin"
            } else {
                "differs from SYSLINUX's mbr.bin"
            },
        );
    }
    problem.is_none().then_some(part).flatten()
}

/// The planned FAT32 boot sector: hidden sectors, cluster size, count.
fn check_boot_sector(
    stick: &Source,
    part: &Partition,
    plan: &InstallerPlan,
    report: &mut VerifyReport,
) -> Result<()> {
    let bs = stick.read_sector(part.start, "the FAT32 boot sector")?;
    let le32 = |at: usize| {
        bs.get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_le_bytes)
    };
    let hidden = u64::from(le32(0x1c));
    let spc = u64::from(bs.get(0x0d).copied().unwrap_or(0));
    let per_fat = u64::from(le32(0x24));
    let fat = &plan.fat;
    let got = (hidden, spc * SECTOR, per_fat);
    let want = (fat.hidden_sectors, fat.cluster_bytes, fat.sectors_per_fat);
    report.add(
        "FAT32 boot sector",
        got == want,
        format!(
            "hidden sectors {}, cluster {} bytes, FAT {} sectors{}",
            got.0,
            got.1,
            got.2,
            if got == want {
                String::new()
            } else {
                format!("; planned {want:?}")
            }
        ),
    );
    Ok(())
}

/// Both FAT copies are equal.
fn check_fats(stick: &Source, part: &Partition, report: &mut VerifyReport) -> Result<()> {
    let bs = stick.read_sector(part.start, "the FAT32 boot sector")?;
    let reserved = u64::from(le::u16_at(&bs, 0x0e));
    let per_fat = u64::from(le::u32_at(&bs, 0x24));
    let fats = bs[0x10];
    if fats != 2 || per_fat == 0 || reserved + 2 * per_fat > part.sectors {
        report.add(
            "FAT copies",
            false,
            format!("{fats} FATs of {per_fat} sectors"),
        );
        return Ok(());
    }
    let mut first = stick
        .slice(part.start + reserved, per_fat)
        .map_err(read_err)?;
    let mut second = stick
        .slice(part.start + reserved + per_fat, per_fat)
        .map_err(read_err)?;
    let (mut a, mut b) = (vec![0; 1 << 20], vec![0; 1 << 20]);
    let mut at = 0u64;
    let total = per_fat * SECTOR;
    while at < total {
        let n = (total - at).min(a.len() as u64) as usize;
        let (x, y) = (&mut a[..n], &mut b[..n]);
        first.read_exact(x).map_err(read_err)?;
        second.read_exact(y).map_err(read_err)?;
        if x != y {
            report.add(
                "FAT copies",
                false,
                format!("differ in the {} KiB from byte {at}", n >> 10),
            );
            return Ok(());
        }
        at += n as u64;
    }
    report.add(
        "FAT copies",
        true,
        format!("2 FATs of {per_fat} sectors, equal"),
    );
    Ok(())
}

/// Checks the BOOT.CFG at `path`: parses, and names files that exist;
/// adds those to `modules`.
fn check_boot_cfg(fs: &Fs, path: &str, modules: &mut Vec<String>, report: &mut VerifyReport) {
    let mut text = Vec::new();
    let cfg = read_file(fs, path, &mut text, MAX_CFG)
        .map_err(|e| e.to_string())
        .and_then(|_| BootCfg::parse(&text).map_err(|e| e.to_string()));
    let cfg = match cfg {
        Ok(cfg) => cfg,
        Err(e) => return report.add(path, false, e),
    };
    let missing: Vec<&str> = cfg
        .files()
        .filter(|name| fs.root_dir().open_file(name).is_err())
        .collect();
    modules.extend(
        cfg.files()
            .filter(|n| !missing.contains(n))
            .map(str::to_string),
    );
    report.add(
        path,
        missing.is_empty(),
        match missing.is_empty() {
            true => format!("names {} files, all present", cfg.files().count()),
            false => format!("names files not on the stick: {}", missing.join(", ")),
        },
    );
}

/// The FAT32 volume of partition `part`, or a failed check saying why
/// it cannot be read.
fn opened<'a>(stick: &'a Source, part: &Partition, report: &mut VerifyReport) -> Option<Fs<'a>> {
    open_fs(stick, part)
        .inspect_err(|e| report.add("FAT32 volume", false, e.to_string()))
        .ok()
}

/// SYSLINUX.CFG passes `-p 1` on every `APPEND -c` line (without it,
/// mboot looks for its files on the CD it was not booted from).
fn check_syslinux_cfg(fs: &Fs, report: &mut VerifyReport) {
    let mut text = Vec::new();
    let (ok, detail) = match read_file(fs, installer::SYSLINUX_CFG, &mut text, MAX_CFG) {
        Err(e) => (false, format!("cannot be read: {e}")),
        Ok(_) => {
            let text = String::from_utf8_lossy(&text);
            match installer::syslinux_cfg(&text) == text {
                true => (true, "every APPEND -c line has -p 1".to_string()),
                false => (false, "an APPEND -c line lacks -p 1".to_string()),
            }
        }
    };
    report.add(installer::SYSLINUX_CFG, ok, detail);
}

/// Opens the FAT32 volume of partition `part`.
/// The reserved sectors and both FATs are read into memory first: fatfs
/// reads a FAT entry for every cluster of a file.
fn open_fs<'a>(stick: &'a Source, part: &Partition) -> io::Result<Fs<'a>> {
    let bs = stick
        .read_sector(part.start, "the FAT32 boot sector")
        .map_err(io::Error::other)?;
    let reserved = u64::from(le::u16_at(&bs, 0x0e));
    let per_fat = u64::from(le::u32_at(&bs, 0x24));
    let meta = ((reserved + 2 * per_fat) * SECTOR).min(part.sectors * SECTOR);
    let slice = stick.slice(part.start, part.sectors)?;
    fatfs::FileSystem::new(MetaCache::new(slice, meta, true)?, fatfs::FsOptions::new())
}

/// Every file below `dir` (at `prefix`), by path.
fn walk<T: fatfs::ReadWriteSeek>(dir: &fatfs::Dir<'_, T>, prefix: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.clone(), prefix.to_string())];
    let mut seen = 0;
    while let Some((dir, prefix)) = stack.pop() {
        for entry in dir.iter() {
            let entry = entry.map_err(read_err)?;
            seen += 1;
            if seen > MAX_ENTRIES {
                return Err(read_err(io::Error::other("too many directory entries")));
            }
            let name = entry.short_file_name();
            if name == "." || name == ".." {
                continue;
            }
            let path = format!("{prefix}{name}");
            if entry.is_dir() {
                stack.push((entry.to_dir(), format!("{path}/")));
            } else {
                out.push(path);
            }
        }
    }
    Ok(out)
}

/// Reads at most `limit` bytes of the file at `path` into `into`.
fn read_file(fs: &Fs, path: &str, into: &mut dyn io::Write, limit: u64) -> io::Result<u64> {
    let file = fs.root_dir().open_file(path)?;
    io::copy(&mut file.take(limit), into)
}

/// The size and BLAKE3 of the file at `path`.
fn hash_file(fs: &Fs, path: &str) -> io::Result<(u64, String)> {
    let mut bytes = 0;
    let hash = digest::blake3_of(|into| {
        bytes = read_file(fs, path, into, u64::MAX)?;
        Ok::<_, io::Error>(())
    })?;
    Ok((bytes, hash))
}

/// A read of the stick failed.
fn read_err(source: io::Error) -> crate::Error {
    crate::Error::Read {
        what: "the installer stick".into(),
        offset: 0,
        source,
    }
}
