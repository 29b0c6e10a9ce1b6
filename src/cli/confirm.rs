//! Asking before a target is overwritten.

use std::io::IsTerminal;

use esxstick::error::Refusal;
use esxstick::stick::device::Target;
use esxstick::Error;

/// Asks on the terminal before overwriting `target`; without a terminal
/// there is no one to ask, so the answer is no.
pub fn confirm(target: &Target) -> Result<(), Error> {
    let refuse = |refusal| Error::Target {
        path: target.path().to_path_buf(),
        refusal,
    };
    if !std::io::stdin().is_terminal() {
        return Err(refuse(Refusal::NoTerminal));
    }
    eprint!(
        "esxstick will ERASE {}\nType yes to continue: ",
        target.description()
    );
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|_| refuse(Refusal::ConfirmationUnreadable))?;
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(refuse(Refusal::NotConfirmed))
    }
}
