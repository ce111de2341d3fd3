//! Settings of the racing environment ([`EnvConfig`]) and of the optional box wind
//! ([`WindConfig`]).

use serde::{Deserialize, Serialize};

/// Settings of [`super::RacingEnv`]. `Default` is the AC-MPC training column of
/// `acmpc-reference.md` §2.11 (`train_acmpc_fixed_map.yaml`), not the Python env's own defaults.
///
/// Deserialises from JSON/YAML with every key optional (missing keys take the default) and
/// unknown keys rejected, so a typo is an error rather than a silently ignored setting.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EnvConfig {
    /// Simulation = control step (s); the reference uses 0.02 everywhere (§2.1).
    pub dt: f64,
    /// Episode length limit in steps (timeout, treated as terminal; §2.7). Training 2500,
    /// evaluation 3000.
    pub max_steps: u32,
    /// After the last gate, restart at gate 0 and count a lap (§2.9); `false` ends the episode
    /// (`RaceFinished`) at the last gate.
    pub loop_track_on_finish: bool,
    /// With `loop_track_on_finish`, end the episode (`RaceFinished`) once this many laps are
    /// complete; `None` = unlimited (training). `Some(0)` behaves like `Some(1)` (the reference
    /// rejects 0; see [`EnvConfig::validate`]).
    pub max_laps_per_episode: Option<u32>,
    /// Ground: the episode ends with the collision penalty when `pz ≤ crash_z_min` (m).
    pub crash_z_min: f64,
    /// Shortcut gate pass when `‖p − c‖ ≤ gate_pass_radius` (m; 0 disables it). §2.6 step 5.
    pub gate_pass_radius: f64,
    /// The radius shortcut additionally requires `|(p − c)·n| ≤ gate_thickness`.
    pub gate_pass_radius_requires_plane: bool,
    /// Plane-distance tolerance of the radius shortcut (m), only with
    /// `gate_pass_radius_requires_plane`.
    pub gate_thickness: f64,
    /// Reward of a gate pass.
    pub reward_gate_bonus: f64,
    /// Penalty (subtracted) of a miss or a ground crash.
    pub reward_collision_penalty: f64,
    /// Weight of `‖ω_cmd‖₂` (rad/s) subtracted from the progress reward.
    pub reward_body_rate_coeff: f64,
    /// Edge of the uniform cube of random spawn offsets (m), random spawn only (§2.8).
    pub init_pos_cube: f64,
    /// Distance of the random spawn centre behind the gate plane (m).
    pub spawn_distance: f64,
    /// A random spawn is pushed back so that it is at least this far behind the gate plane (m).
    pub spawn_plane_margin: f64,
    /// A random spawn lower than this is raised to it (m).
    pub min_gate_z: f64,
    /// Spawn at the track's `start_pos` when it has one (deterministic start, §2.8).
    pub use_yaml_start_pos: bool,
    /// Training aid, not in the reference (0 = the reference): with this probability a reset
    /// of a track with a start pose ignores it and spawns in front of a uniformly drawn gate,
    /// exactly as the no-start-pose distribution of §2.8. Every gate then gets practised from
    /// the first update on instead of only after all the gates before it are mastered.
    /// Evaluation always uses the start pose.
    pub random_gate_start_prob: f64,
    /// Optional box wind before gate 0 (§2.10, the `straight_wind` track); `None` = no wind.
    pub wind: Option<WindConfig>,
}

impl Default for EnvConfig {
    fn default() -> Self {
        EnvConfig {
            dt: 0.02,
            max_steps: 2500,
            loop_track_on_finish: true,
            max_laps_per_episode: None,
            crash_z_min: -2.0,
            gate_pass_radius: 0.01,
            gate_pass_radius_requires_plane: false,
            gate_thickness: 0.0,
            reward_gate_bonus: 10.0,
            reward_collision_penalty: 10.0,
            reward_body_rate_coeff: 0.01,
            init_pos_cube: 0.2,
            spawn_distance: 1.0,
            spawn_plane_margin: 0.3,
            min_gate_z: 0.5,
            use_yaml_start_pos: true,
            random_gate_start_prob: 0.0,
            wind: None,
        }
    }
}

/// A setting of [`EnvConfig`] that cannot be simulated.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("environment setting `{key}` {message}")]
pub struct ConfigError {
    /// The offending key (`wind.zone_depth` for nested keys).
    pub key: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl EnvConfig {
    /// Checks that every number is usable: `dt > 0`, all other reals finite, the radius,
    /// thickness, spawn sizes and wind box non-negative, `max_laps_per_episode ≠ Some(0)`.
    ///
    /// [`super::RacingEnv::new`] does not call it (it never fails); front ends should, so that a
    /// bad file is reported instead of simulated.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |key, message: &str| Err(ConfigError { key, message: message.to_string() });
        if !(self.dt.is_finite() && self.dt > 0.0) {
            return err("dt", &format!("must be a positive finite number, got {}", self.dt));
        }
        let finite = [
            ("crash_z_min", self.crash_z_min),
            ("reward_gate_bonus", self.reward_gate_bonus),
            ("reward_collision_penalty", self.reward_collision_penalty),
            ("reward_body_rate_coeff", self.reward_body_rate_coeff),
            ("min_gate_z", self.min_gate_z),
        ];
        for (key, v) in finite {
            if !v.is_finite() {
                return err(key, &format!("must be a finite number, got {v}"));
            }
        }
        let non_negative = [
            ("gate_pass_radius", self.gate_pass_radius),
            ("gate_thickness", self.gate_thickness),
            ("init_pos_cube", self.init_pos_cube),
            ("spawn_distance", self.spawn_distance),
            ("spawn_plane_margin", self.spawn_plane_margin),
        ];
        for (key, v) in non_negative {
            if !(v.is_finite() && v >= 0.0) {
                return err(key, &format!("must be a finite number ≥ 0, got {v}"));
            }
        }
        if !(0.0..=1.0).contains(&self.random_gate_start_prob) {
            return err("random_gate_start_prob", &format!("must be a probability in [0, 1], got {}", self.random_gate_start_prob));
        }
        if self.max_laps_per_episode == Some(0) {
            return err("max_laps_per_episode", "must be at least 1 when set");
        }
        if let Some(w) = &self.wind {
            if !w.accel.iter().all(|a| a.is_finite()) {
                return err("wind.accel", &format!("must be finite, got {:?}", w.accel));
            }
            if !w.pre_gate_margin.is_finite() {
                return err("wind.pre_gate_margin", &format!("must be finite, got {}", w.pre_gate_margin));
            }
            for (key, v) in [("wind.zone_depth", w.zone_depth), ("wind.zone_width", w.zone_width)] {
                if !(v.is_finite() && v >= 0.0) {
                    return err(key, &format!("must be a finite number ≥ 0, got {v}"));
                }
            }
        }
        Ok(())
    }
}

/// Constant world-frame wind acceleration in a box before gate 0 (`straight_wind`, §2.10).
///
/// After each dynamics step the wind is *active* when all hold: the step index (before the
/// step) is `< active_steps`, `‖accel‖ > 1e-8`, and — with `pre_gate_only` — the target is gate
/// 0 and the post-step position `p` has signed plane distance `s = (p − c₀)·n₀` with
/// `pre_gate_margin − zone_depth ≤ s < pre_gate_margin` and lateral offset
/// `|(p − c₀)·r₀| ≤ zone_width/2` (a zero depth or width leaves that side unbounded, as in the
/// reference). Active wind adds `accel·dt` to `v` and `½·accel·dt²` to `p`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WindConfig {
    /// World acceleration `a_w` (m/s²).
    pub accel: [f64; 3],
    /// The wind blows only during the first `active_steps` steps of an episode.
    pub active_steps: u32,
    /// Restrict the wind to the box before gate 0 (and to target = gate 0).
    pub pre_gate_only: bool,
    /// Front face of the box: signed distance from gate 0's plane (m).
    pub pre_gate_margin: f64,
    /// Depth of the box behind its front face (m; 0 = unbounded).
    pub zone_depth: f64,
    /// Width of the box along gate 0's `r` axis (m; 0 = unbounded).
    pub zone_width: f64,
}

impl Default for WindConfig {
    /// The `straight_wind` defaults: `a_w = (0, −5, 0)`, 80 steps, box 3 m deep, 3.5 m wide,
    /// front face on the gate plane.
    fn default() -> Self {
        WindConfig {
            accel: [0.0, -5.0, 0.0],
            active_steps: 80,
            pre_gate_only: true,
            pre_gate_margin: 0.0,
            zone_depth: 3.0,
            zone_width: 3.5,
        }
    }
}
