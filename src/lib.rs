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
//! let source = esxstick::source::Source::open("VMware-VMvisor-big.dd".as_ref())?;
//! let inventory = esxstick::inventory::read(&source, None)?;
//! println!("active bank: {}", inventory.active_bank.partition);
//! # Ok::<(), esxstick::Error>(())
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod bootcfg;
pub mod bpb;
pub mod cache;
pub mod compress;
pub mod device;
pub mod error;
pub mod extract;
pub mod fat;
pub mod fault;
pub mod fsck;
pub mod inventory;
mod ioctl;
pub mod iso;
pub mod layout;
pub mod plan;
pub mod progress;
pub mod size;
pub mod source;
pub mod stream;
pub mod table;
pub mod verify;
pub mod write;

pub use error::{Error, Result};
