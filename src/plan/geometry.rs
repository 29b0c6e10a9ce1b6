//! Disk arithmetic: CHS addresses for a geometry, and rounding sectors to
//! an alignment unit.

use crate::ondisk::table::Chs;

/// Highest cylinder a CHS field can hold.
const MAX_CYLINDER: u64 = 1023;

/// CHS address of `lba` for the geometry, capped at cylinder 1023 as
/// partition tables do for sectors CHS cannot reach.
pub fn chs(lba: u64, heads: u16, sectors_per_track: u16) -> Chs {
    let (h, s) = (u64::from(heads), u64::from(sectors_per_track));
    let cylinder = lba / (h * s).max(1);
    if cylinder > MAX_CYLINDER {
        return [
            MAX_CYLINDER as u32,
            u32::from(heads.saturating_sub(1)),
            u32::from(sectors_per_track),
        ];
    }
    [
        cylinder as u32,
        ((lba / s.max(1)) % h.max(1)) as u32,
        (lba % s.max(1) + 1) as u32,
    ]
}

/// `v` rounded up to a multiple of `unit` (a unit of 0 counts as 1).
pub fn align_up(v: u64, unit: u64) -> u64 {
    v.div_ceil(unit.max(1)) * unit.max(1)
}

/// `v` rounded down to a multiple of `unit` (a unit of 0 counts as 1).
pub fn align_down(v: u64, unit: u64) -> u64 {
    v / unit.max(1) * unit.max(1)
}
