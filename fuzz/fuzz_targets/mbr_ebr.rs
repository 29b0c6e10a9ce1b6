//! MBR + EBR chain: the fuzz bytes are the first sectors of an 8 MiB
//! sparse disk (so EBR links and partitions have room), read as a
//! partition table and then as a whole ESXi inventory.
#![no_main]

use std::sync::OnceLock;

use esxstick_fuzz::Scratch;
use libfuzzer_sys::fuzz_target;

/// Size of the disk the bytes start: 16384 sectors.
const DISK: u64 = 8 << 20;
/// Largest input used; the rest is ignored.
const MAX_INPUT: usize = 64 << 10;

fuzz_target!(|data: &[u8]| {
    static SCRATCH: OnceLock<Scratch> = OnceLock::new();
    let scratch = SCRATCH.get_or_init(|| Scratch::new("mbr_ebr"));
    let data = &data[..data.len().min(MAX_INPUT)];
    let source = scratch.image(DISK, &[(0, data)]);
    if let Ok(table) = esxstick::ondisk::table::read(&source) {
        for p in &table.partitions {
            let _ = (p.end(), p.bytes(), p.kind.name(), p.kind.code());
            assert!(p.sectors > 0 && p.start + p.sectors <= table.disk_sectors);
        }
    }
    let _ = esxstick::esxi::inventory::read(&source, None);
});
