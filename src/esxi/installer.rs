//! ESXi 5–8 installer ISOs (VMware's own, ImageBuilder or ESXi-Customizer
//! output): recognised by `BOOT.CFG`, `ISOLINUX.CFG` and `MBOOT.C32` at
//! the root and no dd image, their inventory (version and build from
//! `build=`, kernel, modules present or missing, boot options, UEFI and
//! BIOS capability), and the two configuration files a stick needs made
//! from theirs: `SYSLINUX.CFG` (ISOLINUX.CFG with `-p 1` on each
//! `APPEND -c …` line, so that mboot reads partition 1) and BOOT.CFG with
//! boot options added to `kernelopt=`.

use std::path::Path;

use serde::Serialize;

use crate::error::{Error, InstallerProblem, Result};
use crate::esxi::bootcfg::{self, BootCfg};
use crate::esxi::extract::{create, finish, into_dir, write_err, ExtractedFile, SUMS};
use crate::esxi::modules::GzipCheck;
use crate::image::iso;
use crate::image::isofs::{IsoFile, IsoTree};
use crate::image::source::Source;

/// Version of the JSON report `inspect --json` prints for an installer.
pub const SCHEMA: &str = "esxstick.installer/1";
/// The installer's boot configuration, at the root.
pub const BOOT_CFG: &str = "BOOT.CFG";
/// Where mboot.efi reads its boot configuration: its own directory.
pub const EFI_BOOT_CFG: &str = "EFI/BOOT/BOOT.CFG";
/// ISOLINUX's configuration, at the root.
pub const ISOLINUX_CFG: &str = "ISOLINUX.CFG";
/// SYSLINUX's configuration on the stick, at the root.
pub const SYSLINUX_CFG: &str = "SYSLINUX.CFG";
/// VMware's COM32R multiboot loader for BIOS boot.
pub const MBOOT_C32: &str = "MBOOT.C32";
/// The UEFI boot loader (mboot.efi).
pub const BOOTX64_EFI: &str = "EFI/BOOT/BOOTX64.EFI";
/// The largest configuration file read.
const MAX_CONFIG: u64 = bootcfg::MAX_BYTES;

/// An installer ISO opened for reading.
pub struct InstallerIso {
    /// The medium, read through its extents.
    pub source: Source,
    /// What it holds.
    pub inventory: Installer,
}

/// What an installer ISO holds, as `inspect` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Installer {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// The ISO's path.
    pub path: String,
    /// `installer-iso`.
    pub kind: &'static str,
    /// The ESXi version (`build=` up to its first `-`), when given.
    pub version: Option<String>,
    /// `build=` as BOOT.CFG gives it.
    pub build: Option<String>,
    /// `title=`, when given.
    pub title: Option<String>,
    /// The kernel (`kernel=`).
    pub kernel: String,
    /// The boot options (`kernelopt=`).
    pub kernelopt: String,
    /// The kernel and every module, in load order.
    pub modules: Vec<InstallerModule>,
    /// Whether the ISO has `EFI/BOOT/BOOT.CFG` (else the stick gets a
    /// copy of `/BOOT.CFG` there).
    pub efi_boot_cfg: bool,
    /// Whether it can boot UEFI: `EFI/BOOT/BOOTX64.EFI` is there.
    pub uefi: bool,
    /// Whether it can boot BIOS: `ISOLINUX.CFG` and `MBOOT.C32` are
    /// there (a stick also needs SYSLINUX 3.86–4.07).
    pub bios: bool,
    /// Number of files on the ISO.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Whether the modules' gzip streams were checked.
    pub modules_checked: bool,
    /// Every file and directory.
    #[serde(skip)]
    pub tree: IsoTree,
    /// BOOT.CFG's text.
    #[serde(skip)]
    pub boot_cfg: String,
    /// ISOLINUX.CFG's text.
    #[serde(skip)]
    pub isolinux_cfg: String,
    /// EFI/BOOT/BOOT.CFG's text, when the ISO has one.
    #[serde(skip)]
    pub efi_boot_cfg_text: Option<String>,
}

/// A file BOOT.CFG names.
#[derive(Debug, Clone, Serialize)]
pub struct InstallerModule {
    /// The name as BOOT.CFG gives it, without a leading `/`.
    pub name: String,
    /// Its path on the ISO, when there.
    pub path: Option<String>,
    /// Its size, when there.
    pub bytes: Option<u64>,
    /// `missing`, `present` (not checked), `present, gzip intact`,
    /// `present, not gzip`, or `DAMAGED: …`.
    pub state: String,
    /// Whether the module is usable (present, and not damaged).
    pub ok: bool,
}

/// Opens `path` as an ESXi 5+ installer ISO: `None` when it is not an ISO
/// 9660 medium, carries a dd image (ESXi 4), or lacks BOOT.CFG,
/// ISOLINUX.CFG or MBOOT.C32 at its root — those are read as before.
pub fn open(path: &Path) -> Result<Option<InstallerIso>> {
    let meta = std::fs::metadata(path).map_err(|source| Error::Open {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_file() && !std::os::unix::fs::FileTypeExt::is_block_device(&meta.file_type()) {
        return Ok(None);
    }
    let source = Source::open_iso(path)?;
    if !iso::is_iso(source.file()) {
        return Ok(None);
    }
    let tree = IsoTree::read(source.file(), source.len())?;
    let root = |name: &str| tree.file(name).is_some();
    let is_installer = root(BOOT_CFG) && root(ISOLINUX_CFG) && root(MBOOT_C32);
    let has_image = tree
        .files
        .iter()
        .any(|f| !f.path.contains('/') && iso::is_image_name(&f.path.to_ascii_lowercase()));
    if !is_installer || has_image {
        return Ok(None);
    }
    let inventory = Installer::read(&source, tree)?;
    Ok(Some(InstallerIso { source, inventory }))
}

impl Installer {
    /// The inventory of the installer whose `tree` is on `source`.
    fn read(source: &Source, tree: IsoTree) -> Result<Installer> {
        let boot_cfg = read_text(source, &tree, BOOT_CFG)?;
        let isolinux_cfg = read_text(source, &tree, ISOLINUX_CFG)?;
        let cfg = BootCfg::parse(boot_cfg.as_bytes()).map_err(|e| bad_config(BOOT_CFG, e))?;
        let efi_boot_cfg_text = match tree.file(EFI_BOOT_CFG) {
            Some(_) => Some(read_text(source, &tree, EFI_BOOT_CFG)?),
            None => None,
        };
        let modules = cfg
            .files()
            .map(|name| {
                let found = tree.file(name);
                InstallerModule {
                    name: name.to_string(),
                    path: found.map(|f| f.path.clone()),
                    bytes: found.map(|f| f.bytes),
                    state: if found.is_some() {
                        "present"
                    } else {
                        "missing"
                    }
                    .into(),
                    ok: found.is_some(),
                }
            })
            .collect();
        let has = |name: &str| tree.file(name).is_some();
        Ok(Installer {
            schema: SCHEMA,
            path: source.path().display().to_string(),
            kind: "installer-iso",
            version: cfg
                .build
                .as_deref()
                .and_then(|b| b.split('-').next())
                .filter(|v| !v.is_empty())
                .map(str::to_string),
            build: cfg.build.clone(),
            title: cfg.other.get("title").cloned(),
            kernel: cfg.kernel.clone(),
            kernelopt: cfg.kernelopt.clone(),
            modules,
            efi_boot_cfg: has(EFI_BOOT_CFG),
            uefi: has(BOOTX64_EFI),
            bios: has(ISOLINUX_CFG) && has(MBOOT_C32),
            files: tree.files.len(),
            bytes: tree.bytes(),
            modules_checked: false,
            tree,
            boot_cfg,
            isolinux_cfg,
            efi_boot_cfg_text,
        })
    }

    /// Reads every module present through and checks its gzip stream
    /// (CRC-32 and length), recording the state of each.
    pub fn check_modules(&mut self, source: &Source) -> Result<()> {
        for m in &mut self.modules {
            let Some(file) = m.path.as_deref().and_then(|p| self.tree.file(p)) else {
                continue;
            };
            let mut check = GzipCheck::new();
            copy_file(source, file, &mut check)?;
            let gzip = check.is_gzip();
            match (check.finish(), gzip) {
                (Ok(_), true) => m.state = "present, gzip intact".into(),
                (Ok(_), false) => m.state = "present, not gzip".into(),
                (Err(damage), _) => {
                    m.state = format!("DAMAGED: {damage}");
                    m.ok = false;
                }
            }
        }
        self.modules_checked = true;
        Ok(())
    }

    /// Whether every module is there and (when checked) intact: else the
    /// refusal, naming the missing modules or the first damaged one.
    pub fn check_complete(&self) -> Result<()> {
        let missing: Vec<String> = self
            .modules
            .iter()
            .filter(|m| m.path.is_none())
            .map(|m| m.name.clone())
            .collect();
        if !missing.is_empty() {
            return Err(Error::Installer(InstallerProblem::MissingModules {
                names: missing,
            }));
        }
        match self.modules.iter().find(|m| !m.ok) {
            Some(m) => Err(Error::Installer(InstallerProblem::DamagedModule {
                name: m.path.clone().unwrap_or_else(|| m.name.clone()),
                problem: m.state.trim_start_matches("DAMAGED: ").to_string(),
            })),
            None => Ok(()),
        }
    }

    /// The ISO paths of the modules that are gzip streams to check.
    pub fn module_paths(&self) -> Vec<String> {
        self.modules.iter().filter_map(|m| m.path.clone()).collect()
    }
}

/// Copies every file of the ISO into `dir`, as `extract` does for an
/// image (staged, SHA256SUMS last; a non-empty `dir` refused unless
/// `force`).
pub fn extract(iso: &InstallerIso, dir: &Path, force: bool) -> Result<Vec<ExtractedFile>> {
    let tree = &iso.inventory.tree;
    if let Some(f) = tree
        .files
        .iter()
        .find(|f| f.path.eq_ignore_ascii_case(SUMS))
    {
        return Err(bad_config(
            &f.path,
            "has the name of the checksum list extract writes",
        ));
    }
    into_dir(dir, force, |staging| {
        for d in &tree.dirs {
            let path = staging.join(d);
            std::fs::create_dir_all(&path).map_err(write_err(&path))?;
        }
        let mut files = Vec::new();
        for f in &tree.files {
            // Every name was checked when the tree was read: no
            // separators, no `.` or `..`.
            let path = staging.join(&f.path);
            let mut out = create(&path)?;
            copy_file(&iso.source, f, &mut out).map_err(|e| match e {
                Error::Write { source, .. } => write_err(&path)(source),
                other => other,
            })?;
            files.push(finish(out, &path, &f.path)?);
        }
        Ok(files)
    })
}

/// Copies `file` of `source` into `into`, streaming. A failure to write
/// is an [`Error::Write`] naming the file (the caller knows where it was
/// writing to).
pub fn copy_file(source: &Source, file: &IsoFile, into: &mut dyn std::io::Write) -> Result<()> {
    let what = file.path.as_str();
    let flow = source.for_each_chunk(file.start, file.bytes, what, |_, chunk| {
        into.write_all(chunk).map_err(|source| Error::Write {
            path: what.into(),
            source,
        })?;
        Ok(std::ops::ControlFlow::<std::convert::Infallible>::Continue(
            (),
        ))
    })?;
    let std::ops::ControlFlow::Continue(()) = flow;
    Ok(())
}

/// Reads the configuration file `name` at the root as text.
fn read_text(source: &Source, tree: &IsoTree, name: &str) -> Result<String> {
    let file = tree
        .file(name)
        .ok_or_else(|| bad_config(name, "not on the ISO"))?;
    if file.bytes > MAX_CONFIG {
        return Err(bad_config(name, format!("larger than {MAX_CONFIG} bytes")));
    }
    let mut bytes = vec![0; file.bytes as usize];
    source.read_at(file.start, &mut bytes, name)?;
    String::from_utf8(bytes).map_err(|_| bad_config(name, "not text"))
}

/// An [`InstallerProblem::BadConfig`].
fn bad_config(file: &str, reason: impl ToString) -> Error {
    Error::Installer(InstallerProblem::BadConfig {
        file: file.to_string(),
        reason: reason.to_string(),
    })
}

/// ISOLINUX.CFG made SYSLINUX.CFG: `-p 1` added to every `APPEND` line
/// that passes mboot a boot.cfg (`-c`), so that mboot reads its files
/// from partition 1 of the stick rather than the CD.
pub fn syslinux_cfg(isolinux_cfg: &str) -> String {
    map_lines(isolinux_cfg, |line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        let is_append = words
            .first()
            .is_some_and(|w| w.eq_ignore_ascii_case("append"));
        let has_c = words.contains(&"-c");
        let has_p = words.windows(2).any(|w| w == ["-p", "1"]);
        (is_append && has_c && !has_p).then(|| format!("{line} -p 1"))
    })
}

/// BOOT.CFG `text` with `extra` added to its boot options (`kernelopt=`),
/// keeping those it has; a `kernelopt=` line is added when there is none.
pub fn with_kernelopt(text: &str, extra: &str) -> String {
    let extra = extra.trim();
    if extra.is_empty() {
        return text.to_string();
    }
    let mut found = false;
    let mut out = map_lines(text, |line| {
        let (key, value) = line.split_once('=')?;
        if key.trim() != "kernelopt" {
            return None;
        }
        found = true;
        let value = value.trim();
        Some(match value.is_empty() {
            true => format!("kernelopt={extra}"),
            false => format!("kernelopt={value} {extra}"),
        })
    });
    if !found {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("kernelopt={extra}\n"));
    }
    out
}

/// `text` with each line (without its line ending) replaced by what `f`
/// gives for it, when it gives something; line endings are kept.
fn map_lines(text: &str, mut f: impl FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    for piece in text.split_inclusive('\n') {
        let body = piece.trim_end_matches(['\n', '\r']);
        let ending = piece.get(body.len()..).unwrap_or_default();
        match f(body) {
            Some(line) => out.push_str(&line),
            None => out.push_str(body),
        }
        out.push_str(ending);
    }
    out
}

/// Checks `--kernelopt`: one line.
pub fn check_kernelopt(extra: &str) -> Result<()> {
    if extra.contains(['\n', '\r']) {
        return Err(Error::Installer(InstallerProblem::KernelOptLines));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_lines_get_p_1_once() {
        let cfg =
            "DEFAULT menu.c32\r\nLABEL install\r\n  KERNEL mboot.c32\r\n  APPEND -c boot.cfg\r\n\
                   LABEL x\n  append -c boot.cfg -p 1\n  APPEND foo\n";
        let out = syslinux_cfg(cfg);
        assert_eq!(
            out,
            "DEFAULT menu.c32\r\nLABEL install\r\n  KERNEL mboot.c32\r\n  APPEND -c boot.cfg -p 1\r\n\
             LABEL x\n  append -c boot.cfg -p 1\n  APPEND foo\n"
        );
    }

    #[test]
    fn kernelopt_keeps_the_options_it_has() {
        let cfg = "title=x\nkernelopt=runweasel cdromBoot\nmodules=/a\n";
        assert_eq!(
            with_kernelopt(cfg, "ks=usb:/KS.CFG"),
            "title=x\nkernelopt=runweasel cdromBoot ks=usb:/KS.CFG\nmodules=/a\n"
        );
        assert_eq!(with_kernelopt("kernelopt=\n", "a"), "kernelopt=a\n");
        assert_eq!(with_kernelopt("kernel=/b", "a"), "kernel=/b\nkernelopt=a\n");
        assert_eq!(with_kernelopt(cfg, " "), cfg);
    }
}
