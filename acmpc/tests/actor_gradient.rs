//! The MPC custom op's backward (implicit gradient) composed with candle's autodiff equals
//! central finite differences through the whole actor: cost net → sigmoid → cost scaling →
//! MPC → action mean, in f64, on a small network, with some controls on their bounds.

use acmpc::config::PolicyKind;
use acmpc::mpc_layer::{MpcLayer, NX};
use acmpc::policy::{ActorCritic, N_FEATURES};
use candle_core::{DType, Device, Tensor};
use mpc_runtime::solver::GradientMode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn states(b: usize, rng: &mut StdRng) -> Vec<f64> {
    let mut x = Vec::new();
    for _ in 0..b {
        let (ax, ay) = (rng.random_range(-0.3..0.3f64), rng.random_range(-0.3..0.3f64));
        let n = (1.0 + ax * ax + ay * ay).sqrt();
        x.extend_from_slice(&[
            rng.random_range(-2.0..2.0),
            rng.random_range(-2.0..2.0),
            rng.random_range(0.5..2.0),
            1.0 / n,
            ax / n,
            ay / n,
            0.0,
            rng.random_range(-3.0..3.0),
            rng.random_range(-3.0..3.0),
            rng.random_range(-1.0..1.0),
        ]);
    }
    x
}

#[test]
fn actor_gradient_matches_finite_differences() {
    let mut rng = StdRng::seed_from_u64(7);
    let b = 4;
    // Converged solves (many iterations), exact implicit gradients: then the implicit
    // derivative is the derivative of the solution map, which finite differences see.
    let mpc = MpcLayer::new(2, 100, GradientMode::Exact);
    let policy = ActorCritic::new(PolicyKind::Acmpc, 16, Some(mpc), -1.2, 3).unwrap().to_dtype(DType::F64).unwrap();
    // Push the thrust to its upper bound on every row (a small thrust weight with a large
    // thrust set point, through the last layer's bias), leaving the rates free.
    if let acmpc::policy::Actor::Mpc { net, .. } = &policy.actor {
        let last = net.layers.last().unwrap();
        let mut bias: Vec<f64> = last.bias.as_tensor().to_vec1().unwrap();
        let t = 2;
        for s in 0..t {
            bias[13 * t + s] = -4.0; // Q_f small
            bias[27 * t + s] = 4.0; // P_f: thrust set point ≈ 400 N
        }
        last.bias.set(&Tensor::from_vec(bias, 28 * t, &Device::Cpu).unwrap()).unwrap();
    }
    let feats: Vec<f64> = (0..b * N_FEATURES).map(|_| rng.random_range(-1.5..1.5)).collect();
    let x0 = states(b, &mut rng);
    assert_eq!(x0.len(), b * NX);
    let warm = acmpc::policy::hover_warm_start(b, 2);
    let f = Tensor::from_vec(feats, (b, N_FEATURES), &Device::Cpu).unwrap();
    let w: Vec<f64> = (0..b * 4).map(|_| rng.random_range(-1.0..1.0)).collect();
    let wt = Tensor::from_vec(w, (b, 4), &Device::Cpu).unwrap();
    let loss_of = |p: &ActorCritic| -> (Tensor, Vec<f64>) {
        let out = p.forward(&f, &x0, &warm).unwrap();
        let mean: Vec<f64> = out.mean.flatten_all().unwrap().to_vec1().unwrap();
        ((out.mean * &wt).unwrap().sum_all().unwrap(), mean)
    };
    let (loss, mean) = loss_of(&policy);
    // Some first controls must sit on a bound and some not, so both branches are exercised.
    let on_bound = mean.iter().filter(|&&a| (a - 1.0).abs() < 1e-6 || (a + 1.0).abs() < 1e-6 || (a + 0.276974).abs() < 1e-5).count();
    eprintln!("means {mean:?}, {on_bound} entries on a bound");
    assert!(on_bound >= b && on_bound < 4 * b, "want active and inactive controls, {on_bound} of {} on a bound", 4 * b);
    let grads = loss.backward().unwrap();
    let mut checked = 0;
    let mut worst: f64 = 0.0;
    for (name, var) in policy.params.vars.iter().filter(|(n, _)| n.starts_with("actor")) {
        let g: Vec<f64> = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let base: Vec<f64> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        for _ in 0..6 {
            let k = rng.random_range(0..base.len());
            let h = 1e-6;
            let eval = |delta: f64| {
                let mut v = base.clone();
                v[k] += delta;
                var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap()).unwrap();
                let l: f64 = loss_of(&policy).0.to_scalar().unwrap();
                l
            };
            let fd = (eval(h) - eval(-h)) / (2.0 * h);
            var.set(&Tensor::from_vec(base.clone(), var.shape(), &Device::Cpu).unwrap()).unwrap();
            let err = (fd - g[k]).abs() / (1e-6 + fd.abs().max(g[k].abs()));
            worst = worst.max(if fd.abs().max(g[k].abs()) < 1e-7 { 0.0 } else { err });
            assert!(
                (fd - g[k]).abs() <= 1e-4 * fd.abs().max(g[k].abs()) + 1e-7,
                "{name}[{k}]: autodiff {} vs finite differences {fd}",
                g[k]
            );
            checked += 1;
        }
    }
    eprintln!("checked {checked} actor parameters, worst relative error {worst:.2e}");
    assert!(checked >= 40);
}
