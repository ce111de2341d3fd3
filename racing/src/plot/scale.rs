//! Axis ranges and tick labels (finite span, padding, k/M suffixes, trimmed decimals) and small
//! 3-vector helpers.

pub(super) fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

pub(super) fn norm(v: [f64; 3]) -> f64 {
    (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()
}

pub(super) fn finite3(p: &[f64; 3]) -> bool {
    p.iter().all(|v| v.is_finite())
}

/// Min and max of the finite values, if any.
pub(super) fn span(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
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
pub(super) fn padded((lo, hi): (f64, f64), frac: f64) -> (f64, f64) {
    let w = hi - lo;
    if w > 1e-12 * (1.0 + lo.abs().max(hi.abs())) {
        (lo - frac * w, hi + frac * w)
    } else {
        let half = (0.1 * lo.abs()).max(0.5);
        (lo - half, hi + half)
    }
}

/// Tick label with a k/M suffix for large values (environment steps).
pub(super) fn si(v: f64) -> String {
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

/// Tick label with at most two decimals and no trailing zeros (`-0` reads `0`).
pub(super) fn trim_float(v: f64) -> String {
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
pub(super) fn snap(v: f64, width: f64) -> f64 {
    if v.abs() <= 1e-9 * width.abs() {
        0.0
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels() {
        assert_eq!(si(0.0), "0");
        assert_eq!(si(2_500_000.0), "2.5M");
        assert_eq!(si(40_000.0), "40k");
        assert_eq!(si(0.25), "0.25");
        assert_eq!(si(-12.5), "-12.5");
        assert_eq!(si(0.0005), "5.0e-4");
    }
}
