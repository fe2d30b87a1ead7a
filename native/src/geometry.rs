//! Geometry shared by the rotation, border and clean-up kernels: crop boxes and the mapping of
//! a rotation about the page centre onto an expanded canvas.
//!
//! Pixel `(x, y)` is the unit square centred on integer coordinates `(x, y)`; the page centre is
//! `((w - 1) / 2, (h - 1) / 2)`. A positive angle turns the page counter-clockwise as displayed.

use crate::error::KernelError;

/// Largest canvas a rotation may produce, in pixels.
pub const MAX_CANVAS_PIXELS: usize = 1 << 28;

/// Half-open pixel box `[x0, x1) x [y0, y1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CropBox {
    pub x0: usize,
    pub y0: usize,
    pub x1: usize,
    pub y1: usize,
}

impl CropBox {
    /// The whole of a `width x height` image.
    pub fn full(width: usize, height: usize) -> Self {
        Self {
            x0: 0,
            y0: 0,
            x1: width,
            y1: height,
        }
    }

    pub fn width(&self) -> usize {
        self.x1 - self.x0
    }

    pub fn height(&self) -> usize {
        self.y1 - self.y0
    }
}

/// Rotation of a `src_w x src_h` page by `angle_deg` (counter-clockwise) about its centre, onto a
/// canvas just large enough to hold all of it. The canvas keeps the parity of the page size, so
/// pixel centres of page and canvas stay on the same grid and small angles barely blur.
#[derive(Clone, Copy, Debug)]
pub struct Rotation {
    /// Normalised to `(-180, 180]`.
    angle_deg: f64,
    cos: f64,
    sin: f64,
    src: (usize, usize),
    dst: (usize, usize),
}

impl Rotation {
    /// Builds the rotation; errors for a non-finite angle, an empty page or a canvas above
    /// [`MAX_CANVAS_PIXELS`].
    pub fn new(src_w: usize, src_h: usize, angle_deg: f64) -> Result<Self, KernelError> {
        if !angle_deg.is_finite() {
            return Err(KernelError::Argument(format!(
                "rotation angle must be finite, got {angle_deg}"
            )));
        }
        if src_w == 0 || src_h == 0 {
            return Err(KernelError::Empty(format!(
                "cannot rotate a {src_h}x{src_w} image"
            )));
        }
        let mut angle = angle_deg.rem_euclid(360.0);
        if angle > 180.0 {
            angle -= 360.0;
        }
        // Quarter turns are exact, so their canvases and samples are too.
        let (sin, cos) = if angle == 0.0 {
            (0.0, 1.0)
        } else if angle == 90.0 {
            (1.0, 0.0)
        } else if angle == 180.0 {
            (0.0, -1.0)
        } else if angle == -90.0 {
            (-1.0, 0.0)
        } else {
            angle.to_radians().sin_cos()
        };
        let (w, h) = (src_w as f64, src_h as f64);
        let need_w = w * cos.abs() + h * sin.abs();
        let need_h = w * sin.abs() + h * cos.abs();
        let canvas = |size: usize, need: f64| -> usize {
            // Grow (or shrink) by an even number of pixels; the epsilon absorbs rounding noise.
            let half = ((need - size as f64) / 2.0 - 1e-9).ceil();
            (size as f64 + 2.0 * half).max(1.0) as usize
        };
        let dst = (canvas(src_w, need_w), canvas(src_h, need_h));
        if dst.0.saturating_mul(dst.1) > MAX_CANVAS_PIXELS {
            return Err(KernelError::Shape(format!(
                "rotating a {src_h}x{src_w} image by {angle_deg} degrees needs a {}x{} canvas, \
                 above the {MAX_CANVAS_PIXELS}-pixel limit",
                dst.1, dst.0
            )));
        }
        Ok(Self {
            angle_deg: angle,
            cos,
            sin,
            src: (src_w, src_h),
            dst,
        })
    }

    pub fn is_identity(&self) -> bool {
        self.angle_deg == 0.0
    }

    /// `(width, height)` of the canvas.
    pub fn dst_size(&self) -> (usize, usize) {
        self.dst
    }

    /// Step in source coordinates for one canvas pixel to the right: `(dx, dy)`.
    pub fn source_step(&self) -> (f64, f64) {
        (self.cos, self.sin)
    }

    /// Source coordinates of canvas point `(x, y)`.
    pub fn to_source(&self, x: f64, y: f64) -> (f64, f64) {
        let (dx, dy) = (x - centre(self.dst.0), y - centre(self.dst.1));
        (
            self.cos * dx - self.sin * dy + centre(self.src.0),
            self.sin * dx + self.cos * dy + centre(self.src.1),
        )
    }

    /// Canvas coordinates of source point `(x, y)`.
    pub fn to_canvas(&self, x: f64, y: f64) -> (f64, f64) {
        let (dx, dy) = (x - centre(self.src.0), y - centre(self.src.1));
        (
            self.cos * dx + self.sin * dy + centre(self.dst.0),
            -self.sin * dx + self.cos * dy + centre(self.dst.1),
        )
    }

    /// True when canvas point `(x, y)` samples the page (all of its interpolation neighbours
    /// lie on the page), false where the canvas shows the fill.
    pub fn on_page(&self, x: f64, y: f64) -> bool {
        self.page_point(x, y).is_some()
    }

    /// Source coordinates of canvas point `(x, y)` when it is [on the page](Self::on_page).
    pub fn page_point(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        let (sx, sy) = self.to_source(x, y);
        let eps = 1e-6;
        let inside = sx >= -eps
            && sy >= -eps
            && sx <= self.src.0 as f64 - 1.0 + eps
            && sy <= self.src.1 as f64 - 1.0 + eps;
        inside.then_some((sx, sy))
    }

    /// Area, in pixels, of the page's footprint on the canvas that lies inside `crop`.
    pub fn page_area_in(&self, crop: CropBox) -> f64 {
        let (w, h) = (self.src.0 as f64, self.src.1 as f64);
        let corners = [
            (-0.5, -0.5),
            (w - 0.5, -0.5),
            (w - 0.5, h - 0.5),
            (-0.5, h - 0.5),
        ];
        let mut polygon: Vec<(f64, f64)> =
            corners.iter().map(|&(x, y)| self.to_canvas(x, y)).collect();
        let (x0, y0) = (crop.x0 as f64 - 0.5, crop.y0 as f64 - 0.5);
        let (x1, y1) = (crop.x1 as f64 - 0.5, crop.y1 as f64 - 0.5);
        polygon = clip(&polygon, |p| p.0 - x0);
        polygon = clip(&polygon, |p| x1 - p.0);
        polygon = clip(&polygon, |p| p.1 - y0);
        polygon = clip(&polygon, |p| y1 - p.1);
        let n = polygon.len();
        let twice: f64 = (0..n)
            .map(|i| {
                let (a, b) = (polygon[i], polygon[(i + 1) % n]);
                a.0 * b.1 - b.0 * a.1
            })
            .sum();
        (twice / 2.0).abs()
    }
}

/// Rounds half away from zero. On baseline x86-64 (no SSE4.1) `f64::round` is a library call,
/// so per-pixel code uses this.
#[inline]
pub(crate) fn round(v: f64) -> i64 {
    (v + 0.5f64.copysign(v)) as i64
}

fn centre(size: usize) -> f64 {
    (size as f64 - 1.0) / 2.0
}

/// Sutherland-Hodgman: the part of a convex polygon where `inside(p) >= 0`.
fn clip(polygon: &[(f64, f64)], inside: impl Fn((f64, f64)) -> f64) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(polygon.len() + 1);
    for (i, &cur) in polygon.iter().enumerate() {
        let prev = polygon[(i + polygon.len() - 1) % polygon.len()];
        let (dc, dp) = (inside(cur), inside(prev));
        if (dc >= 0.0) != (dp >= 0.0) {
            let t = dp / (dp - dc);
            out.push((prev.0 + t * (cur.0 - prev.0), prev.1 + t * (cur.1 - prev.1)));
        }
        if dc >= 0.0 {
            out.push(cur);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn canvas_keeps_parity_and_holds_the_page() {
        let r = Rotation::new(100, 60, 10.0).unwrap();
        let (w, h) = r.dst_size();
        assert_eq!((w % 2, h % 2), (0, 0));
        assert!(w as f64 >= 100.0 * 10f64.to_radians().cos() + 60.0 * 10f64.to_radians().sin());
        assert_eq!(Rotation::new(101, 61, 0.0).unwrap().dst_size(), (101, 61));
        assert_eq!(Rotation::new(101, 61, 360.0).unwrap().dst_size(), (101, 61));
        assert_eq!(Rotation::new(10, 6, 90.0).unwrap().dst_size(), (6, 10));
        assert_eq!(Rotation::new(11, 6, 90.0).unwrap().dst_size(), (7, 12));
    }

    #[test]
    fn positive_angle_turns_counter_clockwise() {
        let r = Rotation::new(101, 101, 30.0).unwrap();
        // A point right of the centre moves up (smaller y) on the canvas.
        let (cx, cy) = r.to_canvas(50.0, 50.0);
        let (x, y) = r.to_canvas(90.0, 50.0);
        assert!((x - cx - 40.0 * 0.75f64.sqrt()).abs() < 1e-9);
        assert!((y - cy + 20.0).abs() < 1e-9);
    }

    #[test]
    fn rejects_bad_rotations() {
        assert!(Rotation::new(10, 10, f64::NAN).is_err());
        assert!(Rotation::new(0, 10, 1.0).is_err());
        assert!(Rotation::new(1, 100_000_000, 45.0).is_err());
    }

    #[test]
    fn page_area_is_exact_for_boxes() {
        let r = Rotation::new(40, 30, 0.0).unwrap();
        assert!((r.page_area_in(CropBox::full(40, 30)) - 1200.0).abs() < 1e-9);
        let half = CropBox {
            x0: 0,
            y0: 0,
            x1: 20,
            y1: 30,
        };
        assert!((r.page_area_in(half) - 600.0).abs() < 1e-9);
    }

    proptest! {
        #[test]
        fn mapping_round_trips(w in 1usize..500, h in 1usize..500, angle in -360.0f64..360.0,
                               x in 0.0f64..1.0, y in 0.0f64..1.0) {
            let r = Rotation::new(w, h, angle).unwrap();
            let (sx, sy) = (x * (w - 1) as f64, y * (h - 1) as f64);
            let (cx, cy) = r.to_canvas(sx, sy);
            let (dw, dh) = r.dst_size();
            prop_assert!(cx > -0.5 - 1e-6 && cy > -0.5 - 1e-6);
            prop_assert!(cx < dw as f64 - 0.5 + 1e-6 && cy < dh as f64 - 0.5 + 1e-6);
            let (bx, by) = r.to_source(cx, cy);
            prop_assert!((bx - sx).abs() < 1e-6 && (by - sy).abs() < 1e-6);
            prop_assert!(r.on_page(cx, cy));
            let full = r.page_area_in(CropBox::full(dw, dh));
            prop_assert!((full - (w * h) as f64).abs() < 1e-6 * (w * h) as f64 + 1e-6);
        }
    }
}
