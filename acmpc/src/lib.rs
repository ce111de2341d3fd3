//! AC-MPC trainer: PPO whose actor predicts the cost of a differentiable MPC and whose action is
//! the MPC's first control (CA-AC-MPC, `acmpc-reference.md` §4–5), on the quadrotor
//! gate-racing environment of the `racing` crate, plus the AC-MLP baseline and evaluation.
//!
//! Networks run on the CPU with candle (never with candle's `cuda` feature, which would break
//! cudarc's dynamic loading in the solver crates).
//!
//! * [`config`]: the training configuration (embedded default, file, `--set` overrides).
//! * [`mpc_layer`]: the MPC as a candle custom op with the implicit gradient as its backward.
//! * [`policy`]: actor (cost map + MPC, or MLP), critic, Gaussian.
//! * [`ppo`]: rollout buffer, GAE, the clipped PPO update; [`optim`]: Adam with saved state.
//! * [`normalize`]: running observation normalisation.
//! * [`trainer`]: the loop, logs, checkpoints, resume; [`checkpoint`]: atomic checkpoints.
//! * [`evaluate`]: deterministic episodes, lap times, plots, JSON summary.
//! * [`fpu`]: flush-to-zero on the compute threads (subnormals slowed training down).
//! * [`logging`]: CSV and TensorBoard event files; [`heap`]: live-heap accounting (leak checks).

pub mod checkpoint;
pub mod config;
pub mod evaluate;
pub mod fpu;
pub mod gelu;
pub mod heap;
pub mod logging;
pub mod mpc_layer;
pub mod normalize;
pub mod optim;
pub mod policy;
pub mod ppo;
mod run_dir;
mod train_row;
pub mod trainer;

pub use config::TrainConfig;
