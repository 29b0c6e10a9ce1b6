//! Asking before a target (or several) is overwritten.

use std::io::IsTerminal;

use esxstick::error::Refusal;
use esxstick::stick::device::Target;
use esxstick::Error;

/// Refuses `target` when it needs a confirmation and there is no
/// terminal to give one (checked before the plan is printed).
pub fn can_ask(target: &Target) -> Result<(), Error> {
    if std::io::stdin().is_terminal() {
        return Ok(());
    }
    Err(Error::Target {
        path: target.path().to_path_buf(),
        refusal: Refusal::NoTerminal {
            holds: target.holds().clone(),
        },
    })
}

/// Asks on the terminal before overwriting `target` (see [`can_ask`]).
pub fn confirm(target: &Target) -> Result<(), Error> {
    can_ask(target)?;
    let holds = target.holds();
    let swapped = if holds.looks_like_source() {
        "\nSOURCE and TARGET may be swapped: the target looks like an image to read, not a stick"
    } else {
        ""
    };
    eprint!(
        "esxstick will ERASE {}\nwhich holds {holds}{swapped}\nType yes to continue: ",
        target.description()
    );
    answer(target)
}

/// Asks once on the terminal before overwriting every one of `targets`
/// (at least one), listing each with what it holds.
pub fn confirm_all(targets: &[&Target]) -> Result<(), Error> {
    let [first, ..] = targets else {
        return Ok(());
    };
    for target in targets {
        can_ask(target)?;
    }
    let mut text = format!("esxstick will ERASE {} targets:\n", targets.len());
    for target in targets {
        let holds = target.holds();
        let swapped = if holds.looks_like_source() {
            " (it looks like an image to read: SOURCE and TARGET may be swapped)"
        } else {
            ""
        };
        text.push_str(&format!(
            "  {}\n    which holds {holds}{swapped}\n",
            target.description()
        ));
    }
    eprint!("{text}Type yes to continue: ");
    answer(first)
}

/// Reads the answer: `yes`, or a refusal of `target`.
fn answer(target: &Target) -> Result<(), Error> {
    let refuse = |refusal| Error::Target {
        path: target.path().to_path_buf(),
        refusal,
    };
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
