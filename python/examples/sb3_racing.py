"""PPO from Stable-Baselines3 with the MPC as the actor's last layer, on the racing task: the
CA-AC-MPC pipeline (an SB3 policy whose network predicts the MPC's cost, a differentiable MPC
turning it into the action) with this project's backend for both the environment and the MPC.

    pip install stable-baselines3 torch gymnasium   # and the mpc_rs wheel (scripts/python.sh)
    python python/examples/sb3_racing.py --steps 100000 --seed 0 --out sb3_racing.csv

The actor: observation features (entries 10..46, as the paper) -> MLP -> per stage the diagonal
of C_t and c_t (sigmoid-scaled as the project's trainer, acmpc::policy::cost_map) -> MPC over the
quadrotor model (T = 2, K = 5 iterations, box-bounded thrust and rates) from the drone's true
state -> first control -> normalised action mean. The critic is an MLP on the same features.
Gradients reach the cost map through the MPC's implicit gradients (mpc_rs.torch).

The environment's observation is extended with the raw state (p, q, v), which the MPC needs as
its initial state (the paper's MPC starts from the measured state too).
"""

import argparse
import csv
import time

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv
from torch import nn

from mpc_rs.gym import RacingEnv
from mpc_rs.torch import MPC

NX, NU = 10, 4
OBS = 46
FEATURES = slice(10, 46)
RHO_Q, RHO_P, RHO_F, EPS = 1e5, 1e5, 1e5 * 0.752 * 9.806, 0.1
MASS, G, THRUST_SCALE = 0.752, 9.8066, 35.406166
RATE_MAX = (10.0, 10.0, 4.0)


class WithState(gym.ObservationWrapper):
    """Appends the drone's raw state (10) to the observation (46)."""

    def __init__(self, env):
        super().__init__(env)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS + NX,), dtype=np.float32)

    def observation(self, obs):
        return np.concatenate([obs, self.env.unwrapped.states().astype(np.float32)])


class MpcExtractor(nn.Module):
    """SB3's "mlp_extractor": the actor branch ends in the MPC and returns the action mean."""

    def __init__(self, horizon=2, hidden=256, iterations=5):
        super().__init__()
        self.horizon = horizon
        self.cost_net = nn.Sequential(nn.Linear(36, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                      nn.Linear(hidden, 2 * (NX + NU) * horizon))
        self.critic = nn.Sequential(nn.Linear(36, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU())
        self.mpc = MPC("quadrotor", horizon, max_iter=iterations, eps=1e-12, gradient="gauss-newton")
        self.latent_dim_pi, self.latent_dim_vf = NU, hidden
        thrust = torch.zeros(NX + NU, dtype=torch.bool)
        thrust[NX] = True
        self.register_buffer("thrust", thrust)
        self.register_buffer("rate_max", torch.tensor(RATE_MAX))

    def forward_actor(self, features):
        obs, x0 = features[:, FEATURES], features[:, OBS:OBS + NX].double()
        b, n = obs.shape[0], NX + NU
        s = torch.sigmoid(self.cost_net(obs)).double().view(b, self.horizon, 2, n)
        diag = RHO_Q * s[:, :, 0] + EPS
        lin = torch.where(self.thrust, -RHO_F * s[:, :, 1] - EPS, RHO_P * (s[:, :, 1] - 0.5))
        C = torch.diag_embed(diag)
        # Warm start at hover thrust, no rates (as the project's trainer starts a fresh solve).
        u_init = torch.zeros(b, self.horizon, NU, dtype=torch.float64)
        u_init[:, :, 0] = MASS * G
        _, u = self.mpc(x0, C, lin, u_init=u_init)
        u0 = u[:, 0].float()
        thrust = (u0[:, :1] / MASS - G) / THRUST_SCALE
        return torch.cat([thrust, u0[:, 1:] / self.rate_max], dim=1)

    def forward_critic(self, features):
        return self.critic(features[:, FEATURES])

    def forward(self, features):
        return self.forward_actor(features), self.forward_critic(features)


class MpcPolicy(ActorCriticPolicy):
    def _build_mlp_extractor(self):
        self.mlp_extractor = MpcExtractor(**self.mpc_kwargs)

    def __init__(self, *args, mpc_kwargs=None, **kwargs):
        self.mpc_kwargs = mpc_kwargs or {}
        super().__init__(*args, **kwargs)

    def _build(self, lr_schedule):
        super()._build(lr_schedule)
        # The MPC's first control is the action mean: no linear head after it.
        self.action_net = nn.Identity()
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)


class Log(BaseCallback):
    """Mean episode return and length of each rollout, to a CSV file and stdout."""

    def __init__(self, path):
        super().__init__()
        self.rows, self.path, self.t0 = [], path, time.time()

    def _on_step(self):
        return True

    def _on_rollout_end(self):
        eps = list(self.model.ep_info_buffer)
        if not eps:
            return
        row = {"steps": self.num_timesteps, "episodes": len(eps), "mean_return": float(np.mean([e["r"] for e in eps])),
               "mean_length": float(np.mean([e["l"] for e in eps])), "seconds": round(time.time() - self.t0, 1)}
        self.rows.append(row)
        print(row, flush=True)
        if self.path:
            with open(self.path, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(row))
                w.writeheader()
                w.writerows(self.rows)


def train(steps, envs=8, seed=0, track="circle", out=""):
    """Trains for `steps` env steps; returns the per-rollout log rows."""
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    venv = DummyVecEnv([lambda: Monitor(WithState(RacingEnv(track))) for _ in range(envs)])
    venv.seed(seed)
    model = PPO(MpcPolicy, venv, n_steps=256, batch_size=256, n_epochs=5, learning_rate=3e-4, gamma=0.99,
                seed=seed, policy_kwargs={"log_std_init": -1.0}, verbose=0)
    log = Log(out)
    model.learn(total_timesteps=steps, callback=log)
    return log.rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--envs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--track", default="circle")
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    rows = train(a.steps, a.envs, a.seed, a.track, a.out)
    first, last = rows[0]["mean_return"], rows[-1]["mean_return"]
    print(f"mean episode return: first rollout {first:.2f}, last rollout {last:.2f} "
          f"({'improved' if last > first else 'did not improve'})")


if __name__ == "__main__":
    main()
