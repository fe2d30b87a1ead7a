//! Single-channel views of a page: luma for display and analysis, the red channel for OCR of
//! colour pages (red seals and stamps turn light in it while black text stays dark).

use crate::image::{Image, ImageBuf};
use multiversion::multiversion;

/// ITU-R BT.601 luma weights in 14-bit fixed point, the ones OpenCV's `COLOR_BGR2GRAY` uses.
const LUMA_B: u32 = 1868;
const LUMA_G: u32 = 9617;
const LUMA_R: u32 = 4899;
const LUMA_SHIFT: u32 = 14;

/// Luma of one BGR pixel.
#[inline]
pub(crate) fn luma(b: u8, g: u8, r: u8) -> u8 {
    let sum = LUMA_B * u32::from(b) + LUMA_G * u32::from(g) + LUMA_R * u32::from(r);
    // The weights sum to 2^14, so the rounded result is at most 255.
    ((sum + (1 << (LUMA_SHIFT - 1))) >> LUMA_SHIFT) as u8
}

/// Grey (luma) version of a page; a grey page is copied unchanged.
pub fn to_grey(image: Image<'_>) -> ImageBuf {
    if !image.is_colour() {
        return ImageBuf::copy_of(image);
    }
    let mut out = ImageBuf::filled(image.width(), image.height(), 1, 0);
    luma_rows(image.data(), out.data_mut());
    out
}

/// Luma of BGR rows (`bgr` holds three bytes per pixel of `out`).
#[multiversion(targets("x86_64+avx2"))]
pub(crate) fn luma_rows(bgr: &[u8], out: &mut [u8]) {
    for (dst, px) in out.iter_mut().zip(bgr.chunks_exact(3)) {
        *dst = luma(px[0], px[1], px[2]);
    }
}

/// The red channel of a BGR page; a grey page is copied unchanged.
pub fn red_channel(image: Image<'_>) -> ImageBuf {
    if !image.is_colour() {
        return ImageBuf::copy_of(image);
    }
    let mut out = ImageBuf::filled(image.width(), image.height(), 1, 0);
    for (dst, px) in out.data_mut().iter_mut().zip(image.data().chunks_exact(3)) {
        *dst = px[2];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luma_matches_reference_weights() {
        assert_eq!(luma(0, 0, 0), 0);
        assert_eq!(luma(255, 255, 255), 255);
        // 0.114 * 255 = 29.07, 0.587 * 255 = 149.7, 0.299 * 255 = 76.2
        assert_eq!(luma(255, 0, 0), 29);
        assert_eq!(luma(0, 255, 0), 150);
        assert_eq!(luma(0, 0, 255), 76);
    }

    #[test]
    fn grey_and_red_of_colour_page() {
        let bgr = [10, 20, 200, 255, 255, 255];
        let image = Image::new(&bgr, 2, 1, 3).unwrap();
        let grey = to_grey(image);
        assert_eq!(grey.channels(), 1);
        assert_eq!(grey.view().data(), &[luma(10, 20, 200), 255]);
        assert_eq!(red_channel(image).view().data(), &[200, 255]);
    }

    #[test]
    fn grey_page_is_copied() {
        let data = [1, 2, 3, 4];
        let image = Image::new(&data, 2, 2, 1).unwrap();
        assert_eq!(to_grey(image).view().data(), &data);
        assert_eq!(red_channel(image).view().data(), &data);
    }
}
