//! Compressed images and installer ISOs as sources. The oracle side is
//! always the image decompressed (and pulled off the ISO) by the real
//! tools — gzip, bzip2, xz, zstd, xorriso, tar — and read as a raw image:
//! whatever the source kind, `extract` must give byte-identical output,
//! and a stick written from it must verify and boot.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// Runs a shell pipeline of oracle tools; fails loudly if it fails.
fn sh(script: &str) {
    let out = Command::new("sh")
        .args(["-euc", script])
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "`{script}` failed (are the tools installed? scripts/test installs them):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The decompressor command (reading stdin) of a compressed fixture.
fn decompressor(variant: &str) -> &'static str {
    match variant {
        v if v.ends_with("-gz") => "gzip -dc",
        v if v.ends_with("-bz2") => "bzip2 -dc",
        v if v.ends_with("-xz") => "xz -dc",
        v if v.ends_with("-zst") => "zstd -dcq",
        other => panic!("no decompressor for {other}"),
    }
}

/// The raw image inside a compressed or ISO fixture, made with the real
/// tools into `dir` (sparse).
fn raw_image(variant: &str, source: &Path, dir: &Path) -> PathBuf {
    let raw = dir.join("raw.img");
    let (src, out) = (source.display(), raw.display());
    match variant {
        "iso41" => sh(&format!(
            "xorriso -osirrox on -indev {src} -extract /imagedd.bz2 {d}/imagedd.bz2 2>/dev/null; \
             bzip2 -dc {d}/imagedd.bz2 | cp --sparse=always /dev/stdin {out}; rm {d}/imagedd.bz2",
            d = dir.display()
        )),
        "iso40" => sh(&format!(
            "xorriso -osirrox on -indev {src} -extract /image.tgz {d}/image.tgz 2>/dev/null; \
             tar -xzOf {d}/image.tgz --wildcards '*.dd.bz2' | bzip2 -dc | \
             cp --sparse=always /dev/stdin {out}; rm {d}/image.tgz",
            d = dir.display()
        )),
        v => sh(&format!(
            "{} < {src} | cp --sparse=always /dev/stdin {out}",
            decompressor(v)
        )),
    }
    raw
}

/// `extract` of a directory's files, by name.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut all: Vec<_> = fs::read_dir(dir)
        .expect("read extract dir")
        .map(|e| {
            let e = e.expect("dir entry");
            let name = e.file_name().to_string_lossy().into_owned();
            (name, fs::read(e.path()).expect("read extracted file"))
        })
        .collect();
    all.sort();
    all
}

/// Checks that `source` extracts exactly what `raw`, its image as the
/// real tools decompress it, does (both into `dir`); returns extract's
/// stderr.
fn extracts_as_raw_does(label: &str, source: &Path, raw: &Path, dir: &Path) -> String {
    let (from_raw, from_stream) = (dir.join("raw"), dir.join("stream"));
    let out = esxstick(&["extract", raw.to_str().unwrap(), from_raw.to_str().unwrap()]);
    assert!(out.status.success(), "{label} raw: {}", stderr(&out));
    let out = esxstick(&[
        "extract",
        source.to_str().unwrap(),
        from_stream.to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{label}: {err}");
    assert!(!err.contains("panicked"), "{label}: {err}");
    let raw_files = files(&from_raw);
    assert!(raw_files.len() > 5, "{label}: too few files extracted");
    assert!(
        raw_files == files(&from_stream),
        "{label}: extract differs from extracting the decompressed image"
    );
    err
}

/// Checks that a stream source extracts exactly what its raw image
/// does, says how much of the stream it read, and stops early.
fn extracts_like_raw(variant: &str) {
    let source = fixture(variant);
    let dir = scratch(&format!("sources-extract-{variant}"));
    let raw = raw_image(variant, &source, &dir);
    let err = extracts_as_raw_does(variant, &source, &raw, &dir);
    if variant == "iso41" {
        // imagedd.md5 covers the whole image: all of it is hashed.
        assert!(err.contains("to its end; MD5"), "{variant}: {err}");
        assert!(err.contains("matches imagedd.md5"), "{variant}: {err}");
    } else {
        // ~266 MB of 900 MiB: the store partition (120 MB of
        // incompressible data) is never decompressed.
        assert!(err.contains("then stopped"), "{variant}: {err}");
        assert!(err.contains("read 25"), "{variant}: read 255 MiB? {err}");
    }
    fs::remove_file(&raw).expect("remove raw image");
}

#[test]
fn compressed_images_extract_like_their_raw_image() {
    for variant in ["esxi40-gz", "esxi40-bz2", "esxi40-xz", "esxi40-zst"] {
        extracts_like_raw(variant);
    }
}

#[test]
fn installer_isos_extract_like_their_raw_image() {
    for variant in ["iso41", "iso40"] {
        extracts_like_raw(variant);
    }
}

/// Streams and blocks of an xz file, as `xz --list` counts them.
fn xz_streams_and_blocks(file: &Path) -> (u64, u64) {
    let out = stdout(&oracle(
        "xz",
        &["--robot", "--list", file.to_str().unwrap()],
    ));
    let totals: Vec<u64> = out
        .lines()
        .find_map(|l| l.strip_prefix("totals\t"))
        .map(|rest| {
            rest.split('\t')
                .take(2)
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    match totals[..] {
        [streams, blocks] => (streams, blocks),
        _ => panic!("xz --list gives no totals: {out}"),
    }
}

#[test]
fn multi_block_and_concatenated_xz_streams_extract_like_their_raw_image() {
    // The fixture is one stream of many blocks (`xz -T2`), the kind
    // liblzma decodes on every core.
    let source = fixture("esxi40-xz");
    let (streams, blocks) = xz_streams_and_blocks(&source);
    assert!(
        streams == 1 && blocks > 100,
        "{streams} streams, {blocks} blocks"
    );
    let dir = scratch("sources-xz-streams");
    let raw = raw_image("esxi40-xz", &source, &dir);
    // Two multi-block streams and stream padding between them, 100 MiB
    // in: inside the part of the image esxstick reads. xz -dc reads the
    // whole as the image.
    let (r, d) = (raw.display(), dir.display());
    sh(&format!(
        "head -c 100M {r} | xz -0 --block-size=1MiB -T2 > {d}/a.xz; \
         tail -c +104857601 {r} | xz -0 -T2 > {d}/b.xz; \
         {{ cat {d}/a.xz; printf '\\0\\0\\0\\0'; cat {d}/b.xz; }} > {d}/two.xz; \
         xz -dc {d}/two.xz | cmp - {r}"
    ));
    let two = dir.join("two.xz");
    let (streams, blocks) = xz_streams_and_blocks(&two);
    assert!(
        streams == 2 && blocks > 100,
        "{streams} streams, {blocks} blocks"
    );
    let err = extracts_as_raw_does("two xz streams", &two, &raw, &dir);
    assert!(err.contains("then stopped"), "{err}");
    // Padding that is no multiple of four bytes makes no xz file: xz -dc
    // refuses it, and so does esxstick.
    sh(&format!(
        "{{ cat {d}/a.xz; printf '\\0\\0\\0'; cat {d}/b.xz; }} > {d}/bad.xz; \
         ! xz -dc {d}/bad.xz > /dev/null 2>&1"
    ));
    let out = esxstick(&[
        "extract",
        dir.join("bad.xz").to_str().unwrap(),
        dir.join("bad").to_str().unwrap(),
    ]);
    assert_refused(&out, "stream padding");
    fs::remove_file(&raw).expect("remove raw image");
}

/// Writes a stick from `variant`, verifies it against the same source
/// and boots it; returns write's stderr.
fn write_verify_boot(variant: &str, size: &str) -> String {
    let source = fixture(variant);
    let dir = scratch(&format!("sources-write-{variant}"));
    let stick = dir.join("stick.img");
    let (src, dst) = (source.to_str().unwrap(), stick.to_str().unwrap());
    let out = esxstick(&["write", src, dst, "--size", size, "--yes"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{variant}: write: {err}");
    assert!(
        stdout(&out).contains("verified"),
        "{variant}: {}",
        stdout(&out)
    );
    let out = esxstick(&["verify", dst, "--against", src]);
    assert!(out.status.success(), "{variant}: verify: {}", stderr(&out));
    assert!(
        qemu_powers_off(&stick, 120),
        "{variant}: the stick does not boot"
    );
    fs::remove_file(&stick).expect("remove stick");
    err
}

#[test]
fn sticks_from_every_source_kind_verify_and_boot() {
    for variant in [
        "esxi40-gz",
        "esxi40-bz2",
        "esxi40-xz",
        "esxi40-zst",
        "iso40",
    ] {
        write_verify_boot(variant, "64M");
    }
    // ESXi 4.1 needs more than 64 MB; its MD5 is checked before the table
    // is written.
    let err = write_verify_boot("iso41", "128M");
    assert!(err.contains("matches imagedd.md5"), "{err}");
}

/// The first sector of `path` has no MBR signature (or the file is gone).
fn no_valid_table(path: &Path) -> bool {
    fs::read(path).map_or(true, |b| b.get(510..512) != Some(&[0x55, 0xaa][..]))
}

#[test]
fn a_wrong_md5_stops_the_write_before_the_table() {
    let source = fixture("iso41-bad-md5");
    let dir = scratch("sources-bad-md5");
    let stick = dir.join("stick.img");
    let (src, dst) = (source.to_str().unwrap(), stick.to_str().unwrap());
    let out = esxstick(&["write", src, dst, "--size", "128M", "--yes", "--quiet"]);
    assert_refused(&out, "imagedd.md5 says");
    assert!(
        no_valid_table(&stick),
        "a stick with a valid table was left"
    );
    let out = esxstick(&["inspect", src]);
    assert_refused(&out, "imagedd.md5 says");
    // --no-md5 skips the check, and says so.
    let out = esxstick(&["write", src, dst, "--size", "128M", "--yes", "--no-md5"]);
    let err = stderr(&out);
    assert!(out.status.success(), "--no-md5: {err}");
    assert!(err.contains("MD5 is not checked"), "{err}");
}

#[test]
fn broken_streams_and_isos_are_refused_and_nothing_is_written() {
    for (variant, needle) in [
        ("bad-bz2-truncated", "stream ends early"),
        ("bad-gz-corrupt", "stream is damaged"),
        ("iso-no-image", "holds no ESXi dd image"),
    ] {
        let source = fixture(variant);
        let dir = scratch(&format!("sources-bad-{variant}"));
        let src = source.to_str().unwrap();
        assert_refused(&esxstick(&["inspect", src]), needle);
        assert_refused(&esxstick(&["plan", src, "--size", "64M"]), needle);
        let out_dir = dir.join("out");
        assert_refused(
            &esxstick(&["extract", src, out_dir.to_str().unwrap()]),
            needle,
        );
        let stick = dir.join("stick.img");
        let out = esxstick(&[
            "write",
            src,
            stick.to_str().unwrap(),
            "--size",
            "64M",
            "--yes",
        ]);
        assert_refused(&out, needle);
        assert!(!stick.exists(), "{variant}: write created the target");
    }
    // An ISO 9660 signature over nothing: no volume descriptor set.
    let dir = scratch("sources-bad-iso");
    let iso = dir.join("broken.iso");
    let mut bytes = vec![0u8; 40 * 2048];
    bytes[16 * 2048 + 1..16 * 2048 + 6].copy_from_slice(b"CD001");
    fs::write(&iso, bytes).unwrap();
    let out = esxstick(&["inspect", iso.to_str().unwrap()]);
    assert_refused(&out, "installer ISO: unreadable ISO 9660 file system");
}

#[test]
fn an_existing_stick_is_a_source_too() {
    // A 1 GB "vendor" stick with the image's own layout, on a loop device
    // (a block device source)...
    let image = fixture("esxi40");
    let dir = scratch("sources-stick");
    let vendor = dir.join("vendor.img");
    let out = esxstick(&[
        "write",
        image.to_str().unwrap(),
        vendor.to_str().unwrap(),
        "--size",
        "1G",
        "--yes",
        "--quiet",
    ]);
    assert!(out.status.success(), "vendor stick: {}", stderr(&out));
    let device = Loop::attach(&vendor);
    // ...cloned down to a 64 MB stick that verifies against it and boots.
    let small = dir.join("small.img");
    let out = esxstick(&[
        "write",
        &device.0,
        small.to_str().unwrap(),
        "--size",
        "64M",
        "--yes",
        "--quiet",
    ]);
    assert!(out.status.success(), "clone: {}", stderr(&out));
    let out = esxstick(&["verify", small.to_str().unwrap(), "--against", &device.0]);
    assert!(out.status.success(), "verify: {}", stderr(&out));
    assert!(qemu_powers_off(&small, 120), "the clone does not boot");
    // The bank files are those of the original image (mcopy's view).
    let (from_image, from_clone) = (dir.join("image"), dir.join("clone"));
    fs::create_dir_all(&from_image).unwrap();
    fs::create_dir_all(&from_clone).unwrap();
    mcopy_all(&image, 8224, &from_image);
    let clone_bank = inspect_json(&small)["partitions"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["number"] == 5))
        .and_then(|p| p["start"].as_u64())
        .expect("the clone has a bank 5");
    mcopy_all(&small, clone_bank, &from_clone);
    assert!(
        files(&from_image) == files(&from_clone),
        "bank files differ"
    );
}

/// A number from `minfo`'s report, after `key`.
fn minfo_number(report: &str, key: &str) -> u64 {
    report
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("minfo reports no {key:?}:\n{report}"))
}

/// Bytes from the start of `image` to the end of the last cluster that
/// any file of the FAT volume at `lba` occupies, by minfo (the layout)
/// and mshowfat (each file's clusters).
fn files_end_by_mtools(image: &Path, lba: u64, dir: &Path) -> u64 {
    let vol = mtools_image(image, lba);
    let info = stdout(&oracle("minfo", &["-i", &vol, "::"]));
    let first_data = minfo_number(&info, "reserved (boot) sectors:")
        + minfo_number(&info, "fats:") * minfo_number(&info, "sectors per fat:")
        + minfo_number(&info, "max available root directory slots:") * 32 / 512;
    let per_cluster = minfo_number(&info, "cluster size:");
    mcopy_all(image, lba, dir);
    let last_cluster = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .map(|name| {
            let chains = stdout(&oracle("mshowfat", &["-i", &vol, &format!("::/{name}")]));
            // "::/sys.vgz <502-10503> <10600-10700>": the last number.
            chains
                .rsplit(|c: char| !c.is_ascii_digit())
                .find_map(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("mshowfat: {chains}"))
        })
        .max()
        .expect("files in the bank");
    (lba + first_data + (last_cluster - 1) * per_cluster) * 512
}

/// The MiB of image that a stream source says it read.
fn mib_read(err: &str) -> f64 {
    err.split("read ")
        .nth(1)
        .and_then(|rest| rest.split(" MiB").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `read N MiB` in: {err}"))
}

#[test]
fn a_stream_is_read_only_to_the_last_cluster_the_stick_needs() {
    // Bank 6 is active: its files lie at its start, 200 MiB of empty
    // bank follow them, then the store. Only the files are needed.
    let source = fixture("alt-active-zst");
    let dir = scratch("sources-last-byte");
    let raw = raw_image("alt-active-zst", &source, &dir);
    let files = dir.join("files");
    fs::create_dir(&files).unwrap();
    let end = files_end_by_mtools(&raw, sfdisk_start(&raw, 6), &files);
    let out = esxstick(&[
        "extract",
        source.to_str().unwrap(),
        dir.join("x").to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let read = mib_read(&err) * 1_048_576.0;
    let end = end as f64;
    assert!(
        read >= end && read <= end + 1_048_576.0 + 52_429.0,
        "read {read} bytes, the files end at {end}: {err}"
    );
    fs::remove_file(&raw).unwrap();
}
