//! Race tracks: gates with pose and size, read from the CA-AC-MPC YAML format unchanged.
//!
//! Schema (`utils/track_generator.py::load_track_from_yaml`): optional `track_id`, optional
//! `start_pos: [x, y, z, yaw_deg]`, and any number of `gate_*` keys holding
//! `[x, y, z, yaw_deg]` or `[x, y, z, yaw_deg, width, height]` (width/height default 1.5 m),
//! ordered by natural sort of the key (`gate_2` before `gate_10`).

use serde::Serialize;
use std::path::Path;

/// Default gate width and height of the YAML format (m).
pub const DEFAULT_GATE_SIZE: f64 = 1.5;

/// One gate: a rectangle in a vertical plane, flown through along its normal.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Gate {
    /// Centre in world coordinates (m, z up).
    pub center: [f64; 3],
    /// Yaw in radians; the required flight direction is `(cos ψ, sin ψ, 0)`.
    pub yaw: f64,
    /// Extent along the gate's horizontal axis `r = (−sin ψ, cos ψ, 0)` (m).
    pub width: f64,
    /// Extent along world z (m).
    pub height: f64,
}

impl Gate {
    /// Unit normal `n = (cos ψ, sin ψ, 0)`: the direction a valid crossing goes.
    pub fn normal(&self) -> [f64; 3] {
        [self.yaw.cos(), self.yaw.sin(), 0.0]
    }

    /// The gate's horizontal axis `r = (−sin ψ, cos ψ, 0)` (called "right" in the reference).
    pub fn right(&self) -> [f64; 3] {
        [-self.yaw.sin(), self.yaw.cos(), 0.0]
    }

    /// Corners in the observation's order: top-right, top-left, bottom-left, bottom-right,
    /// with TR = c + r·w/2 + u·h/2 (u = world z).
    pub fn corners(&self) -> [[f64; 3]; 4] {
        let r = self.right();
        let (hw, hh) = (0.5 * self.width, 0.5 * self.height);
        let c = self.center;
        let at = |sr: f64, su: f64| [c[0] + sr * hw * r[0], c[1] + sr * hw * r[1], c[2] + su * hh];
        [at(1.0, 1.0), at(-1.0, 1.0), at(-1.0, -1.0), at(1.0, -1.0)]
    }
}

/// A track: its gates in racing order and an optional spawn pose.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Track {
    /// `track_id` from the file, or the file stem / built-in name.
    pub id: String,
    /// Spawn pose `[x, y, z, yaw_rad]`; `None` means the random spawn in front of a gate.
    pub start: Option<[f64; 4]>,
    /// Gates in the order they must be passed.
    pub gates: Vec<Gate>,
}

/// A track file that could not be read or does not follow the schema.
#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    /// The file could not be read.
    #[error("cannot read track file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// The text is not YAML, or a key holds the wrong kind of value.
    #[error("track {name}: {message}")]
    Invalid { name: String, message: String },
}

/// Tracks shipped with the project (copies of the reference's YAML files), by name.
pub const BUILTIN_TRACKS: &[(&str, &str)] = &[
    ("zurich", include_str!("../tracks/zurich.yaml")),
    ("abudhabi", include_str!("../tracks/abudhabi.yaml")),
    ("splits", include_str!("../tracks/splits.yaml")),
    ("circle", include_str!("../tracks/circle.yaml")),
    ("horizontal", include_str!("../tracks/horizontal.yaml")),
    ("vertical", include_str!("../tracks/vertical.yaml")),
    ("straight", include_str!("../tracks/straight.yaml")),
    ("straight_wind", include_str!("../tracks/straight_wind.yaml")),
];

/// Natural-sort key of a gate name: `gate_2` < `gate_10`.
fn natural_key(name: &str) -> Vec<(String, u64)> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut digits = String::new();
    for ch in name.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
        } else {
            if !digits.is_empty() {
                parts.push((std::mem::take(&mut text), digits.parse().unwrap_or(u64::MAX)));
                digits.clear();
            }
            text.push(ch);
        }
    }
    parts.push((text, if digits.is_empty() { 0 } else { digits.parse().unwrap_or(u64::MAX) }));
    parts
}

fn numbers(name: &str, key: &str, value: &serde_yaml_ng::Value) -> Result<Vec<f64>, TrackError> {
    let invalid = |message: String| TrackError::Invalid { name: name.to_string(), message };
    let seq = value
        .as_sequence()
        .ok_or_else(|| invalid(format!("`{key}` must be a list of numbers")))?;
    seq.iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_f64()
                .filter(|x| x.is_finite())
                .ok_or_else(|| invalid(format!("`{key}[{i}]` must be a finite number, got {v:?}")))
        })
        .collect()
}

impl Track {
    /// Parses the YAML text of a track; `name` is used in errors and when `track_id` is absent.
    pub fn from_yaml_str(name: &str, text: &str) -> Result<Track, TrackError> {
        let invalid = |message: String| TrackError::Invalid { name: name.to_string(), message };
        let doc: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(text).map_err(|e| invalid(format!("not valid YAML: {e}")))?;
        let map = doc.as_mapping().ok_or_else(|| invalid("the top level must be a mapping".into()))?;
        let mut id = name.to_string();
        let mut start = None;
        let mut gates: Vec<(String, Gate)> = Vec::new();
        for (k, v) in map {
            let Some(key) = k.as_str() else { continue };
            if key == "track_id" {
                id = v.as_str().ok_or_else(|| invalid("`track_id` must be a string".into()))?.to_string();
            } else if key == "start_pos" {
                let s = numbers(name, key, v)?;
                if s.len() != 4 {
                    return Err(invalid(format!("`start_pos` must be [x, y, z, yaw_deg], got {} numbers", s.len())));
                }
                start = Some([s[0], s[1], s[2], s[3].to_radians()]);
            } else if key.starts_with("gate_") {
                let g = numbers(name, key, v)?;
                let (width, height) = match g.len() {
                    4 => (DEFAULT_GATE_SIZE, DEFAULT_GATE_SIZE),
                    6 => (g[4], g[5]),
                    n => {
                        return Err(invalid(format!(
                            "`{key}` must be [x, y, z, yaw_deg] or [x, y, z, yaw_deg, width, height], got {n} numbers"
                        )));
                    }
                };
                if !(width > 0.0 && height > 0.0) {
                    return Err(invalid(format!("`{key}`: width and height must be positive")));
                }
                gates.push((key.to_string(), Gate { center: [g[0], g[1], g[2]], yaw: g[3].to_radians(), width, height }));
            }
        }
        if gates.is_empty() {
            return Err(invalid("no `gate_*` entries".into()));
        }
        gates.sort_by_key(|(k, _)| natural_key(k));
        Ok(Track { id, start, gates: gates.into_iter().map(|(_, g)| g).collect() })
    }

    /// Reads a track file.
    pub fn load(path: &Path) -> Result<Track, TrackError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| TrackError::Io { path: path.display().to_string(), source })?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("track");
        Track::from_yaml_str(stem, &text)
    }

    /// A shipped track by name (`zurich` = SplitS, the default).
    pub fn builtin(name: &str) -> Option<Track> {
        BUILTIN_TRACKS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, text)| Track::from_yaml_str(n, text).expect("shipped tracks parse"))
    }

    /// A built-in name or a path to a YAML file.
    pub fn resolve(name_or_path: &str) -> Result<Track, TrackError> {
        match Track::builtin(name_or_path) {
            Some(t) => Ok(t),
            None => Track::load(Path::new(name_or_path)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zurich_has_seven_gates_in_order_with_start_pose() {
        let t = Track::builtin("zurich").unwrap();
        assert_eq!(t.id, "rpg_slit_s_benchmark");
        assert_eq!(t.gates.len(), 7);
        assert_eq!(t.gates[3].center, [-4.0, -5.5, 3.5]);
        assert!((t.gates[3].yaw - std::f64::consts::PI).abs() < 1e-12);
        let s = t.start.unwrap();
        assert_eq!(&s[..3], &[-5.0, 5.0, 1.0]);
        assert!((s[3] + 60f64.to_radians()).abs() < 1e-12);
    }

    #[test]
    fn all_builtins_parse_and_gates_sort_naturally() {
        for (name, _) in BUILTIN_TRACKS {
            assert!(!Track::builtin(name).unwrap().gates.is_empty(), "{name}");
        }
        let t = Track::from_yaml_str("t", "gate_10: [10, 0, 1, 0]\ngate_2: [2, 0, 1, 0]\ngate_1: [1, 0, 1, 0, 1, 2]\n").unwrap();
        let xs: Vec<f64> = t.gates.iter().map(|g| g.center[0]).collect();
        assert_eq!(xs, vec![1.0, 2.0, 10.0]);
        assert_eq!((t.gates[0].width, t.gates[0].height), (1.0, 2.0));
        assert_eq!(t.gates[1].width, DEFAULT_GATE_SIZE);
    }

    #[test]
    fn bad_tracks_name_the_key() {
        let e = Track::from_yaml_str("t", "gate_1: [1, 2, 3]\n").unwrap_err().to_string();
        assert!(e.contains("gate_1"), "{e}");
        let e = Track::from_yaml_str("t", "start_pos: [1, 2]\ngate_1: [1, 2, 3, 4]\n").unwrap_err().to_string();
        assert!(e.contains("start_pos"), "{e}");
        let e = Track::from_yaml_str("t", "track_id: x\n").unwrap_err().to_string();
        assert!(e.contains("no `gate_*`"), "{e}");
    }

    #[test]
    fn corners_follow_the_reference_order() {
        let g = Gate { center: [0.0, 0.0, 1.0], yaw: 0.0, width: 2.0, height: 1.0 };
        // yaw 0: n = +x, r = +y.
        let c = g.corners();
        assert_eq!(c[0], [0.0, 1.0, 1.5]); // TR = c + r w/2 + u h/2
        assert_eq!(c[1], [0.0, -1.0, 1.5]); // TL
        assert_eq!(c[2], [0.0, -1.0, 0.5]); // BL
        assert_eq!(c[3], [0.0, 1.0, 0.5]); // BR
    }
}
