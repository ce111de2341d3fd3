//! Helpers shared by the integration tests: fixtures, temporary paths, the `mpc` binary, comparisons.
//!
//! Each test crate includes this file with `mod common;` and uses only some of it.
#![allow(dead_code)]

use mpc_models::ModelVisitor;
use mpc_runtime::Model;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `tests/fixtures` (the reference fixtures of `../shared/fixtures`), when it exists.
pub fn fixtures_dir() -> Option<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    d.is_dir().then_some(d)
}

/// The path of `tests/fixtures/<name>`, whether or not the file exists.
pub fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// The names of the `*.problem.json` files in `dir`, without that suffix, sorted.
pub fn fixture_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".problem.json").map(String::from))
        .collect();
    names.sort();
    names
}

/// (NX, NU) of a bundled model by name: the dimensions `Problem::parse` asks for.
pub fn model_dims(name: &str) -> Result<(usize, usize), String> {
    struct Dims;
    impl ModelVisitor for Dims {
        type Output = (usize, usize);
        fn visit<M: Model>(self) -> (usize, usize) {
            (M::NX, M::NU)
        }
    }
    mpc_models::dispatch(name, Dims).ok_or_else(|| format!("unknown model {name}"))
}

/// Parse a JSON file; panics when it cannot be read or parsed.
pub fn read_json(path: impl AsRef<Path>) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `<temp dir>/<prefix>-<pid>-<name>`; nothing is created or removed.
pub fn tmp_path(prefix: &str, name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{prefix}-{}-{name}", std::process::id()))
}

/// A fresh directory `<temp dir>/<prefix>-<tag>-XXXXXX`, removed when the handle drops (tests
/// leave nothing behind in /tmp).
#[allow(dead_code)]
pub fn tmp_dir(prefix: &str, tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("{prefix}-{tag}-")).tempdir().unwrap()
}

/// The `mpc` binary under test.
pub fn mpc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mpc"))
}

/// `mpc solve --problem <problem> --out <out>`, run to completion (whatever its exit status).
pub fn solve_file(problem: &Path, out: &Path) -> Output {
    mpc().args(["solve", "--problem"]).arg(problem).arg("--out").arg(out).output().unwrap()
}

/// Whether the tests run in CI (`CI` set and not empty, `0` or `false`), where a missing tool
/// is a failure rather than a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Largest |a - b| over equal-length slices; a pair where only one side is NaN counts as
/// infinity.
pub fn max_abs(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| if x.is_nan() != y.is_nan() { f64::INFINITY } else { (x - y).abs() })
        .fold(0.0, f64::max)
}

/// Largest |a - b| / max(1, |b|) (costs: `b` is the reference).
pub fn max_cost_rel(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / y.abs().max(1.0)).fold(0.0, f64::max)
}
