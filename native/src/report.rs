//! What [`crate::clean_page`] reports about a page, and the small geometric steps that put its
//! findings into the frame of the cleaned page.

use crate::geometry::{CropBox, Rotation};
use crate::quality::{limits, Flags, Metrics};
use crate::skew::SkewEstimate;

/// Report of [`crate::clean_page`].
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Counter-clockwise rotation applied to straighten the lines, degrees (0 when the estimate
    /// was too small or too uncertain to apply).
    pub deskew_deg: f64,
    /// Confidence of the skew estimate, 0..=1.
    pub skew_confidence: f64,
    /// Counter-clockwise quarter turns applied to make the page upright: 0, 90, 180 or 270
    /// (exact turns, before the deskew).
    pub orientation_deg: u32,
    /// How clear the up/down evidence was, 0..=1.
    pub orientation_confidence: f64,
    /// Kept region of the canvas of `rotate(rotate_quarter(input, orientation_deg / 90),
    /// deskew_deg)` (for 0 and 180 the same as `rotate(input, orientation_deg + deskew_deg)`).
    pub crop_box: CropBox,
    /// Red seals, in cleaned-page pixels.
    pub seal_boxes: Vec<CropBox>,
    /// No content: ink (not counting specks, bleed-through, scanner-bed remnants) covers less
    /// than [`limits::BLANK_INK`] of the page, and there is no seal.
    pub blank: bool,
    /// Perceptual hash of the cleaned page (see `phash.rs`).
    pub phash: u64,
    pub metrics: Metrics,
    pub flags: Flags,
}

/// The flag bits for a page.
pub(crate) fn flags(
    m: &Metrics,
    skew: &SkewEstimate,
    orientation_deg: u32,
    blank: bool,
    seal: bool,
) -> u32 {
    let mut f = 0;
    let mut set = |on: bool, bit: u32| {
        if on {
            f |= bit;
        }
    };
    set(blank, Flags::BLANK);
    set(
        skew.confidence >= crate::clean::MIN_CONFIDENCE && m.skew_deg.abs() > limits::SKEWED_DEG,
        Flags::SKEWED,
    );
    set(!blank && m.blur_mm > limits::BLURRY_MM, Flags::BLURRY);
    set(m.paper_level < limits::DARK_PAPER, Flags::TOO_DARK);
    set(m.effective_dpi < limits::LOW_DPI, Flags::LOW_DPI);
    set(orientation_deg == 180, Flags::UPSIDE_DOWN);
    set(orientation_deg % 180 == 90, Flags::SIDEWAYS);
    set(seal, Flags::SEAL);
    f
}

/// Boxes on the source page, carried onto the cleaned page: through the rotation, clipped to
/// the crop and moved to its origin. Boxes that end up empty are dropped.
pub(crate) fn seals_on_page(boxes: &[CropBox], rotation: &Rotation, crop: CropBox) -> Vec<CropBox> {
    boxes
        .iter()
        .filter_map(|b| {
            let (x0, y0) = (b.x0 as f64 - 0.5, b.y0 as f64 - 0.5);
            let (x1, y1) = (b.x1 as f64 - 0.5, b.y1 as f64 - 0.5);
            let corners =
                [(x0, y0), (x1, y0), (x1, y1), (x0, y1)].map(|(x, y)| rotation.to_canvas(x, y));
            let lo =
                |f: fn(&(f64, f64)) -> f64| corners.iter().map(f).fold(f64::INFINITY, f64::min);
            let hi =
                |f: fn(&(f64, f64)) -> f64| corners.iter().map(f).fold(f64::NEG_INFINITY, f64::max);
            let clip =
                |v: f64, a: usize, b: usize| (v + 0.5).round().clamp(a as f64, b as f64) as usize;
            let out = CropBox {
                x0: clip(lo(|p| p.0), crop.x0, crop.x1) - crop.x0,
                y0: clip(lo(|p| p.1), crop.y0, crop.y1) - crop.y0,
                x1: clip(hi(|p| p.0), crop.x0, crop.x1) - crop.x0,
                y1: clip(hi(|p| p.1), crop.y0, crop.y1) - crop.y0,
            };
            (out.x1 > out.x0 && out.y1 > out.y0).then_some(out)
        })
        .collect()
}

/// A box on a `width x height` image turned by half a turn.
pub(crate) fn mirror(b: CropBox, width: usize, height: usize) -> CropBox {
    CropBox {
        x0: width - b.x1,
        y0: height - b.y1,
        x1: width - b.x0,
        y1: height - b.y0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrored_boxes() {
        let b = CropBox {
            x0: 1,
            y0: 2,
            x1: 4,
            y1: 6,
        };
        assert_eq!(
            mirror(b, 10, 8),
            CropBox {
                x0: 6,
                y0: 2,
                x1: 9,
                y1: 6
            }
        );
        assert_eq!(mirror(mirror(b, 10, 8), 10, 8), b);
    }

    #[test]
    fn boxes_follow_the_rotation_and_crop() {
        let r = Rotation::new(100, 80, 0.0).unwrap();
        let crop = CropBox {
            x0: 10,
            y0: 5,
            x1: 90,
            y1: 75,
        };
        let b = CropBox {
            x0: 20,
            y0: 20,
            x1: 40,
            y1: 30,
        };
        assert_eq!(
            seals_on_page(&[b], &r, crop),
            vec![CropBox {
                x0: 10,
                y0: 15,
                x1: 30,
                y1: 25
            }]
        );
        let outside = CropBox {
            x0: 0,
            y0: 0,
            x1: 5,
            y1: 4,
        };
        assert!(seals_on_page(&[outside], &r, crop).is_empty());
        // A half turn maps the box to its mirror image.
        let half = Rotation::new(100, 80, 180.0).unwrap();
        let full = CropBox::full(100, 80);
        assert_eq!(seals_on_page(&[b], &half, full), vec![mirror(b, 100, 80)]);
    }
}
