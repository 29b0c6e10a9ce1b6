//! What a target holds before it is overwritten — an ESXi stick, an ESXi
//! disk image, a FAT volume, nothing — so that the user confirms knowing
//! what is erased, and is told when SOURCE and TARGET look swapped.

use std::fmt;
use std::path::Path;

use serde::Serialize;

use crate::error::Error;
use crate::esxi::inventory::{self, Inventory, Role};
use crate::image::source::Source;
use crate::ondisk::bpb::BootSector;
use crate::ondisk::table::{self, NotADisk, Partition};
use crate::plan::{choose, Payload};

/// Bytes read to tell an empty target from one holding data.
const EMPTY_CHECK_BYTES: usize = 1 << 20;

/// What a target holds (in JSON: an object whose `kind` is the
/// variant's name in kebab case, with its fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Contents {
    /// Nothing: its first MiB is zeros (or it is a new file).
    Empty,
    /// A stick as esxstick makes them: boot partition and bootbanks only.
    EsxiStick {
        /// The active bank's build, when its boot.cfg names one.
        build: Option<String>,
        /// The built-in layout its table matches, if any.
        layout: Option<String>,
    },
    /// A whole ESXi disk image (with the vmkcore or store partitions), as
    /// a source is.
    EsxiImage {
        /// The active bank's build, when its boot.cfg names one.
        build: Option<String>,
    },
    /// A compressed image or an installer ISO, as a source is.
    Compressed,
    /// A FAT volume: the whole target (no partition table), or the one
    /// partition of its table.
    FatVolume {
        /// Its label.
        label: String,
        /// The partition holding it; `None`: the whole target.
        partition: Option<u32>,
    },
    /// A partitioned disk that is not an ESXi one.
    Partitioned {
        /// How many partitions its table holds.
        partitions: usize,
    },
    /// Data esxstick does not recognise.
    Unknown,
    /// It cannot be read.
    Unreadable {
        /// Why not (the operating system's reason).
        reason: String,
    },
}

impl Contents {
    /// What the block device or image file at `path` holds (read only).
    pub fn of(path: &Path) -> Contents {
        let source = match Source::open(path) {
            Ok(source) => source,
            Err(Error::Open { source, .. }) => {
                return Contents::Unreadable {
                    reason: source.to_string(),
                }
            }
            Err(_) => return Contents::Unknown,
        };
        if source.origin().is_some() {
            return Contents::Compressed;
        }
        match table::read(&source) {
            Ok(t) => match inventory::read(&source, None) {
                Ok(inv)
                    if inv
                        .partitions
                        .iter()
                        .any(|p| matches!(p.role, Role::Vmkcore | Role::Store)) =>
                {
                    Contents::EsxiImage { build: build(&inv) }
                }
                Ok(inv) => Contents::EsxiStick {
                    build: build(&inv),
                    layout: layout_of(&source, &inv),
                },
                Err(_) => match t.partitions.as_slice() {
                    [only] => fat_volume(&source, Some(only))
                        .unwrap_or(Contents::Partitioned { partitions: 1 }),
                    all => Contents::Partitioned {
                        partitions: all.len(),
                    },
                },
            },
            Err(Error::NotADiskImage(NotADisk::Superfloppy)) => {
                fat_volume(&source, None).unwrap_or(Contents::Unknown)
            }
            Err(_) if zeros(&source) => Contents::Empty,
            Err(_) => Contents::Unknown,
        }
    }

    /// Whether it looks like what esxstick reads rather than writes: a
    /// whole ESXi disk image, a compressed image or an ISO.
    pub fn looks_like_source(&self) -> bool {
        matches!(self, Contents::EsxiImage { .. } | Contents::Compressed)
    }

    /// Whether it holds an ESXi stick or image.
    pub fn is_esxi(&self) -> bool {
        matches!(
            self,
            Contents::EsxiImage { .. } | Contents::EsxiStick { .. } | Contents::Compressed
        )
    }
}

impl fmt::Display for Contents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let build = |b: &Option<String>| b.clone().unwrap_or_else(|| "unknown".into());
        match self {
            Contents::Empty => f.write_str("nothing (its first MiB is zeros)"),
            Contents::EsxiStick { build: b, layout } => write!(
                f,
                "an ESXi stick (build {}, {})",
                build(b),
                layout
                    .as_ref()
                    .map_or("a layout esxstick does not know".into(), |l| format!(
                        "layout {l}"
                    ))
            ),
            Contents::EsxiImage { build: b } => {
                write!(f, "an ESXi disk image (build {})", build(b))
            }
            Contents::Compressed => f.write_str("a compressed image or installer ISO"),
            Contents::FatVolume { label, partition } => {
                write!(f, "a FAT volume labelled {label:?}")?;
                match partition {
                    Some(n) => write!(f, " in partition {n}"),
                    None => Ok(()),
                }
            }
            Contents::Partitioned { partitions } => {
                let s = if *partitions == 1 { "" } else { "s" };
                write!(
                    f,
                    "a partitioned disk ({partitions} partition{s}, not ESXi's)"
                )
            }
            Contents::Unknown => f.write_str("data without a partition table"),
            Contents::Unreadable { reason } => write!(f, "what cannot be read ({reason})"),
        }
    }
}

/// The active bank's build.
fn build(inv: &Inventory) -> Option<String> {
    inv.boot_cfg().and_then(|c| c.build.clone())
}

/// The built-in layout a stick's table matches, planned from the stick's
/// own bank.
fn layout_of(stick: &Source, inv: &Inventory) -> Option<String> {
    let payload = Payload::from_inventory(inv).ok()?;
    choose::plan_of_stick(stick, &payload, None, None)
        .ok()
        .map(|p| p.layout)
}

/// The FAT volume in `partition` (`None`: at sector 0), with the label
/// its boot sector holds (empty when it holds none); `None` when there
/// is no FAT boot sector there.
fn fat_volume(source: &Source, partition: Option<&Partition>) -> Option<Contents> {
    let start = partition.map_or(0, |p| p.start);
    let sector = source.read_sector(start, "the boot sector").ok()?;
    let bs = BootSector::parse(&sector).ok()?;
    Some(Contents::FatVolume {
        label: bs.label(&sector).unwrap_or_default(),
        partition: partition.map(|p| p.number),
    })
}

/// Whether the source's first MiB (or all of it, when shorter) is zeros.
fn zeros(source: &Source) -> bool {
    let len = source.len().min(EMPTY_CHECK_BYTES as u64) as usize;
    let mut buf = vec![0; len];
    source.read_at(0, &mut buf, "the target").is_ok() && buf.iter().all(|&b| b == 0)
}
