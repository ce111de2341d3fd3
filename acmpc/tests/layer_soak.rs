//! Soak test of the MPC layer's memory in the trainer's pattern (issue 17): hundreds of
//! forward/backward passes and graph-free solves with batch sizes that change every call (some
//! with a non-finite problem in them), after which the live heap (counted by the same allocator
//! wrapper the `mpc` binary installs) is where it was after the warm-up.

use acmpc::heap::{CountingAlloc, live_heap_mib};
use acmpc::mpc_layer::{COST_PER_STAGE, HOVER_THRUST, MpcLayer, NU, NX, NZ};
use candle_core::{DType, Device, Tensor, Var};
use mpc_runtime::GradientMode;

#[global_allocator]
static ALLOC: CountingAlloc<std::alloc::System> = CountingAlloc(std::alloc::System);

const T: usize = 3;
const SIZES: [usize; 8] = [1, 64, 7, 256, 33, 2, 128, 19];

/// One forward/backward of the layer on `b` problems, plus a graph-free solve (rollouts);
/// problem 0 of every fourth call starts at 1e308 (a non-finite solve, masked).
fn round(layer: &MpcLayer, b: usize, k: usize) -> (u64, u64) {
    let mut cost = vec![0.0f64; b * T * COST_PER_STAGE];
    for (i, c) in cost.iter_mut().enumerate() {
        let j = i % COST_PER_STAGE;
        *c = if j < NZ { 1.0 + 0.1 * ((i + k) % 7) as f64 } else { 0.05 * (((i * 3 + k) % 11) as f64 - 5.0) };
    }
    let mut x0 = vec![0.0; b * NX];
    for i in 0..b {
        x0[i * NX + 2] = 1.0 + 0.01 * i as f64;
        x0[i * NX + 3] = 1.0; // unit quaternion
    }
    if k % 4 == 0 {
        x0[0] = 1e308;
    }
    let mut warm = vec![0.0; b * T * NU];
    for s in 0..b * T {
        warm[s * NU] = HOVER_THRUST;
    }
    let var = Var::from_tensor(&Tensor::from_vec(cost.clone(), (b, T, COST_PER_STAGE), &Device::Cpu).unwrap()).unwrap();
    let u0 = layer.forward(var.as_tensor(), &x0, &warm).unwrap();
    let loss = u0.sqr().unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let g = grads.get(var.as_tensor()).unwrap().to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    assert!(g.iter().all(|v| v.is_finite()), "a non-finite gradient reached the optimiser");
    let sol = layer.solve(&cost, &x0, &warm).unwrap();
    assert!(sol.u.iter().all(|v| v.is_finite()));
    let h = layer.take_health();
    (h.non_finite_solves, h.masked_gradients)
}

#[test]
fn live_heap_stays_flat_over_many_varying_calls() {
    let layer = MpcLayer::new(T, 5, GradientMode::GaussNewton);
    let mut non_finite = 0;
    for k in 0..3 * SIZES.len() {
        non_finite += round(&layer, SIZES[k % SIZES.len()], k).0;
    }
    let warm = live_heap_mib().expect("the counting allocator is installed");
    let mut peak = warm;
    let mut masked = 0;
    let rounds = 40 * SIZES.len();
    for k in 0..rounds {
        let (n, m) = round(&layer, SIZES[k % SIZES.len()], k);
        non_finite += n;
        masked += m;
        peak = peak.max(live_heap_mib().unwrap());
    }
    let end = live_heap_mib().unwrap();
    eprintln!("live heap: {warm:.2} MiB after warm-up, {end:.2} MiB after {rounds} more calls (peak {peak:.2}); {non_finite} non-finite solves counted, {masked} gradients masked");
    // Every fourth call has one non-finite problem, solved twice (forward + graph-free solve).
    assert!(non_finite >= (rounds / 4) as u64 * 2, "non-finite solves not counted: {non_finite}");
    assert!(masked >= (rounds / 4) as u64, "masked gradients not counted: {masked}");
    assert!(end - warm < 0.5, "the live heap grew by {:.3} MiB over {rounds} calls", end - warm);
}
