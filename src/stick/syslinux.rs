//! SYSLINUX for the BIOS boot of an installer stick. VMware's mboot.c32
//! is a COM32R module for SYSLINUX 3.86 (4.x loads it too); SYSLINUX 5
//! and later cannot load it ("Failed to load COM32 file mboot.c32"), and
//! Debian ships only 6.04. So esxstick installs no SYSLINUX of its own:
//! the user gives a 3.86–4.07 `syslinux` installer with `--syslinux
//! PATH`, checked by its `--version` before anything is written, and run
//! on the written partition (`--install --offset BYTES`, 3.86: `-o
//! BYTES`). SYSLINUX's MBR boot code, which only finds and starts the
//! active partition, comes from Debian's syslinux-common at run time
//! (GPL code is read from the system rather than embedded).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use crate::error::{Error, InstallerProblem, Result};

/// SYSLINUX's MBR boot code (syslinux-common).
pub const MBR_BIN: &str = "/usr/lib/syslinux/mbr/mbr.bin";
/// Bytes of boot code an MBR holds.
const BOOT_CODE: usize = 440;

/// A `syslinux` installer that can load VMware's mboot.c32.
#[derive(Debug, Clone, Serialize)]
pub struct Syslinux {
    /// The installer binary.
    pub path: PathBuf,
    /// Its version, e.g. `4.07`.
    pub version: String,
}

impl Syslinux {
    /// Checks the `syslinux` at `path`: its `--version` must say 3.86 up
    /// to 4.07.
    pub fn check(path: &Path) -> Result<Syslinux> {
        let refuse = |reason: String| {
            Error::Installer(InstallerProblem::Syslinux {
                path: path.to_path_buf(),
                reason,
            })
        };
        let out = Command::new(path)
            .arg("--version")
            .output()
            .map_err(|e| refuse(format!("cannot run it: {e}")))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let version = parse_version(&text)
            .ok_or_else(|| refuse("its --version names no SYSLINUX version".into()))?;
        if !loads_mboot(&version) {
            return Err(refuse(format!(
                "SYSLINUX {version} cannot load VMware's mboot.c32 (a COM32R module for \
                 SYSLINUX 3.86); give a syslinux 3.86 to 4.07"
            )));
        }
        Ok(Syslinux {
            path: path.to_path_buf(),
            version,
        })
    }

    /// Installs SYSLINUX into the FAT partition at byte `offset` of the
    /// disk or image `target`.
    pub fn install(&self, target: &Path, offset: u64) -> Result<()> {
        let option = if self.version.starts_with("3.") {
            "-o"
        } else {
            "--offset"
        };
        let mut command = Command::new(&self.path);
        if !self.version.starts_with("3.") {
            command.arg("--install");
        }
        let out = command
            .arg(option)
            .arg(offset.to_string())
            .arg(target)
            .output()
            .map_err(|e| self.failed(e.to_string()))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let first = stderr.lines().next().unwrap_or("no message").trim();
            return Err(self.failed(format!("{}: {first}", out.status)));
        }
        Ok(())
    }

    /// The error of an installation that failed.
    fn failed(&self, reason: String) -> Error {
        Error::Installer(InstallerProblem::Syslinux {
            path: self.path.clone(),
            reason: format!("installing failed: {reason}"),
        })
    }
}

/// The version `syslinux --version` prints after the program's name as
/// it was run (`syslinux 4.07  Copyright …`, `/usr/bin/syslinux 6.04
/// Copyright …`, `syslinux 3.86 …`).
fn parse_version(text: &str) -> Option<String> {
    text.split_whitespace()
        .skip_while(|w| !w.rsplit('/').next().is_some_and(|n| n.contains("syslinux")))
        .nth(1)
        .filter(|v| v.starts_with(|c: char| c.is_ascii_digit()))
        .map(|v| {
            v.trim_end_matches(|c: char| !c.is_ascii_digit())
                .to_string()
        })
}

/// Whether SYSLINUX `version` loads VMware's COM32R mboot.c32: 3.86 to
/// 4.07.
fn loads_mboot(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
            .ok()
    });
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(3), Some(minor)) => minor >= 86,
        (Some(4), Some(minor)) => minor <= 7,
        _ => false,
    }
}

/// SYSLINUX's MBR boot code (its first 440 bytes), read from
/// [`MBR_BIN`].
pub fn mbr_code() -> Result<Vec<u8>> {
    let path = Path::new(MBR_BIN);
    let mut bytes = std::fs::read(path).map_err(|source| {
        Error::Installer(InstallerProblem::NoMbrCode {
            path: path.to_path_buf(),
            source,
        })
    })?;
    bytes.truncate(BOOT_CODE);
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_that_load_mboot() {
        for (text, version, ok) in [
            (
                "syslinux 4.07  Copyright 1994-2013 H. Peter Anvin et al",
                "4.07",
                true,
            ),
            (
                "syslinux 6.04  Copyright 1994-2015 H. Peter Anvin et al",
                "6.04",
                false,
            ),
            ("syslinux 3.86 2010-04-01 Copyright", "3.86", true),
            (
                "/usr/bin/syslinux 6.04  Copyright 1994-2015 H. Peter Anvin",
                "6.04",
                false,
            ),
            ("/opt/s/syslinux.exe 4.05 Copyright", "4.05", true),
            ("syslinux 3.85 Copyright", "3.85", false),
            ("syslinux 4.08 Copyright", "4.08", false),
            ("syslinux 5.10 Copyright", "5.10", false),
        ] {
            let v = parse_version(text).unwrap();
            assert_eq!(v, version);
            assert_eq!(loads_mboot(&v), ok, "{text}");
        }
        assert_eq!(parse_version("nothing here"), None);
    }
}
