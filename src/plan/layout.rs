//! Layout families: how a stick is partitioned, as data. The files in
//! `layouts/` are built into the binary; users may pass their own.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The layouts shipped in `layouts/`, in the order `esxstick layouts` lists them.
const BUILTIN: [(&str, &str); 5] = [
    (
        "esxi-native",
        include_str!("../../layouts/esxi-native.toml"),
    ),
    (
        "vcritical-64mb",
        include_str!("../../layouts/vcritical-64mb.toml"),
    ),
    ("aligned-1m", include_str!("../../layouts/aligned-1m.toml")),
    ("dual-bank", include_str!("../../layouts/dual-bank.toml")),
    (
        "gpt-minimal",
        include_str!("../../layouts/gpt-minimal.toml"),
    ),
];

/// The layout used when none is named.
pub const DEFAULT: &str = "esxi-native";

/// Largest layout file accepted.
const MAX_FILE_BYTES: u64 = 64 * 1024;
/// Largest alignment, fixed boot start or boot minimum, in sectors (1 GiB).
const MAX_SECTORS: u64 = 1 << 21;
/// Largest bank headroom, in bytes (1 TiB).
const MAX_HEADROOM: u64 = 1 << 40;

/// What is wrong with a layout, or with a layout for this image. `origin`
/// and `name` say which layout: its name, or the path it was read from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutProblem {
    /// The text is not a layout file.
    #[error("{origin}: {message}")]
    Syntax {
        /// The layout.
        origin: String,
        /// The TOML parser's message.
        message: String,
    },
    /// The layout breaks one of the rules every layout keeps.
    #[error("{origin}: {rule}")]
    Rule {
        /// The layout.
        origin: String,
        /// The rule broken.
        rule: LayoutRule,
    },
    /// No built-in layout has the name, and no file the path.
    #[error(
        "no layout named {name:?} and no such file (built-in layouts: {})",
        BUILTIN.map(|(n, _)| n).join(", ")
    )]
    Unknown {
        /// The name or path given.
        name: String,
    },
    /// The layout file is larger than any layout.
    #[error("{name}: {bytes} bytes is too large for a layout file")]
    TooLarge {
        /// The path given.
        name: String,
        /// The file's size.
        bytes: u64,
    },
    /// An MBR layout for a GPT image.
    #[error(
        "layout {name} is for ESXi 3.5/4.x (MBR) images; this ESXi 5+ GPT image needs gpt-minimal"
    )]
    NeedsMbrImage {
        /// The layout.
        name: String,
    },
    /// A GPT layout for an MBR image.
    #[error("layout {name} is for ESXi 5+ GPT images; this is an ESXi 3.5/4.x MBR image")]
    NeedsGptImage {
        /// The layout.
        name: String,
    },
    /// The bank has more files than a FAT16 root directory can list.
    #[error("the bank holds {files} files, more than a FAT16 root directory takes")]
    TooManyFiles {
        /// Files in the bank.
        files: usize,
    },
    /// No built-in layout, planned for this source, gives the table of
    /// the stick being verified.
    #[error(
        "the stick's table ({table}) is not what any built-in layout gives for this source; \
         pass the --layout (and --size) it was written with, and check that SOURCE is the \
         image it was written from"
    )]
    Unrecognised {
        /// The stick's entries as `number: start+sectors`.
        table: String,
    },
    /// A plan names a bank without a table entry for it.
    #[error("the plan has a bank {entry} but no partition {entry}")]
    NoEntry {
        /// The bank's entry number.
        entry: u32,
    },
}

/// A rule that every layout keeps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutRule {
    /// Heads 1–255, sectors per track 1–63.
    #[error("geometry needs 1–255 heads and 1–63 sectors per track")]
    Geometry,
    /// An alignment beyond 1 GiB.
    #[error("alignment.{field} of {sectors} sectors is beyond 1 GiB")]
    Alignment {
        /// `start`, `end` or `ebr_gap`.
        field: &'static str,
        /// Its value.
        sectors: u64,
    },
    /// The boot partition in the entry ESXi does not look in.
    #[error(
        "ESXi finds its partitions by number: the boot partition must be entry {entry} on {scheme:?}"
    )]
    BootEntry {
        /// The entry the scheme needs.
        entry: u32,
        /// The layout's scheme.
        scheme: TargetScheme,
    },
    /// A fixed boot start on the table, or beyond 1 GiB.
    #[error("boot.start must be between {first} and {}", MAX_SECTORS)]
    BootStart {
        /// The first sector past the table.
        first: u64,
    },
    /// A boot minimum or bank headroom beyond reason.
    #[error("boot.min_sectors or banks.min_headroom is absurdly large")]
    Absurd,
}

/// A partitioning scheme for the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetScheme {
    /// MBR with boot partition in entry 4 and logical bootbanks.
    Mbr,
    /// GPT keeping ESXi 5+'s partition numbers.
    Gpt,
}

/// How much of the source boot partition the stick's boot partition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BootSize {
    /// The source partition's full size.
    Full,
    /// Only up to the end of its last used cluster (at least `min_sectors`).
    Used,
    /// Full when the plan fits that way, otherwise trimmed as `used`.
    Auto,
}

/// How large each bootbank is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BankSize {
    /// As large as the source's bank when the device allows, else the rest.
    Source,
    /// All the rest of the device (shared equally among the banks).
    Rest,
}

/// A layout family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    /// Short name, e.g. `esxi-native`.
    pub name: String,
    /// One line saying what the layout is for.
    pub description: String,
    /// MBR or GPT.
    pub scheme: TargetScheme,
    /// Disk geometry written to CHS fields and BPBs.
    pub geometry: Geometry,
    /// Partition placement rules.
    pub alignment: Alignment,
    /// The boot partition.
    pub boot: BootRule,
    /// Bootbank 5, filled from the source's active bank, and the
    /// alternate bank 6.
    pub banks: BankRule,
}

/// CHS geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Geometry {
    /// Heads per cylinder (1–255).
    pub heads: u16,
    /// Sectors per track (1–63).
    pub sectors_per_track: u16,
}

impl Geometry {
    /// Sectors in one cylinder.
    pub fn cylinder(&self) -> u64 {
        u64::from(self.heads) * u64::from(self.sectors_per_track)
    }
}

/// Where partitions may start and end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alignment {
    /// Partition and extended-partition starts are multiples of this many
    /// sectors (after any fixed boot start); 0 means one cylinder.
    pub start: u64,
    /// Partitions end just before a multiple of this many sectors, and the
    /// usable disk ends at the last such multiple; 0 means one cylinder.
    pub end: u64,
    /// Sectors from an EBR (or a partition's aligned slot) to the logical
    /// partition it describes; 0 means one track.
    pub ebr_gap: u64,
}

/// The boot partition rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootRule {
    /// Table entry (4 for MBR, 1 for GPT).
    pub entry: u32,
    /// Fixed first sector; when absent, the first aligned sector.
    pub start: Option<u64>,
    /// How much of the source partition to keep.
    pub size: BootSize,
    /// Least sectors of the source to keep when trimming.
    #[serde(default)]
    pub min_sectors: u64,
}

/// Whether the stick gets an alternate bank 6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Alternate {
    /// Bank 5 only.
    None,
    /// An empty bank 6 (boot.cfg with bootstate=3) as large as bank 5.
    Empty,
    /// Like `empty`, when the device has room for it; else bank 5 only.
    EmptyIfRoom,
}

/// The bootbank rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BankRule {
    /// How large each bank is.
    pub size: BankSize,
    /// Whether to add an alternate bank 6.
    pub alternate: Alternate,
    /// Least free space left in bank 5, in bytes; the planner leaves at
    /// least twice the size of state.tgz plus 1 MiB whatever this says.
    #[serde(default)]
    pub min_headroom: u64,
}

/// A layout's name and one-line description, for `esxstick layouts`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Name to pass to `--layout`.
    pub name: String,
    /// What it is for.
    pub description: String,
}

impl Layout {
    /// Parses and checks a layout file's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Layout> {
        let layout: Layout = toml::from_str(text).map_err(|e| {
            Error::Layout(LayoutProblem::Syntax {
                origin: origin.to_string(),
                message: e.message().to_string(),
            })
        })?;
        layout.check().map_err(|rule| {
            Error::Layout(LayoutProblem::Rule {
                origin: origin.to_string(),
                rule,
            })
        })?;
        Ok(layout)
    }

    fn check(&self) -> Result<(), LayoutRule> {
        let g = self.geometry;
        if !(1..=255).contains(&g.heads) || !(1..=63).contains(&g.sectors_per_track) {
            return Err(LayoutRule::Geometry);
        }
        let a = self.alignment;
        for (field, sectors) in [("start", a.start), ("end", a.end), ("ebr_gap", a.ebr_gap)] {
            if sectors > MAX_SECTORS {
                return Err(LayoutRule::Alignment { field, sectors });
            }
        }
        let entry = match self.scheme {
            TargetScheme::Mbr => 4,
            TargetScheme::Gpt => 1,
        };
        if self.boot.entry != entry {
            return Err(LayoutRule::BootEntry {
                entry,
                scheme: self.scheme,
            });
        }
        // Past the MBR, or on GPT past the header and its entries.
        let first = match self.scheme {
            TargetScheme::Mbr => 1,
            TargetScheme::Gpt => 34,
        };
        if self
            .boot
            .start
            .is_some_and(|s| s < first || s > MAX_SECTORS)
        {
            return Err(LayoutRule::BootStart { first });
        }
        if self.boot.min_sectors > MAX_SECTORS || self.banks.min_headroom > MAX_HEADROOM {
            return Err(LayoutRule::Absurd);
        }
        Ok(())
    }

    /// Finds a built-in layout by name, or reads a layout file by path.
    pub fn load(name_or_path: &str) -> Result<Layout> {
        if let Some((name, text)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            return Layout::parse(text, name);
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            return Err(Error::Layout(LayoutProblem::Unknown {
                name: name_or_path.to_string(),
            }));
        }
        let open_err = |source| Error::Open {
            path: path.to_path_buf(),
            source,
        };
        let len = std::fs::metadata(path).map_err(open_err)?.len();
        if len > MAX_FILE_BYTES {
            return Err(Error::Layout(LayoutProblem::TooLarge {
                name: name_or_path.to_string(),
                bytes: len,
            }));
        }
        let text = std::fs::read_to_string(path).map_err(open_err)?;
        Layout::parse(&text, name_or_path)
    }

    /// Sectors of start alignment (cylinder when set to 0).
    pub fn start_unit(&self) -> u64 {
        self.unit(self.alignment.start)
    }

    /// Sectors of end alignment (cylinder when set to 0).
    pub fn end_unit(&self) -> u64 {
        self.unit(self.alignment.end)
    }

    /// Sectors between an EBR and its logical partition (a track when 0).
    pub fn ebr_gap(&self) -> u64 {
        if self.alignment.ebr_gap == 0 {
            u64::from(self.geometry.sectors_per_track)
        } else {
            self.alignment.ebr_gap
        }
    }

    fn unit(&self, v: u64) -> u64 {
        if v == 0 {
            self.geometry.cylinder()
        } else {
            v
        }
    }
}

/// Every built-in layout with its description.
pub fn builtin() -> Vec<Summary> {
    BUILTIN
        .iter()
        .filter_map(|(name, text)| Layout::parse(text, name).ok())
        .map(|l| Summary {
            name: l.name,
            description: l.description,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_layout_parses_under_its_own_name() {
        for (name, text) in BUILTIN {
            let layout = Layout::parse(text, name).unwrap();
            assert_eq!(layout.name, name);
        }
        assert_eq!(builtin().len(), BUILTIN.len());
    }

    #[test]
    fn bad_layouts_are_refused_with_a_reason() {
        let good = include_str!("../../layouts/esxi-native.toml");
        let cases = [
            (good.replace("entry = 4", "entry = 2"), "by number"),
            (good.replace("heads = 64", "heads = 0"), "geometry"),
            (format!("{good}\nsurprise = 1\n"), "unknown field"),
            ("not toml at all [".to_string(), "x.toml"),
        ];
        for (text, needle) in cases {
            let err = Layout::parse(&text, "x.toml").unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }
}
