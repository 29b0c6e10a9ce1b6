//! The esxstick command line; everything it does is in [`cli`], and all
//! the work in the esxstick library.
#![deny(unsafe_code)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
