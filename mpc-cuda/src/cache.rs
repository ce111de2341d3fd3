//! The PTX module cache: NVRTC output keyed by a hash of what determines it, in memory and on
//! disk, so that a kernel is compiled once per machine rather than once per process.
//!
//! * **Key**: SHA-256 of (cache format version, the rendered source, the NVRTC option strings,
//!   which include the target architecture, and the NVRTC version). A changed template, model,
//!   constant, option or compiler gives a new key; nothing is ever invalidated in place.
//! * **Memory**: a map in front of the disk, per [`PtxCache`] (the process-wide one is
//!   [`global`]).
//! * **Disk**: `<root>/ptx/<key hex>.ptx`, where `<root>` is `$MPC_CACHE_DIR` when set
//!   (an empty value turns the disk cache off), else `$XDG_CACHE_HOME/mpc`, else
//!   `~/.cache/mpc`. A file starts with one header line
//!   `// mpc-ptx-cache v1 sha256=<hash of the rest> len=<bytes of the rest>` followed by the PTX;
//!   it is written to a temporary file in the same directory and renamed into place (atomic on
//!   POSIX), so readers never see half a file. A file whose header, length or hash does not
//!   check out (truncated, corrupted, foreign) counts as a miss: the PTX is compiled again and
//!   the file replaced. The disk is best effort throughout: a cache directory that cannot be
//!   created, read or written only costs a compilation, never an error.
//! * **Trust**: the hash only detects damage; anyone who can write the folder could plant a
//!   valid entry. So the disk cache is used only when its `ptx` folder is owned by this user
//!   and writable by nobody else (created with mode 0700 when missing) and its parent cannot be
//!   used to swap it (owned by this user or root, not writable by others unless sticky), and
//!   a file is read only when it is owned by this user and not group- or world-writable
//!   ([`mpc_runtime::private_fs`]); otherwise the cache works from memory and says why once on
//!   stderr ([`PtxCache::disk_refused`]).

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::nvrtc::{NvrtcError, NvrtcOptions, compile_cubin, compile_ptx, nvrtc_version};

/// Environment variable naming the cache root (`<root>/ptx` holds the PTX); empty: no disk cache.
pub const CACHE_DIR_VAR: &str = "MPC_CACHE_DIR";

/// Version of the on-disk format and of the key derivation.
const FORMAT: &str = "mpc-ptx-cache v1";

/// SHA-256 of a cache entry's inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey([u8; 32]);

impl CacheKey {
    /// The key of PTX compiled from `source` with `opts` by NVRTC `version` (major, minor).
    pub fn new(source: &str, opts: &NvrtcOptions, version: (i32, i32)) -> Self {
        let mut h = Sha256::new();
        // Length-prefixed fields, so that no two different inputs concatenate alike.
        let mut field = |b: &[u8]| {
            h.update(&(b.len() as u64).to_le_bytes());
            h.update(b);
        };
        field(FORMAT.as_bytes());
        field(source.as_bytes());
        for o in opts.to_args() {
            field(o.as_bytes());
        }
        field(format!("nvrtc {}.{}", version.0, version.1).as_bytes());
        CacheKey(h.finish())
    }

    /// Lower-case hex (the file stem on disk).
    pub fn hex(&self) -> String {
        hex(&self.0)
    }
}

/// Where a [`PtxCache::get_or_compile_with`] result came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The in-memory map.
    Memory,
    /// A valid file of the disk cache.
    Disk,
    /// A fresh compilation.
    Compiled,
}

/// Counters of a [`PtxCache`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Compilations run (misses).
    pub compiles: usize,
    /// Hits in memory.
    pub memory_hits: usize,
    /// Hits on disk.
    pub disk_hits: usize,
    /// Disk files that were present but invalid (truncated, corrupted) and were replaced.
    pub disk_rejected: usize,
    /// Disk writes that failed (the PTX was still returned).
    pub write_failures: usize,
}

/// PTX cache in memory and (optionally) on disk; see the module documentation.
#[derive(Debug)]
pub struct PtxCache {
    dir: Option<PathBuf>,
    memory: Mutex<HashMap<CacheKey, Arc<str>>>,
    compiles: AtomicUsize,
    memory_hits: AtomicUsize,
    disk_hits: AtomicUsize,
    disk_rejected: AtomicUsize,
    write_failures: AtomicUsize,
    /// The disk folder's check, made once: `Err(why)` turns the disk cache off.
    trusted: OnceLock<Result<(), String>>,
}

/// The cache root for the given environment values (`MPC_CACHE_DIR`, `XDG_CACHE_HOME`, `HOME`):
/// `$MPC_CACHE_DIR` (`None` when it is set but empty), else `$XDG_CACHE_HOME/mpc` (when
/// absolute), else `$HOME/.cache/mpc`.
pub fn cache_root(mpc: Option<OsString>, xdg: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    if let Some(m) = mpc {
        return if m.is_empty() { None } else { Some(PathBuf::from(m)) };
    }
    if let Some(x) = xdg.map(PathBuf::from).filter(|p| p.is_absolute()) {
        return Some(x.join("mpc"));
    }
    home.filter(|h| !h.is_empty()).map(|h| PathBuf::from(h).join(".cache").join("mpc"))
}

/// The PTX directory of the disk cache from this process's environment (`<root>/ptx`, see
/// [`cache_root`]); `None` when the disk cache is off or no home is known.
pub fn default_ptx_dir() -> Option<PathBuf> {
    cache_root(std::env::var_os(CACHE_DIR_VAR), std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME"))
        .map(|r| r.join("ptx"))
}

/// The process-wide cache (disk directory from [`default_ptx_dir`] at first use).
pub fn global() -> &'static PtxCache {
    static GLOBAL: OnceLock<PtxCache> = OnceLock::new();
    GLOBAL.get_or_init(|| PtxCache::new(default_ptx_dir()))
}

impl PtxCache {
    /// A cache with its PTX files in `dir` (created on the first write), or memory only.
    pub fn new(dir: Option<PathBuf>) -> Self {
        PtxCache {
            dir,
            memory: Mutex::new(HashMap::new()),
            compiles: AtomicUsize::new(0),
            memory_hits: AtomicUsize::new(0),
            disk_hits: AtomicUsize::new(0),
            disk_rejected: AtomicUsize::new(0),
            write_failures: AtomicUsize::new(0),
            trusted: OnceLock::new(),
        }
    }

    /// Why the disk folder is not used, if it is not (another user owns it or can write it,
    /// or it cannot be created). Checked once, at the first use of the disk.
    pub fn disk_refused(&self) -> Option<&str> {
        self.trusted_dir().err()
    }

    /// The disk folder, when it is on and passes the check (see the module doc, **Trust**).
    fn trusted_dir(&self) -> Result<&Path, &str> {
        let dir = self.dir.as_deref().ok_or("the disk cache is off")?;
        let check = self.trusted.get_or_init(|| {
            // The folder itself must be private; its parent only unable to swap it.
            let r = mpc_runtime::private_fs::check_private_dir(dir).and_then(|_| {
                dir.parent().filter(|p| !p.as_os_str().is_empty()).map_or(Ok(()), mpc_runtime::private_fs::check_parent_dir)
            });
            if let Err(why) = &r {
                eprintln!("mpc: not using the PTX disk cache ({why}); kernels are cached in memory only");
            }
            r
        });
        check.as_ref().map(|_| dir).map_err(|e| e.as_str())
    }

    /// The PTX directory, when the disk cache is on.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The file a key is stored in, when the disk cache is on.
    pub fn path_of(&self, key: &CacheKey) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{}.ptx", key.hex())))
    }

    /// The counters so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            compiles: self.compiles.load(Ordering::Relaxed),
            memory_hits: self.memory_hits.load(Ordering::Relaxed),
            disk_hits: self.disk_hits.load(Ordering::Relaxed),
            disk_rejected: self.disk_rejected.load(Ordering::Relaxed),
            write_failures: self.write_failures.load(Ordering::Relaxed),
        }
    }

    /// PTX of `source` for `opts`, from memory, disk or NVRTC (in that order).
    pub fn get_or_compile(&self, source: &str, opts: &NvrtcOptions) -> Result<String, NvrtcError> {
        let key = CacheKey::new(source, opts, nvrtc_version()?);
        self.get_or_compile_with(&key, || compile_ptx(source, opts).map(|p| p.into_string())).map(|(p, _)| p)
    }

    /// The cubin of `source` for the real architecture of `opts` ([`compile_cubin`]: a
    /// `compute_XY` becomes `sm_XY`), from the cache or compiled and stored (as hex text in an
    /// entry of its own key: the options name the real architecture).
    pub fn get_or_compile_cubin(&self, source: &str, opts: &NvrtcOptions) -> Result<Vec<u8>, NvrtcError> {
        let mut o = opts.clone();
        if let Some(v) = o.arch.strip_prefix("compute_") {
            o.arch = format!("sm_{v}");
        }
        let key = CacheKey::new(source, &o, nvrtc_version()?);
        let (text, _) = self.get_or_compile_with(&key, || compile_cubin(source, &o).map(|b| hex(&b)))?;
        unhex(&text).ok_or_else(|| NvrtcError::Api { call: "the module cache", code: "a cubin entry is not hex".into() })
    }

    /// The PTX stored under `key`, or `compile()`'s, which is then stored. Errors only from
    /// `compile`.
    pub fn get_or_compile_with(
        &self,
        key: &CacheKey,
        compile: impl FnOnce() -> Result<String, NvrtcError>,
    ) -> Result<(String, Origin), NvrtcError> {
        if let Some(p) = self.memory.lock().unwrap_or_else(|e| e.into_inner()).get(key) {
            self.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Ok((p.to_string(), Origin::Memory));
        }
        let trusted = self.trusted_dir().is_ok();
        if let Some(path) = self.path_of(key).filter(|_| trusted) {
            // Missing, unreadable or not private to this user: a miss.
            if !mpc_runtime::private_fs::is_private_file(&path) {
                if path.exists() {
                    self.disk_rejected.fetch_add(1, Ordering::Relaxed);
                }
            } else if let Ok(bytes) = std::fs::read(&path) {
                match parse_entry(&bytes) {
                    Some(ptx) => {
                        self.disk_hits.fetch_add(1, Ordering::Relaxed);
                        self.remember(key, &ptx);
                        return Ok((ptx, Origin::Disk));
                    }
                    None => {
                        self.disk_rejected.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        let ptx = compile()?;
        self.compiles.fetch_add(1, Ordering::Relaxed);
        self.remember(key, &ptx);
        if let Some(path) = self.path_of(key).filter(|_| trusted)
            && write_atomically(&path, &format_entry(&ptx)).is_err()
        {
            self.write_failures.fetch_add(1, Ordering::Relaxed);
        }
        Ok((ptx, Origin::Compiled))
    }

    fn remember(&self, key: &CacheKey, ptx: &str) {
        self.memory.lock().unwrap_or_else(|e| e.into_inner()).insert(*key, Arc::from(ptx));
    }
}

/// Header line + PTX.
fn format_entry(ptx: &str) -> Vec<u8> {
    let mut out = format!("// {FORMAT} sha256={} len={}\n", hex(&sha256(ptx.as_bytes())), ptx.len()).into_bytes();
    out.extend_from_slice(ptx.as_bytes());
    out
}

/// The PTX of a valid entry; `None` when the header, the length or the hash is off.
fn parse_entry(bytes: &[u8]) -> Option<String> {
    let nl = bytes.iter().position(|&b| b == b'\n')?;
    let header = std::str::from_utf8(&bytes[..nl]).ok()?;
    let body = &bytes[nl + 1..];
    let rest = header.strip_prefix("// ")?.strip_prefix(FORMAT)?.trim_start();
    let mut hash = None;
    let mut len = None;
    for part in rest.split_whitespace() {
        if let Some(h) = part.strip_prefix("sha256=") {
            hash = Some(h);
        } else if let Some(l) = part.strip_prefix("len=") {
            len = l.parse::<usize>().ok();
        }
    }
    if len? != body.len() || hash? != hex(&sha256(body)) {
        return None;
    }
    String::from_utf8(body.to_vec()).ok()
}

/// Write `data` to a temporary file beside `path` and rename it over `path`.
fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = path.parent().ok_or_else(|| std::io::Error::other("no parent directory"))?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}.{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        let mut f = o.open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(data);
    h.finish()
}

/// A small streaming SHA-256 (FIPS 180-4); no crate dependency for one hash.
struct Sha256 {
    state: [u32; 8],
    buf: [u8; 64],
    buf_len: usize,
    total: u64,
}

const K256: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
    0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
    0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
    0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

impl Sha256 {
    fn new() -> Self {
        Sha256 {
            state: [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19],
            buf: [0; 64],
            buf_len: 0,
            total: 0,
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        self.total = self.total.wrapping_add(data.len() as u64);
        while !data.is_empty() {
            let take = (64 - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
            if self.buf_len == 64 {
                let block = self.buf;
                self.compress(&block);
                self.buf_len = 0;
            }
        }
    }

    fn finish(mut self) -> [u8; 32] {
        let bits = self.total.wrapping_mul(8);
        self.update(&[0x80]);
        while self.buf_len != 56 {
            self.update(&[0]);
        }
        // The length goes in without counting towards it.
        self.buf[56..].copy_from_slice(&bits.to_be_bytes());
        let block = self.buf;
        self.compress(&block);
        let mut out = [0u8; 32];
        for (o, s) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&s.to_be_bytes());
        }
        out
    }

    fn compress(&mut self, block: &[u8; 64]) {
        let mut w = [0u32; 64];
        for (i, c) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = self.state;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = h.wrapping_add(s1).wrapping_add(ch).wrapping_add(K256[i]).wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            h = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (s, v) in self.state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
            *s = s.wrapping_add(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_test_vectors() {
        assert_eq!(hex(&sha256(b"")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(hex(&sha256(b"abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(
            hex(&sha256(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        // A million 'a's, fed in uneven pieces.
        let mut h = Sha256::new();
        let chunk = [b'a'; 997];
        let mut left = 1_000_000;
        while left > 0 {
            let n = left.min(chunk.len());
            h.update(&chunk[..n]);
            left -= n;
        }
        assert_eq!(hex(&h.finish()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    }

    #[test]
    fn keys_depend_on_every_input() {
        let o = NvrtcOptions::new("compute_80");
        let k = CacheKey::new("src", &o, (12, 9));
        assert_eq!(k, CacheKey::new("src", &o, (12, 9)));
        assert_ne!(k, CacheKey::new("src2", &o, (12, 9)));
        assert_ne!(k, CacheKey::new("src", &NvrtcOptions::new("compute_90"), (12, 9)));
        assert_ne!(k, CacheKey::new("src", &NvrtcOptions { fmad: false, ..o.clone() }, (12, 9)));
        assert_ne!(k, CacheKey::new("src", &o, (12, 8)));
        assert_eq!(k.hex().len(), 64);
    }

    #[test]
    fn entries_round_trip_and_reject_damage() {
        let e = format_entry(".version 8.0\n.target sm_80\n");
        assert_eq!(parse_entry(&e).as_deref(), Some(".version 8.0\n.target sm_80\n"));
        assert_eq!(parse_entry(&e[..e.len() - 1]), None, "truncated");
        let mut bad = e.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(parse_entry(&bad), None, "flipped bit");
        assert_eq!(parse_entry(b".version 8.0\n"), None, "no header");
        assert_eq!(parse_entry(b""), None, "empty");
    }

    #[test]
    fn cache_root_precedence() {
        let s = |v: &str| Some(OsString::from(v));
        assert_eq!(cache_root(s("/c"), s("/x"), s("/h")), Some(PathBuf::from("/c")));
        assert_eq!(cache_root(s(""), s("/x"), s("/h")), None);
        assert_eq!(cache_root(None, s("/x"), s("/h")), Some(PathBuf::from("/x/mpc")));
        assert_eq!(cache_root(None, s("relative"), s("/h")), Some(PathBuf::from("/h/.cache/mpc")));
        assert_eq!(cache_root(None, None, s("/h")), Some(PathBuf::from("/h/.cache/mpc")));
        assert_eq!(cache_root(None, None, None), None);
    }
}
