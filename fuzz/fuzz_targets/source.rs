//! Sources read as streams: the fuzz bytes are a whole file given as
//! SOURCE — compressed (gzip, bzip2, xz, zstd, told by magic bytes) or an
//! installer ISO (ISO 9660 directory, .md5 file, tar archives inside) —
//! opened by `source::Source::open`, read by `inventory::read`, then
//! finished (the MD5 check of an ISO's image); or an ESXi 5+ installer
//! ISO, opened by `installer::open` (the whole tree walked, BOOT.CFG and
//! ISOLINUX.CFG read), its modules checked and its stick planned.
#![no_main]

use std::sync::OnceLock;

use esxstick::image::source::Source;
use esxstick_fuzz::Scratch;
use libfuzzer_sys::fuzz_target;

/// Largest input used; the rest is ignored.
const MAX_INPUT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    static SCRATCH: OnceLock<Scratch> = OnceLock::new();
    let scratch = SCRATCH.get_or_init(|| Scratch::new("source"));
    let data = &data[..data.len().min(MAX_INPUT)];
    scratch.fill(data);
    if let Ok(Some(mut iso)) = esxstick::esxi::installer::open(scratch.path()) {
        let _ = iso.inventory.check_modules(&iso.source);
        let _ = esxstick::plan::installer::plan(&iso.inventory, Some("ks=x"), 1 << 20);
        return;
    }
    let Ok(source) = Source::open(scratch.path()) else {
        return;
    };
    if let Ok(inv) = esxstick::esxi::inventory::read(&source, None) {
        source.prefetch(inv.needed_bytes());
    }
    let _ = source.finish();
});
