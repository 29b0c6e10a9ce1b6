//! Fault injection for tests: every write and fsync on a target passes
//! through here. In debug builds (the ones the test suite runs) the
//! environment variable `ESXSTICK_FAULT` makes the N-th call fail:
//!
//! * `write:N:eio`, `write:N:enospc` — the N-th write fails;
//! * `write:N:short` — the N-th write writes only half its bytes;
//! * `write:N:corrupt` — the N-th write goes ahead with its first byte
//!   flipped, as a medium that stores wrong data silently (the write
//!   succeeds; only the verification can notice);
//! * `write:N:sigint`, `write:N:sigterm` — the process sends itself that
//!   signal at the N-th write (which then goes ahead), as a user pressing
//!   Ctrl-C at that moment would;
//! * `sync:N:eio` — the N-th fsync fails;
//! * `write:N:kill`, `sync:N:kill` — the process kills itself with
//!   SIGKILL right before the N-th write or fsync (a crash at a moment
//!   the test chooses exactly);
//! * `count` — nothing fails; the numbers of writes and syncs are printed
//!   to stderr when the process ends (for tests that sweep N).
//!
//! A fourth field, `write:N:eio:SUFFIX`, aims the fault at one of several
//! targets written at once: only calls on a target whose path ends with
//! SUFFIX are counted (and can fail).
//!
//! Release builds never read the variable: these are no-ops there.

use std::borrow::Cow;
use std::io;
use std::path::Path;

#[cfg(debug_assertions)]
mod active {
    use std::borrow::Cow;
    use std::io;
    use std::path::Path;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    static WRITES: AtomicU64 = AtomicU64::new(0);
    static SYNCS: AtomicU64 = AtomicU64::new(0);

    struct Plan {
        kind: String,
        n: u64,
        how: String,
        /// Only targets whose path ends with this are counted.
        target: Option<String>,
    }

    fn plan() -> Option<&'static Plan> {
        static PLAN: OnceLock<Option<Plan>> = OnceLock::new();
        PLAN.get_or_init(|| {
            let spec = std::env::var("ESXSTICK_FAULT").ok()?;
            let mut parts = spec.split(':');
            let kind = parts.next()?.to_string();
            let n = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            let how = parts.next().unwrap_or("").to_string();
            let target = parts.next().map(str::to_string);
            Some(Plan {
                kind,
                n,
                how,
                target,
            })
        })
        .as_ref()
    }

    /// Ends the process at once, as a crash does: nothing after this
    /// point runs, nothing is flushed.
    fn kill() {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }

    fn error(how: &str) -> io::Error {
        match how {
            "enospc" => io::Error::from_raw_os_error(nix::libc::ENOSPC),
            _ => io::Error::from_raw_os_error(nix::libc::EIO),
        }
    }

    /// Whether calls on `path` are counted: all, unless the plan names
    /// a target.
    fn counted(path: &Path) -> bool {
        match plan().and_then(|p| p.target.as_deref()) {
            Some(suffix) => path.to_string_lossy().ends_with(suffix),
            None => true,
        }
    }

    pub fn write<'b>(path: &Path, buf: &'b [u8]) -> io::Result<Cow<'b, [u8]>> {
        let len = buf.len();
        if !counted(path) {
            return Ok(Cow::Borrowed(buf));
        }
        let n = WRITES.fetch_add(1, Ordering::SeqCst) + 1;
        match plan() {
            Some(p) if p.kind == "write" && p.n == n => match p.how.as_str() {
                "short" => Ok(Cow::Borrowed(buf.get(..len / 2).unwrap_or(buf))),
                "corrupt" => {
                    let mut copy = buf.to_vec();
                    if let Some(first) = copy.first_mut() {
                        *first ^= 0xff;
                    }
                    Ok(Cow::Owned(copy))
                }
                "sigint" | "sigterm" => {
                    let signal = match p.how.as_str() {
                        "sigint" => nix::sys::signal::Signal::SIGINT,
                        _ => nix::sys::signal::Signal::SIGTERM,
                    };
                    nix::sys::signal::raise(signal).map_err(io::Error::from)?;
                    Ok(Cow::Borrowed(buf))
                }
                "kill" => {
                    kill();
                    Ok(Cow::Borrowed(buf))
                }
                how => Err(error(how)),
            },
            _ => Ok(Cow::Borrowed(buf)),
        }
    }

    pub fn sync(path: &Path) -> io::Result<()> {
        if !counted(path) {
            return Ok(());
        }
        let n = SYNCS.fetch_add(1, Ordering::SeqCst) + 1;
        match plan() {
            Some(p) if p.kind == "sync" && p.n == n && p.how == "kill" => {
                kill();
                Ok(())
            }
            Some(p) if p.kind == "sync" && p.n == n => Err(error(&p.how)),
            _ => Ok(()),
        }
    }

    pub fn report() {
        if plan().is_some_and(|p| p.kind == "count") {
            eprintln!(
                "fault points: writes={} syncs={}",
                WRITES.load(Ordering::SeqCst),
                SYNCS.load(Ordering::SeqCst)
            );
        }
    }
}

/// Called before a write of `buf` to the target at `path`: the bytes to
/// write (all of `buf`, but for an injected short or corrupt write), or
/// an injected error.
pub fn write<'b>(path: &Path, buf: &'b [u8]) -> io::Result<Cow<'b, [u8]>> {
    #[cfg(debug_assertions)]
    return active::write(path, buf);
    #[cfg(not(debug_assertions))]
    {
        let _ = path;
        Ok(Cow::Borrowed(buf))
    }
}

/// Called before an fsync of the target at `path`: an injected error, or
/// nothing.
pub fn sync(path: &Path) -> io::Result<()> {
    #[cfg(debug_assertions)]
    return active::sync(path);
    #[cfg(not(debug_assertions))]
    {
        let _ = path;
        Ok(())
    }
}

/// With `ESXSTICK_FAULT=count`, prints the numbers of writes and syncs.
pub fn report() {
    #[cfg(debug_assertions)]
    active::report();
}
