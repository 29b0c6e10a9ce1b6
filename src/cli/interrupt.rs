//! Ctrl-C (SIGINT) and SIGTERM during `write` and `wipe`. Until the
//! target is opened nothing has been written, and a signal ends esxstick
//! at once with a line saying so. From then on the signal is only noted:
//! the library sees it through
//! [`Observer::cancelled`](esxstick::progress::Observer) and stops between
//! two writes, and the command ends with one line naming the phase and
//! the state of the stick, exiting 128 + the signal number (130, 143).
//! While the user is asked to confirm, a signal ends esxstick at once
//! again.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// The last signal that arrived, 0 for none; set by the signal handler.
static SIGNAL: AtomicUsize = AtomicUsize::new(0);
/// Whether a signal is only noted (true) or ends esxstick at once.
static DEFERRED: Mutex<bool> = Mutex::new(false);

/// Installs the handlers: from now on SIGINT and SIGTERM end esxstick at
/// once with a line saying nothing was written, until [`defer`].
pub fn install() {
    for signal in [SIGINT, SIGTERM] {
        // Without the handler a signal simply ends esxstick, as before.
        let _ = signal_hook::flag::register_usize(signal, &SIGNAL, signal as usize);
    }
    let Ok(mut signals) = Signals::new([SIGINT, SIGTERM]) else {
        return;
    };
    std::thread::spawn(move || {
        for signal in signals.forever() {
            let deferred = DEFERRED.lock().unwrap_or_else(|e| e.into_inner());
            if !*deferred {
                nothing_written(signal);
            }
        }
    });
}

/// From now on a signal is only noted, for the write to stop between two
/// writes; one that arrived before ends esxstick now, nothing written.
pub fn defer() {
    set_deferred(true);
}

/// Runs `f` (a question to the user) with signals ending esxstick at
/// once, then notes them again.
pub fn at_once_during<T>(f: impl FnOnce() -> T) -> T {
    set_deferred(false);
    let out = f();
    set_deferred(true);
    out
}

fn set_deferred(on: bool) {
    let mut deferred = DEFERRED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(signal) = received() {
        nothing_written(signal);
    }
    *deferred = on;
}

/// The signal that arrived, if any.
pub fn received() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        signal => i32::try_from(signal).ok(),
    }
}

/// The exit status for an interruption by `signal`: 128 + its number.
pub fn exit_status(signal: i32) -> u8 {
    u8::try_from(128 + signal).unwrap_or(u8::MAX)
}

/// Ends esxstick for `signal` before anything was written.
fn nothing_written(signal: i32) -> ! {
    if std::io::stderr().is_terminal() {
        // Clears progress bars below the cursor, on a fresh line.
        eprint!("\r\x1b[J");
    }
    eprintln!("esxstick: interrupted; nothing was written");
    std::process::exit(i32::from(exit_status(signal)));
}
