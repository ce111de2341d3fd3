//! The 3-D track view: gates as rectangles with ground shadows, the path coloured by speed,
//! one scale on all three axes.

use super::scale::{finite3, padded, span, trim_float};
use super::speed::{coloured_polylines, draw_colour_bar, finite_runs, speed_range};
use super::style::{GATE_COLOR, badge, bold, text, title_style};
use super::{Area, DrawResult, Trajectory};
use crate::track::Track;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Camera of the 3-D view (plotters' projection angles, rad).
const VIEW_YAW: f64 = 0.65;
const VIEW_PITCH: f64 = 0.55;

pub(super) fn draw_3d(
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
