//! Every backend through the one [`Backend`] trait: the CPU solver, the CUDA kernels under host
//! emulation in each kernel layout (`EmulatedSolver`, the GPU path's launch orchestration
//! without the driver), and the GPU itself when one is present. Each must equal the CPU
//! solver on the shared fixtures (x, u, cost and the gradients to 1e-9 in double, relative to
//! each array's largest entry), and answer bad input with the same typed errors, never a
//! panic.

mod common;

use mpc_cuda::render::KernelLayout;
use mpc_cuda::select::{self, Choice};
use mpc_models::{ModelVisitor, Pendulum};
use mpc_runtime::problem::{ModelParams, Problem};
use mpc_runtime::{Backend, BackendError, BackendKind, Batch, Bound, Model, Solver};

/// Double precision against the CPU (as tests/cuda_host_emulation.rs).
const TOL: f64 = 1e-9;

fn fixture(name: &str) -> Problem {
    let text = std::fs::read_to_string(common::fixture_path(&format!("{name}.problem.json"))).unwrap();
    Problem::parse(&text, &common::model_dims).unwrap()
}

fn model<M: Model>(p: &Problem) -> M {
    let mut m = M::default();
    if let ModelParams::Named(ps) = &p.params {
        for (k, v) in ps {
            m.set_param(k, *v).unwrap();
        }
    }
    m
}

/// The backends this machine can run: the CPU, host emulation in every layout when a C++
/// compiler is there, the GPU (automatic layout) when a driver and a GPU are.
fn backends<M: Model>(m: &M, p: &Problem, capacity: usize) -> Vec<(String, Box<dyn Backend>)> {
    let mut out = Vec::new();
    let mut add = |kind, layout: Option<KernelLayout>| {
        let choice = Choice { kind, layout, reason: String::new() };
        let name = format!("{}{}", kind.name(), layout.map(|l| format!(" {l:?}")).unwrap_or_default());
        match select::build(&choice, m, p.horizon, &p.options, capacity) {
            Ok(b) => out.push((name, b)),
            Err(BackendError::Unavailable(why)) => eprintln!("SKIPPED {name}: {why}"),
            Err(e) => panic!("{name}: {e}"),
        }
    };
    add(BackendKind::Cpu, None);
    if mpc_cuda::host::locate_cxx().is_ok() {
        for layout in [KernelLayout::SingleLaunch, KernelLayout::WarpPerProblem, KernelLayout::ThreeStage] {
            add(BackendKind::HostEmulation, Some(layout));
        }
    } else {
        eprintln!("SKIPPED host emulation: no C++ compiler");
    }
    if mpc_cuda::driver_available().is_ok() {
        add(BackendKind::Cuda, Some(select::layout_for(capacity, &Default::default())));
    }
    out
}

fn max_rel(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1e-300f64, |m, v| m.max(v.abs()));
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max) / scale
}

struct Check<'a>(&'a str);

impl ModelVisitor for Check<'_> {
    type Output = ();
    fn visit<M: Model>(self) {
        let p = fixture(self.0);
        let m: M = model(&p);
        let batch = p.as_batch();
        let (gx, gu) = (p.grad_x.clone().unwrap(), p.grad_u.clone().unwrap());
        let mut cpu = Solver::new(m.clone(), p.horizon, p.options.clone());
        let want = cpu.try_solve(&batch).unwrap();
        let want_g = cpu.try_backward(&batch, &want, &gx, &gu).unwrap();
        let list = backends(&m, &p, p.batch);
        assert!(list.len() >= 4 || mpc_cuda::host::locate_cxx().is_err(), "expected the CPU and three emulated layouts");
        for (name, mut be) in list {
            assert_eq!(be.dims(), (M::NX, M::NU), "{name}");
            assert_eq!(be.horizon(), p.horizon, "{name}");
            let sol = be.try_solve(&batch).unwrap_or_else(|e| panic!("{} {name}: {e}", self.0));
            let g = be.try_backward(&batch, &sol, &gx, &gu).unwrap_or_else(|e| panic!("{} {name}: {e}", self.0));
            let errs = [
                ("x", max_rel(&sol.x, &want.x)),
                ("u", max_rel(&sol.u, &want.u)),
                ("cost", max_rel(&sol.cost, &want.cost)),
                ("grad_C", max_rel(&g.cost_hess, &want_g.cost_hess)),
                ("grad_c", max_rel(&g.cost_lin, &want_g.cost_lin)),
                ("grad_x_init", max_rel(&g.x_init, &want_g.x_init)),
            ];
            let shown: Vec<String> = errs.iter().map(|(w, e)| format!("{w} {e:.1e}")).collect();
            eprintln!("{} {name}: {}", self.0, shown.join(", "));
            for (what, e) in errs {
                assert!(e <= TOL, "{} {name}: {what} differs from the CPU by {e:.2e} (tolerance {TOL:e})", self.0);
            }
            assert_eq!(sol.converged, want.converged, "{} {name}: converged flags", self.0);
        }
    }
}

#[test]
fn every_backend_equals_the_cpu_on_the_fixtures() {
    for (name, model) in [("pendulum_exact", "pendulum"), ("cartpole", "cartpole")] {
        mpc_models::dispatch(model, Check(name)).unwrap();
    }
}

/// Wrong shapes and oversized batches are typed errors naming what is wrong, the same on
/// every backend (the CPU solver's `solve` would panic; `try_solve` does not).
#[test]
fn every_backend_rejects_bad_input_with_typed_errors() {
    let p = fixture("pendulum_exact");
    let m: Pendulum = model(&p);
    let batch = p.as_batch();
    let (gx, gu) = (p.grad_x.clone().unwrap(), p.grad_u.clone().unwrap());
    for (name, mut be) in backends(&m, &p, p.batch) {
        let short = &batch.x_init[..batch.x_init.len() - 1];
        let bad = Batch { x_init: short, ..batch };
        match be.try_solve(&bad) {
            Err(BackendError::Shape(msg)) => assert!(msg.contains("x_init"), "{name}: {msg}"),
            other => panic!("{name}: a short x_init gave {other:?}"),
        }
        let bad = Batch { u_lower: Bound::PerControl(&[0.0, 1.0]), ..batch };
        match be.try_solve(&bad) {
            Err(BackendError::Shape(msg)) => assert!(msg.contains("u_lower"), "{name}: {msg}"),
            other => panic!("{name}: two lower bounds for one control gave {other:?}"),
        }
        let sol = be.try_solve(&batch).unwrap();
        match be.try_backward(&batch, &sol, &gx, &gu[1..]) {
            Err(BackendError::Shape(msg)) => assert!(msg.contains("grad_u"), "{name}: {msg}"),
            other => panic!("{name}: a short grad_u gave {other:?}"),
        }
        if be.kind() != BackendKind::Cpu {
            // Twice the batch: over the capacity the kernels were built for.
            let n = p.batch;
            let x: Vec<f64> = batch.x_init.repeat(2);
            let c: Vec<f64> = batch.cost_hess.repeat(2);
            let l: Vec<f64> = batch.cost_lin.repeat(2);
            let big = Batch { size: 2 * n, x_init: &x, cost_hess: &c, cost_lin: &l, u_init: None, ..batch };
            let big = Batch { u_lower: Bound::None, u_upper: Bound::None, ..big };
            assert_eq!(be.try_solve(&big).unwrap_err(), BackendError::Capacity { batch: 2 * n, capacity: n }, "{name}");
        }
    }
}

/// The automatic choice: `cpu` is always honoured; `auto` without a driver (or for a model
/// without CUDA code) is the CPU with the reason; `cuda` there is an `Unavailable` error.
#[test]
fn the_automatic_choice_says_why() {
    use mpc_cuda::select::{Needs, Preference, choose};
    let c = choose(Preference::Cpu, 8, &Needs::default()).unwrap();
    assert_eq!((c.kind, c.layout), (BackendKind::Cpu, None));
    let linear = Needs { no_cuda_code: Some("the `linear` model has no CUDA kernel".into()), ..Needs::default() };
    let c = choose(Preference::Auto, 8, &linear).unwrap();
    assert_eq!(c.kind, BackendKind::Cpu);
    assert!(c.reason.contains("no CUDA") || c.reason.contains("CUDA driver"), "{}", c.reason);
    assert!(matches!(choose(Preference::Cuda, 8, &linear), Err(BackendError::Unavailable(_))));
    if mpc_cuda::driver_available().is_err() {
        let c = choose(Preference::Auto, 8, &Needs::default()).unwrap();
        assert_eq!(c.kind, BackendKind::Cpu, "{}", c.reason);
        assert!(matches!(choose(Preference::Cuda, 8, &Needs::default()), Err(BackendError::Unavailable(_))));
    }
    // A KKT tolerance is implemented by the single-launch kernel only; a forced layout wins.
    assert_eq!(select::layout_for(100_000, &Needs { kkt_tol: true, ..Needs::default() }), KernelLayout::SingleLaunch);
    let forced = Needs { layout: Some(KernelLayout::ThreeStage), kkt_tol: true, ..Needs::default() };
    assert_eq!(select::layout_for(1, &forced), KernelLayout::ThreeStage);
}
