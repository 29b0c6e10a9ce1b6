//! A damaged module never reaches a stick: on a raw image and inside an
//! intact gzip stream (whose own CRC cannot help: esxstick never reads to
//! its end), a module whose gzip member fails its CRC-32 (made by
//! scripts/make-fixture, confirmed by `gzip -t`) is named by `inspect`,
//! stops `write` before the table (sfdisk finds none), and with
//! `--no-module-check` is written, said so, and then caught by `verify`.

use std::path::Path;
use std::process::Command;

use crate::common::*;

/// Whether `gzip -t` accepts the file `name` of partition 5 of `image`
/// (found by sfdisk), copied out with mcopy.
fn gzip_accepts(image: &Path, name: &str, dir: &Path) -> bool {
    let file = dir.join(name);
    let bank5 = sfdisk_start(image, 5);
    oracle(
        "mcopy",
        &[
            "-n",
            "-i",
            &mtools_image(image, bank5),
            &format!("::/{name}"),
            file.to_str().unwrap(),
        ],
    );
    let status = Command::new("gzip")
        .args(["-t", file.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .status()
        .expect("oracle gzip cannot run: run scripts/test, which installs it");
    status.success()
}

#[test]
fn inspect_names_the_module_gzip_rejects() {
    let dir = scratch("modules-inspect");
    for variant in ["bad-module", "esxi40"] {
        let image = fixture(variant);
        let out = esxstick(&["inspect", "--json", image.to_str().unwrap()]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let modules = report["modules"].as_array().unwrap();
        let mut damaged = Vec::new();
        for m in modules.iter().filter(|m| m["role"] != "config") {
            let name = m["name"].as_str().unwrap();
            let ok = m["check"]["ok"].as_bool().expect("every module checked");
            assert_eq!(
                ok,
                gzip_accepts(&image, name, &dir),
                "{variant}: {name}: esxstick and gzip -t disagree"
            );
            if !ok {
                damaged.push(name.to_string());
            }
        }
        if variant == "esxi40" {
            assert!(damaged.is_empty(), "the intact image: {damaged:?}");
            assert!(out.status.success(), "{}", stderr(&out));
        } else {
            assert_eq!(damaged, ["sys.vgz"]);
            assert_refused(&out, "module sys.vgz: damaged gzip stream");
        }
    }
    let bad = fixture("bad-module");
    let text = esxstick(&["inspect", bad.to_str().unwrap()]);
    let line = stdout(&text)
        .lines()
        .find(|l| l.contains("sys.vgz"))
        .map(str::to_string)
        .unwrap();
    assert!(line.ends_with("DAMAGED"), "{line}");
    assert!(line.len() <= 80, "{line}");
    let skipped = esxstick(&["inspect", "--no-module-check", bad.to_str().unwrap()]);
    assert!(skipped.status.success(), "{}", stderr(&skipped));
}

#[test]
fn a_damaged_module_stops_the_write_before_the_table() {
    let dir = scratch("modules-write");
    for variant in ["bad-module", "bad-module-gz"] {
        let source = fixture(variant);
        let target = dir.join(format!("{variant}.img"));
        sparse(&target, 65_273_856);
        let t = target.to_str().unwrap();
        let out = esxstick(&["write", source.to_str().unwrap(), t, "--yes", "--quiet"]);
        assert_refused(&out, "the check of the modules: bootbank 5: module sys.vgz");
        let sfdisk = Command::new("sfdisk").args(["-d", t]).output().unwrap();
        assert!(
            !sfdisk.status.success(),
            "{variant}: sfdisk finds a table: {}",
            stdout(&sfdisk)
        );

        // Skipped: written, and said so; the self-check names the module.
        let out = esxstick(&[
            "write",
            source.to_str().unwrap(),
            t,
            "--yes",
            "--quiet",
            "--no-module-check",
            "--json",
        ]);
        assert!(out.status.success(), "{variant}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("--no-module-check: the modules' gzip streams are not checked"),
            "{}",
            stderr(&out)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(report["write"]["modules_checked"].is_null());
        assert!(!gzip_accepts(&target, "sys.vgz", &dir), "{variant}");
        let verify = esxstick(&["verify", t]);
        assert_eq!(verify.status.code(), Some(1), "{}", stdout(&verify));
        assert!(
            stdout(&verify).contains("FAIL bank 5: sys.vgz: damaged gzip stream"),
            "{}",
            stdout(&verify)
        );
    }
    // The intact image: every module checked, the stick written.
    let source = fixture("esxi40");
    let target = dir.join("esxi40.img");
    sparse(&target, 65_273_856);
    let out = esxstick(&[
        "write",
        source.to_str().unwrap(),
        target.to_str().unwrap(),
        "--yes",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let checked = report["write"]["modules_checked"].as_array().unwrap();
    assert_eq!(checked.len(), 8, "{checked:?}");
}
