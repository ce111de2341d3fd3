//! `mpc codegen`: show the code the model compiler generated for a bundled model.

use std::path::PathBuf;
use std::process::ExitCode;

/// Which generated code to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    /// CUDA C++ device functions (step, linearize, weighted_hessian).
    Cuda,
    /// The Rust bodies of the model's `Model` impl.
    Rust,
}

/// Arguments of `mpc codegen`.
#[derive(clap::Args)]
pub struct CodegenArgs {
    /// Bundled model name (pendulum, cartpole, quadrotor).
    #[arg(long)]
    model: String,
    /// Which code to print.
    #[arg(long, value_enum, default_value_t = Language::Cuda)]
    lang: Language,
    /// Write the code into this directory (as `<model>.cuh` / `<model>.rs`) instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Run `mpc codegen`.
pub fn run(args: CodegenArgs) -> ExitCode {
    let code = match args.lang {
        Language::Cuda => mpc_models::cuda_source(&args.model),
        Language::Rust => mpc_models::generated_rust(&args.model),
    };
    let Some(code) = code else {
        eprintln!("mpc codegen: unknown model `{}` (bundled: {})", args.model, mpc_models::BUNDLED.join(", "));
        return ExitCode::from(2);
    };
    match args.out {
        None => {
            print!("{code}");
            ExitCode::SUCCESS
        }
        Some(dir) => {
            let ext = if args.lang == Language::Cuda { "cuh" } else { "rs" };
            let path = dir.join(format!("{}.{ext}", args.model));
            match std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, code)) {
                Ok(()) => {
                    eprintln!("wrote {}", path.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("mpc codegen: cannot write {}: {e}", path.display());
                    ExitCode::FAILURE
                }
            }
        }
    }
}
