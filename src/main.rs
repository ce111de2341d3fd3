//! The `mpc` command-line tool: solve, codegen, bench (and later train, eval).

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod cli;

/// Code-generating differentiable MPC compiler.
#[derive(Parser)]
#[command(name = "mpc", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Solve a batch of MPC problems given in the JSON exchange format.
    Solve(cli::solve::SolveArgs),
    /// Print or write the code generated for a model.
    Codegen(cli::codegen::CodegenArgs),
    /// Benchmark the solver (the CA-AC-MPC Table II grid).
    Bench(cli::bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Solve(a) => cli::solve::run(a),
        Command::Codegen(a) => cli::codegen::run(a),
        Command::Bench(a) => cli::bench::run(a),
    }
}
