//! Actor-critic networks (candle, CPU, f32): the AC-MPC actor whose last layer is the MPC, the
//! AC-MLP baseline actor, the critic, and the state-independent Gaussian (acmpc-reference.md §4).
//!
//! * AC-MPC actor ("cost map"): Linear(36→H) GELU ×3, Linear(H→28·T), sigmoid; the outputs are
//!   scaled to diag(C_t) and c_t (§4.3–4.4) and fed to [`MpcLayer`]; the action mean is the MPC's
//!   first control in normalised units (§4.6).
//! * AC-MLP actor: Linear(36→H) ReLU, Linear(H→H) ReLU, Linear(H→4) (§4.7).
//! * Critic: Linear(36→H) GELU, Linear(H→H) GELU, Linear(H→1) (ReLU for the MLP policy).
//! * Orthogonal initialisation (gain √2 on hidden layers, 1 on the value head, 0.5 on the last
//!   cost-map layer, 0.01 on the MLP action head), zero biases; log-std a free 4-vector.

use crate::config::{CostMapNet, PolicyKind};
use crate::mpc_layer::{COST_PER_STAGE, MpcLayer, NU, NX, NZ};
use candle_core::{D, DType, Device, Tensor, Var};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use std::collections::HashMap;

/// Observation entries the networks see: 10..46 of the 46-vector (§4.1).
pub const FEATURES: std::ops::Range<usize> = 10..46;
/// Number of network input features.
pub const N_FEATURES: usize = 36;
/// Scale of the diagonal weights, ρ_Q (§4.4).
pub const RHO_Q: f64 = 1e5;
/// Scale of the linear terms, ρ_p.
pub const RHO_P: f64 = 1e5;
/// Scale of the thrust linear term, ρ_f = 1e5 · 0.752 · 9.806.
pub const RHO_F: f64 = 1e5 * 0.752 * 9.806;
/// Floor ε added to weights and to the thrust term.
pub const COST_EPS: f64 = 0.1;

/// Activation of a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// Exact (erf) GELU.
    Gelu,
    /// ReLU.
    Relu,
    /// No activation.
    Identity,
}

/// A dense layer `y = x Wᵀ + b` followed by an activation.
#[derive(Clone, Debug)]
pub struct Dense {
    /// Weight `[out, in]`.
    pub weight: Var,
    /// Bias `[out]`.
    pub bias: Var,
    /// Activation after the affine map.
    pub act: Activation,
}

impl Dense {
    /// Applies the layer to `[B, in]`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = x.matmul(&self.weight.as_tensor().t()?)?.broadcast_add(self.bias.as_tensor())?;
        match self.act {
            Activation::Gelu => crate::gelu::gelu_erf(&y),
            Activation::Relu => y.relu(),
            Activation::Identity => Ok(y),
        }
    }
}

/// A stack of dense layers.
#[derive(Clone, Debug)]
pub struct Mlp {
    /// Layers in order.
    pub layers: Vec<Dense>,
}

impl Mlp {
    /// Applies every layer.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        for l in &self.layers {
            h = l.forward(&h)?;
        }
        Ok(h)
    }

    /// Floating-point operations of the matrix products of one sample (a multiply-add counts
    /// 2): `(forward, backward)`. The backward pass forms every weight gradient and the input
    /// gradient of every layer but the first (the network's input needs none); bias, activation
    /// and optimizer work is not counted.
    pub fn matmul_flops(&self) -> (f64, f64) {
        let mut fwd = 0.0;
        let mut first = 0.0;
        for (i, l) in self.layers.iter().enumerate() {
            let f = 2.0 * l.weight.as_tensor().elem_count() as f64;
            fwd += f;
            if i == 0 {
                first = f;
            }
        }
        (fwd, 2.0 * fwd - first)
    }
}

/// An orthogonal `[rows, cols]` matrix scaled by `gain` (SB3/PyTorch `orthogonal_`): QR of a
/// Gaussian matrix by modified Gram-Schmidt over the shorter side.
pub fn orthogonal(rows: usize, cols: usize, gain: f64, rng: &mut StdRng) -> Vec<f32> {
    let (n, m) = if rows >= cols { (rows, cols) } else { (cols, rows) }; // n ≥ m: m orthonormal n-vectors
    let mut q: Vec<Vec<f64>> = (0..m).map(|_| (0..n).map(|_| rng.sample::<f64, _>(StandardNormal)).collect()).collect();
    for i in 0..m {
        for j in 0..i {
            let d: f64 = q[i].iter().zip(&q[j]).map(|(a, b)| a * b).sum();
            let qj = q[j].clone();
            q[i].iter_mut().zip(&qj).for_each(|(a, b)| *a -= d * b);
        }
        let norm = q[i].iter().map(|a| a * a).sum::<f64>().sqrt().max(1e-300);
        q[i].iter_mut().for_each(|a| *a /= norm);
    }
    let mut w = vec![0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            let v = if rows >= cols { q[c][r] } else { q[r][c] };
            w[r * cols + c] = (gain * v) as f32;
        }
    }
    w
}

/// Named trainable parameters (the checkpoint's tensor names).
#[derive(Clone, Debug, Default)]
pub struct ParamStore {
    /// (name, variable) in creation order.
    pub vars: Vec<(String, Var)>,
}

impl ParamStore {
    fn dense(&mut self, name: &str, inp: usize, out: usize, gain: f64, act: Activation, rng: &mut StdRng) -> candle_core::Result<Dense> {
        let w = Var::from_tensor(&Tensor::from_vec(orthogonal(out, inp, gain, rng), (out, inp), &Device::Cpu)?)?;
        let b = Var::zeros(out, DType::F32, &Device::Cpu)?;
        self.vars.push((format!("{name}.weight"), w.clone()));
        self.vars.push((format!("{name}.bias"), b.clone()));
        Ok(Dense { weight: w, bias: b, act })
    }

    /// All variables.
    pub fn all(&self) -> Vec<Var> {
        self.vars.iter().map(|(_, v)| v.clone()).collect()
    }

    /// Name → tensor map (for safetensors).
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        self.vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect()
    }

    /// Overwrites every variable from `tensors`; every name must be present with its shape.
    pub fn load(&self, tensors: &HashMap<String, Tensor>) -> Result<(), String> {
        for (name, var) in &self.vars {
            let t = tensors.get(name).ok_or_else(|| format!("checkpoint has no tensor `{name}`"))?;
            if t.dims() != var.dims() {
                return Err(format!("tensor `{name}`: checkpoint shape {:?}, network shape {:?}", t.dims(), var.dims()));
            }
            var.set(&t.to_dtype(DType::F32).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Number of scalar parameters.
    pub fn count(&self) -> usize {
        self.vars.iter().map(|(_, v)| v.elem_count()).sum()
    }
}

/// The actor's head.
#[derive(Clone)]
pub enum Actor {
    /// Cost map + MPC layer.
    Mpc {
        /// MLP ending in 28·T outputs (before the sigmoid).
        net: Mlp,
        /// The differentiable MPC.
        mpc: MpcLayer,
        /// Column of the sigmoid output feeding each cost slot (`[T·28]`, stage-major).
        index: Tensor,
        /// Scale of each cost slot (`[1, T·28]`).
        scale: Tensor,
        /// Offset of each cost slot (`[1, T·28]`).
        offset: Tensor,
    },
    /// AC-MLP: the network's output is the action mean.
    Mlp {
        /// MLP ending in 4 outputs.
        net: Mlp,
    },
}

/// What one forward pass of the policy gives.
pub struct PolicyOutput {
    /// Action mean in normalised units `[B, 4]`.
    pub mean: Tensor,
    /// Critic value `[B]`.
    pub value: Tensor,
}

/// Actor, critic and Gaussian log-std.
#[derive(Clone)]
pub struct ActorCritic {
    /// Which policy this is.
    pub kind: PolicyKind,
    /// The actor.
    pub actor: Actor,
    /// The critic (ends in one output).
    pub critic: Mlp,
    /// Log standard deviation `[4]`.
    pub log_std: Var,
    /// Every trainable parameter, named.
    pub params: ParamStore,
}

/// Index, scale and offset that turn the actor's `28·T` sigmoid outputs (grouped by quantity,
/// then stage, §4.3) into per-stage `[diag C_t (14), c_t (14)]` in z order
/// `[p, q, v, f_c, ω]` (§4.4).
pub fn cost_map(horizon: usize) -> (Vec<u32>, Vec<f32>, Vec<f32>) {
    let t = horizon;
    let mut index = Vec::with_capacity(t * COST_PER_STAGE);
    let mut scale = Vec::with_capacity(t * COST_PER_STAGE);
    let mut offset = Vec::with_capacity(t * COST_PER_STAGE);
    for s in 0..t {
        // Diagonal: Q_p [0,3T), Q_q [3T,7T), Q_v [7T,10T), Q_f [13T,14T) (thrust), Q_ω [10T,13T).
        let diag: Vec<usize> = (0..3)
            .map(|k| 3 * s + k)
            .chain((0..4).map(|k| 3 * t + 4 * s + k))
            .chain((0..3).map(|k| 7 * t + 3 * s + k))
            .chain(std::iter::once(13 * t + s))
            .chain((0..3).map(|k| 10 * t + 3 * s + k))
            .collect();
        for &i in &diag {
            index.push(i as u32);
            scale.push(RHO_Q as f32);
            offset.push(COST_EPS as f32);
        }
        // Linear: P_p [14T,17T), P_q [17T,21T), P_v [21T,24T), P_f [27T,28T), P_ω [24T,27T).
        let lin: Vec<(usize, bool)> = (0..3)
            .map(|k| (14 * t + 3 * s + k, false))
            .chain((0..4).map(|k| (17 * t + 4 * s + k, false)))
            .chain((0..3).map(|k| (21 * t + 3 * s + k, false)))
            .chain(std::iter::once((27 * t + s, true)))
            .chain((0..3).map(|k| (24 * t + 3 * s + k, false)))
            .collect();
        for (i, thrust) in lin {
            index.push(i as u32);
            if thrust {
                scale.push(-RHO_F as f32);
                offset.push(-COST_EPS as f32);
            } else {
                scale.push(RHO_P as f32);
                offset.push((-0.5 * RHO_P) as f32);
            }
        }
    }
    debug_assert_eq!(index.len(), t * 2 * NZ);
    (index, scale, offset)
}

/// Normalised action ↔ control: `a = u ⊙ ACTION_SCALE + ACTION_OFFSET` (§4.6).
pub const ACTION_SCALE: [f64; NU] = [1.0 / (0.752 * 35.406166), 0.1, 0.1, 0.25];
/// Offset of the thrust entry (hover = 0).
pub const ACTION_OFFSET: [f64; NU] = [-9.8066 / 35.406166, 0.0, 0.0, 0.0];

impl ActorCritic {
    /// Builds a freshly initialised policy.
    pub fn new(kind: PolicyKind, hidden: usize, mpc: Option<MpcLayer>, log_std_init: f64, seed: u64) -> candle_core::Result<Self> {
        Self::with_cost_map(kind, hidden, mpc, log_std_init, seed, CostMapNet::Gelu3)
    }

    /// [`ActorCritic::new`] with the AC-MPC actor's cost-map network chosen (`Relu2`: the
    /// paper's two ReLU layers; `Gelu3`: the reference code's three GELU layers).
    pub fn with_cost_map(
        kind: PolicyKind,
        hidden: usize,
        mpc: Option<MpcLayer>,
        log_std_init: f64,
        seed: u64,
        cost_map_net: CostMapNet,
    ) -> candle_core::Result<Self> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut ps = ParamStore::default();
        let g = 2f64.sqrt();
        let actor = match kind {
            PolicyKind::Acmpc => {
                let mpc = mpc.ok_or_else(|| candle_core::Error::Msg("AC-MPC policy needs an MPC layer".into()))?;
                let t = mpc.horizon();
                let layers = match cost_map_net {
                    CostMapNet::Gelu3 => vec![
                        ps.dense("actor.0", N_FEATURES, hidden, g, Activation::Gelu, &mut rng)?,
                        ps.dense("actor.1", hidden, hidden, g, Activation::Gelu, &mut rng)?,
                        ps.dense("actor.2", hidden, hidden, g, Activation::Gelu, &mut rng)?,
                        ps.dense("actor.3", hidden, 28 * t, 0.5, Activation::Identity, &mut rng)?,
                    ],
                    CostMapNet::Relu2 => vec![
                        ps.dense("actor.0", N_FEATURES, hidden, g, Activation::Relu, &mut rng)?,
                        ps.dense("actor.1", hidden, hidden, g, Activation::Relu, &mut rng)?,
                        ps.dense("actor.2", hidden, 28 * t, 0.5, Activation::Identity, &mut rng)?,
                    ],
                };
                let net = Mlp { layers };
                let (index, scale, offset) = cost_map(t);
                let n = index.len();
                Actor::Mpc {
                    net,
                    mpc,
                    index: Tensor::from_vec(index, n, &Device::Cpu)?,
                    scale: Tensor::from_vec(scale, (1, n), &Device::Cpu)?,
                    offset: Tensor::from_vec(offset, (1, n), &Device::Cpu)?,
                }
            }
            PolicyKind::Mlp => Actor::Mlp {
                net: Mlp {
                    layers: vec![
                        ps.dense("actor.0", N_FEATURES, hidden, g, Activation::Relu, &mut rng)?,
                        ps.dense("actor.1", hidden, hidden, g, Activation::Relu, &mut rng)?,
                        ps.dense("actor.2", hidden, NU, 0.01, Activation::Identity, &mut rng)?,
                    ],
                },
            },
        };
        let act = if kind == PolicyKind::Mlp { Activation::Relu } else { Activation::Gelu };
        let critic = Mlp {
            layers: vec![
                ps.dense("critic.0", N_FEATURES, hidden, g, act, &mut rng)?,
                ps.dense("critic.1", hidden, hidden, g, act, &mut rng)?,
                ps.dense("critic.2", hidden, 1, 1.0, Activation::Identity, &mut rng)?,
            ],
        };
        let log_std = Var::from_tensor(&Tensor::full(log_std_init as f32, NU, &Device::Cpu)?)?;
        ps.vars.push(("log_std".into(), log_std.clone()));
        Ok(Self { kind, actor, critic, log_std, params: ps })
    }

    /// The MPC cost `[B, T, 28]` the actor predicts for normalised features `[B, 36]`.
    pub fn cost(&self, features: &Tensor) -> candle_core::Result<Tensor> {
        match &self.actor {
            Actor::Mpc { net, mpc, index, scale, offset } => {
                let s = candle_nn::ops::sigmoid(&net.forward(features)?)?;
                let s = s.index_select(index, 1)?;
                let c = s.broadcast_mul(scale)?.broadcast_add(offset)?;
                c.reshape((features.dim(0)?, mpc.horizon(), COST_PER_STAGE))
            }
            Actor::Mlp { .. } => candle_core::bail!("the AC-MLP policy has no MPC cost"),
        }
    }

    /// Forward pass: action mean and value. `states` (B×10, raw) and `u_init` (B×T×4) are used
    /// by the MPC actor only.
    pub fn forward(&self, features: &Tensor, states: &[f64], u_init: &[f64]) -> candle_core::Result<PolicyOutput> {
        let value = self.critic.forward(features)?.squeeze(D::Minus1)?;
        let mean = match &self.actor {
            Actor::Mpc { mpc, .. } => {
                let cost = self.cost(features)?;
                let u0 = mpc.forward(&cost, states, u_init)?;
                control_to_action_tensor(&u0)?
            }
            Actor::Mlp { net } => net.forward(features)?,
        };
        Ok(PolicyOutput { mean, value })
    }

    /// The actor's network (the cost map of AC-MPC, the whole actor of AC-MLP).
    pub fn actor_net(&self) -> &Mlp {
        match &self.actor {
            Actor::Mpc { net, .. } | Actor::Mlp { net } => net,
        }
    }

    /// The critic's value `[B]`.
    pub fn value(&self, features: &Tensor) -> candle_core::Result<Tensor> {
        self.critic.forward(features)?.squeeze(D::Minus1)
    }

    /// The MPC layer's non-finite events since the previous call (all zero for the MLP policy).
    pub fn mpc_health(&self) -> crate::mpc_layer::LayerHealth {
        match &self.actor {
            Actor::Mpc { mpc, .. } => mpc.take_health(),
            Actor::Mlp { .. } => Default::default(),
        }
    }

    /// Wall time spent in the MPC solver since the policy was made (s; 0 for the MLP policy).
    pub fn mpc_seconds(&self) -> f64 {
        match &self.actor {
            Actor::Mpc { mpc, .. } => mpc.solver_seconds(),
            Actor::Mlp { .. } => 0.0,
        }
    }

    /// MPC horizon (0 for the MLP policy).
    pub fn horizon(&self) -> usize {
        match &self.actor {
            Actor::Mpc { mpc, .. } => mpc.horizon(),
            Actor::Mlp { .. } => 0,
        }
    }
}

/// `a = u ⊙ ACTION_SCALE + ACTION_OFFSET` on a `[B, 4]` tensor.
pub fn control_to_action_tensor(u: &Tensor) -> candle_core::Result<Tensor> {
    let dt = u.dtype();
    let s = Tensor::from_vec(ACTION_SCALE.to_vec(), (1, NU), u.device())?.to_dtype(dt)?;
    let o = Tensor::from_vec(ACTION_OFFSET.to_vec(), (1, NU), u.device())?.to_dtype(dt)?;
    u.broadcast_mul(&s)?.broadcast_add(&o)
}

/// Gaussian log-density of `actions` `[B, 4]` under mean `[B, 4]` and `log_std` `[4]`: `[B]`.
pub fn log_prob(mean: &Tensor, log_std: &Tensor, actions: &Tensor) -> candle_core::Result<Tensor> {
    let var2 = (log_std.exp()?.sqr()? * 2.0)?;
    let sq = (actions - mean)?.sqr()?.broadcast_div(&var2)?;
    let half_ln_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
    let per = (sq.neg()?.broadcast_sub(log_std)? - half_ln_2pi)?;
    per.sum(D::Minus1)
}

/// Entropy of the Gaussian (same for every row).
pub fn entropy(log_std: &Tensor) -> candle_core::Result<Tensor> {
    (log_std + (0.5 + 0.5 * (2.0 * std::f64::consts::PI).ln()))?.sum_all()
}

/// Hover warm start repeated over the horizon for `b` problems.
pub fn hover_warm_start(b: usize, horizon: usize) -> Vec<f64> {
    let mut u = vec![0.0; b * horizon * NU];
    for k in 0..b * horizon {
        u[k * NU] = crate::mpc_layer::HOVER_THRUST;
    }
    u
}

/// Each row's control `u0` (B×4) repeated over the horizon.
pub fn repeat_warm_start(u0: &[f64], horizon: usize) -> Vec<f64> {
    let b = u0.len() / NU;
    let mut u = Vec::with_capacity(b * horizon * NU);
    for i in 0..b {
        for _ in 0..horizon {
            u.extend_from_slice(&u0[i * NU..(i + 1) * NU]);
        }
    }
    u
}

const _: () = assert!(NX == 10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orthogonal_rows_or_columns() {
        let mut rng = StdRng::seed_from_u64(1);
        for (r, c) in [(8, 5), (5, 8), (6, 6)] {
            let w = orthogonal(r, c, 2.0, &mut rng);
            let m = r.min(c);
            for i in 0..m {
                for j in 0..m {
                    let d: f64 = if r >= c {
                        (0..r).map(|k| w[k * c + i] as f64 * w[k * c + j] as f64).sum()
                    } else {
                        (0..c).map(|k| w[i * c + k] as f64 * w[j * c + k] as f64).sum()
                    };
                    let want = if i == j { 4.0 } else { 0.0 };
                    assert!((d - want).abs() < 1e-5, "{r}x{c} ({i},{j}) {d}");
                }
            }
        }
    }

    /// The operation count of the Table I networks at T = 2, written out layer by layer:
    /// actor 36→512→512→512→56, critic 36→512→512→1.
    #[test]
    fn matmul_flops_count_every_layer_once_forward_and_twice_backward_but_the_first() {
        let p = ActorCritic::new(PolicyKind::Acmpc, 512, Some(MpcLayer::new(2, 5, mpc_runtime::solver::GradientMode::GaussNewton)), -1.2, 0).unwrap();
        let actor = [36 * 512, 512 * 512, 512 * 512, 512 * 56];
        let critic = [36 * 512, 512 * 512, 512];
        for (net, layers) in [(p.actor_net(), &actor[..]), (&p.critic, &critic[..])] {
            let fwd: usize = layers.iter().map(|m| 2 * m).sum();
            let bwd = 2 * fwd - 2 * layers[0];
            assert_eq!(net.matmul_flops(), (fwd as f64, bwd as f64));
        }
        // Per sample, forward + backward of both networks: 5.04 MFLOP.
        let ((af, ab), (cf, cb)) = (p.actor_net().matmul_flops(), p.critic.matmul_flops());
        assert_eq!(af + ab + cf + cb, 5_041_152.0);
    }

    #[test]
    fn cost_map_follows_the_reference_layout() {
        let t = 2;
        let (index, scale, offset) = cost_map(t);
        // Stage 1, z index 10 (thrust) diagonal comes from Q_f at 13T + 1.
        assert_eq!(index[28 + 10], (13 * t + 1) as u32);
        // Stage 1, ω_x (z 11) diagonal from Q_ω at 10T + 3.
        assert_eq!(index[28 + 11], (10 * t + 3) as u32);
        // Stage 0 linear q_w (z 3) from P_q at 17T.
        assert_eq!(index[14 + 3], (17 * t) as u32);
        assert_eq!((scale[14 + 10], offset[14 + 10]), (-RHO_F as f32, -0.1));
        assert_eq!((scale[14], offset[14]), (1e5, -5e4));
        assert_eq!((scale[0], offset[0]), (1e5, 0.1));
        let mut sorted = index.clone();
        sorted.sort();
        assert_eq!(sorted, (0..28 * t as u32).collect::<Vec<_>>());
    }
}

/// Batched action means and values without gradients (rollouts and evaluation).
pub struct Acting {
    /// Action means in normalised units, B×4.
    pub mean: Vec<[f64; NU]>,
    /// The MPC's first controls (thrust N, rates rad/s), B×4 (the next warm start); for the MLP
    /// policy the controls of the mean action.
    pub control: Vec<[f64; NU]>,
    /// Critic values, B.
    pub value: Vec<f32>,
}

impl ActorCritic {
    /// Means, controls and values for normalised features (B×36), raw states (B×10) and per-row
    /// warm starts (B×4, repeated over the horizon).
    pub fn act(&self, features: &[f32], states: &[f64], warm: &[f64]) -> candle_core::Result<Acting> {
        let b = features.len() / N_FEATURES;
        let f = Tensor::from_slice(features, (b, N_FEATURES), &Device::Cpu)?;
        let value: Vec<f32> = self.value(&f)?.to_vec1()?;
        let (mean, control) = match &self.actor {
            Actor::Mpc { mpc, .. } => {
                let cost: Vec<f64> = self.cost(&f)?.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
                let sol = mpc.solve(&cost, states, &repeat_warm_start(warm, mpc.horizon()))?;
                let t = mpc.horizon();
                let mut mean = Vec::with_capacity(b);
                let mut control = Vec::with_capacity(b);
                for i in 0..b {
                    let u: [f64; NU] = sol.u[i * t * NU..i * t * NU + NU].try_into().expect("NU controls");
                    mean.push(std::array::from_fn(|k| u[k] * ACTION_SCALE[k] + ACTION_OFFSET[k]));
                    control.push(u);
                }
                (mean, control)
            }
            Actor::Mlp { net } => {
                let m: Vec<f32> = net.forward(&f)?.flatten_all()?.to_vec1()?;
                let mean: Vec<[f64; NU]> = (0..b).map(|i| std::array::from_fn(|k| m[i * NU + k] as f64)).collect();
                let control = mean.iter().map(|a| std::array::from_fn(|k| (a[k] - ACTION_OFFSET[k]) / ACTION_SCALE[k])).collect();
                (mean, control)
            }
        };
        Ok(Acting { mean, control, value })
    }

    /// Standard deviations `exp(log_std)`.
    pub fn std(&self) -> candle_core::Result<[f64; NU]> {
        let v: Vec<f32> = self.log_std.as_tensor().exp()?.to_vec1()?;
        Ok(std::array::from_fn(|k| v[k] as f64))
    }
}

impl Dense {
    fn to_dtype(&self, dtype: DType) -> candle_core::Result<Dense> {
        Ok(Dense {
            weight: Var::from_tensor(&self.weight.as_tensor().to_dtype(dtype)?)?,
            bias: Var::from_tensor(&self.bias.as_tensor().to_dtype(dtype)?)?,
            act: self.act,
        })
    }
}

impl Mlp {
    fn to_dtype(&self, dtype: DType) -> candle_core::Result<Mlp> {
        Ok(Mlp { layers: self.layers.iter().map(|l| l.to_dtype(dtype)).collect::<candle_core::Result<_>>()? })
    }
}

impl ActorCritic {
    /// A copy with every parameter and constant in `dtype` (f64 for gradient checks); the
    /// copy's parameters are new variables with the same names.
    pub fn to_dtype(&self, dtype: DType) -> candle_core::Result<ActorCritic> {
        let actor = match &self.actor {
            Actor::Mpc { net, mpc, index, scale, offset } => Actor::Mpc {
                net: net.to_dtype(dtype)?,
                mpc: mpc.clone(),
                index: index.clone(),
                scale: scale.to_dtype(dtype)?,
                offset: offset.to_dtype(dtype)?,
            },
            Actor::Mlp { net } => Actor::Mlp { net: net.to_dtype(dtype)? },
        };
        let critic = self.critic.to_dtype(dtype)?;
        let log_std = Var::from_tensor(&self.log_std.as_tensor().to_dtype(dtype)?)?;
        let mut params = ParamStore::default();
        let mut names = self.params.vars.iter().map(|(n, _)| n.clone());
        let actor_layers = match &actor {
            Actor::Mpc { net, .. } | Actor::Mlp { net } => net.layers.clone(),
        };
        for l in actor_layers.iter().chain(critic.layers.iter()) {
            params.vars.push((names.next().expect("weight name"), l.weight.clone()));
            params.vars.push((names.next().expect("bias name"), l.bias.clone()));
        }
        params.vars.push((names.next().expect("log_std name"), log_std.clone()));
        Ok(ActorCritic { kind: self.kind, actor, critic, log_std, params })
    }
}
