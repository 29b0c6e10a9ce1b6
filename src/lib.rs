//! esxstick turns a VMware ESXi disk image into a minimal, bootable,
//! verified USB stick.
//!
//! The pipeline, one folder per stage, data flowing one way:
//!
//! 1. [`image`]: the source, read-only with random access — a raw file or
//!    device, a compressed image, or an installer ISO carrying one.
//! 2. [`esxi`]: the inventory — boot partition, bootbanks, the active bank
//!    by ESXi's rules, its modules — and `extract`.
//! 3. [`plan`]: a layout applied to a target size gives the exact table,
//!    volumes and copies — plain serde data, printed by `plan`.
//! 4. [`stick`]: the target opened safely, the plan written with the
//!    partition table last, then the stick read back and proven.
//!
//! Below them, [`ondisk`] holds the on-disk structures (MBR/EBR, GPT,
//! BPB, FAT), each parsed and serialised in one file. Progress goes
//! through the [`progress::Observer`] a front end implements; the library
//! draws nothing. Errors are one [`Error`] type with the exit code each
//! maps to.
//!
//! Where things go: a new source format in [`image`]; a new rule about
//! banks or boot.cfg in [`esxi`]; a new layout as a TOML file in
//! `layouts/` (new placement rules in [`plan`]); a second kind of target
//! in [`stick`]; a new command in the binary's `cli/args.rs`, calling one
//! library function.
//!
//! ```no_run
//! let source = esxstick::image::source::Source::open("VMware-VMvisor-big.dd".as_ref())?;
//! let inventory = esxstick::esxi::inventory::read(&source, None)?;
//! println!("active bank: {}", inventory.active_bank.partition);
//! # Ok::<(), esxstick::Error>(())
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod digest;
pub mod error;
pub mod esxi;
pub mod image;
mod ioctl;
pub mod ondisk;
pub mod plan;
pub mod progress;
pub mod size;
pub mod stick;

pub use error::{Error, Result};
