//! Symbolic differentiation on the DAG: forward mode (memoised per variable) and reverse mode
//! (adjoint accumulation), both built on one table of local partial derivatives ([`chain`]).
//!
//! Conventions at non-smooth points, chosen so derivatives stay finite wherever the function
//! is: `d sqrt(a) = da / (2 sqrt a)` taken as `0` where `a = 0` (so the derivative of a norm is 0
//! at 0, PyTorch's convention), `d|a| = sign(a) da` with `sign(0) = 0`, `min`/`max` follow the
//! argument they select (the first one on a tie), `hypot` and `atan2` use the same `0 at 0` rule.

use crate::expr::{Binary, Graph, Id, Node, Unary, Var};
use std::collections::HashMap;

/// Derivatives of many expressions with respect to one variable, sharing work through a memo.
pub struct Differentiator {
    wrt: Var,
    memo: HashMap<Id, Id>,
}

impl Differentiator {
    /// Differentiate with respect to `wrt`.
    pub fn new(wrt: Var) -> Self {
        Self { wrt, memo: HashMap::new() }
    }

    /// `d e / d wrt` as a node of the same graph.
    pub fn diff(&mut self, g: &mut Graph, e: Id) -> Id {
        // Iterative post-order to avoid deep recursion on long expression chains.
        let mut stack = vec![(e, false)];
        while let Some((id, ready)) = stack.pop() {
            if self.memo.contains_key(&id) {
                continue;
            }
            let children = children(g.node(id));
            if !ready {
                stack.push((id, true));
                for c in children.into_iter().flatten() {
                    if !self.memo.contains_key(&c) {
                        stack.push((c, false));
                    }
                }
                continue;
            }
            let d = self.rule(g, id);
            self.memo.insert(id, d);
        }
        self.memo[&e]
    }

    /// Forward rule: `d node = Σ_slot ∂node/∂operand · d operand`, with the local partials of
    /// [`chain`] (shared with reverse mode, so both modes follow one set of rules).
    fn rule(&mut self, g: &mut Graph, id: Id) -> Id {
        let node = g.node(id);
        match node {
            Node::Const(_) => g.constant(0.0),
            Node::Var(v) => g.constant(if v == self.wrt { 1.0 } else { 0.0 }),
            // A selection of derivatives is smaller than a sum of masked products.
            Node::IfLe(a, b, t, e) => {
                let (dt, de) = (self.memo[&t], self.memo[&e]);
                g.if_le(a, b, dt, de)
            }
            _ => {
                let mut sum = g.constant(0.0);
                for (slot, c) in children(node).into_iter().enumerate() {
                    let Some(c) = c else { continue };
                    let dc = self.memo[&c];
                    if g.as_const(dc) == Some(0.0) {
                        continue;
                    }
                    if let Some(term) = chain(g, id, node, slot, dc) {
                        sum = g.add(sum, term);
                    }
                }
                sum
            }
        }
    }
}

/// Reverse mode: the gradient of `Σ_i seeds_i · outputs_i` with respect to each of `wrt`,
/// by accumulating adjoints over the DAG in reverse topological order. One sweep costs a small
/// multiple of the expressions' size, however many variables there are, and the results are
/// compact expressions; differentiating them again in forward mode gives Hessians far smaller
/// than differentiating forward-mode Jacobians twice.
pub fn gradient(g: &mut Graph, outputs: &[Id], seeds: &[Id], wrt: &[Var]) -> Vec<Id> {
    let top = outputs.iter().copied().max().map_or(0, |m| m + 1);
    let mut adj: Vec<Option<Id>> = vec![None; top];
    for (&o, &s) in outputs.iter().zip(seeds) {
        adj[o] = Some(match adj[o] {
            Some(a) => g.add(a, s),
            None => s,
        });
    }
    // Ids are topologically ordered (operands first), so a descending sweep is a reverse sweep.
    for id in (0..top).rev() {
        let Some(a) = adj[id] else { continue };
        if g.as_const(a) == Some(0.0) {
            continue;
        }
        let node = g.node(id);
        let kids = children(node);
        for (slot, c) in kids.into_iter().enumerate() {
            let Some(c) = c else { continue };
            if matches!(g.node(c), Node::Const(_)) {
                continue;
            }
            let Some(contrib) = chain(g, id, node, slot, a) else { continue };
            adj[c] = Some(match adj[c] {
                Some(prev) => g.add(prev, contrib),
                None => contrib,
            });
        }
    }
    let zero = g.constant(0.0);
    wrt.iter()
        .map(|&v| {
            let id = g.var(v);
            adj.get(id).copied().flatten().unwrap_or(zero)
        })
        .collect()
}

/// `a · ∂node/∂operand[slot]` (the chain rule's local step, for both modes), or `None` where
/// the operand carries no derivative.
fn chain(g: &mut Graph, id: Id, node: Node, slot: usize, a: Id) -> Option<Id> {
    let one = g.constant(1.0);
    Some(match node {
        Node::Const(_) | Node::Var(_) => return None,
        Node::Unary(op, x) => match op {
            Unary::Neg => g.neg(a),
            Unary::Sin => {
                let c = g.unary(Unary::Cos, x);
                g.mul(a, c)
            }
            Unary::Cos => {
                let s = g.unary(Unary::Sin, x);
                let m = g.mul(a, s);
                g.neg(m)
            }
            Unary::Tan => {
                let t2 = g.powi(id, 2);
                let f = g.add(one, t2);
                g.mul(a, f)
            }
            Unary::Asin | Unary::Acos => {
                let x2 = g.powi(x, 2);
                let r = g.sub(one, x2);
                let s = g.unary(Unary::Sqrt, r);
                let q = g.div(a, s);
                if op == Unary::Asin { q } else { g.neg(q) }
            }
            Unary::Atan => {
                let x2 = g.powi(x, 2);
                let r = g.add(one, x2);
                let ir = g.recip(r);
                g.mul(a, ir)
            }
            Unary::Sinh => {
                let c = g.unary(Unary::Cosh, x);
                g.mul(a, c)
            }
            Unary::Cosh => {
                let s = g.unary(Unary::Sinh, x);
                g.mul(a, s)
            }
            Unary::Tanh => {
                let t2 = g.powi(id, 2);
                let f = g.sub(one, t2);
                g.mul(a, f)
            }
            Unary::Exp => g.mul(a, id),
            Unary::Ln => {
                let r = g.recip(x);
                g.mul(a, r)
            }
            Unary::Sqrt => {
                let two = g.constant(2.0);
                let den = g.mul(two, id);
                let r = g.recip_nz(den);
                g.mul(a, r)
            }
            Unary::Abs => {
                let s = g.unary(Unary::Sign, x);
                g.mul(a, s)
            }
            Unary::Sign => return None,
        },
        Node::Binary(op, x, y) => {
            // With x == y (e.g. x·x) both slots contribute, which is what the sum rule wants.
            match (op, slot) {
                (Binary::Add, _) => a,
                (Binary::Sub, 0) => a,
                (Binary::Sub, _) => g.neg(a),
                (Binary::Mul, 0) => g.mul(a, y),
                (Binary::Mul, _) => g.mul(a, x),
                // ∂(x/y)/∂x = 1/y, ∂(x/y)/∂y = -(x/y)/y: one reciprocal of y shared by every
                // direction (and every quotient by y), then products; a division per derivative
                // entry dominated the Jacobians of models that normalise (a quaternion's norm).
                (Binary::Div, 0) => {
                    let r = g.recip(y);
                    g.mul(a, r)
                }
                (Binary::Div, _) => {
                    let r = g.recip(y);
                    let q = g.mul(id, r);
                    let p = g.mul(a, q);
                    g.neg(p)
                }
                (Binary::DivNz, 0) => {
                    let r = g.recip_nz(y);
                    g.mul(a, r)
                }
                (Binary::DivNz, _) => {
                    let r = g.recip_nz(y);
                    let q = g.mul(id, r);
                    let p = g.mul(a, q);
                    g.neg(p)
                }
                (Binary::Atan2, _) => {
                    // atan2(x, y): ∂/∂x = y / (x² + y²), ∂/∂y = -x / (x² + y²)
                    let x2 = g.powi(x, 2);
                    let y2 = g.powi(y, 2);
                    let den = g.add(x2, y2);
                    let r = g.recip_nz(den);
                    if slot == 0 {
                        let num = g.mul(a, y);
                        g.mul(num, r)
                    } else {
                        let num = g.mul(a, x);
                        let q = g.mul(num, r);
                        g.neg(q)
                    }
                }
                (Binary::Powf, 0) => {
                    let ym1 = g.sub(y, one);
                    let p = g.binary(Binary::Powf, x, ym1);
                    let f = g.mul(y, p);
                    g.mul(a, f)
                }
                (Binary::Powf, _) => {
                    let ln = g.unary(Unary::Ln, x);
                    let f = g.mul(id, ln);
                    g.mul(a, f)
                }
                (Binary::Hypot, _) => {
                    let num = g.mul(a, if slot == 0 { x } else { y });
                    let r = g.recip_nz(id);
                    g.mul(num, r)
                }
            }
        }
        Node::Powi(x, n) => {
            let _ = x;
            let p = g.powi(x, n - 1);
            let nn = g.constant(n as f64);
            let f = g.mul(nn, p);
            g.mul(a, f)
        }
        Node::IfLe(_, _, _, _) => {
            if slot < 2 {
                return None;
            }
            let Node::IfLe(l, r, _, _) = node else { unreachable!() };
            let zero = g.constant(0.0);
            if slot == 2 { g.if_le(l, r, a, zero) } else { g.if_le(l, r, zero, a) }
        }
    })
}

/// Operands of a node.
pub fn children(n: Node) -> [Option<Id>; 4] {
    match n {
        Node::Const(_) | Node::Var(_) => [None; 4],
        Node::Unary(_, a) | Node::Powi(a, _) => [Some(a), None, None, None],
        Node::Binary(_, a, b) => [Some(a), Some(b), None, None],
        // The condition operands carry no derivative, but they are operands all the same.
        Node::IfLe(a, b, t, e) => [Some(a), Some(b), Some(t), Some(e)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::Var;

    /// Central finite difference of `e` along state 0 at `x0` (other vars from `vals`).
    fn check(build: impl Fn(&mut Graph, Id, Id) -> Id, pts: &[(f64, f64)]) {
        let mut g = Graph::new();
        let x = g.var(Var::State(0));
        let y = g.var(Var::State(1));
        let e = build(&mut g, x, y);
        let dx = Differentiator::new(Var::State(0)).diff(&mut g, e);
        let dy = Differentiator::new(Var::State(1)).diff(&mut g, e);
        let one = g.constant(1.0);
        let rev = gradient(&mut g, &[e], &[one], &[Var::State(0), Var::State(1)]);
        for &(px, py) in pts {
            let at = |px: f64, py: f64| {
                move |v: Var| match v {
                    Var::State(0) => px,
                    _ => py,
                }
            };
            let h = 1e-6;
            let fd_x = (g.eval(e, &at(px + h, py)) - g.eval(e, &at(px - h, py))) / (2.0 * h);
            let fd_y = (g.eval(e, &at(px, py + h)) - g.eval(e, &at(px, py - h))) / (2.0 * h);
            let (ax, ay) = (g.eval(dx, &at(px, py)), g.eval(dy, &at(px, py)));
            assert!((ax - fd_x).abs() <= 1e-7 * (1.0 + fd_x.abs()), "d/dx at ({px},{py}): {ax} vs fd {fd_x}");
            assert!((ay - fd_y).abs() <= 1e-7 * (1.0 + fd_y.abs()), "d/dy at ({px},{py}): {ay} vs fd {fd_y}");
            let (rx, ry) = (g.eval(rev[0], &at(px, py)), g.eval(rev[1], &at(px, py)));
            assert!((rx - ax).abs() <= 1e-13 * (1.0 + ax.abs()), "reverse d/dx at ({px},{py}): {rx} vs forward {ax}");
            assert!((ry - ay).abs() <= 1e-13 * (1.0 + ay.abs()), "reverse d/dy at ({px},{py}): {ry} vs forward {ay}");
        }
    }

    #[test]
    fn every_function_matches_finite_differences() {
        let pts = [(0.3, 0.7), (-0.4, 0.2), (0.1, -0.5)];
        use Binary::*;
        use Unary::*;
        for op in [Sin, Cos, Tan, Asin, Acos, Atan, Sinh, Cosh, Tanh, Exp, Abs] {
            check(move |g, x, y| {
                let m = g.mul(x, y);
                g.unary(op, m)
            }, &pts);
        }
        for op in [Ln, Sqrt] {
            check(move |g, x, y| {
                let a = g.mul(x, x);
                let s = g.add(a, y);
                let one = g.constant(1.0);
                let s = g.add(s, one);
                g.unary(op, s)
            }, &pts);
        }
        for op in [Add, Sub, Mul, Div, Atan2, Hypot, DivNz] {
            check(move |g, x, y| {
                let s = g.unary(Sin, x);
                g.binary(op, s, y)
            }, &pts);
        }
        check(|g, x, y| {
            let two = g.constant(2.0);
            let b = g.add(x, two);
            g.binary(Powf, b, y)
        }, &pts);
        check(|g, x, y| {
            let a = g.powi(x, 3);
            let b = g.powi(y, -2);
            g.mul(a, b)
        }, &pts);
        check(|g, x, y| {
            let a = g.min(x, y);
            let b = g.max(x, y);
            g.mul(a, b)
        }, &pts);
    }

    #[test]
    fn norm_derivative_is_zero_at_zero() {
        let mut g = Graph::new();
        let x = g.var(Var::State(0));
        let y = g.var(Var::State(1));
        let x2 = g.powi(x, 2);
        let y2 = g.powi(y, 2);
        let s = g.add(x2, y2);
        let n = g.unary(Unary::Sqrt, s);
        let dn = Differentiator::new(Var::State(0)).diff(&mut g, n);
        let ddn = Differentiator::new(Var::State(0)).diff(&mut g, dn);
        let zero = |_: Var| 0.0;
        assert_eq!(g.eval(dn, &zero), 0.0);
        assert_eq!(g.eval(ddn, &zero), 0.0);
        let at = |v: Var| if v == Var::State(0) { 3.0 } else { 4.0 };
        assert!((g.eval(dn, &at) - 0.6).abs() < 1e-15);
    }
}
