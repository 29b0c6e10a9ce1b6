//! boot.cfg parsing: any bytes, at most bootcfg::MAX_BYTES as read from
//! a bank.
#![no_main]

use esxstick::esxi::bootcfg::{BootCfg, MAX_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(MAX_BYTES as usize)];
    if let Ok(cfg) = BootCfg::parse(data) {
        for name in cfg.files() {
            // Names must be safe to look up in a bank: no traversal.
            assert!(!name.split('/').any(|c| c == ".."), "traversal in {name:?}");
        }
        let _ = esxstick::esxi::banks::eligibility(None, Some(&cfg), false);
    }
});
