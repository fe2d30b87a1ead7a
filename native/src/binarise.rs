//! Adaptive binarisation (Sauvola) for the bilevel archive/access copy.
//!
//! The threshold of a pixel is `T = m * (1 + k * (s / 128 - 1))`, with `m` and `s` the mean and
//! standard deviation of the grey values in a window around it. The window statistics come from
//! integral images over small blocks (a seventh of the window on a side): the page is read once
//! to sum each block, the thresholds are computed at block centres and interpolated bilinearly
//! in between, so the cost per pixel is a few vector operations whatever the window size.
//! A pixel is black (0) when its value is at most its threshold, else white (255); a bilevel
//! page therefore comes back unchanged.
//!
//! The runs of black pixels are collected row by row while the row is still in cache (see
//! `components.rs`).

use crate::blocks::block_thresholds;
pub(crate) use crate::blocks::{add_band, BlockStats};
use crate::components::{push_row_runs, Run, Runs};
use crate::error::KernelError;
use crate::image::{Image, ImageBuf};
use crate::threads::{map_bands, with_pool};
use multiversion::multiversion;

use crate::blocks::BLOCKS_PER_WINDOW;
/// Fractional bits of the vertical interpolation weight.
const WY_BITS: u32 = 4;

/// Sauvola settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sauvola {
    /// Window side in pixels (rounded to a multiple of 7 blocks; at least 7).
    pub window: usize,
    /// Sensitivity `k`, in (0, 1]: larger values make fewer, thinner black pixels.
    pub k: f64,
}

impl Default for Sauvola {
    fn default() -> Self {
        Self {
            window: DEFAULT_WINDOW,
            k: DEFAULT_K,
        }
    }
}

/// Default window: about 4 mm at 300 dpi, two to three character heights of body text.
pub const DEFAULT_WINDOW: usize = 49;
/// Default sensitivity.
pub const DEFAULT_K: f64 = 0.2;
/// Largest window accepted.
pub const MAX_WINDOW: usize = 7 * 255;

impl Sauvola {
    /// Checks the settings.
    pub fn check(&self) -> Result<(), KernelError> {
        if !(BLOCKS_PER_WINDOW..=MAX_WINDOW).contains(&self.window) {
            return Err(KernelError::Argument(format!(
                "Sauvola window must be {BLOCKS_PER_WINDOW}..={MAX_WINDOW} pixels, got {}",
                self.window
            )));
        }
        if !(self.k > 0.0 && self.k <= 1.0) {
            return Err(KernelError::Argument(format!(
                "Sauvola k must be in (0, 1], got {}",
                self.k
            )));
        }
        Ok(())
    }

    /// Side of the statistics blocks.
    pub(crate) fn block(&self) -> usize {
        ((self.window + BLOCKS_PER_WINDOW / 2) / BLOCKS_PER_WINDOW).max(1)
    }
}

/// Thresholds of a block row interpolated along a page row (one value per pixel).
fn spread_row(thresholds: &[u8], block: usize, width: usize, out: &mut [u8]) {
    let half = (block - 1) / 2;
    let last = thresholds.len() - 1;
    out[..half.min(width)].fill(thresholds[0]);
    for j in 0..last {
        // 16.16 fixed point: the threshold moves by `step` per pixel.
        let a = i32::from(thresholds[j]) << 16;
        let step = ((i32::from(thresholds[j + 1]) << 16) - a) / block as i32;
        let x0 = (j * block + half).min(width);
        let mut t = a + (1 << 15);
        for v in out[x0..(x0 + block).min(width)].iter_mut() {
            *v = (t >> 16) as u8;
            t += step;
        }
    }
    let x0 = (last * block + half).min(width);
    out[x0..].fill(thresholds[last]);
}

/// Result of [`binarise_with`]: the bilevel page and its black runs.
pub(crate) struct Binarised {
    pub bilevel: ImageBuf,
    pub runs: Runs,
}

/// Binarises a grey plane whose block statistics are known, in bands of rows that go parallel
/// when `parallel` (inside [`with_pool`]).
pub(crate) fn binarise_with(
    plane: &[u8],
    width: usize,
    stats: &BlockStats,
    k: f64,
    parallel: bool,
) -> Binarised {
    let height = stats.height;
    let block = stats.block;
    let thresholds = block_thresholds(stats, k);
    // Every pixel is written below; zeroed memory comes from the system without a fill.
    let mut bilevel = ImageBuf::filled(width, height, 1, 0);
    let band_rows = if parallel { 64 } else { height };
    let band = |(b, out): (usize, &mut [u8])| -> Vec<Run> {
        let y0 = b * band_rows;
        let mut runs = Vec::new();
        let mut upper = vec![0u8; width];
        let mut lower = vec![0u8; width];
        let mut loaded: Option<usize> = None;
        let half = (block - 1) / 2;
        for (dy, out_row) in out.chunks_exact_mut(width).enumerate() {
            let y = y0 + dy;
            // Block rows whose centres bracket y, and the weight of the lower one.
            let i = (y.saturating_sub(half) / block).min(stats.rows - 1);
            let i1 = (i + 1).min(stats.rows - 1);
            let offset = y.saturating_sub(i * block + half);
            let wy = ((offset << WY_BITS) + block / 2) / block;
            if loaded != Some(i) {
                let cols = stats.cols;
                if loaded.is_some_and(|l| l + 1 == i) {
                    std::mem::swap(&mut upper, &mut lower);
                } else {
                    spread_row(
                        &thresholds[i * cols..(i + 1) * cols],
                        block,
                        width,
                        &mut upper,
                    );
                }
                spread_row(
                    &thresholds[i1 * cols..(i1 + 1) * cols],
                    block,
                    width,
                    &mut lower,
                );
                loaded = Some(i);
            }
            let row = &plane[y * width..(y + 1) * width];
            threshold_row(row, &upper, &lower, wy as i16, out_row);
            push_row_runs(out_row, row, y as u32, &mut runs);
        }
        runs
    };
    let chunks: Vec<(usize, &mut [u8])> = bilevel
        .data_mut()
        .chunks_mut(band_rows * width)
        .enumerate()
        .collect();
    let parts = map_bands(chunks, parallel, band);
    let mut runs = Runs {
        width,
        height,
        runs: Vec::with_capacity(parts.iter().map(Vec::len).sum()),
        row_start: Vec::with_capacity(height + 1),
    };
    for part in parts {
        runs.runs.extend(part);
    }
    let mut next = 0;
    for y in 0..=height {
        while next < runs.runs.len() && (runs.runs[next].y as usize) < y {
            next += 1;
        }
        runs.row_start.push(next);
    }
    Binarised { bilevel, runs }
}

/// Black (0) where `value <= threshold`, threshold interpolated between two spread rows.
#[multiversion(targets("x86_64+avx2"))]
fn threshold_row(row: &[u8], upper: &[u8], lower: &[u8], wy: i16, out: &mut [u8]) {
    let round = 1i16 << (WY_BITS - 1);
    for (((o, &v), &a), &b) in out.iter_mut().zip(row).zip(upper).zip(lower) {
        let (a, b) = (i16::from(a), i16::from(b));
        let t = a + (((b - a) * wy + round) >> WY_BITS);
        *o = if i16::from(v) <= t { 0 } else { 255 };
    }
}

/// Sauvola binarisation of a page (luma for BGR pages): 0 = black, 255 = white.
pub fn binarise(
    image: Image<'_>,
    params: &Sauvola,
    threads: usize,
) -> Result<ImageBuf, KernelError> {
    params.check()?;
    let plane = crate::grey::to_grey(image);
    let (w, h) = (image.width(), image.height());
    let data = plane.view().data();
    let stats = BlockStats::of_plane(data, w, h, params.block());
    with_pool(threads, || {
        Ok(binarise_with(data, w, &stats, params.k, threads > 1).bilevel)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testpage::{skewed_text_page, TextPage};
    use proptest::prelude::*;

    #[test]
    fn text_turns_black_and_paper_white() {
        let page = skewed_text_page(&TextPage::default());
        let bilevel = binarise(page.view(), &Sauvola::default(), 1).unwrap();
        for (&g, &b) in page.view().data().iter().zip(bilevel.view().data()) {
            assert_eq!(b, if g < 128 { 0 } else { 255 });
        }
    }

    #[test]
    fn follows_uneven_lighting() {
        // Text at 90 on paper at 160 (dim lamp) and text at 170 on paper at 250.
        let (w, h) = (300, 200);
        let data: Vec<u8> = (0..w * h)
            .map(|i| {
                let (x, y) = (i % w, i / w);
                let ink = y % 20 < 4 && x % 10 < 6;
                match (x < w / 2, ink) {
                    (true, true) => 90,
                    (true, false) => 160,
                    (false, true) => 170,
                    (false, false) => 250,
                }
            })
            .collect();
        let image = Image::new(&data, w, h, 1).unwrap();
        let bilevel = binarise(image, &Sauvola::default(), 1).unwrap();
        for (i, (&g, &b)) in data.iter().zip(bilevel.view().data()).enumerate() {
            let x = i % w;
            if x.abs_diff(w / 2) > 30 {
                assert_eq!(b == 0, g == 90 || g == 170, "pixel {i}");
            }
        }
    }

    #[test]
    fn threads_and_runs_agree() {
        let page = skewed_text_page(&TextPage {
            angle_deg: 2.0,
            ..TextPage::default()
        });
        let data = page.view().data();
        let (w, h) = (page.width(), page.height());
        let stats = BlockStats::of_plane(data, w, h, 7);
        let one = binarise_with(data, w, &stats, 0.2, false);
        let three = with_pool(3, || Ok(binarise_with(data, w, &stats, 0.2, true))).unwrap();
        assert_eq!(one.bilevel, three.bilevel);
        assert_eq!(one.runs.runs, three.runs.runs);
        assert_eq!(one.runs.row_start, three.runs.row_start);
        let direct = Runs::of_bilevel(one.bilevel.view().data(), Some(data), w);
        assert_eq!(direct.runs, one.runs.runs);
        assert_eq!(direct.row_start, one.runs.row_start);
    }

    #[test]
    fn rejects_bad_settings() {
        let page = ImageBuf::filled(10, 10, 1, 200);
        for bad in [
            Sauvola { window: 3, k: 0.2 },
            Sauvola {
                window: 9999,
                k: 0.2,
            },
            Sauvola { window: 49, k: 0.0 },
            Sauvola {
                window: 49,
                k: f64::NAN,
            },
        ] {
            assert!(binarise(page.view(), &bad, 1).is_err());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn bilevel_pages_are_fixed_points(w in 1usize..90, h in 1usize..90, seed in any::<u64>(),
                                          window in 7usize..80, k in 0.01f64..1.0,
                                          black in 0u64..=100) {
            let mut state = seed | 1;
            let data: Vec<u8> = (0..w * h).map(|_| {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                if state % 100 < black { 0 } else { 255 }
            }).collect();
            let image = Image::new(&data, w, h, 1).unwrap();
            let once = binarise(image, &Sauvola { window, k }, 1).unwrap();
            prop_assert_eq!(once.view().data(), &data[..]);
        }
    }
}
