//! Integration tests of the racing environment (`acmpc-reference.md` §1.7, §2.1–§2.11).

use racing::env::{
    ACC_MAX, EnvConfig, Event, GRAVITY, MASS, NX, OBS_DIM, RATE_MAX, RacingEnv, THRUST_SCALE, VecEnv, WindConfig,
    action_to_control, control_to_action, rotation_matrix,
};
use racing::{Gate, Track};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DT: f64 = 0.02;
const HOVER: [f64; 4] = [0.0; 4];

/// 1 × 1 m gates at `(x, 0, z)` facing +x.
fn straight_track(xs: &[f64], z: f64) -> Track {
    Track {
        id: "test_straight".into(),
        start: None,
        gates: xs.iter().map(|&x| Gate { center: [x, 0.0, z], yaw: 0.0, width: 1.0, height: 1.0 }).collect(),
    }
}

/// Level attitude (q = identity) at `p` with velocity `v`.
fn level(p: [f64; 3], v: [f64; 3]) -> [f64; NX] {
    [p[0], p[1], p[2], 1.0, 0.0, 0.0, 0.0, v[0], v[1], v[2]]
}

fn env_on(track: Track, config: EnvConfig) -> RacingEnv {
    RacingEnv::new(track, config)
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

// ---------------------------------------------------------------- actions

#[test]
fn hover_is_the_zero_action() {
    let u = action_to_control([0.0; 4]);
    assert!(close(u[0], MASS * GRAVITY, 1e-12), "{u:?}");
    assert!(close(u[0], 7.3745632, 1e-9));
    assert_eq!(&u[1..], &[0.0, 0.0, 0.0]);
    let a = control_to_action([MASS * GRAVITY, 0.0, 0.0, 0.0]);
    assert!(a.iter().all(|v| v.abs() < 1e-12), "{a:?}");
}

#[test]
fn action_maps_invert_on_the_reachable_range() {
    // Thrust in the MPC box [0, 34] N, rates within the limits.
    for i in 0..=20 {
        let s = f64::from(i) / 20.0;
        let u = [34.0 * s, 10.0 * (2.0 * s - 1.0), -10.0 * s, 4.0 * (1.0 - 2.0 * s)];
        let back = action_to_control(control_to_action(u));
        for k in 0..4 {
            assert!(close(back[k], u[k], 1e-9), "{u:?} -> {back:?}");
        }
        let a = [-0.276974 + 1.276974 * s, 2.0 * s - 1.0, s, -s];
        let again = control_to_action(action_to_control(a));
        for k in 0..4 {
            assert!(close(again[k], a[k], 1e-6), "{a:?} -> {again:?}");
        }
    }
    // The ends of the thrust range: a = 1 is the maximum thrust, the MPC box bottom is −0.276974.
    assert!(close(action_to_control([1.0, 0.0, 0.0, 0.0])[0], 34.0, 1e-6));
    assert!(close(control_to_action([0.0; 4])[0], -0.276974, 1e-6));
    assert!(close(THRUST_SCALE, 4.0 * 8.5 / MASS - GRAVITY, 1e-6));
    assert!(close(ACC_MAX, 34.0 / MASS, 1e-6));
    assert_eq!(action_to_control([0.0, 1.0, -1.0, 1.0])[1..], [RATE_MAX[0], -RATE_MAX[1], RATE_MAX[2]]);
}

#[test]
fn thrust_is_clamped_and_the_env_clips_actions() {
    assert_eq!(action_to_control([-1.0, 0.0, 0.0, 0.0])[0], 0.0);
    assert_eq!(action_to_control([-0.5, 0.0, 0.0, 0.0])[0], 0.0);
    assert!(close(action_to_control([1.7, 0.0, 0.0, 0.0])[0], ACC_MAX * MASS, 1e-12));
    // The env clips to [-1, 1] before converting: 3 on a rate acts as 1 (10 rad/s, not 30).
    let track = straight_track(&[50.0], 1.0);
    let start = level([0.0, 0.0, 1.0], [0.0; 3]);
    let mut a = env_on(track.clone(), EnvConfig::default());
    let mut b = env_on(track, EnvConfig::default());
    a.reset_to(start, 0);
    b.reset_to(start, 0);
    let ra = a.step([0.5, 3.0, -2.0, 0.0]).reward;
    let rb = b.step([0.5, 1.0, -1.0, 0.0]).reward;
    assert_eq!(a.state(), b.state());
    assert_eq!(ra, rb);
    // Non-finite components count as 0.
    let mut c = env_on(straight_track(&[50.0], 1.0), EnvConfig::default());
    c.reset_to(start, 0);
    c.step([f64::NAN, f64::INFINITY, 0.0, 0.0]);
    assert!(c.state().iter().all(|v| v.is_finite()));
    assert!(close(c.state()[9], 0.0, 1e-9), "NaN thrust must act as hover: {:?}", c.state());
}

// ---------------------------------------------------------------- gates

#[test]
fn passing_through_the_frame_gives_the_bonus_and_advances_the_target() {
    let mut env = env_on(straight_track(&[1.0, 3.0], 1.0), EnvConfig::default());
    env.reset_to(level([0.9, 0.2, 1.1], [10.0, 0.0, 0.0]), 0);
    let out = env.step(HOVER);
    assert_eq!(out.reward, 10.0);
    assert!(!out.done);
    assert_eq!(out.event, Event::GatePassed);
    assert_eq!(env.target_gate(), 1);
    // Crossing at x = 1 halfway through the step: t = 0.5.
    let c = env.gate_crossings();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].1, 0);
    assert!(close(c[0].0, 0.5 * DT, 1e-12), "{c:?}");
    assert_eq!(env.stats().gates_passed, 1);
}

#[test]
fn crossing_the_plane_outside_the_frame_is_a_miss() {
    for y in [0.51, -0.8, 100.0] {
        let mut env = env_on(straight_track(&[1.0, 3.0], 1.0), EnvConfig::default());
        env.reset_to(level([0.9, y, 1.0], [10.0, 0.0, 0.0]), 0);
        let out = env.step(HOVER);
        assert_eq!(out.reward, -10.0, "y = {y}");
        assert!(out.done);
        assert_eq!(out.event, Event::Miss);
        assert_eq!(env.target_gate(), 0);
        assert_eq!(env.stats().end, Some(Event::Miss));
        assert!(env.gate_crossings().is_empty());
    }
    // Above the frame (height 1 around z = 1 → top at 1.5).
    let mut env = env_on(straight_track(&[1.0], 1.0), EnvConfig::default());
    env.reset_to(level([0.9, 0.0, 1.6], [10.0, 0.0, 0.0]), 0);
    assert_eq!(env.step(HOVER).event, Event::Miss);
}

#[test]
fn front_to_back_crossings_are_ignored() {
    let mut env = env_on(straight_track(&[1.0, 3.0], 1.0), EnvConfig::default());
    env.reset_to(level([1.15, 0.0, 1.0], [-10.0, 0.0, 0.0]), 0);
    let out = env.step(HOVER);
    assert!(!out.done);
    assert_eq!(out.event, Event::None);
    assert_eq!(env.target_gate(), 0);
    // Progress toward the centre: 0.15 → 0.05 m.
    assert!(close(out.reward, 0.1, 1e-9), "{}", out.reward);
    // And from outside the frame too: no miss.
    env.reset_to(level([1.1, 5.0, 1.0], [-10.0, 0.0, 0.0]), 0);
    assert!(!env.step(HOVER).done);
}

#[test]
fn ground_is_checked_before_the_gates() {
    // A gate whose frame reaches below the ground limit, crossed inside in the crash step.
    let mut env = env_on(straight_track(&[1.0], -2.0), EnvConfig::default());
    env.reset_to(level([0.9, 0.0, -1.99], [10.0, 0.0, -1.0]), 0);
    let out = env.step(HOVER);
    assert!(env.state()[2] <= -2.0);
    assert_eq!(out.reward, -10.0);
    assert!(out.done);
    assert_eq!(out.event, Event::Ground);
    assert_eq!(env.target_gate(), 0);
    assert!(env.gate_crossings().is_empty());
    assert_eq!(env.stats().end, Some(Event::Ground));
    // Just above the limit nothing happens.
    let mut env = env_on(straight_track(&[10.0], 1.0), EnvConfig::default());
    env.reset_to(level([0.0, 0.0, -1.9], [0.0, 0.0, -1.0]), 0);
    assert!(!env.step(HOVER).done);
}

#[test]
fn the_radius_shortcut_passes_without_a_plane_crossing() {
    let config = EnvConfig { gate_pass_radius: 0.3, ..EnvConfig::default() };
    let mut env = env_on(straight_track(&[1.0, 3.0], 1.0), config);
    // Ends 0.1 m before the plane (no crossing) and within 0.3 m of the centre.
    env.reset_to(level([0.7, 0.0, 1.0], [10.0, 0.0, 0.0]), 0);
    let out = env.step(HOVER);
    assert_eq!(out.event, Event::GatePassed);
    assert_eq!(env.target_gate(), 1);
    assert!(close(env.gate_crossings()[0].0, DT, 1e-12), "no crossing in the step: t = 1");
}

// ---------------------------------------------------------------- reward

#[test]
fn progress_reward_matches_a_hand_computed_step() {
    let gate = [5.0, 1.0, 2.0];
    let track = Track {
        id: "t".into(),
        start: None,
        gates: vec![Gate { center: gate, yaw: 0.3, width: 1.0, height: 1.0 }],
    };
    let mut env = env_on(track, EnvConfig::default());
    let q = {
        let q: [f64; 4] = [0.9, 0.1, -0.2, 0.3];
        let n = q.iter().map(|c| c * c).sum::<f64>().sqrt();
        q.map(|c| c / n)
    };
    let p0 = [1.0, -0.5, 1.5];
    let v = [2.0, 1.5, -0.4];
    env.reset_to([p0[0], p0[1], p0[2], q[0], q[1], q[2], q[3], v[0], v[1], v[2]], 0);
    let action = [0.3, 0.2, -0.5, 0.25];
    let out = env.step(action);
    // Position uses the old velocity: p = p0 + dt·v.
    let p1 = [p0[0] + DT * v[0], p0[1] + DT * v[1], p0[2] + DT * v[2]];
    let s = env.state();
    for k in 0..3 {
        assert!(close(s[k], p1[k], 1e-14), "{s:?}");
    }
    let dist = |p: [f64; 3]| ((gate[0] - p[0]).powi(2) + (gate[1] - p[1]).powi(2) + (gate[2] - p[2]).powi(2)).sqrt();
    let omega: [f64; 3] = [0.2 * 10.0, -0.5 * 10.0, 0.25 * 4.0];
    let omega_norm = (omega[0] * omega[0] + omega[1] * omega[1] + omega[2] * omega[2]).sqrt();
    let expected = dist(p0) - dist(p1) - 0.01 * omega_norm;
    assert!(close(out.reward, expected, 1e-12), "{} vs {expected}", out.reward);
    assert!(close(omega_norm, 30f64.sqrt(), 1e-12));
    assert_eq!(out.event, Event::None);
    assert!(!out.done);
    assert!(close(env.stats().ret, expected, 1e-12));
}

// ---------------------------------------------------------------- observation

fn qmul(a: [f64; 4], b: [f64; 4]) -> [f64; 4] {
    [
        a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3],
        a[0] * b[1] + a[1] * b[0] + a[2] * b[3] - a[3] * b[2],
        a[0] * b[2] - a[1] * b[3] + a[2] * b[0] + a[3] * b[1],
        a[0] * b[3] + a[1] * b[2] - a[2] * b[1] + a[3] * b[0],
    ]
}

#[test]
fn observation_layout_follows_the_paper_mode() {
    let track = Track {
        id: "t".into(),
        start: None,
        gates: vec![
            Gate { center: [2.0, 0.0, 1.0], yaw: 0.0, width: 1.0, height: 2.0 },
            Gate { center: [4.0, 3.0, 1.5], yaw: 1.0, width: 1.5, height: 1.5 },
            Gate { center: [0.0, 5.0, 2.0], yaw: -2.0, width: 1.0, height: 1.0 },
        ],
    };
    let q = {
        let q: [f64; 4] = [0.7, -0.3, 0.5, 0.2];
        let n = q.iter().map(|c| c * c).sum::<f64>().sqrt();
        q.map(|c| c / n)
    };
    let x = [0.5, -1.0, 1.2, q[0], q[1], q[2], q[3], 1.0, -2.0, 0.5];
    let mut env = env_on(track.clone(), EnvConfig::default());
    env.reset_to(x, 2);
    let o = env.observation();
    assert_eq!(o.len(), OBS_DIM);
    assert_eq!(OBS_DIM, 46);
    for i in 0..10 {
        assert_eq!(o[i], x[i] as f32, "state entry {i}");
    }
    assert_eq!(&o[10..13], &[1.0, -2.0, 0.5]);
    // R row-major: column j is the image of e_j, i.e. q ⊗ [0, e_j] ⊗ q*.
    let qc = [q[0], -q[1], -q[2], -q[3]];
    for j in 0..3 {
        let mut e = [0.0; 4];
        e[1 + j] = 1.0;
        let col = qmul(qmul(q, e), qc);
        for i in 0..3 {
            assert!(close(f64::from(o[13 + 3 * i + j]), col[1 + i], 1e-6), "R[{i}][{j}]");
        }
    }
    // R e_z in the §1.3 form.
    let rez = [2.0 * (q[1] * q[3] + q[0] * q[2]), 2.0 * (q[2] * q[3] - q[0] * q[1]), q[0] * q[0] - q[1] * q[1] - q[2] * q[2] + q[3] * q[3]];
    for i in 0..3 {
        assert!(close(f64::from(o[13 + 3 * i + 2]), rez[i], 1e-6));
    }
    // Target gate 2, then gate 0 (wrapping), corners TR, TL, BL, BR minus p.
    for (slot, g) in [(0usize, 2usize), (1, 0)] {
        let corners = track.gates[g].corners();
        for c in 0..4 {
            for k in 0..3 {
                let want = (corners[c][k] - x[k]) as f32;
                assert_eq!(o[22 + 12 * slot + 3 * c + k], want, "slot {slot} corner {c} axis {k}");
            }
        }
    }
    // Gate 0 (yaw 0, r = +y, 1 wide, 2 high): TR = c + (0, 0.5, 1) − p, spelled out.
    assert_eq!(&o[34..37], &[(2.0 - 0.5) as f32, (0.5 + 1.0) as f32, (2.0 - 1.2) as f32]);
    // Without looping the gate after the last one is zero-filled.
    let mut env = env_on(track, EnvConfig { loop_track_on_finish: false, ..EnvConfig::default() });
    env.reset_to(x, 2);
    let o = env.observation();
    assert!(o[22..34].iter().any(|&v| v != 0.0));
    assert!(o[34..46].iter().all(|&v| v == 0.0));
}

#[test]
fn rotation_matrix_is_orthonormal_and_matches_yaw() {
    let r = rotation_matrix([(0.35f64).cos(), 0.0, 0.0, (0.35f64).sin()]);
    // Yaw 0.7 rad about z.
    assert!(close(r[0][0], 0.7f64.cos(), 1e-12) && close(r[1][0], 0.7f64.sin(), 1e-12));
    assert!(close(r[0][1], -(0.7f64.sin()), 1e-12) && close(r[2][2], 1.0, 1e-12));
    let r = rotation_matrix([0.0; 4]);
    assert_eq!(r, [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]);
}

// ---------------------------------------------------------------- laps and termination

/// Flies level at constant velocity (hover thrust, q = identity) until `event` or `max` steps.
fn fly_until(env: &mut RacingEnv, event: Event, max: u32) -> (u32, racing::env::StepOutcome) {
    for _ in 0..max {
        let out = env.step(HOVER);
        if out.event == event {
            return (env.steps(), out);
        }
        assert!(!out.done, "unexpected end {:?} at step {}", out.event, env.steps());
    }
    panic!("no {event:?} within {max} steps");
}

#[test]
fn lap_times_follow_the_interpolated_crossings() {
    let speed = 3.7;
    let xs = [2.0, 4.0, 6.0];
    let config = EnvConfig { max_laps_per_episode: Some(2), ..EnvConfig::default() };
    let mut env = env_on(straight_track(&xs, 1.0), config);
    // Start 0.037 m behind x = 0 (half a step of 0.074 m), so that no step ends within the
    // default 0.01 m pass radius of a gate centre: every pass is a plane crossing.
    let x0 = -0.037;
    env.reset_to(level([x0, 0.0, 1.0], [speed, 0.0, 0.0]), 0);

    // Lap 1 from the start at t = 0 (here already moving): crossings at (x − x0)/speed.
    let (_, out) = fly_until(&mut env, Event::LapFinished, 200);
    assert_eq!(out.reward, 10.0);
    assert!(!out.done);
    assert_eq!(env.laps(), 1);
    assert_eq!(env.target_gate(), 0);
    let c = env.gate_crossings().to_vec();
    assert_eq!(c.iter().map(|e| e.1).collect::<Vec<_>>(), vec![0, 1, 2]);
    for (k, x) in xs.iter().enumerate() {
        let want = (x - x0) / speed;
        assert!(close(c[k].0, want, 1e-9), "gate {k}: {} vs {want}", c[k].0);
    }
    let lap1 = (6.0 - x0) / speed;
    assert_eq!(env.stats().lap_times.len(), 1);
    assert!(close(env.stats().lap_times[0], lap1, 1e-9));
    // The crossing falls inside a step, not on a step boundary (so the interpolation matters).
    assert!((lap1 / DT - (lap1 / DT).round()).abs() > 0.1);

    // Lap 2: teleport 0.463 m before x = 0 at time T = steps·dt, keep flying.
    let teleport_time = env.time();
    env.set_state(level([-0.463, 0.0, 1.0], [speed, 0.0, 0.0]));
    let (_, out) = fly_until(&mut env, Event::RaceFinished, 200);
    assert!(out.done);
    assert_eq!(out.reward, 10.0);
    assert_eq!(env.laps(), 2);
    let c = env.gate_crossings();
    assert_eq!(c.len(), 6);
    for (k, x) in xs.iter().enumerate() {
        let want = teleport_time + (x + 0.463) / speed;
        assert!(close(c[3 + k].0, want, 1e-9), "lap 2 gate {k}: {} vs {want}", c[3 + k].0);
    }
    let lap2 = teleport_time + 6.463 / speed - lap1;
    let stats = env.stats();
    assert_eq!(stats.lap_times.len(), 2);
    assert!(close(stats.lap_times[1], lap2, 1e-9), "{:?}", stats.lap_times);
    assert_eq!(stats.laps, 2);
    assert_eq!(stats.gates_passed, 6);
    assert_eq!(stats.end, Some(Event::RaceFinished));
    assert!(close(stats.max_speed, speed, 1e-6));
    assert_eq!(stats.length, env.steps());
}

#[test]
fn without_looping_the_last_gate_finishes_the_race() {
    let config = EnvConfig { loop_track_on_finish: false, ..EnvConfig::default() };
    let mut env = env_on(straight_track(&[1.0, 2.0], 1.0), config);
    env.reset_to(level([0.0, 0.0, 1.0], [5.0, 0.0, 0.0]), 0);
    let (steps, out) = fly_until(&mut env, Event::RaceFinished, 100);
    assert!(out.done);
    assert_eq!(steps, 20); // x = 2 is reached at the end of step 20
    assert_eq!(env.laps(), 1);
    assert_eq!(env.target_gate(), 2);
    assert!(close(env.stats().lap_times[0], 0.4, 1e-9), "{:?}", env.stats().lap_times);
    assert!(env.observation()[22..].iter().all(|&v| v == 0.0));
}

#[test]
fn timeout_ends_the_episode_at_max_steps() {
    let config = EnvConfig { max_steps: 10, ..EnvConfig::default() };
    let mut env = env_on(straight_track(&[50.0], 1.0), config.clone());
    env.reset_to(level([0.0, 0.0, 1.0], [1.0, 0.0, 0.0]), 0);
    for i in 1..10 {
        let out = env.step(HOVER);
        assert!(!out.done, "step {i}");
        assert_eq!(out.event, Event::None);
    }
    let out = env.step(HOVER);
    assert!(out.done);
    assert_eq!(out.event, Event::Timeout);
    assert!(out.reward > 0.0, "no penalty at timeout: {}", out.reward);
    assert_eq!(env.stats().end, Some(Event::Timeout));
    assert!(close(env.time(), 10.0 * DT, 1e-12));

    // A gate passed in the last step.
    let mut env = env_on(straight_track(&[1.0, 3.0], 1.0), EnvConfig { max_steps: 1, ..config });
    env.reset_to(level([0.9, 0.0, 1.0], [10.0, 0.0, 0.0]), 0);
    let out = env.step(HOVER);
    assert!(out.done);
    assert_eq!(out.event, Event::GatePassedAtTimeout);
    assert_eq!(out.reward, 10.0);
}

// ---------------------------------------------------------------- reset

#[test]
fn zurich_starts_at_the_yaml_pose() {
    let track = Track::builtin("zurich").unwrap();
    let mut env = env_on(track.clone(), EnvConfig::default());
    let psi = (-60.0f64).to_radians();
    let want = [-5.0, 5.0, 1.0, (psi / 2.0).cos(), 0.0, 0.0, (psi / 2.0).sin(), 0.0, 0.0, 0.0];
    for seed in [0, 1, 99] {
        env.reset(&mut StdRng::seed_from_u64(seed));
        let s = env.state();
        for k in 0..NX {
            assert!(close(s[k], want[k], 1e-12), "seed {seed}: {s:?}");
        }
        assert_eq!(env.target_gate(), 0);
        assert_eq!(env.time(), 0.0);
    }
    assert!(close(want[3], 0.8660254037844387, 1e-12) && close(want[6], -0.5, 1e-12));
    // RacingEnv::new already starts there.
    assert_eq!(env_on(track, EnvConfig::default()).state(), env.state());
}

#[test]
fn random_spawn_is_behind_the_gate_plane() {
    let track = Track::builtin("zurich").unwrap();
    let config = EnvConfig { use_yaml_start_pos: false, ..EnvConfig::default() };
    let mut env = env_on(track.clone(), config.clone());
    let mut rng = StdRng::seed_from_u64(3);
    let mut seen = vec![false; track.gates.len()];
    for _ in 0..300 {
        env.reset(&mut rng);
        let k = env.target_gate();
        seen[k] = true;
        let g = &track.gates[k];
        let s = env.state();
        let n = g.normal();
        let d = (s[0] - g.center[0]) * n[0] + (s[1] - g.center[1]) * n[1] + (s[2] - g.center[2]) * n[2];
        assert!(d <= -config.spawn_plane_margin + 1e-12, "gate {k}: plane distance {d}");
        assert!(s[2] >= config.min_gate_z);
        // Within the cube around c − n (before the push-back, which is along n only).
        let lateral = (s[0] - g.center[0]) * g.right()[0] + (s[1] - g.center[1]) * g.right()[1];
        assert!(lateral.abs() <= 0.5 * config.init_pos_cube * 2f64.sqrt() + 1e-12);
        assert!(close(s[3], (g.yaw / 2.0).cos(), 1e-12) && close(s[6], (g.yaw / 2.0).sin(), 1e-12));
        assert_eq!(&s[7..], &[0.0, 0.0, 0.0]);
    }
    assert!(seen.iter().all(|&b| b), "every gate drawn: {seen:?}");
}

#[test]
fn random_gate_starts_mix_the_start_pose_with_gate_spawns() {
    let track = Track::builtin("zurich").unwrap();
    let config = EnvConfig { random_gate_start_prob: 0.5, ..EnvConfig::default() };
    assert!(config.validate().is_ok());
    let mut env = env_on(track.clone(), config.clone());
    let mut rng = StdRng::seed_from_u64(11);
    let (mut at_start, mut per_gate) = (0, vec![0; track.gates.len()]);
    for _ in 0..2000 {
        env.reset(&mut rng);
        let s = env.state();
        if (s[0] + 5.0).abs() < 1e-12 && (s[1] - 5.0).abs() < 1e-12 && (s[2] - 1.0).abs() < 1e-12 {
            assert_eq!(env.target_gate(), 0);
            assert!(!env.stats().partial_first_lap);
            at_start += 1;
        } else {
            let k = env.target_gate();
            per_gate[k] += 1;
            assert_eq!(env.stats().partial_first_lap, k > 0);
            let g = &track.gates[k];
            let d: f64 = (0..3).map(|i| (s[i] - g.center[i]) * g.normal()[i]).sum();
            assert!(d <= -config.spawn_plane_margin + 1e-12, "gate {k}: plane distance {d}");
        }
    }
    // 1000 ± 3σ (σ ≈ 22) at the start pose; each gate 1000/7 ≈ 143 ± 3σ (σ ≈ 11).
    assert!((934..=1066).contains(&at_start), "start pose {at_start} of 2000");
    assert!(per_gate.iter().all(|&c| (105..=181).contains(&c)), "per gate {per_gate:?}");
    // The reference's distribution is untouched at probability 0 (no extra random draw) ...
    let mut a = env_on(track.clone(), EnvConfig::default());
    let mut r = StdRng::seed_from_u64(5);
    a.reset(&mut r);
    assert_eq!(r.random::<u64>(), StdRng::seed_from_u64(5).random::<u64>());
    // ... and a probability outside [0, 1] is a named error.
    let bad = EnvConfig { random_gate_start_prob: 1.5, ..EnvConfig::default() };
    assert!(bad.validate().unwrap_err().to_string().contains("random_gate_start_prob"));
}

#[test]
fn a_partial_first_lap_is_counted_but_not_timed() {
    // Spawned in front of gate 1 of 2: the first completion of the last gate is a lap for the
    // counter, but only the second (gate 0 → gate 1 again) is a lap time.
    let config = EnvConfig { max_laps_per_episode: Some(2), ..EnvConfig::default() };
    let mut env = env_on(straight_track(&[1.0, 2.0], 1.0), config);
    env.reset_to(level([1.5, 0.0, 1.0], [5.0, 0.0, 0.0]), 1);
    assert!(env.stats().partial_first_lap);
    let (_, out) = fly_until(&mut env, Event::LapFinished, 100);
    assert!(!out.done);
    assert_eq!(env.laps(), 1);
    assert!(env.stats().lap_times.is_empty(), "{:?}", env.stats().lap_times);
    // Teleport back before gate 0 and fly the full lap.
    env.set_state(level([0.5, 0.0, 1.0], [5.0, 0.0, 0.0]));
    let (_, out) = fly_until(&mut env, Event::RaceFinished, 100);
    assert!(out.done);
    assert_eq!(env.laps(), 2);
    assert_eq!(env.stats().lap_times.len(), 1);
}

#[test]
fn wind_pushes_inside_the_box_before_gate_zero() {
    let track = Track::builtin("straight_wind").unwrap();
    let config = EnvConfig { wind: Some(WindConfig::default()), ..EnvConfig::default() };
    let mut env = env_on(track.clone(), config);
    let mut rng = StdRng::seed_from_u64(5);
    for _ in 0..20 {
        env.reset(&mut rng);
        assert_eq!(env.target_gate(), 0, "straight_wind spawns before gate 0");
    }
    let y0 = env.state()[1];
    env.step(HOVER);
    let s = env.state();
    assert!(close(s[8], -5.0 * DT, 1e-12), "{s:?}");
    assert!(close(s[1], y0 - 0.5 * 5.0 * DT * DT, 1e-12));
    // Without wind nothing moves sideways.
    let mut calm = env_on(track, EnvConfig::default());
    calm.reset_to(level([2.0, 0.0, 1.0], [0.0; 3]), 0);
    calm.step(HOVER);
    assert_eq!(calm.state()[8], 0.0);
    // Outside the box (3.5 m wide): no wind.
    env.reset_to(level([2.0, 2.0, 1.0], [0.0; 3]), 0);
    env.step(HOVER);
    assert_eq!(env.state()[8], 0.0);
}

#[test]
fn a_track_without_gates_does_not_panic() {
    let track = Track { id: "empty".into(), start: None, gates: vec![] };
    let mut env = env_on(track, EnvConfig::default());
    env.reset(&mut StdRng::seed_from_u64(0));
    let out = env.step([0.1, 0.2, 0.3, 0.4]);
    assert!(!out.done);
    assert!(env.observation()[22..].iter().all(|&v| v == 0.0));
    env.reset_to(level([0.0; 3], [0.0; 3]), 7);
    assert_eq!(env.target_gate(), 0);
}

// ---------------------------------------------------------------- config

#[test]
fn config_defaults_are_the_training_column_and_deserialise_strictly() {
    let c = EnvConfig::default();
    assert_eq!((c.dt, c.max_steps, c.crash_z_min, c.gate_pass_radius), (0.02, 2500, -2.0, 0.01));
    assert_eq!((c.init_pos_cube, c.spawn_distance, c.spawn_plane_margin, c.min_gate_z), (0.2, 1.0, 0.3, 0.5));
    assert!(c.loop_track_on_finish && c.use_yaml_start_pos && c.max_laps_per_episode.is_none() && c.wind.is_none());
    let parsed: EnvConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(parsed, c);
    let parsed: EnvConfig = serde_json::from_str(r#"{"max_steps": 3000, "wind": {}}"#).unwrap();
    assert_eq!(parsed.max_steps, 3000);
    assert_eq!(parsed.wind, Some(WindConfig::default()));
    assert!(serde_json::from_str::<EnvConfig>(r#"{"max_step": 3000}"#).is_err());
    assert!(c.validate().is_ok());
    let bad = EnvConfig { dt: 0.0, ..EnvConfig::default() };
    assert_eq!(bad.validate().unwrap_err().key, "dt");
    let bad = EnvConfig { max_laps_per_episode: Some(0), ..EnvConfig::default() };
    assert_eq!(bad.validate().unwrap_err().key, "max_laps_per_episode");
}

// ---------------------------------------------------------------- VecEnv

fn random_actions(rng: &mut StdRng, n: usize) -> Vec<[f32; 4]> {
    (0..n).map(|_| [rng.random_range(-0.3..0.6), rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0)]).collect()
}

#[test]
fn vec_env_is_reproducible_from_its_seed() {
    let track = Track::builtin("circle").unwrap();
    let mut a = VecEnv::new(track.clone(), EnvConfig::default(), 8, 42);
    let mut b = VecEnv::new(track.clone(), EnvConfig::default(), 8, 42);
    let c = VecEnv::new(track, EnvConfig::default(), 8, 43);
    assert_eq!(a.len(), 8);
    assert_eq!(a.observations(), b.observations());
    assert_ne!(a.observations(), c.observations(), "another seed, other starts");
    // Env i of seed s starts like env i-1 of seed s+1.
    assert_eq!(a.states()[1..], c.states()[..7]);
    let mut rng = StdRng::seed_from_u64(1);
    let mut dones = 0;
    for _ in 0..200 {
        let actions = random_actions(&mut rng, 8);
        let sa = a.step(&actions);
        let sb = b.step(&actions);
        assert_eq!(sa.rewards, sb.rewards);
        assert_eq!(sa.dones, sb.dones);
        assert_eq!(sa.finished, sb.finished);
        dones += sa.dones.iter().filter(|&&d| d).count();
        assert_eq!(a.observations(), b.observations());
    }
    assert!(dones > 0, "random actions should end some episodes");
}

#[test]
fn vec_env_resets_finished_episodes_at_once() {
    let track = Track::builtin("circle").unwrap();
    let seed = 11;
    let n = 4;
    let mut venv = VecEnv::new(track.clone(), EnvConfig::default(), n, seed);
    // The start each env will be reset to after its first episode: the second draw of its RNG.
    let expected: Vec<[f64; NX]> = (0..n)
        .map(|i| {
            let mut env = RacingEnv::new(track.clone(), EnvConfig::default());
            let mut rng = StdRng::seed_from_u64(seed + i as u64);
            env.reset(&mut rng);
            env.reset(&mut rng);
            env.state()
        })
        .collect();
    // Free fall (zero thrust) from ~1.5 m to −2 m takes about 43 steps.
    let fall = vec![[-1.0f32, 0.0, 0.0, 0.0]; n];
    let mut done_at = vec![None; n];
    for step in 1..=60 {
        let before = venv.envs().to_vec();
        let out = venv.step(&fall);
        // The last observation of each ended episode is the one its env had before the reset.
        let ended_envs: Vec<usize> = out.final_observations.iter().map(|(i, _)| *i).collect();
        assert_eq!(ended_envs, (0..n).filter(|&i| out.dones[i]).collect::<Vec<_>>());
        for (i, obs) in &out.final_observations {
            let mut env = before[*i].clone();
            env.step(fall[*i].map(f64::from));
            assert_eq!(&env.observation(), obs);
            assert_ne!(&venv.env(*i).observation(), obs);
        }
        for i in 0..n {
            if out.dones[i] {
                assert!(done_at[i].is_none(), "env {i} ended twice");
                done_at[i] = Some(step);
                assert_eq!(out.events[i], Event::Ground);
                assert_eq!(out.rewards[i], -10.0);
                assert_eq!(venv.states()[i], expected[i], "env {i} is at its next start");
                assert_eq!(venv.env(i).time(), 0.0);
                assert_eq!(venv.env(i).stats().length, 0);
            }
        }
        let ended: Vec<_> = out.finished.iter().map(|s| (s.end, s.length)).collect();
        assert_eq!(ended.len(), out.dones.iter().filter(|&&d| d).count());
        for (end, length) in ended {
            assert_eq!(end, Some(Event::Ground));
            assert_eq!(length, step);
        }
    }
    for (i, d) in done_at.iter().enumerate() {
        let d = d.unwrap_or_else(|| panic!("env {i} never crashed"));
        assert!((40..=46).contains(&d), "env {i} crashed at step {d}");
    }
}

/// Throughput of a 64-env batch (prints, no assertion):
/// `cargo test -p mpc-racing --release --test env -- --ignored --nocapture`.
#[test]
#[ignore]
fn vec_env_throughput() {
    let track = Track::builtin("zurich").unwrap();
    for n in [64usize, 1024] {
        let mut venv = VecEnv::new(track.clone(), EnvConfig::default(), n, 0);
        let mut rng = StdRng::seed_from_u64(0);
        let actions: Vec<Vec<[f32; 4]>> = (0..64).map(|_| random_actions(&mut rng, n)).collect();
        let steps = if n == 64 { 20_000 } else { 1_000 };
        let start = std::time::Instant::now();
        let mut sink = 0.0f32;
        for s in 0..steps {
            let out = venv.step(&actions[s % actions.len()]);
            sink += out.rewards[0];
            sink += venv.observations()[n - 1][0];
        }
        let secs = start.elapsed().as_secs_f64();
        let env_steps = (steps * n) as f64;
        println!(
            "VecEnv n={n}: {steps} batched steps in {secs:.3} s = {:.0} env-steps/s ({:.2} µs per batch step, incl. observations) [{sink}]",
            env_steps / secs,
            1e6 * secs / steps as f64
        );
    }
}
