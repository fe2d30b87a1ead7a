//! Page quality: the measurements reported for every cleaned page, the blank-page decision and
//! the flags the counter UI shows.

use crate::analysis::Analysis;
use crate::binarise::{binarise_with, BlockStats, Sauvola};
use crate::components::{label, Components, Runs};
use crate::despeckle::{find_specks, Despeckle};
use crate::error::KernelError;
use crate::grey::to_grey;
use crate::image::Image;
use crate::seal::ColourPlanes;

/// A4 in inches, for the effective resolution of a page whose resolution is not known.
const A4_INCHES: (f64, f64) = (8.27, 11.69);

/// Flag thresholds.
pub mod limits {
    /// `skewed`: the scan lay more than this many degrees off level.
    pub const SKEWED_DEG: f64 = 3.0;
    /// `blurry`: the edges look blurred by more than this (Gaussian standard deviation, mm).
    pub const BLURRY_MM: f64 = 0.2;
    /// `too_dark`: the paper is darker than this share of white.
    pub const DARK_PAPER: f64 = 0.6;
    /// `low_dpi`: effective resolution below this (200 dpi, less 5% for the crop).
    pub const LOW_DPI: f64 = 190.0;
    /// `blank`: ink covers less than this share of the page.
    pub const BLANK_INK: f64 = 0.0005;
}

/// A component is ink (not bleed-through) when its mean grey is at most this share of the
/// paper level.
const INK_SHARE_OF_PAPER: f64 = 0.7;

/// Measurements of a cleaned page.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Metrics {
    /// Edge sharpness, 0..1 (see [`sharpness`]): crisp print 0.5 and more.
    pub sharpness: f64,
    /// Gaussian blur that explains the sharpness, millimetres (0 without edges).
    pub blur_mm: f64,
    /// Paper level minus ink level, as a share of full scale (0..1).
    pub contrast: f64,
    /// Mean level of the page, as a share of white (0..1).
    pub brightness: f64,
    /// Level of the paper, as a share of white (0..1).
    pub paper_level: f64,
    /// Skew of the scan, degrees (the page is corrected by `deskew_deg`).
    pub skew_deg: f64,
    /// Skew left in the cleaned page, degrees: the part of the estimate that was not applied.
    pub residual_skew_deg: f64,
    /// Resolution of the page: as given, or from its size assuming A4.
    pub effective_dpi: f64,
    /// Share of the scan removed as dark border.
    pub border_share: f64,
    /// Share of the cleaned page that is black in the bilevel copy.
    pub ink_coverage: f64,
    /// Share of clearly coloured pixels (0 for grey input).
    pub colour_share: f64,
}

/// Flags shown to counter staff, as bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags(pub u32);

impl Flags {
    pub const BLANK: u32 = 1;
    pub const SKEWED: u32 = 1 << 1;
    pub const BLURRY: u32 = 1 << 2;
    pub const TOO_DARK: u32 = 1 << 3;
    pub const LOW_DPI: u32 = 1 << 4;
    pub const UPSIDE_DOWN: u32 = 1 << 5;
    pub const SIDEWAYS: u32 = 1 << 6;
    pub const SEAL: u32 = 1 << 7;
    /// Names, in bit order.
    pub const NAMES: [&'static str; 8] = [
        "blank",
        "skewed",
        "blurry",
        "too_dark",
        "low_dpi",
        "upside_down",
        "sideways",
        "seal",
    ];

    pub fn names(&self) -> Vec<&'static str> {
        Self::NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect()
    }

    pub fn has(&self, bit: u32) -> bool {
        self.0 & bit != 0
    }
}

/// Resolution of a `width x height` page assumed to be A4 (either way round).
pub fn a4_dpi(width: usize, height: usize) -> f64 {
    let (short, long) = (width.min(height) as f64, width.max(height) as f64);
    (short / A4_INCHES.0).max(long / A4_INCHES.1)
}

/// Paper and ink levels of a plane from its histogram: the paper is the 95th percentile, the
/// ink the median of the pixels darker than `dark` (paper itself when there are none); pixels
/// marked in `skip` (same length as `plane`, or empty) do not count. Returns (paper, ink, mean).
pub(crate) fn levels(plane: &[u8], skip: &[bool], dark: u8) -> (f64, f64, f64) {
    let mut histogram = [0usize; 256];
    if skip.len() == plane.len() {
        for (&v, &s) in plane.iter().zip(skip) {
            histogram[usize::from(v)] += usize::from(!s);
        }
    } else {
        for &v in plane {
            histogram[usize::from(v)] += 1;
        }
    }
    let total: usize = histogram.iter().sum();
    if total == 0 {
        return (0.0, 0.0, 0.0);
    }
    let quantile = |hist: &[usize], q: f64| {
        let n: usize = hist.iter().sum();
        let target = ((n as f64 * q).ceil() as usize).max(1);
        let mut seen = 0;
        for (v, &c) in hist.iter().enumerate() {
            seen += c;
            if seen >= target {
                return v as f64;
            }
        }
        255.0
    };
    let paper = quantile(&histogram, 0.95);
    let dark_part = &histogram[..usize::from(dark)];
    let ink = if dark_part.iter().sum::<usize>() == 0 {
        paper
    } else {
        quantile(dark_part, 0.5)
    };
    let mean = histogram
        .iter()
        .enumerate()
        .map(|(v, &c)| (v * c) as f64)
        .sum::<f64>()
        / total as f64;
    (paper, ink, mean)
}

/// Edge sharpness: the median, over the ends of the black runs on every fourth row, of the
/// steepest one-pixel step of the grey page within three pixels of the transition, divided by
/// the ink contrast. A crisp edge steps at once (1.0); a Gaussian blur of `s` pixels gives
/// about `0.4 / s`. Noise barely moves it (unlike the variance of the Laplacian, which noise
/// inflates as soon as blur has flattened the text). 0 when the page has no edges.
pub(crate) fn sharpness(plane: &[u8], runs: &Runs, contrast: f64) -> f64 {
    let width = runs.width;
    if contrast < 8.0 || width < 8 {
        return 0.0;
    }
    let mut histogram = [0u32; 256];
    for y in (2..runs.height.saturating_sub(2)).step_by(4) {
        let row = &plane[y * width..(y + 1) * width];
        for run in runs.row(y) {
            for edge in [run.x0 as usize, run.x1 as usize] {
                if edge < 3 || edge + 3 > width {
                    continue;
                }
                let steepest = row[edge - 3..edge + 3]
                    .windows(2)
                    .map(|p| p[0].abs_diff(p[1]))
                    .max()
                    .unwrap_or(0);
                histogram[usize::from(steepest)] += 1;
            }
        }
    }
    let total: u32 = histogram.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let mut seen = 0;
    let median = histogram
        .iter()
        .position(|&c| {
            seen += c;
            seen * 2 >= total
        })
        .unwrap_or(0);
    (median as f64 / contrast).min(1.0)
}

/// Gaussian blur (standard deviation, millimetres) that would explain an edge sharpness at a
/// resolution; 0 when there are no edges to judge.
pub fn blur_mm(sharpness: f64, dpi: f64) -> f64 {
    if sharpness <= 0.0 {
        return 0.0;
    }
    25.4 / (dpi * sharpness * (2.0 * std::f64::consts::PI).sqrt())
}

/// Ink of the page for the blank decision: black pixels of components that are not specks,
/// are dark enough to be print rather than bleed-through, and do not touch the page edge
/// (remnants of the scanner bed).
pub(crate) fn content_ink(
    comps: &Components,
    specks: &[bool],
    paper: f64,
    size: (usize, usize),
) -> u64 {
    let limit = INK_SHARE_OF_PAPER * paper;
    let (w, h) = (size.0 as u32, size.1 as u32);
    comps
        .list
        .iter()
        .zip(specks)
        .filter(|(c, &speck)| {
            !speck && c.mean() <= limit && c.x0 > 0 && c.y0 > 0 && c.x1 < w && c.y1 < h
        })
        .map(|(c, _)| u64::from(c.area))
        .sum()
}

/// Blank-page decision and metrics of a page that needs no deskewing or cropping (the parts
/// of `clean_page` that judge a page; skew fields are 0). `dpi`: default from the page size.
pub fn assess_page(image: Image<'_>, dpi: Option<f64>) -> Result<(bool, Metrics), KernelError> {
    let (w, h) = (image.width(), image.height());
    let dpi = dpi.unwrap_or_else(|| a4_dpi(w, h));
    if !(dpi.is_finite() && dpi > 0.0) {
        return Err(KernelError::Argument(format!(
            "dpi must be positive, got {dpi}"
        )));
    }
    let analysis = Analysis::new(image);
    let plane = to_grey(image);
    let data = plane.view().data();
    let window = ((4.15 * dpi / 25.4).round() as usize).clamp(7, crate::binarise::MAX_WINDOW);
    let params = Sauvola {
        window,
        k: crate::binarise::DEFAULT_K,
    };
    let stats = BlockStats::of_plane(data, w, h, params.block());
    let binarised = binarise_with(data, w, &stats, params.k, false);
    let comps = label(&binarised.runs);
    let specks = find_specks(&binarised.runs, &comps, &Despeckle::for_dpi(dpi));
    let (paper, ink, mean) = levels(
        analysis.plane.view().data(),
        &analysis.border,
        analysis.threshold,
    );
    let black: u64 = comps
        .list
        .iter()
        .zip(&specks)
        .filter(|(_, &s)| !s)
        .map(|(c, _)| u64::from(c.area))
        .sum();
    let area = (w * h) as f64;
    let sharp = sharpness(data, &binarised.runs, paper - ink);
    let blank = (content_ink(&comps, &specks, paper, (w, h)) as f64) < limits::BLANK_INK * area;
    let colour_share = if image.is_colour() {
        ColourPlanes::new(image, analysis.factor).colour_share
    } else {
        0.0
    };
    let border =
        analysis.border.iter().filter(|&&b| b).count() as f64 / analysis.border.len() as f64;
    Ok((
        blank,
        Metrics {
            sharpness: sharp,
            blur_mm: blur_mm(sharp, dpi),
            contrast: (paper - ink) / 255.0,
            brightness: mean / 255.0,
            paper_level: paper / 255.0,
            effective_dpi: dpi,
            border_share: border,
            ink_coverage: black as f64 / area,
            colour_share,
            ..Metrics::default()
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_names_follow_bits() {
        let f = Flags(Flags::BLANK | Flags::SEAL | Flags::UPSIDE_DOWN);
        assert_eq!(f.names(), vec!["blank", "upside_down", "seal"]);
        assert!(f.has(Flags::SEAL) && !f.has(Flags::SKEWED));
    }

    #[test]
    fn a4_resolution() {
        assert!((a4_dpi(2480, 3508) - 300.0).abs() < 0.5);
        assert!((a4_dpi(3508, 2480) - 300.0).abs() < 0.5);
        assert!((a4_dpi(1654, 2339) - 200.0).abs() < 0.5);
    }

    #[test]
    fn levels_of_a_page() {
        let mut plane = vec![240u8; 1000];
        plane[..100].fill(20);
        let (paper, ink, mean) = levels(&plane, &[], 144);
        assert_eq!((paper, ink), (240.0, 20.0));
        assert!((mean - 218.0).abs() < 1e-9);
        let skip: Vec<bool> = (0..1000).map(|i| i < 100).collect();
        assert_eq!(levels(&plane, &skip, 144), (240.0, 240.0, 240.0));
    }

    #[test]
    fn blur_lowers_sharpness() {
        let (w, h) = (200, 200);
        let sharp: Vec<u8> = (0..w * h)
            .map(|i| {
                if (i % w) / 8 % 2 == 0 && (i / w) / 12 % 2 == 0 {
                    30
                } else {
                    230
                }
            })
            .collect();
        // A 1-2-1 blur along the rows, twice.
        let mut soft = sharp.clone();
        for _ in 0..2 {
            let prev = soft.clone();
            for y in 0..h {
                for x in 1..w - 1 {
                    let s = &prev[y * w..];
                    let v = u32::from(s[x - 1]) + 2 * u32::from(s[x]) + u32::from(s[x + 1]);
                    soft[y * w + x] = (v / 4) as u8;
                }
            }
        }
        let score = |p: &[u8]| {
            let bilevel: Vec<u8> = p.iter().map(|&v| if v < 130 { 0 } else { 255 }).collect();
            sharpness(p, &Runs::of_bilevel(&bilevel, None, w), 200.0)
        };
        assert_eq!(score(&sharp), 1.0);
        let blurred = score(&soft);
        assert!(blurred > 0.2 && blurred < 0.6, "{blurred}");
        assert_eq!(score(&[200; 400]), 0.0);
        assert!(blur_mm(blurred, 300.0) > blur_mm(1.0, 300.0));
        assert_eq!(blur_mm(0.0, 300.0), 0.0);
    }

    #[test]
    fn content_ink_ignores_specks_edges_and_ghosts() {
        let (w, h) = (40, 20);
        let mut bilevel = vec![255u8; w * h];
        let mut grey = vec![240u8; w * h];
        for y in 5..10 {
            for x in 5..10 {
                bilevel[y * w + x] = 0; // print
                grey[y * w + x] = 30;
                bilevel[y * w + x + 20] = 0; // ghost of the other side
                grey[y * w + x + 20] = 210;
            }
        }
        bilevel[0] = 0; // a border remnant in the corner
        let runs = Runs::of_bilevel(&bilevel, Some(&grey), w);
        let comps = label(&runs);
        let specks = vec![false; comps.list.len()];
        assert_eq!(content_ink(&comps, &specks, 240.0, (w, h)), 25);
    }
}
