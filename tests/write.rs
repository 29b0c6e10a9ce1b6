//! `write` and `verify` against the oracles: sfdisk reads the planned
//! table, fsck.fat finds every written FAT clean, mcopy pulls files equal
//! to the source's, QEMU boots the stick (and not a broken one); damage is
//! caught and named; unsafe targets are refused without a byte written.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use crate::common::*;
use esxstick::progress::{Observer, Phase};
use serde_json::Value;

const VCRITICAL_BYTES: &str = "65273856";

/// Writes `variant` with `layout` to a new image file of `size`; returns
/// the stick and the plan JSON that `plan` prints for the same arguments.
fn write_stick(tag: &str, variant: &str, layout: &str, size: &str) -> (PathBuf, Value) {
    let image = fixture(variant);
    let dir = scratch(&format!("write-{tag}-{variant}-{layout}-{size}"));
    let stick = dir.join("stick.img");
    let args = |cmd: &str| {
        let mut v = vec![cmd.to_string(), image.display().to_string()];
        if cmd == "write" {
            v.push(stick.display().to_string());
        }
        v.extend(["--size", size, "--layout", layout, "--json"].map(String::from));
        v
    };
    let plan = esxstick(&args("plan").iter().map(String::as_str).collect::<Vec<_>>());
    assert!(plan.status.success(), "{}", stderr(&plan));
    let out = esxstick(&args("write").iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        out.status.success(),
        "write {variant} {layout}: {}",
        stderr(&out)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("write --json");
    assert_eq!(report["verify"]["ok"], true, "write verified its own stick");
    let written = report["write"]["bytes_written"].as_u64().unwrap();
    let planned = report["write"]["plan_write_bytes"].as_u64().unwrap();
    assert!(
        written as f64 <= planned as f64 * 1.05,
        "wrote {written} bytes, plan said {planned}"
    );
    (stick, serde_json::from_slice(&plan.stdout).unwrap())
}

fn entry(plan: &Value, n: u64) -> &Value {
    plan["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["entry"] == n)
        .unwrap()
}

/// The boot partition's entry: 4 on MBR, 1 on GPT.
fn boot_entry(plan: &Value) -> &Value {
    plan["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["role"] == "boot")
        .unwrap()
}

/// Copies a partition out of `image` into its own file, padded to the
/// size its boot sector claims (a trimmed boot partition claims more).
fn partition_file(image: &Path, start: u64, sectors: u64, dir: &Path, name: &str) -> PathBuf {
    let bytes = fs::read(image).unwrap();
    let mut part = bytes[(start * 512) as usize..((start + sectors) * 512) as usize].to_vec();
    let minfo = stdout(&oracle("minfo", &["-i", &mtools_image(image, start)]));
    let claimed: u64 = minfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("small size: ")
                .or_else(|| l.strip_prefix("big size: "))
        })
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("minfo gives the volume size");
    part.resize((claimed.max(sectors) * 512) as usize, 0);
    let path = dir.join(name);
    fs::write(&path, part).unwrap();
    path
}

/// The oracles' view of a written stick: table, fsck.fat on every FAT,
/// files equal to the source bank's, labels and IDs kept.
pub(crate) fn check_with_oracles(variant: &str, stick: &Path, plan: &Value) {
    assert_table_matches_plan(stick, plan);
    let dir = stick.parent().unwrap();
    let boot = boot_entry(plan);
    let (b_start, b_sectors) = (
        boot["start"].as_u64().unwrap(),
        boot["sectors"].as_u64().unwrap(),
    );
    let boot_fs = partition_file(stick, b_start, b_sectors, dir, "boot.fs");
    oracle("fsck.fat", &["-n", boot_fs.to_str().unwrap()]);
    let source = fixture(variant);
    let src_inv = inspect_json(&source);
    let src_bank = src_inv["active_bank"]["partition"].as_u64().unwrap();
    let src_start = src_inv["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["number"] == src_bank)
        .unwrap()["start"]
        .as_u64()
        .unwrap();
    let want = dir.join("source-files");
    fs::create_dir_all(&want).unwrap();
    mcopy_all(&source, src_start, &want);
    for bank in plan["banks"].as_array().unwrap() {
        let n = bank["entry"].as_u64().unwrap();
        let p = entry(plan, n);
        let (start, sectors) = (p["start"].as_u64().unwrap(), p["sectors"].as_u64().unwrap());
        let fs_file = partition_file(stick, start, sectors, dir, &format!("bank{n}.fs"));
        oracle("fsck.fat", &["-n", fs_file.to_str().unwrap()]);
        let minfo = stdout(&oracle("minfo", &["-i", &mtools_image(stick, start)]));
        assert!(
            minfo.contains(&format!(
                "serial number: {}",
                bank["volume_id"].as_str().unwrap()
            )),
            "{minfo}"
        );
        assert!(
            minfo.contains(&format!("disk label=\"{}", bank["label"].as_str().unwrap())),
            "{minfo}"
        );
        assert!(
            minfo.contains(&format!("hidden sectors: {start}")),
            "{minfo}"
        );
        let got = dir.join(format!("bank{n}-files"));
        fs::create_dir_all(&got).unwrap();
        mcopy_all(stick, start, &got);
        if n == 5 {
            let names = |d: &Path| {
                let mut v: Vec<_> = fs::read_dir(d)
                    .unwrap()
                    .map(|e| e.unwrap().file_name())
                    .collect();
                v.sort();
                v
            };
            assert_eq!(
                names(&got),
                names(&want),
                "bank 5 holds exactly the source bank's files"
            );
            for name in names(&want) {
                assert!(
                    fs::read(want.join(&name)).unwrap() == fs::read(got.join(&name)).unwrap(),
                    "{name:?} differs"
                );
            }
        } else {
            let cfg = fs::read_to_string(got.join("boot.cfg")).unwrap();
            assert!(
                cfg.contains("bootstate=3"),
                "alternate bank is marked not bootable: {cfg}"
            );
        }
    }
}

#[test]
fn written_sticks_pass_the_oracles() {
    for (variant, layout, size) in [
        ("esxi40", "vcritical-64mb", VCRITICAL_BYTES),
        ("esxi40", "esxi-native", VCRITICAL_BYTES),
        ("esxi40", "aligned-1m", "96M"),
        ("alt-active", "dual-bank", "128M"),
        ("fragmented", "esxi-native", "32M"),
    ] {
        let (stick, plan) = write_stick("oracles", variant, layout, size);
        check_with_oracles(variant, &stick, &plan);
        // The stick reads as an ESXi image itself, trimmed boot partition
        // included, and passes the self-check.
        let alone = esxstick(&["verify", stick.to_str().unwrap()]);
        assert!(
            alone.status.success(),
            "{layout}: self-check: {}",
            stdout(&alone)
        );
    }
}

#[test]
fn written_sticks_boot_in_qemu_and_a_broken_one_does_not() {
    for layout in ["esxi-native", "vcritical-64mb", "aligned-1m"] {
        let (stick, plan) = write_stick("qemu", "esxi40", layout, VCRITICAL_BYTES);
        assert!(
            qemu_powers_off(&stick, 120),
            "{layout}: the stick did not boot to poweroff"
        );
        if layout == "esxi-native" {
            // Negative control: the same stick with its boot sector zeroed.
            let broken = stick.with_file_name("broken.img");
            fs::copy(&stick, &broken).unwrap();
            let at = entry(&plan, 4)["start"].as_u64().unwrap() * 512;
            let mut bytes = fs::read(&broken).unwrap();
            bytes[at as usize..at as usize + 512].fill(0);
            fs::write(&broken, bytes).unwrap();
            assert!(
                !qemu_powers_off(&broken, 20),
                "a stick without a boot sector powered off"
            );
        }
    }
}

/// sfdisk's view of a GPT stick: `--verify` finds nothing wrong (it
/// reports a damaged or misplaced backup table on stderr, exit 0), the
/// usable area ends where a backup table in the stick's last 33 sectors
/// leaves it, and only entry `bootable` is LegacyBIOSBootable.
fn check_gpt_with_sfdisk(stick: &Path, bootable: Option<u64>) {
    let name = stick.to_str().unwrap();
    let verify = oracle("sfdisk", &["--verify", name]);
    assert!(
        stdout(&verify).contains("No errors detected."),
        "{}",
        stdout(&verify)
    );
    assert_eq!(stderr(&verify).trim(), "", "sfdisk --verify warns");
    let back: Value = serde_json::from_slice(&oracle("sfdisk", &["--json", name]).stdout).unwrap();
    let table = &back["partitiontable"];
    assert_eq!(table["label"], "gpt");
    let sectors = fs::metadata(stick).unwrap().len() / 512;
    assert_eq!(table["lastlba"], sectors - 34, "last usable sector");
    let boot = bootable.map(|n| format!("{name}{n}"));
    for p in table["partitions"].as_array().unwrap() {
        let flagged = p["attrs"]
            .as_str()
            .is_some_and(|a| a.contains("LegacyBIOSBootable"));
        assert_eq!(flagged, p["node"].as_str() == boot.as_deref(), "{p}");
    }
}

/// The entry number of the boot partition, which must be bootable.
fn boot_number(plan: &Value) -> u64 {
    boot_entry(plan)["entry"].as_u64().unwrap()
}

#[test]
fn gpt_sticks_pass_the_oracles() {
    let source = fixture("gpt");
    for (size, banks) in [("64M", 1), ("256M", 2)] {
        let (stick, plan) = write_stick("oracles", "gpt", "gpt-minimal", size);
        assert_eq!(plan["banks"].as_array().unwrap().len(), banks, "{size}");
        let entries: Vec<_> = plan["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["entry"].as_u64().unwrap())
            .collect();
        assert_eq!(entries, [1, 5, 6][..=banks], "{size}: entry numbers");
        check_with_oracles("gpt", &stick, &plan);
        check_gpt_with_sfdisk(&stick, Some(boot_number(&plan)));
        let against = esxstick(&[
            "verify",
            stick.to_str().unwrap(),
            "--against",
            source.to_str().unwrap(),
        ]);
        assert!(against.status.success(), "{size}: {}", stdout(&against));
        assert!(
            stdout(&against).contains("layout gpt-minimal"),
            "layout recognised from the table"
        );
        let alone = esxstick(&["verify", stick.to_str().unwrap()]);
        assert!(alone.status.success(), "{size}: {}", stdout(&alone));
    }
}

#[test]
fn gpt_stick_boots_in_qemu_and_not_without_its_bootable_attribute_or_boot_code() {
    let (stick, plan) = write_stick("qemu", "gpt", "gpt-minimal", "64M");
    assert!(
        qemu_powers_off(&stick, 120),
        "the GPT stick did not boot to poweroff"
    );
    // Negative controls. sfdisk clears the attribute and rewrites both
    // tables with their checksums: still a valid GPT, but gptmbr.bin finds
    // no partition to boot, and verify names the difference.
    let no_attr = damaged_copy(&stick, "no-attr.img");
    let boot = boot_number(&plan).to_string();
    oracle(
        "sfdisk",
        &["--part-attrs", no_attr.to_str().unwrap(), &boot, ""],
    );
    check_gpt_with_sfdisk(&no_attr, None);
    let out = esxstick(&[
        "verify",
        no_attr.to_str().unwrap(),
        "--against",
        fixture("gpt").to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(failed_items(&out), ["partition table"]);
    assert!(
        !qemu_powers_off(&no_attr, 20),
        "a GPT stick without a LegacyBIOSBootable partition powered off"
    );
    let no_code = damaged_copy(&stick, "no-code.img");
    let mut bytes = fs::read(&no_code).unwrap();
    bytes[..440].fill(0);
    fs::write(&no_code, bytes).unwrap();
    assert!(
        !qemu_powers_off(&no_code, 20),
        "a GPT stick without boot code in its protective MBR powered off"
    );
}

#[test]
fn gpt_backup_lies_at_the_end_of_a_larger_target() {
    let source = fixture("gpt");
    let src = source.to_str().unwrap();
    let dir = scratch("write-gpt-larger");
    let stick = dir.join("stick.img");
    sparse(&stick, 128 << 20);
    let args = |cmd: &'static str| {
        let mut v = vec![cmd, src];
        if cmd == "write" {
            v.extend([stick.to_str().unwrap(), "--yes"]);
        }
        v.extend(["--size", "64M", "--layout", "gpt-minimal", "--json"]);
        v
    };
    let out = esxstick(&args("write"));
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verify"]["ok"], true);
    let plan: Value = serde_json::from_slice(&esxstick(&args("plan")).stdout).unwrap();
    assert_eq!(plan["target_sectors"], 131_072);
    assert_eq!(fs::metadata(&stick).unwrap().len(), 128 << 20);
    assert_table_matches_plan(&stick, &plan);
    check_gpt_with_sfdisk(&stick, Some(boot_number(&plan)));
}

#[test]
fn damage_to_the_backup_gpt_is_caught() {
    let (stick, _) = write_stick("damage", "gpt", "gpt-minimal", "64M");
    let source = fixture("gpt");
    let intact = esxstick(&["verify", stick.to_str().unwrap()]);
    assert!(intact.status.success(), "{}", stdout(&intact));
    // Lines are wrapped to the terminal: compare the words.
    let words = stdout(&intact)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        words.contains("backup GPT equal to the primary"),
        "the self-check looks at the backup: {}",
        stdout(&intact)
    );
    let end = fs::metadata(&stick).unwrap().len();
    // The backup entry array (partition 1's type GUID), then the backup
    // header (its own sector number) in the last sector.
    for (name, at) in [("entries", end - 33 * 512 + 8), ("header", end - 512 + 24)] {
        let bad = damaged_copy(&stick, &format!("backup-{name}.img"));
        flip(&bad, at);
        let out = esxstick(&[
            "verify",
            bad.to_str().unwrap(),
            "--against",
            source.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        assert_eq!(failed_items(&out), ["partition table"], "{name}");
        // The self-check, without the source, finds it too.
        let alone = esxstick(&["verify", bad.to_str().unwrap(), "--json"]);
        assert_eq!(alone.status.code(), Some(1), "{name}: {}", stderr(&alone));
        assert_eq!(failed_items(&alone), ["partition table"], "{name}");
        let sfdisk = oracle("sfdisk", &["--verify", bad.to_str().unwrap()]);
        assert!(
            stderr(&sfdisk).contains("backup GPT table is corrupt"),
            "{name}: sfdisk sees the damage too: {}",
            stderr(&sfdisk)
        );
    }
}

#[test]
fn write_to_a_loop_device() {
    let image = fixture("esxi40");
    let dir = scratch("write-loop");
    let backing = dir.join("disk.img");
    sparse(&backing, 65_273_856);
    let lo = Loop::attach(&backing);
    let out = esxstick(&[
        "write",
        image.to_str().unwrap(),
        &lo.0,
        "--layout",
        "vcritical-64mb",
        "--yes",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verify"]["ok"], true);
    let plan = esxstick(&[
        "plan",
        image.to_str().unwrap(),
        "--size",
        VCRITICAL_BYTES,
        "--layout",
        "vcritical-64mb",
        "--json",
    ]);
    let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
    drop(lo);
    check_with_oracles("esxi40", &backing, &plan);
    let again = Loop::attach(&backing);
    let verify = esxstick(&["verify", &again.0, "--against", image.to_str().unwrap()]);
    assert!(verify.status.success(), "{}", stderr(&verify));
    assert!(
        stdout(&verify).contains("layout vcritical-64mb"),
        "layout recognised from the table"
    );
}

/// A written stick copied to a scratch file, ready to be damaged.
fn damaged_copy(stick: &Path, name: &str) -> PathBuf {
    let copy = stick.with_file_name(name);
    fs::copy(stick, &copy).unwrap();
    copy
}

fn flip(path: &Path, at: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at as usize] ^= 0x5a;
    fs::write(path, bytes).unwrap();
}

/// Where the stick holds bytes `offset..offset+32` of the source module.
fn find_module_bytes(stick: &Path, module: &[u8], offset: usize) -> u64 {
    let needle = &module[offset..offset + 32];
    let hay = fs::read(stick).unwrap();
    hay.windows(32)
        .position(|w| w == needle)
        .expect("module bytes on the stick") as u64
}

fn failed_items(out: &std::process::Output) -> Vec<String> {
    let report: Value = serde_json::from_slice(&out.stdout).expect("verify --json");
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["item"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn damage_is_caught_and_named() {
    let (stick, plan) = write_stick("damage", "esxi40", "esxi-native", VCRITICAL_BYTES);
    let source = fixture("esxi40");
    let src = source.to_str().unwrap();
    let clean = esxstick(&[
        "verify",
        stick.to_str().unwrap(),
        "--against",
        src,
        "--json",
    ]);
    assert!(clean.status.success(), "{}", stderr(&clean));
    assert!(esxstick(&["verify", stick.to_str().unwrap()])
        .status
        .success());

    let modules = stick.parent().unwrap().join("modules");
    fs::create_dir_all(&modules).unwrap();
    mcopy_all(&source, 8224, &modules);
    let sys = fs::read(modules.join("sys.vgz")).unwrap();
    for (i, offset) in [100, sys.len() / 2, sys.len() - 40].into_iter().enumerate() {
        let bad = damaged_copy(&stick, &format!("module-{i}.img"));
        flip(&bad, find_module_bytes(&bad, &sys, offset));
        let out = esxstick(&["verify", bad.to_str().unwrap(), "--against", src, "--json"]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert_eq!(failed_items(&out), ["bank 5: sys.vgz"], "offset {offset}");
        let alone = esxstick(&["verify", bad.to_str().unwrap(), "--json"]);
        assert_eq!(
            alone.status.code(),
            Some(1),
            "self-check missed a damaged gzip module"
        );
        assert_eq!(failed_items(&alone), ["bank 5: sys.vgz"]);
    }

    let boot_start = entry(&plan, 4)["start"].as_u64().unwrap() * 512;
    for (i, offset) in [3, 0x1c, 1024, 600 * 512].into_iter().enumerate() {
        let bad = damaged_copy(&stick, &format!("boot-{i}.img"));
        flip(&bad, boot_start + offset);
        let out = esxstick(&["verify", bad.to_str().unwrap(), "--against", src, "--json"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            failed_items(&out).contains(&"boot partition".to_string()),
            "offset {offset}: {:?}",
            failed_items(&out)
        );
    }

    let bank = entry(&plan, 5)["start"].as_u64().unwrap() * 512;
    let bad = damaged_copy(&stick, "uuid.img");
    flip(&bad, bank + 512 + 20); // in the UUID of VMware's UUID sector
    let out = esxstick(&["verify", bad.to_str().unwrap(), "--against", src, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(failed_items(&out), ["bank 5 UUID"]);

    let reserved = plan["banks"][0]["fat"]["reserved_sectors"]
        .as_u64()
        .unwrap();
    let bad = damaged_copy(&stick, "fat.img");
    // First FAT, an entry of the first files' chains.
    flip(&bad, bank + reserved * 512 + 40);
    let out = esxstick(&["verify", bad.to_str().unwrap(), "--against", src, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        failed_items(&out).contains(&"bank 5 FAT".to_string()),
        "{:?}",
        failed_items(&out)
    );
    let line = stderr(&out);
    assert!(
        line.starts_with("esxstick: verification failed: "),
        "{line}"
    );
}

fn no_stdin_esxstick(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_esxstick"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn unsafe_targets_are_refused_and_left_untouched() {
    let image = fixture("esxi40");
    let dir = scratch("write-refusals");
    let src = image.to_str().unwrap();

    // An existing file, no terminal, no --yes.
    let existing = dir.join("existing.img");
    fs::write(&existing, vec![0xa5u8; 70_000_000]).unwrap();
    let before = digest(&existing);
    let out = no_stdin_esxstick(&["write", src, existing.to_str().unwrap()]);
    assert_refused(&out, "no terminal");
    assert_eq!(digest(&existing), before);

    // The source itself, and a loop device over (a copy of) it.
    let copy = dir.join("source.img");
    oracle("cp", &["--sparse=always", src, copy.to_str().unwrap()]);
    let before = digest(&copy);
    assert_refused(
        &esxstick(&[
            "write",
            copy.to_str().unwrap(),
            copy.to_str().unwrap(),
            "--yes",
        ]),
        "source image itself",
    );
    let lo = Loop::attach(&copy);
    assert_refused(
        &esxstick(&["write", copy.to_str().unwrap(), &lo.0, "--yes"]),
        "over the source",
    );
    drop(lo);
    assert_eq!(digest(&copy), before);

    // A mounted disk.
    let ext = dir.join("ext2.img");
    sparse(&ext, 64 << 20);
    oracle("mkfs.ext2", &["-q", "-F", ext.to_str().unwrap()]);
    let lo = Loop::attach(&ext);
    let mnt = dir.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    oracle("mount", &[&lo.0, mnt.to_str().unwrap()]);
    // Mounting writes the superblock itself: compare what esxstick would
    // have written first (sector 0 and the GPT areas at both ends).
    let ends = |p: &str| {
        let b = fs::read(p).unwrap();
        [b[..34 * 512].to_vec(), b[b.len() - 33 * 512..].to_vec()].concat()
    };
    let before = ends(&lo.0);
    let out = esxstick(&["write", src, &lo.0, "--yes"]);
    let after = ends(&lo.0);
    let _ = std::process::Command::new("umount").arg(&mnt).status();
    assert_refused(&out, "is mounted");
    assert!(before == after, "a mounted disk was written");
    drop(lo);

    // A device smaller than the plan.
    let small = dir.join("small.img");
    sparse(&small, 32 << 20);
    let lo = Loop::attach(&small);
    let before = digest(Path::new(&lo.0));
    assert_refused(
        &esxstick(&["write", src, &lo.0, "--size", "64M", "--yes"]),
        "less than",
    );
    assert_refused(&esxstick(&["write", src, &lo.0, "--yes"]), "does not fit");
    assert_eq!(digest(Path::new(&lo.0)), before);
}

/// Records, per phase, the total announced and the bytes advanced.
#[derive(Default)]
struct Tally(Mutex<BTreeMap<&'static str, (u64, u64)>>);

impl Observer for Tally {
    fn started(&self, phase: Phase, total: u64) {
        self.0.lock().unwrap().entry(phase.name()).or_default().0 += total;
    }
    fn advanced(&self, phase: Phase, bytes: u64) {
        self.0.lock().unwrap().entry(phase.name()).or_default().1 += bytes;
    }
    fn finished(&self, _: Phase) {}
    fn message(&self, _: &str) {}
}

/// Bytes of partition table on `stick` as sfdisk reads it: for GPT, the
/// protective MBR, header and entries up to the first usable LBA, and the
/// backup entries and header after the last; for MBR, the MBR and one
/// EBR per logical partition.
fn table_bytes_by_sfdisk(stick: &Path) -> u64 {
    let name = stick.to_str().unwrap();
    let sf: Value = serde_json::from_slice(&oracle("sfdisk", &["--json", name]).stdout).unwrap();
    let t = &sf["partitiontable"];
    let sectors = if t["label"] == "gpt" {
        let total = fs::metadata(stick).unwrap().len() / 512;
        let (first, last) = (
            t["firstlba"].as_u64().unwrap(),
            t["lastlba"].as_u64().unwrap(),
        );
        first + (total - 1 - last)
    } else {
        let logical = t["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["node"].as_str()?.strip_prefix(name)?.parse::<u32>().ok())
            .filter(|&n| n >= 5)
            .count() as u64;
        1 + logical
    };
    sectors * 512
}

#[test]
fn the_tables_bar_counts_every_table_byte() {
    use esxstick::plan::{layout::Layout, Payload};
    for (variant, layout) in [
        ("gpt", "gpt-minimal"),
        ("esxi40", "vcritical-64mb"),
        ("esxi40", "dual-bank"),
    ] {
        let dir = scratch(&format!("write-tally-{variant}-{layout}"));
        let stick = dir.join("stick.img");
        sparse(&stick, 134_217_728);
        let tally = Arc::new(Tally::default());
        let (source, inv) =
            esxstick::esxi::open(&fixture(variant), None, true, tally.clone()).unwrap();
        let payload = Payload::from_inventory(&inv).unwrap();
        let plan = esxstick::plan::plan(&payload, &Layout::load(layout).unwrap(), 262_144).unwrap();
        let mut target =
            esxstick::stick::device::Target::open(&stick, &plan, &source, false).unwrap();
        esxstick::stick::burn::burn(&source, &inv, &plan, &mut target, &*tally, false, false)
            .unwrap();
        let (total, advanced) = tally.0.lock().unwrap()["tables"];
        let want = table_bytes_by_sfdisk(&stick);
        assert_eq!((total, advanced), (want, want), "{variant} {layout}");
    }
}

#[test]
fn a_64mb_write_makes_few_large_writes() {
    let source = fixture("esxi40");
    let dir = scratch("write-calls");
    let stick = dir.join("stick.img");
    let trace = dir.join("strace.txt");
    let out = std::process::Command::new("strace")
        .args(["-f", "-e", "trace=pwrite64,pwritev,pwritev2", "-o"])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_esxstick"))
        .args(["write", source.to_str().unwrap(), stick.to_str().unwrap()])
        .args([
            "--size",
            VCRITICAL_BYTES,
            "--layout",
            "vcritical-64mb",
            "--json",
        ])
        .output()
        .expect("oracle strace cannot run: run scripts/test, which installs it");
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let planned = report["write"]["plan_write_bytes"].as_u64().unwrap();
    // "pwrite64(3, ..., 4194304, 1638400) = 4194304": the bytes written.
    let sizes: Vec<u64> = fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .filter(|l| l.contains("pwrite"))
        .filter_map(|l| l.rsplit("= ").next()?.trim().parse().ok())
        .collect();
    let total: u64 = sizes.iter().sum();
    let large: u64 = sizes.iter().filter(|&&n| n >= 1 << 20).sum();
    eprintln!(
        "{} write calls, {total} bytes ({large} in writes of 1 MiB or more), plan {planned}",
        sizes.len()
    );
    assert!(sizes.len() <= 1000, "{} write calls", sizes.len());
    assert!(
        large * 10 >= total * 9,
        "{large} of {total} bytes in writes of 1 MiB or more"
    );
    assert!(
        total <= planned,
        "wrote {total}, the plan's minimum is {planned}"
    );
}
