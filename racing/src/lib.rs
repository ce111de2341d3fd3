//! The CA-AC-MPC quadrotor gate-racing task: tracks, the batched environment (observation,
//! reward, gate passing, laps and lap times) and its plots.
//!
//! The simulator is the bundled `quadrotor` model (`mpc_models::Quadrotor`) at dt = 0.02 s, the
//! same model the MPC plans with (as in the reference, `acmpc-reference.md` §2.1).

pub mod env;
pub mod plot;
pub mod track;

pub use track::{Gate, Track, TrackError};
