//! `mpc codegen`: show the code the model compiler generated for a bundled model, or render the
//! CUDA solve kernel for it.
//!
//! * `mpc codegen --model M [--lang cuda|rust] [--out DIR]`: the model's generated device
//!   functions (CUDA) or Rust bodies.
//! * `mpc codegen --model M --horizon T [--iters K] [--precision f32|f64] [--ptx] [--arch A]
//!   [--out DIR]`: the CUDA kernels rendered from `templates/` with the model's device code
//!   spliced in and T, K, the precision and the default solver settings as compile-time
//!   constants; with `--ptx` also compiled to PTX by NVRTC. With `--out` every kernel the GPU
//!   backend can launch is written there as `<kernel>_T<T>.cu` (and `.ptx`): the single-launch
//!   solve, the warp-per-problem solve, the three stages of the paper's layout, and the
//!   backward pass in both gradient modes. Without `--out` the single-launch solve kernel's
//!   `.cu` (or, with `--ptx`, its PTX) goes to standard output.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use mpc_models::ModelVisitor;
use mpc_runtime::Model;
use mpc_runtime::solver::GradientMode;
use mpc_cuda::render::{self, KernelOptions, Precision, RenderError, RenderedKernel};
use mpc_cuda::{NvrtcOptions, compile_ptx};

/// Which generated code to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    /// CUDA C++ device functions (step, linearize, weighted_hessian).
    Cuda,
    /// The Rust bodies of the model's `Model` impl.
    Rust,
}

/// Real type of a rendered kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PrecisionArg {
    /// float
    F32,
    /// double
    F64,
}

impl From<PrecisionArg> for Precision {
    fn from(p: PrecisionArg) -> Self {
        match p {
            PrecisionArg::F32 => Precision::F32,
            PrecisionArg::F64 => Precision::F64,
        }
    }
}

/// Arguments of `mpc codegen`.
#[derive(clap::Args)]
pub struct CodegenArgs {
    /// Bundled model name (pendulum, cartpole, quadrotor).
    #[arg(long)]
    model: String,
    /// Which code to print (without --horizon).
    #[arg(long, value_enum, default_value_t = Language::Cuda, conflicts_with = "horizon")]
    lang: Language,
    /// Render the single-launch CUDA solve kernel for this horizon T instead.
    #[arg(long, value_name = "T", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    horizon: Option<u32>,
    /// iLQR iterations K baked into the kernel (the default solver setting when absent).
    #[arg(long, value_name = "K", requires = "horizon")]
    iters: Option<u32>,
    /// Real type of the kernel.
    #[arg(long, value_enum, default_value_t = PrecisionArg::F64, requires = "horizon")]
    precision: PrecisionArg,
    /// Also compile the kernel to PTX with NVRTC.
    #[arg(long, requires = "horizon")]
    ptx: bool,
    /// NVRTC virtual architecture for --ptx.
    #[arg(long, default_value = "compute_80", requires = "ptx")]
    arch: String,
    /// Write the code into this directory (`<model>.cuh` / `<model>.rs`, or
    /// `<kernel>_T<T>.cu` / `.ptx` with --horizon) instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn unknown_model(name: &str) -> ExitCode {
    eprintln!("mpc codegen: unknown model `{name}` (bundled: {})", mpc_models::BUNDLED.join(", "));
    ExitCode::from(2)
}

fn write(path: &Path, text: &str) -> Result<(), ExitCode> {
    let dir = path.parent().unwrap_or(Path::new("."));
    match std::fs::create_dir_all(dir).and_then(|_| std::fs::write(path, text)) {
        Ok(()) => {
            eprintln!("wrote {}", path.display());
            Ok(())
        }
        Err(e) => {
            eprintln!("mpc codegen: cannot write {}: {e}", path.display());
            Err(ExitCode::FAILURE)
        }
    }
}

/// Run `mpc codegen`.
pub fn run(args: CodegenArgs) -> ExitCode {
    if let Some(t) = args.horizon {
        return run_kernel(&args, t as usize);
    }
    let code = match args.lang {
        Language::Cuda => mpc_models::cuda_source(&args.model),
        Language::Rust => mpc_models::generated_rust(&args.model),
    };
    let Some(code) = code else {
        return unknown_model(&args.model);
    };
    match args.out {
        None => {
            print!("{code}");
            ExitCode::SUCCESS
        }
        Some(dir) => {
            let ext = if args.lang == Language::Cuda { "cuh" } else { "rs" };
            match write(&dir.join(format!("{}.{ext}", args.model)), code) {
                Ok(()) => ExitCode::SUCCESS,
                Err(c) => c,
            }
        }
    }
}

struct Render(KernelOptions);

impl ModelVisitor for Render {
    type Output = Result<Vec<RenderedKernel>, RenderError>;
    fn visit<M: Model>(self) -> Self::Output {
        let mut out = vec![render::render_solve::<M>(&self.0)?, render::render_solve_warp::<M>(&self.0)?];
        out.extend(render::render_stages::<M>(&self.0)?);
        for mode in [GradientMode::Exact, GradientMode::GaussNewton] {
            let mut o = self.0.clone();
            o.solver.gradient = mode;
            out.push(render::render_backward::<M>(&o)?);
        }
        Ok(out)
    }
}

fn run_kernel(args: &CodegenArgs, horizon: usize) -> ExitCode {
    let mut opts = KernelOptions::new(horizon, args.precision.into());
    if let Some(k) = args.iters {
        opts.solver.max_iters = k as usize;
    }
    let kernels = match mpc_models::dispatch(&args.model, Render(opts)) {
        None => return unknown_model(&args.model),
        Some(Err(e)) => {
            eprintln!("mpc codegen: {e}");
            return ExitCode::from(2);
        }
        Some(Ok(k)) => k,
    };
    let ptx_of = |kernel: &RenderedKernel| {
        let nv = NvrtcOptions { program_name: kernel.file_name(), ..NvrtcOptions::new(args.arch.as_str()) };
        compile_ptx(&kernel.source, &nv).map_err(|e| {
            eprintln!("mpc codegen: NVRTC ({}): {e}", kernel.file_name());
            ExitCode::FAILURE
        })
    };
    match &args.out {
        None => {
            let kernel = &kernels[0];
            if args.ptx {
                match ptx_of(kernel) {
                    Ok(p) => print!("{}", p.as_str()),
                    Err(c) => return c,
                }
            } else {
                print!("{}", kernel.source);
            }
            ExitCode::SUCCESS
        }
        Some(dir) => {
            for kernel in &kernels {
                let cu = dir.join(kernel.file_name());
                if let Err(c) = write(&cu, &kernel.source) {
                    return c;
                }
                if args.ptx {
                    match ptx_of(kernel) {
                        Ok(p) => {
                            if let Err(c) = write(&cu.with_extension("ptx"), p.as_str()) {
                                return c;
                            }
                        }
                        Err(c) => return c,
                    }
                }
            }
            ExitCode::SUCCESS
        }
    }
}
