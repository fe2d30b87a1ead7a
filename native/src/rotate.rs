//! Bilinear rotation by any angle onto an expanded canvas filled with white (255). Exact
//! quarter turns are in `quarter.rs`.

use crate::error::KernelError;
use crate::geometry::{CropBox, Rotation};
use crate::image::{Image, ImageBuf};
use crate::threads::{map_bands, with_pool};
use multiversion::multiversion;

/// Value of canvas pixels that fall outside the page.
pub const FILL: u8 = 255;

/// Fractional bits of the fixed-point source coordinates.
const COORD_BITS: u32 = 32;
const ONE: i64 = 1 << COORD_BITS;
/// Bits of the interpolation weights; 7 keeps the horizontal blend inside 16-bit lanes.
const WEIGHT_BITS: u32 = 7;

/// Rotates a page by `angle_deg` counter-clockwise about its centre onto an expanded canvas
/// (see [`Rotation`]), using `threads` worker threads (1 = the calling thread only).
pub fn rotate(image: Image<'_>, angle_deg: f64, threads: usize) -> Result<ImageBuf, KernelError> {
    let rotation = Rotation::new(image.width(), image.height(), angle_deg)?;
    let (w, h) = rotation.dst_size();
    with_pool(threads, || {
        Ok(render(image, &rotation, CropBox::full(w, h), threads > 1))
    })
}

/// Renders the `window` part of the rotated canvas, in bands of rows that go parallel when
/// `parallel` (inside [`with_pool`]). `window` must lie inside the canvas.
pub(crate) fn render(
    image: Image<'_>,
    rotation: &Rotation,
    window: CropBox,
    parallel: bool,
) -> ImageBuf {
    let channels = image.channels();
    let mut out = ImageBuf::filled(window.width(), window.height(), channels, FILL);
    let row_len = window.width() * channels;
    let bands: Vec<(usize, &mut [u8])> = out
        .data_mut()
        .chunks_mut(row_len * BAND_ROWS)
        .enumerate()
        .collect();
    map_bands(bands, parallel, |(b, band)| {
        for (i, row) in band.chunks_exact_mut(row_len).enumerate() {
            render_row(image, rotation, window, b * BAND_ROWS + i, row);
        }
    });
    out
}

/// Rows per band of [`render`].
const BAND_ROWS: usize = 16;

/// Renders row `i` of the `window` part of the rotated canvas into `row` (which must hold
/// [`FILL`]: pixels off the page are not written). Compiled for AVX2 too, chosen at run time.
#[multiversion(targets("x86_64+avx2"))]
pub(crate) fn render_row(
    image: Image<'_>,
    rotation: &Rotation,
    window: CropBox,
    i: usize,
    row: &mut [u8],
) {
    let y = (window.y0 + i) as f64;
    let start = rotation.to_source(window.x0 as f64, y);
    if rotation.is_identity() {
        copy_row(image, start, row);
    } else {
        interpolate_row(image, start, rotation.source_step(), row);
    }
}

/// Source rows ahead of the current one that [`interpolate`] prefetches.
const PREFETCH_ROWS: usize = 8;

/// Asks the CPU to bring the cache line of `data[i]` in (a hint: no effect on results).
#[inline(always)]
fn prefetch(data: &[u8], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(p) = data.get(i) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch reads no memory architecturally and cannot fault; the pointer is
        // in bounds anyway. (`sse`, which the intrinsic needs, is part of every x86-64 CPU.)
        unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(p).cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, i);
}

/// Identity rotation: copies the part of source row `start.1` that the output row covers.
#[inline(always)]
fn copy_row(image: Image<'_>, start: (f64, f64), out: &mut [u8]) {
    let c = image.channels();
    let (x, y) = (start.0.round() as i64, start.1.round() as i64);
    if y < 0 || y >= image.height() as i64 {
        return;
    }
    // Output pixels i with 0 <= x + i < width.
    let first = (-x).clamp(0, (out.len() / c) as i64) as usize;
    let last = (image.width() as i64 - x).clamp(first as i64, (out.len() / c) as i64) as usize;
    let src = (x + first as i64) as usize * c;
    out[first * c..last * c].copy_from_slice(&image.row(y as usize)[src..src + (last - first) * c]);
}

/// Bilinear samples along one canvas row: the source point starts at `start` and moves by
/// `step` per output pixel. Neighbours outside the page read as [`FILL`].
#[inline(always)]
fn interpolate_row(image: Image<'_>, start: (f64, f64), step: (f64, f64), out: &mut [u8]) {
    if image.channels() == 1 {
        interpolate::<1>(image, start, step, out);
    } else {
        interpolate::<3>(image, start, step, out);
    }
}

/// [`interpolate_row`] for `C` channels. The row is walked in runs over which the source
/// pixel pairs are consecutive (the same two source rows, the column advancing by one), so
/// each run reads plain slices and its weights change linearly; for deskew angles the runs are
/// tens of pixels long and vectorise.
#[inline(always)]
fn interpolate<const C: usize>(
    image: Image<'_>,
    start: (f64, f64),
    step: (f64, f64),
    out: &mut [u8],
) {
    let (w, h) = (image.width() as i64, image.height() as i64);
    let data = image.data();
    let stride = image.stride();
    let fixed = |v: f64| (v * ONE as f64).round() as i64;
    let (mut fx, mut fy) = (fixed(start.0), fixed(start.1));
    let (dx, dy) = (fixed(step.0), fixed(step.1));
    let (runs_x, runs_y) = (RunCounter::new(dx - ONE), RunCounter::new(dy));
    let scratch_len = if C == 1 { 0 } else { out.len() };
    let mut weights = (vec![0i16; scratch_len], vec![0i16; scratch_len]);
    let n = out.len() / C;
    let mut i = 0;
    while i < n {
        let (ix, iy) = (fx >> COORD_BITS, fy >> COORD_BITS);
        let (gx, gy) = (fx - (ix << COORD_BITS), fy - (iy << COORD_BITS));
        // One unsigned comparison per axis also rejects negative coordinates.
        let run = if (ix as u64) < (w - 1) as u64 && (iy as u64) < (h - 1) as u64 {
            let run = runs_x
                .run(gx)
                .min(runs_y.run(gy))
                .min((w - 1 - ix) as usize)
                .min(n - i);
            let top = iy as usize * stride + ix as usize * C;
            let below = top + stride;
            // The rows below are what the next output rows read here: ask for them early (the
            // hardware prefetchers cannot follow a hundred short segments per row).
            let ahead = below + PREFETCH_ROWS * stride;
            prefetch(data, ahead);
            prefetch(data, ahead + (run + 1) * C - 1);
            let rows = (
                &data[top..top + (run + 1) * C],
                &data[below..below + (run + 1) * C],
            );
            let scratch = (&mut weights.0[..], &mut weights.1[..]);
            let run_out = &mut out[i * C..(i + run) * C];
            blend_run::<C>(rows, (gx, dx - ONE), (gy, dy), run_out, scratch);
            run
        } else {
            if ix >= -1 && iy >= -1 && ix < w && iy < h {
                let px = &mut out[i * C..(i + 1) * C];
                edge_pixel::<C>(image, (ix, iy), (weight(gx), weight(gy)), px);
            }
            1
        };
        fx += run as i64 * dx;
        fy += run as i64 * dy;
        i += run;
    }
}

/// Counts the steps `j = 0, 1, ...` for which `frac + j * step` stays in `[0, ONE)`, for a
/// fixed step; a float reciprocal replaces the division, then an exact integer check corrects
/// the estimate.
struct RunCounter {
    step: i64,
    inverse: f64,
}

impl RunCounter {
    fn new(step: i64) -> Self {
        let inverse = if step == 0 {
            0.0
        } else {
            1.0 / step.unsigned_abs() as f64
        };
        Self { step, inverse }
    }

    /// The count for `frac` in `[0, ONE)`: at least 1.
    fn run(&self, frac: i64) -> usize {
        if self.step == 0 {
            return u32::MAX as usize;
        }
        let room = if self.step < 0 { frac } else { ONE - 1 - frac };
        let size = self.step.abs();
        let mut more = (room as f64 * self.inverse) as i64;
        while more > 0 && more * size > room {
            more -= 1;
        }
        while (more + 1) * size <= room {
            more += 1;
        }
        (more + 1) as usize
    }
}

/// Interpolation weight of a fraction in `[0, ONE)`: its top [`WEIGHT_BITS`] bits.
fn weight(frac: i64) -> i16 {
    (frac >> (COORD_BITS - WEIGHT_BITS)) as i16
}

/// Blends one run: output pixel `j` mixes source pixels `j` and `j + 1` of both rows, with
/// fractions `x.0 + j * x.1` and `y.0 + j * y.1` (in `1 / ONE` units, kept in `[0, ONE)`).
/// `scratch` holds at least `out.len()` weights each (used for several channels).
#[inline(always)]
fn blend_run<const C: usize>(
    (r0, r1): (&[u8], &[u8]),
    x: (i64, i64),
    y: (i64, i64),
    out: &mut [u8],
    scratch: (&mut [i16], &mut [i16]),
) {
    // 24-bit fractions fit i32 arithmetic; the narrowed step may drift by a few units over a
    // run, which the clamp of the weights absorbs.
    let narrow = |v: i64| (v >> (COORD_BITS - 24)) as i32;
    let (mut fx, ex, mut fy, ey) = (narrow(x.0), narrow(x.1), narrow(y.0), narrow(y.1));
    let weight = |f: i32| ((f >> (24 - WEIGHT_BITS)) as i16).clamp(0, (1 << WEIGHT_BITS) - 1);
    let n = out.len();
    let (a, b) = (&r0[..n], &r0[C..n + C]);
    let (c, d) = (&r1[..n], &r1[C..n + C]);
    if C == 1 {
        for i in 0..n {
            out[i] = blend([a[i], b[i], c[i], d[i]], weight(fx), weight(fy));
            fx += ex;
            fy += ey;
        }
    } else {
        // Spread the per-pixel weights over the channels first, so that the blend itself is
        // the same flat loop as for grey pages.
        let (wxs, wys) = (&mut scratch.0[..n], &mut scratch.1[..n]);
        for (wx, wy) in wxs.chunks_exact_mut(C).zip(wys.chunks_exact_mut(C)) {
            wx.fill(weight(fx));
            wy.fill(weight(fy));
            fx += ex;
            fy += ey;
        }
        for i in 0..n {
            out[i] = blend([a[i], b[i], c[i], d[i]], wxs[i], wys[i]);
        }
    }
}

/// A sample whose neighbours are partly off the page; those read as [`FILL`].
#[cold]
fn edge_pixel<const C: usize>(
    image: Image<'_>,
    (ix, iy): (i64, i64),
    (wx, wy): (i16, i16),
    px: &mut [u8],
) {
    let (w, h) = (image.width() as i64, image.height() as i64);
    let sample = |x: i64, y: i64, ch: usize| {
        if x >= 0 && y >= 0 && x < w && y < h {
            image.row(y as usize)[x as usize * C + ch]
        } else {
            FILL
        }
    };
    for (ch, v) in px.iter_mut().enumerate() {
        let corners = [
            sample(ix, iy, ch),
            sample(ix + 1, iy, ch),
            sample(ix, iy + 1, ch),
            sample(ix + 1, iy + 1, ch),
        ];
        *v = blend(corners, wx, wy);
    }
}

/// Bilinear blend of `[top-left, top-right, bottom-left, bottom-right]`: the horizontal step
/// stays exact in 16 bits (`255 << 7` fits), the vertical one widens to 32 bits, and only the
/// result is rounded.
#[inline(always)]
fn blend(p: [u8; 4], wx: i16, wy: i16) -> u8 {
    let [a, b, c, d] = p.map(i16::from);
    let top = (a << WEIGHT_BITS) + (b - a) * wx;
    let bottom = (c << WEIGHT_BITS) + (d - c) * wx;
    let v = (i32::from(top) << WEIGHT_BITS) + i32::from(bottom - top) * i32::from(wy);
    // A convex combination of u8 values: the rounded result is within 0..=255.
    ((v + (1 << (2 * WEIGHT_BITS - 1))) >> (2 * WEIGHT_BITS)) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn gradient(w: usize, h: usize, c: usize) -> ImageBuf {
        let data = (0..w * h * c)
            .map(|i| {
                let (x, y) = ((i / c) % w, (i / c) / w);
                (30 + x * 100 / w + y * 80 / h + (i % c) * 20) as u8
            })
            .collect();
        ImageBuf::from_vec(data, w, h, c).unwrap()
    }

    #[test]
    fn zero_angle_is_a_copy() {
        let page = gradient(17, 9, 3);
        assert_eq!(rotate(page.view(), 0.0, 1).unwrap(), page);
        assert_eq!(rotate(page.view(), 360.0, 1).unwrap(), page);
    }

    #[test]
    fn half_turn_is_exact() {
        let page = gradient(17, 9, 1);
        let turned = rotate(page.view(), 180.0, 1).unwrap();
        assert_eq!(turned, crate::quarter::rotate_quarter(page.view(), 2));
    }

    #[test]
    fn corners_are_filled_white() {
        let page = ImageBuf::filled(50, 30, 1, 0);
        let turned = rotate(page.view(), 20.0, 1).unwrap();
        assert_eq!(turned.view().data()[0], FILL);
        let (w, h) = (turned.width(), turned.height());
        assert_eq!(turned.view().row(h / 2)[w / 2], 0);
    }

    #[test]
    fn threads_give_identical_output() {
        let page = gradient(120, 80, 3);
        let one = rotate(page.view(), 7.5, 1).unwrap();
        assert_eq!(rotate(page.view(), 7.5, 3).unwrap(), one);
        assert!(rotate(page.view(), 7.5, 0).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn rotating_back_restores_the_interior(angle in -30.0f64..30.0, w in 20usize..90,
                                               h in 20usize..90, colour in any::<bool>()) {
            let page = gradient(w, h, if colour { 3 } else { 1 });
            let there = rotate(page.view(), angle, 1).unwrap();
            let back = rotate(there.view(), -angle, 1).unwrap();
            let (ox, oy) = ((back.width() - w) / 2, (back.height() - h) / 2);
            let c = page.channels();
            for y in h / 4..h * 3 / 4 {
                let got = &back.view().row(oy + y)[(ox + w / 4) * c..(ox + w * 3 / 4) * c];
                let want = &page.view().row(y)[(w / 4) * c..(w * 3 / 4) * c];
                for (g, e) in got.iter().zip(want) {
                    prop_assert!((i32::from(*g) - i32::from(*e)).abs() <= 3, "{g} vs {e}");
                }
            }
        }
    }
}
