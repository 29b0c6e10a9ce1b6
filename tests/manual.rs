//! `esxstick completions` and `esxstick man`: the bash script parses
//! (`bash -n`) and completes every command; the manual page renders with
//! groff without a warning (`-ww`) and has a section for every command.
//! The list of commands comes from `esxstick --help`, which clap prints
//! from the same definitions.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::*;

/// The commands `esxstick --help` lists (but `help`).
fn commands() -> Vec<String> {
    let help = stdout(&esxstick(&["--help"]));
    let names: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter(|l| l.len() > 2 && !l[2..].starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(str::to_string)
        .collect();
    for expected in ["write", "devices", "wipe", "completions", "man"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    names
}

/// Runs `program ARGS` with `input` on stdin: its output.
fn with_stdin(program: &str, args: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("oracle {program} cannot run ({e}): run scripts/install-deps"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn the_bash_completion_parses_and_completes_every_command() {
    let out = esxstick(&["completions", "bash"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let check = with_stdin("bash", &["-n"], &out.stdout);
    assert!(check.status.success(), "bash -n: {}", stderr(&check));
    // Sourced, the function completes `esxstick w` to the commands.
    let script = format!(
        "{}\nCOMP_WORDS=(esxstick '') COMP_CWORD=1 COMP_LINE='esxstick ' COMP_POINT=9\n\
         _esxstick esxstick '' esxstick\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        stdout(&out)
    );
    let run = with_stdin("bash", &[], script.as_bytes());
    let offered = stdout(&run);
    for name in commands() {
        assert!(
            offered.lines().any(|l| l == name),
            "{name} not offered:\n{offered}"
        );
    }
    for shell in ["zsh", "fish", "powershell"] {
        let out = esxstick(&["completions", shell]);
        assert!(
            out.status.success() && stdout(&out).contains("wipe"),
            "{shell}"
        );
    }
    let out = esxstick(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid value 'tcsh'"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_man_page_renders_without_warnings_and_covers_every_command() {
    let out = esxstick(&["man"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let roff = stdout(&out);
    // -P -cbou: plain text, without bold or underline escapes.
    let args = ["-man", "-Tutf8", "-ww", "-P", "-cbou"];
    let render = with_stdin("groff", &args, &out.stdout);
    assert!(render.status.success(), "groff failed");
    assert_eq!(stderr(&render), "", "groff warned");
    let page = stdout(&render);
    for name in commands() {
        let section = format!(".SH \"ESXSTICK {}\"", name.to_uppercase());
        assert!(roff.contains(&section), "no section for {name}");
        let heading = format!("ESXSTICK {}", name.to_uppercase());
        assert!(page.contains(&heading), "{name} not on the page");
    }
    assert!(page.contains("--label"), "wipe's options are on the page");
}
