//! `mpc codegen` (not implemented yet).

use std::process::ExitCode;

/// Arguments of `mpc codegen`.
#[derive(clap::Args)]
pub struct CodegenArgs {}

/// Run `mpc codegen`.
pub fn run(_args: CodegenArgs) -> ExitCode {
    eprintln!("mpc codegen: not implemented yet");
    ExitCode::from(2)
}
