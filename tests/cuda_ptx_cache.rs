//! The on-disk PTX cache (`mpc_cuda::cache`), in a temporary directory:
//!
//! * miss → one compilation → a file named by the key exists;
//! * a fresh cache on the same directory (a new process, in effect) → a disk hit, no
//!   compilation, the same PTX; the same cache again → a memory hit;
//! * a truncated, corrupted or foreign file → compiled again (not an error) and replaced by a
//!   valid one;
//! * an unusable directory → the PTX is still returned (the write failure is only counted);
//! * with NVRTC: a real kernel through `get_or_compile`, then a hit with no NVRTC call.

mod common;

use std::path::PathBuf;

use mpc_cuda::NvrtcOptions;
use mpc_cuda::cache::{CacheKey, Origin, PtxCache};

/// A fresh (absent) temporary path for one test.
fn temp_dir(tag: &str) -> PathBuf {
    let d = common::tmp_path("mpc-ptx-cache-test", tag);
    let _ = std::fs::remove_dir_all(&d);
    d
}

const PTX: &str = "//\n// fake PTX\n.version 8.0\n.target sm_80\n.address_size 64\n";

/// A compile function that counts its calls.
fn counting<'a>(
    count: &'a std::cell::Cell<usize>,
    text: &'static str,
) -> impl FnOnce() -> Result<String, mpc_cuda::NvrtcError> + 'a {
    move || {
        count.set(count.get() + 1);
        Ok(text.to_string())
    }
}

#[test]
fn miss_then_disk_hit_then_memory_hit() {
    let dir = temp_dir("hit");
    let key = CacheKey::new("kernel source", &NvrtcOptions::new("compute_80"), (12, 9));
    let n = std::cell::Cell::new(0);

    let c1 = PtxCache::new(Some(dir.clone()));
    let (p, o) = c1.get_or_compile_with(&key, counting(&n, PTX)).unwrap();
    assert_eq!((p.as_str(), o, n.get()), (PTX, Origin::Compiled, 1));
    let file = c1.path_of(&key).unwrap();
    assert!(file.is_file(), "{} not written", file.display());
    assert_eq!(file.parent().unwrap(), dir);
    assert_eq!(file.file_name().unwrap().to_str().unwrap(), format!("{}.ptx", key.hex()));
    // No temporary files left behind.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);

    // Same cache: memory.
    let (p, o) = c1.get_or_compile_with(&key, counting(&n, "WRONG")).unwrap();
    assert_eq!((p.as_str(), o, n.get()), (PTX, Origin::Memory, 1));

    // A fresh cache on the same directory: disk, no compilation.
    let c2 = PtxCache::new(Some(dir.clone()));
    let (p, o) = c2.get_or_compile_with(&key, counting(&n, "WRONG")).unwrap();
    assert_eq!((p.as_str(), o, n.get()), (PTX, Origin::Disk, 1));
    let s = c2.stats();
    assert_eq!((s.compiles, s.disk_hits, s.memory_hits, s.disk_rejected), (0, 1, 0, 0));

    // Another key misses.
    let other = CacheKey::new("kernel source", &NvrtcOptions::new("compute_90"), (12, 9));
    let (_, o) = c2.get_or_compile_with(&other, counting(&n, PTX)).unwrap();
    assert_eq!((o, n.get()), (Origin::Compiled, 2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn damaged_files_are_recompiled_not_errors() {
    let dir = temp_dir("damaged");
    let key = CacheKey::new("src", &NvrtcOptions::new("compute_80"), (12, 9));
    let n = std::cell::Cell::new(0);
    PtxCache::new(Some(dir.clone())).get_or_compile_with(&key, counting(&n, PTX)).unwrap();
    let file = PtxCache::new(Some(dir.clone())).path_of(&key).unwrap();
    let good = std::fs::read(&file).unwrap();

    let truncated = good[..good.len() - 7].to_vec();
    let mut flipped = good.clone();
    let last = flipped.len() - 3;
    flipped[last] ^= 0x20;
    let damages: [(&str, Vec<u8>); 4] =
        [("truncated", truncated), ("flipped", flipped), ("foreign", PTX.as_bytes().to_vec()), ("empty", Vec::new())];
    for (what, bytes) in damages {
        std::fs::write(&file, &bytes).unwrap();
        let before = n.get();
        let c = PtxCache::new(Some(dir.clone()));
        let (p, o) = c.get_or_compile_with(&key, counting(&n, PTX)).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!((p.as_str(), o), (PTX, Origin::Compiled), "{what}");
        assert_eq!(n.get(), before + 1, "{what}: not recompiled");
        assert_eq!(c.stats().disk_rejected, 1, "{what}");
        assert_eq!(std::fs::read(&file).unwrap(), good, "{what}: file not replaced by a valid entry");
        // ... which the next process reads back.
        let (_, o) = PtxCache::new(Some(dir.clone())).get_or_compile_with(&key, counting(&n, "WRONG")).unwrap();
        assert_eq!(o, Origin::Disk, "{what}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unusable_directory_still_returns_ptx() {
    // A regular file where the directory should be: nothing can be created under it.
    let blocker = temp_dir("blocker");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let c = PtxCache::new(Some(blocker.join("ptx")));
    let key = CacheKey::new("src", &NvrtcOptions::new("compute_80"), (12, 9));
    let n = std::cell::Cell::new(0);
    let (p, o) = c.get_or_compile_with(&key, counting(&n, PTX)).unwrap();
    assert_eq!((p.as_str(), o), (PTX, Origin::Compiled));
    let why = c.disk_refused().expect("the disk cache is refused");
    assert!(why.contains("creating") || why.contains("not a folder"), "{why}");
    // Compile errors do come through.
    let other = CacheKey::new("src2", &NvrtcOptions::new("compute_80"), (12, 9));
    let err = c
        .get_or_compile_with(&other, || Err(mpc_cuda::NvrtcError::Panic("boom".into())))
        .unwrap_err();
    assert!(err.to_string().contains("boom"));
    // Memory only.
    let m = PtxCache::new(None);
    assert!(m.path_of(&key).is_none());
    assert_eq!(m.get_or_compile_with(&key, counting(&n, PTX)).unwrap().1, Origin::Compiled);
    assert_eq!(m.get_or_compile_with(&key, counting(&n, PTX)).unwrap().1, Origin::Memory);
    let _ = std::fs::remove_file(&blocker);
}

#[test]
fn real_nvrtc_compile_is_cached_on_disk() {
    if let Err(e) = mpc_cuda::load_nvrtc() {
        if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false") {
            panic!("NVRTC is required in CI: {e}");
        }
        eprintln!("\n!!!!! SKIPPING NVRTC CACHE TEST: {e}\n");
        return;
    }
    let dir = temp_dir("nvrtc");
    let src = "extern \"C\" __global__ void mpc_cache_probe(float* x) { x[threadIdx.x] *= 2.0f; }\n";
    let opts = NvrtcOptions::new("compute_80");
    let c1 = PtxCache::new(Some(dir.clone()));
    let p1 = c1.get_or_compile(src, &opts).unwrap();
    assert!(p1.contains(".entry mpc_cache_probe"), "{p1}");
    assert_eq!(c1.stats().compiles, 1);
    let c2 = PtxCache::new(Some(dir.clone()));
    let p2 = c2.get_or_compile(src, &opts).unwrap();
    assert_eq!(p1, p2);
    assert_eq!((c2.stats().compiles, c2.stats().disk_hits), (0, 1));
    // A compile error is reported with NVRTC's log and leaves no file.
    let bad = c2.get_or_compile("__global__ void f() { nope; }", &opts).unwrap_err();
    assert!(bad.to_string().contains("nope"), "{bad}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The GPU path loads cubins (no driver JIT, any CUDA 12 driver): a real solve kernel compiled
/// to a cubin for sm_80 and sm_90 without a GPU is an ELF image holding its entry point, and
/// the cache gives the same bytes back from disk.
#[test]
fn real_kernel_compiles_to_cubins_for_sm80_and_sm90() {
    use mpc_cuda::render::{KernelOptions, Precision, render_solve};
    if let Err(e) = mpc_cuda::load_nvrtc() {
        if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false") {
            panic!("NVRTC is required in CI: {e}");
        }
        eprintln!("\n!!!!! SKIPPING NVRTC CUBIN TEST: {e}\n");
        return;
    }
    let k = render_solve::<mpc_models::Pendulum>(&KernelOptions::new(5, Precision::F64)).unwrap();
    let dir = temp_dir("cubin");
    for arch in ["compute_80", "compute_90"] {
        let opts = NvrtcOptions { program_name: k.file_name(), ..NvrtcOptions::new(arch) };
        let c1 = PtxCache::new(Some(dir.clone()));
        let bin = c1.get_or_compile_cubin(&k.source, &opts).unwrap();
        assert_eq!(&bin[..4], b"\x7fELF", "{arch}: not an ELF cubin");
        assert!(bin.windows(k.kernel.len()).any(|w| w == k.kernel.as_bytes()), "{arch}: entry point {} missing", k.kernel);
        assert_eq!(c1.stats().compiles, 1);
        let c2 = PtxCache::new(Some(dir.clone()));
        assert_eq!(c2.get_or_compile_cubin(&k.source, &opts).unwrap(), bin, "{arch}: the cached cubin differs");
        assert_eq!((c2.stats().compiles, c2.stats().disk_hits), (0, 1));
        // The PTX of the same kernel is a different entry (its own key).
        assert!(c2.get_or_compile(&k.source, &opts).unwrap().contains(&format!(".entry {}", k.kernel)));
        assert_eq!(c2.stats().compiles, 1);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
