//! Stages 4 and 5, the stick: the [`device`] a stick is written to,
//! opened safely; [`write`](mod@write), which carries out a plan with the partition
//! table last; [`verify`], which reads the stick back and proves it;
//! [`burn`], the two together as the `write` command does them;
//! [`fleet`], several targets written at once from one read of the
//! source; [`contents`], what a target holds before it is overwritten;
//! [`update`], a stick's inactive bank rebuilt in place, crash-safely;
//! [`fault`], the fault-injection seam the crash tests use;
//! [`devices`], the machine's disks as `devices` lists them; [`wipe`](mod@wipe),
//! a stick given back as one FAT32 partition.
//!
//! A second kind of target (or several at once) goes here.

pub mod burn;
pub mod contents;
pub mod device;
pub mod devices;
pub mod fault;
pub mod fleet;
pub mod installer;
pub mod installer_verify;
pub mod syslinux;
pub mod update;
pub mod verify;
pub mod wipe;
pub mod write;
