//! oem.tgz, the slot ESXi 3.5 and 4.x keep for custom drivers and
//! customisations (what ESXi-Customizer fills): a tar.gz overlaid on the
//! root at boot, e.g. `etc/vmware/simple.map`, `etc/vmware/pci.ids`,
//! `usr/lib/vmware/vmkmod/<driver>.o`. ESXi 5 and later have no such slot:
//! they take drivers as VIBs.

use crate::error::ConfigProblem;
use crate::esxi::config::archive;
use crate::ondisk::table::Scheme;

/// The file name of the slot in a bank.
pub const OEM_TGZ: &str = "oem.tgz";
/// The module ESXi-Customizer puts oem.tgz before in boot.cfg.
pub const BEFORE: &str = "license.tgz";

/// Checks an oem.tgz (`bytes`, named `archive` in errors) as
/// [`archive::read`] does, and that it holds at least one file; returns
/// how many.
pub fn check(bytes: &[u8], archive: &str) -> Result<usize, ConfigProblem> {
    let members = archive::read(bytes, archive, &|_| false)?;
    match members.iter().filter(|m| m.is_file).count() {
        0 => Err(ConfigProblem::Empty {
            archive: archive.to_string(),
        }),
        files => Ok(files),
    }
}

/// Whether an image of this boot.cfg `build=` (and partitioning, when the
/// build says nothing) has the oem.tgz slot: ESXi 3.5 and 4.x do, 5 and
/// later (GPT) do not.
pub fn has_slot(build: Option<&str>, scheme: Scheme) -> bool {
    let major = build
        .and_then(|b| b.split(['.', '-']).next())
        .and_then(|m| m.trim().parse::<u32>().ok());
    match major {
        Some(major) => major < 5,
        None => scheme == Scheme::Mbr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esxi::config::archive::tests::tgz;

    #[test]
    fn only_esxi_3_and_4_have_the_slot() {
        assert!(has_slot(Some("4.0.0-164009"), Scheme::Mbr));
        assert!(has_slot(Some("3.5.0-123629"), Scheme::Mbr));
        assert!(!has_slot(Some("5.0.0-469512"), Scheme::Gpt));
        assert!(!has_slot(Some("7.0.2-0.0.17630552"), Scheme::Mbr));
        assert!(has_slot(None, Scheme::Mbr));
        assert!(!has_slot(None, Scheme::Gpt));
    }

    #[test]
    fn an_oem_tgz_holds_files() {
        let oem = tgz(&[("usr/lib/vmware/vmkmod/e1000e.o", b"\x7fELF")]);
        assert_eq!(check(&oem, "oem.tgz").unwrap(), 1);
        let e = check(&tgz(&[]), "oem.tgz").unwrap_err();
        assert_eq!(e.to_string(), "oem.tgz holds no file");
    }
}
