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
    built_once("scripts/make-fixture", "fixtures", variant, "img")
}

/// An installer ISO fixture of `variant` (ESXi 5+ shape, issue #17), built
/// by `scripts/make-installer-fixture` once per version of that script into
/// `target/installer-fixtures/<hash>/<variant>.iso`, as [`fixture`] does.
pub fn installer_fixture(variant: &str) -> PathBuf {
    built_once(
        "scripts/make-installer-fixture",
        "installer-fixtures",
        variant,
        "iso",
    )
}

/// `target/<cache>/<first 16 hex of the script's SHA-256>/<variant>.<ext>`,
/// made by `script VARIANT OUT` when missing, under a per-variant lock.
fn built_once(script: &str, cache: &str, variant: &str, ext: &str) -> PathBuf {
    let script = root().join(script);
    let script_hash = format!(
        "{:x}",
        Sha256::digest(fs::read(&script).unwrap_or_else(|e| panic!("read {script:?}: {e}")))
    );
    let dir = root().join("target").join(cache).join(&script_hash[..16]);
    fs::create_dir_all(&dir).expect("create fixture dir");
    let image = dir.join(format!("{variant}.{ext}"));
    let lock = File::create(dir.join(format!("{variant}.lock"))).expect("create lock file");
    lock.lock().expect("lock fixture");
    if !image.exists() {
        let out = Command::new(&script)
            .arg(variant)
            .arg(&image)
            .output()
            .unwrap_or_else(|e| panic!("run {script:?}: {e}"));
        assert!(
            out.status.success(),
            "{} {variant} failed:\n{}",
            script.display(),
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

/// Runs esxstick with `args` and `env` set (e.g. the fault seam's
/// ESXSTICK_FAULT).
pub fn esxstick_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_esxstick"))
        .args(args)
        .envs(env.iter().copied())
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

    /// Attaches `sectors` sectors of `file` from sector `start`, read-only
    /// (`losetup -r -o --sizelimit`): one partition of a whole-disk image,
    /// for tools without an offset option (fsck.fat).
    pub fn attach_extent(file: &Path, (start, sectors): (u64, u64)) -> Loop {
        let out = oracle(
            "losetup",
            &[
                "-r",
                "-f",
                "--show",
                "-o",
                &(start * 512).to_string(),
                "--sizelimit",
                &(sectors * 512).to_string(),
                file.to_str().expect("utf-8 path"),
            ],
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

/// The marker lines the installer fixtures' GRUB stub (their
/// EFI/BOOT/BOOTX64.EFI, see scripts/make-installer-fixture) prints on the
/// serial console: it started, and /EFI/BOOT/BOOT.CFG is (its lines follow,
/// up to the END marker) or is not on the volume it was loaded from.
pub const GRUB_STARTED: &str = "ESXSTICK-GRUB cmdpath=";
pub const BOOTCFG_FOUND: &str = "ESXSTICK-BOOTCFG-FOUND";
pub const BOOTCFG_MISSING: &str = "ESXSTICK-BOOTCFG-MISSING";
pub const BOOTCFG_END: &str = "ESXSTICK-BOOTCFG-END";

/// OVMF's firmware and its variable store template (package ovmf).
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS.fd";

/// One UEFI boot of stick images under QEMU (TCG) + OVMF, the sticks
/// attached as USB mass storage behind an XHCI controller
/// (../shared/esxi.md §7): each run gets its own copy of OVMF_VARS.fd, the
/// images are opened with snapshot=on (never written), there is no network
/// (no PXE detour), and the serial console is captured.
pub struct Ovmf {
    /// Everything the serial console printed, `\r` removed.
    pub serial: String,
    /// Whether QEMU ended by itself (the guest powered off: the GRUB stub
    /// halts) before the timeout.
    pub exited: bool,
}

impl Ovmf {
    /// Seconds a boot may take before it counts as hung: a stick boot to
    /// the GRUB stub takes about 5 s here in TCG.
    pub const TIMEOUT: u32 = 120;

    /// Boots `image` as the only USB stick.
    pub fn boot_usb(image: &Path) -> Ovmf {
        Ovmf::boot_usb_sticks(&[image])
    }

    /// Boots with every image of `images` attached as a USB stick, in
    /// order; OVMF boots the first one that carries a boot loader. Fails
    /// the test loudly when QEMU or OVMF is missing or QEMU fails.
    pub fn boot_usb_sticks(images: &[&Path]) -> Ovmf {
        static RUN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        for firmware in [OVMF_CODE, OVMF_VARS] {
            assert!(
                Path::new(firmware).exists(),
                "{firmware} is missing: run scripts/install-deps (package ovmf)"
            );
        }
        let dir = root().join("target/ovmf-vars");
        fs::create_dir_all(&dir).expect("create target/ovmf-vars");
        let n = RUN.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let vars = dir.join(format!("{}-{n}.fd", std::process::id()));
        fs::copy(OVMF_VARS, &vars).expect("copy OVMF_VARS.fd");
        let mut cmd = Command::new("timeout");
        cmd.arg(Ovmf::TIMEOUT.to_string()).args([
            "qemu-system-x86_64",
            "-machine",
            "q35",
            "-m",
            "256",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-nic",
            "none",
            "-no-reboot",
            "-drive",
            &format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"),
            "-drive",
            &format!("if=pflash,format=raw,file={}", vars.display()),
            "-device",
            "qemu-xhci",
        ]);
        for (i, image) in images.iter().enumerate() {
            assert!(image.exists(), "{} does not exist", image.display());
            cmd.arg("-drive")
                .arg(format!(
                    "file={},format=raw,if=none,id=stick{i},snapshot=on",
                    image.display()
                ))
                .arg("-device")
                .arg(format!("usb-storage,drive=stick{i}"));
        }
        let out = cmd
            .stdin(std::process::Stdio::null())
            .output()
            .expect("oracle timeout/qemu-system-x86_64 cannot run: run scripts/install-deps");
        let _ = fs::remove_file(&vars);
        let exited = match out.status.code() {
            Some(0) => true,
            Some(124) => false,
            other => panic!(
                "qemu-system-x86_64 failed ({other:?}): is qemu-system-x86 installed?\n{}",
                stderr(&out)
            ),
        };
        Ovmf {
            serial: stdout(&out).replace('\r', ""),
            exited,
        }
    }

    /// Whether a serial line, escape sequences aside, ends with `marker`.
    pub fn shows(&self, marker: &str) -> bool {
        self.serial.lines().any(|l| l.trim_end().ends_with(marker))
    }

    /// The device and directory the GRUB stub was loaded from, as GRUB
    /// names them (`(hd0,msdos1)/EFI/BOOT`).
    pub fn grub_cmdpath(&self) -> Option<&str> {
        self.serial
            .lines()
            .find_map(|l| l.split_once(GRUB_STARTED).map(|(_, p)| p.trim_end()))
    }

    /// The lines of /EFI/BOOT/BOOT.CFG as the GRUB stub read them from its
    /// own volume (between the FOUND and END markers), or `None` when it
    /// did not find the file.
    pub fn boot_cfg(&self) -> Option<Vec<String>> {
        let mut lines = self.serial.lines().map(str::trim_end);
        lines.find(|l| l.ends_with(BOOTCFG_FOUND))?;
        let body: Vec<String> = lines
            .take_while(|l| !l.ends_with(BOOTCFG_END))
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        Some(body)
    }
}

/// Extracts the whole tree of `iso` into `dir` with xorriso (names as
/// xorriso maps them: Rock Ridge names, or ISO 9660 names without `;1`),
/// leaving it writable.
pub fn xorriso_extract(iso: &Path, dir: &Path) {
    oracle(
        "xorriso",
        &[
            "-osirrox",
            "on",
            "-indev",
            iso.to_str().expect("utf-8 path"),
            "-extract",
            "/",
            dir.to_str().expect("utf-8 path"),
        ],
    );
    oracle("chmod", &["-R", "u+w", dir.to_str().expect("utf-8 path")]);
}

/// Every file under `dir` by its path relative to `dir` (`/`-separated,
/// as named on disk) with its SHA-256.
pub fn tree_digests(dir: &Path) -> std::collections::BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, String>) {
        for entry in fs::read_dir(dir).expect("read_dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                let name = path.strip_prefix(base).unwrap().to_str().unwrap();
                out.insert(name.to_string(), digest(&path));
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Every file of `iso` (extracted with xorriso into `dir`) by its path
/// (`EFI/BOOT/BOOTX64.EFI`) with its SHA-256.
pub fn iso_files(iso: &Path, dir: &Path) -> std::collections::BTreeMap<String, String> {
    xorriso_extract(iso, dir);
    tree_digests(dir)
}

/// Every file of the FAT volume at sector `lba` of `image`, by its path as
/// mtools names it (`mdir -/ -b -a`, without `::/`), with the SHA-256 of
/// what `mcopy` reads.
pub fn fat_files(image: &Path, lba: u64) -> std::collections::BTreeMap<String, String> {
    let at = mtools_image(image, lba);
    let list = stdout(&oracle("mdir", &["-/", "-b", "-a", "-i", &at, "::/"]));
    list.lines()
        .filter_map(|l| l.strip_prefix("::/"))
        .filter(|l| !l.is_empty() && !l.ends_with('/'))
        .map(|name| {
            let bytes = oracle("mcopy", &["-n", "-i", &at, &format!("::/{name}"), "-"]).stdout;
            (name.to_string(), format!("{:x}", Sha256::digest(&bytes)))
        })
        .collect()
}

/// The directory entries of the FAT volume at sector `lba` of `image` that
/// carry a VFAT long name (the column `mdir -/ -a` prints after an entry's
/// time only for those), as `SHORT EXT -> long name` lines. Fails loudly
/// on an entry line it cannot read, rather than pass it.
pub fn fat_long_names(image: &Path, lba: u64) -> Vec<String> {
    let at = mtools_image(image, lba);
    let list = stdout(&oracle("mdir", &["-/", "-a", "-i", &at, "::/"]));
    let is_date = |w: &str| {
        w.len() == 10
            && w.bytes().enumerate().all(|(i, b)| match i {
                4 | 7 => b == b'-',
                _ => b.is_ascii_digit(),
            })
    };
    let mut long = Vec::new();
    for line in list.lines() {
        let t = line.trim();
        if t.is_empty()
            || t.starts_with("Volume ")
            || t.starts_with("Directory for ")
            || t.starts_with("Total files listed")
            || t.ends_with(" bytes")
            || t.ends_with(" bytes free")
        {
            continue;
        }
        let words: Vec<&str> = t.split_whitespace().collect();
        let at_date = words
            .iter()
            .position(|w| is_date(w))
            .unwrap_or_else(|| panic!("mdir line without a date: {line:?}\n{list}"));
        // The time follows the date; whatever follows the time is a long name.
        let rest = words.get(at_date + 2..).unwrap_or(&[]);
        if !rest.is_empty() {
            long.push(format!(
                "{} -> {}",
                words[..at_date].join(" "),
                rest.join(" ")
            ));
        }
    }
    long
}

/// fsck.fat -n of the FAT volume in `extent` (start, sectors) of `image`,
/// through a read-only loop device: `None` when it is clean (exit 0 and
/// nothing but the version and summary lines), else fsck.fat's report.
pub fn fsck_fat(image: &Path, extent: (u64, u64)) -> Option<String> {
    let lo = Loop::attach_extent(image, extent);
    let out = Command::new("fsck.fat")
        .args(["-n", &lo.0])
        .output()
        .expect("oracle fsck.fat cannot run: run scripts/install-deps (dosfstools)");
    let text = format!("{}{}", stdout(&out), stderr(&out));
    let clean = out.status.success()
        && text.lines().count() == 2
        && text.lines().nth(1).is_some_and(|l| l.contains(" clusters"));
    (!clean).then_some(text)
}

/// Makes `img` a stick of `size` (truncate's form: `256M`) from the
/// installer ISO `iso` by VMware's hand procedure,
/// `scripts/reference-installer` (sfdisk, mkfs.fat, xorriso, mcopy): one
/// active FAT32 partition 0x0C from sector 2048 to the end.
pub fn reference_installer(iso: &Path, img: &Path, size: &str) {
    let script = root().join("scripts/reference-installer");
    oracle(
        script.to_str().expect("utf-8 path"),
        &[
            iso.to_str().expect("utf-8 path"),
            img.to_str().expect("utf-8 path"),
            size,
        ],
    );
}

/// The byte offset in `image` of the first data byte of file `name` (a
/// path such as `EFI/BOOT/BOOT.CFG`) of the FAT volume at sector `lba`:
/// the volume's geometry as minfo reads it, the file's first cluster as
/// mshowfat reads it. For damaging a file in place (bit rot) with
/// `FileExt::write_all_at`, its FAT and directory untouched.
pub fn fat_file_offset(image: &Path, lba: u64, name: &str) -> u64 {
    let at = mtools_image(image, lba);
    let minfo = stdout(&oracle("minfo", &["-i", &at]));
    let field = |key: &str| -> u64 {
        minfo
            .lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("minfo: no {key:?}\n{minfo}"))
    };
    let sector = field("sector size:");
    let fat_sectors = match field("sectors per fat:") {
        0 => field("Big fatlen="), // FAT32
        n => n,
    };
    let root_sectors = (field("max available root directory slots:") * 32).div_ceil(sector);
    let data = field("reserved (boot) sectors:") + field("fats:") * fat_sectors + root_sectors;
    let shown = stdout(&oracle("mshowfat", &["-i", &at, &format!("::/{name}")]));
    let first: u64 = shown
        .split_once('<')
        .and_then(|(_, r)| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("mshowfat {name}: no cluster in {shown:?}"));
    (lba + data) * 512 + (first - 2) * field("cluster size:") * sector
}
