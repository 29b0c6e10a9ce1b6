//! Installer ISOs → installer sticks (issue #17), the oracle side: the
//! ESXi 5+ installer ISO fixtures (`scripts/make-installer-fixture`, built
//! with xorriso, GRUB and ISOLINUX only) are what they claim to be, and a
//! stick made from one BY HAND with VMware's procedure
//! (`scripts/reference-installer`: sfdisk, mkfs.fat, xorriso, mcopy) boots
//! under OVMF as a USB stick to the fixture's GRUB stub, which finds
//! /EFI/BOOT/BOOT.CFG on its own volume — and does not when the file is
//! removed (the negative control), even with another stick holding one.
//! None of these tests runs esxstick: they prove the fixtures and the
//! harness (`installer_fixture`, `Ovmf`, `iso_files`, `fat_files`,
//! `fat_long_names`, `fat_file_offset`, `fsck_fat` in tests/common) that
//! the feature's tests build on, including that each oracle helper can
//! fail.
//!
//! The esxstick-based tests the feature adds here (branch `installer`):
//! * `inspect` of esxi7/esxi8/customized shows an installer with its build
//!   (7.0.3-0.35.19482537, 8.0.2-0.0.22380479), kernel /b.b00, every module
//!   present (customized: net_r816.v00 too), boot options, UEFI and BIOS;
//!   missing-module names /tpm.v00 missing; bad-module names K.B00 damaged
//!   (exit 2, as `gzip -t` rejects it); not-installer is refused.
//! * `plan ISO --size 256M`: MBR, one primary FAT32 partition, type 0x0C,
//!   active, at 2048 (1 MiB aligned), as sfdisk reads it after `write`.
//! * `extract ISO DIR` equals `iso_files` (xorriso's extraction).
//! * `write ISO STICK` (esxi7, esxi7-nobootcfg, esxi8, customized): the
//!   stick boots under `Ovmf::boot_usb` to BOOTCFG_FOUND and `Ovmf::boot_cfg`
//!   equals the ISO's BOOT.CFG (with mdel of EFI/BOOT/BOOT.CFG on a copy:
//!   BOOTCFG_MISSING, the negative control); `fat_files` equals `iso_files`
//!   plus SYSLINUX.CFG (ISOLINUX.CFG with ` -p 1` on each `APPEND -c` line)
//!   and, for esxi7-nobootcfg, EFI/BOOT/BOOT.CFG equal to /BOOT.CFG;
//!   `fat_long_names` is empty; `fsck_fat` is clean; the partition's hidden
//!   sectors equal its start (minfo); the MBR boot code is SYSLINUX's
//!   mbr.bin (first 440 bytes, dd).
//! * `--kernelopt "ks=usb:/KS.CFG"` lands on the kernelopt= line of both
//!   BOOT.CFGs (mcopy) and in what the GRUB stub prints.
//! * a byte flipped in place in a module on the stick (`fat_file_offset`)
//!   fails `verify STICK` and `verify STICK --against ISO`, naming the
//!   file.
//! * `--syslinux PATH` absent: a UEFI-only stick, said so.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;
use sha2::{Digest, Sha256};

/// The variants that are installer media (all but `not-installer`).
const INSTALLERS: [&str; 6] = [
    "esxi7",
    "esxi7-nobootcfg",
    "esxi8",
    "customized",
    "missing-module",
    "bad-module",
];

/// Start and size of the hand-made sticks' one partition (256 MiB stick).
const PART: (u64, u64) = (2048, 256 * 2048 - 2048);

/// A stick made by hand from installer fixture `variant` with
/// scripts/reference-installer, in a fresh scratch dir named `tag`.
fn hand_stick(tag: &str, variant: &str) -> (PathBuf, PathBuf) {
    let dir = scratch(&format!("installer-{tag}"));
    let stick = dir.join("stick.img");
    reference_installer(&installer_fixture(variant), &stick, "256M");
    (dir, stick)
}

/// `mdel` of a file on the stick's partition.
fn mdel(stick: &Path, name: &str) {
    oracle(
        "mdel",
        &["-i", &mtools_image(stick, PART.0), &format!("::/{name}")],
    );
}

/// A text file of the stick's partition (mcopy).
fn fat_text(stick: &Path, name: &str) -> String {
    String::from_utf8(mcopy_file(stick, 1, name)).expect("utf-8 text")
}

#[test]
fn a_hand_made_stick_boots_to_the_stub_which_finds_boot_cfg_and_not_without_it() {
    let (dir, stick) = hand_stick("boot", "esxi7");
    let iso = iso_files(&installer_fixture("esxi7"), &dir.join("iso"));
    let want: Vec<String> = fs::read_to_string(dir.join("iso/EFI/BOOT/BOOT.CFG"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert!(iso.contains_key("EFI/BOOT/BOOT.CFG"));

    let boot = Ovmf::boot_usb(&stick);
    assert!(boot.exited, "the stub did not halt:\n{}", boot.serial);
    assert_eq!(
        boot.grub_cmdpath(),
        Some("(hd0,msdos1)/EFI/BOOT"),
        "{}",
        boot.serial
    );
    assert!(boot.shows(BOOTCFG_FOUND), "{}", boot.serial);
    assert!(!boot.shows(BOOTCFG_MISSING), "{}", boot.serial);
    assert_eq!(boot.boot_cfg(), Some(want), "{}", boot.serial);

    // Negative control: the same stick without /EFI/BOOT/BOOT.CFG (the
    // root's BOOT.CFG stays) — and beside it a second stick that does hold
    // /EFI/BOOT/BOOT.CFG (but no loader): the stub looks only at its own
    // volume.
    mdel(&stick, "EFI/BOOT/BOOT.CFG");
    let decoy = dir.join("decoy.img");
    sparse(&decoy, 64 << 20);
    let at = mtools_image(&decoy, 0);
    oracle("mformat", &["-i", &at, "-F", "::"]);
    oracle("mmd", &["-i", &at, "::/EFI", "::/EFI/BOOT"]);
    let cfg = dir.join("iso/EFI/BOOT/BOOT.CFG");
    oracle(
        "mcopy",
        &["-i", &at, cfg.to_str().unwrap(), "::/EFI/BOOT/BOOT.CFG"],
    );
    let boot = Ovmf::boot_usb_sticks(&[&stick, &decoy]);
    assert!(boot.exited, "the stub did not halt:\n{}", boot.serial);
    assert_eq!(
        boot.grub_cmdpath(),
        Some("(hd0,msdos1)/EFI/BOOT"),
        "{}",
        boot.serial
    );
    assert!(boot.shows(BOOTCFG_MISSING), "{}", boot.serial);
    assert!(!boot.shows(BOOTCFG_FOUND), "{}", boot.serial);
    assert_eq!(boot.boot_cfg(), None);
}

#[test]
fn a_hand_made_stick_holds_every_iso_file_by_its_8_3_name_on_a_clean_fat32() {
    for variant in ["esxi7", "esxi7-nobootcfg"] {
        let (dir, stick) = hand_stick(&format!("files-{variant}"), variant);
        let iso = iso_files(&installer_fixture(variant), &dir.join("iso"));
        let fat = fat_files(&stick, PART.0);

        let mut want = iso.clone();
        let isolinux = fs::read_to_string(dir.join("iso/ISOLINUX.CFG")).unwrap();
        let syslinux = isolinux.replace("APPEND -c boot.cfg\n", "APPEND -c boot.cfg -p 1\n");
        assert_ne!(syslinux, isolinux, "ISOLINUX.CFG has VMware's APPEND line");
        assert_eq!(fat_text(&stick, "SYSLINUX.CFG"), syslinux);
        want.insert("SYSLINUX.CFG".into(), fat["SYSLINUX.CFG"].clone());
        if variant == "esxi7-nobootcfg" {
            assert!(!iso.contains_key("EFI/BOOT/BOOT.CFG"));
            want.insert("EFI/BOOT/BOOT.CFG".into(), iso["BOOT.CFG"].clone());
        }
        assert_eq!(
            fat, want,
            "{variant}: the stick's files (mcopy) and the ISO's (xorriso)"
        );
        assert!(fat.keys().all(|k| k == &k.to_uppercase()), "{fat:?}");
        assert_eq!(fat_long_names(&stick, PART.0), Vec::<String>::new());
        assert_eq!(fsck_fat(&stick, PART), None);

        let sf = stdout(&oracle("sfdisk", &["-d", stick.to_str().unwrap()]));
        assert!(
            sf.contains("stick.img1 : start=        2048, size=      522240, type=c, bootable"),
            "{sf}"
        );
        let minfo = stdout(&oracle("minfo", &["-i", &mtools_image(&stick, PART.0)]));
        assert!(minfo.contains("hidden sectors: 2048"), "{minfo}");
        let mbr = fs::read("/usr/lib/syslinux/mbr/mbr.bin").expect("syslinux-common's mbr.bin");
        let head = oracle(
            "dd",
            &[
                &format!("if={}", stick.display()),
                "bs=440",
                "count=1",
                "status=none",
            ],
        );
        assert_eq!(head.stdout[..], mbr[..440], "SYSLINUX's MBR boot code");
        assert!(minfo.contains("disk type=\"FAT32   \""), "{minfo}");
    }
}

#[test]
fn the_oracle_helpers_see_damage() {
    let (dir, stick) = hand_stick("helpers", "esxi7");
    let before = fat_files(&stick, PART.0);
    assert!(fat_long_names(&stick, PART.0).is_empty());
    assert_eq!(fsck_fat(&stick, PART), None);

    // A byte of K.B00 flipped in place (its FAT and directory untouched),
    // where fat_file_offset places it: mcopy reads exactly that byte
    // changed, and fat_files sees it.
    let k = mcopy_file(&stick, 1, "K.B00");
    let at = fat_file_offset(&stick, PART.0, "K.B00") + 1000;
    let file = fs::OpenOptions::new().write(true).open(&stick).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &[k[1000] ^ 0x01], at).unwrap();
    let mut want = k.clone();
    want[1000] ^= 0x01;
    assert!(
        mcopy_file(&stick, 1, "K.B00") == want,
        "not the byte at {at}"
    );
    let after = fat_files(&stick, PART.0);
    assert_ne!(after["K.B00"], before["K.B00"]);
    assert_eq!(after.len(), before.len());
    assert_eq!(fsck_fat(&stick, PART), None, "file data is not metadata");

    // A long name: mcopy gives "Long Name.txt" a VFAT entry.
    let long = dir.join("Long Name.txt");
    fs::write(&long, "x").unwrap();
    oracle(
        "mcopy",
        &[
            "-i",
            &mtools_image(&stick, PART.0),
            long.to_str().unwrap(),
            "::/EFI/BOOT/",
        ],
    );
    let names = fat_long_names(&stick, PART.0);
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].ends_with("-> Long Name.txt"), "{names:?}");

    // Cluster 10's entry in the first FAT (after the reserved sectors, as
    // minfo reads them) pointed far past the volume: fsck.fat objects.
    let minfo = stdout(&oracle("minfo", &["-i", &mtools_image(&stick, PART.0)]));
    let reserved: u64 = minfo
        .lines()
        .find_map(|l| l.strip_prefix("reserved (boot) sectors: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("minfo: no reserved sectors\n{minfo}"));
    let fat_at = (PART.0 + reserved) * 512 + 10 * 4;
    std::os::unix::fs::FileExt::write_all_at(
        &fs::OpenOptions::new().write(true).open(&stick).unwrap(),
        &[0x11, 0x22, 0x33, 0x04],
        fat_at,
    )
    .unwrap();
    let report = fsck_fat(&stick, PART).expect("fsck.fat finds the damaged FAT");
    assert!(report.contains("out of range"), "{report}");
}

#[test]
fn the_installer_fixtures_are_what_they_claim() {
    for variant in INSTALLERS {
        let iso_path = installer_fixture(variant);
        let dir = scratch(&format!("installer-fixture-{variant}"));
        let iso = iso_files(&iso_path, &dir);
        for name in [
            "BOOT.CFG",
            "ISOLINUX.CFG",
            "ISOLINUX.BIN",
            "MBOOT.C32",
            "MENU.C32",
            "BOOT.CAT",
            "EFIBOOT.IMG",
            "EFI/BOOT/BOOTX64.EFI",
            "EFI/BOOT/CRYPTO64.EFI",
        ] {
            assert!(iso.contains_key(name), "{variant}: {name} missing");
        }
        assert_eq!(
            iso.contains_key("EFI/BOOT/BOOT.CFG"),
            variant != "esxi7-nobootcfg",
            "{variant}"
        );
        // Upper-case 8.3 names in the ISO 9660 tree itself (xorriso reading
        // only ECMA-119 records, unmapped: `;1` versions kept).
        let raw = stdout(&oracle(
            "xorriso",
            &[
                "-read_fs",
                "ecma119",
                "-ecma119_map",
                "unmapped",
                "-indev",
                iso_path.to_str().unwrap(),
                "-find",
                "/",
                "-not",
                "-type",
                "d",
            ],
        ));
        let names: Vec<&str> = raw.lines().filter(|l| l.starts_with("'/")).collect();
        assert_eq!(names.len(), iso.len(), "{variant}: {raw}");
        for n in &names {
            let leaf = n.trim_matches('\'').rsplit('/').next().unwrap();
            let (base, version) = leaf.split_once(';').unwrap_or((leaf, ""));
            let (stem, ext) = base.split_once('.').unwrap_or((base, ""));
            assert_eq!(version, "1", "{variant}: {n}");
            assert!(
                stem.len() <= 8
                    && ext.len() <= 3
                    && base
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || "._".contains(c)),
                "{variant}: {n} is not an upper-case 8.3 name"
            );
        }
        // El Torito: BIOS boots ISOLINUX.BIN, UEFI boots EFIBOOT.IMG, a
        // FAT image holding the same BOOTX64.EFI.
        let torito = stdout(&oracle(
            "xorriso",
            &[
                "-indev",
                iso_path.to_str().unwrap(),
                "-report_el_torito",
                "plain",
            ],
        ));
        assert!(
            torito.contains("El Torito img path :   1  /ISOLINUX.BIN"),
            "{torito}"
        );
        assert!(
            torito.contains("El Torito img path :   2  /EFIBOOT.IMG"),
            "{torito}"
        );
        let efi = oracle(
            "mcopy",
            &[
                "-n",
                "-i",
                dir.join("EFIBOOT.IMG").to_str().unwrap(),
                "::/EFI/BOOT/BOOTX64.EFI",
                "-",
            ],
        );
        assert_eq!(
            format!("{:x}", Sha256::digest(&efi.stdout)),
            iso["EFI/BOOT/BOOTX64.EFI"],
            "{variant}: EFIBOOT.IMG's BOOTX64.EFI"
        );
        // BOOT.CFG: kernel and modules by lower-case path, each a gzip
        // stream gzip -t accepts, but for the broken variants' one module.
        let cfg = fs::read_to_string(dir.join("BOOT.CFG")).unwrap();
        let key = |k: &str| {
            cfg.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap_or_else(|| panic!("{variant}: no {k}= in {cfg}"))
                .to_string()
        };
        assert_eq!(key("kernel"), "/b.b00");
        assert_eq!(key("kernelopt"), "runweasel cdromBoot");
        let build = if variant == "esxi8" {
            "8.0.2-0.0.22380479"
        } else {
            "7.0.3-0.35.19482537"
        };
        assert_eq!(key("build"), build);
        let modules: Vec<String> = key("modules").split(" --- ").map(str::to_string).collect();
        assert!(modules.len() >= 13, "{variant}: {modules:?}");
        assert_eq!(
            modules.contains(&"/net_r816.v00".to_string()),
            variant == "customized"
        );
        if let Some(efi_cfg) = iso.get("EFI/BOOT/BOOT.CFG") {
            assert_eq!(efi_cfg, &iso["BOOT.CFG"], "{variant}: the two BOOT.CFGs");
        }
        for path in std::iter::once(key("kernel")).chain(modules) {
            let name = path.trim_start_matches('/').to_uppercase();
            if variant == "missing-module" && name == "TPM.V00" {
                assert!(!iso.contains_key(&name));
                continue;
            }
            assert!(iso.contains_key(&name), "{variant}: {name} missing");
            let ok = std::process::Command::new("gzip")
                .args(["-t", dir.join(&name).to_str().unwrap()])
                .output()
                .expect("oracle gzip")
                .status
                .success();
            assert_eq!(
                ok,
                !(variant == "bad-module" && name == "K.B00"),
                "{variant}: gzip -t {name}"
            );
        }
        let s = fs::metadata(dir.join("S.V00")).unwrap().len();
        assert!(s > 30 << 20, "{variant}: S.V00 is {s} bytes");
    }

    let dir = scratch("installer-fixture-not-installer");
    let iso = iso_files(&installer_fixture("not-installer"), &dir);
    assert!(!iso.is_empty());
    for name in [
        "BOOT.CFG",
        "ISOLINUX.CFG",
        "MBOOT.C32",
        "EFI/BOOT/BOOTX64.EFI",
    ] {
        assert!(!iso.contains_key(name), "not-installer: {name}");
    }
}
