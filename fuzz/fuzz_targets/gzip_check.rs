//! The gzip check that `verify::self_check` runs on every module:
//! `esxi::modules::GzipCheck`, written to in pieces the way `Volume::copy_file`
//! hands a file over, then `finish` (every member's CRC-32 and length,
//! a complete stream). The first input byte picks the piece size, so
//! writes split members and headers anywhere.
#![no_main]

use std::io::Write;

use esxstick::esxi::modules::GzipCheck;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, file)) = data.split_first() else {
        return;
    };
    // 1..=255 bytes, or (first == 0) the whole file in one piece, as
    // copy_file's 1 MiB buffer hands over any module that fits it.
    let piece = if first == 0 {
        file.len().max(1)
    } else {
        usize::from(first)
    };
    let mut check = GzipCheck::new();
    for chunk in file.chunks(piece) {
        check
            .write_all(chunk)
            .expect("GzipCheck accepts every write");
    }
    let _ = check.finish();
});
