//! Installer ISOs → installer sticks (issue #17), esxstick's side: on the
//! xorriso-built ESXi 7/8-shaped installer fixtures
//! (`scripts/make-installer-fixture`), `inspect`, `plan`, `extract`,
//! `write` and `verify` do what the issue asks, proven with the
//! independent oracles of tests/common — OVMF booting the written stick
//! as a USB stick to the fixture's GRUB stub (and not without
//! /EFI/BOOT/BOOT.CFG: the negative control), xorriso's and mtools' file
//! hashes, mdir's long names, fsck.fat, sfdisk, minfo and dd.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;

/// The stick's one partition on a 256 MiB target: from 1 MiB to the end.
const PART: (u64, u64) = (2048, 256 * 2048 - 2048);
/// SYSLINUX's MBR boot code (syslinux-common), the oracle for sector 0.
const MBR_BIN: &str = "/usr/lib/syslinux/mbr/mbr.bin";
/// The line write prints before writing a stick without --syslinux.
const UEFI_ONLY: &str = "note: UEFI-only stick: BIOS needs SYSLINUX 3.86-4.07, --syslinux PATH";

/// `esxstick write ISO STICK --size 256M --yes` (plus `extra`) of
/// installer fixture `variant` into a fresh scratch dir `tag`: the dir,
/// the stick, and the output.
fn write(tag: &str, variant: &str, extra: &[&str]) -> (PathBuf, PathBuf, std::process::Output) {
    let dir = scratch(&format!("installer-write-{tag}"));
    let stick = dir.join("stick.img");
    let iso = installer_fixture(variant);
    let mut args = vec![
        "write",
        iso.to_str().unwrap(),
        stick.to_str().unwrap(),
        "--size",
        "256M",
        "--yes",
    ];
    args.extend_from_slice(extra);
    let out = esxstick(&args);
    (dir, stick, out)
}

/// `write` that must succeed.
fn written(tag: &str, variant: &str, extra: &[&str]) -> (PathBuf, PathBuf, String) {
    let (dir, stick, out) = write(tag, variant, extra);
    assert!(
        out.status.success(),
        "write failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    (dir, stick, stderr(&out))
}

/// A text file of the stick's partition, read with mcopy.
fn fat_text(stick: &Path, name: &str) -> String {
    let at = mtools_image(stick, PART.0);
    String::from_utf8(oracle("mcopy", &["-n", "-i", &at, &format!("::/{name}"), "-"]).stdout)
        .expect("utf-8 text")
}

/// `esxstick verify STICK [--against ISO] [extra]`.
fn verify(stick: &Path, against: Option<&Path>, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["verify", stick.to_str().unwrap()];
    if let Some(iso) = against {
        args.extend(["--against", iso.to_str().unwrap()]);
    }
    args.extend_from_slice(extra);
    esxstick(&args)
}

/// Whether sfdisk finds a partition table on `image`.
fn has_table(image: &Path) -> bool {
    std::process::Command::new("sfdisk")
        .args(["-d", image.to_str().unwrap()])
        .output()
        .expect("oracle sfdisk cannot run: run scripts/install-deps")
        .status
        .success()
}

#[test]
fn inspect_shows_an_installer_and_what_it_lacks() {
    let out = esxstick(&["inspect", installer_fixture("esxi7").to_str().unwrap()]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    for want in [
        "ESXi 7.0.3 build 7.0.3-0.35.19482537",
        "boots: UEFI (EFI/BOOT/BOOTX64.EFI) and BIOS",
        "kernel: b.b00",
        "boot options (kernelopt): runweasel cdromBoot",
        "s.v00",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
    let json = inspect_json(&installer_fixture("esxi8"));
    assert_eq!(json["kind"], "installer-iso");
    assert_eq!(json["build"], "8.0.2-0.0.22380479");
    assert_eq!(
        (json["uefi"].as_bool(), json["bios"].as_bool()),
        (Some(true), Some(true))
    );

    let missing = esxstick(&[
        "inspect",
        installer_fixture("missing-module").to_str().unwrap(),
    ]);
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
    assert!(stdout(&missing).contains("tpm.v00"), "{}", stdout(&missing));
    assert!(stderr(&missing).contains("tpm.v00 missing") || stderr(&missing).contains("tpm.v00"));
    assert!(stdout(&missing).contains("missing"), "{}", stdout(&missing));

    // The damaged module is the one `gzip -t` rejects.
    let bad = esxstick(&["inspect", installer_fixture("bad-module").to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains("module K.B00: damaged gzip stream"),
        "{}",
        stderr(&bad)
    );
    let dir = scratch("installer-write-inspect");
    xorriso_extract(&installer_fixture("bad-module"), &dir);
    let gzip = std::process::Command::new("gzip")
        .args(["-t", dir.join("K.B00").to_str().unwrap()])
        .output()
        .expect("oracle gzip");
    assert!(!gzip.status.success(), "gzip -t passes K.B00");

    let none = esxstick(&[
        "inspect",
        installer_fixture("not-installer").to_str().unwrap(),
    ]);
    assert_refused(&none, "holds no ESXi dd image");
}

#[test]
fn plan_is_one_active_fat32_partition_and_a_small_target_is_refused() {
    let iso = installer_fixture("esxi7");
    let out = esxstick(&["plan", iso.to_str().unwrap(), "--size", "256M", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["layout"], "installer-fat32");
    let p = &plan["partitions"][0];
    assert_eq!(
        (p["entry"].as_u64(), p["type"].as_str()),
        (Some(1), Some("0x0c"))
    );
    assert_eq!(
        (p["start"].as_u64(), p["active"].as_bool()),
        (Some(2048), Some(true))
    );
    assert_eq!(plan["partitions"].as_array().map(Vec::len), Some(1));
    let text = stdout(&esxstick(&[
        "plan",
        iso.to_str().unwrap(),
        "--size",
        "256M",
    ]));
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");

    let small = esxstick(&["plan", iso.to_str().unwrap(), "--size", "64M"]);
    assert_refused(&small, "does not fit: needs ");
    // The figure is exact: that many bytes fit, one sector less not.
    let err = stderr(&small);
    let needs: String = err
        .split("needs ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_default()
        .replace(',', "");
    assert_eq!(needs, plan["min_target_bytes"].to_string(), "{err}");
    let fits = esxstick(&["plan", iso.to_str().unwrap(), "--size", &needs]);
    assert!(fits.status.success(), "{}", stderr(&fits));
    // Flags of the other kind of source are refused, not ignored.
    let state = esxstick(&[
        "plan",
        iso.to_str().unwrap(),
        "--size",
        "256M",
        "--layout",
        "dual-bank",
    ]);
    assert_refused(
        &state,
        "--layout does not apply to an ESXi 5+ installer ISO",
    );
    let image = fixture("esxi40");
    let ks = esxstick(&[
        "plan",
        image.to_str().unwrap(),
        "--size",
        "64M",
        "--kernelopt",
        "ks=x",
    ]);
    assert_refused(&ks, "--kernelopt applies to ESXi 5+ installer ISOs only");
    let short = (needs.parse::<u64>().unwrap() - 512).to_string();
    assert_eq!(
        esxstick(&["plan", iso.to_str().unwrap(), "--size", &short])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn extract_copies_the_tree_as_xorriso_does() {
    let dir = scratch("installer-write-extract");
    let iso = installer_fixture("esxi7");
    let want = iso_files(&iso, &dir.join("xorriso"));
    let out = esxstick(&[
        "extract",
        iso.to_str().unwrap(),
        dir.join("out").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut got = tree_digests(&dir.join("out"));
    assert!(got.remove("SHA256SUMS").is_some());
    assert_eq!(got, want);
}

#[test]
fn a_written_stick_boots_uefi_holds_every_iso_file_and_verifies() {
    let iso = installer_fixture("esxi7");
    let (dir, stick, err) = written("esxi7", "esxi7", &[]);
    assert!(err.lines().any(|l| l.contains(UEFI_ONLY)), "{err}");

    let sf = stdout(&oracle("sfdisk", &["-d", stick.to_str().unwrap()]));
    assert!(
        sf.contains("stick.img1 : start=        2048, size=      522240, type=c, bootable"),
        "{sf}"
    );
    let mbr = fs::read(&stick).unwrap();
    let code =
        fs::read(MBR_BIN).unwrap_or_else(|e| panic!("{MBR_BIN}: {e}: install syslinux-common"));
    assert_eq!(
        &mbr[..440],
        &code[..440],
        "the MBR boot code is SYSLINUX's mbr.bin"
    );
    let minfo = stdout(&oracle("minfo", &["-i", &mtools_image(&stick, PART.0)]));
    assert!(minfo.contains("hidden sectors: 2048"), "{minfo}");
    assert!(minfo.contains("disk type=\"FAT32   \""), "{minfo}");

    let files = iso_files(&iso, &dir.join("iso"));
    let mut want = files.clone();
    let fat = fat_files(&stick, PART.0);
    let isolinux = fs::read_to_string(dir.join("iso/ISOLINUX.CFG")).unwrap();
    let syslinux = isolinux.replace("APPEND -c boot.cfg\n", "APPEND -c boot.cfg -p 1\n");
    assert_ne!(syslinux, isolinux);
    assert_eq!(fat_text(&stick, "SYSLINUX.CFG"), syslinux);
    want.insert("SYSLINUX.CFG".into(), fat["SYSLINUX.CFG"].clone());
    assert_eq!(
        fat, want,
        "the stick's files (mcopy) and the ISO's (xorriso)"
    );
    assert_eq!(fat_long_names(&stick, PART.0), Vec::<String>::new());
    assert_eq!(fsck_fat(&stick, PART), None);

    for against in [None, Some(iso.as_path())] {
        let out = verify(&stick, against, &[]);
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    }

    let boot = Ovmf::boot_usb(&stick);
    assert!(boot.exited, "the stub did not halt:\n{}", boot.serial);
    assert!(boot.shows(BOOTCFG_FOUND), "{}", boot.serial);
    let cfg = fs::read_to_string(dir.join("iso/EFI/BOOT/BOOT.CFG")).unwrap();
    let lines: Vec<String> = cfg.lines().map(str::to_string).collect();
    assert_eq!(boot.boot_cfg(), Some(lines), "{}", boot.serial);

    // Negative control: the same stick without /EFI/BOOT/BOOT.CFG.
    let control = dir.join("control.img");
    fs::copy(&stick, &control).unwrap();
    oracle(
        "mdel",
        &[
            "-i",
            &mtools_image(&control, PART.0),
            "::/EFI/BOOT/BOOT.CFG",
        ],
    );
    let boot = Ovmf::boot_usb(&control);
    assert!(boot.exited, "the stub did not halt:\n{}", boot.serial);
    assert!(boot.shows(BOOTCFG_MISSING), "{}", boot.serial);
    assert!(!boot.shows(BOOTCFG_FOUND), "{}", boot.serial);
    let out = verify(&control, None, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));

    // SYSLINUX.CFG without -p 1 (the common hand-made mistake): the
    // self-check names it.
    let nop = dir.join("nop.img");
    fs::copy(&stick, &nop).unwrap();
    let cfg = dir.join("SYSLINUX.CFG");
    fs::write(&cfg, &isolinux).unwrap();
    let at = mtools_image(&nop, PART.0);
    oracle(
        "mcopy",
        &["-o", "-i", &at, cfg.to_str().unwrap(), "::/SYSLINUX.CFG"],
    );
    let out = verify(&nop, None, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("FAIL SYSLINUX.CFG: an APPEND -c line lacks -p 1"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_flipped_module_byte_on_the_stick_fails_both_verify_modes() {
    let iso = installer_fixture("esxi7");
    let (_, stick, _) = written("flip", "esxi7", &["--no-verify"]);
    // One byte of K.B00's first cluster flipped in place (bit rot): its
    // FAT and directory untouched. mcopy sees the change.
    let before = fat_files(&stick, PART.0);
    let at = fat_file_offset(&stick, PART.0, "K.B00") + 1000;
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&stick)
        .unwrap();
    let mut byte = [0u8; 1];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut byte, at).unwrap();
    byte[0] ^= 0x01;
    std::os::unix::fs::FileExt::write_all_at(&file, &byte, at).unwrap();
    drop(file);
    let after = fat_files(&stick, PART.0);
    assert_ne!(after["K.B00"], before["K.B00"]);
    assert_eq!(after.len(), before.len());
    for against in [None, Some(iso.as_path())] {
        let out = verify(&stick, against, &[]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}{}",
            stdout(&out),
            stderr(&out)
        );
        let text = stdout(&out);
        let fails: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL")).collect();
        assert!(!fails.is_empty(), "{text}");
        assert!(
            fails
                .iter()
                .all(|l| l.to_ascii_uppercase().contains("K.B00")),
            "{fails:?}"
        );
    }
}

#[test]
fn kernelopt_lands_in_both_boot_cfgs_and_a_missing_efi_boot_cfg_is_made() {
    let iso = installer_fixture("esxi7-nobootcfg");
    let extra = "ks=usb:/KS.CFG allowLegacyCPU=true";
    let (_, stick, _) = written("kernelopt", "esxi7-nobootcfg", &["--kernelopt", extra]);
    let root = fat_text(&stick, "BOOT.CFG");
    let efi = fat_text(&stick, "EFI/BOOT/BOOT.CFG");
    let want = format!("kernelopt=runweasel cdromBoot {extra}");
    assert!(root.lines().any(|l| l == want), "{root}");
    assert_eq!(efi, root, "EFI/BOOT/BOOT.CFG is made from /BOOT.CFG");
    let ok = verify(&stick, Some(&iso), &["--kernelopt", extra]);
    assert!(ok.status.success(), "{}", stdout(&ok));
    let without = verify(&stick, Some(&iso), &[]);
    assert_eq!(without.status.code(), Some(1), "{}", stdout(&without));
}

#[test]
fn isos_that_cannot_make_a_stick_are_refused_before_any_table() {
    // A damaged module: found while it is copied, before the table.
    // (The UEFI-only note comes first: it is said before writing.)
    let (_, stick, out) = write("bad", "bad-module", &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[0].contains(UEFI_ONLY), "{err}");
    assert!(lines[1].contains("K.B00: damaged gzip stream"), "{err}");
    assert!(!has_table(&stick), "a table was written");
    // A module missing from the ISO: refused before anything is written.
    let (_, stick, out) = write("missing", "missing-module", &[]);
    assert_refused(&out, "tpm.v00");
    assert!(!stick.exists());
    let (_, stick, out) = write("not", "not-installer", &[]);
    assert_refused(&out, "holds no ESXi dd image");
    assert!(!stick.exists());
    // Debian's SYSLINUX 6.04 cannot load mboot.c32: refused up front.
    let (_, stick, out) = write("syslinux", "esxi7", &["--syslinux", "/usr/bin/syslinux"]);
    assert_refused(&out, "cannot load VMware's mboot.c32");
    assert!(!stick.exists());
}

/// `esxstick write` of the esxi7 fixture to `stick` (256 MiB, --no-verify)
/// with `ESXSTICK_FAULT=fault`.
fn write_with_fault(stick: &Path, fault: &str) -> std::process::Output {
    let iso = installer_fixture("esxi7");
    std::process::Command::new(env!("CARGO_BIN_EXE_esxstick"))
        .args(["write", iso.to_str().unwrap(), stick.to_str().unwrap()])
        .args(["--size", "256M", "--yes", "--no-verify"])
        .env("ESXSTICK_FAULT", fault)
        .output()
        .expect("run esxstick")
}

#[test]
fn an_injected_write_or_sync_failure_leaves_no_table_and_a_rerun_succeeds() {
    let dir = scratch("installer-write-faults");
    let stick = dir.join("stick.img");
    let (writes, syncs) = fault_counts(&write_with_fault(&stick, "count"));
    assert!(writes > 3 && syncs >= 3, "writes={writes} syncs={syncs}");
    let points = [
        "write:1:eio".to_string(),
        format!("write:{}:eio", writes / 2),
        format!("write:{}:eio", writes - 1),
        format!("write:{writes}:eio"),
        format!("sync:{}:eio", syncs - 1),
        format!("sync:{syncs}:eio"),
    ];
    for point in points {
        let _ = fs::remove_file(&stick);
        let out = write_with_fault(&stick, &point);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{point}: {err}");
        assert!(!err.contains("panicked"), "{point}: {err}");
        let last = err.lines().last().unwrap_or_default();
        assert!(last.contains("writing "), "{point}: {err}");
        // The last sync follows the table: the stick is complete then
        // but not known to be durable; every earlier failure leaves none.
        if point != format!("sync:{syncs}:eio") {
            assert!(!has_table(&stick), "{point}: a table was written");
        }
    }
    // A short write is carried on where it stopped: the stick is whole.
    let _ = fs::remove_file(&stick);
    let out = write_with_fault(&stick, &format!("write:{}:short", writes / 2));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fsck_fat(&stick, PART), None);
    let out = verify(&stick, Some(&installer_fixture("esxi7")), &[]);
    assert!(out.status.success(), "{}", stdout(&out));
}

#[test]
fn a_syslinux_of_a_version_that_loads_mboot_is_run_on_the_partition() {
    // A stand-in `syslinux` 4.07: it says its version, fails if the
    // partition table is there already (it must run before the table,
    // written last), records how it is run, and installs as SYSLINUX
    // does a file LDLINUX.SYS (mcopy).
    let dir = scratch("installer-write-syslinux-fake");
    let fake = dir.join("syslinux");
    let log = dir.join("args");
    fs::write(
        &fake,
        format!(
            "#!/bin/sh\n\
             [ \"$1\" = --version ] && {{ echo \"$0 4.07  Copyright 1994-2013 H. Peter Anvin et al\" >&2; exit 0; }}\n\
             sfdisk -d \"$4\" >/dev/null 2>&1 && {{ echo the table is there already >&2; exit 1; }}\n\
             echo \"$@\" > {log}\n\
             echo ldlinux > {dir}/LDLINUX.SYS\n\
             MTOOLS_SKIP_CHECK=1 mcopy -i \"$4@@$3\" {dir}/LDLINUX.SYS ::/LDLINUX.SYS\n",
            log = log.display(),
            dir = dir.display()
        ),
    )
    .unwrap();
    oracle("chmod", &["+x", fake.to_str().unwrap()]);
    let (_, stick, err) = written("syslinux", "esxi7", &["--syslinux", fake.to_str().unwrap()]);
    assert!(!err.contains(UEFI_ONLY), "{err}");
    let args = fs::read_to_string(&log).expect("the stand-in syslinux ran");
    assert_eq!(
        args.trim(),
        format!("--install --offset 1048576 {}", stick.display())
    );
    assert_eq!(fat_text(&stick, "LDLINUX.SYS"), "ldlinux\n");
    assert_eq!(fsck_fat(&stick, PART), None);
}

#[test]
fn esxi8_and_customized_isos_make_sticks_too() {
    for variant in ["esxi8", "customized"] {
        let iso = installer_fixture(variant);
        let (dir, stick, _) = written(variant, variant, &[]);
        let mut want = iso_files(&iso, &dir.join("iso"));
        let fat = fat_files(&stick, PART.0);
        want.insert("SYSLINUX.CFG".into(), fat["SYSLINUX.CFG"].clone());
        assert_eq!(fat, want, "{variant}: the stick's files and the ISO's");
        assert_eq!(fsck_fat(&stick, PART), None, "{variant}");
        assert_eq!(fat_long_names(&stick, PART.0), Vec::<String>::new());
        if variant == "esxi8" {
            let boot = Ovmf::boot_usb(&stick);
            assert!(boot.shows(BOOTCFG_FOUND), "{}", boot.serial);
            let cfg = fs::read_to_string(dir.join("iso/EFI/BOOT/BOOT.CFG")).unwrap();
            let lines: Vec<String> = cfg.lines().map(str::to_string).collect();
            assert_eq!(boot.boot_cfg(), Some(lines), "{}", boot.serial);
        }
    }
}

#[test]
fn several_targets_get_the_same_installer_stick_and_one_failing_stops_alone() {
    let iso = installer_fixture("esxi7");
    let dir = scratch("installer-write-many");
    let sticks: Vec<PathBuf> = (0..3).map(|i| dir.join(format!("stick{i}.img"))).collect();
    let mut args = vec!["write", iso.to_str().unwrap()];
    args.extend(sticks.iter().map(|s| s.to_str().unwrap()));
    args.extend(["--size", "256M", "--yes", "--json"]);
    // The 3rd write to stick1.img fails with EIO; the others go on.
    let out = esxstick_env(&args, &[("ESXSTICK_FAULT", "write:3:eio:stick1.img")]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(UEFI_ONLY), "{}", stderr(&out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON list");
    let list = list.as_array().expect("a list of per-target reports");
    assert_eq!(list.len(), 3);
    assert_eq!(list[1]["ok"], false, "{}", list[1]);
    assert_eq!(list[1]["error"]["kind"], "write-failed");
    assert!(!has_table(&sticks[1]), "the failed stick has no table");

    let files = iso_files(&iso, &dir.join("iso"));
    for i in [0, 2] {
        assert_eq!(list[i]["ok"], true, "{}", list[i]);
        let stick = &sticks[i];
        let sf = stdout(&oracle("sfdisk", &["-d", stick.to_str().unwrap()]));
        assert!(
            sf.contains("start=        2048, size=      522240, type=c, bootable"),
            "{sf}"
        );
        let mut fat = fat_files(stick, PART.0);
        assert!(fat.remove("SYSLINUX.CFG").is_some());
        assert_eq!(fat, files, "stick {i} (mcopy) and the ISO (xorriso)");
        assert_eq!(fsck_fat(stick, PART), None);
        let out = verify(stick, Some(&iso), &[]);
        assert!(out.status.success(), "{}", stdout(&out));
    }
    let boot = Ovmf::boot_usb(&sticks[2]);
    assert!(boot.shows(BOOTCFG_FOUND), "{}", boot.serial);
}
