//! `backup`: the active bank's configuration saved as a configuration
//! bundle in VMware's format, `configBundle-<host>-<UTC time>.tgz`, in a
//! directory that keeps a host's newest N.
//!
//! A bundle is written under a temporary name in the directory, synced,
//! read back and checked, then given its name (never over another file)
//! and the directory synced: an interrupted backup never leaves a file
//! with a bundle's name that is not a complete bundle. When the host's
//! newest bundle already holds the same state.tgz, nothing is written.
//! Retention deletes only the host's own bundles as esxstick names them.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::digest;
use crate::error::{ConfigOrigin, ConfigProblem, Error, Result};
use crate::esxi::config::bundle::{self, ConfigFile, Manifest};
use crate::esxi::config::state::{self, HostConfig, STATE_TGZ};
use crate::esxi::config::{bank_file, MAX_FILE_BYTES};
use crate::esxi::inventory::Inventory;
use crate::image::source::Source;

/// Version of the JSON report `backup --json` prints.
pub const SCHEMA: &str = "esxstick.backup/1";
/// How every bundle's file name begins (VMware's own prefix).
const PREFIX: &str = "configBundle-";
/// How every bundle's file name ends.
const SUFFIX: &str = ".tgz";
/// The UTC time in a name: `20240131T235959Z`.
const STAMP_FORMAT: &str = "%Y%m%dT%H%M%SZ";
/// Most names tried for one new bundle (others taking them meanwhile).
const MAX_SAME_SECOND: u32 = 1000;

/// What `backup` did.
#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// The source's path.
    pub source: String,
    /// The bank backed up.
    pub bank: u32,
    /// What its state.tgz says of the host.
    pub host: HostConfig,
    /// The name the host's bundles carry: its host name, else
    /// `uuid-<system UUID>`, else `bank-<the bank's VMware FAT UUID>`.
    pub name: String,
    /// The bundle's `RELEASELEVEL=`.
    pub release_level: Option<String>,
    /// The host's newest bundle: written now, or already holding the same
    /// state.tgz.
    pub bundle: PathBuf,
    /// Whether it was written now.
    pub written: bool,
    /// Its size in bytes.
    pub bytes: u64,
    /// The SHA-256 of the state.tgz (the bank's, byte for byte).
    pub state_sha256: String,
    /// The host's bundles left in the directory, newest first.
    pub kept: Vec<String>,
    /// The host's bundles deleted by `--keep`.
    pub deleted: Vec<String>,
}

/// Backs up the configuration of `inv`'s active bank into `dir` (created
/// if missing), keeping the host's newest `keep` bundles when given. A
/// bank without a state.tgz, or with one that is damaged or encrypted, is
/// refused.
pub fn backup(
    source: &Source,
    inv: &Inventory,
    dir: &Path,
    keep: Option<usize>,
) -> Result<BackupReport> {
    let bank = inv.active_bank.partition;
    let state = bank_file(source, inv, STATE_TGZ, MAX_FILE_BYTES)?
        .ok_or(Error::NoConfiguration { bank })?;
    let host = state::read(&state, STATE_TGZ).map_err(|problem| Error::Config {
        origin: ConfigOrigin::Bank(bank),
        problem,
    })?;
    let name = host_name(&host, inv);
    let cfg = inv.boot_cfg();
    let manifest = Manifest {
        release_level: cfg
            .and_then(|c| c.build.as_deref())
            .and_then(bundle::release_level),
        uuid: host.system_uuid.clone(),
        kernel_opts: cfg.map(|c| c.kernelopt.clone()).unwrap_or_default(),
        user_opts: String::new(),
    };
    fs::create_dir_all(dir).map_err(write_err(dir))?;
    let newest = own_bundles(dir, &name)?.into_iter().next();
    let same = newest
        .as_ref()
        .filter(|b| holds_state(&dir.join(&b.file), &state))
        .map(|b| b.file.clone());
    let written = same.is_none();
    let file = match same {
        Some(file) => file,
        None => write_bundle(dir, &name, newest.as_ref(), &manifest, &state)?,
    };
    let path = dir.join(&file);
    let bytes = fs::metadata(&path).map_err(write_err(&path))?.len();
    let (kept, deleted) = prune(dir, &name, &file, keep)?;
    Ok(BackupReport {
        schema: SCHEMA,
        source: source.path().display().to_string(),
        bank,
        host,
        name,
        release_level: manifest.release_level,
        bundle: path,
        written,
        bytes,
        state_sha256: digest::sha256(&state),
        kept,
        deleted,
    })
}

/// The name in the host's bundle names: its host name, else its system
/// UUID, else its bank's VMware FAT UUID, made safe for a file name.
fn host_name(host: &HostConfig, inv: &Inventory) -> String {
    let bank_uuid = inv
        .bank(inv.active_bank.partition)
        .and_then(|b| b.uuid)
        .map(|u| u.to_string());
    let name = match (&host.host, &host.system_uuid, bank_uuid) {
        (Some(name), _, _) => name.clone(),
        (None, Some(uuid), _) => format!("uuid-{uuid}"),
        (None, None, Some(uuid)) => format!("bank-{uuid}"),
        (None, None, None) => "unnamed-host".to_string(),
    };
    name.chars()
        .take(64)
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' => c,
            _ => '_',
        })
        .collect()
}

/// One of a host's bundles in the directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Own {
    stamp: String,
    seq: u32,
    file: String,
}

/// The bundle file name esxstick gives host `name`'s `seq`-th bundle of
/// the second `stamp`.
fn bundle_name(name: &str, stamp: &str, seq: u32) -> String {
    match seq {
        1 => format!("{PREFIX}{name}-{stamp}{SUFFIX}"),
        n => format!("{PREFIX}{name}-{stamp}-{n}{SUFFIX}"),
    }
}

/// The (host name, UTC stamp, sequence) of a file name esxstick gives
/// bundles; `None` for every other name.
fn parse_name(file: &str) -> Option<(&str, &str, u32)> {
    let stem = file.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let (rest, seq) = match stem.rsplit_once('-') {
        Some((rest, n)) if !n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit()) => {
            (rest, n.parse().ok().filter(|&n| n >= 2)?)
        }
        _ => (stem, 1),
    };
    let (name, stamp) = rest.rsplit_once('-')?;
    let shape = stamp.len() == 16
        && stamp.bytes().enumerate().all(|(i, b)| match i {
            8 => b == b'T',
            15 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    (shape && !name.is_empty()).then_some((name, stamp, seq))
}

/// Host `name`'s bundles in `dir` (regular files named as esxstick names
/// them), newest first.
fn own_bundles(dir: &Path, name: &str) -> Result<Vec<Own>> {
    let mut own = Vec::new();
    for entry in fs::read_dir(dir).map_err(write_err(dir))? {
        let entry = entry.map_err(write_err(dir))?;
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some((host, stamp, seq)) = parse_name(&file) else {
            continue;
        };
        if host == name && entry.file_type().is_ok_and(|t| t.is_file()) {
            own.push(Own {
                stamp: stamp.to_string(),
                seq,
                file,
            });
        }
    }
    own.sort_by(|a, b| b.cmp(a));
    Ok(own)
}

/// Whether the bundle at `path` holds exactly `state`.
fn holds_state(path: &Path, state: &[u8]) -> bool {
    let mut bytes = Vec::new();
    let read = File::open(path).and_then(|f| f.take(MAX_FILE_BYTES).read_to_end(&mut bytes));
    read.is_ok()
        && matches!(
            bundle::read(&bytes, PREFIX),
            Ok(ConfigFile::Bundle { state: held, .. }) if held == state
        )
}

/// The (stamp, first sequence) of a new bundle: now, after `newest` (the
/// host's newest bundle) even when that is of the same second or, the
/// clock having gone back, later — so that names always sort in the
/// order the bundles were made, which retention relies on.
fn next_name(now: &str, newest: Option<&Own>) -> (String, u32) {
    match newest {
        Some(b) if b.stamp.as_str() >= now => (b.stamp.clone(), b.seq + 1),
        _ => (now.to_string(), 1),
    }
}

/// Writes the bundle of `manifest` and `state` into `dir` under a new
/// name for host `name`, sorting after `newest`: a temporary file,
/// synced, read back and checked, then linked to its name (never over
/// another file); the directory is synced. Returns the name.
fn write_bundle(
    dir: &Path,
    name: &str,
    newest: Option<&Own>,
    manifest: &Manifest,
    state: &[u8],
) -> Result<String> {
    let now = chrono::Utc::now();
    let (stamp, mut seq) = next_name(&now.format(STAMP_FORMAT).to_string(), newest);
    let mtime = u64::try_from(now.timestamp()).unwrap_or(0);
    let bytes = bundle::make(manifest, state, mtime).map_err(write_err(dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{PREFIX}{name}-"))
        .suffix(".partial")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(dir)
        .map_err(write_err(dir))?;
    tmp.write_all(&bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(write_err(tmp.path()))?;
    check_written(tmp.path(), manifest, state)?;
    let last = seq.saturating_add(MAX_SAME_SECOND);
    loop {
        let file = bundle_name(name, &stamp, seq);
        let path = dir.join(&file);
        match tmp.persist_noclobber(&path) {
            Ok(_) => {
                sync_dir(dir)?;
                return Ok(file);
            }
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists && seq < last => {
                (tmp, seq) = (e.file, seq + 1);
            }
            Err(e) => return Err(write_err(&path)(e.error)),
        }
    }
}

/// Reads the bundle just written at `path` back and checks that it is
/// sound (gzip CRC-32 and length, tar) and holds `manifest` and `state`.
fn check_written(path: &Path, manifest: &Manifest, state: &[u8]) -> Result<()> {
    let origin = ConfigOrigin::Backup(path.to_path_buf());
    let bytes = fs::read(path).map_err(|source| Error::Config {
        origin: origin.clone(),
        problem: ConfigProblem::Read { source },
    })?;
    let read = bundle::read(&bytes, PREFIX).map_err(|problem| Error::Config {
        origin: origin.clone(),
        problem,
    })?;
    match read {
        ConfigFile::Bundle {
            manifest: m,
            state: s,
        } if m == *manifest && s == state => Ok(()),
        _ => Err(Error::Config {
            origin,
            problem: ConfigProblem::ReadsBackOther,
        }),
    }
}

/// Deletes host `name`'s bundles past the newest `keep` (never `current`,
/// the one just written or found), then syncs the directory. Returns the
/// bundles kept (newest first) and those deleted.
fn prune(
    dir: &Path,
    name: &str,
    current: &str,
    keep: Option<usize>,
) -> Result<(Vec<String>, Vec<String>)> {
    let own = own_bundles(dir, name)?;
    let Some(keep) = keep else {
        return Ok((own.into_iter().map(|b| b.file).collect(), Vec::new()));
    };
    let (mut kept, mut deleted) = (Vec::new(), Vec::new());
    for b in own {
        if kept.len() < keep || b.file == current {
            kept.push(b.file);
            continue;
        }
        let path = dir.join(&b.file);
        fs::remove_file(&path).map_err(write_err(&path))?;
        deleted.push(b.file);
    }
    if !deleted.is_empty() {
        sync_dir(dir)?;
    }
    Ok((kept, deleted))
}

/// fsync of a directory, so that names made or removed in it last.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(write_err(dir))
}

fn write_err(path: &Path) -> impl Fn(io::Error) -> Error + '_ {
    move |source| Error::Write {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_name_sorts_after_the_newest_bundle() {
        let own = |stamp: &str, seq| Own {
            stamp: stamp.into(),
            seq,
            file: String::new(),
        };
        let (a, b) = ("20240101T000000Z", "20240101T000001Z");
        assert_eq!(next_name(b, None), (b.into(), 1));
        assert_eq!(next_name(b, Some(&own(a, 9))), (b.into(), 1));
        // The same second, even after the first of it was deleted.
        assert_eq!(next_name(a, Some(&own(a, 8))), (a.into(), 9));
        // The clock went back: still after the newest.
        assert_eq!(next_name(a, Some(&own(b, 1))), (b.into(), 2));
        let next = own(a, 9);
        assert!(next > own(a, 8) && own(b, 1) > next);
    }

    #[test]
    fn names_esxstick_gives_are_the_only_ones_it_reads_as_its_own() {
        let stamp = "20240131T235959Z";
        for (name, seq) in [
            ("esx01.lab", 1),
            ("esx-02", 1),
            ("esx-02", 2),
            ("esx-3", 12),
        ] {
            let file = bundle_name(name, stamp, seq);
            assert_eq!(parse_name(&file), Some((name, stamp, seq)), "{file}");
        }
        for foreign in [
            "configBundle-esx01.tgz", // VMware's own name
            "configBundle-esx01-20240131T235959Z.tgz.partial",
            "configBundle-esx01-2024013T235959Z.tgz",
            "configBundle-esx01-20240131T235959Z-1.tgz",
            "configBundle-esx01-20240131T235959Z-02.tgz",
            "configBundle--20240131T235959Z.tgz",
            "notes-esx01-20240131T235959Z.tgz",
        ] {
            assert_eq!(parse_name(foreign), None, "{foreign}");
        }
    }
}
