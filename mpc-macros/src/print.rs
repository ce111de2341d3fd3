//! Two printers, Rust and CUDA C++, driven by the same DAG and the same schedule, so the CPU
//! and GPU code cannot drift apart.
//!
//! A schedule lists the interior nodes an output set needs, in topological (id) order; each
//! becomes one temporary. Constants and symbols are printed inline.
//!
//! Temporaries are flat, so that nothing grows with their number but the length of the code:
//! * CUDA: one `const T tN_ = ...;` declaration per node (`N` the node id; user names never end
//!   in `_`), all in the function's one block scope.
//! * Rust: one array `__t` with a slot per node, `__t[k] = ...; // tN_`. One `let` per
//!   temporary would open one nested lexical scope each, and a model with thousands of
//!   temporaries (RK4 through an inverted mass matrix) then overflows LLVM's stack while it
//!   emits debug information (`DwarfCompileUnit::createAndAddScopeChildren` recurses once per
//!   scope). With one array the nesting depth is constant; LLVM's SROA turns the constant-index
//!   slots back into registers in optimised builds.

use crate::diff::children;
use crate::expr::{Binary, Graph, Id, Node, Unary, Var};

/// Target language.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Rust,
    Cuda,
}

/// Names of the symbols in one language.
pub struct Names<'a> {
    pub states: &'a [String],
    pub controls: &'a [String],
    pub params: &'a [String],
}

impl Names<'_> {
    fn var(&self, lang: Lang, v: Var) -> String {
        match (lang, v) {
            (_, Var::State(i)) => self.states[i].clone(),
            (_, Var::Control(i)) => self.controls[i].clone(),
            (Lang::Rust, Var::Param(i)) => format!("self.{}", self.params[i]),
            (Lang::Cuda, Var::Param(i)) => format!("p_.{}", self.params[i]),
            (Lang::Rust, Var::Lambda(i)) => format!("__lambda[{i}]"),
            (Lang::Cuda, Var::Lambda(i)) => format!("lambda_[{i}]"),
        }
    }
}

/// Interior nodes needed by `outputs`, in a demand-driven topological order: for each output
/// in turn, the nodes it needs that are not computed yet (operands first). Each output can be
/// stored as soon as its value exists, which keeps few values live at once (fewer registers on
/// the GPU) compared with computing everything before storing anything.
pub fn schedule(g: &Graph, outputs: &[Id]) -> Vec<Id> {
    let mut done = vec![false; g.len()];
    let mut order = Vec::new();
    for &root in outputs {
        // Iterative post-order DFS.
        let mut stack = vec![(root, false)];
        while let Some((id, expanded)) = stack.pop() {
            if done[id] {
                continue;
            }
            if expanded {
                done[id] = true;
                if !matches!(g.node(id), Node::Const(_) | Node::Var(_)) {
                    order.push(id);
                }
                continue;
            }
            stack.push((id, true));
            // Push children in reverse so the first operand is computed first.
            let kids: Vec<Id> = children(g.node(id)).into_iter().flatten().collect();
            for &c in kids.iter().rev() {
                if !done[c] {
                    stack.push((c, false));
                }
            }
        }
    }
    order
}

/// A constant as a literal of the language.
fn literal(lang: Lang, v: f64) -> String {
    let s = format!("{v:?}");
    let body = match lang {
        Lang::Rust => format!("{s}_f64"),
        Lang::Cuda => format!("T({s})"),
    };
    if v < 0.0 { format!("({body})") } else { body }
}

/// Where each scheduled node's temporary lives: its slot in the Rust array `__t`.
type Slots = [usize];

/// The name of the temporary of interior node `id`.
fn temp(lang: Lang, slots: &Slots, id: Id) -> String {
    match lang {
        Lang::Rust => format!("__t[{}]", slots[id]),
        Lang::Cuda => format!("t{id}_"),
    }
}

/// The expression of an operand (temporary, symbol or literal).
fn operand(g: &Graph, names: &Names, lang: Lang, slots: &Slots, id: Id) -> String {
    match g.node(id) {
        Node::Const(b) => literal(lang, f64::from_bits(b)),
        Node::Var(v) => names.var(lang, v),
        _ => temp(lang, slots, id),
    }
}

/// Right-hand side of the temporary of node `id`.
fn rhs(g: &Graph, names: &Names, lang: Lang, slots: &Slots, id: Id) -> String {
    let o = |i: Id| operand(g, names, lang, slots, i);
    let rust_fn = |f: &str, a: Id| format!("f64::{f}({})", o(a));
    let cuda_fn = |f: &str, a: Id| format!("mpc_{f}({})", o(a));
    match g.node(id) {
        Node::Const(_) | Node::Var(_) => o(id),
        Node::Unary(op, a) => {
            let f = match op {
                Unary::Neg => return format!("-{}", o(a)),
                Unary::Sign => {
                    return match lang {
                        Lang::Rust => format!("if {a} > 0.0 {{ 1.0 }} else if {a} < 0.0 {{ -1.0 }} else {{ 0.0 }}", a = o(a)),
                        Lang::Cuda => format!("mpc_sign({})", o(a)),
                    }
                }
                Unary::Sin => "sin",
                Unary::Cos => "cos",
                Unary::Tan => "tan",
                Unary::Asin => "asin",
                Unary::Acos => "acos",
                Unary::Atan => "atan",
                Unary::Sinh => "sinh",
                Unary::Cosh => "cosh",
                Unary::Tanh => "tanh",
                Unary::Exp => "exp",
                Unary::Ln => "ln",
                Unary::Sqrt => "sqrt",
                Unary::Abs => "abs",
            };
            match lang {
                Lang::Rust => rust_fn(f, a),
                Lang::Cuda => cuda_fn(f, a),
            }
        }
        Node::Binary(op, a, b) => {
            let infix = |s: &str| format!("{} {s} {}", o(a), o(b));
            match (op, lang) {
                (Binary::Add, _) => infix("+"),
                (Binary::Sub, _) => infix("-"),
                (Binary::Mul, _) => infix("*"),
                (Binary::Div, _) => infix("/"),
                (Binary::DivNz, Lang::Rust) => format!("if {b} != 0.0 {{ {a} / {b} }} else {{ 0.0 }}", a = o(a), b = o(b)),
                (Binary::DivNz, Lang::Cuda) => format!("mpc_div_nz({}, {})", o(a), o(b)),
                (Binary::Atan2, Lang::Rust) => format!("f64::atan2({}, {})", o(a), o(b)),
                (Binary::Powf, Lang::Rust) => format!("f64::powf({}, {})", o(a), o(b)),
                (Binary::Hypot, Lang::Rust) => format!("f64::hypot({}, {})", o(a), o(b)),
                (Binary::Atan2, Lang::Cuda) => format!("mpc_atan2({}, {})", o(a), o(b)),
                (Binary::Powf, Lang::Cuda) => format!("mpc_pow({}, {})", o(a), o(b)),
                (Binary::Hypot, Lang::Cuda) => format!("mpc_hypot({}, {})", o(a), o(b)),
            }
        }
        Node::Powi(a, n) => match lang {
            Lang::Rust => format!("f64::powi({}, {n})", o(a)),
            Lang::Cuda => format!("mpc_powi({}, {n})", o(a)),
        },
        Node::IfLe(a, b, t, e) => match lang {
            Lang::Rust => format!("if {} <= {} {{ {} }} else {{ {} }}", o(a), o(b), o(t), o(e)),
            Lang::Cuda => format!("({} <= {} ? {} : {})", o(a), o(b), o(t), o(e)),
        },
    }
}

/// Statements computing `outputs` and storing them as `target[k] = value`, each store placed
/// right after the last temporary it needs. `indent` prefixes every line.
pub fn body(g: &Graph, names: &Names, lang: Lang, targets: &[(String, Id)], indent: &str) -> String {
    let ids: Vec<Id> = targets.iter().map(|t| t.1).collect();
    let order = schedule(g, &ids);
    // Position in the schedule after which each target's value is available.
    // (This is also each node's slot in the Rust array of temporaries.)
    let mut pos = vec![usize::MAX; g.len()];
    for (k, &id) in order.iter().enumerate() {
        pos[id] = k;
    }
    let slots: &Slots = &pos;
    let mut stores: Vec<Vec<usize>> = vec![Vec::new(); order.len() + 1];
    for (t, &(_, id)) in targets.iter().enumerate() {
        let at = if pos[id] == usize::MAX { 0 } else { pos[id] + 1 };
        stores[at].push(t);
    }
    let mut out = String::new();
    if lang == Lang::Rust && !order.is_empty() {
        out.push_str(&format!("{indent}let mut __t = [0.0_f64; {}];\n", order.len()));
    }
    let store = |out: &mut String, t: usize| {
        let (target, id) = &targets[t];
        out.push_str(&format!("{indent}{target} = {};\n", operand(g, names, lang, slots, *id)));
    };
    for &t in &stores[0] {
        store(&mut out, t);
    }
    for (k, &id) in order.iter().enumerate() {
        let r = rhs(g, names, lang, slots, id);
        match lang {
            Lang::Rust => out.push_str(&format!("{indent}__t[{k}] = {r}; // t{id}_\n")),
            Lang::Cuda => out.push_str(&format!("{indent}const T t{id}_ = {r};\n")),
        }
        for &t in &stores[k + 1] {
            store(&mut out, t);
        }
    }
    out
}

/// Count of the interior nodes an output set needs (reported in generated banners).
pub fn op_count(g: &Graph, outputs: &[Id]) -> usize {
    schedule(g, outputs).len()
}
