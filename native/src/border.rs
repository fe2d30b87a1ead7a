//! Dark border removal: finds the box of the paper inside the dark scanner bed and lid shadows.
//!
//! Border is dark area connected to the edge of the scan (see `analysis.rs`), so text, tables and
//! photos inside the paper never count as border however close to the edge they are. On the
//! reduced page, rows and columns are trimmed from each side while less than
//! `MIN_PAGE_SHARE` of their scanned cells are paper; canvas fill outside a rotated page is
//! neither paper nor border. The crop stands only if what it keeps looks like paper (bright
//! background, little border left inside); otherwise the dark areas are content (a photo, light
//! letters on a dark sign) and nothing is cut. The box is then refined at full resolution,
//! where it may also grow back so that no paper is cut.

use crate::analysis::{channel_at, Analysis, DARK_SHARE};
use crate::error::KernelError;
use crate::geometry::{CropBox, Rotation};
use crate::image::Image;

/// A row or column is border while less than this share of its scanned pixels are paper.
const MIN_PAGE_SHARE: f64 = 0.25;
/// Paper is at least this share of the paper level (the dark threshold is `DARK_SHARE`).
const BRIGHT_SHARE: f64 = 0.8;
/// A crop is kept only when at most this share of the box is border (scanned pages: < 5%) ...
const MAX_BORDER_INSIDE: f64 = 0.15;
/// ... and at least this share is bright paper (text pages: > 75%; photos, signs: < 60%).
const MIN_PAPER_INSIDE: f64 = 0.65;

/// Class of one cell (reduced pixel) of a deskewed canvas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cell {
    /// Outside the scanned page (rotation fill).
    Fill,
    /// Scanner bed, lid shadow or other dark area connected to the scan edge.
    Border,
    /// Paper, and everything printed on it.
    Page,
}

/// Cells of a deskewed canvas, one per `factor x factor` block, classified on demand (the trim
/// in [`BorderMap::content_box`] only looks at the lines it removes plus one per side).
pub(crate) enum BorderMap<'a> {
    /// The canvas of `rotation` applied to the analysed page: each cell takes the class of the
    /// analysis pixel under its centre.
    Rotated {
        analysis: &'a Analysis,
        rotation: &'a Rotation,
    },
    /// An analysed canvas (see [`Analysis::of_canvas`]).
    Canvas { analysis: &'a Analysis },
}

impl BorderMap<'_> {
    /// `(width, height)` in cells.
    fn size(&self) -> (usize, usize) {
        match self {
            Self::Rotated { analysis, rotation } => {
                let (w, h) = rotation.dst_size();
                (w.div_ceil(analysis.factor), h.div_ceil(analysis.factor))
            }
            Self::Canvas { analysis } => (analysis.plane.width(), analysis.plane.height()),
        }
    }

    fn cell(&self, x: usize, y: usize) -> Cell {
        self.sample(x, y).0
    }

    /// Class and analysis value of a cell (0 for fill).
    fn sample(&self, x: usize, y: usize) -> (Cell, u8) {
        let (analysis, i) = match self {
            Self::Rotated { analysis, rotation } => {
                let k = analysis.factor;
                let (dw, dh) = rotation.dst_size();
                let centre =
                    |i: usize, size: usize| (i * k + ((i + 1) * k).min(size) - 1) as f64 / 2.0;
                let Some((sx, sy)) = rotation.page_point(centre(x, dw), centre(y, dh)) else {
                    return (Cell::Fill, 0);
                };
                let (pw, ph) = (analysis.plane.width(), analysis.plane.height());
                let u = ((sx + 0.5).max(0.0) as usize / k).min(pw - 1);
                let v = ((sy + 0.5).max(0.0) as usize / k).min(ph - 1);
                (analysis, v * pw + u)
            }
            Self::Canvas { analysis } => {
                let i = y * analysis.plane.width() + x;
                if analysis.outside.as_ref().is_some_and(|o| o[i]) {
                    return (Cell::Fill, 0);
                }
                (analysis, i)
            }
        };
        let value = analysis.plane.view().data()[i];
        if analysis.border[i] {
            (Cell::Border, value)
        } else {
            (Cell::Page, value)
        }
    }

    /// Box of the paper, in cells; the whole map when no cell is paper.
    pub fn content_box(&self) -> CropBox {
        let (width, height) = self.size();
        let mut b = CropBox::full(width, height);
        // Rows first (over all columns), then columns over the kept rows, and once more.
        for _ in 0..2 {
            (b.y0, b.y1) = trim(b.y0, b.y1, |y| {
                is_border_line((b.x0..b.x1).map(|x| self.cell(x, y)))
            });
            (b.x0, b.x1) = trim(b.x0, b.x1, |x| {
                is_border_line((b.y0..b.y1).map(|y| self.cell(x, y)))
            });
        }
        let full = CropBox::full(width, height);
        if b == full {
            return b;
        }
        // A border is only a border around paper: bright background with dark marks, with
        // little border left inside the box. Otherwise (a photo, light letters on a dark sign)
        // the dark areas at the edges are content and nothing is cut.
        let (border, paper) = self.inside(b);
        if border <= MAX_BORDER_INSIDE && paper >= MIN_PAPER_INSIDE {
            b
        } else {
            full
        }
    }

    /// Shares of the scanned cells inside `b` that are border, and that are bright paper
    /// (sampled on a grid of at most 64 x 64 cells).
    fn inside(&self, b: CropBox) -> (f64, f64) {
        let analysis = match self {
            Self::Rotated { analysis, .. } | Self::Canvas { analysis } => analysis,
        };
        let bright = f64::from(analysis.threshold) / DARK_SHARE * BRIGHT_SHARE;
        let step = (b.width().max(b.height()) / 64).max(1);
        let (mut scanned, mut border, mut paper) = (0usize, 0usize, 0usize);
        for y in (b.y0..b.y1).step_by(step) {
            for x in (b.x0..b.x1).step_by(step) {
                let (cell, value) = self.sample(x, y);
                scanned += usize::from(cell != Cell::Fill);
                border += usize::from(cell == Cell::Border);
                paper += usize::from(cell == Cell::Page && f64::from(value) >= bright);
            }
        }
        let n = scanned.max(1) as f64;
        (border as f64 / n, paper as f64 / n)
    }
}

/// Narrows `[lo, hi)` from both ends past border lines; keeps the range if all of it is border.
fn trim(lo: usize, hi: usize, is_border: impl Fn(usize) -> bool) -> (usize, usize) {
    let mut a = lo;
    while a < hi && is_border(a) {
        a += 1;
    }
    if a == hi {
        return (lo, hi);
    }
    let mut b = hi;
    while b > a && is_border(b - 1) {
        b -= 1;
    }
    (a, b)
}

fn is_border_line(cells: impl Iterator<Item = Cell>) -> bool {
    let (mut scanned, mut paper) = (0usize, 0usize);
    for cell in cells {
        scanned += usize::from(cell != Cell::Fill);
        paper += usize::from(cell == Cell::Page);
    }
    scanned == 0 || (paper as f64) < MIN_PAGE_SHARE * scanned as f64
}

/// Refines a cell box to full resolution on a `width x height` canvas. Each side moves to the
/// first line, scanning inward from up to `2 * factor` pixels outside the cell edge to `factor`
/// pixels inside it, that is not a border line. `sample(x, y)` is `None` off the page, else the
/// analysis value; values below `threshold` are dark.
pub(crate) fn refine(
    cells: CropBox,
    factor: usize,
    (width, height): (usize, usize),
    threshold: u8,
    sample: impl Fn(usize, usize) -> Option<u8>,
) -> CropBox {
    let border_line = |pixels: &mut dyn Iterator<Item = Option<u8>>| {
        let (mut scanned, mut paper) = (0usize, 0usize);
        for value in pixels.flatten() {
            scanned += 1;
            paper += usize::from(value >= threshold);
        }
        scanned == 0 || (paper as f64) < MIN_PAGE_SHARE * scanned as f64
    };
    let mut b = CropBox {
        x0: (cells.x0 * factor).min(width - 1),
        y0: (cells.y0 * factor).min(height - 1),
        x1: (cells.x1 * factor).min(width),
        y1: (cells.y1 * factor).min(height),
    };
    let reach = |edge: usize| (edge.saturating_sub(2 * factor), edge + factor);
    // Top and bottom over the coarse columns, then left and right over the refined rows.
    let (from, to) = reach(b.y0);
    b.y0 = (from..to.min(b.y1 - 1))
        .find(|&y| !border_line(&mut (b.x0..b.x1).map(|x| sample(x, y))))
        .unwrap_or(b.y0);
    let (from, to) = reach(height - b.y1);
    b.y1 = height
        - (from..to.min(height - b.y0 - 1))
            .find(|&d| !border_line(&mut (b.x0..b.x1).map(|x| sample(x, height - 1 - d))))
            .unwrap_or(height - b.y1);
    let (from, to) = reach(b.x0);
    b.x0 = (from..to.min(b.x1 - 1))
        .find(|&x| !border_line(&mut (b.y0..b.y1).map(|y| sample(x, y))))
        .unwrap_or(b.x0);
    let (from, to) = reach(width - b.x1);
    b.x1 = width
        - (from..to.min(width - b.x0 - 1))
            .find(|&d| !border_line(&mut (b.y0..b.y1).map(|y| sample(width - 1 - d, y))))
            .unwrap_or(width - b.x1);
    b
}

/// Box `(x0, y0, x1, y1)` (exclusive ends) of the paper in `image`. When `canvas_of` is given,
/// `image` is that rotation's canvas (as made by [`crate::rotate::rotate`]) and its fill is
/// ignored; its size must match the rotation's canvas.
pub fn find_content_box(
    image: Image<'_>,
    canvas_of: Option<&Rotation>,
) -> Result<CropBox, KernelError> {
    let (w, h) = (image.width(), image.height());
    if let Some(rotation) = canvas_of {
        if rotation.dst_size() != (w, h) {
            let (rw, rh) = rotation.dst_size();
            return Err(KernelError::Shape(format!(
                "a {h}x{w} image is not the {rh}x{rw} canvas of that rotation"
            )));
        }
    }
    let analysis = Analysis::of_canvas(image, canvas_of);
    let cells = BorderMap::Canvas {
        analysis: &analysis,
    }
    .content_box();
    Ok(refine(
        cells,
        analysis.factor,
        (w, h),
        analysis.threshold,
        |x, y| {
            let on_page = canvas_of.is_none_or(|r| r.on_page(x as f64, y as f64));
            on_page.then(|| channel_at(image, x, y))
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ImageBuf;
    use crate::rotate::rotate;
    use crate::testpage::{skewed_text_page, TextPage};
    use proptest::prelude::*;

    #[test]
    fn trim_stops_at_the_first_kept_line() {
        let border = [true, true, false, true, false, true];
        assert_eq!(trim(0, 6, |i| border[i]), (2, 5));
        assert_eq!(trim(0, 3, |_| true), (0, 3));
    }

    #[test]
    fn finds_the_sheet_on_the_scanner_bed() {
        let spec = TextPage {
            bed: 40,
            ..TextPage::default()
        };
        let page = skewed_text_page(&spec);
        let b = find_content_box(page.view(), None).unwrap();
        let (w, h) = (spec.width, spec.height);
        assert!(b.x0.abs_diff(40) <= 1 && b.y0.abs_diff(40) <= 1, "{b:?}");
        assert!(
            b.x1.abs_diff(w - 40) <= 1 && b.y1.abs_diff(h - 40) <= 1,
            "{b:?}"
        );
    }

    #[test]
    fn keeps_a_page_without_border_whole() {
        let page = skewed_text_page(&TextPage::default());
        let b = find_content_box(page.view(), None).unwrap();
        assert_eq!(b, CropBox::full(page.width(), page.height()));
    }

    #[test]
    fn ignores_the_fill_of_a_rotated_page() {
        let spec = TextPage {
            bed: 40,
            ..TextPage::default()
        };
        let page = skewed_text_page(&spec);
        let canvas = rotate(page.view(), 5.0, 1).unwrap();
        let rotation = Rotation::new(page.width(), page.height(), 5.0).unwrap();
        let b = find_content_box(canvas.view(), Some(&rotation)).unwrap();
        // The sheet, turned by 5 degrees: the box lies between its inscribed and bounding boxes.
        let (x0, y0) = (40.0 - 0.5, 40.0 - 0.5);
        let (x1, y1) = (
            (spec.width - 40) as f64 - 0.5,
            (spec.height - 40) as f64 - 0.5,
        );
        let corners =
            [(x0, y0), (x1, y0), (x1, y1), (x0, y1)].map(|(x, y)| rotation.to_canvas(x, y));
        let mut xs = corners.map(|c| c.0);
        let mut ys = corners.map(|c| c.1);
        xs.sort_by(f64::total_cmp);
        ys.sort_by(f64::total_cmp);
        let within = |v: usize, outer: f64, inner: f64| {
            let v = v as f64;
            v >= outer.min(inner) - 2.0 && v <= outer.max(inner) + 2.0
        };
        assert!(
            within(b.x0, xs[0], xs[1]) && within(b.x1, xs[3], xs[2]),
            "{b:?} {xs:?}"
        );
        assert!(
            within(b.y0, ys[0], ys[1]) && within(b.y1, ys[3], ys[2]),
            "{b:?} {ys:?}"
        );
        let wrong = Rotation::new(page.width() + 2, page.height(), 5.0).unwrap();
        assert!(find_content_box(canvas.view(), Some(&wrong)).is_err());
    }

    #[test]
    fn dark_content_at_the_edges_is_not_border() {
        // Light letters on a dark sign: the dark area reaches every edge, but it is content.
        let (w, h) = (362, 78);
        let sign: Vec<u8> = (0..w * h)
            .map(|i| {
                let (x, y) = (i % w, i / w);
                let stroke = (15..65).contains(&y) && (20..340).contains(&x) && x % 40 < 14;
                let bar = (35..43).contains(&y) && (20..340).contains(&x);
                if stroke || bar {
                    215
                } else {
                    55
                }
            })
            .collect();
        let image = Image::new(&sign, w, h, 1).unwrap();
        assert_eq!(find_content_box(image, None).unwrap(), CropBox::full(w, h));
        // A photo-like gradient from white to black.
        let (w, h) = (200, 200);
        let photo: Vec<u8> = (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f64, (i / w) as f64);
                (255.0 - 1.1 * (x - 40.0).hypot(y - 40.0)).clamp(0.0, 255.0) as u8
            })
            .collect();
        let image = Image::new(&photo, w, h, 1).unwrap();
        assert_eq!(find_content_box(image, None).unwrap(), CropBox::full(w, h));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn box_is_inside_the_image(w in 1usize..120, h in 1usize..120, frame in 0usize..30,
                                   value in 0u8..80, angle in -30.0f64..30.0) {
            let mut page = ImageBuf::filled(w, h, 1, 240);
            let width = w;
            for (y, row) in page.data_mut().chunks_exact_mut(width).enumerate() {
                for (x, px) in row.iter_mut().enumerate() {
                    if x < frame || y < frame || x + frame >= w || y + frame >= h {
                        *px = value;
                    }
                }
            }
            let b = find_content_box(page.view(), None).unwrap();
            prop_assert!(b.x0 < b.x1 && b.x1 <= w && b.y0 < b.y1 && b.y1 <= h);
            let rotation = Rotation::new(w, h, angle).unwrap();
            let canvas = rotate(page.view(), angle, 1).unwrap();
            let b = find_content_box(canvas.view(), Some(&rotation)).unwrap();
            prop_assert!(b.x0 < b.x1 && b.x1 <= canvas.width());
            prop_assert!(b.y0 < b.y1 && b.y1 <= canvas.height());
        }
    }
}
