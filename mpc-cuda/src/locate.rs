//! Finding the CUDA compiler pieces (NVRTC, `ptxas`) on a machine without a CUDA toolkit and
//! without hand-set environment variables.
//!
//! The pieces usually come from NVIDIA's PyPI wheels (`nvidia-cuda-nvrtc-cu12`,
//! `nvidia-cuda-nvcc-cu12`), installed by `scripts/setup.sh` into the project's `.venv`:
//!
//! ```text
//! <site-packages>/nvidia/cuda_nvrtc/lib/libnvrtc.so.12
//! <site-packages>/nvidia/cuda_nvrtc/lib/libnvrtc-builtins.so.12.<minor>
//! <site-packages>/nvidia/cuda_nvcc/bin/ptxas
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

/// Name of the directory of the project's virtual environment (see `scripts/setup.sh`).
const VENV_DIR: &str = ".venv";

/// Directories that are CUDA toolkit roots (`<root>/lib64`, `<root>/bin`), in search order:
/// `CUDA_PATH`, `CUDA_HOME`, `/usr/local/cuda`.
pub(crate) fn toolkit_roots() -> Vec<PathBuf> {
    let mut roots = Vec::new();
    for var in ["CUDA_PATH", "CUDA_HOME"] {
        if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            roots.push(PathBuf::from(v));
        }
    }
    roots.push(PathBuf::from("/usr/local/cuda"));
    dedup(roots)
}

/// Library directories of a toolkit root.
pub(crate) fn toolkit_lib_dirs(root: &Path) -> Vec<PathBuf> {
    vec![
        root.join("lib64"),
        root.join("lib"),
        root.join("targets/x86_64-linux/lib"),
        root.join("targets/sbsa-linux/lib"),
    ]
}

/// Virtual environments that belong to this project or to the caller, in search order:
/// `.venv` in the ancestors of the running executable (`target/*/deps/..` sits inside the
/// repository), in the ancestors of this crate's source directory as it was at build time, in
/// the ancestors of the current directory, and finally `$VIRTUAL_ENV`.
pub(crate) fn project_venvs() -> Vec<PathBuf> {
    let mut starts: Vec<PathBuf> = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        starts.push(exe);
    }
    starts.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    if let Ok(cwd) = std::env::current_dir() {
        starts.push(cwd);
    }
    let mut venvs = Vec::new();
    for start in starts {
        for dir in start.ancestors() {
            let v = dir.join(VENV_DIR);
            if v.is_dir() {
                venvs.push(v);
            }
        }
    }
    if let Some(v) = std::env::var_os("VIRTUAL_ENV").filter(|v| !v.is_empty()) {
        venvs.push(PathBuf::from(v));
    }
    dedup(venvs)
}

/// `site-packages` directories of a Python prefix (a venv or an installation):
/// `<prefix>/lib/python3*/site-packages` and `.../dist-packages`.
fn prefix_site_dirs(prefix: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for lib in ["lib", "lib64"] {
        for py in python_dirs(&prefix.join(lib)) {
            out.push(py.join("site-packages"));
            out.push(py.join("dist-packages"));
        }
    }
    out
}

/// The `python3*` subdirectories of `dir`, newest first (lexicographically descending).
fn python_dirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with("python3")))
        .map(|e| e.path())
        .collect();
    v.sort();
    v.reverse();
    v
}

/// Candidate `site-packages` directories, in search order: the project's virtual environments
/// first, then the usual per-user and system Python locations (no interpreter is run).
pub(crate) fn site_package_dirs() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for venv in project_venvs() {
        out.extend(prefix_site_dirs(&venv));
    }
    let mut prefixes: Vec<PathBuf> = Vec::new();
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        let home = PathBuf::from(home);
        prefixes.push(home.join(".local"));
        if let Ok(rd) = std::fs::read_dir(home.join(".pyenv/versions")) {
            let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
            v.sort();
            v.reverse();
            prefixes.extend(v);
        }
        for conda in ["miniconda3", "anaconda3", "miniforge3", "mambaforge"] {
            prefixes.push(home.join(conda));
        }
    }
    prefixes.extend(["/usr/local", "/usr", "/opt/conda"].map(PathBuf::from));
    for p in prefixes {
        out.extend(prefix_site_dirs(&p));
    }
    // Debian's unversioned directory.
    out.push(PathBuf::from("/usr/lib/python3/dist-packages"));
    dedup(out.into_iter().filter(|d| d.is_dir()).collect())
}

/// Last resort: ask the `python3` on `PATH` where the Python package `module` (a namespace
/// package of the NVIDIA wheels, e.g. `nvidia.cuda_nvrtc`) lives. `None` when there is no
/// interpreter or no such package.
pub(crate) fn python_package_dir(module: &str) -> Option<PathBuf> {
    let script = format!(
        "import importlib, sys\nm = importlib.import_module('{module}')\nprint(list(m.__path__)[0])"
    );
    let out = Command::new("python3").arg("-c").arg(script).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?;
    let p = PathBuf::from(s.trim());
    p.is_dir().then_some(p)
}

/// Directories on `PATH`.
pub(crate) fn path_dirs() -> Vec<PathBuf> {
    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default()
}

/// Removes later duplicates, keeping the first occurrence (search order matters).
pub(crate) fn dedup(v: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::with_capacity(v.len());
    for p in v {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// The value of an override variable such as `MPC_NVRTC_PATH`, when set and non-empty.
pub(crate) fn override_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// Formats a list of searched paths for an error message.
pub(crate) fn format_searched(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| format!("\n  {}", p.display())).collect()
}
