"""The racing task as Gymnasium environments: Gymnasium's own checker, batch = independent
envs, reproducibility from a seed, crashes (terminated) and timeouts (truncated) with the
ended episode's last observation and statistics."""

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from mpc_rs.gym import RacingEnv, RacingVecEnv, tracks


def test_gymnasium_env_checker_passes():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # The observation space is unbounded by design (velocities, relative gate corners).
        warnings.filterwarnings("ignore", message=r".*Box observation space (minimum|maximum) value is -?infinity")
        check_env(RacingEnv("circle"), skip_render_check=True)
    assert {"zurich", "circle", "splits"} <= set(tracks())


def rollout(env, seed, actions):
    obs, _ = env.reset(seed=seed)
    out = [obs.copy()]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        out.append((obs.copy(), r.copy(), term.copy(), trunc.copy()))
    return out


def test_batch_is_independent_envs_and_reproducible():
    rng = np.random.default_rng(0)
    n, steps = 3, 40
    actions = rng.uniform(-0.3, 0.3, (steps, n, 4)).astype(np.float32)
    venv = RacingVecEnv(n, track="zurich")
    a = rollout(venv, 7, actions)
    b = rollout(venv, 7, actions)
    for x, y in zip(a[1:], b[1:]):
        for u, v in zip(x, y):
            assert np.array_equal(u, v)
    # Env i of the batch is the one-env batch reset with seed 7 + i.
    for i in range(n):
        one = rollout(RacingVecEnv(1, track="zurich"), 7 + i, actions[:, i:i + 1])
        assert np.array_equal(one[0][0], a[0][i])
        for k in range(1, steps + 1):
            assert np.array_equal(one[k][0][0], a[k][0][i]), (i, k)
            assert one[k][1][0] == a[k][1][i], (i, k)
    assert a[0].shape == (n, venv.single_observation_space.shape[0]) and a[0].dtype == np.float32
    assert venv.observation_space.shape == (n, venv.single_observation_space.shape[0])


def test_crash_terminates_with_final_observation_and_statistics():
    n = 4
    venv = RacingVecEnv(n, track="circle")
    obs, _ = venv.reset(seed=11)
    fall = np.tile(np.array([-1.0, 0.0, 0.0, 0.0], dtype=np.float32), (n, 1))
    crashed = np.zeros(n, dtype=bool)
    for _ in range(80):
        prev = obs
        obs, r, term, trunc, info = venv.step(fall)
        assert not trunc.any()
        if term.any():
            assert np.array_equal(info["_final_obs"], term)
            for i in np.flatnonzero(term):
                assert info["event"][i] == "ground" and r[i] == -10.0
                final = info["final_obs"][i]
                assert final.shape == prev[i].shape and not np.array_equal(final, obs[i])
                assert info["final_info"]["end"][i] == "ground"
                assert info["final_info"]["length"][i] >= 40
                assert not crashed[i]
                crashed[i] = True
        if crashed.all():
            break
    assert crashed.all(), "free fall should reach the ground in ~43 steps"


def test_timeout_truncates():
    env = RacingEnv("circle", config={"max_steps": 5})
    env.reset(seed=3)
    hover = np.zeros(4, dtype=np.float32)
    for k in range(5):
        _, _, term, trunc, info = env.step(hover)
        assert not term
        assert trunc == (k == 4), (k, info)
    assert info["episode_stats"]["length"] == 5 and info["event"].endswith("timeout")
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(hover)


def test_bad_settings_are_errors():
    with pytest.raises(ValueError, match="config: "):
        RacingEnv("circle", config={"max_step": 5})
    with pytest.raises(ValueError, match="track: "):
        RacingVecEnv(2, track="no_such_track")
    with pytest.raises(ValueError, match=r"actions: expected shape \(2, 4\)"):
        RacingVecEnv(2)._env.step(np.zeros((3, 4), dtype=np.float32))
