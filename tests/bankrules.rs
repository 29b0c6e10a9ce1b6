//! safeboot's bank rules (../shared/esxi.md §2). Each rule fixture of
//! scripts/make-fixture has two populated banks and one rule that decides
//! between them. VMware's own loader (the esx-boot oracle) proves which
//! bank ESXi boots and which banks it excludes; `inspect` must choose the
//! same bank, report each bank's VMware FAT UUID exactly as dd reads it
//! from the fixture, and say why each excluded bank is excluded.

use std::path::Path;

use crate::common::*;
use serde_json::Value;

/// A rule fixture: the bank ESXi boots (`None`: it finds none) and the
/// banks that the rules exclude (an eligible bank may still lose on
/// `updated=`).
struct Rule {
    variant: &'static str,
    chosen: Option<u64>,
    excluded: &'static [u64],
}

const BANKS: [u64; 2] = [5, 6];

/// The fixture's bank UUIDs as dd reads them (None: no UUID sector).
fn fixture_uuids(image: &Path) -> Vec<Option<String>> {
    BANKS.iter().map(|&n| partition_uuid(image, n)).collect()
}

/// VMware's loader boots the expected bank, hands the kernel that bank's
/// UUID, and excludes exactly the banks the rule excludes.
fn loader_agrees(rule: &Rule) {
    let image = fixture(rule.variant);
    let boot = EsxBoot::run(&image, rule.chosen);
    let report = boot.report();
    match rule.chosen {
        Some(n) => {
            assert_eq!(boot.chosen(), Some(n.to_string().as_str()), "{report}");
            assert_eq!(boot.result(), "kernel-reached", "{report}");
            let uuid = partition_uuid(&image, n).expect("the chosen bank has a UUID sector");
            assert_eq!(boot.boot_uuid(), Some(uuid.as_str()), "{report}");
        }
        None => {
            assert_eq!(boot.chosen(), Some("none"), "{report}");
            assert_eq!(boot.result(), "no-bank", "{report}");
        }
    }
    for n in BANKS {
        let excluded = rule.excluded.contains(&n);
        assert_eq!(boot.eligible(n), !excluded, "bank {n}:\n{report}");
    }
}

/// The `banks[]` entry of partition `n`, which must exist.
fn bank(inv: &Value, n: u64) -> &Value {
    inv["banks"]
        .as_array()
        .expect("banks array")
        .iter()
        .find(|b| b["partition"] == n)
        .unwrap_or_else(|| panic!("no bank {n} in {}", inv["banks"]))
}

/// `banks[].uuid` is the dd-read UUID (null without the sector) and
/// `banks[].excluded` is null for an eligible bank, a reason otherwise.
fn assert_banks(inv: &Value, uuids: &[Option<String>], excluded: &[u64]) {
    for (n, uuid) in BANKS.iter().zip(uuids) {
        let b = bank(inv, *n);
        let want = uuid.as_deref().map_or(Value::Null, Value::from);
        assert_eq!(b.get("uuid"), Some(&want), "bank {n}: {b}");
        let why = b.get("excluded").unwrap_or_else(|| panic!("bank {n}: {b}"));
        if excluded.contains(n) {
            assert!(
                why.as_str().is_some_and(|s| !s.is_empty()),
                "bank {n} needs a reason: {b}"
            );
        } else {
            assert!(why.is_null(), "bank {n} is eligible: {b}");
        }
    }
}

/// `inspect --json` chooses the loader's bank (or, when the loader finds
/// none, refuses and names `updated`, and `--bank 5` still overrides) and
/// describes every bank as the loader sees it.
fn inspect_agrees(rule: &Rule) {
    let image = fixture(rule.variant);
    let path = image.to_str().unwrap();
    let uuids = fixture_uuids(&image);
    let inv = match rule.chosen {
        Some(n) => {
            let inv = inspect_json(&image);
            assert_eq!(inv["active_bank"]["partition"], n, "{}", inv["active_bank"]);
            inv
        }
        None => {
            let refused = esxstick(&["inspect", "--json", path]);
            assert_refused(&refused, "no usable bootbank");
            assert!(stderr(&refused).contains("updated"), "{}", stderr(&refused));
            let forced = esxstick(&["inspect", "--json", "--bank", "5", path]);
            assert!(forced.status.success(), "{}", stderr(&forced));
            let inv: Value = serde_json::from_slice(&forced.stdout).unwrap();
            assert_eq!(inv["active_bank"]["partition"], 5);
            inv
        }
    };
    assert_banks(&inv, &uuids, rule.excluded);
}

/// One module per rule fixture, each with the loader's test and
/// inspect's, so every rule reports on its own and boots run in parallel.
macro_rules! rules {
    ($($name:ident: $variant:literal => $chosen:expr, excluded $excluded:expr;)*) => {$(
        mod $name {
            use super::*;
            const RULE: Rule = Rule {
                variant: $variant,
                chosen: $chosen,
                excluded: &$excluded,
            };
            #[test]
            fn vmware_loader_boots_the_expected_bank() {
                loader_agrees(&RULE);
            }
            #[test]
            fn inspect_chooses_and_describes_banks_as_the_loader() {
                inspect_agrees(&RULE);
            }
        }
    )*};
}

rules! {
    bootstate1: "rule-bootstate1" => Some(6), excluded [];
    bootstate2: "rule-bootstate2" => Some(5), excluded [6];
    bootstate3: "rule-bootstate3" => Some(5), excluded [6];
    updated0: "rule-updated0" => None, excluded [5, 6];
    empty_build: "rule-empty-build" => Some(5), excluded [6];
    no_sector: "rule-no-sector" => Some(5), excluded [6];
    tie: "rule-tie" => Some(5), excluded [];
    bootstate_missing: "rule-bootstate-missing" => Some(6), excluded [];
    quickboot: "rule-quickboot" => Some(5), excluded [6];
    non_numeric: "rule-non-numeric" => Some(5), excluded [6];
    non_numeric_quickboot: "rule-non-numeric-quickboot" => Some(5), excluded [6];
}

/// The hand-made image (banks from plain mkfs.fat): VMware's loader finds
/// no bank at all, which is why the fixtures carry the UUID sector.
#[test]
fn vmware_loader_finds_no_bank_on_a_handmade_image() {
    let image = fixture("handmade");
    assert_eq!(fixture_uuids(&image), [None, None], "no UUID sectors");
    let boot = EsxBoot::run(&image, None);
    assert_eq!(boot.chosen(), Some("none"), "{}", boot.report());
    assert_eq!(boot.result(), "no-bank", "{}", boot.report());
}

/// `inspect` of the hand-made image still chooses bank 5 (what the stick
/// is made from) but warns that ESXi would not find it, and reports no
/// UUID for either bank.
#[test]
fn inspect_warns_that_esxi_would_not_find_a_handmade_bank() {
    let image = fixture("handmade");
    let inv = inspect_json(&image);
    assert_eq!(inv["active_bank"]["partition"], 5);
    for n in BANKS {
        assert_eq!(bank(&inv, n).get("uuid"), Some(&Value::Null), "bank {n}");
    }
    let text = esxstick(&["inspect", image.to_str().unwrap()]);
    assert!(text.status.success(), "{}", stderr(&text));
    assert!(
        stdout(&text)
            .lines()
            .any(|l| l.contains("ESXi would not find")),
        "{}",
        stdout(&text)
    );
}
