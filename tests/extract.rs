//! `extract` against the oracles: files pulled with mcopy, the boot
//! partition pulled with dd-equivalent slicing, and `sha256sum -c`.

use std::fs;
use std::path::Path;

use crate::common::*;

/// Extracts `variant` (optionally forcing a bank) and checks the output
/// against mcopy of bank `bank` and the raw boot partition at `boot_lba`.
fn check_extract(
    variant: &str,
    bank_arg: Option<&str>,
    bank_lba: u64,
    boot_lba: u64,
    boot_sectors: u64,
) {
    let image = fixture(variant);
    let dir = scratch(&format!("extract-{variant}-{}", bank_arg.unwrap_or("auto")));
    let out_dir = dir.join("out");
    let mut args = vec![
        "extract",
        image.to_str().unwrap(),
        out_dir.to_str().unwrap(),
    ];
    if let Some(bank) = bank_arg {
        args.extend(["--bank", bank]);
    }
    let out = esxstick(&args);
    assert!(out.status.success(), "{variant}: {}", stderr(&out));

    let sums = std::process::Command::new("sha256sum")
        .args(["-c", "--strict", "SHA256SUMS"])
        .current_dir(&out_dir)
        .output()
        .expect("sha256sum");
    assert!(
        sums.status.success(),
        "{variant}: sha256sum -c: {}",
        stdout(&sums)
    );

    let reference = dir.join("mcopy");
    fs::create_dir_all(&reference).unwrap();
    mcopy_all(&image, bank_lba, &reference);
    let mut bank_files = 0;
    for entry in fs::read_dir(&reference).unwrap() {
        let name = entry.unwrap().file_name();
        let (want, got) = (
            fs::read(reference.join(&name)).unwrap(),
            fs::read(out_dir.join(&name)),
        );
        assert_eq!(
            Some(want),
            got.ok(),
            "{variant}: {name:?} differs from mcopy"
        );
        bank_files += 1;
    }
    // boot.img + every bank file + SHA256SUMS, nothing else.
    assert_eq!(
        fs::read_dir(&out_dir).unwrap().count(),
        bank_files + 2,
        "{variant}: extra files"
    );
    let listed = fs::read_to_string(out_dir.join("SHA256SUMS"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(
        listed,
        bank_files + 1,
        "{variant}: SHA256SUMS lists every file"
    );

    let raw = read_range(&image, boot_lba * 512, boot_sectors * 512);
    assert!(
        fs::read(out_dir.join("boot.img")).unwrap() == raw,
        "{variant}: boot.img differs"
    );
}

fn read_range(path: &Path, offset: u64, len: u64) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = fs::File::open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut buf = vec![0; len as usize];
    f.read_exact(&mut buf).unwrap();
    buf
}

#[test]
fn extract_equals_mcopy_and_dd() {
    check_extract("esxi40", None, 8224, 32, 8160);
    check_extract("esxi41", None, 8224, 32, 8160);
    check_extract("fragmented", None, 8224, 32, 8160);
    check_extract("gpt", None, 8224, 64, 8128);
}

#[test]
fn extract_takes_the_active_or_the_forced_bank() {
    check_extract("alt-active", None, 520224, 32, 8160);
    check_extract("alt-active", Some("5"), 8224, 32, 8160);
}

#[test]
fn extract_refuses_a_non_empty_dir_unless_forced() {
    let image = fixture("esxi40");
    let dir = scratch("extract-force");
    let keep = dir.join("keep.txt");
    fs::write(&keep, "mine").unwrap();
    let d = dir.to_str().unwrap();
    assert_refused(
        &esxstick(&["extract", image.to_str().unwrap(), d]),
        "not empty",
    );
    assert_eq!(
        fs::read_dir(&dir).unwrap().count(),
        1,
        "nothing written when refused"
    );
    let out = esxstick(&["extract", "--force", image.to_str().unwrap(), d]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(&keep).unwrap(),
        "mine",
        "unrelated file kept"
    );
    assert!(dir.join("SHA256SUMS").exists());
    assert!(!dir.join(".esxstick-partial").exists(), "staging removed");
}

#[test]
fn extract_of_bad_images_leaves_nothing_behind() {
    for (variant, needle) in [
        ("bad-missing-module", "cim.vgz"),
        ("bad-truncated", "past the end"),
        ("bad-ebr-loop", "loops"),
        ("bad-ebr-past-end", "past the end"),
        ("bad-bank-not-fat", "not a FAT"),
    ] {
        let image = fixture(variant);
        let dir = scratch(&format!("extract-bad-{variant}"));
        let out_dir = dir.join("out");
        let out = esxstick(&[
            "extract",
            image.to_str().unwrap(),
            out_dir.to_str().unwrap(),
        ]);
        assert_refused(&out, needle);
        assert!(!out_dir.exists(), "{variant}: output directory left behind");
    }
}
