//! How a PDF stroke becomes a kurbo stroke on the device: the rules of
//! hayro's own renderer (hayro 0.9, `src/path.rs`, Apache-2.0 OR MIT),
//! kept here so the grey device strokes exactly as the RGBA one does —
//! a line at least one device pixel wide (a quarter for text), round caps
//! and joins drawn square/bevelled when they cannot show, and a lone
//! segment filled as a quadrilateral.

use hayro::hayro_interpret::StrokeProps;
use hayro::kurbo::{self, Affine, BezPath, Cap, Join, PathEl, Point, Vec2};

/// The larger of the two lengths a unit vector takes under `t`.
pub(super) fn max_factor(t: &Affine) -> f32 {
    let c = t.as_coeffs();
    let linear = Affine::new([c[0], c[1], c[2], c[3], 0.0, 0.0]);
    let x = (linear * Point::new(1.0, 0.0)).to_vec2().length();
    let y = (linear * Point::new(0.0, 1.0)).to_vec2().length();
    x.max(y) as f32
}

/// The stroke to draw `props` with under `transform`. `enforce_width`
/// is false inside a Type 3 glyph, where hayro draws widths as given.
pub(super) fn stroke_for(
    props: &StrokeProps,
    transform: &Affine,
    is_text: bool,
    enforce_width: bool,
) -> kurbo::Stroke {
    let threshold = if is_text { 0.25 } else { 1.0 };
    let min_factor = max_factor(transform);
    let mut line_width = props.line_width.max(0.01 / min_factor);
    let transformed_width = line_width * min_factor;
    if transformed_width < threshold && enforce_width {
        line_width /= transformed_width;
        line_width *= threshold;
    }
    let is_thin = transformed_width <= 1.0;
    let cap = match props.line_cap {
        Cap::Round if is_thin => Cap::Square,
        cap => cap,
    };
    let join = match props.line_join {
        Join::Round if is_thin => Join::Bevel,
        join => join,
    };
    kurbo::Stroke {
        width: f64::from(line_width),
        join,
        miter_limit: f64::from(props.miter_limit),
        start_cap: cap,
        end_cap: cap,
        dash_pattern: props.dash_array.iter().map(|n| f64::from(*n)).collect(),
        dash_offset: f64::from(props.dash_offset),
    }
}

/// A path of one straight segment, stroked without dashes, as the
/// quadrilateral it covers (hayro fills it rather than stroking it).
pub(super) fn single_segment_outline(path: &BezPath, stroke: &kurbo::Stroke) -> Option<BezPath> {
    if !stroke.dash_pattern.is_empty() || stroke.start_cap != stroke.end_cap {
        return None;
    }
    let (p0, p1) = match path.elements() {
        [PathEl::MoveTo(p0), PathEl::LineTo(p1)] => (*p0, *p1),
        _ => return None,
    };
    let d = p1 - p0;
    let len = d.hypot();
    if len <= 0.0 || !len.is_finite() {
        return None;
    }
    let half = 0.5 * stroke.width;
    let dir = d / len;
    let n = Vec2::new(-dir.y, dir.x) * half;
    let (a, b) = match stroke.start_cap {
        Cap::Butt => (p0, p1),
        Cap::Square => (p0 - dir * half, p1 + dir * half),
        Cap::Round => return None,
    };
    Some(BezPath::from_vec(vec![
        PathEl::MoveTo(a + n),
        PathEl::LineTo(b + n),
        PathEl::LineTo(b - n),
        PathEl::LineTo(a - n),
        PathEl::ClosePath,
    ]))
}
