//! Look of every plot: image sizes, colours, the embedded font and text styles, the turbo
//! colormap and the numbered gate badge.

use super::PlotError;
use plotters::prelude::*;
use plotters::style::register_font;
use std::sync::OnceLock;

pub(super) const TOP_DOWN_SIZE: (u32, u32) = (1000, 900);
pub(super) const VIEW_3D_SIZE: (u32, u32) = (1000, 800);
pub(super) const STATES_SIZE: (u32, u32) = (1000, 1000);
const FONT: &str = "sans-serif";
pub(super) const GATE_COLOR: RGBColor = RGBColor(45, 45, 45);
/// Tableau-10 colours for line plots.
pub(super) const LINE_COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

pub(super) fn ensure_fonts() -> Result<(), PlotError> {
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

pub(super) fn title_style() -> TextStyle<'static> {
    FontDesc::new(FontFamily::Name(FONT), 26.0, FontStyle::Bold).into()
}

pub(super) fn text(size: f64) -> TextStyle<'static> {
    FontDesc::new(FontFamily::Name(FONT), size, FontStyle::Normal).into()
}

pub(super) fn bold(size: f64) -> TextStyle<'static> {
    FontDesc::new(FontFamily::Name(FONT), size, FontStyle::Bold).into()
}

/// Turbo colormap (Google's polynomial fit), `x` in [0, 1]: dark blue → green → yellow → dark red.
pub(super) fn turbo(x: f64) -> RGBColor {
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

/// A round badge with a number, centred on a data coordinate. Expands where it is used, which
/// needs plotters' prelude, `bold`, `GATE_COLOR` and `HPos`/`Pos`/`VPos` in scope there.
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
pub(super) use badge;

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
}
