//! PPO (clipped surrogate, GAE(λ), value MSE, per-minibatch advantage normalisation, global
//! gradient clipping, early stop on approximate KL), as SB3 1.7 used by CA-AC-MPC (§5).

use crate::config::PpoConfig;
use crate::mpc_layer::NX;
use crate::optim::Adam;
use crate::policy::{ActorCritic, N_FEATURES, entropy, log_prob, repeat_warm_start};
use candle_core::{Device, Tensor};
use rand::Rng;
use rand::seq::SliceRandom;

/// One rollout: `n_steps × n_envs` transitions, step-major (`k = step · n_envs + env`).
#[derive(Clone, Debug, Default)]
pub struct RolloutBuffer {
    /// Environments.
    pub n_envs: usize,
    /// Steps stored so far.
    pub len: usize,
    /// Normalised network features, 36 per transition.
    pub features: Vec<f32>,
    /// Raw MPC initial states, 10 per transition.
    pub states: Vec<f64>,
    /// MPC warm start (first control, 4 per transition) used when the action was sampled.
    pub warm: Vec<f64>,
    /// Sampled (unclipped) actions, 4 per transition.
    pub actions: Vec<f32>,
    /// Log-probabilities of the actions when sampled.
    pub log_probs: Vec<f32>,
    /// Critic values when sampled.
    pub values: Vec<f32>,
    /// Rewards.
    pub rewards: Vec<f32>,
    /// Whether the episode ended with this transition.
    pub dones: Vec<bool>,
    /// GAE advantages (after [`RolloutBuffer::finish`]).
    pub advantages: Vec<f32>,
    /// Value targets (advantages + values).
    pub returns: Vec<f32>,
}

impl RolloutBuffer {
    /// An empty buffer for `n_envs` environments.
    pub fn new(n_envs: usize) -> Self {
        Self { n_envs, ..Default::default() }
    }

    /// Drops the stored transitions (keeps capacity).
    pub fn clear(&mut self) {
        self.len = 0;
        self.states.clear();
        self.warm.clear();
        for v in [&mut self.features, &mut self.actions, &mut self.log_probs, &mut self.values, &mut self.rewards] {
            v.clear();
        }
        self.dones.clear();
        self.advantages.clear();
        self.returns.clear();
    }

    /// Number of transitions.
    pub fn transitions(&self) -> usize {
        self.len * self.n_envs
    }

    /// GAE(λ): `δ = r + γ V' (1 − done) − V`, `A = δ + γ λ (1 − done) A'`, bootstrapped with
    /// `last_values` (the critic on the observations after the last step).
    pub fn finish(&mut self, last_values: &[f32], gamma: f64, lambda: f64) {
        let (n, len) = (self.n_envs, self.len);
        self.advantages = vec![0.0; n * len];
        self.returns = vec![0.0; n * len];
        for e in 0..n {
            let mut adv = 0.0f64;
            for s in (0..len).rev() {
                let k = s * n + e;
                let next_v = if s + 1 < len { self.values[k + n] as f64 } else { last_values[e] as f64 };
                let live = if self.dones[k] { 0.0 } else { 1.0 };
                let delta = self.rewards[k] as f64 + gamma * next_v * live - self.values[k] as f64;
                adv = delta + gamma * lambda * live * adv;
                self.advantages[k] = adv as f32;
                self.returns[k] = (adv + self.values[k] as f64) as f32;
            }
        }
    }
}

/// Averages over one PPO update.
#[derive(Clone, Debug, Default)]
pub struct UpdateStats {
    /// Clipped surrogate loss.
    pub policy_loss: f64,
    /// Value loss (MSE).
    pub value_loss: f64,
    /// Approximate KL `mean((r − 1) − ln r)`.
    pub approx_kl: f64,
    /// Fraction of samples with `|r − 1| > clip`.
    pub clip_fraction: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Explained variance of the values on the rollout.
    pub explained_variance: f64,
    /// Minibatch steps taken.
    pub minibatches: usize,
    /// Critic-only minibatch steps after the KL stop (`critic_after_kl_stop`).
    pub critic_only_minibatches: usize,
    /// Mean value loss over those steps.
    pub value_loss_critic_only: f64,
    /// Whether the KL early stop fired.
    pub stopped_early: bool,
    /// Mean std of the Gaussian after the update.
    pub std: f64,
    /// Floating-point operations of the networks' matrix products in the update (see
    /// [`crate::policy::Mlp::matmul_flops`]; the MPC layer is not counted).
    pub matmul_flop: f64,
    /// Wall time of the whole update (s).
    pub seconds: f64,
    /// Of which in the MPC solver, forward solves and backward passes (s; 0 for AC-MLP).
    pub mpc_seconds: f64,
}

/// The adaptive actor learning-rate rule (`ppo.adaptive_actor_lr`): after an update whose
/// KL stop fired the multiplier halves (down to 1e-3); after an update whose mean KL stayed
/// under `target_kl / 2` it grows by 1.25, up to 1 (Table I's rate). Without a target KL the
/// multiplier is left as it is.
pub fn adapt_actor_lr_scale(scale: f64, st: &UpdateStats, target_kl: Option<f64>) -> f64 {
    let Some(t) = target_kl else { return scale };
    if st.stopped_early {
        (scale * 0.5).max(1e-3)
    } else if st.approx_kl < 0.5 * t {
        (scale * 1.25).min(1.0)
    } else {
        scale
    }
}

fn scalar(t: &Tensor) -> candle_core::Result<f64> {
    t.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()
}

/// Runs `n_epochs` passes of minibatch PPO over `buf`.
pub fn update(policy: &ActorCritic, opt: &mut Adam, buf: &RolloutBuffer, cfg: &PpoConfig, rng: &mut impl Rng) -> candle_core::Result<UpdateStats> {
    let started = std::time::Instant::now();
    let mpc_before = policy.mpc_seconds();
    let total = buf.transitions();
    let horizon = policy.horizon();
    let mut idx: Vec<usize> = (0..total).collect();
    let mut st = UpdateStats::default();
    let (mut n_pg, mut sum_pg, mut sum_v, mut sum_kl, mut sum_clip, mut sum_gn) = (0usize, 0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut actor_stopped, mut n_v, mut sum_v_only) = (false, 0usize, 0.0);
    let ((af, ab), (cf, cb)) = (policy.actor_net().matmul_flops(), policy.critic.matmul_flops());
    'epochs: for _ in 0..cfg.n_epochs {
        idx.shuffle(rng);
        for chunk in idx.chunks(cfg.batch_size) {
            if chunk.len() < 2 {
                continue;
            }
            let b = chunk.len();
            let mut feats = Vec::with_capacity(b * N_FEATURES);
            let mut states = Vec::with_capacity(b * NX);
            let mut warm = Vec::with_capacity(b * 4);
            let mut acts = Vec::with_capacity(b * 4);
            let mut old_lp = Vec::with_capacity(b);
            let mut adv = Vec::with_capacity(b);
            let mut ret = Vec::with_capacity(b);
            for &k in chunk {
                feats.extend_from_slice(&buf.features[k * N_FEATURES..(k + 1) * N_FEATURES]);
                states.extend_from_slice(&buf.states[k * NX..(k + 1) * NX]);
                warm.extend_from_slice(&buf.warm[k * 4..(k + 1) * 4]);
                acts.extend_from_slice(&buf.actions[k * 4..(k + 1) * 4]);
                old_lp.push(buf.log_probs[k]);
                adv.push(buf.advantages[k]);
                ret.push(buf.returns[k]);
            }
            let mean_a = adv.iter().map(|&a| a as f64).sum::<f64>() / b as f64;
            let std_a = (adv.iter().map(|&a| (a as f64 - mean_a).powi(2)).sum::<f64>() / (b as f64 - 1.0)).sqrt();
            for a in adv.iter_mut() {
                *a = ((*a as f64 - mean_a) / (std_a + 1e-8)) as f32;
            }
            let dev = Device::Cpu;
            let features = Tensor::from_vec(feats, (b, N_FEATURES), &dev)?;
            let actions = Tensor::from_vec(acts, (b, 4), &dev)?;
            let old_lp = Tensor::from_vec(old_lp, b, &dev)?;
            let adv = Tensor::from_vec(adv, b, &dev)?;
            let ret = Tensor::from_vec(ret, b, &dev)?;
            if actor_stopped {
                // Critic-only step: the actor (and the MPC) is not evaluated at all.
                let vl = (policy.value(&features)? - &ret)?.sqr()?.mean_all()?;
                let grads = (&vl * cfg.vf_coef)?.backward()?;
                opt.step_clipped(&grads, cfg.max_grad_norm)?;
                st.matmul_flop += b as f64 * (cf + cb);
                n_v += 1;
                sum_v_only += scalar(&vl)?;
                continue;
            }
            let u_init = repeat_warm_start(&warm, horizon);
            let out = policy.forward(&features, &states, &u_init)?;
            st.matmul_flop += b as f64 * (af + cf);
            let lp = log_prob(&out.mean, policy.log_std.as_tensor(), &actions)?;
            let log_ratio = (&lp - &old_lp)?;
            let ratio = log_ratio.exp()?;
            let s1 = (&ratio * &adv)?;
            let s2 = (ratio.clamp(1.0 - cfg.clip_range, 1.0 + cfg.clip_range)? * &adv)?;
            let pg = s1.minimum(&s2)?.mean_all()?.neg()?;
            let vl = (&out.value - &ret)?.sqr()?.mean_all()?;
            let mut loss = (&pg + (&vl * cfg.vf_coef)?)?;
            if cfg.ent_coef != 0.0 {
                loss = (loss - (entropy(policy.log_std.as_tensor())? * cfg.ent_coef)?)?;
            }
            let kl = scalar(&((&ratio - 1.0)? - &log_ratio)?.mean_all()?)?;
            if let Some(t) = cfg.target_kl
                && kl > 1.5 * t
            {
                st.stopped_early = true;
                if !cfg.critic_after_kl_stop {
                    break 'epochs;
                }
                actor_stopped = true;
                continue;
            }
            let clip_frac = scalar(&(&ratio - 1.0)?.abs()?.gt(cfg.clip_range)?.to_dtype(candle_core::DType::F32)?.mean_all()?)?;
            let grads = loss.backward()?;
            st.matmul_flop += b as f64 * (ab + cb);
            let gn = opt.step_clipped(&grads, cfg.max_grad_norm)?;
            n_pg += 1;
            sum_pg += scalar(&pg)?;
            sum_v += scalar(&vl)?;
            sum_kl += kl;
            sum_clip += clip_frac;
            sum_gn += gn;
        }
    }
    let nn = n_pg.max(1) as f64;
    st.policy_loss = sum_pg / nn;
    st.value_loss = sum_v / nn;
    st.approx_kl = sum_kl / nn;
    st.clip_fraction = sum_clip / nn;
    st.grad_norm = sum_gn / nn;
    st.minibatches = n_pg;
    st.critic_only_minibatches = n_v;
    if n_v > 0 {
        st.value_loss_critic_only = sum_v_only / n_v as f64;
    }
    let ret_mean = buf.returns.iter().map(|&r| r as f64).sum::<f64>() / total as f64;
    let var_ret = buf.returns.iter().map(|&r| (r as f64 - ret_mean).powi(2)).sum::<f64>() / total as f64;
    let var_res = buf.returns.iter().zip(&buf.values).map(|(&r, &v)| (r as f64 - v as f64).powi(2)).sum::<f64>() / total as f64
        - (buf.returns.iter().zip(&buf.values).map(|(&r, &v)| r as f64 - v as f64).sum::<f64>() / total as f64).powi(2);
    st.explained_variance = if var_ret > 0.0 { 1.0 - var_res / var_ret } else { f64::NAN };
    st.std = policy.log_std.as_tensor().exp()?.mean_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
    st.seconds = started.elapsed().as_secs_f64();
    st.mpc_seconds = policy.mpc_seconds() - mpc_before;
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PolicyKind, TrainConfig};
    use rand::SeedableRng;

    /// Random transitions whose log-probabilities are those of `policy` (so the first
    /// minibatch's KL is rounding-level).
    fn random_buffer(policy: &ActorCritic, n_envs: usize, len: usize, seed: u64) -> RolloutBuffer {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut b = RolloutBuffer::new(n_envs);
        let t = n_envs * len;
        b.len = len;
        b.features = (0..t * N_FEATURES).map(|_| rng.random_range(-1.0..1.0)).collect();
        b.states = vec![0.0; t * NX];
        b.warm = vec![0.0; t * 4];
        b.actions = (0..t * 4).map(|_| rng.random_range(-0.5..0.5)).collect();
        let acting = policy.act(&b.features, &b.states, &b.warm).unwrap();
        let s = policy.std().unwrap();
        b.log_probs = (0..t)
            .map(|k| {
                (0..4)
                    .map(|i| {
                        let d = (b.actions[k * 4 + i] as f64 - acting.mean[k][i]) / s[i];
                        -0.5 * d * d - s[i].ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
                    })
                    .sum::<f64>() as f32
            })
            .collect();
        b.values = vec![0.0; t];
        b.rewards = (0..t).map(|_| rng.random_range(-1.0..1.0)).collect();
        b.dones = vec![false; t];
        b.finish(&vec![0.0; n_envs], 0.99, 0.95);
        b
    }

    #[test]
    fn actor_rate_halves_after_a_kl_stop_and_recovers_to_table_one() {
        let stop = UpdateStats { stopped_early: true, approx_kl: 0.01, ..Default::default() };
        let quiet = UpdateStats { approx_kl: 0.01, ..Default::default() };
        let busy = UpdateStats { approx_kl: 0.02, ..Default::default() };
        assert_eq!(adapt_actor_lr_scale(1.0, &stop, Some(0.03)), 0.5);
        assert_eq!(adapt_actor_lr_scale(0.5, &busy, Some(0.03)), 0.5);
        assert_eq!(adapt_actor_lr_scale(0.5, &quiet, Some(0.03)), 0.625);
        assert_eq!(adapt_actor_lr_scale(0.9, &quiet, Some(0.03)), 1.0);
        assert_eq!(adapt_actor_lr_scale(1.5e-3, &stop, Some(0.03)), 1e-3);
        assert_eq!(adapt_actor_lr_scale(0.5, &stop, None), 0.5);
    }

    /// A target KL so small that the stop fires right after the first actor step: SB3's rule
    /// ends the update there; `critic_after_kl_stop` trains the critic alone on every remaining
    /// minibatch and leaves the actor exactly where the first step put it.
    #[test]
    fn kl_stop_freezes_the_actor_and_keeps_training_the_critic() {
        let cfg = TrainConfig::build(None, &["policy=mlp".into()]).unwrap();
        assert_eq!(cfg.policy, PolicyKind::Mlp);
        let mut ppo = cfg.ppo.clone();
        ppo.batch_size = 128; // 4 minibatches × 10 epochs
        ppo.target_kl = Some(1e-6); // above the f32 rounding floor of the KL (~1e-8)
        let run = |critic_after: bool| {
            let policy = ActorCritic::new(PolicyKind::Mlp, 32, None, -0.82, 7).unwrap();
            let buf = random_buffer(&policy, 16, 32, 3); // 512 transitions
            let mut opt = Adam::new(policy.params.vars.clone(), 1e-2, 1e-5).unwrap();
            let mut p = ppo.clone();
            p.critic_after_kl_stop = critic_after;
            let mut rng = rand::rngs::StdRng::seed_from_u64(11);
            let st = update(&policy, &mut opt, &buf, &p, &mut rng).unwrap();
            let params = policy.params.tensors();
            let flat = |prefix: &str| -> Vec<f32> {
                let mut names: Vec<_> = params.keys().filter(|k| k.starts_with(prefix)).cloned().collect();
                names.sort();
                names.iter().flat_map(|k| params[k].flatten_all().unwrap().to_vec1::<f32>().unwrap()).collect()
            };
            (st, flat("actor"), flat("critic"))
        };
        let (sb3, actor_sb3, critic_sb3) = run(false);
        let (ours, actor_ours, critic_ours) = run(true);
        assert!(sb3.stopped_early && ours.stopped_early);
        assert_eq!((sb3.minibatches, sb3.critic_only_minibatches), (1, 0));
        // The stop is detected on minibatch 2 (not stepped); the other 38 train the critic.
        assert_eq!((ours.minibatches, ours.critic_only_minibatches), (1, 38));
        assert!(!actor_ours.is_empty() && actor_ours == actor_sb3, "the actor must not move after the KL stop");
        let moved = critic_ours.iter().zip(&critic_sb3).filter(|(a, b)| a != b).count();
        assert!(moved > critic_ours.len() / 2, "critic-only steps changed {moved} of {} critic numbers", critic_ours.len());
        assert!(ours.value_loss_critic_only.is_finite() && ours.value_loss_critic_only < sb3.value_loss, "{} vs {}", ours.value_loss_critic_only, sb3.value_loss);
    }

    #[test]
    fn gae_matches_a_hand_computation() {
        let mut b = RolloutBuffer::new(1);
        b.len = 3;
        b.values = vec![1.0, 2.0, 3.0];
        b.rewards = vec![1.0, 0.0, 2.0];
        b.dones = vec![false, true, false];
        b.finish(&[5.0], 0.9, 0.5);
        // s=2: δ = 2 + 0.9·5 − 3 = 3.5; A = 3.5
        // s=1: done → δ = 0 − 2 = −2; A = −2
        // s=0: δ = 1 + 0.9·2 − 1 = 1.8; A = 1.8 + 0.45·(−2) = 0.9
        let want = [0.9f32, -2.0, 3.5];
        for (a, w) in b.advantages.iter().zip(want) {
            assert!((a - w).abs() < 1e-6, "{a} vs {w}");
        }
        assert!((b.returns[0] - 1.9).abs() < 1e-6);
    }
}
