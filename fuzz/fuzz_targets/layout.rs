//! Layout files: any text as TOML; a layout that parses is planned for
//! a synthetic payload (shaped like tests/plan_properties.rs's) on a
//! target size and payload derived from a hash of the input, and its
//! minimum target size is computed.
#![no_main]

use esxstick::ondisk::bpb::BootSector;
use esxstick::ondisk::table::Scheme;
use esxstick::ondisk::vmfat::FatUuid;
use esxstick::plan::layout::{Layout, TargetScheme};
use esxstick::plan::{self, Payload, PayloadFile};
use libfuzzer_sys::fuzz_target;

/// FNV-1a, then a SplitMix64 stream: cheap, deterministic numbers.
struct Numbers(u64);

impl Numbers {
    fn new(data: &[u8]) -> Numbers {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in data {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        Numbers(h)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Log-uniform below 2^max_bits: small and huge values alike.
    fn log(&mut self, max_bits: u32) -> u64 {
        let bits = (self.next() % u64::from(max_bits + 1)) as u32;
        if bits == 0 {
            0
        } else {
            self.next() & (u64::MAX >> (64 - bits))
        }
    }
}

fn payload(scheme: Scheme, n: &mut Numbers) -> Payload {
    let (start, sectors) = match scheme {
        Scheme::Mbr => (32, 8160),
        Scheme::Gpt => (64, 8128),
    };
    let boot_sector = BootSector::fat16_format(sectors as u32, 1, 1, 64, 32, start as u32)
        .expect("a 4 MiB FAT16 boot partition");
    let first_data = boot_sector.first_data_sector();
    let mut files: Vec<PayloadFile> = (0..n.next() % 8)
        .map(|i| PayloadFile {
            name: if i == 0 {
                "state.tgz".into()
            } else {
                format!("mod{i}.gz")
            },
            bytes: n.log(30),
            replaced: None,
        })
        .collect();
    files.push(PayloadFile {
        name: "boot.cfg".into(),
        bytes: 160,
        replaced: None,
    });
    Payload {
        scheme,
        boot_start: start,
        boot_sectors: sectors,
        boot_used_sectors: (first_data + n.log(13)).min(sectors),
        boot_sector,
        bank: 5,
        bank_sectors: 1 + n.log(20),
        label: "Hypervisor1".into(),
        volume_id: n.next() as u32,
        files,
        // Equal or missing UUIDs must still give every bank its own.
        bank_uuid: (n.next() % 2 == 0).then_some(FatUuid([0x70; 16])),
        other_uuid: (n.next() % 3 != 0).then_some(FatUuid([0x70; 16])),
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(layout) = Layout::parse(&text, "fuzz") else {
        return;
    };
    let _ = (layout.start_unit(), layout.end_unit(), layout.ebr_gap());
    let mut n = Numbers::new(data);
    // Mostly the payload the layout is for; sometimes the other scheme,
    // which must be refused cleanly.
    let scheme = match (layout.scheme, n.next() % 8) {
        (TargetScheme::Mbr, 0) | (TargetScheme::Gpt, 1..) => Scheme::Gpt,
        _ => Scheme::Mbr,
    };
    let payload = payload(scheme, &mut n);
    let target = n.log(36);
    if let Ok(plan) = plan::plan(&payload, &layout, target) {
        // ESXi mounts /bootbank by UUID: no two banks may share one.
        for (i, a) in plan.banks.iter().enumerate() {
            assert!(
                plan.banks[i + 1..].iter().all(|b| b.uuid != a.uuid),
                "two banks share {}",
                a.uuid
            );
        }
    }
    if let Ok(min) = plan::min_target_sectors(&payload, &layout) {
        // The smallest target that fits must be planned.
        if let Err(e) = plan::plan(&payload, &layout, min) {
            panic!(
                "min_target_sectors {min} does not plan: {e} (files {:?})",
                payload.files
            );
        }
    }
});
