//! Written sticks boot in VMware's own ESXi loader (the esx-boot oracle:
//! safeboot and mboot of vmware/esx-boot under QEMU + OVMF). The loader
//! counts a partition as a bank only by its VMware FAT UUID sector, so a
//! stick boots only if esxstick writes that sector: the loader must choose
//! bank 5, load every module and hand the kernel `bootUUID=` equal to the
//! UUID that dd reads from the stick, to what `inspect` reports, and to the
//! source's active bank's UUID (or, with --new-uuids or from a hand-made
//! source, a fresh one marked as USB media). Zeroing that sector on a copy
//! makes the loader find no bank: the negative control of every case.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;
use serde_json::Value;

/// Writes `variant` with `layout` to a new image file of `size`.
fn write_stick(tag: &str, variant: &str, layout: &str, size: &str, extra: &[&str]) -> PathBuf {
    let source = fixture(variant);
    let dir = scratch(&format!("esxboot-{tag}"));
    let stick = dir.join("stick.img");
    let mut args = vec!["write", source.to_str().unwrap(), stick.to_str().unwrap()];
    args.extend(["--size", size, "--layout", layout, "--yes", "--quiet"]);
    args.extend(extra);
    let out = esxstick(&args);
    assert!(
        out.status.success(),
        "write {variant} {layout}: {}",
        stderr(&out)
    );
    stick
}

/// `banks[partition n].uuid` of `inspect --json`.
fn inspected_uuid(image: &Path, n: u64) -> Value {
    let inv = inspect_json(image);
    let bank = inv["banks"]
        .as_array()
        .expect("banks array")
        .iter()
        .find(|b| b["partition"] == n)
        .unwrap_or_else(|| panic!("no bank {n}: {}", inv["banks"]))
        .clone();
    bank.get("uuid")
        .unwrap_or_else(|| panic!("bank {n} has no uuid field: {bank}"))
        .clone()
}

/// The loader boots bank 5 of `stick` with its UUID: kernel reached,
/// `bootUUID=` equal to the sector dd reads and to `inspect`'s
/// banks[5].uuid. Returns that UUID.
pub(crate) fn boots_bank5(stick: &Path) -> String {
    let boot = EsxBoot::run(stick, Some(5));
    let report = boot.report();
    assert_eq!(boot.result(), "kernel-reached", "{report}");
    assert_eq!(boot.chosen(), Some("5"), "{report}");
    let on_disk = partition_uuid(stick, 5).expect("bank 5 has the UUID sector");
    assert_eq!(boot.boot_uuid(), Some(on_disk.as_str()), "{report}");
    assert_eq!(inspected_uuid(stick, 5), on_disk.as_str(), "inspect");
    on_disk
}

/// Negative control: a copy of `stick` with bank 5's UUID sector zeroed
/// by dd boots nothing: the loader finds no bank.
pub(crate) fn no_bank_without_the_sector(stick: &Path) {
    let copy = stick.with_file_name("no-uuid-sector.img");
    fs::copy(stick, &copy).unwrap();
    let sector = sfdisk_start(&copy, 5) + 1;
    oracle(
        "dd",
        &[
            "if=/dev/zero",
            &format!("of={}", copy.display()),
            "bs=512",
            &format!("seek={sector}"),
            "count=1",
            "conv=notrunc",
            "status=none",
        ],
    );
    assert_eq!(partition_uuid(&copy, 5), None);
    let boot = EsxBoot::run(&copy, None);
    assert_eq!(boot.chosen(), Some("none"), "{}", boot.report());
    assert_eq!(boot.result(), "no-bank", "{}", boot.report());
}

/// The high nibble of the UUID's first byte: 0x7 disks, 0xe USB media.
fn kind_nibble(uuid: &str) -> char {
    uuid.chars().next().expect("a UUID")
}

/// A stick written with `layout` from `variant`, whose active bank is
/// `active`, boots in the loader with the source bank's UUID, and not
/// without its UUID sector. Returns the stick.
fn boots_with_the_source_uuid(variant: &str, layout: &str, size: &str, active: u64) -> PathBuf {
    let stick = write_stick(&format!("{variant}-{layout}"), variant, layout, size, &[]);
    let uuid = boots_bank5(&stick);
    let source = partition_uuid(&fixture(variant), active).expect("the fixture's UUID");
    assert_eq!(uuid, source, "bank 5 keeps the source bank {active}'s UUID");
    no_bank_without_the_sector(&stick);
    stick
}

#[test]
fn esxi_native_stick_boots_in_the_vmware_loader() {
    boots_with_the_source_uuid("esxi40", "esxi-native", "64M", 5);
}

#[test]
fn vcritical_stick_boots_in_the_vmware_loader() {
    boots_with_the_source_uuid("esxi40", "vcritical-64mb", "64M", 5);
}

#[test]
fn aligned_stick_boots_in_the_vmware_loader() {
    boots_with_the_source_uuid("esxi40", "aligned-1m", "64M", 5);
}

/// dual-bank does not fit 64M (plan: needs 113,536,512 bytes), so 128M.
#[test]
fn dual_bank_stick_boots_bank5_and_keeps_both_uuids() {
    let stick = boots_with_the_source_uuid("esxi40", "dual-bank", "128M", 5);
    let (five, six) = (partition_uuid(&stick, 5), partition_uuid(&stick, 6));
    let six = six.expect("bank 6 has the UUID sector too");
    assert_ne!(five.as_deref(), Some(six.as_str()), "banks differ");
    assert_eq!(Some(six), partition_uuid(&fixture("esxi40"), 6));
}

#[test]
fn gpt_stick_boots_in_the_vmware_loader() {
    boots_with_the_source_uuid("gpt", "gpt-minimal", "64M", 5);
}

/// alt-active's active bank is 6 (updated=2; the loader's own choice in
/// `fixtures_boot_in_the_vmware_loader`): the stick's bank 5 carries
/// bank 6's UUID.
#[test]
fn stick_from_bank6_boots_with_bank6s_uuid() {
    boots_with_the_source_uuid("alt-active", "esxi-native", "64M", 6);
}

/// The fixtures themselves boot in the loader: the bank it chooses, and
/// the UUID it passes, are those the tests above compare sticks with.
#[test]
fn fixtures_boot_in_the_vmware_loader() {
    for (variant, bank) in [("esxi40", 5), ("gpt", 5), ("alt-active", 6)] {
        let image = fixture(variant);
        let boot = EsxBoot::run(&image, Some(bank));
        let report = boot.report();
        assert_eq!(boot.result(), "kernel-reached", "{variant}: {report}");
        assert_eq!(boot.chosen(), Some(bank.to_string().as_str()), "{report}");
        let uuid = partition_uuid(&image, bank).expect("the fixture's UUID");
        assert_eq!(boot.boot_uuid(), Some(uuid.as_str()), "{report}");
        assert_eq!(kind_nibble(&uuid), '7', "a disk's UUID");
    }
}

/// --new-uuids: both banks get fresh UUIDs marked as USB media (0xe),
/// different from each other and from every source bank's, and the
/// loader boots bank 5 with its new UUID.
#[test]
fn new_uuids_are_fresh_usb_uuids_and_boot() {
    let stick = write_stick("new-uuids", "esxi40", "dual-bank", "128M", &["--new-uuids"]);
    let uuid = boots_bank5(&stick);
    let source = fixture("esxi40");
    let old = [5, 6, 8].map(|n| partition_uuid(&source, n));
    let six = partition_uuid(&stick, 6).expect("bank 6 has the UUID sector");
    assert_ne!(uuid, six, "banks differ");
    for new in [&uuid, &six] {
        assert_eq!(kind_nibble(new), 'e', "{new}: USB media");
        assert!(!old.contains(&Some(new.clone())), "{new} is the source's");
    }
}

/// A hand-made source has no UUID sector: the stick's bank 5 gets a fresh
/// USB-media UUID, and the stick boots where the source would not.
#[test]
fn handmade_source_gives_a_stick_that_boots() {
    let stick = write_stick("handmade", "handmade", "esxi-native", "64M", &[]);
    let uuid = boots_bank5(&stick);
    assert_eq!(kind_nibble(&uuid), 'e', "{uuid}: USB media");
}
