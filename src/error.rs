//! The one error type of the library, and the exit code each error maps to.

use std::io;
use std::path::PathBuf;

use crate::ondisk::bpb::BootSector;

/// Why an ESXi 5+ installer ISO cannot be made into a stick as asked.
#[derive(Debug, thiserror::Error)]
pub enum InstallerProblem {
    /// BOOT.CFG (or ISOLINUX.CFG) cannot be parsed.
    #[error("{file}: {reason}")]
    BadConfig {
        /// The file on the ISO.
        file: String,
        /// What is wrong with it.
        reason: String,
    },
    /// BOOT.CFG names files the ISO does not hold.
    #[error(
        "BOOT.CFG names {} not on the ISO: {}; a stick made from it could not boot",
        if names.len() == 1 { "a module" } else { "modules" },
        names.join(", ")
    )]
    MissingModules {
        /// The names as BOOT.CFG gives them.
        names: Vec<String>,
    },
    /// A module's gzip stream is damaged.
    #[error("module {name}: {problem}; a stick made from it could not boot")]
    DamagedModule {
        /// The module's path on the ISO.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The `--syslinux` given cannot be used.
    #[error("--syslinux {}: {reason}", path.display())]
    Syslinux {
        /// The path given.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// SYSLINUX's MBR boot code is not on this system.
    #[error(
        "{}: {source}; install Debian's syslinux-common (the MBR boot code BIOS needs)",
        path.display()
    )]
    NoMbrCode {
        /// Where it was looked for.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// A file on the ISO has a name that is no upper-case 8.3 name.
    #[error(
        "{path}: not an upper-case 8.3 name; mboot's FAT reader matches short names only, so \
         the stick would not find it"
    )]
    NotShortName {
        /// The file's path on the ISO.
        path: String,
    },
    /// A flag was given that does not apply to this kind of source.
    #[error("{flag} {}", if *installer {
        "does not apply to an ESXi 5+ installer ISO (its stick has no bootbank or layout to choose)"
    } else {
        "applies to ESXi 5+ installer ISOs only"
    })]
    Flag {
        /// The flag, e.g. `--state`.
        flag: &'static str,
        /// Whether the source is an installer ISO.
        installer: bool,
    },
    /// `--kernelopt` holds a line break.
    #[error("--kernelopt must be one line")]
    KernelOptLines,
}

/// Everything that can go wrong in the esxstick pipeline.
///
/// Each message is one line that names the thing at fault (file, partition,
/// sector) and, where there is one, what the user can do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The source or target could not be opened.
    #[error("cannot open {}: {source}", path.display())]
    Open {
        /// The path given by the user.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },

    /// Reading the source failed (I/O error, or the image ends early).
    #[error("cannot read {what} at byte {offset} of the source: {source}")]
    Read {
        /// What was being read (e.g. "the MBR", "partition 5").
        what: String,
        /// Byte offset in the source.
        offset: u64,
        /// The underlying error.
        source: io::Error,
    },

    /// A compressed image could not be read (damaged, truncated, wrong
    /// MD5).
    #[error("compressed image: {source}")]
    Stream {
        /// What the stream reported.
        source: io::Error,
    },

    /// An installer ISO holds no usable image.
    #[error("installer ISO: {problem}")]
    Iso {
        /// What is wrong with the ISO.
        problem: IsoProblem,
    },

    /// An ESXi 5+ installer ISO cannot be made into a stick, or the
    /// stick cannot be made as asked.
    #[error("installer ISO: {0}")]
    Installer(InstallerProblem),

    /// The source is not a partitioned disk image at all.
    #[error("not a disk image: {0}")]
    NotADiskImage(crate::ondisk::table::NotADisk),

    /// The partition table is damaged or inconsistent.
    #[error("bad partition table: {0}")]
    Table(crate::ondisk::table::TableProblem),

    /// The disk is partitioned but does not look like an ESXi image.
    #[error("not an ESXi image: {reason}")]
    NotEsxi {
        /// What an ESXi image would have.
        reason: NotEsxiReason,
    },

    /// A FAT volume the tool needs cannot be read (or was not formatted
    /// as planned).
    #[error("partition {partition}: {problem}")]
    Fat {
        /// Partition number.
        partition: u32,
        /// What is wrong with the volume.
        problem: FatProblem,
    },

    /// No bootbank holds a usable boot.cfg (or the one asked for does not).
    #[error("no usable bootbank: {reason}")]
    NoBootbank {
        /// Why no bank can be used.
        reason: NoBankReason,
    },

    /// boot.cfg names modules that the bank does not contain.
    #[error("bootbank {partition}: boot.cfg names {} not in the bank: {}", if names.len() == 1 { "a module" } else { "modules" }, list_some(names))]
    MissingModules {
        /// Bank partition number.
        partition: u32,
        /// Module file names that are missing.
        names: Vec<String>,
    },

    /// A module of the source's bank is damaged: its gzip stream is
    /// broken, incomplete, or fails its CRC-32 or length.
    #[error("bootbank {partition}: module {name}: {problem}; a stick made from it could not boot")]
    DamagedModule {
        /// Bank partition number.
        partition: u32,
        /// The module's file name.
        name: String,
        /// What is wrong with it.
        problem: String,
    },

    /// A layout file is unusable, or does not suit the image.
    #[error("layout: {0}")]
    Layout(crate::plan::layout::LayoutProblem),

    /// The plan does not fit the target.
    #[error("does not fit: {0}")]
    DoesNotFit(crate::plan::Shortfall),

    /// A size given by the user cannot be understood.
    #[error("{0}")]
    BadSize(crate::size::SizeError),

    /// The target may not be written, for the reason given.
    #[error("refusing to write {}: {refusal}", path.display())]
    Target {
        /// The target path.
        path: PathBuf,
        /// Why not.
        refusal: Refusal,
    },

    /// Writing the stick failed part-way.
    #[error("writing {} stopped at {phase}: {cause}; {state} — fix the cause and run write again", path.display())]
    WriteFailed {
        /// The target path.
        path: PathBuf,
        /// What was being written.
        phase: crate::stick::write::WriteStep,
        /// What went wrong.
        cause: Box<Error>,
        /// The state the stick is left in.
        state: StickState,
    },

    /// Wiping a stick failed part-way.
    #[error("wiping {} stopped at {step}: {cause}; {state} — fix the cause and run wipe again", path.display())]
    WipeFailed {
        /// The target path.
        path: PathBuf,
        /// What was being written.
        step: crate::stick::wipe::WipeStep,
        /// What went wrong.
        cause: Box<Error>,
        /// The state the stick is left in.
        state: StickState,
    },

    /// Wiping was interrupted (SIGINT, SIGTERM) between two writes.
    #[error("wiping {} interrupted at {step}: {state}; run the same command again", path.display())]
    WipeInterrupted {
        /// The target path.
        path: PathBuf,
        /// What was being written.
        step: crate::stick::wipe::WipeStep,
        /// The state the stick is left in.
        state: StickState,
    },

    /// A volume label that FAT cannot hold.
    #[error("--label {label:?}: {reason}")]
    Label {
        /// The label given.
        label: String,
        /// Why it cannot be used.
        reason: &'static str,
    },

    /// The write was interrupted (SIGINT, SIGTERM) between two writes.
    #[error("writing {} interrupted at {phase}: {state}; run the same command again", path.display())]
    Interrupted {
        /// The target path.
        path: PathBuf,
        /// What was being done.
        phase: crate::stick::write::WriteStep,
        /// The state the stick is left in.
        state: StickState,
    },

    /// A target that `verify` refuses to read.
    #[error("cannot verify {}: {refusal}", path.display())]
    VerifyTarget {
        /// The target path.
        path: PathBuf,
        /// Why not.
        refusal: Refusal,
    },

    /// The source is unusable, and the target looks like a source: the
    /// two may have been given the other way round.
    #[error("{cause}; TARGET {} holds {holds}: SOURCE and TARGET may be swapped", target.display())]
    MaybeSwapped {
        /// Why the source is unusable.
        cause: Box<Error>,
        /// The target path.
        target: PathBuf,
        /// What the target holds.
        holds: crate::stick::contents::Contents,
    },

    /// The stick does not match (or is damaged); the report says where.
    #[error("verification failed: {failed} of {checks} checks failed; first: {first}")]
    VerifyFailed {
        /// How many checks failed (at least one).
        failed: usize,
        /// How many checks ran.
        checks: usize,
        /// The first failed check, as "item: detail".
        first: String,
    },

    /// A check made once for several targets written at once (the
    /// source's modules or MD5) failed: every one of them stops with it.
    #[error("{0}")]
    Shared(std::sync::Arc<Error>),

    /// Several targets were written at once and some failed; the summary
    /// printed before names each and why.
    #[error("{failed} of {targets} targets failed (see the summary above)")]
    Targets {
        /// How many targets were refused, failed or did not verify.
        failed: usize,
        /// How many targets were given.
        targets: usize,
        /// Whether every failure was a verification (exit 1), not a
        /// target refused or a write that could not be carried out (2).
        verification_only: bool,
    },

    /// The system gave no random bytes for a new UUID.
    #[error("cannot get random bytes for a new bank UUID: {reason}")]
    Random {
        /// The operating system's reason.
        reason: String,
    },

    /// The output directory of `extract` holds files already. (The CLI
    /// adds how to write into it anyway.)
    #[error("{} is not empty; choose an empty directory", dir.display())]
    OutputNotEmpty {
        /// The directory given by the user.
        dir: PathBuf,
    },

    /// Writing output failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or directory being written.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },

    /// A host configuration (state.tgz, a configuration bundle) or an
    /// oem.tgz is unusable.
    #[error("{origin}: {problem}")]
    Config {
        /// Where it comes from.
        origin: ConfigOrigin,
        /// What is wrong with it.
        problem: ConfigProblem,
    },

    /// A configuration bundle from another ESXi build than the image's,
    /// which VMware's own restore refuses. (The CLI adds how to use it
    /// anyway.)
    #[error(
        "configuration bundle {} is from {bundle}, the image is ESXi build {image}; \
         VMware's restore refuses a bundle of another build",
        path.display()
    )]
    BuildMismatch {
        /// The bundle.
        path: PathBuf,
        /// Its `RELEASELEVEL=` ("unknown" when it has none).
        bundle: String,
        /// The image's `build=` ("unknown" when boot.cfg has none).
        image: String,
    },

    /// `--oem` for an ESXi 5+ image, which has no oem.tgz slot.
    #[error(
        "--oem: this image is ESXi {build}; ESXi 5 and later take drivers as VIBs \
         (esxcli software vib install, or an image made with Image Builder), not as oem.tgz"
    )]
    OemNotSupported {
        /// The image's build (or partitioning, when boot.cfg names none).
        build: String,
    },

    /// The bank to back up holds no configuration.
    #[error("bank {bank} holds no state.tgz: there is no host configuration to back up")]
    NoConfiguration {
        /// The bank.
        bank: u32,
    },

    /// A stick cannot be updated, for the reason given; nothing was
    /// written.
    #[error("cannot update {}: {problem}; nothing was written", path.display())]
    Update {
        /// The stick.
        path: PathBuf,
        /// Why not.
        problem: UpdateProblem,
    },

    /// Updating a stick stopped part-way; its active bank is untouched.
    #[error(
        "updating {} stopped at {step}: {cause}; bank {active} is untouched and still boots \
         — fix the cause and run update again",
        path.display()
    )]
    UpdateFailed {
        /// The stick.
        path: PathBuf,
        /// What was being written.
        step: crate::stick::update::UpdateStep,
        /// The bank that boots, as before.
        active: u32,
        /// What went wrong.
        cause: Box<Error>,
    },
}

/// Where a configuration archive comes from ([`Error::Config`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigOrigin {
    /// The file given with `--state`.
    #[error("--state {}", .0.display())]
    StateFile(PathBuf),
    /// The file given with `--oem`.
    #[error("--oem {}", .0.display())]
    OemFile(PathBuf),
    /// The state.tgz of a bank of the source.
    #[error("bank {0}")]
    Bank(u32),
    /// A configuration bundle `backup` wrote.
    #[error("the new backup {}", .0.display())]
    Backup(PathBuf),
}

/// What is wrong with a configuration archive ([`Error::Config`]).
/// `archive` names the archive at fault, nested ones by their path
/// ("local.tgz in state.tgz").
#[derive(Debug, thiserror::Error)]
pub enum ConfigProblem {
    /// The file cannot be read.
    #[error("cannot read it: {source}")]
    Read {
        /// The operating system's reason.
        source: io::Error,
    },
    /// The file, or a member kept in memory, is larger than any such
    /// file.
    #[error("{archive} is {bytes} bytes, more than the {limit} accepted")]
    TooLarge {
        /// The archive or member.
        archive: String,
        /// Its size.
        bytes: u64,
        /// The most accepted.
        limit: u64,
    },
    /// The gzip stream is damaged (CRC-32, length, deflate data) or cut
    /// short.
    #[error("{archive}: damaged gzip stream: {source}")]
    Gzip {
        /// The archive.
        archive: String,
        /// The decompressor's reason.
        source: io::Error,
    },
    /// Bytes follow the gzip stream.
    #[error("{archive}: data follows the end of its gzip stream")]
    Trailing {
        /// The archive.
        archive: String,
    },
    /// The archive unpacks to more than any configuration does.
    #[error("{archive} unpacks to more than {limit} bytes")]
    Unpacked {
        /// The archive.
        archive: String,
        /// The most accepted.
        limit: u64,
    },
    /// The tar structure is damaged (header checksum, a member cut
    /// short).
    #[error("{archive}: damaged tar archive: {source}")]
    Tar {
        /// The archive.
        archive: String,
        /// The tar reader's reason.
        source: io::Error,
    },
    /// A member's path (or a hard link's target) is absolute or climbs
    /// out with `..`.
    #[error("{archive}: member {path:?} is not a relative path inside the archive")]
    UnsafePath {
        /// The archive.
        archive: String,
        /// The member's path.
        path: String,
    },
    /// A state.tgz without local.tgz.
    #[error("{archive} holds no local.tgz, so it is no ESXi state.tgz")]
    NoLocalTgz {
        /// The archive.
        archive: String,
    },
    /// An encrypted configuration (ESXi 7.0 U2 and later).
    #[error(
        "{archive} holds an encrypted configuration (local.tgz.ve, ESXi 7.0 U2 and later), \
         which cannot be read offline"
    )]
    Encrypted {
        /// The archive.
        archive: String,
    },
    /// Neither a state.tgz nor a configuration bundle.
    #[error(
        "neither a state.tgz (it holds no local.tgz) nor a configuration bundle \
         (Manifest.txt and state.tgz)"
    )]
    NotConfiguration,
    /// A configuration bundle without its state.tgz.
    #[error("a configuration bundle (it holds Manifest.txt) without state.tgz")]
    BundleWithoutState,
    /// Manifest.txt is not text.
    #[error("its Manifest.txt is not text")]
    ManifestNotText,
    /// A file written reads back other than it was written.
    #[error("it reads back other than it was written")]
    ReadsBackOther,
    /// An archive without a single file.
    #[error("{archive} holds no file")]
    Empty {
        /// The archive.
        archive: String,
    },
}

/// Why a stick cannot be updated ([`Error::Update`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateProblem {
    /// The stick has one bank only.
    #[error(
        "it has no alternate bank to update into (only bank {active}); \
         write the stick with --layout dual-bank to give it one"
    )]
    NoAlternateBank {
        /// The bank it has.
        active: u32,
    },
    /// The alternate bank cannot hold the new image.
    #[error(
        "its alternate bank {bank} of {} cannot hold the {} of files and headroom \
         the update needs; write a larger stick with --layout dual-bank",
        crate::size::human(*has),
        crate::size::human(*needs)
    )]
    BankTooSmall {
        /// The alternate bank.
        bank: u32,
        /// Its size in bytes.
        has: u64,
        /// Bytes of files plus headroom needed.
        needs: u64,
    },
    /// The source's partitioning differs from the stick's.
    #[error("the stick is an ESXi {stick} stick and the source an ESXi {image} image")]
    OtherScheme {
        /// The stick's family ("3.5/4.x (MBR)" or "5+ (GPT)").
        stick: &'static str,
        /// The source's.
        image: &'static str,
    },
}

/// Why an installer ISO gives no image ([`Error::Iso`]).
#[derive(Debug, thiserror::Error)]
pub enum IsoProblem {
    /// The ISO 9660 file system (or the image's first bytes) cannot be
    /// read.
    #[error("unreadable ISO 9660 file system: {source}")]
    Unreadable {
        /// The reader's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The file system has no root directory.
    #[error("the ISO has no root directory")]
    NoRoot,
    /// Neither the root nor a tar archive there holds a dd image.
    #[error(
        "the ISO holds no ESXi dd image (looked for imagedd.bz2 and *.dd[.bz2] at its root and \
         inside {}) and is no ESXi 5+ installer either (BOOT.CFG, ISOLINUX.CFG and MBOOT.C32 \
         at its root)",
        if *has_archives { "its tar archives" } else { "tar archives there, of which it has none" }
    )]
    NoImage {
        /// Whether the root holds tar archives (that were looked into).
        has_archives: bool,
    },
    /// A tar archive on the ISO cannot be read.
    #[error("{archive}: unreadable archive: {source}")]
    Archive {
        /// The archive's name on the ISO.
        archive: String,
        /// What went wrong.
        source: io::Error,
    },
    /// A file on the ISO cannot be read.
    #[error("{file}: {source}")]
    File {
        /// The file's name on the ISO.
        file: String,
        /// What went wrong.
        source: io::Error,
    },
    /// The `.md5` file next to the image gives no MD5 sum.
    #[error("{file} holds no MD5 sum")]
    NoMd5 {
        /// The `.md5` file's name on the ISO.
        file: String,
    },
}

/// Why a partitioned disk is not taken for an ESXi image
/// ([`Error::NotEsxi`]).
#[derive(Debug, thiserror::Error)]
pub enum NotEsxiReason {
    /// The partition where ESXi keeps its boot partition does not exist.
    #[error("there is no partition {partition}, where ESXi keeps its boot partition")]
    NoBootPartition {
        /// 4 (MBR) or 1 (GPT).
        partition: u32,
    },
    /// The boot partition's FAT file system cannot be read.
    #[error("the boot partition is unreadable: {fs_error}")]
    BootUnreadable {
        /// Why, as the inventory reports it for the partition.
        fs_error: String,
    },
    /// The boot partition is far larger than ESXi's.
    #[error("partition {partition} holds {sectors} sectors; an ESXi boot partition is a few MiB")]
    BootTooLarge {
        /// The boot partition's number.
        partition: u32,
        /// Its length in sectors.
        sectors: u64,
    },
    /// The boot partition is not a sound FAT volume.
    #[error("the boot partition is unusable: {cause}")]
    BootUnusable {
        /// Why it cannot be opened.
        cause: Box<Error>,
    },
}

/// What is wrong with a FAT volume ([`Error::Fat`]). Paths are inside
/// the volume, without the leading `/`.
#[derive(Debug, thiserror::Error)]
pub enum FatProblem {
    /// The boot sector is not a FAT one.
    #[error("not a FAT file system: {reason}")]
    NotFat {
        /// What the boot sector parser found.
        reason: String,
    },
    /// The boot partition's boot sector is not a FAT one.
    #[error("the boot partition is not FAT: {reason}")]
    BootNotFat {
        /// What the boot sector parser found.
        reason: String,
    },
    /// The consistency scan found damage that makes reading unsafe.
    #[error("damaged FAT file system: {problem}")]
    Damaged {
        /// The scan's description, naming the file or cluster.
        problem: String,
    },
    /// The volume's metadata cannot be read.
    #[error("{source}")]
    Unreadable {
        /// The read error.
        source: io::Error,
    },
    /// fatfs refuses the volume.
    #[error("not a usable FAT file system: {source}")]
    Unusable {
        /// fatfs's reason.
        source: io::Error,
    },
    /// The partition holds no readable FAT file system.
    #[error("the bank has no readable FAT file system")]
    NoFileSystem,
    /// A directory cannot be read.
    #[error("cannot read directory /{dir}: {source}")]
    Directory {
        /// The directory, with a trailing `/` (empty for the root).
        dir: String,
        /// The read error.
        source: io::Error,
    },
    /// The root directory cannot be read.
    #[error("cannot read the root directory: {source}")]
    RootDirectory {
        /// The read error.
        source: io::Error,
    },
    /// More directory entries than a sane volume holds.
    #[error("more than {limit} directory entries: the directory tree is damaged or loops")]
    TooManyEntries {
        /// The most entries walked.
        limit: usize,
    },
    /// Directories nest deeper than walked.
    #[error("directories nest deeper than {limit} levels at /{path}")]
    TooDeep {
        /// The deepest nesting walked.
        limit: usize,
        /// The directory too deep.
        path: String,
    },
    /// A file cannot be opened.
    #[error("cannot open /{path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// fatfs's error.
        source: io::Error,
    },
    /// A file cannot be read.
    #[error("cannot read /{path}: {source}")]
    ReadFile {
        /// The file.
        path: String,
        /// The read error.
        source: io::Error,
    },
    /// A file's clusters hold another number of bytes than its directory
    /// entry says.
    #[error("/{path} should hold {expected} bytes but its clusters give {found}")]
    SizeMismatch {
        /// The file.
        path: String,
        /// Its size in the directory entry.
        expected: u64,
        /// The bytes its clusters gave.
        found: u64,
    },
    /// A file meant to be small is not.
    #[error("/{path} is {bytes} bytes, more than the {limit} expected")]
    TooLarge {
        /// The file.
        path: String,
        /// Its size.
        bytes: u64,
        /// The most accepted.
        limit: u64,
    },
    /// The FAT is too large for a boot partition.
    #[error("its FAT of {bytes} bytes is too large for a boot partition")]
    FatTooLarge {
        /// The FAT's size in bytes.
        bytes: u64,
    },
    /// Files in the boot partition reach past its end.
    #[error(
        "files in the boot partition reach sector {reaches}, past its end ({sectors} sectors)"
    )]
    PastEnd {
        /// The sector the last used cluster ends at.
        reaches: u64,
        /// The partition's length in sectors.
        sectors: u64,
    },
    /// A file name in the volume is not safe to use on the host.
    #[error("the bank holds a file named {name:?}, which is not a safe file name")]
    UnsafeName {
        /// The name.
        name: String,
    },
    /// A file in the volume has a name `extract` writes itself.
    #[error("the bank holds a file named {name:?}, which extract writes itself")]
    ReservedName {
        /// The name.
        name: String,
    },
    /// fatfs formatted a volume other than the one planned.
    #[error("the new volume's boot sector is not the planned one: {}", match formatted.as_ref() {
        Ok(bs) => bs.differences(planned),
        Err(reason) => reason.clone(),
    })]
    NotAsPlanned {
        /// The boot sector written, as parsed (or why it does not parse).
        formatted: Box<Result<BootSector, String>>,
        /// The boot sector planned.
        planned: Box<BootSector>,
    },
}

/// Why no bootbank can be used ([`Error::NoBootbank`]).
#[derive(Debug, thiserror::Error)]
pub enum NoBankReason {
    /// The image has neither partition 5 nor 6.
    #[error("the image has no partition 5 or 6")]
    NoBanks,
    /// No bank is bootable.
    #[error("{}", bank_statuses(banks))]
    NoneBootable {
        /// Every bank's number and status.
        banks: Vec<(u32, String)>,
    },
    /// The bank asked for does not exist.
    #[error("--bank {bank}: the image has no partition {bank} (bootbanks are 5 and 6)")]
    NoSuchBank {
        /// The bank asked for.
        bank: u32,
    },
    /// The bank asked for has no usable boot.cfg.
    #[error("--bank {bank}: {status}")]
    NoBootCfg {
        /// The bank asked for.
        bank: u32,
        /// Its status.
        status: String,
    },
    /// The active bank's partition is not in the inventory.
    #[error("partition {partition} is missing")]
    PartitionMissing {
        /// The active bank's partition number.
        partition: u32,
    },
}

/// Banks' statuses on one line: `bank 5: …; bank 6: …`.
pub fn bank_statuses(banks: &[(u32, String)]) -> String {
    banks
        .iter()
        .map(|(bank, status)| format!("bank {bank}: {status}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why a target may not be written ([`Error::Target`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The path does not exist and no size was given to create it. (The
    /// CLI adds how to give one.)
    #[error("does not exist")]
    Missing,
    /// The path is the source image file.
    #[error("is the source image itself")]
    IsSourceImage,
    /// The path is the source block device.
    #[error("is the source device itself")]
    IsSourceDevice,
    /// The path is something else (a directory, a FIFO, …).
    #[error("is neither an image file nor a block device")]
    NotFileOrDevice,
    /// The device is a partition, not a whole disk.
    #[error("is a partition; give the whole disk (e.g. /dev/sdb, not /dev/sdb1)")]
    Partition,
    /// The device is a loop device over the source image.
    #[error("is a loop device over the source image {}", backing.display())]
    LoopOverSource {
        /// The loop device's backing file.
        backing: PathBuf,
    },
    /// The file is the one behind the source, a loop device.
    #[error("is the file behind the source loop device {}", device.display())]
    BehindSourceLoop {
        /// The source loop device.
        device: PathBuf,
    },
    /// The device holds the file system the source image is on.
    #[error("holds the file system the source image is on")]
    HoldsSource,
    /// The file lies on a file system of the source device.
    #[error("lies on the source device")]
    OnSource,
    /// The device or file cannot be written.
    #[error("{}", if *device {
        "is read-only (a write-protect switch, or a read-only loop device); nothing was written"
    } else {
        "is read-only (no write permission, or a read-only file system); nothing was written"
    })]
    ReadOnly {
        /// Whether it is a block device (else a file).
        device: bool,
    },
    /// Another process holds an exclusive lock on the image file.
    #[error("is in use: another esxstick (or another program) holds a lock on it")]
    Locked,
    /// The file system of an image file lacks room for what is written.
    #[error(
        "needs {} free on its file system for what the plan writes, which has {}",
        crate::size::human(*needs),
        crate::size::human(*free)
    )]
    NoRoom {
        /// Free bytes on the file system.
        free: u64,
        /// Bytes the write needs.
        needs: u64,
    },
    /// The device or one of its partitions is mounted.
    #[error("is mounted ({device} on {at}); unmount it first")]
    Mounted {
        /// The mounted disk or partition, by name (`sdb1`).
        device: String,
        /// Where (as /proc/self/mountinfo writes it).
        at: String,
    },
    /// The device is a fixed disk (and writing one was not forced). (The
    /// CLI adds how to force it.)
    #[error("is not a removable disk")]
    NotRemovable,
    /// The device cannot be opened exclusively.
    #[error("is in use (a partition is mounted or held)")]
    InUse,
    /// The device is smaller than the plan.
    #[error(
        "has {} bytes, less than the {} the plan needs",
        crate::size::group(*has),
        crate::size::group(*needs)
    )]
    TooSmall {
        /// The device's size in bytes.
        has: u64,
        /// The plan's size in bytes.
        needs: u64,
    },
    /// The target changed between opening and writing.
    #[error("{change} since it was opened; nothing was written")]
    Changed {
        /// What changed.
        change: TargetChange,
    },
    /// Writing needs a confirmation and no terminal can give it. (The
    /// CLI adds how to confirm beforehand.)
    #[error("needs confirmation and there is no terminal to ask; it holds {holds}{}",
        if holds.looks_like_source() { " (SOURCE and TARGET may be swapped)" } else { "" })]
    NoTerminal {
        /// What the target holds.
        holds: crate::stick::contents::Contents,
    },
    /// The confirmation could not be read.
    #[error("could not read the confirmation")]
    ConfirmationUnreadable,
    /// The user did not confirm.
    #[error("not confirmed; nothing was written")]
    NotConfirmed,
}

/// The state a stopped write leaves the stick in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StickState {
    /// Not one byte reached the target.
    #[error("nothing was written")]
    Untouched,
    /// The old table is erased and the new one not yet written.
    #[error("the stick has no valid partition table")]
    NoTable,
    /// The image file esxstick created in this run is deleted.
    #[error("the image file esxstick created was deleted")]
    Removed,
    /// Everything is written; the verification did not finish.
    #[error("the stick is written but not verified")]
    Unverified,
}

/// How a target changed after it was opened ([`Refusal::Changed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TargetChange {
    /// The path no longer exists.
    #[error("disappeared")]
    Disappeared,
    /// The path names another device or file.
    #[error("names another device or file")]
    Replaced,
    /// The device or file no longer answers.
    #[error("stopped answering")]
    StoppedAnswering,
    /// The device's size changed.
    #[error("changed size")]
    Resized,
}

/// The first few names, and how many more: one line stays readable.
fn list_some(names: &[String]) -> String {
    const SHOWN: usize = 8;
    match names.len() {
        n if n <= SHOWN => names.join(", "),
        n => format!("{}, and {} more", names[..SHOWN].join(", "), n - SHOWN),
    }
}

/// Shorthand for results of the esxstick library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Process exit codes, as documented in the README.
pub mod exit {
    /// Everything worked (and verified, where verification ran).
    pub const OK: i32 = 0;
    /// A verification found a difference or damage.
    pub const VERIFY_FAILED: i32 = 1;
    /// Bad input, bad usage, or the operation could not be carried out.
    pub const BAD_INPUT: i32 = 2;
}

impl Error {
    /// The exit code the command-line tool reports for this error. (An
    /// interrupted write exits as the signal that stopped it, 130 or
    /// 143; the front end knows which.)
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::VerifyFailed { .. } => exit::VERIFY_FAILED,
            Error::Targets {
                verification_only: true,
                ..
            } => exit::VERIFY_FAILED,
            Error::Shared(e) => e.exit_code(),
            _ => exit::BAD_INPUT,
        }
    }

    /// The kind of error, a stable name for programs (`--json` prints it):
    /// the variant's name in kebab case.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Open { .. } => "open",
            Error::Read { .. } => "read",
            Error::Stream { .. } => "stream",
            Error::Iso { .. } => "iso",
            Error::Installer(_) => "installer",
            Error::NotADiskImage(_) => "not-a-disk-image",
            Error::Table(_) => "table",
            Error::NotEsxi { .. } => "not-esxi",
            Error::Fat { .. } => "fat",
            Error::NoBootbank { .. } => "no-bootbank",
            Error::MissingModules { .. } => "missing-modules",
            Error::Layout(_) => "layout",
            Error::DoesNotFit(_) => "does-not-fit",
            Error::BadSize(_) => "bad-size",
            Error::Target { .. } => "target",
            Error::WriteFailed { .. } => "write-failed",
            Error::Interrupted { .. } => "interrupted",
            Error::VerifyTarget { .. } => "verify-target",
            Error::MaybeSwapped { .. } => "maybe-swapped",
            Error::VerifyFailed { .. } => "verify-failed",
            Error::Shared(e) => e.kind(),
            Error::Targets { .. } => "targets",
            Error::Random { .. } => "random",
            Error::OutputNotEmpty { .. } => "output-not-empty",
            Error::Write { .. } => "write",
            Error::Config { .. } => "config",
            Error::BuildMismatch { .. } => "build-mismatch",
            Error::OemNotSupported { .. } => "oem-not-supported",
            Error::NoConfiguration { .. } => "no-configuration",
            Error::Update { .. } => "update",
            Error::UpdateFailed { .. } => "update-failed",
            Error::DamagedModule { .. } => "damaged-module",
            Error::WipeFailed { .. } => "wipe-failed",
            Error::WipeInterrupted { .. } => "interrupted",
            Error::Label { .. } => "label",
        }
    }
}
