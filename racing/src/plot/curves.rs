//! Training curves (one panel per series, x = environment steps) and panels of labelled lines.

use super::lines::{Line, line_panel};
use super::scale::{padded, si, span};
use super::style::{LINE_COLORS, title_style};
use super::{Area, Curve, DrawResult, Panel};

pub(super) fn draw_curves(
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

/// Body of [`super::panels_png`]: the titled grid of `(rows, cols)` panels, each with its own x
/// range.
pub(super) fn draw_panels(
    root: &Area,
    title: &str,
    panels: &[Panel],
    (rows, cols): (usize, usize),
) -> DrawResult {
    let body = root.margin(6, 0, 0, 0).titled(title, title_style())?;
    let areas = body.split_evenly((rows, cols));
    for (k, p) in panels.iter().enumerate() {
        let x_span = span(p.lines.iter().flat_map(|l| {
            l.1.iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .map(|q| q.0)
        }));
        let x_range = match x_span {
            Some((lo, hi)) if hi > lo => (lo, hi),
            other => padded(other.unwrap_or((0.0, 1.0)), 0.0),
        };
        let lines: Vec<Line> = p
            .lines
            .iter()
            .enumerate()
            .map(|(i, (label, pts))| Line {
                label: label.as_str(),
                color: LINE_COLORS[i % LINE_COLORS.len()],
                points: pts.clone(),
            })
            .collect();
        line_panel(
            &areas[k],
            Some(&p.title),
            &p.x_label,
            &p.y_label,
            x_range,
            &lines,
            "no finite data",
            &|v: &f64| si(*v),
        )?;
    }
    Ok(())
}
