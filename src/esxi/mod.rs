//! Stage 2, the inventory: what an ESXi image holds — its boot partition,
//! its bootbanks and their [`bootcfg`], which bank is active and why — and
//! [`extract`], which copies those parts out.
//!
//! ESXi's own rules (which bank boots, what a bank needs) live here.

pub mod bootcfg;
pub mod extract;
pub mod inventory;
