//! `mpc eval`: fly a trained policy deterministically and report lap times, speeds, gates,
//! crashes and the policy's inference time per step; writes `summary.json` and the plots
//! (`top_down.png` coloured by speed with the gates, `trajectory_3d.png`, `states.png`).

use acmpc::evaluate::{Agent, evaluate};
use racing::track::Track;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `mpc eval`.
#[derive(clap::Args)]
pub struct EvalArgs {
    /// A checkpoint directory, or a run directory (its `checkpoints/latest` is used).
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// Track: a shipped name (zurich, abudhabi, splits, circle, ...) or a YAML file; default:
    /// the track the policy was trained on.
    #[arg(long, value_name = "FILE")]
    pub track: Option<String>,
    /// Laps per episode.
    #[arg(long, default_value_t = 2)]
    pub laps: u32,
    /// Episodes (deterministic policy; only random-spawn tracks make them differ).
    #[arg(long, default_value_t = 1)]
    pub episodes: usize,
    /// Step limit per episode (0.02 s each).
    #[arg(long, default_value_t = 3000)]
    pub max_steps: u32,
    /// Output directory; default `<checkpoint>/eval`.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Runs `mpc eval`.
pub fn run(args: EvalArgs) -> ExitCode {
    let agent = match Agent::load(&args.checkpoint) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mpc eval: {e}");
            return ExitCode::from(2);
        }
    };
    let track_name = args.track.clone().unwrap_or_else(|| agent.config.track.clone());
    let track = match Track::resolve(&track_name) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("mpc eval: {e}");
            return ExitCode::from(2);
        }
    };
    let out = args.out.clone().unwrap_or_else(|| args.checkpoint.join("eval"));
    match evaluate(&agent, &args.checkpoint, &track, args.laps, args.episodes, args.max_steps, &out) {
        Ok(s) => {
            for (i, e) in s.episodes.iter().enumerate() {
                println!(
                    "episode {i}: {} after {} steps ({:.2} s), gates {}, laps {}, lap times [{}] s, peak {:.1} m/s, mean {:.1} m/s, inference {:.3} ms/step (median)",
                    e.outcome,
                    e.steps,
                    e.steps as f64 * agent.config.env.dt,
                    e.gates_passed,
                    e.laps,
                    e.lap_times.iter().map(|t| format!("{t:.3}")).collect::<Vec<_>>().join(", "),
                    e.peak_speed,
                    e.mean_speed,
                    e.inference_ms_median
                );
            }
            println!("crashes: {}; summary and plots in {}", s.crashes, out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mpc eval: {e}");
            ExitCode::FAILURE
        }
    }
}
