//! Diagnostic: which part of a PPO minibatch step keeps heap memory? Runs each piece many
//! times and prints the live-heap growth per call (all rows read 0 when nothing leaks; before
//! the Adam fix the PPO update row read 13632 bytes = 4 minibatches × 3408).
//! `cargo run --release -p mpc-acmpc --example heap_probe`
use acmpc::config::PolicyKind;
use acmpc::heap::{CountingAlloc, live_heap_mib};
use acmpc::optim::Adam;
use acmpc::policy::ActorCritic;
use candle_core::{Device, Tensor};

#[global_allocator]
static GLOBAL: CountingAlloc<std::alloc::System> = CountingAlloc(std::alloc::System);

fn per_call(name: &str, n: usize, mut f: impl FnMut() -> candle_core::Result<()>) -> candle_core::Result<()> {
    f()?;
    let before = live_heap_mib().unwrap();
    for _ in 0..n {
        f()?;
    }
    let after = live_heap_mib().unwrap();
    println!("{name:<28} {:>10.1} bytes/call", (after - before) * 1024.0 * 1024.0 / n as f64);
    Ok(())
}

fn main() -> candle_core::Result<()> {
    let p = ActorCritic::new(PolicyKind::Mlp, 32, None, -0.8, 0)?;
    let mut opt = Adam::new(p.params.vars.clone(), 1e-4, 1e-5)?;
    let x = Tensor::randn(0f32, 1.0, (64, acmpc::policy::N_FEATURES), &Device::Cpu)?;
    per_call("value forward", 200, || p.value(&x).map(|_| ()))?;
    per_call("value forward+backward", 200, || p.value(&x)?.sum_all()?.backward().map(|_| ()))?;
    let grads = p.value(&x)?.sum_all()?.backward()?;
    per_call("grad_norm", 200, || opt.grad_norm(&grads).map(|_| ()))?;
    per_call("adam step", 200, || opt.step_clipped(&grads, 0.5).map(|_| ()))?;
    per_call("full step", 200, || {
        let g = p.value(&x)?.sum_all()?.backward()?;
        opt.step_clipped(&g, 0.5).map(|_| ())
    })?;
    // A whole PPO update on a synthetic buffer (policy-gradient and value steps).
    let n = 256;
    let mut buf = acmpc::ppo::RolloutBuffer::new(8);
    buf.len = n / 8;
    buf.features = (0..n * acmpc::policy::N_FEATURES).map(|i| ((i * 7919) % 97) as f32 / 97.0 - 0.5).collect();
    buf.states = (0..n).flat_map(|_| [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]).collect();
    buf.warm = (0..n).flat_map(|_| [acmpc::mpc_layer::HOVER_THRUST, 0.0, 0.0, 0.0]).collect();
    buf.actions = (0..n * 4).map(|i| ((i * 31) % 13) as f32 / 13.0 - 0.5).collect();
    buf.log_probs = vec![-2.0; n];
    buf.values = vec![0.0; n];
    buf.rewards = (0..n).map(|i| (i % 5) as f32).collect();
    buf.dones = vec![false; n];
    buf.finish(&[0.0; 8], 0.99, 0.95);
    let cfg = acmpc::config::TrainConfig::build(None, &[]).map_err(candle_core::Error::msg)?.ppo;
    let cfg = acmpc::config::PpoConfig { batch_size: 64, n_epochs: 1, target_kl: None, ..cfg };
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
    per_call("ppo update (4 minibatches)", 50, || acmpc::ppo::update(&p, &mut opt, &buf, &cfg, &mut rng).map(|_| ()))?;
    let feats = Tensor::from_vec(buf.features[..64 * acmpc::policy::N_FEATURES].to_vec(), (64, acmpc::policy::N_FEATURES), &Device::Cpu)?;
    let states = buf.states[..640].to_vec();
    let warm = acmpc::policy::repeat_warm_start(&buf.warm[..256], 2);
    let acts = Tensor::from_vec(buf.actions[..256].to_vec(), (64, 4), &Device::Cpu)?;
    per_call("policy forward", 100, || p.forward(&feats, &states, &warm).map(|_| ()))?;
    per_call("policy forward+backward", 100, || p.forward(&feats, &states, &warm)?.mean.sum_all()?.backward().map(|_| ()))?;
    per_call("log_prob+backward", 100, || {
        let o = p.forward(&feats, &states, &warm)?;
        acmpc::policy::log_prob(&o.mean, p.log_std.as_tensor(), &acts)?.sum_all()?.backward().map(|_| ())
    })?;
    let adv = Tensor::from_vec(buf.advantages[..64].to_vec(), 64, &Device::Cpu)?;
    let old = Tensor::from_vec(buf.log_probs[..64].to_vec(), 64, &Device::Cpu)?;
    let ratio_of = || -> candle_core::Result<Tensor> {
        let o = p.forward(&feats, &states, &warm)?;
        let lp = acmpc::policy::log_prob(&o.mean, p.log_std.as_tensor(), &acts)?;
        (&lp - &old)?.exp()
    };
    per_call("ratio*adv backward", 100, || (ratio_of()? * &adv)?.mean_all()?.backward().map(|_| ()))?;
    per_call("clamp(ratio) backward", 100, || (ratio_of()?.clamp(0.8, 1.2)? * &adv)?.mean_all()?.backward().map(|_| ()))?;
    per_call("minimum backward", 100, || {
        let r = ratio_of()?;
        let s1 = (&r * &adv)?;
        let s2 = (r.clamp(0.8, 1.2)? * &adv)?;
        s1.minimum(&s2)?.mean_all()?.neg()?.backward().map(|_| ())
    })?;
    Ok(())
}
