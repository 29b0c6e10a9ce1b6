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
    let holds = target.holds();
    if !std::io::stdin().is_terminal() {
        return Err(refuse(Refusal::NoTerminal {
            holds: holds.clone(),
        }));
    }
    let swapped = if holds.looks_like_source() {
        "\nSOURCE and TARGET may be swapped: the target looks like an image to read, not a stick"
    } else {
        ""
    };
    eprint!(
        "esxstick will ERASE {}\nwhich holds {holds}{swapped}\nType yes to continue: ",
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
