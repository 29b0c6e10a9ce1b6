//! The configuration bundle, as VMware's tools make it (`vicfg-cfgbackup
//! -s`, PowerCLI `Get-VMHostFirmware -BackupConfiguration`, `vim-cmd
//! hostsvc/firmware/backup_config`): `configBundle-<host>.tgz`, a tar.gz
//! of `Manifest.txt` (`RELEASELEVEL=`, `UUID=`, `KERNELOPTS=`,
//! `USEROPTS=`) and the host's `state.tgz`. VMware's restore refuses a
//! bundle whose release level is not the host's build.

use std::io;

use flate2::write::GzEncoder;
use serde::Serialize;

use crate::error::ConfigProblem;
use crate::esxi::config::archive;
use crate::esxi::config::state::{LOCAL_TGZ, LOCAL_TGZ_ENCRYPTED, STATE_TGZ};

/// The manifest's name in a bundle.
pub const MANIFEST: &str = "Manifest.txt";

/// A bundle's Manifest.txt.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Manifest {
    /// `RELEASELEVEL=`, e.g. "VMware ESXi 4.0.0 build-164009".
    pub release_level: Option<String>,
    /// `UUID=`: the host's system UUID.
    pub uuid: Option<String>,
    /// `KERNELOPTS=`: the bank's kernel options.
    pub kernel_opts: String,
    /// `USEROPTS=`: options the user added.
    pub user_opts: String,
}

impl Manifest {
    /// Reads `KEY=VALUE` lines; unknown keys are ignored.
    pub fn parse(text: &str) -> Manifest {
        let mut m = Manifest::default();
        for (key, value) in text.lines().filter_map(|l| l.split_once('=')) {
            let value = value.trim().to_string();
            match key.trim() {
                "RELEASELEVEL" => m.release_level = Some(value).filter(|v| !v.is_empty()),
                "UUID" => m.uuid = Some(value).filter(|v| !v.is_empty()),
                "KERNELOPTS" => m.kernel_opts = value,
                "USEROPTS" => m.user_opts = value,
                _ => {}
            }
        }
        m
    }

    /// The file's text, keys in VMware's order.
    pub fn to_text(&self) -> String {
        format!(
            "RELEASELEVEL={}\nUUID={}\nKERNELOPTS={}\nUSEROPTS={}\n",
            self.release_level.as_deref().unwrap_or(""),
            self.uuid.as_deref().unwrap_or(""),
            self.kernel_opts,
            self.user_opts
        )
    }
}

/// The release level VMware writes for a boot.cfg `build=`:
/// "4.0.0-164009" → "VMware ESXi 4.0.0 build-164009" (ESXi 5+ builds such
/// as "6.7.0-3.73.14320388" keep their last number).
pub fn release_level(build: &str) -> Option<String> {
    let (version, number) = parse_build(build)?;
    Some(format!("VMware ESXi {version} build-{number}"))
}

/// Whether a bundle's `RELEASELEVEL=` names the build of a boot.cfg
/// `build=`: the same version and build number.
pub fn same_build(release_level: &str, build: &str) -> bool {
    let words: Vec<&str> = release_level.split_whitespace().collect();
    let level = words.iter().enumerate().find_map(|(i, w)| {
        let number = w.strip_prefix("build-")?;
        Some((*words.get(i.checked_sub(1)?)?, number))
    });
    level.is_some_and(|level| parse_build(build) == Some(level))
}

/// (version, build number) of a boot.cfg `build=`.
fn parse_build(build: &str) -> Option<(&str, &str)> {
    let (version, rest) = build.trim().split_once('-')?;
    let number = rest.rsplit('.').next()?;
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == '.');
    (digits(version) && digits(number)).then_some((version, number))
}

/// What a file given as a host's configuration holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigFile {
    /// A state.tgz (its bytes are the file's).
    State,
    /// A configuration bundle.
    Bundle {
        /// Its Manifest.txt.
        manifest: Manifest,
        /// Its state.tgz.
        state: Vec<u8>,
    },
}

/// Tells a state.tgz from a configuration bundle (`bytes`, named
/// `archive` in errors), reading it whole and checking it as
/// [`archive::read`] does. The state.tgz itself is not checked here.
pub fn read(bytes: &[u8], archive: &str) -> Result<ConfigFile, ConfigProblem> {
    let members = archive::read(bytes, archive, &|p| p == MANIFEST || p == STATE_TGZ)?;
    let data = |name: &str| {
        members
            .iter()
            .find(|m| m.path == name && m.is_file)
            .and_then(|m| m.data.clone())
    };
    if let Some(manifest) = data(MANIFEST) {
        let text = String::from_utf8(manifest).map_err(|_| ConfigProblem::ManifestNotText)?;
        let state = data(STATE_TGZ).ok_or(ConfigProblem::BundleWithoutState)?;
        return Ok(ConfigFile::Bundle {
            manifest: Manifest::parse(&text),
            state,
        });
    }
    let has = |name: &str| members.iter().any(|m| m.path == name);
    if has(LOCAL_TGZ) || has(LOCAL_TGZ_ENCRYPTED) {
        Ok(ConfigFile::State)
    } else {
        Err(ConfigProblem::NotConfiguration)
    }
}

/// A configuration bundle of `manifest` and `state` as VMware makes one:
/// a gzip-compressed tar of Manifest.txt and state.tgz, owned by root,
/// dated `mtime` (seconds since 1970).
pub fn make(manifest: &Manifest, state: &[u8], mtime: u64) -> io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Default::default()));
    let text = manifest.to_text();
    for (name, data) in [(MANIFEST, text.as_bytes()), (STATE_TGZ, state)] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        header.set_uid(0);
        header.set_gid(0);
        header.set_cksum();
        tar.append_data(&mut header, name, data)?;
    }
    tar.into_inner()?.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esxi::config::archive::tests::tgz;

    #[test]
    fn release_levels_match_builds_as_vmware_writes_them() {
        assert_eq!(
            release_level("4.0.0-164009").as_deref(),
            Some("VMware ESXi 4.0.0 build-164009")
        );
        assert_eq!(
            release_level("6.7.0-3.73.14320388").as_deref(),
            Some("VMware ESXi 6.7.0 build-14320388")
        );
        assert_eq!(release_level(""), None);
        assert!(same_build("VMware ESXi 4.0.0 build-164009", "4.0.0-164009"));
        assert!(same_build(
            "VMware ESXi 6.7.0 build-14320388",
            "6.7.0-3.73.14320388"
        ));
        assert!(!same_build(
            "VMware ESXi 4.0.0 build-175625",
            "4.0.0-164009"
        ));
        assert!(!same_build(
            "VMware ESXi 4.1.0 build-164009",
            "4.0.0-164009"
        ));
        assert!(!same_build("garbage", "4.0.0-164009"));
    }

    #[test]
    fn a_bundle_made_reads_back_and_state_is_told_from_bundle() {
        let manifest = Manifest {
            release_level: Some("VMware ESXi 4.0.0 build-164009".into()),
            uuid: Some("4a7c".into()),
            kernel_opts: "noACPI".into(),
            user_opts: String::new(),
        };
        let state = tgz(&[("local.tgz", b"x")]);
        let bundle = make(&manifest, &state, 1_700_000_000).unwrap();
        assert_eq!(
            read(&bundle, "b.tgz").unwrap(),
            ConfigFile::Bundle {
                manifest: manifest.clone(),
                state: state.clone()
            }
        );
        assert_eq!(read(&state, "s.tgz").unwrap(), ConfigFile::State);
        assert!(matches!(
            read(&tgz(&[("Manifest.txt", b"UUID=1")]), "b"),
            Err(ConfigProblem::BundleWithoutState)
        ));
        assert!(matches!(
            read(&tgz(&[("etc/x", b"")]), "b"),
            Err(ConfigProblem::NotConfiguration)
        ));
        assert_eq!(Manifest::parse(&manifest.to_text()), manifest);
    }
}
