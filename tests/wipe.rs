//! `esxstick wipe`: a stick given back as one FAT32 partition, proven by
//! sfdisk (one entry, type c, from sector 2048 to the end), fsck.fat (a
//! clean volume), mtools (the label, the hidden sectors, an empty root);
//! too-small sticks get FAT16; the refusals `write` makes; an injected
//! failure at any write never leaves a valid table.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::*;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A 64 MB ESXi stick image written by esxstick from the fixture: what a
/// user gives back.
fn esxi_stick(dir: &Path) -> std::path::PathBuf {
    let stick = dir.join("stick.img");
    let out = esxstick(&[
        "write",
        s(&fixture("esxi40")),
        s(&stick),
        "--size",
        "64M",
        "--no-verify",
        "--json",
    ]);
    assert!(out.status.success(), "write failed: {}", stderr(&out));
    stick
}

/// sfdisk's table of `disk`.
fn sfdisk_table(disk: &Path) -> Value {
    let out = oracle("sfdisk", &["--json", s(disk)]);
    serde_json::from_slice::<Value>(&out.stdout).expect("sfdisk --json")["partitiontable"].clone()
}

/// Checks what `wipe` must leave on `disk` of `bytes` (a file or a loop
/// device): one MBR partition of `type_code`, start 2048, to the end; a
/// clean FAT volume (fsck.fat on a dd copy of it) labelled `label`, with
/// 2048 hidden sectors and no files.
fn assert_wiped(disk: &Path, bytes: u64, type_code: &str, label: &str, dir: &Path) {
    let table = sfdisk_table(disk);
    assert_eq!(table["label"], "dos", "{table}");
    let parts = table["partitions"].as_array().expect("partitions");
    assert_eq!(parts.len(), 1, "{table}");
    assert_eq!(parts[0]["start"], 2048);
    assert_eq!(
        parts[0]["size"],
        bytes / 512 - 2048,
        "to the end of the device"
    );
    assert_eq!(parts[0]["type"], type_code);
    assert!(parts[0]["bootable"].is_null(), "not active: {table}");
    let volume = dir.join("volume.img");
    oracle(
        "dd",
        &[
            &format!("if={}", s(disk)),
            &format!("of={}", s(&volume)),
            "bs=1M",
            "skip=1",
            "status=none",
        ],
    );
    let fsck = oracle("fsck.fat", &["-n", s(&volume)]);
    let report = stdout(&fsck);
    assert!(
        !report.contains("should be") && !report.contains("differ") && report.lines().count() == 2,
        "fsck.fat is not clean:\n{report}"
    );
    let at = mtools_image(disk, 2048);
    let shown = stdout(&oracle("mlabel", &["-s", "-i", &at, "::"]));
    assert_eq!(shown.trim(), format!("Volume label is {label}"));
    let info = stdout(&oracle("minfo", &["-i", &at, "::"]));
    assert!(info.contains("hidden sectors: 2048"), "{info}");
    let files = Command::new("mdir")
        .args(["-b", "-i", &at, "::/"])
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .expect("oracle mdir cannot run");
    assert_eq!(stdout(&files).trim(), "", "the new volume holds files");
}

#[test]
fn an_esxi_stick_image_is_wiped_in_place_to_one_fat32_partition() {
    let dir = scratch("wipe-file");
    let stick = esxi_stick(&dir);
    let bytes = fs::metadata(&stick).unwrap().len();
    let out = esxstick(&["wipe", s(&stick), "--yes", "--json"]);
    assert!(out.status.success(), "wipe failed: {}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("wipe --json");
    assert_eq!(report["schema"], "esxstick.wipe/1");
    assert_eq!(report["fat_type"], "FAT32");
    assert_eq!(report["partition"]["type"], "0x0c");
    assert_eq!(
        fs::metadata(&stick).unwrap().len(),
        bytes,
        "the size is kept"
    );
    assert_wiped(&stick, bytes, "c", "USB", &dir);
}

#[test]
fn a_loop_device_holding_a_stick_is_wiped_with_the_label_given() {
    let dir = scratch("wipe-loop");
    let stick = esxi_stick(&dir);
    let lo = Loop::attach(&stick);
    let out = esxstick(&["wipe", &lo.0, "-y", "--label", "esx backup"]);
    let bytes: u64 = stdout(&oracle("blockdev", &["--getsize64", &lo.0]))
        .trim()
        .parse()
        .unwrap();
    assert!(out.status.success(), "wipe failed: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("FAT32 labelled \"ESX BACKUP\""), "{text}");
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
    assert_wiped(Path::new(&lo.0), bytes, "c", "ESX BACKUP", &dir);
}

#[test]
fn a_stick_too_small_for_fat32_gets_fat16_and_says_so() {
    let dir = scratch("wipe-small");
    let stick = dir.join("small.img");
    sparse(&stick, 20 << 20);
    let out = esxstick(&["wipe", s(&stick), "--yes"]);
    assert!(out.status.success(), "wipe failed: {}", stderr(&out));
    let text = stdout(&out)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(text.contains("too few for FAT32"), "{text}");
    assert!(
        text.contains("formatted FAT16, partition type 0x0e"),
        "{text}"
    );
    assert_wiped(&stick, 20 << 20, "e", "USB", &dir);
}

/// Asserts a refusal (exit 2, one line with `needle`) left `file` as it
/// was.
fn assert_refused_untouched(out: &Output, needle: &str, file: &Path, before: &str) {
    assert_refused(out, needle);
    assert_eq!(digest(file), before, "{} was changed", file.display());
}

#[test]
fn wipe_refuses_what_write_refuses_untouched() {
    let dir = scratch("wipe-refusals");
    // Too small for a partition at 1 MiB.
    let tiny = dir.join("tiny.img");
    fs::write(&tiny, vec![0x5a; 1 << 20]).unwrap();
    let before = digest(&tiny);
    let out = esxstick(&["wipe", s(&tiny), "--yes"]);
    assert_refused_untouched(&out, "less than the 2,097,152", &tiny, &before);
    // Missing: a wipe creates nothing.
    let missing = dir.join("missing.img");
    assert_refused(&esxstick(&["wipe", s(&missing), "--yes"]), "No such file");
    assert!(!missing.exists());
    // No terminal, no --yes; a label FAT cannot hold (as JSON too).
    let stick = esxi_stick(&dir);
    let before = digest(&stick);
    let out = esxstick(&["wipe", s(&stick)]);
    assert_refused_untouched(&out, "holds an ESXi stick", &stick, &before);
    assert!(stderr(&out).contains("pass --yes"), "{}", stderr(&out));
    let out = esxstick(&["wipe", s(&stick), "--yes", "--label", "a/b", "--json"]);
    assert_refused_untouched(&out, "--label \"a/b\"", &stick, &before);
    let err: Value = serde_json::from_slice(&out.stdout).expect("a JSON error");
    assert_eq!(err["error"]["kind"], "label");
    // A read-only loop device, and a mounted one.
    let lo = Loop(
        stdout(&oracle("losetup", &["-f", "--show", "-r", s(&stick)]))
            .trim()
            .into(),
    );
    let out = esxstick(&["wipe", &lo.0, "--yes"]);
    assert_refused_untouched(&out, "is read-only", &stick, &before);
    drop(lo);
    let fsimg = dir.join("ext2.img");
    sparse(&fsimg, 16 << 20);
    oracle("mkfs.ext2", &["-q", "-F", s(&fsimg)]);
    let fs_before = digest(&fsimg);
    let lo = Loop::attach(&fsimg);
    let mnt = dir.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    oracle("mount", &["-o", "ro", &lo.0, s(&mnt)]);
    let out = esxstick(&["wipe", &lo.0, "--yes"]);
    let _ = Command::new("umount").arg(&mnt).status();
    drop(lo);
    assert_refused_untouched(&out, "is mounted", &fsimg, &fs_before);
}

#[test]
fn an_injected_failure_at_any_write_leaves_no_valid_table() {
    let dir = scratch("wipe-faults");
    let stick = dir.join("stick.img");
    sparse(&stick, 48 << 20);
    let run = |fault: &str| {
        Command::new(env!("CARGO_BIN_EXE_esxstick"))
            .args(["wipe", s(&stick), "--yes"])
            .env("ESXSTICK_FAULT", fault)
            .output()
            .expect("run esxstick")
    };
    let (writes, syncs) = fault_counts(&run("count"));
    assert!(writes >= 3 && syncs >= 3, "writes={writes} syncs={syncs}");
    // fatfs marks the FAT entries past the last cluster one by one: the
    // first and last 20 writes, and a sample between.
    let points = (1..=writes)
        .filter(|n| *n <= 20 || *n > writes.saturating_sub(20) || n % 16 == 0)
        .map(|n| format!("write:{n}:eio"))
        .chain((1..=syncs).map(|n| format!("sync:{n}:eio")));
    for fault in points {
        // A valid old table first: the wipe before this one.
        assert!(run("none").status.success());
        let before = digest(&stick);
        let out = run(&fault);
        assert_refused(&out, "wiping");
        assert!(stderr(&out).contains("run wipe again"), "{}", stderr(&out));
        if stderr(&out).contains("nothing was written") {
            assert_eq!(
                digest(&stick),
                before,
                "{fault}: it said nothing was written"
            );
            continue;
        }
        let sfdisk = Command::new("sfdisk")
            .args(["-d", s(&stick)])
            .output()
            .unwrap();
        let mut sector0 = [0u8; 512];
        fs::File::open(&stick)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut sector0))
            .unwrap();
        let last = fault.starts_with("sync") && fault.ends_with(&format!(":{syncs}:eio"));
        if last {
            // The table is written; only its final fsync failed.
            continue;
        }
        assert!(
            !sfdisk.status.success() && sector0[510..512] != [0x55, 0xaa],
            "{fault}: a table is left: {}",
            stdout(&sfdisk)
        );
    }
    assert!(run("none").status.success(), "a rerun succeeds");
    assert_wiped(&stick, 48 << 20, "c", "USB", &dir);
}

#[test]
fn ctrl_c_stops_a_wipe_between_two_writes_with_one_line_and_no_table() {
    let dir = scratch("wipe-interrupt");
    let stick = esxi_stick(&dir);
    // The process signals itself at its 3rd write (inside the format,
    // after the old table was zeroed), as a user pressing Ctrl-C then.
    for (fault, code) in [("write:3:sigint", 130), ("write:3:sigterm", 143)] {
        let out = Command::new(env!("CARGO_BIN_EXE_esxstick"))
            .args(["wipe", s(&stick), "--yes"])
            .env("ESXSTICK_FAULT", fault)
            .output()
            .expect("run esxstick");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{fault}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{fault}: {err}");
        assert!(
            err.starts_with(&format!("esxstick: wiping {} interrupted at ", s(&stick))),
            "{err}"
        );
        assert!(err.contains("no valid partition table"), "{err}");
        assert!(err.ends_with("run the same command again\n"), "{err}");
        let sfdisk = Command::new("sfdisk")
            .args(["-d", s(&stick)])
            .output()
            .unwrap();
        assert!(!sfdisk.status.success(), "{fault}: {}", stdout(&sfdisk));
    }
    let out = esxstick(&["wipe", s(&stick), "--yes"]);
    assert!(out.status.success(), "the rerun: {}", stderr(&out));
    let bytes = fs::metadata(&stick).unwrap().len();
    assert_wiped(&stick, bytes, "c", "USB", &dir);
}

/// `esxstick wipe TARGET` on a terminal (script gives one), answering
/// `answer`: what the terminal showed.
fn wipe_on_terminal(target: &Path, answer: &[u8]) -> String {
    use std::io::Write as _;
    let cmd = format!("{} wipe {}", env!("CARGO_BIN_EXE_esxstick"), s(target));
    let mut tty = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("oracle script cannot run: run scripts/install-deps");
    tty.stdin.take().unwrap().write_all(answer).unwrap();
    stdout(&tty.wait_with_output().unwrap())
}

#[test]
fn on_a_terminal_wipe_asks_and_only_yes_goes_ahead() {
    let dir = scratch("wipe-terminal");
    let stick = esxi_stick(&dir);
    let before = digest(&stick);
    let text = wipe_on_terminal(&stick, b"no\n");
    assert!(text.contains("esxstick will ERASE"), "{text}");
    assert!(text.contains("which holds an ESXi stick"), "{text}");
    assert!(
        text.contains("not confirmed; nothing was written"),
        "{text}"
    );
    assert_eq!(digest(&stick), before);
    let text = wipe_on_terminal(&stick, b"yes\n");
    assert!(text.contains("FAT32 labelled \"USB\""), "{text}");
    assert_wiped(&stick, 64 << 20, "c", "USB", &dir);
}

#[test]
fn a_gpt_stick_keeps_no_backup_gpt_header() {
    let dir = scratch("wipe-gpt");
    let stick = dir.join("gpt.img");
    let out = esxstick(&[
        "write",
        s(&fixture("gpt")),
        s(&stick),
        "--size",
        "128M",
        "--no-verify",
        "--json",
    ]);
    assert!(out.status.success(), "write failed: {}", stderr(&out));
    // The backup GPT header, in the last sector (read by dd).
    let last = || {
        let skip = format!("skip={}", (128 << 20) / 512 - 1);
        let out = oracle(
            "dd",
            &[&format!("if={}", s(&stick)), "bs=512", &skip, "status=none"],
        );
        out.stdout.starts_with(b"EFI PART")
    };
    assert_eq!(sfdisk_table(&stick)["label"], "gpt");
    assert!(last(), "no backup GPT header before the wipe");
    let out = esxstick(&["wipe", s(&stick), "--yes"]);
    assert!(out.status.success(), "wipe failed: {}", stderr(&out));
    assert!(!last(), "the backup GPT header is left");
    assert_wiped(&stick, 128 << 20, "c", "USB", &dir);
}
