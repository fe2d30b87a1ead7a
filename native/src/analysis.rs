//! The reduced page that skew estimation and border detection work on: the channel OCR reads
//! (grey, or red for BGR pages) area-averaged by an integer factor, a dark threshold derived from
//! the paper level, and the dark regions connected to the page edge (scanner bed, lid shadow).

use crate::geometry::Rotation;
use crate::image::{Image, ImageBuf};
use multiversion::multiversion;

/// The reduced plane's long side is at most this many pixels.
pub(crate) const ANALYSIS_SIDE: usize = 1200;

/// Pixels darker than this share of the paper level count as dark (ink or border).
pub(crate) const DARK_SHARE: f64 = 0.6;

/// The paper level is this quantile of the plane's pixel values.
const PAPER_QUANTILE: f64 = 0.95;

/// Below this paper level the page is treated as having no paper at all.
const MIN_PAPER_LEVEL: u8 = 40;

/// Reduced view of a page plus the measurements shared by the skew and border kernels.
pub(crate) struct Analysis {
    /// Area-averaged analysis channel.
    pub plane: ImageBuf,
    /// Integer reduction factor: plane pixel `(u, v)` covers source pixels `[u*f, u*f+f)`.
    pub factor: usize,
    /// Values strictly below this are dark.
    pub threshold: u8,
    /// Per plane pixel: dark and 4-connected through dark pixels to the plane edge or to the
    /// area outside the scanned page.
    pub border: Vec<bool>,
    /// Per plane pixel: outside the scanned page (only for canvases of rotated pages).
    pub outside: Option<Vec<bool>>,
}

impl Analysis {
    /// Analyses a scanned page, reduced so that its long side is at most [`ANALYSIS_SIDE`].
    pub fn new(image: Image<'_>) -> Self {
        Self::of_canvas(image, None)
    }

    /// Like [`Analysis::new`]; when `canvas_of` is given, `image` is that rotation's canvas and
    /// plane pixels whose centre lies off the page are marked outside.
    pub fn of_canvas(image: Image<'_>, canvas_of: Option<&Rotation>) -> Self {
        let long = image.width().max(image.height());
        let factor = long.div_ceil(ANALYSIS_SIDE).max(1);
        let plane = reduce(image, factor);
        let threshold = dark_threshold(&plane);
        let outside = canvas_of.map(|rotation| {
            let (w, h) = (plane.width(), plane.height());
            let centre = |i: usize, size: usize| {
                (i * factor + ((i + 1) * factor).min(size) - 1) as f64 / 2.0
            };
            let mut outside = Vec::with_capacity(w * h);
            for v in 0..h {
                let y = centre(v, image.height());
                outside.extend((0..w).map(|u| !rotation.on_page(centre(u, image.width()), y)));
            }
            outside
        });
        let border = edge_connected_dark(&plane, threshold, outside.as_deref());
        Self {
            plane,
            factor,
            threshold,
            border,
            outside,
        }
    }

    /// 0/1 mask of ink: dark plane pixels that are not part of a border region.
    pub fn ink_mask(&self) -> Vec<u8> {
        let data = self.plane.view().data();
        data.iter()
            .zip(&self.border)
            .map(|(&v, &border)| u8::from(v < self.threshold && !border))
            .collect()
    }
}

/// The analysis channel of pixel `(x, y)`: grey value, or red for BGR pages.
pub(crate) fn channel_at(image: Image<'_>, x: usize, y: usize) -> u8 {
    let c = image.channels();
    let px = &image.row(y)[x * c..(x + 1) * c];
    px[c - 1]
}

/// Area-averages the analysis channel (grey, or red for BGR) over `factor x factor` blocks; the
/// last row and column of blocks average over the pixels they actually hold.
pub(crate) fn reduce(image: Image<'_>, factor: usize) -> ImageBuf {
    // 16-bit column sums while a block's rows cannot overflow them (vectors twice as wide).
    if factor <= usize::from(u16::MAX) / 255 {
        reduce_with::<u16>(image, factor)
    } else {
        reduce_with::<u32>(image, factor)
    }
}

#[multiversion(targets("x86_64+avx2"))]
fn reduce_with<T>(image: Image<'_>, factor: usize) -> ImageBuf
where
    T: Copy + Default + From<u8> + Into<u32> + std::ops::AddAssign,
{
    let (w, h, channels) = (image.width(), image.height(), image.channels());
    let (out_w, out_h) = (w.div_ceil(factor), h.div_ceil(factor));
    let mut out = ImageBuf::filled(out_w, out_h, 1, 0);
    let mut column_sums = vec![T::default(); w];
    for (oy, out_row) in out.data_mut().chunks_exact_mut(out_w).enumerate() {
        column_sums.fill(T::default());
        let (y0, y1) = (oy * factor, ((oy + 1) * factor).min(h));
        for y in y0..y1 {
            let row = image.row(y);
            if channels == 1 {
                for (sum, &v) in column_sums.iter_mut().zip(row) {
                    *sum += T::from(v);
                }
            } else {
                for (sum, px) in column_sums.iter_mut().zip(row.chunks_exact(channels)) {
                    *sum += T::from(px[2]);
                }
            }
        }
        // Rounded mean in 40.24 fixed point: exact for sums of at most 2^24 / 255 pixels'
        // worth of error margin, far more than any block holds.
        let rows = (y1 - y0) as u64;
        let reciprocal = |n: u64| (1u64 << 24).div_ceil(n);
        let full = reciprocal(rows * factor as u64);
        for (dst, block) in out_row.iter_mut().zip(column_sums.chunks(factor)) {
            let total: u64 = block.iter().map(|&v| u64::from(v.into())).sum();
            let scale = if block.len() == factor {
                full
            } else {
                reciprocal(rows * block.len() as u64)
            };
            // An average of u8 values is at most 255.
            *dst = ((total * scale + (1 << 23)) >> 24) as u8;
        }
    }
    out
}

/// Threshold separating dark pixels (ink, scanner bed) from paper: a share of the paper level.
pub(crate) fn dark_threshold(plane: &ImageBuf) -> u8 {
    let data = plane.view().data();
    let mut histogram = [0usize; 256];
    for &v in data {
        histogram[usize::from(v)] += 1;
    }
    let target = (data.len() as f64 * PAPER_QUANTILE).ceil() as usize;
    let mut seen = 0;
    let mut paper = 255u8;
    for (value, &count) in histogram.iter().enumerate() {
        seen += count;
        if seen >= target {
            paper = value as u8;
            break;
        }
    }
    if paper < MIN_PAPER_LEVEL {
        0
    } else {
        (f64::from(paper) * DARK_SHARE).round() as u8
    }
}

/// Marks dark pixels 4-connected through dark pixels to a seed: a dark pixel on the plane edge
/// or next to a pixel outside the scanned area (`outside`, for planes of rotated pages). Pixels
/// outside the scanned area are never marked.
pub(crate) fn edge_connected_dark(
    plane: &ImageBuf,
    threshold: u8,
    outside: Option<&[bool]>,
) -> Vec<bool> {
    let (w, h) = (plane.width(), plane.height());
    let data = plane.view().data();
    let is_outside = |i: usize| outside.is_some_and(|o| o[i]);
    let dark = |i: usize| data[i] < threshold && !is_outside(i);
    let mut marked = vec![false; data.len()];
    let mut stack = Vec::new();
    let mut seed = |i: usize, marked: &mut [bool]| {
        if dark(i) && !marked[i] {
            marked[i] = true;
            stack.push(i);
        }
    };
    for x in 0..w {
        seed(x, &mut marked);
        seed((h - 1) * w + x, &mut marked);
    }
    for y in 0..h {
        seed(y * w, &mut marked);
        seed(y * w + w - 1, &mut marked);
    }
    if outside.is_some() {
        for y in 1..h.saturating_sub(1) {
            for i in y * w + 1..(y + 1) * w - 1 {
                if is_outside(i - 1) || is_outside(i + 1) || is_outside(i - w) || is_outside(i + w)
                {
                    seed(i, &mut marked);
                }
            }
        }
    }
    while let Some(i) = stack.pop() {
        let x = i % w;
        let neighbours = [
            (x > 0).then(|| i - 1),
            (x + 1 < w).then(|| i + 1),
            i.checked_sub(w),
            (i + w < data.len()).then_some(i + w),
        ];
        for n in neighbours.into_iter().flatten() {
            if !marked[n] && dark(n) {
                marked[n] = true;
                stack.push(n);
            }
        }
    }
    marked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane(width: usize, rows: &[&[u8]]) -> ImageBuf {
        ImageBuf::from_vec(rows.concat(), width, rows.len(), 1).unwrap()
    }

    #[test]
    fn reduce_averages_blocks_and_partial_edges() {
        let data: Vec<u8> = vec![0, 10, 20, 100, 20, 30, 40, 200];
        let image = Image::new(&data, 4, 2, 1).unwrap();
        assert_eq!(reduce(image, 2).view().data(), &[15, 90]);
        assert_eq!(reduce(image, 3).view().data(), &[20, 150]);
        let bgr = [0, 0, 9, 255, 255, 3];
        let image = Image::new(&bgr, 2, 1, 3).unwrap();
        assert_eq!(reduce(image, 2).view().data(), &[6]);
    }

    #[test]
    fn threshold_follows_paper_level() {
        let mut data = vec![200u8; 100];
        data[..10].fill(0);
        let p = ImageBuf::from_vec(data, 10, 10, 1).unwrap();
        assert_eq!(dark_threshold(&p), 120);
        let black = ImageBuf::from_vec(vec![5; 16], 4, 4, 1).unwrap();
        assert_eq!(dark_threshold(&black), 0);
    }

    #[test]
    fn flood_keeps_inner_ink_apart_from_border() {
        let p = plane(
            5,
            &[
                &[0, 0, 0, 0, 0],
                &[0, 255, 255, 255, 255],
                &[0, 255, 0, 255, 255],
                &[0, 255, 255, 255, 255],
            ],
        );
        let border = edge_connected_dark(&p, 100, None);
        assert!(border[0] && border[5] && border[15]);
        assert!(!border[12], "isolated ink is not border");
        let outside: Vec<bool> = (0..20).map(|i| i == 13).collect();
        let border = edge_connected_dark(&p, 100, Some(&outside));
        assert!(border[12], "ink next to the unscanned area is border");
    }
}
