//! The bad-input corpus (issue 7): every malformed source that
//! scripts/make-bad-corpus builds is refused by `inspect`, `plan`,
//! `extract` and `write` with exit 2 and one line on stderr naming the
//! problem, without a panic, within 60 s and 256 MiB of memory, leaving no
//! extract output and not one byte of the write target changed.
//!
//! The corpus is built once per version of the script (with independent
//! tools only, never esxstick) and cached under `target/corpus/`. Each
//! corpus file has its own test below, with the substrings its refusal
//! must contain; a file the table does not list fails
//! `every_corpus_file_has_a_case`.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::common::*;

/// Longest any command may take on a malformed source.
const TIMEOUT_SECS: u64 = 60;
/// Most memory (peak RSS) any command may use on a malformed source.
const MAX_RSS_KIB: u64 = 256 * 1024;
/// Size of the existing write target, and the `--size` given to plan.
const TARGET_BYTES: usize = 64 << 20;

/// The corpus directory, built by scripts/make-bad-corpus once per
/// version of the script; a file lock keeps parallel tests from building
/// it twice, and a half-built corpus is never used.
fn corpus() -> PathBuf {
    let script = root().join("scripts/make-bad-corpus");
    let hash = format!(
        "{:x}",
        Sha256::digest(fs::read(&script).expect("read make-bad-corpus"))
    );
    let base = root().join("target/corpus");
    fs::create_dir_all(&base).expect("create target/corpus");
    let dir = base.join(&hash[..16]);
    let lock = File::create(base.join(format!("{}.lock", &hash[..16]))).expect("create lock");
    lock.lock().expect("lock corpus");
    if !dir.exists() {
        let partial = base.join(format!("{}.partial", &hash[..16]));
        let _ = fs::remove_dir_all(&partial);
        let out = Command::new(&script)
            .arg(&partial)
            .output()
            .expect("run scripts/make-bad-corpus");
        assert!(
            out.status.success(),
            "scripts/make-bad-corpus failed:\n{}",
            stderr(&out)
        );
        fs::rename(&partial, &dir).expect("move the corpus into place");
    }
    dir
}

/// What the script says is wrong with `file` (its line in INDEX).
fn description(dir: &Path, file: &str) -> String {
    let index = fs::read_to_string(dir.join("INDEX")).expect("read corpus INDEX");
    index
        .lines()
        .find_map(|l| l.strip_prefix(file).map(|d| d.trim().to_string()))
        .unwrap_or_else(|| panic!("{file} is not in the corpus INDEX"))
}

/// One esxstick run under `timeout` and `/usr/bin/time`.
struct Run {
    out: Output,
    peak_kib: u64,
    elapsed: Duration,
}

/// Runs esxstick with `args`, killed after TIMEOUT_SECS, measuring its
/// peak RSS with /usr/bin/time (written to a file, so stderr stays
/// esxstick's own).
fn run(args: &[&str], rss_file: &Path) -> Run {
    assert!(
        Path::new("/usr/bin/time").exists(),
        "/usr/bin/time is missing: run scripts/install-deps (package time)"
    );
    let start = Instant::now();
    let out = Command::new("timeout")
        .args([
            "-k",
            "5",
            &TIMEOUT_SECS.to_string(),
            "/usr/bin/time",
            "-f",
            "%M",
            "-o",
        ])
        .arg(rss_file)
        .arg(env!("CARGO_BIN_EXE_esxstick"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run timeout /usr/bin/time esxstick");
    let elapsed = start.elapsed();
    assert!(
        !matches!(out.status.code(), Some(124 | 137))
            && elapsed < Duration::from_secs(TIMEOUT_SECS),
        "esxstick {args:?} hung: killed after {elapsed:?}; stderr: {}",
        stderr(&out)
    );
    let report = fs::read_to_string(rss_file).expect("read /usr/bin/time report");
    let peak_kib = report
        .lines()
        .rev()
        .find_map(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("esxstick {args:?}: no peak RSS in {report:?}"));
    Run {
        out,
        peak_kib,
        elapsed,
    }
}

/// A 64 MiB file of a known, position-dependent pattern: each 512-byte
/// sector says its own number.
fn patterned_target(path: &Path) {
    let mut file = File::create(path).expect("create write target");
    let mut chunk = Vec::with_capacity(1 << 20);
    for mib in 0..TARGET_BYTES >> 20 {
        chunk.clear();
        for sector in 0..2048 {
            let mut s = format!("corpus target sector {:>9} ", mib * 2048 + sector).into_bytes();
            s.resize(512, b'#');
            chunk.extend_from_slice(&s);
        }
        file.write_all(&chunk).expect("fill write target");
    }
    file.sync_all().expect("sync write target");
}

/// Every command refuses corpus file `file`: exit 2, one line on stderr
/// containing each of `needles`, no panic, bounded time and memory, no
/// extract output, the write target unchanged.
fn refused_everywhere(file: &str, needles: &[&str]) {
    let dir = corpus();
    let source = dir.join(file);
    assert!(source.exists(), "{file} is not in the corpus");
    println!("{file}: {}", description(&dir, file));
    let work = scratch(&format!("corpus-{file}"));
    let target = work.join("target.img");
    patterned_target(&target);
    let before = digest(&target);
    let out_dir = work.join("extracted");
    let rss = work.join("rss.txt");
    let (src, tgt, out) = (
        source.to_str().unwrap(),
        target.to_str().unwrap(),
        out_dir.to_str().unwrap(),
    );
    let commands: [&[&str]; 4] = [
        &["inspect", src],
        &["plan", src, "--size", "64M"],
        &["extract", src, out],
        &["write", src, tgt, "--size", "64M", "--yes"],
    ];
    for args in commands {
        let r = run(args, &rss);
        let err = stderr(&r.out);
        println!(
            "  {}: exit {:?}, {:.2} s, {} KiB peak: {}",
            args[0],
            r.out.status.code(),
            r.elapsed.as_secs_f64(),
            r.peak_kib,
            err.trim_end()
        );
        assert_refused(&r.out, needles[0]);
        for needle in &needles[1..] {
            assert!(
                err.contains(needle),
                "{file}: {}: expected {needle:?} in: {err}",
                args[0]
            );
        }
        assert!(
            r.peak_kib < MAX_RSS_KIB,
            "{file}: {} used {} KiB (limit {MAX_RSS_KIB})",
            args[0],
            r.peak_kib
        );
        assert!(
            !out_dir.exists(),
            "{file}: {} left {} behind",
            args[0],
            out_dir.display()
        );
    }
    assert_eq!(digest(&target), before, "{file}: write changed the target");
    let mut left: Vec<String> = fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["rss.txt", "target.img"],
        "{file}: the commands left files behind"
    );
    let _ = fs::remove_dir_all(&work);
}

macro_rules! corpus_cases {
    ($($test:ident: $file:literal => [$($needle:literal),+ $(,)?],)*) => {
        /// Every corpus file with a test.
        const CASES: &[&str] = &[$($file),*];
        $(
            #[test]
            fn $test() {
                refused_everywhere($file, &[$($needle),+]);
            }
        )*
    };
}

// File → substrings of the one-line refusal (the same for every command).
// Where esxstick's message is misleading, the needles hold only the part
// that is true (see the issue 7 report).
corpus_cases! {
    // Partition table: MBR and EBR chain.
    ebr_loop_two_cycle: "ebr-loop-two-cycle.img" => ["bad partition table", "the EBR chain loops"],
    ebr_link_to_itself: "ebr-link-to-itself.img" => ["bad partition table", "the EBR chain loops: the EBR at sector 8192 links back to sector 8192"],
    ebr_link_back_to_first: "ebr-link-back-to-first.img" => ["bad partition table", "the EBR chain loops", "links back to sector 8192"],
    ebr_logical_on_own_ebr: "ebr-logical-on-own-ebr.img" => ["bad partition table", "starts on its own EBR"],
    ebr_link_into_bank_data: "ebr-link-into-bank-data.img" => ["the EBR at sector 12320 has no signature"],
    ebr_link_one_past_end: "ebr-link-one-past-end.img" => ["the EBR chain links to sector 1843200, past the end of the disk"],
    ebr_chain_140_logicals: "ebr-chain-140-logicals.img" => ["bad partition table: the EBR chain holds more than 128 logical partitions"],
    logical_8_past_end: "logical-8-past-end.img" => ["partition 8 (sectors 1257504..1844199) extends past the end of the image"],
    boot_partition_past_end: "boot-partition-past-end.img" => ["partition 4 (sectors 4000000..", "past the end of the image"],
    extended_past_end: "extended-past-end.img" => ["partition 1 (sectors 8192..", "past the end of the image"],
    overlap_boot_and_bank5: "overlap-boot-and-bank5.img" => ["partitions 4 and 5 overlap"],
    overlap_bank5_and_bank6: "overlap-bank5-and-bank6.img" => ["partitions 5 and 6 overlap"],
    logical_outside_extended: "logical-outside-extended.img" => ["logical partition 6 lies outside the extended partition 1"],
    zero_length_bank5: "zero-length-bank5.img" => ["partition 5 has zero length"],
    zero_length_boot: "zero-length-boot.img" => ["partition 4 has zero length"],
    no_boot_partition: "no-boot-partition.img" => ["not an ESXi image", "no partition 4"],
    no_extended_partition: "no-extended-partition.img" => ["no usable bootbank", "no partition 5 or 6"],
    mbr_no_signature: "mbr-no-signature.img" => ["not a disk image", "no MBR signature"],
    // GPT.
    gpt_both_header_crcs_bad: "gpt-both-header-crcs-bad.img" => ["bad partition table: GPT", "CRC32 Checksum Mismatch"],
    gpt_both_array_crcs_bad: "gpt-both-array-crcs-bad.img" => ["bad partition table: GPT partition table CRC mismatch"],
    gpt_absurd_entry_count: "gpt-absurd-entry-count.img" => ["the GPT header at sector 1 declares 100000 entries"],
    gpt_bank5_past_end: "gpt-bank5-past-end.img" => ["partition 5 (sectors 8224..1943200) extends past the end of the image"],
    gpt_overlap_bank5_and_bank6: "gpt-overlap-bank5-and-bank6.img" => ["bad partition table", "partitions 5 and 6 overlap"],
    gpt_protective_mbr_only: "gpt-protective-mbr-only.img" => ["bad partition table: GPT", "Invalid GPT Signature"],
    // Bootbank file system.
    bank5_fat12_chain_reserved: "bank5-fat12-chain-reserved.img" => ["bank 5: damaged FAT file system", "/SYS.VGZ: cluster 4080 is out of range"],
    bank5_fat32: "bank5-fat32.img" => ["bank 5: damaged FAT file system", "FAT32"],
    bank5_ext2: "bank5-ext2.img" => ["bank 5: not a FAT file system", "no boot sector signature"],
    bank5_bpb_0_bytes_per_sector: "bank5-bpb-0-bytes-per-sector.img" => ["bank 5: not a FAT file system", "0 bytes per sector"],
    bank5_bpb_0_sectors_per_cluster: "bank5-bpb-0-sectors-per-cluster.img" => ["bank 5: not a FAT file system", "0 sectors per cluster"],
    bank5_bpb_4g_sectors: "bank5-bpb-4g-sectors.img" => ["bank 5: not a FAT file system", "too small for its"],
    bank5_bpb_1_sector_fat: "bank5-bpb-1-sector-fat.img" => ["no usable bootbank: bank 5: not a FAT file system: its FAT (1 sectors) is too small"],
    bank5_bpb_0_fats: "bank5-bpb-0-fats.img" => ["bank 5: not a FAT file system: it declares no FAT"],
    boot_bpb_0_bytes_per_sector: "boot-bpb-0-bytes-per-sector.img" => ["the boot partition is unreadable", "0 bytes per sector"],
    boot_partition_cut_before_files: "boot-partition-cut-before-files.img" => ["the boot partition is unreadable", "past the end of the partition"],
    // Bootbank clusters and directories.
    bank5_dir_cycle: "bank5-dir-cycle.img" => ["bank 5: damaged FAT file system", "/SUB/CHILD: its cluster chain"],
    bank5_chain_off_fat: "bank5-chain-off-fat.img" => ["bank 5: damaged FAT file system", "/SYS.VGZ: cluster", "is out of range"],
    bank5_chain_into_free: "bank5-chain-into-free.img" => ["bank 5: damaged FAT file system", "/SYS.VGZ: its chain runs into a free cluster"],
    bank5_cross_linked: "bank5-cross-linked.img" => ["bank 5: damaged FAT file system", "/SYS.VGZ: its cluster chain is cross-linked"],
    bank5_size_beyond_chain: "bank5-size-beyond-chain.img" => ["bank 5: damaged FAT file system", "/VMK.GZ: 1114140 bytes need"],
    bank5_partition_cut_before_files: "bank5-partition-cut-before-files.img" => ["bank 5: damaged FAT file system", "/SYS.VGZ: cluster", "past the end of the partition"],
    // boot.cfg.
    bootcfg_missing: "bootcfg-missing.img" => ["no usable bootbank", "bank 5: no boot.cfg, though the bank holds"],
    bootcfg_empty: "bootcfg-empty.img" => ["no usable bootbank", "bank 5: boot.cfg has no kernel= line"],
    bootcfg_binary: "bootcfg-binary.img" => ["no usable bootbank", "bank 5: boot.cfg is not text"],
    bootcfg_10mb: "bootcfg-10mb.img" => ["no usable bootbank", "bank 5: /boot.cfg is 10", "more than the 65536 expected"],
    bootcfg_not_key_value: "bootcfg-not-key-value.img" => ["bank 5: boot.cfg line 7: expected key=value"],
    bootcfg_kernel_absent: "bootcfg-kernel-absent.img" => ["bootbank 5: boot.cfg names a module not in the bank: vmkernel.gz"],
    bootcfg_module_dotdot: "bootcfg-module-dotdot.img" => ["bank 5: boot.cfg names an unsafe file \"../x\""],
    bootcfg_module_etc_passwd: "bootcfg-module-etc-passwd.img" => ["bank 5: boot.cfg names an unsafe file \"/etc/passwd\""],
    bootcfg_bootstate_2: "bootcfg-bootstate-2.img" => ["no usable bootbank", "bank 5: upgrade failed to boot (bootstate=2)"],
    bootcfg_3000_missing_modules: "bootcfg-3000-missing-modules.img" => ["bootbank 5: boot.cfg names modules not in the bank: missing0001.gz", "and 2992 more"],
    // Truncated images.
    truncated_mid_sys_vgz: "truncated-mid-sys-vgz.img" => ["bad partition table", "past the end of the disk", "is the image truncated?"],
    truncated_mid_boot_partition: "truncated-mid-boot-partition.img" => ["bad partition table", "past the end of the disk (2048 sectors)", "is the image truncated?"],
    // Not ESXi at all.
    empty: "empty.img" => ["not a disk image: 0 bytes is too small"],
    one_sector: "one-sector.img" => ["not a disk image: 512 bytes is too small"],
    fifo_not_a_file: "fifo-not-a-file.img" => ["not a regular file or block device"],
    random_bytes: "random-bytes.img" => ["not a disk image", "no MBR signature"],
    fat16_superfloppy: "fat16-superfloppy.img" => ["not a disk image", "superfloppy"],
    ext2_disk: "ext2-disk.img" => ["not a disk image", "no MBR signature"],
    linux_disk: "linux-disk.img" => ["not an ESXi image", "no partition 4"],
}

#[test]
fn every_corpus_file_has_a_case() {
    let dir = corpus();
    let mut files: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".img"))
        .collect();
    files.sort();
    let mut cases: Vec<String> = CASES.iter().map(|c| c.to_string()).collect();
    cases.sort();
    assert_eq!(files, cases, "corpus files and test cases differ");
    assert!(
        cases.len() >= 30,
        "the corpus has only {} files",
        cases.len()
    );
    let index = fs::read_to_string(dir.join("INDEX")).unwrap();
    assert_eq!(index.lines().count(), cases.len(), "INDEX lines");
}

/// The good images the corpus is made from are accepted, so each refusal
/// above comes from its file's one malformation.
#[test]
fn controls_are_accepted() {
    let dir = corpus().join("control");
    for (image, layout) in [
        ("esxi4-mbr.img", "esxi-native"),
        ("esxi5-gpt.img", "gpt-minimal"),
    ] {
        let img = dir.join(image);
        let img = img.to_str().unwrap();
        let out = esxstick(&["inspect", img]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "inspect {image}: {}",
            stderr(&out)
        );
        let out = esxstick(&["plan", img, "--size", "64M", "--layout", layout]);
        assert_eq!(out.status.code(), Some(0), "plan {image}: {}", stderr(&out));
    }
    let work = scratch("corpus-control");
    let out = work.join("extracted");
    let r = esxstick(&[
        "extract",
        dir.join("esxi4-mbr.img").to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.status.code(), Some(0), "extract: {}", stderr(&r));
    assert!(out.join("SHA256SUMS").exists());
}
