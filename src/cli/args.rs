//! The command line's grammar: every command, argument and flag, with
//! the help text `--help` shows. A new command starts here.

use std::path::PathBuf;

use clap::{ArgGroup, Parser, Subcommand};

/// Turn a VMware ESXi 3.5/4.x/5+ disk image into a minimal, bootable,
/// verified USB stick.
///
/// Typical use: `esxstick inspect IMAGE`, then `esxstick plan IMAGE
/// --size 64M` to see what a stick would hold.
///
/// Exit codes: 0 success; 1 verification failed; 2 bad input, bad usage,
/// or the operation could not be carried out (one line on stderr says why;
/// with --json also {"error": {"kind", "message"}} on stdout); 130/143 a
/// write interrupted by SIGINT/SIGTERM. Writing several targets: 0 when
/// all verified, 2 when any was refused or could not be written, else 1.
#[derive(Parser)]
#[command(version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// How the image is read, shared by every command that reads one.
#[derive(clap::Args)]
pub struct ImageArgs {
    /// Use this bootbank (5 or 6) instead of the active one (the bootable
    /// bank with the highest updated= in its boot.cfg).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(5..=6))]
    pub bank: Option<u32>,
    /// Skip the check of an installer ISO's imagedd.md5 (which reads the
    /// whole compressed image, on a second core while a stick is written).
    #[arg(long)]
    pub no_md5: bool,
}

/// What every command takes to say how much it prints.
#[derive(clap::Args)]
pub struct Output {
    /// No progress bars and no notes on stderr; results and errors are
    /// still printed.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the result as JSON on stdout (schemas in README.md); a
    /// failure as {"error": {"kind", "message"}}.
    #[arg(long)]
    pub json: bool,
}

/// What a command that overwrites a disk may do without asking: every
/// such command (`write`, `update`, `wipe`) takes these.
#[derive(clap::Args)]
pub struct Consent {
    /// Do not ask for confirmation.
    #[arg(long, short)]
    pub yes: bool,
    /// Allow a non-removable (fixed) disk as the stick.
    #[arg(long, alias = "force")]
    pub allow_fixed: bool,
}

/// What a new bank gets besides the source bank's files.
#[derive(clap::Args)]
pub struct ConfigArgs {
    /// The host configuration the bank gets as its state.tgz: a state.tgz,
    /// or a configuration bundle (configBundle-*.tgz from `esxstick
    /// backup`, vicfg-cfgbackup, PowerCLI Get-VMHostFirmware
    /// -BackupConfiguration). Checked whole first (gzip CRC and length,
    /// tar, the local.tgz inside, no absolute or .. paths); a bundle must
    /// be of the image's build, as VMware's restore demands.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Take a configuration bundle of another ESXi build than the image's.
    #[arg(long, requires = "state")]
    pub allow_build_mismatch: bool,
    /// Custom drivers for ESXi 3.5/4.x (as ESXi-Customizer makes them): a
    /// tar.gz of relative paths that replaces the bank's oem.tgz; boot.cfg
    /// gets `--- oem.tgz` (before license.tgz) when it lacks it. ESXi 5
    /// and later take VIBs instead, and are refused.
    #[arg(long, value_name = "FILE")]
    pub oem: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Show what an ESXi image holds: partitions, bootbanks, the active
    /// bank and why, its modules (each checked: a gzip module must be
    /// complete, with correct CRC-32 and length), and the smallest stick
    /// that fits.
    ///
    /// Reads the image in place (nothing is mounted or written). Exits 2
    /// when the image is unusable, including when boot.cfg names a module
    /// the bank lacks or a module is damaged (the report is still
    /// printed).
    Inspect {
        /// ESXi disk image (VMware-VMvisor-big-*.dd), compressed or not
        /// (gzip, bzip2, xz, zstd), an installer ISO that carries one, an
        /// ESXi 5-8 installer ISO (shown as an installer: build, kernel,
        /// modules, boot options, UEFI/BIOS), or a block device (an
        /// existing stick).
        source: PathBuf,
        /// Output (--json: schema "esxstick.inventory/1").
        #[command(flatten)]
        output: Output,
        /// Skip reading every module through to check its gzip stream
        /// (CRC-32 and length); a damaged module is otherwise reported and
        /// makes inspect exit 2.
        #[arg(long)]
        no_module_check: bool,
        #[command(flatten)]
        image: ImageArgs,
    },
    /// Copy the boot partition (boot.img) and the active bootbank's files
    /// into DIR, with a SHA256SUMS that `sha256sum -c` accepts.
    ///
    /// DIR is created if needed. Output appears only when complete; on an
    /// error nothing that looks complete is left behind.
    Extract {
        /// ESXi disk image (compressed or not), installer ISO, or block
        /// device; see `esxstick inspect --help`.
        source: PathBuf,
        /// Output directory; must be empty unless --overwrite.
        dir: PathBuf,
        #[command(flatten)]
        image: ImageArgs,
        /// Write into DIR even if it holds files (same names are replaced,
        /// others kept).
        #[arg(long, alias = "force")]
        overwrite: bool,
        /// Output (--json: schema "esxstick.extract/1", every file written
        /// with its size and SHA-256).
        #[command(flatten)]
        output: Output,
    },
    /// Compute the stick layout for a target size and print it: a dry
    /// run that touches nothing.
    ///
    /// Prints the partition table, a to-scale disk map, the FAT parameters
    /// of each volume, what is copied where, free space and headroom, and
    /// the bytes `write` would write. When the image does not fit, exits 2
    /// with how many bytes it needs.
    #[command(group(ArgGroup::new("size-of").required(true).multiple(true).args(["target", "size"])))]
    Plan {
        /// ESXi disk image (compressed or not), installer ISO, or block
        /// device; see `esxstick inspect --help`.
        source: PathBuf,
        /// A block device or image file whose size is the target size.
        target: Option<PathBuf>,
        /// Target size (instead of TARGET's, as `write` takes it): bytes,
        /// or with a unit — K/M/G (powers of 1024) or KB/MB/GB (powers of
        /// 1000): 65273856, 64M, 64MB.
        #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
        size: Option<String>,
        /// A built-in layout name (see `esxstick layouts`) or a layout
        /// file [default: esxi-native for an ESXi 3.5/4.x (MBR) image,
        /// gpt-minimal for an ESXi 5+ (GPT) one].
        #[arg(long, value_name = "NAME|FILE")]
        layout: Option<String>,
        /// Give every bank a fresh VMware FAT UUID instead of keeping the
        /// source's (for a second stick of the same host, which must not
        /// share its banks' UUIDs).
        #[arg(long)]
        new_uuids: bool,
        #[command(flatten)]
        config: ConfigArgs,
        #[command(flatten)]
        image: ImageArgs,
        #[command(flatten)]
        kernelopt: KernelOptArgs,
        /// Output (--json: schema "esxstick.plan/1").
        #[command(flatten)]
        output: Output,
    },
    /// Write a bootable stick (or several at once): the plan that `plan`
    /// prints, carried out on a block device or image file, then verified.
    ///
    /// TARGET is a whole disk (/dev/sdX, /dev/loopN) or an image file
    /// (created, or extended, as a sparse file; give --size for a new
    /// one). Before the plan is printed the target is checked: never a
    /// partition, a read-only or mounted disk, a file locked by another
    /// esxstick or without room on its file system, the source through
    /// any path, or a fixed disk without --allow-fixed; its vendor, model, size,
    /// serial and what it holds are shown and must be confirmed on a
    /// terminal unless --yes (without a terminal, --yes is required). The
    /// old partition table is invalidated first and the new one written
    /// last, so an interrupted write leaves a stick without a valid table,
    /// never a half-valid one; Ctrl-C stops it between two writes with a
    /// line saying so (exit 130; SIGTERM 143).
    ///
    /// Several TARGETs get the same plan (for --size, or the smallest
    /// TARGET) from one read of the source: all are checked first, and a
    /// target refused is named and left out; one confirmation lists the
    /// rest; they are written in parallel, one progress bar each, and
    /// verified each; a target that fails is named and the others go on.
    /// A summary says ok or FAIL per target. Exit 0 when every target
    /// verified, 2 when any was refused or could not be written, else 1
    /// (a verification failed). --json prints a list of per-target
    /// reports.
    ///
    /// An ESXi 5-8 installer ISO (VMware's or a customised one) becomes
    /// an installer stick as VMware's USB recipe makes it: one active
    /// FAT32 partition from 1 MiB, every file of the ISO by its 8.3 name,
    /// /EFI/BOOT/BOOT.CFG, SYSLINUX.CFG with -p 1, SYSLINUX's MBR code.
    /// It boots UEFI as it is; BIOS needs --syslinux. E.g. `esxstick write
    /// VMware-VMvisor-Installer-7.0U3.iso /dev/sdb --kernelopt
    /// "ks=usb:/KS.CFG"`.
    Write {
        /// ESXi disk image (compressed or not), installer ISO, or block
        /// device; see `esxstick inspect --help`.
        source: PathBuf,
        /// The stick: a whole block device or an image file; several
        /// are written at once.
        #[arg(required = true, value_name = "TARGET")]
        targets: Vec<PathBuf>,
        /// A built-in layout name (see `esxstick layouts`) or a layout
        /// file [default: esxi-native for an ESXi 3.5/4.x (MBR) image,
        /// gpt-minimal for an ESXi 5+ (GPT) one].
        #[arg(long, value_name = "NAME|FILE")]
        layout: Option<String>,
        /// Give every bank a fresh VMware FAT UUID instead of keeping the
        /// source's (for a second stick of the same host, which must not
        /// share its banks' UUIDs).
        #[arg(long)]
        new_uuids: bool,
        /// Plan for this size instead of the target's (required for a new
        /// image file): 64M, 64MB, 65273856.
        #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
        size: Option<String>,
        #[command(flatten)]
        config: ConfigArgs,
        #[command(flatten)]
        image: ImageArgs,
        #[command(flatten)]
        installer: InstallerArgs,
        #[command(flatten)]
        consent: Consent,
        /// Skip reading the stick back to verify it.
        #[arg(long)]
        no_verify: bool,
        /// Skip the check of every module's gzip stream (CRC-32 and
        /// length, on a second core while it is copied) that otherwise
        /// stops the write, before the table, at a damaged module.
        #[arg(long)]
        no_module_check: bool,
        /// Output (--json: one final report, schemas "esxstick.write/1"
        /// and "esxstick.verify/1"; with several targets a list of them).
        #[command(flatten)]
        output: Output,
    },
    /// Read a stick back and prove it: against its source (--against), or
    /// on its own.
    ///
    /// With --against: the partition table as planned, the boot partition
    /// byte-equal to the source's (after the planned BPB patch), every
    /// bank file equal to the source's (by BLAKE3), FATs consistent. The
    /// layout is recognised from the stick's table unless --layout is
    /// given.
    /// Without: a sane table, a boot sector and ldlinux.sys, consistent
    /// FATs, every module boot.cfg names present, and every gzip module
    /// complete with a correct CRC-32 and length. Reads bypass the page
    /// cache. Exit 0 all good, 1 verification failed, 2 unusable input.
    /// A stick written with --state or --oem is verified against the same
    /// files.
    #[command(group(ArgGroup::new("given").args(["state", "oem"]).multiple(true).requires("against")))]
    Verify(VerifyArgs),
    /// Save the host's configuration (the bank's state.tgz) into DIR as a
    /// configuration bundle in VMware's format.
    ///
    /// The bundle, configBundle-<host>-<UTC time>.tgz, holds Manifest.txt
    /// (RELEASELEVEL, UUID, KERNELOPTS, USEROPTS) and the bank's state.tgz
    /// byte for byte; the host name and system UUID come from esx.conf
    /// inside it. It is written under a temporary name, synced, read back
    /// and checked, then renamed. When the host's newest bundle in DIR
    /// holds the same state.tgz, nothing is written. A bank without a
    /// state.tgz, or with an encrypted one (ESXi 7.0 U2+), exits 2.
    Backup(BackupArgs),
    /// Update a stick in place as ESXi upgrades: rebuild its inactive bank
    /// and boot that next, the old bank kept as the fallback.
    ///
    /// The inactive bank (by the boot loader's rules) gets SOURCE's active
    /// bank — or, without SOURCE, the stick's own — with the stick's
    /// state.tgz (unless --state), keeping its VMware FAT UUID; its
    /// boot.cfg gets updated= one above the highest on the stick and
    /// bootstate=0. The old boot.cfg is made ineligible first and the new
    /// one written last, so a crash at any moment leaves a stick that
    /// boots its old bank or the complete new one. The stick needs an
    /// alternate bank (write it with --layout dual-bank). Same target
    /// checks and confirmation as `write`; the stick is verified after.
    Update(UpdateArgs),
    /// List the built-in layouts with a line on each.
    Layouts {
        /// Output (--json: the list as JSON).
        #[command(flatten)]
        output: Output,
    },
    /// List the disks a stick can be: which /dev/sdX is the stick.
    ///
    /// One line per removable whole disk (USB sticks and card readers, SD
    /// cards): its path, size, transport, vendor, model and serial (of the
    /// USB device, for USB storage), whether it is read-only, its mounted
    /// partitions, and what it holds now — an ESXi stick with its build
    /// and layout, an ESXi image, a FAT volume with its label, nothing.
    /// Reads only; a device that cannot be read is listed as such.
    ///
    /// Then, e.g.: `esxstick write IMAGE /dev/sdb`, `esxstick wipe
    /// /dev/sdb`.
    Devices(DevicesArgs),
    /// Give a stick back for everyday use: one FAT32 partition over the
    /// whole device, as sticks are sold.
    ///
    /// Writes one primary partition (type 0x0C) from 1 MiB to the end of
    /// the device and formats it FAT32 with the label given (a stick too
    /// small for FAT32, under about 34 MB, gets FAT16, type 0x0E, and the
    /// report says so). The old table is invalidated first and the new one
    /// written last. The target is checked as `write` checks it — never a
    /// partition, a read-only or mounted disk, or a fixed disk without
    /// --allow-fixed — and what it holds is shown and must be confirmed on a
    /// terminal unless --yes (without a terminal, --yes is required). An
    /// image file is wiped at its size.
    ///
    /// Find the stick with `esxstick devices`, then e.g. `esxstick wipe
    /// /dev/sdb --label BACKUP`.
    Wipe(WipeArgs),
    /// Print a completion script for a shell on stdout.
    ///
    /// Install it, e.g. `esxstick completions bash >
    /// /etc/bash_completion.d/esxstick`, `esxstick completions zsh >
    /// /usr/local/share/zsh/site-functions/_esxstick`, `esxstick
    /// completions fish > ~/.config/fish/completions/esxstick.fish`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) on stdout.
    ///
    /// Read it with `esxstick man | man -l -`; install it with `esxstick
    /// man > /usr/local/share/man/man1/esxstick.1`.
    Man,
}

impl Command {
    /// Whether `--json` was given: a failure is then printed as JSON on
    /// stdout too.
    pub fn json(&self) -> bool {
        match self {
            Command::Inspect { output, .. }
            | Command::Extract { output, .. }
            | Command::Plan { output, .. }
            | Command::Write { output, .. }
            | Command::Layouts { output } => output.json,
            Command::Verify(args) => args.output.json,
            Command::Backup(args) => args.output.json,
            Command::Update(args) => args.output.json,
            Command::Devices(args) => args.output.json,
            Command::Wipe(args) => args.output.json,
            Command::Completions { .. } | Command::Man => false,
        }
    }
}

/// `verify`'s arguments (see [`Command::Verify`]).
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The stick: a block device or image file.
    pub target: PathBuf,
    /// The ESXi image the stick was written from.
    #[arg(long, value_name = "SOURCE")]
    pub against: Option<PathBuf>,
    /// The layout the stick was written with (default: recognised
    /// from the stick's table among the built-in layouts).
    #[arg(long, value_name = "NAME|FILE", requires = "against")]
    pub layout: Option<String>,
    /// The --size the stick was written with (default: found from
    /// the stick's table, which ends where the written size does).
    #[arg(
        long,
        value_name = "SIZE",
        requires = "against",
        allow_hyphen_values = true
    )]
    pub size: Option<String>,
    /// The stick was written with --new-uuids: its banks' UUIDs are
    /// checked to be fresh ones, not the source's.
    #[arg(long, requires = "against")]
    pub new_uuids: bool,
    #[command(flatten)]
    pub image: ImageArgs,
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub kernelopt: KernelOptArgs,
    /// Output (--json: schema "esxstick.verify/1").
    #[command(flatten)]
    pub output: Output,
}

/// `backup`'s arguments (see [`Command::Backup`]).
#[derive(clap::Args)]
pub struct BackupArgs {
    /// The stick, image (compressed or not), ISO or device to back up;
    /// see `esxstick inspect --help`.
    pub source: PathBuf,
    /// The directory of bundles (created if missing).
    pub dir: PathBuf,
    /// Keep the host's newest N bundles and delete its older ones —
    /// only bundles esxstick named, never another host's or any other
    /// file.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub keep: Option<u64>,
    #[command(flatten)]
    pub image: ImageArgs,
    /// Output (--json: schema "esxstick.backup/1").
    #[command(flatten)]
    pub output: Output,
}

/// `update`'s arguments (see [`Command::Update`]).
#[derive(clap::Args)]
pub struct UpdateArgs {
    /// The stick: a whole block device or an image file.
    pub stick: PathBuf,
    /// The ESXi image (compressed or not), ISO, stick or device to take
    /// the new bank from; default: the stick's own active bank.
    pub source: Option<PathBuf>,
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub image: ImageArgs,
    #[command(flatten)]
    pub consent: Consent,
    /// Output (--json: one final report, schemas "esxstick.update/1" and
    /// "esxstick.verify/1").
    #[command(flatten)]
    pub output: Output,
}

/// `devices`' arguments (see [`Command::Devices`]).
#[derive(clap::Args)]
pub struct DevicesArgs {
    /// List fixed disks and loop devices too.
    #[arg(long)]
    pub all: bool,
    /// Also say whether the default plan of this ESXi image (compressed
    /// or not), ISO or stick fits each device.
    #[arg(long = "for", value_name = "SOURCE")]
    pub for_source: Option<PathBuf>,
    /// Output (--json: the list, schema "esxstick.devices/1").
    #[command(flatten)]
    pub output: Output,
}

/// `wipe`'s arguments (see [`Command::Wipe`]).
#[derive(clap::Args)]
pub struct WipeArgs {
    /// The stick: a whole block device or an existing image file.
    pub target: PathBuf,
    /// The FAT volume label: up to 11 letters, digits, spaces or
    /// !#$%&'()-@^_`{}~ (lower case is made upper case).
    #[arg(long, value_name = "NAME", default_value = "USB")]
    pub label: String,
    #[command(flatten)]
    pub consent: Consent,
    /// Output (--json: one final report, schema "esxstick.wipe/1").
    #[command(flatten)]
    pub output: Output,
}

/// Boot options for an ESXi 5+ installer ISO's stick (`plan`, `write`,
/// `verify --against`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct KernelOptArgs {
    /// Installer ISO only: boot options added to kernelopt= in both
    /// BOOT.CFGs (/BOOT.CFG and /EFI/BOOT/BOOT.CFG), after the ones
    /// they have, e.g. --kernelopt "ks=usb:/KS.CFG" or
    /// "allowLegacyCPU=true". Pass the same to verify --against.
    #[arg(long, value_name = "OPTIONS", allow_hyphen_values = true)]
    pub kernelopt: Option<String>,
}

/// How `write` makes a stick from an ESXi 5+ installer ISO.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct InstallerArgs {
    /// Installer ISO only: install this SYSLINUX for BIOS boot — a
    /// `syslinux` installer of version 3.86 to 4.07 (VMware's mboot.c32
    /// loads in no later one; Debian's 6.04 is refused). Without it the
    /// stick boots UEFI only, and write says so before writing.
    #[arg(long, value_name = "PATH")]
    pub syslinux: Option<PathBuf>,
    #[command(flatten)]
    pub kernelopt: KernelOptArgs,
}
