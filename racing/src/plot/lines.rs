//! One panel of lines over a shared x range with an optional legend: the building block of the
//! time-series, training-curve and result plots.

use super::scale::{padded, si, snap, span};
use super::style::{bold, text};
use super::{Area, DrawResult};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One line of a panel.
pub(super) struct Line<'s> {
    pub(super) label: &'s str,
    pub(super) color: RGBColor,
    pub(super) points: Vec<(f64, f64)>,
}

/// A panel of lines over a shared x range; non-finite points are dropped; a panel without
/// points shows `empty` in its middle. A legend is drawn when a line has a label.
#[allow(clippy::too_many_arguments)]
pub(super) fn line_panel(
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
