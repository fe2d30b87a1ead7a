//! The clean-up stage in one call: skew estimate, rotation, border crop and thumbnail.
//!
//! Full-resolution passes: one to reduce the page for analysis, one to render the kept part of
//! the deskewed page (nothing outside the crop box is computed), a few lines near the crop
//! edges, one for the thumbnail and, for colour pages, one to extract the red channel for OCR.

use crate::analysis::{channel_at, Analysis};
use crate::border::{self, BorderMap};
use crate::error::KernelError;
use crate::geometry::{round, CropBox, Rotation};
use crate::grey::red_channel;
use crate::image::{Image, ImageBuf};
use crate::rotate::{self, check_threads};
use crate::skew::{self, check_max_skew, DEFAULT_MAX_SKEW_DEG};
use crate::thumbnail::{thumbnail, DEFAULT_THUMBNAIL_SIDE};

/// Skew estimates smaller than this (in degrees) are not corrected.
pub const MIN_CORRECTION_DEG: f64 = 0.05;
/// Skew estimates less confident than this are not corrected.
pub const MIN_CONFIDENCE: f64 = 0.3;

/// Settings of [`clean_page`].
#[derive(Clone, Copy, Debug)]
pub struct CleanOptions {
    /// Bound on the long side of the thumbnail.
    pub thumbnail_max_side: usize,
    /// Skew search range, degrees either side of level.
    pub max_skew_deg: f64,
    /// Worker threads for the rotation (1 = the calling thread only).
    pub threads: usize,
}

impl Default for CleanOptions {
    fn default() -> Self {
        Self {
            thumbnail_max_side: DEFAULT_THUMBNAIL_SIDE,
            max_skew_deg: DEFAULT_MAX_SKEW_DEG,
            threads: 1,
        }
    }
}

/// Result of [`clean_page`].
#[derive(Clone, Debug)]
pub struct CleanedPage {
    /// Deskewed and cropped page, same channels as the input.
    pub image: ImageBuf,
    /// Red channel of `image` for colour pages; `None` for grey pages, whose OCR input is
    /// `image` itself.
    pub ocr_input: Option<ImageBuf>,
    /// `image` shrunk so that its long side is at most the configured bound.
    pub thumbnail: ImageBuf,
    /// Counter-clockwise rotation applied, degrees (0 when the estimate was too small or too
    /// uncertain to apply).
    pub deskew_deg: f64,
    /// Confidence of the skew estimate, 0..=1.
    pub skew_confidence: f64,
    /// Kept region of the deskewed canvas.
    pub crop_box: CropBox,
    /// Share of the scanned page's area that the crop removed.
    pub border_share: f64,
}

/// Cleans one scanned page.
pub fn clean_page(image: Image<'_>, options: &CleanOptions) -> Result<CleanedPage, KernelError> {
    check_max_skew(options.max_skew_deg)?;
    check_threads(options.threads)?;
    if options.thumbnail_max_side == 0 {
        return Err(KernelError::Argument(
            "thumbnail max side must be at least 1".to_owned(),
        ));
    }
    let (w, h) = (image.width(), image.height());
    let analysis = Analysis::new(image);
    let skew = skew::estimate(&analysis, options.max_skew_deg);
    let apply = skew.confidence >= MIN_CONFIDENCE && skew.angle_deg.abs() >= MIN_CORRECTION_DEG;
    let deskew_deg = if apply { skew.angle_deg } else { 0.0 };
    let rotation = Rotation::new(w, h, deskew_deg)?;
    let cells = BorderMap::Rotated {
        analysis: &analysis,
        rotation: &rotation,
    }
    .content_box();
    let crop = border::refine(
        cells,
        analysis.factor,
        rotation.dst_size(),
        analysis.threshold,
        |x, y| {
            let (sx, sy) = rotation.page_point(x as f64, y as f64)?;
            let (sx, sy) = (round(sx).max(0) as usize, round(sy).max(0) as usize);
            Some(channel_at(image, sx.min(w - 1), sy.min(h - 1)))
        },
    );
    let page = rotate::render(image, &rotation, crop, options.threads)?;
    let ocr_input = image.is_colour().then(|| red_channel(page.view()));
    let thumbnail = thumbnail(page.view(), options.thumbnail_max_side)?;
    let border_share = (1.0 - rotation.page_area_in(crop) / (w * h) as f64).clamp(0.0, 1.0);
    Ok(CleanedPage {
        image: page,
        ocr_input,
        thumbnail,
        deskew_deg,
        skew_confidence: skew.confidence,
        crop_box: crop,
        border_share,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testpage::{skewed_text_page, TextPage};
    use proptest::prelude::*;

    #[test]
    fn straightens_and_crops_a_sheet_on_the_scanner_bed() {
        let spec = TextPage {
            angle_deg: 3.0,
            bed: 50,
            ..TextPage::default()
        };
        let page = skewed_text_page(&spec);
        let cleaned = clean_page(page.view(), &CleanOptions::default()).unwrap();
        assert!(
            (cleaned.deskew_deg - 3.0).abs() < 0.1,
            "{}",
            cleaned.deskew_deg
        );
        assert!(cleaned.skew_confidence > 0.5);
        assert!(cleaned.ocr_input.is_none());
        // The sheet, in canvas coordinates, is the page rectangle less the bed.
        let (cw, ch) = Rotation::new(spec.width, spec.height, cleaned.deskew_deg)
            .unwrap()
            .dst_size();
        let (ox, oy) = ((cw - spec.width) / 2, (ch - spec.height) / 2);
        let sheet = CropBox {
            x0: ox + spec.bed,
            y0: oy + spec.bed,
            x1: ox + spec.width - spec.bed,
            y1: oy + spec.height - spec.bed,
        };
        let b = cleaned.crop_box;
        for (got, want) in [(b.x0, sheet.x0), (b.y0, sheet.y0)] {
            assert!(
                got <= want + 1 && got + 4 >= want,
                "{b:?} vs sheet {sheet:?}"
            );
        }
        for (got, want) in [(b.x1, sheet.x1), (b.y1, sheet.y1)] {
            assert!(
                got + 1 >= want && got <= want + 4,
                "{b:?} vs sheet {sheet:?}"
            );
        }
        assert_eq!(
            (cleaned.image.width(), cleaned.image.height()),
            (b.width(), b.height())
        );
        let kept = (sheet.width() * sheet.height()) as f64 / (spec.width * spec.height) as f64;
        assert!(
            (cleaned.border_share - (1.0 - kept)).abs() < 0.01,
            "{}",
            cleaned.border_share
        );
        assert!(cleaned.thumbnail.width().max(cleaned.thumbnail.height()) <= 320);
    }

    #[test]
    fn scan_edge_strips_are_trimmed() {
        let spec = TextPage {
            angle_deg: -1.0,
            border: 40,
            ..TextPage::default()
        };
        let page = skewed_text_page(&spec);
        let cleaned = clean_page(page.view(), &CleanOptions::default()).unwrap();
        let (cw, ch) = Rotation::new(spec.width, spec.height, cleaned.deskew_deg)
            .unwrap()
            .dst_size();
        let b = cleaned.crop_box;
        // The strips tilt by the deskew: the crop lies between their inner and outer edges.
        let (ox, oy) = ((cw - spec.width) / 2, (ch - spec.height) / 2);
        assert!(b.x0 > ox && b.x0 < ox + 60, "{b:?}");
        assert!(b.y0 > oy && b.y0 < oy + 60, "{b:?}");
        assert!(b.x1 < cw - ox && b.x1 + 60 > cw - ox, "{b:?}");
        assert!(b.y1 < ch - oy && b.y1 + 60 > ch - oy, "{b:?}");
    }

    #[test]
    fn clean_page_without_border_keeps_everything() {
        let page = skewed_text_page(&TextPage::default());
        let cleaned = clean_page(page.view(), &CleanOptions::default()).unwrap();
        assert_eq!(cleaned.deskew_deg, 0.0);
        assert_eq!(cleaned.crop_box, CropBox::full(page.width(), page.height()));
        assert_eq!(cleaned.image, page);
        assert_eq!(cleaned.border_share, 0.0);
    }

    #[test]
    fn colour_pages_get_a_red_ocr_channel() {
        let grey = skewed_text_page(&TextPage::default());
        let bgr: Vec<u8> = grey
            .view()
            .data()
            .iter()
            .flat_map(|&v| [v, v / 2, v])
            .collect();
        let page = ImageBuf::from_vec(bgr, grey.width(), grey.height(), 3).unwrap();
        let cleaned = clean_page(page.view(), &CleanOptions::default()).unwrap();
        assert_eq!(cleaned.image.channels(), 3);
        assert_eq!(
            cleaned.ocr_input.unwrap(),
            red_channel(cleaned.image.view())
        );
    }

    #[test]
    fn rejects_bad_options() {
        let page = ImageBuf::filled(8, 8, 1, 255);
        for options in [
            CleanOptions {
                max_skew_deg: 0.0,
                ..CleanOptions::default()
            },
            CleanOptions {
                threads: 0,
                ..CleanOptions::default()
            },
            CleanOptions {
                thumbnail_max_side: 0,
                ..CleanOptions::default()
            },
        ] {
            assert!(matches!(
                clean_page(page.view(), &options),
                Err(KernelError::Argument(_))
            ));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        #[test]
        fn any_small_page_is_cleaned(w in 1usize..70, h in 1usize..70, colour in any::<bool>(),
                                     seed in any::<u64>()) {
            let c = if colour { 3 } else { 1 };
            let mut state = seed | 1;
            let data = (0..w * h * c).map(|_| {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                if state % 3 == 0 { (state >> 8) as u8 } else { 255 }
            }).collect();
            let page = ImageBuf::from_vec(data, w, h, c).unwrap();
            let cleaned = clean_page(page.view(), &CleanOptions::default()).unwrap();
            let b = cleaned.crop_box;
            let (cw, ch) = Rotation::new(w, h, cleaned.deskew_deg).unwrap().dst_size();
            prop_assert!(b.x0 < b.x1 && b.x1 <= cw && b.y0 < b.y1 && b.y1 <= ch);
            prop_assert_eq!((cleaned.image.width(), cleaned.image.height()), (b.width(), b.height()));
            prop_assert!((0.0..=1.0).contains(&cleaned.border_share));
            prop_assert!((0.0..=1.0).contains(&cleaned.skew_confidence));
        }
    }
}
