//! Targets: the block device or image file a stick is written to, opened
//! so that the wrong disk is never written — whole disks only, nothing
//! mounted, exclusive access, never the source — and described so that the
//! user can confirm.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Refusal, Result, TargetChange};
use crate::image::source::{Source, SourceKind};
use crate::ioctl;
use crate::size;

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
}

impl Target {
    /// Opens `path` for writing a stick of `plan_bytes`.
    ///
    /// A missing path becomes a new sparse image file of `plan_bytes`. An
    /// existing image file is extended to `plan_bytes` when shorter (at
    /// [`Target::prepare`], after confirmation). A block device must be a
    /// whole disk, unmounted, not the source, at least `plan_bytes`, and
    /// removable unless `force` (loop devices count as removable).
    pub fn open(path: &Path, plan_bytes: u64, source: &Source, force: bool) -> Result<Target> {
        Target::open_checked(path, plan_bytes, source, force, false)
    }

    /// Opens the stick at `path`, read as `stick`, to be updated in place
    /// (`update` from its own active bank, which it does not write): the
    /// checks of [`Target::open`] but that it is not the source.
    pub fn open_in_place(path: &Path, stick: &Source, force: bool) -> Result<Target> {
        Target::open_checked(path, stick.len(), stick, force, true)
    }

    /// [`Target::open`]; with `in_place`, the target may be the source.
    fn open_checked(
        path: &Path,
        plan_bytes: u64,
        source: &Source,
        force: bool,
        in_place: bool,
    ) -> Result<Target> {
        let meta = match fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Target::create(path, plan_bytes)
            }
            Err(e) => return Err(open_error(path)(e)),
        };
        let ft = meta.file_type();
        if ft.is_file() {
            Target::open_file(path, &meta, plan_bytes, source, in_place)
        } else if ft.is_block_device() {
            Target::open_device(path, &meta, plan_bytes, source, force, in_place)
        } else {
            Err(refuse(path, Refusal::NotFileOrDevice))
        }
    }

    /// A new sparse image file of `plan_bytes` at `path`.
    fn create(path: &Path, plan_bytes: u64) -> Result<Target> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(open_error(path))?;
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

    /// The existing image file at `path` (described by `meta`), unless
    /// it is the source (and not written `in_place`).
    fn open_file(
        path: &Path,
        meta: &Metadata,
        plan_bytes: u64,
        source: &Source,
        in_place: bool,
    ) -> Result<Target> {
        if !in_place && same_file(source, meta.dev(), meta.ino()) {
            return Err(refuse(path, Refusal::IsSourceImage));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(open_error(path))?;
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
        Ok(Target {
            path: path.to_path_buf(),
            identity: (meta.dev(), meta.ino()),
            description,
            file,
            kind,
            bytes,
        })
    }

    /// The block device at `path` (described by `meta`), opened
    /// exclusively once it passed every check of [`device_refusal`].
    fn open_device(
        path: &Path,
        meta: &Metadata,
        plan_bytes: u64,
        source: &Source,
        force: bool,
        in_place: bool,
    ) -> Result<Target> {
        let rdev = meta.rdev();
        let sys = sysfs_dir(rdev);
        if !in_place
            && source.kind() == SourceKind::BlockDevice
            && source_rdev(source) == Some(rdev)
        {
            return Err(refuse(path, Refusal::IsSourceDevice));
        }
        if let Some(refusal) = device_refusal(&sys, rdev, source, force) {
            return Err(refuse(path, refusal));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_EXCL)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(nix::libc::EBUSY) => refuse(path, Refusal::InUse),
                _ => open_error(path)(e),
            })?;
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
/// written, if it must not: a partition, a loop device over the source, a
/// mounted disk, or (without `force`) a fixed disk. Loop devices count as
/// removable: they are files in disguise.
fn device_refusal(sys: &Path, rdev: u64, source: &Source, force: bool) -> Option<Refusal> {
    if sys.join("partition").exists() {
        return Some(Refusal::Partition);
    }
    if let Some(backing) = read_sys(&sys.join("loop/backing_file")) {
        if fs::metadata(&backing).is_ok_and(|b| same_file(source, b.dev(), b.ino())) {
            return Some(Refusal::LoopOverSource {
                backing: backing.into(),
            });
        }
    }
    if let Some((device, at)) = mounted(rdev, sys) {
        return Some(Refusal::Mounted { device, at });
    }
    let is_loop = nix::sys::stat::major(rdev) == u64::from(LOOP_MAJOR);
    let removable = read_sys(&sys.join("removable")).as_deref() == Some("1");
    if !removable && !is_loop && !force {
        return Some(Refusal::NotRemovable);
    }
    None
}

fn same_file(source: &Source, dev: u64, ino: u64) -> bool {
    fs::metadata(source.path()).is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

fn source_rdev(source: &Source) -> Option<u64> {
    fs::metadata(source.path()).ok().map(|m| m.rdev())
}

/// /sys/dev/block/MAJOR:MINOR for a device number.
fn sysfs_dir(rdev: u64) -> PathBuf {
    let (major, minor) = (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev));
    PathBuf::from(format!("/sys/dev/block/{major}:{minor}"))
}

fn read_sys(path: &Path) -> Option<String> {
    fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Which of the device and its partitions is mounted where (MAJOR:MINOR
/// and mount point), if any is (from /proc/self/mountinfo, whose third
/// field is MAJOR:MINOR).
fn mounted(rdev: u64, sys: &Path) -> Option<(String, String)> {
    let mut devs = vec![sys_dev_id(rdev)];
    if let Ok(entries) = fs::read_dir(sys) {
        for entry in entries.flatten() {
            if entry.path().join("partition").exists() {
                if let Some(dev) = read_sys(&entry.path().join("dev")) {
                    devs.push(dev);
                }
            }
        }
    }
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        match (fields.get(2), fields.get(4)) {
            (Some(dev), Some(at)) if devs.iter().any(|d| d == dev) => {
                Some((dev.to_string(), at.to_string()))
            }
            _ => None,
        }
    })
}

fn sys_dev_id(rdev: u64) -> String {
    format!(
        "{}:{}",
        nix::sys::stat::major(rdev),
        nix::sys::stat::minor(rdev)
    )
}

fn describe_device(path: &Path, sys: &Path, bytes: u64) -> String {
    let field = |name: &str| read_sys(&sys.join("device").join(name));
    let mut parts = Vec::new();
    for name in ["vendor", "model"] {
        if let Some(v) = field(name) {
            parts.push(v);
        }
    }
    if let Some(serial) = field("serial").or_else(|| read_sys(&sys.join("serial"))) {
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

    /// A fake /sys/dev/block/M:m directory holding `files`, removed when
    /// dropped.
    fn fake_sysfs(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::Builder::new()
            .prefix("esxstick-sysfs-")
            .tempdir()
            .unwrap();
        for (file, text) in files {
            let path = dir.path().join(file);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        dir
    }

    fn any_source() -> Source {
        Source::open(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("Cargo.toml")
                .as_path(),
        )
        .unwrap()
    }

    // Device numbers no real mount uses: 250:77 (a disk), 7:77 (a loop).
    const DISK: u64 = (250 << 8) | 77;
    const LOOP: u64 = (7 << 8) | 77;

    #[test]
    fn partitions_are_refused_even_with_force() {
        let sys = fake_sysfs(&[("partition", "1"), ("removable", "1")]);
        let why = device_refusal(sys.path(), DISK, &any_source(), true)
            .unwrap()
            .to_string();
        assert!(why.contains("is a partition"), "{why}");
    }

    #[test]
    fn fixed_disks_need_force_removable_and_loop_do_not() {
        let fixed = fake_sysfs(&[("removable", "0")]);
        let why = device_refusal(fixed.path(), DISK, &any_source(), false)
            .unwrap()
            .to_string();
        assert!(why.contains("not a removable disk"), "{why}");
        assert_eq!(
            device_refusal(fixed.path(), DISK, &any_source(), true),
            None
        );
        let stick = fake_sysfs(&[("removable", "1")]);
        assert_eq!(
            device_refusal(stick.path(), DISK, &any_source(), false),
            None
        );
        let lo = fake_sysfs(&[("removable", "0")]);
        assert_eq!(device_refusal(lo.path(), LOOP, &any_source(), false), None);
    }

    #[test]
    fn a_loop_device_over_the_source_is_refused() {
        let source = any_source();
        let backing = source.path().display().to_string();
        let sys = fake_sysfs(&[("loop/backing_file", &backing)]);
        let why = device_refusal(sys.path(), LOOP, &source, true)
            .unwrap()
            .to_string();
        assert!(why.contains("over the source"), "{why}");
    }
}
