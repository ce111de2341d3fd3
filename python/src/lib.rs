//! `mpc_rs._native`: the `mpc_pyo3` solver classes over the bundled models (pendulum, cart-pole,
//! quadrotor), which a user's crate exports for its own models the same way
//! (`mpc_pyo3::python_module!`), and the quadrotor racing task as a batch of environments
//! (`RacingVecEnv`, the Rust `racing::VecEnv` that the project's trainer steps), wrapped as
//! Gymnasium environments by `mpc_rs.gym`.

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use racing::Track;
use racing::env::{EnvConfig, OBS_DIM, VecEnv};

/// A batch of quadrotor racing environments with auto-reset (the Rust `VecEnv`): see
/// `mpc_rs.gym` for the Gymnasium wrappers and the meaning of everything.
#[pyclass(module = "mpc_rs._native")]
struct RacingVecEnv {
    env: VecEnv,
    track: Track,
    config: EnvConfig,
}

fn obs_array<'py>(py: Python<'py>, obs: &[[f32; OBS_DIM]]) -> PyResult<Bound<'py, PyAny>> {
    let flat: Vec<f32> = obs.iter().flatten().copied().collect();
    Ok(PyArray1::from_vec(py, flat).reshape([obs.len(), OBS_DIM])?.into_any())
}

#[pymethods]
impl RacingVecEnv {
    /// `track`: a built-in track's name or a track YAML file; `config_json`: environment
    /// settings as JSON (every key optional, unknown keys rejected; the trainer's defaults).
    #[new]
    #[pyo3(signature = (track, num_envs, seed=0, config_json=None))]
    fn new(track: &str, num_envs: usize, seed: u64, config_json: Option<&str>) -> PyResult<Self> {
        if num_envs == 0 {
            return Err(PyValueError::new_err("num_envs: must be at least 1"));
        }
        let track = Track::resolve(track).map_err(|e| PyValueError::new_err(format!("track: {e}")))?;
        let config: EnvConfig = match config_json {
            None => EnvConfig::default(),
            Some(text) => serde_json::from_str(text).map_err(|e| PyValueError::new_err(format!("config: {e}")))?,
        };
        config.validate().map_err(|e| PyValueError::new_err(format!("config: {e}")))?;
        let env = VecEnv::new(track.clone(), config.clone(), num_envs, seed);
        Ok(RacingVecEnv { env, track, config })
    }

    /// Restarts every env, env `i` from `StdRng::seed_from_u64(seed + i)`; returns the
    /// observations `(num_envs, obs_dim)` float32.
    fn reset<'py>(&mut self, py: Python<'py>, seed: u64) -> PyResult<Bound<'py, PyAny>> {
        self.env = VecEnv::new(self.track.clone(), self.config.clone(), self.env.len(), seed);
        obs_array(py, &self.env.observations())
    }

    /// Steps every env with its normalised action (`(num_envs, 4)` float32 in [-1, 1]: thrust,
    /// roll, pitch, yaw rate). Returns `(obs, reward, terminated, truncated, events, ended)`:
    /// observations after any auto-reset, `ended` a list of `(env, final_obs, stats)` for the
    /// episodes that ended in this step.
    fn step<'py>(&mut self, py: Python<'py>, actions: PyReadonlyArray2<'py, f32>) -> PyResult<Bound<'py, PyAny>> {
        let n = self.env.len();
        if actions.shape() != [n, 4] {
            return Err(PyValueError::new_err(format!("actions: expected shape ({n}, 4), got {:?}", actions.shape())));
        }
        let a: Vec<[f32; 4]> = actions.as_array().rows().into_iter().map(|r| [r[0], r[1], r[2], r[3]]).collect();
        let out = py.detach(|| self.env.step(&a));
        let truncated: Vec<bool> =
            out.events.iter().zip(&out.dones).map(|(e, &d)| d && e.as_str().contains("timeout")).collect();
        let terminated: Vec<bool> = out.dones.iter().zip(&truncated).map(|(&d, &t)| d && !t).collect();
        let events: Vec<&str> = out.events.iter().map(|e| e.as_str()).collect();
        let mut ended = Vec::with_capacity(out.finished.len());
        for (stats, (i, last)) in out.finished.iter().zip(&out.final_observations) {
            let d = PyDict::new(py);
            d.set_item("return", stats.ret)?;
            d.set_item("length", stats.length)?;
            d.set_item("gates_passed", stats.gates_passed)?;
            d.set_item("laps", stats.laps)?;
            d.set_item("lap_times", stats.lap_times.clone())?;
            d.set_item("partial_first_lap", stats.partial_first_lap)?;
            d.set_item("end", stats.end.map(|e| e.as_str()))?;
            d.set_item("max_speed", stats.max_speed)?;
            ended.push((*i, PyArray1::from_slice(py, last), d));
        }
        let obs = obs_array(py, &self.env.observations())?;
        let rewards = PyArray1::from_vec(py, out.rewards);
        let out = (obs, rewards, PyArray1::from_vec(py, terminated), PyArray1::from_vec(py, truncated), events, ended);
        Ok(out.into_pyobject(py)?.into_any())
    }

    /// Number of environments.
    #[getter]
    fn num_envs(&self) -> usize {
        self.env.len()
    }
    /// Length of an observation.
    #[getter]
    fn obs_dim(&self) -> usize {
        OBS_DIM
    }
    /// The track's name.
    #[getter]
    fn track(&self) -> String {
        self.track.id.clone()
    }
    /// The environment settings in use, as JSON.
    #[getter]
    fn config_json(&self) -> String {
        serde_json::to_string(&self.config).expect("EnvConfig serialises")
    }
    /// The raw states `(num_envs, 10)`: position, quaternion (w, x, y, z), velocity.
    fn states<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let s = self.env.states();
        let flat: Vec<f64> = s.iter().flatten().copied().collect();
        Ok(PyArray1::from_vec(py, flat).reshape([s.len(), s.first().map_or(0, |x| x.len())])?.into_any())
    }
}

/// The built-in tracks' names.
#[pyfunction]
fn tracks() -> Vec<&'static str> {
    racing::track::BUILTIN_TRACKS.iter().map(|(n, _)| *n).collect()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    mpc_pyo3::add_models(
        m,
        vec![
            mpc_pyo3::entry::<mpc_models::Pendulum>(),
            mpc_pyo3::entry::<mpc_models::Cartpole>(),
            mpc_pyo3::entry::<mpc_models::Quadrotor>(),
        ],
    )?;
    m.add_class::<RacingVecEnv>()?;
    m.add_function(wrap_pyfunction!(tracks, m)?)?;
    Ok(())
}
