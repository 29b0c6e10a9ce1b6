//! The one error type of the library, and the exit code each error maps to.

use std::io;
use std::path::PathBuf;

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
    #[error("compressed image: {0}")]
    Stream(String),

    /// An installer ISO holds no usable image.
    #[error("installer ISO: {0}")]
    Iso(String),

    /// The source is not a partitioned disk image at all.
    #[error("not a disk image: {0}")]
    NotADiskImage(crate::ondisk::table::NotADisk),

    /// The partition table is damaged or inconsistent.
    #[error("bad partition table: {0}")]
    Table(crate::ondisk::table::TableProblem),

    /// The disk is partitioned but does not look like an ESXi image.
    #[error("not an ESXi image: {0}")]
    NotEsxi(String),

    /// A FAT volume the tool needs cannot be read.
    #[error("partition {partition}: {message}")]
    Fat {
        /// Partition number.
        partition: u32,
        /// What is wrong with the volume.
        message: String,
    },

    /// No bootbank holds a usable boot.cfg (or the one asked for does not).
    #[error("no usable bootbank: {0}")]
    NoBootbank(String),

    /// boot.cfg names modules that the bank does not contain.
    #[error("bootbank {partition}: boot.cfg names {} not in the bank: {}", if names.len() == 1 { "a module" } else { "modules" }, list_some(names))]
    MissingModules {
        /// Bank partition number.
        partition: u32,
        /// Module file names that are missing.
        names: Vec<String>,
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
    #[error("refusing to write {}: {why}", path.display())]
    Target {
        /// The target path.
        path: PathBuf,
        /// Why not.
        why: String,
    },

    /// Writing the stick failed part-way; it has no valid partition table.
    #[error("writing {} stopped at {phase}: {cause}; the stick has no valid partition table — fix the cause and run write again", path.display())]
    WriteFailed {
        /// The target path.
        path: PathBuf,
        /// What was being written.
        phase: String,
        /// What went wrong.
        cause: Box<Error>,
    },

    /// The stick does not match (or is damaged); the report says where.
    #[error("verification failed: {0}")]
    VerifyFailed(String),

    /// The output directory of `extract` holds files already.
    #[error("{} is not empty; choose an empty directory or pass --force to write into it", dir.display())]
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
    /// The exit code the command-line tool reports for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::VerifyFailed(_) => exit::VERIFY_FAILED,
            _ => exit::BAD_INPUT,
        }
    }
}
