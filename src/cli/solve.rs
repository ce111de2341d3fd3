//! `mpc solve` (not implemented yet).

use std::process::ExitCode;

/// Arguments of `mpc solve`.
#[derive(clap::Args)]
pub struct SolveArgs {}

/// Run `mpc solve`.
pub fn run(_args: SolveArgs) -> ExitCode {
    eprintln!("mpc solve: not implemented yet");
    ExitCode::from(2)
}
