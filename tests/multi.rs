//! `write SOURCE TARGET TARGET…` (issue 16, item 2) and the flags every
//! command shares (item 5): several sticks from one run, each proven by
//! sfdisk, fsck.fat, mcopy and `verify`, one booted by VMware's loader; a
//! target refused or failing mid-write left out while the others verify;
//! `-q`, `--json`, `-y` and the new names of `--force` on every command.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;
use serde_json::Value;

const SIZE: &str = "64M";
const LAYOUT: &str = "vcritical-64mb";

/// `write` of the esxi40 fixture onto `targets`, with the vcritical
/// layout at 64 MiB, `--yes` and `extra` flags.
fn write_many(targets: &[&Path], extra: &[&str], env: &[(&str, &str)]) -> Output {
    let image = fixture("esxi40");
    let mut args = vec!["write", image.to_str().unwrap()];
    args.extend(targets.iter().map(|t| t.to_str().unwrap()));
    args.extend(["--size", SIZE, "--layout", LAYOUT, "--yes"]);
    args.extend(extra);
    esxstick_env(&args, env)
}

/// The plan `plan --json` prints for the same arguments.
fn plan_json() -> Value {
    let image = fixture("esxi40");
    let out = esxstick(&[
        "plan",
        image.to_str().unwrap(),
        "--size",
        SIZE,
        "--layout",
        LAYOUT,
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `verify --against` the fixture, run by the test: exit 0.
fn verifies(stick: &Path) {
    let image = fixture("esxi40");
    let out = esxstick(&[
        "verify",
        stick.to_str().unwrap(),
        "--against",
        image.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}: {}{}",
        stick.display(),
        stdout(&out),
        stderr(&out)
    );
}

/// Whether sfdisk finds a partition table on `stick`.
fn has_table(stick: &Path) -> bool {
    Command::new("sfdisk")
        .args(["--dump", stick.to_str().unwrap()])
        .output()
        .expect("sfdisk is installed (scripts/install-deps)")
        .status
        .success()
}

/// `n` new image files in a scratch directory `tag`.
fn files(tag: &str, n: usize) -> Vec<PathBuf> {
    let dir = scratch(tag);
    (0..n).map(|i| dir.join(format!("stick{i}.img"))).collect()
}

/// The summary line of `target` in `write`'s text output.
fn summary_line<'a>(out: &'a str, target: &Path) -> &'a str {
    let name = target.display().to_string();
    out.lines()
        .find(|l| l.contains(&format!(" {name}: ")))
        .unwrap_or_else(|| panic!("no summary line for {name} in:\n{out}"))
}

#[test]
fn four_targets_from_one_run_each_pass_the_oracles_and_one_boots() {
    let sticks = files("multi-four", 4);
    let refs: Vec<&Path> = sticks.iter().map(PathBuf::as_path).collect();
    let out = write_many(&refs, &[], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for stick in &sticks {
        assert!(summary_line(&text, stick).starts_with("ok    "), "{text}");
    }
    assert!(
        text.contains("4 of 4 targets written and verified"),
        "{text}"
    );
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
    let plan = plan_json();
    for stick in &sticks {
        crate::write::check_with_oracles("esxi40", stick, &plan);
        verifies(stick);
    }
    crate::esxboot::boots_bank5(&sticks[3]);
    crate::esxboot::no_bank_without_the_sector(&sticks[3]);
}

#[test]
fn a_read_only_target_is_left_out_and_the_others_are_written() {
    let sticks = files("multi-readonly", 3);
    let ro = sticks[0].with_file_name("readonly.img");
    sparse(&ro, 64 << 20);
    let before = digest(&ro);
    let dev = Loop::attach_read_only(&ro);
    let dev_path = PathBuf::from(&dev.0);
    // One of the others is a (writable) loop device.
    sparse(&sticks[2], 64 << 20);
    let rw = Loop::attach(&sticks[2]);
    let rw_path = PathBuf::from(&rw.0);
    let out = write_many(&[&sticks[0], &dev_path, &sticks[1], &rw_path], &[], &[]);
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(
        out.status.code(),
        Some(2),
        "a target refused: exit 2\n{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let line = summary_line(&text, &dev_path);
    assert!(line.starts_with("FAIL  "), "{text}");
    assert!(text.contains("is read-only"), "{text}");
    assert!(
        text.contains("3 of 4 targets written and verified"),
        "{text}"
    );
    assert!(err.contains("1 of 4 targets failed"), "{err}");
    drop(dev);
    assert_eq!(digest(&ro), before, "the refused target is untouched");
    for stick in [&sticks[0], &sticks[1], &rw_path] {
        assert!(summary_line(&text, stick).starts_with("ok    "), "{text}");
        verifies(stick);
    }
}

#[test]
fn a_target_failing_mid_write_stops_alone_and_json_lists_every_target() {
    let sticks = files("multi-fault", 3);
    let refs: Vec<&Path> = sticks.iter().map(PathBuf::as_path).collect();
    // The 3rd write to stick1.img fails with EIO; the others are not
    // counted by the seam and go on.
    let out = write_many(
        &refs,
        &["--json"],
        &[("ESXSTICK_FAULT", "write:3:eio:stick1.img")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let list: Value = serde_json::from_slice(&out.stdout).expect("one JSON list");
    let list = list.as_array().expect("a list of per-target reports");
    assert_eq!(list.len(), 3);
    for (report, stick) in list.iter().zip(&sticks) {
        assert_eq!(report["target"], stick.display().to_string());
        for key in ["ok", "write", "verify", "error"] {
            assert!(report.get(key).is_some(), "{key} missing: {report}");
        }
    }
    let failed = &list[1];
    assert_eq!(failed["ok"], false);
    assert_eq!(failed["error"]["kind"], "write-failed");
    let message = failed["error"]["message"].as_str().unwrap();
    assert!(message.contains("Input/output error"), "{message}");
    assert!(failed["write"].is_null());
    assert!(!has_table(&sticks[1]), "the failed stick has no table");
    for i in [0, 2] {
        assert_eq!(list[i]["ok"], true, "{}", list[i]);
        assert_eq!(list[i]["verify"]["ok"], true);
        assert_eq!(list[i]["write"]["schema"], "esxstick.write/1");
        verifies(&sticks[i]);
    }
}

#[test]
fn with_one_target_write_json_is_one_report_as_before() {
    let sticks = files("multi-one", 1);
    let out = write_many(&[&sticks[0]], &["--json"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report.is_object(), "one target: one report, not a list");
    assert_eq!(report["verify"]["ok"], true);
}

/// The subcommands `esxstick --help` lists (besides `help`).
fn subcommands() -> Vec<String> {
    let help = stdout(&esxstick(&["--help"]));
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // A description's continuation lines are indented further.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn every_command_takes_quiet_and_json() {
    let commands = subcommands();
    assert!(commands.len() >= 8, "{commands:?}");
    // completions and man print a script and a manual page: nothing to
    // silence, nothing to report as JSON.
    let printers = ["completions", "man"];
    for command in commands.iter().filter(|c| !printers.contains(&c.as_str())) {
        let help = stdout(&esxstick(&[command, "--help"]));
        assert!(help.contains("-q, --quiet"), "{command}: no -q:\n{help}");
        assert!(help.contains("--json"), "{command}: no --json:\n{help}");
        assert!(!help.contains("--force"), "{command}: --force is hidden");
    }
    for asks in ["write", "update", "wipe"] {
        let help = stdout(&esxstick(&[asks, "--help"]));
        assert!(help.contains("-y, --yes"), "{asks}:\n{help}");
        assert!(help.contains("--allow-fixed"), "{asks}:\n{help}");
    }
    let help = stdout(&esxstick(&["extract", "--help"]));
    assert!(help.contains("--overwrite"), "{help}");
}

#[test]
fn quiet_silences_notes_but_not_results_or_errors() {
    let bz2 = fixture("esxi40-bz2");
    let source = bz2.to_str().unwrap();
    let loud = esxstick(&["inspect", source]);
    assert!(loud.status.success(), "{}", stderr(&loud));
    assert!(stderr(&loud).contains("of the bzip2 stream"), "a note");
    let quiet = esxstick(&["inspect", source, "-q"]);
    assert!(quiet.status.success());
    assert_eq!(stderr(&quiet), "", "-q: no notes");
    assert_eq!(stdout(&quiet), stdout(&loud), "-q: the same result");
    let stick = files("multi-quiet", 1).remove(0);
    let target = stick.to_str().unwrap();
    let args = ["write", source, target, "--size", SIZE, "--yes"];
    let out = esxstick(&[&args[..], &["--no-module-check", "-q"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(!err.contains("of the bzip2 stream"), "-q: no note: {err}");
    // A check skipped on request is a warning: -q keeps it.
    assert!(err.contains("--no-module-check: the modules"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(stdout(&out).contains("verified"), "the result is printed");
    let missing = esxstick(&["inspect", "/nonexistent.img", "-q"]);
    assert_refused(&missing, "/nonexistent.img");
}

#[test]
fn extract_json_overwrite_and_the_old_force_spelling() {
    let image = fixture("esxi40");
    let dir = scratch("multi-extract");
    let d = dir.to_str().unwrap();
    fs::write(dir.join("keep.txt"), "mine").unwrap();
    let refused = esxstick(&["extract", image.to_str().unwrap(), d, "--json"]);
    assert_eq!(refused.status.code(), Some(2));
    let error: Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert_eq!(error["error"]["kind"], "output-not-empty");
    assert!(
        stderr(&refused).contains("--overwrite"),
        "the hint names it"
    );
    for flag in ["--overwrite", "--force"] {
        let out = esxstick(&["extract", image.to_str().unwrap(), d, flag, "--json"]);
        assert!(out.status.success(), "{flag}: {}", stderr(&out));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["schema"], "esxstick.extract/1");
        let files = report["files"].as_array().unwrap();
        assert!(files.len() > 3, "{report}");
        for f in files {
            let path = dir.join(f["path"].as_str().unwrap());
            assert_eq!(f["bytes"], fs::metadata(&path).unwrap().len());
            let sum = stdout(&oracle("sha256sum", &[path.to_str().unwrap()]));
            assert_eq!(f["sha256"], sum.split_whitespace().next().unwrap());
        }
    }
    assert_eq!(fs::read_to_string(dir.join("keep.txt")).unwrap(), "mine");
}

#[test]
fn the_old_force_spelling_still_means_allow_fixed() {
    let stick = files("multi-force", 1).remove(0);
    let image = fixture("esxi40");
    let (source, target) = (image.to_str().unwrap(), stick.to_str().unwrap());
    for flag in ["--force", "--allow-fixed"] {
        let out = esxstick(&["write", source, target, "--size", SIZE, "-y", "-q", flag]);
        assert!(out.status.success(), "{flag}: {}", stderr(&out));
    }
}

#[test]
fn a_damaged_module_stops_every_target_before_its_table() {
    let image = fixture("bad-module");
    let sticks = files("multi-damaged", 3);
    let mut args = vec!["write", image.to_str().unwrap()];
    args.extend(sticks.iter().map(|s| s.to_str().unwrap()));
    args.extend(["--size", SIZE, "--yes"]);
    let out = esxstick(&args);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    for stick in &sticks {
        let line = summary_line(&text, stick);
        assert!(line.starts_with("FAIL  "), "{text}");
        assert!(
            !has_table(stick),
            "{}: sfdisk finds a table",
            stick.display()
        );
    }
    assert!(text.contains("sys.vgz"), "the module is named: {text}");
    assert!(text.contains("0 of 3 targets"), "{text}");
    // Control: the intact image writes all three (the same command).
    let good = fixture("esxi40");
    args[1] = good.to_str().unwrap();
    let out = esxstick(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(sticks.iter().all(|s| has_table(s)));
}

#[test]
fn a_stick_that_stores_wrong_bytes_fails_its_verification_alone_exit_1() {
    let sticks = files("multi-corrupt", 3);
    let refs: Vec<&Path> = sticks.iter().map(PathBuf::as_path).collect();
    // The 10th write to stick1.img (module data) lands with a byte
    // flipped; the write itself succeeds.
    let out = write_many(
        &refs,
        &["--json"],
        &[("ESXSTICK_FAULT", "write:10:corrupt:stick1.img")],
    );
    assert_eq!(out.status.code(), Some(1), "only a verification failed");
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let bad = &list[1];
    assert_eq!(bad["ok"], false);
    assert_eq!(bad["error"]["kind"], "verify-failed");
    assert_eq!(bad["verify"]["ok"], false);
    let failed = bad["verify"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["ok"] == false)
        .unwrap();
    let item = failed["item"].as_str().unwrap().to_string();
    let detail = failed["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("differs from the source: BLAKE3 "),
        "{detail}"
    );
    let name = item.strip_prefix("bank 5: ").expect("a file of bank 5");
    // mcopy, not esxstick, says the file differs on that stick only.
    let source = mcopy_file(&fixture("esxi40"), 5, name);
    assert_ne!(mcopy_file(&sticks[1], 5, name), source, "{item}");
    for i in [0, 2] {
        assert_eq!(list[i]["ok"], true, "{}", list[i]);
        assert_eq!(mcopy_file(&sticks[i], 5, name), source);
    }
}
