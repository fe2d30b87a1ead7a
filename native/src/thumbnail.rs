//! Thumbnails by area averaging: every output pixel is the mean of the source area it covers
//! (fractional pixels at the edges of that area count by their covered share), like OpenCV's
//! `INTER_AREA` when shrinking.

use crate::error::KernelError;
use crate::image::{Image, ImageBuf};
use multiversion::multiversion;

/// Default bound on the long side of a thumbnail.
pub const DEFAULT_THUMBNAIL_SIDE: usize = 320;

/// Shrinks a page so that its long side is at most `max_side`, keeping the aspect ratio (each
/// side at least one pixel). A page that already fits is copied.
pub fn thumbnail(image: Image<'_>, max_side: usize) -> Result<ImageBuf, KernelError> {
    if max_side == 0 {
        return Err(KernelError::Argument(
            "thumbnail max side must be at least 1".to_owned(),
        ));
    }
    let (w, h) = (image.width(), image.height());
    let long = w.max(h);
    if long <= max_side {
        return Ok(ImageBuf::copy_of(image));
    }
    let side =
        |s: usize| ((s as f64 * max_side as f64 / long as f64).round() as usize).clamp(1, max_side);
    Ok(area_resize(image, side(w), side(h)))
}

/// One output index's share of the source: pixels `first..first + weights.len()`, each
/// weighted by the share of it that the output pixel covers divided by the scale ratio.
struct Span {
    first: usize,
    weights: Vec<f32>,
}

/// Spans of `dst` equal parts of `src` pixels (`dst <= src`), and the weight of a fully covered
/// source pixel (the same value, bit for bit, wherever it occurs in the spans).
fn spans(src: usize, dst: usize) -> (Vec<Span>, f32) {
    let ratio = src as f64 / dst as f64;
    let spans = (0..dst)
        .map(|i| {
            let (start, end) = (i as f64 * ratio, ((i + 1) as f64 * ratio).min(src as f64));
            let first = start as usize;
            let last = (end.ceil() as usize).clamp(first + 1, src);
            let weights = (first..last)
                .map(|p| {
                    let covered = (end.min((p + 1) as f64) - start.max(p as f64)).max(0.0);
                    (covered / ratio) as f32
                })
                .collect();
            Span { first, weights }
        })
        .collect();
    (spans, (1.0 / ratio) as f32)
}

/// Area-averaging resize to `out_w x out_h` (both at most the source size). Per output row, the
/// fully covered source rows are summed as integers, the partly covered ones (at most two) are
/// weighted in floating point; then each output pixel sums its columns.
#[multiversion(targets("x86_64+avx2"))]
pub(crate) fn area_resize(image: Image<'_>, out_w: usize, out_h: usize) -> ImageBuf {
    let c = image.channels();
    let ((rows, full), (cols, _)) = (spans(image.height(), out_h), spans(image.width(), out_w));
    let mut out = ImageBuf::filled(out_w, out_h, c, 0);
    let mut whole = vec![0u32; image.stride()];
    let mut column_sums = vec![0f32; image.stride()];
    for (out_row, rows) in out.data_mut().chunks_exact_mut(out_w * c).zip(&rows) {
        whole.fill(0);
        column_sums.fill(0.0);
        for (dy, &wy) in rows.weights.iter().enumerate() {
            let row = image.row(rows.first + dy);
            if wy == full {
                for (sum, &v) in whole.iter_mut().zip(row) {
                    *sum += u32::from(v);
                }
            } else {
                for (sum, &v) in column_sums.iter_mut().zip(row) {
                    *sum += wy * f32::from(v);
                }
            }
        }
        for (sum, &n) in column_sums.iter_mut().zip(&whole) {
            *sum += full * n as f32;
        }
        for (px, cols) in out_row.chunks_exact_mut(c).zip(&cols) {
            for (ch, v) in px.iter_mut().enumerate() {
                let total: f32 = cols
                    .weights
                    .iter()
                    .enumerate()
                    .map(|(dx, &wx)| wx * column_sums[(cols.first + dx) * c + ch])
                    .sum();
                // Weights sum to one: the mean of u8 values, rounded, fits u8.
                *v = (total + 0.5) as u8;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn long_side_is_bounded_and_aspect_kept() {
        let page = ImageBuf::filled(2480, 3508, 1, 200);
        let thumb = thumbnail(page.view(), 320).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (226, 320));
        let strip = ImageBuf::filled(5000, 1, 3, 9);
        let thumb = thumbnail(strip.view(), 320).unwrap();
        assert_eq!(
            (thumb.width(), thumb.height(), thumb.channels()),
            (320, 1, 3)
        );
        assert!(thumbnail(strip.view(), 0).is_err());
    }

    #[test]
    fn averages_areas() {
        // 4 x 1 -> 2 x 1 averages pairs; 3 x 1 -> 2 x 1 splits the middle pixel.
        let data = [0, 100, 200, 50];
        let image = Image::new(&data, 4, 1, 1).unwrap();
        assert_eq!(area_resize(image, 2, 1).view().data(), &[50, 125]);
        let data = [0, 90, 180];
        let image = Image::new(&data, 3, 1, 1).unwrap();
        assert_eq!(area_resize(image, 2, 1).view().data(), &[30, 150]);
    }

    #[test]
    fn small_pages_are_copied() {
        let page = ImageBuf::filled(10, 20, 3, 77);
        assert_eq!(thumbnail(page.view(), 320).unwrap(), page);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn constant_pages_stay_constant(w in 1usize..400, h in 1usize..400, value in any::<u8>(),
                                        max_side in 1usize..64, colour in any::<bool>()) {
            let page = ImageBuf::filled(w, h, if colour { 3 } else { 1 }, value);
            let thumb = thumbnail(page.view(), max_side).unwrap();
            prop_assert!(thumb.width().max(thumb.height()) <= max_side);
            prop_assert!(thumb.view().data().iter().all(|&v| v == value));
        }
    }
}
