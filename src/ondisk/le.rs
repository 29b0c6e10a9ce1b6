//! Little-endian integer fields, the one reader and writer behind every
//! hand parser in [`ondisk`](super) (partition entries, the BPB, FAT
//! entries, directory entries).
//!
//! Bytes past the end of the buffer read as zero, as in a zero-filled
//! sector, so a field cut short by a damaged structure never panics;
//! writes that would not fit change nothing.

/// The unsigned little-endian integer of `width` bytes (at most 4) at
/// `offset` of `bytes`.
pub fn uint_at(bytes: &[u8], offset: usize, width: usize) -> u32 {
    (0..width.min(4)).fold(0, |value, i| {
        let byte = offset
            .checked_add(i)
            .and_then(|at| bytes.get(at))
            .copied()
            .unwrap_or(0);
        value | u32::from(byte) << (8 * i)
    })
}

/// The little-endian `u16` at `offset` of `bytes`.
pub fn u16_at(bytes: &[u8], offset: usize) -> u16 {
    uint_at(bytes, offset, 2) as u16
}

/// The little-endian `u32` at `offset` of `bytes`.
pub fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    uint_at(bytes, offset, 4)
}

/// Writes the low `width` bytes (at most 4) of `value` at `offset` of
/// `bytes`, little-endian. Returns false, changing nothing, when the field
/// does not lie wholly inside `bytes`.
pub fn put(bytes: &mut [u8], offset: usize, width: usize, value: u32) -> bool {
    let value = value.to_le_bytes();
    let field = offset
        .checked_add(width)
        .and_then(|end| bytes.get_mut(offset..end));
    match (field, value.get(..width)) {
        (Some(field), Some(value)) => {
            field.copy_from_slice(value);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_little_endian_and_zero_past_the_end() {
        let bytes = [0x34, 0x12, 0x78, 0x56, 0xff];
        assert_eq!(u16_at(&bytes, 0), 0x1234);
        assert_eq!(u32_at(&bytes, 0), 0x5678_1234);
        assert_eq!(uint_at(&bytes, 1, 1), 0x12);
        assert_eq!(uint_at(&bytes, 2, 3), 0xff_5678);
        // The last byte, then two missing ones.
        assert_eq!(u32_at(&bytes, 4), 0xff);
        assert_eq!(u16_at(&bytes, 5), 0);
        assert_eq!(u32_at(&bytes, usize::MAX), 0);
    }

    #[test]
    fn writes_only_whole_fields() {
        let mut bytes = [0u8; 6];
        assert!(put(&mut bytes, 1, 4, 0x0403_0201));
        assert_eq!(bytes, [0, 1, 2, 3, 4, 0]);
        assert!(put(&mut bytes, 4, 2, 0xbbaa_ccdd));
        assert_eq!(bytes, [0, 1, 2, 3, 0xdd, 0xcc]);
        assert!(!put(&mut bytes, 5, 2, 0xffff));
        assert!(!put(&mut bytes, usize::MAX, 2, 0xffff));
        assert!(!put(&mut bytes, 0, 5, 0xffff));
        assert_eq!(bytes, [0, 1, 2, 3, 0xdd, 0xcc]);
    }
}
