//! esxstick's integration tests, one binary (as ripgrep does it): each
//! module below proves one part of the tool against independent oracles —
//! sfdisk, mtools, fsck.fat, SYSLINUX, QEMU (SeaBIOS and OVMF) and VMware's
//! own boot loader (the esx-boot oracle in `../shared/oracles`) — on
//! fixtures that `scripts/make-fixture` builds with those tools, never
//! with esxstick. [`common`] holds what they share. README's "Tests"
//! section says what each module proves.

mod common;

mod bankrules;
mod config;
mod corpus;
mod devices;
mod esxboot;
mod extract;
mod faults;
mod hostile;
mod inspect;
mod installer;
mod installer_write;
mod manual;
mod modules;
mod multi;
mod plan;
mod plan_properties;
mod sources;
mod trust;
mod update;
mod wipe;
mod write;
