//! A batch of independent racing environments with SB3-style auto-reset.

use super::{EnvConfig, EpisodeStats, Event, NX, OBS_DIM, RacingEnv, StepOutcome};
use crate::track::Track;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rayon::prelude::*;

/// Batches at least this large are stepped in parallel (rayon, chunks of at least this many).
const PAR_MIN_LEN: usize = 64;

/// `n` independent [`RacingEnv`]s on the same track; env `i` draws its starts from its own
/// `StdRng::seed_from_u64(seed + i)` (wrapping), so a batch is reproducible from its seed.
#[derive(Clone, Debug)]
pub struct VecEnv {
    envs: Vec<RacingEnv>,
    rngs: Vec<StdRng>,
}

/// Result of [`VecEnv::step`], one entry per env (in env order) except `finished`.
#[derive(Clone, Debug, Default)]
pub struct VecStep {
    /// Reward of each env's step.
    pub rewards: Vec<f32>,
    /// Whether each env's episode ended in this step (it has been reset since).
    pub dones: Vec<bool>,
    /// Event of each env's step.
    pub events: Vec<Event>,
    /// Statistics of every episode that ended in this step, in env order.
    pub finished: Vec<EpisodeStats>,
    /// For each entry of `finished`: its env and the episode's last observation (before the
    /// reset; Gymnasium's `final_obs`, what bootstrapping a truncated episode needs).
    pub final_observations: Vec<(usize, [f32; OBS_DIM])>,
}

impl VecEnv {
    /// `n` environments, each reset once from its own RNG.
    pub fn new(track: Track, config: EnvConfig, n: usize, seed: u64) -> Self {
        let proto = RacingEnv::new(track, config);
        let mut envs = Vec::with_capacity(n);
        let mut rngs = Vec::with_capacity(n);
        for i in 0..n {
            let mut rng = StdRng::seed_from_u64(seed.wrapping_add(i as u64));
            let mut env = proto.clone();
            env.reset(&mut rng);
            envs.push(env);
            rngs.push(rng);
        }
        VecEnv { envs, rngs }
    }

    /// Number of environments.
    pub fn len(&self) -> usize {
        self.envs.len()
    }

    /// True for a batch of zero environments.
    pub fn is_empty(&self) -> bool {
        self.envs.is_empty()
    }

    /// Current observations (after any auto-reset of the last step).
    pub fn observations(&self) -> Vec<[f32; OBS_DIM]> {
        self.envs.iter().map(RacingEnv::observation).collect()
    }

    /// Current raw states `(p, q, v)` (after any auto-reset of the last step).
    pub fn states(&self) -> Vec<[f64; NX]> {
        self.envs.iter().map(RacingEnv::state).collect()
    }

    /// Steps every env with its normalised action (`actions[i]` for env `i`; an env without an
    /// action — `actions` shorter than the batch — gets the zero action, i.e. hover thrust and
    /// no rates; extra actions are ignored). An env whose episode ends is reset at once from
    /// its RNG (SB3 auto-reset), so [`VecEnv::observations`] afterwards are post-reset ones and
    /// the ended episode's statistics are in [`VecStep::finished`]. Parallel over envs (rayon)
    /// for batches of at least 128.
    pub fn step(&mut self, actions: &[[f32; 4]]) -> VecStep {
        type Ended = (EpisodeStats, (usize, [f32; OBS_DIM]));
        let one = |(i, (env, rng)): (usize, (&mut RacingEnv, &mut StdRng))| -> (StepOutcome, Option<Ended>) {
            let a = actions.get(i).map_or([0.0; 4], |a| a.map(f64::from));
            let out = env.step(a);
            let finished = if out.done {
                let ended = (env.stats().clone(), (i, env.observation()));
                env.reset(rng);
                Some(ended)
            } else {
                None
            };
            (out, finished)
        };
        let results: Vec<(StepOutcome, Option<Ended>)> = if self.envs.len() >= 2 * PAR_MIN_LEN {
            self.envs.par_iter_mut().zip(self.rngs.par_iter_mut()).enumerate().with_min_len(PAR_MIN_LEN).map(one).collect()
        } else {
            self.envs.iter_mut().zip(self.rngs.iter_mut()).enumerate().map(one).collect()
        };
        let mut out = VecStep {
            rewards: Vec::with_capacity(results.len()),
            dones: Vec::with_capacity(results.len()),
            events: Vec::with_capacity(results.len()),
            finished: Vec::new(),
            final_observations: Vec::new(),
        };
        for (o, f) in results {
            out.rewards.push(o.reward as f32);
            out.dones.push(o.done);
            out.events.push(o.event);
            if let Some((stats, last)) = f {
                out.finished.push(stats);
                out.final_observations.push(last);
            }
        }
        out
    }

    /// Environment `i`. Panics when `i ≥ len()`, like slice indexing.
    pub fn env(&self, i: usize) -> &RacingEnv {
        &self.envs[i]
    }

    /// All environments, in order.
    pub fn envs(&self) -> &[RacingEnv] {
        &self.envs
    }
}
