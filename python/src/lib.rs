//! `mpc_rs._native`: the `mpc_pyo3` solver classes over the bundled models (pendulum, cart-pole,
//! quadrotor). A user's crate exports its own models the same way (`mpc_pyo3::python_module!`).

mpc_pyo3::python_module!(_native, [mpc_models::Pendulum, mpc_models::Cartpole, mpc_models::Quadrotor]);
