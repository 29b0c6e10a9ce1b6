//! `plan` end to end: the hand-made 64 MB table reproduced exactly, fit
//! and refusal on 64 MB, and every plan expressible by sfdisk.

use std::fs;
use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::*;
use serde_json::Value;

const VCRITICAL_BYTES: &str = "65273856";

fn plan_json(variant: &str, size: &str, layout: &str) -> Value {
    let image = fixture(variant);
    let out = esxstick(&[
        "plan",
        image.to_str().unwrap(),
        "--size",
        size,
        "--layout",
        layout,
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{variant} {size} {layout}: {}",
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).expect("plan --json prints JSON")
}

fn entry(plan: &Value, n: u64) -> &Value {
    plan["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["entry"] == n)
        .unwrap_or_else(|| panic!("no entry {n}"))
}

#[test]
fn vcritical_layout_reproduces_the_hand_made_table() {
    let plan = plan_json("esxi40", VCRITICAL_BYTES, "vcritical-64mb");
    let expect = [
        (4, "0x04", 42, 3149, true, [0, 1, 1], [24, 2, 42]),
        (1, "0x05", 3150, 127385, false, [25, 0, 1], [1010, 2, 42]),
        (5, "0x06", 3192, 127385, false, [25, 1, 1], [1010, 2, 42]),
    ];
    assert_eq!(plan["partitions"].as_array().unwrap().len(), 3);
    for (n, kind, start, end, active, chs_start, chs_end) in expect {
        let p = entry(&plan, n);
        assert_eq!(p["type"], kind, "entry {n}");
        assert_eq!(p["start"], start, "entry {n}");
        assert_eq!(p["end"], end, "entry {n}");
        assert_eq!(p["active"], active, "entry {n}");
        assert_eq!(p["chs_start"], serde_json::json!(chs_start), "entry {n}");
        assert_eq!(p["chs_end"], serde_json::json!(chs_end), "entry {n}");
    }
    assert_eq!(plan["heads"], 3);
    assert_eq!(plan["sectors_per_track"], 42);
    // The boot partition moved from 32 to 42: its BPB is patched to match.
    let patches = plan["boot"]["bpb_patches"].as_array().unwrap();
    let hidden = patches
        .iter()
        .find(|p| p["field"] == "hidden_sectors")
        .unwrap();
    assert_eq!(
        (hidden["old"].as_u64(), hidden["new"].as_u64()),
        (Some(32), Some(42))
    );
}

#[test]
fn esxi_native_fits_40_on_64mb_and_refuses_41() {
    let plan = plan_json("esxi40", VCRITICAL_BYTES, "esxi-native");
    assert_eq!(entry(&plan, 4)["start"], 32);
    assert_eq!(entry(&plan, 5)["start"], 8224);
    assert!(entry(&plan, 5)["end"].as_u64().unwrap() < 127488);

    let image = fixture("esxi41");
    let out = esxstick(&["plan", image.to_str().unwrap(), "--size", VCRITICAL_BYTES]);
    assert_refused(&out, "does not fit: needs ");
    let err = stderr(&out);
    assert!(err.contains("target has 65,273,856 (short by "), "{err}");
    assert!(
        err.contains("the smallest common size that fits is 128 MB"),
        "{err}"
    );
    // The figure it names is enough: planning exactly that size succeeds.
    let needs: String = err
        .split("needs ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .unwrap()
        .replace(',', "");
    let ok = esxstick(&["plan", image.to_str().unwrap(), "--size", &needs]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let smaller = (needs.parse::<u64>().unwrap() - 512).to_string();
    assert_refused(
        &esxstick(&["plan", image.to_str().unwrap(), "--size", &smaller]),
        "does not fit",
    );
}

#[test]
fn target_file_gives_the_size_and_plan_writes_nothing() {
    let image = fixture("esxi40");
    let dir = scratch("plan-target");
    let target = dir.join("stick.img");
    sparse(&target, 65_273_856);
    let before = fs::read(&target).unwrap();
    let by_file = esxstick(&[
        "plan",
        image.to_str().unwrap(),
        target.to_str().unwrap(),
        "--json",
    ]);
    assert!(by_file.status.success(), "{}", stderr(&by_file));
    let by_size = esxstick(&[
        "plan",
        image.to_str().unwrap(),
        "--size",
        VCRITICAL_BYTES,
        "--json",
    ]);
    assert_eq!(by_file.stdout, by_size.stdout);
    assert_eq!(fs::read(&target).unwrap(), before, "plan must not write");
    assert_refused(
        &esxstick(&["plan", image.to_str().unwrap(), "--size", "64X"]),
        "unknown unit",
    );
    let usage = esxstick(&["plan", image.to_str().unwrap()]);
    assert_eq!(usage.status.code(), Some(2), "neither --size nor TARGET");
    assert_refused(
        &esxstick(&[
            "plan",
            image.to_str().unwrap(),
            "--size",
            "64M",
            "--layout",
            "nope",
        ]),
        "no layout named",
    );
    assert_refused(
        &esxstick(&[
            "plan",
            fixture("gpt").to_str().unwrap(),
            "--size",
            "64M",
            "--layout",
            "esxi-native",
        ]),
        "needs gpt-minimal",
    );
}

#[test]
fn inspect_reports_the_smallest_target_that_plan_accepts() {
    let image = fixture("esxi41");
    let inv = inspect_json(&image);
    let bytes = inv["smallest_target"]["bytes"].as_u64().unwrap();
    assert_eq!(inv["smallest_target"]["layout"], "esxi-native");
    let ok = esxstick(&[
        "plan",
        image.to_str().unwrap(),
        "--size",
        &bytes.to_string(),
    ]);
    assert!(ok.status.success(), "{}", stderr(&ok));
}

/// Writes the plan's table to a scratch file with sfdisk (a script made
/// from the plan JSON) and checks that sfdisk reads back the same entries.
fn sfdisk_round_trip(variant: &str, size: &str, layout: &str) {
    let plan = plan_json(variant, size, layout);
    let dir = scratch(&format!("plan-sfdisk-{variant}-{layout}-{size}"));
    let img = dir.join("stick.img");
    let sectors = plan["target_sectors"].as_u64().unwrap();
    sparse(&img, sectors * 512);
    let gpt = plan["scheme"] == "gpt";
    let name = img.to_str().unwrap();
    let mut script = if gpt {
        "label: gpt\nfirst-lba: 34\nunit: sectors\n\n".to_string()
    } else {
        "label: dos\nunit: sectors\n\n".to_string()
    };
    for p in plan["partitions"].as_array().unwrap() {
        let kind = p["type"].as_str().unwrap();
        let kind = if gpt {
            kind.to_string()
        } else {
            kind.trim_start_matches("0x").to_string()
        };
        let flag = match (p["active"].as_bool().unwrap(), gpt) {
            (true, false) => ", bootable",
            (true, true) => ", attrs=\"LegacyBIOSBootable\"",
            _ => "",
        };
        script += &format!(
            "{name}{} : start={}, size={}, type={kind}{flag}\n",
            p["entry"], p["start"], p["sectors"]
        );
    }
    let mut child = Command::new("sfdisk")
        .args(["--no-reread", "--no-tell-kernel", "-q", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("oracle sfdisk cannot run: run scripts/test, which installs it");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sfdisk refused the plan:\n{script}\n{}",
        stderr(&out)
    );

    assert_table_matches_plan(&img, &plan);
}

#[test]
fn plans_are_expressible_by_sfdisk() {
    sfdisk_round_trip("esxi40", VCRITICAL_BYTES, "vcritical-64mb");
    sfdisk_round_trip("esxi40", VCRITICAL_BYTES, "esxi-native");
    sfdisk_round_trip("esxi40", "1G", "esxi-native");
    sfdisk_round_trip("esxi40", "2GB", "aligned-1m");
    sfdisk_round_trip("esxi40", "128M", "dual-bank");
    sfdisk_round_trip("gpt", "64M", "gpt-minimal");
    sfdisk_round_trip("gpt", "1G", "gpt-minimal");
}
