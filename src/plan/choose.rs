//! Choosing a plan without being told: the smallest target a source fits
//! (what `inspect` reports), and the plan an existing stick was written
//! with (what `verify --against` compares it to).

use serde::Serialize;

use crate::error::{Error, Result};
use crate::esxi::inventory::Inventory;
use crate::image::source::{Source, SECTOR};
use crate::ondisk::table::{self, PartitionTable, Scheme};
use crate::plan::layout::{self, Layout, LayoutProblem, TargetScheme};
use crate::plan::{self, Payload, Plan};

/// The smallest target that holds a source with its default layout.
#[derive(Debug, Clone, Serialize)]
pub struct SmallestTarget {
    /// The layout the size is for.
    pub layout: String,
    /// Target size in bytes.
    pub bytes: u64,
}

/// The layout a source gets when none is named: `esxi-native` for an MBR
/// image, `gpt-minimal` for a GPT (ESXi 5+) one.
pub fn default_layout(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Mbr => layout::DEFAULT,
        Scheme::Gpt => "gpt-minimal",
    }
}

/// The smallest target for `inv` with its default layout; `None` when the
/// image is incomplete or fits no target.
pub fn smallest_target(inv: &Inventory) -> Option<SmallestTarget> {
    let layout = Layout::load(default_layout(inv.source.scheme)).ok()?;
    let payload = Payload::from_inventory(inv).ok()?;
    let sectors = plan::min_target_sectors(&payload, &layout).ok()?;
    Some(SmallestTarget {
        layout: layout.name,
        bytes: sectors * SECTOR,
    })
}

/// The plan `stick` was written with, judged from the table it holds:
/// the named layout, or else the built-in layout whose plan for `payload`
/// gives the stick's table; the target size as written is `size` when
/// given, else found from the table's extent (a stick written with
/// `--size` onto a larger device ends before the device does).
///
/// Fails when the stick has no readable table, and, when no layout is
/// named, when no built-in layout gives its table. Given `size`, the plan
/// is for that size; with a named layout that gives the stick's table at
/// no size, the plan for `size` (or the whole device). Either may differ
/// from the stick, so that the verification shows the differences.
pub fn plan_of_stick(
    stick: &Source,
    payload: &Payload,
    layout: Option<&str>,
    size: Option<u64>,
) -> Result<Plan> {
    let table = table::read(stick)?;
    let device = stick.len() / SECTOR;
    let layouts = match layout {
        Some(name) => vec![Layout::load(name)?],
        None => layout::builtin()
            .iter()
            .filter_map(|s| Layout::load(&s.name).ok())
            .collect(),
    };
    let given = size.map(|bytes| bytes / SECTOR);
    // The layout whose plan gives the table, at the size given or at a
    // size it may have been written for.
    let found = layouts.iter().find_map(|layout| {
        let mut sizes: Vec<u64> = given.into_iter().collect();
        sizes.extend(written_sizes(&table, layout, device));
        sizes
            .into_iter()
            .filter_map(|sectors| plan::plan(payload, layout, sectors).ok())
            .find(|plan| same_shape(&table, plan))
            .map(|plan| (layout, plan))
    });
    match (found, given) {
        // Told the size: the plan for it, even where it differs.
        (Some((layout, plan)), Some(sectors)) if plan.target_sectors != sectors => {
            plan::plan(payload, layout, sectors)
        }
        (Some((_, plan)), _) => Ok(plan),
        (None, _) => match layouts.first() {
            Some(named) if layout.is_some() => plan::plan(payload, named, given.unwrap_or(device)),
            _ => Err(Error::Layout(LayoutProblem::Unrecognised {
                table: table_summary(&table),
            })),
        },
    }
}

/// The target sizes, in sectors, that `layout` may have been planned for
/// to give `table`: the smallest size whose usable area ends where the
/// table does, a few alignment units more (banks that share the rest
/// round down), and the whole device of `device` sectors.
fn written_sizes(table: &PartitionTable, layout: &Layout, device: u64) -> Vec<u64> {
    let extent = table
        .partitions
        .iter()
        .map(|p| p.end() + 1)
        .max()
        .unwrap_or(0);
    let tail = match layout.scheme {
        TargetScheme::Mbr => 0,
        TargetScheme::Gpt => plan::GPT_RESERVED,
    };
    let unit = layout.end_unit();
    let mut sizes: Vec<u64> = (0..4).map(|k| extent + tail + k * unit).collect();
    sizes.push(device);
    sizes.retain(|&s| s <= device);
    sizes.sort_unstable();
    sizes.dedup();
    sizes
}

/// Whether `plan` gives `table`'s shape: the same entries, each at the
/// same start with the same length. (Types and boot flags are left to
/// the verification, which names a difference there.)
fn same_shape(table: &PartitionTable, plan: &Plan) -> bool {
    table.partitions.len() == plan.partitions.len()
        && plan.partitions.iter().all(|p| {
            table
                .get(p.entry)
                .is_some_and(|t| t.start == p.start && t.sectors == p.sectors)
        })
}

/// The table as one short line: `4: 32+8160, 1: 8192+122880, …`.
fn table_summary(table: &PartitionTable) -> String {
    table
        .partitions
        .iter()
        .map(|p| format!("{}: {}+{}", p.number, p.start, p.sectors))
        .collect::<Vec<_>>()
        .join(", ")
}
