//! Colour on BGR pages: how much of the page is coloured, and where the red seals are.
//!
//! One sampled pass (the middle row of every block row of the analysis grid) measures per block
//! the mean redness `r - max(g, b)` and the share of clearly coloured pixels. Seals are groups of
//! red blocks of seal size and roughly round or square shape: a red letterhead (红头) or a red
//! rule is far wider than tall and is not a seal.

use crate::geometry::CropBox;
use crate::image::{Image, ImageBuf};
use multiversion::multiversion;

/// A block is red when its mean redness is at least this.
const RED_BLOCK: u16 = 40;
/// A pixel is seal ink (for [`halftone`]) when its redness is at least this.
const SEAL_INK: u8 = 60;
/// A pixel is coloured when its channels spread by at least this.
const CHROMA: u8 = 48;
/// Seal size limits, millimetres (county seals are 40-45 mm; small square stamps 15 mm).
const MIN_SEAL_MM: f64 = 8.0;
const MAX_SEAL_MM: f64 = 90.0;
/// A seal is at least this many pixels across, whatever the resolution claims (no legible
/// seal is smaller; photos and icons are).
const MIN_SEAL_PX: f64 = 48.0;
/// Longest side over shortest side of a seal.
const MAX_ASPECT: f64 = 2.5;
/// Red groups closer than this (millimetres) are one seal (ring, star and lettering).
const JOIN_MM: f64 = 3.0;

/// Boxes of the red seals on a page (none on grey pages); `dpi` (default: from the page size,
/// taken as A4) sets the seal size limits.
pub fn find_seals(image: Image<'_>, dpi: Option<f64>) -> Vec<CropBox> {
    if !image.is_colour() {
        return Vec::new();
    }
    let dpi = dpi.unwrap_or_else(|| crate::quality::a4_dpi(image.width(), image.height()));
    let factor = image
        .width()
        .max(image.height())
        .div_ceil(crate::analysis::ANALYSIS_SIDE)
        .max(1);
    ColourPlanes::new(image, factor).seals(dpi)
}

/// Colour measurements of a BGR page on a grid of `factor x factor` blocks.
pub(crate) struct ColourPlanes {
    pub factor: usize,
    pub width: usize,
    pub height: usize,
    /// Mean redness of each block's sampled row.
    pub redness: Vec<u16>,
    /// Share of clearly coloured pixels over the sampled rows.
    pub colour_share: f64,
}

impl ColourPlanes {
    /// Samples the middle row of every block row of a BGR page.
    pub fn new(image: Image<'_>, factor: usize) -> Self {
        let (w, h) = (image.width(), image.height());
        let (gw, gh) = (w.div_ceil(factor), h.div_ceil(factor));
        let mut redness = vec![0u16; gw * gh];
        let mut red = vec![0u8; w];
        let mut coloured = 0usize;
        for (v, out) in redness.chunks_exact_mut(gw).enumerate() {
            let y = (v * factor + ((v + 1) * factor).min(h)) / 2;
            coloured += sample_row(image.row(y.min(h - 1)), &mut red);
            for (block, dst) in red.chunks(factor).zip(out.iter_mut()) {
                let sum: u32 = block.iter().map(|&r| u32::from(r)).sum();
                *dst = (sum / block.len() as u32) as u16;
            }
        }
        let sampled = w * gh;
        Self {
            factor,
            width: gw,
            height: gh,
            redness,
            colour_share: coloured as f64 / sampled.max(1) as f64,
        }
    }

    /// Boxes (page pixels) of the red seals on the page; `dpi` sets the size limits.
    pub fn seals(&self, dpi: f64) -> Vec<CropBox> {
        let (gw, gh) = (self.width, self.height);
        let mm = dpi / 25.4 / self.factor as f64;
        let mut boxes = red_groups(&self.redness, gw, gh);
        let join = (JOIN_MM * mm).ceil() as usize;
        merge_close(&mut boxes, join);
        let (min, max) = (
            (MIN_SEAL_MM * mm).max(MIN_SEAL_PX / self.factor as f64),
            MAX_SEAL_MM * mm,
        );
        let f = self.factor;
        boxes
            .into_iter()
            .filter(|(b, _)| {
                let (bw, bh) = (b.width() as f64, b.height() as f64);
                bw.min(bh) >= min && bw.max(bh) <= max && bw.max(bh) <= MAX_ASPECT * bw.min(bh)
            })
            .map(|(b, _)| CropBox {
                x0: b.x0 * f,
                y0: b.y0 * f,
                x1: b.x1 * f,
                y1: b.y1 * f,
            })
            .collect()
    }
}

/// Inside the seal boxes, an OCR channel (`out`, row `y`, from the BGR row `bgr`) takes the
/// red channel: seal ink turns as light as the paper there, while black and blue ink under the
/// seal (thin strokes blurred into the red included) stays dark. Outside them it stays luma, so
/// red print that is not a seal (a letterhead) stays legible.
pub(crate) fn red_in_seals(bgr: &[u8], out: &mut [u8], y: usize, seals: &[CropBox]) {
    for b in seals.iter().filter(|b| (b.y0..b.y1).contains(&y)) {
        let px = bgr[b.x0 * 3..b.x1 * 3].chunks_exact(3);
        for (o, p) in out[b.x0..b.x1].iter_mut().zip(px) {
            *o = p[2];
        }
    }
}

/// Keeps the seals in a bilevel copy made from the OCR channel (where they fade): inside each
/// seal box, seal ink becomes a 50% checkerboard, so the seal stays visible as grey while the
/// black text under it stays solid and legible. `page` is the BGR page `bilevel` was made from.
pub(crate) fn halftone(page: &ImageBuf, bilevel: &mut ImageBuf, boxes: &[CropBox]) {
    let w = bilevel.width();
    let src = page.view();
    let out = bilevel.data_mut();
    for b in boxes {
        for y in b.y0..b.y1 {
            let row = &src.row(y)[b.x0 * 3..b.x1 * 3];
            for (x, px) in (b.x0..b.x1).zip(row.chunks_exact(3)) {
                let redness = px[2].saturating_sub(px[0].max(px[1]));
                if redness >= SEAL_INK && (x + y) % 2 == 0 {
                    out[y * w + x] = 0;
                }
            }
        }
    }
}

/// Redness `r - max(g, b)` of every pixel of a BGR row into `red`; returns how many pixels are
/// clearly coloured.
#[multiversion(targets("x86_64+avx2"))]
fn sample_row(row: &[u8], red: &mut [u8]) -> usize {
    let mut coloured = 0usize;
    for (px, out) in row.chunks_exact(3).zip(red.iter_mut()) {
        let (b, g, r) = (px[0], px[1], px[2]);
        *out = r.saturating_sub(b.max(g));
        let spread = r.max(g).max(b) - r.min(g).min(b);
        coloured += usize::from(spread >= CHROMA);
    }
    coloured
}

/// Bounding boxes (grid cells) and cell counts of the 8-connected groups of red blocks.
fn red_groups(redness: &[u16], w: usize, h: usize) -> Vec<(CropBox, usize)> {
    let mut seen = vec![false; redness.len()];
    let mut groups = Vec::new();
    let mut stack = Vec::new();
    for start in 0..redness.len() {
        if seen[start] || redness[start] < RED_BLOCK {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let mut b = CropBox {
            x0: start % w,
            y0: start / w,
            x1: start % w + 1,
            y1: start / w + 1,
        };
        let mut cells = 0;
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            cells += 1;
            b.x0 = b.x0.min(x);
            b.x1 = b.x1.max(x + 1);
            b.y0 = b.y0.min(y);
            b.y1 = b.y1.max(y + 1);
            for ny in y.saturating_sub(1)..(y + 2).min(h) {
                for nx in x.saturating_sub(1)..(x + 2).min(w) {
                    let n = ny * w + nx;
                    if !seen[n] && redness[n] >= RED_BLOCK {
                        seen[n] = true;
                        stack.push(n);
                    }
                }
            }
        }
        groups.push((b, cells));
    }
    groups
}

/// Merges boxes that come within `gap` cells of each other, until none do.
fn merge_close(boxes: &mut Vec<(CropBox, usize)>, gap: usize) {
    let near = |a: &CropBox, b: &CropBox| {
        a.x0 <= b.x1 + gap && b.x0 <= a.x1 + gap && a.y0 <= b.y1 + gap && b.y0 <= a.y1 + gap
    };
    let mut merged = true;
    while merged {
        merged = false;
        'outer: for i in 0..boxes.len() {
            for j in i + 1..boxes.len() {
                if near(&boxes[i].0, &boxes[j].0) {
                    let (b, n) = boxes.swap_remove(j);
                    let a = &mut boxes[i];
                    a.0 = CropBox {
                        x0: a.0.x0.min(b.x0),
                        y0: a.0.y0.min(b.y0),
                        x1: a.0.x1.max(b.x1),
                        y1: a.0.y1.max(b.y1),
                    };
                    a.1 += n;
                    merged = true;
                    break 'outer;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ImageBuf;

    /// A white BGR page with a red ring (a seal) and a red bar of seal size but far wider
    /// than tall (a letterhead title).
    fn page() -> ImageBuf {
        let (w, h) = (1240, 1754);
        let mut data = vec![245u8; w * h * 3];
        let red = [40u8, 30, 210];
        for y in 0..h {
            for x in 0..w {
                let (dx, dy) = (x as f64 - 800.0, y as f64 - 1200.0);
                let r = (dx * dx + dy * dy).sqrt();
                let ring = (r - 230.0).abs() < 10.0 || r < 40.0;
                let bar = (150..550).contains(&x) && (200..260).contains(&y);
                if ring || bar {
                    data[(y * w + x) * 3..][..3].copy_from_slice(&red);
                }
            }
        }
        ImageBuf::from_vec(data, w, h, 3).unwrap()
    }

    #[test]
    fn finds_the_seal_and_not_the_rule() {
        let page = page();
        let planes = ColourPlanes::new(page.view(), 2);
        let seals = planes.seals(150.0);
        assert_eq!(seals.len(), 1, "{seals:?}");
        let s = seals[0];
        for (got, want) in [(s.x0, 560), (s.y0, 960), (s.x1, 1040), (s.y1, 1440)] {
            assert!(got.abs_diff(want) <= 6, "{s:?}");
        }
        assert!(planes.colour_share > 0.005 && planes.colour_share < 0.1);
    }

    #[test]
    fn grey_looking_pages_have_no_colour() {
        let page = ImageBuf::filled(300, 200, 3, 128);
        let planes = ColourPlanes::new(page.view(), 3);
        assert!(planes.seals(300.0).is_empty());
        assert_eq!(planes.colour_share, 0.0);
    }
}
