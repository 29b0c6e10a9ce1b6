//! `esxstick devices`: on a fake sysfs tree the test builds (a USB stick
//! whose serial lives on its USB device, a removable-in-all-but-name MMC
//! card with its write-protect switch on, a fixed SATA disk with a mounted
//! partition, a loop device, and devices never listed: zram, a free
//! loop device, an optical drive), and on real loop
//! devices whose size blockdev reads and whose contents mkfs.fat and
//! make-fixture made.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::*;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A file of the fake tree, with its directories.
fn put(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, format!("{text}\n")).unwrap();
}

/// A symlink of the fake tree (to an absolute path inside it).
fn link(root: &Path, rel: &str, to: &Path) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    symlink(to, path).unwrap();
}

/// A block device `name` at sysfs path `dir` (below `devices/`), with
/// `device` pointing at `device_dir` when given, and its attributes.
fn disk(sys: &Path, dir: &str, name: &str, device_dir: Option<&str>, attrs: &[(&str, &str)]) {
    let block = format!("devices/{dir}/block/{name}");
    for (file, text) in attrs {
        put(sys, &format!("{block}/{file}"), text);
    }
    if let Some(d) = device_dir {
        link(
            sys,
            &format!("{block}/device"),
            &sys.join(format!("devices/{d}")),
        );
    }
    link(sys, &format!("block/{name}"), &sys.join(&block));
}

/// The fake machine: sysfs, mount table and /dev in `dir`.
fn fake_machine(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (sys, dev) = (dir.join("sys"), dir.join("dev"));
    fs::create_dir_all(&dev).unwrap();
    // A USB stick: the SCSI device has vendor and model, the USB device
    // (an ancestor) idVendor and the serial number.
    let usb = "pci0000:00/0000:00:14.0/usb2/2-1";
    put(&sys, &format!("devices/{usb}/idVendor"), "0781");
    put(&sys, &format!("devices/{usb}/serial"), "4C530001230517");
    let scsi = format!("{usb}/2-1:1.0/host6/target6:0:0/6:0:0:0");
    put(&sys, &format!("devices/{scsi}/vendor"), "SanDisk ");
    put(&sys, &format!("devices/{scsi}/model"), "Cruzer Blade    ");
    let sdb = [
        ("size", "15633408"),
        ("removable", "1"),
        ("ro", "0"),
        ("dev", "8:16"),
        ("sdb1/partition", "1"),
        ("sdb1/dev", "8:17"),
    ];
    disk(&sys, &scsi, "sdb", Some(&scsi), &sdb);
    // An SD card the kernel calls fixed, its write-protect switch on.
    let mmc = "platform/fe320000.mmc/mmc_host/mmc0/mmc0:aaaa";
    put(&sys, &format!("devices/{mmc}/name"), "SD32G");
    put(&sys, &format!("devices/{mmc}/serial"), "0x1234abcd");
    let card = [
        ("size", "62333952"),
        ("removable", "0"),
        ("ro", "1"),
        ("dev", "179:0"),
    ];
    disk(&sys, mmc, "mmcblk0", Some(mmc), &card);
    // A fixed SATA disk with its root file system mounted.
    let ata = "pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0";
    put(&sys, &format!("devices/{ata}/vendor"), "ATA");
    put(&sys, &format!("devices/{ata}/model"), "Samsung SSD 870");
    let sda = [
        ("size", "1953525168"),
        ("removable", "0"),
        ("ro", "0"),
        ("dev", "8:0"),
        ("sda1/partition", "1"),
        ("sda1/dev", "8:1"),
    ];
    disk(&sys, ata, "sda", Some(ata), &sda);
    // A loop device over a file, a free one, and a zram swap disk.
    let lo = [
        ("size", "131072"),
        ("removable", "0"),
        ("ro", "0"),
        ("dev", "7:0"),
    ];
    disk(&sys, "virtual", "loop0", None, &lo);
    put(
        &sys,
        "devices/virtual/block/loop0/loop/backing_file",
        "/srv/stick.img",
    );
    disk(
        &sys,
        "virtual",
        "loop1",
        None,
        &[("size", "0"), ("dev", "7:1")],
    );
    disk(
        &sys,
        "virtual",
        "zram0",
        None,
        &[("size", "8388608"), ("dev", "252:0")],
    );
    // An optical drive with a disc, which the kernel calls removable.
    let cd = "pci0000:00/0000:00:17.0/ata2/host1/target1:0:0/1:0:0:0";
    let sr = [("size", "1331200"), ("removable", "1"), ("dev", "11:0")];
    disk(&sys, cd, "sr0", Some(cd), &sr);
    let mountinfo = dir.join("mountinfo");
    fs::write(
        &mountinfo,
        "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n\
         40 22 8:17 / /media/usb\\040stick rw,nosuid - vfat /dev/sdb1 rw\n\
         41 22 0:45 / /media/card rw shared:7 - btrfs /dev/mmcblk0 rw\n",
    )
    .unwrap();
    // What the devices hold: an ESXi image (make-fixture), a FAT volume
    // without a table (mkfs.fat), zeros; loop0 has no node.
    symlink(fixture("esxi40"), dev.join("sdb")).unwrap();
    let card_img = dev.join("mmcblk0");
    sparse(&card_img, 8 << 20);
    oracle("mkfs.fat", &["-n", "CARD", s(&card_img)]);
    sparse(&dev.join("sda"), 4 << 20);
    (sys, mountinfo, dev)
}

/// `esxstick devices ARGS` on the fake machine in `dir`.
fn devices_on(dir: &Path, args: &[&str]) -> Output {
    let (sys, mountinfo, dev) = (dir.join("sys"), dir.join("mountinfo"), dir.join("dev"));
    Command::new(env!("CARGO_BIN_EXE_esxstick"))
        .arg("devices")
        .args(args)
        .env("ESXSTICK_SYSFS", sys)
        .env("ESXSTICK_MOUNTINFO", mountinfo)
        .env("ESXSTICK_DEV", dev)
        .output()
        .expect("run esxstick")
}

/// The devices of a `devices --json` run, by name.
fn by_name(out: &Output) -> Vec<(String, Value)> {
    assert!(out.status.success(), "devices failed: {}", stderr(out));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("devices --json prints JSON");
    assert_eq!(doc["schema"], "esxstick.devices/1");
    doc["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| (d["name"].as_str().unwrap().to_string(), d.clone()))
        .collect()
}

#[test]
fn a_fake_machine_lists_its_sticks_and_cards_and_with_all_its_disks() {
    let dir = scratch("devices-fake");
    let (_sys, _mountinfo, dev) = fake_machine(&dir);
    let removable = by_name(&devices_on(&dir, &["--json"]));
    let names: Vec<&str> = removable.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["mmcblk0", "sdb"], "without --all");
    let all = by_name(&devices_on(&dir, &["--all", "--json"]));
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["loop0", "mmcblk0", "sda", "sdb"], "with --all");
    let get = |name: &str| all.iter().find(|(n, _)| n == name).unwrap().1.clone();

    let sdb = get("sdb");
    assert_eq!(sdb["path"], s(&dev.join("sdb")));
    assert_eq!(sdb["bytes"], 15633408u64 * 512);
    assert_eq!(sdb["transport"], "usb");
    assert_eq!(sdb["vendor"], "SanDisk");
    assert_eq!(sdb["model"], "Cruzer Blade");
    assert_eq!(sdb["serial"], "4C530001230517", "the USB device's serial");
    assert_eq!(sdb["removable"], true);
    assert_eq!(sdb["read_only"], false);
    assert_eq!(
        sdb["mounted"],
        serde_json::json!([{"device": "sdb1", "at": "/media/usb stick"}])
    );
    assert_eq!(sdb["holds"]["kind"], "esxi-image");
    let build = inspect_json(&fixture("esxi40"))["banks"][0]["boot_cfg"]["build"].clone();
    assert_eq!(sdb["holds"]["build"], build);

    let card = get("mmcblk0");
    assert_eq!(card["transport"], "mmc");
    assert_eq!(
        card["removable"], false,
        "listed although the kernel calls it fixed"
    );
    assert_eq!(card["read_only"], true);
    assert_eq!(card["model"], "SD32G");
    assert_eq!(card["serial"], "0x1234abcd");
    assert_eq!(
        card["mounted"],
        serde_json::json!([{"device": "mmcblk0", "at": "/media/card"}]),
        "found by its mount source: btrfs shows no real device number"
    );
    assert_eq!(card["holds"]["kind"], "fat-volume");
    assert_eq!(card["holds"]["label"], "CARD");

    let sda = get("sda");
    assert_eq!(sda["transport"], "sata");
    assert_eq!(sda["model"], "Samsung SSD 870");
    assert_eq!(
        sda["mounted"],
        serde_json::json!([{"device": "sda1", "at": "/"}])
    );
    assert_eq!(sda["holds"]["kind"], "empty");

    let lo = get("loop0");
    assert_eq!(lo["transport"], "loop");
    assert_eq!(lo["backing_file"], "/srv/stick.img");
    assert_eq!(
        lo["holds"]["kind"], "unreadable",
        "it has no node in the fake /dev"
    );
}

#[test]
fn the_fake_machine_in_text_fits_80_columns_one_device_a_line() {
    let dir = scratch("devices-fake-text");
    fake_machine(&dir);
    let out = devices_on(&dir, &["--all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for line in text.lines() {
        assert!(line.chars().count() <= 80, "wider than 80: {line:?}");
    }
    // A device's line starts at column 0; its continuations are indented.
    let starts: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with('/'))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    let dev = dir.join("dev");
    let expect: Vec<String> = ["loop0", "mmcblk0", "sda", "sdb"]
        .iter()
        .map(|n| s(&dev.join(n)).to_string())
        .collect();
    assert_eq!(starts, expect);
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("SanDisk Cruzer Blade serial 4C530001230517"),
        "{flat}"
    );
    assert!(flat.contains("read-only"), "{flat}");
    assert!(flat.contains("mounted: sdb1 on /media/usb stick"), "{flat}");
    assert!(flat.contains("a FAT volume labelled \"CARD\""), "{flat}");
    let only = stdout(&devices_on(&dir, &[]));
    assert!(
        !only.contains("Samsung"),
        "a fixed disk without --all: {only}"
    );
    assert!(only.contains("devices --all"), "{only}");
}

/// The device `path` in a `devices --all --json` run of the real machine.
fn listed(all: &[(String, Value)], path: &str) -> Value {
    all.iter()
        .map(|(_, d)| d)
        .find(|d| d["path"] == path)
        .unwrap_or_else(|| panic!("{path} is not listed"))
        .clone()
}

/// Writes the partition table sfdisk makes of `script` onto `image`.
fn sfdisk(image: &Path, script: &str) {
    use std::io::Write as _;
    let mut child = Command::new("sfdisk")
        .args(["-q", s(image)])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("oracle sfdisk cannot run: run scripts/test, which installs it");
    let mut stdin = child.stdin.take().expect("sfdisk's stdin");
    stdin.write_all(script.as_bytes()).expect("write to sfdisk");
    drop(stdin);
    assert!(child.wait().expect("sfdisk").success(), "sfdisk {script:?}");
}

#[test]
fn real_loop_devices_are_listed_with_size_and_contents() {
    let dir = scratch("devices-loop");
    let empty = dir.join("empty.img");
    sparse(&empty, 32 << 20);
    let card = dir.join("card.img");
    sparse(&card, 40 << 20);
    oracle("mkfs.fat", &["-n", "LOOPCARD", s(&card)]);
    // A stick as shops sell them: one FAT32 partition at 1 MiB (sfdisk,
    // mkfs.fat), its label where FAT32 keeps it.
    let usb = dir.join("usb.img");
    sparse(&usb, 64 << 20);
    sfdisk(&usb, "start=2048, type=c\n");
    oracle(
        "mkfs.fat",
        &[
            "-F",
            "32",
            "-s",
            "1",
            "--offset",
            "2048",
            "-n",
            "SHOPSTICK",
            s(&usb),
        ],
    );
    let image = fixture("esxi40");
    let (lo_empty, lo_card, lo_image, lo_usb) = (
        Loop::attach(&empty),
        Loop::attach(&card),
        Loop::attach(&image),
        Loop::attach(&usb),
    );
    let source = s(&image);
    let out = Command::new(env!("CARGO_BIN_EXE_esxstick"))
        .args(["devices", "--all", "--json", "--for", source])
        .output()
        .expect("run esxstick");
    let all = by_name(&out);
    let smallest = inspect_json(&image)["smallest_target"]["bytes"]
        .as_u64()
        .unwrap();
    for (lo, file, kind) in [
        (&lo_empty, &empty, "empty"),
        (&lo_card, &card, "fat-volume"),
        (&lo_image, &image, "esxi-image"),
        (&lo_usb, &usb, "fat-volume"),
    ] {
        let d = listed(&all, &lo.0);
        let size: u64 = stdout(&oracle("blockdev", &["--getsize64", &lo.0]))
            .trim()
            .parse()
            .unwrap();
        assert_eq!(d["bytes"], size, "{}", lo.0);
        assert_eq!(d["transport"], "loop");
        assert_eq!(d["backing_file"], s(&fs::canonicalize(file).unwrap()));
        assert_eq!(d["holds"]["kind"], kind, "{}: {d}", lo.0);
        assert_eq!(d["fits"]["fits"], size >= smallest, "{}: {d}", lo.0);
        assert_eq!(d["fits"]["needs_bytes"], smallest);
    }
    assert_eq!(listed(&all, &lo_card.0)["holds"]["label"], "LOOPCARD");
    assert!(listed(&all, &lo_card.0)["holds"]["partition"].is_null());
    let shop = listed(&all, &lo_usb.0);
    assert_eq!(shop["holds"]["label"], "SHOPSTICK", "{shop}");
    assert_eq!(shop["holds"]["partition"], 1, "{shop}");
    assert_eq!(
        shop["holds_text"], "a FAT volume labelled \"SHOPSTICK\" in partition 1",
        "{shop}"
    );
    // Loop devices are not removable disks: listed only with --all.
    let out = esxstick(&["devices", "--json"]);
    let removable = by_name(&out);
    assert!(removable
        .iter()
        .all(|(_, d)| d["path"] != lo_card.0.as_str()));
}
