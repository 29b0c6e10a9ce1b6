//! Hostile images found by review: each once made esxstick panic, hang or
//! write gigabytes. Each is built here byte by byte (or by patching a copy
//! of a fixture), and must be refused with exit 2 and one line naming the
//! problem, quickly, with nothing written.

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::common::*;

fn mbr_entry(sys: u8, start: u32, sectors: u32) -> [u8; 16] {
    let mut e = [0u8; 16];
    e[4] = sys;
    e[8..12].copy_from_slice(&start.to_le_bytes());
    e[12..16].copy_from_slice(&sectors.to_le_bytes());
    e
}

fn mbr(entries: &[[u8; 16]]) -> [u8; 512] {
    let mut s = [0u8; 512];
    for (i, e) in entries.iter().enumerate() {
        s[446 + 16 * i..462 + 16 * i].copy_from_slice(e);
    }
    s[510] = 0x55;
    s[511] = 0xaa;
    s
}

/// A sparse image of `sectors` with `chunks` written at byte offsets.
fn image(name: &str, sectors: u64, chunks: &[(u64, &[u8])]) -> PathBuf {
    let path = scratch(&format!("hostile-{name}")).join(name);
    let f = File::create(&path).unwrap();
    f.set_len(sectors * 512).unwrap();
    for (at, bytes) in chunks {
        f.write_all_at(bytes, *at).unwrap();
    }
    path
}

/// inspect and extract both refuse `image` naming `needle`, and extract
/// leaves no output.
fn refused(image: &Path, needle: &str) {
    let img = image.to_str().unwrap();
    assert_refused(&esxstick(&["inspect", img]), needle);
    let out = image.with_extension("out");
    assert_refused(&esxstick(&["extract", img, out.to_str().unwrap()]), needle);
    assert!(!out.exists(), "extract left output behind");
}

#[test]
fn mbr_entry_at_sector_zero() {
    let img = image("lba0.img", 64, &[(0, &mbr(&[mbr_entry(0x06, 0, 10)]))]);
    refused(&img, "on top of the MBR");
}

#[test]
fn extended_type_c5_with_an_absurd_logical_start() {
    let ebr = mbr(&[mbr_entry(0x06, u32::MAX, 1)]);
    for (name, table) in [
        ("c5.img", mbr(&[mbr_entry(0xc5, 2, 60)])),
        (
            "c5-05.img",
            mbr(&[mbr_entry(0xc5, 2, 20), mbr_entry(0x05, 30, 20)]),
        ),
    ] {
        let img = image(name, 64, &[(0, &table), (1024, &ebr)]);
        refused(&img, "bad partition table");
    }
}

#[test]
fn gpt_partition_at_the_last_possible_sector() {
    let sectors = 2048u64;
    let mut entries = vec![0u8; 128 * 128];
    let esp = [
        0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9,
        0x3b,
    ];
    entries[..16].copy_from_slice(&esp);
    entries[16] = 1; // a non-nil partition GUID
    entries[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
    entries[40..48].copy_from_slice(&u64::MAX.to_le_bytes());
    let crc = |b: &[u8]| {
        let mut c = flate2::Crc::new();
        c.update(b);
        c.sum()
    };
    let header = |mine: u64, other: u64, table: u64| {
        let mut h = vec![0u8; 512];
        h[..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x10000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&mine.to_le_bytes());
        h[32..40].copy_from_slice(&other.to_le_bytes());
        h[40..48].copy_from_slice(&34u64.to_le_bytes());
        h[48..56].copy_from_slice(&(sectors - 34).to_le_bytes());
        h[56] = 1;
        h[72..80].copy_from_slice(&table.to_le_bytes());
        h[80..84].copy_from_slice(&128u32.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        h[88..92].copy_from_slice(&crc(&entries).to_le_bytes());
        let c = crc(&h[..92]);
        h[16..20].copy_from_slice(&c.to_le_bytes());
        h
    };
    let protective = mbr(&[mbr_entry(0xee, 1, sectors as u32 - 1)]);
    let (primary, backup) = (
        header(1, sectors - 1, 2),
        header(sectors - 1, 1, sectors - 33),
    );
    let img = image(
        "gpt-max.img",
        sectors,
        &[
            (0, &protective),
            (512, &primary),
            (1024, &entries),
            ((sectors - 33) * 512, &entries),
            ((sectors - 1) * 512, &backup),
        ],
    );
    refused(&img, "bad partition table");
}

/// A sparse copy of a fixture to damage.
fn copy_of(variant: &str, name: &str) -> PathBuf {
    let copy = scratch(&format!("hostile-{name}")).join(name);
    oracle(
        "cp",
        &[
            "--sparse=always",
            fixture(variant).to_str().unwrap(),
            copy.to_str().unwrap(),
        ],
    );
    copy
}

fn read_u16(f: &File, at: u64) -> u64 {
    let mut b = [0u8; 2];
    f.read_exact_at(&mut b, at).unwrap();
    u64::from(u16::from_le_bytes(b))
}

/// Byte offsets of bank 5's first FAT and root directory (read from its
/// boot sector), and of the directory entry whose 8.3 name is `short`.
fn bank5_entry(f: &File, short: &[u8; 11]) -> (u64, u64) {
    let bank = 8224 * 512;
    let reserved = read_u16(f, bank + 0x0e);
    let spf = read_u16(f, bank + 0x16);
    let fat = bank + reserved * 512;
    let root = fat + 2 * spf * 512;
    let mut dir = vec![0u8; 512 * 32];
    f.read_exact_at(&mut dir, root).unwrap();
    let i = dir
        .chunks(32)
        .position(|e| &e[..11] == short)
        .expect("entry in the root directory");
    (fat, root + 32 * i as u64)
}

#[test]
fn file_whose_chain_loops_with_a_4_gib_size() {
    let img = copy_of("esxi40", "fat-loop.img");
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&img)
        .unwrap();
    let (fat, entry) = bank5_entry(&f, b"OEM     TGZ");
    let cluster = read_u16(&f, entry + 26);
    f.write_all_at(&(cluster as u16).to_le_bytes(), fat + 2 * cluster)
        .unwrap();
    f.write_all_at(&u32::MAX.to_le_bytes(), entry + 28).unwrap();
    refused(&img, "loops");
}

#[test]
fn directory_entry_with_cluster_1() {
    let img = copy_of("esxi40", "cluster-1.img");
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&img)
        .unwrap();
    let (_, entry) = bank5_entry(&f, b"BOOT    CFG");
    f.write_all_at(&1u16.to_le_bytes(), entry + 26).unwrap();
    refused(&img, "out of range");
}

#[test]
fn subdirectory_that_loops_onto_itself() {
    let img = copy_of("esxi40", "dir-loop.img");
    oracle("mmd", &["-i", &mtools_image(&img, 8224), "::/SUB"]);
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&img)
        .unwrap();
    let (fat, entry) = bank5_entry(&f, b"SUB        ");
    let cluster = read_u16(&f, entry + 26);
    f.write_all_at(&(cluster as u16).to_le_bytes(), fat + 2 * cluster)
        .unwrap();
    refused(&img, "loops");
}

#[test]
fn boot_partition_with_an_absurd_boot_sector() {
    // Partition 4 typed 0x83 (not FAT), its boot sector claiming 2^32-1
    // sectors of one-sector clusters: once a 4-billion-entry scan.
    let img = copy_of("esxi40", "boot-absurd.img");
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&img)
        .unwrap();
    f.write_all_at(&[0x83], 446 + 3 * 16 + 4).unwrap();
    f.write_all_at(&[0, 0], 32 * 512 + 0x13).unwrap();
    f.write_all_at(&u32::MAX.to_le_bytes(), 32 * 512 + 0x20)
        .unwrap();
    refused(&img, "boot partition");
}

#[test]
fn gpt_layout_may_not_start_on_the_partition_array() {
    let layout = scratch("hostile-layout").join("gpt2.toml");
    let text = fs::read_to_string(root().join("layouts/gpt-minimal.toml")).unwrap();
    fs::write(&layout, text.replace("start = 64", "start = 2")).unwrap();
    let out = esxstick(&[
        "plan",
        fixture("gpt").to_str().unwrap(),
        "--size",
        "64M",
        "--layout",
        layout.to_str().unwrap(),
    ]);
    assert_refused(&out, "must be between 34");
}
