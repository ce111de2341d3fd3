//! PNG plots of flights and training runs: a top-down track view like Fig. 4 of the CA-AC-MPC
//! paper, a 3-D view, state/control time series and training curves.
//!
//! All text is rendered with DejaVu Sans embedded from the `dejavu` crate (registered once with
//! plotters' `ab_glyph` backend under the family name "sans-serif"), so plotting never depends on
//! the fonts installed on the machine. The image format follows the file extension (use `.png`).

mod curves;
mod lines;
mod scale;
mod speed;
mod states;
mod style;
mod top_down;
mod view3d;

use crate::track::Track;
use curves::{draw_curves, draw_panels};
use plotters::coord::Shift;
use plotters::prelude::*;
use scale::{norm, sub};
use serde::Serialize;
use states::draw_states;
use std::error::Error;
use std::path::Path;
use style::{STATES_SIZE, TOP_DOWN_SIZE, VIEW_3D_SIZE, ensure_fonts};
use top_down::draw_top_down;
use view3d::draw_3d;

/// A flown trajectory sampled every `dt` seconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Trajectory {
    /// Sample period (s).
    pub dt: f64,
    /// Positions in world coordinates (m, z up), one per sample.
    pub pos: Vec<[f64; 3]>,
    /// Velocities (m/s), one per sample; may be empty, then speeds come from finite differences
    /// of `pos`.
    pub vel: Vec<[f64; 3]>,
    /// Controls applied over each interval: collective thrust (N) and body rates wx, wy, wz
    /// (rad/s); `controls[k]` acts from `k·dt` to `(k+1)·dt`. Length `pos.len() - 1`, or empty
    /// when not recorded.
    pub controls: Vec<[f64; 4]>,
}

impl Trajectory {
    /// Speed (m/s) at every sample: `|vel[i]|` when velocities are recorded, otherwise central
    /// finite differences of `pos` (one-sided at the ends; a single sample has speed 0).
    ///
    /// Errors when `vel` is neither empty nor as long as `pos`, or when `dt` is needed and is not
    /// a positive finite number.
    pub fn speeds(&self) -> Result<Vec<f64>, PlotError> {
        let n = self.pos.len();
        if !self.vel.is_empty() {
            if self.vel.len() != n {
                return Err(PlotError::Invalid(format!(
                    "trajectory has {n} positions but {} velocities (need as many, or none)",
                    self.vel.len()
                )));
            }
            return Ok(self.vel.iter().map(|v| norm(*v)).collect());
        }
        if n < 2 {
            return Ok(vec![0.0; n]);
        }
        if !(self.dt.is_finite() && self.dt > 0.0) {
            return Err(PlotError::Invalid(format!(
                "trajectory dt = {} must be positive to derive speeds from positions",
                self.dt
            )));
        }
        Ok((0..n)
            .map(|i| {
                let (a, b) = (i.saturating_sub(1), (i + 1).min(n - 1));
                let d = sub(self.pos[b], self.pos[a]);
                norm(d) / ((b - a) as f64 * self.dt)
            })
            .collect())
    }
}

/// One training curve for [`curves_png`]: (panel title, y-axis label, points (environment
/// steps, value)).
pub type Curve = (String, String, Vec<(f64, f64)>);

/// Why a plot could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The output file could not be created.
    #[error("cannot write plot {path}: {source}")]
    Io {
        /// The output path.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Plotters failed while drawing or encoding the image.
    #[error("drawing plot {path} failed: {message}")]
    Draw {
        /// The output path.
        path: String,
        /// Plotters' error, as text.
        message: String,
    },
    /// The input cannot be plotted (inconsistent lengths, bad `dt`, nothing to draw).
    #[error("cannot plot: {0}")]
    Invalid(String),
    /// The embedded font could not be registered with plotters.
    #[error("cannot register the embedded DejaVu Sans font: {0}")]
    Font(String),
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type DrawResult = Result<(), Box<dyn Error>>;

/// Top-down (XY) view like the CA-AC-MPC paper's Fig. 4: the path coloured by speed (turbo
/// colormap with a colour bar in m/s), each gate as a thick bar of its width across the flight
/// direction with an arrow along its normal and its 1-based number, the start marked, 1 m in x
/// drawn as long as 1 m in y. An empty trajectory draws just the track.
pub fn top_down_png(
    path: &Path,
    track: &Track,
    traj: &Trajectory,
    title: &str,
) -> Result<(), PlotError> {
    let speeds = traj.speeds()?;
    render(path, TOP_DOWN_SIZE, |root| {
        draw_top_down(root, track, traj, &speeds, title)
    })
}

/// 3-D view: the path coloured by speed (with its shadow on the ground), gates as their
/// 4-corner rectangles, numbered, the start marked; the three axes share one scale. An empty
/// trajectory draws just the track.
pub fn view_3d_png(
    path: &Path,
    track: &Track,
    traj: &Trajectory,
    title: &str,
) -> Result<(), PlotError> {
    let speeds = traj.speeds()?;
    render(path, VIEW_3D_SIZE, |root| {
        draw_3d(root, track, traj, &speeds, title)
    })
}

/// Time series in four stacked panels sharing the time axis: position x, y, z; speed;
/// collective thrust; body rates. Controls are drawn as held over their interval. Errors on an
/// empty trajectory or a `dt` that is not positive and finite.
pub fn states_controls_png(path: &Path, traj: &Trajectory, title: &str) -> Result<(), PlotError> {
    if traj.pos.is_empty() {
        return Err(PlotError::Invalid(
            "trajectory is empty: no states to plot".into(),
        ));
    }
    if !(traj.dt.is_finite() && traj.dt > 0.0) {
        return Err(PlotError::Invalid(format!(
            "trajectory dt = {} must be positive",
            traj.dt
        )));
    }
    let speeds = traj.speeds()?;
    render(path, STATES_SIZE, |root| {
        draw_states(root, traj, &speeds, title)
    })
}

/// Training curves: one panel per series (two columns from four series on), all sharing the
/// x range, x = environment steps. `series` = (panel title, y label, points (x, y)); points with
/// a non-finite coordinate are skipped, and a panel left without points says so. Errors when
/// `series` is empty.
pub fn curves_png(path: &Path, title: &str, series: &[Curve]) -> Result<(), PlotError> {
    if series.is_empty() {
        return Err(PlotError::Invalid("no training curves to plot".into()));
    }
    let cols = if series.len() <= 3 { 1 } else { 2 };
    let rows = series.len().div_ceil(cols);
    let size = (1000, 70 + 280 * rows as u32);
    render(path, size, |root| {
        draw_curves(root, title, series, (rows, cols))
    })
}

/// One panel of [`panels_png`]: a title, axis labels and labelled lines `(label, points)`.
#[derive(Clone, Debug, Default)]
pub struct Panel {
    /// Panel title.
    pub title: String,
    /// x-axis label.
    pub x_label: String,
    /// y-axis label.
    pub y_label: String,
    /// `(legend label, points)`; non-finite points are skipped.
    pub lines: Vec<(String, Vec<(f64, f64)>)>,
}

/// Panels of labelled lines (experiment results: parameter error against iterations, ...), two
/// columns from three panels on, each panel with its own x range and a legend. Errors when
/// `panels` is empty.
pub fn panels_png(path: &Path, title: &str, panels: &[Panel]) -> Result<(), PlotError> {
    if panels.is_empty() {
        return Err(PlotError::Invalid("no panels to plot".into()));
    }
    let cols = if panels.len() <= 2 { panels.len() } else { 2 };
    let rows = panels.len().div_ceil(cols);
    let size = (560 * cols as u32, 70 + 360 * rows as u32);
    render(path, size, |root| {
        draw_panels(root, title, panels, (rows, cols))
    })
}

/// Creates the file (so a missing directory is an `Io` error), draws on a white canvas and
/// encodes it.
fn render(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&Area) -> DrawResult,
) -> Result<(), PlotError> {
    ensure_fonts()?;
    let name = path.display().to_string();
    std::fs::File::create(path).map_err(|source| PlotError::Io {
        path: name.clone(),
        source,
    })?;
    let root = BitMapBackend::new(path, size).into_drawing_area();
    let result: DrawResult = (|| {
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
        Ok(())
    })();
    result.map_err(|e| PlotError::Draw {
        path: name,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_from_velocities_or_positions() {
        let mut t = Trajectory {
            dt: 0.5,
            pos: vec![[0.0; 3], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0]],
            ..Default::default()
        };
        assert_eq!(t.speeds().unwrap(), vec![2.0, 2.0, 2.0]);
        t.vel = vec![[0.0, 3.0, 4.0]];
        assert!(matches!(t.speeds(), Err(PlotError::Invalid(_))));
        t.vel = vec![[0.0, 3.0, 4.0]; 3];
        assert_eq!(t.speeds().unwrap(), vec![5.0; 3]);
    }
}
