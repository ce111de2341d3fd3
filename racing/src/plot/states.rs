//! States and controls of a flight as four stacked time-series panels.

use super::lines::{Line, line_panel};
use super::scale::{padded, trim_float};
use super::style::{LINE_COLORS, title_style};
use super::{Area, DrawResult, Trajectory};
use plotters::prelude::*;

pub(super) fn draw_states(
    root: &Area,
    traj: &Trajectory,
    speeds: &[f64],
    title: &str,
) -> DrawResult {
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
