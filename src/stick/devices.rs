//! The disks of this machine, as `esxstick devices` lists them: which
//! block device is the stick, with its size, vendor, model, serial,
//! transport, whether it is read-only or mounted, and what it holds.
//!
//! Everything comes from sysfs (`/sys/block/NAME`: `size`, `removable`,
//! `ro`, `device/vendor`, `device/model`, partitions as subdirectories
//! with a `partition` file), the mount table (`/proc/self/mountinfo`, by
//! MAJOR:MINOR) and the device nodes in `/dev`, read only. The three
//! places are a [`Probe`], so that tests can point it at a tree of their
//! own. A device that cannot be read is listed all the same, saying so.

use std::fs;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::esxi::inventory::Inventory;
use crate::image::source::SECTOR;
use crate::plan::choose::{self, SmallestTarget};
use crate::plan::layout::Layout;
use crate::plan::{self, Payload};
use crate::stick::contents::Contents;

/// Version of the JSON document `devices --json` prints.
pub const SCHEMA: &str = "esxstick.devices/1";

/// The running system's mount table.
pub const MOUNTINFO: &str = "/proc/self/mountinfo";
/// Major number of Linux loop devices.
const LOOP_MAJOR: &str = "7";
/// Major numbers of disks no stick is written to: floppy drives (2) and
/// optical drives (11), which the kernel calls removable.
const NOT_STICKS: [&str; 2] = ["2", "11"];

/// Where devices are looked up: sysfs, the mount table and the device
/// nodes. [`Probe::default`] is the running system's.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The sysfs root (`/sys`).
    pub sysfs: PathBuf,
    /// The mount table (`/proc/self/mountinfo`).
    pub mountinfo: PathBuf,
    /// The directory of device nodes (`/dev`).
    pub dev: PathBuf,
}

impl Default for Probe {
    fn default() -> Probe {
        Probe {
            sysfs: PathBuf::from("/sys"),
            mountinfo: PathBuf::from(MOUNTINFO),
            dev: PathBuf::from("/dev"),
        }
    }
}

/// How a disk is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// USB mass storage (a stick, a card reader).
    Usb,
    /// An SD/MMC card in a built-in reader.
    Mmc,
    /// A SATA/PATA disk.
    Sata,
    /// An NVMe disk.
    Nvme,
    /// A virtio disk of a virtual machine.
    Virtio,
    /// A loop device: a file in disguise.
    Loop,
    /// Anything else (SCSI, SAS, ...).
    Other,
}

impl Transport {
    /// The name shown, as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Usb => "usb",
            Transport::Mmc => "mmc",
            Transport::Sata => "sata",
            Transport::Nvme => "nvme",
            Transport::Virtio => "virtio",
            Transport::Loop => "loop",
            Transport::Other => "other",
        }
    }
}

/// A mounted file system on the disk or one of its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    /// The disk or partition's name (`sdb1`).
    pub device: String,
    /// Where it is mounted.
    pub at: String,
}

/// Whether the default plan of a source fits a device (`--for`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fit {
    /// Whether `plan` succeeds for the device's size.
    pub fits: bool,
    /// The layout planned (the source's default).
    pub layout: String,
    /// The smallest target the source fits with that layout, when known.
    pub needs_bytes: Option<u64>,
}

/// One whole disk.
#[derive(Debug, Clone, Serialize)]
pub struct Device {
    /// Its node (`/dev/sdb`).
    pub path: PathBuf,
    /// Its kernel name (`sdb`).
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// How it is attached.
    pub transport: Transport,
    /// Whether the kernel calls it removable (loop devices count too).
    pub removable: bool,
    /// Whether it is read-only (a write-protect switch, `losetup -r`).
    pub read_only: bool,
    /// Vendor, as the device reports it.
    pub vendor: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Serial number (of the USB device, for USB storage).
    pub serial: Option<String>,
    /// A loop device's backing file.
    pub backing_file: Option<String>,
    /// Its mounted file systems (the disk's or its partitions').
    pub mounted: Vec<Mount>,
    /// What it holds.
    pub holds: Contents,
    /// What it holds, in words.
    pub holds_text: String,
    /// With `--for SOURCE`: whether SOURCE's default plan fits.
    pub fits: Option<Fit>,
}

/// The whole disks of the machine, by name: removable ones (and every USB
/// or MMC disk), or with `all` also fixed disks and loop devices. Virtual
/// devices other than loop devices (zram, device mapper, RAID), floppy
/// and optical drives, and disks without a medium (size 0: an empty card
/// reader, a free loop device) are left out. Reading what a device holds never fails the listing.
pub fn list(probe: &Probe, all: bool) -> Vec<Device> {
    let mounts = mount_table(&probe.mountinfo);
    let Ok(entries) = fs::read_dir(probe.sysfs.join("block")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
        .iter()
        .filter_map(|name| describe(probe, name, &mounts))
        .filter(|d| all || (d.removable && d.transport != Transport::Loop) || is_portable(d))
        .collect()
}

/// USB and MMC disks are sticks and cards even when the kernel calls
/// them fixed (USB disks often do).
fn is_portable(d: &Device) -> bool {
    matches!(d.transport, Transport::Usb | Transport::Mmc)
}

/// The device `name` of sysfs, unless it is not one to list.
fn describe(probe: &Probe, name: &str, mounts: &[MountLine]) -> Option<Device> {
    let link = probe.sysfs.join("block").join(name);
    let sys = fs::canonicalize(&link).ok()?;
    let root = fs::canonicalize(&probe.sysfs).ok()?;
    let rel = sys.strip_prefix(&root).ok()?.to_path_buf();
    let dev = read(&sys.join("dev"))?;
    let major = dev.split(':').next().unwrap_or_default();
    let is_loop = major == LOOP_MAJOR;
    if (rel.starts_with("devices/virtual") && !is_loop) || NOT_STICKS.contains(&major) {
        return None;
    }
    let bytes = read(&sys.join("size"))?.parse::<u64>().ok()? * SECTOR;
    if bytes == 0 {
        return None;
    }
    let transport = if is_loop {
        Transport::Loop
    } else {
        transport(&rel, name)
    };
    let id = identify(&sys, &root);
    let path = probe.dev.join(name);
    let holds = Contents::of(&path);
    Some(Device {
        name: name.to_string(),
        bytes,
        transport,
        removable: is_loop || read(&sys.join("removable")).as_deref() == Some("1"),
        read_only: read(&sys.join("ro")).as_deref() == Some("1"),
        vendor: id.vendor,
        model: id.model,
        serial: id.serial,
        backing_file: read(&sys.join("loop/backing_file")),
        mounted: mounted(&sys, name, mounts),
        holds_text: holds.to_string(),
        holds,
        path,
        fits: None,
    })
}

/// Vendor, model and serial number of a disk, as far as it says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// Vendor (the SCSI vendor, or the USB device's manufacturer).
    pub vendor: Option<String>,
    /// Model (the SCSI model, the USB product, an MMC card's name).
    pub model: Option<String>,
    /// Serial number: the USB device's for USB storage, else the disk's.
    pub serial: Option<String>,
}

/// The identity of the disk at sysfs directory `sys` (resolved, below
/// the sysfs root `root`): its `device/` attributes, and for USB storage
/// those of the USB device, an ancestor in sysfs, which holds the serial.
pub fn identify(sys: &Path, root: &Path) -> Identity {
    let device = sys.join("device");
    let usb = usb_device(sys, root);
    let field = |file: &str, usb_file: &str| {
        read(&device.join(file)).or_else(|| usb.as_ref().and_then(|u| read(&u.join(usb_file))))
    };
    Identity {
        // A virtio disk's "vendor" is a PCI vendor number, not a name.
        vendor: field("vendor", "manufacturer").filter(|v| !v.starts_with("0x")),
        model: field("model", "product").or_else(|| read(&device.join("name"))),
        serial: usb
            .as_ref()
            .and_then(|u| read(&u.join("serial")))
            .or_else(|| read(&device.join("serial"))),
    }
}

/// How the disk at sysfs path `rel` (below the sysfs root) is attached,
/// from the buses on its path.
fn transport(rel: &Path, name: &str) -> Transport {
    let parts: Vec<String> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    let has = |pred: &dyn Fn(&str) -> bool| parts.iter().any(|p| pred(p));
    let usb_bus = |p: &str| {
        p.strip_prefix("usb")
            .is_some_and(|n| n.starts_with(|c: char| c.is_ascii_digit()))
    };
    if has(&usb_bus) {
        Transport::Usb
    } else if name.starts_with("mmcblk") || has(&|p| p.starts_with("mmc")) {
        Transport::Mmc
    } else if name.starts_with("nvme") || has(&|p| p.starts_with("nvme")) {
        Transport::Nvme
    } else if has(&|p| p.starts_with("virtio")) {
        Transport::Virtio
    } else if has(&|p| p.starts_with("ata")) {
        Transport::Sata
    } else {
        Transport::Other
    }
}

/// The USB device a disk belongs to: its nearest ancestor in sysfs with
/// `idVendor` (where USB storage keeps its serial number).
fn usb_device(sys: &Path, root: &Path) -> Option<PathBuf> {
    sys.ancestors()
        .skip(1)
        .take_while(|dir| dir.starts_with(root) && *dir != root)
        .find(|dir| dir.join("idVendor").is_file())
        .map(Path::to_path_buf)
}

/// The mounts of the disk at sysfs directory `sys` (named `name`) and of
/// its partitions, from the mount table at `mountinfo` (what `write`
/// checks before it writes a disk).
pub fn mounts_of(sys: &Path, name: &str, mountinfo: &Path) -> Vec<Mount> {
    mounted(sys, name, &mount_table(mountinfo))
}

/// The mounts of the disk at `sys` (named `name`) and of its partitions:
/// by MAJOR:MINOR, or by the mount source `/dev/NAME` (btrfs, for one,
/// shows an anonymous device number).
fn mounted(sys: &Path, name: &str, mounts: &[MountLine]) -> Vec<Mount> {
    let mut devs: Vec<(String, String)> = Vec::new();
    if let Some(dev) = read(&sys.join("dev")) {
        devs.push((name.to_string(), dev));
    }
    if let Ok(entries) = fs::read_dir(sys) {
        let mut parts: Vec<(String, String)> = entries
            .flatten()
            .filter(|e| e.path().join("partition").is_file())
            .filter_map(|e| {
                let dev = read(&e.path().join("dev"))?;
                Some((e.file_name().to_string_lossy().into_owned(), dev))
            })
            .collect();
        parts.sort();
        devs.extend(parts);
    }
    devs.iter()
        .flat_map(|(device, dev)| {
            let node = format!("/dev/{device}");
            mounts
                .iter()
                .filter(move |m| &m.dev == dev || m.source == node)
                .map(|m| Mount {
                    device: device.clone(),
                    at: m.at.clone(),
                })
        })
        .collect()
}

/// One line of the mount table: what is mounted where.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MountLine {
    /// MAJOR:MINOR (field 3).
    dev: String,
    /// The mount point (field 5), unescaped.
    at: String,
    /// The mount source (after the ` - ` separator and the file system
    /// type), e.g. `/dev/sdb1`.
    source: String,
}

/// The mount table; empty when it cannot be read.
fn mount_table(path: &Path) -> Vec<MountLine> {
    fs::read_to_string(path)
        .map(|text| parse_mounts(&text))
        .unwrap_or_default()
}

/// The lines of a mount table's `text` (`/proc/self/mountinfo`'s form);
/// lines of another form are skipped.
fn parse_mounts(text: &str) -> Vec<MountLine> {
    text.lines()
        .filter_map(|line| {
            let (head, tail) = line.split_once(" - ")?;
            let mut fields = head.split(' ');
            let dev = fields.nth(2)?.to_string();
            let at = unescape(fields.nth(1)?);
            let source = unescape(tail.split(' ').nth(1)?);
            Some(MountLine { dev, at, source })
        })
        .collect()
}

/// A mount point as the mount table escapes it (`\040` for a space).
fn unescape(field: &str) -> String {
    let mut out = Vec::new();
    let bytes = field.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let code = bytes
            .get(i + 1..i + 4)
            .filter(|_| b == b'\\')
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match code {
            Some(c) => {
                out.push(c);
                i += 4;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A sysfs attribute, trimmed; `None` when missing or empty.
fn read(path: &Path) -> Option<String> {
    fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Whether a source's default plan fits devices, asked of each device by
/// its size.
pub struct FitCheck {
    payload: Payload,
    layout: Layout,
    smallest: Option<SmallestTarget>,
}

impl FitCheck {
    /// The default plan of the source read as `inv`.
    pub fn new(inv: &Inventory) -> crate::Result<FitCheck> {
        Ok(FitCheck {
            payload: Payload::from_inventory(inv)?,
            layout: Layout::load(choose::default_layout(inv.source.scheme))?,
            smallest: choose::smallest_target(inv),
        })
    }

    /// Whether the plan fits a device of `bytes`.
    pub fn check(&self, bytes: u64) -> Fit {
        Fit {
            fits: plan::plan(&self.payload, &self.layout, bytes / SECTOR).is_ok(),
            layout: self.layout.name.clone(),
            needs_bytes: self.smallest.as_ref().map(|s| s.bytes),
        }
    }
}

/// `devices --json`: the schema and the devices.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceList {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// Whether fixed disks and loop devices are listed too.
    pub all: bool,
    /// The devices, by name.
    pub devices: Vec<Device>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_lines_give_device_point_and_source() {
        let text = "36 1 8:17 / /media/a\\040b rw,nosuid shared:1 - vfat /dev/sdb1 rw\n\
                    37 1 0:45 / /mnt rw - btrfs /dev/sdc rw\nbroken line\n";
        let lines = parse_mounts(text);
        let line = |dev: &str, at: &str, source: &str| MountLine {
            dev: dev.into(),
            at: at.into(),
            source: source.into(),
        };
        assert_eq!(
            lines,
            [
                line("8:17", "/media/a b", "/dev/sdb1"),
                line("0:45", "/mnt", "/dev/sdc")
            ]
        );
    }

    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(unescape(r"/media/my\040stick"), "/media/my stick");
        assert_eq!(unescape(r"/a\\b"), r"/a\\b");
        assert_eq!(unescape(r"/end\04"), r"/end\04");
    }

    #[test]
    fn buses_on_the_path_give_the_transport() {
        let t = |p: &str, n: &str| transport(Path::new(p), n);
        assert_eq!(
            t(
                "devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/block/sdb",
                "sdb"
            ),
            Transport::Usb
        );
        assert_eq!(
            t(
                "devices/pci0000:00/0000:00:17.0/ata1/host0/block/sda",
                "sda"
            ),
            Transport::Sata
        );
        assert_eq!(
            t(
                "devices/platform/mmc_host/mmc0/mmc0:0001/block/mmcblk0",
                "mmcblk0"
            ),
            Transport::Mmc
        );
        assert_eq!(
            t("devices/pci0000:00/0000:00:04.0/virtio2/block/vda", "vda"),
            Transport::Virtio
        );
        // "usbhid" is not a USB bus.
        assert_eq!(t("devices/usbhid/block/sdc", "sdc"), Transport::Other);
    }
}
