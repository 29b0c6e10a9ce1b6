//! esxstick turns a VMware ESXi disk image into a minimal, bootable,
//! verified USB stick.
//!
//! The pipeline, one module per stage:
//!
//! 1. [`source`]: the image, read-only with random access — a raw file
//!    or device, or a [`compress`]ed image (given directly or found on an
//!    installer [`iso`]) made randomly readable by a [`stream`].
//! 2. [`table`]: its partition table (MBR + EBR chain, or GPT).
//! 3. [`bpb`], [`fat`], [`bootcfg`]: the on-disk structures inside it.
//! 4. [`inventory`]: what the image holds — boot partition, bootbanks, the
//!    active bank and its modules.
//! 5. [`extract`]: the boot partition and bank files copied out, with sums.
//! 6. [`layout`], [`plan`]: a layout family applied to a target size gives
//!    the exact table, volumes and copies — plain data, printed by `plan`.
//! 7. [`device`], [`write`]: the target opened safely and the plan carried
//!    out, partition table last.
//! 8. [`verify`] (with [`fsck`]): the stick read back and proven.
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
