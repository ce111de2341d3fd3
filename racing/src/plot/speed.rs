//! Speed colouring shared by the two track views: the speed range, runs of finite samples,
//! turbo-quantised polylines and the vertical colour bar.

use super::scale::{finite3, span, trim_float};
use super::style::{text, turbo};
use super::{Area, DrawResult};
use plotters::prelude::*;

/// Speed range for the colour bar; a constant speed gets a 1 m/s wide bar starting at
/// `max(0, v − 0.5)`.
pub(super) fn speed_range(speeds: &[f64]) -> Option<(f64, f64)> {
    let (lo, hi) = span(speeds.iter().copied())?;
    if hi - lo > 1e-9 {
        Some((lo, hi))
    } else {
        let lo = (lo - 0.5).max(0.0);
        Some((lo, lo + 1.0))
    }
}

/// Runs of consecutive finite samples, each with at least two points, with their speeds.
pub(super) fn finite_runs<'a>(
    pos: &'a [[f64; 3]],
    speeds: &'a [f64],
) -> Vec<(&'a [[f64; 3]], &'a [f64])> {
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
pub(super) fn coloured_polylines<C>(
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
pub(super) fn draw_colour_bar(
    area: &Area,
    (vmin, vmax): (f64, f64),
    top: u32,
    bottom: u32,
) -> DrawResult {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::scale::padded;

    #[test]
    fn ranges_never_collapse() {
        assert_eq!(speed_range(&[]), None);
        assert_eq!(speed_range(&[f64::NAN]), None);
        assert_eq!(speed_range(&[0.0, 0.0]), Some((0.0, 1.0)));
        assert_eq!(speed_range(&[3.0]), Some((2.5, 3.5)));
        let (lo, hi) = padded((5.0, 5.0), 0.1);
        assert!(lo < 5.0 && hi > 5.0);
    }
}
