//! Parsing `#[mpc_model(..)] fn ..` into an immutable [`ModelSpec`], with errors at the
//! offending span.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Error, Expr, FnArg, Ident, ItemFn, Lit, Meta, Pat, Path, Result, Stmt, Token, Type, UnOp};

/// Discrete model, or continuous-time model with its integrator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeKind {
    /// Body returns `Next { .. }`.
    Discrete,
    /// Body returns `Derivative { .. }`, integrated with explicit Euler.
    Euler,
    /// Body returns `Derivative { .. }`, integrated with RK4.
    Rk4,
}

/// A control with its bounds.
pub struct Control {
    pub name: Ident,
    pub min: f64,
    pub max: f64,
}

/// A run-time parameter with its default value.
pub struct Param {
    pub name: Ident,
    pub default: f64,
}

/// Everything `#[mpc_model]` knows about a model, before any symbolic work.
pub struct ModelSpec {
    /// The function's name (the model's name).
    pub name: Ident,
    /// Visibility of the generated type.
    pub vis: syn::Visibility,
    /// Doc comments of the function, carried to the generated type.
    pub docs: Vec<Attribute>,
    pub time: TimeKind,
    pub states: Vec<Ident>,
    pub controls: Vec<Control>,
    /// Parameters, including `dt` for continuous-time models (last).
    pub params: Vec<Param>,
    /// `let` bindings of the body, in order.
    pub lets: Vec<(Ident, Expr)>,
    /// Fields of the returned struct, in the order of `states`.
    pub outputs: Vec<Expr>,
    /// Path of the runtime crate (`::mpc_runtime` unless `crate = ..` is given).
    pub krate: Path,
}

/// Words that cannot name a state, control or parameter because the generated CUDA C++ would
/// not compile or would be ambiguous.
const RESERVED: &[&str] = &[
    "T", "NX", "NU", "NZ", "NP", "Params", "auto", "bool", "break", "case", "char", "class", "const", "continue",
    "default", "delete", "do", "double", "else", "enum", "extern", "float", "for", "goto", "if", "inline", "int",
    "long", "namespace", "new", "operator", "private", "protected", "public", "register", "return", "short",
    "signed", "sizeof", "static", "struct", "switch", "template", "this", "typedef", "typename", "union",
    "unsigned", "using", "virtual", "void", "volatile", "while", "step", "linearize", "weighted_hessian",
];

fn check_name(id: &Ident) -> Result<()> {
    let s = id.to_string();
    if s.starts_with('_') || s.ends_with('_') {
        return Err(Error::new(id.span(), format!("`{s}`: names of states, controls and parameters must not start or end with `_` (reserved for generated code)")));
    }
    if RESERVED.contains(&s.as_str()) {
        return Err(Error::new(id.span(), format!("`{s}` is reserved in the generated CUDA code; choose another name")));
    }
    Ok(())
}

const NEEDS_DT: &str = "a continuous-time model needs `dt = <seconds>` (and optionally `integrator = euler | rk4`, default rk4); a discrete model is marked `#[mpc_model(discrete)]`";

/// Evaluate a constant in an attribute: a float or integer literal, optionally negated.
fn const_number(e: &Expr) -> Result<f64> {
    match e {
        Expr::Lit(l) => match &l.lit {
            Lit::Float(f) => f.base10_parse::<f64>(),
            Lit::Int(i) => i.base10_parse::<f64>(),
            _ => Err(Error::new(e.span(), "expected a number")),
        },
        Expr::Unary(u) if matches!(u.op, UnOp::Neg(_)) => Ok(-const_number(&u.expr)?),
        Expr::Paren(p) => const_number(&p.expr),
        Expr::Path(p) if p.path.is_ident("inf") || p.path.segments.last().is_some_and(|s| s.ident == "INFINITY") => {
            Ok(f64::INFINITY)
        }
        _ => Err(Error::new(e.span(), "expected a number literal such as `-3.0`")),
    }
}

/// Key/value pairs of an attribute such as `control(min = -1.0, max = 1.0)`.
fn name_values(attr: &Attribute) -> Result<Vec<(Ident, Expr)>> {
    match &attr.meta {
        Meta::Path(_) => Ok(vec![]),
        Meta::List(list) => {
            let metas = Punctuated::<syn::MetaNameValue, Token![,]>::parse_terminated.parse2(list.tokens.clone())?;
            metas
                .into_iter()
                .map(|m| {
                    let id = m.path.get_ident().cloned().ok_or_else(|| Error::new(m.path.span(), "expected a key like `min`"))?;
                    Ok((id, m.value))
                })
                .collect()
        }
        Meta::NameValue(nv) => Err(Error::new(nv.span(), "expected `#[control(min = .., max = ..)]` style arguments")),
    }
}

/// Parse the attribute arguments and the function into a [`ModelSpec`].
pub fn parse(attr: TokenStream, func: ItemFn) -> Result<ModelSpec> {
    // ---- attribute arguments ----
    let mut time: Option<(TimeKind, Span)> = None;
    let mut dt: Option<(f64, Span)> = None;
    let mut krate: Path = syn::parse_quote!(::mpc_runtime);
    let args = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)?;
    for meta in args {
        match &meta {
            Meta::Path(p) if p.is_ident("discrete") => time = Some((TimeKind::Discrete, p.span())),
            Meta::NameValue(nv) if nv.path.is_ident("dt") => {
                let v = const_number(&nv.value)?;
                if !(v.is_finite() && v > 0.0) {
                    return Err(Error::new(nv.value.span(), "`dt` must be a positive number of seconds"));
                }
                dt = Some((v, nv.span()));
            }
            Meta::NameValue(nv) if nv.path.is_ident("integrator") => {
                let kind = match &nv.value {
                    Expr::Path(p) if p.path.is_ident("rk4") => TimeKind::Rk4,
                    Expr::Path(p) if p.path.is_ident("euler") => TimeKind::Euler,
                    other => return Err(Error::new(other.span(), "unknown integrator: expected `euler` or `rk4`")),
                };
                time = Some((kind, nv.span()));
            }
            Meta::NameValue(nv) if nv.path.is_ident("crate") => match &nv.value {
                Expr::Path(p) => krate = p.path.clone(),
                other => return Err(Error::new(other.span(), "expected a path such as `crate = ::mpc_runtime`")),
            },
            other => {
                return Err(Error::new(
                    other.span(),
                    "unknown `mpc_model` argument: expected `discrete`, `dt = <seconds>`, `integrator = euler | rk4` or `crate = <path>`",
                ))
            }
        }
    }
    let time = match (time, dt) {
        (Some((TimeKind::Discrete, _)), Some((_, span))) => {
            return Err(Error::new(span, "a `discrete` model takes no `dt` argument: declare `#[param(default = ..)] dt: f64` if its equations use one"))
        }
        (Some((TimeKind::Discrete, _)), None) => TimeKind::Discrete,
        (Some((k, _)), Some(_)) => k,
        (None, Some(_)) => TimeKind::Rk4,
        (Some((_, span)), None) => return Err(Error::new(span, NEEDS_DT)),
        (None, None) => return Err(Error::new(Span::call_site(), NEEDS_DT)),
    };

    // ---- signature ----
    let sig = &func.sig;
    if !sig.generics.params.is_empty() || sig.asyncness.is_some() || sig.unsafety.is_some() {
        return Err(Error::new(sig.span(), "an `mpc_model` function is a plain `fn` without generics, `async` or `unsafe`"));
    }
    let mut states = Vec::new();
    let mut controls = Vec::new();
    let mut params: Vec<Param> = Vec::new();
    let mut all_names: Vec<Ident> = Vec::new();
    for arg in &sig.inputs {
        let FnArg::Typed(pt) = arg else {
            return Err(Error::new(arg.span(), "an `mpc_model` function takes no `self`"));
        };
        let Pat::Ident(pi) = &*pt.pat else {
            return Err(Error::new(pt.pat.span(), "expected a plain name"));
        };
        let name = pi.ident.clone();
        check_name(&name)?;
        match &*pt.ty {
            Type::Path(tp) if tp.path.is_ident("f64") => {}
            other => return Err(Error::new(other.span(), "states, controls and parameters are `f64`")),
        }
        if all_names.contains(&name) {
            return Err(Error::new(name.span(), format!("duplicate name `{name}`")));
        }
        let role_attrs: Vec<&Attribute> = pt
            .attrs
            .iter()
            .filter(|a| ["state", "control", "param"].iter().any(|k| a.path().is_ident(k)))
            .collect();
        if let Some(other) = pt.attrs.iter().find(|a| !["state", "control", "param", "doc"].iter().any(|k| a.path().is_ident(k))) {
            return Err(Error::new(other.span(), "unknown attribute: expected `#[state]`, `#[control(min = .., max = ..)]` or `#[param(default = ..)]`"));
        }
        let [attr] = role_attrs.as_slice() else {
            return Err(Error::new(
                pt.span(),
                format!("`{name}` needs exactly one of `#[state]`, `#[control(min = .., max = ..)]` or `#[param(default = ..)]`"),
            ));
        };
        if attr.path().is_ident("state") {
            if !matches!(attr.meta, Meta::Path(_)) {
                return Err(Error::new(attr.span(), "`#[state]` takes no arguments"));
            }
            states.push(name.clone());
        } else if attr.path().is_ident("control") {
            let (mut min, mut max) = (f64::NEG_INFINITY, f64::INFINITY);
            let mut bound_span = attr.span();
            for (k, v) in name_values(attr)? {
                match k.to_string().as_str() {
                    "min" => {
                        min = const_number(&v)?;
                        bound_span = v.span();
                    }
                    "max" => max = const_number(&v)?,
                    _ => return Err(Error::new(k.span(), "unknown key: a control takes `min` and `max`")),
                }
            }
            if min.is_nan() || max.is_nan() || min > max {
                return Err(Error::new(bound_span, format!("control `{name}`: min = {min} is above max = {max}")));
            }
            controls.push(Control { name: name.clone(), min, max });
        } else {
            let mut default = None;
            for (k, v) in name_values(attr)? {
                match k.to_string().as_str() {
                    "default" => default = Some(const_number(&v)?),
                    _ => return Err(Error::new(k.span(), "unknown key: a parameter takes `default`")),
                }
            }
            let Some(default) = default.filter(|d| d.is_finite()) else {
                return Err(Error::new(attr.span(), format!("parameter `{name}` needs a finite `default = <number>`")));
            };
            if name == "dt" && time != TimeKind::Discrete {
                return Err(Error::new(name.span(), "a continuous-time model gets its `dt` parameter from `#[mpc_model(dt = ..)]`; do not declare it"));
            }
            params.push(Param { name: name.clone(), default });
        }
        all_names.push(name);
    }
    if states.is_empty() {
        return Err(Error::new(sig.ident.span(), "a model needs at least one `#[state]`"));
    }
    if controls.is_empty() {
        return Err(Error::new(sig.ident.span(), "a model needs at least one `#[control(..)]`"));
    }
    if let Some((v, _)) = dt {
        params.push(Param { name: Ident::new("dt", Span::call_site()), default: v });
    }
    let out_name = if time == TimeKind::Discrete { "Next" } else { "Derivative" };
    match &sig.output {
        syn::ReturnType::Type(_, ty) if matches!(&**ty, Type::Path(tp) if tp.path.is_ident(out_name)) => {}
        other => {
            return Err(Error::new(
                other.span(),
                format!("this {} model returns `-> {out_name}`", if time == TimeKind::Discrete { "discrete" } else { "continuous-time" }),
            ))
        }
    }

    // ---- body ----
    let mut lets = Vec::new();
    let mut tail: Option<&Expr> = None;
    let n_stmts = func.block.stmts.len();
    for (i, stmt) in func.block.stmts.iter().enumerate() {
        match stmt {
            Stmt::Local(local) => {
                let pat = match &local.pat {
                    Pat::Type(pt) => &*pt.pat,
                    p => p,
                };
                let Pat::Ident(pi) = pat else {
                    return Err(Error::new(local.pat.span(), "expected `let name = <expression>;`"));
                };
                if pi.mutability.is_some() {
                    return Err(Error::new(pi.span(), "bindings are immutable: `let name = ..;` (no `mut`)"));
                }
                let Some(init) = &local.init else {
                    return Err(Error::new(local.span(), "a `let` needs a value: `let name = <expression>;`"));
                };
                if init.diverge.is_some() {
                    return Err(Error::new(local.span(), "`let .. else` is not supported"));
                }
                let name = pi.ident.clone();
                if all_names.contains(&name) {
                    return Err(Error::new(name.span(), format!("duplicate name `{name}`: it is already a state, control, parameter or binding")));
                }
                all_names.push(name.clone());
                lets.push((name, (*init.expr).clone()));
            }
            Stmt::Expr(e, None) if i + 1 == n_stmts => tail = Some(e),
            other => {
                return Err(Error::new(
                    other.span(),
                    format!("unsupported statement: a model body is `let` bindings followed by `{out_name} {{ .. }}`"),
                ))
            }
        }
    }
    let Some(tail) = tail else {
        return Err(Error::new(func.block.span(), format!("the body must end with `{out_name} {{ <state>: <expression>, .. }}`")));
    };
    let Expr::Struct(st) = tail else {
        return Err(Error::new(tail.span(), format!("the body must end with `{out_name} {{ <state>: <expression>, .. }}`")));
    };
    if !st.path.is_ident(out_name) {
        return Err(Error::new(st.path.span(), format!("expected `{out_name} {{ .. }}` for a {} model", if time == TimeKind::Discrete { "discrete" } else { "continuous-time" })));
    }
    if let Some(rest) = &st.rest {
        return Err(Error::new(rest.span(), "`..` is not allowed: give every state explicitly"));
    }
    let mut outputs: Vec<Option<Expr>> = vec![None; states.len()];
    for fv in &st.fields {
        let syn::Member::Named(field) = &fv.member else {
            return Err(Error::new(fv.member.span(), "expected a state name"));
        };
        let Some(k) = states.iter().position(|s| s == field) else {
            return Err(Error::new(field.span(), format!("`{field}` is not a state of this model (states: {})", join(&states))));
        };
        if outputs[k].is_some() {
            return Err(Error::new(field.span(), format!("state `{field}` is given twice")));
        }
        outputs[k] = Some(fv.expr.clone());
    }
    let missing: Vec<String> = states.iter().zip(&outputs).filter(|(_, o)| o.is_none()).map(|(s, _)| format!("`{s}`")).collect();
    if !missing.is_empty() {
        return Err(Error::new(st.span(), format!("{} missing from `{out_name}`: every state needs an equation", missing.join(", "))));
    }
    let docs = func.attrs.iter().filter(|a| a.path().is_ident("doc")).cloned().collect();
    Ok(ModelSpec {
        name: sig.ident.clone(),
        vis: func.vis.clone(),
        docs,
        time,
        states,
        controls,
        params,
        lets,
        outputs: outputs.into_iter().map(|o| o.expect("checked")).collect(),
        krate,
    })
}

/// `a, b, c`.
pub fn join(ids: &[Ident]) -> String {
    ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}
