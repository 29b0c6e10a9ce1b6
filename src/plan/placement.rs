//! Where the partitions go: for each way the layout allows (boot
//! partition full or trimmed, an alternate bank or none), the positions on
//! a target of a given size, and the first of them in which every bank
//! formats as FAT16 and the payload fits.

use crate::plan::fat16::{best_fat16, max_fat16_sectors};
use crate::plan::geometry::{align_down, align_up};
use crate::plan::layout::{Alternate, BankSize, BootSize, Layout, TargetScheme};
use crate::plan::{Payload, GPT_RESERVED};

/// Sectors an MBR entry can address.
const MBR_MAX_SECTORS: u64 = u32::MAX as u64;

/// The planner's positions for one attempt.
pub(super) struct Placement {
    /// The boot partition's first sector.
    pub boot_start: u64,
    /// The boot partition's length.
    pub boot_sectors: u64,
    /// Where the extended partition starts (MBR), or the banks' area
    /// (GPT).
    pub ext_start: u64,
    /// Each bank's first sector and length.
    pub banks: Vec<(u64, u64)>,
}

/// The first placement that fits, trying the full boot partition before
/// a trimmed one and an alternate bank before none, as the layout allows;
/// with whether the boot partition was trimmed.
pub(super) fn attempt(
    payload: &Payload,
    layout: &Layout,
    target: u64,
    min_bank: u64,
) -> Option<(Placement, bool)> {
    let boot_modes: &[bool] = match layout.boot.size {
        BootSize::Full => &[false],
        BootSize::Used => &[true],
        BootSize::Auto => &[false, true],
    };
    let bank_counts: &[usize] = match layout.banks.alternate {
        Alternate::None => &[1],
        Alternate::Empty => &[2],
        Alternate::EmptyIfRoom => &[2, 1],
    };
    for &trim in boot_modes {
        for &count in bank_counts {
            let placed = place(payload, layout, target, trim, count, min_bank);
            // min_bank is where the payload first fits; a bank a sector or
            // two larger can hold one cluster fewer (its FATs grow by a
            // sector), so each bank is checked as it will be formatted.
            let formats = |(i, &(start, n)): (usize, &(u64, u64))| {
                let fill = (i == 0).then(|| (payload, payload.headroom(layout)));
                n >= min_bank && best_fat16(n, layout.geometry, start, fill).is_some()
            };
            if placed.banks.iter().enumerate().all(formats) {
                return Some((placed, trim));
            }
        }
    }
    None
}

/// Where everything goes for one choice of boot trimming and bank count.
/// Banks share what is left equally, each capped by the layout's rule
/// (but never below `min_bank`, what the payload needs).
fn place(
    payload: &Payload,
    layout: &Layout,
    target: u64,
    trim: bool,
    count: usize,
    min_bank: u64,
) -> Placement {
    let (first_free, tail) = match layout.scheme {
        TargetScheme::Mbr => (1, 0),
        TargetScheme::Gpt => (2 + GPT_RESERVED - 1, GPT_RESERVED),
    };
    let (su, eu, gap) = (layout.start_unit(), layout.end_unit(), layout.ebr_gap());
    // An MBR addresses 2^32 sectors (2 TiB); on a larger target the rest
    // stays unpartitioned.
    let addressable = match layout.scheme {
        TargetScheme::Mbr => target.min(MBR_MAX_SECTORS),
        TargetScheme::Gpt => target,
    };
    let limit = align_down(addressable.saturating_sub(tail), eu);
    let boot_start = layout
        .boot
        .start
        .unwrap_or_else(|| align_up(first_free, su));
    let keep = if trim {
        payload
            .boot_used_sectors
            .max(layout.boot.min_sectors)
            .min(payload.boot_sectors)
    } else {
        payload.boot_sectors
    };
    let boot_end = align_up(boot_start + keep, eu);
    let ext_start = match layout.scheme {
        TargetScheme::Mbr => align_up(boot_end, su),
        // GPT has no extended partition; the gap after p1 is kept.
        TargetScheme::Gpt => boot_end,
    };
    let cap = match layout.banks.size {
        BankSize::Source => payload.bank_sectors.max(min_bank),
        BankSize::Rest => u64::MAX,
    };
    let n = count.max(1) as u64;
    let share = limit.saturating_sub(ext_start + n * gap + (n - 1) * su) / n;
    let max_fat16 = max_fat16_sectors();
    let mut banks = Vec::new();
    let mut slot = ext_start;
    for i in 0..count {
        let start = if layout.scheme == TargetScheme::Gpt {
            align_up(slot + gap, su)
        } else {
            slot + gap
        };
        let want = if i + 1 == count && layout.banks.size == BankSize::Rest {
            u64::MAX
        } else {
            cap.min(share)
        };
        // Round the wanted end up to the grid, but stay inside the disk and
        // within what FAT16 can address.
        let wanted_end = align_up(start.saturating_add(want).min(limit), eu);
        let fat16_end = align_down(start + max_fat16, eu);
        let end = wanted_end.min(fat16_end).min(limit).max(start);
        banks.push((start, end - start));
        slot = align_up(end, su);
    }
    Placement {
        boot_start,
        boot_sectors: boot_end - boot_start,
        ext_start,
        banks,
    }
}
