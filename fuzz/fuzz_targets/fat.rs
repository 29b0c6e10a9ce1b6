//! FAT volumes: the fuzz bytes are a FAT volume, placed twice in an
//! MBR disk laid out like ESXi's: as the boot partition (entry 4, type
//! 0x04, LBA 32) and as bootbank 5 (a logical FAT16 partition in an
//! extended partition right after it). The boot partition is checked
//! (fsck), opened (which runs `fsck::scan`), listed and read in full;
//! then the whole image goes through `verify::self_check`, which runs
//! `inventory::read` and reaches boot.cfg, fsck of both volumes and the
//! real gzip check of every module when the volume holds them.
#![no_main]

use std::sync::OnceLock;

use esxstick::ondisk::fat::Volume;
use esxstick::ondisk::table::{Partition, PartitionType};
use esxstick_fuzz::{mbr, mbr_entry, sectors, Scratch, SECTOR};
use libfuzzer_sys::fuzz_target;

/// Largest input used; the rest is ignored.
const MAX_INPUT: usize = 256 << 10;
/// First sector of the boot partition, as on ESXi images.
const BOOT_START: u64 = 32;
/// Gap between an EBR and its logical partition, as on ESXi images.
const EBR_GAP: u64 = 32;

fn exercise(source: &esxstick::image::source::Source, partition: &Partition) {
    let _ = esxstick::ondisk::fsck::check(source, partition.start, partition.sectors);
    let Ok(volume) = Volume::open(source, partition) else {
        return;
    };
    let _ = volume.info();
    if let Ok(files) = volume.files() {
        for file in &files {
            if let Ok(n) = volume.copy_file(file, &mut std::io::sink()) {
                assert_eq!(n, file.bytes, "copy_file of {} read its size", file.path);
            }
        }
    }
    let _ = volume.find("boot.cfg");
}

fuzz_target!(|data: &[u8]| {
    static SCRATCH: OnceLock<Scratch> = OnceLock::new();
    let scratch = SCRATCH.get_or_init(|| Scratch::new("fat"));
    let data = &data[..data.len().min(MAX_INPUT)];
    let n = sectors(data.len());
    let ext_start = BOOT_START + n;
    let ext_sectors = EBR_GAP + n;
    let table = mbr(&[
        (0, mbr_entry(0x05, ext_start as u32, ext_sectors as u32)),
        (3, mbr_entry(0x04, BOOT_START as u32, n as u32)),
    ]);
    let ebr = mbr(&[(0, mbr_entry(0x06, EBR_GAP as u32, n as u32))]);
    let bank_start = ext_start + EBR_GAP;
    let source = scratch.image(
        (ext_start + ext_sectors) * SECTOR,
        &[
            (0, &table),
            (BOOT_START * SECTOR, data),
            (ext_start * SECTOR, &ebr),
            (bank_start * SECTOR, data),
        ],
    );
    let boot = Partition {
        number: 4,
        kind: PartitionType::Mbr(0x04),
        start: BOOT_START,
        sectors: n,
        active: false,
    };
    exercise(&source, &boot);
    let _ = esxstick::stick::verify::self_check(&source);
});
