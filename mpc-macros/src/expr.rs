//! The symbolic expression DAG: hash-consed nodes, constant folding, algebraic identities.
//!
//! Every node is stored once (hash-consing), so equal subexpressions are shared by
//! construction: common-subexpression elimination is not a pass but an invariant. The smart
//! constructors ([`Graph::add`], [`Graph::mul`], ...) fold constants and apply the identities
//! `0 + a = a`, `1 · a = a`, `0 · a = 0`, `a - a = 0`, `-(-a) = a`, ... and put the operands of
//! commutative operations in a canonical order, so `a·b` and `b·a` are one node.

use std::collections::HashMap;

/// Index of a node in a [`Graph`].
pub type Id = usize;

/// What a symbol stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Var {
    /// State entry `x[i]`.
    State(usize),
    /// Control entry `u[i]`.
    Control(usize),
    /// Run-time parameter `i`.
    Param(usize),
    /// Co-state weight `λ[i]` of the weighted Hessian.
    Lambda(usize),
}

/// Functions of one argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unary {
    Neg,
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Tanh,
    Exp,
    Ln,
    Sqrt,
    Abs,
    /// `sign(a)` with `sign(0) = 0`.
    Sign,
}

/// Functions of two arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    /// `a / b`, or `0` when `b == 0`: the derivative convention at non-smooth points.
    DivNz,
    /// `atan2(a, b)` = angle of the point `(b, a)`.
    Atan2,
    Powf,
    Hypot,
}

/// One node of the DAG.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    /// A constant, stored as its bit pattern so nodes can be hashed.
    Const(u64),
    /// A symbol.
    Var(Var),
    /// `op(a)`.
    Unary(Unary, Id),
    /// `op(a, b)`.
    Binary(Binary, Id, Id),
    /// `a^n` for an integer `n`.
    Powi(Id, i32),
    /// `if a <= b { t } else { e }`.
    IfLe(Id, Id, Id, Id),
}

/// A hash-consed expression DAG. Node ids are topologically ordered: operands have smaller ids.
#[derive(Default)]
pub struct Graph {
    nodes: Vec<Node>,
    index: HashMap<Node, Id>,
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// The node with this id.
    pub fn node(&self, id: Id) -> Node {
        self.nodes[id]
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The id of `n` where the graph holds it.
    pub fn find(&self, n: Node) -> Option<Id> {
        self.index.get(&n).copied()
    }

    fn intern(&mut self, n: Node) -> Id {
        if let Some(&id) = self.index.get(&n) {
            return id;
        }
        let id = self.nodes.len();
        self.nodes.push(n);
        self.index.insert(n, id);
        id
    }

    /// The constant `v` (`-0.0` is stored as `0.0`).
    pub fn constant(&mut self, v: f64) -> Id {
        let v = if v == 0.0 { 0.0 } else { v };
        self.intern(Node::Const(v.to_bits()))
    }

    /// The symbol `v`.
    pub fn var(&mut self, v: Var) -> Id {
        self.intern(Node::Var(v))
    }

    /// The value of a constant node.
    pub fn as_const(&self, id: Id) -> Option<f64> {
        match self.nodes[id] {
            Node::Const(b) => Some(f64::from_bits(b)),
            _ => None,
        }
    }

    fn is_const(&self, id: Id, v: f64) -> bool {
        self.as_const(id) == Some(v)
    }

    /// `a + b`.
    pub fn add(&mut self, a: Id, b: Id) -> Id {
        match (self.as_const(a), self.as_const(b)) {
            (Some(x), Some(y)) => return self.constant(x + y),
            (Some(0.0), _) => return b,
            (_, Some(0.0)) => return a,
            _ => {}
        }
        if let Node::Unary(Unary::Neg, nb) = self.nodes[b] {
            return self.sub(a, nb);
        }
        if let Node::Unary(Unary::Neg, na) = self.nodes[a] {
            return self.sub(b, na);
        }
        let (a, b) = if a <= b { (a, b) } else { (b, a) };
        self.intern(Node::Binary(Binary::Add, a, b))
    }

    /// `a - b`.
    pub fn sub(&mut self, a: Id, b: Id) -> Id {
        match (self.as_const(a), self.as_const(b)) {
            (Some(x), Some(y)) => return self.constant(x - y),
            (Some(0.0), _) => return self.neg(b),
            (_, Some(0.0)) => return a,
            _ => {}
        }
        if a == b {
            return self.constant(0.0);
        }
        if let Node::Unary(Unary::Neg, nb) = self.nodes[b] {
            return self.add(a, nb);
        }
        self.intern(Node::Binary(Binary::Sub, a, b))
    }

    /// `a · b`.
    pub fn mul(&mut self, a: Id, b: Id) -> Id {
        match (self.as_const(a), self.as_const(b)) {
            (Some(x), Some(y)) => return self.constant(x * y),
            (Some(0.0), _) | (_, Some(0.0)) => return self.constant(0.0),
            (Some(1.0), _) => return b,
            (_, Some(1.0)) => return a,
            (Some(-1.0), _) => return self.neg(b),
            (_, Some(-1.0)) => return self.neg(a),
            _ => {}
        }
        match (self.nodes[a], self.nodes[b]) {
            (Node::Unary(Unary::Neg, na), Node::Unary(Unary::Neg, nb)) => return self.mul(na, nb),
            (Node::Unary(Unary::Neg, na), _) => {
                let m = self.mul(na, b);
                return self.neg(m);
            }
            (_, Node::Unary(Unary::Neg, nb)) => {
                let m = self.mul(a, nb);
                return self.neg(m);
            }
            _ => {}
        }
        // Constants first, then by id: one canonical form per product.
        let (a, b) = match (self.as_const(a), self.as_const(b)) {
            (None, Some(_)) => (b, a),
            (Some(_), None) => (a, b),
            _ if a <= b => (a, b),
            _ => (b, a),
        };
        self.intern(Node::Binary(Binary::Mul, a, b))
    }

    /// `a / b`.
    pub fn div(&mut self, a: Id, b: Id) -> Id {
        match (self.as_const(a), self.as_const(b)) {
            (Some(x), Some(y)) if y != 0.0 => return self.constant(x / y),
            (Some(0.0), _) => return self.constant(0.0),
            (_, Some(1.0)) => return a,
            (_, Some(-1.0)) => return self.neg(a),
            _ => {}
        }
        if let Node::Unary(Unary::Neg, na) = self.nodes[a] {
            let d = self.div(na, b);
            return self.neg(d);
        }
        self.intern(Node::Binary(Binary::Div, a, b))
    }

    /// `1 / b` (derivative rules multiply by one shared reciprocal instead of dividing per
    /// entry: a division costs several products).
    pub fn recip(&mut self, b: Id) -> Id {
        let one = self.constant(1.0);
        self.div(one, b)
    }

    /// `1 / b`, or `0` where `b == 0` ([`Graph::div_nz`]'s reciprocal).
    pub fn recip_nz(&mut self, b: Id) -> Id {
        let one = self.constant(1.0);
        self.div_nz(one, b)
    }

    /// `a / b`, or `0` where `b == 0`.
    pub fn div_nz(&mut self, a: Id, b: Id) -> Id {
        if self.is_const(a, 0.0) {
            return self.constant(0.0);
        }
        if let Some(y) = self.as_const(b) {
            return if y == 0.0 { self.constant(0.0) } else { self.div(a, b) };
        }
        self.intern(Node::Binary(Binary::DivNz, a, b))
    }

    /// `-a`.
    pub fn neg(&mut self, a: Id) -> Id {
        match self.nodes[a] {
            Node::Const(b) => self.constant(-f64::from_bits(b)),
            Node::Unary(Unary::Neg, inner) => inner,
            Node::Binary(Binary::Sub, x, y) => self.sub(y, x),
            _ => self.intern(Node::Unary(Unary::Neg, a)),
        }
    }

    /// `op(a)` for a function of one argument.
    pub fn unary(&mut self, op: Unary, a: Id) -> Id {
        if op == Unary::Neg {
            return self.neg(a);
        }
        if let Some(v) = self.as_const(a) {
            let r = eval_unary(op, v);
            if r.is_finite() {
                return self.constant(r);
            }
        }
        self.intern(Node::Unary(op, a))
    }

    /// `op(a, b)` for a function of two arguments.
    pub fn binary(&mut self, op: Binary, a: Id, b: Id) -> Id {
        match op {
            Binary::Add => return self.add(a, b),
            Binary::Sub => return self.sub(a, b),
            Binary::Mul => return self.mul(a, b),
            Binary::Div => return self.div(a, b),
            Binary::DivNz => return self.div_nz(a, b),
            _ => {}
        }
        if let (Some(x), Some(y)) = (self.as_const(a), self.as_const(b)) {
            let r = eval_binary(op, x, y);
            if r.is_finite() {
                return self.constant(r);
            }
        }
        if op == Binary::Powf
            && let Some(y) = self.as_const(b) {
                if y == 0.0 {
                    return self.constant(1.0);
                }
                if y == 1.0 {
                    return a;
                }
            }
        self.intern(Node::Binary(op, a, b))
    }

    /// `a^n`.
    pub fn powi(&mut self, a: Id, n: i32) -> Id {
        if n == 0 {
            return self.constant(1.0);
        }
        if n == 1 {
            return a;
        }
        if let Some(v) = self.as_const(a) {
            let r = v.powi(n);
            if r.is_finite() {
                return self.constant(r);
            }
        }
        self.intern(Node::Powi(a, n))
    }

    /// `if a <= b { t } else { e }`.
    pub fn if_le(&mut self, a: Id, b: Id, t: Id, e: Id) -> Id {
        if t == e {
            return t;
        }
        if let (Some(x), Some(y)) = (self.as_const(a), self.as_const(b)) {
            return if x <= y { t } else { e };
        }
        self.intern(Node::IfLe(a, b, t, e))
    }

    /// `min(a, b)`; on a tie the first argument is chosen (also for the derivative).
    pub fn min(&mut self, a: Id, b: Id) -> Id {
        self.if_le(a, b, a, b)
    }

    /// `max(a, b)`; on a tie the first argument is chosen (also for the derivative).
    pub fn max(&mut self, a: Id, b: Id) -> Id {
        self.if_le(b, a, a, b)
    }

    /// Evaluate a node numerically given the values of the symbols (used by the tests).
    #[cfg(test)]
    pub fn eval(&self, id: Id, vars: &dyn Fn(Var) -> f64) -> f64 {
        let mut vals = vec![0.0; id + 1];
        for i in 0..=id {
            vals[i] = match self.nodes[i] {
                Node::Const(b) => f64::from_bits(b),
                Node::Var(v) => vars(v),
                Node::Unary(op, a) => eval_unary(op, vals[a]),
                Node::Binary(op, a, b) => eval_binary(op, vals[a], vals[b]),
                Node::Powi(a, n) => vals[a].powi(n),
                Node::IfLe(a, b, t, e) => {
                    if vals[a] <= vals[b] {
                        vals[t]
                    } else {
                        vals[e]
                    }
                }
            };
        }
        vals[id]
    }
}

/// Numerical value of a function of one argument (the same semantics the printers emit).
pub fn eval_unary(op: Unary, a: f64) -> f64 {
    match op {
        Unary::Neg => -a,
        Unary::Sin => a.sin(),
        Unary::Cos => a.cos(),
        Unary::Tan => a.tan(),
        Unary::Asin => a.asin(),
        Unary::Acos => a.acos(),
        Unary::Atan => a.atan(),
        Unary::Sinh => a.sinh(),
        Unary::Cosh => a.cosh(),
        Unary::Tanh => a.tanh(),
        Unary::Exp => a.exp(),
        Unary::Ln => a.ln(),
        Unary::Sqrt => a.sqrt(),
        Unary::Abs => a.abs(),
        Unary::Sign => {
            if a > 0.0 {
                1.0
            } else if a < 0.0 {
                -1.0
            } else {
                0.0
            }
        }
    }
}

/// Numerical value of a function of two arguments.
pub fn eval_binary(op: Binary, a: f64, b: f64) -> f64 {
    match op {
        Binary::Add => a + b,
        Binary::Sub => a - b,
        Binary::Mul => a * b,
        Binary::Div => a / b,
        Binary::DivNz => {
            if b != 0.0 {
                a / b
            } else {
                0.0
            }
        }
        Binary::Atan2 => a.atan2(b),
        Binary::Powf => a.powf(b),
        Binary::Hypot => a.hypot(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_consing_shares_subexpressions() {
        let mut g = Graph::new();
        let x = g.var(Var::State(0));
        let y = g.var(Var::State(1));
        let a = g.mul(x, y);
        let b = g.mul(y, x);
        assert_eq!(a, b, "commutative operands are canonical");
        let s1 = g.unary(Unary::Sin, a);
        let s2 = g.unary(Unary::Sin, b);
        assert_eq!(s1, s2);
    }

    #[test]
    fn identities_and_folding() {
        let mut g = Graph::new();
        let x = g.var(Var::State(0));
        let zero = g.constant(0.0);
        let one = g.constant(1.0);
        assert_eq!(g.add(x, zero), x);
        assert_eq!(g.mul(x, one), x);
        assert_eq!(g.mul(zero, x), zero);
        assert_eq!(g.sub(x, x), zero);
        let nx = g.neg(x);
        assert_eq!(g.neg(nx), x);
        let two = g.constant(2.0);
        let three = g.constant(3.0);
        let six = g.mul(two, three);
        assert_eq!(g.as_const(six), Some(6.0));
        let c = g.unary(Unary::Cos, zero);
        assert_eq!(g.as_const(c), Some(1.0));
        // x + (-y) becomes x - y
        let y = g.var(Var::State(1));
        let ny = g.neg(y);
        let s = g.add(x, ny);
        assert_eq!(g.node(s), Node::Binary(Binary::Sub, x, y));
    }

    #[test]
    fn division_by_constant_zero_is_not_folded_to_infinity() {
        let mut g = Graph::new();
        let one = g.constant(1.0);
        let zero = g.constant(0.0);
        let d = g.div(one, zero);
        assert!(g.as_const(d).is_none());
        assert!(g.eval(d, &|_| 0.0).is_infinite());
    }
}
