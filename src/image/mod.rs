//! Stage 1, the source: an ESXi image opened read-only with random
//! access, whatever it came as — a raw file or block device, a
//! [`compress`]ed image, or an installer [`iso`] carrying one — made
//! randomly readable by a [`stream`] where it is not.
//!
//! A new source format goes here: teach [`source::Source::open_with`] to
//! recognise it by its bytes and hand back a readable image.

pub mod bz2par;
pub mod compress;
pub mod iso;
pub mod isofs;
pub mod source;
pub mod stream;
pub mod xzpar;
