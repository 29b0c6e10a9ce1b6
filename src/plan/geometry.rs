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

/// The smallest value in `lo + 1 ..= hi` for which `fits` holds, by
/// bisection: `fits(lo)` must not hold and `fits(hi)` must.
pub fn smallest_fitting(mut lo: u64, mut hi: u64, fits: impl Fn(u64) -> bool) -> u64 {
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-made 64 MB stick: 3 heads × 42 sectors, 126 sectors a
    /// cylinder (fdisk's figures in the published procedure).
    #[test]
    fn chs_of_the_hand_made_sticks_geometry() {
        let chs = |lba| chs(lba, 3, 42);
        assert_eq!(chs(0), [0, 0, 1]);
        assert_eq!(chs(41), [0, 0, 42]);
        // Entry 4 starts on the second track of cylinder 0.
        assert_eq!(chs(42), [0, 1, 1]);
        assert_eq!(chs(84), [0, 2, 1]);
        assert_eq!(chs(125), [0, 2, 42]);
        assert_eq!(chs(126), [1, 0, 1]);
        // Entry 4 ends, the extended partition and bank 5 begin.
        assert_eq!(chs(3149), [24, 2, 42]);
        assert_eq!(chs(3150), [25, 0, 1]);
        assert_eq!(chs(3192), [25, 1, 1]);
        // The last sector of cylinder 1,011 (counted from 1).
        assert_eq!(chs(127_385), [1010, 2, 42]);
    }

    #[test]
    fn chs_caps_at_cylinder_1023() {
        // 255 × 63 = 16,065 sectors a cylinder: 1024 cylinders end at
        // 16,450,560.
        assert_eq!(chs(16_450_559, 255, 63), [1023, 254, 63]);
        assert_eq!(chs(16_450_560, 255, 63), [1023, 254, 63]);
        assert_eq!(chs(u64::MAX, 3, 42), [1023, 2, 42]);
        assert_eq!(chs(16_434_494, 255, 63), [1022, 254, 63]);
    }

    #[test]
    fn aligns_to_units() {
        assert_eq!(align_up(0, 2048), 0);
        assert_eq!(align_up(1, 2048), 2048);
        assert_eq!(align_up(2048, 2048), 2048);
        assert_eq!(align_up(3150, 126), 3150);
        assert_eq!(align_up(3151, 126), 3276);
        assert_eq!(align_down(127_487, 126), 127_386);
        assert_eq!(align_down(2047, 2048), 0);
        assert_eq!(align_up(7, 0), 7);
        assert_eq!(align_down(7, 0), 7);
    }
}
