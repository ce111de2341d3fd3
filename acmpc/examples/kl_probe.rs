//! Diagnostic: how far does the update-path action mean (minibatch forward through the candle
//! graph) sit from the rollout-path mean (`act`, batch = n_envs) for the same inputs?
//! `cargo run --release -p mpc-acmpc --example kl_probe -- <checkpoint dir> [steps]`
use acmpc::evaluate::Agent;
use acmpc::policy::{log_prob, repeat_warm_start};
use candle_core::{Device, Tensor};
use racing::env::VecEnv;
use racing::track::Track;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let agent = Agent::load(std::path::Path::new(&args[1])).map_err(anyhow::Error::msg)?;
    let steps: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(64);
    let cfg = &agent.config;
    let track = Track::resolve(&cfg.track)?;
    let n = cfg.n_envs;
    let mut venv = VecEnv::new(track, cfg.env.clone(), n, 3);
    let nf = acmpc::policy::N_FEATURES;
    let mut warm: Vec<f64> = (0..n).flat_map(|_| [acmpc::mpc_layer::HOVER_THRUST, 0.0, 0.0, 0.0]).collect();
    let (mut f_all, mut s_all, mut w_all, mut m_all) = (vec![], vec![], vec![], vec![]);
    let std = agent.policy.std()?;
    for _ in 0..steps {
        let obs = venv.observations();
        let mut feats = vec![0f32; n * nf];
        for (i, o) in obs.iter().enumerate() {
            feats[i * nf..(i + 1) * nf].copy_from_slice(&agent.features(o));
        }
        let states: Vec<f64> = venv.states().iter().flat_map(|s| s.iter().cloned()).collect();
        let acting = agent.policy.act(&feats, &states, &warm)?;
        let mut actions = vec![];
        for i in 0..n {
            m_all.extend(acting.mean[i].iter().map(|&v| v as f32));
            actions.push(std::array::from_fn(|k| (acting.mean[i][k] + std[k] * 0.5) .clamp(-1.0, 1.0) as f32));
        }
        f_all.extend_from_slice(&feats);
        s_all.extend_from_slice(&states);
        w_all.extend_from_slice(&warm);
        for i in 0..n {
            warm[i * 4..(i + 1) * 4].copy_from_slice(&acting.control[i]);
        }
        venv.step(&actions);
    }
    let total = steps * n;
    let bs = 2048.min(total);
    let mut dev_sig = vec![];
    let mut kls = vec![];
    for c0 in (0..total).step_by(bs) {
        let c1 = (c0 + bs).min(total);
        let b = c1 - c0;
        let f = Tensor::from_slice(&f_all[c0 * nf..c1 * nf], (b, nf), &Device::Cpu)?;
        let out = agent.policy.forward(&f, &s_all[c0 * 10..c1 * 10], &repeat_warm_start(&w_all[c0 * 4..c1 * 4], agent.policy.horizon()))?;
        let mean: Vec<f32> = out.mean.flatten_all()?.to_vec1()?;
        // Actions sampled around the rollout mean with unit noise.
        let acts: Vec<f32> = (0..b * 4).map(|k| m_all[c0 * 4 + k] + std[k % 4] as f32 * 0.7).collect();
        let a = Tensor::from_vec(acts.clone(), (b, 4), &Device::Cpu)?;
        let new_lp: Vec<f32> = log_prob(&out.mean, agent.policy.log_std.as_tensor(), &a)?.to_vec1()?;
        let old_lp: Vec<f32> = log_prob(&Tensor::from_slice(&m_all[c0 * 4..c1 * 4], (b, 4), &Device::Cpu)?, agent.policy.log_std.as_tensor(), &a)?.to_vec1()?;
        let mut kl = 0.0;
        for i in 0..b {
            let lr = (new_lp[i] - old_lp[i]) as f64;
            kl += lr.exp() - 1.0 - lr;
            let d = (0..4).map(|k| ((mean[i * 4 + k] - m_all[(c0 + i) * 4 + k]) as f64 / std[k]).abs()).fold(0.0, f64::max);
            dev_sig.push(d);
        }
        kls.push(kl / b as f64);
    }
    dev_sig.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let q = |p: f64| dev_sig[((dev_sig.len() - 1) as f64 * p) as usize];
    println!("samples {total}; |Δμ|/σ max-over-dims: median {:.2e} p90 {:.2e} p99 {:.2e} p99.9 {:.2e} max {:.2e}", q(0.5), q(0.9), q(0.99), q(0.999), q(1.0));
    println!("count > 0.01σ: {}, > 0.1σ: {}, > 1σ: {}", dev_sig.iter().filter(|&&d| d > 0.01).count(), dev_sig.iter().filter(|&&d| d > 0.1).count(), dev_sig.iter().filter(|&&d| d > 1.0).count());
    println!("approx KL per minibatch: {:?}", kls.iter().map(|k| format!("{k:.2e}")).collect::<Vec<_>>());
    Ok(())
}
