//! Choosing a plan without being told: the smallest target a source fits
//! (what `inspect` reports), and the plan an existing stick was written
//! with (what `verify --against` compares it to).

use serde::Serialize;

use crate::error::Result;
use crate::esxi::inventory::Inventory;
use crate::image::source::{Source, SECTOR};
use crate::ondisk::table::{self, Scheme};
use crate::plan::layout::{self, Layout};
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

/// The plan `stick` was written with: the named layout, or else the
/// built-in layout whose table matches the stick's (the default if none
/// does, so that the verification shows the differences).
pub fn plan_of_stick(stick: &Source, payload: &Payload, layout: Option<&str>) -> Result<Plan> {
    let sectors = stick.len() / SECTOR;
    if let Some(name) = layout {
        return plan::plan(payload, &Layout::load(name)?, sectors);
    }
    let table = table::read(stick).ok();
    let mut fallback = None;
    for summary in layout::builtin() {
        let Ok(plan) = Layout::load(&summary.name).and_then(|l| plan::plan(payload, &l, sectors))
        else {
            continue;
        };
        let matches = table.as_ref().is_some_and(|t| {
            t.partitions.len() == plan.partitions.len()
                && plan
                    .partitions
                    .iter()
                    .all(|p| t.get(p.entry) == Some(&p.partition()))
        });
        if matches {
            return Ok(plan);
        }
        if fallback.is_none() {
            fallback = Some(plan);
        }
    }
    match fallback {
        Some(plan) => Ok(plan),
        None => plan::plan(payload, &Layout::load(layout::DEFAULT)?, sectors),
    }
}
