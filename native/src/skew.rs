//! Skew estimation by projection profiles of a text mask.
//!
//! The mask is the ink of the reduced analysis plane (dark pixels not connected to the page
//! edge, so scanner beds and lid shadows never vote). A sweep over the whole range on a mask
//! reduced once more finds the peak, a finer sweep on the analysis mask narrows it, and strip
//! cross-correlation (`InkColumns::refine` in `profile.rs`) measures what is left below one row of slope.
//!
//! Sign convention: the estimate is the counter-clockwise rotation (in degrees, as the page is
//! displayed) that straightens the page; it is positive when text lines descend to the right.

use crate::analysis::Analysis;
use crate::error::KernelError;
use crate::image::Image;
use crate::profile::{ColumnSums, InkColumns};

/// Default search range, in degrees either side of level.
pub const DEFAULT_MAX_SKEW_DEG: f64 = 15.0;
/// Largest search range accepted.
pub const MAX_SKEW_LIMIT_DEG: f64 = 45.0;

/// Step of the sweep over the whole range (on the coarse mask).
const COARSE_STEP_DEG: f64 = 0.25;
/// Half-width and step of the sweep around the coarse peak (on the analysis mask).
const FINE_SPAN_DEG: f64 = 0.3;
const FINE_STEP_DEG: f64 = 0.05;
/// Strip refinement may move the estimate at most this far from the fine peak.
const MAX_REFINEMENT_DEG: f64 = 0.2;
/// Strip refinement rounds, and the slope change below which it stops early.
const REFINE_ROUNDS: usize = 4;
const REFINE_CONVERGED: f64 = 1e-5;
/// The confidence compares the peak with the profile this far from it.
const CONTRAST_OFFSET_DEG: f64 = 2.0;
/// Fewer ink pixels (in the analysis plane) than this: no estimate at all.
const MIN_INK: usize = 64;
/// Ink pixels needed before the confidence is no longer scaled down for lack of evidence.
const FULL_SUPPORT_INK: f64 = 2000.0;

/// Result of [`estimate_skew`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SkewEstimate {
    /// Counter-clockwise rotation in degrees that straightens the page; positive when text
    /// lines descend to the right.
    pub angle_deg: f64,
    /// 0 (no evidence: blank page, noise, photo) to 1 (sharp, well-supported peak).
    pub confidence: f64,
}

impl SkewEstimate {
    const NONE: Self = Self {
        angle_deg: 0.0,
        confidence: 0.0,
    };
}

/// Checks a search range: finite, above 0 and at most [`MAX_SKEW_LIMIT_DEG`].
pub(crate) fn check_max_skew(max_deg: f64) -> Result<(), KernelError> {
    if max_deg.is_finite() && max_deg > 0.0 && max_deg <= MAX_SKEW_LIMIT_DEG {
        Ok(())
    } else {
        Err(KernelError::Argument(format!(
            "max skew must be in (0, {MAX_SKEW_LIMIT_DEG}] degrees, got {max_deg}"
        )))
    }
}

/// Estimates the skew of a page within `±max_deg` degrees.
pub fn estimate_skew(image: Image<'_>, max_deg: f64) -> Result<SkewEstimate, KernelError> {
    check_max_skew(max_deg)?;
    Ok(estimate(&Analysis::new(image), max_deg))
}

fn slope(deg: f64) -> f64 {
    deg.to_radians().tan()
}

/// Skew of an analysed page; `max_deg` must have passed [`check_max_skew`].
pub(crate) fn estimate(analysis: &Analysis, max_deg: f64) -> SkewEstimate {
    let (w, h) = (analysis.plane.width(), analysis.plane.height());
    let mask = analysis.ink_mask();
    let ink = InkColumns::new(&mask, w, h);
    if ink.count() < MIN_INK || w < 8 || h < 8 {
        return SkewEstimate::NONE;
    }
    let mut scratch = Vec::new();
    let (cw, ch, coarse_mask) = halve(&mask, w, h);
    let coarse = ColumnSums::new(&coarse_mask, cw, ch);
    let steps = (2.0 * max_deg / COARSE_STEP_DEG).ceil() as usize;
    let sweep = (0..=steps).map(|i| (-max_deg + i as f64 * COARSE_STEP_DEG).min(max_deg));
    let (peak, coarse_deg) = best_of(sweep, |deg| coarse.score(slope(deg), &mut scratch));
    if peak <= 0.0 {
        return SkewEstimate::NONE;
    }
    let away = [-CONTRAST_OFFSET_DEG, CONTRAST_OFFSET_DEG]
        .iter()
        .map(|off| coarse.score(slope(coarse_deg + off), &mut scratch))
        .sum::<f64>()
        / 2.0;
    let contrast = (1.0 - away / peak).clamp(0.0, 1.0);
    let support = (ink.count() as f64 / FULL_SUPPORT_INK).min(1.0);

    let fine = ColumnSums::new(&mask, w, h);
    let steps = (2.0 * FINE_SPAN_DEG / FINE_STEP_DEG).round() as usize;
    let sweep: Vec<(f64, f64)> = (0..=steps)
        .map(|i| {
            let deg =
                (coarse_deg - FINE_SPAN_DEG + i as f64 * FINE_STEP_DEG).clamp(-max_deg, max_deg);
            (deg, fine.score(slope(deg), &mut scratch))
        })
        .collect();
    let fine_deg = plateau_centre(&sweep);

    let mut t = slope(fine_deg);
    for _ in 0..REFINE_ROUNDS {
        match ink.refine(t) {
            Some(refined) => {
                let step = refined - t;
                t = refined;
                if step.abs() < REFINE_CONVERGED {
                    break;
                }
            }
            None => break,
        }
    }
    let refined_deg = t.atan().to_degrees();
    let angle_deg = if (refined_deg - fine_deg).abs() <= MAX_REFINEMENT_DEG {
        refined_deg
    } else {
        fine_deg
    };
    SkewEstimate {
        angle_deg: angle_deg.clamp(-max_deg, max_deg),
        confidence: contrast * support,
    }
}

/// The highest `(score, angle)` over `angles` (the first one on ties).
fn best_of(angles: impl Iterator<Item = f64>, mut score: impl FnMut(f64) -> f64) -> (f64, f64) {
    angles.fold((f64::NEG_INFINITY, 0.0), |best, deg| {
        let s = score(deg);
        if s > best.0 {
            (s, deg)
        } else {
            best
        }
    })
}

/// Middle angle of the run of equal best scores in a sweep. Shifting by whole rows makes the
/// score flat over a range of slopes near level (every shift rounds to zero there).
fn plateau_centre(sweep: &[(f64, f64)]) -> f64 {
    let best = sweep.iter().map(|s| s.1).fold(f64::NEG_INFINITY, f64::max);
    let first = sweep.iter().position(|s| s.1 == best).unwrap_or(0);
    let run = sweep[first..]
        .iter()
        .take_while(|s| s.1 == best)
        .count()
        .max(1);
    (sweep[first].0 + sweep[first + run - 1].0) / 2.0
}

/// Sums 2 x 2 blocks of a 0/1 mask (weights 0..=4).
fn halve(mask: &[u8], w: usize, h: usize) -> (usize, usize, Vec<u8>) {
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut out = vec![0u8; cw * ch];
    for (y, row) in mask.chunks_exact(w).enumerate() {
        let out_row = &mut out[(y / 2) * cw..(y / 2 + 1) * cw];
        for (x, &m) in row.iter().enumerate() {
            out_row[x / 2] += m;
        }
    }
    (cw, ch, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testpage::{skewed_text_page, TextPage};
    use proptest::prelude::*;

    #[test]
    fn rejects_bad_ranges() {
        for bad in [0.0, -1.0, 46.0, f64::NAN, f64::INFINITY] {
            assert!(check_max_skew(bad).is_err(), "{bad}");
        }
        assert!(check_max_skew(45.0).is_ok());
    }

    #[test]
    fn blank_and_tiny_pages_have_no_confidence() {
        let white = vec![255u8; 200 * 300];
        let image = Image::new(&white, 200, 300, 1).unwrap();
        assert_eq!(estimate_skew(image, 15.0).unwrap(), SkewEstimate::NONE);
        let dot = [0u8];
        let image = Image::new(&dot, 1, 1, 1).unwrap();
        assert_eq!(estimate_skew(image, 15.0).unwrap(), SkewEstimate::NONE);
    }

    #[test]
    fn finds_skew_of_a_bordered_page() {
        for angle in [-7.3, -0.4, 0.0, 0.06, 2.5, 11.0] {
            let page = skewed_text_page(&TextPage {
                angle_deg: angle,
                border: 40,
                ..TextPage::default()
            });
            let estimate = estimate_skew(page.view(), 15.0).unwrap();
            assert!(
                (estimate.angle_deg - angle).abs() < 0.1,
                "{angle}: {estimate:?}"
            );
            assert!(estimate.confidence > 0.5, "{angle}: {estimate:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]
        #[test]
        fn estimate_is_within_tolerance(angle in -14.0f64..14.0, seed in 0u64..1000) {
            let page = skewed_text_page(&TextPage { angle_deg: angle, seed, ..TextPage::default() });
            let estimate = estimate_skew(page.view(), 15.0).unwrap();
            prop_assert!((estimate.angle_deg - angle).abs() < 0.1, "{} vs {}", estimate.angle_deg, angle);
        }
    }
}
