//! What an ESXi image holds: its boot partition, bootbanks, the active
//! bank and its modules. Built from the partition table and the FAT
//! volumes, without mounting anything.

use serde::Serialize;

use crate::error::{bank_statuses, Error, FatProblem, NoBankReason, NotEsxiReason, Result};
use crate::esxi::banks::{self, Exclusion};
use crate::esxi::bootcfg::{self, BootCfg};
use crate::esxi::modules::ModuleCheck;
use crate::image::source::{Source, SourceKind, SECTOR};
use crate::image::stream::Origin;
use crate::ondisk::bpb::BootSector;
use crate::ondisk::fat::{FileEntry, FsInfo, Volume};
use crate::ondisk::table::{self, Partition, PartitionTable, Scheme};
use crate::ondisk::vmfat::{self, FatUuid};

/// Largest boot partition accepted (1 GiB; ESXi's is 4 MiB).
const MAX_BOOT_SECTORS: u64 = 1 << 21;

/// Version of the JSON document that `inspect --json` prints.
pub const SCHEMA: &str = "esxstick.inventory/1";

/// The part a partition plays in an ESXi image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// SYSLINUX boot partition (MBR entry 4, GPT partition 1).
    Boot,
    /// MBR extended partition holding the logical ones.
    Extended,
    /// Bootbank, "Hypervisor1" (partition 5).
    Bootbank,
    /// Alternate bootbank, "Hypervisor2" (partition 6).
    Altbootbank,
    /// vmkcore diagnostic partition (partition 7).
    Vmkcore,
    /// Store, "Hypervisor3" (partition 8).
    Store,
    /// Anything else.
    Other,
}

impl Role {
    fn of(scheme: Scheme, p: &Partition) -> Role {
        match (scheme, p.number) {
            _ if p.kind.is_extended() => Role::Extended,
            (Scheme::Mbr, 4) | (Scheme::Gpt, 1) => Role::Boot,
            (_, 5) => Role::Bootbank,
            (_, 6) => Role::Altbootbank,
            (_, 7) => Role::Vmkcore,
            (_, 8) => Role::Store,
            _ => Role::Other,
        }
    }

    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Role::Boot => "boot",
            Role::Extended => "extended",
            Role::Bootbank => "bootbank",
            Role::Altbootbank => "altbootbank",
            Role::Vmkcore => "vmkcore",
            Role::Store => "store",
            Role::Other => "other",
        }
    }
}

/// The source as a whole.
#[derive(Debug, Clone, Serialize)]
pub struct SourceInfo {
    /// Path given by the user.
    pub path: String,
    /// Image file or block device.
    pub kind: SourceKind,
    /// Size in bytes (for a stream not read to its end, up to the end of
    /// the last partition).
    pub bytes: u64,
    /// For a compressed image or an installer ISO, where the image is
    /// read from.
    pub origin: Option<Origin>,
    /// MBR or GPT.
    pub scheme: Scheme,
    /// Size in sectors.
    pub disk_sectors: u64,
}

/// A partition with its role and, when it holds one, its FAT file system.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionInfo {
    /// Table entry, type, position, boot flag.
    #[serde(flatten)]
    pub partition: Partition,
    /// Human name of the type.
    pub type_name: &'static str,
    /// What the partition is for.
    pub role: Role,
    /// Size in bytes.
    pub bytes: u64,
    /// The FAT file system, when the partition holds a readable one.
    pub fs: Option<FsInfo>,
    /// Why a partition whose type promises FAT could not be read as FAT.
    pub fs_error: Option<String>,
}

/// The boot partition and how much of it is in use.
#[derive(Debug, Clone, Serialize)]
pub struct BootPartition {
    /// Partition number (4 on MBR, 1 on GPT).
    pub partition: u32,
    /// First sector.
    pub start: u64,
    /// Partition length in sectors.
    pub sectors: u64,
    /// Sectors from the partition start to the end of the last used cluster.
    pub used_sectors: u64,
    /// The boot sector's fields (hidden sectors, geometry, sizes).
    pub boot_sector: BootSector,
}

/// A bootbank and what its boot.cfg says.
#[derive(Debug, Clone, Serialize)]
pub struct Bank {
    /// Partition number (5 or 6).
    pub partition: u32,
    /// Its VMware FAT UUID (32 hex digits), `null` without the sector.
    pub uuid: Option<FatUuid>,
    /// Its boot.cfg, when it has a readable one.
    pub boot_cfg: Option<BootCfg>,
    /// Whether ESXi's boot loader may boot it (see [`banks`]).
    pub bootable: bool,
    /// The rule that keeps the loader from booting it; `null` when
    /// bootable.
    pub excluded: Option<Exclusion>,
    /// Its state, in a few words.
    pub status: String,
}

/// The bank chosen for the stick, and why.
#[derive(Debug, Clone, Serialize)]
pub struct ActiveBank {
    /// Partition number.
    pub partition: u32,
    /// Why this bank.
    pub reason: String,
}

/// A file that the active boot.cfg names.
#[derive(Debug, Clone, Serialize)]
pub struct Module {
    /// File name in the bank.
    pub name: String,
    /// `kernel` or `module`.
    pub role: &'static str,
    /// Size in bytes, when present.
    pub bytes: Option<u64>,
    /// Whether the bank holds the file.
    pub present: bool,
    /// Whether the module is intact (see [`crate::esxi::modules`]); `null` when not
    /// checked.
    pub check: Option<ModuleCheck>,
}

impl Module {
    /// Whether this is the kernel or a module (not boot.cfg).
    pub fn is_module(&self) -> bool {
        self.role != "config"
    }
}

/// Everything esxstick knows about an ESXi image.
#[derive(Debug, Clone, Serialize)]
pub struct Inventory {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// The source as a whole.
    pub source: SourceInfo,
    /// Partitions in entry-number order.
    pub partitions: Vec<PartitionInfo>,
    /// The boot partition.
    pub boot: BootPartition,
    /// Bootbanks 5 and 6, those that exist.
    pub banks: Vec<Bank>,
    /// The bank the stick is made from.
    pub active_bank: ActiveBank,
    /// boot.cfg and every file it names, in load order.
    pub modules: Vec<Module>,
    /// Bytes of boot.cfg plus every module present.
    pub payload_bytes: u64,
    /// Every file of the active bank (modules, boot.cfg, and anything
    /// else it holds), with paths relative to the bank root.
    pub files: Vec<FileEntry>,
    /// What the user should know about the image, one line each.
    pub warnings: Vec<String>,
    /// The 440 bytes of MBR boot code.
    #[serde(skip)]
    pub boot_code: Vec<u8>,
}

impl Inventory {
    /// The active bank's boot.cfg.
    pub fn boot_cfg(&self) -> Option<&BootCfg> {
        self.bank(self.active_bank.partition)
            .and_then(|b| b.boot_cfg.as_ref())
    }

    /// The bank with partition number `n`.
    pub fn bank(&self, n: u32) -> Option<&Bank> {
        self.banks.iter().find(|b| b.partition == n)
    }

    /// Bytes from the start of the image that cover everything a stick
    /// is made from: the boot partition's used extent and the active
    /// bank's files (up to the end of the last cluster any of them owns;
    /// the bank's FAT and directories, before its data, are read by then).
    /// A partition without a readable volume counts whole.
    pub fn needed_bytes(&self) -> u64 {
        let bank_end = self.partition(self.active_bank.partition).map_or(0, |p| {
            let used =
                p.fs.as_ref()
                    .map_or(p.partition.sectors, |fs| fs.data_end_sectors);
            p.partition.start + used.min(p.partition.sectors)
        });
        let boot_end = self.boot.start + self.boot.used_sectors;
        boot_end.max(bank_end) * SECTOR
    }

    /// The partition with number `n`.
    pub fn partition(&self, n: u32) -> Option<&PartitionInfo> {
        self.partitions.iter().find(|p| p.partition.number == n)
    }

    /// The active bank's partition.
    pub fn active_partition(&self) -> Result<&PartitionInfo> {
        let partition = self.active_bank.partition;
        self.partition(partition)
            .ok_or_else(|| no_bank(NoBankReason::PartitionMissing { partition }))
    }

    /// Fails when the active boot.cfg names files the bank lacks, or a
    /// module checked with [`crate::esxi::modules::check`] is damaged: such a bank
    /// cannot boot, so nothing may be made from it.
    pub fn check_complete(&self) -> Result<()> {
        let missing: Vec<String> = self
            .modules
            .iter()
            .filter(|m| !m.present)
            .map(|m| m.name.clone())
            .collect();
        let partition = self.active_bank.partition;
        if !missing.is_empty() {
            return Err(Error::MissingModules {
                partition,
                names: missing,
            });
        }
        let damaged = self
            .modules
            .iter()
            .find_map(|m| m.check.as_ref().filter(|c| !c.ok).map(|c| (m, c)));
        match damaged {
            Some((m, c)) => Err(Error::DamagedModule {
                partition,
                name: m.name.clone(),
                problem: c.detail.clone(),
            }),
            None => Ok(()),
        }
    }
}

/// Reads the inventory of an ESXi image. `bank` forces the bootbank
/// (5 or 6) instead of choosing the active one.
pub fn read(source: &Source, bank: Option<u32>) -> Result<Inventory> {
    let table = table::read(source)?;
    let partitions = describe_partitions(source, &table);
    let boot = boot_partition(source, &table, &partitions)?;
    let (banks, warnings) = read_banks(source, &table);
    let active_bank = choose_bank(&banks, bank)?;
    let active = table.get(active_bank.partition).ok_or_else(|| {
        no_bank(NoBankReason::PartitionMissing {
            partition: active_bank.partition,
        })
    })?;
    let volume = Volume::open(source, active)?;
    let mut modules = vec![];
    let cfg_file = volume.find("boot.cfg")?;
    modules.push(Module {
        name: "boot.cfg".to_string(),
        role: "config",
        bytes: cfg_file.as_ref().map(|f| f.bytes),
        present: cfg_file.is_some(),
        check: None,
    });
    if let Some(cfg) = banks
        .iter()
        .find(|b| b.partition == active_bank.partition)
        .and_then(|b| b.boot_cfg.as_ref())
    {
        for (i, name) in cfg.files().enumerate() {
            let file = volume.find(name)?;
            modules.push(Module {
                name: name.to_string(),
                role: if i == 0 { "kernel" } else { "module" },
                bytes: file.as_ref().map(|f| f.bytes),
                present: file.is_some(),
                check: None,
            });
        }
    }
    let payload_bytes = modules.iter().filter_map(|m| m.bytes).sum();
    let files = volume.files()?;
    Ok(Inventory {
        schema: SCHEMA,
        source: SourceInfo {
            path: source.path().display().to_string(),
            kind: source.kind(),
            bytes: source.known_len().unwrap_or(table.disk_sectors * SECTOR),
            origin: source.origin().cloned(),
            scheme: table.scheme,
            disk_sectors: table.disk_sectors,
        },
        partitions,
        boot,
        banks,
        active_bank,
        modules,
        payload_bytes,
        files,
        warnings,
        boot_code: table.boot_code,
    })
}

/// Banks 5 and 6, judged by safeboot's rules. When no bank carries the
/// UUID sector (a hand-made stick), the rules apply without it, and a
/// warning says that ESXi would not find the bank.
fn read_banks(source: &Source, table: &PartitionTable) -> (Vec<Bank>, Vec<String>) {
    let mut banks: Vec<Bank> = [5, 6]
        .into_iter()
        .filter_map(|n| table.get(n))
        .map(|p| read_bank(source, p))
        .collect();
    let need_uuid = banks.iter().any(|b| b.uuid.is_some());
    for bank in &mut banks {
        bank.excluded = banks::eligibility(bank.uuid, bank.boot_cfg.as_ref(), need_uuid).err();
        bank.bootable = bank.excluded.is_none();
        // A bank without a usable boot.cfg, or with a bootstate that
        // excludes it, is already described by its status.
        match &bank.excluded {
            None | Some(Exclusion::Bootstate(_) | Exclusion::NoBootCfg) => {}
            Some(_) if bank.boot_cfg.is_none() => {}
            Some(rule) => bank.status = format!("not bootable: {rule}"),
        }
    }
    let mut warnings = Vec::new();
    if !need_uuid && !banks.is_empty() {
        warnings.push(
            "no bank carries VMware's FAT UUID sector: ESXi would not find this bank \
             (a hand-made stick?); the new stick's banks get fresh UUIDs"
                .to_string(),
        );
    }
    (banks, warnings)
}

/// The VMware FAT UUID in a partition's second sector, if it has one.
fn read_uuid(source: &Source, p: &Partition) -> Option<FatUuid> {
    let sector = source
        .read_sector(p.start + vmfat::SECTOR_INDEX, "a bank's UUID sector")
        .ok()?;
    FatUuid::parse(&sector)
}

fn describe_partitions(source: &Source, table: &PartitionTable) -> Vec<PartitionInfo> {
    table
        .partitions
        .iter()
        .map(|p| {
            let role = Role::of(table.scheme, p);
            // A stream is read only as far as needed: up to the banks.
            let needed = source.origin().is_none()
                || matches!(role, Role::Boot | Role::Bootbank | Role::Altbootbank);
            let (fs, fs_error) = if p.kind.is_fat() && needed {
                match Volume::open(source, p).and_then(|v| v.info()) {
                    Ok(info) => (Some(info), None),
                    Err(e) => (None, Some(e.to_string())),
                }
            } else {
                (None, None)
            };
            PartitionInfo {
                partition: p.clone(),
                type_name: p.kind.name(),
                role,
                bytes: p.bytes(),
                fs,
                fs_error,
            }
        })
        .collect()
}

fn boot_partition(
    source: &Source,
    table: &PartitionTable,
    partitions: &[PartitionInfo],
) -> Result<BootPartition> {
    let number = match table.scheme {
        Scheme::Mbr => 4,
        Scheme::Gpt => 1,
    };
    let not_esxi = |reason| Error::NotEsxi { reason };
    let Some(info) = partitions.iter().find(|p| p.partition.number == number) else {
        return Err(not_esxi(NotEsxiReason::NoBootPartition {
            partition: number,
        }));
    };
    if let Some(e) = &info.fs_error {
        return Err(not_esxi(NotEsxiReason::BootUnreadable {
            fs_error: e.clone(),
        }));
    }
    let p = &info.partition;
    if p.sectors > MAX_BOOT_SECTORS {
        return Err(not_esxi(NotEsxiReason::BootTooLarge {
            partition: number,
            sectors: p.sectors,
        }));
    }
    // Whatever its type byte says, the boot partition must be a sound FAT
    // volume: opening it runs the consistency scan.
    Volume::open(source, p)
        .map_err(|e| not_esxi(NotEsxiReason::BootUnusable { cause: Box::new(e) }))?;
    let fat = |problem| Error::Fat {
        partition: number,
        problem,
    };
    let sector = source.read_sector(p.start, "the boot sector of the boot partition")?;
    let boot_sector =
        BootSector::parse(&sector).map_err(|reason| fat(FatProblem::BootNotFat { reason }))?;
    let used_sectors = boot_sector.used_sectors(source, p.start, number)?;
    if used_sectors > p.sectors {
        return Err(fat(FatProblem::PastEnd {
            reaches: used_sectors,
            sectors: p.sectors,
        }));
    }
    Ok(BootPartition {
        partition: number,
        start: p.start,
        sectors: p.sectors,
        used_sectors,
        boot_sector,
    })
}

fn read_bank(source: &Source, p: &Partition) -> Bank {
    let cfg = Volume::open(source, p).and_then(|v| match v.find("boot.cfg")? {
        Some(f) => v.read_small(&f, bootcfg::MAX_BYTES).map(Ok),
        None => Ok(Err(v.files()?.len())),
    });
    let (boot_cfg, status) = match cfg {
        Err(e) => (None, unprefixed(&e, p.number)),
        Ok(Err(0)) => (None, "no boot.cfg (empty bank)".to_string()),
        Ok(Err(n)) => (
            None,
            format!("no boot.cfg, though the bank holds {n} files"),
        ),
        Ok(Ok(bytes)) => match BootCfg::parse(&bytes) {
            Err(e) => (None, e.to_string()),
            Ok(cfg) => {
                let status = match cfg.bootstate.unwrap_or(0) {
                    0 => "valid (bootstate=0)".to_string(),
                    1 => "upgraded, first boot pending (bootstate=1)".to_string(),
                    2 => "upgrade failed to boot (bootstate=2)".to_string(),
                    3 => "marked empty (bootstate=3)".to_string(),
                    n => format!("unknown bootstate={n}"),
                };
                (Some(cfg), status)
            }
        },
    };
    // Judged in read_banks, once it is known whether any bank has a UUID.
    Bank {
        partition: p.number,
        uuid: read_uuid(source, p),
        boot_cfg,
        bootable: false,
        excluded: None,
        status,
    }
}

/// An error's message without the "partition N: " that the bank table
/// already shows.
fn unprefixed(e: &Error, number: u32) -> String {
    match e {
        Error::Fat { partition, problem } if *partition == number => problem.to_string(),
        other => other.to_string(),
    }
}

/// An [`Error::NoBootbank`].
fn no_bank(reason: NoBankReason) -> Error {
    Error::NoBootbank { reason }
}

/// The active bank: the bootable one with the highest `updated=`, bank 5
/// on a tie; or the one the user forced.
fn choose_bank(banks: &[Bank], forced: Option<u32>) -> Result<ActiveBank> {
    let statuses = || -> Vec<(u32, String)> {
        banks
            .iter()
            .map(|b| (b.partition, b.status.clone()))
            .collect()
    };
    let summary = || bank_statuses(&statuses());
    if let Some(n) = forced {
        let Some(bank) = banks.iter().find(|b| b.partition == n) else {
            return Err(no_bank(NoBankReason::NoSuchBank { bank: n }));
        };
        if bank.boot_cfg.is_none() {
            return Err(no_bank(NoBankReason::NoBootCfg {
                bank: n,
                status: bank.status.clone(),
            }));
        }
        return Ok(ActiveBank {
            partition: n,
            reason: format!("chosen with --bank {n} ({})", bank.status),
        });
    }
    let bootable: Vec<&Bank> = banks.iter().filter(|b| b.bootable).collect();
    let updated = |b: &Bank| b.boot_cfg.as_ref().and_then(|c| c.updated).unwrap_or(0);
    let chosen = banks::choose(banks.iter().map(|b| (b.partition, updated(b), b.bootable)));
    let Some(best) = chosen.and_then(|n| banks.iter().find(|b| b.partition == n)) else {
        return Err(no_bank(if banks.is_empty() {
            NoBankReason::NoBanks
        } else {
            NoBankReason::NoneBootable { banks: statuses() }
        }));
    };
    let reason = match bootable.as_slice() {
        [_] => format!("the only bootable bank ({})", summary()),
        _ => format!(
            "highest updated={} among bootable banks ({})",
            updated(best),
            summary()
        ),
    };
    Ok(ActiveBank {
        partition: best.partition,
        reason,
    })
}
