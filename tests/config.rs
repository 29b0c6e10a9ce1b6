//! The host's configuration: `backup` writes bundles in VMware's format
//! that tar and gzip read back (Manifest.txt, and the bank's state.tgz
//! byte for byte, as mcopy reads it), keeps a host's newest N and touches
//! nothing else; `write --state` puts a state.tgz or a bundle made the way
//! VMware's tools make one into the stick's bank, `--oem` an oem.tgz with
//! boot.cfg naming it once — as mcopy reads them back, as `verify
//! --against` proves with the same flags, and as VMware's own loader
//! (the esx-boot oracle) loads them. Every configuration here is made
//! with tar and gzip (scripts/make-fixture), never with esxstick.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use crate::common::*;
use serde_json::Value;

const HOST: &str = "esx01.lab.example";
const UUID: &str = "4a7c9f2e-1d3b-5e6f-8a9b-0c1d2e3f4a5b";
const RELEASE: &str = "VMware ESXi 4.0.0 build-164009";

/// Runs `esxstick backup SOURCE DIR` with `extra`, expecting success;
/// returns the JSON report.
fn backup(source: &Path, dir: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "backup",
        source.to_str().unwrap(),
        dir.to_str().unwrap(),
        "--json",
    ];
    args.extend(extra);
    let out = esxstick(&args);
    assert!(out.status.success(), "backup: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("backup --json prints JSON")
}

/// The names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The members of a .tgz as `tar -tzf` lists them.
fn tar_list(tgz: &Path) -> Vec<String> {
    let out = oracle("tar", &["-tzf", tgz.to_str().unwrap()]);
    stdout(&out).lines().map(str::to_string).collect()
}

/// Member `name` of a .tgz, as `tar -xzOf` reads it.
fn tar_member(tgz: &Path, name: &str) -> Vec<u8> {
    oracle("tar", &["-xzOf", tgz.to_str().unwrap(), name]).stdout
}

#[test]
fn backup_writes_a_vmware_bundle_holding_the_banks_state_tgz() {
    let source = fixture("host40");
    let dir = scratch("config-backup").join("backups");
    let report = backup(&source, &dir, &[]);
    assert_eq!(report["written"], true, "{report}");
    assert_eq!(report["host"]["host"], HOST);
    let bundle = PathBuf::from(report["bundle"].as_str().unwrap());
    let name = bundle.file_name().unwrap().to_str().unwrap().to_string();
    // configBundle-<host>-<UTC yyyymmddThhmmssZ>.tgz
    let stamp = name
        .strip_prefix(&format!("configBundle-{HOST}-"))
        .and_then(|s| s.strip_suffix(".tgz"))
        .unwrap_or_else(|| panic!("{name}"));
    assert!(
        stamp.len() == 16 && stamp.as_bytes()[8] == b'T' && stamp.ends_with('Z'),
        "{name}"
    );
    oracle("gzip", &["-t", bundle.to_str().unwrap()]);
    eprintln!(
        "tar -tzvf {name}:\n{}",
        stdout(&oracle("tar", &["-tzvf", bundle.to_str().unwrap()]))
    );
    assert_eq!(tar_list(&bundle), ["Manifest.txt", "state.tgz"]);
    let manifest = String::from_utf8(tar_member(&bundle, "Manifest.txt")).unwrap();
    assert_eq!(
        manifest,
        format!("RELEASELEVEL={RELEASE}\nUUID={UUID}\nKERNELOPTS=\nUSEROPTS=\n")
    );
    assert_eq!(
        tar_member(&bundle, "state.tgz"),
        mcopy_file(&source, 5, "state.tgz"),
        "the bank's state.tgz, byte for byte"
    );
    // The same configuration again: nothing new is written, and it says so.
    let again = esxstick(&["backup", source.to_str().unwrap(), dir.to_str().unwrap()]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stdout(&again).contains("nothing written"),
        "{}",
        stdout(&again)
    );
    assert_eq!(listing(&dir), [name]);
}

/// Ten backups of a stick whose state.tgz changes each time (as ESXi's
/// auto-backup changes it), with --keep 7, into a directory holding other
/// files: the host's newest seven remain — the last seven states, as tar
/// reads them back — and every other file is untouched.
#[test]
fn backup_keeps_the_hosts_newest_seven_and_nothing_else() {
    let work = scratch("config-keep");
    let stick = work.join("stick.img");
    let out = esxstick(&[
        "write",
        fixture("host40").to_str().unwrap(),
        stick.to_str().unwrap(),
        "--size",
        "64M",
        "--yes",
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = work.join("backups");
    fs::create_dir_all(&dir).unwrap();
    let foreign = [
        ("configBundle-esx01.lab.example.tgz", "VMware's own name"),
        ("configBundle-esx02-20200101T000000Z.tgz", "another host's"),
        (
            "configBundle-esx01.lab.example-20200101T000000Z.tgz.bak",
            "a copy",
        ),
        ("notes.txt", "not a bundle"),
    ];
    for (name, text) in foreign {
        fs::write(dir.join(name), text).unwrap();
    }
    // An old name of the host's pattern that is a link, not a file.
    let link = "configBundle-esx01.lab.example-20190101T000000Z.tgz";
    symlink("notes.txt", dir.join(link)).unwrap();
    let mut states = Vec::new();
    for i in 0..10 {
        let state = work.join(format!("state{i}.tgz"));
        state_tgz(HOST, UUID, &state);
        mcopy_into(&stick, 5, &state, "state.tgz");
        let report = backup(&stick, &dir, &["--keep", "7"]);
        assert_eq!(report["written"], true, "run {i}: {report}");
        states.push(fs::read(&state).unwrap());
    }
    let names = listing(&dir);
    eprintln!("ls {} after 10 runs with --keep 7:", dir.display());
    for name in &names {
        let meta = fs::symlink_metadata(dir.join(name)).unwrap();
        eprintln!("{:>8}  {name}", meta.len());
    }
    let own: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with(&format!("configBundle-{HOST}-")) && n.ends_with(".tgz"))
        .filter(|n| n.as_str() != link)
        .collect();
    assert_eq!(own.len(), 7, "{names:?}");
    let kept: Vec<Vec<u8>> = own
        .iter()
        .map(|n| tar_member(&dir.join(n), "state.tgz"))
        .collect();
    for (i, state) in states.iter().enumerate() {
        assert_eq!(kept.contains(state), i >= 3, "run {i}'s state.tgz");
    }
    for (name, text) in foreign {
        assert_eq!(fs::read_to_string(dir.join(name)).unwrap(), text, "{name}");
    }
    assert!(fs::symlink_metadata(dir.join(link)).unwrap().is_symlink());
    assert_eq!(names.len(), 7 + foreign.len() + 1, "{names:?}");
}

/// A bank whose state.tgz is not a configuration (random gzip data), one
/// without state.tgz, and an encrypted configuration: exit 2, one line
/// saying which, and nothing written.
#[test]
fn backup_refuses_a_bank_without_a_readable_configuration() {
    let dir = scratch("config-refused");
    for (variant, needle) in [
        ("esxi40", "bank 5: state.tgz: damaged tar archive"),
        ("fragmented", "bank 5 holds no state.tgz"),
        ("host70-encrypted", "encrypted configuration (local.tgz.ve"),
    ] {
        let out = esxstick(&[
            "backup",
            fixture(variant).to_str().unwrap(),
            dir.to_str().unwrap(),
        ]);
        assert_refused(&out, needle);
        assert!(listing(&dir).is_empty(), "{variant}: {:?}", listing(&dir));
    }
}

/// Writes `variant` to a new 64 MB image in `dir` with `extra` flags.
fn write_stick(dir: &Path, variant: &str, extra: &[&str]) -> PathBuf {
    let stick = dir.join(format!("{variant}.img"));
    let _ = fs::remove_file(&stick);
    let source = fixture(variant);
    let mut args = vec!["write", source.to_str().unwrap(), stick.to_str().unwrap()];
    args.extend(["--size", "64M", "--yes", "--quiet"]);
    args.extend(extra);
    let out = esxstick(&args);
    assert!(out.status.success(), "write {variant}: {}", stderr(&out));
    stick
}

/// `verify STICK --against SOURCE` with `extra`: its exit code and report.
fn verify_against(stick: &Path, variant: &str, extra: &[&str]) -> (Option<i32>, String) {
    let source = fixture(variant);
    let mut args = vec![
        "verify",
        stick.to_str().unwrap(),
        "--against",
        source.to_str().unwrap(),
    ];
    args.extend(extra);
    let out = esxstick(&args);
    (out.status.code(), stdout(&out))
}

/// A bundle made as VMware's tools make it, of the image's build: the
/// stick's bank gets its state.tgz byte for byte, boot.cfg stays the
/// source's (it names state.tgz already), the plan counts its size in
/// the headroom, and `verify --against --state` proves it while `verify
/// --against` alone finds the difference.
#[test]
fn write_state_from_a_vmware_bundle() {
    let dir = scratch("config-state");
    let state = dir.join("state.tgz");
    state_tgz("esx02.lab.example", "11112222-3333", &state);
    let bundle = vmware_bundle(&dir, "esx02", RELEASE, "11112222-3333", &state);
    let flag = ["--state", bundle.to_str().unwrap()];
    let stick = write_stick(&dir, "esxi40", &flag);
    assert_eq!(
        mcopy_file(&stick, 5, "state.tgz"),
        fs::read(&state).unwrap()
    );
    let source = fixture("esxi40");
    assert_eq!(
        mcopy_file(&stick, 5, "boot.cfg"),
        mcopy_file(&source, 5, "boot.cfg")
    );
    assert_eq!(mdir_files(&stick, 5), mdir_files(&source, 5));
    let (code, report) = verify_against(&stick, "esxi40", &flag);
    assert_eq!(code, Some(0), "{report}");
    let (code, report) = verify_against(&stick, "esxi40", &[]);
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report.contains("FAIL bank 5: state.tgz: differs from the source"),
        "{report}"
    );

    let plan = esxstick(&[
        "plan",
        source.to_str().unwrap(),
        "--size",
        "64M",
        "--json",
        flag[0],
        flag[1],
    ]);
    assert!(plan.status.success(), "{}", stderr(&plan));
    let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
    let bank = &plan["banks"][0];
    let size = fs::metadata(&state).unwrap().len();
    let file = bank["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "state.tgz")
        .unwrap();
    assert_eq!(file["bytes"], size);
    assert_eq!(file["replaced"]["from"]["kind"], "bundle");
    assert_eq!(bank["headroom_bytes"], 3 * size + (1 << 20));
}

/// A plain state.tgz is taken as it is; a bundle of another build is
/// refused naming both builds (as VMware's restore refuses it) unless
/// --allow-build-mismatch; damaged or unsafe archives are refused. A
/// refusal is one line, exit 2, and creates no stick.
#[test]
fn write_state_checks_what_it_is_given() {
    let dir = scratch("config-state-checks");
    let state = dir.join("state.tgz");
    state_tgz("esx03", "-", &state);
    let plain = write_stick(&dir, "esxi40", &["--state", state.to_str().unwrap()]);
    assert_eq!(
        mcopy_file(&plain, 5, "state.tgz"),
        fs::read(&state).unwrap()
    );

    let other = "VMware ESXi 4.0.0 build-175625";
    let newer = vmware_bundle(&dir, "esx03", other, "-", &state);
    let newer = newer.to_str().unwrap();
    let refused = |file: &str, extra: &[&str], needle: &str| {
        let stick = dir.join("refused.img");
        let source = fixture("esxi40");
        let mut args = vec!["write", source.to_str().unwrap(), stick.to_str().unwrap()];
        args.extend(["--size", "64M", "--yes", "--state", file]);
        args.extend(extra);
        assert_refused(&esxstick(&args), needle);
        assert!(!stick.exists(), "nothing may be written");
    };
    refused(newer, &[], "is from VMware ESXi 4.0.0 build-175625");
    refused(newer, &[], "ESXi build 4.0.0-164009");
    refused(newer, &[], "pass --allow-build-mismatch");
    let allowed = write_stick(
        &dir,
        "esxi40",
        &["--state", newer, "--allow-build-mismatch"],
    );
    assert_eq!(
        mcopy_file(&allowed, 5, "state.tgz"),
        fs::read(&state).unwrap()
    );

    // A bank without state.tgz (fragmented's): boot.cfg gains it, last.
    let added = write_stick(&dir, "fragmented", &["--state", state.to_str().unwrap()]);
    let cfg = String::from_utf8(mcopy_file(&added, 5, "boot.cfg")).unwrap();
    assert!(cfg.contains("modules=sys.vgz --- state.tgz\n"), "{cfg}");
    assert_eq!(
        mcopy_file(&added, 5, "state.tgz"),
        fs::read(&state).unwrap()
    );

    let bytes = fs::read(&state).unwrap();
    let cut = dir.join("cut.tgz");
    fs::write(&cut, &bytes[..bytes.len() - 6]).unwrap();
    refused(cut.to_str().unwrap(), &[], "damaged gzip stream");
    let tree = dir.join("climb");
    fs::create_dir_all(tree.join("a")).unwrap();
    fs::write(tree.join("x"), "x").unwrap();
    let climbing = dir.join("climbing.tgz");
    oracle(
        "tar",
        &[
            "-C",
            tree.join("a").to_str().unwrap(),
            "-P",
            "-czf",
            climbing.to_str().unwrap(),
            "../x",
        ],
    );
    refused(
        climbing.to_str().unwrap(),
        &[],
        "\"../x\" is not a relative path",
    );
    let oem = oem_tgz(&dir);
    refused(oem.to_str().unwrap(), &[], "neither a state.tgz");
}

/// An oem.tgz made as ESXi-Customizer makes one, on a 4.0 bank whose
/// boot.cfg names no oem.tgz: the stick holds it, boot.cfg gains
/// `--- oem.tgz` once, before license.tgz, and VMware's loader loads it;
/// on a bank that names it already, only the file changes; ESXi 5+ is
/// refused.
#[test]
fn write_oem_adds_it_to_boot_cfg_once_and_the_loader_loads_it() {
    let dir = scratch("config-oem");
    let oem = oem_tgz(&dir);
    let flag = ["--oem", oem.to_str().unwrap()];
    let stick = write_stick(&dir, "host40", &flag);
    assert_eq!(mcopy_file(&stick, 5, "oem.tgz"), fs::read(&oem).unwrap());
    let cfg = String::from_utf8(mcopy_file(&stick, 5, "boot.cfg")).unwrap();
    let source_cfg = String::from_utf8(mcopy_file(&fixture("host40"), 5, "boot.cfg")).unwrap();
    assert_eq!(
        cfg,
        source_cfg.replace("--- license.tgz", "--- oem.tgz --- license.tgz"),
        "{cfg}"
    );
    assert_eq!(cfg.matches("oem.tgz").count(), 1, "{cfg}");
    let (code, report) = verify_against(&stick, "host40", &flag);
    assert_eq!(code, Some(0), "{report}");
    let (code, report) = verify_against(&stick, "host40", &[]);
    assert_eq!(code, Some(1), "{report}");
    let boot = EsxBoot::run(&stick, Some(5));
    assert_eq!(boot.result(), "kernel-reached", "{}", boot.report());
    assert!(
        boot.lines.iter().any(|l| l == "module oem.tgz loaded"),
        "{}",
        boot.report()
    );
    // Negative control: without the file boot.cfg now names, the loader
    // does not reach the kernel.
    let copy = dir.join("no-oem.img");
    fs::copy(&stick, &copy).unwrap();
    let at = mtools_image(&copy, sfdisk_start(&copy, 5));
    oracle("mdel", &["-i", &at, "::/oem.tgz"]);
    let broken = EsxBoot::run(&copy, Some(5));
    assert_ne!(broken.result(), "kernel-reached", "{}", broken.report());

    let again = write_stick(&dir, "esxi40", &flag);
    assert_eq!(mcopy_file(&again, 5, "oem.tgz"), fs::read(&oem).unwrap());
    assert_eq!(
        mcopy_file(&again, 5, "boot.cfg"),
        mcopy_file(&fixture("esxi40"), 5, "boot.cfg")
    );
    let gpt = fixture("gpt");
    let out = esxstick(&[
        "plan",
        gpt.to_str().unwrap(),
        "--size",
        "64M",
        flag[0],
        flag[1],
    ]);
    assert_refused(&out, "ESXi 5 and later take drivers as VIBs");
}
