//! The mpc.pytorch figures `mpc bench` compares with: read from `results-mpc-pytorch-cpu.json`, else embedded.

use serde_json::Value;
use std::path::Path;

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
    pub(super) rows: Vec<(usize, usize, f64, f64)>,
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
    Ok(Peer { source: path.display().to_string(), rows: out })
}

/// The peer results: `--peer`, else the first `shared/peer-bench/results-mpc-pytorch-cpu.json`
/// found next to the repository or the working directory, else the embedded figures.
pub(super) fn load_peer(explicit: Option<&Path>) -> Result<Peer, String> {
    if let Some(p) = explicit {
        return parse_peer(p);
    }
    let rel = Path::new("shared/peer-bench/results-mpc-pytorch-cpu.json");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut candidates = vec![repo.join("..").join(rel), repo.join(rel)];
    if let Ok(cwd) = std::env::current_dir() {
        candidates.extend(cwd.ancestors().map(|d| d.join(rel)));
    }
    for c in candidates {
        if c.is_file()
            && let Ok(p) = parse_peer(&c)
        {
            let source = c.canonicalize().map(|p| p.display().to_string()).unwrap_or(p.source);
            return Ok(Peer { source, rows: p.rows });
        }
    }
    Ok(Peer { source: "embedded (results-mpc-pytorch-cpu.json not found)".into(), rows: PEER_FALLBACK.to_vec() })
}
