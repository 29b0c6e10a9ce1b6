//! Shared test helpers: fixtures built by scripts/make-fixture (never by
//! esxstick), the esxstick binary, and the independent oracles (sfdisk,
//! mtools, fsck.fat, QEMU). A missing oracle fails the test loudly.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fixture image of `variant`, built once per version of the generator
/// and shared by all tests (a file lock keeps parallel tests from building
/// the same image twice).
pub fn fixture(variant: &str) -> PathBuf {
    let script = root().join("scripts/make-fixture");
    let script_hash = format!(
        "{:x}",
        Sha256::digest(fs::read(&script).expect("read make-fixture"))
    );
    let dir = root().join("target/fixtures").join(&script_hash[..16]);
    fs::create_dir_all(&dir).expect("create fixture dir");
    let image = dir.join(format!("{variant}.img"));
    let lock = File::create(dir.join(format!("{variant}.lock"))).expect("create lock file");
    lock.lock().expect("lock fixture");
    if !image.exists() {
        let out = Command::new(&script)
            .arg(variant)
            .arg(&image)
            .output()
            .expect("run scripts/make-fixture");
        assert!(
            out.status.success(),
            "scripts/make-fixture {variant} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    image
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = root().join("target/scratch").join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Creates (or truncates) `path` as a sparse file of `len` bytes.
pub fn sparse(path: &Path, len: u64) {
    File::create(path)
        .and_then(|f| f.set_len(len))
        .expect("create sparse file");
}

/// Runs esxstick with `args`.
pub fn esxstick(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_esxstick"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run esxstick")
}

/// Runs an oracle tool, failing the test with a clear message if it is
/// not installed or fails.
pub fn oracle(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap_or_else(|e| {
            panic!("oracle {program} cannot run ({e}): run scripts/test, which installs it")
        });
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// stdout of a command as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// stderr of a command as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `inspect --json` of an image, parsed.
pub fn inspect_json(image: &Path) -> serde_json::Value {
    let out = esxstick(&["inspect", "--json", image.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "inspect failed: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("inspect --json prints JSON")
}

/// mtools' `IMG@@OFFSET` for the volume at sector `lba`.
pub fn mtools_image(image: &Path, lba: u64) -> String {
    format!("{}@@{}", image.display(), lba * 512)
}

/// Copies every file of the FAT volume at `lba` into `dir` with mcopy.
pub fn mcopy_all(image: &Path, lba: u64, dir: &Path) {
    oracle(
        "mcopy",
        &[
            "-s",
            "-n",
            "-i",
            &mtools_image(image, lba),
            "::/*",
            dir.to_str().expect("utf-8 path"),
        ],
    );
}

/// Asserts that a command failed with exit code 2 and one clear line on
/// stderr containing `needle`, without a panic.
pub fn assert_refused(out: &Output, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "expected exit 2, stderr: {err}");
    assert!(!err.contains("panicked"), "panicked: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "expected one line: {err}"
    );
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
}

/// Asserts that sfdisk reads the partition table of `image` exactly as
/// `plan` (from `plan --json`) describes it: entry numbers, starts, sizes,
/// types and boot flags.
pub fn assert_table_matches_plan(image: &Path, plan: &serde_json::Value) {
    let name = image.to_str().expect("utf-8 path");
    let back: serde_json::Value =
        serde_json::from_slice(&oracle("sfdisk", &["--json", name]).stdout).expect("sfdisk --json");
    let back = back["partitiontable"]["partitions"]
        .as_array()
        .expect("partitions")
        .clone();
    let planned = plan["partitions"].as_array().expect("planned partitions");
    assert_eq!(back.len(), planned.len(), "{name}: partition count");
    let gpt = plan["scheme"] == "gpt";
    for p in planned {
        let node = format!("{name}{}", p["entry"]);
        let got = back
            .iter()
            .find(|b| b["node"] == node.as_str())
            .unwrap_or_else(|| panic!("{node} missing"));
        assert_eq!(got["start"], p["start"], "{node} start");
        assert_eq!(got["size"], p["sectors"], "{node} size");
        if gpt {
            assert_eq!(got["type"], p["type"], "{node} type");
        } else {
            let t = u8::from_str_radix(got["type"].as_str().unwrap(), 16).unwrap();
            assert_eq!(
                format!("0x{t:02x}"),
                p["type"].as_str().unwrap(),
                "{node} type"
            );
            assert_eq!(
                got["bootable"].as_bool().unwrap_or(false),
                p["active"].as_bool().unwrap(),
                "{node} boot flag"
            );
        }
    }
}

/// Boots `image` in QEMU (TCG) and reports whether it powered off by
/// itself within `seconds` (the fixtures' syslinux.cfg runs poweroff.c32).
pub fn qemu_powers_off(image: &Path, seconds: u32) -> bool {
    let status = Command::new("timeout")
        .arg(seconds.to_string())
        .args([
            "qemu-system-x86_64",
            "-display",
            "none",
            "-serial",
            "none",
            "-m",
            "64",
            "-no-reboot",
        ])
        .arg("-drive")
        .arg(format!("file={},format=raw", image.display()))
        .status()
        .expect("oracle qemu-system-x86_64 cannot run: run scripts/test, which installs it");
    match status.code() {
        Some(0) => true,
        Some(124) => false,
        other => panic!("qemu failed to run ({other:?}): is qemu-system-x86 installed?"),
    }
}

/// A loop device over a file, detached when dropped.
pub struct Loop(pub String);

impl Loop {
    /// Attaches `file` to a free loop device.
    pub fn attach(file: &Path) -> Loop {
        let out = oracle(
            "losetup",
            &["-f", "--show", file.to_str().expect("utf-8 path")],
        );
        Loop(stdout(&out).trim().to_string())
    }

    /// Attaches `file` to a free loop device, read-only (`losetup -r`).
    pub fn attach_read_only(file: &Path) -> Loop {
        let out = oracle(
            "losetup",
            &["-r", "-f", "--show", file.to_str().expect("utf-8 path")],
        );
        Loop(stdout(&out).trim().to_string())
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

/// The whole content of a file, for before/after comparisons.
pub fn digest(path: &Path) -> String {
    let mut file = File::open(path).expect("open for digest");
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).expect("read for digest");
    format!("{:x}", hasher.finalize())
}

/// The 16 bytes that open the second sector of a VMware-formatted FAT
/// volume (a bootbank or the store), before its 16-byte UUID.
pub const VMWARE_FAT_MAGIC: &[u8; 16] = b"VMWARE FAT16    ";

/// The second sector (byte offset 512) of the partition starting at
/// sector `lba`, read with dd.
pub fn second_sector(image: &Path, lba: u64) -> Vec<u8> {
    let out = oracle(
        "dd",
        &[
            &format!("if={}", image.display()),
            "bs=512",
            &format!("skip={}", lba + 1),
            "count=1",
            "status=none",
        ],
    );
    assert_eq!(out.stdout.len(), 512, "dd read a whole sector");
    out.stdout
}

/// The VMware FAT UUID of the partition starting at `lba`, as 32
/// lower-case hex digits (the form ESXi's loader prints and passes as
/// `bootUUID=`), read with dd; `None` when its second sector lacks the
/// magic.
pub fn vmware_uuid(image: &Path, lba: u64) -> Option<String> {
    let sector = second_sector(image, lba);
    (sector[..16] == VMWARE_FAT_MAGIC[..])
        .then(|| sector[16..32].iter().map(|b| format!("{b:02x}")).collect())
}

/// Start sector of partition `number` of `image`, as sfdisk reads it.
pub fn sfdisk_start(image: &Path, number: u64) -> u64 {
    sfdisk_extent(image, number).0
}

/// (start, sectors) of partition `number` of `image`, as sfdisk reads it.
pub fn sfdisk_extent(image: &Path, number: u64) -> (u64, u64) {
    let name = image.to_str().expect("utf-8 path");
    let sf: serde_json::Value =
        serde_json::from_slice(&oracle("sfdisk", &["--json", name]).stdout).expect("sfdisk --json");
    let node = format!("{name}{number}");
    let p = sf["partitiontable"]["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .find(|p| p["node"] == node.as_str())
        .unwrap_or_else(|| panic!("sfdisk: {node} missing"))
        .clone();
    let field = |key: &str| {
        p[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{node}: no {key}"))
    };
    (field("start"), field("size"))
}

/// The SHA-256 of partition `number` of `image`, every byte as dd reads
/// it.
pub fn partition_digest(image: &Path, number: u64) -> String {
    extent_digest(image, sfdisk_extent(image, number))
}

/// The SHA-256 of `sectors` sectors of `image` (a file or a device) from
/// `start`, as dd reads them.
pub fn extent_digest(image: &Path, (start, sectors): (u64, u64)) -> String {
    let out = oracle(
        "dd",
        &[
            &format!("if={}", image.display()),
            "bs=512",
            &format!("skip={start}"),
            &format!("count={sectors}"),
            "status=none",
        ],
    );
    format!("{:x}", Sha256::digest(&out.stdout))
}

/// The file `name` in the FAT volume of partition `number` of `image`,
/// as mcopy reads it.
pub fn mcopy_file(image: &Path, number: u64, name: &str) -> Vec<u8> {
    let at = mtools_image(image, sfdisk_start(image, number));
    oracle("mcopy", &["-n", "-i", &at, &format!("::/{name}"), "-"]).stdout
}

/// The files of the FAT volume of partition `number` of `image`, as
/// `mdir -b` lists them (paths without the leading `::/`), sorted.
pub fn mdir_files(image: &Path, number: u64) -> Vec<String> {
    let at = mtools_image(image, sfdisk_start(image, number));
    let out = oracle("mdir", &["-b", "-i", &at, "::/"]);
    let mut names: Vec<String> = stdout(&out)
        .lines()
        .map(|l| l.trim_start_matches("::/").to_string())
        .filter(|l| !l.is_empty())
        .collect();
    names.sort();
    names
}

/// Writes `file` into the root of the FAT volume of partition `number`
/// of `image` with mcopy, replacing the file of that name.
pub fn mcopy_into(image: &Path, number: u64, file: &Path, name: &str) {
    let at = mtools_image(image, sfdisk_start(image, number));
    let from = file.to_str().expect("utf-8 path");
    oracle("mcopy", &["-o", "-i", &at, from, &format!("::/{name}")]);
}

/// A host's state.tgz as ESXi's backup.sh makes one (tar and gzip, by
/// `scripts/make-fixture --state-tgz`): local.tgz inside, with an
/// esx.conf naming `host` and `uuid` ("-": left out). Each call makes
/// other bytes (the host's key is random).
pub fn state_tgz(host: &str, uuid: &str, out: &Path) {
    let script = root().join("scripts/make-fixture");
    let out = out.to_str().expect("utf-8 path");
    oracle(
        script.to_str().expect("utf-8 path"),
        &["--state-tgz", host, uuid, out],
    );
}

/// A configuration bundle as VMware's tools make one, with tar and gzip:
/// `configBundle-<host>.tgz` in `dir`, holding Manifest.txt (the release
/// level given, UUID=`uuid`) and a copy of `state`.
pub fn vmware_bundle(dir: &Path, host: &str, release: &str, uuid: &str, state: &Path) -> PathBuf {
    let work = dir.join(format!("bundle-{host}"));
    fs::create_dir_all(&work).expect("bundle dir");
    let manifest = format!("RELEASELEVEL={release}\nUUID={uuid}\nKERNELOPTS=\nUSEROPTS=\n");
    fs::write(work.join("Manifest.txt"), manifest).expect("write Manifest.txt");
    fs::copy(state, work.join("state.tgz")).expect("copy state.tgz");
    let bundle = dir.join(format!("configBundle-{host}.tgz"));
    tar_czf(&work, &bundle, &["Manifest.txt", "state.tgz"]);
    bundle
}

/// An oem.tgz as ESXi-Customizer makes one, with tar and gzip: a driver
/// module and the PCI map that names it, as relative paths.
pub fn oem_tgz(dir: &Path) -> PathBuf {
    let tree = dir.join("oem-tree");
    let vmkmod = tree.join("usr/lib/vmware/vmkmod");
    fs::create_dir_all(&vmkmod).expect("oem tree");
    fs::create_dir_all(tree.join("etc/vmware")).expect("oem tree");
    let driver: Vec<u8> = (0..40_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(vmkmod.join("e1000e.o"), driver).expect("driver");
    fs::write(
        tree.join("etc/vmware/simple.map"),
        "8086:10d3 0000:0000 network e1000e.o\n",
    )
    .expect("simple.map");
    let oem = dir.join("oem.tgz");
    tar_czf(&tree, &oem, &["usr", "etc"]);
    oem
}

/// The VMware FAT UUID of partition `number` of `image` (sfdisk for the
/// table, dd for the sector).
pub fn partition_uuid(image: &Path, number: u64) -> Option<String> {
    vmware_uuid(image, sfdisk_start(image, number))
}

/// One boot of `image` by VMware's own ESXi boot loader (safeboot and
/// mboot of vmware/esx-boot under QEMU + OVMF): the report of
/// ../shared/oracles/esx-boot/oracle.sh, one fact a line.
pub struct EsxBoot {
    /// The oracle's stdout lines.
    pub lines: Vec<String>,
    /// Its exit code: 0 kernel reached (with the hinted bank), 1 not.
    pub code: i32,
}

impl EsxBoot {
    /// Boots a copy of `image` (never `image` itself) with
    /// ESXBOOT_SWAP_KERNEL=1: the oracle's test kernel replaces each
    /// bank's kernel= file on the copy, so control reaching it proves the
    /// loader chose a bank, loaded every module and handed over
    /// `bootUUID=`. `hint` is the bank the caller expects. Fails the test
    /// loudly when the oracle cannot run (missing tools or firmware).
    pub fn run(image: &Path, hint: Option<u64>) -> EsxBoot {
        let script = root().join("../shared/oracles/esx-boot/oracle.sh");
        assert!(
            script.exists(),
            "{} is missing: the repository needs shared/ beside it",
            script.display()
        );
        let mut cmd = Command::new(&script);
        cmd.arg(image)
            .env("ESXBOOT_SWAP_KERNEL", "1")
            .env("ESXBOOT_LOGS", root().join("target/esx-boot-logs"));
        if let Some(n) = hint {
            cmd.arg(n.to_string());
        }
        let out = cmd.output().expect("run the esx-boot oracle");
        let boot = EsxBoot {
            lines: stdout(&out).lines().map(str::to_string).collect(),
            code: out.status.code().unwrap_or(-1),
        };
        assert!(
            boot.code != 2 && boot.result() != "oracle-error",
            "the esx-boot oracle could not run (run scripts/install-deps):\n{}{}",
            stdout(&out),
            stderr(&out)
        );
        boot
    }

    /// The rest of the first line that starts with `key` and a space.
    pub fn value(&self, key: &str) -> Option<&str> {
        let prefix = format!("{key} ");
        self.lines.iter().find_map(|l| l.strip_prefix(&prefix))
    }

    /// `chosen N`: the bank the loader picked, or "none".
    pub fn chosen(&self) -> Option<&str> {
        self.value("chosen")
    }

    /// `result ...`: kernel-reached, no-bank, fatal, ...
    pub fn result(&self) -> &str {
        self.value("result").unwrap_or("(no result line)")
    }

    /// The UUID the kernel received as `bootUUID=`.
    pub fn boot_uuid(&self) -> Option<&str> {
        self.lines
            .iter()
            .filter_map(|l| l.strip_prefix("kernel bootUUID="))
            .find_map(|l| l.split_whitespace().next())
    }

    /// Whether the loader took partition `n` as a bank it may boot: it
    /// listed the bank, and neither skipped it, found it invalid, nor
    /// saw or set its boot state to INVALID.
    pub fn eligible(&self, n: u64) -> bool {
        let listed = self
            .lines
            .iter()
            .any(|l| l.starts_with(&format!("bank {n} ")));
        let excluded = self.lines.iter().any(|l| {
            l.starts_with(&format!("skip {n} "))
                || l.starts_with(&format!("invalid {n} "))
                || (l.starts_with(&format!("bank {n} ")) && l.contains(" state=INVALID "))
                || (l.starts_with(&format!("state-write {n} ")) && l.ends_with("->INVALID"))
        });
        listed && !excluded
    }

    /// The whole report, for assertion messages.
    pub fn report(&self) -> String {
        self.lines.join("\n")
    }
}

/// The (writes, syncs) an esxstick run reported with
/// `ESXSTICK_FAULT=count`, which it must have completed.
pub fn fault_counts(out: &Output) -> (u64, u64) {
    assert!(out.status.success(), "{}", stderr(out));
    let err = stderr(out);
    let line = err
        .lines()
        .find(|l| l.starts_with("fault points:"))
        .expect("fault report");
    let num = |key: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    (num("writes="), num("syncs="))
}

/// `tar -czf OUT MEMBERS` in `dir`, owned by root, as VMware's tools and
/// ESXi-Customizer make their archives.
pub fn tar_czf(dir: &Path, out: &Path, members: &[&str]) {
    let (dir, out) = (
        dir.to_str().expect("utf-8 path"),
        out.to_str().expect("utf-8 path"),
    );
    let mut args = vec!["-C", dir, "--owner=0", "--group=0", "-czf", out];
    args.extend(members);
    oracle("tar", &args);
}

/// Starts `cmd`, kills it with SIGKILL after `at`, and waits for it.
pub fn kill_after(cmd: &mut Command, at: std::time::Duration) {
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start esxstick");
    std::thread::sleep(at);
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
}
