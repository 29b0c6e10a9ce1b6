//! Asking before a target is overwritten.

use std::io::IsTerminal;

use esxstick::stick::device::Target;
use esxstick::Error;

/// Asks on the terminal before overwriting `target`; without a terminal
/// there is no one to ask, so the answer is no.
pub fn confirm(target: &Target) -> Result<(), Error> {
    let refuse = |why: &str| Error::Target {
        path: target.path().to_path_buf(),
        why: why.to_string(),
    };
    if !std::io::stdin().is_terminal() {
        return Err(refuse(
            "needs confirmation and there is no terminal to ask; pass --yes",
        ));
    }
    eprint!(
        "esxstick will ERASE {}\nType yes to continue: ",
        target.description()
    );
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|_| refuse("could not read the confirmation"))?;
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(refuse("not confirmed; nothing was written"))
    }
}
