//! `update`: a stick's inactive bank rebuilt in place the way ESXi
//! upgrades itself. VMware's own loader (the esx-boot oracle) boots the
//! new bank afterwards, with the UUID the bank had (`bootUUID=`, and dd
//! reads it unchanged), while the old bank — byte for byte as dd read it
//! before — stays the fallback: without the new bank's boot.cfg (removed
//! with mdel, the negative control) the loader boots the old one. The new
//! bank holds the source bank's files as mcopy reads them, the stick's
//! state.tgz, and a boot.cfg with the next `updated=`. A crash at any of
//! the update's writes and syncs (SIGKILL through the fault seam, and at
//! moments in time on a loop device) leaves a stick whose chosen bank
//! verifies, the old bank untouched.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::common::*;
use serde_json::Value;

/// A host40 stick with an empty alternate bank (dual-bank does not fit
/// 64 MB), written to `dir/name`.
fn dual_bank_stick(dir: &Path, name: &str) -> PathBuf {
    let stick = dir.join(name);
    let out = esxstick(&[
        "write",
        fixture("host40").to_str().unwrap(),
        stick.to_str().unwrap(),
        "--size",
        "128M",
        "--layout",
        "dual-bank",
        "--yes",
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    stick
}

/// The esxstick command that updates `stick` from `source` (its own
/// active bank when `None`) with `extra` flags.
fn update_cmd(stick: &Path, source: Option<&Path>, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_esxstick"));
    cmd.arg("update").arg(stick);
    if let Some(source) = source {
        cmd.arg(source);
    }
    cmd.args(["--yes", "--quiet", "--json"])
        .args(extra)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null());
    cmd
}

/// Updates `stick`, expecting success and a verified stick; returns the
/// JSON report.
fn update(stick: &Path, source: Option<&Path>, extra: &[&str]) -> Value {
    let out = update_cmd(stick, source, extra).output().unwrap();
    assert!(out.status.success(), "update: {}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verify"]["ok"], true, "{report}");
    report
}

/// The loader boots `bank` of `stick`: kernel reached, that bank chosen,
/// its UUID (as dd reads it) handed over. Returns the `chosen` line.
fn boots(stick: &Path, bank: u64) -> String {
    let boot = EsxBoot::run(stick, Some(bank));
    let report = boot.report();
    assert_eq!(boot.result(), "kernel-reached", "{report}");
    assert_eq!(boot.chosen(), Some(bank.to_string().as_str()), "{report}");
    let uuid = partition_uuid(stick, bank).expect("the bank's UUID sector");
    assert_eq!(boot.boot_uuid(), Some(uuid.as_str()), "{report}");
    format!("chosen {bank}")
}

/// `sfdisk -d` of an image: its whole partition table.
fn table(image: &Path) -> String {
    stdout(&oracle("sfdisk", &["-d", image.to_str().unwrap()]))
}

/// boot.cfg's lines as a set, for comparing texts whose lines moved.
fn lines(text: &[u8]) -> Vec<String> {
    let mut lines: Vec<String> = String::from_utf8_lossy(text)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// Bank `new` of `stick` holds what bank `from` of `source` holds, but
/// `state` as its state.tgz and a boot.cfg with `updated` and
/// `bootstate=0` (on its first line), as mcopy reads them.
fn holds_update(stick: &Path, new: u64, source: &Path, from: u64, state: &[u8], updated: u64) {
    let names = mdir_files(source, from);
    assert_eq!(mdir_files(stick, new), names);
    for name in &names {
        let got = mcopy_file(stick, new, name);
        match name.as_str() {
            "state.tgz" => assert!(got == state, "bank {new}: state.tgz is not the stick's"),
            "boot.cfg" => {
                let want: Vec<String> = String::from_utf8_lossy(&mcopy_file(source, from, name))
                    .lines()
                    .filter(|l| !l.starts_with("bootstate=") && !l.starts_with("updated="))
                    .map(str::to_string)
                    .chain([format!("updated={updated}"), "bootstate=0".into()])
                    .collect();
                let mut want = want;
                want.sort();
                assert_eq!(lines(&got), want, "bank {new}: boot.cfg");
                assert!(got.starts_with(b"bootstate=0\n"), "bootstate= first");
            }
            _ => assert!(
                got == mcopy_file(source, from, name),
                "bank {new}: {name} differs"
            ),
        }
    }
}

#[test]
fn update_boots_the_new_bank_and_keeps_the_old_one_as_fallback() {
    let dir = scratch("update-boot");
    let stick = dual_bank_stick(&dir, "stick.img");
    let table_before = table(&stick);
    let uuids = (partition_uuid(&stick, 5), partition_uuid(&stick, 6));
    eprintln!("before update: {}", boots(&stick, 5));
    let bank5 = partition_digest(&stick, 5);
    let state = mcopy_file(&stick, 5, "state.tgz");
    let source = fixture("alt-active");
    let report = update(&stick, Some(&source), &[]);
    assert_eq!(report["update"]["plan"]["bank"]["entry"], 6, "{report}");
    eprintln!("after update from alt-active: {}", boots(&stick, 6));
    assert_eq!(partition_digest(&stick, 5), bank5, "bank 5 not touched");
    assert_eq!(table(&stick), table_before, "the table not touched");
    let now = || (partition_uuid(&stick, 5), partition_uuid(&stick, 6));
    assert_eq!(now(), uuids, "each bank keeps its UUID");
    holds_update(&stick, 6, &source, 6, &state, 2);
    let out = esxstick(&["verify", stick.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stdout(&out));

    // Negative control: without the new bank's boot.cfg the loader falls
    // back to bank 5.
    let copy = dir.join("no-boot-cfg.img");
    fs::copy(&stick, &copy).unwrap();
    let at = mtools_image(&copy, sfdisk_start(&copy, 6));
    oracle("mdel", &["-i", &at, "::/boot.cfg"]);
    let fallback = EsxBoot::run(&copy, Some(5));
    assert_eq!(fallback.chosen(), Some("5"), "{}", fallback.report());

    // Again from the stick's own active bank: bank 5 is rebuilt from
    // bank 6 with updated=3, and bank 6 is now the untouched fallback.
    let bank6 = partition_digest(&stick, 6);
    let report = update(&stick, None, &[]);
    assert_eq!(report["update"]["plan"]["updated"], 3, "{report}");
    eprintln!("after update from the stick itself: {}", boots(&stick, 5));
    assert_eq!(partition_digest(&stick, 6), bank6, "bank 6 not touched");
    holds_update(&stick, 5, &stick, 6, &state, 3);
    assert_eq!(now(), uuids, "each bank keeps its UUID");
}

#[test]
fn a_damaged_module_stops_the_update_before_boot_cfg_and_the_old_bank_boots() {
    let dir = scratch("update-bad-module");
    let stick = dual_bank_stick(&dir, "stick.img");
    let bank5 = partition_digest(&stick, 5);
    // sys.vgz with a byte flipped (make-fixture): only its CRC-32 tells.
    let out = update_cmd(&stick, Some(&fixture("bad-module")), &[])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    for want in [
        "stopped at the check of the modules copied into bank 6",
        "module sys.vgz: damaged gzip stream",
        "bank 5 is untouched and still boots",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }
    assert_eq!(partition_digest(&stick, 5), bank5, "bank 5 not touched");
    let bank6 = mdir_files(&stick, 6);
    assert!(bank6.iter().any(|f| f == "sys.vgz"), "{bank6:?}");
    assert!(
        !bank6.iter().any(|f| f.eq_ignore_ascii_case("boot.cfg")),
        "no boot.cfg makes bank 6 bootable: {bank6:?}"
    );
    eprintln!("after the stopped update: {}", boots(&stick, 5));
    // The same stick updates from a sound source.
    let report = update(&stick, Some(&fixture("alt-active")), &[]);
    let checked = report["update"]["modules_checked"].as_array().unwrap();
    assert!(checked.iter().any(|m| m == "sys.vgz"), "{report}");
    eprintln!("after updating from alt-active: {}", boots(&stick, 6));
}

/// `update --state BUNDLE --oem FILE`: the new bank takes the bundle's
/// state.tgz instead of the stick's and the oem.tgz, boot.cfg naming it
/// before license.tgz; the old bank is untouched.
#[test]
fn update_takes_a_given_state_and_oem() {
    let dir = scratch("update-given");
    let stick = dual_bank_stick(&dir, "stick.img");
    let bank5 = partition_digest(&stick, 5);
    let state = dir.join("state.tgz");
    state_tgz("esx09.lab.example", "-", &state);
    let bundle = vmware_bundle(&dir, "esx09", "VMware ESXi 4.0.0 build-164009", "-", &state);
    let oem = oem_tgz(&dir);
    let given = [
        "--state",
        bundle.to_str().unwrap(),
        "--oem",
        oem.to_str().unwrap(),
    ];
    update(&stick, None, &given);
    assert_eq!(partition_digest(&stick, 5), bank5);
    assert_eq!(
        mcopy_file(&stick, 6, "state.tgz"),
        fs::read(&state).unwrap()
    );
    assert_eq!(mcopy_file(&stick, 6, "oem.tgz"), fs::read(&oem).unwrap());
    let cfg = String::from_utf8(mcopy_file(&stick, 6, "boot.cfg")).unwrap();
    assert!(cfg.contains("--- oem.tgz --- license.tgz"), "{cfg}");
    assert!(cfg.contains("\nupdated=2\n"), "{cfg}");
}

/// A stick with one bank, a bank too small for the new image, a source of
/// the other partitioning: exit 2, one line, the stick unchanged.
#[test]
fn update_refuses_what_it_cannot_do_and_writes_nothing() {
    let dir = scratch("update-refused");
    let single = dir.join("single.img");
    let out = esxstick(&[
        "write",
        fixture("host40").to_str().unwrap(),
        single.to_str().unwrap(),
        "--size",
        "64M",
        "--yes",
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let dual = dual_bank_stick(&dir, "dual.img");
    for (stick, source, needle) in [
        (&single, "alt-active", "--layout dual-bank"),
        (&dual, "esxi41", "its alternate bank 6 of"),
        (&dual, "gpt", "the source an ESXi 5+ (GPT) image"),
    ] {
        let before = digest(stick);
        let out = update_cmd(stick, Some(&fixture(source)), &[])
            .output()
            .unwrap();
        assert_refused(&out, needle);
        assert_eq!(digest(stick), before, "{source}: the stick changed");
    }
}

/// The (writes, syncs) of one update, as the fault seam counts them.
fn fault_points(stick: &Path, source: &Path) -> (u64, u64) {
    let out = update_cmd(stick, Some(source), &[])
        .env("ESXSTICK_FAULT", "count")
        .output()
        .unwrap();
    fault_counts(&out)
}

/// Bank 5 of a stick: where it lies (as sfdisk reads the pristine stick)
/// and the SHA-256 of its bytes as dd read them there.
struct Bank5 {
    extent: (u64, u64),
    digest: String,
}

impl Bank5 {
    fn of(pristine: &Path) -> Bank5 {
        let extent = sfdisk_extent(pristine, 5);
        Bank5 {
            extent,
            digest: extent_digest(pristine, extent),
        }
    }
}

/// What a crash may leave: bank 5 (the active bank before the update) as
/// it was, and a stick that verifies — the bank ESXi's loader chooses
/// complete, its modules intact — choosing bank 5, or bank 6 with the
/// new updated=2. Returns the chosen bank.
fn assert_chosen_bank_verifies(stick: &Path, bank5: &Bank5, what: &str) -> u64 {
    let digest = extent_digest(stick, bank5.extent);
    assert_eq!(digest, bank5.digest, "{what}: bank 5 changed");
    let out = esxstick(&["verify", stick.to_str().unwrap()]);
    assert!(out.status.success(), "{what}: {}", stdout(&out));
    let inv = inspect_json(stick);
    let chosen = inv["active_bank"]["partition"].as_u64().unwrap();
    if chosen == 6 {
        let bank = inv["banks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["partition"] == 6);
        assert_eq!(bank.unwrap()["boot_cfg"]["updated"], 2, "{what}");
    }
    assert!(chosen == 5 || chosen == 6, "{what}: {chosen}");
    chosen
}

/// Kills an update right before every sync and every write, through the
/// fault seam's
/// SIGKILL: each leaves a stick whose chosen bank verifies, and VMware's
/// loader agrees at the moments that matter — after the old boot.cfg is
/// made ineligible and after the files, the old bank; after the new
/// boot.cfg, the new one. A rerun then completes the update.
#[test]
fn killing_an_update_at_any_write_or_sync_leaves_a_bootable_stick() {
    let dir = scratch("update-kill");
    let pristine = dual_bank_stick(&dir, "pristine.img");
    let bank5 = Bank5::of(&pristine);
    let stick = dir.join("stick.img");
    let s = stick.to_str().unwrap();
    let reset = || oracle("cp", &["--sparse=always", pristine.to_str().unwrap(), s]);
    let source = fixture("alt-active");
    reset();
    let (writes, syncs) = fault_points(&stick, &source);
    // The writer gathers its writes (a few dozen for a whole bank): every
    // one of them is a kill point, and so is every sync.
    assert!(
        (10..=1000).contains(&writes) && syncs == 4,
        "{writes} writes, {syncs} syncs"
    );
    let points: Vec<String> = (1..=syncs)
        .map(|n| format!("sync:{n}:kill"))
        .chain((1..=writes).map(|n| format!("write:{n}:kill")))
        .collect();
    let (mut killed, mut new) = (0, 0);
    for (i, spec) in points.iter().enumerate() {
        reset();
        let out = update_cmd(&stick, Some(&source), &[])
            .env("ESXSTICK_FAULT", spec)
            .output()
            .unwrap();
        killed += usize::from(out.status.code().is_none());
        let chosen = assert_chosen_bank_verifies(&stick, &bank5, spec);
        new += usize::from(chosen == 6);
        let oracle_says = match spec.as_str() {
            "sync:1:kill" | "sync:3:kill" => Some(5),
            "sync:4:kill" => Some(6),
            _ => None,
        };
        if let Some(bank) = oracle_says {
            assert_eq!(chosen, bank, "{spec}");
            eprintln!("killed at {spec}: {}", boots(&stick, bank));
        }
        if i % 25 == 0 {
            update(&stick, Some(&source), &[]);
        }
    }
    assert_eq!(killed, points.len(), "every kill point is reached");
    eprintln!(
        "{} kill points over {writes} writes and {syncs} syncs: every one left a stick whose \
         chosen bank verifies (old bank {}, new bank {new})",
        points.len(),
        points.len() - new
    );
}

/// SIGKILL at moments spread over an update to a loop device: the same
/// invariant, and a rerun completes the update.
#[test]
fn killing_an_update_to_a_loop_device_at_any_moment_leaves_a_bootable_stick() {
    let dir = scratch("update-kill-loop");
    let pristine = dual_bank_stick(&dir, "pristine.img");
    let bank5 = Bank5::of(&pristine);
    let backing = dir.join("disk.img");
    let source = fixture("alt-active");
    // A fresh copy under a fresh loop device each time: the device's own
    // cache never outlives its backing file's content.
    let attach = || {
        oracle(
            "cp",
            &[
                "--sparse=always",
                pristine.to_str().unwrap(),
                backing.to_str().unwrap(),
            ],
        );
        Loop::attach(&backing)
    };
    let lo = attach();
    let started = Instant::now();
    update(Path::new(&lo.0), Some(&source), &[]);
    let duration = started.elapsed();
    drop(lo);
    let points = 12;
    for i in 0..points {
        let lo = attach();
        let device = Path::new(&lo.0);
        let at = duration.mul_f64(f64::from(i) / f64::from(points));
        kill_after(&mut update_cmd(device, Some(&source), &[]), at);
        assert_chosen_bank_verifies(device, &bank5, &format!("killed after {at:?}"));
        if i == points - 1 {
            update(device, Some(&source), &[]);
        }
    }
}
