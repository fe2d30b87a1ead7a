//! Perceptual hash (pHash, 64 bits) for recognising a rescan of the same page.
//!
//! The hash describes the layout of the ink: the page, less a margin of 8% on each side (where
//! crop remnants, holes and page numbers differ between scans), is divided into 32 x 32 cells;
//! the share of black pixels in each (pixels below 128; the bilevel page in `clean_page`) is
//! transformed by a 2-D DCT-II, and the 8 x 8 lowest frequencies are compared with their median:
//! bit `63 - (8 * row + col)` is set when coefficient `(row, col)` is above it. Ink shares do
//! not move with paper tone, lamp fall-off or exposure, which grey levels do. Rescans and
//! re-encodings change a few bits; byte checksums change completely. Forms printed from the same
//! template come out close, since their layout is the same.

use crate::error::KernelError;
use crate::grey::to_grey;
use crate::image::Image;

const SIDE: usize = 32;
const LOW: usize = 8;
/// Share of the width and height left out on each side.
const MARGIN: f64 = 0.08;

/// The 64-bit perceptual hash of a page.
pub fn phash(image: Image<'_>) -> Result<u64, KernelError> {
    let mut grey = to_grey(image);
    for v in grey.data_mut() {
        *v = if *v < 128 { 0 } else { 255 };
    }
    Ok(phash_bilevel(grey.view().data(), grey.width()))
}

/// The hash of a bilevel page (0 = black, 255 = white).
pub(crate) fn phash_bilevel(page: &[u8], width: usize) -> u64 {
    hash_of(&dct_low(&ink_shares(page, width)))
}

/// Share of black pixels in each of the `SIDE x SIDE` cells of a bilevel page (0 = black,
/// 255 = white) less its margins.
fn ink_shares(page: &[u8], width: usize) -> Vec<f64> {
    let height = page.len() / width.max(1);
    let (mx, my) = (
        (width as f64 * MARGIN) as usize,
        (height as f64 * MARGIN) as usize,
    );
    let (w, h) = (width - 2 * mx, height - 2 * my);
    // Column bounds of the cells (cells of tiny pages may be empty).
    let bounds: Vec<usize> = (0..=SIDE).map(|i| mx + i * w / SIDE).collect();
    let mut black = vec![0u64; SIDE * SIDE];
    let mut pixels = vec![0u64; SIDE * SIDE];
    for y in my..my + h {
        let cell_row = (y - my) * SIDE / h;
        let row = &page[y * width..(y + 1) * width];
        for (j, span) in bounds.windows(2).enumerate() {
            let cells = &row[span[0]..span[1]];
            // Sums of bytes vectorise well: black = (255 * n - sum) / 255 on a 0/255 page.
            let white: u64 = cells.iter().map(|&v| u64::from(v)).sum::<u64>() / 255;
            black[cell_row * SIDE + j] += cells.len() as u64 - white;
            pixels[cell_row * SIDE + j] += cells.len() as u64;
        }
    }
    black
        .iter()
        .zip(&pixels)
        .map(|(&b, &n)| if n == 0 { 0.0 } else { b as f64 / n as f64 })
        .collect()
}

/// The `LOW x LOW` lowest DCT-II coefficients of a `SIDE x SIDE` block, row-major.
fn dct_low(pixels: &[f64]) -> Vec<f64> {
    let basis: Vec<f64> = (0..LOW * SIDE)
        .map(|i| {
            let (k, n) = ((i / SIDE) as f64, (i % SIDE) as f64);
            (std::f64::consts::PI / SIDE as f64 * (n + 0.5) * k).cos()
        })
        .collect();
    // Rows first: rows[y][k] = sum_x pixels[y][x] * basis[k][x].
    let mut rows = vec![0f64; SIDE * LOW];
    for y in 0..SIDE {
        for k in 0..LOW {
            rows[y * LOW + k] = (0..SIDE)
                .map(|x| pixels[y * SIDE + x] * basis[k * SIDE + x])
                .sum();
        }
    }
    let mut out = vec![0f64; LOW * LOW];
    for k in 0..LOW {
        for l in 0..LOW {
            out[k * LOW + l] = (0..SIDE)
                .map(|y| rows[y * LOW + l] * basis[k * SIDE + y])
                .sum();
        }
    }
    out
}

fn hash_of(coefficients: &[f64]) -> u64 {
    // Rounding noise of flat areas must not decide bits.
    let tiny = 1e-9 * (coefficients[0].abs() + 1.0);
    let coefficients: Vec<f64> = coefficients
        .iter()
        .map(|&c| if c.abs() < tiny { 0.0 } else { c })
        .collect();
    let mut sorted = coefficients.clone();
    sorted.sort_by(f64::total_cmp);
    let median = (sorted[LOW * LOW / 2 - 1] + sorted[LOW * LOW / 2]) / 2.0;
    coefficients
        .iter()
        .fold(0u64, |hash, &c| (hash << 1) | u64::from(c > median))
}

/// Number of differing bits between two hashes.
pub fn hamming(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ImageBuf;
    use crate::testpage::{skewed_text_page, TextPage};

    #[test]
    fn same_page_same_hash_other_page_far() {
        let a = skewed_text_page(&TextPage::default());
        let b = skewed_text_page(&TextPage {
            seed: 99,
            ..TextPage::default()
        });
        let ha = phash(a.view()).unwrap();
        assert_eq!(ha, phash(a.view()).unwrap());
        // Darker paper, some noise: the same page.
        let noisy: Vec<u8> = a
            .view()
            .data()
            .iter()
            .enumerate()
            .map(|(i, &v)| v.saturating_sub(40 + (i * 7919 % 13) as u8))
            .collect();
        let noisy = ImageBuf::from_vec(noisy, a.width(), a.height(), 1).unwrap();
        assert!(hamming(ha, phash(noisy.view()).unwrap()) <= 4);
        assert!(hamming(ha, phash(b.view()).unwrap()) >= 12);
    }

    #[test]
    fn tiny_and_flat_pages_hash() {
        let dot = ImageBuf::filled(1, 1, 3, 9);
        assert_ne!(phash(dot.view()).unwrap(), 0);
        let flat = ImageBuf::filled(100, 60, 1, 200);
        assert_eq!(phash(flat.view()).unwrap(), 0);
    }

    #[test]
    fn dct_of_a_constant_is_its_dc_term() {
        let c = dct_low(&[2.0; SIDE * SIDE]);
        assert!((c[0] - 2.0 * (SIDE * SIDE) as f64).abs() < 1e-9);
        assert!(c[1..].iter().all(|v| v.abs() < 1e-9));
    }

    #[test]
    fn cells_count_ink_inside_the_margins() {
        let (w, h) = (100, 100);
        let mut page = vec![255u8; w * h];
        page[..w * 4].fill(0); // a dark strip in the top margin: ignored
        page[50 * w + 50] = 0;
        let shares = ink_shares(&page, w);
        assert_eq!(shares.iter().filter(|&&s| s > 0.0).count(), 1);
    }
}
