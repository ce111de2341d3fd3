//! PNG plots of flights and training runs: a top-down track view like Fig. 4 of the CA-AC-MPC
//! paper, a 3-D view, state/control time series and training curves.
//!
//! All text is rendered with DejaVu Sans embedded from the `dejavu` crate (registered once with
//! plotters' `ab_glyph` backend under the family name "sans-serif"), so plotting never depends on
//! the fonts installed on the machine. The image format follows the file extension (use `.png`).

use crate::track::{Gate, Track};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::register_font;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Serialize;
use std::error::Error;
use std::path::Path;
use std::sync::OnceLock;

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

const TOP_DOWN_SIZE: (u32, u32) = (1000, 900);
const VIEW_3D_SIZE: (u32, u32) = (1000, 800);
const STATES_SIZE: (u32, u32) = (1000, 1000);
const FONT: &str = "sans-serif";
/// Camera of the 3-D view (plotters' projection angles, rad).
const VIEW_YAW: f64 = 0.65;
const VIEW_PITCH: f64 = 0.55;
const GATE_COLOR: RGBColor = RGBColor(45, 45, 45);
/// Tableau-10 colours for line plots.
const LINE_COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

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
        let body = root.margin(6, 0, 0, 0).titled(title, title_style())?;
        let areas = body.split_evenly((rows, cols));
        for (k, p) in panels.iter().enumerate() {
            let x_span = span(p.lines.iter().flat_map(|l| l.1.iter().filter(|(x, y)| x.is_finite() && y.is_finite()).map(|q| q.0)));
            let x_range = match x_span {
                Some((lo, hi)) if hi > lo => (lo, hi),
                other => padded(other.unwrap_or((0.0, 1.0)), 0.0),
            };
            let lines: Vec<Line> = p
                .lines
                .iter()
                .enumerate()
                .map(|(i, (label, pts))| Line { label: label.as_str(), color: LINE_COLORS[i % LINE_COLORS.len()], points: pts.clone() })
                .collect();
            line_panel(&areas[k], Some(&p.title), &p.x_label, &p.y_label, x_range, &lines, "no finite data", &|v: &f64| si(*v))?;
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Shared machinery

fn ensure_fonts() -> Result<(), PlotError> {
    static FONTS: OnceLock<Result<(), String>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
                .map_err(|_| "DejaVuSans.ttf is not a valid font".to_string())?;
            register_font(FONT, FontStyle::Bold, dejavu::sans::bold())
                .map_err(|_| "DejaVuSans-Bold.ttf is not a valid font".to_string())?;
            Ok(())
        })
        .clone()
        .map_err(PlotError::Font)
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

fn title_style() -> TextStyle<'static> {
    FontDesc::new(FontFamily::Name(FONT), 26.0, FontStyle::Bold).into()
}

fn text(size: f64) -> TextStyle<'static> {
    FontDesc::new(FontFamily::Name(FONT), size, FontStyle::Normal).into()
}

fn bold(size: f64) -> TextStyle<'static> {
    FontDesc::new(FontFamily::Name(FONT), size, FontStyle::Bold).into()
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn norm(v: [f64; 3]) -> f64 {
    (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()
}

fn finite3(p: &[f64; 3]) -> bool {
    p.iter().all(|v| v.is_finite())
}

/// Turbo colormap (Google's polynomial fit), `x` in [0, 1]: dark blue → green → yellow → dark red.
fn turbo(x: f64) -> RGBColor {
    let x = if x.is_finite() {
        x.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let poly = |c: [f64; 6]| c[0] + x * (c[1] + x * (c[2] + x * (c[3] + x * (c[4] + x * c[5]))));
    let r = poly([
        0.13572138,
        4.61539260,
        -42.66032258,
        132.13108234,
        -152.94239396,
        59.28637943,
    ]);
    let g = poly([
        0.09140261,
        2.19418839,
        4.84296658,
        -14.18503333,
        4.27729857,
        2.82956604,
    ]);
    let b = poly([
        0.10667330,
        12.64194608,
        -60.58204836,
        110.36276771,
        -89.90310912,
        27.34824973,
    ]);
    let to = |v: f64| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    RGBColor(to(r), to(g), to(b))
}

/// Min and max of the finite values, if any.
fn span(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// Widens `(lo, hi)` by `frac` of its width on both sides; a zero-width range gets a width of
/// `max(1, |value|·0.2)` around its value.
fn padded((lo, hi): (f64, f64), frac: f64) -> (f64, f64) {
    let w = hi - lo;
    if w > 1e-12 * (1.0 + lo.abs().max(hi.abs())) {
        (lo - frac * w, hi + frac * w)
    } else {
        let half = (0.1 * lo.abs()).max(0.5);
        (lo - half, hi + half)
    }
}

/// Speed range for the colour bar; a constant speed gets a 1 m/s wide bar starting at
/// `max(0, v − 0.5)`.
fn speed_range(speeds: &[f64]) -> Option<(f64, f64)> {
    let (lo, hi) = span(speeds.iter().copied())?;
    if hi - lo > 1e-9 {
        Some((lo, hi))
    } else {
        let lo = (lo - 0.5).max(0.0);
        Some((lo, lo + 1.0))
    }
}

/// Tick label with a k/M suffix for large values (environment steps).
fn si(v: f64) -> String {
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim(format!("{:.2}", v / 1e6)))
    } else if a >= 1e4 {
        format!("{}k", trim(format!("{:.1}", v / 1e3)))
    } else if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a < 0.01 {
        format!("{v:.1e}")
    } else {
        trim(format!("{v:.3}"))
    }
}

/// Runs of consecutive finite samples, each with at least two points, with their speeds.
fn finite_runs<'a>(pos: &'a [[f64; 3]], speeds: &'a [f64]) -> Vec<(&'a [[f64; 3]], &'a [f64])> {
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 0..=pos.len() {
        if i == pos.len() || !finite3(&pos[i]) {
            if i - start >= 2 {
                runs.push((&pos[start..i], &speeds[start..i]));
            }
            start = i + 1;
        }
    }
    runs
}

/// Number of colour levels the path is quantised to; consecutive segments of one level are
/// drawn as one polyline so that thick lines get proper joints.
const COLOR_LEVELS: usize = 96;

/// Path segments grouped into polylines of one colour: `(points, colour)`, points mapped by `map`;
/// a segment next to a non-finite speed is grey.
fn coloured_polylines<C>(
    pos: &[[f64; 3]],
    speeds: &[f64],
    (vmin, vmax): (f64, f64),
    map: impl Fn(&[f64; 3]) -> C,
) -> Vec<(Vec<C>, RGBColor)> {
    let mut out: Vec<(Vec<C>, RGBColor)> = Vec::new();
    for (run, sp) in finite_runs(pos, speeds) {
        // Colour level of the open polyline; `Some(None)` is an unknown (non-finite) speed.
        let mut current: Option<Option<usize>> = None;
        for i in 0..run.len() - 1 {
            let s = 0.5 * (sp[i] + sp[i + 1]);
            let level = s.is_finite().then(|| {
                let x = ((s - vmin) / (vmax - vmin)).clamp(0.0, 1.0);
                ((x * (COLOR_LEVELS - 1) as f64).round() as usize).min(COLOR_LEVELS - 1)
            });
            if current == Some(level) {
                out.last_mut()
                    .expect("a polyline is open")
                    .0
                    .push(map(&run[i + 1]));
            } else {
                let color = match level {
                    Some(l) => turbo(l as f64 / (COLOR_LEVELS - 1) as f64),
                    None => RGBColor(150, 150, 150),
                };
                out.push((vec![map(&run[i]), map(&run[i + 1])], color));
                current = Some(level);
            }
        }
    }
    out
}

/// A vertical colour bar for speeds in `(vmin, vmax)`, drawn into `area` with `top`/`bottom`
/// pixel margins so that it lines up with the neighbouring plot.
fn draw_colour_bar(area: &Area, (vmin, vmax): (f64, f64), top: u32, bottom: u32) -> DrawResult {
    let mut chart = ChartBuilder::on(area)
        .margin_top(top)
        .margin_bottom(bottom)
        .margin_left(12)
        .margin_right(8)
        .right_y_label_area_size(80)
        .build_cartesian_2d(0.0..1.0, vmin..vmax)?;
    let levels = 256;
    chart.draw_series((0..levels).map(|k| {
        let (a, b) = (k as f64 / levels as f64, (k + 1) as f64 / levels as f64);
        Rectangle::new(
            [
                (0.0, vmin + a * (vmax - vmin)),
                (1.0, vmin + b * (vmax - vmin)),
            ],
            turbo((a + b) / 2.0).filled(),
        )
    }))?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(8)
        .y_desc("speed [m/s]")
        .label_style(text(15.0))
        .axis_desc_style(text(17.0))
        .y_label_formatter(&|v| format!(" {}", trim_float(*v)))
        .draw()?;
    chart.draw_series(std::iter::once(Rectangle::new(
        [(0.0, vmin), (1.0, vmax)],
        BLACK.stroke_width(1),
    )))?;
    Ok(())
}

/// A round badge with a number, centred on a data coordinate.
macro_rules! badge {
    ($at:expr, $label:expr) => {
        EmptyElement::at($at)
            + Circle::new((0, 0), 12, WHITE.filled())
            + Circle::new((0, 0), 12, GATE_COLOR.stroke_width(2))
            + Text::new(
                $label,
                (0, 0),
                bold(15.0).pos(Pos::new(HPos::Center, VPos::Center)),
            )
    };
}

// ---------------------------------------------------------------------------------------------
// Top-down view

/// Gate geometry in the XY plane: bar ends, arrow polyline and head, label position.
struct GateXY {
    bar: [(f64, f64); 2],
    arrow: [(f64, f64); 2],
    head: [(f64, f64); 3],
    label: (f64, f64),
}

fn gate_xy(g: &Gate, scale: f64) -> GateXY {
    let (c, n, r) = (g.center, g.normal(), g.right());
    let hw = 0.5 * g.width;
    let at = |sn: f64, sr: f64| (c[0] + sn * n[0] + sr * r[0], c[1] + sn * n[1] + sr * r[1]);
    let len = 1.6 * scale;
    let head = 0.45 * scale;
    GateXY {
        bar: [at(0.0, -hw), at(0.0, hw)],
        arrow: [at(0.0, 0.0), at(len - 0.5 * head, 0.0)],
        head: [
            at(len, 0.0),
            at(len - head, 0.4 * head),
            at(len - head, -0.4 * head),
        ],
        label: at(0.0, hw + 0.9 * scale),
    }
}

fn draw_top_down(
    root: &Area,
    track: &Track,
    traj: &Trajectory,
    speeds: &[f64],
    title: &str,
) -> DrawResult {
    let body = root.margin(6, 0, 0, 0).titled(title, title_style())?;
    let range = if finite_runs(&traj.pos, speeds).is_empty() {
        None
    } else {
        speed_range(speeds)
    };
    let (w, _) = body.dim_in_pixel();
    let bar_w = if range.is_some() { 130 } else { 0 };
    let (main, bar) = body.split_horizontally(w as i32 - bar_w);

    // Extent of everything drawn, in metres; gate decorations scale with the track size.
    let xy_points = || {
        traj.pos
            .iter()
            .filter(|p| finite3(p))
            .map(|p| (p[0], p[1]))
            .chain(track.gates.iter().flat_map(|g| gate_xy(g, 1.0).bar))
            .chain(track.start.iter().map(|s| (s[0], s[1])))
    };
    let raw_x = span(xy_points().map(|p| p.0)).unwrap_or((-1.0, 1.0));
    let raw_y = span(xy_points().map(|p| p.1)).unwrap_or((-1.0, 1.0));
    let extent = (raw_x.1 - raw_x.0).max(raw_y.1 - raw_y.0).max(2.0);
    let deco = (extent / 16.0).clamp(0.4, 3.0);
    let gates: Vec<GateXY> = track.gates.iter().map(|g| gate_xy(g, deco)).collect();
    let all_x = span(
        xy_points()
            .map(|p| p.0)
            .chain(gates.iter().map(|g| g.label.0)),
    )
    .unwrap_or(raw_x);
    let all_y = span(
        xy_points()
            .map(|p| p.1)
            .chain(gates.iter().map(|g| g.label.1)),
    )
    .unwrap_or(raw_y);
    let margin = 0.8 * deco;
    let (mut x0, mut x1) = (all_x.0 - margin, all_x.1 + margin);
    let (mut y0, mut y1) = (all_y.0 - margin, all_y.1 + margin);

    let (plot_margin, x_label, y_label) = (15u32, 55u32, 65u32);
    let mut builder = ChartBuilder::on(&main);
    builder
        .margin(plot_margin)
        .x_label_area_size(x_label)
        .y_label_area_size(y_label);
    // Equal scaling: widen the range of the axis that has metres to spare.
    let (pw, ph) = builder
        .build_cartesian_2d(0.0..1.0, 0.0..1.0)?
        .plotting_area()
        .dim_in_pixel();
    let m_per_px = ((x1 - x0) / pw.max(1) as f64).max((y1 - y0) / ph.max(1) as f64);
    let (cx, cy) = (0.5 * (x0 + x1), 0.5 * (y0 + y1));
    (x0, x1) = (
        cx - 0.5 * m_per_px * pw as f64,
        cx + 0.5 * m_per_px * pw as f64,
    );
    (y0, y1) = (
        cy - 0.5 * m_per_px * ph as f64,
        cy + 0.5 * m_per_px * ph as f64,
    );
    let mut chart = builder.build_cartesian_2d(x0..x1, y0..y1)?;
    chart
        .configure_mesh()
        .x_desc("x [m]")
        .y_desc("y [m]")
        .label_style(text(15.0))
        .axis_desc_style(text(17.0))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(BLACK.mix(0.04))
        .x_label_formatter(&|v| trim_float(*v))
        .y_label_formatter(&|v| trim_float(*v))
        .draw()?;

    // Gates under the path, so that the crossing stays visible.
    chart.draw_series(
        gates
            .iter()
            .map(|g| PathElement::new(g.bar.to_vec(), GATE_COLOR.stroke_width(8))),
    )?;
    if let Some(range) = range {
        chart.draw_series(
            coloured_polylines(&traj.pos, speeds, range, |p| (p[0], p[1]))
                .into_iter()
                .map(|(pts, color)| PathElement::new(pts, color.stroke_width(3))),
        )?;
    }
    chart.draw_series(
        gates
            .iter()
            .map(|g| PathElement::new(g.arrow.to_vec(), GATE_COLOR.stroke_width(3))),
    )?;
    chart.draw_series(
        gates
            .iter()
            .map(|g| Polygon::new(g.head.to_vec(), GATE_COLOR.filled())),
    )?;
    chart.draw_series(
        gates
            .iter()
            .enumerate()
            .map(|(i, g)| badge!(g.label, format!("{}", i + 1))),
    )?;

    // Start: the first finite sample of the flight, else the track's spawn pose.
    let start = traj.pos.iter().find(|p| finite3(p)).map(|p| (p[0], p[1]));
    if let Some(s) = track.start {
        let len = 1.2 * deco;
        let tip = (s[0] + len * s[3].cos(), s[1] + len * s[3].sin());
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(s[0], s[1]), tip],
            BLACK.stroke_width(2),
        )))?;
    }
    if let Some(p) = start.or(track.start.map(|s| (s[0], s[1]))) {
        chart.draw_series(std::iter::once(
            EmptyElement::at(p)
                + Circle::new((0, 0), 8, BLACK.filled())
                + Circle::new((0, 0), 4, WHITE.filled())
                + Text::new("start", (10, -22), bold(16.0)),
        ))?;
    }

    if let Some(range) = range {
        draw_colour_bar(&bar, range, plot_margin, plot_margin + x_label)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 3-D view

fn draw_3d(
    root: &Area,
    track: &Track,
    traj: &Trajectory,
    speeds: &[f64],
    title: &str,
) -> DrawResult {
    let body = root.margin(6, 0, 0, 0).titled(title, title_style())?;
    let range = if finite_runs(&traj.pos, speeds).is_empty() {
        None
    } else {
        speed_range(speeds)
    };
    let (w, _) = body.dim_in_pixel();
    let bar_w = if range.is_some() { 130 } else { 0 };
    let (main, bar) = body.split_horizontally(w as i32 - bar_w);

    let points = || {
        traj.pos
            .iter()
            .filter(|p| finite3(p))
            .copied()
            .chain(track.gates.iter().flat_map(|g| g.corners()))
            .chain(track.start.iter().map(|s| [s[0], s[1], s[2]]))
    };
    let sx = padded(span(points().map(|p| p[0])).unwrap_or((-1.0, 1.0)), 0.05);
    let sy = padded(span(points().map(|p| p[1])).unwrap_or((-1.0, 1.0)), 0.05);
    let sz = span(points().map(|p| p[2])).unwrap_or((0.0, 1.0));
    let sz = (sz.0.min(0.0), sz.1 + 0.1 * (sz.1 - sz.0.min(0.0)).max(1.0));
    let (lx, ly, lz) = (sx.1 - sx.0, sy.1 - sy.0, sz.1 - sz.0);

    // plotters' 3-D y axis is vertical; world (x, y, z) is drawn at (y, z, x), a cyclic
    // permutation, so the picture is not mirrored.
    let mut chart = ChartBuilder::on(&main).margin(10).build_cartesian_3d(
        sy.0..sy.1,
        sz.0..sz.1,
        sx.0..sx.1,
    )?;
    let (pw, ph) = chart.plotting_area().dim_in_pixel();
    let longest = lx.max(ly).max(lz);
    let base = pw.min(ph) as f64 * 0.78;
    let px = |l: f64| ((base * l / longest).round() as i32).max(1);
    chart.set_3d_pixel_range((px(ly), px(lz), px(lx)));
    chart.with_projection(|mut pb| {
        pb.yaw = VIEW_YAW;
        pb.pitch = VIEW_PITCH;
        pb.scale = 1.0;
        pb.into_matrix()
    });
    let fmt = |v: &f64| trim_float(*v);
    chart
        .configure_axes()
        .label_style(text(13.0))
        .max_light_lines(4)
        .y_labels(5)
        .x_formatter(&fmt)
        .y_formatter(&fmt)
        .z_formatter(&fmt)
        .light_grid_style(BLACK.mix(0.05))
        .bold_grid_style(BLACK.mix(0.15))
        .axis_panel_style(RGBColor(235, 238, 242).mix(0.6))
        .draw()?;
    let w3 = |p: &[f64; 3]| (p[1], p[2], p[0]);
    let ground = sz.0;

    // Axis names at the middle of the edges plotters puts the ticks on for this view.
    chart.draw_series([
        EmptyElement::at((sy.1, ground, 0.5 * (sx.0 + sx.1)))
            + Text::new("x [m]", (40, 28), bold(15.0)),
        EmptyElement::at((0.5 * (sy.0 + sy.1), ground, sx.1))
            + Text::new("y [m]", (-80, 28), bold(15.0)),
        EmptyElement::at((sy.0, sz.1, sx.1)) + Text::new("z [m]", (-5, -28), bold(15.0)),
    ])?;

    // Ground shadows: path and gates.
    if range.is_some() {
        for (run, _) in finite_runs(&traj.pos, speeds) {
            chart.draw_series(std::iter::once(PathElement::new(
                run.iter().map(|p| (p[1], ground, p[0])).collect::<Vec<_>>(),
                RGBColor(175, 175, 175).stroke_width(2),
            )))?;
        }
    }
    for g in &track.gates {
        let c = g.corners();
        chart.draw_series([
            PathElement::new(
                vec![(c[1][1], ground, c[1][0]), (c[0][1], ground, c[0][0])],
                RGBColor(150, 150, 150).stroke_width(3),
            ),
            PathElement::new(
                vec![
                    (g.center[1], ground, g.center[0]),
                    (g.center[1], c[2][2], g.center[0]),
                ],
                BLACK.mix(0.35).stroke_width(1),
            ),
        ])?;
    }
    // Gates, path on top, then numbers and the start.
    chart.draw_series(track.gates.iter().map(|g| {
        let c = g.corners();
        PathElement::new(
            vec![w3(&c[0]), w3(&c[1]), w3(&c[2]), w3(&c[3]), w3(&c[0])],
            GATE_COLOR.stroke_width(3),
        )
    }))?;
    if let Some(range) = range {
        chart.draw_series(
            coloured_polylines(&traj.pos, speeds, range, w3)
                .into_iter()
                .map(|(pts, color)| PathElement::new(pts, color.stroke_width(3))),
        )?;
    }
    chart.draw_series(track.gates.iter().enumerate().map(|(i, g)| {
        // Beside the gate (stacked split-S gates face opposite ways, so their badges part).
        let (r, off) = (g.right(), 0.5 * g.width + 0.05 * longest);
        let side = [
            g.center[0] + off * r[0],
            g.center[1] + off * r[1],
            g.center[2],
        ];
        badge!(w3(&side), format!("{}", i + 1))
    }))?;
    let start = traj
        .pos
        .iter()
        .find(|p| finite3(p))
        .copied()
        .or(track.start.map(|s| [s[0], s[1], s[2]]));
    if let Some(p) = start {
        chart.draw_series(std::iter::once(
            EmptyElement::at(w3(&p))
                + Circle::new((0, 0), 8, BLACK.filled())
                + Circle::new((0, 0), 4, WHITE.filled())
                + Text::new("start", (10, -22), bold(16.0)),
        ))?;
    }

    if let Some(range) = range {
        draw_colour_bar(&bar, range, 60, 60)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Line panels: time series and training curves

/// One line of a panel.
struct Line<'s> {
    label: &'s str,
    color: RGBColor,
    points: Vec<(f64, f64)>,
}

/// A panel of lines over a shared x range; non-finite points are dropped; a panel without
/// points shows `empty` in its middle. A legend is drawn when a line has a label.
#[allow(clippy::too_many_arguments)]
fn line_panel(
    area: &Area,
    caption: Option<&str>,
    x_desc: &str,
    y_desc: &str,
    (x0, x1): (f64, f64),
    lines: &[Line],
    empty: &str,
    x_fmt: &dyn Fn(&f64) -> String,
) -> DrawResult {
    let lines: Vec<Line> = lines
        .iter()
        .map(|l| Line {
            label: l.label,
            color: l.color,
            points: l
                .points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect(),
        })
        .collect();
    let y_span = span(lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)));
    let (y0, y1) = padded(y_span.unwrap_or((0.0, 1.0)), 0.06);
    let mut builder = ChartBuilder::on(area);
    builder
        .margin(8)
        .margin_right(20)
        .x_label_area_size(45)
        .y_label_area_size(80);
    if let Some(c) = caption {
        builder.caption(c, bold(18.0));
    }
    let mut chart = builder.build_cartesian_2d(x0..x1, y0..y1)?;
    let x_label = |v: &f64| x_fmt(&snap(*v, x1 - x0));
    let y_label = |v: &f64| si(snap(*v, y1 - y0));
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(text(14.0))
        .axis_desc_style(text(16.0))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(BLACK.mix(0.04))
        .x_labels(10)
        .y_labels(6)
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .draw()?;
    if y_span.is_none() {
        let centre = Pos::new(HPos::Center, VPos::Center);
        chart.draw_series(std::iter::once(Text::new(
            empty.to_string(),
            (0.5 * (x0 + x1), 0.5 * (y0 + y1)),
            text(16.0).color(&RGBColor(120, 120, 120)).pos(centre),
        )))?;
        return Ok(());
    }
    let mut labelled = false;
    for l in &lines {
        if l.points.is_empty() {
            continue;
        }
        let style = l.color.stroke_width(2);
        let few = l.points.len() <= 60;
        let series =
            chart.draw_series(LineSeries::new(l.points.clone(), style).point_size(if few {
                3
            } else {
                0
            }))?;
        if !l.label.is_empty() {
            labelled = true;
            series
                .label(l.label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], style));
        }
    }
    if labelled {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(text(14.0))
            .draw()?;
    }
    Ok(())
}

fn draw_states(root: &Area, traj: &Trajectory, speeds: &[f64], title: &str) -> DrawResult {
    let body = root.margin(6, 0, 0, 0).titled(title, title_style())?;
    let panels = body.split_evenly((4, 1));
    let dt = traj.dt;
    let steps = (traj.pos.len().saturating_sub(1)).max(traj.controls.len());
    let x_range = if steps == 0 {
        padded((0.0, 0.0), 0.0)
    } else {
        (0.0, steps as f64 * dt)
    };
    let t = |i: usize| i as f64 * dt;
    let fmt = |v: &f64| trim_float(*v);

    let pos_line = |k: usize, label: &'static str| Line {
        label,
        color: LINE_COLORS[k],
        points: traj
            .pos
            .iter()
            .enumerate()
            .map(|(i, p)| (t(i), p[k]))
            .collect(),
    };
    line_panel(
        &panels[0],
        None,
        "",
        "position [m]",
        x_range,
        &[pos_line(0, "x"), pos_line(1, "y"), pos_line(2, "z")],
        "no positions",
        &fmt,
    )?;
    line_panel(
        &panels[1],
        None,
        "",
        "speed [m/s]",
        x_range,
        &[Line {
            label: "",
            color: BLACK,
            points: speeds.iter().enumerate().map(|(i, s)| (t(i), *s)).collect(),
        }],
        "no speeds",
        &fmt,
    )?;
    // Controls are held over [k·dt, (k+1)·dt): draw them as steps.
    let held = |k: usize| -> Vec<(f64, f64)> {
        traj.controls
            .iter()
            .enumerate()
            .flat_map(|(i, u)| [(t(i), u[k]), (t(i + 1), u[k])])
            .collect()
    };
    line_panel(
        &panels[2],
        None,
        "",
        "thrust [N]",
        x_range,
        &[Line {
            label: "",
            color: LINE_COLORS[4],
            points: held(0),
        }],
        "no controls recorded",
        &fmt,
    )?;
    line_panel(
        &panels[3],
        None,
        "time [s]",
        "body rate [rad/s]",
        x_range,
        &[
            Line {
                label: "ωx",
                color: LINE_COLORS[0],
                points: held(1),
            },
            Line {
                label: "ωy",
                color: LINE_COLORS[1],
                points: held(2),
            },
            Line {
                label: "ωz",
                color: LINE_COLORS[2],
                points: held(3),
            },
        ],
        "no controls recorded",
        &fmt,
    )?;
    Ok(())
}

/// Tick label with at most two decimals and no trailing zeros (`-0` reads `0`).
fn trim_float(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// `v`, or exactly 0 when it is rounding noise on an axis `width` wide (tick positions are
/// computed as `start + i·step`).
fn snap(v: f64, width: f64) -> f64 {
    if v.abs() <= 1e-9 * width.abs() {
        0.0
    } else {
        v
    }
}

fn draw_curves(
    root: &Area,
    title: &str,
    series: &[Curve],
    (rows, cols): (usize, usize),
) -> DrawResult {
    let body = root.margin(6, 0, 0, 0).titled(title, title_style())?;
    let panels = body.split_evenly((rows, cols));
    let x_span = span(series.iter().flat_map(|s| {
        s.2.iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|p| p.0)
    }));
    let x_range = match x_span {
        Some((lo, hi)) if hi > lo => (lo, hi),
        other => padded(other.unwrap_or((0.0, 1.0)), 0.0),
    };
    let fmt = |v: &f64| si(*v);
    for (k, (name, y_label, points)) in series.iter().enumerate() {
        line_panel(
            &panels[k],
            Some(name),
            "environment steps",
            y_label,
            x_range,
            &[Line {
                label: "",
                color: LINE_COLORS[k % LINE_COLORS.len()],
                points: points.clone(),
            }],
            "no finite data",
            &fmt,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turbo_ends_and_clamping() {
        assert_eq!(turbo(-1.0), turbo(0.0));
        assert_eq!(turbo(2.0), turbo(1.0));
        assert_eq!(turbo(f64::NAN), turbo(0.0));
        let RGBColor(r0, _, b0) = turbo(0.1);
        let RGBColor(r1, _, b1) = turbo(0.9);
        assert!(
            b0 > r0 && r1 > b1,
            "blue at the low end, red at the high end"
        );
    }

    #[test]
    fn ranges_never_collapse() {
        assert_eq!(speed_range(&[]), None);
        assert_eq!(speed_range(&[f64::NAN]), None);
        assert_eq!(speed_range(&[0.0, 0.0]), Some((0.0, 1.0)));
        assert_eq!(speed_range(&[3.0]), Some((2.5, 3.5)));
        let (lo, hi) = padded((5.0, 5.0), 0.1);
        assert!(lo < 5.0 && hi > 5.0);
    }

    #[test]
    fn tick_labels() {
        assert_eq!(si(0.0), "0");
        assert_eq!(si(2_500_000.0), "2.5M");
        assert_eq!(si(40_000.0), "40k");
        assert_eq!(si(0.25), "0.25");
        assert_eq!(si(-12.5), "-12.5");
        assert_eq!(si(0.0005), "5.0e-4");
    }

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
