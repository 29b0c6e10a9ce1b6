//! VMware's FAT UUID sector: the second sector of every bootbank (byte
//! offset 512 of the partition) begins with the 16 ASCII bytes
//! `VMWARE FAT16    ` and a 16-byte UUID. ESXi's boot loader counts a FAT
//! partition as a bank only when it is there (esx-boot `safeboot/vmfat.c`)
//! and passes the chosen bank's UUID to the kernel as `bootUUID=`, which
//! is how ESXi finds /bootbank. The FAT therefore starts at sector 2 or
//! later (reserved sectors ≥ 2).

use std::fmt;

use serde::{Serialize, Serializer};

/// The magic the sector starts with.
pub const MAGIC: &[u8; 16] = b"VMWARE FAT16    ";
/// The sector's index within its partition.
pub const SECTOR_INDEX: u64 = 1;
/// Bytes in a UUID.
pub const UUID_LEN: usize = 16;

/// A bank's VMware FAT UUID. Shown, as safeboot passes it in `bootUUID=`,
/// as 32 lower-case hex digits in byte order.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FatUuid(pub [u8; UUID_LEN]);

impl FatUuid {
    /// The UUID in a partition's second sector, if it carries the magic.
    pub fn parse(sector: &[u8]) -> Option<FatUuid> {
        let (magic, rest) = sector.split_at_checked(MAGIC.len())?;
        if magic != MAGIC {
            return None;
        }
        rest.get(..UUID_LEN)?.try_into().ok().map(FatUuid)
    }

    /// The whole sector: magic, UUID, zeros.
    pub fn to_sector(self) -> [u8; 512] {
        let mut sector = [0; 512];
        let (magic, rest) = sector.split_at_mut(MAGIC.len());
        magic.copy_from_slice(MAGIC);
        rest[..UUID_LEN].copy_from_slice(&self.0);
        sector
    }

    /// A new random UUID as VMware's installer makes one for USB media:
    /// 16 random bytes with the high nibble of byte 0 set to 0xe (so never
    /// all zeros).
    pub fn fresh() -> Result<FatUuid, getrandom::Error> {
        let mut bytes = [0; UUID_LEN];
        getrandom::fill(&mut bytes)?;
        bytes[0] = 0xe0 | (bytes[0] & 0x0f);
        Ok(FatUuid(bytes))
    }

    /// Parses 32 hex digits (the form [`fmt::Display`] prints).
    pub fn from_hex(text: &str) -> Option<FatUuid> {
        if text.len() != 2 * UUID_LEN || !text.is_ascii() {
            return None;
        }
        let mut bytes = [0; UUID_LEN];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(FatUuid(bytes))
    }
}

impl fmt::Display for FatUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for FatUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FatUuid({self})")
    }
}

impl Serialize for FatUuid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sector as VMware writes it, spelled out byte by byte.
    fn vmware_sector() -> Vec<u8> {
        let mut s = b"VMWARE FAT16    ".to_vec();
        s.extend([
            0x7a, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d,
            0x0e, 0xff,
        ]);
        s.resize(512, 0);
        s
    }

    #[test]
    fn reads_the_uuid_after_the_magic_in_byte_order() {
        let uuid = FatUuid::parse(&vmware_sector()).unwrap();
        assert_eq!(uuid.to_string(), "7a0102030405060708090a0b0c0d0eff");
        assert_eq!(uuid.to_sector().to_vec(), vmware_sector());
        assert_eq!(FatUuid::from_hex(&uuid.to_string()), Some(uuid));
    }

    #[test]
    fn a_fat_sector_is_no_uuid_sector() {
        let mut fat = vec![0xf8, 0xff, 0xff, 0xff];
        fat.resize(512, 0);
        assert_eq!(FatUuid::parse(&fat), None);
        let mut lower = vmware_sector();
        lower[0] = b'v';
        assert_eq!(FatUuid::parse(&lower), None);
        assert_eq!(FatUuid::parse(b"VMWARE FAT16    short"), None);
    }

    #[test]
    fn fresh_uuids_are_usb_style_and_differ() {
        let (a, b) = (FatUuid::fresh().unwrap(), FatUuid::fresh().unwrap());
        assert_eq!(a.0[0] >> 4, 0xe);
        assert_ne!(a, b);
        assert_eq!(FatUuid::from_hex("zz"), None);
    }
}
