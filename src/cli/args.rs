//! The command line's grammar: every command, argument and flag, with
//! the help text `--help` shows. A new command starts here.

use std::path::PathBuf;

use clap::{ArgGroup, Parser, Subcommand};
use esxstick::plan::layout;

/// Turn a VMware ESXi 3.5/4.x/5+ disk image into a minimal, bootable,
/// verified USB stick.
///
/// Typical use: `esxstick inspect IMAGE`, then `esxstick plan IMAGE
/// --size 64M` to see what a stick would hold.
///
/// Exit codes: 0 success; 1 verification failed; 2 bad input, bad usage,
/// or the operation could not be carried out (one line on stderr says why).
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
        /// (gzip, bzip2, xz, zstd), an installer ISO that carries one, or a
        /// block device (an existing stick).
        source: PathBuf,
        /// Print the inventory as JSON (schema "esxstick.inventory/1",
        /// documented in README.md).
        #[arg(long)]
        json: bool,
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
        /// Output directory; must be empty unless --force.
        dir: PathBuf,
        #[command(flatten)]
        image: ImageArgs,
        /// Write into DIR even if it holds files (same names are replaced).
        #[arg(long)]
        force: bool,
    },
    /// Compute the stick layout for a target size and print it: a dry
    /// run that touches nothing.
    ///
    /// Prints the partition table, a to-scale disk map, the FAT parameters
    /// of each volume, what is copied where, free space and headroom, and
    /// the bytes `write` would write. When the image does not fit, exits 2
    /// with how many bytes it needs.
    #[command(group(ArgGroup::new("size-of").required(true).args(["target", "size"])))]
    Plan {
        /// ESXi disk image (compressed or not), installer ISO, or block
        /// device; see `esxstick inspect --help`.
        source: PathBuf,
        /// A block device or image file whose size is the target size.
        target: Option<PathBuf>,
        /// Target size: bytes, or with a unit — K/M/G (powers of 1024) or
        /// KB/MB/GB (powers of 1000): 65273856, 64M, 64MB.
        #[arg(long, value_name = "SIZE")]
        size: Option<String>,
        /// A built-in layout name (see `esxstick layouts`) or a layout file.
        #[arg(long, value_name = "NAME|FILE", default_value = layout::DEFAULT)]
        layout: String,
        /// Give every bank a fresh VMware FAT UUID instead of keeping the
        /// source's (for a second stick of the same host, which must not
        /// share its banks' UUIDs).
        #[arg(long)]
        new_uuids: bool,
        #[command(flatten)]
        image: ImageArgs,
        /// Print the plan as JSON (schema "esxstick.plan/1", see README.md).
        #[arg(long)]
        json: bool,
    },
    /// Write a bootable stick: the plan that `plan` prints, carried out on
    /// a block device or image file, then verified.
    ///
    /// TARGET is a whole disk (/dev/sdX, /dev/loopN) or an image file
    /// (created, or extended, as a sparse file; give --size for a new
    /// one). Before anything is written the target is checked: never a
    /// partition, a mounted disk, the source itself, or a fixed disk
    /// without --force; its vendor, model, size and serial are shown and
    /// must be confirmed on a terminal unless --yes (without a terminal,
    /// --yes is required). The old partition table is invalidated first
    /// and the new one written last, so an interrupted write leaves a
    /// stick without a valid table, never a half-valid one.
    Write {
        /// ESXi disk image (compressed or not), installer ISO, or block
        /// device; see `esxstick inspect --help`.
        source: PathBuf,
        /// The stick: a whole block device or an image file.
        target: PathBuf,
        /// A built-in layout name (see `esxstick layouts`) or a layout file.
        #[arg(long, value_name = "NAME|FILE", default_value = layout::DEFAULT)]
        layout: String,
        /// Give every bank a fresh VMware FAT UUID instead of keeping the
        /// source's (for a second stick of the same host, which must not
        /// share its banks' UUIDs).
        #[arg(long)]
        new_uuids: bool,
        /// Plan for this size instead of the target's (required for a new
        /// image file): 64M, 64MB, 65273856.
        #[arg(long, value_name = "SIZE")]
        size: Option<String>,
        #[command(flatten)]
        image: ImageArgs,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Allow a non-removable disk.
        #[arg(long)]
        force: bool,
        /// Skip reading the stick back to verify it.
        #[arg(long)]
        no_verify: bool,
        /// Skip the check of every module's gzip stream (CRC-32 and
        /// length, on a second core while it is copied) that otherwise
        /// stops the write, before the table, at a damaged module.
        #[arg(long)]
        no_module_check: bool,
        /// No progress bars.
        #[arg(long, short)]
        quiet: bool,
        /// Print only a final JSON report (schemas "esxstick.write/1" and
        /// "esxstick.verify/1").
        #[arg(long)]
        json: bool,
    },
    /// Read a stick back and prove it: against its source (--against), or
    /// on its own.
    ///
    /// With --against: the partition table as planned, the boot partition
    /// byte-equal to the source's (after the planned BPB patch), every
    /// bank file SHA-256-equal to the source's, FATs consistent. The layout
    /// is recognised from the stick's table unless --layout is given.
    /// Without: a sane table, a boot sector and ldlinux.sys, consistent
    /// FATs, every module boot.cfg names present, and every gzip module
    /// complete with a correct CRC-32 and length. Reads bypass the page
    /// cache. Exit 0 all good, 1 verification failed, 2 unusable input.
    Verify {
        /// The stick: a block device or image file.
        target: PathBuf,
        /// The ESXi image the stick was written from.
        #[arg(long, value_name = "SOURCE")]
        against: Option<PathBuf>,
        /// The layout the stick was written with (default: recognised).
        #[arg(long, value_name = "NAME|FILE", requires = "against")]
        layout: Option<String>,
        /// The stick was written with --new-uuids: its banks' UUIDs are
        /// checked to be fresh ones, not the source's.
        #[arg(long, requires = "against")]
        new_uuids: bool,
        #[command(flatten)]
        image: ImageArgs,
        /// Print the report as JSON (schema "esxstick.verify/1").
        #[arg(long)]
        json: bool,
    },
    /// List the built-in layouts with a line on each.
    Layouts {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
}
