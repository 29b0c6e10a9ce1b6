//! Shared test helpers: fixtures built by scripts/make-fixture (never by
//! esxstick), the esxstick binary, and the independent oracles (sfdisk,
//! mtools, fsck.fat, QEMU). A missing oracle fails the test loudly.
#![allow(dead_code)] // each test binary uses its own subset

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
