//! Targets: the block device or image file a stick is written to, opened
//! so that the wrong disk is never written — whole disks only, nothing
//! mounted, exclusive access, never the source — and described so that the
//! user can confirm.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Refusal, Result, StickState, TargetChange};
use crate::image::source::{Source, SECTOR};
use crate::ioctl;
use crate::plan::Plan;
use crate::size;
use crate::stick::contents::Contents;
use crate::stick::devices;

/// Where sysfs is mounted.
const SYSFS: &str = "/sys";
/// Major number of Linux loop devices: virtual disks backed by a file.
const LOOP_MAJOR: u32 = 7;

/// The size in bytes of a block device or image file.
pub fn size(path: &Path) -> Result<u64> {
    let kind = fs::metadata(path).map_err(open_error(path))?.file_type();
    if !kind.is_file() && !kind.is_block_device() {
        return Err(open_error(path)(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file or block device",
        )));
    }
    let file = File::open(path).map_err(open_error(path))?;
    file_size(&file).map_err(open_error(path))
}

fn file_size(file: &File) -> io::Result<u64> {
    if file.metadata()?.file_type().is_block_device() {
        ioctl::device_size(file)
    } else {
        Ok(file.metadata()?.len())
    }
}

/// What kind of target this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    /// An image file that existed before.
    ImageFile,
    /// An image file esxstick created (no confirmation needed).
    NewImageFile,
    /// A whole-disk block device.
    BlockDevice,
}

/// A target opened for writing, checked for safety.
#[derive(Debug)]
pub struct Target {
    path: PathBuf,
    file: File,
    kind: TargetKind,
    bytes: u64,
    identity: (u64, u64),
    description: String,
    holds: Contents,
}

impl Target {
    /// Opens `path` for writing `plan`, checking everything that would
    /// make writing it wrong or impossible before anything is written.
    ///
    /// A missing path becomes a new sparse image file of the plan's size
    /// (when its file system has room for what the plan writes). An
    /// existing image file is extended to the plan's size when shorter
    /// (at [`Target::prepare`], after confirmation); it must be writable,
    /// not locked by another program (esxstick holds an exclusive `flock`
    /// on it while writing), and have room on its file system. A block
    /// device must be a whole disk, writable, unmounted, at least the
    /// plan's size, and removable unless `force` (loop devices count as
    /// removable). Neither may be the source through any path: the same
    /// file or device, a loop device over the source file (or the file
    /// behind a source loop device), the disk holding the source's file
    /// system, or a file on the source disk.
    pub fn open(path: &Path, plan: &Plan, source: &Source, force: bool) -> Result<Target> {
        let plan_bytes = plan.target_sectors * SECTOR;
        Target::open_checked(path, plan_bytes, plan.write_bytes, Some(source), force)
    }

    /// [`Target::open`] for a plan of `plan_bytes` (the target size it
    /// was made for) that writes `write_bytes`, read from `source` (an
    /// installer ISO's stick, whose plan is not a [`Plan`]).
    pub fn open_sized(
        path: &Path,
        plan_bytes: u64,
        write_bytes: u64,
        source: &Source,
        force: bool,
    ) -> Result<Target> {
        Target::open_checked(path, plan_bytes, write_bytes, Some(source), force)
    }

    /// Opens the stick at `path`, read as `stick`, to be updated in place:
    /// the checks of [`Target::open`]; it must not be `source` when the
    /// new bank comes from another source (it is its own source when
    /// `update` takes the stick's own active bank, which it does not
    /// write).
    pub fn open_in_place(
        path: &Path,
        stick: &Source,
        source: Option<&Source>,
        force: bool,
    ) -> Result<Target> {
        Target::open_checked(path, stick.len(), 0, source, force)
    }

    /// Opens the existing block device or image file at `path` to be
    /// wiped at its size: the checks of [`Target::open`] (never the
    /// source: there is none). A missing path is an [`Error::Open`]: a
    /// wipe creates nothing.
    pub fn open_existing(path: &Path, force: bool) -> Result<Target> {
        fs::metadata(path).map_err(open_error(path))?;
        Target::open_checked(path, 0, 0, None, force)
    }

    /// [`Target::open`] for a plan of `plan_bytes` that writes
    /// `write_bytes`; without a `source`, the target may be the source.
    fn open_checked(
        path: &Path,
        plan_bytes: u64,
        write_bytes: u64,
        source: Option<&Source>,
        force: bool,
    ) -> Result<Target> {
        let meta = match fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Target::create(path, plan_bytes, write_bytes)
            }
            Err(e) => return Err(open_error(path)(e)),
        };
        if let Some(refusal) = source.and_then(|s| source_refusal(&meta, s)) {
            return Err(refuse(path, refusal));
        }
        let ft = meta.file_type();
        if ft.is_file() {
            Target::open_file(path, &meta, plan_bytes, write_bytes)
        } else if ft.is_block_device() {
            Target::open_device(path, &meta, plan_bytes, force)
        } else {
            Err(refuse(path, Refusal::NotFileOrDevice))
        }
    }

    /// A new sparse image file of `plan_bytes` at `path`, where
    /// `write_bytes` will be written.
    fn create(path: &Path, plan_bytes: u64, write_bytes: u64) -> Result<Target> {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        check_room(path, dir, write_bytes)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(write_open_error(path))?;
        lock(path, &file)?;
        file.set_len(plan_bytes).map_err(open_error(path))?;
        let description = format!(
            "{} (new image file, {})",
            path.display(),
            size::human(plan_bytes)
        );
        Target::image_file(
            path,
            file,
            TargetKind::NewImageFile,
            plan_bytes,
            description,
        )
    }

    /// The existing image file at `path` (described by `meta`).
    fn open_file(
        path: &Path,
        meta: &Metadata,
        plan_bytes: u64,
        write_bytes: u64,
    ) -> Result<Target> {
        if meta.permissions().mode() & 0o222 == 0 {
            return Err(refuse(path, Refusal::ReadOnly { device: false }));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(write_open_error(path))?;
        lock(path, &file)?;
        // Blocks the file has already are overwritten in place.
        let allocated = meta.blocks().saturating_mul(512);
        check_room(path, path, write_bytes.saturating_sub(allocated))?;
        let description = format!(
            "{} (existing image file, {} bytes; its contents will be overwritten)",
            path.display(),
            size::group(meta.len())
        );
        let bytes = meta.len().max(plan_bytes);
        Target::image_file(path, file, TargetKind::ImageFile, bytes, description)
    }

    /// An image file target, known by its device and inode numbers.
    fn image_file(
        path: &Path,
        file: File,
        kind: TargetKind,
        bytes: u64,
        description: String,
    ) -> Result<Target> {
        let meta = file.metadata().map_err(open_error(path))?;
        let holds = match kind {
            TargetKind::NewImageFile => Contents::Empty,
            _ => Contents::of(path),
        };
        Ok(Target {
            path: path.to_path_buf(),
            identity: (meta.dev(), meta.ino()),
            description,
            file,
            kind,
            bytes,
            holds,
        })
    }

    /// The block device at `path` (described by `meta`), opened
    /// exclusively once it passed every check of [`device_refusal`].
    fn open_device(path: &Path, meta: &Metadata, plan_bytes: u64, force: bool) -> Result<Target> {
        let rdev = meta.rdev();
        let sys = sysfs_dir(rdev);
        if let Some(refusal) = device_refusal(&sys, rdev, force) {
            return Err(refuse(path, refusal));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_EXCL)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(nix::libc::EBUSY) => refuse(path, Refusal::InUse),
                _ => write_open_error(path)(e),
            })?;
        if ioctl::read_only(&file).map_err(open_error(path))? {
            return Err(refuse(path, Refusal::ReadOnly { device: true }));
        }
        let bytes = ioctl::device_size(&file).map_err(open_error(path))?;
        if bytes < plan_bytes {
            return Err(refuse(
                path,
                Refusal::TooSmall {
                    has: bytes,
                    needs: plan_bytes,
                },
            ));
        }
        Ok(Target {
            path: path.to_path_buf(),
            identity: (rdev, 0),
            description: describe_device(path, &sys, bytes),
            holds: Contents::of(path),
            file,
            kind: TargetKind::BlockDevice,
            bytes,
        })
    }

    /// The path given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Image file, new image file, or block device.
    pub fn kind(&self) -> TargetKind {
        self.kind
    }

    /// Size in bytes (after any extension).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Vendor, model, serial and size of a device; path and size of a file.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Whether writing needs the user's confirmation: everything but a
    /// file esxstick created itself.
    pub fn needs_confirmation(&self) -> bool {
        self.kind != TargetKind::NewImageFile
    }

    /// What the target held when it was opened.
    pub fn holds(&self) -> &Contents {
        &self.holds
    }

    /// `e`, after deleting the image file esxstick created for this write
    /// when `e` is an interruption (the state it names then says so).
    pub fn after_interruption(&self, e: Error) -> Error {
        match e {
            Error::Interrupted { path, phase, .. }
                if self.kind == TargetKind::NewImageFile && fs::remove_file(&self.path).is_ok() =>
            {
                Error::Interrupted {
                    path,
                    phase,
                    state: StickState::Removed,
                }
            }
            e => e,
        }
    }

    /// The open file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Checks, right before writing, that the path still names the device
    /// or file that was opened and that its size is unchanged; extends a
    /// short image file to the planned size.
    pub fn prepare(&mut self, plan_bytes: u64) -> Result<()> {
        let changed = |change| refuse(&self.path, Refusal::Changed { change });
        let now = fs::metadata(&self.path).map_err(|_| changed(TargetChange::Disappeared))?;
        let identity = if self.kind == TargetKind::BlockDevice {
            (now.rdev(), 0)
        } else {
            (now.dev(), now.ino())
        };
        if identity != self.identity {
            return Err(changed(TargetChange::Replaced));
        }
        if self.kind == TargetKind::BlockDevice {
            let bytes = ioctl::device_size(&self.file)
                .map_err(|_| changed(TargetChange::StoppedAnswering))?;
            if bytes != self.bytes {
                return Err(changed(TargetChange::Resized));
            }
        } else {
            let len = (&self.file)
                .seek(SeekFrom::End(0))
                .map_err(|_| changed(TargetChange::StoppedAnswering))?;
            if len < plan_bytes {
                self.file
                    .set_len(plan_bytes)
                    .map_err(|source| Error::Write {
                        path: self.path.clone(),
                        source,
                    })?;
            }
        }
        Ok(())
    }
}

/// Refuses a partition as the stick `verify` reads, as `write` refuses
/// one (a partition starts with a FAT boot sector, which would read as a
/// disk without a partition table).
pub fn check_whole_disk(path: &Path) -> Result<()> {
    match fs::metadata(path) {
        Ok(meta)
            if meta.file_type().is_block_device()
                && sysfs_dir(meta.rdev()).join("partition").exists() =>
        {
            Err(Error::VerifyTarget {
                path: path.to_path_buf(),
                refusal: Refusal::Partition,
            })
        }
        _ => Ok(()),
    }
}

/// An [`Error::Target`] for `path`.
fn refuse(path: &Path, refusal: Refusal) -> Error {
    Error::Target {
        path: path.to_path_buf(),
        refusal,
    }
}

/// Makes an I/O error on `path` an [`Error::Open`].
fn open_error(path: &Path) -> impl Fn(io::Error) -> Error + '_ {
    move |source| Error::Open {
        path: path.to_path_buf(),
        source,
    }
}

/// Why the block device described by sysfs directory `sys` must not be
/// written, if it must not: a partition, a mounted disk, or (without
/// `force`) a fixed disk. Loop devices count as removable: they are files
/// in disguise.
fn device_refusal(sys: &Path, rdev: u64, force: bool) -> Option<Refusal> {
    if sys.join("partition").exists() {
        return Some(Refusal::Partition);
    }
    if let Some((device, at)) = mounted(sys) {
        return Some(Refusal::Mounted { device, at });
    }
    let is_loop = nix::sys::stat::major(rdev) == u64::from(LOOP_MAJOR);
    let removable = read_sys(&sys.join("removable")).as_deref() == Some("1");
    if !removable && !is_loop && !force {
        return Some(Refusal::NotRemovable);
    }
    None
}

/// Why the target described by `target` is the source, if it is, through
/// any path: the same device, the same file (a symlink or hard link
/// included), a loop device over the source file or the file behind a
/// source loop device (or two loop devices over one file), the disk whose
/// file system holds the source file, or a file on the source disk.
fn source_refusal(target: &Metadata, source: &Source) -> Option<Refusal> {
    let source_meta = fs::metadata(source.path()).ok()?;
    let (t_dev, s_dev) = (block_dev(target), block_dev(&source_meta));
    if t_dev.is_some() && t_dev == s_dev {
        return Some(Refusal::IsSourceDevice);
    }
    match (underlying(target), underlying(&source_meta)) {
        (Some(t), Some(s)) if t.id == s.id => {
            return Some(match (t.loop_backing, s.loop_backing) {
                (None, None) => Refusal::IsSourceImage,
                (Some(backing), _) => Refusal::LoopOverSource { backing },
                (None, Some(_)) => Refusal::BehindSourceLoop {
                    device: source.path().to_path_buf(),
                },
            })
        }
        _ => {}
    }
    if let Some(disk) = t_dev {
        if source_meta.file_type().is_file() && whole_disk(source_meta.dev()) == disk {
            return Some(Refusal::HoldsSource);
        }
    }
    if let Some(disk) = s_dev {
        if target.file_type().is_file() && whole_disk(target.dev()) == disk {
            return Some(Refusal::OnSource);
        }
    }
    None
}

/// A block device's whole-disk device number.
fn block_dev(meta: &Metadata) -> Option<u64> {
    meta.file_type()
        .is_block_device()
        .then(|| whole_disk(meta.rdev()))
}

/// The file whose bytes a path stands for: a regular file itself, or
/// the backing file of a loop device (with its path).
struct Underlying {
    /// Device and inode numbers of the file.
    id: (u64, u64),
    /// The backing file's path, when reached through a loop device.
    loop_backing: Option<PathBuf>,
}

fn underlying(meta: &Metadata) -> Option<Underlying> {
    if meta.file_type().is_file() {
        return Some(Underlying {
            id: (meta.dev(), meta.ino()),
            loop_backing: None,
        });
    }
    let backing = read_sys(&sysfs_dir(meta.rdev()).join("loop/backing_file"))?;
    let b = fs::metadata(&backing).ok()?;
    Some(Underlying {
        id: (b.dev(), b.ino()),
        loop_backing: Some(backing.into()),
    })
}

/// The whole disk that device `dev` is (or is a partition of): the
/// device number sysfs gives the partition's parent.
fn whole_disk(dev: u64) -> u64 {
    let sys = sysfs_dir(dev);
    if !sys.join("partition").exists() {
        return dev;
    }
    fs::canonicalize(&sys)
        .ok()
        .and_then(|p| read_sys(&p.parent()?.join("dev")))
        .and_then(|text| {
            let (major, minor) = text.split_once(':')?;
            Some(nix::sys::stat::makedev(
                major.parse().ok()?,
                minor.parse().ok()?,
            ))
        })
        .unwrap_or(dev)
}

/// Takes an exclusive `flock` on the target file, so that two writes
/// never share one image file; refused when another process holds one.
fn lock(path: &Path, file: &File) -> Result<()> {
    file.try_lock().map_err(|e| match e {
        fs::TryLockError::WouldBlock => refuse(path, Refusal::Locked),
        fs::TryLockError::Error(e) => open_error(path)(e),
    })
}

/// Refuses `path` when the file system holding `on` has less free space
/// than `needs` bytes.
fn check_room(path: &Path, on: &Path, needs: u64) -> Result<()> {
    let Ok(stat) = nix::sys::statvfs::statvfs(on) else {
        return Ok(());
    };
    let free = stat.blocks_available().saturating_mul(stat.fragment_size());
    if free < needs {
        return Err(refuse(path, Refusal::NoRoom { free, needs }));
    }
    Ok(())
}

/// An error opening `path` for writing: a read-only file or file system
/// is a refusal, anything else an [`Error::Open`].
fn write_open_error(path: &Path) -> impl Fn(io::Error) -> Error + '_ {
    move |e| match e.raw_os_error() {
        Some(nix::libc::EROFS | nix::libc::EACCES | nix::libc::EPERM) => {
            refuse(path, Refusal::ReadOnly { device: false })
        }
        _ => open_error(path)(e),
    }
}

/// /sys/dev/block/MAJOR:MINOR for a device number.
fn sysfs_dir(rdev: u64) -> PathBuf {
    let (major, minor) = (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev));
    Path::new(SYSFS).join(format!("dev/block/{major}:{minor}"))
}

fn read_sys(path: &Path) -> Option<String> {
    fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Which of the device (sysfs directory `sys`) and its partitions is
/// mounted where, if any is: the first mount [`devices::mounts_of`]
/// finds in /proc/self/mountinfo.
fn mounted(sys: &Path) -> Option<(String, String)> {
    let name = fs::canonicalize(sys)
        .ok()?
        .file_name()?
        .to_string_lossy()
        .into_owned();
    devices::mounts_of(sys, &name, Path::new(devices::MOUNTINFO))
        .into_iter()
        .next()
        .map(|m| (m.device, m.at))
}

/// What the confirmation shows of the block device at `path` (sysfs
/// directory `sys`): vendor, model and serial as `devices` finds them
/// (for USB storage, the USB device's serial), a loop device's file, and
/// the size.
fn describe_device(path: &Path, sys: &Path, bytes: u64) -> String {
    let id = fs::canonicalize(sys)
        .map(|sys| devices::identify(&sys, Path::new(SYSFS)))
        .unwrap_or_default();
    let mut parts: Vec<String> = [id.vendor, id.model].into_iter().flatten().collect();
    if let Some(serial) = id.serial {
        parts.push(format!("serial {serial}"));
    }
    if let Some(backing) = read_sys(&sys.join("loop/backing_file")) {
        parts.push(format!("loop device over {backing}"));
    }
    if parts.is_empty() {
        parts.push("unknown model".into());
    }
    format!(
        "{}: {}, {} bytes ({})",
        path.display(),
        parts.join(", "),
        size::group(bytes),
        size::human(bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake /sys/dev/block/M:m directory holding `files` (under
    /// target/, not /tmp), removed when dropped.
    fn fake_sysfs(files: &[(&str, &str)]) -> tempfile::TempDir {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/unit-tmp");
        fs::create_dir_all(&base).unwrap();
        let dir = tempfile::Builder::new()
            .prefix("esxstick-sysfs-")
            .tempdir_in(base)
            .unwrap();
        for (file, text) in files {
            let path = dir.path().join(file);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        dir
    }

    // Device numbers no real mount uses: 250:77 (a disk), 7:77 (a loop).
    const DISK: u64 = (250 << 8) | 77;
    const LOOP: u64 = (7 << 8) | 77;

    #[test]
    fn partitions_are_refused_even_with_force() {
        let sys = fake_sysfs(&[("partition", "1"), ("removable", "1")]);
        let why = device_refusal(sys.path(), DISK, true).unwrap().to_string();
        assert!(why.contains("is a partition"), "{why}");
    }

    #[test]
    fn fixed_disks_need_force_removable_and_loop_do_not() {
        let fixed = fake_sysfs(&[("removable", "0")]);
        let why = device_refusal(fixed.path(), DISK, false)
            .unwrap()
            .to_string();
        assert!(why.contains("not a removable disk"), "{why}");
        assert_eq!(device_refusal(fixed.path(), DISK, true), None);
        let stick = fake_sysfs(&[("removable", "1")]);
        assert_eq!(device_refusal(stick.path(), DISK, false), None);
        let lo = fake_sysfs(&[("removable", "0")]);
        assert_eq!(device_refusal(lo.path(), LOOP, false), None);
    }
}
