//! Lowering the body language (Rust expressions) into DAG nodes, and building the discrete map
//! with its exact first and second derivatives.

use crate::diff::{gradient, Differentiator};
use crate::expr::{Binary, Graph, Id, Unary, Var};
use crate::spec::{ModelSpec, TimeKind};
use std::collections::HashMap;
use syn::spanned::Spanned;
use syn::{BinOp, Error, Expr, Lit, Result, UnOp};

const SUPPORTED: &str = "supported: `let` bindings, `+ - * /`, unary `-`, number literals, states, controls, parameters, \
earlier bindings, `std::f64::consts::*`, and the methods sin cos tan asin acos atan atan2 sinh cosh tanh exp ln sqrt abs powi powf hypot min max";

/// Lower `e` given the nodes of the names in scope.
pub fn lower_expr(g: &mut Graph, env: &HashMap<String, Id>, e: &Expr) -> Result<Id> {
    match e {
        Expr::Lit(l) => match &l.lit {
            Lit::Float(f) => Ok(g.constant(f.base10_parse::<f64>()?)),
            Lit::Int(i) => Ok(g.constant(i.base10_parse::<f64>()?)),
            other => Err(Error::new(other.span(), format!("only number literals are allowed; {SUPPORTED}"))),
        },
        Expr::Paren(p) => lower_expr(g, env, &p.expr),
        Expr::Group(p) => lower_expr(g, env, &p.expr),
        Expr::Path(p) => {
            if let Some(id) = p.path.get_ident() {
                return env.get(&id.to_string()).copied().ok_or_else(|| {
                    let mut known: Vec<&String> = env.keys().collect();
                    known.sort();
                    Error::new(
                        id.span(),
                        format!(
                            "unknown name `{id}` (in scope: {})",
                            known.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    )
                });
            }
            let segs: Vec<String> = p.path.segments.iter().map(|s| s.ident.to_string()).collect();
            let last = segs.last().map(String::as_str).unwrap_or("");
            let is_consts = segs.len() >= 2 && segs[segs.len() - 2] == "consts";
            let v = match (is_consts, last) {
                (true, "PI") => Some(std::f64::consts::PI),
                (true, "TAU") => Some(std::f64::consts::TAU),
                (true, "E") => Some(std::f64::consts::E),
                (true, "FRAC_PI_2") => Some(std::f64::consts::FRAC_PI_2),
                (true, "FRAC_PI_4") => Some(std::f64::consts::FRAC_PI_4),
                (true, "SQRT_2") => Some(std::f64::consts::SQRT_2),
                _ => None,
            };
            v.map(|v| g.constant(v)).ok_or_else(|| Error::new(p.span(), format!("unknown path; {SUPPORTED}")))
        }
        Expr::Unary(u) => match u.op {
            UnOp::Neg(_) => {
                let a = lower_expr(g, env, &u.expr)?;
                Ok(g.neg(a))
            }
            _ => Err(Error::new(u.span(), format!("unsupported operator; {SUPPORTED}"))),
        },
        Expr::Binary(b) => {
            let op = match b.op {
                BinOp::Add(_) => Binary::Add,
                BinOp::Sub(_) => Binary::Sub,
                BinOp::Mul(_) => Binary::Mul,
                BinOp::Div(_) => Binary::Div,
                _ => return Err(Error::new(b.op.span(), format!("unsupported operator; {SUPPORTED}"))),
            };
            let l = lower_expr(g, env, &b.left)?;
            let r = lower_expr(g, env, &b.right)?;
            Ok(g.binary(op, l, r))
        }
        Expr::MethodCall(m) => {
            let name = m.method.to_string();
            if m.turbofish.is_some() {
                return Err(Error::new(m.span(), "turbofish is not supported here"));
            }
            let recv = lower_expr(g, env, &m.receiver)?;
            let arity = |n: usize| -> Result<()> {
                if m.args.len() == n {
                    Ok(())
                } else {
                    Err(Error::new(m.span(), format!("`{name}` takes {n} argument{}", if n == 1 { "" } else { "s" })))
                }
            };
            let unary = match name.as_str() {
                "sin" => Some(Unary::Sin),
                "cos" => Some(Unary::Cos),
                "tan" => Some(Unary::Tan),
                "asin" => Some(Unary::Asin),
                "acos" => Some(Unary::Acos),
                "atan" => Some(Unary::Atan),
                "sinh" => Some(Unary::Sinh),
                "cosh" => Some(Unary::Cosh),
                "tanh" => Some(Unary::Tanh),
                "exp" => Some(Unary::Exp),
                "ln" => Some(Unary::Ln),
                "sqrt" => Some(Unary::Sqrt),
                "abs" => Some(Unary::Abs),
                _ => None,
            };
            if let Some(op) = unary {
                arity(0)?;
                return Ok(g.unary(op, recv));
            }
            match name.as_str() {
                "powi" => {
                    arity(1)?;
                    let n = int_literal(&m.args[0])?;
                    Ok(g.powi(recv, n))
                }
                "atan2" | "powf" | "hypot" | "min" | "max" => {
                    arity(1)?;
                    let a = lower_expr(g, env, &m.args[0])?;
                    Ok(match name.as_str() {
                        "atan2" => g.binary(Binary::Atan2, recv, a),
                        "powf" => g.binary(Binary::Powf, recv, a),
                        "hypot" => g.binary(Binary::Hypot, recv, a),
                        "min" => g.min(recv, a),
                        _ => g.max(recv, a),
                    })
                }
                _ => Err(Error::new(m.method.span(), format!("unknown method `{name}`; {SUPPORTED}"))),
            }
        }
        Expr::Call(c) => Err(Error::new(c.span(), format!("function calls are not supported (use method syntax such as `x.sin()`); {SUPPORTED}"))),
        Expr::If(i) => Err(Error::new(
            i.if_token.span,
            format!("`if` is not supported: the dynamics must be differentiable; use `min`, `max` or `abs`. {SUPPORTED}"),
        )),
        Expr::Match(m) => Err(Error::new(m.match_token.span, format!("`match` is not supported; {SUPPORTED}"))),
        Expr::ForLoop(f) => Err(Error::new(f.for_token.span, format!("loops are not supported; {SUPPORTED}"))),
        Expr::While(w) => Err(Error::new(w.while_token.span, format!("loops are not supported; {SUPPORTED}"))),
        Expr::Loop(l) => Err(Error::new(l.loop_token.span, format!("loops are not supported; {SUPPORTED}"))),
        Expr::Block(b) => Err(Error::new(b.span(), format!("blocks are not supported; {SUPPORTED}"))),
        Expr::Macro(m) => Err(Error::new(m.span(), format!("macros are not supported; {SUPPORTED}"))),
        other => Err(Error::new(other.span(), format!("unsupported expression; {SUPPORTED}"))),
    }
}

fn int_literal(e: &Expr) -> Result<i32> {
    match e {
        Expr::Lit(l) => match &l.lit {
            Lit::Int(i) => i.base10_parse::<i32>(),
            _ => Err(Error::new(e.span(), "`powi` takes an integer literal exponent")),
        },
        Expr::Unary(u) if matches!(u.op, UnOp::Neg(_)) => Ok(-int_literal(&u.expr)?),
        Expr::Paren(p) => int_literal(&p.expr),
        _ => Err(Error::new(e.span(), "`powi` takes an integer literal exponent")),
    }
}

/// The body's outputs (the state derivative, or the next state) for the given state and
/// control nodes.
fn lower_body(g: &mut Graph, spec: &ModelSpec, x: &[Id], u: &[Id], p: &[Id]) -> Result<Vec<Id>> {
    let mut env = HashMap::new();
    for (s, &id) in spec.states.iter().zip(x) {
        env.insert(s.to_string(), id);
    }
    for (c, &id) in spec.controls.iter().zip(u) {
        env.insert(c.name.to_string(), id);
    }
    for (q, &id) in spec.params.iter().zip(p) {
        env.insert(q.name.to_string(), id);
    }
    for (name, e) in &spec.lets {
        let id = lower_expr(g, &env, e)?;
        env.insert(name.to_string(), id);
    }
    spec.outputs.iter().map(|e| lower_expr(g, &env, e)).collect()
}

/// The discrete map with its derivatives, all as nodes of one graph.
pub struct Derived {
    /// The DAG holding every expression below.
    pub graph: Graph,
    /// `f(x, u)`, nx entries.
    pub next: Vec<Id>,
    /// `∂f/∂x`, nx×nx row-major.
    pub a: Vec<Id>,
    /// `∂f/∂u`, nx×nu row-major.
    pub b: Vec<Id>,
    /// `Σ_i λ_i ∇²_zz f_i`, n×n row-major (symmetric; the same node on both sides).
    pub h: Vec<Id>,
    /// `∂f/∂θ`, nx×np row-major: the parameter Jacobian of the discrete map (through the
    /// integrator; `dt` is a parameter like the others).
    pub fp: Vec<Id>,
    /// `∂²(λᵀf)/∂z∂θ`, n×np row-major: the co-state–weighted mixed second derivative.
    pub hp: Vec<Id>,
}

impl Derived {
    /// True when every second derivative is identically zero.
    pub fn is_linear(&self) -> bool {
        self.h.iter().all(|&id| self.graph.as_const(id) == Some(0.0))
    }
}

/// Build the discrete map through the integrator, then its Jacobians and weighted Hessian.
pub fn derive(spec: &ModelSpec) -> Result<Derived> {
    let (nx, nu) = (spec.states.len(), spec.controls.len());
    let n = nx + nu;
    let mut g = Graph::new();
    let x: Vec<Id> = (0..nx).map(|i| g.var(Var::State(i))).collect();
    let u: Vec<Id> = (0..nu).map(|i| g.var(Var::Control(i))).collect();
    let p: Vec<Id> = (0..spec.params.len()).map(|i| g.var(Var::Param(i))).collect();
    let next = match spec.time {
        TimeKind::Discrete => lower_body(&mut g, spec, &x, &u, &p)?,
        TimeKind::Euler | TimeKind::Rk4 => {
            let dt = *p.last().expect("continuous models carry a dt parameter");
            let k1 = lower_body(&mut g, spec, &x, &u, &p)?;
            if spec.time == TimeKind::Euler {
                axpy(&mut g, &x, dt, &k1)
            } else {
                let half = g.constant(0.5);
                let h2 = g.mul(half, dt);
                let x2 = axpy(&mut g, &x, h2, &k1);
                let k2 = lower_body(&mut g, spec, &x2, &u, &p)?;
                let x3 = axpy(&mut g, &x, h2, &k2);
                let k3 = lower_body(&mut g, spec, &x3, &u, &p)?;
                let x4 = axpy(&mut g, &x, dt, &k3);
                let k4 = lower_body(&mut g, spec, &x4, &u, &p)?;
                // x + dt/6 (k1 + 2 k2 + 2 k3 + k4)
                let sixth = g.constant(1.0 / 6.0);
                let w = g.mul(dt, sixth);
                let two = g.constant(2.0);
                let mut out = Vec::with_capacity(nx);
                for i in 0..nx {
                    let s23 = g.add(k2[i], k3[i]);
                    let s23 = g.mul(two, s23);
                    let s14 = g.add(k1[i], k4[i]);
                    let s = g.add(s14, s23);
                    let ws = g.mul(w, s);
                    out.push(g.add(x[i], ws));
                }
                out
            }
        }
    };
    let z_vars: Vec<Var> = (0..nx).map(Var::State).chain((0..nu).map(Var::Control)).collect();
    let mut diffs: Vec<Differentiator> = z_vars.iter().map(|&v| Differentiator::new(v)).collect();
    // Jacobian J[i][k] = ∂f_i/∂z_k.
    let mut jac = vec![0; nx * n];
    for i in 0..nx {
        for k in 0..n {
            jac[i * n + k] = diffs[k].diff(&mut g, next[i]);
        }
    }
    let a = (0..nx).flat_map(|i| (0..nx).map(move |k| (i, k))).map(|(i, k)| jac[i * n + k]).collect();
    let b = (0..nx).flat_map(|i| (nx..n).map(move |k| (i, k))).map(|(i, k)| jac[i * n + k]).collect();
    // Weighted gradient w = ∇_z (λᵀ f) by reverse mode, then H_jk = ∂w_j/∂z_k by forward mode.
    let lam: Vec<Id> = (0..nx).map(|i| g.var(Var::Lambda(i))).collect();
    let w = gradient(&mut g, &next, &lam, &z_vars);
    let mut h = vec![0; n * n];
    for j in 0..n {
        for k in j..n {
            let hjk = diffs[k].diff(&mut g, w[j]);
            h[j * n + k] = hjk;
            h[k * n + j] = hjk;
        }
    }
    // Parameter derivatives: ∂f_i/∂θ_k and ∂w_j/∂θ_k (forward mode per parameter).
    let np = spec.params.len();
    let mut pdiffs: Vec<Differentiator> = (0..np).map(|k| Differentiator::new(Var::Param(k))).collect();
    let mut fp = vec![0; nx * np];
    for i in 0..nx {
        for k in 0..np {
            fp[i * np + k] = pdiffs[k].diff(&mut g, next[i]);
        }
    }
    let mut hp = vec![0; n * np];
    for j in 0..n {
        for k in 0..np {
            hp[j * np + k] = pdiffs[k].diff(&mut g, w[j]);
        }
    }
    Ok(Derived { graph: g, next, a, b, h, fp, hp })
}

/// `x + s · k`, entrywise.
fn axpy(g: &mut Graph, x: &[Id], s: Id, k: &[Id]) -> Vec<Id> {
    x.iter()
        .zip(k)
        .map(|(&xi, &ki)| {
            let t = g.mul(s, ki);
            g.add(xi, t)
        })
        .collect()
}
