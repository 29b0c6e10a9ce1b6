//! `inspect` against the oracles: sfdisk for the partition table, minfo and
//! mdir for the FAT volumes, mcopy for file sizes.

use std::fs;

use crate::common::*;
use serde_json::Value;

const GOOD: [&str; 5] = ["esxi40", "esxi41", "alt-active", "fragmented", "gpt"];

fn partitions(inv: &Value) -> &Vec<Value> {
    inv["partitions"].as_array().expect("partitions array")
}

fn partition(inv: &Value, number: u64) -> &Value {
    partitions(inv)
        .iter()
        .find(|p| p["number"] == number)
        .unwrap_or_else(|| panic!("no partition {number}"))
}

#[test]
fn partition_table_matches_sfdisk() {
    for variant in GOOD {
        let image = fixture(variant);
        let inv = inspect_json(&image);
        let sf: Value =
            serde_json::from_slice(&oracle("sfdisk", &["--json", image.to_str().unwrap()]).stdout)
                .unwrap();
        let table = &sf["partitiontable"];
        let scheme = if table["label"] == "gpt" {
            "gpt"
        } else {
            "mbr"
        };
        assert_eq!(inv["source"]["scheme"], scheme, "{variant}");
        let expected = table["partitions"].as_array().unwrap();
        assert_eq!(
            partitions(&inv).len(),
            expected.len(),
            "{variant}: partition count"
        );
        for want in expected {
            let node = want["node"].as_str().unwrap();
            let number: u64 = node[image.to_str().unwrap().len()..].parse().unwrap();
            let got = partition(&inv, number);
            assert_eq!(got["start"], want["start"], "{variant} p{number} start");
            assert_eq!(got["sectors"], want["size"], "{variant} p{number} size");
            let want_type = want["type"].as_str().unwrap();
            let got_type = got["type"].as_str().unwrap();
            if scheme == "mbr" {
                let want_type = u8::from_str_radix(want_type, 16).unwrap();
                assert_eq!(
                    got_type,
                    format!("0x{want_type:02x}"),
                    "{variant} p{number} type"
                );
                let bootable = want["bootable"].as_bool().unwrap_or(false);
                assert_eq!(got["active"], bootable, "{variant} p{number} active");
            } else {
                assert_eq!(got_type, want_type, "{variant} p{number} type");
            }
        }
    }
}

#[test]
fn fat_volumes_match_minfo_and_mdir() {
    for variant in GOOD {
        let image = fixture(variant);
        let inv = inspect_json(&image);
        for p in partitions(&inv).iter().filter(|p| !p["fs"].is_null()) {
            let lba = p["start"].as_u64().unwrap();
            let number = &p["number"];
            let mi = stdout(&oracle("minfo", &["-i", &mtools_image(&image, lba)]));
            let serial = mi
                .lines()
                .find_map(|l| l.strip_prefix("serial number: "))
                .expect("minfo serial");
            assert_eq!(
                p["fs"]["volume_id"],
                serial.trim(),
                "{variant} p{number} volume id"
            );
            let label = mi
                .lines()
                .find_map(|l| l.strip_prefix("disk label=\""))
                .map(|l| l.trim_end_matches('"').trim_end())
                .expect("minfo label");
            assert_eq!(p["fs"]["label"], label, "{variant} p{number} label");
            let md = stdout(&oracle("mdir", &["-i", &mtools_image(&image, lba), "::/"]));
            let free: u64 = md
                .lines()
                .find(|l| l.ends_with("bytes free"))
                .map(|l| l.replace("bytes free", "").replace(' ', ""))
                .expect("mdir free line")
                .parse()
                .unwrap();
            assert_eq!(
                p["fs"]["free_bytes"], free,
                "{variant} p{number} free bytes"
            );
        }
    }
}

#[test]
fn modules_match_mcopy_sizes_and_boot_cfg() {
    for variant in GOOD {
        let image = fixture(variant);
        let inv = inspect_json(&image);
        let bank = inv["active_bank"]["partition"].as_u64().unwrap();
        let lba = partition(&inv, bank)["start"].as_u64().unwrap();
        let dir = scratch(&format!("inspect-modules-{variant}"));
        mcopy_all(&image, lba, &dir);
        let cfg = fs::read_to_string(dir.join("boot.cfg")).unwrap();
        let mut named: Vec<String> = vec!["boot.cfg".into()];
        for line in cfg.lines() {
            if let Some(k) = line.strip_prefix("kernel=") {
                named.push(k.trim_start_matches('/').into());
            }
        }
        for line in cfg.lines() {
            if let Some(m) = line.strip_prefix("modules=") {
                named.extend(
                    m.split(" --- ")
                        .map(|s| s.trim_start_matches('/').to_string()),
                );
            }
        }
        let modules = inv["modules"].as_array().unwrap();
        let names: Vec<&str> = modules
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, named, "{variant}: modules in boot.cfg order");
        let mut payload = 0;
        for m in modules {
            let size = fs::metadata(dir.join(m["name"].as_str().unwrap()))
                .unwrap()
                .len();
            assert_eq!(m["bytes"], size, "{variant} {}", m["name"]);
            assert_eq!(m["present"], true);
            payload += size;
        }
        assert_eq!(inv["payload_bytes"], payload, "{variant} payload");
    }
}

#[test]
fn active_bank_follows_updated_and_can_be_overridden() {
    let image = fixture("alt-active");
    let inv = inspect_json(&image);
    assert_eq!(inv["active_bank"]["partition"], 6);
    assert!(inv["active_bank"]["reason"]
        .as_str()
        .unwrap()
        .contains("updated=2"));
    let forced = esxstick(&["inspect", "--json", "--bank", "5", image.to_str().unwrap()]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    let forced: Value = serde_json::from_slice(&forced.stdout).unwrap();
    assert_eq!(forced["active_bank"]["partition"], 5);
    assert!(forced["active_bank"]["reason"]
        .as_str()
        .unwrap()
        .contains("--bank 5"));

    let single = inspect_json(&fixture("esxi40"));
    assert_eq!(single["active_bank"]["partition"], 5);
    let empty_bank = esxstick(&[
        "inspect",
        "--bank",
        "6",
        fixture("esxi40").to_str().unwrap(),
    ]);
    assert_refused(&empty_bank, "no boot.cfg");
}

#[test]
fn boot_partition_used_extent_holds_every_file() {
    // Zero everything past the reported used extent: fsck.fat must still
    // find the volume clean and mcopy must read every file unchanged.
    let image = fixture("esxi40");
    let inv = inspect_json(&image);
    let boot = &inv["boot"];
    let (start, sectors) = (
        boot["start"].as_u64().unwrap(),
        boot["sectors"].as_u64().unwrap(),
    );
    let used = boot["used_sectors"].as_u64().unwrap();
    assert!(
        used > 0 && used < sectors,
        "used extent {used} of {sectors}"
    );
    let dir = scratch("inspect-extent");
    let whole = dir.join("whole.img");
    let cut = dir.join("cut.img");
    let bytes = fs::read(&image)
        .map(|b| b[(start * 512) as usize..((start + sectors) * 512) as usize].to_vec());
    let bytes = bytes.unwrap();
    fs::write(&whole, &bytes).unwrap();
    let mut trimmed = bytes.clone();
    trimmed[(used * 512) as usize..].fill(0);
    fs::write(&cut, &trimmed).unwrap();
    oracle("fsck.fat", &["-n", cut.to_str().unwrap()]);
    let (a, b) = (dir.join("a"), dir.join("b"));
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    mcopy_all(&whole, 0, &a);
    mcopy_all(&cut, 0, &b);
    let mut count = 0;
    for entry in fs::read_dir(&a).unwrap() {
        let name = entry.unwrap().file_name();
        assert_eq!(
            fs::read(a.join(&name)).unwrap(),
            fs::read(b.join(&name)).unwrap(),
            "{name:?}"
        );
        count += 1;
    }
    assert!(count >= 4, "only {count} files in the boot partition");
}

#[test]
fn malformed_images_are_refused_with_a_reason() {
    let cases = [
        ("bad-truncated", "past the end"),
        ("bad-ebr-loop", "loops"),
        ("bad-ebr-past-end", "past the end of the disk"),
        ("bad-missing-module", "cim.vgz"),
        ("bad-bank-not-fat", "not a FAT file system"),
    ];
    for (variant, needle) in cases {
        let image = fixture(variant);
        for json in [false, true] {
            let mut args = vec!["inspect", image.to_str().unwrap()];
            if json {
                args.push("--json");
            }
            assert_refused(&esxstick(&args), needle);
        }
    }
}

#[test]
fn non_esxi_inputs_are_refused() {
    let dir = scratch("inspect-junk");
    let empty = dir.join("empty");
    fs::write(&empty, b"").unwrap();
    assert_refused(
        &esxstick(&["inspect", empty.to_str().unwrap()]),
        "not a disk image",
    );
    let random = dir.join("random");
    fs::write(
        &random,
        (0..1 << 20)
            .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    assert_refused(
        &esxstick(&["inspect", random.to_str().unwrap()]),
        "not a disk image",
    );
    let plain = dir.join("plain-fat.img");
    oracle("mkfs.fat", &["-C", plain.to_str().unwrap(), "8192"]);
    let out = esxstick(&["inspect", plain.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"));
    assert_refused(&esxstick(&["inspect", "/nonexistent.dd"]), "cannot open");
}
