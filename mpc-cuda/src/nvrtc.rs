//! Run-time compilation of CUDA C++ to PTX or cubin with NVRTC, without a GPU.
//!
//! This module locates the library itself (see [`locate_nvrtc`] for the search order), loads
//! it by full path with `RTLD_NOW | RTLD_GLOBAL` together with `libnvrtc-builtins` from the same
//! directory, keeps both handles for the life of the process and calls NVRTC through function
//! pointers resolved from **that** handle. It does not use `cudarc`'s NVRTC calls: those
//! `dlopen` the bare name `libnvrtc.so` first, which on a machine with a CUDA 13 toolkit lands on
//! another library than the one located here (seen on an H200 image with CUDA 13 only and
//! NVRTC 12 carried in). A missing library is an [`NvrtcError::NotFound`], never a panic.

use std::ffi::{CString, c_char, c_int};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use std::ffi::c_void;

use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};

use super::locate;

/// The soname of the NVRTC library of CUDA 12 (the version `cudarc`'s driver bindings,
/// `cuda-12090`, and the pinned PyPI wheels of `scripts/setup.sh` are).
pub const NVRTC_SONAME: &str = "libnvrtc.so.12";

/// Override variable: full path of `libnvrtc.so.12`, or the directory holding it.
pub const NVRTC_PATH_VAR: &str = "MPC_NVRTC_PATH";

/// Options for [`compile_ptx`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NvrtcOptions {
    /// Virtual architecture, passed as `--gpu-architecture`, e.g. `"compute_80"`.
    pub arch: String,
    /// C++ dialect, passed as `--std`, e.g. `"c++17"`; `None` for NVRTC's default.
    pub std: Option<String>,
    /// Contract multiply-adds into FMAs (`--fmad`).
    pub fmad: bool,
    /// Emit line information for profilers (`--generate-line-info`).
    pub line_info: bool,
    /// Register cap per thread (`--maxrregcount`), `None` for no cap.
    pub max_registers: Option<u32>,
    /// Further raw NVRTC options, appended last.
    pub extra: Vec<String>,
    /// Program name used in diagnostics (`<name>(line): error ...`).
    pub program_name: String,
}

impl Default for NvrtcOptions {
    fn default() -> Self {
        NvrtcOptions {
            arch: "compute_80".into(),
            std: Some("c++17".into()),
            fmad: true,
            line_info: false,
            max_registers: None,
            extra: Vec::new(),
            program_name: "mpc_model.cu".into(),
        }
    }
}

impl NvrtcOptions {
    /// Default options (C++17, FMA contraction on) for a virtual architecture such as
    /// `"compute_90"`.
    pub fn new(arch: impl Into<String>) -> Self {
        NvrtcOptions { arch: arch.into(), ..Default::default() }
    }

    /// The option strings handed to `nvrtcCompileProgram`.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![format!("--gpu-architecture={}", self.arch)];
        if let Some(std) = &self.std {
            args.push(format!("--std={std}"));
        }
        args.push(format!("--fmad={}", self.fmad));
        if self.line_info {
            args.push("--generate-line-info".into());
        }
        if let Some(n) = self.max_registers {
            args.push(format!("--maxrregcount={n}"));
        }
        args.extend(self.extra.iter().cloned());
        args
    }
}

/// PTX produced by [`compile_ptx`], with the compiler log (warnings) and the options used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ptx {
    text: String,
    log: String,
    options: Vec<String>,
}

impl Ptx {
    /// The PTX assembly text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The PTX assembly text, by value.
    pub fn into_string(self) -> String {
        self.text
    }

    /// NVRTC's log for a successful compilation: warnings, usually empty.
    pub fn log(&self) -> &str {
        &self.log
    }

    /// The NVRTC options the PTX was compiled with.
    pub fn options(&self) -> &[String] {
        &self.options
    }

    /// Names of the kernels (`.entry` directives) in the PTX, in order.
    pub fn entry_points(&self) -> Vec<String> {
        self.text
            .lines()
            .filter_map(|l| {
                let rest = l.trim_start().strip_prefix(".visible .entry ").or_else(|| l.trim_start().strip_prefix(".entry "))?;
                let end = rest.find(|c: char| c == '(' || c.is_whitespace()).unwrap_or(rest.len());
                Some(rest[..end].to_string())
            })
            .collect()
    }
}

impl fmt::Display for Ptx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<Ptx> for cudarc::nvrtc::Ptx {
    /// For loading with `cudarc`'s driver API (`CudaContext::load_module`).
    fn from(p: Ptx) -> Self {
        cudarc::nvrtc::Ptx::from_src(p.text)
    }
}

/// Why NVRTC could not be loaded or a compilation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NvrtcError {
    /// No `libnvrtc.so.12` anywhere in the search path of [`locate_nvrtc`].
    #[error(
        "libnvrtc.so.12 not found; run scripts/setup.sh or pip install nvidia-cuda-nvrtc-cu12 (or set MPC_NVRTC_PATH). Searched:{}",
        locate::format_searched(searched)
    )]
    NotFound {
        /// Files and directories that were tried, in order.
        searched: Vec<PathBuf>,
    },
    /// The library was found but could not be loaded or used.
    #[error("could not load NVRTC from {}: {message}", path.display())]
    Load {
        /// The library file.
        path: PathBuf,
        /// The loader's or `cudarc`'s complaint.
        message: String,
    },
    /// The source did not compile; `log` is NVRTC's complete log.
    #[error("NVRTC compilation failed ({code}) with options {options:?}:\n{log}")]
    Compile {
        /// NVRTC result code.
        code: String,
        /// Options the compilation ran with.
        options: Vec<String>,
        /// The full compiler log.
        log: String,
    },
    /// Another NVRTC API call failed.
    #[error("{call} failed: {code}")]
    Api {
        /// The NVRTC function.
        call: &'static str,
        /// NVRTC result code.
        code: String,
    },
    /// The source or an option contains a NUL byte, which NVRTC's C API cannot take.
    #[error("{what} contains a NUL byte at offset {offset}")]
    Nul {
        /// `"source"`, `"program name"` or `"option"`.
        what: &'static str,
        /// Byte offset of the NUL.
        offset: usize,
    },
    /// A panic while calling NVRTC (a guard; should not happen).
    #[error("panic while calling NVRTC: {0}")]
    Panic(String),
}

/// The NVRTC library this process uses, loaded by [`load_nvrtc`].
#[derive(Debug)]
pub struct NvrtcLibrary {
    path: PathBuf,
    version: (i32, i32),
    builtins: Option<PathBuf>,
    api: Api,
    // Never dropped: keeps libnvrtc (and libnvrtc-builtins) mapped for the process.
    _handles: Vec<Library>,
}

/// An NVRTC program handle (`nvrtcProgram`).
type Program = *mut c_void;

/// The NVRTC entry points this module calls, resolved from the loaded library's own handle
/// (their C signatures are the same in every NVRTC release since CUDA 11).
#[derive(Clone, Copy, Debug)]
struct Api {
    create: unsafe extern "C" fn(*mut Program, *const c_char, *const c_char, c_int, *const *const c_char, *const *const c_char) -> c_int,
    destroy: unsafe extern "C" fn(*mut Program) -> c_int,
    compile: unsafe extern "C" fn(Program, c_int, *const *const c_char) -> c_int,
    log_size: unsafe extern "C" fn(Program, *mut usize) -> c_int,
    log: unsafe extern "C" fn(Program, *mut c_char) -> c_int,
    ptx_size: unsafe extern "C" fn(Program, *mut usize) -> c_int,
    ptx: unsafe extern "C" fn(Program, *mut c_char) -> c_int,
    cubin_size: unsafe extern "C" fn(Program, *mut usize) -> c_int,
    cubin: unsafe extern "C" fn(Program, *mut c_char) -> c_int,
    error_string: unsafe extern "C" fn(c_int) -> *const c_char,
}

impl Api {
    /// Resolve every entry point from `lib`.
    fn resolve(lib: &Library) -> Result<Api, String> {
        /// One symbol as a plain function pointer (valid while `lib` stays loaded, which is
        /// for the process: the handle is never dropped).
        unsafe fn sym<T: Copy>(lib: &Library, name: &[u8]) -> Result<T, String> {
            // SAFETY (caller): `T` is the C signature of `name`.
            unsafe { lib.get::<T>(name) }
                .map(|s| *s)
                .map_err(|e| format!("{}: {e}", String::from_utf8_lossy(&name[..name.len() - 1])))
        }
        // SAFETY: each type is the entry point's C signature from nvrtc.h.
        unsafe {
            Ok(Api {
                create: sym(lib, b"nvrtcCreateProgram\0")?,
                destroy: sym(lib, b"nvrtcDestroyProgram\0")?,
                compile: sym(lib, b"nvrtcCompileProgram\0")?,
                log_size: sym(lib, b"nvrtcGetProgramLogSize\0")?,
                log: sym(lib, b"nvrtcGetProgramLog\0")?,
                ptx_size: sym(lib, b"nvrtcGetPTXSize\0")?,
                ptx: sym(lib, b"nvrtcGetPTX\0")?,
                cubin_size: sym(lib, b"nvrtcGetCUBINSize\0")?,
                cubin: sym(lib, b"nvrtcGetCUBIN\0")?,
                error_string: sym(lib, b"nvrtcGetErrorString\0")?,
            })
        }
    }

    /// NVRTC's name of result code `r` (`"NVRTC_ERROR_COMPILATION"`, ...).
    fn name(&self, r: c_int) -> String {
        // SAFETY: nvrtcGetErrorString returns a static NUL-terminated string for any code.
        let p = unsafe { (self.error_string)(r) };
        if p.is_null() {
            return format!("NVRTC error {r}");
        }
        // SAFETY: non-null, NUL-terminated, static.
        unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }

    /// `Ok` for `NVRTC_SUCCESS`, else the typed API error of `call`.
    fn check(&self, call: &'static str, r: c_int) -> Result<(), NvrtcError> {
        if r == 0 { Ok(()) } else { Err(NvrtcError::Api { call, code: self.name(r) }) }
    }

    /// A size query then the fetch of that many bytes (the log, the PTX, the cubin).
    fn bytes(
        &self,
        prog: Program,
        calls: (&'static str, &'static str),
        size_of: unsafe extern "C" fn(Program, *mut usize) -> c_int,
        get: unsafe extern "C" fn(Program, *mut c_char) -> c_int,
    ) -> Result<Vec<u8>, NvrtcError> {
        let mut size = 0usize;
        // SAFETY: `prog` is live; NVRTC writes the size.
        self.check(calls.0, unsafe { size_of(prog, &mut size) })?;
        let mut buf = vec![0u8; size.max(1)];
        if size > 0 {
            // SAFETY: `buf` holds the `size` bytes NVRTC reported for this program.
            self.check(calls.1, unsafe { get(prog, buf.as_mut_ptr() as *mut c_char) })?;
        }
        buf.truncate(size);
        Ok(buf)
    }
}

impl NvrtcLibrary {
    /// Path of the loaded `libnvrtc.so.12` (the bare soname when it came from the loader path).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// NVRTC version `(major, minor)`.
    pub fn version(&self) -> (i32, i32) {
        self.version
    }

    /// Path of the preloaded `libnvrtc-builtins`, when one was found beside the library.
    pub fn builtins(&self) -> Option<&Path> {
        self.builtins.as_deref()
    }
}

/// Finds `libnvrtc.so.12` without loading it. Search order:
///
/// 1. `MPC_NVRTC_PATH` (a file or a directory); when set, nothing else is searched;
/// 2. `$CUDA_PATH`, `$CUDA_HOME`, `/usr/local/cuda`: `lib64`, `lib`, `targets/*/lib`;
/// 3. `nvidia/cuda_nvrtc/lib` in the project's `.venv` (found from the executable, from this
///    crate's build-time source directory and from the current directory) and `$VIRTUAL_ENV`;
/// 4. the same in the usual Python locations (`~/.local`, pyenv, conda, `/usr/local`, `/usr`);
/// 5. as a last resort, the package directory reported by `python3 -c 'import nvidia.cuda_nvrtc'`;
/// 6. `LD_LIBRARY_PATH` and the system library directories.
///
/// [`load_nvrtc`] finally tries the dynamic loader by soname when this finds nothing.
pub fn locate_nvrtc() -> Result<PathBuf, NvrtcError> {
    let mut searched = Vec::new();
    if let Some(p) = locate::override_path(NVRTC_PATH_VAR) {
        let file = if p.is_dir() { p.join(NVRTC_SONAME) } else { p };
        if file.is_file() {
            return Ok(file);
        }
        searched.push(file);
        return Err(NvrtcError::NotFound { searched });
    }
    let try_dir = |dir: &Path, searched: &mut Vec<PathBuf>| {
        let f = dir.join(NVRTC_SONAME);
        if f.is_file() {
            Some(f)
        } else {
            searched.push(dir.to_path_buf());
            None
        }
    };
    for root in locate::toolkit_roots() {
        for dir in locate::toolkit_lib_dirs(&root) {
            if let Some(f) = try_dir(&dir, &mut searched) {
                return Ok(f);
            }
        }
    }
    for sp in locate::site_package_dirs() {
        if let Some(f) = try_dir(&sp.join("nvidia/cuda_nvrtc/lib"), &mut searched) {
            return Ok(f);
        }
    }
    if let Some(pkg) = locate::python_package_dir("nvidia.cuda_nvrtc") {
        if let Some(f) = try_dir(&pkg.join("lib"), &mut searched) {
            return Ok(f);
        }
    } else {
        searched.push(PathBuf::from("(python3 -c 'import nvidia.cuda_nvrtc')"));
    }
    let mut sys_dirs: Vec<PathBuf> = std::env::var_os("LD_LIBRARY_PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    sys_dirs.extend(
        ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib/x86_64-linux-gnu"]
            .map(PathBuf::from),
    );
    for dir in locate::dedup(sys_dirs) {
        if let Some(f) = try_dir(&dir, &mut searched) {
            return Ok(f);
        }
    }
    Err(NvrtcError::NotFound { searched })
}

static NVRTC: OnceLock<Result<NvrtcLibrary, NvrtcError>> = OnceLock::new();

/// Locates and loads NVRTC once per process (see [`locate_nvrtc`]), preloading
/// `libnvrtc-builtins` from the same directory, and checks that `cudarc` resolves to the same
/// library. Later calls return the cached outcome.
pub fn load_nvrtc() -> Result<&'static NvrtcLibrary, NvrtcError> {
    NVRTC.get_or_init(load_uncached).as_ref().map_err(Clone::clone)
}

/// True when NVRTC can be loaded (see [`load_nvrtc`]).
pub fn nvrtc_available() -> bool {
    load_nvrtc().is_ok()
}

fn load_uncached() -> Result<NvrtcLibrary, NvrtcError> {
    let flags = RTLD_NOW | RTLD_GLOBAL;
    let (path, lib) = match locate_nvrtc() {
        Ok(path) => {
            // SAFETY: loading NVRTC runs only its (trusted) initialisers.
            let lib = unsafe { Library::open(Some(&path), flags) }
                .map_err(|e| NvrtcError::Load { path: path.clone(), message: e.to_string() })?;
            (path, lib)
        }
        Err(NvrtcError::NotFound { mut searched }) if locate::override_path(NVRTC_PATH_VAR).is_none() => {
            // SAFETY: as above.
            match unsafe { Library::open(Some(NVRTC_SONAME), flags) } {
                Ok(lib) => (PathBuf::from(NVRTC_SONAME), lib),
                Err(_) => {
                    searched.push(PathBuf::from(format!("(dynamic loader: {NVRTC_SONAME})")));
                    return Err(NvrtcError::NotFound { searched });
                }
            }
        }
        Err(e) => return Err(e),
    };

    let version = own_version(&lib).map_err(|message| NvrtcError::Load { path: path.clone(), message })?;
    let mut handles = vec![lib];
    let builtins = path.parent().filter(|d| !d.as_os_str().is_empty()).and_then(|dir| builtins_path(dir, version));
    if let Some(b) = &builtins {
        // Not fatal: libnvrtc also finds its builtins through its own RUNPATH ($ORIGIN).
        // SAFETY: as above.
        if let Ok(h) = unsafe { Library::open(Some(b), flags) } {
            handles.push(h);
        }
    }

    let api = Api::resolve(&handles[0]).map_err(|message| NvrtcError::Load { path: path.clone(), message })?;
    Ok(NvrtcLibrary { path, version, builtins, api, _handles: handles })
}

/// `nvrtcVersion` through our own handle, independent of `cudarc`.
fn own_version(lib: &Library) -> Result<(i32, i32), String> {
    type VersionFn = unsafe extern "C" fn(*mut c_int, *mut c_int) -> c_int;
    // SAFETY: nvrtcVersion has this signature in every NVRTC release.
    unsafe {
        let f = lib.get::<VersionFn>(b"nvrtcVersion\0").map_err(|e| e.to_string())?;
        let (mut major, mut minor) = (0, 0);
        match f(&mut major, &mut minor) {
            0 => Ok((major, minor)),
            code => Err(format!("nvrtcVersion returned {code}")),
        }
    }
}

/// `libnvrtc-builtins.so.<major>.<minor>` in `dir`, or any non-`alt` builtins library there.
fn builtins_path(dir: &Path, (major, minor): (i32, i32)) -> Option<PathBuf> {
    let exact = dir.join(format!("libnvrtc-builtins.so.{major}.{minor}"));
    if exact.is_file() {
        return Some(exact);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libnvrtc-builtins.so") && !n.contains(".alt."))
        })
        .collect();
    found.sort();
    found.pop()
}

/// Runs `f`, turning a panic into [`NvrtcError::Panic`].
fn guard<T>(f: impl FnOnce() -> Result<T, NvrtcError>) -> Result<T, NvrtcError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic payload".into());
            Err(NvrtcError::Panic(msg))
        }
    }
}

/// NVRTC's NUL-terminated text (log, PTX) as a Rust string, up to the first NUL (lossy).
fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes.split(|&c| c == 0).next().unwrap_or(&[])).into_owned()
}

/// Version `(major, minor)` of the NVRTC library this process uses.
pub fn nvrtc_version() -> Result<(i32, i32), NvrtcError> {
    load_nvrtc().map(|l| l.version())
}

/// Compiles CUDA C++ `source` to PTX for `opts.arch`.
///
/// Errors: [`NvrtcError::NotFound`] when NVRTC is not installed (never a panic), and
/// [`NvrtcError::Compile`] with NVRTC's complete log when the source does not compile.
///
/// ```no_run
/// use mpc_cuda::{NvrtcOptions, compile_ptx};
/// let ptx = compile_ptx(r#"extern "C" __global__ void k(float* x) { x[0] = 1.0f; }"#,
///                       &NvrtcOptions::new("compute_80"))?;
/// assert_eq!(ptx.entry_points(), ["k"]);
/// # Ok::<(), mpc_cuda::NvrtcError>(())
/// ```
pub fn compile_ptx(source: &str, opts: &NvrtcOptions) -> Result<Ptx, NvrtcError> {
    let (ptx, log, options) = compile(source, opts, Output::Ptx)?;
    Ok(Ptx { text: text_of(&ptx), log, options })
}

/// Compile `source` to a cubin (ELF device code) for the real architecture `opts.arch`
/// (`"sm_90"`; a `compute_XY` is taken as `sm_XY`). A cubin loads on any driver of the same
/// CUDA major version (minor-version compatibility) without the driver's PTX JIT, whereas PTX
/// needs a driver at least as new as NVRTC's PTX ISA. Needs no GPU.
pub fn compile_cubin(source: &str, opts: &NvrtcOptions) -> Result<Vec<u8>, NvrtcError> {
    let mut o = opts.clone();
    if let Some(v) = o.arch.strip_prefix("compute_") {
        o.arch = format!("sm_{v}");
    }
    compile(source, &o, Output::Cubin).map(|(bin, _, _)| bin)
}

/// What [`compile`] returns.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Output {
    Ptx,
    Cubin,
}

/// NVRTC: `source` with `opts` → the output's bytes, the log (warnings), the options used.
fn compile(source: &str, opts: &NvrtcOptions, output: Output) -> Result<(Vec<u8>, String, Vec<String>), NvrtcError> {
    let src = CString::new(source).map_err(|e| NvrtcError::Nul { what: "source", offset: e.nul_position() })?;
    let name = CString::new(opts.program_name.as_str())
        .map_err(|e| NvrtcError::Nul { what: "program name", offset: e.nul_position() })?;
    let options = opts.to_args();
    if let Some(o) = options.iter().find(|o| o.contains('\0')) {
        return Err(NvrtcError::Nul { what: "option", offset: o.find('\0').unwrap_or(0) });
    }

    let api = load_nvrtc()?.api;
    let c_opts: Vec<CString> = options.iter().map(|o| CString::new(o.as_str()).expect("checked for NUL above")).collect();
    let c_ptrs: Vec<*const c_char> = c_opts.iter().map(|o| o.as_ptr()).collect();
    guard(|| {
        let mut prog: Program = std::ptr::null_mut();
        // SAFETY: `src` and `name` are NUL-terminated and outlive the call; no headers.
        api.check("nvrtcCreateProgram", unsafe {
            (api.create)(&mut prog, src.as_ptr(), name.as_ptr(), 0, std::ptr::null(), std::ptr::null())
        })?;
        struct Destroy(Program, unsafe extern "C" fn(*mut Program) -> c_int);
        impl Drop for Destroy {
            fn drop(&mut self) {
                // SAFETY: created above and destroyed exactly once.
                let _ = unsafe { (self.1)(&mut self.0) };
            }
        }
        let _destroy = Destroy(prog, api.destroy);

        // SAFETY: `prog` is live until `_destroy` drops; the option strings outlive the call.
        let compiled = unsafe { (api.compile)(prog, c_ptrs.len() as c_int, c_ptrs.as_ptr()) };
        let log = api
            .bytes(prog, ("nvrtcGetProgramLogSize", "nvrtcGetProgramLog"), api.log_size, api.log)
            .map(|b| text_of(&b))
            .unwrap_or_default();
        if compiled != 0 {
            return Err(NvrtcError::Compile { code: api.name(compiled), options: options.clone(), log });
        }
        let bytes = match output {
            Output::Ptx => api.bytes(prog, ("nvrtcGetPTXSize", "nvrtcGetPTX"), api.ptx_size, api.ptx)?,
            Output::Cubin => {
                let bin = api.bytes(prog, ("nvrtcGetCUBINSize", "nvrtcGetCUBIN"), api.cubin_size, api.cubin)?;
                if bin.is_empty() {
                    return Err(NvrtcError::Api { call: "nvrtcGetCUBIN", code: "no cubin (was a virtual architecture given?)".into() });
                }
                bin
            }
        };
        Ok((bytes, log.trim().to_string(), options.clone()))
    })
}
