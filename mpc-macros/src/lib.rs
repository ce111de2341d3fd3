//! `#[mpc_model]`: turns a plain Rust function describing a robot's dynamics into a model type
//! with exact, simplified, CSE-shared derivatives, as Rust code and as CUDA device code.
//!
//! The pipeline is a small compiler, one module per stage:
//! [`spec`] (parse and check the function) → [`lower`] (build the expression DAG of the discrete
//! map through the integrator, then its Jacobians and co-state–weighted Hessian with [`diff`])
//! → [`print`] (one schedule, two printers) → [`codegen`] (assemble the items).
//! The DAG itself ([`expr`]) is hash-consed: common subexpressions are shared by construction.
//!
//! ```ignore
//! /// Kinematic bicycle, continuous time, integrated with RK4.
//! #[mpc_model(dt = 0.05, integrator = rk4)]
//! pub fn bicycle(
//!     #[state] px: f64, #[state] py: f64, #[state] yaw: f64, #[state] v: f64,
//!     #[control(min = -3.0, max = 3.0)] accel: f64,
//!     #[control(min = -0.5, max = 0.5)] steer: f64,
//!     #[param(default = 2.5)] wheelbase: f64,
//! ) -> Derivative {
//!     let turn = v / wheelbase;
//!     Derivative { px: v * yaw.cos(), py: v * yaw.sin(), yaw: turn * steer.tan(), v: accel }
//! }
//! ```
//! generates `pub struct Bicycle { pub wheelbase: f64, pub dt: f64 }` implementing
//! `mpc_runtime::Model`.

use proc_macro::TokenStream;

mod codegen;
mod diff;
mod expr;
mod lower;
mod print;
mod spec;

/// Generate a model type from a dynamics function. See the crate documentation.
///
/// Attribute arguments: `discrete` (the body returns `Next { .. }`), or `dt = <seconds>` with
/// optional `integrator = euler | rk4` (default `rk4`; the body returns `Derivative { .. }`),
/// and optionally `crate = <path>` (default `::mpc_runtime`).
#[proc_macro_attribute]
pub fn mpc_model(attr: TokenStream, item: TokenStream) -> TokenStream {
    let func = match syn::parse::<syn::ItemFn>(item) {
        Ok(f) => f,
        Err(e) => return e.to_compile_error().into(),
    };
    expand(attr.into(), func).unwrap_or_else(|e| e.to_compile_error()).into()
}

fn expand(attr: proc_macro2::TokenStream, func: syn::ItemFn) -> syn::Result<proc_macro2::TokenStream> {
    let spec = spec::parse(attr, func)?;
    let derived = lower::derive(&spec)?;
    codegen::generate(&spec, &derived)
}
