//! Synthetic skewed pages for the unit tests: word-like dark bars on text lines, drawn directly
//! in skewed coordinates (independent of the rotation kernel), optionally on a sheet smaller
//! than the scan (dark scanner bed around it) and framed by dark strips along the scan edges.

use crate::image::ImageBuf;

/// Description of a synthetic page.
pub(crate) struct TextPage {
    pub width: usize,
    pub height: usize,
    /// Deskew angle: positive when the text lines descend to the right.
    pub angle_deg: f64,
    /// Width of the dark frame along every edge of the scan, in pixels.
    pub border: usize,
    /// Margin of dark scanner bed between the (skewed) sheet and the scan edges, in pixels.
    pub bed: usize,
    pub seed: u64,
    /// Words are rows of square characters, every fourth followed by a full stop at the
    /// bottom of the line (so that orientation can be told).
    pub full_stops: bool,
}

impl Default for TextPage {
    fn default() -> Self {
        Self {
            width: 1240,
            height: 1754,
            angle_deg: 0.0,
            border: 0,
            bed: 0,
            seed: 7,
            full_stops: false,
        }
    }
}

const MARGIN: f64 = 110.0;
const LINE_PITCH: f64 = 30.0;
const LINE_HEIGHT: f64 = 12.0;

/// Small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) % n
    }
}

/// Renders the page (grey, paper 235, ink 30, border 20).
pub(crate) fn skewed_text_page(spec: &TextPage) -> ImageBuf {
    let (w, h) = (spec.width, spec.height);
    let mut rng = Rng(spec.seed.wrapping_mul(2) + 0x9E37_79B9_7F4A_7C15);
    let lines = ((h as f64 - 2.0 * MARGIN) / LINE_PITCH) as usize;
    let words: Vec<Vec<(f64, f64)>> = (0..lines)
        .map(|_| {
            let mut spans = Vec::new();
            let mut u = MARGIN + rng.below(40) as f64;
            let end = w as f64 - MARGIN - rng.below(200) as f64;
            while u < end {
                let len = 20.0 + rng.below(70) as f64;
                spans.push((u, (u + len).min(end)));
                u += len + 12.0;
            }
            spans
        })
        .collect();
    let (sin, cos) = spec.angle_deg.to_radians().sin_cos();
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    let mut page = ImageBuf::filled(w, h, 1, 235);
    for (y, row) in page.data_mut().chunks_exact_mut(w).enumerate() {
        for (x, px) in row.iter_mut().enumerate() {
            if x < spec.border || y < spec.border || x + spec.border >= w || y + spec.border >= h {
                *px = 20;
                continue;
            }
            // Page coordinates of the scan pixel (the page was turned clockwise by the angle).
            let (dx, dy) = (x as f64 - cx, y as f64 - cy);
            let u = cos * dx + sin * dy + cx;
            let v = -sin * dx + cos * dy + cy;
            let bed = spec.bed as f64;
            if u < bed || v < bed || u >= w as f64 - bed || v >= h as f64 - bed {
                *px = 20;
                continue;
            }
            let v = v - MARGIN;
            if v < 0.0 {
                continue;
            }
            let line = (v / LINE_PITCH) as usize;
            if line >= lines || v - line as f64 * LINE_PITCH >= LINE_HEIGHT {
                continue;
            }
            let in_line = v - line as f64 * LINE_PITCH;
            let ink = words[line].iter().enumerate().any(|(k, &(a, b))| {
                if !spec.full_stops {
                    return u >= a && u < b;
                }
                let char_cell = u >= a && u < b && (u - a) % 15.0 < LINE_HEIGHT;
                let stop = k % 4 == 3 && u >= b + 3.0 && u < b + 6.0 && in_line >= 9.0;
                char_cell || stop
            });
            if ink {
                *px = 30;
            }
        }
    }
    page
}
