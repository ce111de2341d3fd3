//! The top-down (XY) track view: gates as bars with direction arrows and numbers, the path
//! coloured by speed, equal metres per pixel on both axes.

use super::scale::{finite3, span, trim_float};
use super::speed::{coloured_polylines, draw_colour_bar, finite_runs, speed_range};
use super::style::{GATE_COLOR, badge, bold, text, title_style};
use super::{Area, DrawResult, Trajectory};
use crate::track::{Gate, Track};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

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

pub(super) fn draw_top_down(
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
