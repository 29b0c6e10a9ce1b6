//! The block-device ioctls esxstick needs, and the one system call nix
//! does not wrap (sync_file_range) — the only `unsafe` code in the crate.
//! Each wrapper takes an open file and returns an `io::Result`.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

// From <linux/fs.h>: _IOR(0x12, 114, size_t), _IO(0x12, 95), _IO(0x12, 97),
// and BLKROGET, _IO(0x12, 94), which writes an int all the same.
nix::ioctl_read!(blkgetsize64, 0x12, 114, u64);
nix::ioctl_read_bad!(
    blkroget,
    nix::request_code_none!(0x12, 94),
    nix::libc::c_int
);
nix::ioctl_none!(blkrrpart, 0x12, 95);
nix::ioctl_none!(blkflsbuf, 0x12, 97);

/// Size of a block device in bytes (BLKGETSIZE64).
pub fn device_size(file: &File) -> io::Result<u64> {
    let mut size = 0u64;
    // SAFETY: the fd is open for the lifetime of `file`, and the kernel
    // writes one u64 into `size`, which outlives the call.
    unsafe { blkgetsize64(file.as_raw_fd(), &mut size) }.map_err(io::Error::from)?;
    Ok(size)
}

/// Whether a block device is read-only (BLKROGET): a write-protect
/// switch, `losetup -r`, `blockdev --setro`.
pub fn read_only(file: &File) -> io::Result<bool> {
    let mut ro: nix::libc::c_int = 0;
    // SAFETY: the fd is open for the lifetime of `file`, and the kernel
    // writes one int into `ro`, which outlives the call.
    unsafe { blkroget(file.as_raw_fd(), &mut ro) }.map_err(io::Error::from)?;
    Ok(ro != 0)
}

/// Asks the kernel to re-read the partition table (BLKRRPART).
pub fn reread_partitions(file: &File) -> io::Result<()> {
    // SAFETY: BLKRRPART takes no argument; the fd is open.
    unsafe { blkrrpart(file.as_raw_fd()) }.map_err(io::Error::from)?;
    Ok(())
}

/// Drops the device's buffer cache (BLKFLSBUF), so reads hit the medium.
pub fn flush_buffers(file: &File) -> io::Result<()> {
    // SAFETY: BLKFLSBUF takes no argument; the fd is open.
    unsafe { blkflsbuf(file.as_raw_fd()) }.map_err(io::Error::from)?;
    Ok(())
}

/// Starts writing the file's dirty pages to the medium without waiting
/// for them (sync_file_range with SYNC_FILE_RANGE_WRITE over the whole
/// file): an fsync that follows has little left to do. Only dirty pages
/// are visited, unlike POSIX_FADV_DONTNEED, which walks every cached page
/// of the file to drop the clean ones.
pub fn start_writeback(file: &File) -> io::Result<()> {
    // SAFETY: the fd is open for the lifetime of `file`; the call takes
    // plain integers and touches no memory of ours.
    let r = unsafe {
        nix::libc::sync_file_range(file.as_raw_fd(), 0, 0, nix::libc::SYNC_FILE_RANGE_WRITE)
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
