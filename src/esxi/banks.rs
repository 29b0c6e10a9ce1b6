//! Which bank ESXi boots, by the rules of its own boot loader, safeboot
//! (vmware/esx-boot `safeboot/bootbank.c`): partitions are scanned in
//! number order; a bank needs the VMware FAT UUID sector and a boot.cfg
//! that parses; it is eligible when `updated` > 0, `build` starts with a
//! digit, `quickboot` is 0 and `bootstate` is 0 (or missing) or 1. The
//! eligible bank with the highest `updated` boots; on a tie, the first.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::esxi::bootcfg::BootCfg;
use crate::ondisk::vmfat::FatUuid;

/// Why safeboot would not boot a bank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exclusion {
    /// The partition's second sector lacks `VMWARE FAT16    ` + UUID.
    NoUuidSector,
    /// No boot.cfg, or one that does not parse (a non-numeric `updated`,
    /// `bootstate` or `quickboot` voids it, as in safeboot).
    NoBootCfg,
    /// `updated` is 0 or missing.
    NotUpdated,
    /// `build` is empty or does not start with a digit.
    NoBuild,
    /// `quickboot` is set.
    Quickboot(u32),
    /// `bootstate` is neither 0 nor 1 (2: a trial boot failed; 3: empty).
    Bootstate(u32),
}

impl fmt::Display for Exclusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exclusion::NoUuidSector => f.write_str("no VMware FAT UUID sector"),
            Exclusion::NoBootCfg => f.write_str("no usable boot.cfg"),
            Exclusion::NotUpdated => f.write_str("updated=0"),
            Exclusion::NoBuild => f.write_str("build= does not start with a digit"),
            Exclusion::Quickboot(n) => write!(f, "quickboot={n}"),
            Exclusion::Bootstate(2) => f.write_str("bootstate=2 (its trial boot failed)"),
            Exclusion::Bootstate(3) => f.write_str("bootstate=3 (empty or invalid)"),
            Exclusion::Bootstate(n) => write!(f, "bootstate={n}"),
        }
    }
}

impl Serialize for Exclusion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Whether safeboot may boot a bank with this UUID sector and boot.cfg.
/// With `need_uuid` false (a source where no bank has the sector, such as
/// a hand-made stick), the sector is not asked for.
pub fn eligibility(
    uuid: Option<FatUuid>,
    cfg: Option<&BootCfg>,
    need_uuid: bool,
) -> Result<(), Exclusion> {
    if need_uuid && uuid.is_none() {
        return Err(Exclusion::NoUuidSector);
    }
    let cfg = cfg.ok_or(Exclusion::NoBootCfg)?;
    // The bank's own marks first (an empty bank says bootstate=3), then
    // what its boot.cfg lacks.
    match (cfg.quickboot.unwrap_or(0), cfg.bootstate.unwrap_or(0)) {
        (0, 0 | 1) => {}
        (0, state) => return Err(Exclusion::Bootstate(state)),
        (quick, _) => return Err(Exclusion::Quickboot(quick)),
    }
    if cfg.updated.unwrap_or(0) == 0 {
        return Err(Exclusion::NotUpdated);
    }
    let build = cfg.build.as_deref().unwrap_or("");
    if !build.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(Exclusion::NoBuild);
    }
    Ok(())
}

/// The bank safeboot boots among `(partition, updated, eligible)`: the
/// eligible one with the highest `updated`, the lowest number on a tie.
pub fn choose(banks: impl IntoIterator<Item = (u32, u64, bool)>) -> Option<u32> {
    banks
        .into_iter()
        .filter(|&(_, _, eligible)| eligible)
        .max_by_key(|&(n, updated, _)| (updated, std::cmp::Reverse(n)))
        .map(|(n, _, _)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> BootCfg {
        BootCfg::parse(format!("kernel=k.gz\nmodules=m.gz\n{text}").as_bytes()).unwrap()
    }

    const UUID: Option<FatUuid> = Some(FatUuid([0x7a; 16]));

    #[test]
    fn each_rule_of_safeboot_excludes_a_bank() {
        let ok = |t: &str| eligibility(UUID, Some(&cfg(t)), true);
        assert_eq!(ok("build=4.0.0-1\nupdated=1"), Ok(()));
        assert_eq!(ok("build=4.0.0-1\nupdated=1\nbootstate=1"), Ok(()));
        assert_eq!(
            ok("build=4.0.0-1\nupdated=1\nbootstate=2"),
            Err(Exclusion::Bootstate(2))
        );
        assert_eq!(
            ok("build=4.0.0-1\nupdated=1\nbootstate=3"),
            Err(Exclusion::Bootstate(3))
        );
        assert_eq!(ok("build=4.0.0-1\nupdated=0"), Err(Exclusion::NotUpdated));
        assert_eq!(ok("build=4.0.0-1"), Err(Exclusion::NotUpdated));
        assert_eq!(ok("build=\nupdated=1"), Err(Exclusion::NoBuild));
        assert_eq!(ok("build=x4\nupdated=1"), Err(Exclusion::NoBuild));
        assert_eq!(
            ok("build=4.0.0-1\nupdated=1\nquickboot=1"),
            Err(Exclusion::Quickboot(1))
        );
        let good = cfg("build=4.0.0-1\nupdated=1");
        assert_eq!(
            eligibility(None, Some(&good), true),
            Err(Exclusion::NoUuidSector)
        );
        assert_eq!(eligibility(None, Some(&good), false), Ok(()));
        assert_eq!(eligibility(UUID, None, true), Err(Exclusion::NoBootCfg));
    }

    #[test]
    fn the_highest_updated_wins_and_ties_go_to_the_first() {
        assert_eq!(choose([(5, 1, true), (6, 2, true)]), Some(6));
        assert_eq!(choose([(5, 2, true), (6, 2, true)]), Some(5));
        assert_eq!(choose([(5, 1, true), (6, 9, false)]), Some(5));
        assert_eq!(choose([(5, 1, false), (6, 9, false)]), None);
    }
}
