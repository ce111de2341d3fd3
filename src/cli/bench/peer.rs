//! The mpc.pytorch figures `mpc bench` compares with: measured in the same invocation
//! (`--peer-run`), else read from a stored `results-mpc-pytorch-cpu.json`, else embedded.

use serde_json::Value;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// mpc.pytorch 0.0.6 on this 2-core machine (`results-mpc-pytorch-cpu.json`, medians in ms):
/// `(B, T, forward, backward)`. Used when the file is not found.
const PEER_FALLBACK: &[(usize, usize, f64, f64)] = &[
    (1, 2, 54.26374700004999, 8.101173500108416),
    (1, 10, 200.98756349989344, 23.033034500031135),
    (1, 50, 865.3792464999697, 66.74243799989199),
    (256, 2, 211.75385499986987, 32.35910950002108),
    (256, 10, 571.3338979996934, 102.62490900004195),
    (256, 50, 1768.9707839999755, 326.67878900019787),
];

/// Peer medians per (B, T) and where they came from.
pub(super) struct Peer {
    pub(super) source: String,
    /// `(B, T, forward ms, backward ms)` medians.
    pub(super) rows: Vec<(usize, usize, f64, f64)>,
    /// Measured in this invocation (`--peer-run`): only then are the ratios same-run speed-ups.
    pub(super) same_run: bool,
    /// The peer's own JSON report (settings, machine, every statistic) when it ran here.
    pub(super) report: Option<Value>,
}

impl Peer {
    pub(super) fn get(&self, b: usize, t: usize) -> Option<(f64, f64)> {
        self.rows.iter().find(|r| r.0 == b && r.1 == t).map(|r| (r.2, r.3))
    }
}

/// Read the peer medians from a `results-mpc-pytorch-cpu.json`.
fn parse_peer(path: &Path) -> Result<Peer, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_peer_json(path, v)
}

/// The peer medians of a parsed `results-mpc-pytorch-cpu.json` document read from `path`.
fn parse_peer_json(path: &Path, v: Value) -> Result<Peer, String> {
    let rows = v["rows"].as_array().ok_or_else(|| format!("{}: no `rows` array", path.display()))?;
    let mut out = Vec::new();
    for r in rows {
        let (Some(b), Some(t), Some(f), Some(bw)) = (
            r["B"].as_u64(),
            r["T"].as_u64(),
            r["forward_ms"]["median"].as_f64(),
            r["backward_ms"]["median"].as_f64(),
        ) else {
            return Err(format!("{}: a row lacks B, T or a median", path.display()));
        };
        out.push((b as usize, t as usize, f, bw));
    }
    let m = &v["machine"];
    let machine = match (m["cpu"].as_str(), m["nproc"].as_u64()) {
        (Some(cpu), Some(n)) => format!(" (recorded on {cpu}, {n} cores)"),
        _ => String::new(),
    };
    Ok(Peer { source: format!("{}{machine}", path.display()), rows: out, same_run: false, report: Some(v) })
}

/// The first existing `shared/peer-bench/<name>` next to the repository or above the working
/// directory.
fn find_shared(name: &str) -> Option<PathBuf> {
    let rel = Path::new("shared/peer-bench").join(name);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut candidates = vec![repo.join("..").join(&rel), repo.join(&rel)];
    if let Ok(cwd) = std::env::current_dir() {
        candidates.extend(cwd.ancestors().map(|d| d.join(&rel)));
    }
    candidates.into_iter().find(|c| c.is_file()).map(|c| c.canonicalize().unwrap_or(c))
}

/// What `--peer-run` runs: the interpreter, the script and the grid and settings to give it.
pub(super) struct PeerRun<'a> {
    pub(super) python: &'a Path,
    pub(super) script: Option<&'a Path>,
    pub(super) batches: &'a [usize],
    pub(super) horizons: &'a [usize],
    pub(super) iters: usize,
    pub(super) threads: usize,
    pub(super) seed: u64,
    pub(super) wait_idle: f64,
}

/// Run the mpc.pytorch benchmark now (its progress goes to stderr) and read its medians.
/// Errors name what is missing: the script, the interpreter, or what the script printed last.
pub(super) fn run_peer(r: &PeerRun) -> Result<Peer, String> {
    let script = match r.script {
        Some(s) if s.is_file() => s.to_path_buf(),
        Some(s) => return Err(format!("--peer-script: {} is not a file", s.display())),
        None => find_shared("bench_mpc_pytorch.py").ok_or(
            "--peer-run: shared/peer-bench/bench_mpc_pytorch.py not found next to the repository; give --peer-script",
        )?,
    };
    let out = tempfile::Builder::new()
        .prefix("mpc-bench-peer-")
        .suffix(".json")
        .tempfile()
        .map_err(|e| format!("--peer-run: cannot make a temporary file: {e}"))?;
    let list = |v: &[usize]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mut cmd = Command::new(r.python);
    cmd.arg(&script)
        .arg("--batches")
        .args(list(r.batches))
        .arg("--horizons")
        .args(list(r.horizons))
        .args(["--lqr-iter", &r.iters.to_string(), "--threads", &r.threads.to_string()])
        .args(["--seed", &r.seed.to_string(), "--wait-idle", &r.wait_idle.to_string(), "--out"])
        .arg(out.path());
    eprintln!("mpc bench: --peer-run: {} {} (mpc.pytorch, in this run)", r.python.display(), script.display());
    // Everything the peer prints goes to stderr as it comes (its progress over minutes): stdout
    // stays this command's own table. The last lines of its stderr explain a failure.
    let to_stderr = std::io::stderr().as_fd().try_clone_to_owned().map_err(|e| format!("--peer-run: {e}"))?;
    let mut child = cmd
        .stdout(Stdio::from(to_stderr))
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("--peer-run: cannot run {}: {e}", r.python.display()))?;
    let mut tail: VecDeque<String> = VecDeque::new();
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            eprintln!("{line}");
            if tail.len() == 3 {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }
    let status = child.wait().map_err(|e| format!("--peer-run: {e}"))?;
    if !status.success() {
        return Err(format!(
            "--peer-run: {} {} failed ({status}): {}",
            r.python.display(),
            script.display(),
            Vec::from(tail).join(" / ")
        ));
    }
    let mut peer = parse_peer(out.path()).map_err(|e| format!("--peer-run: the peer's report: {e}"))?;
    for &b in r.batches {
        for &t in r.horizons {
            if peer.get(b, t).is_none() {
                return Err(format!("--peer-run: the peer's report has no row for B = {b}, T = {t}"));
            }
        }
    }
    let versions = peer.report.as_ref().map_or(String::new(), |v| {
        let m = &v["machine"];
        let get = |k: &str| m[k].as_str().unwrap_or("?").to_string();
        format!(" (mpc {}, torch {}, python {})", get("mpc"), get("torch"), get("python"))
    });
    peer.source = format!("measured in this run by {}{versions}", script.display());
    peer.same_run = true;
    Ok(peer)
}

/// The peer results: `--peer`, else the first `shared/peer-bench/results-mpc-pytorch-cpu.json`
/// found next to the repository or the working directory, else the embedded figures.
pub(super) fn load_peer(explicit: Option<&Path>) -> Result<Peer, String> {
    if let Some(p) = explicit {
        return parse_peer(p);
    }
    if let Some(c) = find_shared("results-mpc-pytorch-cpu.json")
        && let Ok(p) = parse_peer(&c)
    {
        return Ok(p);
    }
    Ok(Peer {
        source: "embedded (results-mpc-pytorch-cpu.json not found)".into(),
        rows: PEER_FALLBACK.to_vec(),
        same_run: false,
        report: None,
    })
}
