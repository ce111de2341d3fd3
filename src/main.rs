//! The `mpc` command-line tool: solve, codegen, bench, train, eval.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod cli;

/// mimalloc keeps freed pages for reuse: training allocates and frees many large tensors per
/// minibatch, and with the system allocator ~15% of the time went to page faults. The counting
/// wrapper lets `mpc train` log the live heap next to RSS (a leak check RSS alone cannot make).
#[global_allocator]
static GLOBAL: acmpc::heap::CountingAlloc<mimalloc::MiMalloc> = acmpc::heap::CountingAlloc(mimalloc::MiMalloc);

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
    /// Train an AC-MPC (or AC-MLP) drone-racing policy with PPO.
    Train(cli::train::TrainArgs),
    /// Evaluate a trained policy: lap times, speeds, plots.
    Eval(cli::eval::EvalArgs),
    /// Learn a model's parameters through the MPC from expert controls (Amos et al. 2018).
    Imitate(cli::imitate::ImitateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Solve(a) => cli::solve::run(a),
        Command::Codegen(a) => cli::codegen::run(a),
        Command::Bench(a) => cli::bench::run(a),
        Command::Train(a) => cli::train::run(a),
        Command::Eval(a) => cli::eval::run(a),
        Command::Imitate(a) => cli::imitate::run_cli(a),
    }
}
