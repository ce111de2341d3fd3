//! The printers, Rust, Rust over lanes of problems and CUDA C++ ([`RustPrinter`],
//! [`RustLanesPrinter`], [`CudaPrinter`]: each spells symbols,
//! literals, temporaries, functions and statements in its language, in one place), driven by
//! the same DAG and the same schedule ([`body`]), so the CPU and GPU code cannot drift apart.
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

/// Names of the symbols (states, controls, parameters) as the model declares them.
pub struct Names<'a> {
    pub states: &'a [String],
    pub controls: &'a [String],
    pub params: &'a [String],
}

/// How one target language spells what [`body`] prints. Everything language-specific is here.
pub trait Printer {
    /// A parameter (`i` in `PARAM_NAMES` order) and a co-state entry.
    fn param(&self, name: &str) -> String;
    fn lambda(&self, i: usize) -> String;
    /// `a op b` for `op` one of `+ - * /`.
    fn infix(&self, op: &str, a: &str, b: &str) -> String {
        format!("{a} {op} {b}")
    }
    /// A constant (finite, non-negative; negatives are parenthesised by the caller).
    fn literal(&self, repr: &str) -> String;
    /// The temporary of interior node `id` at slot `slot` of the schedule.
    fn temp(&self, slot: usize, id: Id) -> String;
    /// A unary math function (never `Neg`, which is the same in both).
    fn unary(&self, op: Unary, a: &str) -> String;
    /// A binary operation that is not an infix operator (`DivNz`, `Atan2`, `Powf`, `Hypot`).
    fn binary(&self, op: Binary, a: &str, b: &str) -> String;
    /// `a` to the integer power `n`.
    fn powi(&self, a: &str, n: i32) -> String;
    /// `a <= b ? t : e`.
    fn if_le(&self, a: &str, b: &str, t: &str, e: &str) -> String;
    /// What opens a body of `temps` temporaries.
    fn prologue(&self, temps: usize, indent: &str) -> String;
    /// The statement defining temporary `slot` (node `id`) as `rhs`.
    fn define(&self, slot: usize, id: Id, rhs: &str, indent: &str) -> String;
    /// Where the language has one call for both: the statement defining the temporaries of
    /// `sin a` and of `cos a` (slot, node) at once, printed where the first of the two is
    /// scheduled (`first`), and the line (a comment) printed where the second one is.
    fn define_sin_cos(&self, _sin: (usize, Id), _cos: (usize, Id), _a: &str, _first: Id, _indent: &str) -> Option<(String, String)> {
        None
    }
}

/// Rust: `f64` methods, temporaries in one array `__t` (see the module doc).
pub struct RustPrinter;

impl Printer for RustPrinter {
    fn param(&self, name: &str) -> String {
        format!("self.{name}")
    }
    fn lambda(&self, i: usize) -> String {
        format!("__lambda[{i}]")
    }
    fn literal(&self, repr: &str) -> String {
        format!("{repr}_f64")
    }
    fn temp(&self, slot: usize, _id: Id) -> String {
        format!("__t[{slot}]")
    }
    fn unary(&self, op: Unary, a: &str) -> String {
        match op {
            Unary::Sign => format!("if {a} > 0.0 {{ 1.0 }} else if {a} < 0.0 {{ -1.0 }} else {{ 0.0 }}"),
            Unary::Neg => format!("-{a}"),
            // The runtime's inlined sin/cos (`mpc_runtime::math`), not libm's calls.
            Unary::Sin | Unary::Cos => format!("__math::{}({a})", unary_name(op)),
            _ => format!("f64::{}({a})", unary_name(op)),
        }
    }
    fn binary(&self, op: Binary, a: &str, b: &str) -> String {
        match op {
            Binary::DivNz => format!("if {b} != 0.0 {{ {a} / {b} }} else {{ 0.0 }}"),
            Binary::Atan2 => format!("f64::atan2({a}, {b})"),
            Binary::Powf => format!("f64::powf({a}, {b})"),
            Binary::Hypot => format!("f64::hypot({a}, {b})"),
            Binary::Add | Binary::Sub | Binary::Mul | Binary::Div => unreachable!("infix"),
        }
    }
    fn powi(&self, a: &str, n: i32) -> String {
        format!("f64::powi({a}, {n})")
    }
    fn if_le(&self, a: &str, b: &str, t: &str, e: &str) -> String {
        format!("if {a} <= {b} {{ {t} }} else {{ {e} }}")
    }
    fn prologue(&self, temps: usize, indent: &str) -> String {
        if temps == 0 { String::new() } else { format!("{indent}let mut __t = [0.0_f64; {temps}];\n") }
    }
    fn define(&self, slot: usize, id: Id, rhs: &str, indent: &str) -> String {
        format!("{indent}__t[{slot}] = {rhs}; // t{id}_\n")
    }
    fn define_sin_cos(&self, sin: (usize, Id), cos: (usize, Id), a: &str, first: Id, indent: &str) -> Option<(String, String)> {
        let second = if first == sin.1 { cos.1 } else { sin.1 };
        Some((
            format!("{indent}(__t[{}], __t[{}]) = __math::sin_cos({a}); // t{first}_ (and t{second}_)\n", sin.0, cos.0),
            format!("{indent}// t{second}_ is set with t{first}_\n"),
        ))
    }
}

/// Rust over lanes of problems (structure of arrays): every symbol and temporary is a lane
/// group's array of `__L` values, one per problem, and every statement is one call of
/// `mpc_runtime::lane` (imported as `__lane`) doing what [`RustPrinter`]'s statement does in
/// each lane (the same operations, so the same bits); parameters are shared by the lanes. One
/// call per statement, not a loop: a debug build of a model with thousands of temporaries stays
/// quick to compile, and an optimised one inlines the calls into vector instructions.
pub struct RustLanesPrinter;

impl Printer for RustLanesPrinter {
    fn param(&self, name: &str) -> String {
        format!("__lane::splat(self.{name})")
    }
    fn lambda(&self, i: usize) -> String {
        format!("__lambda[{i}]")
    }
    fn infix(&self, op: &str, a: &str, b: &str) -> String {
        let f = match op {
            "+" => "add",
            "-" => "sub",
            "*" => "mul",
            "/" => "div",
            _ => unreachable!("infix operator {op}"),
        };
        format!("__lane::{f}({a}, {b})")
    }
    fn literal(&self, repr: &str) -> String {
        format!("__lane::splat({repr}_f64)")
    }
    fn temp(&self, slot: usize, _id: Id) -> String {
        format!("__t[{slot}]")
    }
    fn unary(&self, op: Unary, a: &str) -> String {
        match op {
            Unary::Sign => format!("__lane::sign({a})"),
            Unary::Neg => format!("__lane::neg({a})"),
            Unary::Sin | Unary::Cos => format!("__lane::{}({a})", unary_name(op)),
            _ => format!("__lane::map({a}, f64::{})", unary_name(op)),
        }
    }
    fn binary(&self, op: Binary, a: &str, b: &str) -> String {
        match op {
            Binary::DivNz => format!("__lane::div_nz({a}, {b})"),
            Binary::Atan2 => format!("__lane::map2({a}, {b}, f64::atan2)"),
            Binary::Powf => format!("__lane::map2({a}, {b}, f64::powf)"),
            Binary::Hypot => format!("__lane::map2({a}, {b}, f64::hypot)"),
            Binary::Add | Binary::Sub | Binary::Mul | Binary::Div => unreachable!("infix"),
        }
    }
    fn powi(&self, a: &str, n: i32) -> String {
        format!("__lane::powi({a}, {n})")
    }
    fn if_le(&self, a: &str, b: &str, t: &str, e: &str) -> String {
        format!("__lane::if_le({a}, {b}, {t}, {e})")
    }
    fn prologue(&self, temps: usize, indent: &str) -> String {
        if temps == 0 { String::new() } else { format!("{indent}let mut __t = [[0.0_f64; __L]; {temps}];\n") }
    }
    fn define(&self, slot: usize, id: Id, rhs: &str, indent: &str) -> String {
        // `/* tN_ */`, not `// tN_`: the one-problem code's slots are matched against the CUDA
        // temporaries by their `; // ` comments.
        format!("{indent}__t[{slot}] = {rhs}; /* t{id}_ */\n")
    }
    fn define_sin_cos(&self, sin: (usize, Id), cos: (usize, Id), a: &str, first: Id, indent: &str) -> Option<(String, String)> {
        let second = if first == sin.1 { cos.1 } else { sin.1 };
        Some((
            format!("{indent}(__t[{}], __t[{}]) = __lane::sin_cos({a}); /* t{first}_ (and t{second}_) */\n", sin.0, cos.0),
            format!("{indent}/* t{second}_ is set with t{first}_ */\n"),
        ))
    }
}

/// CUDA C++: templated on the real type `T`, math through the prelude's `mpc_*` overloads,
/// one `const T tN_` per temporary.
pub struct CudaPrinter;

impl Printer for CudaPrinter {
    fn param(&self, name: &str) -> String {
        format!("p_.{name}")
    }
    fn lambda(&self, i: usize) -> String {
        format!("lambda_[{i}]")
    }
    fn literal(&self, repr: &str) -> String {
        format!("T({repr})")
    }
    fn temp(&self, _slot: usize, id: Id) -> String {
        format!("t{id}_")
    }
    fn unary(&self, op: Unary, a: &str) -> String {
        match op {
            Unary::Sign => format!("mpc_sign({a})"),
            Unary::Neg => format!("-{a}"),
            _ => format!("mpc_{}({a})", unary_name(op)),
        }
    }
    fn binary(&self, op: Binary, a: &str, b: &str) -> String {
        match op {
            Binary::DivNz => format!("mpc_div_nz({a}, {b})"),
            Binary::Atan2 => format!("mpc_atan2({a}, {b})"),
            Binary::Powf => format!("mpc_pow({a}, {b})"),
            Binary::Hypot => format!("mpc_hypot({a}, {b})"),
            Binary::Add | Binary::Sub | Binary::Mul | Binary::Div => unreachable!("infix"),
        }
    }
    fn powi(&self, a: &str, n: i32) -> String {
        format!("mpc_powi({a}, {n})")
    }
    fn if_le(&self, a: &str, b: &str, t: &str, e: &str) -> String {
        format!("({a} <= {b} ? {t} : {e})")
    }
    fn prologue(&self, _temps: usize, _indent: &str) -> String {
        String::new()
    }
    fn define(&self, _slot: usize, id: Id, rhs: &str, indent: &str) -> String {
        format!("{indent}const T t{id}_ = {rhs};\n")
    }
}

/// The function name of a unary math node (`ln` is `f64::ln` and `mpc_ln`).
fn unary_name(op: Unary) -> &'static str {
    match op {
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
        Unary::Neg | Unary::Sign => unreachable!("printed by the printer itself"),
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

/// Where each scheduled node's temporary lives: its slot in the schedule.
type Slots = [usize];

/// The expression of an operand (temporary, symbol or literal).
fn operand<P: Printer + ?Sized>(g: &Graph, names: &Names, pr: &P, slots: &Slots, id: Id) -> String {
    match g.node(id) {
        Node::Const(b) => {
            let v = f64::from_bits(b);
            let lit = pr.literal(&format!("{v:?}"));
            if v < 0.0 { format!("({lit})") } else { lit }
        }
        Node::Var(Var::State(i)) => names.states[i].clone(),
        Node::Var(Var::Control(i)) => names.controls[i].clone(),
        Node::Var(Var::Param(i)) => pr.param(&names.params[i]),
        Node::Var(Var::Lambda(i)) => pr.lambda(i),
        _ => pr.temp(slots[id], id),
    }
}

/// Right-hand side of the temporary of node `id`.
fn rhs<P: Printer + ?Sized>(g: &Graph, names: &Names, pr: &P, slots: &Slots, id: Id) -> String {
    let o = |i: Id| operand(g, names, pr, slots, i);
    match g.node(id) {
        Node::Const(_) | Node::Var(_) => o(id),
        Node::Unary(op, a) => pr.unary(op, &o(a)),
        Node::Binary(op, a, b) => {
            let infix = |s: &str| pr.infix(s, &o(a), &o(b));
            match op {
                Binary::Add => infix("+"),
                Binary::Sub => infix("-"),
                Binary::Mul => infix("*"),
                Binary::Div => infix("/"),
                _ => pr.binary(op, &o(a), &o(b)),
            }
        }
        Node::Powi(a, n) => pr.powi(&o(a), n),
        Node::IfLe(a, b, t, e) => pr.if_le(&o(a), &o(b), &o(t), &o(e)),
    }
}

/// Statements computing `outputs` and storing them as `target[k] = value`, each store placed
/// right after the last temporary it needs. `indent` prefixes every line.
pub fn body<P: Printer + ?Sized>(g: &Graph, names: &Names, pr: &P, targets: &[(String, Id)], indent: &str) -> String {
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
    let mut out = pr.prologue(order.len(), indent);
    let store = |out: &mut String, t: usize| {
        let (target, id) = &targets[t];
        out.push_str(&format!("{indent}{target} = {};\n", operand(g, names, pr, slots, *id)));
    };
    for &t in &stores[0] {
        store(&mut out, t);
    }
    // `sin a` and `cos a` both scheduled: one call for both where the printer has one (one
    // argument reduction instead of two; the same bits).
    let sin_cos_of = |id: Id| match g.node(id) {
        Node::Unary(op @ (Unary::Sin | Unary::Cos), a) => {
            let other = if op == Unary::Sin { Unary::Cos } else { Unary::Sin };
            let partner = g.find(Node::Unary(other, a)).filter(|&p| pos[p] != usize::MAX)?;
            let (s, c) = if op == Unary::Sin { (id, partner) } else { (partner, id) };
            Some((s, c, a))
        }
        _ => None,
    };
    // The line of the second of each pair printed at the first one.
    let mut later: Vec<Option<String>> = vec![None; order.len()];
    for (k, &id) in order.iter().enumerate() {
        let pair = sin_cos_of(id).filter(|&(s, c, _)| pos[s].max(pos[c]) > k);
        let paired = pair.and_then(|(s, c, a)| {
            pr.define_sin_cos((pos[s], s), (pos[c], c), &operand(g, names, pr, slots, a), id, indent).map(|l| (l, pos[s].max(pos[c])))
        });
        match (later[k].take(), paired) {
            (Some(line), _) => out.push_str(&line),
            (None, Some(((first, second), at))) => {
                out.push_str(&first);
                later[at] = Some(second);
            }
            (None, None) => {
                let r = rhs(g, names, pr, slots, id);
                out.push_str(&pr.define(k, id, &r, indent));
            }
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
