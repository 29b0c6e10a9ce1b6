//! GPT: sector 0 is always a protective MBR (type 0xEE), so the GPT
//! branch runs; the fuzz bytes are LBA 1 onwards and the disk ends with
//! them, so the last sector of the input is where the backup header is
//! looked for. Then the whole ESXi inventory (partition 1 = boot).
#![no_main]

use std::sync::OnceLock;

use esxstick_fuzz::{mbr, mbr_entry, sectors, Scratch, SECTOR};
use libfuzzer_sys::fuzz_target;

/// Largest input used; the rest is ignored.
const MAX_INPUT: usize = 64 << 10;

fuzz_target!(|data: &[u8]| {
    static SCRATCH: OnceLock<Scratch> = OnceLock::new();
    let scratch = SCRATCH.get_or_init(|| Scratch::new("gpt"));
    let data = &data[..data.len().min(MAX_INPUT)];
    let disk_sectors = 1 + sectors(data.len());
    let pmbr = mbr(&[(0, mbr_entry(0xee, 1, (disk_sectors - 1) as u32))]);
    let source = scratch.image(disk_sectors * SECTOR, &[(0, &pmbr), (SECTOR, data)]);
    if let Ok(table) = esxstick::ondisk::table::read(&source) {
        for p in &table.partitions {
            let _ = (p.end(), p.bytes(), p.kind.name(), p.kind.code());
            assert!(p.sectors > 0 && p.start + p.sectors <= table.disk_sectors);
        }
    }
    let _ = esxstick::esxi::inventory::read(&source, None);
});
