//! Assembling the generated items: the model struct, its `Model` impl (Rust printer) and its
//! CUDA device source (CUDA printer).

use crate::lower::Derived;
use crate::print::{CudaPrinter, Names, RustLanesPrinter, RustPrinter, body, op_count};
use crate::spec::{ModelSpec, TimeKind};
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::{Error, Result};

/// `quadrotor_v2` → `QuadrotorV2`.
fn camel(s: &str) -> String {
    s.split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
        })
        .collect()
}

fn time_name(t: TimeKind) -> &'static str {
    match t {
        TimeKind::Discrete => "discrete",
        TimeKind::Euler => "continuous time, explicit Euler",
        TimeKind::Rk4 => "continuous time, Runge-Kutta 4",
    }
}

/// FNV-1a, 64 bit: a stable content hash for banners and caches.
pub fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

struct Sources {
    rust_step: String,
    rust_linearize: String,
    /// `step` and `linearize` over lanes of problems.
    rust_step_lanes: String,
    rust_linearize_lanes: String,
    rust_hessian: String,
    rust_param_jacobian: String,
    rust_param_hessian: String,
    cuda: String,
    /// Operations of step, linearize and weighted_hessian (DAG interior nodes).
    ops: [usize; 3],
}

fn sources(spec: &ModelSpec, d: &Derived) -> Sources {
    let (nx, nu) = (spec.states.len(), spec.controls.len());
    let n = nx + nu;
    let states: Vec<String> = spec.states.iter().map(|s| s.to_string()).collect();
    let controls: Vec<String> = spec.controls.iter().map(|c| c.name.to_string()).collect();
    let params: Vec<String> = spec.params.iter().map(|p| p.name.to_string()).collect();
    let names = Names { states: &states, controls: &controls, params: &params };
    let g = &d.graph;

    let step_t = |pre: &str| -> Vec<(String, usize)> { d.next.iter().enumerate().map(|(i, &id)| (format!("{pre}[{i}]"), id)).collect() };
    let mat_t = |pre: &str, ids: &[usize]| -> Vec<(String, usize)> { ids.iter().enumerate().map(|(k, &id)| (format!("{pre}[{k}]"), id)).collect() };
    // Upper triangle of H, mirrored.
    let hess_t = |pre: &str| -> Vec<(String, usize)> {
        let mut t = Vec::new();
        for j in 0..n {
            for k in j..n {
                t.push((format!("{pre}[{}]", j * n + k), d.h[j * n + k]));
                if k != j {
                    t.push((format!("{pre}[{}]", k * n + j), d.h[j * n + k]));
                }
            }
        }
        t
    };

    // ---- Rust ----
    let load_rust = {
        let lhs: Vec<&str> = states.iter().chain(&controls).map(String::as_str).collect();
        let rhs: Vec<String> = (0..nx).map(|i| format!("__x[{i}]")).chain((0..nu).map(|i| format!("__u[{i}]"))).collect();
        format!("let ({},) = ({},);\n", lhs.join(", "), rhs.join(", "))
    };
    let rust_step = format!("{load_rust}{}", body(g, &names, &RustPrinter, &step_t("__x_next"), ""));
    let mut lin = step_t("__x_next");
    lin.extend(mat_t("__a", &d.a));
    lin.extend(mat_t("__b", &d.b));
    let rust_linearize = format!("{load_rust}{}", body(g, &names, &RustPrinter, &lin, ""));
    let rust_step_lanes = format!("{load_rust}{}", body(g, &names, &RustLanesPrinter, &step_t("__x_next"), ""));
    let rust_linearize_lanes = format!("{load_rust}{}", body(g, &names, &RustLanesPrinter, &lin, ""));
    let rust_hessian = format!("{load_rust}{}", body(g, &names, &RustPrinter, &hess_t("__h"), ""));
    let rust_param_jacobian = format!("{load_rust}{}", body(g, &names, &RustPrinter, &mat_t("__fp", &d.fp), ""));
    let rust_param_hessian = format!("{load_rust}{}", body(g, &names, &RustPrinter, &mat_t("__hp", &d.hp), ""));

    // ---- CUDA ----
    let load_cuda: String = states
        .iter()
        .enumerate()
        .map(|(i, s)| format!("    const T {s} = x_[{i}];\n"))
        .chain(controls.iter().enumerate().map(|(i, c)| format!("    const T {c} = u_[{i}];\n")))
        .collect();
    let mut lin_c = step_t("x_next_");
    lin_c.extend(mat_t("A_", &d.a));
    lin_c.extend(mat_t("B_", &d.b));
    let name = spec.name.to_string();
    let ns = format!("mpc_model_{name}");
    let guard = format!("MPC_MODEL_{}_CUH", name.to_uppercase());
    let param_fields: String = params.iter().map(|p| format!("    T {p};\n")).collect();
    let param_defaults: String = spec.params.iter().map(|p| format!("    p.{} = T({:?});\n", p.name, p.default)).collect();
    let fmt_bound = |v: f64| if v.is_finite() { format!("{v:?}") } else if v > 0.0 { "MPC_INF".into() } else { "-MPC_INF".into() };
    let lower: Vec<String> = spec.controls.iter().map(|c| fmt_bound(c.min)).collect();
    let upper: Vec<String> = spec.controls.iter().map(|c| fmt_bound(c.max)).collect();
    let ops = [op_count(g, &d.next), op_count(g, &lin_c.iter().map(|t| t.1).collect::<Vec<_>>()), op_count(g, &d.h)];
    let code = fill(
        MODEL_TEMPLATE,
        &[
            ("guard", guard.clone()),
            ("ns", ns.clone()),
            ("nx", nx.to_string()),
            ("nu", nu.to_string()),
            ("n", n.to_string()),
            ("param_fields", param_fields.clone()),
            ("param_defaults", param_defaults.clone()),
            ("load_cuda", load_cuda.clone()),
            ("prelude", CUDA_PRELUDE.to_string()),
            ("np", params.len().to_string()),
            ("states", states.join(", ")),
            ("controls", controls.join(", ")),
            ("params", params.join(", ")),
            ("lower", lower.join(", ")),
            ("upper", upper.join(", ")),
            ("nsteps", ops[0].to_string()),
            ("nlin", ops[1].to_string()),
            ("nhess", ops[2].to_string()),
            ("step_body", body(g, &names, &CudaPrinter, &step_t("x_next_"), "    ")),
            ("lin_body", body(g, &names, &CudaPrinter, &lin_c, "    ")),
            ("hess_body", body(g, &names, &CudaPrinter, &hess_t("H_"), "    ")),
            ("nfp", op_count(g, &d.fp).to_string()),
            ("nhp", op_count(g, &d.hp).to_string()),
            ("fp_body", body(g, &names, &CudaPrinter, &mat_t("Fp_", &d.fp), "    ")),
            ("hp_body", body(g, &names, &CudaPrinter, &mat_t("Hp_", &d.hp), "    ")),
        ],
    );
    let banner = format!(
        "// =============================================================================\n\
         // GENERATED by mpc-macros #[mpc_model] from the model `{name}` ({}).\n\
         // DO NOT EDIT: change the model and rebuild. Content hash: {:016x}.\n\
         // Device functions templated on the real type (float or double); arrays row-major.\n\
         // =============================================================================\n",
        time_name(spec.time),
        fnv1a(&code)
    );
    Sources { rust_step, rust_linearize, rust_step_lanes, rust_linearize_lanes, rust_hessian, rust_param_jacobian, rust_param_hessian, cuda: banner + &code, ops }
}

/// Math helpers the generated device code calls, overloaded for float and double.
const CUDA_PRELUDE: &str = include_str!("../templates/prelude.cuh");

/// The model's CUDA header, with `@name@` placeholders ([`fill`]).
const MODEL_TEMPLATE: &str = include_str!("../templates/model.cuh");

/// `template` with every `@name@` replaced by its value. Every placeholder of the template
/// must be given and every value used (checked by the tests): the header and the Rust side
/// cannot silently disagree.
fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len() * 2);
    let mut rest = template;
    while let Some(start) = rest.find('@') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after.find('@').expect("model.cuh: an unclosed @placeholder@");
        let key = &after[..end];
        let value = values.iter().find(|(k, _)| *k == key).unwrap_or_else(|| panic!("model.cuh: no value for @{key}@"));
        out.push_str(&value.1);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    for (k, _) in values {
        assert!(template.contains(&format!("@{k}@")), "model.cuh: the value @{k}@ is not used");
    }
    out
}

fn parse_body(src: &str) -> Result<TokenStream> {
    src.parse::<TokenStream>().map_err(|e| Error::new(Span::call_site(), format!("internal error: generated Rust does not parse: {e}")))
}

fn lit(v: f64) -> TokenStream {
    if v.is_finite() {
        let l = proc_macro2::Literal::f64_suffixed(v.abs());
        if v < 0.0 { quote!(-#l) } else { quote!(#l) }
    } else if v > 0.0 {
        quote!(f64::INFINITY)
    } else {
        quote!(f64::NEG_INFINITY)
    }
}

/// Largest Jacobian operation count for which the lane code gets an AVX2 build besides the
/// baseline one (see `generate`).
const WIDE_LANES_MAX_OPS: usize = 4000;

/// All items generated for one model.
pub fn generate(spec: &ModelSpec, d: &Derived) -> Result<TokenStream> {
    let src = sources(spec, d);
    let krate = &spec.krate;
    let vis = &spec.vis;
    let docs = &spec.docs;
    let name_str = spec.name.to_string();
    let ty = format_ident!("{}", camel(&name_str), span = spec.name.span());
    let (nx, nu, np) = (spec.states.len(), spec.controls.len(), spec.params.len());
    let state_names: Vec<String> = spec.states.iter().map(|s| s.to_string()).collect();
    let control_names: Vec<String> = spec.controls.iter().map(|c| c.name.to_string()).collect();
    let param_names: Vec<String> = spec.params.iter().map(|p| p.name.to_string()).collect();
    let lower: Vec<TokenStream> = spec.controls.iter().map(|c| lit(c.min)).collect();
    let upper: Vec<TokenStream> = spec.controls.iter().map(|c| lit(c.max)).collect();
    let fields: Vec<&syn::Ident> = spec.params.iter().map(|p| &p.name).collect();
    let defaults: Vec<TokenStream> = spec.params.iter().map(|p| lit(p.default)).collect();
    let field_docs: Vec<String> = spec
        .params
        .iter()
        .map(|p| if p.name == "dt" && spec.time != TimeKind::Discrete { format!("Integration step in seconds (default {:?}).", p.default) } else { format!("Model parameter (default {:?}).", p.default) })
        .collect();
    let time = match spec.time {
        TimeKind::Discrete => quote!(#krate::TimeModel::Discrete),
        TimeKind::Euler => quote!(#krate::TimeModel::Euler),
        TimeKind::Rk4 => quote!(#krate::TimeModel::Rk4),
    };
    let is_linear = d.is_linear();
    let cuda = &src.cuda;
    let [ops_step, ops_lin, ops_hess] = src.ops;
    let rust_all = format!(
        "// GENERATED by mpc-macros #[mpc_model] from the model `{name_str}`: bodies of the Model impl\n\
         // (`__math` is `mpc_runtime::math`, `__lane` is `mpc_runtime::lane`).\n\
         fn eval_step(&self, __x: &[f64], __u: &[f64], __x_next: &mut [f64]) {{\n{}}}\n\n\
         fn eval_linearize(&self, __x: &[f64], __u: &[f64], __x_next: &mut [f64], __a: &mut [f64], __b: &mut [f64]) {{\n{}}}\n\n\
         fn eval_weighted_hessian(&self, __x: &[f64], __u: &[f64], __lambda: &[f64], __h: &mut [f64]) {{\n{}}}\n\n\
         fn eval_param_jacobian(&self, __x: &[f64], __u: &[f64], __fp: &mut [f64]) {{\n{}}}\n\n\
         fn eval_param_hessian(&self, __x: &[f64], __u: &[f64], __lambda: &[f64], __hp: &mut [f64]) {{\n{}}}\n\n\
         // Over lanes of __L problems (x[i][l]: state i of problem l), the same operations per lane.\n\
         fn eval_step_lanes(&self, __x: &[Lane], __u: &[Lane], __x_next: &mut [Lane]) {{\n{}}}\n\n\
         fn eval_linearize_lanes(&self, __x: &[Lane], __u: &[Lane], __x_next: &mut [Lane], __a: &mut [Lane], __b: &mut [Lane]) {{\n{}}}\n",
        src.rust_step,
        src.rust_linearize,
        src.rust_hessian,
        src.rust_param_jacobian,
        src.rust_param_hessian,
        src.rust_step_lanes,
        src.rust_linearize_lanes
    );
    let step_body = parse_body(&src.rust_step)?;
    let lin_body = parse_body(&src.rust_linearize)?;
    let step_lanes_body = parse_body(&src.rust_step_lanes)?;
    let lin_lanes_body = parse_body(&src.rust_linearize_lanes)?;
    let hess_body = parse_body(&src.rust_hessian)?;
    let fp_body = parse_body(&src.rust_param_jacobian)?;
    let hp_body = parse_body(&src.rust_param_hessian)?;
    let n = nx + nu;
    // The lane bodies with their prologue, built three times (baseline, AVX2, AVX-512F).
    let step_lanes_fn = quote! {
        const __L: usize = #krate::LANES;
        use #krate::lane as __lane;
        let __x = &__x[..#nx];
        let __u = &__u[..#nu];
        let __x_next = &mut __x_next[..#nx];
        #step_lanes_body
    };
    let lin_lanes_fn = quote! {
        const __L: usize = #krate::LANES;
        use #krate::lane as __lane;
        let __x = &__x[..#nx];
        let __u = &__u[..#nu];
        let __x_next = &mut __x_next[..#nx];
        let __a = &mut __a[..#nx * #nx];
        let __b = &mut __b[..#nx * #nu];
        #lin_lanes_body
    };
    // An AVX2 build of the lane code (the solver's lane loops run in AVX2/AVX-512 builds; the
    // baseline is 2-wide SSE2), same operations and so the same bits, for models up to
    // WIDE_LANES_MAX_OPS operations in their Jacobians: a copy of a huge model's lane code
    // would add minutes of release build time for a few per cent of solve time.
    let wide = ops_lin <= WIDE_LANES_MAX_OPS;
    let (wide_methods, wide_step_dispatch, wide_lin_dispatch) = if wide {
        (
            quote! {
                #[cfg(target_arch = "x86_64")]
                #[doc(hidden)]
                #[target_feature(enable = "avx2")]
                unsafe fn __mpc_step_lanes_avx2(&self, __x: &[#krate::Lane], __u: &[#krate::Lane], __x_next: &mut [#krate::Lane]) {
                    #step_lanes_fn
                }
                #[cfg(target_arch = "x86_64")]
                #[doc(hidden)]
                #[target_feature(enable = "avx2")]
                unsafe fn __mpc_linearize_lanes_avx2(
                    &self,
                    __x: &[#krate::Lane],
                    __u: &[#krate::Lane],
                    __x_next: &mut [#krate::Lane],
                    __a: &mut [#krate::Lane],
                    __b: &mut [#krate::Lane],
                ) {
                    #lin_lanes_fn
                }
            },
            quote! {
                #[cfg(target_arch = "x86_64")]
                if #krate::lane::isa_level() >= 1 {
                    // SAFETY: isa_level says this CPU has AVX2.
                    return unsafe { self.__mpc_step_lanes_avx2(__x, __u, __x_next) };
                }
            },
            quote! {
                #[cfg(target_arch = "x86_64")]
                if #krate::lane::isa_level() >= 1 {
                    // SAFETY: isa_level says this CPU has AVX2.
                    return unsafe { self.__mpc_linearize_lanes_avx2(__x, __u, __x_next, __a, __b) };
                }
            },
        )
    } else {
        (quote! {}, quote! {}, quote! {})
    };
    let doc_sizes = format!("Generated by `#[mpc_model]`: nx = {nx} ({}), nu = {nu} ({}), {}.", state_names.join(", "), control_names.join(", "), time_name(spec.time));
    let model_name = &name_str;

    Ok(quote! {
        #(#docs)*
        #[doc = ""]
        #[doc = #doc_sizes]
        #[derive(Clone, Copy, Debug, PartialEq)]
        #vis struct #ty {
            #(
                #[doc = #field_docs]
                pub #fields: f64,
            )*
        }

        impl ::core::default::Default for #ty {
            fn default() -> Self {
                Self { #( #fields: #defaults, )* }
            }
        }

        impl #ty {
            /// The generated Rust bodies of the `Model` methods, as readable source (for `mpc codegen`).
            pub const GENERATED_RUST: &'static str = #rust_all;
        }

        // The lane code as methods of their own (the trait methods only dispatch, so a call holds
        // one body's frame: the temporaries of a large model's lane code are ~100 KB in the dev
        // profile), and built again for AVX2 where the model is not huge (`wide` above).
        #[allow(unused_variables, unused_parens, unused_mut, clippy::all)]
        impl #ty {
            #[doc(hidden)]
            #[inline(never)]
            fn __mpc_step_lanes_base(&self, __x: &[#krate::Lane], __u: &[#krate::Lane], __x_next: &mut [#krate::Lane]) {
                #step_lanes_fn
            }
            #[doc(hidden)]
            #[inline(never)]
            fn __mpc_linearize_lanes_base(
                &self,
                __x: &[#krate::Lane],
                __u: &[#krate::Lane],
                __x_next: &mut [#krate::Lane],
                __a: &mut [#krate::Lane],
                __b: &mut [#krate::Lane],
            ) {
                #lin_lanes_fn
            }
            #wide_methods
        }

        impl #krate::Model for #ty {
            const NAME: &'static str = #model_name;
            const NX: usize = #nx;
            const NU: usize = #nu;
            const NP: usize = #np;
            const STATE_NAMES: &'static [&'static str] = &[#(#state_names),*];
            const CONTROL_NAMES: &'static [&'static str] = &[#(#control_names),*];
            const PARAM_NAMES: &'static [&'static str] = &[#(#param_names),*];
            const CONTROL_LOWER: &'static [f64] = &[#(#lower),*];
            const CONTROL_UPPER: &'static [f64] = &[#(#upper),*];
            const TIME_MODEL: #krate::TimeModel = #time;
            const CUDA_SOURCE: &'static str = #cuda;
            const IS_LINEAR: bool = #is_linear;
            const OP_COUNTS: #krate::OpCounts =
                #krate::OpCounts { step: #ops_step, linearize: #ops_lin, weighted_hessian: #ops_hess };

            fn param(&self, name: &str) -> ::core::option::Option<f64> {
                match name {
                    #( #param_names => ::core::option::Option::Some(self.#fields), )*
                    _ => ::core::option::Option::None,
                }
            }

            fn set_param(&mut self, name: &str, value: f64) -> ::core::result::Result<(), #krate::ParamError> {
                if !value.is_finite() {
                    return ::core::result::Result::Err(#krate::ParamError::NotFinite { model: #model_name, name: name.into(), value });
                }
                match name {
                    #( #param_names => { self.#fields = value; ::core::result::Result::Ok(()) } )*
                    _ => ::core::result::Result::Err(#krate::ParamError::Unknown {
                        model: #model_name,
                        name: name.into(),
                        known: <Self as #krate::Model>::PARAM_NAMES.join(", "),
                    }),
                }
            }

            #[allow(unused_variables, unused_parens, unused_imports, clippy::all)]
            #[inline]
            fn eval_step(&self, __x: &[f64], __u: &[f64], __x_next: &mut [f64]) {
                use #krate::math as __math;
                let __x = &__x[..#nx];
                let __u = &__u[..#nu];
                let __x_next = &mut __x_next[..#nx];
                #step_body
            }

            #[allow(unused_variables, unused_parens, unused_imports, clippy::all)]
            #[inline]
            fn eval_linearize(&self, __x: &[f64], __u: &[f64], __x_next: &mut [f64], __a: &mut [f64], __b: &mut [f64]) {
                use #krate::math as __math;
                let __x = &__x[..#nx];
                let __u = &__u[..#nu];
                let __x_next = &mut __x_next[..#nx];
                let __a = &mut __a[..#nx * #nx];
                let __b = &mut __b[..#nx * #nu];
                #lin_body
            }

            #[allow(unused_variables, unused_parens, unused_mut, clippy::all)]
            #[inline]
            fn eval_step_lanes(&self, __x: &[#krate::Lane], __u: &[#krate::Lane], __x_next: &mut [#krate::Lane]) {
                #wide_step_dispatch
                self.__mpc_step_lanes_base(__x, __u, __x_next)
            }

            #[allow(unused_variables, unused_parens, unused_mut, clippy::all)]
            #[inline]
            fn eval_linearize_lanes(
                &self,
                __x: &[#krate::Lane],
                __u: &[#krate::Lane],
                __x_next: &mut [#krate::Lane],
                __a: &mut [#krate::Lane],
                __b: &mut [#krate::Lane],
            ) {
                #wide_lin_dispatch
                self.__mpc_linearize_lanes_base(__x, __u, __x_next, __a, __b)
            }

            #[allow(unused_variables, unused_parens, unused_imports, clippy::all)]
            #[inline]
            fn eval_weighted_hessian(&self, __x: &[f64], __u: &[f64], __lambda: &[f64], __h: &mut [f64]) {
                use #krate::math as __math;
                let __x = &__x[..#nx];
                let __u = &__u[..#nu];
                let __lambda = &__lambda[..#nx];
                let __h = &mut __h[..#n * #n];
                #hess_body
            }

            #[allow(unused_variables, unused_parens, unused_imports, clippy::all)]
            #[inline]
            fn eval_param_jacobian(&self, __x: &[f64], __u: &[f64], __fp: &mut [f64]) {
                use #krate::math as __math;
                let __x = &__x[..#nx];
                let __u = &__u[..#nu];
                let __fp = &mut __fp[..#nx * #np];
                #fp_body
            }

            #[allow(unused_variables, unused_parens, unused_imports, clippy::all)]
            #[inline]
            fn eval_param_hessian(&self, __x: &[f64], __u: &[f64], __lambda: &[f64], __hp: &mut [f64]) {
                use #krate::math as __math;
                let __x = &__x[..#nx];
                let __u = &__u[..#nu];
                let __lambda = &__lambda[..#nx];
                let __hp = &mut __hp[..#n * #np];
                #hp_body
            }
        }
    })
}
