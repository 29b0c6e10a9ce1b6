//! Targets: the block device or image file a stick is planned for.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::Path;

use crate::error::{Error, Result};

/// The size in bytes of a block device or image file. (lseek to the end
/// gives a block device's size just as BLKGETSIZE64 does.)
pub fn size(path: &Path) -> Result<u64> {
    let open_err = |source| Error::Open {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(open_err)?;
    file.seek(SeekFrom::End(0)).map_err(open_err)
}
