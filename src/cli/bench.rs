//! `mpc bench` (not implemented yet).

use std::process::ExitCode;

/// Arguments of `mpc bench`.
#[derive(clap::Args)]
pub struct BenchArgs {}

/// Run `mpc bench`.
pub fn run(_args: BenchArgs) -> ExitCode {
    eprintln!("mpc bench: not implemented yet");
    ExitCode::from(2)
}
