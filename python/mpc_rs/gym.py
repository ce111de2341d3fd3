"""The CA-AC-MPC quadrotor racing task as Gymnasium environments (requires ``gymnasium``).

The Rust environment underneath is the one the project's trainer (``mpc train``) steps: the
paper's quadrotor, reward, gates and laps; tracks by built-in name (``mpc_rs.gym.tracks()``:
zurich, abudhabi, splits, circle, ...) or a track YAML file; settings as a dict of the
environment's config keys (``dt``, ``max_steps``, ``loop_track_on_finish``, ...; unknown keys are
an error).

* ``RacingVecEnv(num_envs, track=..., config=None)``: a ``gymnasium.vector.VectorEnv`` stepped
  in one Rust call (in parallel for large batches), with same-step auto-reset
  (``AutoresetMode.SAME_STEP``: an ended episode's last observation and statistics are in
  ``info["final_obs"]`` and ``info["final_info"]``, masked by ``info["_final_obs"]``).
* ``RacingEnv(track=..., config=None)``: one environment as a ``gymnasium.Env`` (passes
  ``gymnasium.utils.env_checker.check_env``).

Observations are float32 vectors of the paper's layout (velocity, attitude, relative gate
corners of the next gates); actions are normalised float32 in [-1, 1]: collective thrust and the
roll, pitch and yaw body rates. Episodes end on a crash or a missed gate (``terminated``) or at
``max_steps`` (``truncated``). ``info["event"]`` names what happened in the step (``none``,
``gate_passed``, ``lap_finished``, ``miss``, ``ground``, ``timeout``, ...); the statistics of an
ended episode are ``return``, ``length``, ``gates_passed``, ``laps``, ``lap_times``, ``end``,
``max_speed`` (``RacingEnv``: ``info["episode_stats"]`` of the ending step, leaving
``info["episode"]`` to Gymnasium's and SB3's episode recorders).
"""

import json

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from . import _native

__all__ = ["RacingEnv", "RacingVecEnv", "tracks"]


def tracks():
    """Names of the built-in tracks."""
    return list(_native.tracks())


def _native_env(track, num_envs, config):
    text = None if config is None else json.dumps(dict(config))
    return _native.RacingVecEnv(str(track), int(num_envs), 0, text)


def _spaces(obs_dim):
    obs = spaces.Box(-np.inf, np.inf, (obs_dim,), dtype=np.float32)
    act = spaces.Box(-1.0, 1.0, (4,), dtype=np.float32)
    return obs, act


def _seed_from(rng):
    return int(rng.integers(0, 2**63 - 1))


class RacingVecEnv(VectorEnv):
    """``num_envs`` racing environments stepped together; see the module documentation.

    ``reset(seed=s)`` restarts env ``i`` from the seed ``s + i`` (the trainer's convention), so
    a batch is reproducible from one integer; ``reset()`` without a seed draws one from the
    environment's generator.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs=1, track="circle", config=None):
        self._env = _native_env(track, num_envs, config)
        self.num_envs = int(num_envs)
        self.single_observation_space, self.single_action_space = _spaces(self._env.obs_dim)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.track = self._env.track
        self.config = json.loads(self._env.config_json)

    def reset(self, *, seed=None, options=None):
        if isinstance(seed, (list, tuple)):
            if len(seed) != self.num_envs or any(s != seed[0] + i for i, s in enumerate(seed)):
                raise ValueError("seed: an int, or the list [s, s + 1, ..., s + num_envs - 1]")
            seed = seed[0]
        super().reset(seed=seed)
        base = _seed_from(self.np_random) if seed is None else int(seed)
        return self._env.reset(base), {}

    def step(self, actions):
        a = np.asarray(actions, dtype=np.float32).reshape(self.num_envs, 4)
        obs, rewards, terminated, truncated, events, ended = self._env.step(np.ascontiguousarray(a))
        infos = {"event": np.array(events, dtype=object)}
        for i, final_obs, stats in ended:
            infos = self._add_info(infos, {"final_obs": final_obs, "final_info": stats}, i)
        return obs, rewards.astype(np.float64), terminated, truncated, infos

    def states(self):
        """Raw states (num_envs, 10): position, quaternion (w, x, y, z), velocity."""
        return self._env.states()


class RacingEnv(gym.Env):
    """One racing environment; see the module documentation."""

    metadata = {"render_modes": []}

    def __init__(self, track="circle", config=None):
        self._env = _native_env(track, 1, config)
        self.observation_space, self.action_space = _spaces(self._env.obs_dim)
        self.track = self._env.track
        self.config = json.loads(self._env.config_json)
        self._ended = True

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        obs = self._env.reset(_seed_from(self.np_random))
        self._ended = False
        return obs[0], {}

    def step(self, action):
        if self._ended:
            raise RuntimeError("step: the episode has ended; call reset()")
        a = np.asarray(action, dtype=np.float32).reshape(1, 4)
        obs, rewards, terminated, truncated, events, ended = self._env.step(np.ascontiguousarray(a))
        info = {"event": events[0]}
        if ended:
            _, final_obs, stats = ended[0]
            obs = final_obs[None, :]
            info["episode_stats"] = stats
            self._ended = True
        return obs[0], float(rewards[0]), bool(terminated[0]), bool(truncated[0]), info

    def states(self):
        """The raw state (10,): position, quaternion (w, x, y, z), velocity."""
        return self._env.states()[0]
