//! The gate-racing environment of CA-AC-MPC (`envs/gate_racing_env.py`, `obs_mode = "paper"`),
//! following `acmpc-reference.md` §1.7 and §2.1–§2.11, and a batch of independent copies
//! ([`VecEnv`]) with SB3-style auto-reset.
//!
//! # Simulator
//! One env step is one step of the bundled [`mpc_models::Quadrotor`] with `dt = 0.02` s (the
//! model's own default is 0.05 and is overridden by [`EnvConfig::dt`]): semi-explicit Euler with
//! the exponential-map attitude update. This is the *CUDA / fast* form of the reference step
//! (§1.4): `|ω|` is replaced by `|ω| + 1e-8` and `q⁺` is divided by `|q⁺| + 1e-8`, whereas the
//! Python simulator (`drone.py`) uses a safe normalise and no renormalisation. The two differ at
//! the 1e-8 level; the MPC plans with exactly this map. Everything is `f64` (the reference is
//! `float32`); observations are cast to `f32` at the end.
//!
//! # One step (§2.3)
//! 1. The action is clipped to `[-1, 1]` (SB3 clips before `env.step`; a non-finite component is
//!    taken as 0) and mapped to `(f_c, ω)` by [`action_to_control`]; one dynamics step; wind
//!    (§2.10) when configured and active.
//! 2. Ground: `pz ≤ crash_z_min` → reward `−reward_collision_penalty`, done, [`Event::Ground`];
//!    nothing else is evaluated (a gate crossed in the same step does not count).
//! 3. Gate logic against the current target gate only (§2.6): the radius shortcut first, then the
//!    back-to-front plane crossing with the interpolated intersection inside/outside the frame.
//!    Pass → `+reward_gate_bonus` (no progress term); outside → `−reward_collision_penalty`,
//!    done, [`Event::Miss`]; otherwise the progress reward
//!    `‖g_c − p_prev‖ − ‖g_c − p‖ − reward_body_rate_coeff·‖ω_cmd‖₂` (§2.5).
//! 4. Laps (§2.9), `p_prev ← p`, step counter + 1, timeout when it reaches `max_steps`.
//!
//! Events follow the reference's priority: miss, lap finished, race finished, gate passed
//! (`GatePassedAtTimeout` when the same step times out), timeout.
//!
//! # Lap times (not computed by the reference; derived here)
//! A gate crossing at step `k` (the step from time `k·dt` to `(k+1)·dt`) is timed at
//! `(k + t)·dt`, where `t ∈ [0, 1]` is the interpolation parameter of the plane intersection
//! `p_i = p_prev + t·(p − p_prev)` of §2.6 step 2 (for a pass by the radius shortcut without a
//! plane crossing in that step, `t = 1`). Lap 1 runs from the spawn (`t = 0`, standing start)
//! to the first crossing of the *last* gate; lap `k > 1` is the time between consecutive
//! crossings of the last gate (flying laps). With a random spawn in front of gate `k > 0`, lap 1
//! is a partial lap: the lap counter counts it (as the reference's does), but it is not a lap
//! time, so [`EpisodeStats::lap_times`] leaves it out and sets
//! [`EpisodeStats::partial_first_lap`]. `lap_times` lists the complete laps in order;
//! [`RacingEnv::gate_crossings`] has every crossing.
//!
//! # Deviations from the reference (none changes rewards or `done`)
//! * The step counter also advances on the ground-crash step (the reference returns before
//!   incrementing); only [`RacingEnv::time`] after a crash sees it.
//! * A miss on the step that also reaches `max_steps` is reported as [`Event::Miss`] (the
//!   reference's `info["event"]` says `timeout` there); reward and `done` are identical.
//! * "Gate passed" is decided by the pass itself, not by the reference's `reward > 1.0` test
//!   (the same with the default bonus of 10).
//! * [`RacingEnv::laps`] also counts the single lap of a non-looping race (the reference's
//!   `lap_count` stays 0 when `loop_track_on_finish` is false).
//! * After `RaceFinished` the target index is one past the last gate (as in the reference);
//!   stepping further (without reset) is allowed and then has no gate logic: the reward is just
//!   the body-rate penalty.
//! * The `straight_wind` spawn "always in front of gate 0" is tied to [`EnvConfig::wind`] being
//!   set (or the track id being `straight_wind`), since tracks here are data, not names.
//! * Built-in presets' gates below `min_gate_z` are not lifted (no shipped track has one).
//! * The rotation matrix of the observation uses the normalised quaternion (the state's `|q|`
//!   is `1 − 1e-8` because of the renormalisation epsilon).

mod config;
mod vec;

pub use config::{ConfigError, EnvConfig, WindConfig};
pub use vec::{VecEnv, VecStep};

use crate::track::{Gate, Track};
use mpc_models::Quadrotor;
use mpc_runtime::Model;
use serde::Serialize;

/// Number of future gates in the observation (the reference's `n_future_gates`).
pub const N_FUTURE_GATES: usize = 2;
/// Observation size: `10 + 12 + 12·N_FUTURE_GATES` (§2.4, `obs_mode = "paper"`).
pub const OBS_DIM: usize = 10 + 12 + 12 * N_FUTURE_GATES;
/// State dimension of the simulator / MPC model: `p (3), q (4, scalar first), v (3)` (the
/// model's own).
pub const NX: usize = <Quadrotor as Model>::NX;
/// Control dimension: collective thrust (N) and body rates (rad/s) (the model's own).
pub const NU: usize = <Quadrotor as Model>::NU;
/// Quadrotor mass (kg).
pub const MASS: f64 = 0.752;
/// Gravity (m/s², along −z).
pub const GRAVITY: f64 = 9.8066;
/// Normalisation of the thrust action, `σ_f = 4·8.5/m − g` (m/s²), §1.7.
pub const THRUST_SCALE: f64 = 35.406166;
/// Maximum specific thrust `4·8.5/m` (m/s²): the upper clamp of §2.2.
pub const ACC_MAX: f64 = 45.212766;
/// Body-rate limits (rad/s) = the normalisation of the rate actions.
pub const RATE_MAX: [f64; 3] = [10.0, 10.0, 4.0];

/// Normalised action `(a_thrust, a_ω)` → control `(f_c [N], ω [rad/s])` exactly as §2.2:
/// `acc = clamp(a₀·THRUST_SCALE + g, 0, ACC_MAX)`, `f_c = acc·m`, `ω = a₁..₃ ⊙ RATE_MAX`.
/// The action itself is not clipped here ([`RacingEnv::step`] clips it first).
pub fn action_to_control(a: [f64; 4]) -> [f64; 4] {
    let acc = (a[0] * THRUST_SCALE + GRAVITY).clamp(0.0, ACC_MAX);
    [acc * MASS, a[1] * RATE_MAX[0], a[2] * RATE_MAX[1], a[3] * RATE_MAX[2]]
}

/// Control `(f_c, ω)` → normalised action, the inverse of [`action_to_control`] on its
/// reachable range (used for the policy mean, §4.6): `((f_c/m − g)/THRUST_SCALE, ω ⊘ RATE_MAX)`.
/// No clamping: a thrust in the MPC box `[0, 34]` N maps into `[−0.276974, 1]`.
pub fn control_to_action(u: [f64; 4]) -> [f64; 4] {
    [(u[0] / MASS - GRAVITY) / THRUST_SCALE, u[1] / RATE_MAX[0], u[2] / RATE_MAX[1], u[3] / RATE_MAX[2]]
}

/// Rotation matrix (body → world) of a scalar-first quaternion, normalised first; the
/// identity for a zero quaternion.
pub fn rotation_matrix(q: [f64; 4]) -> [[f64; 3]; 3] {
    let n2 = q.iter().map(|c| c * c).sum::<f64>();
    if n2.is_nan() || n2 <= 0.0 {
        return [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    }
    let s = 1.0 / n2.sqrt();
    let (w, x, y, z) = (q[0] * s, q[1] * s, q[2] * s, q[3] * s);
    [
        [1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y - w * z), 2.0 * (x * z + w * y)],
        [2.0 * (x * y + w * z), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z - w * x)],
        [2.0 * (x * z - w * y), 2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y)],
    ]
}

/// What happened in a step (the reference's `info["event"]`; serialised in snake_case as there).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// Nothing notable (the reference sets no event).
    None,
    /// The target gate was passed; the episode goes on.
    GatePassed,
    /// The last gate was passed and the track restarts at gate 0 (`loop_track_on_finish`).
    LapFinished,
    /// The last gate was passed and the episode ends (lap limit reached, or no looping).
    RaceFinished,
    /// The target gate's plane was crossed outside the frame: penalty, done.
    Miss,
    /// `pz ≤ crash_z_min`: penalty, done.
    Ground,
    /// `max_steps` reached (terminal, no penalty).
    Timeout,
    /// A gate was passed in the step that reached `max_steps`.
    GatePassedAtTimeout,
}

impl Event {
    /// The reference's event string (`"gate_passed"`, …; `"none"` for [`Event::None`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Event::None => "none",
            Event::GatePassed => "gate_passed",
            Event::LapFinished => "lap_finished",
            Event::RaceFinished => "race_finished",
            Event::Miss => "miss",
            Event::Ground => "ground",
            Event::Timeout => "timeout",
            Event::GatePassedAtTimeout => "gate_passed_at_timeout",
        }
    }
}

/// Result of [`RacingEnv::step`].
#[derive(Clone, Debug)]
pub struct StepOutcome {
    /// Reward of the step (§2.5).
    pub reward: f64,
    /// The episode ended (terminal; timeouts included, as in the reference).
    pub done: bool,
    /// What happened.
    pub event: Event,
}

/// Summary of one episode (so far, or complete when `end` is set).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EpisodeStats {
    /// Sum of rewards.
    pub ret: f64,
    /// Number of steps taken.
    pub length: u32,
    /// Number of gates passed.
    pub gates_passed: u32,
    /// Number of completed laps.
    pub laps: u32,
    /// Lap times in s of the complete laps, in order (see the module docs for the definition).
    pub lap_times: Vec<f64>,
    /// The episode started in front of a gate other than the first, so its first counted lap
    /// was partial and is not in `lap_times`.
    pub partial_first_lap: bool,
    /// The event of the terminal step; `None` while the episode runs.
    pub end: Option<Event>,
    /// Largest speed `‖v‖` (m/s) of any state of the episode.
    pub max_speed: f64,
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

/// Plane crossing of §2.6 steps 1–3: `Some((t, inside))` when the segment `p0 → p1` crosses the
/// gate plane back-to-front, with `t` the interpolation parameter of the intersection.
fn plane_crossing(p0: [f64; 3], p1: [f64; 3], gate: &Gate) -> Option<(f64, bool)> {
    let n = gate.normal();
    let d0 = dot(sub(p0, gate.center), n);
    let d1 = dot(sub(p1, gate.center), n);
    if !(d0 < 0.0 && d1 >= 0.0) || (d0 - d1).abs() < 1e-8 {
        return None;
    }
    let t = (d0 / (d0 - d1)).clamp(0.0, 1.0);
    let pi = [p0[0] + t * (p1[0] - p0[0]), p0[1] + t * (p1[1] - p0[1]), p0[2] + t * (p1[2] - p0[2])];
    let rel = sub(pi, gate.center);
    let xi = dot(rel, gate.right());
    let eta = rel[2]; // up axis u = world z
    Some((t, xi.abs() <= 0.5 * gate.width && eta.abs() <= 0.5 * gate.height))
}

/// Quaternion of a pure yaw `ψ`: `(cos ψ/2, 0, 0, sin ψ/2)`.
fn yaw_quaternion(yaw: f64) -> [f64; 4] {
    [(0.5 * yaw).cos(), 0.0, 0.0, (0.5 * yaw).sin()]
}

/// One quadrotor racing a track: state, target gate, laps, episode statistics.
#[derive(Clone, Debug)]
pub struct RacingEnv {
    track: Track,
    config: EnvConfig,
    model: Quadrotor,
    state: [f64; NX],
    prev_pos: [f64; 3],
    steps: u32,
    target: usize,
    laps: u32,
    /// Time of the last completion of the last gate (0 at the start of the episode).
    last_lap_end: f64,
    stats: EpisodeStats,
    crossings: Vec<(f64, usize)>,
}

impl RacingEnv {
    /// An environment on `track` with `config`. The drone starts at the deterministic start
    /// (the YAML start pose when used, else the centre of the spawn cube in front of gate 0);
    /// call [`RacingEnv::reset`] for the §2.8 start distribution. Never fails: numbers are
    /// taken as given (see [`EnvConfig::validate`]); a track without gates has no gate logic
    /// and zero-filled gate observations.
    pub fn new(track: Track, config: EnvConfig) -> Self {
        let model = Quadrotor { dt: config.dt, ..Quadrotor::default() };
        let mut env = RacingEnv {
            track,
            config,
            model,
            state: [0.0; NX],
            prev_pos: [0.0; 3],
            steps: 0,
            target: 0,
            laps: 0,
            last_lap_end: 0.0,
            stats: EpisodeStats::default(),
            crossings: Vec::new(),
        };
        let (state, target) = env.spawn(0, [0.0; 3]);
        env.reset_to(state, target);
        env
    }

    /// The YAML start pose, when present and enabled.
    fn yaml_start(&self) -> Option<[f64; 4]> {
        if self.config.use_yaml_start_pos { self.track.start } else { None }
    }

    /// Spawn state and target: the YAML start (target 0), else in front of gate `k` with the
    /// cube offset `noise` (already scaled), floor and plane margin applied (§2.8).
    fn spawn(&self, k: usize, noise: [f64; 3]) -> ([f64; NX], usize) {
        let mut x = [0.0; NX];
        if let Some(s) = self.yaml_start() {
            x[..3].copy_from_slice(&s[..3]);
            x[3..7].copy_from_slice(&yaw_quaternion(s[3]));
            return (x, 0);
        }
        self.spawn_at_gate(k, noise)
    }

    /// Spawn in front of gate `k` (§2.8 without a start pose), target `k`.
    fn spawn_at_gate(&self, k: usize, noise: [f64; 3]) -> ([f64; NX], usize) {
        let mut x = [0.0; NX];
        let Some(gate) = self.track.gates.get(k) else {
            // No gates (reference: origin at 1 m, identity attitude).
            x[2] = 1.0;
            x[3] = 1.0;
            return (x, 0);
        };
        let (c, n, d) = (gate.center, gate.normal(), self.config.spawn_distance);
        let mut p = [c[0] - d * n[0] + noise[0], c[1] - d * n[1] + noise[1], c[2] - d * n[2] + noise[2]];
        if p[2] < self.config.min_gate_z {
            p[2] = self.config.min_gate_z;
        }
        let s = dot(sub(p, c), n);
        if s > -self.config.spawn_plane_margin {
            let back = s + self.config.spawn_plane_margin;
            for i in 0..3 {
                p[i] -= back * n[i];
            }
        }
        x[..3].copy_from_slice(&p);
        x[3..7].copy_from_slice(&yaw_quaternion(gate.yaw));
        (x, k)
    }

    /// New episode from the §2.8 start distribution: the deterministic YAML start pose
    /// (`q = (cos ψ/2, 0, 0, sin ψ/2)`, zero velocity, target 0) when the track has one and
    /// `use_yaml_start_pos`; otherwise a gate `k` drawn uniformly (gate 0 with wind), yaw of
    /// that gate, zero velocity, `p = c_k − spawn_distance·n_k + (U[0,1)³ − 0.5)·init_pos_cube`,
    /// raised to `min_gate_z` and pushed back behind the plane by `spawn_plane_margin`.
    /// With [`EnvConfig::random_gate_start_prob`] `> 0` the start pose is skipped with that
    /// probability (one uniform draw per reset, only when the probability is positive, so the
    /// reference's random stream is unchanged at 0).
    pub fn reset(&mut self, rng: &mut impl rand::Rng) {
        let n = self.track.gates.len();
        let p = self.config.random_gate_start_prob;
        let use_start = self.yaml_start().is_some() && !(p > 0.0 && rng.random::<f64>() < p);
        let (state, target) = if use_start || n == 0 {
            self.spawn(0, [0.0; 3])
        } else {
            let wind_track = self.config.wind.is_some() || self.track.id == "straight_wind";
            let k = if wind_track { 0 } else { rng.random_range(0..n) };
            let cube = self.config.init_pos_cube;
            let noise = [
                (rng.random::<f64>() - 0.5) * cube,
                (rng.random::<f64>() - 0.5) * cube,
                (rng.random::<f64>() - 0.5) * cube,
            ];
            self.spawn_at_gate(k, noise)
        };
        self.reset_to(state, target);
    }

    /// New episode from an explicit state and target gate (tests, scripted starts): time,
    /// laps, statistics and crossings are cleared and `p_prev ← p`. A target past the last
    /// gate is clamped to the last gate.
    pub fn reset_to(&mut self, state: [f64; NX], target_gate: usize) {
        self.state = state;
        self.prev_pos = [state[0], state[1], state[2]];
        self.target = target_gate.min(self.track.gates.len().saturating_sub(1));
        self.steps = 0;
        self.laps = 0;
        self.last_lap_end = 0.0;
        self.crossings.clear();
        self.stats = EpisodeStats {
            max_speed: norm([state[7], state[8], state[9]]),
            partial_first_lap: self.target > 0,
            ..EpisodeStats::default()
        };
    }

    /// Replaces the dynamic state in the middle of an episode (a teleport for scripted tests):
    /// target, laps, time and statistics are kept, and `p_prev ← p`, so the jump itself never
    /// crosses a gate plane.
    pub fn set_state(&mut self, state: [f64; NX]) {
        self.state = state;
        self.prev_pos = [state[0], state[1], state[2]];
        self.stats.max_speed = self.stats.max_speed.max(norm([state[7], state[8], state[9]]));
    }

    /// Wind of §2.10 after the dynamics step (uses the step index before this step).
    fn apply_wind(&mut self) {
        let Some(w) = &self.config.wind else { return };
        if self.steps >= w.active_steps || norm(w.accel) <= 1e-8 {
            return;
        }
        if w.pre_gate_only {
            if self.target != 0 {
                return;
            }
            let Some(g0) = self.track.gates.first() else { return };
            let rel = sub([self.state[0], self.state[1], self.state[2]], g0.center);
            let s = dot(rel, g0.normal());
            if s >= w.pre_gate_margin || (w.zone_depth > 0.0 && s < w.pre_gate_margin - w.zone_depth) {
                return;
            }
            if w.zone_width > 0.0 && dot(rel, g0.right()).abs() > 0.5 * w.zone_width {
                return;
            }
        }
        let dt = self.config.dt;
        for i in 0..3 {
            self.state[7 + i] += w.accel[i] * dt;
            self.state[i] += 0.5 * w.accel[i] * dt * dt;
        }
    }

    /// Advances one step with a normalised action (clipped to `[-1, 1]` first; non-finite
    /// components count as 0): §2.3 order of operations, §2.5 reward, §2.6 gate test, §2.7
    /// termination, §2.9 laps. The environment does not reset itself when done.
    pub fn step(&mut self, action: [f64; 4]) -> StepOutcome {
        let a = action.map(|v| if v.is_finite() { v.clamp(-1.0, 1.0) } else { 0.0 });
        let u = action_to_control(a);
        let mut next = [0.0; NX];
        self.model.eval_step(&self.state, &u, &mut next);
        self.state = next;
        self.apply_wind();

        let step_index = self.steps;
        self.steps = self.steps.saturating_add(1);
        self.stats.length = self.stats.length.saturating_add(1);
        let speed = norm([self.state[7], self.state[8], self.state[9]]);
        if speed > self.stats.max_speed {
            self.stats.max_speed = speed;
        }
        let pos = [self.state[0], self.state[1], self.state[2]];
        let cfg = &self.config;

        // §2.3 step 2: ground, before anything else.
        if pos[2] <= cfg.crash_z_min {
            return self.finish(-cfg.reward_collision_penalty, true, Event::Ground);
        }

        // §2.5 / §2.6: reward and gate logic against the target gate.
        let n_gates = self.track.gates.len();
        let omega_norm = norm([u[1], u[2], u[3]]);
        let mut reward = -cfg.reward_body_rate_coeff * omega_norm;
        let (mut done, mut passed, mut miss, mut lap_finished, mut race_finished) = (false, false, false, false, false);
        if let Some(gate) = self.track.gates.get(self.target) {
            let dist = norm(sub(gate.center, pos));
            let within_radius = cfg.gate_pass_radius > 0.0
                && dist <= cfg.gate_pass_radius
                && (!cfg.gate_pass_radius_requires_plane
                    || dot(sub(pos, gate.center), gate.normal()).abs() <= cfg.gate_thickness);
            let crossing = plane_crossing(self.prev_pos, pos, gate);
            if within_radius || matches!(crossing, Some((_, true))) {
                passed = true;
                let t = crossing.map_or(1.0, |(t, _)| t);
                let time = (f64::from(step_index) + t) * cfg.dt;
                self.crossings.push((time, self.target));
                self.stats.gates_passed += 1;
                reward = cfg.reward_gate_bonus;
                self.target += 1;
                if self.target >= n_gates {
                    // §2.9: the last gate completes a lap.
                    self.laps += 1;
                    self.stats.laps = self.laps;
                    if !(self.laps == 1 && self.stats.partial_first_lap) {
                        self.stats.lap_times.push(time - self.last_lap_end);
                    }
                    self.last_lap_end = time;
                    let limit_reached = cfg.max_laps_per_episode.is_some_and(|m| self.laps >= m);
                    if cfg.loop_track_on_finish && !limit_reached {
                        self.target = 0;
                        lap_finished = true;
                    } else {
                        race_finished = true;
                        done = true;
                    }
                }
            } else if crossing.is_some() {
                miss = true;
                done = true;
                reward = -cfg.reward_collision_penalty;
            } else {
                reward += norm(sub(gate.center, self.prev_pos)) - dist;
            }
        }

        // §2.3 step 4.
        self.prev_pos = pos;
        let timed_out = self.steps >= cfg.max_steps;
        done |= timed_out;
        let event = if miss {
            Event::Miss
        } else if lap_finished {
            Event::LapFinished
        } else if race_finished {
            Event::RaceFinished
        } else if passed {
            if done { Event::GatePassedAtTimeout } else { Event::GatePassed }
        } else if timed_out {
            Event::Timeout
        } else {
            Event::None
        };
        self.finish(reward, done, event)
    }

    fn finish(&mut self, reward: f64, done: bool, event: Event) -> StepOutcome {
        self.stats.ret += reward;
        if done {
            self.stats.end = Some(event);
        }
        StepOutcome { reward, done, event }
    }

    /// Index of the `j`-th gate ahead (0 = target), wrapping when looping; `None` past the end.
    fn future_gate(&self, j: usize) -> Option<&Gate> {
        let n = self.track.gates.len();
        let mut idx = self.target + j;
        if self.config.loop_track_on_finish && n > 0 {
            idx %= n;
        }
        self.track.gates.get(idx)
    }

    /// Writes the §2.4 observation into `out` (length [`OBS_DIM`]; a shorter slice gets the
    /// leading part): state (0..10), `v` (10..13), `R(q)` row-major (13..22), the target gate's
    /// corners TR, TL, BL, BR minus `p` (22..34) and the next gate's (34..46; wrapping when
    /// looping, zero past the end otherwise).
    pub fn write_observation(&self, out: &mut [f32]) {
        let obs = self.observation();
        let n = out.len().min(OBS_DIM);
        out[..n].copy_from_slice(&obs[..n]);
    }

    /// The §2.4 observation (`obs_mode = "paper"`), see [`RacingEnv::write_observation`].
    pub fn observation(&self) -> [f32; OBS_DIM] {
        let s = &self.state;
        let mut o = [0.0f32; OBS_DIM];
        for i in 0..NX {
            o[i] = s[i] as f32;
        }
        for i in 0..3 {
            o[10 + i] = s[7 + i] as f32;
        }
        let r = rotation_matrix([s[3], s[4], s[5], s[6]]);
        for i in 0..3 {
            for j in 0..3 {
                o[13 + 3 * i + j] = r[i][j] as f32;
            }
        }
        for g in 0..N_FUTURE_GATES {
            if let Some(gate) = self.future_gate(g) {
                for (c, corner) in gate.corners().iter().enumerate() {
                    for k in 0..3 {
                        o[22 + 12 * g + 3 * c + k] = (corner[k] - s[k]) as f32;
                    }
                }
            }
        }
        o
    }

    /// The raw simulator / MPC state `(p, q, v)`.
    pub fn state(&self) -> [f64; NX] {
        self.state
    }

    /// Time since the start of the episode, `steps·dt` (s).
    pub fn time(&self) -> f64 {
        f64::from(self.steps) * self.config.dt
    }

    /// Number of steps taken in this episode.
    pub fn steps(&self) -> u32 {
        self.steps
    }

    /// Index of the gate to pass next (one past the last gate after `RaceFinished`).
    pub fn target_gate(&self) -> usize {
        self.target
    }

    /// Completed laps in this episode.
    pub fn laps(&self) -> u32 {
        self.laps
    }

    /// Statistics of the current episode so far.
    pub fn stats(&self) -> &EpisodeStats {
        &self.stats
    }

    /// The track.
    pub fn track(&self) -> &Track {
        &self.track
    }

    /// The settings.
    pub fn config(&self) -> &EnvConfig {
        &self.config
    }

    /// `(crossing time, gate index)` of every gate passed in this episode, in order (times as
    /// defined in the module docs).
    pub fn gate_crossings(&self) -> &[(f64, usize)] {
        &self.crossings
    }
}
