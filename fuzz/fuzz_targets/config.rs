//! The configuration archives a user gives (`--state`, `--oem`) or a bank
//! holds (state.tgz), as `write`, `update` and `backup` read them: any
//! bytes, checked by `archive::read`, told apart by `bundle::read`, a
//! state.tgz (and its local.tgz) read by `state::read`, an oem.tgz by
//! `oem::check`.
#![no_main]

use esxstick::esxi::config::{archive, bundle, oem, state};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(members) = archive::read(data, "fuzz.tgz", &|_| true) {
        for m in &members {
            // Every path accepted stays inside the archive.
            assert!(
                !m.path.starts_with('/') && !m.path.split('/').any(|c| c == ".."),
                "unsafe path accepted: {:?}",
                m.path
            );
            if let Some(data) = &m.data {
                assert_eq!(data.len() as u64, m.bytes, "{:?}", m.path);
            }
        }
    }
    if let Ok(bundle::ConfigFile::Bundle { state, .. }) = bundle::read(data, "fuzz.tgz") {
        let _ = state::read(&state, "state.tgz in fuzz.tgz");
    }
    let _ = state::read(data, "fuzz.tgz");
    let _ = oem::check(data, "fuzz.tgz");
});
