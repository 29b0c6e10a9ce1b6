//! Crash safety: a write that fails at any write or fsync, is killed at
//! any moment, or loses its device must never leave a stick that looks
//! valid but is not — either no valid MBR signature and no table that
//! sfdisk reads, or the complete stick that verifies — and a rerun must
//! succeed. MBR sticks (vcritical-64mb) and GPT sticks (gpt-minimal) alike.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

const SIZE: &str = "65273856";

/// What is written: a fixture with a layout.
#[derive(Clone, Copy)]
struct Case {
    variant: &'static str,
    layout: &'static str,
}

const MBR: Case = Case {
    variant: "esxi40",
    layout: "vcritical-64mb",
};
const GPT: Case = Case {
    variant: "gpt",
    layout: "gpt-minimal",
};

fn write_cmd(case: Case, source: &Path, target: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_esxstick"));
    cmd.args([
        "write",
        source.to_str().unwrap(),
        target,
        "--size",
        SIZE,
        "--layout",
        case.layout,
    ])
    .args(["--yes", "--quiet", "--json"])
    .env("RUST_BACKTRACE", "1")
    .stdin(Stdio::null());
    cmd
}

fn has_mbr_signature(target: &str) -> bool {
    let mut sector = [0u8; 512];
    use std::os::unix::fs::FileExt;
    fs::File::open(target)
        .unwrap()
        .read_exact_at(&mut sector, 0)
        .unwrap();
    sector[510..] == [0x55, 0xaa]
}

/// Whether sfdisk finds a partition table (of any kind) on `target`.
fn sfdisk_reads_a_table(target: &str) -> bool {
    Command::new("sfdisk")
        .args(["--json", target])
        .stderr(Stdio::null())
        .output()
        .expect("oracle sfdisk cannot run: run scripts/test, which installs it")
        .status
        .success()
}

/// The invariant: no valid table, or a stick that verifies in full.
fn assert_never_half_valid(case: Case, source: &Path, target: &str, what: &str) {
    if has_mbr_signature(target) || sfdisk_reads_a_table(target) {
        let out = esxstick(&[
            "verify",
            target,
            "--against",
            source.to_str().unwrap(),
            "--layout",
            case.layout,
        ]);
        assert!(
            out.status.success(),
            "{what}: a valid table over an incomplete stick:\n{}",
            stdout(&out)
        );
    }
}

fn rerun_succeeds(case: Case, source: &Path, target: &str, what: &str) {
    let out = write_cmd(case, source, target).output().unwrap();
    assert!(
        out.status.success(),
        "{what}: the rerun failed: {}",
        stderr(&out)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["verify"]["ok"], true,
        "{what}: the rerun did not verify"
    );
}

/// The fault points of a full write: (writes, syncs).
fn fault_points(case: Case, source: &Path, target: &str) -> (u64, u64) {
    let out = write_cmd(case, source, target)
        .env("ESXSTICK_FAULT", "count")
        .output()
        .unwrap();
    fault_counts(&out)
}

#[test]
fn a_failing_write_or_fsync_never_leaves_a_half_valid_stick() {
    sweep(MBR, 173);
}

#[test]
fn a_failing_write_or_fsync_never_leaves_a_half_valid_gpt_stick() {
    sweep(GPT, 347);
}

/// Fails, one run each, every write outside the bulk of file data and
/// every `step`-th inside it, with errors of both kinds; short writes at
/// the edges and the middle; every fsync.
fn sweep(case: Case, step: usize) {
    let source = fixture(case.variant);
    let dir = scratch(&format!("faults-sweep-{}", case.variant));
    let target = dir.join("stick.img");
    sparse(&target, 65_273_856);
    let t = target.to_str().unwrap();
    let (writes, syncs) = fault_points(case, &source, t);
    assert!(writes >= 10 && syncs >= 3, "{writes} writes, {syncs} syncs");
    let mut points: Vec<(String, String)> = Vec::new();
    let edges = (1..=writes.min(40)).chain(writes.saturating_sub(40).max(41)..=writes);
    for n in edges.chain((41..writes.saturating_sub(40)).step_by(step)) {
        let how = if n % 3 == 0 { "enospc" } else { "eio" };
        points.push(("write".into(), format!("{n}:{how}")));
    }
    for n in [1, 2, 3, 20, writes / 2, writes - 2, writes - 1, writes] {
        points.push(("write".into(), format!("{n}:short")));
    }
    for n in 1..=syncs {
        points.push(("sync".into(), format!("{n}:eio")));
    }
    let mut kept_going = Vec::new();
    for (i, (kind, spec)) in points.iter().enumerate() {
        let what = format!("{kind}:{spec}");
        let out = write_cmd(case, &source, t)
            .env("ESXSTICK_FAULT", &what)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{what}: {err}");
        if out.status.success() {
            // A short write is retried; an error must stop the write.
            if !spec.ends_with("short") {
                kept_going.push(what.clone());
            }
        } else {
            assert_eq!(
                err.trim_end().lines().count(),
                1,
                "{what}: one line expected: {err}"
            );
            assert!(err.starts_with("esxstick: "), "{what}: {err}");
        }
        assert_never_half_valid(case, &source, t, &what);
        if i % 10 == 0 {
            rerun_succeeds(case, &source, t, &what);
        }
    }
    assert!(
        kept_going.is_empty(),
        "injected errors that did not stop the write: {kept_going:?}"
    );
    rerun_succeeds(case, &source, t, "after the sweep");
    eprintln!(
        "{}: swept {} fault points over {writes} writes and {syncs} syncs",
        case.layout,
        points.len()
    );
}

#[test]
fn killing_a_write_at_any_moment_never_leaves_a_half_valid_stick() {
    kill_at_any_moment(MBR);
}

#[test]
fn killing_a_gpt_write_at_any_moment_never_leaves_a_half_valid_stick() {
    kill_at_any_moment(GPT);
}

/// SIGKILLs a write to a loop device at 24 moments spread over a whole
/// write's duration.
fn kill_at_any_moment(case: Case) {
    let source = fixture(case.variant);
    let dir = scratch(&format!("faults-kill-{}", case.variant));
    let backing = dir.join("disk.img");
    sparse(&backing, 65_273_856);
    let lo = Loop::attach(&backing);
    let started = Instant::now();
    rerun_succeeds(case, &source, &lo.0, "first write");
    let duration = started.elapsed();
    let points = 24;
    for i in 0..points {
        let at = duration.mul_f64(f64::from(i) / f64::from(points));
        kill_after(&mut write_cmd(case, &source, &lo.0), at);
        assert_never_half_valid(case, &source, &lo.0, &format!("killed after {at:?}"));
    }
    rerun_succeeds(case, &source, &lo.0, "after the kills");
}

#[test]
fn a_target_that_disappears_ends_cleanly() {
    let source = fixture("esxi40");
    let dir = scratch("faults-detach");
    let backing = dir.join("disk.img");
    sparse(&backing, 65_273_856);
    let lo = Loop::attach(&backing);
    let child = write_cmd(MBR, &source, &lo.0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(150));
    let _ = Command::new("losetup").args(["-d", &lo.0]).status();
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(60), "no hang");
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    if !out.status.success() {
        assert_eq!(err.trim_end().lines().count(), 1, "one clear line: {err}");
    }
}
