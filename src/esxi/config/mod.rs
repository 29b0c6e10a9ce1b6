//! The host's configuration and customisation around a bank (../shared
//! esxi.md §6): its [`state`] (state.tgz with local.tgz and esx.conf), the
//! configuration [`bundle`] VMware's tools make of it, [`backup`] into a
//! directory of such bundles, and the [`oem`] driver slot of ESXi 3.5/4.x
//! — all gzip-compressed tar [`archive`]s, checked whole before use.
//!
//! [`replacements`] turns what the user gives (`--state`, `--oem`) and
//! what an update carries over into the files a new bank gets instead of
//! the source bank's, boot.cfg edited to name them: plain data the
//! planner lists and the writer copies.

pub mod archive;
pub mod backup;
pub mod bundle;
pub mod oem;
pub mod state;

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::digest;
use crate::error::{ConfigOrigin, ConfigProblem, Error, NoBankReason, Result};
use crate::esxi::bootcfg::{self, BootCfg};
use crate::esxi::inventory::Inventory;
use crate::image::source::Source;
use crate::ondisk::fat::Volume;
use bundle::ConfigFile;
use state::{HostConfig, STATE_TGZ};

/// Largest file accepted with `--state` or `--oem`, or read from a bank
/// as its state.tgz (a host's configuration is KiB to a few MiB).
pub const MAX_FILE_BYTES: u64 = 64 << 20;
/// boot.cfg's name in a bank.
const BOOT_CFG: &str = "boot.cfg";

/// A file a new bank gets instead of the source bank's file of that name
/// (or beside them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replacement {
    /// Where its content comes from.
    pub from: ReplacedFrom,
    /// The SHA-256 of its content, which `verify` expects on the stick.
    pub sha256: String,
    /// The content, when esxstick wrote it (an edited boot.cfg).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The content.
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

impl Replacement {
    fn new(from: ReplacedFrom, bytes: Vec<u8>) -> Replacement {
        Replacement {
            from,
            sha256: digest::sha256(&bytes),
            text: None,
            bytes,
        }
    }

    /// The state.tgz of bank `bank` of a stick being updated, carried
    /// into its new bank as it is.
    pub fn stick_state(bank: u32, bytes: Vec<u8>) -> Replacement {
        Replacement::new(ReplacedFrom::Stick { bank }, bytes)
    }
}

/// Where a [`Replacement`] comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum ReplacedFrom {
    /// The state.tgz given with `--state`.
    StateFile {
        /// The file.
        path: PathBuf,
        /// What its esx.conf says.
        host: HostConfig,
    },
    /// The state.tgz of the configuration bundle given with `--state`.
    Bundle {
        /// The bundle.
        path: PathBuf,
        /// What the state.tgz's esx.conf says.
        host: HostConfig,
        /// Its Manifest.txt's `RELEASELEVEL=`.
        release_level: Option<String>,
    },
    /// The oem.tgz given with `--oem`.
    OemFile {
        /// The file.
        path: PathBuf,
        /// Files in it.
        files: usize,
    },
    /// The state.tgz of the active bank of the stick being updated.
    Stick {
        /// That bank.
        bank: u32,
    },
    /// The source bank's boot.cfg, edited.
    BootCfg {
        /// What changed.
        edits: Vec<BootCfgEdit>,
    },
}

impl fmt::Display for ReplacedFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = |h: &HostConfig| match (&h.host, &h.system_uuid) {
            (Some(name), _) => format!("host {name}"),
            (None, Some(uuid)) => format!("host with system UUID {uuid}"),
            (None, None) => "host without a name".to_string(),
        };
        match self {
            ReplacedFrom::StateFile { path, host: h } => {
                write!(f, "--state {} ({})", path.display(), host(h))
            }
            ReplacedFrom::Bundle {
                path,
                host: h,
                release_level,
            } => write!(
                f,
                "configuration bundle {} ({}, {})",
                path.display(),
                host(h),
                release_level.as_deref().unwrap_or("no release level")
            ),
            ReplacedFrom::OemFile { path, files } => {
                write!(f, "--oem {} ({files} files)", path.display())
            }
            ReplacedFrom::Stick { bank } => write!(f, "the stick's bank {bank}"),
            ReplacedFrom::BootCfg { edits } => {
                let edits: Vec<String> = edits.iter().map(ToString::to_string).collect();
                write!(f, "the source's, edited: {}", edits.join(", "))
            }
        }
    }
}

/// A change made to boot.cfg.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "edit")]
pub enum BootCfgEdit {
    /// A module added to `modules=`.
    AddModule {
        /// The module.
        name: String,
        /// The module it was put before; `null`: at the end.
        before: Option<String>,
    },
    /// `updated=` and `bootstate=` set (an update).
    Counters {
        /// The new `updated=`.
        updated: u64,
        /// The new `bootstate=`.
        bootstate: u32,
    },
}

impl fmt::Display for BootCfgEdit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootCfgEdit::AddModule { name, before } => match before {
                Some(before) => write!(f, "--- {name} added before {before}"),
                None => write!(f, "--- {name} added at the end"),
            },
            BootCfgEdit::Counters { updated, bootstate } => {
                write!(f, "updated={updated}, bootstate={bootstate}")
            }
        }
    }
}

/// What the user gives a new bank besides the source's files.
#[derive(Debug, Clone, Default)]
pub struct Given {
    /// `--state`: a state.tgz or a configuration bundle.
    pub state: Option<PathBuf>,
    /// `--oem`: an oem.tgz.
    pub oem: Option<PathBuf>,
    /// `--allow-build-mismatch`: take a bundle of another build.
    pub allow_build_mismatch: bool,
}

/// What an update changes besides what the user gives: the new bank's
/// `updated=` (and `bootstate=0`), and the state.tgz it carries over when
/// none is given.
#[derive(Debug, Clone)]
pub struct Upgrade {
    /// The state.tgz of the stick's active bank, if it has one.
    pub state: Option<Replacement>,
    /// The new bank's `updated=`.
    pub updated: u64,
}

/// The files a bank made from `inv`'s active bank (of `source`) gets
/// instead of the source bank's, by name: the state.tgz given (alone or
/// from a bundle of the image's build, unless `allow_build_mismatch`) or
/// carried over by `upgrade`, the oem.tgz given (ESXi 3.5/4.x only), and a
/// boot.cfg edited to name them (and to carry `upgrade`'s counters).
/// Every file given is read whole and checked first.
pub fn replacements(
    source: &Source,
    inv: &Inventory,
    given: &Given,
    upgrade: Option<Upgrade>,
) -> Result<Vec<(String, Replacement)>> {
    let bank = inv.active_bank.partition;
    let cfg = inv.boot_cfg().ok_or_else(|| Error::NoBootbank {
        reason: NoBankReason::NoBootCfg {
            bank,
            status: "no usable boot.cfg".into(),
        },
    })?;
    let mut files = Vec::new();
    let mut edits = Vec::new();
    let state = match (&given.state, &upgrade) {
        (Some(path), _) => Some(given_state(path, cfg, given.allow_build_mismatch)?),
        (None, Some(upgrade)) => upgrade.state.clone(),
        (None, None) => None,
    };
    if let Some(state) = state {
        files.push((STATE_TGZ.to_string(), state));
        edits.extend(add_module(cfg, STATE_TGZ, None));
    }
    if let Some(path) = &given.oem {
        if !oem::has_slot(cfg.build.as_deref(), inv.source.scheme) {
            let build = cfg
                .build
                .clone()
                .unwrap_or_else(|| "5 or later (GPT)".into());
            return Err(Error::OemNotSupported { build });
        }
        files.push((oem::OEM_TGZ.to_string(), given_oem(path)?));
        edits.extend(add_module(cfg, oem::OEM_TGZ, Some(oem::BEFORE)));
    }
    if let Some(upgrade) = upgrade {
        edits.push(BootCfgEdit::Counters {
            updated: upgrade.updated,
            bootstate: 0,
        });
    }
    if !edits.is_empty() {
        let text = edited_boot_cfg(source, inv, &edits)?;
        let mut edited = Replacement::new(ReplacedFrom::BootCfg { edits }, text.clone().into());
        edited.text = Some(text);
        files.push((BOOT_CFG.to_string(), edited));
    }
    Ok(files)
}

/// The edit that adds `name` to boot.cfg's modules (before `before`, when
/// that is listed), unless it is listed already.
fn add_module(cfg: &BootCfg, name: &str, before: Option<&str>) -> Option<BootCfgEdit> {
    let listed = |n: &str| cfg.modules.iter().any(|m| m.eq_ignore_ascii_case(n));
    (!listed(name)).then(|| BootCfgEdit::AddModule {
        name: name.to_string(),
        before: before.filter(|b| listed(b)).map(str::to_string),
    })
}

/// The active bank's boot.cfg with `edits` made.
fn edited_boot_cfg(source: &Source, inv: &Inventory, edits: &[BootCfgEdit]) -> Result<String> {
    let bytes = bank_file(source, inv, BOOT_CFG, bootcfg::MAX_BYTES)?.unwrap_or_default();
    // The inventory parsed it, so it is text.
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    for edit in edits {
        text = match edit {
            BootCfgEdit::AddModule { name, before } => {
                bootcfg::add_module(&text, name, before.as_deref()).unwrap_or(text)
            }
            BootCfgEdit::Counters { updated, bootstate } => {
                bootcfg::set_counters(&text, *updated, *bootstate)
            }
        };
    }
    Ok(text)
}

/// The file `name` of `inv`'s active bank, read whole when at most `limit`
/// bytes; `None` when the bank has no such file.
pub fn bank_file(
    source: &Source,
    inv: &Inventory,
    name: &str,
    limit: u64,
) -> Result<Option<Vec<u8>>> {
    let volume = Volume::open(source, &inv.active_partition()?.partition)?;
    match volume.find(name)? {
        Some(file) => volume.read_small(&file, limit).map(Some),
        None => Ok(None),
    }
}

/// The state.tgz of the file given with `--state`: the file itself, or
/// the state.tgz of the configuration bundle it is, from the build of
/// `cfg` unless `allow_mismatch`; checked.
fn given_state(path: &Path, cfg: &BootCfg, allow_mismatch: bool) -> Result<Replacement> {
    let origin = ConfigOrigin::StateFile(path.to_path_buf());
    let (bytes, name) = read_given(path, &origin)?;
    let err = |problem| Error::Config {
        origin: origin.clone(),
        problem,
    };
    let path = path.to_path_buf();
    match bundle::read(&bytes, &name).map_err(err)? {
        ConfigFile::State => {
            let host = state::read(&bytes, &name).map_err(err)?;
            Ok(Replacement::new(
                ReplacedFrom::StateFile { path, host },
                bytes,
            ))
        }
        ConfigFile::Bundle { manifest, state } => {
            let host = state::read(&state, &format!("{STATE_TGZ} in {name}")).map_err(err)?;
            let level = manifest.release_level;
            let same = match (level.as_deref(), cfg.build.as_deref()) {
                (Some(level), Some(build)) => bundle::same_build(level, build),
                _ => false,
            };
            if !same && !allow_mismatch {
                return Err(Error::BuildMismatch {
                    path,
                    bundle: level.unwrap_or_else(|| "a bundle without RELEASELEVEL".into()),
                    image: cfg.build.clone().unwrap_or_else(|| "unknown".into()),
                });
            }
            let from = ReplacedFrom::Bundle {
                path,
                host,
                release_level: level,
            };
            Ok(Replacement::new(from, state))
        }
    }
}

/// The oem.tgz given with `--oem`, checked.
fn given_oem(path: &Path) -> Result<Replacement> {
    let origin = ConfigOrigin::OemFile(path.to_path_buf());
    let (bytes, name) = read_given(path, &origin)?;
    let files = oem::check(&bytes, &name).map_err(|problem| Error::Config { origin, problem })?;
    let from = ReplacedFrom::OemFile {
        path: path.to_path_buf(),
        files,
    };
    Ok(Replacement::new(from, bytes))
}

/// The whole file at `path` (at most [`MAX_FILE_BYTES`]) and its name.
fn read_given(path: &Path, origin: &ConfigOrigin) -> Result<(Vec<u8>, String)> {
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let err = |problem| Error::Config {
        origin: origin.clone(),
        problem,
    };
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|source| err(ConfigProblem::Read { source }))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        let bytes = std::fs::metadata(path).map_or(bytes.len() as u64, |m| m.len());
        return Err(err(ConfigProblem::TooLarge {
            archive: name,
            bytes,
            limit: MAX_FILE_BYTES,
        }));
    }
    Ok((bytes, name))
}
