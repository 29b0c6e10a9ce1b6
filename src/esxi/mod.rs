//! Stage 2, the inventory: what an ESXi image holds — its boot partition,
//! its bootbanks and their [`bootcfg`], which bank is active and why — and
//! [`extract`], which copies those parts out; the host's [`config`]uration
//! in its bank (state.tgz, configuration bundles, `backup`, oem.tgz).
//!
//! ESXi's own rules (which bank boots, what a bank needs) live here.

pub mod banks;
pub mod bootcfg;
pub mod config;
pub mod extract;
pub mod installer;
pub mod inventory;
pub mod modules;

use std::path::Path;
use std::sync::Arc;

use crate::error::Result;
use crate::image::source::{Source, SourceKind};
use crate::progress::Observer;

/// Opens the ESXi image at `path` and reads its inventory, with bank
/// `bank` as the active one when given. A stream (compressed image, ISO)
/// reports decompression to `observer`, then decompresses ahead, on
/// another thread, as far as the boot partition and the chosen bank reach
/// — and no further. Without `check_md5`, an ISO's imagedd.md5 is not
/// checked, and the observer is told so.
pub fn open(
    path: &Path,
    bank: Option<u32>,
    check_md5: bool,
    observer: Arc<dyn Observer>,
) -> Result<(Source, inventory::Inventory)> {
    let source = Source::open_with(path, check_md5)?;
    if !check_md5 && source.kind() == SourceKind::InstallerIso {
        observer.warning("--no-md5: the image's MD5 is not checked");
    }
    source.observe(observer);
    let inv = inventory::read(&source, bank)?;
    source.prefetch(inv.needed_bytes());
    Ok((source, inv))
}
