//! `esxstick man` and `esxstick completions`: the manual page (by
//! clap_mangen) and shell completion scripts (by clap_complete), made
//! from the same definitions as `--help`, so they never drift from it.

use clap::CommandFactory;

use super::args::Cli;

/// The manual page, in roff: the main page (name, synopsis, description,
/// the commands), then a section per command with its synopsis,
/// description and options.
pub fn man() -> String {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut out = Vec::new();
    let man = clap_mangen::Man::new(cmd.clone());
    // Rendering into memory cannot fail.
    let _ = man.render(&mut out);
    for sub in cmd.get_subcommands() {
        let name = format!("esxstick {}", sub.get_name());
        // Built, the command knows its bin name: "esxstick write".
        let page = clap_mangen::Man::new(sub.clone());
        out.extend_from_slice(format!(".SH \"{}\"\n", name.to_uppercase()).as_bytes());
        let mut section = Vec::new();
        let _ = page.render_synopsis_section(&mut section);
        let _ = page.render_description_section(&mut section);
        let _ = page.render_options_section(&mut section);
        // The command's own sections become subsections of its section.
        let text = String::from_utf8_lossy(&section).replace(".SH ", ".SS ");
        out.extend_from_slice(text.as_bytes());
    }
    ascii(&String::from_utf8_lossy(&out))
}

/// `roff` with every character outside ASCII written as a roff escape
/// (`\[u2014]` for an em dash): troff reads bytes, and without preconv
/// would take UTF-8 for garbage.
fn ascii(roff: &str) -> String {
    roff.chars()
        .map(|c| match c {
            c if c.is_ascii() => c.to_string(),
            c => format!("\\[u{:04X}]", u32::from(c)),
        })
        .collect()
}

/// The completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "esxstick", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}
