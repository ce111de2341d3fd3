//! Where and when a run happened, for the JSON record: machine, GPU, git commit and UTC date.

use serde_json::{Value, json};

/// The trimmed standard output of a command that succeeded.
fn command_output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(cmd).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The CPU model name from `/proc/cpuinfo`.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.split_once(':').map_or("", |x| x.1).trim().to_string()))
        .unwrap_or_else(|| "unknown".into())
}

/// UTC date and time, ISO 8601, from the system clock (days-to-civil conversion).
pub(super) fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

/// The machine, toolchain and git state for the JSON record.
pub(super) fn machine_info() -> Value {
    let repo = env!("CARGO_MANIFEST_DIR");
    let commit = command_output("git", &["-C", repo, "rev-parse", "HEAD"]);
    let dirty = command_output("git", &["-C", repo, "status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty());
    json!({
        "cpu": cpu_model(),
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "rustc": command_output("rustc", &["--version"]),
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "git_commit": commit,
        "git_dirty": dirty,
    })
}

/// The GPU in a form for the JSON record: the driver's view of device 0 and `nvidia-smi`'s
/// driver version.
pub(super) fn gpu_info() -> Value {
    let smi = command_output("nvidia-smi", &["--query-gpu=name,driver_version", "--format=csv,noheader", "--id=0"]);
    match mpc_cuda::device_info(0) {
        Ok(d) => json!({
            "name": d.name,
            "compute_capability": format!("{}.{}", d.compute_capability.0, d.compute_capability.1),
            "multiprocessors": d.multiprocessors,
            "memory_bytes": d.total_memory,
            "driver_cuda_version": format!("{}.{}", d.driver_cuda_version.0, d.driver_cuda_version.1),
            "nvidia_smi": smi,
            "driver_version": smi.as_deref().and_then(|s| s.rsplit(',').next()).map(|v| v.trim().to_string()),
            "nvrtc_version": mpc_cuda::nvrtc_version().ok().map(|(a, b)| format!("{a}.{b}")),
        }),
        Err(e) => json!({"error": e.to_string(), "nvidia_smi": smi}),
    }
}
