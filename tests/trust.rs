//! Issue 14, as a new user tried it: `verify` proves every stick esxstick
//! made (any layout, any `--size`), `write` checks the target before it
//! prints the plan or asks, tells the truth when it stops (Ctrl-C,
//! SIGTERM), says what the target holds, and every output is readable.
//! Oracles: sfdisk, mkfs.fat, losetup, partx, flock, script (a terminal).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// esxstick with `args`, stdin closed (no terminal to ask).
fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_esxstick"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run esxstick")
}

/// The end of sfdisk's table: one past the last sector any partition
/// of `image` reaches.
fn sfdisk_extent(image: &Path) -> u64 {
    let sf: Value =
        serde_json::from_slice(&oracle("sfdisk", &["--json", s(image)]).stdout).unwrap();
    sf["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["start"].as_u64().unwrap() + p["size"].as_u64().unwrap())
        .max()
        .unwrap()
}

/// Whether sfdisk finds a partition table on `image`.
fn sfdisk_sees_a_table(image: &str) -> bool {
    Command::new("sfdisk")
        .args(["--json", image])
        .output()
        .expect("oracle sfdisk cannot run: run scripts/install-deps")
        .stdout
        .windows(14)
        .any(|w| w == b"partitiontable")
}

fn verify_against(stick: &str, source: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["verify", stick, "--against", s(source)];
    args.extend(extra);
    run(&args)
}

#[test]
fn verify_plans_the_stick_it_finds_any_size_any_layout() {
    let source = fixture("esxi40");
    let dir = scratch("trust-verify-size");
    // A 64 MiB stick on a 1 GiB file: verify plans 64 MiB, not 1 GiB.
    let big = dir.join("big.img");
    sparse(&big, 1 << 30);
    let out = run(&[
        "write",
        s(&source),
        s(&big),
        "--size",
        "64M",
        "--yes",
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        sfdisk_extent(&big),
        131_072,
        "sfdisk: the table ends at 64 MiB"
    );
    let out = verify_against(s(&big), &source, &[]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("layout esxi-native"),
        "{}",
        stdout(&out)
    );
    // Negative control: told another size, the table is not as planned.
    let out = verify_against(s(&big), &source, &["--size", "200M", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["checks"][0]["item"], "partition table");
    assert_eq!(report["checks"][0]["ok"], false);
    // The same on a 128 MiB loop device.
    let backing = dir.join("loop.img");
    sparse(&backing, 128 << 20);
    let lo = Loop::attach(&backing);
    let out = run(&[
        "write",
        s(&source),
        &lo.0,
        "--size",
        "64M",
        "--yes",
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = verify_against(&lo.0, &source, &[]);
    assert!(out.status.success(), "{}", stdout(&out));
    drop(lo);
    // A GPT stick on a larger file.
    let gpt = fixture("gpt");
    let g = dir.join("gpt.img");
    sparse(&g, 256 << 20);
    let out = run(&["write", s(&gpt), s(&g), "--size", "64M", "--yes", "--quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = verify_against(s(&g), &gpt, &[]);
    assert!(out.status.success(), "{}", stdout(&out));
}

#[test]
fn a_stick_of_the_users_own_layout_verifies_with_it_and_is_named_without() {
    let source = fixture("esxi40");
    let dir = scratch("trust-verify-layout");
    let layout = dir.join("mine.toml");
    let text = include_str!("../layouts/aligned-1m.toml")
        .replace("name = \"aligned-1m\"", "name = \"mine\"")
        .replace("start = 2048", "start = 4096")
        .replace("ebr_gap = 2048", "ebr_gap = 4096");
    fs::write(&layout, text).unwrap();
    let stick = dir.join("stick.img");
    sparse(&stick, 512 << 20);
    let out = run(&[
        "write",
        s(&source),
        s(&stick),
        "--layout",
        s(&layout),
        "--size",
        "96M",
        "--yes",
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        sfdisk_start(&stick, 4),
        4096,
        "sfdisk: the layout's alignment"
    );
    let out = verify_against(s(&stick), &source, &[]);
    assert_refused(&out, "pass the --layout");
    assert_eq!(stdout(&out), "", "no cascade of FAILs");
    let out = verify_against(s(&stick), &source, &["--layout", s(&layout)]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("layout mine"), "{}", stdout(&out));
}

#[test]
fn verify_says_what_a_stick_without_a_table_is() {
    let source = fixture("esxi40");
    let dir = scratch("trust-no-table");
    let stick = dir.join("stick.img");
    let out = run(&["write", s(&source), s(&stick), "--size", "64M", "--quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    oracle(
        "dd",
        &[
            "if=/dev/zero",
            &format!("of={}", s(&stick)),
            "bs=512",
            "count=1",
            "conv=notrunc",
        ],
    );
    assert!(!sfdisk_sees_a_table(s(&stick)), "sfdisk: no table any more");
    for args in [
        vec!["verify", s(&stick)],
        vec!["verify", s(&stick), "--against", s(&source)],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let text = stdout(&out)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(text.contains("interrupted or failed write"), "{text}");
        assert!(text.contains("run esxstick write again"), "{text}");
        assert_eq!(text.matches("FAIL").count(), 1, "one FAIL: {text}");
    }
}

/// A refusal before anything happens: exit 2, one line with `needle`, no
/// plan printed, the target unchanged.
fn refused_untouched(args: &[&str], target: &Path, needle: &str) {
    let before = digest(target);
    let out = run(args);
    assert_refused(&out, needle);
    assert_eq!(
        stdout(&out),
        "",
        "{args:?}: the plan was printed before refusing"
    );
    assert_eq!(digest(target), before, "{args:?}: the target changed");
}

#[test]
fn write_checks_the_target_before_printing_the_plan() {
    let source = fixture("esxi40");
    let src = s(&source);
    let dir = scratch("trust-target-checks");
    // A read-only loop device (losetup -r), and a read-only file.
    let backing = dir.join("ro.img");
    sparse(&backing, 128 << 20);
    let ro = Loop::attach_read_only(&backing);
    let out = run(&["write", src, &ro.0, "--yes"]);
    assert_refused(&out, "is read-only");
    assert!(
        stderr(&out).contains("nothing was written"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");
    drop(ro);
    let file = dir.join("ro-file.img");
    sparse(&file, 128 << 20);
    fs::set_permissions(&file, fs::Permissions::from_mode(0o444)).unwrap();
    refused_untouched(&["write", src, s(&file), "--yes"], &file, "is read-only");
    // Too small for --size.
    let small = dir.join("small.img");
    sparse(&small, 32 << 20);
    let lo = Loop::attach(&small);
    refused_untouched(
        &["write", src, &lo.0, "--size", "64M", "--yes"],
        Path::new(&lo.0),
        "less than",
    );
    drop(lo);
    // A partition of a loop device (partx adds it; mknod makes its node).
    let disk = dir.join("parted.img");
    oracle("cp", &["--sparse=always", src, s(&disk)]);
    let lo = Command::new("losetup")
        .args(["-P", "-f", "--show", s(&disk)])
        .output()
        .expect("losetup");
    let lo = Loop(stdout(&lo).trim().to_string());
    let _ = Command::new("partx").args(["-a", &lo.0]).status();
    let name = lo.0.trim_start_matches("/dev/");
    let dev = fs::read_to_string(format!("/sys/block/{name}/{name}p5/dev"))
        .expect("partx added partition 5");
    let (major, minor) = dev.trim().split_once(':').unwrap();
    let node = dir.join("p5");
    oracle("mknod", &[s(&node), "b", major, minor]);
    refused_untouched(
        &["write", src, s(&node), "--yes"],
        &node,
        "is a partition; give the whole disk",
    );
    let out = run(&["verify", s(&node)]);
    assert_refused(&out, "is a partition; give the whole disk");
    drop(lo);
}

#[test]
fn write_refuses_a_full_file_system_and_a_locked_file() {
    let source = fixture("esxi40");
    let src = s(&source);
    let dir = scratch("trust-room-lock");
    // A 16 MiB file system has no room for a 53 MiB write.
    let fsimg = dir.join("small-fs.img");
    sparse(&fsimg, 16 << 20);
    oracle("mkfs.ext2", &["-q", "-F", s(&fsimg)]);
    let lo = Loop::attach(&fsimg);
    let mnt = dir.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    oracle("mount", &[&lo.0, s(&mnt)]);
    let target = mnt.join("stick.img");
    let out = run(&["write", src, s(&target), "--size", "64M"]);
    let exists = target.exists();
    let _ = Command::new("umount").arg(&mnt).status();
    drop(lo);
    assert_refused(&out, "free on its file system");
    assert!(!exists, "the image file was created");
    // An image file another program holds an exclusive flock on.
    let stick = dir.join("stick.img");
    sparse(&stick, 64 << 20);
    let mut holder = Command::new("flock")
        .args(["-o", "-x", s(&stick), "sleep", "30"])
        .spawn()
        .expect("oracle flock cannot run: run scripts/install-deps");
    std::thread::sleep(Duration::from_millis(300));
    let before = digest(&stick);
    let out = run(&["write", src, s(&stick), "--yes"]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_refused(&out, "holds a lock on it");
    assert_eq!(digest(&stick), before);
    // Two writes at once: one of them may be refused, and what is left
    // verifies.
    let a = write_cmd(src, s(&stick)).spawn().unwrap();
    let b = write_cmd(src, s(&stick)).spawn().unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    for out in [&a, &b] {
        if !out.status.success() {
            assert_refused(out, "holds a lock on it");
        }
    }
    assert!(a.status.success() || b.status.success());
    let out = verify_against(s(&stick), &source, &[]);
    assert!(out.status.success(), "{}", stdout(&out));
}

fn write_cmd(source: &str, target: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_esxstick"));
    cmd.args(["write", source, target, "--yes", "--quiet", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

#[test]
fn the_source_is_never_the_target_through_any_path() {
    let dir = scratch("trust-source-paths");
    let copy = dir.join("x.dd");
    oracle("cp", &["--sparse=always", s(&fixture("esxi40")), s(&copy)]);
    let link = dir.join("link.dd");
    std::os::unix::fs::symlink(&copy, &link).unwrap();
    let hard = dir.join("hard.dd");
    fs::hard_link(&copy, &hard).unwrap();
    for target in [&link, &hard] {
        refused_untouched(
            &["write", s(&copy), s(target), "--yes"],
            &copy,
            "source image itself",
        );
    }
    // SOURCE a loop device over x.dd, TARGET x.dd (and the reverse).
    let lo = Loop::attach(&copy);
    refused_untouched(
        &["write", &lo.0, s(&copy), "--yes"],
        &copy,
        "behind the source loop device",
    );
    refused_untouched(
        &["write", s(&copy), &lo.0, "--yes"],
        &copy,
        "over the source",
    );
    drop(lo);
    // TARGET the disk whose file system holds SOURCE.
    let fsimg = dir.join("fs.img");
    sparse(&fsimg, 1200 << 20);
    oracle("mkfs.ext2", &["-q", "-F", s(&fsimg)]);
    let lo = Loop::attach(&fsimg);
    let mnt = dir.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    oracle("mount", &[&lo.0, s(&mnt)]);
    let inside = mnt.join("x.dd");
    oracle("cp", &["--sparse=always", s(&copy), s(&inside)]);
    let out = run(&["write", s(&inside), &lo.0, "--yes"]);
    let _ = Command::new("umount").arg(&mnt).status();
    drop(lo);
    assert_refused(&out, "holds the file system the source image is on");
    assert_eq!(stdout(&out), "");
}

/// Runs a write of `source` to `target` with `ESXSTICK_FAULT=fault`.
fn faulted(source: &Path, target: &str, size: Option<&str>, fault: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_esxstick"));
    cmd.args(["write", s(source), target, "--yes", "--quiet"]);
    if let Some(size) = size {
        cmd.args(["--size", size]);
    }
    cmd.env("ESXSTICK_FAULT", fault)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn an_interrupted_write_says_where_it_stopped_and_in_what_state() {
    let source = fixture("esxi40");
    let dir = scratch("trust-interrupt");
    let backing = dir.join("disk.img");
    sparse(&backing, 64 << 20);
    let lo = Loop::attach(&backing);
    // A write makes a few dozen (gathered) writes: the 12th lies among the
    // bank's files, the 3rd in the invalidation before them.
    for (fault, code) in [("write:12:sigint", 130), ("write:3:sigterm", 143)] {
        let out = faulted(&source, &lo.0, None, fault);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{fault}: {err}");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{fault}: one line: {err}"
        );
        assert!(
            err.contains(&format!("writing {} interrupted at ", lo.0)),
            "{err}"
        );
        assert!(
            err.contains("the stick has no valid partition table"),
            "{err}"
        );
        assert!(err.ends_with("run the same command again\n"), "{err}");
        assert!(!sfdisk_sees_a_table(&lo.0), "{fault}: sfdisk finds a table");
        let out = run(&["verify", &lo.0]);
        assert!(
            stdout(&out).contains("interrupted or failed write"),
            "{}",
            stdout(&out)
        );
    }
    let out = run(&["write", s(&source), &lo.0, "--yes", "--quiet"]);
    assert!(out.status.success(), "the rerun: {}", stderr(&out));
    drop(lo);
    // A new image file esxstick created is deleted.
    let new = dir.join("new.img");
    let out = faulted(&source, s(&new), Some("64M"), "write:12:sigint");
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the image file esxstick created was deleted"),
        "{}",
        stderr(&out)
    );
    assert!(!new.exists(), "the new image file is left behind");
}

#[test]
fn ctrl_c_from_outside_ends_cleanly_before_and_during_the_write() {
    let dir = scratch("trust-sigint");
    let tmp = dir.join("tmpdir");
    fs::create_dir_all(&tmp).unwrap();
    let target = dir.join("stick.img");
    sparse(&target, 64 << 20);
    // While a .dd.bz2 is read (seconds), nothing is written yet.
    let child = Command::new(env!("CARGO_BIN_EXE_esxstick"))
        .args([
            "write",
            s(&fixture("esxi40-bz2")),
            s(&target),
            "--yes",
            "--quiet",
        ])
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    oracle("kill", &["-INT", &child.id().to_string()]);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert_eq!(stderr(&out), "esxstick: interrupted; nothing was written\n");
    assert!(!sfdisk_sees_a_table(s(&target)), "nothing written");
    assert_eq!(
        fs::read_dir(&tmp).unwrap().count(),
        0,
        "TMPDIR is left empty"
    );
    // During the write: a line naming the phase, or a complete stick.
    let source = fixture("esxi40");
    let started = Instant::now();
    let out = run(&["write", s(&source), s(&target), "--yes", "--quiet"]);
    assert!(out.status.success());
    let whole = started.elapsed();
    for i in 1..4 {
        let child = write_cmd(s(&source), s(&target)).spawn().unwrap();
        std::thread::sleep(whole.mul_f64(f64::from(i) / 4.0));
        oracle("kill", &["-INT", &child.id().to_string()]);
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        match out.status.code() {
            Some(0) => {}
            Some(130) => {
                assert_eq!(err.trim_end().lines().count(), 1, "{err}");
                assert!(
                    err.contains("run the same command again")
                        || err.contains("nothing was written"),
                    "{err}"
                );
            }
            other => panic!("exit {other:?}: {err}"),
        }
        if sfdisk_sees_a_table(s(&target)) {
            assert!(verify_against(s(&target), &source, &[]).status.success());
        }
    }
}

#[test]
fn the_target_is_described_and_swapped_arguments_are_named() {
    let source = fixture("esxi40");
    let src = s(&source);
    let dir = scratch("trust-holds");
    let stick = dir.join("stick.img");
    assert!(run(&["write", src, s(&stick), "--size", "64M", "--quiet"])
        .status
        .success());
    let cases = [
        (
            stick.clone(),
            "an ESXi stick (build 4.0.0-164009, layout esxi-native)",
        ),
        (dir.join("empty.img"), "nothing (its first MiB is zeros)"),
        (dir.join("fat.img"), "a FAT volume labelled \"USBSTICK\""),
    ];
    sparse(&cases[1].0, 64 << 20);
    sparse(&cases[2].0, 64 << 20);
    oracle("mkfs.fat", &["-n", "USBSTICK", s(&cases[2].0)]);
    for (target, holds) in &cases {
        refused_untouched(&["write", src, s(target)], target, holds);
    }
    // TARGET a whole ESXi image: SOURCE and TARGET may be swapped.
    let image = dir.join("source.dd");
    oracle("cp", &["--sparse=always", src, s(&image)]);
    refused_untouched(
        &["write", s(&stick), s(&image)],
        &image,
        "SOURCE and TARGET may be swapped",
    );
    // SOURCE blank, TARGET an ESXi image.
    let blank = dir.join("blank.img");
    sparse(&blank, 100 << 20);
    refused_untouched(
        &["write", s(&blank), s(&image)],
        &image,
        "SOURCE and TARGET may be swapped",
    );
    // On a terminal (script gives one), the question says it too.
    let cmd = format!(
        "{} write {} {}",
        env!("CARGO_BIN_EXE_esxstick"),
        s(&stick),
        s(&image)
    );
    let before = digest(&image);
    let mut tty = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("oracle script cannot run");
    use std::io::Write as _;
    tty.stdin.take().unwrap().write_all(b"no\n").unwrap();
    let out = tty.wait_with_output().unwrap();
    let text = stdout(&out);
    assert!(
        text.contains("which holds an ESXi disk image (build 4.0.0-164009)"),
        "{text}"
    );
    assert!(text.contains("SOURCE and TARGET may be swapped"), "{text}");
    assert!(
        text.contains("not confirmed; nothing was written"),
        "{text}"
    );
    assert_eq!(digest(&image), before);
}

#[test]
fn ebr_links_to_sector_0_are_loops_as_sfdisk_sees_them() {
    let dir = scratch("trust-ebr");
    let img = dir.join("self-link.img");
    oracle("cp", &["--sparse=always", s(&fixture("esxi40")), s(&img)]);
    // The first EBR (sector 8192): its link entry (the second, at byte
    // 462) keeps type 05; its relative start (at byte 470) becomes 0.
    oracle(
        "dd",
        &[
            "if=/dev/zero",
            &format!("of={}", s(&img)),
            "bs=1",
            "count=4",
            &format!("seek={}", 8192 * 512 + 462 + 8),
            "conv=notrunc",
        ],
    );
    let sf = Command::new("sfdisk")
        .args(["-d", s(&img)])
        .output()
        .unwrap();
    assert!(
        stderr(&sf).contains("Omitting partitions after #60"),
        "sfdisk: {}",
        stderr(&sf)
    );
    let control = Command::new("sfdisk")
        .args(["-d", s(&fixture("esxi40"))])
        .output()
        .unwrap();
    assert!(
        !stderr(&control).contains("Omitting"),
        "control: {}",
        stderr(&control)
    );
    assert_refused(
        &run(&["inspect", s(&img)]),
        "the EBR chain loops: the EBR at sector 8192 links back to sector 8192",
    );
}

#[test]
fn output_is_readable() {
    let source = fixture("esxi40");
    let src = s(&source);
    let dir = scratch("trust-output");
    let stick = dir.join("stick.img");
    let out = run(&["write", src, s(&stick), "--size", "64M"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut texts = vec![stdout(&out)];
    for args in [
        vec!["inspect", src],
        vec!["plan", src, "--size", "64M"],
        vec!["verify", s(&stick), "--against", src],
        vec!["layouts"],
    ] {
        texts.push(stdout(&run(&args)));
    }
    for cmd in [
        "", "inspect", "extract", "plan", "write", "verify", "layouts",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_esxstick"))
            .args([cmd, "--help"].iter().filter(|a| !a.is_empty()))
            .env("COLUMNS", "80")
            .output()
            .unwrap();
        texts.push(stdout(&out));
    }
    for text in &texts {
        for line in text.lines() {
            assert!(
                line.chars().count() <= 80,
                "{} columns: {line}",
                line.chars().count()
            );
        }
    }
    // A FAIL names the fields that differ, not a debug dump.
    let bad = dir.join("bad.img");
    fs::copy(&stick, &bad).unwrap();
    let bank = sfdisk_start(&bad, 5);
    let mut bytes = fs::read(&bad).unwrap();
    bytes[(bank * 512 + 0x18) as usize] = 33; // sectors per track
    fs::write(&bad, bytes).unwrap();
    let text = stdout(&run(&["verify", s(&bad), "--against", src]));
    assert!(
        text.contains("FAIL bank 5 boot sector: sectors_per_track: 33, planned 32"),
        "{text}"
    );
    assert!(!text.contains("BootSector"), "{text}");
    // An empty bank asked for: the report, then why.
    let out = run(&["inspect", src, "--bank", "6"]);
    assert_refused(&out, "--bank 6: no boot.cfg (empty bank)");
    assert!(
        stdout(&out).contains("Partitions (by entry number"),
        "{}",
        stdout(&out)
    );
    // Sizes.
    assert_refused(
        &run(&["plan", src, "--size", "64"]),
        "did you mean 64M (MiB) or 64MB?",
    );
    for size in ["-1", "1e9"] {
        assert_refused(
            &run(&["plan", src, "--size", size]),
            "K/M/G/T for powers of 1024",
        );
    }
    // No decompress bar for a raw source on a terminal; one for a bz2.
    for (image, bar) in [(source.clone(), false), (fixture("esxi40-bz2"), true)] {
        let cmd = format!("{} inspect {}", env!("CARGO_BIN_EXE_esxstick"), s(&image));
        let out = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .output()
            .unwrap();
        assert_eq!(stdout(&out).contains("decompress"), bar, "{}", s(&image));
    }
}

#[test]
fn json_means_json_and_plan_takes_what_write_takes() {
    let source = fixture("esxi40");
    let src = s(&source);
    let dir = scratch("trust-json");
    let target = dir.join("t.img");
    sparse(&target, 1 << 30);
    for (args, kind) in [
        (vec!["plan", src, "--size", "1M", "--json"], "does-not-fit"),
        (vec!["write", src, s(&target), "--json"], "target"),
        (vec!["plan", "--json"], "usage"),
        (
            vec!["verify", s(&dir.join("missing.img")), "--json"],
            "open",
        ),
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let doc: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", stdout(&out)));
        assert_eq!(doc["error"]["kind"], kind, "{args:?}");
        assert!(doc["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        if kind != "usage" {
            assert_eq!(
                stderr(&out).lines().count(),
                1,
                "{args:?}: {}",
                stderr(&out)
            );
        }
    }
    let both = run(&["plan", src, s(&target), "--size", "64M", "--json"]);
    let size = run(&["plan", src, "--size", "64M", "--json"]);
    assert!(both.status.success(), "{}", stderr(&both));
    assert_eq!(both.stdout, size.stdout);
}

/// Every key of `doc`, at any depth.
fn keys(doc: &Value, out: &mut Vec<String>) {
    match doc {
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                keys(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| keys(v, out)),
        _ => {}
    }
}

#[test]
fn readme_documents_every_json_field_printed() {
    let readme = fs::read_to_string(root().join("README.md")).unwrap();
    let source = fixture("esxi40");
    let src = s(&source);
    let dir = scratch("trust-readme");
    let stick = dir.join("stick.img");
    let wiped = dir.join("wiped.img");
    sparse(&wiped, 64 << 20);
    let mut found = Vec::new();
    for args in [
        vec!["devices", "--all", "--for", src, "--json"],
        vec!["wipe", s(&wiped), "--yes", "--json"],
        vec!["inspect", src, "--json"],
        vec!["plan", src, "--size", "64M", "--json"],
        vec!["write", src, s(&stick), "--size", "64M", "--json"],
        vec!["verify", s(&stick), "--json"],
        vec!["plan", src, "--size", "1M", "--json"],
        vec!["extract", src, s(&dir.join("x")), "--json"],
        vec!["write", src, s(&dir.join("m1.img")), s(&dir.join("m2.img"))]
            .into_iter()
            .chain(["--size", "64M", "--json", "--no-verify"])
            .collect(),
    ] {
        let out = run(&args);
        keys(&serde_json::from_slice(&out.stdout).unwrap(), &mut found);
    }
    let stream = run(&[
        "write",
        s(&fixture("esxi40-bz2")),
        s(&dir.join("b.img")),
        "--size",
        "64M",
        "--json",
    ]);
    keys(&serde_json::from_slice(&stream.stdout).unwrap(), &mut found);
    found.sort();
    found.dedup();
    // Keys that are file names (the sha256 map) are data, not fields.
    let missing: Vec<_> = found
        .iter()
        .filter(|k| !k.contains('.') && !readme.contains(&format!("\"{k}\"")))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md does not document {missing:?}"
    );
}

/// The default layout follows the source: gpt-minimal for a GPT image,
/// esxi-native for an MBR one, and plan, write and verify agree.
#[test]
fn the_default_layout_follows_the_source() {
    let dir = scratch("trust-default-layout");
    for (variant, layout) in [("gpt", "gpt-minimal"), ("esxi40", "esxi-native")] {
        let source = fixture(variant);
        let plan = run(&["plan", s(&source), "--size", "64M", "--json"]);
        assert!(plan.status.success(), "{variant}: {}", stderr(&plan));
        let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
        assert_eq!(plan["layout"], layout);
        let stick = dir.join(format!("{variant}.img"));
        let out = run(&["write", s(&source), s(&stick), "--size", "64M", "--json"]);
        assert!(out.status.success(), "{variant}: {}", stderr(&out));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["write"]["layout"], layout);
        assert_table_matches_plan(&stick, &plan);
        let v = verify_against(s(&stick), &source, &["--json"]);
        let v: Value = serde_json::from_slice(&v.stdout).unwrap();
        assert_eq!(
            (v["ok"].as_bool(), v["layout"].as_str()),
            (Some(true), Some(layout))
        );
    }
}
