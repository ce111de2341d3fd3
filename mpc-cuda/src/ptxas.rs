//! Assembling PTX with `ptxas -v` to read per-kernel resource usage (registers, spills) without
//! a GPU.
//!
//! `ptxas` comes from the PyPI wheel `nvidia-cuda-nvcc-cu12` (`nvidia/cuda_nvcc/bin/ptxas`) or a
//! CUDA toolkit; see [`locate_ptxas`].

use std::path::{Path, PathBuf};
use std::process::Command;

use super::locate;
use super::nvrtc::locate_nvrtc;

/// Override variable: full path of the `ptxas` executable.
pub const PTXAS_PATH_VAR: &str = "MPC_PTXAS_PATH";

/// Resource usage of one function, from `ptxas -v`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelResources {
    /// Mangled or `extern "C"` name.
    pub name: String,
    /// True for a `__global__` entry point, false for a separately compiled device function.
    pub is_entry: bool,
    /// Registers per thread (entry points only; 0 when not reported).
    pub registers: u32,
    /// Bytes of stack frame per thread (local arrays that stayed in memory, spills).
    pub stack_frame_bytes: u32,
    /// Bytes of register spill stores.
    pub spill_store_bytes: u32,
    /// Bytes of register spill loads.
    pub spill_load_bytes: u32,
}

impl KernelResources {
    /// True when registers were spilled to local memory.
    pub fn spills(&self) -> bool {
        self.spill_store_bytes > 0 || self.spill_load_bytes > 0
    }
}

/// What `ptxas -v` reported for one PTX module.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PtxasReport {
    /// Real architecture, e.g. `"sm_80"`.
    pub arch: String,
    /// One entry per function `ptxas` reported on, in order of appearance.
    pub kernels: Vec<KernelResources>,
    /// The complete `ptxas` output (stdout and stderr).
    pub log: String,
}

impl PtxasReport {
    /// The resources of function `name`, if reported.
    pub fn kernel(&self, name: &str) -> Option<&KernelResources> {
        self.kernels.iter().find(|k| k.name == name)
    }

    /// The functions that spill registers.
    pub fn spilling(&self) -> Vec<&KernelResources> {
        self.kernels.iter().filter(|k| k.spills()).collect()
    }

    /// True when any function spills registers.
    pub fn has_spills(&self) -> bool {
        self.kernels.iter().any(KernelResources::spills)
    }

    /// The largest register count of any entry point.
    pub fn max_registers(&self) -> u32 {
        self.kernels.iter().map(|k| k.registers).max().unwrap_or(0)
    }
}

/// Why `ptxas` could not be run or failed.
#[derive(Debug, thiserror::Error)]
pub enum PtxasError {
    /// No `ptxas` executable was found.
    #[error(
        "ptxas not found; run scripts/setup.sh or pip install nvidia-cuda-nvcc-cu12 (or set MPC_PTXAS_PATH). Searched:{}",
        locate::format_searched(searched)
    )]
    NotFound {
        /// Paths tried, in order.
        searched: Vec<PathBuf>,
    },
    /// Writing the PTX to a temporary file or starting `ptxas` failed.
    #[error("running {}: {source}", path.display())]
    Io {
        /// The file or program involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `ptxas` exited unsuccessfully; `log` is its complete output.
    #[error("ptxas -arch={arch} failed ({status}):\n{log}")]
    Failed {
        /// Target architecture.
        arch: String,
        /// Exit status.
        status: String,
        /// Complete output.
        log: String,
    },
}

/// Finds the `ptxas` executable. Search order:
///
/// 1. `MPC_PTXAS_PATH`; when set, nothing else is searched;
/// 2. the one matching the NVRTC that [`locate_nvrtc`] finds (same wheel family or toolkit), so
///    that `ptxas` understands the PTX version NVRTC emits;
/// 3. `$CUDA_PATH/bin`, `$CUDA_HOME/bin`, `/usr/local/cuda/bin`;
/// 4. `nvidia/cuda_nvcc/bin` in the project's `.venv` and the usual Python locations;
/// 5. as a last resort, the package directory reported by `python3 -c 'import nvidia.cuda_nvcc'`;
/// 6. `PATH`.
pub fn locate_ptxas() -> Result<PathBuf, PtxasError> {
    let mut searched = Vec::new();
    if let Some(p) = locate::override_path(PTXAS_PATH_VAR) {
        if p.is_file() {
            return Ok(p);
        }
        searched.push(p);
        return Err(PtxasError::NotFound { searched });
    }
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(lib) = locate_nvrtc() {
        // <sp>/nvidia/cuda_nvrtc/lib/libnvrtc.so.12 -> <sp>/nvidia/cuda_nvcc/bin/ptxas
        // <root>/lib64/libnvrtc.so.12              -> <root>/bin/ptxas
        if let Some(lib_dir) = lib.parent() {
            if let Some(pkg_parent) = lib_dir.parent().and_then(Path::parent) {
                candidates.push(pkg_parent.join("cuda_nvcc/bin/ptxas"));
            }
            if let Some(root) = lib_dir.parent() {
                candidates.push(root.join("bin/ptxas"));
            }
        }
    }
    candidates.extend(locate::toolkit_roots().iter().map(|r| r.join("bin/ptxas")));
    candidates.extend(locate::site_package_dirs().iter().map(|sp| sp.join("nvidia/cuda_nvcc/bin/ptxas")));
    for c in locate::dedup(candidates) {
        if is_executable(&c) {
            return Ok(c);
        }
        searched.push(c);
    }
    if let Some(pkg) = locate::python_package_dir("nvidia.cuda_nvcc") {
        let c = pkg.join("bin/ptxas");
        if is_executable(&c) {
            return Ok(c);
        }
        searched.push(c);
    }
    for dir in locate::path_dirs() {
        let c = dir.join("ptxas");
        if is_executable(&c) {
            return Ok(c);
        }
    }
    searched.push(PathBuf::from("(PATH)"));
    Err(PtxasError::NotFound { searched })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Assembles `ptx` for the real architecture `arch` (e.g. `"sm_80"`) with `ptxas -v` and
/// reports registers and spills per function. The cubin is discarded.
pub fn assemble(ptx: &str, arch: &str) -> Result<PtxasReport, PtxasError> {
    assemble_with(ptx, arch, &[])
}

/// [`assemble`] with extra `ptxas` arguments (e.g. `["-O3"]`, `["--maxrregcount=128"]`).
pub fn assemble_with(ptx: &str, arch: &str, extra_args: &[&str]) -> Result<PtxasReport, PtxasError> {
    let ptxas = locate_ptxas()?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PtxasError::Io { path, source }
    };
    // A private folder (fresh random name, mode 0700), removed when `tmp` drops.
    let tmp = mpc_runtime::private_fs::private_temp_dir("mpc-ptxas-").map_err(io(&std::env::temp_dir()))?;
    let dir = tmp.path().to_path_buf();
    let input = dir.join("module.ptx");
    let output = dir.join("module.cubin");
    let result = (|| {
        std::fs::write(&input, ptx).map_err(io(&input))?;
        let out = Command::new(&ptxas)
            .arg("-v")
            .arg(format!("-arch={arch}"))
            .args(extra_args)
            .arg("-o")
            .arg(&output)
            .arg(&input)
            .output()
            .map_err(io(&ptxas))?;
        let mut log = String::from_utf8_lossy(&out.stdout).into_owned();
        log.push_str(&String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            return Err(PtxasError::Failed { arch: arch.to_string(), status: out.status.to_string(), log });
        }
        Ok(PtxasReport { arch: arch.to_string(), kernels: parse_ptxas_verbose(&log), log })
    })();
    drop(tmp);
    result
}

/// Parses the resource lines of `ptxas -v` output:
///
/// ```text
/// ptxas info    : Compiling entry function 'k' for 'sm_80'
/// ptxas info    : Function properties for k
///     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
/// ptxas info    : Used 30 registers, used 0 barriers, 380 bytes cmem[0]
/// ```
pub fn parse_ptxas_verbose(log: &str) -> Vec<KernelResources> {
    let mut out: Vec<KernelResources> = Vec::new();
    let mut entry: Option<usize> = None; // function whose "Used N registers" comes next
    let mut props: Option<usize> = None; // function whose stack/spill line comes next
    let index_of = |out: &mut Vec<KernelResources>, name: &str, is_entry: bool| -> usize {
        if let Some(i) = out.iter().position(|k| k.name == name) {
            out[i].is_entry |= is_entry;
            i
        } else {
            out.push(KernelResources { name: name.to_string(), is_entry, ..Default::default() });
            out.len() - 1
        }
    };
    for line in log.lines() {
        let l = line.trim();
        if let Some(rest) = l.split("Compiling entry function '").nth(1) {
            let name = rest.split('\'').next().unwrap_or_default();
            entry = Some(index_of(&mut out, name, true));
        } else if let Some(rest) = l.split("Function properties for ").nth(1) {
            props = Some(index_of(&mut out, rest.trim(), false));
        } else if l.contains("bytes stack frame") {
            if let Some(i) = props.take() {
                for part in l.split(',') {
                    let n = leading_number(part);
                    if part.contains("stack frame") {
                        out[i].stack_frame_bytes = n;
                    } else if part.contains("spill stores") {
                        out[i].spill_store_bytes = n;
                    } else if part.contains("spill loads") {
                        out[i].spill_load_bytes = n;
                    }
                }
            }
        } else if let (Some(rest), Some(i)) = (l.split("Used ").nth(1), entry)
            && rest.contains("registers")
        {
            out[i].registers = leading_number(rest);
        }
    }
    out
}

fn leading_number(s: &str) -> u32 {
    s.trim().split(|c: char| !c.is_ascii_digit()).next().and_then(|d| d.parse().ok()).unwrap_or(0)
}
