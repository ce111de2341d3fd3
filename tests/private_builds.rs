//! No foreign code is loaded (issue 17): host-emulation builds go to fresh private folders, never
//! to the predictable `mpc-host-<pid>-<n>-<kernel>` path another user could pre-create, and the
//! PTX disk cache ignores folders and files another user owns or can write.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use mpc_models::Pendulum;
use mpc_cuda::NvrtcOptions;
use mpc_cuda::cache::{CacheKey, Origin, PtxCache};
use mpc_cuda::host::HostModule;
use mpc_cuda::render::{KernelOptions, Precision, render_solve};
use mpc_runtime::{Batch, Bound, Model, Solver, SolverOptions};

/// The uid of `nobody`, for files "owned by another user" (works as root, as in CI).
const OTHER_UID: u32 = 65534;

/// Hand `path` to another user when this process may (root); `false` otherwise.
fn give_away(path: &Path) -> bool {
    std::os::unix::fs::chown(path, Some(OTHER_UID), Some(OTHER_UID)).is_ok()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn host_build_ignores_a_pre_created_predictable_folder() {
    let ko = KernelOptions::new(5, Precision::F64).with_solver(SolverOptions::default());
    let k = render_solve::<Pendulum>(&ko).unwrap();
    // What an attacker sharing /tmp would plant: the folders the old naming scheme used
    // (pid, counter 0..8, kernel name), world-writable, owned by another user where possible,
    // each with a library of the expected name.
    let pid = std::process::id();
    let mut planted = Vec::new();
    for n in 0..8 {
        let d = std::env::temp_dir().join(format!("mpc-host-{pid}-{n}-{}", k.kernel));
        std::fs::create_dir_all(&d).unwrap();
        let lib = d.join(format!("lib{}.so", k.kernel));
        std::fs::write(&lib, b"not a library: loading this would be a compromise").unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        let foreign = give_away(&lib) && give_away(&d);
        planted.push((d, foreign));
    }
    let hm = HostModule::build(&k).unwrap_or_else(|e| panic!("{e}"));
    // It built and loaded a working library of its own...
    let x0 = [1.0, 0.0, 0.5];
    // T = 5 stages of C = I (4×4), c = 0.
    let cm: Vec<f64> = (0..5 * 16).map(|i| if (i % 16) % 5 == 0 { 1.0 } else { 0.0 }).collect();
    let cv = vec![0.0; 5 * 4];
    let b = Batch {
        size: 1,
        x_init: &x0,
        cost_hess: &cm,
        cost_lin: &cv,
        u_lower: Bound::PerControl(&[-2.0]),
        u_upper: Bound::PerControl(&[2.0]),
        u_init: None,
    };
    let got = hm.solve(&Pendulum::default().param_values(), &b, 1).unwrap();
    let want = Solver::new(Pendulum::default(), 5, SolverOptions::default()).solve(&b);
    assert!(got.u.iter().zip(&want.u).all(|(a, b)| (a - b).abs() <= 1e-9), "{:?} vs {:?}", got.u, want.u);
    // ...and never touched the planted folders.
    for (d, foreign) in &planted {
        assert_eq!(files_in(d), vec![format!("lib{}.so", k.kernel)], "{} was used", d.display());
        eprintln!("planted {} (owned by another user: {foreign}) untouched", d.display());
        std::fs::remove_dir_all(d).unwrap();
    }
}

const PTX: &str = "//\n// PTX\n.version 8.0\n.target sm_80\n.address_size 64\n";

#[test]
fn ptx_cache_ignores_shared_folders_and_foreign_files() {
    let key = CacheKey::new("kernel source", &NvrtcOptions::new("compute_80"), (12, 9));
    let compiled = |c: &PtxCache| c.get_or_compile_with(&key, || Ok(PTX.to_string())).unwrap().1;
    let tmp = mpc_runtime::private_fs::private_temp_dir("mpc-cache-trust-").unwrap();
    let dir = tmp.path().join("mpc/ptx");
    // A private folder (created 0700): written, then read back by a fresh cache.
    assert_eq!(compiled(&PtxCache::new(Some(dir.clone()))), Origin::Compiled);
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    let file = PtxCache::new(Some(dir.clone())).path_of(&key).unwrap();
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(compiled(&PtxCache::new(Some(dir.clone()))), Origin::Disk);
    // An entry another user can write (or owns) is not read, however valid it looks.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
    let c = PtxCache::new(Some(dir.clone()));
    assert_eq!(compiled(&c), Origin::Compiled);
    assert_eq!(c.stats().disk_rejected, 1);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    if give_away(&file) {
        let c = PtxCache::new(Some(dir.clone()));
        assert_eq!(compiled(&c), Origin::Compiled, "a file owned by another user");
    }
    // A folder others can write: the disk cache is off (memory only), with the reason.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let c = PtxCache::new(Some(dir.clone()));
    assert_eq!(compiled(&c), Origin::Compiled);
    assert!(c.disk_refused().unwrap().contains("writable by its group or others"), "{:?}", c.disk_refused());
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    // A parent others can write (without the sticky bit) could swap the folder: refused too.
    let parent = dir.parent().unwrap();
    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o777)).unwrap();
    let c = PtxCache::new(Some(dir.clone()));
    assert_eq!(compiled(&c), Origin::Compiled);
    assert!(c.disk_refused().unwrap().contains("without the sticky bit"), "{:?}", c.disk_refused());
    // Owned by another user: refused.
    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700)).unwrap();
    if give_away(&dir) {
        let c = PtxCache::new(Some(dir.clone()));
        assert!(c.disk_refused().unwrap().contains("owned by uid"), "{:?}", c.disk_refused());
    }
}
